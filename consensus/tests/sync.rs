//! Catch-up through the replica core, as a host sees it: the window of sync requests for consecutive ranges (bounded), answers applied in order whatever order they arrive in, and answers from a peer serving garbage or a forged block refused while the honest peers' answers complete the chain.

use std::sync::{Arc, Mutex};

use credence_consensus::mempool::{Mempool, MempoolLimits};
use credence_consensus::replica::{
    Action, Clock, Replica, SYNC_ANSWER_WAIT_MS, SYNC_REQUESTS_IN_FLIGHT_MAX, SyncOutcome,
};
use credence_consensus::sim::instant::{InstantCluster, Ledger};
use credence_consensus::sync::{SYNC_ANSWER_BYTES_MAX, SYNC_BLOCKS_MAX, SyncRequest};
use credence_ledger::block::{self, CertifiedBlock};
use credence_ledger::store::{MemStore, Store};

/// Heights of the chain: the first requests (sized by the genesis's largest block, so at
/// most [`SYNC_REQUESTS_IN_FLIGHT_MAX`] full ones), then more than two full requests.
const HEIGHTS_MAX: u64 = (SYNC_REQUESTS_IN_FLIGHT_MAX as u64 + 2) * SYNC_BLOCKS_MAX as u64 + 12;

fn clock(mono_ms: u64) -> Clock {
    Clock { wall_ms: credence_consensus::sim::chain::SIM_GENESIS_TIME_MS + 1_000_000, mono_ms }
}

fn requests(actions: &[Action]) -> Vec<SyncRequest> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::RequestSync(r) => Some(*r),
            _ => None,
        })
        .collect()
}

fn encoded(blocks: &[CertifiedBlock]) -> Vec<Vec<u8>> {
    blocks
        .iter()
        .map(|cb| {
            let mut out = Vec::new();
            block::encode_certified(cb, &mut out);
            out
        })
        .collect()
}

/// The blocks a peer holding `chain` serves for `request`.
fn serve(chain: &[CertifiedBlock], request: SyncRequest) -> Vec<Vec<u8>> {
    let from = request.from_height as usize - 1;
    let to = (from + request.blocks_max as usize).min(chain.len());
    encoded(chain.get(from..to).unwrap_or(&[]))
}

#[test]
fn a_fresh_replica_catches_up_through_a_bounded_window_refusing_garbage_and_forged_blocks() {
    let mut cluster = InstantCluster::new(21, 4, Ledger::On);
    cluster.run_heights(HEIGHTS_MAX);
    let full: Vec<CertifiedBlock> = cluster.decided.iter().take(HEIGHTS_MAX as usize).cloned().collect();
    assert_eq!(full.len() as u64, HEIGHTS_MAX);
    assert!(full.iter().filter(|cb| !cb.block.leaves.is_empty()).count() > 10, "blocks with records");
    let sim = cluster.chain();
    let pool = Arc::new(Mutex::new(Mempool::new(Arc::clone(&sim.ledger), MempoolLimits::default())));
    let mut r =
        Replica::new(Arc::clone(&sim.ledger), MemStore::new(sim.genesis()), pool, None, None, clock(0)).unwrap();

    // A fresh observer asks at once, for consecutive ranges, as many as the window holds,
    // each as many blocks as fill most of an answer's bytes if they are of the genesis's
    // largest size (the sim's genesis allows blocks far larger than its blocks are).
    let block_bytes_max = sim.ledger.genesis.consensus.block_bytes_max as usize;
    let sized = (SYNC_ANSWER_BYTES_MAX * 3 / 4 / (block_bytes_max + 4)).clamp(1, SYNC_BLOCKS_MAX as usize) as u64;
    assert!(sized < SYNC_BLOCKS_MAX as u64, "the test needs the first requests smaller than the most");
    let out = requests(&r.start(clock(0)).unwrap());
    let expected: Vec<SyncRequest> = (0..SYNC_REQUESTS_IN_FLIGHT_MAX as u64)
        .map(|i| SyncRequest { from_height: 1 + i * sized, blocks_max: sized as u32 })
        .collect();
    assert_eq!(out, expected);
    // Their answers (of small blocks) size the next requests: as many blocks as a request may ask.
    let mut next = Vec::new();
    for request in expected {
        let (actions, outcome) = r.on_sync_blocks(clock(1), request, serve(&full, request)).unwrap();
        assert_eq!(outcome.stored, sized);
        next.extend(requests(&actions));
    }
    let base = SYNC_REQUESTS_IN_FLIGHT_MAX as u64 * sized;
    assert_eq!(r.tip().height, base);
    let max = SYNC_BLOCKS_MAX as u64;
    let expected: Vec<SyncRequest> = (0..SYNC_REQUESTS_IN_FLIGHT_MAX as u64)
        .map(|i| SyncRequest { from_height: base + 1 + i * max, blocks_max: SYNC_BLOCKS_MAX })
        .collect();
    assert_eq!(next, expected);
    let [first, second, third, fourth] = [expected[0], expected[1], expected[2], expected[3]];
    // From here the peers hold two full requests' blocks after the base and 12 more.
    const AFTER_BASE: u64 = 2 * SYNC_BLOCKS_MAX as u64 + 12;
    let heights = base + AFTER_BASE;
    let chain = &full[..heights as usize];

    // Later ranges answered first are held (nothing stored), and the window stays bounded.
    let (actions, outcome) = r.on_sync_blocks(clock(10), second, serve(chain, second)).unwrap();
    assert_eq!((outcome, r.tip().height), (SyncOutcome::default(), base));
    assert!(requests(&actions).is_empty(), "the window is full: {actions:?}");
    let (actions, _) = r.on_sync_blocks(clock(20), third, serve(chain, third)).unwrap();
    assert!(requests(&actions).is_empty());
    assert_eq!(r.tip().height, base);
    // Past the peers' tip: nothing there. The freed slot asks for what the third answer lacked.
    let (actions, _) = r.on_sync_blocks(clock(30), fourth, serve(chain, fourth)).unwrap();
    let tail = third.from_height + (AFTER_BASE - 2 * max);
    assert_eq!(
        requests(&actions),
        vec![SyncRequest { from_height: tail, blocks_max: (fourth.from_height - tail) as u32 }]
    );

    // A peer serving garbage: block 10 of its answer does not decode. The nine before it are
    // stored; the answer is refused and its remaining heights asked again (the blocks before
    // it decoded, so the size of the next requests stays).
    let mut garbage = serve(chain, first);
    let half = garbage[9].len() / 2;
    garbage[9].truncate(half);
    let (actions, outcome) = r.on_sync_blocks(clock(40), first, garbage).unwrap();
    assert_eq!((outcome.stored, outcome.bad.clone()), (9, vec![first]));
    assert_eq!(r.tip().height, base + 9);
    let again = requests(&actions);
    assert_eq!(again, vec![SyncRequest { from_height: base + 10, blocks_max: (max - 9) as u32 }]);

    // A peer serving a forged block: block 20 (after the base) decodes, but its header was changed after its
    // certificate was signed. Blocks 10..=19 are stored, block 20 is refused.
    let mut forged_chain = chain.to_vec();
    forged_chain[base as usize + 19].block.header.time_ms += 1;
    let (actions, outcome) = r.on_sync_blocks(clock(50), again[0], serve(&forged_chain, again[0])).unwrap();
    assert_eq!((outcome.stored, outcome.bad.clone()), (10, vec![again[0]]));
    assert_eq!(r.tip().height, base + 19);
    let honest = requests(&actions);
    assert_eq!(honest, vec![SyncRequest { from_height: base + 20, blocks_max: (max - 19) as u32 }]);

    // An honest peer's answer fills the gap: the held answers follow, in order, in one call.
    let (actions, outcome) = r.on_sync_blocks(clock(60), honest[0], serve(chain, honest[0])).unwrap();
    assert!(outcome.bad.is_empty(), "{outcome:?}");
    assert_eq!(outcome.stored, 2 * max - 19 + (AFTER_BASE - 2 * max));
    assert_eq!(r.tip().height, heights);
    let committed: Vec<u64> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Committed { height, synced: true, .. } => Some(*height),
            _ => None,
        })
        .collect();
    assert_eq!(committed, (base + 20..=heights).collect::<Vec<_>>(), "every height once, in order");
    let head = r.store().head().unwrap().unwrap();
    assert_eq!(head.hash, chain[heights as usize - 1].block.header.hash());
    for (h, cb) in chain.iter().enumerate() {
        assert_eq!(r.store().block(h as u64 + 1).unwrap().as_ref(), Some(cb), "block {}", h + 1);
    }
    // At the tip, the answer to the last range is empty: the replica stops asking.
    let mut pending = requests(&actions);
    pending.push(SyncRequest { from_height: tail, blocks_max: (fourth.from_height - tail) as u32 });
    let mut answered = 0;
    while let Some(request) = pending.pop() {
        answered += 1;
        assert!(answered <= 2 * SYNC_REQUESTS_IN_FLIGHT_MAX, "sync stops at the tip");
        let (actions, outcome) = r.on_sync_blocks(clock(70), request, serve(chain, request)).unwrap();
        assert_eq!(outcome.stored, 0);
        let more = requests(&actions);
        assert!(more.iter().all(|q| q.from_height > heights), "{more:?}");
        pending.extend(more);
    }
}

/// A request unanswered for [`SYNC_ANSWER_WAIT_MS`] is
/// forgotten and its heights asked again; a late answer to it is still used.
#[test]
fn an_unanswered_request_is_asked_again_and_a_late_answer_still_counts() {
    let mut cluster = InstantCluster::new(22, 4, Ledger::On);
    cluster.run_heights(5);
    let chain: Vec<CertifiedBlock> = cluster.decided.iter().take(5).cloned().collect();
    let sim = cluster.chain();
    let pool = Arc::new(Mutex::new(Mempool::new(Arc::clone(&sim.ledger), MempoolLimits::default())));
    let mut r =
        Replica::new(Arc::clone(&sim.ledger), MemStore::new(sim.genesis()), pool, None, None, clock(0)).unwrap();
    let out = requests(&r.start(clock(0)).unwrap());
    assert_eq!(out.len(), SYNC_REQUESTS_IN_FLIGHT_MAX);
    assert!(r.next_wake_mono_ms() <= SYNC_ANSWER_WAIT_MS);
    let retry = requests(&r.on_tick(clock(SYNC_ANSWER_WAIT_MS)).unwrap());
    assert_eq!(retry, out, "the same ranges, asked again");
    let (_, outcome) = r.on_sync_blocks(clock(SYNC_ANSWER_WAIT_MS + 500), out[0], serve(&chain, out[0])).unwrap();
    assert_eq!((outcome.stored, r.tip().height), (5, 5));
}
