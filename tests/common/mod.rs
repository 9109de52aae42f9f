//! Helpers shared by the end-to-end tests: running the real `credence` binary.

pub mod net;
pub mod proxy;

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
