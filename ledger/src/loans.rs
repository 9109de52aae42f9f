//! The IP-loan attestations: two-stage patent pledges, patent status, appraisals, loans and their performance, risk pools, disposals and qualifications, with their field rules.
//!
//! These are the claim bodies of the kinds appended to [`crate::attestation::Claim`]
//! (tags 6..=13, docs/encoding.md §3.1). Rules that need the ledger state are in
//! [`crate::loan_rules`]; the rules here need only the record itself.

use serde::{Deserialize, Serialize};

use crate::attestation::{AttestationId, FieldError, ValuationMethod};
use crate::cn_ids::{
    CourtCaseNumber, HnteCertificate, PatentRef, PledgeRegistration, PublicationNumber, TechSmeNumber,
};
use crate::hash::Hash;
use crate::ids::{Currency, Date, MemberName, Money, Uscc};

/// Most co-owners a patent-status record lists.
pub const CO_OWNERS_MAX: usize = 8;
/// Most pledges securing one loan.
pub const COLLATERAL_MAX: usize = 16;
/// Longest appraisal rationale, in bytes.
pub const RATIONALE_BYTES_MAX: usize = 512;
/// Longest risk-pool name, in bytes.
pub const POOL_NAME_BYTES_MAX: usize = 64;
/// Whole share in basis points (100 %).
pub const BP_WHOLE: u32 = 10_000;
/// Highest annual loan rate accepted, in basis points (36 %, the ceiling Chinese courts protect).
pub const RATE_BP_MAX: u32 = 3_600;
/// Longest pledge, loan or appraisal span in days (50 years).
pub const SPAN_DAYS_MAX: i64 = 50 * 366;
/// An appraisal is valid at most one year from its base date (资产评估执业准则).
pub const APPRAISAL_VALID_DAYS_MAX: i64 = 366;

// ---------------------------------------------------------------------------
// Pledge, two stages
// ---------------------------------------------------------------------------

/// A patent pledge in two stages (tag 6): the bank reserves the patent for a
/// loan, CNIPA registers the pledge (only then does it exist in law), and the
/// bank releases it with CNIPA's cancellation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IpPledge {
    Reserve(PledgeReserve),
    Registered(PledgeRegistered),
    Release(PledgeCancel),
}

/// The pledgee bank reserves a patent as security for the loan whose contract hashes to `loan_contract`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PledgeReserve {
    pub patent: PatentRef,
    /// The patent's owner on the ledger.
    pub pledgor: Uscc,
    /// The member bank; must be the attester.
    pub pledgee: MemberName,
    /// SHA-256 of the loan contract this pledge secures (the loan record carries the same hash).
    pub loan_contract: Hash,
    /// Plain or sealed (docs/encoding.md §13).
    pub secured: crate::confidential::Amount,
    pub start: Date,
    /// Last day of the secured debt's term; must be before the patent expires.
    pub end: Date,
    /// SHA-256 of the pledge contract.
    pub evidence: Hash,
}

/// CNIPA registered a reserved pledge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PledgeRegistered {
    pub pledge: AttestationId,
    pub registration: PledgeRegistration,
    pub effective: Date,
    /// SHA-256 of CNIPA's registration notice.
    pub evidence: Hash,
}

/// CNIPA's cancellation of a pledge registration (质押登记注销).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CnipaCancellation {
    pub date: Date,
    /// SHA-256 of CNIPA's cancellation notice.
    pub evidence: Hash,
}

/// The pledgee releases its pledge; a registered pledge needs CNIPA's cancellation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PledgeCancel {
    pub pledge: AttestationId,
    pub cancellation: Option<CnipaCancellation>,
}

// ---------------------------------------------------------------------------
// Patent status
// ---------------------------------------------------------------------------

/// A patent's legal status as of a date (tag 7), attested by an appraiser or a service centre.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatentStatus {
    pub patent: PatentRef,
    pub owner: Uscc,
    pub co_owners: Vec<Uscc>,
    /// The grant number; `None` while the application is not granted.
    pub grant: Option<PublicationNumber>,
    pub filed: Date,
    /// The day the patent's term ends.
    pub expires: Date,
    /// Annual fees are paid for the patent year that ends on this day.
    pub fees_paid_until: Option<Date>,
    pub invalidation_pending: bool,
    /// Frozen by a court (财产保全).
    pub court_preservation: bool,
    /// The patent right has ended early (unpaid fees, surrender, invalidation).
    pub lapsed: bool,
    pub as_of: Date,
    pub evidence: Hash,
}

// ---------------------------------------------------------------------------
// Appraisal
// ---------------------------------------------------------------------------

/// What an appraisal is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AppraisalPurpose {
    Pledge,
    Licensing,
    Transfer,
}

/// The value an appraisal states (资产评估价值类型).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ValueType {
    Market,
    /// 可变现价值: what a forced sale would realise.
    Realisable,
}

/// A patent appraisal report (tag 8, valuation v2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appraisal {
    pub patent: PatentRef,
    pub owner: Uscc,
    /// The appraisal institution's USCC.
    pub institution: Uscc,
    pub purpose: AppraisalPurpose,
    pub value_type: ValueType,
    pub value: Money,
    pub method: ValuationMethod,
    /// Why this method (1..=512 bytes of UTF-8).
    pub rationale: String,
    pub base_date: Date,
    /// At most one year after `base_date`.
    pub valid_until: Date,
    pub evidence: Hash,
}

// ---------------------------------------------------------------------------
// Loans and their performance
// ---------------------------------------------------------------------------

/// One pledge securing a loan, with the appraisal the lender relied on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collateral {
    /// An `IpPledge::Reserve` record for this loan's contract.
    pub pledge: AttestationId,
    /// An `Appraisal` of the pledged patent valid at the loan's start.
    pub appraisal: AttestationId,
    /// The share of the principal this pledge secures, in basis points.
    pub share_bp: u16,
}

/// A guarantee of the loan by a guarantee company.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Guarantee {
    pub guarantor: Uscc,
    pub amount: Money,
}

/// A loan granted by the attesting bank (tag 9).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loan {
    /// Must be the attester.
    pub lender: MemberName,
    pub borrower: Uscc,
    /// SHA-256 of the loan contract; one loan per contract.
    pub contract: Hash,
    pub principal: Money,
    pub start: Date,
    pub maturity: Date,
    /// Annual rate in basis points.
    pub rate_bp: u32,
    pub collateral: Vec<Collateral>,
    pub guarantee: Option<Guarantee>,
}

/// The five-category loan classification (贷款五级分类).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LoanClass {
    /// 正常
    Normal,
    /// 关注
    SpecialMention,
    /// 次级
    Substandard,
    /// 可疑
    Doubtful,
    /// 损失
    Loss,
}

impl LoanClass {
    pub const ALL: [LoanClass; 5] =
        [LoanClass::Normal, LoanClass::SpecialMention, LoanClass::Substandard, LoanClass::Doubtful, LoanClass::Loss];

    /// Substandard, doubtful and loss: the non-performing (bad) loans.
    pub fn is_bad(self) -> bool {
        self >= LoanClass::Substandard
    }

    /// The least severe class a loan this many days overdue may have
    /// (商业银行金融资产风险分类办法, 2023, arts. 10-13: overdue → at least
    /// special mention; over 90 days → substandard; over 270 → doubtful; over 360 → loss).
    pub fn floor_for(days_overdue: u32) -> LoanClass {
        match days_overdue {
            0 => LoanClass::Normal,
            1..=90 => LoanClass::SpecialMention,
            91..=270 => LoanClass::Substandard,
            271..=360 => LoanClass::Doubtful,
            _ => LoanClass::Loss,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LoanClass::Normal => "正常 normal",
            LoanClass::SpecialMention => "关注 special mention",
            LoanClass::Substandard => "次级 substandard",
            LoanClass::Doubtful => "可疑 doubtful",
            LoanClass::Loss => "损失 loss",
        }
    }
}

/// Where recovered money came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RecoverySource {
    Borrower,
    Guarantor,
    Disposal,
    Pool,
    Insurer,
}

/// What happened to a loan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoanEventKind {
    Repayment { principal: Money, interest: Money },
    Classification { class: LoanClass, days_overdue: u32 },
    Default { days_overdue: u32, overdue_principal: Money },
    Recovery { amount: Money, source: RecoverySource },
}

/// The lender's record of a loan's performance (tag 10).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoanEvent {
    pub loan: AttestationId,
    pub date: Date,
    pub event: LoanEventKind,
}

// ---------------------------------------------------------------------------
// Risk pools
// ---------------------------------------------------------------------------

/// A risk-compensation pool's terms (the pool's id is this record's id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolTerms {
    pub name: String,
    pub currency: Currency,
    /// Shares of a loss borne by the pool, the bank, the guarantor and the insurer (basis points, sum ≤ 100 %).
    pub pool_bp: u16,
    pub bank_bp: u16,
    pub guarantor_bp: u16,
    pub insurer_bp: u16,
    /// The most the pool pays for one loan.
    pub loan_cap: Money,
    pub enrol_from: Date,
    pub enrol_until: Date,
    /// Days after the default within which a claim must be filed.
    pub claim_days: u16,
    /// Days of principal overdue that make a confirmed default (typically 90).
    pub default_days_min: u16,
}

/// A loan enrolled in a pool (by the administrator).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolment {
    pub pool: AttestationId,
    pub loan: AttestationId,
    pub date: Date,
}

/// The lender claims the pool's share of a defaulted loan's loss.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolClaim {
    pub pool: AttestationId,
    pub loan: AttestationId,
    pub date: Date,
    /// Principal lost, on which the pool's share is computed.
    pub eligible_principal: Money,
    pub amount: Money,
    /// SHA-256 of the default evidence.
    pub evidence: Hash,
}

/// The administrator pays (part of) a claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolPayment {
    pub pool: AttestationId,
    pub loan: AttestationId,
    pub date: Date,
    pub amount: Money,
}

/// A risk-pool event (tag 11).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RiskPool {
    Open(PoolTerms),
    Enrol(Enrolment),
    Claim(PoolClaim),
    Pay(PoolPayment),
}

// ---------------------------------------------------------------------------
// Disposal and qualifications
// ---------------------------------------------------------------------------

/// How a pledged patent was realised (担保法/民法典 art. 436).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DisposalMethod {
    /// 折价: the pledgee takes the patent at an agreed price.
    Discount,
    /// 拍卖: auction.
    Auction,
    /// 变卖: sale.
    Sale,
}

/// The pledgee realised a pledged patent (tag 12); this releases the pledge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disposal {
    pub pledge: AttestationId,
    pub method: DisposalMethod,
    /// Required for an auction (judicial auctions carry the enforcement case number).
    pub court_case: Option<CourtCaseNumber>,
    pub price: Money,
    pub date: Date,
    /// The patent's new owner, if the disposal transferred it.
    pub new_owner: Option<Uscc>,
    pub evidence: Hash,
}

/// A qualification an enterprise holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QualificationKind {
    /// High-tech enterprise (高新技术企业), valid three years from `issued`.
    HighTech { certificate: HnteCertificate, issued: Date },
    /// Tech-based SME (科技型中小企业), valid for the registration's year.
    TechSme { registration: TechSmeNumber },
}

/// A qualification of an enterprise (tag 13), attested by a service centre.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Qualification {
    pub enterprise: Uscc,
    pub qualification: QualificationKind,
    pub evidence: Hash,
}

impl QualificationKind {
    /// The first and last day the qualification is valid (`None` only past year 9999).
    pub fn validity(&self) -> Option<(Date, Date)> {
        match self {
            QualificationKind::HighTech { issued, .. } => Some((*issued, add_years_minus_day(*issued, 3)?)),
            QualificationKind::TechSme { registration } => {
                let y = registration.year();
                Some((Date::new("year", y, 1, 1).ok()?, Date::new("year", y, 12, 31).ok()?))
            }
        }
    }
}

/// The day before the same date `years` later (29 February counts from 28 February).
pub fn add_years_minus_day(d: Date, years: u16) -> Option<Date> {
    let day = if d.month() == 2 && d.day() == 29 { 28 } else { d.day() };
    let same = Date::new("date", d.year().checked_add(years)?, d.month(), day).ok()?;
    Date::from_days(same.days_since_epoch() - 1)
}

// ---------------------------------------------------------------------------
// Field rules
// ---------------------------------------------------------------------------

fn err(field: &'static str, rule: impl Into<String>) -> Result<(), FieldError> {
    Err(FieldError { field, rule: rule.into() })
}

fn positive(field: &'static str, m: &Money) -> Result<(), FieldError> {
    if m.fen == 0 { err(field, "must be greater than zero") } else { Ok(()) }
}

fn same_currency(field: &'static str, m: &Money, c: Currency) -> Result<(), FieldError> {
    if m.currency != c { err(field, format!("currency {} must be {c}", m.currency)) } else { Ok(()) }
}

fn span(from_field: &'static str, from: Date, to_field: &'static str, to: Date) -> Result<(), FieldError> {
    let days = to.days_since_epoch() - from.days_since_epoch();
    if days <= 0 {
        return err(to_field, format!("must be after {from_field}"));
    }
    if days > SPAN_DAYS_MAX { err(to_field, format!("must be at most 50 years after {from_field}")) } else { Ok(()) }
}

impl IpPledge {
    pub(crate) fn check_fields(&self) -> Result<(), FieldError> {
        match self {
            IpPledge::Reserve(r) => {
                if let Some(m) = r.secured.plain() {
                    positive("secured", &m)?;
                }
                span("start", r.start, "end", r.end)
            }
            IpPledge::Registered(_) | IpPledge::Release(_) => Ok(()),
        }
    }
}

impl PatentStatus {
    pub(crate) fn check_fields(&self) -> Result<(), FieldError> {
        if self.co_owners.len() > CO_OWNERS_MAX {
            return err("co_owners", format!("at most {CO_OWNERS_MAX}"));
        }
        for (i, c) in self.co_owners.iter().enumerate() {
            if *c == self.owner || self.co_owners[..i].contains(c) {
                return err("co_owners", "must not repeat the owner or each other");
            }
        }
        if self.grant.is_some_and(|g| !g.is_grant()) {
            return err("grant", "must be a grant number (kind B, C, U, Y or S), not an application's publication (A)");
        }
        if self.patent.year() != self.filed.year() {
            return err(
                "filed",
                format!("year must be {}, the filing year in the application number", self.patent.year()),
            );
        }
        span("filed", self.filed, "expires", self.expires)
    }
}

impl Appraisal {
    pub(crate) fn check_fields(&self) -> Result<(), FieldError> {
        positive("value", &self.value)?;
        if self.rationale.trim().is_empty() || self.rationale.len() > RATIONALE_BYTES_MAX {
            return err("rationale", format!("must state the method's reasons in 1 to {RATIONALE_BYTES_MAX} bytes"));
        }
        let days = self.valid_until.days_since_epoch() - self.base_date.days_since_epoch();
        if days < 0 {
            return err("valid_until", "must not be before base_date");
        }
        if add_years_minus_day(self.base_date, 1).is_none_or(|last| self.valid_until > last) {
            return err("valid_until", "must be at most one year after base_date");
        }
        Ok(())
    }
}

impl Loan {
    pub(crate) fn check_fields(&self) -> Result<(), FieldError> {
        positive("principal", &self.principal)?;
        span("start", self.start, "maturity", self.maturity)?;
        if self.rate_bp > RATE_BP_MAX {
            return err("rate_bp", format!("must be at most {RATE_BP_MAX} (36 % a year)"));
        }
        if self.collateral.len() > COLLATERAL_MAX {
            return err("collateral", format!("at most {COLLATERAL_MAX} pledges"));
        }
        let mut sum = 0u32;
        for (i, c) in self.collateral.iter().enumerate() {
            if c.share_bp == 0 || u32::from(c.share_bp) > BP_WHOLE {
                return err("collateral", "each share_bp must be between 1 and 10000");
            }
            if self.collateral[..i].iter().any(|o| o.pledge == c.pledge) {
                return err("collateral", "a pledge may be listed once");
            }
            sum += u32::from(c.share_bp);
        }
        if sum > BP_WHOLE {
            return err("collateral", "shares must not exceed 10000 basis points (100 % of the principal)");
        }
        if let Some(g) = &self.guarantee {
            positive("guarantee.amount", &g.amount)?;
            same_currency("guarantee.amount", &g.amount, self.principal.currency)?;
            if g.guarantor == self.borrower {
                return err("guarantee.guarantor", "must not be the borrower");
            }
        }
        Ok(())
    }
}

impl LoanEvent {
    pub(crate) fn check_fields(&self) -> Result<(), FieldError> {
        match &self.event {
            LoanEventKind::Repayment { principal, interest } => {
                same_currency("interest", interest, principal.currency)?;
                if principal.fen == 0 && interest.fen == 0 {
                    return err("principal", "a repayment must repay principal or interest");
                }
                Ok(())
            }
            LoanEventKind::Classification { class, days_overdue } => {
                let floor = LoanClass::floor_for(*days_overdue);
                if *class < floor {
                    return err(
                        "class",
                        format!(
                            "a loan {days_overdue} days overdue is at least {} (2023 risk classification rules)",
                            floor.name()
                        ),
                    );
                }
                Ok(())
            }
            LoanEventKind::Default { days_overdue, overdue_principal } => {
                positive("overdue_principal", overdue_principal)?;
                if *days_overdue == 0 { err("days_overdue", "a default needs principal overdue") } else { Ok(()) }
            }
            LoanEventKind::Recovery { amount, .. } => positive("amount", amount),
        }
    }
}

impl RiskPool {
    pub(crate) fn check_fields(&self) -> Result<(), FieldError> {
        match self {
            RiskPool::Open(t) => {
                if t.name.trim().is_empty() || t.name.len() > POOL_NAME_BYTES_MAX {
                    return err("name", format!("must be 1 to {POOL_NAME_BYTES_MAX} bytes"));
                }
                let sum =
                    [t.pool_bp, t.bank_bp, t.guarantor_bp, t.insurer_bp].iter().map(|&b| u32::from(b)).sum::<u32>();
                if t.pool_bp == 0 {
                    return err("pool_bp", "must be greater than zero");
                }
                if sum > BP_WHOLE {
                    return err("pool_bp", "the four shares must not exceed 10000 basis points (100 % of the loss)");
                }
                positive("loan_cap", &t.loan_cap)?;
                same_currency("loan_cap", &t.loan_cap, t.currency)?;
                if t.enrol_until < t.enrol_from {
                    return err("enrol_until", "must not be before enrol_from");
                }
                if t.claim_days == 0 {
                    return err("claim_days", "must be greater than zero");
                }
                Ok(())
            }
            RiskPool::Enrol(_) => Ok(()),
            RiskPool::Claim(c) => {
                positive("eligible_principal", &c.eligible_principal)?;
                positive("amount", &c.amount)?;
                same_currency("amount", &c.amount, c.eligible_principal.currency)?;
                if c.amount.fen > c.eligible_principal.fen {
                    return err("amount", "must not exceed eligible_principal");
                }
                Ok(())
            }
            RiskPool::Pay(p) => positive("amount", &p.amount),
        }
    }
}

impl Disposal {
    pub(crate) fn check_fields(&self) -> Result<(), FieldError> {
        positive("price", &self.price)?;
        if self.method == DisposalMethod::Auction && self.court_case.is_none() {
            return err("court_case", "an auction needs the court's case number");
        }
        Ok(())
    }
}

impl Qualification {
    pub(crate) fn check_fields(&self) -> Result<(), FieldError> {
        match &self.qualification {
            QualificationKind::HighTech { certificate, issued } if certificate.year() != issued.year() => {
                err("issued", format!("year must be {}, the year in the certificate number", certificate.year()))
            }
            _ => Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------
// One-line descriptions (CLI, API)
// ---------------------------------------------------------------------------

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "none".to_owned(), |v| v.to_string())
}

impl IpPledge {
    /// Every field, on one line.
    pub fn describe(&self) -> String {
        match self {
            IpPledge::Reserve(r) => format!(
                "reserve {} of {} for {} securing {} from {} to {} (loan contract {}, evidence {})",
                r.patent, r.pledgor, r.pledgee, r.secured, r.start, r.end, r.loan_contract, r.evidence
            ),
            IpPledge::Registered(g) => format!(
                "CNIPA registered pledge {} as {} effective {} (evidence {})",
                g.pledge, g.registration, g.effective, g.evidence
            ),
            IpPledge::Release(c) => match &c.cancellation {
                Some(x) => format!("release pledge {}, CNIPA cancelled {} (evidence {})", c.pledge, x.date, x.evidence),
                None => format!("release unregistered pledge {}", c.pledge),
            },
        }
    }
}

impl PatentStatus {
    pub fn describe(&self) -> String {
        let co: Vec<String> = self.co_owners.iter().map(|c| c.to_string()).collect();
        format!(
            "{} as of {}: owner {}{}; {}; filed {}, expires {}; fees paid until {}; invalidation pending {}, court preservation {}, lapsed {} (evidence {})",
            self.patent,
            self.as_of,
            self.owner,
            if co.is_empty() { String::new() } else { format!(" with {}", co.join(", ")) },
            self.grant.map_or_else(|| "not granted".to_owned(), |g| format!("granted {g}")),
            self.filed,
            self.expires,
            opt(&self.fees_paid_until),
            self.invalidation_pending,
            self.court_preservation,
            self.lapsed,
            self.evidence
        )
    }
}

impl Appraisal {
    pub fn describe(&self) -> String {
        format!(
            "{} owned by {}: {:?} value {} for {:?} by institution {}, {:?} method ({}), base {} valid until {} (evidence {})",
            self.patent,
            self.owner,
            self.value_type,
            self.value,
            self.purpose,
            self.institution,
            self.method,
            self.rationale,
            self.base_date,
            self.valid_until,
            self.evidence
        )
    }
}

impl Loan {
    pub fn describe(&self) -> String {
        let coll: Vec<String> = self
            .collateral
            .iter()
            .map(|c| format!("pledge {} ({} bp, appraisal {})", c.pledge, c.share_bp, c.appraisal))
            .collect();
        format!(
            "{} lends {} to {} from {} to {} at {} bp (contract {}); collateral: {}; guarantee: {}",
            self.lender,
            self.principal,
            self.borrower,
            self.start,
            self.maturity,
            self.rate_bp,
            self.contract,
            if coll.is_empty() { "none".to_owned() } else { coll.join(", ") },
            self.guarantee.as_ref().map_or_else(|| "none".to_owned(), |g| format!("{} by {}", g.amount, g.guarantor))
        )
    }
}

impl LoanEvent {
    pub fn describe(&self) -> String {
        let what = match &self.event {
            LoanEventKind::Repayment { principal, interest } => {
                format!("repayment of {principal} principal and {interest} interest")
            }
            LoanEventKind::Classification { class, days_overdue } => {
                format!("classified {} ({days_overdue} days overdue)", class.name())
            }
            LoanEventKind::Default { days_overdue, overdue_principal } => {
                format!("default: {overdue_principal} principal {days_overdue} days overdue")
            }
            LoanEventKind::Recovery { amount, source } => format!("recovery of {amount} from {source:?}"),
        };
        format!("loan {} on {}: {what}", self.loan, self.date)
    }
}

impl RiskPool {
    pub fn describe(&self) -> String {
        match self {
            RiskPool::Open(t) => format!(
                "pool '{}' in {}: shares pool {} / bank {} / guarantor {} / insurer {} bp, cap {} per loan, enrolment {}..={}, claims within {} days of a default of {}+ days",
                t.name,
                t.currency,
                t.pool_bp,
                t.bank_bp,
                t.guarantor_bp,
                t.insurer_bp,
                t.loan_cap,
                t.enrol_from,
                t.enrol_until,
                t.claim_days,
                t.default_days_min
            ),
            RiskPool::Enrol(e) => format!("enrol loan {} in pool {} on {}", e.loan, e.pool, e.date),
            RiskPool::Claim(c) => format!(
                "claim {} on {} eligible principal, loan {} in pool {} on {} (evidence {})",
                c.amount, c.eligible_principal, c.loan, c.pool, c.date, c.evidence
            ),
            RiskPool::Pay(p) => format!("pay {} for loan {} from pool {} on {}", p.amount, p.loan, p.pool, p.date),
        }
    }
}

impl Disposal {
    pub fn describe(&self) -> String {
        format!(
            "{:?} of pledge {} on {} for {}, court case {}, new owner {} (evidence {})",
            self.method,
            self.pledge,
            self.date,
            self.price,
            opt(&self.court_case),
            opt(&self.new_owner),
            self.evidence
        )
    }
}

impl Qualification {
    pub fn describe(&self) -> String {
        match &self.qualification {
            QualificationKind::HighTech { certificate, issued } => {
                format!("{} high-tech enterprise certificate {certificate} issued {issued}", self.enterprise)
            }
            QualificationKind::TechSme { registration } => {
                format!("{} tech-SME registration {registration}", self.enterprise)
            }
        }
    }
}
