//! The Tendermint state machine (arXiv 1807.04938, Algorithm 1); comments `Lnn` cite the paper's line numbers.
//!
//! Deviations from the pseudo-code, each safe:
//! * `valid(v)` is asked of the driver ([`Effect::ValidateBlock`]) and rules that need it
//!   wait for the answer; `getValue()` likewise ([`Effect::BuildBlock`]).
//! * The proposer also schedules `timeoutPropose` (L21), so a driver that never answers
//!   `BuildBlock` cannot stall it in the propose step.
//! * L49 accepts the block from any proposal of the height with the same id, not only the
//!   proposal of round r: the id fixes the block, and liveness improves.
//! * L55 is bounded as in [`super::votes`]; among qualifying rounds the highest is taken.
//! * Before signing, the double-sign guard ([`SignState`]) must allow it; a refused
//!   signature is simply not sent (as if lost), the step still advances.
//! * Up to two proposals per round and two votes per validator and slot are kept
//!   (see [`super::votes`]); a third conflicting statement is dropped.
//!
//! The paper assumes gossip: whatever one correct process receives, all eventually
//! receive. A driver provides it by re-sending [`Consensus::known_messages`] when no
//! step was taken for a while.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use credence_ledger::block::{Block, CertifiedBlock};
use credence_ledger::checkpoint::{Checkpoint, NoteSignature};
use credence_ledger::sig::{SecretKey, SigError};
use credence_ledger::vote::{BlockId, Equivocation, Proposal, SignedStatement, Slot, Statement, Vote, VoteKind};

use super::check;
use super::guard::{SIGNED_VOTES_MAX, SignState};
use super::types::{
    Context, Effect, Input, Message, MessageError, SignedProposal, SignedVote, Signer, Step, Timeout, ValidatorIndex,
};
use super::votes::{Added, VoteBook, VoteRecord};

/// Verified messages for the next height kept per validator until we get there.
pub const FUTURE_MESSAGES_PER_VALIDATOR: usize = 4;
/// Proposals kept per round: the first, and one conflicting (an equivocation).
pub const PROPOSALS_PER_ROUND_MAX: usize = 2;
/// Contexts of later heights a machine keeps (the next two heights').
pub const CONTEXTS_AHEAD_MAX: usize = 2;

/// Whether a message's signature was already checked when it is handled.
#[derive(Clone, Copy, Debug)]
enum Checked {
    /// Not yet: check it if the message gets that far.
    No,
    /// Done, with this verdict (buffered messages; [`Consensus::step_messages`]).
    Done(Result<(), SigError>),
}

#[derive(Debug)]
struct BlockEntry {
    block: Arc<Block>,
    /// `valid(v)`: `None` while the driver checks it.
    valid: Option<bool>,
}

/// One validator's (or observer's) consensus state. Pure: inputs in, effects out.
#[derive(Debug)]
pub struct Consensus {
    /// The validator set and parameters in force at `height`.
    ctx: Arc<Context>,
    /// Contexts of later heights the replica already knows (at most
    /// [`CONTEXTS_AHEAD_MAX`], heights above `height`): governance changes take effect
    /// two heights after the block that completes them, so the next height's is
    /// always known once the current height started.
    ahead: BTreeMap<u64, Arc<Context>>,
    /// Whether a host provides the contexts of later heights ([`Consensus::provide_context`]);
    /// if it never does, every height has the first context (a fixed set).
    governed: bool,
    /// This validator's key, whatever the set; `signer` is `Some` at heights where it validates.
    key: Option<SecretKey>,
    signer: Option<Signer>,
    /// L2–L9.
    height: u64,
    round: u32,
    step: Step,
    locked: Option<(u32, BlockId)>,
    valid: Option<(u32, BlockId)>,
    /// The durable guard; `None` if this validator never signed.
    sign_state: Option<SignState>,
    /// Blocks of this height by id, each from a proposal (bounded like the proposals).
    blocks: BTreeMap<BlockId, BlockEntry>,
    /// Correctly signed proposals of each round, in arrival order (at most two).
    proposals: BTreeMap<u32, Vec<SignedProposal>>,
    votes: VoteBook,
    /// "For the first time" guards of the current round: L34, L36, L47.
    prevote_timeout_armed: bool,
    polka_seen: bool,
    precommit_timeout_armed: bool,
    /// Waiting for `BlockBuilt` in the current round.
    awaiting_block: bool,
    /// Verified messages for `height + 1`, with their sender and the clock when they came.
    future: Vec<(ValidatorIndex, Message, u64)>,
    /// The validator's wall clock (ms), as last given ([`Consensus::set_time`]).
    now_ms: u64,
    /// Proposals (round, block) that were timely when they arrived (PBTS).
    timely: BTreeSet<(u32, BlockId)>,
    /// Whether the height's round 0 started. With a heartbeat (idle chains make no
    /// blocks), a height waits until there is work ([`Consensus::start_height`]) or
    /// a counted message shows that another validator started it.
    started: bool,
    /// Offences already reported at this height.
    reported: BTreeSet<(ValidatorIndex, u32, Slot)>,
    refused: u64,
}

impl Consensus {
    /// A machine at `height` (the one after the last stored block). `sign_state` is
    /// the durable record of the last run, if any: at the same height it restores
    /// the lock and the round, and re-sends the votes signed there. Call
    /// [`Consensus::start`] next.
    pub fn new(ctx: Arc<Context>, signer: Option<Signer>, height: u64, sign_state: Option<SignState>) -> Consensus {
        assert!(height >= 1, "height 0 is genesis");
        if let Some(s) = &signer {
            assert!(usize::from(s.index) < ctx.n(), "signer is a validator");
            assert_eq!(
                ctx.validators[usize::from(s.index)].key.public(),
                s.key.public(),
                "signer key is its key in the set in force"
            );
        }
        let n = ctx.n();
        let key = signer.as_ref().map(|s| SecretKey::from_seed(s.key.seed()));
        Consensus {
            ctx,
            ahead: BTreeMap::new(),
            governed: false,
            key,
            signer,
            height,
            round: 0,
            step: Step::Propose,
            locked: None,
            valid: None,
            sign_state,
            blocks: BTreeMap::new(),
            proposals: BTreeMap::new(),
            votes: VoteBook::new(n),
            prevote_timeout_armed: false,
            polka_seen: false,
            precommit_timeout_armed: false,
            awaiting_block: false,
            future: Vec::new(),
            now_ms: 0,
            timely: BTreeSet::new(),
            started: false,
            reported: BTreeSet::new(),
            refused: 0,
        }
    }

    /// An observer (no signer yet) that validates with `key` from the heights whose set
    /// holds it: a member that governance makes a validator later.
    pub fn with_key(mut self, key: SecretKey) -> Consensus {
        self.signer = signer_in(&self.ctx, &key);
        self.key = Some(key);
        self
    }

    /// The validator set and parameters in force at `height` (a later height than the
    /// machine's). Heights already entered keep the context they started with.
    pub fn provide_context(&mut self, height: u64, ctx: Arc<Context>) {
        self.governed = true;
        if height <= self.height {
            return;
        }
        self.ahead.insert(height, ctx);
        // Hosts provide heights in increasing order: the lowest are the stale ones.
        while self.ahead.len() > CONTEXTS_AHEAD_MAX {
            self.ahead.pop_first();
        }
    }

    /// The context of the height after this one, if known.
    fn next_ctx(&self) -> Option<&Arc<Context>> {
        match self.ahead.get(&(self.height + 1)) {
            Some(c) => Some(c),
            None if !self.governed => Some(&self.ctx),
            None => None,
        }
    }

    /// The context in force at the current height.
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// The validator's wall clock, in ms since the Unix epoch: the receive time of
    /// the proposals that follow (PBTS timeliness). The machine never reads a clock.
    pub fn set_time(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    /// Whether the current height started (see [`Consensus::start_height`]).
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// Starts round 0 of a height that waits for work (an idle chain with a
    /// heartbeat): the driver has records to propose, or the heartbeat is due.
    pub fn start_height(&mut self) -> Vec<Effect> {
        let mut out = Vec::new();
        self.ensure_started(&mut out);
        self.progress(&mut out);
        out
    }

    fn ensure_started(&mut self, out: &mut Vec<Effect>) {
        if !self.started {
            self.started = true;
            self.start_round(self.round, out);
        }
    }

    /// L10: upon start do StartRound(0) (or the restored round).
    pub fn start(&mut self) -> Vec<Effect> {
        let mut out = Vec::new();
        self.enter_height(self.height, &mut out);
        self.progress(&mut out);
        out
    }

    /// Feeds one input; returns what the driver must do, in order. A message that is
    /// not counted is an error (the driver may score its sender); an equivocation is
    /// not an error but yields [`Effect::Evidence`].
    pub fn step(&mut self, input: Input) -> Result<Vec<Effect>, MessageError> {
        let mut out = Vec::new();
        match input {
            Input::Proposal(p) => self.on_message(Message::Proposal(p), Checked::No, &mut out)?,
            Input::Vote(v) => self.on_message(Message::Vote(v), Checked::No, &mut out)?,
            Input::Timeout(t) => self.on_timeout(t, &mut out),
            Input::BlockBuilt { height, round, block } => self.on_block_built(height, round, block, &mut out),
            Input::BlockValidated { height, id, valid } => {
                if height == self.height
                    && let Some(e) = self.blocks.get_mut(&id)
                    && e.valid.is_none()
                {
                    e.valid = Some(valid);
                }
            }
            Input::Synced { height } => {
                if height >= self.height {
                    self.enter_height(height + 1, &mut out);
                }
            }
        }
        self.progress(&mut out);
        Ok(out)
    }

    /// Feeds messages that arrived together (a driver draining its inbox): exactly
    /// [`Consensus::step`] on each in order — the same effects, concatenated, and the
    /// same verdict per message — except for how signatures are checked. Every message
    /// that would reach its signature check in the state before the first one is
    /// checked up front, all together ([`check::verify_all`]: one batch equation for
    /// two or more; five cost about half of five single checks). A message that
    /// then is not counted after all (say, the height was decided by an earlier one)
    /// was checked for nothing; one that was not checked up front but becomes
    /// admissible on the way is checked alone. Either way, a message is counted only
    /// with a valid signature, checked once.
    pub fn step_messages(&mut self, msgs: Vec<Message>) -> (Vec<Effect>, Vec<Result<(), MessageError>>) {
        let signers: Vec<Option<ValidatorIndex>> = msgs.iter().map(|m| self.reaches_signature_check(m)).collect();
        let to_check: Vec<(ValidatorIndex, &Message)> =
            msgs.iter().zip(&signers).filter_map(|(m, s)| s.map(|s| (s, m))).collect();
        let mut verdicts = check::verify_all(&self.ctx, &to_check).into_iter();
        let checked: Vec<Checked> =
            signers.iter().map(|s| s.and_then(|_| verdicts.next()).map_or(Checked::No, Checked::Done)).collect();
        assert!(verdicts.next().is_none(), "one verdict per checked message");
        let mut out = Vec::new();
        let mut results = Vec::with_capacity(msgs.len());
        for (msg, checked) in msgs.into_iter().zip(checked) {
            let mark = out.len();
            let result = self.on_message(msg, checked, &mut out);
            match result {
                Ok(()) => self.progress(&mut out),
                // As `step`: a message not counted leaves no effects.
                Err(_) => out.truncate(mark),
            }
            results.push(result);
        }
        (out, results)
    }

    pub fn height(&self) -> u64 {
        self.height
    }
    pub fn round(&self) -> u32 {
        self.round
    }
    pub fn current_step(&self) -> Step {
        self.step
    }
    pub fn locked(&self) -> Option<(u32, BlockId)> {
        self.locked
    }
    pub fn sign_state(&self) -> Option<&SignState> {
        self.sign_state.as_ref()
    }
    /// Signatures the guard refused (after a restart), since creation.
    pub fn refused_signatures(&self) -> u64 {
        self.refused
    }

    /// Every proposal and vote kept at the current height (ours included): what a
    /// driver re-sends when no step was taken for a while, as gossip would.
    pub fn known_messages(&self) -> Vec<Message> {
        let mut out: Vec<Message> = self.proposals.values().flatten().map(|p| Message::Proposal(p.clone())).collect();
        for (round, rv) in self.votes.rounds() {
            for kind in [VoteKind::Prevote, VoteKind::Precommit] {
                for (v, rec) in rv.all(kind) {
                    let vote = Vote { height: self.height, round: *round, kind, value: rec.value };
                    let validator = v as ValidatorIndex;
                    out.push(Message::Vote(SignedVote { vote, validator, signature: rec.signature }));
                }
            }
        }
        out
    }

    /// The validator that signed `msg`: the vote's signer, or the proposer of the proposal's round.
    pub fn signer_of(&self, msg: &Message) -> ValidatorIndex {
        match msg {
            Message::Proposal(p) => self.ctx.proposer(p.proposal.height, p.proposal.round),
            Message::Vote(v) => v.validator,
        }
    }

    // ---- inputs -------------------------------------------------------------------

    /// The signer whose signature `msg` would be checked against if it arrived now, or
    /// `None` if a cheaper check rejects it first (the same checks, in the same order, as
    /// [`Consensus::on_message`] makes before the signature).
    fn reaches_signature_check(&self, msg: &Message) -> Option<ValidatorIndex> {
        let (got, current) = (msg.height(), self.height);
        if got == current + 1 {
            // Batched with this height's keys only if the next height has the same set.
            let same = self.next_ctx().is_some_and(|n| Arc::ptr_eq(n, &self.ctx));
            return if same { self.buffer_gate(msg).ok() } else { None };
        }
        if got != current {
            return None;
        }
        match msg {
            Message::Proposal(p) => self.proposal_gate(p).ok(),
            Message::Vote(v) => self.vote_gate(v).ok().map(|()| v.validator),
        }
    }

    fn on_message(&mut self, msg: Message, checked: Checked, out: &mut Vec<Effect>) -> Result<(), MessageError> {
        let (got, current) = (msg.height(), self.height);
        if got < current {
            return Err(MessageError::PastHeight { got, current });
        }
        if got > current + 1 {
            return Err(MessageError::FutureHeight { got, current });
        }
        if got == current + 1 {
            return self.buffer(msg, checked);
        }
        let received = self.now_ms;
        match msg {
            Message::Proposal(p) => self.on_proposal(p, checked, received, out),
            Message::Vote(v) => self.on_vote(v, checked, out),
        }?;
        // Another validator is at work on this height: join it.
        self.ensure_started(out);
        Ok(())
    }

    /// The signature's verdict: the one already `checked`, or else `verify()`'s.
    fn signature_ok(
        &self,
        checked: Checked,
        verify: impl FnOnce() -> Result<(), SigError>,
    ) -> Result<(), MessageError> {
        match checked {
            Checked::Done(verdict) => verdict,
            Checked::No => verify(),
        }
        .map_err(MessageError::BadSignature)
    }

    /// What [`Consensus::buffer`] checks before the signature; returns the signer.
    fn buffer_gate(&self, msg: &Message) -> Result<ValidatorIndex, MessageError> {
        if self.future.iter().any(|(_, m, _)| m == msg) {
            return Err(MessageError::Duplicate);
        }
        let Some(next) = self.next_ctx() else {
            // The set of the next height is not known yet: not checkable, no blame.
            return Err(MessageError::FutureHeight { got: msg.height(), current: self.height });
        };
        match msg {
            Message::Proposal(p) => check_proposal_shape(next, p),
            Message::Vote(v) if usize::from(v.validator) < next.n() => Ok(v.validator),
            Message::Vote(v) => Err(MessageError::NotValidator(v.validator)),
        }
    }

    /// Keeps a verified next-height message, at most [`FUTURE_MESSAGES_PER_VALIDATOR`] per sender.
    fn buffer(&mut self, msg: Message, checked: Checked) -> Result<(), MessageError> {
        let sender = self.buffer_gate(&msg)?;
        let next = self
            .next_ctx()
            .map(Arc::clone)
            .ok_or(MessageError::FutureHeight { got: msg.height(), current: self.height })?;
        self.signature_ok(checked, || match &msg {
            Message::Proposal(p) => check::verify_proposal(&next, sender, p),
            Message::Vote(v) => check::verify_vote(&next, v),
        })?;
        if self.future.iter().filter(|(s, _, _)| *s == sender).count() >= FUTURE_MESSAGES_PER_VALIDATOR {
            return Err(MessageError::BufferFull(sender));
        }
        self.future.push((sender, msg, self.now_ms));
        Ok(())
    }

    /// What [`Consensus::on_proposal`] checks before the signature; returns the proposer.
    fn proposal_gate(&self, sp: &SignedProposal) -> Result<ValidatorIndex, MessageError> {
        let p = &sp.proposal;
        let kept = self.proposals.get(&p.round).map_or(&[][..], Vec::as_slice);
        if kept.iter().any(|e| e.proposal == *p) {
            return Err(MessageError::Duplicate);
        }
        if kept.len() >= PROPOSALS_PER_ROUND_MAX {
            return Err(MessageError::SlotFull);
        }
        let proposer = self.check_proposal_shape(sp)?;
        if !self.votes.admits(p.round, proposer, self.round) {
            return Err(MessageError::RoundOutOfWindow { round: p.round, current: self.round, validator: proposer });
        }
        Ok(proposer)
    }

    /// A proposal of this height, `received_ms` by our clock.
    fn on_proposal(
        &mut self,
        sp: SignedProposal,
        checked: Checked,
        received_ms: u64,
        out: &mut Vec<Effect>,
    ) -> Result<(), MessageError> {
        let p = sp.proposal;
        debug_assert_eq!(p.height, self.height);
        let proposer = self.proposal_gate(&sp)?;
        self.signature_ok(checked, || check::verify_proposal(&self.ctx, proposer, &sp))?;
        let first = self
            .proposals
            .get(&p.round)
            .and_then(|kept| kept.first())
            .map(|e| SignedStatement { statement: Statement::Proposal(e.proposal), signature: e.signature });
        if let Some(first) = first {
            let second = SignedStatement { statement: Statement::Proposal(p), signature: sp.signature };
            self.report(proposer, first, second, out);
        }
        self.votes.mark_sender(p.round, proposer);
        if self.ctx.time.timely(sp.block.header.time_ms, received_ms, p.round) {
            self.timely.insert((p.round, p.block));
        }
        if let Entry::Vacant(slot) = self.blocks.entry(p.block) {
            slot.insert(BlockEntry { block: Arc::clone(&sp.block), valid: None });
            out.push(Effect::ValidateBlock { height: self.height, id: p.block, block: Arc::clone(&sp.block) });
        }
        self.proposals.entry(p.round).or_default().push(sp);
        Ok(())
    }

    /// What [`Consensus::on_vote`] checks before the signature.
    fn vote_gate(&self, sv: &SignedVote) -> Result<(), MessageError> {
        let v = sv.vote;
        if usize::from(sv.validator) >= self.ctx.n() {
            return Err(MessageError::NotValidator(sv.validator));
        }
        if !self.votes.admits(v.round, sv.validator, self.round) {
            return Err(MessageError::RoundOutOfWindow {
                round: v.round,
                current: self.round,
                validator: sv.validator,
            });
        }
        if self.votes.has(v.round, v.kind, sv.validator, &v.value) {
            return Err(MessageError::Duplicate);
        }
        if self.votes.slot_full(v.round, v.kind, sv.validator) {
            return Err(MessageError::SlotFull);
        }
        Ok(())
    }

    fn on_vote(&mut self, sv: SignedVote, checked: Checked, out: &mut Vec<Effect>) -> Result<(), MessageError> {
        let v = sv.vote;
        debug_assert_eq!(v.height, self.height);
        self.vote_gate(&sv)?;
        self.signature_ok(checked, || check::verify_vote(&self.ctx, &sv))?;
        let record = VoteRecord { value: v.value, signature: sv.signature };
        if let Added::Conflict(e) = self.votes.add(v.round, v.kind, sv.validator, record) {
            let first =
                SignedStatement { statement: Statement::Vote(Vote { value: e.value, ..v }), signature: e.signature };
            let second = SignedStatement { statement: Statement::Vote(v), signature: sv.signature };
            self.report(sv.validator, first, second, out);
        }
        Ok(())
    }

    /// L57–L67.
    fn on_timeout(&mut self, t: Timeout, out: &mut Vec<Effect>) {
        // L58, L62, L66: only for the current height and round.
        if t.height != self.height || t.round != self.round {
            return;
        }
        match t.step {
            // L57–L60: OnTimeoutPropose.
            Step::Propose if self.step == Step::Propose => {
                self.vote(VoteKind::Prevote, None, out); // L59
                self.set_step(Step::Prevote); // L60
            }
            // L61–L64: OnTimeoutPrevote.
            Step::Prevote if self.step == Step::Prevote => {
                self.vote(VoteKind::Precommit, None, out); // L63
                self.set_step(Step::Precommit); // L64
            }
            // L65–L67: OnTimeoutPrecommit.
            Step::Precommit => {
                if let Some(next) = self.round.checked_add(1) {
                    self.start_round(next, out); // L67
                }
            }
            Step::Propose | Step::Prevote => {}
        }
    }

    /// The answer to `getValue()` (L18); L19 proposes it with validRound −1.
    fn on_block_built(&mut self, height: u64, round: u32, block: Block, out: &mut Vec<Effect>) {
        if height != self.height || round != self.round || !self.awaiting_block || self.step != Step::Propose {
            return; // stale: the round moved on
        }
        self.awaiting_block = false;
        debug_assert_eq!(block.header.height, height, "driver built a block for the asked height");
        let id = BlockId::of(&block.header);
        self.propose(id, Arc::new(block), None, out);
    }

    // ---- the upon rules ---------------------------------------------------------

    /// Fires enabled rules until none is: every rule changes the state so that it
    /// cannot fire again (a step, a flag, the round or the height advances).
    fn progress(&mut self, out: &mut Vec<Effect>) {
        loop {
            let fired = self.rule_decide(out)
                || self.rule_skip_round(out)
                || self.rule_proposal(out)
                || self.rule_prevote_timeout(out)
                || self.rule_polka(out)
                || self.rule_nil_polka(out)
                || self.rule_precommit_timeout(out);
            self.check_invariants();
            if !fired {
                break;
            }
        }
    }

    /// L49–L54: a proposal of round r with 2f+1 precommits for its id, valid: decide.
    fn rule_decide(&mut self, out: &mut Vec<Effect>) -> bool {
        let q = self.ctx.quorum;
        let found = self.votes.rounds().find_map(|(r, rv)| {
            let id = rv.quorum_value(VoteKind::Precommit, q)?;
            self.blocks.get(&id).is_some_and(|e| e.valid == Some(true)).then_some((*r, id)) // L50
        });
        let Some((round, id)) = found else { return false };
        let block = Arc::clone(&self.blocks[&id].block);
        let body = id.checkpoint_body(&self.ctx.origin, self.height, round);
        let signatures: Vec<NoteSignature> = self
            .votes
            .round(round)
            .into_iter()
            .flat_map(|rv| rv.voters(VoteKind::Precommit, Some(id)))
            .map(|(i, rec)| {
                let v = &self.ctx.validators[i];
                NoteSignature { key_name: v.name.to_string(), key_id: v.key_id, signature: rec.signature }
            })
            .collect();
        assert!(signatures.len() >= q, "a decision carries a quorum of precommits");
        let certificate = Checkpoint { body, signatures };
        let mut next = Vec::new();
        self.enter_height(self.height + 1, &mut next); // L52–L54
        // The height's blocks and lock are gone from the machine: the decided block is
        // usually held by nothing else now, and leaves without a copy of its records.
        let block = Arc::try_unwrap(block).unwrap_or_else(|shared| (*shared).clone());
        out.push(Effect::Commit(Box::new(CertifiedBlock { block, certificate }))); // L51
        out.append(&mut next);
        true
    }

    /// L55–L56: f+1 validators sent messages for a round above ours: go there.
    fn rule_skip_round(&mut self, out: &mut Vec<Effect>) -> bool {
        let current = self.round;
        let target = self
            .votes
            .rounds()
            .rev()
            .take_while(|(r, _)| **r > current)
            .find(|(_, rv)| rv.sender_count() >= self.ctx.skip)
            .map(|(r, _)| *r);
        match target {
            Some(r) => {
                self.start_round(r, out); // L56
                true
            }
            None => false,
        }
    }

    /// L22–L33: a proposal of our round while in the propose step.
    fn rule_proposal(&mut self, out: &mut Vec<Effect>) -> bool {
        if self.step != Step::Propose {
            return false;
        }
        let value =
            self.proposals.get(&self.round).into_iter().flatten().find_map(|p| self.proposal_prevote(&p.proposal));
        let Some(value) = value else { return false };
        self.vote(VoteKind::Prevote, value, out); // L24/L26, L30/L32
        self.set_step(Step::Prevote); // L27, L33
        true
    }

    /// The prevote L22–L32 give for proposal `p` of our round, or `None` if no rule applies yet.
    fn proposal_prevote(&self, p: &Proposal) -> Option<Option<BlockId>> {
        let valid = self.blocks.get(&p.block).and_then(|e| e.valid)?; // wait for valid(v)
        match p.valid_round {
            // L22–L26, with PBTS: a fresh proposal must also have been timely.
            None => {
                let free = self.locked.is_none_or(|(_, v)| v == p.block); // L23
                let timely = self.timely.contains(&(p.round, p.block));
                Some((valid && free && timely).then_some(p.block))
            }
            // L28–L32: needs 2f+1 prevotes for id(v) in round vr < round_p.
            Some(vr) if vr < self.round => {
                let polka = self.votes.round(vr).map_or(0, |rv| rv.count(VoteKind::Prevote, &Some(p.block)));
                if polka < self.ctx.quorum {
                    return None;
                }
                let free = self.locked.is_none_or(|(lr, v)| lr <= vr || v == p.block); // L29
                Some((valid && free).then_some(p.block))
            }
            Some(_) => None, // no rule matches; timeoutPropose will
        }
    }

    /// L34–L35: 2f+1 prevotes for anything, first time in this round.
    fn rule_prevote_timeout(&mut self, out: &mut Vec<Effect>) -> bool {
        if self.step != Step::Prevote || self.prevote_timeout_armed {
            return false;
        }
        if self.votes.round(self.round).map_or(0, |rv| rv.total(VoteKind::Prevote)) < self.ctx.quorum {
            return false;
        }
        self.prevote_timeout_armed = true;
        self.schedule(Step::Prevote, out);
        true
    }

    /// L36–L43: a proposal of our round with 2f+1 prevotes for its id, valid, step ≥ prevote, first time.
    fn rule_polka(&mut self, out: &mut Vec<Effect>) -> bool {
        if self.step < Step::Prevote || self.polka_seen {
            return false;
        }
        let Some(rv) = self.votes.round(self.round) else { return false };
        let polka = self.proposals.get(&self.round).into_iter().flatten().map(|p| p.proposal.block).find(|id| {
            self.blocks.get(id).and_then(|e| e.valid) == Some(true)
                && rv.count(VoteKind::Prevote, &Some(*id)) >= self.ctx.quorum
        });
        let Some(id) = polka else { return false };
        self.polka_seen = true;
        if self.step == Step::Prevote {
            self.locked = Some((self.round, id)); // L38–L39
            self.vote(VoteKind::Precommit, Some(id), out); // L40
            self.set_step(Step::Precommit); // L41
        }
        self.valid = Some((self.round, id)); // L42–L43
        true
    }

    /// L44–L46: 2f+1 nil prevotes.
    fn rule_nil_polka(&mut self, out: &mut Vec<Effect>) -> bool {
        if self.step != Step::Prevote {
            return false;
        }
        if self.votes.round(self.round).map_or(0, |rv| rv.count(VoteKind::Prevote, &None)) < self.ctx.quorum {
            return false;
        }
        self.vote(VoteKind::Precommit, None, out); // L45
        self.set_step(Step::Precommit); // L46
        true
    }

    /// L47–L48: 2f+1 precommits for anything, first time in this round.
    fn rule_precommit_timeout(&mut self, out: &mut Vec<Effect>) -> bool {
        if self.precommit_timeout_armed {
            return false;
        }
        if self.votes.round(self.round).map_or(0, |rv| rv.total(VoteKind::Precommit)) < self.ctx.quorum {
            return false;
        }
        self.precommit_timeout_armed = true;
        self.schedule(Step::Precommit, out);
        true
    }

    // ---- actions --------------------------------------------------------------------

    /// L11–L21: StartRound(round).
    fn start_round(&mut self, round: u32, out: &mut Vec<Effect>) {
        assert!(round >= self.round, "rounds only increase within a height");
        self.round = round; // L12
        self.step = Step::Propose; // L13
        self.prevote_timeout_armed = false;
        self.polka_seen = false;
        self.precommit_timeout_armed = false;
        self.awaiting_block = false;
        if self.signer.as_ref().is_some_and(|s| s.index == self.ctx.proposer(self.height, round)) {
            // L14
            match self.valid {
                Some((vr, id)) if vr < round && self.blocks.contains_key(&id) => {
                    let block = Arc::clone(&self.blocks[&id].block);
                    self.propose(id, block, Some(vr), out); // L15–L16, L19
                }
                _ => {
                    self.awaiting_block = true; // L18: getValue()
                    out.push(Effect::BuildBlock { height: self.height, round });
                }
            }
        }
        self.schedule(Step::Propose, out); // L21
    }

    /// L52–L54 (and start-up): a new height, reset, replay its buffered messages.
    fn enter_height(&mut self, height: u64, out: &mut Vec<Effect>) {
        assert!(height >= self.height, "heights only increase");
        if let Some(ctx) = self.ahead.get(&height) {
            if !Arc::ptr_eq(ctx, &self.ctx) {
                self.ctx = Arc::clone(ctx);
                self.signer = self.key.as_ref().and_then(|k| signer_in(&self.ctx, k));
            }
        } else if self.governed && height > self.height {
            // Buffered messages were checked against a set we do not have for this height.
            self.future.clear();
        }
        self.ahead = self.ahead.split_off(&(height + 1));
        // A lock binds only at its height: past it, the sign state's block is not needed in
        // memory (the file keeps what was persisted, for a restart at that height).
        if let Some(s) = &mut self.sign_state
            && s.height < height
        {
            s.locked_block = None;
        }
        self.height = height;
        self.locked = None;
        self.valid = None;
        self.blocks.clear();
        self.proposals.clear();
        self.timely.clear();
        self.votes = VoteBook::new(self.ctx.n());
        self.reported.clear();
        self.round = 0;
        self.step = Step::Propose;
        let mut round = 0;
        let mut resend = Vec::new();
        // After a restart: keep the lock (with its block, also as validValue, which is
        // never older than the lock) and the round we last signed in, and re-send the votes
        // we signed at this height (identical bytes: signatures are deterministic).
        if let Some(s) = &self.sign_state
            && s.height == height
        {
            self.locked = s.locked;
            self.valid = s.locked;
            round = s.round;
            resend.clone_from(&s.votes);
            if let (Some((_, id)), Some(block)) = (s.locked, &s.locked_block) {
                self.blocks.insert(id, BlockEntry { block: Arc::clone(block), valid: None });
                out.push(Effect::ValidateBlock { height, id, block: Arc::clone(block) });
            }
        }
        let restored = !resend.is_empty();
        for (r, kind, value) in resend {
            let Some(signer) = &self.signer else { break };
            let vote = Vote { height, round: r, kind, value };
            let name = self.ctx.validators[usize::from(signer.index)].name.as_str();
            let signature = vote.sign(&self.ctx.origin, &self.ctx.chain_id, name, &signer.key);
            let sv = SignedVote { vote, validator: signer.index, signature };
            self.votes.add(r, kind, sv.validator, VoteRecord { value, signature });
            out.push(Effect::Broadcast(Message::Vote(sv)));
        }
        let buffered = std::mem::take(&mut self.future);
        self.round = round;
        // An idle chain's height waits for work, unless we signed here before a restart
        // or another validator's messages for it are already in.
        self.started = false;
        let waits = self.ctx.time.heartbeat_ms != 0 && !restored && self.locked.is_none();
        if !waits || buffered.iter().any(|(_, m, _)| m.height() == height) {
            self.ensure_started(out);
        }
        for (_, msg, received) in buffered {
            if msg.height() != height {
                continue;
            }
            // Already verified when buffered; errors here are only duplicates or rounds out of window.
            let _ = match msg {
                Message::Proposal(p) => self.on_proposal(p, Checked::Done(Ok(())), received, out),
                Message::Vote(v) => self.on_vote(v, Checked::Done(Ok(())), out),
            };
        }
    }

    /// L19: broadcast ⟨PROPOSAL, h_p, round_p, proposal, validRound_p⟩.
    fn propose(&mut self, id: BlockId, block: Arc<Block>, valid_round: Option<u32>, out: &mut Vec<Effect>) {
        if !self.authorize(Step::Propose, Some(id), out) {
            return;
        }
        let Some(signer) = &self.signer else { return };
        let proposal = Proposal { height: self.height, round: self.round, block: id, valid_round };
        let signature = proposal.sign(&self.ctx.chain_id, &signer.key);
        let index = signer.index;
        // Our own block (or validValue) is valid: the driver built it on the committed chain.
        self.blocks.entry(id).or_insert_with(|| BlockEntry { block: Arc::clone(&block), valid: Some(true) });
        self.timely.insert((self.round, id));
        let sp = SignedProposal { proposal, signature, block };
        self.votes.mark_sender(self.round, index);
        let kept = self.proposals.entry(self.round).or_default();
        if kept.len() < PROPOSALS_PER_ROUND_MAX {
            kept.push(sp.clone());
        }
        out.push(Effect::Broadcast(Message::Proposal(sp)));
    }

    /// Signs and broadcasts our prevote or precommit, counting it ourselves.
    fn vote(&mut self, kind: VoteKind, value: Option<BlockId>, out: &mut Vec<Effect>) {
        if self.signer.is_none() {
            return;
        }
        let step = match kind {
            VoteKind::Prevote => Step::Prevote,
            VoteKind::Precommit => Step::Precommit,
        };
        if !self.authorize(step, value, out) {
            return;
        }
        let Some(signer) = &self.signer else { return };
        let vote = Vote { height: self.height, round: self.round, kind, value };
        let name = self.ctx.validators[usize::from(signer.index)].name.as_str();
        let signature = vote.sign(&self.ctx.origin, &self.ctx.chain_id, name, &signer.key);
        let sv = SignedVote { vote, validator: signer.index, signature };
        self.votes.add(self.round, kind, sv.validator, VoteRecord { value, signature });
        out.push(Effect::Broadcast(Message::Vote(sv)));
    }

    /// The guard: may we sign at (height, round, step)? If so, the new record is
    /// persisted first (the effect precedes the broadcast).
    fn authorize(&mut self, step: Step, value: Option<BlockId>, out: &mut Vec<Effect>) -> bool {
        if let Some(s) = &self.sign_state
            && !s.permits(self.height, self.round, step, value)
        {
            self.refused += 1;
            return false;
        }
        let mut votes = match self.sign_state.take() {
            Some(s) if s.height == self.height => s.votes,
            _ => Vec::new(),
        };
        let kind = match step {
            Step::Propose => None,
            Step::Prevote => Some(VoteKind::Prevote),
            Step::Precommit => Some(VoteKind::Precommit),
        };
        if let Some(kind) = kind
            && !votes.contains(&(self.round, kind, value))
        {
            if votes.len() == SIGNED_VOTES_MAX {
                votes.remove(0);
            }
            votes.push((self.round, kind, value));
        }
        let locked_block = self.locked.and_then(|(_, id)| self.blocks.get(&id)).map(|e| Arc::clone(&e.block));
        let s =
            SignState { height: self.height, round: self.round, step, value, locked: self.locked, votes, locked_block };
        self.sign_state = Some(s.clone());
        out.push(Effect::PersistSignState(s));
        true
    }

    fn schedule(&self, step: Step, out: &mut Vec<Effect>) {
        let timeout = Timeout { height: self.height, round: self.round, step };
        out.push(Effect::ScheduleTimeout { timeout, after_ms: self.ctx.timeout_ms(step, self.round) });
    }

    fn set_step(&mut self, step: Step) {
        assert!(step > self.step, "steps only advance within a round");
        self.step = step;
    }

    fn report(&mut self, validator: ValidatorIndex, a: SignedStatement, b: SignedStatement, out: &mut Vec<Effect>) {
        let (_, round, slot) = a.statement.slot();
        if !self.reported.insert((validator, round, slot)) {
            return;
        }
        let name = self.ctx.validators[usize::from(validator)].name.clone();
        if let Some(e) = Equivocation::new(name, a, b) {
            out.push(Effect::Evidence(Box::new(e)));
        }
    }

    // ---- checks -----------------------------------------------------------------------

    /// The block matches the signed id and height, the valid round is below the round;
    /// returns the proposer the rotation names for (height, round).
    fn check_proposal_shape(&self, sp: &SignedProposal) -> Result<ValidatorIndex, MessageError> {
        check_proposal_shape(&self.ctx, sp)
    }

    fn check_invariants(&self) {
        if let Some((lr, _)) = self.locked {
            assert!(lr <= self.round, "locked round ≤ round");
            if let Some((vr, _)) = self.valid {
                assert!(vr >= lr, "valid round ≥ locked round");
            }
        }
        if let Some((vr, _)) = self.valid {
            assert!(vr <= self.round, "valid round ≤ round");
        }
        // Buffered messages are next-height ones, at most so many per validator of the next
        // height's set, which governance may make larger than this height's.
        let next_n = self.next_ctx().map_or(0, |c| c.n());
        assert!(self.future.len() <= FUTURE_MESSAGES_PER_VALIDATOR * self.ctx.n().max(next_n));
        assert!(self.proposals.values().all(|p| p.len() <= PROPOSALS_PER_ROUND_MAX));
        let proposals: usize = self.proposals.values().map(Vec::len).sum();
        assert!(self.blocks.len() <= proposals + 2, "one block per proposal, plus our own and a restored lock");
    }
}

/// The block matches the signed id and height, the valid round is below the round;
/// returns the proposer the rotation of `ctx` (the set in force at the proposal's
/// height) names for (height, round).
fn check_proposal_shape(ctx: &Context, sp: &SignedProposal) -> Result<ValidatorIndex, MessageError> {
    let p = &sp.proposal;
    if sp.block.header.height != p.height || BlockId::of(&sp.block.header) != p.block {
        return Err(MessageError::BlockMismatch);
    }
    if let Some(vr) = p.valid_round
        && vr >= p.round
    {
        return Err(MessageError::BadValidRound { valid_round: vr, round: p.round });
    }
    let proposer = ctx.proposer(p.height, p.round);
    // A fresh block names the proposer of its round; a re-proposed one (a POL) keeps
    // the name of the round it was first proposed in, which 2f+1 prevotes vouch for.
    let expected = &ctx.validators[usize::from(proposer)].name;
    if p.valid_round.is_none() && sp.block.header.proposer != *expected {
        return Err(MessageError::WrongProposer {
            expected: expected.to_string(),
            got: sp.block.header.proposer.to_string(),
        });
    }
    Ok(proposer)
}

/// This validator's place in `ctx`'s set, if its key is there.
fn signer_in(ctx: &Context, key: &SecretKey) -> Option<Signer> {
    let public = key.public();
    let i = ctx.validators.iter().position(|v| v.key.public() == public)?;
    Some(Signer { index: ValidatorIndex::try_from(i).ok()?, key: SecretKey::from_seed(key.seed()) })
}

#[cfg(test)]
mod tests {
    use credence_ledger::block::BlockHeader;
    use credence_ledger::hash::{Hash, HashOf};
    use credence_ledger::merkle;
    use credence_ledger::sig::SecretKey;

    use super::*;
    use crate::check::demo_context;

    struct Fixture {
        ctx: Arc<Context>,
        keys: Vec<SecretKey>,
    }

    impl Fixture {
        fn new() -> Fixture {
            let (ctx, keys) = demo_context();
            Fixture { ctx: Arc::new(ctx), keys }
        }

        fn machine(&self, index: ValidatorIndex) -> Consensus {
            let key = SecretKey::from_seed(self.keys[usize::from(index)].seed());
            Consensus::new(Arc::clone(&self.ctx), Some(Signer { index, key }), 1, None)
        }

        fn block(&self, height: u64) -> Block {
            let header = BlockHeader {
                height,
                prev: HashOf::from_hash(self.ctx.chain_id),
                time_ms: 7,
                proposer: self.ctx.validators[0].name.clone(),
                tree_size: 0,
                tree_root: Hash(merkle::empty_root()),
                validator_set: Hash([1; 32]),
            };
            Block { header, leaves: Vec::new() }
        }

        fn proposal(&self, block: &Block) -> Message {
            let proposer = self.ctx.proposer(block.header.height, 0);
            let proposal = Proposal {
                height: block.header.height,
                round: 0,
                block: BlockId::of(&block.header),
                valid_round: None,
            };
            let signature = proposal.sign(&self.ctx.chain_id, &self.keys[usize::from(proposer)]);
            Message::Proposal(SignedProposal { proposal, signature, block: Arc::new(block.clone()) })
        }

        fn vote(&self, by: ValidatorIndex, height: u64, kind: VoteKind, value: Option<BlockId>) -> Message {
            let vote = Vote { height, round: 0, kind, value };
            let name = self.ctx.validators[usize::from(by)].name.as_str();
            let signature = vote.sign(&self.ctx.origin, &self.ctx.chain_id, name, &self.keys[usize::from(by)]);
            Message::Vote(SignedVote { vote, validator: by, signature })
        }
    }

    fn corrupted(mut msg: Message) -> Message {
        match &mut msg {
            Message::Proposal(p) => p.signature.0[40] ^= 1,
            Message::Vote(v) => v.signature.0[40] ^= 1,
        }
        msg
    }

    fn input(msg: Message) -> Input {
        match msg {
            Message::Proposal(p) => Input::Proposal(p),
            Message::Vote(v) => Input::Vote(v),
        }
    }

    /// Answers every `ValidateBlock` among `effects` with "valid", appending what follows.
    fn validate_all(m: &mut Consensus, effects: &mut Vec<Effect>) {
        let mut i = 0;
        while i < effects.len() {
            if let Effect::ValidateBlock { height, id, .. } = &effects[i] {
                let more = m.step(Input::BlockValidated { height: *height, id: *id, valid: true }).unwrap();
                effects.extend(more);
            }
            i += 1;
        }
    }

    /// `step_messages` is `step` on each message in order: the same effects and the same
    /// verdicts, through a decision in the middle of the batch, bad signatures (checked up
    /// front, and checked alone once a message became admissible on the way), duplicates,
    /// outsiders, past and future heights.
    #[test]
    fn step_messages_equals_stepping_one_by_one() {
        let f = Fixture::new();
        let b1 = f.block(1);
        let x = Some(BlockId::of(&b1.header));
        let (prevote, precommit) = (VoteKind::Prevote, VoteKind::Precommit);
        let mut outsider = f.vote(1, 1, prevote, x);
        if let Message::Vote(v) = &mut outsider {
            v.validator = 9;
        }
        let batch = vec![
            f.vote(0, 1, prevote, x),
            corrupted(f.vote(2, 1, prevote, x)),
            f.vote(2, 1, prevote, x),
            f.vote(2, 1, prevote, x),
            outsider,
            f.vote(3, 1, prevote, x), // polka: validator 1 precommits
            f.vote(0, 1, precommit, x),
            f.vote(2, 1, precommit, x), // quorum with our own: decide height 1
            f.vote(3, 1, precommit, x),
            f.vote(0, 2, prevote, None), // next height at the start, current by now
            corrupted(f.vote(2, 2, prevote, None)), // likewise, with a bad signature
            f.vote(3, 3, prevote, None), // too far ahead at the start, next height by now
            corrupted(f.vote(0, 3, prevote, None)), // likewise: checked alone, rejected
            f.vote(0, 4, prevote, None),
        ];
        let (mut one, mut many) = (f.machine(1), f.machine(1));
        let (mut effects_one, mut effects_many) = (one.start(), many.start());
        // The proposal first, with its block validated, then the votes.
        effects_one.extend(one.step(input(f.proposal(&b1))).unwrap());
        let (effects, results) = many.step_messages(vec![f.proposal(&b1)]);
        assert_eq!(results, vec![Ok(())]);
        effects_many.extend(effects);
        validate_all(&mut one, &mut effects_one);
        validate_all(&mut many, &mut effects_many);
        let mut results_one = Vec::new();
        for msg in batch.clone() {
            match one.step(input(msg)) {
                Ok(effects) => {
                    effects_one.extend(effects);
                    results_one.push(Ok(()));
                }
                Err(e) => results_one.push(Err(e)),
            }
        }
        let (effects, results_many) = many.step_messages(batch);
        effects_many.extend(effects);
        assert_eq!(results_many, results_one);
        assert_eq!(format!("{effects_many:?}"), format!("{effects_one:?}"));
        let bad = |r: &Result<(), MessageError>| matches!(r, Err(MessageError::BadSignature(_)));
        assert!(bad(&results_many[1]) && bad(&results_many[10]) && bad(&results_many[12]));
        assert_eq!(results_many[3], Err(MessageError::Duplicate));
        assert_eq!(results_many[4], Err(MessageError::NotValidator(9)));
        assert_eq!(results_many[8], Err(MessageError::PastHeight { got: 1, current: 2 }));
        assert_eq!(results_many[13], Err(MessageError::FutureHeight { got: 4, current: 2 }));
        assert!([0, 2, 5, 6, 7, 9, 11].iter().all(|i| results_many[*i].is_ok()));
        assert!(effects_many.iter().any(|e| matches!(e, Effect::Commit(cb) if cb.block == b1)));
        assert_eq!((many.height(), one.height()), (2, 2));
        assert_eq!(many.step_messages(Vec::new()).1, Vec::new());
    }

    /// A batch with a bad signature among good ones still counts exactly the good ones.
    #[test]
    fn a_bad_signature_in_a_batch_rejects_only_its_message() {
        let f = Fixture::new();
        let x = Some(BlockId::of(&f.block(1).header));
        let mut m = f.machine(1);
        m.start();
        let batch = vec![
            f.vote(0, 1, VoteKind::Prevote, x),
            corrupted(f.vote(2, 1, VoteKind::Prevote, x)),
            f.vote(3, 1, VoteKind::Prevote, x),
        ];
        let (_, results) = m.step_messages(batch);
        assert_eq!(results[0], Ok(()));
        assert!(matches!(results[1], Err(MessageError::BadSignature(_))));
        assert_eq!(results[2], Ok(()));
        let counted = m.known_messages().len();
        assert_eq!(counted, 2, "the two good prevotes are kept, the bad one is not");
    }
}
