//! The consensus machine's vocabulary: messages, inputs, effects, timeouts, the chain context and errors.

use std::sync::Arc;

use credence_ledger::block::{Block, CertifiedBlock};
use credence_ledger::checkpoint::{self, key_id};
use credence_ledger::genesis::{ConsensusParams, Genesis, TimeParams};
use credence_ledger::governance::Roster;
use credence_ledger::hash::Hash;
use credence_ledger::ids::MemberName;
use credence_ledger::sig::{KeySet, SecretKey, Signature, VerifyingKey};
use credence_ledger::vote::{BlockId, Equivocation, Proposal, Vote};

use super::guard::SignState;

/// Index of a validator in the order of the set in force at a height (by name).
pub type ValidatorIndex = u16;

/// A proposal as it travels: the signed statement and the block it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedProposal {
    pub proposal: Proposal,
    /// By the proposer of (height, round); the message does not name it, the rotation does.
    pub signature: Signature,
    pub block: Arc<Block>,
}

/// A prevote or precommit as it travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedVote {
    pub vote: Vote,
    pub validator: ValidatorIndex,
    pub signature: Signature,
}

/// What validators broadcast to each other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Proposal(SignedProposal),
    Vote(SignedVote),
}

impl Message {
    pub fn height(&self) -> u64 {
        match self {
            Message::Proposal(p) => p.proposal.height,
            Message::Vote(v) => v.vote.height,
        }
    }
    pub fn round(&self) -> u32 {
        match self {
            Message::Proposal(p) => p.proposal.round,
            Message::Vote(v) => v.vote.round,
        }
    }
}

/// A step of a round (Algorithm 1, line 4). Ordered: `Propose < Prevote < Precommit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum Step {
    Propose,
    Prevote,
    Precommit,
}

/// A timeout the machine asked for; it comes back as [`Input::Timeout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timeout {
    pub height: u64,
    pub round: u32,
    /// Which `OnTimeout…` function (lines 57–67) it triggers.
    pub step: Step,
}

/// Everything that can happen to the machine.
#[derive(Clone, Debug)]
pub enum Input {
    Proposal(SignedProposal),
    Vote(SignedVote),
    Timeout(Timeout),
    /// Answer to [`Effect::BuildBlock`] (`getValue()`, line 18).
    BlockBuilt {
        height: u64,
        round: u32,
        block: Block,
    },
    /// Answer to [`Effect::ValidateBlock`] (`valid(v)`).
    BlockValidated {
        height: u64,
        id: BlockId,
        valid: bool,
    },
    /// The driver stored certified blocks up to `height` fetched by block sync:
    /// those heights are decided, move on to the next.
    Synced {
        height: u64,
    },
}

/// What the driver must do, in order. A [`Effect::PersistSignState`] must be durable
/// before any later effect of the same step is carried out: it always precedes the
/// broadcast of what was signed.
#[derive(Clone, Debug)]
pub enum Effect {
    /// Record durably what is about to be signed (and the lock); see [`SignState`].
    PersistSignState(SignState),
    /// Send to every other validator.
    Broadcast(Message),
    /// Deliver `Input::Timeout(timeout)` after `after_ms` milliseconds.
    ScheduleTimeout { timeout: Timeout, after_ms: u64 },
    /// Build a block for (height, round) on the committed chain; answer with [`Input::BlockBuilt`].
    BuildBlock { height: u64, round: u32 },
    /// Check `block` (everything but a certificate); answer with [`Input::BlockValidated`].
    ValidateBlock { height: u64, id: BlockId, block: Arc<Block> },
    /// `block` is decided, with the 2f+1 precommits as its certificate: verify and store it.
    Commit(Box<CertifiedBlock>),
    /// A validator signed two conflicting statements: keep the proof for a later block.
    Evidence(Box<Equivocation>),
}

/// Why a message was not counted. Equivocations are not errors: they yield evidence.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum MessageError {
    #[error("sender {0} is not a validator")]
    NotValidator(ValidatorIndex),
    #[error("height {got} is below the current height {current}")]
    PastHeight { got: u64, current: u64 },
    #[error("height {got} is beyond the next height ({current} + 1): sync first")]
    FutureHeight { got: u64, current: u64 },
    #[error("round {round} is too far ahead of round {current} for validator {validator}")]
    RoundOutOfWindow { round: u32, current: u32, validator: ValidatorIndex },
    #[error("future-height buffer is full for validator {0}")]
    BufferFull(ValidatorIndex),
    #[error("duplicate message")]
    Duplicate,
    #[error("the sender already has two conflicting statements in this slot")]
    SlotFull,
    #[error("bad signature: {0}")]
    BadSignature(credence_ledger::sig::SigError),
    #[error("proposal: the block does not match the signed block id or height")]
    BlockMismatch,
    #[error("proposal: valid round {valid_round} is not below round {round}")]
    BadValidRound { valid_round: u32, round: u32 },
    #[error("proposal: the header names proposer {got}, the rotation names {expected}")]
    WrongProposer { expected: String, got: String },
    #[error("proposal: the block's leaves do not match its header ({0})")]
    LeavesMismatch(String),
    #[error("compact proposal: only a fresh proposal in round 0 may name records by id (round {round})")]
    CompactNotFresh { round: u32 },
    #[error("compact proposal: {0} of its records are not in the mempool yet")]
    RecordsMissing(usize),
}

/// One validator as consensus sees it.
#[derive(Debug)]
pub struct ValidatorInfo {
    pub name: MemberName,
    pub key: VerifyingKey,
    /// C2SP key id, for the certificate's signature lines.
    pub key_id: [u8; 4],
}

/// What every node knows about the chain's consensus at a height: the validator set
/// and parameters in force there (governance changes them at activation heights).
#[derive(Debug)]
pub struct Context {
    /// The genesis hash, bound into every binary signature.
    pub chain_id: Hash,
    pub origin: String,
    pub params: ConsensusParams,
    /// PBTS and heartbeat parameters.
    pub time: TimeParams,
    pub validators: Vec<ValidatorInfo>,
    /// The validators' keys (same order) with precomputed tables, for checking messages.
    pub keys: KeySet,
    /// Votes needed for a quorum: more than 2/3 (`2f + 1` when n = 3f + 1).
    pub quorum: usize,
    /// Validators needed to skip to a higher round: at least one is honest (`f + 1`).
    pub skip: usize,
    /// The digest of the governance roster this context was made from.
    pub digest: Hash,
}

impl Context {
    /// The context of the genesis validator set.
    pub fn new(genesis: &Genesis) -> Context {
        Context::in_force(genesis, &Roster::new(&genesis.governance()))
    }

    /// The context of the validator set and parameters in force in `roster`.
    pub fn in_force(genesis: &Genesis, roster: &Roster) -> Context {
        let validators: Vec<ValidatorInfo> = roster
            .validators
            .iter()
            .map(|i| {
                let m = &roster.members[usize::from(*i)];
                ValidatorInfo { name: m.name.clone(), key: m.verifying, key_id: key_id(m.name.as_str(), &m.key) }
            })
            .collect();
        let n = validators.len();
        assert!((1..=usize::from(u16::MAX)).contains(&n), "a validator set has 1..=100 validators");
        let quorum = checkpoint::quorum_threshold(n);
        let keys = KeySet::new(&validators.iter().map(|v| v.key).collect::<Vec<_>>());
        assert_eq!(keys.len(), n, "one key per validator");
        Context {
            chain_id: genesis.hash(),
            origin: genesis.checkpoint_origin.clone(),
            params: roster.params.clone(),
            time: genesis.time,
            validators,
            keys,
            quorum,
            skip: n - quorum + 1,
            digest: roster.digest,
        }
    }

    pub fn n(&self) -> usize {
        self.validators.len()
    }

    /// Round-robin proposer rotation, identical on every node: validator
    /// `(height − 1 + round) mod n` in the order of the set in force at `height`
    /// (block 1, round 0: the first).
    pub fn proposer(&self, height: u64, round: u32) -> ValidatorIndex {
        let n = self.n() as u64;
        let i = (height.wrapping_sub(1) % n + u64::from(round) % n) % n;
        i as ValidatorIndex
    }

    pub fn index_of(&self, name: &MemberName) -> Option<ValidatorIndex> {
        let i = self.validators.binary_search_by(|v| v.name.cmp(name)).ok()?;
        ValidatorIndex::try_from(i).ok()
    }

    /// `timeoutPropose(round)` etc.: the genesis base plus `timeout_delta_ms` per round.
    pub fn timeout_ms(&self, step: Step, round: u32) -> u64 {
        let p = &self.params;
        let base = match step {
            Step::Propose => p.timeout_propose_ms,
            Step::Prevote => p.timeout_prevote_ms,
            Step::Precommit => p.timeout_precommit_ms,
        };
        base.saturating_add(p.timeout_delta_ms.saturating_mul(u64::from(round)))
    }
}

/// This node's validator identity: its index and signing key.
#[derive(Debug)]
pub struct Signer {
    pub index: ValidatorIndex,
    pub key: SecretKey,
}
