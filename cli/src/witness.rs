//! `credence witness`: run a C2SP tlog-witness server that cosigns the checkpoints of the chains whose genesis files it is given.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;

use credence_ledger::genesis::Genesis;
use credence_node::witness::{self, Witness};

#[derive(Args, Debug)]
pub struct WitnessArgs {
    /// The witness's name (its key name in cosignature lines), e.g. `witness.example/w1`.
    #[arg(long)]
    name: String,
    /// The witness's Ed25519 key file (`credence keys generate`).
    #[arg(long)]
    key: PathBuf,
    /// A chain to witness: its genesis file (repeat for several chains). Its validators in
    /// force must sign a checkpoint (more than 2/3) for the witness to consider it.
    #[arg(long, required = true)]
    genesis: Vec<PathBuf>,
    /// Where the latest cosigned checkpoint of each chain is kept.
    #[arg(long)]
    state: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8330")]
    listen: SocketAddr,
}

pub fn run(a: &WitnessArgs) -> Result<ExitCode> {
    let sk = credence_node::keyfile::read(&a.key).with_context(|| format!("--key: {}", a.key.display()))?;
    let logs = a
        .genesis
        .iter()
        .map(|p| Genesis::load(p).with_context(|| format!("--genesis: {}", p.display())))
        .collect::<Result<Vec<_>>>()?;
    let w = Arc::new(Witness::new(&a.name, sk, &logs, &a.state)?);
    println!("witness {} key {} on {}", a.name, hex::encode(w.key().key.0), a.listen);
    // The C2SP verifier key, as `credence governance propose add-witness --witness` and the
    // auditors' `--witness` take it.
    println!("vkey {}", w.key().to_vkey_string());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime")?;
    rt.block_on(async {
        let listener =
            tokio::net::TcpListener::bind(a.listen).await.with_context(|| format!("--listen {}", a.listen))?;
        witness::serve(listener, w, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("witness server")
    })?;
    Ok(ExitCode::SUCCESS)
}
