//! A request that runs while the audit file stops taking records: its record
//! is held and kept in the store before the client hears 503, survives the
//! node going away without recovering it, and is chained first, exactly
//! once, when the node opens again.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{ADMIN, Harness, free_port, write_pki};
use keyfort_core::audit;
use keyfort_core::clock::SystemClock;
use keyfort_server::http::Site;
use keyfort_server::serve::{self, Setup};
use serde_json::{Value, json};

fn audit_file(dir: &Path) -> PathBuf {
    dir.join("logs").join("audit.jsonl")
}

/// A node on `dir`'s data. Its audit file rotates after every record, so
/// each write renames the file inside `logs/`: with that folder moved away,
/// the file refuses the next record (the sink fails).
async fn node(dir: tempfile::TempDir, root_key: &[u8]) -> Harness {
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
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
        root_key: keyfort_crypto::SealingKey::from_bytes(root_key).unwrap(),
        tls_cert: dir.path().join("server.pem"),
        tls_key: dir.path().join("server-key.pem"),
        audit_file: audit_file(dir.path()),
        audit_stdout: false,
        near_expiry_days: 30,
        audit_webhook: None,
        audit_max_file_bytes: 1,
        audit_checkpoint_every: 3,
        token_lifetime: 3600,
        sweep_interval: Duration::from_secs(3600),
        clock: Arc::new(SystemClock),
        network: Default::default(),
        private_endpoints: vec![],
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

/// Takes a node away as a crash would leave its data: the server has no
/// step that writes held records on the way out, so nothing is recovered
/// here; the listeners close and every handle on the node's state (and its
/// data folder's lock) is let go, so the folder can be opened again.
async fn crash(h: Harness) -> tempfile::TempDir {
    let Harness {
        dir,
        state,
        mut running,
        ..
    } = h;
    running
        .take()
        .unwrap()
        .shutdown(Duration::from_secs(1))
        .await
        .unwrap();
    for _ in 0..200 {
        if Arc::strong_count(&state) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(Arc::strong_count(&state), 1, "the node's state is let go");
    drop(state);
    dir
}

/// The request records of every audit file, oldest first, and whether the
/// chain verifies.
fn request_records(dir: &Path) -> (Vec<Value>, bool) {
    let files = audit::log_files(&audit_file(dir));
    let records = files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .filter(|r| r.get("type").is_none())
        .collect();
    let intact = audit::verify(&files, None, None).first_break.is_none();
    (records, intact)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_record_survives_a_crash_and_is_chained_once_at_start_up() {
    let root_key = keyfort_crypto::SealingKey::generate()
        .expose_bytes()
        .to_vec();
    let h = node(tempfile::tempdir().unwrap(), &root_key).await;
    let kf = h.state.kf.clone();
    let tenant = kf.identity.create_tenant("t").await.unwrap();
    let alpha = h.vault(&tenant.id, "alpha").await;
    let admin = h.principal(&tenant.id, Some((&alpha, ADMIN))).await;
    let client = h.client(&h.ca_pem, false);
    let token = h.token(&client, &admin).await;

    // The audit file stops taking records while a request runs.
    let logs = h.dir.path().join("logs");
    let away = h.dir.path().join("logs-away");
    std::fs::rename(&logs, &away).unwrap();
    let resp = client
        .put(h.url("alpha", "/secrets/api-key"))
        .bearer_auth(&token)
        .json(&json!({"value": "v1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503, "its record could not be written");
    let request_id = resp.headers()["x-ms-request-id"]
        .to_str()
        .unwrap()
        .to_owned();

    // By the time the client heard 503, the record was in the store.
    let kept = audit::kept_held(&kf.barrier).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].record["requestId"], request_id.as_str());
    assert_eq!(kept[0].record["operationName"], "SecretSet");
    let keys = kf.barrier.list_keys(audit::HELD_PREFIX).await.unwrap();
    let sealed = kf.barrier.store().get(&keys[0]).await.unwrap().unwrap();
    assert!(
        !String::from_utf8_lossy(&sealed).contains(&request_id),
        "kept sealed"
    );
    drop((client, kf));

    // The node goes away before the file works again; the file is back for
    // the next start.
    let dir = crash(h).await;
    std::fs::rename(&away, &logs).unwrap();
    let (before, _) = request_records(dir.path());
    assert!(before.iter().all(|r| r["requestId"] != request_id.as_str()));

    let h = node(dir, &root_key).await;
    let (records, intact) = request_records(h.dir.path());
    assert!(intact, "the chain verifies");
    assert_eq!(
        records.len(),
        before.len() + 1,
        "the held record is chained at start-up, before any request"
    );
    let late = records.last().unwrap();
    assert_eq!(late["requestId"], request_id.as_str());
    assert_eq!(late["httpStatus"], 200, "the status the request had");
    assert!(
        late["reason"]
            .as_str()
            .unwrap()
            .starts_with("Recorded late")
    );
    assert!(
        audit::kept_held(&h.state.kf.barrier)
            .await
            .unwrap()
            .is_empty(),
        "the store let go of it once it was in the file"
    );

    // The change stood, and requests run again.
    let client = h.client(&h.ca_pem, false);
    let token = h.token(&client, &admin).await;
    let resp = client
        .get(h.url("alpha", "/secrets/api-key/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["value"], "v1");

    // A crash after the record was chained but before the store let go of
    // it: the row is back in the store at the next start.
    h.state
        .kf
        .barrier
        .commit(keyfort_store::Batch::new().put(keys[0].clone(), sealed))
        .await
        .unwrap();
    drop(client);
    let dir = crash(h).await;
    let h = node(dir, &root_key).await;
    let (records, intact) = request_records(h.dir.path());
    assert!(intact);
    assert_eq!(
        records
            .iter()
            .filter(|r| r["requestId"] == request_id.as_str())
            .count(),
        1,
        "never written twice"
    );
    assert!(
        audit::kept_held(&h.state.kf.barrier)
            .await
            .unwrap()
            .is_empty()
    );
    crash(h).await;
}
