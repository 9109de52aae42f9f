//! Fuzz target: genesis files (`ledger::genesis`). No panic; an accepted genesis writes a file that reads back to the same genesis with the same hash.
#![no_main]

use credence_ledger::genesis::Genesis;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(g) = Genesis::from_toml(text) else { return };
    let written = g.to_toml();
    match Genesis::from_toml(&written) {
        Ok(again) => {
            assert_eq!(again, g, "genesis does not round-trip through its file form");
            assert_eq!(again.hash(), g.hash(), "genesis hash changed through its file form");
            assert_eq!(again.to_toml(), written, "genesis writing is not idempotent");
        }
        Err(e) => panic!("a written genesis does not read back: {e}"),
    }
});
