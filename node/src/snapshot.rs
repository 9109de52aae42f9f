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

use tracing::debug;

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

// ---------------------------------------------------------------------------------------------
// A validator's statements, computed beside the running node
// ---------------------------------------------------------------------------------------------

/// Most statements a node keeps and serves: those of the newest heights.
pub const STATEMENTS_KEPT_MAX: usize = 16;
/// Most snapshot files a node keeps in `DATA/snapshots/` (the newest).
pub const SNAPSHOT_FILES_KEPT_MAX: usize = 2;
/// The directory under the data directory where a validator writes its snapshots.
pub const SNAPSHOTS_DIR: &str = "snapshots";

/// The file a node writes the snapshot of `height` to, in `dir` (`DATA/snapshots`).
pub fn snapshot_path(dir: &Path, height: u64) -> std::path::PathBuf {
    dir.join(format!("{height}.credsnap"))
}

/// A validator's signed snapshot statement as `GET /v1/snapshots/{height}/statement` serves it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatementView {
    /// The height whose state the digest is of.
    pub height: u64,
    /// The hash of block `height` (hex).
    pub block_hash: String,
    /// The state digest (hex; docs/encoding.md §14.1).
    pub digest: String,
    /// The validator's member name.
    pub signer: String,
    /// Its Ed25519 signature on the statement (standard padded base64; docs/encoding.md §14.2).
    pub signature: String,
}

impl StatementView {
    /// The signed statement this view carries, for the chain of `genesis`; an error names
    /// the field that does not parse (the view may come from any node).
    pub fn signed(&self, genesis: &Genesis) -> Result<(snapshot::Statement, snapshot::SignedStatement), SnapshotError> {
        use base64::Engine as _;
        let hash = |field: &'static str, s: &str| {
            credence_ledger::hash::Hash::from_hex(field, s).map_err(|e| err(field, e.to_string()))
        };
        let block_hash = credence_ledger::hash::HashOf::from_hash(hash("block_hash", &self.block_hash)?);
        let digest = hash("digest", &self.digest)?;
        let sig = base64::engine::general_purpose::STANDARD
            .decode(&self.signature)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .ok_or_else(|| err("signature", "not 64 bytes of standard padded base64"))?;
        credence_ledger::checkpoint::check_key_name(&self.signer).map_err(|r| err("signer", r))?;
        let st = snapshot::Statement { genesis: genesis.hash(), height: self.height, block_hash, digest };
        let signed =
            snapshot::SignedStatement { signer: self.signer.clone(), signature: credence_ledger::sig::Signature(sig) };
        Ok((st, signed))
    }
}

/// The statements a validator node computes at every `interval` heights: each from a read
/// view of the store taken at the commit (`Store::read_view`: the driver only copies the
/// staged index entries), in a blocking task, one at a time (a height that comes while
/// one is being computed is skipped), signed with the node's key if it is a validator's in
/// force at the height. The newest [`STATEMENTS_KEPT_MAX`] are kept, in memory. The state is
/// written as an unsigned snapshot file to `dir` on the way (the newest
/// [`SNAPSHOT_FILES_KEPT_MAX`] kept), so `credence snapshot create --height` can take it while
/// the node runs and add the validators' statements.
pub struct Statements {
    interval: u64,
    dir: std::path::PathBuf,
    genesis: Genesis,
    key: credence_ledger::sig::SecretKey,
    busy: std::sync::atomic::AtomicBool,
    kept: std::sync::Mutex<std::collections::BTreeMap<u64, StatementView>>,
}

impl std::fmt::Debug for Statements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Statements").field("interval", &self.interval).finish_non_exhaustive()
    }
}

impl Statements {
    pub fn new(
        interval: u64,
        dir: std::path::PathBuf,
        genesis: Genesis,
        key: credence_ledger::sig::SecretKey,
    ) -> Statements {
        Statements {
            interval,
            dir,
            genesis,
            key,
            busy: std::sync::atomic::AtomicBool::new(false),
            kept: std::sync::Mutex::new(std::collections::BTreeMap::new()),
        }
    }

    /// Every how many heights a statement is made (0: never).
    pub fn interval(&self) -> u64 {
        self.interval
    }

    /// Whether the commit of `height` calls for a statement (and none is being computed).
    pub fn due(&self, height: u64) -> bool {
        self.interval > 0
            && height.is_multiple_of(self.interval)
            && !self.busy.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The statement of `height`, if this node made it and still keeps it.
    pub fn get(&self, height: u64) -> Option<StatementView> {
        self.kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&height).cloned()
    }

    /// Computes, signs and keeps the statement of `view`'s head (to be run on a blocking
    /// thread). Returns it, or why there is none.
    pub fn compute(&self, view: &dyn Store) -> Result<StatementView, String> {
        use std::sync::atomic::Ordering;
        if self.busy.swap(true, Ordering::AcqRel) {
            return Err("a statement is being computed".into());
        }
        let made = self.compute_inner(view);
        self.busy.store(false, Ordering::Release);
        let v = made?;
        let mut kept = self.kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        kept.insert(v.height, v.clone());
        while kept.len() > STATEMENTS_KEPT_MAX {
            kept.pop_first();
        }
        Ok(v)
    }

    fn compute_inner(&self, view: &dyn Store) -> Result<StatementView, String> {
        use base64::Engine as _;
        let gov = view.governance().map_err(|e| e.to_string())?.unwrap_or_else(|| self.genesis.governance());
        let height = view.head().map_err(|e| e.to_string())?.map_or(0, |h| h.height);
        let public = self.key.public();
        let name = gov
            .epoch_at(height)
            .and_then(|e| e.validators.iter().find(|(_, k)| *k == public))
            .map(|(n, _)| n.to_string())
            .ok_or_else(|| format!("this node's key is no validator's in force at height {height}"))?;
        let st = match set_changes(view, &self.genesis) {
            Ok(changes) => self.write(view, &changes, height)?,
            // A store that started from a snapshot may not hold the blocks of earlier set
            // changes: then only the statement.
            Err(e) => {
                debug!(height, error = %e, "snapshot file not written");
                snapshot::state_statement(view, &self.genesis).map_err(|e| e.to_string())?.0
            }
        };
        let signed = st.sign(&name, &self.key);
        Ok(StatementView {
            height: st.height,
            block_hash: st.block_hash.to_string(),
            digest: st.digest.to_string(),
            signer: name,
            signature: base64::engine::general_purpose::STANDARD.encode(signed.signature.0),
        })
    }

    /// Writes the unsigned snapshot of `view` to `dir/<height>.credsnap` (a temporary name,
    /// fsync, rename), drops all but the newest [`SNAPSHOT_FILES_KEPT_MAX`], and returns its
    /// statement.
    fn write(&self, view: &dyn Store, changes: &[Vec<u8>], height: u64) -> Result<snapshot::Statement, String> {
        use std::io::Write as _;
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let path = snapshot_path(&self.dir, height);
        let tmp = path.with_extension("partial");
        let io = |e: std::io::Error| format!("{}: {e}", tmp.display());
        let f = File::create(&tmp).map_err(io)?;
        let mut w = std::io::BufWriter::new(f);
        let (st, _) = snapshot::write_file(view, &self.genesis, changes, &[], &mut w).map_err(|e| e.to_string())?;
        w.flush().map_err(io)?;
        w.into_inner().map_err(|e| e.to_string())?.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        let mut heights: Vec<u64> = std::fs::read_dir(&self.dir)
            .map_err(|e| format!("{}: {e}", self.dir.display()))?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".credsnap")?.parse().ok())
            .collect();
        heights.sort_unstable();
        let old = heights.len().saturating_sub(SNAPSHOT_FILES_KEPT_MAX);
        for h in &heights[..old] {
            let _ = std::fs::remove_file(snapshot_path(&self.dir, *h));
        }
        Ok(st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use credence_ledger::demo::{self, ChainBuilder};

    /// A snapshot after a validator's key rotation: the verifier reaches the set in force
    /// through the file's set change, the statements of the validators whose keys did not
    /// change are a quorum of it; without the set change the header's set is not reached.
    #[test]
    fn a_snapshot_after_a_set_change_verifies_through_the_walk() {
        const SEED: u64 = 3;
        let mut b = ChainBuilder::new(SEED, 1_700_000_000_000).unwrap();
        b.rotate_validator_keys(1, 2);
        let mut store = MemStore::new(b.genesis());
        for _ in 0..8 {
            store.commit(&b.next_block(5).unwrap()).unwrap();
        }
        let g = b.genesis().clone();
        let changes = set_changes(&store, &g).unwrap();
        assert_eq!(changes.len(), 1);
        let (st, _) = snapshot::state_statement(&store, &g).unwrap();
        let validators = set_in_force(&g, &changes, st.height).unwrap();
        assert_ne!(validators, g.verifier_keys(), "the set changed");
        let signed: Vec<_> = validators
            .iter()
            .filter(|v| v.key == demo::member_key(SEED, &v.name).public())
            .map(|v| st.sign(&v.name, &demo::member_key(SEED, &v.name)))
            .collect();
        assert_eq!(signed.len(), validators.len() - 1);
        let check = |file: &[u8]| snapshot::verify(file, &g, |c, h| set_in_force(&g, c, h), |_| Ok(()));
        let mut file = Vec::new();
        snapshot::write_file(&store, &g, &changes, &signed, &mut file).unwrap();
        assert_eq!(check(&file).unwrap().signers.len(), signed.len());
        let mut bare = Vec::new();
        snapshot::write_file(&store, &g, &[], &signed, &mut bare).unwrap();
        assert_eq!(check(&bare).unwrap_err().field, "header.validator_set");
        // A rotated-out key's statement is not a validator's in force.
        let rotated = g.verifier_keys().into_iter().find(|k| !validators.contains(k)).unwrap();
        let mut stale = signed.clone();
        stale.push(st.sign(&rotated.name, &demo::member_key(SEED, &rotated.name)));
        let mut file = Vec::new();
        snapshot::write_file(&store, &g, &changes, &stale, &mut file).unwrap();
        assert_eq!(check(&file).unwrap_err().field, format!("statements[{}].signature", signed.len()));
    }
}
