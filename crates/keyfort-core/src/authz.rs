//! Authorization: Azure RBAC. Deny by default; a request is allowed only when
//! a role assignment of the caller, at a scope covering the target, has a role
//! whose `dataActions` (data plane) or `actions` (control plane) match the
//! action and whose `notDataActions`/`notActions` do not. The proof of a
//! decision is [`Authorized`], which only this crate can construct.
//!
//! Scopes, outermost first: `/` (the tenant), `/subscriptions/{sub}`,
//! `/subscriptions/{sub}/resourceGroups/{rg}`, `/vaults/{vault_id}`,
//! `/vaults/{vault_id}/{secrets|keys|certificates}/{name}`. An assignment
//! covers its scope and everything below it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use keyfort_store::Batch;
use serde::{Deserialize, Serialize};

use crate::barrier::Barrier;
use crate::clock::Clock;
use crate::identity::Caller;
use crate::model::{ActivationRequest, RequestStatus, RoleAssignment, Vault};
use crate::{Error, Result, names};

static BUILTIN_ROLES: &str = include_str!("../data/builtin-roles.json");

/// Role definition ids used by name in code.
pub mod roles {
    pub const KEY_VAULT_ADMINISTRATOR: &str = "00482a5a-887f-4fb3-b363-3b7fe8e74483";
    pub const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
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
    /// True for roles a tenant defined itself.
    #[serde(default)]
    pub custom: bool,
    #[serde(default)]
    pub assignable_scopes: Vec<String>,
    /// An ABAC condition (Key Vault Data Access Administrator's): the role ids
    /// it may assign or unassign are the GUIDs it lists.
    #[serde(default)]
    pub condition: Option<String>,
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

/// A data action that only reads: `.../read`, `getSecret`, `readMetadata`.
fn is_read_action(pattern: &str) -> bool {
    let p = pattern.to_ascii_lowercase();
    p.ends_with("/read") || p.ends_with("/getsecret/action") || p.ends_with("/readmetadata/action")
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

    /// True when every data action of the role only reads (and it has some).
    pub fn is_read_only(&self) -> bool {
        let data = self.data_actions.as_deref().unwrap_or_default();
        !data.is_empty() && data.iter().all(|a| is_read_action(a))
    }

    /// True when the role can change vaults, their data or access to them:
    /// some data action, or some Key Vault, authorization or directory
    /// action, does more than read. (Reader, Key Vault Reader and Key Vault
    /// Secrets User are not; the reader roles' boilerplate such as
    /// `Microsoft.Support/*` does not count.)
    pub fn is_privileged(&self) -> bool {
        // A wildcard in the provider part (`Microsoft.*`, `Microsoft.Key*/...`)
        // may reach the providers that matter, so it counts.
        let touches_access = |a: &&String| {
            let a = a.to_ascii_lowercase();
            let provider = a.split('/').next().unwrap_or_default();
            provider.contains('*')
                || [
                    "microsoft.keyvault",
                    "microsoft.authorization",
                    "microsoft.directory",
                ]
                .contains(&provider)
        };
        let actions = self.actions.as_deref().unwrap_or_default();
        let data = self.data_actions.as_deref().unwrap_or_default();
        actions
            .iter()
            .filter(touches_access)
            .chain(data)
            .any(|a| !is_read_action(a))
    }

    /// The role ids this role's condition lets it (un)assign, if it has one.
    fn condition_role_ids(&self) -> Option<Vec<String>> {
        let c = self.condition.as_ref()?;
        let ids = c
            .split(|ch: char| !(ch.is_ascii_hexdigit() || ch == '-'))
            .filter(|t| t.len() == 36 && t.matches('-').count() == 4)
            .map(str::to_ascii_lowercase)
            .collect();
        Some(ids)
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
            ..Default::default()
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
                // Managing principals' credentials is access management, not resource management.
                "Microsoft.Directory/*",
            ],
        ),
        role(
            "User Access Administrator",
            "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
            "Lets you manage user access to Azure resources.",
            &[
                "*/read",
                "Microsoft.Authorization/*",
                "Microsoft.Directory/*",
            ],
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
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Authorized {
    pub assignment_id: String,
    pub role_id: String,
    pub role_name: String,
}

/// The scope string of a vault, or of one object in it.
pub fn scope_of(vault: &Vault, object: Option<(&str, &str)>) -> String {
    match object {
        None => format!("/vaults/{}", vault.id),
        Some((kind, name)) => format!("/vaults/{}/{kind}/{}", vault.id, names::fold(name)),
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

/// Every scope an assignment may sit at to cover a target, outermost first.
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

/// The object kinds an assignment can name inside a vault.
pub const OBJECT_KINDS: &[&str] = &["secrets", "keys", "certificates"];

/// A role given at the scope of a single object (standing or just in time)
/// must only read: a role that writes, deletes or manages access on one
/// object would reach past it (purge, or assignments of the whole vault).
pub fn check_role_fits_scope(role: &RoleDefinition, scope: &str) -> Result<()> {
    let segments: Vec<&str> = scope.trim_start_matches('/').split('/').collect();
    let object_scope =
        matches!(segments.as_slice(), ["vaults", _, kind, _] if OBJECT_KINDS.contains(kind));
    // A custom role on one object must not carry management actions either.
    let custom_actions = role.custom && !role.actions.as_deref().unwrap_or_default().is_empty();
    if object_scope && (!role.is_read_only() || custom_actions) {
        return Err(Error::bad(format!(
            "Role '{}' cannot be given at the scope of a single object: only roles whose data actions all read (such as Key Vault Secrets User or Key Vault Reader) can be. Give it at the vault scope ('/') instead.",
            role.name
        )));
    }
    Ok(())
}

fn assignments_prefix(tenant_id: &str) -> String {
    format!("sys/roleassignments/{tenant_id}/")
}
fn custom_roles_prefix(tenant_id: &str) -> String {
    format!("sys/roledefinitions/{tenant_id}/")
}

fn is_guid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

/// The GUID at the end of a role definition id (`.../roleDefinitions/{guid}` or a bare GUID).
pub fn role_guid(id: &str) -> String {
    id.rsplit('/').next().unwrap_or(id).to_ascii_lowercase()
}

/// What a tenant has defined: its assignments and custom roles.
#[derive(Default)]
struct TenantRbac {
    assignments: Vec<RoleAssignment>,
    custom_roles: Vec<RoleDefinition>,
    /// Approved just-in-time activations (whether still active is checked
    /// against the clock on every request).
    activations: Vec<ActivationRequest>,
}

pub struct Authorizer {
    barrier: Arc<Barrier>,
    clock: Arc<dyn Clock>,
    builtin: Vec<RoleDefinition>,
    cache: RwLock<HashMap<String, Arc<TenantRbac>>>,
}

/// A request to assign a role inside a vault or above it.
pub struct NewAssignment<'a> {
    pub tenant_id: &'a str,
    /// The assignment's name (a GUID the client chose) or None for a new one.
    pub id: Option<&'a str>,
    pub principal_id: &'a str,
    pub role_definition_id: &'a str,
    pub scope: String,
    pub now: i64,
}

impl Authorizer {
    pub fn new(barrier: Arc<Barrier>, clock: Arc<dyn Clock>) -> Self {
        let mut builtin: Vec<RoleDefinition> =
            serde_json::from_str(BUILTIN_ROLES).expect("the built-in role list is valid JSON");
        builtin.extend(general_roles());
        Authorizer {
            barrier,
            clock,
            builtin,
            cache: RwLock::new(HashMap::new()),
        }
    }

    pub fn builtin_roles(&self) -> &[RoleDefinition] {
        &self.builtin
    }

    pub fn role_by_name(&self, name: &str) -> Option<&RoleDefinition> {
        self.builtin
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(name))
    }

    async fn tenant(&self, tenant_id: &str) -> Result<Arc<TenantRbac>> {
        if let Some(t) = self.cache.read().expect("rbac cache lock").get(tenant_id) {
            return Ok(t.clone());
        }
        let assignments = self
            .barrier
            .list_all::<RoleAssignment>(&assignments_prefix(tenant_id))
            .await?;
        let custom_roles = self
            .barrier
            .list_all::<RoleDefinition>(&custom_roles_prefix(tenant_id))
            .await?;
        let activations = self
            .barrier
            .list_all::<ActivationRequest>(&format!("sys/pim/requests/{tenant_id}/"))
            .await?;
        let t = Arc::new(TenantRbac {
            assignments: assignments.into_iter().map(|s| s.value).collect(),
            custom_roles: custom_roles.into_iter().map(|s| s.value).collect(),
            activations: activations
                .into_iter()
                .map(|s| s.value)
                .filter(|r| r.status == RequestStatus::Provisioned)
                .collect(),
        });
        self.cache
            .write()
            .expect("rbac cache lock")
            .insert(tenant_id.to_owned(), t.clone());
        Ok(t)
    }

    /// Drops what is cached of a tenant after a change.
    pub fn forget_tenant(&self, tenant_id: &str) {
        self.cache
            .write()
            .expect("rbac cache lock")
            .remove(tenant_id);
    }

    /// A role definition visible to the tenant (built-in or its own).
    pub async fn role(&self, tenant_id: &str, id: &str) -> Result<Option<RoleDefinition>> {
        let guid = role_guid(id);
        if let Some(r) = self
            .builtin
            .iter()
            .find(|r| r.id.eq_ignore_ascii_case(&guid))
        {
            return Ok(Some(r.clone()));
        }
        Ok(self
            .tenant(tenant_id)
            .await?
            .custom_roles
            .iter()
            .find(|r| r.id.eq_ignore_ascii_case(&guid))
            .cloned())
    }

    /// A role definition that must exist (400 naming it otherwise).
    pub async fn existing_role(&self, tenant_id: &str, id: &str) -> Result<RoleDefinition> {
        self.role(tenant_id, id).await?.ok_or_else(|| {
            Error::bad(format!(
                "Role definition {} does not exist.",
                names::printable(id)
            ))
        })
    }

    /// Every role definition visible to the tenant.
    pub async fn roles(&self, tenant_id: &str) -> Result<Vec<RoleDefinition>> {
        let mut all = self.builtin.clone();
        all.extend(self.tenant(tenant_id).await?.custom_roles.iter().cloned());
        Ok(all)
    }

    /// Creates or replaces a custom role of the tenant.
    pub async fn put_custom_role(
        &self,
        tenant_id: &str,
        mut role: RoleDefinition,
    ) -> Result<RoleDefinition> {
        role.id = role_guid(&role.id);
        if !is_guid(&role.id) {
            return Err(Error::bad("A role definition's name must be a GUID."));
        }
        if self
            .builtin
            .iter()
            .any(|r| r.id.eq_ignore_ascii_case(&role.id))
        {
            return Err(Error::forbidden(
                "Built-in role definitions cannot be changed.",
            ));
        }
        if role.name.trim().is_empty() {
            return Err(Error::bad("A custom role needs a roleName."));
        }
        let clash = self.roles(tenant_id).await?.into_iter().any(|r| {
            r.name.eq_ignore_ascii_case(&role.name) && !r.id.eq_ignore_ascii_case(&role.id)
        });
        if clash {
            return Err(Error::Conflict(format!(
                "A role named '{}' already exists.",
                role.name
            )));
        }
        role.custom = true;
        role.condition = None;
        let key = format!("{}{}", custom_roles_prefix(tenant_id), role.id);
        let sealed = self.barrier.seal_json(&key, &role).await?;
        let result = self.barrier.commit(Batch::new().put(key, sealed)).await;
        self.forget_tenant(tenant_id);
        result.map(|_| role)
    }

    /// Deletes a custom role that no assignment uses.
    pub async fn delete_custom_role(&self, tenant_id: &str, id: &str) -> Result<RoleDefinition> {
        let guid = role_guid(id);
        if self
            .builtin
            .iter()
            .any(|r| r.id.eq_ignore_ascii_case(&guid))
        {
            return Err(Error::forbidden(
                "Built-in role definitions cannot be deleted.",
            ));
        }
        let t = self.tenant(tenant_id).await?;
        let role = t
            .custom_roles
            .iter()
            .find(|r| r.id.eq_ignore_ascii_case(&guid))
            .cloned()
            .ok_or_else(|| {
                Error::not_found(
                    "RoleDefinitionNotFound",
                    format!("Role definition {guid} does not exist."),
                )
            })?;
        if t.assignments
            .iter()
            .any(|a| role_guid(&a.role_definition_id) == guid)
        {
            return Err(Error::Conflict(format!(
                "Role '{}' is still assigned; delete its role assignments first.",
                role.name
            )));
        }
        let result = self
            .barrier
            .commit(Batch::new().delete(format!("{}{}", custom_roles_prefix(tenant_id), guid)))
            .await;
        self.forget_tenant(tenant_id);
        result.map(|_| role)
    }

    /// Stores an assignment after checking it: the role exists, the scope is
    /// well formed, and a role assigned to a single object only reads.
    pub async fn assign_checked(&self, req: NewAssignment<'_>) -> Result<RoleAssignment> {
        let role = self
            .existing_role(req.tenant_id, req.role_definition_id)
            .await?;
        check_role_fits_scope(&role, &req.scope)?;
        let id = match req.id {
            Some(id) if is_guid(id) => id.to_ascii_lowercase(),
            Some(_) => return Err(Error::bad("A role assignment's name must be a GUID.")),
            None => uuid::Uuid::new_v4().to_string(),
        };
        let t = self.tenant(req.tenant_id).await?;
        if t.assignments.iter().any(|a| {
            a.principal_id == req.principal_id
                && role_guid(&a.role_definition_id) == role.id
                && a.scope == req.scope
        }) {
            return Err(Error::Conflict(
                "The role assignment already exists.".into(),
            ));
        }
        let assignment = RoleAssignment {
            id,
            tenant_id: req.tenant_id.to_owned(),
            principal_id: req.principal_id.to_owned(),
            role_definition_id: role.id.clone(),
            scope: req.scope,
            created: req.now,
        };
        let key = format!("{}{}", assignments_prefix(req.tenant_id), assignment.id);
        let sealed = self.barrier.seal_json(&key, &assignment).await?;
        let result = self
            .barrier
            .commit(Batch::new().expect_absent(key.clone()).put(key, sealed))
            .await;
        self.forget_tenant(req.tenant_id);
        result.map_err(|e| match e {
            Error::Conflict(_) => Error::Conflict(format!(
                "A role assignment named {} already exists.",
                assignment.id
            )),
            other => other,
        })?;
        Ok(assignment)
    }

    /// Stores an assignment of `role_definition_id` to a principal at `scope`
    /// (bootstrap and tests; the API goes through [`Authorizer::assign_checked`]).
    pub async fn assign(
        &self,
        tenant_id: &str,
        principal_id: &str,
        role_definition_id: &str,
        scope: &str,
        now: i64,
    ) -> Result<RoleAssignment> {
        self.assign_checked(NewAssignment {
            tenant_id,
            id: None,
            principal_id,
            role_definition_id,
            scope: scope.to_owned(),
            now,
        })
        .await
    }

    /// Checks the ABAC condition of the role that granted an assignment
    /// change: Key Vault Data Access Administrator may only (un)assign the
    /// roles its condition lists.
    pub async fn check_condition(
        &self,
        tenant_id: &str,
        grant: &Authorized,
        target_role: &str,
    ) -> Result<()> {
        let Some(granting) = self.role(tenant_id, &grant.role_id).await? else {
            return Ok(());
        };
        if let Some(allowed) = granting.condition_role_ids()
            && !allowed.contains(&role_guid(target_role))
        {
            return Err(Error::Forbidden {
                message: format!(
                    "Role '{}' may only assign or remove the Key Vault data roles its condition lists; role {} is not one of them.",
                    granting.name,
                    role_guid(target_role)
                ),
                inner: Some("ForbiddenByCondition"),
            });
        }
        Ok(())
    }

    /// Every assignment of the tenant.
    pub async fn assignments(&self, tenant_id: &str) -> Result<Vec<RoleAssignment>> {
        Ok(self.tenant(tenant_id).await?.assignments.clone())
    }

    pub async fn delete_assignment(&self, tenant_id: &str, id: &str) -> Result<RoleAssignment> {
        let key = format!(
            "{}{}",
            assignments_prefix(tenant_id),
            id.to_ascii_lowercase()
        );
        let stored = self
            .barrier
            .get::<RoleAssignment>(&key)
            .await?
            .ok_or_else(|| {
                Error::not_found(
                    "RoleAssignmentNotFound",
                    format!("Role assignment {} does not exist.", names::printable(id)),
                )
            })?;
        let result = self
            .barrier
            .commit(
                Batch::new()
                    .expect_equals(key.clone(), stored.raw)
                    .delete(key),
            )
            .await;
        self.forget_tenant(tenant_id);
        result.map(|_| stored.value)
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
        let t = self.tenant(tenant_id).await?;
        let now = self.clock.now();
        // Standing assignments, then just-in-time activations still in their window.
        let standing = t.assignments.iter().map(|a| {
            (
                a.id.clone(),
                &a.principal_id,
                &a.role_definition_id,
                &a.scope,
            )
        });
        let activated = t.activations.iter().filter(|r| r.is_active(now)).map(|r| {
            (
                format!("pim:{}", r.id),
                &r.principal_id,
                &r.role_definition_id,
                &r.scope,
            )
        });
        for (id, principal, role_id, scope) in standing.chain(activated) {
            if *principal != caller.object_id
                || !chain.iter().any(|s| s.eq_ignore_ascii_case(scope))
            {
                continue;
            }
            let guid = role_guid(role_id);
            let role = self
                .builtin
                .iter()
                .chain(t.custom_roles.iter())
                .find(|r| r.id.eq_ignore_ascii_case(&guid));
            if let Some(role) = role
                && role.allows_on(plane, action)
            {
                return Ok(Some(Authorized {
                    assignment_id: id,
                    role_id: role.id.clone(),
                    role_name: role.name.clone(),
                }));
            }
        }
        Ok(None)
    }

    /// Allows what any principal of the tenant may do (read role
    /// definitions, which hold nothing secret), and refuses everyone else.
    pub fn tenant_member(&self, caller: &Caller, tenant_id: &str) -> Result<Authorized> {
        if caller.tenant_id != tenant_id {
            return Err(Error::forbidden(
                "The caller is not a member of this tenant.",
            ));
        }
        Ok(Authorized {
            assignment_id: "tenant member".into(),
            role_id: String::new(),
            role_name: "any principal of the tenant".into(),
        })
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

    fn builtin() -> Vec<RoleDefinition> {
        let mut roles: Vec<RoleDefinition> = serde_json::from_str(BUILTIN_ROLES).unwrap();
        roles.extend(general_roles());
        roles
    }

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
        let roles = builtin();
        let by = |n: &str| roles.iter().find(|r| r.name == n).unwrap();
        let get = "Microsoft.KeyVault/vaults/secrets/getSecret/action";
        let set = "Microsoft.KeyVault/vaults/secrets/setSecret/action";
        assert!(by("Key Vault Administrator").allows(set));
        assert!(by("Key Vault Secrets User").allows(get));
        assert!(!by("Key Vault Secrets User").allows(set));
        assert!(!by("Key Vault Reader").allows(get));
        assert!(!by("Key Vault Crypto Officer").allows(get));
        assert!(!by("Key Vault Purge Operator").allows(get));
        assert!(by("Owner").allows_on(
            Plane::Control,
            "Microsoft.Authorization/roleAssignments/write"
        ));
        assert!(by("Contributor").allows_on(Plane::Control, "Microsoft.KeyVault/vaults/write"));
        assert!(!by("Contributor").allows_on(
            Plane::Control,
            "Microsoft.Authorization/roleAssignments/write"
        ));
        assert!(!by("Reader").allows_on(Plane::Control, "Microsoft.KeyVault/vaults/write"));
        assert!(
            !by("Owner").allows_on(Plane::Data, get),
            "Owner reads no secrets"
        );
    }

    #[test]
    fn read_only_roles_and_conditions() {
        let roles = builtin();
        let by = |n: &str| roles.iter().find(|r| r.name == n).unwrap();
        assert!(by("Key Vault Secrets User").is_read_only());
        assert!(by("Key Vault Reader").is_read_only());
        assert!(by("Key Vault Certificate User").is_read_only());
        assert!(!by("Key Vault Secrets Officer").is_read_only());
        assert!(!by("Key Vault Administrator").is_read_only());
        assert!(!by("Owner").is_read_only());
        assert!(!by("Reader").is_privileged());
        assert!(!by("Key Vault Secrets User").is_privileged());
        assert!(!by("Key Vault Reader").is_privileged());
        assert!(by("Key Vault Secrets Officer").is_privileged());
        assert!(by("Owner").is_privileged());
        assert!(by("User Access Administrator").is_privileged());
        let custom = |actions: &[&str]| RoleDefinition {
            actions: Some(actions.iter().map(|a| a.to_string()).collect()),
            ..Default::default()
        };
        assert!(custom(&["Microsoft.*"]).is_privileged());
        assert!(custom(&["Microsoft.Key*/vaults/write"]).is_privileged());
        assert!(!custom(&["Microsoft.Support/*"]).is_privileged());
        assert!(!custom(&["Microsoft.Key*/vaults/read"]).is_privileged());
        let ids = by("Key Vault Data Access Administrator")
            .condition_role_ids()
            .unwrap();
        assert!(ids.contains(&"4633458b-17de-408a-b874-0445c86b69e6".to_string()));
        assert!(
            !ids.contains(&"8e3af657-a8ff-443c-a75c-2fe8c4bcb635".to_string()),
            "cannot hand out Owner"
        );
        assert_eq!(
            role_guid("Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/ABC"),
            "abc"
        );
    }
}
