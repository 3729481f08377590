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
        /// Offline: the issuer's JWKS (`/{tenant}/discovery/v2.0/keys`), to check checkpoint signatures.
        #[arg(long, requires = "path")]
        jwks: Option<PathBuf>,
        /// Offline: a head known to be genuine, `SEQUENCE:HASH` (an earlier verify's lastSequence
        /// and lastHash), so a log cut short of it is found.
        #[arg(long, requires = "path")]
        head: Option<String>,
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

/// `SEQUENCE:HASH`.
fn parse_head(s: &str) -> Result<(u64, String), String> {
    s.split_once(':')
        .and_then(|(seq, hash)| {
            let ok = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
            Some((seq.parse().ok()?, hash.to_ascii_lowercase())).filter(|_| ok)
        })
        .ok_or_else(|| format!("--head must be SEQUENCE:HASH (a 64-digit hex hash), not '{s}'"))
}

pub async fn run(cmd: AuditCommand) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (conn, path, jwks, head) = match cmd {
        AuditCommand::Verify {
            conn,
            path,
            jwks,
            head,
        } => (conn, path, jwks, head),
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
            let head = head.as_deref().map(parse_head).transpose()?;
            let jwks: Option<Value> = match &jwks {
                Some(f) => Some(
                    serde_json::from_slice(&std::fs::read(f)?)
                        .map_err(|e| format!("--jwks {}: not a JWKS document: {e}", f.display()))?,
                ),
                None => None,
            };
            let check = |sig: &str, seq: u64, hash: &str| {
                jwks.as_ref().is_some_and(|jwks| {
                    keyfort_core::audit::checkpoint_signed_in(jwks, sig, seq, hash)
                })
            };
            let check: Option<keyfort_core::audit::SignatureCheck> =
                jwks.is_some().then_some(&check as _);
            serde_json::to_value(keyfort_core::audit::verify(&files, check, head))?
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
