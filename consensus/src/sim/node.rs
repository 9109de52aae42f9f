//! One simulated node: the production replica core ([`Replica`]) on an in-memory store, with a clock that may be wrong and optional byzantine behaviour.
//!
//! This is a host, like the node's tokio driver: it hands the replica messages,
//! sync answers, client records and the passing of time, and carries out the
//! actions it returns, in order — and may crash between any two of them. Every
//! decision (blocks, validity, timeliness, commits, sync, evidence) is the
//! replica's. Byzantine behaviours only rewrite what leaves this host.

use std::sync::{Arc, Mutex};

use credence_ledger::block::Leaf;
use credence_ledger::hash::{Hash, HashOf};
use credence_ledger::sig::SecretKey;
use credence_ledger::store::{MemStore, Store};
use credence_ledger::vote::{BlockId, Proposal, Statement, Vote};

use super::Env;
use super::chain::validator_name;
use super::check::InForce;
use crate::compact::{CompactProposal, Filling};
use crate::mempool::{AdmitError, Mempool, MempoolLimits, Origin, Verifier, admit_batch};
use crate::replica::{Action, Clock, Identity, Notice, Replica, Verdict};
use crate::sync::{SyncRequest, SyncServer};
use crate::{Message, SignState, SignedProposal, SignedVote, ValidatorIndex};

/// How far ahead of the real time a validator's wall clock is set by [`Behaviour::ClockFarAhead`] (ten years).
pub const FAR_AHEAD_MS: u64 = 10 * 365 * 24 * 3_600_000;
/// [`Behaviour::ClockAhead`]: a few seconds, past any timeliness bound but not absurd.
pub const AHEAD_MS: u64 = 8_000;
/// [`Behaviour::ClockBehind`].
pub const BEHIND_MS: u64 = 20_000;
/// Sync requests a [`Behaviour::SyncFlooder`] sends each peer per tick.
pub const FLOOD_REQUESTS: usize = 40;

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
    /// Honest logic, wall clock ten years ahead.
    ClockFarAhead,
    /// Honest logic, wall clock at `u64::MAX` ms.
    ClockSaturated,
    /// Honest logic, wall clock [`AHEAD_MS`] ahead.
    ClockAhead,
    /// Honest logic, wall clock [`BEHIND_MS`] behind.
    ClockBehind,
    /// Honest, but relays every proposal it receives with a leaf dropped (the signed
    /// header unchanged) before anyone else can, and serves sync answers whose last block
    /// has a byte changed.
    TamperingRelay,
    /// Honest, but floods every peer with sync requests.
    SyncFlooder,
}

impl Behaviour {
    pub const BYZANTINE: [Behaviour; 9] = [
        Behaviour::Equivocator,
        Behaviour::InvalidProposer,
        Behaviour::Silent,
        Behaviour::ClockFarAhead,
        Behaviour::ClockSaturated,
        Behaviour::ClockAhead,
        Behaviour::ClockBehind,
        Behaviour::TamperingRelay,
        Behaviour::SyncFlooder,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Behaviour::Honest => "honest",
            Behaviour::Equivocator => "equivocator",
            Behaviour::InvalidProposer => "invalid-proposer",
            Behaviour::Silent => "silent",
            Behaviour::ClockFarAhead => "clock-far-ahead",
            Behaviour::ClockSaturated => "clock-saturated",
            Behaviour::ClockAhead => "clock-ahead",
            Behaviour::ClockBehind => "clock-behind",
            Behaviour::TamperingRelay => "tampering-relay",
            Behaviour::SyncFlooder => "sync-flooder",
        }
    }

    pub fn parse(s: &str) -> Option<Behaviour> {
        Behaviour::BYZANTINE.into_iter().find(|b| b.name() == s)
    }

    /// This validator's wall clock, given the real time and its honest drift.
    fn wall_ms(self, real_ms: u64, drift_ms: u64) -> u64 {
        match self {
            Behaviour::ClockFarAhead => real_ms.saturating_add(FAR_AHEAD_MS),
            Behaviour::ClockSaturated => u64::MAX,
            Behaviour::ClockAhead => real_ms.saturating_add(AHEAD_MS),
            Behaviour::ClockBehind => real_ms.saturating_sub(BEHIND_MS),
            _ => real_ms.saturating_add(drift_ms),
        }
    }
}

/// Messages on the simulated wire.
#[derive(Clone, Debug)]
pub enum NetMsg {
    Consensus(Message),
    /// A round-0 proposal naming records by id.
    Compact(Arc<CompactProposal>),
    /// Client records, as the gossip batch carries them.
    Attestations(Arc<Vec<Vec<u8>>>),
    SyncRequest(SyncRequest),
    /// Encoded certified blocks, as the node's sync codec carries them.
    SyncResponse(SyncRequest, Arc<Vec<Vec<u8>>>),
}

/// The volatile part of a node: lost on a crash.
#[derive(Debug)]
struct Live {
    replica: Replica<MemStore>,
    verifier: Verifier,
    sync_server: SyncServer<ValidatorIndex>,
    /// The corrupted proposal already sent for (height, round), so re-sends repeat it.
    bad_proposal: Option<SignedProposal>,
    /// Monotonic time of the wake-up already scheduled.
    wake_at: Option<u64>,
}

#[derive(Debug)]
pub struct SimNode {
    pub index: ValidatorIndex,
    pub behaviour: Behaviour,
    /// Honest clock drift (within the PBTS precision).
    pub drift_ms: u64,
    /// Durable: survives crashes (in the replica while it runs).
    store: Option<MemStore>,
    /// Durable: the double-sign guard record.
    pub sign_state: Option<SignState>,
    live: Option<Live>,
    /// Bumped on every crash: timers of an earlier life are ignored.
    pub incarnation: u64,
    /// Crash after this many more actions (armed by the fault plan).
    pub crash_after_actions: Option<u32>,
}

impl SimNode {
    pub fn new(index: ValidatorIndex, behaviour: Behaviour, drift_ms: u64, store: MemStore) -> SimNode {
        SimNode {
            index,
            behaviour,
            drift_ms,
            store: Some(store),
            sign_state: None,
            live: None,
            incarnation: 0,
            crash_after_actions: None,
        }
    }

    pub fn is_up(&self) -> bool {
        self.live.is_some()
    }

    pub fn honest(&self) -> bool {
        self.behaviour == Behaviour::Honest
    }

    fn store(&self) -> &MemStore {
        match (&self.live, &self.store) {
            (Some(l), _) => l.replica.store(),
            (None, Some(s)) => s,
            (None, None) => unreachable!("a node's store is in its replica or parked"),
        }
    }

    pub fn head(&self) -> Option<credence_ledger::store::Head> {
        self.store().head().ok().flatten()
    }

    /// Height of the last stored block.
    pub fn height(&self) -> u64 {
        self.store().head().ok().flatten().map_or(0, |h| h.height)
    }

    /// The next sequence the stored chain expects of `member`.
    pub fn next_sequence(&self, member: u16) -> Result<u64, credence_ledger::store::StoreError> {
        use credence_ledger::rules::StateView;
        self.store().next_sequence(member)
    }

    /// Adds the current life's compact-proposal counters to `stats`.
    pub fn count_compact(&self, stats: &mut super::Stats) {
        if let Some(l) = &self.live {
            let s = &l.replica.stats;
            stats.compact_filled += s.compact_filled;
            stats.compact_filled_later += s.compact_filled_later;
            stats.compact_dropped += s.compact_dropped;
            stats.compact_sent_whole += s.compact_sent_whole;
        }
    }

    /// Signatures the guard refused in the current life.
    pub fn refused_live(&self) -> u64 {
        self.live.as_ref().and_then(|l| l.replica.consensus()).map_or(0, |c| c.refused_signatures())
    }

    /// The stored block at `height`, for the observer.
    pub fn block(&self, height: u64) -> Option<credence_ledger::block::CertifiedBlock> {
        self.store().block(height).ok().flatten()
    }

    /// The governance state in force at the height after the stored head.
    pub fn governance(&self, chain: &super::chain::SimChain) -> Arc<credence_ledger::governance::GovState> {
        match chain.ledger.in_force(self.store(), self.height() + 1) {
            Ok((gov, _)) => gov,
            Err(e) => panic!("in-memory store failed: {e}"),
        }
    }

    /// The validators in force at `height` (by node) and their quorum, from the stored
    /// chain (known up to two heights past the head), and the governance state there.
    fn set_at(
        &self,
        chain: &super::chain::SimChain,
        height: u64,
    ) -> (InForce, Arc<credence_ledger::governance::GovState>) {
        let (gov, roster) = match chain.ledger.in_force(self.store(), height) {
            Ok(x) => x,
            Err(e) => panic!("in-memory store failed: {e}"),
        };
        let mut members = vec![false; chain.n()];
        for i in &roster.validators {
            if let Some(node) = chain.node_of(roster.members[usize::from(*i)].name.as_str()) {
                members[usize::from(node)] = true;
            }
        }
        ((members, credence_ledger::checkpoint::quorum_threshold(roster.validators.len())), gov)
    }

    pub fn round(&self) -> u32 {
        self.live.as_ref().and_then(|l| l.replica.consensus()).map_or(0, |c| c.round())
    }

    fn clock(&self, env: &Env) -> Clock {
        Clock { wall_ms: self.behaviour.wall_ms(env.now, self.drift_ms), mono_ms: env.now }
    }

    /// Starts (or restarts) from the durable state: store and sign state.
    pub fn start(&mut self, env: &mut Env) {
        if self.live.is_some() || self.behaviour == Behaviour::Silent {
            return;
        }
        let Some(store) = self.store.take() else { return };
        let chain = Arc::clone(&env.chain);
        let me = usize::from(self.index);
        let name = credence_ledger::ids::MemberName::parse("name", &validator_name(me))
            .unwrap_or_else(|e| unreachable!("simulated names are valid: {e}"));
        let identity = Identity { name, key: chain.validator_key(me) };
        let mempool = Arc::new(Mutex::new(Mempool::new(Arc::clone(&chain.ledger), MempoolLimits::default())));
        let clock = self.clock(env);
        let replica = match Replica::new(
            Arc::clone(&chain.ledger),
            store,
            mempool,
            Some(identity),
            self.sign_state.clone(),
            clock,
        ) {
            Ok(r) => r,
            Err(e) => panic!("in-memory store lost its Merkle nodes: {e}"),
        };
        let in_force = replica.mempool().lock().unwrap_or_else(std::sync::PoisonError::into_inner).in_force();
        self.live = Some(Live {
            replica,
            verifier: Verifier::new(Arc::clone(&chain.ledger), in_force),
            sync_server: SyncServer::default(),
            bad_proposal: None,
            wake_at: None,
        });
        let actions = self.with_replica(env, |r, now| r.start(now));
        self.carry_out(env, actions);
    }

    /// Loses everything volatile; a restart is scheduled by the caller's fault plan.
    pub fn crash(&mut self, env: &mut Env) {
        self.count_compact(&mut env.stats);
        if let Some(l) = self.live.take() {
            env.stats.refused_signatures += l.replica.consensus().map_or(0, |c| c.refused_signatures());
            self.store = Some(l.replica.into_store());
            self.incarnation += 1;
            self.crash_after_actions = None;
            env.stats.crashes += 1;
            env.on_crash(self.index);
        }
    }

    /// One line for failure reports.
    pub fn describe(&self) -> String {
        match &self.live {
            None => format!("node {} ({}) down at height {}", self.index, self.behaviour.name(), self.height()),
            Some(l) => {
                let c = l.replica.consensus();
                format!(
                    "node {} ({}) stored {} at h{:?}/r{:?}/{:?} started {:?} locked {:?} signed {:?}",
                    self.index,
                    self.behaviour.name(),
                    self.height(),
                    c.map(|c| c.height()),
                    c.map(|c| c.round()),
                    c.map(|c| c.current_step()),
                    c.map(|c| c.is_started()),
                    c.and_then(|c| c.locked()).map(|(r, id)| (r, id.hash)),
                    self.sign_state.as_ref().map(|s| (s.height, s.round, s.step, s.value.map(|v| v.hash))),
                )
            }
        }
    }

    /// A scheduled wake-up: time passed for the replica.
    pub fn on_wake(&mut self, env: &mut Env, incarnation: u64) {
        if incarnation != self.incarnation {
            return;
        }
        let Some(l) = &mut self.live else { return };
        if l.wake_at.is_some_and(|t| t > env.now) {
            return; // superseded by an earlier wake-up that already ran
        }
        l.wake_at = None;
        let actions = self.with_replica(env, |r, now| r.on_tick(now));
        self.carry_out(env, actions);
        if self.behaviour == Behaviour::SyncFlooder {
            let height = self.height();
            for peer in 0..env.chain.n() as ValidatorIndex {
                for _ in 0..FLOOD_REQUESTS {
                    if peer != self.index {
                        let request =
                            SyncRequest { from_height: height.saturating_sub(8).max(1), blocks_max: u32::MAX };
                        env.send(self.index, peer, NetMsg::SyncRequest(request));
                    }
                }
            }
        }
    }

    pub fn on_deliver(&mut self, env: &mut Env, from: ValidatorIndex, msg: NetMsg) {
        let Some(l) = &mut self.live else { return };
        match msg {
            NetMsg::Consensus(m) => {
                if self.behaviour == Behaviour::TamperingRelay
                    && let Message::Proposal(sp) = &m
                    && let Some(bad) = tampered(sp)
                {
                    for peer in 0..env.chain.n() as ValidatorIndex {
                        if peer != self.index {
                            env.send_now(self.index, peer, NetMsg::Consensus(Message::Proposal(bad.clone())));
                        }
                    }
                }
                let (actions, verdicts) = self.with_replica(env, |r, now| r.on_messages(now, vec![m]));
                env.stats.messages_rejected +=
                    verdicts.iter().filter(|v| matches!(v, Verdict::Reject(_))).count() as u64;
                self.carry_out(env, actions);
            }
            NetMsg::Compact(c) => {
                if self.behaviour == Behaviour::TamperingRelay
                    && let Some(bad) = tampered_compact(&c)
                {
                    let bad = Arc::new(bad);
                    for peer in 0..env.chain.n() as ValidatorIndex {
                        if peer != self.index {
                            env.send_now(self.index, peer, NetMsg::Compact(Arc::clone(&bad)));
                        }
                    }
                }
                let sender = credence_ledger::ids::MemberName::parse("name", &validator_name(usize::from(from)))
                    .unwrap_or_else(|e| unreachable!("simulated names are valid: {e}"));
                let (actions, verdict) = self.with_replica(env, |r, now| {
                    let (actions, verdict) = r.on_compact(now, c, &sender)?;
                    Ok((actions, Some(verdict)))
                });
                if matches!(verdict, Some(Verdict::Reject(_))) {
                    env.stats.messages_rejected += 1;
                }
                self.carry_out(env, actions);
            }
            NetMsg::Attestations(items) => {
                let store = l.replica.store();
                // A client's submission arrives as a message to itself.
                let origin = if from == self.index { Origin::Client } else { Origin::Peer };
                let outcome = admit_batch(&l.verifier, store, l.replica.mempool(), items.to_vec(), origin, env.now);
                for refused in &outcome.results {
                    if let Err(AdmitError::Rule(rejection)) = refused {
                        *env.stats.rule_refusals.entry(rejection.code()).or_default() += 1;
                    }
                }
                if outcome.admitted() == 0 {
                    return;
                }
                // Gossip: forward what was new here (an honest relay forwards only what verified).
                let fresh: Vec<Vec<u8>> = outcome.leaves.iter().map(|l| l.bytes.clone()).collect();
                let fresh = Arc::new(fresh);
                for peer in 0..env.chain.n() as ValidatorIndex {
                    if peer != self.index && peer != from {
                        env.send(self.index, peer, NetMsg::Attestations(Arc::clone(&fresh)));
                    }
                }
                let actions = self.with_replica(env, |r, now| r.on_pool_changed(now));
                self.carry_out(env, actions);
            }
            NetMsg::SyncRequest(request) => {
                let served =
                    l.sync_server.serve(l.replica.store(), &from, request, crate::sync::SYNC_ANSWER_BYTES_MAX, env.now);
                match served {
                    Ok(mut blocks) => {
                        // A tampering relay also serves forged blocks (a byte of the last
                        // one changed): the asker refuses it and fetches it from another peer.
                        if self.behaviour == Behaviour::TamperingRelay
                            && let Some(last) = blocks.last_mut()
                            && !last.is_empty()
                        {
                            let i = last.len() / 2;
                            last[i] ^= 0x20;
                        }
                        // Empty too, as the node answers: the asker learns that we have nothing.
                        env.send(self.index, from, NetMsg::SyncResponse(request, Arc::new(blocks)));
                    }
                    Err(_) => env.stats.sync_refused += 1,
                }
            }
            NetMsg::SyncResponse(request, blocks) => {
                let (actions, bad) = self.with_replica(env, |r, now| {
                    let (actions, outcome) = r.on_sync_blocks(now, request, blocks.to_vec())?;
                    Ok((actions, outcome.bad.len() as u64))
                });
                env.stats.sync_answers_bad += bad;
                self.carry_out(env, actions);
            }
        }
    }

    /// Runs `f` on the live replica at this node's clock; a store failure is a bug here.
    fn with_replica<T: Default>(
        &mut self,
        env: &mut Env,
        f: impl FnOnce(&mut Replica<MemStore>, Clock) -> Result<T, crate::replica::ReplicaError>,
    ) -> T {
        let clock = self.clock(env);
        let Some(l) = &mut self.live else { return T::default() };
        match f(&mut l.replica, clock) {
            Ok(t) => t,
            Err(e) => panic!("in-memory store failed: {e}"),
        }
    }

    /// Carries out actions in order, as the node's driver does; a crash armed by the
    /// fault plan happens between two of them, losing the rest.
    fn carry_out(&mut self, env: &mut Env, actions: Vec<Action>) {
        for action in actions {
            if self.live.is_none() {
                return;
            }
            if let Some(n) = self.crash_after_actions.as_mut() {
                if *n == 0 {
                    self.crash(env);
                    return;
                }
                *n -= 1;
            }
            match action {
                Action::PersistSignState(s) => {
                    let at = |s: &SignState| (s.height, s.round, s.step);
                    if let Some(old) = &self.sign_state
                        && at(&s) < at(old)
                    {
                        env.observer.sign_state_regressed(self.index, format!("{:?} after {:?}", at(&s), at(old)));
                    }
                    self.sign_state = Some(s);
                }
                Action::Broadcast(m) => self.broadcast(env, m, false),
                Action::BroadcastCompact(c) => self.broadcast_compact(env, c),
                Action::Resend(msgs) => {
                    for m in msgs {
                        let signer = self.signer_of(env, &m);
                        if signer == Some(self.index) {
                            self.broadcast(env, m, true);
                        } else {
                            self.relay(env, signer, m);
                        }
                    }
                }
                Action::RequestSync(request) => {
                    env.stats.sync_requests += 1;
                    let peer = env.peer_for_sync(self.index);
                    env.send(self.index, peer, NetMsg::SyncRequest(request));
                }
                Action::Committed { height, synced, .. } => {
                    if synced {
                        env.stats.blocks_synced += 1;
                    }
                    if self.honest()
                        && let Some(cb) = self.block(height)
                    {
                        let chain = Arc::clone(&env.chain);
                        let (at, next) = (self.set_at(&chain, height).0, self.set_at(&chain, height + 1));
                        env.observer.on_commit(self.index, &cb, env.now, at, next.0);
                        env.observer.on_witness_terms(self.index, height, &next.1.witnesses);
                    }
                }
                Action::Notice(Notice::DecidedBlockInvalid { height, error }) if self.honest() => {
                    env.observer.invalid(self.index, height, error);
                }
                Action::Notice(Notice::ProposalInvalid { .. }) => env.stats.validations_failed += 1,
                Action::Notice(_) => {}
            }
        }
        self.schedule_wake(env);
    }

    fn schedule_wake(&mut self, env: &mut Env) {
        let Some(l) = &mut self.live else { return };
        let at = l.replica.next_wake_mono_ms().max(env.now + 1);
        if l.wake_at.is_none_or(|t| at < t || t <= env.now) {
            l.wake_at = Some(at);
            env.schedule_wake(self.index, self.incarnation, at);
        }
    }

    /// The node that signed `m`, by the validator set in force at its height.
    fn signer_of(&mut self, env: &Env, m: &Message) -> Option<ValidatorIndex> {
        let name = self.live.as_mut()?.replica.signer_name(m)?;
        env.chain.node_of(name.as_str())
    }

    /// Forwards another validator's message to every node but us and its signer.
    fn relay(&mut self, env: &mut Env, signer: Option<ValidatorIndex>, msg: Message) {
        for peer in 0..env.chain.n() as ValidatorIndex {
            if peer != self.index && Some(peer) != signer {
                env.send(self.index, peer, NetMsg::Consensus(msg.clone()));
            }
        }
    }

    /// Sends our round-0 proposal compact; a byzantine proposer's behaviour applies to
    /// the whole proposal, sent whole.
    fn broadcast_compact(&mut self, env: &mut Env, c: Arc<CompactProposal>) {
        if matches!(self.behaviour, Behaviour::Equivocator | Behaviour::InvalidProposer) {
            let whole = self.live.as_ref().and_then(|l| {
                let pool = l.replica.mempool().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                Filling::new(Arc::clone(&c), &pool).into_whole().ok()
            });
            let Some(sp) = whole else { panic!("a proposer holds the records it proposed") };
            self.broadcast(env, Message::Proposal(sp), false);
            return;
        }
        env.observer.on_send_statement(self.index, Statement::Proposal(c.proposal));
        for peer in 0..env.chain.n() as ValidatorIndex {
            if peer != self.index {
                env.send(self.index, peer, NetMsg::Compact(Arc::clone(&c)));
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

    fn key(&self, env: &Env) -> SecretKey {
        env.chain.validator_key(usize::from(self.index))
    }

    /// The equivocator's second statement for the same slot: the other vote (nil ↔ a
    /// block), or a second valid block proposed in the same round.
    fn conflicting(&mut self, env: &mut Env, msg: &Message) -> Option<Message> {
        let chain = Arc::clone(&env.chain);
        let key = self.key(env);
        match msg {
            Message::Vote(sv) => {
                let v = sv.vote;
                let value = match v.value {
                    Some(_) => None,
                    None => Some(fake_id(self.index, v.height, v.round)),
                };
                let vote = Vote { value, ..v };
                let name = validator_name(usize::from(self.index));
                let signature = vote.sign(&chain.consensus.origin, &chain.chain_id(), &name, &key);
                Some(Message::Vote(SignedVote { vote, validator: sv.validator, signature }))
            }
            Message::Proposal(sp) => {
                let l = self.live.as_ref()?;
                let tip = l.replica.tip();
                let h = &sp.block.header;
                if h.height != tip.height + 1 {
                    return None;
                }
                let time = h.time_ms.checked_add(1)?;
                let block = block_on(tip, h.validator_set, h.proposer.clone(), time, sp.block.leaves.clone())?;
                Some(Message::Proposal(sign_proposal(&chain, &key, sp.proposal, block)))
            }
        }
    }

    /// The invalid proposer's block for this proposal: one of a wrong root, a broken
    /// attestation signature, or a block time that does not increase.
    fn corrupt(&mut self, env: &mut Env, sp: &SignedProposal) -> Option<SignedProposal> {
        let chain = Arc::clone(&env.chain);
        let key = self.key(env);
        let l = self.live.as_mut()?;
        if let Some(bad) = &l.bad_proposal
            && (bad.proposal.height, bad.proposal.round) == (sp.proposal.height, sp.proposal.round)
        {
            return Some(bad.clone());
        }
        let tip = l.replica.tip().clone();
        let h = &sp.block.header;
        if h.height != tip.height + 1 {
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
                block_on(&tip, h.validator_set, h.proposer.clone(), h.time_ms, leaves)?
            }
            1 => {
                let mut b = block_on(&tip, h.validator_set, h.proposer.clone(), h.time_ms, leaves)?;
                b.header.tree_root = Hash::digest(&[b"not the root"]);
                b
            }
            _ => block_on(&tip, h.validator_set, h.proposer.clone(), tip.time_ms, leaves)?,
        };
        let bad = sign_proposal(&chain, &key, Proposal { valid_round: None, ..sp.proposal }, block);
        l.bad_proposal = Some(bad.clone());
        Some(bad)
    }
}

/// A block of `leaves` on `tip` as the verification core assembles it (a byzantine
/// validator's raw material); `None` if the tree is full.
fn block_on(
    tip: &credence_ledger::verify::Tip,
    validator_set: Hash,
    proposer: credence_ledger::ids::MemberName,
    time_ms: u64,
    leaves: Vec<Leaf>,
) -> Option<credence_ledger::block::Block> {
    credence_ledger::verify::assemble(tip, validator_set, proposer, time_ms, leaves).ok().map(|(b, _)| b)
}

/// A hostile relay's copy of a compact proposal: the header and signature untouched,
/// the first two records swapped, or the last dropped if they are the same.
fn tampered_compact(c: &CompactProposal) -> Option<CompactProposal> {
    let mut items = c.items.clone();
    if items.len() >= 2 && items[0] != items[1] {
        items.swap(0, 1);
    } else {
        items.pop()?;
    }
    Some(CompactProposal { items, ..c.clone() })
}

/// A hostile relay's copy of a signed proposal: the header and signature untouched,
/// a leaf dropped (none for an empty block).
fn tampered(sp: &SignedProposal) -> Option<SignedProposal> {
    let mut block = (*sp.block).clone();
    block.leaves.pop()?;
    Some(SignedProposal { block: Arc::new(block), ..sp.clone() })
}

fn sign_proposal(
    chain: &super::chain::SimChain,
    key: &SecretKey,
    like: Proposal,
    block: credence_ledger::block::Block,
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
