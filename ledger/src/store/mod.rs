//! Storage: the small `Store` trait the ledger is kept behind, with a durable redb backend and an in-memory one.
//!
//! Invariant: a store holds a verified prefix of one chain. `commit` takes only
//! a [`ValidBlock`] for the next height, and writes the block, its certificate,
//! its Merkle nodes, every index and the state change in one atomic transaction.

mod id_runs;
mod memory;
mod redb_store;

pub use id_runs::{COMPACT_OPS_PER_COMMIT_MAX, FILTER_BITS_PER_ENTRY, RUNS_FANIN};
pub use memory::MemStore;
#[cfg(test)]
pub(crate) use redb_store::testing as redb_testing;
pub use redb_store::{FORMAT_ALL_MERKLE_LEVELS, FORMAT_LEGACY_IDS, FORMAT_VERSION, RedbOptions, RedbStore};
pub(crate) use redb_store::{META_BYTES, decode_meta, encode_meta};

use crate::attestation::AttestationId;
use crate::block::{BlockHash, BlockHeader, CertifiedBlock, Leaf, ValidBlock};
use crate::checkpoint::Checkpoint;
use crate::hash::Hash;
use crate::ids::{PatentNumber, Uscc};
use crate::loan_rules::FactKey;
use crate::merkle::NodeReader;
use crate::rules::StateView;
use crate::snapshot::{Base, Item, SnapshotError};

/// Most leaf indexes one index query returns.
pub const QUERY_LIMIT_MAX: usize = 1000;

/// Most leaves [`for_each_leaf`] reads in one range read.
pub const LEAVES_PER_READ_MAX: usize = 1000;

/// Calls `f` with the index and the decoded leaf of every leaf `from .. to` of `store`, in
/// order, reading them in ranges of at most [`LEAVES_PER_READ_MAX`] ([`Store::leaf_bytes`]:
/// one read each, where [`Store::leaf`] opens a read per leaf). For passes over the whole
/// ledger, such as the portfolio's.
pub fn for_each_leaf(
    store: &(impl Store + ?Sized),
    from: u64,
    to: u64,
    mut f: impl FnMut(u64, Leaf),
) -> Result<(), StoreError> {
    let mut bytes = Vec::with_capacity(LEAVES_PER_READ_MAX);
    let mut start = from;
    while start < to {
        let count = (to - start).min(LEAVES_PER_READ_MAX as u64) as usize;
        bytes.clear();
        store.leaf_bytes(start, count, &mut bytes)?;
        for (i, b) in (start..).zip(bytes.drain(..)) {
            let leaf = Leaf::from_bytes(b)
                .map_err(|e| StoreError::Corrupt { place: format!("table leaves, key {i}"), reason: e.to_string() })?;
            f(i, leaf);
        }
        start += count as u64;
    }
    Ok(())
}

/// The last committed block, as a store knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub height: u64,
    pub hash: BlockHash,
    pub time_ms: u64,
    pub tree_size: u64,
    pub tree_root: Hash,
}

/// Where a committed attestation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub height: u64,
    pub leaf_index: u64,
}

/// A secondary index over leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexKey<'a> {
    Enterprise(&'a Uscc),
    Patent(&'a PatentNumber),
    /// Member index in genesis order.
    Attester(u16),
    /// Records that name this record (`Claim::references`): a loan's events and pool
    /// records, a pledge's registration, release, disposal and loan.
    Refers(&'a AttestationId),
    /// The consent records of an enterprise (`Claim::Consent`), so that a restricted read
    /// finds its consent without reading the enterprise's other records.
    Consents(&'a Uscc),
    /// The query records (`Claim::Query`) whose reader is this member (member index, as
    /// [`IndexKey::Attester`]), so that a regulator lists one member's reads.
    Reader(u16),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Backend(String),
    #[error("store: corrupt data at {place}: {reason}")]
    Corrupt { place: String, reason: String },
    #[error("store: was created for genesis {stored}, not {given}")]
    WrongGenesis { stored: Hash, given: Hash },
    #[error("store: block {got} is not the next height (head is {head})")]
    NotNext { head: u64, got: u64 },
    #[error("store: block {height}'s prev does not match the stored head")]
    BrokenLink { height: u64 },
    /// A read below the height a store was started at from a snapshot ([`Store::import_snapshot`]).
    #[error("{what}: not held: this node started from a snapshot at height {base}")]
    NotHeld { what: String, base: u64 },
    /// A snapshot could not be imported (nothing was written).
    #[error("store: snapshot import: {0}")]
    Import(String),
}

/// What [`Store::for_each_fact`] calls with each fact: its key's hash and its encoding.
pub type FactVisitor<'a> = dyn FnMut(&[u8; 32], &[u8]) -> Result<(), StoreError> + 'a;

/// Where a store that started from a snapshot starts: the snapshot's height and tree size.
/// It holds the header and certificate of `height`, the Merkle frontier of `tree_size`
/// leaves and the whole state, but no block, leaf or Merkle node below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BaseAt {
    pub height: u64,
    pub tree_size: u64,
}

impl BaseAt {
    /// The error for a read of `what` below the base.
    pub fn not_held(&self, what: impl Into<String>) -> StoreError {
        StoreError::NotHeld { what: what.into(), base: self.height }
    }
}

/// The key of an IP-loan fact in a store's `facts` table and in a snapshot: the SHA-256
/// of its canonical encoding.
pub fn fact_key_hash(key: &FactKey) -> [u8; 32] {
    Hash::digest(&[&crate::codec::encode(key)]).0
}

/// The ledger's storage. Reads see only committed blocks.
pub trait Store: StateView<Error = StoreError> + NodeReader {
    /// The genesis hash this store was created for.
    fn genesis_hash(&self) -> Hash;
    fn head(&self) -> Result<Option<Head>, StoreError>;
    /// Writes `block` and everything derived from it atomically and durably.
    fn commit(&mut self, block: &ValidBlock) -> Result<(), StoreError>;
    /// Writes `block` like [`Store::commit`], atomically and visible to reads at once, but
    /// durable only at the next [`Store::flush`] (or durable commit): a crash before then
    /// loses it together with the other deferred commits since the last durable point, and
    /// the store reopens at that earlier block boundary, consistent. Sync commits a run of
    /// fetched blocks this way and flushes once, so a run costs one fsync, not one per block.
    /// The default is [`Store::commit`].
    fn commit_deferred(&mut self, block: &ValidBlock) -> Result<(), StoreError> {
        self.commit(block)
    }
    /// Makes every deferred commit durable. Nothing to do when there is none.
    fn flush(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    fn header(&self, height: u64) -> Result<Option<BlockHeader>, StoreError>;
    fn certificate(&self, height: u64) -> Result<Option<Checkpoint>, StoreError>;
    fn block(&self, height: u64) -> Result<Option<CertifiedBlock>, StoreError>;
    fn leaf(&self, index: u64) -> Result<Option<Leaf>, StoreError>;
    fn locate(&self, id: &AttestationId) -> Result<Option<Location>, StoreError>;
    /// Appends the ids of leaves `start .. start + count` to `out`, in order. Every one must
    /// be stored (or, below a snapshot base, imported). The default hashes the leaves' bodies.
    fn leaf_ids(&self, start: u64, count: usize, out: &mut Vec<AttestationId>) -> Result<(), StoreError> {
        let mut bytes = Vec::with_capacity(count);
        self.leaf_bytes(start, count, &mut bytes)?;
        out.extend(bytes.iter().map(|b| crate::block::leaf_id(b)));
        Ok(())
    }
    /// Calls `f` with every IP-loan fact as ([`fact_key_hash`] of its key, its canonical
    /// encoding), ascending by the key hash; stops at the first error.
    fn for_each_fact(&self, f: &mut FactVisitor<'_>) -> Result<(), StoreError>;
    /// The snapshot this store started from, if it did.
    fn base(&self) -> Option<BaseAt> {
        None
    }
    /// A read-only store that keeps the state of now while this one goes on committing (so a
    /// long read, such as a snapshot digest, holds no lock a commit waits for), if the
    /// backend can make one cheaply; `None` otherwise.
    fn read_view(&self) -> Result<Option<Box<dyn Store + Send + Sync>>, StoreError> {
        Ok(None)
    }
    /// Imports the state of a verified snapshot into this store, which must be empty: one
    /// atomic write; an error from `items` (or any other) leaves the store empty. Afterwards
    /// the head is the snapshot's block, the rules read the imported state, commits continue
    /// at the next height, and reads below the base answer [`StoreError::NotHeld`].
    fn import_snapshot(
        &mut self,
        base: &Base,
        items: &mut dyn Iterator<Item = Result<Item, SnapshotError>>,
    ) -> Result<(), StoreError>;
    /// Leaf indexes under `key`, ascending, strictly after `after`, at most `limit` (≤ [`QUERY_LIMIT_MAX`]).
    fn query(&self, key: IndexKey<'_>, after: Option<u64>, limit: usize) -> Result<Vec<u64>, StoreError>;
    /// Appends the canonical bytes of leaves `start .. start + count` to `out`, in order (a
    /// C2SP tlog-tiles entry bundle). Every one must be stored. The default reads them one by
    /// one; a store overrides it with one range read that does not decode them.
    fn leaf_bytes(&self, start: u64, count: usize, out: &mut Vec<Vec<u8>>) -> Result<(), StoreError> {
        for i in 0..count as u64 {
            let index = start.saturating_add(i);
            match self.leaf(index)? {
                Some(l) => out.push(l.bytes),
                None => {
                    return Err(StoreError::Corrupt { place: format!("leaves[{index}]"), reason: "missing".into() });
                }
            }
        }
        Ok(())
    }
}

/// The message of a caught panic.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}
