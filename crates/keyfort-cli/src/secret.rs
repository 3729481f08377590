//! `keyfort secret ...`: the secrets API from the command line, shaped like
//! `az keyvault secret`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::client::Client;
use crate::connection::{ConnectionArgs, OutputFormat};
use crate::{objects, output};

#[derive(Subcommand)]
pub enum SecretCommand {
    /// Set a secret (creates a new version).
    Set {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
        /// The value; '-' reads it from standard input. Prefer --file or '-' over
        /// putting a value on the command line, where other users can see it.
        #[arg(long, conflicts_with = "file", required_unless_present = "file")]
        value: Option<String>,
        /// Read the value from a file.
        #[arg(long)]
        file: Option<PathBuf>,
        #[command(flatten)]
        props: Props,
    },
    /// Show a secret's value and attributes (latest version unless --version).
    Show {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: Option<String>,
    },
    /// List secrets (no values).
    List {
        #[command(flatten)]
        conn: ConnectionArgs,
        /// Page size used while listing (1-25).
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=25))]
        maxresults: Option<u8>,
    },
    /// List the versions of a secret.
    ListVersions {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
    },
    /// Update attributes, content type or tags of a version (latest unless --version).
    Update {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: Option<String>,
        /// Enable or disable the version.
        #[arg(long)]
        enabled: Option<bool>,
        #[command(flatten)]
        props: Props,
    },
    /// Soft-delete a secret.
    Delete {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
    },
    /// List soft-deleted secrets.
    ListDeleted {
        #[command(flatten)]
        conn: ConnectionArgs,
    },
    /// Recover a soft-deleted secret.
    Recover {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
    },
    /// Permanently remove a soft-deleted secret.
    Purge {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
    },
    /// Write a backup blob of a secret (all versions) to a file.
    Backup {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
        #[arg(long)]
        file: PathBuf,
    },
    /// Restore a secret from a backup file.
    Restore {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        file: PathBuf,
    },
}

#[derive(Args)]
pub struct Props {
    #[arg(long)]
    content_type: Option<String>,
    /// Tags as KEY=VALUE (repeatable).
    #[arg(long = "tag", value_parser = parse_tag)]
    tags: Vec<(String, String)>,
    /// Expiry, as Unix seconds.
    #[arg(long)]
    expires: Option<i64>,
    /// Not valid before, as Unix seconds.
    #[arg(long)]
    not_before: Option<i64>,
    /// Create the version disabled (set only).
    #[arg(long)]
    disabled: bool,
}

pub fn parse_tag(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("tag '{s}' must be KEY=VALUE"))
}

impl Props {
    fn into_body(self, enabled: Option<bool>) -> Map<String, Value> {
        let mut body = Map::new();
        if let Some(ct) = self.content_type {
            body.insert("contentType".into(), json!(ct));
        }
        if !self.tags.is_empty() {
            body.insert(
                "tags".into(),
                json!(self.tags.into_iter().collect::<BTreeMap<_, _>>()),
            );
        }
        let mut attrs = Map::new();
        if let Some(e) = enabled.or(self.disabled.then_some(false)) {
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

fn read_value(value: Option<String>, file: Option<PathBuf>) -> Result<String, String> {
    match (value, file) {
        (Some(v), _) if v == "-" => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| format!("cannot read the value from standard input: {e}"))?;
            Ok(s.trim_end_matches('\n').to_owned())
        }
        (Some(v), _) => Ok(v),
        (None, Some(f)) => {
            std::fs::read_to_string(&f).map_err(|e| format!("cannot read {}: {e}", f.display()))
        }
        (None, None) => Err("give --value or --file".into()),
    }
}

/// Attribute lines for a secret bundle; the value only when `with_value`.
fn describe(format: OutputFormat, v: &Value, with_value: bool) {
    let a = &v["attributes"];
    let mut fields = vec![
        ("name", output::id_part(&v["id"], 2)),
        ("version", output::id_part(&v["id"], 3)),
        ("id", v["id"].as_str().unwrap_or("").to_owned()),
    ];
    if with_value {
        fields.push(("value", v["value"].as_str().unwrap_or("").to_owned()));
    }
    fields.extend([
        ("enabled", a["enabled"].to_string()),
        (
            "content type",
            v["contentType"].as_str().unwrap_or("").to_owned(),
        ),
        (
            "tags",
            if v["tags"].is_null() {
                String::new()
            } else {
                v["tags"].to_string()
            },
        ),
        ("created", output::time(&a["created"])),
        ("updated", output::time(&a["updated"])),
        ("not before", output::time(&a["nbf"])),
        ("expires", output::time(&a["exp"])),
        (
            "recovery level",
            a["recoveryLevel"].as_str().unwrap_or("").to_owned(),
        ),
    ]);
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
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            let a = &i["attributes"];
            let mut row = vec![output::id_part(&i["id"], 2)];
            if version_column {
                row.push(output::id_part(&i["id"], 3));
            }
            row.extend([
                a["enabled"].to_string(),
                i["contentType"].as_str().unwrap_or("").to_owned(),
                output::time(&a["updated"]),
                output::time(&a["exp"]),
            ]);
            if !i["deletedDate"].is_null() {
                row.push(output::time(&i["scheduledPurgeDate"]));
            }
            row
        })
        .collect();
    let mut headers = vec!["NAME"];
    if version_column {
        headers.push("VERSION");
    }
    headers.extend(["ENABLED", "CONTENT TYPE", "UPDATED", "EXPIRES"]);
    if items.iter().any(|i| !i["deletedDate"].is_null()) {
        headers.push("PURGE DATE");
    }
    output::table(&headers, &rows);
}

fn path_of(name: &str, version: Option<&str>) -> String {
    format!("/secrets/{name}/{}", version.unwrap_or(""))
}

pub async fn run(cmd: SecretCommand) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use SecretCommand::*;
    match cmd {
        Set {
            conn,
            name,
            value,
            file,
            props,
        } => {
            let mut body = props.into_body(None);
            body.insert("value".into(), json!(read_value(value, file)?));
            let v = connect(&conn)?
                .call(
                    Method::PUT,
                    &format!("/secrets/{name}"),
                    &[],
                    Some(&Value::Object(body)),
                )
                .await?;
            describe(conn.output, &v, false);
        }
        Show {
            conn,
            name,
            version,
        } => {
            let v = connect(&conn)?
                .call(Method::GET, &path_of(&name, version.as_deref()), &[], None)
                .await?;
            describe(conn.output, &v, true);
        }
        List { conn, maxresults } => {
            let items = connect(&conn)?.list_all("/secrets", maxresults).await?;
            list_table(conn.output, items, false);
        }
        ListVersions { conn, name } => {
            let items = connect(&conn)?
                .list_all(&format!("/secrets/{name}/versions"), None)
                .await?;
            list_table(conn.output, items, true);
        }
        Update {
            conn,
            name,
            version,
            enabled,
            props,
        } => {
            let body = Value::Object(props.into_body(enabled));
            let v = connect(&conn)?
                .call(
                    Method::PATCH,
                    &path_of(&name, version.as_deref()),
                    &[],
                    Some(&body),
                )
                .await?;
            describe(conn.output, &v, false);
        }
        Delete { conn, name } => {
            let v = connect(&conn)?
                .call(Method::DELETE, &format!("/secrets/{name}"), &[], None)
                .await?;
            describe(conn.output, &v, false);
        }
        ListDeleted { conn } => {
            let items = connect(&conn)?.list_all("/deletedsecrets", None).await?;
            list_table(conn.output, items, false);
        }
        Recover { conn, name } => {
            let v = objects::recover(&mut connect(&conn)?, "secret", &name).await?;
            describe(conn.output, &v, false);
        }
        Purge { conn, name } => {
            objects::purge(&mut connect(&conn)?, conn.output, "secret", &name).await?;
        }
        Backup { conn, name, file } => {
            objects::backup(&mut connect(&conn)?, conn.output, "secret", &name, &file).await?;
        }
        Restore { conn, file } => {
            let v = objects::restore(&mut connect(&conn)?, "secret", &file).await?;
            describe(conn.output, &v, false);
        }
    }
    Ok(())
}
