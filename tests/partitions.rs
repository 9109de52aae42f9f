//! End-to-end: four validators behind cuttable loopback proxies — split 2/2 (no progress, no fork), then 3/1 (the majority commits, the minority halts), then heal (the minority catches up and everyone agrees).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::net::{Testnet, get, height, port_base, wait_until};
use common::proxy::Links;

const SLOT: u16 = 6;

/// Points every node's configured peers at the proxies instead of the peers themselves.
fn route_through(net: &Testnet, links: &Links) {
    let n = net.nodes.len();
    for i in 0..n {
        let path = net.config(i);
        let mut text = std::fs::read_to_string(&path).unwrap();
        for j in (0..n).filter(|&j| j != i) {
            let direct = format!("\"{}\"", net.nodes[j]["p2p"].as_str().unwrap());
            assert!(text.contains(&direct), "node {i}'s config lists node {j}: {text}");
            text = text.replace(&direct, &format!("\"{}\"", links.listen(i, j)));
        }
        std::fs::write(&path, text).unwrap();
    }
}

fn heights(net: &Testnet) -> Vec<u64> {
    (0..4).map(|i| height(&net.api(i))).collect()
}

/// Every pair of nodes has the same block hash at every height both have, up to `upto`.
fn assert_no_fork(net: &Testnet, upto: u64) {
    for h in 1..=upto {
        let hashes: Vec<_> =
            (0..4).filter_map(|i| get(&net.api(i), &format!("/v1/blocks/{h}")).map(|b| b["hash"].clone())).collect();
        assert!(hashes.windows(2).all(|w| w[0] == w[1]), "fork at height {h}: {hashes:?}");
    }
}

#[test]
fn split_two_two_then_three_one_then_heal() {
    let net = Testnet::new(SLOT, 4, 0);
    let targets: Vec<SocketAddr> = (0..4).map(|i| net.nodes[i]["p2p"].as_str().unwrap().parse().unwrap()).collect();
    let links = Links::start(port_base(SLOT) + 20, &targets);
    route_through(&net, &links);
    let _nodes: Vec<_> = (0..4).map(|i| net.start(i)).collect();
    wait_until("all four to commit through the proxies", Duration::from_secs(60), || {
        heights(&net).iter().all(|&h| h >= 2)
    });

    // 2/2: neither half has more than 2/3 of the validators, so nothing commits.
    links.split(&[0, 1], &[2, 3]);
    let at_split = *heights(&net).iter().max().unwrap();
    std::thread::sleep(Duration::from_secs(8));
    let after = heights(&net);
    // A block whose precommits were already in flight may still land: at most one.
    assert!(after.iter().all(|&h| h <= at_split + 1), "progress without a quorum: {at_split} -> {after:?}");
    assert_no_fork(&net, *after.iter().min().unwrap());

    // 3/1: the three commit, the one halts.
    links.heal();
    links.split(&[0, 1, 2], &[3]);
    let alone = height(&net.api(3));
    let start = heights(&net)[..3].iter().copied().max().unwrap();
    wait_until("the majority of three to commit", Duration::from_secs(90), || {
        heights(&net)[..3].iter().all(|&h| h >= start + 3)
    });
    let minority = height(&net.api(3));
    assert!(minority <= alone + 1, "the isolated validator advanced alone: {alone} -> {minority}");
    net.attest(0, 1, "2021");

    // Heal: the minority catches up, everyone agrees, and it commits again with the others.
    links.heal();
    let head = height(&net.api(0));
    wait_until("the minority to catch up", Duration::from_secs(90), || height(&net.api(3)) >= head);
    assert_no_fork(&net, head);
    let r = net.attest(3, 3, "2022");
    assert!(r["height"].as_u64().unwrap() > head, "{r}");
}
