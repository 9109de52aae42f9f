//! The hand-written decoder of the canonical encoding (docs/encoding.md) for attestations and everything in them: the same bytes accepted and the same values produced as `codec::decode`'s bincode legacy path, without serde.
//!
//! Why: bincode's decode was 0.66 µs of the about 9.2 µs of CPU per attestation that
//! verifying the 1M chain costs (serde's visitors, bincode's per-byte limit accounting, the
//! generic sequence machinery); this one takes 0.30 µs (docs/BENCHMARKS.md §Verification core
//! at the ceiling, 2026-12-05). The byte format is unchanged: this module reads exactly what
//! `codec::encode` writes.
//!
//! Equivalence with [`crate::codec::decode`] is the rule, not an aim: every identifier goes
//! through the same validating constructor the serde path uses (`TryFrom` of its stored
//! form, `from_stored` for the string codes), enum tags, bool and option bytes are refused
//! alike, strings must be UTF-8, trailing bytes and oversized inputs give the same
//! [`DecodeError`] as before. `ledger/tests/decoder.rs` and `fuzz/fuzz_targets/decoder.rs` compare the
//! two decoders on random values, on mutated encodings and on arbitrary bytes.
//!
//! One shortcut, equivalent by construction: a sequence or string whose length prefix
//! exceeds the bytes left is refused at once (every element of every sequence here encodes
//! to at least one byte, so bincode would run out of input too); bincode's 64 MiB budget
//! ([`DECODE_BYTES_MAX`]) can never be reached first, since both decoders bound the
//! input to at most that before reading.
//!
//! Errors name where decoding stopped, from the outermost field in: e.g.
//! `attestation: malformed encoding: body.claim.Loan.collateral[1].share_bp: u16 needs 2 bytes, 1 left`.

use std::fmt;

use crate::access::{AccessKeyGrant, Consent, FactKind, Purpose, QueryRecord, ReadKind, Scope};
use crate::attestation::{
    Attestation, AttestationBody, Claim, GovernanceApproval, GovernanceProposal, KeyRotation, PatentPledge,
    PatentValuation, PledgeRelease, RdCategory, RdSpend, Revocation, ValuationMethod,
};
use crate::block::BlockHeader;
use crate::cn_ids::{
    CourtCaseNumber, EarlyPatentNumber, HnteCertificate, LegacyPatentNumber, PatentRef, PledgeRegistration,
    PublicationNumber, TechSmeNumber,
};
use crate::codec::{DECODE_BYTES_MAX, DecodeError};
use crate::confidential::Amount;
use crate::genesis::{ConsensusParams, Role};
use crate::governance::{Change, MemberKey};
use crate::hash::{Hash, HashOf};
use crate::ids::{Currency, Date, IdError, MemberName, Money, PatentNumber, Period, Uscc};
use crate::loans::{
    Appraisal, AppraisalPurpose, CnipaCancellation, Collateral, Disposal, DisposalMethod, Enrolment, Guarantee,
    IpPledge, Loan, LoanClass, LoanEvent, LoanEventKind, PatentStatus, PledgeCancel, PledgeRegistered, PledgeReserve,
    PoolClaim, PoolPayment, PoolTerms, Qualification, QualificationKind, RecoverySource, RiskPool, ValueType,
};
use crate::sig::{PublicKey, Signature};
use crate::vote::{BlockId, Equivocation, Proposal, SignedStatement, Statement, Vote, VoteKind};

/// Decodes exactly one `T` from `bytes`, which must be at most `bytes_max` long (and at
/// most [`DECODE_BYTES_MAX`]) and hold nothing after the value: [`crate::codec::decode`]'s
/// contract and errors, the `Malformed` reason naming the field path.
pub fn decode<T: Decode>(what: &'static str, bytes: &[u8], bytes_max: usize) -> Result<T, DecodeError> {
    let max = bytes_max.min(DECODE_BYTES_MAX);
    if bytes.len() > max {
        return Err(DecodeError::TooLarge { what, len: bytes.len(), max });
    }
    let mut r = Reader { bytes, pos: 0 };
    let value = T::decode(&mut r).map_err(|f| DecodeError::Malformed { what, reason: f.to_string() })?;
    if r.pos != bytes.len() {
        return Err(DecodeError::TrailingBytes { what, trailing: bytes.len() - r.pos });
    }
    Ok(value)
}

/// A value the hand-written decoder reads, in the canonical layout of docs/encoding.md §1.
///
/// Every implementation reads at least one byte: `Reader::len`'s early refusal of a
/// sequence longer than the bytes left relies on it (a zero-byte element type would let
/// bincode accept what that refuses).
pub trait Decode: Sized {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>>;
}

/// A cursor over the input; every read is bounds-checked.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    /// Invariant: `pos <= bytes.len()`.
    pos: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize, ty: &'static str) -> Result<&'a [u8], Box<Fail>> {
        let left = self.left();
        if n > left {
            return Err(Fail::new(Reason::End { ty, needed: n, left }));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, ty: &'static str) -> Result<[u8; N], Box<Fail>> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, ty)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, Box<Fail>> {
        Ok(self.array::<1>("u8")?[0])
    }

    fn u16(&mut self) -> Result<u16, Box<Fail>> {
        Ok(u16::from_le_bytes(self.array("u16")?))
    }

    fn u32(&mut self) -> Result<u32, Box<Fail>> {
        Ok(u32::from_le_bytes(self.array("u32")?))
    }

    fn u64(&mut self) -> Result<u64, Box<Fail>> {
        Ok(u64::from_le_bytes(self.array("u64")?))
    }

    /// An enum's `u32` variant index, checked against the `variants` it may take.
    fn tag(&mut self, ty: &'static str, variants: u32) -> Result<u32, Box<Fail>> {
        let tag = self.u32()?;
        if tag >= variants {
            return Err(Fail::new(Reason::Tag { ty, tag, variants }));
        }
        Ok(tag)
    }

    /// A `u64` length prefix of a sequence or string; more than the bytes left is refused
    /// at once (each element is at least one byte).
    fn len(&mut self, ty: &'static str) -> Result<usize, Box<Fail>> {
        let len = self.u64()?;
        let left = self.left();
        match usize::try_from(len) {
            Ok(n) if n <= left => Ok(n),
            _ => Err(Fail::new(Reason::Length { ty, len, left })),
        }
    }

    /// A string's UTF-8 bytes, borrowed from the input.
    fn str(&mut self) -> Result<&'a str, Box<Fail>> {
        let n = self.len("string")?;
        let bytes = self.take(n, "string")?;
        std::str::from_utf8(bytes).map_err(|e| Fail::new(Reason::Utf8 { valid_up_to: e.valid_up_to() }))
    }

    /// Decodes a `T` as the field `name`, which errors then name.
    #[inline]
    pub fn field<T: Decode>(&mut self, name: &'static str) -> Result<T, Box<Fail>> {
        T::decode(self).map_err(|f| f.at(name))
    }
}

/// Where and why the decoder stopped: the field path (innermost first) and the reason.
#[derive(Debug)]
pub struct Fail {
    path: Vec<&'static str>,
    reason: Reason,
}

#[derive(Debug)]
enum Reason {
    End { ty: &'static str, needed: usize, left: usize },
    Length { ty: &'static str, len: u64, left: usize },
    Tag { ty: &'static str, tag: u32, variants: u32 },
    Bool(u8),
    OptionTag(u8),
    AmountForm(u8),
    Utf8 { valid_up_to: usize },
    Id(IdError),
}

impl Fail {
    fn new(reason: Reason) -> Box<Fail> {
        Box::new(Fail { path: Vec::new(), reason })
    }

    fn at(mut self: Box<Self>, name: &'static str) -> Box<Fail> {
        self.path.push(name);
        self
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.path.iter().rev().enumerate() {
            if i > 0 && !p.starts_with('[') {
                f.write_str(".")?;
            }
            f.write_str(p)?;
        }
        if !self.path.is_empty() {
            f.write_str(": ")?;
        }
        match &self.reason {
            Reason::End { ty, needed, left } => write!(f, "{ty} needs {needed} bytes, {left} left"),
            Reason::Length { ty, len, left } => write!(f, "{ty} length {len} exceeds the {left} bytes left"),
            Reason::Tag { ty, tag, variants } => {
                write!(f, "{ty} variant index {tag} is not one of 0..={}", variants.saturating_sub(1))
            }
            Reason::Bool(b) => write!(f, "bool byte {b} is neither 0 nor 1"),
            Reason::OptionTag(b) => write!(f, "option tag {b} is neither 0 (none) nor 1 (some)"),
            Reason::AmountForm(b) => write!(f, "amount form {b} is neither 0 (plain) nor 1 (sealed)"),
            Reason::Utf8 { valid_up_to } => write!(f, "string is not UTF-8 after byte {valid_up_to}"),
            Reason::Id(e) => write!(f, "{e}"),
        }
    }
}

fn id<T>(r: Result<T, IdError>) -> Result<T, Box<Fail>> {
    r.map_err(|e| Fail::new(Reason::Id(e)))
}

// ---- Primitives and containers (docs/encoding.md §1) ----

impl Decode for u8 {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        r.u8()
    }
}

impl Decode for u16 {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        r.u16()
    }
}

impl Decode for u32 {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        r.u32()
    }
}

impl Decode for u64 {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        r.u64()
    }
}

impl Decode for bool {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        match r.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(Fail::new(Reason::Bool(b))),
        }
    }
}

impl Decode for String {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        r.str().map(str::to_owned)
    }
}

impl<T: Decode> Decode for Option<T> {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        match r.u8()? {
            0 => Ok(None),
            1 => T::decode(r).map(Some),
            b => Err(Fail::new(Reason::OptionTag(b))),
        }
    }
}

/// Element names for error paths (`[0]` .. `[15]`, then `[…]`): static, so the happy path
/// allocates nothing for them.
const INDEX_NAMES: [&str; 17] = [
    "[0]", "[1]", "[2]", "[3]", "[4]", "[5]", "[6]", "[7]", "[8]", "[9]", "[10]", "[11]", "[12]", "[13]", "[14]",
    "[15]", "[…]",
];

impl<T: Decode> Decode for Vec<T> {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        let n = r.len("sequence")?;
        let mut v = Vec::with_capacity(n);
        for i in 0..n {
            let name = INDEX_NAMES.get(i).unwrap_or(&INDEX_NAMES[16]);
            v.push(r.field(name)?);
        }
        Ok(v)
    }
}

impl<T: Decode> Decode for Box<T> {
    #[inline]
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        T::decode(r).map(Box::new)
    }
}

impl Decode for Hash {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        r.array("hash").map(Hash)
    }
}

impl<T> Decode for HashOf<T> {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        r.array("hash").map(|h| HashOf::from_hash(Hash(h)))
    }
}

impl Decode for PublicKey {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        r.array("public key").map(PublicKey)
    }
}

impl Decode for Signature {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        r.array("signature").map(Signature)
    }
}

// ---- Identifiers (docs/encoding.md §2): the serde path's own validating constructors ----

impl Decode for Uscc {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        id(Uscc::try_from(r.array::<18>("uscc")?))
    }
}

impl Decode for PatentNumber {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        id(PatentNumber::try_from(r.array::<13>("patent number")?))
    }
}

impl Decode for LegacyPatentNumber {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        id(LegacyPatentNumber::try_from(r.array::<9>("patent number")?))
    }
}

impl Decode for EarlyPatentNumber {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        id(EarlyPatentNumber::try_from(r.array::<8>("patent number")?))
    }
}

impl Decode for PublicationNumber {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        let number = r.u32()?;
        let kind = r.u8()?;
        id(PublicationNumber::try_from((number, kind)))
    }
}

impl Decode for Currency {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        id(Currency::try_from(r.array::<3>("currency")?))
    }
}

impl Decode for Date {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        id(Date::try_from(r.u32()?))
    }
}

impl Decode for Period {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        let year = r.u16()?;
        let quarter = r.u8()?;
        id(Period::try_from((year, quarter)))
    }
}

impl Decode for MemberName {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        id(MemberName::from_stored(r.str()?))
    }
}

macro_rules! decode_string_code {
    ($($t:ident),* $(,)?) => {$(
        impl Decode for $t {
            fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
                id($t::from_stored(r.str()?))
            }
        }
    )*};
}
decode_string_code!(HnteCertificate, TechSmeNumber, PledgeRegistration, CourtCaseNumber);

impl Decode for Money {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        Ok(Money { fen: r.field("fen")?, currency: r.field("currency")? })
    }
}

impl Decode for Amount {
    /// A `u8` form (not an enum's `u32`), docs/encoding.md §13.
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        match r.u8().map_err(|f| f.at("form"))? {
            0 => Ok(Amount::Plain(r.field("money")?)),
            1 => Ok(Amount::Sealed { currency: r.field("currency")?, commitment: r.field("commitment")? }),
            b => Err(Fail::new(Reason::AmountForm(b)).at("form")),
        }
    }
}

// ---- Structs: fields in declaration order (the struct expression evaluates them in the
// order written, which is the order below) ----

macro_rules! decode_struct {
    ($($t:ident { $($f:ident),* $(,)? })*) => {$(
        impl Decode for $t {
            #[inline]
            fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
                Ok($t { $($f: r.field(stringify!($f))?,)* })
            }
        }
    )*};
}

/// Enums whose variants carry nothing: the `u32` index, in declaration order.
macro_rules! decode_unit_enum {
    ($($t:ident [$($v:ident),* $(,)?])*) => {$(
        impl Decode for $t {
            fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
                const ALL: &[$t] = &[$($t::$v),*];
                let tag = r.tag(stringify!($t), ALL.len() as u32)?;
                Ok(ALL[tag as usize])
            }
        }
    )*};
}

decode_struct! {
    Attestation { body, signature }
    AttestationBody { attester, sequence, issued_at_ms, claim }
    RdSpend { enterprise, period, amount, category, evidence }
    PatentValuation { patent, owner, value, method, valuation_date, valid_until, evidence }
    PatentPledge { patent, pledgor, pledgee, secured, start, term_months, evidence }
    PledgeRelease { pledge }
    Revocation { target, superseded_by }
    GovernanceProposal { change, expires_at_ms }
    GovernanceApproval { proposal }
    KeyRotation { new_key, possession }
    Equivocation { validator, first, second }
    SignedStatement { statement, signature }
    Vote { height, round, kind, value }
    Proposal { height, round, block, valid_round }
    BlockId { hash, tree_size, root }
    PledgeReserve { patent, pledgor, pledgee, loan_contract, secured, start, end, evidence }
    PledgeRegistered { pledge, registration, effective, evidence }
    CnipaCancellation { date, evidence }
    PledgeCancel { pledge, cancellation }
    PatentStatus {
        patent, owner, co_owners, grant, filed, expires, fees_paid_until, invalidation_pending,
        court_preservation, lapsed, as_of, evidence,
    }
    Appraisal {
        patent, owner, institution, purpose, value_type, value, method, rationale, base_date, valid_until,
        evidence,
    }
    Collateral { pledge, appraisal, share_bp }
    Guarantee { guarantor, amount }
    Loan { lender, borrower, contract, principal, start, maturity, rate_bp, collateral, guarantee }
    LoanEvent { loan, date, event }
    PoolTerms {
        name, currency, pool_bp, bank_bp, guarantor_bp, insurer_bp, loan_cap, enrol_from, enrol_until,
        claim_days, default_days_min,
    }
    Enrolment { pool, loan, date }
    PoolClaim { pool, loan, date, eligible_principal, amount, evidence }
    PoolPayment { pool, loan, date, amount }
    Disposal { pledge, method, court_case, price, date, new_owner, evidence }
    Qualification { enterprise, qualification, evidence }
    AccessKeyGrant { holder, key, scopes, expires_at_ms }
    Consent { enterprise, recipient, purpose, scope, expires_at_ms, evidence }
    QueryRecord { reader, access_key, enterprise, purpose, consent, read }
    ConsensusParams {
        block_records_max, block_bytes_max, timeout_propose_ms, timeout_prevote_ms, timeout_precommit_ms,
        timeout_delta_ms,
    }
    BlockHeader { height, prev, time_ms, proposer, tree_size, tree_root, validator_set }
}

decode_unit_enum! {
    RdCategory [Total, Personnel, DirectInputs, Depreciation, Amortization, NewProductDesign, Commissioned, Other]
    ValuationMethod [Income, Market, Cost]
    VoteKind [Prevote, Precommit]
    AppraisalPurpose [Pledge, Licensing, Transfer]
    ValueType [Market, Realisable]
    LoanClass [Normal, SpecialMention, Substandard, Doubtful, Loss]
    RecoverySource [Borrower, Guarantor, Disposal, Pool, Insurer]
    DisposalMethod [Discount, Auction, Sale]
    Scope [Member, Restricted, Regulator]
    Purpose [LoanApplication, PostLoanMonitoring, GuaranteeReview, RiskPoolClaim, Supervision]
    FactKind [RdSpend, PatentValuation, PatentPledge, Loan]
    Role [Bank, ServiceCentre, Appraiser, RiskPool, Regulator]
}

// ---- Enums with data: the `u32` index, then the variant's fields ----

impl Decode for Claim {
    #[inline]
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        Ok(match r.tag("Claim", 20)? {
            0 => Claim::RdSpend(r.field("RdSpend")?),
            1 => Claim::PatentValuation(r.field("PatentValuation")?),
            2 => Claim::PatentPledge(r.field("PatentPledge")?),
            3 => Claim::PledgeRelease(r.field("PledgeRelease")?),
            4 => Claim::Revocation(r.field("Revocation")?),
            5 => Claim::Equivocation(r.field("Equivocation")?),
            6 => Claim::IpPledge(r.field("IpPledge")?),
            7 => Claim::PatentStatus(r.field("PatentStatus")?),
            8 => Claim::Appraisal(r.field("Appraisal")?),
            9 => Claim::Loan(r.field("Loan")?),
            10 => Claim::LoanEvent(r.field("LoanEvent")?),
            11 => Claim::RiskPool(r.field("RiskPool")?),
            12 => Claim::Disposal(r.field("Disposal")?),
            13 => Claim::Qualification(r.field("Qualification")?),
            14 => Claim::AccessKey(r.field("AccessKey")?),
            15 => Claim::Consent(r.field("Consent")?),
            16 => Claim::Query(r.field("Query")?),
            17 => Claim::GovernanceProposal(r.field("GovernanceProposal")?),
            18 => Claim::GovernanceApproval(r.field("GovernanceApproval")?),
            _ => Claim::KeyRotation(r.field("KeyRotation")?),
        })
    }
}

impl Decode for Statement {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        Ok(match r.tag("Statement", 2)? {
            0 => Statement::Vote(r.field("Vote")?),
            _ => Statement::Proposal(r.field("Proposal")?),
        })
    }
}

impl Decode for PatentRef {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        Ok(match r.tag("PatentRef", 3)? {
            0 => PatentRef::Modern(r.field("Modern")?),
            1 => PatentRef::Legacy(r.field("Legacy")?),
            _ => PatentRef::Early(r.field("Early")?),
        })
    }
}

impl Decode for IpPledge {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        Ok(match r.tag("IpPledge", 3)? {
            0 => IpPledge::Reserve(r.field("Reserve")?),
            1 => IpPledge::Registered(r.field("Registered")?),
            _ => IpPledge::Release(r.field("Release")?),
        })
    }
}

impl Decode for LoanEventKind {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        match r.tag("LoanEventKind", 4)? {
            0 => variant(r, "Repayment", |r| {
                Ok(LoanEventKind::Repayment { principal: r.field("principal")?, interest: r.field("interest")? })
            }),
            1 => variant(r, "Classification", |r| {
                Ok(LoanEventKind::Classification { class: r.field("class")?, days_overdue: r.field("days_overdue")? })
            }),
            2 => variant(r, "Default", |r| {
                Ok(LoanEventKind::Default {
                    days_overdue: r.field("days_overdue")?,
                    overdue_principal: r.field("overdue_principal")?,
                })
            }),
            _ => variant(r, "Recovery", |r| {
                Ok(LoanEventKind::Recovery { amount: r.field("amount")?, source: r.field("source")? })
            }),
        }
    }
}

impl Decode for RiskPool {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        Ok(match r.tag("RiskPool", 4)? {
            0 => RiskPool::Open(r.field("Open")?),
            1 => RiskPool::Enrol(r.field("Enrol")?),
            2 => RiskPool::Claim(r.field("Claim")?),
            _ => RiskPool::Pay(r.field("Pay")?),
        })
    }
}

impl Decode for QualificationKind {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        match r.tag("QualificationKind", 2)? {
            0 => variant(r, "HighTech", |r| {
                Ok(QualificationKind::HighTech { certificate: r.field("certificate")?, issued: r.field("issued")? })
            }),
            _ => variant(r, "TechSme", |r| Ok(QualificationKind::TechSme { registration: r.field("registration")? })),
        }
    }
}

impl Decode for ReadKind {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        Ok(match r.tag("ReadKind", 5)? {
            0 => ReadKind::Facts,
            1 => ReadKind::Openings,
            2 => ReadKind::Block { height: r.field("Block.height")? },
            3 => ReadKind::EntryBundle { index: r.field("EntryBundle.index")? },
            _ => ReadKind::Portfolio { height: r.field("Portfolio.height")? },
        })
    }
}

impl Decode for MemberKey {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        r.tag("MemberKey", 1)?;
        Ok(MemberKey::Ed25519(r.field("Ed25519")?))
    }
}

impl Decode for Change {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Box<Fail>> {
        match r.tag("Change", 7)? {
            0 => variant(r, "AddMember", |r| {
                Ok(Change::AddMember {
                    name: r.field("name")?,
                    key: r.field("key")?,
                    roles: r.field("roles")?,
                    validator: r.field("validator")?,
                })
            }),
            1 => variant(r, "RemoveMember", |r| Ok(Change::RemoveMember { name: r.field("name")? })),
            2 => variant(r, "SetRoles", |r| {
                Ok(Change::SetRoles {
                    name: r.field("name")?,
                    roles: r.field("roles")?,
                    validator: r.field("validator")?,
                })
            }),
            3 => variant(r, "RevokeKey", |r| {
                Ok(Change::RevokeKey {
                    name: r.field("name")?,
                    key: r.field("key")?,
                    replacement: r.field("replacement")?,
                })
            }),
            4 => Ok(Change::SetConsensus(r.field("SetConsensus")?)),
            5 => variant(r, "AddWitness", |r| {
                Ok(Change::AddWitness { name: r.field("name")?, key: r.field("key")?, url: r.field("url")? })
            }),
            _ => variant(r, "RemoveWitness", |r| Ok(Change::RemoveWitness { name: r.field("name")? })),
        }
    }
}

/// Reads a struct-like enum variant's fields; errors name the variant.
fn variant<'a, T>(
    r: &mut Reader<'a>,
    name: &'static str,
    read: impl FnOnce(&mut Reader<'a>) -> Result<T, Box<Fail>>,
) -> Result<T, Box<Fail>> {
    read(r).map_err(|e| e.at(name))
}
