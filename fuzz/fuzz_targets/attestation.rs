//! Fuzz target: attestation bytes (gossip, API submissions, block records). No panic; every accepted input re-encodes to itself, its leaf id is the decoded body's id, and the signature check and ledger rules run without panicking.
#![no_main]

use credence_ledger::attestation::Attestation;
use credence_ledger::block::Leaf;
use credence_ledger::rules::{self, MemState};
use credence_ledger::sig::{self, Domain};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(a) = Attestation::from_bytes(data) else { return };
    assert_eq!(a.to_bytes(), data, "attestation: decode then encode must give the input back");
    let leaf = match Leaf::from_bytes(data.to_vec()) {
        Ok(l) => l,
        Err(e) => panic!("Attestation::from_bytes accepted what Leaf::from_bytes refused: {e}"),
    };
    assert_eq!(leaf.id, a.id(), "leaf id (hash of the received body bytes) differs from the decoded body's id");
    let f = credence_fuzz::fixture();
    let g = f.genesis();
    if let Some(m) = g.member(&a.body.attester) {
        let _ = sig::verify(&m.public_key, Domain::Attestation, &f.ctx.chain_id.0, leaf.body_bytes(), &a.signature);
    }
    // As the first record of height 1.
    let _ = rules::check_attestation(g, &MemState::default(), 1, g.genesis_time_ms + 1, &leaf.id, &a);
});
