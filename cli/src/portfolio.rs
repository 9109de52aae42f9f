//! `credence portfolio`: a regulator's or a pool's figures per lender and overall, streamed from a node's data directory.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use credence_ledger::ids::{Currency, Money};
use credence_ledger::portfolio::{Figures, LTV_BUCKETS_BP, Portfolio};
use credence_ledger::store::Store;

#[derive(Debug, Args)]
pub struct PortfolioArgs {
    /// A node's data directory (genesis.toml and the store).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Also list every IP-pledge loan with the records its figures come from.
    #[arg(long)]
    pub loans: bool,
}

fn cny(fen: u64) -> Money {
    Money { fen, currency: Currency::CNY }
}

fn line(who: &str, f: &Figures) {
    let buckets: Vec<String> = f.ltv.iter().map(u64::to_string).collect();
    println!(
        "{who:<24} {:>6} loans  outstanding {:>22}  bad {:>22}  bad ratio {:>3}.{:02} %  LTV buckets {}",
        f.loans,
        cny(f.outstanding_fen).to_string(),
        cny(f.bad_fen).to_string(),
        f.bad_ratio_bp() / 100,
        f.bad_ratio_bp() % 100,
        buckets.join("/")
    );
}

pub fn run(a: &PortfolioArgs) -> Result<ExitCode> {
    let (_, store) = crate::chain::load_data_dir(&a.data_dir)?;
    let size = store.head()?.map_or(0, |h| h.tree_size);
    let mut p = Portfolio::default();
    for i in 0..size {
        let leaf = store.leaf(i)?.with_context(|| format!("leaf {i} is missing from the store"))?;
        p.add(leaf.id, &leaf.attestation.body.claim);
    }
    let (all, by) = p.figures();
    println!("IP-pledge loans (CNY) over {size} records; LTV buckets < {:?} bp and above:", LTV_BUCKETS_BP);
    for (lender, f) in &by {
        line(lender.as_str(), f);
    }
    line("all lenders", &all);
    for (id, f) in p.pools() {
        println!(
            "pool '{}' ({id}): {} loans enrolled, exposure {}, claimed {}, paid {} in {} payments",
            f.name,
            f.enrolled,
            cny(f.exposure_fen),
            cny(f.claimed_fen),
            cny(f.paid_fen),
            f.payments.len()
        );
    }
    if p.other_currency_loans > 0 {
        println!("{} loans in other currencies are not summed", p.other_currency_loans);
    }
    if a.loans {
        for l in p.loans() {
            println!(
                "loan {} {} outstanding {} {} (from {}) LTV {} appraisals {:?}",
                l.loan,
                l.lender,
                cny(l.outstanding_fen),
                l.class.name(),
                l.class_record,
                l.ltv_bp().map_or_else(|| "n/a".to_owned(), |b| format!("{}.{:02} %", b / 100, b % 100)),
                l.appraisals.iter().map(|a| a.to_string()).collect::<Vec<_>>()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
