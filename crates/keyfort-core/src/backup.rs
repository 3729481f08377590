//! Backup blobs: every version of one object, sealed under the tenant's
//! backup key. The header (format, tenant, geography) is in the clear so a
//! restore can say why a blob is refused, and it is bound to the ciphertext as
//! associated data, so editing it breaks authentication.
//!
//! Layout: `KFB1` | u8 len | tenant id | u8 len | geography | sealed payload.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{Error, Result, names};

const MAGIC: &[u8; 4] = b"KFB1";

/// Every version of one object (`kind` is `secret` or `key`).
#[derive(Serialize, Deserialize)]
pub struct BackupPayload<V> {
    pub kind: String,
    pub name: String,
    pub latest: String,
    pub versions: Vec<V>,
}

/// Just the kind, read first so a blob of another kind gets a clear error.
#[derive(Deserialize)]
struct KindOnly {
    kind: String,
}

fn corrupt() -> Error {
    Error::bad(
        "Backup blob contains invalid or corrupt version: it is not a Keyfort backup, or it was altered.",
    )
}

/// Azure's geographies: a backup can be restored into any region of the
/// geography it was taken in. A region not listed is a geography of its own.
const GEOGRAPHIES: &[(&str, &[&str])] = &[
    (
        "unitedstates",
        &[
            "eastus",
            "eastus2",
            "westus",
            "westus2",
            "westus3",
            "centralus",
            "northcentralus",
            "southcentralus",
            "westcentralus",
        ],
    ),
    ("europe", &["northeurope", "westeurope"]),
    ("unitedkingdom", &["uksouth", "ukwest"]),
    ("asiapacific", &["eastasia", "southeastasia"]),
    ("japan", &["japaneast", "japanwest"]),
    (
        "australia",
        &[
            "australiaeast",
            "australiasoutheast",
            "australiacentral",
            "australiacentral2",
        ],
    ),
    ("canada", &["canadacentral", "canadaeast"]),
    ("india", &["centralindia", "southindia", "westindia"]),
    ("korea", &["koreacentral", "koreasouth"]),
    ("france", &["francecentral", "francesouth"]),
    ("germany", &["germanywestcentral", "germanynorth"]),
    ("switzerland", &["switzerlandnorth", "switzerlandwest"]),
    ("norway", &["norwayeast", "norwaywest"]),
    ("brazil", &["brazilsouth", "brazilsoutheast"]),
    ("uae", &["uaenorth", "uaecentral"]),
    ("southafrica", &["southafricanorth", "southafricawest"]),
];

/// The geography of a location (`West Europe` and `westeurope` alike).
pub fn geography_of(location: &str) -> String {
    let region: String = location
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    GEOGRAPHIES
        .iter()
        .find(|(_, regions)| regions.contains(&region.as_str()))
        .map(|(geo, _)| (*geo).to_owned())
        .unwrap_or(region)
}

fn header(tenant_id: &str, geography: &str) -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    for field in [tenant_id, geography] {
        h.push(field.len() as u8);
        h.extend_from_slice(field.as_bytes());
    }
    h
}

pub fn seal_blob<V: Serialize>(
    key: &keyfort_crypto::SealingKey,
    tenant_id: &str,
    geography: &str,
    payload: &BackupPayload<V>,
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
/// tenant (403), another geography (400), another kind of object than
/// `kind` (400), or altered ones (400).
pub fn open_blob<V: DeserializeOwned>(
    key: &keyfort_crypto::SealingKey,
    tenant_id: &str,
    geography: &str,
    kind: &str,
    blob: &[u8],
) -> Result<BackupPayload<V>> {
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
    let (from, here) = (geography_of(blob_geo), geography_of(geography));
    if from != here {
        return Err(Error::bad(format!(
            "The backup was taken in '{blob_geo}' (geography '{from}') and this vault is in '{geography}' (geography '{here}'); restore it into a vault in the same geography."
        )));
    }
    let plain = key.open(&blob[..at], &blob[at..]).map_err(|_| corrupt())?;
    let found: KindOnly = serde_json::from_slice(&plain).map_err(|_| corrupt())?;
    if found.kind != kind {
        return Err(Error::bad(format!(
            "The backup blob holds a {}, not a {kind}; restore it with the {} API.",
            names::printable(&found.kind),
            names::printable(&found.kind)
        )));
    }
    serde_json::from_slice(&plain).map_err(|_| corrupt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restores_within_a_geography_only() {
        let key = keyfort_crypto::SealingKey::generate();
        let payload = BackupPayload::<u8> {
            kind: "secret".into(),
            name: "db".into(),
            latest: "v1".into(),
            versions: vec![],
        };
        let blob = seal_blob(&key, "t1", "westeurope", &payload).unwrap();
        let open = |geo: &str, tenant: &str, kind: &str| {
            open_blob::<u8>(&key, tenant, geo, kind, &blob).map(|p| p.name)
        };
        assert_eq!(open("North Europe", "t1", "secret").unwrap(), "db");
        assert_eq!(open("westeurope", "t1", "secret").unwrap(), "db");
        assert!(open("eastus", "t1", "secret").is_err());
        assert!(open("westeurope", "t2", "secret").is_err());
        let wrong_kind = open("westeurope", "t1", "key").unwrap_err();
        assert!(wrong_kind.to_string().contains("holds a secret"));
        assert_eq!(geography_of("local"), "local");
    }
}
