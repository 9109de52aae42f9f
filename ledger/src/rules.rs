//! Ledger rules: a pure function from (state, block) to a state change or a numbered rejection.
//!
//! The state is derived entirely from the chain, so any node or auditor can
//! rebuild it by replaying blocks. Rules see it only through [`StateView`],
//! which the in-memory state and the durable store both implement.

use std::collections::HashMap;
use std::sync::Arc;

use crate::hash::{DigestKeyed, DigestMap};

use serde::{Deserialize, Serialize};

use crate::access::{ACCESS_KEY_LIFETIME_MS_MAX, CONSENT_LIFETIME_MS_MAX, Scope};
use crate::attestation::{Attestation, AttestationId, Claim, ClaimKind, FieldError};
use crate::genesis::{Genesis, Role};
use crate::governance::{
    self, ACTIVATION_DELAY_HEIGHTS, ChangeError, GovState, OpenProposal, PROPOSAL_TTL_MS_MAX, PROPOSALS_OPEN_MAX,
    Pending, SCHEDULED_MAX, Scheduled,
};
use crate::ids::{Currency, Date, Money, PatentNumber, Uscc};
use crate::loan_rules::{self, Fact, FactKey};

/// How far an attestation's `issued_at_ms` may run ahead of its block's time
/// (clock skew between an attester and the proposer).
pub const ISSUED_AT_SKEW_MS: u64 = 60_000;

/// The time [`check_attestation`] is given to re-check records without a clock (a
/// mempool after a commit): the rules that compare with the block time pass —
/// R006 (issued in the future), R042 (approval after expiry) and R043 (expiry out of
/// range) — and no expired proposal is pruned; the block that includes the record
/// checks them at its own time.
pub const NO_CLOCK_MS: u64 = u64::MAX;

/// What the rules remember about each committed attestation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordMeta {
    /// Index of the attester among the members (genesis members in name order, then those governance added).
    pub attester: u16,
    pub kind: ClaimKind,
    pub status: RecordStatus,
    /// For pledges: the patent and the pledgee's member index.
    pub pledge: Option<(PatentNumber, u16)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordStatus {
    Active,
    Revoked,
    /// A pledge its pledgee released.
    Released,
}

/// Read access to the derived state, as of the end of the previous block.
pub trait StateView {
    type Error: std::error::Error + Send + Sync + 'static;
    /// The sequence number the member at `attester` must use next (1 for a new attester).
    fn next_sequence(&self, attester: u16) -> Result<u64, Self::Error>;
    fn record(&self, id: &AttestationId) -> Result<Option<RecordMeta>, Self::Error>;
    /// The id of the active pledge on `patent`, if any.
    fn active_pledge(&self, patent: &PatentNumber) -> Result<Option<AttestationId>, Self::Error>;
    /// A fact of the IP-loan state ([`crate::loan_rules`]).
    fn fact(&self, key: &FactKey) -> Result<Option<Fact>, Self::Error>;
    /// The governance state after the last block, or `None` if no block changed it
    /// (then it is the genesis state, [`Genesis::governance`]).
    fn governance(&self) -> Result<Option<Arc<GovState>>, Self::Error>;
}

/// The governance state in force for the block at `height` on top of `view`: the
/// state after the previous block with the changes due at `height` applied.
pub fn governance_at<V: StateView + ?Sized>(
    genesis: &Genesis,
    view: &V,
    height: u64,
) -> Result<Arc<GovState>, V::Error> {
    let base = view.governance()?.unwrap_or_else(|| genesis.governance());
    Ok(base.advanced(height))
}

/// The change one block makes to the state. Applied atomically with the block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateDelta {
    /// New next-sequence per member index.
    pub sequences: Vec<(u16, u64)>,
    /// New or changed records.
    pub records: Vec<(AttestationId, RecordMeta)>,
    /// Pledge slots set (`Some`) or cleared (`None`).
    pub pledges: Vec<(PatentNumber, Option<AttestationId>)>,
    /// The governance state after the block, if the block changed it (a governance
    /// record, or a change that took effect at its height).
    pub governance: Option<Arc<GovState>>,
    /// IP-loan facts set (`Some`) or cleared (`None`), in order (the last change of a key wins).
    pub facts: Vec<(FactKey, Option<Fact>)>,
    /// Each record's attester as a member index, in block order: the verification core
    /// hands it to the signature checks, which take the key from the roster by index
    /// instead of looking the name up again. Not stored.
    pub attesters: Vec<u16>,
}

/// A numbered, stable reason to refuse an attestation or a block.
/// The numbers never change meaning; new ones are appended.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum Rejection {
    #[error("R001 attester: '{0}' is not a member of this consortium")]
    UnknownAttester(String),
    #[error("R002 attester: '{attester}' has no role that allows attesting {kind}")]
    RoleNotPermitted { attester: String, kind: &'static str },
    #[error("R003 sequence: {got} was already used by this attester (next is {expected}); replays are refused")]
    SequenceReplay { expected: u64, got: u64 },
    #[error("R004 sequence: {got} skips ahead (next is {expected}); sequences have no gaps")]
    SequenceGap { expected: u64, got: u64 },
    /// Reserved: a duplicate id is always caught as R003 (the id hashes the attester and sequence).
    #[error("R005 attestation: {0} is already on the ledger")]
    Duplicate(AttestationId),
    #[error(
        "R006 issued_at_ms: {issued_at_ms} is more than {ISSUED_AT_SKEW_MS} ms after the block time {block_time_ms}"
    )]
    IssuedInFuture { issued_at_ms: u64, block_time_ms: u64 },
    #[error("R007 {0}")]
    Field(FieldError),
    #[error("R008 patent: {patent} already has an active pledge {active}")]
    PatentAlreadyPledged { patent: String, active: AttestationId },
    #[error("R009 pledgee: '{0}' is not a member with the bank role")]
    PledgeeNotBank(String),
    #[error("R010 pledge: {0} is not on the ledger")]
    ReleaseTargetUnknown(AttestationId),
    #[error("R011 pledge: {0} is not a pledge")]
    ReleaseTargetNotPledge(AttestationId),
    #[error("R012 attester: only the pledgee '{pledgee}' may release pledge {pledge}")]
    ReleaseByNonPledgee { pledgee: String, pledge: AttestationId },
    #[error("R013 pledge: {0} is not active (already released or revoked)")]
    PledgeNotActive(AttestationId),
    #[error("R014 target: {0} is not on the ledger")]
    RevokeTargetUnknown(AttestationId),
    #[error("R015 attester: only the original attester may revoke {0}")]
    RevokeByNonAttester(AttestationId),
    #[error("R016 target: {0} is already revoked or released")]
    AlreadyInactive(AttestationId),
    #[error(
        "R017 target: {id} is a {kind}; only rd-spend, patent-valuation, pledge, appraisal, qualification, access-key and consent can be revoked"
    )]
    NotRevocable { id: AttestationId, kind: &'static str },
    #[error("R018 superseded_by: {0} must be an active attestation of the same kind by the same attester")]
    BadSupersession(AttestationId),
    #[error("R019 time_ms: block time {time_ms} must be later than the previous block's {prev_ms}")]
    BlockTimeNotIncreasing { time_ms: u64, prev_ms: u64 },
    #[error("R020 attestations: {count} records exceed block_records_max {max}")]
    TooManyRecords { count: usize, max: u32 },
    #[error("R021 attestations: {bytes} bytes exceed block_bytes_max {max}")]
    TooManyBytes { bytes: usize, max: u32 },
    #[error("R022 signature: {0}")]
    BadSignature(String),
    #[error("R023 evidence: {0}")]
    Evidence(crate::vote::EvidenceError),
    #[error("R040 attester: '{0}' is not a validator in force; only validators propose and approve governance changes")]
    GovernanceNotValidator(String),
    #[error("R041 proposal: {0} is not a governance proposal on the ledger")]
    ProposalUnknown(AttestationId),
    #[error("R042 proposal: {id} expired at {expires_at_ms} ms, before the block time {time_ms}")]
    ProposalExpired { id: AttestationId, expires_at_ms: u64, time_ms: u64 },
    #[error(
        "R043 expires_at_ms: {expires_at_ms} must be after the block time {time_ms} and at most {PROPOSAL_TTL_MS_MAX} ms later"
    )]
    ExpiryOutOfRange { expires_at_ms: u64, time_ms: u64 },
    #[error("R044 proposal: '{approver}' already approved {id}; approvals count once")]
    DuplicateApproval { approver: String, id: AttestationId },
    #[error("R045 proposal: {0} is closed (it took its quorum, or it expired)")]
    ProposalClosed(AttestationId),
    #[error("R046 change: it would leave no validator")]
    NoValidatorLeft,
    #[error("R047 {field}: {rule}")]
    InvalidChange { field: &'static str, rule: String },
    #[error("R048 attester: '{0}' was removed from the consortium")]
    MemberRemoved(String),
    #[error("R049 signature: made with a key of '{0}' that was rotated out; only its current key signs")]
    KeyRotatedOut(String),
    #[error("R050 signature: made with a key of '{member}' revoked from height {from_height}")]
    KeyRevoked { member: String, from_height: u64 },
    #[error("R051 possession: the new key's proof of possession does not verify ({0})")]
    BadPossession(String),
    #[error("R052 governance: {what} is full ({max}); wait for a change to take effect or expire")]
    GovernanceFull { what: &'static str, max: usize },
    #[error("R053 {field}: the key is or was a member's key; keys are never shared or reused")]
    KeyInUse { field: &'static str },
    // ---- Witnesses named by governance: R054..=R058, contiguous. ----
    #[error("R054 name: {0}")]
    WitnessName(String),
    #[error("R055 key: {0}")]
    WitnessKey(String),
    #[error("R056 witnesses: {0}")]
    WitnessesFull(String),
    #[error("R057 name: '{0}' is not a witness in force (named in genesis or added by governance, and not removed)")]
    WitnessNotInForce(String),
    #[error("R058 url: {0}")]
    WitnessUrl(String),
    // ---- The IP-loan lifecycle: R101.. (crate::loan_rules). ----
    #[error("R101 patent: {0} has no patent-status record on the ledger; its status must be recorded before a pledge")]
    PatentNoStatus(String),
    #[error("R102 pledgor: {pledgor} is not the patent's owner on the ledger ({owner})")]
    PledgorNotOwner { pledgor: Uscc, owner: Uscc },
    #[error("R103 patent: {patent} cannot be pledged: {reason}")]
    PatentStatusForbids { patent: String, reason: &'static str },
    #[error("R104 end: the pledge's debt term ends {end}, not before the patent expires {expires}")]
    PledgeOutlivesPatent { end: Date, expires: Date },
    #[error("R105 attester: only the pledgee '{pledgee}' may reserve, register, release or dispose of pledge {pledge}")]
    NotPledgee { pledgee: String, pledge: AttestationId },
    #[error("R106 pledge: {0} is not an ip-pledge reservation on the ledger")]
    NotReservedPledge(AttestationId),
    #[error("R107 pledge: {0} is already registered")]
    AlreadyRegistered(AttestationId),
    #[error(
        "R108 cancellation: pledge {pledge} {}",
        if *registered { "is registered, so its release needs CNIPA's cancellation" } else { "was never registered, so its release has no CNIPA cancellation" }
    )]
    CancellationMismatch { pledge: AttestationId, registered: bool },
    #[error("R109 {what}: {number} is already used by {by}")]
    NumberTaken { what: &'static str, number: String, by: AttestationId },
    #[error("R110 as_of: {as_of} is before the patent's latest status ({latest})")]
    StatusOutOfOrder { as_of: Date, latest: Date },
    #[error(
        "R111 owner: patent {patent} is pledged ({pledge}); its owner changes only by the pledge's disposal or after its release"
    )]
    OwnerChangeWhilePledged { patent: String, pledge: AttestationId },
    #[error("R112 lender: '{0}' must be the attester")]
    LenderNotAttester(String),
    #[error("R113 collateral: pledge {pledge} cannot secure this loan: {reason}")]
    CollateralMismatch { pledge: AttestationId, reason: &'static str },
    #[error("R114 collateral: appraisal {appraisal} cannot support this loan: {reason}")]
    AppraisalMismatch { appraisal: AttestationId, reason: &'static str },
    #[error("R115 collateral: appraisal {0} was made by a party to the loan (the lender or the borrower)")]
    AppraiserIsParty(AttestationId),
    #[error("R116 loan: {0} is not a loan on the ledger")]
    NotALoan(AttestationId),
    #[error("R117 attester: only the lender '{0}' may record this loan's events and claims")]
    NotLender(String),
    #[error("R118 date: {date} is before {last}, the loan's (or claim's) latest date")]
    EventBeforeLast { date: Date, last: Date },
    #[error("R119 {field}: currency {got} must be {expected}")]
    CurrencyMismatch { field: &'static str, expected: Currency, got: Currency },
    #[error("R120 amount: {amount} exceeds the outstanding principal {outstanding}")]
    ExceedsOutstanding { amount: Money, outstanding: Money },
    #[error("R121 loan: {0} has already defaulted")]
    AlreadyDefaulted(AttestationId),
    #[error("R122 loan: {loan} has no confirmed default of at least {min} days overdue (it has {days})")]
    DefaultNotConfirmed { loan: AttestationId, days: u32, min: u16 },
    #[error("R123 pool: {0} is not a risk pool on the ledger")]
    NotAPool(AttestationId),
    #[error("R124 attester: only the pool administrator '{0}' may do this")]
    NotPoolAdministrator(String),
    #[error("R125 date: {date} is outside the {what} window {from}..={until}")]
    OutsideWindow { what: &'static str, date: Date, from: Date, until: Date },
    #[error("R126 loan: {loan} is already enrolled in pool {pool}")]
    AlreadyEnrolled { pool: AttestationId, loan: AttestationId },
    #[error("R127 loan: {loan} is not enrolled in pool {pool}")]
    NotEnrolled { pool: AttestationId, loan: AttestationId },
    #[error("R128 loan: {loan} already has a claim on pool {pool}; one claim per loan per pool")]
    AlreadyClaimed { pool: AttestationId, loan: AttestationId },
    #[error("R129 amount: {amount} exceeds {max} ({reason})")]
    ClaimTooLarge { amount: Money, max: Money, reason: &'static str },
    #[error("R130 loan: {loan} has no claim on pool {pool} to pay")]
    NoClaim { pool: AttestationId, loan: AttestationId },
    #[error("R131 amount: payments would total {paid}, above the claim {claim}")]
    PaymentExceedsClaim { paid: Money, claim: Money },
    #[error("R132 pledge: {0} is not registered with CNIPA, so it cannot be disposed of")]
    PledgeNotRegistered(AttestationId),
    // --- access (issue 12): R024..=R029, contiguous ---
    #[error("R024 scopes: '{0}' has no regulator role, so it cannot grant the regulator scope")]
    RegulatorScopeNotPermitted(String),
    #[error(
        "R025 expires_at_ms: {expires_at_ms} must be after issued_at_ms {issued_at_ms} and at most {lifetime_max_ms} ms later"
    )]
    BadExpiry { expires_at_ms: u64, issued_at_ms: u64, lifetime_max_ms: u64 },
    #[error("R026 {field}: '{name}' is not a member of this consortium")]
    NotAMember { field: &'static str, name: String },
    #[error("R027 access_key: {0} is not an access-key grant by the reader's member")]
    NotReadersKey(AttestationId),
    #[error("R028 consent: {0} is not a consent record")]
    NotAConsent(AttestationId),
    #[error("R029 consent: required, as the reader '{0}' is not a regulator")]
    ConsentRequired(String),
}

impl Rejection {
    /// The stable numeric code (the number after `R` in the message).
    pub fn code(&self) -> u16 {
        match self {
            Rejection::UnknownAttester(_) => 1,
            Rejection::RoleNotPermitted { .. } => 2,
            Rejection::SequenceReplay { .. } => 3,
            Rejection::SequenceGap { .. } => 4,
            Rejection::Duplicate(_) => 5,
            Rejection::IssuedInFuture { .. } => 6,
            Rejection::Field(_) => 7,
            Rejection::PatentAlreadyPledged { .. } => 8,
            Rejection::PledgeeNotBank(_) => 9,
            Rejection::ReleaseTargetUnknown(_) => 10,
            Rejection::ReleaseTargetNotPledge(_) => 11,
            Rejection::ReleaseByNonPledgee { .. } => 12,
            Rejection::PledgeNotActive(_) => 13,
            Rejection::RevokeTargetUnknown(_) => 14,
            Rejection::RevokeByNonAttester(_) => 15,
            Rejection::AlreadyInactive(_) => 16,
            Rejection::NotRevocable { .. } => 17,
            Rejection::BadSupersession(_) => 18,
            Rejection::BlockTimeNotIncreasing { .. } => 19,
            Rejection::TooManyRecords { .. } => 20,
            Rejection::TooManyBytes { .. } => 21,
            Rejection::BadSignature(_) => 22,
            Rejection::Evidence(_) => 23,
            Rejection::GovernanceNotValidator(_) => 40,
            Rejection::ProposalUnknown(_) => 41,
            Rejection::ProposalExpired { .. } => 42,
            Rejection::ExpiryOutOfRange { .. } => 43,
            Rejection::DuplicateApproval { .. } => 44,
            Rejection::ProposalClosed(_) => 45,
            Rejection::NoValidatorLeft => 46,
            Rejection::InvalidChange { .. } => 47,
            Rejection::MemberRemoved(_) => 48,
            Rejection::KeyRotatedOut(_) => 49,
            Rejection::KeyRevoked { .. } => 50,
            Rejection::BadPossession(_) => 51,
            Rejection::GovernanceFull { .. } => 52,
            Rejection::KeyInUse { .. } => 53,
            Rejection::WitnessName(_) => 54,
            Rejection::WitnessKey(_) => 55,
            Rejection::WitnessesFull(_) => 56,
            Rejection::WitnessNotInForce(_) => 57,
            Rejection::WitnessUrl(_) => 58,
            Rejection::PatentNoStatus(_) => 101,
            Rejection::PledgorNotOwner { .. } => 102,
            Rejection::PatentStatusForbids { .. } => 103,
            Rejection::PledgeOutlivesPatent { .. } => 104,
            Rejection::NotPledgee { .. } => 105,
            Rejection::NotReservedPledge(_) => 106,
            Rejection::AlreadyRegistered(_) => 107,
            Rejection::CancellationMismatch { .. } => 108,
            Rejection::NumberTaken { .. } => 109,
            Rejection::StatusOutOfOrder { .. } => 110,
            Rejection::OwnerChangeWhilePledged { .. } => 111,
            Rejection::LenderNotAttester(_) => 112,
            Rejection::CollateralMismatch { .. } => 113,
            Rejection::AppraisalMismatch { .. } => 114,
            Rejection::AppraiserIsParty(_) => 115,
            Rejection::NotALoan(_) => 116,
            Rejection::NotLender(_) => 117,
            Rejection::EventBeforeLast { .. } => 118,
            Rejection::CurrencyMismatch { .. } => 119,
            Rejection::ExceedsOutstanding { .. } => 120,
            Rejection::AlreadyDefaulted(_) => 121,
            Rejection::DefaultNotConfirmed { .. } => 122,
            Rejection::NotAPool(_) => 123,
            Rejection::NotPoolAdministrator(_) => 124,
            Rejection::OutsideWindow { .. } => 125,
            Rejection::AlreadyEnrolled { .. } => 126,
            Rejection::NotEnrolled { .. } => 127,
            Rejection::AlreadyClaimed { .. } => 128,
            Rejection::ClaimTooLarge { .. } => 129,
            Rejection::NoClaim { .. } => 130,
            Rejection::PaymentExceedsClaim { .. } => 131,
            Rejection::PledgeNotRegistered(_) => 132,
            Rejection::RegulatorScopeNotPermitted(_) => 24,
            Rejection::BadExpiry { .. } => 25,
            Rejection::NotAMember { .. } => 26,
            Rejection::NotReadersKey(_) => 27,
            Rejection::NotAConsent(_) => 28,
            Rejection::ConsentRequired(_) => 29,
        }
    }
}

/// Why a block was refused: the rejection and, for a record, its index in the block.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum RuleError<E: std::error::Error + 'static> {
    #[error("record {index}: {rejection}")]
    Record { index: usize, rejection: Rejection },
    #[error("block: {0}")]
    Block(Rejection),
    #[error("state: {0}")]
    State(#[source] E),
}

/// The state as the block being applied sees it: the committed view plus the
/// block's own earlier records.
pub(crate) struct Overlay<'a, V: StateView + ?Sized> {
    view: &'a V,
    delta: StateDelta,
    sequences: HashMap<u16, u64>,
    records: DigestMap<AttestationId, RecordMeta>,
    pledges: DigestMap<PatentNumber, Option<AttestationId>>,
    /// Governance in force for this block, then changed by its governance records.
    gov: Arc<GovState>,
    gov_changed: bool,
    facts: HashMap<FactKey, Option<Fact>>,
}

impl<V: StateView + ?Sized> Overlay<'_, V> {
    fn next_sequence(&self, m: u16) -> Result<u64, V::Error> {
        match self.sequences.get(&m) {
            Some(s) => Ok(*s),
            None => self.view.next_sequence(m),
        }
    }
    pub(crate) fn record(&self, id: &AttestationId) -> Result<Option<RecordMeta>, V::Error> {
        match self.records.get(id) {
            Some(r) => Ok(Some(*r)),
            None => self.view.record(id),
        }
    }
    pub(crate) fn active_pledge(&self, p: &PatentNumber) -> Result<Option<AttestationId>, V::Error> {
        match self.pledges.get(p) {
            Some(r) => Ok(*r),
            None => self.view.active_pledge(p),
        }
    }
    pub(crate) fn fact(&self, k: &FactKey) -> Result<Option<Fact>, V::Error> {
        match self.facts.get(k) {
            Some(f) => Ok(f.clone()),
            None => self.view.fact(k),
        }
    }
    pub(crate) fn set_fact(&mut self, k: FactKey, f: Option<Fact>) {
        self.facts.insert(k.clone(), f.clone());
        self.delta.facts.push((k, f));
    }
    pub(crate) fn set_record(&mut self, id: AttestationId, meta: RecordMeta) {
        self.records.insert(id, meta);
        self.delta.records.push((id, meta));
    }
    fn set_pledge(&mut self, p: PatentNumber, id: Option<AttestationId>) {
        self.pledges.insert(p, id);
        self.delta.pledges.push((p, id));
    }
    /// The governance state to change (copied once per block).
    fn gov_mut(&mut self) -> &mut GovState {
        self.gov_changed = true;
        Arc::make_mut(&mut self.gov)
    }
    fn finish(mut self) -> StateDelta {
        let mut seqs: Vec<(u16, u64)> = self.sequences.into_iter().collect();
        seqs.sort_unstable();
        self.delta.sequences = seqs;
        if self.gov_changed {
            self.delta.governance = Some(self.gov);
        }
        self.delta
    }
}

/// Applies the ledger rules to a block's attestations (in order), given the
/// committed state, the block's height and time. Signatures are checked by the
/// caller (batched, with the keys of [`governance_at`]); this checks everything else.
/// On success returns the block's state change; nothing is applied on failure.
pub fn apply_block<V: StateView + ?Sized>(
    genesis: &Genesis,
    view: &V,
    height: u64,
    prev_time_ms: u64,
    time_ms: u64,
    records: &[(AttestationId, &Attestation)],
    records_bytes: usize,
) -> Result<StateDelta, RuleError<V::Error>> {
    if time_ms <= prev_time_ms {
        return Err(RuleError::Block(Rejection::BlockTimeNotIncreasing { time_ms, prev_ms: prev_time_ms }));
    }
    let base = view.governance().map_err(RuleError::State)?.unwrap_or_else(|| genesis.governance());
    let gov = base.advanced(height);
    let params = &gov.params;
    if records.len() > params.block_records_max as usize {
        return Err(RuleError::Block(Rejection::TooManyRecords {
            count: records.len(),
            max: params.block_records_max,
        }));
    }
    if records_bytes > params.block_bytes_max as usize {
        return Err(RuleError::Block(Rejection::TooManyBytes { bytes: records_bytes, max: params.block_bytes_max }));
    }
    let activated = !Arc::ptr_eq(&base, &gov);
    apply_records(genesis, view, gov, activated, height, time_ms, records)
}

/// Applies `records` in order on top of `view` at `height` and `time_ms`, with `gov`
/// in force; the first refusal wins.
fn apply_records<V: StateView + ?Sized>(
    genesis: &Genesis,
    view: &V,
    gov: Arc<GovState>,
    gov_changed: bool,
    height: u64,
    time_ms: u64,
    records: &[(AttestationId, &Attestation)],
) -> Result<StateDelta, RuleError<V::Error>> {
    let mut overlay = Overlay {
        view,
        delta: StateDelta { attesters: Vec::with_capacity(records.len()), ..StateDelta::default() },
        sequences: HashMap::new(),
        records: DigestMap::with_capacity_and_hasher(records.len(), DigestKeyed::default()),
        pledges: DigestMap::default(),
        gov,
        gov_changed,
        facts: HashMap::new(),
    };
    for (index, (id, a)) in records.iter().enumerate() {
        match apply_one(genesis, &mut overlay, height, time_ms, id, a) {
            Ok(Ok(())) => {}
            Ok(Err(rejection)) => return Err(RuleError::Record { index, rejection }),
            Err(e) => return Err(RuleError::State(e)),
        }
    }
    Ok(overlay.finish())
}

/// Checks one attestation against the state as if it were the next record of the
/// block at `height` (used by the mempool); returns the change it would make.
pub fn check_attestation<V: StateView + ?Sized>(
    genesis: &Genesis,
    view: &V,
    height: u64,
    now_ms: u64,
    id: &AttestationId,
    a: &Attestation,
) -> Result<StateDelta, RuleError<V::Error>> {
    let gov = governance_at(genesis, view, height).map_err(RuleError::State)?;
    apply_records(genesis, view, gov, false, height, now_ms, &[(*id, a)])
}

fn change_rejection(e: ChangeError) -> Rejection {
    match e {
        ChangeError::NoValidator => Rejection::NoValidatorLeft,
        ChangeError::Invalid { field, rule } => Rejection::InvalidChange { field, rule },
        ChangeError::WitnessName(rule) => Rejection::WitnessName(rule),
        ChangeError::WitnessKey(rule) => Rejection::WitnessKey(rule),
        ChangeError::WitnessesFull(rule) => Rejection::WitnessesFull(rule),
        ChangeError::WitnessNotInForce(name) => Rejection::WitnessNotInForce(name),
        ChangeError::WitnessUrl(rule) => Rejection::WitnessUrl(rule),
    }
}

/// The rules for one record. Outer error: the state could not be read; inner: the record is refused.
fn apply_one<V: StateView + ?Sized>(
    genesis: &Genesis,
    st: &mut Overlay<'_, V>,
    height: u64,
    time_ms: u64,
    id: &AttestationId,
    a: &Attestation,
) -> Result<Result<(), Rejection>, V::Error> {
    let body = &a.body;
    let kind = body.claim.kind();
    let Some(attester) = st.gov.member_index(&body.attester) else {
        return Ok(Err(Rejection::UnknownAttester(body.attester.to_string())));
    };
    // A refused record discards the whole delta, so this is one entry per accepted record.
    st.delta.attesters.push(attester);
    let member = &st.gov.members[usize::from(attester)];
    if !member.is_active() {
        return Ok(Err(Rejection::MemberRemoved(body.attester.to_string())));
    }
    let governs = matches!(kind, ClaimKind::GovernanceProposal | ClaimKind::GovernanceApproval);
    if governs && !member.validator {
        return Ok(Err(Rejection::GovernanceNotValidator(body.attester.to_string())));
    }
    if !member.may_attest(kind) {
        return Ok(Err(Rejection::RoleNotPermitted { attester: body.attester.to_string(), kind: kind.name() }));
    }
    let expected = st.next_sequence(attester)?;
    if body.sequence < expected {
        return Ok(Err(Rejection::SequenceReplay { expected, got: body.sequence }));
    }
    if body.sequence > expected {
        return Ok(Err(Rejection::SequenceGap { expected, got: body.sequence }));
    }
    if body.issued_at_ms > time_ms.saturating_add(ISSUED_AT_SKEW_MS) {
        return Ok(Err(Rejection::IssuedInFuture { issued_at_ms: body.issued_at_ms, block_time_ms: time_ms }));
    }
    if let Err(e) = body.claim.check_fields() {
        return Ok(Err(Rejection::Field(e)));
    }
    // Ids hash the body, which includes (attester, sequence), and the sequence
    // check above admits each pair once: a duplicate id would need a SHA-256
    // collision. Checked only in debug builds, as it costs a random lookup.
    debug_assert!(st.record(id)?.is_none(), "duplicate attestation id {id} passed the sequence rule");
    let mut meta = RecordMeta { attester, kind, status: RecordStatus::Active, pledge: None };
    let expiry = |expires_at_ms: u64, lifetime_max_ms: u64| {
        let latest = body.issued_at_ms.saturating_add(lifetime_max_ms);
        let ok = expires_at_ms > body.issued_at_ms && expires_at_ms <= latest;
        if ok {
            Ok(())
        } else {
            Err(Rejection::BadExpiry { expires_at_ms, issued_at_ms: body.issued_at_ms, lifetime_max_ms })
        }
    };
    match &body.claim {
        Claim::RdSpend(_) | Claim::PatentValuation(_) => {}
        Claim::AccessKey(g) => {
            if g.scopes.contains(&Scope::Regulator) && !member.roles.contains(&Role::Regulator) {
                return Ok(Err(Rejection::RegulatorScopeNotPermitted(body.attester.to_string())));
            }
            if let Err(r) = expiry(g.expires_at_ms, ACCESS_KEY_LIFETIME_MS_MAX) {
                return Ok(Err(r));
            }
        }
        Claim::Consent(c) => {
            // The recipient is a member in force (governance may have added or removed it).
            if st.gov.member(&c.recipient).is_none_or(|m| !m.is_active()) {
                return Ok(Err(Rejection::NotAMember { field: "recipient", name: c.recipient.to_string() }));
            }
            if let Err(r) = expiry(c.expires_at_ms, CONSENT_LIFETIME_MS_MAX) {
                return Ok(Err(r));
            }
        }
        Claim::Query(q) => {
            // Liveness (revocation, expiry) of the key and the consent was the serving node's
            // check at read time; the log must record a read even if the consent lapses before
            // the record commits, so the rules check only what the references are.
            // A reader removed by governance since the read still resolves (indexes are never
            // reused), so the log keeps reads served before the removal took effect.
            let Some(reader) = st.gov.member_index(&q.reader) else {
                return Ok(Err(Rejection::NotAMember { field: "reader", name: q.reader.to_string() }));
            };
            let key = st.record(&q.access_key)?;
            if key.is_none_or(|k| k.kind != ClaimKind::AccessKey || k.attester != reader) {
                return Ok(Err(Rejection::NotReadersKey(q.access_key)));
            }
            match q.consent {
                Some(c) => {
                    if st.record(&c)?.is_none_or(|m| m.kind != ClaimKind::Consent) {
                        return Ok(Err(Rejection::NotAConsent(c)));
                    }
                }
                None if st.gov.members[usize::from(reader)].roles.contains(&Role::Regulator) => {}
                None => return Ok(Err(Rejection::ConsentRequired(q.reader.to_string()))),
            }
        }
        Claim::Equivocation(e) => {
            // Both signatures must be the accused validator's; checked here, not batched,
            // as evidence is rare. The chain id is derived only when evidence appears.
            if let Err(err) = e.check(&st.gov, &genesis.checkpoint_origin, &genesis.hash()) {
                return Ok(Err(Rejection::Evidence(err)));
            }
        }
        Claim::GovernanceProposal(p) => {
            if let Err(r) = propose(genesis, st, height, time_ms, id, attester, p) {
                return Ok(Err(r));
            }
        }
        Claim::GovernanceApproval(ap) => {
            let target = ap.proposal;
            let Some(open) = st.gov.proposal(&target).cloned() else {
                let closed = st.record(&target)?.is_some_and(|m| m.kind == ClaimKind::GovernanceProposal);
                return Ok(Err(if closed {
                    Rejection::ProposalClosed(target)
                } else {
                    Rejection::ProposalUnknown(target)
                }));
            };
            if time_ms != NO_CLOCK_MS && time_ms > open.expires_at_ms {
                return Ok(Err(Rejection::ProposalExpired { id: target, expires_at_ms: open.expires_at_ms, time_ms }));
            }
            if open.approvals.contains(&attester) {
                return Ok(Err(Rejection::DuplicateApproval { approver: body.attester.to_string(), id: target }));
            }
            let mut open = open;
            open.approvals.push(attester);
            if let Err(r) = record_approvals(genesis, st, height, open) {
                return Ok(Err(r));
            }
        }
        Claim::KeyRotation(r) => {
            let old = *member.key();
            if let Err(e) =
                governance::verify_possession(&genesis.hash(), &body.attester, &old, &r.new_key, &r.possession)
            {
                return Ok(Err(Rejection::BadPossession(e.to_string())));
            }
            let projected = st.gov.projection();
            if projected.key_used(&r.new_key) {
                return Ok(Err(Rejection::KeyInUse { field: "new_key" }));
            }
            let pending_rotation = st
                .gov
                .scheduled
                .iter()
                .any(|s| matches!(&s.pending, Pending::Rotation { member, .. } if *member == attester));
            if pending_rotation || projected.members[usize::from(attester)].key() != &old {
                return Ok(Err(Rejection::InvalidChange {
                    field: "new_key",
                    rule: "a change of this member's key is already waiting for its height".into(),
                }));
            }
            if member.keys.len() >= governance::MEMBER_KEYS_MAX {
                return Ok(Err(Rejection::InvalidChange {
                    field: "new_key",
                    rule: format!("a member holds at most {} keys", governance::MEMBER_KEYS_MAX),
                }));
            }
            if st.gov.scheduled.len() >= SCHEDULED_MAX {
                return Ok(Err(Rejection::GovernanceFull { what: "the schedule of changes", max: SCHEDULED_MAX }));
            }
            let pending = Pending::Rotation { record: *id, member: attester, key: r.new_key };
            let at_height = height + ACTIVATION_DELAY_HEIGHTS;
            st.gov_mut().scheduled.push(Scheduled { at_height, completed_at: height, pending });
        }
        Claim::IpPledge(_)
        | Claim::PatentStatus(_)
        | Claim::Appraisal(_)
        | Claim::Loan(_)
        | Claim::LoanEvent(_)
        | Claim::RiskPool(_)
        | Claim::Disposal(_)
        | Claim::Qualification(_) => {
            let gov = Arc::clone(&st.gov);
            if let Err(rejection) = loan_rules::apply(&gov, st, attester, id, &body.claim)? {
                return Ok(Err(rejection));
            }
        }
        Claim::PatentPledge(p) => {
            if let Some(active) = st.active_pledge(&p.patent)? {
                return Ok(Err(Rejection::PatentAlreadyPledged { patent: p.patent.to_string(), active }));
            }
            // A patent reserved by the two-stage pledge (tag 6) is taken too.
            if let Some(Fact::Patent(f)) = st.fact(&FactKey::Patent(p.patent.into()))?
                && let Some(active) = f.pledge
            {
                return Ok(Err(Rejection::PatentAlreadyPledged { patent: p.patent.to_string(), active }));
            }
            let pledgee = st.gov.member_index(&p.pledgee).filter(|i| {
                let m = &st.gov.members[usize::from(*i)];
                m.is_active() && m.roles.contains(&Role::Bank)
            });
            let Some(pledgee) = pledgee else {
                return Ok(Err(Rejection::PledgeeNotBank(p.pledgee.to_string())));
            };
            meta.pledge = Some((p.patent, pledgee));
            st.set_pledge(p.patent, Some(*id));
        }
        Claim::PledgeRelease(r) => {
            let Some(mut target) = st.record(&r.pledge)? else {
                return Ok(Err(Rejection::ReleaseTargetUnknown(r.pledge)));
            };
            let Some((patent, pledgee)) = target.pledge else {
                return Ok(Err(Rejection::ReleaseTargetNotPledge(r.pledge)));
            };
            if pledgee != attester {
                let pledgee = st.gov.members[usize::from(pledgee)].name.to_string();
                return Ok(Err(Rejection::ReleaseByNonPledgee { pledgee, pledge: r.pledge }));
            }
            if target.status != RecordStatus::Active {
                return Ok(Err(Rejection::PledgeNotActive(r.pledge)));
            }
            debug_assert_eq!(st.active_pledge(&patent)?, Some(r.pledge), "an active pledge holds its patent's slot");
            target.status = RecordStatus::Released;
            st.set_record(r.pledge, target);
            st.set_pledge(patent, None);
        }
        Claim::Revocation(r) => {
            let Some(mut target) = st.record(&r.target)? else {
                return Ok(Err(Rejection::RevokeTargetUnknown(r.target)));
            };
            if target.attester != attester {
                return Ok(Err(Rejection::RevokeByNonAttester(r.target)));
            }
            if !loan_rules::revocable(target.kind) {
                return Ok(Err(Rejection::NotRevocable { id: r.target, kind: target.kind.name() }));
            }
            if target.status != RecordStatus::Active {
                return Ok(Err(Rejection::AlreadyInactive(r.target)));
            }
            if let Some(by) = r.superseded_by {
                let ok = st.record(&by)?.is_some_and(|s| {
                    s.attester == attester && s.kind == target.kind && s.status == RecordStatus::Active
                });
                if !ok {
                    return Ok(Err(Rejection::BadSupersession(by)));
                }
            }
            if let Some((patent, _)) = target.pledge {
                st.set_pledge(patent, None);
            }
            target.status = RecordStatus::Revoked;
            st.set_record(r.target, target);
        }
    }
    st.set_record(*id, meta);
    st.sequences.insert(attester, expected + 1);
    Ok(Ok(()))
}

/// A new proposal (its proposer's approval included).
fn propose<V: StateView + ?Sized>(
    genesis: &Genesis,
    st: &mut Overlay<'_, V>,
    height: u64,
    time_ms: u64,
    id: &AttestationId,
    proposer: u16,
    p: &crate::attestation::GovernanceProposal,
) -> Result<(), Rejection> {
    let latest = time_ms.saturating_add(PROPOSAL_TTL_MS_MAX);
    if time_ms != NO_CLOCK_MS && (p.expires_at_ms <= time_ms || p.expires_at_ms > latest) {
        return Err(Rejection::ExpiryOutOfRange { expires_at_ms: p.expires_at_ms, time_ms });
    }
    st.gov.projection().check_change(&p.change, genesis).map_err(change_rejection)?;
    if st.gov.proposals.len() >= PROPOSALS_OPEN_MAX {
        // Expired proposals make room first.
        if time_ms == NO_CLOCK_MS || !st.gov.proposals.iter().any(|o| o.expires_at_ms < time_ms) {
            return Err(Rejection::GovernanceFull { what: "the list of open proposals", max: PROPOSALS_OPEN_MAX });
        }
        st.gov_mut().prune_expired(time_ms);
    }
    let open = OpenProposal {
        id: *id,
        proposer,
        change: p.change.clone(),
        expires_at_ms: p.expires_at_ms,
        approvals: vec![proposer],
        height,
    };
    record_approvals(genesis, st, height, open)
}

/// Stores `open` with its approvals; if they reach the quorum of the validators in
/// force, the change is checked against the state with every scheduled change applied
/// and scheduled [`ACTIVATION_DELAY_HEIGHTS`] after this block.
fn record_approvals<V: StateView + ?Sized>(
    genesis: &Genesis,
    st: &mut Overlay<'_, V>,
    height: u64,
    open: OpenProposal,
) -> Result<(), Rejection> {
    let complete = st.gov.counted_approvals(&open) >= st.gov.quorum();
    if complete {
        st.gov.projection().check_change(&open.change, genesis).map_err(change_rejection)?;
        if st.gov.scheduled.len() >= SCHEDULED_MAX {
            return Err(Rejection::GovernanceFull { what: "the schedule of changes", max: SCHEDULED_MAX });
        }
    }
    let gov = st.gov_mut();
    gov.proposals.retain(|o| o.id != open.id);
    if complete {
        let pending = Pending::Change { proposal: open.id, change: open.change };
        gov.scheduled.push(Scheduled { at_height: height + ACTIVATION_DELAY_HEIGHTS, completed_at: height, pending });
    } else {
        gov.proposals.push(open);
    }
    Ok(())
}

/// Why a record's signature failed, when it was made with a key its attester no
/// longer holds: R050 for a key governance revoked, R049 for one rotated out.
/// `None` if it verifies under none of the attester's former keys (a plain R022).
pub fn stale_key(
    gov: &GovState,
    a: &Attestation,
    body_bytes: &[u8],
    chain_id: &crate::hash::Hash,
) -> Option<Rejection> {
    let m = gov.member(&a.body.attester)?;
    let current = m.key();
    for (_, k) in m.keys.iter().filter(|(_, k)| k != current) {
        let ok =
            crate::sig::verify(k.ed25519(), crate::sig::Domain::Attestation, &chain_id.0, body_bytes, &a.signature)
                .is_ok();
        if ok {
            if let Some((_, from)) = m.revoked.iter().find(|(r, _)| r == k) {
                return Some(Rejection::KeyRevoked { member: m.name.to_string(), from_height: *from });
            }
            return Some(Rejection::KeyRotatedOut(m.name.to_string()));
        }
    }
    None
}

/// [`stale_key`] against a roster in force (what admission holds): R050 if `a` verifies
/// under a key of its attester that governance revoked, R049 under one rotated out.
pub fn stale_key_in(
    roster: &crate::governance::Roster,
    a: &Attestation,
    body_bytes: &[u8],
    chain_id: &crate::hash::Hash,
) -> Option<Rejection> {
    let m = roster.member(&a.body.attester)?;
    m.former.iter().find_map(|(k, revoked_from)| {
        crate::sig::verify(k, crate::sig::Domain::Attestation, &chain_id.0, body_bytes, &a.signature).ok()?;
        Some(match revoked_from {
            Some(from_height) => Rejection::KeyRevoked { member: m.name.to_string(), from_height: *from_height },
            None => Rejection::KeyRotatedOut(m.name.to_string()),
        })
    })
}

/// The whole derived state in memory: used by the offline verifier, the
/// in-memory store and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemState {
    pub sequences: HashMap<u16, u64>,
    pub records: DigestMap<AttestationId, RecordMeta>,
    pub pledges: DigestMap<PatentNumber, AttestationId>,
    /// `None` until a block changes governance.
    pub governance: Option<Arc<GovState>>,
    pub facts: HashMap<FactKey, Fact>,
}

impl MemState {
    pub fn apply(&mut self, delta: &StateDelta) {
        for (m, s) in &delta.sequences {
            let old = self.sequences.insert(*m, *s);
            debug_assert!(old.is_none_or(|o| o < *s), "sequences only grow");
        }
        for (id, meta) in &delta.records {
            self.records.insert(*id, *meta);
        }
        for (patent, id) in &delta.pledges {
            match id {
                Some(id) => self.pledges.insert(*patent, *id),
                None => self.pledges.remove(patent),
            };
        }
        if let Some(g) = &delta.governance {
            self.governance = Some(Arc::clone(g));
        }
        for (k, f) in &delta.facts {
            match f {
                Some(f) => self.facts.insert(k.clone(), f.clone()),
                None => self.facts.remove(k),
            };
        }
    }
}

impl StateView for MemState {
    type Error = std::convert::Infallible;
    fn next_sequence(&self, attester: u16) -> Result<u64, Self::Error> {
        Ok(self.sequences.get(&attester).copied().unwrap_or(1))
    }
    fn record(&self, id: &AttestationId) -> Result<Option<RecordMeta>, Self::Error> {
        Ok(self.records.get(id).copied())
    }
    fn active_pledge(&self, patent: &PatentNumber) -> Result<Option<AttestationId>, Self::Error> {
        Ok(self.pledges.get(patent).copied())
    }
    fn governance(&self) -> Result<Option<Arc<GovState>>, Self::Error> {
        Ok(self.governance.clone())
    }
    fn fact(&self, key: &FactKey) -> Result<Option<Fact>, Self::Error> {
        Ok(self.facts.get(key).cloned())
    }
}
