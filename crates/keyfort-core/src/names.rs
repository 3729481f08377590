//! Name rules, as Azure Key Vault has them.

use crate::{Error, Result};

/// Object names (secrets, keys, certificates): 1–127 letters, digits, dashes.
pub fn check_object_name(kind: &str, name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 127
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(Error::bad(format!(
            "The {kind} name '{}' is invalid: use 1 to 127 characters, only letters (a-z, A-Z), digits (0-9) and dashes (-).",
            printable(name)
        )));
    }
    Ok(())
}

/// Vault names: 3–24 letters, digits, dashes; start with a letter, end with a
/// letter or digit, no consecutive dashes.
pub fn check_vault_name(name: &str) -> Result<()> {
    let b = name.as_bytes();
    let ok = (3..=24).contains(&b.len())
        && b[0].is_ascii_alphabetic()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(Error::bad(format!(
            "The vault name '{}' is invalid: use 3 to 24 letters, digits and dashes, start with a letter, end with a letter or digit, and no consecutive dashes.",
            printable(name)
        )))
    }
}

/// Object versions are 32 hex digits; an empty version means "latest".
pub fn check_version(version: &str) -> Result<()> {
    if version.len() == 32 && version.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(Error::bad(format!(
            "The version '{}' is invalid: a version is 32 hexadecimal characters.",
            printable(version)
        )))
    }
}

/// The storage form of a name: Key Vault names are case-insensitive.
pub fn fold(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// A user-supplied string made safe to echo in a message.
pub fn printable(s: &str) -> String {
    s.chars()
        .take(130)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names() {
        assert!(check_object_name("secret", "a").is_ok());
        assert!(check_object_name("secret", &"a".repeat(127)).is_ok());
        assert!(check_object_name("secret", &"a".repeat(128)).is_err());
        assert!(check_object_name("secret", "").is_err());
        assert!(check_object_name("secret", "a_b").is_err());
        assert!(check_object_name("secret", "a/b").is_err());
        assert!(check_object_name("secret", "a.b").is_err());
    }

    #[test]
    fn vault_names() {
        assert!(check_vault_name("dev").is_ok());
        assert!(check_vault_name("app-prod-eu1").is_ok());
        assert!(check_vault_name("ab").is_err());
        assert!(check_vault_name("1ab").is_err());
        assert!(check_vault_name("ab-").is_err());
        assert!(check_vault_name("a--b").is_err());
        assert!(check_vault_name(&"a".repeat(25)).is_err());
    }

    #[test]
    fn versions() {
        assert!(check_version(&"0123456789abcdef".repeat(2)).is_ok());
        assert!(check_version("xyz").is_err());
    }
}
