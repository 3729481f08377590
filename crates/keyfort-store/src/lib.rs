//! Keyfort's storage interface. A store is an ordered map from string keys to
//! opaque bytes with atomic, conditional batches. It is untrusted: everything
//! above it seals values before they arrive here, so an engine only ever sees
//! names and ciphertext.
//!
//! Engines: [`sqlite::SqliteStore`] (embedded; WAL with full fsync, group
//! commit). Every engine passes [`testing::exercise`].

pub mod cache;
pub mod sqlite;
pub mod testing;

use std::future::Future;
use std::pin::Pin;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One stored pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Vec<u8>,
}

/// A change inside a batch.
#[derive(Clone, Debug)]
pub enum Op {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

/// A precondition of a batch, checked inside the same transaction as its
/// changes: optimistic concurrency without locks held across requests.
#[derive(Clone, Debug)]
pub enum Expect {
    /// The key must not exist.
    Absent(String),
    /// The key must hold exactly these bytes.
    Equals(String, Vec<u8>),
}

/// Changes applied all together or not at all.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub expects: Vec<Expect>,
    pub ops: Vec<Op>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn expect_absent(mut self, key: impl Into<String>) -> Self {
        self.expects.push(Expect::Absent(key.into()));
        self
    }
    pub fn expect_equals(mut self, key: impl Into<String>, value: Vec<u8>) -> Self {
        self.expects.push(Expect::Equals(key.into(), value));
        self
    }
    pub fn put(mut self, key: impl Into<String>, value: Vec<u8>) -> Self {
        self.ops.push(Op::Put {
            key: key.into(),
            value,
        });
        self
    }
    pub fn delete(mut self, key: impl Into<String>) -> Self {
        self.ops.push(Op::Delete { key: key.into() });
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A precondition of the batch did not hold; nothing was written.
    #[error("a concurrent change touched the same data (precondition on {0} failed)")]
    Conflict(String),
    /// The engine failed; whether the batch was written is unknown only if
    /// the process died, otherwise it was not.
    #[error("storage engine error: {0}")]
    Engine(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The storage interface every engine implements.
pub trait Store: Send + Sync + 'static {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>>;

    /// Entries whose keys start with `prefix` and sort after `after`, in key
    /// order, at most `limit`.
    fn list_page<'a>(
        &'a self,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Entry>>>;

    /// Applies the batch atomically and durably: when this returns `Ok`, the
    /// batch survives a crash of the process or the machine.
    fn commit(&self, batch: Batch) -> BoxFuture<'_, Result<()>>;
}

/// The smallest key greater than every key that starts with `prefix`
/// (keys are ASCII), or `None` when no bound is needed.
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0x7f {
            bytes.push(last + 1);
            return String::from_utf8(bytes).ok();
        }
    }
    None
}
