//! Certificates: an X.509 certificate with its private key, issued in the
//! vault (self-signed, or through a signing request that an outside CA
//! answers and the caller merges) or imported (PEM or PKCS#12). The
//! lifecycle is the one every object shares ([`crate::objects`]); each
//! version keeps the policy it was issued under, and the latest version's
//! policy is the certificate's. As in Azure, a certificate's key and secret
//! are readable under the same name and version through the keys and
//! secrets APIs ([`Certificates::backing`]).

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64STD, URL_SAFE_NO_PAD as B64};
use keyfort_crypto::CryptoError;
use keyfort_crypto::certs::{self, CertRequest};
use keyfort_crypto::keys::{Curve, Jwk, KeyMaterial};
use keyfort_store::Batch;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::barrier::{Barrier, Stored};
use crate::clock::Clock;
use crate::keys::PrivateKey;
use crate::model::{Attributes, Tags, Vault};
pub use crate::objects::{AttributeChanges, Page};
use crate::objects::{ExtraPut, ObjectKind, ObjectMeta, ObjectView, Objects, check_tags};
use crate::{Error, Result, names};

/// Azure's data actions for certificates.
pub mod actions {
    pub const READ: &str = "Microsoft.KeyVault/vaults/certificates/read";
    pub const CREATE: &str = "Microsoft.KeyVault/vaults/certificates/create/action";
    pub const IMPORT: &str = "Microsoft.KeyVault/vaults/certificates/import/action";
    pub const UPDATE: &str = "Microsoft.KeyVault/vaults/certificates/update/action";
    pub const DELETE: &str = "Microsoft.KeyVault/vaults/certificates/delete";
    pub const BACKUP: &str = "Microsoft.KeyVault/vaults/certificates/backup/action";
    pub const RESTORE: &str = "Microsoft.KeyVault/vaults/certificates/restore/action";
    pub const RECOVER: &str = "Microsoft.KeyVault/vaults/certificates/recover/action";
    pub const PURGE: &str = "Microsoft.KeyVault/vaults/certificates/purge/action";
}

pub const PKCS12: &str = "application/x-pkcs12";
pub const PEM: &str = "application/x-pem-file";

/// The key of a certificate, as its policy describes it (Azure's `key_props`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct KeyProps {
    #[serde(default = "yes")]
    pub exportable: bool,
    #[serde(default = "rsa")]
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_size: Option<u32>,
    #[serde(default)]
    pub reuse_key: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
}

fn yes() -> bool {
    true
}
fn rsa() -> String {
    "RSA".into()
}
fn pkcs12() -> String {
    PKCS12.into()
}
fn twelve() -> u32 {
    12
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SecretProps {
    #[serde(rename = "contentType", default = "pkcs12")]
    pub content_type: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Sans {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upns: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uris: Vec<String>,
    #[serde(rename = "ipAddresses", default, skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct X509Props {
    #[serde(default)]
    pub subject: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ekus: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sans: Option<Sans>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_usage: Vec<String>,
    #[serde(default = "twelve")]
    pub validity_months: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct IssuerParams {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cty: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_transparency: Option<bool>,
}

/// A certificate policy in Azure's wire shape (`CertificatePolicy`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CertPolicy {
    pub key_props: KeyProps,
    pub secret_props: SecretProps,
    pub x509_props: X509Props,
    /// Echoed as given: renewal is not automatic here (see the docs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lifetime_actions: Vec<serde_json::Value>,
    pub issuer: IssuerParams,
}

/// Everything about one certificate version except its private key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CertMeta {
    pub version: String,
    pub attributes: Attributes,
    pub tags: Option<Tags>,
    /// SHA-1 thumbprint, base64url.
    pub x5t: String,
    /// The leaf certificate, DER, base64.
    pub cer: String,
    pub content_type: String,
    pub policy: CertPolicy,
    /// The public half of the certificate's key.
    pub public: Jwk,
    /// The chain above the leaf (DER, base64), for the secret's value.
    #[serde(default)]
    pub chain: Vec<String>,
}

impl ObjectMeta for CertMeta {
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

/// Certificates as a kind of vault object. The sealed payload is the private key.
pub struct CertKind;

impl ObjectKind for CertKind {
    type Meta = CertMeta;
    type Value = PrivateKey;
    const NOUN: &'static str = "certificate";
    const TITLE: &'static str = "Certificate";
    const COLLECTION: &'static str = "certificates";
    const NOT_FOUND: &'static str = "CertificateNotFound";

    fn related_keys(vault: &Vault, folded_name: &str) -> Vec<String> {
        vec![op_key(vault, folded_name)]
    }
}

pub type CertView = ObjectView<CertMeta, PrivateKey>;

/// A certificate being issued: done at once for `Self`, waiting for a merge
/// for `Unknown` (an outside CA signs the CSR).
#[derive(Clone, Serialize, Deserialize)]
pub struct CertOperation {
    pub name: String,
    pub issuer: IssuerParams,
    /// The signing request, DER, base64.
    pub csr: Option<String>,
    /// `inProgress`, `completed` or `cancelled`.
    pub status: String,
    pub status_details: String,
    pub request_id: String,
    pub cancellation_requested: bool,
    /// The version it produced, once completed.
    pub target_version: Option<String>,
    pub policy: CertPolicy,
    pub tags: Option<Tags>,
    pub enabled: Option<bool>,
    /// The key the CSR was made with, until the merge (never shown).
    pub pending_key: Option<PrivateKey>,
}

impl std::fmt::Debug for CertOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertOperation")
            .field("name", &self.name)
            .field("status", &self.status)
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

pub struct CreateCertificate {
    pub policy: CertPolicy,
    pub tags: Option<Tags>,
    pub enabled: Option<bool>,
}

pub struct ImportCertificate {
    /// PKCS#12 bytes, or the PEM text's bytes.
    pub value: Zeroizing<Vec<u8>>,
    pub password: Zeroizing<String>,
    /// Only `secret_props`/`key_props`/`issuer` parts the caller gave.
    pub policy: Option<CertPolicy>,
    pub tags: Option<Tags>,
    pub enabled: Option<bool>,
}

#[derive(Default)]
pub struct UpdateCertificate {
    pub enabled: Option<bool>,
    pub tags: Option<Tags>,
    pub policy: Option<CertPolicy>,
}

pub struct Certificates {
    objects: Objects<CertKind>,
    barrier: Arc<Barrier>,
    materials: crate::keys::MaterialCache,
}

impl std::ops::Deref for Certificates {
    type Target = Objects<CertKind>;
    fn deref(&self) -> &Self::Target {
        &self.objects
    }
}

fn input_error(e: CryptoError) -> Error {
    match e {
        CryptoError::Unsupported(m) | CryptoError::BadInput(m) => Error::bad(m),
        other => other.into(),
    }
}

fn op_key(vault: &Vault, name: &str) -> String {
    format!("v/{}/certops/{}", vault.id, names::fold(name))
}

fn no_operation(name: &str) -> Error {
    Error::not_found(
        "PendingCertificateNotFound",
        format!("Pending certificate not found: {}", names::printable(name)),
    )
}

/// Checks a policy for what this vault can issue, and fills Azure's defaults.
pub fn check_policy(policy: &mut CertPolicy, for_import: bool) -> Result<()> {
    let kp = &mut policy.key_props;
    match kp.kty.as_str() {
        "RSA" => {
            let size = *kp.key_size.get_or_insert(2048);
            if ![2048, 3072, 4096].contains(&size) {
                return Err(Error::bad(format!(
                    "key_props.key_size {size} is not supported: use 2048, 3072 or 4096."
                )));
            }
            if kp.crv.is_some() {
                return Err(Error::bad(
                    "key_props.crv applies to EC keys, not RSA keys.",
                ));
            }
        }
        "EC" => {
            let crv = kp.crv.get_or_insert_with(|| "P-256".into());
            if !["P-256", "P-384", "P-521"].contains(&crv.as_str()) {
                return Err(Error::bad(format!(
                    "key_props.crv '{}' is not supported for certificates: use P-256, P-384 or P-521.",
                    names::printable(crv)
                )));
            }
        }
        other => {
            return Err(Error::bad(format!(
                "key_props.kty '{}' is not supported: this vault is Standard, so use RSA or EC.",
                names::printable(other)
            )));
        }
    }
    if !policy.key_props.exportable {
        return Err(Error::bad(
            "key_props.exportable false is not supported: a certificate's secret here always holds its private key. Keep the key in the keys API if it must never leave the vault.",
        ));
    }
    if ![PKCS12, PEM].contains(&policy.secret_props.content_type.as_str()) {
        return Err(Error::bad(format!(
            "secret_props.contentType '{}' is not supported: use {PKCS12} or {PEM}.",
            names::printable(&policy.secret_props.content_type)
        )));
    }
    // Azure's default lifetime action: renew a self-signed certificate at
    // 80% of its life; for a CA-signed one, only notify.
    if policy.lifetime_actions.is_empty() {
        let action = if policy.issuer.name.eq_ignore_ascii_case("self") {
            "AutoRenew"
        } else {
            "EmailContacts"
        };
        policy.lifetime_actions = vec![serde_json::json!({
            "trigger": { "lifetime_percentage": 80 },
            "action": { "action_type": action },
        })];
    }
    if for_import {
        return Ok(());
    }
    let x = &policy.x509_props;
    if !(1..=1200).contains(&x.validity_months) {
        return Err(Error::bad(
            "x509_props.validity_months must be between 1 and 1200.",
        ));
    }
    let has_sans = x.sans.as_ref().is_some_and(|s| {
        !(s.dns_names.is_empty()
            && s.emails.is_empty()
            && s.upns.is_empty()
            && s.uris.is_empty()
            && s.ip_addresses.is_empty())
    });
    if x.subject.trim().is_empty() && !has_sans {
        return Err(Error::bad(
            "The policy needs x509_props.subject or x509_props.sans.",
        ));
    }
    match policy.issuer.name.to_ascii_lowercase().as_str() {
        "self" | "unknown" => Ok(()),
        _ => Err(Error::bad(format!(
            "Issuer '{}' is not supported: use 'Self' (issued here) or 'Unknown' (you merge what your CA signs). Certificate issuer objects are not supported.",
            names::printable(&policy.issuer.name)
        ))),
    }
}

async fn new_key(kp: &KeyProps) -> Result<KeyMaterial> {
    match (kp.kty.as_str(), kp.crv.as_deref()) {
        ("EC", Some(crv)) => {
            let curve = Curve::parse(crv).ok_or_else(|| Error::bad("unknown curve"))?;
            KeyMaterial::generate_ec(curve)
        }
        _ => {
            let bits = kp.key_size.unwrap_or(2048);
            crate::keys::generate_off_runtime(move || KeyMaterial::generate_rsa(bits, None)).await
        }
    }
    .map_err(input_error)
}

/// When a version issued for `nbf..exp` is due for renewal under the
/// policy's `AutoRenew` action, if it has one.
fn renew_at(policy: &CertPolicy, nbf: i64, exp: i64) -> Option<i64> {
    use serde_json::Value;
    policy.lifetime_actions.iter().find_map(|a| {
        let kind = a.pointer("/action/action_type").and_then(Value::as_str)?;
        if !kind.eq_ignore_ascii_case("AutoRenew") {
            return None;
        }
        if let Some(p) = a
            .pointer("/trigger/lifetime_percentage")
            .and_then(Value::as_i64)
        {
            return Some(nbf + (exp - nbf) * p.clamp(1, 99) / 100);
        }
        let days = a
            .pointer("/trigger/days_before_expiry")
            .and_then(Value::as_i64)?;
        Some(exp - days.max(1) * crate::clock::DAY)
    })
}

/// Certificates kept in a chain, leaf included.
const MAX_CHAIN: usize = 16;

fn request(policy: &CertPolicy, now: i64) -> CertRequest {
    let x = &policy.x509_props;
    let sans = x.sans.clone().unwrap_or_default();
    CertRequest {
        subject: x.subject.clone(),
        dns_names: sans.dns_names,
        emails: sans.emails,
        upns: sans.upns,
        uris: sans.uris,
        ip_addresses: sans.ip_addresses,
        ekus: x.ekus.clone(),
        key_usage: x.key_usage.clone(),
        validity_months: x.validity_months,
        not_before: now,
    }
}

/// What a new version is issued under besides its certificate and key.
struct Issue<'a> {
    policy: &'a CertPolicy,
    tags: Option<Tags>,
    enabled: Option<bool>,
}

/// A new version's metadata from its certificate chain (leaf first).
fn meta_for(
    version: String,
    now: i64,
    chain: &[Vec<u8>],
    key: &KeyMaterial,
    issue: &Issue,
) -> Result<CertMeta> {
    let (leaf, rest) = chain
        .split_first()
        .ok_or_else(|| Error::bad("No certificate was given."))?;
    let info = certs::inspect(leaf).map_err(input_error)?;
    Ok(CertMeta {
        version,
        attributes: Attributes {
            enabled: issue.enabled.unwrap_or(true),
            nbf: Some(info.not_before),
            exp: Some(info.not_after),
            created: now,
            updated: now,
        },
        tags: issue.tags.clone(),
        x5t: B64.encode(&info.thumbprint_sha1),
        cer: B64STD.encode(leaf),
        content_type: issue.policy.secret_props.content_type.clone(),
        policy: issue.policy.clone(),
        public: key.public_jwk(),
        chain: rest.iter().map(|c| B64STD.encode(c)).collect(),
    })
}

/// The policy Azure reports for an imported certificate: what the
/// certificate says, with the caller's secret and key choices.
/// Without a policy, the secret keeps the format imported (`pem`).
fn policy_from_certificate(
    leaf: &[u8],
    key: &KeyMaterial,
    given: Option<CertPolicy>,
    pem: bool,
) -> Result<CertPolicy> {
    let info = certs::inspect(leaf).map_err(input_error)?;
    let jwk = key.public_jwk();
    let months = ((info.not_after - info.not_before) / (30 * crate::clock::DAY)).max(1) as u32;
    let mut policy = CertPolicy {
        key_props: KeyProps {
            exportable: true,
            kty: jwk.kty.clone().unwrap_or_else(rsa),
            key_size: key.key_size(),
            reuse_key: false,
            crv: jwk.crv.clone(),
        },
        secret_props: SecretProps {
            content_type: if pem { PEM } else { PKCS12 }.into(),
        },
        x509_props: X509Props {
            subject: info.subject.clone(),
            ekus: info.ekus.clone(),
            sans: Some(Sans {
                dns_names: info.dns_names.clone(),
                emails: info.emails.clone(),
                upns: info.upns.clone(),
                uris: info.uris.clone(),
                ip_addresses: info.ip_addresses.clone(),
            })
            .filter(|s| s != &Sans::default()),
            key_usage: info.key_usage.clone(),
            validity_months: months,
        },
        lifetime_actions: Vec::new(),
        issuer: IssuerParams {
            name: "Unknown".into(),
            cty: None,
            cert_transparency: None,
        },
    };
    if let Some(given) = given {
        policy.secret_props = given.secret_props;
        policy.lifetime_actions = given.lifetime_actions;
    }
    Ok(policy)
}

/// Whether imported bytes are PEM text rather than a PKCS#12 file (PEM may
/// start with OpenSSL's "Bag Attributes" lines before its first block).
pub fn is_pem(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(4096)];
    head.windows(10).any(|w| w == b"-----BEGIN")
}

/// A certificate's secret value in `content_type` (its own unless the
/// caller asks for the other): PEM text, or a password-less PKCS#12 file in
/// base64, as Azure returns it. Building a PFX runs a key derivation: the
/// caller runs this off the async workers.
pub fn secret_value(
    meta: &CertMeta,
    key: &PrivateKey,
    content_type: &str,
) -> Result<Zeroizing<String>> {
    let material = KeyMaterial::from_pkcs8(key.der()).map_err(input_error)?;
    let mut chain = vec![B64STD.decode(&meta.cer).map_err(|_| corrupt())?];
    for c in &meta.chain {
        chain.push(B64STD.decode(c).map_err(|_| corrupt())?);
    }
    if content_type == PEM {
        Ok(certs::to_pem(&material, &chain))
    } else {
        let pfx = certs::to_pkcs12(&material, &chain).map_err(input_error)?;
        Ok(Zeroizing::new(B64STD.encode(&*pfx)))
    }
}

fn corrupt() -> Error {
    Error::Internal("a stored certificate does not decode".into())
}

impl Certificates {
    pub fn new(barrier: Arc<Barrier>, clock: Arc<dyn Clock>) -> Self {
        Certificates {
            objects: Objects::new(barrier.clone(), clock),
            barrier,
            materials: Default::default(),
        }
    }

    /// Adds a version. With `done`, the operation that produced it is
    /// completed in the same batch (on the condition that it is unchanged),
    /// so two merges of one request cannot both make a version.
    async fn add(
        &self,
        vault: &Vault,
        name: &str,
        key: &KeyMaterial,
        chain: &[Vec<u8>],
        issue: Issue<'_>,
        done: Option<(CertOperation, Option<&Stored<CertOperation>>)>,
    ) -> Result<CertView> {
        check_tags("certificate", issue.tags.as_ref())?;
        let version = keyfort_crypto::random::hex_id();
        let extra = match done {
            Some((mut op, previous)) => {
                op.target_version = Some(version.clone());
                let key = op_key(vault, name);
                Some(ExtraPut {
                    value: self.barrier.seal_json(&key, &op).await?,
                    expect: previous.map(|p| p.raw.clone()),
                    key,
                })
            }
            None => None,
        };
        let meta = |now, _| meta_for(version.clone(), now, chain, key, &issue);
        let private = PrivateKey::from_der(key.to_der());
        let mut view = self
            .objects
            .add_version_with(vault, name, meta, private, extra.as_ref())
            .await?;
        view.value = None;
        Ok(view)
    }

    async fn read_operation(
        &self,
        vault: &Vault,
        name: &str,
    ) -> Result<Option<Stored<CertOperation>>> {
        self.barrier.get(&op_key(vault, name)).await
    }

    async fn save_operation(
        &self,
        vault: &Vault,
        op: &CertOperation,
        previous: Option<&Stored<CertOperation>>,
    ) -> Result<()> {
        let key = op_key(vault, &op.name);
        let batch = match previous {
            Some(p) => Batch::new().expect_equals(key.clone(), p.raw.clone()),
            None => Batch::new().expect_absent(key.clone()),
        };
        let sealed = self.barrier.seal_json(&key, op).await?;
        self.barrier.commit(batch.put(key, sealed)).await
    }

    /// Starts issuing a certificate. `Self` completes at once; `Unknown`
    /// leaves a CSR waiting for [`Certificates::merge`].
    pub async fn create(
        &self,
        vault: &Vault,
        name: &str,
        mut req: CreateCertificate,
    ) -> Result<CertOperation> {
        Objects::<CertKind>::check_name(name)?;
        check_policy(&mut req.policy, false)?;
        check_tags("certificate", req.tags.as_ref())?;
        let previous = self.read_operation(vault, name).await?;
        if previous
            .as_ref()
            .is_some_and(|p| p.value.status == "inProgress")
        {
            return Err(Error::Conflict(format!(
                "Certificate {} has a pending operation; merge or cancel it first.",
                names::printable(name)
            )));
        }
        if self.get_deleted(vault, name).await.is_ok() {
            return Err(Error::Conflict(format!(
                "Certificate {} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the certificate can only be recovered or purged.",
                names::printable(name)
            )));
        }
        let now = self.objects.now();
        // `reuse_key` renews with the latest version's key, if it is of the policy's kind.
        let reused = match self.objects.read(vault, name, None).await {
            Ok(latest) if req.policy.key_props.reuse_key => {
                let key = KeyMaterial::from_pkcs8(latest.value.as_ref().expect("read").der())
                    .map_err(input_error)?;
                (key.public_jwk().kty.as_deref() == Some(req.policy.key_props.kty.as_str()))
                    .then_some(key)
            }
            _ => None,
        };
        let key = match reused {
            Some(key) => key,
            None => new_key(&req.policy.key_props).await?,
        };
        let cert_request = request(&req.policy, now);
        let mut op = CertOperation {
            name: name.to_owned(),
            issuer: req.policy.issuer.clone(),
            csr: None,
            status: "inProgress".into(),
            status_details:
                "Pending certificate created. Please Perform Merge to complete the request.".into(),
            request_id: keyfort_crypto::random::hex_id(),
            cancellation_requested: false,
            target_version: None,
            policy: req.policy.clone(),
            tags: req.tags.clone(),
            enabled: req.enabled,
            pending_key: None,
        };
        if req.policy.issuer.name.eq_ignore_ascii_case("self") {
            let cert = certs::self_signed(&key, &cert_request).map_err(input_error)?;
            let issue = Issue {
                policy: &req.policy,
                tags: req.tags,
                enabled: req.enabled,
            };
            op.status = "completed".into();
            op.status_details = String::new();
            let done = Some((op.clone(), previous.as_ref()));
            let view = self.add(vault, name, &key, &[cert], issue, done).await?;
            op.target_version = Some(view.meta.version);
        } else {
            let csr = certs::csr(&key, &cert_request).map_err(input_error)?;
            op.csr = Some(B64STD.encode(csr));
            op.pending_key = Some(PrivateKey::from_der(key.to_der()));
            self.save_operation(vault, &op, previous.as_ref()).await?;
        }
        Ok(op)
    }

    /// The certificate's current or last operation.
    pub async fn operation(&self, vault: &Vault, name: &str) -> Result<CertOperation> {
        Objects::<CertKind>::check_name(name)?;
        self.read_operation(vault, name)
            .await?
            .map(|s| s.value)
            .ok_or_else(|| no_operation(name))
    }

    /// Asks a pending operation to stop: its key is dropped.
    pub async fn cancel_operation(&self, vault: &Vault, name: &str) -> Result<CertOperation> {
        let stored = self
            .read_operation(vault, name)
            .await?
            .ok_or_else(|| no_operation(name))?;
        let mut op = stored.value.clone();
        if op.status == "inProgress" {
            op.cancellation_requested = true;
            op.status = "cancelled".into();
            op.status_details = "The operation was cancelled.".into();
            op.pending_key = None;
            self.save_operation(vault, &op, Some(&stored)).await?;
        }
        Ok(op)
    }

    /// Deletes the operation record (a pending key with it).
    pub async fn delete_operation(&self, vault: &Vault, name: &str) -> Result<CertOperation> {
        let stored = self
            .read_operation(vault, name)
            .await?
            .ok_or_else(|| no_operation(name))?;
        let batch = Batch::new()
            .expect_equals(stored.key.clone(), stored.raw.clone())
            .delete(stored.key.clone());
        self.barrier.commit(batch).await?;
        Ok(stored.value)
    }

    /// Completes an `Unknown`-issuer operation with the certificate (and
    /// chain) the CA signed; its public key must be the CSR's.
    pub async fn merge(
        &self,
        vault: &Vault,
        name: &str,
        x5c: Vec<Vec<u8>>,
        tags: Option<Tags>,
        enabled: Option<bool>,
    ) -> Result<CertView> {
        let stored = self
            .read_operation(vault, name)
            .await?
            .ok_or_else(|| no_operation(name))?;
        let op = stored.value.clone();
        let (Some(pending), "inProgress") = (&op.pending_key, op.status.as_str()) else {
            return Err(Error::bad(format!(
                "Certificate {} has no pending signing request to merge.",
                names::printable(name)
            )));
        };
        let key = KeyMaterial::from_pkcs8(pending.der()).map_err(input_error)?;
        let leaf = x5c
            .first()
            .ok_or_else(|| Error::bad("'x5c' must hold at least the signed certificate."))?;
        if x5c.len() > MAX_CHAIN {
            return Err(Error::bad(format!(
                "'x5c' holds {} certificates; at most {MAX_CHAIN} are kept.",
                x5c.len()
            )));
        }
        for c in &x5c {
            certs::inspect(c).map_err(input_error)?;
        }
        if !certs::public_key_matches(leaf, &key).map_err(input_error)? {
            return Err(Error::bad(
                "The certificate's public key is not the key of the pending signing request.",
            ));
        }
        let issue = Issue {
            policy: &op.policy,
            tags: tags.or(op.tags.clone()),
            enabled: enabled.or(op.enabled),
        };
        let done = CertOperation {
            status: "completed".into(),
            status_details: String::new(),
            pending_key: None,
            ..op.clone()
        };
        self.add(vault, name, &key, &x5c, issue, Some((done, Some(&stored))))
            .await
    }

    /// Imports a certificate with its private key (PKCS#12 or PEM).
    pub async fn import(
        &self,
        vault: &Vault,
        name: &str,
        req: ImportCertificate,
    ) -> Result<CertView> {
        Objects::<CertKind>::check_name(name)?;
        let pem = is_pem(&req.value);
        let ImportCertificate {
            value, password, ..
        } = req;
        // Parsing a PFX runs its key derivations: off the async workers.
        let parsed = tokio::task::spawn_blocking(move || {
            if pem {
                let text = std::str::from_utf8(&value)
                    .map_err(|_| CryptoError::BadInput("the PEM text is not UTF-8".into()))?;
                certs::from_pem(text)
            } else {
                certs::from_pkcs12(&value, &password)
            }
        })
        .await
        .map_err(|_| Error::Internal("the import task failed".into()))?;
        let (key, chain) = parsed.map_err(input_error)?;
        let leaf = chain
            .first()
            .ok_or_else(|| Error::bad("The file holds no certificate."))?;
        let mut policy = policy_from_certificate(leaf, &key, req.policy, pem)?;
        check_policy(&mut policy, true)?;
        let issue = Issue {
            policy: &policy,
            tags: req.tags,
            enabled: req.enabled,
        };
        self.add(vault, name, &key, &chain, issue, None).await
    }

    /// A version's certificate and metadata (never its private key).
    pub async fn get(&self, vault: &Vault, name: &str, version: Option<&str>) -> Result<CertView> {
        let mut view = self.objects.read(vault, name, version).await?;
        view.value = None;
        Ok(view)
    }

    /// A version with its private key, for the backing secret and key.
    pub async fn backing(
        &self,
        vault: &Vault,
        name: &str,
        version: Option<&str>,
    ) -> Result<CertView> {
        self.objects.read(vault, name, version).await
    }

    /// Changes `enabled`, tags, or (on the latest version) the policy.
    /// `nbf` and `exp` come from the certificate and cannot be changed.
    pub async fn update(
        &self,
        vault: &Vault,
        name: &str,
        version: Option<&str>,
        mut req: UpdateCertificate,
    ) -> Result<CertView> {
        check_tags("certificate", req.tags.as_ref())?;
        if let Some(p) = req.policy.as_mut() {
            check_policy(p, false)?;
            // The policy is the certificate's: it lives on the latest version.
            let latest = self.objects.head(vault, name).await?.meta.version;
            if version.is_some_and(|v| !v.eq_ignore_ascii_case(&latest)) {
                return Err(Error::bad(
                    "A certificate's policy can be changed only on its latest version.",
                ));
            }
        }
        let changes = AttributeChanges {
            enabled: req.enabled,
            ..Default::default()
        };
        let edit = |meta: &mut CertMeta| {
            if req.tags.is_some() {
                meta.tags = req.tags.clone();
            }
            if let Some(p) = &req.policy {
                meta.policy = p.clone();
            }
            Ok(())
        };
        self.objects
            .update(vault, name, version, &changes, edit)
            .await
    }

    /// The latest version's policy.
    pub async fn policy(&self, vault: &Vault, name: &str) -> Result<CertPolicy> {
        Ok(self.objects.head(vault, name).await?.meta.policy)
    }

    /// Replaces the policy (on the latest version) with `policy`.
    pub async fn set_policy(
        &self,
        vault: &Vault,
        name: &str,
        policy: CertPolicy,
    ) -> Result<CertPolicy> {
        let req = UpdateCertificate {
            policy: Some(policy),
            ..Default::default()
        };
        Ok(self.update(vault, name, None, req).await?.meta.policy)
    }
}

impl Certificates {
    /// A certificate version's key, for the keys API's operations. It may
    /// do what its type can (as a key created without `key_ops`).
    pub async fn key_in_use(
        &self,
        vault: &Vault,
        name: &str,
        version: Option<&str>,
    ) -> Result<crate::keys::KeyInUse> {
        let view = self.objects.read(vault, name, version).await?;
        let private = view.value.as_ref().expect("read returns the payload");
        let material = self.materials.get_or_parse(vault, &view.meta.version, || {
            KeyMaterial::from_pkcs8(private.der()).map_err(input_error)
        })?;
        Ok(crate::keys::KeyInUse {
            key_ops: crate::keys::default_ops(material.kind()),
            material,
            name: view.name,
            version: view.meta.version,
            attributes: view.meta.attributes,
        })
    }

    /// Purges a deleted certificate for good, and forgets its parsed key.
    pub async fn purge(&self, vault: &Vault, name: &str) -> Result<()> {
        let purged = self.objects.purge(vault, name).await;
        self.materials.forget_all();
        purged
    }

    /// The purge sweeper's pass over this vault's deleted certificates.
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

    /// Renews the vault's self-signed certificates whose `AutoRenew`
    /// trigger has come: a new version under the latest one's policy, tags
    /// and key choice. Returns the new versions.
    pub async fn renew_due(&self, vault: &Vault) -> Result<Vec<CertView>> {
        let now = self.objects.now();
        let mut renewed = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.objects.list(vault, after.as_deref(), 25).await?;
            for cert in &page.items {
                let meta = &cert.meta;
                let (Some(nbf), Some(exp)) = (meta.attributes.nbf, meta.attributes.exp) else {
                    continue;
                };
                let due = renew_at(&meta.policy, nbf, exp).is_some_and(|at| now >= at);
                if !due || !meta.policy.issuer.name.eq_ignore_ascii_case("self") {
                    continue;
                }
                let req = CreateCertificate {
                    policy: meta.policy.clone(),
                    tags: meta.tags.clone(),
                    enabled: None,
                };
                match self.create(vault, &cert.name, req).await {
                    Ok(op) => {
                        let version = op.target_version.as_deref();
                        renewed.push(self.get(vault, &cert.name, version).await?);
                    }
                    Err(e) => {
                        tracing::warn!(vault = %vault.name, certificate = %cert.name, error = %e, "automatic renewal failed");
                    }
                }
            }
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(renewed),
            }
        }
    }

    /// Whether a live or deleted certificate has this name.
    pub async fn exists(&self, vault: &Vault, name: &str) -> Result<bool> {
        Ok(found(self.objects.head(vault, name).await)?
            || found(self.get_deleted(vault, name).await)?)
    }
}

/// Whether a lookup found its object; "not found" is an answer, other errors are not.
fn found<T>(lookup: Result<T>) -> Result<bool> {
    match lookup {
        Ok(_) => Ok(true),
        Err(Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

impl crate::Keyfort {
    /// A key version to use: a key's, or else the key of the certificate of
    /// that name (as in Azure, a certificate's key is a key of the vault).
    pub async fn key_in_use(
        &self,
        vault: &Vault,
        name: &str,
        version: Option<&str>,
    ) -> Result<crate::keys::KeyInUse> {
        match self.keys.in_use(vault, name, version).await {
            Err(missing @ Error::NotFound { .. }) => {
                match self.certificates.key_in_use(vault, name, version).await {
                    Err(Error::NotFound { .. }) => Err(missing),
                    other => other,
                }
            }
            other => other,
        }
    }

    /// Refuses a plain secret or key under a certificate's name: that name's
    /// secret and key belong to the certificate and change only through it.
    pub async fn check_not_certificate_backed(
        &self,
        vault: &Vault,
        noun: &str,
        name: &str,
    ) -> Result<()> {
        if self.certificates.exists(vault, name).await? {
            return Err(Error::Conflict(format!(
                "The {noun} {} belongs to the certificate {} (it is managed by Key Vault); change it through the certificate.",
                names::printable(name),
                names::printable(name)
            )));
        }
        Ok(())
    }

    /// Refuses a certificate under the name of a plain secret or key (live
    /// or deleted): the certificate's own secret and key take that name.
    pub async fn check_free_for_certificate(&self, vault: &Vault, name: &str) -> Result<()> {
        let secret = found(self.secrets.head(vault, name).await)?
            || found(self.secrets.get_deleted(vault, name).await)?;
        let key = found(self.keys.head(vault, name).await)?
            || found(self.keys.get_deleted(vault, name).await)?;
        if secret || key {
            return Err(Error::Conflict(format!(
                "A {} named {} already exists in this vault; a certificate's secret and key take its name, so choose another name.",
                if secret { "secret" } else { "key" },
                names::printable(name)
            )));
        }
        Ok(())
    }
}

/// An entry of a secrets or keys listing: a plain object, or the secret or
/// key of a certificate (listed too, as in Azure, marked managed).
pub enum Listed<T> {
    Plain(T),
    Certificate(Box<CertView>),
}

impl crate::Keyfort {
    /// One page of `objects` (secrets or keys) merged, by name, with the
    /// certificates whose secret and key they also list. The continuation
    /// is the last name shown, which both sources continue after.
    pub async fn list_with_certificates<K: ObjectKind>(
        &self,
        objects: &Objects<K>,
        vault: &Vault,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Listed<crate::objects::View<K>>>> {
        let plain = objects.list(vault, after, limit).await?;
        let certs = self.certificates.list(vault, after, limit).await?;
        let more = plain.next.is_some() || certs.next.is_some();
        let mut all: Vec<(String, Listed<crate::objects::View<K>>)> = plain
            .items
            .into_iter()
            .map(|o| (names::fold(&o.name), Listed::Plain(o)))
            .chain(
                certs
                    .items
                    .into_iter()
                    .map(|c| (names::fold(&c.name), Listed::Certificate(Box::new(c)))),
            )
            .collect();
        // Stable: a plain object listed first keeps its place over a
        // certificate of the same name (which the APIs no longer allow).
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all.dedup_by(|later, earlier| later.0 == earlier.0);
        let more = more || all.len() > limit;
        all.truncate(limit);
        let next = if more {
            all.last().map(|(folded, _)| folded.clone())
        } else {
            None
        };
        Ok(Page {
            items: all.into_iter().map(|(_, item)| item).collect(),
            next,
        })
    }
}
