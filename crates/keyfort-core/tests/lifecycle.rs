//! The secrets lifecycle driven through the services, with a clock the test moves.

use std::sync::Arc;

use keyfort_core::barrier::Barrier;
use keyfort_core::clock::{DAY, ManualClock};
use keyfort_core::identity::IssuerSettings;
use keyfort_core::model::Vault;
use keyfort_core::secrets::{AttributeChanges, SetSecret, UpdateSecret};
use keyfort_core::vaults::NewVault;
use keyfort_core::{Error, Keyfort};
use keyfort_crypto::SealingKey;
use keyfort_store::sqlite::SqliteStore;
use zeroize::Zeroizing;

struct Fixture {
    kf: Keyfort,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("db")).unwrap());
    let clock = Arc::new(ManualClock::default());
    let barrier = Arc::new(Barrier::new(store, SealingKey::generate()));
    let issuer = IssuerSettings {
        base: "https://localhost:1".into(),
        audiences: vec!["https://vault.localhost:1".into()],
        token_lifetime: 3600,
    };
    let kf = Keyfort::open(barrier, clock.clone(), issuer).await.unwrap();
    Fixture {
        kf,
        clock,
        _dir: dir,
    }
}

async fn vault(kf: &Keyfort, tenant: &str, name: &str, purge_protection: bool) -> Vault {
    kf.vaults
        .create(NewVault {
            name: name.into(),
            tenant_id: tenant.into(),
            subscription_id: format!("sub-{tenant}"),
            resource_group: "rg".into(),
            location: "local".into(),
            retention_days: 7,
            purge_protection,
            tags: Default::default(),
        })
        .await
        .unwrap()
}

fn set(value: &str) -> SetSecret {
    SetSecret {
        value: Zeroizing::new(value.into()),
        content_type: None,
        tags: None,
        attributes: AttributeChanges::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_attributes_and_soft_delete() {
    let f = fixture().await;
    let v = vault(&f.kf, "t1", "vault-a", false).await;
    let s = &f.kf.secrets;

    let v1 = s.set(&v, "Db-Password", set("one")).await.unwrap();
    let v2 = s.set(&v, "db-password", set("two")).await.unwrap();
    assert_eq!(
        v2.name, "Db-Password",
        "names are case-insensitive and keep their first spelling"
    );
    assert_eq!(
        &**s.get(&v, "DB-PASSWORD", None).await.unwrap().value.unwrap(),
        "two"
    );
    assert_eq!(
        &**s.get(&v, "db-password", Some(&v1.meta.version))
            .await
            .unwrap()
            .value
            .unwrap(),
        "one"
    );
    assert_eq!(
        s.list_versions(&v, "db-password", None, 25)
            .await
            .unwrap()
            .items
            .len(),
        2
    );

    // Disabled and not-yet-valid versions keep their value to themselves.
    let disable = UpdateSecret {
        attributes: AttributeChanges {
            enabled: Some(false),
            ..Default::default()
        },
        ..Default::default()
    };
    s.update(&v, "db-password", Some(&v1.meta.version), disable)
        .await
        .unwrap();
    let err = s
        .get(&v, "db-password", Some(&v1.meta.version))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Forbidden {
            inner: Some("SecretDisabled"),
            ..
        }
    ));
    let later = f.clock.now_plus(3600);
    let mut future = set("three");
    future.attributes.nbf = Some(Some(later));
    s.set(&v, "db-password", future).await.unwrap();
    // As in Azure, nbf and exp are advisory for secrets: a secret staged
    // ahead of a rotation (or past its expiry) can still be read.
    assert_eq!(
        &**s.get(&v, "db-password", None).await.unwrap().value.unwrap(),
        "three"
    );
    f.clock.advance(3601);
    assert_eq!(
        &**s.get(&v, "db-password", None).await.unwrap().value.unwrap(),
        "three"
    );

    // Delete: gone from the live list, name blocked, recover brings all back.
    let d = s.delete(&v, "db-password").await.unwrap();
    assert_eq!(
        d.deletion.unwrap().scheduled_purge_date - d.deletion.unwrap().deleted_date,
        7 * DAY
    );
    assert!(matches!(
        s.get(&v, "db-password", None).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        s.set(&v, "db-password", set("x")).await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(s.list_deleted(&v, None, 25).await.unwrap().items.len(), 1);
    s.recover(&v, "db-password").await.unwrap();
    assert_eq!(
        s.list_versions(&v, "db-password", None, 25)
            .await
            .unwrap()
            .items
            .len(),
        3
    );

    // Without purge protection, purge works at once and removes every version.
    s.delete(&v, "db-password").await.unwrap();
    s.purge(&v, "db-password").await.unwrap();
    assert!(s.list_deleted(&v, None, 25).await.unwrap().items.is_empty());
    let fresh = s.set(&v, "db-password", set("new")).await.unwrap();
    assert_eq!(
        s.list_versions(&v, "db-password", None, 25)
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert_eq!(fresh.name, "db-password");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_protection_and_the_sweeper() {
    let f = fixture().await;
    let v = vault(&f.kf, "t1", "protected", true).await;
    let s = &f.kf.secrets;
    s.set(&v, "a", set("1")).await.unwrap();
    s.set(&v, "b", set("2")).await.unwrap();
    s.delete(&v, "a").await.unwrap();
    s.delete(&v, "b").await.unwrap();
    assert!(matches!(
        s.purge(&v, "a").await,
        Err(Error::Forbidden { .. })
    ));
    assert_eq!(s.sweep(&v).await.unwrap(), 0, "nothing is due yet");
    f.clock.advance(7 * DAY);
    s.purge(&v, "a").await.unwrap();
    assert_eq!(s.sweep(&v).await.unwrap(), 1);
    assert!(s.list_deleted(&v, None, 25).await.unwrap().items.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_pages() {
    let f = fixture().await;
    let v = vault(&f.kf, "t1", "pages", false).await;
    for i in 0..7 {
        f.kf.secrets
            .set(&v, &format!("s{i}"), set("x"))
            .await
            .unwrap();
    }
    let p1 = f.kf.secrets.list(&v, None, 3).await.unwrap();
    assert_eq!(p1.items.len(), 3);
    let p2 = f.kf.secrets.list(&v, p1.next.as_deref(), 3).await.unwrap();
    let p3 = f.kf.secrets.list(&v, p2.next.as_deref(), 3).await.unwrap();
    assert_eq!(p3.items.len(), 1);
    assert!(p3.next.is_none());
    let names: Vec<String> = [p1.items, p2.items, p3.items]
        .into_iter()
        .flatten()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, vec!["s0", "s1", "s2", "s3", "s4", "s5", "s6"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_rules() {
    let f = fixture().await;
    let t1 = f.kf.identity.create_tenant("one").await.unwrap();
    let t2 = f.kf.identity.create_tenant("two").await.unwrap();
    let a = vault(&f.kf, &t1.id, "src", false).await;
    let b = vault(&f.kf, &t1.id, "dst", false).await;
    let other = vault(&f.kf, &t2.id, "other", false).await;
    let k1 = f.kf.identity.backup_key(&t1.id).await.unwrap();
    let k2 = f.kf.identity.backup_key(&t2.id).await.unwrap();
    let s = &f.kf.secrets;
    s.set(&a, "api", set("v1")).await.unwrap();
    s.set(&a, "api", set("v2")).await.unwrap();
    let blob = s.backup(&a, "api", &k1).await.unwrap();
    assert!(!blob.windows(2).any(|w| w == b"v2"), "blob is encrypted");

    let restored = s.restore(&b, &blob, &k1).await.unwrap();
    assert_eq!(restored.name, "api");
    assert_eq!(
        &**s.get(&b, "api", None).await.unwrap().value.unwrap(),
        "v2"
    );
    assert_eq!(
        s.list_versions(&b, "api", None, 25)
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    // The same name again: conflict. Another tenant: forbidden. Tampered: bad.
    assert!(matches!(
        s.restore(&b, &blob, &k1).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        s.restore(&other, &blob, &k2).await,
        Err(Error::Forbidden { .. })
    ));
    let mut bad = blob.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    s.delete(&b, "api").await.unwrap();
    s.purge(&b, "api").await.unwrap();
    assert!(matches!(
        s.restore(&b, &bad, &k1).await,
        Err(Error::BadParameter(_))
    ));
    assert!(matches!(
        s.restore(&b, b"garbage", &k1).await,
        Err(Error::BadParameter(_))
    ));
}

trait NowPlus {
    fn now_plus(&self, s: i64) -> i64;
}
impl NowPlus for ManualClock {
    fn now_plus(&self, s: i64) -> i64 {
        use keyfort_core::clock::Clock;
        self.now() + s
    }
}
