//! What every data-plane request goes through before its operation runs:
//! the vault named by the host, the `api-version`, and the bearer token.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use keyfort_core::identity::Caller;
use keyfort_core::model::Vault;
use keyfort_core::{Error, names};

use super::AppState;
use super::error::{ApiError, FailureReason, error_body};

/// API versions the current Azure SDKs send, and the 7.x line.
pub const API_VERSIONS: &[&str] = &[
    "2026-04-01",
    "2025-07-01",
    "7.6",
    "7.5",
    "7.4",
    "7.3",
    "7.2",
    "7.1",
    "7.0",
];

/// The raw (still percent-encoded) value of the first `name=` parameter.
pub fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// The first `name=` parameter, percent-decoded.
pub fn query_param_decoded(query: Option<&str>, name: &str) -> Option<String> {
    let raw = query_param(query, name)?;
    serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={raw}"))
        .ok()?
        .pop()
        .map(|(_, v)| v)
}

pub fn check_api_version(query: Option<&str>) -> Result<&'static str, Error> {
    let given = query_param(query, "api-version");
    match given {
        None => Err(Error::bad(format!(
            "The api-version query parameter is missing. Add ?api-version={} (supported: {}).",
            API_VERSIONS[0],
            API_VERSIONS.join(", ")
        ))),
        Some(v) => API_VERSIONS.iter().find(|s| **s == v).copied().ok_or_else(|| {
            Error::bad(format!(
                "The specified version ({}) is not recognized. Consider using the latest supported version ({}); supported: {}.",
                names::printable(v),
                API_VERSIONS[0],
                API_VERSIONS.join(", ")
            ))
        }),
    }
}

/// The host the client addressed: `:authority` on HTTP/2, `Host` on HTTP/1.1.
pub fn request_host<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> &'a str {
    uri.authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("")
}

pub async fn resolve_vault(state: &AppState, host: &str) -> Result<Arc<Vault>, Error> {
    let not_found = || {
        Error::not_found(
            "VaultNotFound",
            format!(
                "No vault answers at host '{}'. Vaults are addressed as https://{{vault}}.{}:{}; create one with 'keyfort vault create', or check the vault name.",
                names::printable(host),
                state.site.dns_suffix,
                state.site.public_port
            ),
        )
    };
    let name = state.site.vault_for_host(host).ok_or_else(not_found)?;
    // Only well-formed names are looked up (nothing else can exist).
    names::check_vault_name(&name).map_err(|_| not_found())?;
    state.kf.vaults.get(&name).await?.ok_or_else(not_found)
}

/// A 401 that tells the SDK where to get a token: the tenant's authority and
/// the resource. Neither value may contain ',' or '=' (the SDK splits on them).
pub fn challenge(state: &AppState, tenant_id: &str, err: Error) -> Response {
    // A server fault while checking the token is not the caller's: answer
    // (and log) it as such, rather than asking for a new token.
    if matches!(err, Error::Internal(_) | Error::Unavailable(_)) {
        return super::error::ApiError(err).into_response();
    }
    let value = format!(
        "Bearer authorization=\"{}/{}\", resource=\"{}\"",
        state.site.issuer_base,
        tenant_id,
        state.site.data_audience()
    );
    let message = err.public_message();
    let mut resp = (StatusCode::UNAUTHORIZED, axum::Json(error_body(&err))).into_response();
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp.extensions_mut().insert(FailureReason(message));
    resp
}

/// The caller, from a bearer token valid for this vault's tenant.
pub async fn authenticate(
    state: &AppState,
    vault: &Vault,
    headers: &HeaderMap,
) -> Result<Caller, Box<Response>> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        });
    let Some(token) = token else {
        return Err(Box::new(challenge(
            state,
            &vault.tenant_id,
            Error::Unauthorized("AKV10000: Request is missing a Bearer or PoP token.".into()),
        )));
    };
    let caller = state
        .kf
        .identity
        .verify(token.trim(), &state.site.data_audience())
        .await
        .map_err(|e| Box::new(challenge(state, &vault.tenant_id, e)))?;
    if caller.tenant_id != vault.tenant_id {
        return Err(Box::new(challenge(
            state,
            &vault.tenant_id,
            Error::Unauthorized(format!(
                "AKV10032: Invalid issuer. The token is for tenant {}, but vault '{}' belongs to tenant {}; get a token from that tenant's authority.",
                caller.tenant_id, vault.name, vault.tenant_id
            )),
        )));
    }
    Ok(caller)
}

impl From<ApiError> for Response {
    fn from(e: ApiError) -> Self {
        e.into_response()
    }
}

/// A 401 for the management plane.
pub fn unauthorized(message: String) -> Response {
    let mut resp = ApiError(Error::Unauthorized(message)).into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    resp
}

/// The caller, from a bearer token for the management audience.
pub async fn authenticate_management(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Caller, Box<Response>> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(|| {
            Box::new(unauthorized(
                "The request has no Bearer token; get one for the management audience.".into(),
            ))
        })?;
    state
        .kf
        .identity
        .verify(token.trim(), &state.site.management_audience())
        .await
        .map_err(|e| match e {
            Error::Internal(_) | Error::Unavailable(_) => Box::new(ApiError(e).into_response()),
            _ => Box::new(unauthorized(e.public_message())),
        })
}

/// Every `X-Forwarded-For` line (believed only from trusted proxies). A line
/// that is not text becomes a hop that does not parse, so the address is
/// unknown rather than the proxy's.
pub fn forwarded_for(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|h| h.to_str().unwrap_or("?"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions() {
        assert_eq!(check_api_version(Some("api-version=7.4")).unwrap(), "7.4");
        assert_eq!(
            check_api_version(Some("maxresults=2&api-version=2026-04-01")).unwrap(),
            "2026-04-01"
        );
        assert!(check_api_version(Some("api-version=2099-01-01")).is_err());
        assert!(check_api_version(Some("maxresults=2")).is_err());
        assert!(check_api_version(None).is_err());
    }
}
