//! The record-id index of [`super::RedbStore`] as sorted runs (an LSM-like layout), so that no
//! commit inserts random keys into a B-tree that outgrows the page cache.
//!
//! Record ids are hashes: inserting a generation's ids into one large `ids` B-tree dirtied
//! (and often read) one random page per id, and at 10,000,000 records commits fell to a third
//! of their rate at 1,000,000 (docs/BENCHMARKS.md §Ten million records). Here every entry is
//! written in key order into a fresh key range instead:
//!
//! - the table `id_runs` is keyed `run u32 BE ‖ id[..8] ‖ leaf index u64 BE` (20 bytes) with
//!   the [`RecordMeta`](crate::rules::RecordMeta) encoding (20 bytes) as value; a **run** is
//!   one run number's key range, written once, in key order, and never changed;
//! - each frozen generation of staged blocks becomes one run of level 0 (its merge writes the
//!   generation's sorted id entries under a new run number, the largest yet: appends at the
//!   right edge of the tree, a few pages per commit); a change to an older record's metadata
//!   (a revocation, a release) is written as a new entry in the newer run, which wins;
//! - when [`RUNS_FANIN`] runs of one level exist, they are merged, in slices of at most
//!   [`super::RedbOptions::compact_ops_per_commit_max`] entries per commit, into one run of
//!   the next level (read in key order, written in key order under a new run number; the
//!   newest value of a key wins); once it is complete, the output takes the inputs' place in
//!   the catalog in the same transaction, and the inputs' entries are deleted in later slices;
//! - each run in the catalog has an in-memory blocked Bloom filter of its id prefixes
//!   ([`FILTER_BITS_PER_ENTRY`] bits per entry), so a lookup of an absent id (every new
//!   record's duplicate check) rarely reads a page. Lookups stay exact: a filter only skips
//!   runs that cannot hold the id, and a prefix match is confirmed against the leaf.
//!
//! The catalog (runs oldest first with their level and entry count, the run being built, the
//! merge under way, the runs being deleted) is one value in `meta` (`"id_runs"`), written in
//! the transaction of every commit that changes it, so a crash leaves a catalog that matches
//! the table. Opening scans `id_runs` once, checks every run's count against the catalog and
//! builds the filters: one sequential read of every entry (its time at 10,000,000 records is
//! not measured yet).
//!
//! Levels never increase from the oldest run to the newest (a merge takes the oldest
//! [`RUNS_FANIN`] runs of the lowest full level, which are adjacent), so a merge's output
//! sits where its inputs were, and "newer in the catalog" keeps meaning "written later".
//!
//! A store of format 1 kept every id in the table `ids` (`id[..8] ‖ leaf` → metadata). It is
//! opened as format 2 with that table as the oldest run, never written again (the *legacy*
//! run, its entry count in the catalog; see [`super::RedbStore::migrated_from_format`]).

use std::collections::HashMap;

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::StoreError;
use super::redb_store::{IdKey, MetaBytes, backend, corrupt, decode_leaf, decode_meta, id_key, place};
use crate::attestation::AttestationId;
use crate::rules::RecordMeta;

/// Key of `id_runs`: run number u32 BE ‖ [`IdKey`].
pub(super) type RunKey = [u8; 20];

pub(super) const ID_RUNS: TableDefinition<&[u8; 20], &[u8; 20]> = TableDefinition::new("id_runs");
/// The catalog's key in `meta`.
pub(super) const KEY_RUNS: &str = "id_runs";

/// Runs of one level merged into one of the next level.
pub const RUNS_FANIN: usize = 8;
/// Default for [`super::RedbOptions::compact_ops_per_commit_max`]: most `id_runs` entries one
/// commit reads, writes or deletes for merging runs. The entries are adjacent (about 100 to a
/// 4 KiB page), so this bounds the pages a commit touches for it to about 200.
pub const COMPACT_OPS_PER_COMMIT_MAX: usize = 16_384;
/// Run-merge entries per leaf committed (at least [`COMPACT_OPS_PER_COMMIT_MIN`] per commit):
/// each entry is written and deleted once per level, about 3 levels at 10,000,000 records.
const COMPACT_OPS_PER_LEAF: usize = 8;
/// Fewest run-merge entries a commit handles when there is merge work, so that blocks of few
/// leaves still move it on.
const COMPACT_OPS_PER_COMMIT_MIN: usize = 256;
/// Entries read from each input of a run merge beyond its share of a slice, so that the
/// inputs' frontiers rarely cut a slice short.
const FETCH_SLACK_ENTRIES: usize = 16;
/// Bits of Bloom filter per run entry (false positive rate about 1 %).
pub const FILTER_BITS_PER_ENTRY: usize = 10;
/// Bit positions set per entry, inside one 512-bit block.
const FILTER_PROBES: u32 = 6;
/// Largest encoded catalog (the run list grows with the logarithm of the ledger's size).
const CATALOG_BYTES_MAX: usize = 64 * 1024;

pub(super) fn run_key(run: u32, k: &IdKey) -> RunKey {
    let mut out = [0u8; 20];
    out[..4].copy_from_slice(&run.to_be_bytes());
    out[4..].copy_from_slice(k);
    out
}

fn run_of(k: &RunKey) -> u32 {
    u32::from_be_bytes([k[0], k[1], k[2], k[3]])
}

fn id_part(k: &RunKey) -> IdKey {
    let mut out = [0u8; 16];
    out.copy_from_slice(&k[4..]);
    out
}

fn prefix(k: &IdKey) -> u64 {
    u64::from_be_bytes([k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7]])
}

// ---------------------------------------------------------------------------------------------
// Filters
// ---------------------------------------------------------------------------------------------

/// A blocked Bloom filter over id prefixes: each prefix sets [`FILTER_PROBES`] bits of one
/// 512-bit block (one cache line per lookup). The prefixes are SHA-256 bytes, so they are
/// used as the hash; a second mix spreads the bits inside the block.
#[derive(Debug, Clone)]
pub(super) struct Filter {
    blocks: Vec<[u64; 8]>,
}

impl Filter {
    pub(super) fn with_entries(n: u64) -> Filter {
        let bits = (n.max(1) as usize).saturating_mul(FILTER_BITS_PER_ENTRY);
        Filter { blocks: vec![[0; 8]; bits.div_ceil(512)] }
    }

    fn place(&self, p: u64) -> (usize, u64) {
        let block = ((u128::from(p) * self.blocks.len() as u128) >> 64) as usize;
        // splitmix64's finaliser: the bits inside the block do not follow the block index.
        let mut z = p.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (block, z ^ (z >> 31))
    }

    pub(super) fn insert(&mut self, k: &IdKey) {
        let (b, mut z) = self.place(prefix(k));
        let block = &mut self.blocks[b];
        for _ in 0..FILTER_PROBES {
            let bit = (z & 511) as usize;
            block[bit / 64] |= 1 << (bit % 64);
            z >>= 9;
        }
    }

    pub(super) fn may_contain(&self, k: &IdKey) -> bool {
        let (b, mut z) = self.place(prefix(k));
        let block = &self.blocks[b];
        (0..FILTER_PROBES).all(|_| {
            let bit = (z & 511) as usize;
            z >>= 9;
            block[bit / 64] & (1 << (bit % 64)) != 0
        })
    }

    fn bytes(&self) -> usize {
        self.blocks.len() * 64
    }
}

// ---------------------------------------------------------------------------------------------
// The catalog
// ---------------------------------------------------------------------------------------------

/// A run in the catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Run {
    pub(super) run: u32,
    pub(super) level: u8,
    pub(super) count: u64,
}

/// A merge of runs under way: the inputs (adjacent in the catalog, oldest first), the output
/// run and how many entries it holds so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Compaction {
    pub(super) inputs: Vec<u32>,
    pub(super) output: u32,
    pub(super) level: u8,
    pub(super) written: u64,
}

/// A run whose entries are being deleted (merged into another), and how many are left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Garbage {
    pub(super) run: u32,
    pub(super) left: u64,
}

/// What `meta`'s `"id_runs"` holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Catalog {
    /// The next run number (run numbers start at 1).
    pub(super) next: u32,
    /// Entries of the legacy `ids` table (format 1 stores; 0 for stores made as format 2).
    pub(super) legacy: u64,
    /// Readable runs, oldest first.
    pub(super) runs: Vec<Run>,
    /// The run the frozen generation's merge writes, if a generation is frozen.
    pub(super) building: Option<u32>,
    pub(super) compaction: Option<Compaction>,
    pub(super) garbage: Vec<Garbage>,
}

impl Catalog {
    pub(super) fn new(legacy: u64) -> Catalog {
        Catalog { next: 1, legacy, ..Catalog::default() }
    }

    /// `next u32 ‖ legacy u64 ‖ building u32 (0: none) ‖ n u32 ‖ n × (run u32 ‖ level u8 ‖
    /// count u64) ‖ output u32 (0: no merge) [‖ level u8 ‖ written u64 ‖ k u8 ‖ k × run u32]
    /// ‖ g u32 ‖ g × (run u32 ‖ left u64)`, integers big-endian.
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.runs.len() * 13);
        out.extend_from_slice(&self.next.to_be_bytes());
        out.extend_from_slice(&self.legacy.to_be_bytes());
        out.extend_from_slice(&self.building.unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&(self.runs.len() as u32).to_be_bytes());
        for r in &self.runs {
            out.extend_from_slice(&r.run.to_be_bytes());
            out.push(r.level);
            out.extend_from_slice(&r.count.to_be_bytes());
        }
        match &self.compaction {
            None => out.extend_from_slice(&0u32.to_be_bytes()),
            Some(c) => {
                out.extend_from_slice(&c.output.to_be_bytes());
                out.push(c.level);
                out.extend_from_slice(&c.written.to_be_bytes());
                out.push(c.inputs.len() as u8);
                for r in &c.inputs {
                    out.extend_from_slice(&r.to_be_bytes());
                }
            }
        }
        out.extend_from_slice(&(self.garbage.len() as u32).to_be_bytes());
        for g in &self.garbage {
            out.extend_from_slice(&g.run.to_be_bytes());
            out.extend_from_slice(&g.left.to_be_bytes());
        }
        out
    }

    pub(super) fn decode(b: &[u8]) -> Result<Catalog, StoreError> {
        let at = || place("meta", KEY_RUNS);
        if b.len() > CATALOG_BYTES_MAX {
            return Err(corrupt(at(), format!("{} bytes, at most {CATALOG_BYTES_MAX}", b.len())));
        }
        let mut rest = b;
        let mut take = |n: usize| -> Result<&[u8], StoreError> {
            let Some((head, tail)) = rest.split_at_checked(n) else {
                return Err(corrupt(at(), "truncated"));
            };
            rest = tail;
            Ok(head)
        };
        let u32_ = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let u64_ = |b: &[u8]| u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        let next = u32_(take(4)?);
        let legacy = u64_(take(8)?);
        let building = Some(u32_(take(4)?)).filter(|r| *r != 0);
        let n = u32_(take(4)?) as usize;
        let mut runs = Vec::with_capacity(n.min(CATALOG_BYTES_MAX / 13));
        for _ in 0..n {
            let run = u32_(take(4)?);
            let level = take(1)?[0];
            runs.push(Run { run, level, count: u64_(take(8)?) });
        }
        let output = u32_(take(4)?);
        let compaction = if output == 0 {
            None
        } else {
            let level = take(1)?[0];
            let written = u64_(take(8)?);
            let k = take(1)?[0] as usize;
            let mut inputs = Vec::with_capacity(k);
            for _ in 0..k {
                inputs.push(u32_(take(4)?));
            }
            Some(Compaction { inputs, output, level, written })
        };
        let g = u32_(take(4)?) as usize;
        let mut garbage = Vec::with_capacity(g.min(CATALOG_BYTES_MAX / 12));
        for _ in 0..g {
            let run = u32_(take(4)?);
            garbage.push(Garbage { run, left: u64_(take(8)?) });
        }
        if !rest.is_empty() {
            return Err(corrupt(at(), format!("{} trailing bytes", rest.len())));
        }
        let c = Catalog { next, legacy, runs, building, compaction, garbage };
        c.check()?;
        Ok(c)
    }

    /// Every run number is below `next`, named once, and a merge's inputs are adjacent runs of
    /// its level, in catalog order.
    fn check(&self) -> Result<(), StoreError> {
        let at = || place("meta", KEY_RUNS);
        let mut seen = std::collections::HashSet::new();
        let named = self
            .runs
            .iter()
            .map(|r| r.run)
            .chain(self.building)
            .chain(self.compaction.as_ref().map(|c| c.output))
            .chain(self.garbage.iter().map(|g| g.run));
        for r in named {
            if r == 0 || r >= self.next || !seen.insert(r) {
                return Err(corrupt(at(), format!("run {r} is out of range or named twice (next {})", self.next)));
            }
        }
        if self.runs.windows(2).any(|w| w[0].level < w[1].level) {
            return Err(corrupt(at(), "a run is of a higher level than an older one"));
        }
        if let Some(c) = &self.compaction {
            let start = self.runs.iter().position(|r| Some(&r.run) == c.inputs.first());
            let ok = c.inputs.len() >= 2
                && start.is_some_and(|s| {
                    self.runs.get(s..s + c.inputs.len()).is_some_and(|rs| {
                        rs.iter().zip(&c.inputs).all(|(r, i)| r.run == *i && r.level.checked_add(1) == Some(c.level))
                    })
                });
            if !ok {
                return Err(corrupt(at(), "the merge's inputs are not adjacent runs of one level below its output"));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The runs in memory
// ---------------------------------------------------------------------------------------------

/// The catalog and the filters of its runs (and of the merge output being written).
#[derive(Clone, Debug)]
pub(super) struct IdRuns {
    pub(super) catalog: Catalog,
    filters: HashMap<u32, Filter>,
    /// The legacy `ids` table's filter (`None` when it is empty).
    legacy_filter: Option<Filter>,
    /// The merge output's filter, filled as it is written.
    output_filter: Option<Filter>,
    /// The merge output's last key (its entries are written in key order; a slice resumes after it).
    output_last: Option<IdKey>,
    /// The catalog changed in this commit and is written with it.
    pub(super) dirty: bool,
}

impl IdRuns {
    /// No runs (before a store's catalog is loaded).
    pub(super) fn empty() -> IdRuns {
        IdRuns {
            catalog: Catalog::new(0),
            filters: HashMap::new(),
            legacy_filter: None,
            output_filter: None,
            output_last: None,
            dirty: false,
        }
    }

    /// Loads the catalog's runs from `id_runs` (and the legacy `ids` table): one scan that
    /// checks every run's entry count and builds the filters. `building` is the number of
    /// entries the frozen generation's applied merge ops wrote (0 when none is frozen).
    pub(super) fn load(
        catalog: Catalog,
        runs: &impl ReadableTable<&'static RunKey, &'static MetaBytes>,
        legacy: &impl ReadableTable<&'static IdKey, &'static MetaBytes>,
        building: u64,
    ) -> Result<IdRuns, StoreError> {
        let legacy_len = legacy.len().map_err(backend)?;
        if legacy_len != catalog.legacy {
            return Err(corrupt(
                "table ids",
                format!("{legacy_len} entries, table meta, key {KEY_RUNS} says {}", catalog.legacy),
            ));
        }
        let legacy_filter = if legacy_len == 0 {
            None
        } else {
            let mut f = Filter::with_entries(legacy_len);
            for item in legacy.iter().map_err(backend)? {
                let (k, _) = item.map_err(backend)?;
                f.insert(k.value());
            }
            Some(f)
        };
        let mut expected: HashMap<u32, u64> = catalog.runs.iter().map(|r| (r.run, r.count)).collect();
        let mut filters: HashMap<u32, Filter> =
            catalog.runs.iter().map(|r| (r.run, Filter::with_entries(r.count))).collect();
        let mut output_filter = None;
        if let Some(c) = &catalog.compaction {
            expected.insert(c.output, c.written);
            let inputs: u64 = catalog.runs.iter().filter(|r| c.inputs.contains(&r.run)).map(|r| r.count).sum();
            output_filter = Some(Filter::with_entries(inputs));
        }
        if let Some(b) = catalog.building {
            expected.insert(b, building);
        } else if building != 0 {
            return Err(corrupt(place("meta", KEY_RUNS), "no run is being built, but a generation is frozen"));
        }
        for g in &catalog.garbage {
            expected.insert(g.run, g.left);
        }
        let mut counts: HashMap<u32, u64> = HashMap::new();
        let mut output_last = None;
        for item in runs.iter().map_err(backend)? {
            let (k, _) = item.map_err(backend)?;
            let k = k.value();
            let run = run_of(k);
            *counts.entry(run).or_default() += 1;
            let id = id_part(k);
            if let Some(f) = filters.get_mut(&run) {
                f.insert(&id);
            } else if catalog.compaction.as_ref().is_some_and(|c| c.output == run) {
                if let Some(f) = output_filter.as_mut() {
                    f.insert(&id);
                }
                output_last = Some(id);
            }
        }
        for (run, n) in &counts {
            if !expected.contains_key(run) {
                return Err(corrupt(
                    "table id_runs",
                    format!("{n} entries of run {run}, which the catalog does not name"),
                ));
            }
        }
        for (run, want) in &expected {
            let got = counts.get(run).copied().unwrap_or(0);
            if got != *want {
                return Err(corrupt(
                    "table id_runs",
                    format!("{got} entries of run {run}, table meta, key {KEY_RUNS} accounts for {want}"),
                ));
            }
        }
        Ok(IdRuns { catalog, filters, legacy_filter, output_filter, output_last, dirty: false })
    }

    /// Bytes of filters held in memory (about [`FILTER_BITS_PER_ENTRY`] / 8 per entry).
    pub(super) fn filter_bytes(&self) -> usize {
        self.filters.values().chain(&self.legacy_filter).chain(&self.output_filter).map(Filter::bytes).sum()
    }

    /// The leaf index and metadata of `id`: the newest run that holds it wins, then the
    /// legacy table. Prefix matches are confirmed against the leaves.
    pub(super) fn find(
        &self,
        runs: &impl ReadableTable<&'static RunKey, &'static MetaBytes>,
        legacy: &impl ReadableTable<&'static IdKey, &'static MetaBytes>,
        leaves: &impl ReadableTable<u64, &'static [u8]>,
        base: Option<&impl ReadableTable<u64, &'static [u8; 32]>>,
        id: &AttestationId,
    ) -> Result<Option<(u64, RecordMeta)>, StoreError> {
        let lo = id_key(id, 0);
        let hi = id_key(id, u64::MAX);
        for r in self.catalog.runs.iter().rev() {
            if !self.filters.get(&r.run).is_some_and(|f| f.may_contain(&lo)) {
                continue;
            }
            let (a, b) = (run_key(r.run, &lo), run_key(r.run, &hi));
            for entry in runs.range::<&RunKey>(&a..=&b).map_err(backend)? {
                let (k, v) = entry.map_err(backend)?;
                let leaf = super::redb_store::u64_at(k.value(), 12);
                let at = || place("id_runs", hex::encode(k.value()));
                if confirm(leaves, base, leaf, id, &at)? {
                    return Ok(Some((leaf, decode_meta(v.value(), &at)?)));
                }
            }
        }
        if self.legacy_filter.as_ref().is_some_and(|f| f.may_contain(&lo)) {
            return super::redb_store::find_id(legacy, leaves, base, id);
        }
        Ok(None)
    }

    /// Allocates the run a frozen generation's merge writes.
    pub(super) fn start_building(&mut self) -> Result<u32, StoreError> {
        if let Some(b) = self.catalog.building {
            return Err(corrupt(place("meta", KEY_RUNS), format!("run {b} is still being built")));
        }
        let run = self.allocate()?;
        self.catalog.building = Some(run);
        Ok(run)
    }

    fn allocate(&mut self) -> Result<u32, StoreError> {
        let run = self.catalog.next;
        self.catalog.next =
            run.checked_add(1).ok_or_else(|| corrupt(place("meta", KEY_RUNS), "run numbers are exhausted"))?;
        self.dirty = true;
        Ok(run)
    }

    /// The frozen generation's merge is done: its run (of `count` entries, these keys) becomes
    /// the newest in the catalog.
    pub(super) fn finish_building<'k>(&mut self, count: u64, keys: impl Iterator<Item = &'k IdKey>) {
        let Some(run) = self.catalog.building.take() else { return };
        self.dirty = true;
        if count == 0 {
            return;
        }
        let mut f = Filter::with_entries(count);
        keys.for_each(|k| f.insert(k));
        self.filters.insert(run, f);
        self.catalog.runs.push(Run { run, level: 0, count });
        self.dirty = true;
    }

    /// Run-merge entries a commit of `leaves` leaves handles, at most `max`.
    pub(super) fn budget(leaves: u64, max: usize) -> usize {
        let want = usize::try_from(leaves).unwrap_or(usize::MAX).saturating_mul(COMPACT_OPS_PER_LEAF);
        want.clamp(COMPACT_OPS_PER_COMMIT_MIN.min(max), max)
    }

    /// Whether there is run-merge work to do.
    pub(super) fn has_work(&self) -> bool {
        self.catalog.compaction.is_some() || !self.catalog.garbage.is_empty() || self.full_level().is_some()
    }

    /// The oldest [`RUNS_FANIN`] runs of the lowest level that has that many (they are adjacent).
    fn full_level(&self) -> Option<std::ops::Range<usize>> {
        let runs = &self.catalog.runs;
        let mut best: Option<std::ops::Range<usize>> = None;
        let mut start = 0;
        while start < runs.len() {
            let level = runs[start].level;
            let end = start + runs[start..].iter().take_while(|r| r.level == level).count();
            if end - start >= RUNS_FANIN {
                best = Some(start..start + RUNS_FANIN);
            }
            start = end;
        }
        best
    }

    /// Does up to `budget` entries of run-merge work in `w`: deletes merged runs' entries,
    /// continues the merge under way, or starts one. Returns the entries handled.
    pub(super) fn work(&mut self, w: &WriteTransaction, budget: usize) -> Result<usize, StoreError> {
        let mut done = 0;
        let mut table = w.open_table(ID_RUNS).map_err(backend)?;
        while done < budget {
            if let Some(g) = self.catalog.garbage.first_mut() {
                let want = (budget - done).min(usize::try_from(g.left).unwrap_or(usize::MAX));
                let (a, b) = (run_key(g.run, &[0; 16]), run_key(g.run, &[0xff; 16]));
                // The slice's last key, then one scan that deletes up to it: a removal per key
                // would descend the tree once per entry.
                let mut found = 0;
                let mut last = None;
                for e in table.range::<&RunKey>(&a..=&b).map_err(backend)?.take(want) {
                    last = Some(*e.map_err(backend)?.0.value());
                    found += 1;
                }
                if let Some(last) = last {
                    table.retain_in::<&RunKey, _>(&a..=&last, |_, _| false).map_err(backend)?;
                }
                g.left -= found as u64;
                done += found.max(1);
                if g.left == 0 {
                    self.catalog.garbage.remove(0);
                } else if found < want {
                    return Err(corrupt("table id_runs", format!("run {} ended {} entries early", g.run, g.left)));
                }
                self.dirty = true;
            } else if self.catalog.compaction.is_some() {
                done += self.merge_slice(&mut table, budget - done)?;
            } else if let Some(range) = self.full_level() {
                let inputs: Vec<u32> = self.catalog.runs[range.clone()].iter().map(|r| r.run).collect();
                let level = self.catalog.runs[range.start].level.saturating_add(1);
                let total: u64 = self.catalog.runs[range].iter().map(|r| r.count).sum();
                let output = self.allocate()?;
                self.catalog.compaction = Some(Compaction { inputs, output, level, written: 0 });
                self.output_filter = Some(Filter::with_entries(total));
                self.output_last = None;
            } else {
                break;
            }
        }
        Ok(done)
    }

    /// Writes up to about `budget` more entries of the merge's output, in key order: from each
    /// input its share of the budget after the output's last key, then every entry up to the
    /// lowest key at which an input's read stopped short of its end (newest input wins a key).
    /// Completes the merge when every input is read to its end.
    fn merge_slice(
        &mut self,
        table: &mut redb::Table<'_, &'static RunKey, &'static MetaBytes>,
        budget: usize,
    ) -> Result<usize, StoreError> {
        let Some(c) = self.catalog.compaction.clone() else { return Ok(0) };
        let counts: Vec<u64> =
            c.inputs.iter().map(|i| self.catalog.runs.iter().find(|r| r.run == *i).map_or(0, |r| r.count)).collect();
        let total: u64 = counts.iter().sum::<u64>().max(1);
        let mut fetched: Vec<(IdKey, usize, MetaBytes)> = Vec::new();
        let mut frontier: Option<IdKey> = None;
        for (age, (input, count)) in c.inputs.iter().zip(&counts).enumerate() {
            let share = (budget as u128 * u128::from(*count)).div_ceil(u128::from(total)) as usize;
            let want = share + FETCH_SLACK_ENTRIES;
            let (lo, hi) = (run_key(*input, &self.output_last.unwrap_or([0; 16])), run_key(*input, &[0xff; 16]));
            let a = match self.output_last {
                None => std::ops::Bound::Included(&lo),
                Some(_) => std::ops::Bound::Excluded(&lo),
            };
            let mut got = 0;
            for item in table.range::<&RunKey>((a, std::ops::Bound::Included(&hi))).map_err(backend)?.take(want) {
                let (k, v) = item.map_err(backend)?;
                fetched.push((id_part(k.value()), age, *v.value()));
                got += 1;
            }
            if got == want {
                let last = fetched.last().map(|e| e.0).unwrap_or([0; 16]);
                frontier = Some(frontier.map_or(last, |f: IdKey| f.min(last)));
            }
        }
        // Newest input (highest age) first among equal keys, so dedup keeps it.
        fetched.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        fetched.dedup_by(|later, first| later.0 == first.0);
        let mut written = 0;
        for (k, _, v) in fetched.iter().filter(|e| frontier.is_none_or(|f| e.0 <= f)) {
            table.insert(&run_key(c.output, k), v).map_err(backend)?;
            if let Some(f) = self.output_filter.as_mut() {
                f.insert(k);
            }
            self.output_last = Some(*k);
            written += 1;
        }
        let Some(comp) = self.catalog.compaction.as_mut() else { return Ok(written) };
        comp.written += written as u64;
        self.dirty = true;
        if frontier.is_none() {
            // Every input was read to its end: the output replaces them.
            let start = self.catalog.runs.iter().position(|r| r.run == c.inputs[0]).unwrap_or(0);
            let merged: Vec<Run> = self
                .catalog
                .runs
                .splice(start..start + c.inputs.len(), [Run { run: c.output, level: c.level, count: comp.written }])
                .collect();
            for r in merged {
                self.filters.remove(&r.run);
                self.catalog.garbage.push(Garbage { run: r.run, left: r.count });
            }
            if let Some(f) = self.output_filter.take() {
                self.filters.insert(c.output, f);
            }
            self.output_last = None;
            self.catalog.compaction = None;
        }
        Ok(fetched.len().max(written).max(1))
    }
}

/// Whether leaf `leaf` is the record `id`.
/// Whether leaf `leaf` is the record `id` (below a snapshot base, by `base_ids`).
pub(super) fn confirm(
    leaves: &impl ReadableTable<u64, &'static [u8]>,
    base: Option<&impl ReadableTable<u64, &'static [u8; 32]>>,
    leaf: u64,
    id: &AttestationId,
    at: &dyn Fn() -> String,
) -> Result<bool, StoreError> {
    if let Some(bytes) = leaves.get(leaf).map_err(backend)? {
        return Ok(decode_leaf(bytes.value(), leaf)?.id == *id);
    }
    match base.map(|b| b.get(leaf)).transpose().map_err(backend)?.flatten() {
        Some(b) => Ok(b.value() == id.bytes()),
        None => Err(corrupt(at(), format!("leaf {leaf} is missing"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> IdKey {
        let h = crate::hash::Hash::digest(&[&i.to_be_bytes()]);
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&h.0[..8]);
        k[8..].copy_from_slice(&i.to_be_bytes());
        k
    }

    #[test]
    fn filters_have_no_false_negatives_and_few_false_positives() {
        let mut f = Filter::with_entries(10_000);
        for i in 0..10_000 {
            f.insert(&key(i));
        }
        assert!((0..10_000).all(|i| f.may_contain(&key(i))));
        let false_positives = (10_000..110_000).filter(|i| f.may_contain(&key(*i))).count();
        assert!(false_positives < 2_500, "{false_positives} of 100,000 absent keys pass");
        assert_eq!(f.bytes(), 10_000 * FILTER_BITS_PER_ENTRY / 512 * 64 + 64);
    }

    #[test]
    fn catalogs_round_trip_and_bad_ones_are_refused() {
        let c = Catalog {
            next: 30,
            legacy: 7,
            runs: vec![
                Run { run: 20, level: 2, count: 500 },
                Run { run: 3, level: 1, count: 70 },
                Run { run: 4, level: 1, count: 71 },
                Run { run: 29, level: 0, count: 9 },
            ],
            building: Some(28),
            compaction: Some(Compaction { inputs: vec![3, 4], output: 27, level: 2, written: 11 }),
            garbage: vec![Garbage { run: 2, left: 5 }],
        };
        assert_eq!(Catalog::decode(&c.encode()).unwrap(), c);
        assert_eq!(Catalog::decode(&Catalog::new(0).encode()).unwrap(), Catalog::new(0));
        let bytes = c.encode();
        for cut in [0, 3, 20, bytes.len() - 1] {
            assert!(Catalog::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let bad = [
            Catalog { next: 20, ..c.clone() },
            Catalog { building: Some(3), ..c.clone() },
            Catalog {
                compaction: Some(Compaction { inputs: vec![20, 3], output: 27, level: 2, written: 0 }),
                ..c.clone()
            },
            Catalog {
                compaction: Some(Compaction { inputs: vec![3, 29], output: 27, level: 2, written: 0 }),
                ..c.clone()
            },
            Catalog {
                runs: vec![Run { run: 3, level: 0, count: 1 }, Run { run: 4, level: 1, count: 1 }],
                compaction: None,
                ..c.clone()
            },
        ];
        for b in bad {
            let err = Catalog::decode(&b.encode()).unwrap_err();
            assert!(err.to_string().contains("table meta, key id_runs"), "{err}");
        }
    }

    #[test]
    fn the_lowest_full_level_is_merged_first_and_its_oldest_runs() {
        let mut runs = IdRuns::empty();
        let r = |run, level| Run { run, level, count: 1 };
        runs.catalog.runs = (1..=8).map(|i| r(i, 1)).chain((9..=17).map(|i| r(i, 0))).collect();
        assert_eq!(runs.full_level(), Some(8..16));
        runs.catalog.runs.truncate(15);
        assert_eq!(runs.full_level(), Some(0..8));
        runs.catalog.runs.truncate(7);
        assert_eq!(runs.full_level(), None);
        assert_eq!(IdRuns::budget(1000, COMPACT_OPS_PER_COMMIT_MAX), 8000);
        assert_eq!(IdRuns::budget(0, COMPACT_OPS_PER_COMMIT_MAX), COMPACT_OPS_PER_COMMIT_MIN);
        assert_eq!(IdRuns::budget(1 << 40, COMPACT_OPS_PER_COMMIT_MAX), COMPACT_OPS_PER_COMMIT_MAX);
        assert_eq!(IdRuns::budget(5, 10), 10, "the limit caps 8 entries per leaf");
    }
}
