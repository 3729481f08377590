//! `keyfort alert rule|history`: alert rules over the audit stream.

use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

use crate::client::Client;
use crate::connection::ConnectionArgs;
use crate::output;

#[derive(Subcommand)]
pub enum AlertCommand {
    #[command(subcommand)]
    Rule(RuleCommand),
    /// Alerts that fired.
    History {
        #[command(flatten)]
        conn: ConnectionArgs,
    },
}

#[derive(Subcommand)]
pub enum RuleCommand {
    /// Fire when more than --threshold matching records fall within --window-secs.
    Create {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
        /// Operation name to match, e.g. SecretPurge (repeatable; all when none).
        #[arg(long = "operation")]
        operations: Vec<String>,
        /// Success or Failure.
        #[arg(long)]
        result: Option<String>,
        /// Only records of this vault.
        #[arg(long = "vault-name")]
        vault_name: Option<String>,
        /// Only this caller (object id or client id).
        #[arg(long)]
        caller: Option<String>,
        #[arg(long, default_value_t = 0)]
        threshold: u32,
        #[arg(long, default_value_t = 300)]
        window_secs: i64,
        /// callerIp or caller.
        #[arg(long)]
        group_by: Option<String>,
        #[arg(long)]
        webhook: Option<String>,
        #[arg(long, default_value_t = 300)]
        cooldown_secs: i64,
    },
    List {
        #[command(flatten)]
        conn: ConnectionArgs,
    },
    Delete {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        id: String,
    },
}

const RULE_FIELDS: &[(&str, &str)] = &[
    ("id", "/id"),
    ("name", "/name"),
    ("operations", "/operations"),
    ("result", "/result"),
    ("threshold", "/threshold"),
    ("window", "/windowSecs"),
    ("group by", "/groupBy"),
];

pub async fn run(cmd: AlertCommand) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let base = |c: &Client| format!("/keyfort/tenants/{}", c.conn.tenant_id);
    match cmd {
        AlertCommand::Rule(RuleCommand::Create {
            conn,
            name,
            operations,
            result,
            vault_name,
            caller,
            threshold,
            window_secs,
            group_by,
            webhook,
            cooldown_secs,
        }) => {
            let mut c = Client::new(conn.resolve()?)?;
            let body = json!({
                "id": "", "tenantId": "", "name": name, "operations": operations, "result": result, "vault": vault_name,
                "caller": caller, "threshold": threshold, "windowSecs": window_secs, "groupBy": group_by,
                "webhook": webhook, "cooldownSecs": cooldown_secs, "enabled": true,
            });
            let r = c
                .management(
                    Method::POST,
                    &format!("{}/alertRules", base(&c)),
                    &[],
                    Some(&body),
                )
                .await?;
            output::fields(conn.output, &r, RULE_FIELDS);
        }
        AlertCommand::Rule(RuleCommand::List { conn }) => {
            let mut c = Client::new(conn.resolve()?)?;
            let v = c
                .management(Method::GET, &format!("{}/alertRules", base(&c)), &[], None)
                .await?;
            output::rows(
                conn.output,
                v["value"].as_array().map(Vec::as_slice).unwrap_or_default(),
                &[
                    ("ID", "/id"),
                    ("NAME", "/name"),
                    ("THRESHOLD", "/threshold"),
                    ("WINDOW", "/windowSecs"),
                    ("GROUP BY", "/groupBy"),
                ],
            );
        }
        AlertCommand::Rule(RuleCommand::Delete { conn, id }) => {
            let mut c = Client::new(conn.resolve()?)?;
            c.management(
                Method::DELETE,
                &format!("{}/alertRules/{id}", base(&c)),
                &[],
                None,
            )
            .await?;
            crate::vault::done(&conn, "deleted", &id, "Deleted alert rule {}.");
        }
        AlertCommand::History { conn } => {
            let mut c = Client::new(conn.resolve()?)?;
            let v = c
                .management(
                    Method::GET,
                    &format!("{}/alertHistory", base(&c)),
                    &[],
                    None,
                )
                .await?;
            output::rows(
                conn.output,
                v["value"].as_array().map(Vec::as_slice).unwrap_or_default(),
                &[
                    ("TIME", "/time"),
                    ("RULE", "/ruleName"),
                    ("GROUP", "/group"),
                    ("COUNT", "/count"),
                    ("VAULT", "/vault"),
                    ("LAST OPERATION", "/lastOperation"),
                ],
            );
        }
    }
    Ok(())
}
