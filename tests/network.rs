//! End-to-end: real `credence node` processes on loopback — four validators commit what any node is given, survive a SIGKILLed validator, and bring it back; an observer syncs and verifies the whole chain; a stranger's key is refused.

mod common;

use std::time::Duration;

use common::net::{NodeProc, Testnet, get, height, port_base, status, wait_until};
use common::{credence, json};

#[test]
fn four_validators_commit_survive_a_kill_and_an_observer_verifies() {
    let net = Testnet::new(0, 4, 1);
    let mut nodes: Vec<NodeProc> = (0..4).map(|i| net.start(i)).collect();
    wait_until("all four validators to commit blocks", Duration::from_secs(60), || {
        (0..4).all(|i| height(&net.api(i)) >= 3)
    });

    // Attestations submitted to each node in turn are committed, and every node agrees.
    for i in 0..4 {
        let r = net.attest(i, (i + 1) % 4, "2021");
        assert!(r["height"].as_u64().unwrap() >= 1, "{r}");
    }
    let target = (0..4).map(|i| height(&net.api(i))).max().unwrap();
    wait_until("agreement on a common height", Duration::from_secs(30), || {
        (0..4).all(|i| height(&net.api(i)) >= target)
    });
    let block = |i: usize| get(&net.api(i), &format!("/v1/blocks/{target}")).map(|b| b["hash"].clone());
    let first = block(0);
    assert!(first.is_some());
    for i in 1..4 {
        assert_eq!(block(i), first, "node {i} disagrees at height {target}");
    }

    // SIGKILL one validator: the other three keep committing.
    nodes[3].sigkill();
    let r = net.attest(0, 1, "2022");
    let committed_at = r["height"].as_u64().unwrap();
    // Restarted, it catches up and rejoins.
    nodes[3] = net.start(3);
    wait_until("the restarted validator to catch up", Duration::from_secs(60), || height(&net.api(3)) >= committed_at);
    let r = net.attest(3, 3, "2023");
    assert!(r["height"].as_u64().unwrap() > committed_at);

    // A fresh observer follows the chain by sync; stopped, its store verifies offline.
    let mut observer = net.start(4);
    let head = height(&net.api(0));
    wait_until("the observer to sync", Duration::from_secs(60), || height(&net.api(4)) >= head);
    assert_eq!(status(&net.api(4)).unwrap()["validator"], false);
    observer.stop();
    let data = net.nodes[4]["data_dir"].as_str().unwrap();
    let v = json(&credence(&["verify", "--data-dir", data, "--json"]));
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["blocks"].as_u64().unwrap() >= head);
    assert!(v["attestations"].as_u64().unwrap() >= 6);
    for n in &mut nodes {
        n.stop();
    }
}

#[test]
fn a_peer_with_an_unknown_key_is_refused() {
    let net = Testnet::new(1, 1, 0);
    let _v = net.start(0);
    wait_until("the validator to commit", Duration::from_secs(30), || height(&net.api(0)) >= 2);
    // A stranger with a fresh key, the chain's genesis, and the validator as its peer.
    let dir = net.dir.path().join("stranger");
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("stranger.key");
    assert!(credence(&["keys", "generate", "--out", key.to_str().unwrap()]).status.success());
    // `init` refuses a key outside genesis.
    let out = credence(&[
        "init",
        "--genesis",
        &net.genesis(),
        "--key",
        key.to_str().unwrap(),
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no member"));
    // Started by hand anyway, it is refused at start (its key is not a member).
    let api_port = port_base(1) + 49;
    let config = format!(
        "data_dir = \"data\"\ngenesis = \"{}\"\nkey = \"{}\"\np2p_listen = \"127.0.0.1:0\"\npeers = [\"{}\"]\napi_listen = \"127.0.0.1:{api_port}\"\n",
        net.genesis(),
        key.display(),
        net.nodes[0]["p2p"].as_str().unwrap()
    );
    std::fs::write(dir.join("node.toml"), config).unwrap();
    let out = credence(&["node", "--config", dir.join("node.toml").to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("member"), "{err}");
    assert!(height(&net.api(0)) >= 2);
}
