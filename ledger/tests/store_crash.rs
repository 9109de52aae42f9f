//! Crash test of the redb store: a child process appends blocks and is SIGKILLed at random moments; after each kill the store must open, hold every block the child reported committed, verify from genesis, and agree with an in-memory model in every index, state entry and Merkle node.
//!
//! The child is this test binary run again with `CREDENCE_CRASH_CHILD` set (see
//! [`crash_child`]), so no extra binary target is needed. It resumes from the
//! store's head each time, the way a restarted node does: the frontier comes from
//! the stored Merkle nodes and each new block is verified against the store's state
//! before it is committed. `CREDENCE_CRASH_SEED` replays a run's kill timings.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use credence_ledger::block::{self, ValidBlock};
use credence_ledger::demo::{ChainBuilder, DemoRng};
use credence_ledger::genesis::Genesis;
use credence_ledger::ids::{PatentNumber, Uscc};
use credence_ledger::merkle::{Frontier, NodeReader};
use credence_ledger::rules::StateView;
use credence_ledger::store::{IndexKey, Location, MemStore, RedbOptions, RedbStore, Store};
use credence_ledger::verify::{self, ChainContext, Failure, Tip, VerifyError};

const CHILD_ENV: &str = "CREDENCE_CRASH_CHILD";
const BLOCKS_ENV: &str = "CREDENCE_CRASH_BLOCKS";
const STAGE_ENV: &str = "CREDENCE_CRASH_STAGE";
const SLICE_ENV: &str = "CREDENCE_CRASH_SLICE";
const DEFER_ENV: &str = "CREDENCE_CRASH_DEFER";
const COMPACT_ENV: &str = "CREDENCE_CRASH_COMPACT";
/// With deferred commits, the child flushes after every this many blocks (as sync flushes a run).
const DEFER_RUN: u64 = 4;
const CHAIN_SEED: u64 = 21;
const GENESIS_TIME_MS: u64 = 1_600_000_000_000;
const BLOCKS: u64 = 320;
const KILLS: u32 = 24;
const TIME_LIMIT: Duration = Duration::from_secs(50);

/// Attestations in block `h`: 0 to 40, with some empty blocks.
fn block_size(h: u64) -> usize {
    if h.is_multiple_of(13) { 0 } else { (h * 37 % 41) as usize }
}

fn genesis() -> Genesis {
    ChainBuilder::new(CHAIN_SEED, GENESIS_TIME_MS).expect("builder").genesis().clone()
}

/// The child: commits the blocks in the file after the store's head, printing
/// `committed N` once each commit has returned.
#[test]
fn crash_child() {
    let (Some(store_path), Some(blocks_path)) = (std::env::var_os(CHILD_ENV), std::env::var_os(BLOCKS_ENV)) else {
        return;
    };
    let stage = std::env::var(STAGE_ENV).ok().and_then(|s| s.parse().ok()).expect("stage limit");
    let genesis = genesis();
    let records_max = genesis.consensus.block_records_max as usize;
    let ctx = ChainContext::new(genesis.clone());
    let slice = std::env::var(SLICE_ENV).ok().and_then(|s| s.parse().ok()).expect("merge ops per commit");
    let compact = std::env::var(COMPACT_ENV).ok().and_then(|s| s.parse().ok()).expect("run-merge entries per commit");
    let options = RedbOptions {
        stage_leaves_max: stage,
        merge_ops_per_commit_max: slice,
        compact_ops_per_commit_max: compact,
        ..RedbOptions::default()
    };
    let mut store = RedbStore::open_with(Path::new(&store_path), &genesis, options).expect("child: open");
    let mut tip = match store.head().expect("child: head") {
        None => Tip::genesis(&ctx),
        Some(h) => Tip {
            height: h.height,
            hash: h.hash,
            time_ms: h.time_ms,
            frontier: Frontier::from_reader(h.tree_size, &store).expect("child: frontier"),
        },
    };
    let defer = std::env::var(DEFER_ENV).is_ok_and(|v| v == "1");
    let bytes = std::fs::read(&blocks_path).expect("child: blocks file");
    let mut input = bytes.as_slice();
    let mut out = std::io::stdout();
    for height in 1.. {
        let Some((len, rest)) = input.split_first_chunk::<4>() else { break };
        let (chunk, rest) = rest.split_at(u32::from_le_bytes(*len) as usize);
        input = rest;
        if height <= tip.height {
            continue;
        }
        let cb = block::decode_certified_exact(chunk, records_max).expect("child: decode");
        let vb = verify::verify_block(&ctx, &tip, &store, cb).expect("child: verify");
        if defer {
            // Durable only at the flush: report the run then.
            store.commit_deferred(&vb).expect("child: deferred commit");
            if height.is_multiple_of(DEFER_RUN) {
                store.flush().expect("child: flush");
                writeln!(out, "committed {height}").and_then(|()| out.flush()).expect("child: stdout");
            }
        } else {
            store.commit(&vb).expect("child: commit");
            writeln!(out, "committed {height}").and_then(|()| out.flush()).expect("child: stdout");
        }
        tip.advance(&vb);
    }
    store.flush().expect("child: flush");
    writeln!(out, "done").and_then(|()| out.flush()).expect("child: stdout");
}

/// Everything in `store` against the model and against the blocks themselves.
fn check(ctx: &ChainContext, store: &RedbStore, mem: &MemStore, blocks: &[ValidBlock], at: &str) {
    let height = blocks.len() as u64;
    assert_eq!(store.head().expect("head"), mem.head().expect("model head"), "{at}: head");
    let stream = (1..=height).map(|h| match store.block(h) {
        Ok(Some(cb)) => Ok(cb),
        Ok(None) => Err(VerifyError::at(h, Failure::Source("missing from the store".into()))),
        Err(e) => Err(VerifyError::at(h, Failure::Source(e.to_string()))),
    });
    let (summary, failure) = verify::verify_chain(ctx, stream, |_| {});
    assert_eq!(failure, None, "{at}: the stored chain does not verify");
    assert_eq!(summary.blocks, height, "{at}: verified blocks");

    let mut enterprise: BTreeMap<Uscc, Vec<u64>> = BTreeMap::new();
    let mut patent: BTreeMap<PatentNumber, Vec<u64>> = BTreeMap::new();
    let mut attester: BTreeMap<u16, Vec<u64>> = BTreeMap::new();
    let mut index = 0u64;
    for vb in blocks {
        let h = vb.header().height;
        assert_eq!(store.block(h).expect("block").as_ref(), Some(vb.certified()), "{at}: block {h}");
        for leaf in &vb.certified().block.leaves {
            assert_eq!(store.leaf(index).expect("leaf").as_ref(), Some(leaf), "{at}: leaf {index}");
            let location = Some(Location { height: h, leaf_index: index });
            assert_eq!(store.locate(&leaf.id).expect("locate"), location, "{at}: locate leaf {index}");
            assert_eq!(
                store.record(&leaf.id).expect("record"),
                mem.record(&leaf.id).expect("model"),
                "{at}: record {index}"
            );
            let body = &leaf.attestation.body;
            if let Some(e) = body.claim.enterprise() {
                enterprise.entry(*e).or_default().push(index);
            }
            if let Some(p) = body.claim.patent() {
                patent.entry(*p).or_default().push(index);
            }
            let m = ctx.genesis.member_index(&body.attester).expect("a member");
            attester.entry(m).or_default().push(index);
            index += 1;
        }
    }
    assert_eq!(store.leaf(index).expect("leaf"), None, "{at}: a leaf beyond the head");

    let all = |key: IndexKey<'_>| {
        let mut out = Vec::new();
        loop {
            let page = store.query(key, out.last().copied(), 50).expect("query");
            out.extend(&page);
            if page.len() < 50 {
                return out;
            }
        }
    };
    for (e, leaves) in &enterprise {
        assert_eq!(&all(IndexKey::Enterprise(e)), leaves, "{at}: enterprise {e}");
    }
    for (p, leaves) in &patent {
        assert_eq!(&all(IndexKey::Patent(p)), leaves, "{at}: patent {p}");
        assert_eq!(
            store.active_pledge(p).expect("pledge"),
            mem.active_pledge(p).expect("model"),
            "{at}: pledge on {p}"
        );
    }
    for m in 0..ctx.genesis.members.len() as u16 + 1 {
        assert_eq!(all(IndexKey::Attester(m)), attester.get(&m).cloned().unwrap_or_default(), "{at}: attester {m}");
        assert_eq!(store.next_sequence(m).expect("seq"), mem.next_sequence(m).expect("model"), "{at}: sequence of {m}");
    }

    let size = index;
    for level in 0..=(64 - size.leading_zeros()) as u8 {
        for i in 0..=size >> level {
            assert_eq!(store.node(level, i), mem.node(level, i), "{at}: Merkle node ({level}, {i})");
        }
    }
}

#[test]
fn killed_writers_leave_a_complete_consistent_store() {
    let seed = std::env::var("CREDENCE_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    eprintln!("crash test: CREDENCE_CRASH_SEED={seed}");
    let mut rng = DemoRng::new(seed);

    let mut builder = ChainBuilder::new(CHAIN_SEED, GENESIS_TIME_MS).expect("builder");
    let genesis = builder.genesis().clone();
    let ctx = ChainContext::new(genesis.clone());
    let dir = tempfile::tempdir().expect("tempdir");
    let blocks_path = dir.path().join("blocks.bin");
    let store_path: PathBuf = dir.path().join("ledger.redb");
    let mut blocks = Vec::new();
    let mut file = Vec::new();
    for h in 1..=BLOCKS {
        let vb = builder.next_block(block_size(h)).expect("block");
        let mut bytes = Vec::new();
        block::encode_certified(vb.certified(), &mut bytes);
        file.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        file.extend_from_slice(&bytes);
        blocks.push(vb);
    }
    std::fs::write(&blocks_path, &file).expect("write blocks");

    let exe = std::env::current_exe().expect("test binary");
    let started = Instant::now();
    let mut mem = MemStore::new(&genesis);
    let mut head = 0u64;
    let (mut kills, mut lives, mut completed, mut in_flight, mut mid_merge) = (0u32, 0u32, 0u32, 0u32, 0u32);
    let mut mid_run_merge = 0u32;
    while kills < KILLS {
        assert!(started.elapsed() < TIME_LIMIT, "only {kills} kills in {TIME_LIMIT:?}");
        lives += 1;
        let stage = [0, 7, 200, RedbOptions::default().stage_leaves_max][rng.below(4) as usize];
        // Small slices keep a merge under way across many commits, so kills land mid-merge.
        let slice = [5, 60, RedbOptions::default().merge_ops_per_commit_max][rng.below(3) as usize];
        // Small run-merge slices keep a merge of id runs under way across many commits too.
        let compact = [3, 40, RedbOptions::default().compact_ops_per_commit_max][rng.below(3) as usize];
        // Every other life defers its commits in runs, as sync does.
        let defer = lives % 2 == 0;
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1", "-q"])
            .env(CHILD_ENV, &store_path)
            .env(BLOCKS_ENV, &blocks_path)
            .env(STAGE_ENV, stage.to_string())
            .env(SLICE_ENV, slice.to_string())
            .env(COMPACT_ENV, compact.to_string())
            .env(DEFER_ENV, if defer { "1" } else { "0" })
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        let reported = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let reader = {
            let (reported, done) = (Arc::clone(&reported), Arc::clone(&done));
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(n) = line.strip_prefix("committed ").and_then(|n| n.parse().ok()) {
                        reported.store(n, Ordering::SeqCst);
                    } else if line == "done" {
                        done.store(true, Ordering::SeqCst);
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_millis(5 + rng.below(296)));
        let at = match child.try_wait().expect("child status") {
            Some(status) => {
                assert!(status.success(), "life {lives}: the child failed on its own: {status}");
                format!(
                    "life {lives} (finished, stage limit {stage}, slice {slice}, run merges {compact}, defer {defer})"
                )
            }
            None => {
                child.kill().expect("SIGKILL");
                child.wait().expect("reap child");
                kills += 1;
                format!(
                    "life {lives} (kill {kills}, stage limit {stage}, slice {slice}, run merges {compact}, defer {defer})"
                )
            }
        };
        reader.join().expect("stdout reader");
        let reported = reported.load(Ordering::SeqCst);

        let store = RedbStore::open(&store_path, &genesis).unwrap_or_else(|e| panic!("{at}: reopening: {e}"));
        let now = store.head().expect("head").map_or(0, |h| h.height);
        assert!(
            now >= reported,
            "{at}: durability: the child reported block {reported} committed, the store's head is {now}"
        );
        assert!(now >= head, "{at}: the head went back from {head} to {now}");
        let run = if defer { DEFER_RUN } else { 1 };
        assert!(
            now <= reported.max(head) + run,
            "{at}: head {now}, but only {run} commits can be in flight after {}",
            reported.max(head)
        );
        // A crash loses the deferred commits since the last flush: the store is at a flush.
        assert!(
            !defer || now == head || now.is_multiple_of(DEFER_RUN) || now == BLOCKS,
            "{at}: head {now} is not at a flush of the deferred commits"
        );
        in_flight += u32::from(now > reported.max(head));
        mid_merge += u32::from(store.merge_progress().is_some());
        mid_run_merge += u32::from(store.id_runs_state().1.is_some());
        for vb in &blocks[head as usize..now as usize] {
            mem.commit(vb).expect("model commit");
        }
        head = now;
        check(&ctx, &store, &mem, &blocks[..head as usize], &at);
        drop(store);
        if done.load(Ordering::SeqCst) {
            assert_eq!(head, BLOCKS, "{at}: the child finished early");
            completed += 1;
            std::fs::remove_file(&store_path).expect("remove store");
            mem = MemStore::new(&genesis);
            head = 0;
        }
    }
    eprintln!(
        "crash test: {kills} kills in {lives} lives, {in_flight} with a commit durable but unreported, {mid_merge} stopped mid-merge, {mid_run_merge} mid-merge of id runs, {completed} complete chains, {:.1?}",
        started.elapsed()
    );
}
