//! The server over real TLS sockets: HTTP/1.1 and HTTP/2, tenant isolation of
//! tokens, RBAC refusals, one audit record per request, and certificate reload.

mod common;

use std::time::Duration;

use common::{ADMIN, SECRETS_USER, start, write_pki};
use serde_json::{Value, json};

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
    // The operator replaces the files in place (as a renewal would), then SIGHUP.
    for (new, current) in [
        ("server-new.pem", "server.pem"),
        ("server-key-new.pem", "server-key.pem"),
    ] {
        std::fs::copy(h.dir.path().join(new), h.dir.path().join(current)).unwrap();
    }
    running.reload_certificates().await;
    assert!(
        health(h.client(&new_ca, true), h.port).await.is_ok(),
        "reload takes effect for new connections"
    );
    running.shutdown(Duration::from_secs(5)).await.unwrap();
}
