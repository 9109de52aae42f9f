//! End-to-end: a testnet commits and stops; a snapshot of one validator's store is signed by
//! every validator from its own store, verified offline, refused when tampered with, and
//! restored into a fresh store; that node rejoins and syncs forward to the others' height with
//! the same root, and answers 410 for blocks below its base.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::net::{Testnet, get_as, height, status, wait_until};
use common::{credence, json, ok, p, refused, stdout};

fn data_dir(net: &Testnet, i: usize) -> PathBuf {
    net.config(i).parent().unwrap().join("data")
}

#[test]
fn a_node_restored_from_a_signed_snapshot_syncs_forward_to_the_same_root() {
    // No heartbeat blocks (60 s): the chain moves only with records, so stopped stores agree.
    let net = Testnet::with_heartbeat(0, 4, 0, None);
    // Validators state (and write) the snapshot of every second height.
    for i in 0..4 {
        let text = std::fs::read_to_string(net.config(i)).unwrap();
        let text = text.replace("snapshot_interval_heights = 10000", "snapshot_interval_heights = 2");
        assert!(text.contains("snapshot_interval_heights = 2"), "{text}");
        std::fs::write(net.config(i), text).unwrap();
    }
    let mut nodes: Vec<_> = (0..4).map(|i| net.start(i)).collect();
    let apis: Vec<String> = (0..4).map(|i| net.api(i)).collect();
    wait_until("every node's API", Duration::from_secs(60), || apis.iter().all(|a| status(a).is_some()));
    for period in ["2019", "2020", "2021"] {
        net.attest(0, 1, period);
    }
    let h = height(&apis[0]);
    wait_until("every validator at the same height", Duration::from_secs(60), || apis.iter().all(|a| height(a) == h));
    assert!(h >= 2, "three records make at least two blocks");

    // While the nodes run: the snapshot node 0 wrote at height 2, with the statements the
    // validators serve (a node that is no node is skipped with a warning).
    let dir = tempfile::tempdir().unwrap();
    let served = |a: &String| get_as(a, None, "/v1/snapshots/2/statement").is_some_and(|(c, _)| c == 200);
    wait_until("three validators' statements of height 2", Duration::from_secs(60), || {
        apis.iter().filter(|a| served(a)).count() >= 3
    });
    let (code, body) = get_as(&apis[0], None, "/v1/snapshots/1/statement").unwrap();
    assert_eq!((code, body["error"]["field"].as_str()), (404, Some("height")), "{body}");
    let at2 = dir.path().join("at2.credsnap");
    let d0 = data_dir(&net, 0);
    let mut args = vec!["snapshot", "create", "--data-dir", p(&d0), "--height", "2", "--out", p(&at2)];
    for a in &apis {
        args.extend(["--statements-from", a.as_str()]);
    }
    args.extend(["--statements-from", "http://127.0.0.1:9"]);
    let out = ok(credence(&args));
    assert!(String::from_utf8_lossy(&out.stderr).contains("http://127.0.0.1:9"), "the dead node is named");
    let v = json(&ok(credence(&["snapshot", "verify", p(&at2), "--genesis", &net.genesis(), "--json"])));
    assert_eq!((v["valid"].as_bool(), v["height"].as_u64()), (Some(true), Some(2)), "{v}");
    assert!(v["signers"].as_array().unwrap().len() >= 3, "{v}");

    for n in &mut nodes {
        n.stop();
    }
    let snap = dir.path().join("ledger.credsnap");
    let genesis = net.genesis();
    let out = ok(credence(&["snapshot", "create", "--data-dir", p(&data_dir(&net, 0)), "--out", p(&snap)]));
    assert!(stdout(&out).contains(&format!("snapshot of height {h}")), "{}", stdout(&out));
    // Unsigned, it is not certified.
    let v = json(&credence(&["snapshot", "verify", p(&snap), "--genesis", &genesis, "--json"]));
    assert_eq!((v["valid"].as_bool(), v["field"].as_str()), (Some(false), Some("statements")), "{v}");
    // Each validator signs the digest it computes from its own store.
    for i in 0..4 {
        ok(credence(&["snapshot", "sign", p(&snap), "--data-dir", p(&data_dir(&net, i)), "--key", &net.key(i)]));
    }
    let v = json(&ok(credence(&["snapshot", "verify", p(&snap), "--genesis", &genesis, "--json"])));
    assert_eq!((v["valid"].as_bool(), v["height"].as_u64()), (Some(true), Some(h)), "{v}");
    assert_eq!(v["signers"].as_array().unwrap().len(), 4, "{v}");
    let records = v["records"].as_u64().unwrap();
    assert!(records >= 3, "{v}");

    // A changed byte in the state is refused, naming what failed, and is not restored.
    let tampered = dir.path().join("tampered.credsnap");
    let mut bytes = std::fs::read(&snap).unwrap();
    let at = bytes.len() - 4 * 90 - 200;
    bytes[at] ^= 0x40;
    std::fs::write(&tampered, &bytes).unwrap();
    refused(&credence(&["snapshot", "verify", p(&tampered), "--genesis", &genesis]), "INVALID");
    let fresh = dir.path().join("fresh");
    refused(
        &credence(&["snapshot", "restore", p(&tampered), "--genesis", &genesis, "--data-dir", p(&fresh)]),
        "REFUSED",
    );
    assert!(!fresh.join("ledger.redb").exists());

    // Node 3 loses its store and is restored from the snapshot (its key and sign state stay).
    let d3 = data_dir(&net, 3);
    std::fs::rename(d3.join("ledger.redb"), dir.path().join("old-ledger.redb")).unwrap();
    let out = ok(credence(&["snapshot", "restore", p(&snap), "--genesis", &genesis, "--data-dir", p(&d3)]));
    assert!(stdout(&out).contains(&format!("starts at height {h}")), "{}", stdout(&out));
    let again = credence(&["snapshot", "restore", p(&snap), "--genesis", &genesis, "--data-dir", p(&d3)]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("exists"));

    // The others go on without it, then it rejoins and syncs forward.
    let mut nodes: Vec<_> = (0..3).map(|i| net.start(i)).collect();
    wait_until("the three nodes' APIs", Duration::from_secs(60), || apis[..3].iter().all(|a| status(a).is_some()));
    for period in ["2022", "2023"] {
        net.attest(1, 0, period);
    }
    nodes.push(net.start(3));
    wait_until("the restored node to reach the others' head", Duration::from_secs(90), || {
        let (a, b) = (status(&apis[0]), status(&apis[3]));
        matches!((a, b), (Some(a), Some(b)) if a["height"] == b["height"] && a["tree_root"] == b["tree_root"]
            && a["height"].as_u64() > Some(h))
    });
    // It takes part: a record submitted through it commits everywhere.
    let committed = net.attest(2, 3, "2024");
    let at = committed["height"].as_u64().unwrap_or(0);
    wait_until("every node at the record's height", Duration::from_secs(60), || apis.iter().all(|a| height(a) >= at));
    let (s0, s3) = (status(&apis[0]).unwrap(), status(&apis[3]).unwrap());
    if s0["height"] == s3["height"] {
        assert_eq!(s0["tree_root"], s3["tree_root"]);
    }
    // Below its base it holds nothing: 410, naming the field.
    let (code, body) = get_as(&apis[3], None, "/v1/blocks/1").unwrap();
    assert_eq!((code, body["error"]["field"].as_str()), (410, Some("height")), "{body}");
    let (code, _) = get_as(&apis[0], None, "/v1/blocks/1").unwrap();
    assert_eq!(code, 200);
    drop(nodes);
}
