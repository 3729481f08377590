//! Vaults: the security boundary. Each has its own key-encryption key, its
//! own soft-delete retention and purge protection, and is soft-deleted,
//! recovered and purged whole. Vault names are unique on the server,
//! including soft-deleted ones (their names stay reserved until purged).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use keyfort_store::Batch;

use crate::barrier::{Barrier, Stored};
use crate::clock::{Clock, DAY};
use crate::model::{Deletion, Tags, Vault};
use crate::{Error, Result, names};

pub const DEFAULT_RETENTION_DAYS: i64 = 90;

pub struct Vaults {
    barrier: Arc<Barrier>,
    clock: Arc<dyn Clock>,
    /// Live vaults by folded name.
    cache: RwLock<HashMap<String, Arc<Vault>>>,
}

/// What a caller chooses when creating a vault.
pub struct NewVault {
    pub name: String,
    pub tenant_id: String,
    pub subscription_id: String,
    pub resource_group: String,
    pub location: String,
    pub retention_days: i64,
    pub purge_protection: bool,
    pub tags: Tags,
}

/// Requested changes to a vault's settings; `None` leaves a setting alone.
/// The checks here are the Key Vault best practices Keyfort enforces.
#[derive(Default, Debug, Clone)]
pub struct VaultChanges {
    pub tags: Option<Tags>,
    pub retention_days: Option<i64>,
    pub purge_protection: Option<bool>,
    pub enable_soft_delete: Option<bool>,
    pub enable_rbac_authorization: Option<bool>,
    /// How many legacy access policies the request carries.
    pub access_policies: usize,
    pub public_network_access: Option<String>,
    pub network_acls: Option<serde_json::Value>,
}

impl VaultChanges {
    pub fn check(&self) -> Result<()> {
        if self.enable_rbac_authorization == Some(false) || self.access_policies > 0 {
            return Err(Error::bad(
                "Keyfort does not offer the legacy access-policy model: set enableRbacAuthorization to true (or leave it out) and grant access with role assignments (Azure RBAC), e.g. 'Key Vault Secrets User' at the vault or secret scope.",
            ));
        }
        if self.enable_soft_delete == Some(false) {
            return Err(Error::bad(
                "Soft delete is always on and cannot be turned off (enableSoftDelete must be true or left out).",
            ));
        }
        if let Some(days) = self.retention_days
            && !(7..=90).contains(&days)
        {
            return Err(Error::bad(format!(
                "softDeleteRetentionInDays is {days}; it must be between 7 and 90 days."
            )));
        }
        if let Some(acls) = &self.network_acls {
            crate::network::parse_acls(acls)?;
        }
        if let Some(p) = &self.public_network_access
            && p != "Enabled"
            && p != "Disabled"
        {
            return Err(Error::bad(
                "publicNetworkAccess must be 'Enabled' or 'Disabled'.",
            ));
        }
        Ok(())
    }
}

fn vault_key(name: &str) -> String {
    format!("sys/vaults/{}", names::fold(name))
}

fn name_taken(name: &str, deleted: bool) -> Error {
    if deleted {
        Error::Conflict(format!(
            "A soft-deleted vault named '{name}' exists, so the name cannot be reused until it is purged; recover it with createMode 'recover', or purge it."
        ))
    } else {
        Error::Conflict(format!(
            "A vault named '{name}' already exists on this server; vault names are unique."
        ))
    }
}

fn vault_not_found(name: &str) -> Error {
    Error::not_found(
        "ResourceNotFound",
        format!("The vault '{}' was not found.", names::printable(name)),
    )
}

impl Vaults {
    pub fn new(barrier: Arc<Barrier>, clock: Arc<dyn Clock>) -> Self {
        Vaults {
            barrier,
            clock,
            cache: RwLock::new(HashMap::new()),
        }
    }

    fn forget(&self, name: &str) {
        self.cache
            .write()
            .expect("vault cache lock")
            .remove(&names::fold(name));
    }

    pub async fn create(&self, new: NewVault) -> Result<Vault> {
        names::check_vault_name(&new.name)?;
        VaultChanges {
            retention_days: Some(new.retention_days),
            ..Default::default()
        }
        .check()?;
        if let Some(existing) = self.lookup(&new.name).await? {
            return Err(name_taken(
                &existing.value.name,
                existing.value.deletion.is_some(),
            ));
        }
        let now = self.clock.now();
        let vault = Vault {
            id: uuid::Uuid::new_v4().simple().to_string(),
            name: new.name,
            tenant_id: new.tenant_id,
            subscription_id: new.subscription_id,
            resource_group: new.resource_group,
            location: new.location,
            retention_days: new.retention_days,
            purge_protection: new.purge_protection,
            tags: new.tags,
            created: now,
            updated: now,
            public_network_access: "Enabled".into(),
            network_acls: None,
            deletion: None,
        };
        let key = vault_key(&vault.name);
        let sealed = self.barrier.seal_json(&key, &vault).await?;
        let batch = self.barrier.new_vault_kek(
            &vault.id,
            Batch::new().expect_absent(key.clone()).put(key, sealed),
        );
        self.barrier.commit(batch).await.map_err(|e| match e {
            Error::Conflict(_) => name_taken(&vault.name, false),
            other => other,
        })?;
        self.forget(&vault.name);
        Ok(vault)
    }

    /// The stored record of a vault, live or soft-deleted.
    pub async fn lookup(&self, name: &str) -> Result<Option<Stored<Vault>>> {
        self.barrier.get::<Vault>(&vault_key(name)).await
    }

    /// The live vault with this name (names are case-insensitive).
    pub async fn get(&self, name: &str) -> Result<Option<Arc<Vault>>> {
        let folded = names::fold(name);
        if let Some(v) = self.cache.read().expect("vault cache lock").get(&folded) {
            return Ok(Some(v.clone()));
        }
        let Some(stored) = self.lookup(name).await? else {
            return Ok(None);
        };
        if stored.value.deletion.is_some() {
            return Ok(None);
        }
        let vault = Arc::new(stored.value);
        self.cache
            .write()
            .expect("vault cache lock")
            .insert(folded, vault.clone());
        Ok(Some(vault))
    }

    /// Every vault record, live and soft-deleted.
    pub async fn list_all(&self) -> Result<Vec<Vault>> {
        Ok(self
            .barrier
            .list_all::<Vault>("sys/vaults/")
            .await?
            .into_iter()
            .map(|s| s.value)
            .collect())
    }

    /// Live vaults of every tenant.
    pub async fn list(&self) -> Result<Vec<Vault>> {
        Ok(self
            .list_all()
            .await?
            .into_iter()
            .filter(|v| v.deletion.is_none())
            .collect())
    }

    async fn replace(&self, stored: Stored<Vault>, vault: &Vault) -> Result<()> {
        let result = self.barrier.replace(stored, vault).await;
        self.forget(&vault.name);
        result
    }

    async fn live(&self, tenant_id: &str, name: &str) -> Result<Stored<Vault>> {
        match self.lookup(name).await? {
            Some(s) if s.value.tenant_id == tenant_id && s.value.deletion.is_none() => Ok(s),
            _ => Err(vault_not_found(name)),
        }
    }

    /// Applies `changes` to a live vault of `tenant_id`. Purge protection, once
    /// on, stays on; the retention is fixed at creation, as in Azure.
    pub async fn update(
        &self,
        tenant_id: &str,
        name: &str,
        changes: VaultChanges,
    ) -> Result<Vault> {
        changes.check()?;
        let stored = self.live(tenant_id, name).await?;
        let mut v = stored.value.clone();
        if changes.purge_protection == Some(false) && v.purge_protection {
            return Err(Error::bad(
                "Purge protection cannot be turned off once it is on (enablePurgeProtection cannot change from true to false).",
            ));
        }
        if let Some(days) = changes.retention_days
            && days != v.retention_days
        {
            return Err(Error::bad(format!(
                "softDeleteRetentionInDays is fixed when a vault is created ({} days here) and cannot be changed.",
                v.retention_days
            )));
        }
        if changes.purge_protection == Some(true) {
            v.purge_protection = true;
        }
        if let Some(tags) = changes.tags {
            v.tags = tags;
        }
        if let Some(p) = changes.public_network_access {
            v.public_network_access = p;
        }
        if let Some(acls) = changes.network_acls {
            v.network_acls = Some(acls);
        }
        v.updated = self.clock.now();
        self.replace(stored, &v).await?;
        Ok(v)
    }

    /// Soft-deletes a vault with everything in it.
    pub async fn delete(&self, tenant_id: &str, name: &str) -> Result<Vault> {
        let stored = self.live(tenant_id, name).await?;
        let mut v = stored.value.clone();
        let now = self.clock.now();
        v.deletion = Some(Deletion {
            deleted_date: now,
            scheduled_purge_date: now + v.retention_days * DAY,
        });
        self.replace(stored, &v).await?;
        Ok(v)
    }

    /// A soft-deleted vault of `tenant_id`.
    pub async fn get_deleted(&self, tenant_id: &str, name: &str) -> Result<Vault> {
        match self.lookup(name).await? {
            Some(s) if s.value.tenant_id == tenant_id && s.value.deletion.is_some() => Ok(s.value),
            _ => Err(Error::not_found(
                "ResourceNotFound",
                format!(
                    "No soft-deleted vault named '{}' exists in this subscription.",
                    names::printable(name)
                ),
            )),
        }
    }

    /// Brings a soft-deleted vault back whole: its key, objects and role
    /// assignments were kept. Only into the resource group it was deleted
    /// from: the caller was authorized against that group, and a grant on
    /// another group says nothing about this vault.
    pub async fn recover(
        &self,
        tenant_id: &str,
        resource_group: &str,
        name: &str,
    ) -> Result<Vault> {
        let deleted = self.get_deleted(tenant_id, name).await?;
        if !deleted.resource_group.eq_ignore_ascii_case(resource_group) {
            return Err(Error::bad(format!(
                "The soft-deleted vault '{}' belongs to resource group '{}'; recover it there.",
                deleted.name, deleted.resource_group
            )));
        }
        let stored = self
            .lookup(name)
            .await?
            .ok_or_else(|| vault_not_found(name))?;
        let mut v = stored.value.clone();
        v.deletion = None;
        v.updated = self.clock.now();
        self.replace(stored, &v).await?;
        Ok(v)
    }

    /// Checks that a soft-deleted vault may be purged now.
    pub fn check_purge_allowed(&self, v: &Vault) -> Result<()> {
        let due = v.deletion.map(|d| d.scheduled_purge_date).unwrap_or(0);
        if v.purge_protection && self.clock.now() < due {
            return Err(Error::forbidden(format!(
                "Vault '{}' has purge protection on: it can only be recovered until its scheduled purge date ({}), after which it is purged automatically.",
                v.name,
                crate::clock::rfc3339(due)
            )));
        }
        Ok(())
    }

    /// Removes a soft-deleted vault for good: every record under it, its
    /// key-encryption key, and its record.
    pub async fn purge_record(&self, v: &Vault, extra: Batch) -> Result<()> {
        let stored = self
            .lookup(&v.name)
            .await?
            .ok_or_else(|| vault_not_found(&v.name))?;
        let mut batch = extra
            .expect_equals(stored.key.clone(), stored.raw)
            .delete(stored.key.clone());
        for key in self.barrier.list_keys(&format!("v/{}/", v.id)).await? {
            batch = batch.delete(key);
        }
        batch = batch.delete(format!("sys/kek/{}", v.id));
        self.barrier.commit(batch).await?;
        self.barrier.drop_vault_kek(&v.id);
        self.forget(&v.name);
        Ok(())
    }

    /// Whether a name can be used for a new vault.
    pub async fn name_available(&self, name: &str) -> Result<(bool, Option<&'static str>, String)> {
        if let Err(e) = names::check_vault_name(name) {
            return Ok((false, Some("AccountNameInvalid"), e.to_string()));
        }
        Ok(match self.lookup(name).await? {
            None => (true, None, String::new()),
            Some(s) => (
                false,
                Some("AlreadyExists"),
                name_taken(&s.value.name, s.value.deletion.is_some()).to_string(),
            ),
        })
    }
}
