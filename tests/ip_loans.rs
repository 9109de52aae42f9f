//! End-to-end: a `credence dev` node fed the demo loan world; the credit profile shows loans, defaults, pool records, qualifications and patent warnings; `GET /v1/portfolio` (through `credence portfolio --node`) gives exactly the figures `credence portfolio --data-dir` computes from the same store, and every figure's records resolve.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::net::{get_as, port_base, status, wait_until};
use common::{credence, json, stdout};
use credence_ledger::demo;
use credence_ledger::demo_world::{BAD_RATIO_TARGET_BP, LoanWorld};

/// `credence dev` as a child process, stopped with SIGTERM (killed if the test fails first).
struct Dev(Child);

impl Dev {
    fn start(dir: &Path, api: &str, p2p: &str, log: &Path) -> Dev {
        let log = std::fs::File::create(log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_credence"))
            .args(["dev", "--dir"])
            .arg(dir)
            .args(["--api", api, "--p2p", p2p])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Dev(child)
    }

    fn stop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.0.try_wait() {
                assert!(s.success(), "dev node exited with {s}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("dev node did not stop on SIGTERM");
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ok(o: std::process::Output) -> std::process::Output {
    assert!(o.status.success(), "failed ({}): {}\n{}", o.status, stdout(&o), String::from_utf8_lossy(&o.stderr));
    o
}

#[test]
fn dev_world_profile_and_portfolio_from_api_equal_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let dev_dir = dir.path().join("dev");
    let base = port_base(2);
    let api_addr = format!("127.0.0.1:{}", base + 1000);
    let url = format!("http://{api_addr}");
    // The dev chain's world has the demo world's plan (its keys differ, its records do not).
    let (g, _) = demo::genesis(1, demo::EXAMPLE_GENESIS_TIME_MS).unwrap();
    let expected = LoanWorld::new(1, &g).unwrap().len() as u64 + 300;
    let mut node = Dev::start(&dev_dir, &api_addr, &format!("127.0.0.1:{base}"), &dir.path().join("dev.log"));
    // Reads of facts need a signed request: the loan officer's key under the enterprises'
    // consents, and the regulator's for the portfolio (docs/ACCESS.md).
    let officer = dev_dir.join("keys/dev-officer.access");
    let regulator = dev_dir.join("keys/dev-regulator.access");
    wait_until("the dev node to commit the demo world", Duration::from_secs(180), || {
        // Beyond the world, dev records its access-key grants and the demo enterprises' consents;
        // it writes each key file once its grant committed, so the files come last.
        status(&url).is_some_and(|s| s["tree_size"].as_u64() >= Some(expected) && s["mempool"]["records"] == 0)
            && officer.exists()
            && regulator.exists()
    });
    let (officer_s, regulator_s) = (officer.to_str().unwrap(), regulator.to_str().unwrap());
    let as_officer = ["--access-key", officer_s, "--purpose", "loan-application"];
    let as_regulator = ["--access-key", regulator_s];

    // The profile of the real code the README shows: a repaid loan, a late payment, a
    // pool enrolment, registered pledges against appraisals, qualifications, statuses.
    let v = json(&ok(credence(
        &[&["profile", "914403001922038216", "--node", &url, "--as-of", "2025-12-31", "--json"][..], &as_officer]
            .concat(),
    )));
    let loans = v["loans"].as_array().unwrap();
    assert!(loans.len() >= 2, "{v}");
    assert!(loans.iter().any(|l| l["status"] == "repaid"), "{v}");
    let late = loans.iter().find(|l| l["max_days_overdue"].as_u64().unwrap() > 0).expect("a late payment");
    assert!(late["classifications"].as_array().unwrap().iter().any(|c| c["class"] == "关注 special mention"));
    for l in loans {
        assert!(l["ltv_bp"].as_u64().unwrap() > 0, "{l}");
        for c in l["collateral"].as_array().unwrap() {
            assert!(c["pledge_status"].as_str().unwrap().contains("registered Y"), "{c}");
            assert!(c["appraised"]["fen"].as_u64().unwrap() > 0, "{c}");
        }
    }
    assert!(!v["qualifications"].as_array().unwrap().is_empty(), "{v}");
    assert!(!v["patent_status"].as_array().unwrap().is_empty(), "{v}");
    assert_eq!(v["undecodable"].as_array().unwrap().len(), 0);
    // The second real code defaulted: classified down to 损失, claimed and paid by the pool,
    // its pledged patent auctioned; the human table says so.
    let v = json(&ok(credence(
        &[&["profile", "91440300708461136T", "--node", &url, "--as-of", "2025-12-31", "--json"][..], &as_officer]
            .concat(),
    )));
    let bad = v["loans"].as_array().unwrap().iter().find(|l| !l["default"].is_null()).expect("a defaulted loan");
    assert_eq!(bad["class"], "损失 loss");
    let events: Vec<&str> = bad["pool"].as_array().unwrap().iter().map(|p| p["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["enrolled", "claimed", "paid"]);
    assert!(bad["collateral"][0]["pledge_status"].as_str().unwrap().contains("disposed: auction"), "{bad}");
    assert!(bad["recovered"]["fen"].as_u64().unwrap() > 0);
    let human = stdout(&ok(credence(
        &[&["profile", "91440300708461136T", "--node", &url, "--as-of", "2025-12-31"][..], &as_officer].concat(),
    )));
    assert!(human.contains("DEFAULT on") && human.contains("LTV") && human.contains("WARNING"), "{human}");

    // The portfolio from the API, with every loan line.
    let from_api =
        json(&ok(credence(&[&["portfolio", "--node", &url, "--loans", "--json"][..], &as_regulator].concat())));
    // The world and the demo records, then dev's access-key grants and consents.
    assert!(from_api["tree_size"].as_u64().unwrap() >= expected, "{}", from_api["tree_size"]);
    let ratio = from_api["overall"]["bad_ratio_bp"].as_u64().unwrap();
    assert!((BAD_RATIO_TARGET_BP - 30..=BAD_RATIO_TARGET_BP + 30).contains(&ratio), "{}", from_api["overall"]);
    assert_eq!(from_api["lenders"].as_array().unwrap().len(), 3);
    let pool = &from_api["pools"][0];
    assert!(pool["payments"].as_array().unwrap().len() >= 3, "{pool}");
    // Traceable: each bad loan's class comes from a committed classification or default of
    // that loan, and each pool payment is a committed payment.
    let lines = from_api["loans"].as_array().unwrap();
    let mut bad_lines = 0;
    for l in lines
        .iter()
        .filter(|l| ["次级 substandard", "可疑 doubtful", "损失 loss"].contains(&l["class"].as_str().unwrap()))
    {
        let path = format!("/v1/attestations/{}?purpose=supervision", l["class_record"].as_str().unwrap());
        let rec = get_as(&url, Some(&regulator), &path).unwrap().1;
        assert_eq!(rec["status"], "committed");
        assert_eq!(rec["claim"]["kind"], "loan-event");
        assert_eq!(rec["claim"]["loan"], l["loan"]);
        bad_lines += 1;
    }
    assert!(bad_lines >= 3, "{bad_lines} bad loans");
    let paid: u64 = pool["payments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| {
            let path = format!("/v1/attestations/{}?purpose=supervision", id.as_str().unwrap());
            let rec = get_as(&url, Some(&regulator), &path).unwrap().1;
            assert_eq!(rec["claim"]["kind"], "risk-pool");
            let d = rec["claim"]["description"].as_str().unwrap();
            let amount = d.strip_prefix("pay ").unwrap().split(' ').next().unwrap();
            let amount = amount.replace(',', "");
            let (yuan, fen) = amount.split_once('.').unwrap();
            yuan.parse::<u64>().unwrap() * 100 + fen.parse::<u64>().unwrap()
        })
        .sum();
    assert_eq!(paid, pool["paid"]["fen"].as_u64().unwrap(), "the payments sum to the pool's paid figure");
    // One lender only.
    let one = json(&ok(credence(
        &[&["portfolio", "--node", &url, "--lender", "bank-ccb-hz", "--json"][..], &as_regulator].concat(),
    )));
    assert_eq!(one["lenders"].as_array().unwrap().len(), 1);
    assert_eq!(one["overall"], from_api["overall"]);
    // Over time: the last month end of the series is the head's figures (the rules keep a
    // loan's events in date order), overall and for the one lender asked for, month by month.
    let series = &from_api["series"];
    let months = series["overall"].as_array().unwrap();
    assert!(!months.is_empty() && months.len() as u64 <= series["months_max"].as_u64().unwrap(), "{series}");
    let last = months.last().unwrap();
    for f in ["loans", "outstanding", "bad", "bad_ratio_bp"] {
        assert_eq!(last[f], from_api["overall"][f], "{f}: {last}");
    }
    assert_eq!(one["series"]["overall"], series["overall"]);
    let theirs = &one["series"]["lenders"][0];
    assert_eq!(theirs["lender"], "bank-ccb-hz");
    let their_months: Vec<&serde_json::Value> =
        theirs["months"].as_array().unwrap().iter().map(|m| &m["month"]).collect();
    assert_eq!(their_months, months.iter().map(|m| &m["month"]).collect::<Vec<_>>());
    for f in ["loans", "outstanding", "bad", "bad_ratio_bp"] {
        assert_eq!(theirs["months"].as_array().unwrap().last().unwrap()[f], one["lenders"][0]["figures"][f], "{f}");
    }
    assert_eq!(series["lenders"], serde_json::json!([]), "per-lender series only for the lender asked for");
    let page = get_as(&url, Some(&regulator), "/v1/portfolio?loans_limit=5").unwrap().1;
    assert_eq!(page["loans"].as_array().unwrap().len(), 5);
    assert_eq!(page["loans_next_after"], page["loans"][4]["loan"]);
    let refused = get_as(&url, Some(&regulator), "/v1/portfolio?loans_limit=1001").unwrap().1;
    assert_eq!(refused["error"]["field"], "loans_limit", "{refused}");
    // Loan lines are facts of their borrowers: each read of them is logged once per borrower,
    // naming the state's height; the figures alone (the lender's above) log nothing.
    let mut expected_reads = std::collections::BTreeMap::<(u64, String), usize>::new();
    for read in [&from_api, &page] {
        let borrowers: std::collections::BTreeSet<&str> =
            read["loans"].as_array().unwrap().iter().map(|l| l["borrower"].as_str().unwrap()).collect();
        for b in borrowers {
            *expected_reads.entry((read["height"].as_u64().unwrap(), b.to_string())).or_default() += 1;
        }
    }
    let logged = || {
        let v = json(&ok(credence(
            &[&["queries", "--member", "dev", "--node", &url, "--limit", "1000", "--json"][..], &as_regulator].concat(),
        )));
        let mut logged = std::collections::BTreeMap::<(u64, String), usize>::new();
        for q in v["queries"].as_array().unwrap().iter().filter(|q| q["read"] == "portfolio") {
            assert!(q["purpose"] == "supervision" && q["consent"].is_null(), "{q}");
            let key = (q["portfolio_height"].as_u64().unwrap(), q["enterprise"].as_str().unwrap().to_string());
            *logged.entry(key).or_default() += 1;
        }
        logged
    };
    let want: usize = expected_reads.values().sum();
    wait_until("the loan lines' reads to be logged", Duration::from_secs(30), || {
        logged().values().sum::<usize>() >= want
    });
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(logged(), expected_reads);

    // The same store, offline: the same figures, line for line.
    node.stop();
    let data = dev_dir.join("data");
    let mut from_store = json(&ok(credence(&["portfolio", "--data-dir", data.to_str().unwrap(), "--loans", "--json"])));
    // The restricted reads above were logged on the ledger after the API's figures were
    // taken: the store is longer, and its figures the same (query records are no loan fact).
    let mut from_api = from_api;
    for v in [&mut from_store, &mut from_api] {
        let o = v.as_object_mut().unwrap();
        o.remove("height");
        o.remove("tree_size");
    }
    assert_eq!(from_store, from_api);
    let v = json(&ok(credence(&["verify", "--data-dir", data.to_str().unwrap(), "--json"])));
    assert_eq!(v["ok"], true, "{v}");
}
