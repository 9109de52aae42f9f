//! Fuzz target: block headers and certified blocks (block sync, export files). No panic; accepted inputs re-encode canonically, and the verification core judges them without panicking.
//!
//! Signature lines of a certificate may come in any order (signed-note allows it) and are
//! written sorted, so the property is: re-encoding is idempotent and keeps the decoded value
//! (signatures as a multiset); an input whose lines are already sorted re-encodes to itself.
#![no_main]

use credence_ledger::block::{self, BlockHeader};
use credence_ledger::rules::MemState;
use credence_ledger::verify;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = BlockHeader::from_bytes(data) {
        assert_eq!(h.to_bytes(), data, "header: decode then encode must give the input back");
    }
    let f = credence_fuzz::fixture();
    let records_max = f.genesis().consensus.block_records_max as usize;
    let Ok(cb) = block::decode_certified_exact(data, records_max) else { return };
    let mut once = Vec::new();
    block::encode_certified(&cb, &mut once);
    let again = match block::decode_certified_exact(&once, records_max) {
        Ok(b) => b,
        Err(e) => panic!("a re-encoded certified block does not decode: {e}"),
    };
    assert_eq!(again.block, cb.block, "re-encoding changed the block");
    assert_eq!(again.certificate.body, cb.certificate.body, "re-encoding changed the certificate body");
    let sorted = |sigs: &[credence_ledger::checkpoint::NoteSignature]| {
        let mut v: Vec<String> = sigs.iter().map(|s| s.to_line()).collect();
        v.sort();
        v
    };
    assert_eq!(sorted(&again.certificate.signatures), sorted(&cb.certificate.signatures));
    let mut twice = Vec::new();
    block::encode_certified(&again, &mut twice);
    assert_eq!(once, twice, "encoding is not idempotent");
    // `again` holds the lines in the written (canonical) order.
    if again.certificate.signatures == cb.certificate.signatures {
        assert_eq!(once, data, "a block whose signature lines are in canonical order must re-encode to itself");
    }
    let _ = verify::verify_block(&f.ctx, &f.genesis_tip(), &MemState::default(), cb);
});
