//! `keyfort dev`: the whole system on one machine. On first start it creates,
//! in the data folder, a root key file, a local CA and server certificate, and
//! provisions one tenant, one vault (`dev`) and one service principal that
//! holds Key Vault Administrator on it. Restarting with the same folder keeps
//! all data and credentials. `dev.json` is (re)written once the server is
//! ready to serve, and removed at start so its presence means "ready".

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use keyfort_core::clock::SystemClock;
use serde::{Deserialize, Serialize};

use crate::bootstrap::{self, VaultPlan};
use crate::http::{AppState, Site};
use crate::keyfile;
use crate::serve::{self, BoxError, Setup};

pub const DEV_VAULT: &str = "dev";
pub const DEV_SUFFIX: &str = "vault.localhost";

pub struct DevOptions {
    pub data_dir: PathBuf,
    pub port: u16,
    /// Turn purge protection on for the dev vault when it is first created.
    pub purge_protection: bool,
    /// A webhook that also receives every audit record.
    pub audit_webhook: Option<String>,
}

/// Facts kept across restarts (mode 0600; holds the dev client secret).
#[derive(Serialize, Deserialize)]
struct DevState {
    tenant_id: String,
    subscription_id: String,
    client_id: String,
    client_secret: String,
    vault_name: String,
}

/// The dev-mode contract (DESIGN §9).
/// No `Debug`: it holds the client secret.
#[derive(Serialize, Deserialize)]
pub struct DevJson {
    pub vault_url: String,
    pub vault_name: String,
    pub tenant_id: String,
    pub subscription_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub authority: String,
    pub ca_cert: String,
    pub audience: String,
    pub management_url: String,
    pub management_audience: String,
}

struct Files {
    root_key: PathBuf,
    ca_cert: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    state: PathBuf,
    dev_json: PathBuf,
}

fn files(dir: &Path) -> Files {
    Files {
        root_key: dir.join("root.key"),
        ca_cert: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server-key.pem"),
        state: dir.join("dev-state.json"),
        dev_json: dir.join("dev.json"),
    }
}

pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn ensure_pki(f: &Files) -> Result<(), BoxError> {
    if f.ca_cert.exists() && f.server_cert.exists() && f.server_key.exists() {
        return Ok(());
    }
    let names: Vec<String> = [
        format!("*.{DEV_SUFFIX}"),
        DEV_SUFFIX.to_string(),
        "localhost".into(),
        "127.0.0.1".into(),
        "::1".into(),
    ]
    .into();
    let pki = keyfort_crypto::pki::generate_dev_pki(&names)?;
    for p in [&f.ca_cert, &f.server_cert, &f.server_key] {
        let _ = std::fs::remove_file(p);
    }
    // The CA key is not kept: nothing else can ever be signed by this CA.
    std::fs::write(&f.ca_cert, &pki.ca_cert_pem)?;
    std::fs::write(&f.server_cert, &pki.server_cert_pem)?;
    keyfile::write_private(&f.server_key, pki.server_key_pem.as_bytes())?;
    Ok(())
}

/// Provisions tenant, vault, principal and role assignment on first start.
async fn provision(state: &AppState, opts: &DevOptions) -> Result<DevState, BoxError> {
    let plan = VaultPlan {
        name: DEV_VAULT.into(),
        location: "local".into(),
        retention_days: 7,
        purge_protection: opts.purge_protection,
        tags: [("environment".to_string(), "dev".to_string())].into(),
    };
    let p = bootstrap::provision(&state.kf, "Keyfort dev tenant", plan)
        .await
        .map_err(|e| format!("{e} (an earlier first start of dev mode was interrupted: remove the data folder and start again)"))?;
    // The built-in alert rules ship enabled for the dev vault's tenant.
    for rule in keyfort_core::alerts::builtin_rules(&p.tenant.id) {
        state.kf.alerts.put_rule(rule).await?;
    }
    Ok(DevState {
        tenant_id: p.tenant.id,
        subscription_id: p.tenant.subscription_id,
        client_id: p.client_id,
        client_secret: p.client_secret,
        vault_name: p.vault.name,
    })
}

fn dev_json(site: &Site, state: &DevState, ca_cert: &Path) -> DevJson {
    DevJson {
        vault_url: site.vault_url(&state.vault_name),
        vault_name: state.vault_name.clone(),
        tenant_id: state.tenant_id.clone(),
        subscription_id: state.subscription_id.clone(),
        client_id: state.client_id.clone(),
        client_secret: state.client_secret.clone(),
        authority: site.issuer_base.clone(),
        ca_cert: ca_cert.display().to_string(),
        audience: site.data_audience(),
        management_url: site.issuer_base.clone(),
        management_audience: site.management_audience(),
    }
}

/// Runs dev mode until SIGTERM or Ctrl-C.
pub async fn run(opts: DevOptions) -> Result<(), BoxError> {
    if let Some(url) = &opts.audit_webhook {
        keyfort_core::events::check_webhook_url(url)
            .map_err(|e| format!("--audit-webhook: {e}"))?;
    }
    create_private_dir(&opts.data_dir)?;
    let data_dir = std::fs::canonicalize(&opts.data_dir)?;
    let f = files(&data_dir);
    if !f.root_key.exists() {
        keyfile::create(&f.root_key)?;
    }
    crate::config::check_private("root key file", &f.root_key)?;
    ensure_pki(&f)?;

    let site = Site {
        dns_suffix: DEV_SUFFIX.into(),
        public_port: opts.port,
        default_vault: Some(DEV_VAULT.into()),
        issuer_base: format!("https://localhost:{}", opts.port),
    };
    let setup = Setup {
        // Loopback only: dev mode is not for other machines to reach.
        listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), opts.port),
        site: site.clone(),
        db_path: data_dir.join("keyfort.db"),
        root_key: keyfile::load(&f.root_key)?,
        tls_cert: f.server_cert.clone(),
        tls_key: f.server_key.clone(),
        audit_file: data_dir.join("audit.jsonl"),
        audit_stdout: false,
        near_expiry_days: 30,
        audit_webhook: opts.audit_webhook.clone(),
        audit_max_file_bytes: 64 * 1024 * 1024,
        audit_checkpoint_every: 100,
        token_lifetime: 3600,
        sweep_interval: Duration::from_secs(60),
        clock: Arc::new(SystemClock),
        network: Default::default(),
        private_endpoints: vec![],
    };
    let (state, parts) = serve::open(setup).await?;
    // Only now that this process holds the data folder: the dev.json of an
    // earlier run must not be taken for this one's readiness.
    let _ = std::fs::remove_file(&f.dev_json);
    let dev_state: DevState = if f.state.exists() {
        serde_json::from_slice(&std::fs::read(&f.state)?)?
    } else {
        let s = provision(&state, &opts).await?;
        keyfile::write_private(&f.state, &serde_json::to_vec_pretty(&s)?)?;
        s
    };
    let vault = state
        .kf
        .vaults
        .get(&dev_state.vault_name)
        .await?
        .ok_or("the dev vault is missing from the database")?;

    let signals = serve::Signals::install()?;
    let running = serve::spawn(state, parts).await?;
    let json = dev_json(&site, &dev_state, &f.ca_cert);
    keyfile::write_private(&f.dev_json, &serde_json::to_vec_pretty(&json)?)?;
    print_welcome(
        &json,
        &f.dev_json,
        running.addr,
        vault.purge_protection,
        vault.retention_days,
    );
    serve::serve_until_signalled(running, signals).await
}

fn print_welcome(
    j: &DevJson,
    dev_json: &Path,
    addr: SocketAddr,
    purge_protection: bool,
    retention: i64,
) {
    // The client secret is in dev.json (mode 0600); it is never printed.
    println!(
        r#"Keyfort dev server is ready on port {port} (listening on {addr}).

  Vault URL     {vault_url}
  Authority     {authority}   (tenant {tenant})
  CA cert       {ca}
  Credentials   {dev_json}   (client id {client}; the secret is in the file)
  Dev vault     soft-delete retention {retention} days, purge protection {pp}

'*.vault.localhost' may not resolve on this machine; if not, add this line to /etc/hosts:
  127.0.0.1 {vault_host}

Connect with the Azure SDK for Python (pip install azure-identity azure-keyvault-secrets):

  import json
  from azure.identity import ClientSecretCredential
  from azure.keyvault.secrets import SecretClient
  dev = json.load(open("{dev_json}"))
  cred = ClientSecretCredential(dev["tenant_id"], dev["client_id"], dev["client_secret"],
                                authority=dev["authority"], disable_instance_discovery=True,
                                connection_verify=dev["ca_cert"])
  client = SecretClient(dev["vault_url"], cred, connection_verify=dev["ca_cert"])
  client.set_secret("hello", "world")
  print(client.get_secret("hello").value)

Or with the CLI:  keyfort secret set --dev-json {dev_json} --name hello --value world
"#,
        port = addr.port(),
        vault_url = j.vault_url,
        authority = j.authority,
        tenant = j.tenant_id,
        ca = j.ca_cert,
        dev_json = dev_json.display(),
        client = j.client_id,
        pp = if purge_protection {
            "on"
        } else {
            "off (dev default; start a new data folder with --purge-protection to try it)"
        },
        vault_host = j
            .vault_url
            .trim_start_matches("https://")
            .split(':')
            .next()
            .unwrap_or(""),
    );
}
