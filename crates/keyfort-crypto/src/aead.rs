//! Sealing with AES-256-GCM. A sealed value is `nonce (12 bytes) || ciphertext || tag`,
//! and the caller's associated data binds it to where it belongs (vault, kind,
//! name, version), so a ciphertext moved to another row fails to open.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::{CryptoError, random};

pub const KEY_LEN: usize = 32;

/// A 256-bit AES-GCM key. The raw bytes are zeroized on drop; the expanded
/// key schedule lives inside aws-lc, which clears it when freed.
pub struct SealingKey {
    raw: Zeroizing<[u8; KEY_LEN]>,
    key: LessSafeKey,
}

impl SealingKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut raw = Zeroizing::new([0u8; KEY_LEN]);
        random::fill(raw.as_mut());
        Self::from_array(raw)
    }

    /// A key from exactly 32 bytes. The input is copied; the caller should
    /// zeroize its own copy.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != KEY_LEN {
            return Err(CryptoError::InvalidKey("an AES-256 key must be 32 bytes"));
        }
        let mut raw = Zeroizing::new([0u8; KEY_LEN]);
        raw.copy_from_slice(bytes);
        Ok(Self::from_array(raw))
    }

    fn from_array(raw: Zeroizing<[u8; KEY_LEN]>) -> Self {
        let unbound =
            UnboundKey::new(&AES_256_GCM, raw.as_ref()).expect("32 bytes is a valid AES-256 key");
        SealingKey {
            raw,
            key: LessSafeKey::new(unbound),
        }
    }

    /// Encrypts and authenticates `plaintext` bound to `aad`, with a random nonce.
    /// Random 96-bit nonces are safe far beyond the number of writes one key sees
    /// here (each vault has its own key).
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce_bytes = [0u8; NONCE_LEN];
        random::fill(&mut nonce_bytes);
        // Room for the tag up front, so the buffer holding plaintext is never
        // reallocated (which would leave an unzeroized copy behind).
        let tag_len = AES_256_GCM.tag_len();
        let mut body = Zeroizing::new(Vec::with_capacity(plaintext.len() + tag_len));
        body.extend_from_slice(plaintext);
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad),
                &mut *body,
            )
            .expect("AES-GCM sealing cannot fail for in-range lengths");
        let mut out = Vec::with_capacity(NONCE_LEN + body.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&body);
        out
    }

    /// Decrypts a value sealed by [`SealingKey::seal`] with the same `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(CryptoError::Tampered);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Tampered)?;
        let mut buf = Zeroizing::new(body.to_vec());
        let len = self
            .key
            .open_in_place(nonce, Aad::from(aad), buf.as_mut_slice())
            .map_err(|_| CryptoError::Tampered)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }

    /// Wraps another key under this one (key-encryption key over data key).
    pub fn wrap(&self, aad: &[u8], inner: &SealingKey) -> Vec<u8> {
        self.seal(aad, inner.raw.as_ref())
    }

    /// Unwraps a key sealed by [`SealingKey::wrap`].
    pub fn unwrap(&self, aad: &[u8], wrapped: &[u8]) -> Result<SealingKey, CryptoError> {
        let raw = self.open(aad, wrapped)?;
        SealingKey::from_bytes(&raw)
    }

    /// The raw key bytes, for writing a key file. Handle with care.
    pub fn expose_bytes(&self) -> &[u8] {
        self.raw.as_ref()
    }
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let key = SealingKey::generate();
        let sealed = key.seal(b"v1/secret/a/1", b"hunter2");
        assert_eq!(&**key.open(b"v1/secret/a/1", &sealed).unwrap(), b"hunter2");
        assert!(
            !sealed.windows(7).any(|w| w == b"hunter2"),
            "plaintext must not appear"
        );
        // Another context, another key, or a flipped bit all fail.
        assert!(matches!(
            key.open(b"v1/secret/b/1", &sealed),
            Err(CryptoError::Tampered)
        ));
        assert!(
            SealingKey::generate()
                .open(b"v1/secret/a/1", &sealed)
                .is_err()
        );
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(key.open(b"v1/secret/a/1", &bad).is_err());
        assert!(key.open(b"", &sealed[..10]).is_err());
    }

    #[test]
    fn nonces_differ() {
        let key = SealingKey::generate();
        assert_ne!(key.seal(b"", b"x"), key.seal(b"", b"x"));
    }

    #[test]
    fn wrap_unwrap() {
        let root = SealingKey::generate();
        let kek = SealingKey::generate();
        let wrapped = root.wrap(b"kek/v1", &kek);
        let back = root.unwrap(b"kek/v1", &wrapped).unwrap();
        assert_eq!(back.expose_bytes(), kek.expose_bytes());
        assert!(root.unwrap(b"kek/v2", &wrapped).is_err());
        assert!(SealingKey::from_bytes(&[0u8; 16]).is_err());
    }
}
