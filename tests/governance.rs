//! End-to-end governance with real processes: under a steady stream of records, 2/3 of
//! four validators add a fifth (its node made by `credence init --member`, started from
//! genesis, admitted by the peers' allow-lists once the addition is in force, then
//! certifying blocks), then remove one of the original four, and a validator rotates its
//! key and restarts its node with the new one; every node agrees and the chain never stalls.
//! Last, governance revokes a validator's leaked key: records signed with it are refused (R050).

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::net::{NodeProc, Testnet, get, height, port_base, start_witness, wait_until};
use common::{json, stdout};

/// The witness genesis names.
const WITNESS: &str = "w.example/g";

fn credence_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_credence")).current_dir(cwd).args(args).output().unwrap()
}

fn ok(what: &str, o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{what} failed: {}\n{}", stdout(o), String::from_utf8_lossy(&o.stderr));
    json(o)
}

/// `credence governance <args> --key KEY --node API --genesis G --wait --json`.
fn governance(net: &Testnet, key: &str, api: &str, args: &[&str]) -> serde_json::Value {
    let genesis = net.genesis();
    let mut all = vec!["governance"];
    all.extend_from_slice(&args[..1]);
    all.extend(["--key", key, "--node", api, "--genesis", &genesis, "--wait", "--json"]);
    all.extend_from_slice(&args[1..]);
    let o = credence_in(net.dir.path(), &all);
    if !o.status.success() {
        for i in 0..net.nodes.len() {
            let log = std::fs::read_to_string(net.dir.path().join(format!("node{i}.log"))).unwrap_or_default();
            let lines: Vec<&str> = log.lines().filter(|l| !l.contains("DEBUG")).collect();
            eprintln!("--- node{i}:\n{}", lines[lines.len().saturating_sub(15)..].join("\n"));
        }
    }
    ok(&format!("governance {args:?}"), &o)
}

fn validators(api: &str) -> Vec<String> {
    get(api, "/v1/governance")
        .and_then(|g| {
            g["validators"].as_array().map(|v| v.iter().filter_map(|n| n.as_str().map(String::from)).collect())
        })
        .unwrap_or_default()
}

/// The certificate of block `h` on `api` carries a signature line of `name`.
fn signed_by(api: &str, h: u64, name: &str) -> bool {
    get(api, &format!("/v1/blocks/{h}"))
        .and_then(|b| b["certificate"].as_str().map(|c| c.contains(&format!("— {name} "))))
        .unwrap_or(false)
}

#[test]
fn validators_join_leave_and_rotate_keys_by_governance_under_load() {
    let net = Testnet::new(0, 4, 0);
    let names: Vec<String> = net.nodes.iter().map(|n| n["name"].as_str().unwrap().to_string()).collect();
    // An outside witness named in genesis: it must follow the validator-set changes below.
    let witness_port = port_base(0) + 46;
    let (witness_key, _) = net.name_witness(WITNESS, witness_port);
    let _witness = start_witness(net.dir.path(), WITNESS, &witness_key, &net.genesis(), witness_port);
    let mut nodes: Vec<Option<NodeProc>> = (0..4).map(|i| Some(net.start(i))).collect();
    wait_until("the validators to commit", Duration::from_secs(90), || (0..4).all(|i| height(&net.api(i)) >= 2));
    // An auditor keeps a checkpoint of the genesis validators, to audit across the changes.
    let saved = net.dir.path().join("before-changes.cp");
    let o = credence_in(
        net.dir.path(),
        &["checkpoint", "--node", &net.api(0), "--genesis", &net.genesis(), "--save", saved.to_str().unwrap()],
    );
    assert!(o.status.success(), "checkpoint --save: {}", stdout(&o));

    // Load: member 3 (which proposes and approves nothing, so its sequences are its
    // own) attests through node 1, one record after another, until it is removed.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (stop, args, api) = (Arc::clone(&stop), net.rd_spend_args(3, "2024"), net.api(1));
        std::thread::spawn(move || {
            let mut committed = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let o = Command::new(env!("CARGO_BIN_EXE_credence"))
                    .args(&args)
                    .args(["--node", &api, "--wait", "--json"])
                    .output()
                    .unwrap();
                if o.status.success() {
                    committed += 1;
                }
            }
            committed
        })
    };

    // The fifth validator's operator makes a key and a node that knows its future name.
    let home = net.dir.path().join("bank-e");
    std::fs::create_dir_all(&home).unwrap();
    let out = credence_in(&home, &["keys", "generate", "--out", "bank-e.key"]);
    assert!(out.status.success());
    let public_key = stdout(&out).trim().to_string();
    let p2p = format!("127.0.0.1:{}", port_base(0) + 45);
    let api_e = format!("http://127.0.0.1:{}", port_base(0) + 1045);
    let init = [
        "init",
        "--genesis",
        &net.genesis(),
        "--key",
        "bank-e.key",
        "--data-dir",
        "node",
        "--p2p",
        &p2p,
        "--api",
        api_e.trim_start_matches("http://"),
        "--peer",
        net.nodes[0]["p2p"].as_str().unwrap(),
        "--peer",
        net.nodes[1]["p2p"].as_str().unwrap(),
        "--member",
        "bank-e",
    ];
    let o = credence_in(&home, &init);
    assert!(o.status.success(), "init --member: {}", String::from_utf8_lossy(&o.stderr));
    let mut node_e = NodeProc::start(&home.join("node/node.toml"), &home.join("node.log"));

    // Validators 0 (proposer), 1 and 2 make the quorum of four.
    let p = governance(
        &net,
        &net.key(0),
        &net.api(0),
        &["propose", "add-member", "--name", "bank-e", "--public-key", &public_key, "--roles", "bank", "--validator"],
    );
    let id = p["id"].as_str().unwrap().to_string();
    for i in [1, 2] {
        governance(&net, &net.key(i), &net.api(i), &["approve", "--proposal", &id]);
    }
    wait_until("bank-e in the set in force", Duration::from_secs(30), || {
        validators(&net.api(0)).contains(&"bank-e".to_string())
    });
    let added_at = height(&net.api(0));
    wait_until("bank-e's node to sync and certify blocks", Duration::from_secs(150), || {
        let h = height(&api_e);
        h > added_at + 2 && (added_at + 2..=h).any(|k| signed_by(&net.api(0), k, "bank-e"))
    });

    // Remove validator 3: the quorum of five is four (0, 1, 2 and bank-e).
    let p = governance(&net, &net.key(0), &net.api(0), &["propose", "remove-member", "--name", &names[3]]);
    let id = p["id"].as_str().unwrap().to_string();
    for i in [1, 2] {
        governance(&net, &net.key(i), &net.api(i), &["approve", "--proposal", &id]);
    }
    let e_key = home.join("bank-e.key");
    let o = credence_in(
        &home,
        &[
            "governance",
            "approve",
            "--key",
            e_key.to_str().unwrap(),
            "--node",
            &api_e,
            "--wait",
            "--json",
            "--proposal",
            &id,
        ],
    );
    ok("approve by bank-e", &o);
    wait_until("validator 3 out of the set", Duration::from_secs(30), || !validators(&net.api(0)).contains(&names[3]));
    let removed_at = height(&net.api(0));
    if let Some(mut n) = nodes[3].take() {
        n.stop();
    }
    wait_until("the chain to go on without validator 3", Duration::from_secs(30), || {
        height(&net.api(0)) >= removed_at + 3
    });
    for k in removed_at + 1..=height(&net.api(0)) {
        assert!(!signed_by(&net.api(0), k, &names[3]), "no certificate of {} after its removal (block {k})", names[3]);
    }

    // Validator 2 rotates its key, then restarts its node with the new one.
    let new_key = net.dir.path().join("v2-new.key");
    assert!(credence_in(net.dir.path(), &["keys", "generate", "--out", new_key.to_str().unwrap()]).status.success());
    let o = credence_in(
        net.dir.path(),
        &["governance", "rotate-key", "--key", &net.key(2), "--new-key", new_key.to_str().unwrap()]
            .into_iter()
            .chain(["--node", &net.api(2), "--genesis", &net.genesis(), "--wait", "--json"])
            .collect::<Vec<_>>(),
    );
    let rotated = ok("rotate-key", &o)["height"].as_u64().unwrap();
    wait_until("the rotation in force", Duration::from_secs(30), || height(&net.api(0)) >= rotated + 2);
    // A record signed with the rotated-out key is refused at the door: its signature
    // does not verify under the member's key in force, but under a key it rotated out (R049).
    let mut args = net.rd_spend_args(2, "2025");
    args.extend(["--node".into(), net.api(0)]);
    let o = credence_in(net.dir.path(), &args.iter().map(String::as_str).collect::<Vec<_>>());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("\"field\":\"signature\""), "old key: {err}");
    if let Some(mut n) = nodes[2].take() {
        n.stop();
    }
    std::fs::copy(&new_key, net.key(2)).unwrap();
    nodes[2] = Some(net.start(2));
    let restarted = height(&net.api(0));
    wait_until("validator 2 to certify again with its new key", Duration::from_secs(120), || {
        let h = height(&net.api(0));
        h > restarted + 2 && (restarted + 1..=h).any(|k| signed_by(&net.api(0), k, &names[2]))
    });

    stop.store(true, Ordering::SeqCst);
    let committed = load.join().unwrap();
    assert!(committed >= 5, "records committed under load: {committed}");

    // Every running node serves the same blocks.
    let apis = [net.api(0), net.api(1), net.api(2), api_e.clone()];
    let common = apis.iter().map(|a| height(a)).min().unwrap();
    for k in [added_at, removed_at, common] {
        let hashes: Vec<_> =
            apis.iter().map(|a| get(a, &format!("/v1/blocks/{k}")).map(|b| b["hash"].clone())).collect();
        assert!(hashes.iter().all(|h| h.is_some() && *h == hashes[0]), "block {k}: {hashes:?}");
    }
    // A leaked key: validators 0 and 2 and bank-e (3 of the 4 in force) revoke validator 1's
    // key for a replacement. From the activation height a record signed with the revoked key
    // is refused at the door with the revocation's code (R050); the replacement signs.
    let member_key = |name: &str| {
        get(&net.api(0), "/v1/governance").and_then(|g| {
            g["members"]
                .as_array()?
                .iter()
                .find(|m| m["name"] == name)
                .and_then(|m| m["key"].as_str().map(String::from))
        })
    };
    let old_hex = member_key(&names[1]).expect("validator 1's key in force");
    let replacement = net.dir.path().join("v1-replacement.key");
    let o = credence_in(net.dir.path(), &["keys", "generate", "--out", replacement.to_str().unwrap()]);
    assert!(o.status.success());
    let new_hex = stdout(&o).trim().to_string();
    let p = governance(
        &net,
        &net.key(0),
        &net.api(0),
        &["propose", "revoke-key", "--name", &names[1], "--revoked-key", &old_hex, "--replacement", &new_hex],
    );
    let id = p["id"].as_str().unwrap().to_string();
    // Signed with validator 2's rotated key.
    let by_v2 =
        governance(&net, &net.key(2), &net.api(2), &["approve", "--proposal", &id])["id"].as_str().unwrap().to_string();
    let o = credence_in(
        &home,
        &["governance", "approve", "--key", e_key.to_str().unwrap(), "--node", &api_e, "--wait", "--json"]
            .into_iter()
            .chain(["--proposal", &id])
            .collect::<Vec<_>>(),
    );
    let by_bank_e = ok("approve the revocation by bank-e", &o)["id"].as_str().unwrap().to_string();
    wait_until("the revocation in force", Duration::from_secs(30), || {
        member_key(&names[1]).is_some_and(|k| k == new_hex)
    });
    let mut args = net.rd_spend_args(1, "2026");
    args.extend(["--node".into(), net.api(0)]);
    let o = credence_in(net.dir.path(), &args.iter().map(String::as_str).collect::<Vec<_>>());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("\"code\":\"R050\""), "revoked key: {err}");
    assert!(err.contains("revoked from height"), "the refusal names the revocation: {err}");
    let mut args = net.rd_spend_args(1, "2026");
    let at = args.iter().position(|a| a == "--key").unwrap() + 1;
    args[at] = replacement.to_str().unwrap().to_string();
    args.extend(["--node".into(), net.api(0)]);
    let o = credence_in(net.dir.path(), &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "the replacement key signs: {}", String::from_utf8_lossy(&o.stderr));

    offline_checks_walk_the_set_changes(&net, &id, &by_bank_e);
    tiles_and_the_witness_follow_the_set_changes(&net, &id, &[&by_bank_e, &by_v2], witness_port);

    node_e.stop();
    for mut n in nodes.into_iter().flatten() {
        n.stop();
    }
}

/// After four validator-set changes (bank-e added, validator 3 removed, validator 2's key
/// rotated, validator 1's key revoked), the offline checks walk the certified set changes
/// from genesis: `prove` puts them in the bundle, `verify-bundle` accepts it and refuses it
/// with a change dropped or the changes cut; `checkpoint --genesis` and `audit` check the
/// node's checkpoint against the set in force; a third-party C2SP verifier (signed_note) given
/// the verifier keys in force accepts the checkpoint, and given the genesis keys does not.
fn offline_checks_walk_the_set_changes(net: &Testnet, proposal: &str, by_bank_e: &str) {
    use signed_note::{Note, StandardVerifier, VerifierList};
    let dir = net.dir.path();
    let genesis = net.genesis();
    let api = net.api(0);
    let now = height(&api);
    wait_until("the revocation to be certified", Duration::from_secs(30), || height(&api) >= now + 2);

    let bundle = dir.join("across-changes.json");
    let b = bundle.to_str().unwrap();
    let key = net.access_key(0, 0, "auditor", "member");
    let k = key.to_str().unwrap();
    let o =
        credence_in(dir, &["prove", proposal, "--node", &api, "--genesis", &genesis, "--access-key", k, "--out", b]);
    assert!(o.status.success(), "prove: {}\n{}", stdout(&o), String::from_utf8_lossy(&o.stderr));
    let v = ok("verify-bundle", &credence_in(dir, &["verify-bundle", b, "--genesis", &genesis, "--json"]));
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["set_changes"], 4, "add, remove, rotation, revocation: {v}");
    assert_eq!(v["validators"], 4, "{v}");
    let original: serde_json::Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();

    let refused = |mutate: &dyn Fn(&mut serde_json::Value), expect: &str| {
        let mut m = original.clone();
        mutate(&mut m);
        let path = dir.join("mutated.json");
        std::fs::write(&path, m.to_string()).unwrap();
        let o = credence_in(dir, &["verify-bundle", path.to_str().unwrap(), "--genesis", &genesis, "--json"]);
        assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
        let v = json(&o);
        assert_eq!(v["valid"], false, "{v}");
        assert!(v["reason"].as_str().unwrap().contains(expect), "expected '{expect}': {v}");
        v
    };
    // The change in the middle (validator 3's removal) dropped.
    let v = refused(&|m| drop(m["set_changes"].as_array_mut().unwrap().remove(1)), "a set change before height");
    assert_eq!(v["field"], "set_changes", "{v}");
    // No changes at all: the checkpoint of the set in force is refused against genesis.
    let v = refused(
        &|m| {
            m.as_object_mut().unwrap().remove("set_changes");
        },
        "genesis validators",
    );
    assert_eq!(v["field"], "verifier_keys", "{v}");
    // The revocation's change signed by too few: its certificate cut to one signature line.
    refused(
        &|m| {
            let c = &mut m["set_changes"][3]["certificate"];
            let note = c.as_str().unwrap().to_string();
            let (text, sigs) = note.split_once("\n\n").unwrap();
            *c = format!("{text}\n\n{}\n", sigs.lines().next().unwrap()).into();
        },
        "change 3",
    );

    // A record by bank-e, a member governance added: its bundle carries the add-member
    // proposal that named its key (attester_keys) and verifies from genesis; without it, the
    // attester is refused as no genesis member.
    let by_new = dir.join("by-bank-e.json");
    let o = credence_in(
        dir,
        &[
            "prove",
            by_bank_e,
            "--node",
            &api,
            "--genesis",
            &genesis,
            "--access-key",
            k,
            "--out",
            by_new.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "prove: {}\n{}", stdout(&o), String::from_utf8_lossy(&o.stderr));
    let v = ok(
        "verify-bundle",
        &credence_in(dir, &["verify-bundle", by_new.to_str().unwrap(), "--genesis", &genesis, "--json"]),
    );
    assert_eq!((v["valid"].clone(), v["attester"].clone()), (true.into(), "bank-e".into()), "{v}");
    let mut bare: serde_json::Value = serde_json::from_slice(&std::fs::read(&by_new).unwrap()).unwrap();
    assert_eq!(bare["attester_keys"].as_array().map(Vec::len), Some(1), "the add-member proposal");
    bare.as_object_mut().unwrap().remove("attester_keys");
    std::fs::write(&by_new, bare.to_string()).unwrap();
    let o = credence_in(dir, &["verify-bundle", by_new.to_str().unwrap(), "--genesis", &genesis, "--json"]);
    let v = json(&o);
    assert!(
        v["valid"] == false && v["reason"].as_str().unwrap().contains("not a member of this chain's genesis"),
        "{v}"
    );

    // The node's current checkpoint, checked against the set in force, and an audit from
    // the genesis validators' checkpoint to it.
    let v =
        ok("checkpoint --genesis", &credence_in(dir, &["checkpoint", "--node", &api, "--genesis", &genesis, "--json"]));
    assert_eq!(v["valid"], true, "{v}");
    assert!(v["validators_since"].as_u64().unwrap() > 1, "{v}");
    let saved = dir.join("before-changes.cp");
    let o = credence_in(dir, &["audit", "--since", saved.to_str().unwrap(), "--genesis", &genesis, "--node", &api]);
    assert!(o.status.success() && stdout(&o).starts_with("APPEND-ONLY"), "audit: {}", stdout(&o));

    // A third-party C2SP verifier with the verifier keys in force (the bundle's, which
    // verify-bundle reached from genesis) accepts the checkpoint; with the genesis keys, no quorum.
    let note = original["checkpoint"].as_str().unwrap().as_bytes().to_vec();
    let verifiers = |keys: &[String]| {
        VerifierList::new(
            keys.iter()
                .map(|k| Box::new(StandardVerifier::new(k).expect("vkey")) as Box<dyn signed_note::Verifier>)
                .collect(),
        )
    };
    let in_force: Vec<String> =
        original["verifier_keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_string()).collect();
    let (verified, _) = Note::from_bytes(&note).unwrap().verify(&verifiers(&in_force)).expect("verifies");
    assert!(3 * verified.len() > 2 * in_force.len(), "{} of {}", verified.len(), in_force.len());
    let g = credence_ledger::genesis::Genesis::load(Path::new(&genesis)).unwrap();
    let genesis_keys: Vec<String> = g.verifier_keys().iter().map(|k| k.to_vkey_string()).collect();
    let counted =
        Note::from_bytes(&note).unwrap().verify(&verifiers(&genesis_keys)).map_or(0, |(verified, _)| verified.len());
    assert!(3 * counted <= 2 * genesis_keys.len(), "the genesis keys alone reach no quorum: {counted}");
}

/// After the same four changes: the witness, shown the certified set changes by the node when
/// it refused the new set's checkpoints, cosigns a checkpoint of the set now in force; a mirror
/// of the tiles carries the set changes, and `verify --tiles`, `audit --tiles` and
/// `prove --tiles` check checkpoints against the set in force at their height (entries of
/// bank-e and the rotated and replacement keys verify under the keys governance named).
fn tiles_and_the_witness_follow_the_set_changes(net: &Testnet, proposal: &str, named: &[&str], witness_port: u16) {
    let dir = net.dir.path();
    let genesis = net.genesis();
    let api = net.api(0);
    let changes = get(&api, "/v1/set-changes").expect("set changes");
    let last_change = changes["set_changes"].as_array().and_then(|c| c.last()).expect("four changes")["height"].clone();
    wait_until("a checkpoint of the set in force cosigned by the witness", Duration::from_secs(60), || {
        let o = credence_in(dir, &["checkpoint", "--node", &api, "--genesis", &genesis, "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        // The set in force since the last change (the revocation) has no quorum of genesis keys.
        v["note"].as_str().is_some_and(|n| n.contains(&format!("\u{2014} {WITNESS} ")))
            && v["validators_since"] == last_change
    });
    let state = dir.join(format!("state-{witness_port}"));
    let held =
        std::fs::read_dir(&state).unwrap().flatten().any(|e| e.file_name().to_string_lossy().ends_with(".sets.json"));
    assert!(held, "the witness keeps the set changes it was shown");

    let mirror = dir.join("mirror");
    let key = net.access_key(0, 0, "tiles-reader", "regulator");
    let m = mirror.to_str().unwrap();
    let v = ok(
        "mirror",
        &credence_in(
            dir,
            &[
                "mirror",
                "--tiles",
                &api,
                "--out",
                m,
                "--genesis",
                &genesis,
                "--access-key",
                key.to_str().unwrap(),
                "--json",
            ],
        ),
    );
    assert_eq!(v["valid"], true, "{v}");
    assert!(mirror.join("v1/set-changes").is_file(), "the mirror keeps the set changes beside the tiles");
    let v = ok("verify --tiles", &credence_in(dir, &["verify", "--tiles", m, "--genesis", &genesis, "--json"]));
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["set_changes"], 4, "{v}");
    assert!(v["by_named_key"].as_u64().unwrap() >= 2, "bank-e's approvals and the replacement key's record: {v}");
    let saved = dir.join("before-changes.cp");
    let o = credence_in(dir, &["audit", "--since", saved.to_str().unwrap(), "--genesis", &genesis, "--tiles", m]);
    assert!(o.status.success() && stdout(&o).starts_with("APPEND-ONLY"), "audit --tiles: {}", stdout(&o));
    let bundle = dir.join("from-tiles.json");
    let b = bundle.to_str().unwrap();
    let o = credence_in(dir, &["prove", proposal, "--tiles", m, "--genesis", &genesis, "--out", b]);
    assert!(o.status.success(), "prove --tiles: {}\n{}", stdout(&o), String::from_utf8_lossy(&o.stderr));
    let v = ok("verify-bundle", &credence_in(dir, &["verify-bundle", b, "--genesis", &genesis, "--json"]));
    assert_eq!((v["valid"].clone(), v["set_changes"].clone()), (true.into(), 4.into()), "{v}");
    // Records under keys governance named (bank-e's, added; validator 2's, rotated): the
    // bundle from the tiles carries the one record that named each key.
    for id in named {
        let o = credence_in(dir, &["prove", id, "--tiles", m, "--genesis", &genesis, "--out", b]);
        assert!(o.status.success(), "prove --tiles {id}: {}\n{}", stdout(&o), String::from_utf8_lossy(&o.stderr));
        let v = ok("verify-bundle", &credence_in(dir, &["verify-bundle", b, "--genesis", &genesis, "--json"]));
        assert_eq!(v["valid"], true, "{v}");
        let made: serde_json::Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
        assert_eq!(made["attester_keys"].as_array().map(Vec::len), Some(1), "{id}: {made}");
    }
}
