//! Audit records: one per request, allowed or refused. A record names the
//! caller, the operation, the vault and object names, and the outcome; it
//! never holds a secret value, key material, password or token.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;

use crate::{Error, Result};

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub time: String,
    pub request_id: String,
    pub correlation_id: Option<String>,
    pub operation_name: String,
    pub vault: Option<String>,
    pub object: Option<String>,
    pub result_type: &'static str,
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
    pub tenant_id: String,
    pub object_id: String,
    pub app_id: String,
}

/// Where records go.
pub trait AuditSink: Send + Sync {
    fn write_line(&self, line: &[u8]) -> std::io::Result<()>;
}

/// Appends JSON lines to a file (created with mode 0600).
pub struct FileSink {
    file: Mutex<File>,
}

impl FileSink {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let mut opts = OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let file = opts.open(path)?;
        // An existing file keeps its mode on open: tighten it too.
        #[cfg(unix)]
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        Ok(FileSink {
            file: Mutex::new(file),
        })
    }
}

impl AuditSink for FileSink {
    fn write_line(&self, line: &[u8]) -> std::io::Result<()> {
        let mut f = self
            .file
            .lock()
            .map_err(|_| std::io::Error::other("audit file lock poisoned"))?;
        // One write call per record keeps records whole under concurrency.
        f.write_all(line)
    }
}

/// Writes each record to every sink; fails only if no sink took it.
pub struct Auditor {
    sinks: Vec<Box<dyn AuditSink>>,
}

impl Auditor {
    pub fn new(sinks: Vec<Box<dyn AuditSink>>) -> Self {
        Auditor { sinks }
    }

    pub fn record(&self, record: &AuditRecord) -> Result<()> {
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        let written = self
            .sinks
            .iter()
            .filter(|s| s.write_line(&line).is_ok())
            .count();
        if written == 0 {
            return Err(Error::Unavailable(
                "The request could not be recorded in the audit log, so it was not performed. Check the audit sinks.".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_sink_appends_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let auditor = Auditor::new(vec![Box::new(FileSink::open(&path).unwrap())]);
        let rec = AuditRecord {
            operation_name: "SecretGet".into(),
            http_status: 200,
            result_type: "Success",
            ..Default::default()
        };
        auditor.record(&rec).unwrap();
        auditor.record(&rec).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(v["operationName"], "SecretGet");
    }

    #[test]
    fn no_sink_means_refusal() {
        assert!(
            Auditor::new(vec![])
                .record(&AuditRecord::default())
                .is_err()
        );
    }
}
