//! The root key file: 32 random bytes as 64 hex digits, mode 0600.

use std::io::Write;
use std::path::Path;

use keyfort_crypto::SealingKey;
use zeroize::Zeroizing;

/// Creates a new key file; fails if one exists.
pub fn create(path: &Path) -> std::io::Result<()> {
    let key = SealingKey::generate();
    let hex = Zeroizing::new(
        key.expose_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
    );
    write_private(path, format!("{}\n", hex.as_str()).as_bytes())
}

/// Reads a key file written by [`create`].
pub fn load(path: &Path) -> Result<SealingKey, String> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
    );
    let hex = text.trim();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{} must hold exactly 64 hexadecimal digits (a 256-bit key)",
            path.display()
        ));
    }
    let mut raw = Zeroizing::new([0u8; 32]);
    for (i, byte) in raw.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| "invalid hex".to_string())?;
    }
    SealingKey::from_bytes(raw.as_ref()).map_err(|e| e.to_string())
}

/// Writes a new file readable by its owner only (never world-readable, even
/// briefly), all or nothing: it is written and synced under a temporary name,
/// then linked into place, so a crash never leaves an empty or partial file,
/// and an existing file is never replaced.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp); // left by a crash of an earlier run
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    let written = f.write_all(contents).and_then(|()| f.sync_all());
    // A hard link fails if `path` exists: never overwrite (unlike rename).
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        // A filesystem without hard links (SMB, FAT, some FUSE): write in place.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::Unsupported | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            let mut f = opts.open(path)?;
            f.write_all(contents)?;
            f.sync_all()?;
        }
        Err(e) => return Err(e),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn create_load_and_refuse_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("root.key");
        super::create(&p).unwrap();
        assert!(super::create(&p).is_err(), "never overwrites a root key");
        super::load(&p).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        std::fs::write(dir.path().join("bad"), "abc").unwrap();
        assert!(super::load(&dir.path().join("bad")).is_err());
    }
}
