//! The `credence` command line: run nodes, attest, query and audit the ledger, and verify chains, proofs and bundles offline.

mod access;
mod attest;
mod audit;
mod bench_audit;
mod bench_console;
mod bench_sync;
mod bench_tiles;
mod ceiling;
mod chain;
mod governance;
mod http;
mod keys;
mod load;
mod local;
mod node;
mod openings;
mod parquet;
mod portfolio;
mod profile;
mod profile_loans;
mod query;
mod sim;
mod snapshot;
mod tiles;
mod witness;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "credence", version, about = "Credence: a permissioned ledger for tech-finance credit facts")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a genesis and a store holding a realistic signed demo chain.
    Generate(chain::GenerateArgs),
    /// Write a node's whole chain to one export file (with a checksum trailer).
    Export(chain::ExportArgs),
    /// Verify a whole chain offline: links, Merkle roots, certificates, every signature, the rules.
    Verify(chain::VerifyArgs),
    /// Generate a demo chain into a local directory and verify it (the README's first command).
    Demo(chain::DemoArgs),
    /// Prepare a data directory to run a node for a member.
    Init(node::InitArgs),
    /// Run a node (stops gracefully on SIGINT/SIGTERM).
    Node(node::NodeArgs),
    /// One validator on embedded defaults with demo data, for trying Credence locally.
    Dev(node::DevArgs),
    /// Write (and optionally run) a local network of validators.
    Testnet(node::TestnetArgs),
    /// Build, sign and submit (or print) an attestation.
    Attest(attest::AttestArgs),
    /// Governance: propose and approve changes of members, keys, roles, validators and parameters; rotate your key; show the state.
    #[command(subcommand)]
    Governance(governance::GovernanceCommand),
    /// Generate and inspect member keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Benchmarks (results go in docs/BENCHMARKS.md).
    #[command(subcommand)]
    Bench(chain::BenchCommand),
    /// Run the deterministic consensus simulator over many seeds; exit 1 on any violation.
    Sim(sim::SimArgs),
    /// Query the ledger through a node: attestations by enterprise, patent or attester; a block; an attestation.
    #[command(subcommand)]
    Query(query::QueryCommand),
    /// A regulator's listing of one member's reads: the query records its access keys caused, at any node.
    Queries(query::QueriesArgs),
    /// What the ledger says about one enterprise: R&D spend, patents and their value, pledges, flagged records.
    Profile(profile::ProfileArgs),
    /// A regulator's or a pool's figures: IP-pledge loans outstanding, bad-loan ratio, LTV, pool exposure and claims paid.
    Portfolio(portfolio::PortfolioArgs),
    /// Fetch the latest cosigned checkpoint, check its signatures, and optionally keep it for a later audit.
    Checkpoint(audit::CheckpointArgs),
    /// Check that the ledger only grew since a saved checkpoint (a consistency proof, verified locally).
    Audit(audit::AuditArgs),
    /// Write a self-contained proof bundle for one committed attestation.
    Prove(audit::ProveArgs),
    /// Verify a proof bundle offline against a genesis file.
    VerifyBundle(audit::VerifyBundleArgs),
    /// Copy a log's C2SP tiles into a directory for offline audit, checking every tile as it comes (resumable).
    Mirror(tiles::MirrorArgs),
    /// Run a C2SP tlog-witness: cosign checkpoints consistent with the last one cosigned per chain.
    Witness(witness::WitnessArgs),
    /// Snapshots of the ledger state at a certified height: create, sign, verify, restore (a node then syncs forward).
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
}

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(a) => chain::generate(&a),
        Command::Export(a) => chain::export(&a),
        Command::Verify(a) => chain::verify(&a),
        Command::Demo(a) => chain::demo(&a),
        Command::Bench(b) => chain::bench(&b),
        Command::Keys(k) => keys::run(&k),
        Command::Governance(g) => governance::run(&g),
        Command::Attest(a) => attest::run(&a),
        Command::Init(a) => node::init(&a),
        Command::Node(a) => node::node(&a),
        Command::Dev(a) => node::dev(&a),
        Command::Testnet(a) => node::testnet(&a),
        Command::Sim(a) => sim::run(&a),
        Command::Query(q) => query::run(&q),
        Command::Queries(a) => query::queries(&a),
        Command::Profile(a) => profile::run(&a),
        Command::Portfolio(a) => portfolio::run(&a),
        Command::Checkpoint(a) => audit::checkpoint(&a),
        Command::Audit(a) => audit::audit(&a),
        Command::Prove(a) => audit::prove(&a),
        Command::VerifyBundle(a) => audit::verify_bundle(&a),
        Command::Mirror(a) => tiles::mirror(&a),
        Command::Witness(a) => witness::run(&a),
        Command::Snapshot(s) => snapshot::run(&s),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `credence query ... | head` closes stdout early; Rust's `println!` then panics with
/// "failed printing to stdout". End quietly instead, as other command-line tools do.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") {
            std::process::exit(0);
        }
        default(info);
    }));
}
