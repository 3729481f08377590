//! The token issuer's endpoints, shaped like Entra ID's v2 endpoints so that
//! `azure-identity` works with only the authority changed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyfort_core::audit::AuditIdentity;
use keyfort_core::identity::{GrantRequest, SignIn};
use serde_json::json;

use super::AppState;
use super::audit::AuditSlot;
use super::error::FailureReason;

fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response();
    resp.extensions_mut()
        .insert(FailureReason(description.to_owned()));
    resp
}

async fn known_tenant(state: &AppState, tenant: &str) -> Result<(), Response> {
    match state.kf.identity.tenant(tenant).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(oauth_error(
            400,
            "invalid_tenant",
            &format!(
                "AADSTS90002: Tenant '{}' not found.",
                keyfort_core::names::printable(tenant)
            ),
        )),
        Err(e) => Err(oauth_error(500, "server_error", &e.public_message())),
    }
}

pub async fn openid_configuration(
    State(state): State<Arc<AppState>>,
    Extension(slot): Extension<AuditSlot>,
    Path(tenant): Path<String>,
) -> Response {
    slot.update(|i| i.operation = Some("OpenIdConfiguration"));
    if let Err(r) = known_tenant(&state, &tenant).await {
        return r;
    }
    Json(state.kf.identity.openid_configuration(&tenant)).into_response()
}

pub async fn jwks(
    State(state): State<Arc<AppState>>,
    Extension(slot): Extension<AuditSlot>,
    Path(tenant): Path<String>,
) -> Response {
    slot.update(|i| i.operation = Some("Jwks"));
    if let Err(r) = known_tenant(&state, &tenant).await {
        return r;
    }
    Json(state.kf.identity.jwks()).into_response()
}

/// `POST /{tenant}/oauth2/v2.0/token`: `client_credentials` (with a client
/// secret or a certificate-signed `client_assertion`) and `password` (with an
/// `otp` one-time code for MFA).
pub async fn token(
    State(state): State<Arc<AppState>>,
    Extension(slot): Extension<AuditSlot>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(tenant): Path<String>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    slot.update(|i| i.operation = Some("TokenIssue"));
    let Some(form) = serde_urlencoded_pairs(&body) else {
        return oauth_error(
            400,
            "invalid_request",
            "The body must be application/x-www-form-urlencoded.",
        );
    };
    let field = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let required = |k: &'static str| field(k).ok_or(k);
    let sign_in = match field("grant_type") {
        Some("client_credentials") => match (field("client_secret"), field("client_assertion")) {
            (Some(secret), None) => {
                required("client_id").map(|client_id| SignIn::ClientSecret { client_id, secret })
            }
            (None, Some(assertion)) => {
                if field("client_assertion_type")
                    != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                {
                    return oauth_error(
                        400,
                        "invalid_request",
                        "AADSTS700024: client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
                    );
                }
                Ok(SignIn::ClientAssertion {
                    client_id: field("client_id"),
                    assertion,
                })
            }
            _ => Err("client_secret or client_assertion (one of them)"),
        },
        Some("password") => required("username").and_then(|username| {
            required("password").map(|password| SignIn::Password {
                client_id: field("client_id"),
                username,
                password,
                otp: field("otp"),
            })
        }),
        _ => {
            return oauth_error(
                400,
                "unsupported_grant_type",
                "AADSTS70003: grant_type must be client_credentials or password.",
            );
        }
    };
    let (sign_in, scope) = match (sign_in, required("scope")) {
        (Ok(s), Ok(scope)) => (s, scope),
        (Err(missing), _) | (_, Err(missing)) => {
            return oauth_error(
                400,
                "invalid_request",
                &format!("AADSTS900144: The request body must contain '{missing}'."),
            );
        }
    };
    // Who asked, for the audit record (ids only when well formed).
    let guid = |s: &str| uuid::Uuid::parse_str(s).is_ok();
    let app_id = match &sign_in {
        SignIn::ClientSecret { client_id, .. } => Some(*client_id),
        SignIn::ClientAssertion { client_id, .. } | SignIn::Password { client_id, .. } => {
            *client_id
        }
    };
    // The name a user signs in with is recorded (as Entra ID's sign-in log
    // does); never the password or the code.
    let upn = match &sign_in {
        SignIn::Password { username, .. } => Some(keyfort_core::names::printable(username)),
        _ => None,
    };
    if guid(&tenant) {
        let app_id = app_id.filter(|a| guid(a)).unwrap_or_default().to_owned();
        slot.update(|i| {
            i.identity = Some(AuditIdentity {
                tenant_id: tenant.clone(),
                object_id: String::new(),
                app_id,
                upn,
            })
        });
    }
    // Throttling counts the client's address, not a proxy's.
    let source = state
        .network
        .client_address(peer.ip(), &super::request::forwarded_for(&headers))
        .to_string();
    let issued = state
        .kf
        .identity
        .grant(GrantRequest {
            tenant_id: &tenant,
            scope,
            source: &source,
            sign_in,
        })
        .await;
    match issued {
        Ok(t) => {
            slot.update(|i| {
                if let Some(id) = i.identity.as_mut() {
                    id.object_id = t.object_id.clone();
                }
            });
            let mut resp = Json(json!({
                "token_type": "Bearer",
                "expires_in": t.expires_in,
                "ext_expires_in": t.expires_in,
                "access_token": t.access_token,
            }))
            .into_response();
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => oauth_error(e.status, e.error, &e.description),
    }
}

/// Decodes an urlencoded form body.
fn serde_urlencoded_pairs(body: &[u8]) -> Option<HashMap<String, String>> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()
        .map(|v| v.into_iter().collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn form_decoding() {
        let f = super::serde_urlencoded_pairs(
            b"scope=https%3A%2F%2Fvault.localhost%3A8443%2F.default&a=b+c&empty=",
        )
        .unwrap();
        assert_eq!(f["scope"], "https://vault.localhost:8443/.default");
        assert_eq!(f["a"], "b c");
        assert_eq!(f["empty"], "");
    }
}
