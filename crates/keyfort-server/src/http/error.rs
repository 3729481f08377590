//! Azure-shaped error responses: `{"error": {"code", "message", "innererror"}}`.
//! Internal causes are logged here and never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyfort_core::Error;

pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

pub fn error_body(e: &Error) -> serde_json::Value {
    let (_, code) = e.status_and_code();
    let mut err = serde_json::json!({ "code": code, "message": e.public_message() });
    if let Some(inner) = e.inner_code() {
        err["innererror"] = serde_json::json!({ "code": inner });
    }
    serde_json::json!({ "error": err })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Error::Internal(detail) = &self.0 {
            tracing::error!(%detail, "internal error");
        }
        let (status, _) = self.0.status_and_code();
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, axum::Json(error_body(&self.0))).into_response();
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        resp.extensions_mut()
            .insert(FailureReason(self.0.public_message()));
        resp
    }
}

/// Carried on error responses so the audit record can say why.
#[derive(Clone)]
pub struct FailureReason(pub String);
