//! Simulator tests: determinism, each byzantine behaviour, and the CI campaign of many seeds.

use credence_node::sim::{self, SimConfig};

fn cfg(seed: u64, validators: usize, byzantine: usize, heights: u64) -> SimConfig {
    SimConfig { seed, validators, heights, byzantine }
}

#[test]
fn smoke() {
    for (n, b) in [(1, 0), (4, 1), (7, 2)] {
        for seed in 0..3 {
            let t = std::time::Instant::now();
            let r = sim::run(&cfg(seed, n, b, 20)).unwrap();
            println!(
                "n={n} b={b} seed={seed} {:?} ok={} h={} t={:?} events={} vms={} {:?} {:?} {:?}",
                r.byzantine,
                r.ok(),
                r.heights_committed,
                t.elapsed(),
                r.events,
                r.virtual_ms,
                r.stats,
                r.safety_violations,
                r.liveness_failures
            );
        }
    }
}

#[test]
fn mini_campaign() {
    let t = std::time::Instant::now();
    let mut per_n = [std::time::Duration::ZERO; 3];
    for seed in 0..60u64 {
        let (n, b) = [(1, 0), (4, 1), (7, 2)][(seed % 3) as usize];
        let b = if (seed / 3) % 2 == 0 { b } else { 0 };
        let t0 = std::time::Instant::now();
        let r = sim::run(&cfg(seed, n, b, 50)).unwrap();
        per_n[(seed % 3) as usize] += t0.elapsed();
        if !r.ok() {
            println!("seed {seed} n={n} FAILED {:?} {:?}", r.safety_violations, r.liveness_failures);
        }
    }
    println!("total {:?} per n {:?}", t.elapsed(), per_n);
}
