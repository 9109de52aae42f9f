//! The web console in a real browser: headless Debian Chromium driven over WebDriver (fantoccini, chromedriver) against a real `credence dev` node: search, profile figures and chart, proofs verified and tampered proofs refused, openings of confidential amounts checked against the leaf (and a wrong one refused), the portfolio's cards and bad-loan-ratio chart against the API, the language switch. An ignored test measures the first paint of a large profile (docs/BENCHMARKS.md §Console).

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use credence_ledger::checkpoint::{Checkpoint, CheckpointBody, sign};
use credence_ledger::merkle::{self, MemTree};
use credence_ledger::sig::SecretKey;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use common::net::{port_base, status, wait_until};

/// A fresh enterprise for this test (valid GB 32100-2015 code, not among the demo's).
const USCC: &str = "91330106MA2CKR7Q0N";
/// Its patent (valid CN application number, check digit 8).
const PATENT: &str = "CN202410567890.8";
/// Chromium's flags: headless, no network of its own, a fresh profile added per run.
const CHROME_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1800",
];
/// Longest wait for anything the page does.
const WAIT: Duration = Duration::from_secs(30);

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `credence attest … --wait --json` as the dev member; returns the record id.
fn attest(dir: &Path, url: &str, args: &[&str]) -> String {
    let key = dir.join("keys/dev.key");
    let mut all: Vec<&str> = vec!["attest"];
    all.extend_from_slice(args);
    let key = key.to_str().unwrap();
    all.extend_from_slice(&["--key", key, "--node", url, "--wait", "--json"]);
    let o = common::credence(&all);
    assert!(o.status.success(), "attest {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    common::json(&o)["id"].as_str().expect("id").to_string()
}

/// Polls a script's value until `ok` holds.
async fn until(c: &Client, what: &str, script: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = c.execute(script, vec![]).await.unwrap_or(Value::Null);
        if ok(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}; last value {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text(c: &Client, css: &str) -> String {
    let v =
        until(c, css, &format!("const e = document.querySelector({css:?}); return e ? e.textContent : null;"), |v| {
            v.is_string()
        })
        .await;
    v.as_str().unwrap_or_default().to_string()
}

/// The verdict of the record page once it is no longer running.
async fn verdict(c: &Client) -> (String, Vec<(String, bool)>) {
    let v = until(
        c,
        "the verdict",
        "const v = document.querySelector('#verdict'); if (!v || v.dataset.verdict === 'running') return null; \
         return [v.dataset.verdict, [...document.querySelectorAll('#steps li')].map(li => [li.dataset.step, li.className === 'ok'])];",
        |v| v.is_array(),
    )
    .await;
    let steps = v[1]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s[0].as_str().unwrap().to_string(), s[1].as_bool().unwrap()))
        .collect();
    (v[0].as_str().unwrap().to_string(), steps)
}

async fn submit(c: &Client, form: &str, input: &str) {
    let field = c.find(Locator::Css(&format!("#{form}-input"))).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(input).await.unwrap();
    c.find(Locator::Css(&format!("#{form}-form button"))).await.unwrap().click().await.unwrap();
}

/// Makes the page's `fetch` flip one byte of what `path_part` answers (`field`: a JSON proof
/// hash, or the checkpoint's first signature), as a hostile server or network would.
async fn tamper(c: &Client, path_part: &str, what: &str) {
    c.execute(
        "const [part, what] = arguments; const real = window.fetch;
         window.fetch = async (req) => {
           const res = await real(req);
           const url = typeof req === 'string' ? req : req.url;
           if (!url.includes(part)) return res;
           const flip = (b64) => { const b = atob(b64); return btoa(String.fromCharCode(b.charCodeAt(0) ^ 1) + b.slice(1)); };
           if (what === 'proof') {
             const j = await res.json(); j.proof[0] = flip(j.proof[0]);
             return new Response(JSON.stringify(j), { status: 200, headers: { 'content-type': 'application/json' } });
           }
           const note = await res.text(); const lines = note.split('\\n'); const i = lines.findIndex(l => l.startsWith('\\u2014 '));
           const parts = lines[i].split(' '); const raw = atob(parts[2]);
           parts[2] = btoa(raw.slice(0, 10) + String.fromCharCode(raw.charCodeAt(10) ^ 1) + raw.slice(11)); lines[i] = parts.join(' ');
           return new Response(lines.join('\\n'), { status: 200, headers: { 'content-type': 'text/plain' } });
         };
         return true;",
        vec![json!(path_part), json!(what)],
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    let (chromium, chromedriver) = common::tools::chromium();
    let base = port_base(0);
    let (api_port, driver_port) = (base + 1000, base + 1001);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dev");
    let url = format!("http://127.0.0.1:{api_port}");

    // A real dev node with demo records, then this test's enterprise with known figures.
    let _node = Proc(
        Command::new(env!("CARGO_BIN_EXE_credence"))
            .args(["dev", "--dir"])
            .arg(&dir)
            .args(["--api", &format!("127.0.0.1:{api_port}"), "--demo-records", "30"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(tmp.path().join("dev.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    // dev seeds its loan world, demo records, access keys and consents with its own member
    // key; this test signs with the same key, so it waits until dev is done: the officer's
    // key file written and the ledger still for a second with nothing pending.
    let mut last = (0u64, Instant::now());
    wait_until("the dev node's seeding to finish", Duration::from_secs(240), || {
        let Some(s) = status(&url) else { return false };
        let size = s["tree_size"].as_u64().unwrap_or(0);
        if size != last.0 {
            last = (size, Instant::now());
        }
        dir.join("keys/dev-officer.access").exists()
            && s["mempool"]["records"] == 0
            && last.1.elapsed() > Duration::from_secs(1)
    });
    let rd2022 = attest(&dir, &url, &["rd-spend", "--enterprise", USCC, "--period", "2022", "--amount", "1234567.89"]);
    let rd2023 = attest(&dir, &url, &["rd-spend", "--enterprise", USCC, "--period", "2023", "--amount", "2345678.90"]);
    attest(&dir, &url, &["rd-spend", "--enterprise", USCC, "--period", "2024", "--amount", "3456789.01"]);
    // A confidential figure: the leaf holds only its commitment; dev's node keeps the opening.
    let sealed = attest(
        &dir,
        &url,
        &["rd-spend", "--enterprise", USCC, "--period", "2020", "--amount", "1250000.00", "--confidential"],
    );
    let wrong = attest(&dir, &url, &["rd-spend", "--enterprise", USCC, "--period", "2021", "--amount", "999.00"]);
    attest(&dir, &url, &["revoke", "--target", &wrong]);
    let valuation = [
        "patent-valuation",
        "--patent",
        PATENT,
        "--owner",
        USCC,
        "--value",
        "8000000.00",
        "--method",
        "income",
        "--valuation-date",
        "2025-01-15",
        "--valid-until",
        "2099-01-14",
    ];
    attest(&dir, &url, &valuation);
    attest(
        &dir,
        &url,
        &["pledge", "--patent", PATENT, "--pledgor", USCC, "--amount", "2000000.00", "--term-months", "24"],
    );

    let _driver = Proc(
        Command::new(&chromedriver)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let driver_url = format!("http://127.0.0.1:{driver_port}");
    let mut args: Vec<String> = CHROME_FLAGS.iter().map(|s| s.to_string()).collect();
    args.push(format!("--user-data-dir={}", tmp.path().join("profile").display()));
    let caps = json!({ "browserName": "chrome", "goog:chromeOptions": { "binary": chromium, "args": args } });
    // chromedriver takes a moment to listen: retry the session until it does.
    let deadline = Instant::now() + Duration::from_secs(20);
    let c = loop {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.as_object().unwrap().clone())
            .connect(&driver_url)
            .await
        {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                eprintln!("waiting for chromedriver: {e}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => panic!("no WebDriver session from chromedriver on {driver_url}: {e}"),
        }
    };

    // The enterprise's written authorisation for the dev member's loan officer (docs/ACCESS.md).
    let evidence = tmp.path().join("authorisation.pdf");
    std::fs::write(&evidence, "91330106MA2CKR7Q0N authorises dev").unwrap();
    attest(
        &dir,
        &url,
        &[
            "consent",
            "--enterprise",
            USCC,
            "--recipient",
            "dev",
            "--purpose",
            "loan-application",
            "--evidence-file",
            evidence.to_str().unwrap(),
        ],
    );
    let officer = std::fs::read_to_string(dir.join("keys/dev-officer.access")).unwrap();
    let regulator = std::fs::read_to_string(dir.join("keys/dev-regulator.access")).unwrap();
    let regulator_file = dir.join("keys/dev-regulator.access");
    let keys = Keys { officer: &officer, regulator: &regulator, regulator_file: &regulator_file };
    let result = scenario(&c, &url, keys, [&rd2022, &rd2023, &wrong, &sealed]).await;
    let _ = c.close().await;
    result
}

/// With `CREDENCE_CONSOLE_SHOTS=DIR`, the page as the browser shows it, saved as `DIR/NAME.png`
/// (docs/CONSOLE.md's screenshots are made this way).
async fn shot(c: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("CREDENCE_CONSOLE_SHOTS") {
        let png = c.screenshot().await.unwrap();
        std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

/// The access-key files dev wrote for its loan officer and its regulator.
struct Keys<'a> {
    officer: &'a str,
    regulator: &'a str,
    regulator_file: &'a Path,
}

/// Signs in with the access-key file `key` for `purpose`, as a person would on `#/signin`.
async fn sign_in(c: &Client, url: &str, key: &str, purpose: &str) {
    // Signed in already: sign out first (the page then shows the form).
    c.goto(&format!("{url}/console#/signin")).await.unwrap();
    let page =
        "return document.querySelector('#key-file') ? 'form' : document.querySelector('#signout') ? 'out' : null;";
    if until(c, "the sign-in page", page, |v| v.is_string()).await == "out" {
        c.find(Locator::Css("#signout")).await.unwrap().click().await.unwrap();
        c.goto(&format!("{url}/console#/signin")).await.unwrap();
        until(c, "the sign-in form", page, |v| v == "form").await;
    }
    let set = "document.querySelector('#key-file').value = arguments[0]; \
               document.querySelector('#purpose').value = arguments[1]; \
               document.querySelector('#signin-form').requestSubmit(); return true;";
    c.execute(set, vec![json!(key), json!(purpose)]).await.unwrap();
    until(c, "the signed-in session", "return document.querySelector('#session').dataset.key || null;", |v| {
        v.as_str().is_some_and(|k| key.contains(k))
    })
    .await;
}

/// The record ids the scenario looks at: two R&D figures, a revoked one, a sealed one.
async fn scenario(c: &Client, url: &str, keys: Keys<'_>, [rd2022, rd2023, wrong, sealed]: [&str; 4]) {
    let officer = keys.officer;
    // Served by the node, in Chinese when the reader chose it.
    c.goto(&format!("{url}/console")).await.unwrap();
    c.execute("localStorage.setItem('credence.lang', 'zh'); return true;", vec![]).await.unwrap();
    c.refresh().await.unwrap();
    assert_eq!(text(c, "h1").await, "查询");
    assert_eq!(text(c, "label[for=uscc-input]").await, "统一社会信用代码");

    // The forms check input before any request, naming the rule.
    let typo = format!("{}A", &USCC[..17]);
    submit(c, "uscc", &typo).await;
    let e = text(c, "#uscc-error").await;
    assert!(e.contains("校验码错误") && e.contains("“N”"), "{e}");
    submit(c, "patent", "CN202410567890.1").await;
    let e = text(c, "#patent-error").await;
    assert!(e.contains("校验位错误") && e.contains("“8”"), "{e}");
    submit(c, "record", "abc").await;
    assert!(text(c, "#record-error").await.contains("64 位"));
    shot(c, "search-zh").await;

    // Reads above public need a signed request: sign in with the loan officer's access key
    // for loan-application reads (RFC 9421 signatures made by signin.js with WebCrypto).
    c.goto(&format!("{url}/console#/signin")).await.unwrap();
    assert_eq!(text(c, "h1").await, "用访问密钥登录");
    sign_in(c, url, officer, "loan-application").await;
    assert!(text(c, "#session").await.contains("访问密钥"));
    c.goto(&format!("{url}/console")).await.unwrap();

    // Search finds the enterprise; the profile shows the API's figures and the chart.
    submit(c, "uscc", &USCC.to_lowercase()).await;
    until(
        c,
        "the profile",
        "return document.querySelector('#profile') ? document.querySelector('#profile').dataset.uscc : null;",
        |v| v == USCC,
    )
    .await;
    let bars = until(
        c,
        "the chart",
        "return [...document.querySelectorAll('#rd-chart svg g.bar')].map(g => g.dataset.label);",
        |v| v.as_array().is_some_and(|a| !a.is_empty()),
    )
    .await;
    assert_eq!(bars, json!(["2022年", "2023年", "2024年"]), "one bar per year, the revoked 2021 record left out");
    let rd = text(c, "#rd-table").await;
    for figure in ["1,234,567.89 元", "2,345,678.90 元", "3,456,789.01 元", "999.00 元"] {
        assert!(rd.contains(figure), "{figure} in {rd}");
    }
    assert!(text(c, "#sum-rd").await.contains("2024年: 3,456,789.01 元"));
    let patents = text(c, "#patent-table").await;
    assert!(
        patents.contains(PATENT)
            && patents.contains("8,000,000.00 元")
            && patents.contains("2,000,000.00 元")
            && patents.contains("25.0%"),
        "{patents}"
    );
    let flagged = until(c, "the revoked record", "return [...document.querySelectorAll('table.records tr[data-kind]:not([data-kind=consent])')].map(tr => [tr.querySelector('td:last-child a').getAttribute('href'), tr.querySelector('[data-status]').dataset.status]);", |v| v.is_array()).await;
    assert_eq!(flagged, json!([[format!("#/record/{wrong}"), "revoked"]]));
    shot(c, "profile-zh").await;

    // The language switch changes every label and amount format, and is remembered.
    c.find(Locator::Css("#lang-switch")).await.unwrap().click().await.unwrap();
    until(c, "English", "return document.documentElement.lang;", |v| v == "en").await;
    assert!(text(c, "h1").await.starts_with("Enterprise credit profile"));
    assert!(text(c, "#rd-table").await.contains("¥1,234,567.89"));
    assert_eq!(text(c, "#lang-switch").await, "中文");
    c.refresh().await.unwrap();
    until(
        c,
        "English after a reload",
        "const h = document.querySelector('h1'); return h ? h.textContent : null;",
        |v| v.as_str().is_some_and(|s| s.starts_with("Enterprise credit profile")),
    )
    .await;

    // A genuine proof verifies in the browser.
    c.goto(&format!("{url}/console#/record/{rd2022}")).await.unwrap();
    let (v, steps) = verdict(c).await;
    assert_eq!(v, "verified", "{steps:?}");
    let names: Vec<&str> = steps.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(names, ["v.genesis", "v.checkpoint", "v.signatures", "v.id", "v.root"]);
    assert!(text(c, "#verdict").await.starts_with("Verified"));
    shot(c, "record-verified-en").await;

    // One byte of the audit path changed: refused at the root.
    tamper(c, "/v1/proofs/inclusion/", "proof").await;
    c.execute(&format!("location.hash = '#/record/{rd2023}'; return true;"), vec![]).await.unwrap();
    until(
        c,
        "the second record",
        "const r = document.querySelector('#record'); return r ? r.dataset.id : null;",
        |v| v == rd2023,
    )
    .await;
    let (v, steps) = verdict(c).await;
    assert_eq!(v, "failed", "{steps:?}");
    assert_eq!(steps.last().unwrap(), &("v.root".to_string(), false));
    assert!(text(c, "#verdict").await.starts_with("Verification failed"));
    shot(c, "record-tampered-en").await;

    // One byte of a validator's signature changed: refused at the signatures.
    restore_fetch(c).await;
    tamper(c, "/v1/checkpoint", "signature").await;
    c.execute(&format!("location.hash = '#/record/{rd2022}'; return true;"), vec![]).await.unwrap();
    until(c, "the first record", "const r = document.querySelector('#record'); return r ? r.dataset.id : null;", |v| {
        v == rd2022
    })
    .await;
    let (v, steps) = verdict(c).await;
    assert_eq!(v, "failed", "{steps:?}");
    assert_eq!(steps.last().unwrap(), &("v.signatures".to_string(), false));

    // The chain page checks the latest checkpoint itself; the node page shows the status.
    // A fresh page: a goto that changes only the fragment would keep the tampered `fetch`.
    c.goto(&format!("{url}/console#/chain")).await.unwrap();
    c.refresh().await.unwrap();
    let cp = until(
        c,
        "the checkpoint",
        "const e = document.querySelector('#cp-verdict'); return e ? e.dataset.verdict : null;",
        |v| v.is_string(),
    )
    .await;
    assert_eq!(cp, "verified");
    let cosigners = c
        .execute("return [...document.querySelectorAll('#cosigners tbody tr')].map(tr => [...tr.cells].map(td => td.textContent));", vec![])
        .await
        .unwrap();
    assert_eq!(cosigners[0][0], "dev", "{cosigners}");
    assert!(cosigners[0][2].as_str().unwrap().starts_with('✓'), "{cosigners}");
    shot(c, "chain-en").await;
    c.goto(&format!("{url}/console#/ops")).await.unwrap();
    let height = status(url).unwrap()["height"].as_u64().unwrap();
    let shown = text(c, "#ops-height .stat-value").await.replace(',', "");
    assert!(shown.parse::<u64>().unwrap() >= height, "height {shown} shown, {height} at least");
    assert!(text(c, "#metrics").await.contains("credence_blocks_committed_total"));
    shot(c, "ops-en").await;

    verify_js_agrees_with_the_ledger(c).await;
    openings_in_the_browser(c, url, sealed).await;

    // The portfolio holds many enterprises' facts: a loan officer's key gets the API's 403.
    c.goto(&format!("{url}/console#/portfolio")).await.unwrap();
    assert!(text(c, "#main .error").await.contains("regulator"));

    // The regulator sees the figures the API gives, the LTV chart and the pool.
    sign_in(c, url, keys.regulator, "supervision").await;
    c.goto(&format!("{url}/console#/portfolio")).await.unwrap();
    c.refresh().await.unwrap();
    until(c, "the portfolio", "return document.querySelector('#pf-ltv svg') ? true : null;", |v| v == true).await;
    let out = Command::new(env!("CARGO_BIN_EXE_credence"))
        .args(["portfolio", "--node", url, "--access-key", keys.regulator_file.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let api: Value = serde_json::from_slice(&out.stdout).unwrap();
    let o = &api["overall"];
    // Amounts in English: "¥1,234.56" from the API's decimal string.
    let yuan = |m: &Value| {
        let (int, frac) = m["amount"].as_str().unwrap().split_once('.').unwrap();
        let digits: Vec<char> = int.chars().collect();
        let grouped: Vec<String> = digits.rchunks(3).rev().map(|c| c.iter().collect()).collect();
        format!("¥{}.{frac}", grouped.join(","))
    };
    assert_eq!(text(c, "#pf-loans .stat-value").await, o["loans"].to_string());
    assert_eq!(text(c, "#pf-outstanding .stat-value").await, yuan(&o["outstanding"]));
    assert_eq!(text(c, "#pf-bad .stat-value").await, yuan(&o["bad"]));
    let bp = o["bad_ratio_bp"].as_u64().unwrap();
    assert_eq!(text(c, "#pf-ratio .stat-value").await, format!("{}.{:02}%", bp / 100, bp % 100));
    let lenders = c
        .execute("return [...document.querySelectorAll('#pf-lenders tbody tr')].map(tr => tr.dataset.lender);", vec![])
        .await
        .unwrap();
    let want: Vec<&str> = api["lenders"].as_array().unwrap().iter().map(|l| l["lender"].as_str().unwrap()).collect();
    assert_eq!(lenders, json!(want));
    let bars = c
        .execute("return [...document.querySelectorAll('#pf-ltv svg g.bar')].map(g => g.dataset.label);", vec![])
        .await
        .unwrap();
    assert_eq!(bars, json!(["< 30%", "30%–50%", "50%–70%", "70%–100%", "≥ 100%"]));
    let pools = c.execute("return document.querySelectorAll('#pf-pools tbody tr').length;", vec![]).await.unwrap();
    assert_eq!(pools, json!(api["pools"].as_array().unwrap().len()));
    // The bad-loan ratio over time: one point per month end of the API's series, at its ratio,
    // the same in the table fallback; the chart says what it is to a screen reader.
    let series = api["series"]["overall"].as_array().unwrap();
    assert!(series.len() >= 12, "the demo world's loans span at least a year: {}", api["series"]);
    assert_eq!(api["series"]["months_omitted"], 0);
    let want: Vec<Value> = series.iter().map(|m| json!([m["month"], m["bad_ratio_bp"]])).collect();
    let points = c
        .execute("return [...document.querySelectorAll('#pf-series svg g.point')].map(g => [g.dataset.key, Number(g.dataset.bp)]);", vec![])
        .await
        .unwrap();
    assert_eq!(points, json!(want));
    let rows = c
        .execute("return [...document.querySelectorAll('#pf-series-table tbody tr')].map(tr => [tr.dataset.month, Number(tr.cells[4].dataset.bp), tr.cells[2].textContent]);", vec![])
        .await
        .unwrap();
    let want_rows: Vec<Value> =
        series.iter().map(|m| json!([m["month"], m["bad_ratio_bp"], yuan(&m["outstanding"])])).collect();
    assert_eq!(rows, json!(want_rows));
    // The last month end is the head's figures.
    assert_eq!(series.last().unwrap()["bad_ratio_bp"], o["bad_ratio_bp"]);
    let a11y = c
        .execute("const s = document.querySelector('#pf-series svg'); return [s.getAttribute('role'), s.getAttribute('aria-label'), s.querySelector('title').textContent, s.querySelector('desc').textContent];", vec![])
        .await
        .unwrap();
    assert_eq!(a11y[0], "img");
    assert_eq!(a11y[1], "Bad-loan ratio at each month end (bad / outstanding)");
    assert_eq!(a11y[1], a11y[2]);
    let desc = a11y[3].as_str().unwrap();
    assert!(desc.starts_with(&format!("{} month ends from ", series.len())), "{desc}");
    let last_bp = o["bad_ratio_bp"].as_u64().unwrap();
    assert!(desc.contains(&format!("{}.{:02}% at the end", last_bp / 100, last_bp % 100)), "{desc}");
    shot(c, "portfolio-en").await;
    // In Chinese: the same points, the labels translated.
    c.find(Locator::Css("#lang-switch")).await.unwrap().click().await.unwrap();
    until(c, "Chinese", "return document.documentElement.lang;", |v| v == "zh-CN").await;
    let title = until(
        c,
        "the Chinese chart",
        "const s = document.querySelector('#pf-series svg title'); return s ? s.textContent : null;",
        |v| v.as_str().is_some_and(|s| s.contains("不良")),
    )
    .await;
    assert_eq!(title, "各月末不良贷款率（不良余额 / 贷款余额）");
    let points_zh = c
        .execute("return [...document.querySelectorAll('#pf-series svg g.point')].map(g => [g.dataset.key, Number(g.dataset.bp)]);", vec![])
        .await
        .unwrap();
    assert_eq!(points_zh, json!(want));
    shot(c, "portfolio-zh").await;
    c.find(Locator::Css("#lang-switch")).await.unwrap().click().await.unwrap();
    until(c, "English again", "return document.documentElement.lang;", |v| v == "en").await;

    // The enterprise's query history lists the officer's logged reads (committed by now or
    // soon: the page is reloaded until they are), as the regulator sees it.
    c.goto(&format!("{url}/console#/enterprise/{USCC}")).await.unwrap();
    let script = "if (!document.querySelector('#profile') || window.reloading) return null; \
                  const rows = [...document.querySelectorAll('#query-table tbody tr')] \
                      .map(tr => [tr.dataset.reader, tr.cells[2].textContent]); \
                  if (!rows.some(r => r[1] === 'Loan application')) { window.reloading = true; setTimeout(() => location.reload(), 300); return null; } \
                  return rows;";
    let reads = until(c, "the officer's reads in the query history", script, |v| v.is_array()).await;
    let officer_reads: Vec<&Value> = reads.as_array().unwrap().iter().filter(|r| r[1] == "Loan application").collect();
    assert!(officer_reads.iter().all(|r| r[0] == "dev"), "{reads}");
    // A list field reads as a list (the consent's scope), never as "[object Text]".
    let scope = text(c, "table.records tr[data-kind=consent] dd[data-field=scope]").await;
    assert!(scope.contains(", ") && !scope.contains("object"), "{scope}");
    c.execute("document.querySelector('#query-table').scrollIntoView(); return true;", vec![]).await.unwrap();
    shot(c, "profile-queries-en").await;
}

/// Opens the record page of `sealed` after `script` has replaced the page's `fetch` (the
/// script ends by going to the search page), and returns the opening's state there.
async fn record_under_fetch(c: &Client, sealed: &str, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap();
    until(c, "the search page", "return document.querySelector('#uscc-form') ? true : null;", |v| v == true).await;
    c.execute(&format!("location.hash = '#/record/{sealed}'; return true;"), vec![]).await.unwrap();
    opening_state(c, sealed).await
}

/// Reloads the page, which puts the browser's own `fetch` back.
async fn restore_fetch(c: &Client) {
    c.refresh().await.unwrap();
    until(c, "a fresh page", "return window.fetch.toString().includes('native code');", |v| v == true).await;
}

/// The value of the sealed amount's field on the record page once its opening is settled:
/// [state, text, fen shown] (state: verified, failed, refused or signed-out).
async fn opening_state(c: &Client, sealed: &str) -> Value {
    let script = format!(
        "const r = document.querySelector('#record'); if (!r || r.dataset.id !== '{sealed}') return 'main: ' + document.querySelector('#main').outerHTML.slice(0, 2000); \
         const dd = r.querySelector('dd[data-field=amount]'); if (!dd || !dd.dataset.opening) return dd ? dd.outerHTML : r.outerHTML; \
         const fen = dd.querySelector('[data-fen]'); return [dd.dataset.opening, dd.textContent, fen ? fen.dataset.fen : null];"
    );
    until(c, "the opening's check", &script, |v| v.is_array()).await
}

/// A sealed amount on the record page: shown as confidential, opened for the consented officer
/// and checked in the browser against the leaf's commitment; a wrong opening is refused; a
/// node's refusal is shown with its reason (docs/encoding.md §13, docs/ACCESS.md).
async fn openings_in_the_browser(c: &Client, url: &str, sealed: &str) {
    // The browser's commitment is the documented test vector (docs/encoding.md §13).
    let v = c
        .execute_async(
            "const done = arguments[0];
             import('/console/verify.js').then(async (v) => {
               const c = await v.amountCommitment('rd-spend.amount', new Uint8Array(32).fill(0x5a), 'CNY', 125000000n);
               done(v.hex(c));
             }).catch((e) => done(String(e)));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(v, "27b418f59945905db445ebbef52c1d2a9b74a530cf028a4e6691d146d7ba04c4");

    // The officer, under the enterprise's consent for loan applications: opened and checked.
    c.goto(&format!("{url}/console#/record/{sealed}")).await.unwrap();
    c.refresh().await.unwrap();
    let v = opening_state(c, sealed).await;
    assert_eq!(v[0], "verified", "{v}");
    let shown = v[1].as_str().unwrap();
    assert!(shown.starts_with("¥1,250,000.00") && shown.contains("checked in this browser"), "{shown}");
    assert_eq!(v[2], "125000000");
    // The proof of the same record verifies too.
    assert_eq!(verdict(c).await.0, "verified");
    shot(c, "record-opened-en").await;

    // A node (or network) that changes the disclosed value by one fen: caught, nothing shown.
    let v = record_under_fetch(c, sealed, "const real = window.fetch;
         window.fetch = async (req) => {
           const res = await real(req);
           const url = typeof req === 'string' ? req : req.url;
           if (!url.includes('/openings')) return res;
           const j = await res.json();
           for (const o of j.openings) { o.fen += 1; o.amount = (BigInt(o.amount.replace('.', '')) + 1n).toString().replace(/(..)$/, '.$1'); }
           return new Response(JSON.stringify(j), { status: 200, headers: { 'content-type': 'application/json' } });
         };
         location.hash = '#/';
         return true;").await;
    assert_eq!(v[0], "failed", "{v}");
    let shown = v[1].as_str().unwrap();
    assert!(shown.contains("does not match the commitment") && !shown.contains("1,250,000"), "{shown}");
    restore_fetch(c).await;

    // A node that does not disclose (here the page's fetch answers as a node that does not hold
    // the openings would, 404 naming the attester): the amount stays confidential, the reason shown.
    let v = record_under_fetch(c, sealed, "const real = window.fetch;
         window.fetch = async (req) => {
           const url = typeof req === 'string' ? req : req.url;
           if (!url.includes('/openings')) return real(req);
           const error = { code: 404, field: 'id', rule: \"this node does not hold the openings; they are kept by the node of member 'other-bank', its attester\" };
           return new Response(JSON.stringify({ error }), { status: 404, headers: { 'content-type': 'application/json' } });
         };
         location.hash = '#/';
         return true;").await;
    assert_eq!(v[0], "refused", "{v}");
    let shown = v[1].as_str().unwrap();
    assert!(
        shown.starts_with("confidential (not disclosed) not disclosed to you: id: this node does not hold"),
        "{shown}"
    );
    restore_fetch(c).await;
}

/// The console's verify.js, loaded in the page, against the ledger's Rust code: every inclusion
/// proof of trees of 1..=9 leaves folds to the Rust root (and a wrong index does not), and a
/// checkpoint of 4 validators passes with 3 signatures, not with 2 or with one bad line.
async fn verify_js_agrees_with_the_ledger(c: &Client) {
    let mut cases = Vec::new();
    for size in 1..=9u64 {
        let mut tree = MemTree::new();
        let leaves: Vec<Vec<u8>> = (0..size).map(|i| format!("leaf {i}").into_bytes()).collect();
        for l in &leaves {
            tree.append_leaf_hash(merkle::leaf_hash(l));
        }
        let root = B64.encode(merkle::root_at(size, &tree).unwrap());
        for i in 0..size {
            let proof: Vec<String> =
                merkle::inclusion_proof(i, size, &tree).unwrap().iter().map(|h| B64.encode(h)).collect();
            cases.push(json!({ "index": i, "size": size, "leaf": B64.encode(&leaves[i as usize]), "proof": proof, "root": root }));
        }
    }
    let keys: Vec<SecretKey> = (1..=4u8).map(|i| SecretKey::from_seed([i; 32])).collect();
    let names = ["val-a", "val-b", "val-c", "val-d"];
    let body = CheckpointBody {
        origin: "console.test/x".into(),
        tree_size: 9,
        root: [7; 32],
        height: 5,
        round: 1,
        block_hash: [9; 32],
    };
    let note = |n: usize| {
        Checkpoint { body: body.clone(), signatures: (0..n).map(|i| sign(&body, names[i], &keys[i])).collect() }
            .to_note()
    };
    let mut bad =
        Checkpoint { body: body.clone(), signatures: (0..4).map(|i| sign(&body, names[i], &keys[i])).collect() };
    bad.signatures[3].signature.0[0] ^= 1;
    let validators: Vec<Value> = (0..4).map(|i| json!([names[i], hex(&keys[i].public().0)])).collect();
    let notes = json!([note(2), note(3), note(4), bad.to_note()]);
    let v = c
        .execute_async(
            "const [cases, validators, notes, done] = arguments;
             import('/console/verify.js').then(async (v) => {
               const b = (s) => v.b64(s);
               const roots = [];
               for (const k of cases) {
                 const lh = await v.leafHash(b(k.leaf));
                 const r = await v.rootFromInclusionProof(k.index, k.size, lh, k.proof.map(b));
                 roots.push(btoa(String.fromCharCode(...r)) === k.root);
                 if (k.size > 1) {
                   const wrong = await v.rootFromInclusionProof((k.index + 1) % k.size, k.size, lh, k.proof.map(b)).catch(() => null);
                   roots.push(wrong === null || btoa(String.fromCharCode(...wrong)) !== k.root);
                 }
               }
               const vals = validators.map(([name, key]) => ({ name, publicKey: v.unhex(key) }));
               const quorum = [];
               for (const n of notes) quorum.push((await v.verifyCheckpoint(v.parseCheckpoint(n), vals)).ok);
               done({ roots, quorum, thresholds: [1, 2, 3, 4, 7].map(v.quorumThreshold) });
             }).catch((e) => done({ error: String(e) }));",
            vec![json!(cases), json!(validators), notes],
        )
        .await
        .unwrap();
    assert!(v["error"].is_null(), "{v}");
    let roots = v["roots"].as_array().unwrap();
    assert!(roots.len() > 45 && roots.iter().all(|r| r == true), "{v}");
    assert_eq!(
        v["quorum"],
        json!([false, true, true, false]),
        "2 of 4 refused, 3 and 4 accepted, one bad line refused"
    );
    assert_eq!(v["thresholds"], json!([1, 2, 3, 3, 5]));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The console's first-paint figure (issue 14; docs/BENCHMARKS.md §Console): the credit profile
/// of an enterprise with a known number of records on a large ledger, in headless Chromium,
/// timed by the browser's own Navigation, Resource and Paint Timing and the console's marks
/// (`credence:painted`, app.js). Not a CI test and no timed assertion: run it by hand on a
/// ledger made for it and a release binary (docs/BENCHMARKS.md gives the commands):
/// `CREDENCE_CONSOLE_BENCH_DIR=DIR CREDENCE_CONSOLE_BENCH_BIN=…/release/credence
/// cargo test --test console -- --ignored --nocapture`. Prints one JSON object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement on a large ledger made by hand (docs/BENCHMARKS.md §Console)"]
async fn console_first_paint_of_a_large_profile() {
    use std::io::BufRead as _;
    let dir = std::path::PathBuf::from(
        std::env::var_os("CREDENCE_CONSOLE_BENCH_DIR")
            .expect("CREDENCE_CONSOLE_BENCH_DIR: a `credence generate --access-keys --focus-records N` directory"),
    );
    let bin = std::env::var("CREDENCE_CONSOLE_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_credence").into());
    // The default of `credence generate --focus-enterprise`.
    let uscc = std::env::var("CREDENCE_CONSOLE_BENCH_USCC").unwrap_or_else(|_| "91310115MA1K4TLJ02".into());
    let runs: usize = std::env::var("CREDENCE_CONSOLE_BENCH_RUNS").map_or(10, |r| r.parse().expect("a number of runs"));

    let mut child =
        Command::new(&bin).args(["bench", "console", "--data-dir"]).arg(&dir).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let _server = Proc(child);
    let url = line.trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "bench console printed {line:?}");

    let (chromium, chromedriver) = common::tools::chromium();
    let driver_port = port_base(0) + 1002;
    let _driver = Proc(
        Command::new(&chromedriver)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = CHROME_FLAGS.iter().map(|s| s.to_string()).collect();
    args.push(format!("--user-data-dir={}", tmp.path().join("profile").display()));
    let caps = json!({ "browserName": "chrome", "goog:chromeOptions": { "binary": chromium, "args": args } });
    let deadline = Instant::now() + Duration::from_secs(20);
    let c = loop {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.as_object().unwrap().clone())
            .connect(&format!("http://127.0.0.1:{driver_port}"))
            .await
        {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                eprintln!("waiting for chromedriver: {e}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => panic!("no WebDriver session: {e}"),
        }
    };
    let officer = std::fs::read_to_string(dir.join("keys/officer.access")).unwrap();
    // Sign in (this loads the console's assets once: every profile load below finds them in the
    // browser's cache, as a reader's second page would; `body_bytes` is what a cold load moves).
    sign_in(&c, &url, &officer, "loan-application").await;
    let hash = format!("#/enterprise/{uscc}");
    let mut samples = Vec::new();
    for run in 0..=runs {
        c.goto("about:blank").await.unwrap();
        c.goto(&format!("{url}/console{hash}")).await.unwrap();
        let script = format!(
            "const m = performance.getEntriesByName('credence:painted').find(m => m.detail === '{hash}'); \
             const p = document.querySelector('#profile'); if (!m || !p) return null; \
             const nav = performance.getEntriesByType('navigation')[0]; \
             const res = performance.getEntriesByType('resource'); \
             const paint = Object.fromEntries(performance.getEntriesByType('paint').map(e => [e.name, e.startTime])); \
             const api = res.filter(r => r.name.includes('/v1/enterprises/')); \
             const sum = (xs, f) => xs.reduce((s, x) => s + f(x), 0); \
             return {{ painted_ms: m.startTime, fcp_ms: paint['first-contentful-paint'] ?? null, \
               records: document.querySelector('#sum-records .stat-value').textContent, \
               partial: !!document.querySelector('#profile .warn'), \
               api_requests: api.length, \
               api_start_ms: api.length ? api[0].startTime : null, \
               api_end_ms: api.length ? Math.max(...api.map(r => r.responseEnd)) : null, \
               api_server_ms: sum(api, r => r.responseStart - r.requestStart), \
               api_total_ms: sum(api, r => r.responseEnd - r.requestStart), \
               api_bytes: sum(api, r => r.transferSize), api_decoded_bytes: sum(api, r => r.decodedBodySize), \
               bytes: nav.transferSize + sum(res, r => r.transferSize), \
               body_bytes: nav.encodedBodySize + sum(res, r => r.encodedBodySize), \
               decoded_bytes: nav.decodedBodySize + sum(res, r => r.decodedBodySize), \
               resources: res.length + 1 }};"
        );
        let v = until(&c, "the profile painted", &script, |v| v.is_object()).await;
        assert_eq!(v["partial"], false, "the whole profile was read: {v}");
        eprintln!("run {run}: {v}");
        samples.push(v);
    }
    let _ = c.close().await;
    // The first load also pays for the server's cold page cache and the browser's first compile.
    let warm = &samples[1..];
    let stat = |key: &str| {
        let mut xs: Vec<f64> = warm.iter().map(|v| v[key].as_f64().unwrap()).collect();
        xs.sort_by(f64::total_cmp);
        let round = |x: f64| (x * 10.0).round() / 10.0;
        json!({ "median": round(xs[xs.len() / 2]), "max": round(xs[xs.len() - 1]) })
    };
    let out = json!({
        "url": url,
        "enterprise": uscc,
        "records_on_profile": samples[0]["records"],
        "first": samples[0],
        "warm_runs": warm.len(),
        "warm": {
            "painted_ms": stat("painted_ms"),
            "fcp_ms": stat("fcp_ms"),
            "api_server_ms": stat("api_server_ms"),
            "api_total_ms": stat("api_total_ms"),
            "api_start_ms": stat("api_start_ms"),
            "api_end_ms": stat("api_end_ms"),
            "bytes": stat("bytes"),
            "body_bytes": stat("body_bytes"),
        },
        "target_server_ms": 300,
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}
