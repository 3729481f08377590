//! The server over real TLS sockets: HTTP/1.1 and HTTP/2, tenant isolation of
//! tokens, RBAC refusals, one audit record per request, and certificate reload.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use keyfort_core::clock::SystemClock;
use keyfort_core::model::Vault;
use keyfort_core::vaults::NewVault;
use keyfort_server::http::{AppState, Site};
use keyfort_server::serve::{self, Running, Setup};
use serde_json::{Value, json};

const ADMIN: &str = "00482a5a-887f-4fb3-b363-3b7fe8e74483";
const SECRETS_USER: &str = "4633458b-17de-408a-b874-0445c86b69e6";

struct Harness {
    dir: tempfile::TempDir,
    port: u16,
    state: Arc<AppState>,
    running: Option<Running>,
    ca_pem: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_pki(dir: &std::path::Path, tag: &str) -> String {
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

async fn start() -> Harness {
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
        token_lifetime: 3600,
        sweep_interval: Duration::from_secs(3600),
        clock: Arc::new(SystemClock),
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

struct Principal {
    tenant: String,
    client_id: String,
    secret: String,
    object_id: String,
}

impl Harness {
    fn client(&self, ca_pem: &str, http1_only: bool) -> reqwest::Client {
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

    async fn vault(&self, tenant: &str, name: &str) -> Vault {
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

    async fn principal(&self, tenant: &str, role_on: Option<(&Vault, &str)>) -> Principal {
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

    async fn token(&self, c: &reqwest::Client, p: &Principal) -> String {
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

    fn url(&self, vault: &str, path: &str) -> String {
        format!(
            "https://{vault}.vault.localhost:{}{path}?api-version=7.6",
            self.port
        )
    }

    fn audit_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("audit.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_and_http1_tenant_isolation_rbac_and_audit() {
    let mut h = start().await;
    let kf = h.state.kf.clone();
    let ta = kf.identity.create_tenant("a").await.unwrap();
    let tb = kf.identity.create_tenant("b").await.unwrap();
    let alpha = h.vault(&ta.id, "alpha").await;
    let beta = h.vault(&tb.id, "beta").await;
    let admin_a = h.principal(&ta.id, Some((&alpha, ADMIN))).await;
    let reader_a = h.principal(&ta.id, Some((&alpha, SECRETS_USER))).await;
    let nobody_a = h.principal(&ta.id, None).await;
    let admin_b = h.principal(&tb.id, Some((&beta, ADMIN))).await;

    let h2 = h.client(&h.ca_pem, false);
    let h1 = h.client(&h.ca_pem, true);
    let t_admin = h.token(&h2, &admin_a).await;

    // HTTP/2 is negotiated by ALPN; HTTP/1.1 works too.
    let resp = h2
        .put(h.url("alpha", "/secrets/api-key"))
        .bearer_auth(&t_admin)
        .json(&json!({"value": "v-alpha-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let resp = h1
        .get(h.url("alpha", "/secrets/api-key/"))
        .bearer_auth(&t_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.json::<Value>().await.unwrap()["value"], "v-alpha-1");

    // A token of tenant B at tenant A's vault: 401, and the challenge names A.
    let t_b = h.token(&h2, &admin_b).await;
    let resp = h2
        .get(h.url("alpha", "/secrets/api-key/"))
        .bearer_auth(&t_b)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains(&format!("/{}\"", ta.id)), "{challenge}");
    assert!(resp.text().await.unwrap().contains("belongs to tenant"));
    // ...and B's admin cannot see into A's vault by any path.
    let resp = h2
        .get(h.url("alpha", "/secrets"))
        .bearer_auth(&t_b)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // Secrets User may read but not write; no role: nothing at all.
    let t_reader = h.token(&h2, &reader_a).await;
    let resp = h2
        .get(h.url("alpha", "/secrets/api-key/"))
        .bearer_auth(&t_reader)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = h2
        .put(h.url("alpha", "/secrets/api-key"))
        .bearer_auth(&t_reader)
        .json(&json!({"value": "overwritten"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "Forbidden");
    assert_eq!(body["error"]["innererror"]["code"], "ForbiddenByRbac");
    let t_nobody = h.token(&h2, &nobody_a).await;
    let resp = h2
        .get(h.url("alpha", "/secrets"))
        .bearer_auth(&t_nobody)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = h2
        .get(h.url("alpha", "/secrets/api-key/"))
        .bearer_auth(&t_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.json::<Value>().await.unwrap()["value"],
        "v-alpha-1",
        "refused writes changed nothing"
    );

    // One audit record per audited request (4 token requests + 8 vault calls).
    let lines = h.audit_lines();
    assert_eq!(lines.len(), 12, "{lines:#?}");
    let refused = lines
        .iter()
        .find(|r| {
            r["httpStatus"] == 403 && r["identity"]["objectId"] == reader_a.object_id.as_str()
        })
        .unwrap();
    assert_eq!(refused["operationName"], "SecretSet");
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .contains("not authorized")
    );
    let allowed = lines
        .iter()
        .find(|r| r["operationName"] == "SecretGet" && r["httpStatus"] == 200)
        .unwrap();
    assert!(
        allowed["authorization"]
            .as_str()
            .unwrap()
            .contains("Key Vault Administrator")
    );
    assert!(
        !std::fs::read_to_string(h.dir.path().join("audit.jsonl"))
            .unwrap()
            .contains("v-alpha-1")
    );

    h.running
        .take()
        .unwrap()
        .shutdown(Duration::from_secs(5))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_reload_serves_the_new_certificate() {
    let mut h = start().await;
    let new_ca = write_pki(h.dir.path(), "-new");
    let running = h.running.take().unwrap();
    let health = |c: reqwest::Client, port: u16| async move {
        c.get(format!("https://localhost:{port}/_health"))
            .send()
            .await
    };

    assert!(health(h.client(&h.ca_pem, true), h.port).await.is_ok());
    assert!(
        health(h.client(&new_ca, true), h.port).await.is_err(),
        "new CA not trusted before reload"
    );
    running
        .tls
        .reload_from_pem_file(
            h.dir.path().join("server-new.pem"),
            h.dir.path().join("server-key-new.pem"),
        )
        .await
        .unwrap();
    assert!(
        health(h.client(&new_ca, true), h.port).await.is_ok(),
        "reload takes effect for new connections"
    );
    running.shutdown(Duration::from_secs(5)).await.unwrap();
}
