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
    pub data_actions: Option<Vec<String>>,
    #[serde(default)]
    pub not_data_actions: Option<Vec<String>>,
}

impl RoleDefinition {
    /// True when this role grants `action`.
    pub fn allows(&self, action: &str) -> bool {
        let granted = self
            .data_actions
            .iter()
            .flatten()
            .any(|p| action_matches(p, action));
        let excluded = self
            .not_data_actions
            .iter()
            .flatten()
            .any(|p| action_matches(p, action));
        granted && !excluded
    }
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

fn covers(scope: &str, target: &str) -> bool {
    scope == "/"
        || target == scope
        || target
            .strip_prefix(scope)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn assignments_prefix(tenant_id: &str) -> String {
    format!("sys/roleassignments/{tenant_id}/")
}

impl Authorizer {
    pub fn new(barrier: Arc<Barrier>) -> Self {
        let roles =
            serde_json::from_str(BUILTIN_ROLES).expect("the built-in role list is valid JSON");
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

    /// Decides whether `caller` may perform `action` on the vault or on one
    /// object in it.
    pub async fn authorize(
        &self,
        caller: &Caller,
        vault: &Vault,
        action: &str,
        object: Option<(&str, &str)>,
    ) -> Result<Authorized> {
        let target = scope_of(vault, object);
        if caller.tenant_id == vault.tenant_id {
            for a in self.assignments(&vault.tenant_id).await?.iter() {
                if a.principal_id != caller.object_id || !covers(&a.scope, &target) {
                    continue;
                }
                if let Some(role) = self.role(&a.role_definition_id)
                    && role.allows(action)
                {
                    return Ok(Authorized {
                        assignment_id: a.id.clone(),
                        role_name: role.name.clone(),
                    });
                }
            }
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
    fn scope_coverage() {
        assert!(covers("/", "/vaults/a/secrets/x"));
        assert!(covers("/vaults/a", "/vaults/a/secrets/x"));
        assert!(covers("/vaults/a", "/vaults/a"));
        assert!(!covers("/vaults/a", "/vaults/ab"));
        assert!(!covers("/vaults/a/secrets/x", "/vaults/a"));
    }
}
