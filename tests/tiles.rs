//! End-to-end: a running testnet's C2SP tiles mirrored, resumed and verified offline, and `audit`, `prove`, `verify-bundle` and `verify` working from tiles instead of the node API.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::net::{Testnet, height, wait_until};
use common::{credence, json, stdout};

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "failed ({}): {}\n{}", o.status, stdout(&o), String::from_utf8_lossy(&o.stderr));
    o
}

fn refused(o: &Output, needle: &str) {
    assert_eq!(o.status.code(), Some(1), "expected a refusal: {}\n{}", stdout(o), String::from_utf8_lossy(&o.stderr));
    assert!(stdout(o).contains(needle), "expected '{needle}' in: {}", stdout(o));
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn a_mirror_of_a_running_testnet_verifies_and_the_auditor_works_from_tiles() {
    let net = Testnet::new(8, 1, 0);
    let _node = net.start(0);
    let api = net.api(0);
    wait_until("the validator to commit", Duration::from_secs(60), || height(&api) >= 1);
    let dir = tempfile::tempdir().unwrap();
    let (mirror, cp) = (dir.path().join("mirror"), dir.path().join("cp.txt"));
    let genesis = net.genesis();

    let first = net.attest(0, 0, "2021");
    ok(credence(&["checkpoint", "--node", &api, "--genesis", &genesis, "--save", p(&cp)]));
    let v = json(&ok(credence(&["mirror", "--tiles", &api, "--out", p(&mirror), "--genesis", &genesis, "--json"])));
    assert_eq!(v["valid"], true, "{v}");
    let size1 = v["tree_size"].as_u64().unwrap();
    assert!(size1 >= 1 && v["fetched"].as_u64().unwrap() >= 2, "{v}");
    assert!(mirror.join("checkpoint").is_file() && mirror.join("tile/entries/000.p/1").exists() || size1 > 1);

    // The log grows; the mirror is resumed and extended, its earlier checkpoint a prefix.
    for period in ["2022", "2023", "2020"] {
        net.attest(0, 0, period);
    }
    let v = json(&ok(credence(&["mirror", "--tiles", &api, "--out", p(&mirror), "--genesis", &genesis, "--json"])));
    assert_eq!(v["extended_from"], size1, "{v}");
    assert!(v["tree_size"].as_u64().unwrap() >= size1 + 3, "{v}");

    // Verification from the copy and from the node's tiles.
    let v = json(&ok(credence(&["verify", "--tiles", p(&mirror), "--genesis", &genesis, "--json"])));
    assert_eq!((v["valid"].as_bool(), v["entries"].as_u64()), (Some(true), v["tree_size"].as_u64()), "{v}");
    ok(credence(&["verify", "--tiles", &api, "--genesis", &genesis]));
    // An audit against the copy: append-only since the saved checkpoint.
    let out = ok(credence(&["audit", "--since", p(&cp), "--genesis", &genesis, "--tiles", p(&mirror)]));
    assert!(stdout(&out).contains("APPEND-ONLY"), "{}", stdout(&out));

    // A bundle built from the tiles verifies, and is still in the log.
    let id = first["id"].as_str().unwrap();
    let bundle = dir.path().join("b.json");
    ok(credence(&["prove", id, "--tiles", &api, "--genesis", &genesis, "--out", p(&bundle)]));
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
    refused(&credence(&["mirror", "--tiles", &api, "--out", p(&mirror), "--genesis", &genesis]), "MIRROR REFUSED");
    // With the genuine checkpoint back, a resumed mirror fetches the partial tiles anew and
    // repairs the copy.
    std::fs::write(mirror.join("checkpoint"), note).unwrap();
    ok(credence(&["mirror", "--tiles", &api, "--out", p(&mirror), "--genesis", &genesis]));
    ok(credence(&["verify", "--tiles", p(&mirror), "--genesis", &genesis]));
}
