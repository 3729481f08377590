//! Audit records: one per request, allowed or refused. A record names the
//! caller, the operation, the vault and object names, and the outcome; it
//! never holds a secret value, key material, password or token.
//!
//! Records form a hash chain: each carries its `sequence`, the `previousHash`
//! and its own `hash` (SHA-256 over the previous hash and the record's
//! canonical JSON, keys sorted). Every `checkpoint_every` records a
//! checkpoint record, signed with the server's token key, is added to the
//! chain and its head is kept in the store, so a truncated log is detected
//! too. Under heavy load checkpoints are paced (at most one per
//! `checkpoint_spacing`): each costs an RSA signature and a store write. [`verify`] finds the first record where an edit, a deletion, a
//! reordering or a truncation breaks the chain.
//!
//! A request already running when the sinks fail has done its work: its
//! record is held, kept in the store ([`keep_held`], under
//! `sys/auditheld/`) before the request answers, and chained first once a
//! sink takes records again, or at the next start-up after a crash
//! ([`Auditor::resume_held`]).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use keyfort_store::Batch;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::barrier::Barrier;
use crate::clock::Clock;
use crate::{Error, Result};

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub time: String,
    /// Azure's log category for these records: always `AuditEvent`.
    pub category: &'static str,
    pub request_id: String,
    pub correlation_id: Option<String>,
    pub operation_name: String,
    /// The request's `api-version`.
    pub operation_version: Option<String>,
    /// The ARM id of the resource the request addressed, when known.
    pub resource_id: Option<String>,
    pub vault: Option<String>,
    /// The tenant that owns the resource (the vault's), when known.
    pub resource_tenant_id: Option<String>,
    pub object: Option<String>,
    pub result_type: &'static str,
    /// The HTTP status text (`OK`, `Forbidden`, ...), as Azure logs it.
    pub result_signature: String,
    pub http_status: u16,
    pub caller_ip: String,
    pub identity: Option<AuditIdentity>,
    /// The role assignment that allowed the request, when one did.
    pub authorization: Option<String>,
    /// Why it was refused, when it was.
    pub reason: Option<String>,
    pub duration_ms: u64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditIdentity {
    // Alphabetical, as the chain's canonical JSON orders keys.
    pub app_id: String,
    pub object_id: String,
    pub tenant_id: String,
    /// A user's name; none for applications.
    pub upn: Option<String>,
}

/// A record as chained: every member in alphabetical order, so serializing
/// the struct gives the canonical JSON (sorted keys) directly.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Chained<'a> {
    authorization: &'a Option<String>,
    caller_ip: &'a str,
    category: &'a str,
    correlation_id: &'a Option<String>,
    duration_ms: u64,
    http_status: u16,
    identity: &'a Option<AuditIdentity>,
    object: &'a Option<String>,
    operation_name: &'a str,
    operation_version: &'a Option<String>,
    previous_hash: &'a str,
    reason: &'a Option<String>,
    request_id: &'a str,
    resource_id: &'a Option<String>,
    resource_tenant_id: &'a Option<String>,
    result_signature: &'a str,
    result_type: &'a str,
    sequence: u64,
    time: &'a str,
    vault: &'a Option<String>,
}

/// Where records go.
pub trait AuditSink: Send + Sync {
    fn write_line(&self, line: &[u8]) -> std::io::Result<()>;

    /// Makes the lines written so far durable (the file: fsync). Asked of
    /// the first sink before the store lets go of held records just chained.
    fn sync(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Appends JSON lines to a file (mode 0600), rotating it by size: the full
/// file becomes `{path}.{n}` and a new one starts; the chain runs on across files.
pub struct FileSink {
    path: PathBuf,
    max_bytes: u64,
    file: Mutex<(File, u64)>,
}

fn open_append(path: &Path) -> std::io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let file = opts.open(path)?;
    // An existing file keeps its mode on open: tighten it too.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(file)
}

fn rotated_numbers(path: &Path) -> Vec<u64> {
    rotated_files(path).into_iter().map(|(n, _)| n).collect()
}

/// The log files of `path`, oldest first: `{path}.1`, `{path}.2`, ..., `{path}`.
pub fn log_files(path: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = rotated_files(path).into_iter().map(|(_, p)| p).collect();
    if path.exists() {
        files.push(path.to_path_buf());
    }
    files
}

/// The rotated files of `path` with their numbers, oldest first.
fn rotated_files(path: &Path) -> Vec<(u64, PathBuf)> {
    let mut rotated: Vec<(u64, PathBuf)> = Vec::new();
    if let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str()))
        && let Ok(entries) = std::fs::read_dir(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
    {
        for e in entries.flatten() {
            let fname = e.file_name().to_string_lossy().to_string();
            if let Some(n) = fname
                .strip_prefix(&format!("{name}."))
                .and_then(|n| n.parse::<u64>().ok())
            {
                rotated.push((n, e.path()));
            }
        }
    }
    rotated.sort();
    rotated
}

/// A crash or power loss in the middle of a write can leave a last line
/// without its newline: it is cut off (it was never acknowledged), so the
/// next record starts on a line of its own and the chain resumes from the
/// last whole record. Returns the file's size.
fn cut_torn_tail(path: &Path, file: &File) -> std::io::Result<u64> {
    let size = file.metadata()?.len();
    if size == 0 {
        return Ok(0);
    }
    let mut last = [0u8; 1];
    let mut reader = File::open(path)?;
    std::io::Seek::seek(&mut reader, std::io::SeekFrom::End(-1))?;
    std::io::Read::read_exact(&mut reader, &mut last)?;
    if last[0] == b'\n' {
        return Ok(size);
    }
    // Only after a crash: read the whole file to find the last whole line.
    let bytes = std::fs::read(path)?;
    let keep = bytes
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i as u64 + 1);
    tracing::warn!(
        cut = size - keep,
        "the audit file ended in a partial record (a crash during a write); it was cut off"
    );
    file.set_len(keep)?;
    file.sync_all()?;
    Ok(keep)
}

impl FileSink {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        Self::with_rotation(path, 64 * 1024 * 1024)
    }

    pub fn with_rotation(path: &Path, max_bytes: u64) -> std::io::Result<Self> {
        let file = open_append(path)?;
        let size = cut_torn_tail(path, &file)?;
        Ok(FileSink {
            path: path.to_path_buf(),
            max_bytes,
            file: Mutex::new((file, size)),
        })
    }

    fn rotate(&self, state: &mut (File, u64)) -> std::io::Result<()> {
        // After the highest rotated number, so an archived (removed) older
        // file never makes a rename overwrite a newer one.
        let next = rotated_numbers(&self.path).into_iter().max().unwrap_or(0) + 1;
        // The full file is synced before it is set aside: a later `sync`
        // reaches only the new one, and held records chained just before the
        // rotation must be on disk before the store lets go of them. Best
        // effort: a file that cannot be synced still rotates.
        let _ = state.0.sync_data();
        std::fs::rename(
            &self.path,
            self.path.with_file_name(format!(
                "{}.{next}",
                self.path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("audit.jsonl")
            )),
        )?;
        *state = (open_append(&self.path)?, 0);
        Ok(())
    }
}

impl AuditSink for FileSink {
    fn write_line(&self, line: &[u8]) -> std::io::Result<()> {
        let mut state = self
            .file
            .lock()
            .map_err(|_| std::io::Error::other("audit file lock poisoned"))?;
        if state.1 > 0 && state.1 + line.len() as u64 > self.max_bytes {
            self.rotate(&mut state)?;
        }
        // One write call per record keeps records whole under concurrency.
        if let Err(e) = state.0.write_all(line) {
            // A full disk or a size limit can take part of a line: cut it
            // off, so the file never holds half a record.
            let _ = state.0.set_len(state.1);
            return Err(e);
        }
        state.1 += line.len() as u64;
        Ok(())
    }

    fn sync(&self) -> std::io::Result<()> {
        let state = self
            .file
            .lock()
            .map_err(|_| std::io::Error::other("audit file lock poisoned"))?;
        match state.0.sync_data() {
            // A file that cannot be synced (a pipe, a character device)
            // holds what it was given as much as it ever will.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported
                ) =>
            {
                Ok(())
            }
            other => other,
        }
    }
}

/// Writes records to standard output (for a log collector).
pub struct StdoutSink;

impl AuditSink for StdoutSink {
    fn write_line(&self, line: &[u8]) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(line)?;
        out.flush()
    }
}

/// SHA-256 (hex) over the previous hash and the canonical JSON of a record
/// without its `hash` (serde_json sorts object keys).
pub fn chain_hash(previous: &str, record: &Value) -> String {
    hash_canonical(previous, &serde_json::to_vec(record).unwrap_or_default())
}

fn hash_canonical(previous: &str, canonical: &[u8]) -> String {
    let mut buf = Vec::with_capacity(previous.len() + 1 + canonical.len());
    buf.extend_from_slice(previous.as_bytes());
    buf.push(b'\n');
    buf.extend_from_slice(canonical);
    keyfort_crypto::digest::sha256(&buf)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The hash every chain starts from.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

type Sign = Box<dyn Fn(&Value) -> Option<String> + Send + Sync>;
type Persist = Box<dyn Fn(u64, String) + Send + Sync>;
/// Keeps a held record durably (the store); `Ok` only once it is.
pub type SaveHeld = Box<dyn Fn(&HeldRecord) -> Result<()> + Send + Sync>;
/// Removes held records (by id) from where [`SaveHeld`] kept them.
pub type ForgetHeld = Box<dyn Fn(&[u64]) -> Result<()> + Send + Sync>;

struct Holding {
    save: SaveHeld,
    forget: ForgetHeld,
}

/// The record of a request that ran while no sink could take it, as kept in
/// the store until it is chained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldRecord {
    /// Orders held records: ids grow in the order records are held, and
    /// across restarts (a start-up continues after the highest one kept).
    pub id: u64,
    /// The chain's (sequence, hash) when the record was held: it is chained
    /// somewhere after that record.
    pub after: (u64, String),
    /// The record as it will be chained (an [`AuditRecord`] as JSON, with
    /// its "Recorded late" note), without `sequence`, `previousHash`, `hash`.
    pub record: Value,
}

/// How many held records a start-up found, and what became of them.
#[derive(Debug, Default, PartialEq)]
pub struct ResumedHeld {
    /// Already in the log (chained before the crash, not yet forgotten by
    /// the store): forgotten, not chained again.
    pub already_in_log: usize,
    /// Chained now, first after the last record on disk.
    pub chained: usize,
    /// Not chainable now (no sink takes records): still held, and requests
    /// are refused until they are chained.
    pub still_held: usize,
}

struct Chain {
    sequence: u64,
    head: String,
    /// Records of requests that ran but whose record no sink took: they are
    /// chained first, in order, as soon as the sinks work again.
    held: Vec<HeldRecord>,
    next_held_id: u64,
    /// Held records now chained (in the file) that the store still keeps:
    /// it lets go of them once the file has them durably.
    unforgotten: Vec<u64>,
    /// After a failed attempt to forget, when to try again.
    forget_retry: Option<std::time::Instant>,
    /// A checkpoint came due but could not be written: it is written before
    /// the next record.
    checkpoint_owed: bool,
    /// Records chained since the last checkpoint, and when that was.
    since_checkpoint: u64,
    last_checkpoint: Option<std::time::Instant>,
}

/// Held records beyond this are dropped (only requests already running when
/// the sinks failed are held: new ones are refused before they run).
const MAX_HELD: usize = 100_000;

/// Writes each record to every sink, chained; fails when the first sink (the
/// durable file) does not take it.
pub struct Auditor {
    sinks: Vec<Box<dyn AuditSink>>,
    chain: Mutex<Chain>,
    checkpoint_every: u64,
    checkpoint_spacing: std::time::Duration,
    signer: OnceLock<Sign>,
    persist_head: OnceLock<Persist>,
    holding: OnceLock<Holding>,
    healthy: AtomicBool,
}

impl Auditor {
    /// `resume` is the (sequence, hash) of the last record already written.
    pub fn new(sinks: Vec<Box<dyn AuditSink>>, resume: Option<(u64, String)>) -> Self {
        let (sequence, head) = resume.unwrap_or((0, GENESIS.to_string()));
        Auditor {
            sinks,
            chain: Mutex::new(Chain {
                sequence,
                head,
                held: Vec::new(),
                next_held_id: 0,
                unforgotten: Vec::new(),
                forget_retry: None,
                checkpoint_owed: false,
                since_checkpoint: 0,
                last_checkpoint: None,
            }),
            checkpoint_every: 100,
            checkpoint_spacing: std::time::Duration::from_millis(250),
            signer: OnceLock::new(),
            persist_head: OnceLock::new(),
            holding: OnceLock::new(),
            healthy: AtomicBool::new(true),
        }
    }

    pub fn with_checkpoint_every(mut self, n: u64) -> Self {
        self.checkpoint_every = n.max(1);
        self
    }

    /// The least time between two checkpoints (250 ms by default).
    pub fn with_checkpoint_spacing(mut self, spacing: std::time::Duration) -> Self {
        self.checkpoint_spacing = spacing;
        self
    }

    fn checkpoint_due(&self, chain: &Chain) -> bool {
        chain.checkpoint_owed
            || chain.since_checkpoint >= self.checkpoint_every
                && chain
                    .last_checkpoint
                    .is_none_or(|t| t.elapsed() >= self.checkpoint_spacing)
    }

    /// How checkpoints are signed (the server's token key) and where their
    /// head is kept (the store).
    pub fn set_checkpointing(&self, sign: Sign, persist: Persist) {
        let _ = self.signer.set(sign);
        let _ = self.persist_head.set(persist);
    }

    /// Where held records are kept while they wait (the store): `save` runs
    /// before [`Auditor::record`] returns the error of a record it holds,
    /// and `forget` once held records are in the file and synced. Without
    /// it (or when `save` fails) held records are kept in memory only, and a
    /// crash before the sinks recover loses them.
    pub fn set_holding(&self, save: SaveHeld, forget: ForgetHeld) {
        let _ = self.holding.set(Holding { save, forget });
    }

    /// At start-up, before any request and after [`Auditor::set_holding`]:
    /// takes the held records an earlier run kept in the store (`held`) and
    /// chains them first, in the order they were held. The log at `log` is
    /// read back from the record the oldest was held after: one it already
    /// holds (that run chained it, then stopped before the store let go of
    /// it) is only forgotten, never written twice. What cannot be chained
    /// now stays held, and requests are refused until it is.
    pub fn resume_held(&self, log: &Path, mut held: Vec<HeldRecord>) -> ResumedHeld {
        held.sort_by_key(|h| h.id);
        held.retain(|h| {
            // Not one of ours: left in the store for an operator to look at.
            let ours = h.record.is_object();
            if !ours {
                tracing::error!(
                    id = h.id,
                    "a held audit record in the store is not a record; it is left there"
                );
            }
            ours
        });
        let Ok(mut chain) = self.chain.lock() else {
            return ResumedHeld {
                still_held: held.len(),
                ..Default::default()
            };
        };
        if let Some(last) = held.last() {
            chain.next_held_id = chain.next_held_id.max(last.id + 1);
        }
        let mut report = ResumedHeld::default();
        let found = held_in_log(log, &held);
        for (h, in_log) in held.into_iter().zip(found) {
            if in_log {
                report.already_in_log += 1;
                chain.unforgotten.push(h.id);
            } else {
                chain.held.push(h);
            }
        }
        let waiting = chain.held.len();
        let _ = self.write_held(&mut chain);
        report.still_held = chain.held.len();
        report.chained = waiting - report.still_held;
        report
    }

    /// Refuses new requests while no sink can take a record. After a failure
    /// each call first writes the held records, then probes the sinks with a
    /// chained `sinkCheck` record, so the server recovers by itself once a
    /// sink works again and no record of a request that ran is lost.
    pub fn preflight(&self) -> Result<()> {
        if self.healthy.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut chain = self.chain.lock().map_err(|_| unavailable())?;
        self.write_held(&mut chain)?;
        self.append(&mut chain, json!({ "type": "sinkCheck", "time": crate::clock::rfc3339(crate::clock::SystemClock.now()) }))
    }

    /// Chains the held records, oldest first; stops at the first refusal.
    /// Then lets the store forget those now in the file.
    fn write_held(&self, chain: &mut Chain) -> Result<()> {
        if chain.held.is_empty() && chain.unforgotten.is_empty() {
            return Ok(());
        }
        let held = std::mem::take(&mut chain.held);
        let mut rest = held.into_iter();
        let mut written = Ok(());
        while let Some(record) = rest.next() {
            if let Err(e) = self.append_held(chain, &record) {
                chain.held = std::iter::once(record).chain(rest).collect();
                written = Err(e);
                break;
            }
            chain.unforgotten.push(record.id);
        }
        self.forget_chained(chain);
        written
    }

    /// Removes the chained held records from the store. The order is what
    /// makes it safe: first the record is appended to the file, then the
    /// file is synced, and only then is the store's copy deleted. A crash
    /// anywhere in between leaves the record in both places, never in
    /// neither: the next start-up finds it in the log and does not chain it
    /// again ([`Auditor::resume_held`]). (Deleting first would lose the
    /// record to a crash before the append.) A failure here is retried
    /// later; the records stay listed meanwhile.
    fn forget_chained(&self, chain: &mut Chain) {
        if chain.unforgotten.is_empty()
            || chain
                .forget_retry
                .is_some_and(|t| std::time::Instant::now() < t)
        {
            return;
        }
        let Some(holding) = self.holding.get() else {
            chain.unforgotten.clear();
            return;
        };
        let synced = match self.sinks.first() {
            Some(file) => file.sync().map_err(|e| e.to_string()),
            None => Err("no audit sink".into()),
        };
        let forgotten =
            synced.and_then(|()| (holding.forget)(&chain.unforgotten).map_err(|e| e.to_string()));
        match forgotten {
            Ok(()) => {
                chain.unforgotten.clear();
                chain.forget_retry = None;
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    records = chain.unforgotten.len(),
                    "held audit records are in the log but still in the store; will retry (a restart skips them)"
                );
                chain.forget_retry =
                    Some(std::time::Instant::now() + std::time::Duration::from_secs(5));
            }
        }
    }

    /// Chains one held record.
    fn append_held(&self, chain: &mut Chain, held: &HeldRecord) -> Result<()> {
        let mut value = held.record.clone();
        let Some(fields) = value.as_object_mut() else {
            return Err(Error::Internal(
                "a held audit record is not an object".into(),
            ));
        };
        fields.insert("sequence".into(), json!(chain.sequence + 1));
        fields.insert("previousHash".into(), json!(chain.head));
        let time = fields
            .get("time")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        // Sorted keys, as `Chained` gives for a record chained when it ran.
        let canonical = serde_json::to_vec(&value)?;
        self.append_request(chain, canonical, &time)
    }

    /// Appends one chained line to every sink.
    /// Appends a non-request record (checkpoint, sink check) given as JSON.
    fn append(&self, chain: &mut Chain, mut value: Value) -> Result<()> {
        value["sequence"] = json!(chain.sequence + 1);
        value["previousHash"] = json!(chain.head);
        let canonical = serde_json::to_vec(&value)?;
        self.append_canonical(chain, canonical)
    }

    /// Appends a record whose canonical JSON (sorted keys, with `sequence`
    /// and `previousHash`, without `hash`) is `canonical`.
    fn append_canonical(&self, chain: &mut Chain, canonical: Vec<u8>) -> Result<()> {
        let sequence = chain.sequence + 1;
        let hash = hash_canonical(&chain.head, &canonical);
        let mut line = canonical;
        line.pop(); // the closing brace
        line.extend_from_slice(format!(",\"hash\":\"{hash}\"}}\n").as_bytes());
        // The first sink (the file) must take the line before the others get
        // it: they are copies (stdout) or only queue it (webhook), and must
        // never carry a sequence number the file refused.
        let (first, copies) = self.sinks.split_first().ok_or_else(unavailable)?;
        if first.write_line(&line).is_err() {
            self.healthy.store(false, Ordering::SeqCst);
            return Err(unavailable());
        }
        for sink in copies {
            let _ = sink.write_line(&line);
        }
        self.healthy.store(true, Ordering::SeqCst);
        chain.sequence = sequence;
        chain.head = hash;
        Ok(())
    }

    /// Records one request. When no sink takes it, the record is held and
    /// written first once the sinks recover; the caller still gets an error,
    /// since the record is not on disk yet.
    pub fn record(&self, record: &AuditRecord) -> Result<()> {
        let mut chain = self.chain.lock().map_err(|_| unavailable())?;
        let written = self
            .write_held(&mut chain)
            .and_then(|()| self.append_record(&mut chain, record));
        if written.is_err() && chain.held.len() < MAX_HELD {
            // The status is what the request did; the client heard 503.
            let mut late = record.clone();
            let note = "Recorded late: no audit sink could take this record when the request ended, so its client was answered 503.";
            late.reason = Some(match late.reason.take() {
                Some(r) => format!("{r} {note}"),
                None => note.to_owned(),
            });
            let Ok(value) = serde_json::to_value(&late) else {
                return written;
            };
            let held = HeldRecord {
                id: chain.next_held_id,
                after: (chain.sequence, chain.head.clone()),
                record: value,
            };
            chain.next_held_id += 1;
            chain.held.push(held.clone());
            // Kept in the store before the request answers, so a crash
            // before the sinks recover does not lose it. Saved after the
            // chain is released, so a slow store holds up only this request;
            // a save landing after the record was chained meanwhile is found
            // by the restart's check against the log.
            drop(chain);
            if let Some(holding) = self.holding.get()
                && let Err(e) = (holding.save)(&held)
            {
                tracing::warn!(
                    error = %e,
                    "a held audit record could not be kept in the store; it is held in memory only"
                );
            }
        }
        written
    }

    /// Chains one request record (and a checkpoint when one is due).
    fn append_record(&self, chain: &mut Chain, record: &AuditRecord) -> Result<()> {
        let canonical = serde_json::to_vec(&Chained {
            authorization: &record.authorization,
            caller_ip: &record.caller_ip,
            category: record.category,
            correlation_id: &record.correlation_id,
            duration_ms: record.duration_ms,
            http_status: record.http_status,
            identity: &record.identity,
            object: &record.object,
            operation_name: &record.operation_name,
            operation_version: &record.operation_version,
            previous_hash: &chain.head,
            reason: &record.reason,
            request_id: &record.request_id,
            resource_id: &record.resource_id,
            resource_tenant_id: &record.resource_tenant_id,
            result_signature: &record.result_signature,
            result_type: record.result_type,
            sequence: chain.sequence + 1,
            time: &record.time,
            vault: &record.vault,
        })?;
        self.append_request(chain, canonical, &record.time)
    }

    /// Appends a request record given as canonical JSON, and a checkpoint
    /// when one is due.
    fn append_request(&self, chain: &mut Chain, canonical: Vec<u8>, time: &str) -> Result<()> {
        self.append_canonical(chain, canonical)?;
        // The record is in the file: from here on a failure must not turn it
        // into a held copy (it would be written twice). A checkpoint that
        // cannot be written is owed, and the failing sink is caught by the
        // next request's preflight.
        chain.since_checkpoint += 1;
        if self.checkpoint_due(chain) {
            chain.checkpoint_owed = self.write_checkpoint(chain, time).is_err();
        }
        Ok(())
    }

    /// Appends a signed checkpoint over the chain so far and persists its head.
    fn write_checkpoint(&self, chain: &mut Chain, time: &str) -> Result<()> {
        let Some(sign) = self.signer.get() else {
            return Ok(());
        };
        let covers = chain.sequence;
        let head = chain.head.clone();
        let signature = sign(&json!({ "sequence": covers, "hash": head }));
        let checkpoint = json!({
            "type": "checkpoint",
            "time": time,
            "checkpoint": { "coversSequence": covers, "headHash": head, "signature": signature },
        });
        self.append(chain, checkpoint)?;
        chain.since_checkpoint = 0;
        chain.last_checkpoint = Some(std::time::Instant::now());
        if let Some(persist) = self.persist_head.get() {
            persist(chain.sequence, chain.head.clone());
        }
        Ok(())
    }

    /// The (sequence, hash) of the last record written.
    pub fn head(&self) -> (u64, String) {
        let c = self.chain.lock().expect("audit chain lock");
        (c.sequence, c.head.clone())
    }
}

fn unavailable() -> Error {
    Error::Unavailable("The request could not be recorded in the audit log, so it was refused. Check the audit sinks (disk space, permissions).".into())
}

/// A request record's content as chained, without `sequence`,
/// `previousHash` and `hash` (keys sorted): what a held record and its line
/// in the log have in common.
fn content_of(mut record: Value) -> String {
    if let Some(fields) = record.as_object_mut() {
        fields.remove("sequence");
        fields.remove("previousHash");
        fields.remove("hash");
    }
    record.to_string()
}

/// Which of `held` (in id order) the log of `path` already holds. Only the
/// part of the log after the record the oldest was held after is read
/// (newest file first, back to the file holding that record; all of them
/// when it is gone, e.g. a log started afresh). A held record is matched by
/// its whole content, which carries its request id, time and "Recorded
/// late" note; identical ones are counted, and since held records are
/// chained oldest first, the ones found are the oldest.
fn held_in_log(path: &Path, held: &[HeldRecord]) -> Vec<bool> {
    let Some(oldest) = held.first() else {
        return Vec::new();
    };
    let mut wanted: std::collections::HashMap<String, usize> = Default::default();
    for h in held {
        *wanted.entry(content_of(h.record.clone())).or_default() += 1;
    }
    let mut found: std::collections::HashMap<String, usize> = Default::default();
    for file in log_files(path).iter().rev() {
        let Ok(f) = File::open(file) else { continue };
        let mut here: Vec<String> = Vec::new();
        let mut reached = false;
        for line in BufReader::new(f).lines().map_while(|l| l.ok()) {
            let Ok(record) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if record["hash"].as_str() == Some(oldest.after.1.as_str()) {
                // Everything up to here was written before the first hold.
                here.clear();
                reached = true;
                continue;
            }
            if record.get("type").is_some() {
                continue; // a checkpoint or a sink check
            }
            let content = content_of(record);
            if wanted.contains_key(&content) {
                here.push(content);
            }
        }
        for content in here {
            *found.entry(content).or_default() += 1;
        }
        if reached {
            break;
        }
    }
    held.iter()
        .map(|h| match found.get_mut(&content_of(h.record.clone())) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        })
        .collect()
}

/// Where held records are kept in the store, under their zero-padded id (so
/// keys sort in the order the records were held).
pub const HELD_PREFIX: &str = "sys/auditheld/";

fn held_key(id: u64) -> String {
    format!("{HELD_PREFIX}{id:020}")
}

/// Keeps a held record in the store, sealed under the root key; durable
/// once this returns `Ok` (the store commits with fsync).
pub async fn keep_held(barrier: &Barrier, held: &HeldRecord) -> Result<()> {
    let key = held_key(held.id);
    let sealed = barrier.seal_json(&key, held).await?;
    barrier.commit(Batch::new().put(key, sealed)).await
}

/// Removes held records from the store (those absent are ignored).
pub async fn forget_held(barrier: &Barrier, ids: &[u64]) -> Result<()> {
    let batch = ids
        .iter()
        .fold(Batch::new(), |batch, id| batch.delete(held_key(*id)));
    barrier.commit(batch).await
}

/// The held records kept in the store, in the order they were held.
pub async fn kept_held(barrier: &Barrier) -> Result<Vec<HeldRecord>> {
    Ok(barrier
        .list_all::<HeldRecord>(HELD_PREFIX)
        .await?
        .into_iter()
        .map(|s| s.value)
        .collect())
}

/// The (sequence, hash) of the last record in the log files of `path`.
pub fn resume_point(path: &Path) -> Option<(u64, String)> {
    for file in log_files(path).iter().rev() {
        let last = BufReader::new(File::open(file).ok()?)
            .lines()
            .map_while(|l| l.ok())
            .filter(|l| !l.trim().is_empty())
            .last();
        if let Some(line) = last {
            let v: Value = serde_json::from_str(&line).ok()?;
            return Some((v["sequence"].as_u64()?, v["hash"].as_str()?.to_owned()));
        }
    }
    None
}

/// Checks a checkpoint signature over (sequence, head hash).
pub type SignatureCheck<'a> = &'a dyn Fn(&str, u64, &str) -> bool;

/// Whether a checkpoint signature's claims name this (sequence, head hash).
pub fn checkpoint_covers(claims: &Value, sequence: u64, hash: &str) -> bool {
    claims["sequence"].as_u64() == Some(sequence) && claims["hash"].as_str() == Some(hash)
}

/// Checks a checkpoint signature against the issuer's published JWKS, as
/// anyone can without the server: offline verification.
pub fn checkpoint_signed_in(jwks: &Value, signature: &str, sequence: u64, hash: &str) -> bool {
    keyfort_crypto::token::TokenSigner::verify_with_jwks::<Value>(signature, jwks)
        .is_ok_and(|c| checkpoint_covers(&c, sequence, hash))
}

/// Filters of an audit query; every given one must hold.
#[derive(Default, Debug)]
pub struct Query {
    /// RFC 3339 bounds, inclusive.
    pub from: Option<String>,
    pub to: Option<String>,
    pub vault: Option<String>,
    pub operation: Option<String>,
    /// Object id or client id.
    pub caller: Option<String>,
    pub result: Option<String>,
    pub limit: usize,
}

impl Query {
    fn matches(&self, r: &Value) -> bool {
        let s = |k: &str| r[k].as_str().unwrap_or_default();
        let eq = |want: &Option<String>, have: &str| {
            want.as_deref().is_none_or(|w| w.eq_ignore_ascii_case(have))
        };
        r.get("type").is_none()
            && self.from.as_deref().is_none_or(|f| s("time") >= f)
            && self.to.as_deref().is_none_or(|t| s("time") <= t)
            && eq(&self.vault, s("vault"))
            && eq(&self.operation, s("operationName"))
            && eq(&self.result, s("resultType"))
            && self.caller.as_deref().is_none_or(|c| {
                r["identity"]["objectId"]
                    .as_str()
                    .is_some_and(|o| o.eq_ignore_ascii_case(c))
                    || r["identity"]["appId"]
                        .as_str()
                        .is_some_and(|a| a.eq_ignore_ascii_case(c))
            })
    }
}

/// The most recent records (oldest first, at most `q.limit`) that match `q`
/// and `visible`, across the log files of `path`.
pub fn query(path: &Path, q: &Query, visible: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut out = std::collections::VecDeque::new();
    for file in log_files(path) {
        let Ok(f) = File::open(&file) else { continue };
        for line in BufReader::new(f).lines().map_while(|l| l.ok()) {
            let Ok(r) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if q.matches(&r) && visible(&r) {
                out.push_back(r);
                if out.len() > q.limit.max(1) {
                    out.pop_front();
                }
            }
        }
    }
    out.into_iter().collect()
}

/// Where a chain breaks.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Break {
    pub file: String,
    pub line: usize,
    pub sequence: Option<u64>,
    pub problem: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub records: u64,
    pub last_sequence: u64,
    pub last_hash: String,
    pub checkpoints: u64,
    pub signatures_checked: bool,
    pub first_break: Option<Break>,
}

/// Verifies the chain across `files` (oldest first). `check_signature`, when
/// given, checks each checkpoint's signature over its sequence and hash.
/// `expected_head`, when given (from the store), detects a truncated tail.
pub fn verify(
    files: &[PathBuf],
    check_signature: Option<SignatureCheck<'_>>,
    expected_head: Option<(u64, String)>,
) -> Verification {
    let mut v = Verification {
        records: 0,
        last_sequence: 0,
        last_hash: GENESIS.into(),
        checkpoints: 0,
        signatures_checked: check_signature.is_some(),
        first_break: None,
    };
    let mut head = GENESIS.to_string();
    let mut expected_seq: Option<u64> = None;
    for file in files {
        let name = file.display().to_string();
        let Ok(f) = File::open(file) else {
            v.first_break = Some(Break {
                file: name,
                line: 0,
                sequence: None,
                problem: "the file cannot be read".into(),
            });
            return v;
        };
        for (i, line) in BufReader::new(f).lines().enumerate() {
            let brk = |seq: Option<u64>, problem: String| {
                Some(Break {
                    file: name.clone(),
                    line: i + 1,
                    sequence: seq,
                    problem,
                })
            };
            let Ok(line) = line else {
                v.first_break = brk(None, "the line is not text".into());
                return v;
            };
            if line.trim().is_empty() {
                continue;
            }
            let Ok(mut rec) = serde_json::from_str::<Value>(&line) else {
                v.first_break = brk(None, "the line is not a JSON record (edited or cut)".into());
                return v;
            };
            let seq = rec["sequence"].as_u64();
            let stated = rec
                .as_object_mut()
                .and_then(|o| o.remove("hash"))
                .and_then(|h| h.as_str().map(str::to_owned));
            let (Some(seq), Some(stated)) = (seq, stated) else {
                v.first_break = brk(seq, "the record has no sequence or hash".into());
                return v;
            };
            if let Some(want) = expected_seq
                && seq != want
            {
                let problem = if seq > want {
                    format!(
                        "records {want} to {} are missing here (deleted, or moved: reordered)",
                        seq - 1
                    )
                } else {
                    format!(
                        "sequence {seq} comes after {} (reordered or duplicated)",
                        want - 1
                    )
                };
                v.first_break = brk(Some(seq), problem);
                return v;
            }
            if rec["previousHash"].as_str() != Some(head.as_str()) {
                v.first_break = brk(Some(seq), "previousHash does not match the record before it (a record was removed, reordered or edited)".into());
                return v;
            }
            if chain_hash(&head, &rec) != stated {
                v.first_break = brk(
                    Some(seq),
                    "the record's content does not match its hash (edited)".into(),
                );
                return v;
            }
            if rec["type"] == "checkpoint" {
                v.checkpoints += 1;
                let covers = rec["checkpoint"]["coversSequence"].as_u64().unwrap_or(0);
                let head_hash = rec["checkpoint"]["headHash"].as_str().unwrap_or_default();
                if covers != seq - 1 || head_hash != head {
                    v.first_break = brk(
                        Some(seq),
                        "the checkpoint does not cover the record before it".into(),
                    );
                    return v;
                }
                if let Some(check) = check_signature {
                    let sig = rec["checkpoint"]["signature"].as_str().unwrap_or_default();
                    if !check(sig, covers, head_hash) {
                        v.first_break = brk(
                            Some(seq),
                            "the checkpoint's signature is not the server's".into(),
                        );
                        return v;
                    }
                }
            }
            if let Some((head_seq, head_hash)) = &expected_head
                && seq == *head_seq
                && stated != *head_hash
            {
                v.first_break = brk(Some(seq), "the record differs from the one the server checkpointed (the log was cut and rewritten)".into());
                return v;
            }
            head = stated;
            expected_seq = Some(seq + 1);
            v.records += 1;
            v.last_sequence = seq;
            v.last_hash = head.clone();
        }
    }
    if let Some((seq, _)) = expected_head
        && v.last_sequence < seq
    {
        v.first_break = Some(Break {
            file: files
                .last()
                .map(|f| f.display().to_string())
                .unwrap_or_default(),
            line: 0,
            sequence: Some(v.last_sequence + 1),
            problem: format!(
                "the log ends at record {} but the server wrote record {seq}: it was truncated",
                v.last_sequence
            ),
        });
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, n: usize, rotate_at: u64) -> PathBuf {
        let path = dir.join("audit.jsonl");
        let auditor = Auditor::new(
            vec![Box::new(FileSink::with_rotation(&path, rotate_at).unwrap())],
            None,
        )
        .with_checkpoint_every(4)
        .with_checkpoint_spacing(std::time::Duration::ZERO);
        auditor.set_checkpointing(
            Box::new(|v| Some(format!("sig:{}", v["sequence"]))),
            Box::new(|_, _| {}),
        );
        for i in 0..n {
            let rec = AuditRecord {
                operation_name: format!("Op{i}"),
                http_status: 200,
                result_type: "Success",
                ..Default::default()
            };
            auditor.record(&rec).unwrap();
        }
        path
    }

    fn rewrite(path: &Path, f: impl FnOnce(&mut Vec<String>)) {
        let mut lines: Vec<String> = std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        f(&mut lines);
        std::fs::write(path, lines.join("\n") + "\n").unwrap();
    }

    #[derive(Clone)]
    struct Flaky(std::sync::Arc<AtomicBool>, std::sync::Arc<Mutex<Vec<u8>>>);
    impl AuditSink for Flaky {
        fn write_line(&self, line: &[u8]) -> std::io::Result<()> {
            if self.0.load(Ordering::SeqCst) {
                return Err(std::io::Error::other("disk full"));
            }
            self.1.lock().unwrap().extend_from_slice(line);
            Ok(())
        }
    }

    /// The file, refusing lines once `allowed` of them were taken.
    struct Switch {
        file: FileSink,
        allowed: std::sync::Arc<std::sync::atomic::AtomicU64>,
    }
    impl AuditSink for Switch {
        fn write_line(&self, line: &[u8]) -> std::io::Result<()> {
            self.allowed
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .map_err(|_| std::io::Error::other("disk full"))?;
            self.file.write_line(line)
        }
        fn sync(&self) -> std::io::Result<()> {
            self.file.sync()
        }
    }

    /// A store for held records, in memory; forgetting fails on demand.
    #[derive(Clone, Default)]
    struct HeldStore {
        rows: std::sync::Arc<Mutex<std::collections::BTreeMap<u64, HeldRecord>>>,
        refuse_save: std::sync::Arc<AtomicBool>,
        refuse_forget: std::sync::Arc<AtomicBool>,
    }
    impl HeldStore {
        fn hook(&self, auditor: &Auditor) {
            let (saver, forgetter) = (self.clone(), self.clone());
            auditor.set_holding(
                Box::new(move |h| {
                    if saver.refuse_save.load(Ordering::SeqCst) {
                        return Err(Error::Unavailable("store down".into()));
                    }
                    saver.rows.lock().unwrap().insert(h.id, h.clone());
                    Ok(())
                }),
                Box::new(move |ids| {
                    if forgetter.refuse_forget.load(Ordering::SeqCst) {
                        return Err(Error::Unavailable("store down".into()));
                    }
                    let mut rows = forgetter.rows.lock().unwrap();
                    for id in ids {
                        rows.remove(id);
                    }
                    Ok(())
                }),
            );
        }
        fn held(&self) -> Vec<HeldRecord> {
            self.rows.lock().unwrap().values().cloned().collect()
        }
    }

    /// (requestId, recorded late) of each request record in the log.
    fn requests(path: &Path) -> Vec<(String, bool)> {
        log_files(path)
            .iter()
            .flat_map(|f| {
                std::fs::read_to_string(f)
                    .unwrap()
                    .lines()
                    .map(|l| serde_json::from_str::<Value>(l).unwrap())
                    .collect::<Vec<_>>()
            })
            .filter(|v| v.get("type").is_none())
            .map(|v| {
                let late = v["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("Recorded late"));
                (v["requestId"].as_str().unwrap().to_owned(), late)
            })
            .collect()
    }

    fn request(id: &str) -> AuditRecord {
        AuditRecord {
            request_id: id.into(),
            time: format!("2026-01-01T00:00:0{}Z", id.len()),
            operation_name: "SecretSet".into(),
            http_status: 200,
            result_type: "Success",
            ..Default::default()
        }
    }

    #[test]
    fn held_records_are_kept_in_the_store_and_chained_first_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let store = HeldStore::default();
        let allowed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
        let start = || {
            let auditor = Auditor::new(
                vec![Box::new(Switch {
                    file: FileSink::open(&path).unwrap(),
                    allowed: allowed.clone(),
                })],
                resume_point(&path),
            )
            .with_checkpoint_every(2)
            .with_checkpoint_spacing(std::time::Duration::ZERO);
            auditor.set_checkpointing(Box::new(|_| Some("sig".into())), Box::new(|_, _| {}));
            store.hook(&auditor);
            auditor
        };

        let first = start();
        first.record(&request("a")).unwrap();
        allowed.store(0, Ordering::SeqCst);
        assert!(first.record(&request("b")).is_err());
        assert!(first.record(&request("c")).is_err());
        let kept = store.held();
        assert_eq!(
            kept.iter().map(|h| h.id).collect::<Vec<_>>(),
            vec![0, 1],
            "each held record is in the store by the time record() returns"
        );
        assert_eq!(kept[0].after, first.head());
        assert_eq!(kept[0].record["requestId"], "b");
        assert!(
            kept[0].record["reason"]
                .as_str()
                .unwrap()
                .starts_with("Recorded late")
        );
        // The file takes one line again: b is chained, c is not. The store
        // fails to let go of b. Then the process dies.
        allowed.store(1, Ordering::SeqCst);
        store.refuse_forget.store(true, Ordering::SeqCst);
        assert!(first.preflight().is_err());
        assert_eq!(store.held().len(), 2);
        drop(first);

        // Restart: b is in the log already, c only in the store.
        allowed.store(u64::MAX, Ordering::SeqCst);
        store.refuse_forget.store(false, Ordering::SeqCst);
        let second = start();
        assert_eq!(
            second.resume_held(&path, store.held()),
            ResumedHeld {
                already_in_log: 1,
                chained: 1,
                still_held: 0
            }
        );
        assert!(store.held().is_empty(), "chained, synced, forgotten");
        second.record(&request("d")).unwrap();
        let expected = vec![
            ("a".to_string(), false),
            ("b".to_string(), true),
            ("c".to_string(), true),
            ("d".to_string(), false),
        ];
        assert_eq!(requests(&path), expected, "each once, in order");
        let v = verify(&log_files(&path), None, None);
        assert_eq!(v.first_break, None);
        assert_eq!(
            v.checkpoints, 1,
            "after c and d: held records count towards checkpoints"
        );
        drop(second);

        // A crash after c was chained but before the store let go of it.
        for h in &kept {
            store.rows.lock().unwrap().insert(h.id, h.clone());
        }
        let third = start();
        assert_eq!(
            third.resume_held(&path, store.held()),
            ResumedHeld {
                already_in_log: 2,
                chained: 0,
                still_held: 0
            }
        );
        assert!(store.held().is_empty());
        assert_eq!(requests(&path), expected, "never written twice");
        // New holds continue after the highest id kept.
        allowed.store(0, Ordering::SeqCst);
        assert!(third.record(&request("e")).is_err());
        assert_eq!(store.held()[0].id, 2);
    }

    #[test]
    fn held_records_wait_while_the_sinks_fail_at_start_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let store = HeldStore::default();
        let allowed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let auditor = Auditor::new(
            vec![Box::new(Switch {
                file: FileSink::open(&path).unwrap(),
                allowed: allowed.clone(),
            })],
            None,
        );
        store.hook(&auditor);
        // Two identical records, held before anything was written.
        assert!(auditor.record(&AuditRecord::default()).is_err());
        assert!(auditor.record(&AuditRecord::default()).is_err());
        assert_eq!(store.held()[0].after, (0, GENESIS.to_string()));
        allowed.store(1, Ordering::SeqCst);
        store.refuse_forget.store(true, Ordering::SeqCst);
        assert!(auditor.preflight().is_err());
        drop(auditor);

        // Restarted with the file still failing: requests are refused.
        allowed.store(0, Ordering::SeqCst);
        store.refuse_forget.store(false, Ordering::SeqCst);
        let auditor = Auditor::new(
            vec![Box::new(Switch {
                file: FileSink::open(&path).unwrap(),
                allowed: allowed.clone(),
            })],
            resume_point(&path),
        );
        store.hook(&auditor);
        assert_eq!(
            auditor.resume_held(&path, store.held()),
            ResumedHeld {
                already_in_log: 1,
                chained: 0,
                still_held: 1
            },
            "of two identical records, the one in the log is the first"
        );
        assert!(auditor.preflight().is_err());
        assert_eq!(store.held().len(), 1);
        allowed.store(u64::MAX, Ordering::SeqCst);
        auditor.preflight().unwrap();
        assert!(store.held().is_empty());
        assert_eq!(requests(&path).len(), 2);
        assert_eq!(verify(&log_files(&path), None, None).first_break, None);
    }

    #[test]
    fn a_record_the_store_cannot_keep_is_held_in_memory() {
        let broken = std::sync::Arc::new(AtomicBool::new(true));
        let sink = Flaky(broken.clone(), Default::default());
        let auditor = Auditor::new(vec![Box::new(sink.clone())], None);
        let store = HeldStore::default();
        store.refuse_save.store(true, Ordering::SeqCst);
        store.hook(&auditor);
        assert!(auditor.record(&request("a")).is_err());
        assert!(store.held().is_empty());
        broken.store(false, Ordering::SeqCst);
        auditor.preflight().unwrap();
        let written = String::from_utf8(sink.1.lock().unwrap().clone()).unwrap();
        assert!(written.lines().next().unwrap().contains("Recorded late"));
    }

    #[test]
    fn a_held_record_chains_as_it_would_have_when_it_ran() {
        // The same record through both paths gives the same line.
        let rec = AuditRecord {
            reason: Some("r".into()),
            identity: Some(AuditIdentity {
                app_id: "a".into(),
                object_id: "o".into(),
                tenant_id: "t".into(),
                upn: None,
            }),
            ..request("x")
        };
        let direct = Flaky(Default::default(), Default::default());
        Auditor::new(vec![Box::new(direct.clone())], None)
            .record(&rec)
            .unwrap();
        let held = Flaky(Default::default(), Default::default());
        let auditor = Auditor::new(vec![Box::new(held.clone())], None);
        let mut chain = auditor.chain.lock().unwrap();
        let h = HeldRecord {
            id: 0,
            after: (0, GENESIS.into()),
            record: serde_json::to_value(&rec).unwrap(),
        };
        auditor.append_held(&mut chain, &h).unwrap();
        assert_eq!(*held.1.lock().unwrap(), *direct.1.lock().unwrap());
    }

    #[test]
    fn request_records_serialize_in_canonical_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let auditor = Auditor::new(vec![Box::new(FileSink::open(&path).unwrap())], None);
        let rec = AuditRecord {
            time: "t".into(),
            request_id: "r".into(),
            correlation_id: Some("c".into()),
            operation_name: "SecretGet".into(),
            vault: Some("dev".into()),
            category: "AuditEvent",
            operation_version: Some("7.6".into()),
            resource_id: Some(
                "/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/dev".into(),
            ),
            result_signature: "OK".into(),
            resource_tenant_id: Some("x".into()),
            object: Some("secrets/a".into()),
            result_type: "Success",
            http_status: 200,
            caller_ip: "127.0.0.1".into(),
            identity: Some(AuditIdentity {
                app_id: "a".into(),
                object_id: "o".into(),
                tenant_id: "t".into(),
                upn: Some("u@example.com".into()),
            }),
            authorization: Some("z".into()),
            reason: None,
            duration_ms: 3,
        };
        auditor.record(&rec).unwrap();
        // The line without its hash re-serializes (sorted keys) to exactly the hashed bytes.
        let line = std::fs::read_to_string(&path).unwrap();
        let mut v: Value = serde_json::from_str(line.trim()).unwrap();
        let stated = v.as_object_mut().unwrap().remove("hash").unwrap();
        assert_eq!(chain_hash(GENESIS, &v), stated.as_str().unwrap());
        let mut fields = serde_json::to_value(&rec)
            .unwrap()
            .as_object()
            .unwrap()
            .clone();
        fields.insert("sequence".into(), json!(1));
        fields.insert("previousHash".into(), json!(GENESIS));
        assert_eq!(
            v,
            Value::Object(fields),
            "every field of the record is in the line"
        );
    }

    #[test]
    fn fails_closed_and_recovers() {
        let broken = std::sync::Arc::new(AtomicBool::new(false));
        let sink = Flaky(broken.clone(), Default::default());
        let auditor = Auditor::new(vec![Box::new(sink.clone())], None);
        let rec = AuditRecord {
            operation_name: "SecretSet".into(),
            ..Default::default()
        };
        auditor.record(&rec).unwrap();
        broken.store(true, Ordering::SeqCst);
        assert!(matches!(auditor.record(&rec), Err(Error::Unavailable(_))));
        assert!(
            auditor.preflight().is_err(),
            "nothing runs while no sink works"
        );
        assert_eq!(
            auditor.head().0,
            1,
            "a failed record does not advance the chain"
        );
        broken.store(false, Ordering::SeqCst);
        auditor.preflight().unwrap();
        auditor.record(&rec).unwrap();
        assert_eq!(
            auditor.head().0,
            4,
            "the held record, the sink check and the new record are chained"
        );
        let written = String::from_utf8(sink.1.lock().unwrap().clone()).unwrap();
        let kinds: Vec<Value> = written
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                json!([v["sequence"], v["operationName"], v["type"]])
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                json!([1, "SecretSet", null]),
                json!([2, "SecretSet", null]),
                json!([3, null, "sinkCheck"]),
                json!([4, "SecretSet", null]),
            ],
            "the request that ran while the sink failed is recorded, in order"
        );
    }

    #[test]
    fn copies_never_carry_a_line_the_file_refused() {
        let broken = std::sync::Arc::new(AtomicBool::new(true));
        let file = Flaky(broken.clone(), Default::default());
        let copy = Flaky(
            std::sync::Arc::new(AtomicBool::new(false)),
            Default::default(),
        );
        let auditor = Auditor::new(vec![Box::new(file), Box::new(copy.clone())], None);
        assert!(auditor.record(&AuditRecord::default()).is_err());
        assert!(copy.1.lock().unwrap().is_empty());
        broken.store(false, Ordering::SeqCst);
        auditor.record(&AuditRecord::default()).unwrap();
        let lines = String::from_utf8(copy.1.lock().unwrap().clone()).unwrap();
        let seqs: Vec<u64> = lines
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["sequence"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(
            seqs,
            vec![1, 2],
            "the held record, then the new one, each once"
        );
    }

    /// Fails every line that is a checkpoint while `.0` is set.
    struct NoCheckpoints(std::sync::Arc<AtomicBool>, Mutex<Vec<u8>>);
    impl AuditSink for NoCheckpoints {
        fn write_line(&self, line: &[u8]) -> std::io::Result<()> {
            let checkpoint = std::str::from_utf8(line)
                .unwrap()
                .contains("\"checkpoint\"");
            if checkpoint && self.0.load(Ordering::SeqCst) {
                return Err(std::io::Error::other("disk full"));
            }
            self.1.lock().unwrap().extend_from_slice(line);
            Ok(())
        }
    }

    #[test]
    fn a_failed_checkpoint_is_owed_not_a_failed_record() {
        let failing = std::sync::Arc::new(AtomicBool::new(true));
        let auditor = Auditor::new(
            vec![Box::new(NoCheckpoints(failing.clone(), Mutex::new(vec![])))],
            None,
        )
        .with_checkpoint_every(2)
        .with_checkpoint_spacing(std::time::Duration::ZERO);
        auditor.set_checkpointing(Box::new(|_| Some("sig".into())), Box::new(|_, _| {}));
        let rec = AuditRecord::default();
        auditor.record(&rec).unwrap();
        auditor
            .record(&rec)
            .expect("the record was written; only its checkpoint failed");
        assert_eq!(auditor.head().0, 2);
        failing.store(false, Ordering::SeqCst);
        auditor.preflight().unwrap();
        auditor.record(&rec).unwrap();
        let c = auditor.chain.lock().unwrap();
        assert!(c.held.is_empty() && !c.checkpoint_owed);
        // 2 records, the sink check, the third record, then the owed checkpoint.
        assert_eq!(c.sequence, 5);
    }

    #[test]
    fn checkpoints_are_paced_under_load() {
        let sink = Flaky(Default::default(), Default::default());
        let auditor = Auditor::new(vec![Box::new(sink.clone())], None)
            .with_checkpoint_every(2)
            .with_checkpoint_spacing(std::time::Duration::from_secs(3600));
        auditor.set_checkpointing(Box::new(|_| Some("sig".into())), Box::new(|_, _| {}));
        for _ in 0..10 {
            auditor.record(&AuditRecord::default()).unwrap();
        }
        let written = String::from_utf8(sink.1.lock().unwrap().clone()).unwrap();
        assert_eq!(
            written.matches("\"type\":\"checkpoint\"").count(),
            1,
            "the first is written; the next waits for the spacing"
        );
    }

    #[test]
    fn a_torn_last_line_is_cut_and_the_chain_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), 3, 1 << 20);
        let whole = std::fs::metadata(&path).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"sequence\":4,\"previousHa").unwrap();
        drop(f);
        let sink = FileSink::open(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
        let auditor = Auditor::new(vec![Box::new(sink)], resume_point(&path));
        auditor.record(&AuditRecord::default()).unwrap();
        let v = verify(&log_files(&path), None, None);
        assert_eq!(v.first_break, None);
        assert_eq!(v.last_sequence, auditor.head().0);
    }

    #[test]
    fn rotation_never_overwrites_a_newer_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), 20, 2000);
        let before = log_files(&path);
        assert!(before.len() >= 3);
        std::fs::remove_file(&before[0]).unwrap(); // an operator archived the oldest
        let kept: Vec<Vec<u8>> = before[1..before.len() - 1]
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect();
        let sink = FileSink::with_rotation(&path, 2000).unwrap();
        let auditor = Auditor::new(vec![Box::new(sink)], resume_point(&path));
        for _ in 0..10 {
            auditor.record(&AuditRecord::default()).unwrap();
        }
        for (p, bytes) in before[1..before.len() - 1].iter().zip(kept) {
            assert_eq!(std::fs::read(p).unwrap(), bytes, "{p:?} was overwritten");
        }
    }

    #[test]
    fn an_intact_chain_verifies_across_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), 20, 2000);
        let files = log_files(&path);
        assert!(files.len() > 1, "rotation happened");
        let sig = |s: &str, seq: u64, _: &str| s == format!("sig:{seq}");
        let v = verify(&files, Some(&sig), None);
        assert_eq!(v.first_break, None);
        assert!(v.checkpoints >= 5, "a checkpoint every 4 sequence numbers");
        assert_eq!(v.records, 20 + v.checkpoints);
        assert_eq!(resume_point(&path).unwrap().0, v.last_sequence);
    }

    #[test]
    fn edits_deletions_reordering_and_truncation_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), 10, u64::MAX);
        let head = resume_point(&path).unwrap();
        let check = |f: &dyn Fn(&mut Vec<String>), problem: &str, at: Option<u64>| {
            let copy = dir.path().join("copy.jsonl");
            std::fs::copy(&path, &copy).unwrap();
            rewrite(&copy, |l| f(l));
            let v = verify(std::slice::from_ref(&copy), None, Some(head.clone()));
            let b = v
                .first_break
                .unwrap_or_else(|| panic!("{problem} not detected"));
            assert_eq!(b.sequence, at, "{problem}: {b:?}");
        };
        check(&|l| l[2] = l[2].replace("Op2", "Op9"), "edit", Some(3));
        check(
            &|l| {
                l.remove(3);
            },
            "deletion",
            Some(5),
        );
        check(&|l| l.swap(1, 2), "reordering", Some(3));
        check(
            &|l| {
                l.truncate(6);
            },
            "truncation",
            Some(7),
        );
        check(&|l| l[0] = "{not json".into(), "garbage", None);
    }
}
