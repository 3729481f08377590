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
    /// The validity window, in Unix seconds (notBefore, notAfter).
    pub not_before: i64,
    pub not_after: i64,
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
        let (not_before, not_after) = validity(der).ok_or(CryptoError::InvalidKey(
            "the certificate's validity cannot be read",
        ))?;
        Ok(CertificateCredential {
            not_before,
            not_after,
            der: der.to_vec(),
            x5t: b64(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref()),
            x5t_s256: b64(digest::digest(&digest::SHA256, der).as_ref()),
        })
    }

    /// Whether `now` (Unix seconds) lies inside the validity window.
    pub fn is_valid_at(&self, now: i64) -> bool {
        self.not_before <= now && now <= self.not_after
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

/// One DER element: its tag, its contents and what follows it.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// Reads notBefore and notAfter from a certificate's DER. webpki checks
/// them only while building a chain, and a client credential has no chain:
/// Entra ID, too, refuses a certificate credential outside its window.
fn validity(der: &[u8]) -> Option<(i64, i64)> {
    const SEQUENCE: u8 = 0x30;
    let (tag, certificate, _) = der_element(der)?;
    let (tbs_tag, tbs, _) = der_element(certificate)?;
    if tag != SEQUENCE || tbs_tag != SEQUENCE {
        return None;
    }
    let mut rest = tbs;
    // version [0] (optional), serialNumber, signature, issuer, then validity.
    if rest.first() == Some(&0xa0) {
        rest = der_element(rest)?.2;
    }
    for _ in 0..3 {
        rest = der_element(rest)?.2;
    }
    let (tag, validity, _) = der_element(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    let (t1, before, rest) = der_element(validity)?;
    let (t2, after, _) = der_element(rest)?;
    Some((der_time(t1, before)?, der_time(t2, after)?))
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) to Unix seconds.
fn der_time(tag: u8, bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?.strip_suffix('Z')?;
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match (tag, text.len()) {
        (0x17, 12) => {
            let yy: i64 = text[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        (0x18, 14) => (text[..4].parse().ok()?, &text[4..]),
        _ => return None,
    };
    let field = |i: usize| rest[i..i + 2].parse::<i64>().ok();
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_time_encodings() {
        assert_eq!(der_time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(der_time(0x17, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(der_time(0x18, b"20261130084729Z"), Some(1_796_028_449));
        assert_eq!(der_time(0x18, b"99991231235959Z"), Some(253_402_300_799));
        assert_eq!(der_time(0x17, b"701301000000Z"), None);
        assert_eq!(der_time(0x17, b"7001010000Z"), None);
    }

    #[test]
    fn reads_the_validity_of_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["client".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2026, 1, 2);
        params.not_after = rcgen::date_time_ymd(2027, 3, 4);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let parsed = CertificateCredential::from_der(cert.der()).unwrap();
        assert_eq!(parsed.not_before, days_from_civil(2026, 1, 2) * 86_400);
        assert_eq!(parsed.not_after, days_from_civil(2027, 3, 4) * 86_400);
        assert!(parsed.is_valid_at(parsed.not_before));
        assert!(!parsed.is_valid_at(parsed.not_after + 1));
        assert!(!parsed.is_valid_at(parsed.not_before - 1));
    }
}
