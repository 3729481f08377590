//! A read cache in front of any engine. It holds exactly what the engine
//! holds (ciphertext), so it changes nothing about what is kept in the clear;
//! it saves a round trip to the engine on hot keys.
//!
//! Consistency within a process: a batch's keys are evicted after the engine
//! commits it, and a read may fill the cache only if no commit finished while
//! it was reading (a generation counter, checked under the same lock that
//! eviction takes). Engines shared by several processes must also evict on
//! their peers' commits (the PostgreSQL engine does this through NOTIFY).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::{Batch, BoxFuture, Entry, Expect, Op, Result, Store, StoreError};

/// Entries kept before the cache starts over.
const DEFAULT_CAPACITY: usize = 65_536;

struct Inner {
    generation: u64,
    entries: HashMap<String, Option<Vec<u8>>>,
}

pub struct CachedStore {
    engine: Arc<dyn Store>,
    inner: Arc<Mutex<Inner>>,
    capacity: usize,
}

fn evict<'a>(inner: &Mutex<Inner>, keys: impl IntoIterator<Item = &'a str>) {
    let mut inner = inner.lock().expect("cache lock");
    for k in keys {
        inner.entries.remove(k);
    }
    inner.generation += 1;
}

impl CachedStore {
    pub fn new(engine: Arc<dyn Store>) -> Self {
        Self::with_capacity(engine, DEFAULT_CAPACITY)
    }

    pub fn with_capacity(engine: Arc<dyn Store>, capacity: usize) -> Self {
        CachedStore {
            engine,
            inner: Arc::new(Mutex::new(Inner {
                generation: 0,
                entries: HashMap::new(),
            })),
            capacity,
        }
    }

    /// Forgets `keys` (for a commit made elsewhere, e.g. another node).
    pub fn evict<'a>(&self, keys: impl IntoIterator<Item = &'a str>) {
        evict(&self.inner, keys);
    }

    fn lookup(&self, key: &str) -> (Option<Option<Vec<u8>>>, u64) {
        let inner = self.inner.lock().expect("cache lock");
        (inner.entries.get(key).cloned(), inner.generation)
    }

    fn fill(&self, key: &str, value: &Option<Vec<u8>>, read_at: u64) {
        let mut inner = self.inner.lock().expect("cache lock");
        if inner.generation != read_at {
            return; // a commit finished during the read: the value may be stale
        }
        if inner.entries.len() >= self.capacity {
            inner.entries.clear();
        }
        inner.entries.insert(key.to_owned(), value.clone());
    }
}

impl Store for CachedStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            let (hit, generation) = self.lookup(key);
            if let Some(value) = hit {
                return Ok(value);
            }
            let value = self.engine.get(key).await?;
            self.fill(key, &value, generation);
            Ok(value)
        })
    }

    fn list_page<'a>(
        &'a self,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Entry>>> {
        self.engine.list_page(prefix, after, limit)
    }

    fn commit(&self, batch: Batch) -> BoxFuture<'_, Result<()>> {
        // Every key the batch writes or checks is evicted after the engine
        // answers, whatever the answer: an engine error may hide a commit, and
        // a failed check means the cached value is stale. The commit and the
        // eviction run in their own task, so a caller that goes away (a client
        // that disconnects) cannot leave a committed change behind a stale entry.
        let mut keys: Vec<String> = batch
            .ops
            .iter()
            .map(|op| match op {
                Op::Put { key, .. } | Op::Delete { key } => key.clone(),
            })
            .collect();
        keys.extend(batch.expects.iter().map(|e| match e {
            Expect::Absent(k) | Expect::Equals(k, _) => k.clone(),
        }));
        let engine = self.engine.clone();
        let inner = self.inner.clone();
        let task = tokio::spawn(async move {
            let result = engine.commit(batch).await;
            evict(&inner, keys.iter().map(String::as_str));
            result
        });
        Box::pin(async move {
            task.await
                .map_err(|e| StoreError::Engine(format!("commit task failed: {e}")))?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::SqliteStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn passes_the_conformance_suite_and_sees_its_own_writes() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(SqliteStore::open(&dir.path().join("db")).unwrap());
        let cached = CachedStore::with_capacity(engine.clone(), 4);
        crate::testing::exercise(&cached).await;

        cached
            .commit(Batch::new().put("k", b"1".to_vec()))
            .await
            .unwrap();
        assert_eq!(cached.get("k").await.unwrap(), Some(b"1".to_vec()));
        // A write behind the cache's back is invisible until evicted...
        engine
            .commit(Batch::new().put("k", b"2".to_vec()))
            .await
            .unwrap();
        assert_eq!(cached.get("k").await.unwrap(), Some(b"1".to_vec()));
        cached.evict(["k"]);
        assert_eq!(cached.get("k").await.unwrap(), Some(b"2".to_vec()));
        // ...and a read racing a commit does not fill the cache.
        let (_, generation) = cached.lookup("z");
        cached
            .commit(Batch::new().put("z", b"new".to_vec()))
            .await
            .unwrap();
        cached.fill("z", &Some(b"old".to_vec()), generation);
        assert_eq!(cached.get("z").await.unwrap(), Some(b"new".to_vec()));
    }
}
