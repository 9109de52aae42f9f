//! Simulator tests: determinism, each byzantine behaviour, crashes and restarts, and the CI campaign of 1,000 seeds.
// The campaign reports its own wall time; the crate under test never reads a clock.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::time::{Duration, Instant};

use credence_consensus::sim::{self, Behaviour, SimConfig, SimReport};

/// How to reproduce a failing run exactly.
fn repro(r: &SimReport) -> String {
    let governance = if r.governance.is_some() { " --governance" } else { "" };
    format!(
        "seed {} failed: {:?} {:?}\n  reproduce: credence sim --seed {} --validators {} --heights {} --byzantine {}{governance}",
        r.seed,
        r.safety_violations,
        r.liveness_failures,
        r.seed,
        r.validators,
        r.heights_target,
        r.byzantine.len()
    )
}

fn run(cfg: &SimConfig) -> SimReport {
    let r = sim::run(cfg).unwrap();
    assert!(r.ok(), "{}", repro(&r));
    assert!(r.heights_committed >= cfg.heights);
    r
}

#[test]
fn the_same_seed_gives_the_same_final_state() {
    for (n, b) in [(4, 1), (7, 2)] {
        let a = run(&SimConfig::new(42, n, 20, b));
        let again = run(&SimConfig::new(42, n, 20, b));
        assert_eq!(a.final_state_hash, again.final_state_hash);
        assert_eq!((a.events, a.virtual_ms), (again.events, again.virtual_ms));
        let other = run(&SimConfig::new(43, n, 20, b));
        assert_ne!(a.final_state_hash, other.final_state_hash);
    }
    // A governance run too: the same records (witness changes and probes included), terms and state.
    let a = run(&SimConfig::governance(44, 20, 1));
    let again = run(&SimConfig::governance(44, 20, 1));
    assert_eq!((a.final_state_hash, a.events), (again.final_state_hash, again.events));
    let (p, q) = (a.governance.unwrap(), again.governance.unwrap());
    assert_eq!((p.records_submitted, p.probes_submitted), (q.records_submitted, q.probes_submitted));
    assert_eq!((&p.witness_terms, p.probes_refused), (&q.witness_terms, q.probes_refused));
    assert_eq!(a.stats.rule_refusals, again.stats.rule_refusals);
}

/// Every byzantine behaviour, f of them, at n = 4 and 7: the run's invariants hold
/// (agreement, validity, block times within the PBTS bound of the honest clocks, no
/// honest double signing, progress), and each leaves the trace it should.
#[test]
fn each_byzantine_behaviour_is_survived() {
    for kind in Behaviour::BYZANTINE {
        let (mut evidence, mut rejected, mut invalid, mut refused) = (0, 0, 0, 0);
        for seed in 0..6 {
            for (n, b) in [(4, 1), (7, 2)] {
                let cfg = SimConfig { kinds: vec![kind], ..SimConfig::new(1_000 + seed, n, 20, b) };
                let r = run(&cfg);
                assert!(r.byzantine.iter().all(|k| *k == kind.name()));
                evidence += r.stats.evidence_committed;
                rejected += r.stats.messages_rejected;
                invalid += r.stats.validations_failed;
                refused += r.stats.sync_refused;
            }
        }
        match kind {
            Behaviour::Equivocator => assert!(evidence > 0, "equivocation evidence reaches the chain"),
            _ => assert_eq!(evidence, 0, "{kind:?} signs nothing twice"),
        }
        match kind {
            Behaviour::InvalidProposer => assert!(invalid + rejected > 0, "its blocks are refused"),
            Behaviour::TamperingRelay => assert!(rejected > 0, "tampered copies are refused, not forwarded"),
            Behaviour::SyncFlooder => assert!(refused > 0, "the flood meets the per-peer budget"),
            _ => {}
        }
    }
}

#[test]
fn crashes_and_restarts_never_double_sign() {
    let (mut crashes, mut refused) = (0, 0);
    for seed in 0..40 {
        let r = run(&SimConfig::new(2_000 + seed, 4, 20, 0));
        crashes += r.stats.crashes;
        refused += r.stats.refused_signatures;
    }
    // The observer checks every honest signature; the guard was actually exercised.
    assert!(crashes > 0 && refused > 0, "crashes {crashes}, refused signatures {refused}");
}

#[test]
fn configuration_errors_are_reported() {
    assert!(sim::run(&SimConfig::new(1, 4, 10, 2)).is_err(), "f = 1 for n = 4");
    assert!(sim::run(&SimConfig::new(1, 0, 10, 0)).is_err());
    assert!(sim::run(&SimConfig::new(1, 4, 0, 0)).is_err());
    assert!(sim::run(&SimConfig { kinds: vec![Behaviour::Honest], ..SimConfig::new(1, 4, 5, 1) }).is_err());
}

/// The CI campaign: 1,000 seeds × 50 heights over n ∈ {1, 4, 7}, with f byzantine
/// validators in half the runs of n = 4 and n = 7, plus `GOVERNANCE_SEEDS`
/// governance runs (4 → 5 → 7 → 4), on every core. Any failure names its seed and
/// the command that reproduces it.
#[test]
fn campaign_1000_seeds_50_heights() {
    const SEEDS: u64 = 1_000;
    const HEIGHTS: u64 = 50;
    const GOVERNANCE_SEEDS: u64 = 8;
    let started = Instant::now();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4) as u64;
    let results: Vec<(Vec<SimReport>, Duration)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let t0 = Instant::now();
                    let reports =
                        (0..SEEDS)
                            .filter(|seed| seed % threads == t)
                            .map(|seed| {
                                let n = [1, 4, 7][(seed % 3) as usize];
                                let byzantine = if (seed / 3) % 2 == 0 { (n - 1) / 3 } else { 0 };
                                sim::run(&SimConfig::new(seed, n, HEIGHTS, byzantine)).unwrap()
                            })
                            .chain((SEEDS..SEEDS + GOVERNANCE_SEEDS).filter(|seed| seed % threads == t).map(|seed| {
                                sim::run(&SimConfig::governance(seed, HEIGHTS, (seed % 2) as usize)).unwrap()
                            }))
                            .collect();
                    (reports, t0.elapsed())
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let reports: Vec<&SimReport> = results.iter().flat_map(|(r, _)| r).collect();
    let failures: Vec<String> = reports.iter().filter(|r| !r.ok()).map(|r| repro(r)).collect();
    let heights: u64 = reports.iter().map(|r| r.heights_committed).sum();
    let evidence: u64 = reports.iter().map(|r| r.stats.evidence_committed).sum();
    let crashes: u64 = reports.iter().map(|r| r.stats.crashes).sum();
    let filled: u64 = reports.iter().map(|r| r.stats.compact_filled).sum();
    let later: u64 = reports.iter().map(|r| r.stats.compact_filled_later).sum();
    let dropped: u64 = reports.iter().map(|r| r.stats.compact_dropped).sum();
    let whole: u64 = reports.iter().map(|r| r.stats.compact_sent_whole).sum();
    println!(
        "campaign: {} seeds, {heights} heights, {evidence} evidence records, {crashes} crashes, compact proposals \
         {filled} filled on arrival, {later} filled later, {dropped} dropped unfilled, {whole} sent again whole, {:.1} s on {threads} threads",
        reports.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(filled > 0 && later > 0 && dropped > 0 && whole > 0, "every compact-proposal path was taken");
    assert_eq!(reports.len() as u64, SEEDS + GOVERNANCE_SEEDS);
    let governed = reports.iter().filter_map(|r| r.governance.as_ref());
    assert!(governed.clone().all(|p| p.sizes == sim::governance::SIZES && p.removed_signatures == 0));
    assert_eq!(governed.count() as u64, GOVERNANCE_SEEDS);
    assert!(failures.is_empty(), "{} of {} seeds failed:\n{}", failures.len(), reports.len(), failures.join("\n"));
    for r in &reports {
        if let Some(p) = &r.governance {
            check_witness_plan(r.seed, p);
        }
    }
}

/// Governance under faults: clients move the validator set 4 → 5 → 7 → 4 with real
/// governance records (two joiners added at once, three validators removed at once,
/// the first the proposer of the next height), under drops, partitions and crashes,
/// with and without a byzantine validator. Agreement, validity and the certificates
/// are checked against the set in force at each height; the plan must complete and
/// every honest node reach the target.
#[test]
fn governance_changes_the_validator_set_under_faults() {
    let mut crashes = 0;
    for seed in 0..4 {
        let byzantine = (seed % 2) as usize;
        let r = run(&SimConfig::governance(7_000 + seed, 30, byzantine));
        let plan = r.governance.as_ref().unwrap();
        assert!(plan.done(), "seed {seed}: {:?}", plan.sizes);
        assert_eq!(plan.sizes, sim::governance::SIZES, "seed {seed}");
        assert!(plan.removed_proposer.is_some());
        assert!(plan.joiner_blocks > 0 && plan.joiner_signatures > 0, "seed {seed}: the joiners took part");
        assert_eq!(plan.removed_signatures, 0, "seed {seed}: no removed validator certifies after its removal");
        check_witness_plan(seed, plan);
        for rule in sim::governance::PROBE_RULES {
            assert!(r.stats.rule_refusals.get(&rule).is_some_and(|n| *n > 0), "seed {seed}: R{rule:03} refused");
        }
        let terms: Vec<String> = plan
            .witness_terms
            .iter()
            .map(|w| format!("{} [{}, {:?})", w.name, w.from_height, w.until_height))
            .collect();
        println!(
            "seed {seed}: sizes {:?}, removed proposer {:?}, {} governance records, joiners proposed {} blocks and signed {} certificates, witness terms {terms:?}, probes refused {:?} of {} submitted, {} heights, {} crashes, {} partitions, byzantine {:?}",
            plan.sizes,
            plan.removed_proposer,
            plan.records_submitted,
            plan.joiner_blocks,
            plan.joiner_signatures,
            plan.probes_refused,
            plan.probes_submitted,
            r.heights_committed,
            r.stats.crashes,
            r.stats.partitions,
            r.byzantine
        );
        crashes += r.stats.crashes;
    }
    assert!(crashes > 0, "the runs crashed nodes");
}

/// A finished plan's witness changes: both witnesses named in stage 0, the retired one's term
/// ended by stage 2 (after it began), the kept one still in force; both refused changes
/// refused by admission and never on the agreed chain. (That every honest node held these
/// same terms after every height is the observer's check, part of `ok()`.)
fn check_witness_plan(seed: u64, plan: &sim::governance::GovPlan) {
    use sim::governance::{WITNESS_KEPT, WITNESS_RETIRED, witness_url};
    assert!(plan.done(), "seed {seed}: {:?}, probes refused {:?}", plan.sizes, plan.probes_refused);
    assert!(plan.probes_refused.iter().all(|n| *n > 0), "seed {seed}: {:?}", plan.probes_refused);
    assert_eq!(plan.probes_committed, 0, "seed {seed}: a change the rules refuse reached the chain");
    let terms = &plan.witness_terms;
    assert_eq!(terms.len(), 2, "seed {seed}: {terms:?}");
    let (retired, kept) = (&terms[0], &terms[1]);
    assert_eq!((retired.name.as_str(), kept.name.as_str()), (WITNESS_RETIRED, WITNESS_KEPT), "seed {seed}");
    assert_eq!(retired.url, witness_url(WITNESS_RETIRED));
    assert_ne!(retired.key, kept.key, "seed {seed}: the probe's key never replaced the kept witness's");
    // Named together by one stage: activated at the same height, after genesis.
    assert!(retired.from_height > 1 && retired.from_height == kept.from_height, "seed {seed}: {terms:?}");
    assert!(retired.until_height.is_some_and(|u| u > retired.from_height), "seed {seed}: {terms:?}");
    assert_eq!(kept.until_height, None, "seed {seed}: {terms:?}");
}

/// The observer's witness-terms check fails on a disagreement: two honest nodes that hold
/// different terms after one height (a from or until height apart) are a safety violation
/// naming the height and both nodes; the same terms, or terms at another height, are not.
#[test]
fn the_observer_refuses_replicas_that_disagree_on_witness_terms() {
    use credence_ledger::governance::WitnessTerm;
    let chain = sim::chain::SimChain::new(9, 4).unwrap();
    let mut observer = sim::check::Observer::new(
        vec![true; 4],
        (0..4).map(sim::chain::validator_name).collect(),
        &chain.consensus,
        60_000,
    );
    let term = |until: Option<u64>| WitnessTerm {
        name: "witness.sim/a".into(),
        key: chain.witness_key("witness.sim/a").public(),
        url: sim::governance::witness_url("witness.sim/a"),
        from_height: 5,
        until_height: until,
    };
    observer.on_witness_terms(0, 9, &[term(Some(9))]);
    observer.on_witness_terms(1, 9, &[term(Some(9))]);
    observer.on_witness_terms(2, 8, &[term(None)]);
    assert!(observer.safety.is_empty(), "{:?}", observer.safety);
    observer.on_witness_terms(3, 9, &[term(None)]);
    assert_eq!(observer.safety.len(), 1, "{:?}", observer.safety);
    let v = &observer.safety[0];
    assert!(v.starts_with("witness terms: after height 9 node 3 holds [witness.sim/a"), "{v}");
    assert!(v.contains("[5, …)") && v.contains("[5, 9)") && v.contains("node 0 held"), "{v}");
    observer.on_witness_terms(1, 8, &[]);
    assert_eq!(observer.safety.len(), 2, "a node that lost a term disagrees too: {:?}", observer.safety);
}
