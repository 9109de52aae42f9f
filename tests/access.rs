//! End-to-end: who may read what (docs/ACCESS.md) against a real node — each refusal (unsigned, a signature over another request, an expired or revoked key, a replay, a member without consent) answered 401/403 naming what is wrong, a consented read served, and the query log listing exactly the reads that were made.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use common::net::{Testnet, get, height, wait_until};
use common::{credence, json};
use credence_ledger::access::{AccessKeyGrant, Scope};
use credence_ledger::attestation::{AttestationBody, Claim};
use credence_ledger::genesis::Genesis;
use credence_ledger::sig::SecretKey;
use credence_node::httpsig;
use credence_node::keyfile;
use credence_node::runtime::now_ms;

const ENTERPRISE: &str = "914403001922038216";
const OTHER: &str = "91440300708461136T";

/// A raw GET with `fields` added: status and JSON body (or null).
fn get_with(url: &str, path: &str, fields: &[(&str, String)]) -> (u16, serde_json::Value) {
    let host = url.strip_prefix("http://").unwrap();
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (n, v) in fields {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let (head, body) = buf.split_once("\r\n\r\n").unwrap();
    (head.split(' ').nth(1).unwrap().parse().unwrap(), serde_json::from_str(body).unwrap_or_default())
}

/// The RFC 9421 fields signing `GET path` with the access key in `file`.
fn signed(file: &Path, path: &str) -> Vec<(&'static str, String)> {
    let key = keyfile::read_access_key(file, None).unwrap();
    let now_s = (now_ms() / 1000) as i64;
    httpsig::signed_headers("GET", path, None, &key.keyid.to_string(), &key.key, now_s).unwrap()
}

/// A 401/403 naming `field`, its rule containing `says`.
fn refused(got: (u16, serde_json::Value), status: u16, field: &str, says: &str) {
    let (s, v) = got;
    assert_eq!((s, v["error"]["field"].as_str()), (status, Some(field)), "{v}");
    let rule = v["error"]["rule"].as_str().unwrap_or_default();
    assert!(rule.contains(says), "'{says}' not in: {rule}");
}

#[test]
fn every_refusal_on_a_real_node_and_the_log_lists_exactly_the_reads() {
    let net = Testnet::new(6, 1, 0);
    let _node = net.start(0);
    let api = net.api(0);
    wait_until("the validator to commit", Duration::from_secs(60), || height(&api) >= 1);
    net.attest(0, 0, "2023");
    let officer = net.access_key(0, 0, "loan-officer", "member,restricted");
    let revoked = net.access_key(0, 0, "left-the-bank", "member");
    let regulator = net.access_key(0, 0, "inspector", "regulator");
    let consent = net.consent(0, 0, ENTERPRISE, "validator-0", "loan-application");
    // Revoke one key by its grant id, with the ordinary revocation.
    let revoked_id = keyfile::read_access_key(&revoked, None).unwrap().keyid.to_string();
    let o = credence(&["attest", "revoke", "--target", &revoked_id, "--key", &net.key(0), "--node", &api, "--wait"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A key whose grant expires two seconds after it is made.
    let genesis = Genesis::load(Path::new(&net.genesis())).unwrap();
    let member_key = keyfile::read(Path::new(&net.key(0))).unwrap();
    let short = SecretKey::generate();
    let grant = Claim::AccessKey(AccessKeyGrant {
        holder: "short-lived".into(),
        key: short.public(),
        scopes: vec![Scope::Member],
        expires_at_ms: now_ms() + 2_000,
    });
    let seq = get(&api, "/v1/attesters/validator-0/next-sequence").unwrap()["next_sequence"].as_u64().unwrap();
    let body = AttestationBody {
        attester: genesis.members[0].name.clone(),
        sequence: seq,
        issued_at_ms: now_ms(),
        claim: grant,
    };
    let a = body.sign(&member_key, &genesis.hash());
    let expired_id = a.id().to_string();
    let expired = net.dir.path().join("short.access");
    keyfile::write_private(&expired, &keyfile::access_key_text("test", &a.id(), &short)).unwrap();
    let submit = common::net::post(
        &api,
        "/v1/attestations",
        &serde_json::json!({
            "attestation": base64::engine::general_purpose::STANDARD.encode(a.to_bytes())
        }),
    );
    assert_eq!(submit, 202);
    wait_until("the short-lived grant to commit", Duration::from_secs(30), || {
        get(&api, &format!("/v1/proofs/inclusion/{expired_id}")).is_some_and(|p| p["id"] == expired_id.as_str())
    });

    let listing = format!("/v1/enterprises/{ENTERPRISE}/attestations");
    let restricted = format!("{listing}?purpose=loan-application");
    // Unsigned.
    refused(get_with(&api, &listing, &[]), 401, "signature", "not signed");
    // A signature over another request.
    refused(get_with(&api, &listing, &signed(&officer, &restricted)), 401, "signature", "does not verify");
    // A revoked key; an expired key (after its two seconds).
    refused(get_with(&api, &listing, &signed(&revoked, &listing)), 401, "keyid", "revoked");
    std::thread::sleep(Duration::from_millis(2_500));
    refused(get_with(&api, &listing, &signed(&expired, &listing)), 401, "keyid", "expired");
    // A replay of a signed read that was served.
    let fields = signed(&officer, &restricted);
    let (status, served) = get_with(&api, &restricted, &fields);
    assert_eq!(status, 200, "{served}");
    refused(get_with(&api, &restricted, &fields), 401, "signature", "replay");
    // The consented read: the facts, whose bytes hash to their ids.
    let items = served["items"].as_array().unwrap();
    let figure = items.iter().find(|i| i["claim"]["kind"] == "rd-spend").unwrap();
    assert_eq!(figure["claim"]["amount"]["amount"], "1250000.00");
    let bytes = base64::engine::general_purpose::STANDARD.decode(figure["attestation"].as_str().unwrap()).unwrap();
    let leaf = credence_ledger::block::Leaf::from_bytes(bytes).unwrap();
    assert_eq!(leaf.id.to_string(), figure["id"].as_str().unwrap());
    // A member without consent for this enterprise, or this purpose: 403 naming what is missing.
    let other = format!("/v1/enterprises/{OTHER}/attestations?purpose=loan-application");
    refused(get_with(&api, &other, &signed(&officer, &other)), 403, "consent", OTHER);
    let monitoring = format!("{listing}?purpose=post-loan-monitoring");
    refused(get_with(&api, &monitoring, &signed(&officer, &monitoring)), 403, "consent", "post-loan-monitoring");
    // A key without the restricted scope; and whole blocks need the regulator's.
    let blocks = "/v1/blocks/1/certified";
    refused(get_with(&api, blocks, &signed(&officer, blocks)), 403, "scope", "regulator");
    // Through the CLI: one more consented read (the profile).
    let o = credence(&[
        "profile",
        ENTERPRISE,
        "--node",
        &api,
        "--access-key",
        officer.to_str().unwrap(),
        "--purpose",
        "loan-application",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(json(&o)["rd_spend"].as_array().unwrap().len(), 1);

    // The query log: exactly the two reads served to the officer, under the consent; none
    // for the refused ones. The regulator lists them (its own reads are logged too).
    let key_of = |f: &Path| keyfile::read_access_key(f, None).unwrap().keyid.to_string();
    let sup = format!("{listing}?purpose=supervision&limit=1000");
    let mut logged = Vec::new();
    wait_until("the reads to be logged", Duration::from_secs(30), || {
        let (s, v) = get_with(&api, &sup, &signed(&regulator, &sup));
        assert_eq!(s, 200, "{v}");
        logged = v["items"].as_array().unwrap().iter().filter(|i| i["claim"]["kind"] == "query").cloned().collect();
        logged.iter().filter(|q| q["claim"]["access_key"] == key_of(&officer).as_str()).count() >= 2
    });
    std::thread::sleep(Duration::from_millis(1_500));
    let (_, v) = get_with(&api, &sup, &signed(&regulator, &sup));
    let officer_reads: Vec<_> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["claim"]["kind"] == "query" && i["claim"]["access_key"] == key_of(&officer).as_str())
        .cloned()
        .collect();
    assert_eq!(officer_reads.len(), 2, "{officer_reads:?}");
    for q in &officer_reads {
        let c = &q["claim"];
        assert_eq!(
            (c["reader"].as_str(), c["purpose"].as_str(), c["consent"].as_str()),
            (Some("validator-0"), Some("loan-application"), Some(consent.as_str()))
        );
        assert_eq!(c["read"], "facts");
    }
    // The profile's query section shows them.
    let o = credence(&[
        "profile",
        ENTERPRISE,
        "--node",
        &api,
        "--access-key",
        regulator.to_str().unwrap(),
        "--purpose",
        "supervision",
        "--json",
    ]);
    let p = json(&o);
    let section = p["queries"].as_array().unwrap();
    assert!(section.iter().filter(|q| q["purpose"] == "loan-application").count() >= 2, "{p}");
}

/// The query records a regulator lists for `member` (`GET /v1/members/{member}/queries`), all pages.
fn member_reads(api: &str, regulator: &Path, member: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let path = match after {
            Some(a) => format!("/v1/members/{member}/queries?limit=2&after={a}"),
            None => format!("/v1/members/{member}/queries?limit=2"),
        };
        let (s, v) = get_with(api, &path, &signed(regulator, &path));
        assert_eq!(s, 200, "{v}");
        out.extend(v["items"].as_array().unwrap().iter().cloned());
        match v["next_after"].as_u64() {
            Some(a) => after = Some(a),
            None => return out,
        }
    }
}

#[test]
fn a_regulator_lists_each_members_reads_and_whole_block_reads_are_logged() {
    // Two members (validator-0 and validator-1); validator-0's node serves every read.
    let net = Testnet::new(7, 2, 0);
    let _nodes = [net.start(0), net.start(1)];
    let api = net.api(0);
    wait_until("the validator to commit", Duration::from_secs(60), || height(&api) >= 1);
    let figure = net.attest(0, 0, "2023");
    let figure_height = figure["height"].as_u64().unwrap();
    let v0 = net.access_key(0, 0, "v0-officer", "member,restricted");
    let v1 = net.access_key(1, 0, "v1-officer", "member,restricted");
    let regulator = net.access_key(0, 0, "inspector", "regulator");
    let v0_consent = net.consent(0, 0, ENTERPRISE, "validator-0", "loan-application");
    let v1_consent = net.consent(0, 0, ENTERPRISE, "validator-1", "loan-application");
    let key_of = |f: &Path| keyfile::read_access_key(f, None).unwrap().keyid.to_string();

    // validator-0's officer reads twice; validator-1's three times, at validator-0's node.
    let restricted = format!("/v1/enterprises/{ENTERPRISE}/attestations?purpose=loan-application");
    for (file, times) in [(&v0, 2), (&v1, 3)] {
        for _ in 0..times {
            let (s, v) = get_with(&api, &restricted, &signed(file, &restricted));
            assert_eq!(s, 200, "{v}");
        }
    }
    // Refused reads are not logged: validator-1 reads another enterprise without consent.
    let other = format!("/v1/enterprises/{OTHER}/attestations?purpose=loan-application");
    refused(get_with(&api, &other, &signed(&v1, &other)), 403, "consent", OTHER);

    // The listing: unsigned 401; a member's key 403; an unknown member 404; a bad limit 400.
    let path = "/v1/members/validator-1/queries";
    refused(get_with(&api, path, &[]), 401, "signature", "not signed");
    refused(get_with(&api, path, &signed(&v1, path)), 403, "scope", "regulator");
    let nobody = "/v1/members/bank-nobody/queries";
    let (s, v) = get_with(&api, nobody, &signed(&regulator, nobody));
    assert_eq!((s, v["error"]["field"].as_str()), (404, Some("member")), "{v}");
    let bad = "/v1/members/validator-1/queries?limit=0";
    let (s, v) = get_with(&api, bad, &signed(&regulator, bad));
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("limit")), "{v}");

    // Each member's listing holds exactly its own reads, under its own key and consent.
    wait_until("the reads to be logged", Duration::from_secs(30), || {
        member_reads(&api, &regulator, "validator-0").len() >= 2
            && member_reads(&api, &regulator, "validator-1").len() >= 3
    });
    std::thread::sleep(Duration::from_millis(1_500));
    for (member, file, consent, count) in [("validator-0", &v0, &v0_consent, 2), ("validator-1", &v1, &v1_consent, 3)] {
        let reads = member_reads(&api, &regulator, member);
        assert_eq!(reads.len(), count, "{member}: {reads:?}");
        for q in &reads {
            let c = &q["claim"];
            assert_eq!((c["kind"].as_str(), c["reader"].as_str()), (Some("query"), Some(member)), "{q}");
            assert_eq!(c["access_key"], key_of(file).as_str());
            assert_eq!((c["consent"].as_str(), c["enterprise"].as_str()), (Some(consent.as_str()), Some(ENTERPRISE)));
            assert_eq!((c["read"].as_str(), q["attester"].as_str()), (Some("facts"), Some("validator-0")));
        }
    }
    // The CLI: a table, and --json.
    let reg = regulator.to_str().unwrap();
    let o = credence(&["queries", "--member", "validator-1", "--node", &api, "--access-key", reg, "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(&o);
    let lines = v["queries"].as_array().unwrap();
    assert_eq!(lines.len(), 3, "{v}");
    assert!(lines.iter().all(|l| l["reader"] == "validator-1" && l["purpose"] == "loan-application"), "{v}");
    let o = credence(&["queries", "--member", "validator-1", "--node", &api, "--access-key", reg]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("Query log of member validator-1") && table.contains("logged by"), "{table}");
    assert_eq!(table.matches("loan-application").count(), 3, "{table}");
    let o = credence(&["queries", "--member", "validator-1", "--node", &api, "--access-key", v1.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("403"), "{}", String::from_utf8_lossy(&o.stderr));

    // A whole-block read by the regulator is logged: one record for the block's one enterprise.
    let block = format!("/v1/blocks/{figure_height}/certified");
    signed_get_binary(&api, &regulator, &block);
    let block_reads = || -> Vec<serde_json::Value> {
        member_reads(&api, &regulator, "validator-0").into_iter().filter(|q| q["claim"]["read"] == "block").collect()
    };
    wait_until("the block read to be logged", Duration::from_secs(30), || !block_reads().is_empty());
    std::thread::sleep(Duration::from_millis(1_500));
    let reads = block_reads();
    assert_eq!(reads.len(), 1, "{reads:?}");
    let c = &reads[0]["claim"];
    assert_eq!((c["block_height"].as_u64(), c["enterprise"].as_str()), (Some(figure_height), Some(ENTERPRISE)));
    assert_eq!(
        (c["purpose"].as_str(), c["access_key"].as_str()),
        (Some("supervision"), Some(key_of(&regulator).as_str()))
    );
    assert!(c["consent"].is_null());

    // So is a regulator's read of an entry bundle (C2SP tiles): one record per enterprise
    // whose withheld records the bundle holds, naming the bundle.
    let size = get(&api, "/v1/status").unwrap()["tree_size"].as_u64().unwrap();
    let bundle = if size >= 256 { "/tile/entries/000".to_string() } else { format!("/tile/entries/000.p/{size}") };
    signed_get_binary(&api, &regulator, &bundle);
    let entry_reads = || -> Vec<serde_json::Value> {
        member_reads(&api, &regulator, "validator-0").into_iter().filter(|q| q["claim"]["read"] == "entries").collect()
    };
    wait_until("the entry-bundle read to be logged", Duration::from_secs(30), || !entry_reads().is_empty());
    std::thread::sleep(Duration::from_millis(1_500));
    let reads = entry_reads();
    let enterprises: std::collections::BTreeSet<&str> =
        reads.iter().map(|q| q["claim"]["enterprise"].as_str().unwrap()).collect();
    assert_eq!(enterprises.len(), reads.len(), "one record per enterprise: {reads:?}");
    assert!(enterprises.contains(ENTERPRISE), "{reads:?}");
    for q in &reads {
        let c = &q["claim"];
        assert_eq!((c["entry_bundle"].as_u64(), c["purpose"].as_str()), (Some(0), Some("supervision")), "{c}");
        assert!(c["block_height"].is_null() && c["consent"].is_null(), "{c}");
    }
    // validator-1's listing is unchanged: its reads only.
    assert_eq!(member_reads(&api, &regulator, "validator-1").len(), 3);
}

/// A signed GET of a binary resource (a certified block, an entry bundle): asserts 200.
fn signed_get_binary(api: &str, key: &Path, path: &str) {
    let host = api.strip_prefix("http://").unwrap();
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (n, v) in &signed(key, path) {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.write_all(format!("{head}\r\n").as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    assert!(raw.starts_with(b"HTTP/1.1 200"), "{path}: {}", String::from_utf8_lossy(&raw[..raw.len().min(300)]));
}
