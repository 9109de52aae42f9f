//! `credence bench load --set-changes` end to end, short and at a low rate: under load from
//! attesters without a node, governance adds a fifth validator (its own node process, joining
//! from genesis) and then removes an original one, whose node is stopped; the report gives
//! the heights at which each change took effect, every record commits, the nodes agree, and
//! the kept chain verifies offline across both changes.

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
    let dir = tempfile::tempdir().unwrap();
    let testnet = dir.path().join("testnet");
    let (seconds, rate, add, remove, base) = (
        SECONDS.to_string(),
        RATE.to_string(),
        ADD_AT_S.to_string(),
        REMOVE_AT_S.to_string(),
        port_base(0).to_string(),
    );
    let args = [
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

    // The two changes, in order, each in force two heights after the block completing it.
    let c = &r["set_changes"];
    assert_eq!((c["added"].as_str(), c["removed"].as_str()), (Some("validator-4"), Some("validator-3")), "{c}");
    let changes = c["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "{c}");
    let h = |i: usize, k: &str| changes[i][k].as_u64().unwrap_or_else(|| panic!("{k} of change {i}: {c}"));
    for (i, change) in changes.iter().enumerate() {
        assert!(h(i, "proposal_height") < h(i, "quorum_height"), "approvals follow the proposal: {c}");
        assert_eq!(h(i, "in_force_height"), h(i, "quorum_height") + 2, "{c}");
        assert!(change["longest_gap_near_ms"].is_u64(), "{c}");
    }
    assert!(h(0, "in_force_height") < h(1, "proposal_height"), "{c}");
    assert!(changes[1]["proposed_s"].as_f64().unwrap() >= REMOVE_AT_S as f64, "{c}");
    let before: Vec<&str> =
        changes[1]["validators_before"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert_eq!(before, ["validator-0", "validator-1", "validator-2", "validator-3", "validator-4"], "{c}");
    // The newcomer synced and signed, after its addition and before the removal was proposed.
    let first = c["added_first_signed_height"].as_u64().expect("the added validator signed a certificate");
    assert!(first >= h(0, "in_force_height") && first < h(1, "proposal_height"), "{c}");
    // The removed node was stopped once its removal was in force; the others agree.
    assert!(c["removed_node_stopped_s"].as_f64().unwrap() >= changes[1]["in_force_committed_s"].as_f64().unwrap());
    assert_eq!(c["agreement"]["agree"], true, "{c}");
    let compared = c["agreement"]["compared"].as_array().unwrap();
    assert_eq!(compared.len(), 3, "the final height and both activation heights: {c}");
    let nodes: Vec<&str> = r["nodes"].as_array().unwrap().iter().filter_map(|n| n["node"].as_str()).collect();
    assert_eq!(nodes, ["validator-0", "validator-1", "validator-2", "validator-4", "validator-3"], "{r}");
    assert!(r["nodes"][4]["at_window_end"].is_null(), "validator-3 was stopped before the window's end: {r}");

    // The kept chain verifies offline: every certificate against the set in force at its
    // height (a signature line of validator-3 after its removal would void it).
    let data = testnet.join("validator-4/data");
    let v = json(&credence(&["verify", "--data-dir", p(&data), "--json"]));
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["blocks"].as_u64().unwrap() >= c["agreement"]["final_height"].as_u64().unwrap(), "{v}");
}
