//! Chain commands: `generate`, `export`, `verify`, `demo` and `bench`.

use std::fs;
use std::io::{BufReader, BufWriter, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use credence_ledger::block::CertifiedBlock;
use credence_ledger::demo::ChainBuilder;
use credence_ledger::export::{ExportReader, ExportWriter};
use credence_ledger::genesis::Genesis;
use credence_ledger::governance::WitnessTerm;
use credence_ledger::ids::Uscc;
use credence_ledger::store::{RedbOptions, RedbStore, Store};
use credence_ledger::verify::{self, ChainContext, Summary, VerifyError};
use credence_node::api::views::GovWitnessView;
use credence_node::runtime::now_ms;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::keys::{key_file_text, write_private};

const GENESIS_FILE: &str = "genesis.toml";
const STORE_FILE: &str = "ledger.redb";
/// redb page cache when only reading a store front to back (verify, export).
const READ_CACHE_BYTES: usize = 32 * 1024 * 1024;

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Attestations to generate: the demo loan world first (about 3,700; cut short if N is
    /// smaller), then the mix that --mix names.
    #[arg(long)]
    records: u64,
    /// What follows the first loan world: `bulk`, R&D spend, valuations, pledges, releases
    /// and revocations (the kinds a chain holds most of); or `loans`, more loan worlds (new
    /// enterprises, patent status, appraisals, two-stage pledges, loans and their
    /// performance, pools, disposals, qualifications), up to 800 worlds (about 3 million records).
    #[arg(long, value_enum, default_value_t = Mix::Bulk)]
    mix: Mix,
    /// Directory to write genesis.toml, keys/ and ledger.redb into (must not hold a ledger yet).
    #[arg(long)]
    out: PathBuf,
    /// Seed for keys and data: the same seed gives the same chain.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Attestations per block (at most the genesis block_records_max, 1000).
    #[arg(long, default_value_t = 1000)]
    block_records: usize,
    /// Genesis time in Unix milliseconds (default: early enough that every block time is in the past).
    #[arg(long)]
    genesis_time_ms: Option<u64>,
    /// Then record an access key of a loan officer of bank-icbc-sz (member and restricted
    /// scopes, 30 days) and that bank's consent of every enterprise in the ledger, and write
    /// the key to keys/officer.access: `bench audit` then also times signed, logged reads.
    #[arg(long)]
    access_keys: bool,
    /// Make this many of the bulk records (R&D spend and patent valuations, spread evenly
    /// over the bulk) about one enterprise, `--focus-enterprise`: a credit profile of a known
    /// size on a ledger of any size (the console's first-paint figure, docs/BENCHMARKS.md).
    #[arg(long, default_value_t = 0)]
    focus_records: u64,
    /// The enterprise `--focus-records` are about (a valid USCC; default one not among the demo's).
    #[arg(long, default_value = FOCUS_ENTERPRISE)]
    focus_enterprise: String,
    /// Change the validator set this many times, evenly over the chain (at most 64, what a
    /// proof bundle can carry): each time a validator, in turn, rotates its key with a
    /// key-rotation record. keys/ holds the genesis keys, so a rotated validator's file is
    /// then out of date.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=credence_node::bundle::SET_CHANGES_MAX as i64))]
    set_changes: u32,
}

/// The records `generate` writes after the first loan world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mix {
    Bulk,
    Loans,
}

/// The default `--focus-enterprise`: a valid GB 32100-2015 code no demo record names.
pub const FOCUS_ENTERPRISE: &str = "91310115MA1K4TLJ02";

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Export from this data directory (genesis.toml and ledger.redb; the node must be stopped).
    #[arg(long, conflicts_with = "node")]
    data_dir: Option<PathBuf>,
    /// Export from a running node's API (default http://127.0.0.1:8080 when no --data-dir is given).
    #[arg(long)]
    node: Option<String>,
    /// The file to write (with --parquet: a new directory).
    #[arg(long)]
    out: PathBuf,
    /// Write the attestations as CSV (one row each, columns in docs/AUDITING.md) instead of an export file.
    #[arg(long, conflicts_with = "parquet")]
    csv: bool,
    /// Write Parquet tables (blocks, attestations, one per kind; docs/AUDITING.md) into the directory --out.
    #[arg(long)]
    parquet: bool,
    /// With --node: whole blocks hold every fact in clear, so the node serves them only to
    /// an access key with the regulator scope (docs/ACCESS.md).
    #[command(flatten)]
    access: crate::access::AccessArgs,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Verify the store in this data directory (with its genesis.toml).
    #[arg(long, conflicts_with = "file")]
    data_dir: Option<PathBuf>,
    /// Verify this export file instead (needs --genesis).
    #[arg(long, requires = "genesis")]
    file: Option<PathBuf>,
    /// The genesis file the chain must start from.
    #[arg(long)]
    genesis: Option<PathBuf>,
    /// Verify a log's C2SP tiles instead (needs --genesis): an http:// URL prefix or a
    /// directory of tiles (e.g. made by `credence mirror`). Checks the checkpoint, every tile
    /// against the signed root, and every entry's signature and sequence; block headers,
    /// times and earlier certificates are not in tiles.
    #[arg(long, requires = "genesis", conflicts_with_all = ["data_dir", "file"])]
    tiles: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// With --tiles at a node's URL: entry bundles are served only to a key with the
    /// regulator scope (docs/ACCESS.md).
    #[command(flatten)]
    access: crate::access::AccessArgs,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where to put the demo data (replaced if it exists).
    #[arg(long, default_value = ".credence-demo")]
    dir: PathBuf,
    /// Attestations in the demo chain.
    #[arg(long, default_value_t = 20_000)]
    records: u64,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Verify a chain and compare its rate with two batch-verification ceilings on the same
    /// cores: ed25519-dalek's with 1,024 distinct keys, and the best of dalek's and the
    /// ledger's key-table batch with as many signers as the chain has (docs/BENCHMARKS.md).
    Verify {
        #[arg(long)]
        data_dir: PathBuf,
        /// Seconds spent measuring each ceiling (the same-signers one is measured two ways).
        #[arg(long, default_value_t = 10.0)]
        ceiling_seconds: f64,
    },
    /// Commit pre-built blocks into a fresh redb store, one durable transaction per block.
    Store {
        #[arg(long, default_value_t = 200_000)]
        records: u64,
        #[arg(long, default_value_t = 1000)]
        block_records: usize,
        /// Directory for the store (a temporary one by default).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The store's staging limit in leaves (`RedbOptions::stage_leaves_max`; the node's by default).
        #[arg(long)]
        stage_leaves: Option<u64>,
        /// Most index-merge operations per commit (`RedbOptions::merge_ops_per_commit_max`; the node's by default).
        #[arg(long)]
        merge_ops_max: Option<usize>,
    },
    /// Run a local network of validator processes and measure committed attestations/s, latency and memory under load.
    Load(crate::load::LoadArgs),
    /// Latency of enterprise listings and inclusion proofs over HTTP, and of `verify-bundle`, on a stored ledger.
    Audit(crate::bench_audit::AuditBenchArgs),
    /// C2SP tile serving (requests/s, latency) on a stored ledger, and `verify --tiles` of its mirror against `verify --data-dir`.
    Tiles(crate::bench_tiles::TilesBenchArgs),
    /// Serve a stored ledger as a member's node, console included, for the console's first-paint figure (prints the URL).
    Console(crate::bench_console::ConsoleBenchArgs),
    /// Catch-up of a fresh node from 1..=3 serving node processes on a stored ledger, against
    /// the signature ceiling measured in the same run; with a per-phase profile.
    Sync(crate::bench_sync::SyncBenchArgs),
}

fn progress_bar(len: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template(&format!("{what} {{bar:40}} {{pos}}/{{len}} {{per_sec}} eta {{eta}}"))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// What [`generate_into`] builds (the `generate` options, checked).
struct Plan {
    records: u64,
    mix: Mix,
    seed: u64,
    block_records: usize,
    genesis_time_ms: Option<u64>,
    access_keys: bool,
    /// `--focus-records` about this enterprise.
    focus: Option<(Uscc, u64)>,
    /// `--set-changes`.
    set_changes: u32,
}

impl Plan {
    /// `records` of the demo chain of seed 1 as `demo` builds it.
    fn demo(records: u64) -> Plan {
        Plan {
            records,
            mix: Mix::Bulk,
            seed: 1,
            block_records: 1000,
            genesis_time_ms: None,
            access_keys: false,
            focus: None,
            set_changes: 0,
        }
    }
}

/// Builds a demo chain into `out`; returns its genesis.
fn generate_into(out: &Path, plan: Plan) -> Result<Genesis> {
    let Plan { records, mix, seed, block_records, genesis_time_ms, access_keys, focus, set_changes } = plan;
    if out.join(STORE_FILE).exists() {
        bail!("--out: {} already holds a ledger; choose an empty directory", out.display());
    }
    if block_records == 0 || block_records > 1000 {
        bail!("--block-records: must be between 1 and 1000 (the genesis block_records_max)");
    }
    fs::create_dir_all(out.join("keys")).with_context(|| format!("cannot create {}", out.display()))?;
    // Blocks are about 1.25 s apart: start early enough that the last one is not in the future.
    let start =
        genesis_time_ms.unwrap_or_else(|| now_ms().saturating_sub(records / block_records as u64 * 2000 + 3_600_000));
    // The loan world first (about 3,700 records), then the bulk mix or more loan worlds.
    let mut builder = match mix {
        Mix::Bulk => ChainBuilder::with_loan_world(seed, start)?,
        Mix::Loans => ChainBuilder::loans_only(seed, start)?,
    };
    if let Some((enterprise, n)) = focus {
        if mix != Mix::Bulk {
            bail!("--focus-records: the focus records are bulk records; use them with --mix bulk");
        }
        let bulk = records.saturating_sub(builder.world_remaining() as u64);
        if n > bulk {
            bail!("--focus-records: {n} is more than the {bulk} bulk records after the loan world; raise --records");
        }
        builder.focus(enterprise, n, bulk);
    }
    let blocks = records.div_ceil(block_records as u64);
    builder.rotate_validator_keys(set_changes, (blocks / (u64::from(set_changes) + 1)).max(1));
    let genesis = builder.genesis().clone();
    fs::write(out.join(GENESIS_FILE), genesis.to_toml())?;
    for (m, k) in genesis.members.iter().zip(builder.keys()) {
        let text =
            key_file_text(&format!("Credence demo key of {} (TEST FIXTURE derived from seed {seed})", m.name), k);
        write_private(&out.join("keys").join(format!("{}.key", m.name)), &text)?;
    }
    let mut store = RedbStore::open(&out.join(STORE_FILE), &genesis)?;
    let bar = progress_bar(records, "generate");
    let started = Instant::now();
    let mut enterprises = std::collections::BTreeSet::new();
    // The builder reads the chain's state from the store it writes, so memory does not grow
    // with the records (docs/BENCHMARKS.md §Ten million records).
    let mut done = 0u64;
    while done < records {
        let n = block_records.min((records - done) as usize);
        let vb = builder.next_block_over(&store, n)?;
        if access_keys {
            enterprises.extend(
                vb.certified().block.leaves.iter().filter_map(|l| l.attestation.body.claim.enterprise().cloned()),
            );
        }
        store.commit(&vb)?;
        bar.inc(n as u64);
        done += n as u64;
    }
    bar.finish_and_clear();
    if access_keys {
        crate::bench_audit::append_officer_access(&mut builder, &mut store, enterprises, block_records, out, seed)?;
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "generated {records} attestations in {} blocks in {secs:.1} s ({:.0}/s) into {}",
        builder.tip().height,
        records as f64 / secs,
        out.display()
    );
    Ok(genesis)
}

pub fn generate(a: &GenerateArgs) -> Result<ExitCode> {
    let focus = if a.focus_records == 0 {
        None
    } else {
        let uscc = Uscc::parse("focus_enterprise", &a.focus_enterprise).map_err(|e| anyhow::anyhow!("{e}"))?;
        Some((uscc, a.focus_records))
    };
    let plan = Plan {
        records: a.records,
        mix: a.mix,
        seed: a.seed,
        block_records: a.block_records,
        genesis_time_ms: a.genesis_time_ms,
        access_keys: a.access_keys,
        focus,
        set_changes: a.set_changes,
    };
    generate_into(&a.out, plan)?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn load_data_dir(dir: &Path) -> Result<(Genesis, RedbStore)> {
    let genesis = Genesis::load(&dir.join(GENESIS_FILE))?;
    let path = dir.join(STORE_FILE);
    if !path.exists() {
        bail!("--data-dir: {} has no {STORE_FILE}", dir.display());
    }
    // Readers stream blocks in order: a small page cache is enough and keeps memory bounded.
    let options = RedbOptions { cache_bytes: READ_CACHE_BYTES, ..RedbOptions::default() };
    let store = RedbStore::open_with(&path, &genesis, options)?;
    Ok((genesis, store))
}

/// Where `export` reads blocks from.
/// First pause before asking again for a block the node answered 503 (its query log busy).
const BUSY_PAUSE_FIRST: Duration = Duration::from_millis(100);
/// Longest pause between two such requests.
const BUSY_PAUSE_MAX: Duration = Duration::from_secs(2);
/// Longest total wait for one block while the node stays busy.
const BUSY_WAIT_MAX: Duration = Duration::from_secs(60);

enum BlockSource {
    Store(Box<RedbStore>),
    Node(Box<crate::http::Conn>),
}

impl BlockSource {
    fn open(a: &ExportArgs) -> Result<(Genesis, BlockSource, u64)> {
        if let Some(dir) = &a.data_dir {
            let (genesis, store) = load_data_dir(dir)?;
            let head = store.head()?.map_or(0, |h| h.height);
            return Ok((genesis, BlockSource::Store(Box::new(store)), head));
        }
        let mut conn = a.access.connect(a.node.as_deref().unwrap_or(crate::query::NODE_DEFAULT))?;
        let genesis = crate::query::node_genesis(&mut conn)?;
        let status: credence_node::api::views::StatusView = crate::query::get_json(&mut conn, "/v1/status")?;
        Ok((genesis, BlockSource::Node(Box::new(conn)), status.height))
    }

    fn block(&mut self, genesis: &Genesis, h: u64) -> Result<CertifiedBlock> {
        match self {
            BlockSource::Store(store) => store.block(h)?.with_context(|| format!("store: block {h} is missing")),
            BlockSource::Node(conn) => {
                // Each whole-block read is logged (docs/ACCESS.md): while the node's query log
                // is full it answers 503 `busy`; wait for it, a little longer each time.
                let mut r = conn.get(&format!("/v1/blocks/{h}/certified"))?;
                let mut waited = Duration::ZERO;
                while r.status == 503 && waited < BUSY_WAIT_MAX {
                    let pause = BUSY_PAUSE_FIRST.saturating_mul(1 << (waited.as_secs().min(4))).min(BUSY_PAUSE_MAX);
                    std::thread::sleep(pause);
                    waited += pause;
                    r = conn.get(&format!("/v1/blocks/{h}/certified"))?;
                }
                if r.status != 200 {
                    bail!("block {h}: {}", crate::query::node_error(r.status, &r.body));
                }
                let records_max = genesis.consensus.block_records_max as usize;
                let cb = credence_ledger::block::decode_certified_exact(&r.body, records_max)
                    .with_context(|| format!("block {h} from the node"))?;
                if cb.block.header.height != h {
                    bail!("block {h} from the node: it is block {}", cb.block.header.height);
                }
                Ok(cb)
            }
        }
    }
}

/// Writes blocks 1..=head (as of the start) to an export file, or their attestations to CSV.
/// Either way the output goes to a temporary file renamed into place when complete.
pub fn export(a: &ExportArgs) -> Result<ExitCode> {
    let (genesis, mut source, head) = BlockSource::open(a)?;
    if a.parquet {
        let bar = progress_bar(2 * head, "export");
        let written = crate::parquet::export(&a.out, head, |h| {
            bar.inc(1);
            source.block(&genesis, h)
        })?;
        bar.finish_and_clear();
        for (table, rows) in &written {
            eprintln!("{table:<24} {rows:>10} rows");
        }
        eprintln!("exported {head} blocks as Parquet tables to {}", a.out.display());
        return Ok(ExitCode::SUCCESS);
    }
    let tmp = a.out.with_extension("partial");
    let file = fs::File::create(&tmp).with_context(|| format!("--out: cannot create {}", tmp.display()))?;
    let bar = progress_bar(head, "export");
    let mut rows = 0u64;
    let file = if a.csv {
        use crate::query::{Row, write_csv_line};
        use credence_node::api::views::{AttestationView, Committed};
        let mut w = BufWriter::new(file);
        write_csv_line(&mut w, &Row::HEADER.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        for h in 1..=head {
            let cb = source.block(&genesis, h)?;
            let first = cb.block.header.tree_size - cb.block.leaves.len() as u64;
            for (i, leaf) in cb.block.leaves.iter().enumerate() {
                let at = Committed { height: h, leaf_index: first + i as u64, record_status: None };
                write_csv_line(&mut w, &Row::of(&AttestationView::committed(leaf, at)).cells())?;
                rows += 1;
            }
            bar.inc(1);
        }
        w.into_inner().map_err(|e| e.into_error())?
    } else {
        let mut w = ExportWriter::new(BufWriter::new(file), &genesis.hash())?;
        for h in 1..=head {
            let cb = source.block(&genesis, h)?;
            rows += cb.block.leaves.len() as u64;
            w.write_block(&cb)?;
            bar.inc(1);
        }
        w.finish()?.into_inner().map_err(|e| e.into_error())?
    };
    file.sync_all()?;
    fs::rename(&tmp, &a.out)?;
    bar.finish_and_clear();
    let what = if a.csv { "CSV rows" } else { "attestations" };
    eprintln!("exported {head} blocks ({rows} {what}) to {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}

fn report(summary: &Summary, failure: Option<&VerifyError>, json: bool) -> ExitCode {
    if json {
        let mut v = json!({
            "ok": failure.is_none(),
            "blocks": summary.blocks,
            "attestations": summary.attestations,
            "seconds": summary.seconds,
            "attestations_per_second": summary.attestations_per_second(),
        });
        if let Some((height, hash, size, root)) = summary.head {
            v["head"] =
                json!({"height": height, "block_hash": hash.to_hex(), "tree_size": size, "root": root.to_hex()});
        }
        match failure {
            Some(f) => {
                v["height"] = json!(f.height);
                v["record"] = json!(f.record);
                v["reason"] = json!(f.reason.to_string());
            }
            None => v["witnesses"] = json!(summary.witnesses.iter().map(GovWitnessView::of).collect::<Vec<_>>()),
        }
        println!("{v}");
    } else {
        match failure {
            None => {
                println!(
                    "OK: {} blocks, {} attestations verified in {:.2} s ({:.0} attestations/s)",
                    summary.blocks,
                    summary.attestations,
                    summary.seconds,
                    summary.attestations_per_second()
                );
                print!("{}", witnesses_text(&summary.witnesses));
            }
            Some(f) => println!("FAILED at {f}\n({} blocks before it verified)", summary.blocks),
        }
    }
    if failure.is_none() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

/// The outside-witness terms a verified chain's governance holds, for `verify`'s text: every
/// term (genesis's, then governance's), so an auditor can pass the ones it chooses to trust as
/// `--witness VKEY` (docs/AUDITING.md §Outside witnesses).
fn witnesses_text(terms: &[WitnessTerm]) -> String {
    if terms.is_empty() {
        return "Outside witnesses: none named by the genesis or the governance records.\n".to_owned();
    }
    let mut out = format!(
        "Outside witnesses named by the genesis and the governance records verified ({} terms, {} in force after the head):\n",
        terms.len(),
        terms.iter().filter(|w| w.until_height.is_none()).count()
    );
    for w in terms {
        let until = w.until_height.map_or_else(|| "in force".to_owned(), |u| format!("until height {u}"));
        out.push_str(&format!(
            "  {}  from height {} {until}  {}  {}\n",
            w.name,
            w.from_height,
            w.key().to_vkey_string(),
            w.url
        ));
    }
    out
}

/// Verifies blocks 1..=head of `store` with a progress bar.
fn run_verify_store(ctx: &ChainContext, store: &RedbStore) -> Result<(Summary, Option<VerifyError>)> {
    let bar = progress_bar(store.head()?.map_or(0, |h| h.height), "verify");
    let result = verify::verify_store(ctx, store, |s| bar.set_position(s.blocks));
    bar.finish_and_clear();
    Ok(result)
}

pub fn verify(a: &VerifyArgs) -> Result<ExitCode> {
    if let (Some(t), Some(g)) = (&a.tiles, &a.genesis) {
        return crate::tiles::verify(t, a.access.load()?, Genesis::load(g)?, a.json);
    }
    if let Some(dir) = &a.data_dir {
        let (genesis, store) = load_data_dir(dir)?;
        if let Some(g) = &a.genesis {
            let given = Genesis::load(g)?;
            if given.hash() != genesis.hash() {
                bail!("--genesis: {} differs from the data directory's genesis.toml", g.display());
            }
        }
        let ctx = ChainContext::new(genesis);
        let (summary, failure) = run_verify_store(&ctx, &store)?;
        return Ok(report(&summary, failure.as_ref(), a.json));
    }
    let (Some(file), Some(genesis)) = (&a.file, &a.genesis) else {
        bail!("give --data-dir DIR, or --file FILE with --genesis GENESIS");
    };
    let genesis = Genesis::load(genesis)?;
    let f = fs::File::open(file).with_context(|| format!("--file: cannot open {}", file.display()))?;
    let ctx = ChainContext::new(genesis);
    let (summary, failure) = match ExportReader::new(BufReader::with_capacity(1 << 20, f), &ctx.genesis) {
        Ok(reader) => {
            let bar = progress_bar(0, "verify");
            let result = verify::verify_chain(&ctx, reader, |s| bar.set_position(s.blocks));
            bar.finish_and_clear();
            result
        }
        Err(e) => (Summary::default(), Some(e)),
    };
    Ok(report(&summary, failure.as_ref(), a.json))
}

pub fn demo(a: &DemoArgs) -> Result<ExitCode> {
    if a.dir.exists() {
        fs::remove_dir_all(&a.dir).with_context(|| format!("cannot clear {}", a.dir.display()))?;
    }
    let genesis = generate_into(&a.dir, Plan::demo(a.records))?;
    let (_, store) = load_data_dir(&a.dir)?;
    let ctx = ChainContext::new(genesis);
    let (summary, failure) = run_verify_store(&ctx, &store)?;
    let code = report(&summary, failure.as_ref(), false);
    let d = a.dir.display();
    println!(
        "\nDemo data is in {d}. Try:\n  credence verify --data-dir {d} --json\n  credence portfolio --data-dir {d}\n  credence profile 914403001922038216 --data-dir {d}\n  credence export --data-dir {d} --out {d}/chain.export\n  credence verify --file {d}/chain.export --genesis {d}/genesis.toml"
    );
    Ok(code)
}

pub fn bench(b: &BenchCommand) -> Result<ExitCode> {
    match b {
        BenchCommand::Load(a) => crate::load::run(a),
        BenchCommand::Audit(a) => crate::bench_audit::run(a),
        BenchCommand::Tiles(a) => crate::bench_tiles::run(a),
        BenchCommand::Console(a) => crate::bench_console::run(a),
        BenchCommand::Sync(a) => crate::bench_sync::run(a),
        BenchCommand::Verify { data_dir, ceiling_seconds } => {
            let ceiling = crate::ceiling::dalek_batch_ceiling(*ceiling_seconds);
            let (genesis, store) = load_data_dir(data_dir)?;
            let ctx = ChainContext::new(genesis);
            let (summary, failure) = run_verify_store(&ctx, &store)?;
            if let Some(f) = failure {
                bail!("the chain does not verify: {f}");
            }
            let rate = summary.attestations_per_second();
            let signers = usize::try_from(summary.signers).unwrap_or(usize::MAX);
            let same = crate::ceiling::same_signers_ceiling(signers, *ceiling_seconds);
            println!(
                "{}",
                json!({
                    "threads": ctx.threads,
                    "ceiling_signatures_per_second": ceiling,
                    "verify_attestations": summary.attestations,
                    "verify_seconds": summary.seconds,
                    "verify_attestations_per_second": rate,
                    "ratio": rate / ceiling,
                    "ratio_distinct_keys": rate / ceiling,
                    "signers": summary.signers,
                    "same_signers_ceiling_signatures_per_second": same.best(),
                    "same_signers_dalek_signatures_per_second": same.dalek,
                    "same_signers_key_table_signatures_per_second": same.key_table,
                    "ratio_same_signers": rate / same.best(),
                })
            );
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Store { records, block_records, dir, stage_leaves, merge_ops_max } => {
            let tmp;
            let dir = match dir {
                Some(d) => d.clone(),
                None => {
                    tmp = std::env::temp_dir().join(format!("credence-bench-store-{}", std::process::id()));
                    tmp.clone()
                }
            };
            fs::create_dir_all(&dir)?;
            let path = dir.join(STORE_FILE);
            if path.exists() {
                bail!("--dir: {} already holds a ledger", dir.display());
            }
            let mut builder = ChainBuilder::new(7, 1_600_000_000_000)?;
            let mut blocks = Vec::new();
            builder.build(*records, *block_records, |vb| {
                blocks.push(vb);
                Ok(())
            })?;
            let defaults = RedbOptions::default();
            let options = RedbOptions {
                stage_leaves_max: stage_leaves.unwrap_or(defaults.stage_leaves_max),
                merge_ops_per_commit_max: merge_ops_max.unwrap_or(defaults.merge_ops_per_commit_max),
                ..defaults
            };
            let mut store = RedbStore::open_with(&path, builder.genesis(), options)?;
            let (mut merge_ops, mut merge_commits, mut merge_ops_max_seen) = (0u64, 0u64, 0usize);
            let (mut compact_ops, mut compact_commits, mut compact_ops_max_seen) = (0u64, 0u64, 0usize);
            // The longest commit of each kind: no merge work, freezing a generation (and its
            // first slice), a slice, finishing a merge (its last slice and clean-up); and of the
            // commits that did id-run merge work.
            let mut longest = [0f64; 4];
            let mut longest_compacting = 0f64;
            // Records per second over each million records (the last part may be shorter).
            let mut per_million = Vec::new();
            let mut million_started = Instant::now();
            let mut million_done = 0u64;
            let started = Instant::now();
            let mut last = Instant::now();
            let mut done = 0u64;
            // Each commit's own time: the rate hides stalls, which are what a consensus driver feels.
            let mut commit_ms = Vec::with_capacity(blocks.len());
            for vb in &blocks {
                let was = store.merge_progress();
                let one = Instant::now();
                store.commit(vb)?;
                let ms = one.elapsed().as_secs_f64() * 1000.0;
                commit_ms.push(ms);
                let ops = store.last_commit_merge_ops();
                let kind = match (was, store.merge_progress()) {
                    _ if ops == 0 => 0,
                    (None, Some(_)) => 1,
                    (Some(_), Some(_)) => 2,
                    _ => 3,
                };
                longest[kind] = longest[kind].max(ms);
                let compacted = store.last_commit_compact_ops();
                if compacted > 0 {
                    longest_compacting = longest_compacting.max(ms);
                    compact_ops += compacted as u64;
                    compact_commits += 1;
                    compact_ops_max_seen = compact_ops_max_seen.max(compacted);
                }
                merge_ops += ops as u64;
                merge_commits += u64::from(ops > 0);
                merge_ops_max_seen = merge_ops_max_seen.max(ops);
                done += vb.certified().block.leaves.len() as u64;
                if done - million_done >= 1_000_000 || done == *records {
                    per_million.push(((done - million_done) as f64 / million_started.elapsed().as_secs_f64()).round());
                    million_done = done;
                    million_started = Instant::now();
                }
                if last.elapsed().as_secs() >= 5 {
                    eprintln!("{done} committed, {:.0}/s overall", done as f64 / started.elapsed().as_secs_f64());
                    last = Instant::now();
                }
            }
            let secs = started.elapsed().as_secs_f64();
            let (id_runs, _, filter_bytes) = store.id_runs_state();
            drop(store);
            let bytes = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            commit_ms.sort_unstable_by(f64::total_cmp);
            let at =
                |q: f64| commit_ms.get(((commit_ms.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
            println!(
                "{}",
                json!({
                    "records": done, "blocks": blocks.len(), "seconds": secs, "records_per_second": done as f64 / secs,
                    "store_bytes": bytes, "commit_ms_p50": at(0.5), "commit_ms_p99": at(0.99), "commit_ms_max": at(1.0),
                    "stage_leaves_max": options.stage_leaves_max, "merge_ops_per_commit_max": options.merge_ops_per_commit_max,
                    "merge_ops": merge_ops, "merge_commits": merge_commits, "merge_ops_most_in_a_commit": merge_ops_max_seen,
                    "commit_ms_max_plain": longest[0], "commit_ms_max_freezing": longest[1],
                    "commit_ms_max_slice": longest[2], "commit_ms_max_finishing": longest[3],
                    "records_per_second_per_million": per_million,
                    "id_run_merge_ops": compact_ops, "id_run_merge_commits": compact_commits,
                    "id_run_merge_ops_most_in_a_commit": compact_ops_max_seen,
                    "commit_ms_max_id_run_merge": longest_compacting,
                    "id_runs": id_runs, "id_filter_bytes": filter_bytes,
                    "bytes_per_record": bytes as f64 / done.max(1) as f64,
                })
            );
            if is_bench_temp_dir(&dir) {
                let _ = fs::remove_dir_all(&dir);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Whether `dir` is the temporary directory `bench store` made (and may delete).
fn is_bench_temp_dir(dir: &Path) -> bool {
    dir.starts_with(std::env::temp_dir())
        && dir.file_name().is_some_and(|n| n.to_string_lossy().starts_with("credence-bench-store-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `verify`'s witness lines: every term with its heights and verifier key, ended or not.
    #[test]
    fn verify_lists_every_witness_term() {
        assert_eq!(witnesses_text(&[]), "Outside witnesses: none named by the genesis or the governance records.\n");
        let key = credence_ledger::sig::SecretKey::from_seed([5; 32]).public();
        let term = |name: &str, from_height, until_height| WitnessTerm {
            name: name.into(),
            key,
            url: format!("http://{}", name.replace('/', "-")),
            from_height,
            until_height,
        };
        let text = witnesses_text(&[term("w.example/a", 1, None), term("w.example/b", 7, Some(12))]);
        let vkey = |name: &str| credence_ledger::witness::WitnessKey { name: name.into(), key }.to_vkey_string();
        assert_eq!(
            text,
            format!(
                "Outside witnesses named by the genesis and the governance records verified (2 terms, 1 in force after the head):\n  w.example/a  from height 1 in force  {}  http://w.example-a\n  w.example/b  from height 7 until height 12  {}  http://w.example-b\n",
                vkey("w.example/a"),
                vkey("w.example/b")
            )
        );
    }
}
