//! `credence profile <USCC>`: what the ledger says about one enterprise — R&D spend and who agrees, patent portfolio and its value, active pledges, IP-backed loans and their history, qualifications, patent-status warnings, flagged records.
//!
//! [`Profile::build`] is a pure function of the enterprise's committed attestations (as the
//! API lists them) and an "as of" date; the rules it applies are written out in
//! docs/AUDITING.md so a loan officer can check them by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use credence_ledger::ids::Date;
use credence_node::api::views::{AttestationView, ClaimView, StatusView};
use credence_node::runtime::now_ms;
use serde::Serialize;

use crate::access::{AccessArgs, ReadArgs};
use crate::profile_loans::LoanSections;
use crate::query::{self, ListArgs, OutArgs, get_json, print_table};

#[derive(Args, Debug)]
pub struct ProfileArgs {
    /// Unified social credit code (18 characters).
    uscc: String,
    /// The node's API.
    #[arg(long, default_value = query::NODE_DEFAULT)]
    node: String,
    /// Read this data directory offline instead (a stopped node's).
    #[arg(long, conflicts_with = "node")]
    data_dir: Option<std::path::PathBuf>,
    /// Judge expiry (valuations, pledge terms) as of this date, YYYY-MM-DD (default: today, UTC).
    #[arg(long)]
    as_of: Option<String>,
    /// Print one JSON object (fields in docs/AUDITING.md).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    access: AccessArgs,
    #[command(flatten)]
    read: ReadArgs,
}

/// Amounts in one currency, summed in fen.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Total {
    pub currency: String,
    pub fen: u64,
    pub amount: String,
}

/// One institution's figure for one period and category.
#[derive(Debug, Serialize)]
pub struct Figure {
    pub attester: String,
    /// Null when the amount is sealed and was not disclosed to this reader (never zero).
    pub fen: Option<u64>,
    pub currency: String,
    pub amount: Option<String>,
    /// The ledger holds only a commitment (disclosed when `fen` is set).
    pub sealed: bool,
    pub id: String,
    pub height: Option<u64>,
}

/// Attested R&D spend for one period and category, from current (not revoked, not superseded) figures.
#[derive(Debug, Serialize)]
pub struct RdLine {
    pub period: String,
    pub category: String,
    /// Distinct institutions with a current figure.
    pub institutions: usize,
    /// True when every current figure is the same amount in the same currency (false while
    /// any of them is confidential and not disclosed: `undisclosed` says how many).
    pub agree: bool,
    pub undisclosed: usize,
    pub figures: Vec<Figure>,
}

/// A patent of the enterprise with its latest unexpired valuation, if any.
#[derive(Debug, Serialize)]
pub struct PatentLine {
    pub patent: String,
    /// `None` when every valuation of it has expired (or was revoked).
    pub valuation: Option<Valuation>,
    /// True while an active pledge on it is recorded.
    pub pledged: bool,
}

#[derive(Debug, Serialize)]
pub struct Valuation {
    /// Null when sealed and not disclosed to this reader.
    pub fen: Option<u64>,
    pub currency: String,
    pub amount: Option<String>,
    pub sealed: bool,
    pub method: String,
    pub valuation_date: String,
    pub valid_until: String,
    pub appraiser: String,
    pub id: String,
}

/// An active (not released, not revoked) pledge by the enterprise.
#[derive(Debug, Serialize)]
pub struct PledgeLine {
    pub patent: String,
    pub pledgee: String,
    /// Null when sealed and not disclosed to this reader.
    pub fen: Option<u64>,
    pub currency: String,
    pub amount: Option<String>,
    pub sealed: bool,
    pub start: String,
    pub term_months: u16,
    /// The day the term ends (start plus the term).
    pub ends: String,
    /// True when `ends` is before the as-of date but no release is recorded.
    pub past_term: bool,
    pub id: String,
}

/// A record a reader should not rely on, and why.
#[derive(Debug, Serialize)]
pub struct Flag {
    pub id: String,
    pub kind: String,
    pub attester: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct Profile {
    pub enterprise: String,
    pub as_of: String,
    /// The ledger this profile was read from (`None` when built offline).
    pub height: Option<u64>,
    pub tree_size: Option<u64>,
    /// Committed attestations about the enterprise that were read.
    pub attestations: usize,
    pub rd_spend: Vec<RdLine>,
    pub patents: Vec<PatentLine>,
    /// Sum of the current valuations.
    pub portfolio_total: Vec<Total>,
    pub pledges: Vec<PledgeLine>,
    pub secured_total: Vec<Total>,
    /// Pledges released by their bank.
    pub released_pledges: usize,
    pub flagged: Vec<Flag>,
    /// Loans, qualifications and patent status (the IP-loan kinds).
    #[serde(flatten)]
    pub ip_loans: LoanSections,
    /// The query section: each logged read of the enterprise's facts, oldest first.
    pub queries: Vec<QueryLine>,
    /// Records the reader may not see, by kind (docs/ACCESS.md): read with `--purpose` under
    /// a live consent. The sections above leave them out; they are never counted as zero.
    pub withheld: BTreeMap<String, usize>,
    /// Confidential amounts not disclosed to this reader, by field (`rd-spend.amount`, …):
    /// shown as confidential and left out of the totals, never counted as zero.
    pub undisclosed: BTreeMap<String, usize>,
    /// Openings the node served that do not match the ledger's commitments (the command then
    /// exits non-zero).
    pub opening_errors: Vec<String>,
}

/// One logged read of the enterprise's facts (a query record), as in a credit report's query section.
#[derive(Debug, Serialize)]
pub struct QueryLine {
    /// When the serving node logged it (Unix ms).
    pub issued_at_ms: u64,
    /// The member whose access key read.
    pub reader: String,
    pub purpose: String,
    /// The consent read under; `None` for a regulator.
    pub consent: Option<String>,
    /// The access-key grant that signed the read.
    pub access_key: String,
    /// The member whose node served the read and signed the record.
    pub logged_by: String,
    pub read: String,
    pub id: String,
}

fn totals<'a>(items: impl Iterator<Item = (&'a str, u64)>) -> Vec<Total> {
    let mut by: BTreeMap<&str, u64> = BTreeMap::new();
    for (c, fen) in items {
        let t = by.entry(c).or_default();
        *t = t.saturating_add(fen);
    }
    by.into_iter().map(|(c, fen)| Total { currency: c.to_string(), fen, amount: decimal(fen) }).collect()
}

/// `fen` as a decimal amount with two places.
pub(crate) fn decimal(fen: u64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

/// `1234567.89` → `1,234,567.89`.
pub(crate) fn grouped(amount: &str) -> String {
    let (int, frac) = amount.split_once('.').unwrap_or((amount, ""));
    let mut out = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if frac.is_empty() { out } else { format!("{out}.{frac}") }
}

/// A decimal amount for people: `1,250,000.00 CNY`.
fn money(amount: &str, currency: &str) -> String {
    format!("{} {currency}", grouped(amount))
}

/// What a reader sees of an amount that may be sealed: the money, or that it is confidential.
pub(crate) const CONFIDENTIAL_TEXT: &str = "confidential (not disclosed)";

fn money_or(amount: Option<&str>, currency: &str) -> String {
    amount.map_or_else(|| format!("{CONFIDENTIAL_TEXT} {currency}"), |a| money(a, currency))
}

/// `start` plus `months` (day clamped to the end of the month), as YYYY-MM-DD.
fn add_months(start: &str, months: u16) -> Option<Date> {
    let d = Date::parse("start", start).ok()?;
    let total = u32::from(d.year()) * 12 + u32::from(d.month()) - 1 + u32::from(months);
    let (year, month) = (u16::try_from(total / 12).ok()?, (total % 12) as u8 + 1);
    (1..=d.day()).rev().find_map(|day| Date::new("end", year, month, day).ok())
}

fn active(a: &AttestationView) -> bool {
    a.record_status.as_deref().is_none_or(|s| s == "active")
}

impl Profile {
    /// Builds the profile of `enterprise` from its committed attestations (any order) and
    /// the records that name its loans and pledges (`refs`, by the named record's id).
    pub fn build(
        enterprise: &str,
        items: &[AttestationView],
        refs: &BTreeMap<String, Vec<AttestationView>>,
        as_of: Date,
    ) -> Profile {
        let ip_loans = LoanSections::build(enterprise, items, refs, as_of);
        let mut items: Vec<&AttestationView> = items.iter().filter(|a| a.status == "committed").collect();
        items.sort_by_key(|a| a.leaf_index);
        let as_of_s = as_of.to_string();
        let mut flagged = Vec::new();
        let flag = |flagged: &mut Vec<Flag>, a: &AttestationView, kind: &str, reason: String| {
            flagged.push(Flag { id: a.id.clone(), kind: kind.to_string(), attester: a.attester.clone(), reason });
        };

        // R&D spend: the latest figure of each (attester, period, category) is current;
        // earlier ones from the same attester are superseded.
        let mut latest: BTreeMap<(String, String, String), &AttestationView> = BTreeMap::new();
        for a in &items {
            if let ClaimView::RdSpend { enterprise: e, period, category, .. } = &a.claim {
                if e != enterprise {
                    continue;
                }
                if !active(a) {
                    flag(&mut flagged, a, "rd-spend", format!("revoked by {}", a.attester));
                    continue;
                }
                if let Some(old) = latest.insert((period.clone(), category.clone(), a.attester.clone()), a) {
                    flag(
                        &mut flagged,
                        old,
                        "rd-spend",
                        format!("superseded by a later figure from {} ({})", a.attester, a.id),
                    );
                }
            }
        }
        let mut rd: BTreeMap<(String, String), Vec<Figure>> = BTreeMap::new();
        for ((period, category, attester), a) in latest {
            if let ClaimView::RdSpend { amount, .. } = &a.claim {
                rd.entry((period, category)).or_default().push(Figure {
                    attester,
                    fen: amount.fen,
                    currency: amount.currency.clone(),
                    amount: amount.amount.clone(),
                    sealed: amount.sealed,
                    id: a.id.clone(),
                    height: a.height,
                });
            }
        }
        // Newest period first.
        let rd_spend: Vec<RdLine> = rd
            .into_iter()
            .rev()
            .map(|((period, category), figures)| {
                let undisclosed = figures.iter().filter(|f| f.fen.is_none()).count();
                let agree = undisclosed == 0
                    && figures.windows(2).all(|w| w[0].fen == w[1].fen && w[0].currency == w[1].currency);
                let institutions = figures.iter().map(|f| &f.attester).collect::<BTreeSet<_>>().len();
                RdLine { period, category, institutions, agree, undisclosed, figures }
            })
            .collect();

        // Pledges by the enterprise.
        let mut pledges = Vec::new();
        let mut pledged = BTreeSet::new();
        let mut released_pledges = 0;
        for a in &items {
            if let ClaimView::Pledge { patent, pledgor, pledgee, secured, start, term_months, .. } = &a.claim {
                if pledgor != enterprise {
                    continue;
                }
                match a.record_status.as_deref() {
                    Some("released") => released_pledges += 1,
                    Some("revoked") => flag(&mut flagged, a, "pledge", format!("revoked by {}", a.attester)),
                    _ => {
                        let ends = add_months(start, *term_months);
                        pledged.insert(patent.clone());
                        pledges.push(PledgeLine {
                            patent: patent.clone(),
                            pledgee: pledgee.clone(),
                            fen: secured.fen,
                            currency: secured.currency.clone(),
                            amount: secured.amount.clone(),
                            sealed: secured.sealed,
                            start: start.clone(),
                            term_months: *term_months,
                            ends: ends.map(|d| d.to_string()).unwrap_or_default(),
                            past_term: ends.is_some_and(|e| e < as_of),
                            id: a.id.clone(),
                        });
                    }
                }
            }
        }

        // Patent portfolio: per patent owned by the enterprise, the latest (by valuation
        // date, then ledger order) active valuation that has not expired.
        let mut portfolio: BTreeMap<String, Option<&AttestationView>> = BTreeMap::new();
        for a in &items {
            if let ClaimView::PatentValuation { patent, owner, valid_until, valuation_date, .. } = &a.claim {
                if owner != enterprise {
                    continue;
                }
                let slot = portfolio.entry(patent.clone()).or_default();
                if !active(a) {
                    flag(&mut flagged, a, "patent-valuation", format!("revoked by {}", a.attester));
                    continue;
                }
                let expired = Date::parse("valid_until", valid_until).map_or(true, |d| d < as_of);
                if expired {
                    continue;
                }
                let newer = match slot.map(|old| &old.claim) {
                    Some(ClaimView::PatentValuation { valuation_date: old, .. }) => valuation_date >= old,
                    _ => true,
                };
                if newer {
                    if let Some(old) = slot.replace(a) {
                        flag(
                            &mut flagged,
                            old,
                            "patent-valuation",
                            format!("superseded by a newer valuation ({})", a.id),
                        );
                    }
                } else {
                    flag(&mut flagged, a, "patent-valuation", "superseded by a newer valuation".to_string());
                }
            }
        }
        let patents: Vec<PatentLine> = portfolio
            .into_iter()
            .map(|(patent, v)| PatentLine {
                pledged: pledged.contains(&patent),
                valuation: v.and_then(|a| match &a.claim {
                    ClaimView::PatentValuation { value, method, valuation_date, valid_until, .. } => Some(Valuation {
                        fen: value.fen,
                        currency: value.currency.clone(),
                        amount: value.amount.clone(),
                        sealed: value.sealed,
                        method: method.clone(),
                        valuation_date: valuation_date.clone(),
                        valid_until: valid_until.clone(),
                        appraiser: a.attester.clone(),
                        id: a.id.clone(),
                    }),
                    _ => None,
                }),
                patent,
            })
            .collect();
        let portfolio_total = totals(
            patents.iter().filter_map(|p| p.valuation.as_ref()).filter_map(|v| Some((v.currency.as_str(), v.fen?))),
        );
        let secured_total = totals(pledges.iter().filter_map(|p| Some((p.currency.as_str(), p.fen?))));
        let mut undisclosed: BTreeMap<String, usize> = BTreeMap::new();
        for (field, n) in [
            ("rd-spend.amount", rd_spend.iter().map(|l| l.undisclosed).sum::<usize>()),
            (
                "patent-valuation.value",
                patents.iter().filter(|p| p.valuation.as_ref().is_some_and(|v| v.fen.is_none())).count(),
            ),
            ("pledge.secured", pledges.iter().filter(|p| p.fen.is_none()).count()),
            (
                "ip-pledge.secured",
                ip_loans
                    .loans
                    .iter()
                    .flat_map(|l| &l.collateral)
                    .filter(|c| c.secured_sealed && c.secured.is_none())
                    .count(),
            ),
        ] {
            if n > 0 {
                undisclosed.insert(field.to_string(), n);
            }
        }
        let mut withheld: BTreeMap<String, usize> = BTreeMap::new();
        let mut queries = Vec::new();
        for a in &items {
            match &a.claim {
                ClaimView::Withheld { of } => *withheld.entry(of.clone()).or_default() += 1,
                ClaimView::Query { reader, access_key, enterprise: e, purpose, consent, read, .. }
                    if e == enterprise =>
                {
                    queries.push(QueryLine {
                        issued_at_ms: a.issued_at_ms,
                        reader: reader.clone(),
                        purpose: purpose.clone(),
                        consent: consent.clone(),
                        access_key: access_key.clone(),
                        logged_by: a.attester.clone(),
                        read: read.clone(),
                        id: a.id.clone(),
                    });
                }
                _ => {}
            }
        }
        Profile {
            enterprise: enterprise.to_string(),
            as_of: as_of_s,
            height: None,
            tree_size: None,
            attestations: items.len(),
            rd_spend,
            patents,
            portfolio_total,
            pledges,
            secured_total,
            released_pledges,
            flagged,
            ip_loans,
            queries,
            withheld,
            undisclosed,
            opening_errors: Vec::new(),
        }
    }

    /// Recounts the undisclosed secured amounts of loan collateral after openings were applied.
    fn recount_collateral(&mut self) {
        let n = self
            .ip_loans
            .loans
            .iter()
            .flat_map(|l| &l.collateral)
            .filter(|c| c.secured_sealed && c.secured.is_none())
            .count();
        if n > 0 {
            self.undisclosed.insert("ip-pledge.secured".into(), n);
        } else {
            self.undisclosed.remove("ip-pledge.secured");
        }
    }

    /// What to print for an empty section of `kind`: `none_text`, or that records are withheld.
    fn empty(&self, kind: &str, none_text: &str) -> String {
        match self.withheld.get(kind) {
            Some(n) => format!(
                "  WITHHELD: {n} {kind} record(s) this reader may not see (read with --purpose under a consent)"
            ),
            None => format!("  {none_text}"),
        }
    }
}

fn total_text(t: &[Total]) -> String {
    if t.is_empty() {
        return "0.00".into();
    }
    t.iter().map(|t| money(&t.amount, &t.currency)).collect::<Vec<_>>().join(" + ")
}

/// ` + N confidential (not disclosed)` after a total that leaves them out.
fn undisclosed_text(n: Option<&usize>) -> String {
    n.map_or_else(String::new, |n| format!(" + {n} amount(s) {CONFIDENTIAL_TEXT}"))
}

fn print_human(p: &Profile) {
    let at = match (p.height, p.tree_size) {
        (Some(h), Some(n)) => format!("ledger height {h}, {n} attestations in all; "),
        _ => String::new(),
    };
    println!("Credit profile of enterprise {}", p.enterprise);
    println!("({at}as of {}; {} attestations about this enterprise)", p.as_of, p.attestations);

    if !p.withheld.is_empty() {
        let list: Vec<String> = p.withheld.iter().map(|(k, n)| format!("{n} {k}")).collect();
        println!(
            "WITHHELD from this reader: {} (docs/ACCESS.md: read with --access-key and --purpose under the enterprise's consent)",
            list.join(", ")
        );
    }

    if !p.undisclosed.is_empty() {
        let list: Vec<String> = p.undisclosed.iter().map(|(k, n)| format!("{n} {k}")).collect();
        println!(
            "CONFIDENTIAL amounts not disclosed to this reader: {} (the attester's node discloses them under a consent; docs/ACCESS.md)",
            list.join(", ")
        );
    }
    for e in &p.opening_errors {
        println!("ERROR: {e}");
    }

    println!("\nR&D spend, as attested by member institutions");
    if p.rd_spend.is_empty() {
        println!("{}", p.empty("rd-spend", "none attested"));
    } else {
        let rows: Vec<Vec<String>> = p
            .rd_spend
            .iter()
            .map(|l| {
                let figures = if l.agree || l.figures.len() == 1 {
                    money_or(l.figures[0].amount.as_deref(), &l.figures[0].currency)
                } else {
                    l.figures
                        .iter()
                        .map(|f| format!("{}: {}", f.attester, money_or(f.amount.as_deref(), &f.currency)))
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                let verdict = match (l.institutions, l.agree, l.undisclosed) {
                    (1, _, _) => "single source".to_string(),
                    (n, _, k) if k > 0 => format!("{n} ({k} confidential, agreement unknown)"),
                    (n, true, _) => format!("{n} agree"),
                    (n, false, _) => format!("{n} DISAGREE"),
                };
                let who = l.figures.iter().map(|f| f.attester.as_str()).collect::<Vec<_>>().join(", ");
                vec![l.period.clone(), l.category.clone(), figures, verdict, who]
            })
            .collect();
        indent_table(&["period", "category", "amount", "institutions", "attested by"], &rows);
    }

    println!("\nPatent portfolio (latest unexpired valuation per patent)");
    if p.patents.is_empty() {
        println!("{}", p.empty("patent-valuation", "no valuations recorded"));
    } else {
        let rows: Vec<Vec<String>> = p
            .patents
            .iter()
            .map(|l| match &l.valuation {
                Some(v) => vec![
                    l.patent.clone(),
                    money_or(v.amount.as_deref(), &v.currency),
                    v.method.clone(),
                    v.valuation_date.clone(),
                    v.valid_until.clone(),
                    v.appraiser.clone(),
                    if l.pledged { "PLEDGED".into() } else { String::new() },
                ],
                None => vec![
                    l.patent.clone(),
                    "no current valuation".into(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    if l.pledged { "PLEDGED".into() } else { String::new() },
                ],
            })
            .collect();
        indent_table(&["patent", "value", "method", "valued on", "valid until", "appraiser", "pledge"], &rows);
        let valued = p.patents.iter().filter(|l| l.valuation.is_some()).count();
        println!(
            "  total: {}{} ({valued} of {} patents with a current valuation)",
            total_text(&p.portfolio_total),
            undisclosed_text(p.undisclosed.get("patent-valuation.value")),
            p.patents.len()
        );
    }

    println!("\nActive pledges");
    if p.pledges.is_empty() {
        println!("{}", p.empty("pledge", "none"));
    } else {
        let rows: Vec<Vec<String>> = p
            .pledges
            .iter()
            .map(|l| {
                vec![
                    l.patent.clone(),
                    l.pledgee.clone(),
                    money_or(l.amount.as_deref(), &l.currency),
                    l.start.clone(),
                    format!("{} months", l.term_months),
                    if l.past_term { format!("{} (PAST TERM, not released)", l.ends) } else { l.ends.clone() },
                ]
            })
            .collect();
        indent_table(&["patent", "bank", "secured", "start", "term", "ends"], &rows);
        println!(
            "  total secured: {}{}",
            total_text(&p.secured_total),
            undisclosed_text(p.undisclosed.get("pledge.secured"))
        );
    }
    if p.released_pledges > 0 {
        println!("  ({} earlier pledge(s) released)", p.released_pledges);
    }

    print_loans(&p.ip_loans);

    println!("\nFlagged records (revoked or superseded: do not rely on these)");
    if p.flagged.is_empty() {
        println!("  none");
    } else {
        let rows: Vec<Vec<String>> = p
            .flagged
            .iter()
            .map(|f| vec![f.id[..16].to_string(), f.kind.clone(), f.attester.clone(), f.reason.clone()])
            .collect();
        indent_table(&["id", "kind", "attester", "reason"], &rows);
    }

    println!("\nQuery history (each read of this enterprise's facts, logged on the ledger)");
    if p.queries.is_empty() {
        println!("{}", p.empty("query", "none"));
    } else {
        let rows: Vec<Vec<String>> = p
            .queries
            .iter()
            .map(|q| {
                let when = Date::from_unix_ms(q.issued_at_ms).map(|d| d.to_string()).unwrap_or_default();
                let short = |s: &str| s.get(..16).unwrap_or(s).to_string();
                let consent = q.consent.as_deref().map_or("none (regulator)".to_string(), short);
                vec![when, q.reader.clone(), q.purpose.clone(), consent, short(&q.access_key), q.logged_by.clone()]
            })
            .collect();
        indent_table(&["date", "reader", "purpose", "consent", "access key", "logged by"], &rows);
    }
}

fn short(id: &str) -> &str {
    id.get(..16).unwrap_or(id)
}

fn percent(bp: u64) -> String {
    format!("{}.{:02} %", bp / 100, bp % 100)
}

fn print_loans(s: &LoanSections) {
    println!("\nIP-backed loans (two-stage pledges; class is the five-category classification)");
    if s.loans.is_empty() {
        println!("  none");
    } else {
        let rows: Vec<Vec<String>> = s
            .loans
            .iter()
            .map(|l| {
                vec![
                    short(&l.id).to_string(),
                    l.lender.clone(),
                    money(&l.principal.amount, &l.principal.currency),
                    money(&l.outstanding.amount, &l.outstanding.currency),
                    format!("{} → {}", l.start, l.maturity),
                    l.class.clone(),
                    l.ltv_bp.map_or_else(|| "n/a".into(), percent),
                    l.status.to_uppercase(),
                ]
            })
            .collect();
        indent_table(&["loan", "lender", "principal", "outstanding", "term", "class", "LTV", "status"], &rows);
        println!("  total outstanding: {}", total_text(&s.loans_outstanding));
        for l in &s.loans {
            println!(
                "\n  loan {} ({} % a year{}):",
                short(&l.id),
                percent(u64::from(l.rate_bp)).trim_end_matches(" %"),
                l.guarantee.as_ref().map_or_else(String::new, |g| format!(", guaranteed: {g}"))
            );
            for c in &l.collateral {
                println!(
                    "    pledge {} of {}: secures {} ({} bp of the principal), {}; appraised {}{}",
                    short(&c.pledge),
                    c.patent.as_deref().unwrap_or("?"),
                    match (&c.secured, c.secured_sealed) {
                        (Some(t), _) => money(&t.amount, &t.currency),
                        (None, true) => CONFIDENTIAL_TEXT.into(),
                        (None, false) => "?".into(),
                    },
                    c.share_bp,
                    c.pledge_status,
                    c.appraised
                        .as_ref()
                        .map_or_else(|| "(appraisal not found)".into(), |t| money(&t.amount, &t.currency)),
                    c.appraisal_valid_until.as_ref().map_or_else(String::new, |d| format!(
                        " ({}, valid until {d})",
                        c.method.as_deref().unwrap_or("")
                    ))
                );
            }
            println!(
                "    pledged vs appraised: {} of {} appraised → LTV {}",
                money(&l.principal.amount, &l.principal.currency),
                money(&l.appraised.amount, &l.appraised.currency),
                l.ltv_bp.map_or_else(|| "n/a".into(), percent)
            );
            println!(
                "    repaid {} principal and {} interest; recovered {}",
                money(&l.repaid_principal.amount, &l.repaid_principal.currency),
                money(&l.interest_paid.amount, &l.interest_paid.currency),
                money(&l.recovered.amount, &l.recovered.currency)
            );
            let history: Vec<String> =
                l.classifications.iter().map(|c| format!("{} {} ({} d)", c.date, c.class, c.days_overdue)).collect();
            println!(
                "    classification: {}",
                if history.is_empty() { "none recorded (正常 normal)".into() } else { history.join("; ") }
            );
            let overdue: Vec<String> =
                l.overdue.iter().map(|o| format!("{} {} d ({})", o.date, o.days_overdue, o.event)).collect();
            println!(
                "    overdue: {}",
                if overdue.is_empty() {
                    "never".into()
                } else {
                    format!("{} (worst {} days)", overdue.join("; "), l.max_days_overdue)
                }
            );
            if let Some(d) = &l.default {
                println!(
                    "    DEFAULT on {}: {} principal {} days overdue",
                    d.date,
                    money(&d.overdue_principal.amount, &d.overdue_principal.currency),
                    d.days_overdue
                );
            }
            for p in &l.pool {
                println!(
                    "    risk pool {}: {} on {}{}",
                    short(&p.pool),
                    p.event,
                    p.date,
                    p.amount.as_ref().map_or_else(String::new, |t| format!(", {}", money(&t.amount, &t.currency)))
                );
            }
        }
    }

    println!("\nQualifications");
    if s.qualifications.is_empty() {
        println!("  none recorded");
    } else {
        let rows: Vec<Vec<String>> = s
            .qualifications
            .iter()
            .map(|q| {
                vec![
                    q.kind.clone(),
                    q.number.clone(),
                    format!("{} → {}", q.valid_from, q.valid_until),
                    if q.current { "current".into() } else { "NOT CURRENT".into() },
                    q.attester.clone(),
                ]
            })
            .collect();
        indent_table(&["kind", "number", "valid", "as of today", "attested by"], &rows);
    }

    println!("\nPatent status (latest record per patent)");
    if s.patent_status.is_empty() {
        println!("  none recorded");
    } else {
        let rows: Vec<Vec<String>> = s
            .patent_status
            .iter()
            .map(|p| {
                vec![
                    p.patent.clone(),
                    p.as_of.clone(),
                    p.grant.clone().unwrap_or_else(|| "pending".into()),
                    p.expires.clone(),
                    p.fees_paid_until.clone().unwrap_or_else(|| "-".into()),
                    if p.warnings.is_empty() { "ok".into() } else { format!("WARNING: {}", p.warnings.join("; ")) },
                ]
            })
            .collect();
        indent_table(&["patent", "as of", "grant", "expires", "fees paid to", "warnings"], &rows);
    }
    if !s.undecodable.is_empty() {
        println!(
            "\n  {} item(s) did not decode to their id and were ignored: {}",
            s.undecodable.len(),
            s.undecodable.join(", ")
        );
    }
}

fn indent_table(header: &[&str], rows: &[Vec<String>]) {
    let mut h = vec![" "];
    h.extend_from_slice(header);
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut v = vec![String::new()];
            v.extend(r.iter().cloned());
            v
        })
        .collect();
    print_table(&h, &rows);
}

pub fn run(a: &ProfileArgs) -> Result<ExitCode> {
    let as_of = match &a.as_of {
        Some(s) => Date::parse("--as-of", s)?,
        None => Date::from_unix_ms(now_ms())?,
    };
    let (url, _local) = crate::local::endpoint(&a.node, a.data_dir.as_deref())?;
    let mut conn = a.access.connect(&url)?;
    let status: StatusView = get_json(&mut conn, "/v1/status")?;
    let list = ListArgs {
        out: OutArgs { node: url.clone(), data_dir: None, json: false, csv: false, access: a.access.clone() },
        // Read only up to the head seen above, so the profile is of one ledger state.
        to_height: Some(status.height),
        from_height: None,
        since: None,
        until: None,
        limit: 0,
        all: true,
        after: None,
    };
    let read = a.read.query()?;
    let path = format!("/v1/enterprises/{}/attestations", query::seg(&a.uscc));
    let (items, _) = query::fetch_list(&mut conn, &path, &list, &read)?;
    // The histories of the enterprise's loans and two-stage pledges: the records naming them.
    let mut refs = BTreeMap::new();
    for i in &items {
        if i.status == "committed" && matches!(i.claim, ClaimView::Loan { .. } | ClaimView::IpPledge { .. }) {
            let path = format!("/v1/attestations/{}/references", query::seg(&i.id));
            refs.insert(i.id.clone(), query::fetch_list(&mut conn, &path, &list, &read)?.0);
        }
    }
    // Confidential amounts: fetch their openings and check each against its leaf.
    let disclosures = crate::openings::fetch(&mut conn, items.iter().chain(refs.values().flatten()), &read)?;
    let mut items = items;
    disclosures.apply(&mut items);
    let mut p = Profile::build(&a.uscc, &items, &refs, as_of);
    p.ip_loans.open_collateral(&disclosures);
    p.recount_collateral();
    p.opening_errors = disclosures.wrong();
    p.height = Some(status.height);
    p.tree_size = Some(status.tree_size);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&p)?);
    } else {
        print_human(&p);
    }
    if !p.opening_errors.is_empty() {
        eprintln!(
            "credence profile: {} opening(s) do not match the ledger's commitments; do not rely on this node",
            p.opening_errors.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use credence_node::api::views::AmountView;

    const E: &str = "914403001922038216";

    /// Whole yuan in fen.
    fn yuan(n: u64) -> u64 {
        n * 100
    }

    fn money(fen: u64) -> AmountView {
        AmountView {
            fen: Some(fen),
            currency: "CNY".into(),
            amount: Some(decimal(fen)),
            sealed: false,
            commitment: None,
            disclosed: false,
        }
    }

    /// A sealed amount not disclosed to the reader.
    fn sealed() -> AmountView {
        AmountView {
            fen: None,
            currency: "CNY".into(),
            amount: None,
            sealed: true,
            commitment: Some("ab".repeat(32)),
            disclosed: false,
        }
    }

    fn view(leaf: u64, attester: &str, status: &str, claim: ClaimView) -> AttestationView {
        AttestationView {
            id: format!("{leaf:064x}"),
            status: "committed".into(),
            held: None,
            height: Some(leaf + 1),
            leaf_index: Some(leaf),
            record_status: Some(status.into()),
            attester: attester.into(),
            sequence: leaf + 1,
            issued_at_ms: 0,
            claim,
            signature: None,
            attestation: None,
        }
    }

    fn rd(period: &str, fen: u64) -> ClaimView {
        ClaimView::RdSpend {
            enterprise: E.into(),
            period: period.into(),
            amount: money(fen),
            category: "total".into(),
            evidence: String::new(),
        }
    }

    fn valuation(patent: &str, fen: u64, date: &str, until: &str) -> ClaimView {
        ClaimView::PatentValuation {
            patent: patent.into(),
            owner: E.into(),
            value: money(fen),
            method: "income".into(),
            valuation_date: date.into(),
            valid_until: until.into(),
            evidence: String::new(),
        }
    }

    fn pledge(patent: &str, fen: u64, start: &str, months: u16) -> ClaimView {
        ClaimView::Pledge {
            patent: patent.into(),
            pledgor: E.into(),
            pledgee: "bank-b".into(),
            secured: money(fen),
            start: start.into(),
            term_months: months,
            evidence: String::new(),
        }
    }

    #[test]
    fn agreement_supersession_portfolio_and_pledges() {
        let items = vec![
            view(0, "audit-a", "active", rd("2024", yuan(100))),
            view(1, "audit-b", "active", rd("2024", yuan(100))),
            view(2, "audit-a", "active", rd("2023", yuan(50))),
            view(3, "audit-b", "active", rd("2023", yuan(60))),
            // audit-a corrects its 2023 figure: the old one is superseded, the two now agree.
            view(4, "audit-a", "active", rd("2023", yuan(60))),
            view(5, "audit-c", "revoked", rd("2022", 1)),
            view(6, "appraiser", "active", valuation("CN1", yuan(1_000), "2025-01-01", "2026-12-31")),
            view(7, "appraiser", "active", valuation("CN1", yuan(2_000), "2025-06-01", "2026-12-31")),
            view(8, "appraiser", "active", valuation("CN2", yuan(5_000), "2024-01-01", "2025-01-01")),
            view(9, "bank-b", "active", pledge("CN1", yuan(700), "2025-01-31", 13)),
            view(10, "bank-b", "released", pledge("CN2", 1, "2024-01-01", 12)),
        ];
        let as_of = Date::parse("as_of", "2026-03-01").unwrap();
        let p = Profile::build(E, &items, &BTreeMap::new(), as_of);

        assert_eq!(p.rd_spend.len(), 2);
        let y2024 = &p.rd_spend[0];
        assert_eq!((y2024.period.as_str(), y2024.institutions, y2024.agree), ("2024", 2, true));
        let y2023 = &p.rd_spend[1];
        assert_eq!((y2023.period.as_str(), y2023.institutions, y2023.agree), ("2023", 2, true));
        assert!(y2023.figures.iter().all(|f| f.fen == Some(yuan(60))));

        // CN1: the newer valuation counts; CN2: expired, so no current valuation.
        assert_eq!(p.patents.len(), 2);
        assert_eq!(p.patents[0].valuation.as_ref().and_then(|v| v.fen), Some(yuan(2_000)));
        assert!(p.patents[0].pledged);
        assert!(p.patents[1].valuation.is_none());
        assert_eq!(
            p.portfolio_total,
            vec![Total { currency: "CNY".into(), fen: yuan(2_000), amount: "2000.00".into() }]
        );

        // One active pledge, ending on the last day of February 2026: past its term on 2026-03-01.
        assert_eq!(p.pledges.len(), 1);
        assert_eq!(p.pledges[0].ends, "2026-02-28");
        assert!(p.pledges[0].past_term);
        assert_eq!(p.released_pledges, 1);

        let reasons: Vec<(&str, &str)> = p.flagged.iter().map(|f| (f.id.as_str(), f.reason.as_str())).collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(reasons.iter().any(|(id, r)| id.ends_with("02") && r.starts_with("superseded")));
        assert!(reasons.iter().any(|(id, r)| id.ends_with("05") && r.starts_with("revoked")));
        assert!(reasons.iter().any(|(id, r)| id.ends_with("06") && r.starts_with("superseded by a newer valuation")));
    }

    #[test]
    fn disagreeing_institutions_are_reported() {
        let items = vec![
            view(0, "audit-a", "active", rd("2024", yuan(100))),
            view(1, "audit-b", "active", rd("2024", yuan(90))),
        ];
        let p = Profile::build(E, &items, &BTreeMap::new(), Date::parse("as_of", "2025-01-01").unwrap());
        assert!(!p.rd_spend[0].agree);
        assert_eq!(p.rd_spend[0].institutions, 2);
    }

    #[test]
    fn confidential_amounts_are_never_counted_as_zero() {
        let mut secret_rd = rd("2024", 0);
        if let ClaimView::RdSpend { amount, .. } = &mut secret_rd {
            *amount = sealed();
        }
        let mut secret_pledge = pledge("CN1", 0, "2025-01-01", 24);
        if let ClaimView::Pledge { secured, .. } = &mut secret_pledge {
            *secured = sealed();
        }
        let items = vec![
            view(0, "audit-a", "active", rd("2024", yuan(100))),
            view(1, "audit-b", "active", secret_rd),
            view(2, "bank-b", "active", pledge("CN2", yuan(300), "2025-01-01", 24)),
            view(3, "bank-b", "active", secret_pledge),
        ];
        let p = Profile::build(E, &items, &BTreeMap::new(), Date::parse("as_of", "2025-06-01").unwrap());
        let line = &p.rd_spend[0];
        assert_eq!((line.institutions, line.agree, line.undisclosed), (2, false, 1));
        assert_eq!(line.figures.iter().filter(|f| f.fen.is_none() && f.sealed).count(), 1);
        // The total holds only the disclosed pledge; the sealed one is counted apart.
        assert_eq!(p.secured_total, vec![Total { currency: "CNY".into(), fen: yuan(300), amount: "300.00".into() }]);
        assert_eq!(p.undisclosed.get("pledge.secured"), Some(&1));
        assert_eq!(p.undisclosed.get("rd-spend.amount"), Some(&1));
        assert_eq!(money_or(None, "CNY"), "confidential (not disclosed) CNY");
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["pledges"][1]["fen"], serde_json::Value::Null);
        assert_eq!(json["pledges"][1]["sealed"], true);
    }

    #[test]
    fn amounts_are_grouped_by_thousands() {
        assert_eq!(grouped("1250000.00"), "1,250,000.00");
        assert_eq!(grouped("999.50"), "999.50");
        assert_eq!(grouped("1000"), "1,000");
    }
}
