//! Vaults: the security boundary. Each has its own key-encryption key, its
//! own soft-delete retention and purge-protection setting. (The full
//! management API is built on these functions.)

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use keyfort_store::Batch;

use crate::barrier::Barrier;
use crate::clock::Clock;
use crate::model::{Tags, Vault};
use crate::{Error, Result, names};

pub struct Vaults {
    barrier: Arc<Barrier>,
    clock: Arc<dyn Clock>,
    cache: RwLock<HashMap<String, Arc<Vault>>>,
}

/// What a caller chooses when creating a vault.
pub struct NewVault {
    pub name: String,
    pub tenant_id: String,
    pub resource_group: String,
    pub location: String,
    pub retention_days: i64,
    pub purge_protection: bool,
    pub tags: Tags,
}

fn vault_key(name: &str) -> String {
    format!("sys/vaults/{}", names::fold(name))
}

impl Vaults {
    pub fn new(barrier: Arc<Barrier>, clock: Arc<dyn Clock>) -> Self {
        Vaults {
            barrier,
            clock,
            cache: RwLock::new(HashMap::new()),
        }
    }

    pub async fn create(&self, new: NewVault) -> Result<Vault> {
        names::check_vault_name(&new.name)?;
        if !(7..=90).contains(&new.retention_days) {
            return Err(Error::bad(format!(
                "softDeleteRetentionInDays is {}; it must be between 7 and 90 days.",
                new.retention_days
            )));
        }
        let vault = Vault {
            id: uuid::Uuid::new_v4().simple().to_string(),
            name: new.name,
            tenant_id: new.tenant_id,
            resource_group: new.resource_group,
            location: new.location,
            retention_days: new.retention_days,
            purge_protection: new.purge_protection,
            tags: new.tags,
            created: self.clock.now(),
        };
        let key = vault_key(&vault.name);
        let sealed = self.barrier.seal_json(&key, &vault).await?;
        let batch = self.barrier.new_vault_kek(
            &vault.id,
            Batch::new().expect_absent(key.clone()).put(key, sealed),
        );
        self.barrier.commit(batch).await.map_err(|e| match e {
            Error::Conflict(_) => Error::Conflict(format!(
                "A vault named '{}' already exists on this server.",
                vault.name
            )),
            other => other,
        })?;
        Ok(vault)
    }

    /// The vault with this name, if any (names are case-insensitive).
    pub async fn get(&self, name: &str) -> Result<Option<Arc<Vault>>> {
        let folded = names::fold(name);
        if let Some(v) = self.cache.read().expect("vault cache lock").get(&folded) {
            return Ok(Some(v.clone()));
        }
        let Some(stored) = self.barrier.get::<Vault>(&vault_key(name)).await? else {
            return Ok(None);
        };
        let vault = Arc::new(stored.value);
        self.cache
            .write()
            .expect("vault cache lock")
            .insert(folded, vault.clone());
        Ok(Some(vault))
    }

    pub async fn list(&self) -> Result<Vec<Vault>> {
        Ok(self
            .barrier
            .list_all::<Vault>("sys/vaults/")
            .await?
            .into_iter()
            .map(|s| s.value)
            .collect())
    }
}
