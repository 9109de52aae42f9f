//! The regulator's and pools' portfolio figures, computed by one streaming pass over committed attestations in ledger order.
//!
//! Memory grows with the number of loans, appraisals and enrolments, never with the
//! number of records; each figure can be traced to the records it sums (the
//! per-loan lines name the loan, its appraisals and its latest classification).
//! Only CNY amounts are summed; loans in other currencies are counted apart.

use std::collections::{BTreeMap, HashMap};

use crate::attestation::{AttestationId, Claim};
use crate::ids::{Currency, MemberName};
use crate::loans::{BP_WHOLE, LoanClass, LoanEventKind, RiskPool};

/// Upper bounds (exclusive, basis points) of the loan-to-value buckets; the last bucket is open.
pub const LTV_BUCKETS_BP: [u32; 4] = [3_000, 5_000, 7_000, 10_000];

/// One loan as the portfolio sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoanLine {
    pub loan: AttestationId,
    pub lender: MemberName,
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
    /// Loans in a currency other than CNY (not summed).
    pub other_currency_loans: u64,
}

impl Portfolio {
    /// Adds one committed attestation (`attester` is its attester; the rules already held).
    pub fn add(&mut self, id: AttestationId, claim: &Claim) {
        match claim {
            Claim::Appraisal(a) if a.value.currency == Currency::CNY => {
                self.appraisals.insert(id, a.value.fen);
            }
            Claim::Loan(l) if !l.collateral.is_empty() => {
                if l.principal.currency != Currency::CNY {
                    self.other_currency_loans += 1;
                    return;
                }
                let appraisals: Vec<AttestationId> = l.collateral.iter().map(|c| c.appraisal).collect();
                let appraised_fen = appraisals.iter().filter_map(|a| self.appraisals.get(a)).sum();
                self.loans.insert(
                    id,
                    LoanLine {
                        loan: id,
                        lender: l.lender.clone(),
                        principal_fen: l.principal.fen,
                        outstanding_fen: l.principal.fen,
                        class: LoanClass::Normal,
                        class_record: id,
                        appraised_fen,
                        appraisals,
                    },
                );
            }
            Claim::LoanEvent(e) => {
                let Some(l) = self.loans.get_mut(&e.loan) else { return };
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
            }
            Claim::RiskPool(RiskPool::Open(t)) => {
                let f = PoolFigures { name: t.name.clone(), pool_bp: t.pool_bp, ..PoolFigures::default() };
                self.pools.insert(id, (f, t.loan_cap.fen));
            }
            Claim::RiskPool(RiskPool::Enrol(e)) => self.enrolments.push((e.pool, e.loan)),
            Claim::RiskPool(RiskPool::Claim(c)) => {
                if let Some((p, _)) = self.pools.get_mut(&c.pool) {
                    p.claimed_fen += c.amount.fen;
                    p.claims.push(id);
                }
            }
            Claim::RiskPool(RiskPool::Pay(x)) => {
                if let Some((p, _)) = self.pools.get_mut(&x.pool) {
                    p.paid_fen += x.amount.fen;
                    p.payments.push(id);
                }
            }
            _ => {}
        }
    }

    /// The loans, by id.
    pub fn loans(&self) -> impl Iterator<Item = &LoanLine> {
        self.loans.values()
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
