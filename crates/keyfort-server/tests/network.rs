//! Network rules over real sockets, with loopback addresses as the networks:
//! IP rules and CIDR edges, virtual networks, trusted proxies (and a spoofed
//! `X-Forwarded-For` from an untrusted peer), private endpoints and
//! `publicNetworkAccess: Disabled`.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use common::{ADMIN, Harness, start_with};
use keyfort_core::clock::SystemClock;
use keyfort_core::network::{Cidr, NetworkSettings};
use keyfort_core::vaults::VaultChanges;
use keyfort_server::serve::PrivateEndpoint;
use serde_json::{Value, json};

/// A client whose connections leave from `source`, with every vault host on
/// `target`'s address (reqwest keeps the URL's port).
fn client_from(h: &Harness, source: &str, target: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(h.ca_pem.as_bytes()).unwrap()])
        .local_address(source.parse::<IpAddr>().unwrap())
        .resolve("alpha.vault.localhost", target)
        .resolve("beta.vault.localhost", target)
        .build()
        .unwrap()
}

async fn status(
    c: &reqwest::Client,
    h: &Harness,
    vault: &str,
    token: &str,
    xff: Option<&str>,
) -> (u16, Value) {
    let mut req = c.get(h.url(vault, "/secrets")).bearer_auth(token);
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    let r = req.send().await.unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firewall_proxies_and_private_endpoints() {
    let network = NetworkSettings {
        trusted_proxies: vec![Cidr::parse("127.0.0.9").unwrap()],
        virtual_networks: [(
            "corp".to_string(),
            vec![Cidr::parse("127.0.0.5/32").unwrap()],
        )]
        .into(),
    };
    // The private endpoint is another address on the same port, as private DNS would give.
    let mut h = start_with(Arc::new(SystemClock), network, move |port| {
        vec![PrivateEndpoint {
            name: "pe-alpha".into(),
            listen: SocketAddr::from(([127, 0, 0, 2], port)),
            vaults: vec!["alpha".into()],
            tls: None,
        }]
    })
    .await;
    let kf = h.state.kf.clone();
    let (tenant, admin, secret) = kf.create_tenant_with_admin("net").await.unwrap();
    let alpha = h.vault(&tenant.id, "alpha").await;
    let beta = h.vault(&tenant.id, "beta").await;
    for v in [&alpha, &beta] {
        kf.authz
            .assign(
                &tenant.id,
                &admin.object_id,
                ADMIN,
                &keyfort_core::authz::scope_of(v, None),
                0,
            )
            .await
            .unwrap();
    }
    let acls = json!({
        "defaultAction": "Deny", "bypass": "None",
        "ipRules": [{"value": "127.0.0.3"}, {"value": "127.0.0.16/28"}, {"value": "2001:db8::/32"}],
        "virtualNetworkRules": [{"id": "/subscriptions/x/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/corp/subnets/default"}],
    });
    kf.vaults
        .update(
            &tenant.id,
            "alpha",
            VaultChanges {
                network_acls: Some(acls),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let admin_p = common::Principal {
        tenant: tenant.id.clone(),
        client_id: admin.app_id.clone(),
        secret,
        object_id: admin.object_id.clone(),
    };
    let public = SocketAddr::from(([127, 0, 0, 1], h.port));
    let token = h
        .token(&client_from(&h, "127.0.0.1", public), &admin_p)
        .await;

    // IP rules, CIDR edges and the virtual network.
    for (source, allowed) in [
        ("127.0.0.1", false),
        ("127.0.0.3", true),
        ("127.0.0.4", false),
        ("127.0.0.15", false),
        ("127.0.0.16", true),
        ("127.0.0.31", true),
        ("127.0.0.32", false),
        ("127.0.0.5", true),
    ] {
        let (code, body) =
            status(&client_from(&h, source, public), &h, "alpha", &token, None).await;
        if allowed {
            assert_eq!(code, 200, "{source} should pass");
        } else {
            assert_eq!(code, 403, "{source} should be refused");
            assert_eq!(body["error"]["code"], "ForbiddenByFirewall");
            assert!(
                body["error"]["message"].as_str().unwrap().contains(source),
                "the message names the client address"
            );
        }
    }
    // Beta has no rules: open.
    assert_eq!(
        status(
            &client_from(&h, "127.0.0.1", public),
            &h,
            "beta",
            &token,
            None
        )
        .await
        .0,
        200
    );

    // X-Forwarded-For: ignored from an untrusted peer, believed from the trusted proxy.
    let untrusted = client_from(&h, "127.0.0.1", public);
    assert_eq!(
        status(&untrusted, &h, "alpha", &token, Some("127.0.0.3"))
            .await
            .0,
        403,
        "spoofed header ignored"
    );
    let proxy = client_from(&h, "127.0.0.9", public);
    assert_eq!(
        status(&proxy, &h, "alpha", &token, Some("127.0.0.3"))
            .await
            .0,
        200
    );
    assert_eq!(
        status(&proxy, &h, "alpha", &token, Some("127.0.0.3, 127.0.0.4"))
            .await
            .0,
        403,
        "the right-most untrusted hop counts"
    );
    assert_eq!(
        status(&proxy, &h, "alpha", &token, Some("2001:db8::7"))
            .await
            .0,
        200,
        "IPv6 rule"
    );
    let (code, body) = status(&proxy, &h, "alpha", &token, Some("2001:db9::1")).await;
    assert_eq!(code, 403);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2001:db9::1")
    );

    // Private endpoint: serves alpha only; with public access disabled alpha answers only there.
    let private = SocketAddr::from(([127, 0, 0, 2], h.port));
    let via_private = client_from(&h, "127.0.0.1", private);
    assert_eq!(
        status(&via_private, &h, "alpha", &token, None).await.0,
        200,
        "private endpoint bypasses the IP rules"
    );
    let (code, body) = status(&via_private, &h, "beta", &token, None).await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (403, Some("ForbiddenByConnection"))
    );
    kf.vaults
        .update(
            &tenant.id,
            "alpha",
            VaultChanges {
                public_network_access: Some("Disabled".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let (code, body) = status(
        &client_from(&h, "127.0.0.3", public),
        &h,
        "alpha",
        &token,
        None,
    )
    .await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (403, Some("ForbiddenByConnection"))
    );
    assert_eq!(status(&via_private, &h, "alpha", &token, None).await.0, 200);

    // Refusals are audited with the client address, and touched nothing.
    let refused: Vec<Value> = h
        .audit_lines()
        .into_iter()
        .filter(|r| r["httpStatus"] == 403)
        .collect();
    assert!(
        refused
            .iter()
            .any(|r| r["callerIp"] == "127.0.0.4" && r["vault"] == "alpha")
    );
    assert!(refused.iter().any(|r| r["callerIp"] == "2001:db9::1"));
    h.running
        .take()
        .unwrap()
        .shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
}
