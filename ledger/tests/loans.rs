//! The IP-loan rules (R101..R132 and the field rules of tags 6..13), each both ways: the refusal with its code, and the same record put right accepted.
#![allow(clippy::inconsistent_digit_grouping)] // amounts are written yuan_fen: 5_000_000_00 is 5,000,000.00 CNY

use credence_ledger::attestation::{Attestation, AttestationBody, AttestationId, Claim, Revocation, ValuationMethod};
use credence_ledger::cn_ids::{
    CourtCaseNumber, HnteCertificate, PatentRef, PledgeRegistration, PublicationNumber, TechSmeNumber,
};
use credence_ledger::genesis::Genesis;
use credence_ledger::hash::Hash;
use credence_ledger::ids::{Currency, Date, MemberName, Money, PatentNumber, Uscc};
use credence_ledger::loans::{
    Appraisal, AppraisalPurpose, CnipaCancellation, Collateral, Disposal, DisposalMethod, Enrolment, IpPledge, Loan,
    LoanClass, LoanEvent, LoanEventKind, PatentStatus, PledgeCancel, PledgeRegistered, PledgeReserve, PoolClaim,
    PoolPayment, PoolTerms, Qualification, QualificationKind, RecoverySource, RiskPool, ValueType,
};
use credence_ledger::rules::{self, MemState, Rejection, RuleError};
use credence_ledger::sig::SecretKey;

const MEMBERS: [(&str, &str); 7] = [
    ("bank-a", "\"bank\""),
    ("bank-b", "\"bank\""),
    ("centre", "\"service-centre\""),
    ("appraiser", "\"appraiser\""),
    ("pool-admin", "\"risk-pool\""),
    ("pool-b", "\"risk-pool\""),
    ("bank-appraiser", "\"bank\", \"appraiser\""),
];

fn key(name: &str) -> SecretKey {
    SecretKey::from_seed(Hash::digest(&[name.as_bytes()]).0)
}

fn genesis() -> Genesis {
    let mut t = String::from(
        "chain_id = \"loans\"\ncheckpoint_origin = \"credence.example/loans\"\ngenesis_time_ms = 1000\n[consensus]\nblock_records_max = 10\nblock_bytes_max = 65536\ntimeout_propose_ms = 1000\ntimeout_prevote_ms = 500\ntimeout_precommit_ms = 500\ntimeout_delta_ms = 250\n",
    );
    for (n, r) in MEMBERS {
        t.push_str(&format!(
            "[[members]]\nname = \"{n}\"\npublic_key = \"{}\"\nroles = [{r}]\nvalidator = true\n",
            hex::encode(key(n).public().0)
        ));
    }
    Genesis::from_toml(&t).unwrap()
}

fn owner() -> Uscc {
    Uscc::parse("e", "91440300708461136T").unwrap()
}
fn other() -> Uscc {
    Uscc::parse("e", "914403001922038216").unwrap()
}
fn institution() -> Uscc {
    Uscc::parse("e", "91330100716105852F").unwrap()
}
fn patent() -> PatentRef {
    PatentRef::parse("p", "CN201510123456.1").unwrap()
}
fn name(s: &str) -> MemberName {
    MemberName::parse("m", s).unwrap()
}
fn cny(fen: u64) -> Money {
    Money { fen, currency: Currency::CNY }
}
fn d(s: &str) -> Date {
    Date::parse("d", s).unwrap()
}
const CONTRACT: Hash = Hash([0xc1; 32]);

/// A ledger under test that tracks each member's next sequence.
struct L {
    g: Genesis,
    state: MemState,
    time_ms: u64,
    /// The height of the next block.
    height: u64,
    seq: std::collections::HashMap<String, u64>,
}

impl L {
    fn new() -> L {
        L { g: genesis(), state: MemState::default(), time_ms: 1000, height: 1, seq: Default::default() }
    }

    fn sign(&self, who: &str, claim: Claim) -> Attestation {
        let sequence = self.seq.get(who).copied().unwrap_or(1);
        AttestationBody { attester: name(who), sequence, issued_at_ms: self.time_ms, claim }
            .sign(&key(who), &self.g.hash())
    }

    /// Applies one record as a block; commits it on success.
    fn try_(&mut self, who: &str, claim: Claim) -> Result<AttestationId, Rejection> {
        let a = self.sign(who, claim);
        let bytes = a.to_bytes().len();
        let time = self.time_ms + 1000;
        match rules::apply_block(&self.g, &self.state, self.height, self.time_ms, time, &[(a.id(), &a)], bytes) {
            Ok(delta) => {
                self.state.apply(&delta);
                self.time_ms = time;
                self.height += 1;
                *self.seq.entry(who.to_owned()).or_insert(1) += 1;
                Ok(a.id())
            }
            Err(RuleError::Record { rejection, .. }) => Err(rejection),
            Err(e) => panic!("unexpected {e}"),
        }
    }

    fn ok(&mut self, who: &str, claim: Claim) -> AttestationId {
        match self.try_(who, claim.clone()) {
            Ok(id) => id,
            Err(r) => panic!("refused {r} for {claim:?}"),
        }
    }

    /// Asserts the record is refused with `code`.
    fn no(&mut self, who: &str, claim: Claim, code: u16) {
        match self.try_(who, claim) {
            Err(r) => assert_eq!(r.code(), code, "expected R{code:03}, got {r}"),
            Ok(_) => panic!("expected R{code:03}, accepted"),
        }
    }
}

fn status(owner: Uscc, as_of: &str) -> PatentStatus {
    PatentStatus {
        patent: patent(),
        owner,
        co_owners: vec![],
        grant: Some(PublicationNumber::parse("g", "CN105123456B").unwrap()),
        filed: d("2015-03-10"),
        expires: d("2035-03-09"),
        fees_paid_until: Some(d("2026-10-09")),
        invalidation_pending: false,
        court_preservation: false,
        lapsed: false,
        as_of: d(as_of),
        evidence: Hash([1; 32]),
    }
}

fn appraisal(institution: Uscc) -> Appraisal {
    Appraisal {
        patent: patent(),
        owner: owner(),
        institution,
        purpose: AppraisalPurpose::Pledge,
        value_type: ValueType::Market,
        value: cny(10_000_000_00),
        method: ValuationMethod::Income,
        rationale: "licence income comparable; stable royalties".into(),
        base_date: d("2025-01-01"),
        valid_until: d("2025-12-31"),
        evidence: Hash([2; 32]),
    }
}

fn reserve(pledgee: &str) -> PledgeReserve {
    PledgeReserve {
        patent: patent(),
        pledgor: owner(),
        pledgee: name(pledgee),
        loan_contract: CONTRACT,
        secured: cny(5_000_000_00).into(),
        start: d("2025-03-01"),
        end: d("2027-02-28"),
        evidence: Hash([3; 32]),
    }
}

fn loan(lender: &str, pledge: AttestationId, appraisal: AttestationId) -> Loan {
    Loan {
        lender: name(lender),
        borrower: owner(),
        contract: CONTRACT,
        principal: cny(5_000_000_00),
        start: d("2025-03-01"),
        maturity: d("2026-02-28"),
        rate_bp: 385,
        collateral: vec![Collateral { pledge, appraisal, share_bp: 10_000 }],
        guarantee: None,
    }
}

fn reg(pledge: AttestationId, number: &str) -> Claim {
    Claim::IpPledge(IpPledge::Registered(PledgeRegistered {
        pledge,
        registration: PledgeRegistration::parse("r", number).unwrap(),
        effective: d("2025-03-05"),
        evidence: Hash([4; 32]),
    }))
}

fn ev(loan: AttestationId, date: &str, event: LoanEventKind) -> Claim {
    Claim::LoanEvent(LoanEvent { loan, date: d(date), event })
}

/// A world with a patent (status, appraisal), a registered pledge and its loan.
struct World {
    l: L,
    appraisal: AttestationId,
    pledge: AttestationId,
    loan: AttestationId,
}

fn world() -> World {
    let mut l = L::new();
    l.ok("centre", Claim::PatentStatus(status(owner(), "2025-01-01")));
    let appraisal = l.ok("appraiser", Claim::Appraisal(appraisal(institution())));
    let pledge = l.ok("bank-a", Claim::IpPledge(IpPledge::Reserve(reserve("bank-a"))));
    let loan = l.ok("bank-a", Claim::Loan(loan("bank-a", pledge, appraisal)));
    l.ok("bank-a", reg(pledge, "Y2025980000123"));
    World { l, appraisal, pledge, loan }
}

#[test]
fn a_pledge_needs_the_patent_status_and_its_owner() {
    let mut l = L::new();
    let r = Claim::IpPledge(IpPledge::Reserve(reserve("bank-a")));
    l.no("bank-a", r.clone(), 101);
    l.ok("centre", Claim::PatentStatus(status(other(), "2025-01-01")));
    l.no("bank-a", r.clone(), 102);
    l.ok("centre", Claim::PatentStatus(status(owner(), "2025-02-01")));
    // R105: the pledgee must be the attester.
    l.no("bank-b", r.clone(), 105);
    let first = l.ok("bank-a", r.clone());
    // R008: one active or reserved pledge per patent, by either pledge kind.
    l.no("bank-a", r.clone(), 8);
    let old = Claim::PatentPledge(credence_ledger::attestation::PatentPledge {
        patent: PatentNumber::parse("p", "CN201510123456.1").unwrap(),
        pledgor: owner(),
        pledgee: name("bank-a"),
        secured: cny(1).into(),
        start: d("2025-03-01"),
        term_months: 6,
        evidence: Hash::ZERO,
    });
    l.no("bank-a", old.clone(), 8);
    // An unregistered reservation is released without a CNIPA cancellation (R108 both ways).
    let cancel = CnipaCancellation { date: d("2025-04-01"), evidence: Hash([9; 32]) };
    let rel = |c: Option<CnipaCancellation>| {
        Claim::IpPledge(IpPledge::Release(PledgeCancel { pledge: first, cancellation: c }))
    };
    l.no("bank-a", rel(Some(cancel.clone())), 108);
    l.no("bank-b", rel(None), 105);
    l.ok("bank-a", rel(None));
    l.no("bank-a", rel(None), 13);
    // Freed: the legacy kind may take it, and then the new kind may not.
    let legacy = l.ok("bank-a", old);
    l.no("bank-a", r.clone(), 8);
    l.ok("bank-a", Claim::PledgeRelease(credence_ledger::attestation::PledgeRelease { pledge: legacy }));
    l.ok("bank-a", r);
}

#[test]
fn the_patent_status_can_forbid_a_pledge() {
    type Spoil = fn(&mut PatentStatus);
    let cases: [(&str, Spoil); 5] = [
        ("not granted", |s| s.grant = None),
        ("lapsed", |s| s.lapsed = true),
        ("court preservation", |s| s.court_preservation = true),
        ("invalidation", |s| s.invalidation_pending = true),
        ("fees", |s| s.fees_paid_until = Some(d("2025-02-28"))),
    ];
    for (what, spoil) in cases {
        let mut l = L::new();
        let mut s = status(owner(), "2025-01-01");
        spoil(&mut s);
        l.ok("centre", Claim::PatentStatus(s));
        let r = Claim::IpPledge(IpPledge::Reserve(reserve("bank-a")));
        match l.try_("bank-a", r.clone()) {
            Err(Rejection::PatentStatusForbids { .. }) => {}
            other => panic!("{what}: {other:?}"),
        }
        l.ok("centre", Claim::PatentStatus(status(owner(), "2025-01-02")));
        l.ok("bank-a", r);
    }
}

#[test]
fn the_debt_term_must_end_before_the_patent_expires() {
    let mut l = L::new();
    let mut s = status(owner(), "2025-01-01");
    s.expires = d("2027-02-28");
    l.ok("centre", Claim::PatentStatus(s));
    l.no("bank-a", Claim::IpPledge(IpPledge::Reserve(reserve("bank-a"))), 104);
    let mut r = reserve("bank-a");
    r.end = d("2027-02-27");
    l.ok("bank-a", Claim::IpPledge(IpPledge::Reserve(r)));
}

#[test]
fn registration_once_with_a_unique_number_and_release_needs_the_cancellation() {
    let mut w = world();
    let l = &mut w.l;
    l.no("bank-a", reg(w.pledge, "Y2025980000124"), 107);
    l.no("bank-b", reg(w.pledge, "Y2025980000124"), 105);
    l.no("bank-a", reg(w.loan, "Y2025980000124"), 106);
    let rel = |c: Option<CnipaCancellation>| {
        Claim::IpPledge(IpPledge::Release(PledgeCancel { pledge: w.pledge, cancellation: c }))
    };
    l.no("bank-a", rel(None), 108);
    l.ok("bank-a", rel(Some(CnipaCancellation { date: d("2026-03-01"), evidence: Hash([5; 32]) })));
    // The number stays taken: another pledge cannot reuse it (R109), a fresh one can.
    let mut r = reserve("bank-a");
    r.loan_contract = Hash([0xc2; 32]);
    let p2 = l.ok("bank-a", Claim::IpPledge(IpPledge::Reserve(r)));
    l.no("bank-a", reg(p2, "Y2025980000123"), 109);
    l.ok("bank-a", reg(p2, "Y2025980000124"));
}

#[test]
fn status_in_order_and_no_owner_change_while_pledged() {
    let mut w = world();
    w.l.no("centre", Claim::PatentStatus(status(owner(), "2024-12-31")), 110);
    w.l.no("appraiser", Claim::PatentStatus(status(other(), "2025-06-01")), 111);
    w.l.ok("appraiser", Claim::PatentStatus(status(owner(), "2025-06-01")));
    // Field rules (R007): the filing year is the one in the number; grants are not kind A.
    let mut s = status(owner(), "2025-07-01");
    s.filed = d("2016-01-01");
    w.l.no("centre", Claim::PatentStatus(s.clone()), 7);
    s.filed = d("2015-03-10");
    s.grant = Some(PublicationNumber::parse("g", "CN101234567A").unwrap());
    w.l.no("centre", Claim::PatentStatus(s.clone()), 7);
    s.co_owners = vec![owner()];
    s.grant = None;
    w.l.no("centre", Claim::PatentStatus(s.clone()), 7);
    s.co_owners = vec![other()];
    w.l.ok("centre", Claim::PatentStatus(s));
    // Only appraisers and service centres attest status (R002).
    w.l.no("bank-a", Claim::PatentStatus(status(owner(), "2025-08-01")), 2);
}

#[test]
fn appraisal_field_rules() {
    let mut l = L::new();
    let mut a = appraisal(institution());
    a.valid_until = d("2026-01-01");
    l.no("appraiser", Claim::Appraisal(a.clone()), 7);
    a.valid_until = d("2025-12-31");
    a.rationale = " ".into();
    l.no("appraiser", Claim::Appraisal(a.clone()), 7);
    a.rationale = "x".repeat(513);
    l.no("appraiser", Claim::Appraisal(a.clone()), 7);
    a.rationale = "market comparables".into();
    l.no("centre", Claim::Appraisal(a.clone()), 2);
    let id = l.ok("appraiser", Claim::Appraisal(a));
    // Appraisals can be revoked; loans cannot (R017).
    l.ok("appraiser", Claim::Revocation(Revocation { target: id, superseded_by: None }));
}

#[test]
fn a_loan_ties_pledge_appraisal_and_lender_together() {
    let mut l = L::new();
    l.ok("centre", Claim::PatentStatus(status(owner(), "2025-01-01")));
    let ap = l.ok("appraiser", Claim::Appraisal(appraisal(institution())));
    let by_borrower = l.ok("appraiser", Claim::Appraisal(appraisal(owner())));
    let mut other_patent = appraisal(institution());
    other_patent.patent = PatentRef::parse("p", "CN99100001.3").unwrap();
    let other_patent = l.ok("appraiser", Claim::Appraisal(other_patent));
    let p = l.ok("bank-a", Claim::IpPledge(IpPledge::Reserve(reserve("bank-a"))));

    l.no("bank-a", Claim::Loan(loan("bank-b", p, ap)), 112);
    l.no("bank-b", Claim::Loan(loan("bank-b", p, ap)), 113);
    l.no("bank-a", Claim::Loan(loan("bank-a", ap, ap)), 106);
    l.no("bank-a", Claim::Loan(loan("bank-a", p, p)), 114);
    l.no("bank-a", Claim::Loan(loan("bank-a", p, other_patent)), 114);
    l.no("bank-a", Claim::Loan(loan("bank-a", p, by_borrower)), 115);
    let mut late = loan("bank-a", p, ap);
    late.start = d("2026-01-02");
    late.maturity = d("2026-06-01");
    l.no("bank-a", Claim::Loan(late), 114);
    let mut long = loan("bank-a", p, ap);
    long.maturity = d("2027-03-01");
    l.no("bank-a", Claim::Loan(long), 113);
    let mut other_contract = loan("bank-a", p, ap);
    other_contract.contract = Hash([0xc9; 32]);
    l.no("bank-a", Claim::Loan(other_contract), 113);
    // Field rules: shares ≤ 100 %, rate ≤ 36 %, guarantor not the borrower.
    let mut f = loan("bank-a", p, ap);
    f.collateral[0].share_bp = 10_001;
    l.no("bank-a", Claim::Loan(f.clone()), 7);
    f.collateral[0].share_bp = 6_000;
    f.rate_bp = 3_601;
    l.no("bank-a", Claim::Loan(f.clone()), 7);
    f.rate_bp = 385;
    f.guarantee = Some(credence_ledger::loans::Guarantee { guarantor: owner(), amount: cny(1) });
    l.no("bank-a", Claim::Loan(f.clone()), 7);
    f.guarantee = Some(credence_ledger::loans::Guarantee { guarantor: other(), amount: cny(1_000_000_00) });
    let id = l.ok("bank-a", Claim::Loan(f.clone()));
    // One loan per contract; a pledge secures one loan.
    l.no("bank-a", Claim::Loan(f), 113);
    l.no("bank-a", Claim::Revocation(Revocation { target: id, superseded_by: None }), 17);
    // The appraiser may not be the lender: bank-appraiser's own appraisal (R115).
    let mut l2 = L::new();
    l2.ok("centre", Claim::PatentStatus(status(owner(), "2025-01-01")));
    let own2 = l2.ok("bank-appraiser", Claim::Appraisal(appraisal(institution())));
    let p2 = l2.ok("bank-appraiser", Claim::IpPledge(IpPledge::Reserve(reserve("bank-appraiser"))));
    l2.no("bank-appraiser", Claim::Loan(loan("bank-appraiser", p2, own2)), 115);
}

#[test]
fn loan_performance_in_order_within_the_outstanding() {
    let mut w = world();
    let (l, loan) = (&mut w.l, w.loan);
    let rep = |p, i| LoanEventKind::Repayment { principal: cny(p), interest: cny(i) };
    l.no("bank-a", ev(loan, "2025-02-28", rep(1, 0)), 118);
    l.no("bank-b", ev(loan, "2025-04-01", rep(1, 0)), 117);
    l.no("bank-a", ev(w.pledge, "2025-04-01", rep(1, 0)), 116);
    l.no("bank-a", ev(loan, "2025-04-01", rep(5_000_000_01, 0)), 120);
    l.no("bank-a", ev(loan, "2025-04-01", rep(0, 0)), 7);
    let usd = LoanEventKind::Repayment {
        principal: Money { fen: 1, currency: Currency::USD },
        interest: Money { fen: 0, currency: Currency::USD },
    };
    l.no("bank-a", ev(loan, "2025-04-01", usd), 119);
    l.ok("bank-a", ev(loan, "2025-04-01", rep(1_000_000_00, 1_600_000)));
    l.no("bank-a", ev(loan, "2025-03-31", rep(1, 0)), 118);
    // Classification must be at least the floor for the days overdue (R007).
    let class = |class, days_overdue| LoanEventKind::Classification { class, days_overdue };
    l.no("bank-a", ev(loan, "2025-06-01", class(LoanClass::Normal, 10)), 7);
    l.no("bank-a", ev(loan, "2025-07-01", class(LoanClass::SpecialMention, 91)), 7);
    l.ok("bank-a", ev(loan, "2025-07-01", class(LoanClass::Substandard, 91)));
    // Recovery only after a default.
    let rec = |a| LoanEventKind::Recovery { amount: cny(a), source: RecoverySource::Guarantor };
    l.no("bank-a", ev(loan, "2025-07-02", rec(1)), 122);
    let dflt = |days, fen| LoanEventKind::Default { days_overdue: days, overdue_principal: cny(fen) };
    l.no("bank-a", ev(loan, "2025-07-02", dflt(0, 1)), 7);
    l.no("bank-a", ev(loan, "2025-07-02", dflt(92, 4_000_000_01)), 120);
    l.ok("bank-a", ev(loan, "2025-07-02", dflt(92, 4_000_000_00)));
    l.no("bank-a", ev(loan, "2025-07-03", dflt(93, 1)), 121);
    l.ok("bank-a", ev(loan, "2025-07-03", rec(1_000_000_00)));
}

fn terms() -> PoolTerms {
    PoolTerms {
        name: "Shenzhen IP pledge risk pool 2025".into(),
        currency: Currency::CNY,
        pool_bp: 4_000,
        bank_bp: 3_000,
        guarantor_bp: 2_000,
        insurer_bp: 1_000,
        loan_cap: cny(1_500_000_00),
        enrol_from: d("2025-01-01"),
        enrol_until: d("2025-12-31"),
        claim_days: 180,
        default_days_min: 90,
    }
}

#[test]
fn risk_pool_terms_enrolment_claim_and_payment() {
    let mut w = world();
    let (l, loan) = (&mut w.l, w.loan);
    let mut t = terms();
    t.insurer_bp = 1_001;
    l.no("pool-admin", Claim::RiskPool(RiskPool::Open(t.clone())), 7);
    t.insurer_bp = 1_000;
    l.no("bank-a", Claim::RiskPool(RiskPool::Open(t.clone())), 124);
    l.no("centre", Claim::RiskPool(RiskPool::Open(t.clone())), 2);
    let pool = l.ok("pool-admin", Claim::RiskPool(RiskPool::Open(t)));
    let enrol = |date: &str| Claim::RiskPool(RiskPool::Enrol(Enrolment { pool, loan, date: d(date) }));
    l.no("pool-b", enrol("2025-03-10"), 124);
    l.no("pool-admin", enrol("2026-01-01"), 125);
    l.no("pool-admin", Claim::RiskPool(RiskPool::Enrol(Enrolment { pool: loan, loan, date: d("2025-03-10") })), 123);
    l.no("pool-admin", Claim::RiskPool(RiskPool::Enrol(Enrolment { pool, loan: pool, date: d("2025-03-10") })), 116);
    let claim = |date: &str, eligible: u64, amount: u64| {
        Claim::RiskPool(RiskPool::Claim(PoolClaim {
            pool,
            loan,
            date: d(date),
            eligible_principal: cny(eligible),
            amount: cny(amount),
            evidence: Hash([6; 32]),
        }))
    };
    l.no("bank-a", claim("2025-09-01", 1, 1), 127);
    l.ok("pool-admin", enrol("2025-03-10"));
    l.no("pool-admin", enrol("2025-03-11"), 126);
    // No confirmed default yet; then one too short; then 95 days.
    l.no("bank-a", claim("2025-09-01", 1, 1), 122);
    l.ok(
        "bank-a",
        ev(loan, "2025-06-01", LoanEventKind::Default { days_overdue: 60, overdue_principal: cny(3_000_000_00) }),
    );
    l.no("bank-a", claim("2025-09-01", 1, 1), 122);
    let mut w2 = world();
    let (l, loan) = (&mut w2.l, w2.loan);
    let pool = l.ok("pool-admin", Claim::RiskPool(RiskPool::Open(terms())));
    l.ok("pool-admin", Claim::RiskPool(RiskPool::Enrol(Enrolment { pool, loan, date: d("2025-03-10") })));
    l.ok(
        "bank-a",
        ev(loan, "2025-06-01", LoanEventKind::Default { days_overdue: 95, overdue_principal: cny(3_000_000_00) }),
    );
    let claim = |date: &str, eligible: u64, amount: u64| {
        Claim::RiskPool(RiskPool::Claim(PoolClaim {
            pool,
            loan,
            date: d(date),
            eligible_principal: cny(eligible),
            amount: cny(amount),
            evidence: Hash([6; 32]),
        }))
    };
    // Outside the 180-day window; above the principal overdue; above 40 % share; above the cap.
    l.no("bank-a", claim("2025-11-29", 3_000_000_00, 1_000_000_00), 125);
    l.no("bank-a", claim("2025-09-01", 3_000_000_01, 1_000_000_00), 129);
    // 40 % of 3,000,000.00 is 1,200,000.00 (under the 1,500,000.00 cap).
    l.no("bank-a", claim("2025-09-01", 3_000_000_00, 1_200_000_01), 129);
    l.no("bank-b", claim("2025-09-01", 3_000_000_00, 1_000_000_00), 117);
    let pay = |who: &str, amount: u64, l: &mut L| {
        l.try_(
            who,
            Claim::RiskPool(RiskPool::Pay(PoolPayment { pool, loan, date: d("2025-10-01"), amount: cny(amount) })),
        )
    };
    assert_eq!(pay("pool-admin", 1, l).unwrap_err().code(), 130);
    l.ok("bank-a", claim("2025-09-01", 3_000_000_00, 1_200_000_00));
    l.no("bank-a", claim("2025-09-02", 3_000_000_00, 1), 128);
    assert_eq!(pay("pool-b", 1, l).unwrap_err().code(), 124);
    assert_eq!(pay("bank-a", 1, l).unwrap_err().code(), 124);
    pay("pool-admin", 700_000_00, l).unwrap();
    assert_eq!(pay("pool-admin", 500_000_01, l).unwrap_err().code(), 131);
    pay("pool-admin", 500_000_00, l).unwrap();
}

#[test]
fn the_per_loan_cap_bounds_a_claim() {
    let mut w = world();
    let (l, loan) = (&mut w.l, w.loan);
    let mut t = terms();
    t.loan_cap = cny(1_000_000_00);
    let pool = l.ok("pool-admin", Claim::RiskPool(RiskPool::Open(t)));
    l.ok("pool-admin", Claim::RiskPool(RiskPool::Enrol(Enrolment { pool, loan, date: d("2025-03-10") })));
    l.ok(
        "bank-a",
        ev(loan, "2025-06-01", LoanEventKind::Default { days_overdue: 95, overdue_principal: cny(3_000_000_00) }),
    );
    let claim = |amount| {
        Claim::RiskPool(RiskPool::Claim(PoolClaim {
            pool,
            loan,
            date: d("2025-07-01"),
            eligible_principal: cny(3_000_000_00),
            amount: cny(amount),
            evidence: Hash([6; 32]),
        }))
    };
    l.no("bank-a", claim(1_000_000_01), 129);
    l.ok("bank-a", claim(1_000_000_00));
}

#[test]
fn disposal_releases_the_pledge_and_can_change_the_owner() {
    let mut w = world();
    let l = &mut w.l;
    let disp = |pledge, method, court: Option<&str>| Disposal {
        pledge,
        method,
        court_case: court.map(|c| CourtCaseNumber::parse("c", c).unwrap()),
        price: cny(2_000_000_00),
        date: d("2025-12-01"),
        new_owner: Some(other()),
        evidence: Hash([7; 32]),
    };
    l.no("bank-a", Claim::Disposal(disp(w.pledge, DisposalMethod::Auction, None)), 7);
    l.no("bank-b", Claim::Disposal(disp(w.pledge, DisposalMethod::Auction, Some("（2025）粤03执123号"))), 105);
    l.no("bank-a", Claim::Disposal(disp(w.loan, DisposalMethod::Sale, None)), 106);
    l.ok("bank-a", Claim::Disposal(disp(w.pledge, DisposalMethod::Auction, Some("（2025）粤03执123号"))));
    l.no("bank-a", Claim::Disposal(disp(w.pledge, DisposalMethod::Sale, None)), 13);
    // The new owner may now pledge the patent; the old one may not.
    let mut r = reserve("bank-b");
    r.loan_contract = Hash([0xc3; 32]);
    l.no("bank-b", Claim::IpPledge(IpPledge::Reserve(r.clone())), 102);
    r.pledgor = other();
    l.ok("bank-b", Claim::IpPledge(IpPledge::Reserve(r)));
    // An unregistered reservation cannot be disposed of (R132).
    let mut l2 = L::new();
    l2.ok("centre", Claim::PatentStatus(status(owner(), "2025-01-01")));
    let p = l2.ok("bank-a", Claim::IpPledge(IpPledge::Reserve(reserve("bank-a"))));
    l2.no("bank-a", Claim::Disposal(disp(p, DisposalMethod::Discount, None)), 132);
    let _ = w.appraisal;
}

#[test]
fn qualifications_by_service_centres_with_numbers_used_once() {
    let mut l = L::new();
    let hnte = |e, issued: &str| Qualification {
        enterprise: e,
        qualification: QualificationKind::HighTech {
            certificate: HnteCertificate::parse("c", "GR202444000123").unwrap(),
            issued: d(issued),
        },
        evidence: Hash([8; 32]),
    };
    l.no("centre", Claim::Qualification(hnte(owner(), "2023-12-01")), 7);
    l.no("bank-a", Claim::Qualification(hnte(owner(), "2024-12-01")), 2);
    l.no("appraiser", Claim::Qualification(hnte(owner(), "2024-12-01")), 2);
    let id = l.ok("centre", Claim::Qualification(hnte(owner(), "2024-12-01")));
    l.no("centre", Claim::Qualification(hnte(other(), "2024-12-01")), 109);
    let sme = Qualification {
        enterprise: owner(),
        qualification: QualificationKind::TechSme {
            registration: TechSmeNumber::parse("r", "202544030500012345").unwrap(),
        },
        evidence: Hash([8; 32]),
    };
    l.ok("centre", Claim::Qualification(sme));
    l.ok("centre", Claim::Revocation(Revocation { target: id, superseded_by: None }));
    let (from, until) = hnte(owner(), "2024-12-01").qualification.validity().unwrap();
    assert_eq!((from, until), (d("2024-12-01"), d("2027-11-30")));
}
