//! Where the CLI connects and with which credentials. Settings come, field
//! by field, from `KEYFORT_*` variables, then a dev.json (`--dev-json` or
//! `KEYFORT_DEV_JSON`), then the login cache that `keyfort login` writes.
//! Credentials: a client secret (variables or dev.json), else the cached
//! login tokens.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use serde::{Deserialize, Serialize};

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

/// The connection settings, as in dev.json and the login cache.
#[derive(Serialize, Deserialize, Default, Clone)]
pub struct Settings {
    pub vault_url: Option<String>,
    pub tenant_id: Option<String>,
    pub subscription_id: Option<String>,
    pub client_id: Option<String>,
    #[serde(skip_serializing)]
    pub client_secret: Option<String>,
    pub authority: Option<String>,
    pub ca_cert: Option<String>,
    pub audience: Option<String>,
    pub management_url: Option<String>,
    pub management_audience: Option<String>,
}

/// A token cached by `keyfort login`.
#[derive(Serialize, Deserialize, Clone)]
pub struct CachedToken {
    pub access_token: String,
    pub expires_on: i64,
}

/// What `keyfort login` writes (mode 0600).
#[derive(Serialize, Deserialize, Default)]
pub struct LoginCache {
    #[serde(flatten)]
    pub settings: Settings,
    /// By audience.
    pub tokens: BTreeMap<String, CachedToken>,
}

pub fn login_cache_path() -> PathBuf {
    if let Ok(p) = std::env::var("KEYFORT_LOGIN_CACHE") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    PathBuf::from(home).join(".keyfort").join("login.json")
}

pub fn read_login_cache() -> Option<LoginCache> {
    std::fs::read(login_cache_path())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

pub enum Credential {
    ClientSecret { client_id: String, secret: String },
    Cached(BTreeMap<String, CachedToken>),
}

/// Everything needed to call the server.
pub struct Connection {
    pub settings: Settings,
    pub tenant_id: String,
    pub authority: String,
    pub credential: Credential,
}

fn merge(into: &mut Option<String>, from: Option<String>) {
    if into.is_none() {
        *into = from;
    }
}

impl ConnectionArgs {
    /// Settings from the environment, then dev.json, then the login cache.
    pub fn settings(&self) -> Result<(Settings, Option<LoginCache>), String> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut s = Settings {
            vault_url: env("KEYFORT_VAULT_URL"),
            tenant_id: env("KEYFORT_TENANT_ID"),
            subscription_id: env("KEYFORT_SUBSCRIPTION_ID"),
            client_id: env("KEYFORT_CLIENT_ID"),
            client_secret: env("KEYFORT_CLIENT_SECRET"),
            authority: env("KEYFORT_AUTHORITY"),
            ca_cert: env("KEYFORT_CA_CERT"),
            audience: env("KEYFORT_AUDIENCE"),
            management_url: env("KEYFORT_MANAGEMENT_URL"),
            management_audience: env("KEYFORT_MANAGEMENT_AUDIENCE"),
        };
        if let Some(p) = &self.dev_json {
            let text = std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            let d: Settings = serde_json::from_slice(&text)
                .map_err(|e| format!("{} is not a dev.json: {e}", p.display()))?;
            fill(&mut s, d);
        }
        let cache = read_login_cache();
        if let Some(c) = &cache {
            fill(&mut s, c.settings.clone());
        }
        if let (Some(name), Some(url)) = (&self.vault, &s.vault_url) {
            keyfort_core::names::check_vault_name(name).map_err(|e| e.to_string())?;
            s.vault_url = Some(replace_vault(url, name)?);
        }
        if s.audience.is_none()
            && let Some(url) = &s.vault_url
        {
            s.audience = Some(audience_of(url)?);
        }
        Ok((s, cache))
    }

    pub fn resolve(&self) -> Result<Connection, String> {
        let (settings, cache) = self.settings()?;
        let missing = |what: &str, var: &str| {
            format!(
                "no {what}: pass --dev-json FILE (written by 'keyfort dev'), set {var}, or run 'keyfort login'"
            )
        };
        let tenant_id = settings
            .tenant_id
            .clone()
            .ok_or_else(|| missing("tenant id", "KEYFORT_TENANT_ID"))?;
        let authority = settings
            .authority
            .clone()
            .ok_or_else(|| missing("authority", "KEYFORT_AUTHORITY"))?;
        let credential = match (&settings.client_id, &settings.client_secret, cache) {
            (Some(id), Some(secret), _) => Credential::ClientSecret {
                client_id: id.clone(),
                secret: secret.clone(),
            },
            (_, _, Some(c)) if !c.tokens.is_empty() => Credential::Cached(c.tokens),
            _ => {
                return Err(missing(
                    "credentials",
                    "KEYFORT_CLIENT_ID and KEYFORT_CLIENT_SECRET",
                ));
            }
        };
        Ok(Connection {
            settings,
            tenant_id,
            authority,
            credential,
        })
    }
}

fn fill(s: &mut Settings, from: Settings) {
    merge(&mut s.vault_url, from.vault_url);
    merge(&mut s.tenant_id, from.tenant_id);
    merge(&mut s.subscription_id, from.subscription_id);
    merge(&mut s.client_id, from.client_id);
    merge(&mut s.client_secret, from.client_secret);
    merge(&mut s.authority, from.authority);
    merge(&mut s.ca_cert, from.ca_cert);
    merge(&mut s.audience, from.audience);
    merge(&mut s.management_url, from.management_url);
    merge(&mut s.management_audience, from.management_audience);
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
