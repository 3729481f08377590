//! Keyfort's cryptography. Nothing here is written by hand below the level of
//! a well-known construction: AES-256-GCM, RSA PKCS#1 v1.5 signatures and
//! random numbers come from aws-lc-rs, password hashing from argon2, and
//! X.509 generation from rcgen. Key material lives in types that zeroize on drop.

pub mod aead;
pub mod certs;
pub mod digest;
pub mod keys;
pub mod password;
pub mod pki;
pub mod random;
pub mod token;
pub mod totp;
pub mod x509;

pub use aead::SealingKey;

/// Errors of this crate. They never carry key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Authentication of sealed data failed: it was altered, truncated, or
    /// sealed under another key or context.
    #[error("sealed data failed authentication")]
    Tampered,
    #[error("invalid key material: {0}")]
    InvalidKey(&'static str),
    #[error("token rejected: {0}")]
    TokenRejected(&'static str),
    #[error("certificate generation failed: {0}")]
    Pki(String),
    #[error("cryptographic operation failed")]
    Failed,
    /// An algorithm, key type, curve or size this crate does not offer.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// Input that is malformed or does not fit the key. The message names
    /// what is wrong, never the key material.
    #[error("bad input: {0}")]
    BadInput(String),
}

impl From<aws_lc_rs::error::Unspecified> for CryptoError {
    fn from(_: aws_lc_rs::error::Unspecified) -> Self {
        CryptoError::Failed
    }
}
