//! The replica core as a host sees it: proposal integrity (a tampered relay copy is refused and the genuine one still counts) and commits that check only the certificate.

use std::sync::{Arc, Mutex};

use credence_consensus::compact::{CLIENT_RECORD_SHARED_AFTER_MS, CompactItem, CompactProposal, Filling};
use credence_consensus::mempool::{InForce, Mempool, MempoolLimits, Origin, Verifier, admit_batch};
use credence_consensus::replica::{Action, COMPACT_WHOLE_AFTER_MS, Clock, Identity, Replica, Verdict};
use credence_consensus::sim::chain::{SIM_GENESIS_TIME_MS, SimChain, Workload};
use credence_consensus::sim::instant::{Delivery, InstantCluster, Ledger};
use credence_consensus::{Message, MessageError};
use credence_ledger::genesis::TimeParams;
use credence_ledger::store::MemStore;
use credence_ledger::vote::{BlockId, Proposal, VoteKind};

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

/// The proposals among `actions`, whole: a compact one filled from `by`'s mempool.
fn proposals_of(by: &Replica<MemStore>, actions: &[Action]) -> Vec<Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Broadcast(m @ Message::Proposal(_)) => Some(m.clone()),
            Action::BroadcastCompact(c) => {
                let pool = by.mempool().lock().unwrap();
                Some(Message::Proposal(
                    Filling::new(Arc::clone(c), &pool).into_whole().expect("the proposer holds them"),
                ))
            }
            _ => None,
        })
        .collect()
}

/// The name of the proposer of height 1, round 0: validator 0.
fn proposer_name(chain: &SimChain) -> credence_ledger::ids::MemberName {
    chain.consensus.validators[0].name.clone()
}

fn compacts(actions: &[Action]) -> Vec<Arc<CompactProposal>> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::BroadcastCompact(c) => Some(Arc::clone(c)),
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
    let out = admit_batch(&verifier, proposer.store(), proposer.mempool(), items, Origin::Client, NOW);
    assert_eq!(out.admitted(), 3);
    let started = proposer.start(clock()).unwrap();
    let genuine = proposals_of(&proposer, &started).pop().expect("the proposer of height 1 proposes");
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
    assert_eq!(
        admit_batch(&verifier, proposer.store(), proposer.mempool(), items.clone(), Origin::Client, NOW).verified,
        3
    );
    let started = proposer.start(clock()).unwrap();
    let proposal = proposals_of(&proposer, &started).pop().expect("the proposer of height 1 proposes");
    let Message::Proposal(sp) = &proposal else { unreachable!() };
    let id = sp.proposal.block;

    let mut receiver = replica(&chain, 1);
    receiver.start(clock()).unwrap();
    let (actions, _) = receiver.on_messages(clock(), vec![proposal]).unwrap();
    assert_eq!(prevotes(&actions), vec![Some(id)], "validated: the three signatures checked there");

    let mut forged = items[0].clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let out = admit_batch(&verifier, receiver.store(), receiver.mempool(), vec![forged], Origin::Client, NOW);
    assert_eq!((out.verified, out.invalid, out.admitted()), (0, 1, 0), "other signature bytes are checked");

    let out = admit_batch(&verifier, receiver.store(), receiver.mempool(), items, Origin::Client, NOW);
    assert_eq!(out.admitted(), 3);
    assert_eq!(out.verified, 0, "no signature checked a second time");
}

/// The proposer of height 1 with records of attester 0 (sequences 1..=3, from a client
/// of this node at `NOW`) and attester 1 (1..=2, from a peer), proposing at `wall_ms`.
fn compact_proposer(seed: u64, wall_ms: u64) -> (SimChain, Arc<CompactProposal>, Vec<Vec<u8>>) {
    let (chain, mut proposer, verifier, client) = proposer_with_three_records(seed);
    let mut workload = Workload::new(seed, &chain);
    let peer: Vec<Vec<u8>> = (1..=2).map(|s| workload.leaf(1, s).bytes).collect();
    assert_eq!(
        admit_batch(&verifier, proposer.store(), proposer.mempool(), client.clone(), Origin::Client, NOW).admitted(),
        3
    );
    assert_eq!(
        admit_batch(&verifier, proposer.store(), proposer.mempool(), peer.clone(), Origin::Peer, NOW).admitted(),
        2
    );
    let actions = proposer.start(Clock { wall_ms, mono_ms: 0 }).unwrap();
    let c = compacts(&actions).pop().expect("a fresh round-0 proposal goes out compact");
    assert!(actions.iter().all(|a| !matches!(a, Action::Broadcast(Message::Proposal(_)))), "and only compact");
    (chain, c, client.into_iter().chain(peer).collect())
}

/// Records from peers are named by id at once; a client's records only once their gossip
/// has had [`CLIENT_RECORD_SHARED_AFTER_MS`] to reach the others.
#[test]
fn a_round_zero_proposal_names_shared_records_by_id_and_carries_young_client_records_whole() {
    let (_, young, _) = compact_proposer(11, NOW + 10);
    let kinds: Vec<bool> = young.items.iter().map(|i| matches!(i, CompactItem::Id(_))).collect();
    assert_eq!(kinds.len(), 5);
    assert_eq!(young.ids(), 2, "the peer's two by id, the client's three whole: {kinds:?}");
    let (_, shared, _) = compact_proposer(11, NOW + CLIENT_RECORD_SHARED_AFTER_MS);
    assert_eq!(shared.ids(), 5, "all five by id once the client's gossip went out");
    assert_eq!(shared.header.tree_root, young.header.tree_root, "the same records");
}

/// A receiver holding every record fills a compact proposal at once; one missing a record
/// keeps it aside (not forwarded, not voted) and prevotes the block once gossip brings it.
#[test]
fn a_compact_proposal_is_filled_from_the_mempool_or_waits_for_its_records() {
    let at = NOW + CLIENT_RECORD_SHARED_AFTER_MS;
    let (chain, c, items) = compact_proposer(12, at);
    let id = c.proposal.block;
    let now = Clock { wall_ms: at, mono_ms: 0 };
    let verifier = Verifier::new(Arc::clone(&chain.ledger), InForce::new(&chain.ledger));

    let mut full = replica(&chain, 1);
    full.start(now).unwrap();
    admit_batch(&verifier, full.store(), full.mempool(), items.clone(), Origin::Peer, NOW);
    let (actions, verdict) = full.on_compact(now, Arc::clone(&c), &proposer_name(&chain)).unwrap();
    assert_eq!(verdict, Verdict::Accept);
    assert_eq!(prevotes(&actions), vec![Some(id)]);
    assert_eq!(full.stats.compact_filled, 1);

    let mut short = replica(&chain, 2);
    short.start(now).unwrap();
    admit_batch(&verifier, short.store(), short.mempool(), items[..4].to_vec(), Origin::Peer, NOW);
    let (actions, verdict) = short.on_compact(now, Arc::clone(&c), &proposer_name(&chain)).unwrap();
    assert_eq!(verdict, Verdict::Ignore(MessageError::RecordsMissing(1)));
    assert!(prevotes(&actions).is_empty(), "nothing voted while a record is missing");
    let (_, again) = short.on_compact(now, Arc::clone(&c), &proposer_name(&chain)).unwrap();
    assert_eq!(again, Verdict::Ignore(MessageError::Duplicate), "kept once");
    let out = admit_batch(&verifier, short.store(), short.mempool(), items[4..].to_vec(), Origin::Peer, NOW);
    assert_eq!(out.admitted(), 1);
    let actions = short.on_pool_changed(now).unwrap();
    assert_eq!(prevotes(&actions), vec![Some(id)], "complete: validated and prevoted");
    assert_eq!((short.stats.compact_filled, short.stats.compact_filled_later), (0, 1));
    assert_eq!(short.stats.proposals_invalid, 0);
}

/// What a hostile member or relay can send: a compact proposal for a later round, one
/// whose block id is not its header's, one not signed by the proposer, a relay's copy
/// with a record it made up (the items are not signed) or with records reordered, more
/// unfilled proposals than the bound. The genuine proposal still counts.
#[test]
fn hostile_compact_proposals_are_refused_or_dropped_and_the_genuine_one_counts() {
    let at = NOW + CLIENT_RECORD_SHARED_AFTER_MS;
    let (chain, c, items) = compact_proposer(13, at);
    let now = Clock { wall_ms: at, mono_ms: 0 };
    let verifier = Verifier::new(Arc::clone(&chain.ledger), InForce::new(&chain.ledger));
    let mut r = replica(&chain, 3);
    r.start(now).unwrap();
    let from = proposer_name(&chain);
    let on = |r: &mut Replica<MemStore>, c: CompactProposal| r.on_compact(now, Arc::new(c), &from).unwrap();

    // A relay's copy naming a record no one has, under the proposer's signed statement: not
    // kept (only the proposer's own copy waits for records), so it cannot shadow the genuine one.
    let mut made_up = (*c).clone();
    made_up.items[0] = CompactItem::Id(credence_ledger::hash::HashOf::from_hash(credence_ledger::hash::Hash([7; 32])));
    let relay = chain.consensus.validators[2].name.clone();
    let (_, v) = r.on_compact(now, Arc::new(made_up.clone()), &relay).unwrap();
    assert_eq!(v, Verdict::Ignore(MessageError::RecordsMissing(5)));
    let (_, v) = r.on_compact(now, Arc::clone(&c), &from).unwrap();
    assert_eq!(v, Verdict::Ignore(MessageError::RecordsMissing(5)), "the genuine one is kept, not a duplicate");

    let later = CompactProposal { proposal: Proposal { round: 1, ..c.proposal }, ..(*c).clone() };
    assert!(matches!(on(&mut r, later).1, Verdict::Reject(MessageError::CompactNotFresh { round: 1 })));
    let mut other = c.header.clone();
    other.time_ms += 1;
    let mismatched = CompactProposal { header: other.clone(), ..(*c).clone() };
    assert_eq!(on(&mut r, mismatched).1, Verdict::Reject(MessageError::BlockMismatch));
    // Signed by someone else (validator 1), with records missing: refused before it is kept.
    let key = chain.validator_key(1);
    let forged = Proposal { block: BlockId::of(&other), ..c.proposal };
    let unsigned = CompactProposal {
        proposal: forged,
        signature: forged.sign(&chain.chain_id(), &key),
        header: other.clone(),
        ..(*c).clone()
    };
    assert!(matches!(on(&mut r, unsigned).1, Verdict::Reject(MessageError::BadSignature(_))));
    // The proposer's own conflicting proposals with records missing: at most the bound kept.
    let proposer_key = chain.validator_key(0);
    for (k, expected) in [(1, true), (2, false), (3, false)] {
        let mut h = c.header.clone();
        h.time_ms += k;
        let p = Proposal { block: BlockId::of(&h), ..c.proposal };
        let kept = CompactProposal {
            proposal: p,
            signature: p.sign(&chain.chain_id(), &proposer_key),
            header: h,
            ..(*c).clone()
        };
        let (_, v) = on(&mut r, kept);
        assert_eq!(matches!(v, Verdict::Ignore(MessageError::RecordsMissing(5))), expected, "{k}: {v:?}");
    }

    // A relay's copy with two records swapped: while the genuine one waits, a duplicate of it.
    let mut swapped = (*c).clone();
    swapped.items.swap(0, 1);
    let (_, v) = r.on_compact(now, Arc::new(swapped.clone()), &relay).unwrap();
    assert_eq!(v, Verdict::Ignore(MessageError::Duplicate));
    // The genuine one, kept since it came, is complete once the records are here.
    admit_batch(&verifier, r.store(), r.mempool(), items.clone(), Origin::Peer, NOW);
    let actions = r.on_pool_changed(now).unwrap();
    assert_eq!(prevotes(&actions), vec![Some(c.proposal.block)]);
    assert_eq!(r.stats.compact_filled_later, 2, "and the proposer's conflicting one kept beside it");

    // At a receiver holding every record, the swapped copy is complete and does not match
    // the header: ignored, not blamed (the pool might hold other bytes under an id); the
    // genuine one after it counts.
    let mut holder = replica(&chain, 2);
    holder.start(now).unwrap();
    admit_batch(&verifier, holder.store(), holder.mempool(), items, Origin::Peer, NOW);
    let (actions, v) = holder.on_compact(now, Arc::new(swapped), &relay).unwrap();
    assert!(matches!(v, Verdict::Ignore(MessageError::LeavesMismatch(_))), "no blame: {v:?}");
    assert!(prevotes(&actions).is_empty());
    let (actions, v) = holder.on_compact(now, Arc::clone(&c), &from).unwrap();
    assert_eq!(v, Verdict::Accept);
    assert_eq!(prevotes(&actions), vec![Some(c.proposal.block)]);
}

/// A proposer without a polka `COMPACT_WHOLE_AFTER_MS` after its compact proposal sends
/// it whole (a receiver may never fill it); with one, it does not.
#[test]
fn a_compact_proposal_without_a_polka_goes_out_whole() {
    for polka in [false, true] {
        let (chain, mut proposer, verifier, items) = proposer_with_three_records(14);
        admit_batch(&verifier, proposer.store(), proposer.mempool(), items.clone(), Origin::Peer, NOW);
        let c = compacts(&proposer.start(clock()).unwrap()).pop().expect("compact");
        if polka {
            for i in [1, 2] {
                let mut r = replica(&chain, i);
                r.start(clock()).unwrap();
                admit_batch(&verifier, r.store(), r.mempool(), items.clone(), Origin::Peer, NOW);
                let (actions, _) = r.on_compact(clock(), Arc::clone(&c), &proposer_name(&chain)).unwrap();
                let votes: Vec<Message> = actions
                    .into_iter()
                    .filter_map(|a| match a {
                        Action::Broadcast(m @ Message::Vote(_)) => Some(m),
                        _ => None,
                    })
                    .collect();
                assert_eq!(votes.len(), 1, "validator {i} prevotes");
                proposer.on_messages(clock(), votes).unwrap();
            }
        }
        let wake = proposer.next_wake_mono_ms();
        assert_eq!(wake, COMPACT_WHOLE_AFTER_MS.min(chain.genesis().consensus.timeout_propose_ms / 2));
        let early = proposer.on_tick(Clock { wall_ms: NOW, mono_ms: wake - 1 }).unwrap();
        assert!(proposals_of(&proposer, &early).is_empty(), "not before");
        let due = proposer.on_tick(Clock { wall_ms: NOW, mono_ms: wake }).unwrap();
        let whole: Vec<&Action> = due.iter().filter(|a| matches!(a, Action::Broadcast(Message::Proposal(_)))).collect();
        assert_eq!(whole.len(), usize::from(!polka), "polka {polka}: {due:?}");
        assert_eq!(proposer.stats.compact_sent_whole, u64::from(!polka));
    }
}
