//! Fuzz target: node configs (`node::config`). No panic; an accepted config writes a file that reads back to the same config.
#![no_main]

use std::path::Path;

use credence_node::config::NodeConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let base = Path::new("/etc/credence");
    let Ok(c) = NodeConfig::from_toml(text, base) else { return };
    match NodeConfig::from_toml(&c.to_toml(base), base) {
        Ok(again) => assert_eq!(again, c, "node config does not round-trip through its file form"),
        Err(e) => panic!("a written node config does not read back: {e}"),
    }
});
