//! Server configuration: a TOML file, every setting overridable by a
//! `KEYFORT_*` environment variable. [`Config::validate`] refuses unsafe or
//! contradictory settings and names the setting at fault.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use keyfort_core::network::{Cidr, NetworkSettings};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// The port clients use, when a proxy or port mapping changes it.
    #[serde(default)]
    pub public_port: Option<u16>,
    /// Vault hosts are `{vault}.{dns_suffix}`.
    #[serde(default = "default_suffix")]
    pub dns_suffix: String,
    /// The vault answered on bare hosts (`localhost`, an IP address).
    #[serde(default)]
    pub default_vault: Option<String>,
    /// Public https origin of the token issuer (the `authority` clients use).
    pub issuer_url: String,
    /// Folder for the database and, unless configured otherwise, the audit log.
    pub data_dir: PathBuf,
    pub tls: TlsConfig,
    pub seal: SealConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default = "default_token_lifetime")]
    pub token_lifetime_secs: i64,
    /// How often the purge sweeper runs.
    #[serde(default = "default_sweep")]
    pub sweep_interval_secs: u64,
    #[serde(default)]
    pub network: NetworkConfig,
    #[serde(default)]
    pub private_endpoints: Vec<PrivateEndpointConfig>,
    /// Near-expiry events fire this many days before a secret's `exp`.
    #[serde(default = "default_near_expiry")]
    pub near_expiry_days: i64,
}

fn default_near_expiry() -> i64 {
    30
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// Proxies whose `X-Forwarded-For` is believed (addresses or CIDR ranges).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Named virtual networks (sets of CIDR ranges) for `virtualNetworkRules`.
    #[serde(default)]
    pub virtual_networks: std::collections::BTreeMap<String, Vec<String>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivateEndpointConfig {
    pub name: String,
    pub listen: SocketAddr,
    /// Names of the vaults this endpoint serves.
    pub vaults: Vec<String>,
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealConfig {
    /// A file holding the 32-byte root key (hex), readable by its owner only.
    pub key_file: PathBuf,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// JSON-lines audit file; defaults to `{data_dir}/audit.jsonl`.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Also write every record to standard output.
    #[serde(default)]
    pub stdout: bool,
    /// Also send every record to this https webhook (batched JSON lines).
    #[serde(default)]
    pub webhook: Option<String>,
    /// Rotate the file when it would grow past this many bytes.
    #[serde(default)]
    pub max_file_bytes: Option<u64>,
    /// A signed checkpoint after this many records.
    #[serde(default)]
    pub checkpoint_every: Option<u64>,
}

fn default_suffix() -> String {
    "vault.localhost".into()
}
fn default_token_lifetime() -> i64 {
    3600
}
fn default_sweep() -> u64 {
    3600
}

#[derive(Debug, thiserror::Error)]
#[error("configuration setting '{setting}': {problem}")]
pub struct ConfigError {
    pub setting: String,
    pub problem: String,
}

fn err(setting: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: setting.into(),
        problem: problem.into(),
    }
}

/// How an environment variable's text becomes a setting's value.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Number,
    Flag,
    /// Comma-separated text.
    List,
    /// A TOML value, for tables and arrays of tables
    /// (`{ corp = ["10.0.0.0/8"] }`, `[{ name = "pe1", ... }]`).
    Toml,
}

/// The environment variable for every setting, in TOML path order.
const ENV: &[(&str, &str, Kind)] = &[
    ("KEYFORT_LISTEN", "listen", Kind::Text),
    ("KEYFORT_PUBLIC_PORT", "public_port", Kind::Number),
    ("KEYFORT_DNS_SUFFIX", "dns_suffix", Kind::Text),
    ("KEYFORT_DEFAULT_VAULT", "default_vault", Kind::Text),
    ("KEYFORT_ISSUER_URL", "issuer_url", Kind::Text),
    ("KEYFORT_DATA_DIR", "data_dir", Kind::Text),
    ("KEYFORT_TLS_CERT", "tls.cert", Kind::Text),
    ("KEYFORT_TLS_KEY", "tls.key", Kind::Text),
    ("KEYFORT_SEAL_KEY_FILE", "seal.key_file", Kind::Text),
    ("KEYFORT_AUDIT_FILE", "audit.file", Kind::Text),
    ("KEYFORT_AUDIT_STDOUT", "audit.stdout", Kind::Flag),
    ("KEYFORT_AUDIT_WEBHOOK", "audit.webhook", Kind::Text),
    (
        "KEYFORT_AUDIT_MAX_FILE_BYTES",
        "audit.max_file_bytes",
        Kind::Number,
    ),
    (
        "KEYFORT_AUDIT_CHECKPOINT_EVERY",
        "audit.checkpoint_every",
        Kind::Number,
    ),
    (
        "KEYFORT_TOKEN_LIFETIME_SECS",
        "token_lifetime_secs",
        Kind::Number,
    ),
    (
        "KEYFORT_SWEEP_INTERVAL_SECS",
        "sweep_interval_secs",
        Kind::Number,
    ),
    (
        "KEYFORT_NETWORK_TRUSTED_PROXIES",
        "network.trusted_proxies",
        Kind::List,
    ),
    (
        "KEYFORT_NETWORK_VIRTUAL_NETWORKS",
        "network.virtual_networks",
        Kind::Toml,
    ),
    ("KEYFORT_PRIVATE_ENDPOINTS", "private_endpoints", Kind::Toml),
    ("KEYFORT_NEAR_EXPIRY_DAYS", "near_expiry_days", Kind::Number),
];

/// The value of `setting` from its variable `var`, by the setting's kind.
fn env_value(var: &str, setting: &str, kind: Kind, raw: &str) -> Result<toml::Value, ConfigError> {
    let bad = |what: &str| err(setting, format!("{var}='{raw}' is not {what}"));
    Ok(match kind {
        Kind::Text => toml::Value::String(raw.to_owned()),
        Kind::Number => {
            toml::Value::Integer(raw.trim().parse().map_err(|_| bad("a whole number"))?)
        }
        Kind::Flag => toml::Value::Boolean(match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => return Err(bad("true or false")),
        }),
        Kind::List => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
        Kind::Toml => format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .ok_or_else(|| bad("a TOML value"))?,
    })
}

impl Config {
    /// Reads `path` (if given), then applies `KEYFORT_*` variables from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut doc: toml::Table = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| err("--config", format!("cannot read {}: {e}", p.display())))?;
                text.parse().map_err(|e| {
                    err(
                        "--config",
                        format!("{} is not valid TOML: {e}", p.display()),
                    )
                })?
            }
            None => toml::Table::new(),
        };
        for (var, setting, kind) in ENV {
            if let Some(raw) = env(var) {
                set_path(&mut doc, setting, env_value(var, setting, *kind, &raw)?);
            }
        }
        let config: Config = toml::Value::Table(doc)
            .try_into()
            .map_err(|e: toml::de::Error| {
                // The full text names the setting ("... in `listen`").
                err("config", e.to_string().trim().replace('\n', " "))
            })?;
        Ok(config)
    }

    /// The network settings, with every range parsed.
    pub fn network_settings(&self) -> Result<NetworkSettings, ConfigError> {
        let parse = |setting: &str, list: &[String]| -> Result<Vec<Cidr>, ConfigError> {
            list.iter()
                .map(|s| {
                    Cidr::parse(s).ok_or_else(|| {
                        err(setting, format!("'{s}' is not an IP address or CIDR range"))
                    })
                })
                .collect()
        };
        let mut vnets = std::collections::HashMap::new();
        for (name, ranges) in &self.network.virtual_networks {
            vnets.insert(
                name.clone(),
                parse(&format!("network.virtual_networks.{name}"), ranges)?,
            );
        }
        Ok(NetworkSettings {
            trusted_proxies: parse("network.trusted_proxies", &self.network.trusted_proxies)?,
            virtual_networks: vnets,
        })
    }

    pub fn public_port(&self) -> u16 {
        self.public_port.unwrap_or(self.listen.port())
    }

    /// Refuses unsafe or contradictory settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.issuer_url.starts_with("https://") {
            return Err(err(
                "issuer_url",
                "must be an https:// URL: bearer tokens are only sent over TLS",
            ));
        }
        if self.issuer_url.ends_with('/') {
            return Err(err("issuer_url", "must not end with '/'"));
        }
        // It goes into the WWW-Authenticate challenge, which the SDK splits
        // on ',' and '='; a query or fragment has no place in an issuer.
        if self
            .issuer_url
            .chars()
            .any(|c| matches!(c, ',' | '=' | '"' | '?' | '#') || c.is_whitespace())
        {
            return Err(err(
                "issuer_url",
                "must not contain ',', '=', '\"', '?', '#' or spaces",
            ));
        }
        if self.dns_suffix.is_empty()
            || self.dns_suffix.starts_with('.')
            || self.dns_suffix.contains('/')
        {
            return Err(err(
                "dns_suffix",
                "must be a DNS name such as vault.example.com",
            ));
        }
        if let Some(v) = &self.default_vault {
            keyfort_core::names::check_vault_name(v)
                .map_err(|e| err("default_vault", e.to_string()))?;
        }
        if !(300..=86_400).contains(&self.token_lifetime_secs) {
            return Err(err(
                "token_lifetime_secs",
                "must be between 300 and 86400 seconds",
            ));
        }
        self.network_settings()?;
        if let Some(w) = &self.audit.webhook {
            keyfort_core::events::check_webhook_url(w)
                .map_err(|e| err("audit.webhook", e.to_string()))?;
        }
        for pe in &self.private_endpoints {
            let setting = format!("private_endpoints.{}", pe.name);
            if pe.listen == self.listen {
                return Err(err(
                    &setting,
                    "must listen on another address than the public listener",
                ));
            }
            if pe.tls_cert.is_some() != pe.tls_key.is_some() {
                return Err(err(&setting, "tls_cert and tls_key go together"));
            }
            if let Some(key) = &pe.tls_key {
                check_private(&format!("{setting}.tls_key"), key)?;
            }
            for v in &pe.vaults {
                keyfort_core::names::check_vault_name(v)
                    .map_err(|e| err(&setting, e.to_string()))?;
            }
        }
        if !(1..=365).contains(&self.near_expiry_days) {
            return Err(err("near_expiry_days", "must be between 1 and 365"));
        }
        if self.sweep_interval_secs == 0 {
            return Err(err("sweep_interval_secs", "must be at least 1"));
        }
        for (setting, path) in [
            ("tls.cert", &self.tls.cert),
            ("tls.key", &self.tls.key),
            ("seal.key_file", &self.seal.key_file),
        ] {
            if !path.is_file() {
                return Err(err(
                    setting,
                    format!("{} does not exist or is not a file", path.display()),
                ));
            }
        }
        for (setting, path) in [
            ("tls.key", &self.tls.key),
            ("seal.key_file", &self.seal.key_file),
        ] {
            check_private(setting, path)?;
        }
        Ok(())
    }
}

/// A private key file must not be readable by group or others.
pub fn check_private(setting: &str, path: &Path) -> Result<(), ConfigError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| err(setting, format!("cannot read {}: {e}", path.display())))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(err(
                setting,
                format!(
                    "{} is readable by group or others (mode {:o}); run chmod 600 on it",
                    path.display(),
                    mode & 0o777
                ),
            ));
        }
    }
    Ok(())
}

fn set_path(doc: &mut toml::Table, dotted: &str, value: toml::Value) {
    let mut parts: Vec<&str> = dotted.split('.').collect();
    let last = parts.pop().expect("non-empty setting path");
    let mut table = doc;
    for p in parts {
        let entry = table
            .entry(p)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            // The variable overrides whatever the file had there.
            *entry = toml::Value::Table(toml::Table::new());
        }
        table = entry.as_table_mut().expect("made a table above");
    }
    table.insert(last.to_owned(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, "x").unwrap();
        #[cfg(unix)]
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
        p
    }

    fn toml_for(dir: &Path) -> String {
        format!(
            "listen = \"127.0.0.1:8443\"\nissuer_url = \"https://localhost:8443\"\ndata_dir = \"{d}\"\n[tls]\ncert = \"{d}/c.pem\"\nkey = \"{d}/k.pem\"\n[seal]\nkey_file = \"{d}/root.key\"\n",
            d = dir.display()
        )
    }

    #[test]
    fn every_kind_of_setting_comes_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keyfort.toml");
        std::fs::write(&file, toml_for(dir.path())).unwrap();
        let vars: std::collections::HashMap<&str, &str> = [
            ("KEYFORT_AUDIT_STDOUT", "true"),
            ("KEYFORT_AUDIT_CHECKPOINT_EVERY", "50"),
            ("KEYFORT_DATA_DIR", "2024"),
            ("KEYFORT_NETWORK_TRUSTED_PROXIES", "10.0.0.1, 10.1.0.0/16"),
            (
                "KEYFORT_NETWORK_VIRTUAL_NETWORKS",
                "{ corp = [\"10.8.0.0/16\"] }",
            ),
            (
                "KEYFORT_PRIVATE_ENDPOINTS",
                "[{ name = \"pe1\", listen = \"127.0.0.2:9443\", vaults = [\"billing\"] }]",
            ),
        ]
        .into_iter()
        .collect();
        let c = Config::load(Some(&file), |k| vars.get(k).map(|v| v.to_string())).unwrap();
        assert!(c.audit.stdout);
        assert_eq!(c.audit.checkpoint_every, Some(50));
        assert_eq!(
            c.data_dir,
            PathBuf::from("2024"),
            "digits stay text where text is wanted"
        );
        assert_eq!(c.network.trusted_proxies, ["10.0.0.1", "10.1.0.0/16"]);
        assert_eq!(c.network.virtual_networks["corp"], ["10.8.0.0/16"]);
        assert_eq!(c.private_endpoints[0].vaults, ["billing"]);

        let e = Config::load(Some(&file), |k| {
            (k == "KEYFORT_AUDIT_STDOUT").then(|| "maybe".to_string())
        })
        .unwrap_err();
        assert_eq!(e.setting, "audit.stdout");
        assert!(e.problem.contains("KEYFORT_AUDIT_STDOUT"));
    }

    #[test]
    fn env_overrides_file_and_validation_names_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "c.pem", 0o644);
        write(dir.path(), "k.pem", 0o600);
        let root = write(dir.path(), "root.key", 0o644);
        let file = dir.path().join("keyfort.toml");
        std::fs::write(&file, toml_for(dir.path())).unwrap();

        let env = |k: &str| (k == "KEYFORT_LISTEN").then(|| "127.0.0.1:9443".to_string());
        let config = Config::load(Some(&file), env).unwrap();
        assert_eq!(config.listen.port(), 9443);
        let e = config.validate().unwrap_err();
        assert_eq!(
            e.setting, "seal.key_file",
            "a world-readable root key is refused"
        );

        std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        config.validate().unwrap();

        let env =
            |k: &str| (k == "KEYFORT_ISSUER_URL").then(|| "http://localhost:8443".to_string());
        assert_eq!(
            Config::load(Some(&file), env)
                .unwrap()
                .validate()
                .unwrap_err()
                .setting,
            "issuer_url"
        );
        let env = |k: &str| (k == "KEYFORT_TOKEN_LIFETIME_SECS").then(|| "10".to_string());
        assert_eq!(
            Config::load(Some(&file), env)
                .unwrap()
                .validate()
                .unwrap_err()
                .setting,
            "token_lifetime_secs"
        );
    }

    #[test]
    fn unknown_settings_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keyfort.toml");
        std::fs::write(
            &file,
            format!("{}\nlisten_all = true\n", toml_for(dir.path())),
        )
        .unwrap();
        let e = Config::load(Some(&file), |_| None).unwrap_err();
        assert!(e.problem.contains("listen_all"), "{e}");
    }
}
