//! The IP-loan sections of a credit profile: loans with status, classification and overdue history, pledged vs appraised value (LTV), pool records, qualifications and patent-status warnings.
//!
//! [`LoanSections::build`] is a pure function of the enterprise's committed attestations,
//! the records that name its loans and pledges (`GET /v1/attestations/{id}/references`)
//! and an "as of" date. It reads the typed records by decoding each item's canonical
//! bytes (the `attestation` field) and checking that they hash to the item's id, so it
//! never depends on the API's text renderings. docs/AUDITING.md states the rules.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use credence_ledger::attestation::{Attestation, Claim};
use credence_ledger::ids::{Date, Money};
use credence_ledger::loans::{
    Appraisal, IpPledge, LoanClass, LoanEventKind, PatentStatus, PledgeReserve, QualificationKind, RiskPool,
};
use credence_node::api::views::AttestationView;
use serde::Serialize;

use crate::profile::{Total, decimal};

/// An amount in one currency.
fn amount(m: &Money) -> Total {
    Total { currency: m.currency.to_string(), fen: m.fen, amount: decimal(m.fen) }
}

fn amount_of(fen: u64, like: &Money) -> Total {
    Total { currency: like.currency.to_string(), fen, amount: decimal(fen) }
}

/// One entry of a loan's classification history.
#[derive(Debug, Serialize)]
pub struct ClassLine {
    pub date: String,
    pub class: String,
    pub days_overdue: u32,
    pub id: String,
}

/// A day the lender recorded principal or interest overdue.
#[derive(Debug, Serialize)]
pub struct OverdueLine {
    pub date: String,
    pub days_overdue: u32,
    /// `classification` or `default`.
    pub event: String,
    pub id: String,
}

/// A confirmed default.
#[derive(Debug, Serialize)]
pub struct DefaultLine {
    pub date: String,
    pub days_overdue: u32,
    pub overdue_principal: Total,
    pub id: String,
}

/// One pledge securing a loan, against the appraisal the lender relied on.
#[derive(Debug, Serialize)]
pub struct CollateralLine {
    pub pledge: String,
    pub patent: Option<String>,
    pub share_bp: u16,
    /// The amount the pledge secures (from the reservation); null when not found, or when
    /// sealed and not disclosed to this reader (`secured_sealed`).
    pub secured: Option<Total>,
    /// The reservation's secured amount is confidential on the ledger.
    pub secured_sealed: bool,
    /// `reserved`, `registered`, `released`, `disposed` or `revoked`, with the numbers and dates behind it.
    pub pledge_status: String,
    pub appraisal: String,
    pub appraised: Option<Total>,
    pub appraisal_valid_until: Option<String>,
    pub method: Option<String>,
}

/// A risk-pool record about a loan.
#[derive(Debug, Serialize)]
pub struct PoolLine {
    /// `enrolled`, `claimed` or `paid`.
    pub event: String,
    pub pool: String,
    pub date: String,
    pub amount: Option<Total>,
    pub id: String,
}

/// A loan to the enterprise and what became of it.
#[derive(Debug, Serialize)]
pub struct LoanLine {
    pub id: String,
    pub height: Option<u64>,
    pub lender: String,
    pub principal: Total,
    pub outstanding: Total,
    pub start: String,
    pub maturity: String,
    pub rate_bp: u32,
    /// `repaid`, `performing`, `overdue`, `defaulted`, `past maturity` or `closed after default`.
    pub status: String,
    /// The latest five-category class (正常 when none was recorded).
    pub class: String,
    /// The record that set `class` (the loan itself when none did).
    pub class_record: String,
    pub classifications: Vec<ClassLine>,
    pub max_days_overdue: u32,
    pub overdue: Vec<OverdueLine>,
    pub repaid_principal: Total,
    pub interest_paid: Total,
    pub recovered: Total,
    pub default: Option<DefaultLine>,
    pub collateral: Vec<CollateralLine>,
    /// Sum of the collateral appraisals found on the ledger.
    pub appraised: Total,
    /// Principal over appraised value, in basis points (`None` without appraisals).
    pub ltv_bp: Option<u64>,
    pub guarantee: Option<String>,
    pub pool: Vec<PoolLine>,
}

/// A qualification of the enterprise.
#[derive(Debug, Serialize)]
pub struct QualificationLine {
    /// `high-tech` or `tech-sme`.
    pub kind: String,
    pub number: String,
    pub valid_from: String,
    pub valid_until: String,
    /// Valid on the as-of date and not revoked.
    pub current: bool,
    pub attester: String,
    pub id: String,
}

/// The latest recorded status of a patent of the enterprise, and what a lender should know.
#[derive(Debug, Serialize)]
pub struct PatentStatusLine {
    pub patent: String,
    pub as_of: String,
    pub owner: String,
    pub co_owners: Vec<String>,
    pub grant: Option<String>,
    pub expires: String,
    pub fees_paid_until: Option<String>,
    pub warnings: Vec<String>,
    pub attester: String,
    pub id: String,
}

impl LoanSections {
    /// Fills the sealed secured amounts of collateral pledges whose openings matched.
    pub fn open_collateral(&mut self, d: &crate::openings::Disclosures) {
        for c in self.loans.iter_mut().flat_map(|l| &mut l.collateral) {
            if let Some(crate::openings::Disclosure::Opened(m)) = d.get(&c.pledge, "ip-pledge.secured") {
                c.secured = Some(amount(m));
            }
        }
    }
}

/// The IP-loan part of a profile.
#[derive(Debug, Default, Serialize)]
pub struct LoanSections {
    pub loans: Vec<LoanLine>,
    pub loans_outstanding: Vec<Total>,
    pub qualifications: Vec<QualificationLine>,
    pub patent_status: Vec<PatentStatusLine>,
    /// Items whose bytes did not decode or did not hash to their id (never relied on).
    pub undecodable: Vec<String>,
}

/// A committed item with its decoded record.
struct Item<'a> {
    view: &'a AttestationView,
    a: Attestation,
}

/// Decodes committed items; those that fail (or do not hash to their id) go to `bad`.
fn decode<'a>(items: impl Iterator<Item = &'a AttestationView>, bad: &mut Vec<String>) -> Vec<Item<'a>> {
    let mut out = Vec::new();
    for view in items.filter(|v| v.status == "committed") {
        let a =
            view.attestation.as_ref().and_then(|t| B64.decode(t).ok()).and_then(|b| Attestation::from_bytes(&b).ok());
        match a {
            Some(a) if a.id().to_string() == view.id => out.push(Item { view, a }),
            _ => bad.push(view.id.clone()),
        }
    }
    out.sort_by_key(|i| i.view.leaf_index);
    out
}

fn active(v: &AttestationView) -> bool {
    v.record_status.as_deref().is_none_or(|s| s == "active")
}

impl LoanSections {
    /// The loans, qualifications and patent statuses of `enterprise`. `refs` maps a record id
    /// (hex) to the committed records that name it.
    pub fn build(
        enterprise: &str,
        items: &[AttestationView],
        refs: &BTreeMap<String, Vec<AttestationView>>,
        as_of: Date,
    ) -> LoanSections {
        let mut s = LoanSections::default();
        let items = decode(items.iter(), &mut s.undecodable);
        let mut appraisals: HashMap<String, &Appraisal> = HashMap::new();
        let mut reserves: HashMap<String, (&PledgeReserve, &AttestationView)> = HashMap::new();
        let mut statuses: BTreeMap<String, (&PatentStatus, &AttestationView)> = BTreeMap::new();
        for i in &items {
            match &i.a.body.claim {
                Claim::Appraisal(a) if active(i.view) => {
                    appraisals.insert(i.view.id.clone(), a);
                }
                Claim::IpPledge(IpPledge::Reserve(r)) => {
                    reserves.insert(i.view.id.clone(), (r, i.view));
                }
                Claim::PatentStatus(p) if p.owner.as_str() == enterprise => {
                    let key = p.patent.to_string();
                    // The latest by as-of date, then ledger order.
                    if statuses.get(&key).is_none_or(|(old, _)| p.as_of >= old.as_of) {
                        statuses.insert(key, (p, i.view));
                    }
                }
                Claim::Qualification(q) if q.enterprise.as_str() == enterprise => {
                    let (kind, number) = match &q.qualification {
                        QualificationKind::HighTech { certificate, .. } => ("high-tech", certificate.to_string()),
                        QualificationKind::TechSme { registration } => ("tech-sme", registration.to_string()),
                    };
                    let Some((from, until)) = q.qualification.validity() else { continue };
                    s.qualifications.push(QualificationLine {
                        kind: kind.into(),
                        number,
                        valid_from: from.to_string(),
                        valid_until: until.to_string(),
                        current: active(i.view) && from <= as_of && as_of <= until,
                        attester: i.view.attester.clone(),
                        id: i.view.id.clone(),
                    });
                }
                _ => {}
            }
        }
        // What the records naming each pledge say about it (registration, release, disposal).
        let mut pledge_status: HashMap<String, String> = HashMap::new();
        let mut disposed: HashMap<String, String> = HashMap::new();
        for (id, (r, view)) in &reserves {
            let mut status =
                if active(view) { "reserved".to_owned() } else { view.record_status.clone().unwrap_or_default() };
            for x in decode(refs.get(id).into_iter().flatten(), &mut s.undecodable) {
                match &x.a.body.claim {
                    Claim::IpPledge(IpPledge::Registered(g)) => {
                        status = format!("registered {} effective {}", g.registration, g.effective);
                    }
                    Claim::IpPledge(IpPledge::Release(c)) => {
                        status = match &c.cancellation {
                            Some(x) => format!("{status}; released, CNIPA cancelled {}", x.date),
                            None => "released before registration".to_owned(),
                        };
                    }
                    Claim::Disposal(d) => {
                        let to = d.new_owner.map_or_else(String::new, |o| format!(" to {o}"));
                        let case = d.court_case.as_ref().map_or_else(String::new, |c| format!(" (court case {c})"));
                        let method = format!("{:?}", d.method).to_lowercase();
                        let what = format!("{method} on {} for {}{to}{case}", d.date, d.price);
                        status = format!("{status}; disposed: {what}");
                        disposed.insert(r.patent.to_string(), what);
                    }
                    _ => {}
                }
            }
            pledge_status.insert(id.clone(), status);
        }
        let mut outstanding: BTreeMap<String, u64> = BTreeMap::new();
        for i in &items {
            let Claim::Loan(l) = &i.a.body.claim else { continue };
            if l.borrower.as_str() != enterprise {
                continue;
            }
            let line = loan_line(i, l, refs, &appraisals, &reserves, &pledge_status, as_of, &mut s.undecodable);
            if line.outstanding.fen > 0 {
                *outstanding.entry(line.outstanding.currency.clone()).or_default() += line.outstanding.fen;
            }
            s.loans.push(line);
        }
        s.loans_outstanding =
            outstanding.into_iter().map(|(currency, fen)| Total { currency, fen, amount: decimal(fen) }).collect();
        for (patent, (p, view)) in statuses {
            let mut warnings = patent_warnings(p, as_of);
            if let Some(what) = disposed.get(&patent) {
                warnings.push(format!("pledge disposed: {what}"));
            }
            if !active(view) {
                warnings.push("this status record was revoked".into());
            }
            s.patent_status.push(PatentStatusLine {
                patent,
                as_of: p.as_of.to_string(),
                owner: p.owner.to_string(),
                co_owners: p.co_owners.iter().map(|c| c.to_string()).collect(),
                grant: p.grant.map(|g| g.to_string()),
                expires: p.expires.to_string(),
                fees_paid_until: p.fees_paid_until.map(|d| d.to_string()),
                warnings,
                attester: view.attester.clone(),
                id: view.id.clone(),
            });
        }
        s
    }
}

/// What a lender must know about a patent's status on `as_of`.
fn patent_warnings(p: &PatentStatus, as_of: Date) -> Vec<String> {
    let mut w = Vec::new();
    if p.grant.is_none() {
        w.push("not granted: an application cannot be pledged".to_owned());
    }
    if p.lapsed {
        w.push("lapsed: the right ended early".to_owned());
    }
    let in_year = Date::from_days(as_of.days_since_epoch() + 365).unwrap_or(as_of);
    if p.expires < as_of {
        w.push(format!("expired {}", p.expires));
    } else if p.expires <= in_year {
        w.push(format!("expires within a year ({})", p.expires));
    }
    if p.court_preservation {
        w.push("under court preservation (frozen): cannot be pledged or transferred".to_owned());
    }
    if p.invalidation_pending {
        w.push("an invalidation request is pending".to_owned());
    }
    if p.grant.is_some() && !p.lapsed && p.expires >= as_of {
        match p.fees_paid_until {
            // Unpaid when the status was recorded: the right lapses after the grace period.
            None => w.push("annual fees unpaid (none recorded as paid)".to_owned()),
            Some(d) if d < p.as_of => {
                w.push(format!("annual fees unpaid since {d}: the right lapses after the grace period"))
            }
            // Paid when recorded, but the paid year has run out since: the status is stale.
            Some(d) if d < as_of => {
                w.push(format!("stale: fees were paid until {d}, and no status was recorded since {}", p.as_of))
            }
            Some(_) => {}
        }
    }
    if !p.co_owners.is_empty() {
        w.push(format!("co-owned with {}: a pledge needs every owner's consent", p.co_owners.len()));
    }
    w
}

#[allow(clippy::too_many_arguments)]
fn loan_line(
    i: &Item<'_>,
    l: &credence_ledger::loans::Loan,
    refs: &BTreeMap<String, Vec<AttestationView>>,
    appraisals: &HashMap<String, &Appraisal>,
    reserves: &HashMap<String, (&PledgeReserve, &AttestationView)>,
    pledge_status: &HashMap<String, String>,
    as_of: Date,
    undecodable: &mut Vec<String>,
) -> LoanLine {
    let p = &l.principal;
    let (mut repaid, mut interest, mut recovered) = (0u64, 0u64, 0u64);
    let mut class = LoanClass::Normal;
    let mut class_record = i.view.id.clone();
    let mut classifications = Vec::new();
    let mut overdue = Vec::new();
    let mut default = None;
    let mut pool = Vec::new();
    for x in decode(refs.get(&i.view.id).into_iter().flatten(), undecodable) {
        let id = x.view.id.clone();
        match &x.a.body.claim {
            Claim::LoanEvent(e) if e.loan.to_string() == i.view.id => match &e.event {
                LoanEventKind::Repayment { principal, interest: int } => {
                    repaid = repaid.saturating_add(principal.fen);
                    interest = interest.saturating_add(int.fen);
                }
                LoanEventKind::Recovery { amount, .. } => recovered = recovered.saturating_add(amount.fen),
                LoanEventKind::Classification { class: c, days_overdue } => {
                    class = *c;
                    class_record = id.clone();
                    classifications.push(ClassLine {
                        date: e.date.to_string(),
                        class: c.name().into(),
                        days_overdue: *days_overdue,
                        id: id.clone(),
                    });
                    if *days_overdue > 0 {
                        overdue.push(OverdueLine {
                            date: e.date.to_string(),
                            days_overdue: *days_overdue,
                            event: "classification".into(),
                            id,
                        });
                    }
                }
                LoanEventKind::Default { days_overdue, overdue_principal } => {
                    let floor = LoanClass::floor_for(*days_overdue);
                    if floor > class {
                        class = floor;
                        class_record = id.clone();
                    }
                    overdue.push(OverdueLine {
                        date: e.date.to_string(),
                        days_overdue: *days_overdue,
                        event: "default".into(),
                        id: id.clone(),
                    });
                    default = Some(DefaultLine {
                        date: e.date.to_string(),
                        days_overdue: *days_overdue,
                        overdue_principal: amount(overdue_principal),
                        id,
                    });
                }
            },
            Claim::RiskPool(RiskPool::Enrol(e)) => pool.push(PoolLine {
                event: "enrolled".into(),
                pool: e.pool.to_string(),
                date: e.date.to_string(),
                amount: None,
                id,
            }),
            Claim::RiskPool(RiskPool::Claim(c)) => pool.push(PoolLine {
                event: "claimed".into(),
                pool: c.pool.to_string(),
                date: c.date.to_string(),
                amount: Some(amount(&c.amount)),
                id,
            }),
            Claim::RiskPool(RiskPool::Pay(x)) => pool.push(PoolLine {
                event: "paid".into(),
                pool: x.pool.to_string(),
                date: x.date.to_string(),
                amount: Some(amount(&x.amount)),
                id,
            }),
            _ => {}
        }
    }
    let left = p.fen.saturating_sub(repaid).saturating_sub(recovered);
    let mut appraised = 0u64;
    let collateral: Vec<CollateralLine> = l
        .collateral
        .iter()
        .map(|c| {
            let pledge = c.pledge.to_string();
            let reserve = reserves.get(&pledge);
            let a = appraisals.get(&c.appraisal.to_string());
            if let Some(a) = a.filter(|a| a.value.currency == p.currency) {
                appraised = appraised.saturating_add(a.value.fen);
            }
            CollateralLine {
                patent: reserve.map(|(r, _)| r.patent.to_string()),
                secured: reserve.and_then(|(r, _)| r.secured.plain()).map(|m| amount(&m)),
                secured_sealed: reserve.is_some_and(|(r, _)| r.secured.is_sealed()),
                pledge_status: pledge_status.get(&pledge).cloned().unwrap_or_else(|| "not found".into()),
                pledge,
                share_bp: c.share_bp,
                appraisal: c.appraisal.to_string(),
                appraised: a.map(|a| amount(&a.value)),
                appraisal_valid_until: a.map(|a| a.valid_until.to_string()),
                method: a.map(|a| format!("{:?}", a.method).to_lowercase()),
            }
        })
        .collect();
    let max_days_overdue = overdue.iter().map(|o| o.days_overdue).max().unwrap_or(0);
    let status = match (left, &default) {
        (0, None) => "repaid",
        (0, Some(_)) => "closed after default",
        (_, Some(_)) => "defaulted",
        _ if class >= LoanClass::SpecialMention => "overdue",
        _ if l.maturity < as_of => "past maturity",
        _ => "performing",
    };
    LoanLine {
        id: i.view.id.clone(),
        height: i.view.height,
        lender: l.lender.to_string(),
        principal: amount(p),
        outstanding: amount_of(left, p),
        start: l.start.to_string(),
        maturity: l.maturity.to_string(),
        rate_bp: l.rate_bp,
        status: status.into(),
        class: class.name().into(),
        class_record,
        classifications,
        max_days_overdue,
        overdue,
        repaid_principal: amount_of(repaid, p),
        interest_paid: amount_of(interest, p),
        recovered: amount_of(recovered, p),
        default,
        collateral,
        appraised: amount_of(appraised, p),
        ltv_bp: (appraised > 0).then(|| (u128::from(p.fen) * 10_000 / u128::from(appraised)) as u64),
        guarantee: l.guarantee.as_ref().map(|g| format!("{} by {}", g.amount, g.guarantor)),
        pool,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::inconsistent_digit_grouping)] // amounts written yuan_fen

    use super::*;
    use credence_ledger::attestation::{AttestationBody, AttestationId, ValuationMethod};
    use credence_ledger::block::Leaf;
    use credence_ledger::cn_ids::{CourtCaseNumber, HnteCertificate, PatentRef, PledgeRegistration, PublicationNumber};
    use credence_ledger::hash::Hash;
    use credence_ledger::ids::{Currency, MemberName, Uscc};
    use credence_ledger::loans::{
        AppraisalPurpose, CnipaCancellation, Collateral, Disposal, DisposalMethod, Enrolment, Loan, LoanEvent,
        PledgeCancel, PledgeRegistered, PoolClaim, PoolPayment, Qualification, RecoverySource, ValueType,
    };
    use credence_ledger::rules::RecordStatus;
    use credence_ledger::sig::SecretKey;
    use credence_node::api::views::Committed;

    const E: &str = "91440300708461136T";

    fn d(s: &str) -> Date {
        Date::parse("d", s).unwrap()
    }
    fn cny(fen: u64) -> Money {
        Money { fen, currency: Currency::CNY }
    }
    fn e() -> Uscc {
        Uscc::parse("e", E).unwrap()
    }
    fn patent(s: &str) -> PatentRef {
        PatentRef::parse("p", s).unwrap()
    }

    /// Signs claims in order as committed items (leaf i at height i + 1).
    #[derive(Default)]
    struct Ledger {
        items: Vec<AttestationView>,
    }

    impl Ledger {
        fn add(&mut self, who: &str, claim: Claim) -> AttestationId {
            self.add_with(who, claim, None)
        }
        fn add_with(&mut self, who: &str, claim: Claim, status: Option<RecordStatus>) -> AttestationId {
            let n = self.items.len() as u64;
            let body = AttestationBody {
                attester: MemberName::parse("m", who).unwrap(),
                sequence: n + 1,
                issued_at_ms: 0,
                claim,
            };
            let leaf = Leaf::new(body.sign(&SecretKey::from_seed([7; 32]), &Hash::ZERO));
            let at =
                Committed { height: n + 1, leaf_index: n, record_status: Some(status.unwrap_or(RecordStatus::Active)) };
            self.items.push(AttestationView::committed(&leaf, at));
            leaf.id
        }
    }

    fn dup(v: &AttestationView) -> AttestationView {
        serde_json::from_value(serde_json::to_value(v).unwrap()).unwrap()
    }

    fn status(p: &str, as_of: &str, fees: Option<&str>, preservation: bool) -> Claim {
        Claim::PatentStatus(PatentStatus {
            patent: patent(p),
            owner: e(),
            co_owners: vec![],
            grant: Some(PublicationNumber::parse("g", "CN105123456B").unwrap()),
            filed: d("2015-03-10"),
            expires: d("2035-03-09"),
            fees_paid_until: fees.map(d),
            invalidation_pending: false,
            court_preservation: preservation,
            lapsed: false,
            as_of: d(as_of),
            evidence: Hash::ZERO,
        })
    }

    /// A defaulted loan with every kind of history, and a repaid one: each figure by hand.
    #[test]
    fn loans_pledges_pool_qualifications_and_warnings_by_hand() {
        let mut l = Ledger::default();
        let p1 = patent("CN201510123456.1").to_string();
        // Another valid number filed in 2015 (the status records say so).
        let p2 = credence_ledger::demo::patents(&mut credence_ledger::demo::DemoRng::new(3), 300)
            .into_iter()
            .find(|p| p.year() == 2015)
            .unwrap()
            .to_string();
        l.add("appraiser", status(&p1, "2023-01-01", Some("2024-03-09"), false));
        let appraisal = |value: u64, p: &str| {
            Claim::Appraisal(Appraisal {
                patent: patent(p),
                owner: e(),
                institution: Uscc::parse("i", "91330100716105852F").unwrap(),
                purpose: AppraisalPurpose::Pledge,
                value_type: ValueType::Market,
                value: cny(value),
                method: ValuationMethod::Income,
                rationale: "r".into(),
                base_date: d("2023-01-10"),
                valid_until: d("2024-01-09"),
                evidence: Hash::ZERO,
            })
        };
        let a1 = l.add("appraiser", appraisal(8_000_000_00, &p1));
        let reserve = |p: &str, secured: u64| {
            Claim::IpPledge(IpPledge::Reserve(PledgeReserve {
                patent: patent(p),
                pledgor: e(),
                pledgee: MemberName::parse("m", "bank").unwrap(),
                loan_contract: Hash([1; 32]),
                secured: cny(secured).into(),
                start: d("2023-02-01"),
                end: d("2025-02-01"),
                evidence: Hash::ZERO,
            }))
        };
        let r1 = l.add("bank", reserve(&p1, 5_000_000_00));
        l.add(
            "bank",
            Claim::IpPledge(IpPledge::Registered(PledgeRegistered {
                pledge: r1,
                registration: PledgeRegistration::parse("r", "Y2023980000123").unwrap(),
                effective: d("2023-01-30"),
                evidence: Hash::ZERO,
            })),
        );
        let loan = |contract: u8, principal: u64, pledge: AttestationId, appraisal: AttestationId| {
            Claim::Loan(Loan {
                lender: MemberName::parse("m", "bank").unwrap(),
                borrower: e(),
                contract: Hash([contract; 32]),
                principal: cny(principal),
                start: d("2023-02-01"),
                maturity: d("2025-02-01"),
                rate_bp: 400,
                collateral: vec![Collateral { pledge, appraisal, share_bp: 10_000 }],
                guarantee: None,
            })
        };
        let bad = l.add("bank", loan(1, 5_000_000_00, r1, a1));
        let ev = |date: &str, event: LoanEventKind| Claim::LoanEvent(LoanEvent { loan: bad, date: d(date), event });
        let pool = AttestationId::from_hash(Hash([9; 32]));
        l.add("pool", Claim::RiskPool(RiskPool::Enrol(Enrolment { pool, loan: bad, date: d("2023-02-10") })));
        l.add(
            "bank",
            ev("2023-08-01", LoanEventKind::Repayment { principal: cny(1_000_000_00), interest: cny(100_000_00) }),
        );
        l.add(
            "bank",
            ev("2024-03-01", LoanEventKind::Classification { class: LoanClass::SpecialMention, days_overdue: 30 }),
        );
        let default = l.add(
            "bank",
            ev("2024-05-01", LoanEventKind::Default { days_overdue: 91, overdue_principal: cny(4_000_000_00) }),
        );
        l.add(
            "bank",
            Claim::RiskPool(RiskPool::Claim(PoolClaim {
                pool,
                loan: bad,
                date: d("2024-05-20"),
                eligible_principal: cny(4_000_000_00),
                amount: cny(2_000_000_00),
                evidence: Hash::ZERO,
            })),
        );
        l.add(
            "pool",
            Claim::RiskPool(RiskPool::Pay(PoolPayment {
                pool,
                loan: bad,
                date: d("2024-06-01"),
                amount: cny(2_000_000_00),
            })),
        );
        l.add(
            "bank",
            ev("2024-06-05", LoanEventKind::Recovery { amount: cny(2_000_000_00), source: RecoverySource::Pool }),
        );
        l.add("appraiser", status(&p1, "2024-06-10", Some("2025-03-09"), true));
        let buyer = Uscc::parse("b", "914403001922038216").unwrap();
        l.add(
            "bank",
            Claim::Disposal(Disposal {
                pledge: r1,
                method: DisposalMethod::Auction,
                court_case: Some(CourtCaseNumber::parse("c", "（2024）粤03执1234号").unwrap()),
                price: cny(1_500_000_00),
                date: d("2024-09-01"),
                new_owner: Some(buyer),
                evidence: Hash::ZERO,
            }),
        );
        l.add(
            "bank",
            ev("2024-09-10", LoanEventKind::Recovery { amount: cny(1_500_000_00), source: RecoverySource::Disposal }),
        );
        // A second loan, repaid in full, its registered pledge released with CNIPA's cancellation.
        l.add("appraiser", status(&p2, "2023-01-01", Some("2027-03-09"), false));
        let a2 = l.add("appraiser", appraisal(4_000_000_00, &p2));
        let r2 = l.add("bank", reserve(&p2, 1_000_000_00));
        l.add(
            "bank",
            Claim::IpPledge(IpPledge::Registered(PledgeRegistered {
                pledge: r2,
                registration: PledgeRegistration::parse("r", "Y2023980000124").unwrap(),
                effective: d("2023-01-30"),
                evidence: Hash::ZERO,
            })),
        );
        let good = l.add("bank", loan(2, 1_000_000_00, r2, a2));
        l.add(
            "bank",
            Claim::LoanEvent(LoanEvent {
                loan: good,
                date: d("2025-02-01"),
                event: LoanEventKind::Repayment { principal: cny(1_000_000_00), interest: cny(80_000_00) },
            }),
        );
        l.add(
            "bank",
            Claim::IpPledge(IpPledge::Release(PledgeCancel {
                pledge: r2,
                cancellation: Some(CnipaCancellation { date: d("2025-02-10"), evidence: Hash::ZERO }),
            })),
        );
        let cert = HnteCertificate::parse("c", "GR202344000123").unwrap();
        l.add(
            "centre",
            Claim::Qualification(Qualification {
                enterprise: e(),
                qualification: QualificationKind::HighTech { certificate: cert, issued: d("2023-11-20") },
                evidence: Hash::ZERO,
            }),
        );

        // The enterprise index holds the records naming the enterprise; the references
        // index the records naming each loan or pledge.
        let mut enterprise = Vec::new();
        let mut refs: BTreeMap<String, Vec<AttestationView>> = BTreeMap::new();
        for v in &l.items {
            let a = Attestation::from_bytes(&B64.decode(v.attestation.as_deref().unwrap()).unwrap()).unwrap();
            if a.body.claim.enterprise().is_some() {
                enterprise.push(dup(v));
            }
            for r in a.body.claim.references() {
                refs.entry(r.to_string()).or_default().push(dup(v));
            }
        }
        let s = LoanSections::build(E, &enterprise, &refs, d("2025-03-01"));
        assert!(s.undecodable.is_empty());
        assert_eq!(s.loans.len(), 2);
        let b = &s.loans[0];
        assert_eq!(b.id, bad.to_string());
        // 5,000,000 − 1,000,000 repaid − 2,000,000 (pool) − 1,500,000 (auction) = 500,000.
        assert_eq!(b.outstanding.fen, 500_000_00);
        assert_eq!(
            (b.repaid_principal.fen, b.interest_paid.fen, b.recovered.fen),
            (1_000_000_00, 100_000_00, 3_500_000_00)
        );
        // The default (91 days) raised the class from 关注 to 次级; the default set it.
        assert_eq!(b.class, LoanClass::Substandard.name());
        assert_eq!(b.class_record, default.to_string());
        assert_eq!(b.status, "defaulted");
        assert_eq!(b.max_days_overdue, 91);
        assert_eq!(b.overdue.len(), 2);
        assert_eq!(b.classifications.len(), 1);
        // LTV: 5,000,000 over 8,000,000 appraised = 62.50 %.
        assert_eq!(b.ltv_bp, Some(6_250));
        assert_eq!(b.appraised.fen, 8_000_000_00);
        let events: Vec<&str> = b.pool.iter().map(|p| p.event.as_str()).collect();
        assert_eq!(events, ["enrolled", "claimed", "paid"]);
        let c = &b.collateral[0];
        assert!(
            c.pledge_status
                .starts_with("registered Y2023980000123 effective 2023-01-30; disposed: auction on 2024-09-01"),
            "{}",
            c.pledge_status
        );
        assert_eq!(c.secured.as_ref().map(|t| t.fen), Some(5_000_000_00));
        let g = &s.loans[1];
        assert_eq!((g.status.as_str(), g.outstanding.fen, g.ltv_bp), ("repaid", 0, Some(2_500)));
        assert!(
            g.collateral[0].pledge_status.ends_with("released, CNIPA cancelled 2025-02-10"),
            "{}",
            g.collateral[0].pledge_status
        );
        assert_eq!(s.loans_outstanding.iter().map(|t| t.fen).sum::<u64>(), 500_000_00);

        // The certificate runs 2023-11-20 .. 2026-11-19: current on 2025-03-01.
        assert_eq!(s.qualifications.len(), 1);
        assert!(s.qualifications[0].current);
        assert_eq!(s.qualifications[0].valid_until, "2026-11-19");

        // Patent 1's latest status: frozen by a court, disposed; its fees were paid at the time.
        assert_eq!(s.patent_status.len(), 2);
        let w1 = &s.patent_status.iter().find(|p| p.patent == p1).unwrap().warnings;
        assert!(w1.iter().any(|w| w.starts_with("under court preservation")), "{w1:?}");
        assert!(w1.iter().any(|w| w.starts_with("pledge disposed: auction")), "{w1:?}");
        assert!(!w1.iter().any(|w| w.contains("fees")), "{w1:?}");
        let w2 = &s.patent_status.iter().find(|p| p.patent == p2).unwrap().warnings;
        assert!(w2.is_empty(), "{w2:?}");
        // Months later patent 1's paid year has run out with no newer status.
        let later = LoanSections::build(E, &enterprise, &refs, d("2025-06-01"));
        let w = &later.patent_status.iter().find(|p| p.patent == p1).unwrap().warnings;
        assert!(w.iter().any(|w| w.starts_with("stale: fees were paid until 2025-03-09")), "{w:?}");
    }
}
