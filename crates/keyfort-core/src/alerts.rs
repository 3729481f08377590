//! Alert rules over the audit stream: a filter (operations, result, caller,
//! vault) and a threshold in a sliding window, grouped by caller address or
//! caller identity, with a cool-down. A rule fires when more than
//! `threshold` matching records fall in the window; it then stays quiet for
//! the cool-down. Fired alerts are kept in the tenant's history and handed to
//! the caller to deliver (log and webhook channels).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex, RwLock};

use keyfort_store::Batch;
use serde::{Deserialize, Serialize};

use crate::audit::AuditRecord;
use crate::barrier::Barrier;
use crate::{Error, Result, names};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AlertRule {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// Only records of this vault (all the tenant's vaults when empty).
    #[serde(default)]
    pub vault: Option<String>,
    /// Operation names that match (`SecretPurge`, ...); all when empty.
    #[serde(default)]
    pub operations: Vec<String>,
    /// `Success` or `Failure`; both when empty.
    #[serde(default)]
    pub result: Option<String>,
    /// Only this caller (object id or app id).
    #[serde(default)]
    pub caller: Option<String>,
    /// Fires when more than this many records match in the window.
    pub threshold: u32,
    pub window_secs: i64,
    /// `callerIp`, `caller`, or empty for one count over everything.
    #[serde(default)]
    pub group_by: Option<String>,
    /// `log` and/or a webhook URL.
    #[serde(default)]
    pub webhook: Option<String>,
    pub cooldown_secs: i64,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FiredAlert {
    pub id: String,
    pub rule_id: String,
    pub rule_name: String,
    pub tenant_id: String,
    pub group: String,
    pub count: usize,
    pub window_secs: i64,
    pub time: i64,
    pub last_operation: String,
    pub vault: Option<String>,
    #[serde(skip)]
    pub webhook: Option<String>,
}

fn rules_prefix(tenant: &str) -> String {
    format!("sys/alertrules/{tenant}/")
}
fn history_prefix(tenant: &str) -> String {
    format!("sys/alerthistory/{tenant}/")
}

impl AlertRule {
    fn matches(&self, r: &AuditRecord) -> bool {
        let op_ok = self.operations.is_empty()
            || self
                .operations
                .iter()
                .any(|o| o.eq_ignore_ascii_case(&r.operation_name));
        let result_ok = self
            .result
            .as_deref()
            .is_none_or(|x| x.eq_ignore_ascii_case(r.result_type));
        let vault_ok = self.vault.as_deref().is_none_or(|v| {
            r.vault
                .as_deref()
                .is_some_and(|rv| rv.eq_ignore_ascii_case(v))
        });
        let caller_ok = self.caller.as_deref().is_none_or(|c| {
            r.identity.as_ref().is_some_and(|i| {
                i.object_id.eq_ignore_ascii_case(c) || i.app_id.eq_ignore_ascii_case(c)
            })
        });
        self.enabled && op_ok && result_ok && vault_ok && caller_ok
    }

    fn group(&self, r: &AuditRecord) -> String {
        match self.group_by.as_deref() {
            Some("callerIp") => r.caller_ip.clone(),
            Some("caller") => r
                .identity
                .as_ref()
                .map(|i| i.object_id.clone())
                .unwrap_or_default(),
            _ => "*".into(),
        }
    }

    fn check(&self) -> Result<()> {
        if self.name.trim().is_empty() || self.name.len() > 128 {
            return Err(Error::bad(
                "An alert rule needs a name of 1 to 128 characters.",
            ));
        }
        if !(1..=86_400).contains(&self.window_secs) || !(0..=86_400).contains(&self.cooldown_secs)
        {
            return Err(Error::bad(
                "windowSecs must be 1 to 86400 and cooldownSecs 0 to 86400.",
            ));
        }
        if let Some(g) = &self.group_by
            && g != "callerIp"
            && g != "caller"
        {
            return Err(Error::bad("groupBy must be callerIp or caller."));
        }
        if let Some(r) = &self.result
            && r != "Success"
            && r != "Failure"
        {
            return Err(Error::bad("result must be Success or Failure."));
        }
        if let Some(w) = &self.webhook {
            crate::events::check_webhook_url(w)?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Window {
    /// The newest hits in the window: at most threshold + 1 are needed.
    times: VecDeque<i64>,
    last_fired: Option<i64>,
    /// Past this time the window is empty and cooled down: it can go.
    idle_after: i64,
}

/// Windows are swept of idle ones past this many, and never grow past
/// `MAX_WINDOWS` (one per rule and group: many source addresses could
/// otherwise fill memory).
const SWEEP_AT: usize = 10_000;
const SWEEP_EVERY_SECS: i64 = 10;
const MAX_WINDOWS: usize = 100_000;

pub struct Alerts {
    barrier: Arc<Barrier>,
    rules: RwLock<HashMap<String, Arc<Vec<AlertRule>>>>,
    /// Bumped by every rule change, so a load that raced one is not cached.
    rules_generation: std::sync::atomic::AtomicU64,
    /// No sweep of idle windows before this time (a sweep walks them all).
    next_sweep: std::sync::atomic::AtomicI64,
    windows: Mutex<HashMap<(String, String), Window>>,
}

impl Alerts {
    pub fn new(barrier: Arc<Barrier>) -> Self {
        Alerts {
            barrier,
            rules: RwLock::new(HashMap::new()),
            rules_generation: Default::default(),
            next_sweep: Default::default(),
            windows: Mutex::new(HashMap::new()),
        }
    }

    pub async fn rules(&self, tenant: &str) -> Result<Arc<Vec<AlertRule>>> {
        if let Some(r) = self.rules.read().expect("alert rules lock").get(tenant) {
            return Ok(r.clone());
        }
        let generation = self.rules_generation.load(SeqCst);
        let list = Arc::new(
            self.barrier
                .list_all::<AlertRule>(&rules_prefix(tenant))
                .await?
                .into_iter()
                .map(|s| s.value)
                .collect::<Vec<_>>(),
        );
        let mut cache = self.rules.write().expect("alert rules lock");
        if self.rules_generation.load(SeqCst) == generation {
            cache.insert(tenant.to_owned(), list.clone());
        }
        Ok(list)
    }

    /// Whether any rule of the tenant could count this record: true when the
    /// tenant's rules are not loaded yet. Lets the caller skip the work for
    /// the (usual) records no rule looks at.
    pub fn may_match(&self, tenant: &str, record: &AuditRecord) -> bool {
        match self.rules.read().expect("alert rules lock").get(tenant) {
            Some(rules) => rules.iter().any(|r| r.matches(record)),
            None => true,
        }
    }

    pub async fn put_rule(&self, mut rule: AlertRule) -> Result<AlertRule> {
        rule.check()?;
        if rule.id.is_empty() {
            rule.id = uuid::Uuid::new_v4().to_string();
        }
        let key = format!("{}{}", rules_prefix(&rule.tenant_id), rule.id);
        let sealed = self.barrier.seal_json(&key, &rule).await?;
        self.barrier.commit(Batch::new().put(key, sealed)).await?;
        self.forget_rules(&rule.tenant_id);
        Ok(rule)
    }

    pub async fn delete_rule(&self, tenant: &str, id: &str) -> Result<()> {
        let key = format!("{}{}", rules_prefix(tenant), id.to_ascii_lowercase());
        if self.barrier.store().get(&key).await?.is_none() {
            return Err(Error::not_found(
                "AlertRuleNotFound",
                format!("Alert rule {} does not exist.", names::printable(id)),
            ));
        }
        self.barrier.commit(Batch::new().delete(key)).await?;
        self.forget_rules(tenant);
        Ok(())
    }

    fn forget_rules(&self, tenant: &str) {
        let mut cache = self.rules.write().expect("alert rules lock");
        self.rules_generation.fetch_add(1, SeqCst);
        cache.remove(tenant);
    }

    pub async fn history(&self, tenant: &str) -> Result<Vec<FiredAlert>> {
        Ok(self
            .barrier
            .list_all::<FiredAlert>(&history_prefix(tenant))
            .await?
            .into_iter()
            .map(|s| s.value)
            .collect())
    }

    /// Counts a record against the tenant's rules; returns the alerts that
    /// fire now (already kept in the history).
    pub async fn observe(
        &self,
        tenant: &str,
        record: &AuditRecord,
        now: i64,
    ) -> Result<Vec<FiredAlert>> {
        let rules = self.rules(tenant).await?;
        let mut fired = Vec::new();
        {
            let mut windows = self.windows.lock().expect("alert windows lock");
            if windows.len() >= SWEEP_AT && now >= self.next_sweep.load(SeqCst) {
                windows.retain(|_, w| w.idle_after > now);
                self.next_sweep.store(now + SWEEP_EVERY_SECS, SeqCst);
            }
            for rule in rules.iter().filter(|r| r.matches(record)) {
                let group = rule.group(record);
                let key = (rule.id.clone(), group.clone());
                if windows.len() >= MAX_WINDOWS && !windows.contains_key(&key) {
                    tracing::warn!(rule = %rule.name, "too many alert windows: a new group is not counted");
                    continue;
                }
                let w = windows.entry(key).or_default();
                w.times.push_back(now);
                while w
                    .times
                    .front()
                    .is_some_and(|t| *t <= now - rule.window_secs)
                    || w.times.len() > rule.threshold as usize + 1
                {
                    w.times.pop_front();
                }
                w.idle_after = (now + rule.window_secs)
                    .max(w.last_fired.map_or(0, |t| t + rule.cooldown_secs));
                let cooled = w.last_fired.is_none_or(|t| now - t >= rule.cooldown_secs);
                if w.times.len() > rule.threshold as usize && cooled {
                    w.last_fired = Some(now);
                    w.idle_after = w.idle_after.max(now + rule.cooldown_secs);
                    fired.push(FiredAlert {
                        id: uuid::Uuid::new_v4().to_string(),
                        rule_id: rule.id.clone(),
                        rule_name: rule.name.clone(),
                        tenant_id: tenant.to_owned(),
                        group,
                        count: w.times.len(),
                        window_secs: rule.window_secs,
                        time: now,
                        last_operation: record.operation_name.clone(),
                        vault: record.vault.clone(),
                        webhook: rule.webhook.clone(),
                    });
                }
            }
        }
        for f in &fired {
            let key = format!("{}{:020}-{}", history_prefix(tenant), f.time.max(0), f.id);
            let sealed = self.barrier.seal_json(&key, f).await?;
            self.barrier.commit(Batch::new().put(key, sealed)).await?;
        }
        Ok(fired)
    }
}

/// The rules that ship enabled for the dev vault's tenant: many refusals
/// from one address, any purge attempt, any new role assignment, any PIM
/// activation or approval.
pub fn builtin_rules(tenant: &str) -> Vec<AlertRule> {
    let rule = |name: &str,
                ops: &[&str],
                result: Option<&str>,
                threshold,
                group: Option<&str>,
                cooldown_secs| AlertRule {
        id: String::new(),
        tenant_id: tenant.to_owned(),
        name: name.into(),
        vault: None,
        operations: ops.iter().map(|s| s.to_string()).collect(),
        result: result.map(String::from),
        caller: None,
        threshold,
        window_secs: 300,
        group_by: group.map(String::from),
        webhook: None,
        cooldown_secs,
        enabled: true,
    };
    vec![
        rule(
            "refused-requests-from-one-address",
            &[],
            Some("Failure"),
            10,
            Some("callerIp"),
            300,
        ),
        rule(
            "purge-attempt",
            &["SecretPurge", "KeyPurge", "CertificatePurge", "VaultPurge"],
            None,
            0,
            None,
            0,
        ),
        rule(
            "new-role-assignment",
            &["RoleAssignmentCreate"],
            Some("Success"),
            0,
            None,
            0,
        ),
        rule(
            "pim-activation",
            &["PimActivationRequest", "PimApprovalDecision"],
            Some("Success"),
            0,
            None,
            0,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditIdentity;

    fn rec(op: &str, result: &'static str, ip: &str) -> AuditRecord {
        AuditRecord {
            operation_name: op.into(),
            result_type: result,
            caller_ip: ip.into(),
            vault: Some("dev".into()),
            identity: Some(AuditIdentity {
                tenant_id: "t".into(),
                object_id: "o".into(),
                app_id: "a".into(),
                upn: None,
            }),
            ..Default::default()
        }
    }

    /// Alerts over a fresh store, with the built-in rules of tenant "t".
    async fn with_builtin_rules() -> (tempfile::TempDir, Alerts) {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Arc::new(keyfort_store::sqlite::SqliteStore::open(&dir.path().join("db")).unwrap());
        let alerts = Alerts::new(Arc::new(Barrier::new(
            store,
            keyfort_crypto::SealingKey::generate(),
        )));
        for r in builtin_rules("t") {
            alerts.put_rule(r).await.unwrap();
        }
        (dir, alerts)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fires_once_per_window_per_group() {
        let (_dir, alerts) = with_builtin_rules().await;
        // Ten refusals from one address: quiet; the eleventh fires; more stay quiet (cool-down).
        for i in 0..10 {
            assert!(
                alerts
                    .observe("t", &rec("SecretGet", "Failure", "10.0.0.1"), 1000 + i)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
        let fired = alerts
            .observe("t", &rec("SecretGet", "Failure", "10.0.0.1"), 1010)
            .await
            .unwrap();
        assert_eq!(fired.len(), 1);
        assert_eq!(
            (
                fired[0].rule_name.as_str(),
                fired[0].group.as_str(),
                fired[0].count
            ),
            ("refused-requests-from-one-address", "10.0.0.1", 11)
        );
        assert!(
            alerts
                .observe("t", &rec("SecretGet", "Failure", "10.0.0.1"), 1011)
                .await
                .unwrap()
                .is_empty()
        );
        // Another address has its own window.
        assert!(
            alerts
                .observe("t", &rec("SecretGet", "Failure", "10.0.0.2"), 1012)
                .await
                .unwrap()
                .is_empty()
        );
        // Old records leave the window: after the cool-down, it takes eleven again.
        assert!(
            alerts
                .observe("t", &rec("SecretGet", "Failure", "10.0.0.1"), 1400)
                .await
                .unwrap()
                .is_empty()
        );
        // Any purge attempt fires, every time.
        assert_eq!(
            alerts
                .observe("t", &rec("SecretPurge", "Failure", "10.0.0.3"), 1500)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            alerts
                .observe("t", &rec("SecretPurge", "Success", "10.0.0.3"), 1501)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(alerts.history("t").await.unwrap().len(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn windows_stay_bounded() {
        let (_dir, alerts) = with_builtin_rules().await;
        // One refusal each from many addresses, long ago...
        for i in 0..SWEEP_AT {
            let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
            alerts
                .observe("t", &rec("SecretGet", "Failure", &ip), 1000)
                .await
                .unwrap();
        }
        // ... are swept once they are idle.
        alerts
            .observe("t", &rec("SecretGet", "Failure", "192.0.2.1"), 10_000)
            .await
            .unwrap();
        assert_eq!(alerts.windows.lock().unwrap().len(), 1);
        // A busy window keeps only what the threshold needs.
        for t in 0..1000 {
            alerts
                .observe("t", &rec("SecretGet", "Failure", "192.0.2.1"), 10_000 + t)
                .await
                .unwrap();
        }
        let windows = alerts.windows.lock().unwrap();
        assert!(windows.values().all(|w| w.times.len() <= 11));
    }
}
