//! End-to-end: one of four validators misbehaves on purpose (test-only `byzantine` config: equivocate, propose invalid blocks, replay old messages); the three honest ones keep committing, never fork, and record the equivocation evidence on the ledger.

mod common;

use std::time::Duration;

use common::net::{Testnet, credence_http_get, get, height, wait_until};
use common::{credence, json};

/// Starts a 4-validator testnet whose validator 3 runs in `mode`; returns it with the nodes running.
fn with_byzantine(slot: u16, mode: &str) -> (Testnet, Vec<common::net::NodeProc>) {
    let net = Testnet::new(slot, 4, 0);
    let config = net.config(3);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("byzantine = \"{mode}\"\n{text}")).unwrap();
    let nodes = (0..4).map(|i| net.start(i)).collect();
    (net, nodes)
}

/// The honest nodes commit attestations and agree on every block; the chain verifies.
/// Returns the height checked and a regulator's access key (exports read whole blocks).
fn honest_keep_safety_and_liveness(net: &Testnet) -> (u64, std::path::PathBuf) {
    wait_until("the honest validators to commit", Duration::from_secs(60), || (0..3).all(|i| height(&net.api(i)) >= 2));
    for (i, period) in ["2021", "2022", "2023"].iter().enumerate() {
        let r = net.attest(i, i, period);
        assert!(r["height"].as_u64().unwrap() >= 1, "{r}");
    }
    // Enough heights that the byzantine validator was the proposer several times.
    let start = height(&net.api(0));
    wait_until("eight more heights", Duration::from_secs(90), || (0..3).all(|i| height(&net.api(i)) >= start + 8));
    let top = (0..3).map(|i| height(&net.api(i))).min().unwrap();
    for h in 1..=top {
        let hashes: Vec<_> =
            (0..4).filter_map(|i| get(&net.api(i), &format!("/v1/blocks/{h}")).map(|b| b["hash"].clone())).collect();
        assert!(hashes.len() >= 3 && hashes.windows(2).all(|w| w[0] == w[1]), "height {h}: {hashes:?}");
    }
    let regulator = net.access_key(0, 0, "inspector", "regulator");
    let export = net.dir.path().join("chain.export");
    let key = regulator.to_str().unwrap();
    let o = credence(&["export", "--node", &net.api(0), "--out", export.to_str().unwrap(), "--access-key", key]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(&credence(&["verify", "--file", export.to_str().unwrap(), "--genesis", &net.genesis(), "--json"]));
    assert_eq!(v["ok"], true, "{v}");
    (top, regulator)
}

#[test]
fn an_equivocating_validator_is_caught_on_the_ledger() {
    let (net, _nodes) = with_byzantine(8, "equivocate");
    let (_, regulator) = honest_keep_safety_and_liveness(&net);
    // Some honest validator saw both of a pair and recorded the evidence in a block.
    let csv = net.dir.path().join("chain.csv");
    wait_until("equivocation evidence on the ledger", Duration::from_secs(60), || {
        let out = csv.to_str().unwrap();
        let o = credence(&[
            "export",
            "--node",
            &net.api(0),
            "--csv",
            "--out",
            out,
            "--access-key",
            regulator.to_str().unwrap(),
        ]);
        o.status.success()
            && std::fs::read_to_string(&csv)
                .unwrap()
                .lines()
                .any(|l| l.contains(",equivocation,") && l.contains("validator-3"))
    });
}

#[test]
fn a_validator_proposing_invalid_blocks_gets_none_committed() {
    let (net, _nodes) = with_byzantine(9, "invalid-blocks");
    let (top, _) = honest_keep_safety_and_liveness(&net);
    // Its proposals never pass validation, so no committed block is its.
    for h in 1..=top {
        let b = get(&net.api(0), &format!("/v1/blocks/{h}")).unwrap();
        assert_ne!(b["proposer"], "validator-3", "height {h} was committed from the byzantine proposer");
    }
    // The honest nodes count what they refused: proposals whose leaves do not match
    // their header (rejected, not forwarded) or that fail validation.
    let counter = |i: usize, name: &str| -> u64 {
        let text = credence_http_get(&net.api(i), "/metrics").unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{name} missing from node {i}'s metrics"))
    };
    let refused: u64 = (0..3)
        .map(|i| counter(i, "credence_consensus_rejected_total ") + counter(i, "credence_proposals_invalid_total "))
        .sum();
    assert!(refused > 0, "the honest nodes refused the byzantine proposals and counted it");
}

#[test]
fn a_validator_replaying_old_messages_changes_nothing() {
    let (net, _nodes) = with_byzantine(10, "replay");
    honest_keep_safety_and_liveness(&net);
}
