//! `credence snapshot`: create a snapshot of a stopped node's store, add validators'
//! statements, verify a snapshot offline, and restore one into a new data directory, from
//! which `credence node` syncs forward (docs/OPERATIONS.md §Starting from a snapshot).

use std::fs;
use std::io::{BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use credence_ledger::genesis::Genesis;
use credence_ledger::rules::StateView;
use credence_ledger::snapshot::{self, SignedStatement, Verified};
use credence_ledger::store::{RedbStore, Store};
use credence_node::snapshot::{SNAPSHOT_FILE, SNAPSHOTS_DIR, restore, set_changes, snapshot_path, verify_file};
use serde_json::json;

use crate::chain::load_data_dir;

const STORE_FILE: &str = "ledger.redb";
const GENESIS_FILE: &str = "genesis.toml";

#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Write a snapshot: one a validator node wrote at an interval height, or a stopped store's head; statements are collected with --statements-from or added by `snapshot sign`.
    Create(CreateArgs),
    /// Add a validator's statement to a snapshot: the digest is computed from the validator's own stopped store, and signed only if it matches.
    Sign(SignArgs),
    /// Verify a snapshot offline: set changes, certificate, statements' quorum, digest, frontier.
    Verify(VerifyArgs),
    /// Verify a snapshot and import it into a new data directory; `credence node` then syncs forward from it.
    Restore(RestoreArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// A node's data directory (genesis.toml, and ledger.redb of a stopped node or snapshots/).
    #[arg(long)]
    data_dir: PathBuf,
    /// The height to snapshot: one the node wrote a snapshot of (`DATA/snapshots/`, at the
    /// multiples of its `snapshot_interval_heights`; the node may be running), else the
    /// stopped store's head (the default).
    #[arg(long)]
    height: Option<u64>,
    /// The snapshot file to write.
    #[arg(long)]
    out: PathBuf,
    /// A validator node's API whose statement of this height to add
    /// (`GET /v1/snapshots/{height}/statement`); repeatable. Each is checked (same height,
    /// block and digest; a validator in force; a valid signature) and skipped with a warning
    /// otherwise.
    #[arg(long = "statements-from")]
    statements_from: Vec<String>,
}

#[derive(Args, Debug)]
pub struct SignArgs {
    /// The snapshot file; the statement is added to it in place.
    file: PathBuf,
    /// The validator's own data directory (a stopped node at the snapshot's height).
    #[arg(long)]
    data_dir: PathBuf,
    /// The validator's member key file.
    #[arg(long)]
    key: PathBuf,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The snapshot file.
    file: PathBuf,
    /// The chain's genesis file: the only thing trusted.
    #[arg(long)]
    genesis: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The snapshot file.
    file: PathBuf,
    /// The chain's genesis file.
    #[arg(long)]
    genesis: PathBuf,
    /// The new data directory (must hold no ledger.redb).
    #[arg(long)]
    data_dir: PathBuf,
}

pub fn run(cmd: &SnapshotCommand) -> Result<ExitCode> {
    match cmd {
        SnapshotCommand::Create(a) => create(a),
        SnapshotCommand::Sign(a) => sign(a),
        SnapshotCommand::Verify(a) => verify(a),
        SnapshotCommand::Restore(a) => restore_into(a),
    }
}

fn create(a: &CreateArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let tmp = a.out.with_extension("partial");
    // A snapshot the node wrote at that height (it may be running), else the stopped store's head.
    let written = a.height.map(|h| snapshot_path(&a.data_dir.join(SNAPSHOTS_DIR), h)).filter(|p| p.is_file());
    let (genesis, st, counts, changes) = match written {
        Some(src) => {
            let genesis = Genesis::load(&a.data_dir.join(GENESIS_FILE))?;
            fs::copy(&src, &tmp).with_context(|| format!("--out: cannot write {}", tmp.display()))?;
            let (prefix, mut reader) = snapshot::open(BufReader::new(fs::File::open(&tmp)?), &genesis)?;
            for item in reader.by_ref() {
                item?;
            }
            let counts = reader.counts();
            let header = reader.header.clone();
            let (digest, held) = reader.finish()?;
            if !held.is_empty() {
                bail!("{}: already holds statements", src.display());
            }
            let st = snapshot::Statement {
                genesis: genesis.hash(),
                height: header.height,
                block_hash: header.hash(),
                digest,
            };
            (genesis, st, counts, prefix.set_changes)
        }
        None => {
            let (genesis, store) = load_data_dir(&a.data_dir).with_context(|| match a.height {
                Some(h) => format!(
                    "no snapshot of height {h} in {} (a validator writes one at the multiples of its \
                     snapshot_interval_heights), and the store cannot be read (is the node running?)",
                    a.data_dir.join(SNAPSHOTS_DIR).display()
                ),
                None => "--data-dir".to_string(),
            })?;
            let head = store.head()?.context("--data-dir: the store holds no block")?;
            if let Some(h) = a.height
                && h != head.height
            {
                bail!(
                    "--height: the store's head is {}, and {} holds no snapshot of height {h}; a store holds \
                     the state at its head only",
                    head.height,
                    a.data_dir.join(SNAPSHOTS_DIR).display()
                );
            }
            let changes = set_changes(&store, &genesis)?;
            let file = fs::File::create(&tmp).with_context(|| format!("--out: cannot create {}", tmp.display()))?;
            let mut w = BufWriter::new(file);
            let (st, counts) = snapshot::write_file(&store, &genesis, &changes, &[], &mut w)?;
            let file = w.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            (genesis, st, counts, changes)
        }
    };
    let statements = collect_statements(&a.statements_from, &genesis, &changes, &st);
    if !statements.is_empty() {
        // The empty statements section is the file's last byte.
        let len = fs::metadata(&tmp)?.len();
        write_statements_at(&tmp, len - 1, &statements)?;
    }
    fs::rename(&tmp, &a.out).with_context(|| format!("--out: cannot write {}", a.out.display()))?;
    let bytes = fs::metadata(&a.out)?.len();
    println!(
        "snapshot of height {} (block {}): {} records, {} pledges, {} facts, {} sequences; digest {}; \
         {bytes} bytes in {:.1} s; {} statements (more are added with `credence snapshot sign`)",
        st.height,
        st.block_hash,
        counts.records,
        counts.pledges,
        counts.facts,
        counts.sequences,
        st.digest,
        started.elapsed().as_secs_f64(),
        statements.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// The statements of `st` the nodes at `urls` serve, each checked against the validator set
/// in force at its height; anything else is reported on stderr and skipped.
fn collect_statements(
    urls: &[String],
    genesis: &Genesis,
    changes: &[Vec<u8>],
    st: &snapshot::Statement,
) -> Vec<SignedStatement> {
    let mut out: Vec<SignedStatement> = Vec::new();
    if urls.is_empty() {
        return out;
    }
    let validators = match credence_node::snapshot::set_in_force(genesis, changes, st.height) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("warning: no statements collected: the validator set in force: {e}");
            return out;
        }
    };
    for url in urls {
        let path = format!("/v1/snapshots/{}/statement", st.height);
        let got = (|| -> Result<SignedStatement, String> {
            let r = crate::http::get(url, &path).map_err(|e| format!("{e:#}"))?;
            if r.status != 200 {
                return Err(format!("HTTP {}: {}", r.status, r.text().chars().take(300).collect::<String>()));
            }
            let view: credence_node::snapshot::StatementView =
                serde_json::from_slice(&r.body).map_err(|e| format!("not a statement: {e}"))?;
            let (theirs, signed) = view.signed(genesis).map_err(|e| e.to_string())?;
            if theirs != *st {
                return Err(format!(
                    "states digest {} of height {} (block {}), not this snapshot's {}",
                    theirs.digest, theirs.height, theirs.block_hash, st.digest
                ));
            }
            let v = validators
                .iter()
                .find(|v| v.name == signed.signer)
                .ok_or(format!("'{}' is not a validator in force at height {}", signed.signer, st.height))?;
            st.check(&v.key, &signed.signature).map_err(|e| format!("the signature does not verify: {e}"))?;
            Ok(signed)
        })();
        match got {
            Ok(s) if out.iter().any(|o| o.signer == s.signer) => {
                eprintln!("warning: {url}: a second statement by {}: skipped", s.signer)
            }
            Ok(s) => {
                eprintln!("statement of {} from {url}", s.signer);
                out.push(s);
            }
            Err(e) => eprintln!("warning: {url}: {e}: skipped"),
        }
    }
    out
}

fn sign(a: &SignArgs) -> Result<ExitCode> {
    let (genesis, store) = load_data_dir(&a.data_dir)?;
    let key = credence_node::keyfile::read(&a.key).with_context(|| format!("--key: {}", a.key.display()))?;
    // The file's statement, from its own bytes.
    let f = fs::File::open(&a.file).with_context(|| format!("{}", a.file.display()))?;
    let (_, mut reader) = snapshot::open(BufReader::new(f), &genesis)?;
    for item in reader.by_ref() {
        item?;
    }
    let offset = reader.position();
    let header = reader.header.clone();
    let (digest, mut statements) = reader.finish()?;
    // This validator's own: computed from its own store, never taken from the file.
    let (own, _) = snapshot::state_statement(&store, &genesis)?;
    if own.height != header.height || own.block_hash != header.hash() {
        bail!(
            "--data-dir: this store's head is height {} (block {}), the snapshot's {} (block {}): sign from a \
             store stopped at the snapshot's height",
            own.height,
            own.block_hash,
            header.height,
            header.hash()
        );
    }
    if own.digest != digest {
        bail!(
            "REFUSED: this store's state at height {} has digest {}, the snapshot's is {digest}: not signed",
            own.height,
            own.digest
        );
    }
    let gov = store.governance()?.unwrap_or_else(|| genesis.governance());
    let epoch = gov.epoch_at(own.height).context("no validator set in force at the snapshot's height")?;
    let public = key.public();
    let Some((name, _)) = epoch.validators.iter().find(|(_, k)| *k == public) else {
        bail!("--key: not the key of a validator in force at height {}", own.height);
    };
    let name = name.to_string();
    statements.retain(|s| s.signer != name);
    statements.push(own.sign(&name, &key));
    write_statements_at(&a.file, offset, &statements)?;
    println!(
        "signed: {name} states digest {} of height {}; the file holds {} statements",
        own.digest,
        own.height,
        statements.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// Replaces the statements section (the file's last) at `offset`.
fn write_statements_at(path: &Path, offset: u64, statements: &[SignedStatement]) -> Result<()> {
    let mut f = fs::OpenOptions::new().write(true).open(path)?;
    f.set_len(offset)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut w = BufWriter::new(&mut f);
    snapshot::write_statements(&mut w, statements)?;
    w.flush()?;
    drop(w);
    f.sync_all()?;
    Ok(())
}

fn report(v: &Verified, bytes: u64) -> serde_json::Value {
    json!({
        "valid": true,
        "height": v.header.height,
        "block_hash": v.header.hash().to_string(),
        "tree_size": v.header.tree_size,
        "tree_root": v.header.tree_root.to_string(),
        "digest": v.statement.digest.to_string(),
        "records": v.counts.records,
        "pledges": v.counts.pledges,
        "facts": v.counts.facts,
        "sequences": v.counts.sequences,
        "signers": v.signers,
        "validators": v.validators,
        "bytes": bytes,
    })
}

fn verify(a: &VerifyArgs) -> Result<ExitCode> {
    let genesis = Genesis::load(&a.genesis).with_context(|| format!("--genesis: {}", a.genesis.display()))?;
    let started = Instant::now();
    match verify_file(&a.file, &genesis) {
        Ok(v) => {
            let bytes = fs::metadata(&a.file).map_or(0, |m| m.len());
            if a.json {
                println!("{}", report(&v, bytes));
            } else {
                println!(
                    "VALID: the state after height {} (tree size {}, root {}) has digest {}, stated by {} of {} \
                     validators in force ({}); {} records; verified in {:.1} s",
                    v.header.height,
                    v.header.tree_size,
                    v.header.tree_root,
                    v.statement.digest,
                    v.signers.len(),
                    v.validators,
                    v.signers.join(", "),
                    v.counts.records,
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if a.json {
                println!("{}", json!({"valid": false, "field": e.field, "rule": e.rule}));
            } else {
                println!("INVALID: {e}");
            }
            Ok(ExitCode::from(1))
        }
    }
}

fn restore_into(a: &RestoreArgs) -> Result<ExitCode> {
    let genesis = Genesis::load(&a.genesis).with_context(|| format!("--genesis: {}", a.genesis.display()))?;
    let store_path = a.data_dir.join(STORE_FILE);
    if store_path.exists() {
        bail!("--data-dir: {} exists; a snapshot is restored only into a new data directory", store_path.display());
    }
    fs::create_dir_all(&a.data_dir).with_context(|| format!("--data-dir: {}", a.data_dir.display()))?;
    let kept = a.data_dir.join(SNAPSHOT_FILE);
    let partial = kept.with_extension("partial");
    fs::copy(&a.file, &partial).with_context(|| format!("cannot copy the snapshot to {}", partial.display()))?;
    let started = Instant::now();
    let result = (|| -> Result<Verified> {
        let mut store = RedbStore::open(&store_path, &genesis)?;
        // From the copy kept in the data directory: the node re-verifies it on every start.
        Ok(restore(&partial, &genesis, &mut store)?)
    })();
    match result {
        Ok(v) => {
            fs::rename(&partial, &kept)?;
            if !a.data_dir.join(GENESIS_FILE).exists() {
                fs::write(a.data_dir.join(GENESIS_FILE), genesis.to_toml())?;
            }
            println!(
                "restored: {} starts at height {} (tree size {}, {} records), stated by {} of {} validators; \
                 in {:.1} s. Run `credence node` on it to sync forward; blocks below height {} are not held",
                a.data_dir.display(),
                v.header.height,
                v.header.tree_size,
                v.counts.records,
                v.signers.len(),
                v.validators,
                started.elapsed().as_secs_f64(),
                v.header.height
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let _ = fs::remove_file(&store_path);
            let _ = fs::remove_file(&partial);
            println!("REFUSED: {e:#}");
            Ok(ExitCode::from(1))
        }
    }
}
