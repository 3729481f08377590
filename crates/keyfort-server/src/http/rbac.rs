//! The data-plane RBAC API on each vault host
//! (`/{scope}/providers/Microsoft.Authorization/roleDefinitions|roleAssignments`,
//! as in `administration.json`), so `KeyVaultAccessControlClient` works
//! against a Keyfort vault URL. Scopes are relative to the vault: `/` is the
//! vault, `/secrets/NAME` (or `/keys/NAME`, `/certificates/NAME`) one object.

use axum::Json;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use keyfort_core::authz::{
    Authorized, NewAssignment, OBJECT_KINDS, RoleDefinition, role_guid, scope_chain, scope_of,
};
use keyfort_core::model::{RoleAssignment, Vault};
use keyfort_core::{Error, names};
use serde_json::{Map, Value, json};

use super::AppState;

/// Reading role definitions is open to every principal of the vault's tenant.
pub const READ_DEFINITIONS: &str = "Microsoft.Authorization/roleDefinitions/read";

#[derive(Debug, PartialEq)]
pub enum Kind {
    Definitions,
    Assignments,
}

#[derive(Debug, PartialEq)]
pub struct RbacOp {
    method: Method,
    kind: Kind,
    /// `/` or `/{kind}/{name}`.
    scope: String,
    name: Option<String>,
}

/// A vault-relative scope: `/`, or one object.
fn parse_scope(segments: &[&str]) -> Result<String, Error> {
    match segments {
        [] => Ok("/".into()),
        [kind, name] if OBJECT_KINDS.contains(&kind.to_ascii_lowercase().as_str()) => {
            names::check_object_name("object", name)?;
            Ok(format!("/{}/{}", kind.to_ascii_lowercase(), name))
        }
        _ => Err(Error::bad(format!(
            "The scope '/{}' is not valid here: use '/' for the vault or '/secrets/NAME', '/keys/NAME' or '/certificates/NAME' for one object.",
            names::printable(&segments.join("/"))
        ))),
    }
}

impl RbacOp {
    /// `Ok(None)` when the path is not an RBAC path at all.
    pub fn parse(method: &Method, path: &str) -> Result<Option<RbacOp>, Error> {
        // The SDK formats `/{scope}/providers/...`, so `/` as scope yields empty segments.
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let Some(i) = segs.windows(2).position(|w| {
            w[0].eq_ignore_ascii_case("providers")
                && w[1].eq_ignore_ascii_case("Microsoft.Authorization")
        }) else {
            return Ok(None);
        };
        let kind = match segs.get(i + 2).map(|s| s.to_ascii_lowercase()).as_deref() {
            Some("roledefinitions") => Kind::Definitions,
            Some("roleassignments") => Kind::Assignments,
            _ => return Ok(None),
        };
        let name = match &segs[i + 3..] {
            [] => None,
            [n] => Some(n.to_string()),
            _ => return Ok(None),
        };
        let allowed = matches!(
            (method.as_str(), &name),
            ("GET", _) | ("PUT" | "DELETE", Some(_))
        );
        if !allowed {
            return Ok(None);
        }
        Ok(Some(RbacOp {
            method: method.clone(),
            kind,
            scope: parse_scope(&segs[..i])?,
            name,
        }))
    }

    pub fn action(&self) -> &'static str {
        match (&self.kind, self.method.as_str()) {
            (Kind::Definitions, "GET") => READ_DEFINITIONS,
            (Kind::Definitions, "PUT") => "Microsoft.Authorization/roleDefinitions/write",
            (Kind::Definitions, _) => "Microsoft.Authorization/roleDefinitions/delete",
            (Kind::Assignments, "GET") => "Microsoft.Authorization/roleAssignments/read",
            (Kind::Assignments, "PUT") => "Microsoft.Authorization/roleAssignments/write",
            (Kind::Assignments, _) => "Microsoft.Authorization/roleAssignments/delete",
        }
    }

    pub fn audit_name(&self) -> &'static str {
        match (&self.kind, self.method.as_str(), self.name.is_some()) {
            (Kind::Definitions, "GET", false) => "RoleDefinitionList",
            (Kind::Definitions, "GET", true) => "RoleDefinitionGet",
            (Kind::Definitions, "PUT", _) => "RoleDefinitionSet",
            (Kind::Definitions, _, _) => "RoleDefinitionDelete",
            (Kind::Assignments, "GET", false) => "RoleAssignmentList",
            (Kind::Assignments, "GET", true) => "RoleAssignmentGet",
            (Kind::Assignments, "PUT", _) => "RoleAssignmentCreate",
            (Kind::Assignments, _, _) => "RoleAssignmentDelete",
        }
    }

    /// Custom roles are tenant-wide: changing one needs a grant at the
    /// subscription (or tenant), not just on this vault.
    pub fn tenant_wide(&self) -> bool {
        self.kind == Kind::Definitions && self.method != Method::GET
    }

    /// The object the scope names, if one.
    pub fn object(&self) -> Option<(&str, &str)> {
        let mut parts = self.scope.trim_start_matches('/').splitn(2, '/');
        match (parts.next(), parts.next()) {
            (Some(kind), Some(name)) if !kind.is_empty() => Some((kind, name)),
            _ => None,
        }
    }
}

const DEFINITION_PREFIX: &str =
    "Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/";

fn definition_json(r: &RoleDefinition) -> Value {
    let list = |v: &Option<Vec<String>>| json!(v.clone().unwrap_or_default());
    json!({
        "id": format!("{DEFINITION_PREFIX}{}", r.id),
        "name": r.id,
        "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": r.name,
            "description": r.description,
            "type": if r.custom { "CustomRole" } else { "AKVBuiltInRole" },
            "permissions": [{
                "actions": list(&r.actions),
                "notActions": list(&r.not_actions),
                "dataActions": list(&r.data_actions),
                "notDataActions": list(&r.not_data_actions),
            }],
            "assignableScopes": if r.assignable_scopes.is_empty() { vec!["/".to_string()] } else { r.assignable_scopes.clone() },
        }
    })
}

/// The vault-relative form of an internal scope (others are shown as they are).
fn relative_scope(vault: &Vault, scope: &str) -> String {
    let vault_scope = scope_of(vault, None);
    match scope.strip_prefix(&vault_scope) {
        Some("") => "/".into(),
        Some(rest) if rest.starts_with('/') => rest.into(),
        _ => scope.into(),
    }
}

fn absolute_scope(vault: &Vault, relative: &str) -> String {
    match relative.trim_start_matches('/').split_once('/') {
        Some((kind, name)) => scope_of(vault, Some((kind, name))),
        None => scope_of(vault, None),
    }
}

fn assignment_json(vault: &Vault, a: &RoleAssignment) -> Value {
    let scope = relative_scope(vault, &a.scope);
    json!({
        "id": format!("{}/providers/Microsoft.Authorization/roleAssignments/{}", scope.trim_end_matches('/'), a.id),
        "name": a.id,
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": {
            "scope": scope,
            "roleDefinitionId": format!("{DEFINITION_PREFIX}{}", role_guid(&a.role_definition_id)),
            "principalId": a.principal_id,
        }
    })
}

/// The event data of a role assignment change.
fn change_data(a: &RoleAssignment, change: &str) -> Value {
    json!({ "Change": change, "RoleAssignmentId": a.id, "RoleDefinitionId": a.role_definition_id, "PrincipalId": a.principal_id, "Scope": a.scope })
}

fn string_list(v: Option<&Value>, field: &str) -> Result<Option<Vec<String>>, Error> {
    match v {
        None | Some(Value::Null) => Ok(Some(vec![])),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| Error::bad(format!("'{field}' must be a list of strings.")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(Error::bad(format!("'{field}' must be a list of strings."))),
    }
}

/// At the vault's scope or below it: what a grant on the vault may remove.
fn in_vault(vault: &Vault, a: &RoleAssignment) -> bool {
    let vault_scope = scope_of(vault, None);
    a.scope == vault_scope || a.scope.starts_with(&format!("{vault_scope}/"))
}

fn in_scope(vault: &Vault, a: &RoleAssignment, scope: &str) -> bool {
    // Assignments at this scope or above it apply; at `/` (the vault) also those below.
    let chain = scope_chain(&vault.subscription_id, Some(&vault.resource_group), None);
    let target = absolute_scope(vault, scope);
    let vault_scope = scope_of(vault, None);
    chain.iter().any(|s| s.eq_ignore_ascii_case(&a.scope))
        || a.scope == target
        || a.scope == vault_scope
        || (scope == "/" && a.scope.starts_with(&format!("{vault_scope}/")))
}

pub async fn run(
    state: &AppState,
    vault: &Vault,
    grant: &Authorized,
    op: RbacOp,
    body: &[u8],
) -> Result<Response, Error> {
    let authz = &state.kf.authz;
    let tenant = &vault.tenant_id;
    let def_not_found = |n: &str| {
        Error::not_found(
            "RoleDefinitionNotFound",
            format!("Role definition {} does not exist.", names::printable(n)),
        )
    };
    let asg_not_found = |n: &str| {
        Error::not_found(
            "RoleAssignmentNotFound",
            format!("Role assignment {} does not exist.", names::printable(n)),
        )
    };
    Ok(match (op.kind, op.method.as_str(), op.name) {
        (Kind::Definitions, "GET", None) => {
            let all: Vec<Value> = authz
                .roles(tenant)
                .await?
                .iter()
                .map(definition_json)
                .collect();
            Json(json!({ "value": all, "nextLink": null })).into_response()
        }
        (Kind::Definitions, "GET", Some(n)) => Json(definition_json(
            &authz
                .role(tenant, &n)
                .await?
                .ok_or_else(|| def_not_found(&n))?,
        ))
        .into_response(),
        (Kind::Definitions, "PUT", Some(n)) => {
            if op.scope != "/" {
                return Err(Error::bad(
                    "Custom roles are defined at the vault scope '/'.",
                ));
            }
            let p = super::body::properties(body)?;
            let perms = match p.get("permissions") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Array(list)) if list.len() <= 1 => list
                    .first()
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default(),
                Some(_) => {
                    return Err(Error::bad(
                        "'permissions' must be a list with one permission set.",
                    ));
                }
            };
            let role = RoleDefinition {
                id: n,
                name: p
                    .get("roleName")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                description: p
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                actions: string_list(perms.get("actions"), "actions")?,
                not_actions: string_list(perms.get("notActions"), "notActions")?,
                data_actions: string_list(perms.get("dataActions"), "dataActions")?,
                not_data_actions: string_list(perms.get("notDataActions"), "notDataActions")?,
                assignable_scopes: string_list(p.get("assignableScopes"), "assignableScopes")?
                    .unwrap_or_default(),
                ..Default::default()
            };
            (
                StatusCode::CREATED,
                Json(definition_json(&authz.put_custom_role(tenant, role).await?)),
            )
                .into_response()
        }
        (Kind::Definitions, "DELETE", Some(n)) => Json(definition_json(
            &authz.delete_custom_role(tenant, &n).await?,
        ))
        .into_response(),
        (Kind::Assignments, "GET", None) => {
            let list: Vec<Value> = authz
                .assignments(tenant)
                .await?
                .iter()
                .filter(|a| in_scope(vault, a, &op.scope))
                .map(|a| assignment_json(vault, a))
                .collect();
            Json(json!({ "value": list, "nextLink": null })).into_response()
        }
        (Kind::Assignments, "GET", Some(n)) => {
            let a = authz
                .assignments(tenant)
                .await?
                .into_iter()
                .find(|a| a.id.eq_ignore_ascii_case(&n) && in_scope(vault, a, "/"))
                .ok_or_else(|| asg_not_found(&n))?;
            Json(assignment_json(vault, &a)).into_response()
        }
        (Kind::Assignments, "PUT", Some(n)) => {
            let p = super::body::properties(body)?;
            let role_id = p
                .get("roleDefinitionId")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::bad("'properties.roleDefinitionId' is required."))?;
            let principal_id = p
                .get("principalId")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::bad("'properties.principalId' is required."))?;
            if !state.kf.identity.has_object(tenant, principal_id).await? {
                return Err(Error::bad(format!(
                    "{} is not a principal or user of this vault's tenant.",
                    names::printable(principal_id)
                )));
            }
            authz.check_condition(tenant, grant, role_id).await?;
            let created = authz
                .assign_checked(NewAssignment {
                    tenant_id: tenant,
                    id: Some(&n),
                    principal_id,
                    role_definition_id: role_id,
                    scope: absolute_scope(vault, &op.scope),
                    now: state.kf.clock.now(),
                })
                .await?;
            state
                .kf
                .notify(
                    vault,
                    "RoleAssignmentChanged",
                    &created.id,
                    change_data(&created, "Created"),
                )
                .await;
            (StatusCode::CREATED, Json(assignment_json(vault, &created))).into_response()
        }
        (Kind::Assignments, "DELETE", Some(n)) => {
            let existing = authz
                .assignments(tenant)
                .await?
                .into_iter()
                .find(|a| a.id.eq_ignore_ascii_case(&n) && in_vault(vault, a))
                .ok_or_else(|| asg_not_found(&n))?;
            // The caller was authorized at the URL's scope: that covers the
            // assignments at it or below, not those of the whole vault.
            let url_scope = absolute_scope(vault, &op.scope);
            if existing.scope != url_scope && !existing.scope.starts_with(&format!("{url_scope}/"))
            {
                return Err(Error::bad(format!(
                    "Role assignment {} is at scope '{}', not at or below '{}': delete it at its own scope.",
                    existing.id,
                    relative_scope(vault, &existing.scope),
                    op.scope
                )));
            }
            authz
                .check_condition(tenant, grant, &existing.role_definition_id)
                .await?;
            {
                let deleted = authz.delete_assignment(tenant, &existing.id).await?;
                state
                    .kf
                    .notify(
                        vault,
                        "RoleAssignmentChanged",
                        &deleted.id,
                        change_data(&deleted, "Deleted"),
                    )
                    .await;
                Json(assignment_json(vault, &deleted)).into_response()
            }
        }
        _ => return Err(Error::not_found("NotFound", "No such RBAC operation.")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sdk_paths() {
        let p = |m: Method, path: &str| RbacOp::parse(&m, path);
        let op = p(
            Method::GET,
            "//providers/Microsoft.Authorization/roleDefinitions",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (op.kind, op.scope.as_str(), op.name),
            (Kind::Definitions, "/", None)
        );
        let op = p(
            Method::PUT,
            "/secrets/db/providers/Microsoft.Authorization/roleAssignments/abc",
        )
        .unwrap()
        .unwrap();
        assert_eq!(op.scope, "/secrets/db");
        assert_eq!(op.object(), Some(("secrets", "db")));
        assert!(p(Method::GET, "/secrets/db").unwrap().is_none());
        assert!(
            p(
                Method::GET,
                "/bogus/x/y/providers/Microsoft.Authorization/roleAssignments"
            )
            .is_err()
        );
        assert!(
            p(
                Method::POST,
                "/providers/Microsoft.Authorization/roleAssignments/x"
            )
            .unwrap()
            .is_none()
        );
    }
}
