//! End-to-end: 50 SIGKILLs of random validators at random moments while four attesters submit through random nodes; afterwards every chain verifies, all agree, every acknowledged attestation is on every node, and no validator was caught signing conflicting votes.
//!
//! The schedule comes from a seed (`CRASH_SEED`, default 1), printed at the start, so a
//! failing schedule can be replayed; the node processes themselves are not deterministic.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::net::{Testnet, get, height, wait_until};
use common::{Rng, credence, json, stdout};

const KILLS: usize = 50;
const ENTERPRISE: &str = "914403001922038216";

/// An attestation the API acknowledged as committed: (id, height, leaf index).
type Acked = (String, u64, u64);

#[test]
fn fifty_kills_under_load_lose_nothing_and_fork_nothing() {
    let seed: u64 = std::env::var("CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    eprintln!("crash_load: CRASH_SEED={seed}");
    let net = Arc::new(Testnet::new(7, 4, 0));
    let mut nodes: Vec<_> = (0..4).map(|i| net.start(i)).collect();
    wait_until("all four to commit", Duration::from_secs(60), || (0..4).all(|i| height(&net.api(i)) >= 2));

    // Four attesters, one per validator member, each through a random node per submission.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let attesters: Vec<_> = (0..4)
        .map(|m| {
            let (net, stop, acked) = (net.clone(), stop.clone(), acked.clone());
            std::thread::spawn(move || {
                let mut rng = Rng::new(seed.wrapping_mul(31).wrapping_add(m as u64 + 1));
                let mut tries = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    tries += 1;
                    let via = rng.below(4) as usize;
                    let period = format!("{}", 2000 + tries % 25);
                    let amount = format!("{}.{:02}", 1000 + rng.below(1_000_000), rng.below(100));
                    let key = net.key(m);
                    let (genesis, api) = (net.genesis(), net.api(via));
                    let out = credence(&[
                        "attest",
                        "rd-spend",
                        "--enterprise",
                        ENTERPRISE,
                        "--period",
                        &period,
                        "--amount",
                        &amount,
                        "--key",
                        &key,
                        "--genesis",
                        &genesis,
                        "--node",
                        &api,
                        "--wait",
                        "--json",
                    ]);
                    if out.status.success() {
                        let v = json(&out);
                        let id = v["id"].as_str().unwrap().to_string();
                        acked.lock().unwrap().push((
                            id,
                            v["height"].as_u64().unwrap(),
                            v["leaf_index"].as_u64().unwrap(),
                        ));
                    } else {
                        // The node died under it, or refused a sequence another node had taken: not acknowledged.
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })
        })
        .collect();

    // The kill schedule: one validator down at a time, killed and restarted at random moments.
    let mut rng = Rng::new(seed);
    for _ in 0..KILLS {
        std::thread::sleep(rng.millis(100, 1000));
        let victim = rng.below(4) as usize;
        nodes[victim].sigkill();
        std::thread::sleep(rng.millis(50, 600));
        nodes[victim] = net.start(victim);
        std::thread::sleep(rng.millis(200, 1000));
    }
    stop.store(true, Ordering::Relaxed);
    for a in attesters {
        a.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    eprintln!("crash_load: {KILLS} kills, {} attestations acknowledged as committed", acked.len());
    assert!(acked.len() >= 20, "the load generator got too little through: {}", acked.len());

    // Everyone catches up to the highest height any node reached, and agrees on every block.
    let top = (0..4).map(|i| height(&net.api(i))).max().unwrap();
    wait_until("every node to catch up", Duration::from_secs(90), || (0..4).all(|i| height(&net.api(i)) >= top));
    for h in 1..=top {
        let hashes: Vec<_> =
            (0..4).map(|i| get(&net.api(i), &format!("/v1/blocks/{h}")).map(|b| b["hash"].clone())).collect();
        assert!(hashes[0].is_some() && hashes.windows(2).all(|w| w[0] == w[1]), "height {h}: {hashes:?}");
    }
    // Every acknowledged attestation is on every node, where it was acknowledged.
    for (id, h, leaf) in &acked {
        for i in 0..4 {
            // The public inclusion proof says where it was committed (no access key needed).
            let v = get(&net.api(i), &format!("/v1/proofs/inclusion/{id}")).unwrap_or_default();
            assert_eq!((v["height"].as_u64(), v["leaf_index"].as_u64()), (Some(*h), Some(*leaf)), "node {i}, {id}");
        }
    }

    // Stopped, every store verifies; no equivocation evidence was ever recorded (honest
    // nodes check every vote they see and record any conflicting pair as evidence).
    for node in &mut nodes {
        node.stop();
    }
    for i in 0..4 {
        let data = net.config(i).parent().unwrap().join("data");
        let d = data.to_str().unwrap();
        let v = json(&credence(&["verify", "--data-dir", d, "--json"]));
        assert_eq!(v["ok"], true, "node {i}: {v}");
        assert!(v["blocks"].as_u64().unwrap() >= top, "node {i}: {v}");
        let csv = data.with_file_name("chain.csv");
        let o = credence(&["export", "--data-dir", d, "--csv", "--out", csv.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stdout(&o));
        let text = std::fs::read_to_string(&csv).unwrap();
        assert!(!text.lines().any(|l| l.contains(",equivocation,")), "node {i} recorded equivocation evidence");
        assert!(text.lines().count() > acked.len(), "node {i}'s export lacks attestations");
    }
}
