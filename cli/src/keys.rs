//! Key files: `credence keys generate` and `credence keys show`, plain or passphrase-encrypted.
//!
//! The file format, its encryption and its permission checks are in `credence_node::keyfile`.
//! A passphrase is read from an environment variable (`--passphrase-env VAR`) or a 0600 file
//! (`--passphrase-file PATH`), never from the command line itself (it would show in `ps`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use credence_ledger::checkpoint::VerifierKey;
use credence_ledger::ids::MemberName;
use credence_ledger::sig::SecretKey;
use credence_node::config::PassphraseSource;
use credence_node::keyfile::{self, KdfParams, Passphrase};
use serde_json::json;

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Generate a new Ed25519 key into a new file (mode 0600), encrypted if a passphrase is given.
    Generate {
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Delegate a new access key to one of your member's people or systems: signs an
    /// access-key grant with the member key, waits for its commit, writes the key file (docs/ACCESS.md).
    Access {
        /// Your member key file (signs the grant).
        #[arg(long)]
        key: PathBuf,
        #[command(flatten)]
        passphrase: PassphraseArgs,
        /// Who holds the new key, e.g. loan-officer-zhang (1 to 64 bytes).
        #[arg(long)]
        holder: String,
        /// What it may read, comma-separated: member, restricted, regulator (regulators only).
        #[arg(long, value_delimiter = ',', default_value = "member,restricted")]
        scopes: Vec<String>,
        /// Days until it expires (at most 400).
        #[arg(long, default_value_t = 90)]
        days: u64,
        /// The new access-key file (mode 0600; never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// Encrypt the new file with the passphrase in this environment variable.
        #[arg(long, value_name = "VAR")]
        out_passphrase_env: Option<String>,
        /// The node's API (the grant is submitted there).
        #[arg(long, default_value = crate::query::NODE_DEFAULT)]
        node: String,
        /// The chain's genesis file (default: fetched from the node).
        #[arg(long)]
        genesis: Option<PathBuf>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print a key file's public key and its C2SP verifier key.
    Show {
        file: PathBuf,
        /// Member name for the verifier key (default: the file name without extension).
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
}

/// Where a key file's passphrase comes from.
#[derive(Args, Debug, Clone, Default)]
pub struct PassphraseArgs {
    /// Read the passphrase from this environment variable (encrypts / decrypts the key file).
    #[arg(long, value_name = "VAR", conflicts_with = "passphrase_file")]
    pub passphrase_env: Option<String>,
    /// Read the passphrase from this file (mode 0600; one trailing newline is ignored).
    #[arg(long, value_name = "PATH")]
    pub passphrase_file: Option<PathBuf>,
}

impl PassphraseArgs {
    pub fn source(&self) -> Option<PassphraseSource> {
        match (&self.passphrase_env, &self.passphrase_file) {
            (Some(var), _) => Some(PassphraseSource::Env(var.clone())),
            (None, Some(path)) => Some(PassphraseSource::File(path.clone())),
            (None, None) => None,
        }
    }

    pub fn read(&self) -> Result<Option<Passphrase>> {
        Ok(self.source().map(|s| s.read()).transpose()?)
    }
}

pub use credence_node::keyfile::{text as key_file_text, write_private};

/// Reads a key file, plain or (with a passphrase source) encrypted; refused when others can read it.
pub fn read_key(path: &Path, passphrase: &PassphraseArgs) -> Result<SecretKey> {
    Ok(keyfile::read_with(path, passphrase.read()?.as_ref())?)
}

pub fn run(cmd: &KeysCommand) -> Result<ExitCode> {
    match cmd {
        KeysCommand::Generate { out, passphrase } => {
            let key = SecretKey::generate();
            let text = match passphrase.read()? {
                Some(p) => keyfile::encrypted_text(
                    "Credence member key, encrypted with a passphrase (Argon2id, XChaCha20-Poly1305). Keep secret; mode 0600.",
                    &key,
                    &p,
                    KdfParams::default(),
                )?,
                None => key_file_text("Credence member key. Keep secret; mode 0600.", &key),
            };
            write_private(out, &text)?;
            println!("{}", hex::encode(key.public().0));
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Access { key, passphrase, holder, scopes, days, out, out_passphrase_env, node, genesis, json } => {
            let member_key = read_key(key, passphrase)?;
            let genesis = match genesis {
                Some(g) => credence_ledger::genesis::Genesis::load(g)?,
                None => crate::query::node_genesis(&mut crate::http::Conn::new(node)?)?,
            };
            let out_passphrase =
                out_passphrase_env.as_ref().map(|v| PassphraseSource::Env(v.clone()).read()).transpose()?;
            let (keyid, receipt) = crate::access::grant(crate::access::GrantRequest {
                node,
                genesis: &genesis,
                member_key: &member_key,
                holder,
                scopes: crate::access::parse_scopes(scopes)?,
                days: *days,
                out,
                passphrase: out_passphrase,
            })?;
            if *json {
                println!("{}", json!({"keyid": keyid.to_string(), "file": out, "height": receipt["height"]}));
            } else {
                println!("keyid   {keyid}\nfile    {}\nheight  {}", out.display(), receipt["height"]);
                println!(
                    "use it: --access-key {} (or {}={})",
                    out.display(),
                    crate::access::ACCESS_KEY_ENV,
                    out.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Show { file, name, json, passphrase } => {
            let key = read_key(file, passphrase)?;
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
