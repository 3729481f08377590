//! Keys: RSA and EC keys that never leave the vault except in a backup.
//! The lifecycle is the one every object shares ([`crate::objects`]); this
//! module adds creating, importing and rotating key material, and the
//! cryptographic operations (encrypt, decrypt, sign, verify, wrapKey,
//! unwrapKey) under the rules Azure Key Vault applies: a disabled key does
//! nothing, a key outside its `nbf`–`exp` window only undoes (decrypt,
//! unwrap, verify), and an operation missing from `key_ops` is refused.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use keyfort_crypto::CryptoError;
use keyfort_crypto::keys::{Curve, Jwk, KeyKind as Kty, KeyMaterial};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::barrier::Barrier;
use crate::clock::{Clock, DAY};
use crate::model::{Attributes, Tags, Vault};
pub use crate::objects::{AttributeChanges, Page};
use crate::objects::{ObjectKind, ObjectMeta, ObjectView, Objects, check_tags};
use crate::{Error, Result, names};

/// Azure's data actions for keys.
pub mod actions {
    pub const READ: &str = "Microsoft.KeyVault/vaults/keys/read";
    pub const CREATE: &str = "Microsoft.KeyVault/vaults/keys/create/action";
    pub const IMPORT: &str = "Microsoft.KeyVault/vaults/keys/import/action";
    pub const ROTATE: &str = "Microsoft.KeyVault/vaults/keys/rotate/action";
    pub const UPDATE: &str = "Microsoft.KeyVault/vaults/keys/update/action";
    pub const DELETE: &str = "Microsoft.KeyVault/vaults/keys/delete";
    pub const BACKUP: &str = "Microsoft.KeyVault/vaults/keys/backup/action";
    pub const RESTORE: &str = "Microsoft.KeyVault/vaults/keys/restore/action";
    pub const RECOVER: &str = "Microsoft.KeyVault/vaults/keys/recover/action";
    pub const PURGE: &str = "Microsoft.KeyVault/vaults/keys/purge/action";
    pub const ENCRYPT: &str = "Microsoft.KeyVault/vaults/keys/encrypt/action";
    pub const DECRYPT: &str = "Microsoft.KeyVault/vaults/keys/decrypt/action";
    pub const SIGN: &str = "Microsoft.KeyVault/vaults/keys/sign/action";
    pub const VERIFY: &str = "Microsoft.KeyVault/vaults/keys/verify/action";
    pub const WRAP: &str = "Microsoft.KeyVault/vaults/keys/wrap/action";
    pub const UNWRAP: &str = "Microsoft.KeyVault/vaults/keys/unwrap/action";
}

/// The JSON Web Key operations a key may allow.
pub const KEY_OPS: &[&str] = &[
    "encrypt",
    "decrypt",
    "sign",
    "verify",
    "wrapKey",
    "unwrapKey",
    "import",
    "export",
];

/// Everything about one version of a key except its private half.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyMeta {
    pub version: String,
    pub attributes: Attributes,
    pub tags: Option<Tags>,
    pub key_ops: Vec<String>,
    /// The public half (`kty`, `n`/`e` or `crv`/`x`/`y`); never private members.
    pub public: Jwk,
    /// Generated here (created or rotated), not imported: its only copies
    /// are this vault and its backups.
    pub generated: bool,
}

impl ObjectMeta for KeyMeta {
    fn version(&self) -> &str {
        &self.version
    }
    fn attributes(&self) -> &Attributes {
        &self.attributes
    }
    fn attributes_mut(&mut self) -> &mut Attributes {
        &mut self.attributes
    }
}

/// The private key, as PKCS#8 DER (sealed at rest by the barrier).
#[derive(Clone)]
pub struct PrivateKey(Zeroizing<Vec<u8>>);

impl PrivateKey {
    pub fn from_der(der: &[u8]) -> Self {
        PrivateKey(Zeroizing::new(der.to_vec()))
    }

    pub fn der(&self) -> &[u8] {
        &self.0
    }
}

impl Serialize for PrivateKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&Zeroizing::new(B64.encode(&self.0)))
    }
}

impl<'de> Deserialize<'de> for PrivateKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        B64.decode(text.as_bytes())
            .map(|der| PrivateKey(Zeroizing::new(der)))
            .map_err(|_| serde::de::Error::custom("a private key is not base64url"))
    }
}

/// Keys as a kind of vault object.
pub struct KeyKind;

impl ObjectKind for KeyKind {
    type Meta = KeyMeta;
    type Value = PrivateKey;
    const NOUN: &'static str = "key";
    const TITLE: &'static str = "Key";
    const COLLECTION: &'static str = "keys";
    const NOT_FOUND: &'static str = "KeyNotFound";

    fn related_keys(vault: &Vault, folded_name: &str) -> Vec<String> {
        vec![backup_mark_key(vault, folded_name)]
    }
}

/// What the API shows of a key version (the private half is never shown).
pub type KeyView = ObjectView<KeyMeta, PrivateKey>;

/// What to generate: `kty` with `key_size` (RSA) or `crv` (EC).
#[derive(Default)]
pub struct CreateKey {
    pub kty: String,
    pub key_size: Option<u32>,
    pub public_exponent: Option<u32>,
    pub crv: Option<String>,
    pub key_ops: Option<Vec<String>>,
    pub tags: Option<Tags>,
    pub attributes: AttributeChanges,
}

pub struct ImportKey {
    pub key: Jwk,
    pub hsm: bool,
    pub tags: Option<Tags>,
    pub attributes: AttributeChanges,
}

#[derive(Default)]
pub struct UpdateKey {
    pub key_ops: Option<Vec<String>>,
    pub tags: Option<Tags>,
    pub attributes: AttributeChanges,
}

/// What a new version carries besides its material.
struct VersionSettings {
    key_ops: Option<Vec<String>>,
    tags: Option<Tags>,
    attributes: AttributeChanges,
    generated: bool,
}

/// A cryptographic operation on a key version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyOperation {
    Encrypt,
    Decrypt,
    Sign,
    Verify,
    WrapKey,
    UnwrapKey,
}

impl KeyOperation {
    /// The JWK `key_ops` name, as in Azure's messages.
    pub fn name(self) -> &'static str {
        match self {
            KeyOperation::Encrypt => "encrypt",
            KeyOperation::Decrypt => "decrypt",
            KeyOperation::Sign => "sign",
            KeyOperation::Verify => "verify",
            KeyOperation::WrapKey => "wrapKey",
            KeyOperation::UnwrapKey => "unwrapKey",
        }
    }

    /// Operations that only undo (read old ciphertext, check old
    /// signatures) stay allowed outside the key's nbf–exp window, as in
    /// Azure: after expiry for old data, before nbf to test the key.
    fn allowed_outside_validity(self) -> bool {
        matches!(
            self,
            KeyOperation::Decrypt | KeyOperation::Verify | KeyOperation::UnwrapKey
        )
    }
}

/// A key version about to be used: a key's, or a certificate's.
pub struct KeyInUse {
    pub name: String,
    pub version: String,
    pub attributes: Attributes,
    pub key_ops: Vec<String>,
    pub material: Arc<KeyMaterial>,
}

/// Parsed private keys by version. Parsing (with aws-lc's key checks)
/// costs more than an RSA signature; a version's material never changes,
/// and version ids are random, so an entry can never serve another key.
/// The store is still read on every use, for the attributes and key_ops.
#[derive(Default)]
pub struct MaterialCache {
    parsed: std::sync::Mutex<std::collections::HashMap<String, Arc<KeyMaterial>>>,
}

/// Entries kept before the cache starts over (a bound, not a tuning knob).
const MATERIAL_CACHE: usize = 4096;

impl MaterialCache {
    /// The parsed material of `vault`'s version `version`, parsing `der` once.
    pub fn get_or_parse(
        &self,
        vault: &Vault,
        version: &str,
        parse: impl FnOnce() -> Result<KeyMaterial>,
    ) -> Result<Arc<KeyMaterial>> {
        let key = format!("{}/{version}", vault.id);
        if let Some(m) = self.parsed.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(m);
        }
        let material = Arc::new(parse()?);
        if let Ok(mut cache) = self.parsed.lock() {
            if cache.len() >= MATERIAL_CACHE {
                cache.clear();
            }
            cache.insert(key, material.clone());
        }
        Ok(material)
    }

    /// Drops every parsed key, so purged material does not linger in memory.
    pub fn forget_all(&self) {
        if let Ok(mut cache) = self.parsed.lock() {
            cache.clear();
        }
    }
}

impl KeyInUse {
    /// Azure's rules: a disabled key does nothing; outside its nbf–exp
    /// window it only undoes; `key_ops` lists what it may do.
    fn check(&self, op: KeyOperation, now: i64) -> Result<()> {
        let attrs = &self.attributes;
        if !attrs.enabled {
            return Err(refused(op, "a disabled key", "KeyDisabled"));
        }
        if attrs.nbf.is_some_and(|nbf| now < nbf) && !op.allowed_outside_validity() {
            return Err(refused(op, "a key that is not yet valid", "KeyNotYetValid"));
        }
        if attrs.exp.is_some_and(|exp| now >= exp) && !op.allowed_outside_validity() {
            return Err(refused(op, "an expired key", "KeyExpired"));
        }
        if !self.key_ops.iter().any(|o| o == op.name()) {
            return Err(Error::Forbidden {
                message: format!(
                    "Operation {} is not permitted on this key: its key_ops are [{}].",
                    op.name(),
                    self.key_ops.join(", ")
                ),
                inner: Some("KeyOperationForbidden"),
            });
        }
        Ok(())
    }

    /// encrypt, decrypt, sign, wrapKey or unwrapKey at time `now`: `input`
    /// is the plaintext, ciphertext, digest or key to wrap or unwrap.
    pub fn operate(self, op: KeyOperation, alg: &str, input: &[u8], now: i64) -> Result<Operated> {
        self.check(op, now)?;
        let m = &self.material;
        let result = match op {
            KeyOperation::Encrypt | KeyOperation::WrapKey => {
                Zeroizing::new(m.encrypt(alg, input).map_err(input_error)?)
            }
            KeyOperation::Decrypt | KeyOperation::UnwrapKey => {
                m.decrypt(alg, input).map_err(|e| match e {
                    CryptoError::Failed => Error::bad(
                        "The ciphertext could not be decrypted with this key version and algorithm.",
                    ),
                    other => input_error(other),
                })?
            }
            KeyOperation::Sign => Zeroizing::new(m.sign(alg, input).map_err(input_error)?),
            KeyOperation::Verify => {
                return Err(Error::Internal("verify goes through KeyInUse::verify".into()));
            }
        };
        Ok(Operated {
            name: self.name,
            version: self.version,
            result,
        })
    }

    /// Checks a signature over a digest at time `now`.
    pub fn verify(self, alg: &str, digest: &[u8], signature: &[u8], now: i64) -> Result<Verified> {
        self.check(KeyOperation::Verify, now)?;
        let valid = self
            .material
            .verify(alg, digest, signature)
            .map_err(input_error)?;
        Ok(Verified {
            name: self.name,
            version: self.version,
            valid,
        })
    }
}

/// The outcome of an operation, with the version that did it (for `kid`).
pub struct Operated {
    pub name: String,
    pub version: String,
    pub result: Zeroizing<Vec<u8>>,
}

/// The outcome of a verification.
pub struct Verified {
    pub name: String,
    pub version: String,
    pub valid: bool,
}

/// The keys of every vault. The shared lifecycle (list, delete, recover,
/// purge, restore, ...) is reached through `Deref`.
pub struct Keys {
    objects: Objects<KeyKind>,
    barrier: Arc<Barrier>,
    materials: MaterialCache,
}

impl std::ops::Deref for Keys {
    type Target = Objects<KeyKind>;
    fn deref(&self) -> &Self::Target {
        &self.objects
    }
}

/// Runs a key generation on the blocking pool: an RSA-4096 key takes a
/// second or more of CPU, which would stall every request on a worker.
pub async fn generate_off_runtime(
    generate: impl FnOnce() -> std::result::Result<KeyMaterial, CryptoError> + Send + 'static,
) -> std::result::Result<KeyMaterial, CryptoError> {
    tokio::task::spawn_blocking(generate)
        .await
        .unwrap_or(Err(CryptoError::Failed))
}

/// Crypto errors that come from the caller's input are 400s with the
/// crate's message (which never holds key material); the rest are ours.
fn input_error(e: CryptoError) -> Error {
    match e {
        CryptoError::Unsupported(m) | CryptoError::BadInput(m) => Error::bad(m),
        other => other.into(),
    }
}

fn check_key_ops(ops: &[String]) -> Result<()> {
    if let Some(bad) = ops.iter().find(|o| !KEY_OPS.contains(&o.as_str())) {
        return Err(Error::bad(format!(
            "'{}' is not a JSON Web Key operation; use {}.",
            names::printable(bad),
            KEY_OPS.join(", ")
        )));
    }
    Ok(())
}

/// Azure's default operations: all that the key type can do.
pub fn default_ops(kind: Kty) -> Vec<String> {
    let ops: &[&str] = match kind {
        Kty::Rsa => &[
            "encrypt",
            "decrypt",
            "sign",
            "verify",
            "wrapKey",
            "unwrapKey",
        ],
        Kty::Ec(_) => &["sign", "verify"],
    };
    ops.iter().map(|s| s.to_string()).collect()
}

fn refuse_hsm(kty: &str) -> Result<()> {
    if kty.ends_with("-HSM") || kty.starts_with("oct") {
        return Err(Error::bad(format!(
            "Key type '{}' is not supported: this vault is Standard (software-protected keys), so use RSA or EC.",
            names::printable(kty)
        )));
    }
    Ok(())
}

fn kind_of(public: &Jwk) -> Result<Kty> {
    match (
        public.kty.as_deref(),
        public.crv.as_deref().and_then(Curve::parse),
    ) {
        (Some("RSA"), _) => Ok(Kty::Rsa),
        (Some("EC"), Some(curve)) => Ok(Kty::Ec(curve)),
        _ => Err(Error::Internal("a stored key has an unknown type".into())),
    }
}

/// Azure's message for an operation a key's state forbids.
fn refused(op: KeyOperation, why: &str, inner: &'static str) -> Error {
    Error::Forbidden {
        message: format!("Operation {} is not allowed on {why}.", op.name()),
        inner: Some(inner),
    }
}

impl Keys {
    pub fn new(barrier: Arc<Barrier>, clock: Arc<dyn Clock>) -> Self {
        Keys {
            objects: Objects::new(barrier.clone(), clock),
            barrier,
            materials: MaterialCache::default(),
        }
    }

    async fn add(
        &self,
        vault: &Vault,
        name: &str,
        material: &KeyMaterial,
        settings: VersionSettings,
    ) -> Result<KeyView> {
        let VersionSettings {
            key_ops,
            tags,
            attributes,
            generated,
        } = settings;
        let key_ops = key_ops.unwrap_or_else(|| default_ops(material.kind()));
        check_key_ops(&key_ops)?;
        check_tags("key", tags.as_ref())?;
        attributes.validate()?;
        let attributes = &attributes;
        let public = material.public_jwk();
        let meta = |now, version| {
            Ok(KeyMeta {
                version,
                attributes: attributes.new_attributes(now)?,
                tags: tags.clone(),
                key_ops: key_ops.clone(),
                public: public.clone(),
                generated,
            })
        };
        let private = PrivateKey::from_der(material.to_der());
        let mut view = self.objects.add_version(vault, name, meta, private).await?;
        view.value = None; // the private half is never shown
        Ok(view)
    }

    /// Generates a new key (or a new version of one).
    pub async fn create(&self, vault: &Vault, name: &str, req: CreateKey) -> Result<KeyView> {
        Objects::<KeyKind>::check_name(name)?;
        refuse_hsm(&req.kty)?;
        let material = match req.kty.as_str() {
            "RSA" => {
                if req.crv.is_some() {
                    return Err(Error::bad("'crv' applies to EC keys, not RSA keys."));
                }
                let (bits, exponent) = (req.key_size.unwrap_or(2048), req.public_exponent);
                generate_off_runtime(move || KeyMaterial::generate_rsa(bits, exponent)).await
            }
            "EC" => {
                if req.key_size.is_some() || req.public_exponent.is_some() {
                    return Err(Error::bad(
                        "'key_size' and 'public_exponent' apply to RSA keys; an EC key takes 'crv'.",
                    ));
                }
                let crv = req.crv.as_deref().unwrap_or("P-256");
                let curve = Curve::parse(crv).ok_or_else(|| {
                    Error::bad(format!(
                        "Curve '{}' is not supported: use P-256, P-384, P-521 or P-256K.",
                        names::printable(crv)
                    ))
                })?;
                KeyMaterial::generate_ec(curve)
            }
            other => {
                return Err(Error::bad(format!(
                    "Key type '{}' is not supported: use RSA or EC.",
                    names::printable(other)
                )));
            }
        }
        .map_err(input_error)?;
        let settings = VersionSettings {
            key_ops: req.key_ops,
            tags: req.tags,
            attributes: req.attributes,
            generated: true,
        };
        self.add(vault, name, &material, settings).await
    }

    /// Imports a private key given as a JSON Web Key.
    pub async fn import(&self, vault: &Vault, name: &str, mut req: ImportKey) -> Result<KeyView> {
        Objects::<KeyKind>::check_name(name)?;
        if req.hsm {
            return Err(Error::bad(
                "Hsm import is not supported: this vault is Standard (software-protected keys).",
            ));
        }
        let kty = req.key.kty.as_deref().unwrap_or_default();
        refuse_hsm(kty)?;
        let material = KeyMaterial::from_jwk(&req.key).map_err(input_error);
        req.key.clear_private(); // the only copy left is the material's, zeroized on drop
        let material = material?;
        let settings = VersionSettings {
            key_ops: req.key.key_ops.take(),
            tags: req.tags,
            attributes: req.attributes,
            generated: false,
        };
        self.add(vault, name, &material, settings).await
    }

    /// A new version with fresh material of the same type and size, the
    /// latest version's operations and tags, and no dates.
    pub async fn rotate(&self, vault: &Vault, name: &str) -> Result<KeyView> {
        let latest = self.objects.read(vault, name, None).await?;
        let kind = kind_of(&latest.meta.public)?;
        let material = match kind {
            Kty::Rsa => {
                let bits = KeyMaterial::from_der(kind, &latest.value.as_ref().expect("read").0)
                    .map_err(input_error)?
                    .key_size()
                    .unwrap_or(2048);
                generate_off_runtime(move || KeyMaterial::generate_rsa(bits, None)).await
            }
            Kty::Ec(curve) => KeyMaterial::generate_ec(curve),
        }
        .map_err(input_error)?;
        let settings = VersionSettings {
            key_ops: Some(latest.meta.key_ops.clone()),
            tags: latest.meta.tags.clone(),
            attributes: AttributeChanges::default(),
            generated: true,
        };
        self.add(vault, name, &material, settings).await
    }

    /// A version's public half and metadata. A disabled key can still be
    /// read, as in Azure; only its operations are refused.
    pub async fn get(&self, vault: &Vault, name: &str, version: Option<&str>) -> Result<KeyView> {
        let mut view = self.objects.read(vault, name, version).await?;
        view.value = None;
        Ok(view)
    }

    /// Changes a version's attributes, operations or tags; never its material.
    pub async fn update(
        &self,
        vault: &Vault,
        name: &str,
        version: Option<&str>,
        req: UpdateKey,
    ) -> Result<KeyView> {
        if let Some(ops) = &req.key_ops {
            check_key_ops(ops)?;
        }
        check_tags("key", req.tags.as_ref())?;
        let edit = |meta: &mut KeyMeta| {
            if let Some(ops) = &req.key_ops {
                meta.key_ops = ops.clone();
            }
            if req.tags.is_some() {
                meta.tags = req.tags.clone();
            }
            Ok(())
        };
        self.objects
            .update(vault, name, version, &req.attributes, edit)
            .await
    }

    /// Purges a deleted key for good, and forgets its parsed material.
    pub async fn purge(&self, vault: &Vault, name: &str) -> Result<()> {
        let purged = self.objects.purge(vault, name).await;
        self.materials.forget_all();
        purged
    }

    /// The purge sweeper's pass over this vault's deleted keys.
    pub async fn sweep(&self, vault: &Vault) -> Result<usize> {
        let purged = self.objects.sweep(vault).await;
        if matches!(purged, Ok(n) if n > 0) {
            self.forget_material();
        }
        purged
    }

    /// Forgets every parsed key (a vault was purged, say).
    pub fn forget_material(&self) {
        self.materials.forget_all();
    }

    /// A version's material with what decides what it may do.
    pub async fn in_use(
        &self,
        vault: &Vault,
        name: &str,
        version: Option<&str>,
    ) -> Result<KeyInUse> {
        let view = self.objects.read(vault, name, version).await?;
        let kind = kind_of(&view.meta.public)?;
        let private = view.value.as_ref().expect("read returns the payload");
        let material = self.materials.get_or_parse(vault, &view.meta.version, || {
            Ok(KeyMaterial::from_der(kind, &private.0)?)
        })?;
        Ok(KeyInUse {
            material,
            name: view.name,
            version: view.meta.version,
            attributes: view.meta.attributes,
            key_ops: view.meta.key_ops,
        })
    }

    /// A backup blob of every version; which versions it holds is
    /// remembered for the advisor's "keys without a backup" check.
    pub async fn backup(
        &self,
        vault: &Vault,
        name: &str,
        backup_key: &keyfort_crypto::SealingKey,
    ) -> Result<Vec<u8>> {
        let (blob, versions) = self
            .objects
            .backup_versions(vault, name, backup_key)
            .await?;
        self.mark_backed_up(vault, name, versions).await?;
        Ok(blob)
    }

    /// Restores a backup blob; the restored versions exist in that blob.
    pub async fn restore(
        &self,
        vault: &Vault,
        blob: &[u8],
        backup_key: &keyfort_crypto::SealingKey,
    ) -> Result<KeyView> {
        let view = self.objects.restore(vault, blob, backup_key).await?;
        let versions = self.all_versions(vault, &view.name).await?;
        let ids = versions.into_iter().map(|v| v.meta.version).collect();
        self.mark_backed_up(vault, &view.name, ids).await?;
        Ok(view)
    }

    /// Adds `versions` to the key's set of backed-up versions.
    async fn mark_backed_up(&self, vault: &Vault, name: &str, versions: Vec<String>) -> Result<()> {
        let key = backup_mark_key(vault, name);
        for _ in 0..5 {
            let stored = self.barrier.get::<Vec<String>>(&key).await?;
            let mut all: std::collections::BTreeSet<String> = versions.iter().cloned().collect();
            let batch = match &stored {
                Some(s) => {
                    all.extend(s.value.iter().cloned());
                    keyfort_store::Batch::new().expect_equals(key.clone(), s.raw.clone())
                }
                None => keyfort_store::Batch::new().expect_absent(key.clone()),
            };
            let all: Vec<String> = all.into_iter().collect();
            let sealed = self.barrier.seal_json(&key, &all).await?;
            match self.barrier.commit(batch.put(key.clone(), sealed)).await {
                Err(Error::Conflict(_)) => continue,
                other => return other,
            }
        }
        Err(Error::Conflict(
            "The key's backup record is being changed concurrently.".into(),
        ))
    }

    async fn all_versions(&self, vault: &Vault, name: &str) -> Result<Vec<KeyView>> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .objects
                .list_versions(vault, name, after.as_deref(), 25)
                .await?;
            out.extend(page.items);
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(out),
            }
        }
    }

    /// Live keys with a version generated here (created or rotated, not
    /// imported) more than `days` ago that no backup holds: losing this
    /// vault would lose them for good. Returns (name, created time of the
    /// oldest such version).
    pub async fn without_recent_backup(
        &self,
        vault: &Vault,
        days: i64,
    ) -> Result<Vec<(String, i64)>> {
        let cutoff = self.objects.now() - days * DAY;
        let mut found = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.objects.list(vault, after.as_deref(), 25).await?;
            for key in &page.items {
                let versions = match self.all_versions(vault, &key.name).await {
                    Ok(v) => v,
                    Err(Error::NotFound { .. }) => continue, // deleted meanwhile
                    Err(e) => return Err(e),
                };
                let backed_up: Vec<String> = self
                    .barrier
                    .get::<Vec<String>>(&backup_mark_key(vault, &key.name))
                    .await?
                    .map(|s| s.value)
                    .unwrap_or_default();
                let oldest = versions
                    .iter()
                    .filter(|v| v.meta.generated && v.meta.attributes.created <= cutoff)
                    .filter(|v| !backed_up.contains(&v.meta.version))
                    .map(|v| v.meta.attributes.created)
                    .min();
                if let Some(created) = oldest {
                    found.push((key.name.clone(), created));
                }
            }
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(found),
            }
        }
    }
}

fn backup_mark_key(vault: &Vault, name: &str) -> String {
    format!("v/{}/keybackups/{}", vault.id, names::fold(name))
}
