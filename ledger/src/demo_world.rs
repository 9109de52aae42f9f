//! The demo loan world: a deterministic, plausible history of IP-backed lending (qualifications, patent status, appraisals, two-stage pledges, loans and their performance, a risk pool with claims, disposals) for `credence generate`, `demo` and `dev`.
//!
//! The world is planned in full first (who borrows what, when, and how each loan
//! ends), then handed out one claim at a time in date order. Records that name
//! earlier records (a loan names its pledges and appraisals, an event its loan)
//! get those ids as the earlier records are signed ([`LoanWorld::bind`]), so the
//! same plan works for a chain built offline and for a dev node fed through its API.
//!
//! The plan aims at what a regulator would find in a real programme: about
//! [`WORLD_LOANS`] loans from three banks to tech SMEs over 2022–2025, most repaid
//! or performing, a few paid late (关注), and a bad-loan ratio (次级 + 可疑 + 损失
//! over outstanding, as of [`as_of`]) held near [`BAD_RATIO_TARGET_BP`]; a Shenzhen
//! risk-compensation pool with enrolments, claims and payments; patents auctioned
//! by court order. All of it is invented: keys, names and numbers are test fixtures.

use std::collections::{HashMap, HashSet};

use crate::attestation::{AttestationId, Claim, ValuationMethod};
use crate::cn_ids::{
    CourtCaseNumber, HnteCertificate, PatentRef, PledgeRegistration, PublicationNumber, TechSmeNumber,
};
use crate::demo::DemoRng;
use crate::genesis::Genesis;
use crate::hash::{Hash, HashOf};
use crate::ids::{Currency, Date, MemberName, Money, Uscc};
use crate::loans::{
    Appraisal, AppraisalPurpose, CnipaCancellation, Collateral, Disposal, DisposalMethod, Enrolment, Guarantee,
    IpPledge, Loan, LoanClass, LoanEvent, LoanEventKind, PatentStatus, PledgeCancel, PledgeRegistered, PledgeReserve,
    PoolClaim, PoolPayment, PoolTerms, Qualification, QualificationKind, RecoverySource, RiskPool, ValueType,
    add_years_minus_day,
};

/// Worlds one loans-only ledger can chain ([`LoanWorld::nth`]): world `k ≥ 1` numbers its
/// certificates and pledge registrations from `SERIAL_WORLD_BASE + (k - 1) × SERIAL_WORLD_SPAN`,
/// so that no two worlds use one once-only number, and the six-digit serial of an HNTE
/// certificate must not overflow.
pub const LOAN_WORLDS_MAX: u32 = 800;
/// First serial of world 1; world 0 draws its serials below it (at most one step of
/// [`SERIAL_STEP_WORLD0_MAX`] per certificate or registration).
const SERIAL_WORLD_BASE: u32 = 100_000;
/// Serials of one world `k ≥ 1`: more than it has certificates and registrations.
const SERIAL_WORLD_SPAN: u32 = 1_000;
/// World 0's serials grow by 1..=this per number (kept as it was so the demo data stays the same).
const SERIAL_STEP_WORLD0_MAX: u32 = 40;
const _: () = assert!(SERIAL_WORLD_BASE + LOAN_WORLDS_MAX * SERIAL_WORLD_SPAN <= 1_000_000);
/// Once-only numbers of one world at most: a qualification per enterprise and a pledge
/// registration per collateral patent (a loan takes one or two).
const WORLD_NUMBERS_MAX: u32 = (WORLD_ENTERPRISES + 2 * WORLD_LOANS) as u32;
const _: () = assert!(WORLD_NUMBERS_MAX * SERIAL_STEP_WORLD0_MAX < SERIAL_WORLD_BASE);
const _: () = assert!(WORLD_NUMBERS_MAX < SERIAL_WORLD_SPAN);

/// Enterprises in the world (the first 200 are those of the bulk generator for the same seed).
pub const WORLD_ENTERPRISES: usize = 240;
/// Loans planned.
pub const WORLD_LOANS: usize = 260;
/// The bad-loan ratio the plan aims at, in basis points of the outstanding (1.5 %).
pub const BAD_RATIO_TARGET_BP: u64 = 150;
/// The banks that lend, by member name.
pub const BANKS: [&str; 3] = ["bank-icbc-sz", "bank-ccb-hz", "bank-cmb-sz"];
/// The appraiser that attests appraisals and most patent statuses.
pub const APPRAISER: &str = "zhonghe-appraisal";
/// The service centres that attest qualifications and some patent statuses.
pub const CENTRES: [&str; 2] = ["sz-tech-finance-centre", "hz-tech-finance-centre"];
/// The risk-compensation pool's administrator.
pub const POOL_ADMIN: &str = "sz-ip-risk-pool";

/// The last day of the world's history: no record is dated later.
pub fn as_of() -> Date {
    day(2025, 12, 31)
}

/// The risk pool's share of a loss, in basis points.
const POOL_BP: u16 = 5_000;
/// The most the pool pays for one loan (fen): 5,000,000.00 CNY.
const POOL_CAP_FEN: u64 = 500_000_000;
/// Days of principal overdue after which a loan is recorded as defaulted.
const DEFAULT_DAYS: i64 = 92;

/// The demo world needs a member it cannot find in the genesis.
#[derive(Debug, thiserror::Error)]
#[error("the demo loan world needs member '{0}' in the genesis")]
pub struct MissingMember(pub &'static str);

/// The members who attest the world, by genesis index.
#[derive(Clone, Debug)]
struct Members {
    banks: Vec<(usize, MemberName)>,
    appraiser: usize,
    centres: [usize; 2],
    pool: usize,
}

impl Members {
    fn of(g: &Genesis) -> Result<Members, MissingMember> {
        let find =
            |name: &'static str| g.members.iter().position(|m| m.name.as_str() == name).ok_or(MissingMember(name));
        let mut banks = Vec::new();
        for b in BANKS {
            let i = find(b)?;
            banks.push((i, g.members[i].name.clone()));
        }
        Ok(Members {
            banks,
            appraiser: find(APPRAISER)?,
            centres: [find(CENTRES[0])?, find(CENTRES[1])?],
            pool: find(POOL_ADMIN)?,
        })
    }
}

/// A record the plan refers to before it has an id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Ref {
    Appraisal(u32),
    Pledge(u32),
    Loan(u32),
    Pool,
}

/// One planned record: its date (for ordering), attester, claim (with zero ids where
/// `uses` will be filled in) and the reference it defines.
#[derive(Clone, Debug)]
struct Step {
    date: Date,
    who: usize,
    claim: Claim,
    uses: Vec<Ref>,
    defines: Option<Ref>,
}

/// The planned world, handed out one claim at a time.
#[derive(Debug)]
pub struct LoanWorld {
    steps: Vec<Step>,
    next: usize,
    ids: HashMap<Ref, AttestationId>,
    pending: Option<Ref>,
    patents: Vec<PatentRef>,
}

impl LoanWorld {
    /// Plans the world for `seed` with the demo members of `genesis` (names in [`BANKS`],
    /// [`APPRAISER`], [`CENTRES`], [`POOL_ADMIN`]).
    pub fn new(seed: u64, genesis: &Genesis) -> Result<LoanWorld, MissingMember> {
        LoanWorld::nth(seed, 0, genesis, &mut HashSet::new())
    }

    /// World `k` of a chain of worlds for one seed (world 0 is [`LoanWorld::new`]'s).
    /// Worlds `k ≥ 1` have their own enterprises (not the real codes), patents not in
    /// `taken` (which gains this world's), and their own range of once-only numbers,
    /// so any number of worlds up to [`LOAN_WORLDS_MAX`] pass the rules one after another.
    pub fn nth(
        seed: u64,
        k: u32,
        genesis: &Genesis,
        taken: &mut HashSet<PatentRef>,
    ) -> Result<LoanWorld, MissingMember> {
        assert!(k < LOAN_WORLDS_MAX, "world {k}: at most {LOAN_WORLDS_MAX} worlds");
        let members = Members::of(genesis)?;
        let mut p = Planner::new(seed, k, members, std::mem::take(taken));
        p.plan();
        *taken = std::mem::take(&mut p.taken);
        let patents = p.patents.iter().map(|x| x.number).collect();
        let mut steps = p.steps;
        // Stable: records of one date keep the order they were planned in (dependencies first).
        steps.sort_by_key(|s| s.date);
        Ok(LoanWorld { steps, next: 0, ids: HashMap::new(), pending: None, patents })
    }

    /// Records in the world.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Records not handed out yet.
    pub fn remaining(&self) -> usize {
        self.steps.len() - self.next
    }

    /// Every patent the world mentions (bulk generators must not pledge them).
    pub fn patents(&self) -> &[PatentRef] {
        &self.patents
    }

    /// The next claim and the index of the member who attests it, with the ids of the
    /// records it names filled in. Call [`LoanWorld::bind`] with its id once signed.
    pub fn next_claim(&mut self) -> Option<(usize, Claim)> {
        let step = self.steps.get(self.next)?;
        self.next += 1;
        let ids: Vec<AttestationId> = step
            .uses
            .iter()
            .map(|r| self.ids.get(r).copied().unwrap_or_else(|| HashOf::from_hash(Hash::ZERO)))
            .collect();
        let mut claim = step.claim.clone();
        fill(&mut claim, &ids);
        self.pending = step.defines;
        Some((step.who, claim))
    }

    /// The id of the claim last returned by [`LoanWorld::next_claim`].
    pub fn bind(&mut self, id: AttestationId) {
        if let Some(r) = self.pending.take() {
            self.ids.insert(r, id);
        }
    }
}

/// Writes `ids` (in the order the step's `uses` lists them) into the claim's id fields.
fn fill(claim: &mut Claim, ids: &[AttestationId]) {
    let id = |i: usize| ids.get(i).copied().unwrap_or_else(|| HashOf::from_hash(Hash::ZERO));
    match claim {
        Claim::IpPledge(IpPledge::Registered(g)) => g.pledge = id(0),
        Claim::IpPledge(IpPledge::Release(c)) => c.pledge = id(0),
        Claim::Loan(l) => {
            for (i, c) in l.collateral.iter_mut().enumerate() {
                c.pledge = id(2 * i);
                c.appraisal = id(2 * i + 1);
            }
        }
        Claim::LoanEvent(e) => e.loan = id(0),
        Claim::RiskPool(RiskPool::Enrol(e)) => (e.pool, e.loan) = (id(0), id(1)),
        Claim::RiskPool(RiskPool::Claim(c)) => (c.pool, c.loan) = (id(0), id(1)),
        Claim::RiskPool(RiskPool::Pay(x)) => (x.pool, x.loan) = (id(0), id(1)),
        Claim::Disposal(d) => d.pledge = id(0),
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Dates and numbers
// ---------------------------------------------------------------------------

fn day(y: u16, m: u8, d: u8) -> Date {
    // Every caller passes a day that exists (day ≤ 28, or a fixed date).
    Date::new("date", y, m, d).unwrap_or_else(|e| unreachable!("{e}"))
}

fn plus(d: Date, days: i64) -> Date {
    Date::from_days(d.days_since_epoch() + days).unwrap_or(d)
}

fn days_between(a: Date, b: Date) -> i64 {
    b.days_since_epoch() - a.days_since_epoch()
}

/// The same day `months` later (clamped to the month's end).
fn add_months(d: Date, months: u32) -> Date {
    let total = u32::from(d.year()) * 12 + u32::from(d.month()) - 1 + months;
    let (y, m) = ((total / 12) as u16, (total % 12) as u8 + 1);
    (1..=d.day()).rev().find_map(|dd| Date::new("date", y, m, dd).ok()).unwrap_or(d)
}

fn cny(fen: u64) -> Money {
    Money { fen, currency: Currency::CNY }
}

/// `fen × bp / 10,000`, rounded down.
fn share(fen: u64, bp: u64) -> u64 {
    (u128::from(fen) * u128::from(bp) / 10_000) as u64
}

/// The one character that completes `prefix` into a valid patent number.
fn complete_patent(prefix: &str, alphabet: &str) -> Option<PatentRef> {
    alphabet.chars().find_map(|c| PatentRef::parse("patent", &format!("{prefix}{c}")).ok())
}

/// The court code of enforcement cases in the enterprise's province (by its USCC's division code).
fn court_of(province: &str) -> &'static str {
    match province {
        "44" => "粤03",
        "33" => "浙01",
        "11" => "京01",
        "31" => "沪01",
        "32" => "苏05",
        _ => "川01",
    }
}

// ---------------------------------------------------------------------------
// The plan
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Patent {
    number: PatentRef,
    owner: usize,
    filed: Date,
    expires: Date,
    grant: Option<PublicationNumber>,
    /// Granted, in force and free of encumbrances: a bank may take it.
    pledgeable: bool,
    used: bool,
    /// Latest status date planned (statuses must not go back in time).
    as_of: Date,
}

/// How a loan ends (as of [`as_of`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Normal,
    /// Instalment `k` paid `days` late (cured if `days` runs out before the end of history).
    Late {
        k: usize,
        days: i64,
    },
    /// Instalment `k` never paid: default; `resolved` loans went through claim, payment and disposal.
    Bad {
        k: usize,
        resolved: bool,
    },
}

#[derive(Clone, Debug)]
struct PlannedLoan {
    bank: usize,
    borrower: usize,
    start: Date,
    maturity: Date,
    principal: u64,
    rate_bp: u32,
    /// (patent index, share of the principal in bp, appraised value in fen).
    collateral: Vec<(usize, u16, u64)>,
    guarantee: Option<(Uscc, u64)>,
    enrolled: bool,
    fate: Fate,
}

impl PlannedLoan {
    /// Instalment due dates: every six months, the last at maturity.
    fn dues(&self) -> Vec<Date> {
        let months = {
            let (a, b) = (self.start, self.maturity);
            (u32::from(b.year()) * 12 + u32::from(b.month())) - (u32::from(a.year()) * 12 + u32::from(a.month()))
        };
        (1..=months / 6).map(|i| add_months(self.start, 6 * i)).collect()
    }

    /// Principal due at each instalment (equal parts, the last takes the remainder).
    fn parts(&self) -> Vec<u64> {
        let n = self.dues().len().max(1) as u64;
        let part = self.principal / n;
        (0..n).map(|i| if i + 1 == n { self.principal - part * (n - 1) } else { part }).collect()
    }

    fn interest(&self, outstanding: u64, from: Date, to: Date) -> u64 {
        let days = days_between(from, to).max(0) as u128;
        (u128::from(outstanding) * u128::from(self.rate_bp) * days / (10_000 * 365)) as u64
    }
}

/// What happened to a loan: its events and the pool and pledge records that follow from them.
#[derive(Debug, Default)]
struct History {
    events: Vec<(Date, LoanEventKind)>,
    outstanding: u64,
    /// Date of the default and the principal overdue then.
    default: Option<(Date, u64)>,
    /// Fully repaid on this day.
    repaid: Option<Date>,
}

struct Planner {
    rng: DemoRng,
    m: Members,
    enterprises: Vec<Uscc>,
    institutions: Vec<Uscc>,
    guarantors: Vec<Uscc>,
    patents: Vec<Patent>,
    loans: Vec<PlannedLoan>,
    steps: Vec<Step>,
    appraisals: u32,
    pledges: u32,
    serial: u32,
    /// Index of this world in a chain of worlds ([`LoanWorld::nth`]).
    world: u32,
    /// Patents planned by this world and the worlds before it.
    taken: HashSet<PatentRef>,
}

impl Planner {
    fn new(seed: u64, world: u32, m: Members, taken: HashSet<PatentRef>) -> Planner {
        let reals = crate::demo::REAL_USCCS.len();
        let (enterprises, mut rng) = if world == 0 {
            // The bulk generator draws its enterprises first from `DemoRng::new(seed)`: the
            // same draw gives the same first 200, so profiles mix R&D spend and loans.
            let enterprises = crate::demo::enterprises(&mut DemoRng::new(seed), WORLD_ENTERPRISES);
            (enterprises, DemoRng::new(seed ^ 0x6c6f_616e_2077_6f72))
        } else {
            let mut rng =
                DemoRng::new(seed ^ 0x6c6f_616e_2077_6f72 ^ u64::from(world).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let enterprises = crate::demo::enterprises(&mut rng, reals + WORLD_ENTERPRISES).split_off(reals);
            (enterprises, rng)
        };
        // Skip the real codes the generator always starts with; keep codes no borrower has.
        let others: Vec<Uscc> = crate::demo::enterprises(&mut rng, crate::demo::REAL_USCCS.len() + 8)
            .into_iter()
            .skip(reals)
            .filter(|u| !enterprises.contains(u))
            .collect();
        let (institutions, guarantors) = others.split_at(others.len().min(4));
        Planner {
            rng,
            m,
            enterprises,
            institutions: institutions.to_vec(),
            guarantors: guarantors.to_vec(),
            patents: Vec::new(),
            loans: Vec::new(),
            steps: Vec::new(),
            appraisals: 0,
            pledges: 0,
            serial: if world == 0 { 0 } else { SERIAL_WORLD_BASE + (world - 1) * SERIAL_WORLD_SPAN },
            world,
            taken,
        }
    }

    fn below(&mut self, n: u64) -> u64 {
        self.rng.below(n)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn date_in(&mut self, from: Date, to: Date) -> Date {
        let span = days_between(from, to).max(0) as u64;
        plus(from, self.below(span + 1) as i64)
    }

    fn next_serial(&mut self) -> u32 {
        if self.world == 0 {
            self.serial += 1 + self.below(u64::from(SERIAL_STEP_WORLD0_MAX)) as u32;
        } else {
            self.serial += 1;
            assert!(
                self.serial < SERIAL_WORLD_BASE + self.world * SERIAL_WORLD_SPAN,
                "world {}: more than {SERIAL_WORLD_SPAN} once-only numbers",
                self.world
            );
        }
        self.serial
    }

    fn push(&mut self, date: Date, who: usize, claim: Claim, uses: Vec<Ref>, defines: Option<Ref>) {
        self.steps.push(Step { date, who, claim, uses, defines });
    }

    fn province(&self, e: usize) -> String {
        self.enterprises[e].as_str()[2..4].to_owned()
    }

    fn plan(&mut self) {
        let pool_date = day(2021, 12, 15);
        let terms = PoolTerms {
            name: "深圳知识产权质押融资风险补偿资金池".to_owned(),
            currency: Currency::CNY,
            pool_bp: POOL_BP,
            bank_bp: 3_000,
            guarantor_bp: 1_500,
            insurer_bp: 500,
            loan_cap: cny(POOL_CAP_FEN),
            enrol_from: day(2022, 1, 1),
            enrol_until: day(2026, 12, 31),
            claim_days: 180,
            default_days_min: 90,
        };
        let admin = self.m.pool;
        self.push(pool_date, admin, Claim::RiskPool(RiskPool::Open(terms)), vec![], Some(Ref::Pool));
        for e in 0..self.enterprises.len() {
            self.qualification(e);
            self.enterprise_patents(e);
        }
        self.plan_loans();
        self.choose_fates();
        for i in 0..self.loans.len() {
            self.emit_loan(i);
        }
        self.licensing_appraisals();
    }

    fn qualification(&mut self, e: usize) {
        let uscc = self.enterprises[e];
        let prov = self.province(e);
        let centre = if prov == "33" { self.m.centres[1] } else { self.m.centres[0] };
        let roll = self.below(100);
        let (date, q) = if roll < 55 {
            let year = 2019 + self.below(6) as u16;
            let serial = self.next_serial();
            let Ok(certificate) = HnteCertificate::parse("certificate", &format!("GR{year}{prov}{serial:06}")) else {
                return;
            };
            let issued = day(year, 11 + self.below(2) as u8, 1 + self.below(28) as u8);
            (plus(issued, 10 + self.below(20) as i64), QualificationKind::HighTech { certificate, issued })
        } else if roll < 90 {
            let year = 2023 + self.below(3) as u16;
            let serial = self.next_serial();
            let division = &uscc.as_str()[2..8];
            let Ok(registration) = TechSmeNumber::parse("registration", &format!("{year}{division}{serial:08}")) else {
                return;
            };
            (day(year, 4 + self.below(3) as u8, 1 + self.below(28) as u8), QualificationKind::TechSme { registration })
        } else {
            return;
        };
        let evidence = self.rng.hash();
        self.push(
            date,
            centre,
            Claim::Qualification(Qualification { enterprise: uscc, qualification: q, evidence }),
            vec![],
            None,
        );
    }

    /// One to four patents per enterprise (three or four for the real codes), each with a first status in 2021.
    fn enterprise_patents(&mut self, e: usize) {
        // The real codes hold granted inventions in good standing (their loans are planned first).
        let clean = e < crate::demo::REAL_USCCS.len();
        let n = if clean { 3 + self.below(2) } else { 1 + self.below(4) };
        for _ in 0..n {
            let roll = if clean { 50 } else { self.below(100) };
            let patent = if roll < 3 {
                self.old_patent(e)
            } else {
                // 70 % inventions (20-year term), the rest utility models (10 years).
                let invention = clean || self.below(10) < 7;
                let pending = roll >= 94;
                self.modern_patent(e, invention, pending)
            };
            let Some(mut patent) = patent else { continue };
            // Worlds after the first keep off every patent an earlier world planned.
            if !self.taken.insert(patent.number) && self.world > 0 {
                continue;
            }
            let as_of = self.date_in(day(2021, 1, 10), day(2021, 10, 31));
            // Some patents carry a problem a loan officer must see.
            let problem = if clean || patent.grant.is_none() || as_of > patent.expires { 0 } else { self.below(100) };
            let (invalidation, preservation, lapsed) =
                (problem >= 95, (92..95).contains(&problem), (88..92).contains(&problem));
            let fees = if lapsed {
                // Fees stopped: paid up to a patent year that ended before the status date.
                fees_until(patent.filed, plus(as_of, -400), 0)
            } else if as_of > patent.expires || patent.grant.is_none() {
                None
            } else {
                fees_until(patent.filed, as_of, 0)
            };
            patent.pledgeable = patent.grant.is_some() && problem < 88 && as_of <= patent.expires;
            patent.as_of = as_of;
            let co_owners = if !patent.pledgeable && self.chance(30) {
                let i = self.below(WORLD_ENTERPRISES as u64) as usize % self.enterprises.len();
                let other = self.enterprises[i];
                if other == self.enterprises[e] { vec![] } else { vec![other] }
            } else {
                vec![]
            };
            let who = if self.chance(65) { self.m.appraiser } else { self.m.centres[0] };
            let evidence = self.rng.hash();
            let status = PatentStatus {
                patent: patent.number,
                owner: self.enterprises[e],
                co_owners,
                grant: patent.grant,
                filed: patent.filed,
                expires: patent.expires,
                fees_paid_until: fees,
                invalidation_pending: invalidation,
                court_preservation: preservation,
                lapsed,
                as_of,
                evidence,
            };
            self.push(as_of, who, Claim::PatentStatus(status), vec![], None);
            self.patents.push(patent);
        }
    }

    fn modern_patent(&mut self, owner: usize, invention: bool, pending: bool) -> Option<Patent> {
        let year = if pending { 2021 } else { 2012 + self.below(9) as u16 };
        let kind = if invention { 1 } else { 2 };
        let serial = self.below(10_000_000);
        let number = complete_patent(&format!("CN{year}{kind}{serial:07}."), "0123456789X")?;
        let filed = day(year, 1 + self.below(12) as u8, 1 + self.below(28) as u8);
        let expires = add_years_minus_day(filed, if invention { 20 } else { 10 })?;
        let grant = if pending {
            None
        } else {
            let digits = self.below(100_000_000);
            let text = if invention { format!("CN1{digits:08}B") } else { format!("CN2{digits:08}U") };
            Some(PublicationNumber::parse("grant", &text).ok()?)
        };
        Some(Patent { number, owner, filed, expires, grant, pledgeable: false, used: false, as_of: filed })
    }

    /// A patent filed before 2003 (the 8+1 form) or in 1985–88 (8 digits): long expired.
    fn old_patent(&mut self, owner: usize) -> Option<Patent> {
        let early = self.chance(30);
        let (yy, year) = if early {
            let y = 85 + self.below(4) as u16;
            (y, 1900 + y)
        } else {
            let y = self.below(3) as u16; // 2000..=2002
            (y, 2000 + y)
        };
        let serial = self.below(100_000);
        let number = if early {
            PatentRef::parse("patent", &format!("CN{yy:02}1{serial:05}")).ok()?
        } else {
            complete_patent(&format!("CN{yy:02}1{serial:05}."), "0123456789X")?
        };
        let filed = day(year, 1 + self.below(12) as u8, 1 + self.below(28) as u8);
        // The 1985 law gave inventions 15 years; the 1992 amendment 20.
        let expires = add_years_minus_day(filed, if early { 15 } else { 20 })?;
        let digits = self.below(1_000_000);
        let grant = PublicationNumber::parse("grant", &format!("CN1{digits:06}C")).ok();
        Some(Patent { number, owner, filed, expires, grant, pledgeable: false, used: false, as_of: filed })
    }

    fn plan_loans(&mut self) {
        let mut tries = 0;
        while self.loans.len() < WORLD_LOANS && tries < WORLD_LOANS * 20 {
            tries += 1;
            let i = self.loans.len();
            // The real codes borrow first: the README's profile shows a full history.
            let borrower = match i {
                0 | 1 => 0,
                2 => 1,
                3 => 2,
                _ => self.below(self.enterprises.len() as u64) as usize,
            };
            let start = match i {
                0 => day(2022, 3, 8),
                1 => day(2024, 5, 20),
                2 => day(2022, 9, 15),
                3 => day(2024, 2, 26),
                _ => self.date_in(day(2022, 1, 5), day(2025, 10, 31)),
            };
            let term = match i {
                0..=3 => 24,
                _ => [12, 12, 24, 24, 36][self.below(5) as usize],
            };
            let maturity = add_months(start, term);
            let free: Vec<usize> = (0..self.patents.len())
                .filter(|&p| {
                    let x = &self.patents[p];
                    x.owner == borrower && x.pledgeable && !x.used && x.expires > plus(maturity, 30)
                })
                .collect();
            if free.is_empty() {
                continue;
            }
            let two = free.len() >= 2 && (i == 3 || (i > 3 && self.chance(25)));
            let chosen: Vec<usize> = if two { free[..2].to_vec() } else { vec![free[0]] };
            let yuan = [1_000_000u64, 2_000_000, 3_000_000, 5_000_000, 8_000_000, 10_000_000, 15_000_000, 20_000_000]
                [self.below(8) as usize];
            let principal = (yuan * (80 + self.below(41)) / 100) / 10_000 * 10_000 * 100;
            let ltv_bp = match self.below(100) {
                0..=19 => 2_000 + self.below(1_000),
                20..=59 => 3_000 + self.below(2_000),
                60..=89 => 5_000 + self.below(2_000),
                _ => 7_000 + self.below(2_500),
            };
            let value = principal * 10_000 / ltv_bp;
            let shares: Vec<u16> = if chosen.len() == 2 { vec![6_000, 4_000] } else { vec![10_000] };
            let collateral =
                chosen.iter().zip(&shares).map(|(&p, &s)| (p, s, share(value, u64::from(s)))).collect::<Vec<_>>();
            for &p in &chosen {
                self.patents[p].used = true;
            }
            let guarantee = if i == 3 || (i > 3 && self.chance(20)) {
                let n = self.guarantors.len() as u64;
                let i = self.below(n) as usize;
                let g = self.guarantors[i];
                Some((g, principal / 2))
            } else {
                None
            };
            let bank = match i {
                0..=3 => i % 2,
                _ => [0, 0, 1, 1, 2][self.below(5) as usize],
            };
            let loan = PlannedLoan {
                bank,
                borrower,
                start,
                maturity,
                principal,
                rate_bp: 320 + self.below(160) as u32,
                collateral,
                guarantee,
                enrolled: i <= 2 || self.chance(45),
                fate: Fate::Normal,
            };
            self.loans.push(loan);
        }
    }

    /// Chooses how each loan ends: the real codes' loans fixed, three more resolved
    /// defaults, eight late payers, then current bad loans until the bad-loan ratio
    /// reaches the target.
    fn choose_fates(&mut self) {
        let end = as_of();
        if let Some(l) = self.loans.get_mut(1) {
            l.fate = Fate::Late { k: 1, days: 47 };
        }
        if let Some(l) = self.loans.get_mut(2) {
            l.fate = Fate::Bad { k: 1, resolved: true };
        }
        let mut order: Vec<usize> = (4..self.loans.len()).collect();
        for i in (1..order.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        let mut resolved = 1;
        let mut late = 0;
        for &i in &order {
            let l = &self.loans[i];
            let dues = l.dues();
            if resolved < 4 && l.start <= day(2023, 6, 30) && dues.len() >= 2 && plus(dues[1], 400) <= end {
                self.loans[i].fate = Fate::Bad { k: 1, resolved: true };
                self.loans[i].enrolled = true;
                resolved += 1;
            } else if late < 8 && dues.first().is_some_and(|d| plus(*d, 40) <= end) {
                let days = 31 + self.below(60) as i64;
                self.loans[i].fate = Fate::Late { k: 0, days };
                late += 1;
            }
        }
        let outstanding = |p: &Planner, i: usize| p.history(i).outstanding;
        let mut total: u64 = (0..self.loans.len()).map(|i| outstanding(self, i)).sum();
        let mut bad: u64 = (0..self.loans.len())
            .filter(|&i| matches!(self.loans[i].fate, Fate::Bad { .. }))
            .map(|i| outstanding(self, i))
            .sum();
        for &i in &order {
            if bad * 10_000 >= (BAD_RATIO_TARGET_BP - 15) * total {
                break;
            }
            if self.loans[i].fate != Fate::Normal {
                continue;
            }
            let normal = outstanding(self, i);
            let dues = self.loans[i].dues();
            let Some(k) = dues.iter().rposition(|d| plus(*d, 100) <= end) else { continue };
            if normal == 0 {
                continue;
            }
            self.loans[i].fate = Fate::Bad { k, resolved: false };
            let b = outstanding(self, i);
            let new_total = total - normal + b;
            if (bad + b) * 10_000 > (BAD_RATIO_TARGET_BP + 15) * new_total {
                self.loans[i].fate = Fate::Normal;
                continue;
            }
            bad += b;
            total = new_total;
        }
    }

    /// The loan's events up to [`as_of`] under its fate.
    fn history(&self, i: usize) -> History {
        let l = &self.loans[i];
        let end = as_of();
        let dues = l.dues();
        let parts = l.parts();
        let mut h = History { outstanding: l.principal, ..History::default() };
        let mut last_paid = l.start;
        let mut stop: Option<Date> = None;
        for (j, (&due, &part)) in dues.iter().zip(&parts).enumerate() {
            let paid_on = match l.fate {
                Fate::Late { k, days } if k == j => plus(due, days),
                Fate::Bad { k, .. } if k == j => {
                    stop = Some(due);
                    break;
                }
                _ => due,
            };
            if let Fate::Late { k, .. } = l.fate
                && k == j
            {
                let flag = plus(due, 30);
                if flag <= end {
                    h.events.push((
                        flag,
                        LoanEventKind::Classification { class: LoanClass::SpecialMention, days_overdue: 30 },
                    ));
                }
            }
            if paid_on > end {
                break;
            }
            let interest = l.interest(h.outstanding, last_paid, due);
            h.events.push((paid_on, LoanEventKind::Repayment { principal: cny(part), interest: cny(interest) }));
            h.outstanding -= part;
            last_paid = due;
            if h.outstanding == 0 {
                h.repaid = Some(paid_on);
            }
        }
        // Year-end reviews while the loan is outstanding.
        let overdue_since = |d: Date| -> Option<Date> {
            match l.fate {
                Fate::Late { k, days } => dues.get(k).filter(|due| **due < d && plus(**due, days) > d).copied(),
                Fate::Bad { k, .. } => dues.get(k).filter(|due| **due < d).copied(),
                Fate::Normal => None,
            }
        };
        let mut reviews = Vec::new();
        for y in l.start.year()..=end.year() {
            let ye = day(y, 12, 31);
            if ye <= l.start || ye > end || h.repaid.is_some_and(|r| r <= ye) {
                continue;
            }
            let days = overdue_since(ye).map_or(0, |d| days_between(d, ye)) as u32;
            let class = LoanClass::floor_for(days);
            reviews.push((ye, LoanEventKind::Classification { class, days_overdue: days }));
        }
        if let Some(due) = stop {
            let at = |n: i64| Some(plus(due, n)).filter(|d| *d <= end);
            if let Some(d) = at(31) {
                h.events
                    .push((d, LoanEventKind::Classification { class: LoanClass::SpecialMention, days_overdue: 31 }));
            }
            if let Some(d) = at(DEFAULT_DAYS) {
                let overdue = cny(h.outstanding);
                h.events.push((
                    d,
                    LoanEventKind::Default { days_overdue: DEFAULT_DAYS as u32, overdue_principal: overdue },
                ));
                h.events.push((
                    d,
                    LoanEventKind::Classification { class: LoanClass::Substandard, days_overdue: DEFAULT_DAYS as u32 },
                ));
                h.default = Some((d, h.outstanding));
            }
            for (n, class) in [(275, LoanClass::Doubtful), (365, LoanClass::Loss)] {
                if let Some(d) = at(n) {
                    h.events.push((d, LoanEventKind::Classification { class, days_overdue: n as u32 }));
                }
            }
            if let (Fate::Bad { resolved: true, .. }, Some((_, at_default))) = (l.fate, h.default) {
                // Recoveries: the pool's payment, the guarantor, the auction; a small loss remains.
                let residual = at_default / 25;
                let pool_paid = if l.enrolled { share(at_default, u64::from(POOL_BP)).min(POOL_CAP_FEN) } else { 0 };
                let recover = |h: &mut History, n: i64, want: u64, source: RecoverySource| {
                    let amount = want.min(h.outstanding.saturating_sub(residual));
                    if let Some(d) = at(n).filter(|_| amount > 0) {
                        h.events.push((d, LoanEventKind::Recovery { amount: cny(amount), source }));
                        h.outstanding -= amount;
                    }
                };
                recover(&mut h, 165, pool_paid, RecoverySource::Pool);
                if let Some((_, g)) = l.guarantee {
                    recover(&mut h, 200, g, RecoverySource::Guarantor);
                }
                recover(&mut h, 250, disposal_price(l), RecoverySource::Disposal);
            }
        }
        h.events.extend(reviews);
        h.events.sort_by_key(|(d, _)| *d);
        h
    }

    fn emit_loan(&mut self, i: usize) {
        let l = self.loans[i].clone();
        let h = self.history(i);
        let (bank, bank_name) = self.m.banks[l.bank].clone();
        let borrower = self.enterprises[l.borrower];
        let contract = self.rng.hash();
        let loan_ref = Ref::Loan(i as u32);
        let mut uses = Vec::new();
        let mut collateral = Vec::new();
        let mut pledge_refs = Vec::new();
        for &(p, share_bp, value) in &l.collateral {
            // A fresh status before the bank takes the patent: fees paid through the loan's first year.
            let status_date = plus(l.start, -45);
            self.patent_status(p, status_date, false);
            let base = plus(l.start, -(20 + self.below(40) as i64));
            let a_ref = Ref::Appraisal(self.appraisals);
            self.appraisals += 1;
            let appraisal = self.appraisal(p, AppraisalPurpose::Pledge, ValueType::Market, value, base);
            self.push(plus(base, 5), self.m.appraiser, Claim::Appraisal(appraisal), vec![], Some(a_ref));
            let p_ref = Ref::Pledge(self.pledges);
            self.pledges += 1;
            let reserve = PledgeReserve {
                patent: self.patents[p].number,
                pledgor: borrower,
                pledgee: bank_name.clone(),
                loan_contract: contract,
                secured: cny(share(l.principal, u64::from(share_bp))).into(),
                start: l.start,
                end: l.maturity,
                evidence: self.rng.hash(),
            };
            self.push(plus(l.start, -15), bank, Claim::IpPledge(IpPledge::Reserve(reserve)), vec![], Some(p_ref));
            let reg_date = plus(l.start, -5);
            let office = if self.chance(60) { "98".to_owned() } else { self.province(l.borrower) };
            let serial = self.next_serial();
            let Ok(registration) =
                PledgeRegistration::parse("registration", &format!("Y{}{office}{serial:07}", reg_date.year()))
            else {
                continue;
            };
            let registered =
                PledgeRegistered { pledge: zero(), registration, effective: reg_date, evidence: self.rng.hash() };
            self.push(reg_date, bank, Claim::IpPledge(IpPledge::Registered(registered)), vec![p_ref], None);
            uses.extend([p_ref, a_ref]);
            collateral.push(Collateral { pledge: zero(), appraisal: zero(), share_bp });
            pledge_refs.push((p, p_ref));
        }
        let loan = Loan {
            lender: bank_name,
            borrower,
            contract,
            principal: cny(l.principal),
            start: l.start,
            maturity: l.maturity,
            rate_bp: l.rate_bp,
            collateral,
            guarantee: l.guarantee.map(|(guarantor, fen)| Guarantee { guarantor, amount: cny(fen) }),
        };
        self.push(l.start, bank, Claim::Loan(loan), uses, Some(loan_ref));
        let admin = self.m.pool;
        if l.enrolled {
            let date = plus(l.start, 7 + self.below(14) as i64);
            let enrol = Enrolment { pool: zero(), loan: zero(), date };
            self.push(date, admin, Claim::RiskPool(RiskPool::Enrol(enrol)), vec![Ref::Pool, loan_ref], None);
        }
        for (date, event) in h.events {
            let e = LoanEvent { loan: zero(), date, event };
            self.push(date, bank, Claim::LoanEvent(e), vec![loan_ref], None);
        }
        let end = as_of();
        if let (Some((d, overdue)), true) = (h.default, l.enrolled) {
            // The bank claims the pool's share within its deadline; resolved loans were paid.
            let claim_date = plus(d, 28);
            let amount = share(overdue, u64::from(POOL_BP)).min(POOL_CAP_FEN);
            if claim_date <= end {
                let claim = PoolClaim {
                    pool: zero(),
                    loan: zero(),
                    date: claim_date,
                    eligible_principal: cny(overdue),
                    amount: cny(amount),
                    evidence: self.rng.hash(),
                };
                self.push(claim_date, bank, Claim::RiskPool(RiskPool::Claim(claim)), vec![Ref::Pool, loan_ref], None);
                let pay_date = plus(d, 160);
                if matches!(l.fate, Fate::Bad { resolved: true, .. }) && pay_date <= end {
                    let pay = PoolPayment { pool: zero(), loan: zero(), date: pay_date, amount: cny(amount) };
                    self.push(pay_date, admin, Claim::RiskPool(RiskPool::Pay(pay)), vec![Ref::Pool, loan_ref], None);
                }
            }
        }
        if let Some((d, _)) = h.default
            && let Some(&(p, _, _)) = l.collateral.first()
        {
            // A creditor had the court freeze the patent soon after the default.
            self.patent_status(p, plus(d, 10), true);
        }
        match (l.fate, h.default) {
            (Fate::Bad { resolved: true, .. }, Some((d, _))) => {
                if let Some(&(p, p_ref)) = pledge_refs.first() {
                    let date = plus(d, 240);
                    if date <= end {
                        let prov = self.province(l.borrower);
                        let serial = 100 + self.below(9_000);
                        let case = CourtCaseNumber::parse(
                            "court_case",
                            &format!("（{}）{}执{serial}号", date.year(), court_of(&prov)),
                        )
                        .ok();
                        let i = (l.borrower + 1 + self.below(50) as usize) % self.enterprises.len();
                        let buyer = self.enterprises[i];
                        let disposal = Disposal {
                            pledge: zero(),
                            method: DisposalMethod::Auction,
                            court_case: case,
                            price: cny(disposal_price(&l)),
                            date,
                            new_owner: Some(buyer),
                            evidence: self.rng.hash(),
                        };
                        self.push(date, bank, Claim::Disposal(disposal), vec![p_ref], None);
                        self.patents[p].owner = i;
                    }
                }
            }
            (_, None) => {
                if let Some(repaid) = h.repaid {
                    for &(_, p_ref) in &pledge_refs {
                        let date = plus(repaid, 10 + self.below(15) as i64);
                        if date > end {
                            continue;
                        }
                        let cancellation = Some(CnipaCancellation { date: plus(date, -3), evidence: self.rng.hash() });
                        let release = PledgeCancel { pledge: zero(), cancellation };
                        self.push(date, bank, Claim::IpPledge(IpPledge::Release(release)), vec![p_ref], None);
                    }
                }
            }
            _ => {}
        }
    }

    /// A new status of patent `p` on `date` (after its latest): in force, fees paid ahead.
    fn patent_status(&mut self, p: usize, date: Date, preservation: bool) {
        let x = self.patents[p].clone();
        let date = date.max(x.as_of);
        self.patents[p].as_of = date;
        let status = PatentStatus {
            patent: x.number,
            owner: self.enterprises[x.owner],
            co_owners: vec![],
            grant: x.grant,
            filed: x.filed,
            expires: x.expires,
            // Paid through the patent year that ends at least two months after the status date.
            fees_paid_until: fees_until(x.filed, date, 60),
            invalidation_pending: false,
            court_preservation: preservation,
            lapsed: false,
            as_of: date,
            evidence: self.rng.hash(),
        };
        let who = self.m.appraiser;
        self.push(date, who, Claim::PatentStatus(status), vec![], None);
    }

    fn appraisal(
        &mut self,
        p: usize,
        purpose: AppraisalPurpose,
        value_type: ValueType,
        fen: u64,
        base: Date,
    ) -> Appraisal {
        let (method, rationale) = match self.below(10) {
            0..=6 => (
                ValuationMethod::Income,
                "收益法: licensed products with three years of audited sales; royalty-rate split, 12 % discount rate over the remaining term",
            ),
            7 | 8 => (
                ValuationMethod::Market,
                "市场法: four comparable patent transfers in the same IPC subclass on CNIPA's operations platform, adjusted for remaining term",
            ),
            _ => (
                ValuationMethod::Cost,
                "成本法: early-stage patent without revenue; replacement cost of the R&D behind it less obsolescence",
            ),
        };
        let n = self.institutions.len() as u64;
        let i = self.below(n) as usize;
        let institution = self.institutions[i];
        let x = &self.patents[p];
        Appraisal {
            patent: x.number,
            owner: self.enterprises[x.owner],
            institution,
            purpose,
            value_type,
            value: cny(fen.max(100)),
            method,
            rationale: rationale.to_owned(),
            base_date: base,
            valid_until: add_years_minus_day(base, 1).unwrap_or(base),
            evidence: self.rng.hash(),
        }
    }

    /// Appraisals for licensing and transfer of some unpledged granted patents.
    fn licensing_appraisals(&mut self) {
        for p in 0..self.patents.len() {
            let x = &self.patents[p];
            if x.used || x.grant.is_none() || x.expires < as_of() || self.below(100) >= 15 {
                continue;
            }
            let purpose = if self.chance(60) { AppraisalPurpose::Licensing } else { AppraisalPurpose::Transfer };
            let value_type = if self.chance(80) { ValueType::Market } else { ValueType::Realisable };
            let fen = (500_000 + self.below(30_000_000)) * 100;
            let base = self.date_in(day(2022, 3, 1), day(2025, 9, 30));
            let a = self.appraisal(p, purpose, value_type, fen, base);
            self.push(plus(base, 7), self.m.appraiser, Claim::Appraisal(a), vec![], None);
        }
    }
}

fn zero() -> AttestationId {
    HashOf::from_hash(Hash::ZERO)
}

/// What the auction of a defaulted loan's first pledged patent fetched: 45 % of its appraised value.
fn disposal_price(l: &PlannedLoan) -> u64 {
    l.collateral.first().map_or(0, |&(_, _, value)| share(value, 4_500)).max(100)
}

/// The last day of the first patent year (counted from `filed`) that ends at least
/// `ahead_days` after `date`; `None` past the patent's 20th year.
fn fees_until(filed: Date, date: Date, ahead_days: i64) -> Option<Date> {
    let target = plus(date, ahead_days);
    (1..=20u16).filter_map(|n| add_years_minus_day(filed, n)).find(|d| *d >= target)
}
