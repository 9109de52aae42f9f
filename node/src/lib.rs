//! Credence node runtime: the pure Tendermint consensus state machine and the deterministic simulator that proves it.
//!
//! * [`consensus`] is Algorithm 1 of arXiv 1807.04938 as `step(input) -> effects`,
//!   with no I/O, clock or randomness: a driver feeds it messages, timeouts and
//!   block-validation results and carries out what it asks for.
//! * [`sim`] drives many such machines over a seeded simulated network with faults,
//!   crashes and byzantine validators, and checks agreement, validity and progress.
//! * [`evidence`] keeps equivocation evidence until a block records it.

pub mod api;
pub mod bundle;
pub mod byzantine;
pub mod config;
pub mod consensus;
pub mod evidence;
pub mod keyfile;
pub mod mempool;
pub mod metrics;
pub mod net;
pub mod runtime;
pub mod sim;
pub mod wire;
