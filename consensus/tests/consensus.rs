//! Focused tests of the consensus machine: decisions pass the verification core, vote bookkeeping rejects what it must, equivocation yields evidence the ledger accepts, and a restarted validator never signs a conflicting vote.

use std::sync::Arc;

use credence_consensus::sim::chain::SimChain;
use credence_consensus::sim::instant::{InstantCluster, Ledger};
use credence_consensus::{
    Consensus, Effect, Input, Message, MessageError, SignState, SignedProposal, SignedVote, Signer, Step, Timeout,
};
use credence_ledger::attestation::{AttestationBody, Claim};
use credence_ledger::block::{Block, BlockHeader};
use credence_ledger::checkpoint;
use credence_ledger::genesis::TimeParams;
use credence_ledger::hash::{Hash, HashOf};
use credence_ledger::merkle;
use credence_ledger::rules::{self, MemState};
use credence_ledger::vote::{BlockId, Proposal, Statement, Vote, VoteKind};

const SEED: u64 = 11;

/// A chain whose heights start at once (no heartbeat wait), as the tests below assume.
fn chain(n: usize) -> Arc<SimChain> {
    let time = TimeParams { heartbeat_ms: 0, ..TimeParams::default() };
    Arc::new(SimChain::with_time(SEED, n, time).unwrap())
}

fn machine(c: &SimChain, index: u16, height: u64, state: Option<SignState>) -> Consensus {
    let signer = Signer { index, key: c.validator_key(usize::from(index)) };
    Consensus::new(Arc::clone(&c.consensus), Some(signer), height, state)
}

/// An empty block at height 1 (its time makes blocks differ).
fn block(c: &SimChain, time_ms: u64) -> Block {
    let header = BlockHeader {
        height: 1,
        prev: HashOf::from_hash(c.chain_id()),
        time_ms,
        proposer: c.consensus.validators[0].name.clone(),
        tree_size: 0,
        tree_root: Hash(merkle::empty_root()),
        validator_set: c.ledger.genesis_roster().validator_set_hash,
    };
    Block { header, leaves: Vec::new() }
}

/// The round's proposer signs; a fresh block names it in its header.
fn proposal(c: &SimChain, round: u32, mut block: Block, valid_round: Option<u32>) -> SignedProposal {
    let proposer = c.consensus.proposer(1, round);
    if valid_round.is_none() {
        block.header.proposer = c.consensus.validators[usize::from(proposer)].name.clone();
    }
    let p = Proposal { height: 1, round, block: BlockId::of(&block.header), valid_round };
    let signature = p.sign(&c.chain_id(), &c.validator_key(usize::from(proposer)));
    SignedProposal { proposal: p, signature, block: Arc::new(block) }
}

fn vote(c: &SimChain, by: u16, height: u64, round: u32, kind: VoteKind, value: Option<BlockId>) -> SignedVote {
    let v = Vote { height, round, kind, value };
    let name = c.consensus.validators[usize::from(by)].name.as_str();
    let signature = v.sign(&c.consensus.origin, &c.chain_id(), name, &c.validator_key(usize::from(by)));
    SignedVote { vote: v, validator: by, signature }
}

/// Steps `m`, answering every validation request with "valid".
fn step(m: &mut Consensus, input: Input) -> Result<Vec<Effect>, MessageError> {
    let mut effects = m.step(input)?;
    let mut i = 0;
    while i < effects.len() {
        if let Effect::ValidateBlock { height, id, .. } = &effects[i] {
            let more = m.step(Input::BlockValidated { height: *height, id: *id, valid: true })?;
            effects.extend(more);
        }
        i += 1;
    }
    Ok(effects)
}

fn broadcast_votes(effects: &[Effect]) -> Vec<Vote> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Broadcast(Message::Vote(v)) => Some(v.vote),
            _ => None,
        })
        .collect()
}

fn last_persisted(effects: &[Effect]) -> Option<SignState> {
    effects.iter().rev().find_map(|e| match e {
        Effect::PersistSignState(s) => Some(s.clone()),
        _ => None,
    })
}

#[test]
fn decisions_pass_the_verification_core_and_are_their_own_certificates() {
    for n in [1, 4, 7] {
        let mut cluster = InstantCluster::new(SEED, n, Ledger::On); // verify_block on every commit
        cluster.run_heights(6);
        let c = cluster.chain();
        for cb in &cluster.decided {
            let report =
                checkpoint::verify_quorum_strict(&cb.certificate, &c.ledger.genesis_roster().verifier_keys).unwrap();
            assert!(report.signers.len() >= c.consensus.quorum);
            // Each signature line is exactly that validator's precommit.
            let body = cb.block.header.checkpoint_body(c.genesis(), cb.certificate.body.round);
            assert_eq!(cb.certificate.body, body);
            let id = BlockId::of(&cb.block.header);
            for line in &cb.certificate.signatures {
                let v = c.consensus.index_of(&credence_ledger::ids::MemberName::parse("v", &line.key_name).unwrap());
                let v = v.unwrap();
                let precommit = vote(c, v, cb.block.header.height, body.round, VoteKind::Precommit, Some(id));
                assert_eq!(precommit.signature, line.signature);
            }
        }
        assert_eq!(cluster.decided.len(), 6, "n = {n}");
    }
}

#[test]
fn proposer_rotation_and_growing_timeouts() {
    let c = chain(4);
    let ctx = &c.consensus;
    assert_eq!((ctx.quorum, ctx.skip), (3, 2));
    assert_eq!(ctx.proposer(1, 0), 0);
    assert_eq!(ctx.proposer(1, 1), 1);
    assert_eq!(ctx.proposer(2, 0), 1);
    assert_eq!(ctx.proposer(4, 3), 2);
    assert_eq!(ctx.proposer(u64::MAX, u32::MAX), ctx.proposer(u64::MAX, u32::MAX), "no overflow");
    let p = &ctx.params;
    assert_eq!(ctx.timeout_ms(Step::Propose, 0), p.timeout_propose_ms);
    assert_eq!(ctx.timeout_ms(Step::Prevote, 3), p.timeout_prevote_ms + 3 * p.timeout_delta_ms);
    assert_eq!(ctx.timeout_ms(Step::Precommit, 2), p.timeout_precommit_ms + 2 * p.timeout_delta_ms);
    let c7 = chain(7);
    assert_eq!((c7.consensus.quorum, c7.consensus.skip), (5, 3));
    let c1 = chain(1);
    assert_eq!((c1.consensus.quorum, c1.consensus.skip), (1, 1));
}

#[test]
fn bookkeeping_rejects_outsiders_duplicates_wrong_heights_and_bad_signatures() {
    let c = chain(4);
    let mut m = machine(&c, 0, 1, None);
    m.start();
    let x = BlockId::of(&block(&c, 5).header);
    let good = vote(&c, 1, 1, 0, VoteKind::Prevote, Some(x));
    assert!(step(&mut m, Input::Vote(good)).is_ok());
    assert_eq!(step(&mut m, Input::Vote(good)).unwrap_err(), MessageError::Duplicate);
    // Not a validator.
    let outsider = SignedVote { validator: 4, ..vote(&c, 1, 1, 0, VoteKind::Prevote, None) };
    assert_eq!(step(&mut m, Input::Vote(outsider)).unwrap_err(), MessageError::NotValidator(4));
    // A signature that is not the named validator's, or not valid at all.
    let stolen = SignedVote { validator: 2, ..vote(&c, 3, 1, 0, VoteKind::Prevote, None) };
    assert!(matches!(step(&mut m, Input::Vote(stolen)), Err(MessageError::BadSignature(_))));
    let mut broken = vote(&c, 2, 1, 0, VoteKind::Precommit, Some(x));
    broken.signature.0[10] ^= 1;
    assert!(matches!(step(&mut m, Input::Vote(broken)), Err(MessageError::BadSignature(_))));
    // Heights: far ahead is refused (the driver syncs); the next height is buffered.
    let far = vote(&c, 1, 3, 0, VoteKind::Prevote, None);
    assert_eq!(step(&mut m, Input::Vote(far)).unwrap_err(), MessageError::FutureHeight { got: 3, current: 1 });
    assert!(step(&mut m, Input::Vote(vote(&c, 1, 2, 0, VoteKind::Prevote, None))).is_ok());
    let mut later = machine(&c, 0, 2, None);
    later.start();
    let old = vote(&c, 1, 1, 0, VoteKind::Prevote, None);
    assert_eq!(step(&mut later, Input::Vote(old)).unwrap_err(), MessageError::PastHeight { got: 1, current: 2 });
    // Proposals: only the round's proposer may sign, and the block must match the id.
    let mut wrong = proposal(&c, 0, block(&c, 7), None);
    wrong.signature = proposal(&c, 1, block(&c, 7), None).signature; // validator 1's signature
    assert!(matches!(step(&mut m, Input::Proposal(wrong)), Err(MessageError::BadSignature(_))));
    let mut swapped = proposal(&c, 0, block(&c, 7), None);
    swapped.block = Arc::new(block(&c, 8));
    assert_eq!(step(&mut m, Input::Proposal(swapped)).unwrap_err(), MessageError::BlockMismatch);
    let bad_vr = proposal(&c, 0, block(&c, 7), Some(0));
    assert!(matches!(step(&mut m, Input::Proposal(bad_vr)), Err(MessageError::BadValidRound { .. })));
    // Rounds far ahead: each validator may open two catch-up rounds.
    assert!(step(&mut m, Input::Vote(vote(&c, 3, 1, 40, VoteKind::Prevote, None))).is_ok());
    assert!(step(&mut m, Input::Vote(vote(&c, 3, 1, 50, VoteKind::Prevote, None))).is_ok());
    assert!(matches!(
        step(&mut m, Input::Vote(vote(&c, 3, 1, 60, VoteKind::Prevote, None))),
        Err(MessageError::RoundOutOfWindow { .. })
    ));
}

#[test]
fn equivocation_yields_evidence_once_and_the_ledger_accepts_it() {
    let c = chain(4);
    let mut m = machine(&c, 0, 1, None);
    m.start();
    let x = BlockId::of(&block(&c, 5).header);
    let y = BlockId::of(&block(&c, 6).header);
    assert!(step(&mut m, Input::Vote(vote(&c, 2, 1, 0, VoteKind::Precommit, None))).unwrap().is_empty());
    let effects = step(&mut m, Input::Vote(vote(&c, 2, 1, 0, VoteKind::Precommit, Some(x)))).unwrap();
    let evidence: Vec<_> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Evidence(e) => Some((**e).clone()),
            _ => None,
        })
        .collect();
    assert_eq!(evidence.len(), 1);
    let e = &evidence[0];
    assert_eq!(e.validator.as_str(), c.consensus.validators[2].name.as_str());
    assert!(matches!(e.first.statement, Statement::Vote(_)));
    // A third value adds nothing; neither do repeats.
    let third = step(&mut m, Input::Vote(vote(&c, 2, 1, 0, VoteKind::Precommit, Some(y))));
    assert_eq!(third.unwrap_err(), MessageError::SlotFull);
    // Two proposals in one round are evidence too.
    step(&mut m, Input::Proposal(proposal(&c, 1, block(&c, 5), None))).unwrap();
    let effects = step(&mut m, Input::Proposal(proposal(&c, 1, block(&c, 6), None))).unwrap();
    assert!(
        effects.iter().any(|e| matches!(e, Effect::Evidence(e) if matches!(e.first.statement, Statement::Proposal(_))))
    );
    // The ledger rules accept the evidence as a validator's attestation.
    let g = c.genesis();
    let reporter = &c.consensus.validators[0].name;
    let record = AttestationBody {
        attester: reporter.clone(),
        sequence: 1,
        issued_at_ms: 1,
        claim: Claim::Equivocation(Box::new(e.clone())),
    }
    .sign(&c.validator_key(0), &c.chain_id());
    assert!(rules::check_attestation(g, &MemState::default(), 1, 2, &record.id(), &record).is_ok());
}

#[test]
fn every_signature_is_persisted_before_it_is_broadcast() {
    let c = chain(4);
    let mut m = machine(&c, 1, 1, None);
    let mut all = m.start();
    all.extend(step(&mut m, Input::Proposal(proposal(&c, 0, block(&c, 5), None))).unwrap());
    let x = BlockId::of(&block(&c, 5).header);
    for by in [0, 2] {
        all.extend(step(&mut m, Input::Vote(vote(&c, by, 1, 0, VoteKind::Prevote, Some(x)))).unwrap());
    }
    let mut persisted: Option<SignState> = None;
    let mut broadcasts = 0;
    for e in &all {
        match e {
            Effect::PersistSignState(s) => persisted = Some(s.clone()),
            Effect::Broadcast(Message::Vote(v)) => {
                broadcasts += 1;
                let s = persisted.as_ref().expect("a record precedes the first signature");
                assert!(s.votes.contains(&(v.vote.round, v.vote.kind, v.vote.value)), "recorded before it left");
            }
            _ => {}
        }
    }
    assert_eq!(broadcasts, 2, "a prevote and a precommit for the proposal");
    assert_eq!(m.locked(), Some((0, x)));
}

#[test]
fn a_restarted_validator_never_signs_a_conflicting_vote() {
    let c = chain(4);
    let a = block(&c, 5);
    let b = block(&c, 6);
    let ia = BlockId::of(&a.header);

    // Validator 1 prevotes A, then crashes; the record survives.
    let mut m = machine(&c, 1, 1, None);
    m.start();
    let effects = step(&mut m, Input::Proposal(proposal(&c, 0, a.clone(), None))).unwrap();
    let before = broadcast_votes(&effects);
    assert_eq!(before, vec![Vote { height: 1, round: 0, kind: VoteKind::Prevote, value: Some(ia) }]);
    let record = last_persisted(&effects).unwrap();
    let state = SignState::from_bytes(&record.to_bytes()).unwrap(); // as read back from disk

    // After the restart it re-sends that very prevote, and only that.
    let mut r = machine(&c, 1, 1, Some(state));
    let mut effects = r.start();
    // The proposer equivocated: the restarted node sees B first. It must not prevote B,
    // nor nil when its propose timeout fires.
    effects.extend(step(&mut r, Input::Proposal(proposal(&c, 0, b, None))).unwrap());
    effects.extend(step(&mut r, Input::Timeout(Timeout { height: 1, round: 0, step: Step::Propose })).unwrap());
    let sent = broadcast_votes(&effects);
    assert!(!sent.is_empty());
    assert!(sent.iter().all(|v| v.value == Some(ia) && v.kind == VoteKind::Prevote), "{sent:?}");
    assert!(r.refused_signatures() >= 1);
    let resent = effects.iter().find_map(|e| match e {
        Effect::Broadcast(Message::Vote(v)) => Some(v.signature),
        _ => None,
    });
    let original = m.known_messages().iter().find_map(|msg| match msg {
        Message::Vote(v) if v.validator == 1 => Some(v.signature),
        _ => None,
    });
    assert_eq!(resent, original, "the re-sent vote is byte-identical");
}

#[test]
fn a_restarted_validator_keeps_its_lock() {
    let c = chain(4);
    let a = block(&c, 5);
    let ia = BlockId::of(&a.header);
    // Validator 2 sees a polka for A in round 0 and precommits (locks) A.
    let mut m = machine(&c, 2, 1, None);
    m.start();
    let mut effects = step(&mut m, Input::Proposal(proposal(&c, 0, a, None))).unwrap();
    for by in [0, 1] {
        effects.extend(step(&mut m, Input::Vote(vote(&c, by, 1, 0, VoteKind::Prevote, Some(ia)))).unwrap());
    }
    assert_eq!(m.locked(), Some((0, ia)));
    let state = last_persisted(&effects).unwrap();
    assert_eq!(state.locked, Some((0, ia)));

    // Restart; round 1 brings a fresh proposal C (no polka): a locked validator prevotes nil.
    let mut r = machine(&c, 2, 1, Some(state));
    r.start();
    assert_eq!(r.locked(), Some((0, ia)));
    for by in [0, 1, 3] {
        let _ = step(&mut r, Input::Vote(vote(&c, by, 1, 0, VoteKind::Precommit, None)));
    }
    let effects = step(&mut r, Input::Timeout(Timeout { height: 1, round: 0, step: Step::Precommit })).unwrap();
    assert_eq!(r.round(), 1);
    let mut effects2 = step(&mut r, Input::Proposal(proposal(&c, 1, block(&c, 9), None))).unwrap();
    effects2.extend(effects);
    let prevotes: Vec<Vote> =
        broadcast_votes(&effects2).into_iter().filter(|v| v.round == 1 && v.kind == VoteKind::Prevote).collect();
    assert_eq!(prevotes, vec![Vote { height: 1, round: 1, kind: VoteKind::Prevote, value: None }]);
}

/// With a heartbeat, a height waits for work: `start` schedules nothing and builds
/// nothing; `start_height` starts round 0; so does a counted message of another validator.
#[test]
fn an_idle_height_waits_for_work_or_a_peer() {
    let c = Arc::new(SimChain::new(SEED, 4).unwrap());
    assert!(c.consensus.time.heartbeat_ms > 0);
    let mut proposer = machine(&c, 0, 1, None);
    assert!(proposer.start().is_empty(), "no block, no timeout while idle");
    assert!(!proposer.is_started());
    let effects = proposer.start_height();
    assert!(proposer.is_started());
    assert!(effects.iter().any(|e| matches!(e, Effect::BuildBlock { height: 1, round: 0 })));
    assert!(effects.iter().any(|e| matches!(e, Effect::ScheduleTimeout { .. })));
    let mut other = machine(&c, 2, 1, None);
    assert!(other.start().is_empty());
    assert!(step(&mut other, Input::Vote(vote(&c, 1, 1, 0, VoteKind::Prevote, None))).is_ok());
    assert!(other.is_started(), "another validator's counted vote starts the height");
    let mut third = machine(&c, 3, 1, None);
    third.start();
    let mut forged = vote(&c, 1, 1, 0, VoteKind::Prevote, None);
    forged.signature.0[40] ^= 1;
    assert!(step(&mut third, Input::Vote(forged)).is_err());
    assert!(!third.is_started(), "a message that is not counted starts nothing");
}

/// PBTS: a fresh proposal that was not timely by our clock gets a nil prevote; the
/// same block re-proposed with a POL is not judged for time again.
#[test]
fn an_untimely_fresh_proposal_gets_a_nil_prevote() {
    let c = chain(4);
    let t = c.consensus.time;
    let block_time = 1_000_000;
    for (clock, timely) in [
        (block_time, true),
        (block_time - t.precision_ms - 1, false),
        (block_time + t.message_delay_ms + t.precision_ms + 1, false),
        (u64::MAX, false),
    ] {
        let mut m = machine(&c, 2, 1, None);
        m.start();
        m.set_time(clock);
        let b = block(&c, block_time);
        let mut effects = step(&mut m, Input::Proposal(proposal(&c, 0, b, None))).unwrap();
        let validate: Vec<Input> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::ValidateBlock { height, id, .. } => {
                    Some(Input::BlockValidated { height: *height, id: *id, valid: true })
                }
                _ => None,
            })
            .collect();
        for input in validate {
            effects.extend(step(&mut m, input).unwrap());
        }
        let prevotes: Vec<Vote> =
            broadcast_votes(&effects).into_iter().filter(|v| v.kind == VoteKind::Prevote).collect();
        assert_eq!(prevotes.len(), 1, "clock {clock}");
        assert_eq!(prevotes[0].value.is_some(), timely, "clock {clock}");
    }
}

/// A fresh block must name the rotation's proposer in its header; a re-proposed one
/// (with a POL round) keeps the name of the round it was first proposed in.
#[test]
fn a_fresh_block_names_the_rotations_proposer() {
    let c = chain(4);
    let mut m = machine(&c, 2, 1, None);
    m.start();
    let mut p = proposal(&c, 1, block(&c, 7), None);
    let mut b = (*p.block).clone();
    b.header.proposer = c.consensus.validators[0].name.clone();
    p.proposal.block = BlockId::of(&b.header);
    p.signature = p.proposal.sign(&c.chain_id(), &c.validator_key(usize::from(c.consensus.proposer(1, 1))));
    p.block = Arc::new(b);
    let err = step(&mut m, Input::Proposal(p)).unwrap_err();
    assert_eq!(err, MessageError::WrongProposer { expected: "val-01".into(), got: "val-00".into() });
}
