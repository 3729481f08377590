//! `keyfort certificate ...`: the certificates API from the command line,
//! shaped like `az keyvault certificate`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64STD;
use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::client::Client;
use crate::connection::{ConnectionArgs, OutputFormat};
use crate::secret::parse_tag;
use crate::{objects, output};

#[derive(Clone, Copy, ValueEnum)]
pub enum ContentType {
    Pkcs12,
    Pem,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Issuer {
    /// Self-signed, issued at once.
    #[value(name = "Self")]
    Itself,
    /// A signing request for your CA; finish with `certificate merge`.
    #[value(name = "Unknown")]
    Unknown,
}

#[derive(Args)]
pub struct PolicyArgs {
    /// Subject, e.g. "CN=app.example.com, O=Contoso".
    #[arg(long)]
    subject: Option<String>,
    /// DNS names for the subject alternative names (repeatable).
    #[arg(long = "dns")]
    dns_names: Vec<String>,
    #[arg(long, default_value = "Self", value_enum)]
    issuer: Issuer,
    #[arg(long, default_value = "RSA")]
    kty: String,
    /// RSA key size: 2048, 3072 or 4096.
    #[arg(long)]
    size: Option<u32>,
    /// EC curve: P-256, P-384 or P-521.
    #[arg(long)]
    curve: Option<String>,
    #[arg(long, default_value_t = 12)]
    validity_months: u32,
    /// How the certificate's secret holds it.
    #[arg(long, value_enum, default_value = "pkcs12")]
    content_type: ContentType,
}

impl PolicyArgs {
    fn policy(&self) -> Value {
        let mut key = json!({ "kty": self.kty, "exportable": true, "reuse_key": false });
        if let Some(size) = self.size {
            key["key_size"] = json!(size);
        }
        if let Some(crv) = &self.curve {
            key["crv"] = json!(crv);
        }
        let mut x509 = json!({ "validity_months": self.validity_months });
        if let Some(subject) = &self.subject {
            x509["subject"] = json!(subject);
        }
        if !self.dns_names.is_empty() {
            x509["sans"] = json!({ "dns_names": self.dns_names });
        }
        json!({
            "key_props": key,
            "secret_props": { "contentType": match self.content_type {
                ContentType::Pkcs12 => "application/x-pkcs12",
                ContentType::Pem => "application/x-pem-file",
            }},
            "x509_props": x509,
            "issuer": { "name": match self.issuer { Issuer::Itself => "Self", Issuer::Unknown => "Unknown" } },
        })
    }
}

#[derive(Subcommand)]
pub enum CertificateCommand {
    /// Create a certificate (or a new version): self-signed, or a signing request.
    Create {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        policy: PolicyArgs,
        /// Tags as KEY=VALUE (repeatable).
        #[arg(long = "tag", value_parser = parse_tag)]
        tags: Vec<(String, String)>,
    },
    /// Import a certificate with its private key from a PFX (PKCS#12) or PEM file.
    Import {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
        #[arg(long)]
        file: PathBuf,
        /// Read the PFX password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Complete a signing request with the certificate your CA issued (PEM, leaf first).
    Merge {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
        #[arg(long)]
        file: PathBuf,
    },
    /// Show a certificate (latest version unless --version).
    Show {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: Option<String>,
    },
    /// Show the pending (or last) issuing operation, with its CSR.
    Pending {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
        /// Cancel it.
        #[arg(long)]
        cancel: bool,
    },
    /// Show the certificate's policy.
    Policy {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
    },
    /// List certificates.
    List {
        #[command(flatten)]
        conn: ConnectionArgs,
    },
    /// List the versions of a certificate.
    ListVersions {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
    },
    /// Enable or disable a version, or change its tags.
    Update {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: Option<String>,
        #[arg(long)]
        enabled: Option<bool>,
        #[arg(long = "tag", value_parser = parse_tag)]
        tags: Vec<(String, String)>,
    },
    /// Soft-delete a certificate.
    Delete {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
    },
    /// List soft-deleted certificates.
    ListDeleted {
        #[command(flatten)]
        conn: ConnectionArgs,
    },
    /// Recover a soft-deleted certificate.
    Recover {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
    },
    /// Permanently remove a soft-deleted certificate.
    Purge {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
    },
    /// Write a backup blob of a certificate (all versions) to a file.
    Backup {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
        #[arg(long)]
        file: PathBuf,
    },
    /// Restore a certificate from a backup file.
    Restore {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        file: PathBuf,
    },
}

fn connect(conn: &ConnectionArgs) -> Result<Client, String> {
    Client::new(conn.resolve()?)
}

fn tags_json(tags: Vec<(String, String)>) -> Option<Value> {
    (!tags.is_empty()).then(|| json!(tags.into_iter().collect::<BTreeMap<_, _>>()))
}

fn describe(format: OutputFormat, v: &Value) {
    let a = &v["attributes"];
    let mut fields = vec![
        ("name", output::id_part(&v["id"], 2)),
        ("version", output::id_part(&v["id"], 3)),
        ("id", v["id"].as_str().unwrap_or("").to_owned()),
        (
            "subject",
            v["policy"]["x509_props"]["subject"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        ),
        ("thumbprint", v["x5t"].as_str().unwrap_or("").to_owned()),
        (
            "content type",
            v["contentType"].as_str().unwrap_or("").to_owned(),
        ),
        ("enabled", a["enabled"].to_string()),
        ("not before", output::time(&a["nbf"])),
        ("expires", output::time(&a["exp"])),
    ];
    if !v["deletedDate"].is_null() {
        fields.push(("deleted", output::time(&v["deletedDate"])));
        fields.push(("scheduled purge", output::time(&v["scheduledPurgeDate"])));
    }
    output::object(format, v, &fields);
}

fn describe_operation(format: OutputFormat, v: &Value) {
    let csr = v["csr"].as_str().map(|c| {
        let lines: Vec<&str> = c
            .as_bytes()
            .chunks(64)
            .map(|l| std::str::from_utf8(l).unwrap_or(""))
            .collect();
        format!(
            "\n-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----",
            lines.join("\n")
        )
    });
    let fields = vec![
        ("status", v["status"].as_str().unwrap_or("").to_owned()),
        (
            "issuer",
            v["issuer"]["name"].as_str().unwrap_or("").to_owned(),
        ),
        (
            "request id",
            v["request_id"].as_str().unwrap_or("").to_owned(),
        ),
        ("csr", csr.unwrap_or_default()),
    ];
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
    headers.extend(["ENABLED", "EXPIRES", "THUMBPRINT"]);
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            let mut row = vec![output::id_part(&i["id"], 2)];
            if version_column {
                row.push(output::id_part(&i["id"], 3));
            }
            row.extend([
                i["attributes"]["enabled"].to_string(),
                output::time(&i["attributes"]["exp"]),
                i["x5t"].as_str().unwrap_or("").to_owned(),
            ]);
            row
        })
        .collect();
    output::table(&headers, &rows);
}

/// The base64 DER certificates of a PEM file, in order.
fn pem_certificates(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if line == "-----BEGIN CERTIFICATE-----" {
            current = Some(String::new());
        } else if line == "-----END CERTIFICATE-----" {
            out.extend(current.take());
        } else if let Some(c) = current.as_mut() {
            c.push_str(line);
        }
    }
    if out.is_empty() {
        return Err("the file holds no PEM certificate".into());
    }
    Ok(out)
}

pub async fn run(cmd: CertificateCommand) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use CertificateCommand::*;
    match cmd {
        Create {
            conn,
            name,
            policy,
            tags,
        } => {
            let mut body = Map::new();
            body.insert("policy".into(), policy.policy());
            if let Some(tags) = tags_json(tags) {
                body.insert("tags".into(), tags);
            }
            let mut client = connect(&conn)?;
            let path = format!("/certificates/{name}/create");
            client
                .call(Method::POST, &path, &[], Some(&Value::Object(body)))
                .await?;
            let op = client
                .call(
                    Method::GET,
                    &format!("/certificates/{name}/pending"),
                    &[],
                    None,
                )
                .await?;
            if op["status"] == "completed" {
                let v = client
                    .call(Method::GET, &format!("/certificates/{name}/"), &[], None)
                    .await?;
                describe(conn.output, &v);
            } else {
                describe_operation(conn.output, &op);
            }
        }
        Import {
            conn,
            name,
            file,
            password_stdin,
        } => {
            let raw = zeroize::Zeroizing::new(
                std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?,
            );
            let value = if keyfort_core::certificates::is_pem(&raw) {
                zeroize::Zeroizing::new(String::from_utf8_lossy(&raw).into_owned())
            } else {
                zeroize::Zeroizing::new(B64STD.encode(&*raw))
            };
            let mut body = json!({ "value": value.as_str() });
            if password_stdin {
                let mut pwd = zeroize::Zeroizing::new(String::new());
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut pwd)
                    .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
                body["pwd"] = json!(pwd.trim_end_matches('\n'));
            }
            let path = format!("/certificates/{name}/import");
            let v = connect(&conn)?
                .call(Method::POST, &path, &[], Some(&body))
                .await?;
            describe(conn.output, &v);
        }
        Merge { conn, name, file } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let body = json!({ "x5c": pem_certificates(&text)? });
            let path = format!("/certificates/{name}/pending/merge");
            let v = connect(&conn)?
                .call(Method::POST, &path, &[], Some(&body))
                .await?;
            describe(conn.output, &v);
        }
        Show {
            conn,
            name,
            version,
        } => {
            let path = format!("/certificates/{name}/{}", version.unwrap_or_default());
            let v = connect(&conn)?.call(Method::GET, &path, &[], None).await?;
            describe(conn.output, &v);
        }
        Pending { conn, name, cancel } => {
            let path = format!("/certificates/{name}/pending");
            let mut client = connect(&conn)?;
            let v = if cancel {
                let body = json!({ "cancellation_requested": true });
                client.call(Method::PATCH, &path, &[], Some(&body)).await?
            } else {
                client.call(Method::GET, &path, &[], None).await?
            };
            describe_operation(conn.output, &v);
        }
        Policy { conn, name } => {
            let path = format!("/certificates/{name}/policy");
            let v = connect(&conn)?.call(Method::GET, &path, &[], None).await?;
            output::json(&v);
        }
        List { conn } => {
            let items = connect(&conn)?.list_all("/certificates", None).await?;
            list_table(conn.output, items, false);
        }
        ListVersions { conn, name } => {
            let path = format!("/certificates/{name}/versions");
            let items = connect(&conn)?.list_all(&path, None).await?;
            list_table(conn.output, items, true);
        }
        Update {
            conn,
            name,
            version,
            enabled,
            tags,
        } => {
            let mut body = Map::new();
            if let Some(e) = enabled {
                body.insert("attributes".into(), json!({ "enabled": e }));
            }
            if let Some(tags) = tags_json(tags) {
                body.insert("tags".into(), tags);
            }
            let path = format!("/certificates/{name}/{}", version.unwrap_or_default());
            let v = connect(&conn)?
                .call(Method::PATCH, &path, &[], Some(&Value::Object(body)))
                .await?;
            describe(conn.output, &v);
        }
        Delete { conn, name } => {
            let path = format!("/certificates/{name}");
            let v = connect(&conn)?
                .call(Method::DELETE, &path, &[], None)
                .await?;
            describe(conn.output, &v);
        }
        ListDeleted { conn } => {
            let items = connect(&conn)?
                .list_all("/deletedcertificates", None)
                .await?;
            list_table(conn.output, items, false);
        }
        Recover { conn, name } => {
            let v = objects::recover(&mut connect(&conn)?, "certificate", &name).await?;
            describe(conn.output, &v);
        }
        Purge { conn, name } => {
            objects::purge(&mut connect(&conn)?, conn.output, "certificate", &name).await?;
        }
        Backup { conn, name, file } => {
            objects::backup(
                &mut connect(&conn)?,
                conn.output,
                "certificate",
                &name,
                &file,
            )
            .await?;
        }
        Restore { conn, file } => {
            let v = objects::restore(&mut connect(&conn)?, "certificate", &file).await?;
            describe(conn.output, &v);
        }
    }
    Ok(())
}
