//! Keyfort's directory API on the management host, for the CLI: tenants
//! (server operators only), and the service principals and users of a tenant
//! (its Owners and User Access Administrators, who hold the matching
//! `Microsoft.Directory/...` actions). Secrets and enrollment URIs appear in
//! a response once, at creation.
//!
//! - `GET|POST /keyfort/tenants`, `DELETE /keyfort/tenants/{tenant}`
//! - `GET|POST /keyfort/tenants/{tenant}/principals`, `DELETE .../principals/{id}`,
//!   `POST .../principals/{id}/credentials` (`{"type": "secret"}` or `{"type": "certificate", "certificate": PEM}`)
//! - `GET|POST /keyfort/tenants/{tenant}/users`, `DELETE .../users/{id}`, `POST .../users/{id}/reset-totp`
//! - `GET /keyfort/audit/verify` (operators): the server verifies its own audit trail
//! - `GET /keyfort/audit/records?from=&to=&vault=&operation=&caller=&result=&limit=`: audit query
//! - `GET /keyfort/advisor[?vault=NAME]`: best-practice findings for the caller's tenant
//! - `GET|POST /keyfort/vaults/{vault}/eventSubscriptions`, `DELETE .../{id}`, `GET /keyfort/vaults/{vault}/deadLetters`
//! - `GET|POST /keyfort/tenants/{tenant}/alertRules`, `DELETE .../alertRules/{id}`, `GET /keyfort/tenants/{tenant}/alertHistory`

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use keyfort_core::authz::{Plane, scope_chain};
use keyfort_core::identity::{Caller, NewUser};
use keyfort_core::model::{Principal, Tenant, User};
use keyfort_core::{Error, names};
use serde_json::{Map, Value, json};

use super::AppState;
use super::audit::AuditSlot;
use super::error::ApiError;
use super::request::authenticate_management;

/// Which applications called each vault, from the last records of the audit log.
fn recent_callers(
    audit_file: &std::path::Path,
    audit_off_host: bool,
) -> keyfort_core::advisor::Observations {
    use std::collections::{BTreeMap, BTreeSet};
    let text = std::fs::read_to_string(audit_file).unwrap_or_default();
    let mut by_vault: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines().rev().take(20_000) {
        let Ok(r) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if let (Some(v), Some(app)) = (r["vault"].as_str(), r["identity"]["appId"].as_str())
            && r["httpStatus"].as_u64().is_some_and(|s| s < 400)
            && !app.is_empty()
        {
            by_vault
                .entry(v.to_owned())
                .or_default()
                .insert(app.to_owned());
        }
    }
    keyfort_core::advisor::Observations {
        audit_off_host,
        callers_by_vault: by_vault
            .into_iter()
            .map(|(k, v)| (k, v.into_iter().collect()))
            .collect(),
    }
}

fn tenant_json(t: &Tenant) -> Value {
    json!({ "id": t.id, "displayName": t.display_name, "subscriptionId": t.subscription_id, "created": t.created })
}

fn principal_json(p: &Principal) -> Value {
    let mut credentials: Vec<Value> = p
        .secrets
        .iter()
        .map(|s| json!({ "keyId": s.key_id, "type": "secret", "hint": s.hint, "created": s.created }))
        .collect();
    credentials.extend(p.certificates.iter().map(
        |c| json!({ "keyId": c.key_id, "type": "certificate", "x5t": c.x5t, "created": c.created }),
    ));
    json!({
        "objectId": p.object_id,
        "appId": p.app_id,
        "displayName": p.display_name,
        "tenantId": p.tenant_id,
        "credentials": credentials,
        "created": p.created,
    })
}

fn user_json(u: &User) -> Value {
    json!({
        "objectId": u.object_id,
        "username": u.username,
        "displayName": u.display_name,
        "tenantId": u.tenant_id,
        "mfaEnrolled": u.totp_secret.is_some(),
        "created": u.created,
    })
}

fn field<'a>(m: &'a Map<String, Value>, name: &str) -> Result<&'a str, Error> {
    m.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::bad(format!("The property '{name}' is required (a string).")))
}

/// Tenant-level checks: the caller's own tenant, and a role granting `action`.
async fn authorize_in_tenant(
    state: &AppState,
    slot: &AuditSlot,
    caller: &Caller,
    tenant_id: &str,
    action: &str,
) -> Result<Tenant, Error> {
    let denied = || Error::Forbidden {
        message: format!(
            "The caller may not perform '{action}' in tenant {}.",
            names::printable(tenant_id)
        ),
        inner: Some("AuthorizationFailed"),
    };
    if caller.tenant_id != tenant_id {
        return Err(denied());
    }
    let tenant = state
        .kf
        .identity
        .tenant(tenant_id)
        .await?
        .ok_or_else(denied)?;
    let chain = scope_chain(&tenant.subscription_id, None, None);
    let grant = state
        .kf
        .authz
        .find_grant(caller, tenant_id, &chain, Plane::Control, action)
        .await?
        .ok_or_else(denied)?;
    slot.update(|i| {
        i.authorization = Some(format!("{} ({})", grant.assignment_id, grant.role_name))
    });
    Ok(tenant)
}

async fn require_operator(
    state: &AppState,
    slot: &AuditSlot,
    caller: &Caller,
) -> Result<(), Error> {
    if state.kf.identity.is_operator(caller).await? {
        slot.update(|i| i.authorization = Some("server operator".into()));
        Ok(())
    } else {
        Err(Error::Forbidden {
            message: "Only server operators may list, create or delete tenants.".into(),
            inner: Some("AuthorizationFailed"),
        })
    }
}

/// `/keyfort/...` on the management host.
pub async fn directory(
    State(state): State<Arc<AppState>>,
    Extension(slot): Extension<AuditSlot>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let caller = match authenticate_management(&state, &headers).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    slot.set_caller(&caller);
    match run(
        &state,
        &slot,
        &caller,
        &method,
        uri.path(),
        uri.query(),
        &body,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => ApiError(e).into_response(),
    }
}

async fn run(
    state: &AppState,
    slot: &AuditSlot,
    caller: &Caller,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Result<Response, Error> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let id = &state.kf.identity;
    let op = |name: &'static str| slot.update(|i| i.operation = Some(name));
    let created = |v: Value| (StatusCode::CREATED, Json(v)).into_response();
    Ok(match (method.as_str(), &segs[1..]) {
        ("GET" | "POST", ["vaults", v, "eventSubscriptions"])
        | ("DELETE", ["vaults", v, "eventSubscriptions", _])
        | ("GET", ["vaults", v, "deadLetters"]) => {
            let (name, action) = match (method.as_str(), segs.len()) {
                ("GET", _) => (
                    "EventSubscriptionList",
                    "Microsoft.EventGrid/eventSubscriptions/read",
                ),
                ("POST", _) => (
                    "EventSubscriptionCreate",
                    "Microsoft.EventGrid/eventSubscriptions/write",
                ),
                _ => (
                    "EventSubscriptionDelete",
                    "Microsoft.EventGrid/eventSubscriptions/delete",
                ),
            };
            op(name);
            let vault = state
                .kf
                .vaults
                .get(v)
                .await?
                .filter(|x| x.tenant_id == caller.tenant_id)
                .ok_or_else(|| {
                    Error::not_found(
                        "VaultNotFound",
                        format!(
                            "Vault '{}' was not found in your tenant.",
                            names::printable(v)
                        ),
                    )
                })?;
            let chain = scope_chain(
                &vault.subscription_id,
                Some(&vault.resource_group),
                Some((&vault, None)),
            );
            let grant = state
                .kf
                .authz
                .find_grant(caller, &caller.tenant_id, &chain, Plane::Control, action)
                .await?
                .ok_or_else(|| Error::Forbidden {
                    message: format!("You may not perform '{action}' on vault '{}'.", vault.name),
                    inner: Some("AuthorizationFailed"),
                })?;
            slot.update(|i| {
                i.vault = Some(vault.name.clone());
                i.resource_id = Some(vault.arm_id());
                i.authorization = Some(format!("{} ({})", grant.assignment_id, grant.role_name));
            });
            match (method.as_str(), &segs[1..]) {
                ("GET", [_, _, "deadLetters"]) => {
                    Json(json!({ "value": state.kf.dead_letters(&vault).await? })).into_response()
                }
                ("GET", _) => Json(json!({ "value": state.kf.event_subscriptions(&vault).await? }))
                    .into_response(),
                ("POST", _) => {
                    let m = super::body::object_or_empty(body)?;
                    let types = m
                        .get("eventTypes")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_owned)
                                .collect()
                        })
                        .unwrap_or_default();
                    created(json!(
                        state
                            .kf
                            .create_event_subscription(&vault, field(&m, "endpoint")?, types)
                            .await?
                    ))
                }
                (_, [_, _, _, id]) => {
                    state.kf.delete_event_subscription(&vault, id).await?;
                    Json(json!({ "deleted": id })).into_response()
                }
                _ => return Err(Error::not_found("NotFound", "No such operation.")),
            }
        }
        ("GET", ["tenants", t, "alertRules"]) => {
            op("AlertRuleList");
            authorize_in_tenant(state, slot, caller, t, "Microsoft.Insights/alertRules/read")
                .await?;
            Json(json!({ "value": *state.kf.alerts.rules(t).await? })).into_response()
        }
        ("POST", ["tenants", t, "alertRules"]) => {
            op("AlertRuleCreate");
            authorize_in_tenant(
                state,
                slot,
                caller,
                t,
                "Microsoft.Insights/alertRules/write",
            )
            .await?;
            let mut rule: keyfort_core::alerts::AlertRule = serde_json::from_slice(body)
                .map_err(|e| Error::bad(format!("The alert rule is not valid: {e}.")))?;
            rule.tenant_id = t.to_string();
            rule.id = String::new();
            created(json!(state.kf.alerts.put_rule(rule).await?))
        }
        ("DELETE", ["tenants", t, "alertRules", id]) => {
            op("AlertRuleDelete");
            authorize_in_tenant(
                state,
                slot,
                caller,
                t,
                "Microsoft.Insights/alertRules/delete",
            )
            .await?;
            state.kf.alerts.delete_rule(t, id).await?;
            Json(json!({ "deleted": id })).into_response()
        }
        ("GET", ["tenants", t, "alertHistory"]) => {
            op("AlertHistory");
            authorize_in_tenant(state, slot, caller, t, "Microsoft.Insights/alertRules/read")
                .await?;
            Json(json!({ "value": state.kf.alerts.history(t).await? })).into_response()
        }
        ("GET", ["advisor"]) => {
            op("Advisor");
            authorize_in_tenant(
                state,
                slot,
                caller,
                &caller.tenant_id,
                "Microsoft.KeyVault/vaults/read",
            )
            .await?;
            let vault = super::request::query_param_decoded(query, "vault");
            let key_backup_days = match super::request::query_param(query, "keyBackupDays") {
                None => keyfort_core::advisor::KEY_BACKUP_DAYS,
                Some(d) => d
                    .parse::<i64>()
                    .ok()
                    .filter(|d| (0..=3650).contains(d))
                    .ok_or_else(|| {
                        Error::bad("keyBackupDays must be a whole number of days from 0 to 3650.")
                    })?,
            };
            let seen = recent_callers(&state.audit_file, state.audit_off_host);
            let findings = state
                .kf
                .advise(&caller.tenant_id, vault.as_deref(), &seen, key_backup_days)
                .await?;
            Json(json!({ "value": findings })).into_response()
        }
        ("GET", ["audit", "records"]) => {
            op("AuditQuery");
            // Operators see every record; others the records of their tenant,
            // with a role that may read logs.
            let operator = state.kf.identity.is_operator(caller).await?;
            if !operator {
                authorize_in_tenant(
                    state,
                    slot,
                    caller,
                    &caller.tenant_id,
                    "Microsoft.Insights/logs/read",
                )
                .await?;
            } else {
                slot.update(|i| i.authorization = Some("server operator".into()));
            }
            let param = |k: &str| super::request::query_param_decoded(query, k);
            let q = keyfort_core::audit::Query {
                from: param("from"),
                to: param("to"),
                vault: param("vault"),
                operation: param("operation"),
                caller: param("caller"),
                result: param("result"),
                limit: param("limit")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(100)
                    .min(10_000),
            };
            let visible = |r: &Value| {
                operator
                    || r["resourceTenantId"].as_str() == Some(caller.tenant_id.as_str())
                    || r["identity"]["tenantId"].as_str() == Some(caller.tenant_id.as_str())
            };
            Json(json!({ "value": keyfort_core::audit::query(&state.audit_file, &q, visible) }))
                .into_response()
        }
        ("GET", ["audit", "verify"]) => {
            op("AuditVerify");
            require_operator(state, slot, caller).await?;
            // The last record this process wrote (read before the files, so
            // every record up to it must be there), or the last checkpointed
            // head if that is further: a cut after a restart shows too.
            let written = state.auditor.head();
            let head = match state.kf.audit_head().await? {
                Some(checkpointed) if checkpointed.0 > written.0 => checkpointed,
                _ => written,
            };
            let files = keyfort_core::audit::log_files(&state.audit_file);
            let check = |sig: &str, seq: u64, hash: &str| id.verify_checkpoint(sig, seq, hash);
            Json(keyfort_core::audit::verify(
                &files,
                Some(&check),
                Some(head),
            ))
            .into_response()
        }
        ("GET", ["tenants"]) => {
            op("TenantList");
            require_operator(state, slot, caller).await?;
            Json(
                json!({ "value": id.tenants().await?.iter().map(tenant_json).collect::<Vec<_>>() }),
            )
            .into_response()
        }
        ("POST", ["tenants"]) => {
            op("TenantCreate");
            require_operator(state, slot, caller).await?;
            let m = super::body::object_or_empty(body)?;
            let (tenant, admin, secret) = state
                .kf
                .create_tenant_with_admin(field(&m, "displayName")?)
                .await?;
            let mut out = tenant_json(&tenant);
            out["admin"] = principal_json(&admin);
            out["admin"]["clientSecret"] = json!(secret);
            created(out)
        }
        ("DELETE", ["tenants", t]) => {
            op("TenantDelete");
            require_operator(state, slot, caller).await?;
            if *t == caller.tenant_id {
                return Err(Error::bad("An operator cannot delete its own tenant."));
            }
            Json(tenant_json(&state.kf.delete_tenant(t).await?)).into_response()
        }
        ("GET", ["tenants", t, "principals"]) => {
            op("PrincipalList");
            authorize_in_tenant(
                state,
                slot,
                caller,
                t,
                "Microsoft.Directory/servicePrincipals/read",
            )
            .await?;
            Json(json!({ "value": id.principals(t).await?.iter().map(principal_json).collect::<Vec<_>>() })).into_response()
        }
        ("POST", ["tenants", t, "principals"]) => {
            op("PrincipalCreate");
            authorize_in_tenant(
                state,
                slot,
                caller,
                t,
                "Microsoft.Directory/servicePrincipals/write",
            )
            .await?;
            let m = super::body::object_or_empty(body)?;
            let (p, secret) = id
                .create_service_principal(t, field(&m, "displayName")?)
                .await?;
            let mut out = principal_json(&p);
            out["clientSecret"] = json!(secret);
            created(out)
        }
        ("DELETE", ["tenants", t, "principals", p]) => {
            op("PrincipalDelete");
            authorize_in_tenant(
                state,
                slot,
                caller,
                t,
                "Microsoft.Directory/servicePrincipals/delete",
            )
            .await?;
            if p.eq_ignore_ascii_case(&caller.object_id) || p.eq_ignore_ascii_case(&caller.app_id) {
                return Err(Error::bad("A principal cannot delete itself."));
            }
            id.check_may_manage(caller, t, p).await?;
            Json(principal_json(&id.delete_principal(t, p).await?)).into_response()
        }
        ("POST", ["tenants", t, "principals", p, "credentials"]) => {
            op("PrincipalAddCredential");
            authorize_in_tenant(
                state,
                slot,
                caller,
                t,
                "Microsoft.Directory/servicePrincipals/write",
            )
            .await?;
            id.check_may_manage(caller, t, p).await?;
            let m = super::body::object_or_empty(body)?;
            match m.get("type").and_then(Value::as_str).unwrap_or("secret") {
                "secret" => {
                    let (key_id, secret) = id.add_client_secret(t, p).await?;
                    created(json!({ "keyId": key_id, "type": "secret", "clientSecret": secret }))
                }
                "certificate" => {
                    let (key_id, x5t) = id.add_certificate(t, p, field(&m, "certificate")?).await?;
                    created(json!({ "keyId": key_id, "type": "certificate", "x5t": x5t }))
                }
                _ => return Err(Error::bad("'type' must be 'secret' or 'certificate'.")),
            }
        }
        ("GET", ["tenants", t, "users"]) => {
            op("UserList");
            authorize_in_tenant(state, slot, caller, t, "Microsoft.Directory/users/read").await?;
            Json(json!({ "value": id.users(t).await?.iter().map(user_json).collect::<Vec<_>>() }))
                .into_response()
        }
        ("POST", ["tenants", t, "users"]) => {
            op("UserCreate");
            authorize_in_tenant(state, slot, caller, t, "Microsoft.Directory/users/write").await?;
            let m = super::body::object_or_empty(body)?;
            let username = field(&m, "username")?;
            let (user, uri) = id
                .create_user(NewUser {
                    tenant_id: t,
                    username,
                    display_name: m
                        .get("displayName")
                        .and_then(Value::as_str)
                        .unwrap_or(username),
                    password: field(&m, "password")?,
                })
                .await?;
            let mut out = user_json(&user);
            out["otpauthUri"] = json!(uri);
            created(out)
        }
        ("DELETE", ["tenants", t, "users", u]) => {
            op("UserDelete");
            authorize_in_tenant(state, slot, caller, t, "Microsoft.Directory/users/delete").await?;
            id.check_may_manage(caller, t, u).await?;
            Json(user_json(&id.delete_user(t, u).await?)).into_response()
        }
        ("POST", ["tenants", t, "users", u, "reset-totp"]) => {
            op("UserResetTotp");
            authorize_in_tenant(state, slot, caller, t, "Microsoft.Directory/users/write").await?;
            id.check_may_manage(caller, t, u).await?;
            Json(json!({ "otpauthUri": id.reset_totp(t, u).await? })).into_response()
        }
        _ => {
            op("Unknown");
            return Err(Error::not_found(
                "NotFound",
                format!(
                    "{method} {} is not an operation of the directory API.",
                    names::printable(path)
                ),
            ));
        }
    })
}
