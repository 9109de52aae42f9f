//! The regulator's and pools' portfolio figures, computed by one streaming pass over committed attestations in ledger order.
//!
//! Memory grows with the number of loans, appraisals and enrolments, never with the
//! number of records; each figure can be traced to the records it sums (the
//! per-loan lines name the loan, its appraisals and its latest classification).
//! Only CNY amounts are summed; loans in other currencies are counted apart.
//!
//! The same pass keeps the figures over time ([`Portfolio::series`]): each loan record and
//! loan event changes its lender's figures from the month of its business date on (the
//! loan's `start`, the event's `date`), and the change is kept per lender and month, so the
//! figures at any month end are the sum of the changes up to that month. Rule R118 keeps a
//! loan's events in date order on the ledger, not before the loan's start, so a loan's state
//! at a month end is its state after its records dated up to then, and the last month of a
//! series equals the head's figures. Memory grows with lenders × months that have loan
//! records, never with the number of records.

use std::collections::{BTreeMap, HashMap};

use crate::attestation::{AttestationId, Claim};
use crate::ids::{Currency, Date, MemberName, Uscc};
use crate::loans::{BP_WHOLE, LoanClass, LoanEventKind, RiskPool};

/// Upper bounds (exclusive, basis points) of the loan-to-value buckets; the last bucket is open.
pub const LTV_BUCKETS_BP: [u32; 4] = [3_000, 5_000, 7_000, 10_000];

/// Most months a series holds. When the loans span more, the latest months are kept and
/// [`Series::months_omitted`] counts the earlier ones left out (their changes still count).
pub const SERIES_MONTHS_MAX: usize = 120;

/// A calendar month (`year * 12 + month - 1`, so the derived order is chronological).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month(u32);

impl Month {
    /// The month `date` falls in.
    pub fn of(date: Date) -> Month {
        Month(u32::from(date.year()) * 12 + u32::from(date.month()) - 1)
    }

    /// Year, as in the dates it holds.
    pub fn year(self) -> u16 {
        u16::try_from(self.0 / 12).unwrap_or(u16::MAX)
    }

    /// Month of the year, 1..=12.
    pub fn month(self) -> u8 {
        (self.0 % 12) as u8 + 1
    }

    /// The month's last day (`None` only past 9999-12).
    pub fn last_day(self) -> Option<Date> {
        let next = Date::new("month", Month(self.0 + 1).year(), Month(self.0 + 1).month(), 1).ok()?;
        Date::from_days(next.days_since_epoch() - 1)
    }

    fn next(self) -> Month {
        Month(self.0 + 1)
    }
}

impl std::fmt::Display for Month {
    /// `YYYY-MM`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year(), self.month())
    }
}

/// What the records of one month changed in one lender's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Step {
    loans: i64,
    outstanding_fen: i128,
    bad_fen: i128,
}

impl Step {
    /// A loan's part in the figures (the rule of [`Figures::add`]: only while outstanding).
    fn of(l: &LoanLine) -> Step {
        if l.outstanding_fen == 0 {
            return Step::default();
        }
        let o = i128::from(l.outstanding_fen);
        Step { loans: 1, outstanding_fen: o, bad_fen: if l.class.is_bad() { o } else { 0 } }
    }

    fn add(&mut self, after: Step, before: Step) {
        self.loans += after.loans - before.loans;
        self.outstanding_fen += after.outstanding_fen - before.outstanding_fen;
        self.bad_fen += after.bad_fen - before.bad_fen;
    }
}

/// The figures at one month end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonthFigures {
    pub month: Month,
    /// Loans with principal outstanding at the month end.
    pub loans: u64,
    pub outstanding_fen: u64,
    /// Outstanding of loans classified 次级, 可疑 or 损失 at the month end.
    pub bad_fen: u64,
}

impl MonthFigures {
    /// Bad-loan ratio in basis points of the outstanding (0 without outstanding), as [`Figures::bad_ratio_bp`].
    pub fn bad_ratio_bp(&self) -> u64 {
        if self.outstanding_fen == 0 {
            0
        } else {
            (u128::from(self.bad_fen) * 10_000 / u128::from(self.outstanding_fen)) as u64
        }
    }
}

/// The figures at each month end, from the month of the earliest loan start to the month of
/// the latest loan record or event (of any lender), at most [`SERIES_MONTHS_MAX`] months.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Series {
    /// Chronological, one per calendar month (months without records repeat the figures).
    pub months: Vec<MonthFigures>,
    /// Earlier months left out to keep within [`SERIES_MONTHS_MAX`].
    pub months_omitted: u64,
}

/// One loan as the portfolio sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoanLine {
    pub loan: AttestationId,
    pub lender: MemberName,
    pub borrower: Uscc,
    pub principal_fen: u64,
    pub outstanding_fen: u64,
    pub class: LoanClass,
    /// The record that set `class` (the loan itself while none did).
    pub class_record: AttestationId,
    /// Sum of the collateral appraisals' values (fen) and their ids.
    pub appraised_fen: u64,
    pub appraisals: Vec<AttestationId>,
}

impl LoanLine {
    /// Principal over appraised value, in basis points (`None` without appraisals).
    pub fn ltv_bp(&self) -> Option<u32> {
        (self.appraised_fen > 0)
            .then(|| (u128::from(self.principal_fen) * u128::from(BP_WHOLE) / u128::from(self.appraised_fen)) as u32)
    }
}

/// Figures for one lender or for all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    pub loans: u64,
    pub outstanding_fen: u64,
    /// Outstanding of loans classified 次级, 可疑 or 损失.
    pub bad_fen: u64,
    /// Loans per LTV bucket (see [`LTV_BUCKETS_BP`]; one more bucket for ≥ the last bound).
    pub ltv: [u64; 5],
}

impl Figures {
    /// Bad-loan ratio in basis points of the outstanding (0 without outstanding).
    pub fn bad_ratio_bp(&self) -> u64 {
        if self.outstanding_fen == 0 {
            0
        } else {
            (u128::from(self.bad_fen) * 10_000 / u128::from(self.outstanding_fen)) as u64
        }
    }

    fn add(&mut self, l: &LoanLine) {
        if l.outstanding_fen == 0 {
            return;
        }
        self.loans += 1;
        self.outstanding_fen += l.outstanding_fen;
        if l.class.is_bad() {
            self.bad_fen += l.outstanding_fen;
        }
        if let Some(ltv) = l.ltv_bp() {
            let i = LTV_BUCKETS_BP.iter().position(|b| ltv < *b).unwrap_or(LTV_BUCKETS_BP.len());
            self.ltv[i] += 1;
        }
    }
}

/// A pool's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolFigures {
    pub name: String,
    pub pool_bp: u16,
    pub enrolled: u64,
    /// The pool's share of the outstanding principal of its enrolled loans, capped per loan (fen).
    pub exposure_fen: u64,
    pub claimed_fen: u64,
    pub paid_fen: u64,
    /// The claim records.
    pub claims: Vec<AttestationId>,
    /// The payment records.
    pub payments: Vec<AttestationId>,
}

/// The streaming computation: feed every committed attestation in order, then read.
#[derive(Debug, Default)]
pub struct Portfolio {
    appraisals: HashMap<AttestationId, u64>,
    loans: BTreeMap<AttestationId, LoanLine>,
    pools: BTreeMap<AttestationId, (PoolFigures, u64)>,
    enrolments: Vec<(AttestationId, AttestationId)>,
    /// Changes of each lender's figures by month of the records' business dates.
    steps: BTreeMap<MemberName, BTreeMap<Month, Step>>,
    /// Loans in a currency other than CNY (not summed).
    pub other_currency_loans: u64,
    /// See [`Portfolio::records`].
    records: u64,
}

impl Portfolio {
    /// Adds one committed attestation (the rules already held).
    pub fn add(&mut self, id: AttestationId, claim: &Claim) {
        if self.apply(id, claim) {
            self.records += 1;
        }
    }

    /// The records behind the figures: those [`Portfolio::add`] took into account. Two
    /// computations with the same count over one ledger's prefixes hold the same figures.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Takes one attestation into account; whether it changed anything.
    fn apply(&mut self, id: AttestationId, claim: &Claim) -> bool {
        match claim {
            Claim::Appraisal(a) if a.value.currency == Currency::CNY => {
                self.appraisals.insert(id, a.value.fen);
            }
            Claim::Loan(l) if !l.collateral.is_empty() => {
                if l.principal.currency != Currency::CNY {
                    self.other_currency_loans += 1;
                    return true;
                }
                let appraisals: Vec<AttestationId> = l.collateral.iter().map(|c| c.appraisal).collect();
                let appraised_fen = appraisals.iter().filter_map(|a| self.appraisals.get(a)).sum();
                let line = LoanLine {
                    loan: id,
                    lender: l.lender.clone(),
                    borrower: l.borrower,
                    principal_fen: l.principal.fen,
                    outstanding_fen: l.principal.fen,
                    class: LoanClass::Normal,
                    class_record: id,
                    appraised_fen,
                    appraisals,
                };
                let step = self.steps.entry(l.lender.clone()).or_default().entry(Month::of(l.start)).or_default();
                step.add(Step::of(&line), Step::default());
                self.loans.insert(id, line);
            }
            Claim::LoanEvent(e) => {
                let Some(l) = self.loans.get_mut(&e.loan) else { return false };
                let before = Step::of(l);
                match &e.event {
                    LoanEventKind::Repayment { principal: m, .. } | LoanEventKind::Recovery { amount: m, .. } => {
                        l.outstanding_fen = l.outstanding_fen.saturating_sub(m.fen);
                    }
                    LoanEventKind::Classification { class, .. } => {
                        l.class = *class;
                        l.class_record = id;
                    }
                    LoanEventKind::Default { days_overdue, .. } => {
                        let floor = LoanClass::floor_for(*days_overdue);
                        if floor > l.class {
                            l.class = floor;
                            l.class_record = id;
                        }
                    }
                }
                let step = self.steps.entry(l.lender.clone()).or_default().entry(Month::of(e.date)).or_default();
                step.add(Step::of(l), before);
            }
            Claim::RiskPool(RiskPool::Open(t)) => {
                let f = PoolFigures { name: t.name.clone(), pool_bp: t.pool_bp, ..PoolFigures::default() };
                self.pools.insert(id, (f, t.loan_cap.fen));
            }
            Claim::RiskPool(RiskPool::Enrol(e)) => self.enrolments.push((e.pool, e.loan)),
            Claim::RiskPool(RiskPool::Claim(c)) => {
                let Some((p, _)) = self.pools.get_mut(&c.pool) else { return false };
                p.claimed_fen += c.amount.fen;
                p.claims.push(id);
            }
            Claim::RiskPool(RiskPool::Pay(x)) => {
                let Some((p, _)) = self.pools.get_mut(&x.pool) else { return false };
                p.paid_fen += x.amount.fen;
                p.payments.push(id);
            }
            _ => return false,
        }
        true
    }

    /// The loans, by id.
    pub fn loans(&self) -> impl Iterator<Item = &LoanLine> {
        self.loans.values()
    }

    /// A page of loans by id: those after `after` (all without), of `lender` (all without),
    /// at most `limit`.
    pub fn loan_page<'a>(
        &'a self,
        lender: Option<&'a str>,
        after: Option<&'a AttestationId>,
        limit: usize,
    ) -> impl Iterator<Item = &'a LoanLine> {
        let from = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        self.loans
            .range((from, std::ops::Bound::Unbounded))
            .map(|(_, l)| l)
            .filter(move |l| lender.is_none_or(|n| l.lender.as_str() == n))
            .take(limit)
    }

    /// Figures overall and per lender.
    pub fn figures(&self) -> (Figures, BTreeMap<MemberName, Figures>) {
        let mut all = Figures::default();
        let mut by = BTreeMap::<MemberName, Figures>::new();
        for l in self.loans.values() {
            all.add(l);
            by.entry(l.lender.clone()).or_default().add(l);
        }
        (all, by)
    }

    /// The figures at each month end, overall (`lender` `None`) or of one lender, over the
    /// months of every lender's loans (so one lender's series lines up with the overall one).
    pub fn series(&self, lender: Option<&MemberName>) -> Series {
        let all_months = self.steps.values().flat_map(|m| m.keys());
        let (Some(&first), Some(&last)) = (all_months.clone().min(), all_months.max()) else {
            return Series::default();
        };
        let mut changes = BTreeMap::<Month, Step>::new();
        for (_, by_month) in self.steps.iter().filter(|(name, _)| lender.is_none_or(|l| *name == l)) {
            for (m, s) in by_month {
                changes.entry(*m).or_default().add(*s, Step::default());
            }
        }
        let span = u64::from(last.0 - first.0) + 1;
        let months_omitted = span.saturating_sub(SERIES_MONTHS_MAX as u64);
        let mut at = Step::default();
        let mut months = Vec::with_capacity(span.min(SERIES_MONTHS_MAX as u64) as usize);
        let mut m = first;
        while m <= last {
            if let Some(s) = changes.get(&m) {
                at.add(*s, Step::default());
            }
            if u64::from(m.0 - first.0) >= months_omitted {
                // Sums of a loan's own parts: never negative, never above the sum of principals.
                months.push(MonthFigures {
                    month: m,
                    loans: u64::try_from(at.loans).unwrap_or(0),
                    outstanding_fen: u64::try_from(at.outstanding_fen).unwrap_or(0),
                    bad_fen: u64::try_from(at.bad_fen).unwrap_or(0),
                });
            }
            m = m.next();
        }
        Series { months, months_omitted }
    }

    /// Figures per pool, with exposure computed from the loans' current outstanding.
    pub fn pools(&self) -> BTreeMap<AttestationId, PoolFigures> {
        let mut out: BTreeMap<AttestationId, PoolFigures> = BTreeMap::new();
        for (id, (f, _)) in &self.pools {
            out.insert(*id, f.clone());
        }
        for (pool, loan) in &self.enrolments {
            let (Some(f), Some((_, cap)), Some(l)) = (out.get_mut(pool), self.pools.get(pool), self.loans.get(loan))
            else {
                continue;
            };
            f.enrolled += 1;
            let share = (u128::from(l.outstanding_fen) * u128::from(f.pool_bp) / u128::from(BP_WHOLE)) as u64;
            f.exposure_fen += share.min(*cap);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    //! The series against a hand-computed fixture (amounts in yuan, `y(n)` fen).
    use super::*;
    use crate::hash::{Hash, HashOf};
    use crate::ids::Money;
    use crate::loans::{Collateral, Loan, LoanEvent, RecoverySource};

    fn id(n: u8) -> AttestationId {
        HashOf::from_hash(Hash([n; 32]))
    }
    fn y(yuan: u64) -> u64 {
        yuan * 100
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
    fn loan(lender: &str, principal_yuan: u64, start: &str, pledged: bool) -> Claim {
        Claim::Loan(Loan {
            lender: name(lender),
            borrower: Uscc::parse("u", "91440300708461136T").unwrap(),
            contract: Hash::ZERO,
            principal: cny(y(principal_yuan)),
            start: d(start),
            maturity: d("2030-01-01"),
            rate_bp: 385,
            collateral: pledged
                .then(|| Collateral { pledge: id(0xee), appraisal: id(0xef), share_bp: 10_000 })
                .into_iter()
                .collect(),
            guarantee: None,
        })
    }
    fn ev(loan: AttestationId, date: &str, event: LoanEventKind) -> Claim {
        Claim::LoanEvent(LoanEvent { loan, date: d(date), event })
    }
    fn repay(yuan: u64) -> LoanEventKind {
        LoanEventKind::Repayment { principal: cny(y(yuan)), interest: cny(100) }
    }
    fn class(class: LoanClass, days_overdue: u32) -> LoanEventKind {
        LoanEventKind::Classification { class, days_overdue }
    }
    /// (month, loans, outstanding yuan, bad yuan, ratio bp) of each month of `s`.
    fn table(s: &Series) -> Vec<(String, u64, u64, u64, u64)> {
        s.months
            .iter()
            .map(|m| (m.month.to_string(), m.loans, m.outstanding_fen / 100, m.bad_fen / 100, m.bad_ratio_bp()))
            .collect()
    }

    #[test]
    fn months_and_their_last_days() {
        let m = Month::of(d("2024-02-10"));
        assert_eq!((m.to_string(), m.last_day()), ("2024-02".to_string(), Some(d("2024-02-29"))));
        assert_eq!(Month::of(d("2025-12-31")).last_day(), Some(d("2025-12-31")));
        assert_eq!(Month::of(d("2025-12-31")).next(), Month::of(d("2026-01-01")));
        assert_eq!(Month::of(d("9999-12-01")).last_day(), None);
    }

    #[test]
    fn the_series_matches_the_hand_computation_overall_and_per_lender() {
        let (l1, l2, l3, l4) = (id(1), id(2), id(3), id(4));
        // Ledger order is not date order across loans (the rules order only a loan's own events).
        let records = vec![
            (id(0x40), loan("bank-b", 9_000_000, "2024-06-01", false)), // not an IP-pledge loan: no month
            (l1, loan("bank-a", 5_000_000, "2025-01-10", true)),
            (l2, loan("bank-a", 1_000_000, "2025-02-20", true)),
            (id(0x11), ev(l1, "2025-03-15", repay(1_000_000))),
            (l3, loan("bank-b", 2_000_000, "2025-02-05", true)),
            (id(0x21), ev(l2, "2025-03-31", class(LoanClass::Substandard, 95))),
            (id(0x41), ev(l4, "2025-09-01", repay(1_000_000))), // not an IP-pledge loan's event: no month
            (
                id(0x31),
                ev(l3, "2025-04-01", LoanEventKind::Default { days_overdue: 100, overdue_principal: cny(y(500_000)) }),
            ),
            (
                id(0x32),
                ev(l3, "2025-06-10", LoanEventKind::Recovery { amount: cny(y(500_000)), source: RecoverySource::Pool }),
            ),
            (id(0x22), ev(l2, "2025-06-30", repay(1_000_000))), // repaid in full: no longer counted
            (id(0x12), ev(l1, "2025-07-02", class(LoanClass::Doubtful, 280))),
            (id(0x13), ev(l1, "2025-08-05", repay(0))), // interest only: the last event month
        ];
        let mut p = Portfolio::default();
        for (i, c) in &records {
            p.add(*i, c);
        }
        assert_eq!(p.records(), records.len() as u64 - 2, "the loan without a pledge and its event change nothing");
        let all = p.series(None);
        assert_eq!(all.months_omitted, 0);
        #[rustfmt::skip]
        let want = vec![
            // January: L1 5,000,000.
            ("2025-01", 1, 5_000_000, 0, 0),
            // February: + L2 1,000,000 (bank-a) and L3 2,000,000 (bank-b).
            ("2025-02", 3, 8_000_000, 0, 0),
            // March: L1 repaid 1,000,000; L2 次级 on the 31st (a month end counts its own day):
            // 1,000,000 / 7,000,000 = 14.2857 %.
            ("2025-03", 3, 7_000_000, 1_000_000, 1428),
            // April: L3 100 days overdue, so at least 次级: 3,000,000 / 7,000,000 = 42.857 %.
            ("2025-04", 3, 7_000_000, 3_000_000, 4285),
            // May: no record; the figures carry over.
            ("2025-05", 3, 7_000_000, 3_000_000, 4285),
            // June: L3 recovered 500,000 (1,500,000 left); L2 repaid in full and gone:
            // 1,500,000 / 5,500,000 = 27.27 %.
            ("2025-06", 2, 5_500_000, 1_500_000, 2727),
            // July: L1 可疑: everything outstanding is bad.
            ("2025-07", 2, 5_500_000, 5_500_000, 10_000),
            // August: interest only, nothing changes, but it is the latest event's month.
            ("2025-08", 2, 5_500_000, 5_500_000, 10_000),
        ];
        let want: Vec<(String, u64, u64, u64, u64)> =
            want.into_iter().map(|(m, a, b, c, e)| (m.to_string(), a, b, c, e)).collect();
        assert_eq!(table(&all), want);
        // The last month end is the head's figures.
        let (head, by) = p.figures();
        let last = all.months.last().unwrap();
        assert_eq!((last.loans, last.outstanding_fen, last.bad_fen), (head.loans, head.outstanding_fen, head.bad_fen));

        // bank-a over the same months: L1 and L2 only.
        #[rustfmt::skip]
        let want_a = vec![
            ("2025-01", 1, 5_000_000, 0, 0),
            ("2025-02", 2, 6_000_000, 0, 0),
            ("2025-03", 2, 5_000_000, 1_000_000, 2000),
            ("2025-04", 2, 5_000_000, 1_000_000, 2000),
            ("2025-05", 2, 5_000_000, 1_000_000, 2000),
            ("2025-06", 1, 4_000_000, 0, 0),
            ("2025-07", 1, 4_000_000, 4_000_000, 10_000),
            ("2025-08", 1, 4_000_000, 4_000_000, 10_000),
        ];
        let want_a: Vec<(String, u64, u64, u64, u64)> =
            want_a.into_iter().map(|(m, a, b, c, e)| (m.to_string(), a, b, c, e)).collect();
        let a = p.series(Some(&name("bank-a")));
        assert_eq!(table(&a), want_a);
        let a_head = &by[&name("bank-a")];
        assert_eq!(
            a.months.last().map(|m| (m.outstanding_fen, m.bad_fen)),
            Some((a_head.outstanding_fen, a_head.bad_fen))
        );
        // bank-b: nothing in January, L3 from February.
        let b = p.series(Some(&name("bank-b")));
        assert_eq!(
            table(&b).iter().map(|r| (r.1, r.2, r.3, r.4)).collect::<Vec<_>>(),
            vec![
                (0, 0, 0, 0),
                (1, 2_000_000, 0, 0),
                (1, 2_000_000, 0, 0),
                (1, 2_000_000, 2_000_000, 10_000),
                (1, 2_000_000, 2_000_000, 10_000),
                (1, 1_500_000, 1_500_000, 10_000),
                (1, 1_500_000, 1_500_000, 10_000),
                (1, 1_500_000, 1_500_000, 10_000),
            ]
        );
        // A lender without loans: zeros over the same months; an empty portfolio: no months.
        assert_eq!(p.series(Some(&name("bank-c"))).months.iter().map(|m| m.outstanding_fen).sum::<u64>(), 0);
        assert_eq!(p.series(Some(&name("bank-c"))).months.len(), 8);
        assert_eq!(Portfolio::default().series(None), Series::default());
    }

    #[test]
    fn a_long_series_keeps_the_latest_months_and_says_how_many_it_left_out() {
        let (l1, l2) = (id(1), id(2));
        let mut p = Portfolio::default();
        p.add(l1, &loan("bank-a", 1_000_000, "2010-01-31", true));
        p.add(l2, &loan("bank-a", 3_000_000, "2015-09-01", true));
        p.add(id(0x11), &ev(l1, "2012-05-05", class(LoanClass::Loss, 400)));
        p.add(id(0x21), &ev(l2, "2025-08-31", repay(3_000_000)));
        let s = p.series(None);
        // 2010-01 ..= 2025-08 is 15 × 12 + 8 = 188 months: the first 68 are left out.
        assert_eq!((s.months.len(), s.months_omitted), (SERIES_MONTHS_MAX, 188 - SERIES_MONTHS_MAX as u64));
        let first = s.months[0];
        // 2015-09: the months left out still count (L1 lost since 2012), and L2 starts this month.
        assert_eq!(
            (first.month.to_string(), first.loans, first.outstanding_fen, first.bad_fen, first.bad_ratio_bp()),
            ("2015-09".to_string(), 2, y(4_000_000), y(1_000_000), 2500)
        );
        let last = s.months[SERIES_MONTHS_MAX - 1];
        assert_eq!(
            (last.month.to_string(), last.loans, last.outstanding_fen, last.bad_fen),
            ("2025-08".to_string(), 1, y(1_000_000), y(1_000_000))
        );
    }
}
