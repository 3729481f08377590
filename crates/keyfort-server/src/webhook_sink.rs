//! An audit sink that forwards records to a webhook. A record counts as taken
//! once it is in the sink's bounded queue; a background task posts the queue
//! in batches (JSON lines) and retries with backoff, keeping order. When the
//! webhook stays down and the queue fills, the sink refuses records, so a
//! node whose only sink is a webhook fails closed.

use std::time::Duration;

use keyfort_core::audit::AuditSink;
use tokio::sync::mpsc;

/// Records held while the webhook is unreachable.
const QUEUE: usize = 10_000;
const BATCH: usize = 500;

pub struct WebhookSink {
    tx: mpsc::Sender<Vec<u8>>,
}

impl WebhookSink {
    /// Starts the sender task (needs a Tokio runtime).
    pub fn start(url: String) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(forward(url, rx));
        WebhookSink { tx }
    }
}

impl AuditSink for WebhookSink {
    fn write_line(&self, line: &[u8]) -> std::io::Result<()> {
        self.tx.try_send(line.to_vec()).map_err(|_| {
            std::io::Error::other(
                "the audit webhook queue is full: the webhook has been unreachable for too long",
            )
        })
    }
}

async fn forward(url: String, mut rx: mpsc::Receiver<Vec<u8>>) {
    let http = crate::http::audit::webhook_client();
    while let Some(first) = rx.recv().await {
        let mut body = first;
        while body.len() < BATCH * 1024 {
            match rx.try_recv() {
                Ok(line) => body.extend_from_slice(&line),
                Err(_) => break,
            }
        }
        let mut backoff = Duration::from_millis(500);
        loop {
            let sent = http
                .post(&url)
                .header("content-type", "application/x-ndjson")
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => break,
                other => {
                    let why = match other {
                        Ok(r) => format!("answered {}", r.status()),
                        Err(_) => "unreachable".to_string(),
                    };
                    tracing::warn!(error = %why, "audit webhook delivery failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forwards_in_order_and_fails_closed_when_it_cannot() {
        let got = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink_got = got.clone();
        let app = axum::Router::new().route(
            "/audit",
            axum::routing::post(move |body: axum::body::Bytes| {
                let got = sink_got.clone();
                async move {
                    got.lock().unwrap().extend_from_slice(&body);
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let sink = WebhookSink::start(format!("http://{addr}/audit"));
        for i in 0..50 {
            sink.write_line(format!("{{\"n\":{i}}}\n").as_bytes())
                .unwrap();
        }
        for _ in 0..100 {
            if got.lock().unwrap().iter().filter(|b| **b == b'\n').count() == 50 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let text = String::from_utf8(got.lock().unwrap().clone()).unwrap();
        let ns: Vec<u32> = text
            .lines()
            .map(|l| l[5..l.len() - 1].parse().unwrap())
            .collect();
        assert_eq!(ns, (0..50).collect::<Vec<_>>(), "every record, in order");

        // A webhook that never answers: once the queue is full, records are
        // refused. The sender may take one batch off the queue (up to all of
        // it) before it blocks retrying, so at most twice the queue is taken.
        let dead = WebhookSink::start("http://127.0.0.1:9/audit".into());
        let refused = (0..3 * QUEUE)
            .filter(|_| dead.write_line(b"{}\n").is_err())
            .count();
        assert!(
            refused >= QUEUE - 1,
            "the sink refuses records it cannot keep ({refused} refused)"
        );
    }
}
