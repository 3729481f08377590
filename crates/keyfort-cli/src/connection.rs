//! Where the CLI connects and with which credentials: a dev.json
//! (`--dev-json` or `KEYFORT_DEV_JSON`), or `KEYFORT_*` variables, which
//! override the file field by field.

use std::path::PathBuf;

use clap::Args;
use serde::Deserialize;

#[derive(Args, Clone, Debug)]
pub struct ConnectionArgs {
    /// A dev.json written by `keyfort dev`.
    #[arg(long, env = "KEYFORT_DEV_JSON", global = true)]
    pub dev_json: Option<PathBuf>,
    /// Vault name (replaces the vault in the vault URL).
    #[arg(long, global = true)]
    pub vault: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "table", global = true)]
    pub output: OutputFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Deserialize, Default)]
struct DevJson {
    vault_url: Option<String>,
    tenant_id: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    authority: Option<String>,
    ca_cert: Option<String>,
    audience: Option<String>,
}

/// Everything needed to call a vault.
pub struct Connection {
    pub vault_url: String,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub authority: String,
    pub ca_cert: Option<PathBuf>,
    pub audience: String,
}

impl ConnectionArgs {
    pub fn resolve(&self) -> Result<Connection, String> {
        let file: DevJson = match &self.dev_json {
            Some(p) => {
                let text =
                    std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
                serde_json::from_slice(&text)
                    .map_err(|e| format!("{} is not a dev.json: {e}", p.display()))?
            }
            None => DevJson::default(),
        };
        let pick = |var: &str, from_file: Option<String>| -> Result<String, String> {
            std::env::var(var).ok().or(from_file).ok_or_else(|| {
                format!("no {var}: pass --dev-json FILE (written by 'keyfort dev') or set {var}")
            })
        };
        let mut vault_url = pick("KEYFORT_VAULT_URL", file.vault_url)?;
        if let Some(name) = &self.vault {
            keyfort_core::names::check_vault_name(name).map_err(|e| e.to_string())?;
            vault_url = replace_vault(&vault_url, name)?;
        }
        let audience = match std::env::var("KEYFORT_AUDIENCE").ok().or(file.audience) {
            Some(a) => a,
            None => audience_of(&vault_url)?,
        };
        Ok(Connection {
            tenant_id: pick("KEYFORT_TENANT_ID", file.tenant_id)?,
            client_id: pick("KEYFORT_CLIENT_ID", file.client_id)?,
            client_secret: pick("KEYFORT_CLIENT_SECRET", file.client_secret)?,
            authority: pick("KEYFORT_AUTHORITY", file.authority)?,
            ca_cert: std::env::var("KEYFORT_CA_CERT")
                .ok()
                .or(file.ca_cert)
                .map(PathBuf::from),
            vault_url,
            audience,
        })
    }
}

fn split_url(url: &str) -> Result<(&str, &str), String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("the vault URL '{url}' must start with https://"))?;
    rest.split_once('.')
        .ok_or_else(|| format!("the vault URL '{url}' has no vault name in its host"))
}

fn replace_vault(url: &str, vault: &str) -> Result<String, String> {
    let (_, domain) = split_url(url)?;
    Ok(format!("https://{vault}.{}", domain.trim_end_matches('/')))
}

/// `https://{vault}.{suffix}:{port}` has audience `https://{suffix}:{port}`.
fn audience_of(url: &str) -> Result<String, String> {
    let (_, domain) = split_url(url)?;
    Ok(format!("https://{}", domain.trim_end_matches('/')))
}

#[cfg(test)]
mod tests {
    #[test]
    fn vault_urls() {
        assert_eq!(
            super::replace_vault("https://dev.vault.localhost:8443", "prod").unwrap(),
            "https://prod.vault.localhost:8443"
        );
        assert_eq!(
            super::audience_of("https://dev.vault.localhost:8443/").unwrap(),
            "https://vault.localhost:8443"
        );
        assert!(super::audience_of("http://dev.vault.localhost").is_err());
    }
}
