//! `credence query ...`: attestations by enterprise, patent or attester, one block, one attestation — tables for people, `--json` and `--csv` for programs (fields in docs/AUDITING.md).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use credence_ledger::ids::Date;
use credence_node::api::views::{AttestationPage, AttestationView, BlockView, ClaimView};
use serde::Serialize;

use crate::access::{AccessArgs, ReadArgs};
use crate::http::Conn;

/// The local node's API, as `credence dev` and `credence init` configure it.
pub const NODE_DEFAULT: &str = "http://127.0.0.1:8080";
/// Items per request when paging (the API's largest page).
pub const PAGE_ITEMS_MAX: u64 = 1000;
/// Most attestations one listing (or a profile) holds in memory: about 200 MB of views.
pub const LIST_ITEMS_MAX: usize = 200_000;

#[derive(Subcommand, Debug)]
pub enum QueryCommand {
    /// Attestations about an enterprise: its R&D spend, valuations of its patents, its pledges.
    Enterprise {
        /// Unified social credit code (18 characters).
        uscc: String,
        #[command(flatten)]
        list: ListArgs,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Attestations about a patent: valuations and pledges.
    Patent {
        /// CN application number, e.g. CN202310123456.6.
        number: String,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Attestations made by one member.
    Attester {
        /// Member name from genesis.
        member: String,
        #[command(flatten)]
        list: ListArgs,
    },
    /// One committed block: header, certificate and attestation ids.
    Block {
        height: u64,
        #[command(flatten)]
        out: OutArgs,
    },
    /// One attestation (committed, or pending on this node), decoded.
    Attestation {
        /// Attestation id: 64 hex digits.
        id: String,
        #[command(flatten)]
        out: OutArgs,
        #[command(flatten)]
        read: ReadArgs,
    },
}

#[derive(Args, Debug, Clone)]
pub struct OutArgs {
    /// The node's API.
    #[arg(long, default_value = NODE_DEFAULT)]
    pub node: String,
    /// Query this data directory offline instead (a stopped node's, or one from `credence generate`).
    #[arg(long, conflicts_with = "node")]
    pub data_dir: Option<PathBuf>,
    /// Print JSON (the API's objects) instead of a table.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV with a header row (columns in docs/AUDITING.md).
    #[arg(long)]
    pub csv: bool,
    #[command(flatten)]
    pub access: AccessArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ListArgs {
    #[command(flatten)]
    pub out: OutArgs,
    /// Only blocks at this height or later.
    #[arg(long)]
    pub from_height: Option<u64>,
    /// Only blocks at this height or earlier.
    #[arg(long)]
    pub to_height: Option<u64>,
    /// Only blocks committed at or after this time: YYYY-MM-DD (UTC midnight) or Unix milliseconds.
    #[arg(long, value_parser = parse_time_ms)]
    pub since: Option<u64>,
    /// Only blocks committed at or before this time: YYYY-MM-DD (the whole day, UTC) or Unix milliseconds.
    #[arg(long, value_parser = parse_until_ms)]
    pub until: Option<u64>,
    /// Most attestations to print (the node is asked in pages of up to 1,000).
    #[arg(long, default_value_t = 100, conflicts_with = "all")]
    pub limit: u64,
    /// Print every matching attestation.
    #[arg(long)]
    pub all: bool,
    /// Start after this leaf index (the `next_after` a previous listing printed).
    #[arg(long)]
    pub after: Option<u64>,
}

const MS_PER_DAY: u64 = 86_400_000;

fn parse_time(s: &str, end_of_day: bool) -> Result<u64, String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| format!("'{s}' is too large for Unix milliseconds"));
    }
    let d = Date::parse("time", s).map_err(|e| format!("{e}; use YYYY-MM-DD or Unix milliseconds"))?;
    let days = u64::try_from(d.days_since_epoch()).map_err(|_| format!("'{s}' is before 1970"))?;
    Ok(days * MS_PER_DAY + if end_of_day { MS_PER_DAY - 1 } else { 0 })
}

fn parse_time_ms(s: &str) -> Result<u64, String> {
    parse_time(s, false)
}

fn parse_until_ms(s: &str) -> Result<u64, String> {
    parse_time(s, true)
}

/// A GET that must answer 200 with JSON of type `T`; otherwise the node's error, as it said it.
pub fn get_json<T: serde::de::DeserializeOwned>(conn: &mut Conn, path: &str) -> Result<T> {
    let r = conn.get(path)?;
    if r.status != 200 {
        bail!("{}", node_error(r.status, &r.body));
    }
    serde_json::from_slice(&r.body).with_context(|| format!("GET {path}: unexpected answer"))
}

/// The node's genesis (`GET /v1/genesis`). Trust it only as far as the node: an auditor
/// passes the genesis obtained out of band instead.
pub fn node_genesis(conn: &mut Conn) -> Result<credence_ledger::genesis::Genesis> {
    let r = conn.get("/v1/genesis")?;
    if r.status != 200 {
        bail!("{}", node_error(r.status, &r.body));
    }
    credence_ledger::genesis::Genesis::from_toml(&r.text()).context("the node's genesis")
}

/// The node's error answer (`{"error": {"message": ...}}`) as one line.
pub fn node_error(status: u16, body: &[u8]) -> String {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect());
    format!("the node answered HTTP {status}: {message}")
}

/// Fetches every page of a listing (`path` without query) within `args`' range, up to
/// `limit` items (`None`: all), with `extra` (`&purpose=…`, or empty) added to each page's
/// query. Returns the items and the `next_after` to continue from.
pub fn fetch_list(
    conn: &mut Conn,
    path: &str,
    args: &ListArgs,
    extra: &str,
) -> Result<(Vec<AttestationView>, Option<u64>)> {
    let limit = if args.all { None } else { Some(args.limit) };
    let mut items = Vec::new();
    let mut after = args.after;
    loop {
        let want = match limit {
            Some(l) => (l - items.len() as u64).min(PAGE_ITEMS_MAX),
            None => PAGE_ITEMS_MAX,
        };
        if want == 0 {
            return Ok((items, after));
        }
        let mut q = format!("{path}?limit={want}");
        for (k, v) in [
            ("after", after),
            ("from_height", args.from_height),
            ("to_height", args.to_height),
            ("since_ms", args.since),
            ("until_ms", args.until),
        ] {
            if let Some(v) = v {
                q.push_str(&format!("&{k}={v}"));
            }
        }
        q.push_str(extra);
        let page: AttestationPage = get_json(conn, &q)?;
        items.extend(page.items);
        if items.len() > LIST_ITEMS_MAX {
            bail!(
                "more than {LIST_ITEMS_MAX} attestations match: narrow the range (--from-height, --to-height, \
                 --since, --until), page with --limit and --after, or use `credence export --csv`"
            );
        }
        match page.next_after {
            Some(n) => after = Some(n),
            None => return Ok((items, None)),
        }
    }
}

/// A connection to the API `out` names (keep the guard alive while using it).
fn connect(out: &OutArgs) -> Result<(Conn, Option<crate::local::LocalApi>)> {
    let (url, local) = crate::local::endpoint(&out.node, out.data_dir.as_deref())?;
    Ok((out.access.connect(&url)?, local))
}

pub fn run(cmd: &QueryCommand) -> Result<ExitCode> {
    match cmd {
        QueryCommand::Enterprise { uscc, list, read } => {
            list_cmd(&format!("/v1/enterprises/{}/attestations", seg(uscc)), list, &read.query()?)
        }
        QueryCommand::Patent { number, list } => {
            list_cmd(&format!("/v1/patents/{}/attestations", seg(number)), list, "")
        }
        QueryCommand::Attester { member, list } => {
            list_cmd(&format!("/v1/attesters/{}/attestations", seg(member)), list, "")
        }
        QueryCommand::Block { height, out } => {
            let (mut conn, _local) = connect(out)?;
            let b: BlockView = get_json(&mut conn, &format!("/v1/blocks/{height}"))?;
            print_block(&b, out)?;
            Ok(ExitCode::SUCCESS)
        }
        QueryCommand::Attestation { id, out, read } => {
            let (mut conn, _local) = connect(out)?;
            let q = read.query()?.replacen('&', "?", 1);
            let a: AttestationView = get_json(&mut conn, &format!("/v1/attestations/{}{q}", seg(id)))?;
            let mut items = [a];
            let wrong = open_sealed(&mut conn, &mut items, &read.query()?)?;
            if out.json {
                println!("{}", serde_json::to_string_pretty(&items[0])?);
            } else {
                print_rows(&items, out, None)?;
            }
            Ok(opened_exit(&wrong))
        }
    }
}

/// `credence queries --member NAME`: the query log of one reader member, as a regulator reads it.
#[derive(Args, Debug)]
pub struct QueriesArgs {
    /// The reader member whose reads to list (the member whose access keys read, at any node).
    #[arg(long)]
    pub member: String,
    #[command(flatten)]
    pub list: ListArgs,
}

/// One logged read of a member (a query record), as `credence queries` prints it.
#[derive(Debug, Serialize)]
pub struct ReadLine {
    /// Height of the block that committed the record.
    pub height: Option<u64>,
    pub leaf_index: Option<u64>,
    /// When the serving node logged it (Unix ms).
    pub issued_at_ms: u64,
    pub reader: String,
    pub enterprise: String,
    pub purpose: String,
    /// facts, openings, block, entries or portfolio.
    pub read: String,
    /// The height of the block read, when `read` is block.
    pub block_height: Option<u64>,
    /// The index of the entry bundle read, when `read` is entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry_bundle: Option<u64>,
    /// The height of the state whose portfolio loan lines were read, when `read` is portfolio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub portfolio_height: Option<u64>,
    /// The consent read under; `None` for a regulator.
    pub consent: Option<String>,
    /// The access-key grant that signed the read (names the holder).
    pub access_key: String,
    /// The member whose node served the read and signed the record.
    pub logged_by: String,
    pub id: String,
}

/// What a query record's claim says was read: `facts`, `openings`, `block 12`, `entries 3` or
/// `portfolio 12` (the block's height, the bundle's index or the height of the portfolio's
/// state); `None` for another claim.
fn query_read(claim: &ClaimView) -> Option<String> {
    let ClaimView::Query { read, block_height, entry_bundle, portfolio_height, .. } = claim else { return None };
    Some(match block_height.or(*entry_bundle).or(*portfolio_height) {
        Some(n) => format!("{read} {n}"),
        None => read.clone(),
    })
}

/// Lists a member's query records (`GET /v1/members/{member}/queries`, regulator scope).
pub fn queries(a: &QueriesArgs) -> Result<ExitCode> {
    if a.list.out.csv {
        bail!("--csv: `credence queries` prints a table or --json");
    }
    let (mut conn, _local) = connect(&a.list.out)?;
    let path = format!("/v1/members/{}/queries", seg(&a.member));
    let (items, next_after) = fetch_list(&mut conn, &path, &a.list, "")?;
    let mut lines = Vec::with_capacity(items.len());
    for i in &items {
        let ClaimView::Query {
            reader,
            access_key,
            enterprise,
            purpose,
            consent,
            read,
            block_height,
            entry_bundle,
            portfolio_height,
        } = &i.claim
        else {
            bail!("the node listed {} ({:?}) among {}'s query records", i.id, i.claim, a.member);
        };
        if *reader != a.member {
            bail!("the node listed {}, a read by '{reader}', among {}'s query records", i.id, a.member);
        }
        lines.push(ReadLine {
            height: i.height,
            leaf_index: i.leaf_index,
            issued_at_ms: i.issued_at_ms,
            reader: reader.clone(),
            enterprise: enterprise.clone(),
            purpose: purpose.clone(),
            read: read.clone(),
            block_height: *block_height,
            entry_bundle: *entry_bundle,
            portfolio_height: *portfolio_height,
            consent: consent.clone(),
            access_key: access_key.clone(),
            logged_by: i.attester.clone(),
            id: i.id.clone(),
        });
    }
    if a.list.out.json {
        let v = serde_json::json!({ "member": a.member, "queries": lines, "next_after": next_after });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let short = |s: &str| s.get(..16).unwrap_or(s).to_string();
    let rows: Vec<Vec<String>> = lines
        .iter()
        .zip(&items)
        .map(|(q, i)| {
            let when =
                credence_ledger::ids::Date::from_unix_ms(q.issued_at_ms).map(|d| d.to_string()).unwrap_or_default();
            vec![
                q.height.map(|h| h.to_string()).unwrap_or_else(|| "-".into()),
                when,
                q.enterprise.clone(),
                q.purpose.clone(),
                query_read(&i.claim).unwrap_or_default(),
                q.consent.as_deref().map_or("none (regulator)".to_string(), short),
                short(&q.access_key),
                q.logged_by.clone(),
                short(&q.id),
            ]
        })
        .collect();
    println!("Query log of member {} (each read its access keys made, logged on the ledger)", a.member);
    print_table(
        &["height", "date", "enterprise", "purpose", "read", "consent", "access key", "logged by", "id"],
        &rows,
    );
    eprintln!(
        "{} read(s){}",
        lines.len(),
        match next_after {
            Some(n) => format!("; more with --after {n}"),
            None => String::new(),
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// A path segment as given, with characters outside the unreserved set percent-encoded
/// (the node then refuses it with a clear error instead of the request being mangled).
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn list_cmd(path: &str, args: &ListArgs, extra: &str) -> Result<ExitCode> {
    let (mut conn, _local) = connect(&args.out)?;
    let (mut items, next_after) = fetch_list(&mut conn, path, args, extra)?;
    let wrong = open_sealed(&mut conn, &mut items, extra)?;
    if args.out.json {
        let page = AttestationPage { items, next_after };
        println!("{}", serde_json::to_string_pretty(&page)?);
    } else {
        print_rows(&items, &args.out, next_after)?;
    }
    Ok(opened_exit(&wrong))
}

/// Under a restricted read (`read` non-empty), fetches the openings of the sealed amounts of
/// `items`, checks each against its leaf and fills in those that open (docs/ACCESS.md);
/// returns the openings that do not match. Without a purpose nothing is fetched: sealed
/// amounts stay confidential.
fn open_sealed(conn: &mut Conn, items: &mut [AttestationView], read: &str) -> Result<Vec<String>> {
    if read.is_empty() {
        return Ok(Vec::new());
    }
    let d = crate::openings::fetch(conn, items.iter(), read)?;
    d.apply(items);
    Ok(d.wrong())
}

/// Success, or failure after naming each opening that does not match its commitment.
fn opened_exit(wrong: &[String]) -> ExitCode {
    for e in wrong {
        eprintln!("ERROR: {e}");
    }
    if wrong.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// The static name of a record kind as the node reports it (`other` for a kind this CLI does not know).
fn kind_name(of: &str) -> &'static str {
    credence_ledger::attestation::ClaimKind::ALL.into_iter().map(|k| k.name()).find(|n| *n == of).unwrap_or("other")
}

/// One attestation as a flat CSV/table row. Field names and order are stable (docs/AUDITING.md).
#[derive(Debug, Serialize)]
pub struct Row {
    pub height: Option<u64>,
    pub leaf_index: Option<u64>,
    pub id: String,
    pub status: String,
    pub record_status: String,
    pub attester: String,
    pub sequence: u64,
    pub issued_at_ms: u64,
    pub kind: &'static str,
    pub enterprise: String,
    pub patent: String,
    pub period: String,
    pub counterparty: String,
    pub amount_fen: Option<u64>,
    pub currency: String,
    pub amount: String,
    pub detail: String,
}

impl Row {
    pub const HEADER: &'static [&'static str] = &[
        "height",
        "leaf_index",
        "id",
        "status",
        "record_status",
        "attester",
        "sequence",
        "issued_at_ms",
        "kind",
        "enterprise",
        "patent",
        "period",
        "counterparty",
        "amount_fen",
        "currency",
        "amount",
        "detail",
    ];

    pub fn of(a: &AttestationView) -> Row {
        let mut r = Row {
            height: a.height,
            leaf_index: a.leaf_index,
            id: a.id.clone(),
            status: a.status.clone(),
            record_status: a.record_status.clone().unwrap_or_default(),
            attester: a.attester.clone(),
            sequence: a.sequence,
            issued_at_ms: a.issued_at_ms,
            kind: "",
            enterprise: String::new(),
            patent: String::new(),
            period: String::new(),
            counterparty: String::new(),
            amount_fen: None,
            currency: String::new(),
            amount: String::new(),
            detail: String::new(),
        };
        let mut money = |m: &credence_node::api::views::MoneyView| {
            r.amount_fen = Some(m.fen);
            r.currency = m.currency.clone();
            r.amount = m.amount.clone();
        };
        // A sealed amount not opened: no fen (never 0) and the word, not a number.
        let sealed = |m: &credence_node::api::views::AmountView| {
            m.money().unwrap_or_else(|| credence_node::api::views::MoneyView {
                fen: 0,
                currency: m.currency.clone(),
                amount: crate::profile::CONFIDENTIAL_TEXT.to_string(),
            })
        };
        match &a.claim {
            ClaimView::RdSpend { enterprise, period, amount, category, .. } => {
                money(&sealed(amount));
                r.kind = "rd-spend";
                r.enterprise = enterprise.clone();
                r.period = period.clone();
                r.detail = format!("category={category}");
            }
            ClaimView::PatentValuation { patent, owner, value, method, valuation_date, valid_until, .. } => {
                money(&sealed(value));
                r.kind = "patent-valuation";
                r.enterprise = owner.clone();
                r.patent = patent.clone();
                r.period = format!("{valuation_date}..{valid_until}");
                r.detail = format!("method={method}");
            }
            ClaimView::Pledge { patent, pledgor, pledgee, secured, start, term_months, .. } => {
                money(&sealed(secured));
                r.kind = "pledge";
                r.enterprise = pledgor.clone();
                r.patent = patent.clone();
                r.counterparty = pledgee.clone();
                r.period = format!("{start}+{term_months}m");
            }
            ClaimView::Release { pledge } => {
                r.kind = "release";
                r.detail = format!("pledge={pledge}");
            }
            ClaimView::Revoke { target, superseded_by } => {
                r.kind = "revoke";
                r.detail = match superseded_by {
                    Some(s) => format!("target={target} superseded_by={s}"),
                    None => format!("target={target}"),
                };
            }
            ClaimView::Equivocation { validator, height, round, step } => {
                r.kind = "equivocation";
                r.counterparty = validator.clone();
                r.detail = format!("height={height} round={round} step={step}");
            }
            ClaimView::GovProposal { change, member, expires_at_ms } => {
                r.kind = "gov-proposal";
                r.counterparty = member.clone().unwrap_or_default();
                r.detail = format!("change={change} expires_at_ms={expires_at_ms}");
            }
            ClaimView::GovApproval { proposal } => {
                r.kind = "gov-approval";
                r.detail = format!("proposal={proposal}");
            }
            ClaimView::KeyRotation { new_key } => {
                r.kind = "key-rotation";
                r.detail = format!("new_key={new_key}");
            }
            ClaimView::IpPledge { description } => {
                r.kind = "ip-pledge";
                r.detail = description.clone();
            }
            ClaimView::PatentStatus { patent, owner, description } => {
                r.kind = "patent-status";
                r.enterprise = owner.clone();
                r.patent = patent.clone();
                r.detail = description.clone();
            }
            ClaimView::Appraisal { patent, owner, value, valid_until, description } => {
                money(value);
                r.kind = "appraisal";
                r.enterprise = owner.clone();
                r.patent = patent.clone();
                r.period = format!("..{valid_until}");
                r.detail = description.clone();
            }
            ClaimView::Loan { lender, borrower, principal, description } => {
                money(principal);
                r.kind = "loan";
                r.enterprise = borrower.clone();
                r.counterparty = lender.clone();
                r.detail = description.clone();
            }
            ClaimView::LoanEvent { loan, date, description } => {
                r.kind = "loan-event";
                r.period = date.clone();
                r.detail = format!("loan={loan} {description}");
            }
            ClaimView::RiskPool { description } => {
                r.kind = "risk-pool";
                r.detail = description.clone();
            }
            ClaimView::Disposal { pledge, description } => {
                r.kind = "disposal";
                r.detail = format!("pledge={pledge} {description}");
            }
            ClaimView::Qualification { enterprise, description } => {
                r.kind = "qualification";
                r.enterprise = enterprise.clone();
                r.detail = description.clone();
            }
            ClaimView::AccessKey { holder, key, scopes, expires_at_ms } => {
                r.kind = "access-key";
                r.detail =
                    format!("holder={holder} key={key} scopes={} expires_at_ms={expires_at_ms}", scopes.join(","));
            }
            ClaimView::Consent { enterprise, recipient, purpose, scope, expires_at_ms, .. } => {
                r.kind = "consent";
                r.enterprise = enterprise.clone();
                r.counterparty = recipient.clone();
                r.detail = format!("purpose={purpose} scope={} expires_at_ms={expires_at_ms}", scope.join(","));
            }
            ClaimView::Query { reader, access_key, enterprise, purpose, consent, .. } => {
                r.kind = "query";
                r.enterprise = enterprise.clone();
                r.counterparty = reader.clone();
                r.detail = format!(
                    "purpose={purpose} read={} access_key={access_key} consent={}",
                    query_read(&a.claim).unwrap_or_default(),
                    consent.as_deref().unwrap_or("none (regulator)")
                );
            }
            ClaimView::Withheld { of } => {
                // The kind is known; the content (enterprise, amounts) is not shown to this reader.
                r.kind = kind_name(of);
                r.detail = "withheld: no live consent for this reader".into();
                r.amount = "withheld".into();
            }
        }
        if r.amount == crate::profile::CONFIDENTIAL_TEXT {
            r.amount_fen = None;
        }
        r
    }

    pub fn cells(&self) -> Vec<String> {
        let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        vec![
            opt(self.height),
            opt(self.leaf_index),
            self.id.clone(),
            self.status.clone(),
            self.record_status.clone(),
            self.attester.clone(),
            self.sequence.to_string(),
            self.issued_at_ms.to_string(),
            self.kind.to_string(),
            self.enterprise.clone(),
            self.patent.clone(),
            self.period.clone(),
            self.counterparty.clone(),
            opt(self.amount_fen),
            self.currency.clone(),
            self.amount.clone(),
            self.detail.clone(),
        ]
    }
}

/// One CSV field (RFC 4180): quoted when it holds a comma, quote or line break.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

pub fn write_csv_line(out: &mut impl Write, cells: &[String]) -> std::io::Result<()> {
    let line: Vec<String> = cells.iter().map(|c| csv_field(c)).collect();
    writeln!(out, "{}", line.join(","))
}

/// Prints a table: columns padded to their widest cell.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

fn print_rows(items: &[AttestationView], out: &OutArgs, next_after: Option<u64>) -> Result<()> {
    let rows: Vec<Row> = items.iter().map(Row::of).collect();
    if out.csv {
        let stdout = std::io::stdout();
        let mut w = stdout.lock();
        write_csv_line(&mut w, &Row::HEADER.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        for r in &rows {
            write_csv_line(&mut w, &r.cells())?;
        }
        return Ok(());
    }
    let header = ["height", "leaf", "id", "status", "attester", "seq", "kind", "subject", "amount", "period", "detail"];
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let subject = [r.enterprise.as_str(), r.patent.as_str()]
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join(" ");
            let status = if r.record_status.is_empty() { r.status.clone() } else { r.record_status.clone() };
            let amount = if r.amount.is_empty() { String::new() } else { format!("{} {}", r.amount, r.currency) };
            let detail = match r.counterparty.as_str() {
                "" => r.detail.clone(),
                c => format!("to={c} {}", r.detail).trim_end().to_string(),
            };
            vec![
                r.height.map(|h| h.to_string()).unwrap_or_else(|| "-".into()),
                r.leaf_index.map(|h| h.to_string()).unwrap_or_else(|| "-".into()),
                r.id[..16.min(r.id.len())].to_string(),
                status,
                r.attester.clone(),
                r.sequence.to_string(),
                r.kind.to_string(),
                subject,
                amount,
                r.period.clone(),
                detail,
            ]
        })
        .collect();
    print_table(&header, &table);
    eprintln!(
        "{} attestation(s){}",
        rows.len(),
        match next_after {
            Some(n) => format!("; more with --after {n}"),
            None => String::new(),
        }
    );
    Ok(())
}

fn print_block(b: &BlockView, out: &OutArgs) -> Result<()> {
    if out.json {
        println!("{}", serde_json::to_string_pretty(b)?);
        return Ok(());
    }
    let fields: Vec<(&str, String)> = vec![
        ("height", b.height.to_string()),
        ("hash", b.hash.clone()),
        ("prev", b.prev.clone()),
        ("time_ms", b.time_ms.to_string()),
        ("proposer", b.proposer.clone()),
        ("tree_size", b.tree_size.to_string()),
        ("tree_root", b.tree_root.clone()),
        ("validator_set", b.validator_set.clone()),
        ("first_leaf_index", b.first_leaf_index.to_string()),
        ("attestations", b.attestations.len().to_string()),
    ];
    if out.csv {
        let stdout = std::io::stdout();
        let mut w = stdout.lock();
        write_csv_line(&mut w, &fields.iter().map(|(k, _)| k.to_string()).collect::<Vec<_>>())?;
        write_csv_line(&mut w, &fields.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>())?;
        return Ok(());
    }
    for (k, v) in &fields {
        println!("{k:<17} {v}");
    }
    println!("certificate:\n{}", b.certificate.trim_end());
    println!("attestation ids:");
    for id in &b.attestations {
        println!("  {id}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_dates_or_milliseconds() {
        assert_eq!(parse_time_ms("1970-01-02"), Ok(MS_PER_DAY));
        assert_eq!(parse_until_ms("1970-01-01"), Ok(MS_PER_DAY - 1));
        assert_eq!(parse_time_ms("1234"), Ok(1234));
        assert!(parse_time_ms("2024-02-30").unwrap_err().contains("YYYY-MM-DD"));
        assert!(parse_time_ms("99999999999999999999999").is_err());
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(seg("CN202310123456.7"), "CN202310123456.7");
        assert_eq!(seg("a/b?c"), "a%2Fb%3Fc");
    }
}
