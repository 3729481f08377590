//! Keyfort throughput and latency, as ratios against a baseline in the same run.
//!
//! Starts `keyfort dev` (release build) on a free port, then drives it over
//! HTTPS with keep-alive from 32 concurrent clients (one connection each):
//!
//! 1. baseline: `GET /_health`, a bare TLS endpoint of the same server stack
//!    (same listener, TLS and HTTP layers; no auth, store or audit);
//! 2. secret GET (latest version): token check, RBAC, store read, decryption, audit;
//! 3. secret SET: the same plus a durable (fsynced) write of a new version;
//! 4. key sign, ES256 (P-256) and RS256 (RSA-2048): a secret GET's path plus
//!    loading the private key and signing a digest.
//!
//! Usage: keyfort-bench [--seconds N] [--clients N] [--keyfort PATH]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

struct Args {
    seconds: u64,
    clients: usize,
    keyfort: PathBuf,
}

fn parse_args() -> Args {
    let mut args = Args {
        seconds: 5,
        clients: 32,
        keyfort: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/keyfort"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--seconds" => args.seconds = v.parse().expect("--seconds N"),
            "--clients" => args.clients = v.parse().expect("--clients N"),
            "--keyfort" => args.keyfort = PathBuf::from(v),
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

struct Server {
    child: std::process::Child,
    dev: Value,
    port: u16,
    _dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

fn start_server(keyfort: &PathBuf) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("keyfort-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let child = std::process::Command::new(keyfort)
        .args([
            "dev",
            "--data-dir",
            dir.to_str().unwrap(),
            "--port",
            &port.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {}: {e} (build it with cargo build --release -p keyfort-cli)",
                keyfort.display()
            )
        });
    let dev_json = dir.join("dev.json");
    // Owned by `Server` at once, so its Drop stops the process on every path.
    let mut server = Server {
        child,
        dev: Value::Null,
        port,
        _dir: dir,
    };
    for _ in 0..600 {
        if let Ok(text) = std::fs::read_to_string(&dev_json)
            && let Ok(dev) = serde_json::from_str(&text)
        {
            server.dev = dev;
            return server;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("keyfort dev did not become ready");
}

fn client(server: &Server) -> reqwest::Client {
    let ca = std::fs::read(server.dev["ca_cert"].as_str().unwrap()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .resolve(
            "dev.vault.localhost",
            std::net::SocketAddr::from(([127, 0, 0, 1], server.port)),
        )
        .http1_only()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap()
}

async fn token(server: &Server) -> String {
    let d = &server.dev;
    let resp = client(server)
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            d["authority"].as_str().unwrap(),
            d["tenant_id"].as_str().unwrap()
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", d["client_id"].as_str().unwrap()),
            ("client_secret", d["client_secret"].as_str().unwrap()),
            (
                "scope",
                &format!("{}/.default", d["audience"].as_str().unwrap()),
            ),
        ])
        .send()
        .await
        .unwrap();
    resp.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[derive(Clone, Copy, PartialEq)]
enum Workload {
    Baseline,
    SecretGet,
    SecretSet,
    SignEs256,
    SignRs256,
}

struct Outcome {
    name: &'static str,
    rps: f64,
    p50: Duration,
    p99: Duration,
    errors: usize,
}

async fn run(
    server: &Server,
    token: &str,
    load: Workload,
    clients: usize,
    seconds: u64,
) -> Outcome {
    let vault = server.dev["vault_url"].as_str().unwrap().to_owned();
    let health = format!("{}/_health", server.dev["authority"].as_str().unwrap());
    let errors = Arc::new(AtomicUsize::new(0));
    let counter = Arc::new(AtomicUsize::new(0));
    let warmup = Duration::from_secs(1);
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for worker in 0..clients {
        let c = client(server);
        let (vault, health, token) = (vault.clone(), health.clone(), token.to_owned());
        let (errors, counter) = (errors.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let now = Instant::now();
                if now >= end {
                    return latencies;
                }
                let req = match load {
                    Workload::Baseline => c.get(&health),
                    Workload::SecretGet => c
                        .get(format!(
                            "{vault}/secrets/bench-read/?api-version=2026-04-01"
                        ))
                        .bearer_auth(&token),
                    Workload::SignEs256 | Workload::SignRs256 => {
                        let (key, alg) = if load == Workload::SignEs256 {
                            ("bench-ec", "ES256")
                        } else {
                            ("bench-rsa", "RS256")
                        };
                        c.post(format!("{vault}/keys/{key}//sign?api-version=2025-07-01"))
                            .bearer_auth(&token)
                            .json(&serde_json::json!({
                                "alg": alg,
                                "value": "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
                            }))
                    }
                    Workload::SecretSet => {
                        let n = counter.fetch_add(1, Ordering::Relaxed);
                        c.put(format!(
                            "{vault}/secrets/bench-w{}?api-version=2026-04-01",
                            (worker * 7919 + n) % 500
                        ))
                        .bearer_auth(&token)
                        .json(&serde_json::json!({"value": format!("bench-value-{n}")}))
                    }
                };
                let ok = match req.send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if now >= measure_from {
                    if ok {
                        latencies.push(now.elapsed());
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Outcome {
        name: match load {
            Workload::Baseline => "baseline GET /_health",
            Workload::SecretGet => "secret GET",
            Workload::SecretSet => "secret SET (fsync)",
            Workload::SignEs256 => "key sign ES256",
            Workload::SignRs256 => "key sign RS256 (2048)",
        },
        rps: all.len() as f64 / seconds as f64,
        p50: pct(0.50),
        p99: pct(0.99),
        errors: errors.load(Ordering::Relaxed),
    }
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let server = start_server(&args.keyfort);
    let token = token(&server).await;
    let setup = client(&server)
        .put(format!(
            "{}/secrets/bench-read?api-version=2026-04-01",
            server.dev["vault_url"].as_str().unwrap()
        ))
        .bearer_auth(&token)
        .json(&serde_json::json!({"value": "x".repeat(64)}))
        .send()
        .await
        .unwrap();
    assert!(
        setup.status().is_success(),
        "could not create the benchmark secret"
    );
    for (name, body) in [
        ("bench-ec", serde_json::json!({"kty": "EC", "crv": "P-256"})),
        (
            "bench-rsa",
            serde_json::json!({"kty": "RSA", "key_size": 2048}),
        ),
    ] {
        let made = client(&server)
            .post(format!(
                "{}/keys/{name}/create?api-version=2025-07-01",
                server.dev["vault_url"].as_str().unwrap()
            ))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(made.status().is_success(), "could not create {name}");
    }

    println!(
        "keyfort-bench: {} clients, keep-alive, HTTPS (TLS 1.3), {} s per workload after 1 s warm-up, {} cores",
        args.clients,
        args.seconds,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    let mut results = Vec::new();
    for load in [
        Workload::Baseline,
        Workload::SecretGet,
        Workload::SecretSet,
        Workload::SignEs256,
        Workload::SignRs256,
    ] {
        results.push(run(&server, &token, load, args.clients, args.seconds).await);
    }
    let base = results[0].rps;
    println!(
        "{:<24} {:>10} {:>10} {:>10} {:>8} {:>7}",
        "workload", "req/s", "p50 ms", "p99 ms", "ratio", "errors"
    );
    for r in &results {
        println!(
            "{:<24} {:>10.0} {:>10.2} {:>10.2} {:>8.2} {:>7}",
            r.name,
            r.rps,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.rps / base,
            r.errors
        );
    }
    println!(
        "targets: secret GET >= 0.50 x baseline ({}), secret SET >= 1000 req/s with fsync ({})",
        if results[1].rps / base >= 0.5 {
            "met"
        } else {
            "NOT met"
        },
        if results[2].rps >= 1000.0 {
            "met"
        } else {
            "NOT met"
        }
    );
}
