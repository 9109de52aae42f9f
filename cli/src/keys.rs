//! Key files: `credence keys generate` and `credence keys show`.
//!
//! A key file is text: `#` comment lines, then one line of 64 hex digits (the
//! Ed25519 seed). It is created with mode 0600 and refused when group- or
//! world-readable, so a secret is never read from a file others can read.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use credence_ledger::checkpoint::VerifierKey;
use credence_ledger::ids::MemberName;
use credence_ledger::sig::SecretKey;
use serde_json::json;

/// Largest key file read (it holds one line of hex and a few comments).
const KEY_FILE_BYTES_MAX: u64 = 4096;

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Generate a new Ed25519 key into a new file (mode 0600).
    Generate {
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a key file's public key and its C2SP verifier key.
    Show {
        file: PathBuf,
        /// Member name for the verifier key (default: the file name without extension).
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// Writes `contents` to a new file readable only by its owner.
pub fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// Text of a key file for `key`, with a comment line.
pub fn key_file_text(comment: &str, key: &SecretKey) -> String {
    format!("# {comment}\n{}\n", hex::encode(key.seed()))
}

/// Reads a key file, refusing one that others can read.
pub fn read_key(path: &Path) -> Result<SecretKey> {
    let meta = fs::metadata(path).with_context(|| format!("key file {}: cannot read", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!("key file {}: mode {mode:o} lets others read it; run `chmod 600 {}`", path.display(), path.display());
        }
    }
    if meta.len() > KEY_FILE_BYTES_MAX {
        bail!("key file {}: {} bytes exceed the limit of {KEY_FILE_BYTES_MAX}", path.display(), meta.len());
    }
    let text = fs::read_to_string(path).with_context(|| format!("key file {}: cannot read", path.display()))?;
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
    let (Some(line), None) = (lines.next(), lines.next()) else {
        bail!("key file {}: must hold exactly one line of 64 hexadecimal digits (besides # comments)", path.display());
    };
    let mut seed = [0u8; 32];
    // The error must not echo the line: it is (part of) a secret.
    hex::decode_to_slice(line, &mut seed)
        .map_err(|_| anyhow::anyhow!("key file {}: the key line is not 64 hexadecimal digits", path.display()))?;
    Ok(SecretKey::from_seed(seed))
}

pub fn run(cmd: &KeysCommand) -> Result<ExitCode> {
    match cmd {
        KeysCommand::Generate { out } => {
            let key = SecretKey::generate();
            write_private(out, &key_file_text("Credence member key. Keep secret; mode 0600.", &key))?;
            println!("{}", hex::encode(key.public().0));
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Show { file, name, json } => {
            let key = read_key(file)?;
            let name = match name {
                Some(n) => n.clone(),
                None => file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
            };
            let name = MemberName::parse("--name", &name)?;
            let vkey = VerifierKey { name: name.to_string(), key: key.public() }.to_vkey_string();
            let pk = hex::encode(key.public().0);
            if *json {
                println!("{}", json!({"name": name.as_str(), "public_key": pk, "verifier_key": vkey}));
            } else {
                println!("name          {name}\npublic_key    {pk}\nverifier_key  {vkey}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
