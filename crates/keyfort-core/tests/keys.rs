//! Keys through the service, with a clock the test moves: which operations
//! a key's state allows, and which keys the advisor says need a backup.

mod common;

use common::fixture;
use keyfort_core::Error;
use keyfort_core::clock::DAY;
use keyfort_core::keys::{CreateKey, KeyOperation, UpdateKey};
use keyfort_core::objects::AttributeChanges;
use keyfort_crypto::SealingKey;

fn ec(nbf: Option<i64>, exp: Option<i64>) -> CreateKey {
    CreateKey {
        kty: "EC".into(),
        attributes: AttributeChanges {
            nbf: nbf.map(Some),
            exp: exp.map(Some),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn inner(e: Error) -> Option<&'static str> {
    e.inner_code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_state_decides_what_it_may_do() {
    let (kf, clock, v, _dir) = fixture().await;
    let keys = &kf.keys;
    let now = keyfort_core::clock::Clock::now(&*clock);
    let digest = [7u8; 32];
    let now_at = || keyfort_core::clock::Clock::now(&*clock);
    let sign = |name: &'static str| {
        let v = v.clone();
        let kf = &kf;
        async move {
            let key = kf.key_in_use(&v, name, None).await?;
            key.operate(KeyOperation::Sign, "ES256", &digest, now_at())
        }
    };
    let verify = |name: &'static str, signature: Vec<u8>| {
        let v = v.clone();
        let kf = &kf;
        async move {
            let key = kf.key_in_use(&v, name, None).await?;
            key.verify("ES256", &digest, &signature, now_at())
        }
    };

    // Valid now: signs, and the signature verifies.
    keys.create(&v, "live", ec(None, None)).await.unwrap();
    let sig = sign("live").await.unwrap();
    let ok = verify("live", sig.result.to_vec()).await.unwrap();
    assert!(ok.valid);

    // Before nbf and after exp, only undoing works (verify here).
    keys.create(&v, "later", ec(Some(now + DAY), None))
        .await
        .unwrap();
    assert_eq!(
        inner(sign("later").await.err().unwrap()),
        Some("KeyNotYetValid")
    );
    keys.create(&v, "old", ec(None, Some(now + 10)))
        .await
        .unwrap();
    let old_sig = sign("old").await.unwrap();
    clock.advance(20);
    assert_eq!(inner(sign("old").await.err().unwrap()), Some("KeyExpired"));
    let checked = verify("old", old_sig.result.to_vec()).await.unwrap();
    assert!(
        checked.valid,
        "an expired key still verifies old signatures"
    );

    // Disabled: nothing at all; key_ops: only what they list.
    let disable = UpdateKey {
        attributes: AttributeChanges {
            enabled: Some(false),
            ..Default::default()
        },
        ..Default::default()
    };
    keys.update(&v, "live", None, disable).await.unwrap();
    assert_eq!(
        inner(sign("live").await.err().unwrap()),
        Some("KeyDisabled")
    );
    let verify_only = UpdateKey {
        key_ops: Some(vec!["verify".into()]),
        attributes: AttributeChanges {
            enabled: Some(true),
            ..Default::default()
        },
        ..Default::default()
    };
    keys.update(&v, "live", None, verify_only).await.unwrap();
    assert_eq!(
        inner(sign("live").await.err().unwrap()),
        Some("KeyOperationForbidden")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_advisor_counts_versions_no_backup_holds() {
    let (kf, clock, v, _dir) = fixture().await;
    let keys = &kf.keys;
    let backup_key = SealingKey::generate();
    let names = |found: Vec<(String, i64)>| found.into_iter().map(|(n, _)| n).collect::<Vec<_>>();

    keys.create(&v, "made-here", ec(None, None)).await.unwrap();
    assert!(
        names(keys.without_recent_backup(&v, 30).await.unwrap()).is_empty(),
        "not due yet"
    );
    clock.advance(31 * DAY);
    assert_eq!(
        names(keys.without_recent_backup(&v, 30).await.unwrap()),
        ["made-here"]
    );

    keys.backup(&v, "made-here", &backup_key).await.unwrap();
    assert!(names(keys.without_recent_backup(&v, 30).await.unwrap()).is_empty());

    // A rotation in the same second as the backup is still new material.
    keys.rotate(&v, "made-here").await.unwrap();
    assert!(
        names(keys.without_recent_backup(&v, 0).await.unwrap()).contains(&"made-here".to_owned())
    );
    keys.backup(&v, "made-here", &backup_key).await.unwrap();
    assert!(names(keys.without_recent_backup(&v, 0).await.unwrap()).is_empty());
}
