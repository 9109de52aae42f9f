//! End-to-end: `credence generate`, `export` and `verify` on real files, including damaged ones.

mod common;

use common::{credence, json};

fn generate(dir: &std::path::Path, records: &str) {
    let out = credence(&["generate", "--records", records, "--block-records", "250", "--out", dir.to_str().unwrap()]);
    assert!(out.status.success(), "generate failed: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn generated_chain_verifies_from_store_and_from_export() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    generate(&data, "2000");
    let d = data.to_str().unwrap();

    let v = json(&credence(&["verify", "--data-dir", d, "--json"]));
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["blocks"], 8);
    assert_eq!(v["attestations"], 2000);
    assert!(v["attestations_per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(v["head"]["tree_size"], 2000);
    assert_eq!(v["witnesses"], serde_json::json!([]), "the demo genesis names no witness, nor does governance: {v}");

    // `bench verify` reports the rate against both ceilings, with the chain's signer count.
    let b = json(&credence(&["bench", "verify", "--data-dir", d, "--ceiling-seconds", "0.1"]));
    assert_eq!(b["verify_attestations"], 2000, "{b}");
    let signers = b["signers"].as_u64().unwrap();
    assert!((2..=16).contains(&signers), "{b}");
    let rate = b["verify_attestations_per_second"].as_f64().unwrap();
    let distinct = b["ceiling_signatures_per_second"].as_f64().unwrap();
    let same = b["same_signers_ceiling_signatures_per_second"].as_f64().unwrap();
    let same_dalek = b["same_signers_dalek_signatures_per_second"].as_f64().unwrap();
    let same_table = b["same_signers_key_table_signatures_per_second"].as_f64().unwrap();
    assert!(rate > 0.0 && distinct > 0.0 && same_dalek > 0.0 && same_table > 0.0, "{b}");
    assert_eq!(same, same_dalek.max(same_table), "{b}");
    assert!((b["ratio_distinct_keys"].as_f64().unwrap() - rate / distinct).abs() < 1e-9, "{b}");
    assert_eq!(b["ratio"], b["ratio_distinct_keys"]);
    assert!((b["ratio_same_signers"].as_f64().unwrap() - rate / same).abs() < 1e-9, "{b}");

    let file = dir.path().join("chain.export");
    let f = file.to_str().unwrap();
    let out = credence(&["export", "--data-dir", d, "--out", f]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let genesis = data.join("genesis.toml");
    let g = genesis.to_str().unwrap();
    let from_file = json(&credence(&["verify", "--file", f, "--genesis", g, "--json"]));
    assert_eq!(from_file["ok"], true, "{from_file}");
    assert_eq!(from_file["head"], v["head"], "same chain, same head");
}

#[test]
fn damaged_export_files_fail_at_the_right_place() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    generate(&data, "1000");
    let file = dir.path().join("chain.export");
    let out = credence(&["export", "--data-dir", data.to_str().unwrap(), "--out", file.to_str().unwrap()]);
    assert!(out.status.success());
    let genesis = data.join("genesis.toml");
    let bytes = std::fs::read(&file).unwrap();
    let damaged = dir.path().join("damaged.export");
    let check = |bytes: &[u8]| {
        std::fs::write(&damaged, bytes).unwrap();
        let out = credence(&[
            "verify",
            "--file",
            damaged.to_str().unwrap(),
            "--genesis",
            genesis.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(out.status.code(), Some(1), "a damaged file must fail with exit code 1");
        let v = json(&out);
        assert_eq!(v["ok"], false);
        assert!(v["height"].as_u64().is_some(), "{v}");
        assert!(!v["reason"].as_str().unwrap().is_empty(), "{v}");
        v
    };

    // Truncated at the end: the trailer is missing, every block still verifies.
    let v = check(&bytes[..bytes.len() - 20]);
    assert_eq!(v["blocks"], 4);
    assert_eq!(v["height"], 5);
    assert!(v["reason"].as_str().unwrap().contains("truncated"), "{v}");

    // Truncated in the middle of the file.
    let v = check(&bytes[..bytes.len() / 2]);
    assert!(v["height"].as_u64().unwrap() <= 3, "{v}");

    // A flipped bit anywhere is caught (sample positions across the file).
    for pos in (45..bytes.len()).step_by(bytes.len() / 37) {
        let mut b = bytes.clone();
        b[pos] ^= 0x04;
        check(&b);
    }

    // Not an export file at all.
    let v = check(b"hello, world: definitely not an export file of any kind");
    assert!(v["reason"].as_str().unwrap().contains("magic"), "{v}");
}

#[test]
fn verify_refuses_a_different_genesis() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    generate(&a, "10");
    let out = credence(&["generate", "--records", "10", "--seed", "2", "--out", b.to_str().unwrap()]);
    assert!(out.status.success());
    let file = dir.path().join("a.export");
    assert!(credence(&["export", "--data-dir", a.to_str().unwrap(), "--out", file.to_str().unwrap()]).status.success());
    let out = credence(&[
        "verify",
        "--file",
        file.to_str().unwrap(),
        "--genesis",
        b.join("genesis.toml").to_str().unwrap(),
        "--json",
    ]);
    let v = json(&out);
    assert_eq!(v["ok"], false);
    assert!(v["reason"].as_str().unwrap().contains("genesis"), "{v}");
}

#[test]
fn keys_are_private_and_show_their_verifier_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("bank-x.key");
    let out = credence(&["keys", "generate", "--out", key.to_str().unwrap()]);
    assert!(out.status.success());
    let public = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(public.len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let v = json(&credence(&["keys", "show", key.to_str().unwrap(), "--json"]));
    assert_eq!(v["public_key"], public.as_str());
    assert_eq!(v["name"], "bank-x");
    assert!(v["verifier_key"].as_str().unwrap().starts_with("bank-x+"), "{v}");
    // Never overwrite a key.
    assert!(!credence(&["keys", "generate", "--out", key.to_str().unwrap()]).status.success());
    // A key file others can read is refused, and the secret is not echoed.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = credence(&["keys", "show", key.to_str().unwrap()]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("chmod 600"), "{err}");
        let secret = std::fs::read_to_string(&key).unwrap();
        let seed_line = secret.lines().last().unwrap();
        assert!(!err.contains(seed_line));
    }
}

#[test]
fn keys_can_be_encrypted_with_a_passphrase_from_env_or_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("bank-y.key");
    let bin = env!("CARGO_BIN_EXE_credence");
    let run = |args: &[&str], pass: Option<&str>| {
        let mut c = std::process::Command::new(bin);
        c.args(args).env_remove("CREDENCE_TEST_PASS");
        if let Some(p) = pass {
            c.env("CREDENCE_TEST_PASS", p);
        }
        c.output().unwrap()
    };
    let k = key.to_str().unwrap();
    let out = run(&["keys", "generate", "--out", k, "--passphrase-env", "CREDENCE_TEST_PASS"], Some("s3cret pass"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let public = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(text.contains("credence-encrypted-key-v1 argon2id"), "{text}");
    // Without the passphrase: a clear refusal.
    let out = run(&["keys", "show", k], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("encrypted with a passphrase"), "{err}");
    // Unset variable: named.
    let out = run(&["keys", "show", k, "--passphrase-env", "CREDENCE_TEST_PASS"], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("CREDENCE_TEST_PASS"), "{out:?}");
    // Wrong passphrase: refused, and neither passphrase is echoed.
    let out = run(&["keys", "show", k, "--passphrase-env", "CREDENCE_TEST_PASS"], Some("guess"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("wrong passphrase") && !err.contains("guess"), "{err}");
    // Right passphrase, from a 0600 file this time.
    let pass = dir.path().join("pass");
    credence_node::keyfile::write_private(&pass, "s3cret pass\n").unwrap();
    let v = json(&run(&["keys", "show", k, "--json", "--passphrase-file", pass.to_str().unwrap()], None));
    assert_eq!(v["public_key"], public.as_str());

    // The encrypted key signs attestations and prepares a node: a one-validator testnet's
    // genesis with this key in place of its validator's.
    let net = dir.path().join("net");
    let out = run(&["testnet", "--validators", "1", "--dir", net.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plain = std::fs::read_to_string(net.join("genesis.toml")).unwrap();
    let old = plain.lines().find_map(|l| l.strip_prefix("public_key = \"")).unwrap().trim_end_matches('"').to_string();
    let genesis = dir.path().join("genesis.toml");
    std::fs::write(&genesis, plain.replace(&old, &public)).unwrap();
    let g = genesis.to_str().unwrap();
    let attest = ["attest", "rd-spend", "--enterprise", "914403001922038216", "--period", "2024", "--amount", "1.00"];
    let tail = ["--key", k, "--genesis", g, "--sequence", "1", "--dry-run"];
    let out = run(&[&attest[..], &tail[..]].concat(), None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("encrypted with a passphrase"), "{out:?}");
    let with_pass = [&attest[..], &tail[..], &["--passphrase-file", pass.to_str().unwrap()]].concat();
    let v = json(&run(&with_pass, None));
    assert!(v["attestation"].is_string(), "{v}");
    let data = dir.path().join("data");
    let init = [
        "init",
        "--genesis",
        g,
        "--key",
        k,
        "--data-dir",
        data.to_str().unwrap(),
        "--passphrase-env",
        "CREDENCE_TEST_PASS",
    ];
    let out = run(&init, Some("s3cret pass"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let config = std::fs::read_to_string(data.join("node.toml")).unwrap();
    assert!(config.contains("key_passphrase_env = \"CREDENCE_TEST_PASS\""), "{config}");
}

/// `export --parquet` writes tables that DuckDB (an independent Parquet reader, from
/// tests/interop/requirements.txt, installed on first use by tests/common/tools.rs) reads with the ledger's counts
/// and sums: rows per table, per kind and per attester, and the R&D amounts in fen,
/// against the CSV export of the same chain.
#[test]
fn parquet_tables_read_back_in_duckdb_with_the_ledgers_counts_and_sums() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The loan world (its first 3,732 records) and then the bulk mix, which has R&D spend.
    generate(&data, "5000");
    let d = data.to_str().unwrap();
    let tables = dir.path().join("tables");
    let out = credence(&["export", "--data-dir", d, "--parquet", "--out", tables.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again = credence(&["export", "--data-dir", d, "--parquet", "--out", tables.to_str().unwrap()]);
    assert!(!again.status.success(), "an existing directory is not overwritten");

    // The expected figures, from the CSV export (another code path over the same chain).
    let csv = dir.path().join("rows.csv");
    let out = credence(&["export", "--data-dir", d, "--csv", "--out", csv.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (kind, fen, attester) = (col("kind"), col("amount_fen"), col("attester"));
    let mut by_kind = std::collections::BTreeMap::<String, u64>::new();
    let mut rd_fen: u64 = 0;
    let mut attesters = std::collections::BTreeSet::new();
    for line in lines {
        // No field of these columns holds a comma or a quote.
        let cells: Vec<&str> = line.split(',').collect();
        *by_kind.entry(cells[kind].to_string()).or_default() += 1;
        attesters.insert(cells[attester].to_string());
        if cells[kind] == "rd-spend" {
            rd_fen += cells[fen].parse::<u64>().unwrap();
        }
    }
    assert_eq!(by_kind.values().sum::<u64>(), 5000);

    let script = r#"
import duckdb, json, sys
d = sys.argv[1]
q = lambda sql: duckdb.sql(sql.replace("T/", d + "/")).fetchall()
out = {
  "attestations": q("select count(*) from 'T/attestations.parquet'")[0][0],
  "blocks": q("select count(*), sum(records), max(tree_size) from 'T/blocks.parquet'")[0],
  "by_kind": dict(q("select kind, count(*) from 'T/attestations.parquet' group by kind")),
  "attesters": q("select count(distinct attester) from 'T/attestations.parquet'")[0][0],
  "rd_fen": q("select sum(amount_fen) from 'T/rd_spend.parquet'")[0][0],
  "rd_rows": q("select count(*) from 'T/rd_spend.parquet'")[0][0],
  "types": dict(q("select column_name, column_type from (describe select * from 'T/rd_spend.parquet')")),
  "joined": q("select count(*) from 'T/rd_spend.parquet' r join 'T/attestations.parquet' a using (leaf_index) where a.kind = 'rd-spend'")[0][0],
}
print(json.dumps(out, default=str))
"#;
    common::tools::python_packages();
    let py = std::process::Command::new("python3")
        .args(["-c", script, tables.to_str().unwrap()])
        .output()
        .expect("python3 runs");
    assert!(py.status.success(), "duckdb: {}", String::from_utf8_lossy(&py.stderr));
    let v: serde_json::Value = serde_json::from_slice(&py.stdout).unwrap();
    assert_eq!(v["attestations"], 5000);
    assert_eq!(v["blocks"][0], 20, "5,000 records in blocks of 250");
    assert_eq!(v["blocks"][1], 5000);
    assert_eq!(v["blocks"][2], 5000);
    for (k, n) in &by_kind {
        assert_eq!(v["by_kind"][k], *n, "rows of kind {k}");
    }
    assert_eq!(v["attesters"], attesters.len());
    assert_eq!(v["rd_rows"], by_kind["rd-spend"]);
    assert_eq!(v["rd_fen"].as_f64().map(|f| f as u64), Some(rd_fen), "R&D spend in fen, to the fen");
    assert_eq!(v["joined"], by_kind["rd-spend"]);
    let types = &v["types"];
    assert_eq!(types["amount_fen"], "BIGINT");
    assert_eq!(types["issued_at"], "TIMESTAMP WITH TIME ZONE");
    assert_eq!(types["enterprise"], "VARCHAR");
}

/// `generate --access-keys` appends a bank officer's key and the bank's consents, and the
/// chain still verifies; `bench audit` then reads every listing again as the officer, signed
/// and logged (a refusal there fails the bench, so this checks that the key and consents work).
#[test]
fn generated_access_keys_sign_restricted_reads() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let out = credence(&["generate", "--records", "1500", "--block-records", "500", "--out", d, "--access-keys"]);
    assert!(out.status.success(), "generate failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(data.join("keys/officer.access").is_file());
    let v = json(&credence(&["verify", "--data-dir", d, "--json"]));
    assert_eq!(v["ok"], true, "{v}");
    // 1,500 records, one grant, and one consent per enterprise (fewer than 500: one block).
    let consents = v["attestations"].as_u64().unwrap() - 1_501;
    assert!((100..500).contains(&consents), "{v}");
    let b = json(&credence(&["bench", "audit", "--data-dir", d, "--requests", "20", "--bundles", "1"]));
    assert_eq!(b["enterprise_attestations_signed_restricted"]["latency"]["n"], 20, "{b}");
    assert_eq!(b["enterprise_attestations"]["latency"]["n"], 20, "{b}");
}

#[test]
fn generate_refuses_more_focus_records_than_the_bulk_holds() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("data");
    let o = credence(&["generate", "--records", "100", "--focus-records", "50", "--out", out.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--focus-records") && err.contains("bulk records"), "{err}");
    assert!(!out.join("ledger.redb").exists(), "nothing written");
    let o = credence(&[
        "generate",
        "--records",
        "100",
        "--focus-records",
        "1",
        "--focus-enterprise",
        "91310115MA1K4TLJ0X",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("focus_enterprise"), "{}", String::from_utf8_lossy(&o.stderr));
}
