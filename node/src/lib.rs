//! Credence node runtime: the tokio driver that hosts the replica core of [`credence_consensus`], with libp2p, the HTTP API and metrics.
//!
//! Every decision about blocks, votes, sync and the mempool is made by the
//! replica core in `credence-consensus`, the same code the deterministic
//! simulator runs; this crate carries out its effects with real I/O.

pub mod api;
pub mod bundle;
pub mod byzantine;
pub mod config;
pub mod httpsig;
pub mod keyfile;
pub mod metrics;
pub mod net;
pub mod openings;
pub mod runtime;
pub mod snapshot;
pub mod wire;
pub mod witness;
pub mod witness_client;

pub use credence_consensus::{self as consensus, evidence, mempool, sim};
