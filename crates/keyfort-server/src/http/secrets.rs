//! The secrets API of Azure Key Vault (`secrets.json`, 2026-04-01). A request
//! is parsed into a [`SecretOp`], which knows its data action; the pipeline
//! in [`super::vault`] authorizes it, then [`run`] calls the secrets service
//! and renders the result.

use axum::Json;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use keyfort_core::certificates::Listed;
use keyfort_core::model::Vault;
use keyfort_core::secrets::{SecretKind, SecretView, SetSecret, UpdateSecret};
use keyfort_core::{Error, names};
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use super::AppState;
use super::certificates;
use super::objects::{
    Render, backup_reply, no_content, optional_str, paging, parse_attributes, parse_tags,
    required_str, restore_blob,
};

/// Largest JSON body for a secret write: a 25 KB value plus metadata, where
/// JSON may escape every byte as `\uXXXX` (the Python and .NET SDKs escape
/// all non-ASCII text), six bytes each. The value's own limit is checked on
/// the parsed value.
const MAX_WRITE_BODY: usize = 256 * 1024;

#[derive(Debug, PartialEq)]
pub enum SecretOp {
    Set(String),
    Get(String, Option<String>),
    Update(String, Option<String>),
    Delete(String),
    List,
    ListVersions(String),
    Backup(String),
    Restore,
    ListDeleted,
    GetDeleted(String),
    Recover(String),
    Purge(String),
}

impl SecretOp {
    /// Maps method and path to an operation; `None` if the API has no such route.
    pub fn parse(method: &Method, path: &str) -> Option<SecretOp> {
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        // A trailing slash (the Python SDK sends `/secrets/{name}/`) means "no version".
        let segs: Vec<&str> = match segs.split_last() {
            Some((&"", rest)) => rest.to_vec(),
            _ => segs,
        };
        let s = |i: usize| segs[i].to_owned();
        use SecretOp::*;
        Some(match (method.as_str(), segs.as_slice()) {
            ("GET", ["secrets"]) => List,
            ("POST", ["secrets", "restore"]) => Restore,
            ("PUT", ["secrets", _]) => Set(s(1)),
            ("DELETE", ["secrets", _]) => Delete(s(1)),
            ("GET", ["secrets", _]) => Get(s(1), None),
            ("PATCH", ["secrets", _]) => Update(s(1), None),
            ("GET", ["secrets", _, "versions"]) => ListVersions(s(1)),
            ("POST", ["secrets", _, "backup"]) => Backup(s(1)),
            ("GET", ["secrets", _, _]) => Get(s(1), Some(s(2))),
            ("PATCH", ["secrets", _, _]) => Update(s(1), Some(s(2))),
            ("GET", ["deletedsecrets"]) => ListDeleted,
            ("GET", ["deletedsecrets", _]) => GetDeleted(s(1)),
            ("DELETE", ["deletedsecrets", _]) => Purge(s(1)),
            ("POST", ["deletedsecrets", _, "recover"]) => Recover(s(1)),
            _ => return None,
        })
    }

    /// Azure's data action for this operation.
    pub fn action(&self) -> &'static str {
        use SecretOp::*;
        use keyfort_core::secrets::actions as a;
        match self {
            Set(_) => a::SET,
            Get(..) => a::GET,
            Update(..) => a::UPDATE,
            Delete(_) => a::DELETE,
            List | ListVersions(_) | ListDeleted | GetDeleted(_) => a::READ_METADATA,
            Backup(_) => a::BACKUP,
            Restore => a::RESTORE,
            Recover(_) => a::RECOVER,
            Purge(_) => a::PURGE,
        }
    }

    /// The operation name in audit records (Azure's AuditEvent names).
    pub fn audit_name(&self) -> &'static str {
        use SecretOp::*;
        match self {
            Set(_) => "SecretSet",
            Get(..) => "SecretGet",
            Update(..) => "SecretUpdate",
            Delete(_) => "SecretDelete",
            List => "SecretList",
            ListVersions(_) => "SecretListVersions",
            Backup(_) => "SecretBackup",
            Restore => "SecretRestore",
            ListDeleted => "SecretListDeleted",
            GetDeleted(_) => "SecretGetDeleted",
            Recover(_) => "SecretRecover",
            Purge(_) => "SecretPurge",
        }
    }

    /// The largest request body the operation reads.
    pub fn body_limit(&self) -> usize {
        match self {
            SecretOp::Restore => super::MAX_BODY,
            _ => MAX_WRITE_BODY,
        }
    }

    /// The secret the operation targets, if one.
    pub fn object(&self) -> Option<&str> {
        use SecretOp::*;
        match self {
            Set(n)
            | Get(n, _)
            | Update(n, _)
            | Delete(n)
            | ListVersions(n)
            | Backup(n)
            | GetDeleted(n)
            | Recover(n)
            | Purge(n) => Some(n),
            List | Restore | ListDeleted => None,
        }
    }
}

pub async fn run(
    state: &AppState,
    vault: &Vault,
    op: SecretOp,
    query: Option<&str>,
    body: &[u8],
) -> Result<Response, Error> {
    let secrets = &state.kf.secrets;
    let r = Render::new(state, vault, query)?;
    use SecretOp::*;
    Ok(match op {
        Set(name) => {
            let req = parse_set(body)?;
            state
                .kf
                .check_not_certificate_backed(vault, "secret", &name)
                .await?;
            let view = secrets.set(vault, &name, req).await?;
            new_version_events(state, vault, &view).await;
            Json(bundle(&r, &view)).into_response()
        }
        Get(name, version) => {
            let convert_to = out_content_type(query)?;
            match secrets.get(vault, &name, version.as_deref()).await {
                Ok(view) => Json(bundle(&r, &view)).into_response(),
                // A certificate's secret: its certificate and private key.
                Err(e) if certificates::is_not_found(&e) => {
                    match certificates::backing_secret(
                        state,
                        &r,
                        &name,
                        version.as_deref(),
                        convert_to,
                    )
                    .await
                    {
                        Ok(v) => Json(v).into_response(),
                        Err(other) if certificates::is_not_found(&other) => return Err(e),
                        Err(other) => return Err(other),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Update(name, version) => {
            let req = parse_update(body)?;
            let view = secrets
                .update(vault, &name, version.as_deref(), req)
                .await?;
            Json(bundle(&r, &view)).into_response()
        }
        Delete(name) => Json(bundle(&r, &secrets.delete(vault, &name).await?)).into_response(),
        List => {
            let (limit, after) = paging(query)?;
            let page = state
                .kf
                .list_with_certificates(secrets, vault, after.as_deref(), limit)
                .await?;
            Json(r.page(page, "secrets", limit, |listed| match listed {
                Listed::Plain(v) => item(&r, v, false),
                Listed::Certificate(c) => certificates::managed_secret_item(&r, c),
            }))
            .into_response()
        }
        ListVersions(name) => {
            let (limit, after) = paging(query)?;
            let page = secrets
                .list_versions(vault, &name, after.as_deref(), limit)
                .await?;
            let path = format!("secrets/{}/versions", name);
            Json(r.page(page, &path, limit, |v| item(&r, v, true))).into_response()
        }
        ListDeleted => {
            let (limit, after) = paging(query)?;
            let page = secrets.list_deleted(vault, after.as_deref(), limit).await?;
            Json(r.page(page, "deletedsecrets", limit, |v| item(&r, v, false))).into_response()
        }
        GetDeleted(name) => {
            Json(bundle(&r, &secrets.get_deleted(vault, &name).await?)).into_response()
        }
        Recover(name) => Json(bundle(&r, &secrets.recover(vault, &name).await?)).into_response(),
        Purge(name) => {
            secrets.purge(vault, &name).await?;
            no_content()
        }
        Backup(name) => {
            let key = state.kf.identity.backup_key(&vault.tenant_id).await?;
            backup_reply(secrets.backup(vault, &name, &key).await?)
        }
        Restore => {
            let blob = restore_blob(body)?;
            let key = state.kf.identity.backup_key(&vault.tenant_id).await?;
            let view = secrets.restore(vault, &blob, &key).await?;
            new_version_events(state, vault, &view).await;
            Json(bundle(&r, &view)).into_response()
        }
    })
}

/// A `SecretBundle` (or `DeletedSecretBundle`).
fn bundle(r: &Render, view: &SecretView) -> Value {
    let mut out = Map::new();
    if let Some(value) = &view.value {
        out.insert("value".into(), json!(value.as_str()));
    }
    let id = r.id("secrets", &view.name, Some(&view.meta.version));
    out.insert("id".into(), json!(id));
    common(r, &mut out, view);
    Value::Object(out)
}

/// A `SecretItem`: the id carries the version only in version listings.
fn item(r: &Render, view: &SecretView, with_version: bool) -> Value {
    let mut out = Map::new();
    let version = with_version.then_some(view.meta.version.as_str());
    out.insert("id".into(), json!(r.id("secrets", &view.name, version)));
    common(r, &mut out, view);
    Value::Object(out)
}

fn common(r: &Render, out: &mut Map<String, Value>, view: &SecretView) {
    let meta = &view.meta;
    r.common(
        out,
        "secrets",
        &view.name,
        &meta.attributes,
        meta.tags.as_ref(),
        view.deletion,
    );
    if let Some(ct) = &meta.content_type {
        out.insert("contentType".into(), json!(ct));
    }
}

async fn new_version_events(state: &AppState, vault: &Vault, view: &SecretView) {
    let url = state.site.vault_url(&vault.name);
    state
        .kf
        .new_version_events::<SecretKind>(vault, &url, view)
        .await;
}

/// `outContentType` converts a certificate's secret to PKCS#12 or PEM; an
/// unsupported format is refused, as the spec says. (Plain secrets are
/// returned as stored.)
fn out_content_type(query: Option<&str>) -> Result<Option<&'static str>, Error> {
    let given = super::request::query_param_decoded(query, "outContentType");
    match given.as_deref() {
        None => Ok(None),
        Some("application/x-pkcs12") => Ok(Some("application/x-pkcs12")),
        Some("application/x-pem-file") => Ok(Some("application/x-pem-file")),
        Some(other) => Err(Error::bad(format!(
            "outContentType '{}' is not supported: use application/x-pkcs12 or application/x-pem-file.",
            names::printable(other)
        ))),
    }
}

fn check_write_size(body: &[u8]) -> Result<(), Error> {
    if body.len() > MAX_WRITE_BODY {
        return Err(Error::TooLarge(format!(
            "The request body is {} bytes; a secret write may be at most {MAX_WRITE_BODY} bytes (values at most 25 KB).",
            body.len()
        )));
    }
    Ok(())
}

fn parse_set(body: &[u8]) -> Result<SetSecret, Error> {
    check_write_size(body)?;
    let map = super::body::object(body)?;
    Ok(SetSecret {
        value: Zeroizing::new(required_str(&map, "value")?.to_owned()),
        content_type: optional_str(&map, "contentType")?,
        tags: parse_tags(&map)?,
        attributes: parse_attributes(&map)?,
    })
}

fn parse_update(body: &[u8]) -> Result<UpdateSecret, Error> {
    check_write_size(body)?;
    let map = if body.is_empty() {
        Map::new()
    } else {
        super::body::object(body)?
    };
    if map.contains_key("value") {
        return Err(Error::bad(
            "An update cannot change a secret's value; set a new version instead.",
        ));
    }
    Ok(UpdateSecret {
        content_type: optional_str(&map, "contentType")?,
        tags: parse_tags(&map)?,
        attributes: parse_attributes(&map)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        use SecretOp::*;
        let p = |m: Method, path: &str| SecretOp::parse(&m, path);
        assert_eq!(p(Method::GET, "/secrets"), Some(List));
        assert_eq!(p(Method::GET, "/secrets/"), Some(List));
        assert_eq!(p(Method::GET, "/secrets/a/"), Some(Get("a".into(), None)));
        assert_eq!(
            p(Method::GET, "/secrets/a/abc"),
            Some(Get("a".into(), Some("abc".into())))
        );
        assert_eq!(p(Method::PUT, "/secrets/a"), Some(Set("a".into())));
        assert_eq!(
            p(Method::GET, "/secrets/a/versions"),
            Some(ListVersions("a".into()))
        );
        assert_eq!(p(Method::POST, "/secrets/restore"), Some(Restore));
        assert_eq!(
            p(Method::POST, "/deletedsecrets/a/recover"),
            Some(Recover("a".into()))
        );
        assert_eq!(
            p(Method::DELETE, "/deletedsecrets/a"),
            Some(Purge("a".into()))
        );
        assert_eq!(p(Method::GET, "/keys/a"), None);
        assert_eq!(p(Method::PUT, "/secrets/a/b/c"), None);
    }

    #[test]
    fn bodies() {
        assert!(parse_set(br#"{"value": 5}"#).is_err());
        assert!(parse_set(br#"{"contentType": "x"}"#).is_err());
        assert!(parse_set(b"not json").is_err());
        assert!(parse_set(br#"{"value": "v", "attributes": {"enabled": "yes"}}"#).is_err());
        assert!(parse_set(br#"{"value": "v", "tags": {"a": 1}}"#).is_err());
        let ok =
            parse_set(br#"{"value": "v", "tags": {"a": "b"}, "attributes": {"exp": 2000000000}}"#)
                .unwrap();
        assert_eq!(ok.attributes.exp, Some(Some(2_000_000_000)));
        assert!(parse_update(br#"{"value": "v"}"#).is_err());
        let e = parse_set(br#"{"value": "v", "attributes": {"enabled": "hunter2"}}"#)
            .err()
            .unwrap();
        assert!(
            !e.to_string().contains("hunter2"),
            "errors never echo input values"
        );
    }
}
