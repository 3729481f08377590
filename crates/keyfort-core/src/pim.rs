//! Just-in-time access (PIM). A principal may be *eligible* for a role at a
//! scope; eligibility grants nothing. Activation is a request with a
//! justification and a duration, refused without an MFA token when the
//! policy says so, and (for privileged roles, by default) waiting for an
//! approver who is not the requester and who also signed in with MFA. Once
//! approved the role is active until the duration ends; the authorizer checks
//! the window on every request, so it lapses by itself.

use keyfort_store::Batch;

use crate::Keyfort;
use crate::authz::{Plane, role_guid};
use crate::identity::Caller;
use crate::model::{ActivationRequest, Eligibility, PimPolicy, RequestStatus};
use crate::{Error, Result, names};

/// The longest any activation may last, whatever the policy says.
pub const HARD_MAX_DURATION: i64 = 24 * 3600;
pub const DEFAULT_MAX_DURATION: i64 = 8 * 3600;

fn policy_key(tenant: &str, role: &str, scope: &str) -> String {
    let h = keyfort_crypto::digest::sha256(
        format!("{}|{}", role_guid(role), scope.to_ascii_lowercase()).as_bytes(),
    );
    let id: String = h[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("sys/pim/policies/{tenant}/{id}")
}
fn eligibility_prefix(tenant: &str) -> String {
    format!("sys/pim/eligible/{tenant}/")
}
fn request_prefix(tenant: &str) -> String {
    format!("sys/pim/requests/{tenant}/")
}

/// What a requester asks for.
pub struct ActivationAsk<'a> {
    pub role_definition_id: &'a str,
    pub scope: &'a str,
    pub justification: &'a str,
    pub duration_secs: i64,
}

fn request_not_found(id: &str) -> Error {
    Error::not_found(
        "RoleAssignmentScheduleRequestNotFound",
        format!(
            "Activation request {} does not exist.",
            names::printable(id)
        ),
    )
}

impl Keyfort {
    /// The policy for a role at a scope: the one set, or the defaults (for
    /// privileged roles: one approver, MFA, justification, 8 hours at most).
    pub async fn pim_policy(
        &self,
        tenant_id: &str,
        role_definition_id: &str,
        scope: &str,
    ) -> Result<PimPolicy> {
        if let Some(p) = self
            .barrier
            .get::<PimPolicy>(&policy_key(tenant_id, role_definition_id, scope))
            .await?
        {
            return Ok(p.value);
        }
        let role = self
            .authz
            .existing_role(tenant_id, role_definition_id)
            .await?;
        let privileged = role.is_privileged();
        Ok(PimPolicy {
            tenant_id: tenant_id.to_owned(),
            role_definition_id: role.id,
            scope: scope.to_owned(),
            approvers: vec![],
            max_duration_secs: DEFAULT_MAX_DURATION,
            require_mfa: privileged,
            require_justification: true,
            require_approval: privileged,
            updated: 0,
        })
    }

    pub async fn set_pim_policy(&self, mut policy: PimPolicy) -> Result<PimPolicy> {
        let role = self
            .authz
            .existing_role(&policy.tenant_id, &policy.role_definition_id)
            .await?;
        if !(300..=HARD_MAX_DURATION).contains(&policy.max_duration_secs) {
            return Err(Error::bad(
                "maximumDuration must be between 5 minutes and 24 hours.",
            ));
        }
        for a in &policy.approvers {
            if !self.identity.has_object(&policy.tenant_id, a).await? {
                return Err(Error::bad(format!(
                    "Approver {} is not a principal or user of this tenant.",
                    names::printable(a)
                )));
            }
        }
        policy.role_definition_id = role.id;
        policy.updated = self.clock.now();
        let key = policy_key(&policy.tenant_id, &policy.role_definition_id, &policy.scope);
        let sealed = self.barrier.seal_json(&key, &policy).await?;
        self.barrier.commit(Batch::new().put(key, sealed)).await?;
        Ok(policy)
    }

    /// Makes a principal or user eligible for a role at a scope. `chain` is
    /// every scope from the tenant down to `scope`.
    pub async fn add_eligibility(
        &self,
        tenant_id: &str,
        principal_id: &str,
        role_definition_id: &str,
        chain: Vec<String>,
        created_by: &str,
    ) -> Result<Eligibility> {
        let scope = chain
            .last()
            .cloned()
            .ok_or_else(|| Error::bad("A scope is required."))?;
        let role = self
            .authz
            .existing_role(tenant_id, role_definition_id)
            .await?;
        crate::authz::check_role_fits_scope(&role, &scope)?;
        if !self.identity.has_object(tenant_id, principal_id).await? {
            return Err(Error::bad(format!(
                "{} is not a principal or user of this tenant.",
                names::printable(principal_id)
            )));
        }
        if self.eligibilities(tenant_id).await?.iter().any(|e| {
            e.principal_id == principal_id && e.role_definition_id == role.id && e.scope == scope
        }) {
            return Err(Error::Conflict("This eligibility already exists.".into()));
        }
        let e = Eligibility {
            id: uuid::Uuid::new_v4().to_string(),
            tenant_id: tenant_id.to_owned(),
            principal_id: principal_id.to_owned(),
            role_definition_id: role.id,
            scope,
            chain,
            created: self.clock.now(),
            created_by: created_by.to_owned(),
        };
        let key = format!("{}{}", eligibility_prefix(tenant_id), e.id);
        let sealed = self.barrier.seal_json(&key, &e).await?;
        self.barrier
            .commit(Batch::new().expect_absent(key.clone()).put(key, sealed))
            .await?;
        Ok(e)
    }

    pub async fn eligibilities(&self, tenant_id: &str) -> Result<Vec<Eligibility>> {
        Ok(self
            .barrier
            .list_all::<Eligibility>(&eligibility_prefix(tenant_id))
            .await?
            .into_iter()
            .map(|s| s.value)
            .collect())
    }

    pub async fn remove_eligibility(&self, tenant_id: &str, id: &str) -> Result<Eligibility> {
        let key = format!(
            "{}{}",
            eligibility_prefix(tenant_id),
            id.to_ascii_lowercase()
        );
        let stored = self
            .barrier
            .get::<Eligibility>(&key)
            .await?
            .ok_or_else(|| {
                Error::not_found(
                    "RoleEligibilityScheduleNotFound",
                    format!("Eligibility {} does not exist.", names::printable(id)),
                )
            })?;
        self.barrier
            .commit(
                Batch::new()
                    .expect_equals(key.clone(), stored.raw)
                    .delete(key),
            )
            .await?;
        Ok(stored.value)
    }

    /// Asks to activate an eligible role. Active at once when the policy
    /// needs no approval, pending otherwise.
    pub async fn request_activation(
        &self,
        caller: &Caller,
        ask: ActivationAsk<'_>,
    ) -> Result<ActivationRequest> {
        let tenant = &caller.tenant_id;
        let role_id = role_guid(ask.role_definition_id);
        let eligibility = self
            .eligibilities(tenant)
            .await?
            .into_iter()
            .find(|e| e.principal_id == caller.object_id && e.role_definition_id == role_id && e.scope.eq_ignore_ascii_case(ask.scope))
            .ok_or_else(|| Error::forbidden("You are not eligible for this role at this scope; ask an administrator to make you eligible first."))?;
        let policy = self
            .pim_policy(tenant, &role_id, &eligibility.scope)
            .await?;
        if policy.require_mfa && !caller.mfa {
            return Err(Error::Forbidden {
                message: "Activating this role needs a token issued after multi-factor authentication: sign in again with your one-time code (keyfort login --username ... --otp CODE).".into(),
                inner: Some("MfaRequired"),
            });
        }
        if policy.require_justification && ask.justification.trim().len() < 5 {
            return Err(Error::bad(
                "A justification (at least 5 characters) is required to activate this role.",
            ));
        }
        if ask.duration_secs <= 0 || ask.duration_secs > policy.max_duration_secs {
            return Err(Error::bad(format!(
                "The duration must be positive and at most {} minutes for this role.",
                policy.max_duration_secs / 60
            )));
        }
        let now = self.clock.now();
        let mut req = ActivationRequest {
            id: uuid::Uuid::new_v4().to_string(),
            tenant_id: tenant.clone(),
            principal_id: caller.object_id.clone(),
            role_definition_id: role_id,
            scope: eligibility.scope.clone(),
            chain: eligibility.chain.clone(),
            justification: ask.justification.to_owned(),
            duration_secs: ask.duration_secs,
            status: RequestStatus::PendingApproval,
            created: now,
            decided_by: None,
            decided_at: None,
            decision_reason: None,
            start: None,
            end: None,
        };
        if !policy.require_approval {
            req.status = RequestStatus::Provisioned;
            req.start = Some(now);
            req.end = Some(now + ask.duration_secs);
        }
        self.save_request(&req, None).await?;
        Ok(req)
    }

    async fn save_request(&self, req: &ActivationRequest, previous: Option<Vec<u8>>) -> Result<()> {
        let key = format!("{}{}", request_prefix(&req.tenant_id), req.id);
        let sealed = self.barrier.seal_json(&key, req).await?;
        let batch = match previous {
            Some(raw) => Batch::new().expect_equals(key.clone(), raw),
            None => Batch::new().expect_absent(key.clone()),
        };
        let result = self.barrier.commit(batch.put(key, sealed)).await;
        self.authz.forget_tenant(&req.tenant_id);
        result
    }

    async fn stored_request(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<(ActivationRequest, Vec<u8>)> {
        let key = format!("{}{}", request_prefix(tenant_id), id.to_ascii_lowercase());
        let stored = self
            .barrier
            .get::<ActivationRequest>(&key)
            .await?
            .ok_or_else(|| request_not_found(id))?;
        Ok((stored.value, stored.raw))
    }

    pub async fn activation_requests(&self, tenant_id: &str) -> Result<Vec<ActivationRequest>> {
        Ok(self
            .barrier
            .list_all::<ActivationRequest>(&request_prefix(tenant_id))
            .await?
            .into_iter()
            .map(|s| s.value)
            .collect())
    }

    /// Whether `caller` may approve, deny or revoke requests under `policy`.
    async fn check_approver(
        &self,
        caller: &Caller,
        req: &ActivationRequest,
        policy: &PimPolicy,
    ) -> Result<()> {
        if caller.object_id == req.principal_id {
            return Err(Error::forbidden(
                "A request cannot be approved, denied or revoked by its own requester; another approver must decide.",
            ));
        }
        let allowed = if policy.approvers.is_empty() {
            // Whoever may assign this role at the scope; a conditional grant
            // (Key Vault Data Access Administrator) only for the roles it lists.
            match self
                .authz
                .find_grant(
                    caller,
                    &req.tenant_id,
                    &req.chain,
                    Plane::Control,
                    "Microsoft.Authorization/roleAssignments/write",
                )
                .await?
            {
                Some(grant) => self
                    .authz
                    .check_condition(&req.tenant_id, &grant, &req.role_definition_id)
                    .await
                    .is_ok(),
                None => false,
            }
        } else {
            policy
                .approvers
                .iter()
                .any(|a| a.eq_ignore_ascii_case(&caller.object_id))
        };
        if !allowed {
            return Err(Error::forbidden(
                "You are not an approver for this role and scope.",
            ));
        }
        if !caller.mfa {
            return Err(Error::Forbidden {
                message:
                    "Approving or denying needs a token issued after multi-factor authentication."
                        .into(),
                inner: Some("MfaRequired"),
            });
        }
        Ok(())
    }

    /// Approves (the role becomes active for the requested duration from now) or denies a pending request.
    pub async fn decide(
        &self,
        caller: &Caller,
        id: &str,
        approve: bool,
        reason: &str,
    ) -> Result<ActivationRequest> {
        let (mut req, raw) = self.stored_request(&caller.tenant_id, id).await?;
        let policy = self
            .pim_policy(&req.tenant_id, &req.role_definition_id, &req.scope)
            .await?;
        self.check_approver(caller, &req, &policy).await?;
        if req.status != RequestStatus::PendingApproval {
            return Err(Error::Conflict(format!(
                "The request is {:?}, not pending approval.",
                req.status
            )));
        }
        let still_eligible = self.eligibilities(&req.tenant_id).await?.iter().any(|e| {
            e.principal_id == req.principal_id
                && e.role_definition_id == req.role_definition_id
                && e.scope == req.scope
        });
        if approve && !still_eligible {
            return Err(Error::Conflict("The requester is no longer eligible for this role at this scope; deny the request.".into()));
        }
        let now = self.clock.now();
        req.decided_by = Some(caller.object_id.clone());
        req.decided_at = Some(now);
        req.decision_reason = Some(reason.to_owned());
        if approve {
            req.status = RequestStatus::Provisioned;
            req.start = Some(now);
            req.end = Some(now + req.duration_secs);
        } else {
            req.status = RequestStatus::Denied;
        }
        self.save_request(&req, Some(raw)).await?;
        Ok(req)
    }

    /// The requester withdraws a pending request.
    pub async fn cancel_request(&self, caller: &Caller, id: &str) -> Result<ActivationRequest> {
        let (mut req, raw) = self.stored_request(&caller.tenant_id, id).await?;
        if req.principal_id != caller.object_id {
            return Err(Error::forbidden("Only the requester can cancel a request."));
        }
        if req.status != RequestStatus::PendingApproval {
            return Err(Error::Conflict(format!(
                "The request is {:?}; only pending requests can be cancelled.",
                req.status
            )));
        }
        req.status = RequestStatus::Canceled;
        req.decided_at = Some(self.clock.now());
        self.save_request(&req, Some(raw)).await?;
        Ok(req)
    }

    /// Ends an active role early (an approver), or the requester deactivates it.
    pub async fn revoke_activation(&self, caller: &Caller, id: &str) -> Result<ActivationRequest> {
        let (mut req, raw) = self.stored_request(&caller.tenant_id, id).await?;
        if req.principal_id != caller.object_id {
            let policy = self
                .pim_policy(&req.tenant_id, &req.role_definition_id, &req.scope)
                .await?;
            self.check_approver(caller, &req, &policy).await?;
        }
        let now = self.clock.now();
        if !req.is_active(now) {
            return Err(Error::Conflict(
                "The role is not active; nothing to revoke.".into(),
            ));
        }
        req.status = RequestStatus::Revoked;
        req.end = Some(now);
        req.decided_by = Some(caller.object_id.clone());
        self.save_request(&req, Some(raw)).await?;
        Ok(req)
    }
}
