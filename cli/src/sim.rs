//! `credence sim`: run the deterministic consensus simulator over many seeds (or one) and report every invariant violation.

use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Result, bail};
use clap::Args;
use credence_node::sim::{self, SimConfig, SimReport};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

#[derive(Args, Debug)]
pub struct SimArgs {
    /// How many consecutive seeds to run, from --first-seed.
    #[arg(long, default_value_t = 100, conflicts_with = "seed")]
    seeds: u64,
    /// The first seed of the campaign.
    #[arg(long, default_value_t = 0, conflicts_with = "seed")]
    first_seed: u64,
    /// Run exactly this seed (a failing run prints its seed; this reproduces it).
    #[arg(long)]
    seed: Option<u64>,
    /// Validators in the simulated genesis.
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Heights every honest node must commit.
    #[arg(long, default_value_t = 50)]
    heights: u64,
    /// Byzantine validators (at most f = (n − 1) / 3), each of a kind drawn by the seed: equivocating, proposing invalid blocks, silent, a wrong clock (seconds or ten years ahead, saturated, behind), relaying tampered proposals, or flooding sync.
    #[arg(long, default_value_t = 0)]
    byzantine: usize,
    /// Worker threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Change the validator set by governance during each run (4 → 5 → 7 → 4 by real governance records, naming two outside witnesses and retiring one; needs --validators 4).
    #[arg(long)]
    governance: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &SimArgs) -> Result<ExitCode> {
    let (first, count) = match args.seed {
        Some(s) => (s, 1),
        None => (args.first_seed, args.seeds),
    };
    if count == 0 {
        bail!("--seeds must be at least 1");
    }
    let config = |seed| SimConfig {
        governance: args.governance,
        ..SimConfig::new(seed, args.validators, args.heights, args.byzantine)
    };
    config(first).check()?;
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let progress = if args.json || count == 1 {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(count);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} seeds, {per_sec}, eta {eta} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    };
    let started = Instant::now();
    let next = AtomicU64::new(0);
    let reports = Mutex::new(Vec::with_capacity(usize::try_from(count).unwrap_or(0)));
    let failed = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads.min(usize::try_from(count).unwrap_or(usize::MAX)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let Ok(report) = sim::run(&config(first + i)) else { continue };
                    if !report.ok() {
                        let f = failed.fetch_add(1, Ordering::Relaxed) + 1;
                        progress.set_message(format!("{f} failed"));
                    }
                    progress.inc(1);
                    if let Ok(mut r) = reports.lock() {
                        r.push(report);
                    }
                }
            });
        }
    });
    progress.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let mut reports = reports.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    reports.sort_by_key(|r| r.seed);
    print_summary(args, &reports, seconds);
    let violations = reports.iter().any(|r| !r.ok());
    Ok(if violations { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn reproduce(args: &SimArgs, r: &SimReport) -> String {
    format!(
        "credence sim --seed {} --validators {} --heights {} --byzantine {}",
        r.seed, args.validators, args.heights, args.byzantine
    )
}

fn print_summary(args: &SimArgs, reports: &[SimReport], seconds: f64) {
    let safety: usize = reports.iter().map(|r| r.safety_violations.len()).sum();
    let liveness: usize = reports.iter().map(|r| r.liveness_failures.len()).sum();
    let heights: u64 = reports.iter().map(|r| r.heights_committed).sum();
    let sum = |f: fn(&SimReport) -> u64| -> u64 { reports.iter().map(f).sum() };
    let evidence = sum(|r| r.stats.evidence_committed);
    let crashes = sum(|r| r.stats.crashes);
    let partitions = sum(|r| r.stats.partitions);
    let refused = sum(|r| r.stats.refused_signatures);
    let max_round = reports.iter().map(|r| r.stats.max_round).max().unwrap_or(0);
    let failures: Vec<&SimReport> = reports.iter().filter(|r| !r.ok()).collect();
    let single = (reports.len() == 1).then(|| &reports[0]);
    if args.json {
        let mut out = json!({
            "seeds_run": reports.len(),
            "validators": args.validators,
            "byzantine": args.byzantine,
            "heights": args.heights,
            "safety_violations": safety,
            "liveness_failures": liveness,
            "heights_committed": heights,
            "evidence_committed": evidence,
            "crashes": crashes,
            "partitions": partitions,
            "refused_signatures": refused,
            "max_round": max_round,
            "seconds": seconds,
            "failures": failures.iter().map(|r| json!({
                "seed": r.seed,
                "safety_violations": r.safety_violations,
                "liveness_failures": r.liveness_failures,
                "reproduce": reproduce(args, r),
            })).collect::<Vec<_>>(),
        });
        if let Some(r) = single {
            out["seed"] = json!(r.seed);
            out["final_state_hash"] = json!(r.final_state_hash.to_hex());
            out["byzantine_kinds"] = json!(r.byzantine);
            out["virtual_ms"] = json!(r.virtual_ms);
            out["events"] = json!(r.events);
        }
        println!("{out}");
        return;
    }
    if let Some(r) = single {
        println!(
            "seed {}: {} validators ({} byzantine: {}), {} of {} heights committed by every honest node",
            r.seed,
            r.validators,
            r.byzantine.len(),
            if r.byzantine.is_empty() { "none".to_owned() } else { r.byzantine.join(", ") },
            r.heights_committed,
            r.heights_target
        );
        println!(
            "  {} events over {:.1} s of virtual time; {} messages ({} dropped), {} crashes, {} partitions, max round {}",
            r.events,
            r.virtual_ms as f64 / 1000.0,
            r.stats.messages_sent,
            r.stats.messages_dropped,
            r.stats.crashes,
            r.stats.partitions,
            r.stats.max_round
        );
        println!("  final state hash {}", r.final_state_hash);
    } else {
        println!(
            "{} seeds × {} heights, {} validators ({} byzantine) in {seconds:.1} s: {heights} heights committed, \
             {evidence} evidence records, {crashes} crashes, {partitions} partitions, {refused} signatures refused \
             after restarts, max round {max_round}",
            reports.len(),
            args.heights,
            args.validators,
            args.byzantine
        );
    }
    for r in &failures {
        println!("FAILED seed {}: reproduce with `{}`", r.seed, reproduce(args, r));
        for v in r.safety_violations.iter().chain(&r.liveness_failures) {
            println!("  {v}");
        }
    }
    println!("safety violations: {safety}, liveness failures: {liveness}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(seed: Option<u64>, seeds: u64, validators: usize, byzantine: usize) -> SimArgs {
        SimArgs {
            seeds,
            first_seed: 0,
            seed,
            validators,
            heights: 5,
            byzantine,
            threads: Some(1),
            governance: false,
            json: true,
        }
    }

    #[test]
    fn clean_runs_exit_zero_and_bad_arguments_are_errors() {
        assert_eq!(run(&args(Some(3), 1, 4, 1)).unwrap(), ExitCode::SUCCESS);
        assert_eq!(run(&args(None, 2, 1, 0)).unwrap(), ExitCode::SUCCESS);
        assert!(run(&args(None, 2, 4, 2)).is_err(), "f = 1 for 4 validators");
        assert!(run(&args(None, 0, 4, 0)).is_err());
    }
}
