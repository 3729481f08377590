//! `keyfort advisor`: checks each vault of your tenant against the Azure Key
//! Vault best practices. `--strict` exits non-zero on any high finding, for
//! pipelines.

use clap::Args;
use reqwest::Method;

use crate::client::Client;
use crate::connection::ConnectionArgs;
use crate::output;

#[derive(Args)]
pub struct AdvisorArgs {
    #[command(flatten)]
    conn: ConnectionArgs,
    /// Only this vault (default: every vault of the tenant).
    #[arg(long = "only")]
    only: Option<String>,
    /// Keys generated in a vault longer ago than this need a backup taken since.
    #[arg(long, default_value_t = 30)]
    key_backup_days: u32,
    /// Exit with status 1 when any finding is high.
    #[arg(long)]
    strict: bool,
}

pub async fn run(args: AdvisorArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut c = Client::new(args.conn.resolve()?)?;
    let mut query: Vec<(&str, String)> = args.only.iter().map(|v| ("vault", v.clone())).collect();
    query.push(("keyBackupDays", args.key_backup_days.to_string()));
    let v = c
        .management(Method::GET, "/keyfort/advisor", &query, None)
        .await?;
    let findings = v["value"].as_array().cloned().unwrap_or_default();
    output::rows(
        args.conn.output,
        &findings,
        &[
            ("SEVERITY", "/severity"),
            ("VAULT", "/vault"),
            ("CHECK", "/check"),
            ("EVIDENCE", "/evidence"),
            ("FIX", "/fix"),
        ],
    );
    let high = findings.iter().filter(|f| f["severity"] == "High").count();
    if args.strict && high > 0 {
        return Err(format!("{high} high finding(s); fix them or run without --strict").into());
    }
    Ok(())
}
