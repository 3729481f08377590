//! `keyfort event ...`: webhook subscriptions to a vault's events, and the
//! deliveries that failed for good.

use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

use crate::client::Client;
use crate::connection::ConnectionArgs;
use crate::output;

#[derive(Subcommand)]
pub enum EventCommand {
    /// Webhook subscriptions.
    #[command(subcommand)]
    Subscription(SubscriptionCommand),
    /// Deliveries that failed after every retry.
    DeadLetters {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long = "vault-name")]
        vault_name: String,
    },
}

#[derive(Subcommand)]
pub enum SubscriptionCommand {
    /// Subscribe a webhook; prints the HMAC secret deliveries are signed with (once).
    Create {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long = "vault-name")]
        vault_name: String,
        #[arg(long)]
        endpoint: String,
        /// SecretNewVersionCreated, SecretNearExpiry or SecretExpired (repeatable; default all).
        #[arg(long = "event-type")]
        event_types: Vec<String>,
    },
    List {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long = "vault-name")]
        vault_name: String,
    },
    Delete {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long = "vault-name")]
        vault_name: String,
        #[arg(long)]
        id: String,
    },
}

pub async fn run(cmd: EventCommand) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let base = |v: &str| format!("/keyfort/vaults/{v}");
    match cmd {
        EventCommand::Subscription(SubscriptionCommand::Create {
            conn,
            vault_name,
            endpoint,
            event_types,
        }) => {
            let mut c = Client::new(conn.resolve()?)?;
            let body = json!({ "endpoint": endpoint, "eventTypes": event_types });
            let s = c
                .management(
                    Method::POST,
                    &format!("{}/eventSubscriptions", base(&vault_name)),
                    &[],
                    Some(&body),
                )
                .await?;
            output::fields(
                conn.output,
                &s,
                &[
                    ("id", "/id"),
                    ("vault", "/vaultName"),
                    ("endpoint", "/endpoint"),
                    ("event types", "/eventTypes"),
                    ("signing secret", "/secret"),
                ],
            );
        }
        EventCommand::Subscription(SubscriptionCommand::List { conn, vault_name }) => {
            let mut c = Client::new(conn.resolve()?)?;
            let v = c
                .management(
                    Method::GET,
                    &format!("{}/eventSubscriptions", base(&vault_name)),
                    &[],
                    None,
                )
                .await?;
            output::rows(
                conn.output,
                v["value"].as_array().map(Vec::as_slice).unwrap_or_default(),
                &[
                    ("ID", "/id"),
                    ("ENDPOINT", "/endpoint"),
                    ("EVENT TYPES", "/eventTypes"),
                ],
            );
        }
        EventCommand::Subscription(SubscriptionCommand::Delete {
            conn,
            vault_name,
            id,
        }) => {
            let mut c = Client::new(conn.resolve()?)?;
            c.management(
                Method::DELETE,
                &format!("{}/eventSubscriptions/{id}", base(&vault_name)),
                &[],
                None,
            )
            .await?;
            crate::vault::done(&conn, "deleted", &id, "Deleted event subscription {}.");
        }
        EventCommand::DeadLetters { conn, vault_name } => {
            let mut c = Client::new(conn.resolve()?)?;
            let v = c
                .management(
                    Method::GET,
                    &format!("{}/deadLetters", base(&vault_name)),
                    &[],
                    None,
                )
                .await?;
            output::rows(
                conn.output,
                v["value"].as_array().map(Vec::as_slice).unwrap_or_default(),
                &[
                    ("ID", "/id"),
                    ("ENDPOINT", "/endpoint"),
                    ("ATTEMPTS", "/attempts"),
                    ("LAST ERROR", "/lastError"),
                    ("EVENT", "/body/0/eventType"),
                ],
            );
        }
    }
    Ok(())
}
