//! The secrets API of Azure Key Vault (`secrets.json`, 2026-04-01). A request
//! is parsed into a [`SecretOp`], which knows its data action; the pipeline
//! in [`super::vault`] authorizes it, then [`run`] calls the secrets service
//! and renders the result.

use axum::Json;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use keyfort_core::model::{SecretMeta, Tags, Vault};
use keyfort_core::secrets::{AttributeChanges, Page, SecretView, SetSecret, UpdateSecret};
use keyfort_core::{Error, names};
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use super::AppState;

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
    let r = Render {
        state,
        vault,
        api_version: super::request::check_api_version(query)?,
    };
    use SecretOp::*;
    Ok(match op {
        Set(name) => {
            let req = parse_set(body)?;
            let view = secrets.set(vault, &name, req).await?;
            new_version_events(state, vault, &view).await;
            Json(r.bundle(&view)).into_response()
        }
        Get(name, version) => {
            check_out_content_type(query)?;
            Json(r.bundle(&secrets.get(vault, &name, version.as_deref()).await?)).into_response()
        }
        Update(name, version) => {
            let req = parse_update(body)?;
            Json(
                r.bundle(
                    &secrets
                        .update(vault, &name, version.as_deref(), req)
                        .await?,
                ),
            )
            .into_response()
        }
        Delete(name) => Json(r.bundle(&secrets.delete(vault, &name).await?)).into_response(),
        List => {
            let (limit, after) = paging(query)?;
            let page = secrets.list(vault, after.as_deref(), limit).await?;
            Json(r.page(page, "secrets", limit, |v| r.item(v, false))).into_response()
        }
        ListVersions(name) => {
            let (limit, after) = paging(query)?;
            let page = secrets
                .list_versions(vault, &name, after.as_deref(), limit)
                .await?;
            let path = format!("secrets/{}/versions", name);
            Json(r.page(page, &path, limit, |v| r.item(v, true))).into_response()
        }
        ListDeleted => {
            let (limit, after) = paging(query)?;
            let page = secrets.list_deleted(vault, after.as_deref(), limit).await?;
            Json(r.page(page, "deletedsecrets", limit, |v| r.item(v, false))).into_response()
        }
        GetDeleted(name) => {
            Json(r.bundle(&secrets.get_deleted(vault, &name).await?)).into_response()
        }
        Recover(name) => Json(r.bundle(&secrets.recover(vault, &name).await?)).into_response(),
        Purge(name) => {
            secrets.purge(vault, &name).await?;
            StatusCode::NO_CONTENT.into_response()
        }
        Backup(name) => {
            let key = state.kf.identity.backup_key(&vault.tenant_id).await?;
            let blob = secrets.backup(vault, &name, &key).await?;
            Json(json!({ "value": B64.encode(blob) })).into_response()
        }
        Restore => {
            let map = super::body::object(body)?;
            let blob = required_str(&map, "value")?;
            let blob = B64.decode(blob.trim_end_matches('=')).map_err(|_| {
                Error::bad(
                    "'value' must be the base64url backup blob returned by a backup operation.",
                )
            })?;
            let key = state.kf.identity.backup_key(&vault.tenant_id).await?;
            let view = secrets.restore(vault, &blob, &key).await?;
            new_version_events(state, vault, &view).await;
            Json(r.bundle(&view)).into_response()
        }
    })
}

/// Queues `SecretNewVersionCreated` (and expiry events, if the version is
/// already near or past its `exp`). The write has happened: a failure to queue
/// is logged, not returned.
async fn new_version_events(state: &AppState, vault: &Vault, view: &SecretView) {
    let url = state.site.vault_url(&vault.name);
    let data = state.kf.secret_event_data(&url, vault, view);
    let queued = async {
        state
            .kf
            .publish(vault, "SecretNewVersionCreated", &view.name, data)
            .await?;
        state.kf.expiry_events(vault, &url, view).await
    };
    if let Err(e) = queued.await {
        tracing::warn!(vault = %vault.name, error = %e, "could not queue secret events");
    }
}

/// `maxresults` (1–25, default 25) and the continuation token.
fn paging(query: Option<&str>) -> Result<(usize, Option<String>), Error> {
    let mut limit = 25;
    let mut after = None;
    for kv in query.unwrap_or("").split('&') {
        if let Some(v) = kv.strip_prefix("maxresults=") {
            limit = v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=25).contains(n))
                .ok_or_else(|| Error::bad("maxresults must be an integer between 1 and 25."))?;
        } else if let Some(v) = kv
            .strip_prefix("$skiptoken=")
            .or_else(|| kv.strip_prefix("%24skiptoken="))
        {
            let raw = B64
                .decode(v)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    Error::bad(
                        "The $skiptoken is not one this server issued; start the listing again.",
                    )
                })?;
            after = Some(raw);
        }
    }
    Ok((limit, after))
}

/// `outContentType` converts a certificate-backed secret; an unsupported
/// format is refused, as the spec says. (Plain secrets are returned as stored.)
fn check_out_content_type(query: Option<&str>) -> Result<(), Error> {
    let given = super::request::query_param_decoded(query, "outContentType");
    match given.as_deref() {
        None | Some("application/x-pkcs12") | Some("application/x-pem-file") => Ok(()),
        Some(other) => Err(Error::bad(format!(
            "outContentType '{}' is not supported: use application/x-pkcs12 or application/x-pem-file.",
            names::printable(other)
        ))),
    }
}

struct Render<'a> {
    state: &'a AppState,
    vault: &'a Vault,
    /// The request's api-version, which `nextLink`s carry on.
    api_version: &'static str,
}

impl Render<'_> {
    fn base(&self) -> String {
        self.state.site.vault_url(&self.vault.name)
    }

    fn attributes(&self, meta: &SecretMeta) -> Value {
        let a = &meta.attributes;
        let mut v = json!({
            "enabled": a.enabled,
            "created": a.created,
            "updated": a.updated,
            "recoveryLevel": self.vault.recovery_level(),
            "recoverableDays": self.vault.retention_days,
        });
        if let Some(nbf) = a.nbf {
            v["nbf"] = json!(nbf);
        }
        if let Some(exp) = a.exp {
            v["exp"] = json!(exp);
        }
        v
    }

    fn common(&self, out: &mut Map<String, Value>, view: &SecretView) {
        out.insert("attributes".into(), self.attributes(&view.meta));
        if let Some(ct) = &view.meta.content_type {
            out.insert("contentType".into(), json!(ct));
        }
        if let Some(tags) = &view.meta.tags {
            out.insert("tags".into(), json!(tags));
        }
        if let Some(d) = view.deletion {
            out.insert(
                "recoveryId".into(),
                json!(format!("{}/deletedsecrets/{}", self.base(), view.name)),
            );
            out.insert("deletedDate".into(), json!(d.deleted_date));
            out.insert("scheduledPurgeDate".into(), json!(d.scheduled_purge_date));
        }
    }

    /// A `SecretBundle` (or `DeletedSecretBundle`).
    fn bundle(&self, view: &SecretView) -> Value {
        let mut out = Map::new();
        if let Some(value) = &view.value {
            out.insert("value".into(), json!(value.as_str()));
        }
        out.insert(
            "id".into(),
            json!(format!(
                "{}/secrets/{}/{}",
                self.base(),
                view.name,
                view.meta.version
            )),
        );
        self.common(&mut out, view);
        Value::Object(out)
    }

    /// A `SecretItem`: the id carries the version only in version listings.
    fn item(&self, view: &SecretView, with_version: bool) -> Value {
        let mut out = Map::new();
        let id = if with_version {
            format!(
                "{}/secrets/{}/{}",
                self.base(),
                view.name,
                view.meta.version
            )
        } else {
            format!("{}/secrets/{}", self.base(), view.name)
        };
        out.insert("id".into(), json!(id));
        self.common(&mut out, view);
        Value::Object(out)
    }

    fn page(
        &self,
        page: Page<SecretView>,
        path: &str,
        limit: usize,
        item: impl Fn(&SecretView) -> Value,
    ) -> Value {
        let next = page.next.map(|after| {
            format!(
                "{}/{path}?api-version={}&maxresults={limit}&$skiptoken={}",
                self.base(),
                self.api_version,
                B64.encode(after)
            )
        });
        json!({ "value": page.items.iter().map(item).collect::<Vec<_>>(), "nextLink": next })
    }
}

fn required_str<'a>(map: &'a Map<String, Value>, field: &str) -> Result<&'a str, Error> {
    match map.get(field) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Error::bad(format!("'{field}' must be a string."))),
        None => Err(Error::bad(format!("The property '{field}' is required."))),
    }
}

fn optional_str(map: &Map<String, Value>, field: &str) -> Result<Option<String>, Error> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::bad(format!("'{field}' must be a string."))),
    }
}

fn parse_tags(map: &Map<String, Value>) -> Result<Option<Tags>, Error> {
    match map.get("tags") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(t)) => t
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(Error::bad(format!(
                    "Tag '{}' must have a string value.",
                    names::printable(k)
                ))),
            })
            .collect::<Result<Tags, Error>>()
            .map(Some),
        Some(_) => Err(Error::bad("'tags' must be an object of string values.")),
    }
}

fn parse_attributes(map: &Map<String, Value>) -> Result<AttributeChanges, Error> {
    let attrs = match map.get("attributes") {
        None | Some(Value::Null) => return Ok(AttributeChanges::default()),
        Some(Value::Object(a)) => a,
        Some(_) => return Err(Error::bad("'attributes' must be an object.")),
    };
    let enabled = match attrs.get("enabled") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(Error::bad("'attributes.enabled' must be true or false.")),
    };
    let time = |field: &str| -> Result<Option<Option<i64>>, Error> {
        match attrs.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .filter(|t| (0..=253_402_300_799).contains(t))
                .map(|t| Some(Some(t)))
                .ok_or_else(|| {
                    Error::bad(format!(
                        "'attributes.{field}' must be a Unix time in seconds."
                    ))
                }),
            Some(_) => Err(Error::bad(format!(
                "'attributes.{field}' must be a Unix time in seconds."
            ))),
        }
    };
    Ok(AttributeChanges {
        enabled,
        nbf: time("nbf")?,
        exp: time("exp")?,
    })
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

    #[test]
    fn paging_rules() {
        assert_eq!(paging(None).unwrap().0, 25);
        assert_eq!(paging(Some("maxresults=3")).unwrap().0, 3);
        assert!(paging(Some("maxresults=0")).is_err());
        assert!(paging(Some("maxresults=26")).is_err());
        let token = B64.encode("abc");
        assert_eq!(
            paging(Some(&format!("$skiptoken={token}")))
                .unwrap()
                .1
                .as_deref(),
            Some("abc")
        );
        assert!(paging(Some("$skiptoken=!!")).is_err());
    }
}
