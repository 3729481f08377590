//! First provisioning of a node: a tenant, a vault, and a service principal
//! holding Key Vault Administrator on that vault and Owner of the subscription. Used by `keyfort dev` on its
//! first start and by `keyfort operator init` for production nodes.

use keyfort_core::Keyfort;
use keyfort_core::model::{Tags, Tenant, Vault};
use keyfort_core::vaults::NewVault;

use crate::serve::BoxError;

/// Key Vault Administrator, from the built-in role list.
pub const KEY_VAULT_ADMINISTRATOR: &str = "00482a5a-887f-4fb3-b363-3b7fe8e74483";
/// Owner, Azure's general management role.
pub const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";

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
    principal_name: &str,
) -> Result<Provisioned, BoxError> {
    if kf.vaults.get(&plan.name).await?.is_some() {
        return Err(format!(
            "a vault named '{}' already exists in this database; it was provisioned before",
            plan.name
        )
        .into());
    }
    let tenant = kf.identity.create_tenant(tenant_name).await?;
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
    let (principal, client_secret) = kf
        .identity
        .create_service_principal(&tenant.id, principal_name)
        .await?;
    let now = kf.clock.now();
    let vault_scope = keyfort_core::authz::scope_of(&vault, None);
    kf.authz
        .assign(
            &tenant.id,
            &principal.object_id,
            KEY_VAULT_ADMINISTRATOR,
            &vault_scope,
            now,
        )
        .await?;
    // Owner of the subscription: may create vaults and assign roles.
    let subscription = keyfort_core::authz::subscription_scope(&tenant.subscription_id, None);
    kf.authz
        .assign(&tenant.id, &principal.object_id, OWNER, &subscription, now)
        .await?;
    Ok(Provisioned {
        tenant,
        vault,
        client_id: principal.app_id,
        client_secret,
    })
}
