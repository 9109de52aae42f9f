//! `credence portfolio`: a regulator's or a pool's figures per lender and overall, streamed from a node's data directory or read from its API (`GET /v1/portfolio`).
//!
//! Both paths run `credence_ledger::portfolio` and render the same
//! [`PortfolioView`], so the figures of a store and of the node serving it are equal
//! (tests/portfolio.rs checks it on real processes).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use credence_ledger::portfolio::Portfolio;
use credence_ledger::store::Store;
use credence_node::api::views::{FiguresView, MoneyView, MonthFiguresView, PortfolioView, SeriesView};

use crate::query;

/// Loan lines asked for per request when listing them from a node.
const LOANS_PAGE: usize = 1000;
/// Month ends the human table shows (the latest; `--json` has the whole series).
const TABLE_MONTHS: usize = 24;

#[derive(Debug, Args)]
pub struct PortfolioArgs {
    /// A stopped node's data directory (genesis.toml and the store), read offline.
    #[arg(long, conflicts_with = "node")]
    pub data_dir: Option<PathBuf>,
    /// A node's API (default http://127.0.0.1:8080 when no --data-dir is given).
    #[arg(long)]
    pub node: Option<String>,
    /// Only this lender's figures, loans and month-end series (a member name); the overall line stays.
    #[arg(long)]
    pub lender: Option<String>,
    /// Also list every IP-pledge loan with the records its figures come from.
    #[arg(long)]
    pub loans: bool,
    /// Print the figures as one JSON object (the API's `PortfolioView`).
    #[arg(long)]
    pub json: bool,
    /// With --node: the portfolio holds many enterprises' facts, so the node serves it only
    /// to an access key with the regulator scope (docs/ACCESS.md).
    #[command(flatten)]
    pub access: crate::access::AccessArgs,
}

fn money(m: &MoneyView) -> String {
    format!("{} {}", crate::profile::grouped(&m.amount), m.currency)
}

fn percent(bp: u64) -> String {
    format!("{}.{:02} %", bp / 100, bp % 100)
}

fn line(who: &str, f: &FiguresView) {
    let buckets: Vec<String> = f.ltv_buckets.iter().map(u64::to_string).collect();
    println!(
        "{who:<24} {:>6} loans  outstanding {:>22}  bad {:>20}  bad ratio {:>7}  LTV buckets {}",
        f.loans,
        money(&f.outstanding),
        money(&f.bad),
        percent(f.bad_ratio_bp),
        buckets.join("/")
    );
}

fn month_line(m: &MonthFiguresView) {
    println!(
        "  {}  {:>6} loans  outstanding {:>22}  bad {:>20}  bad ratio {:>7}",
        m.as_of,
        m.loans,
        money(&m.outstanding),
        money(&m.bad),
        percent(m.bad_ratio_bp)
    );
}

/// The latest [`TABLE_MONTHS`] month ends of the series (and of the lender asked for), saying what is left out.
fn series_table(s: &SeriesView) {
    if s.overall.is_empty() {
        println!("bad-loan ratio by month end: no IP-pledge loan yet");
        return;
    }
    let shown = s.overall.len().min(TABLE_MONTHS);
    let before = (s.overall.len() - shown) as u64;
    let first = &s.overall[s.overall.len() - shown].month;
    let last = &s.overall[s.overall.len() - 1].month;
    let mut note = format!("{shown} month ends {first}..{last}, by the records' business dates");
    if before > 0 {
        note.push_str(&format!("; {before} earlier in --json"));
    }
    if s.months_omitted > 0 {
        note.push_str(&format!(
            "; {} earlier still left out (a series keeps at most {} months)",
            s.months_omitted, s.months_max
        ));
    }
    println!("bad-loan ratio by month end, all lenders ({note}):");
    for m in &s.overall[s.overall.len() - shown..] {
        month_line(m);
    }
    for l in &s.lenders {
        println!("bad-loan ratio by month end, {}:", l.lender);
        for m in &l.months[l.months.len().saturating_sub(shown)..] {
            month_line(m);
        }
    }
}

/// The figures of a data directory's store, with every loan line when `loans`.
fn from_store(dir: &std::path::Path, lender: Option<&str>, loans: bool) -> Result<PortfolioView> {
    let (genesis, store) = crate::chain::load_data_dir(dir)?;
    // Lenders are genesis members or members governance added (removed ones keep their loans).
    let gov = credence_ledger::rules::StateView::governance(&store)?.unwrap_or_else(|| genesis.governance());
    if let Some(l) = lender
        && !gov.members.iter().any(|m| m.name.as_str() == l)
    {
        bail!("--lender: '{l}' is not a member of this consortium");
    }
    let head = store.head()?;
    let size = head.map_or(0, |h| h.tree_size);
    let mut p = Portfolio::default();
    credence_ledger::store::for_each_leaf(&store, 0, size, |_, leaf| p.add(leaf.id, &leaf.attestation.body.claim))?;
    let limit = if loans { usize::MAX } else { 0 };
    Ok(PortfolioView::of(&p, head.map_or(0, |h| h.height), size, lender, None, limit))
}

/// The figures from a node's API, paging through the loan lines when `loans`.
fn from_node(
    url: &str,
    access: &crate::access::AccessArgs,
    lender: Option<&str>,
    loans: bool,
) -> Result<PortfolioView> {
    let mut conn = access.connect(url)?;
    let base = match lender {
        Some(l) => format!("/v1/portfolio?lender={}", query::seg(l)),
        None => "/v1/portfolio".to_owned(),
    };
    let sep = if lender.is_some() { '&' } else { '?' };
    if !loans {
        return query::get_json(&mut conn, &base);
    }
    let mut view: PortfolioView = query::get_json(&mut conn, &format!("{base}{sep}loans_limit={LOANS_PAGE}"))?;
    let mut lines = view.loans.take().unwrap_or_default();
    while let Some(after) = view.loans_next_after.take() {
        let path = format!("{base}{sep}loans_limit={LOANS_PAGE}&loans_after={after}");
        let page: PortfolioView = query::get_json(&mut conn, &path)?;
        // Later pages must describe the same figures, or the listing would mix two states. The
        // ledger itself grows between pages (the node logs each page's read as query records),
        // so the pages compare the records behind the figures, not the height.
        if page.records != view.records {
            bail!(
                "the node's loan records changed while listing loans ({} → {} records at height {} → {}); run again",
                view.records,
                page.records,
                view.height,
                page.height
            );
        }
        lines.extend(page.loans.unwrap_or_default());
        view.loans_next_after = page.loans_next_after;
    }
    view.loans = Some(lines);
    Ok(view)
}

pub fn run(a: &PortfolioArgs) -> Result<ExitCode> {
    let lender = a.lender.as_deref();
    let view = match &a.data_dir {
        Some(dir) => from_store(dir, lender, a.loans)?,
        None => from_node(a.node.as_deref().unwrap_or(query::NODE_DEFAULT), &a.access, lender, a.loans)?,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "IP-pledge loans (CNY) at height {} ({} records); bad = 次级+可疑+损失; LTV buckets < {:?} bp and above:",
        view.height, view.tree_size, view.ltv_bounds_bp
    );
    for l in &view.lenders {
        line(&l.lender, &l.figures);
    }
    line("all lenders", &view.overall);
    for p in &view.pools {
        println!(
            "pool '{}' ({}): {} loans enrolled, exposure {}, claimed {} in {} claims, paid {} in {} payments",
            p.name,
            p.pool,
            p.enrolled,
            money(&p.exposure),
            money(&p.claimed),
            p.claims.len(),
            money(&p.paid),
            p.payments.len()
        );
    }
    series_table(&view.series);
    if view.other_currency_loans > 0 {
        println!("{} loans in other currencies are not summed", view.other_currency_loans);
    }
    for l in view.loans.iter().flatten() {
        println!(
            "loan {} {} outstanding {} {} (from {}) LTV {} appraisals {}",
            l.loan,
            l.lender,
            money(&l.outstanding),
            l.class,
            l.class_record,
            l.ltv_bp.map_or_else(|| "n/a".to_owned(), |b| percent(u64::from(b))),
            l.appraisals.join(",")
        );
    }
    Ok(ExitCode::SUCCESS)
}
