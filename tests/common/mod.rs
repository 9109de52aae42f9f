//! Helpers shared by the end-to-end tests: running the real `credence` binary.
// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

pub mod net;
pub mod proxy;
pub mod tools;

use std::process::{Command, Output};

/// Runs the `credence` binary cargo built for this test run.
pub fn credence(args: &[&str]) -> Output {
    let bin = env!("CARGO_BIN_EXE_credence");
    match Command::new(bin).args(args).output() {
        Ok(o) => o,
        Err(e) => panic!("cannot run {bin}: {e}"),
    }
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Parses the single JSON object a `--json` command prints.
pub fn json(o: &Output) -> serde_json::Value {
    match serde_json::from_slice(&o.stdout) {
        Ok(v) => v,
        Err(e) => panic!("not JSON ({e}): {}\nstderr: {}", stdout(o), String::from_utf8_lossy(&o.stderr)),
    }
}

/// xorshift64*: deterministic choices (fault placement, kill schedules), so a failing run
/// reproduces from its seed.
pub struct Rng(pub u64);

impl Rng {
    /// A generator from any seed (zero is mapped to a valid state).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn millis(&mut self, lo: u64, hi: u64) -> std::time::Duration {
        std::time::Duration::from_millis(lo + self.below(hi - lo))
    }
}

/// The command succeeded; its output, for chaining.
pub fn ok(o: Output) -> Output {
    assert!(o.status.success(), "failed ({}): {}\n{}", o.status, stdout(&o), String::from_utf8_lossy(&o.stderr));
    o
}

/// Exit code 1 (the check ran and found a problem) and stdout containing `needle`.
pub fn refused(o: &Output, needle: &str) {
    assert_eq!(o.status.code(), Some(1), "expected a refusal: {}\n{}", stdout(o), String::from_utf8_lossy(&o.stderr));
    assert!(stdout(o).contains(needle), "expected '{needle}' in: {}", stdout(o));
}

/// A path as a command-line argument.
pub fn p(path: &std::path::Path) -> &str {
    path.to_str().unwrap()
}
