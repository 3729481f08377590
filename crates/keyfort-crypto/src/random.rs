//! Random values from the operating system's CSPRNG (through aws-lc-rs).

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// Fills a fresh buffer of `n` random bytes.
pub fn bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    fill(&mut buf);
    buf
}

/// Fills `buf` with random bytes. A failing system RNG is unrecoverable for a
/// vault, so this panics rather than continue with predictable values.
pub fn fill(buf: &mut [u8]) {
    SystemRandom::new()
        .fill(buf)
        .expect("the system random number generator failed");
}

/// A 128-bit random identifier as 32 lowercase hex digits: the shape of an
/// Azure Key Vault object version.
pub fn hex_id() -> String {
    let raw = bytes(16);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random credential of `n` bytes, base64url without padding.
pub fn token_string(n: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes(n))
}
