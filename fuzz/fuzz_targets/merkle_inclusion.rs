//! Fuzz target: the RFC 9162 inclusion verifier accepts exactly the genuine proofs (cf. GHSA-672p-m5jq-mrh8: verifiers that accepted altered proofs).
//!
//! Starts from a real proof for (leaf, index, size) in a reference tree and applies
//! fuzzer-chosen mutations (bit flips; removed, inserted, swapped, replaced or appended
//! elements; truncation; another leaf; another index).
//!
//! * Signed tree head (size, root) kept: the verifier must accept if and only if the claimed
//!   leaf really is leaf `index` and the proof is that leaf's genuine audit path.
//! * Root replaced, claim and proof kept: the verifier must refuse (unless the root is the same).
//! * Anything else (size changed, or root and claim both changed): only "no panic". RFC 9162
//!   binds the size to the root through the signed tree head, not through the proof, and a
//!   replaced root can be the genuine root of another tree (see `merkle::verify_inclusion`).
#![no_main]

use credence_fuzz::{TREE_LEAVES, mutate_proof, tree, tree_node};
use credence_ledger::merkle::{self, NodeReader};
use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let t = tree();
    let size = u.int_in_range(1..=TREE_LEAVES).unwrap_or(1);
    let index = u.int_in_range(0..=size - 1).unwrap_or(0);
    let leaf = t.node(0, index).expect("leaf stored");
    let root = merkle::root_at(size, t).expect("prefix root");
    let proof = merkle::inclusion_proof(index, size, t).expect("proof");
    assert_eq!(merkle::verify_inclusion(&leaf, index, size, &proof, &root), Ok(()), "a genuine proof must verify");

    let (mut m_leaf, mut m_index, mut m_size, mut m_proof, mut m_root) = (leaf, index, size, proof.clone(), root);
    let rounds: u8 = u.int_in_range(1..=4).unwrap_or(1);
    for _ in 0..rounds {
        match u.int_in_range(0..=6u8).unwrap_or(0) {
            0..=2 => mutate_proof(&mut u, &mut m_proof),
            3 => m_leaf = tree_node(&mut u),
            4 => {
                m_index = if u.arbitrary::<bool>().unwrap_or(false) {
                    u.arbitrary().unwrap_or(0)
                } else {
                    u.int_in_range(0..=size - 1).unwrap_or(0)
                }
            }
            5 => {
                m_root = if u.arbitrary::<bool>().unwrap_or(false) {
                    merkle::root_at(u.int_in_range(0..=TREE_LEAVES).unwrap_or(0), t).unwrap_or([0; 32])
                } else {
                    tree_node(&mut u)
                }
            }
            _ => m_size = u.arbitrary().unwrap_or(0),
        }
    }
    let verdict = merkle::verify_inclusion(&m_leaf, m_index, m_size, &m_proof, &m_root);
    if (m_size, m_root) == (size, root) {
        let genuine = m_index < size
            && t.node(0, m_index).ok() == Some(m_leaf)
            && merkle::inclusion_proof(m_index, size, t).ok().as_ref() == Some(&m_proof);
        assert_eq!(
            verdict.is_ok(),
            genuine,
            "inclusion verdict {verdict:?} for leaf changed {}, index {m_index} (was {index}), size {size}, {} elements (was {})",
            m_leaf != leaf,
            m_proof.len(),
            proof.len()
        );
    } else if (m_leaf, m_index, m_size, &m_proof) == (leaf, index, size, &proof) {
        assert!(verdict.is_err(), "a genuine proof verified against another root (size {size}, index {index})");
    }
});
