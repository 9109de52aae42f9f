//! The replica core as a host sees it: proposal integrity (a tampered relay copy is refused and the genuine one still counts) and commits that check only the certificate.

use std::sync::{Arc, Mutex};

use credence_consensus::mempool::{InForce, Mempool, MempoolLimits, Verifier, admit_batch};
use credence_consensus::replica::{Action, Clock, Identity, Replica, Verdict};
use credence_consensus::sim::chain::{SIM_GENESIS_TIME_MS, SimChain, Workload};
use credence_consensus::sim::instant::{Delivery, InstantCluster, Ledger};
use credence_consensus::{Message, MessageError};
use credence_ledger::genesis::TimeParams;
use credence_ledger::store::MemStore;
use credence_ledger::vote::{BlockId, VoteKind};

const NOW: u64 = SIM_GENESIS_TIME_MS + 1_000;

fn clock() -> Clock {
    Clock { wall_ms: NOW, mono_ms: 0 }
}

/// A 4-validator chain without heartbeat (seeded by `seed`), the replica of height 1's proposer,
/// an admission verifier, and three records signed by member 0 (sequences 1..=3), not yet admitted.
fn proposer_with_three_records(seed: u64) -> (SimChain, Replica<MemStore>, Verifier, Vec<Vec<u8>>) {
    let chain = SimChain::with_time(seed, 4, TimeParams { heartbeat_ms: 0, ..TimeParams::default() }).unwrap();
    let proposer = replica(&chain, 0);
    let mut workload = Workload::new(seed, &chain);
    let items = (1..=3).map(|s| workload.leaf(0, s).bytes).collect();
    let verifier = Verifier::new(Arc::clone(&chain.ledger), InForce::new(&chain.ledger));
    (chain, proposer, verifier, items)
}

fn replica(chain: &SimChain, i: usize) -> Replica<MemStore> {
    let identity = Identity { name: chain.consensus.validators[i].name.clone(), key: chain.validator_key(i) };
    let pool = Arc::new(Mutex::new(Mempool::new(Arc::clone(&chain.ledger), MempoolLimits::default())));
    Replica::new(Arc::clone(&chain.ledger), MemStore::new(chain.genesis()), pool, Some(identity), None, clock())
        .unwrap()
}

fn proposals(actions: &[Action]) -> Vec<Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Broadcast(m @ Message::Proposal(_)) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn prevotes(actions: &[Action]) -> Vec<Option<BlockId>> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Broadcast(Message::Vote(v)) if v.vote.kind == VoteKind::Prevote => Some(v.vote.value),
            _ => None,
        })
        .collect()
}

/// A relay drops a leaf from a signed proposal (header and signature untouched) and
/// gets its copy in first: the receiver refuses it (not forwarded) before caching or
/// validating anything, then counts the genuine copy and prevotes the block.
#[test]
fn a_tampered_relay_copy_is_refused_and_the_genuine_proposal_still_counts() {
    let (chain, mut proposer, verifier, items) = proposer_with_three_records(5);
    let out = admit_batch(&verifier, proposer.store(), proposer.mempool(), items, NOW);
    assert_eq!(out.admitted(), 3);
    let genuine = proposals(&proposer.start(clock()).unwrap()).pop().expect("the proposer of height 1 proposes");
    let Message::Proposal(sp) = genuine.clone() else { unreachable!() };
    assert_eq!(sp.block.leaves.len(), 3);
    let mut block = (*sp.block).clone();
    block.leaves.pop();
    let tampered = Message::Proposal(credence_consensus::SignedProposal { block: Arc::new(block), ..sp.clone() });
    let id = sp.proposal.block;

    let mut receiver = replica(&chain, 1);
    receiver.start(clock()).unwrap();
    let (actions, verdicts) = receiver.on_messages(clock(), vec![tampered]).unwrap();
    assert!(matches!(verdicts[..], [Verdict::Reject(MessageError::LeavesMismatch(_))]), "{verdicts:?}");
    assert!(prevotes(&actions).is_empty(), "nothing cached, nothing voted");
    let (actions, verdicts) = receiver.on_messages(clock(), vec![genuine]).unwrap();
    assert_eq!(verdicts, vec![Verdict::Accept]);
    assert_eq!(prevotes(&actions), vec![Some(id)], "the genuine block is prevoted");
}

/// Every decided block had a valid proposal on its tip, so every commit checks only
/// its certificate: the rules and the Merkle root ran once per proposal.
#[test]
fn every_commit_of_a_validated_proposal_checks_only_its_certificate() {
    let mut cluster = InstantCluster::new(9, 4, Ledger::On).with_delivery(Delivery::Inbox);
    cluster.run_heights(10);
    assert!(cluster.decided.iter().any(|cb| !cb.block.leaves.is_empty()));
    for (i, stats) in cluster.replica_stats().into_iter().enumerate() {
        assert!(stats.commits_certified_only >= 10, "member {i}: {stats:?}");
        assert_eq!(stats.proposals_invalid, 0, "member {i}");
    }
}

/// A proposal brings records before their gossip copies: the receiver verifies their
/// signatures in the proposal, and does not verify them again when the copies arrive;
/// a copy with other signature bytes is verified (and refused).
#[test]
fn a_record_verified_in_a_proposal_is_not_verified_again_when_gossip_brings_it() {
    let (chain, mut proposer, verifier, items) = proposer_with_three_records(6);
    assert_eq!(admit_batch(&verifier, proposer.store(), proposer.mempool(), items.clone(), NOW).verified, 3);
    let proposal = proposals(&proposer.start(clock()).unwrap()).pop().expect("the proposer of height 1 proposes");
    let Message::Proposal(sp) = &proposal else { unreachable!() };
    let id = sp.proposal.block;

    let mut receiver = replica(&chain, 1);
    receiver.start(clock()).unwrap();
    let (actions, _) = receiver.on_messages(clock(), vec![proposal]).unwrap();
    assert_eq!(prevotes(&actions), vec![Some(id)], "validated: the three signatures checked there");

    let mut forged = items[0].clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let out = admit_batch(&verifier, receiver.store(), receiver.mempool(), vec![forged], NOW);
    assert_eq!((out.verified, out.invalid, out.admitted()), (0, 1, 0), "other signature bytes are checked");

    let out = admit_batch(&verifier, receiver.store(), receiver.mempool(), items, NOW);
    assert_eq!(out.admitted(), 3);
    assert_eq!(out.verified, 0, "no signature checked a second time");
}
