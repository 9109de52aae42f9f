//! Snapshot files for nodes and the CLI: the validator-set changes a snapshot carries (as
//! proof bundles carry them), their walk from genesis to the set in force at the snapshot's
//! height, verifying and restoring a file, and re-verifying a store that started from one.
//!
//! The format, the digest and the statements are in `credence_ledger::snapshot`; the trust
//! argument is in docs/AUDITING.md §Snapshots.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use credence_ledger::checkpoint::VerifierKey;
use credence_ledger::genesis::Genesis;
use credence_ledger::snapshot::{self, SnapshotError, Verified};
use credence_ledger::store::{MemStore, Store};
use credence_ledger::verify::{self, ChainContext, Tip};

use crate::bundle::{self, SetChange};

/// The copy of the snapshot a store started from, kept in the data directory: startup
/// re-verification starts from it.
pub const SNAPSHOT_FILE: &str = "snapshot.credsnap";

/// Bytes of the buffer a snapshot file is read through.
const READ_BUFFER_BYTES: usize = 1 << 20;

fn err(field: impl Into<String>, rule: impl Into<String>) -> SnapshotError {
    SnapshotError { field: field.into(), rule: rule.into() }
}

/// The validator-set changes from genesis to the head of `store`, each the JSON of a proof
/// bundle's set change (`bundle::SetChange`).
pub fn set_changes<S: Store + ?Sized>(store: &S, genesis: &Genesis) -> Result<Vec<Vec<u8>>, SnapshotError> {
    let head = store.head().map_err(|e| err("store", e.to_string()))?.map_or(0, |h| h.height);
    let gov = store.governance().map_err(|e| err("store", e.to_string()))?.unwrap_or_else(|| genesis.governance());
    let changes = bundle::set_changes_from(store, &gov.epochs, head).map_err(|e| err("set_changes", e.to_string()))?;
    changes.iter().map(|c| serde_json::to_vec(c).map_err(|e| err("set_changes", e.to_string()))).collect()
}

/// Walks a snapshot's set changes from `genesis` (`bundle::walk_set_changes`) and returns the
/// validator set in force at `height`.
pub fn set_in_force(genesis: &Genesis, changes: &[Vec<u8>], height: u64) -> Result<Vec<VerifierKey>, SnapshotError> {
    let parsed = changes
        .iter()
        .enumerate()
        .map(|(i, b)| {
            serde_json::from_slice::<SetChange>(b).map_err(|e| err(format!("set_changes[{i}]"), e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let set = bundle::walk_set_changes(genesis, &parsed).map_err(|e| err(e.field, e.rule))?;
    if set.from_height > height {
        return Err(err(
            "set_changes",
            format!("a change takes effect at height {}, after the snapshot's height {height}", set.from_height),
        ));
    }
    Ok(set.validators)
}

fn open_file(path: &Path) -> Result<BufReader<File>, SnapshotError> {
    let f = File::open(path).map_err(|e| err("file", format!("{}: {e}", path.display())))?;
    Ok(BufReader::with_capacity(READ_BUFFER_BYTES, f))
}

/// Verifies the snapshot file at `path` against `genesis` (`credence snapshot verify`).
pub fn verify_file(path: &Path, genesis: &Genesis) -> Result<Verified, SnapshotError> {
    snapshot::verify(open_file(path)?, genesis, |c, h| set_in_force(genesis, c, h), |_| Ok(()))
}

/// Verifies the file at `path`, then imports it into `store` (which must be empty), reading
/// it a second time: the import is refused, and nothing written, if the state read then is
/// not the one verified.
pub fn restore(path: &Path, genesis: &Genesis, store: &mut dyn Store) -> Result<Verified, SnapshotError> {
    let v = verify_file(path, genesis)?;
    let (prefix, mut reader) = snapshot::open(open_file(path)?, genesis)?;
    reader.expect_digest(v.statement.digest);
    if reader.header != v.header {
        return Err(err("header", "the file changed since it was verified"));
    }
    let base = reader.base(prefix.certificate);
    store.import_snapshot(&base, &mut reader).map_err(|e| err("store", e.to_string()))?;
    Ok(v)
}

/// What [`verify_from_base`] checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FromBase {
    pub base: u64,
    pub blocks: u64,
    pub attestations: u64,
}

/// Startup re-verification of a store that started from a snapshot: the kept snapshot
/// (`data_dir/SNAPSHOT_FILE`) is verified again and imported into memory, its header must be
/// the store's base header, then every stored block after the base is verified on that
/// state (certificate against the set in force, signatures, roots, rules) and must end at the
/// store's head. Memory: the snapshot's state, as a full re-verification holds the chain's.
pub fn verify_from_base<S: Store + ?Sized>(ctx: &ChainContext, store: &S, data_dir: &Path) -> Result<FromBase, String> {
    let Some(base) = store.base() else { return Err("the store did not start from a snapshot".into()) };
    let path = data_dir.join(SNAPSHOT_FILE);
    let mut mem = MemStore::new(&ctx.genesis);
    let v = restore(&path, &ctx.genesis, &mut mem).map_err(|e| format!("{}: {e}", path.display()))?;
    let stored = store.header(base.height).map_err(|e| e.to_string())?;
    if stored.as_ref() != Some(&v.header) {
        return Err(format!("{}: is not of the store's base block {}", path.display(), base.height));
    }
    let head = store.head().map_err(|e| e.to_string())?.map_or(0, |h| h.height);
    let mut attestations = 0u64;
    for h in base.height + 1..=head {
        let cb = store.block(h).map_err(|e| format!("block {h}: {e}"))?.ok_or(format!("block {h}: missing"))?;
        attestations += cb.block.leaves.len() as u64;
        let head = mem.head().map_err(|e| e.to_string())?.ok_or("no head after the import")?;
        let frontier = credence_ledger::merkle::Frontier::from_reader(head.tree_size, &mem)
            .map_err(|e| format!("block {h}: {e}"))?;
        let tip = Tip { height: head.height, hash: head.hash, time_ms: head.time_ms, frontier };
        let vb = verify::verify_block(ctx, &tip, &mem, cb).map_err(|e| format!("block {h}: {e}"))?;
        mem.commit(&vb).map_err(|e| format!("block {h}: {e}"))?;
    }
    if mem.head().map_err(|e| e.to_string())? != store.head().map_err(|e| e.to_string())? {
        return Err("the re-verified chain does not end at the store's head".into());
    }
    Ok(FromBase { base: base.height, blocks: head - base.height, attestations })
}
