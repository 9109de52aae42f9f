//! End-to-end: confidential amounts (docs/ACCESS.md "Confidential amounts") against real nodes — `attest --confidential` seals the amount and leaves its opening with the attester's node; a consented reader gets openings that verify against the leaf; a reader without consent gets 403, and at a node that does not hold them 404 naming the attester, with the profile showing the amount as confidential; a node serving a wrong opening is caught; each disclosure is logged; the openings survive a restart; `credence verify` passes without them.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use common::net::{Testnet, get, height, wait_until};
use common::{credence, json};
use credence_ledger::attestation::Attestation;
use credence_ledger::confidential::{Amount, Opening};
use credence_node::httpsig;
use credence_node::keyfile;
use credence_node::runtime::now_ms;

const ENTERPRISE: &str = "914403001922038216";

/// A raw GET signed with the access key in `file` (unsigned without one): status and JSON body.
fn get_signed(url: &str, file: Option<&Path>, path: &str) -> (u16, serde_json::Value) {
    let host = url.strip_prefix("http://").unwrap();
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(file) = file {
        let key = keyfile::read_access_key(file, None).unwrap();
        let now_s = (now_ms() / 1000) as i64;
        for (n, v) in httpsig::signed_headers("GET", path, None, &key.keyid.to_string(), &key.key, now_s).unwrap() {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
    }
    head.push_str("\r\n");
    let mut s = TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let (head, body) = buf.split_once("\r\n\r\n").unwrap();
    (head.split(' ').nth(1).unwrap().parse().unwrap(), serde_json::from_str(body).unwrap_or_default())
}

/// `credence profile` of the enterprise at `api` read with `key` for `purpose` (JSON), and whether it succeeded.
fn profile(api: &str, key: &Path, purpose: &str) -> (bool, serde_json::Value, String) {
    let o = credence(&[
        "profile",
        ENTERPRISE,
        "--node",
        api,
        "--access-key",
        key.to_str().unwrap(),
        "--purpose",
        purpose,
        "--json",
    ]);
    (
        o.status.success(),
        serde_json::from_slice(&o.stdout).unwrap_or_default(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

/// A relay in front of a node that passes every answer through but adds 1 fen to every
/// opening it relays: a node serving wrong openings. Returns its URL.
fn lying_relay(port: u16, node: &str) -> String {
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let target = node.strip_prefix("http://").unwrap().to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let target = target.clone();
            std::thread::spawn(move || relay_one(client, &target));
        }
    });
    format!("http://127.0.0.1:{port}")
}

fn relay_one(mut client: TcpStream, target: &str) {
    client.set_read_timeout(Some(Duration::from_secs(10))).ok();
    // One request per connection (GETs: the head only).
    let mut req = Vec::new();
    let mut b = [0u8; 4096];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match client.read(&mut b) {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&b[..n]),
        }
    }
    let text = String::from_utf8_lossy(&req).to_string();
    let (head, _) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap().to_string();
    let mut out = format!("{request_line}\r\n");
    for l in lines {
        let lower = l.to_ascii_lowercase();
        if !lower.starts_with("connection:") && !lower.starts_with("host:") {
            out.push_str(&format!("{l}\r\n"));
        }
    }
    out.push_str(&format!("Host: {target}\r\nConnection: close\r\n\r\n"));
    let Ok(mut server) = TcpStream::connect(target) else { return };
    server.write_all(out.as_bytes()).unwrap();
    let mut answer = Vec::new();
    server.read_to_end(&mut answer).ok();
    let answer = String::from_utf8_lossy(&answer).to_string();
    let Some((head, body)) = answer.split_once("\r\n\r\n") else { return };
    let status = head.lines().next().unwrap_or_default().to_string();
    let mut body = body.to_string();
    if request_line.contains("/openings") && status.contains(" 200 ") {
        let mut v: serde_json::Value = serde_json::from_str(&body).unwrap();
        for o in v["openings"].as_array_mut().unwrap() {
            o["fen"] = (o["fen"].as_u64().unwrap() + 1).into();
        }
        body = v.to_string();
    }
    let reply = format!(
        "{status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    client.write_all(reply.as_bytes()).ok();
}

#[test]
fn sealed_amounts_are_disclosed_only_under_consent_checked_logged_and_kept() {
    // Two validators (every role): validator-1's node holds none of validator-0's openings.
    let net = Testnet::new(0, 2, 0);
    let mut node = net.start(0);
    let _other = net.start(1);
    let (api, other_api) = (net.api(0), net.api(1));
    wait_until("the validator to commit", Duration::from_secs(60), || height(&api) >= 1);

    // A sealed R&D figure, by validator-0 through its own node.
    let mut args = net.rd_spend_args(0, "2024");
    args.extend(["--node".into(), api.clone(), "--confidential".into(), "--wait".into(), "--json".into()]);
    let o = credence(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let id = json(&o)["id"].as_str().unwrap().to_string();
    // Sealing at another member's node is refused (R060): it keeps no openings of validator-0's records.
    let mut elsewhere = net.rd_spend_args(0, "2023");
    elsewhere.extend(["--node".into(), other_api.clone(), "--confidential".into()]);
    let o = credence(&elsewhere.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("R060"), "{}", String::from_utf8_lossy(&o.stderr));

    let officer = net.access_key(0, 0, "loan-officer", "member,restricted");
    let regulator = net.access_key(0, 0, "inspector", "regulator");
    let outsider = net.access_key(1, 0, "other-bank-officer", "member,restricted");
    let consent = net.consent(0, 0, ENTERPRISE, "validator-0", "loan-application");
    net.consent(1, 0, ENTERPRISE, "validator-1", "loan-application");

    let head = height(&api);
    wait_until("validator-1's node to sync", Duration::from_secs(60), || height(&other_api) >= head);

    // The leaf holds only a commitment: the public bytes of the record show no amount.
    let openings_path = format!("/v1/attestations/{id}/openings?purpose=loan-application");
    let (s, v) = get_signed(&api, Some(&officer), &format!("/v1/attestations/{id}?purpose=loan-application"));
    assert_eq!(s, 200, "{v}");
    let amount = &v["claim"]["amount"];
    assert_eq!((amount["sealed"].as_bool(), amount["fen"].is_null()), (Some(true), true), "{v}");
    let bytes = base64::engine::general_purpose::STANDARD.decode(v["attestation"].as_str().unwrap()).unwrap();
    let leaf = Attestation::from_bytes(&bytes).unwrap();
    assert_eq!(leaf.id().to_string(), id);
    let sealed = leaf.body.claim.sealed_amounts()[0].1.to_owned();
    assert!(matches!(sealed, Amount::Sealed { .. }));

    // The consented reader: openings that open the leaf's commitment.
    let (s, v) = get_signed(&api, Some(&officer), &openings_path);
    assert_eq!(s, 200, "{v}");
    let o = &v["openings"][0];
    let opening = Opening {
        field: o["field"].as_str().unwrap().into(),
        salt: hex::decode(o["salt"].as_str().unwrap()).unwrap().try_into().unwrap(),
        fen: o["fen"].as_u64().unwrap(),
    };
    assert_eq!(opening.open(&sealed).unwrap().fen, 125_000_000);
    // Without a signature 401; without the purpose's consent 403; without the restricted scope 403.
    assert_eq!(get_signed(&api, None, &openings_path).0, 401);
    let monitoring = format!("/v1/attestations/{id}/openings?purpose=post-loan-monitoring");
    let (s, v) = get_signed(&api, Some(&officer), &monitoring);
    assert_eq!((s, v["error"]["field"].as_str()), (403, Some("consent")), "{v}");
    // At a node that does not hold them: 404 naming the attester member whose node does.
    let (s, v) = get_signed(&other_api, Some(&outsider), &openings_path);
    assert_eq!(s, 404, "{v}");
    assert!(v["error"]["rule"].as_str().unwrap().contains("'validator-0'"), "{v}");

    // The profile: the amount, checked against the leaf, for the consented reader...
    let (ok, p, err) = profile(&api, &officer, "loan-application");
    assert!(ok, "{err}");
    let figure = &p["rd_spend"][0]["figures"][0];
    assert_eq!((figure["fen"].as_u64(), figure["sealed"].as_bool()), (Some(125_000_000), Some(true)), "{p}");
    assert!(p["undisclosed"].as_object().unwrap().is_empty(), "{p}");
    // ...shown as confidential, never 0, where the openings are not disclosed.
    let (ok, p, err) = profile(&other_api, &outsider, "loan-application");
    assert!(ok, "{err}");
    let figure = &p["rd_spend"][0]["figures"][0];
    assert!(figure["fen"].is_null(), "{p}");
    assert_eq!(p["undisclosed"]["rd-spend.amount"], 1, "{p}");
    let o = credence(&[
        "profile",
        ENTERPRISE,
        "--node",
        &other_api,
        "--access-key",
        outsider.to_str().unwrap(),
        "--purpose",
        "loan-application",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("confidential (not disclosed)"), "{text}");

    // A node serving a wrong opening is caught: the profile names it and exits non-zero.
    let relay = lying_relay(common::net::port_base(0) + 40, &api);
    let (ok, p, err) = profile(&relay, &officer, "loan-application");
    assert!(!ok, "a wrong opening must fail the command");
    let wrong = format!(
        "opening for rd-spend.amount of {id} does not match the ledger's commitment: the node served a wrong value"
    );
    assert_eq!(p["opening_errors"][0].as_str(), Some(wrong.as_str()), "{p}");
    assert!(p["rd_spend"][0]["figures"][0]["fen"].is_null(), "a wrong value is never shown: {p}");
    assert!(err.contains("do not match"), "{err}");

    // `credence query attestation` checks the same way: the amount from the node, a failure from the relay.
    let query = |node: &str| {
        let k = officer.to_str().unwrap();
        credence(&[
            "query",
            "attestation",
            &id,
            "--node",
            node,
            "--access-key",
            k,
            "--purpose",
            "loan-application",
            "--json",
        ])
    };
    let o = query(&api);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(json(&o)["claim"]["amount"]["fen"].as_u64(), Some(125_000_000));
    assert_eq!(json(&o)["claim"]["amount"]["disclosed"], true);
    let o = query(&relay);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains(&wrong), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(json(&o)["claim"]["amount"]["fen"].is_null());

    // The query log: every disclosure of openings, and only those, is logged as reading openings.
    let key_of = |f: &Path| keyfile::read_access_key(f, None).unwrap().keyid.to_string();
    let sup = format!("/v1/enterprises/{ENTERPRISE}/attestations?purpose=supervision&limit=1000");
    let openings_reads = || -> Vec<serde_json::Value> {
        let (s, v) = get_signed(&api, Some(&regulator), &sup);
        assert_eq!(s, 200, "{v}");
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["claim"]["kind"] == "query" && i["claim"]["read"] == "openings")
            .cloned()
            .collect()
    };
    // Served: the raw read, the profile, the relayed profile, and the two queries (the node
    // disclosed each time; the relay lied).
    wait_until("the disclosures to be logged", Duration::from_secs(30), || openings_reads().len() >= 5);
    std::thread::sleep(Duration::from_millis(1_500));
    let logged = openings_reads();
    assert_eq!(logged.len(), 5, "{logged:?}");
    for q in &logged {
        let c = &q["claim"];
        assert_eq!(c["access_key"].as_str(), Some(key_of(&officer).as_str()));
        assert_eq!(c["consent"].as_str(), Some(consent.as_str()));
    }

    // The openings survive a restart of the node.
    node.stop();
    let config = credence_node::config::NodeConfig::load(&net.config(0)).unwrap();
    // `credence verify` checks the whole chain, sealed amounts included, without an opening.
    let o = credence(&["verify", "--data-dir", config.data_dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let _node = net.start(0);
    wait_until("the restarted node's API", Duration::from_secs(60), || get(&api, "/v1/status").is_some());
    let (s, v) = get_signed(&api, Some(&officer), &openings_path);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["openings"][0]["fen"].as_u64(), Some(125_000_000));
}
