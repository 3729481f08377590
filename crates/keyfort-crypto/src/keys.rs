//! Key material behind the keys API: RSA and EC private keys, their JSON Web
//! Key form (RFC 7517/7518 as Key Vault uses it), and the sign, verify,
//! encrypt and decrypt operations Key Vault offers on them.
//!
//! Signing takes a caller-supplied digest, as Key Vault's `sign` does, and
//! ECDSA signatures are JOSE fixed-width `r || s`. The private key is held as
//! PKCS#8 DER (what aws-lc-rs emits and parses) in a zeroizing buffer; the
//! parsed aws-lc keys live inside aws-lc, which clears them when freed.

use std::fmt;

use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{
    KeyPairComponents, KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepAlgorithm,
    OaepPrivateDecryptingKey, OaepPublicEncryptingKey, Pkcs1PrivateDecryptingKey,
    Pkcs1PublicEncryptingKey, PrivateDecryptingKey, PublicKeyComponents,
};
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, EcdsaSigningAlgorithm, EcdsaVerificationAlgorithm, KeyPair as _,
    RsaKeyPair, RsaParameters, RsaSignatureEncoding, UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::CryptoError;

/// The only public exponent offered for new RSA keys, as in Key Vault.
const RSA_F4: u32 = 65_537;

/// A named elliptic curve (Key Vault's `JsonWebKeyCurveName`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Curve {
    P256,
    P384,
    P521,
    /// secp256k1.
    P256K,
}

impl Curve {
    /// The curve for a JWK `crv` name, or `None` if it is not one of ours.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "P-256" => Some(Curve::P256),
            "P-384" => Some(Curve::P384),
            "P-521" => Some(Curve::P521),
            "P-256K" => Some(Curve::P256K),
            _ => None,
        }
    }

    /// The JWK `crv` name.
    pub fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
            Curve::P256K => "P-256K",
        }
    }

    /// Bytes in one field element: the fixed width of `x`, `y`, `d`, and of
    /// each half of a JOSE signature.
    pub fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 | Curve::P256K => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    // Each curve signs with exactly one JOSE algorithm, so the key pair is
    // parsed with that algorithm's hash.
    fn signing(self) -> &'static EcdsaSigningAlgorithm {
        match self {
            Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
            Curve::P256K => &signature::ECDSA_P256K1_SHA256_FIXED_SIGNING,
        }
    }

    fn verification(self) -> &'static EcdsaVerificationAlgorithm {
        match self {
            Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED,
            Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED,
            Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED,
            Curve::P256K => &signature::ECDSA_P256K1_SHA256_FIXED,
        }
    }
}

/// The kind of a key (JWK `kty`, and the curve for EC keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    Rsa,
    Ec(Curve),
}

impl KeyKind {
    /// The JWK `kty` of a software-protected key of this kind.
    pub fn kty(self) -> &'static str {
        match self {
            KeyKind::Rsa => "RSA",
            KeyKind::Ec(_) => "EC",
        }
    }
}

/// A JSON Web Key as Key Vault's REST API carries it. Binary members are
/// base64url without padding. Private members (`d`, `p`, `q`, `dp`, `dq`,
/// `qi`, `key_hsm`) are redacted from `Debug`; call [`Jwk::clear_private`]
/// once an imported key has been read.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Jwk {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kty: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_ops: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub d: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dq: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qi: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// A key wrapped for an HSM (Key Vault BYOK); treated as secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_hsm: Option<String>,
}

impl Jwk {
    /// Whether any private member is present.
    pub fn has_private(&self) -> bool {
        [
            &self.d,
            &self.p,
            &self.q,
            &self.dp,
            &self.dq,
            &self.qi,
            &self.key_hsm,
        ]
        .iter()
        .any(|m| m.is_some())
    }

    /// Overwrites and removes every private member, leaving the public key.
    pub fn clear_private(&mut self) {
        for member in [
            &mut self.d,
            &mut self.p,
            &mut self.q,
            &mut self.dp,
            &mut self.dq,
            &mut self.qi,
            &mut self.key_hsm,
        ] {
            // Zeroizing an Option<String> wipes the bytes and leaves None.
            member.zeroize();
        }
    }
}

impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Redacted<'a>(&'a Option<String>);
        impl fmt::Debug for Redacted<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.0 {
                    Some(_) => f.write_str("Some(<redacted>)"),
                    None => f.write_str("None"),
                }
            }
        }
        f.debug_struct("Jwk")
            .field("kid", &self.kid)
            .field("kty", &self.kty)
            .field("key_ops", &self.key_ops)
            .field("n", &self.n)
            .field("e", &self.e)
            .field("d", &Redacted(&self.d))
            .field("dp", &Redacted(&self.dp))
            .field("dq", &Redacted(&self.dq))
            .field("qi", &Redacted(&self.qi))
            .field("p", &Redacted(&self.p))
            .field("q", &Redacted(&self.q))
            .field("crv", &self.crv)
            .field("x", &self.x)
            .field("y", &self.y)
            .field("key_hsm", &Redacted(&self.key_hsm))
            .finish()
    }
}

enum SignatureScheme {
    Rsa {
        signing: &'static RsaSignatureEncoding,
        verification: &'static RsaParameters,
    },
    Ecdsa(Curve),
}

struct SignatureAlgorithm {
    name: &'static str,
    hash: &'static digest::Algorithm,
    scheme: SignatureScheme,
}

// Key Vault's JsonWebKeySignatureAlgorithm values. PSS salts are as long as
// the hash (aws-lc-rs's default both ways), which is what Key Vault uses.
static SIGNATURE_ALGORITHMS: [SignatureAlgorithm; 10] = [
    SignatureAlgorithm {
        name: "RS256",
        hash: &digest::SHA256,
        scheme: SignatureScheme::Rsa {
            signing: &signature::RSA_PKCS1_SHA256,
            verification: &signature::RSA_PKCS1_2048_8192_SHA256,
        },
    },
    SignatureAlgorithm {
        name: "RS384",
        hash: &digest::SHA384,
        scheme: SignatureScheme::Rsa {
            signing: &signature::RSA_PKCS1_SHA384,
            verification: &signature::RSA_PKCS1_2048_8192_SHA384,
        },
    },
    SignatureAlgorithm {
        name: "RS512",
        hash: &digest::SHA512,
        scheme: SignatureScheme::Rsa {
            signing: &signature::RSA_PKCS1_SHA512,
            verification: &signature::RSA_PKCS1_2048_8192_SHA512,
        },
    },
    SignatureAlgorithm {
        name: "PS256",
        hash: &digest::SHA256,
        scheme: SignatureScheme::Rsa {
            signing: &signature::RSA_PSS_SHA256,
            verification: &signature::RSA_PSS_2048_8192_SHA256,
        },
    },
    SignatureAlgorithm {
        name: "PS384",
        hash: &digest::SHA384,
        scheme: SignatureScheme::Rsa {
            signing: &signature::RSA_PSS_SHA384,
            verification: &signature::RSA_PSS_2048_8192_SHA384,
        },
    },
    SignatureAlgorithm {
        name: "PS512",
        hash: &digest::SHA512,
        scheme: SignatureScheme::Rsa {
            signing: &signature::RSA_PSS_SHA512,
            verification: &signature::RSA_PSS_2048_8192_SHA512,
        },
    },
    SignatureAlgorithm {
        name: "ES256",
        hash: &digest::SHA256,
        scheme: SignatureScheme::Ecdsa(Curve::P256),
    },
    SignatureAlgorithm {
        name: "ES384",
        hash: &digest::SHA384,
        scheme: SignatureScheme::Ecdsa(Curve::P384),
    },
    SignatureAlgorithm {
        name: "ES512",
        hash: &digest::SHA512,
        scheme: SignatureScheme::Ecdsa(Curve::P521),
    },
    SignatureAlgorithm {
        name: "ES256K",
        hash: &digest::SHA256,
        scheme: SignatureScheme::Ecdsa(Curve::P256K),
    },
];

enum EncryptionAlgorithm {
    Oaep(&'static OaepAlgorithm),
    Pkcs1,
}

// Key Vault's JsonWebKeyEncryptionAlgorithm values for RSA keys.
fn encryption_algorithm(name: &str) -> Result<EncryptionAlgorithm, CryptoError> {
    match name {
        "RSA-OAEP" => Ok(EncryptionAlgorithm::Oaep(&OAEP_SHA1_MGF1SHA1)),
        "RSA-OAEP-256" => Ok(EncryptionAlgorithm::Oaep(&OAEP_SHA256_MGF1SHA256)),
        "RSA1_5" => Ok(EncryptionAlgorithm::Pkcs1),
        other => Err(CryptoError::Unsupported(format!(
            "encryption algorithm {} is not supported",
            shown(other)
        ))),
    }
}

/// A caller-supplied name, shortened so an error message stays an error message.
fn shown(name: &str) -> String {
    let short: String = name.chars().take(32).collect();
    format!("{short:?}")
}

#[derive(Clone)]
enum Inner {
    Rsa {
        signing: RsaKeyPair,
        decrypting: PrivateDecryptingKey,
    },
    Ec {
        curve: Curve,
        signing: EcdsaKeyPair,
    },
}

/// A private key of the keys API.
#[derive(Clone)]
pub struct KeyMaterial {
    /// PKCS#8 v1 DER, the form sealed into storage.
    der: Zeroizing<Vec<u8>>,
    inner: Inner,
}

impl KeyMaterial {
    /// A new RSA key. Key Vault offers 2048, 3072 and 4096 bits and the
    /// public exponent 65537 only; anything else is refused.
    pub fn generate_rsa(bits: u32, public_exponent: Option<u32>) -> Result<Self, CryptoError> {
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            _ => {
                return Err(CryptoError::Unsupported(format!(
                    "RSA key size {bits} is not supported; use 2048, 3072 or 4096"
                )));
            }
        };
        if let Some(e) = public_exponent
            && e != RSA_F4
        {
            return Err(CryptoError::Unsupported(format!(
                "RSA public exponent {e} is not supported; only 65537 is"
            )));
        }
        // aws-lc generates with e = 65537 (RSA_F4); the tests hold it to that.
        let pair = RsaKeyPair::generate(size)?;
        let der = pair.as_der()?;
        Self::from_der(KeyKind::Rsa, der.as_ref())
    }

    /// A new EC key on `curve`.
    pub fn generate_ec(curve: Curve) -> Result<Self, CryptoError> {
        let pkcs8 = EcdsaKeyPair::generate(curve.signing())?.to_pkcs8v1()?;
        Self::from_der(KeyKind::Ec(curve), pkcs8.as_ref())
    }

    /// Imports a private key from a JWK. RSA needs `n`, `e`, `d`, `p`, `q`,
    /// `dp`, `dq` and `qi` (aws-lc-rs builds a key only from all of them and
    /// checks they agree); EC needs `crv`, `x`, `y` and `d`, and `x`, `y`
    /// must be the public point of `d`. Public-only keys are refused.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, CryptoError> {
        let kind = match jwk.kty.as_deref() {
            Some("RSA" | "RSA-HSM") => KeyKind::Rsa,
            Some("EC" | "EC-HSM") => {
                let crv = jwk
                    .crv
                    .as_deref()
                    .ok_or_else(|| bad("an EC JWK needs crv"))?;
                KeyKind::Ec(Curve::parse(crv).ok_or_else(|| {
                    CryptoError::Unsupported(format!("curve {} is not supported", shown(crv)))
                })?)
            }
            Some(kty @ ("oct" | "oct-HSM")) => {
                return Err(CryptoError::Unsupported(format!(
                    "kty {kty} is not an asymmetric key"
                )));
            }
            Some(other) => {
                return Err(CryptoError::Unsupported(format!(
                    "kty {} is not supported",
                    shown(other)
                )));
            }
            None => return Err(bad("the JWK has no kty")),
        };
        if jwk.key_hsm.is_some() {
            return Err(CryptoError::Unsupported(
                "importing an HSM-wrapped key (key_hsm) is not supported".into(),
            ));
        }
        if jwk.d.is_none() {
            return Err(bad(
                "the JWK has no private key (d); a public-only key cannot be imported",
            ));
        }
        match kind {
            KeyKind::Rsa => Self::rsa_from_jwk(jwk),
            KeyKind::Ec(curve) => Self::ec_from_jwk(curve, jwk),
        }
    }

    fn rsa_from_jwk(jwk: &Jwk) -> Result<Self, CryptoError> {
        let n = public_member(&jwk.n, "n")?;
        let e = public_member(&jwk.e, "e")?;
        let d = private_member(&jwk.d, "d")?;
        if jwk.p.is_none() || jwk.q.is_none() {
            return Err(bad("an RSA JWK needs p and q as well as d"));
        }
        if jwk.dp.is_none() || jwk.dq.is_none() || jwk.qi.is_none() {
            return Err(bad("an RSA JWK needs the CRT parameters dp, dq and qi"));
        }
        let p = private_member(&jwk.p, "p")?;
        let q = private_member(&jwk.q, "q")?;
        let dp = private_member(&jwk.dp, "dp")?;
        let dq = private_member(&jwk.dq, "dq")?;
        let qi = private_member(&jwk.qi, "qi")?;

        let bits = bit_len(&n);
        if !matches!(bits, 2048 | 3072 | 4096) {
            return Err(CryptoError::Unsupported(format!(
                "RSA key size {bits} is not supported; use 2048, 3072 or 4096"
            )));
        }
        if e.is_empty() {
            return Err(bad("the JWK's e is zero"));
        }
        let components = KeyPairComponents {
            public_key: PublicKeyComponents {
                n: n.as_slice(),
                e: e.as_slice(),
            },
            d: d.as_slice(),
            p: p.as_slice(),
            q: q.as_slice(),
            dP: dp.as_slice(),
            dQ: dq.as_slice(),
            qInv: qi.as_slice(),
        };
        let pair = RsaKeyPair::from_components(&components)
            .map_err(|_| bad("the JWK's RSA components do not form a consistent key"))?;
        let der = pair.as_der()?;
        Self::from_der(KeyKind::Rsa, der.as_ref())
    }

    fn ec_from_jwk(curve: Curve, jwk: &Jwk) -> Result<Self, CryptoError> {
        let len = curve.coordinate_len();
        let x = public_member(&jwk.x, "x")?;
        let y = public_member(&jwk.y, "y")?;
        let d = private_member(&jwk.d, "d")?;
        if x.len() > len || y.len() > len || d.len() > len {
            return Err(bad(format!(
                "x, y and d must be at most {len} bytes on {}",
                curve.name()
            )));
        }
        // Uncompressed SEC 1 point: 04 || x || y, each left-padded to the field
        // size (some encoders drop leading zeros despite RFC 7518).
        let mut point = vec![0u8; 1 + 2 * len];
        point[0] = 0x04;
        point[1 + len - x.len()..=len].copy_from_slice(&x);
        point[1 + 2 * len - y.len()..].copy_from_slice(&y);
        let mut scalar = Zeroizing::new(vec![0u8; len]);
        scalar[len - d.len()..].copy_from_slice(&d);
        // aws-lc-rs derives the public point from d and refuses a mismatch.
        let pair = EcdsaKeyPair::from_private_key_and_public_key(curve.signing(), &scalar, &point)
            .map_err(|_| {
                bad(format!(
                    "the JWK's x and y are not the {} public key of its d",
                    curve.name()
                ))
            })?;
        let pkcs8 = pair.to_pkcs8v1()?;
        Self::from_der(KeyKind::Ec(curve), pkcs8.as_ref())
    }

    /// The private key as PKCS#8 DER, for sealed storage.
    pub fn to_der(&self) -> &[u8] {
        &self.der
    }

    /// Parses what [`KeyMaterial::to_der`] produced, for a key of `kind`.
    pub fn from_der(kind: KeyKind, der: &[u8]) -> Result<Self, CryptoError> {
        let inner = match kind {
            KeyKind::Rsa => Inner::Rsa {
                signing: RsaKeyPair::from_pkcs8(der)
                    .map_err(|_| CryptoError::InvalidKey("not a PKCS#8 RSA private key"))?,
                decrypting: PrivateDecryptingKey::from_pkcs8(der)
                    .map_err(|_| CryptoError::InvalidKey("not a PKCS#8 RSA private key"))?,
            },
            KeyKind::Ec(curve) => Inner::Ec {
                curve,
                signing: EcdsaKeyPair::from_pkcs8(curve.signing(), der).map_err(|_| {
                    CryptoError::InvalidKey("not a PKCS#8 EC private key on the expected curve")
                })?,
            },
        };
        Ok(KeyMaterial {
            der: Zeroizing::new(der.to_vec()),
            inner,
        })
    }

    /// Imports an unencrypted PKCS#8 private key whose kind is not known in
    /// advance (from a PEM or PFX file): RSA of 2048, 3072 or 4096 bits, or
    /// EC on P-256, P-384, P-521 or P-256K. The key is stored re-encoded as
    /// the PKCS#8 v1 that aws-lc-rs emits.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, CryptoError> {
        if let Ok(pair) = RsaKeyPair::from_pkcs8(der) {
            let key = Self::from_der(KeyKind::Rsa, pair.as_der()?.as_ref())?;
            return match key.key_size() {
                Some(2048 | 3072 | 4096) => Ok(key),
                bits => Err(CryptoError::Unsupported(format!(
                    "RSA key size {} is not supported; use 2048, 3072 or 4096",
                    bits.unwrap_or(0)
                ))),
            };
        }
        for curve in [Curve::P256, Curve::P384, Curve::P521, Curve::P256K] {
            if let Ok(pair) = EcdsaKeyPair::from_pkcs8(curve.signing(), der) {
                return Self::from_der(KeyKind::Ec(curve), pair.to_pkcs8v1()?.as_ref());
            }
        }
        Err(bad(
            "the private key is not an unencrypted PKCS#8 RSA (2048, 3072 or 4096 bits) \
             or EC (P-256, P-384, P-521, P-256K) key",
        ))
    }

    /// The public key as a DER X.509 SubjectPublicKeyInfo.
    pub fn public_key_spki_der(&self) -> Result<Vec<u8>, CryptoError> {
        let der = match &self.inner {
            Inner::Rsa { signing, .. } => signing.public_key().as_der()?.as_ref().to_vec(),
            Inner::Ec { signing, .. } => signing.public_key().as_der()?.as_ref().to_vec(),
        };
        Ok(der)
    }

    pub fn kind(&self) -> KeyKind {
        match &self.inner {
            Inner::Rsa { .. } => KeyKind::Rsa,
            Inner::Ec { curve, .. } => KeyKind::Ec(*curve),
        }
    }

    /// The RSA modulus length in bits; `None` for EC keys.
    pub fn key_size(&self) -> Option<u32> {
        match &self.inner {
            Inner::Rsa { signing, .. } => Some(bit_len(
                signing
                    .public_key()
                    .modulus()
                    .big_endian_without_leading_zero(),
            )),
            Inner::Ec { .. } => None,
        }
    }

    /// The public key as a JWK: `kty`, `n`, `e` or `kty`, `crv`, `x`, `y`.
    /// `kid` and `key_ops` are the caller's to fill in.
    pub fn public_jwk(&self) -> Jwk {
        match &self.inner {
            Inner::Rsa { signing, .. } => {
                let public = signing.public_key();
                Jwk {
                    kty: Some("RSA".into()),
                    n: Some(B64.encode(public.modulus().big_endian_without_leading_zero())),
                    e: Some(B64.encode(public.exponent().big_endian_without_leading_zero())),
                    ..Jwk::default()
                }
            }
            Inner::Ec { curve, signing } => {
                // aws-lc-rs gives the uncompressed point 04 || x || y with
                // fixed-width coordinates, which is what JWK wants.
                let point = signing.public_key().as_ref();
                let len = curve.coordinate_len();
                Jwk {
                    kty: Some("EC".into()),
                    crv: Some(curve.name().into()),
                    x: Some(B64.encode(&point[1..=len])),
                    y: Some(B64.encode(&point[1 + len..])),
                    ..Jwk::default()
                }
            }
        }
    }

    /// Signs a digest the caller computed with `alg`'s hash.
    pub fn sign(&self, alg: &str, digest: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let (algorithm, digest) = self.signature_input(alg, digest)?;
        match (&algorithm.scheme, &self.inner) {
            (SignatureScheme::Rsa { signing: enc, .. }, Inner::Rsa { signing, .. }) => {
                let mut signature = vec![0u8; signing.public_modulus_len()];
                signing.sign_digest(*enc, &digest, &mut signature)?;
                Ok(signature)
            }
            (SignatureScheme::Ecdsa(_), Inner::Ec { signing, .. }) => {
                Ok(signing.sign_digest(&digest)?.as_ref().to_vec())
            }
            _ => unreachable!("signature_input checked the key type"),
        }
    }

    /// Checks a signature over a digest. A signature that does not verify,
    /// malformed ones included, is `Ok(false)`; an unknown algorithm, one that
    /// does not fit the key, or a digest of the wrong length is an error.
    pub fn verify(&self, alg: &str, digest: &[u8], signature: &[u8]) -> Result<bool, CryptoError> {
        let (algorithm, digest) = self.signature_input(alg, digest)?;
        let valid = match (&algorithm.scheme, &self.inner) {
            (SignatureScheme::Rsa { verification, .. }, Inner::Rsa { signing, .. }) => {
                UnparsedPublicKey::new(*verification, signing.public_key().as_ref())
                    .verify_digest(&digest, signature)
            }
            (SignatureScheme::Ecdsa(curve), Inner::Ec { signing, .. }) => {
                UnparsedPublicKey::new(curve.verification(), signing.public_key().as_ref())
                    .verify_digest(&digest, signature)
            }
            _ => unreachable!("signature_input checked the key type"),
        };
        Ok(valid.is_ok())
    }

    /// Resolves `alg` against this key and wraps the digest for aws-lc-rs.
    fn signature_input(
        &self,
        alg: &str,
        digest: &[u8],
    ) -> Result<(&'static SignatureAlgorithm, Digest), CryptoError> {
        let algorithm = SIGNATURE_ALGORITHMS
            .iter()
            .find(|a| a.name == alg)
            .ok_or_else(|| {
                CryptoError::Unsupported(format!(
                    "signature algorithm {} is not supported",
                    shown(alg)
                ))
            })?;
        match (&algorithm.scheme, self.kind()) {
            (SignatureScheme::Rsa { .. }, KeyKind::Rsa) => {}
            (SignatureScheme::Ecdsa(wanted), KeyKind::Ec(curve)) if *wanted == curve => {}
            (SignatureScheme::Ecdsa(wanted), KeyKind::Ec(curve)) => {
                return Err(bad(format!(
                    "{} needs a {} key, not {}",
                    algorithm.name,
                    wanted.name(),
                    curve.name()
                )));
            }
            (SignatureScheme::Rsa { .. }, KeyKind::Ec(_)) => {
                return Err(bad(format!("{} needs an RSA key", algorithm.name)));
            }
            (SignatureScheme::Ecdsa(wanted), KeyKind::Rsa) => {
                return Err(bad(format!(
                    "{} needs an EC {} key",
                    algorithm.name,
                    wanted.name()
                )));
            }
        }
        let want = algorithm.hash.output_len();
        if digest.len() != want {
            return Err(bad(format!(
                "{} needs a {want}-byte digest, got {} bytes",
                algorithm.name,
                digest.len()
            )));
        }
        let digest = Digest::import_less_safe(digest, algorithm.hash)?;
        Ok((algorithm, digest))
    }

    /// Encrypts with the public half of an RSA key.
    pub fn encrypt(&self, alg: &str, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let decrypting = self.rsa_decrypting()?;
        let algorithm = encryption_algorithm(alg)?;
        let public = decrypting.public_key();
        let too_long = |max: usize| {
            bad(format!(
                "{alg} can encrypt at most {max} bytes with this key, got {}",
                plaintext.len()
            ))
        };
        match algorithm {
            EncryptionAlgorithm::Oaep(oaep) => {
                let key = OaepPublicEncryptingKey::new(public)?;
                let max = key.max_plaintext_size(oaep);
                if plaintext.len() > max {
                    return Err(too_long(max));
                }
                let mut out = vec![0u8; key.ciphertext_size()];
                let len = key.encrypt(oaep, plaintext, &mut out, None)?.len();
                out.truncate(len);
                Ok(out)
            }
            EncryptionAlgorithm::Pkcs1 => {
                let key = Pkcs1PublicEncryptingKey::new(public)?;
                let max = key.max_plaintext_size();
                if plaintext.len() > max {
                    return Err(too_long(max));
                }
                let mut out = vec![0u8; key.ciphertext_size()];
                let len = key.encrypt(plaintext, &mut out)?.len();
                out.truncate(len);
                Ok(out)
            }
        }
    }

    /// Decrypts with an RSA key. Every failure past the length check is the
    /// same `CryptoError::Failed`, so RSA1_5 gives no padding oracle through
    /// its error.
    pub fn decrypt(&self, alg: &str, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let decrypting = self.rsa_decrypting()?;
        let algorithm = encryption_algorithm(alg)?;
        let size = decrypting.key_size_bytes();
        if ciphertext.len() != size {
            return Err(bad(format!(
                "the ciphertext must be {size} bytes for this key, got {}",
                ciphertext.len()
            )));
        }
        let mut out = Zeroizing::new(vec![0u8; size]);
        let len = match algorithm {
            EncryptionAlgorithm::Oaep(oaep) => OaepPrivateDecryptingKey::new(decrypting.clone())?
                .decrypt(oaep, ciphertext, &mut out, None)
                .map_err(|_| CryptoError::Failed)?
                .len(),
            EncryptionAlgorithm::Pkcs1 => Pkcs1PrivateDecryptingKey::new(decrypting.clone())?
                .decrypt(ciphertext, &mut out)
                .map_err(|_| CryptoError::Failed)?
                .len(),
        };
        out.truncate(len);
        Ok(out)
    }

    fn rsa_decrypting(&self) -> Result<&PrivateDecryptingKey, CryptoError> {
        match &self.inner {
            Inner::Rsa { decrypting, .. } => Ok(decrypting),
            Inner::Ec { .. } => Err(CryptoError::Unsupported(
                "operation not supported for EC keys".into(),
            )),
        }
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("kind", &self.kind())
            .field("key_size", &self.key_size())
            .finish_non_exhaustive()
    }
}

fn bad(message: impl Into<String>) -> CryptoError {
    CryptoError::BadInput(message.into())
}

/// Bits in a big-endian unsigned integer.
fn bit_len(be: &[u8]) -> u32 {
    let be = strip_leading_zeros(be);
    match be.first() {
        Some(first) => (be.len() as u32 - 1) * 8 + (8 - first.leading_zeros()),
        None => 0,
    }
}

fn strip_leading_zeros(be: &[u8]) -> &[u8] {
    let start = be.iter().position(|b| *b != 0).unwrap_or(be.len());
    &be[start..]
}

fn decode(value: &str) -> Result<Vec<u8>, base64::DecodeError> {
    // RFC 7518 says no padding; accept it anyway, as Key Vault's clients vary.
    B64.decode(value.trim_end_matches('='))
}

/// A public JWK member, without leading zeros (as aws-lc-rs wants n and e).
fn public_member(value: &Option<String>, name: &str) -> Result<Vec<u8>, CryptoError> {
    let value = value
        .as_deref()
        .ok_or_else(|| bad(format!("the JWK has no {name}")))?;
    let bytes = decode(value).map_err(|_| bad(format!("the JWK's {name} is not base64url")))?;
    Ok(strip_leading_zeros(&bytes).to_vec())
}

/// A private JWK member, decoded straight into a zeroizing buffer.
fn private_member(value: &Option<String>, name: &str) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let value = value
        .as_deref()
        .ok_or_else(|| bad(format!("the JWK has no {name}")))?;
    let bytes = Zeroizing::new(
        decode(value).map_err(|_| bad(format!("the JWK's {name} is not base64url")))?,
    );
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    Ok(Zeroizing::new(bytes[start..].to_vec()))
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use aws_lc_rs::encoding::{AsBigEndian, EcPrivateKeyBin};

    use super::*;

    const RSA_SIGNATURES: [&str; 6] = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];
    const ENCRYPTIONS: [&str; 3] = ["RSA-OAEP", "RSA-OAEP-256", "RSA1_5"];
    const CURVES: [(Curve, &str); 4] = [
        (Curve::P256, "ES256"),
        (Curve::P384, "ES384"),
        (Curve::P521, "ES512"),
        (Curve::P256K, "ES256K"),
    ];

    /// One RSA-2048 key for the tests that only need "an RSA key".
    fn rsa() -> &'static KeyMaterial {
        static KEY: OnceLock<KeyMaterial> = OnceLock::new();
        KEY.get_or_init(|| KeyMaterial::generate_rsa(2048, None).unwrap())
    }

    fn digest_for(alg: &str, message: &[u8]) -> Vec<u8> {
        let hash = match &alg[2..] {
            "256" | "256K" => &digest::SHA256,
            "384" => &digest::SHA384,
            "512" => &digest::SHA512,
            _ => panic!("no hash for {alg}"),
        };
        digest::digest(hash, message).as_ref().to_vec()
    }

    fn b64(value: &Option<String>) -> Vec<u8> {
        B64.decode(value.as_deref().unwrap()).unwrap()
    }

    /// Verifies with nothing but the public JWK, as a relying party would.
    fn verify_with_public_jwk(jwk: &Jwk, alg: &str, digest: &[u8], signature: &[u8]) -> bool {
        let algorithm = SIGNATURE_ALGORITHMS.iter().find(|a| a.name == alg).unwrap();
        let digest = Digest::import_less_safe(digest, algorithm.hash).unwrap();
        match &algorithm.scheme {
            SignatureScheme::Rsa { verification, .. } => {
                let spki = PublicKeyComponents {
                    n: b64(&jwk.n),
                    e: b64(&jwk.e),
                }
                .as_der()
                .unwrap();
                UnparsedPublicKey::new(*verification, spki.as_ref())
                    .verify_digest(&digest, signature)
                    .is_ok()
            }
            SignatureScheme::Ecdsa(curve) => {
                assert_eq!(jwk.crv.as_deref(), Some(curve.name()));
                let mut point = vec![0x04];
                point.extend(b64(&jwk.x));
                point.extend(b64(&jwk.y));
                UnparsedPublicKey::new(curve.verification(), point)
                    .verify_digest(&digest, signature)
                    .is_ok()
            }
        }
    }

    fn assert_sign_verify(key: &KeyMaterial, alg: &str) {
        let digest = digest_for(alg, b"keyfort");
        let signature = key.sign(alg, &digest).unwrap();
        assert!(key.verify(alg, &digest, &signature).unwrap(), "{alg}");
        assert!(
            verify_with_public_jwk(&key.public_jwk(), alg, &digest, &signature),
            "{alg} via the public JWK"
        );

        let mut tampered = signature.clone();
        tampered[signature.len() / 2] ^= 1;
        assert!(!key.verify(alg, &digest, &tampered).unwrap(), "{alg}");
        let other = digest_for(alg, b"keyfort!");
        assert!(!key.verify(alg, &other, &signature).unwrap(), "{alg}");
        // Malformed signatures of a valid algorithm are a plain "no".
        assert!(!key.verify(alg, &digest, &signature[1..]).unwrap(), "{alg}");
        assert!(!key.verify(alg, &digest, &[]).unwrap(), "{alg}");
        let mut long = signature.clone();
        long.push(0);
        assert!(!key.verify(alg, &digest, &long).unwrap(), "{alg}");
    }

    #[test]
    fn rsa_signatures_round_trip() {
        let key = rsa();
        assert_eq!(key.kind(), KeyKind::Rsa);
        assert_eq!(key.key_size(), Some(2048));
        for alg in RSA_SIGNATURES {
            assert_sign_verify(key, alg);
            assert_eq!(key.sign(alg, &digest_for(alg, b"x")).unwrap().len(), 256);
        }
        // PKCS#1 v1.5 is deterministic; PSS is salted.
        let digest = digest_for("RS256", b"x");
        assert_eq!(
            key.sign("RS256", &digest).unwrap(),
            key.sign("RS256", &digest).unwrap()
        );
        assert_ne!(
            key.sign("PS256", &digest).unwrap(),
            key.sign("PS256", &digest).unwrap()
        );
    }

    #[test]
    fn ec_signatures_round_trip_on_every_curve() {
        for (curve, alg) in CURVES {
            let key = KeyMaterial::generate_ec(curve).unwrap();
            assert_eq!(key.kind(), KeyKind::Ec(curve));
            assert_eq!(key.key_size(), None);
            assert_sign_verify(&key, alg);
            // JOSE fixed r || s, not DER.
            let signature = key.sign(alg, &digest_for(alg, b"x")).unwrap();
            assert_eq!(signature.len(), 2 * curve.coordinate_len(), "{alg}");
        }
    }

    #[test]
    fn algorithm_must_fit_the_key_and_digest() {
        let p256 = KeyMaterial::generate_ec(Curve::P256).unwrap();
        let d32 = [7u8; 32];
        let d48 = [7u8; 48];

        // Wrong digest length, for signing and verifying.
        for (key, alg) in [(rsa(), "RS256"), (rsa(), "PS512"), (&p256, "ES256")] {
            let err = key.sign(alg, &[1u8; 20]).unwrap_err();
            assert!(matches!(err, CryptoError::BadInput(_)), "{alg}: {err}");
            assert!(err.to_string().contains("digest"), "{err}");
            assert!(key.verify(alg, &[1u8; 31], &[0u8; 64]).is_err());
        }
        assert!(rsa().sign("RS384", &d32).is_err());

        // Curve and key type must match the algorithm.
        let err = p256.sign("ES384", &d48).unwrap_err();
        assert!(err.to_string().contains("P-384"), "{err}");
        assert!(p256.verify("ES384", &d48, &[0u8; 96]).is_err());
        assert!(p256.sign("ES256K", &d32).is_err());
        assert!(p256.sign("RS256", &d32).is_err());
        assert!(p256.sign("PS256", &d32).is_err());
        assert!(rsa().sign("ES256", &d32).is_err());
        assert!(rsa().verify("ES256", &d32, &[0u8; 64]).is_err());

        // Unknown names.
        for alg in ["HS256", "rs256", "RSNULL", "EdDSA", ""] {
            assert!(matches!(
                rsa().sign(alg, &d32),
                Err(CryptoError::Unsupported(_))
            ));
            assert!(rsa().verify(alg, &d32, &[]).is_err());
        }
    }

    #[test]
    fn rsa_encryption_round_trips() {
        let key = rsa();
        for alg in ENCRYPTIONS {
            let ciphertext = key.encrypt(alg, b"hunter2").unwrap();
            assert_eq!(ciphertext.len(), 256, "{alg}");
            assert_eq!(
                &**key.decrypt(alg, &ciphertext).unwrap(),
                b"hunter2",
                "{alg}"
            );
            // Randomised padding.
            assert_ne!(ciphertext, key.encrypt(alg, b"hunter2").unwrap(), "{alg}");
            // Empty plaintexts are legal.
            let empty = key.encrypt(alg, b"").unwrap();
            assert!(key.decrypt(alg, &empty).unwrap().is_empty(), "{alg}");

            let mut tampered = ciphertext.clone();
            tampered[10] ^= 1;
            match key.decrypt(alg, &tampered) {
                Err(err) => assert!(matches!(err, CryptoError::Failed), "{alg}: {err}"),
                // A garbled PKCS#1 v1.5 block is well-formed by chance about
                // once in 2^16 tries; it still must not give the message back.
                Ok(plaintext) => assert!(alg == "RSA1_5" && *plaintext != b"hunter2"),
            }
            assert!(key.decrypt(alg, &ciphertext[1..]).is_err(), "{alg}");
        }
        // Ciphertext of one algorithm does not open under another.
        let oaep = key.encrypt("RSA-OAEP-256", b"hunter2").unwrap();
        assert!(key.decrypt("RSA-OAEP", &oaep).is_err());

        // Size limits: k - 2h - 2 for OAEP, k - 11 for PKCS#1 v1.5.
        for (alg, max) in [("RSA-OAEP", 214), ("RSA-OAEP-256", 190), ("RSA1_5", 245)] {
            let plaintext = vec![0x5a; max];
            let ciphertext = key.encrypt(alg, &plaintext).unwrap();
            assert_eq!(*key.decrypt(alg, &ciphertext).unwrap(), plaintext);
            let err = key.encrypt(alg, &vec![0x5a; max + 1]).unwrap_err();
            assert!(matches!(err, CryptoError::BadInput(_)), "{alg}: {err}");
        }
        assert!(matches!(
            key.encrypt("A256GCM", b"x"),
            Err(CryptoError::Unsupported(_))
        ));
        assert!(key.decrypt("RSA-OAEP-512", &oaep).is_err());
    }

    #[test]
    fn ec_keys_refuse_encryption() {
        let key = KeyMaterial::generate_ec(Curve::P256).unwrap();
        for alg in ENCRYPTIONS {
            let err = key.encrypt(alg, b"x").unwrap_err();
            assert!(matches!(err, CryptoError::Unsupported(_)));
            assert!(
                err.to_string().contains("not supported for EC keys"),
                "{err}"
            );
            let err = key.decrypt(alg, &[0u8; 64]).unwrap_err();
            assert!(
                err.to_string().contains("not supported for EC keys"),
                "{err}"
            );
        }
    }

    #[test]
    fn der_round_trip() {
        let keys: Vec<KeyMaterial> = std::iter::once(rsa().clone())
            .chain(
                CURVES
                    .iter()
                    .map(|(c, _)| KeyMaterial::generate_ec(*c).unwrap()),
            )
            .collect();
        for key in &keys {
            let back = KeyMaterial::from_der(key.kind(), key.to_der()).unwrap();
            assert_eq!(back.kind(), key.kind());
            assert_eq!(back.key_size(), key.key_size());
            assert_eq!(back.to_der(), key.to_der());
            let (a, b) = (key.public_jwk(), back.public_jwk());
            assert_eq!((&a.n, &a.e, &a.x, &a.y), (&b.n, &b.e, &b.x, &b.y));
            let alg = match key.kind() {
                KeyKind::Rsa => "PS384",
                KeyKind::Ec(curve) => CURVES.iter().find(|(c, _)| *c == curve).unwrap().1,
            };
            let digest = digest_for(alg, b"stored");
            let signature = back.sign(alg, &digest).unwrap();
            assert!(key.verify(alg, &digest, &signature).unwrap());
        }
        let rsa_der = rsa().to_der();
        let ec = &keys[1];
        assert!(KeyMaterial::from_der(KeyKind::Ec(Curve::P256), rsa_der).is_err());
        assert!(KeyMaterial::from_der(KeyKind::Rsa, ec.to_der()).is_err());
        assert!(KeyMaterial::from_der(KeyKind::Ec(Curve::P384), ec.to_der()).is_err());
        assert!(KeyMaterial::from_der(KeyKind::Ec(Curve::P256K), ec.to_der()).is_err());
        assert!(KeyMaterial::from_der(KeyKind::Rsa, &rsa_der[..rsa_der.len() - 1]).is_err());
        assert!(KeyMaterial::from_der(KeyKind::Rsa, b"").is_err());
    }

    #[test]
    fn public_jwk_has_only_public_members() {
        let rsa_jwk = rsa().public_jwk();
        assert_eq!(rsa_jwk.kty.as_deref(), Some("RSA"));
        assert_eq!(rsa_jwk.e.as_deref(), Some("AQAB"), "exponent is 65537");
        let n = b64(&rsa_jwk.n);
        assert_eq!(n.len(), 256, "no leading zero byte");
        assert!(n[0] & 0x80 != 0);
        assert!(!rsa_jwk.has_private());
        let json = serde_json::to_value(&rsa_jwk).unwrap();
        let mut members: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        members.sort();
        assert_eq!(members, ["e", "kty", "n"]);

        for (curve, _) in CURVES {
            let jwk = KeyMaterial::generate_ec(curve).unwrap().public_jwk();
            assert_eq!(jwk.kty.as_deref(), Some("EC"));
            assert_eq!(jwk.crv.as_deref(), Some(curve.name()));
            assert_eq!(b64(&jwk.x).len(), curve.coordinate_len());
            assert_eq!(b64(&jwk.y).len(), curve.coordinate_len());
            assert!(!jwk.has_private());
            let json = serde_json::to_value(&jwk).unwrap();
            let mut members: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
            members.sort();
            assert_eq!(members, ["crv", "kty", "x", "y"]);
            assert!(!jwk.x.unwrap().contains('='), "no padding");
        }
    }

    // RFC 7515 Appendix A.2.1: the RSA key, and the RS256 signature it must
    // produce over the appendix's signing input (PKCS#1 v1.5 is deterministic).
    const A2_N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
    const A2_D: &str = "Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97IjlA7_GQ5sLKMgvfTeXZx9SE-7YwVol2NXOoAJe46sui395IW_GO-pWJ1O0BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzjkn439X0M_V51gfpRLI9JYanrC4D4qAdGcopV_0ZHHzQlBjudU2QvXt4ehNYTCBr6XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jTj3ccPDVZFD9pIuhLhBOneufuBiB4cS98l2SR_RQyGWSeWjnczT0QU91p1DhOVRuOopznQ";
    const A2_P: &str = "4BzEEOtIpmVdVEZNCqS7baC4crd0pqnRH_5IB3jw3bcxGn6QLvnEtfdUdiYrqBdss1l58BQ3KhooKeQTa9AB0Hw_Py5PJdTJNPY8cQn7ouZ2KKDcmnPGBY5t7yLc1QlQ5xHdwW1VhvKn-nXqhJTBgIPgtldC-KDV5z-y2XDwGUc";
    const A2_Q: &str = "uQPEfgmVtjL0Uyyx88GZFF1fOunH3-7cepKmtH4pxhtCoHqpWmT8YAmZxaewHgHAjLYsp1ZSe7zFYHj7C6ul7TjeLQeZD_YwD66t62wDmpe_HlB-TnBA-njbglfIsRLtXlnDzQkv5dTltRJ11BKBBypeeF6689rjcJIDEz9RWdc";
    const A2_DP: &str = "BwKfV3Akq5_MFZDFZCnW-wzl-CCo83WoZvnLQwCTeDv8uzluRSnm71I3QCLdhrqE2e9YkxvuxdBfpT_PI7Yz-FOKnu1R6HsJeDCjn12Sk3vmAktV2zb34MCdy7cpdTh_YVr7tss2u6vneTwrA86rZtu5Mbr1C1XsmvkxHQAdYo0";
    const A2_DQ: &str = "h_96-mK1R_7glhsum81dZxjTnYynPbZpHziZjeeHcXYsXaaMwkOlODsWa7I9xXDoRwbKgB719rrmI2oKr6N3Do9U0ajaHF-NKJnwgjMd2w9cjz3_-kyNlxAr2v4IKhGNpmM5iIgOS1VZnOZ68m6_pbLBSp3nssTdlqvd0tIiTHU";
    const A2_QI: &str = "IYd7DHOhrWvxkwPQsRM2tOgrjbcrfvtQJipd-DlcxyVuuM9sQLdgjVk2oy26F0EmpScGLq2MowX7fhd_QJQ3ydy5cY7YIBi87w93IKLEdfnbJtoOPLUW0ITrJReOgo1cq9SbsxYawBgfp_gh6A5603k2-ZQwVK0JKSHuLFkuQ3U";
    const A2_SIGNING_INPUT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
    const A2_SIGNATURE: &str = "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";

    // RFC 7515 Appendix A.3: the P-256 key and its ES256 signature.
    const A3_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const A3_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
    const A3_D: &str = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI";
    const A3_SIGNING_INPUT: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
    const A3_SIGNATURE: &str =
        "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

    fn rfc7515_rsa_jwk() -> Jwk {
        Jwk {
            kty: Some("RSA".into()),
            n: Some(A2_N.into()),
            e: Some("AQAB".into()),
            d: Some(A2_D.into()),
            p: Some(A2_P.into()),
            q: Some(A2_Q.into()),
            dp: Some(A2_DP.into()),
            dq: Some(A2_DQ.into()),
            qi: Some(A2_QI.into()),
            ..Jwk::default()
        }
    }

    fn rfc7515_ec_jwk() -> Jwk {
        Jwk {
            kty: Some("EC".into()),
            crv: Some("P-256".into()),
            x: Some(A3_X.into()),
            y: Some(A3_Y.into()),
            d: Some(A3_D.into()),
            ..Jwk::default()
        }
    }

    #[test]
    fn imports_the_rfc7515_rsa_key() {
        let key = KeyMaterial::from_jwk(&rfc7515_rsa_jwk()).unwrap();
        assert_eq!(key.kind(), KeyKind::Rsa);
        assert_eq!(key.key_size(), Some(2048));
        let public = key.public_jwk();
        assert_eq!(public.n.as_deref(), Some(A2_N));
        assert_eq!(public.e.as_deref(), Some("AQAB"));

        let digest = digest_for("RS256", A2_SIGNING_INPUT.as_bytes());
        let signature = key.sign("RS256", &digest).unwrap();
        assert_eq!(B64.encode(&signature), A2_SIGNATURE);
        assert!(key.verify("RS256", &digest, &signature).unwrap());
        assert!(verify_with_public_jwk(
            &public, "RS256", &digest, &signature
        ));
        for alg in RSA_SIGNATURES {
            assert_sign_verify(&key, alg);
        }
        let ciphertext = key.encrypt("RSA-OAEP-256", b"imported").unwrap();
        assert_eq!(
            &**key.decrypt("RSA-OAEP-256", &ciphertext).unwrap(),
            b"imported"
        );
        // The import survives storage.
        let back = KeyMaterial::from_der(KeyKind::Rsa, key.to_der()).unwrap();
        assert_eq!(back.sign("RS256", &digest).unwrap(), signature);
    }

    #[test]
    fn imports_the_rfc7515_ec_key() {
        let key = KeyMaterial::from_jwk(&rfc7515_ec_jwk()).unwrap();
        assert_eq!(key.kind(), KeyKind::Ec(Curve::P256));
        let public = key.public_jwk();
        assert_eq!(public.x.as_deref(), Some(A3_X));
        assert_eq!(public.y.as_deref(), Some(A3_Y));

        let digest = digest_for("ES256", A3_SIGNING_INPUT.as_bytes());
        let rfc_signature = B64.decode(A3_SIGNATURE).unwrap();
        assert!(key.verify("ES256", &digest, &rfc_signature).unwrap());
        let signature = key.sign("ES256", &digest).unwrap();
        assert!(verify_with_public_jwk(
            &public, "ES256", &digest, &signature
        ));
        assert_sign_verify(&key, "ES256");
    }

    #[test]
    fn imports_a_generated_rsa_key_by_hand() {
        let original = rsa();
        let jwk = private_rsa_jwk(original);
        let imported = KeyMaterial::from_jwk(&jwk).unwrap();
        assert_eq!(imported.public_jwk().n, original.public_jwk().n);
        assert_eq!(imported.public_jwk().e, original.public_jwk().e);
        let digest = digest_for("RS512", b"m");
        assert_eq!(
            imported.sign("RS512", &digest).unwrap(),
            original.sign("RS512", &digest).unwrap()
        );
        let ciphertext = original.encrypt("RSA1_5", b"both ways").unwrap();
        assert_eq!(
            &**imported.decrypt("RSA1_5", &ciphertext).unwrap(),
            b"both ways"
        );

        // Padded base64 and a leading zero on a private member are tolerated.
        let mut lenient = jwk.clone();
        let mut d = vec![0u8];
        d.extend(b64(&jwk.d));
        lenient.d = Some(base64::engine::general_purpose::URL_SAFE.encode(&d));
        assert!(KeyMaterial::from_jwk(&lenient).is_ok());
    }

    #[test]
    fn imports_generated_ec_keys_by_hand() {
        for (curve, alg) in CURVES {
            let original = KeyMaterial::generate_ec(curve).unwrap();
            let pair = EcdsaKeyPair::from_pkcs8(curve.signing(), original.to_der()).unwrap();
            let scalar: EcPrivateKeyBin = pair.private_key().as_be_bytes().unwrap();
            let mut jwk = original.public_jwk();
            jwk.d = Some(B64.encode(scalar.as_ref()));
            let imported = KeyMaterial::from_jwk(&jwk).unwrap();
            assert_eq!(imported.kind(), KeyKind::Ec(curve));
            assert_eq!(imported.public_jwk().x, jwk.x);
            assert_eq!(imported.public_jwk().y, jwk.y);
            let digest = digest_for(alg, b"m");
            let signature = imported.sign(alg, &digest).unwrap();
            assert!(original.verify(alg, &digest, &signature).unwrap(), "{alg}");
        }
    }

    #[test]
    fn import_refusals() {
        let err = |jwk: &Jwk| KeyMaterial::from_jwk(jwk).unwrap_err().to_string();

        // Public-only keys.
        assert!(err(&rsa().public_jwk()).contains("public-only"));
        let ec_public = KeyMaterial::generate_ec(Curve::P384).unwrap().public_jwk();
        assert!(err(&ec_public).contains("public-only"));

        // x, y that are not d's public point.
        let mut mismatched = rfc7515_ec_jwk();
        let other = KeyMaterial::generate_ec(Curve::P256).unwrap().public_jwk();
        mismatched.y = other.y.clone();
        assert!(err(&mismatched).contains("public key"));
        mismatched.x = other.x;
        assert!(KeyMaterial::from_jwk(&mismatched).is_err());
        let mut wrong_curve = rfc7515_ec_jwk();
        wrong_curve.crv = Some("P-256K".into());
        assert!(KeyMaterial::from_jwk(&wrong_curve).is_err());
        let mut unknown_curve = rfc7515_ec_jwk();
        unknown_curve.crv = Some("X25519".into());
        assert!(err(&unknown_curve).contains("not supported"));
        let mut no_y = rfc7515_ec_jwk();
        no_y.y = None;
        assert!(err(&no_y).contains("no y"));

        // RSA: CRT parameters are needed, and must agree.
        let mut no_crt = rfc7515_rsa_jwk();
        no_crt.qi = None;
        assert!(err(&no_crt).contains("dp, dq and qi"));
        let mut no_p = rfc7515_rsa_jwk();
        no_p.p = None;
        assert!(err(&no_p).contains("p and q"));
        let mut swapped = rfc7515_rsa_jwk();
        swapped.dp = rfc7515_rsa_jwk().dq;
        assert!(err(&swapped).contains("consistent"));
        let mut other_modulus = private_rsa_jwk(rsa());
        other_modulus.n = Some(A2_N.into());
        assert!(KeyMaterial::from_jwk(&other_modulus).is_err());
        let mut garbled = rfc7515_rsa_jwk();
        garbled.d = Some("not base64!".into());
        assert!(err(&garbled).contains("base64url"));

        // Kinds this module does not import.
        for kty in [None, Some("oct"), Some("OKP")] {
            let mut jwk = rfc7515_rsa_jwk();
            jwk.kty = kty.map(Into::into);
            assert!(KeyMaterial::from_jwk(&jwk).is_err());
        }
        let mut byok = rfc7515_rsa_jwk();
        byok.key_hsm = Some("AAAA".into());
        assert!(err(&byok).contains("key_hsm"));

        // No error message carries key material.
        for message in [err(&swapped), err(&mismatched), err(&garbled)] {
            for secret in [A2_D, A2_P, A2_DP, A2_DQ, A3_D] {
                assert!(!message.contains(&secret[..12]), "{message}");
            }
        }
    }

    #[test]
    fn generation_limits() {
        for bits in [0, 1024, 2047, 8192] {
            let err = KeyMaterial::generate_rsa(bits, None).unwrap_err();
            assert!(matches!(err, CryptoError::Unsupported(_)));
            assert!(err.to_string().contains(&bits.to_string()), "{err}");
        }
        for e in [3, 17, 65_539] {
            let err = KeyMaterial::generate_rsa(2048, Some(e)).unwrap_err();
            assert!(err.to_string().contains("65537"), "{err}");
        }
        let key = KeyMaterial::generate_rsa(2048, Some(65_537)).unwrap();
        assert_eq!(key.public_jwk().e.as_deref(), Some("AQAB"));
    }

    #[test]
    fn larger_rsa_keys() {
        // The only 3072- and 4096-bit generations in the suite (they are slow).
        for (bits, alg) in [(3072, "RS384"), (4096, "PS512")] {
            let key = KeyMaterial::generate_rsa(bits, None).unwrap();
            assert_eq!(key.key_size(), Some(bits));
            assert_eq!(b64(&key.public_jwk().n).len() * 8, bits as usize);
            assert_sign_verify(&key, alg);
            let ciphertext = key.encrypt("RSA-OAEP", b"big").unwrap();
            assert_eq!(ciphertext.len() * 8, bits as usize);
            assert_eq!(&**key.decrypt("RSA-OAEP", &ciphertext).unwrap(), b"big");
        }
    }

    #[test]
    fn debug_never_shows_private_members() {
        let jwk = rfc7515_rsa_jwk();
        let shown = format!("{jwk:?} {:#?}", jwk);
        for secret in [A2_D, A2_P, A2_Q, A2_DP, A2_DQ, A2_QI] {
            assert!(!shown.contains(secret), "{shown}");
            assert!(!shown.contains(&secret[..8]), "{shown}");
        }
        assert!(shown.contains(A2_N), "public members stay visible");
        assert!(shown.contains("<redacted>"));
        let ec = format!("{:?}", rfc7515_ec_jwk());
        assert!(!ec.contains(A3_D) && ec.contains(A3_X), "{ec}");

        let key = KeyMaterial::from_jwk(&jwk).unwrap();
        let shown = format!("{key:?} {key:#?}");
        assert!(shown.contains("Rsa") && shown.contains("2048"), "{shown}");
        assert!(
            !shown.contains(&A2_D[..8]) && !shown.contains(A2_N),
            "{shown}"
        );
    }

    #[test]
    fn jwk_serde_and_clearing() {
        let json = format!(
            r#"{{"kid":"https://v/keys/k/1","kty":"EC","key_ops":["sign","verify"],
                "crv":"P-256","x":"{A3_X}","y":"{A3_Y}","d":"{A3_D}","unknown":1}}"#
        );
        let mut jwk: Jwk = serde_json::from_str(&json).unwrap();
        assert_eq!(jwk.key_ops.as_deref().unwrap(), ["sign", "verify"]);
        assert!(jwk.has_private());
        assert!(KeyMaterial::from_jwk(&jwk).is_ok());
        jwk.clear_private();
        assert!(!jwk.has_private() && jwk.d.is_none());
        assert_eq!(jwk.x.as_deref(), Some(A3_X));
        let out = serde_json::to_string(&jwk).unwrap();
        assert!(!out.contains("\"d\"") && !out.contains("null"), "{out}");
        let back: Jwk = serde_json::from_str(&out).unwrap();
        assert_eq!(back.kid, jwk.kid);
    }

    #[test]
    fn curve_names() {
        for (curve, _) in CURVES {
            assert_eq!(Curve::parse(curve.name()), Some(curve));
        }
        assert_eq!(Curve::parse("p-256"), None);
        assert_eq!(Curve::parse("secp256k1"), None);
        assert_eq!(KeyKind::Rsa.kty(), "RSA");
        assert_eq!(KeyKind::Ec(Curve::P521).kty(), "EC");
    }

    /// The private JWK of an RSA key, read out of its PKCS#8 by a minimal DER
    /// walk (aws-lc-rs exposes no private RSA components).
    fn private_rsa_jwk(key: &KeyMaterial) -> Jwk {
        // One DER TLV: (tag, contents, rest). Lengths up to 0x82 (64 KiB).
        fn tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
            let (tag, first) = (input[0], input[1]);
            let (len, header) = match first {
                0x81 => (input[2] as usize, 3),
                0x82 => (((input[2] as usize) << 8) | input[3] as usize, 4),
                short => (short as usize, 2),
            };
            (tag, &input[header..header + len], &input[header + len..])
        }
        let (_, pkcs8, _) = tlv(key.to_der());
        let (_, _, rest) = tlv(pkcs8); // version
        let (_, _, rest) = tlv(rest); // AlgorithmIdentifier
        let (tag, octets, _) = tlv(rest);
        assert_eq!(tag, 0x04);
        let (_, rsa_key, _) = tlv(octets);
        let mut members = Vec::new();
        let mut rest = rsa_key;
        while !rest.is_empty() {
            let (tag, value, next) = tlv(rest);
            assert_eq!(tag, 0x02);
            members.push(Some(B64.encode(strip_leading_zeros(value))));
            rest = next;
        }
        // version, n, e, d, p, q, dp, dq, qi
        assert_eq!(members.len(), 9);
        Jwk {
            kty: Some("RSA".into()),
            n: members[1].take(),
            e: members[2].take(),
            d: members[3].take(),
            p: members[4].take(),
            q: members[5].take(),
            dp: members[6].take(),
            dq: members[7].take(),
            qi: members[8].take(),
            ..Jwk::default()
        }
    }
}
