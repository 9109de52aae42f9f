//! Tidy: the consensus state machine stays pure — no async runtime, network, clock, disk, environment, threads or randomness in `src/consensus/`.

use std::path::Path;

/// What the machine must never name (outside comments).
const FORBIDDEN: &[&str] = &[
    "tokio",
    "libp2p",
    "futures",
    "async ",
    ".await",
    "std::time",
    "Instant",
    "SystemTime",
    "std::fs",
    "std::net",
    "std::io",
    "std::env",
    "std::thread",
    "std::process",
    "rand::",
    "getrandom",
    "thread_rng",
    "redb",
    "verify_batch", // batch coefficients come from OS randomness (KeySet::verify_many derives them from the batch)
    "crate::sim",
    "crate::net",
    "crate::runtime",
];

#[test]
fn consensus_imports_no_io_clock_or_randomness() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/consensus");
    let mut checked = 0;
    let mut offences = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("//!"), "{} must start with a //! line", path.display());
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for word in FORBIDDEN {
                if contains_word(code, word) {
                    offences.push(format!("{}:{}: `{word}` in `{}`", path.display(), i + 1, line.trim()));
                }
            }
        }
        checked += 1;
    }
    assert!(checked >= 4, "found the consensus sources");
    assert!(offences.is_empty(), "the consensus machine must stay pure:\n{}", offences.join("\n"));
}

/// `word` occurs in `code` not as part of a longer identifier.
fn contains_word(code: &str, word: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    code.match_indices(word).any(|(i, _)| {
        let before = code[..i].chars().next_back();
        let after = code[i + word.len()..].chars().next();
        let starts_ident = word.starts_with(ident);
        let ends_ident = word.ends_with(ident);
        let glued_before = starts_ident && before.is_some_and(ident);
        let glued_after = ends_ident && after.is_some_and(ident);
        !glued_before && !glued_after
    })
}

#[test]
fn the_word_check_ignores_longer_identifiers() {
    assert!(contains_word("x.await;", ".await"));
    assert!(!contains_word("self.awaiting_block = true", ".await"));
    assert!(contains_word("use std::time::Instant;", "Instant"));
    assert!(!contains_word("InstantCluster::new", "Instant"));
    assert!(contains_word("use tokio::sync;", "tokio"));
}
