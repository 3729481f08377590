//! The vault management API, shaped after ARM's `Microsoft.KeyVault/vaults`
//! (`keyvault-management/2026-04-01/openapi.json`), so that
//! `azure-mgmt-keyvault` works with `base_url` set to Keyfort's management
//! URL. Subscriptions map to tenants; resource groups are names on vaults.
//! Every operation needs a management token of the subscription's tenant and
//! a role whose `actions` grant it (Owner, Contributor, Key Vault Contributor...).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use keyfort_core::authz::{Plane, scope_chain};
use keyfort_core::identity::Caller;
use keyfort_core::model::{Tags, Tenant, Vault};
use keyfort_core::vaults::{DEFAULT_RETENTION_DAYS, NewVault, VaultChanges};
use keyfort_core::{Error, names};
use serde_json::{Map, Value, json};

use super::AppState;
use super::audit::AuditSlot;
use super::error::ApiError;
use super::request::{authenticate_management, unauthorized};

/// Management API versions accepted (azure-mgmt-keyvault 14.1 sends 2026-05-15).
pub const MANAGEMENT_API_VERSIONS: &[&str] = &[
    "2026-05-15",
    "2026-04-01",
    "2026-02-01",
    "2025-05-01",
    "2024-11-01",
    "2024-04-01-preview",
    "2023-07-01",
    "2023-02-01",
    "2022-07-01",
    "2021-10-01",
];

#[derive(Debug, PartialEq)]
enum MgmtOp {
    ListBySubscription,
    ListByResourceGroup(String),
    Get(String, String),
    Put(String, String),
    Patch(String, String),
    Delete(String, String),
    ListDeleted,
    /// (location, name)
    GetDeleted(String, String),
    PurgeDeleted(String, String),
    CheckName,
}

impl MgmtOp {
    /// Parses the path after `/subscriptions/{sub}`.
    fn parse(method: &Method, rest: &[&str]) -> Option<MgmtOp> {
        let lower: Vec<String> = rest.iter().map(|s| s.to_ascii_lowercase()).collect();
        let l: Vec<&str> = lower.iter().map(String::as_str).collect();
        let s = |i: usize| rest[i].to_owned();
        use MgmtOp::*;
        Some(match (method.as_str(), l.as_slice()) {
            ("GET", ["providers", "microsoft.keyvault", "vaults"]) => ListBySubscription,
            ("GET", ["providers", "microsoft.keyvault", "deletedvaults"]) => ListDeleted,
            (
                "GET",
                [
                    "providers",
                    "microsoft.keyvault",
                    "locations",
                    _,
                    "deletedvaults",
                    _,
                ],
            ) => GetDeleted(s(3), s(5)),
            (
                "POST",
                [
                    "providers",
                    "microsoft.keyvault",
                    "locations",
                    _,
                    "deletedvaults",
                    _,
                    "purge",
                ],
            ) => PurgeDeleted(s(3), s(5)),
            ("POST", ["providers", "microsoft.keyvault", "checknameavailability"]) => CheckName,
            (
                "GET",
                [
                    "resourcegroups",
                    _,
                    "providers",
                    "microsoft.keyvault",
                    "vaults",
                ],
            ) => ListByResourceGroup(s(1)),
            (
                m,
                [
                    "resourcegroups",
                    _,
                    "providers",
                    "microsoft.keyvault",
                    "vaults",
                    _,
                ],
            ) => match m {
                "GET" => Get(s(1), s(5)),
                "PUT" => Put(s(1), s(5)),
                "PATCH" => Patch(s(1), s(5)),
                "DELETE" => Delete(s(1), s(5)),
                _ => return None,
            },
            _ => return None,
        })
    }

    fn action(&self) -> &'static str {
        use MgmtOp::*;
        match self {
            ListBySubscription | ListByResourceGroup(_) | Get(..) => {
                "Microsoft.KeyVault/vaults/read"
            }
            Put(..) | Patch(..) => "Microsoft.KeyVault/vaults/write",
            Delete(..) => "Microsoft.KeyVault/vaults/delete",
            ListDeleted | GetDeleted(..) => "Microsoft.KeyVault/deletedVaults/read",
            PurgeDeleted(..) => "Microsoft.KeyVault/locations/deletedVaults/purge/action",
            CheckName => "Microsoft.KeyVault/checkNameAvailability/read",
        }
    }

    fn audit_name(&self) -> &'static str {
        use MgmtOp::*;
        match self {
            ListBySubscription | ListByResourceGroup(_) => "VaultList",
            Get(..) => "VaultGet",
            Put(..) => "VaultPut",
            Patch(..) => "VaultPatch",
            Delete(..) => "VaultDelete",
            ListDeleted => "DeletedVaultList",
            GetDeleted(..) => "DeletedVaultGet",
            PurgeDeleted(..) => "VaultPurge",
            CheckName => "VaultCheckNameAvailability",
        }
    }

    fn resource_group(&self) -> Option<&str> {
        use MgmtOp::*;
        match self {
            ListByResourceGroup(rg) | Get(rg, _) | Put(rg, _) | Patch(rg, _) | Delete(rg, _) => {
                Some(rg)
            }
            _ => None,
        }
    }

    fn vault_name(&self) -> Option<&str> {
        use MgmtOp::*;
        match self {
            Get(_, n)
            | Put(_, n)
            | Patch(_, n)
            | Delete(_, n)
            | GetDeleted(_, n)
            | PurgeDeleted(_, n) => Some(n),
            _ => None,
        }
    }
}

fn check_api_version(query: Option<&str>) -> Result<(), Error> {
    let given = super::request::query_param(query, "api-version");
    match given {
        Some(v) if MANAGEMENT_API_VERSIONS.contains(&v) => Ok(()),
        Some(v) => Err(Error::bad(format!(
            "The api-version '{}' is not supported for Microsoft.KeyVault/vaults; use one of: {}.",
            names::printable(v),
            MANAGEMENT_API_VERSIONS.join(", ")
        ))),
        None => Err(Error::bad(format!(
            "The api-version query parameter is required; use {}.",
            MANAGEMENT_API_VERSIONS[0]
        ))),
    }
}

/// `/subscriptions/...`: every management operation.
pub async fn management(
    State(state): State<Arc<AppState>>,
    Extension(slot): Extension<AuditSlot>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if super::pim::is_pim_path(uri.path()) {
        return match body {
            Ok(b) => super::pim::pim(State(state), Extension(slot), method, uri, headers, b).await,
            Err(r) => ApiError(Error::TooLarge(format!(
                "The request body could not be read: {r}."
            )))
            .into_response(),
        };
    }
    let segs: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let (subscription, rest) = match segs.as_slice() {
        ["subscriptions", sub, rest @ ..] => (sub.to_string(), rest.to_vec()),
        _ => {
            return ApiError(Error::not_found("NotFound", "Not a management path."))
                .into_response();
        }
    };
    let Some(op) = MgmtOp::parse(&method, &rest) else {
        return ApiError(Error::not_found(
            "InvalidResourceType",
            format!(
                "{method} {} is not an operation of the Microsoft.KeyVault management API.",
                names::printable(uri.path())
            ),
        ))
        .into_response();
    };
    slot.update(|i| {
        i.operation = Some(op.audit_name());
        i.vault = op.vault_name().map(str::to_owned);
        // The ARM id is the path the request addressed (bounded, printable).
        i.resource_id = Some(uri.path().chars().take(512).collect());
    });
    if let Err(e) = check_api_version(uri.query()) {
        return ApiError(e).into_response();
    }
    // Authentication comes before anything about the subscription is revealed.
    let caller = match authenticate_management(&state, &headers).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    slot.set_caller(&caller);
    let tenant = match state
        .kf
        .identity
        .tenant_by_subscription(&subscription)
        .await
    {
        Ok(Some(t)) if t.id == caller.tenant_id => t,
        Ok(_) => {
            // Same answer whether the subscription is unknown or another tenant's.
            return unauthorized(format!(
                "InvalidAuthenticationTokenTenant: the token's tenant {} has no subscription '{}'.",
                caller.tenant_id,
                names::printable(&subscription)
            ));
        }
        Err(e) => return ApiError(e).into_response(),
    };
    let body = match body {
        Ok(b) => b,
        Err(r) => {
            return ApiError(Error::TooLarge(format!(
                "The request body could not be read: {r}."
            )))
            .into_response();
        }
    };
    match run(&state, &slot, &caller, &tenant, op, &body).await {
        Ok(r) => r,
        Err(e) => ApiError(e).into_response(),
    }
}

async fn authorize(
    state: &AppState,
    slot: &AuditSlot,
    caller: &Caller,
    tenant: &Tenant,
    op: &MgmtOp,
    vault: Option<&Vault>,
) -> Result<(), Error> {
    let chain = scope_chain(
        &tenant.subscription_id,
        op.resource_group(),
        vault.map(|v| (v, None)),
    );
    match state
        .kf
        .authz
        .find_grant(caller, &tenant.id, &chain, Plane::Control, op.action())
        .await?
    {
        Some(granted) => {
            slot.update(|i| {
                i.authorization = Some(format!("{} ({})", granted.assignment_id, granted.role_name))
            });
            Ok(())
        }
        None => Err(Error::Forbidden {
            message: format!(
                "AuthorizationFailed: the client '{}' with object id '{}' does not have authorization to perform action '{}' over scope '{}'. Ask an Owner or User Access Administrator for a role that grants it.",
                caller.app_id,
                caller.object_id,
                op.action(),
                chain.last().cloned().unwrap_or_default()
            ),
            inner: Some("AuthorizationFailed"),
        }),
    }
}

/// A live vault of the tenant in resource group `rg`, if any.
async fn vault_in(
    state: &AppState,
    tenant: &Tenant,
    rg: &str,
    name: &str,
) -> Result<Option<Vault>, Error> {
    Ok(state
        .kf
        .vaults
        .lookup(name)
        .await?
        .map(|s| s.value)
        .filter(|v| {
            v.tenant_id == tenant.id
                && v.deletion.is_none()
                && v.resource_group.eq_ignore_ascii_case(rg)
        }))
}

fn vault_not_found(rg: &str, name: &str) -> Error {
    Error::not_found(
        "ResourceNotFound",
        format!(
            "The Resource 'Microsoft.KeyVault/vaults/{}' under resource group '{}' was not found.",
            names::printable(name),
            names::printable(rg)
        ),
    )
}

async fn run(
    state: &AppState,
    slot: &AuditSlot,
    caller: &Caller,
    tenant: &Tenant,
    op: MgmtOp,
    body: &[u8],
) -> Result<Response, Error> {
    let kf = &state.kf;
    let render = |v: &Vault| vault_json(state, v);
    use MgmtOp::*;
    // The vault an operation targets, for the scope chain of the check.
    let target = match &op {
        Get(rg, n) | Patch(rg, n) | Delete(rg, n) | Put(rg, n) => {
            vault_in(state, tenant, rg, n).await?
        }
        _ => None,
    };
    authorize(state, slot, caller, tenant, &op, target.as_ref()).await?;
    Ok(match op {
        ListBySubscription | ListByResourceGroup(_) => {
            let rg = op.resource_group().map(str::to_ascii_lowercase);
            let vaults: Vec<Value> = kf
                .vaults
                .list()
                .await?
                .iter()
                .filter(|v| {
                    v.tenant_id == tenant.id
                        && rg
                            .as_ref()
                            .is_none_or(|r| v.resource_group.eq_ignore_ascii_case(r))
                })
                .map(render)
                .collect();
            Json(json!({ "value": vaults, "nextLink": null })).into_response()
        }
        Get(rg, name) => {
            Json(render(&target.ok_or_else(|| vault_not_found(&rg, &name))?)).into_response()
        }
        Put(rg, name) => put_vault(state, tenant, &rg, &name, target, body).await?,
        Patch(rg, name) => {
            target.ok_or_else(|| vault_not_found(&rg, &name))?;
            let map = super::body::object(body)?;
            let changes = parse_changes(&map, map.get("properties"))?;
            let v = kf.vaults.update(&tenant.id, &name, changes).await?;
            kf.notify(
                &v,
                "VaultChanged",
                &v.name,
                json!({ "VaultName": v.name, "Change": "Updated" }),
            )
            .await;
            Json(render(&v)).into_response()
        }
        Delete(_, name) => match target {
            Some(_) => {
                let v = kf.vaults.delete(&tenant.id, &name).await?;
                kf.notify(
                    &v,
                    "VaultChanged",
                    &v.name,
                    json!({ "VaultName": v.name, "Change": "Deleted" }),
                )
                .await;
                StatusCode::OK.into_response()
            }
            None => StatusCode::NO_CONTENT.into_response(),
        },
        ListDeleted => {
            let deleted: Vec<Value> = kf
                .vaults
                .list_all()
                .await?
                .iter()
                .filter(|v| v.tenant_id == tenant.id && v.deletion.is_some())
                .map(deleted_json)
                .collect();
            Json(json!({ "value": deleted, "nextLink": null })).into_response()
        }
        GetDeleted(location, name) => Json(deleted_json(
            &deleted_in(kf, &tenant.id, &location, &name).await?,
        ))
        .into_response(),
        PurgeDeleted(location, name) => {
            deleted_in(kf, &tenant.id, &location, &name).await?;
            kf.purge_vault(&tenant.id, &name).await?;
            StatusCode::OK.into_response()
        }
        CheckName => {
            let map = super::body::object(body)?;
            let name = map
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::bad("The property 'name' is required."))?;
            let (available, reason, message) = kf.vaults.name_available(name).await?;
            let mut out = json!({ "nameAvailable": available });
            if let Some(r) = reason {
                out["reason"] = json!(r);
                out["message"] = json!(message);
            }
            Json(out).into_response()
        }
    })
}

async fn put_vault(
    state: &AppState,
    tenant: &Tenant,
    rg: &str,
    name: &str,
    existing: Option<Vault>,
    body: &[u8],
) -> Result<Response, Error> {
    let kf = &state.kf;
    let map = super::body::object(body)?;
    let props = map
        .get("properties")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            Error::bad("The property 'properties' is required and must be an object.")
        })?;
    let location = map
        .get("location")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::bad("The property 'location' is required."))?;
    if location.is_empty()
        || location.len() > 64
        || !location
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b' ' || b == b'-')
    {
        return Err(Error::bad(
            "The property 'location' must be a region name such as 'westeurope': 1 to 64 letters, digits, spaces or hyphens.",
        ));
    }
    match props.get("tenantId").and_then(Value::as_str) {
        Some(t) if t.eq_ignore_ascii_case(&tenant.id) => {}
        Some(_) => {
            return Err(Error::bad(format!(
                "properties.tenantId must be the subscription's tenant, {}.",
                tenant.id
            )));
        }
        None => {
            return Err(Error::bad(
                "The property 'properties.tenantId' is required.",
            ));
        }
    }
    if props.get("sku").and_then(Value::as_object).is_none() {
        return Err(Error::bad(
            "The property 'properties.sku' is required ({\"family\": \"A\", \"name\": \"standard\"}).",
        ));
    }
    let changes = parse_changes(&map, map.get("properties"))?;
    changes.check()?;
    let create_mode = props
        .get("createMode")
        .and_then(Value::as_str)
        .unwrap_or("default");
    if create_mode.eq_ignore_ascii_case("recover") {
        let v = kf.vaults.recover(&tenant.id, rg, name).await?;
        kf.notify(
            &v,
            "VaultChanged",
            &v.name,
            json!({ "VaultName": v.name, "Change": "Recovered" }),
        )
        .await;
        return Ok((StatusCode::OK, Json(vault_json(state, &v))).into_response());
    }
    if let Some(v) = existing {
        if !v.location.eq_ignore_ascii_case(location) {
            return Err(Error::bad(format!(
                "A vault's location cannot change (it is '{}').",
                v.location
            )));
        }
        let v = kf.vaults.update(&tenant.id, name, changes).await?;
        return Ok((StatusCode::OK, Json(vault_json(state, &v))).into_response());
    }
    // Defaults of a new vault: 90-day retention, purge protection on.
    let mut new_changes = changes;
    let retention = new_changes.retention_days.unwrap_or(DEFAULT_RETENTION_DAYS);
    let purge_protection = new_changes.purge_protection.unwrap_or(true);
    let v = kf
        .vaults
        .create(NewVault {
            name: name.to_owned(),
            tenant_id: tenant.id.clone(),
            subscription_id: tenant.subscription_id.clone(),
            resource_group: rg.to_owned(),
            location: location.to_owned(),
            retention_days: retention,
            purge_protection,
            tags: new_changes.tags.take().unwrap_or_default(),
        })
        .await?;
    // Settings beyond those of creation (network access) apply at once.
    let v = if new_changes.public_network_access.is_some() || new_changes.network_acls.is_some() {
        kf.vaults
            .update(
                &tenant.id,
                name,
                VaultChanges {
                    retention_days: None,
                    purge_protection: None,
                    ..new_changes
                },
            )
            .await?
    } else {
        v
    };
    Ok((StatusCode::CREATED, Json(vault_json(state, &v))).into_response())
}

fn parse_changes(map: &Map<String, Value>, props: Option<&Value>) -> Result<VaultChanges, Error> {
    let empty = Map::new();
    let props = match props {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(p)) => p,
        Some(_) => return Err(Error::bad("'properties' must be an object.")),
    };
    let flag = |k: &str| -> Result<Option<bool>, Error> {
        match props.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(Error::bad(format!("properties.{k} must be true or false."))),
        }
    };
    let tags: Option<Tags> = match map.get("tags") {
        None | Some(Value::Null) => None,
        Some(Value::Object(t)) => Some(
            t.iter()
                .map(|(k, v)| {
                    v.as_str()
                        .map(|s| (k.clone(), s.to_owned()))
                        .ok_or_else(|| Error::bad("Tag values must be strings."))
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(_) => return Err(Error::bad("'tags' must be an object of strings.")),
    };
    // Settings Keyfort cannot honour are refused, never dropped in silence.
    for k in [
        "enabledForDeployment",
        "enabledForDiskEncryption",
        "enabledForTemplateDeployment",
    ] {
        if flag(k)? == Some(true) {
            return Err(Error::bad(format!(
                "properties.{k} cannot be true: Keyfort has no Azure compute platform to hand secrets to."
            )));
        }
    }
    if let Some(sku) = props
        .get("sku")
        .and_then(|s| s.get("name"))
        .and_then(Value::as_str)
        && !sku.eq_ignore_ascii_case("standard")
    {
        return Err(Error::bad(format!(
            "properties.sku.name '{}' is not available: Keyfort keeps keys in software, not in an HSM; use 'standard'.",
            names::printable(sku)
        )));
    }
    let retention_days = match props.get("softDeleteRetentionInDays") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| {
            Error::bad("properties.softDeleteRetentionInDays must be an integer.")
        })?),
    };
    Ok(VaultChanges {
        tags,
        retention_days,
        purge_protection: flag("enablePurgeProtection")?,
        enable_soft_delete: flag("enableSoftDelete")?,
        enable_rbac_authorization: flag("enableRbacAuthorization")?,
        access_policies: props
            .get("accessPolicies")
            .and_then(Value::as_array)
            .map_or(0, Vec::len),
        // Case-insensitive, as ARM is; stored in its canonical form.
        public_network_access: props
            .get("publicNetworkAccess")
            .and_then(Value::as_str)
            .map(|p| match p.to_ascii_lowercase().as_str() {
                "enabled" => "Enabled".to_owned(),
                "disabled" => "Disabled".to_owned(),
                _ => p.to_owned(),
            }),
        network_acls: props.get("networkAcls").filter(|v| !v.is_null()).cloned(),
    })
}

/// A soft-deleted vault, addressed as ARM does: by its location and name.
async fn deleted_in(
    kf: &keyfort_core::Keyfort,
    tenant_id: &str,
    location: &str,
    name: &str,
) -> Result<Vault, Error> {
    let v = kf.vaults.get_deleted(tenant_id, name).await?;
    if !v.location.eq_ignore_ascii_case(location) {
        return Err(Error::not_found(
            "ResourceNotFound",
            format!(
                "No deleted vault named '{}' in location '{}'.",
                names::printable(name),
                names::printable(location)
            ),
        ));
    }
    Ok(v)
}

fn vault_json(state: &AppState, v: &Vault) -> Value {
    let mut props = json!({
        "tenantId": v.tenant_id,
        "sku": { "family": "A", "name": "standard" },
        "accessPolicies": [],
        "vaultUri": format!("{}/", state.site.vault_url(&v.name)),
        "enabledForDeployment": false,
        "enabledForDiskEncryption": false,
        "enabledForTemplateDeployment": false,
        "enableSoftDelete": true,
        "softDeleteRetentionInDays": v.retention_days,
        "enableRbacAuthorization": true,
        "provisioningState": "Succeeded",
        "publicNetworkAccess": v.public_network_access,
    });
    if v.purge_protection {
        props["enablePurgeProtection"] = json!(true);
    }
    if let Some(acls) = &v.network_acls {
        props["networkAcls"] = acls.clone();
    }
    json!({
        "id": v.arm_id(),
        "name": v.name,
        "type": "Microsoft.KeyVault/vaults",
        "location": v.location,
        "tags": v.tags,
        "properties": props,
    })
}

fn deleted_json(v: &Vault) -> Value {
    let d = v.deletion.unwrap_or(keyfort_core::model::Deletion {
        deleted_date: 0,
        scheduled_purge_date: 0,
    });
    json!({
        "id": format!("/subscriptions/{}/providers/Microsoft.KeyVault/locations/{}/deletedVaults/{}", v.subscription_id, v.location, v.name),
        "name": v.name,
        "type": "Microsoft.KeyVault/deletedVaults",
        "properties": {
            "vaultId": v.arm_id(),
            "location": v.location,
            "deletionDate": keyfort_core::clock::rfc3339(d.deleted_date),
            "scheduledPurgeDate": keyfort_core::clock::rfc3339(d.scheduled_purge_date),
            "tags": v.tags,
            "purgeProtectionEnabled": v.purge_protection,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let p = |m: Method, path: &str| MgmtOp::parse(&m, &path.split('/').collect::<Vec<_>>());
        assert_eq!(
            p(Method::GET, "providers/Microsoft.KeyVault/vaults"),
            Some(MgmtOp::ListBySubscription)
        );
        assert_eq!(
            p(
                Method::PUT,
                "resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/app"
            ),
            Some(MgmtOp::Put("rg1".into(), "app".into()))
        );
        assert_eq!(
            p(
                Method::POST,
                "providers/Microsoft.KeyVault/locations/west/deletedVaults/app/purge"
            ),
            Some(MgmtOp::PurgeDeleted("west".into(), "app".into()))
        );
        assert_eq!(
            p(
                Method::POST,
                "resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/app"
            ),
            None
        );
    }
}
