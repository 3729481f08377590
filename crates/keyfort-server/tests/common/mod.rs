//! The test harness: a node serving over real TLS on a free loopback port,
//! with helpers to provision tenants, vaults and principals and get tokens.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use keyfort_core::clock::{Clock, SystemClock};
use keyfort_core::model::Vault;
use keyfort_core::vaults::NewVault;
use keyfort_server::http::{AppState, Site};
use keyfort_server::serve::{self, Running, Setup};
use serde_json::Value;

pub const ADMIN: &str = "00482a5a-887f-4fb3-b363-3b7fe8e74483";
pub const SECRETS_USER: &str = "4633458b-17de-408a-b874-0445c86b69e6";

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub state: Arc<AppState>,
    pub running: Option<Running>,
    pub ca_pem: String,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn write_pki(dir: &std::path::Path, tag: &str) -> String {
    let names = vec![
        "*.vault.localhost".to_string(),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
    ];
    let pki = keyfort_crypto::pki::generate_dev_pki(&names).unwrap();
    std::fs::write(dir.join(format!("server{tag}.pem")), &pki.server_cert_pem).unwrap();
    std::fs::write(
        dir.join(format!("server-key{tag}.pem")),
        pki.server_key_pem.as_bytes(),
    )
    .unwrap();
    pki.ca_cert_pem
}

pub async fn start() -> Harness {
    start_with_clock(Arc::new(SystemClock)).await
}

pub async fn start_with_clock(clock: Arc<dyn Clock>) -> Harness {
    start_with(clock, Default::default(), |_| vec![]).await
}

/// A node with network settings and private endpoints (given the public port).
pub async fn start_with(
    clock: Arc<dyn Clock>,
    network: keyfort_core::network::NetworkSettings,
    private_endpoints: impl FnOnce(u16) -> Vec<keyfort_server::serve::PrivateEndpoint>,
) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let ca_pem = write_pki(dir.path(), "");
    let port = free_port();
    let setup = Setup {
        listen: SocketAddr::from(([127, 0, 0, 1], port)),
        site: Site {
            dns_suffix: "vault.localhost".into(),
            public_port: port,
            default_vault: None,
            issuer_base: format!("https://localhost:{port}"),
        },
        db_path: dir.path().join("keyfort.db"),
        root_key: keyfort_crypto::SealingKey::generate(),
        tls_cert: dir.path().join("server.pem"),
        tls_key: dir.path().join("server-key.pem"),
        audit_file: dir.path().join("audit.jsonl"),
        audit_stdout: false,
        near_expiry_days: 30,
        audit_webhook: None,
        audit_max_file_bytes: 64 * 1024 * 1024,
        audit_checkpoint_every: 5,
        token_lifetime: 3600,
        sweep_interval: Duration::from_secs(3600),
        clock,
        network,
        private_endpoints: private_endpoints(port),
    };
    let (state, parts) = serve::open(setup).await.unwrap();
    let running = serve::spawn(state.clone(), parts).await.unwrap();
    Harness {
        dir,
        port,
        state,
        running: Some(running),
        ca_pem,
    }
}

pub struct Principal {
    pub tenant: String,
    pub client_id: String,
    pub secret: String,
    pub object_id: String,
}

impl Harness {
    pub fn client(&self, ca_pem: &str, http1_only: bool) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
            .resolve(
                "alpha.vault.localhost",
                SocketAddr::from(([127, 0, 0, 1], self.port)),
            )
            .resolve(
                "beta.vault.localhost",
                SocketAddr::from(([127, 0, 0, 1], self.port)),
            );
        if http1_only {
            b = b.http1_only();
        }
        b.build().unwrap()
    }

    pub async fn vault(&self, tenant: &str, name: &str) -> Vault {
        self.state
            .kf
            .vaults
            .create(NewVault {
                name: name.into(),
                tenant_id: tenant.into(),
                subscription_id: format!("sub-{tenant}"),
                resource_group: "rg".into(),
                location: "local".into(),
                retention_days: 7,
                purge_protection: false,
                tags: Default::default(),
            })
            .await
            .unwrap()
    }

    pub async fn principal(&self, tenant: &str, role_on: Option<(&Vault, &str)>) -> Principal {
        let kf = &self.state.kf;
        let (p, secret) = kf
            .identity
            .create_service_principal(tenant, "test")
            .await
            .unwrap();
        if let Some((vault, role)) = role_on {
            let scope = keyfort_core::authz::scope_of(vault, None);
            kf.authz
                .assign(tenant, &p.object_id, role, &scope, 0)
                .await
                .unwrap();
        }
        Principal {
            tenant: tenant.into(),
            client_id: p.app_id,
            secret,
            object_id: p.object_id,
        }
    }

    pub async fn token(&self, c: &reqwest::Client, p: &Principal) -> String {
        let resp = c
            .post(format!(
                "https://localhost:{}/{}/oauth2/v2.0/token",
                self.port, p.tenant
            ))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", p.client_id.as_str()),
                ("client_secret", p.secret.as_str()),
                (
                    "scope",
                    &format!("https://vault.localhost:{}/.default", self.port),
                ),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub fn url(&self, vault: &str, path: &str) -> String {
        format!(
            "https://{vault}.vault.localhost:{}{path}?api-version=7.6",
            self.port
        )
    }

    /// The request records of the audit log (checkpoints left out).
    pub fn audit_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("audit.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|r| r.get("type").is_none())
            .collect()
    }
}
