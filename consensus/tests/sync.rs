//! Catch-up through the replica core, as a host sees it: the window of sync requests for consecutive ranges (bounded), answers applied in order whatever order they arrive in, and answers from a peer serving garbage or a forged block refused while the honest peers' answers complete the chain.

use std::sync::{Arc, Mutex};

use credence_consensus::mempool::{Mempool, MempoolLimits};
use credence_consensus::replica::{
    Action, Clock, Replica, SYNC_ANSWER_WAIT_MS, SYNC_REQUESTS_IN_FLIGHT_MAX, SyncOutcome,
};
use credence_consensus::sim::instant::{InstantCluster, Ledger};
use credence_consensus::sync::{SYNC_BLOCKS_MAX, SyncRequest};
use credence_ledger::block::{self, CertifiedBlock};
use credence_ledger::store::{MemStore, Store};

/// Heights of the chain to catch up with: more than two full requests.
const HEIGHTS: u64 = 2 * SYNC_BLOCKS_MAX as u64 + 12;

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
    cluster.run_heights(HEIGHTS);
    let chain: Vec<CertifiedBlock> = cluster.decided.iter().take(HEIGHTS as usize).cloned().collect();
    assert_eq!(chain.len() as u64, HEIGHTS);
    assert!(chain.iter().filter(|cb| !cb.block.leaves.is_empty()).count() > 10, "blocks with records");
    let sim = cluster.chain();
    let pool = Arc::new(Mutex::new(Mempool::new(Arc::clone(&sim.ledger), MempoolLimits::default())));
    let mut r =
        Replica::new(Arc::clone(&sim.ledger), MemStore::new(sim.genesis()), pool, None, None, clock(0)).unwrap();

    // A fresh observer asks at once, for consecutive ranges, as many as the window holds.
    let out = requests(&r.start(clock(0)).unwrap());
    let max = SYNC_BLOCKS_MAX as u64;
    let expected: Vec<SyncRequest> = (0..SYNC_REQUESTS_IN_FLIGHT_MAX as u64)
        .map(|i| SyncRequest { from_height: 1 + i * max, blocks_max: SYNC_BLOCKS_MAX })
        .collect();
    assert_eq!(out, expected);
    let [first, second, third, fourth] = [expected[0], expected[1], expected[2], expected[3]];

    // Later ranges answered first are held (nothing stored), and the window stays bounded.
    let (actions, outcome) = r.on_sync_blocks(clock(10), second, serve(&chain, second)).unwrap();
    assert_eq!((outcome, r.tip().height), (SyncOutcome::default(), 0));
    assert!(requests(&actions).is_empty(), "the window is full: {actions:?}");
    let (actions, _) = r.on_sync_blocks(clock(20), third, serve(&chain, third)).unwrap();
    assert!(requests(&actions).is_empty());
    assert_eq!(r.tip().height, 0);
    // Past the peers' tip: nothing there. The freed slot asks for what the third answer lacked.
    let (actions, _) = r.on_sync_blocks(clock(30), fourth, serve(&chain, fourth)).unwrap();
    let tail = third.from_height + (HEIGHTS - 2 * max);
    assert_eq!(
        requests(&actions),
        vec![SyncRequest { from_height: tail, blocks_max: (fourth.from_height - tail) as u32 }]
    );

    // A peer serving garbage: block 10 of its answer does not decode. The nine before it are
    // stored; the answer is refused and its remaining heights asked again.
    let mut garbage = serve(&chain, first);
    let half = garbage[9].len() / 2;
    garbage[9].truncate(half);
    let (actions, outcome) = r.on_sync_blocks(clock(40), first, garbage).unwrap();
    assert_eq!((outcome.stored, outcome.bad.clone()), (9, vec![first]));
    assert_eq!(r.tip().height, 9);
    let again = requests(&actions);
    assert_eq!(again, vec![SyncRequest { from_height: 10, blocks_max: (max - 9) as u32 }]);

    // A peer serving a forged block: block 20 decodes, but its header was changed after its
    // certificate was signed. Blocks 10..=19 are stored, block 20 is refused.
    let mut forged_chain = chain.clone();
    forged_chain[19].block.header.time_ms += 1;
    let (actions, outcome) = r.on_sync_blocks(clock(50), again[0], serve(&forged_chain, again[0])).unwrap();
    assert_eq!((outcome.stored, outcome.bad.clone()), (10, vec![again[0]]));
    assert_eq!(r.tip().height, 19);
    let honest = requests(&actions);
    assert_eq!(honest, vec![SyncRequest { from_height: 20, blocks_max: (max - 19) as u32 }]);

    // An honest peer's answer fills the gap: the held answers follow, in order, in one call.
    let (actions, outcome) = r.on_sync_blocks(clock(60), honest[0], serve(&chain, honest[0])).unwrap();
    assert!(outcome.bad.is_empty(), "{outcome:?}");
    assert_eq!(outcome.stored, 2 * max - 19 + (HEIGHTS - 2 * max));
    assert_eq!(r.tip().height, HEIGHTS);
    let committed: Vec<u64> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Committed { height, synced: true, .. } => Some(*height),
            _ => None,
        })
        .collect();
    assert_eq!(committed, (20..=HEIGHTS).collect::<Vec<_>>(), "every height once, in order");
    let head = r.store().head().unwrap().unwrap();
    assert_eq!(head.hash, chain[HEIGHTS as usize - 1].block.header.hash());
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
        let (actions, outcome) = r.on_sync_blocks(clock(70), request, serve(&chain, request)).unwrap();
        assert_eq!(outcome.stored, 0);
        let more = requests(&actions);
        assert!(more.iter().all(|q| q.from_height > HEIGHTS), "{more:?}");
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
