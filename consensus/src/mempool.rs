//! The mempool: signed attestations admitted after full checks against the committed state plus the pending records, waiting for a block.
//!
//! Admission runs in two steps so that no lock is held while a signature is checked:
//!
//! 1. [`Verifier::verify`] (needs only the genesis): decode with `Leaf::from_bytes`
//!    (size bound, canonical encoding, field rules), the attester is a member, and
//!    the ed25519 signature over the body, bound to the genesis hash
//!    (`Domain::Attestation`, the ledger's one ZIP-215 rule); [`Verifier::verify_batch`]
//!    does the same for many at once with one batched signature check, except for a
//!    record whose very bytes this node verified in a proposal under the roster in force
//!    ([`Mempool::note_checked`]): each signature is checked once per node. Its output,
//!    [`Verified`], can be made no other way.
//! 2. [`Mempool::admit`] (under the caller's lock): dedupe by id, then the ledger rules
//!    through [`rules::check_attestation`] against a view that overlays the pending
//!    records on the committed store, so that two pending pledges on one patent, or a
//!    release of a pending pledge by the wrong bank, are refused at the door.
//!
//! # Ordering
//! Each attester's records must reach a block in sequence order with no gaps. A record
//! whose sequence is the next expected one (committed next, advanced by the pending
//! ones) is *ready*. A later sequence, at most [`MempoolLimits::ahead_max`] ahead, is
//! *held* (only its role and issue time are checked) until the gap fills, then checked in
//! full and promoted; further ahead is refused. [`Mempool::take`] returns ready records
//! in the order they became ready, which keeps every attester's sequence order, and
//! because each was checked against the committed state plus everything before it, any
//! prefix of that order passes `rules::apply_block` against the committed state.
//!
//! # Bounds
//! Ready and held records together are bounded by count ([`MempoolLimits::records_max`])
//! and by canonical bytes ([`MempoolLimits::bytes_max`]); each record is at most
//! `ATTESTATION_BYTES_MAX` (2,048) bytes. A full pool refuses with [`AdmitError::Full`]
//! and never evicts an admitted record to make room.
//!
//! # Fair shares
//! One member's burst must not fill the pool for everyone.
//! [`MempoolLimits::reserved_percent`] of each bound is reserved in equal *shares* for the
//! members in force (not removed); the rest is first come, first served. A member may always
//! fill its own share; beyond it, it may use only room that no other member has reserved, and
//! is refused with [`AdmitError::ShareFull`] otherwise. Invariant: for records and for bytes,
//! the pool's use plus the unused shares (Σ over members of max(share − use, 0)) never exceeds
//! the bound, so every member can always get its share admitted, whatever the others send.
//!
//! When governance changes the members ([`Mempool::follow_roster`]), the shares are divided
//! anew. A removal only frees reserved room, so it applies at once; an addition shrinks the
//! others' shares but reserves a whole share for the newcomer, which can break the invariant
//! while the pool is full: then the old shares stay until enough records commit for the new
//! ones to fit (checked at each commit), and the newcomer uses the unreserved room meanwhile.
//!
//! # Commits
//! [`Mempool::on_commit`] drops the committed records and costs work in proportion to the
//! block, not to the pool, in the two common cases:
//!
//! * the block is a prefix of the ready order (this node's own proposal): the rest stays
//!   valid as it is;
//! * the block and every ready record are *simple* (rd-spend, valuation, evidence: claims
//!   that read and write nothing but their attester's sequence and their own id): only the
//!   block's attesters are looked at. For each, one state read gives the committed next
//!   sequence; its ready records below it are replays of committed sequences and are
//!   evicted, the rest keep their contiguous sequences, and its held records are promoted.
//!
//! Otherwise (a pledge, release or revocation on either side, whose effects reach other
//! records through patents and targets) every remaining ready record is re-checked, in
//! order, against the new committed state (at most `records_max` rule checks, no
//! signature checks): a record a block made invalid (e.g. a pending pledge on a patent a
//! committed block pledged) is evicted, and the records of its attester behind it go back
//! to held (a new record for the freed sequence can fill the gap). The overlay of pending
//! state changes is trimmed of committed entries on the fast paths and rebuilt by a full
//! re-check when it outgrows the pool ([`OVERLAY_SLACK`]), so it stays bounded too.
//! Nothing here reads a clock, a socket or a disk: the caller passes the committed state
//! (a [`StateView`]) and the time.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, RwLock};

use credence_ledger::attestation::{AttestationDecodeError, AttestationId, Claim, ClaimKind};
use credence_ledger::block::Leaf;
use credence_ledger::governance::{GovState, Roster};
use credence_ledger::hash::{DigestMap, Hash};
use credence_ledger::ids::PatentNumber;
use credence_ledger::loan_rules::{Fact, FactKey};
use credence_ledger::rules::{self, ISSUED_AT_SKEW_MS, RecordMeta, Rejection, RuleError, StateDelta, StateView};
use credence_ledger::sig::{self, BatchItem, Domain, KeySetItem, SigError, Signature, SignedBytes, VerifyingKey};
use credence_ledger::verify::ChainContext;

/// Default [`MempoolLimits::records_max`]: ten blocks of the default 1,000 records.
pub const RECORDS_MAX_DEFAULT: usize = 10_000;
/// Default [`MempoolLimits::bytes_max`]: 16 MiB (sixteen default-sized blocks).
pub const BYTES_MAX_DEFAULT: usize = 16 * 1024 * 1024;
/// Default [`MempoolLimits::ahead_max`].
pub const AHEAD_MAX_DEFAULT: u64 = 256;
/// Default [`MempoolLimits::reserved_percent`].
pub const RESERVED_PERCENT_DEFAULT: u8 = 50;
/// The overlay of pending state changes may hold this many entries beyond twice the
/// ready records before a commit rebuilds it (a full re-check, amortised over the
/// commits that let it grow).
pub const OVERLAY_SLACK: usize = 4096;

/// True for claims whose rules read and write only the attester's sequence and the
/// record's own id (no patent slot, no other record): see the module's "Commits".
fn is_simple(claim: &Claim) -> bool {
    match claim {
        Claim::RdSpend(_)
        | Claim::PatentValuation(_)
        | Claim::Equivocation(_)
        | Claim::AccessKey(_)
        | Claim::Consent(_) => true,
        // A query record reads its access-key grant and consent records.
        Claim::PatentPledge(_) | Claim::PledgeRelease(_) | Claim::Revocation(_) | Claim::Query(_) => false,
        // The IP-loan kinds read and write shared state (patents, loans, pools, numbers).
        Claim::IpPledge(_)
        | Claim::PatentStatus(_)
        | Claim::Appraisal(_)
        | Claim::Loan(_)
        | Claim::LoanEvent(_)
        | Claim::RiskPool(_)
        | Claim::Disposal(_)
        | Claim::Qualification(_) => false,
        // Governance records read and write the governance state.
        Claim::GovernanceProposal(_) | Claim::GovernanceApproval(_) | Claim::KeyRotation(_) => false,
    }
}

/// The mempool's bounds. Ready and held records both count against `records_max` and `bytes_max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MempoolLimits {
    /// Most records (ready + held).
    pub records_max: usize,
    /// Most canonical attestation bytes (ready + held).
    pub bytes_max: usize,
    /// How far past an attester's next expected sequence a record may be held.
    pub ahead_max: u64,
    /// Percentage (at most 100) of `records_max` and of `bytes_max` reserved in equal
    /// shares for the members (see the module's "Fair shares").
    pub reserved_percent: u8,
}

impl Default for MempoolLimits {
    fn default() -> Self {
        MempoolLimits {
            records_max: RECORDS_MAX_DEFAULT,
            bytes_max: BYTES_MAX_DEFAULT,
            ahead_max: AHEAD_MAX_DEFAULT,
            reserved_percent: RESERVED_PERCENT_DEFAULT,
        }
    }
}

/// Why an attestation was not admitted. Every variant names the field and the rule;
/// those that are ledger rules carry the rules' stable [`Rejection`] (and its `R` code).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AdmitError {
    /// The bytes are not a canonical attestation (size, encoding, identifiers, trailing bytes).
    #[error("{field}: {rule}")]
    Malformed { field: &'static str, rule: String },
    /// A ledger rule refuses it (unknown attester, role, sequence replay, pledge conflicts,
    /// field rules, bad signature as R022, ...).
    #[error("{0}")]
    Rule(Rejection),
    /// The same attestation (same id) is already pending.
    #[error("attestation: {0} is already pending; an attestation is admitted once")]
    Duplicate(AttestationId),
    /// The sequence is too far past the next expected one to be held.
    #[error(
        "sequence: {got} is more than {ahead_max} ahead of the next expected sequence {expected}; submit the missing sequences first"
    )]
    TooFarAhead { expected: u64, got: u64, ahead_max: u64 },
    /// Another attestation by this attester with the same sequence is already held.
    #[error("sequence: {sequence} is already taken by held attestation {held}; a sequence is used once")]
    SequenceTaken { sequence: u64, held: AttestationId },
    /// The pool is at its bound; the record was valid and may be retried later.
    #[error("mempool full: the limit of {limit} {what} is reached; retry later")]
    Full { what: &'static str, limit: usize },
    /// The attester is past its share of the pool and the rest is reserved for other
    /// members (see the module's "Fair shares"); it may retry when its records commit.
    #[error(
        "mempool full for {attester}: it holds {used} pending {what}, past its reserved share of {share}, and the free room is reserved for other members; retry later"
    )]
    ShareFull { attester: String, what: &'static str, used: usize, share: usize },
    /// The committed state could not be read.
    #[error("state: {0}")]
    State(String),
}

impl AdmitError {
    /// A stable machine-readable code: the rules' `R0nn` for ledger rules, else a word.
    pub fn code(&self) -> String {
        match self {
            AdmitError::Rule(r) => format!("R{:03}", r.code()),
            AdmitError::TooFarAhead { .. } => format!("R{:03}", Rejection::SequenceGap { expected: 0, got: 0 }.code()),
            AdmitError::Malformed { .. } => "malformed".into(),
            AdmitError::Duplicate(_) => "duplicate".into(),
            AdmitError::SequenceTaken { .. } => "sequence_taken".into(),
            AdmitError::Full { .. } | AdmitError::ShareFull { .. } => "mempool_full".into(),
            AdmitError::State(_) => "state".into(),
        }
    }

    /// The field of the attestation (or request) at fault.
    pub fn field(&self) -> &'static str {
        match self {
            AdmitError::Malformed { field, .. } => field,
            AdmitError::Rule(r) => rejection_field(r),
            AdmitError::Duplicate(_) | AdmitError::Full { .. } | AdmitError::ShareFull { .. } => "attestation",
            AdmitError::TooFarAhead { .. } | AdmitError::SequenceTaken { .. } => "sequence",
            AdmitError::State(_) => "state",
        }
    }

    /// The rule broken, in words (the message without its code and field).
    pub fn rule(&self) -> String {
        let text = self.to_string();
        let code = self.code();
        let field = self.field();
        let text = text.strip_prefix(&format!("{code} ")).unwrap_or(&text);
        text.strip_prefix(&format!("{field}: ")).unwrap_or(text).to_string()
    }

    /// The ledger rejection, when the refusal is a ledger rule.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            AdmitError::Rule(r) => Some(r),
            _ => None,
        }
    }
}

/// The field a ledger rejection is about (the word after its `R` code).
pub fn rejection_field(r: &Rejection) -> &'static str {
    match r {
        Rejection::UnknownAttester(_)
        | Rejection::RoleNotPermitted { .. }
        | Rejection::ReleaseByNonPledgee { .. }
        | Rejection::RevokeByNonAttester(_) => "attester",
        Rejection::SequenceReplay { .. } | Rejection::SequenceGap { .. } => "sequence",
        Rejection::Duplicate(_) => "attestation",
        Rejection::IssuedInFuture { .. } => "issued_at_ms",
        Rejection::Field(e) => e.field,
        Rejection::PatentAlreadyPledged { .. } => "patent",
        Rejection::PledgeeNotBank(_) => "pledgee",
        Rejection::ReleaseTargetUnknown(_) | Rejection::ReleaseTargetNotPledge(_) | Rejection::PledgeNotActive(_) => {
            "pledge"
        }
        Rejection::RevokeTargetUnknown(_) | Rejection::AlreadyInactive(_) | Rejection::NotRevocable { .. } => "target",
        Rejection::BadSupersession(_) => "superseded_by",
        Rejection::BlockTimeNotIncreasing { .. } => "time_ms",
        Rejection::TooManyRecords { .. } | Rejection::TooManyBytes { .. } => "attestations",
        Rejection::BadSignature(_) | Rejection::KeyRotatedOut(_) | Rejection::KeyRevoked { .. } => "signature",
        Rejection::Evidence(_) => "evidence",
        Rejection::GovernanceNotValidator(_) | Rejection::MemberRemoved(_) => "attester",
        Rejection::ProposalUnknown(_)
        | Rejection::ProposalExpired { .. }
        | Rejection::DuplicateApproval { .. }
        | Rejection::ProposalClosed(_) => "proposal",
        Rejection::ExpiryOutOfRange { .. } => "expires_at_ms",
        Rejection::NoValidatorLeft => "change",
        Rejection::InvalidChange { field, .. } | Rejection::KeyInUse { field } => field,
        Rejection::WitnessName(_) | Rejection::WitnessNotInForce(_) => "name",
        Rejection::WitnessKey(_) => "key",
        Rejection::WitnessesFull(_) => "witnesses",
        Rejection::WitnessUrl(_) => "url",
        Rejection::BadPossession(_) => "possession",
        Rejection::GovernanceFull { .. } => "governance",
        Rejection::PatentNoStatus(_) | Rejection::PatentStatusForbids { .. } => "patent",
        Rejection::PledgorNotOwner { .. } => "pledgor",
        Rejection::PledgeOutlivesPatent { .. } => "end",
        Rejection::NotPledgee { .. } | Rejection::NotLender(_) | Rejection::NotPoolAdministrator(_) => "attester",
        Rejection::NotReservedPledge(_) | Rejection::AlreadyRegistered(_) | Rejection::PledgeNotRegistered(_) => {
            "pledge"
        }
        Rejection::CancellationMismatch { .. } => "cancellation",
        Rejection::NumberTaken { what, .. } => what,
        Rejection::StatusOutOfOrder { .. } => "as_of",
        Rejection::OwnerChangeWhilePledged { .. } => "owner",
        Rejection::LenderNotAttester(_) => "lender",
        Rejection::CollateralMismatch { .. } | Rejection::AppraisalMismatch { .. } | Rejection::AppraiserIsParty(_) => {
            "collateral"
        }
        Rejection::NotALoan(_)
        | Rejection::AlreadyDefaulted(_)
        | Rejection::DefaultNotConfirmed { .. }
        | Rejection::AlreadyEnrolled { .. }
        | Rejection::NotEnrolled { .. }
        | Rejection::AlreadyClaimed { .. }
        | Rejection::NoClaim { .. } => "loan",
        Rejection::EventBeforeLast { .. } | Rejection::OutsideWindow { .. } => "date",
        Rejection::CurrencyMismatch { field, .. } => field,
        Rejection::ExceedsOutstanding { .. }
        | Rejection::ClaimTooLarge { .. }
        | Rejection::PaymentExceedsClaim { .. } => "amount",
        Rejection::NotAPool(_) => "pool",
        Rejection::RegulatorScopeNotPermitted(_) => "scopes",
        Rejection::BadExpiry { .. } => "expires_at_ms",
        Rejection::NotAMember { field, .. } => field,
        Rejection::NotReadersKey(_) => "access_key",
        Rejection::NotAConsent(_) | Rejection::ConsentRequired(_) => "consent",
    }
}

/// An attestation that decoded canonically, passed the field rules, names a member and
/// carries that member's valid signature. Only the [`Verifier`] makes one: after checking the
/// signature, or, for the very bytes its node verified in a proposal under the roster in
/// force, after that check ([`Known::CheckedUnder`]).
#[derive(Clone, Debug)]
pub struct Verified {
    leaf: Leaf,
    attester: u16,
    /// Its signature was checked by this node in a proposal (same bytes, same roster),
    /// not again here ([`Known::CheckedUnder`]).
    checked_in_proposal: bool,
}

/// What admission knows of a decoded item before its signature would be checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Known {
    /// Nothing: check its signature.
    No,
    /// The same id is pending: [`AdmitError::Duplicate`], no check.
    Pending,
    /// The same bytes were verified by this node in a proposal against the roster with this
    /// digest ([`Mempool::note_checked`]): if that roster is the one in force, the
    /// signature is not checked again.
    CheckedUnder(Hash),
}

/// Most records remembered as signature-checked in a proposal ([`Mempool::note_checked`]):
/// a record a proposal brings before its gossip copy arrives, its copy arrives within a
/// height or two. 16,384 × about 170 bytes (under 3 MiB).
pub const CHECKED_IN_PROPOSALS_MAX: usize = 16_384;

impl Verified {
    pub fn leaf(&self) -> &Leaf {
        &self.leaf
    }
    pub fn id(&self) -> AttestationId {
        self.leaf.id
    }
    pub fn into_leaf(self) -> Leaf {
        self.leaf
    }
    /// Its signature was verified by this node in a proposal, not at this admission.
    pub fn checked_in_proposal(&self) -> bool {
        self.checked_in_proposal
    }
}

/// The members and keys in force at the next height, as the replica last committed:
/// one per node, shared by its mempool and its verifiers (governance changes them).
#[derive(Clone, Debug)]
pub struct InForce(Arc<RwLock<(u64, Arc<Roster>)>>);

impl InForce {
    /// What is in force at block 1.
    pub fn new(ctx: &ChainContext) -> InForce {
        InForce(Arc::new(RwLock::new((1, Arc::clone(ctx.genesis_roster())))))
    }
    /// The next height and its roster.
    pub fn get(&self) -> (u64, Arc<Roster>) {
        let g = self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        (g.0, Arc::clone(&g.1))
    }
    pub fn set(&self, next_height: u64, roster: Arc<Roster>) {
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = (next_height, roster);
    }
}

/// The lock-free half of admission: decoding, field rules, membership and the
/// signature under the key in force.
#[derive(Debug)]
pub struct Verifier {
    ctx: Arc<ChainContext>,
    in_force: InForce,
}

impl Verifier {
    /// A verifier for the node whose members in force `in_force` tracks ([`Mempool::in_force`]).
    pub fn new(ctx: Arc<ChainContext>, in_force: InForce) -> Verifier {
        Verifier { ctx, in_force }
    }

    /// Decodes `bytes` and checks fields, membership and the signature.
    pub fn verify(&self, bytes: Vec<u8>) -> Result<Verified, AdmitError> {
        self.verify_leaf(decode(bytes)?)
    }

    /// [`Verifier::verify`] for an already decoded leaf (e.g. from gossip).
    pub fn verify_leaf(&self, leaf: Leaf) -> Result<Verified, AdmitError> {
        let (_, roster) = self.in_force.get();
        let (attester, key) = signer(&roster, &leaf)?;
        if let Err(e) =
            key.verify(Domain::Attestation, &self.ctx.chain_id.0, leaf.body_bytes(), &leaf.attestation.signature)
        {
            return Err(signature_failure(&roster, &leaf, &self.ctx.chain_id, e));
        }
        Ok(Verified { leaf, attester, checked_in_proposal: false })
    }

    /// [`Verifier::verify`] for many attestations: every signature is checked in one batch
    /// on this thread (the ZIP-215 batch, whose verdicts are those of single checks):
    /// through the roster's [`Roster::key_table`] where it has one, else `sig::verify_batch`.
    /// One verdict per input, in order.
    ///
    /// One thread, since a node admits many batches at once (API requests and gossiped
    /// batches on the blocking pool): splitting each over the cores added a thread start
    /// and a join per batch and halved each batch equation, for no more parallelism under
    /// load (docs/BENCHMARKS.md §Throughput: one thread per batch).
    pub fn verify_batch(&self, items: Vec<Vec<u8>>) -> Vec<Result<Verified, AdmitError>> {
        self.verify_batch_unless(items, |leaves| vec![Known::No; leaves.len()])
    }

    /// [`Verifier::verify_batch`], except for what `known` (given every decoded item, in
    /// order) says of an item: [`Known::Pending`] is answered [`AdmitError::Duplicate`]
    /// without a signature check (gossip brings the same records from several peers, and a
    /// client retrying re-sends records already pending); [`Known::CheckedUnder`] the roster
    /// in force is not checked again (this node verified the same bytes in a proposal that
    /// brought the record before its gossip copy). Each signature is checked once per node.
    pub fn verify_batch_unless(
        &self,
        items: Vec<Vec<u8>>,
        known: impl FnOnce(&[&Leaf]) -> Vec<Known>,
    ) -> Vec<Result<Verified, AdmitError>> {
        let decoded: Vec<Result<Leaf, AdmitError>> = items.into_iter().map(decode).collect();
        let marks = known(&decoded.iter().flatten().collect::<Vec<_>>());
        assert_eq!(marks.len(), decoded.iter().flatten().count(), "one mark per decoded item");
        let (_, roster) = self.in_force.get();
        let mut marks = marks.into_iter();
        let checked: Vec<Result<Signer<'_>, AdmitError>> = decoded
            .into_iter()
            .map(|leaf| {
                let leaf = leaf?;
                let mark = marks.next();
                if mark == Some(Known::Pending) {
                    return Err(AdmitError::Duplicate(leaf.id));
                }
                let (attester, key) = signer(&roster, &leaf)?;
                let check = mark != Some(Known::CheckedUnder(roster.digest));
                Ok((leaf, attester, key, check))
            })
            .collect();
        let chain_id = &self.ctx.chain_id.0;
        let to_check = checked.iter().flatten().filter(|(_, _, _, check)| *check);
        // The roster's key table, where it has one, takes the key terms from precomputed
        // tables grouped by member; the verdicts are the same (`sig`'s tests). Both on this
        // thread (see above).
        let verdicts = match roster.key_table() {
            Some(table) => {
                let batch: Vec<KeySetItem<'_>> = to_check
                    .map(|(leaf, attester, _, _)| KeySetItem {
                        signer: usize::from(*attester),
                        msg: SignedBytes::Binary { domain: Domain::Attestation, chain_id, body: leaf.body_bytes() },
                        sig: &leaf.attestation.signature,
                    })
                    .collect();
                table.verify_many(&batch, 1)
            }
            None => {
                let batch: Vec<BatchItem<'_>> = to_check
                    .map(|(leaf, _, key, _)| BatchItem {
                        key,
                        domain: Domain::Attestation,
                        chain_id,
                        body: leaf.body_bytes(),
                        sig: &leaf.attestation.signature,
                    })
                    .collect();
                sig::verify_batch(&batch, 1)
            }
        };
        let mut verdicts = verdicts.into_iter();
        checked
            .into_iter()
            .map(|c| {
                let (leaf, attester, _, check) = c?;
                if !check {
                    return Ok(Verified { leaf, attester, checked_in_proposal: true });
                }
                // One verdict per item checked; a missing one fails closed.
                match verdicts.next() {
                    Some(Ok(())) => Ok(Verified { leaf, attester, checked_in_proposal: false }),
                    Some(Err(e)) => Err(signature_failure(&roster, &leaf, &self.ctx.chain_id, e)),
                    None => Err(bad_signature(SigError::Mismatch)),
                }
            })
            .collect()
    }
}

/// A decoded item with its attester's member index and key in force, and whether its
/// signature is to be checked at this admission.
type Signer<'r> = (Leaf, u16, &'r VerifyingKey, bool);

/// The attester's member index and the verifying key it holds in `roster`.
fn signer<'r>(roster: &'r Roster, leaf: &Leaf) -> Result<(u16, &'r VerifyingKey), AdmitError> {
    let body = &leaf.attestation.body;
    let unknown = || AdmitError::Rule(Rejection::UnknownAttester(body.attester.to_string()));
    let attester = roster.member_index(&body.attester).ok_or_else(unknown)?;
    let m = roster.members.get(usize::from(attester)).ok_or_else(unknown)?;
    if !m.active {
        return Err(AdmitError::Rule(Rejection::MemberRemoved(body.attester.to_string())));
    }
    Ok((attester, &m.verifying))
}

/// Canonical decoding with the field rules.
fn decode(bytes: Vec<u8>) -> Result<Leaf, AdmitError> {
    Leaf::from_bytes(bytes).map_err(|e| match e {
        AttestationDecodeError::Field(f) => AdmitError::Rule(Rejection::Field(f)),
        AttestationDecodeError::Decode(d) => AdmitError::Malformed { field: "attestation", rule: d.to_string() },
    })
}

fn bad_signature(e: SigError) -> AdmitError {
    AdmitError::Rule(Rejection::BadSignature(e.to_string()))
}

/// A signature that does not verify under the attester's key in force: R050 if it was made
/// with a key governance revoked, R049 with one rotated out, else R022.
fn signature_failure(roster: &Roster, leaf: &Leaf, chain_id: &credence_ledger::hash::Hash, e: SigError) -> AdmitError {
    match credence_ledger::rules::stale_key_in(roster, &leaf.attestation, leaf.body_bytes(), chain_id) {
        Some(r) => AdmitError::Rule(r),
        None => bad_signature(e),
    }
}

/// What [`Mempool::admit`] did with an attestation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admitted {
    pub id: AttestationId,
    /// `Some(next expected sequence)` if the record is held waiting for a gap to fill.
    pub held_for: Option<u64>,
    /// Held records of the same attester that this one let through, in order.
    pub promoted: Vec<AttestationId>,
    /// Held records that failed their full check when their turn came, and were dropped.
    pub evicted: Vec<(AttestationId, AdmitError)>,
}

/// What [`Mempool::on_commit`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommitOutcome {
    /// Pending records the block contained.
    pub removed: usize,
    /// Records the new state made invalid, with the reason.
    pub evicted: Vec<(AttestationId, AdmitError)>,
    /// Ready records sent back to held because an earlier record of their attester was evicted.
    pub demoted: usize,
    /// Held records the commit let through.
    pub promoted: usize,
}

/// Counts for status pages and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MempoolStats {
    /// Ready + held records.
    pub records: usize,
    /// Ready + held canonical bytes.
    pub bytes: usize,
    /// Held records (a subset of `records`).
    pub held: usize,
    pub limits: MempoolLimits,
}

/// A pending record as the pool reports it.
#[derive(Clone, Copy, Debug)]
pub struct Pending<'a> {
    pub leaf: &'a Leaf,
    /// True if waiting for an earlier sequence of its attester.
    pub held: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Ready, with its position in the FIFO order.
    Ready(u64),
    Held,
}

#[derive(Clone, Debug)]
struct Entry {
    leaf: Leaf,
    attester: u16,
    slot: Slot,
    /// From this wall-clock time on, the peers are taken to hold the record too: a
    /// proposal may name it by id ([`crate::compact`]).
    shared_at_ms: u64,
}

/// `Entry::shared_at_ms` of a record the peers are not taken to hold at any time.
const NEVER_SHARED: u64 = u64::MAX;

/// Where an admitted record came from: it decides when this node's proposals may name
/// it by id ([`crate::compact`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A client of this node (the API): the peers get it from this node's gossip, once
    /// [`crate::compact::CLIENT_RECORD_SHARED_AFTER_MS`] have passed.
    Client,
    /// A peer's gossip: its sender sent it to the other peers too.
    Peer,
    /// Made by this node and not gossiped (its evidence records): always carried whole.
    Own,
}

impl Origin {
    fn shared_at_ms(self, admitted_ms: u64) -> u64 {
        match self {
            Origin::Client => admitted_ms.saturating_add(crate::compact::CLIENT_RECORD_SHARED_AFTER_MS),
            Origin::Peer => admitted_ms,
            Origin::Own => NEVER_SHARED,
        }
    }
}

/// Records and canonical bytes: one member's pending use, a share, or the unused shares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Usage {
    records: usize,
    bytes: usize,
}

impl Usage {
    /// How much of `share` this use leaves unused.
    fn unused_of(self, share: Usage) -> Usage {
        Usage { records: share.records.saturating_sub(self.records), bytes: share.bytes.saturating_sub(self.bytes) }
    }
}

/// The state changes of the ready records, on top of the committed state.
#[derive(Debug, Default)]
struct Overlay {
    sequences: HashMap<u16, u64>,
    records: DigestMap<AttestationId, RecordMeta>,
    pledges: DigestMap<PatentNumber, Option<AttestationId>>,
    /// Governance as the pending governance records leave it.
    governance: Option<Arc<GovState>>,
    facts: HashMap<FactKey, Option<Fact>>,
}

impl Overlay {
    fn apply(&mut self, d: &StateDelta) {
        self.sequences.extend(d.sequences.iter().copied());
        self.records.extend(d.records.iter().copied());
        self.pledges.extend(d.pledges.iter().copied());
        if let Some(g) = &d.governance {
            self.governance = Some(Arc::clone(g));
        }
        self.facts.extend(d.facts.iter().cloned());
    }
}

/// The committed state seen through the pending records.
struct PendingView<'a, V: ?Sized> {
    base: &'a V,
    overlay: &'a Overlay,
}

impl<V: StateView + ?Sized> StateView for PendingView<'_, V> {
    type Error = V::Error;
    fn next_sequence(&self, attester: u16) -> Result<u64, V::Error> {
        match self.overlay.sequences.get(&attester) {
            Some(s) => Ok(*s),
            None => self.base.next_sequence(attester),
        }
    }
    fn record(&self, id: &AttestationId) -> Result<Option<RecordMeta>, V::Error> {
        match self.overlay.records.get(id) {
            Some(m) => Ok(Some(*m)),
            None => self.base.record(id),
        }
    }
    fn active_pledge(&self, patent: &PatentNumber) -> Result<Option<AttestationId>, V::Error> {
        match self.overlay.pledges.get(patent) {
            Some(p) => Ok(*p),
            None => self.base.active_pledge(patent),
        }
    }
    fn governance(&self) -> Result<Option<Arc<GovState>>, V::Error> {
        match &self.overlay.governance {
            Some(g) => Ok(Some(Arc::clone(g))),
            None => self.base.governance(),
        }
    }
    fn fact(&self, key: &FactKey) -> Result<Option<Fact>, V::Error> {
        match self.overlay.facts.get(key) {
            Some(f) => Ok(f.clone()),
            None => self.base.fact(key),
        }
    }
}

/// Each of `members` members' share of the reserved part of the bounds.
fn share_for(limits: MempoolLimits, members: usize) -> Usage {
    let percent = usize::from(limits.reserved_percent.min(100));
    let members = members.max(1);
    Usage {
        records: limits.records_max.saturating_mul(percent) / 100 / members,
        bytes: limits.bytes_max.saturating_mul(percent) / 100 / members,
    }
}

/// Σ over the members `reserved` marks of the part of `share` their use leaves unused.
fn unused_of_shares(used: &HashMap<u16, Usage>, reserved: &[bool], share: Usage) -> Usage {
    reserved.iter().enumerate().filter(|(_, r)| **r).fold(Usage::default(), |a, (i, _)| {
        let u = used.get(&(i as u16)).copied().unwrap_or_default().unused_of(share);
        Usage { records: a.records + u.records, bytes: a.bytes + u.bytes }
    })
}

fn state_err(e: impl std::fmt::Display) -> AdmitError {
    AdmitError::State(e.to_string())
}

/// A rules error about the one record checked, as an admission error.
fn rule_err<E: std::error::Error>(e: RuleError<E>) -> AdmitError {
    match e {
        RuleError::Record { rejection, .. } | RuleError::Block(rejection) => AdmitError::Rule(rejection),
        RuleError::State(e) => state_err(e),
    }
}

/// Pending attestations. See the module documentation.
#[derive(Debug)]
pub struct Mempool {
    ctx: Arc<ChainContext>,
    /// The next height and what is in force there (set by the replica at each commit).
    in_force: InForce,
    limits: MempoolLimits,
    entries: DigestMap<AttestationId, Entry>,
    /// Ready records in the order they became ready.
    ready: BTreeMap<u64, AttestationId>,
    /// Held records by (attester, sequence).
    held: BTreeMap<(u16, u64), AttestationId>,
    /// Ready records by (attester, sequence): the same set as `ready`.
    ready_seq: BTreeMap<(u16, u64), AttestationId>,
    /// Ready records whose claims are not simple ([`is_simple`]).
    complex_ready: usize,
    overlay: Overlay,
    next_order: u64,
    bytes: usize,
    /// Each member's reserved share of the bounds (see the module's "Fair shares").
    share: Usage,
    /// Pending records and bytes by attester (members with none are absent).
    used: HashMap<u16, Usage>,
    /// Σ over the members with a share of the part of their share they do not use.
    unused_shares: Usage,
    /// Which member indexes hold a share (`true`): the members in force when the shares
    /// were last divided.
    reserved: Vec<bool>,
    /// A roster whose shares did not fit yet (see the module's "Fair shares").
    roster_waiting: Option<Arc<Roster>>,
    /// Records not pending here whose signatures this node verified in a proposal: id →
    /// (signature, digest of the roster checked against), oldest first in `checked_order`;
    /// at most [`CHECKED_IN_PROPOSALS_MAX`].
    checked: DigestMap<AttestationId, (Signature, Hash)>,
    checked_order: VecDeque<AttestationId>,
}

impl Mempool {
    pub fn new(ctx: Arc<ChainContext>, limits: MempoolLimits) -> Mempool {
        let members = ctx.genesis.members.len();
        let share = share_for(limits, members);
        Mempool {
            in_force: InForce::new(&ctx),
            share,
            used: HashMap::new(),
            unused_shares: Usage { records: share.records * members, bytes: share.bytes * members },
            reserved: vec![true; members],
            roster_waiting: None,
            checked: DigestMap::default(),
            checked_order: VecDeque::new(),
            ctx,
            limits,
            entries: DigestMap::default(),
            ready: BTreeMap::new(),
            held: BTreeMap::new(),
            ready_seq: BTreeMap::new(),
            complex_ready: 0,
            overlay: Overlay::default(),
            next_order: 0,
            bytes: 0,
        }
    }

    /// The handle a node's verifiers share with this pool.
    pub fn in_force(&self) -> InForce {
        self.in_force.clone()
    }

    /// What is in force at `next_height` (the replica calls this after each commit): the
    /// verifiers' handle is updated, and the shares follow the members in force as soon as
    /// they fit (see the module's "Fair shares").
    pub fn follow_roster(&mut self, next_height: u64, roster: Arc<Roster>) {
        self.in_force.set(next_height, Arc::clone(&roster));
        let same = roster.members.len() == self.reserved.len()
            && roster.members.iter().zip(&self.reserved).all(|(m, r)| m.active == *r);
        self.roster_waiting = (!same).then_some(roster);
        self.reshare_if_it_fits();
    }

    /// Divides the shares among the waiting roster's members if the invariant then holds.
    fn reshare_if_it_fits(&mut self) {
        let Some(roster) = &self.roster_waiting else { return };
        let reserved: Vec<bool> = roster.members.iter().map(|m| m.active).collect();
        let share = share_for(self.limits, reserved.iter().filter(|r| **r).count());
        let unused = unused_of_shares(&self.used, &reserved, share);
        if self.entries.len() + unused.records > self.limits.records_max
            || self.bytes + unused.bytes > self.limits.bytes_max
        {
            return;
        }
        (self.share, self.reserved, self.unused_shares, self.roster_waiting) = (share, reserved, unused, None);
    }

    pub fn limits(&self) -> MempoolLimits {
        self.limits
    }

    /// Ready + held records.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Remembers that this node verified the signatures of `leaves` (of a proposal, records
    /// it did not hold) against the roster with digest `roster`, so that their gossip copies,
    /// if they come later, are not checked again ([`Known::CheckedUnder`]). Bounded by
    /// [`CHECKED_IN_PROPOSALS_MAX`], oldest forgotten first.
    pub fn note_checked<'a>(&mut self, leaves: impl IntoIterator<Item = &'a Leaf>, roster: Hash) {
        for leaf in leaves {
            if self.checked.insert(leaf.id, (leaf.attestation.signature, roster)).is_none() {
                self.checked_order.push_back(leaf.id);
            }
            while self.checked_order.len() > CHECKED_IN_PROPOSALS_MAX {
                if let Some(old) = self.checked_order.pop_front() {
                    self.checked.remove(&old);
                }
            }
        }
    }

    /// What admission knows of `leaf`: pending here, verified in a proposal (the same
    /// bytes: the same id, so the same body, and the same signature), or nothing.
    pub fn known(&self, leaf: &Leaf) -> Known {
        if self.entries.contains_key(&leaf.id) {
            return Known::Pending;
        }
        match self.checked.get(&leaf.id) {
            Some((signature, roster)) if *signature == leaf.attestation.signature => Known::CheckedUnder(*roster),
            _ => Known::No,
        }
    }

    /// Ready records: what [`Mempool::take`] can hand out now.
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    pub fn stats(&self) -> MempoolStats {
        MempoolStats { records: self.entries.len(), bytes: self.bytes, held: self.held.len(), limits: self.limits }
    }

    /// A pending (ready or held) record.
    pub fn get(&self, id: &AttestationId) -> Option<Pending<'_>> {
        self.entries.get(id).map(|e| Pending { leaf: &e.leaf, held: e.slot == Slot::Held })
    }

    /// The canonical bytes of pending record `id`, if the peers are taken to hold it too
    /// by wall-clock time `now_ms` (see [`Origin`]).
    pub fn shared_by(&self, id: &AttestationId, now_ms: u64) -> Option<&[u8]> {
        self.entries
            .get(id)
            .filter(|e| e.shared_at_ms <= now_ms && e.shared_at_ms != NEVER_SHARED)
            .map(|e| e.leaf.bytes.as_slice())
    }

    /// Records whose gossip never went out (the node's gossip queue was full, or the
    /// network refused the batch): the peers do not hold them, so this node's proposals
    /// carry them whole from now on. Unknown ids are skipped.
    pub fn unshare<'a>(&mut self, ids: impl IntoIterator<Item = &'a AttestationId>) {
        for id in ids {
            if let Some(e) = self.entries.get_mut(id) {
                e.shared_at_ms = NEVER_SHARED;
            }
        }
    }

    pub fn contains(&self, id: &AttestationId) -> bool {
        self.entries.contains_key(id)
    }

    /// The sequence the member at `attester` must use next: after its committed and its
    /// ready pending records (held records wait for exactly this sequence).
    pub fn next_sequence<V: StateView + ?Sized>(&self, view: &V, attester: u16) -> Result<u64, V::Error> {
        PendingView { base: view, overlay: &self.overlay }.next_sequence(attester)
    }

    /// Sequences of the member's held records, ascending.
    pub fn held_sequences(&self, attester: u16) -> Vec<u64> {
        self.held.range((attester, 0)..=(attester, u64::MAX)).map(|((_, s), _)| *s).collect()
    }

    /// Admits a verified attestation from `origin`, checked against `view` (the committed
    /// state) plus the pending records, at the caller's time `now_ms` (for the issue-time rule).
    pub fn admit<V: StateView + ?Sized>(
        &mut self,
        view: &V,
        v: Verified,
        origin: Origin,
        now_ms: u64,
    ) -> Result<Admitted, AdmitError> {
        let Verified { leaf, attester, .. } = v;
        let shared_at_ms = origin.shared_at_ms(now_ms);
        let id = leaf.id;
        if self.entries.contains_key(&id) {
            return Err(AdmitError::Duplicate(id));
        }
        let body = &leaf.attestation.body;
        let expected = self.next_sequence(view, attester).map_err(state_err)?;
        // Between the store's commit of a block and `on_commit`, the overlay can lag behind
        // the store (another proposer's block committed this attester's records): a record at
        // a sequence the store has used is a replay, whatever the overlay says.
        if self.overlay.sequences.contains_key(&attester) {
            let committed = view.next_sequence(attester).map_err(state_err)?;
            if body.sequence < committed {
                return Err(AdmitError::Rule(Rejection::SequenceReplay { expected: committed, got: body.sequence }));
            }
        }
        if body.sequence > expected {
            let ahead_max = self.limits.ahead_max;
            if body.sequence - expected > ahead_max {
                return Err(AdmitError::TooFarAhead { expected, got: body.sequence, ahead_max });
            }
            if let Some(held) = self.held.get(&(attester, body.sequence)) {
                return Err(AdmitError::SequenceTaken { sequence: body.sequence, held: *held });
            }
            self.precheck_held(attester, &leaf, now_ms)?;
            self.check_room(attester, leaf.bytes.len())?;
            self.held.insert((attester, body.sequence), id);
            self.insert(Entry { leaf, attester, slot: Slot::Held, shared_at_ms });
            return Ok(Admitted { id, held_for: Some(expected), promoted: Vec::new(), evicted: Vec::new() });
        }
        let pending = PendingView { base: view, overlay: &self.overlay };
        let delta = rules::check_attestation(
            &self.ctx.genesis,
            &pending,
            self.in_force.get().0,
            now_ms,
            &id,
            &leaf.attestation,
        )
        .map_err(rule_err)?;
        self.check_room(attester, leaf.bytes.len())?;
        self.make_ready(Entry { leaf, attester, slot: Slot::Held, shared_at_ms }, &delta);
        let (promoted, evicted) = self.promote(view, attester, now_ms)?;
        Ok(Admitted { id, held_for: None, promoted, evicted })
    }

    /// The checks a held record can pass before its turn: role and issue time.
    fn precheck_held(&self, attester: u16, leaf: &Leaf, now_ms: u64) -> Result<(), AdmitError> {
        let body = &leaf.attestation.body;
        let kind = body.claim.kind();
        let (_, roster) = self.in_force.get();
        let member = roster.members.get(usize::from(attester));
        let may = |m: &credence_ledger::governance::RosterMember| {
            let validator_kind =
                matches!(kind, ClaimKind::Equivocation | ClaimKind::GovernanceProposal | ClaimKind::GovernanceApproval);
            m.active && ((validator_kind && m.validator) || m.roles.iter().any(|r| r.allows(kind)))
        };
        if !member.is_some_and(may) {
            return Err(AdmitError::Rule(Rejection::RoleNotPermitted {
                attester: body.attester.to_string(),
                kind: kind.name(),
            }));
        }
        if body.issued_at_ms > now_ms.saturating_add(ISSUED_AT_SKEW_MS) {
            return Err(AdmitError::Rule(Rejection::IssuedInFuture {
                issued_at_ms: body.issued_at_ms,
                block_time_ms: now_ms,
            }));
        }
        Ok(())
    }

    fn check_room(&self, attester: u16, bytes: usize) -> Result<(), AdmitError> {
        if self.entries.len() >= self.limits.records_max {
            return Err(AdmitError::Full { what: "records", limit: self.limits.records_max });
        }
        if self.bytes.saturating_add(bytes) > self.limits.bytes_max {
            return Err(AdmitError::Full { what: "bytes", limit: self.limits.bytes_max });
        }
        // What the record takes beyond the attester's own unused share must come from
        // room that no member has reserved.
        let used = self.used.get(&attester).copied().unwrap_or_default();
        let share = self.share_of(attester);
        let own = used.unused_of(share);
        let beyond = Usage { records: 1usize.saturating_sub(own.records), bytes: bytes.saturating_sub(own.bytes) };
        let refuse = |what, used, share| {
            let attester = self.in_force.get().1.members.get(usize::from(attester)).map(|m| m.name.to_string());
            AdmitError::ShareFull { attester: attester.unwrap_or_default(), what, used, share }
        };
        if self.entries.len() + self.unused_shares.records + beyond.records > self.limits.records_max {
            return Err(refuse("records", used.records, share.records));
        }
        if self.bytes + self.unused_shares.bytes + beyond.bytes > self.limits.bytes_max {
            return Err(refuse("bytes", used.bytes, share.bytes));
        }
        Ok(())
    }

    /// The reserved share of member `attester` (none for members without one).
    fn share_of(&self, attester: u16) -> Usage {
        if self.reserved.get(usize::from(attester)).copied().unwrap_or(false) { self.share } else { Usage::default() }
    }

    /// Counts a record in or out of its attester's use and the unused shares.
    fn account(&mut self, attester: u16, bytes: usize, add: bool) {
        let before = self.used.get(&attester).copied().unwrap_or_default();
        let after = if add {
            Usage { records: before.records + 1, bytes: before.bytes + bytes }
        } else {
            Usage { records: before.records - 1, bytes: before.bytes - bytes }
        };
        let share = self.share_of(attester);
        let (was, is) = (before.unused_of(share), after.unused_of(share));
        self.unused_shares.records = self.unused_shares.records + is.records - was.records;
        self.unused_shares.bytes = self.unused_shares.bytes + is.bytes - was.bytes;
        if after == Usage::default() {
            self.used.remove(&attester);
        } else {
            self.used.insert(attester, after);
        }
    }

    fn insert(&mut self, e: Entry) {
        self.bytes += e.leaf.bytes.len();
        self.account(e.attester, e.leaf.bytes.len(), true);
        self.entries.insert(e.leaf.id, e);
    }

    /// Marks `e` (not in the pool) ready at the end of the FIFO order and applies its state change.
    fn make_ready(&mut self, mut e: Entry, delta: &StateDelta) {
        let order = self.next_order;
        self.next_order += 1;
        e.slot = Slot::Ready(order);
        self.ready.insert(order, e.leaf.id);
        self.index_ready(e.attester, &e.leaf);
        self.overlay.apply(delta);
        self.insert(e);
    }

    /// Adds a ready entry to `ready_seq` and `complex_ready`.
    fn index_ready(&mut self, attester: u16, leaf: &Leaf) {
        let body = &leaf.attestation.body;
        let old = self.ready_seq.insert((attester, body.sequence), leaf.id);
        assert!(old.is_none(), "two ready records of one attester share sequence {}", body.sequence);
        if !is_simple(&body.claim) {
            self.complex_ready += 1;
        }
    }

    fn remove(&mut self, id: &AttestationId) -> Option<Entry> {
        let e = self.entries.remove(id)?;
        self.bytes -= e.leaf.bytes.len();
        self.account(e.attester, e.leaf.bytes.len(), false);
        match e.slot {
            Slot::Ready(order) => {
                self.ready.remove(&order);
                let body = &e.leaf.attestation.body;
                self.ready_seq.remove(&(e.attester, body.sequence));
                if !is_simple(&body.claim) {
                    self.complex_ready -= 1;
                }
            }
            Slot::Held => {
                self.held.remove(&(e.attester, e.leaf.attestation.body.sequence));
            }
        }
        Some(e)
    }

    /// Promotes the attester's held records while the next one is held; drops held
    /// records its sequence has passed. Returns (promoted, evicted).
    #[allow(clippy::type_complexity)]
    fn promote<V: StateView + ?Sized>(
        &mut self,
        view: &V,
        attester: u16,
        now_ms: u64,
    ) -> Result<(Vec<AttestationId>, Vec<(AttestationId, AdmitError)>), AdmitError> {
        let mut promoted = Vec::new();
        let mut evicted = Vec::new();
        loop {
            let next = self.next_sequence(view, attester).map_err(state_err)?;
            // Held records at or below a sequence already used can never be valid.
            let stale: Vec<(u64, AttestationId)> =
                self.held.range((attester, 0)..(attester, next)).map(|((_, s), id)| (*s, *id)).collect();
            for (s, id) in stale {
                self.remove(&id);
                evicted.push((id, AdmitError::Rule(Rejection::SequenceReplay { expected: next, got: s })));
            }
            let Some(id) = self.held.get(&(attester, next)).copied() else { break };
            let Some(e) = self.remove(&id) else { break };
            let pending = PendingView { base: view, overlay: &self.overlay };
            let height = self.in_force.get().0;
            match rules::check_attestation(&self.ctx.genesis, &pending, height, now_ms, &id, &e.leaf.attestation) {
                Ok(delta) => {
                    self.make_ready(e, &delta);
                    promoted.push(id);
                }
                Err(RuleError::State(err)) => {
                    // Put it back as it was; the state could not be read.
                    self.held.insert((attester, next), id);
                    self.insert(e);
                    return Err(state_err(err));
                }
                Err(err) => {
                    evicted.push((id, rule_err(err)));
                    break;
                }
            }
        }
        Ok((promoted, evicted))
    }

    /// Ready records for a block, in an order `rules::apply_block` accepts against the
    /// committed state: the longest prefix of the ready order within `records_max` records
    /// and `bytes_max` bytes. Records stay in the pool until [`Mempool::on_commit`]
    /// removes them (a proposal may not commit).
    pub fn take(&self, records_max: usize, bytes_max: usize) -> Vec<Leaf> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for id in self.ready.values() {
            let Some(e) = self.entries.get(id) else { continue };
            let len = e.leaf.bytes.len();
            if out.len() >= records_max || bytes.saturating_add(len) > bytes_max {
                break;
            }
            bytes += len;
            out.push(e.leaf.clone());
        }
        out
    }

    /// Removes the records of a committed block (`committed`, its leaves) and re-checks
    /// what the block may have made invalid against `view`, which must already include
    /// that block (see the module's "Commits" for how much is re-checked). On a state
    /// read error the pool is emptied (its records can be resubmitted) and the error
    /// returned.
    pub fn on_commit<V: StateView + ?Sized>(
        &mut self,
        view: &V,
        committed: &[Leaf],
    ) -> Result<CommitOutcome, AdmitError> {
        let mut out = CommitOutcome::default();
        let result = self.settle(view, committed, &mut out);
        self.reshare_if_it_fits();
        self.check_invariants();
        match result {
            Ok(()) => Ok(out),
            Err(e) => {
                self.entries.clear();
                self.ready.clear();
                self.held.clear();
                self.ready_seq.clear();
                self.complex_ready = 0;
                self.overlay = Overlay::default();
                self.bytes = 0;
                self.used.clear();
                self.unused_shares = unused_of_shares(&self.used, &self.reserved, self.share);
                self.reshare_if_it_fits();
                Err(e)
            }
        }
    }

    fn settle<V: StateView + ?Sized>(
        &mut self,
        view: &V,
        committed: &[Leaf],
        out: &mut CommitOutcome,
    ) -> Result<(), AdmitError> {
        // Common case: the block is a prefix of the ready order (e.g. this node's own
        // proposal). Every remaining record was checked against exactly that prefix on
        // top of the old state, which is the new state, and the overlay's entries already
        // agree with it: nothing to re-check.
        let prefix =
            committed.len() <= self.ready.len() && self.ready.values().zip(committed).all(|(id, l)| *id == l.id);
        for leaf in committed {
            if self.remove(&leaf.id).is_some() {
                out.removed += 1;
            }
        }
        let simple = self.complex_ready == 0 && committed.iter().all(|l| is_simple(&l.attestation.body.claim));
        if prefix {
            if simple {
                self.forget_committed(committed);
            }
        } else if !(simple && self.settle_simple(view, committed, out)?) {
            return self.revalidate(view, out);
        }
        if self.overlay.records.len() > 2 * self.ready.len() + OVERLAY_SLACK {
            return self.revalidate(view, out);
        }
        Ok(())
    }

    /// With no complex record on either side, the committed records' overlay entries
    /// are the committed state now: drops them (what keeps the overlay bounded).
    fn forget_committed(&mut self, committed: &[Leaf]) {
        debug_assert_eq!(self.complex_ready, 0);
        for leaf in committed {
            self.overlay.records.remove(&leaf.id);
        }
        for a in self.attesters_of(committed) {
            if self.ready_seq.range((a, 0)..=(a, u64::MAX)).next().is_none() {
                self.overlay.sequences.remove(&a);
            }
        }
    }

    /// Genesis indexes of the attesters of `leaves` (a committed block names members only).
    fn attesters_of(&self, leaves: &[Leaf]) -> BTreeSet<u16> {
        let (_, roster) = self.in_force.get();
        leaves.iter().filter_map(|l| roster.member_index(&l.attestation.body.attester)).collect()
    }

    /// The fast path after another proposer's block when the block and every ready
    /// record are simple: per attester of the block, evicts ready replays of its now
    /// committed sequences and promotes its held records. One state read per attester
    /// plus the rule checks of promoted records. Returns false if an attester's ready
    /// records would not start at its committed next sequence, which the ready order's
    /// invariants exclude; the caller then re-checks everything, which rebuilds the
    /// overlay and the ready order from scratch whatever this changed.
    fn settle_simple<V: StateView + ?Sized>(
        &mut self,
        view: &V,
        committed: &[Leaf],
        out: &mut CommitOutcome,
    ) -> Result<bool, AdmitError> {
        debug_assert_eq!(self.complex_ready, 0);
        // Held records' issue times were checked at admission (see `revalidate`).
        let no_clock = rules::NO_CLOCK_MS;
        for leaf in committed {
            self.overlay.records.remove(&leaf.id);
        }
        for a in self.attesters_of(committed) {
            let next = view.next_sequence(a).map_err(state_err)?;
            let replays: Vec<(u64, AttestationId)> =
                self.ready_seq.range((a, 0)..(a, next)).map(|((_, s), id)| (*s, *id)).collect();
            for (s, id) in replays {
                self.remove(&id);
                self.overlay.records.remove(&id);
                out.evicted.push((id, AdmitError::Rule(Rejection::SequenceReplay { expected: next, got: s })));
            }
            match self.ready_seq.range((a, 0)..=(a, u64::MAX)).next() {
                None => {
                    self.overlay.sequences.remove(&a);
                }
                Some(((_, first), _)) if *first == next => {}
                Some(_) => return Ok(false),
            }
            let (promoted, evicted) = self.promote(view, a, no_clock)?;
            out.promoted += promoted.len();
            out.evicted.extend(evicted);
        }
        Ok(true)
    }

    /// The bookkeeping agrees with itself (cheap counts; run after every commit).
    fn check_invariants(&self) {
        assert_eq!(self.ready.len() + self.held.len(), self.entries.len(), "every record is ready or held");
        assert_eq!(self.ready.len(), self.ready_seq.len(), "ready records are indexed by sequence");
        assert!(self.complex_ready <= self.ready.len(), "complex ready records are ready records");
        let used = self
            .used
            .values()
            .fold(Usage::default(), |a, u| Usage { records: a.records + u.records, bytes: a.bytes + u.bytes });
        assert_eq!(used, Usage { records: self.entries.len(), bytes: self.bytes }, "use by attester adds up");
        let unused = unused_of_shares(&self.used, &self.reserved, self.share);
        assert_eq!(unused, self.unused_shares, "the unused shares add up");
        assert!(self.entries.len() + unused.records <= self.limits.records_max, "shares fit the record bound");
        assert!(self.bytes + unused.bytes <= self.limits.bytes_max, "shares fit the byte bound");
    }

    fn revalidate<V: StateView + ?Sized>(&mut self, view: &V, out: &mut CommitOutcome) -> Result<(), AdmitError> {
        // Issue times and proposal expiries were checked at admission against the
        // admitting node's clock; a re-check must not evict a record for a clock it no
        // longer has (the block that includes it checks them at its time).
        let no_clock = rules::NO_CLOCK_MS;
        let order: Vec<(u64, AttestationId)> = std::mem::take(&mut self.ready).into_iter().collect();
        self.ready_seq.clear();
        self.complex_ready = 0;
        self.overlay = Overlay::default();
        for (pos, id) in order {
            let Some(e) = self.entries.get(&id) else { continue };
            let pending = PendingView { base: view, overlay: &self.overlay };
            let height = self.in_force.get().0;
            match rules::check_attestation(&self.ctx.genesis, &pending, height, no_clock, &id, &e.leaf.attestation) {
                Ok(delta) => {
                    self.ready.insert(pos, id);
                    let body = &e.leaf.attestation.body;
                    let old = self.ready_seq.insert((e.attester, body.sequence), id);
                    assert!(old.is_none(), "two ready records of one attester share sequence {}", body.sequence);
                    self.complex_ready += usize::from(!is_simple(&body.claim));
                    self.overlay.apply(&delta);
                }
                Err(RuleError::State(err)) => return Err(state_err(err)),
                Err(RuleError::Record { rejection: Rejection::SequenceGap { expected, got }, .. })
                    if got - expected <= self.limits.ahead_max
                        && !self.held.contains_key(&(e.attester, e.leaf.attestation.body.sequence)) =>
                {
                    let key = (e.attester, got);
                    if let Some(e) = self.entries.get_mut(&id) {
                        e.slot = Slot::Held;
                    }
                    self.held.insert(key, id);
                    out.demoted += 1;
                }
                Err(err) => {
                    let err = rule_err(err);
                    if let Some(e) = self.entries.remove(&id) {
                        self.bytes -= e.leaf.bytes.len();
                        self.account(e.attester, e.leaf.bytes.len(), false);
                    }
                    out.evicted.push((id, err));
                }
            }
        }
        let attesters: Vec<u16> = {
            let mut a: Vec<u16> = self.held.keys().map(|(a, _)| *a).collect();
            a.dedup();
            a
        };
        for a in attesters {
            let (promoted, evicted) = self.promote(view, a, no_clock)?;
            out.promoted += promoted.len();
            out.evicted.extend(evicted);
        }
        Ok(())
    }
}

/// What [`admit_batch`] did with each item, in input order.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    pub results: Vec<Result<Admitted, AdmitError>>,
    /// Admitted leaves (for gossip), in order.
    pub leaves: Vec<Leaf>,
    /// Items that did not decode or whose signature is bad: an honest relay forwards none.
    pub invalid: usize,
    /// Items whose signature was checked and valid.
    pub verified: usize,
}

impl BatchOutcome {
    pub fn admitted(&self) -> usize {
        self.results.iter().filter(|r| r.is_ok()).count()
    }
}

/// The one admission path, for API batches, gossiped batches and the simulator's
/// clients and peers (`origin` says which): every item's signature in one batch check
/// (no lock held), then admission in input order under one mempool lock, reading the
/// committed state through `view`.
/// Lock order: the mempool, then the store (see ARCHITECTURE.md, "Locks").
pub fn admit_batch<V: StateView + ?Sized>(
    verifier: &Verifier,
    view: &V,
    pool: &std::sync::Mutex<Mempool>,
    items: Vec<Vec<u8>>,
    origin: Origin,
    now_ms: u64,
) -> BatchOutcome {
    let lock = || pool.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let verdicts = verifier.verify_batch_unless(items, |leaves| {
        let pool = lock();
        leaves.iter().map(|leaf| pool.known(leaf)).collect()
    });
    let mut out = BatchOutcome { results: Vec::with_capacity(verdicts.len()), ..BatchOutcome::default() };
    let mut pool = lock();
    for v in verdicts {
        let result = match v {
            Ok(v) => {
                if !v.checked_in_proposal() {
                    out.verified += 1;
                }
                pool.admit(view, v, origin, now_ms)
            }
            Err(e) => {
                if matches!(
                    e,
                    AdmitError::Malformed { .. } | AdmitError::Rule(Rejection::BadSignature(_) | Rejection::Field(_))
                ) {
                    out.invalid += 1;
                }
                Err(e)
            }
        };
        if let Ok(a) = &result
            && let Some(p) = pool.get(&a.id)
        {
            out.leaves.push(p.leaf.clone());
        }
        out.results.push(result);
    }
    out
}
