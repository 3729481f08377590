//! Access tokens: compact JWS with RS256 (RSA PKCS#1 v1.5 over SHA-256), the
//! algorithm Entra ID uses, so any OIDC library can check Keyfort's tokens
//! against the published JWKS. Only the JWS framing is done here; signing and
//! verification are aws-lc-rs. The verifier accepts exactly `alg: RS256` with
//! this key's `kid`: no `none`, no algorithm confusion.

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    KeyPair, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::CryptoError;

/// Tokens longer than this are refused before any parsing.
const MAX_TOKEN_LEN: usize = 16 * 1024;

pub struct TokenSigner {
    key: RsaKeyPair,
    verifier: ParsedPublicKey,
    kid: String,
    n: Vec<u8>,
    e: Vec<u8>,
}

/// The header fields Keyfort reads.
#[derive(serde::Deserialize)]
pub struct Header {
    pub alg: String,
    pub kid: Option<String>,
    pub x5t: Option<String>,
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: Option<String>,
}

/// A compact JWS split into its parts; nothing is verified yet.
pub struct Jws<'a> {
    pub header: Header,
    /// `header.payload`, the bytes the signature covers.
    pub signed: &'a [u8],
    payload: &'a str,
    pub signature: Vec<u8>,
}

impl<'a> Jws<'a> {
    pub fn parse(token: &'a str) -> Result<Jws<'a>, CryptoError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(CryptoError::TokenRejected("token is too long"));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(CryptoError::TokenRejected("not a compact JWS"));
        };
        let header: Header = B64
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(CryptoError::TokenRejected("malformed token header"))?;
        let signature = B64
            .decode(s)
            .map_err(|_| CryptoError::TokenRejected("malformed token signature"))?;
        Ok(Jws {
            header,
            signed: &token.as_bytes()[..h.len() + 1 + p.len()],
            payload: p,
            signature,
        })
    }

    /// The claims; call only after the signature was verified.
    pub fn claims<C: DeserializeOwned>(&self) -> Result<C, CryptoError> {
        let payload = B64
            .decode(self.payload)
            .map_err(|_| CryptoError::TokenRejected("malformed token payload"))?;
        serde_json::from_slice(&payload)
            .map_err(|_| CryptoError::TokenRejected("token claims are not valid"))
    }
}

impl TokenSigner {
    /// A new RSA-2048 signing key.
    pub fn generate() -> Result<Self, CryptoError> {
        let key = RsaKeyPair::generate(KeySize::Rsa2048)?;
        Self::from_key(key)
    }

    /// Loads a key saved with [`TokenSigner::to_pkcs8`].
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, CryptoError> {
        let key = RsaKeyPair::from_pkcs8(der)
            .map_err(|_| CryptoError::InvalidKey("token signing key is not RSA PKCS#8"))?;
        Self::from_key(key)
    }

    fn from_key(key: RsaKeyPair) -> Result<Self, CryptoError> {
        let public = key.public_key();
        let n = public.modulus().big_endian_without_leading_zero().to_vec();
        let e = public.exponent().big_endian_without_leading_zero().to_vec();
        let verifier = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public.as_ref())
            .map_err(|_| CryptoError::InvalidKey("token public key"))?;
        let kid = B64.encode(&digest::digest(&digest::SHA256, &n).as_ref()[..16]);
        Ok(TokenSigner {
            key,
            verifier,
            kid,
            n,
            e,
        })
    }

    /// The private key as PKCS#8 DER, for sealed storage.
    pub fn to_pkcs8(&self) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let der = self.key.as_der().map_err(|_| CryptoError::Failed)?;
        Ok(Zeroizing::new(der.as_ref().to_vec()))
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs `claims` into a compact JWS.
    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, CryptoError> {
        let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "kid": self.kid});
        let mut out = String::new();
        out.push_str(&B64.encode(serde_json::to_vec(&header).map_err(|_| CryptoError::Failed)?));
        out.push('.');
        out.push_str(&B64.encode(serde_json::to_vec(claims).map_err(|_| CryptoError::Failed)?));
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            out.as_bytes(),
            &mut sig,
        )?;
        out.push('.');
        out.push_str(&B64.encode(sig));
        Ok(out)
    }

    /// Checks the signature and returns the claims. Claim checks (issuer,
    /// audience, expiry) are the caller's.
    pub fn verify<C: DeserializeOwned>(&self, token: &str) -> Result<C, CryptoError> {
        let jws = Jws::parse(token)?;
        if jws.header.alg != "RS256" {
            return Err(CryptoError::TokenRejected("token algorithm must be RS256"));
        }
        if jws.header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(CryptoError::TokenRejected(
                "token was not signed by this issuer's key",
            ));
        }
        self.verifier
            .verify_sig(jws.signed, &jws.signature)
            .map_err(|_| CryptoError::TokenRejected("token signature is invalid"))?;
        jws.claims()
    }

    /// Checks a token against a published JWKS (`{"keys": [...]}`), as
    /// anyone without the private key does: offline audit verification.
    pub fn verify_with_jwks<C: DeserializeOwned>(
        token: &str,
        jwks: &serde_json::Value,
    ) -> Result<C, CryptoError> {
        let jws = Jws::parse(token)?;
        if jws.header.alg != "RS256" {
            return Err(CryptoError::TokenRejected("token algorithm must be RS256"));
        }
        let key = jwks["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|k| k["kid"].as_str().is_some() && k["kid"].as_str() == jws.header.kid.as_deref())
            .ok_or(CryptoError::TokenRejected(
                "no key in the JWKS has the token's kid",
            ))?;
        let part = |name: &str| {
            key[name]
                .as_str()
                .and_then(|v| B64.decode(v).ok())
                .ok_or(CryptoError::InvalidKey("the JWK lacks n or e"))
        };
        let public = aws_lc_rs::signature::RsaPublicKeyComponents {
            n: part("n")?,
            e: part("e")?,
        };
        public
            .verify(&RSA_PKCS1_2048_8192_SHA256, jws.signed, &jws.signature)
            .map_err(|_| CryptoError::TokenRejected("token signature is invalid"))?;
        jws.claims()
    }

    /// The public key as a JWK, for the JWKS document.
    pub fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": B64.encode(&self.n),
            "e": B64.encode(&self.e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_against_a_published_jwks() {
        let signer = TokenSigner::generate().unwrap();
        let other = TokenSigner::generate().unwrap();
        let token = signer.sign(&serde_json::json!({ "sequence": 7 })).unwrap();
        let jwks = serde_json::json!({ "keys": [other.jwk(), signer.jwk()] });
        let c: serde_json::Value = TokenSigner::verify_with_jwks(&token, &jwks).unwrap();
        assert_eq!(c["sequence"], 7);
        let only_other = serde_json::json!({ "keys": [other.jwk()] });
        assert!(TokenSigner::verify_with_jwks::<serde_json::Value>(&token, &only_other).is_err());
        let mut tampered = token.clone();
        tampered.push('A');
        assert!(TokenSigner::verify_with_jwks::<serde_json::Value>(&tampered, &jwks).is_err());
    }

    #[test]
    fn sign_verify_and_reject() {
        let signer = TokenSigner::generate().unwrap();
        let token = signer
            .sign(&serde_json::json!({"sub": "a", "exp": 5}))
            .unwrap();
        let claims: serde_json::Value = signer.verify(&token).unwrap();
        assert_eq!(claims["sub"], "a");

        // Reload from PKCS#8: same kid, same verification.
        let again = TokenSigner::from_pkcs8(&signer.to_pkcs8().unwrap()).unwrap();
        assert_eq!(again.kid(), signer.kid());
        assert!(again.verify::<serde_json::Value>(&token).is_ok());

        // Another key, a changed payload, alg none: all refused.
        let other = TokenSigner::generate().unwrap();
        assert!(other.verify::<serde_json::Value>(&token).is_err());
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            B64.encode(br#"{"sub":"b","exp":5}"#),
            parts[2]
        );
        assert!(signer.verify::<serde_json::Value>(&forged).is_err());
        let none = format!("{}.{}.", B64.encode(br#"{"alg":"none"}"#), parts[1]);
        assert!(signer.verify::<serde_json::Value>(&none).is_err());
        assert!(signer.verify::<serde_json::Value>("a.b").is_err());
        assert_eq!(signer.jwk()["kid"], signer.kid());
    }
}
