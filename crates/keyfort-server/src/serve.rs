//! Running a node: open the store behind the barrier, start the services,
//! serve HTTPS (HTTP/1.1 and HTTP/2) until SIGTERM or Ctrl-C, reload the TLS
//! certificate on SIGHUP, and sweep due purges in the background.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use keyfort_core::Keyfort;
use keyfort_core::audit::{
    self, AuditSink, Auditor, FileSink, ForgetHeld, HeldRecord, SaveHeld, StdoutSink,
};
use keyfort_core::barrier::Barrier;
use keyfort_core::clock::{Clock, SystemClock};
use keyfort_core::identity::IssuerSettings;
use keyfort_core::network::{Listener, NetworkSettings};
use keyfort_crypto::SealingKey;
use keyfort_store::cache::CachedStore;
use keyfort_store::sqlite::SqliteStore;

use crate::config::Config;
use crate::http::{self, AppState, Site};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Everything needed to run a node, however it was configured.
pub struct Setup {
    pub listen: SocketAddr,
    pub site: Site,
    pub db_path: PathBuf,
    pub root_key: SealingKey,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub audit_file: PathBuf,
    pub audit_stdout: bool,
    pub near_expiry_days: i64,
    /// Also send records to this webhook (JSON lines, batched).
    pub audit_webhook: Option<String>,
    pub audit_max_file_bytes: u64,
    pub audit_checkpoint_every: u64,
    pub token_lifetime: i64,
    pub sweep_interval: Duration,
    pub clock: Arc<dyn Clock>,
    pub network: NetworkSettings,
    pub private_endpoints: Vec<PrivateEndpoint>,
}

/// An extra listener that serves only the vaults attached to it.
#[derive(Clone, Debug)]
pub struct PrivateEndpoint {
    pub name: String,
    pub listen: SocketAddr,
    pub vaults: Vec<String>,
    /// Its own certificate and key; the server's when `None`.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// Builds a [`Setup`] from a validated production configuration.
pub fn setup_from_config(config: &Config) -> Result<Setup, BoxError> {
    config.validate()?;
    crate::dev::create_private_dir(&config.data_dir)?;
    let root_key = crate::keyfile::load(&config.seal.key_file)
        .map_err(|e| format!("configuration setting 'seal.key_file': {e}"))?;
    Ok(Setup {
        listen: config.listen,
        site: Site {
            dns_suffix: config.dns_suffix.to_ascii_lowercase(),
            public_port: config.public_port(),
            default_vault: config.default_vault.clone(),
            issuer_base: config.issuer_url.clone(),
        },
        db_path: config.data_dir.join("keyfort.db"),
        root_key,
        tls_cert: config.tls.cert.clone(),
        tls_key: config.tls.key.clone(),
        audit_file: config
            .audit
            .file
            .clone()
            .unwrap_or_else(|| config.data_dir.join("audit.jsonl")),
        audit_stdout: config.audit.stdout,
        near_expiry_days: config.near_expiry_days,
        audit_webhook: config.audit.webhook.clone(),
        audit_max_file_bytes: config.audit.max_file_bytes.unwrap_or(64 * 1024 * 1024),
        audit_checkpoint_every: config.audit.checkpoint_every.unwrap_or(100),
        token_lifetime: config.token_lifetime_secs,
        sweep_interval: Duration::from_secs(config.sweep_interval_secs),
        clock: Arc::new(SystemClock),
        network: config.network_settings()?,
        private_endpoints: config
            .private_endpoints
            .iter()
            .map(|pe| PrivateEndpoint {
                name: pe.name.clone(),
                listen: pe.listen,
                vaults: pe.vaults.clone(),
                tls: pe.tls_cert.clone().zip(pe.tls_key.clone()),
            })
            .collect(),
    })
}

/// Takes the database's lock file for the life of the process. Two
/// processes on one data folder would each serve from their own cache and
/// answer stale reads; the second is refused.
fn lock_data(db_path: &std::path::Path) -> Result<std::fs::File, BoxError> {
    let path = db_path.with_extension("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "data_dir: {} is in use by another keyfort process (it holds {}); stop that one first",
            db_path.parent().unwrap_or(db_path).display(),
            path.display()
        )
        .into()),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// Opens the store and services of a node (without serving yet).
pub async fn open(setup: Setup) -> Result<(Arc<AppState>, ServeParts), BoxError> {
    let data_lock = lock_data(&setup.db_path)?;
    let engine = Arc::new(SqliteStore::open(&setup.db_path)?);
    let store = Arc::new(CachedStore::new(engine));
    let barrier = Arc::new(Barrier::new(store, setup.root_key));
    let issuer = IssuerSettings {
        base: setup.site.issuer_base.clone(),
        audiences: vec![setup.site.data_audience(), setup.site.management_audience()],
        token_lifetime: setup.token_lifetime,
    };
    let kf = Arc::new(Keyfort::open(barrier, setup.clock, issuer).await?);
    kf.near_expiry_secs.store(
        setup.near_expiry_days * keyfort_core::clock::DAY,
        std::sync::atomic::Ordering::Relaxed,
    );
    let mut sinks: Vec<Box<dyn AuditSink>> = vec![Box::new(FileSink::with_rotation(
        &setup.audit_file,
        setup.audit_max_file_bytes,
    )?)];
    if setup.audit_stdout {
        sinks.push(Box::new(StdoutSink));
    }
    if let Some(url) = &setup.audit_webhook {
        sinks.push(Box::new(crate::webhook_sink::WebhookSink::start(
            url.clone(),
        )));
    }
    let resume = keyfort_core::audit::resume_point(&setup.audit_file);
    if let Some((head_seq, _)) = kf.audit_head().await?
        && resume.as_ref().is_none_or(|(seq, _)| *seq < head_seq)
    {
        tracing::error!(
            checkpointed = head_seq,
            on_disk = resume.as_ref().map(|r| r.0).unwrap_or(0),
            "the audit log on disk ends before the last checkpointed record: it was truncated or replaced; 'keyfort audit verify' reports it"
        );
    }
    let auditor = Auditor::new(sinks, resume).with_checkpoint_every(setup.audit_checkpoint_every);
    let (signer, keeper, barrier) = (kf.clone(), kf.clone(), kf.barrier.clone());
    auditor.set_checkpointing(
        Box::new(move |claims| signer.identity.sign_checkpoint(claims)),
        Box::new(move |sequence, hash| {
            let kf = keeper.clone();
            tokio::spawn(async move {
                if let Err(e) = kf.save_audit_head(sequence, hash).await {
                    tracing::error!(error = %e, "could not keep the audit chain head");
                }
            });
        }),
    );
    let (save, forget) = held_record_keeper(barrier)?;
    auditor.set_holding(save, forget);
    // Records held when the server last stopped (a crash while no sink
    // worked) are chained before any request runs.
    let kept = audit::kept_held(&kf.barrier).await?;
    if !kept.is_empty() {
        let resumed = auditor.resume_held(&setup.audit_file, kept);
        tracing::warn!(
            chained = resumed.chained,
            already_in_log = resumed.already_in_log,
            still_held = resumed.still_held,
            "found audit records held when the server last stopped; they are chained first"
        );
        if resumed.still_held > 0 {
            tracing::error!(
                "the audit file takes no records: held records wait, and requests are refused until it does"
            );
        }
    }
    let state = Arc::new(AppState {
        kf,
        auditor,
        network: setup.network,
        audit_file: setup.audit_file.clone(),
        audit_off_host: setup.audit_webhook.is_some(),
        _data_lock: data_lock,
        requests: Default::default(),
        site: setup.site,
    });
    Ok((
        state,
        ServeParts {
            listen: setup.listen,
            tls_cert: setup.tls_cert,
            tls_key: setup.tls_key,
            sweep_interval: setup.sweep_interval,
            private_endpoints: setup.private_endpoints,
        },
    ))
}

/// How long the auditor waits for the store to keep or forget held records.
const HELD_STORE_WAIT: Duration = Duration::from_secs(5);

/// The store calls of the auditor's held records ([`Auditor::set_holding`]).
/// The auditor is synchronous and must wait for them (a held record is kept
/// before its request answers), maybe on a runtime worker: they run on a
/// thread and a runtime of their own, so the wait never needs the runtime it
/// blocks. The thread ends when the auditor is dropped. A store that does
/// not answer within [`HELD_STORE_WAIT`] counts as failed: the record is then
/// held in memory, and should the write still land, the next start-up finds
/// it and chains it once ([`Auditor::resume_held`]).
fn held_record_keeper(barrier: Arc<Barrier>) -> Result<(SaveHeld, ForgetHeld), BoxError> {
    enum Job {
        Keep(HeldRecord),
        Forget(Vec<u64>),
    }
    type Reply = std::sync::mpsc::SyncSender<keyfort_core::Result<()>>;
    type Jobs = std::sync::mpsc::Sender<(Job, Reply)>;
    fn ask(jobs: &Jobs, job: Job) -> keyfort_core::Result<()> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let gone = || keyfort_core::Error::Unavailable("the held-record keeper stopped".into());
        jobs.send((job, reply)).map_err(|_| gone())?;
        match answer.recv_timeout(HELD_STORE_WAIT) {
            Ok(done) => done,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(
                keyfort_core::Error::Unavailable("the store did not answer in time".into()),
            ),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(gone()),
        }
    }
    let (jobs, queue) = std::sync::mpsc::channel::<(Job, Reply)>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("audit-held".into())
        .spawn(move || {
            while let Ok((job, reply)) = queue.recv() {
                let done = runtime.block_on(async {
                    match &job {
                        Job::Keep(held) => audit::keep_held(&barrier, held).await,
                        Job::Forget(ids) => audit::forget_held(&barrier, ids).await,
                    }
                });
                let _ = reply.send(done);
            }
        })?;
    let keep_jobs = jobs.clone();
    Ok((
        Box::new(move |held| ask(&keep_jobs, Job::Keep(held.clone()))),
        Box::new(move |ids| ask(&jobs, Job::Forget(ids.to_vec()))),
    ))
}

/// The parts of a setup that serving needs after the services are open.
pub struct ServeParts {
    pub listen: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub sweep_interval: Duration,
    pub private_endpoints: Vec<PrivateEndpoint>,
}

/// One listening socket.
pub struct Listening {
    pub name: String,
    pub addr: SocketAddr,
    handle: Handle<SocketAddr>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// A node serving in the background.
pub struct Running {
    /// The public listener's address.
    pub addr: SocketAddr,
    /// Every certificate served, with its files (reloaded on SIGHUP): the
    /// public listener's first, then those of private endpoints with their own.
    certificates: Vec<(RustlsConfig, PathBuf, PathBuf)>,
    /// The public listener first, then the private endpoints.
    pub listeners: Vec<Listening>,
    sweeper: tokio::task::JoinHandle<()>,
    deliverer: tokio::task::JoinHandle<()>,
    state: Arc<AppState>,
}

impl Running {
    /// Reads every certificate and key again from their files; one that
    /// fails to load keeps serving the previous one.
    pub async fn reload_certificates(&self) {
        for (tls, cert, key) in &self.certificates {
            match tls.reload_from_pem_file(cert, key).await {
                Ok(()) => {
                    tracing::info!(cert = %cert.display(), "reloaded a TLS certificate and key")
                }
                Err(e) => {
                    tracing::error!(cert = %cert.display(), error = %e, "TLS reload failed; keeping the previous certificate")
                }
            }
        }
    }

    /// Stops accepting, lets requests in flight finish (up to `grace`), and waits.
    pub async fn shutdown(self, grace: Duration) -> Result<(), BoxError> {
        self.sweeper.abort();
        self.deliverer.abort();
        let deadline = tokio::time::Instant::now() + grace;
        for l in &self.listeners {
            l.handle.graceful_shutdown(Some(grace));
        }
        for l in self.listeners {
            l.task.await??;
        }
        // Requests whose clients hung up run on: let them finish and record.
        if tokio::time::timeout_at(deadline, self.state.requests.drained())
            .await
            .is_err()
        {
            tracing::warn!("shutting down with requests still running");
        }
        Ok(())
    }
}

pub fn install_crypto_provider() {
    // Only aws-lc-rs is compiled in; installing it explicitly makes that certain.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Starts serving and returns once the socket is listening.
pub async fn spawn(state: Arc<AppState>, parts: ServeParts) -> Result<Running, BoxError> {
    install_crypto_provider();
    let tls = RustlsConfig::from_pem_file(&parts.tls_cert, &parts.tls_key)
        .await
        .map_err(|e| {
            format!(
                "cannot load the TLS certificate {} / key {}: {e}",
                parts.tls_cert.display(),
                parts.tls_key.display()
            )
        })?;
    let mut listeners = vec![
        listen(
            state.clone(),
            Listener::Public,
            "public",
            parts.listen,
            tls.clone(),
        )
        .await?,
    ];
    let mut certificates = vec![(tls.clone(), parts.tls_cert.clone(), parts.tls_key.clone())];
    for pe in &parts.private_endpoints {
        let pe_tls = match &pe.tls {
            Some((cert, key)) => {
                let own = RustlsConfig::from_pem_file(cert, key).await.map_err(|e| {
                    format!(
                        "private endpoint '{}': cannot load its certificate: {e}",
                        pe.name
                    )
                })?;
                certificates.push((own.clone(), cert.clone(), key.clone()));
                own
            }
            None => tls.clone(),
        };
        let listener = Listener::Private {
            name: pe.name.clone(),
            vaults: pe.vaults.clone(),
        };
        listeners.push(listen(state.clone(), listener, &pe.name, pe.listen, pe_tls).await?);
    }
    let sweeper = tokio::spawn(sweep_forever(state.clone(), parts.sweep_interval));
    let deliverer = tokio::spawn(deliver_forever(state.clone()));
    Ok(Running {
        addr: listeners[0].addr,
        certificates,
        listeners,
        sweeper,
        deliverer,
        state,
    })
}

/// Serves the router on one address, tagged with which listener it is.
async fn listen(
    state: Arc<AppState>,
    listener: Listener,
    name: &str,
    addr: SocketAddr,
    tls: RustlsConfig,
) -> Result<Listening, BoxError> {
    let handle: Handle<SocketAddr> = Handle::new();
    let app = http::router(state, listener).into_make_service_with_connect_info::<SocketAddr>();
    let server = axum_server::bind_rustls(addr, tls).handle(handle.clone());
    let task = tokio::spawn(async move { server.serve(app).await });
    let bound = handle
        .listening()
        .await
        .ok_or_else(|| format!("could not listen on {addr} ({name})"))?;
    Ok(Listening {
        name: name.to_owned(),
        addr: bound,
        handle,
        task,
    })
}

/// Delivers queued events to their webhooks, signed, with retries. Each
/// subscription's queue drains in its own task, in order, so one slow or
/// dead webhook holds up only its own events.
async fn deliver_forever(state: Arc<AppState>) {
    let http = crate::http::audit::webhook_client();
    let draining: Arc<std::sync::Mutex<std::collections::HashSet<String>>> = Default::default();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let due = match state.kf.due_queues().await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the event outbox");
                continue;
            }
        };
        for sub in due {
            let Some(claim) = DrainClaim::take(&draining, sub) else {
                continue; // already draining
            };
            let (state, http) = (state.clone(), http.clone());
            tokio::spawn(async move { drain_queue(&state, &http, claim).await });
        }
    }
}

/// A subscription being drained, released however its task ends.
struct DrainClaim {
    set: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    subscription: String,
}

impl DrainClaim {
    fn take(
        set: &Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
        subscription: String,
    ) -> Option<Self> {
        let fresh = set.lock().ok()?.insert(subscription.clone());
        fresh.then(|| DrainClaim {
            set: set.clone(),
            subscription,
        })
    }
}

impl Drop for DrainClaim {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.lock() {
            set.remove(&self.subscription);
        }
    }
}

/// Sends one subscription's due deliveries in queue order, each read afresh
/// from the store; stops at the first failure (that delivery is retried
/// later, still first in line).
async fn drain_queue(state: &AppState, http: &reqwest::Client, claim: DrainClaim) {
    loop {
        let head = match state.kf.due_head(&claim.subscription).await {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(e) => return tracing::warn!(error = %e, "cannot read the event outbox"),
        };
        let error = send_delivery(http, &head.value).await;
        let failed = error.is_some();
        if let Err(e) = state.kf.delivery_result(head, error).await {
            return tracing::warn!(error = %e, "cannot record an event delivery");
        }
        if failed {
            return;
        }
    }
}

/// One signed delivery attempt; the error, if it failed.
async fn send_delivery(
    http: &reqwest::Client,
    d: &keyfort_core::events::Delivery,
) -> Option<String> {
    let body = serde_json::to_vec(&d.body).unwrap_or_default();
    let sent = http
        .post(&d.endpoint)
        .header("content-type", "application/json")
        .header("aeg-event-type", "Notification")
        .header(
            "x-keyfort-signature",
            keyfort_core::events::signature(&d.secret, &body),
        )
        .header("x-keyfort-delivery-attempt", (d.attempts + 1).to_string())
        .body(body)
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => None,
        Ok(r) => Some(format!("the webhook answered {}", r.status())),
        Err(_) => Some("the webhook could not be reached".to_string()),
    }
}

/// Purges what is due in every vault, now and then every `interval`.
async fn sweep_forever(state: Arc<AppState>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        let site = state.site.clone();
        if let Err(e) = state.kf.scan_expiry(|v| site.vault_url(&v.name)).await {
            tracing::warn!(error = %e, "expiry scan failed; will retry");
        }
        match state.kf.sweep().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                purged = n,
                "purge sweeper removed deleted objects past retention"
            ),
            Err(e) => tracing::warn!(error = %e, "purge sweep failed; will retry"),
        }
    }
}

/// The signals a node answers. Installed before the node says it is ready,
/// so a SIGTERM or SIGHUP sent right after never meets the default action
/// (which would kill it).
pub struct Signals {
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> Result<Self, BoxError> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

/// Serves until SIGTERM or Ctrl-C; reloads every TLS certificate on SIGHUP.
pub async fn serve_until_signalled(running: Running, mut signals: Signals) -> Result<(), BoxError> {
    loop {
        tokio::select! {
            _ = signals.term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = signals.hup.recv() => running.reload_certificates().await,
        }
    }
    tracing::info!("shutting down: finishing requests in flight");
    running.shutdown(Duration::from_secs(10)).await
}
