//! Authorization: Azure RBAC with Key Vault's data actions. Deny by default;
//! a request is allowed only when a role assignment of the caller, at a scope
//! covering the target, has a role whose `dataActions` match the action and
//! whose `notDataActions` do not. The proof of a decision is [`Authorized`],
//! which only this module can construct.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use keyfort_store::Batch;
use serde::Deserialize;

use crate::barrier::Barrier;
use crate::identity::Caller;
use crate::model::{RoleAssignment, Vault};
use crate::{Error, Result};

static BUILTIN_ROLES: &str = include_str!("../data/builtin-roles.json");

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleDefinition {
    pub name: String,
    pub id: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub actions: Option<Vec<String>>,
    #[serde(default)]
    pub not_actions: Option<Vec<String>>,
    #[serde(default)]
    pub data_actions: Option<Vec<String>>,
    #[serde(default)]
    pub not_data_actions: Option<Vec<String>>,
}

/// Which permission lists an action is checked against.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Plane {
    /// `actions`/`notActions`: the management plane (vaults, role assignments).
    Control,
    /// `dataActions`/`notDataActions`: what is inside a vault.
    Data,
}

fn grants(granted: &Option<Vec<String>>, excluded: &Option<Vec<String>>, action: &str) -> bool {
    granted.iter().flatten().any(|p| action_matches(p, action))
        && !excluded.iter().flatten().any(|p| action_matches(p, action))
}

impl RoleDefinition {
    /// True when this role grants the data action `action`.
    pub fn allows(&self, action: &str) -> bool {
        grants(&self.data_actions, &self.not_data_actions, action)
    }

    /// True when this role grants `action` on `plane`.
    pub fn allows_on(&self, plane: Plane, action: &str) -> bool {
        match plane {
            Plane::Data => self.allows(action),
            Plane::Control => grants(&self.actions, &self.not_actions, action),
        }
    }
}

/// Azure's general management roles (not in the Key Vault role list).
fn general_roles() -> Vec<RoleDefinition> {
    let role = |name: &str, id: &str, description: &str, actions: &[&str], not_actions: &[&str]| {
        RoleDefinition {
            name: name.into(),
            id: id.into(),
            description: description.into(),
            actions: Some(actions.iter().map(|s| s.to_string()).collect()),
            not_actions: Some(not_actions.iter().map(|s| s.to_string()).collect()),
            data_actions: Some(vec![]),
            not_data_actions: Some(vec![]),
        }
    };
    vec![
        role(
            "Owner",
            "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
            "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
            &["*"],
            &[],
        ),
        role(
            "Contributor",
            "b24988ac-6180-42a0-ab88-20f7382dd24c",
            "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC.",
            &["*"],
            &[
                "Microsoft.Authorization/*/Delete",
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/elevateAccess/Action",
            ],
        ),
        role(
            "User Access Administrator",
            "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
            "Lets you manage user access to Azure resources.",
            &["*/read", "Microsoft.Authorization/*"],
            &[],
        ),
        role(
            "Reader",
            "acdd72a7-3385-48ef-bd42-f606fba81ae7",
            "View all resources, but does not allow you to make any changes.",
            &["*/read"],
            &[],
        ),
    ]
}

/// Azure's action pattern match: case-insensitive, `*` matches any run of
/// characters (including `/`).
pub fn action_matches(pattern: &str, action: &str) -> bool {
    fn go(p: &[u8], a: &[u8]) -> bool {
        match p.split_first() {
            None => a.is_empty(),
            Some((b'*', rest)) => (0..=a.len()).any(|i| go(rest, &a[i..])),
            Some((c, rest)) => a
                .split_first()
                .is_some_and(|(d, arest)| c.eq_ignore_ascii_case(d) && go(rest, arest)),
        }
    }
    go(pattern.as_bytes(), action.as_bytes())
}

/// Proof that an operation was authorized, and by which assignment. Only
/// this crate can construct one.
#[derive(Debug)]
#[non_exhaustive]
pub struct Authorized {
    pub assignment_id: String,
    pub role_name: String,
}

pub struct Authorizer {
    barrier: Arc<Barrier>,
    roles: Vec<RoleDefinition>,
    cache: RwLock<HashMap<String, Arc<Vec<RoleAssignment>>>>,
}

/// The scope string of a vault, or of one object in it.
pub fn scope_of(vault: &Vault, object: Option<(&str, &str)>) -> String {
    match object {
        None => format!("/vaults/{}", vault.id),
        Some((kind, name)) => format!("/vaults/{}/{kind}/{}", vault.id, crate::names::fold(name)),
    }
}

/// The scope of a tenant's subscription, or of a resource group in it.
pub fn subscription_scope(subscription_id: &str, resource_group: Option<&str>) -> String {
    match resource_group {
        None => format!("/subscriptions/{}", subscription_id.to_ascii_lowercase()),
        Some(rg) => format!(
            "/subscriptions/{}/resourceGroups/{}",
            subscription_id.to_ascii_lowercase(),
            rg.to_ascii_lowercase()
        ),
    }
}

/// Every scope an assignment may sit at to cover a target, outermost first:
/// the tenant (`/`), its subscription, the resource group, the vault, the object.
pub fn scope_chain(
    subscription_id: &str,
    resource_group: Option<&str>,
    vault: Option<(&Vault, Option<(&str, &str)>)>,
) -> Vec<String> {
    let mut chain = vec!["/".to_string(), subscription_scope(subscription_id, None)];
    if let Some(rg) = resource_group {
        chain.push(subscription_scope(subscription_id, Some(rg)));
    }
    if let Some((v, object)) = vault {
        chain.push(scope_of(v, None));
        if object.is_some() {
            chain.push(scope_of(v, object));
        }
    }
    chain
}

fn assignments_prefix(tenant_id: &str) -> String {
    format!("sys/roleassignments/{tenant_id}/")
}

impl Authorizer {
    pub fn new(barrier: Arc<Barrier>) -> Self {
        let mut roles: Vec<RoleDefinition> =
            serde_json::from_str(BUILTIN_ROLES).expect("the built-in role list is valid JSON");
        roles.extend(general_roles());
        Authorizer {
            barrier,
            roles,
            cache: RwLock::new(HashMap::new()),
        }
    }

    pub fn roles(&self) -> &[RoleDefinition] {
        &self.roles
    }

    pub fn role_by_name(&self, name: &str) -> Option<&RoleDefinition> {
        self.roles
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(name))
    }

    fn role(&self, id: &str) -> Option<&RoleDefinition> {
        self.roles.iter().find(|r| r.id.eq_ignore_ascii_case(id))
    }

    /// Stores an assignment of `role_definition_id` to a principal at `scope`.
    pub async fn assign(
        &self,
        tenant_id: &str,
        principal_id: &str,
        role_definition_id: &str,
        scope: &str,
        now: i64,
    ) -> Result<RoleAssignment> {
        if self.role(role_definition_id).is_none() {
            return Err(Error::bad(format!(
                "Role definition {role_definition_id} does not exist."
            )));
        }
        let assignment = RoleAssignment {
            id: uuid::Uuid::new_v4().to_string(),
            tenant_id: tenant_id.to_owned(),
            principal_id: principal_id.to_owned(),
            role_definition_id: role_definition_id.to_owned(),
            scope: scope.to_owned(),
            created: now,
        };
        let key = format!("{}{}", assignments_prefix(tenant_id), assignment.id);
        let sealed = self.barrier.seal_json(&key, &assignment).await?;
        self.barrier
            .commit(Batch::new().expect_absent(key.clone()).put(key, sealed))
            .await?;
        self.cache
            .write()
            .expect("assignment cache lock")
            .remove(tenant_id);
        Ok(assignment)
    }

    /// Storage keys of every assignment at the vault's scope or below it.
    pub async fn assignment_keys_in_vault(&self, vault: &Vault) -> Result<Vec<String>> {
        let vault_scope = scope_of(vault, None);
        Ok(self
            .barrier
            .list_all::<RoleAssignment>(&assignments_prefix(&vault.tenant_id))
            .await?
            .into_iter()
            .filter(|s| {
                s.value.scope == vault_scope
                    || s.value.scope.starts_with(&format!("{vault_scope}/"))
            })
            .map(|s| s.key)
            .collect())
    }

    /// Drops cached assignments of a tenant after a change made elsewhere.
    pub fn forget_tenant(&self, tenant_id: &str) {
        self.cache
            .write()
            .expect("assignment cache lock")
            .remove(tenant_id);
    }

    async fn assignments(&self, tenant_id: &str) -> Result<Arc<Vec<RoleAssignment>>> {
        if let Some(a) = self
            .cache
            .read()
            .expect("assignment cache lock")
            .get(tenant_id)
        {
            return Ok(a.clone());
        }
        let list: Vec<RoleAssignment> = self
            .barrier
            .list_all::<RoleAssignment>(&assignments_prefix(tenant_id))
            .await?
            .into_iter()
            .map(|s| s.value)
            .collect();
        let list = Arc::new(list);
        self.cache
            .write()
            .expect("assignment cache lock")
            .insert(tenant_id.to_owned(), list.clone());
        Ok(list)
    }

    /// Looks for an assignment of the caller, at one of the `chain` scopes of
    /// `tenant_id`, whose role grants `action` on `plane`.
    pub async fn find_grant(
        &self,
        caller: &Caller,
        tenant_id: &str,
        chain: &[String],
        plane: Plane,
        action: &str,
    ) -> Result<Option<Authorized>> {
        if caller.tenant_id != tenant_id {
            return Ok(None);
        }
        for a in self.assignments(tenant_id).await?.iter() {
            if a.principal_id != caller.object_id
                || !chain.iter().any(|s| s.eq_ignore_ascii_case(&a.scope))
            {
                continue;
            }
            if let Some(role) = self.role(&a.role_definition_id)
                && role.allows_on(plane, action)
            {
                return Ok(Some(Authorized {
                    assignment_id: a.id.clone(),
                    role_name: role.name.clone(),
                }));
            }
        }
        Ok(None)
    }

    /// Decides whether `caller` may perform the data action `action` on the
    /// vault or on one object in it.
    pub async fn authorize(
        &self,
        caller: &Caller,
        vault: &Vault,
        action: &str,
        object: Option<(&str, &str)>,
    ) -> Result<Authorized> {
        let chain = scope_chain(
            &vault.subscription_id,
            Some(&vault.resource_group),
            Some((vault, object)),
        );
        if let Some(granted) = self
            .find_grant(caller, &vault.tenant_id, &chain, Plane::Data, action)
            .await?
        {
            return Ok(granted);
        }
        Err(Error::Forbidden {
            message: format!(
                "Caller is not authorized to perform action on resource. If role assignments were changed recently, retry shortly. Caller: appid={};oid={}. Action: '{action}'. Resource: '{}'. Assignment: (not found). Ask an administrator of vault '{}' for a role that grants this action.",
                caller.app_id,
                caller.object_id,
                object
                    .map(|(k, n)| format!("{}/{k}/{n}", vault.name))
                    .unwrap_or_else(|| vault.name.clone()),
                vault.name
            ),
            inner: Some("ForbiddenByRbac"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(action_matches(
            "Microsoft.KeyVault/vaults/*",
            "Microsoft.KeyVault/vaults/secrets/getSecret/action"
        ));
        assert!(action_matches(
            "Microsoft.KeyVault/vaults/secrets/*",
            "microsoft.keyvault/vaults/secrets/setSecret/action"
        ));
        assert!(action_matches(
            "Microsoft.KeyVault/vaults/*/read",
            "Microsoft.KeyVault/vaults/keys/read"
        ));
        assert!(!action_matches(
            "Microsoft.KeyVault/vaults/*/read",
            "Microsoft.KeyVault/vaults/secrets/getSecret/action"
        ));
        assert!(!action_matches(
            "Microsoft.KeyVault/vaults/keys/*",
            "Microsoft.KeyVault/vaults/secrets/delete"
        ));
    }

    #[test]
    fn builtin_roles_grant_what_they_say() {
        let roles: Vec<RoleDefinition> = serde_json::from_str(BUILTIN_ROLES).unwrap();
        let by = |n: &str| roles.iter().find(|r| r.name == n).unwrap();
        let get = "Microsoft.KeyVault/vaults/secrets/getSecret/action";
        let set = "Microsoft.KeyVault/vaults/secrets/setSecret/action";
        assert!(by("Key Vault Administrator").allows(set));
        assert!(by("Key Vault Secrets User").allows(get));
        assert!(!by("Key Vault Secrets User").allows(set));
        assert!(!by("Key Vault Reader").allows(get));
        assert!(!by("Key Vault Crypto Officer").allows(get));
        assert!(!by("Key Vault Purge Operator").allows(get));
    }

    #[test]
    fn general_roles_on_the_control_plane() {
        let roles = general_roles();
        let by = |n: &str| roles.iter().find(|r| r.name == n).unwrap();
        assert!(by("Owner").allows_on(
            Plane::Control,
            "Microsoft.Authorization/roleAssignments/write"
        ));
        assert!(by("Contributor").allows_on(Plane::Control, "Microsoft.KeyVault/vaults/write"));
        assert!(!by("Contributor").allows_on(
            Plane::Control,
            "Microsoft.Authorization/roleAssignments/write"
        ));
        assert!(by("Reader").allows_on(Plane::Control, "Microsoft.KeyVault/vaults/read"));
        assert!(!by("Reader").allows_on(Plane::Control, "Microsoft.KeyVault/vaults/write"));
        assert!(
            !by("Owner").allows_on(
                Plane::Data,
                "Microsoft.KeyVault/vaults/secrets/getSecret/action"
            ),
            "Owner reads no secrets"
        );
    }
}
