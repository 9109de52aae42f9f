//! The replica core: consensus, mempool, block building and validation, sync decisions and evidence, I/O-free, generic over [`Store`], with time as an input.
//!
//! The node's tokio driver and the simulator both host exactly this: they hand it
//! messages, sync answers and the passing of time, and carry out the [`Action`]s it
//! returns, in order. Everything else — which block to build, whether a proposal
//! is valid and timely, when to commit, when a height may wait for work, when and
//! from where to sync, what to do with an equivocation — is decided here.
//!
//! Time comes as a [`Clock`]: the wall clock (block times and PBTS timeliness; it
//! may be wrong on a faulty validator) and a monotonic clock (timeouts, heartbeat,
//! retries; a wrong wall clock does not speed up or stall them).
//!
//! Invariant: the effects of one input are carried out in the order the machine
//! emitted them, and an input they produce (a built or validated block) is stepped
//! only after the whole list, so a [`Action::PersistSignState`] is never followed
//! by an older one: the persisted sign state only moves forward.
//! Invariant: a proposal reaches the machine (to be cached, forwarded or validated)
//! only after its leaves match its header on our tip ([`verify::check_leaves`]).
//! Invariant: a block reaches the store only through the verification core: a
//! [`ValidProposal`] certified at commit, or `verify_block` for anything else.
//! Invariant: sync holds at most [`SYNC_REQUESTS_IN_FLIGHT_MAX`] requests out and answers
//! waiting together; a synced run is committed with deferred durability and flushed before
//! any action of the same input is handed out, so nothing acts on a block a crash could lose.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use credence_ledger::attestation::{AttestationBody, Claim};
use credence_ledger::block::{Block, BlockHash, CertifiedBlock, Leaf, ValidBlock};
use credence_ledger::genesis::ConsensusParams;
use credence_ledger::governance::Roster;
use credence_ledger::ids::MemberName;
use credence_ledger::merkle::Frontier;
use credence_ledger::sig::SecretKey;
use credence_ledger::store::{Store, StoreError};
use credence_ledger::verify::{
    self, Ahead, CertificateSignatures, ChainContext, LeavesMatch, Tip, ValidProposal, VerifyError,
};
use credence_ledger::vote::{BlockId, Equivocation};

use crate::check;
use crate::compact::{CompactProposal, Filling};
use crate::evidence::EvidencePool;
use crate::mempool::{Mempool, Origin, Verifier};
use crate::sync::{SYNC_ANSWER_BYTES_MAX, SYNC_BLOCKS_MAX, SyncRequest};
use crate::{Consensus, Context, Effect, Input, Message, MessageError, SignState, SignedProposal, Step, Timeout};

/// Valid proposals kept for their commit (each holds its block's state change).
pub const VALID_PROPOSALS_MAX: usize = 8;
/// Leaf checks kept between a proposal's arrival and its validation.
pub const LEAF_CHECKS_MAX: usize = 8;
/// Proposals for the height after the machine's, kept (unchecked) until our tip gets there.
pub const EARLY_PROPOSALS_MAX: usize = 8;
/// Compact proposals for the next height kept while their records are missing from the
/// mempool ([`crate::compact`]): only round 0's, signed by its proposer, so at most the
/// statements one proposer may sign for one round.
pub const COMPACT_FILLING_MAX: usize = crate::PROPOSALS_PER_ROUND_MAX;
/// A proposer still short of a polka this long after sending its compact proposal (and at
/// most half the propose timeout) sends it whole: a receiver whose full mempool refused
/// one of its records could never fill it, and should not need a round change to vote.
pub const COMPACT_WHOLE_AFTER_MS: u64 = 300;
/// A proposer with nothing to propose waits at most this long (and at most half the
/// propose timeout) for records before proposing an empty block.
pub const EMPTY_BLOCK_WAIT_MS: u64 = 1_000;
/// Under load, a proposer in round 0 whose mempool holds less than half a block waits up
/// to this long after its last commit (and at most half the propose timeout) for more
/// records. A height costs every validator about the same work whatever its size (votes
/// signed and checked, sign-state fsyncs, a store transaction, a dozen gossip messages:
/// about 3.4 ms of CPU per node on the reference machine, docs/BENCHMARKS.md §Throughput),
/// so heights of 300 records at 10,000/s spent a third of the nodes' CPU on it.
pub const BLOCK_FILL_WAIT_MS: u64 = 100;
/// The chain is under load, and a proposer waits to fill its block ([`BLOCK_FILL_WAIT_MS`]),
/// only when the last block carried at least this many records: a light load keeps its latency.
pub const BLOCK_FILL_LOAD_RECORDS: usize = 100;
/// After a failed sync request, or an answer with nothing past the tip, no request is sent
/// for this long.
pub const SYNC_RETRY_MS: u64 = 1_000;
/// A sync request unanswered this long is forgotten: its heights may be asked again (of
/// the next peer). Longer than [`SYNC_RETRY_MS`]: an answer of 8 MiB is fetched and its
/// signatures checked before it gets here, several at once on a busy machine.
pub const SYNC_ANSWER_WAIT_MS: u64 = 2_000;
/// Sync requests out at once, for consecutive height ranges (the host sends each to the
/// next peer in turn), plus answers held until the blocks below them arrive: at most this
/// many answers of at most the host's response bound each (the node's: 8 MiB, or one
/// maximal block) are held by the replica.
pub const SYNC_REQUESTS_IN_FLIGHT_MAX: usize = 4;
/// Timeouts pending at once (the machine asks for at most one per step and round).
pub const TIMERS_MAX: usize = 256;
/// Consensus contexts (one per validator set and parameters met) kept for reuse.
pub const CONTEXTS_CACHED_MAX: usize = 4;

// Both proposals a round may hold (the second is evidence) keep their leaf check
// until validated, and a valid proposal outlives a round change.
const _: () = assert!(LEAF_CHECKS_MAX >= crate::PROPOSALS_PER_ROUND_MAX);
const _: () = assert!(VALID_PROPOSALS_MAX >= crate::PROPOSALS_PER_ROUND_MAX);

/// The two clocks, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    /// Since the Unix epoch, as this validator's wall clock says (block times, PBTS).
    pub wall_ms: u64,
    /// Monotonic, from any origin (timeouts, heartbeat, retries).
    pub mono_ms: u64,
}

/// This node's member identity: its name and the key that signs its evidence
/// records (and its votes, if the genesis makes it a validator).
#[derive(Debug)]
pub struct Identity {
    pub name: MemberName,
    pub key: SecretKey,
}

/// What the host must do, in order. A [`Action::PersistSignState`] must be durable
/// before any later action is carried out.
#[derive(Clone, Debug)]
pub enum Action {
    PersistSignState(SignState),
    /// Send to every validator.
    Broadcast(Message),
    /// Send our round-0 proposal to every validator as a compact proposal ([`crate::compact`]).
    BroadcastCompact(Arc<CompactProposal>),
    /// Nothing happened for a while: send again every message known at this height
    /// (ours and others'), as gossip would have.
    Resend(Vec<Message>),
    /// Ask a peer that may be ahead (the host picks which) for blocks.
    RequestSync(SyncRequest),
    /// A block was stored (decided here, or fetched by sync).
    Committed {
        height: u64,
        hash: BlockHash,
        time_ms: u64,
        records: usize,
        synced: bool,
    },
    /// Something worth a log line or a metric; nothing to do.
    Notice(Notice),
}

/// Events the host may log or count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    ProposalInvalid { height: u64, error: String },
    DecidedBlockInvalid { height: u64, error: String },
    SyncBlockInvalid { height: u64, error: String },
    BuildRecordRefused { index: usize, error: String },
    EvidenceNotAdmitted(String),
    MempoolReset(String),
}

/// The gossip verdict on a received message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Counted: forward it.
    Accept,
    /// Invalid (a bad signature, a tampered block): do not forward; the sender misbehaved.
    Reject(MessageError),
    /// Not counted (a duplicate, out of window, not yet checkable): do not forward, no blame.
    Ignore(MessageError),
}

/// What a sync answer did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncOutcome {
    pub stored: u64,
    /// The requests whose answers held a block that does not decode, does not follow the
    /// one before it or does not verify: the peers that answered them are faulty. (An
    /// answer held back for the blocks below it is judged when it is applied, so this may
    /// name an earlier answer than the one just handed in.)
    pub bad: Vec<SyncRequest>,
}

/// What a host needs to check the signatures of sync answers ahead of the tip, on
/// threads of its own ([`SyncChecker::check`]); the replica then applies the rules and
/// commits ([`Replica::on_sync_answer`]). Cheap to clone.
#[derive(Clone, Debug)]
pub struct SyncChecker {
    ctx: Arc<ChainContext>,
    /// The roster in force at the tip's next-but-one height (the latest known): signatures
    /// of later blocks are checked against it, and checked again on the tip if governance
    /// changed it by then.
    roster: Arc<Roster>,
    /// The tip's height when the checker was made: blocks up to it are skipped unread.
    tip_height: u64,
}

impl SyncChecker {
    /// Decodes an answer to `request` and checks its blocks' signatures
    /// ([`verify::check_signatures_ahead`]) on this thread only: a host checks several
    /// answers at once, which needs no barrier per block between threads. Blocks after
    /// one that does not decode or does not follow the one before it are dropped, and the
    /// answer is marked bad. Blocks at or below the tip the checker was made at are skipped.
    pub fn check(&self, request: SyncRequest, blocks: Vec<Vec<u8>>) -> SyncAnswer {
        let records_max = self.ctx.genesis.consensus.block_records_max as usize;
        let mut checked = Vec::with_capacity(blocks.len().min(SYNC_BLOCKS_MAX as usize));
        let mut bad = None;
        for (i, bytes) in blocks.iter().take(SYNC_BLOCKS_MAX as usize).enumerate() {
            let expected = request.from_height.saturating_add(i as u64);
            if expected <= self.tip_height {
                continue;
            }
            let cb = match credence_ledger::block::decode_certified_exact(bytes, records_max) {
                Ok(cb) if cb.block.header.height == expected => cb,
                Ok(cb) => {
                    let got = cb.block.header.height;
                    bad = Some((expected, format!("height: expected {expected} in the answer, got {got}")));
                    break;
                }
                Err(e) => {
                    bad = Some((expected, e.to_string()));
                    break;
                }
            };
            checked.push(verify::check_signatures_ahead(&self.ctx, &self.roster, cb, 1));
        }
        if bad.is_none() && blocks.len() > SYNC_BLOCKS_MAX as usize {
            bad = Some((request.from_height, format!("more than {SYNC_BLOCKS_MAX} blocks in one answer")));
        }
        let largest_block_bytes = blocks.iter().map(Vec::len).max();
        SyncAnswer { request, blocks: checked, bad, largest_block_bytes }
    }
}

/// A sync answer decoded and its signatures checked ahead, for [`Replica::on_sync_answer`].
#[derive(Debug)]
pub struct SyncAnswer {
    request: SyncRequest,
    /// Consecutive blocks from the request's height, or from the first past the checker's tip.
    blocks: Vec<Ahead>,
    /// The first block that did not decode or did not follow: (height, why).
    bad: Option<(u64, String)>,
    /// The largest block the peer sent, encoded (those at or below the checker's tip
    /// included); `None` if it sent none.
    largest_block_bytes: Option<usize>,
}

impl SyncAnswer {
    pub fn request(&self) -> SyncRequest {
        self.request
    }

    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }
}

/// The sync window: requests out for consecutive height ranges, and answers held until
/// the blocks below them are stored. `out.len() + ready.len()` ≤ [`SYNC_REQUESTS_IN_FLIGHT_MAX`].
#[derive(Debug)]
struct SyncWindow {
    /// Requests out: first height → (blocks asked, monotonic time it was sent).
    out: BTreeMap<u64, (u32, u64)>,
    /// Answers waiting for the blocks below them: first block's height → (request, blocks).
    ready: BTreeMap<u64, (SyncRequest, Vec<Ahead>)>,
    /// No request before this monotonic time (a request failed).
    retry_at_mono_ms: u64,
    /// A peer had no block at this height: ask for none from here on, until behind again.
    end: Option<u64>,
    /// Blocks are wanted: at start (a fresh node asks at once), when behind, and while
    /// answers bring blocks.
    active: bool,
    /// Blocks a request asks for, 1 to [`SYNC_BLOCKS_MAX`] ([`blocks_per_answer`]): as many
    /// blocks as the largest of the last answer fit [`SYNC_ANSWER_FILL`] of an answer's
    /// bytes, at first the genesis's largest block. A request for more than its answer holds
    /// leaves a gap after it that the requests after it do not cover: their answers wait
    /// for another round trip, and the driver with them.
    blocks_per_request: u32,
}

impl SyncWindow {
    /// An active window (a fresh replica asks at once) for blocks of at most `block_bytes_max`.
    fn new(block_bytes_max: usize) -> Self {
        SyncWindow {
            out: BTreeMap::new(),
            ready: BTreeMap::new(),
            retry_at_mono_ms: 0,
            end: None,
            active: true,
            blocks_per_request: blocks_per_answer(block_bytes_max),
        }
    }

    /// The first range from `from` on that no request out or answer held covers: (first
    /// height, blocks), below `end`.
    fn next_gap(&self, from: u64) -> Option<(u64, u32)> {
        let mut covered: Vec<(u64, u64)> = self
            .out
            .iter()
            .map(|(f, (n, _))| (*f, f.saturating_add(u64::from(*n))))
            .chain(self.ready.iter().map(|(f, (_, b))| (*f, f.saturating_add(b.len() as u64))))
            .collect();
        covered.sort_unstable();
        let mut h = from;
        let mut room = u64::from(self.blocks_per_request);
        for (start, end) in covered {
            if end <= h {
                continue;
            }
            if start > h {
                room = room.min(start - h);
                break;
            }
            h = end;
        }
        if let Some(end) = self.end {
            if h >= end {
                return None;
            }
            room = room.min(end - h);
        }
        Some((h, u32::try_from(room).unwrap_or(SYNC_BLOCKS_MAX)))
    }

    fn is_full(&self) -> bool {
        self.out.len() + self.ready.len() >= SYNC_REQUESTS_IN_FLIGHT_MAX
    }
}

/// Of an answer's [`SYNC_ANSWER_BYTES_MAX`], the share requests are sized to fill: the blocks
/// after the largest seen may be a quarter larger and their answer is still not cut.
const SYNC_ANSWER_FILL: (usize, usize) = (3, 4);

/// Blocks to ask for in one request when the largest block is `block_bytes` encoded: as
/// many as fill [`SYNC_ANSWER_FILL`] of an answer, 1 to [`SYNC_BLOCKS_MAX`].
fn blocks_per_answer(block_bytes: usize) -> u32 {
    let fill = SYNC_ANSWER_BYTES_MAX / SYNC_ANSWER_FILL.1 * SYNC_ANSWER_FILL.0;
    let blocks = fill / block_bytes.saturating_add(4).max(1);
    u32::try_from(blocks).unwrap_or(u32::MAX).clamp(1, SYNC_BLOCKS_MAX)
}

/// A fatal error: the store failed. Nothing else is.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("store: the stored nodes give a Merkle frontier other than the head's: {0}")]
    Frontier(String),
}

/// A proposer's block it could not build yet: it waits for records or for its clock.
#[derive(Clone, Copy, Debug)]
struct PendingBuild {
    height: u64,
    round: u32,
    due_mono_ms: u64,
}

/// Counters a host or a test may read (the node's metrics count actions and verdicts).
#[derive(Clone, Copy, Debug, Default)]
pub struct ReplicaStats {
    pub proposals_invalid: u64,
    /// Compact proposals received complete from the mempool on arrival.
    pub compact_filled: u64,
    /// Compact proposals completed later, as the mempool received their missing records.
    pub compact_filled_later: u64,
    /// Compact proposals dropped incomplete (the tip moved on, or no room).
    pub compact_dropped: u64,
    /// Our compact proposals sent again whole for want of a polka ([`COMPACT_WHOLE_AFTER_MS`]).
    pub compact_sent_whole: u64,
    /// Decided blocks committed from their `ValidProposal` (only the certificate checked).
    pub commits_certified_only: u64,
}

/// A message for the height after the next, kept until the tip gets there.
#[derive(Debug)]
enum Early {
    Message(Message),
    /// With the peer that sent it.
    Compact(Arc<CompactProposal>, MemberName),
}

impl Early {
    fn height(&self) -> u64 {
        match self {
            Early::Message(m) => m.height(),
            Early::Compact(c, _) => c.proposal.height,
        }
    }
}

/// Whether a proposer in round 0 waits for its block to fill ([`BLOCK_FILL_WAIT_MS`]).
#[derive(Clone, Copy, Debug)]
struct Fill {
    last_block_records: usize,
    last_commit_mono_ms: u64,
    /// Half the propose timeout: the others must not give up on the proposal.
    wait_max_ms: u64,
}

impl Fill {
    /// The monotonic time to build at, if the proposer should wait: the chain is under load
    /// ([`BLOCK_FILL_LOAD_RECORDS`]), the mempool holds (`records` ready, `bytes` in all)
    /// less than half of either block bound, and the wait after the last commit has not passed.
    fn wait_until(&self, now_mono_ms: u64, (records, bytes): (usize, usize), params: &ConsensusParams) -> Option<u64> {
        let until = self.last_commit_mono_ms.saturating_add(BLOCK_FILL_WAIT_MS.min(self.wait_max_ms));
        let under_load = self.last_block_records >= BLOCK_FILL_LOAD_RECORDS;
        let small = records < params.block_records_max as usize / 2 && bytes < params.block_bytes_max as usize / 2;
        (under_load && small && now_mono_ms < until).then_some(until)
    }
}

/// One validator's (or observer's) replica. See the module documentation.
#[derive(Debug)]
pub struct Replica<S> {
    ctx: Arc<ChainContext>,
    /// Consensus contexts of the rosters met lately, at most [`CONTEXTS_CACHED_MAX`].
    contexts: VecDeque<Arc<Context>>,
    store: S,
    mempool: Arc<Mutex<Mempool>>,
    verifier: Verifier,
    me: Option<Identity>,
    consensus: Option<Consensus>,
    tip: Tip,
    evidence: EvidencePool,
    leaf_checks: VecDeque<LeavesMatch>,
    valid: VecDeque<ValidProposal>,
    early: VecDeque<Early>,
    /// Compact proposals for the next height waiting for records, at most [`COMPACT_FILLING_MAX`].
    filling: Vec<Filling>,
    /// Our compact proposal, and when to send it whole if it has not got a polka
    /// ([`COMPACT_WHOLE_AFTER_MS`]).
    compact_sent: Option<(SignedProposal, u64)>,
    timers: BTreeMap<(u64, u64), Timeout>,
    timer_seq: u64,
    pending_build: Option<PendingBuild>,
    now: Clock,
    last_commit_mono_ms: u64,
    /// Records in the last block stored (see [`BLOCK_FILL_LOAD_RECORDS`]).
    last_block_records: usize,
    last_progress_mono_ms: u64,
    /// The highest height a message showed that someone is at.
    seen_height: u64,
    sync: SyncWindow,
    /// The roster in force at the tip's next-but-one height (for [`SyncChecker`]).
    sync_roster: Arc<Roster>,
    /// The last sign state handed out for persisting: (height, round, step).
    persisted: Option<(u64, u32, Step)>,
    /// [`Replica::start`] ran: consensus may start heights.
    running: bool,
    pub stats: ReplicaStats,
}

impl<S: Store> Replica<S> {
    /// A replica on `store`'s chain. `me` is this node's member identity (if any); it
    /// runs consensus if that member is a validator. `sign_state` is what it last
    /// persisted. Call [`Replica::start`] next.
    pub fn new(
        ctx: Arc<ChainContext>,
        store: S,
        mempool: Arc<Mutex<Mempool>>,
        me: Option<Identity>,
        sign_state: Option<SignState>,
        now: Clock,
    ) -> Result<Replica<S>, ReplicaError> {
        let tip = tip_of(&ctx, &store)?;
        let persisted = sign_state.as_ref().map(|s| (s.height, s.round, s.step));
        let verifier =
            Verifier::new(Arc::clone(&ctx), mempool.lock().unwrap_or_else(PoisonError::into_inner).in_force());
        let sync_roster = Arc::clone(ctx.genesis_roster());
        let block_bytes_max = ctx.genesis.consensus.block_bytes_max as usize;
        let mut replica = Replica {
            verifier,
            ctx,
            contexts: VecDeque::new(),
            store,
            mempool,
            me,
            consensus: None,
            tip,
            evidence: EvidencePool::default(),
            leaf_checks: VecDeque::new(),
            valid: VecDeque::new(),
            early: VecDeque::new(),
            filling: Vec::new(),
            compact_sent: None,
            timers: BTreeMap::new(),
            timer_seq: 0,
            pending_build: None,
            now,
            last_commit_mono_ms: now.mono_ms,
            last_block_records: 0,
            last_progress_mono_ms: now.mono_ms,
            seen_height: 0,
            sync: SyncWindow::new(block_bytes_max),
            sync_roster,
            persisted,
            running: false,
            stats: ReplicaStats::default(),
        };
        replica.follow_governance(sign_state)?;
        Ok(replica)
    }

    /// The consensus context of the set in force at `height` (at most two heights past
    /// the tip: later changes are not known yet).
    fn context_at(&mut self, height: u64) -> Result<Arc<Context>, ReplicaError> {
        let (_, roster) = self.ctx.in_force(&self.store, height)?;
        if let Some(c) = self.contexts.iter().find(|c| c.digest == roster.digest) {
            return Ok(Arc::clone(c));
        }
        let c = Arc::new(Context::in_force(&self.ctx.genesis, &roster));
        if self.contexts.len() >= CONTEXTS_CACHED_MAX {
            self.contexts.pop_front();
        }
        self.contexts.push_back(Arc::clone(&c));
        Ok(c)
    }

    /// After the tip moved (or at start): what is in force at the next height goes to
    /// the mempool and verifiers, the next two heights' validator sets to consensus; a
    /// member that governance makes a validator starts its consensus machine.
    fn follow_governance(&mut self, sign_state: Option<SignState>) -> Result<(), ReplicaError> {
        let next = self.tip.height + 1;
        let (_, roster) = self.ctx.in_force(&self.store, next)?;
        self.pool().follow_roster(next, roster);
        self.sync_roster = self.ctx.in_force(&self.store, next + 1)?.1;
        let current = self.context_at(next)?;
        let after = self.context_at(next + 1)?;
        if self.consensus.is_none()
            && let Some(me) = &self.me
        {
            let key = me.key.public();
            let validates = |c: &Context| c.validators.iter().any(|v| v.key.public() == key);
            if validates(&current) || validates(&after) {
                let seed = me.key.seed();
                let machine = Consensus::new(Arc::clone(&current), None, next, sign_state);
                self.consensus = Some(machine.with_key(SecretKey::from_seed(seed)));
                if self.running {
                    let effects = self.consensus.as_mut().map(Consensus::start).unwrap_or_default();
                    let mut out = Vec::new();
                    self.apply(effects, &mut out)?;
                    debug_assert!(out.iter().all(|a| !matches!(a, Action::Broadcast(_))), "a new machine waits");
                }
            }
        }
        if let Some(c) = self.consensus.as_mut() {
            c.provide_context(next, current);
            c.provide_context(next + 1, after);
        }
        Ok(())
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// The member that signed `msg` (a proposal's proposer, a vote's validator), by
    /// the validator set in force at its height; `None` if that height's set is not
    /// known yet or the index is outside it.
    pub fn signer_name(&mut self, msg: &Message) -> Option<MemberName> {
        let (height, index) = match msg {
            Message::Proposal(p) => (p.proposal.height, None),
            Message::Vote(v) => (v.vote.height, Some(v.validator)),
        };
        if height > self.tip.height + 2 {
            return None;
        }
        let c = self.context_at(height).ok()?;
        let index = match (index, msg) {
            (Some(i), _) => i,
            (None, Message::Proposal(p)) => c.proposer(p.proposal.height, p.proposal.round),
            (None, Message::Vote(_)) => return None,
        };
        c.validators.get(usize::from(index)).map(|v| v.name.clone())
    }
    /// The store back, when the replica stops (or crashes, in the simulator).
    pub fn into_store(self) -> S {
        self.store
    }
    pub fn mempool(&self) -> &Arc<Mutex<Mempool>> {
        &self.mempool
    }
    pub fn tip(&self) -> &Tip {
        &self.tip
    }
    pub fn consensus(&self) -> Option<&Consensus> {
        self.consensus.as_ref()
    }

    /// Whether this replica looks behind its peers: a message showed a later height,
    /// or nothing was committed for two full rounds while the height was under way.
    pub fn is_behind(&self) -> bool {
        if self.seen_height > self.tip.height + 1 {
            return true;
        }
        let p = &self.ctx.genesis.consensus;
        let round_ms = p.timeout_propose_ms + p.timeout_prevote_ms + p.timeout_precommit_ms;
        let working = self.consensus.as_ref().is_none_or(Consensus::is_started);
        let idle_ms = if working { 0 } else { self.ctx.genesis.time.heartbeat_ms };
        self.now.mono_ms.saturating_sub(self.last_commit_mono_ms) > 2 * round_ms + idle_ms
    }

    /// The monotonic time at which [`Replica::on_tick`] has something to do.
    pub fn next_wake_mono_ms(&self) -> u64 {
        let timer = self.timers.keys().next().map(|(t, _)| *t);
        let build = self.pending_build.map(|b| b.due_mono_ms);
        let heartbeat = self.idle_heartbeat_due();
        let resend = self.last_progress_mono_ms.saturating_add(self.ctx.genesis.consensus.timeout_propose_ms);
        let whole = self.compact_sent.as_ref().map(|(_, due)| *due);
        // A request to forget, or a fresh node's first request to retry.
        let sync_forget = self.sync.out.values().map(|(_, sent)| sent.saturating_add(SYNC_ANSWER_WAIT_MS)).min();
        let sync_retry =
            (self.sync.active && self.sync.out.is_empty() && self.sync.retry_at_mono_ms > self.now.mono_ms)
                .then_some(self.sync.retry_at_mono_ms);
        [timer, build, heartbeat, Some(resend), whole, sync_forget, sync_retry]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Starts consensus (after [`Replica::new`]).
    pub fn start(&mut self, now: Clock) -> Result<Vec<Action>, ReplicaError> {
        self.set_now(now);
        let mut out = Vec::new();
        if std::mem::replace(&mut self.running, true) {
            return Ok(out);
        }
        if let Some(c) = self.consensus.as_mut() {
            let effects = c.start();
            self.apply(effects, &mut out)?;
        }
        self.maybe_start_height(&mut out)?;
        // A fresh (or restarted) node asks its peers for blocks at once.
        self.maybe_sync(&mut out);
        Ok(out)
    }

    /// Consensus messages that arrived together: checked and stepped as one batch.
    /// Returns the actions and one gossip verdict per message.
    pub fn on_messages(&mut self, now: Clock, msgs: Vec<Message>) -> Result<(Vec<Action>, Vec<Verdict>), ReplicaError> {
        self.set_now(now);
        let mut out = Vec::new();
        let verdicts = self.feed(msgs, &mut out)?;
        self.maybe_start_height(&mut out)?;
        self.maybe_sync(&mut out);
        Ok((out, verdicts))
    }

    /// A compact proposal ([`crate::compact`]) that peer `from` sent: filled from the
    /// mempool and handed on as a whole proposal, or, with records missing, kept (if round
    /// 0's proposer sent and signed it) until [`Replica::on_pool_changed`] completes it.
    /// Returns the actions and its verdict.
    pub fn on_compact(
        &mut self,
        now: Clock,
        compact: Arc<CompactProposal>,
        from: &MemberName,
    ) -> Result<(Vec<Action>, Verdict), ReplicaError> {
        self.set_now(now);
        let mut out = Vec::new();
        let verdict = self.admit_compact(compact, from, &mut out)?;
        self.maybe_start_height(&mut out)?;
        self.maybe_sync(&mut out);
        Ok((out, verdict))
    }

    /// Checks `msgs` and steps the machine with them as one batch: one verdict per message.
    fn feed(&mut self, msgs: Vec<Message>, out: &mut Vec<Action>) -> Result<Vec<Verdict>, ReplicaError> {
        let now = self.now;
        let mut verdicts: Vec<Option<Verdict>> = vec![None; msgs.len()];
        let mut fed = Vec::with_capacity(msgs.len());
        let mut fed_at = Vec::with_capacity(msgs.len());
        for (i, msg) in msgs.into_iter().enumerate() {
            match self.admit_message(msg) {
                Ok(m) => {
                    fed.push(m);
                    fed_at.push(i);
                }
                Err(v) => verdicts[i] = Some(v),
            }
        }
        if let Some(c) = self.consensus.as_mut() {
            c.set_time(now.wall_ms);
            let (effects, results) = c.step_messages(fed);
            if results.iter().any(Result::is_ok) {
                self.last_progress_mono_ms = now.mono_ms;
            }
            for (i, r) in fed_at.into_iter().zip(results) {
                verdicts[i] = Some(verdict(r));
            }
            self.apply(effects, out)?;
        } else {
            // An observer forwards what passed the checks it can make.
            for i in fed_at {
                verdicts[i] = Some(Verdict::Accept);
            }
        }
        debug_assert!(verdicts.iter().all(Option::is_some), "one verdict per message");
        // Fail closed: a message without a verdict is not forwarded.
        Ok(verdicts.into_iter().map(|v| v.unwrap_or(Verdict::Ignore(MessageError::Duplicate))).collect())
    }

    /// Time passed: due timeouts, a waiting build, the heartbeat, re-sends after a
    /// quiet spell, sync when behind.
    pub fn on_tick(&mut self, now: Clock) -> Result<Vec<Action>, ReplicaError> {
        self.set_now(now);
        let mut out = Vec::new();
        if let Some(b) = self.pending_build
            && b.due_mono_ms <= now.mono_ms
        {
            self.pending_build = None;
            self.build(b.height, b.round, true, &mut out)?;
        }
        if let Some((sp, _)) = self.compact_sent.take_if(|(_, due)| *due <= now.mono_ms) {
            let short = self.consensus.as_ref().is_some_and(|c| {
                (c.height(), c.round()) == (sp.proposal.height, 0) && c.current_step() < Step::Precommit
            });
            if short {
                self.stats.compact_sent_whole += 1;
                out.push(Action::Broadcast(Message::Proposal(sp)));
            }
        }
        // Only the timers due now, each once: a timeout may schedule another.
        let due: Vec<(u64, u64)> = self.timers.range(..(now.mono_ms.saturating_add(1), 0)).map(|(k, _)| *k).collect();
        for key in due {
            if let Some(timeout) = self.timers.remove(&key) {
                self.step(Input::Timeout(timeout), &mut out)?;
            }
        }
        self.maybe_start_height(&mut out)?;
        let quiet_ms = self.ctx.genesis.consensus.timeout_propose_ms;
        if now.mono_ms.saturating_sub(self.last_progress_mono_ms) >= quiet_ms {
            self.last_progress_mono_ms = now.mono_ms;
            if let Some(c) = self.consensus.as_ref().filter(|c| c.is_started()) {
                out.push(Action::Resend(c.known_messages()));
            }
        }
        self.maybe_sync(&mut out);
        Ok(out)
    }

    /// The mempool received records (API or gossip): a compact proposal waiting for
    /// records may be complete, an idle height may start, a proposer waiting for records
    /// may build.
    pub fn on_pool_changed(&mut self, now: Clock) -> Result<Vec<Action>, ReplicaError> {
        self.set_now(now);
        let mut out = Vec::new();
        self.refill_compact(&mut out)?;
        if let Some(b) = self.pending_build
            && !self.pool().is_empty()
        {
            self.pending_build = None;
            self.build(b.height, b.round, false, &mut out)?;
        }
        self.maybe_start_height(&mut out)?;
        Ok(out)
    }

    /// What a host needs to check sync answers' signatures on threads of its own.
    pub fn sync_checker(&self) -> SyncChecker {
        SyncChecker { ctx: Arc::clone(&self.ctx), roster: Arc::clone(&self.sync_roster), tip_height: self.tip.height }
    }

    /// A sync answer to `request` (encoded certified blocks): checked here, on this thread,
    /// as [`Replica::on_sync_answer`] would take it from [`SyncChecker::check`].
    pub fn on_sync_blocks(
        &mut self,
        now: Clock,
        request: SyncRequest,
        blocks: Vec<Vec<u8>>,
    ) -> Result<(Vec<Action>, SyncOutcome), ReplicaError> {
        let answer = self.sync_checker().check(request, blocks);
        self.on_sync_answer(now, answer)
    }

    /// A sync answer whose signatures were checked ahead: held until the blocks below it
    /// are stored, then each block is verified on the tip by the verification core (the
    /// rules, links, roots and the certificate's quorum; signatures again only if the
    /// roster in force is not the one they were checked against) and committed, the run
    /// made durable by one flush before anything else happens. The window is then refilled.
    pub fn on_sync_answer(
        &mut self,
        now: Clock,
        answer: SyncAnswer,
    ) -> Result<(Vec<Action>, SyncOutcome), ReplicaError> {
        self.set_now(now);
        let mut out = Vec::new();
        let mut outcome = SyncOutcome::default();
        let SyncAnswer { request, blocks, bad, largest_block_bytes } = answer;
        let from = request.from_height;
        let asked = self.sync.out.remove(&from).is_some();
        if let Some(bytes) = largest_block_bytes
            && asked
            && bad.is_none()
        {
            self.sync.blocks_per_request = blocks_per_answer(bytes);
        }
        if let Some((height, error)) = bad {
            outcome.bad.push(request);
            out.push(Action::Notice(Notice::SyncBlockInvalid { height, error }));
        }
        let beyond = blocks.last().is_some_and(|b| b.height() > self.tip.height);
        if blocks.is_empty() {
            if outcome.bad.is_empty() {
                // The peer has nothing from `from` on: ask for nothing past it until behind
                // again; at our tip, forget a height some message claimed (a forged
                // far-future height then costs one sync request, not a sync loop).
                self.sync.end = Some(self.sync.end.map_or(from, |e| e.min(from)));
                if from <= self.tip.height + 1 {
                    self.seen_height = self.seen_height.min(self.tip.height + 1);
                    // Nothing to fetch: while behind, ask again only after a pause.
                    self.sync.retry_at_mono_ms = self.now.mono_ms.saturating_add(SYNC_RETRY_MS);
                }
            }
        } else if let Some(first) = blocks.first().map(Ahead::height)
            && beyond
            && !self.sync.ready.contains_key(&first)
            && (asked || !self.sync.is_full())
        {
            // A late answer to a forgotten request is kept only if there is room.
            self.sync.ready.insert(first, (request, blocks));
        }
        self.apply_ready(&mut out, &mut outcome)?;
        if outcome.stored > 0 {
            // Timers of heights now behind us are ignored by the machine when they fire.
            self.step(Input::Synced { height: self.tip.height }, &mut out)?;
            self.maybe_start_height(&mut out)?;
        }
        self.maybe_sync(&mut out);
        debug_assert!(self.sync.out.len() + self.sync.ready.len() <= SYNC_REQUESTS_IN_FLIGHT_MAX);
        Ok((out, outcome))
    }

    /// Stores the answers held that reach the tip, in order, deferring durability to one
    /// flush at the end.
    fn apply_ready(&mut self, out: &mut Vec<Action>, outcome: &mut SyncOutcome) -> Result<(), ReplicaError> {
        let mut stored = 0u64;
        while let Some(entry) = self.sync.ready.first_entry() {
            if *entry.key() > self.tip.height + 1 {
                break;
            }
            let (request, blocks) = entry.remove();
            for ahead in blocks {
                let height = ahead.height();
                if height <= self.tip.height {
                    continue;
                }
                match verify::verify_signatures_checked(&self.ctx, &self.tip, &self.store, ahead) {
                    Ok(vb) => {
                        self.store_block(&vb, true, out)?;
                        stored += 1;
                    }
                    Err(e) => {
                        outcome.bad.push(request);
                        out.push(Action::Notice(Notice::SyncBlockInvalid { height, error: e.to_string() }));
                        break;
                    }
                }
            }
        }
        if stored > 0 {
            self.store.flush()?;
            self.sync.end = None;
            self.sync.active = true;
        }
        outcome.stored += stored;
        Ok(())
    }

    /// The sync request went unanswered (no peer, a network error): its heights may be
    /// asked of another peer after [`SYNC_RETRY_MS`].
    pub fn on_sync_failed(&mut self, request: SyncRequest) {
        self.sync.out.remove(&request.from_height);
        self.sync.retry_at_mono_ms = self.now.mono_ms.saturating_add(SYNC_RETRY_MS);
    }

    // ---- internals -------------------------------------------------------------------

    fn set_now(&mut self, now: Clock) {
        // The monotonic clock never goes back, whatever the host hands in.
        self.now = Clock { wall_ms: now.wall_ms, mono_ms: now.mono_ms.max(self.now.mono_ms) };
    }

    fn pool(&self) -> MutexGuard<'_, Mempool> {
        self.mempool.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The checks before the machine: the leaves of a proposal for our next height
    /// against its header; a proposal one height further is kept until we get there.
    fn admit_message(&mut self, msg: Message) -> Result<Message, Verdict> {
        let height = msg.height();
        self.seen_height = self.seen_height.max(height);
        let next = self.tip.height + 1;
        let Message::Proposal(sp) = &msg else { return Ok(msg) };
        if height == next + 1 {
            self.keep_early(Early::Message(msg));
            return Err(Verdict::Ignore(MessageError::FutureHeight { got: height, current: next }));
        }
        if height != next {
            return Ok(msg); // the machine says why not
        }
        match verify::check_leaves(&self.tip, &sp.block) {
            Ok(m) => {
                if !self.leaf_checks.iter().any(|c| c.block_hash() == m.block_hash()) {
                    if self.leaf_checks.len() >= LEAF_CHECKS_MAX {
                        self.leaf_checks.pop_front();
                    }
                    self.leaf_checks.push_back(m);
                }
                Ok(msg)
            }
            Err(e) => Err(Verdict::Reject(MessageError::LeavesMismatch(e.to_string()))),
        }
    }

    fn keep_early(&mut self, early: Early) {
        if self.early.len() >= EARLY_PROPOSALS_MAX {
            self.early.pop_front();
        }
        self.early.push_back(early);
    }

    /// The checks of a compact proposal before it is filled: the next height (one
    /// further is kept for later), a fresh round-0 proposal, the signed block id is the
    /// header's. Then as much as the mempool holds; a complete block goes to [`Self::feed`].
    fn admit_compact(
        &mut self,
        compact: Arc<CompactProposal>,
        from: &MemberName,
        out: &mut Vec<Action>,
    ) -> Result<Verdict, ReplicaError> {
        let p = compact.proposal;
        self.seen_height = self.seen_height.max(p.height);
        let next = self.tip.height + 1;
        if p.height == next + 1 {
            self.keep_early(Early::Compact(compact, from.clone()));
            return Ok(Verdict::Ignore(MessageError::FutureHeight { got: p.height, current: next }));
        }
        if p.height < next {
            return Ok(Verdict::Ignore(MessageError::PastHeight { got: p.height, current: next }));
        }
        if p.height > next {
            return Ok(Verdict::Ignore(MessageError::FutureHeight { got: p.height, current: next }));
        }
        if p.round != 0 || p.valid_round.is_some() {
            return Ok(Verdict::Reject(MessageError::CompactNotFresh { round: p.round }));
        }
        if BlockId::of(&compact.header) != p.block || compact.header.height != p.height {
            return Ok(Verdict::Reject(MessageError::BlockMismatch));
        }
        let same = |f: &Filling| f.compact.proposal == p && f.compact.signature == compact.signature;
        if self.filling.iter().any(same) {
            return Ok(Verdict::Ignore(MessageError::Duplicate));
        }
        let filling = Filling::new(compact, &self.pool());
        let filling = match filling.into_whole() {
            Ok(sp) => {
                self.stats.compact_filled += 1;
                return self.feed_filled(sp, out);
            }
            Err(f) => f,
        };
        // Kept aside only if its proposer sent and signed it, so no one else can take the
        // slots: a relay passes a compact proposal on only once it filled it (gossip
        // validation), so an incomplete copy from another member is one it made up (the
        // items are not signed) or one we cannot use anyway.
        let missing = filling.missing();
        let c = self.context_at(p.height)?;
        let proposer = c.proposer(p.height, 0);
        if c.validators.get(usize::from(proposer)).is_none_or(|v| v.name != *from) {
            return Ok(Verdict::Ignore(MessageError::RecordsMissing(missing)));
        }
        if let Err(e) = check::verify_proposal_statement(&c, proposer, &p, &filling.compact.signature) {
            return Ok(Verdict::Reject(MessageError::BadSignature(e)));
        }
        if self.filling.len() >= COMPACT_FILLING_MAX {
            self.stats.compact_dropped += 1;
            return Ok(Verdict::Ignore(MessageError::SlotFull));
        }
        self.filling.push(filling);
        Ok(Verdict::Ignore(MessageError::RecordsMissing(missing)))
    }

    /// A complete compact proposal, as a whole proposal, through the checks of any other.
    /// Leaves that do not match the header are no proof against the sender: this node's
    /// mempool may hold another signature of a record's body under the same id.
    fn feed_filled(&mut self, sp: SignedProposal, out: &mut Vec<Action>) -> Result<Verdict, ReplicaError> {
        let verdict =
            self.feed(vec![Message::Proposal(sp)], out)?.pop().unwrap_or(Verdict::Ignore(MessageError::Duplicate));
        Ok(match verdict {
            Verdict::Reject(e @ MessageError::LeavesMismatch(_)) => Verdict::Ignore(e),
            v => v,
        })
    }

    /// Compact proposals waiting for records: those of a past height dropped, the rest
    /// filled from the mempool, and each now complete handed on.
    fn refill_compact(&mut self, out: &mut Vec<Action>) -> Result<(), ReplicaError> {
        if self.filling.is_empty() {
            return Ok(());
        }
        let next = self.tip.height + 1;
        let before = self.filling.len();
        self.filling.retain(|f| f.compact.proposal.height == next);
        self.stats.compact_dropped += (before - self.filling.len()) as u64;
        let mut filling = std::mem::take(&mut self.filling);
        {
            let pool = self.pool();
            for f in &mut filling {
                f.refill(&pool);
            }
        }
        let mut complete = Vec::new();
        for f in filling {
            match f.into_whole() {
                Ok(sp) => complete.push(sp),
                Err(f) => self.filling.push(f),
            }
        }
        for sp in complete {
            self.stats.compact_filled_later += 1;
            self.feed_filled(sp, out)?;
        }
        Ok(())
    }

    fn step(&mut self, input: Input, out: &mut Vec<Action>) -> Result<(), ReplicaError> {
        let Some(c) = self.consensus.as_mut() else { return Ok(()) };
        c.set_time(self.now.wall_ms);
        if let Ok(effects) = c.step(input) {
            self.last_progress_mono_ms = self.now.mono_ms;
            self.apply(effects, out)?;
        }
        Ok(())
    }

    /// Carries out the machine's effects in order; the inputs they produce are stepped
    /// after the whole list (see the module's first invariant).
    fn apply(&mut self, effects: Vec<Effect>, out: &mut Vec<Action>) -> Result<(), ReplicaError> {
        let mut queue: VecDeque<Vec<Effect>> = VecDeque::from([effects]);
        while let Some(effects) = queue.pop_front() {
            let mut follow = Vec::new();
            for effect in effects {
                self.effect(effect, &mut follow, out)?;
            }
            for input in follow {
                let Some(c) = self.consensus.as_mut() else { break };
                c.set_time(self.now.wall_ms);
                if let Ok(effects) = c.step(input) {
                    queue.push_back(effects);
                }
            }
        }
        Ok(())
    }

    fn effect(&mut self, effect: Effect, follow: &mut Vec<Input>, out: &mut Vec<Action>) -> Result<(), ReplicaError> {
        match effect {
            Effect::PersistSignState(s) => {
                let at = (s.height, s.round, s.step);
                assert!(
                    self.persisted.is_none_or(|p| p <= at),
                    "the sign state only moves forward: {:?} then {at:?}",
                    self.persisted
                );
                self.persisted = Some(at);
                out.push(Action::PersistSignState(s));
            }
            Effect::Broadcast(Message::Proposal(sp)) if sp.proposal.round == 0 && sp.proposal.valid_round.is_none() => {
                let compact = CompactProposal::of(&sp, &self.pool(), self.now.wall_ms);
                out.push(Action::BroadcastCompact(Arc::new(compact)));
                let wait = COMPACT_WHOLE_AFTER_MS.min(self.ctx.genesis.consensus.timeout_propose_ms / 2);
                self.compact_sent = Some((sp, self.now.mono_ms.saturating_add(wait)));
            }
            Effect::Broadcast(m) => out.push(Action::Broadcast(m)),
            Effect::ScheduleTimeout { timeout, after_ms } => {
                if self.timers.len() >= TIMERS_MAX {
                    // Stale timeouts of past rounds are the oldest due; drop the first.
                    self.timers.pop_first();
                }
                self.timer_seq += 1;
                self.timers.insert((self.now.mono_ms.saturating_add(after_ms), self.timer_seq), timeout);
            }
            Effect::BuildBlock { height, round } => {
                if let Some(input) = self.try_build(height, round, false, out)? {
                    follow.push(input);
                }
            }
            Effect::ValidateBlock { height, id, block } => {
                let valid = height == self.tip.height + 1 && self.validate(&block, out);
                follow.push(Input::BlockValidated { height, id, valid });
            }
            Effect::Commit(cb) => self.commit(*cb, out)?,
            Effect::Evidence(e) => self.on_evidence(*e, out),
        }
        Ok(())
    }

    /// `valid(v)` on our tip: the verification core without a certificate. A valid
    /// proposal is kept so its commit checks only the certificate.
    fn validate(&mut self, block: &Block, out: &mut Vec<Action>) -> bool {
        let hash = block.header.hash();
        if self.valid.iter().any(|v| v.block_hash() == hash) {
            return true;
        }
        let leaves =
            self.leaf_checks.iter().position(|c| c.block_hash() == hash).and_then(|i| self.leaf_checks.remove(i));
        let result = {
            let mut pool = self.pool();
            // Leaves byte-identical to mempool entries were verified at admission.
            let known = |leaf: &Leaf| pool.get(&leaf.id).is_some_and(|p| p.leaf.bytes == leaf.bytes);
            let result = verify::verify_proposal(&self.ctx, &self.tip, &self.store, block, leaves, &known);
            if let Ok(vp) = &result {
                // The others' signatures were verified just now: their gossip copies, if
                // they come later, are not checked again (each signature once per node).
                let unknown: Vec<&Leaf> = block.leaves.iter().filter(|l| !known(l)).collect();
                if !unknown.is_empty() {
                    pool.note_checked(unknown, vp.roster_digest());
                }
            }
            result
        };
        match result {
            Ok(vp) => {
                self.keep_valid(vp);
                true
            }
            Err(e) => {
                self.stats.proposals_invalid += 1;
                out.push(Action::Notice(Notice::ProposalInvalid { height: block.header.height, error: e.to_string() }));
                false
            }
        }
    }

    fn keep_valid(&mut self, vp: ValidProposal) {
        if self.valid.len() >= VALID_PROPOSALS_MAX {
            self.valid.pop_front();
        }
        self.valid.push_back(vp);
    }

    /// `getValue()`: builds now, or waits (for records, or for our clock to pass the
    /// tip's time) and answers later from [`Replica::on_tick`] or [`Replica::on_pool_changed`].
    fn try_build(
        &mut self,
        height: u64,
        round: u32,
        deadline_passed: bool,
        out: &mut Vec<Action>,
    ) -> Result<Option<Input>, ReplicaError> {
        if height != self.tip.height + 1 {
            return Ok(None);
        }
        let half_propose = self.ctx.genesis.consensus.timeout_propose_ms / 2;
        // PBTS: our block's time is our clock, which must be past the tip's.
        if self.now.wall_ms <= self.tip.time_ms {
            let behind = self.tip.time_ms - self.now.wall_ms;
            if !deadline_passed && behind < half_propose {
                let due_mono_ms = self.now.mono_ms.saturating_add(behind + 1);
                self.pending_build = Some(PendingBuild { height, round, due_mono_ms });
            }
            return Ok(None); // the clock is too far behind: timeoutPropose will prevote nil
        }
        let empty = self.pool().is_empty() && self.evidence.is_empty();
        let heartbeat = self.ctx.genesis.time.heartbeat_ms;
        let heartbeat_due = heartbeat == 0 || self.idle_heartbeat_due().is_some_and(|t| t <= self.now.mono_ms);
        if empty && !deadline_passed && !heartbeat_due {
            let wait = EMPTY_BLOCK_WAIT_MS.min(half_propose);
            self.pending_build =
                Some(PendingBuild { height, round, due_mono_ms: self.now.mono_ms.saturating_add(wait) });
            return Ok(None);
        }
        if !empty && !deadline_passed && round == 0 {
            let (_, roster) = self.ctx.in_force(&self.store, height)?;
            let pending = {
                let pool = self.pool();
                (pool.ready_len(), pool.stats().bytes)
            };
            let fill = Fill {
                last_block_records: self.last_block_records,
                last_commit_mono_ms: self.last_commit_mono_ms,
                wait_max_ms: half_propose,
            };
            if let Some(due_mono_ms) = fill.wait_until(self.now.mono_ms, pending, &roster.params) {
                self.pending_build = Some(PendingBuild { height, round, due_mono_ms });
                return Ok(None);
            }
        }
        let block = self.assemble(out)?;
        Ok(block.map(|block| Input::BlockBuilt { height, round, block }))
    }

    fn build(
        &mut self,
        height: u64,
        round: u32,
        deadline_passed: bool,
        out: &mut Vec<Action>,
    ) -> Result<(), ReplicaError> {
        if let Some(input) = self.try_build(height, round, deadline_passed, out)? {
            self.step(input, out)?;
        }
        Ok(())
    }

    /// The block on our tip from the mempool, at our clock's time, checked by the
    /// verification core (so its commit checks only the certificate).
    fn assemble(&mut self, out: &mut Vec<Action>) -> Result<Option<Block>, ReplicaError> {
        let Some(me) = &self.me else { return Ok(None) };
        let proposer = me.name.clone();
        let (_, roster) = self.ctx.in_force(&self.store, self.tip.height + 1)?;
        let params = &roster.params;
        let mut leaves = self.pool().take(params.block_records_max as usize, params.block_bytes_max as usize);
        let time_ms = self.now.wall_ms;
        debug_assert!(time_ms > self.tip.time_ms, "checked by try_build");
        // The mempool orders records so the rules accept them; should one still be
        // refused, propose the records before it. Twice at most: the second is a prefix
        // that passed.
        for _ in 0..2 {
            let assembled = verify::assemble(&self.tip, roster.validator_set_hash, proposer.clone(), time_ms, leaves);
            let (block, matched) = match assembled {
                Ok(b) => b,
                Err(e) => {
                    out.push(Action::Notice(Notice::ProposalInvalid {
                        height: self.tip.height + 1,
                        error: e.to_string(),
                    }));
                    return Ok(None);
                }
            };
            // Leaves from the mempool were verified at admission.
            match verify::verify_proposal(&self.ctx, &self.tip, &self.store, &block, Some(matched), &|_| true) {
                Ok(vp) => {
                    self.keep_valid(vp);
                    return Ok(Some(block));
                }
                Err(VerifyError { record: Some(index), reason, .. }) => {
                    out.push(Action::Notice(Notice::BuildRecordRefused { index, error: reason.to_string() }));
                    leaves = block.leaves;
                    leaves.truncate(index);
                }
                Err(e) => {
                    out.push(Action::Notice(Notice::ProposalInvalid {
                        height: self.tip.height + 1,
                        error: e.to_string(),
                    }));
                    return Ok(None);
                }
            }
        }
        Ok(None)
    }

    /// A decided block: certified from its valid proposal, or verified whole.
    fn commit(&mut self, cb: CertifiedBlock, out: &mut Vec<Action>) -> Result<(), ReplicaError> {
        let height = cb.block.header.height;
        if height != self.tip.height + 1 {
            return Ok(()); // already stored by sync
        }
        let hash = cb.block.header.hash();
        let result = match self.valid.iter().position(|v| v.block_hash() == hash).and_then(|i| self.valid.remove(i)) {
            Some(vp) => {
                self.stats.commits_certified_only += 1;
                // The machine built this certificate from precommits it verified as it
                // counted them (`rule_decide`): their signatures are not checked again.
                vp.certify(&self.ctx, &self.tip, cb, CertificateSignatures::VerifiedByConsensus)
            }
            None => {
                let pool = self.pool();
                let known = |leaf: &Leaf| pool.get(&leaf.id).is_some_and(|p| p.leaf.bytes == leaf.bytes);
                verify::verify_block_with(&self.ctx, &self.tip, &self.store, cb, &known)
            }
        };
        match result {
            Ok(vb) => self.store_block(&vb, false, out),
            Err(e) => {
                // Sync will fetch it from a peer.
                out.push(Action::Notice(Notice::DecidedBlockInvalid { height, error: e.to_string() }));
                Ok(())
            }
        }
    }

    /// Stores a verified block and brings the tip, mempool and evidence up to it.
    fn store_block(&mut self, vb: &ValidBlock, synced: bool, out: &mut Vec<Action>) -> Result<(), ReplicaError> {
        self.store.commit(vb)?;
        self.tip.advance(vb);
        self.follow_governance(None)?;
        let block = &vb.certified().block;
        {
            let mut pool = self.mempool.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Err(e) = pool.on_commit(&self.store, &block.leaves) {
                out.push(Action::Notice(Notice::MempoolReset(e.to_string())));
            }
        }
        self.evidence.on_commit(block);
        let hash = self.tip.hash;
        self.valid.retain(|v| v.block_hash() != hash);
        self.leaf_checks.clear();
        self.stats.compact_dropped += self.filling.len() as u64;
        self.filling.clear();
        self.compact_sent = None;
        self.last_commit_mono_ms = self.now.mono_ms;
        self.last_block_records = block.leaves.len();
        self.last_progress_mono_ms = self.now.mono_ms;
        let h = &block.header;
        out.push(Action::Committed { height: h.height, hash, time_ms: h.time_ms, records: block.leaves.len(), synced });
        Ok(())
    }

    /// An equivocation: kept, and recorded as an attestation of ours for a later block.
    fn on_evidence(&mut self, e: Equivocation, out: &mut Vec<Action>) {
        if !self.evidence.add(e.clone()) {
            return;
        }
        let Some(me) = &self.me else { return };
        let Some(index) = self.pool().in_force().get().1.member_index(&me.name) else { return };
        let mut pool = self.mempool.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let sequence = match pool.next_sequence(&self.store, index) {
            Ok(s) => s,
            Err(err) => {
                out.push(Action::Notice(Notice::EvidenceNotAdmitted(err.to_string())));
                return;
            }
        };
        let body = AttestationBody {
            attester: me.name.clone(),
            sequence,
            issued_at_ms: self.now.wall_ms.max(self.tip.time_ms),
            claim: Claim::Equivocation(Box::new(e)),
        };
        let leaf = Leaf::new(body.sign(&me.key, &self.ctx.chain_id));
        let admitted =
            self.verifier.verify_leaf(leaf).and_then(|v| pool.admit(&self.store, v, Origin::Own, self.now.wall_ms));
        if let Err(err) = admitted {
            out.push(Action::Notice(Notice::EvidenceNotAdmitted(err.to_string())));
        }
    }

    /// When an idle height's wait for work ends by the heartbeat (monotonic).
    fn idle_heartbeat_due(&self) -> Option<u64> {
        let heartbeat = self.ctx.genesis.time.heartbeat_ms;
        let waiting = self.consensus.as_ref().is_some_and(|c| !c.is_started());
        (waiting && heartbeat != 0).then(|| self.last_commit_mono_ms.saturating_add(heartbeat))
    }

    /// An idle height starts when there is work: records or evidence to propose, or
    /// the heartbeat is due. Then a proposal for the next height that came early is
    /// handed over too.
    fn maybe_start_height(&mut self, out: &mut Vec<Action>) -> Result<(), ReplicaError> {
        let next = self.tip.height + 1;
        if self.early.iter().any(|m| m.height() <= next) {
            let (early, later): (Vec<_>, Vec<_>) = self.early.drain(..).partition(|m| m.height() == next);
            self.early = later.into_iter().filter(|m| m.height() > next).collect();
            let mut msgs = Vec::new();
            for e in early {
                match e {
                    Early::Message(m) => msgs.push(m),
                    Early::Compact(c, from) => {
                        self.admit_compact(c, &from, out)?;
                    }
                }
            }
            if !msgs.is_empty() {
                self.feed(msgs, out)?;
            }
        }
        let Some(c) = self.consensus.as_ref() else { return Ok(()) };
        if !self.running || c.is_started() {
            return Ok(());
        }
        let work = !self.pool().is_empty() || !self.evidence.is_empty();
        let due = self.idle_heartbeat_due().is_some_and(|t| t <= self.now.mono_ms);
        if work || due {
            let effects = self.consensus.as_mut().map(Consensus::start_height).unwrap_or_default();
            self.apply(effects, out)?;
        }
        Ok(())
    }

    fn maybe_sync(&mut self, out: &mut Vec<Action>) {
        // The tip reached the height a peer had no block at, by sync or by consensus: what
        // was asked for is stored. (Left active, the window would ask for nothing at or past
        // that height, and never wake up again.)
        if self.sync.end.is_some_and(|e| e <= self.tip.height + 1) {
            self.sync.active = false;
        }
        if self.is_behind() && !self.sync.active {
            self.sync.active = true;
            self.sync.end = None;
        }
        if self.sync.active {
            self.request_sync(out);
        }
    }

    /// Fills the window: requests for the first heights past the tip that no request out
    /// or answer held covers, up to [`SYNC_REQUESTS_IN_FLIGHT_MAX`].
    fn request_sync(&mut self, out: &mut Vec<Action>) {
        let now = self.now.mono_ms;
        // Forget requests unanswered for too long, and answers the tip has passed.
        self.sync.out.retain(|_, (_, sent)| now < sent.saturating_add(SYNC_ANSWER_WAIT_MS));
        let tip = self.tip.height;
        self.sync.ready.retain(|from, (_, b)| from.saturating_add(b.len() as u64) > tip + 1);
        if now < self.sync.retry_at_mono_ms {
            return;
        }
        while !self.sync.is_full() {
            let Some((from_height, blocks_max)) = self.sync.next_gap(tip + 1) else { break };
            if blocks_max == 0 {
                break;
            }
            self.sync.out.insert(from_height, (blocks_max, now));
            out.push(Action::RequestSync(SyncRequest { from_height, blocks_max }));
        }
    }
}

/// The gossip verdict on a message the machine judged.
fn verdict(r: Result<(), MessageError>) -> Verdict {
    match r {
        Ok(()) => Verdict::Accept,
        Err(
            e @ (MessageError::BadSignature(_)
            | MessageError::NotValidator(_)
            | MessageError::BlockMismatch
            | MessageError::BadValidRound { .. }
            | MessageError::WrongProposer { .. }
            | MessageError::LeavesMismatch(_)
            | MessageError::CompactNotFresh { .. }),
        ) => Verdict::Reject(e),
        Err(e) => Verdict::Ignore(e),
    }
}

/// The verified tip of a store: its head, with the Merkle frontier rebuilt from stored
/// nodes and checked against the head's root.
pub fn tip_of<S: Store>(ctx: &ChainContext, store: &S) -> Result<Tip, ReplicaError> {
    let Some(head) = store.head()? else { return Ok(Tip::genesis(ctx)) };
    let frontier = Frontier::from_reader(head.tree_size, store).map_err(|e| ReplicaError::Frontier(e.to_string()))?;
    if frontier.root() != head.tree_root.0 {
        return Err(ReplicaError::Frontier(format!("block {}'s root", head.height)));
    }
    Ok(Tip { height: head.height, hash: head.hash, time_ms: head.time_ms, frontier })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_requests_are_sized_so_that_their_answers_are_not_cut() {
        for block_bytes in [0, 1, 300, 4_000, 131_072, 450_000, 1 << 20, 3 << 20, SYNC_ANSWER_BYTES_MAX, usize::MAX] {
            let n = blocks_per_answer(block_bytes);
            assert!((1..=SYNC_BLOCKS_MAX).contains(&n), "{block_bytes}: {n}");
            // A server frames a 4-byte count, then each block after its 4-byte length.
            let larger = block_bytes.saturating_add(block_bytes / 4);
            if n > 1 {
                assert!(4 + n as usize * (larger + 4) <= SYNC_ANSWER_BYTES_MAX, "{block_bytes}: {n}");
            }
            if n < SYNC_BLOCKS_MAX {
                let one_more = (n as usize + 1).saturating_mul(block_bytes.saturating_add(4));
                assert!(one_more > SYNC_ANSWER_BYTES_MAX / 4 * 3, "as many as fit: {block_bytes}: {n}");
            }
        }
        assert_eq!(blocks_per_answer(300), SYNC_BLOCKS_MAX, "small blocks: as many as a request may ask");
        assert_eq!(blocks_per_answer(usize::MAX), 1, "one block, however large: sync always moves on");
        let mut window = SyncWindow::new(450_000);
        assert_eq!(window.next_gap(1), Some((1, 13)), "sized by the genesis's largest block at first");
        window.blocks_per_request = blocks_per_answer(4_000);
        assert_eq!(window.next_gap(1), Some((1, SYNC_BLOCKS_MAX)));
        window.out.insert(1, (SYNC_BLOCKS_MAX, 0));
        window.blocks_per_request = 7;
        assert_eq!(window.next_gap(1), Some((65, 7)), "after the requests out");
    }

    #[test]
    fn a_proposer_waits_to_fill_its_block_only_under_load_and_not_past_the_wait() {
        let params =
            ConsensusParams { block_records_max: 1_000, block_bytes_max: 1 << 20, ..ConsensusParams::default() };
        let fill = Fill { last_block_records: 300, last_commit_mono_ms: 5_000, wait_max_ms: 500 };
        let due = 5_000 + BLOCK_FILL_WAIT_MS;
        assert_eq!(fill.wait_until(5_010, (40, 12_000), &params), Some(due), "under load, a small pool waits");
        assert_eq!(fill.wait_until(due - 1, (499, 12_000), &params), Some(due));
        assert_eq!(fill.wait_until(due, (40, 12_000), &params), None, "not past the wait");
        assert_eq!(fill.wait_until(5_010, (500, 12_000), &params), None, "half a block of records builds now");
        assert_eq!(fill.wait_until(5_010, (40, 1 << 19), &params), None, "half a block of bytes builds now");
        let light = Fill { last_block_records: BLOCK_FILL_LOAD_RECORDS - 1, ..fill };
        assert_eq!(light.wait_until(5_010, (40, 12_000), &params), None, "a light load keeps its latency");
        let short = Fill { wait_max_ms: 30, ..fill };
        assert_eq!(short.wait_until(5_010, (40, 12_000), &params), Some(5_030), "at most half the propose timeout");
        assert_eq!(short.wait_until(5_030, (40, 12_000), &params), None);
    }
}
