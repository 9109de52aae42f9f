//! Every portfolio figure against a hand-computed fixture (amounts written yuan_fen).
#![allow(clippy::inconsistent_digit_grouping)]

use credence_ledger::attestation::{AttestationId, Claim, ValuationMethod};
use credence_ledger::cn_ids::PatentRef;
use credence_ledger::hash::{Hash, HashOf};
use credence_ledger::ids::{Currency, Date, MemberName, Money, Uscc};
use credence_ledger::loans::{
    Appraisal, AppraisalPurpose, Collateral, Enrolment, Loan, LoanClass, LoanEvent, LoanEventKind, PoolClaim,
    PoolPayment, PoolTerms, RecoverySource, RiskPool, ValueType,
};
use credence_ledger::portfolio::Portfolio;

fn id(n: u8) -> AttestationId {
    HashOf::from_hash(Hash([n; 32]))
}
fn cny(fen: u64) -> Money {
    Money { fen, currency: Currency::CNY }
}
fn d(s: &str) -> Date {
    Date::parse("d", s).unwrap()
}
fn name(s: &str) -> MemberName {
    MemberName::parse("m", s).unwrap()
}
fn uscc() -> Uscc {
    Uscc::parse("u", "91440300708461136T").unwrap()
}

fn appraisal(value: u64) -> Claim {
    Claim::Appraisal(Appraisal {
        patent: PatentRef::parse("p", "CN99100001.3").unwrap(),
        owner: uscc(),
        institution: Uscc::parse("u", "91330100716105852F").unwrap(),
        purpose: AppraisalPurpose::Pledge,
        value_type: ValueType::Market,
        value: cny(value),
        method: ValuationMethod::Income,
        rationale: "r".into(),
        base_date: d("2025-01-01"),
        valid_until: d("2025-12-31"),
        evidence: Hash::ZERO,
    })
}

fn loan(lender: &str, principal: u64, appraisal: Option<AttestationId>) -> Claim {
    Claim::Loan(Loan {
        lender: name(lender),
        borrower: uscc(),
        contract: Hash::ZERO,
        principal: cny(principal),
        start: d("2025-03-01"),
        maturity: d("2026-02-28"),
        rate_bp: 385,
        collateral: appraisal
            .map(|a| Collateral { pledge: id(0xee), appraisal: a, share_bp: 10_000 })
            .into_iter()
            .collect(),
        guarantee: None,
    })
}

fn ev(loan: AttestationId, event: LoanEventKind) -> Claim {
    Claim::LoanEvent(LoanEvent { loan, date: d("2025-09-01"), event })
}

#[test]
fn every_figure_matches_the_hand_computation() {
    let mut p = Portfolio::default();
    let (a1, a2, a3) = (id(0xa1), id(0xa2), id(0xa3));
    let (l1, l2, l3, l4) = (id(1), id(2), id(3), id(4));
    let (pool, pay1, pay2) = (id(0x90), id(0x91), id(0x92));
    let records = vec![
        (a1, appraisal(10_000_000_00)),
        (a2, appraisal(4_000_000_00)),
        (a3, appraisal(2_000_000_00)),
        (l1, loan("bank-a", 5_000_000_00, Some(a1))), // LTV 50 %
        (l2, loan("bank-a", 1_000_000_00, Some(a2))), // LTV 25 %
        (l3, loan("bank-b", 1_800_000_00, Some(a3))), // LTV 90 %
        (l4, loan("bank-b", 9_000_000_00, None)),     // not an IP-pledge loan
        (id(0x11), ev(l1, LoanEventKind::Repayment { principal: cny(1_000_000_00), interest: cny(1) })),
        (id(0x21), ev(l2, LoanEventKind::Classification { class: LoanClass::Substandard, days_overdue: 95 })),
        (id(0x31), ev(l3, LoanEventKind::Default { days_overdue: 100, overdue_principal: cny(1_800_000_00) })),
        (id(0x32), ev(l3, LoanEventKind::Classification { class: LoanClass::Doubtful, days_overdue: 280 })),
        (id(0x33), ev(l3, LoanEventKind::Recovery { amount: cny(300_000_00), source: RecoverySource::Guarantor })),
        (
            pool,
            Claim::RiskPool(RiskPool::Open(PoolTerms {
                name: "pool".into(),
                currency: Currency::CNY,
                pool_bp: 4_000,
                bank_bp: 6_000,
                guarantor_bp: 0,
                insurer_bp: 0,
                loan_cap: cny(1_500_000_00),
                enrol_from: d("2025-01-01"),
                enrol_until: d("2025-12-31"),
                claim_days: 180,
                default_days_min: 90,
            })),
        ),
        (id(0x94), Claim::RiskPool(RiskPool::Enrol(Enrolment { pool, loan: l1, date: d("2025-03-02") }))),
        (id(0x95), Claim::RiskPool(RiskPool::Enrol(Enrolment { pool, loan: l3, date: d("2025-03-02") }))),
        (
            id(0x96),
            Claim::RiskPool(RiskPool::Claim(PoolClaim {
                pool,
                loan: l3,
                date: d("2025-10-01"),
                eligible_principal: cny(1_500_000_00),
                amount: cny(600_000_00),
                evidence: Hash::ZERO,
            })),
        ),
        (
            pay1,
            Claim::RiskPool(RiskPool::Pay(PoolPayment {
                pool,
                loan: l3,
                date: d("2025-10-02"),
                amount: cny(200_000_00),
            })),
        ),
        (
            pay2,
            Claim::RiskPool(RiskPool::Pay(PoolPayment {
                pool,
                loan: l3,
                date: d("2025-10-03"),
                amount: cny(400_000_00),
            })),
        ),
    ];
    for (i, c) in &records {
        p.add(*i, c);
    }
    let (all, by) = p.figures();
    // Outstanding: 4,000,000 (L1 after repayment) + 1,000,000 (L2) + 1,500,000 (L3 after recovery).
    assert_eq!(all.loans, 3);
    assert_eq!(all.outstanding_fen, 6_500_000_00);
    // Bad: L2 (次级) and L3 (可疑): 2,500,000 of 6,500,000 = 38.46 %.
    assert_eq!(all.bad_fen, 2_500_000_00);
    assert_eq!(all.bad_ratio_bp(), 3846);
    assert_eq!(all.ltv, [1, 0, 1, 1, 0]);
    let a = &by[&name("bank-a")];
    assert_eq!(
        (a.loans, a.outstanding_fen, a.bad_fen, a.bad_ratio_bp(), a.ltv),
        (2, 5_000_000_00, 1_000_000_00, 2000, [1, 0, 1, 0, 0])
    );
    let b = &by[&name("bank-b")];
    assert_eq!(
        (b.loans, b.outstanding_fen, b.bad_fen, b.bad_ratio_bp(), b.ltv),
        (1, 1_500_000_00, 1_500_000_00, 10_000, [0, 0, 0, 1, 0])
    );
    // Traceability: L3's class comes from its classification record, its LTV from appraisal a3.
    let l3_line = p.loans().find(|l| l.loan == l3).unwrap();
    assert_eq!(
        (l3_line.class, l3_line.class_record, l3_line.appraisals.clone()),
        (LoanClass::Doubtful, id(0x32), vec![a3])
    );
    assert_eq!(l3_line.ltv_bp(), Some(9000));
    // Pool: exposure min(40 % × 4,000,000, cap 1,500,000) + 40 % × 1,500,000 = 2,100,000; claims 600,000, paid 600,000.
    let pools = p.pools();
    let f = &pools[&pool];
    assert_eq!((f.enrolled, f.exposure_fen, f.claimed_fen, f.paid_fen), (2, 2_100_000_00, 600_000_00, 600_000_00));
    assert_eq!(f.payments, vec![pay1, pay2]);
}
