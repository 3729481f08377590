//! Events, shaped after Azure Event Grid's Key Vault events
//! (`Microsoft.KeyVault.SecretNewVersionCreated`, `SecretNearExpiry`,
//! `SecretExpired`, ...). Subscriptions per vault name a webhook and an
//! optional event-type filter; each delivery is signed with HMAC-SHA256 over
//! the body, kept in a durable outbox, retried with exponential backoff, and
//! moved to the vault's dead-letter list after the last attempt.

use keyfort_store::Batch;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::barrier::Stored;
use crate::model::Vault;
use crate::objects::{ObjectKind, ObjectMeta, View};
use crate::{Error, Keyfort, Result, names};

pub const MAX_ATTEMPTS: u32 = 4;
/// Near-expiry fires this long before `exp` unless configured otherwise.
pub const NEAR_EXPIRY_SECS: i64 = 30 * crate::clock::DAY;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventSubscription {
    pub id: String,
    pub vault_id: String,
    pub vault_name: String,
    pub endpoint: String,
    /// Event types delivered (`SecretNewVersionCreated`, ...); empty means all.
    pub event_types: Vec<String>,
    /// The HMAC key deliveries are signed with (base64url); shown once.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub secret: String,
    pub created: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: String,
    pub subscription_id: String,
    pub vault_id: String,
    pub endpoint: String,
    pub secret: String,
    pub body: Value,
    pub attempts: u32,
    pub next_attempt: i64,
    pub last_error: Option<String>,
}

fn subs_prefix(vault_id: &str) -> String {
    format!("sys/eventsubs/{vault_id}/")
}
/// Each subscription has its own queue, in the order events were queued:
/// its head is delivered (and retried) before anything behind it.
const OUTBOX: &str = "sys/outbox/";
fn outbox_prefix(subscription_id: &str) -> String {
    format!("{OUTBOX}{subscription_id}/")
}
fn outbox_key(d: &Delivery) -> String {
    format!("{}{}", outbox_prefix(&d.subscription_id), d.id)
}
/// An id that sorts in creation order (nanoseconds, then randomness), so
/// deliveries due at the same second go out in the order they were queued.
fn ordered_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{nanos:032}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

fn dead_prefix(vault_id: &str) -> String {
    format!("sys/deadletters/{vault_id}/")
}

/// Webhooks must be https, or http to a loopback address (a local receiver).
/// The host is read the way an HTTP client reads it: no user-info part (which
/// could hide another host), and for http only a loopback host.
pub fn check_webhook_url(url: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::bad(format!(
            "The webhook URL is not accepted: {why}."
        )))
    };
    if url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("it is too long or contains spaces");
    }
    let (https, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(r), _) => (true, r),
        (_, Some(r)) => (false, r),
        _ => return bad("use https:// (or http:// to a loopback address, for a local receiver)"),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') || authority.contains('\\') {
        return bad("it has no host, or a user-info part");
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:".contains(&b))
    {
        return bad("the host is not a DNS name or an IP address");
    }
    if !https && !loopback {
        return bad("plain http is only for a loopback receiver; use https://");
    }
    Ok(())
}

const EVENT_TYPES: &[&str] = &[
    "SecretNewVersionCreated",
    "SecretNearExpiry",
    "SecretExpired",
    "KeyNewVersionCreated",
    "KeyNearExpiry",
    "KeyExpired",
    "CertificateNewVersionCreated",
    "CertificateNearExpiry",
    "CertificateExpired",
    "VaultChanged",
    "RoleAssignmentChanged",
];

impl Keyfort {
    pub async fn create_event_subscription(
        &self,
        vault: &Vault,
        endpoint: &str,
        event_types: Vec<String>,
    ) -> Result<EventSubscription> {
        check_webhook_url(endpoint)?;
        if let Some(t) = event_types
            .iter()
            .find(|t| !EVENT_TYPES.contains(&t.as_str()))
        {
            return Err(Error::bad(format!(
                "Unknown event type '{}'; use one of: {}.",
                names::printable(t),
                EVENT_TYPES.join(", ")
            )));
        }
        let sub = EventSubscription {
            id: uuid::Uuid::new_v4().to_string(),
            vault_id: vault.id.clone(),
            vault_name: vault.name.clone(),
            endpoint: endpoint.to_owned(),
            event_types,
            secret: keyfort_crypto::random::token_string(32),
            created: self.clock.now(),
        };
        let key = format!("{}{}", subs_prefix(&vault.id), sub.id);
        let sealed = self.barrier.seal_json(&key, &sub).await?;
        self.barrier.commit(Batch::new().put(key, sealed)).await?;
        Ok(sub)
    }

    /// The subscriptions of a vault, without their secrets.
    pub async fn event_subscriptions(&self, vault: &Vault) -> Result<Vec<EventSubscription>> {
        Ok(self
            .barrier
            .list_all::<EventSubscription>(&subs_prefix(&vault.id))
            .await?
            .into_iter()
            .map(|s| EventSubscription {
                secret: String::new(),
                ..s.value
            })
            .collect())
    }

    pub async fn delete_event_subscription(&self, vault: &Vault, id: &str) -> Result<()> {
        let key = format!("{}{}", subs_prefix(&vault.id), id.to_ascii_lowercase());
        if self.barrier.store().get(&key).await?.is_none() {
            return Err(Error::not_found(
                "EventSubscriptionNotFound",
                format!(
                    "Event subscription {} does not exist.",
                    names::printable(id)
                ),
            ));
        }
        // Its queued deliveries go with it.
        let id = id.to_ascii_lowercase();
        let mut batch = Batch::new().delete(key);
        for queued in self.barrier.list_keys(&outbox_prefix(&id)).await? {
            batch = batch.delete(queued);
        }
        self.barrier.commit(batch).await
    }

    pub async fn dead_letters(&self, vault: &Vault) -> Result<Vec<Delivery>> {
        Ok(self
            .barrier
            .list_all::<Delivery>(&dead_prefix(&vault.id))
            .await?
            .into_iter()
            .map(|s| Delivery {
                secret: String::new(),
                ..s.value
            })
            .collect())
    }

    /// Queues an event for every subscription of the vault that wants it.
    pub async fn publish(
        &self,
        vault: &Vault,
        event_type: &str,
        subject: &str,
        data: Value,
    ) -> Result<()> {
        let batch = self
            .event_batch(Batch::new(), vault, event_type, subject, data)
            .await?;
        if batch.ops.is_empty() {
            return Ok(());
        }
        self.barrier.commit(batch).await
    }

    /// Adds to `batch` the deliveries of an event to every subscription of
    /// the vault that wants it.
    async fn event_batch(
        &self,
        mut batch: Batch,
        vault: &Vault,
        event_type: &str,
        subject: &str,
        data: Value,
    ) -> Result<Batch> {
        let subs = self
            .barrier
            .list_all::<EventSubscription>(&subs_prefix(&vault.id))
            .await?;
        let now = self.clock.now();
        for s in subs.into_iter().map(|s| s.value) {
            if !s.event_types.is_empty() && !s.event_types.iter().any(|t| t == event_type) {
                continue;
            }
            let event = json!([{
                "id": uuid::Uuid::new_v4().to_string(),
                "topic": vault.arm_id(),
                "subject": subject,
                "eventType": format!("Microsoft.KeyVault.{event_type}"),
                "eventTime": crate::clock::rfc3339(now),
                "data": data,
                "dataVersion": "1",
                "metadataVersion": "1",
            }]);
            let d = Delivery {
                id: ordered_id(),
                subscription_id: s.id.clone(),
                vault_id: vault.id.clone(),
                endpoint: s.endpoint.clone(),
                secret: s.secret.clone(),
                body: event,
                attempts: 0,
                next_attempt: now,
                last_error: None,
            };
            let key = outbox_key(&d);
            batch = batch.put(key.clone(), self.barrier.seal_json(&key, &d).await?);
        }
        Ok(batch)
    }

    /// Queues an event about a change that has already happened: a failure
    /// to queue is logged, never turned into a failure of the change.
    pub async fn notify(&self, vault: &Vault, event_type: &str, subject: &str, data: Value) {
        if let Err(e) = self.publish(vault, event_type, subject, data).await {
            tracing::warn!(vault = %vault.name, event_type, error = %e, "could not queue an event");
        }
    }

    /// The Event Grid `data` of an event about one object version.
    pub fn object_event_data<K: ObjectKind>(
        &self,
        vault_url: &str,
        vault: &Vault,
        o: &View<K>,
    ) -> Value {
        let version = o.meta.version();
        let attributes = o.meta.attributes();
        json!({
            "Id": format!("{vault_url}/{}/{}/{version}", K::COLLECTION, o.name),
            "VaultName": vault.name,
            "ObjectType": K::TITLE,
            "ObjectName": o.name,
            "Version": version,
            "NBF": attributes.nbf,
            "EXP": attributes.exp,
        })
    }

    /// Queues `{Secret,Key}NewVersionCreated`, and the expiry events if the
    /// version is already near or past its `exp`. The write has happened: a
    /// failure to queue is logged, not returned.
    pub async fn new_version_events<K: ObjectKind>(
        &self,
        vault: &Vault,
        vault_url: &str,
        o: &View<K>,
    ) {
        let data = self.object_event_data::<K>(vault_url, vault, o);
        let event_type = format!("{}NewVersionCreated", K::TITLE);
        let queued = async {
            self.publish(vault, &event_type, &o.name, data).await?;
            self.expiry_events::<K>(vault, vault_url, o).await
        };
        if let Err(e) = queued.await {
            tracing::warn!(vault = %vault.name, error = %e, event_type, "could not queue events");
        }
    }

    /// Fires `{Secret,Key}NearExpiry` / `{Secret,Key}Expired` once per
    /// version (marks in the store remember what fired).
    pub async fn expiry_events<K: ObjectKind>(
        &self,
        vault: &Vault,
        vault_url: &str,
        o: &View<K>,
    ) -> Result<()> {
        let Some(exp) = o.meta.attributes().exp else {
            return Ok(());
        };
        let now = self.clock.now();
        let kind = if exp <= now {
            format!("{}Expired", K::TITLE)
        } else if exp - now
            <= self
                .near_expiry_secs
                .load(std::sync::atomic::Ordering::Relaxed)
        {
            format!("{}NearExpiry", K::TITLE)
        } else {
            return Ok(());
        };
        // Secrets' marks keep their original place (no kind segment), so
        // marks written before keys existed still count.
        let mark = match K::NOUN {
            "secret" => format!(
                "sys/eventmarks/{}/{}/{}/{kind}",
                vault.id,
                names::fold(&o.name),
                o.meta.version()
            ),
            noun => format!(
                "sys/eventmarks/{}/{noun}/{}/{}/{kind}",
                vault.id,
                names::fold(&o.name),
                o.meta.version()
            ),
        };
        if self.barrier.store().get(&mark).await?.is_some() {
            return Ok(());
        }
        // The mark and the deliveries commit together: the event fires once,
        // and is never marked without being queued.
        let sealed = self.barrier.seal(&mark, b"1").await?;
        let batch = self
            .event_batch(
                Batch::new().expect_absent(mark.clone()).put(mark, sealed),
                vault,
                &kind,
                &o.name,
                self.object_event_data::<K>(vault_url, vault, o),
            )
            .await?;
        match self.barrier.commit(batch).await {
            Err(Error::Conflict(_)) => Ok(()), // another pass fired it
            other => other,
        }
    }

    /// The periodic pass over every live vault: self-signed certificates due
    /// for renewal get a new version (with its event), then the latest
    /// secret, key and certificate versions are checked for expiry events.
    /// A vault that fails is logged and skipped; the others still get theirs.
    pub async fn scan_expiry(&self, vault_url: impl Fn(&Vault) -> String) -> Result<()> {
        for v in self.vaults.list().await? {
            let url = vault_url(&v);
            let scanned = async {
                for renewed in self.certificates.renew_due(&v).await? {
                    self.new_version_events::<crate::certificates::CertKind>(&v, &url, &renewed)
                        .await;
                }
                self.scan_vault_expiry(&v, &url, &self.secrets).await?;
                self.scan_vault_expiry(&v, &url, &self.keys).await?;
                self.scan_vault_expiry(&v, &url, &self.certificates).await
            };
            if let Err(e) = scanned.await {
                tracing::warn!(vault = %v.name, error = %e, "expiry scan failed for a vault");
            }
        }
        Ok(())
    }

    async fn scan_vault_expiry<K: ObjectKind>(
        &self,
        v: &Vault,
        url: &str,
        objects: &crate::objects::Objects<K>,
    ) -> Result<()> {
        let mut after: Option<String> = None;
        loop {
            let page = objects.list(v, after.as_deref(), 25).await?;
            for o in &page.items {
                self.expiry_events::<K>(v, url, o).await?;
            }
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(()),
            }
        }
    }

    /// The subscriptions whose queue head is due now (one store read per
    /// subscription with something queued).
    pub async fn due_queues(&self) -> Result<Vec<String>> {
        let now = self.clock.now();
        let mut due = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .barrier
                .list::<Delivery>(OUTBOX, after.as_deref(), 1)
                .await?;
            let Some(head) = page.into_iter().next() else {
                return Ok(due);
            };
            // Past every key of this subscription ('~' sorts after ids).
            after = Some(format!("{}~", outbox_prefix(&head.value.subscription_id)));
            if head.value.next_attempt <= now {
                due.push(head.value.subscription_id);
            }
        }
    }

    /// The head of one subscription's queue, if it is due now.
    pub async fn due_head(&self, subscription_id: &str) -> Result<Option<Stored<Delivery>>> {
        let now = self.clock.now();
        Ok(self
            .barrier
            .list::<Delivery>(&outbox_prefix(subscription_id), None, 1)
            .await?
            .into_iter()
            .find(|s| s.value.next_attempt <= now))
    }

    /// Records the outcome of one delivery attempt: done, retry later
    /// (1, 2, 4... seconds, staying at the head of its queue), or
    /// dead-lettered after the last attempt.
    /// Only if the delivery is still queued as it was read: a subscription
    /// deleted meanwhile does not get it back.
    pub async fn delivery_result(
        &self,
        head: Stored<Delivery>,
        error: Option<String>,
    ) -> Result<()> {
        let Stored {
            key,
            raw,
            value: mut d,
        } = head;
        let batch = Batch::new().expect_equals(key.clone(), raw);
        let batch = match error {
            None => batch.delete(key),
            Some(e) => {
                d.attempts += 1;
                d.last_error = Some(e);
                if d.attempts >= MAX_ATTEMPTS {
                    let dk = format!("{}{}", dead_prefix(&d.vault_id), d.id);
                    let sealed = self.barrier.seal_json(&dk, &d).await?;
                    batch.delete(key).put(dk, sealed)
                } else {
                    d.next_attempt = self.clock.now() + (1i64 << (d.attempts - 1));
                    let sealed = self.barrier.seal_json(&key, &d).await?;
                    batch.put(key, sealed)
                }
            }
        };
        match self.barrier.commit(batch).await {
            Err(Error::Conflict(_)) => Ok(()), // its subscription was deleted
            other => other,
        }
    }
}

/// The signature header value of a delivery body.
pub fn signature(secret: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        keyfort_crypto::digest::hmac_sha256_hex(secret.as_bytes(), body)
    )
}

#[cfg(test)]
mod tests {
    use super::check_webhook_url as ok;

    #[test]
    fn webhook_urls() {
        assert!(ok("https://hooks.example.com/keyfort").is_ok());
        assert!(ok("http://127.0.0.1:8080/hook").is_ok());
        assert!(ok("http://localhost:9/x").is_ok());
        assert!(ok("http://[::1]:9/x").is_ok());
        for bad in [
            "http://example.com/hook",
            "http://127.0.0.1@169.254.169.254/latest",
            "http://localhost:@10.0.0.5/",
            "http://localhost.evil.com/x",
            "https://user:pw@example.com/",
            "ftp://example.com/",
            "https:///nohost",
            "https://exa mple.com/",
        ] {
            assert!(ok(bad).is_err(), "{bad} must be refused");
        }
    }
}
