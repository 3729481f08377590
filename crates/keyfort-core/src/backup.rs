//! Backup blobs: every version of one object, sealed under the tenant's
//! backup key. The header (format, tenant, geography) is in the clear so a
//! restore can say why a blob is refused, and it is bound to the ciphertext as
//! associated data, so editing it breaks authentication.
//!
//! Layout: `KFB1` | u8 len | tenant id | u8 len | geography | sealed payload.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::model::SecretVersion;
use crate::{Error, Result};

const MAGIC: &[u8; 4] = b"KFB1";

#[derive(Serialize, Deserialize)]
pub struct BackupPayload {
    pub kind: String,
    pub name: String,
    pub latest: String,
    pub versions: Vec<SecretVersion>,
}

fn corrupt() -> Error {
    Error::bad(
        "Backup blob contains invalid or corrupt version: it is not a Keyfort backup, or it was altered.",
    )
}

fn header(tenant_id: &str, geography: &str) -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    for field in [tenant_id, geography] {
        h.push(field.len() as u8);
        h.extend_from_slice(field.as_bytes());
    }
    h
}

pub fn seal_blob(
    key: &keyfort_crypto::SealingKey,
    tenant_id: &str,
    geography: &str,
    payload: &BackupPayload,
) -> Result<Vec<u8>> {
    let mut blob = header(tenant_id, geography);
    let plain = Zeroizing::new(serde_json::to_vec(payload)?);
    let sealed = key.seal(&blob, &plain);
    blob.extend_from_slice(&sealed);
    Ok(blob)
}

fn read_field(blob: &[u8], at: usize) -> Result<(&str, usize)> {
    let len = *blob.get(at).ok_or_else(corrupt)? as usize;
    let bytes = blob.get(at + 1..at + 1 + len).ok_or_else(corrupt)?;
    Ok((
        std::str::from_utf8(bytes).map_err(|_| corrupt())?,
        at + 1 + len,
    ))
}

/// Opens a blob for `tenant_id` in `geography`, refusing blobs of another
/// tenant (403), another geography (400), or altered ones (400).
pub fn open_blob(
    key: &keyfort_crypto::SealingKey,
    tenant_id: &str,
    geography: &str,
    blob: &[u8],
) -> Result<BackupPayload> {
    if blob.len() < MAGIC.len() || &blob[..MAGIC.len()] != MAGIC {
        return Err(corrupt());
    }
    let (blob_tenant, at) = read_field(blob, MAGIC.len())?;
    let (blob_geo, at) = read_field(blob, at)?;
    if blob_tenant != tenant_id {
        return Err(Error::forbidden(
            "The backup was taken in another tenant; a backup can only be restored into a vault of the tenant it came from.",
        ));
    }
    if !blob_geo.eq_ignore_ascii_case(geography) {
        return Err(Error::bad(format!(
            "The backup was taken in geography '{blob_geo}' and this vault is in '{geography}'; restore it into a vault in the same geography."
        )));
    }
    let plain = key.open(&blob[..at], &blob[at..]).map_err(|_| corrupt())?;
    serde_json::from_slice(&plain).map_err(|_| corrupt())
}
