//! The embedded engine: SQLite in WAL mode with `synchronous=FULL`, so a
//! commit returns only after its WAL frames are fsynced.
//!
//! Writes go through one writer thread that groups every batch waiting in its
//! queue into a single transaction (each batch in its own savepoint, so one
//! failed precondition does not spoil its neighbours): one fsync serves many
//! requests under load, and none is acknowledged before that fsync. Reads use
//! a small pool of connections that WAL lets run beside the writer.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::{Batch, BoxFuture, Entry, Expect, Op, Result, Store, StoreError, prefix_upper_bound};

/// Versioned schema changes, applied in order, each exactly once.
const MIGRATIONS: &[&str] = &[
    // 1: the ordered key-value table every record of every tenant and vault lives in.
    "CREATE TABLE kv (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL) WITHOUT ROWID;",
];

/// Most batches one transaction takes before it commits.
const MAX_GROUP: usize = 256;
const READERS: usize = 4;

type Job = (Batch, oneshot::Sender<Result<()>>);

pub struct SqliteStore {
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: AtomicUsize,
    writer: Mutex<Option<mpsc::Sender<Job>>>,
}

fn engine(e: impl std::fmt::Display) -> StoreError {
    StoreError::Engine(e.to_string())
}

fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(engine)?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON;",
    )
    .map_err(engine)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY NOT NULL);",
    )
    .map_err(engine)?;
    let current: i64 = conn
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(engine)?;
    if current as usize > MIGRATIONS.len() {
        return Err(StoreError::Engine(format!(
            "the database schema is version {current}, newer than this Keyfort ({}); upgrade Keyfort",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction().map_err(engine)?;
        tx.execute_batch(sql).map_err(engine)?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES (?1)",
            params![i as i64 + 1],
        )
        .map_err(engine)?;
        tx.commit().map_err(engine)?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Self> {
        let mut writer_conn = open_connection(path)?;
        migrate(&mut writer_conn)?;
        let readers = (0..READERS)
            .map(|_| open_connection(path).map(Mutex::new))
            .collect::<Result<Vec<_>>>()?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("keyfort-sqlite-writer".into())
            .spawn(move || writer_loop(writer_conn, rx))
            .map_err(engine)?;
        Ok(SqliteStore {
            readers: Arc::new(readers),
            next_reader: AtomicUsize::new(0),
            writer: Mutex::new(Some(tx)),
        })
    }

    async fn with_reader<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let readers = self.readers.clone();
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            // Take the first idle connection, starting at a rotating index.
            for i in 0..readers.len() {
                if let Ok(conn) = readers[(start + i) % readers.len()].try_lock() {
                    return f(&conn);
                }
            }
            let conn = readers[start % readers.len()].lock().map_err(engine)?;
            f(&conn)
        })
        .await
        .map_err(engine)?
    }
}

fn check_expect(conn: &Connection, expect: &Expect) -> Result<()> {
    let key = match expect {
        Expect::Absent(k) | Expect::Equals(k, _) => k,
    };
    let current: Option<Vec<u8>> = conn
        .query_row("SELECT value FROM kv WHERE key = ?1", params![key], |r| {
            r.get(0)
        })
        .optional()
        .map_err(engine)?;
    let holds = match (expect, current) {
        (Expect::Absent(_), None) => true,
        (Expect::Equals(_, want), Some(have)) => *want == have,
        _ => false,
    };
    if holds {
        Ok(())
    } else {
        Err(StoreError::Conflict(key.clone()))
    }
}

fn apply_batch(conn: &Connection, batch: &Batch) -> Result<()> {
    for expect in &batch.expects {
        check_expect(conn, expect)?;
    }
    let mut put = conn
        .prepare_cached("INSERT INTO kv (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
        .map_err(engine)?;
    let mut del = conn
        .prepare_cached("DELETE FROM kv WHERE key = ?1")
        .map_err(engine)?;
    for op in &batch.ops {
        match op {
            Op::Put { key, value } => put.execute(params![key, value]).map_err(engine)?,
            Op::Delete { key } => del.execute(params![key]).map_err(engine)?,
        };
    }
    Ok(())
}

/// Runs one group: every batch in its own savepoint inside one transaction.
/// Any error outside a batch's own checks rolls the whole group back, so the
/// connection never stays inside an open transaction.
fn commit_group(conn: &Connection, jobs: &[Job]) -> Result<Vec<Result<()>>> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(engine)?;
    let outcome = (|| {
        let mut results = Vec::with_capacity(jobs.len());
        for (batch, _) in jobs {
            conn.execute_batch("SAVEPOINT batch").map_err(engine)?;
            let result = apply_batch(conn, batch);
            if result.is_err() {
                conn.execute_batch("ROLLBACK TO batch").map_err(engine)?;
            }
            conn.execute_batch("RELEASE batch").map_err(engine)?;
            results.push(result);
        }
        conn.execute_batch("COMMIT").map_err(engine)?;
        Ok(results)
    })();
    if outcome.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    outcome
}

fn writer_loop(conn: Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        match commit_group(&conn, &jobs) {
            Ok(results) => {
                for ((_, reply), result) in jobs.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                for (_, reply) in jobs {
                    let _ = reply.send(Err(StoreError::Engine(e.to_string())));
                }
            }
        }
    }
}

impl Store for SqliteStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        let key = key.to_owned();
        Box::pin(self.with_reader(move |conn| {
            conn.prepare_cached("SELECT value FROM kv WHERE key = ?1")
                .map_err(engine)?
                .query_row(params![key], |r| r.get(0))
                .optional()
                .map_err(engine)
        }))
    }

    fn list_page<'a>(
        &'a self,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Entry>>> {
        let lower = match after {
            Some(a) if a >= prefix => a.to_owned(),
            _ => String::new(),
        };
        let prefix = prefix.to_owned();
        // Keys are ASCII, so U+007F sorts after every key: an upper bound that
        // is always a plain range keeps the primary-key index in use (an
        // `OR` in the bound made SQLite scan to the end of the table).
        let upper =
            prefix_upper_bound(&prefix).unwrap_or_else(|| "\u{7f}".repeat(prefix.len() + 1));
        Box::pin(self.with_reader(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT key, value FROM kv WHERE key >= ?1 AND key > ?2 AND key < ?3 ORDER BY key LIMIT ?4")
                .map_err(engine)?;
            let rows = stmt
                .query_map(params![prefix, lower, upper, limit as i64], |r| Ok(Entry { key: r.get(0)?, value: r.get(1)? }))
                .map_err(engine)?;
            rows.collect::<std::result::Result<Vec<_>, _>>().map_err(engine)
        }))
    }

    fn commit(&self, batch: Batch) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let (reply, done) = oneshot::channel();
            {
                let guard = self.writer.lock().map_err(engine)?;
                let sender = guard
                    .as_ref()
                    .ok_or_else(|| StoreError::Engine("the store is closed".into()))?;
                sender
                    .send((batch, reply))
                    .map_err(|_| StoreError::Engine("the writer thread stopped".into()))?;
            }
            done.await.map_err(|_| {
                StoreError::Engine("the writer thread stopped before answering".into())
            })?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("keyfort.db")).unwrap();
        crate::testing::exercise(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn data_and_schema_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyfort.db");
        {
            let store = SqliteStore::open(&path).unwrap();
            store
                .commit(Batch::new().put("k", b"v".to_vec()))
                .await
                .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.get("k").await.unwrap(), Some(b"v".to_vec()));
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(version as usize, MIGRATIONS.len());
        let sync: i64 = open_connection(&path)
            .unwrap()
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous must be FULL");
    }
}
