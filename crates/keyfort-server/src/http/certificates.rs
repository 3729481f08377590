//! The certificates API of Azure Key Vault (`certificates.json`): create
//! (self-signed, or a CSR for an outside CA and a merge), import (PKCS#12 or
//! PEM), get, list, versions, update, policy, the pending operation, the
//! soft-delete lifecycle, backup and restore. Certificate issuer objects and
//! contacts are not offered and say so.

use axum::Json;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64STD;
use keyfort_core::Error;
use keyfort_core::certificates::{
    CertKind, CertOperation, CertPolicy, CertView, CreateCertificate, ImportCertificate, PEM,
    PKCS12, UpdateCertificate, is_pem,
};
use keyfort_core::model::Vault;
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use super::AppState;
use super::objects::{
    Render, backup_reply, no_content, optional_str, paging, parse_tags, required_str, restore_blob,
};

/// A PKCS#12 file of a long chain fits easily; restores are larger.
const MAX_CERT_BODY: usize = 1024 * 1024;

#[derive(Debug, PartialEq)]
pub enum CertOp {
    Create(String),
    Import(String),
    Get(String, Option<String>),
    Update(String, Option<String>),
    Delete(String),
    List,
    ListVersions(String),
    GetPolicy(String),
    UpdatePolicy(String),
    GetOperation(String),
    CancelOperation(String),
    DeleteOperation(String),
    Merge(String),
    Backup(String),
    Restore,
    ListDeleted,
    GetDeleted(String),
    Recover(String),
    Purge(String),
    /// Issuers and contacts: named so the refusal is clear.
    Unsupported(&'static str),
}

impl CertOp {
    pub fn parse(method: &Method, path: &str) -> Option<CertOp> {
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let segs: Vec<&str> = match segs.split_last() {
            Some((&"", rest)) => rest.to_vec(),
            _ => segs,
        };
        let s = |i: usize| segs[i].to_owned();
        use CertOp::*;
        Some(match (method.as_str(), segs.as_slice()) {
            (_, ["certificates", "issuers", ..]) => Unsupported("Certificate issuers"),
            (_, ["certificates", "contacts"]) => Unsupported("Certificate contacts"),
            ("GET", ["certificates"]) => List,
            ("POST", ["certificates", "restore"]) => Restore,
            ("DELETE", ["certificates", _]) => Delete(s(1)),
            ("GET", ["certificates", _]) => Get(s(1), None),
            ("PATCH", ["certificates", _]) => Update(s(1), None),
            ("POST", ["certificates", _, "create"]) => Create(s(1)),
            ("POST", ["certificates", _, "import"]) => Import(s(1)),
            ("POST", ["certificates", _, "backup"]) => Backup(s(1)),
            ("GET", ["certificates", _, "versions"]) => ListVersions(s(1)),
            ("GET", ["certificates", _, "policy"]) => GetPolicy(s(1)),
            ("PATCH", ["certificates", _, "policy"]) => UpdatePolicy(s(1)),
            ("GET", ["certificates", _, "pending"]) => GetOperation(s(1)),
            ("PATCH", ["certificates", _, "pending"]) => CancelOperation(s(1)),
            ("DELETE", ["certificates", _, "pending"]) => DeleteOperation(s(1)),
            ("POST", ["certificates", _, "pending", "merge"]) => Merge(s(1)),
            ("GET", ["certificates", _, _]) => Get(s(1), Some(s(2))),
            ("PATCH", ["certificates", _, _]) => Update(s(1), Some(s(2))),
            ("GET", ["deletedcertificates"]) => ListDeleted,
            ("GET", ["deletedcertificates", _]) => GetDeleted(s(1)),
            ("DELETE", ["deletedcertificates", _]) => Purge(s(1)),
            ("POST", ["deletedcertificates", _, "recover"]) => Recover(s(1)),
            _ => return None,
        })
    }

    pub fn action(&self) -> &'static str {
        use CertOp::*;
        use keyfort_core::certificates::actions as a;
        match self {
            Create(_) | Merge(_) => a::CREATE,
            Import(_) => a::IMPORT,
            Get(..) | List | ListVersions(_) | GetPolicy(_) | GetOperation(_) | ListDeleted
            | GetDeleted(_) | Unsupported(_) => a::READ,
            Update(..) | UpdatePolicy(_) | CancelOperation(_) | DeleteOperation(_) => a::UPDATE,
            Delete(_) => a::DELETE,
            Backup(_) => a::BACKUP,
            Restore => a::RESTORE,
            Recover(_) => a::RECOVER,
            Purge(_) => a::PURGE,
        }
    }

    pub fn audit_name(&self) -> &'static str {
        use CertOp::*;
        match self {
            Create(_) => "CertificateCreate",
            Import(_) => "CertificateImport",
            Get(..) => "CertificateGet",
            Update(..) => "CertificateUpdate",
            Delete(_) => "CertificateDelete",
            List => "CertificateList",
            ListVersions(_) => "CertificateListVersions",
            GetPolicy(_) => "CertificatePolicyGet",
            UpdatePolicy(_) => "CertificatePolicyUpdate",
            GetOperation(_) => "CertificatePendingGet",
            CancelOperation(_) => "CertificatePendingUpdate",
            DeleteOperation(_) => "CertificatePendingDelete",
            Merge(_) => "CertificatePendingMerge",
            Backup(_) => "CertificateBackup",
            Restore => "CertificateRestore",
            ListDeleted => "CertificateListDeleted",
            GetDeleted(_) => "CertificateGetDeleted",
            Recover(_) => "CertificateRecover",
            Purge(_) => "CertificatePurge",
            Unsupported(_) => "CertificateUnsupported",
        }
    }

    pub fn body_limit(&self) -> usize {
        match self {
            CertOp::Restore => super::MAX_BODY,
            _ => MAX_CERT_BODY,
        }
    }

    pub fn object(&self) -> Option<&str> {
        use CertOp::*;
        match self {
            Create(n)
            | Import(n)
            | Get(n, _)
            | Update(n, _)
            | Delete(n)
            | ListVersions(n)
            | GetPolicy(n)
            | UpdatePolicy(n)
            | GetOperation(n)
            | CancelOperation(n)
            | DeleteOperation(n)
            | Merge(n)
            | Backup(n)
            | GetDeleted(n)
            | Recover(n)
            | Purge(n) => Some(n),
            List | Restore | ListDeleted | Unsupported(_) => None,
        }
    }
}

pub async fn run(
    state: &AppState,
    vault: &Vault,
    op: CertOp,
    query: Option<&str>,
    body: &[u8],
) -> Result<Response, Error> {
    let certs = &state.kf.certificates;
    let r = Render::new(state, vault, query)?;
    use CertOp::*;
    Ok(match op {
        Unsupported(what) => {
            return Err(Error::bad(format!(
                "{what} are not supported by this vault: certificates are self-signed (issuer 'Self') or signed by your CA through a merge (issuer 'Unknown')."
            )));
        }
        Create(name) => {
            let req = parse_create(body)?;
            state.kf.check_free_for_certificate(vault, &name).await?;
            let op = certs.create(vault, &name, req).await?;
            if let Some(version) = &op.target_version {
                let view = certs.get(vault, &name, Some(version)).await?;
                new_version(&r, &view).await;
            }
            // The 202 reports the operation as accepted and running, as Azure
            // always does: the SDKs' pollers only ever fetch the result of an
            // operation that started in progress. Its first poll finds it done.
            let accepted = CertOperation {
                status: "inProgress".into(),
                ..op
            };
            (StatusCode::ACCEPTED, Json(operation(&r, &accepted))).into_response()
        }
        Import(name) => {
            let req = parse_import(body)?;
            state.kf.check_free_for_certificate(vault, &name).await?;
            let view = certs.import(vault, &name, req).await?;
            new_version(&r, &view).await;
            Json(bundle(&r, &view)).into_response()
        }
        Merge(name) => {
            let map = super::body::object(body)?;
            let x5c = match map.get("x5c") {
                Some(Value::Array(items)) if !items.is_empty() => items
                    .iter()
                    .map(|c| {
                        c.as_str()
                            .and_then(|c| B64STD.decode(c).ok())
                            .ok_or_else(|| {
                                Error::bad("'x5c' must be an array of base64 DER certificates.")
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                _ => return Err(Error::bad("The property 'x5c' is required.")),
            };
            let view = certs
                .merge(vault, &name, x5c, parse_tags(&map)?, enabled(&map)?)
                .await?;
            new_version(&r, &view).await;
            (StatusCode::CREATED, Json(bundle(&r, &view))).into_response()
        }
        Get(name, version) => Json(bundle(
            &r,
            &certs.get(vault, &name, version.as_deref()).await?,
        ))
        .into_response(),
        Update(name, version) => {
            let req = parse_update(body)?;
            let view = certs.update(vault, &name, version.as_deref(), req).await?;
            Json(bundle(&r, &view)).into_response()
        }
        Delete(name) => Json(bundle(&r, &certs.delete(vault, &name).await?)).into_response(),
        List => {
            let (limit, after) = paging(query)?;
            let page = certs.list(vault, after.as_deref(), limit).await?;
            Json(r.page(page, "certificates", limit, |v| item(&r, v, false))).into_response()
        }
        ListVersions(name) => {
            let (limit, after) = paging(query)?;
            let page = certs
                .list_versions(vault, &name, after.as_deref(), limit)
                .await?;
            let path = format!("certificates/{name}/versions");
            Json(r.page(page, &path, limit, |v| item(&r, v, true))).into_response()
        }
        ListDeleted => {
            let (limit, after) = paging(query)?;
            let page = certs.list_deleted(vault, after.as_deref(), limit).await?;
            Json(r.page(page, "deletedcertificates", limit, |v| item(&r, v, false))).into_response()
        }
        GetDeleted(name) => {
            Json(bundle(&r, &certs.get_deleted(vault, &name).await?)).into_response()
        }
        Recover(name) => Json(bundle(&r, &certs.recover(vault, &name).await?)).into_response(),
        Purge(name) => {
            certs.purge(vault, &name).await?;
            no_content()
        }
        GetPolicy(name) => {
            let view = certs.head(vault, &name).await?;
            Json(policy(&r, &view)).into_response()
        }
        UpdatePolicy(name) => {
            let current = certs.policy(vault, &name).await?;
            let patched = patch_policy(&current, body)?;
            certs.set_policy(vault, &name, patched).await?;
            Json(policy(&r, &certs.head(vault, &name).await?)).into_response()
        }
        GetOperation(name) => {
            Json(operation(&r, &certs.operation(vault, &name).await?)).into_response()
        }
        CancelOperation(name) => {
            let map = super::body::object(body)?;
            if map.get("cancellation_requested") != Some(&json!(true)) {
                return Err(Error::bad(
                    "Only cancellation is supported: send {\"cancellation_requested\": true}.",
                ));
            }
            Json(operation(&r, &certs.cancel_operation(vault, &name).await?)).into_response()
        }
        DeleteOperation(name) => {
            Json(operation(&r, &certs.delete_operation(vault, &name).await?)).into_response()
        }
        Backup(name) => {
            let key = state.kf.identity.backup_key(&vault.tenant_id).await?;
            backup_reply(certs.backup(vault, &name, &key).await?)
        }
        Restore => {
            let blob = restore_blob(body)?;
            let key = state.kf.identity.backup_key(&vault.tenant_id).await?;
            let view = certs.restore(vault, &blob, &key).await?;
            new_version(&r, &view).await;
            Json(bundle(&r, &view)).into_response()
        }
    })
}

async fn new_version(r: &Render<'_>, view: &CertView) {
    let url = r.base();
    r.state
        .kf
        .new_version_events::<CertKind>(r.vault, &url, view)
        .await;
}

/// A `CertificateBundle` (or `DeletedCertificateBundle`).
fn bundle(r: &Render, view: &CertView) -> Value {
    let meta = &view.meta;
    let version = Some(meta.version.as_str());
    let mut out = Map::new();
    out.insert(
        "id".into(),
        json!(r.id("certificates", &view.name, version)),
    );
    out.insert("kid".into(), json!(r.id("keys", &view.name, version)));
    out.insert("sid".into(), json!(r.id("secrets", &view.name, version)));
    out.insert("x5t".into(), json!(meta.x5t));
    out.insert("cer".into(), json!(meta.cer));
    out.insert("contentType".into(), json!(meta.content_type));
    out.insert("policy".into(), policy(r, view));
    common(r, &mut out, view);
    Value::Object(out)
}

/// A `CertificateItem`.
fn item(r: &Render, view: &CertView, with_version: bool) -> Value {
    let mut out = Map::new();
    let version = with_version.then_some(view.meta.version.as_str());
    out.insert(
        "id".into(),
        json!(r.id("certificates", &view.name, version)),
    );
    out.insert("x5t".into(), json!(view.meta.x5t));
    common(r, &mut out, view);
    Value::Object(out)
}

fn common(r: &Render, out: &mut Map<String, Value>, view: &CertView) {
    let meta = &view.meta;
    r.common(
        out,
        "certificates",
        &view.name,
        &meta.attributes,
        meta.tags.as_ref(),
        view.deletion,
    );
}

/// The policy with its id and attributes, as Azure shows it.
fn policy(r: &Render, view: &CertView) -> Value {
    let mut p = serde_json::to_value(&view.meta.policy).unwrap_or_else(|_| json!({}));
    let a = &view.meta.attributes;
    p["id"] = json!(format!("{}/policy", r.id("certificates", &view.name, None)));
    p["attributes"] = json!({ "enabled": a.enabled, "created": a.created, "updated": a.updated });
    p
}

/// A `CertificateOperation`: never the pending key.
fn operation(r: &Render, op: &CertOperation) -> Value {
    let mut out = json!({
        "id": format!("{}/pending", r.id("certificates", &op.name, None)),
        "issuer": op.issuer,
        "cancellation_requested": op.cancellation_requested,
        "status": op.status,
        "status_details": op.status_details,
        "request_id": op.request_id,
    });
    if let Some(csr) = &op.csr {
        out["csr"] = json!(csr);
    }
    if op.status == "completed" {
        out["target"] = json!(r.id("certificates", &op.name, None));
    }
    out
}

fn enabled(map: &Map<String, Value>) -> Result<Option<bool>, Error> {
    let Some(attrs) = map.get("attributes").filter(|a| !a.is_null()) else {
        return Ok(None);
    };
    let attrs = attrs
        .as_object()
        .ok_or_else(|| Error::bad("'attributes' must be an object."))?;
    if attrs.get("nbf").is_some_and(|v| !v.is_null())
        || attrs.get("exp").is_some_and(|v| !v.is_null())
    {
        return Err(Error::bad(
            "A certificate's nbf and exp come from the certificate itself and cannot be set.",
        ));
    }
    match attrs.get("enabled") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(Error::bad("'attributes.enabled' must be true or false.")),
    }
}

fn parse_policy(value: &Value) -> Result<CertPolicy, Error> {
    let mut v = value.clone();
    // Missing sections take Azure's defaults.
    for section in ["key_props", "secret_props", "x509_props"] {
        if v.get(section).is_none_or(Value::is_null) {
            v[section] = json!({});
        }
    }
    if v.get("issuer").is_none_or(Value::is_null) {
        return Err(Error::bad(
            "The policy needs an issuer: {\"name\": \"Self\"} or {\"name\": \"Unknown\"}.",
        ));
    }
    serde_json::from_value(v).map_err(|e| {
        Error::bad(format!(
            "The certificate policy is not valid ({}); see CertificatePolicy in the Key Vault API.",
            e.classify_name()
        ))
    })
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    /// serde's messages may quote input; name only the kind of problem.
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Data => "a field has the wrong type or is missing",
            _ => "it is not well-formed",
        }
    }
}

/// A PATCH of the policy: members given replace the current ones, member
/// by member inside objects (as Azure merges), arrays whole.
fn patch_policy(current: &CertPolicy, body: &[u8]) -> Result<CertPolicy, Error> {
    let mut patch = Value::Object(super::body::object(body)?);
    if let Some(p) = patch.as_object_mut() {
        p.remove("id");
        p.remove("attributes");
    }
    let mut merged = serde_json::to_value(current).map_err(Error::from)?;
    merge_json(&mut merged, patch);
    parse_policy(&merged)
}

fn merge_json(into: &mut Value, patch: Value) {
    match (into, patch) {
        (Value::Object(into), Value::Object(patch)) => {
            for (k, v) in patch {
                if v.is_null() {
                    continue;
                }
                merge_json(into.entry(k).or_insert(Value::Null), v);
            }
        }
        (into, patch) => *into = patch,
    }
}

fn parse_create(body: &[u8]) -> Result<CreateCertificate, Error> {
    let map = super::body::object(body)?;
    let policy = map
        .get("policy")
        .filter(|p| !p.is_null())
        .ok_or_else(|| Error::bad("The property 'policy' is required."))?;
    Ok(CreateCertificate {
        policy: parse_policy(policy)?,
        tags: parse_tags(&map)?,
        enabled: enabled(&map)?,
    })
}

fn parse_import(body: &[u8]) -> Result<ImportCertificate, Error> {
    let map = super::body::object(body)?;
    // The value holds the private key: errors about it never quote it.
    let value = required_str(&map, "value")?;
    // PEM comes as text or base64 of the text; a PFX as base64.
    let bytes = if is_pem(value.as_bytes()) {
        value.trim().as_bytes().to_vec()
    } else {
        B64STD
            .decode(value.trim())
            .map_err(|_| Error::bad("'value' must be a base64 PKCS#12 file or PEM text."))?
    };
    let policy = match map.get("policy").filter(|p| !p.is_null()) {
        None => None,
        Some(p) => {
            let mut p = p.clone();
            if p.get("issuer").is_none_or(Value::is_null) {
                p["issuer"] = json!({ "name": "Unknown" });
            }
            // Without a content type the secret keeps the format imported.
            if p.pointer("/secret_props/contentType")
                .is_none_or(Value::is_null)
            {
                let format = if is_pem(&bytes) { PEM } else { PKCS12 };
                p["secret_props"] = json!({ "contentType": format });
            }
            Some(parse_policy(&p)?)
        }
    };
    Ok(ImportCertificate {
        value: Zeroizing::new(bytes),
        password: Zeroizing::new(optional_str(&map, "pwd")?.unwrap_or_default()),
        policy,
        tags: parse_tags(&map)?,
        enabled: enabled(&map)?,
    })
}

fn parse_update(body: &[u8]) -> Result<UpdateCertificate, Error> {
    let map = if body.is_empty() {
        Map::new()
    } else {
        super::body::object(body)?
    };
    let policy = match map.get("policy").filter(|p| !p.is_null()) {
        None => None,
        Some(p) => Some(parse_policy(p)?),
    };
    Ok(UpdateCertificate {
        enabled: enabled(&map)?,
        tags: parse_tags(&map)?,
        policy,
    })
}

/// The secret behind a certificate version, as `GET /secrets/{name}` shows
/// it when no plain secret has that name: the certificate and its private
/// key in the policy's content type, marked managed.
pub async fn backing_secret(
    state: &AppState,
    r: &Render<'_>,
    name: &str,
    version: Option<&str>,
    out_content_type: Option<&str>,
) -> Result<Value, Error> {
    let view = state
        .kf
        .certificates
        .backing(r.vault, name, version)
        .await?;
    if !view.meta.attributes.enabled {
        return Err(Error::Forbidden {
            message: "Operation get is not allowed on a disabled secret.".into(),
            inner: Some("SecretDisabled"),
        });
    }
    let key = view.value.clone().expect("backing reads the key");
    let meta = view.meta.clone();
    let format = out_content_type
        .unwrap_or(&view.meta.content_type)
        .to_owned();
    let value = tokio::task::spawn_blocking(move || {
        keyfort_core::certificates::secret_value(&meta, &key, &format)
    })
    .await
    .map_err(|_| Error::Internal("the export task failed".into()))??;
    let v = Some(view.meta.version.as_str());
    let mut out = Map::new();
    out.insert("value".into(), json!(value.as_str()));
    out.insert("id".into(), json!(r.id("secrets", &view.name, v)));
    let content_type = out_content_type.unwrap_or(&view.meta.content_type);
    out.insert("contentType".into(), json!(content_type));
    out.insert("kid".into(), json!(r.id("keys", &view.name, v)));
    out.insert("managed".into(), json!(true));
    common(r, &mut out, &view);
    Ok(Value::Object(out))
}

/// The key behind a certificate version, as `GET /keys/{name}` shows it.
pub async fn backing_key(
    state: &AppState,
    r: &Render<'_>,
    name: &str,
    version: Option<&str>,
) -> Result<Value, Error> {
    let view = state.kf.certificates.get(r.vault, name, version).await?;
    let meta = &view.meta;
    let mut key = serde_json::to_value(&meta.public).unwrap_or_else(|_| json!({}));
    key["kid"] = json!(r.id("keys", &view.name, Some(&meta.version)));
    let ops: &[&str] = if meta.public.kty.as_deref() == Some("RSA") {
        &[
            "sign",
            "verify",
            "encrypt",
            "decrypt",
            "wrapKey",
            "unwrapKey",
        ]
    } else {
        &["sign", "verify"]
    };
    key["key_ops"] = json!(ops);
    let mut out = Map::new();
    out.insert("key".into(), key);
    out.insert("managed".into(), json!(true));
    common(r, &mut out, &view);
    Ok(Value::Object(out))
}

/// A certificate's secret in a secrets listing (`SecretItem`, managed).
pub fn managed_secret_item(r: &Render, view: &CertView) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(r.id("secrets", &view.name, None)));
    out.insert("contentType".into(), json!(view.meta.content_type));
    out.insert("managed".into(), json!(true));
    common(r, &mut out, view);
    Value::Object(out)
}

/// A certificate's key in a keys listing (`KeyItem`, managed).
pub fn managed_key_item(r: &Render, view: &CertView) -> Value {
    let mut out = Map::new();
    out.insert("kid".into(), json!(r.id("keys", &view.name, None)));
    out.insert("managed".into(), json!(true));
    common(r, &mut out, view);
    Value::Object(out)
}

/// Whether an error means "no such object", so a lookup may fall back.
pub fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::NotFound { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        use CertOp::*;
        let p = |m: Method, path: &str| CertOp::parse(&m, path);
        assert_eq!(
            p(Method::GET, "/certificates/c/"),
            Some(Get("c".into(), None))
        );
        assert_eq!(
            p(Method::POST, "/certificates/c/create"),
            Some(Create("c".into()))
        );
        assert_eq!(
            p(Method::GET, "/certificates/c/pending"),
            Some(GetOperation("c".into()))
        );
        assert_eq!(
            p(Method::POST, "/certificates/c/pending/merge"),
            Some(Merge("c".into()))
        );
        assert_eq!(
            p(Method::GET, "/certificates/c/policy"),
            Some(GetPolicy("c".into()))
        );
        assert_eq!(
            p(Method::GET, "/certificates/issuers"),
            Some(Unsupported("Certificate issuers"))
        );
        assert_eq!(
            p(Method::GET, "/certificates/c/abc"),
            Some(Get("c".into(), Some("abc".into())))
        );
        assert_eq!(p(Method::GET, "/secrets/c"), None);
    }

    #[test]
    fn policies() {
        let p =
            parse_policy(&json!({"issuer": {"name": "Self"}, "x509_props": {"subject": "CN=a"}}))
                .unwrap();
        assert_eq!(p.key_props.kty, "RSA");
        assert_eq!(p.secret_props.content_type, "application/x-pkcs12");
        assert_eq!(p.x509_props.validity_months, 12);
        assert!(
            parse_policy(&json!({"x509_props": {"subject": "CN=a"}})).is_err(),
            "issuer needed"
        );
        assert!(
            parse_policy(&json!({"issuer": {"name": "Self"}, "key_props": {"key_size": "big"}}))
                .is_err()
        );
        let patched = patch_policy(
            &p,
            br#"{"secret_props": {"contentType": "application/x-pem-file"}}"#,
        )
        .unwrap();
        assert_eq!(patched.secret_props.content_type, "application/x-pem-file");
        assert_eq!(patched.x509_props.subject, "CN=a");
    }
}
