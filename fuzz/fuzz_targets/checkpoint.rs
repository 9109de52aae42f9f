//! Fuzz target: C2SP checkpoint notes, checkpoint texts and verifier keys, and the quorum check against the fixture's validators. No panic; accepted notes re-encode idempotently; the fuzzer cannot forge a quorum.
#![no_main]

use credence_ledger::checkpoint::{self, Checkpoint, CheckpointBody, VerifierKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(body) = CheckpointBody::parse(text) {
            assert_eq!(body.to_text(), text, "checkpoint text: parse then write must give the input back");
        }
        if let Ok(vkey) = VerifierKey::parse(text) {
            let again = VerifierKey::parse(&vkey.to_vkey_string());
            assert_eq!(again.as_ref().ok(), Some(&vkey), "verifier key does not round-trip");
        }
    }
    let Ok(cp) = Checkpoint::parse_note_bytes(data) else { return };
    let note = cp.to_note();
    let again = match Checkpoint::parse_note(&note) {
        Ok(c) => c,
        Err(e) => panic!("a written note does not parse: {e}"),
    };
    assert_eq!(again.body, cp.body);
    assert_eq!(again.signatures.len(), cp.signatures.len());
    assert_eq!(again.to_note(), note, "note writing is not idempotent");
    if again.signatures == cp.signatures {
        assert_eq!(note.as_bytes(), data, "a note whose lines are in canonical order must re-encode to itself");
    }
    let f = credence_fuzz::fixture();
    let validators = f.genesis().verifier_keys();
    let strict = checkpoint::verify_quorum_strict(&cp, &validators);
    let lax = checkpoint::verify_quorum(&cp, &validators);
    // Strict acceptance implies lax acceptance (strict only adds refusals).
    if strict.is_ok() {
        assert!(lax.is_ok(), "strict quorum accepted what the lax check refused");
    }
    // A quorum needs real validator signatures over this exact body: only the fixture's own
    // certificates (seeds) carry them.
    if lax.is_ok() {
        assert!(
            f.blocks.iter().any(|b| b.certificate.body == cp.body),
            "quorum reached for a body no validator signed: {:?}",
            cp.body
        );
    }
});
