//! Secrets: versioned values with Azure Key Vault's attribute semantics and
//! soft-delete lifecycle. Storage layout inside a vault (names folded to
//! lower case, since Key Vault names are case-insensitive):
//!
//! - `v/{vault}/secrets/{name}`: the head of a live secret (latest metadata);
//! - `v/{vault}/deletedsecrets/{name}`: the head of a soft-deleted secret;
//! - `v/{vault}/secretversions/{name}/{version}`: each version, value included.
//!
//! Every change is one conditional batch, so concurrent writers cannot lose
//! a version or resurrect a deleted name.

use std::sync::Arc;

use keyfort_store::Batch;
use zeroize::Zeroizing;

use crate::backup::{self, BackupPayload};
use crate::barrier::{Barrier, Stored};
use crate::clock::{Clock, DAY};
use crate::model::{Attributes, Deletion, SecretHead, SecretMeta, SecretVersion, Tags, Vault};
use crate::{Error, Result, names};

/// Azure's data actions for secrets, one per kind of operation.
pub mod actions {
    pub const GET: &str = "Microsoft.KeyVault/vaults/secrets/getSecret/action";
    pub const SET: &str = "Microsoft.KeyVault/vaults/secrets/setSecret/action";
    pub const READ_METADATA: &str = "Microsoft.KeyVault/vaults/secrets/readMetadata/action";
    pub const UPDATE: &str = "Microsoft.KeyVault/vaults/secrets/update/action";
    pub const DELETE: &str = "Microsoft.KeyVault/vaults/secrets/delete";
    pub const BACKUP: &str = "Microsoft.KeyVault/vaults/secrets/backup/action";
    pub const RESTORE: &str = "Microsoft.KeyVault/vaults/secrets/restore/action";
    pub const RECOVER: &str = "Microsoft.KeyVault/vaults/secrets/recover/action";
    pub const PURGE: &str = "Microsoft.KeyVault/vaults/secrets/purge/action";
    /// Every secrets data action the API exposes.
    pub const ALL: &[&str] = &[
        GET,
        SET,
        READ_METADATA,
        UPDATE,
        DELETE,
        BACKUP,
        RESTORE,
        RECOVER,
        PURGE,
    ];
}

/// Azure's limit on a secret value.
pub const MAX_VALUE_BYTES: usize = 25 * 1024;
pub const MAX_CONTENT_TYPE: usize = 255;
pub const MAX_TAGS: usize = 15;
pub const MAX_TAG_LEN: usize = 512;
/// Backups of objects with more versions than this are refused, as in Azure.
pub const MAX_BACKUP_VERSIONS: usize = 500;
const RETRIES: usize = 5;

/// Attribute changes a caller may ask for (`created`/`updated` are ours).
#[derive(Clone, Debug, Default)]
pub struct AttributeChanges {
    pub enabled: Option<bool>,
    pub nbf: Option<Option<i64>>,
    pub exp: Option<Option<i64>>,
}

pub struct SetSecret {
    pub value: Zeroizing<String>,
    pub content_type: Option<String>,
    pub tags: Option<Tags>,
    pub attributes: AttributeChanges,
}

#[derive(Default)]
pub struct UpdateSecret {
    pub content_type: Option<String>,
    pub tags: Option<Tags>,
    pub attributes: AttributeChanges,
}

/// What the API shows of a secret version.
pub struct SecretView {
    pub name: String,
    pub meta: SecretMeta,
    pub value: Option<Zeroizing<String>>,
    pub deletion: Option<Deletion>,
}

// Written by hand so that a value can never reach a log through `{:?}`.
impl std::fmt::Debug for SecretView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretView")
            .field("name", &self.name)
            .field("meta", &self.meta)
            .field("value", &self.value.as_ref().map(|_| "<redacted>"))
            .field("deletion", &self.deletion)
            .finish()
    }
}

/// One page of a listing and the key to continue after it.
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

pub struct Secrets {
    barrier: Arc<Barrier>,
    clock: Arc<dyn Clock>,
}

fn head_key(vault: &Vault, folded: &str) -> String {
    format!("v/{}/secrets/{folded}", vault.id)
}
fn deleted_key(vault: &Vault, folded: &str) -> String {
    format!("v/{}/deletedsecrets/{folded}", vault.id)
}
fn versions_prefix(vault: &Vault, folded: &str) -> String {
    format!("v/{}/secretversions/{folded}/", vault.id)
}
fn version_key(vault: &Vault, folded: &str, version: &str) -> String {
    format!(
        "{}{}",
        versions_prefix(vault, folded),
        version.to_ascii_lowercase()
    )
}

fn not_found(name: &str) -> Error {
    Error::not_found(
        "SecretNotFound",
        format!(
            "A secret with (name/id) {} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command.",
            names::printable(name)
        ),
    )
}

fn version_not_found(name: &str, version: &str) -> Error {
    Error::not_found(
        "SecretNotFound",
        format!(
            "A secret with (name/id) {}/{} was not found in this key vault.",
            names::printable(name),
            names::printable(version)
        ),
    )
}

fn deleted_not_found(name: &str) -> Error {
    Error::not_found(
        "SecretNotFound",
        format!("Deleted Secret not found: {}", names::printable(name)),
    )
}

fn name_in_deleted_state(name: &str) -> Error {
    Error::Conflict(format!(
        "Secret {} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.",
        names::printable(name)
    ))
}

fn check_metadata(
    content_type: Option<&String>,
    tags: Option<&Tags>,
    changes: &AttributeChanges,
) -> Result<()> {
    if let Some(ct) = content_type
        && ct.chars().count() > MAX_CONTENT_TYPE
    {
        return Err(Error::bad(format!(
            "contentType is longer than {MAX_CONTENT_TYPE} characters."
        )));
    }
    if let Some(tags) = tags {
        if tags.len() > MAX_TAGS {
            return Err(Error::bad(format!(
                "A secret can have at most {MAX_TAGS} tags; {} were given.",
                tags.len()
            )));
        }
        if tags.iter().any(|(k, v)| {
            k.is_empty() || k.chars().count() > MAX_TAG_LEN || v.chars().count() > MAX_TAG_LEN
        }) {
            return Err(Error::bad(format!(
                "Tag names must be 1 to {MAX_TAG_LEN} characters and tag values at most {MAX_TAG_LEN}."
            )));
        }
    }
    if let (Some(Some(nbf)), Some(Some(exp))) = (changes.nbf, changes.exp)
        && exp < nbf
    {
        return Err(Error::bad(
            "Attribute 'exp' must be later than attribute 'nbf'.",
        ));
    }
    Ok(())
}

fn apply_changes(attrs: &mut Attributes, changes: &AttributeChanges, now: i64) {
    if let Some(enabled) = changes.enabled {
        attrs.enabled = enabled;
    }
    if let Some(nbf) = changes.nbf {
        attrs.nbf = nbf;
    }
    if let Some(exp) = changes.exp {
        attrs.exp = exp;
    }
    attrs.updated = now;
}

impl Secrets {
    pub fn new(barrier: Arc<Barrier>, clock: Arc<dyn Clock>) -> Self {
        Secrets { barrier, clock }
    }

    async fn live_head(&self, vault: &Vault, name: &str) -> Result<Option<Stored<SecretHead>>> {
        self.barrier.get(&head_key(vault, &names::fold(name))).await
    }

    async fn deleted_head(&self, vault: &Vault, name: &str) -> Result<Option<Stored<SecretHead>>> {
        self.barrier
            .get(&deleted_key(vault, &names::fold(name)))
            .await
    }

    async fn read_version(
        &self,
        vault: &Vault,
        name: &str,
        version: &str,
    ) -> Result<Option<Stored<SecretVersion>>> {
        self.barrier
            .get(&version_key(vault, &names::fold(name), version))
            .await
    }

    /// Creates a new version and makes it the latest.
    pub async fn set(&self, vault: &Vault, name: &str, req: SetSecret) -> Result<SecretView> {
        names::check_object_name("secret", name)?;
        if req.value.len() > MAX_VALUE_BYTES {
            return Err(Error::bad(format!(
                "The secret value is {} bytes; the maximum is {MAX_VALUE_BYTES} bytes (25 KB).",
                req.value.len()
            )));
        }
        check_metadata(
            req.content_type.as_ref(),
            req.tags.as_ref(),
            &req.attributes,
        )?;
        let folded = names::fold(name);
        for _ in 0..RETRIES {
            if self.deleted_head(vault, name).await?.is_some() {
                return Err(name_in_deleted_state(name));
            }
            let head = self.live_head(vault, name).await?;
            let now = self.clock.now();
            let mut attributes = Attributes {
                enabled: true,
                created: now,
                ..Default::default()
            };
            apply_changes(&mut attributes, &req.attributes, now);
            let meta = SecretMeta {
                version: keyfort_crypto::random::hex_id(),
                attributes,
                content_type: req.content_type.clone(),
                tags: req.tags.clone(),
            };
            let display = head
                .as_ref()
                .map(|h| h.value.name.clone())
                .unwrap_or_else(|| name.to_owned());
            let version = SecretVersion {
                name: display.clone(),
                meta: meta.clone(),
                value: req.value.clone(),
            };
            let new_head = SecretHead {
                name: display.clone(),
                latest: meta.clone(),
                deletion: None,
            };

            let hk = head_key(vault, &folded);
            let vk = version_key(vault, &folded, &meta.version);
            let mut batch = Batch::new()
                .expect_absent(deleted_key(vault, &folded))
                .expect_absent(vk.clone());
            batch = match &head {
                Some(h) => batch.expect_equals(hk.clone(), h.raw.clone()),
                None => batch.expect_absent(hk.clone()),
            };
            let batch = batch
                .put(vk.clone(), self.barrier.seal_json(&vk, &version).await?)
                .put(hk.clone(), self.barrier.seal_json(&hk, &new_head).await?);
            match self.barrier.commit(batch).await {
                Ok(()) => {
                    return Ok(SecretView {
                        name: display,
                        meta,
                        value: Some(req.value),
                        deletion: None,
                    });
                }
                Err(Error::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict(format!(
            "Secret {} is being changed by many concurrent requests; retry the operation.",
            names::printable(name)
        )))
    }

    /// A version's value and metadata. `version` None means the latest.
    /// Disabled or not-yet-valid versions refuse to reveal their value.
    pub async fn get(
        &self,
        vault: &Vault,
        name: &str,
        version: Option<&str>,
    ) -> Result<SecretView> {
        names::check_object_name("secret", name)?;
        // A soft-deleted secret's versions are not readable until it is recovered.
        let head = self
            .live_head(vault, name)
            .await?
            .ok_or_else(|| not_found(name))?;
        let version = match version {
            Some(v) => {
                names::check_version(v)?;
                v.to_ascii_lowercase()
            }
            None => head.value.latest.version,
        };
        let stored = self
            .read_version(vault, name, &version)
            .await?
            .ok_or_else(|| version_not_found(name, &version))?;
        let v = stored.value;
        let attrs = &v.meta.attributes;
        if !attrs.enabled {
            return Err(Error::Forbidden {
                message: "Operation get is not allowed on a disabled secret.".into(),
                inner: Some("SecretDisabled"),
            });
        }
        // nbf and exp are advisory for secrets, as in Azure: a value staged
        // ahead of a rotation, or past its expiry, can still be read.
        Ok(SecretView {
            name: v.name.clone(),
            meta: v.meta.clone(),
            value: Some(v.value.clone()),
            deletion: None,
        })
    }

    /// Live secrets, by name, `limit` at a time, continuing after `after`.
    pub async fn list(
        &self,
        vault: &Vault,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<SecretView>> {
        let prefix = format!("v/{}/secrets/", vault.id);
        self.list_heads(&prefix, after, limit).await
    }

    /// Soft-deleted secrets.
    pub async fn list_deleted(
        &self,
        vault: &Vault,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<SecretView>> {
        let prefix = format!("v/{}/deletedsecrets/", vault.id);
        self.list_heads(&prefix, after, limit).await
    }

    async fn list_heads(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<SecretView>> {
        let after = after.map(names::fold);
        let (rows, next) = self
            .barrier
            .page::<SecretHead>(prefix, after.as_deref(), limit)
            .await?;
        let items = rows
            .into_iter()
            .map(|r| SecretView {
                name: r.value.name,
                meta: r.value.latest,
                value: None,
                deletion: r.value.deletion,
            })
            .collect();
        Ok(Page { items, next })
    }

    /// The versions of a live secret (metadata only).
    pub async fn list_versions(
        &self,
        vault: &Vault,
        name: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<SecretView>> {
        names::check_object_name("secret", name)?;
        let head = self
            .live_head(vault, name)
            .await?
            .ok_or_else(|| not_found(name))?;
        let prefix = versions_prefix(vault, &names::fold(name));
        let after = after.map(str::to_ascii_lowercase);
        let (rows, next) = self
            .barrier
            .page::<SecretVersion>(&prefix, after.as_deref(), limit)
            .await?;
        let items = rows
            .into_iter()
            .map(|r| SecretView {
                name: head.value.name.clone(),
                meta: r.value.meta.clone(),
                value: None,
                deletion: None,
            })
            .collect();
        Ok(Page { items, next })
    }

    /// Changes a version's attributes, content type or tags; never its value.
    pub async fn update(
        &self,
        vault: &Vault,
        name: &str,
        version: Option<&str>,
        req: UpdateSecret,
    ) -> Result<SecretView> {
        names::check_object_name("secret", name)?;
        if let Some(v) = version {
            names::check_version(v)?;
        }
        check_metadata(
            req.content_type.as_ref(),
            req.tags.as_ref(),
            &req.attributes,
        )?;
        let folded = names::fold(name);
        for _ in 0..RETRIES {
            let head = self
                .live_head(vault, name)
                .await?
                .ok_or_else(|| not_found(name))?;
            let target = version
                .map(str::to_ascii_lowercase)
                .unwrap_or_else(|| head.value.latest.version.clone());
            let stored = self
                .read_version(vault, name, &target)
                .await?
                .ok_or_else(|| version_not_found(name, &target))?;
            let mut v = stored.value;
            let now = self.clock.now();
            apply_changes(&mut v.meta.attributes, &req.attributes, now);
            if let (Some(nbf), Some(exp)) = (v.meta.attributes.nbf, v.meta.attributes.exp)
                && exp < nbf
            {
                return Err(Error::bad(
                    "Attribute 'exp' must be later than attribute 'nbf'.",
                ));
            }
            if req.content_type.is_some() {
                v.meta.content_type = req.content_type.clone();
            }
            if req.tags.is_some() {
                v.meta.tags = req.tags.clone();
            }
            let vk = version_key(vault, &folded, &target);
            let hk = head_key(vault, &folded);
            let mut batch = Batch::new()
                .expect_equals(vk.clone(), stored.raw)
                .expect_equals(hk.clone(), head.raw.clone())
                .put(vk.clone(), self.barrier.seal_json(&vk, &v).await?);
            if head.value.latest.version == target {
                let new_head = SecretHead {
                    latest: v.meta.clone(),
                    ..head.value.clone()
                };
                batch = batch.put(hk.clone(), self.barrier.seal_json(&hk, &new_head).await?);
            }
            match self.barrier.commit(batch).await {
                Ok(()) => {
                    return Ok(SecretView {
                        name: v.name.clone(),
                        meta: v.meta.clone(),
                        value: None,
                        deletion: None,
                    });
                }
                Err(Error::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict(
            "The secret is being changed concurrently; retry the operation.".into(),
        ))
    }

    /// Soft-deletes a secret with all its versions.
    pub async fn delete(&self, vault: &Vault, name: &str) -> Result<SecretView> {
        names::check_object_name("secret", name)?;
        let head = self
            .live_head(vault, name)
            .await?
            .ok_or_else(|| not_found(name))?;
        let now = self.clock.now();
        let deletion = Deletion {
            deleted_date: now,
            scheduled_purge_date: now + vault.retention_days * DAY,
        };
        let deleted = SecretHead {
            deletion: Some(deletion),
            ..head.value.clone()
        };
        let folded = names::fold(name);
        let dk = deleted_key(vault, &folded);
        let batch = Batch::new()
            .expect_equals(head.key.clone(), head.raw.clone())
            .expect_absent(dk.clone())
            .delete(head.key.clone())
            .put(dk.clone(), self.barrier.seal_json(&dk, &deleted).await?);
        self.barrier.commit(batch).await?;
        Ok(SecretView {
            name: deleted.name,
            meta: deleted.latest,
            value: None,
            deletion: Some(deletion),
        })
    }

    pub async fn get_deleted(&self, vault: &Vault, name: &str) -> Result<SecretView> {
        names::check_object_name("secret", name)?;
        let d = self
            .deleted_head(vault, name)
            .await?
            .ok_or_else(|| deleted_not_found(name))?;
        Ok(SecretView {
            name: d.value.name,
            meta: d.value.latest,
            value: None,
            deletion: d.value.deletion,
        })
    }

    /// Brings a soft-deleted secret back, whole.
    pub async fn recover(&self, vault: &Vault, name: &str) -> Result<SecretView> {
        names::check_object_name("secret", name)?;
        let d = self
            .deleted_head(vault, name)
            .await?
            .ok_or_else(|| deleted_not_found(name))?;
        let folded = names::fold(name);
        let hk = head_key(vault, &folded);
        let live = SecretHead {
            deletion: None,
            ..d.value.clone()
        };
        let batch = Batch::new()
            .expect_equals(d.key.clone(), d.raw.clone())
            .expect_absent(hk.clone())
            .delete(d.key.clone())
            .put(hk.clone(), self.barrier.seal_json(&hk, &live).await?);
        self.barrier.commit(batch).await?;
        Ok(SecretView {
            name: live.name,
            meta: live.latest,
            value: None,
            deletion: None,
        })
    }

    /// Removes a soft-deleted secret for good. Refused under purge protection
    /// until its scheduled purge date.
    pub async fn purge(&self, vault: &Vault, name: &str) -> Result<()> {
        names::check_object_name("secret", name)?;
        let d = self
            .deleted_head(vault, name)
            .await?
            .ok_or_else(|| deleted_not_found(name))?;
        let due = d
            .value
            .deletion
            .map(|x| x.scheduled_purge_date)
            .unwrap_or(0);
        if vault.purge_protection && self.clock.now() < due {
            return Err(Error::forbidden(format!(
                "Operation \"purge\" is not allowed: vault '{}' has purge protection on, so deleted secret {} can only be recovered until its scheduled purge date ({}).",
                vault.name,
                names::printable(name),
                crate::clock::rfc3339(due)
            )));
        }
        self.purge_stored(vault, d).await
    }

    async fn purge_stored(&self, vault: &Vault, d: Stored<SecretHead>) -> Result<()> {
        let prefix = versions_prefix(vault, &names::fold(&d.value.name));
        let mut batch = Batch::new()
            .expect_equals(d.key.clone(), d.raw.clone())
            .delete(d.key.clone());
        for key in self.barrier.list_keys(&prefix).await? {
            batch = batch.delete(key);
        }
        self.barrier.commit(batch).await
    }

    /// Purges every deleted secret of the vault whose purge date has passed.
    /// Returns how many were purged.
    pub async fn sweep(&self, vault: &Vault) -> Result<usize> {
        let now = self.clock.now();
        let prefix = format!("v/{}/deletedsecrets/", vault.id);
        let mut purged = 0;
        for d in self.barrier.list_all::<SecretHead>(&prefix).await? {
            if d.value
                .deletion
                .is_some_and(|x| x.scheduled_purge_date <= now)
            {
                match self.purge_stored(vault, d).await {
                    Ok(()) => purged += 1,
                    Err(Error::Conflict(_)) => {} // recovered or purged meanwhile
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(purged)
    }

    /// Every version of a live secret, in a blob only this tenant can open.
    pub async fn backup(
        &self,
        vault: &Vault,
        name: &str,
        backup_key: &keyfort_crypto::SealingKey,
    ) -> Result<Vec<u8>> {
        names::check_object_name("secret", name)?;
        let head = self
            .live_head(vault, name)
            .await?
            .ok_or_else(|| not_found(name))?;
        let prefix = versions_prefix(vault, &names::fold(name));
        let versions = self.barrier.list_all::<SecretVersion>(&prefix).await?;
        if versions.len() > MAX_BACKUP_VERSIONS {
            return Err(Error::bad(format!(
                "Secret {} has {} versions; backup is limited to {MAX_BACKUP_VERSIONS}.",
                names::printable(name),
                versions.len()
            )));
        }
        let payload = BackupPayload {
            kind: "secret".into(),
            name: head.value.name.clone(),
            latest: head.value.latest.version.clone(),
            versions: versions.into_iter().map(|s| s.value).collect(),
        };
        backup::seal_blob(backup_key, &vault.tenant_id, &vault.location, &payload)
    }

    /// Restores a backup blob into `vault` under its original name.
    pub async fn restore(
        &self,
        vault: &Vault,
        blob: &[u8],
        backup_key: &keyfort_crypto::SealingKey,
    ) -> Result<SecretView> {
        let payload = backup::open_blob(backup_key, &vault.tenant_id, &vault.location, blob)?;
        if payload.kind != "secret" {
            return Err(Error::bad(
                "The backup blob holds a different kind of object, not a secret.",
            ));
        }
        names::check_object_name("secret", &payload.name)?;
        let folded = names::fold(&payload.name);
        let latest = payload
            .versions
            .iter()
            .find(|v| v.meta.version == payload.latest)
            .ok_or_else(|| Error::bad("Backup blob contains invalid or corrupt version."))?
            .meta
            .clone();
        if self.deleted_head(vault, &payload.name).await?.is_some() {
            return Err(name_in_deleted_state(&payload.name));
        }
        let hk = head_key(vault, &folded);
        let head = SecretHead {
            name: payload.name.clone(),
            latest: latest.clone(),
            deletion: None,
        };
        let mut batch = Batch::new()
            .expect_absent(hk.clone())
            .expect_absent(deleted_key(vault, &folded))
            .put(hk.clone(), self.barrier.seal_json(&hk, &head).await?);
        for v in &payload.versions {
            names::check_version(&v.meta.version)?;
            let vk = version_key(vault, &folded, &v.meta.version);
            batch = batch
                .expect_absent(vk.clone())
                .put(vk.clone(), self.barrier.seal_json(&vk, v).await?);
        }
        self.barrier.commit(batch).await.map_err(|e| match e {
            Error::Conflict(_) => Error::Conflict(format!(
                "Secret {} already exists in this vault; delete and purge it, or restore into another vault.",
                names::printable(&payload.name)
            )),
            other => other,
        })?;
        Ok(SecretView {
            name: head.name,
            meta: latest,
            value: None,
            deletion: None,
        })
    }
}
