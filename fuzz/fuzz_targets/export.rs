//! Fuzz target: export files (`ledger::export`) read against the fixture's genesis, each block checked by the verification core. No panic; a reader never yields more blocks than the file has frames.
#![no_main]

use credence_ledger::export::ExportReader;
use credence_ledger::rules::MemState;
use credence_ledger::verify;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = credence_fuzz::fixture();
    let Ok(reader) = ExportReader::new(std::io::Cursor::new(data), f.genesis()) else { return };
    let mut tip = f.genesis_tip();
    let mut state = MemState::default();
    // Each item consumes at least one byte of the file (a frame tag), so this bounds the loop.
    for (i, item) in reader.enumerate() {
        assert!(i <= data.len(), "export reader yields more items than the file has bytes");
        let Ok(cb) = item else { continue };
        if let Ok(vb) = verify::verify_block(&f.ctx, &tip, &state, cb) {
            state.apply(vb.delta());
            tip.advance(&vb);
        }
    }
});
