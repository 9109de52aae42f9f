//! Node commands: `init`, `node`, `dev` and `testnet`.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use credence_ledger::attestation::{
    Attestation, AttestationBody, Claim, PatentPledge, PatentValuation, RdCategory, RdSpend, ValuationMethod,
};
use credence_ledger::confidential::Opening;
use credence_ledger::demo;
use credence_ledger::demo_world::LoanWorld;
use credence_ledger::genesis::{ConsensusParams, Genesis, MemberSpec, Role};
use credence_ledger::hash::Hash;
use credence_ledger::ids::{Currency, Date, MemberName, Money, Period};
use credence_ledger::sig::SecretKey;
use credence_node::config::{ApiLimitsConfig, MempoolConfig, NodeConfig, PassphraseSource};
use credence_node::keyfile;
use credence_node::runtime::now_ms;
use serde_json::json;

/// Per-client API rate of `credence dev` and `credence testnet` nodes: every client of a
/// local chain is on this machine (tests, `bench load`), so the limit is 100 times the
/// default a member's node gets from `credence init` (`[api]` in node.toml; docs/OPERATIONS.md).
pub const LOCAL_API_LIMITS: ApiLimitsConfig = ApiLimitsConfig { rate_per_second: 10_000, rate_burst: 20_000 };

#[derive(Args, Debug)]
pub struct InitArgs {
    /// The chain's genesis file (copied into the data directory).
    #[arg(long)]
    genesis: PathBuf,
    /// This member's key file.
    #[arg(long)]
    key: PathBuf,
    /// For an encrypted key file: where the node reads its passphrase (written into node.toml).
    #[command(flatten)]
    passphrase: crate::keys::PassphraseArgs,
    /// Directory for the node's store, config and copy of the genesis.
    #[arg(long)]
    data_dir: PathBuf,
    /// p2p listen address.
    #[arg(long, default_value = "127.0.0.1:7000")]
    p2p: SocketAddr,
    /// HTTP API listen address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    api: SocketAddr,
    /// Other members' p2p addresses (repeatable).
    #[arg(long = "peer")]
    peers: Vec<SocketAddr>,
    /// A joining member's name: its key is not in the genesis because governance adds
    /// it (the node syncs from genesis and takes part once the addition is in force).
    #[arg(long)]
    member: Option<String>,
}

#[derive(Args, Debug)]
pub struct NodeArgs {
    /// The node's config file (written by `credence init` or `credence testnet`).
    #[arg(long)]
    config: PathBuf,
}

#[derive(Args, Debug)]
pub struct DevArgs {
    /// Local directory for the dev chain (kept between runs).
    #[arg(long, default_value = ".credence-dev")]
    dir: PathBuf,
    /// HTTP API address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    api: SocketAddr,
    /// p2p listen address (default: any free loopback port; the dev chain has no peers).
    #[arg(long, default_value = "127.0.0.1:0")]
    p2p: SocketAddr,
    /// On a fresh dev chain: the demo loan world (about 3,700 records) and then this many
    /// R&D-spend, valuation and pledge records by `dev` are submitted at start (0: neither).
    #[arg(long, default_value_t = 300)]
    demo_records: u64,
}

#[derive(Args, Debug)]
pub struct TestnetArgs {
    /// Number of validators.
    #[arg(long)]
    validators: usize,
    /// Directory for keys, genesis, configs and testnet.json.
    #[arg(long)]
    dir: PathBuf,
    /// Non-validating members (observers) to add; their nodes follow the chain by sync.
    #[arg(long, default_value_t = 0)]
    observers: usize,
    /// First p2p port; node i uses base+i for p2p and base+1000+i for the API.
    #[arg(long, default_value_t = 17000)]
    base_port: u16,
    /// Also run the nodes as separate processes until SIGINT/SIGTERM.
    #[arg(long)]
    start: bool,
    /// An idle chain's heartbeat: one empty block this often (0: a block as soon as the
    /// last commits). Unset: the genesis default (no `[time]` table, 60 s).
    #[arg(long)]
    heartbeat_ms: Option<u64>,
}

/// The config of a node of a network on this machine (dev, testnet, the benches): the
/// default mempool, 64 connections, no faults, the local API limits.
pub(crate) fn local_node_config(
    data_dir: PathBuf,
    genesis: PathBuf,
    key: PathBuf,
    p2p_listen: SocketAddr,
    peers: Vec<SocketAddr>,
    api_listen: SocketAddr,
) -> NodeConfig {
    NodeConfig {
        data_dir,
        genesis,
        key,
        p2p_listen,
        peers,
        api_listen,
        mempool: MempoolConfig::default(),
        connections_max: 64,
        byzantine: None,
        clock_skew_ms: 0,
        member: None,
        key_passphrase: None,
        api: LOCAL_API_LIMITS,
        snapshot_interval_heights: credence_node::config::SNAPSHOT_INTERVAL_HEIGHTS_DEFAULT,
    }
}

pub(crate) fn write_config(path: &Path, config: &NodeConfig) -> Result<()> {
    let base = path.parent().unwrap_or(Path::new("."));
    fs::write(path, config.to_toml(base)).with_context(|| format!("cannot write {}", path.display()))
}

pub fn init(a: &InitArgs) -> Result<ExitCode> {
    let genesis = Genesis::load(&a.genesis)?;
    let key = crate::keys::read_key(&a.key, &a.passphrase)?;
    let genesis_member = genesis.members.iter().find(|m| m.public_key == key.public());
    let (me, joining) = match (genesis_member, &a.member) {
        (Some(m), None) => ((m.name.to_string(), if m.validator { "validator" } else { "observer" }), None),
        (Some(m), Some(_)) => bail!("--member: this key is genesis member '{}' already", m.name),
        (None, Some(name)) => ((name.clone(), "joining member"), Some(MemberName::parse("--member", name)?)),
        (None, None) => bail!(
            "--key: this key belongs to no member of {}; for a member that governance adds, give --member NAME",
            a.genesis.display()
        ),
    };
    fs::create_dir_all(&a.data_dir)?;
    let data_dir = fs::canonicalize(&a.data_dir)?;
    let config_path = data_dir.join("node.toml");
    if config_path.exists() {
        bail!("--data-dir: {} already holds a node.toml", data_dir.display());
    }
    // Paths given on the command line are relative to the current directory, but a
    // config's relative paths are relative to the config's directory: resolve them here.
    let key_passphrase = match a.passphrase.source() {
        Some(PassphraseSource::File(p)) => Some(PassphraseSource::File(
            fs::canonicalize(&p).with_context(|| format!("--passphrase-file: {}", p.display()))?,
        )),
        other => other,
    };
    let config = NodeConfig {
        data_dir: data_dir.clone(),
        genesis: data_dir.join("genesis.toml"),
        key: fs::canonicalize(&a.key).with_context(|| format!("--key: {}", a.key.display()))?,
        p2p_listen: a.p2p,
        peers: a.peers.clone(),
        api_listen: a.api,
        mempool: MempoolConfig::default(),
        connections_max: 64,
        byzantine: None,
        clock_skew_ms: 0,
        member: joining,
        key_passphrase,
        snapshot_interval_heights: credence_node::config::SNAPSHOT_INTERVAL_HEIGHTS_DEFAULT,
        api: Default::default(),
    };
    fs::write(data_dir.join("genesis.toml"), genesis.to_toml())?;
    write_config(&config_path, &config)?;
    // What `credence node --config` will read must be what was meant: check it now rather
    // than leave the operator a config the node refuses.
    let problem = match NodeConfig::load(&config_path) {
        Ok(read) if read == config => None,
        Ok(read) => Some(format!("reads back differently ({read:?} instead of {config:?})")),
        Err(e) => Some(format!("does not load ({e})")),
    };
    if let Some(problem) = problem {
        let _ = fs::remove_file(&config_path);
        bail!("internal: the node.toml init wrote {problem}; please report");
    }
    println!(
        "initialised {} as {} ({}); run: credence node --config {}",
        data_dir.display(),
        me.0,
        me.1,
        config_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,libp2p=warn,libp2p_gossipsub=error"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// Resolves on SIGINT or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

pub fn node(a: &NodeArgs) -> Result<ExitCode> {
    init_logging();
    let config = NodeConfig::load(&a.config)?;
    runtime()?.block_on(credence_node::runtime::run(config, stop_signal(), None))?;
    Ok(ExitCode::SUCCESS)
}

/// Genesis time of dev and testnet chains (2025-01-01T00:00:00Z).
const LOCAL_GENESIS_TIME_MS: u64 = 1_735_689_600_000;

/// A single-validator consortium: the `dev` member holds every role and validates; the
/// demo institutions (banks, service centres, appraiser, risk pool; [`demo::MEMBERS`]) are
/// non-validating members whose keys `dev` writes next to its own, so the demo loan world
/// has distinct lenders, appraisers and a pool administrator.
fn dev_genesis(key: &SecretKey, others: &[(String, SecretKey, Vec<Role>)]) -> Result<Genesis> {
    let dev = MemberSpec { name: "dev".into(), public_key: key.public(), roles: Role::ALL.to_vec(), validator: true };
    let members = std::iter::once(dev).chain(others.iter().map(|(name, k, roles)| MemberSpec {
        name: name.clone(),
        public_key: k.public(),
        roles: roles.clone(),
        validator: false,
    }));
    let origin = "credence.example/dev";
    Ok(Genesis::new("credence-dev", origin, LOCAL_GENESIS_TIME_MS, ConsensusParams::default(), members)?)
}

/// Demo attestations by the dev member: R&D spend, valuations and pledges of the first
/// enterprises of the loan world (seed 1, so the real codes come first). Every other R&D
/// figure is confidential (docs/ACCESS.md): it comes with its openings, which the dev node
/// keeps and discloses to the dev loan officer under the demo consents.
fn demo_attestations(genesis: &Genesis, key: &SecretKey, n: u64) -> Vec<(Attestation, Vec<Opening>)> {
    let mut rng = demo::DemoRng::new(42);
    let enterprises = demo::enterprises(&mut demo::DemoRng::new(DEV_WORLD_SEED), DEV_ENTERPRISES);
    let patents = demo::patents(&mut rng, (n as usize).max(1));
    let me = MemberName::parse("member", "dev").unwrap_or_else(|_| genesis.members[0].name.clone());
    let now = now_ms();
    // Amounts in whole yuan, stored in fen.
    let cny = |yuan: u64| Money { fen: yuan * 100, currency: Currency::CNY };
    (0..n)
        .filter_map(|i| {
            let e = enterprises[(i as usize) % enterprises.len()];
            let p = patents[i as usize];
            let claim = match i % 3 {
                0 => Claim::RdSpend(RdSpend {
                    enterprise: e,
                    period: Period::new("period", 2021 + (i % 4) as u16, 0).ok()?,
                    amount: cny(100_000 + rng.below(50_000_000)).into(),
                    category: RdCategory::Total,
                    evidence: rng.hash(),
                }),
                1 => Claim::PatentValuation(PatentValuation {
                    patent: p,
                    owner: e,
                    value: cny(500_000 + rng.below(80_000_000)).into(),
                    method: ValuationMethod::Income,
                    // Valued a month ago, valid for a year: current whenever the dev chain starts.
                    valuation_date: Date::from_unix_ms(now.saturating_sub(30 * 86_400_000)).ok()?,
                    valid_until: Date::from_unix_ms(now.saturating_add(335 * 86_400_000)).ok()?,
                    evidence: rng.hash(),
                }),
                _ => Claim::PatentPledge(PatentPledge {
                    patent: p,
                    pledgor: e,
                    pledgee: me.clone(),
                    secured: cny(1_000_000 + rng.below(20_000_000)).into(),
                    start: Date::new("d", 2025, 3, 1).ok()?,
                    term_months: 24,
                    evidence: Hash::ZERO,
                }),
            };
            let mut claim = claim;
            let openings = if i % 6 == 0 { claim.seal_amounts().ok()? } else { Vec::new() };
            let body = AttestationBody { attester: me.clone(), sequence: i + 1, issued_at_ms: now, claim };
            Some((body.sign(key, &genesis.hash()), openings))
        })
        .collect()
}

/// Seed of the dev chain's loan world (the seed `credence demo` and `generate` default to).
const DEV_WORLD_SEED: u64 = 1;

/// The demo loan world ([`credence_ledger::demo_world`]) signed by the demo members of a
/// dev genesis, in order; `keys` are the members' keys in genesis order.
fn world_attestations(genesis: &Genesis, keys: &[Option<SecretKey>]) -> Result<Vec<Attestation>> {
    let mut world = LoanWorld::new(DEV_WORLD_SEED, genesis)?;
    let mut sequences = vec![1u64; genesis.members.len()];
    let chain_id = genesis.hash();
    let now = now_ms();
    let mut out = Vec::with_capacity(world.len());
    while let Some((who, claim)) = world.next_claim() {
        let Some(key) = keys.get(who).and_then(Option::as_ref) else {
            bail!("internal: no key for demo member {}", genesis.members[who].name);
        };
        let body = AttestationBody {
            attester: genesis.members[who].name.clone(),
            sequence: sequences[who],
            issued_at_ms: now,
            claim,
        };
        sequences[who] += 1;
        let a = body.sign(key, &chain_id);
        world.bind(a.id());
        out.push(a);
    }
    Ok(out)
}

/// Submits `records` in order, through the batch route, but each record with openings alone
/// with them (the batch route takes none); returns how many were admitted.
fn submit_all(url: &str, records: &[(Attestation, Vec<Opening>)]) -> Result<usize> {
    let mut admitted = 0;
    let mut start = 0;
    while start < records.len() {
        if !records[start].1.is_empty() {
            let (a, openings) = &records[start];
            let r = crate::http::post_json(url, "/v1/attestations", &crate::attest::wire_json_with(a, openings))?;
            if r.status != 202 {
                bail!("the dev node refused a sealed demo record: {}", crate::query::node_error(r.status, &r.body));
            }
            admitted += 1;
            start += 1;
            continue;
        }
        let end = records[start..].iter().position(|(_, o)| !o.is_empty()).map_or(records.len(), |p| start + p);
        admitted += submit_batch(url, &records[start..end])?;
        start = end;
    }
    Ok(admitted)
}

/// Submits plain `records` in order through the batch route; returns how many were admitted.
fn submit_batch(url: &str, records: &[(Attestation, Vec<Opening>)]) -> Result<usize> {
    let mut admitted = 0;
    for chunk in records.chunks(credence_node::api::BATCH_ITEMS_MAX) {
        let items: Vec<String> = chunk.iter().map(|(a, _)| B64.encode(a.to_bytes())).collect();
        let r = crate::http::post_json(url, "/v1/attestations/batch", &json!({ "attestations": items }))?;
        if r.status != 200 {
            bail!("the dev node refused a demo batch: {}", crate::query::node_error(r.status, &r.body));
        }
        let v: serde_json::Value = serde_json::from_slice(&r.body)?;
        let results = v["results"].as_array().map_or(&[][..], Vec::as_slice);
        admitted += results.iter().filter(|r| r["status"] == "pending").count();
        if let Some(refused) = results.iter().find(|r| r["status"] != "pending") {
            eprintln!("dev: a demo attestation was refused: {refused}");
        }
    }
    Ok(admitted)
}

pub fn dev(a: &DevArgs) -> Result<ExitCode> {
    init_logging();
    let dir = &a.dir;
    let fresh = !dir.join("node.toml").exists();
    if fresh {
        fs::create_dir_all(dir.join("keys"))?;
        let key = SecretKey::generate();
        keyfile::write_private(
            &dir.join("keys/dev.key"),
            &keyfile::text("Credence dev key (local dev chain only)", &key),
        )?;
        let mut others = Vec::new();
        for (name, roles, _) in demo::MEMBERS {
            let k = SecretKey::generate();
            let text = keyfile::text(&format!("Credence dev key of demo member {name} (local dev chain only)"), &k);
            keyfile::write_private(&dir.join(format!("keys/{name}.key")), &text)?;
            others.push(((*name).to_owned(), k, roles.to_vec()));
        }
        let genesis = dev_genesis(&key, &others)?;
        fs::write(dir.join("genesis.toml"), genesis.to_toml())?;
        // A copy beside the store, so `--data-dir DIR/data` commands (export, verify,
        // portfolio, query) find the genesis there as in any node's data directory.
        fs::create_dir_all(dir.join("data"))?;
        fs::write(dir.join("data/genesis.toml"), genesis.to_toml())?;
        let abs = fs::canonicalize(dir)?;
        let config = NodeConfig {
            connections_max: 16,
            ..local_node_config(
                abs.join("data"),
                abs.join("genesis.toml"),
                abs.join("keys/dev.key"),
                a.p2p,
                Vec::new(),
                a.api,
            )
        };
        write_config(&dir.join("node.toml"), &config)?;
    }
    let config = NodeConfig::load(&dir.join("node.toml"))?;
    let genesis = Genesis::load(&config.genesis)?;
    let key = keyfile::read_node_key(&config)?;
    let rt = runtime()?;
    rt.block_on(async {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let node = tokio::spawn(credence_node::runtime::run(config.clone(), stop_signal(), Some(ready_tx)));
        let running = ready_rx.await.context("the node stopped before it was ready")?;
        let url = format!("http://{}", running.api);
        if fresh && a.demo_records > 0 {
            // The demo members' keys, in genesis order (`dev` signs its own records).
            let mut keys = Vec::with_capacity(genesis.members.len());
            for m in &genesis.members {
                let path = dir.join(format!("keys/{}.key", m.name));
                keys.push(if m.name.as_str() == "dev" { None } else { Some(keyfile::read(&path)?) });
            }
            let mut records: Vec<(Attestation, Vec<Opening>)> =
                world_attestations(&genesis, &keys)?.into_iter().map(|a| (a, Vec::new())).collect();
            let world = records.len();
            records.extend(demo_attestations(&genesis, &key, a.demo_records));
            let url2 = url.clone();
            let submitted = tokio::task::spawn_blocking(move || submit_all(&url2, &records)).await??;
            eprintln!("submitted {submitted} demo attestations ({world} of the loan world)");
        }
        // Who reads (docs/ACCESS.md): a loan officer's and a regulator's access key, and the
        // demo enterprises' consents for the dev member; once per dev chain.
        let (officer, regulator) = (dir.join(DEV_OFFICER_KEY), dir.join(DEV_REGULATOR_KEY));
        if !officer.exists() {
            let (url2, genesis2, key2) = (url.clone(), genesis.clone(), SecretKey::from_seed(key.seed()));
            let (officer2, regulator2) = (officer.clone(), regulator.clone());
            tokio::task::spawn_blocking(move || provision_dev(&url2, &genesis2, &key2, &officer2, &regulator2))
                .await??;
        }
        let (d, o, r) = (dir.display(), officer.display(), regulator.display());
        println!(
            "Credence dev node: one validator, API at {url}, web console at {url}/console\n\nTry:\n  credence profile 914403001922038216 --node {url} --access-key {o} --purpose loan-application\n  credence query enterprise 914403001922038216 --node {url} --access-key {r} --purpose supervision\n  credence portfolio --node {url} --access-key {r}\n  credence query attester dev --node {url} --access-key {o}\n  curl {url}/v1/status\n  curl {url}/v1/checkpoint\n  credence attest rd-spend --enterprise 914403001922038216 --period 2024 --amount 1250000.00 --key {d}/keys/dev.key --node {url} --wait\n  credence export --data-dir {d}/data --out chain.export   (after stopping the node)\n\nReads above /v1/status need a signed request (docs/ACCESS.md): {o} is a loan officer's access key\n(member and restricted scopes; the demo enterprises consented to loan-application reads by 'dev'),\n{r} a regulator's. Each restricted read is logged on the ledger as a query record.\n\nStop with Ctrl-C."
        );
        node.await??;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The dev chain's loan-officer access key (member and restricted scopes), under `--dir`.
pub const DEV_OFFICER_KEY: &str = "keys/dev-officer.access";
/// The dev chain's regulator access key (regulator scope), under `--dir`.
pub const DEV_REGULATOR_KEY: &str = "keys/dev-regulator.access";
/// Enterprises of the dev demo data (see [`demo_attestations`]).
const DEV_ENTERPRISES: usize = 20;

/// Delegates the dev chain's two access keys and records the demo enterprises' consents.
fn provision_dev(url: &str, genesis: &Genesis, key: &SecretKey, officer: &Path, regulator: &Path) -> Result<()> {
    use credence_ledger::access::Scope;
    let enterprises = demo::enterprises(&mut demo::DemoRng::new(DEV_WORLD_SEED), DEV_ENTERPRISES);
    let me = crate::attest::member_of(genesis, key)?;
    crate::access::record_consents(url, genesis, key, &me, &enterprises)?;
    for (holder, scopes, out) in [
        ("dev-loan-officer", vec![Scope::Member, Scope::Restricted], officer),
        ("dev-regulator", vec![Scope::Regulator], regulator),
    ] {
        let request = crate::access::GrantRequest {
            node: url,
            genesis,
            member_key: key,
            holder,
            scopes,
            days: 365,
            out,
            passphrase: None,
        };
        crate::access::grant(request)?;
    }
    eprintln!(
        "delegated access keys {} and {}; recorded {} consents",
        officer.display(),
        regulator.display(),
        enterprises.len()
    );
    Ok(())
}

/// The enterprise of the README's examples, whose consent `credence testnet --start` records.
pub const TESTNET_ENTERPRISE: &str = "914403001922038216";

/// For a started testnet: provisions its access keys ([`provision_access`]) and prints how to read.
fn provision_testnet(layout: &TestnetLayout) -> Result<()> {
    let keys = provision_access(layout)?;
    let api = |i: usize| layout.manifest["nodes"][i]["api"].as_str().unwrap_or_default().to_string();
    let (grants, regulator) = (keys.members, keys.regulator);
    println!(
        "access keys (docs/ACCESS.md), each member's consented to read {TESTNET_ENTERPRISE} for loan-application:"
    );
    for (name, file) in &grants {
        println!("  {name}: {}", file.display());
    }
    println!("  regulator (validator-0): {}", regulator.display());
    let (g0, a0) = (grants[0].1.display(), api(0));
    println!(
        "try:\n  credence profile {TESTNET_ENTERPRISE} --node {a0} --access-key {g0} --purpose loan-application\n  credence query enterprise {TESTNET_ENTERPRISE} --node {a0} --access-key {} --purpose supervision\n  credence export --node {a0} --access-key {} --out chain.export",
        regulator.display(),
        regulator.display()
    );
    Ok(())
}

/// The access-key files [`provision_access`] wrote.
#[derive(Debug)]
pub struct TestnetAccess {
    /// Per node, in layout order: its name and its member's key (member and restricted scopes).
    pub members: Vec<(String, PathBuf)>,
    /// validator-0's key with the regulator scope.
    pub regulator: PathBuf,
}

/// For a started testnet: once its first node commits, delegates an access key to each
/// member (member and restricted scopes, `keys/<name>.access`) and a regulator key from
/// validator-0 (`keys/regulator.access`), and records the consent of [`TESTNET_ENTERPRISE`]
/// for each member (loan-application, every fact), each waiting for its commit.
pub fn provision_access(layout: &TestnetLayout) -> Result<TestnetAccess> {
    use credence_ledger::access::Scope;
    let genesis = Genesis::load(&layout.dir.join("genesis.toml"))?;
    let api = |i: usize| layout.manifest["nodes"][i]["api"].as_str().unwrap_or_default().to_string();
    let started = std::time::Instant::now();
    while crate::http::get(&api(0), "/v1/status")
        .ok()
        .and_then(|r| r.json().ok())
        .and_then(|v| v["height"].as_u64())
        .unwrap_or(0)
        < 1
    {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the first node did not commit a block within 60 s (see its node.log)");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let enterprise = credence_ledger::ids::Uscc::parse("enterprise", TESTNET_ENTERPRISE)?;
    let v0 = keyfile::read(&layout.dir.join(format!("keys/{}.key", layout.names[0])))?;
    let mut grants = Vec::new();
    for (i, name) in layout.names.iter().enumerate() {
        let key = keyfile::read(&layout.dir.join(format!("keys/{name}.key")))?;
        let out = layout.dir.join(format!("keys/{name}.access"));
        let scopes = vec![Scope::Member, Scope::Restricted];
        let request = crate::access::GrantRequest {
            node: &api(i),
            genesis: &genesis,
            member_key: &key,
            holder: &format!("{name}-reader"),
            scopes,
            days: 90,
            out: &out,
            passphrase: None,
        };
        crate::access::grant(request)?;
        let member = crate::attest::member_of(&genesis, &key)?;
        crate::access::record_consents(&api(0), &genesis, &v0, &member, &[enterprise])?;
        grants.push((name.clone(), out));
    }
    let regulator = layout.dir.join("keys/regulator.access");
    crate::access::grant(crate::access::GrantRequest {
        node: &api(0),
        genesis: &genesis,
        member_key: &v0,
        holder: "testnet-regulator",
        scopes: vec![Scope::Regulator],
        days: 90,
        out: &regulator,
        passphrase: None,
    })?;
    Ok(TestnetAccess { members: grants, regulator })
}

/// A local network's files, written by [`write_testnet`].
#[derive(Debug)]
pub struct TestnetLayout {
    /// The testnet directory (absolute): genesis.toml, keys/, one directory per node, testnet.json.
    pub dir: PathBuf,
    /// Node names, validators first (`validator-i`, then `observer-i`); node `name` lives in `dir/name`.
    pub names: Vec<String>,
    /// Members without a node (`attester-i`, service-centre role, not validating): they attest
    /// through the validators' nodes (`bench load --set-changes`); keys in `dir/keys/<name>.key`.
    pub attesters: Vec<String>,
    /// What testnet.json holds: the genesis path; per node, name, validator, api, p2p, config, key,
    /// data_dir; per attester without a node, name and key.
    pub manifest: serde_json::Value,
}

/// The consensus parameters of a local testnet: the defaults, with blocks of up to
/// 5,000 records and 4 MiB (the genesis limits are 10,000 and 16 MiB). At 1,000 records
/// a block, 10,000 attestations/s would need 10 committed heights a second; at 5,000, two.
pub fn testnet_consensus() -> ConsensusParams {
    ConsensusParams { block_records_max: 5_000, block_bytes_max: 4 * 1024 * 1024, ..ConsensusParams::default() }
}

/// Most attesters without a node in a testnet.
pub const TESTNET_ATTESTERS_MAX: usize = 32;

/// Writes keys, genesis, node configs and testnet.json for a local network of
/// `validators` validators (every role) and `observers` observers into `dir`, and
/// `attesters` members without a node that attest R&D spend (the service-centre role) through
/// the validators' nodes. Node i listens on `base_port + i` (p2p) and `base_port + 1000 + i` (API).
pub fn write_testnet(
    dir: &Path,
    validators: usize,
    observers: usize,
    attesters: usize,
    base_port: u16,
    heartbeat_ms: Option<u64>,
) -> Result<TestnetLayout> {
    if validators == 0 || validators > 32 {
        bail!("--validators: must be between 1 and 32");
    }
    if observers > 32 {
        bail!("--observers: at most 32");
    }
    if attesters > TESTNET_ATTESTERS_MAX {
        bail!("attesters: at most {TESTNET_ATTESTERS_MAX}");
    }
    let total = validators + observers;
    if usize::from(base_port) + 1000 + total > usize::from(u16::MAX) {
        bail!("--base-port: too high for {total} nodes");
    }
    if dir.join("testnet.json").exists() {
        bail!("--dir: {} already holds a testnet", dir.display());
    }
    fs::create_dir_all(dir.join("keys"))?;
    let dir = fs::canonicalize(dir)?;
    let names: Vec<String> = (0..validators)
        .map(|i| format!("validator-{i}"))
        .chain((0..observers).map(|i| format!("observer-{i}")))
        .collect();
    let mut members = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let key = SecretKey::generate();
        let comment = format!("Credence testnet key of {name}");
        keyfile::write_private(&dir.join(format!("keys/{name}.key")), &keyfile::text(&comment, &key))?;
        // Every validator may attest every kind; observers attest nothing.
        let validator = i < validators;
        let roles = if validator { Role::ALL.to_vec() } else { Vec::new() };
        members.push(MemberSpec { name: name.clone(), public_key: key.public(), roles, validator });
    }
    let attester_names: Vec<String> = (0..attesters).map(|i| format!("attester-{i}")).collect();
    let mut attester_entries = Vec::with_capacity(attesters);
    for name in &attester_names {
        let key = SecretKey::generate();
        let path = dir.join(format!("keys/{name}.key"));
        keyfile::write_private(&path, &keyfile::text(&format!("Credence testnet key of {name}"), &key))?;
        let roles = vec![Role::ServiceCentre];
        members.push(MemberSpec { name: name.clone(), public_key: key.public(), roles, validator: false });
        attester_entries.push(json!({"name": name, "key": path}));
    }
    let origin = "credence.example/testnet";
    let mut genesis = Genesis::new("credence-testnet", origin, LOCAL_GENESIS_TIME_MS, testnet_consensus(), members)?;
    if let Some(heartbeat_ms) = heartbeat_ms {
        let time =
            credence_ledger::genesis::TimeParams { heartbeat_ms, ..credence_ledger::genesis::TimeParams::default() };
        genesis = genesis.with_time(time)?;
    }
    fs::write(dir.join("genesis.toml"), genesis.to_toml())?;
    let p2p = |i: usize| SocketAddr::from(([127, 0, 0, 1], base_port + i as u16));
    let mut nodes = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let node_dir = dir.join(name);
        fs::create_dir_all(node_dir.join("data"))?;
        // A copy of the genesis in each data directory, so `credence verify --data-dir` works on it.
        fs::write(node_dir.join("data/genesis.toml"), genesis.to_toml())?;
        let config = local_node_config(
            node_dir.join("data"),
            node_dir.join("data/genesis.toml"),
            dir.join(format!("keys/{name}.key")),
            p2p(i),
            (0..total).filter(|j| *j != i).map(p2p).collect(),
            SocketAddr::from(([127, 0, 0, 1], base_port + 1000 + i as u16)),
        );
        let config_path = node_dir.join("node.toml");
        write_config(&config_path, &config)?;
        nodes.push(json!({
            "name": name,
            "validator": i < validators,
            "api": format!("http://{}", config.api_listen),
            "p2p": config.p2p_listen.to_string(),
            "config": config_path,
            "key": config.key,
            "data_dir": config.data_dir,
        }));
    }
    let manifest = json!({"genesis": dir.join("genesis.toml"), "nodes": nodes, "attesters": attester_entries});
    fs::write(dir.join("testnet.json"), serde_json::to_string_pretty(&manifest)?)?;
    Ok(TestnetLayout { dir, names, attesters: attester_names, manifest })
}

/// Starts every node of `layout` as a separate `credence node` process (logs in
/// `<dir>/<name>/node.log`). If one cannot be started, those already started are stopped.
pub fn start_nodes(layout: &TestnetLayout) -> Result<Vec<std::process::Child>> {
    let mut children = Vec::new();
    for name in &layout.names {
        match start_node(&layout.dir.join(name)) {
            Ok(child) => children.push(child),
            Err(e) => {
                stop_nodes(&mut children);
                return Err(e).with_context(|| format!("cannot start {name}"));
            }
        }
    }
    Ok(children)
}

/// Starts `credence node --config <node_dir>/node.toml` as a process of this executable, its
/// log in `<node_dir>/node.log`.
pub fn start_node(node_dir: &Path) -> Result<std::process::Child> {
    let exe = std::env::current_exe()?;
    let log = fs::File::create(node_dir.join("node.log"))?;
    Ok(std::process::Command::new(&exe)
        .args(["node", "--config"])
        .arg(node_dir.join("node.toml"))
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?)
}

/// Stops node processes: SIGTERM (each stops gracefully), then SIGKILL for any still
/// running after 10 s. Every child is waited for.
pub fn stop_nodes(children: &mut [std::process::Child]) {
    for child in children.iter() {
        #[cfg(unix)]
        {
            let _ = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    for child in children.iter_mut() {
        while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if !matches!(child.try_wait(), Ok(Some(_))) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn testnet(a: &TestnetArgs) -> Result<ExitCode> {
    let layout = write_testnet(&a.dir, a.validators, a.observers, 0, a.base_port, a.heartbeat_ms)?;
    println!(
        "testnet of {} validators and {} observers in {} (see testnet.json)",
        a.validators,
        a.observers,
        layout.dir.display()
    );
    if !a.start {
        return Ok(ExitCode::SUCCESS);
    }
    let mut children = start_nodes(&layout)?;
    let mut manifest = layout.manifest.clone();
    for (i, child) in children.iter().enumerate() {
        manifest["nodes"][i]["pid"] = json!(child.id());
    }
    let written = serde_json::to_string_pretty(&manifest)
        .map_err(anyhow::Error::from)
        .and_then(|text| Ok(fs::write(layout.dir.join("testnet.json"), text)?));
    if let Err(e) = written {
        stop_nodes(&mut children);
        return Err(e);
    }
    println!("started {} nodes; stop with Ctrl-C (logs in <dir>/<name>/node.log)", children.len());
    if let Err(e) = provision_testnet(&layout) {
        stop_nodes(&mut children);
        return Err(e.context("cannot provision the testnet's access keys"));
    }
    let waited = runtime().map(|rt| rt.block_on(stop_signal()));
    stop_nodes(&mut children);
    waited?;
    println!("stopped");
    Ok(ExitCode::SUCCESS)
}
