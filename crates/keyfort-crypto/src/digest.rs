//! Hashing (aws-lc-rs).

/// SHA-256 of `data`, e.g. to key a cache by a credential without keeping
/// the credential itself.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}
