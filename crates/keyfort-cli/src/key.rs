//! `keyfort key ...`: the keys API from the command line, shaped like
//! `az keyvault key`. Private keys never come back from the server; the
//! cryptographic commands take and print base64url, as the REST API does.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::client::Client;
use crate::connection::{ConnectionArgs, OutputFormat};
use crate::secret::parse_tag;
use crate::{objects, output};

#[derive(Clone, Copy, ValueEnum)]
pub enum Kty {
    #[value(name = "RSA")]
    Rsa,
    #[value(name = "EC")]
    Ec,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum CryptoOp {
    Encrypt,
    Decrypt,
    Sign,
    Wrapkey,
    Unwrapkey,
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create a key (or a new version of one) generated in the vault.
    Create {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
        #[arg(long, value_enum, default_value = "RSA")]
        kty: Kty,
        /// RSA key size: 2048, 3072 or 4096.
        #[arg(long)]
        size: Option<u32>,
        /// EC curve: P-256, P-384, P-521 or P-256K.
        #[arg(long)]
        curve: Option<String>,
        /// Allowed operations (repeatable): encrypt, decrypt, sign, verify, wrapKey, unwrapKey.
        #[arg(long = "op")]
        ops: Vec<String>,
        #[command(flatten)]
        props: KeyProps,
    },
    /// Import a private key from a JSON Web Key file.
    Import {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
        /// A JWK (JSON) with the private members.
        #[arg(long)]
        jwk_file: PathBuf,
        #[command(flatten)]
        props: KeyProps,
    },
    /// Make a new version with fresh material of the same type and size.
    Rotate {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
    },
    /// Show a key's public half and attributes (latest version unless --version).
    Show {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: Option<String>,
    },
    /// List keys.
    List {
        #[command(flatten)]
        conn: ConnectionArgs,
    },
    /// List the versions of a key.
    ListVersions {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
    },
    /// Update attributes, operations or tags of a version (latest unless --version).
    Update {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: Option<String>,
        #[arg(long)]
        enabled: Option<bool>,
        /// Replace the allowed operations (repeatable).
        #[arg(long = "op")]
        ops: Vec<String>,
        #[command(flatten)]
        props: KeyProps,
    },
    /// Soft-delete a key.
    Delete {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
    },
    /// List soft-deleted keys.
    ListDeleted {
        #[command(flatten)]
        conn: ConnectionArgs,
    },
    /// Recover a soft-deleted key.
    Recover {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
    },
    /// Permanently remove a soft-deleted key.
    Purge {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
    },
    /// Write a backup blob of a key (all versions) to a file.
    Backup {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
        #[arg(long)]
        file: PathBuf,
    },
    /// Restore a key from a backup file.
    Restore {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        file: PathBuf,
    },
    /// Run encrypt, decrypt, sign, wrapkey or unwrapkey in the vault.
    /// --value is base64url (for sign: the digest); prints the result as base64url.
    Crypto {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: Option<String>,
        #[arg(value_enum)]
        operation: CryptoOp,
        /// Algorithm, e.g. RSA-OAEP-256, RS256, ES256.
        #[arg(long)]
        alg: String,
        /// The input, base64url; '-' reads it from standard input (prefer that
        /// for plaintexts and keys to wrap: a command line is visible to others).
        #[arg(long)]
        value: String,
    },
    /// Verify a signature over a digest (both base64url) in the vault.
    Verify {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: Option<String>,
        #[arg(long)]
        alg: String,
        #[arg(long)]
        digest: String,
        #[arg(long)]
        signature: String,
    },
}

#[derive(Args)]
pub struct KeyProps {
    /// Tags as KEY=VALUE (repeatable).
    #[arg(long = "tag", value_parser = parse_tag)]
    tags: Vec<(String, String)>,
    /// Expiry, as Unix seconds.
    #[arg(long)]
    expires: Option<i64>,
    /// Not valid before, as Unix seconds.
    #[arg(long)]
    not_before: Option<i64>,
}

impl KeyProps {
    fn into_body(self, enabled: Option<bool>, ops: Vec<String>) -> Map<String, Value> {
        let mut body = Map::new();
        if !self.tags.is_empty() {
            let tags: BTreeMap<_, _> = self.tags.into_iter().collect();
            body.insert("tags".into(), json!(tags));
        }
        if !ops.is_empty() {
            body.insert("key_ops".into(), json!(ops));
        }
        let mut attrs = Map::new();
        if let Some(e) = enabled {
            attrs.insert("enabled".into(), json!(e));
        }
        if let Some(exp) = self.expires {
            attrs.insert("exp".into(), json!(exp));
        }
        if let Some(nbf) = self.not_before {
            attrs.insert("nbf".into(), json!(nbf));
        }
        if !attrs.is_empty() {
            body.insert("attributes".into(), Value::Object(attrs));
        }
        body
    }
}

fn connect(conn: &ConnectionArgs) -> Result<Client, String> {
    Client::new(conn.resolve()?)
}

fn path_of(name: &str, version: Option<&str>) -> String {
    format!("/keys/{name}/{}", version.unwrap_or(""))
}

/// A key bundle as lines: its id, type, operations and attributes.
fn describe(format: OutputFormat, v: &Value) {
    let key = &v["key"];
    let a = &v["attributes"];
    let size = key["n"]
        .as_str()
        .and_then(|n| B64.decode(n).ok())
        .map(|n| (n.len() * 8).to_string());
    let mut fields = vec![
        ("name", output::id_part(&key["kid"], 2)),
        ("version", output::id_part(&key["kid"], 3)),
        ("kid", key["kid"].as_str().unwrap_or("").to_owned()),
        ("type", key["kty"].as_str().unwrap_or("").to_owned()),
        (
            "size/curve",
            size.or_else(|| key["crv"].as_str().map(str::to_owned))
                .unwrap_or_default(),
        ),
        ("operations", key["key_ops"].to_string()),
        ("enabled", a["enabled"].to_string()),
        (
            "tags",
            v.get("tags").map(Value::to_string).unwrap_or_default(),
        ),
        ("created", output::time(&a["created"])),
        ("not before", output::time(&a["nbf"])),
        ("expires", output::time(&a["exp"])),
    ];
    if !v["deletedDate"].is_null() {
        fields.push(("deleted", output::time(&v["deletedDate"])));
        fields.push(("scheduled purge", output::time(&v["scheduledPurgeDate"])));
    }
    output::object(format, v, &fields);
}

fn list_table(format: OutputFormat, items: Vec<Value>, version_column: bool) {
    if format == OutputFormat::Json {
        return output::json(&Value::Array(items));
    }
    let mut headers = vec!["NAME"];
    if version_column {
        headers.push("VERSION");
    }
    headers.extend(["ENABLED", "CREATED", "EXPIRES"]);
    let deleted = items.iter().any(|i| !i["deletedDate"].is_null());
    if deleted {
        headers.push("PURGE DATE");
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            let a = &i["attributes"];
            let mut row = vec![output::id_part(&i["kid"], 2)];
            if version_column {
                row.push(output::id_part(&i["kid"], 3));
            }
            row.extend([
                a["enabled"].to_string(),
                output::time(&a["created"]),
                output::time(&a["exp"]),
            ]);
            if deleted {
                row.push(output::time(&i["scheduledPurgeDate"]));
            }
            row
        })
        .collect();
    output::table(&headers, &rows);
}

pub async fn run(cmd: KeyCommand) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use KeyCommand::*;
    match cmd {
        Create {
            conn,
            name,
            kty,
            size,
            curve,
            ops,
            props,
        } => {
            let mut body = props.into_body(None, ops);
            match kty {
                Kty::Rsa => {
                    body.insert("kty".into(), json!("RSA"));
                    if let Some(size) = size {
                        body.insert("key_size".into(), json!(size));
                    }
                }
                Kty::Ec => {
                    body.insert("kty".into(), json!("EC"));
                    body.insert("crv".into(), json!(curve.as_deref().unwrap_or("P-256")));
                }
            }
            let path = format!("/keys/{name}/create");
            let v = connect(&conn)?
                .call(Method::POST, &path, &[], Some(&Value::Object(body)))
                .await?;
            describe(conn.output, &v);
        }
        Import {
            conn,
            name,
            jwk_file,
            props,
        } => {
            let text = zeroize::Zeroizing::new(
                std::fs::read_to_string(&jwk_file)
                    .map_err(|e| format!("cannot read {}: {e}", jwk_file.display()))?,
            );
            let jwk: Value = serde_json::from_str(&text)
                .map_err(|_| format!("{} is not a JSON Web Key (JSON)", jwk_file.display()))?;
            let mut body = props.into_body(None, Vec::new());
            body.insert("key".into(), jwk);
            let v = connect(&conn)?
                .call(
                    Method::PUT,
                    &format!("/keys/{name}"),
                    &[],
                    Some(&Value::Object(body)),
                )
                .await?;
            describe(conn.output, &v);
        }
        Rotate { conn, name } => {
            let path = format!("/keys/{name}/rotate");
            let v = connect(&conn)?.call(Method::POST, &path, &[], None).await?;
            describe(conn.output, &v);
        }
        Show {
            conn,
            name,
            version,
        } => {
            let v = connect(&conn)?
                .call(Method::GET, &path_of(&name, version.as_deref()), &[], None)
                .await?;
            describe(conn.output, &v);
        }
        List { conn } => {
            let items = connect(&conn)?.list_all("/keys", None).await?;
            list_table(conn.output, items, false);
        }
        ListVersions { conn, name } => {
            let items = connect(&conn)?
                .list_all(&format!("/keys/{name}/versions"), None)
                .await?;
            list_table(conn.output, items, true);
        }
        Update {
            conn,
            name,
            version,
            enabled,
            ops,
            props,
        } => {
            let body = Value::Object(props.into_body(enabled, ops));
            let v = connect(&conn)?
                .call(
                    Method::PATCH,
                    &path_of(&name, version.as_deref()),
                    &[],
                    Some(&body),
                )
                .await?;
            describe(conn.output, &v);
        }
        Delete { conn, name } => {
            let v = connect(&conn)?
                .call(Method::DELETE, &format!("/keys/{name}"), &[], None)
                .await?;
            describe(conn.output, &v);
        }
        ListDeleted { conn } => {
            let items = connect(&conn)?.list_all("/deletedkeys", None).await?;
            list_table(conn.output, items, false);
        }
        Recover { conn, name } => {
            let v = objects::recover(&mut connect(&conn)?, "key", &name).await?;
            describe(conn.output, &v);
        }
        Purge { conn, name } => {
            objects::purge(&mut connect(&conn)?, conn.output, "key", &name).await?;
        }
        Backup { conn, name, file } => {
            objects::backup(&mut connect(&conn)?, conn.output, "key", &name, &file).await?;
        }
        Restore { conn, file } => {
            let v = objects::restore(&mut connect(&conn)?, "key", &file).await?;
            describe(conn.output, &v);
        }
        Crypto {
            conn,
            name,
            version,
            operation,
            alg,
            value,
        } => {
            let op = match operation {
                CryptoOp::Encrypt => "encrypt",
                CryptoOp::Decrypt => "decrypt",
                CryptoOp::Sign => "sign",
                CryptoOp::Wrapkey => "wrapkey",
                CryptoOp::Unwrapkey => "unwrapkey",
            };
            let path = format!("{}/{op}", path_of(&name, version.as_deref()));
            let value = if value == "-" {
                let mut text = zeroize::Zeroizing::new(String::new());
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                    .map_err(|e| format!("cannot read the value from standard input: {e}"))?;
                zeroize::Zeroizing::new(text.trim().to_owned())
            } else {
                zeroize::Zeroizing::new(value)
            };
            let body = json!({ "alg": alg, "value": value.as_str() });
            let v = connect(&conn)?
                .call(Method::POST, &path, &[], Some(&body))
                .await?;
            match conn.output {
                OutputFormat::Json => output::json(&v),
                OutputFormat::Table => println!("{}", v["value"].as_str().unwrap_or("")),
            }
        }
        Verify {
            conn,
            name,
            version,
            alg,
            digest,
            signature,
        } => {
            let path = format!("{}/verify", path_of(&name, version.as_deref()));
            let body = json!({ "alg": alg, "digest": digest, "value": signature });
            let v = connect(&conn)?
                .call(Method::POST, &path, &[], Some(&body))
                .await?;
            let valid = v["value"].as_bool().unwrap_or(false);
            match conn.output {
                OutputFormat::Json => output::json(&v),
                OutputFormat::Table => println!("{}", if valid { "valid" } else { "invalid" }),
            }
            if !valid {
                return Err("the signature does not verify".into());
            }
        }
    }
    Ok(())
}
