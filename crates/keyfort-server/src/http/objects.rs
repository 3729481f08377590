//! What the secrets and keys APIs share on the wire: paging with
//! `maxresults` and `$skiptoken`, `nextLink`s, the attributes object, the
//! deleted-object fields, and parsing of tags, attributes and strings.

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use keyfort_core::model::{Attributes, Deletion, Tags, Vault};
use keyfort_core::objects::{AttributeChanges, Page};
use keyfort_core::{Error, names};
use serde_json::{Map, Value, json};

use super::AppState;

/// `maxresults` (1–25, default 25) and the continuation token.
pub fn paging(query: Option<&str>) -> Result<(usize, Option<String>), Error> {
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

/// Renders objects of one vault in Azure's shapes.
pub struct Render<'a> {
    pub state: &'a AppState,
    pub vault: &'a Vault,
    /// The request's api-version, which `nextLink`s carry on.
    pub api_version: &'static str,
}

impl<'a> Render<'a> {
    pub fn new(state: &'a AppState, vault: &'a Vault, query: Option<&str>) -> Result<Self, Error> {
        Ok(Render {
            state,
            vault,
            api_version: super::request::check_api_version(query)?,
        })
    }

    pub fn base(&self) -> String {
        self.state.site.vault_url(&self.vault.name)
    }

    /// `{vault}/{collection}/{name}[/{version}]`.
    pub fn id(&self, collection: &str, name: &str, version: Option<&str>) -> String {
        match version {
            Some(v) => format!("{}/{collection}/{name}/{v}", self.base()),
            None => format!("{}/{collection}/{name}", self.base()),
        }
    }

    pub fn attributes(&self, a: &Attributes) -> Value {
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

    /// Attributes, tags, and for a deleted object its recovery fields.
    pub fn common(
        &self,
        out: &mut Map<String, Value>,
        collection: &str,
        name: &str,
        attributes: &Attributes,
        tags: Option<&Tags>,
        deletion: Option<Deletion>,
    ) {
        out.insert("attributes".into(), self.attributes(attributes));
        if let Some(tags) = tags {
            out.insert("tags".into(), json!(tags));
        }
        if let Some(d) = deletion {
            out.insert(
                "recoveryId".into(),
                json!(format!("{}/deleted{collection}/{name}", self.base())),
            );
            out.insert("deletedDate".into(), json!(d.deleted_date));
            out.insert("scheduledPurgeDate".into(), json!(d.scheduled_purge_date));
        }
    }

    pub fn page<T>(
        &self,
        page: Page<T>,
        path: &str,
        limit: usize,
        item: impl Fn(&T) -> Value,
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

/// The reply to a backup: the blob, base64url.
pub fn backup_reply(blob: Vec<u8>) -> axum::response::Response {
    axum::response::IntoResponse::into_response(axum::Json(json!({ "value": B64.encode(blob) })))
}

/// The blob of a restore request.
pub fn restore_blob(body: &[u8]) -> Result<Vec<u8>, Error> {
    let map = super::body::object(body)?;
    let blob = required_str(&map, "value")?;
    B64.decode(blob.trim_end_matches('=')).map_err(|_| {
        Error::bad("'value' must be the base64url backup blob returned by a backup operation.")
    })
}

/// The reply to a purge.
pub fn no_content() -> axum::response::Response {
    axum::response::IntoResponse::into_response(StatusCode::NO_CONTENT)
}

/// A base64url field (padding tolerated, as the SDKs differ).
pub fn decode_b64url(field: &str, value: &str) -> Result<Vec<u8>, Error> {
    B64.decode(value.trim_end_matches('='))
        .map_err(|_| Error::bad(format!("'{field}' must be base64url encoded.")))
}

pub fn required_str<'a>(map: &'a Map<String, Value>, field: &str) -> Result<&'a str, Error> {
    match map.get(field) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Error::bad(format!("'{field}' must be a string."))),
        None => Err(Error::bad(format!("The property '{field}' is required."))),
    }
}

pub fn optional_str(map: &Map<String, Value>, field: &str) -> Result<Option<String>, Error> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::bad(format!("'{field}' must be a string."))),
    }
}

pub fn parse_tags(map: &Map<String, Value>) -> Result<Option<Tags>, Error> {
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

pub fn parse_attributes(map: &Map<String, Value>) -> Result<AttributeChanges, Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
