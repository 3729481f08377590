//! First provisioning of a node: a tenant, a vault, and a service principal
//! that is Owner of the subscription, Key Vault Administrator on the vault and
//! a server operator. Used by `keyfort dev` on its first start and by
//! `keyfort operator init` for production nodes.

use keyfort_core::Keyfort;
use keyfort_core::authz::roles;
use keyfort_core::model::{Tags, Tenant, Vault};
use keyfort_core::vaults::NewVault;

use crate::serve::BoxError;

pub struct VaultPlan {
    pub name: String,
    pub location: String,
    pub retention_days: i64,
    pub purge_protection: bool,
    pub tags: Tags,
}

pub struct Provisioned {
    pub tenant: Tenant,
    pub vault: Vault,
    pub client_id: String,
    /// Shown once; only its Argon2 hash is stored.
    pub client_secret: String,
}

pub async fn provision(
    kf: &Keyfort,
    tenant_name: &str,
    plan: VaultPlan,
) -> Result<Provisioned, BoxError> {
    if kf.vaults.get(&plan.name).await?.is_some() {
        return Err(format!(
            "a vault named '{}' already exists in this database; it was provisioned before",
            plan.name
        )
        .into());
    }
    let (tenant, principal, client_secret) = kf.create_tenant_with_admin(tenant_name).await?;
    let vault = kf
        .vaults
        .create(NewVault {
            name: plan.name,
            tenant_id: tenant.id.clone(),
            subscription_id: tenant.subscription_id.clone(),
            resource_group: "default".into(),
            location: plan.location,
            retention_days: plan.retention_days,
            purge_protection: plan.purge_protection,
            tags: plan.tags,
        })
        .await?;
    let vault_scope = keyfort_core::authz::scope_of(&vault, None);
    kf.authz
        .assign(
            &tenant.id,
            &principal.object_id,
            roles::KEY_VAULT_ADMINISTRATOR,
            &vault_scope,
            kf.clock.now(),
        )
        .await?;
    // The first administrator also operates the server (may create tenants).
    kf.identity
        .add_operator(&tenant.id, &principal.object_id)
        .await?;
    Ok(Provisioned {
        tenant,
        vault,
        client_id: principal.app_id,
        client_secret,
    })
}
