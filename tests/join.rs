//! End-to-end: an institution joins a running consortium the way README.md ("Joining a
//! consortium") says — a key from `credence keys generate`, listed in the genesis by the
//! consortium, `credence init` with the genesis and a peer (relative paths, from its own
//! working directory), `credence node --config DIR/node.toml` — and its node syncs the
//! chain the validators committed before it started, serves the same head, and carries
//! the new member's own attestations to the validators.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::net::{NodeProc, Testnet, get, height, port_base, status, wait_until};
use common::{json, stdout};

/// Runs `credence args...` in directory `cwd`.
fn credence_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_credence")).current_dir(cwd).args(args).output().unwrap()
}

fn ok(what: &str, o: &Output) {
    assert!(o.status.success(), "{what} failed: {}\n{}", stdout(o), String::from_utf8_lossy(&o.stderr));
}

/// What the consortium does with a joining member's public key before the chain starts:
/// lists it in genesis.toml (README.md). Every copy the testnet wrote gets the same entry.
fn list_member_in_genesis(net: &Testnet, name: &str, public_key: &str, roles: &[&str]) {
    let roles = roles.iter().map(|r| format!("\"{r}\"")).collect::<Vec<_>>().join(", ");
    let entry = format!(
        "\n[[members]]\nname = \"{name}\"\npublic_key = \"{public_key}\"\nroles = [{roles}]\nvalidator = false\n"
    );
    let mut copies = vec![net.dir.path().join("genesis.toml")];
    for n in &net.nodes {
        copies.push(Path::new(n["data_dir"].as_str().unwrap()).join("genesis.toml"));
    }
    for path in copies {
        let mut text = std::fs::read_to_string(&path).unwrap();
        let last_table = text.rfind("\n[").map(|i| &text[i + 1..]);
        assert!(last_table.is_some_and(|t| t.starts_with("[[members]]")), "{}: members are last", path.display());
        text.push_str(&entry);
        std::fs::write(&path, text).unwrap();
    }
}

/// Waits for `f` like `wait_until`; on timeout, fails with the end of each log in `logs`.
fn wait_or_show(logs: &[PathBuf], what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        if Instant::now() > deadline {
            let mut tails = String::new();
            for log in logs {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(30)..].join("\n");
                tails.push_str(&format!("\n--- {}:\n{tail}", log.display()));
            }
            panic!("timed out waiting for {what}{tails}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The head a node's status reports: height, block hash, tree size and root, chain id.
fn head(api: &str) -> Option<(u64, String, u64, String, String)> {
    let s = status(api)?;
    Some((
        s["height"].as_u64()?,
        s["block_hash"].as_str()?.to_string(),
        s["tree_size"].as_u64()?,
        s["tree_root"].as_str()?.to_string(),
        s["chain_id"].as_str()?.to_string(),
    ))
}

#[test]
fn an_institution_joins_by_the_readme_and_syncs_the_chain_from_its_peer() {
    // The consortium: four validators, files written but not started yet.
    let net = Testnet::new(0, 4, 0);

    // 1. The institution makes its key; the command prints the public key to send.
    let home = net.dir.path().join("sc-shenzhen");
    std::fs::create_dir_all(&home).unwrap();
    let out = credence_in(&home, &["keys", "generate", "--out", "sc-shenzhen.key"]);
    ok("keys generate", &out);
    let public_key = stdout(&out).trim().to_string();
    assert_eq!(public_key.len(), 64, "{public_key}");

    // 2. The consortium lists it in the genesis (a tech-finance service centre: it attests
    //    R&D spend), and the genesis reaches the institution.
    list_member_in_genesis(&net, "sc-shenzhen", &public_key, &["service-centre"]);

    // A second institution keeps its key encrypted, its passphrase in a file named
    // relative to its working directory: node.toml must name that file absolutely (a
    // relative path there would be read against node.toml's directory instead).
    let bank = net.dir.path().join("bank-futian");
    std::fs::create_dir_all(&bank).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(bank.join("pass"), "correct horse\n").unwrap();
        std::fs::set_permissions(bank.join("pass"), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let out = credence_in(&bank, &["keys", "generate", "--out", "bank.key", "--passphrase-file", "pass"]);
    ok("keys generate --passphrase-file", &out);
    list_member_in_genesis(&net, "bank-futian", stdout(&out).trim(), &["bank"]);
    let init = ["init", "--genesis", &net.genesis(), "--key", "bank.key", "--passphrase-file", "pass"];
    ok("init with a passphrase file", &credence_in(&bank, &[&init[..], &["--data-dir", "node"]].concat()));
    let text = std::fs::read_to_string(bank.join("node/node.toml")).unwrap();
    let pass = std::fs::canonicalize(bank.join("pass")).unwrap();
    assert!(text.contains(&format!("key_passphrase_file = \"{}\"", pass.display())), "{text}");

    // The genesis, complete, reaches the institutions.
    std::fs::copy(net.genesis(), home.join("genesis.toml")).unwrap();

    // The consortium starts, and commits history before the institution's node exists.
    let validators: Vec<NodeProc> = (0..4).map(|i| net.start(i)).collect();
    wait_until("the validators to commit", Duration::from_secs(90), || (0..4).all(|i| height(&net.api(i)) >= 2));
    for (i, period) in ["2021", "2022", "2023"].into_iter().enumerate() {
        net.attest(i, i, period);
    }
    let committed = height(&net.api(0));

    // 3. `credence init` with the genesis, its key and one member's p2p address, relative
    //    paths from its own directory, as an operator types them.
    let p2p = format!("127.0.0.1:{}", port_base(0) + 45);
    let api_addr = format!("127.0.0.1:{}", port_base(0) + 1045);
    let peer = net.nodes[0]["p2p"].as_str().unwrap();
    let out = credence_in(
        &home,
        &[
            "init",
            "--genesis",
            "genesis.toml",
            "--key",
            "sc-shenzhen.key",
            "--data-dir",
            "node",
            "--p2p",
            &p2p,
            "--api",
            &api_addr,
            "--peer",
            peer,
        ],
    );
    ok("init", &out);
    let config = home.join("node/node.toml");
    assert!(stdout(&out).contains("credence node --config"), "{}", stdout(&out));
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(!text.contains("\"\""), "no empty paths in node.toml:\n{text}");
    // `init` refuses to overwrite an existing node.
    assert!(
        !credence_in(&home, &["init", "--genesis", "genesis.toml", "--key", "sc-shenzhen.key", "--data-dir", "node"])
            .status
            .success()
    );

    // 4. `credence node --config DIR/node.toml`, started from another directory.
    let mut member = NodeProc::start(&config, &net.dir.path().join("sc-shenzhen.log"));
    let api = format!("http://{api_addr}");
    let logs = [net.dir.path().join("sc-shenzhen.log"), net.dir.path().join("node0.log")];
    wait_or_show(&logs, "the new member's node to sync", Duration::from_secs(90), || height(&api) >= committed);
    let s = status(&api).unwrap();
    assert_eq!(s["member"], "sc-shenzhen", "{s}");
    assert_eq!(s["validator"], false, "{s}");
    // The same chain, the same head as the consortium's.
    wait_or_show(&logs, "the same head on the member's node and its peer", Duration::from_secs(60), || {
        let (a, b) = (head(&api), head(&net.api(0)));
        a.is_some() && a == b
    });
    for h in 1..=committed {
        let block = |url: &str| get(url, &format!("/v1/blocks/{h}")).map(|b| b["hash"].clone());
        assert_eq!(block(&api), block(&net.api(0)), "block {h}");
    }

    // The new member attests through its own node (README's `credence attest` line); the
    // validators commit it and every node serves it.
    let out = Command::new(env!("CARGO_BIN_EXE_credence"))
        .args(["attest", "rd-spend", "--enterprise", "914403001922038216", "--period", "2024", "--amount"])
        .args(["1250000.00", "--key", home.join("sc-shenzhen.key").to_str().unwrap(), "--node", &api])
        .args(["--wait", "--json"])
        .output()
        .unwrap();
    ok("attest through the member's node", &out);
    let receipt = json(&out);
    let id = receipt["id"].as_str().unwrap_or_else(|| panic!("no id in {receipt}")).to_string();
    wait_until("the validators to serve the new member's attestation", Duration::from_secs(30), || {
        get(&net.api(3), &format!("/v1/proofs/inclusion/{id}")).is_some_and(|p| p["id"] == id.as_str())
    });

    // Stopped, its data directory verifies offline.
    member.stop();
    let v = json(&credence_in(&home, &["verify", "--data-dir", "node", "--json"]));
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["attestations"].as_u64().unwrap() >= 4, "{v}");
    for mut n in validators {
        n.stop();
    }
}
