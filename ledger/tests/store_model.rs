//! Model-based test of the redb store: random commits, reads of every kind, refused commits and reopenings, each checked against `MemStore` as the model.
//!
//! Every seed picks a staging limit (0 merges at every commit; small limits merge
//! often; the default rarely) and a most merge ops per commit (1 to the default), so
//! reads cross the merged/frozen/active boundaries in every way: generations frozen and
//! merged over many commits, blocks bigger than a slice, the active generation filling
//! before the frozen one is merged, and reopenings in the middle of a merge. It also picks a
//! most id-run merge entries per commit, so the id runs (one per merged generation) are merged
//! in slices of every size, and reads and reopenings meet every state of those merges.

use std::fmt::Debug;
use std::path::Path;

use credence_ledger::attestation::AttestationId;
use credence_ledger::block::ValidBlock;
use credence_ledger::demo::{self, ChainBuilder, DemoRng};
use credence_ledger::genesis::Genesis;
use credence_ledger::hash::HashOf;
use credence_ledger::ids::{PatentNumber, Uscc};
use credence_ledger::loan_rules::FactKey;
use credence_ledger::merkle::{MerkleError, NodeReader};
use credence_ledger::rules::StateView;
use credence_ledger::store::{IndexKey, MemStore, QUERY_LIMIT_MAX, RedbOptions, RedbStore, Store, StoreError};

const SEEDS: u64 = 48;
const OPS: usize = 300;
const GENESIS_TIME_MS: u64 = 1_600_000_000_000;

/// A staging limit: merging at every commit, often, or rarely (the default).
fn stage_limit(rng: &mut DemoRng) -> u64 {
    [0, 1, 5, 37, 120, 600, RedbOptions::default().stage_leaves_max][rng.below(7) as usize]
}

/// Most merge ops per commit: from one (a merge takes hundreds of commits, and the
/// active generation often fills first) to the default.
fn slice_limit(rng: &mut DemoRng) -> usize {
    [1, 3, 20, 150, RedbOptions::default().merge_ops_per_commit_max][rng.below(5) as usize]
}

/// Most id-run merge entries per commit: from one (a merge of runs takes many commits) to the default.
fn compact_limit(rng: &mut DemoRng) -> usize {
    [1, 7, 64, RedbOptions::default().compact_ops_per_commit_max][rng.below(4) as usize]
}

/// How often the seeds met each case of incremental merging.
#[derive(Default, Debug)]
struct Cases {
    /// Commits that applied a slice and left the merge unfinished.
    slices: u32,
    /// Commits that wrote more ops than the limit: the active generation filled while
    /// another was frozen, which is then finished at once.
    forced: u32,
    /// Reopenings while a merge was under way.
    reopened_mid_merge: u32,
    /// Flushes of deferred commits.
    flushes: u32,
    /// Reopenings (graceful closes) with deferred commits not yet flushed.
    reopened_deferred: u32,
    /// Commits that did id-run merge work and left a merge of runs under way.
    run_merge_slices: u32,
    /// Commits that finished a merge of id runs.
    run_merges: u32,
    /// Reopenings while a merge of id runs was under way.
    reopened_mid_run_merge: u32,
}

/// What the chain so far holds, to aim reads at (plus a few things it does not hold).
#[derive(Default)]
struct Known {
    ids: Vec<AttestationId>,
    usccs: Vec<Uscc>,
    patents: Vec<PatentNumber>,
    members: u16,
    height: u64,
    tree_size: u64,
}

impl Known {
    fn add(&mut self, vb: &ValidBlock) {
        for leaf in &vb.certified().block.leaves {
            self.ids.push(leaf.id);
            let claim = &leaf.attestation.body.claim;
            if let Some(e) = claim.enterprise() {
                self.usccs.push(*e);
            }
            if let Some(p) = claim.patent() {
                self.patents.push(*p);
            }
        }
        self.height = vb.header().height;
        self.tree_size = vb.header().tree_size;
    }
}

fn pick<T: Copy>(rng: &mut DemoRng, items: &[T]) -> Option<T> {
    (!items.is_empty()).then(|| items[rng.below(items.len() as u64) as usize])
}

fn same<T: PartialEq + Debug>(ctx: &str, redb: Result<T, StoreError>, mem: Result<T, StoreError>) {
    match (redb, mem) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{ctx}: redb (left) differs from the model (right)"),
        (a, b) => panic!("{ctx}: redb {a:?}, model {b:?}"),
    }
}

fn open(path: &Path, genesis: &Genesis, (stage, slice, compact): (u64, usize, usize)) -> RedbStore {
    let options = RedbOptions {
        stage_leaves_max: stage,
        merge_ops_per_commit_max: slice,
        compact_ops_per_commit_max: compact,
        ..RedbOptions::default()
    };
    RedbStore::open_with(path, genesis, options)
        .unwrap_or_else(|e| panic!("open with stage limit {stage}, slice {slice}, run merges {compact}: {e}"))
}

/// One random read of each kind, compared.
fn read(ctx: &str, rng: &mut DemoRng, k: &Known, redb: &RedbStore, mem: &MemStore) {
    let around = |rng: &mut DemoRng, n: u64| rng.below(n + 3);
    match rng.below(13) {
        0 => same(ctx, redb.head(), mem.head()),
        11 => {
            let id = pick(rng, &k.ids).filter(|_| rng.below(5) != 0).unwrap_or_else(|| HashOf::from_hash(rng.hash()));
            let after = rng.below(2).checked_sub(1).map(|_| around(rng, k.tree_size));
            let limit = 1 + rng.below(5) as usize;
            let key = IndexKey::Refers(&id);
            same(
                &format!("{ctx} query({key:?}, {after:?}, {limit})"),
                redb.query(key, after, limit),
                mem.query(key, after, limit),
            );
        }
        12 => {
            let key = match (rng.below(2), pick(rng, &k.ids), pick(rng, &k.patents)) {
                (0, Some(id), _) => FactKey::Record(id),
                (_, _, Some(p)) => FactKey::Patent(p.into()),
                _ => FactKey::Record(HashOf::from_hash(rng.hash())),
            };
            same(&format!("{ctx} fact({key:?})"), redb.fact(&key), mem.fact(&key));
        }
        1 => {
            let h = around(rng, k.height);
            same(&format!("{ctx} header({h})"), redb.header(h), mem.header(h));
        }
        2 => {
            let h = around(rng, k.height);
            same(&format!("{ctx} certificate({h})"), redb.certificate(h), mem.certificate(h));
        }
        3 => {
            let h = around(rng, k.height);
            same(&format!("{ctx} block({h})"), redb.block(h), mem.block(h));
        }
        4 => {
            let i = if rng.below(20) == 0 { u64::MAX } else { around(rng, k.tree_size) };
            same(&format!("{ctx} leaf({i})"), redb.leaf(i), mem.leaf(i));
        }
        5 => {
            let id = pick(rng, &k.ids).filter(|_| rng.below(5) != 0).unwrap_or_else(|| HashOf::from_hash(rng.hash()));
            same(&format!("{ctx} locate({id})"), redb.locate(&id), mem.locate(&id));
        }
        6 => {
            let uscc = pick(rng, &k.usccs).unwrap_or_else(|| demo::enterprises(rng, 1)[0]);
            let patent = pick(rng, &k.patents).unwrap_or_else(|| demo::patents(rng, 1)[0]);
            let member = rng.below(u64::from(k.members) + 2) as u16;
            let key = match rng.below(3) {
                0 => IndexKey::Enterprise(&uscc),
                1 => IndexKey::Patent(&patent),
                _ => IndexKey::Attester(member),
            };
            // Aim `after` at the key's own leaves (and just before them) as well as anywhere.
            let hits = mem.query(key, None, QUERY_LIMIT_MAX).expect("model query");
            let after = match rng.below(8) {
                0 => None,
                1 => Some(u64::MAX),
                2..=4 => pick(rng, &hits).map(|h| h.saturating_sub(rng.below(2))),
                _ => Some(around(rng, k.tree_size)),
            };
            let limit = match rng.below(6) {
                0 => QUERY_LIMIT_MAX,
                1 => QUERY_LIMIT_MAX + 1 + rng.below(5000) as usize,
                2 | 3 => rng.below(4) as usize,
                _ => rng.below(25) as usize,
            };
            same(
                &format!("{ctx} query({key:?}, {after:?}, {limit})"),
                redb.query(key, after, limit),
                mem.query(key, after, limit),
            );
        }
        7 => {
            let m = rng.below(u64::from(k.members) + 2) as u16;
            same(&format!("{ctx} next_sequence({m})"), redb.next_sequence(m), mem.next_sequence(m));
        }
        8 => {
            let id = pick(rng, &k.ids).filter(|_| rng.below(5) != 0).unwrap_or_else(|| HashOf::from_hash(rng.hash()));
            same(&format!("{ctx} record({id})"), redb.record(&id), mem.record(&id));
        }
        9 => {
            let p = pick(rng, &k.patents).filter(|_| rng.below(5) != 0).unwrap_or_else(|| demo::patents(rng, 1)[0]);
            same(&format!("{ctx} active_pledge({p})"), redb.active_pledge(&p), mem.active_pledge(&p));
        }
        _ => {
            let top = 64 - k.tree_size.leading_zeros() as u64;
            let level = rng.below(top + 2) as u8;
            let index = around(rng, k.tree_size >> level.min(63));
            assert_eq!(redb.node(level, index), mem.node(level, index), "{ctx} node({level}, {index})");
        }
    }
}

/// Everything the stores hold, compared exhaustively.
fn sweep(ctx: &str, k: &Known, redb: &RedbStore, mem: &MemStore) {
    same(ctx, redb.head(), mem.head());
    for h in 0..=k.height + 1 {
        same(&format!("{ctx} block({h})"), redb.block(h), mem.block(h));
    }
    for i in 0..=k.tree_size {
        same(&format!("{ctx} leaf({i})"), redb.leaf(i), mem.leaf(i));
    }
    // Range reads give the leaves one by one reads give, in order, across read boundaries.
    let mut ranged = Vec::new();
    credence_ledger::store::for_each_leaf(redb, 0, k.tree_size, |i, l| ranged.push((i, l))).unwrap();
    assert_eq!(ranged.len() as u64, k.tree_size, "{ctx} for_each_leaf");
    for (i, l) in ranged {
        assert_eq!(Some(l), mem.leaf(i).unwrap(), "{ctx} for_each_leaf: leaf {i}");
    }
    assert!(credence_ledger::store::for_each_leaf(redb, 0, k.tree_size + 1, |_, _| ()).is_err(), "{ctx} beyond");
    for id in &k.ids {
        same(&format!("{ctx} locate({id})"), redb.locate(id), mem.locate(id));
        same(&format!("{ctx} record({id})"), redb.record(id), mem.record(id));
    }
    for p in &k.patents {
        same(&format!("{ctx} active_pledge({p})"), redb.active_pledge(p), mem.active_pledge(p));
        let key = FactKey::Patent((*p).into());
        same(&format!("{ctx} fact({key:?})"), redb.fact(&key), mem.fact(&key));
    }
    for id in &k.ids {
        let key = FactKey::Record(*id);
        same(&format!("{ctx} fact({key:?})"), redb.fact(&key), mem.fact(&key));
        let key = IndexKey::Refers(id);
        same(
            &format!("{ctx} query({key:?})"),
            redb.query(key, None, QUERY_LIMIT_MAX),
            mem.query(key, None, QUERY_LIMIT_MAX),
        );
    }
    for m in 0..k.members + 1 {
        same(&format!("{ctx} next_sequence({m})"), redb.next_sequence(m), mem.next_sequence(m));
    }
    let mut keys: Vec<IndexKey<'_>> = (0..k.members + 1).map(IndexKey::Attester).collect();
    keys.extend(k.usccs.iter().map(IndexKey::Enterprise));
    keys.extend(k.patents.iter().map(IndexKey::Patent));
    for key in keys {
        // Every page of every size up to 3, then all at once.
        for limit in [1, 2, 3, QUERY_LIMIT_MAX] {
            let mut after = None;
            loop {
                let page = redb.query(key, after, limit).unwrap_or_else(|e| panic!("{ctx} query({key:?}): {e}"));
                same(
                    &format!("{ctx} query({key:?}, {after:?}, {limit})"),
                    Ok(page.clone()),
                    mem.query(key, after, limit),
                );
                match page.last() {
                    Some(l) if page.len() == limit => after = Some(*l),
                    _ => break,
                }
            }
        }
    }
    for level in 0..=(64 - k.tree_size.leading_zeros()) as u8 {
        for index in 0..=k.tree_size >> level {
            assert_eq!(redb.node(level, index), mem.node(level, index), "{ctx} node({level}, {index})");
        }
        // A level in one range read, and one node beyond it.
        let n = k.tree_size >> level;
        let mut got = Vec::new();
        let read = redb.nodes(level, 0, n as usize, &mut got).map(|()| got);
        let want: Result<Vec<_>, _> = (0..n).map(|i| mem.node(level, i)).collect();
        assert_eq!(read, want, "{ctx} nodes({level}, 0, {n})");
        let beyond = redb.nodes(level, 0, n as usize + 1, &mut Vec::new());
        assert_eq!(beyond, Err(MerkleError::MissingNode { level, index: n }), "{ctx} nodes({level}, 0, {n} + 1)");
    }
}

fn run(seed: u64, cases: &mut Cases) {
    let mut builder = ChainBuilder::new(seed, GENESIS_TIME_MS).expect("builder");
    // Another chain, kept one block ahead, for blocks that do not link to ours.
    let mut other = ChainBuilder::new(seed + 10_000, GENESIS_TIME_MS).expect("other builder");
    let mut other_next = other.next_block(0).expect("other block");
    let genesis = builder.genesis().clone();
    let mut rng = DemoRng::new(seed ^ 0x5eed_5eed);
    let mut defer_rng = DemoRng::new(seed ^ 0xdefe_4ed0);
    let mut limits = (stage_limit(&mut rng), slice_limit(&mut rng), compact_limit(&mut rng));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ledger.redb");
    let mut redb = open(&path, &genesis, limits);
    let mut mem = MemStore::new(&genesis);
    let mut known = Known { members: genesis.members.len() as u16, ..Known::default() };
    let mut last: Option<ValidBlock> = None;
    let (mut merges, mut reopens, mut reads) = (0u32, 0u32, 0u32);

    for op in 0..OPS {
        if op == OPS / 2 {
            sweep(&format!("seed {seed} op {op}, midway"), &known, &redb, &mem);
        }
        let ctx = format!(
            "seed {seed} op {op} (stage limit {}, slice {}, run merges {}, head {}, merge {:?}, id runs {:?})",
            limits.0,
            limits.1,
            limits.2,
            known.height,
            redb.merge_progress(),
            redb.id_runs_state(),
        );
        match rng.below(100) {
            0..=13 => {
                let n = match rng.below(10) {
                    0 => 0,
                    1 => 60 + rng.below(60) as usize,
                    _ => 1 + rng.below(30) as usize,
                };
                let vb = builder.next_block(n).expect("next block");
                let staged = redb.staged_leaves();
                let run_merge_before = redb.id_runs_state().1;
                // Half the commits are deferred (as sync commits a run), flushed now and
                // then or by a reopening; reads see them at once either way. Their own
                // generator keeps the other choices of each seed as they were.
                let committed = if defer_rng.below(2) == 0 { redb.commit_deferred(&vb) } else { redb.commit(&vb) };
                same(&format!("{ctx} commit"), committed, mem.commit(&vb));
                if defer_rng.below(4) == 0 {
                    redb.flush().expect("flush");
                    cases.flushes += 1;
                }
                merges += u32::from(redb.staged_leaves() < staged + n as u64);
                let written = redb.last_commit_merge_ops();
                cases.forced += u32::from(written > limits.1 && limits.0 > 0);
                cases.slices += u32::from(written > 0 && redb.merge_progress().is_some());
                let run_merge = redb.id_runs_state().1;
                cases.run_merge_slices += u32::from(redb.last_commit_compact_ops() > 0 && run_merge.is_some());
                cases.run_merges += u32::from(run_merge_before.is_some() && run_merge.is_none());
                known.add(&vb);
                other_next = other.next_block(0).expect("other block");
                last = Some(vb);
                // Every commit is followed by reads, so each state of a merge is read.
                for _ in 0..2 {
                    read(&format!("{ctx} after the commit"), &mut rng, &known, &redb, &mem);
                }
            }
            14..=16 => {
                let progress = redb.merge_progress();
                let runs = redb.id_runs_state();
                cases.reopened_deferred += u32::from(redb.has_deferred());
                drop(redb);
                if rng.below(2) == 0 {
                    limits = (stage_limit(&mut rng), slice_limit(&mut rng), compact_limit(&mut rng));
                }
                redb = open(&path, &genesis, limits);
                reopens += 1;
                same(&format!("{ctx} head after reopening"), redb.head(), mem.head());
                // The cursor is the file's, whatever the options: the merge resumes where it was.
                assert_eq!(redb.merge_progress(), progress, "{ctx}: merge progress after reopening");
                // So are the id runs and the merge of runs under way (a merged run's filter is
                // rebuilt for its own entries, smaller than the one sized for its inputs).
                let now = redb.id_runs_state();
                assert_eq!((now.0, now.1), (runs.0, runs.1), "{ctx}: id runs after reopening");
                assert!(now.2 <= runs.2, "{ctx}: filter bytes after reopening");
                if runs.1.is_some() {
                    cases.reopened_mid_run_merge += 1;
                    if rng.below(2) == 0 {
                        sweep(&format!("{ctx} reopened mid-merge of id runs"), &known, &redb, &mem);
                    }
                }
                if progress.is_some() {
                    cases.reopened_mid_merge += 1;
                    if rng.below(3) == 0 {
                        sweep(&format!("{ctx} reopened mid-merge"), &known, &redb, &mem);
                    }
                }
            }
            17 => {
                if let Some(vb) = &last {
                    let (a, b) = (redb.commit(vb), mem.commit(vb));
                    let want = known.height;
                    assert!(
                        matches!(a, Err(StoreError::NotNext { head, got }) if head == want && got == want),
                        "{ctx}: {a:?}"
                    );
                    assert!(matches!(b, Err(StoreError::NotNext { .. })), "{ctx}: model {b:?}");
                }
                let (a, b) = (redb.commit(&other_next), mem.commit(&other_next));
                let want = known.height + 1;
                assert!(matches!(a, Err(StoreError::BrokenLink { height }) if height == want), "{ctx}: {a:?}");
                assert!(matches!(b, Err(StoreError::BrokenLink { .. })), "{ctx}: model {b:?}");
            }
            18 => {
                drop(redb);
                let wrong = RedbStore::open(&path, other.genesis());
                assert!(
                    matches!(&wrong, Err(StoreError::WrongGenesis { stored, given })
                        if *stored == genesis.hash() && *given == other.genesis().hash()),
                    "{ctx}: {wrong:?}"
                );
                drop(wrong);
                redb = open(&path, &genesis, limits);
            }
            _ => {
                read(&ctx, &mut rng, &known, &redb, &mem);
                reads += 1;
            }
        }
    }
    eprintln!(
        "seed {seed}: {} blocks, {} attestations, {merges} merges, {reopens} reopenings, {reads} random reads",
        known.height, known.tree_size
    );
    sweep(&format!("seed {seed} final"), &known, &redb, &mem);
    drop(redb);
    let redb = open(&path, &genesis, limits);
    sweep(&format!("seed {seed} final, reopened"), &known, &redb, &mem);
}

#[test]
fn redb_store_matches_the_in_memory_model() {
    let base = std::env::var("CREDENCE_MODEL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let mut cases = Cases::default();
    for seed in base..base + SEEDS {
        run(seed, &mut cases);
    }
    eprintln!("{cases:?}");
    assert!(cases.slices > 100, "merges were sliced over commits: {cases:?}");
    assert!(cases.forced > 5, "the active generation filled before the frozen one was merged: {cases:?}");
    assert!(cases.reopened_mid_merge > 5, "stores were reopened mid-merge: {cases:?}");
    assert!(cases.flushes > 10 && cases.reopened_deferred > 2, "deferred commits flushed and closed: {cases:?}");
    assert!(cases.run_merge_slices > 20, "merges of id runs were sliced over commits: {cases:?}");
    assert!(cases.run_merges > 5, "merges of id runs finished: {cases:?}");
    assert!(cases.reopened_mid_run_merge > 2, "stores were reopened mid-merge of id runs: {cases:?}");
}

/// A store dropped in the middle of a merge (as a crash between two commits leaves it)
/// reopens at the same cursor with the same reads, and the next commits finish the merge.
#[test]
fn a_store_closed_mid_merge_reopens_to_the_same_reads_and_finishes_the_merge() {
    let mut builder = ChainBuilder::new(77, GENESIS_TIME_MS).expect("builder");
    let genesis = builder.genesis().clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ledger.redb");
    let limits = (200, 200, RedbOptions::default().compact_ops_per_commit_max);
    let mut redb = open(&path, &genesis, limits);
    let mut mem = MemStore::new(&genesis);
    let mut known = Known { members: genesis.members.len() as u16, ..Known::default() };
    let mut commit = |redb: &mut RedbStore, mem: &mut MemStore, known: &mut Known| {
        let vb = builder.next_block(30).expect("block");
        redb.commit(&vb).expect("commit");
        mem.commit(&vb).expect("model commit");
        known.add(&vb);
    };
    // Into the merge of the first generation, past its `ids` ops into the index tables'.
    for _ in 0..100 {
        if redb.merge_progress().is_some_and(|(applied, _)| applied >= 300) {
            break;
        }
        commit(&mut redb, &mut mem, &mut known);
    }
    let (applied, total) = redb.merge_progress().expect("a merge under way");
    assert!(applied < total, "the merge is unfinished");
    sweep("before closing mid-merge", &known, &redb, &mem);
    drop(redb);

    let mut redb = open(&path, &genesis, limits);
    assert_eq!(redb.merge_progress(), Some((applied, total)), "the cursor survives");
    sweep("reopened mid-merge", &known, &redb, &mem);
    // The next commits apply the rest, slice by slice, and finish it.
    let mut last = applied;
    for _ in 0..100 {
        commit(&mut redb, &mut mem, &mut known);
        assert!(redb.last_commit_merge_ops() <= limits.1, "a slice, not the rest at once");
        match redb.merge_progress() {
            Some((now, all)) if all == total => {
                assert!(now > last, "each commit moves the merge on");
                last = now;
            }
            _ => break,
        }
    }
    let after = redb.merge_progress();
    assert!(after.is_none_or(|(_, t)| t != total), "the merge finished: {after:?}");
    assert!(redb.staged_leaves() < known.tree_size - 200, "the frozen leaves left the staged part");
    sweep("after the merge finished", &known, &redb, &mem);
    drop(redb);
    let redb = open(&path, &genesis, limits);
    sweep("reopened after the merge", &known, &redb, &mem);
}
