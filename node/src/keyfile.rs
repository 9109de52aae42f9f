//! Key files: one key line after `#` comments (64 hex digits of the Ed25519 seed, or that seed encrypted with a passphrase), created 0600 and refused when others can read them.
//!
//! # Formats
//! ```text
//! plain      = 64 hexadecimal digits
//! encrypted  = "credence-encrypted-key-v1 argon2id m=<KiB> t=<passes> p=<lanes> salt=<32 hex>
//!               nonce=<48 hex> ct=<96 hex>"                                  (one line)
//! ```
//! An encrypted key is the 32-byte seed sealed with XChaCha20-Poly1305 under a key derived
//! from the passphrase by Argon2id (RFC 9106) with the line's parameters and salt; everything
//! before ` ct=` is authenticated as associated data, so no parameter can be changed
//! unnoticed. Parameters are bounded on read ([`KDF_MEMORY_KIB_MAX`] …) so a hostile file
//! cannot make the node allocate without limit, and refused below the defaults' floor
//! ([`KDF_MEMORY_KIB_MIN`]) so a weakened file is not silently accepted.
//!
//! # Access-key files
//! An access key (docs/ACCESS.md) is the same key line preceded by one `keyid` line naming
//! the access-key grant that delegated it (its attestation id, the RFC 9421 `keyid`):
//! ```text
//! access-key-file = *comment "keyid " 64HEXDIG LF *comment key-line LF *comment
//! ```
//! Written by `credence keys access` and read by every CLI command's `--access-key`.
//!
//! # Secrets
//! Neither the seed nor the passphrase appears in an error, a log line or `Debug` output:
//! [`SecretKey`] and [`Passphrase`] print as `<redacted>`, errors name only the file, the
//! rule and (for permissions) the mode. Derived keys and decrypted seeds are zeroized.

use std::fs;
use std::io::Read;
use std::path::Path;

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use credence_ledger::attestation::AttestationId;
use credence_ledger::hash::{Hash, HashOf};
use credence_ledger::sig::SecretKey;
use zeroize::Zeroizing;

use crate::config::PassphraseSource;

/// Largest key file read (it holds one key line and a few comments).
pub const KEY_FILE_BYTES_MAX: u64 = 4096;
/// Largest passphrase file read, and longest passphrase accepted.
pub const PASSPHRASE_BYTES_MAX: usize = 1024;
/// First word of an encrypted key line (names the format version).
pub const ENCRYPTED_TAG: &str = "credence-encrypted-key-v1";
/// Argon2id memory of new encrypted keys, in KiB (64 MiB; RFC 9106 §4's second choice).
pub const KDF_MEMORY_KIB_DEFAULT: u32 = 64 * 1024;
/// Argon2id passes of new encrypted keys.
pub const KDF_PASSES_DEFAULT: u32 = 3;
/// Argon2id lanes of new encrypted keys.
pub const KDF_LANES_DEFAULT: u32 = 1;
/// Least Argon2id memory accepted on read (19 MiB: the OWASP floor for Argon2id).
pub const KDF_MEMORY_KIB_MIN: u32 = 19 * 1024;
/// Most Argon2id memory accepted on read (256 MiB).
pub const KDF_MEMORY_KIB_MAX: u32 = 256 * 1024;
/// Most Argon2id passes accepted on read.
pub const KDF_PASSES_MAX: u32 = 16;
/// Most Argon2id lanes accepted on read.
pub const KDF_LANES_MAX: u32 = 8;

const SALT_BYTES: usize = 16;
const NONCE_BYTES: usize = 24;
const SEED_BYTES: usize = 32;
const TAG_BYTES: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("key file {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("{what} {path}: mode {mode:03o} lets group or others access it; run `chmod 600 {path}`")]
    Readable { what: &'static str, path: String, mode: u32 },
    #[error("key file {path}: {rule}")]
    Format { path: String, rule: String },
    #[error(
        "key file {path}: the key is encrypted with a passphrase; give one (`--passphrase-env VAR`, or \
         `key_passphrase_env` / `key_passphrase_file` in node.toml)"
    )]
    PassphraseRequired { path: String },
    #[error("key file {path}: wrong passphrase, or the file was altered (authentication failed)")]
    Decrypt { path: String },
    #[error("passphrase: {source_name}: {rule}")]
    Passphrase { source_name: String, rule: String },
}

/// A passphrase held in memory that is zeroized on drop and never printed.
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Wraps `text`, refusing an empty or over-long passphrase. `source_name` names where it
    /// came from in errors (an environment variable or a file), never the passphrase itself.
    pub fn new(text: String, source_name: &str) -> Result<Passphrase, KeyFileError> {
        let text = Zeroizing::new(text);
        let bad = |rule: String| KeyFileError::Passphrase { source_name: source_name.to_string(), rule };
        if text.is_empty() {
            return Err(bad("is empty".into()));
        }
        if text.len() > PASSPHRASE_BYTES_MAX {
            return Err(bad(format!("longer than {PASSPHRASE_BYTES_MAX} bytes")));
        }
        Ok(Passphrase(text))
    }

    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

impl PassphraseSource {
    /// Reads the passphrase: the variable's value, or the file's contents less one trailing
    /// newline (the file is refused, like a key file, when group or others can access it).
    pub fn read(&self) -> Result<Passphrase, KeyFileError> {
        match self {
            PassphraseSource::Env(var) => {
                let name = format!("environment variable {var}");
                match std::env::var(var) {
                    Ok(v) => Passphrase::new(v, &name),
                    Err(std::env::VarError::NotPresent) => {
                        Err(KeyFileError::Passphrase { source_name: name, rule: "is not set".into() })
                    }
                    Err(std::env::VarError::NotUnicode(_)) => {
                        Err(KeyFileError::Passphrase { source_name: name, rule: "is not valid UTF-8".into() })
                    }
                }
            }
            PassphraseSource::File(path) => {
                let bytes = read_private(path, "passphrase file", PASSPHRASE_BYTES_MAX as u64 + 2)?;
                let name = format!("file {}", path.display());
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|_| KeyFileError::Passphrase { source_name: name.clone(), rule: "is not UTF-8".into() })?;
                let mut text = Zeroizing::new(text);
                if text.ends_with('\n') {
                    text.pop();
                    if text.ends_with('\r') {
                        text.pop();
                    }
                }
                Passphrase::new(std::mem::take(&mut *text), &name)
            }
        }
    }
}

/// Text of a plain key file for `key`, with a comment line.
pub fn text(comment: &str, key: &SecretKey) -> String {
    let seed = Zeroizing::new(key.seed());
    format!("# {comment}\n{}\n", hex::encode(*seed))
}

/// Argon2id cost parameters of an encrypted key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub passes: u32,
    pub lanes: u32,
}

impl Default for KdfParams {
    fn default() -> Self {
        KdfParams { memory_kib: KDF_MEMORY_KIB_DEFAULT, passes: KDF_PASSES_DEFAULT, lanes: KDF_LANES_DEFAULT }
    }
}

impl KdfParams {
    fn check(&self) -> Result<(), String> {
        if !(KDF_MEMORY_KIB_MIN..=KDF_MEMORY_KIB_MAX).contains(&self.memory_kib) {
            return Err(format!("m={} KiB is outside {KDF_MEMORY_KIB_MIN}..={KDF_MEMORY_KIB_MAX}", self.memory_kib));
        }
        if !(1..=KDF_PASSES_MAX).contains(&self.passes) {
            return Err(format!("t={} is outside 1..={KDF_PASSES_MAX}", self.passes));
        }
        if !(1..=KDF_LANES_MAX).contains(&self.lanes) {
            return Err(format!("p={} is outside 1..={KDF_LANES_MAX}", self.lanes));
        }
        Ok(())
    }

    fn derive(&self, passphrase: &Passphrase, salt: &[u8]) -> Result<Zeroizing<[u8; 32]>, String> {
        self.check()?;
        let params = Params::new(self.memory_kib, self.passes, self.lanes, Some(32)).map_err(|e| e.to_string())?;
        let mut out = Zeroizing::new([0u8; 32]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(passphrase.as_bytes(), salt, &mut *out)
            .map_err(|e| e.to_string())?;
        Ok(out)
    }
}

/// Text of a passphrase-encrypted key file for `key`, with a comment line.
pub fn encrypted_text(
    comment: &str,
    key: &SecretKey,
    passphrase: &Passphrase,
    params: KdfParams,
) -> Result<String, KeyFileError> {
    let fail = |rule: String| KeyFileError::Format { path: "(new)".into(), rule };
    let mut salt = [0u8; SALT_BYTES];
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut salt).map_err(|e| fail(format!("no randomness for the salt: {e}")))?;
    getrandom::fill(&mut nonce).map_err(|e| fail(format!("no randomness for the nonce: {e}")))?;
    let header = header_of(&params, &salt, &nonce);
    let kek = params.derive(passphrase, &salt).map_err(fail)?;
    let seed = Zeroizing::new(key.seed());
    let sealed = XChaCha20Poly1305::new((&*kek).into())
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: &seed[..], aad: header.as_bytes() })
        .map_err(|_| fail("encryption failed".into()))?;
    Ok(format!("# {comment}\n{header} ct={}\n", hex::encode(sealed)))
}

fn header_of(params: &KdfParams, salt: &[u8], nonce: &[u8]) -> String {
    format!(
        "{ENCRYPTED_TAG} argon2id m={} t={} p={} salt={} nonce={}",
        params.memory_kib,
        params.passes,
        params.lanes,
        hex::encode(salt),
        hex::encode(nonce)
    )
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

/// Opens `path`, refuses it when group or others have any access (checked on the open
/// handle, so the file checked is the file read) or when it exceeds `max` bytes, and reads it.
fn read_private(path: &Path, what: &'static str, max: u64) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
    let p = || path.display().to_string();
    let io = |e: std::io::Error| KeyFileError::Io { path: p(), reason: e.to_string() };
    let file = fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Readable { what, path: p(), mode });
        }
    }
    if meta.len() > max {
        return Err(KeyFileError::Format { path: p(), rule: format!("larger than {max} bytes") });
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
    file.take(max + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > max {
        return Err(KeyFileError::Format { path: p(), rule: format!("larger than {max} bytes") });
    }
    Ok(bytes)
}

/// Reads a plain key file, refusing one that others can read. An encrypted key file is
/// refused with [`KeyFileError::PassphraseRequired`]. Errors never echo the key.
pub fn read(path: &Path) -> Result<SecretKey, KeyFileError> {
    read_with(path, None)
}

/// Reads the key a node config names, with the config's passphrase source if it has one.
pub fn read_node_key(config: &crate::config::NodeConfig) -> Result<SecretKey, KeyFileError> {
    let passphrase = config.key_passphrase.as_ref().map(PassphraseSource::read).transpose()?;
    read_with(&config.key, passphrase.as_ref())
}

/// Reads a key file, plain or encrypted; `passphrase` is needed only for an encrypted one.
pub fn read_with(path: &Path, passphrase: Option<&Passphrase>) -> Result<SecretKey, KeyFileError> {
    let p = || path.display().to_string();
    let bytes = read_private(path, "key file", KEY_FILE_BYTES_MAX)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| KeyFileError::Format { path: p(), rule: "not UTF-8".into() })?;
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
    let (Some(line), None) = (lines.next(), lines.next()) else {
        return Err(KeyFileError::Format {
            path: p(),
            rule: "must hold exactly one key line (64 hexadecimal digits, or an encrypted key) besides # comments"
                .into(),
        });
    };
    key_of_line(path, line, passphrase)
}

/// The secret key of one key line (plain or encrypted) of the file at `path`.
fn key_of_line(path: &Path, line: &str, passphrase: Option<&Passphrase>) -> Result<SecretKey, KeyFileError> {
    let p = || path.display().to_string();
    if line.starts_with(ENCRYPTED_TAG) {
        let Some(passphrase) = passphrase else {
            return Err(KeyFileError::PassphraseRequired { path: p() });
        };
        return decrypt_line(line, passphrase).map_err(|e| match e {
            LineError::Format(rule) => KeyFileError::Format { path: p(), rule },
            LineError::Decrypt => KeyFileError::Decrypt { path: p() },
        });
    }
    let mut seed = Zeroizing::new([0u8; SEED_BYTES]);
    hex::decode_to_slice(line, &mut *seed)
        .map_err(|_| KeyFileError::Format { path: p(), rule: "the key line is not 64 hexadecimal digits".into() })?;
    Ok(SecretKey::from_seed(*seed))
}

/// An access key read from its file: the grant's id and the holder's secret key.
#[derive(Debug)]
pub struct AccessKeyFile {
    /// The id of the access-key grant that delegated this key (the RFC 9421 `keyid`).
    pub keyid: AttestationId,
    pub key: SecretKey,
}

/// First word of an access-key file's `keyid` line.
pub const KEYID_WORD: &str = "keyid";

/// Text of a plain access-key file: a comment, the `keyid` line and the key line.
pub fn access_key_text(comment: &str, keyid: &AttestationId, key: &SecretKey) -> String {
    let seed = Zeroizing::new(key.seed());
    format!("# {comment}\n{KEYID_WORD} {keyid}\n{}\n", hex::encode(*seed))
}

/// Text of a passphrase-encrypted access-key file (the key line as [`encrypted_text`] writes it).
pub fn access_key_encrypted_text(
    comment: &str,
    keyid: &AttestationId,
    key: &SecretKey,
    passphrase: &Passphrase,
    params: KdfParams,
) -> Result<String, KeyFileError> {
    let text = encrypted_text(comment, key, passphrase, params)?;
    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
    Ok(format!("{first}\n{KEYID_WORD} {keyid}\n{rest}"))
}

/// Reads an access-key file (see the module doc), plain or encrypted, refusing one that
/// others can read. Errors name the file and the rule, never the key.
pub fn read_access_key(path: &Path, passphrase: Option<&Passphrase>) -> Result<AccessKeyFile, KeyFileError> {
    let p = || path.display().to_string();
    let bytes = read_private(path, "access-key file", KEY_FILE_BYTES_MAX)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| KeyFileError::Format { path: p(), rule: "not UTF-8".into() })?;
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let shape = || KeyFileError::Format {
        path: p(),
        rule: format!(
            "an access-key file holds a '{KEYID_WORD} <64 hex digits>' line, then one key line, besides # comments \
             (written by `credence keys access`)"
        ),
    };
    let [id_line, key_line] = lines.as_slice() else { return Err(shape()) };
    let Some(hex_id) = id_line.strip_prefix(KEYID_WORD).and_then(|r| r.strip_prefix(' ')) else {
        return Err(shape());
    };
    let keyid = Hash::from_hex("keyid", hex_id.trim())
        .map(HashOf::from_hash)
        .map_err(|_| KeyFileError::Format { path: p(), rule: "the keyid is not 64 hexadecimal digits".into() })?;
    let key = key_of_line(path, key_line, passphrase)?;
    Ok(AccessKeyFile { keyid, key })
}

/// Whether the key file at `path` holds an encrypted key (permissions are checked as on read).
pub fn is_encrypted(path: &Path) -> Result<bool, KeyFileError> {
    let bytes = read_private(path, "key file", KEY_FILE_BYTES_MAX)?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(text.lines().map(str::trim).any(|l| l.starts_with(ENCRYPTED_TAG)))
}

enum LineError {
    Format(String),
    Decrypt,
}

fn decrypt_line(line: &str, passphrase: &Passphrase) -> Result<SecretKey, LineError> {
    let bad = |rule: &str| LineError::Format(format!("encrypted key line: {rule}"));
    let (header, ct) = line.rsplit_once(" ct=").ok_or_else(|| bad("missing ct="))?;
    let mut words = header.split(' ');
    if words.next() != Some(ENCRYPTED_TAG) {
        return Err(bad(&format!("must begin with '{ENCRYPTED_TAG} '")));
    }
    if words.next() != Some("argon2id") {
        return Err(bad("the key derivation must be argon2id"));
    }
    let mut field = |name: &str| -> Result<&str, LineError> {
        words
            .next()
            .and_then(|w| w.strip_prefix(name))
            .and_then(|w| w.strip_prefix('='))
            .ok_or_else(|| bad(&format!("expected {name}=… in this position")))
    };
    let number = |name: &str, v: &str| v.parse::<u32>().map_err(|_| bad(&format!("{name} is not a number")));
    let params = KdfParams {
        memory_kib: number("m", field("m")?)?,
        passes: number("t", field("t")?)?,
        lanes: number("p", field("p")?)?,
    };
    let mut salt = [0u8; SALT_BYTES];
    hex::decode_to_slice(field("salt")?, &mut salt).map_err(|_| bad("salt must be 32 hexadecimal digits"))?;
    let mut nonce = [0u8; NONCE_BYTES];
    hex::decode_to_slice(field("nonce")?, &mut nonce).map_err(|_| bad("nonce must be 48 hexadecimal digits"))?;
    if words.next().is_some() {
        return Err(bad("unexpected words before ct="));
    }
    let mut sealed = [0u8; SEED_BYTES + TAG_BYTES];
    hex::decode_to_slice(ct, &mut sealed).map_err(|_| bad("ct must be 96 hexadecimal digits"))?;
    // The header must be exactly what the writer produces (canonical numbers and lower-case hex).
    if header_of(&params, &salt, &nonce) != header {
        return Err(bad("not in canonical form"));
    }
    params.check().map_err(|rule| bad(&rule))?;
    let kek = params.derive(passphrase, &salt).map_err(|rule| bad(&rule))?;
    let seed = XChaCha20Poly1305::new((&*kek).into())
        .decrypt(XNonce::from_slice(&nonce), Payload { msg: &sealed, aad: header.as_bytes() })
        .map(Zeroizing::new)
        .map_err(|_| LineError::Decrypt)?;
    let seed: [u8; SEED_BYTES] = seed.as_slice().try_into().map_err(|_| bad("sealed seed is not 32 bytes"))?;
    let seed = Zeroizing::new(seed);
    Ok(SecretKey::from_seed(*seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn set_mode(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[cfg(unix)]
    fn mode_of(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn pass(s: &str) -> Passphrase {
        Passphrase::new(s.to_string(), "test").unwrap()
    }

    #[test]
    #[cfg(unix)]
    fn key_files_are_written_0600_and_refused_when_others_can_access_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.key");
        let key = SecretKey::from_seed([7; 32]);
        write_private(&path, &text("test", &key)).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(read(&path).unwrap().public(), key.public());
        // Never overwrites.
        assert!(matches!(write_private(&path, "x"), Err(KeyFileError::Io { .. })));
        for mode in [0o640, 0o604, 0o620, 0o660, 0o644] {
            set_mode(&path, mode);
            let err = read(&path).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, KeyFileError::Readable { mode: m, .. } if m == mode), "{msg}");
            assert!(msg.contains(&path.display().to_string()), "names the file: {msg}");
            assert!(msg.contains(&format!("{mode:03o}")), "names the mode: {msg}");
            assert!(msg.contains("chmod 600"), "names the fix: {msg}");
        }
        set_mode(&path, 0o400);
        assert!(read(&path).is_ok(), "owner-only read access is fine");
    }

    #[test]
    fn access_key_files_round_trip_plain_and_encrypted_and_name_their_shape() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::from_seed([9; 32]);
        let keyid: AttestationId = HashOf::from_hash(Hash([3; 32]));
        let plain = dir.path().join("a.access");
        write_private(&plain, &access_key_text("test", &keyid, &key)).unwrap();
        let read = read_access_key(&plain, None).unwrap();
        assert_eq!((read.keyid, read.key.public()), (keyid, key.public()));
        let enc = dir.path().join("b.access");
        let weak = KdfParams { memory_kib: KDF_MEMORY_KIB_MIN, passes: 1, lanes: 1 };
        write_private(&enc, &access_key_encrypted_text("test", &keyid, &key, &pass("pw"), weak).unwrap()).unwrap();
        assert!(matches!(read_access_key(&enc, None), Err(KeyFileError::PassphraseRequired { .. })));
        let read = read_access_key(&enc, Some(&pass("pw"))).unwrap();
        assert_eq!((read.keyid, read.key.public()), (keyid, key.public()));
        // A member key file is not an access-key file, and a bad keyid is named.
        let member = dir.path().join("m.key");
        write_private(&member, &text("member", &key)).unwrap();
        assert!(read_access_key(&member, None).unwrap_err().to_string().contains("keyid"));
        let bad = dir.path().join("c.access");
        write_private(&bad, &format!("keyid 12\n{}\n", hex::encode([9u8; 32]))).unwrap();
        assert!(read_access_key(&bad, None).unwrap_err().to_string().contains("keyid is not 64"));
    }

    #[test]
    fn errors_and_debug_never_show_the_key_or_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::from_seed([0xab; 32]);
        let seed_hex = hex::encode([0xab; 32]);
        assert!(!format!("{key:?}").contains("ab"), "SecretKey Debug: {key:?}");
        let secret = "correct horse battery staple";
        let p = pass(secret);
        assert_eq!(format!("{p:?}"), "Passphrase(<redacted>)");

        // A malformed key line: the error names the rule, not the line.
        let path = dir.path().join("bad.key");
        write_private(&path, &format!("{}zz\n", &seed_hex[..62])).unwrap();
        let msg = read(&path).unwrap_err().to_string();
        assert!(!msg.contains(&seed_hex[..62]), "{msg}");
        assert!(msg.contains("64 hexadecimal digits"), "{msg}");

        // A wrong passphrase: neither passphrase appears.
        let enc = dir.path().join("enc.key");
        write_private(&enc, &encrypted_text("t", &key, &p, KdfParams::default()).unwrap()).unwrap();
        let err = read_with(&enc, Some(&pass("wrong guess"))).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(matches!(err, KeyFileError::Decrypt { .. }), "{shown}");
        assert!(!shown.contains("wrong guess") && !shown.contains(secret) && !shown.contains(&seed_hex), "{shown}");
    }

    #[test]
    fn encrypted_keys_round_trip_and_refuse_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::from_seed([3; 32]);
        let p = pass("hunter2 but longer");
        let text = encrypted_text("member key", &key, &p, KdfParams::default()).unwrap();
        assert!(!text.contains(&hex::encode([3u8; 32])), "the seed is not in the file");
        let path = dir.path().join("k.key");
        write_private(&path, &text).unwrap();
        assert!(is_encrypted(&path).unwrap());
        assert_eq!(read_with(&path, Some(&p)).unwrap().public(), key.public());
        // Without a passphrase: a clear refusal naming the file and how to give one.
        let msg = read(&path).unwrap_err().to_string();
        assert!(msg.contains("encrypted with a passphrase") && msg.contains("--passphrase-env"), "{msg}");

        // Changing the parameters (authenticated), the salt, the nonce or the ciphertext is refused.
        let line = text.lines().nth(1).unwrap();
        let flip_after = |marker: &str| {
            let at = line.find(marker).unwrap() + marker.len();
            let c = if &line[at..at + 1] == "0" { "1" } else { "0" };
            let mut t = line.to_string();
            t.replace_range(at..at + 1, c);
            t
        };
        let tampered = [
            line.replace(" t=3 ", " t=4 "),
            line.replace(" m=65536 ", " m=65537 "),
            flip_after("salt="),
            flip_after("nonce="),
            flip_after(" ct="),
        ];
        for (i, t) in tampered.iter().enumerate() {
            assert_ne!(t, line);
            let f = dir.path().join(format!("t{i}.key"));
            write_private(&f, &format!("{t}\n")).unwrap();
            assert!(
                matches!(read_with(&f, Some(&p)), Err(KeyFileError::Decrypt { .. })),
                "tampered line {i} must fail authentication"
            );
        }

        // Parameters outside the bounds are refused before any work, naming the rule.
        let weak = line.replace(" m=65536 ", " m=1024 ");
        let f = dir.path().join("weak.key");
        write_private(&f, &format!("{weak}\n")).unwrap();
        let msg = read_with(&f, Some(&p)).unwrap_err().to_string();
        assert!(msg.contains("m=1024 KiB is outside"), "{msg}");
        let huge = line.replace(" m=65536 ", " m=4000000000 ");
        let f = dir.path().join("huge.key");
        write_private(&f, &format!("{huge}\n")).unwrap();
        assert!(read_with(&f, Some(&p)).unwrap_err().to_string().contains("is outside"));
    }

    #[test]
    #[cfg(unix)]
    fn passphrase_sources_read_env_and_private_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pass");
        write_private(&file, "from a file\n").unwrap();
        let src = PassphraseSource::File(file.clone());
        assert_eq!(src.read().unwrap().as_bytes(), b"from a file");
        set_mode(&file, 0o644);
        let msg = src.read().unwrap_err().to_string();
        assert!(msg.contains("passphrase file") && msg.contains("644") && msg.contains("chmod 600"), "{msg}");

        let var = "CREDENCE_KEYFILE_TEST_PASSPHRASE_UNSET";
        let msg = PassphraseSource::Env(var.into()).read().unwrap_err().to_string();
        assert!(msg.contains(var) && msg.contains("is not set"), "{msg}");
        assert!(Passphrase::new(String::new(), "x").is_err());
        assert!(Passphrase::new("a".repeat(PASSPHRASE_BYTES_MAX + 1), "x").is_err());
    }

    #[test]
    #[cfg(unix)]
    fn a_node_reads_its_encrypted_key_with_the_configured_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::from_seed([9; 32]);
        let p = pass("node passphrase");
        write_private(&dir.path().join("n.key"), &encrypted_text("n", &key, &p, KdfParams::default()).unwrap())
            .unwrap();
        write_private(&dir.path().join("pass"), "node passphrase\n").unwrap();
        let base = "data_dir = \"d\"\ngenesis = \"g.toml\"\nkey = \"n.key\"\np2p_listen = \"127.0.0.1:1\"\n";
        let with = crate::config::NodeConfig::from_toml(&format!("{base}key_passphrase_file = \"pass\"\n"), dir.path())
            .unwrap();
        assert_eq!(read_node_key(&with).unwrap().public(), key.public());
        let without = crate::config::NodeConfig::from_toml(base, dir.path()).unwrap();
        assert!(matches!(read_node_key(&without), Err(KeyFileError::PassphraseRequired { .. })));
    }
}
