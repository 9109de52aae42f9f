//! Credence's pure core: records and their canonical encoding, identifiers, signatures, the Merkle log, blocks, checkpoints, ledger rules, storage and the verification core.
//!
//! This crate never depends on an async runtime or the network; its only I/O
//! is the store (behind [`store::Store`]) and the export file reader.

pub mod access;
pub mod attestation;
pub mod block;
pub mod checkpoint;
pub mod cn_ids;
pub mod codec;
pub mod confidential;
pub mod decoder;
pub mod demo;
pub mod demo_world;
pub mod export;
pub mod genesis;
pub mod governance;
pub mod hash;
pub mod ids;
pub mod loan_rules;
pub mod loans;
pub mod merkle;
pub mod portfolio;
pub mod rules;
pub mod sig;
pub mod snapshot;
pub mod store;
pub mod tiles;
pub mod verify;
pub mod vote;
pub mod witness;
