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
}

pub async fn run(cmd: AuditCommand) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let AuditCommand::Verify { conn, path } = cmd;
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
