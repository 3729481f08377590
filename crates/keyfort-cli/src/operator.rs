//! `keyfort operator ...`: node administration that runs next to the data,
//! not through the API.

use std::path::PathBuf;

use clap::Subcommand;
use keyfort_server::bootstrap::VaultPlan;
use serde_json::json;

use crate::connection::OutputFormat;
use crate::output;

#[derive(Subcommand)]
pub enum OperatorCommand {
    /// Prepare a production node before its first start: create the root key
    /// file if missing, a tenant, a vault and an administrator principal whose
    /// client secret is shown once. Run it while the server is stopped.
    Init {
        #[arg(long, env = "KEYFORT_CONFIG")]
        config: Option<PathBuf>,
        /// Name of the first vault (3-24 letters, digits and dashes).
        #[arg(long)]
        vault: String,
        #[arg(long, default_value = "default")]
        tenant_name: String,
        /// Region label of the vault; backups restore only within it.
        #[arg(long, default_value = "local")]
        location: String,
        /// Soft-delete retention, 7 to 90 days.
        #[arg(long, default_value_t = 90)]
        retention_days: i64,
        /// Create the vault without purge protection (not recommended).
        #[arg(long)]
        no_purge_protection: bool,
        #[arg(long, short = 'o', value_enum, default_value = "table")]
        output: OutputFormat,
    },
}

pub async fn run(cmd: OperatorCommand) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    match cmd {
        OperatorCommand::Init {
            config,
            vault,
            tenant_name,
            location,
            retention_days,
            no_purge_protection,
            output: format,
        } => {
            let config =
                keyfort_server::config::Config::load(config.as_deref(), |k| std::env::var(k).ok())?;
            let req = keyfort_server::operator::InitRequest {
                tenant_name,
                vault: VaultPlan {
                    name: vault,
                    location,
                    retention_days,
                    purge_protection: !no_purge_protection,
                    tags: Default::default(),
                },
            };
            let out = keyfort_server::operator::init(&config, req).await?;
            let p = &out.provisioned;
            let value = json!({
                "tenant_id": p.tenant.id,
                "subscription_id": p.tenant.subscription_id,
                "vault_name": p.vault.name,
                "vault_url": out.vault_url,
                "authority": out.authority,
                "audience": out.audience,
                "client_id": p.client_id,
                "client_secret": p.client_secret,
                "root_key_created": out.root_key_created,
            });
            let fields: Vec<(&str, String)> = [
                "tenant_id",
                "subscription_id",
                "vault_name",
                "vault_url",
                "authority",
                "audience",
                "client_id",
                "client_secret",
            ]
            .iter()
            .map(|k| (*k, value[*k].as_str().unwrap_or("").to_owned()))
            .collect();
            output::object(format, &value, &fields);
            if format == OutputFormat::Table {
                eprintln!(
                    "\nThe client secret is shown only this once; store it now. The principal holds Key Vault Administrator on '{}'.{}",
                    p.vault.name,
                    if out.root_key_created {
                        format!(
                            " A new root key was written to {}: back it up apart from the data.",
                            config.seal.key_file.display()
                        )
                    } else {
                        String::new()
                    }
                );
            }
        }
    }
    Ok(())
}
