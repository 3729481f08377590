//! The lifecycle every vault object shares: versions, the latest-version
//! head, soft delete, recovery, purge (with purge protection), the purge
//! sweeper, and backup and restore. Secrets and keys are kinds of object
//! ([`ObjectKind`]); what differs between them (their payload, their extra
//! metadata, their own rules) lives in their modules.
//!
//! Storage layout inside a vault, for a kind whose collection is `secrets`
//! and noun `secret` (names folded to lower case, since Key Vault names are
//! case-insensitive):
//!
//! - `v/{vault}/secrets/{name}`: the head of a live object (latest metadata);
//! - `v/{vault}/deletedsecrets/{name}`: the head of a soft-deleted object;
//! - `v/{vault}/secretversions/{name}/{version}`: each version, payload included.
//!
//! Every change is one conditional batch, so concurrent writers cannot lose
//! a version or resurrect a deleted name.

use std::marker::PhantomData;
use std::sync::Arc;

use keyfort_store::Batch;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backup::{self, BackupPayload};
use crate::barrier::{Barrier, Stored};
use crate::clock::{Clock, DAY};
use crate::model::{Attributes, Deletion, Head, ObjectVersion, Tags, Vault};
use crate::{Error, Result, names};

pub const MAX_TAGS: usize = 15;
pub const MAX_TAG_LEN: usize = 512;
/// Backups of objects with more versions than this are refused, as in Azure.
pub const MAX_BACKUP_VERSIONS: usize = 500;
const RETRIES: usize = 5;

/// The metadata of one version, whatever the kind.
pub trait ObjectMeta:
    Clone + std::fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
    fn version(&self) -> &str;
    fn attributes(&self) -> &Attributes;
    fn attributes_mut(&mut self) -> &mut Attributes;
}

/// A kind of vault object and the words Azure uses for it.
pub trait ObjectKind: Send + Sync + 'static {
    type Meta: ObjectMeta;
    /// The sealed payload of a version (a secret's value, a key's private key).
    type Value: Clone + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// `secret`, `key`: in messages, storage prefixes and backups.
    const NOUN: &'static str;
    /// `Secret`, `Key`: at the start of a message.
    const TITLE: &'static str;
    /// `secrets`, `keys`: the URL collection.
    const COLLECTION: &'static str;
    /// `SecretNotFound`, `KeyNotFound`.
    const NOT_FOUND: &'static str;

    /// Other records about the object, removed with it when it is purged
    /// (a key's backup marks, a certificate's pending operation).
    fn related_keys(_vault: &Vault, _folded_name: &str) -> Vec<String> {
        Vec::new()
    }
}

/// One more record to write in the same batch as a new version, on the
/// condition that it still holds `expect` (or is absent, for `None`).
pub struct ExtraPut {
    pub key: String,
    pub expect: Option<Vec<u8>>,
    pub value: Vec<u8>,
}

/// Attribute changes a caller may ask for (`created`/`updated` are ours).
#[derive(Clone, Debug, Default)]
pub struct AttributeChanges {
    pub enabled: Option<bool>,
    pub nbf: Option<Option<i64>>,
    pub exp: Option<Option<i64>>,
}

impl AttributeChanges {
    /// Applies the changes and stamps `updated`; refuses an `exp` before `nbf`.
    pub fn apply(&self, attrs: &mut Attributes, now: i64) -> Result<()> {
        if let Some(enabled) = self.enabled {
            attrs.enabled = enabled;
        }
        if let Some(nbf) = self.nbf {
            attrs.nbf = nbf;
        }
        if let Some(exp) = self.exp {
            attrs.exp = exp;
        }
        attrs.updated = now;
        if let (Some(nbf), Some(exp)) = (attrs.nbf, attrs.exp)
            && exp < nbf
        {
            return Err(Error::bad(
                "Attribute 'exp' must be later than attribute 'nbf'.",
            ));
        }
        Ok(())
    }

    /// Refuses changes that could never apply (an `exp` before `nbf`),
    /// before anything is read.
    pub fn validate(&self) -> Result<()> {
        self.new_attributes(0).map(|_| ())
    }

    /// The attributes of a new version: enabled unless asked otherwise.
    pub fn new_attributes(&self, now: i64) -> Result<Attributes> {
        let mut attributes = Attributes {
            enabled: true,
            created: now,
            ..Default::default()
        };
        self.apply(&mut attributes, now)?;
        Ok(attributes)
    }
}

/// Azure's limits on tags: at most 15, names 1–512 and values up to 512 characters.
pub fn check_tags(noun: &str, tags: Option<&Tags>) -> Result<()> {
    let Some(tags) = tags else { return Ok(()) };
    if tags.len() > MAX_TAGS {
        return Err(Error::bad(format!(
            "A {noun} can have at most {MAX_TAGS} tags; {} were given.",
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
    Ok(())
}

/// What the API shows of one version: the payload only where the operation reveals it.
pub struct ObjectView<M, V> {
    pub name: String,
    pub meta: M,
    pub value: Option<V>,
    pub deletion: Option<Deletion>,
}

// Written by hand so that a payload can never reach a log through `{:?}`.
impl<M: std::fmt::Debug, V> std::fmt::Debug for ObjectView<M, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectView")
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

pub type View<K> = ObjectView<<K as ObjectKind>::Meta, <K as ObjectKind>::Value>;
type VersionOf<K> = ObjectVersion<<K as ObjectKind>::Meta, <K as ObjectKind>::Value>;
type HeadOf<K> = Head<<K as ObjectKind>::Meta>;

/// A stored version read for its metadata only (serde skips the payload).
#[derive(serde::Deserialize)]
struct MetaOnly<M> {
    meta: M,
}

/// The shared lifecycle of one kind of object.
pub struct Objects<K: ObjectKind> {
    barrier: Arc<Barrier>,
    clock: Arc<dyn Clock>,
    kind: PhantomData<K>,
}

impl<K: ObjectKind> Objects<K> {
    pub fn new(barrier: Arc<Barrier>, clock: Arc<dyn Clock>) -> Self {
        Objects {
            barrier,
            clock,
            kind: PhantomData,
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    fn live_prefix(vault: &Vault) -> String {
        format!("v/{}/{}/", vault.id, K::COLLECTION)
    }
    fn deleted_prefix(vault: &Vault) -> String {
        format!("v/{}/deleted{}/", vault.id, K::COLLECTION)
    }
    fn head_key(vault: &Vault, folded: &str) -> String {
        format!("{}{folded}", Self::live_prefix(vault))
    }
    fn deleted_key(vault: &Vault, folded: &str) -> String {
        format!("{}{folded}", Self::deleted_prefix(vault))
    }
    fn versions_prefix(vault: &Vault, folded: &str) -> String {
        format!("v/{}/{}versions/{folded}/", vault.id, K::NOUN)
    }
    fn version_key(vault: &Vault, folded: &str, version: &str) -> String {
        format!(
            "{}{}",
            Self::versions_prefix(vault, folded),
            version.to_ascii_lowercase()
        )
    }

    pub fn check_name(name: &str) -> Result<()> {
        names::check_object_name(K::NOUN, name)
    }

    pub fn not_found(name: &str) -> Error {
        Error::not_found(
            K::NOT_FOUND,
            format!(
                "A {} with (name/id) {} was not found in this key vault. If you recently deleted this {} you may be able to recover it using the correct recovery command.",
                K::NOUN,
                names::printable(name),
                K::NOUN
            ),
        )
    }

    fn version_not_found(name: &str, version: &str) -> Error {
        Error::not_found(
            K::NOT_FOUND,
            format!(
                "A {} with (name/id) {}/{} was not found in this key vault.",
                K::NOUN,
                names::printable(name),
                names::printable(version)
            ),
        )
    }

    fn deleted_not_found(name: &str) -> Error {
        Error::not_found(
            K::NOT_FOUND,
            format!("Deleted {} not found: {}", K::TITLE, names::printable(name)),
        )
    }

    fn name_in_deleted_state(name: &str) -> Error {
        Error::Conflict(format!(
            "{} {} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the {} can only be recovered or purged.",
            K::TITLE,
            names::printable(name),
            K::NOUN
        ))
    }

    fn busy(name: &str) -> Error {
        Error::Conflict(format!(
            "{} {} is being changed by many concurrent requests; retry the operation.",
            K::TITLE,
            names::printable(name)
        ))
    }

    async fn live_head(&self, vault: &Vault, name: &str) -> Result<Option<Stored<HeadOf<K>>>> {
        self.barrier
            .get(&Self::head_key(vault, &names::fold(name)))
            .await
    }

    async fn deleted_head(&self, vault: &Vault, name: &str) -> Result<Option<Stored<HeadOf<K>>>> {
        self.barrier
            .get(&Self::deleted_key(vault, &names::fold(name)))
            .await
    }

    /// The latest metadata of a live object, without its payload.
    pub async fn head(&self, vault: &Vault, name: &str) -> Result<View<K>> {
        Self::check_name(name)?;
        let head = self
            .live_head(vault, name)
            .await?
            .ok_or_else(|| Self::not_found(name))?;
        Ok(ObjectView {
            name: head.value.name,
            meta: head.value.latest,
            value: None,
            deletion: None,
        })
    }

    /// Creates a new version and makes it the latest. `meta` builds the new
    /// version's metadata from the time and the new version id.
    pub(crate) async fn add_version(
        &self,
        vault: &Vault,
        name: &str,
        meta: impl Fn(i64, String) -> Result<K::Meta>,
        value: K::Value,
    ) -> Result<View<K>> {
        self.add_version_with(vault, name, meta, value, None).await
    }

    /// [`Objects::add_version`], committing `extra` in the same batch: both
    /// happen or neither does.
    pub(crate) async fn add_version_with(
        &self,
        vault: &Vault,
        name: &str,
        meta: impl Fn(i64, String) -> Result<K::Meta>,
        value: K::Value,
        extra: Option<&ExtraPut>,
    ) -> Result<View<K>> {
        Self::check_name(name)?;
        let folded = names::fold(name);
        for _ in 0..RETRIES {
            if self.deleted_head(vault, name).await?.is_some() {
                return Err(Self::name_in_deleted_state(name));
            }
            let head = self.live_head(vault, name).await?;
            let meta = meta(self.clock.now(), keyfort_crypto::random::hex_id())?;
            let display = head
                .as_ref()
                .map(|h| h.value.name.clone())
                .unwrap_or_else(|| name.to_owned());
            let version = ObjectVersion {
                name: display.clone(),
                meta: meta.clone(),
                value: value.clone(),
            };
            let new_head = Head {
                name: display.clone(),
                latest: meta.clone(),
                deletion: None,
            };
            let hk = Self::head_key(vault, &folded);
            let vk = Self::version_key(vault, &folded, meta.version());
            let mut batch = Batch::new()
                .expect_absent(Self::deleted_key(vault, &folded))
                .expect_absent(vk.clone());
            batch = match &head {
                Some(h) => batch.expect_equals(hk.clone(), h.raw.clone()),
                None => batch.expect_absent(hk.clone()),
            };
            let mut batch = batch
                .put(vk.clone(), self.barrier.seal_json(&vk, &version).await?)
                .put(hk.clone(), self.barrier.seal_json(&hk, &new_head).await?);
            if let Some(extra) = extra {
                batch = match &extra.expect {
                    Some(raw) => batch.expect_equals(extra.key.clone(), raw.clone()),
                    None => batch.expect_absent(extra.key.clone()),
                }
                .put(extra.key.clone(), extra.value.clone());
            }
            match self.barrier.commit(batch).await {
                Ok(()) => {
                    return Ok(ObjectView {
                        name: display,
                        meta,
                        value: Some(value),
                        deletion: None,
                    });
                }
                Err(Error::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Self::busy(name))
    }

    /// One version of a live object, payload included. `version` None means
    /// the latest. A soft-deleted object's versions are not readable until it
    /// is recovered.
    pub(crate) async fn read(
        &self,
        vault: &Vault,
        name: &str,
        version: Option<&str>,
    ) -> Result<View<K>> {
        Self::check_name(name)?;
        let head = self
            .live_head(vault, name)
            .await?
            .ok_or_else(|| Self::not_found(name))?;
        let version = match version {
            Some(v) => {
                names::check_version(v)?;
                v.to_ascii_lowercase()
            }
            None => head.value.latest.version().to_owned(),
        };
        let stored: Stored<VersionOf<K>> = self
            .barrier
            .get(&Self::version_key(vault, &names::fold(name), &version))
            .await?
            .ok_or_else(|| Self::version_not_found(name, &version))?;
        let v = stored.value;
        Ok(ObjectView {
            name: v.name,
            meta: v.meta,
            value: Some(v.value),
            deletion: None,
        })
    }

    /// Live objects, by name, `limit` at a time, continuing after `after`.
    pub async fn list(
        &self,
        vault: &Vault,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<View<K>>> {
        self.list_heads(&Self::live_prefix(vault), after, limit)
            .await
    }

    /// Soft-deleted objects.
    pub async fn list_deleted(
        &self,
        vault: &Vault,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<View<K>>> {
        self.list_heads(&Self::deleted_prefix(vault), after, limit)
            .await
    }

    async fn list_heads(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<View<K>>> {
        let after = after.map(names::fold);
        let (rows, next) = self
            .barrier
            .page::<HeadOf<K>>(prefix, after.as_deref(), limit)
            .await?;
        let items = rows
            .into_iter()
            .map(|r| ObjectView {
                name: r.value.name,
                meta: r.value.latest,
                value: None,
                deletion: r.value.deletion,
            })
            .collect();
        Ok(Page { items, next })
    }

    /// The versions of a live object (metadata only).
    pub async fn list_versions(
        &self,
        vault: &Vault,
        name: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<View<K>>> {
        Self::check_name(name)?;
        let head = self
            .live_head(vault, name)
            .await?
            .ok_or_else(|| Self::not_found(name))?;
        let prefix = Self::versions_prefix(vault, &names::fold(name));
        let after = after.map(str::to_ascii_lowercase);
        // Metadata only: the payload (a private key, say) is not decoded.
        let (rows, next) = self
            .barrier
            .page::<MetaOnly<K::Meta>>(&prefix, after.as_deref(), limit)
            .await?;
        let items = rows
            .into_iter()
            .map(|r| ObjectView {
                name: head.value.name.clone(),
                meta: r.value.meta,
                value: None,
                deletion: None,
            })
            .collect();
        Ok(Page { items, next })
    }

    /// Changes one version's metadata (never its payload): the attribute
    /// changes, then `edit` for what is particular to the kind.
    pub async fn update(
        &self,
        vault: &Vault,
        name: &str,
        version: Option<&str>,
        changes: &AttributeChanges,
        edit: impl Fn(&mut K::Meta) -> Result<()>,
    ) -> Result<View<K>> {
        Self::check_name(name)?;
        if let Some(v) = version {
            names::check_version(v)?;
        }
        let folded = names::fold(name);
        for _ in 0..RETRIES {
            let head = self
                .live_head(vault, name)
                .await?
                .ok_or_else(|| Self::not_found(name))?;
            let target = version
                .map(str::to_ascii_lowercase)
                .unwrap_or_else(|| head.value.latest.version().to_owned());
            let vk = Self::version_key(vault, &folded, &target);
            let stored: Stored<VersionOf<K>> = self
                .barrier
                .get(&vk)
                .await?
                .ok_or_else(|| Self::version_not_found(name, &target))?;
            let mut v = stored.value;
            changes.apply(v.meta.attributes_mut(), self.clock.now())?;
            edit(&mut v.meta)?;
            let hk = Self::head_key(vault, &folded);
            let mut batch = Batch::new()
                .expect_equals(vk.clone(), stored.raw)
                .expect_equals(hk.clone(), head.raw.clone())
                .put(vk.clone(), self.barrier.seal_json(&vk, &v).await?);
            if head.value.latest.version() == target {
                let new_head = Head {
                    latest: v.meta.clone(),
                    ..head.value.clone()
                };
                batch = batch.put(hk.clone(), self.barrier.seal_json(&hk, &new_head).await?);
            }
            match self.barrier.commit(batch).await {
                Ok(()) => {
                    return Ok(ObjectView {
                        name: v.name,
                        meta: v.meta,
                        value: None,
                        deletion: None,
                    });
                }
                Err(Error::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Self::busy(name))
    }

    /// Soft-deletes an object with all its versions.
    pub async fn delete(&self, vault: &Vault, name: &str) -> Result<View<K>> {
        Self::check_name(name)?;
        let head = self
            .live_head(vault, name)
            .await?
            .ok_or_else(|| Self::not_found(name))?;
        let now = self.clock.now();
        let deletion = Deletion {
            deleted_date: now,
            scheduled_purge_date: now + vault.retention_days * DAY,
        };
        let deleted = Head {
            deletion: Some(deletion),
            ..head.value.clone()
        };
        let dk = Self::deleted_key(vault, &names::fold(name));
        let batch = Batch::new()
            .expect_equals(head.key.clone(), head.raw.clone())
            .expect_absent(dk.clone())
            .delete(head.key.clone())
            .put(dk.clone(), self.barrier.seal_json(&dk, &deleted).await?);
        self.barrier.commit(batch).await?;
        Ok(ObjectView {
            name: deleted.name,
            meta: deleted.latest,
            value: None,
            deletion: Some(deletion),
        })
    }

    pub async fn get_deleted(&self, vault: &Vault, name: &str) -> Result<View<K>> {
        Self::check_name(name)?;
        let d = self
            .deleted_head(vault, name)
            .await?
            .ok_or_else(|| Self::deleted_not_found(name))?;
        Ok(ObjectView {
            name: d.value.name,
            meta: d.value.latest,
            value: None,
            deletion: d.value.deletion,
        })
    }

    /// Brings a soft-deleted object back, whole.
    pub async fn recover(&self, vault: &Vault, name: &str) -> Result<View<K>> {
        Self::check_name(name)?;
        let d = self
            .deleted_head(vault, name)
            .await?
            .ok_or_else(|| Self::deleted_not_found(name))?;
        let hk = Self::head_key(vault, &names::fold(name));
        let live = Head {
            deletion: None,
            ..d.value.clone()
        };
        let batch = Batch::new()
            .expect_equals(d.key.clone(), d.raw.clone())
            .expect_absent(hk.clone())
            .delete(d.key.clone())
            .put(hk.clone(), self.barrier.seal_json(&hk, &live).await?);
        self.barrier.commit(batch).await?;
        Ok(ObjectView {
            name: live.name,
            meta: live.latest,
            value: None,
            deletion: None,
        })
    }

    /// Removes a soft-deleted object for good. Refused under purge protection
    /// until its scheduled purge date.
    pub async fn purge(&self, vault: &Vault, name: &str) -> Result<()> {
        Self::check_name(name)?;
        let d = self
            .deleted_head(vault, name)
            .await?
            .ok_or_else(|| Self::deleted_not_found(name))?;
        let due = d
            .value
            .deletion
            .map(|x| x.scheduled_purge_date)
            .unwrap_or(0);
        if vault.purge_protection && self.clock.now() < due {
            return Err(Error::forbidden(format!(
                "Operation \"purge\" is not allowed: vault '{}' has purge protection on, so deleted {} {} can only be recovered until its scheduled purge date ({}).",
                vault.name,
                K::NOUN,
                names::printable(name),
                crate::clock::rfc3339(due)
            )));
        }
        self.purge_stored(vault, d).await
    }

    async fn purge_stored(&self, vault: &Vault, d: Stored<HeadOf<K>>) -> Result<()> {
        let folded = names::fold(&d.value.name);
        let prefix = Self::versions_prefix(vault, &folded);
        let mut batch = Batch::new()
            .expect_equals(d.key.clone(), d.raw.clone())
            .delete(d.key.clone());
        for key in K::related_keys(vault, &folded) {
            batch = batch.delete(key);
        }
        for key in self.barrier.list_keys(&prefix).await? {
            batch = batch.delete(key);
        }
        self.barrier.commit(batch).await
    }

    /// Purges every deleted object of the vault whose purge date has passed.
    /// Returns how many were purged.
    pub async fn sweep(&self, vault: &Vault) -> Result<usize> {
        let now = self.clock.now();
        let mut purged = 0;
        for d in self
            .barrier
            .list_all::<HeadOf<K>>(&Self::deleted_prefix(vault))
            .await?
        {
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

    /// Every version of a live object, in a blob only this tenant can open.
    pub async fn backup(
        &self,
        vault: &Vault,
        name: &str,
        backup_key: &keyfort_crypto::SealingKey,
    ) -> Result<Vec<u8>> {
        Ok(self.backup_versions(vault, name, backup_key).await?.0)
    }

    /// A backup blob and the versions it holds.
    pub async fn backup_versions(
        &self,
        vault: &Vault,
        name: &str,
        backup_key: &keyfort_crypto::SealingKey,
    ) -> Result<(Vec<u8>, Vec<String>)> {
        Self::check_name(name)?;
        let head = self
            .live_head(vault, name)
            .await?
            .ok_or_else(|| Self::not_found(name))?;
        let prefix = Self::versions_prefix(vault, &names::fold(name));
        let versions = self.barrier.list_all::<VersionOf<K>>(&prefix).await?;
        if versions.len() > MAX_BACKUP_VERSIONS {
            return Err(Error::bad(format!(
                "{} {} has {} versions; backup is limited to {MAX_BACKUP_VERSIONS}.",
                K::TITLE,
                names::printable(name),
                versions.len()
            )));
        }
        let ids = versions
            .iter()
            .map(|v| v.value.meta.version().to_owned())
            .collect();
        let payload = BackupPayload {
            kind: K::NOUN.into(),
            name: head.value.name.clone(),
            latest: head.value.latest.version().to_owned(),
            versions: versions.into_iter().map(|s| s.value).collect(),
        };
        let blob = backup::seal_blob(backup_key, &vault.tenant_id, &vault.location, &payload)?;
        Ok((blob, ids))
    }

    /// Restores a backup blob into `vault` under its original name.
    pub async fn restore(
        &self,
        vault: &Vault,
        blob: &[u8],
        backup_key: &keyfort_crypto::SealingKey,
    ) -> Result<View<K>> {
        let payload: BackupPayload<VersionOf<K>> =
            backup::open_blob(backup_key, &vault.tenant_id, &vault.location, K::NOUN, blob)?;
        Self::check_name(&payload.name)?;
        let folded = names::fold(&payload.name);
        let latest = payload
            .versions
            .iter()
            .find(|v| v.meta.version() == payload.latest)
            .ok_or_else(|| Error::bad("Backup blob contains invalid or corrupt version."))?
            .meta
            .clone();
        if self.deleted_head(vault, &payload.name).await?.is_some() {
            return Err(Self::name_in_deleted_state(&payload.name));
        }
        let hk = Self::head_key(vault, &folded);
        let head = Head {
            name: payload.name.clone(),
            latest: latest.clone(),
            deletion: None,
        };
        let mut batch = Batch::new()
            .expect_absent(hk.clone())
            .expect_absent(Self::deleted_key(vault, &folded))
            .put(hk.clone(), self.barrier.seal_json(&hk, &head).await?);
        for v in &payload.versions {
            names::check_version(v.meta.version())?;
            let vk = Self::version_key(vault, &folded, v.meta.version());
            batch = batch
                .expect_absent(vk.clone())
                .put(vk.clone(), self.barrier.seal_json(&vk, v).await?);
        }
        self.barrier.commit(batch).await.map_err(|e| match e {
            Error::Conflict(_) => Error::Conflict(format!(
                "{} {} already exists in this vault; delete and purge it, or restore into another vault.",
                K::TITLE,
                names::printable(&payload.name)
            )),
            other => other,
        })?;
        Ok(ObjectView {
            name: head.name,
            meta: latest,
            value: None,
            deletion: None,
        })
    }
}
