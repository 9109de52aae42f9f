//! Ledger rules of the IP-loan kinds and the derived state they keep (patents, pledges, appraisals, loans, pools, enrolments, numbers taken).
//!
//! The state is a map of [`FactKey`] to [`Fact`], rebuilt from the chain like the
//! rest of [`crate::rules`]; each rejection is a numbered, stable code in the
//! R101.. block (docs/encoding.md §3.1 lists them).

use serde::{Deserialize, Serialize};

use crate::attestation::{AttestationId, Claim, ClaimKind};
use crate::cn_ids::PatentRef;
use crate::governance::GovState;
use crate::hash::Hash;
use crate::ids::{Date, Money, Uscc};
use crate::loans::{
    BP_WHOLE, DisposalMethod, IpPledge, LoanClass, LoanEventKind, PoolTerms, QualificationKind, RiskPool, ValueType,
};
use crate::rules::{Overlay, RecordMeta, RecordStatus, Rejection, StateView};

/// Where a fact lives in the derived state.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FactKey {
    /// The patent's latest status and its active pledge.
    Patent(PatentRef),
    /// What the rules keep about a pledge, appraisal, loan or pool record.
    Record(AttestationId),
    /// A loan's enrolment in a pool: (pool, loan).
    Enrolment(AttestationId, AttestationId),
    /// A number that may be used once (see [`taken_key`]).
    Taken(Hash),
}

/// A fact of the derived state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fact {
    Patent(PatentFact),
    Pledge(PledgeFact),
    Appraisal(AppraisalFact),
    Loan(LoanFact),
    Pool(PoolFact),
    Enrolment(EnrolmentFact),
    /// The record that used a once-only number.
    Taken(AttestationId),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatentFact {
    /// The latest patent-status record (or the disposal that changed the owner).
    pub status: AttestationId,
    pub owner: Uscc,
    pub granted: bool,
    pub expires: Date,
    pub fees_paid_until: Option<Date>,
    pub invalidation_pending: bool,
    pub court_preservation: bool,
    pub lapsed: bool,
    pub as_of: Date,
    /// The reserved or registered `ip-pledge` on this patent.
    pub pledge: Option<AttestationId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PledgeFact {
    pub patent: PatentRef,
    pub pledgor: Uscc,
    /// Member index of the pledgee bank.
    pub pledgee: u16,
    pub loan_contract: Hash,
    pub end: Date,
    pub registered: bool,
    /// The loan it secures, once the loan is on the ledger.
    pub loan: Option<AttestationId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppraisalFact {
    pub patent: PatentRef,
    pub institution: Uscc,
    pub value_type: ValueType,
    pub value: Money,
    pub base_date: Date,
    pub valid_until: Date,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoanFact {
    /// Member index of the lender.
    pub lender: u16,
    pub borrower: Uscc,
    pub principal: Money,
    pub start: Date,
    pub maturity: Date,
    pub outstanding_fen: u64,
    /// Date of the latest event (the start before any).
    pub last_date: Date,
    pub class: LoanClass,
    /// The default: its date, days overdue and principal overdue (fen).
    pub default: Option<(Date, u32, u64)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolFact {
    /// Member index of the administrator.
    pub administrator: u16,
    pub terms: PoolTerms,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolmentFact {
    pub date: Date,
    /// The claim: its date and amount (fen).
    pub claim: Option<(Date, u64)>,
    pub paid_fen: u64,
}

/// The key of a once-only number: SHA-256 of a domain and the number's text.
pub fn taken_key(domain: &str, number: &str) -> FactKey {
    FactKey::Taken(Hash::digest(&[b"credence/taken/v1\0", domain.as_bytes(), b"\0", number.as_bytes()]))
}

type Outcome<E> = Result<Result<(), Rejection>, E>;

macro_rules! refuse {
    ($r:expr) => {
        return Ok(Err($r))
    };
}

fn member(gov: &GovState, index: u16) -> String {
    gov.members.get(usize::from(index)).map_or_else(|| format!("#{index}"), |m| m.name.to_string())
}

impl<V: StateView + ?Sized> Overlay<'_, V> {
    fn patent_fact(&self, p: &PatentRef) -> Result<Option<PatentFact>, V::Error> {
        Ok(match self.fact(&FactKey::Patent(*p))? {
            Some(Fact::Patent(f)) => Some(f),
            _ => None,
        })
    }
    fn pledge_fact(&self, id: &AttestationId) -> Result<Option<(RecordMeta, PledgeFact)>, V::Error> {
        let Some(meta) = self.record(id)? else { return Ok(None) };
        Ok(match self.fact(&FactKey::Record(*id))? {
            Some(Fact::Pledge(f)) if meta.kind == ClaimKind::IpPledge => Some((meta, f)),
            _ => None,
        })
    }
    fn loan_fact(&self, id: &AttestationId) -> Result<Option<LoanFact>, V::Error> {
        Ok(match self.fact(&FactKey::Record(*id))? {
            Some(Fact::Loan(f)) => Some(f),
            _ => None,
        })
    }
    fn pool_fact(&self, id: &AttestationId) -> Result<Option<PoolFact>, V::Error> {
        Ok(match self.fact(&FactKey::Record(*id))? {
            Some(Fact::Pool(f)) => Some(f),
            _ => None,
        })
    }
    /// Claims `key` for `id` unless another record holds it.
    fn take(&mut self, key: FactKey, id: AttestationId) -> Result<Option<AttestationId>, V::Error> {
        if let Some(Fact::Taken(by)) = self.fact(&key)? {
            return Ok(Some(by));
        }
        self.set_fact(key, Some(Fact::Taken(id)));
        Ok(None)
    }
}

/// The rules of the IP-loan kinds, after the common ones (membership, role,
/// sequence, time, field rules) passed. `meta` is the new record's.
pub(crate) fn apply<V: StateView + ?Sized>(
    gov: &GovState,
    st: &mut Overlay<'_, V>,
    attester: u16,
    id: &AttestationId,
    claim: &Claim,
) -> Outcome<V::Error> {
    match claim {
        Claim::IpPledge(p) => pledge(gov, st, attester, id, p),
        Claim::PatentStatus(s) => {
            let key = FactKey::Patent(s.patent);
            let old = st.patent_fact(&s.patent)?;
            if let Some(old) = &old {
                if s.as_of < old.as_of {
                    refuse!(Rejection::StatusOutOfOrder { as_of: s.as_of, latest: old.as_of });
                }
                if let Some(pledge) = old.pledge
                    && old.owner != s.owner
                {
                    refuse!(Rejection::OwnerChangeWhilePledged { patent: s.patent.to_string(), pledge });
                }
            }
            let fact = PatentFact {
                status: *id,
                owner: s.owner,
                granted: s.grant.is_some(),
                expires: s.expires,
                fees_paid_until: s.fees_paid_until,
                invalidation_pending: s.invalidation_pending,
                court_preservation: s.court_preservation,
                lapsed: s.lapsed,
                as_of: s.as_of,
                pledge: old.and_then(|o| o.pledge),
            };
            st.set_fact(key, Some(Fact::Patent(fact)));
            Ok(Ok(()))
        }
        Claim::Appraisal(a) => {
            let fact = AppraisalFact {
                patent: a.patent,
                institution: a.institution,
                value_type: a.value_type,
                value: a.value,
                base_date: a.base_date,
                valid_until: a.valid_until,
            };
            st.set_fact(FactKey::Record(*id), Some(Fact::Appraisal(fact)));
            Ok(Ok(()))
        }
        Claim::Loan(l) => loan(gov, st, attester, id, l),
        Claim::LoanEvent(e) => loan_event(gov, st, attester, e),
        Claim::RiskPool(p) => pool(gov, st, attester, id, p),
        Claim::Disposal(d) => {
            let Some((mut meta, f)) = st.pledge_fact(&d.pledge)? else {
                refuse!(Rejection::NotReservedPledge(d.pledge));
            };
            if f.pledgee != attester {
                refuse!(Rejection::NotPledgee { pledgee: member(gov, f.pledgee), pledge: d.pledge });
            }
            if meta.status != RecordStatus::Active {
                refuse!(Rejection::PledgeNotActive(d.pledge));
            }
            if !f.registered {
                refuse!(Rejection::PledgeNotRegistered(d.pledge));
            }
            meta.status = RecordStatus::Released;
            st.set_record(d.pledge, meta);
            if let Some(mut p) = st.patent_fact(&f.patent)? {
                p.pledge = None;
                if let Some(owner) = d.new_owner {
                    p.owner = owner;
                    p.status = *id;
                }
                st.set_fact(FactKey::Patent(f.patent), Some(Fact::Patent(p)));
            }
            debug_assert!(d.method != DisposalMethod::Auction || d.court_case.is_some(), "field rule");
            Ok(Ok(()))
        }
        Claim::Qualification(q) => {
            let (domain, number) = match &q.qualification {
                QualificationKind::HighTech { certificate, .. } => ("hnte", certificate.as_str()),
                QualificationKind::TechSme { registration } => ("tech-sme", registration.as_str()),
            };
            if let Some(by) = st.take(taken_key(domain, number), *id)? {
                refuse!(Rejection::NumberTaken { what: "qualification", number: number.to_owned(), by });
            }
            Ok(Ok(()))
        }
        Claim::RdSpend(_)
        | Claim::PatentValuation(_)
        | Claim::PatentPledge(_)
        | Claim::PledgeRelease(_)
        | Claim::Revocation(_)
        | Claim::Equivocation(_)
        | Claim::AccessKey(_)
        | Claim::Consent(_)
        | Claim::Query(_)
        | Claim::GovernanceProposal(_)
        | Claim::GovernanceApproval(_)
        | Claim::KeyRotation(_) => Ok(Ok(())),
    }
}

fn pledge<V: StateView + ?Sized>(
    gov: &GovState,
    st: &mut Overlay<'_, V>,
    attester: u16,
    id: &AttestationId,
    p: &IpPledge,
) -> Outcome<V::Error> {
    match p {
        IpPledge::Reserve(r) => {
            if gov.member_index(&r.pledgee) != Some(attester) {
                refuse!(Rejection::NotPledgee { pledgee: r.pledgee.to_string(), pledge: *id });
            }
            if let Some(active) = r.patent.modern().map(|m| st.active_pledge(m)).transpose()?.flatten() {
                refuse!(Rejection::PatentAlreadyPledged { patent: r.patent.to_string(), active });
            }
            let Some(mut pf) = st.patent_fact(&r.patent)? else {
                refuse!(Rejection::PatentNoStatus(r.patent.to_string()));
            };
            if let Some(active) = pf.pledge {
                refuse!(Rejection::PatentAlreadyPledged { patent: r.patent.to_string(), active });
            }
            if pf.owner != r.pledgor {
                refuse!(Rejection::PledgorNotOwner { pledgor: r.pledgor, owner: pf.owner });
            }
            let reason = if !pf.granted {
                Some("not granted")
            } else if pf.lapsed {
                Some("lapsed")
            } else if pf.court_preservation {
                Some("under court preservation")
            } else if pf.invalidation_pending {
                Some("an invalidation request is pending")
            } else if pf.fees_paid_until.is_none_or(|d| d < r.start) {
                Some("annual fees are unpaid at the pledge's start")
            } else {
                None
            };
            if let Some(reason) = reason {
                refuse!(Rejection::PatentStatusForbids { patent: r.patent.to_string(), reason });
            }
            if r.end >= pf.expires {
                refuse!(Rejection::PledgeOutlivesPatent { end: r.end, expires: pf.expires });
            }
            pf.pledge = Some(*id);
            st.set_fact(FactKey::Patent(r.patent), Some(Fact::Patent(pf)));
            let fact = PledgeFact {
                patent: r.patent,
                pledgor: r.pledgor,
                pledgee: attester,
                loan_contract: r.loan_contract,
                end: r.end,
                registered: false,
                loan: None,
            };
            st.set_fact(FactKey::Record(*id), Some(Fact::Pledge(fact)));
            Ok(Ok(()))
        }
        IpPledge::Registered(g) => {
            let Some((meta, mut f)) = st.pledge_fact(&g.pledge)? else {
                refuse!(Rejection::NotReservedPledge(g.pledge));
            };
            if f.pledgee != attester {
                refuse!(Rejection::NotPledgee { pledgee: member(gov, f.pledgee), pledge: g.pledge });
            }
            if meta.status != RecordStatus::Active {
                refuse!(Rejection::PledgeNotActive(g.pledge));
            }
            if f.registered {
                refuse!(Rejection::AlreadyRegistered(g.pledge));
            }
            if let Some(by) = st.take(taken_key("pledge-registration", g.registration.as_str()), *id)? {
                refuse!(Rejection::NumberTaken { what: "registration", number: g.registration.to_string(), by });
            }
            f.registered = true;
            st.set_fact(FactKey::Record(g.pledge), Some(Fact::Pledge(f)));
            Ok(Ok(()))
        }
        IpPledge::Release(c) => {
            let Some((mut meta, f)) = st.pledge_fact(&c.pledge)? else {
                refuse!(Rejection::NotReservedPledge(c.pledge));
            };
            if f.pledgee != attester {
                refuse!(Rejection::NotPledgee { pledgee: member(gov, f.pledgee), pledge: c.pledge });
            }
            if meta.status != RecordStatus::Active {
                refuse!(Rejection::PledgeNotActive(c.pledge));
            }
            if f.registered != c.cancellation.is_some() {
                refuse!(Rejection::CancellationMismatch { pledge: c.pledge, registered: f.registered });
            }
            meta.status = RecordStatus::Released;
            st.set_record(c.pledge, meta);
            if let Some(mut p) = st.patent_fact(&f.patent)? {
                p.pledge = None;
                st.set_fact(FactKey::Patent(f.patent), Some(Fact::Patent(p)));
            }
            Ok(Ok(()))
        }
    }
}

fn loan<V: StateView + ?Sized>(
    gov: &GovState,
    st: &mut Overlay<'_, V>,
    attester: u16,
    id: &AttestationId,
    l: &crate::loans::Loan,
) -> Outcome<V::Error> {
    if gov.member_index(&l.lender) != Some(attester) {
        refuse!(Rejection::LenderNotAttester(l.lender.to_string()));
    }
    let contract = l.contract.to_string();
    let mut pledges = Vec::with_capacity(l.collateral.len());
    for c in &l.collateral {
        let Some((meta, f)) = st.pledge_fact(&c.pledge)? else {
            refuse!(Rejection::NotReservedPledge(c.pledge));
        };
        if meta.status != RecordStatus::Active {
            refuse!(Rejection::PledgeNotActive(c.pledge));
        }
        let mismatch = |reason| Ok(Err(Rejection::CollateralMismatch { pledge: c.pledge, reason }));
        if f.pledgee != attester {
            return mismatch("it is held by another bank");
        }
        if f.loan_contract != l.contract {
            return mismatch("it secures another loan contract");
        }
        if f.loan.is_some() {
            return mismatch("it already secures a loan");
        }
        if f.end < l.maturity {
            return mismatch("its term ends before the loan's maturity");
        }
        let appraisal = match (st.record(&c.appraisal)?, st.fact(&FactKey::Record(c.appraisal))?) {
            (Some(m), Some(Fact::Appraisal(a))) => Some((m, a)),
            _ => None,
        };
        let bad = |reason| Ok(Err(Rejection::AppraisalMismatch { appraisal: c.appraisal, reason }));
        let Some((ameta, a)) = appraisal else {
            return bad("it is not an appraisal on the ledger");
        };
        if ameta.status != RecordStatus::Active {
            return bad("it was revoked");
        }
        if a.patent != f.patent {
            return bad("it appraises another patent");
        }
        if l.start < a.base_date || l.start > a.valid_until {
            return bad("it is not valid on the loan's start date");
        }
        if a.value.currency != l.principal.currency {
            refuse!(Rejection::CurrencyMismatch {
                field: "collateral.appraisal",
                expected: l.principal.currency,
                got: a.value.currency
            });
        }
        if ameta.attester == attester || a.institution == l.borrower {
            refuse!(Rejection::AppraiserIsParty(c.appraisal));
        }
        pledges.push((c.pledge, f));
    }
    if let Some(by) = st.take(taken_key("loan-contract", &contract), *id)? {
        refuse!(Rejection::NumberTaken { what: "contract", number: contract, by });
    }
    for (pid, mut f) in pledges {
        f.loan = Some(*id);
        st.set_fact(FactKey::Record(pid), Some(Fact::Pledge(f)));
    }
    let fact = LoanFact {
        lender: attester,
        borrower: l.borrower,
        principal: l.principal,
        start: l.start,
        maturity: l.maturity,
        outstanding_fen: l.principal.fen,
        last_date: l.start,
        class: LoanClass::Normal,
        default: None,
    };
    st.set_fact(FactKey::Record(*id), Some(Fact::Loan(fact)));
    Ok(Ok(()))
}

fn loan_event<V: StateView + ?Sized>(
    gov: &GovState,
    st: &mut Overlay<'_, V>,
    attester: u16,
    e: &crate::loans::LoanEvent,
) -> Outcome<V::Error> {
    let Some(mut f) = st.loan_fact(&e.loan)? else {
        refuse!(Rejection::NotALoan(e.loan));
    };
    if f.lender != attester {
        refuse!(Rejection::NotLender(member(gov, f.lender)));
    }
    if e.date < f.last_date {
        refuse!(Rejection::EventBeforeLast { date: e.date, last: f.last_date });
    }
    let currency = f.principal.currency;
    let outstanding = Money { fen: f.outstanding_fen, currency };
    match &e.event {
        LoanEventKind::Repayment { principal, .. } | LoanEventKind::Recovery { amount: principal, .. } => {
            if principal.currency != currency {
                refuse!(Rejection::CurrencyMismatch { field: "amount", expected: currency, got: principal.currency });
            }
            if principal.fen > f.outstanding_fen {
                refuse!(Rejection::ExceedsOutstanding { amount: *principal, outstanding });
            }
            if matches!(e.event, LoanEventKind::Recovery { .. }) && f.default.is_none() {
                refuse!(Rejection::DefaultNotConfirmed { loan: e.loan, days: 0, min: 1 });
            }
            f.outstanding_fen -= principal.fen;
        }
        LoanEventKind::Classification { class, .. } => f.class = *class,
        LoanEventKind::Default { days_overdue, overdue_principal } => {
            if f.default.is_some() {
                refuse!(Rejection::AlreadyDefaulted(e.loan));
            }
            if overdue_principal.currency != currency {
                refuse!(Rejection::CurrencyMismatch {
                    field: "overdue_principal",
                    expected: currency,
                    got: overdue_principal.currency
                });
            }
            if overdue_principal.fen > f.outstanding_fen {
                refuse!(Rejection::ExceedsOutstanding { amount: *overdue_principal, outstanding });
            }
            f.default = Some((e.date, *days_overdue, overdue_principal.fen));
            f.class = f.class.max(LoanClass::floor_for(*days_overdue));
        }
    }
    f.last_date = e.date;
    st.set_fact(FactKey::Record(e.loan), Some(Fact::Loan(f)));
    Ok(Ok(()))
}

fn window(what: &'static str, date: Date, from: Date, until: Date) -> Result<(), Rejection> {
    if date < from || date > until { Err(Rejection::OutsideWindow { what, date, from, until }) } else { Ok(()) }
}

fn pool<V: StateView + ?Sized>(
    gov: &GovState,
    st: &mut Overlay<'_, V>,
    attester: u16,
    id: &AttestationId,
    p: &RiskPool,
) -> Outcome<V::Error> {
    let is_admin = gov.members[usize::from(attester)].roles.contains(&crate::genesis::Role::RiskPool);
    if let RiskPool::Open(terms) = p {
        if !is_admin {
            refuse!(Rejection::NotPoolAdministrator(member(gov, attester)));
        }
        let fact = PoolFact { administrator: attester, terms: terms.clone() };
        st.set_fact(FactKey::Record(*id), Some(Fact::Pool(fact)));
        return Ok(Ok(()));
    }
    let (pool_id, loan_id, date) = match p {
        RiskPool::Enrol(e) => (e.pool, e.loan, e.date),
        RiskPool::Claim(c) => (c.pool, c.loan, c.date),
        RiskPool::Pay(x) => (x.pool, x.loan, x.date),
        RiskPool::Open(_) => return Ok(Ok(())),
    };
    let Some(pool) = st.pool_fact(&pool_id)? else {
        refuse!(Rejection::NotAPool(pool_id));
    };
    let Some(loan) = st.loan_fact(&loan_id)? else {
        refuse!(Rejection::NotALoan(loan_id));
    };
    let t = &pool.terms;
    let ekey = FactKey::Enrolment(pool_id, loan_id);
    let enrolment = match st.fact(&ekey)? {
        Some(Fact::Enrolment(e)) => Some(e),
        _ => None,
    };
    let currency_of = |m: &Money| -> Result<(), Rejection> {
        if m.currency == t.currency {
            Ok(())
        } else {
            Err(Rejection::CurrencyMismatch { field: "amount", expected: t.currency, got: m.currency })
        }
    };
    match p {
        RiskPool::Enrol(_) => {
            if pool.administrator != attester {
                refuse!(Rejection::NotPoolAdministrator(member(gov, pool.administrator)));
            }
            if let Err(r) = currency_of(&loan.principal) {
                refuse!(r);
            }
            if let Err(r) = window("enrolment", date, t.enrol_from, t.enrol_until) {
                refuse!(r);
            }
            if enrolment.is_some() {
                refuse!(Rejection::AlreadyEnrolled { pool: pool_id, loan: loan_id });
            }
            if loan.default.is_some() {
                refuse!(Rejection::AlreadyDefaulted(loan_id));
            }
            st.set_fact(ekey, Some(Fact::Enrolment(EnrolmentFact { date, claim: None, paid_fen: 0 })));
        }
        RiskPool::Claim(c) => {
            if loan.lender != attester {
                refuse!(Rejection::NotLender(member(gov, loan.lender)));
            }
            let Some(mut en) = enrolment else {
                refuse!(Rejection::NotEnrolled { pool: pool_id, loan: loan_id });
            };
            if en.claim.is_some() {
                refuse!(Rejection::AlreadyClaimed { pool: pool_id, loan: loan_id });
            }
            let Some((default_date, _, overdue_fen)) = loan.default.filter(|d| d.1 >= u32::from(t.default_days_min))
            else {
                let days = loan.default.map_or(0, |d| d.1);
                refuse!(Rejection::DefaultNotConfirmed { loan: loan_id, days, min: t.default_days_min });
            };
            let deadline = Date::from_days(default_date.days_since_epoch() + i64::from(t.claim_days));
            if let Err(r) = window("claim", date, default_date, deadline.unwrap_or(default_date)) {
                refuse!(r);
            }
            if let Err(r) = currency_of(&c.amount) {
                refuse!(r);
            }
            if c.eligible_principal.fen > overdue_fen {
                refuse!(Rejection::ClaimTooLarge {
                    amount: c.eligible_principal,
                    max: Money { fen: overdue_fen, currency: t.currency },
                    reason: "eligible principal above the principal overdue at default"
                });
            }
            let share = u128::from(c.eligible_principal.fen) * u128::from(t.pool_bp) / u128::from(BP_WHOLE);
            let max = (share as u64).min(t.loan_cap.fen);
            if c.amount.fen > max {
                refuse!(Rejection::ClaimTooLarge {
                    amount: c.amount,
                    max: Money { fen: max, currency: t.currency },
                    reason: "the pool's share of the eligible principal, capped per loan"
                });
            }
            en.claim = Some((date, c.amount.fen));
            st.set_fact(ekey, Some(Fact::Enrolment(en)));
        }
        RiskPool::Pay(x) => {
            if pool.administrator != attester {
                refuse!(Rejection::NotPoolAdministrator(member(gov, pool.administrator)));
            }
            let Some(mut en) = enrolment.filter(|e| e.claim.is_some()) else {
                refuse!(Rejection::NoClaim { pool: pool_id, loan: loan_id });
            };
            let (claim_date, claim_fen) = en.claim.unwrap_or((date, 0));
            if let Err(r) = currency_of(&x.amount) {
                refuse!(r);
            }
            if date < claim_date {
                refuse!(Rejection::EventBeforeLast { date, last: claim_date });
            }
            let paid = en.paid_fen.saturating_add(x.amount.fen);
            if paid > claim_fen {
                refuse!(Rejection::PaymentExceedsClaim {
                    paid: Money { fen: paid, currency: t.currency },
                    claim: Money { fen: claim_fen, currency: t.currency }
                });
            }
            en.paid_fen = paid;
            st.set_fact(ekey, Some(Fact::Enrolment(en)));
        }
        RiskPool::Open(_) => {}
    }
    Ok(Ok(()))
}

/// Kinds whose records can be revoked by their attester. The IP-loan kinds other
/// than appraisals and qualifications are events others build on; they are
/// corrected by later events (a new status, classification or release), never revoked.
pub fn revocable(kind: ClaimKind) -> bool {
    matches!(
        kind,
        ClaimKind::RdSpend
            | ClaimKind::PatentValuation
            | ClaimKind::PatentPledge
            | ClaimKind::Appraisal
            | ClaimKind::Qualification
            | ClaimKind::AccessKey
            | ClaimKind::Consent
    )
}
