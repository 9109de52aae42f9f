//! End-to-end: the auditor toolkit against real nodes — queries, profile, checkpoints, append-only audits, proof bundles (every field mutated in turn is refused) and exports.

mod common;

use std::time::Duration;

use common::net::{Testnet, height, wait_until};
use common::{credence, json, ok, p, refused, stdout};

const ENTERPRISE: &str = "914403001922038216";

#[test]
fn queries_profile_checkpoints_bundles_and_exports_on_one_node() {
    let net = Testnet::new(2, 1, 0);
    let _node = net.start(0);
    let api = net.api(0);
    wait_until("the validator to commit", Duration::from_secs(60), || height(&api) >= 1);
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("cp.txt");
    let genesis = net.genesis();

    let first = net.attest(0, 0, "2021");
    ok(credence(&["checkpoint", "--node", &api, "--genesis", &genesis, "--save", p(&cp)]));
    let second = net.attest(0, 0, "2022");
    net.attest(0, 0, "2022");
    // Who reads (docs/ACCESS.md): a loan officer's key, the enterprise's consent for its
    // member, and a regulator's key (validator-0 holds every role, regulator included).
    let officer = net.access_key(0, 0, "loan-officer", "member,restricted");
    let regulator = net.access_key(0, 0, "inspector", "regulator");
    let consent = net.consent(0, 0, ENTERPRISE, "validator-0", "loan-application");
    let key = p(&officer);
    let reader = ["--node", &api, "--access-key", key];
    let restricted = ["--node", &api, "--access-key", key, "--purpose", "loan-application"];

    // Unsigned, the enterprise's records are refused; signed, its facts are withheld without a purpose.
    let o = credence(&["query", "enterprise", ENTERPRISE, "--node", &api, "--json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("HTTP 401"), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(&ok(credence(&[&["query", "enterprise", ENTERPRISE, "--json"][..], &reader].concat())));
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 4, "three figures and the consent: {v}");
    assert_eq!(items[0]["id"], first["id"]);
    assert!(items.iter().all(|i| i["claim"]["kind"] == "withheld"), "{v}");
    // Queries: JSON gives the API's objects, CSV the documented header.
    let v = json(&ok(credence(&[&["query", "enterprise", ENTERPRISE, "--json"][..], &restricted].concat())));
    let items = v["items"].as_array().unwrap();
    assert_eq!(items[0]["claim"]["amount"]["amount"], "1250000.00", "{v}");
    assert_eq!(items[3]["id"].as_str(), Some(consent.as_str()));
    let csv = stdout(&ok(credence(&[&["query", "attester", "validator-0", "--csv"][..], &reader].concat())));
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "height,leaf_index,id,status,record_status,attester,sequence,issued_at_ms,kind,enterprise,patent,period,\
         counterparty,amount_fen,currency,amount,detail"
    );
    // Three figures (withheld: "withheld", never a zero amount), two grants and the consent.
    let rows: Vec<&str> = lines.collect();
    assert!(rows.len() >= 6, "{csv}");
    assert_eq!(rows.iter().filter(|r| r.contains(",rd-spend,") && r.contains(",withheld,")).count(), 3, "{csv}");
    // Paging and height filters.
    let v =
        json(&ok(credence(&[&["query", "enterprise", ENTERPRISE, "--json", "--limit", "1"][..], &reader].concat())));
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    assert_eq!(v["next_after"], 0);
    let h2 = second["height"].as_u64().unwrap().to_string();
    let from = ["query", "enterprise", ENTERPRISE, "--json", "--from-height", &h2];
    let v = json(&ok(credence(&[&from[..], &reader].concat())));
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["height"].as_u64().unwrap() >= second["height"].as_u64().unwrap())
    );
    assert!(!v["items"].as_array().unwrap().iter().any(|i| i["id"] == first["id"]));
    let id = first["id"].as_str().unwrap();
    let v = json(&ok(credence(&[&["query", "attestation", id, "--json"][..], &reader].concat())));
    assert_eq!(v["leaf_index"], first["leaf_index"]);
    let bad = credence(&[&["query", "enterprise", "not-a-code"][..], &reader].concat());
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("uscc"), "{}", String::from_utf8_lossy(&bad.stderr));

    // The profile: 2021 from one source; 2022's first figure superseded by the second, and flagged.
    let v = json(&ok(credence(&[&["profile", ENTERPRISE, "--json"][..], &restricted].concat())));
    let rd = v["rd_spend"].as_array().unwrap();
    assert_eq!(rd.len(), 2, "{v}");
    assert_eq!(rd[0]["period"], "2022");
    assert_eq!(rd[0]["institutions"], 1);
    assert_eq!(v["flagged"].as_array().unwrap().len(), 1, "{v}");
    let human = stdout(&ok(credence(&[&["profile", ENTERPRISE][..], &restricted].concat())));
    assert!(human.contains("1,250,000.00 CNY") && human.contains("superseded"), "{human}");

    // Append-only audit from the saved checkpoint.
    let o = ok(credence(&["audit", "--since", p(&cp), "--genesis", &genesis, "--node", &api]));
    assert!(stdout(&o).starts_with("APPEND-ONLY"), "{}", stdout(&o));
    // A saved checkpoint with its signature stripped, or signed under another name, is refused.
    let note = std::fs::read_to_string(&cp).unwrap();
    let unsigned = dir.path().join("unsigned.txt");
    std::fs::write(&unsigned, note.split_once("\n\n").unwrap().0.to_string() + "\n\n").unwrap();
    refused(&credence(&["audit", "--since", p(&unsigned), "--genesis", &genesis, "--node", &api]), "not valid");
    let stranger = dir.path().join("stranger.txt");
    std::fs::write(&stranger, note.replace("— validator-0 ", "— stranger ")).unwrap();
    refused(&credence(&["audit", "--since", p(&stranger), "--genesis", &genesis, "--node", &api]), "not a validator");

    // A proof bundle verifies offline; every field changed in turn is refused, naming it.
    let bundle = dir.path().join("bundle.json");
    ok(credence(&[&["prove", id, "--out", p(&bundle)][..], &restricted].concat()));
    let o = ok(credence(&["verify-bundle", p(&bundle), "--genesis", &genesis]));
    assert!(stdout(&o).starts_with("VALID"), "{}", stdout(&o));
    let original: serde_json::Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    let flip = |s: &str| {
        // Change one base64 character in the middle (still valid base64, other bytes).
        let mut c: Vec<char> = s.chars().collect();
        let i = c.len() / 2;
        c[i] = if c[i] == 'A' { 'B' } else { 'A' };
        c.into_iter().collect::<String>()
    };
    let s = |v: &serde_json::Value| v.as_str().unwrap().to_string();
    let mutations: Vec<(&str, serde_json::Value)> = vec![
        ("format", "credence-proof-bundle/v0".into()),
        ("chain_id", "0".repeat(64).into()),
        ("id", "1".repeat(64).into()),
        ("attestation", flip(&s(&original["attestation"])).into()),
        ("leaf_index", (original["leaf_index"].as_u64().unwrap() + 1).into()),
        ("tree_size", (original["tree_size"].as_u64().unwrap() + 1).into()),
        ("inclusion_path", serde_json::json!([s(&original["inclusion_path"][0])])),
        ("checkpoint", flip(&s(&original["checkpoint"])).into()),
        ("verifier_keys", serde_json::json!([])),
        ("decoded", serde_json::json!({"attester": "validator-0"})),
    ];
    for (field, value) in mutations {
        let mut m = original.clone();
        assert_ne!(m[field], value, "{field}");
        m[field] = value;
        let f = dir.path().join(format!("bad-{field}.json"));
        std::fs::write(&f, m.to_string()).unwrap();
        let o = credence(&["verify-bundle", p(&f), "--genesis", &genesis, "--json"]);
        assert_eq!(o.status.code(), Some(1), "{field}: {}", stdout(&o));
        let v = json(&o);
        assert_eq!(v["valid"], false);
        // A changed index or size breaks the path; any other field is named itself
        // (a malformed `decoded` object fails to parse as a bundle).
        let named = v["field"].as_str().unwrap();
        let expect: &[&str] = match field {
            "leaf_index" | "tree_size" => &["inclusion_path", "tree_size"],
            "decoded" => &["bundle", "decoded"],
            f => &[f],
        };
        assert!(expect.contains(&named), "{field} mutated, refused as {v}");
    }
    // The checkpoint inside a bundle, without signatures or with an unknown signer.
    for (label, cp_text) in [
        ("unsigned", s(&original["checkpoint"]).split_once("\n\n").unwrap().0.to_string() + "\n\n"),
        ("stranger", s(&original["checkpoint"]).replace("— validator-0 ", "— stranger ")),
    ] {
        let mut m = original.clone();
        m["checkpoint"] = cp_text.into();
        let f = dir.path().join(format!("cp-{label}.json"));
        std::fs::write(&f, m.to_string()).unwrap();
        refused(&credence(&["verify-bundle", p(&f), "--genesis", &genesis]), "INVALID: checkpoint");
    }

    // Exports from the running node: the export file verifies, the CSV has one row per attestation.
    let export = dir.path().join("chain.export");
    // Whole blocks hold every fact: the officer's key is refused, the regulator's is served.
    let o = credence(&["export", "--node", &api, "--out", p(&export), "--access-key", key]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("regulator scope"), "{}", String::from_utf8_lossy(&o.stderr));
    // The query log: the four restricted reads above (a listing, two profiles, a proof's
    // record), each by the officer's key under the consent, and nothing else.
    let regulator_reads = ["--node", &api, "--access-key", p(&regulator), "--purpose", "supervision"];
    let mut queries = Vec::new();
    wait_until("the four reads to be logged", Duration::from_secs(30), || {
        let v = json(&ok(credence(
            &[&["query", "enterprise", ENTERPRISE, "--json", "--all"][..], &regulator_reads].concat(),
        )));
        queries = v["items"].as_array().unwrap().iter().filter(|i| i["claim"]["kind"] == "query").cloned().collect();
        queries.iter().filter(|q| q["claim"]["purpose"] == "loan-application").count() >= 4
    });
    let officer_reads: Vec<_> = queries.iter().filter(|q| q["claim"]["purpose"] == "loan-application").collect();
    assert_eq!(officer_reads.len(), 4, "{queries:?}");
    for q in &officer_reads {
        assert_eq!(
            (q["claim"]["reader"].as_str(), q["claim"]["consent"].as_str()),
            (Some("validator-0"), Some(consent.as_str()))
        );
    }
    let regulator_key = regulator.to_str().unwrap();
    let key_ids: Vec<String> = [key, regulator_key]
        .iter()
        .map(|f| {
            std::fs::read_to_string(f).unwrap().lines().find_map(|l| l.strip_prefix("keyid ")).unwrap().to_string()
        })
        .collect();
    assert!(officer_reads.iter().all(|q| q["claim"]["access_key"] == key_ids[0].as_str()));
    // The regulator's own supervision reads are logged too, without a consent.
    assert!(queries.iter().filter(|q| q["claim"]["purpose"] == "supervision").all(|q| q["claim"]["consent"].is_null()));
    ok(credence(&["export", "--node", &api, "--out", p(&export), "--access-key", regulator_key]));
    let v = json(&ok(credence(&["verify", "--file", p(&export), "--genesis", &genesis, "--json"])));
    let exported = v["attestations"].as_u64().unwrap();
    assert!(exported >= 3 + 3 + 4, "figures, grants and consent, query records: {v}");
    let csv_file = dir.path().join("chain.csv");
    ok(credence(&["export", "--node", &api, "--csv", "--out", p(&csv_file), "--access-key", regulator_key]));
    assert!(std::fs::read_to_string(&csv_file).unwrap().lines().count() as u64 > exported);
}

/// The validators rewrite history (here: the only validator starts over from genesis); an
/// audit from a checkpoint saved before is refused.
#[test]
fn an_audit_across_a_rewritten_history_is_detected() {
    let net = Testnet::new(3, 1, 0);
    let genesis = net.genesis();
    let api = net.api(0);
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("cp.txt");
    {
        let mut node = net.start(0);
        wait_until("the validator to commit", Duration::from_secs(60), || height(&api) >= 1);
        net.attest(0, 0, "2021");
        net.attest(0, 0, "2022");
        ok(credence(&["checkpoint", "--node", &api, "--genesis", &genesis, "--save", p(&cp)]));
        node.stop();
    }
    let data = net.config(0).parent().unwrap().join("data");

    // With the node stopped, its data directory answers the same commands offline.
    let d = p(&data);
    let v = json(&ok(credence(&["query", "enterprise", ENTERPRISE, "--data-dir", d, "--json"])));
    assert_eq!(v["items"].as_array().unwrap().len(), 2, "{v}");
    let id = v["items"][1]["id"].as_str().unwrap().to_string();
    let bundle = dir.path().join("offline.json");
    ok(credence(&["prove", &id, "--data-dir", d, "--genesis", &genesis, "--out", p(&bundle)]));
    ok(credence(&["verify-bundle", p(&bundle), "--genesis", &genesis]));
    let o = ok(credence(&["audit", "--since", p(&cp), "--genesis", &genesis, "--data-dir", d]));
    assert!(stdout(&o).starts_with("APPEND-ONLY"), "{}", stdout(&o));
    let v = json(&ok(credence(&["profile", ENTERPRISE, "--data-dir", d, "--json"])));
    assert_eq!(v["rd_spend"].as_array().unwrap().len(), 2, "{v}");

    std::fs::remove_file(data.join("ledger.redb")).unwrap();
    std::fs::remove_file(data.join("sign_state.bin")).unwrap();
    let _node = net.start(0);
    wait_until("the restarted validator to commit", Duration::from_secs(60), || height(&api) >= 1);
    for period in ["2019", "2020", "2023"] {
        net.attest(0, 0, period);
    }
    let o = credence(&["audit", "--since", p(&cp), "--genesis", &genesis, "--node", &api, "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let v = json(&o);
    assert_eq!(v["append_only"], false);
    assert!(v["reason"].as_str().unwrap().contains("rewritten"), "{v}");
}

/// With four validators, a checkpoint cut down to two signatures (not more than 2/3) is refused.
#[test]
fn a_checkpoint_with_too_few_validator_signatures_is_refused() {
    let net = Testnet::new(4, 4, 0);
    let _nodes: Vec<_> = (0..4).map(|i| net.start(i)).collect();
    let api = net.api(0);
    wait_until("the validators to commit", Duration::from_secs(60), || height(&api) >= 2);
    let genesis = net.genesis();
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("cp.txt");
    let v = json(&ok(credence(&["checkpoint", "--node", &api, "--genesis", &genesis, "--save", p(&cp), "--json"])));
    assert!(v["signers"].as_array().unwrap().len() >= 3, "{v}");
    let note = std::fs::read_to_string(&cp).unwrap();
    let (text, sigs) = note.split_once("\n\n").unwrap();
    let two: Vec<&str> = sigs.lines().take(2).collect();
    let short = dir.path().join("short.txt");
    std::fs::write(&short, format!("{text}\n\n{}\n", two.join("\n"))).unwrap();
    let o = credence(&["audit", "--since", p(&short), "--genesis", &genesis, "--node", &api]);
    refused(&o, "2 of 4 validators signed");
}
