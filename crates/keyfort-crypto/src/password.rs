//! Password and client-secret hashing with Argon2id (OWASP parameters:
//! 19 MiB, 2 passes, 1 lane). Verification compares in constant time inside
//! the argon2 crate.

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};

use crate::CryptoError;

fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("static Argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a secret into a PHC string (`$argon2id$v=19$...`) with a random salt.
pub fn hash(secret: &str) -> Result<String, CryptoError> {
    PasswordHasher::hash_password(&hasher(), secret.as_bytes())
        .map(|h| h.to_string())
        .map_err(|_| CryptoError::Failed)
}

/// True when `secret` matches the PHC string `phc`.
pub fn verify(secret: &str, phc: &str) -> bool {
    PasswordVerifier::<str>::verify_password(&hasher(), secret.as_bytes(), phc).is_ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn hash_and_verify() {
        let phc = super::hash("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(!phc.contains("correct horse"));
        assert!(super::verify("correct horse", &phc));
        assert!(!super::verify("correct horsf", &phc));
        assert!(!super::verify("correct horse", "not a hash"));
    }
}
