//! Fuzz target: snapshot files (`ledger::snapshot`, docs/encoding.md §14) verified against the fixture's genesis, with set changes walked as `credence snapshot verify` walks them. No panic; the reader never yields more state entries than the file has bytes.
#![no_main]

use credence_ledger::snapshot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = credence_fuzz::fixture();
    let g = f.genesis();
    let mut entries = 0usize;
    let _ = snapshot::verify(
        data,
        g,
        |changes, h| credence_node::snapshot::set_in_force(g, changes, h),
        |_| {
            entries += 1;
            assert!(entries <= data.len(), "more state entries than the file has bytes");
            Ok(())
        },
    );
});
