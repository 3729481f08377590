//! Just-in-time access end to end, over HTTPS, with a clock the test moves:
//! eligibility grants nothing; activation needs MFA and waits for approval;
//! the requester cannot approve; another approver (with MFA) approves; access
//! works; when the duration ends access is refused again; each step is audited.

mod common;

use std::sync::Arc;

use common::{ADMIN, Harness, start_with_clock};
use keyfort_core::clock::ManualClock;
use keyfort_core::identity::NewUser;
use serde_json::{Value, json};

const SECRETS_OFFICER: &str = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7";

fn base32_decode(s: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut acc, mut out) = (0u32, 0u64, Vec::new());
    for c in s.bytes() {
        acc = (acc << 5) | alphabet.iter().position(|a| *a == c).unwrap() as u64;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn totp_secret(uri: &str) -> Vec<u8> {
    let secret = uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    base32_decode(secret)
}

struct Person {
    username: String,
    password: String,
    object_id: String,
    secret: Vec<u8>,
}

async fn user(h: &Harness, tenant: &str, name: &str) -> Person {
    let password = format!("{name}-long-password-123");
    let (u, uri) = h
        .state
        .kf
        .identity
        .create_user(NewUser {
            tenant_id: tenant,
            username: name,
            display_name: name,
            password: &password,
        })
        .await
        .unwrap();
    Person {
        username: u.username,
        password,
        object_id: u.object_id,
        secret: totp_secret(&uri),
    }
}

async fn user_token(
    h: &Harness,
    c: &reqwest::Client,
    tenant: &str,
    p: &Person,
    audience: &str,
    mfa: bool,
) -> String {
    let mut form = vec![
        ("grant_type", "password".to_string()),
        ("username", p.username.clone()),
        ("password", p.password.clone()),
        ("scope", format!("{audience}/.default")),
    ];
    if mfa {
        form.push((
            "otp",
            keyfort_crypto::totp::code(&p.secret, h.state.kf.clock.now()),
        ));
    }
    let r = c
        .post(format!(
            "https://localhost:{}/{tenant}/oauth2/v2.0/token",
            h.port
        ))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eligibility_activation_approval_and_expiry() {
    let clock = Arc::new(ManualClock::default());
    let mut h = start_with_clock(clock.clone()).await;
    let kf = h.state.kf.clone();
    let (tenant, admin, admin_secret) = kf.create_tenant_with_admin("pim").await.unwrap();
    let vault = h.vault(&tenant.id, "alpha").await;
    let admin_p = common::Principal {
        tenant: tenant.id.clone(),
        client_id: admin.app_id.clone(),
        secret: admin_secret,
        object_id: admin.object_id.clone(),
    };
    let scope = keyfort_core::authz::scope_of(&vault, None);
    kf.authz
        .assign(&tenant.id, &admin.object_id, ADMIN, &scope, 0)
        .await
        .unwrap();
    let alice = user(&h, &tenant.id, "alice@example.com").await;
    let bob = user(&h, &tenant.id, "bob@example.com").await;

    let c = h.client(&h.ca_pem, false);
    let site = &h.state.site;
    let (data_aud, mgmt_aud) = (site.data_audience(), site.management_audience());
    let mgmt = format!("https://localhost:{}", h.port);
    let arm_scope = format!(
        "/subscriptions/{}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/alpha",
        tenant.subscription_id
    );
    let authz = format!("{mgmt}{arm_scope}/providers/Microsoft.Authorization");
    let q = [("api-version", "2026-05-15")];

    // The admin (a service principal, Owner of the subscription) sets the policy and the eligibility.
    let admin_mgmt = {
        let r = c
            .post(format!(
                "https://localhost:{}/{}/oauth2/v2.0/token",
                h.port, tenant.id
            ))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", admin_p.client_id.as_str()),
                ("client_secret", admin_p.secret.as_str()),
                ("scope", &format!("{mgmt_aud}/.default")),
            ])
            .send()
            .await
            .unwrap();
        r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let r = c
        .put(format!("{authz}/roleManagementPolicies/{SECRETS_OFFICER}"))
        .query(&q)
        .bearer_auth(&admin_mgmt)
        .json(&json!({"properties": {"approvers": [bob.object_id], "maximumDuration": "PT1H"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = c
        .put(format!("{authz}/roleEligibilityScheduleRequests/{}", uuid::Uuid::new_v4()))
        .query(&q)
        .bearer_auth(&admin_mgmt)
        .json(&json!({"properties": {"principalId": alice.object_id, "roleDefinitionId": SECRETS_OFFICER, "requestType": "AdminAssign"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let admin_data = h.token(&c, &admin_p).await;
    let r = c
        .put(h.url("alpha", "/secrets/db"))
        .bearer_auth(&admin_data)
        .json(&json!({"value": "s3cret"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Eligible but not active: nothing.
    let alice_data = user_token(&h, &c, &tenant.id, &alice, &data_aud, false).await;
    let get_secret = |token: String| {
        let c = c.clone();
        let url = h.url("alpha", "/secrets/db/");
        async move {
            c.get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(get_secret(alice_data.clone()).await, 403);

    // Activation without MFA is refused.
    let activate = |token: String| {
        let c = c.clone();
        let url = format!(
            "{authz}/roleAssignmentScheduleRequests/{}",
            uuid::Uuid::new_v4()
        );
        async move {
            c.put(url)
                .query(&[("api-version", "2026-05-15")])
                .bearer_auth(token)
                .json(&json!({"properties": {"roleDefinitionId": SECRETS_OFFICER, "requestType": "SelfActivate",
                    "justification": "rotate the db password (ticket 42)",
                    "scheduleInfo": {"expiration": {"type": "AfterDuration", "duration": "PT30M"}}}}))
                .send()
                .await
                .unwrap()
        }
    };
    let alice_plain = user_token(&h, &c, &tenant.id, &alice, &mgmt_aud, false).await;
    let r = activate(alice_plain.clone()).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("multi-factor"));

    // With MFA: pending, and still nothing.
    let alice_mfa = user_token(&h, &c, &tenant.id, &alice, &mgmt_aud, true).await;
    let r = activate(alice_mfa.clone()).await;
    assert_eq!(r.status(), 201);
    let req: Value = r.json().await.unwrap();
    assert_eq!(req["properties"]["status"], "PendingApproval");
    let approval = req["properties"]["approvalId"].as_str().unwrap().to_owned();
    assert_eq!(
        get_secret(alice_data.clone()).await,
        403,
        "a pending request grants nothing"
    );

    let decide = |token: String, result: &'static str| {
        let c = c.clone();
        let url = format!(
            "{mgmt}/providers/Microsoft.Authorization/roleAssignmentApprovals/{approval}/stages/{approval}"
        );
        async move {
            c.put(url)
                .query(&[("api-version", "2026-05-15")])
                .bearer_auth(token)
                .json(&json!({"properties": {"reviewResult": result, "justification": "ok"}}))
                .send()
                .await
                .unwrap()
        }
    };
    // Self-approval is refused; an approver without MFA too; with MFA it works.
    assert_eq!(decide(alice_mfa.clone(), "Approve").await.status(), 403);
    let bob_plain = user_token(&h, &c, &tenant.id, &bob, &mgmt_aud, false).await;
    assert_eq!(decide(bob_plain, "Approve").await.status(), 403);
    let bob_mfa = user_token(&h, &c, &tenant.id, &bob, &mgmt_aud, true).await;
    let r = decide(bob_mfa, "Approve").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["properties"]["status"],
        "Provisioned"
    );

    // Active: the secret can be read (and, as Secrets Officer, written).
    assert_eq!(get_secret(alice_data.clone()).await, 200);

    // After the duration the role lapses by itself, checked on the request.
    clock.advance(31 * 60);
    assert_eq!(get_secret(alice_data.clone()).await, 403);

    // Every step is in the audit log.
    let ops: Vec<(String, u64)> = h
        .audit_lines()
        .iter()
        .map(|r| {
            (
                r["operationName"].as_str().unwrap().to_owned(),
                r["httpStatus"].as_u64().unwrap(),
            )
        })
        .collect();
    for step in [
        ("PimPolicySet", 200),
        ("PimEligibilityCreate", 201),
        ("PimActivationRequest", 403),
        ("PimActivationRequest", 201),
        ("PimApprovalDecision", 403),
        ("PimApprovalDecision", 200),
        ("SecretGet", 403),
        ("SecretGet", 200),
    ] {
        assert!(
            ops.iter().any(|(o, s)| o == step.0 && *s == step.1),
            "{step:?} not in audit: {ops:?}"
        );
    }
    let granted = h
        .audit_lines()
        .into_iter()
        .find(|r| {
            r["operationName"] == "SecretGet"
                && r["httpStatus"] == 200
                && r["identity"]["objectId"] == alice.object_id.as_str()
        })
        .unwrap();
    assert!(
        granted["authorization"]
            .as_str()
            .unwrap()
            .starts_with("pim:"),
        "the grant names the activation"
    );
    h.running
        .take()
        .unwrap()
        .shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
}
