//! The best-practice advisor: checks each vault of a tenant against the Azure
//! Key Vault best practices and says, for each finding, how bad it is, what
//! shows it, and the command that fixes it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::Keyfort;
use crate::Result;
use crate::authz::scope_chain;
use crate::model::Vault;

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    High,
    Medium,
    Low,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub vault: String,
    pub severity: Severity,
    pub check: &'static str,
    pub evidence: String,
    pub fix: String,
}

/// Facts the advisor cannot read from the store: which applications called
/// each vault recently (from the audit trail), and where audit records go.
#[derive(Default)]
pub struct Observations {
    pub callers_by_vault: BTreeMap<String, Vec<String>>,
    /// Some audit sink ships records off this host (a webhook).
    pub audit_off_host: bool,
}

/// Keys generated longer ago than this need a backup (`--key-backup-days`).
pub const KEY_BACKUP_DAYS: i64 = 30;
/// More distinct applications than this on one vault suggests a shared vault.
const SHARED_CALLERS: usize = 3;
const TAGS_APP: &[&str] = &["app", "application"];
const TAGS_ENV: &[&str] = &["env", "environment"];

/// The vault's app or env tag values that name several (`dev,prod`,
/// `billing;payroll`, `shared`, `all`, `*`).
fn shared_tags(v: &Vault) -> Vec<String> {
    v.tags
        .iter()
        .filter(|(k, _)| {
            TAGS_APP
                .iter()
                .chain(TAGS_ENV)
                .any(|n| k.eq_ignore_ascii_case(n))
        })
        .filter(|(_, value)| {
            let value = value.trim().to_ascii_lowercase();
            value.contains([',', ';', '|', '+'])
                || ["shared", "all", "*", "common", "multi"].contains(&value.as_str())
        })
        .map(|(k, value)| format!("{k}={value}"))
        .collect()
}

fn has_tag(v: &Vault, names: &[&str]) -> bool {
    v.tags
        .keys()
        .any(|k| names.iter().any(|n| k.eq_ignore_ascii_case(n)))
}

impl Keyfort {
    /// Findings for the live vaults of `tenant_id` (or only `vault`). Keys
    /// generated more than `key_backup_days` ago need a backup taken since.
    pub async fn advise(
        &self,
        tenant_id: &str,
        vault: Option<&str>,
        seen: &Observations,
        key_backup_days: i64,
    ) -> Result<Vec<Finding>> {
        let mut out = Vec::new();
        let vaults: Vec<Vault> = self
            .vaults
            .list()
            .await?
            .into_iter()
            .filter(|v| {
                v.tenant_id == tenant_id && vault.is_none_or(|n| v.name.eq_ignore_ascii_case(n))
            })
            .collect();
        let assignments = self.authz.assignments(tenant_id).await?;
        let alert_rules = self.alerts.rules(tenant_id).await?;
        let users = self.identity.users(tenant_id).await?;
        let now = self.clock.now();
        for v in &vaults {
            let f = |severity, check, evidence: String, fix: String| Finding {
                vault: v.name.clone(),
                severity,
                check,
                evidence,
                fix,
            };
            let rg = &v.resource_group;
            if !v.purge_protection {
                out.push(f(
                    Severity::High,
                    "purge-protection-off",
                    "enablePurgeProtection is false: a deleted vault, secret or key can be purged at once, by mistake or by an attacker.".into(),
                    format!("keyfort vault update --name {} --resource-group {rg} --enable-purge-protection", v.name),
                ));
            }
            let acls_allow = match &v.network_acls {
                None => true,
                Some(a) => crate::network::parse_acls(a)
                    .map(|a| !a.deny_by_default)
                    .unwrap_or(true),
            };
            if v.public_network_access.eq_ignore_ascii_case("Enabled") && acls_allow {
                out.push(f(
                    Severity::Medium,
                    "public-network-open",
                    "publicNetworkAccess is Enabled and networkAcls.defaultAction is Allow: any address can reach the vault.".into(),
                    format!(
                        "keyfort vault update --name {} --resource-group {rg} --default-action Deny --ip-rule <your CIDR> (or --public-network-access Disabled with a private endpoint)",
                        v.name
                    ),
                ));
            }
            if !has_tag(v, TAGS_APP) || !has_tag(v, TAGS_ENV) {
                out.push(f(
                    Severity::Medium,
                    "vault-purpose-unclear",
                    "The vault has no application or environment tag, so one vault per application and environment cannot be checked.".into(),
                    format!("keyfort vault update --name {} --resource-group {rg} --tag app=<app> --tag env=<env>", v.name),
                ));
            }
            // Shared across applications or environments: by its tags, or by
            // how many applications called it recently.
            let mut shared = Vec::new();
            let tags = shared_tags(v);
            if !tags.is_empty() {
                shared.push(format!("its tags name several: {}", tags.join(", ")));
            }
            if let Some(callers) = seen.callers_by_vault.get(&v.name)
                && callers.len() > SHARED_CALLERS
            {
                shared.push(format!(
                    "{} different applications used it recently: {}",
                    callers.len(),
                    callers.join(", ")
                ));
            }
            if !shared.is_empty() {
                out.push(f(
                    Severity::Medium,
                    "vault-shared",
                    format!("The vault is shared: {}.", shared.join("; ")),
                    "Give each application (and environment) its own vault: keyfort vault create --name <app-env-region> ...".into(),
                ));
            }
            if !seen.audit_off_host {
                out.push(f(
                    Severity::Medium,
                    "audit-kept-on-host",
                    "Audit records go only to this host's file (and stdout): whoever takes over the host, or loses its disk, takes the trail too.".into(),
                    "keyfort server --config <file> with audit.webhook = \"https://<your log collector>\" (or KEYFORT_AUDIT_WEBHOOK); in dev: keyfort dev --audit-webhook <url>".into(),
                ));
            }
            if !alert_rules.iter().any(|r| {
                r.enabled
                    && r.vault
                        .as_deref()
                        .is_none_or(|n| n.eq_ignore_ascii_case(&v.name))
            }) {
                out.push(f(
                    Severity::Medium,
                    "no-alert-rule",
                    "No enabled alert rule covers this vault: refusals, purges and role changes go unnoticed.".into(),
                    "keyfort alert rule create --name refused-requests --result Failure --threshold 10 --window-secs 300 --group-by callerIp".into(),
                ));
            }
            // Standing privileged roles held by people, over this vault.
            let chain = scope_chain(&v.subscription_id, Some(rg), Some((v, None)));
            for a in assignments
                .iter()
                .filter(|a| chain.iter().any(|s| s.eq_ignore_ascii_case(&a.scope)))
            {
                let Some(user) = users.iter().find(|u| u.object_id == a.principal_id) else {
                    continue;
                };
                let Some(role) = self.authz.role(tenant_id, &a.role_definition_id).await? else {
                    continue;
                };
                if !role.is_privileged() {
                    continue;
                }
                out.push(f(
                    Severity::High,
                    "standing-privileged-user",
                    format!("User {} holds '{}' permanently (assignment {}).", user.username, role.name, a.id),
                    format!(
                        "keyfort pim eligible create --role \"{}\" --assignee {} && keyfort role assignment delete --name {}",
                        role.name, user.object_id, a.id
                    ),
                ));
            }
            // Just-in-time policies that let privileged roles in without an approver or MFA.
            for role in self
                .authz
                .roles(tenant_id)
                .await?
                .iter()
                .filter(|r| r.is_privileged())
            {
                let has_eligible = self
                    .eligibilities(tenant_id)
                    .await?
                    .iter()
                    .any(|e| e.role_definition_id == role.id && chain.contains(&e.scope));
                if !has_eligible {
                    continue;
                }
                for scope in &chain {
                    let p = self.pim_policy(tenant_id, &role.id, scope).await?;
                    if p.updated > 0 && (!p.require_mfa || !p.require_approval) {
                        out.push(f(
                            Severity::High,
                            "pim-policy-weak",
                            format!(
                                "Activating '{}' needs {}.",
                                role.name,
                                match (p.require_approval, p.require_mfa) {
                                    (false, false) => "neither approval nor MFA",
                                    (false, true) => "no approval",
                                    _ => "no MFA",
                                }
                            ),
                            format!("keyfort pim policy set --role \"{}\" --require-approval true --require-mfa true", role.name),
                        ));
                    }
                }
            }
            // Keys generated here (created or rotated, not imported) exist
            // nowhere else: without a backup, losing the vault loses them.
            let unprotected = self.keys.without_recent_backup(v, key_backup_days).await?;
            if !unprotected.is_empty() {
                let shown: Vec<String> = unprotected
                    .iter()
                    .take(5)
                    .map(|(name, created)| {
                        format!("{name} (since {})", crate::clock::rfc3339(*created))
                    })
                    .collect();
                out.push(f(
                    Severity::High,
                    "key-without-backup",
                    format!(
                        "{} key(s) hold material generated in this vault more than {key_backup_days} days ago and not backed up since: {}{}.",
                        unprotected.len(),
                        shown.join(", "),
                        if unprotected.len() > 5 { ", ..." } else { "" }
                    ),
                    format!(
                        "keyfort key backup --vault {} --name <name> --file <name>.keybackup (and keep the file off this host)",
                        v.name
                    ),
                ));
            }
            // Secrets that never expire.
            let mut after: Option<String> = None;
            let mut no_expiry = Vec::new();
            loop {
                let page = self.secrets.list(v, after.as_deref(), 25).await?;
                no_expiry.extend(
                    page.items
                        .iter()
                        .filter(|s| s.meta.attributes.exp.is_none())
                        .map(|s| s.name.clone()),
                );
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            if !no_expiry.is_empty() {
                let shown: Vec<&str> = no_expiry.iter().take(5).map(String::as_str).collect();
                out.push(f(
                    Severity::Low,
                    "secret-without-expiry",
                    format!(
                        "{} secret(s) have no expiry date: {}{}.",
                        no_expiry.len(),
                        shown.join(", "),
                        if no_expiry.len() > 5 { ", ..." } else { "" }
                    ),
                    format!(
                        "keyfort secret update --vault {} --name <name> --expires {}",
                        v.name,
                        now + 90 * crate::clock::DAY
                    ),
                ));
            }
        }
        out.sort_by(|a, b| (a.severity, &a.vault, a.check).cmp(&(b.severity, &b.vault, b.check)));
        Ok(out)
    }
}
