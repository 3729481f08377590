//! X.509 certificates registered as client credentials: their thumbprints,
//! and verification of a JWS signature with their public key (rustls-webpki
//! over aws-lc-rs). Only RSA keys with RS256 or PS256 are accepted, the
//! algorithms Entra ID and MSAL use for client assertions.

use aws_lc_rs::digest;
use base64::Engine;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::CryptoError;

/// A parsed certificate credential.
pub struct CertificateCredential {
    pub der: Vec<u8>,
    /// SHA-1 thumbprint, base64url (the JWS `x5t` header).
    pub x5t: String,
    /// SHA-256 thumbprint, base64url (the JWS `x5t#S256` header).
    pub x5t_s256: String,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl CertificateCredential {
    /// Parses one PEM certificate (the first, if several).
    pub fn from_pem(pem: &str) -> Result<Self, CryptoError> {
        let der = CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| CryptoError::InvalidKey("not a PEM certificate"))?;
        Self::from_der(der.as_ref())
    }

    pub fn from_der(der: &[u8]) -> Result<Self, CryptoError> {
        let cert = CertificateDer::from(der);
        webpki::EndEntityCert::try_from(&cert)
            .map_err(|_| CryptoError::InvalidKey("not an X.509 certificate"))?;
        Ok(CertificateCredential {
            der: der.to_vec(),
            x5t: b64(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref()),
            x5t_s256: b64(digest::digest(&digest::SHA256, der).as_ref()),
        })
    }

    /// Verifies a JWS signature (`alg` RS256 or PS256) over `signed` with the
    /// certificate's public key.
    pub fn verify(&self, alg: &str, signed: &[u8], signature: &[u8]) -> Result<(), CryptoError> {
        let algorithm = match alg {
            "RS256" => webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256,
            "PS256" => webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
            _ => {
                return Err(CryptoError::TokenRejected(
                    "client assertions must use RS256 or PS256",
                ));
            }
        };
        let cert = CertificateDer::from(self.der.as_slice());
        let ee = webpki::EndEntityCert::try_from(&cert)
            .map_err(|_| CryptoError::InvalidKey("not an X.509 certificate"))?;
        ee.verify_signature(algorithm, signed, signature)
            .map_err(|_| CryptoError::TokenRejected("client assertion signature is invalid"))
    }
}
