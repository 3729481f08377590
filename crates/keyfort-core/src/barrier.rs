//! The barrier: the only holder of key material, between the services and the
//! untrusted store. Every value written through it is sealed with AES-256-GCM
//! and bound (as associated data) to its storage key, which names the tenant
//! or vault, the kind, the object name and the version.
//!
//! Key hierarchy:
//! - the root key (from the unseal source) seals system records and wraps
//!   one key-encryption key (KEK) per vault;
//! - each vault record (`v/{vault_id}/...`) gets its own random data key,
//!   wrapped by the vault's KEK and stored beside the ciphertext (envelope
//!   encryption), so re-keying a vault rewraps small keys, not payloads.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use keyfort_crypto::SealingKey;
use keyfort_store::{Batch, Entry, Store};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

pub struct Barrier {
    store: Arc<dyn Store>,
    root: SealingKey,
    keks: RwLock<HashMap<String, Arc<SealingKey>>>,
}

/// A record read through the barrier, with the stored bytes kept as a
/// compare-and-swap token for the next write.
pub struct Stored<T> {
    pub key: String,
    pub value: T,
    pub raw: Vec<u8>,
}

fn kek_key(vault_id: &str) -> String {
    format!("sys/kek/{vault_id}")
}

/// The vault a storage key belongs to, if any.
fn vault_of(key: &str) -> Option<&str> {
    key.strip_prefix("v/")
        .and_then(|rest| rest.split('/').next())
}

impl Barrier {
    pub fn new(store: Arc<dyn Store>, root: SealingKey) -> Self {
        Barrier {
            store,
            root,
            keks: RwLock::new(HashMap::new()),
        }
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// Creates a vault's KEK and returns the batch that stores it (wrapped).
    pub fn new_vault_kek(&self, vault_id: &str, batch: Batch) -> Batch {
        let kek = SealingKey::generate();
        let key = kek_key(vault_id);
        let wrapped = self.root.wrap(key.as_bytes(), &kek);
        self.keks
            .write()
            .expect("kek cache lock")
            .insert(vault_id.to_owned(), Arc::new(kek));
        batch.expect_absent(key.clone()).put(key, wrapped)
    }

    async fn kek(&self, vault_id: &str) -> Result<Arc<SealingKey>> {
        if let Some(k) = self.keks.read().expect("kek cache lock").get(vault_id) {
            return Ok(k.clone());
        }
        let key = kek_key(vault_id);
        let wrapped = self.store.get(&key).await?.ok_or_else(|| {
            Error::Internal(format!("vault {vault_id} has no key-encryption key"))
        })?;
        let kek = Arc::new(self.root.unwrap(key.as_bytes(), &wrapped).map_err(|_| {
            Error::Internal(format!(
                "the key-encryption key of vault {vault_id} does not open under the root key"
            ))
        })?);
        self.keks
            .write()
            .expect("kek cache lock")
            .insert(vault_id.to_owned(), kek.clone());
        Ok(kek)
    }

    /// Forgets a vault's KEK (after the vault is purged).
    pub fn drop_vault_kek(&self, vault_id: &str) {
        self.keks.write().expect("kek cache lock").remove(vault_id);
    }

    /// Seals raw bytes for storage under `key`.
    pub async fn seal(&self, key: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        let aad = key.as_bytes();
        match vault_of(key) {
            None => Ok(self.root.seal(aad, plaintext)),
            Some(vault_id) => {
                let kek = self.kek(vault_id).await?;
                let dek = SealingKey::generate();
                let wrapped = kek.wrap(aad, &dek);
                let body = dek.seal(aad, plaintext);
                let mut out = Vec::with_capacity(2 + wrapped.len() + body.len());
                out.extend_from_slice(&(wrapped.len() as u16).to_be_bytes());
                out.extend_from_slice(&wrapped);
                out.extend_from_slice(&body);
                Ok(out)
            }
        }
    }

    /// Opens bytes sealed by [`Barrier::seal`] for the same `key`.
    pub async fn open(&self, key: &str, sealed: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let aad = key.as_bytes();
        let tampered = || Error::Internal(format!("stored record {key} failed authentication"));
        match vault_of(key) {
            None => self.root.open(aad, sealed).map_err(|_| tampered()),
            Some(vault_id) => {
                let kek = self.kek(vault_id).await?;
                if sealed.len() < 2 {
                    return Err(tampered());
                }
                let n = u16::from_be_bytes([sealed[0], sealed[1]]) as usize;
                let (wrapped, body) = sealed[2..].split_at_checked(n).ok_or_else(tampered)?;
                let dek = kek.unwrap(aad, wrapped).map_err(|_| tampered())?;
                dek.open(aad, body).map_err(|_| tampered())
            }
        }
    }

    /// Seals a record as JSON.
    pub async fn seal_json<T: Serialize>(&self, key: &str, value: &T) -> Result<Vec<u8>> {
        let plain = zeroize::Zeroizing::new(serde_json::to_vec(value)?);
        self.seal(key, &plain).await
    }

    async fn open_entry<T: DeserializeOwned>(&self, entry: Entry) -> Result<Stored<T>> {
        let plain = self.open(&entry.key, &entry.value).await?;
        let value = serde_json::from_slice(&plain)?;
        Ok(Stored {
            key: entry.key,
            value,
            raw: entry.value,
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<Stored<T>>> {
        match self.store.get(key).await? {
            None => Ok(None),
            Some(raw) => self
                .open_entry(Entry {
                    key: key.to_owned(),
                    value: raw,
                })
                .await
                .map(Some),
        }
    }

    pub async fn list<T: DeserializeOwned>(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Stored<T>>> {
        let entries = self.store.list_page(prefix, after, limit).await?;
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            out.push(self.open_entry(entry).await?);
        }
        Ok(out)
    }

    /// One page of records under `prefix` after the key suffix `after`, and
    /// the suffix to continue after when there is more.
    pub async fn page<T: DeserializeOwned>(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Stored<T>>, Option<String>)> {
        let after_key = after.map(|a| format!("{prefix}{a}"));
        let mut rows = self
            .list::<T>(prefix, after_key.as_deref(), limit + 1)
            .await?;
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|r| r.key[prefix.len()..].to_owned())
        } else {
            None
        };
        Ok((rows, next))
    }

    /// Replaces a record read earlier, if it has not changed since.
    pub async fn replace<T: Serialize>(&self, stored: Stored<T>, value: &T) -> Result<()> {
        let sealed = self.seal_json(&stored.key, value).await?;
        self.commit(
            Batch::new()
                .expect_equals(stored.key.clone(), stored.raw)
                .put(stored.key, sealed),
        )
        .await
    }

    /// Every record under `prefix`, page by page.
    pub async fn list_all<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<Stored<T>>> {
        let mut out: Vec<Stored<T>> = Vec::new();
        loop {
            let after = out.last().map(|s| s.key.clone());
            let page = self.list::<T>(prefix, after.as_deref(), 500).await?;
            let done = page.len() < 500;
            out.extend(page);
            if done {
                return Ok(out);
            }
        }
    }

    /// Keys only (no decryption), every one under `prefix`.
    pub async fn list_keys(&self, prefix: &str) -> Result<Vec<String>> {
        let mut keys: Vec<String> = Vec::new();
        loop {
            let page = self
                .store
                .list_page(prefix, keys.last().map(String::as_str), 500)
                .await?;
            let done = page.len() < 500;
            keys.extend(page.into_iter().map(|e| e.key));
            if done {
                return Ok(keys);
            }
        }
    }

    pub async fn commit(&self, batch: Batch) -> Result<()> {
        Ok(self.store.commit(batch).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyfort_store::sqlite::SqliteStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn vault_records_use_the_vault_kek_and_bind_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("db")).unwrap());
        let barrier = Barrier::new(store.clone(), SealingKey::generate());
        barrier
            .commit(barrier.new_vault_kek("v1", Batch::new()))
            .await
            .unwrap();

        let sealed = barrier
            .seal("v/v1/secrets/a", b"plaintext-value")
            .await
            .unwrap();
        assert!(!sealed.windows(15).any(|w| w == b"plaintext-value"));
        assert_eq!(
            &**barrier.open("v/v1/secrets/a", &sealed).await.unwrap(),
            b"plaintext-value"
        );
        // Moved to another name or another vault: refused.
        assert!(barrier.open("v/v1/secrets/b", &sealed).await.is_err());
        barrier
            .commit(barrier.new_vault_kek("v2", Batch::new()))
            .await
            .unwrap();
        assert!(barrier.open("v/v2/secrets/a", &sealed).await.is_err());

        // A fresh barrier with another root key cannot open the KEK.
        let other = Barrier::new(store, SealingKey::generate());
        assert!(other.open("v/v1/secrets/a", &sealed).await.is_err());
    }
}
