//! `keyfort audit verify`: checks the audit trail's hash chain, offline on
//! log files (`--path`), or by asking the running server to verify its own
//! (which also checks checkpoint signatures and the head kept in its store).

use std::path::PathBuf;

use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

use crate::client::Client;
use crate::connection::{ConnectionArgs, OutputFormat};
use crate::output;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Report the first record where an edit, deletion, reordering or truncation breaks the chain.
    Verify {
        #[command(flatten)]
        conn: ConnectionArgs,
        /// An audit file (or the folder holding audit.jsonl); rotated files beside it are read too.
        #[arg(long)]
        path: Option<PathBuf>,
    },
    /// Records matching every filter given, most recent last.
    Query {
        #[command(flatten)]
        conn: ConnectionArgs,
        /// RFC 3339, e.g. 2026-11-28T00:00:00Z.
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long = "vault-name")]
        vault_name: Option<String>,
        /// e.g. SecretGet, VaultPurge, TokenIssue.
        #[arg(long)]
        operation: Option<String>,
        /// Object id or client id.
        #[arg(long)]
        caller: Option<String>,
        /// Success or Failure.
        #[arg(long)]
        result: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

pub async fn run(cmd: AuditCommand) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (conn, path) = match cmd {
        AuditCommand::Verify { conn, path } => (conn, path),
        AuditCommand::Query {
            conn,
            from,
            to,
            vault_name,
            operation,
            caller,
            result,
            limit,
        } => {
            let mut c = Client::new(conn.resolve()?)?;
            let mut q: Vec<(&str, String)> = vec![("limit", limit.to_string())];
            for (k, v) in [
                ("from", from),
                ("to", to),
                ("vault", vault_name),
                ("operation", operation),
                ("caller", caller),
                ("result", result),
            ] {
                if let Some(v) = v {
                    q.push((k, v));
                }
            }
            let v = c
                .management(Method::GET, "/keyfort/audit/records", &q, None)
                .await?;
            output::rows(
                conn.output,
                v["value"].as_array().map(Vec::as_slice).unwrap_or_default(),
                &[
                    ("TIME", "/time"),
                    ("OPERATION", "/operationName"),
                    ("VAULT", "/vault"),
                    ("OBJECT", "/object"),
                    ("STATUS", "/httpStatus"),
                    ("CALLER", "/identity/appId"),
                    ("IP", "/callerIp"),
                ],
            );
            return Ok(());
        }
    };
    let report: Value = match path {
        Some(p) => {
            let file = if p.is_dir() { p.join("audit.jsonl") } else { p };
            let files = keyfort_core::audit::log_files(&file);
            if files.is_empty() {
                return Err(format!("no audit log at {}", file.display()).into());
            }
            serde_json::to_value(keyfort_core::audit::verify(&files, None, None))?
        }
        None => {
            Client::new(conn.resolve()?)?
                .management(Method::GET, "/keyfort/audit/verify", &[], None)
                .await?
        }
    };
    match conn.output {
        OutputFormat::Json => output::json(&report),
        OutputFormat::Table => {
            println!(
                "{} records, last sequence {}, {} checkpoints{}",
                report["records"],
                report["lastSequence"],
                report["checkpoints"],
                if report["signaturesChecked"] == true {
                    " (signatures checked)"
                } else {
                    " (signatures not checked offline)"
                }
            );
        }
    }
    match report["firstBreak"].as_object() {
        None => Ok(()),
        Some(b) => Err(format!(
            "the audit chain breaks at {}:{} (sequence {}): {}",
            b["file"].as_str().unwrap_or("?"),
            b["line"],
            b["sequence"],
            b["problem"].as_str().unwrap_or("")
        )
        .into()),
    }
}
