//! The HTTPS surface. Handlers are thin: they map a request to a service
//! call and render the result in Azure Key Vault's shapes.
//!
//! - `/{tenant}/...`: the OAuth2/OIDC token issuer ([`identity`]);
//! - `/subscriptions/...`: the vault management API, shaped after ARM ([`management`]);
//! - `/secrets...`, `/deletedsecrets...` on a vault host: the secrets API ([`secrets`]);
//! - `/keys...`, `/deletedkeys...` on a vault host: the keys API ([`keys`]);
//! - `/certificates...`, `/deletedcertificates...`: the certificates API ([`certificates`]);
//! - `/_health`: an unauthenticated liveness probe, outside the audit layer.

pub mod audit;
pub mod body;
pub mod certificates;
pub mod directory;
pub mod error;
pub mod identity;
pub mod keys;
pub mod management;
pub mod objects;
pub mod pim;
pub mod rbac;
pub mod request;
pub mod secrets;
pub mod vault;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post};
use keyfort_core::Keyfort;
use keyfort_core::audit::Auditor;
use keyfort_core::network::{Listener, NetworkSettings};

/// Largest request body accepted (a restore of a 500-version backup fits).
pub const MAX_BODY: usize = 32 * 1024 * 1024;

/// How this deployment is addressed.
#[derive(Clone, Debug)]
pub struct Site {
    pub dns_suffix: String,
    pub public_port: u16,
    pub default_vault: Option<String>,
    /// Origin of the token issuer, e.g. `https://localhost:8443`.
    pub issuer_base: String,
}

impl Site {
    fn port_suffix(&self) -> String {
        if self.public_port == 443 {
            String::new()
        } else {
            format!(":{}", self.public_port)
        }
    }

    /// The URL of a vault, as in its object ids.
    pub fn vault_url(&self, vault_name: &str) -> String {
        format!(
            "https://{}.{}{}",
            vault_name.to_ascii_lowercase(),
            self.dns_suffix,
            self.port_suffix()
        )
    }

    /// The resource (audience) of data-plane tokens, as the SDK's challenge check wants it.
    pub fn data_audience(&self) -> String {
        format!("https://{}{}", self.dns_suffix, self.port_suffix())
    }

    /// The resource (audience) of management tokens.
    pub fn management_audience(&self) -> String {
        format!(
            "https://management.{}{}",
            self.dns_suffix,
            self.port_suffix()
        )
    }

    /// The vault a request host names, if it names one. `None` for hosts
    /// that are neither `{vault}.{suffix}` nor a bare host (the suffix
    /// itself, `localhost` or an IP address) with a default vault.
    pub fn vault_for_host(&self, host: &str) -> Option<String> {
        let host = strip_port(host).trim_end_matches('.').to_ascii_lowercase();
        if let Some(label) = host.strip_suffix(&format!(".{}", self.dns_suffix)) {
            return (!label.contains('.') && !label.is_empty()).then(|| label.to_owned());
        }
        let bare = host == self.dns_suffix
            || host == "localhost"
            || host.parse::<std::net::IpAddr>().is_ok();
        bare.then(|| self.default_vault.clone()).flatten()
    }
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

pub struct AppState {
    pub kf: Arc<Keyfort>,
    pub auditor: Auditor,
    pub site: Site,
    pub network: NetworkSettings,
    /// The audit file (its rotated predecessors sit beside it).
    pub audit_file: std::path::PathBuf,
    /// Whether some audit sink ships records off this host (a webhook).
    pub audit_off_host: bool,
    /// The data folder's lock, held while the node runs.
    pub _data_lock: std::fs::File,
    /// Requests running (each in a task of its own, see the audit layer).
    pub requests: RequestsInFlight,
}

/// Counts the requests running, so a graceful shutdown lets them finish
/// (and write their audit records) even when their clients have hung up.
#[derive(Default)]
pub struct RequestsInFlight {
    count: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

/// One running request; counted until dropped.
pub struct InFlight<'a>(&'a RequestsInFlight);

impl RequestsInFlight {
    pub fn start(&self) -> InFlight<'_> {
        self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        InFlight(self)
    }

    /// Waits until no request is running.
    pub async fn drained(&self) {
        loop {
            let idle = self.idle.notified();
            if self.count.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self
            .0
            .count
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst)
            == 1
        {
            self.0.idle.notify_waiters();
        }
    }
}

pub fn router(state: Arc<AppState>, listener: Listener) -> Router {
    let audited = Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(identity::openid_configuration),
        )
        .route("/{tenant}/oauth2/v2.0/token", post(identity::token))
        .route("/{tenant}/discovery/v2.0/keys", get(identity::jwks))
        .route("/subscriptions/{*rest}", any(management::management))
        .route("/keyfort/{*rest}", any(directory::directory))
        .fallback(vault::data_plane)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::audit_layer,
        ));
    Router::new()
        .route("/_health", get(|| async { "ok" }))
        .merge(audited)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::Extension(listener))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn shutdown_waits_for_running_requests() {
        let requests = std::sync::Arc::new(super::RequestsInFlight::default());
        requests.drained().await; // nothing running: at once
        let r = requests.clone();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let _running = r.start();
            started_tx.send(()).unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        });
        started_rx.await.unwrap();
        let waited = std::time::Instant::now();
        requests.drained().await;
        assert!(waited.elapsed() >= std::time::Duration::from_millis(30));
        task.await.unwrap();
    }

    use super::*;

    fn site(default_vault: Option<&str>) -> Site {
        Site {
            dns_suffix: "vault.localhost".into(),
            public_port: 8443,
            default_vault: default_vault.map(String::from),
            issuer_base: "https://localhost:8443".into(),
        }
    }

    #[test]
    fn hosts_name_vaults() {
        let s = site(None);
        assert_eq!(
            s.vault_for_host("dev.vault.localhost:8443").as_deref(),
            Some("dev")
        );
        assert_eq!(
            s.vault_for_host("DEV.Vault.Localhost").as_deref(),
            Some("dev")
        );
        assert_eq!(s.vault_for_host("a.b.vault.localhost:8443"), None);
        assert_eq!(s.vault_for_host("localhost:8443"), None);
        assert_eq!(
            site(Some("dev"))
                .vault_for_host("127.0.0.1:8443")
                .as_deref(),
            Some("dev")
        );
        assert_eq!(
            site(Some("dev")).vault_for_host("[::1]:8443").as_deref(),
            Some("dev")
        );
        assert_eq!(
            site(Some("dev"))
                .vault_for_host("dev.vault.localhost.:8443")
                .as_deref(),
            Some("dev"),
            "a trailing dot names the same host"
        );
        for other in ["x.vault.localhost.evil", "example.com:8443"] {
            assert_eq!(
                site(Some("dev")).vault_for_host(other),
                None,
                "{other} is not a bare host of this server"
            );
        }
        assert_eq!(s.vault_url("Dev"), "https://dev.vault.localhost:8443");
        assert_eq!(s.data_audience(), "https://vault.localhost:8443");
    }
}
