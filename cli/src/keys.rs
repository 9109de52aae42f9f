//! Key files: `credence keys generate` and `credence keys show`.
//!
//! The file format and its permission checks are in `credence_node::keyfile`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use credence_ledger::checkpoint::VerifierKey;
use credence_ledger::ids::MemberName;
use credence_ledger::sig::SecretKey;
use serde_json::json;

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

pub use credence_node::keyfile::{text as key_file_text, write_private};

/// Reads a key file (refused when others can read it).
pub fn read_key(path: &Path) -> Result<SecretKey> {
    Ok(credence_node::keyfile::read(path)?)
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
