//! One simulated validator: a thin driver around the consensus machine, its store and sign state, with optional byzantine behaviour.
//!
//! The driver is what the real node (issue 4) will be minus the network: it carries
//! out effects in order (persisting the sign state before the broadcast that
//! follows), builds blocks from the workload and its evidence pool, validates
//! proposals with the verification core, commits decided blocks through
//! `verify_block`, re-sends its own messages on a timer, and fetches certified
//! blocks from a peer that is ahead (block sync).

use std::collections::VecDeque;
use std::sync::Arc;

use credence_ledger::attestation::{AttestationBody, Claim};
use credence_ledger::block::{Block, BlockHeader, CertifiedBlock, Leaf};
use credence_ledger::hash::{Hash, HashOf};
use credence_ledger::merkle::Frontier;
use credence_ledger::rules::StateView;
use credence_ledger::store::{MemStore, Store};
use credence_ledger::verify::{self, Tip};
use credence_ledger::vote::{BlockId, Proposal, Vote};

use super::Env;
use crate::{
    Consensus, Effect, Input, Message, SignState, SignedProposal, SignedVote, Signer, Step, Timeout, ValidatorIndex,
};
use crate::evidence::EvidencePool;

/// Certified blocks per sync response.
pub const SYNC_BATCH_MAX: u64 = 8;
/// Evidence records per proposed block.
pub const EVIDENCE_PER_BLOCK_MAX: usize = 4;
/// How far a proposed block's time may run ahead of the validator's clock.
pub const BLOCK_TIME_SKEW_MAX_MS: u64 = 10_000;
/// How long to wait for a sync response before asking again.
const SYNC_RETRY_MS: u64 = 1_000;

/// What a validator does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    Honest,
    /// Sends different votes (and proposals) to different peers.
    Equivocator,
    /// Proposes blocks that fail validation (bad root, bad signature, stale time).
    InvalidProposer,
    /// Never sends anything.
    Silent,
}

impl Behaviour {
    pub fn name(self) -> &'static str {
        match self {
            Behaviour::Honest => "honest",
            Behaviour::Equivocator => "equivocator",
            Behaviour::InvalidProposer => "invalid-proposer",
            Behaviour::Silent => "silent",
        }
    }
}

/// Messages on the simulated wire.
#[derive(Clone, Debug)]
pub enum NetMsg {
    Consensus(Message),
    SyncRequest { height: u64 },
    SyncResponse(Arc<Vec<CertifiedBlock>>),
}

/// The volatile part of a node: lost on a crash.
#[derive(Debug)]
struct Live {
    consensus: Consensus,
    tip: Tip,
    evidence: EvidencePool,
    /// A peer seen at a higher height, and that height.
    ahead: Option<(ValidatorIndex, u64)>,
    /// No new sync request before this time.
    sync_quiet_until: u64,
    /// The corrupted proposal already sent for (height, round), so re-sends repeat it.
    bad_proposal: Option<SignedProposal>,
    /// (height, round, step) at the last tick: re-send only when stuck since then.
    last_tick: (u64, u32, Step),
}

#[derive(Debug)]
pub struct SimNode {
    pub index: ValidatorIndex,
    pub behaviour: Behaviour,
    /// Durable: survives crashes.
    pub store: MemStore,
    /// Durable: the double-sign guard record.
    pub sign_state: Option<SignState>,
    live: Option<Live>,
    /// Bumped on every crash: timers of an earlier life are ignored.
    pub incarnation: u64,
    /// Signatures the guard refused, over all lives.
    pub refused: u64,
}

impl SimNode {
    pub fn new(index: ValidatorIndex, behaviour: Behaviour, store: MemStore) -> SimNode {
        SimNode { index, behaviour, store, sign_state: None, live: None, incarnation: 0, refused: 0 }
    }

    pub fn is_up(&self) -> bool {
        self.live.is_some()
    }

    /// Height of the last stored block.
    pub fn height(&self) -> u64 {
        self.store.head().ok().flatten().map_or(0, |h| h.height)
    }

    pub fn round(&self) -> u32 {
        self.live.as_ref().map_or(0, |l| l.consensus.round())
    }

    /// Starts (or restarts) from the durable state: store and sign state.
    pub fn start(&mut self, env: &mut Env) {
        if self.live.is_some() || self.behaviour == Behaviour::Silent {
            return;
        }
        let chain = Arc::clone(&env.chain);
        let tip = match self.store.head() {
            Ok(Some(h)) => Tip {
                height: h.height,
                hash: h.hash,
                time_ms: h.time_ms,
                frontier: Frontier::from_reader(h.tree_size, &self.store)
                    .unwrap_or_else(|e| panic!("in-memory store lost Merkle nodes: {e}")),
            },
            _ => Tip::genesis(&chain.ledger),
        };
        let signer = Signer { index: self.index, key: chain.validator_key(usize::from(self.index)) };
        let consensus =
            Consensus::new(Arc::clone(&chain.consensus), Some(signer), tip.height + 1, self.sign_state.clone());
        self.live = Some(Live {
            consensus,
            tip,
            evidence: EvidencePool::default(),
            ahead: None,
            sync_quiet_until: 0,
            bad_proposal: None,
            last_tick: (0, 0, Step::Propose),
        });
        env.schedule_tick(self.index, self.incarnation);
        let effects = self.live.as_mut().map(|l| l.consensus.start()).unwrap_or_default();
        self.run(env, effects);
    }

    /// Loses everything volatile; a restart is scheduled by the caller's fault plan.
    pub fn crash(&mut self, env: &mut Env) {
        if let Some(l) = self.live.take() {
            self.refused += l.consensus.refused_signatures();
            self.incarnation += 1;
            env.stats.crashes += 1;
            env.on_crash(self.index);
        }
    }

    /// Signatures refused in the current life plus earlier ones.
    pub fn refused_total(&self) -> u64 {
        self.refused + self.live.as_ref().map_or(0, |l| l.consensus.refused_signatures())
    }

    pub fn on_build(&mut self, env: &mut Env, incarnation: u64, height: u64, round: u32) {
        if incarnation != self.incarnation || self.live.is_none() {
            return;
        }
        if let Some(block) = self.build_block(env, height) {
            self.feed(env, Input::BlockBuilt { height, round, block });
        }
    }

    /// One line for failure reports: stored height, consensus height/round/step, lock, sign state.
    pub fn describe(&self) -> String {
        match &self.live {
            None => format!("node {} ({}) down at height {}", self.index, self.behaviour.name(), self.height()),
            Some(l) => format!(
                "node {} ({}) stored {} at h{}/r{}/{:?} locked {:?} signed {:?}",
                self.index,
                self.behaviour.name(),
                self.height(),
                l.consensus.height(),
                l.consensus.round(),
                l.consensus.current_step(),
                l.consensus.locked().map(|(r, id)| (r, id.hash)),
                self.sign_state.as_ref().map(|s| (s.height, s.round, s.step, s.value.map(|v| v.hash))),
            ),
        }
    }

    pub fn on_timer(&mut self, env: &mut Env, incarnation: u64, timeout: Timeout) {
        if incarnation == self.incarnation && self.live.is_some() {
            self.feed(env, Input::Timeout(timeout));
        }
    }

    /// Periodic: when no step was taken since the last tick, re-send every message of the
    /// current height (gossip: the network may have lost them, or an equivocator may have
    /// shown them to some nodes only); ask a peer that is ahead for blocks.
    pub fn on_tick(&mut self, env: &mut Env, incarnation: u64) {
        if incarnation != self.incarnation {
            return;
        }
        let Some(l) = &mut self.live else { return };
        let c = &l.consensus;
        let position = (c.height(), c.round(), c.current_step());
        let stuck = std::mem::replace(&mut l.last_tick, position) == position;
        let known: Vec<(ValidatorIndex, Message)> =
            if stuck { c.known_messages().into_iter().map(|m| (c.signer_of(&m), m)).collect() } else { Vec::new() };
        let behind = l.ahead.filter(|(_, h)| *h > c.height());
        for (signer, msg) in known {
            if signer == self.index {
                self.broadcast(env, msg, true);
            } else {
                self.relay(env, signer, msg);
            }
        }
        if let Some((peer, _)) = behind {
            self.request_sync(env, peer);
        }
        env.schedule_tick(self.index, self.incarnation);
    }

    pub fn on_deliver(&mut self, env: &mut Env, from: ValidatorIndex, msg: NetMsg) {
        let Some(l) = &mut self.live else { return };
        match msg {
            NetMsg::Consensus(m) => {
                let current = l.consensus.height();
                if m.height() > current {
                    l.ahead = Some((from, m.height()));
                    if m.height() > current + 1 {
                        self.request_sync(env, from);
                        return;
                    }
                }
                let input = match m {
                    Message::Proposal(p) => Input::Proposal(p),
                    Message::Vote(v) => Input::Vote(v),
                };
                self.feed(env, input);
            }
            NetMsg::SyncRequest { height } => {
                let blocks: Vec<CertifiedBlock> =
                    (height..height + SYNC_BATCH_MAX).map_while(|h| self.store.block(h).ok().flatten()).collect();
                if !blocks.is_empty() {
                    env.send(self.index, from, NetMsg::SyncResponse(Arc::new(blocks)));
                }
            }
            NetMsg::SyncResponse(blocks) => self.on_sync_response(env, from, &blocks),
        }
    }

    fn request_sync(&mut self, env: &mut Env, peer: ValidatorIndex) {
        let Some(l) = &mut self.live else { return };
        if env.now < l.sync_quiet_until || peer == self.index {
            return;
        }
        l.sync_quiet_until = env.now + SYNC_RETRY_MS;
        env.stats.sync_requests += 1;
        env.send(self.index, peer, NetMsg::SyncRequest { height: l.tip.height + 1 });
    }

    fn on_sync_response(&mut self, env: &mut Env, from: ValidatorIndex, blocks: &[CertifiedBlock]) {
        let mut stored = false;
        for cb in blocks {
            let Some(l) = &self.live else { return };
            if cb.block.header.height != l.tip.height + 1 {
                continue;
            }
            if !self.store_block(env, cb.clone()) {
                return;
            }
            env.stats.blocks_synced += 1;
            stored = true;
        }
        let Some(l) = &mut self.live else { return };
        if stored {
            l.sync_quiet_until = 0;
            let height = l.tip.height;
            self.feed(env, Input::Synced { height });
            if blocks.len() as u64 == SYNC_BATCH_MAX {
                self.request_sync(env, from);
            }
        }
    }

    /// Verifies `cb` against the tip with the verification core and stores it.
    fn store_block(&mut self, env: &mut Env, cb: CertifiedBlock) -> bool {
        let Some(l) = &mut self.live else { return false };
        let height = cb.block.header.height;
        let honest = self.behaviour == Behaviour::Honest;
        let vb = match verify::verify_block(&env.chain.ledger, &l.tip, &self.store, cb) {
            Ok(vb) => vb,
            Err(e) => {
                if honest {
                    env.observer.invalid(self.index, height, e.to_string());
                }
                return false;
            }
        };
        if let Err(e) = self.store.commit(&vb) {
            env.observer.invalid(self.index, height, format!("store refused a verified block: {e}"));
            return false;
        }
        l.tip.advance(&vb);
        l.evidence.on_commit(&vb.certified().block);
        if honest {
            env.observer.on_commit(self.index, vb.certified(), env.now);
        }
        true
    }

    /// Feeds an input and everything the effects feed back (built and validated blocks).
    fn feed(&mut self, env: &mut Env, input: Input) {
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            let Some(l) = &mut self.live else { return };
            match l.consensus.step(input) {
                Ok(effects) => {
                    for e in self.execute(env, effects) {
                        inputs.push_back(e);
                    }
                }
                Err(_) => env.stats.rejected += 1,
            }
        }
    }

    fn run(&mut self, env: &mut Env, effects: Vec<Effect>) {
        let follow = self.execute(env, effects);
        for input in follow {
            self.feed(env, input);
        }
    }

    /// Carries out effects in order; returns the inputs they produce.
    fn execute(&mut self, env: &mut Env, effects: Vec<Effect>) -> Vec<Input> {
        let mut follow = Vec::new();
        for effect in effects {
            if self.live.is_none() {
                break; // crashed part-way: the rest is lost
            }
            match effect {
                Effect::PersistSignState(s) => {
                    self.sign_state = Some(s); // durable from here on
                    if env.take_crash_after_persist(self.index) {
                        self.crash(env); // the signed message never leaves
                    }
                }
                Effect::Broadcast(msg) => self.broadcast(env, msg, false),
                Effect::ScheduleTimeout { timeout, after_ms } => {
                    env.schedule_timer(self.index, self.incarnation, timeout, after_ms);
                }
                // getValue() is asynchronous: the block is built a moment later (as a
                // mempool would be read), so a lone validator does not decide every
                // height at one instant.
                Effect::BuildBlock { height, round } => env.schedule_build(self.index, self.incarnation, height, round),
                Effect::ValidateBlock { height, id, block } => {
                    let valid = self.validate(env, &block);
                    follow.push(Input::BlockValidated { height, id, valid });
                }
                Effect::Commit(cb) => {
                    let height = cb.block.header.height;
                    let expected = self.live.as_ref().map_or(0, |l| l.tip.height + 1);
                    if height != expected {
                        env.observer.invalid(self.index, height, format!("decided out of order (expected {expected})"));
                    } else {
                        self.store_block(env, *cb);
                    }
                }
                Effect::Evidence(e) => {
                    env.stats.evidence_reported += 1;
                    if let Some(l) = &mut self.live {
                        l.evidence.add(*e);
                    }
                }
            }
        }
        follow
    }

    /// `valid(v)`: the verification core without a certificate, plus a bound on the block time.
    fn validate(&self, env: &mut Env, block: &Block) -> bool {
        let Some(l) = &self.live else { return false };
        env.stats.validations += 1;
        block.header.time_ms <= env.now + BLOCK_TIME_SKEW_MAX_MS
            && verify::verify_proposal(&env.chain.ledger, &l.tip, &self.store, block, &|_| false).is_ok()
    }

    /// `getValue()`: evidence from the pool, then the workload's next records, on the tip.
    fn build_block(&mut self, env: &mut Env, height: u64) -> Option<Block> {
        let l = self.live.as_ref()?;
        if height != l.tip.height + 1 {
            return None;
        }
        let chain = Arc::clone(&env.chain);
        let me = usize::from(self.index);
        let member = chain.validator_members[me];
        let name = chain.consensus.validators[me].name.clone();
        let time_ms = env.now.max(l.tip.time_ms + 1);
        let mut leaves = Vec::new();
        let first = self.store.next_sequence(member).ok()?;
        let key = chain.validator_key(me);
        for (sequence, e) in (first..).zip(l.evidence.pending().take(EVIDENCE_PER_BLOCK_MAX)) {
            let body = AttestationBody {
                attester: name.clone(),
                sequence,
                issued_at_ms: time_ms,
                claim: Claim::Equivocation(Box::new(e.clone())),
            };
            leaves.push(Leaf::new(body.sign(&key, &chain.chain_id())));
        }
        for (a, member, count) in env.workload.per_block(height) {
            let next = self.store.next_sequence(member).ok()?;
            for s in next..next + count {
                leaves.push(env.workload.leaf(a, s));
            }
        }
        Some(assemble(&l.tip, &chain.ledger.validator_set_hash(), name, time_ms, leaves))
    }

    /// Forwards another validator's message to every validator but us and its signer.
    fn relay(&mut self, env: &mut Env, signer: ValidatorIndex, msg: Message) {
        for peer in 0..env.chain.n() as ValidatorIndex {
            if peer != self.index && peer != signer {
                env.send(self.index, peer, NetMsg::Consensus(msg.clone()));
            }
        }
    }

    /// Sends to every other validator, applying this validator's behaviour.
    fn broadcast(&mut self, env: &mut Env, msg: Message, resend: bool) {
        let n = env.chain.n();
        let me = self.index;
        let others = (0..n as ValidatorIndex).filter(move |p| *p != me);
        match (self.behaviour, &msg) {
            (Behaviour::Equivocator, _) => {
                let alt = self.conflicting(env, &msg);
                if !resend {
                    env.observer.on_send(self.index, &msg);
                    if let Some(a) = &alt {
                        env.observer.on_send(self.index, a);
                    }
                }
                for peer in others {
                    let r = env.rng.below(10);
                    let alt = alt.as_ref().unwrap_or(&msg);
                    let picks: &[&Message] = match r {
                        0..=3 => &[&msg],
                        4..=7 => &[alt],
                        8 => &[&msg, alt],
                        _ => &[alt, &msg],
                    };
                    for m in picks {
                        env.send(self.index, peer, NetMsg::Consensus((*m).clone()));
                    }
                }
            }
            (Behaviour::InvalidProposer, Message::Proposal(p)) => {
                let bad = self.corrupt(env, p).map_or(msg.clone(), Message::Proposal);
                env.observer.on_send(self.index, &bad);
                for peer in others {
                    env.send(self.index, peer, NetMsg::Consensus(bad.clone()));
                }
            }
            _ => {
                if !resend {
                    env.observer.on_send(self.index, &msg);
                }
                for peer in others {
                    env.send(self.index, peer, NetMsg::Consensus(msg.clone()));
                }
            }
        }
    }

    /// The equivocator's second statement for the same slot: the other vote (nil ↔ a
    /// block), or a second valid block proposed in the same round.
    fn conflicting(&mut self, env: &mut Env, msg: &Message) -> Option<Message> {
        let chain = Arc::clone(&env.chain);
        let me = usize::from(self.index);
        let key = chain.validator_key(me);
        match msg {
            Message::Vote(sv) => {
                let v = sv.vote;
                let value = match v.value {
                    Some(_) => None,
                    None => Some(fake_id(self.index, v.height, v.round)),
                };
                let vote = Vote { value, ..v };
                let name = chain.consensus.validators[me].name.as_str();
                let signature = vote.sign(&chain.consensus.origin, &chain.chain_id(), name, &key);
                Some(Message::Vote(SignedVote { vote, validator: self.index, signature }))
            }
            Message::Proposal(sp) => {
                let l = self.live.as_ref()?;
                let h = &sp.block.header;
                if h.height != l.tip.height + 1 {
                    return None;
                }
                let block =
                    assemble(&l.tip, &h.validator_set, h.proposer.clone(), h.time_ms + 1, sp.block.leaves.clone());
                Some(Message::Proposal(sign_proposal(&chain, &key, sp.proposal, block)))
            }
        }
    }

    /// The invalid proposer's block for this proposal: one of a wrong root, a broken
    /// attestation signature, or a block time that does not increase.
    fn corrupt(&mut self, env: &mut Env, sp: &SignedProposal) -> Option<SignedProposal> {
        let chain = Arc::clone(&env.chain);
        let l = self.live.as_mut()?;
        if let Some(bad) = &l.bad_proposal
            && (bad.proposal.height, bad.proposal.round) == (sp.proposal.height, sp.proposal.round)
        {
            return Some(bad.clone());
        }
        let h = &sp.block.header;
        if h.height != l.tip.height + 1 {
            return None;
        }
        let mut leaves = sp.block.leaves.clone();
        let block = match (h.height + u64::from(sp.proposal.round)) % 3 {
            0 if !leaves.is_empty() => {
                let last = leaves.len() - 1;
                let mut bytes = leaves[last].bytes.clone();
                let end = bytes.len() - 1;
                bytes[end - 40] ^= 0x01; // inside R: the signature no longer verifies
                leaves[last] = Leaf::from_bytes(bytes).ok()?;
                assemble(&l.tip, &h.validator_set, h.proposer.clone(), h.time_ms, leaves)
            }
            1 => {
                let mut b = assemble(&l.tip, &h.validator_set, h.proposer.clone(), h.time_ms, leaves);
                b.header.tree_root = Hash::digest(&[b"not the root"]);
                b
            }
            _ => assemble(&l.tip, &h.validator_set, h.proposer.clone(), l.tip.time_ms, leaves),
        };
        let key = chain.validator_key(usize::from(self.index));
        let bad = sign_proposal(&chain, &key, Proposal { valid_round: None, ..sp.proposal }, block);
        l.bad_proposal = Some(bad.clone());
        Some(bad)
    }
}

/// A block of `leaves` on `tip`.
fn assemble(
    tip: &Tip,
    validator_set: &Hash,
    proposer: credence_ledger::ids::MemberName,
    time_ms: u64,
    leaves: Vec<Leaf>,
) -> Block {
    let mut frontier = tip.frontier.clone();
    let mut scratch = Vec::new();
    for leaf in &leaves {
        frontier.push_leaf_hash(leaf.leaf_hash(), &mut scratch).unwrap_or_else(|e| panic!("tree full: {e}"));
    }
    let header = BlockHeader {
        height: tip.height + 1,
        prev: tip.hash,
        time_ms,
        proposer,
        tree_size: frontier.size(),
        tree_root: Hash(frontier.root()),
        validator_set: *validator_set,
    };
    Block { header, leaves }
}

fn sign_proposal(
    chain: &super::chain::SimChain,
    key: &credence_ledger::sig::SecretKey,
    like: Proposal,
    block: Block,
) -> SignedProposal {
    let proposal = Proposal { block: BlockId::of(&block.header), ..like };
    let signature = proposal.sign(&chain.chain_id(), key);
    SignedProposal { proposal, signature, block: Arc::new(block) }
}

/// A block id no block has, for the equivocator's conflicting votes.
fn fake_id(v: ValidatorIndex, height: u64, round: u32) -> BlockId {
    let h = Hash::digest(&[b"fake", &v.to_le_bytes(), &height.to_le_bytes(), &round.to_le_bytes()]);
    BlockId { hash: HashOf::from_hash(h), tree_size: height, root: h }
}
