//! Key files: one line of 64 hex digits (the Ed25519 seed) after `#` comments, created 0600 and refused when others can read them.

use std::fs;
use std::path::Path;

use credence_ledger::sig::SecretKey;

/// Largest key file read (it holds one line of hex and a few comments).
pub const KEY_FILE_BYTES_MAX: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("key file {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("key file {path}: mode {mode:o} lets others read it; run `chmod 600 {path}`")]
    Readable { path: String, mode: u32 },
    #[error("key file {path}: {rule}")]
    Format { path: String, rule: String },
}

/// Text of a key file for `key`, with a comment line.
pub fn text(comment: &str, key: &SecretKey) -> String {
    format!("# {comment}\n{}\n", hex::encode(key.seed()))
}

/// Writes `contents` to a new file (never overwriting) readable only by its owner, durably.
pub fn write_private(path: &Path, contents: &str) -> Result<(), KeyFileError> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e: std::io::Error| KeyFileError::Io { path: path.display().to_string(), reason: e.to_string() };
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(contents.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}

/// Reads a key file, refusing one that others can read. Errors never echo the key.
pub fn read(path: &Path) -> Result<SecretKey, KeyFileError> {
    let p = || path.display().to_string();
    let io = |e: std::io::Error| KeyFileError::Io { path: p(), reason: e.to_string() };
    let meta = fs::metadata(path).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Readable { path: p(), mode });
        }
    }
    if meta.len() > KEY_FILE_BYTES_MAX {
        return Err(KeyFileError::Format { path: p(), rule: format!("larger than {KEY_FILE_BYTES_MAX} bytes") });
    }
    let text = fs::read_to_string(path).map_err(io)?;
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
    let (Some(line), None) = (lines.next(), lines.next()) else {
        return Err(KeyFileError::Format {
            path: p(),
            rule: "must hold exactly one line of 64 hexadecimal digits (besides # comments)".into(),
        });
    };
    let mut seed = [0u8; 32];
    hex::decode_to_slice(line, &mut seed)
        .map_err(|_| KeyFileError::Format { path: p(), rule: "the key line is not 64 hexadecimal digits".into() })?;
    Ok(SecretKey::from_seed(seed))
}
