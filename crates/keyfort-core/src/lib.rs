//! Keyfort's domain, independent of HTTP: vaults and their key hierarchy,
//! secrets and their lifecycle, identity and tokens, authorization, audit
//! records and backups. The HTTP layer maps requests onto [`Keyfort`] and
//! renders what it returns; a unit test can drive all of it without a socket.

pub mod advisor;
pub mod alerts;
pub mod audit;
pub mod authz;
pub mod backup;
pub mod barrier;
pub mod certificates;
pub mod clock;
pub mod error;
pub mod events;
pub mod identity;
pub mod keys;
pub mod model;
pub mod names;
pub mod network;
pub mod objects;
pub mod pim;
pub mod secrets;
pub mod vaults;

use std::sync::Arc;

pub use error::{Error, Result};

use crate::authz::Authorizer;
use crate::barrier::Barrier;
use crate::certificates::Certificates;
use crate::clock::Clock;
use crate::identity::{Identity, IssuerSettings};
use crate::keys::Keys;
use crate::secrets::Secrets;
use crate::vaults::Vaults;

/// Everything a running node holds: one handle per service over one store.
pub struct Keyfort {
    pub clock: Arc<dyn Clock>,
    pub barrier: Arc<Barrier>,
    pub vaults: Vaults,
    pub identity: Identity,
    pub authz: Authorizer,
    pub secrets: Secrets,
    pub keys: Keys,
    pub certificates: Certificates,
    pub alerts: alerts::Alerts,
    /// How long before `exp` a near-expiry event fires (seconds).
    pub near_expiry_secs: std::sync::atomic::AtomicI64,
}

impl Keyfort {
    /// Opens the services over an unsealed barrier.
    pub async fn open(
        barrier: Arc<Barrier>,
        clock: Arc<dyn Clock>,
        issuer: IssuerSettings,
    ) -> Result<Self> {
        let vaults = Vaults::new(barrier.clone(), clock.clone());
        let identity = Identity::open(barrier.clone(), clock.clone(), issuer).await?;
        let authz = Authorizer::new(barrier.clone(), clock.clone());
        let secrets = Secrets::new(barrier.clone(), clock.clone());
        let keys = Keys::new(barrier.clone(), clock.clone());
        let certificates = Certificates::new(barrier.clone(), clock.clone());
        let barrier_for_alerts = barrier.clone();
        Ok(Keyfort {
            clock,
            barrier,
            vaults,
            identity,
            authz,
            secrets,
            keys,
            certificates,
            alerts: alerts::Alerts::new(barrier_for_alerts),
            near_expiry_secs: std::sync::atomic::AtomicI64::new(events::NEAR_EXPIRY_SECS),
        })
    }

    /// Creates a tenant and its first administrator: a service principal
    /// that is Owner of the tenant's subscription. Returns the principal's
    /// client secret (shown once).
    pub async fn create_tenant_with_admin(
        &self,
        display_name: &str,
    ) -> Result<(model::Tenant, model::Principal, String)> {
        let tenant = self.identity.create_tenant(display_name).await?;
        let (principal, secret) = self
            .identity
            .create_service_principal(&tenant.id, "tenant-admin")
            .await?;
        let subscription = authz::subscription_scope(&tenant.subscription_id, None);
        self.authz
            .assign(
                &tenant.id,
                &principal.object_id,
                authz::roles::OWNER,
                &subscription,
                self.clock.now(),
            )
            .await?;
        Ok((tenant, principal, secret))
    }

    /// Vaults of a tenant, live and soft-deleted.
    pub async fn tenant_vaults(&self, tenant_id: &str) -> Result<Vec<model::Vault>> {
        Ok(self
            .vaults
            .list_all()
            .await?
            .into_iter()
            .filter(|v| v.tenant_id == tenant_id)
            .collect())
    }

    /// Deletes a tenant that holds no vaults, with its principals, users and roles.
    pub async fn delete_tenant(&self, tenant_id: &str) -> Result<model::Tenant> {
        let count = self.tenant_vaults(tenant_id).await?.len();
        let tenant = self.identity.delete_tenant(tenant_id, count).await?;
        self.authz.forget_tenant(tenant_id);
        Ok(tenant)
    }

    /// Keeps the audit chain's head (after a checkpoint) in the store, so a
    /// truncated log can be told from a complete one.
    pub async fn save_audit_head(&self, sequence: u64, hash: String) -> Result<()> {
        // The head only moves forward: a log cut short and resumed cannot
        // pull it back and hide the cut.
        let key = "sys/audit/head";
        for _ in 0..5 {
            let current = self.barrier.get::<(u64, String)>(key).await?;
            let batch = match &current {
                Some(c) if c.value.0 >= sequence => return Ok(()),
                Some(c) => keyfort_store::Batch::new().expect_equals(key, c.raw.clone()),
                None => keyfort_store::Batch::new().expect_absent(key),
            };
            let sealed = self
                .barrier
                .seal_json(key, &(sequence, hash.clone()))
                .await?;
            match self.barrier.commit(batch.put(key, sealed)).await {
                Err(Error::Conflict(_)) => continue,
                other => return other,
            }
        }
        Ok(())
    }

    pub async fn audit_head(&self) -> Result<Option<(u64, String)>> {
        Ok(self
            .barrier
            .get::<(u64, String)>("sys/audit/head")
            .await?
            .map(|s| s.value))
    }

    /// Purges a soft-deleted vault of `tenant_id`, refused under purge
    /// protection until its scheduled purge date.
    pub async fn purge_vault(&self, tenant_id: &str, name: &str) -> Result<()> {
        let vault = self.vaults.get_deleted(tenant_id, name).await?;
        self.vaults.check_purge_allowed(&vault)?;
        self.purge_vault_now(&vault).await
    }

    /// Removes a vault, its objects, its key and its role assignments.
    async fn purge_vault_now(&self, vault: &model::Vault) -> Result<()> {
        let mut extra = keyfort_store::Batch::new();
        for key in self.authz.assignment_keys_in_vault(vault).await? {
            extra = extra.delete(key);
        }
        let result = self.vaults.purge_record(vault, extra).await;
        self.keys.forget_material();
        self.certificates.forget_material();
        self.authz.forget_tenant(&vault.tenant_id);
        result
    }

    /// The purge sweeper's pass: deleted vaults, secrets, keys and certificates whose
    /// scheduled purge date has passed are removed. Returns how many.
    pub async fn sweep(&self) -> Result<usize> {
        let now = self.clock.now();
        let mut purged = 0;
        for vault in self.vaults.list_all().await? {
            match vault.deletion {
                Some(d) if d.scheduled_purge_date <= now => {
                    self.purge_vault_now(&vault).await?;
                    purged += 1;
                }
                Some(_) => {}
                None => {
                    purged += self.secrets.sweep(&vault).await?;
                    purged += self.keys.sweep(&vault).await?;
                    purged += self.certificates.sweep(&vault).await?;
                }
            }
        }
        Ok(purged)
    }
}
