//! The `credence` command line: generate, export and verify chains (node, attester and auditor commands join as they land).

mod attest;
mod ceiling;
mod chain;
mod http;
mod keys;
mod load;
mod node;
mod sim;

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
    /// Generate and inspect member keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Benchmarks (results go in docs/BENCHMARKS.md).
    #[command(subcommand)]
    Bench(chain::BenchCommand),
    /// Run the deterministic consensus simulator over many seeds; exit 1 on any violation.
    Sim(sim::SimArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(a) => chain::generate(&a),
        Command::Export(a) => chain::export(&a),
        Command::Verify(a) => chain::verify(&a),
        Command::Demo(a) => chain::demo(&a),
        Command::Bench(b) => chain::bench(&b),
        Command::Keys(k) => keys::run(&k),
        Command::Attest(a) => attest::run(&a),
        Command::Init(a) => node::init(&a),
        Command::Node(a) => node::node(&a),
        Command::Dev(a) => node::dev(&a),
        Command::Testnet(a) => node::testnet(&a),
        Command::Sim(a) => sim::run(&a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
