//! The pipeline of every request to a vault host: the vault named by the
//! host, the operation named by method and path, the `api-version`, the
//! bearer token, the authorization decision, and only then the body and the
//! operation itself.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use keyfort_core::authz::{Authorized, Plane, scope_chain};
use keyfort_core::identity::Caller;
use keyfort_core::model::Vault;
use keyfort_core::network::Listener;
use keyfort_core::{Error, names};

use super::AppState;
use super::audit::AuditSlot;
use super::certificates::CertOp;
use super::error::ApiError;
use super::keys::KeyOp;
use super::rbac::RbacOp;
use super::request::forwarded_for;
use super::request::{authenticate, check_api_version, request_host, resolve_vault};
use super::secrets::SecretOp;

pub enum VaultOp {
    Secret(SecretOp),
    Key(KeyOp),
    Cert(CertOp),
    Rbac(RbacOp),
}

/// What an operation needs: an action on a plane, at the vault or one object.
pub struct Permission<'a> {
    pub plane: Plane,
    pub action: &'static str,
    pub object: Option<(&'a str, &'a str)>,
    /// Checked at the subscription, not the vault (tenant-wide changes).
    pub tenant_wide: bool,
    /// Another data action that also grants the operation.
    pub or_action: Option<&'static str>,
}

impl VaultOp {
    fn parse(method: &Method, path: &str) -> Result<Option<VaultOp>, Error> {
        if let Some(op) = RbacOp::parse(method, path)? {
            return Ok(Some(VaultOp::Rbac(op)));
        }
        if let Some(op) = KeyOp::parse(method, path) {
            return Ok(Some(VaultOp::Key(op)));
        }
        if let Some(op) = CertOp::parse(method, path) {
            return Ok(Some(VaultOp::Cert(op)));
        }
        Ok(SecretOp::parse(method, path).map(VaultOp::Secret))
    }

    fn audit_name(&self) -> &'static str {
        match self {
            VaultOp::Secret(op) => op.audit_name(),
            VaultOp::Key(op) => op.audit_name(),
            VaultOp::Cert(op) => op.audit_name(),
            VaultOp::Rbac(op) => op.audit_name(),
        }
    }

    fn permission(&self) -> Permission<'_> {
        match self {
            VaultOp::Secret(op) => Permission {
                plane: Plane::Data,
                action: op.action(),
                object: op.object().map(|n| ("secrets", n)),
                tenant_wide: false,
                or_action: None,
            },
            VaultOp::Key(op) => Permission {
                plane: Plane::Data,
                action: op.action(),
                object: op.object().map(|n| ("keys", n)),
                tenant_wide: false,
                or_action: op.also_allowed_by(),
            },
            VaultOp::Cert(op) => Permission {
                plane: Plane::Data,
                action: op.action(),
                object: op.object().map(|n| ("certificates", n)),
                tenant_wide: false,
                or_action: None,
            },
            VaultOp::Rbac(op) => Permission {
                plane: Plane::Control,
                action: op.action(),
                object: op.object(),
                tenant_wide: op.tenant_wide(),
                or_action: None,
            },
        }
    }

    fn body_limit(&self) -> usize {
        match self {
            VaultOp::Secret(op) => op.body_limit(),
            VaultOp::Key(op) => op.body_limit(),
            VaultOp::Cert(op) => op.body_limit(),
            VaultOp::Rbac(_) => 64 * 1024,
        }
    }
}

async fn authorize(
    state: &AppState,
    caller: &Caller,
    vault: &Vault,
    p: &Permission<'_>,
) -> Result<Authorized, Error> {
    match p.plane {
        Plane::Control if p.action == super::rbac::READ_DEFINITIONS => {
            state.kf.authz.tenant_member(caller, &vault.tenant_id)
        }
        Plane::Data => {
            let authz = &state.kf.authz;
            match (
                authz.authorize(caller, vault, p.action, p.object).await,
                p.or_action,
            ) {
                (Err(refused @ Error::Forbidden { .. }), Some(alternative)) => authz
                    .authorize(caller, vault, alternative, p.object)
                    .await
                    .map_err(|_| refused),
                (result, _) => result,
            }
        }
        Plane::Control => {
            let chain = if p.tenant_wide {
                scope_chain(&vault.subscription_id, None, None)
            } else {
                scope_chain(
                    &vault.subscription_id,
                    Some(&vault.resource_group),
                    Some((vault, p.object)),
                )
            };
            state
                .kf
                .authz
                .find_grant(caller, &vault.tenant_id, &chain, Plane::Control, p.action)
                .await?
                .ok_or_else(|| Error::Forbidden {
                    message: format!(
                        "Caller appid={};oid={} is not authorized to perform '{}' on vault '{}'. Role assignments are managed by Owners, User Access Administrators and Key Vault Data Access Administrators.",
                        caller.app_id, caller.object_id, p.action, vault.name
                    ),
                    inner: Some("ForbiddenByRbac"),
                })
        }
    }
}

fn too_large(limit: usize) -> Error {
    Error::TooLarge(format!(
        "The request body is larger than this operation accepts ({limit} bytes), or could not be read."
    ))
}

/// Bytes read past a limit before refusing, so a client that sends its
/// whole (too large) body still reads a clean 413 instead of a reset.
const DRAIN: usize = 1024 * 1024;

async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, Error> {
    let bytes = axum::body::to_bytes(body, limit.saturating_add(DRAIN))
        .await
        .map_err(|_| too_large(limit))?;
    if bytes.len() > limit {
        return Err(too_large(limit));
    }
    Ok(bytes)
}

/// The fallback handler for vault hosts.
pub async fn data_plane(
    State(state): State<Arc<AppState>>,
    Extension(slot): Extension<AuditSlot>,
    Extension(listener): Extension<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let (method, uri, headers) = (parts.method, parts.uri, parts.headers);
    // PIM approvals live at `/providers/...` with no scope: management, not a vault.
    if super::pim::is_approval_path(uri.path()) {
        return match read_body(body, 64 * 1024).await {
            Ok(b) => super::pim::pim(State(state), Extension(slot), method, uri, headers, b).await,
            Err(e) => ApiError(e).into_response(),
        };
    }
    let client = state
        .network
        .client_address(peer.ip(), &forwarded_for(&headers));
    match pipeline(
        &state,
        &slot,
        (client, &listener),
        method,
        uri,
        headers,
        body,
    )
    .await
    {
        Ok(r) => r,
        Err(r) => r,
    }
}

async fn pipeline(
    state: &AppState,
    slot: &AuditSlot,
    (client, listener): (IpAddr, &Listener),
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Response> {
    let fail = |e: Error| ApiError(e).into_response();
    let vault = resolve_vault(state, request_host(&uri, &headers))
        .await
        .map_err(fail)?;
    slot.update(|i| {
        i.vault = Some(vault.name.clone());
        i.tenant = Some(vault.tenant_id.clone());
        i.resource_id = Some(vault.arm_id());
    });
    // Network rules come first: a refused address learns nothing more.
    keyfort_core::network::check(&vault, client, listener, &state.network).map_err(fail)?;
    let op = VaultOp::parse(&method, uri.path())
        .map_err(fail)?
        .ok_or_else(|| {
            fail(Error::not_found(
                "NotFound",
                format!(
                    "{method} {} is not an operation of the Key Vault API.",
                    names::printable(uri.path())
                ),
            ))
        })?;
    let permission = op.permission();
    slot.update(|i| {
        i.operation = Some(op.audit_name());
        i.object = permission.object.map(|(k, n)| format!("{k}/{n}"));
    });
    check_api_version(uri.query()).map_err(fail)?;
    let caller = authenticate(state, &vault, &headers)
        .await
        .map_err(|challenge| *challenge)?;
    slot.set_caller(&caller);
    let grant = authorize(state, &caller, &vault, &permission)
        .await
        .map_err(fail)?;
    slot.update(|i| {
        i.authorization = Some(format!("{} ({})", grant.assignment_id, grant.role_name))
    });
    // The body is read only now: unauthenticated callers cannot make the server buffer it.
    // A declared length over the limit is refused before a byte is read.
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > op.body_limit().saturating_add(DRAIN)) {
        return Err(fail(too_large(op.body_limit())));
    }
    let body = read_body(body, op.body_limit()).await.map_err(fail)?;
    let result = match op {
        VaultOp::Secret(op) => super::secrets::run(state, &vault, op, uri.query(), &body).await,
        VaultOp::Key(op) => super::keys::run(state, &vault, op, uri.query(), &body).await,
        VaultOp::Cert(op) => super::certificates::run(state, &vault, op, uri.query(), &body).await,
        VaultOp::Rbac(op) => super::rbac::run(state, &vault, &grant, op, &body).await,
    };
    result.map_err(fail)
}
