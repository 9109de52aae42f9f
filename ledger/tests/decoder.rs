//! The hand-written decoder (`decoder::decode`) against the bincode legacy decoder (`codec::decode`): random values of every attestation kind and variant, mutated encodings and single fields must be accepted or refused alike, with the same value.

use credence_ledger::access::{AccessKeyGrant, Consent, FactKind, Purpose, QueryRecord, ReadKind, Scope};
use credence_ledger::attestation::{
    ATTESTATION_BYTES_MAX, Attestation, AttestationBody, AttestationId, Claim, ClaimKind, GovernanceApproval,
    GovernanceProposal, KeyRotation, PatentPledge, PatentValuation, PledgeRelease, RdCategory, RdSpend, Revocation,
    ValuationMethod,
};
use credence_ledger::block::{BlockHeader, HEADER_BYTES_MAX};
use credence_ledger::cn_ids::{
    CourtCaseNumber, HnteCertificate, PatentRef, PledgeRegistration, PublicationNumber, TechSmeNumber,
};
use credence_ledger::codec::{self, DecodeError};
use credence_ledger::confidential::Amount;
use credence_ledger::decoder::{self, Decode};
use credence_ledger::genesis::{ConsensusParams, Role};
use credence_ledger::governance::{Change, MemberKey};
use credence_ledger::hash::{Hash, HashOf};
use credence_ledger::ids::{Currency, Date, MemberName, Money, PatentNumber, Period, Uscc};
use credence_ledger::loans::{
    Appraisal, AppraisalPurpose, CnipaCancellation, Collateral, Disposal, DisposalMethod, Enrolment, Guarantee,
    IpPledge, Loan, LoanClass, LoanEvent, LoanEventKind, PatentStatus, PledgeCancel, PledgeRegistered, PledgeReserve,
    PoolClaim, PoolPayment, PoolTerms, Qualification, QualificationKind, RecoverySource, RiskPool, ValueType,
};
use credence_ledger::sig::{PublicKey, Signature};
use credence_ledger::vote::{BlockId, Equivocation, Proposal, SignedStatement, Statement, Vote, VoteKind};
use serde::de::DeserializeOwned;

/// splitmix64: a fixed seed per test, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
    /// Small, edge and arbitrary values alike.
    fn u64(&mut self) -> u64 {
        match self.below(4) {
            0 => *self.pick(&[0, 1, u64::MAX, u64::MAX - 1, 1 << 63, 255, 256]),
            1 => self.below(1000),
            _ => self.next(),
        }
    }
    fn u32(&mut self) -> u32 {
        self.u64() as u32
    }
    fn u16(&mut self) -> u16 {
        self.u64() as u16
    }
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        std::array::from_fn(|_| self.next() as u8)
    }
    fn vec_len(&mut self, max: u64) -> usize {
        self.below(max + 1) as usize
    }
}

fn digits(rng: &mut Rng, n: usize) -> String {
    (0..n).map(|_| char::from(b'0' + rng.below(10) as u8)).collect()
}

fn uscc(rng: &mut Rng) -> Uscc {
    const CHARSET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
    let mut s: String = (0..2).map(|_| char::from(*rng.pick(CHARSET))).collect();
    s.push_str(&digits(rng, 6));
    s.extend((0..9).map(|_| char::from(*rng.pick(CHARSET))));
    CHARSET
        .iter()
        .find_map(|&c| Uscc::parse("u", &format!("{s}{}", char::from(c))).ok())
        .expect("one check character fits")
}

fn patent_number(rng: &mut Rng) -> PatentNumber {
    let s = format!("{}{}{}", rng.range(2003, 2100), rng.pick(&[1, 2, 3, 8, 9]), digits(rng, 7));
    "0123456789X"
        .chars()
        .find_map(|c| PatentNumber::parse("p", &format!("CN{s}.{c}")).ok())
        .expect("one check digit fits")
}

fn patent_ref(rng: &mut Rng) -> PatentRef {
    match rng.below(3) {
        0 => PatentRef::Modern(patent_number(rng)),
        1 => {
            let year = rng.pick(&["89", "93", "99", "00", "03"]).to_string();
            let s = format!("{year}{}{}", rng.pick(&[1, 2, 3, 8, 9]), digits(rng, 5));
            "0123456789X"
                .chars()
                .find_map(|c| PatentRef::parse("p", &format!("CN{s}.{c}")).ok())
                .expect("one check digit fits")
        }
        _ => PatentRef::parse("p", &format!("CN{}{}{}", rng.range(85, 88), rng.range(1, 3), digits(rng, 5)))
            .expect("an 8-digit 1985-88 number"),
    }
}

fn publication(rng: &mut Rng) -> PublicationNumber {
    let (kind, first) = *rng.pick(&[('A', 1), ('B', 1), ('C', 1), ('U', 2), ('Y', 2), ('S', 3)]);
    let n = if rng.coin() { 6 } else { 8 };
    PublicationNumber::parse("g", &format!("CN{first}{}{kind}", digits(rng, n)))
        .unwrap_or_else(|_| PublicationNumber::parse("g", "CN1234567C").expect("a known grant"))
}

fn member(rng: &mut Rng) -> MemberName {
    const CH: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-";
    let len = rng.range(1, 32) as usize;
    let mut s: String = (0..len).map(|_| char::from(*rng.pick(CH))).collect();
    if s.starts_with('-') || s.ends_with('-') {
        s = s.replace('-', "x");
    }
    MemberName::parse("m", &s).expect("a valid name")
}

/// Any UTF-8 text: ASCII, two-, three- and four-byte characters.
fn text(rng: &mut Rng, max: u64) -> String {
    let n = rng.vec_len(max);
    (0..n).map(|_| *rng.pick(&['a', 'Z', ' ', '-', '/', 'é', '粤', '号', '𝄞', '\u{0}', '~'])).collect()
}

fn date(rng: &mut Rng) -> Date {
    let ymd = rng.range(1900, 9999) as u32 * 10_000 + rng.range(1, 12) as u32 * 100 + rng.range(1, 28) as u32;
    Date::try_from(ymd).expect("a calendar date")
}

fn currency(rng: &mut Rng) -> Currency {
    let b: [u8; 3] = std::array::from_fn(|_| b'A' + rng.below(26) as u8);
    Currency::try_from(b).expect("three capitals")
}

fn money(rng: &mut Rng) -> Money {
    Money { fen: rng.u64(), currency: currency(rng) }
}

fn amount(rng: &mut Rng) -> Amount {
    if rng.coin() {
        Amount::Plain(money(rng))
    } else {
        Amount::Sealed { currency: currency(rng), commitment: hash(rng) }
    }
}

fn hash(rng: &mut Rng) -> Hash {
    Hash(rng.bytes())
}

fn aid(rng: &mut Rng) -> AttestationId {
    HashOf::from_hash(hash(rng))
}

fn opt<T>(rng: &mut Rng, f: impl FnOnce(&mut Rng) -> T) -> Option<T> {
    if rng.coin() { Some(f(rng)) } else { None }
}

fn vec_of<T>(rng: &mut Rng, max: u64, mut f: impl FnMut(&mut Rng) -> T) -> Vec<T> {
    let n = rng.vec_len(max);
    (0..n).map(|_| f(rng)).collect()
}

fn member_key(rng: &mut Rng) -> MemberKey {
    MemberKey::Ed25519(PublicKey(rng.bytes()))
}

fn roles(rng: &mut Rng) -> Vec<Role> {
    vec_of(rng, 5, |r| *r.pick(&[Role::Bank, Role::ServiceCentre, Role::Appraiser, Role::RiskPool, Role::Regulator]))
}

fn block_id(rng: &mut Rng) -> BlockId {
    BlockId { hash: HashOf::from_hash(hash(rng)), tree_size: rng.u64(), root: hash(rng) }
}

fn signed_statement(rng: &mut Rng) -> SignedStatement {
    let statement = if rng.coin() {
        Statement::Vote(Vote {
            height: rng.u64(),
            round: rng.u32(),
            kind: *rng.pick(&[VoteKind::Prevote, VoteKind::Precommit]),
            value: opt(rng, block_id),
        })
    } else {
        Statement::Proposal(Proposal {
            height: rng.u64(),
            round: rng.u32(),
            block: block_id(rng),
            valid_round: opt(rng, Rng::u32),
        })
    };
    SignedStatement { statement, signature: Signature(rng.bytes()) }
}

fn change(rng: &mut Rng) -> Change {
    match rng.below(7) {
        0 => Change::AddMember { name: member(rng), key: member_key(rng), roles: roles(rng), validator: rng.coin() },
        1 => Change::RemoveMember { name: member(rng) },
        2 => Change::SetRoles { name: member(rng), roles: roles(rng), validator: rng.coin() },
        3 => Change::RevokeKey { name: member(rng), key: member_key(rng), replacement: member_key(rng) },
        4 => Change::SetConsensus(ConsensusParams {
            block_records_max: rng.u32(),
            block_bytes_max: rng.u32(),
            timeout_propose_ms: rng.u64(),
            timeout_prevote_ms: rng.u64(),
            timeout_precommit_ms: rng.u64(),
            timeout_delta_ms: rng.u64(),
        }),
        5 => Change::AddWitness { name: text(rng, 20), key: PublicKey(rng.bytes()), url: text(rng, 40) },
        _ => Change::RemoveWitness { name: text(rng, 20) },
    }
}

fn loan_event(rng: &mut Rng) -> LoanEventKind {
    let class =
        [LoanClass::Normal, LoanClass::SpecialMention, LoanClass::Substandard, LoanClass::Doubtful, LoanClass::Loss];
    let source = [
        RecoverySource::Borrower,
        RecoverySource::Guarantor,
        RecoverySource::Disposal,
        RecoverySource::Pool,
        RecoverySource::Insurer,
    ];
    match rng.below(4) {
        0 => LoanEventKind::Repayment { principal: money(rng), interest: money(rng) },
        1 => LoanEventKind::Classification { class: *rng.pick(&class), days_overdue: rng.u32() },
        2 => LoanEventKind::Default { days_overdue: rng.u32(), overdue_principal: money(rng) },
        _ => LoanEventKind::Recovery { amount: money(rng), source: *rng.pick(&source) },
    }
}

fn qualification(rng: &mut Rng) -> QualificationKind {
    if rng.coin() {
        let year = rng.range(2008, 2100);
        let prov = rng.pick(&[11, 31, 44, 65]);
        let serial = rng.range(1, 999_999);
        QualificationKind::HighTech {
            certificate: HnteCertificate::parse("c", &format!("GR{year}{prov}{serial:06}"))
                .unwrap_or_else(|_| HnteCertificate::parse("c", "GR202444000123").expect("a known certificate")),
            issued: date(rng),
        }
    } else {
        let year = rng.range(2017, 2100);
        let div = rng.pick(&["440305", "110108", "310115"]);
        let serial = rng.range(1, 99_999_999);
        QualificationKind::TechSme {
            registration: TechSmeNumber::parse("r", &format!("{year}{div}{serial:08}"))
                .unwrap_or_else(|_| TechSmeNumber::parse("r", "202544030500012345").expect("a known registration")),
        }
    }
}

fn registration(rng: &mut Rng) -> PledgeRegistration {
    let y = if rng.coin() { "Y" } else { "" };
    let office = rng.pick(&["98", "99", "44", "11"]);
    let text = format!("{y}{}{office}{:07}", rng.range(2008, 2100), rng.range(1, 9_999_999));
    PledgeRegistration::parse("r", &text)
        .unwrap_or_else(|_| PledgeRegistration::parse("r", "Y2024980000123").expect("a known registration"))
}

fn court_case(rng: &mut Rng) -> CourtCaseNumber {
    let court = rng.pick(&["粤03执", "最高法民终", "京01民初"]);
    CourtCaseNumber::parse("c", &format!("（{}）{court}{}号", rng.range(1990, 2100), rng.range(1, 9_999_999)))
        .unwrap_or_else(|_| CourtCaseNumber::parse("c", "（2024）粤03执1234号").expect("a known case"))
}

/// A random claim of `kind`, every sub-variant and optional field reachable.
fn claim(rng: &mut Rng, kind: ClaimKind) -> Claim {
    match kind {
        ClaimKind::RdSpend => Claim::RdSpend(RdSpend {
            enterprise: uscc(rng),
            period: Period::try_from((rng.range(1900, 2200) as u16, rng.below(5) as u8))
                .unwrap_or_else(|_| Period::parse("p", "2024Q3").expect("a period")),
            amount: amount(rng),
            category: *rng.pick(&[
                RdCategory::Total,
                RdCategory::Personnel,
                RdCategory::DirectInputs,
                RdCategory::Depreciation,
                RdCategory::Amortization,
                RdCategory::NewProductDesign,
                RdCategory::Commissioned,
                RdCategory::Other,
            ]),
            evidence: hash(rng),
        }),
        ClaimKind::PatentValuation => Claim::PatentValuation(PatentValuation {
            patent: patent_number(rng),
            owner: uscc(rng),
            value: amount(rng),
            method: *rng.pick(&[ValuationMethod::Income, ValuationMethod::Market, ValuationMethod::Cost]),
            valuation_date: date(rng),
            valid_until: date(rng),
            evidence: hash(rng),
        }),
        ClaimKind::PatentPledge => Claim::PatentPledge(PatentPledge {
            patent: patent_number(rng),
            pledgor: uscc(rng),
            pledgee: member(rng),
            secured: amount(rng),
            start: date(rng),
            term_months: rng.u16(),
            evidence: hash(rng),
        }),
        ClaimKind::PledgeRelease => Claim::PledgeRelease(PledgeRelease { pledge: aid(rng) }),
        ClaimKind::Revocation => Claim::Revocation(Revocation { target: aid(rng), superseded_by: opt(rng, aid) }),
        ClaimKind::Equivocation => Claim::Equivocation(Box::new(Equivocation {
            validator: member(rng),
            first: signed_statement(rng),
            second: signed_statement(rng),
        })),
        ClaimKind::IpPledge => Claim::IpPledge(match rng.below(3) {
            0 => IpPledge::Reserve(PledgeReserve {
                patent: patent_ref(rng),
                pledgor: uscc(rng),
                pledgee: member(rng),
                loan_contract: hash(rng),
                secured: amount(rng),
                start: date(rng),
                end: date(rng),
                evidence: hash(rng),
            }),
            1 => IpPledge::Registered(PledgeRegistered {
                pledge: aid(rng),
                registration: registration(rng),
                effective: date(rng),
                evidence: hash(rng),
            }),
            _ => IpPledge::Release(PledgeCancel {
                pledge: aid(rng),
                cancellation: opt(rng, |r| CnipaCancellation { date: date(r), evidence: hash(r) }),
            }),
        }),
        ClaimKind::PatentStatus => Claim::PatentStatus(PatentStatus {
            patent: patent_ref(rng),
            owner: uscc(rng),
            co_owners: vec_of(rng, 9, uscc),
            grant: opt(rng, publication),
            filed: date(rng),
            expires: date(rng),
            fees_paid_until: opt(rng, date),
            invalidation_pending: rng.coin(),
            court_preservation: rng.coin(),
            lapsed: rng.coin(),
            as_of: date(rng),
            evidence: hash(rng),
        }),
        ClaimKind::Appraisal => Claim::Appraisal(Appraisal {
            patent: patent_ref(rng),
            owner: uscc(rng),
            institution: uscc(rng),
            purpose: *rng.pick(&[AppraisalPurpose::Pledge, AppraisalPurpose::Licensing, AppraisalPurpose::Transfer]),
            value_type: *rng.pick(&[ValueType::Market, ValueType::Realisable]),
            value: money(rng),
            method: *rng.pick(&[ValuationMethod::Income, ValuationMethod::Market, ValuationMethod::Cost]),
            rationale: text(rng, 60),
            base_date: date(rng),
            valid_until: date(rng),
            evidence: hash(rng),
        }),
        ClaimKind::Loan => Claim::Loan(Loan {
            lender: member(rng),
            borrower: uscc(rng),
            contract: hash(rng),
            principal: money(rng),
            start: date(rng),
            maturity: date(rng),
            rate_bp: rng.u32(),
            collateral: vec_of(rng, 17, |r| Collateral { pledge: aid(r), appraisal: aid(r), share_bp: r.u16() }),
            guarantee: opt(rng, |r| Guarantee { guarantor: uscc(r), amount: money(r) }),
        }),
        ClaimKind::LoanEvent => Claim::LoanEvent(LoanEvent { loan: aid(rng), date: date(rng), event: loan_event(rng) }),
        ClaimKind::RiskPool => Claim::RiskPool(match rng.below(4) {
            0 => RiskPool::Open(PoolTerms {
                name: text(rng, 70),
                currency: currency(rng),
                pool_bp: rng.u16(),
                bank_bp: rng.u16(),
                guarantor_bp: rng.u16(),
                insurer_bp: rng.u16(),
                loan_cap: money(rng),
                enrol_from: date(rng),
                enrol_until: date(rng),
                claim_days: rng.u16(),
                default_days_min: rng.u16(),
            }),
            1 => RiskPool::Enrol(Enrolment { pool: aid(rng), loan: aid(rng), date: date(rng) }),
            2 => RiskPool::Claim(PoolClaim {
                pool: aid(rng),
                loan: aid(rng),
                date: date(rng),
                eligible_principal: money(rng),
                amount: money(rng),
                evidence: hash(rng),
            }),
            _ => RiskPool::Pay(PoolPayment { pool: aid(rng), loan: aid(rng), date: date(rng), amount: money(rng) }),
        }),
        ClaimKind::Disposal => Claim::Disposal(Disposal {
            pledge: aid(rng),
            method: *rng.pick(&[DisposalMethod::Discount, DisposalMethod::Auction, DisposalMethod::Sale]),
            court_case: opt(rng, court_case),
            price: money(rng),
            date: date(rng),
            new_owner: opt(rng, uscc),
            evidence: hash(rng),
        }),
        ClaimKind::Qualification => Claim::Qualification(Qualification {
            enterprise: uscc(rng),
            qualification: qualification(rng),
            evidence: hash(rng),
        }),
        ClaimKind::AccessKey => Claim::AccessKey(AccessKeyGrant {
            holder: text(rng, 40),
            key: PublicKey(rng.bytes()),
            scopes: vec_of(rng, 4, |r| *r.pick(&[Scope::Member, Scope::Restricted, Scope::Regulator])),
            expires_at_ms: rng.u64(),
        }),
        ClaimKind::Consent => Claim::Consent(Consent {
            enterprise: uscc(rng),
            recipient: member(rng),
            purpose: purpose(rng),
            scope: vec_of(rng, 5, |r| {
                *r.pick(&[FactKind::RdSpend, FactKind::PatentValuation, FactKind::PatentPledge, FactKind::Loan])
            }),
            expires_at_ms: rng.u64(),
            evidence: hash(rng),
        }),
        ClaimKind::Query => Claim::Query(QueryRecord {
            reader: member(rng),
            access_key: aid(rng),
            enterprise: uscc(rng),
            purpose: purpose(rng),
            consent: opt(rng, aid),
            read: match rng.below(5) {
                0 => ReadKind::Facts,
                1 => ReadKind::Openings,
                2 => ReadKind::Block { height: rng.u64() },
                3 => ReadKind::EntryBundle { index: rng.u64() },
                _ => ReadKind::Portfolio { height: rng.u64() },
            },
        }),
        ClaimKind::GovernanceProposal => {
            Claim::GovernanceProposal(Box::new(GovernanceProposal { change: change(rng), expires_at_ms: rng.u64() }))
        }
        ClaimKind::GovernanceApproval => Claim::GovernanceApproval(GovernanceApproval { proposal: aid(rng) }),
        ClaimKind::KeyRotation => {
            Claim::KeyRotation(KeyRotation { new_key: member_key(rng), possession: Signature(rng.bytes()) })
        }
    }
}

fn purpose(rng: &mut Rng) -> Purpose {
    *rng.pick(&[
        Purpose::LoanApplication,
        Purpose::PostLoanMonitoring,
        Purpose::GuaranteeReview,
        Purpose::RiskPoolClaim,
        Purpose::Supervision,
    ])
}

fn attestation(rng: &mut Rng, kind: ClaimKind) -> Attestation {
    Attestation {
        body: AttestationBody {
            attester: member(rng),
            sequence: rng.u64(),
            issued_at_ms: rng.u64(),
            claim: claim(rng, kind),
        },
        signature: Signature(rng.bytes()),
    }
}

fn header(rng: &mut Rng) -> BlockHeader {
    BlockHeader {
        height: rng.u64(),
        prev: HashOf::from_hash(hash(rng)),
        time_ms: rng.u64(),
        proposer: member(rng),
        tree_size: rng.u64(),
        tree_root: hash(rng),
        validator_set: hash(rng),
    }
}

/// Same verdict from both decoders: the same value, or the same error (`Malformed`'s text
/// differs by design: the new one names the field path). Returns whether they accepted.
fn agree<T: Decode + DeserializeOwned + PartialEq + std::fmt::Debug>(
    what: &'static str,
    bytes: &[u8],
    max: usize,
) -> bool {
    let old = codec::decode::<T>(what, bytes, max);
    let new = decoder::decode::<T>(what, bytes, max);
    match (&old, &new) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{what}: values differ for {}", hex::encode(bytes)),
        (Err(DecodeError::Malformed { .. }), Err(DecodeError::Malformed { reason, .. })) => {
            assert!(!reason.is_empty(), "{what}: an empty reason");
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "{what}: errors differ for {}", hex::encode(bytes)),
        _ => panic!("{what}: bincode {old:?} but hand-written {new:?} for {}", hex::encode(bytes)),
    }
    old.is_ok()
}

/// `Attestation::from_bytes` (the hand-written decoder and the field rules) agrees with the
/// reference: bincode, then the same field rules.
fn agree_attestation(bytes: &[u8]) -> bool {
    let ok = agree::<Attestation>("attestation", bytes, ATTESTATION_BYTES_MAX);
    let reference = codec::decode::<Attestation>("attestation", bytes, ATTESTATION_BYTES_MAX)
        .map_err(|e| e.to_string())
        .and_then(|a| a.body.claim.check_fields().map(|()| a).map_err(|e| e.to_string()));
    match (reference, Attestation::from_bytes(bytes)) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("from_bytes {b:?} but the reference {a:?} for {}", hex::encode(bytes)),
    }
    ok
}

/// A byte worth writing over another: structure bytes (tags, bools, lengths) and id characters.
fn interesting_byte(rng: &mut Rng) -> u8 {
    *rng.pick(&[0, 1, 2, 3, 4, 5, 19, 20, 0x7f, 0x80, 0xff, b'0', b'9', b'X', b'A', b'a', b'-', 0xe7, 0xc3])
}

/// One random edit of `bytes`.
fn mutate(rng: &mut Rng, bytes: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    if b.is_empty() {
        b.push(interesting_byte(rng));
        return b;
    }
    let at = |rng: &mut Rng, len: usize| if len == 0 { 0 } else { rng.below(len as u64) as usize };
    match rng.below(8) {
        0 => {
            let i = at(rng, b.len());
            b[i] ^= 1 << rng.below(8);
        }
        1 => {
            let i = at(rng, b.len());
            b[i] = interesting_byte(rng);
        }
        2 => {
            let i = at(rng, b.len() + 1);
            b.insert(i, interesting_byte(rng));
        }
        3 => {
            let i = at(rng, b.len());
            b.remove(i);
        }
        4 => b.truncate(at(rng, b.len())),
        5 => b.extend((0..rng.range(1, 70)).map(|_| interesting_byte(rng))),
        6 => {
            // A length prefix or a number grown or shrunk: add to a little-endian u64 in place.
            let i = at(rng, b.len().saturating_sub(8));
            if b.len() >= 8 {
                let mut w = [0u8; 8];
                w.copy_from_slice(&b[i..i + 8]);
                let v = u64::from_le_bytes(w).wrapping_add(*rng.pick(&[1, u64::MAX, 2, 64, 1 << 32, 1 << 62]));
                b[i..i + 8].copy_from_slice(&v.to_le_bytes());
            }
        }
        _ => {
            // Splice: repeat a slice (a sequence element or a field) somewhere else.
            if !b.is_empty() {
                let i = at(rng, b.len());
                let n = rng.range(1, 40).min((b.len() - i) as u64) as usize;
                let piece = b[i..i + n].to_vec();
                let j = at(rng, b.len() + 1);
                b.splice(j..j, piece);
            }
        }
    }
    b
}

#[test]
fn random_values_of_every_kind_decode_to_themselves_in_both() {
    let mut rng = Rng(1);
    for round in 0..1_500 {
        for kind in ClaimKind::ALL {
            let a = attestation(&mut rng, kind);
            let bytes = a.to_bytes();
            if bytes.len() > ATTESTATION_BYTES_MAX {
                continue;
            }
            assert!(agree_attestation(&bytes), "round {round}, {kind:?} refused: {}", hex::encode(&bytes));
            assert_eq!(decoder::decode::<Attestation>("attestation", &bytes, ATTESTATION_BYTES_MAX), Ok(a));
        }
        let h = header(&mut rng);
        let bytes = codec::encode(&h);
        assert!(agree::<BlockHeader>("block header", &bytes, HEADER_BYTES_MAX));
    }
}

#[test]
fn mutated_encodings_are_accepted_or_refused_alike() {
    let mut rng = Rng(2);
    let (mut accepted, mut refused) = (0u32, 0u32);
    for _ in 0..200 {
        for kind in ClaimKind::ALL {
            let bytes = attestation(&mut rng, kind).to_bytes();
            let mut m = bytes.clone();
            for _ in 0..40 {
                // Edits pile up a few at a time, then start over from the valid encoding.
                if rng.below(4) == 0 {
                    m = bytes.clone();
                }
                m = mutate(&mut rng, &m);
                if agree_attestation(&m) { accepted += 1 } else { refused += 1 }
            }
        }
        let h = codec::encode(&header(&mut rng));
        for _ in 0..20 {
            let m = mutate(&mut rng, &h);
            agree::<BlockHeader>("block header", &m, HEADER_BYTES_MAX);
        }
    }
    // The mutations reach both outcomes often (a flipped sequence number or hash byte stays valid).
    assert!(accepted > 10_000 && refused > 50_000, "accepted {accepted}, refused {refused}");
}

#[test]
fn every_truncation_and_every_single_byte_value_at_each_position_agree() {
    let mut rng = Rng(3);
    for kind in ClaimKind::ALL {
        let bytes = attestation(&mut rng, kind).to_bytes();
        for cut in 0..bytes.len() {
            assert!(!agree_attestation(&bytes[..cut]), "{kind:?}: a prefix of {cut} bytes was accepted");
        }
        for i in 0..bytes.len() {
            for v in [0u8, 1, 2, 0x30, 0x58, 0x80, 0xff] {
                let mut m = bytes.clone();
                m[i] = v;
                agree_attestation(&m);
            }
        }
    }
}

#[test]
fn bounds_trailing_bytes_and_empty_input_give_the_same_errors() {
    let mut rng = Rng(4);
    let bytes = attestation(&mut rng, ClaimKind::Loan).to_bytes();
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(
        decoder::decode::<Attestation>("attestation", &long, ATTESTATION_BYTES_MAX),
        Err(DecodeError::TrailingBytes { what: "attestation", trailing: 1 })
    );
    agree_attestation(&long);
    assert_eq!(
        decoder::decode::<Attestation>("attestation", &bytes, bytes.len() - 1),
        Err(DecodeError::TooLarge { what: "attestation", len: bytes.len(), max: bytes.len() - 1 })
    );
    agree::<Attestation>("attestation", &bytes, bytes.len() - 1);
    assert!(!agree_attestation(&[]));
    assert!(!agree_attestation(&vec![0u8; ATTESTATION_BYTES_MAX + 1]));
}

#[test]
fn unit_enum_tags_bools_and_option_tags_agree_on_every_value() {
    for tag in 0u32..=25 {
        let b = tag.to_le_bytes();
        agree::<RdCategory>("t", &b, 100);
        agree::<ValuationMethod>("t", &b, 100);
        agree::<VoteKind>("t", &b, 100);
        agree::<AppraisalPurpose>("t", &b, 100);
        agree::<ValueType>("t", &b, 100);
        agree::<LoanClass>("t", &b, 100);
        agree::<RecoverySource>("t", &b, 100);
        agree::<DisposalMethod>("t", &b, 100);
        agree::<Scope>("t", &b, 100);
        agree::<Purpose>("t", &b, 100);
        agree::<FactKind>("t", &b, 100);
        agree::<Role>("t", &b, 100);
        agree::<ReadKind>("t", &[&b[..], &7u64.to_le_bytes()].concat(), 100);
        agree::<MemberKey>("t", &[&b[..], &[9u8; 32]].concat(), 100);
    }
    for v in [0u32, 1, 2, 3, u32::MAX] {
        let b = v.to_le_bytes();
        assert_eq!(agree::<RdCategory>("t", &b, 100), v < 8);
    }
    for byte in 0u8..=255 {
        agree::<bool>("t", &[byte], 100);
        agree::<Option<u8>>("t", &[byte, 7], 100);
        agree::<Option<Date>>("t", &[byte, 0x3d, 0xfe, 0x34, 0x01], 100);
        agree::<Amount>("t", &[&[byte][..], &5u64.to_le_bytes(), b"CNY", &[0u8; 24]].concat(), 100);
    }
}

#[test]
fn identifiers_and_strings_agree_on_random_and_near_valid_bytes() {
    let mut rng = Rng(5);
    for _ in 0..20_000 {
        // Random bytes drawn from the characters the identifiers use.
        let pool = b"0123456789XABCGRY-az";
        let mut bytes: Vec<u8> = (0..24).map(|_| *rng.pick(pool)).collect();
        agree::<Uscc>("uscc", &bytes[..18], 100);
        agree::<PatentNumber>("p", &bytes[..13], 100);
        agree::<Currency>("c", &bytes[..3], 100);
        for (tag, n) in [(0u32, 13), (1, 9), (2, 8)] {
            agree::<PatentRef>("p", &[&tag.to_le_bytes()[..], &bytes[..n]].concat(), 100);
        }
        // A string: any length prefix (right or wrong) and the bytes, sometimes not UTF-8.
        if rng.below(5) == 0 {
            bytes[rng.below(24) as usize] = *rng.pick(&[0xff, 0xe7, 0xc3, 0x80]);
        }
        let n = rng.below(26);
        let s = [&n.to_le_bytes()[..], &bytes].concat();
        for len in [s.len(), s.len().min(8 + n as usize)] {
            agree::<String>("s", &s[..len], 100);
            agree::<MemberName>("m", &s[..len], 100);
            agree::<HnteCertificate>("h", &s[..len], 100);
            agree::<TechSmeNumber>("t", &s[..len], 100);
            agree::<PledgeRegistration>("r", &s[..len], 100);
            agree::<CourtCaseNumber>("c", &s[..len], 100);
        }
        let d = (rng.range(18_000_000, 21_001_231) as u32).to_le_bytes();
        agree::<Date>("d", &d, 100);
        agree::<Period>("p", &[&(rng.range(1890, 2300) as u16).to_le_bytes()[..], &[rng.below(7) as u8]].concat(), 100);
        agree::<PublicationNumber>(
            "g",
            &[&(rng.range(999_999, 1_000_000_001) as u32).to_le_bytes()[..], &[*rng.pick(b"ABCUYSZa")]].concat(),
            100,
        );
    }
    // Valid identifiers of every kind, spelled as stored, are accepted by both.
    for _ in 0..2_000 {
        assert!(agree::<Uscc>("u", &codec::encode(&uscc(&mut rng)), 100));
        assert!(agree::<PatentRef>("p", &codec::encode(&patent_ref(&mut rng)), 100));
        assert!(agree::<PublicationNumber>("g", &codec::encode(&publication(&mut rng)), 100));
        assert!(agree::<PledgeRegistration>("r", &codec::encode(&registration(&mut rng)), 100));
        assert!(agree::<CourtCaseNumber>("c", &codec::encode(&court_case(&mut rng)), 100));
        assert!(agree::<QualificationKind>("q", &codec::encode(&qualification(&mut rng)), 100));
    }
    // A code in a spelling other than the canonical one: refused by both.
    let lower = codec::encode(&"gr202444000123");
    assert!(!agree::<HnteCertificate>("h", &lower, 100));
}

#[test]
fn errors_name_the_field_path() {
    let mut rng = Rng(6);
    let a = attestation(&mut rng, ClaimKind::Loan);
    let mut bytes = a.to_bytes();
    // The borrower's USCC sits right after the claim tag and the lender's name.
    let Claim::Loan(l) = &a.body.claim else { unreachable!() };
    let at = 8 + a.body.attester.as_str().len() + 8 + 8 + 4 + 8 + l.lender.as_str().len();
    bytes[at] = b'I';
    let e = decoder::decode::<Attestation>("attestation", &bytes, ATTESTATION_BYTES_MAX).unwrap_err().to_string();
    assert!(e.starts_with("attestation: malformed encoding: body.claim.Loan.borrower: "), "{e}");
    let cut = &a.to_bytes()[..at + 3];
    let e = decoder::decode::<Attestation>("attestation", cut, ATTESTATION_BYTES_MAX).unwrap_err().to_string();
    assert_eq!(e, "attestation: malformed encoding: body.claim.Loan.borrower: uscc needs 18 bytes, 3 left");
    let mut bad_tag = a.to_bytes();
    let tag_at = 8 + a.body.attester.as_str().len() + 16;
    bad_tag[tag_at] = 20;
    let e = decoder::decode::<Attestation>("attestation", &bad_tag, ATTESTATION_BYTES_MAX).unwrap_err().to_string();
    assert_eq!(e, "attestation: malformed encoding: body.claim: Claim variant index 20 is not one of 0..=19");
}
