//! What the service-level tests share: a Keyfort over a fresh SQLite store,
//! a clock the test moves, and one vault.

use std::sync::Arc;

use keyfort_core::Keyfort;
use keyfort_core::barrier::Barrier;
use keyfort_core::clock::ManualClock;
use keyfort_core::identity::IssuerSettings;
use keyfort_core::model::Vault;
use keyfort_core::vaults::NewVault;
use keyfort_crypto::SealingKey;
use keyfort_store::sqlite::SqliteStore;

pub async fn fixture() -> (Keyfort, Arc<ManualClock>, Vault, tempfile::TempDir) {
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
    let vault = kf
        .vaults
        .create(NewVault {
            name: "keys-a".into(),
            tenant_id: "t1".into(),
            subscription_id: "sub-t1".into(),
            resource_group: "rg".into(),
            location: "local".into(),
            retention_days: 7,
            purge_protection: false,
            tags: Default::default(),
        })
        .await
        .unwrap();
    (kf, clock, vault, dir)
}
