//! Certificates through the service, with a clock the test moves:
//! self-signed certificates renew themselves under their policy's AutoRenew
//! action, once per due version.

mod common;

use common::fixture;
use keyfort_core::certificates::{
    CertPolicy, CreateCertificate, IssuerParams, KeyProps, SecretProps, X509Props,
};
use keyfort_core::clock::DAY;

fn policy(subject: &str, months: u32) -> CertPolicy {
    CertPolicy {
        key_props: KeyProps {
            exportable: true,
            kty: "EC".into(),
            key_size: None,
            reuse_key: false,
            crv: Some("P-256".into()),
        },
        secret_props: SecretProps {
            content_type: "application/x-pem-file".into(),
        },
        x509_props: X509Props {
            subject: subject.into(),
            ekus: Vec::new(),
            sans: None,
            key_usage: Vec::new(),
            validity_months: months,
        },
        lifetime_actions: Vec::new(),
        issuer: IssuerParams {
            name: "Self".into(),
            cty: None,
            cert_transparency: None,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_certificates_renew_at_80_percent_once() {
    let (kf, clock, v, _dir) = fixture().await;
    let certs = &kf.certificates;
    let create = CreateCertificate {
        policy: policy("CN=renews", 12),
        tags: None,
        enabled: None,
    };
    let op = certs.create(&v, "renews", create).await.unwrap();
    let first = op.target_version.unwrap();
    let stored = certs.policy(&v, "renews").await.unwrap();
    assert_eq!(
        stored.lifetime_actions[0]["action"]["action_type"], "AutoRenew",
        "Azure's default lifetime action for a self-signed certificate"
    );

    assert!(certs.renew_due(&v).await.unwrap().is_empty(), "not due yet");
    clock.advance(250 * DAY); // under 80% of a year
    assert!(certs.renew_due(&v).await.unwrap().is_empty());
    clock.advance(50 * DAY); // past 80%
    let renewed = certs.renew_due(&v).await.unwrap();
    assert_eq!(renewed.len(), 1);
    assert_ne!(renewed[0].meta.version, first);
    assert_eq!(
        certs.get(&v, "renews", None).await.unwrap().meta.version,
        renewed[0].meta.version
    );
    assert!(
        certs.renew_due(&v).await.unwrap().is_empty(),
        "the new version starts a new lifetime"
    );

    // A certificate whose policy says only to notify is left alone.
    let mut notify = policy("CN=notify", 1);
    notify.lifetime_actions = vec![serde_json::json!({
        "trigger": { "days_before_expiry": 10 },
        "action": { "action_type": "EmailContacts" },
    })];
    let create = CreateCertificate {
        policy: notify,
        tags: None,
        enabled: None,
    };
    certs.create(&v, "notify", create).await.unwrap();
    clock.advance(40 * DAY);
    let renewed = certs.renew_due(&v).await.unwrap();
    assert!(renewed.iter().all(|c| c.name != "notify"));
}
