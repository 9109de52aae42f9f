//! Third-party tools the tests check Credence against, installed on first use: DuckDB, the
//! RFC 9421 library `http-message-signatures` and `cryptography` from PyPI
//! (tests/interop/requirements.txt), and Debian's Chromium with ChromeDriver for the console.
//!
//! So `cargo test --workspace`, the README's test command, runs every test on a fresh machine
//! that has only Rust and the system's `python3` with pip: no test skips because a tool is
//! missing, and none needs a setup step outside the project's files. Installing happens under
//! a file lock (test binaries may run at the same time under other runners) and at most once
//! per test process; when the tools are there, the check costs one `python3` start.
//!
//! Included by path from the test crates that need it (`#[path]`), so it uses only `std`.
// A crate that includes it may use one of the two tools.
#![allow(dead_code)]

use std::fs::File;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

const REQUIREMENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/interop/requirements.txt");
/// What tests/interop/requirements.txt provides, as Python imports.
const PYTHON_IMPORTS: &str = "import duckdb, http_message_signatures, cryptography";
/// Where Debian's packages `chromium` and `chromium-driver` put their programs.
const CHROMIUM_DIRS: [&str; 2] = ["/usr/bin", "/usr/lib/chromium"];

/// Makes sure `python3` imports every package of tests/interop/requirements.txt, installing
/// them with pip if not; panics naming what failed.
pub fn python_packages() {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(e) = READY.get_or_init(|| locked(ensure_python_packages)) {
        panic!("{e}");
    }
}

/// The paths of `chromium` and `chromedriver`, installing Debian's packages if they are
/// missing; panics naming what failed.
pub fn chromium() -> (String, String) {
    static READY: OnceLock<Result<(String, String), String>> = OnceLock::new();
    match READY.get_or_init(|| locked(ensure_chromium)) {
        Ok(paths) => paths.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// Runs `f` holding an exclusive lock shared by every test process on this machine.
fn locked<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    let path = std::env::temp_dir().join("credence-test-tools.lock");
    let file = File::create(&path).map_err(|e| format!("test tools lock {}: {e}", path.display()))?;
    file.lock().map_err(|e| format!("test tools lock {}: {e}", path.display()))?;
    f()
}

fn python_imports() -> bool {
    Command::new("python3").args(["-c", PYTHON_IMPORTS]).output().is_ok_and(|o| o.status.success())
}

fn ensure_python_packages() -> Result<(), String> {
    if python_imports() {
        return Ok(());
    }
    eprintln!("installing the interop tests' Python packages ({REQUIREMENTS})");
    let out = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", REQUIREMENTS])
        .output()
        .map_err(|e| format!("python3 -m pip could not start: {e} (the tests need python3 with pip)"))?;
    if !out.status.success() || !python_imports() {
        return Err(format!(
            "pip install -r {REQUIREMENTS} failed (exit {:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn find(name: &str) -> Option<String> {
    CHROMIUM_DIRS.iter().map(|d| Path::new(d).join(name)).find(|p| p.exists()).map(|p| p.display().to_string())
}

fn ensure_chromium() -> Result<(String, String), String> {
    if let (Some(c), Some(d)) = (find("chromium"), find("chromedriver")) {
        return Ok((c, d));
    }
    eprintln!("installing Debian's chromium and chromium-driver for the console's browser tests");
    let apt = |args: &[&str]| -> Result<(), String> {
        let out = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .map_err(|e| format!("apt-get could not start: {e} (install chromium and chromium-driver by hand)"))?;
        match out.status.success() {
            true => Ok(()),
            false => Err(format!("apt-get {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr))),
        }
    };
    apt(&["update", "-qq"])?;
    apt(&["install", "-y", "-qq", "chromium", "chromium-driver"])?;
    match (find("chromium"), find("chromedriver")) {
        (Some(c), Some(d)) => Ok((c, d)),
        _ => Err(format!("chromium or chromedriver is still missing from {CHROMIUM_DIRS:?} after apt-get install")),
    }
}
