//! The keys API of Azure Key Vault (`keys.json`): create, import, rotate,
//! get, list, update, the soft-delete lifecycle, backup and restore, and
//! the cryptographic operations. As with secrets, a request is parsed into
//! a [`KeyOp`] that knows its data action, and [`run`] calls the keys
//! service once the pipeline has authorized it.

use axum::Json;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use keyfort_core::Error;
use keyfort_core::certificates::Listed;
use keyfort_core::keys::{CreateKey, ImportKey, KeyKind, KeyOperation, KeyView, UpdateKey};
use keyfort_core::model::Vault;
use serde_json::{Map, Value, json};

use super::AppState;
use super::certificates;
use super::objects::{
    Render, backup_reply, decode_b64url, no_content, paging, parse_attributes, parse_tags,
    required_str, restore_blob,
};

/// Key requests are small (a 4096-bit JWK is under 4 KB); restores are not.
const MAX_KEY_BODY: usize = 64 * 1024;

#[derive(Debug, PartialEq)]
pub enum KeyOp {
    Create(String),
    Import(String),
    Rotate(String),
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
    Crypto(String, Option<String>, KeyOperation),
    /// Parts of the API this vault does not offer, named so the refusal is clear.
    Unsupported(&'static str),
}

fn crypto_op(segment: &str) -> Option<KeyOperation> {
    Some(match segment {
        "encrypt" => KeyOperation::Encrypt,
        "decrypt" => KeyOperation::Decrypt,
        "sign" => KeyOperation::Sign,
        "verify" => KeyOperation::Verify,
        "wrapkey" => KeyOperation::WrapKey,
        "unwrapkey" => KeyOperation::UnwrapKey,
        _ => return None,
    })
}

impl KeyOp {
    /// Maps method and path to an operation; `None` if the API has no such route.
    pub fn parse(method: &Method, path: &str) -> Option<KeyOp> {
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        // A trailing slash (the SDKs send `/keys/{name}/`) means "no version".
        let segs: Vec<&str> = match segs.split_last() {
            Some((&"", rest)) => rest.to_vec(),
            _ => segs,
        };
        let s = |i: usize| segs[i].to_owned();
        // `/keys/{name}//encrypt`: an empty version is the latest.
        let version = |i: usize| (!segs[i].is_empty()).then(|| segs[i].to_owned());
        use KeyOp::*;
        Some(match (method.as_str(), segs.as_slice()) {
            ("GET", ["keys"]) => List,
            ("POST", ["keys", "restore"]) => Restore,
            ("PUT", ["keys", _]) => Import(s(1)),
            ("DELETE", ["keys", _]) => Delete(s(1)),
            ("GET", ["keys", _]) => Get(s(1), None),
            ("PATCH", ["keys", _]) => Update(s(1), None),
            ("POST", ["keys", _, "create"]) => Create(s(1)),
            ("POST", ["keys", _, "rotate"]) => Rotate(s(1)),
            ("POST", ["keys", _, "backup"]) => Backup(s(1)),
            ("GET", ["keys", _, "versions"]) => ListVersions(s(1)),
            (_, ["keys", _, "rotationpolicy"]) => Unsupported("Key rotation policies"),
            ("POST", ["keys", _, _, "release"]) => Unsupported("Key release (exportable keys)"),
            ("POST", ["rng"]) => Unsupported("Random bytes (a Managed HSM operation)"),
            ("GET", ["keys", _, _]) => Get(s(1), version(2)),
            ("PATCH", ["keys", _, _]) => Update(s(1), version(2)),
            ("POST", ["keys", _, _, op]) => {
                Crypto(s(1), version(2), crypto_op(&op.to_ascii_lowercase())?)
            }
            ("GET", ["deletedkeys"]) => ListDeleted,
            ("GET", ["deletedkeys", _]) => GetDeleted(s(1)),
            ("DELETE", ["deletedkeys", _]) => Purge(s(1)),
            ("POST", ["deletedkeys", _, "recover"]) => Recover(s(1)),
            _ => return None,
        })
    }

    /// Azure's data action for this operation.
    pub fn action(&self) -> &'static str {
        use KeyOp::*;
        use keyfort_core::keys::actions as a;
        match self {
            Create(_) => a::CREATE,
            Import(_) => a::IMPORT,
            Rotate(_) => a::ROTATE,
            Get(..) | List | ListVersions(_) | ListDeleted | GetDeleted(_) | Unsupported(_) => {
                a::READ
            }
            Update(..) => a::UPDATE,
            Delete(_) => a::DELETE,
            Backup(_) => a::BACKUP,
            Restore => a::RESTORE,
            Recover(_) => a::RECOVER,
            Purge(_) => a::PURGE,
            Crypto(_, _, op) => match op {
                KeyOperation::Encrypt => a::ENCRYPT,
                KeyOperation::Decrypt => a::DECRYPT,
                KeyOperation::Sign => a::SIGN,
                KeyOperation::Verify => a::VERIFY,
                KeyOperation::WrapKey => a::WRAP,
                KeyOperation::UnwrapKey => a::UNWRAP,
            },
        }
    }

    /// An action that also allows the operation: Azure lets `keys/read`
    /// do what needs only the public half of an asymmetric key (encrypt,
    /// wrap, verify), and every key here is asymmetric.
    pub fn also_allowed_by(&self) -> Option<&'static str> {
        match self {
            KeyOp::Crypto(
                _,
                _,
                KeyOperation::Encrypt | KeyOperation::WrapKey | KeyOperation::Verify,
            ) => Some(keyfort_core::keys::actions::READ),
            _ => None,
        }
    }

    /// The operation name in audit records (Azure's AuditEvent names).
    pub fn audit_name(&self) -> &'static str {
        use KeyOp::*;
        match self {
            Create(_) => "KeyCreate",
            Import(_) => "KeyImport",
            Rotate(_) => "KeyRotate",
            Get(..) => "KeyGet",
            Update(..) => "KeyUpdate",
            Delete(_) => "KeyDelete",
            List => "KeyList",
            ListVersions(_) => "KeyListVersions",
            Backup(_) => "KeyBackup",
            Restore => "KeyRestore",
            ListDeleted => "KeyListDeleted",
            GetDeleted(_) => "KeyGetDeleted",
            Recover(_) => "KeyRecover",
            Purge(_) => "KeyPurge",
            Unsupported(_) => "KeyUnsupported",
            Crypto(_, _, op) => match op {
                KeyOperation::Encrypt => "KeyEncrypt",
                KeyOperation::Decrypt => "KeyDecrypt",
                KeyOperation::Sign => "KeySign",
                KeyOperation::Verify => "KeyVerify",
                KeyOperation::WrapKey => "KeyWrap",
                KeyOperation::UnwrapKey => "KeyUnwrap",
            },
        }
    }

    /// The largest request body the operation reads.
    pub fn body_limit(&self) -> usize {
        match self {
            KeyOp::Restore => super::MAX_BODY,
            _ => MAX_KEY_BODY,
        }
    }

    /// The key the operation targets, if one.
    pub fn object(&self) -> Option<&str> {
        use KeyOp::*;
        match self {
            Create(n)
            | Import(n)
            | Rotate(n)
            | Get(n, _)
            | Update(n, _)
            | Delete(n)
            | ListVersions(n)
            | Backup(n)
            | GetDeleted(n)
            | Recover(n)
            | Purge(n)
            | Crypto(n, _, _) => Some(n),
            List | Restore | ListDeleted | Unsupported(_) => None,
        }
    }
}

pub async fn run(
    state: &AppState,
    vault: &Vault,
    op: KeyOp,
    query: Option<&str>,
    body: &[u8],
) -> Result<Response, Error> {
    let keys = &state.kf.keys;
    let r = Render::new(state, vault, query)?;
    use KeyOp::*;
    Ok(match op {
        Unsupported(what) => {
            return Err(Error::bad(format!(
                "{what} are not supported by this vault yet."
            )));
        }
        Create(name) => {
            let req = parse_create(body)?;
            state
                .kf
                .check_not_certificate_backed(vault, "key", &name)
                .await?;
            let view = keys.create(vault, &name, req).await?;
            new_version(&r, &view).await
        }
        Import(name) => {
            let req = parse_import(body)?;
            state
                .kf
                .check_not_certificate_backed(vault, "key", &name)
                .await?;
            let view = keys.import(vault, &name, req).await?;
            new_version(&r, &view).await
        }
        Rotate(name) => {
            let view = keys.rotate(vault, &name).await?;
            new_version(&r, &view).await
        }
        Get(name, version) => match keys.get(vault, &name, version.as_deref()).await {
            Ok(view) => Json(bundle(&r, &view)).into_response(),
            // A certificate's key: its public half.
            Err(e) if certificates::is_not_found(&e) => {
                match certificates::backing_key(state, &r, &name, version.as_deref()).await {
                    Ok(v) => Json(v).into_response(),
                    Err(other) if certificates::is_not_found(&other) => return Err(e),
                    Err(other) => return Err(other),
                }
            }
            Err(e) => return Err(e),
        },
        Update(name, version) => {
            let req = parse_update(body)?;
            let view = keys.update(vault, &name, version.as_deref(), req).await?;
            Json(bundle(&r, &view)).into_response()
        }
        Delete(name) => Json(bundle(&r, &keys.delete(vault, &name).await?)).into_response(),
        List => {
            let (limit, after) = paging(query)?;
            let page = state
                .kf
                .list_with_certificates(keys, vault, after.as_deref(), limit)
                .await?;
            Json(r.page(page, "keys", limit, |listed| match listed {
                Listed::Plain(v) => item(&r, v, false),
                Listed::Certificate(c) => certificates::managed_key_item(&r, c),
            }))
            .into_response()
        }
        ListVersions(name) => {
            let (limit, after) = paging(query)?;
            let page = keys
                .list_versions(vault, &name, after.as_deref(), limit)
                .await?;
            let path = format!("keys/{name}/versions");
            Json(r.page(page, &path, limit, |v| item(&r, v, true))).into_response()
        }
        ListDeleted => {
            let (limit, after) = paging(query)?;
            let page = keys.list_deleted(vault, after.as_deref(), limit).await?;
            Json(r.page(page, "deletedkeys", limit, |v| item(&r, v, false))).into_response()
        }
        GetDeleted(name) => {
            Json(bundle(&r, &keys.get_deleted(vault, &name).await?)).into_response()
        }
        Recover(name) => Json(bundle(&r, &keys.recover(vault, &name).await?)).into_response(),
        Purge(name) => {
            keys.purge(vault, &name).await?;
            no_content()
        }
        Backup(name) => {
            let key = state.kf.identity.backup_key(&vault.tenant_id).await?;
            backup_reply(keys.backup(vault, &name, &key).await?)
        }
        Restore => {
            let blob = restore_blob(body)?;
            let key = state.kf.identity.backup_key(&vault.tenant_id).await?;
            let view = keys.restore(vault, &blob, &key).await?;
            new_version(&r, &view).await
        }
        Crypto(name, version, KeyOperation::Verify) => {
            let map = super::body::object(body)?;
            let alg = required_str(&map, "alg")?;
            let digest = decode_b64url("digest", required_str(&map, "digest")?)?;
            let signature = decode_b64url("value", required_str(&map, "value")?)?;
            let key = state
                .kf
                .key_in_use(vault, &name, version.as_deref())
                .await?;
            let verified = key.verify(alg, &digest, &signature, state.kf.clock.now())?;
            Json(json!({ "value": verified.valid })).into_response()
        }
        Crypto(name, version, op) => {
            let map = super::body::object(body)?;
            let alg = required_str(&map, "alg")?;
            for symmetric in ["iv", "aad", "tag"] {
                if map.get(symmetric).is_some_and(|v| !v.is_null()) {
                    return Err(Error::bad(format!(
                        "'{symmetric}' applies to symmetric (oct) keys, which this vault does not hold."
                    )));
                }
            }
            let input =
                zeroize::Zeroizing::new(decode_b64url("value", required_str(&map, "value")?)?);
            let key = state
                .kf
                .key_in_use(vault, &name, version.as_deref())
                .await?;
            let done = key.operate(op, alg, &input, state.kf.clock.now())?;
            Json(json!({
                "kid": r.id("keys", &done.name, Some(&done.version)),
                "value": B64.encode(&done.result),
            }))
            .into_response()
        }
    })
}

/// Renders a new version and queues its events.
async fn new_version(r: &Render<'_>, view: &KeyView) -> Response {
    let url = r.base();
    r.state
        .kf
        .new_version_events::<KeyKind>(r.vault, &url, view)
        .await;
    Json(bundle(r, view)).into_response()
}

/// A `KeyBundle` (or `DeletedKeyBundle`): the public JWK with its `kid`.
fn bundle(r: &Render, view: &KeyView) -> Value {
    let meta = &view.meta;
    let mut key = serde_json::to_value(&meta.public).unwrap_or_else(|_| json!({}));
    key["kid"] = json!(r.id("keys", &view.name, Some(&meta.version)));
    key["key_ops"] = json!(meta.key_ops);
    let mut out = Map::new();
    out.insert("key".into(), key);
    common(r, &mut out, view);
    Value::Object(out)
}

/// A `KeyItem`: the kid carries the version only in version listings.
fn item(r: &Render, view: &KeyView, with_version: bool) -> Value {
    let mut out = Map::new();
    let version = with_version.then_some(view.meta.version.as_str());
    out.insert("kid".into(), json!(r.id("keys", &view.name, version)));
    common(r, &mut out, view);
    Value::Object(out)
}

fn common(r: &Render, out: &mut Map<String, Value>, view: &KeyView) {
    let meta = &view.meta;
    r.common(
        out,
        "keys",
        &view.name,
        &meta.attributes,
        meta.tags.as_ref(),
        view.deletion,
    );
    // Private keys never leave the vault (except sealed in a backup).
    if let Some(Value::Object(attributes)) = out.get_mut("attributes") {
        attributes.insert("exportable".into(), json!(false));
    }
}

fn parse_key_ops(map: &Map<String, Value>) -> Result<Option<Vec<String>>, Error> {
    match map.get("key_ops") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(ops)) => ops
            .iter()
            .map(|o| {
                o.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| Error::bad("'key_ops' must be an array of strings."))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(Error::bad("'key_ops' must be an array of strings.")),
    }
}

fn optional_u32(map: &Map<String, Value>, field: &str) -> Result<Option<u32>, Error> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| Error::bad(format!("'{field}' must be a positive integer."))),
        Some(_) => Err(Error::bad(format!("'{field}' must be a positive integer."))),
    }
}

/// Exportable keys need a release policy and attestation, which this vault
/// does not offer: refuse rather than ignore them.
fn refuse_release_policy(map: &Map<String, Value>) -> Result<(), Error> {
    let exportable = map
        .get("attributes")
        .and_then(|a| a.get("exportable"))
        .is_some_and(|e| e == &json!(true));
    if map.get("release_policy").is_some_and(|p| !p.is_null()) || exportable {
        return Err(Error::bad(
            "Exportable keys and release policies are not supported by this vault.",
        ));
    }
    Ok(())
}

fn parse_create(body: &[u8]) -> Result<CreateKey, Error> {
    let map = super::body::object(body)?;
    refuse_release_policy(&map)?;
    let crv = match map.get("crv") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) => Some(c.clone()),
        Some(_) => return Err(Error::bad("'crv' must be a string.")),
    };
    Ok(CreateKey {
        kty: required_str(&map, "kty")?.to_owned(),
        key_size: optional_u32(&map, "key_size")?,
        public_exponent: optional_u32(&map, "public_exponent")?,
        crv,
        key_ops: parse_key_ops(&map)?,
        tags: parse_tags(&map)?,
        attributes: parse_attributes(&map)?,
    })
}

fn parse_import(body: &[u8]) -> Result<ImportKey, Error> {
    let mut map = super::body::object(body)?;
    refuse_release_policy(&map)?;
    let hsm = match map.get("Hsm") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(Error::bad("'Hsm' must be true or false.")),
    };
    // The JWK holds the private key: errors about it never quote it.
    let key = match map.remove("key") {
        Some(jwk @ Value::Object(_)) => serde_json::from_value(jwk).map_err(|_| {
            Error::bad("'key' must be a JSON Web Key whose members are strings (key_ops an array).")
        })?,
        Some(_) => return Err(Error::bad("'key' must be a JSON Web Key object.")),
        None => return Err(Error::bad("The property 'key' is required.")),
    };
    Ok(ImportKey {
        key,
        hsm,
        tags: parse_tags(&map)?,
        attributes: parse_attributes(&map)?,
    })
}

fn parse_update(body: &[u8]) -> Result<UpdateKey, Error> {
    let map = if body.is_empty() {
        Map::new()
    } else {
        super::body::object(body)?
    };
    refuse_release_policy(&map)?;
    Ok(UpdateKey {
        key_ops: parse_key_ops(&map)?,
        tags: parse_tags(&map)?,
        attributes: parse_attributes(&map)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        use KeyOp::*;
        let p = |m: Method, path: &str| KeyOp::parse(&m, path);
        assert_eq!(p(Method::GET, "/keys"), Some(List));
        assert_eq!(p(Method::GET, "/keys/k/"), Some(Get("k".into(), None)));
        assert_eq!(p(Method::POST, "/keys/k/create"), Some(Create("k".into())));
        assert_eq!(p(Method::PUT, "/keys/k"), Some(Import("k".into())));
        assert_eq!(p(Method::POST, "/keys/k/rotate"), Some(Rotate("k".into())));
        assert_eq!(p(Method::POST, "/keys/restore"), Some(Restore));
        assert_eq!(
            p(Method::POST, "/keys/k/abc/sign"),
            Some(Crypto("k".into(), Some("abc".into()), KeyOperation::Sign))
        );
        assert_eq!(
            p(Method::POST, "/keys/k//wrapkey"),
            Some(Crypto("k".into(), None, KeyOperation::WrapKey))
        );
        assert_eq!(
            p(Method::POST, "/keys/k/abc/unwrapKey"),
            Some(Crypto(
                "k".into(),
                Some("abc".into()),
                KeyOperation::UnwrapKey
            ))
        );
        assert_eq!(
            p(Method::POST, "/keys/k/abc/release"),
            Some(Unsupported("Key release (exportable keys)"))
        );
        assert_eq!(
            p(Method::GET, "/keys/k/rotationpolicy"),
            Some(Unsupported("Key rotation policies"))
        );
        assert_eq!(
            p(Method::POST, "/deletedkeys/k/recover"),
            Some(Recover("k".into()))
        );
        assert_eq!(p(Method::GET, "/secrets/k"), None);
    }

    #[test]
    fn bodies() {
        assert!(
            parse_create(br#"{"key_size": 2048}"#).is_err(),
            "kty is required"
        );
        assert!(parse_create(br#"{"kty": "RSA", "key_size": "big"}"#).is_err());
        assert!(parse_create(br#"{"kty": "RSA", "key_ops": ["sign", 3]}"#).is_err());
        assert!(parse_create(br#"{"kty": "RSA", "release_policy": {"data": "x"}}"#).is_err());
        let ok = parse_create(br#"{"kty": "EC", "crv": "P-384", "key_ops": ["sign"]}"#).unwrap();
        assert_eq!(ok.crv.as_deref(), Some("P-384"));
        assert_eq!(ok.key_ops, Some(vec!["sign".to_owned()]));
        let e = parse_import(br#"{"key": {"kty": "RSA", "d": 42}}"#)
            .err()
            .unwrap();
        assert!(
            !e.to_string().contains("42"),
            "errors never quote key material"
        );
        assert!(parse_import(br#"{"key": "AQAB"}"#).is_err());
        assert!(parse_update(br#"{"key_ops": "sign"}"#).is_err());
    }
}
