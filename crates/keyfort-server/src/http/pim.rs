//! Just-in-time access over the management host, shaped after ARM's PIM
//! resources (where practical):
//!
//! - `{scope}/providers/Microsoft.Authorization/roleManagementPolicies/{roleId}`: GET, PUT
//!   (`approvers`, `maximumDuration` (ISO 8601), `requireMfa`, `requireJustification`, `requireApproval`);
//! - `{scope}/providers/Microsoft.Authorization/roleEligibilityScheduleRequests/{name}`: PUT with
//!   `requestType` `AdminAssign` or `AdminRemove`; `.../roleEligibilitySchedules`: GET;
//! - `{scope}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests[/{name}]`: PUT
//!   (`SelfActivate`), GET; `.../{id}/cancel` and `.../{id}/revoke`: POST;
//! - `/providers/Microsoft.Authorization/roleAssignmentApprovals/{id}/stages/{id}`: PUT
//!   (`reviewResult` `Approve` or `Deny`).
//!
//! `{scope}` is `/subscriptions/{sub}[/resourceGroups/{rg}[/providers/Microsoft.KeyVault/vaults/{name}[/secrets/{secret}]]]`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, extract::State};
use keyfort_core::authz::{Plane, role_guid, scope_chain};
use keyfort_core::identity::Caller;
use keyfort_core::model::{ActivationRequest, Eligibility, PimPolicy, RequestStatus};
use keyfort_core::pim::ActivationAsk;
use keyfort_core::{Error, names};
use serde_json::{Map, Value, json};

use super::AppState;
use super::audit::AuditSlot;
use super::error::ApiError;
use super::request::authenticate_management;

/// Parses an ISO 8601 duration such as `PT2H`, `PT90M`, `P1D`, `PT1H30M`.
pub fn parse_duration(s: &str) -> Option<i64> {
    let rest = s.strip_prefix('P')?;
    let (days, time) = match rest.split_once('T') {
        Some((d, t)) => (d, t),
        None => (rest, ""),
    };
    let mut total = 0i64;
    let mut take = |part: &str, units: &[(char, i64)]| -> Option<()> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() {
                num.push(c);
            } else {
                let (_, mult) = units.iter().find(|(u, _)| *u == c)?;
                total += num.parse::<i64>().ok()? * mult;
                num.clear();
            }
        }
        num.is_empty().then_some(())
    };
    take(days, &[('D', 86_400)])?;
    take(time, &[('H', 3600), ('M', 60), ('S', 1)])?;
    (total > 0).then_some(total)
}

fn iso(seconds: i64) -> String {
    format!("PT{}M", seconds / 60)
}

/// Splits `{scope}/providers/Microsoft.Authorization/{rest}` at the provider.
fn split_authorization(segs: &[&str]) -> Option<(Vec<String>, Vec<String>)> {
    let i = segs.windows(2).rposition(|w| {
        w[0].eq_ignore_ascii_case("providers")
            && w[1].eq_ignore_ascii_case("Microsoft.Authorization")
    })?;
    Some((
        segs[..i].iter().map(|s| s.to_string()).collect(),
        segs[i + 2..].iter().map(|s| s.to_string()).collect(),
    ))
}

/// The internal scope chain of an ARM scope in the caller's tenant.
async fn chain_of(
    state: &AppState,
    caller: &Caller,
    scope: &[String],
) -> Result<Vec<String>, Error> {
    let bad = || {
        Error::bad(
            "The scope must be /subscriptions/{sub}[/resourceGroups/{rg}[/providers/Microsoft.KeyVault/vaults/{name}[/secrets/{secret}]]].",
        )
    };
    let lower: Vec<String> = scope.iter().map(|s| s.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    let sub = match l.as_slice() {
        ["subscriptions", sub, ..] => sub.to_string(),
        _ => return Err(bad()),
    };
    let tenant = state.kf.identity.tenant_by_subscription(&sub).await?;
    let tenant = tenant
        .filter(|t| t.id == caller.tenant_id)
        .ok_or_else(|| Error::Forbidden {
            message: "The scope is not in your tenant's subscription.".into(),
            inner: Some("AuthorizationFailed"),
        })?;
    Ok(match l.as_slice() {
        [_, _] => scope_chain(&tenant.subscription_id, None, None),
        [_, _, "resourcegroups", _] => scope_chain(&tenant.subscription_id, Some(&scope[3]), None),
        [
            _,
            _,
            "resourcegroups",
            _,
            "providers",
            "microsoft.keyvault",
            "vaults",
            name,
            rest @ ..,
        ] => {
            let vault = state
                .kf
                .vaults
                .get(name)
                .await?
                .filter(|v| {
                    v.tenant_id == tenant.id && v.resource_group.eq_ignore_ascii_case(&scope[3])
                })
                .ok_or_else(|| {
                    Error::not_found(
                        "ResourceNotFound",
                        format!(
                            "Vault '{}' was not found in that resource group.",
                            names::printable(name)
                        ),
                    )
                })?;
            match rest {
                [] => scope_chain(
                    &tenant.subscription_id,
                    Some(&vault.resource_group),
                    Some((&vault, None)),
                ),
                ["secrets" | "keys" | "certificates", obj] => {
                    let kind = rest[0];
                    names::check_object_name("object", obj)?;
                    scope_chain(
                        &tenant.subscription_id,
                        Some(&vault.resource_group),
                        Some((&vault, Some((kind, obj)))),
                    )
                }
                _ => return Err(bad()),
            }
        }
        _ => return Err(bad()),
    })
}

/// A grant for `action` over `chain`; the granting role's condition (Key
/// Vault Data Access Administrator's) must also allow `role`.
async fn require(
    state: &AppState,
    slot: &AuditSlot,
    caller: &Caller,
    chain: &[String],
    action: &str,
    role: &str,
) -> Result<(), Error> {
    let grant = state
        .kf
        .authz
        .find_grant(caller, &caller.tenant_id, chain, Plane::Control, action)
        .await?
        .ok_or_else(|| Error::Forbidden {
            message: format!("You may not perform '{action}' at this scope."),
            inner: Some("AuthorizationFailed"),
        })?;
    slot.update(|i| {
        i.authorization = Some(format!("{} ({})", grant.assignment_id, grant.role_name))
    });
    state
        .kf
        .authz
        .check_condition(&caller.tenant_id, &grant, role)
        .await?;
    Ok(())
}

fn text<'a>(p: &'a Map<String, Value>, k: &str) -> &'a str {
    p.get(k).and_then(Value::as_str).unwrap_or_default()
}

fn status_name(s: RequestStatus, now: i64, r: &ActivationRequest) -> &'static str {
    match s {
        RequestStatus::Provisioned if r.end.is_some_and(|e| e <= now) => "Expired",
        RequestStatus::Provisioned => "Provisioned",
        RequestStatus::PendingApproval => "PendingApproval",
        RequestStatus::Denied => "Denied",
        RequestStatus::Canceled => "Canceled",
        RequestStatus::Revoked => "Revoked",
    }
}

fn request_json(r: &ActivationRequest, now: i64) -> Value {
    let time = |t: Option<i64>| t.map(keyfort_core::clock::rfc3339);
    json!({
        "id": format!("/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{}", r.id),
        "name": r.id,
        "type": "Microsoft.Authorization/roleAssignmentScheduleRequests",
        "properties": {
            "principalId": r.principal_id,
            "roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{}", r.role_definition_id),
            "requestType": "SelfActivate",
            "status": status_name(r.status, now, r),
            "approvalId": (r.status == RequestStatus::PendingApproval).then(|| r.id.clone()),
            "justification": r.justification,
            "scope": r.scope,
            "createdOn": keyfort_core::clock::rfc3339(r.created),
            "decidedBy": r.decided_by,
            "scheduleInfo": { "startDateTime": time(r.start), "expiration": { "type": "AfterDuration", "duration": iso(r.duration_secs), "endDateTime": time(r.end) } },
        }
    })
}

fn eligibility_json(e: &Eligibility) -> Value {
    json!({
        "id": format!("/providers/Microsoft.Authorization/roleEligibilitySchedules/{}", e.id),
        "name": e.id,
        "type": "Microsoft.Authorization/roleEligibilitySchedules",
        "properties": {
            "principalId": e.principal_id,
            "roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{}", e.role_definition_id),
            "scope": e.scope,
            "status": "Provisioned",
            "createdOn": keyfort_core::clock::rfc3339(e.created),
        }
    })
}

fn policy_json(p: &PimPolicy) -> Value {
    json!({
        "name": p.role_definition_id,
        "type": "Microsoft.Authorization/roleManagementPolicies",
        "properties": {
            "scope": p.scope,
            "roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{}", p.role_definition_id),
            "approvers": p.approvers,
            "maximumDuration": iso(p.max_duration_secs),
            "requireMfa": p.require_mfa,
            "requireJustification": p.require_justification,
            "requireApproval": p.require_approval,
        }
    })
}

/// Handles every PIM path (under `/subscriptions/...` and `/providers/...`).
pub async fn pim(
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
    match run(&state, &slot, &caller, &method, uri.path(), &body).await {
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
    body: &[u8],
) -> Result<Response, Error> {
    let kf = &state.kf;
    let now = kf.clock.now();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (scope, rest) = split_authorization(&segs)
        .ok_or_else(|| Error::not_found("NotFound", "Not a PIM path."))?;
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let op = |name: &'static str| slot.update(|i| i.operation = Some(name));
    let tenant = caller.tenant_id.clone();
    // Approvals have no scope in their path.
    if let ["roleAssignmentApprovals", id, "stages", _] = rest.as_slice() {
        op("PimApprovalDecision");
        if *method != Method::PUT {
            return Err(Error::not_found(
                "NotFound",
                "Use PUT to record an approval decision.",
            ));
        }
        let p = super::body::properties(body)?;
        let approve = match text(&p, "reviewResult") {
            "Approve" => true,
            "Deny" => false,
            _ => return Err(Error::bad("reviewResult must be 'Approve' or 'Deny'.")),
        };
        let decided = kf
            .decide(caller, id, approve, text(&p, "justification"))
            .await?;
        return Ok(Json(request_json(&decided, now)).into_response());
    }
    let chain = chain_of(state, caller, &scope).await?;
    let target_scope = chain.last().cloned().unwrap_or_default();
    Ok(match (method.as_str(), rest.as_slice()) {
        ("GET", ["roleManagementPolicies", role]) => {
            op("PimPolicyGet");
            Json(policy_json(
                &kf.pim_policy(&tenant, role, &target_scope).await?,
            ))
            .into_response()
        }
        ("PUT", ["roleManagementPolicies", role]) => {
            op("PimPolicySet");
            require(
                state,
                slot,
                caller,
                &chain,
                "Microsoft.Authorization/roleAssignments/write",
                role,
            )
            .await?;
            let p = super::body::properties(body)?;
            let mut policy = kf.pim_policy(&tenant, role, &target_scope).await?;
            if let Some(list) = p.get("approvers").and_then(Value::as_array) {
                policy.approvers = list
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect();
            }
            if let Some(d) = p.get("maximumDuration").and_then(Value::as_str) {
                policy.max_duration_secs = parse_duration(d).ok_or_else(|| {
                    Error::bad("maximumDuration must be an ISO 8601 duration such as PT8H.")
                })?;
            }
            for (field, slot_ref) in [
                ("requireMfa", &mut policy.require_mfa),
                ("requireJustification", &mut policy.require_justification),
                ("requireApproval", &mut policy.require_approval),
            ] {
                if let Some(b) = p.get(field).and_then(Value::as_bool) {
                    *slot_ref = b;
                }
            }
            Json(policy_json(&kf.set_pim_policy(policy).await?)).into_response()
        }
        ("PUT", ["roleEligibilityScheduleRequests", _name]) => {
            let p = super::body::properties(body)?;
            require(
                state,
                slot,
                caller,
                &chain,
                "Microsoft.Authorization/roleAssignments/write",
                &role_guid(text(&p, "roleDefinitionId")),
            )
            .await?;
            let principal = text(&p, "principalId");
            let role = role_guid(text(&p, "roleDefinitionId"));
            match p
                .get("requestType")
                .and_then(Value::as_str)
                .unwrap_or("AdminAssign")
            {
                "AdminAssign" => {
                    op("PimEligibilityCreate");
                    let e = kf
                        .add_eligibility(
                            &tenant,
                            principal,
                            &role,
                            chain.clone(),
                            &caller.object_id,
                        )
                        .await?;
                    (StatusCode::CREATED, Json(eligibility_json(&e))).into_response()
                }
                "AdminRemove" => {
                    op("PimEligibilityRemove");
                    let found = kf
                        .eligibilities(&tenant)
                        .await?
                        .into_iter()
                        .find(|e| {
                            e.principal_id == principal
                                && e.role_definition_id == role
                                && e.scope == target_scope
                        })
                        .ok_or_else(|| {
                            Error::not_found(
                                "RoleEligibilityScheduleNotFound",
                                "No such eligibility.",
                            )
                        })?;
                    Json(eligibility_json(
                        &kf.remove_eligibility(&tenant, &found.id).await?,
                    ))
                    .into_response()
                }
                _ => {
                    return Err(Error::bad(
                        "requestType must be AdminAssign or AdminRemove.",
                    ));
                }
            }
        }
        ("GET", ["roleEligibilitySchedules"]) => {
            op("PimEligibilityList");
            let admin = kf
                .authz
                .find_grant(
                    caller,
                    &tenant,
                    &chain,
                    Plane::Control,
                    "Microsoft.Authorization/roleAssignments/read",
                )
                .await?
                .is_some();
            let list: Vec<Value> = kf
                .eligibilities(&tenant)
                .await?
                .iter()
                .filter(|e| {
                    (admin || e.principal_id == caller.object_id) && e.chain.contains(&target_scope)
                })
                .map(eligibility_json)
                .collect();
            Json(json!({ "value": list })).into_response()
        }
        ("PUT", ["roleAssignmentScheduleRequests", _name]) => {
            op("PimActivationRequest");
            let p = super::body::properties(body)?;
            if p.get("requestType")
                .and_then(Value::as_str)
                .unwrap_or("SelfActivate")
                != "SelfActivate"
            {
                return Err(Error::bad(
                    "requestType must be SelfActivate; use .../{id}/cancel or .../{id}/revoke to end a request.",
                ));
            }
            if !text(&p, "principalId").is_empty()
                && !text(&p, "principalId").eq_ignore_ascii_case(&caller.object_id)
            {
                return Err(Error::forbidden(
                    "A principal can only activate roles for itself.",
                ));
            }
            let duration = p
                .get("scheduleInfo")
                .and_then(|v| v.pointer("/expiration/duration"))
                .and_then(Value::as_str)
                .map(|d| parse_duration(d).ok_or_else(|| Error::bad("scheduleInfo.expiration.duration must be an ISO 8601 duration such as PT2H.")))
                .transpose()?
                .unwrap_or(3600);
            let role = role_guid(text(&p, "roleDefinitionId"));
            let req = kf
                .request_activation(
                    caller,
                    ActivationAsk {
                        role_definition_id: &role,
                        scope: &target_scope,
                        justification: text(&p, "justification"),
                        duration_secs: duration,
                    },
                )
                .await?;
            (StatusCode::CREATED, Json(request_json(&req, now))).into_response()
        }
        ("GET", ["roleAssignmentScheduleRequests"]) => {
            op("PimRequestList");
            let admin = kf
                .authz
                .find_grant(
                    caller,
                    &tenant,
                    &chain,
                    Plane::Control,
                    "Microsoft.Authorization/roleAssignments/read",
                )
                .await?
                .is_some();
            let list: Vec<Value> = kf
                .activation_requests(&tenant)
                .await?
                .iter()
                .filter(|r| {
                    (admin || r.principal_id == caller.object_id) && r.chain.contains(&target_scope)
                })
                .map(|r| request_json(r, now))
                .collect();
            Json(json!({ "value": list })).into_response()
        }
        ("POST", ["roleAssignmentScheduleRequests", id, "cancel"]) => {
            op("PimRequestCancel");
            Json(request_json(&kf.cancel_request(caller, id).await?, now)).into_response()
        }
        ("POST", ["roleAssignmentScheduleRequests", id, "revoke"]) => {
            op("PimRevoke");
            Json(request_json(&kf.revoke_activation(caller, id).await?, now)).into_response()
        }
        _ => {
            op("Unknown");
            return Err(Error::not_found(
                "NotFound",
                format!(
                    "{method} {} is not a PIM operation.",
                    names::printable(path)
                ),
            ));
        }
    })
}

/// True for `/providers/Microsoft.Authorization/roleAssignmentApprovals/...`.
pub fn is_approval_path(path: &str) -> bool {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    matches!(segs.as_slice(), [p, a, r, ..] if p.eq_ignore_ascii_case("providers")
        && a.eq_ignore_ascii_case("Microsoft.Authorization")
        && r.eq_ignore_ascii_case("roleAssignmentApprovals"))
}

/// True when a management path is a PIM path.
pub fn is_pim_path(path: &str) -> bool {
    path.split('/')
        .any(|s| s.eq_ignore_ascii_case("Microsoft.Authorization"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        assert_eq!(super::parse_duration("PT2H"), Some(7200));
        assert_eq!(super::parse_duration("PT1H30M"), Some(5400));
        assert_eq!(super::parse_duration("P1D"), Some(86400));
        assert_eq!(super::parse_duration("PT45S"), Some(45));
        assert_eq!(super::parse_duration("2H"), None);
        assert_eq!(super::parse_duration("PT"), None);
        assert_eq!(super::parse_duration("PTxH"), None);
    }
}
