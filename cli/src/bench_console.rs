//! `credence bench console`: a stored ledger served as a member's node serves it, console included, for the console's first-paint figure measured in a real browser (`tests/console.rs`, ignored test `console_first_paint_of_a_large_profile`; docs/BENCHMARKS.md §Console).
//!
//! The store of `--data-dir` (from `credence generate --access-keys`, so it holds a loan
//! officer's access key and its bank's consents) is served by the node's own API code
//! (`credence_node::api::serve` through [`crate::local`], default bounds and redb cache) on
//! 127.0.0.1, working as the bank's node: every read above public must be signed, and each
//! restricted read is checked against a consent and logged as a query record signed by the
//! bank's key (queued to the mempool; nothing commits it here). The URL is printed on the
//! first line of standard output; the server runs until the process is stopped.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result, bail};
use clap::Args;
use credence_ledger::genesis::Genesis;
use credence_ledger::ids::MemberName;
use credence_ledger::store::{RedbOptions, RedbStore, Store};
use credence_node::api::query_log::Signer;

use crate::bench_audit::{OFFICER_KEY_FILE, OFFICER_MEMBER};

#[derive(Args, Debug)]
pub struct ConsoleBenchArgs {
    /// A data directory from `credence generate --access-keys` (genesis.toml, ledger.redb, keys/).
    #[arg(long)]
    data_dir: PathBuf,
    /// Stop after this many seconds (0: run until stopped).
    #[arg(long, default_value_t = 0)]
    seconds: u64,
}

pub fn run(a: &ConsoleBenchArgs) -> Result<ExitCode> {
    let genesis = Genesis::load(&a.data_dir.join("genesis.toml"))?;
    if !a.data_dir.join("keys").join(OFFICER_KEY_FILE).is_file() {
        bail!("--data-dir: no keys/{OFFICER_KEY_FILE}; generate the ledger with --access-keys");
    }
    let store = RedbStore::open_with(&a.data_dir.join("ledger.redb"), &genesis, RedbOptions::default())
        .with_context(|| format!("--data-dir: {}", a.data_dir.display()))?;
    let Some(head) = store.head()? else { bail!("--data-dir: the ledger is empty") };
    let none = crate::keys::PassphraseArgs { passphrase_env: None, passphrase_file: None };
    let bank_key = crate::keys::read_key(&a.data_dir.join("keys").join(format!("{OFFICER_MEMBER}.key")), &none)?;
    let name = MemberName::parse("member", OFFICER_MEMBER).map_err(|e| anyhow::anyhow!("{e}"))?;
    let local =
        crate::local::serve_shared(genesis, Arc::new(RwLock::new(store)), Some(Signer { name, key: bank_key }))?;
    println!("{}", local.url);
    eprintln!(
        "serving {} ({} records, height {}) as {OFFICER_MEMBER}'s node at {}/console; sign in with keys/{OFFICER_KEY_FILE}",
        a.data_dir.display(),
        head.tree_size,
        head.height,
        local.url
    );
    if a.seconds == 0 {
        loop {
            std::thread::park();
        }
    }
    std::thread::sleep(std::time::Duration::from_secs(a.seconds));
    drop(local);
    Ok(ExitCode::SUCCESS)
}
