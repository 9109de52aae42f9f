//! The durable store: one redb file, one fsynced write transaction per committed block.
//!
//! # Tables
//!
//! Integer keys are redb `u64`/`u16` keys (compared numerically); composite keys are
//! fixed-width byte arrays with big-endian integers, so byte order is key order and
//! one key's entries are adjacent.
//!
//! | table                 | key                                  | value                                      |
//! |-----------------------|--------------------------------------|--------------------------------------------|
//! | `meta`                | `"genesis"`                          | genesis hash (32)                          |
//! |                       | `"format"`                           | format version, u32 BE                     |
//! |                       | `"head"`                             | [`Head`]: height, hash, time, size, root (88) |
//! |                       | `"merged"`                           | height, tree size the index tables cover (16) |
//! |                       | `"frozen"` (only during a merge)     | frozen blocks' last height, tree size, ops applied (24) |
//! |                       | `"base"` (only if started from a snapshot) | the snapshot's height, tree size (16)  |
//! |                       | `"id_runs"` (format 2)               | the id runs' catalog (`id_runs.rs`)        |
//! | `headers`             | height u64                           | canonical header bytes                     |
//! | `certs`               | height u64                           | the certificate's signed note              |
//! | `block_by_first_leaf` | first leaf index u64 (non-empty blocks) | height u64                              |
//! | `leaves`              | leaf index u64                       | canonical attestation bytes                |
//! | `merkle`              | level u8 ‖ index u64 BE (levels 8, 16, 24, …; any level for a snapshot base's frontier) | node hash (32) |
//! | `base_ids`            | leaf index u64 (below a snapshot base) | the record's id (32)                     |
//! | `sequences`           | member index u16                     | next sequence u64                          |
//! | `staged_deltas`       | height u64 (blocks after `merged`)   | the block's record and pledge changes      |
//! | `id_runs` (format 2)  | run u32 BE ‖ id\[..8\] ‖ leaf index u64 BE (20) | [`RecordMeta`] (20): see `id_runs.rs` |
//! | `ids`                 | id\[..8\] ‖ leaf index u64 BE (16)   | [`RecordMeta`] (20): format 1's ids, read-only since |
//! | `index_enterprise`    | USCC (18) ‖ leaf index u64 BE        | ()                                         |
//! | `index_patent`        | patent (13) ‖ leaf index u64 BE      | ()                                         |
//! | `index_attester`      | member index u16 BE ‖ leaf index u64 BE | ()                                      |
//! | `pledges`             | patent (13)                          | id of its active pledge (32)               |
//! | `facts`               | SHA-256 of the encoded `FactKey` (32) | the encoded `Fact` (IP-loan state)        |
//! | `index_refs`          | referenced id (32) ‖ leaf index u64 BE | () (`Claim::references`)                |
//! | `index_consents`      | USCC (18) ‖ leaf index u64 BE        | () (the enterprise's consent records)      |
//! | `index_queries_by_reader` | reader's member index u16 BE ‖ leaf index u64 BE | () (query records by reader) |
//! | `governance`          | height u64 (blocks that changed it)  | the governance state after that block (bincode) |
//!
//! The `governance` table exists only once a block changed governance, so a store of a
//! chain without governance records has exactly the tables it had before them. The
//! newest entry is held in memory.
//!
//! # Merkle nodes kept
//!
//! `merkle` keeps the complete subtrees of the levels that are multiples of 8 above 0 only
//! (since format 3): exactly the tree levels C2SP tlog-tiles serve (tile level `L` holds tree
//! level `8L`; tile level 0 is the leaves' hashes), so a hash tile is one range read. A node
//! of level `l` with `l % 8 != 0` is computed when read from the `2^(l % 8)` nodes of level
//! `8 × ⌊l / 8⌋` under it: level 0 by one range read of `leaves` (each hashed), a higher one by
//! one range read of `merkle`, then `l % 8` rounds of RFC 9162 interior hashes. A block then
//! inserts one node per 255 leaves instead of one per leaf: before, these inserts and the
//! leaf inserts were about 20 % of a commit's CPU and the node pages about 12 % of the bytes
//! a commit wrote (`credence bench store`, 1,000,000 records). Reads pay instead: a node of
//! level 7 hashes 128 leaves, and an inclusion proof hashes up to the other 255 leaves of its
//! leaf's level-8 subtree (its siblings of levels 0 to 7 cover them) and up to 255 nodes at
//! each kept level above, where it read about 20 stored nodes before. Measured on the 2-core
//! reference VM at 1,000,000 records (shared, so the rates are noisy): the store takes 541
//! bytes per record instead of 570; `credence bench audit`'s inclusion proof over HTTP (with
//! the root it is checked against) takes p50 0.45 ms, p99 0.6 to 0.8 ms, instead of 0.13 and
//! 0.25 ms. [`NodeReader::nodes`] stays one range read (plus the hashing) for any level.
//! `open`'s root check now hashes the leaves after the last level-8 node (fewer than 256),
//! so a damaged leaf there is refused at open.
//!
//! Below a snapshot base the leaves are not held, so the base's frontier (the complete
//! subtrees that tile its leaves, one per set bit of its size) is kept at whatever level it
//! is; a node of another level that starts below the base and ends above it is computed
//! from its two children, down to the frontier node on its left. `open` checks that the
//! table holds exactly these nodes of the head's tree and that they give its root.
//!
//! A format-2 store (every level above 0) is migrated on open: the table is rewritten with
//! the nodes format 3 keeps (the kept levels and the base's frontier), and the format set to
//! 3, in one transaction (a format-1 store gets this in its own migration's transaction;
//! 0.5 s for 1,000,000 records). A binary of format 2 refuses a format-3 store (its format
//! check names the version). redb keeps the freed pages for later commits: the file does not
//! shrink.
//!
//! # Staged indexes
//!
//! `ids`, the secondary indexes, `pledges` and `facts` are keyed by hashes or by
//! identifiers that arrive in random order. Inserting a block's 1,000 entries into a
//! large B-tree touches about 1,000 leaf pages, each copied, written and fsynced; on
//! the 2-core reference VM (fsync about 2 ms; 1,000 scattered 4 KiB writes and an
//! fsync about 50 ms) writing them at every commit gave 60,000 attestations/s at
//! 200,000 records and 36,000/s at 1,000,000. So these tables hold the chain only up
//! to the `merged` point. For later blocks (up to twice [`RedbOptions::stage_leaves_max`]
//! leaves: see "Incremental merges"), the index entries are derived from the `leaves` table and the record and
//! pledge changes are logged per block in `staged_deltas` (a sequential append);
//! both are held in memory and consulted first by every read. Merging them sorted into
//! the index tables makes the random writes of tens of blocks share pages (about
//! 100,000 attestations/s at 1,000,000 records). Opening a store rebuilds the staged
//! part by decoding at most twice the limit of leaves.
//!
//! # Incremental merges
//!
//! Merging 65,536 staged leaves in one transaction took 0.5 to 1.5 s at 1,000,000
//! records, and the consensus driver stalled for that long. So the staged blocks form
//! two generations:
//!
//! - **active**: the newest blocks, staged as above;
//! - **frozen**: the blocks after `merged` being merged, at most one generation.
//!
//! When a commit brings the active generation to the limit and nothing is frozen, it
//! becomes the frozen one, and its merge operations are computed once: the `ids`
//! inserts and changes, the `pledges` and `facts` changes and each index table's
//! inserts, every table's sorted by key and the tables in a fixed order. The list is a
//! pure function of the generation's `staged_deltas` and leaves, so it is never
//! stored. From then on every commit applies the next slice of the list in its own
//! transaction and records the cursor in `meta` (`"frozen"`: the generation's last
//! height and tree size and the ops applied) in that transaction, so a crash leaves a
//! cursor that matches the tables. The commit that applies the last op deletes the
//! generation's `staged_deltas` rows, moves `merged` and removes the cursor. Each op
//! is an insert or removal with a final value, so a slice is never half-applied in a
//! way a later read could see: the frozen generation answers for all of its keys
//! until the merge is done.
//!
//! The commit that freezes a generation only builds its list (a few sorts of at most
//! a generation's entries); the following commits apply slices. A slice is sized to
//! finish the merge when the active generation is two-thirds full: a block of `n`
//! leaves applies `1.5 × n / stage_leaves_max` of the list, at least 256 ops (so blocks
//! of few leaves move it on) and at most [`RedbOptions::merge_ops_per_commit_max`]
//! ([`MERGE_OPS_PER_COMMIT_MAX`] by default). The slices of a sorted list are
//! contiguous key ranges, so they touch about the pages the one big merge touched,
//! spread over many commits. If the active
//! generation nevertheless fills while the frozen one is unfinished (blocks larger
//! than the pace assumes, or a small `merge_ops_per_commit_max`), that commit finishes
//! the frozen generation whatever is left of it, then freezes the active one: bounded
//! by one generation's ops, and rare with the defaults (a generation has about 3.3 ops
//! per leaf, so blocks of 1,000 leaves need slices of about 5,000 ops, below the
//! maximum). A limit of 0 freezes and merges every block in its own commit.
//!
//! Reads: a point lookup (record metadata, active pledge, fact, an id's leaf) asks the
//! active generation, then the frozen one (its values are at least as new as the
//! tables'), then the tables. An index query reads the tables only below the merge
//! point, then the frozen generation, then the active one: leaves are ordered that way,
//! and the frozen generation holds all of its entries, including those a slice has
//! already written to the tables, so no leaf is listed twice.
//!
//! `open` rebuilds the frozen generation from the cursor's range and the active one
//! from the blocks after it, recomputes the frozen list and resumes at the cursor; it
//! checks that the cursor lies inside the list and that `ids` and `index_attester` hold
//! exactly the merged leaves plus what the applied ops inserted (since format 2: `id_runs`
//! holds for the run being built exactly the entries the applied `ids` ops wrote). A store
//! written before incremental merges has no cursor and opens unchanged.
//! Going back to an older binary is supported only between merges: it does not know the
//! cursor, and usually refuses a store left mid-merge (its `ids` count check fails). A binary
//! of format 1 refuses a format-2 store (its format check names the version).
//!
//! Record ids are keyed by their first 8 bytes and the leaf index, which keeps entries
//! small (36 bytes instead of 60); ids sharing a prefix (which a member can produce on
//! purpose with about 2^32 work) are told apart by hashing the candidate leaves.
//!
//! Beyond about 5 million attestations a single `ids` table had more pages than a merge
//! had entries, and merges approached one random page write per entry again, so a slice's
//! time grew with the store (docs/BENCHMARKS.md §Ten million records). Since format 2 the
//! `ids` ops write a new **id run** instead (`id_runs.rs`): the generation's sorted entries
//! under a new run number, appended at the right edge of the `id_runs` tree; runs are merged
//! in bounded slices of sequential reads and appends ([`RedbOptions::compact_ops_per_commit_max`]),
//! and each run has an in-memory filter so that a lookup of an absent id rarely reads a page.
//! A format-1 store is migrated on open (its `ids` table becomes the oldest, read-only run;
//! a merge left under way is finished first, in the same transaction).
//!
//! # A store started from a snapshot
//!
//! [`Store::import_snapshot`] writes a verified snapshot's state into a new store in one
//! transaction: the header and certificate of the base height, the Merkle frontier of its
//! tree in `merkle` (at every level, with its level-0 node, if any, since the leaves below are
//! not held: see "Merkle nodes kept"), every
//! record's id in `base_ids` and its metadata in `ids` (as the oldest id run, the legacy one,
//! never written again: `id_runs.rs`), the sequences, pledges, facts and
//! governance state, and `meta` `"base"`, `"head"` and `"merged"` at the base. Blocks,
//! leaves, Merkle nodes and secondary index entries below the base are not held: reads of
//! them answer [`StoreError::NotHeld`]; the secondary indexes list only leaves from the
//! base on. Commits continue at the next height with the same roots as a full store's
//! (proofs of later leaves read only the frontier below the base). `open` checks the tables
//! against the base as it checks them against genesis otherwise.
//!
//! # Durability and recovery
//!
//! Every commit is one redb write transaction with `Durability::Immediate`: it is on
//! disk when `commit` returns, and a crash leaves the store at a block boundary. A
//! new store is initialised under a temporary name and renamed into place. `open`
//! checks that the tables agree with the recorded head (header, certificate, leaf
//! count, the Merkle nodes kept and the root, merge point) and reports any disagreement as
//! [`StoreError::Corrupt`] naming the table and key. After an unclean stop redb
//! re-checks the whole file on open (1.1 s for 1,000,000 attestations, 570 MB);
//! redb's quick-repair mode would shorten that at a cost on every commit.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash as StdHash;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table,
    TableDefinition, WriteTransaction,
};

use super::id_runs::{COMPACT_OPS_PER_COMMIT_MAX, Catalog, ID_RUNS, IdRuns, KEY_RUNS, run_key};
use super::{BaseAt, FactVisitor, Head, IndexKey, Location, QUERY_LIMIT_MAX, Store, StoreError, fact_key_hash};
use crate::attestation::{AttestationId, Claim, ClaimKind};
use crate::block::{Block, BlockHeader, CertifiedBlock, Leaf, ValidBlock};
use crate::checkpoint::Checkpoint;
use crate::codec;
use crate::genesis::Genesis;
use crate::governance::GovState;
use crate::hash::{Hash, HashOf};
use crate::ids::{PatentNumber, Uscc};
use crate::loan_rules::{Fact, FactKey};
use crate::merkle::{MerkleError, NodeHash, NodeReader};
use crate::rules::{RecordMeta, RecordStatus, StateDelta, StateView};
use crate::snapshot::{Base, Item, SnapshotError};

/// Version of the table layout above. A store of another version is refused, except
/// [`FORMAT_LEGACY_IDS`] and [`FORMAT_ALL_MERKLE_LEVELS`], which are migrated on open.
pub const FORMAT_VERSION: u32 = 3;
/// The format before "Merkle nodes kept" (every level above 0 in `merkle`): opened by
/// deleting the nodes of the other levels, except a snapshot base's frontier
/// ([`RedbStore::migrated_from_format`]).
pub const FORMAT_ALL_MERKLE_LEVELS: u32 = 2;
/// The format before the id runs (every id in the table `ids`): opened by making that table
/// the oldest, read-only run ([`RedbStore::migrated_from_format`]).
pub const FORMAT_LEGACY_IDS: u32 = 1;
/// Default for [`RedbOptions::stage_leaves_max`].
pub const STAGE_LEAVES_DEFAULT: u64 = 65_536;
/// Default for [`RedbOptions::cache_bytes`].
pub const CACHE_BYTES_DEFAULT: usize = 512 * 1024 * 1024;
/// Default for [`RedbOptions::merge_ops_per_commit_max`]: most merge operations (index
/// entries, record, pledge and fact changes) one commit writes, so that no commit carries
/// a whole merge (see "Incremental merges" above).
pub const MERGE_OPS_PER_COMMIT_MAX: usize = 8_192;
/// Fewest merge operations a commit writes while a generation is frozen (unless the
/// limit is lower), so blocks of few leaves still move the merge on.
const MERGE_OPS_PER_COMMIT_MIN: usize = 256;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const HEADERS: TableDefinition<u64, &[u8]> = TableDefinition::new("headers");
const CERTS: TableDefinition<u64, &[u8]> = TableDefinition::new("certs");
const FIRST_LEAF: TableDefinition<u64, u64> = TableDefinition::new("block_by_first_leaf");
const LEAVES: TableDefinition<u64, &[u8]> = TableDefinition::new("leaves");
const MERKLE: TableDefinition<&[u8; 9], &[u8; 32]> = TableDefinition::new("merkle");
/// `merkle` keeps the nodes of the levels that are multiples of this, above 0 (and a snapshot
/// base's frontier): the tree levels of C2SP tlog-tiles' hash tiles.
const KEPT_LEVEL_STEP: u8 = 8;
const _: () = assert!(KEPT_LEVEL_STEP as u32 == crate::tiles::TILE_HEIGHT);
const SEQUENCES: TableDefinition<u16, u64> = TableDefinition::new("sequences");
const STAGED: TableDefinition<u64, &[u8]> = TableDefinition::new("staged_deltas");
const IDS: TableDefinition<&[u8; 16], &[u8; 20]> = TableDefinition::new("ids");
const ENTERPRISE: TableDefinition<&[u8; 26], ()> = TableDefinition::new("index_enterprise");
const PATENT: TableDefinition<&[u8; 21], ()> = TableDefinition::new("index_patent");
const ATTESTER: TableDefinition<&[u8; 10], ()> = TableDefinition::new("index_attester");
const PLEDGES: TableDefinition<&[u8; 13], &[u8; 32]> = TableDefinition::new("pledges");
const GOVERNANCE: TableDefinition<u64, &[u8]> = TableDefinition::new("governance");
/// Largest encoded governance state read back (members, keys, proposals and history).
const GOVERNANCE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Added with the IP-loan kinds; a store written before has none until its first merge
/// creates it, and reads treat a missing table as empty, so the format version is unchanged.
const FACTS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("facts");
/// Added with the IP-loan kinds like `facts`: only their records reference others, so a
/// store written before them has none to index, and a missing table reads as empty.
const REFS: TableDefinition<&[u8; 40], ()> = TableDefinition::new("index_refs");
/// Added after format 1 shipped: a store without it gets it built on open ([`RedbStore::open_with`]).
const CONSENTS: TableDefinition<&[u8; 26], ()> = TableDefinition::new("index_consents");
/// Query records by their reader's member index; added after format 1 shipped like
/// `index_consents`, and built on open for a store without it.
const READERS: TableDefinition<&[u8; 10], ()> = TableDefinition::new("index_queries_by_reader");
/// Largest encoded fact.
const FACT_BYTES_MAX: usize = 4096;
/// The ids of the leaves below a snapshot base, by leaf index (only in a store that started
/// from a snapshot: [`Store::import_snapshot`]); `ids` entries of those records are confirmed
/// against it instead of the leaves, which the store does not hold.
const BASE_IDS: TableDefinition<u64, &[u8; 32]> = TableDefinition::new("base_ids");

const KEY_GENESIS: &str = "genesis";
const KEY_FORMAT: &str = "format";
const KEY_HEAD: &str = "head";
const KEY_MERGED: &str = "merged";
const KEY_FROZEN: &str = "frozen";
const KEY_BASE: &str = "base";

const HEAD_BYTES: usize = 88;
const CURSOR_BYTES: usize = 24;
pub(crate) const META_BYTES: usize = 20;

pub(super) type IdKey = [u8; 16];
pub(super) type MetaBytes = [u8; META_BYTES];

/// Tuning of a [`RedbStore`]; the defaults suit a node.
#[derive(Clone, Copy, Debug)]
pub struct RedbOptions {
    /// Most leaves whose index entries wait in memory (and in `staged_deltas`) before
    /// being merged into the index tables. 0 merges at every commit.
    pub stage_leaves_max: u64,
    /// Bytes of redb's page cache.
    pub cache_bytes: usize,
    /// Most merge operations one commit writes while a generation is frozen (at least 1),
    /// except when the active generation fills before the frozen one is merged.
    pub merge_ops_per_commit_max: usize,
    /// Most `id_runs` entries one commit reads, writes or deletes to merge id runs (at least 1).
    pub compact_ops_per_commit_max: usize,
}

impl Default for RedbOptions {
    fn default() -> Self {
        RedbOptions {
            stage_leaves_max: STAGE_LEAVES_DEFAULT,
            cache_bytes: CACHE_BYTES_DEFAULT,
            merge_ops_per_commit_max: MERGE_OPS_PER_COMMIT_MAX,
            compact_ops_per_commit_max: COMPACT_OPS_PER_COMMIT_MAX,
        }
    }
}

/// The durable [`Store`] on redb. See the module documentation for the layout.
pub struct RedbStore {
    /// Shared with read views ([`RedbStore::read_view`]).
    db: Arc<Database>,
    genesis: Genesis,
    genesis_hash: Hash,
    options: RedbOptions,
    head: Option<Head>,
    merged: Merged,
    /// The blocks being merged, slice by slice, if any (right after `merged`).
    frozen: Option<Frozen>,
    /// The blocks after those (after `merged` if nothing is frozen), staged.
    active: Staged,
    /// Merge operations the last commit wrote.
    last_commit_ops: usize,
    /// Id-run merge entries the last commit handled.
    last_commit_compact_ops: usize,
    /// The record-id runs: their catalog and filters.
    id_runs: IdRuns,
    /// The format this store was migrated from when it was opened, if it was.
    migrated_from: Option<u32>,
    /// Snapshot of the last commit, shared by reads; `None` if it could not be renewed.
    read: Option<ReadTransaction>,
    /// Set when a commit failed inside redb: memory may then disagree with the file.
    poisoned: bool,
    /// A commit since the last durable one was made with `Durability::None`.
    deferred: bool,
    /// The newest `governance` entry; `None` while no block changed governance.
    governance: Option<Arc<GovState>>,
    /// The snapshot this store started from, if any.
    base: Option<BaseAt>,
    /// A read view ([`RedbStore::read_view`]): commits, flushes and imports are refused.
    read_only: bool,
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore")
            .field("genesis_hash", &self.genesis_hash)
            .field("head", &self.head)
            .field("merged", &self.merged)
            .field("frozen", &self.frozen.as_ref().map(|f| (f.to, f.applied, f.ops.len())))
            .field("active_leaves", &self.active.leaves)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// The point up to which the index tables are complete.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Merged {
    height: u64,
    tree_size: u64,
}

/// Index entries and state changes of the blocks after [`Merged`], in memory.
#[derive(Clone, Debug, Default)]
struct Staged {
    leaves: u64,
    ids: HashMap<AttestationId, u64>,
    records: HashMap<AttestationId, RecordMeta>,
    pledges: HashMap<PatentNumber, Option<AttestationId>>,
    facts: HashMap<FactKey, Option<Fact>>,
    enterprise: Postings<Uscc>,
    patent: Postings<PatentNumber>,
    attester: Postings<u16>,
    refers: Postings<AttestationId>,
    consents: Postings<Uscc>,
    readers: Postings<u16>,
}

/// One secondary index's staged entries: each key's leaves, ascending and distinct.
///
/// Invariant: leaves are added in ascending order (a block's in order, blocks in height
/// order), so appending keeps each list sorted; a leaf naming a key twice (a reference
/// listed twice) is kept once. A hash map of lists costs one hash and one push per entry,
/// where the ordered set of `(key, leaf)` pairs it replaced cost a B-tree descent with key
/// comparisons (6 % of a commit's CPU at 1,000,000 records).
#[derive(Clone, Debug)]
struct Postings<K>(HashMap<K, Vec<u64>>);

impl<K> Default for Postings<K> {
    fn default() -> Self {
        Postings(HashMap::new())
    }
}

impl<K: StdHash + Eq + Copy> Postings<K> {
    fn extend(&mut self, entries: Vec<(K, u64)>) {
        for (key, leaf) in entries {
            let leaves = self.0.entry(key).or_default();
            match leaves.last() {
                Some(&last) if last >= leaf => assert_eq!(last, leaf, "staged leaves ascend"),
                _ => leaves.push(leaf),
            }
        }
    }

    /// Every entry as its table key (`encode` puts the key's bytes before the leaf's), sorted:
    /// the lists are ordered by their first key, and each list is already in leaf order.
    fn table_keys<const N: usize>(&self, encode: impl Fn(&K, u64) -> [u8; N]) -> Vec<[u8; N]> {
        let mut lists: Vec<(&K, &Vec<u64>)> = self.0.iter().collect();
        lists.sort_unstable_by_key(|(k, leaves)| encode(k, leaves.first().copied().unwrap_or(0)));
        let keys: Vec<[u8; N]> = lists.iter().flat_map(|(k, leaves)| leaves.iter().map(|l| encode(k, *l))).collect();
        debug_assert!(keys.is_sorted(), "a key's bytes precede its leaf's in the table key");
        keys
    }

    /// `key`'s leaves from `start` on, ascending.
    fn from(&self, key: &K, start: u64) -> &[u64] {
        let leaves = self.0.get(key).map_or(&[][..], Vec::as_slice);
        &leaves[leaves.partition_point(|l| *l < start)..]
    }
}

/// The index entries of one block's leaves.
#[derive(Debug, Default)]
struct Entries {
    ids: Vec<(AttestationId, u64)>,
    enterprise: Vec<(Uscc, u64)>,
    patent: Vec<(PatentNumber, u64)>,
    attester: Vec<(u16, u64)>,
    refers: Vec<(AttestationId, u64)>,
    consents: Vec<(Uscc, u64)>,
    readers: Vec<(u16, u64)>,
}

impl Entries {
    fn push(&mut self, gov: &GovState, leaf: &Leaf, index: u64) {
        self.ids.push((leaf.id, index));
        let body = &leaf.attestation.body;
        if let Some(e) = body.claim.enterprise() {
            self.enterprise.push((*e, index));
        }
        if let Some(p) = body.claim.patent() {
            self.patent.push((*p, index));
        }
        if let Some(m) = gov.member_index(&body.attester) {
            self.attester.push((m, index));
        }
        self.refers.extend(body.claim.references().into_iter().map(|r| (r, index)));
        if let Claim::Consent(c) = &body.claim {
            self.consents.push((c.enterprise, index));
        }
        // R026: a query record's reader is a member (indexes are never reused).
        if let Claim::Query(q) = &body.claim
            && let Some(m) = gov.member_index(&q.reader)
        {
            self.readers.push((m, index));
        }
    }
}

impl Staged {
    fn absorb(&mut self, entries: Entries, leaves: u64, delta: &StateDelta) {
        self.add_entries(entries, leaves);
        self.apply(&delta.records, &delta.pledges, &delta.facts);
    }

    /// Takes `leaves` leaves' index entries.
    fn add_entries(&mut self, entries: Entries, leaves: u64) {
        self.leaves += leaves;
        self.ids.extend(entries.ids);
        self.enterprise.extend(entries.enterprise);
        self.patent.extend(entries.patent);
        self.attester.extend(entries.attester);
        self.refers.extend(entries.refers);
        self.consents.extend(entries.consents);
        self.readers.extend(entries.readers);
    }

    fn apply(
        &mut self,
        records: &[(AttestationId, RecordMeta)],
        pledges: &[(PatentNumber, Option<AttestationId>)],
        facts: &[(FactKey, Option<Fact>)],
    ) {
        self.records.extend(records.iter().copied());
        self.pledges.extend(pledges.iter().copied());
        self.facts.extend(facts.iter().cloned());
    }
}

/// The generation being merged: blocks `from.height + 1 ..= to.height` (leaves
/// `from.tree_size .. to.tree_size`), where `from` is the store's [`Merged`] point.
#[derive(Debug)]
struct Frozen {
    to: Merged,
    /// Its entries and changes, for reads (newer than anything the tables hold).
    staged: Staged,
    /// What merging it writes, in a fixed order.
    ops: MergeOps,
    /// The id run its `ids` ops write (`None`: the legacy `ids` table, only while a format-1
    /// store is migrated).
    run: Option<u32>,
    /// How many of `ops` the tables already hold (the cursor in `meta`).
    applied: usize,
}

/// The table writes that merge a generation, each table's sorted by key and the tables in
/// the order of the fields, so that the list is a pure function of the generation: `open`
/// rebuilds it from `staged_deltas` and the leaves, and the cursor stored in `meta` names
/// the same operations it named when it was written. Each op is idempotent.
#[derive(Debug, Default)]
struct MergeOps {
    /// `(id, leaf, meta)`: `leaf` is `Some` for a record of the generation (a new `ids`
    /// entry) and `None` for a change to a record merged earlier (its entry is found by
    /// [`find_id`] when the op is applied, so freezing does no random reads). By id bytes,
    /// whose first 8 are the key's.
    ids: Vec<(AttestationId, Option<u64>, MetaBytes)>,
    /// Patent → its active pledge, or `None` to remove the entry.
    pledges: Vec<([u8; 13], Option<[u8; 32]>)>,
    /// `facts` key → encoded fact, or `None` to remove the entry.
    facts: Vec<([u8; 32], Option<Vec<u8>>)>,
    enterprise: Vec<[u8; 26]>,
    patent: Vec<[u8; 21]>,
    attester: Vec<[u8; 10]>,
    refers: Vec<[u8; 40]>,
    consents: Vec<[u8; 26]>,
    readers: Vec<[u8; 10]>,
}

/// The part of `lo..hi` (positions in the whole op list) that falls in a table's
/// segment `at..at + len`, as positions in that segment.
fn segment(lo: usize, hi: usize, at: usize, len: usize) -> std::ops::Range<usize> {
    let start = lo.clamp(at, at + len) - at;
    let end = hi.clamp(at, at + len) - at;
    start..end
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort_unstable();
    v
}

impl MergeOps {
    fn build(g: &Staged) -> Result<MergeOps, StoreError> {
        for id in g.ids.keys() {
            if !g.records.contains_key(id) {
                return Err(corrupt("table staged_deltas", format!("no record for staged attestation {id}")));
            }
        }
        let mut ids: Vec<_> = g.records.iter().map(|(id, m)| (*id, g.ids.get(id).copied(), encode_meta(m))).collect();
        ids.sort_unstable_by(|a, b| a.0.bytes().cmp(b.0.bytes()));
        let pledges =
            g.pledges.iter().map(|(p, id)| (<[u8; 13]>::from(*p), id.map(|id| *id.bytes()))).collect::<Vec<_>>();
        let mut facts: Vec<_> = g.facts.iter().map(|(k, f)| (fact_key(k), f.as_ref().map(codec::encode))).collect();
        facts.sort_unstable_by_key(|(k, _)| *k);
        Ok(MergeOps {
            ids,
            pledges: sorted(pledges),
            facts,
            enterprise: g.enterprise.table_keys(enterprise_key),
            patent: g.patent.table_keys(patent_key),
            attester: g.attester.table_keys(|m, l| attester_key(*m, l)),
            refers: g.refers.table_keys(refers_key),
            consents: g.consents.table_keys(enterprise_key),
            readers: g.readers.table_keys(|m, l| attester_key(*m, l)),
        })
    }

    fn len(&self) -> usize {
        self.ids.len()
            + self.pledges.len()
            + self.facts.len()
            + self.enterprise.len()
            + self.patent.len()
            + self.attester.len()
            + self.refers.len()
            + self.consents.len()
            + self.readers.len()
    }

    /// How many of the first `applied` ops insert an `ids` entry and an `index_attester`
    /// entry: what those tables hold beyond the merged leaves.
    fn inserted(&self, applied: usize) -> (u64, u64) {
        let ids = self.ids[segment(0, applied, 0, self.ids.len())].iter().filter(|(_, leaf, _)| leaf.is_some());
        let at = self.ids.len() + self.pledges.len() + self.facts.len() + self.enterprise.len() + self.patent.len();
        (ids.count() as u64, segment(0, applied, at, self.attester.len()).len() as u64)
    }

    /// Writes ops `lo..hi` of the list; the `ids` ops into id run `run` (into the legacy `ids`
    /// table if `None`). `based`: the store started from a snapshot (`base_ids` confirms ids
    /// below it).
    fn apply(
        &self,
        w: &WriteTransaction,
        t: &Tables<'_>,
        (lo, hi): (usize, usize),
        (run, based): (Option<u32>, bool),
        runs: &IdRuns,
    ) -> Result<(), StoreError> {
        let mut at = 0;
        let r = segment(lo, hi, at, self.ids.len());
        if let (false, Some(run)) = (r.is_empty(), run) {
            let mut table = w.open_table(ID_RUNS).map_err(backend)?;
            let legacy = w.open_table(IDS).map_err(backend)?;
            let base = if based { Some(w.open_table(BASE_IDS).map_err(backend)?) } else { None };
            for (id, leaf, meta) in &self.ids[r.clone()] {
                let leaf = match leaf {
                    Some(leaf) => *leaf,
                    // A change to an older record: a newer entry under the same key, which wins.
                    None => match runs.find(&table, &legacy, &t.leaves, base.as_ref(), id)? {
                        Some((leaf, _)) => leaf,
                        None => {
                            return Err(corrupt(
                                "table id_runs",
                                format!("a change for attestation {id}, which is not on the ledger"),
                            ));
                        }
                    },
                };
                table.insert(&run_key(run, &id_key(id, leaf)), meta).map_err(backend)?;
            }
        } else if !r.is_empty() {
            let mut table = w.open_table(IDS).map_err(backend)?;
            let base = if based { Some(w.open_table(BASE_IDS).map_err(backend)?) } else { None };
            for (id, leaf, meta) in &self.ids[r] {
                let leaf = match leaf {
                    Some(leaf) => *leaf,
                    None => match find_id(&table, &t.leaves, base.as_ref(), id)? {
                        Some((leaf, _)) => leaf,
                        None => {
                            return Err(corrupt(
                                "table ids",
                                format!("a change for attestation {id}, which is not on the ledger"),
                            ));
                        }
                    },
                };
                table.insert(&id_key(id, leaf), meta).map_err(backend)?;
            }
        }
        at += self.ids.len();
        let r = segment(lo, hi, at, self.pledges.len());
        if !r.is_empty() {
            let mut table = w.open_table(PLEDGES).map_err(backend)?;
            for (k, id) in &self.pledges[r] {
                match id {
                    Some(id) => table.insert(k, id).map(drop),
                    None => table.remove(k).map(drop),
                }
                .map_err(backend)?;
            }
        }
        at += self.pledges.len();
        let r = segment(lo, hi, at, self.facts.len());
        if !r.is_empty() {
            let mut table = w.open_table(FACTS).map_err(backend)?;
            for (k, v) in &self.facts[r] {
                match v {
                    Some(v) => table.insert(k, v.as_slice()).map(drop),
                    None => table.remove(k).map(drop),
                }
                .map_err(backend)?;
            }
        }
        at += self.facts.len();
        fn keys<const N: usize>(
            w: &WriteTransaction,
            def: TableDefinition<&'static [u8; N], ()>,
            keys: &[[u8; N]],
            (lo, hi, at): (usize, usize, &mut usize),
        ) -> Result<(), StoreError> {
            let r = segment(lo, hi, *at, keys.len());
            *at += keys.len();
            if !r.is_empty() {
                let mut table = w.open_table(def).map_err(backend)?;
                for k in &keys[r] {
                    table.insert(k, ()).map_err(backend)?;
                }
            }
            Ok(())
        }
        keys(w, ENTERPRISE, &self.enterprise, (lo, hi, &mut at))?;
        keys(w, PATENT, &self.patent, (lo, hi, &mut at))?;
        keys(w, ATTESTER, &self.attester, (lo, hi, &mut at))?;
        keys(w, REFS, &self.refers, (lo, hi, &mut at))?;
        keys(w, CONSENTS, &self.consents, (lo, hi, &mut at))?;
        keys(w, READERS, &self.readers, (lo, hi, &mut at))?;
        debug_assert_eq!(at, self.len());
        Ok(())
    }
}

/// Ops a commit applies of a frozen generation: enough to finish it by the time the
/// active one is two-thirds full (1.5 times the pace at which this block's leaves fill it),
/// at least [`MERGE_OPS_PER_COMMIT_MIN`] (so blocks of few leaves still move it on)
/// and at most `max`. A limit of 0 merges everything at once.
fn slice_ops(total: usize, leaves: u64, stage_leaves_max: u64, max: usize) -> usize {
    if stage_leaves_max == 0 {
        return usize::MAX;
    }
    let want = (total as u128).saturating_mul(u128::from(leaves) * 3).div_ceil(u128::from(stage_leaves_max) * 2);
    let max = max.max(1);
    usize::try_from(want).unwrap_or(usize::MAX).clamp(MERGE_OPS_PER_COMMIT_MIN.min(max), max)
}

// ---------------------------------------------------------------------------------------------
// Errors and encodings
// ---------------------------------------------------------------------------------------------

pub(super) fn backend(e: impl Into<redb::Error>) -> StoreError {
    match e.into() {
        redb::Error::Corrupted(reason) => StoreError::Corrupt { place: "redb file".into(), reason },
        e => StoreError::Backend(e.to_string()),
    }
}

pub(super) fn corrupt(place: impl Into<String>, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt { place: place.into(), reason: reason.into() }
}

fn poisoned() -> StoreError {
    StoreError::Backend("a commit failed inside the database; reopen the store".into())
}

pub(super) fn place(table: &str, key: impl fmt::Display) -> String {
    format!("table {table}, key {key}")
}

/// Maps a failure to open `table` for reading: a missing table means a damaged store.
fn open_err(table: &'static str) -> impl Fn(redb::TableError) -> StoreError {
    move |e| match e {
        redb::TableError::TableDoesNotExist(_) => corrupt(format!("table {table}"), "missing"),
        e => backend(e),
    }
}

pub(super) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

fn hash_at(b: &[u8], at: usize) -> Hash {
    let mut a = [0u8; 32];
    a.copy_from_slice(&b[at..at + 32]);
    Hash(a)
}

fn encode_head(h: &Head) -> [u8; HEAD_BYTES] {
    let mut out = [0u8; HEAD_BYTES];
    out[0..8].copy_from_slice(&h.height.to_be_bytes());
    out[8..40].copy_from_slice(h.hash.bytes());
    out[40..48].copy_from_slice(&h.time_ms.to_be_bytes());
    out[48..56].copy_from_slice(&h.tree_size.to_be_bytes());
    out[56..88].copy_from_slice(&h.tree_root.0);
    out
}

fn decode_head(b: &[u8]) -> Result<Head, StoreError> {
    if b.len() != HEAD_BYTES {
        return Err(corrupt(place("meta", KEY_HEAD), format!("{} bytes, expected {HEAD_BYTES}", b.len())));
    }
    Ok(Head {
        height: u64_at(b, 0),
        hash: HashOf::from_hash(hash_at(b, 8)),
        time_ms: u64_at(b, 40),
        tree_size: u64_at(b, 48),
        tree_root: hash_at(b, 56),
    })
}

fn head_of(h: &BlockHeader) -> Head {
    Head { height: h.height, hash: h.hash(), time_ms: h.time_ms, tree_size: h.tree_size, tree_root: h.tree_root }
}

fn encode_merged(m: Merged) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&m.height.to_be_bytes());
    out[8..].copy_from_slice(&m.tree_size.to_be_bytes());
    out
}

/// The merge cursor: the frozen generation's end, and how many of its ops are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cursor {
    to: Merged,
    applied: u64,
}

/// `to.height u64 BE ‖ to.tree_size u64 BE ‖ applied u64 BE`.
fn encode_cursor(c: Cursor) -> [u8; CURSOR_BYTES] {
    let mut out = [0u8; CURSOR_BYTES];
    out[..16].copy_from_slice(&encode_merged(c.to));
    out[16..].copy_from_slice(&c.applied.to_be_bytes());
    out
}

fn status_byte(s: RecordStatus) -> u8 {
    match s {
        RecordStatus::Active => 0,
        RecordStatus::Revoked => 1,
        RecordStatus::Released => 2,
    }
}

/// `attester u16 BE ‖ kind ‖ status ‖ has pledge ‖ patent (13) ‖ pledgee u16 BE`.
pub(crate) fn encode_meta(m: &RecordMeta) -> MetaBytes {
    let mut out = [0u8; META_BYTES];
    out[0..2].copy_from_slice(&m.attester.to_be_bytes());
    out[2] = m.kind as u8;
    out[3] = status_byte(m.status);
    if let Some((patent, pledgee)) = m.pledge {
        out[4] = 1;
        out[5..18].copy_from_slice(&<[u8; 13]>::from(patent));
        out[18..20].copy_from_slice(&pledgee.to_be_bytes());
    }
    out
}

pub(crate) fn decode_meta(b: &[u8], at: &dyn Fn() -> String) -> Result<RecordMeta, StoreError> {
    let Ok(b) = <&MetaBytes>::try_from(b) else {
        return Err(corrupt(at(), format!("record metadata of {} bytes, expected {META_BYTES}", b.len())));
    };
    let kind = ClaimKind::from_u8(b[2]).ok_or_else(|| corrupt(at(), format!("unknown claim kind {}", b[2])))?;
    let status = match b[3] {
        0 => RecordStatus::Active,
        1 => RecordStatus::Revoked,
        2 => RecordStatus::Released,
        s => return Err(corrupt(at(), format!("unknown record status {s}"))),
    };
    let mut patent = [0u8; 13];
    patent.copy_from_slice(&b[5..18]);
    let pledge = match b[4] {
        0 if patent == [0; 13] && b[18..20] == [0, 0] => None,
        1 => {
            let p = PatentNumber::try_from(patent).map_err(|e| corrupt(at(), e.to_string()))?;
            Some((p, u16::from_be_bytes([b[18], b[19]])))
        }
        _ => return Err(corrupt(at(), "malformed pledge field")),
    };
    Ok(RecordMeta { attester: u16::from_be_bytes([b[0], b[1]]), kind, status, pledge })
}

/// A block's record and pledge changes: `n u32 BE, n × (id ‖ meta)`, `m u32 BE, m × (patent ‖ flag ‖ id)`,
/// then, only if the block changed any, `f u32 BE, f × (key length u32 BE ‖ key ‖ flag ‖ [value length u32 BE ‖ value])`
/// with keys and values in the canonical encoding (a delta written before facts existed ends after the pledges).
fn encode_delta(d: &StateDelta) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + d.records.len() * 52 + d.pledges.len() * 46);
    out.extend_from_slice(&(d.records.len() as u32).to_be_bytes());
    for (id, meta) in &d.records {
        out.extend_from_slice(id.bytes());
        out.extend_from_slice(&encode_meta(meta));
    }
    out.extend_from_slice(&(d.pledges.len() as u32).to_be_bytes());
    for (patent, id) in &d.pledges {
        out.extend_from_slice(&<[u8; 13]>::from(*patent));
        match id {
            Some(id) => {
                out.push(1);
                out.extend_from_slice(id.bytes());
            }
            None => out.extend_from_slice(&[0; 33]),
        }
    }
    if !d.facts.is_empty() {
        out.extend_from_slice(&(d.facts.len() as u32).to_be_bytes());
        for (k, f) in &d.facts {
            let k = codec::encode(k);
            out.extend_from_slice(&(k.len() as u32).to_be_bytes());
            out.extend_from_slice(&k);
            match f {
                Some(f) => {
                    let v = codec::encode(f);
                    out.push(1);
                    out.extend_from_slice(&(v.len() as u32).to_be_bytes());
                    out.extend_from_slice(&v);
                }
                None => out.push(0),
            }
        }
    }
    out
}

type Changes =
    (Vec<(AttestationId, RecordMeta)>, Vec<(PatentNumber, Option<AttestationId>)>, Vec<(FactKey, Option<Fact>)>);

fn decode_delta(b: &[u8], height: u64) -> Result<Changes, StoreError> {
    let at = || place("staged_deltas", height);
    let rest = std::cell::Cell::new(b);
    let take = |n: usize| -> Result<&[u8], StoreError> {
        let Some((head, tail)) = rest.get().split_at_checked(n) else {
            return Err(corrupt(at(), "truncated"));
        };
        rest.set(tail);
        Ok(head)
    };
    let count = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let n = count(take(4)?);
    let mut records = Vec::with_capacity(n.min(b.len() / 52));
    for _ in 0..n {
        let id = HashOf::from_hash(hash_at(take(32)?, 0));
        records.push((id, decode_meta(take(META_BYTES)?, &at)?));
    }
    let m = count(take(4)?);
    let mut pledges = Vec::with_capacity(m.min(b.len() / 46));
    for _ in 0..m {
        let mut p = [0u8; 13];
        p.copy_from_slice(take(13)?);
        let patent = PatentNumber::try_from(p).map_err(|e| corrupt(at(), e.to_string()))?;
        let flag = take(1)?[0];
        let id = hash_at(take(32)?, 0);
        let id = match flag {
            0 if id == Hash([0; 32]) => None,
            1 => Some(HashOf::from_hash(id)),
            _ => return Err(corrupt(at(), "malformed pledge change")),
        };
        pledges.push((patent, id));
    }
    let mut facts = Vec::new();
    if !rest.get().is_empty() {
        let f = count(take(4)?);
        for _ in 0..f {
            let klen = count(take(4)?);
            let key: FactKey =
                codec::decode("fact key", take(klen)?, FACT_BYTES_MAX).map_err(|e| corrupt(at(), e.to_string()))?;
            let value = match take(1)?[0] {
                0 => None,
                1 => {
                    let vlen = count(take(4)?);
                    Some(
                        codec::decode::<Fact>("fact", take(vlen)?, FACT_BYTES_MAX)
                            .map_err(|e| corrupt(at(), e.to_string()))?,
                    )
                }
                _ => return Err(corrupt(at(), "malformed fact change")),
            };
            facts.push((key, value));
        }
    }
    if !rest.get().is_empty() {
        return Err(corrupt(at(), format!("{} trailing bytes", rest.get().len())));
    }
    Ok((records, pledges, facts))
}

pub(super) fn id_key(id: &AttestationId, leaf: u64) -> IdKey {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&id.bytes()[..8]);
    k[8..].copy_from_slice(&leaf.to_be_bytes());
    k
}

fn merkle_key(level: u8, index: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = level;
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

/// Whether `merkle` keeps the nodes of `level` (besides a snapshot base's frontier).
fn kept_level(level: u8) -> bool {
    level > 0 && level.is_multiple_of(KEPT_LEVEL_STEP)
}

/// How many nodes of the kept levels a tree of `size` leaves has: `⌊size / 2^l⌋` for each.
fn kept_nodes(size: u64) -> u64 {
    (u32::from(KEPT_LEVEL_STEP)..u64::BITS).step_by(usize::from(KEPT_LEVEL_STEP)).map(|l| size >> l).sum()
}

/// The leaves `[start, end)` under node `(level, index)`; `level` < 64.
fn node_span(level: u8, index: u64) -> (u128, u128) {
    let start = u128::from(index) << level;
    (start, start + (1u128 << level))
}

/// Whether node `(level, index)` is one of the complete subtrees that tile the first `size`
/// leaves (a frontier: one per set bit of `size`, largest first).
fn on_frontier(level: u8, index: u64, size: u64) -> bool {
    let above = size.checked_shr(u32::from(level)).unwrap_or(0);
    above & 1 == 1 && index == above - 1
}

fn keyed<const N: usize, const P: usize>(prefix: &[u8; P], leaf: u64) -> [u8; N] {
    debug_assert_eq!(N, P + 8);
    let mut k = [0u8; N];
    k[..P].copy_from_slice(prefix);
    k[P..].copy_from_slice(&leaf.to_be_bytes());
    k
}

fn enterprise_key(u: &Uscc, leaf: u64) -> [u8; 26] {
    keyed(u.as_bytes(), leaf)
}
fn patent_key(p: &PatentNumber, leaf: u64) -> [u8; 21] {
    keyed(&<[u8; 13]>::from(*p), leaf)
}
/// Also the key of `index_queries_by_reader` (the reader's member index).
fn attester_key(m: u16, leaf: u64) -> [u8; 10] {
    keyed(&m.to_be_bytes(), leaf)
}
fn refers_key(id: &AttestationId, leaf: u64) -> [u8; 40] {
    keyed(id.bytes(), leaf)
}

/// Whether `table` exists in the file.
fn table_exists<K: redb::Key + 'static, V: redb::Value + 'static>(
    r: &ReadTransaction,
    table: TableDefinition<K, V>,
) -> Result<bool, StoreError> {
    match r.open_table(table) {
        Ok(_) => Ok(true),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(false),
        Err(e) => Err(backend(e)),
    }
}

/// Builds `index_consents` for a store written before it existed: one pass over the merged
/// leaves `0..tree_size`, in one transaction (the staged leaves' entries are rebuilt in
/// memory on every open, like the other indexes').
fn build_consents_index(db: &Database, tree_size: u64) -> Result<(), StoreError> {
    let w = db.begin_write().map_err(backend)?;
    {
        let leaves = w.open_table(LEAVES).map_err(backend)?;
        let mut table = w.open_table(CONSENTS).map_err(backend)?;
        for entry in leaves.range(0..tree_size).map_err(backend)? {
            let (k, v) = entry.map_err(backend)?;
            let leaf = decode_leaf(v.value(), k.value())?;
            if let Claim::Consent(c) = &leaf.attestation.body.claim {
                table.insert(&enterprise_key(&c.enterprise, k.value()), ()).map_err(backend)?;
            }
        }
    }
    w.commit().map_err(backend)
}

/// Builds `index_queries_by_reader` for a store written before it existed, as
/// [`build_consents_index`] does: one pass over the merged leaves, in one transaction,
/// resolving readers by the newest governance state (member indexes are never reused).
fn build_readers_index(db: &Database, tree_size: u64, gov: &GovState) -> Result<(), StoreError> {
    let w = db.begin_write().map_err(backend)?;
    {
        let leaves = w.open_table(LEAVES).map_err(backend)?;
        let mut table = w.open_table(READERS).map_err(backend)?;
        for entry in leaves.range(0..tree_size).map_err(backend)? {
            let (k, v) = entry.map_err(backend)?;
            let leaf = decode_leaf(v.value(), k.value())?;
            if let Claim::Query(q) = &leaf.attestation.body.claim
                && let Some(m) = gov.member_index(&q.reader)
            {
                table.insert(&attester_key(m, k.value()), ()).map_err(backend)?;
            }
        }
    }
    w.commit().map_err(backend)
}

fn decode_header(b: &[u8], height: u64) -> Result<BlockHeader, StoreError> {
    let h = BlockHeader::from_bytes(b).map_err(|e| corrupt(place("headers", height), e.to_string()))?;
    if h.height != height {
        return Err(corrupt(place("headers", height), format!("holds the header of height {}", h.height)));
    }
    Ok(h)
}

fn decode_cert(b: &[u8], height: u64) -> Result<Checkpoint, StoreError> {
    let c = Checkpoint::parse_note_bytes(b).map_err(|e| corrupt(place("certs", height), e.to_string()))?;
    if c.body.height != height {
        return Err(corrupt(place("certs", height), format!("certifies height {}", c.body.height)));
    }
    Ok(c)
}

pub(super) fn decode_leaf(b: &[u8], index: u64) -> Result<Leaf, StoreError> {
    Leaf::from_bytes(b.to_vec()).map_err(|e| corrupt(place("leaves", index), e.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Lookups shared by reads and commits
// ---------------------------------------------------------------------------------------------

/// The leaf index and metadata of `id` in the `ids` table, confirming prefix matches
/// against the leaves (below a snapshot base, against `base_ids`).
pub(super) fn find_id<B: ReadableTable<u64, &'static [u8; 32]>>(
    ids: &impl ReadableTable<&'static IdKey, &'static MetaBytes>,
    leaves: &impl ReadableTable<u64, &'static [u8]>,
    base: Option<&B>,
    id: &AttestationId,
) -> Result<Option<(u64, RecordMeta)>, StoreError> {
    let lo = id_key(id, 0);
    let hi = id_key(id, u64::MAX);
    for entry in ids.range::<&IdKey>(&lo..=&hi).map_err(backend)? {
        let (k, v) = entry.map_err(backend)?;
        let leaf = u64_at(k.value(), 8);
        let at = || place("ids", hex::encode(k.value()));
        if super::id_runs::confirm(leaves, base, leaf, id, &at)? {
            return Ok(Some((leaf, decode_meta(v.value(), &at)?)));
        }
    }
    Ok(None)
}

/// The `base_ids` table for reading, if the store started from a snapshot.
fn base_ids_table(r: &ReadTransaction) -> Result<Option<redb::ReadOnlyTable<u64, &'static [u8; 32]>>, StoreError> {
    match r.open_table(BASE_IDS) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(backend(e)),
    }
}

/// Leaf indexes `start .. end` of `prefix` in a composite-key index, at most `limit`.
fn index_range<const N: usize, const P: usize>(
    t: &impl ReadableTable<&'static [u8; N], ()>,
    prefix: &[u8; P],
    (start, end): (u64, u64),
    limit: usize,
    out: &mut Vec<u64>,
) -> Result<(), StoreError> {
    if start >= end {
        return Ok(());
    }
    let lo: [u8; N] = keyed(prefix, start);
    let hi: [u8; N] = keyed(prefix, end);
    for entry in t.range::<&[u8; N]>(&lo..&hi).map_err(backend)?.take(limit) {
        let (k, _) = entry.map_err(backend)?;
        out.push(u64_at(k.value(), P));
    }
    Ok(())
}

/// A snapshot to read from: the shared one, or a fresh one if it could not be renewed.
enum Snapshot<'a> {
    Shared(&'a ReadTransaction),
    Own(ReadTransaction),
}

impl Deref for Snapshot<'_> {
    type Target = ReadTransaction;
    fn deref(&self) -> &ReadTransaction {
        match self {
            Snapshot::Shared(r) => r,
            Snapshot::Own(r) => r,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Opening
// ---------------------------------------------------------------------------------------------

impl RedbStore {
    /// Opens the store at `path` for the chain of `genesis`, creating it if missing.
    pub fn open(path: &Path, genesis: &Genesis) -> Result<RedbStore, StoreError> {
        RedbStore::open_with(path, genesis, RedbOptions::default())
    }

    /// [`RedbStore::open`] with explicit tuning.
    pub fn open_with(path: &Path, genesis: &Genesis, options: RedbOptions) -> Result<RedbStore, StoreError> {
        // redb trusts its own pages: some damage makes it panic (an index out of bounds)
        // instead of returning an error. Opening reads and checks every table, so damage is
        // met here first; it is reported as corruption of the file, like any other.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Self::open_checked(path, genesis, options)))
            .unwrap_or_else(|panic| {
                Err(corrupt(
                    "redb file",
                    format!("the storage engine failed reading it: {}", super::panic_message(&*panic)),
                ))
            })
    }

    fn open_checked(path: &Path, genesis: &Genesis, options: RedbOptions) -> Result<RedbStore, StoreError> {
        let given = genesis.hash();
        if !path.try_exists().map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))? {
            create(path, &given)?;
        }
        let db = Database::builder().set_cache_size(options.cache_bytes).open(path).map_err(backend)?;
        let stored = {
            let r = db.begin_read().map_err(backend)?;
            match r.open_table(META) {
                Ok(meta) => meta.get(KEY_GENESIS).map_err(backend)?.map(|v| v.value().to_vec()),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(backend(e)),
            }
        };
        match stored {
            None => return Err(corrupt(place("meta", KEY_GENESIS), "missing")),
            Some(b) => {
                let Ok(stored) = <[u8; 32]>::try_from(b.as_slice()) else {
                    return Err(corrupt(place("meta", KEY_GENESIS), format!("{} bytes, expected 32", b.len())));
                };
                if stored != given.0 {
                    return Err(StoreError::WrongGenesis { stored: Hash(stored), given });
                }
            }
        }
        let read = db.begin_read().map_err(backend)?;
        let (head, merged, cursor, format, base) = check_head(&read)?;
        let read = if table_exists(&read, CONSENTS)? {
            read
        } else {
            drop(read);
            build_consents_index(&db, merged.tree_size)?;
            db.begin_read().map_err(backend)?
        };
        let mut store = RedbStore {
            db: Arc::new(db),
            genesis: genesis.clone(),
            genesis_hash: given,
            options,
            head,
            merged,
            frozen: None,
            active: Staged::default(),
            last_commit_ops: 0,
            last_commit_compact_ops: 0,
            id_runs: IdRuns::empty(),
            migrated_from: None,
            read: Some(read),
            poisoned: false,
            deferred: false,
            governance: None,
            base,
            read_only: false,
        };
        store.load_governance()?;
        if !table_exists(&*store.snapshot()?, READERS)? {
            // Readers resolve by the governance state, so this index is built once it is loaded.
            store.read = None;
            build_readers_index(&store.db, store.merged.tree_size, &store.latest_governance())?;
            store.read = Some(store.db.begin_read().map_err(backend)?);
        }
        if format == FORMAT_LEGACY_IDS {
            store.load_staged(cursor, None)?;
            store.migrate_legacy_ids()?;
        } else {
            let building = store.read_catalog()?.building;
            store.load_staged(cursor, Some(building))?;
            if format == FORMAT_ALL_MERKLE_LEVELS {
                store.migrate_merkle_levels()?;
            }
        }
        // After the migrations, which leave `merkle` as this format keeps it.
        store.check_tree()?;
        let catalog = store.read_catalog()?;
        let building = store.frozen.as_ref().map_or(0, |f| segment(0, f.applied, 0, f.ops.ids.len()).len() as u64);
        let r = store.snapshot()?;
        let runs = r.open_table(ID_RUNS).map_err(open_err("id_runs"))?;
        let legacy = r.open_table(IDS).map_err(open_err("ids"))?;
        let id_runs = IdRuns::load(catalog, &runs, &legacy, building)?;
        drop((runs, legacy, r));
        store.id_runs = id_runs;
        Ok(store)
    }

    fn read_catalog(&self) -> Result<Catalog, StoreError> {
        let r = self.snapshot()?;
        let meta = r.open_table(META).map_err(open_err("meta"))?;
        match meta.get(KEY_RUNS).map_err(backend)? {
            Some(v) => Catalog::decode(v.value()),
            None => Err(corrupt(place("meta", KEY_RUNS), "missing")),
        }
    }

    /// Opens a format-1 store as format 3: finishes the merge under way, if any, into the
    /// legacy `ids` table (at most one generation's ops, in this one transaction), which then
    /// becomes the oldest, read-only id run; creates `id_runs` and its catalog; and keeps in
    /// `merkle` only the nodes format 3 keeps ([`prune_merkle`]).
    fn migrate_legacy_ids(&mut self) -> Result<(), StoreError> {
        self.migrate(FORMAT_LEGACY_IDS, |s, w| {
            // Before `Tables` opens `merkle`: a table is deleted only while closed.
            prune_merkle(w, s.base)?;
            let mut t = Tables::open(w)?;
            let based = s.base.is_some();
            apply_frozen(w, &mut t, based, &mut s.frozen, &mut s.merged, usize::MAX, &mut s.id_runs)?;
            let legacy = w.open_table(IDS).map_err(backend)?.len().map_err(backend)?;
            w.open_table(ID_RUNS).map_err(backend)?;
            t.meta.insert(KEY_RUNS, Catalog::new(legacy).encode().as_slice()).map_err(backend)?;
            t.meta.insert(KEY_FORMAT, FORMAT_VERSION.to_be_bytes().as_slice()).map_err(backend)?;
            Ok(())
        })
    }

    /// Opens a format-2 store as format 3, in one transaction: keeps in `merkle` only the
    /// nodes format 3 keeps ([`prune_merkle`]).
    fn migrate_merkle_levels(&mut self) -> Result<(), StoreError> {
        self.migrate(FORMAT_ALL_MERKLE_LEVELS, |s, w| {
            prune_merkle(w, s.base)?;
            let mut meta = w.open_table(META).map_err(backend)?;
            meta.insert(KEY_FORMAT, FORMAT_VERSION.to_be_bytes().as_slice()).map_err(backend)?;
            Ok(())
        })
    }

    /// Makes `change` from format `from` in one write transaction; if it fails, the store is
    /// poisoned (memory may disagree with the file). Renews the read snapshot after.
    fn migrate(
        &mut self,
        from: u32,
        change: impl FnOnce(&mut Self, &WriteTransaction) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.read = None;
        let w = self.db.begin_write().map_err(backend)?;
        if let Err(e) = change(self, &w) {
            self.poisoned = true;
            return Err(e);
        }
        w.commit().map_err(|e| {
            self.poisoned = true;
            backend(e)
        })?;
        self.migrated_from = Some(from);
        self.read = Some(self.db.begin_read().map_err(backend)?);
        Ok(())
    }

    /// The format this store was written in, if opening it migrated it to [`FORMAT_VERSION`]
    /// (from format 1: the `ids` table became the oldest id run, and `merkle` was pruned as
    /// from format 2; from format 2: `merkle` lost the nodes of the levels it no longer keeps,
    /// "Merkle nodes kept" above). The node reports it.
    pub fn migrated_from_format(&self) -> Option<u32> {
        self.migrated_from
    }

    /// Id runs readable now, the merge of runs under way (entries written, inputs), and the
    /// bytes of their in-memory filters.
    pub fn id_runs_state(&self) -> (usize, Option<(u64, usize)>, usize) {
        let c = &self.id_runs.catalog;
        (c.runs.len(), c.compaction.as_ref().map(|m| (m.written, m.inputs.len())), self.id_runs.filter_bytes())
    }

    /// Id-run merge entries (read, written or deleted) the last commit handled (at most
    /// [`RedbOptions::compact_ops_per_commit_max`] plus the inputs' read slack).
    pub fn last_commit_compact_ops(&self) -> usize {
        self.last_commit_compact_ops
    }

    /// Reads the newest governance state at or below the head.
    fn load_governance(&mut self) -> Result<(), StoreError> {
        let head = self.head.map_or(0, |h| h.height);
        let r = self.snapshot()?;
        let table = match r.open_table(GOVERNANCE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(backend(e)),
        };
        let last = table.range(..=head).map_err(backend)?.next_back();
        let gov = match last {
            None => None,
            Some(item) => {
                let (k, v) = item.map_err(backend)?;
                let g = GovState::decode_stored(v.value(), GOVERNANCE_BYTES_MAX, &self.genesis)
                    .map_err(|e| corrupt(place("governance", k.value()), e.to_string()))?;
                Some(Arc::new(g))
            }
        };
        drop((table, r));
        self.governance = gov;
        Ok(())
    }

    /// The governance state the leaves up to the head were attested under (names
    /// are never reused, so it knows every attester).
    fn latest_governance(&self) -> Arc<GovState> {
        self.governance.clone().unwrap_or_else(|| self.genesis.governance())
    }

    /// Rebuilds the frozen generation (if `cursor` names one) and the active one from
    /// `staged_deltas` and their leaves, and checks the cursor against the rebuilt list of
    /// merge ops: it must lie inside it, and `ids` and `index_attester` must hold exactly
    /// the entries the applied ops inserted.
    /// `runs` is `None` for a format-1 store (its `ids` table is checked instead), else the
    /// catalog's run being built, which must be named exactly when a generation is frozen.
    fn load_staged(&mut self, cursor: Option<Cursor>, runs: Option<Option<u32>>) -> Result<(), StoreError> {
        let r = self.snapshot()?;
        let deltas = r.open_table(STAGED).map_err(open_err("staged_deltas"))?;
        let leaves = r.open_table(LEAVES).map_err(open_err("leaves"))?;
        let head = self.head.map_or(Merged::default(), |h| Merged { height: h.height, tree_size: h.tree_size });
        let gov = self.latest_governance();
        let frozen = match cursor {
            None => None,
            Some(c) => {
                let staged = load_generation(&deltas, &leaves, &gov, self.merged, c.to)?;
                let ops = MergeOps::build(&staged)?;
                let applied = usize::try_from(c.applied).unwrap_or(usize::MAX);
                if applied >= ops.len() {
                    return Err(corrupt(
                        place("meta", KEY_FROZEN),
                        format!("{applied} ops applied of a merge of {} (a finished merge has no cursor)", ops.len()),
                    ));
                }
                let (new_ids, new_attester) = ops.inserted(applied);
                let ids = match runs {
                    None => Some(r.open_table(IDS).map_err(open_err("ids"))?.len().map_err(backend)?),
                    Some(_) => None,
                };
                let attester = r.open_table(ATTESTER).map_err(open_err("index_attester"))?.len().map_err(backend)?;
                // Records below a snapshot base have ids but no index entries.
                let below = self.base.map_or(0, |b| b.tree_size);
                let counts = [("ids", ids, new_ids, 0), ("index_attester", Some(attester), new_attester, below)];
                for (table, len, new, from) in counts {
                    let Some(len) = len else { continue };
                    if len != self.merged.tree_size - from + new {
                        return Err(corrupt(
                            format!("table {table}"),
                            format!(
                                "{len} entries for {} merged leaves and {new} from the {applied} merge ops in table meta, key {KEY_FROZEN}",
                                self.merged.tree_size
                            ),
                        ));
                    }
                }
                let run = match runs {
                    None => None,
                    Some(Some(run)) => Some(run),
                    Some(None) => {
                        return Err(corrupt(place("meta", KEY_RUNS), "names no run for the frozen generation"));
                    }
                };
                Some(Frozen { to: c.to, staged, ops, applied, run })
            }
        };
        if let (None, Some(Some(run))) = (&frozen, runs) {
            return Err(corrupt(place("meta", KEY_RUNS), format!("run {run} is being built, but nothing is frozen")));
        }
        let from = frozen.as_ref().map_or(self.merged, |f| f.to);
        let active = load_generation(&deltas, &leaves, &gov, from, head)?;
        drop((deltas, leaves, r));
        self.frozen = frozen;
        self.active = active;
        Ok(())
    }

    /// The Merkle nodes and root agree with the head: `merkle` holds exactly the nodes of
    /// the kept levels of the head's tree (from the snapshot base on, if any) and the base's
    /// frontier, and they give the head's root.
    fn check_tree(&self) -> Result<(), StoreError> {
        let Some(head) = self.head else { return Ok(()) };
        let r = self.snapshot()?;
        let merkle = r.open_table(MERKLE).map_err(open_err("merkle"))?;
        let n = head.tree_size;
        // Below a snapshot base only its frontier is held (with its level-0 node, if any).
        let b = self.base.map_or(0, |b| b.tree_size);
        let expected = kept_nodes(n) - kept_nodes(b) + u64::from(b.count_ones());
        let mut got = 0u64;
        for item in merkle.iter().map_err(backend)? {
            let (k, _) = item.map_err(backend)?;
            let (level, index) = (k.value()[0], u64_at(k.value(), 1));
            let kept = level < 64 && {
                let (_, end) = node_span(level, index);
                if end <= u128::from(b) {
                    on_frontier(level, index, b)
                } else {
                    kept_level(level) && end <= u128::from(n)
                }
            };
            if !kept {
                let what = match self.base {
                    None => format!("not a node a tree of {n} leaves keeps (complete, of level 8, 16, ...)"),
                    Some(_) => format!(
                        "not a node a tree of {n} leaves from a base of {b} keeps (complete, of level 8, 16, ..., or on the base's frontier)"
                    ),
                };
                return Err(corrupt(place("merkle", format!("level {level}, index {index}")), what));
            }
            got += 1;
        }
        if got != expected {
            return Err(corrupt(
                "table merkle",
                format!("{got} nodes, a tree of {n} leaves keeps {expected} (levels 8, 16, ... and a base's frontier)"),
            ));
        }
        drop(merkle);
        let root = crate::merkle::root_at(n, self).map_err(|e| corrupt("table merkle", e.to_string()))?;
        if root != head.tree_root.0 {
            return Err(corrupt(
                "table merkle",
                format!("the stored nodes give a root other than block {}'s", head.height),
            ));
        }
        Ok(())
    }

    fn snapshot(&self) -> Result<Snapshot<'_>, StoreError> {
        if self.poisoned {
            return Err(poisoned());
        }
        match &self.read {
            Some(r) => Ok(Snapshot::Shared(r)),
            None => Ok(Snapshot::Own(self.db.begin_read().map_err(backend)?)),
        }
    }

    /// `Err(NotHeld)` if `height` is below the snapshot base (or, with `block`, at it: its
    /// leaves are not held).
    fn check_height(&self, height: u64, what: &str, block: bool) -> Result<(), StoreError> {
        match self.base {
            Some(b) if height > 0 && (height < b.height || (block && height == b.height)) => {
                Err(b.not_held(format!("{what} {height}")))
            }
            _ => Ok(()),
        }
    }

    /// A read-only store that keeps seeing the state of the last commit, whatever is
    /// committed after: one redb read transaction (a consistent snapshot of the file) and a
    /// copy of the staged generations' entries (at most twice `stage_leaves_max` leaves'
    /// worth). For long reads that must not hold the store's lock, such as computing a
    /// snapshot digest beside a running node. Its commits, flushes and imports are refused.
    pub fn read_view(&self) -> Result<RedbStore, StoreError> {
        if self.poisoned {
            return Err(poisoned());
        }
        let frozen = self.frozen.as_ref().map(|f| Frozen {
            to: f.to,
            staged: f.staged.clone(),
            // A view reads; it never merges.
            ops: MergeOps::default(),
            run: f.run,
            applied: f.applied,
        });
        Ok(RedbStore {
            db: Arc::clone(&self.db),
            genesis: self.genesis.clone(),
            genesis_hash: self.genesis_hash,
            options: self.options,
            head: self.head,
            merged: self.merged,
            frozen,
            active: self.active.clone(),
            last_commit_ops: 0,
            last_commit_compact_ops: 0,
            read: Some(self.db.begin_read().map_err(backend)?),
            poisoned: false,
            deferred: false,
            governance: self.governance.clone(),
            // The catalog and filters of the runs this read transaction sees.
            id_runs: self.id_runs.clone(),
            migrated_from: None,
            base: self.base,
            read_only: true,
        })
    }

    fn refuse_read_only(&self) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::Backend("a read view of the store is never written".into()));
        }
        Ok(())
    }

    /// The options this store was opened with.
    pub fn options(&self) -> RedbOptions {
        self.options
    }

    /// Leaves whose index entries are held in memory (frozen or active), not yet wholly
    /// merged into the index tables.
    pub fn staged_leaves(&self) -> u64 {
        self.active.leaves + self.frozen.as_ref().map_or(0, |f| f.staged.leaves)
    }

    /// The merge under way, if any: merge operations applied and in all.
    pub fn merge_progress(&self) -> Option<(usize, usize)> {
        self.frozen.as_ref().map(|f| (f.applied, f.ops.len()))
    }

    /// Merge operations the last commit wrote (at most
    /// [`RedbOptions::merge_ops_per_commit_max`] unless the active generation filled
    /// while another was frozen, or `stage_leaves_max` is 0).
    pub fn last_commit_merge_ops(&self) -> usize {
        self.last_commit_ops
    }
}

/// The staged generation of blocks `from.height + 1 ..= to.height`: their changes from
/// `staged_deltas` (applied in order, newest wins) and their leaves' index entries.
fn load_generation(
    deltas: &impl ReadableTable<u64, &'static [u8]>,
    leaves: &impl ReadableTable<u64, &'static [u8]>,
    gov: &GovState,
    from: Merged,
    to: Merged,
) -> Result<Staged, StoreError> {
    let mut staged = Staged::default();
    for height in from.height + 1..=to.height {
        let Some(b) = deltas.get(height).map_err(backend)? else {
            return Err(corrupt(place("staged_deltas", height), "missing"));
        };
        let (records, pledges, facts) = decode_delta(b.value(), height)?;
        staged.apply(&records, &pledges, &facts);
    }
    let mut entries = Entries::default();
    for item in leaves.range(from.tree_size..to.tree_size).map_err(backend)? {
        let (k, v) = item.map_err(backend)?;
        entries.push(gov, &decode_leaf(v.value(), k.value())?, k.value());
    }
    let n = entries.ids.len() as u64;
    if n != to.tree_size - from.tree_size {
        return Err(corrupt("table leaves", format!("{n} staged leaves, expected {}", to.tree_size - from.tree_size)));
    }
    for (id, _) in &entries.ids {
        if !staged.records.contains_key(id) {
            return Err(corrupt("table staged_deltas", format!("no record for staged attestation {id}")));
        }
    }
    staged.add_entries(entries, n);
    Ok(staged)
}

/// Creates a store at `path`: initialised under a temporary name, then renamed, so a
/// crash during creation leaves no half-made store behind.
fn create(path: &Path, genesis: &Hash) -> Result<(), StoreError> {
    let io = |what: &str, p: &Path, e: std::io::Error| StoreError::Backend(format!("{what} {}: {e}", p.display()));
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".creating");
    let tmp = path.with_file_name(name);
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io("remove", &tmp, e)),
        _ => {}
    }
    let db = Database::create(&tmp).map_err(backend)?;
    initialise(&db, genesis)?;
    drop(db);
    std::fs::rename(&tmp, path).map_err(|e| io("rename to", path, e))?;
    // Make the rename itself durable.
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io("sync", dir, e))
}

/// Rewrites `merkle` (of a store of format 1 or 2, which kept every level above 0) with only
/// the nodes format 3 keeps: those of the kept levels, and a snapshot base's frontier
/// nodes of the other levels (the leaves below the base are not held to compute them). The
/// table is deleted and written again rather than cleared row by row: about one node in 255
/// is kept, so this writes a few sequential pages instead of rewriting every page.
fn prune_merkle(w: &WriteTransaction, base: Option<BaseAt>) -> Result<(), StoreError> {
    let b = base.map_or(0, |b| b.tree_size);
    let mut kept = Vec::new();
    {
        let merkle = w.open_table(MERKLE).map_err(backend)?;
        for level in 0..64u8 {
            if kept_level(level) {
                let (lo, hi) = (merkle_key(level, 0), merkle_key(level, u64::MAX));
                for item in merkle.range::<&[u8; 9]>(&lo..=&hi).map_err(backend)? {
                    let (k, v) = item.map_err(backend)?;
                    kept.push((*k.value(), *v.value()));
                }
            } else if (b >> level) & 1 == 1 {
                let k = merkle_key(level, (b >> level) - 1);
                if let Some(v) = merkle.get(&k).map_err(backend)? {
                    kept.push((k, *v.value()));
                }
            }
        }
    }
    w.delete_table(MERKLE).map_err(backend)?;
    let mut merkle = w.open_table(MERKLE).map_err(backend)?;
    // Collected in key order (level, then index): appends.
    for (k, v) in &kept {
        merkle.insert(k, v).map_err(backend)?;
    }
    Ok(())
}

/// Creates the tables of a new store and records its genesis and format.
fn initialise(db: &Database, genesis: &Hash) -> Result<(), StoreError> {
    let w = db.begin_write().map_err(backend)?;
    {
        let mut meta = w.open_table(META).map_err(backend)?;
        w.open_table(HEADERS).map_err(backend)?;
        w.open_table(CERTS).map_err(backend)?;
        w.open_table(FIRST_LEAF).map_err(backend)?;
        w.open_table(LEAVES).map_err(backend)?;
        w.open_table(MERKLE).map_err(backend)?;
        w.open_table(SEQUENCES).map_err(backend)?;
        w.open_table(STAGED).map_err(backend)?;
        w.open_table(IDS).map_err(backend)?;
        w.open_table(ENTERPRISE).map_err(backend)?;
        w.open_table(PATENT).map_err(backend)?;
        w.open_table(ATTESTER).map_err(backend)?;
        w.open_table(PLEDGES).map_err(backend)?;
        w.open_table(FACTS).map_err(backend)?;
        w.open_table(REFS).map_err(backend)?;
        w.open_table(CONSENTS).map_err(backend)?;
        w.open_table(READERS).map_err(backend)?;
        w.open_table(ID_RUNS).map_err(backend)?;
        meta.insert(KEY_GENESIS, genesis.0.as_slice()).map_err(backend)?;
        meta.insert(KEY_FORMAT, FORMAT_VERSION.to_be_bytes().as_slice()).map_err(backend)?;
        meta.insert(KEY_RUNS, Catalog::new(0).encode().as_slice()).map_err(backend)?;
        meta.insert(KEY_MERGED, encode_merged(Merged::default()).as_slice()).map_err(backend)?;
    }
    w.commit().map_err(backend)
}

/// Reads the head, merge point and merge cursor and checks that the tables agree with
/// them: the head's header and certificate are present and match, nothing lies beyond
/// the head, the leaves are exactly `0..tree_size`, the staged log covers exactly the
/// blocks after the merge point, the cursor's frozen range ends at a block between the
/// merge point and the head, and `ids` and `index_attester` hold the merged leaves (plus,
/// during a merge, at most the frozen ones; [`RedbStore::load_staged`] checks the exact
/// count against the cursor).
/// What [`check_head`] reads: the head, merge point, merge cursor, format and snapshot base.
type HeadCheck = (Option<Head>, Merged, Option<Cursor>, u32, Option<BaseAt>);

fn check_head(r: &ReadTransaction) -> Result<HeadCheck, StoreError> {
    let meta = r.open_table(META).map_err(open_err("meta"))?;
    let format = meta.get(KEY_FORMAT).map_err(backend)?.map(|v| v.value().to_vec());
    let format = match format.as_deref() {
        Some(b) if b == FORMAT_VERSION.to_be_bytes() => FORMAT_VERSION,
        Some(b) if b == FORMAT_ALL_MERKLE_LEVELS.to_be_bytes() => FORMAT_ALL_MERKLE_LEVELS,
        Some(b) if b == FORMAT_LEGACY_IDS.to_be_bytes() => FORMAT_LEGACY_IDS,
        _ => {
            return Err(corrupt(
                place("meta", KEY_FORMAT),
                format!(
                    "{format:?} is not format version {FORMAT_VERSION} (nor {FORMAT_ALL_MERKLE_LEVELS} or {FORMAT_LEGACY_IDS}, which are migrated)"
                ),
            ));
        }
    };
    let head = match meta.get(KEY_HEAD).map_err(backend)? {
        Some(v) => Some(decode_head(v.value())?),
        None => None,
    };
    let merged = match meta.get(KEY_MERGED).map_err(backend)? {
        Some(v) if v.value().len() == 16 => Merged { height: u64_at(v.value(), 0), tree_size: u64_at(v.value(), 8) },
        Some(v) => return Err(corrupt(place("meta", KEY_MERGED), format!("{} bytes, expected 16", v.value().len()))),
        None => return Err(corrupt(place("meta", KEY_MERGED), "missing")),
    };
    // Stores written before incremental merges have no cursor: nothing is frozen.
    let cursor = match meta.get(KEY_FROZEN).map_err(backend)? {
        None => None,
        Some(v) if v.value().len() == CURSOR_BYTES => {
            let b = v.value();
            Some(Cursor { to: Merged { height: u64_at(b, 0), tree_size: u64_at(b, 8) }, applied: u64_at(b, 16) })
        }
        Some(v) => {
            return Err(corrupt(
                place("meta", KEY_FROZEN),
                format!("{} bytes, expected {CURSOR_BYTES}", v.value().len()),
            ));
        }
    };
    let base = match meta.get(KEY_BASE).map_err(backend)? {
        None => None,
        Some(v) if v.value().len() == 16 => {
            Some(BaseAt { height: u64_at(v.value(), 0), tree_size: u64_at(v.value(), 8) })
        }
        Some(v) => return Err(corrupt(place("meta", KEY_BASE), format!("{} bytes, expected 16", v.value().len()))),
    };
    let below = base.map_or(0, |b| b.tree_size);
    if let Some(b) = base
        && (head.is_none_or(|h| h.height < b.height || h.tree_size < b.tree_size)
            || merged.height < b.height
            || merged.tree_size < b.tree_size)
    {
        return Err(corrupt(place("meta", KEY_BASE), format!("{b:?} is beyond the head or the merge point")));
    }
    let headers = r.open_table(HEADERS).map_err(open_err("headers"))?;
    let certs = r.open_table(CERTS).map_err(open_err("certs"))?;
    let leaves = r.open_table(LEAVES).map_err(open_err("leaves"))?;
    let staged = r.open_table(STAGED).map_err(open_err("staged_deltas"))?;
    let ids = r.open_table(IDS).map_err(open_err("ids"))?;
    let attester = r.open_table(ATTESTER).map_err(open_err("index_attester"))?;
    r.open_table(FIRST_LEAF).map_err(open_err("block_by_first_leaf"))?;
    r.open_table(SEQUENCES).map_err(open_err("sequences"))?;
    r.open_table(ENTERPRISE).map_err(open_err("index_enterprise"))?;
    r.open_table(PATENT).map_err(open_err("index_patent"))?;
    r.open_table(PLEDGES).map_err(open_err("pledges"))?;
    let height = head.map_or(0, |h| h.height);
    let tree_size = head.map_or(0, |h| h.tree_size);
    let last = |t: &redb::ReadOnlyTable<u64, &[u8]>| -> Result<Option<u64>, StoreError> {
        Ok(t.last().map_err(backend)?.map(|(k, _)| k.value()))
    };
    if let Some(head) = head {
        let Some(b) = headers.get(head.height).map_err(backend)? else {
            return Err(corrupt(place("headers", head.height), "the head's header is missing"));
        };
        let header = decode_header(b.value(), head.height)?;
        if head_of(&header) != head {
            return Err(corrupt(place("headers", head.height), "does not match the head in table meta"));
        }
        let Some(b) = certs.get(head.height).map_err(backend)? else {
            return Err(corrupt(place("certs", head.height), "the head's certificate is missing"));
        };
        let cert = decode_cert(b.value(), head.height)?;
        if cert.body.block_hash != *head.hash.bytes() || cert.body.tree_size != head.tree_size {
            return Err(corrupt(place("certs", head.height), "does not certify the head"));
        }
    }
    if let Some(k) = last(&headers)?.filter(|k| *k != height) {
        return Err(corrupt(place("headers", k), format!("the last header is not the head's (height {height})")));
    }
    if let Some(k) = last(&certs)?.filter(|k| *k != height) {
        return Err(corrupt(place("certs", k), format!("the last certificate is not the head's (height {height})")));
    }
    let n = leaves.len().map_err(backend)?;
    if n != tree_size - below {
        return Err(corrupt(
            "table leaves",
            format!("{n} leaves, the head's tree size is {tree_size} (from leaf {below})"),
        ));
    }
    if let Some(k) = last(&leaves)?.filter(|k| k.checked_add(1) != Some(tree_size)) {
        return Err(corrupt(place("leaves", k), format!("beyond the head's tree size {tree_size}")));
    }
    if merged.height > height || merged.tree_size > tree_size {
        return Err(corrupt(place("meta", KEY_MERGED), format!("{merged:?} is beyond the head")));
    }
    let merged_size = match merged.height {
        0 => 0,
        h => match headers.get(h).map_err(backend)? {
            Some(b) => decode_header(b.value(), h)?.tree_size,
            None => return Err(corrupt(place("headers", h), "the merge point's header is missing")),
        },
    };
    if merged_size != merged.tree_size {
        return Err(corrupt(
            place("meta", KEY_MERGED),
            format!("tree size {} is not block {}'s", merged.tree_size, merged.height),
        ));
    }
    let staged_n = staged.len().map_err(backend)?;
    let first = staged.first().map_err(backend)?.map(|(k, _)| k.value());
    let last_staged = last(&staged)?;
    let expected = (merged.height < height).then_some((merged.height + 1, height));
    if staged_n != height - merged.height || first.zip(last_staged) != expected {
        return Err(corrupt(
            "table staged_deltas",
            format!("does not hold exactly blocks {} to {height}", merged.height + 1),
        ));
    }
    if let Some(c) = cursor {
        if c.to.height <= merged.height || c.to.height > height {
            return Err(corrupt(
                place("meta", KEY_FROZEN),
                format!(
                    "frozen blocks end at {}, not after the merge point {} and at most the head {height}",
                    c.to.height, merged.height
                ),
            ));
        }
        let size = match headers.get(c.to.height).map_err(backend)? {
            Some(b) => decode_header(b.value(), c.to.height)?.tree_size,
            None => return Err(corrupt(place("headers", c.to.height), "the frozen blocks' last header is missing")),
        };
        if size != c.to.tree_size {
            return Err(corrupt(
                place("meta", KEY_FROZEN),
                format!("tree size {} is not block {}'s", c.to.tree_size, c.to.height),
            ));
        }
    }
    let most = cursor.map_or(merged.tree_size, |c| c.to.tree_size);
    // In format 2 the ids are in `id_runs`, whose counts the catalog accounts for (checked on
    // load). Records below a snapshot base have ids but no index entries.
    let ids_len = match format {
        FORMAT_LEGACY_IDS => Some(ids.len()),
        _ => None,
    };
    for (table, len, from) in [("ids", ids_len, 0), ("index_attester", Some(attester.len()), below)] {
        let Some(len) = len else { continue };
        let len = len.map_err(backend)?;
        if len < merged.tree_size - from || len > most - from {
            return Err(corrupt(
                format!("table {table}"),
                format!("{len} entries for {} merged leaves", merged.tree_size),
            ));
        }
    }
    Ok((head, merged, cursor, format, base))
}

// ---------------------------------------------------------------------------------------------
// Committing
// ---------------------------------------------------------------------------------------------

/// The tables a commit writes, opened once.
struct Tables<'t> {
    meta: Table<'t, &'static str, &'static [u8]>,
    headers: Table<'t, u64, &'static [u8]>,
    certs: Table<'t, u64, &'static [u8]>,
    first_leaf: Table<'t, u64, u64>,
    leaves: Table<'t, u64, &'static [u8]>,
    merkle: Table<'t, &'static [u8; 9], &'static [u8; 32]>,
    sequences: Table<'t, u16, u64>,
    staged: Table<'t, u64, &'static [u8]>,
}

impl<'t> Tables<'t> {
    fn open(w: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(Tables {
            meta: w.open_table(META).map_err(backend)?,
            headers: w.open_table(HEADERS).map_err(backend)?,
            certs: w.open_table(CERTS).map_err(backend)?,
            first_leaf: w.open_table(FIRST_LEAF).map_err(backend)?,
            leaves: w.open_table(LEAVES).map_err(backend)?,
            merkle: w.open_table(MERKLE).map_err(backend)?,
            sequences: w.open_table(SEQUENCES).map_err(backend)?,
            staged: w.open_table(STAGED).map_err(backend)?,
        })
    }
}

impl RedbStore {
    /// Writes the block's own data: header, certificate, leaves, Merkle nodes, sequences, head.
    fn write_block(&self, t: &mut Tables<'_>, vb: &ValidBlock, first: u64) -> Result<(), StoreError> {
        let header = vb.header();
        let height = header.height;
        let leaves = &vb.certified().block.leaves;
        t.headers.insert(height, header.to_bytes().as_slice()).map_err(backend)?;
        t.certs.insert(height, vb.certified().certificate.to_note().as_bytes()).map_err(backend)?;
        if !leaves.is_empty() {
            t.first_leaf.insert(first, height).map_err(backend)?;
        }
        for (offset, leaf) in leaves.iter().enumerate() {
            t.leaves.insert(first + offset as u64, leaf.bytes.as_slice()).map_err(backend)?;
        }
        // Nodes of levels >= 1 the block completes, and those of them `merkle` keeps.
        let (mut above, mut kept) = (0u64, 0u64);
        for (level, index, hash) in vb.merkle_nodes() {
            if *level == 0 {
                debug_assert!(
                    index
                        .checked_sub(first)
                        .and_then(|o| leaves.get(o as usize))
                        .is_some_and(|l| l.leaf_hash() == *hash),
                    "level-0 node {index} is the hash of its leaf"
                );
                continue;
            }
            above += 1;
            if kept_level(*level) {
                kept += 1;
                t.merkle.insert(&merkle_key(*level, *index), hash).map_err(backend)?;
            }
        }
        let old = first - u64::from(first.count_ones());
        let new = header.tree_size - u64::from(header.tree_size.count_ones());
        debug_assert_eq!(old + above, new, "a block completes exactly the nodes the new size adds");
        debug_assert_eq!(
            kept_nodes(first) + kept,
            kept_nodes(header.tree_size),
            "a block stores exactly the nodes of the kept levels the new size adds"
        );
        for (member, next) in &vb.delta().sequences {
            t.sequences.insert(*member, *next).map_err(backend)?;
        }
        t.meta.insert(KEY_HEAD, encode_head(&head_of(header)).as_slice()).map_err(backend)?;
        Ok(())
    }

    /// Writes the block, stages it in the active generation and does this commit's slice
    /// of merge work (see "Incremental merges" in the module documentation):
    ///
    /// 1. if the active generation has reached the limit while one is still frozen, the
    ///    frozen one is finished now, whatever its size (the rare, bounded case: the slices
    ///    are sized to finish it when the active one is half full);
    /// 2. if nothing is frozen and the active generation has reached the limit, it is
    ///    frozen and its merge ops computed (in memory only: they are a pure function of
    ///    the generation);
    /// 3. the frozen generation's next ops are applied, at most the slice's size
    ///    ([`slice_ops`]) less what step 1 wrote; none if step 2 froze it (unless the
    ///    limit is 0: then everything, at once).
    fn write_commit(
        &mut self,
        w: &WriteTransaction,
        vb: &ValidBlock,
        entries: Entries,
        first: u64,
    ) -> Result<(), StoreError> {
        let header = vb.header();
        let n = header.tree_size - first;
        let mut t = Tables::open(w)?;
        self.write_block(&mut t, vb, first)?;
        if let Some(g) = &vb.delta().governance {
            let mut table = w.open_table(GOVERNANCE).map_err(backend)?;
            table.insert(header.height, crate::codec::encode(&**g).as_slice()).map_err(backend)?;
        }
        // Logged even if merged in this very commit (then deleted again with the generation).
        t.staged.insert(header.height, encode_delta(vb.delta()).as_slice()).map_err(backend)?;
        self.active.absorb(entries, n, vb.delta());
        let limit = self.options.stage_leaves_max;
        let full = self.active.leaves >= limit;
        let based = self.base.is_some();
        let mut written = 0;
        if full && self.frozen.is_some() {
            written +=
                apply_frozen(w, &mut t, based, &mut self.frozen, &mut self.merged, usize::MAX, &mut self.id_runs)?;
        }
        let mut froze = false;
        if full && self.frozen.is_none() {
            let staged = std::mem::take(&mut self.active);
            let ops = MergeOps::build(&staged)?;
            let to = Merged { height: header.height, tree_size: header.tree_size };
            let run = Some(self.id_runs.start_building()?);
            self.frozen = Some(Frozen { to, staged, ops, applied: 0, run });
            froze = true;
        }
        if let Some(f) = &self.frozen {
            let slice = match slice_ops(f.ops.len(), n, limit, self.options.merge_ops_per_commit_max) {
                // Freezing (building the list) is this commit's merge work; slices start with the next.
                _ if froze && limit > 0 => 0,
                s => s.saturating_sub(written),
            };
            written += apply_frozen(w, &mut t, based, &mut self.frozen, &mut self.merged, slice, &mut self.id_runs)?;
        }
        self.last_commit_ops = written;
        // Merging id runs: sequential reads, appends and deletes, bounded per commit.
        self.last_commit_compact_ops = match self.id_runs.has_work() {
            true => self.id_runs.work(w, IdRuns::budget(n, self.options.compact_ops_per_commit_max.max(1)))?,
            false => 0,
        };
        if self.id_runs.dirty {
            t.meta.insert(KEY_RUNS, self.id_runs.catalog.encode().as_slice()).map_err(backend)?;
            self.id_runs.dirty = false;
        }
        let below = self.base.map_or((0, 0), |b| (b.tree_size, b.height - 1));
        debug_assert_eq!(t.leaves.len().ok(), Some(header.tree_size - below.0));
        debug_assert_eq!(t.headers.len().ok(), Some(header.height - below.1));
        debug_assert_eq!(t.staged.len().ok(), Some(header.height - self.merged.height));
        Ok(())
    }
}

/// Applies at most `max` more ops of the frozen generation and records the cursor; when
/// the last one is applied, deletes the generation's `staged_deltas` rows, moves the
/// merge point past it and drops the cursor instead. Returns the ops applied.
fn apply_frozen(
    w: &WriteTransaction,
    t: &mut Tables<'_>,
    based: bool,
    frozen: &mut Option<Frozen>,
    merged: &mut Merged,
    max: usize,
    runs: &mut IdRuns,
) -> Result<usize, StoreError> {
    let Some(f) = frozen else { return Ok(0) };
    let from = f.applied;
    let to = from.saturating_add(max).min(f.ops.len());
    f.ops.apply(w, t, (from, to), (f.run, based), runs)?;
    f.applied = to;
    if to < f.ops.len() {
        let cursor = Cursor { to: f.to, applied: to as u64 };
        t.meta.insert(KEY_FROZEN, encode_cursor(cursor).as_slice()).map_err(backend)?;
        return Ok(to - from);
    }
    for height in merged.height + 1..=f.to.height {
        t.staged.remove(height).map_err(backend)?;
    }
    *merged = f.to;
    t.meta.insert(KEY_MERGED, encode_merged(*merged).as_slice()).map_err(backend)?;
    t.meta.remove(KEY_FROZEN).map_err(backend)?;
    if f.run.is_some() {
        let keys: Vec<IdKey> = f.ops.ids.iter().map(|(id, _, _)| id_key(id, 0)).collect();
        runs.finish_building(f.ops.ids.len() as u64, keys.iter());
    } else {
        debug_assert_eq!(w.open_table(IDS).ok().and_then(|t| t.len().ok()), Some(merged.tree_size));
    }
    *frozen = None;
    Ok(to - from)
}

// ---------------------------------------------------------------------------------------------
// The Store
// ---------------------------------------------------------------------------------------------

/// Appends the leaves `start..` of `key` in `sets` (each after the one before), up to `limit` in all.
fn staged_range<'a, K: StdHash + Eq + Copy + 'a>(
    out: &mut Vec<u64>,
    limit: usize,
    key: K,
    start: u64,
    sets: impl Iterator<Item = &'a Postings<K>>,
) {
    for set in sets {
        let rest = limit.saturating_sub(out.len());
        out.extend(set.from(&key, start).iter().take(rest));
    }
}

impl RedbStore {
    /// The staged generations, newest first: for point reads, whose newest value wins.
    fn newest_first(&self) -> impl Iterator<Item = &Staged> {
        std::iter::once(&self.active).chain(self.frozen.as_ref().map(|f| &f.staged))
    }

    /// The staged generations in leaf order: for index reads.
    fn oldest_first(&self) -> impl Iterator<Item = &Staged> {
        self.frozen.as_ref().map(|f| &f.staged).into_iter().chain(std::iter::once(&self.active))
    }
}

impl NodeReader for RedbStore {
    fn node(&self, level: u8, index: u64) -> Result<NodeHash, MerkleError> {
        let mut out = Vec::with_capacity(1);
        self.nodes(level, index, 1, &mut out)?;
        out.pop().ok_or(MerkleError::MissingNode { level, index })
    }

    /// One range read (of `leaves` below level 8, of `merkle` above) and the hashing of the
    /// levels not kept ("Merkle nodes kept" in the module documentation); node by node below
    /// a snapshot base.
    fn nodes(&self, level: u8, start: u64, count: usize, out: &mut Vec<NodeHash>) -> Result<(), MerkleError> {
        let missing = |index: u64| MerkleError::MissingNode { level, index };
        let end = start.checked_add(count as u64).ok_or(missing(u64::MAX))?;
        let before = out.len();
        // MerkleError has no variant for a failing store; an unreadable node is a missing one.
        let read = self.snapshot().and_then(|r| self.read_nodes(&r, level, start, end, out));
        let got = (out.len() - before) as u64;
        if read.is_err() || got != count as u64 {
            out.truncate(before);
            return Err(missing(start + got));
        }
        Ok(())
    }
}

impl RedbStore {
    /// Appends the nodes `(level, start .. end)` to `out`, in order, up to the first one that
    /// is not there: of an incomplete subtree, beyond the tree, or below a snapshot base and
    /// not on its frontier.
    fn read_nodes(
        &self,
        r: &ReadTransaction,
        level: u8,
        start: u64,
        end: u64,
        out: &mut Vec<NodeHash>,
    ) -> Result<(), StoreError> {
        // A node of level 64 or more would have 2^64 leaves or more.
        if level >= 64 {
            return Ok(());
        }
        let mut start = start;
        if let Some(b) = self.base {
            // The nodes that start below the base, one by one: the first node at or above it
            // is ⌈base / 2^level⌉.
            let above = b.tree_size.div_ceil(1u64 << level);
            while start < end.min(above) {
                match self.node_below_base(r, level, start, b.tree_size)? {
                    Some(h) => out.push(h),
                    None => return Ok(()),
                }
                start += 1;
            }
        }
        if start >= end {
            return Ok(());
        }
        if level.is_multiple_of(KEPT_LEVEL_STEP) {
            return self.for_each_kept(r, level, start, end, &mut |h| out.push(h));
        }
        // From the nodes of the kept level (or the leaves) below: 2^rise of them per node.
        let rise = level % KEPT_LEVEL_STEP;
        let Ok(from) = u64::try_from(u128::from(start) << rise) else { return Ok(()) };
        // A node whose leaves reach 2^64 cannot be complete in a tree of at most u64::MAX leaves.
        let to = u64::try_from(u128::from(end) << rise).unwrap_or(u64::MAX);
        let width = 1usize << rise;
        let mut group = Vec::with_capacity(width);
        self.for_each_kept(r, level - rise, from, to, &mut |h| {
            group.push(h);
            if group.len() == width {
                out.push(crate::merkle::perfect_root(&group));
                group.clear();
            }
        })
    }

    /// Calls `f` with the nodes `(level, from .. to)` of a kept level (or level 0: the leaves'
    /// hashes), all at or above any snapshot base, in order, up to the first one not stored.
    /// One range read.
    fn for_each_kept(
        &self,
        r: &ReadTransaction,
        level: u8,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(NodeHash),
    ) -> Result<(), StoreError> {
        debug_assert!(level.is_multiple_of(KEPT_LEVEL_STEP));
        if from >= to {
            return Ok(());
        }
        if level == 0 {
            let leaves = r.open_table(LEAVES).map_err(open_err("leaves"))?;
            for (expected, item) in (from..to).zip(leaves.range(from..to).map_err(backend)?) {
                let (k, v) = item.map_err(backend)?;
                if k.value() != expected {
                    break;
                }
                f(crate::merkle::leaf_hash(v.value()));
            }
            return Ok(());
        }
        let merkle = r.open_table(MERKLE).map_err(open_err("merkle"))?;
        let (lo, hi) = (merkle_key(level, from), merkle_key(level, to));
        for (expected, item) in (from..to).zip(merkle.range::<&[u8; 9]>(&lo..&hi).map_err(backend)?) {
            let (k, v) = item.map_err(backend)?;
            if *k.value() != merkle_key(level, expected) {
                break;
            }
            f(*v.value());
        }
        Ok(())
    }

    /// Node `(level, index)`, which starts below the snapshot base of `base` leaves: stored if
    /// it is on the base's frontier or of a kept level (then it ends above the base: written
    /// by the commit that completed it); otherwise, if it ends above the base, the hash of its
    /// children (the left one ends on the base's frontier, in at most `KEPT_LEVEL_STEP` steps).
    fn node_below_base(
        &self,
        r: &ReadTransaction,
        level: u8,
        index: u64,
        base: u64,
    ) -> Result<Option<NodeHash>, StoreError> {
        let (_, end) = node_span(level, index);
        // A level-0 node below the base ends at or below it.
        let below = level.checked_sub(1);
        if end <= u128::from(base) || kept_level(level) || below.is_none() {
            let merkle = r.open_table(MERKLE).map_err(open_err("merkle"))?;
            return Ok(merkle.get(&merkle_key(level, index)).map_err(backend)?.map(|v| *v.value()));
        }
        // The children end at 2^64 only for a node of the last leaves, which no tree completes.
        let (Some(below), Some(left)) = (below, index.checked_mul(2)) else { return Ok(None) };
        let Some(right_end) = left.checked_add(2) else { return Ok(None) };
        let mut children = Vec::with_capacity(2);
        self.read_nodes(r, below, left, right_end, &mut children)?;
        Ok(match children.as_slice() {
            [a, b] => Some(crate::merkle::node_hash(a, b)),
            _ => None,
        })
    }

    /// The leaf and metadata of a record merged into the id runs (or the legacy `ids` table).
    fn find_recorded(&self, r: &ReadTransaction, id: &AttestationId) -> Result<Option<(u64, RecordMeta)>, StoreError> {
        let runs = r.open_table(ID_RUNS).map_err(open_err("id_runs"))?;
        let legacy = r.open_table(IDS).map_err(open_err("ids"))?;
        let leaves = r.open_table(LEAVES).map_err(open_err("leaves"))?;
        let base = base_ids_table(r)?;
        self.id_runs.find(&runs, &legacy, &leaves, base.as_ref(), id)
    }
}

impl StateView for RedbStore {
    type Error = StoreError;

    fn next_sequence(&self, attester: u16) -> Result<u64, StoreError> {
        let r = self.snapshot()?;
        let t = r.open_table(SEQUENCES).map_err(open_err("sequences"))?;
        Ok(t.get(attester).map_err(backend)?.map_or(1, |v| v.value()))
    }

    fn record(&self, id: &AttestationId) -> Result<Option<RecordMeta>, StoreError> {
        if let Some(meta) = self.newest_first().find_map(|g| g.records.get(id)) {
            return Ok(Some(*meta));
        }
        let r = self.snapshot()?;
        Ok(self.find_recorded(&r, id)?.map(|(_, meta)| meta))
    }

    fn active_pledge(&self, patent: &PatentNumber) -> Result<Option<AttestationId>, StoreError> {
        if let Some(slot) = self.newest_first().find_map(|g| g.pledges.get(patent)) {
            return Ok(*slot);
        }
        let r = self.snapshot()?;
        let t = r.open_table(PLEDGES).map_err(open_err("pledges"))?;
        Ok(t.get(&<[u8; 13]>::from(*patent)).map_err(backend)?.map(|v| HashOf::from_hash(Hash(*v.value()))))
    }

    fn governance(&self) -> Result<Option<Arc<GovState>>, StoreError> {
        if self.poisoned {
            return Err(poisoned());
        }
        Ok(self.governance.clone())
    }

    fn fact(&self, key: &FactKey) -> Result<Option<Fact>, StoreError> {
        if let Some(slot) = self.newest_first().find_map(|g| g.facts.get(key)) {
            return Ok(slot.clone());
        }
        let r = self.snapshot()?;
        let t = match r.open_table(FACTS) {
            Ok(t) => t,
            // A store written before the IP-loan kinds: no facts merged yet.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(open_err("facts")(e)),
        };
        let k = fact_key(key);
        let Some(v) = t.get(&k).map_err(backend)? else { return Ok(None) };
        codec::decode::<Fact>("fact", v.value(), FACT_BYTES_MAX)
            .map(Some)
            .map_err(|e| corrupt(format!("table facts key {}", hex::encode(k)), e.to_string()))
    }
}

/// The `facts` table key of a fact key.
fn fact_key(k: &FactKey) -> [u8; 32] {
    Hash::digest(&[&codec::encode(k)]).0
}

/// A graceful close makes deferred commits durable (a crash loses them: see [`Store::commit_deferred`]).
impl Drop for RedbStore {
    fn drop(&mut self) {
        if self.deferred && !self.poisoned {
            let _ = Store::flush(self);
        }
    }
}

impl RedbStore {
    /// Whether a commit since the last durable one was deferred ([`Store::commit_deferred`]).
    pub fn has_deferred(&self) -> bool {
        self.deferred
    }

    /// [`Store::commit`] with the transaction's durability: `None` defers it to the next
    /// durable transaction ([`Store::flush`]); redb reopens after a crash at the last
    /// durable one.
    fn commit_with(&mut self, vb: &ValidBlock, durability: Durability) -> Result<(), StoreError> {
        self.refuse_read_only()?;
        let header = vb.header();
        let head_height = self.head.map_or(0, |h| h.height);
        if header.height != head_height + 1 {
            return Err(StoreError::NotNext { head: head_height, got: header.height });
        }
        let expected_prev = self.head.map_or(self.genesis_hash, |h| *h.hash.hash());
        if *header.prev.hash() != expected_prev {
            return Err(StoreError::BrokenLink { height: header.height });
        }
        self.snapshot()?;
        let leaves = &vb.certified().block.leaves;
        let first = self.head.map_or(0, |h| h.tree_size);
        let n = leaves.len() as u64;
        debug_assert_eq!(first + n, header.tree_size, "the head's tree size plus the block's leaves is the new size");
        debug_assert_eq!(self.merged.tree_size + self.staged_leaves(), first);
        let mut entries = Entries::default();
        let gov = vb.delta().governance.clone().unwrap_or_else(|| self.latest_governance());
        for (offset, leaf) in leaves.iter().enumerate() {
            entries.push(&gov, leaf, first + offset as u64);
        }

        let mut w = self.db.begin_write().map_err(backend)?;
        w.set_durability(durability).map_err(backend)?;
        // From here memory changes along with the transaction: if it fails, the store is
        // poisoned (memory may disagree with the file) and must be reopened.
        if let Err(e) = self.write_commit(&w, vb, entries, first) {
            self.poisoned = true;
            return Err(e);
        }
        // The snapshot pins the old state's pages; release it before they are freed.
        self.read = None;
        if let Err(e) = w.commit() {
            self.poisoned = true;
            return Err(backend(e));
        }
        self.deferred = matches!(durability, Durability::None);
        self.head = Some(head_of(header));
        if let Some(g) = &vb.delta().governance {
            self.governance = Some(Arc::clone(g));
        }
        self.read = Some(self.db.begin_read().map_err(backend)?);
        Ok(())
    }
}

impl Store for RedbStore {
    fn genesis_hash(&self) -> Hash {
        self.genesis_hash
    }

    fn head(&self) -> Result<Option<Head>, StoreError> {
        if self.poisoned {
            return Err(poisoned());
        }
        Ok(self.head)
    }

    fn commit(&mut self, vb: &ValidBlock) -> Result<(), StoreError> {
        self.commit_with(vb, Durability::Immediate)
    }

    fn commit_deferred(&mut self, vb: &ValidBlock) -> Result<(), StoreError> {
        self.commit_with(vb, Durability::None)
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        self.refuse_read_only()?;
        if !self.deferred {
            return Ok(());
        }
        if self.poisoned {
            return Err(poisoned());
        }
        // An empty durable transaction makes the non-durable ones before it durable.
        self.read = None;
        let w = self.db.begin_write().map_err(backend)?;
        if let Err(e) = w.commit() {
            self.poisoned = true;
            return Err(backend(e));
        }
        self.deferred = false;
        self.read = Some(self.db.begin_read().map_err(backend)?);
        Ok(())
    }

    fn header(&self, height: u64) -> Result<Option<BlockHeader>, StoreError> {
        self.check_height(height, "header", false)?;
        let r = self.snapshot()?;
        let t = r.open_table(HEADERS).map_err(open_err("headers"))?;
        match t.get(height).map_err(backend)? {
            Some(v) => Ok(Some(decode_header(v.value(), height)?)),
            None => Ok(None),
        }
    }

    fn certificate(&self, height: u64) -> Result<Option<Checkpoint>, StoreError> {
        self.check_height(height, "certificate", false)?;
        let r = self.snapshot()?;
        let t = r.open_table(CERTS).map_err(open_err("certs"))?;
        match t.get(height).map_err(backend)? {
            Some(v) => Ok(Some(decode_cert(v.value(), height)?)),
            None => Ok(None),
        }
    }

    fn block(&self, height: u64) -> Result<Option<CertifiedBlock>, StoreError> {
        self.check_height(height, "block", true)?;
        let Some(header) = self.header(height)? else { return Ok(None) };
        let Some(certificate) = self.certificate(height)? else {
            return Err(corrupt(place("certs", height), "missing for a stored header"));
        };
        let first = match height.saturating_sub(1) {
            0 => 0,
            prev => match self.header(prev)? {
                Some(h) => h.tree_size,
                None => return Err(corrupt(place("headers", prev), "missing below a stored header")),
            },
        };
        let Some(count) = header.tree_size.checked_sub(first) else {
            return Err(corrupt(
                place("headers", height),
                format!("tree size {} below block {}'s", header.tree_size, height - 1),
            ));
        };
        let r = self.snapshot()?;
        let t = r.open_table(LEAVES).map_err(open_err("leaves"))?;
        let mut leaves = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(1 << 16));
        for (expected, item) in (first..).zip(t.range(first..header.tree_size).map_err(backend)?) {
            let (k, v) = item.map_err(backend)?;
            if k.value() != expected {
                return Err(corrupt(place("leaves", expected), "missing"));
            }
            leaves.push(decode_leaf(v.value(), expected)?);
        }
        if leaves.len() as u64 != count {
            return Err(corrupt(place("leaves", first + leaves.len() as u64), "missing"));
        }
        Ok(Some(CertifiedBlock { block: Block { header, leaves }, certificate }))
    }

    fn leaf_bytes(&self, start: u64, count: usize, out: &mut Vec<Vec<u8>>) -> Result<(), StoreError> {
        if let Some(b) = self.base
            && start < b.tree_size
            && count > 0
        {
            return Err(b.not_held(format!("leaf {start}")));
        }
        let end = start.saturating_add(count as u64);
        let r = self.snapshot()?;
        let t = r.open_table(LEAVES).map_err(open_err("leaves"))?;
        let before = out.len();
        for (expected, item) in (start..end).zip(t.range(start..end).map_err(backend)?) {
            let (k, v) = item.map_err(backend)?;
            if k.value() != expected {
                return Err(corrupt(place("leaves", expected), "missing"));
            }
            out.push(v.value().to_vec());
        }
        let got = (out.len() - before) as u64;
        if got != count as u64 {
            return Err(corrupt(place("leaves", start + got), "missing"));
        }
        Ok(())
    }

    fn leaf(&self, index: u64) -> Result<Option<Leaf>, StoreError> {
        if let Some(b) = self.base
            && index < b.tree_size
        {
            return Err(b.not_held(format!("leaf {index}")));
        }
        let r = self.snapshot()?;
        let t = r.open_table(LEAVES).map_err(open_err("leaves"))?;
        match t.get(index).map_err(backend)? {
            Some(v) => Ok(Some(decode_leaf(v.value(), index)?)),
            None => Ok(None),
        }
    }

    fn locate(&self, id: &AttestationId) -> Result<Option<Location>, StoreError> {
        let r = self.snapshot()?;
        let leaf_index = match self.newest_first().find_map(|g| g.ids.get(id)) {
            Some(leaf) => *leaf,
            None => match self.find_recorded(&r, id)? {
                Some((leaf, _)) => leaf,
                None => return Ok(None),
            },
        };
        if let Some(b) = self.base
            && leaf_index < b.tree_size
        {
            return Err(b.not_held(format!("the block of record {id} (leaf {leaf_index})")));
        }
        let t = r.open_table(FIRST_LEAF).map_err(open_err("block_by_first_leaf"))?;
        let found = t.range(..=leaf_index).map_err(backend)?.next_back().transpose().map_err(backend)?;
        let Some((_, height)) = found else {
            return Err(corrupt("table block_by_first_leaf", format!("no block holds leaf {leaf_index}")));
        };
        Ok(Some(Location { height: height.value(), leaf_index }))
    }

    fn leaf_ids(&self, start: u64, count: usize, out: &mut Vec<AttestationId>) -> Result<(), StoreError> {
        let end = start.saturating_add(count as u64);
        let below = self.base.map_or(0, |b| b.tree_size);
        if start < below {
            let r = self.snapshot()?;
            let t = r.open_table(BASE_IDS).map_err(open_err("base_ids"))?;
            let to = end.min(below);
            for (expected, item) in (start..to).zip(t.range(start..to).map_err(backend)?) {
                let (k, v) = item.map_err(backend)?;
                if k.value() != expected {
                    return Err(corrupt(place("base_ids", expected), "missing"));
                }
                out.push(HashOf::from_hash(Hash(*v.value())));
            }
        }
        if end > below {
            let from = start.max(below);
            let mut bytes = Vec::with_capacity((end - from) as usize);
            self.leaf_bytes(from, (end - from) as usize, &mut bytes)?;
            out.extend(bytes.iter().map(|b| crate::block::leaf_id(b)));
        }
        Ok(())
    }

    /// The `facts` table merged with the staged generations (newest first: a staged value,
    /// or removal, wins over the table's), ascending by key.
    fn for_each_fact(&self, f: &mut FactVisitor<'_>) -> Result<(), StoreError> {
        let mut staged: std::collections::BTreeMap<[u8; 32], Option<Vec<u8>>> = std::collections::BTreeMap::new();
        for g in self.newest_first() {
            for (k, v) in &g.facts {
                staged.entry(fact_key_hash(k)).or_insert_with(|| v.as_ref().map(codec::encode));
            }
        }
        let mut staged = staged.into_iter().peekable();
        let r = self.snapshot()?;
        match r.open_table(FACTS) {
            Ok(t) => {
                for item in t.iter().map_err(backend)? {
                    let (k, v) = item.map_err(backend)?;
                    let key = *k.value();
                    while let Some((sk, sv)) = staged.next_if(|(sk, _)| *sk < key) {
                        if let Some(sv) = sv {
                            f(&sk, &sv)?;
                        }
                    }
                    // A staged value (or removal) replaces the table's.
                    if let Some((_, sv)) = staged.next_if(|(sk, _)| *sk == key) {
                        if let Some(sv) = sv {
                            f(&key, &sv)?;
                        }
                        continue;
                    }
                    f(&key, v.value())?;
                }
            }
            // A store written before the IP-loan kinds: no facts merged yet.
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(open_err("facts")(e)),
        }
        for (sk, sv) in staged {
            if let Some(sv) = sv {
                f(&sk, &sv)?;
            }
        }
        Ok(())
    }

    fn base(&self) -> Option<BaseAt> {
        self.base
    }

    fn read_view(&self) -> Result<Option<Box<dyn Store + Send + Sync>>, StoreError> {
        Ok(Some(Box::new(RedbStore::read_view(self)?)))
    }

    fn import_snapshot(
        &mut self,
        base: &Base,
        items: &mut dyn Iterator<Item = Result<Item, SnapshotError>>,
    ) -> Result<(), StoreError> {
        self.refuse_read_only()?;
        if self.head()?.is_some() {
            return Err(StoreError::Import(
                "the store is not empty: a snapshot is imported only into a new store".into(),
            ));
        }
        let at = BaseAt { height: base.header.height, tree_size: base.header.tree_size };
        let head = head_of(&base.header);
        let import = |e: SnapshotError| StoreError::Import(e.to_string());
        self.read = None;
        let w = self.db.begin_write().map_err(backend)?;
        let mut governance = None;
        {
            let mut meta = w.open_table(META).map_err(backend)?;
            let mut headers = w.open_table(HEADERS).map_err(backend)?;
            let mut certs = w.open_table(CERTS).map_err(backend)?;
            let mut merkle = w.open_table(MERKLE).map_err(backend)?;
            let mut sequences = w.open_table(SEQUENCES).map_err(backend)?;
            let mut ids = w.open_table(IDS).map_err(backend)?;
            let mut base_ids = w.open_table(BASE_IDS).map_err(backend)?;
            let mut pledges = w.open_table(PLEDGES).map_err(backend)?;
            let mut facts = w.open_table(FACTS).map_err(backend)?;
            let mut gov = w.open_table(GOVERNANCE).map_err(backend)?;
            headers.insert(at.height, base.header.to_bytes().as_slice()).map_err(backend)?;
            certs.insert(at.height, base.certificate.to_note().as_bytes()).map_err(backend)?;
            for (level, index, hash) in &base.frontier {
                merkle.insert(&merkle_key(*level, *index), hash).map_err(backend)?;
            }
            let mut records = 0u64;
            for item in items {
                match item.map_err(import)? {
                    Item::Sequence(m, next) => {
                        sequences.insert(m, next).map_err(backend)?;
                    }
                    Item::Record(i, id, m) => {
                        ids.insert(&id_key(&id, i), &encode_meta(&m)).map_err(backend)?;
                        base_ids.insert(i, id.bytes()).map_err(backend)?;
                        records += 1;
                    }
                    Item::Pledge(p, id) => {
                        pledges.insert(&<[u8; 13]>::from(p), id.bytes()).map_err(backend)?;
                    }
                    Item::Governance(g) => {
                        gov.insert(at.height, codec::encode(&*g).as_slice()).map_err(backend)?;
                        governance = Some(g);
                    }
                    Item::Fact(k, f) => {
                        facts.insert(&k, codec::encode(&f).as_slice()).map_err(backend)?;
                    }
                }
            }
            if records != at.tree_size {
                return Err(StoreError::Import(format!("{records} records for a tree of {} leaves", at.tree_size)));
            }
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&at.height.to_be_bytes());
            b[8..].copy_from_slice(&at.tree_size.to_be_bytes());
            meta.insert(KEY_BASE, b.as_slice()).map_err(backend)?;
            // The imported records are the oldest id run: the `ids` table, never written again.
            meta.insert(KEY_RUNS, Catalog::new(records).encode().as_slice()).map_err(backend)?;
            meta.insert(KEY_HEAD, encode_head(&head).as_slice()).map_err(backend)?;
            let merged = Merged { height: at.height, tree_size: at.tree_size };
            meta.insert(KEY_MERGED, encode_merged(merged).as_slice()).map_err(backend)?;
        }
        w.commit().map_err(backend)?;
        self.head = Some(head);
        self.merged = Merged { height: at.height, tree_size: at.tree_size };
        self.base = Some(at);
        self.governance = governance;
        self.read = Some(self.db.begin_read().map_err(backend)?);
        let catalog = self.read_catalog()?;
        let r = self.snapshot()?;
        let runs = r.open_table(ID_RUNS).map_err(open_err("id_runs"))?;
        let legacy = r.open_table(IDS).map_err(open_err("ids"))?;
        let id_runs = IdRuns::load(catalog, &runs, &legacy, 0)?;
        drop((runs, legacy, r));
        self.id_runs = id_runs;
        Ok(())
    }

    fn query(&self, key: IndexKey<'_>, after: Option<u64>, limit: usize) -> Result<Vec<u64>, StoreError> {
        let limit = limit.min(QUERY_LIMIT_MAX);
        if after == Some(u64::MAX) || limit == 0 {
            return Ok(Vec::new());
        }
        let start = after.map_or(0, |a| a + 1);
        let r = self.snapshot()?;
        let mut out = Vec::new();
        // Merged leaves precede frozen ones, which precede active ones. The tables may
        // also hold some of the frozen leaves' entries (a merge under way), but the frozen
        // generation holds all of them: the tables are read only below the merge point, so
        // each leaf comes from one place, in order.
        let table_leaves = (start, self.merged.tree_size);
        let generations = || self.oldest_first();
        match key {
            IndexKey::Enterprise(e) => {
                let t = r.open_table(ENTERPRISE).map_err(open_err("index_enterprise"))?;
                index_range(&t, e.as_bytes(), table_leaves, limit, &mut out)?;
                staged_range(&mut out, limit, *e, start, generations().map(|g| &g.enterprise));
            }
            IndexKey::Patent(p) => {
                let t = r.open_table(PATENT).map_err(open_err("index_patent"))?;
                index_range(&t, &<[u8; 13]>::from(*p), table_leaves, limit, &mut out)?;
                staged_range(&mut out, limit, *p, start, generations().map(|g| &g.patent));
            }
            IndexKey::Attester(m) => {
                let t = r.open_table(ATTESTER).map_err(open_err("index_attester"))?;
                index_range(&t, &m.to_be_bytes(), table_leaves, limit, &mut out)?;
                staged_range(&mut out, limit, m, start, generations().map(|g| &g.attester));
            }
            IndexKey::Refers(id) => {
                match r.open_table(REFS) {
                    Ok(t) => index_range(&t, id.bytes(), table_leaves, limit, &mut out)?,
                    // A store written before the IP-loan kinds: nothing merged refers to anything.
                    Err(redb::TableError::TableDoesNotExist(_)) => {}
                    Err(e) => return Err(open_err("index_refs")(e)),
                }
                staged_range(&mut out, limit, *id, start, generations().map(|g| &g.refers));
            }
            IndexKey::Consents(e) => {
                let t = r.open_table(CONSENTS).map_err(open_err("index_consents"))?;
                index_range(&t, e.as_bytes(), table_leaves, limit, &mut out)?;
                staged_range(&mut out, limit, *e, start, generations().map(|g| &g.consents));
            }
            IndexKey::Reader(m) => {
                let t = r.open_table(READERS).map_err(open_err("index_queries_by_reader"))?;
                index_range(&t, &m.to_be_bytes(), table_leaves, limit, &mut out)?;
                staged_range(&mut out, limit, m, start, generations().map(|g| &g.readers));
            }
        }
        Ok(out)
    }
}

/// Test support for this module's tests and other modules' (snapshot imports).
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::merkle::{consistency_proof, inclusion_proof, root_at};

    /// A [`NodeReader`] over a `dyn` one (the proof functions take a sized reader).
    struct Dyn<'a>(&'a dyn NodeReader);
    impl NodeReader for Dyn<'_> {
        fn node(&self, level: u8, index: u64) -> Result<NodeHash, MerkleError> {
            self.0.node(level, index)
        }
    }

    /// Rewrites the closed store at `path` as format 2 wrote it: every node of a level above 0
    /// in `merkle` (from `full`, which has them all), from a snapshot base on (below it format 2
    /// held the base's frontier only, as format 3 does). Returns the nodes put back.
    pub(crate) fn rewrite_as_format_2(path: &Path, full: &dyn NodeReader) -> u64 {
        let db = Database::open(path).unwrap();
        let w = db.begin_write().unwrap();
        let mut added = 0;
        {
            let mut meta = w.open_table(META).unwrap();
            let head = decode_head(meta.get(KEY_HEAD).unwrap().unwrap().value()).unwrap();
            let base = meta.get(KEY_BASE).unwrap().map_or(0, |v| u64_at(v.value(), 8));
            let mut merkle = w.open_table(MERKLE).unwrap();
            for level in (1..64u8).filter(|l| !kept_level(*l)) {
                for index in 0..head.tree_size >> level {
                    if node_span(level, index).1 <= u128::from(base) {
                        continue;
                    }
                    merkle.insert(&merkle_key(level, index), &full.node(level, index).unwrap()).unwrap();
                    added += 1;
                }
            }
            meta.insert(KEY_FORMAT, FORMAT_ALL_MERKLE_LEVELS.to_be_bytes().as_slice()).unwrap();
        }
        w.commit().unwrap();
        added
    }

    /// The rows of `merkle` as (level, index).
    pub(crate) fn merkle_rows(store: &RedbStore) -> Vec<(u8, u64)> {
        let r = store.snapshot().unwrap();
        let t = r.open_table(MERKLE).unwrap();
        t.iter()
            .unwrap()
            .map(|i| {
                let k = *i.unwrap().0.value();
                (k[0], u64_at(&k, 1))
            })
            .collect()
    }

    /// `model`'s nodes `(level, start .. start + count)`, read one by one: the first missing
    /// one is the error.
    fn one_by_one(model: &dyn NodeReader, level: u8, start: u64, count: u64) -> Result<Vec<NodeHash>, MerkleError> {
        (start..start + count).map(|i| model.node(level, i)).collect()
    }

    /// `node` at every level 0..=20 and every index of the tree of `size` leaves (and the next
    /// two), `nodes` over windows at the start, middle and end of each level and beyond, and
    /// roots, inclusion and consistency proofs at sizes up to `size` give what `model` (which
    /// stores every node) gives: the same hashes, the same missing nodes, the same errors.
    pub(crate) fn same_tree(ctx: &str, store: &RedbStore, model: &dyn NodeReader, size: u64) {
        for level in 0..=20u8 {
            let n = size >> level;
            for index in 0..n + 2 {
                assert_eq!(store.node(level, index), model.node(level, index), "{ctx}: node({level}, {index})");
            }
            let windows =
                [(0, n), (0, n + 1), (n / 3, n - n / 3), (n / 2, 1), (n.saturating_sub(5), 7), (n, 0), (n, 2)];
            for (start, count) in windows.into_iter().chain([(1, 300), (3, 257), (u64::MAX, 1)]) {
                let mut got = vec![[7u8; 32]];
                let read = store.nodes(level, start, count as usize, &mut got);
                assert_eq!(got[0], [7u8; 32], "{ctx}: nodes appends");
                assert!(read.is_ok() || got.len() == 1, "{ctx}: a failed nodes() appends nothing");
                let want = if start == u64::MAX {
                    Err(MerkleError::MissingNode { level, index: u64::MAX })
                } else {
                    one_by_one(model, level, start, count)
                };
                let read = read.map(|()| got.split_off(1));
                assert_eq!(read, want, "{ctx}: nodes({level}, {start}, {count})");
            }
        }
        let model = Dyn(model);
        let mut sizes = vec![1, 2, 3, 7, 255, 256, 257, 511, 513, size / 2 + 1, size - 1, size];
        sizes.retain(|m| (1..=size).contains(m));
        for &m in &sizes {
            assert_eq!(root_at(m, store), root_at(m, &model), "{ctx}: root_at({m})");
            let leaves = (0..m).step_by(17).chain([m - 1, m / 2, m.saturating_sub(256)]);
            for i in leaves {
                assert_eq!(inclusion_proof(i, m, store), inclusion_proof(i, m, &model), "{ctx}: inclusion({i}, {m})");
            }
            for &k in sizes.iter().chain(&[m / 3 + 1, m.saturating_sub(1).max(1)]) {
                if k <= m {
                    assert_eq!(
                        consistency_proof(k, m, store),
                        consistency_proof(k, m, &model),
                        "{ctx}: consistency({k}, {m})"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::ChainBuilder;

    /// `Postings` against the ordered set of `(key, leaf)` pairs it replaced: the same leaves
    /// from any start, a leaf naming a key twice kept once, and the merge list's keys sorted.
    #[test]
    fn postings_answer_as_an_ordered_set_of_pairs_does() {
        let mut postings = Postings::<u16>::default();
        let mut model = std::collections::BTreeSet::new();
        let mut leaf = 0u64;
        for block in 0..40u64 {
            let mut entries = Vec::new();
            for i in 0..(block % 7) * 3 {
                leaf += 1 + (block * i) % 3;
                // Keys repeat within and across blocks; some leaves name their key twice.
                let key = ((leaf * 2_654_435_761) % 11) as u16;
                entries.push((key, leaf));
                if leaf.is_multiple_of(5) {
                    entries.push((key, leaf));
                }
                model.insert((key, leaf));
            }
            postings.extend(entries);
        }
        for key in 0..12u16 {
            for start in [0, 1, leaf / 3, leaf / 2, leaf, leaf + 1] {
                let want: Vec<u64> = model.range((key, start)..=(key, u64::MAX)).map(|(_, l)| *l).collect();
                assert_eq!(postings.from(&key, start), want.as_slice(), "key {key} from {start}");
            }
        }
        let want: Vec<[u8; 10]> = model.iter().map(|(k, l)| attester_key(*k, *l)).collect();
        assert_eq!(postings.table_keys(|k, l| attester_key(*k, l)), want);
    }

    /// A closed store of `blocks` blocks of 20 attestations, all merged into the index tables.
    fn store_with(blocks: u64) -> (tempfile::TempDir, std::path::PathBuf, ChainBuilder, Vec<ValidBlock>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.redb");
        let mut builder = ChainBuilder::new(3, 1_600_000_000_000).unwrap();
        let options = RedbOptions { stage_leaves_max: 0, ..RedbOptions::default() };
        let mut store = RedbStore::open_with(&path, builder.genesis(), options).unwrap();
        let mut vbs = Vec::new();
        for _ in 0..blocks {
            let vb = builder.next_block(20).unwrap();
            store.commit(&vb).unwrap();
            vbs.push(vb);
        }
        (dir, path, builder, vbs)
    }

    /// Changes the file directly, as a bug or a bad disk might.
    fn tamper(path: &Path, f: impl FnOnce(&WriteTransaction)) {
        let db = Database::open(path).unwrap();
        let w = db.begin_write().unwrap();
        f(&w);
        w.commit().unwrap();
    }

    fn corrupt_at(r: Result<impl fmt::Debug, StoreError>) -> (String, String) {
        match r {
            Err(StoreError::Corrupt { place, reason }) => (place, reason),
            Err(e) => panic!("expected Corrupt, got {e}"),
            Ok(_) => panic!("expected Corrupt, got a value"),
        }
    }

    #[test]
    fn metadata_and_deltas_round_trip() {
        let patent = PatentNumber::try_from(*b"2023101234567")
            .unwrap_or_else(|_| crate::demo::patents(&mut crate::demo::DemoRng::new(1), 1)[0]);
        let metas = [
            RecordMeta { attester: 3, kind: ClaimKind::RdSpend, status: RecordStatus::Active, pledge: None },
            RecordMeta {
                attester: 65535,
                kind: ClaimKind::PatentPledge,
                status: RecordStatus::Released,
                pledge: Some((patent, 2)),
            },
            RecordMeta { attester: 0, kind: ClaimKind::Revocation, status: RecordStatus::Revoked, pledge: None },
        ];
        for m in metas {
            assert_eq!(decode_meta(&encode_meta(&m), &String::new).unwrap(), m);
        }
        let id = HashOf::from_hash(Hash([7; 32]));
        let delta = StateDelta {
            sequences: vec![(1, 5)],
            records: metas.iter().map(|m| (id, *m)).collect(),
            pledges: vec![(patent, Some(id)), (patent, None)],
            governance: None,
            facts: vec![],
            attesters: vec![],
        };
        let bytes = encode_delta(&delta);
        assert_eq!(decode_delta(&bytes, 9).unwrap(), (delta.records.clone(), delta.pledges.clone(), vec![]));
        // With facts: the section follows the pledges.
        let facts = vec![
            (FactKey::Record(id), Some(Fact::Taken(id))),
            (FactKey::Enrolment(id, id), None),
            (FactKey::Patent(patent.into()), Some(Fact::Taken(id))),
        ];
        let with = StateDelta { facts: facts.clone(), ..delta.clone() };
        let wbytes = encode_delta(&with);
        assert_eq!(decode_delta(&wbytes, 9).unwrap(), (delta.records.clone(), delta.pledges.clone(), facts));
        for cut in [bytes.len() + 1, bytes.len() + 10, wbytes.len() - 1] {
            let (place, _) = corrupt_at(decode_delta(&wbytes[..cut], 9));
            assert_eq!(place, "table staged_deltas, key 9");
        }
        for cut in [0, 3, 30, bytes.len() - 1] {
            let (place, _) = corrupt_at(decode_delta(&bytes[..cut], 9));
            assert_eq!(place, "table staged_deltas, key 9");
        }
        let mut long = bytes.clone();
        long.extend([0; 5]);
        assert!(corrupt_at(decode_delta(&long, 9)).1.contains("trailing"));
        let mut bad = encode_meta(&metas[0]);
        bad[3] = 9;
        assert!(corrupt_at(decode_meta(&bad, &|| "here".into())).1.contains("status"));
        assert!(corrupt_at(decode_meta(&[0; 19], &|| "here".into())).1.contains("19 bytes"));
    }

    #[test]
    fn the_store_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<RedbStore>();
    }

    #[test]
    fn a_store_of_another_genesis_is_refused() {
        let (_dir, path, _, _) = store_with(1);
        let other = ChainBuilder::new(4, 1_600_000_000_000).unwrap();
        match RedbStore::open(&path, other.genesis()) {
            Err(StoreError::WrongGenesis { given, .. }) => assert_eq!(given, other.genesis().hash()),
            other => panic!("expected WrongGenesis, got {other:?}"),
        }
    }

    #[test]
    fn undecodable_values_are_corrupt_errors_naming_the_place() {
        // 280 leaves: leaf 45 is under the stored node (8, 0), so `open`'s root check does not
        // read it (it hashes the leaves after the last kept node, and would refuse the store).
        let (_dir, path, builder, vbs) = store_with(14);
        tamper(&path, |w| {
            w.open_table(LEAVES).unwrap().insert(45, b"not an attestation".as_slice()).unwrap();
            w.open_table(HEADERS).unwrap().insert(1, b"\x01".as_slice()).unwrap();
            w.open_table(CERTS).unwrap().insert(2, b"no note".as_slice()).unwrap();
        });
        let store = RedbStore::open(&path, builder.genesis()).unwrap();
        assert_eq!(corrupt_at(store.leaf(45)).0, "table leaves, key 45");
        assert_eq!(corrupt_at(store.block(2)).0, "table certs, key 2");
        assert_eq!(corrupt_at(store.header(1)).0, "table headers, key 1");
        assert_eq!(corrupt_at(store.block(3)).0, "table leaves, key 45");
        assert_eq!(corrupt_at(store.locate(&vbs[2].certified().block.leaves[5].id)).0, "table leaves, key 45");
        assert!(store.leaf(44).unwrap().is_some());
        // Level-0 nodes hash the stored bytes as they are.
        assert!(store.node(0, 45).is_ok());
    }

    #[test]
    fn an_inconsistent_head_is_refused_at_open() {
        type Tamper = fn(&WriteTransaction);
        let cases: [(&str, Tamper); 5] = [
            ("table certs, key 3", |w| {
                w.open_table(CERTS).unwrap().remove(3).unwrap();
            }),
            ("table headers, key 3", |w| {
                w.open_table(HEADERS).unwrap().remove(3).unwrap();
            }),
            ("table leaves", |w| {
                w.open_table(LEAVES).unwrap().remove(59).unwrap();
            }),
            ("table meta, key head", |w| {
                w.open_table(META).unwrap().insert(KEY_HEAD, [0u8; 5].as_slice()).unwrap();
            }),
            ("table index_attester", |w| {
                w.delete_table(ATTESTER).unwrap();
            }),
        ];
        for (want, f) in cases {
            let (_dir, path, builder, _) = store_with(3);
            tamper(&path, f);
            let opened = RedbStore::open(&path, builder.genesis());
            assert!(opened.is_err(), "{want}: opened");
            let (place, reason) = corrupt_at(opened);
            assert_eq!(place, want, "{reason}");
        }
    }

    /// `merkle` must hold exactly the kept nodes of the head's tree, giving its root: a
    /// missing, extra or wrong node is refused at open.
    #[test]
    fn a_missing_extra_or_wrong_merkle_node_is_refused_at_open() {
        type Tamper = fn(&WriteTransaction);
        // 280 leaves (14 blocks of 20): the one kept node is (8, 0); the root is read from
        // (8, 0), (4, 16) and (3, 34), the last two computed from leaves.
        let cases: [(&str, Tamper); 6] = [
            ("table merkle", |w| {
                w.open_table(MERKLE).unwrap().remove(&merkle_key(8, 0)).unwrap();
            }),
            ("table merkle", |w| {
                w.open_table(MERKLE).unwrap().insert(&merkle_key(8, 0), &[0; 32]).unwrap();
            }),
            // A node of a level not kept, though complete and right.
            ("table merkle, key level 3, index 34", |w| {
                w.open_table(MERKLE).unwrap().insert(&merkle_key(3, 34), &[0; 32]).unwrap();
            }),
            ("table merkle, key level 0, index 7", |w| {
                w.open_table(MERKLE).unwrap().insert(&merkle_key(0, 7), &[0; 32]).unwrap();
            }),
            // Of a kept level but incomplete, and beyond the tree.
            ("table merkle, key level 8, index 1", |w| {
                w.open_table(MERKLE).unwrap().insert(&merkle_key(8, 1), &[0; 32]).unwrap();
            }),
            ("table merkle, key level 16, index 0", |w| {
                let mut t = w.open_table(MERKLE).unwrap();
                t.remove(&merkle_key(8, 0)).unwrap();
                t.insert(&merkle_key(16, 0), &[0; 32]).unwrap();
            }),
        ];
        let (_dir, path, builder, _) = store_with(14);
        let pristine = std::fs::read(&path).unwrap();
        let store = RedbStore::open(&path, builder.genesis()).unwrap();
        assert_eq!(testing::merkle_rows(&store), vec![(8u8, 0u64)]);
        drop(store);
        for (want, f) in cases {
            std::fs::write(&path, &pristine).unwrap();
            tamper(&path, f);
            let opened = RedbStore::open(&path, builder.genesis());
            assert!(opened.is_err(), "{want}: opened");
            let (place, reason) = corrupt_at(opened);
            assert_eq!(place, want, "{reason}");
        }
        // A format this binary does not know is refused, naming the version.
        std::fs::write(&path, &pristine).unwrap();
        tamper(&path, |w| {
            w.open_table(META).unwrap().insert(KEY_FORMAT, 4u32.to_be_bytes().as_slice()).unwrap();
        });
        let (place, reason) = corrupt_at(RedbStore::open(&path, builder.genesis()));
        assert_eq!(place, "table meta, key format");
        assert!(reason.contains("not format version 3"), "{reason}");
    }

    /// A chain whose blocks have odd sizes (1 to 1,000 leaves), so that blocks end on every
    /// kind of boundary of the kept levels: the RedbStore, the model and the leaves' hashes.
    fn odd_chain(
        sizes: &[usize],
    ) -> (tempfile::TempDir, std::path::PathBuf, ChainBuilder, RedbStore, super::super::MemStore) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.redb");
        let mut builder = ChainBuilder::new(5, 1_600_000_000_000).unwrap();
        let mut store = RedbStore::open(&path, builder.genesis()).unwrap();
        let mut mem = super::super::MemStore::new(builder.genesis());
        for &n in sizes {
            let vb = builder.next_block(n).unwrap();
            store.commit(&vb).unwrap();
            mem.commit(&vb).unwrap();
        }
        (dir, path, builder, store, mem)
    }

    /// A tree rebuilt from scratch from `store`'s leaves.
    fn rebuilt(store: &RedbStore) -> crate::merkle::MemTree {
        let size = store.head().unwrap().map_or(0, |h| h.tree_size);
        let mut bytes = Vec::new();
        store.leaf_bytes(0, size as usize, &mut bytes).unwrap();
        let mut tree = crate::merkle::MemTree::new();
        tree.append_leaves(&bytes.iter().map(|b| crate::merkle::leaf_hash(b)).collect::<Vec<_>>());
        tree
    }

    #[test]
    fn nodes_and_proofs_at_every_level_equal_the_model_and_a_rebuilt_tree() {
        let sizes = [1, 2, 5, 37, 211, 256, 1, 255, 513, 129, 997, 64, 3, 700];
        let (_dir, path, mut builder, mut store, mut mem) = odd_chain(&sizes[..6]);
        // Compared at block boundaries as the chain grows, then reopened.
        for &n in &sizes[6..] {
            let vb = builder.next_block(n).unwrap();
            store.commit(&vb).unwrap();
            mem.commit(&vb).unwrap();
            let size = vb.header().tree_size;
            if n % 2 == 1 {
                testing::same_tree(&format!("at {size}"), &store, &mem, size);
            }
        }
        let size = store.head().unwrap().unwrap().tree_size;
        assert_eq!(size, sizes.iter().sum::<usize>() as u64);
        testing::same_tree("rebuilt", &store, &rebuilt(&store), size);
        let rows = testing::merkle_rows(&store);
        assert_eq!(rows.len() as u64, kept_nodes(size));
        assert!(rows.iter().all(|(l, _)| *l == 8), "{rows:?}");
        let genesis = builder.genesis().clone();
        drop(store);
        let store = RedbStore::open(&path, &genesis).unwrap();
        testing::same_tree("reopened", &store, &mem, size);
    }

    /// Blocks completing nodes of level 16 (a tree of 65,536 leaves and more), stored and read
    /// back through the computed levels 9 to 15.
    #[test]
    fn a_tree_past_level_16_keeps_and_computes_the_upper_levels() {
        let sizes: Vec<usize> = std::iter::repeat_n(1000, 66).chain([537]).collect();
        let (_dir, _path, _builder, store, mem) = odd_chain(&sizes);
        let size = store.head().unwrap().unwrap().tree_size;
        assert_eq!(size, 66_537);
        let rows = testing::merkle_rows(&store);
        assert_eq!(rows.len() as u64, kept_nodes(size));
        assert_eq!(rows.last(), Some(&(16, 0)));
        for level in 8..=17u8 {
            for index in (0..(size >> level) + 2).step_by(7) {
                assert_eq!(store.node(level, index), mem.node(level, index), "node({level}, {index})");
            }
        }
        for (i, m) in [(0, size), (65_535, size), (65_536, size), (size - 1, size), (40_000, 65_537)] {
            let got = crate::merkle::inclusion_proof(i, m, &store);
            assert_eq!(got, crate::merkle::inclusion_proof(i, m, &mem), "inclusion({i}, {m})");
        }
        for (k, m) in [(1, size), (65_535, size), (65_536, size), (1000, 65_537), (size - 1, size)] {
            let got = crate::merkle::consistency_proof(k, m, &store);
            assert_eq!(got, crate::merkle::consistency_proof(k, m, &mem), "consistency({k}, {m})");
        }
    }

    #[test]
    fn a_format_2_store_is_migrated_on_open_and_gives_the_same_nodes_and_proofs() {
        let (_dir, path, mut builder, store, mut mem) = odd_chain(&[3, 300, 1, 517, 255, 99]);
        let size = store.head().unwrap().unwrap().tree_size;
        let genesis = builder.genesis().clone();
        drop(store);
        // As format 2 wrote it: every level above 0.
        let added = testing::rewrite_as_format_2(&path, &mem);
        assert_eq!(added + kept_nodes(size), size - u64::from(size.count_ones()));
        let mut store = RedbStore::open(&path, &genesis).unwrap();
        assert_eq!(store.migrated_from_format(), Some(FORMAT_ALL_MERKLE_LEVELS));
        let rows = testing::merkle_rows(&store);
        assert_eq!(rows.len() as u64, kept_nodes(size), "the levels not kept are gone");
        assert!(rows.iter().all(|(l, _)| kept_level(*l)));
        {
            let r = store.snapshot().unwrap();
            let meta = r.open_table(META).unwrap();
            assert_eq!(meta.get(KEY_FORMAT).unwrap().unwrap().value(), FORMAT_VERSION.to_be_bytes());
        }
        testing::same_tree("migrated", &store, &mem, size);
        for n in [1, 255, 700] {
            let vb = builder.next_block(n).unwrap();
            store.commit(&vb).unwrap();
            mem.commit(&vb).unwrap();
        }
        let size = store.head().unwrap().unwrap().tree_size;
        testing::same_tree("after more blocks", &store, &mem, size);
        drop(store);
        let store = RedbStore::open(&path, &genesis).unwrap();
        assert_eq!(store.migrated_from_format(), None, "migrated once");
        testing::same_tree("reopened", &store, &mem, size);
    }

    /// A closed store in the middle of a merge: blocks of 20 attestations, a staging limit
    /// of 50 leaves and at most 10 merge ops per commit. Returns the cursor.
    fn store_mid_merge() -> (tempfile::TempDir, std::path::PathBuf, ChainBuilder, Cursor) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.redb");
        let mut builder = ChainBuilder::new(3, 1_600_000_000_000).unwrap();
        let options = RedbOptions { stage_leaves_max: 50, merge_ops_per_commit_max: 10, ..RedbOptions::default() };
        let mut store = RedbStore::open_with(&path, builder.genesis(), options).unwrap();
        while store.merge_progress().is_none_or(|(applied, _)| applied < 20) {
            store.commit(&builder.next_block(20).unwrap()).unwrap();
        }
        let f = store.frozen.as_ref().unwrap();
        let cursor = Cursor { to: f.to, applied: f.applied as u64 };
        (dir, path, builder, cursor)
    }

    #[test]
    fn a_corrupt_merge_cursor_is_refused_at_open() {
        type Tamper = fn(&WriteTransaction, Cursor);
        let set = |w: &WriteTransaction, c: Cursor| {
            w.open_table(META).unwrap().insert(KEY_FROZEN, encode_cursor(c).as_slice()).unwrap();
        };
        let cases: [(&str, &str, Tamper); 6] = [
            ("table meta, key frozen", "bytes", |w, _| {
                w.open_table(META).unwrap().insert(KEY_FROZEN, [0u8; 5].as_slice()).unwrap();
            }),
            ("table meta, key frozen", "ops applied", |w, c| {
                w.open_table(META)
                    .unwrap()
                    .insert(KEY_FROZEN, encode_cursor(Cursor { applied: 1 << 40, ..c }).as_slice())
                    .unwrap();
            }),
            ("table meta, key frozen", "at most the head", |w, c| {
                let to = Merged { height: c.to.height + 100, ..c.to };
                w.open_table(META).unwrap().insert(KEY_FROZEN, encode_cursor(Cursor { to, ..c }).as_slice()).unwrap();
            }),
            ("table meta, key frozen", "tree size", |w, c| {
                let to = Merged { tree_size: c.to.tree_size + 1, ..c.to };
                w.open_table(META).unwrap().insert(KEY_FROZEN, encode_cursor(Cursor { to, ..c }).as_slice()).unwrap();
            }),
            // The applied ops inserted id-run entries that a cursor at 0 does not account for.
            ("table id_runs", "accounts for 0", |w, c| {
                w.open_table(META)
                    .unwrap()
                    .insert(KEY_FROZEN, encode_cursor(Cursor { applied: 0, ..c }).as_slice())
                    .unwrap();
            }),
            // Without its cursor, the partly merged generation is unaccounted for.
            ("table meta, key id_runs", "nothing is frozen", |w, _| {
                w.open_table(META).unwrap().remove(KEY_FROZEN).unwrap();
            }),
        ];
        for (want, why, f) in cases {
            let (_dir, path, builder, cursor) = store_mid_merge();
            // The untouched store opens at the same cursor.
            let store = RedbStore::open(&path, builder.genesis()).unwrap();
            assert_eq!(store.merge_progress().map(|(a, _)| a as u64), Some(cursor.applied));
            drop(store);
            tamper(&path, |w| f(w, cursor));
            let (place, reason) = corrupt_at(RedbStore::open(&path, builder.genesis()));
            assert_eq!(place, want, "{reason}");
            assert!(reason.contains(why), "{want}: {reason}");
        }
        // The well-formed cursor, rewritten, opens.
        let (_dir, path, builder, cursor) = store_mid_merge();
        tamper(&path, |w| set(w, cursor));
        assert!(RedbStore::open(&path, builder.genesis()).is_ok());
    }

    #[test]
    fn slices_never_exceed_the_most_merge_ops_per_commit() {
        // The sizing alone, for any generation, block and limit.
        for total in [0, 1, 255, 256, 10_000, 327_680, 10_000_000, usize::MAX] {
            for leaves in [0, 1, 1000, 100_000, u64::MAX] {
                for limit in [1, 37, STAGE_LEAVES_DEFAULT, u64::MAX] {
                    let n = slice_ops(total, leaves, limit, MERGE_OPS_PER_COMMIT_MAX);
                    assert!(
                        (MERGE_OPS_PER_COMMIT_MIN..=MERGE_OPS_PER_COMMIT_MAX).contains(&n),
                        "{total} {leaves} {limit}: {n}"
                    );
                }
            }
        }
        // A generation of 65,536 leaves and 5 ops each, blocks of 1,000: a slice of 7,500
        // finishes it in 44 blocks, when the next generation is two-thirds full.
        assert_eq!(slice_ops(327_680, 1000, STAGE_LEAVES_DEFAULT, MERGE_OPS_PER_COMMIT_MAX), 7_500);
        assert_eq!(
            slice_ops(327_680, 10_000, STAGE_LEAVES_DEFAULT, MERGE_OPS_PER_COMMIT_MAX),
            MERGE_OPS_PER_COMMIT_MAX
        );
        assert_eq!(slice_ops(327_680, 0, STAGE_LEAVES_DEFAULT, MERGE_OPS_PER_COMMIT_MAX), MERGE_OPS_PER_COMMIT_MIN);
        assert_eq!(slice_ops(5, 0, STAGE_LEAVES_DEFAULT, 0), 1, "a limit of 0 still moves the merge on");

        // Commits: blocks up to 4 times a slice's ops, the active generation filling before
        // the frozen one is done; each commit writes at most the limit, but for that case.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.redb");
        let mut builder = ChainBuilder::new(5, 1_600_000_000_000).unwrap();
        let max = 40;
        let options = RedbOptions { stage_leaves_max: 150, merge_ops_per_commit_max: max, ..RedbOptions::default() };
        let mut store = RedbStore::open_with(&path, builder.genesis(), options).unwrap();
        let (mut sliced, mut forced, mut most) = (0, 0, 0);
        for h in 0..120u64 {
            let n = [0, 3, 40, 160][(h % 4) as usize];
            let vb = builder.next_block(n).unwrap();
            let fills = store
                .frozen
                .as_ref()
                .map(|f| f.ops.len() - f.applied)
                .filter(|_| store.active.leaves + n as u64 >= 150);
            store.commit(&vb).unwrap();
            let written = store.last_commit_merge_ops();
            match fills {
                Some(rest) => {
                    // The frozen generation's rest, then at most the slice's remainder of the next.
                    assert!(
                        written >= rest && written <= rest.max(max),
                        "height {}: {written} ops, {rest} left",
                        h + 1
                    );
                    forced += 1;
                }
                None => {
                    assert!(written <= max, "height {}: {written} ops, more than {max}", h + 1);
                    most = most.max(written);
                }
            }
            sliced += u32::from(store.frozen.as_ref().is_some_and(|f| f.applied > 0));
        }
        assert_eq!(most, max, "the limit was reached");
        assert!(sliced > 20 && forced > 2, "{sliced} sliced commits, {forced} finishing a frozen generation early");
    }

    /// Rewrites a format-2 store as format 1 wrote it: every id in the table `ids` (the runs'
    /// newest values, and what the frozen generation's applied ops wrote), no `id_runs`.
    fn to_format_1(path: &Path, full: &dyn NodeReader) {
        // Format 1 kept every Merkle level, as format 2 did.
        testing::rewrite_as_format_2(path, full);
        tamper(path, |w| {
            let mut meta = w.open_table(META).unwrap();
            let c = Catalog::decode(meta.get(KEY_RUNS).unwrap().unwrap().value()).unwrap();
            {
                let runs = w.open_table(ID_RUNS).unwrap();
                let mut ids = w.open_table(IDS).unwrap();
                for run in c.runs.iter().map(|r| r.run).chain(c.building) {
                    let (lo, hi) = (run_key(run, &[0; 16]), run_key(run, &[0xff; 16]));
                    for item in runs.range::<&[u8; 20]>(&lo..=&hi).unwrap() {
                        let (k, v) = item.unwrap();
                        let mut id = [0u8; 16];
                        id.copy_from_slice(&k.value()[4..]);
                        ids.insert(&id, v.value()).unwrap();
                    }
                }
            }
            w.delete_table(ID_RUNS).unwrap();
            meta.remove(KEY_RUNS).unwrap();
            meta.insert(KEY_FORMAT, FORMAT_LEGACY_IDS.to_be_bytes().as_slice()).unwrap();
        });
    }

    #[test]
    fn a_format_1_store_is_migrated_on_open_and_reads_the_same() {
        for mid_merge in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("ledger.redb");
            let mut builder = ChainBuilder::new(3, 1_600_000_000_000).unwrap();
            // Slices of 10 ops keep a merge under way at every commit; larger ones finish it.
            let slice = if mid_merge { 10 } else { MERGE_OPS_PER_COMMIT_MAX };
            let options =
                RedbOptions { stage_leaves_max: 50, merge_ops_per_commit_max: slice, ..RedbOptions::default() };
            let mut store = RedbStore::open_with(&path, builder.genesis(), options).unwrap();
            let mut mem = super::super::MemStore::new(builder.genesis());
            let mut ids = Vec::new();
            let genesis = builder.genesis().clone();
            let mut commit = |store: &mut RedbStore, mem: &mut super::super::MemStore, ids: &mut Vec<AttestationId>| {
                let vb = builder.next_block(20).unwrap();
                store.commit(&vb).unwrap();
                mem.commit(&vb).unwrap();
                ids.extend(vb.certified().block.leaves.iter().map(|l| l.id));
            };
            for _ in 0..12 {
                commit(&mut store, &mut mem, &mut ids);
            }
            while store.merge_progress().is_some() != mid_merge || store.merge_progress().is_some_and(|(a, _)| a < 20) {
                commit(&mut store, &mut mem, &mut ids);
            }
            assert_eq!(store.migrated_from_format(), None);
            let size = store.head().unwrap().unwrap().tree_size;
            drop(store);
            to_format_1(&path, &mem);
            let mut store = RedbStore::open_with(&path, &genesis, options).unwrap();
            assert_eq!(store.migrated_from_format(), Some(FORMAT_LEGACY_IDS), "mid-merge {mid_merge}");
            assert_eq!(testing::merkle_rows(&store).len() as u64, kept_nodes(size), "only the kept levels");
            testing::same_tree("migrated from format 1", &store, &mem, size);
            assert_eq!(store.merge_progress(), None, "the migration finished the merge under way");
            let legacy = store.id_runs.catalog.legacy;
            assert!(legacy >= 200 && store.id_runs.catalog.runs.is_empty(), "{legacy}");
            let absent = HashOf::from_hash(Hash([9; 32]));
            let check = |store: &RedbStore, mem: &super::super::MemStore, ids: &[AttestationId], at: &str| {
                for id in ids.iter().chain([&absent]) {
                    assert_eq!(store.locate(id).unwrap(), mem.locate(id).unwrap(), "{at}: locate {id}");
                    assert_eq!(store.record(id).unwrap(), mem.record(id).unwrap(), "{at}: record {id}");
                }
            };
            check(&store, &mem, &ids, "migrated");
            // New generations go to id runs on top of the legacy table; changes to its records win.
            for _ in 0..40 {
                commit(&mut store, &mut mem, &mut ids);
            }
            assert!(!store.id_runs.catalog.runs.is_empty());
            assert_eq!(store.id_runs.catalog.legacy, legacy, "the legacy table is never written again");
            check(&store, &mem, &ids, "after more commits");
            drop(store);
            let store = RedbStore::open_with(&path, &genesis, options).unwrap();
            assert_eq!(store.migrated_from_format(), None, "migrated once");
            check(&store, &mem, &ids, "reopened");
        }
    }

    #[test]
    fn ids_sharing_a_prefix_are_told_apart_by_their_leaves() {
        let (_dir, path, builder, vbs) = store_with(2);
        let leaves: Vec<&Leaf> = vbs.iter().flat_map(|vb| &vb.certified().block.leaves).collect();
        let (a, b) = (leaves[30].id, leaves[4].id);
        let store = RedbStore::open(&path, builder.genesis()).unwrap();
        let (old, new) = (store.id_runs.catalog.runs[0], store.id_runs.catalog.runs[1]);
        assert_eq!(old.count, 20, "one run per block");
        assert!(new.count >= 20, "block 2's records and its changes to block 1's");
        drop(store);
        // Move leaf 4's entry to the newest run under leaf 30's prefix: a lookup of `a` now
        // meets leaf 4 first; the catalog's counts follow, so the store opens.
        tamper(&path, |w| {
            let mut runs = w.open_table(super::super::id_runs::ID_RUNS).unwrap();
            let meta = *runs.remove(&run_key(old.run, &id_key(&b, 4))).unwrap().unwrap().value();
            runs.insert(&run_key(new.run, &id_key(&a, 4)), &meta).unwrap();
            let mut meta_t = w.open_table(META).unwrap();
            let mut c = Catalog::decode(meta_t.get(KEY_RUNS).unwrap().unwrap().value()).unwrap();
            c.runs[0].count -= 1;
            c.runs[1].count += 1;
            meta_t.insert(KEY_RUNS, c.encode().as_slice()).unwrap();
        });
        let store = RedbStore::open(&path, builder.genesis()).unwrap();
        assert_eq!(store.locate(&a).unwrap(), Some(Location { height: 2, leaf_index: 30 }));
        assert!(store.record(&a).unwrap().is_some());
        assert_eq!(store.locate(&b).unwrap(), None);
    }
}
