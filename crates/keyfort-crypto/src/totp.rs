//! Time-based one-time passwords (RFC 6238: HMAC-SHA1, 6 digits, 30-second
//! steps), the kind authenticator apps read from an `otpauth://` URI. HMAC is
//! aws-lc-rs; only the RFC 4226 truncation and the base32 encoding are here.

use aws_lc_rs::{constant_time, hmac};

pub const STEP_SECONDS: i64 = 30;
pub const DIGITS: u32 = 6;

/// The code for time step `step` (RFC 4226 dynamic truncation).
fn code_at(secret: &[u8], step: i64) -> u32 {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let mac = hmac::sign(&key, &(step as u64).to_be_bytes());
    let m = mac.as_ref();
    let offset = (m[m.len() - 1] & 0x0f) as usize;
    let bin = u32::from_be_bytes([
        m[offset] & 0x7f,
        m[offset + 1],
        m[offset + 2],
        m[offset + 3],
    ]);
    bin % 10u32.pow(DIGITS)
}

pub fn code(secret: &[u8], unix_time: i64) -> String {
    format!(
        "{:0width$}",
        code_at(secret, unix_time.div_euclid(STEP_SECONDS)),
        width = DIGITS as usize
    )
}

/// The step `otp` is valid for at `unix_time` (one step of drift either way),
/// compared in constant time; `None` if it is not valid.
pub fn verify(secret: &[u8], otp: &str, unix_time: i64) -> Option<i64> {
    if otp.len() != DIGITS as usize || !otp.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = unix_time.div_euclid(STEP_SECONDS);
    let mut found = None;
    for step in [now - 1, now, now + 1] {
        let expected = format!("{:0width$}", code_at(secret, step), width = DIGITS as usize);
        if constant_time::verify_slices_are_equal(expected.as_bytes(), otp.as_bytes()).is_ok() {
            found = Some(step);
        }
    }
    found
}

/// RFC 4648 base32 without padding, as `otpauth://` URIs carry secrets.
pub fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    for chunk in data.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let bits = u64::from_be_bytes([0, 0, 0, buf[0], buf[1], buf[2], buf[3], buf[4]]);
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..chars {
            out.push(ALPHABET[((bits >> (35 - i * 5)) & 0x1f) as usize] as char);
        }
    }
    out
}

/// The provisioning URI an authenticator app scans.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        enc(issuer),
        enc(account),
        base32(secret),
        enc(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vectors() {
        // RFC 6238 appendix B, SHA-1, last six of the eight digits.
        let secret = b"12345678901234567890";
        for (t, full) in [
            (59, "94287082"),
            (1111111109, "07081804"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
        ] {
            assert_eq!(code(secret, t), full[2..]);
        }
    }

    #[test]
    fn verification_window() {
        let secret = b"12345678901234567890";
        let now = 1_234_567_890;
        assert!(verify(secret, &code(secret, now), now).is_some());
        assert!(verify(secret, &code(secret, now - 30), now).is_some());
        assert!(verify(secret, &code(secret, now - 90), now).is_none());
        assert!(verify(secret, "12345", now).is_none());
        assert!(verify(secret, "abcdef", now).is_none());
    }

    #[test]
    fn base32_rfc4648() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert!(
            otpauth_uri("Keyfort", "alice@x", b"12345")
                .starts_with("otpauth://totp/Keyfort:alice@x?secret=GEZDGNBV&")
        );
    }
}
