//! End-to-end: a running testnet's C2SP tiles mirrored, resumed and verified offline, and `audit`, `prove`, `verify-bundle` and `verify` working from tiles instead of the node API.

mod common;

use std::path::Path;
use std::time::Duration;

use common::net::{Testnet, height, start_witness, wait_until};
use common::{credence, json, ok, p, refused, stdout};

#[test]
fn a_mirror_of_a_running_testnet_verifies_and_the_auditor_works_from_tiles() {
    let net = Testnet::new(8, 1, 0);
    let _node = net.start(0);
    let api = net.api(0);
    wait_until("the validator to commit", Duration::from_secs(60), || height(&api) >= 1);
    let dir = tempfile::tempdir().unwrap();
    let (mirror, cp) = (dir.path().join("mirror"), dir.path().join("cp.txt"));
    let genesis = net.genesis();
    // Entry bundles hold records of many enterprises in clear: a node serves them only to a
    // key with the regulator scope (docs/ACCESS.md); hash tiles and the checkpoint are public.
    let regulator = net.access_key(0, 0, "inspector", "regulator");
    let clerk = net.access_key(0, 0, "clerk", "member");
    let key = ["--access-key", p(&regulator)];

    let first = net.attest(0, 0, "2021");
    ok(credence(&["checkpoint", "--node", &api, "--genesis", &genesis, "--save", p(&cp)]));
    let mirror_args = ["mirror", "--tiles", &api, "--out", p(&mirror), "--genesis", &genesis];
    for (reader, status) in [(&[][..], "HTTP 401"), (&["--access-key", p(&clerk)][..], "HTTP 403")] {
        let out = credence(&[&mirror_args[..], reader].concat());
        let said = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success() && said.contains(status) && said.contains("regulator"), "{said}");
    }
    let v = json(&ok(credence(&[&mirror_args[..], &key, &["--json"]].concat())));
    assert_eq!(v["valid"], true, "{v}");
    let size1 = v["tree_size"].as_u64().unwrap();
    assert!(size1 >= 1 && v["fetched"].as_u64().unwrap() >= 2, "{v}");
    assert!(mirror.join("checkpoint").is_file() && mirror.join("tile/entries/000.p/1").exists() || size1 > 1);

    // The log grows; the mirror is resumed and extended, its earlier checkpoint a prefix.
    for period in ["2022", "2023", "2020"] {
        net.attest(0, 0, period);
    }
    let v = json(&ok(credence(&[&mirror_args[..], &key, &["--json"]].concat())));
    assert_eq!(v["extended_from"], size1, "{v}");
    assert!(v["tree_size"].as_u64().unwrap() >= size1 + 3, "{v}");

    // Verification from the copy and from the node's tiles.
    let v = json(&ok(credence(&["verify", "--tiles", p(&mirror), "--genesis", &genesis, "--json"])));
    assert_eq!((v["valid"].as_bool(), v["entries"].as_u64()), (Some(true), v["tree_size"].as_u64()), "{v}");
    ok(credence(&["verify", "--tiles", &api, "--genesis", &genesis, "--access-key", p(&regulator)]));
    // An audit against the copy: append-only since the saved checkpoint.
    let out = ok(credence(&["audit", "--since", p(&cp), "--genesis", &genesis, "--tiles", p(&mirror)]));
    assert!(stdout(&out).contains("APPEND-ONLY"), "{}", stdout(&out));

    // A bundle built from the tiles verifies, and is still in the log.
    let id = first["id"].as_str().unwrap();
    let bundle = dir.path().join("b.json");
    ok(credence(&[&["prove", id, "--tiles", &api, "--genesis", &genesis, "--out", p(&bundle)][..], &key].concat()));
    // Reading entry bundles is logged (query records), so the log grew past the copy: copy again.
    ok(credence(&[&mirror_args[..], &key].concat()));
    let v = json(&ok(credence(&["verify-bundle", p(&bundle), "--genesis", &genesis, "--tiles", p(&mirror), "--json"])));
    assert_eq!((v["valid"].as_bool(), v["leaf_index"].as_u64()), (Some(true), first["leaf_index"].as_u64()), "{v}");

    // A changed byte in a copied tile is found.
    let size = v["tree_size"].as_u64().unwrap();
    assert!(size < 256, "one partial entry bundle");
    let tampered = mirror.join(format!("tile/entries/000.p/{size}"));
    let mut bytes = std::fs::read(&tampered).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&tampered, &bytes).unwrap();
    refused(&credence(&["verify", "--tiles", p(&mirror), "--genesis", &genesis]), "INVALID");
    // A forged checkpoint in the copy is refused by a later mirror run.
    let note = std::fs::read_to_string(mirror.join("checkpoint")).unwrap();
    let forged: String =
        note.lines().enumerate().map(|(i, l)| if i == 1 { "999\n".to_string() } else { format!("{l}\n") }).collect();
    std::fs::write(mirror.join("checkpoint"), forged).unwrap();
    refused(&credence(&[&mirror_args[..], &key].concat()), "MIRROR REFUSED");
    // With the genuine checkpoint back, a resumed mirror fetches the partial tiles anew and
    // repairs the copy.
    std::fs::write(mirror.join("checkpoint"), note).unwrap();
    ok(credence(&[&mirror_args[..], &key].concat()));
    ok(credence(&["verify", "--tiles", p(&mirror), "--genesis", &genesis]));
}

/// Scrapes one counter value from the node's Prometheus text (sum over matching lines).
fn metric(api: &str, prefix: &str) -> u64 {
    let text = common::net::credence_http_get(api, "/metrics").unwrap_or_default();
    text.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok()).sum()
}

/// Runs tests/interop/cosignature.py on `note` for witness `name` with public key `pk` (hex):
/// its JSON answer, exit 0 meaning every such line verified.
fn cosignature_check(name: &str, pk: &str, note: &str) -> serde_json::Value {
    use std::io::Write as _;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/interop/cosignature.py");
    common::tools::python_packages();
    let mut child = std::process::Command::new("python3")
        .args([script, name, pk])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(note.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.success(), v["error"].is_null() && !v["verified"].as_array().unwrap().is_empty(), "{v}");
    v
}

/// A testnet whose genesis names two `credence witness` processes: its checkpoints get cosigned
/// by both (third-party `signed_note` still verifies the validators' signatures on the cosigned
/// note), bundles need both with `--witnesses 2`; then one witness holds a forked history, refuses
/// the node's checkpoints, the node counts the refusals, and bundles name the missing witness.
#[test]
fn genesis_witnesses_cosign_checkpoints_and_a_witness_with_a_forked_history_refuses() {
    let net = Testnet::new(9, 1, 0);
    let dir = tempfile::tempdir().unwrap();
    let base = common::net::port_base(9);
    let (port_a, port_b) = (base + 30, base + 31);
    // Name the witnesses in the genesis before the chain starts.
    let (key_a, pk_a) = net.name_witness("w.example/a", port_a);
    let (key_b, pk_b) = net.name_witness("w.example/b", port_b);
    let genesis = net.genesis();
    let _wa = start_witness(dir.path(), "w.example/a", &key_a, &genesis, port_a);
    let mut wb = Some(start_witness(dir.path(), "w.example/b", &key_b, &genesis, port_b));
    let _node = net.start(0);
    let api = net.api(0);
    wait_until("the validator to commit", Duration::from_secs(60), || height(&api) >= 1);
    net.attest(0, 0, "2021");

    // Checkpoints get cosigned by both witnesses, and still verify with signed_note.
    let mut note = String::new();
    wait_until("a checkpoint cosigned by both witnesses", Duration::from_secs(30), || {
        note = common::net::credence_http_get(&api, "/checkpoint").unwrap_or_default();
        note.matches("\u{2014} w.example/").count() == 2
    });
    let vkeys: Vec<String> = credence_ledger::genesis::Genesis::load(Path::new(&genesis))
        .unwrap()
        .verifier_keys()
        .iter()
        .map(|k| k.to_vkey_string())
        .collect();
    let verifiers: Vec<Box<dyn signed_note::Verifier>> = vkeys
        .iter()
        .map(|k| Box::new(signed_note::StandardVerifier::new(k).unwrap()) as Box<dyn signed_note::Verifier>)
        .collect();
    let parsed = signed_note::Note::from_bytes(note.as_bytes()).expect("a signed note");
    let (verified, unverified) = parsed.verify(&signed_note::VerifierList::new(verifiers)).expect("verifies");
    assert_eq!(verified.len(), 1, "the validator's signature, verified by third-party code");
    assert_eq!(unverified.len(), 2, "the two cosignatures are signatures of keys it was not given");
    // The cosignatures, checked by a verifier written from the C2SP text with another Ed25519
    // library (tests/interop/cosignature.py); an altered note fails it.
    for (name, pk) in [("w.example/a", &pk_a), ("w.example/b", &pk_b)] {
        let v = cosignature_check(name, pk, &note);
        assert_eq!(v["verified"].as_array().map(Vec::len), Some(1), "{name}: {v}");
        let altered = note.replacen('\n', "\nx", 1);
        let v = cosignature_check(name, pk, &altered);
        assert!(v["verified"].as_array().is_some_and(Vec::is_empty), "{name} on an altered note: {v}");
    }
    assert!(metric(&api, "credence_witness_cosignatures_total{witness=\"w.example/b\"}") >= 1);

    // A bundle under a cosigned checkpoint needs both witnesses; audits can require them too.
    let id = net.attest(0, 0, "2022")["id"].as_str().unwrap().to_string();
    let bundle = dir.path().join("bundle.json");
    // The record's bytes are an enterprise's fact: a regulator's key reads them (docs/ACCESS.md).
    let regulator = net.access_key(0, 0, "inspector", "regulator");
    let reader = ["--access-key", p(&regulator), "--purpose", "supervision"];
    wait_until("a bundle under a checkpoint cosigned by both", Duration::from_secs(60), || {
        let args = ["prove", &id, "--out", p(&bundle), "--node", &api, "--genesis", &genesis];
        let out = credence(&[&args[..], &reader].concat());
        out.status.success()
            && stdout(&out).contains("cosigned by 2 of 2 trusted witnesses (w.example/a, w.example/b; lines of other")
    });
    let v = json(&ok(credence(&["verify-bundle", p(&bundle), "--genesis", &genesis, "--witnesses", "2", "--json"])));
    assert_eq!(v["witnesses"], serde_json::json!(["w.example/a", "w.example/b"]), "{v}");
    refused(
        &credence(&["verify-bundle", p(&bundle), "--genesis", &genesis, "--witnesses", "3"]),
        "3 witnesses required but the policy names only 2",
    );

    // Witness b now holds a forked history: another root at the size it last cosigned.
    drop(wb.take());
    let state = std::fs::read_dir(dir.path().join(format!("state-{port_b}"))).unwrap().next().unwrap().unwrap().path();
    let size = std::fs::read_to_string(&state).unwrap().lines().next().unwrap().to_string();
    std::fs::write(&state, format!("{size}\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n")).unwrap();
    let refused_before = metric(&api, "credence_witness_refusals_total{witness=\"w.example/b\"");
    let _wb = start_witness(dir.path(), "w.example/b", &key_b, &genesis, port_b);
    net.attest(0, 0, "2023");
    wait_until("the node to report witness b's refusal", Duration::from_secs(60), || {
        metric(&api, "credence_witness_refusals_total{witness=\"w.example/b\"") > refused_before
    });
    let id = net.attest(0, 0, "2020")["id"].as_str().unwrap().to_string();
    wait_until("a new bundle cosigned by witness a", Duration::from_secs(30), || {
        let args = ["prove", &id, "--out", p(&bundle), "--node", &api, "--genesis", &genesis];
        let out = credence(&[&args[..], &reader].concat());
        out.status.success() && stdout(&out).contains("cosigned by 1 of 2 trusted witnesses (w.example/a; lines of")
    });
    ok(credence(&["verify-bundle", p(&bundle), "--genesis", &genesis, "--witnesses", "1"]));
    refused(
        &credence(&["verify-bundle", p(&bundle), "--genesis", &genesis, "--witnesses", "2"]),
        "no valid cosignature from: w.example/b",
    );
    let log = std::fs::read_to_string(net.dir.path().join("node0.log")).unwrap_or_default();
    assert!(log.contains("WITNESS REFUSED"), "the node logs the refusal");
}

/// The witnesses on a checkpoint note's cosignature lines, in note order.
fn cosigners(note: &str) -> Vec<String> {
    note.lines()
        .filter_map(|l| l.strip_prefix("\u{2014} w.example/"))
        .filter_map(|l| l.split(' ').next())
        .map(|n| format!("w.example/{n}"))
        .collect()
}

/// The height on a checkpoint note's extension line (`credence height=H round=R block=B`).
fn note_height(note: &str) -> u64 {
    note.lines().nth(3).and_then(|l| l.split(' ').nth(1)?.strip_prefix("height=")?.parse().ok()).unwrap_or(0)
}

/// `credence governance propose <change...>` by the single validator, waiting for its commit.
fn propose(net: &Testnet, change: &[&str]) -> serde_json::Value {
    let (key, api, genesis) = (net.key(0), net.api(0), net.genesis());
    let args = ["governance", "propose", "--key", &key, "--node", &api, "--genesis", &genesis, "--wait", "--json"];
    json(&ok(credence(&[&args[..], change].concat())))
}

/// The node's witnesses in force and every witness term (`GET /v1/governance`).
fn governance_witnesses(api: &str) -> (Vec<String>, Vec<serde_json::Value>) {
    let g = common::net::get(api, "/v1/governance").unwrap_or_default();
    let names = g["witnesses"]
        .as_array()
        .map_or(vec![], |w| w.iter().map(|w| w["name"].as_str().unwrap().to_string()).collect());
    (names, g["witness_history"].as_array().cloned().unwrap_or_default())
}

/// Governance names a second running `credence witness` (not in genesis): from the activation
/// height the node submits its checkpoints to it and serves its cosignatures; an auditor that
/// trusts it (`--witness <its vkey>`) counts two witnesses, one that does not ignores its line
/// and is refused k = 2 with a message naming the witness counted; after `remove-witness` the
/// node stops submitting to it.
#[test]
fn a_witness_named_by_governance_cosigns_from_its_activation_and_is_dropped_by_removal() {
    let net = Testnet::new(10, 1, 0);
    let dir = tempfile::tempdir().unwrap();
    let base = common::net::port_base(10);
    let (port_a, port_b) = (base + 30, base + 31);
    let (key_a, _) = net.name_witness("w.example/a", port_a);
    let genesis = net.genesis();
    let _wa = start_witness(dir.path(), "w.example/a", &key_a, &genesis, port_a);
    // Witness b is not in genesis: its key made now, its vkey read from what it prints.
    let key_b = dir.path().join("b.witness.key");
    ok(credence(&["keys", "generate", "--out", p(&key_b)]));
    let _wb = start_witness(dir.path(), "w.example/b", &key_b, &genesis, port_b);
    let mut vkey_b = String::new();
    wait_until("witness b to print its vkey", Duration::from_secs(10), || {
        let log = std::fs::read_to_string(dir.path().join(format!("witness-{port_b}.log"))).unwrap_or_default();
        vkey_b = log.lines().find_map(|l| l.strip_prefix("vkey ")).unwrap_or_default().to_string();
        !vkey_b.is_empty()
    });
    assert!(vkey_b.starts_with("w.example/b+"), "{vkey_b}");

    let mut node = net.start(0);
    let api = net.api(0);
    wait_until("the validator to commit", Duration::from_secs(60), || height(&api) >= 1);
    let saved = dir.path().join("cp.txt");
    ok(credence(&["checkpoint", "--node", &api, "--genesis", &genesis, "--save", p(&saved)]));
    wait_until("a checkpoint cosigned by witness a", Duration::from_secs(30), || {
        cosigners(&common::net::credence_http_get(&api, "/checkpoint").unwrap_or_default()) == ["w.example/a"]
    });
    assert_eq!(metric(&api, "credence_witness_cosignatures_total{witness=\"w.example/b\"}"), 0, "not in force yet");
    assert_eq!(metric(&api, "credence_witnesses_in_force "), 1);

    // Governance adds witness b (one validator: its proposal is the quorum).
    let url_b = format!("http://127.0.0.1:{port_b}");
    let added = propose(&net, &["add-witness", "--witness", &vkey_b, "--url", &url_b]);
    assert!(added["id"].is_string(), "{added}");
    let mut from = 0;
    wait_until("witness b in force", Duration::from_secs(30), || {
        let (names, history) = governance_witnesses(&api);
        from = history.iter().find(|w| w["name"] == "w.example/b").and_then(|w| w["from_height"].as_u64()).unwrap_or(0);
        names == ["w.example/a", "w.example/b"]
    });
    wait_until("the node to report two witnesses in force", Duration::from_secs(10), || {
        metric(&api, "credence_witnesses_in_force ") == 2
    });
    let (_, history) = governance_witnesses(&api);
    let b = history.iter().find(|w| w["name"] == "w.example/b").unwrap();
    assert_eq!((b["vkey"].as_str(), b["url"].as_str()), (Some(vkey_b.as_str()), Some(url_b.as_str())), "{b}");
    // Its cosignatures only on checkpoints from its activation height on.
    let mut note = String::new();
    wait_until("a checkpoint cosigned by both witnesses", Duration::from_secs(30), || {
        note = common::net::credence_http_get(&api, "/checkpoint").unwrap_or_default();
        cosigners(&note) == ["w.example/a", "w.example/b"]
    });
    let cosigned_height: u64 = note_height(&note);
    assert!(cosigned_height >= from, "cosigned at {cosigned_height}, in force from {from}: {note}");
    let cosigs =
        std::fs::read_to_string(net.config(0).parent().unwrap().join("data/cosignatures.txt")).unwrap_or_default();
    for line in cosigs.lines().filter(|l| l.contains("\u{2014} w.example/b ")) {
        let h: u64 = line.split(' ').next().unwrap().parse().unwrap();
        assert!(h >= from, "a kept cosignature of b at height {h}, before its activation at {from}");
    }

    // The auditor's policy: with b's vkey, two witnesses count; without it, b's line is ignored.
    let b_flag = ["--witness", vkey_b.as_str()];
    let audit = ["audit", "--since", p(&saved), "--genesis", &genesis, "--node", &api, "--witnesses", "2"];
    let out = ok(credence(&[&audit[..], &b_flag].concat()));
    assert!(
        stdout(&out).contains("cosigned by 2 of the trusted witnesses (2 required): w.example/a, w.example/b"),
        "{}",
        stdout(&out)
    );
    refused(
        &credence(&audit),
        "2 witnesses required but the policy names only 1 (genesis: w.example/a; --witness: none)",
    );
    // The same from the log's tiles.
    let tiles_audit = ["audit", "--since", p(&saved), "--genesis", &genesis, "--tiles", &api, "--witnesses", "2"];
    ok(credence(&[&tiles_audit[..], &b_flag].concat()));
    refused(&credence(&tiles_audit), "2 witnesses required but the policy names only 1");
    let audit1 = ["audit", "--since", p(&saved), "--genesis", &genesis, "--node", &api, "--witnesses", "1"];
    ok(credence(&audit1));
    let v = json(&ok(credence(&[
        "checkpoint",
        "--node",
        &api,
        "--genesis",
        &genesis,
        "--witnesses",
        "2",
        "--witness",
        &vkey_b,
        "--json",
    ])));
    assert_eq!(v["witnesses"], serde_json::json!(["w.example/a", "w.example/b"]), "{v}");

    // A bundle under a checkpoint cosigned by both: `prove` under the same policy counts b
    // with its vkey (and with --witnesses 2 writes no bundle until both cosigned), never without.
    let regulator = net.access_key(0, 0, "inspector", "regulator");
    let reader = ["--access-key", p(&regulator), "--purpose", "supervision"];
    let id = net.attest(0, 0, "2022")["id"].as_str().unwrap().to_string();
    let bundle = dir.path().join("bundle.json");
    let prove = ["prove", &id, "--out", p(&bundle), "--node", &api, "--genesis", &genesis];
    let mut proved = String::new();
    wait_until("a bundle under a checkpoint cosigned by both", Duration::from_secs(60), || {
        let out = credence(&[&prove[..], &reader, &b_flag, &["--witnesses", "2"]].concat());
        proved = stdout(&out);
        out.status.success()
    });
    assert!(
        proved.contains("cosigned by 2 of 2 trusted witnesses (w.example/a, w.example/b; lines of other witnesses kept, not counted)"),
        "{proved}"
    );
    let b: serde_json::Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    assert_eq!(cosigners(b["checkpoint"].as_str().unwrap()), ["w.example/a", "w.example/b"]);
    // Without b's vkey, k = 2 is out of the policy's reach: no bundle, the error says why.
    let short = credence(&[&prove[..], &reader, &["--witnesses", "2"]].concat());
    let err = String::from_utf8_lossy(&short.stderr).into_owned();
    assert!(
        !short.status.success()
            && err.contains("2 witnesses required but the policy names only 1 (genesis: w.example/a; --witness: none)"),
        "{err}"
    );
    let without = ok(credence(&[&prove[..], &reader].concat()));
    assert!(
        stdout(&without).contains(" of 1 trusted witnesses (") && !stdout(&without).contains("w.example/b;"),
        "b's line is kept, not counted, without its vkey: {}",
        stdout(&without)
    );
    // The last bundle written (without b's vkey) still carries b's line for auditors that trust it.
    wait_until("a bundle carrying b's line", Duration::from_secs(30), || {
        ok(credence(&[&prove[..], &reader].concat()));
        let b: serde_json::Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
        cosigners(b["checkpoint"].as_str().unwrap()) == ["w.example/a", "w.example/b"]
    });
    let verify = ["verify-bundle", p(&bundle), "--genesis", &genesis, "--witnesses", "2"];
    let v = json(&ok(credence(&[&verify[..], &b_flag, &["--json"]].concat())));
    assert_eq!(v["witnesses"], serde_json::json!(["w.example/a", "w.example/b"]), "{v}");
    refused(&credence(&verify), "2 witnesses required but the policy names only 1");
    // Trusting b with a's key under b's name is not b: its line is then ignored, k = 2 unmet.
    let pk_a = credence_ledger::genesis::Genesis::load(Path::new(&genesis)).unwrap().witnesses[0].public_key;
    let wrong = credence_ledger::witness::WitnessKey { name: "w.example/b".into(), key: pk_a }.to_vkey_string();
    refused(
        &credence(&[&verify[..], &["--witness", &wrong]].concat()),
        "2 witnesses required, 1 counted (w.example/a); no valid cosignature from: w.example/b",
    );

    // Governance removes b: from the removal's height the node stops submitting to it.
    propose(&net, &["remove-witness", "--name", "w.example/b"]);
    let mut until = 0;
    wait_until("witness b out of force", Duration::from_secs(30), || {
        let (names, history) = governance_witnesses(&api);
        until =
            history.iter().find(|w| w["name"] == "w.example/b").and_then(|w| w["until_height"].as_u64()).unwrap_or(0);
        names == ["w.example/a"] && until > 0
    });
    wait_until("a checkpoint past the removal cosigned by a", Duration::from_secs(30), || {
        let note = common::net::credence_http_get(&api, "/checkpoint").unwrap_or_default();
        let h: u64 = note_height(&note);
        h > until + 1 && cosigners(&note) == ["w.example/a"]
    });
    let b_before = metric(&api, "credence_witness_cosignatures_total{witness=\"w.example/b\"}");
    let head = height(&api);
    net.attest(0, 0, "2023");
    wait_until("three more cosigned heights", Duration::from_secs(30), || {
        let note = common::net::credence_http_get(&api, "/checkpoint").unwrap_or_default();
        let h: u64 = note_height(&note);
        h >= head + 3 && cosigners(&note) == ["w.example/a"]
    });
    assert_eq!(
        metric(&api, "credence_witness_cosignatures_total{witness=\"w.example/b\"}"),
        b_before,
        "no submission to b after its removal"
    );
    let cosigs =
        std::fs::read_to_string(net.config(0).parent().unwrap().join("data/cosignatures.txt")).unwrap_or_default();
    for line in cosigs.lines().filter(|l| l.contains("\u{2014} w.example/b ")) {
        let h: u64 = line.split(' ').next().unwrap().parse().unwrap();
        assert!((from..until).contains(&h), "a kept cosignature of b at height {h}, outside its term {from}..{until}");
    }
    let log = std::fs::read_to_string(net.dir.path().join("node0.log")).unwrap_or_default();
    assert!(log.contains("stopped submitting"), "the node logs that it stopped submitting to b");

    // From the chain itself: a stopped node's data directory verifies (every governance record
    // replayed under the rules) and lists b's term offline.
    node.stop();
    let data = net.config(0).parent().unwrap().join("data");
    // `verify` lists the witness terms of the governance it replayed, as it verified them.
    let out = stdout(&ok(credence(&["verify", "--data-dir", p(&data)])));
    let vkey_a = credence_ledger::witness::WitnessKey {
        name: "w.example/a".into(),
        key: credence_ledger::genesis::Genesis::load(Path::new(&genesis)).unwrap().witnesses[0].public_key,
    }
    .to_vkey_string();
    assert!(out.contains("(2 terms, 1 in force after the head)"), "{out}");
    assert!(
        out.contains(&format!("  w.example/a  from height 1 in force  {vkey_a}  http://127.0.0.1:{port_a}\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!("  w.example/b  from height {from} until height {until}  {vkey_b}  {url_b}\n")),
        "{out}"
    );
    let expected = serde_json::json!([
        {"name": "w.example/a", "vkey": vkey_a, "url": format!("http://127.0.0.1:{port_a}"), "from_height": 1, "until_height": null},
        {"name": "w.example/b", "vkey": vkey_b, "url": url_b, "from_height": from, "until_height": until},
    ]);
    let v = json(&ok(credence(&["verify", "--data-dir", p(&data), "--json"])));
    assert_eq!((&v["ok"], &v["witnesses"]), (&serde_json::json!(true), &expected), "{v}");
    // The same from an export file, verified against the genesis alone.
    let export = dir.path().join("chain.export");
    ok(credence(&["export", "--data-dir", p(&data), "--out", p(&export)]));
    let v = json(&ok(credence(&["verify", "--file", p(&export), "--genesis", &genesis, "--json"])));
    assert_eq!(v["witnesses"], expected, "{v}");
    let v = json(&ok(credence(&["governance", "list", "--data-dir", p(&data), "--json"])));
    let terms = v["witness_history"].as_array().unwrap();
    let b = terms.iter().find(|w| w["name"] == "w.example/b").unwrap();
    assert_eq!((b["from_height"].as_u64(), b["until_height"].as_u64()), (Some(from), Some(until)), "{v}");
    assert_eq!(b["vkey"], vkey_b.as_str());
    let out = ok(credence(&["governance", "status", "--data-dir", p(&data)]));
    assert!(
        stdout(&out).contains("witnesses in force 1") && !stdout(&out).contains("w.example/b+"),
        "{}",
        stdout(&out)
    );
}
