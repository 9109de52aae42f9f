//! `credence bench load --set-changes` end to end, short and at a low rate: under load from
//! attesters without a node, governance adds a fifth validator (its own node process, joining
//! from genesis) and then removes an original one, whose node is stopped; the report gives
//! the heights at which each change took effect, every record commits, the nodes agree, and
//! the kept chain verifies offline across both changes. With `--join-first` the newcomer is
//! added as a member, and made a validator by a second change once its node has caught up.

mod common;

use common::net::port_base;
use common::{credence, json, p};

/// Length of the submit window, and when the two changes are proposed, in seconds.
const SECONDS: u64 = 16;
const ADD_AT_S: u64 = 2;
const REMOVE_AT_S: u64 = 7;
/// Records offered per second.
const RATE: u64 = 150;

#[test]
fn bench_load_adds_and_removes_a_validator_under_load() {
    let (r, _dir) = bench(0, false);
    let c = &r["set_changes"];
    let changes = c["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "{c}");
    assert_eq!(changes[0]["change"], "adding validator-4", "{c}");
    assert!(c["added_caught_up_height"].is_null(), "{c}");
}

#[test]
fn bench_load_joins_first_then_makes_the_member_a_validator() {
    let (r, _dir) = bench(1, true);
    let c = &r["set_changes"];
    let changes = c["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 3, "{c}");
    assert_eq!(changes[0]["change"], "adding validator-4 as a member", "{c}");
    assert_eq!(changes[1]["change"], "making validator-4 a validator", "{c}");
    // Not yet a validator after the first change; one after the second, once its node caught up.
    let before: Vec<&str> =
        changes[1]["validators_before"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert_eq!(before, ["validator-0", "validator-1", "validator-2", "validator-3"], "{c}");
    let caught_up = c["added_caught_up_height"].as_u64().expect("caught up");
    assert!(caught_up >= changes[0]["in_force_height"].as_u64().unwrap(), "{c}");
    assert!(caught_up < changes[1]["proposal_height"].as_u64().unwrap(), "{c}");
}

/// Runs the short bench in test slot `slot`; checks what holds for both ways of joining and
/// returns the report (and the directory holding the kept testnet).
fn bench(slot: u16, join_first: bool) -> (serde_json::Value, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let testnet = dir.path().join("testnet");
    let (seconds, rate, add, remove, base) = (
        SECONDS.to_string(),
        RATE.to_string(),
        ADD_AT_S.to_string(),
        REMOVE_AT_S.to_string(),
        port_base(slot).to_string(),
    );
    let mut args = vec![
        "bench",
        "load",
        "--set-changes",
        "--validators",
        "4",
        "--seconds",
        &seconds,
        "--rate",
        &rate,
        "--batch",
        "25",
        "--workers",
        "2",
        "--add-at-s",
        &add,
        "--remove-at-s",
        &remove,
        "--base-port",
        &base,
        "--dir",
        p(&testnet),
        "--json",
    ];
    if join_first {
        args.push("--join-first");
    }
    let o = credence(&args);
    assert!(o.status.success(), "bench load failed: {}", String::from_utf8_lossy(&o.stderr));
    let r = json(&o);

    // Every record offered by the three attesters commits; none is refused.
    assert_eq!(r["attesters"], 3, "{r}");
    assert_eq!(r["records_signed"], SECONDS * RATE, "{r}");
    assert_eq!(r["committed"], r["records_signed"], "{r}");
    assert_eq!(r["not_committed"], 0, "{r}");
    assert_eq!(r["refused"], serde_json::json!({}), "{r}");
    let per_second: Vec<u64> =
        r["committed_by_second"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(per_second.len() as u64, SECONDS);
    assert_eq!(per_second.iter().sum::<u64>(), r["committed_in_window"].as_u64().unwrap(), "{r}");
    let gap_height = r["block_gap_max_height"].as_u64().expect("a longest gap");
    assert!(gap_height > r["start_height"].as_u64().unwrap(), "{r}");
    // Each gap of 1 s or more names who was to propose its height at round 0.
    for g in r["long_gaps"].as_array().unwrap() {
        let proposer = g["round0_proposer"].as_str().unwrap_or_default();
        assert!(proposer.starts_with("validator-"), "{g}");
    }

    // The changes, in order, each in force two heights after the block completing it.
    let c = &r["set_changes"];
    assert_eq!((c["added"].as_str(), c["removed"].as_str()), (Some("validator-4"), Some("validator-3")), "{c}");
    let changes = c["changes"].as_array().unwrap();
    let last = changes.len() - 1;
    assert_eq!(changes[last]["change"], "removing validator-3", "{c}");
    let h = |i: usize, k: &str| changes[i][k].as_u64().unwrap_or_else(|| panic!("{k} of change {i}: {c}"));
    for (i, change) in changes.iter().enumerate() {
        assert!(h(i, "proposal_height") < h(i, "quorum_height"), "approvals follow the proposal: {c}");
        assert_eq!(h(i, "in_force_height"), h(i, "quorum_height") + 2, "{c}");
        assert!(change["longest_gap_near_ms"].is_u64(), "{c}");
    }
    for i in 1..=last {
        assert!(h(i - 1, "in_force_height") < h(i, "proposal_height"), "{c}");
    }
    assert!(changes[last]["proposed_s"].as_f64().unwrap() >= REMOVE_AT_S as f64, "{c}");
    let before: Vec<&str> =
        changes[last]["validators_before"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert_eq!(before, ["validator-0", "validator-1", "validator-2", "validator-3", "validator-4"], "{c}");
    // The newcomer synced and signed, after its addition and before the removal was proposed.
    let first = c["added_first_signed_height"].as_u64().expect("the added validator signed a certificate");
    assert!(first >= h(last - 1, "in_force_height") && first < h(last, "proposal_height"), "{c}");
    // The removed node was stopped once its removal was in force; the others agree.
    assert!(c["removed_node_stopped_s"].as_f64().unwrap() >= changes[last]["in_force_committed_s"].as_f64().unwrap());
    assert_eq!(c["agreement"]["agree"], true, "{c}");
    let compared = c["agreement"]["compared"].as_array().unwrap();
    assert_eq!(compared.len(), 1 + changes.len(), "the final height and every activation height: {c}");
    let nodes: Vec<&str> = r["nodes"].as_array().unwrap().iter().filter_map(|n| n["node"].as_str()).collect();
    assert_eq!(nodes, ["validator-0", "validator-1", "validator-2", "validator-4", "validator-3"], "{r}");
    assert!(r["nodes"][4]["at_window_end"].is_null(), "validator-3 was stopped before the window's end: {r}");
    // Round-0 proposals travelled compact between the node processes and were filled from
    // their mempools (`/metrics`).
    let filled: u64 = r["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["at_window_end"]["compact_proposals"]["filled"].as_u64())
        .sum();
    assert!(filled > 0, "no compact proposal was filled: {r}");

    // The kept chain verifies offline: every certificate against the set in force at its
    // height (a signature line of validator-3 after its removal would void it).
    let data = testnet.join("validator-4/data");
    let v = json(&credence(&["verify", "--data-dir", p(&data), "--json"]));
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["blocks"].as_u64().unwrap() >= c["agreement"]["final_height"].as_u64().unwrap(), "{v}");
    (r, dir)
}
