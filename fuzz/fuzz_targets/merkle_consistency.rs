//! Fuzz target: the RFC 9162 consistency verifier accepts exactly the genuine proofs (cf. GHSA-672p-m5jq-mrh8).
//!
//! Starts from a real proof between sizes m ≤ n of a reference tree (m = 0 and m = n
//! included; for m = 0 the proof is empty) and applies fuzzer-chosen mutations.
//!
//! * Sizes and roots kept: the verifier must accept if and only if the proof is the genuine one.
//! * Roots replaced, sizes and proof kept: the verdict must be the one the roots alone decide
//!   (m = 0: root_m must be the empty root and root_n is not an input; m = n: the two roots
//!   must be equal; otherwise both must be the genuine roots).
//! * Sizes changed: no panic, and m > n is refused. RFC 9162 binds sizes to roots through the
//!   signed tree heads, not through the proof.
#![no_main]

use credence_fuzz::{TREE_LEAVES, mutate_proof, tree, tree_node};
use credence_ledger::merkle;
use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let t = tree();
    let n = u.int_in_range(0..=TREE_LEAVES).unwrap_or(0);
    let m = u.int_in_range(0..=n).unwrap_or(0);
    let root = |s: u64| merkle::root_at(s, t).expect("prefix root");
    let genuine_proof =
        |m: u64, n: u64| if m == 0 { Some(Vec::new()) } else { merkle::consistency_proof(m, n, t).ok() };
    let (root_m, root_n) = (root(m), root(n));
    let proof = genuine_proof(m, n).expect("proof");
    assert_eq!(merkle::verify_consistency(m, n, &proof, &root_m, &root_n), Ok(()), "a genuine proof must verify");

    let (mut mm, mut mn, mut m_proof, mut m_root_m, mut m_root_n) = (m, n, proof.clone(), root_m, root_n);
    let rounds: u8 = u.int_in_range(1..=4).unwrap_or(1);
    for _ in 0..rounds {
        let other_root = |u: &mut Unstructured<'_>| {
            if u.arbitrary::<bool>().unwrap_or(false) {
                root(u.int_in_range(0..=TREE_LEAVES).unwrap_or(0))
            } else {
                tree_node(u)
            }
        };
        match u.int_in_range(0..=5u8).unwrap_or(0) {
            0..=2 => mutate_proof(&mut u, &mut m_proof),
            3 => m_root_m = other_root(&mut u),
            4 => m_root_n = other_root(&mut u),
            _ => {
                if u.arbitrary::<bool>().unwrap_or(false) {
                    mm = u.arbitrary().unwrap_or(0);
                } else {
                    mn = u.arbitrary().unwrap_or(0);
                }
            }
        }
    }
    let verdict = merkle::verify_consistency(mm, mn, &m_proof, &m_root_m, &m_root_n);
    if mm > mn {
        assert!(verdict.is_err(), "consistency accepted with m {mm} > n {mn}");
    }
    if (mm, mn) != (m, n) {
        return;
    }
    if (m_root_m, m_root_n) == (root_m, root_n) {
        assert_eq!(
            verdict.is_ok(),
            m_proof == proof,
            "consistency verdict {verdict:?} for m {m}, n {n}: {} elements (was {}), proof changed {}",
            m_proof.len(),
            proof.len(),
            m_proof != proof
        );
    } else if m_proof == proof {
        let expected = if m == 0 {
            m_root_m == merkle::empty_root()
        } else if m == n {
            m_root_m == m_root_n
        } else {
            (m_root_m, m_root_n) == (root_m, root_n)
        };
        assert_eq!(verdict.is_ok(), expected, "consistency verdict {verdict:?} for m {m}, n {n} with replaced roots");
    }
});
