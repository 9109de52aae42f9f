//! The verification core against damaged chains: each kind of damage is found at the right height and record, with the right reason, and never panics.

use credence_ledger::attestation::Claim;
use credence_ledger::block::{CertifiedBlock, Leaf};
use credence_ledger::demo::ChainBuilder;
use credence_ledger::export::{ExportReader, ExportWriter};
use credence_ledger::rules::Rejection;
use credence_ledger::verify::{self, ChainContext, Failure, VerifyError};

/// A valid chain of `blocks` blocks of `per_block` records.
fn chain(blocks: usize, per_block: usize) -> (ChainBuilder, Vec<CertifiedBlock>) {
    let mut b = ChainBuilder::new(11, 1_700_000_000_000).unwrap();
    let out = b.certified_blocks(blocks, per_block).unwrap();
    (b, out)
}

fn run(ctx: &ChainContext, blocks: Vec<CertifiedBlock>) -> (u64, Option<VerifyError>) {
    let (summary, failure) = verify::verify_chain(ctx, blocks.into_iter().map(Ok), |_| {});
    (summary.blocks, failure)
}

fn ctx_of(b: &ChainBuilder) -> ChainContext {
    ChainContext::new(b.genesis().clone())
}

#[test]
fn an_intact_chain_verifies() {
    let (b, blocks) = chain(6, 50);
    let ctx = ctx_of(&b);
    let (summary, failure) = verify::verify_chain(&ctx, blocks.into_iter().map(Ok), |_| {});
    assert_eq!(failure, None);
    assert_eq!(summary.blocks, 6);
    assert_eq!(summary.attestations, 300);
    assert_eq!(summary.head.map(|h| h.0), Some(6));
}

#[test]
fn an_altered_record_is_named_by_height_and_record() {
    let (b, mut blocks) = chain(5, 40);
    // Change the amount of an R&D record in block 3 and keep its signature.
    let (i, leaf) = blocks[2]
        .block
        .leaves
        .iter()
        .enumerate()
        .find(|(_, l)| matches!(l.attestation.body.claim, Claim::RdSpend(_)))
        .map(|(i, l)| (i, l.clone()))
        .unwrap();
    let mut a = leaf.attestation.clone();
    if let Claim::RdSpend(r) = &mut a.body.claim
        && let credence_ledger::confidential::Amount::Plain(m) = &mut r.amount
    {
        m.fen += 1;
    }
    blocks[2].block.leaves[i] = Leaf::new(a);
    let ctx = ctx_of(&b);
    let (ok_blocks, failure) = run(&ctx, blocks.clone());
    let failure = failure.unwrap();
    // The header still commits to the old records: the root no longer matches.
    assert_eq!((failure.height, failure.reason.clone()), (3, Failure::TreeRoot));
    assert_eq!(ok_blocks, 2);

    // A proposer who re-roots and re-certifies the altered block still cannot forge the signature.
    let mut h = blocks[2].block.header.clone();
    let mut frontier = verify_tip_frontier(&ctx, &blocks[..2]);
    let mut scratch = Vec::new();
    for l in &blocks[2].block.leaves {
        frontier.push_leaf_hash(l.leaf_hash(), &mut scratch).unwrap();
    }
    h.tree_root = credence_ledger::hash::Hash(frontier.root());
    blocks[2].certificate = b.certify(&h);
    blocks[2].block.header = h;
    // Later blocks now link to the old header: only block 3 matters here.
    blocks.truncate(3);
    let (_, failure) = run(&ctx, blocks);
    let failure = failure.unwrap();
    assert_eq!(failure.height, 3);
    assert_eq!(failure.record, Some(i));
    assert!(matches!(failure.reason, Failure::Signature(_)), "{failure}");
}

fn verify_tip_frontier(ctx: &ChainContext, blocks: &[CertifiedBlock]) -> credence_ledger::merkle::Frontier {
    let mut f = credence_ledger::merkle::Frontier::new();
    let mut scratch = Vec::new();
    let _ = ctx;
    for b in blocks {
        for l in &b.block.leaves {
            f.push_leaf_hash(l.leaf_hash(), &mut scratch).unwrap();
        }
    }
    f
}

#[test]
fn reordered_and_missing_blocks_are_found() {
    let (b, blocks) = chain(5, 10);
    let ctx = ctx_of(&b);
    let mut swapped = blocks.clone();
    swapped.swap(1, 2);
    let f = run(&ctx, swapped).1.unwrap();
    assert_eq!((f.height, f.reason), (2, Failure::Height { expected: 2, got: 3 }));

    let mut missing = blocks.clone();
    missing.remove(3);
    let f = run(&ctx, missing).1.unwrap();
    assert_eq!((f.height, f.reason), (4, Failure::Height { expected: 4, got: 5 }));
}

#[test]
fn wrong_certificates_are_refused() {
    let (b, blocks) = chain(3, 10);
    let ctx = ctx_of(&b);

    // Block 2 carrying block 3's certificate.
    let mut wrong = blocks.clone();
    wrong[1].certificate = blocks[2].certificate.clone();
    let f = run(&ctx, wrong).1.unwrap();
    assert_eq!(f.height, 2);
    assert!(matches!(f.reason, Failure::CertificateMismatch { .. }), "{f}");

    // Too few signers: 2 of 4 validators (3 are needed).
    let mut few = blocks.clone();
    few[1].certificate.signatures.truncate(2);
    let f = run(&ctx, few).1.unwrap();
    assert_eq!(f.height, 2);
    assert!(matches!(f.reason, Failure::Certificate(_)), "{f}");

    // One signature line duplicated three times still counts once.
    let mut dup = blocks.clone();
    let one = dup[0].certificate.signatures[0].clone();
    dup[0].certificate.signatures = vec![one.clone(), one.clone(), one];
    let f = run(&ctx, dup).1.unwrap();
    assert_eq!(f.height, 1);
    assert!(matches!(f.reason, Failure::Certificate(_)), "{f}");
}

#[test]
fn rule_violations_carry_their_code() {
    let (b, blocks) = chain(3, 10);
    let ctx = ctx_of(&b);
    // Re-submit block 1's first record inside block 3 (a replay), re-certified so only the rules can catch it.
    let mut replay = blocks.clone();
    let old = replay[0].block.leaves[0].clone();
    replay[2].block.leaves.push(old);
    let mut h = replay[2].block.header.clone();
    let mut f = verify_tip_frontier(&ctx, &replay[..2]);
    let mut scratch = Vec::new();
    for l in &replay[2].block.leaves {
        f.push_leaf_hash(l.leaf_hash(), &mut scratch).unwrap();
    }
    h.tree_size = f.size();
    h.tree_root = credence_ledger::hash::Hash(f.root());
    replay[2].certificate = b.certify(&h);
    replay[2].block.header = h;
    let failure = run(&ctx, replay).1.unwrap();
    assert_eq!(failure.height, 3);
    assert_eq!(failure.record, Some(10));
    match failure.reason {
        Failure::Rule(r @ Rejection::SequenceReplay { .. }) => assert_eq!(r.code(), 3),
        other => panic!("expected a replay rejection, got {other}"),
    }
}

#[test]
fn export_round_trip_and_damage() {
    let (b, blocks) = chain(4, 25);
    let ctx = ctx_of(&b);
    let mut w = ExportWriter::new(Vec::new(), &ctx.chain_id).unwrap();
    for cb in &blocks {
        w.write_block(cb).unwrap();
    }
    let bytes = w.finish().unwrap();
    let read = |bytes: &[u8]| -> (u64, Option<VerifyError>) {
        match ExportReader::new(bytes, &ctx.genesis) {
            Ok(r) => {
                let (s, f) = verify::verify_chain(&ctx, r, |_| {});
                (s.blocks, f)
            }
            Err(e) => (0, Some(e)),
        }
    };
    assert_eq!(read(&bytes), (4, None));
    // Every single-byte flip, at a sample of positions, is detected.
    for pos in (0..bytes.len()).step_by(97) {
        let mut b = bytes.clone();
        b[pos] ^= 0x20;
        let (_, f) = read(&b);
        assert!(f.is_some(), "flip at byte {pos} of {} went unnoticed", bytes.len());
    }
    // Truncation anywhere is detected.
    for cut in (0..bytes.len()).step_by(331) {
        assert!(read(&bytes[..cut]).1.is_some(), "truncation at {cut} went unnoticed");
    }
    // Bytes after the trailer.
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(read(&extra).1.is_some());
}

#[test]
fn decoders_never_panic_on_mutated_blocks() {
    use credence_ledger::block::{decode_certified_exact, encode_certified};
    let (b, blocks) = chain(2, 20);
    let mut bytes = Vec::new();
    encode_certified(&blocks[1], &mut bytes);
    let records_max = b.genesis().consensus.block_records_max as usize;
    assert_eq!(decode_certified_exact(&bytes, records_max).as_ref(), Ok(&blocks[1]));
    let mut rng = credence_ledger::demo::DemoRng::new(5);
    let mut rejected = 0;
    for _ in 0..3000 {
        let mut m = bytes.clone();
        match rng.below(4) {
            0 => {
                let i = rng.below(m.len() as u64) as usize;
                m[i] ^= 1 << rng.below(8);
            }
            1 => m.truncate(rng.below(m.len() as u64) as usize),
            2 => {
                let i = rng.below(m.len() as u64) as usize;
                m.insert(i, rng.next_u64() as u8);
            }
            _ => {
                let i = rng.below(m.len() as u64 - 8) as usize;
                m[i..i + 4].copy_from_slice(&(rng.next_u64() as u32).to_le_bytes());
            }
        }
        match decode_certified_exact(&m, records_max) {
            Err(e) => {
                assert!(!e.to_string().is_empty());
                rejected += 1;
            }
            // A mutation that still decodes (e.g. inside a signature or an evidence hash)
            // must then fail verification or be the same block.
            Ok(cb) if cb == blocks[1] => {}
            Ok(cb) => {
                let ctx = ctx_of(&b);
                let (_, failure) = verify::verify_chain(&ctx, [Ok(blocks[0].clone()), Ok(cb.clone())], |_| {});
                let Some(failure) = failure else {
                    let same_block = cb.block == blocks[1].block;
                    panic!(
                        "a changed block verified; block part same: {same_block}\n{}\nvs\n{}",
                        cb.certificate.to_note(),
                        blocks[1].certificate.to_note()
                    );
                };
                assert_eq!(failure.height, 2, "{failure}");
            }
        }
    }
    assert!(rejected > 1000, "most mutations break the encoding ({rejected} of 3000)");
}

/// `blocks[i]` with its certificate's `line`-th signature damaged (still parseable).
fn with_bad_certificate_line(blocks: &mut [CertifiedBlock], i: usize, line: usize) {
    blocks[i].certificate.signatures[line].signature.0[5] ^= 1;
}

/// The error the one-by-one certificate check gives for `blocks[i]`'s certificate.
fn one_by_one(ctx: &ChainContext, blocks: &[CertifiedBlock], i: usize) -> Failure {
    let roster = ctx.genesis_roster();
    let e = credence_ledger::checkpoint::verify_quorum_strict(&blocks[i].certificate, &roster.verifier_keys)
        .expect_err("a damaged line");
    Failure::Certificate(e.to_string())
}

#[test]
fn a_bad_certificate_line_checked_in_the_batch_is_named_as_the_single_check_names_it() {
    let (b, blocks) = chain(4, 30);
    let ctx = ctx_of(&b);
    for line in [0, 2] {
        let mut bad = blocks.clone();
        with_bad_certificate_line(&mut bad, 2, line);
        let (ok, f) = run(&ctx, bad.clone());
        let f = f.unwrap();
        assert_eq!((ok, f.height, f.record), (2, 3, None));
        assert_eq!(f.reason, one_by_one(&ctx, &bad, 2), "{f}");
        assert!(f.to_string().contains(&format!("line {}", line + 1)), "{f}");
    }
}

/// `blocks[i]` with leaf `leaf`'s signature damaged, re-rooted and re-certified (so only
/// the signature check can find it); the blocks after it are dropped (they link to the old header).
fn with_bad_leaf_signature(b: &ChainBuilder, blocks: &mut Vec<CertifiedBlock>, i: usize, leaf: usize) {
    let mut a = blocks[i].block.leaves[leaf].attestation.clone();
    a.signature.0[40] ^= 1;
    blocks[i].block.leaves[leaf] = Leaf::new(a);
    let mut h = blocks[i].block.header.clone();
    let mut f = verify_tip_frontier(&ctx_of(b), &blocks[..i]);
    let mut scratch = Vec::new();
    for l in &blocks[i].block.leaves {
        f.push_leaf_hash(l.leaf_hash(), &mut scratch).unwrap();
    }
    h.tree_root = credence_ledger::hash::Hash(f.root());
    blocks[i].certificate = b.certify(&h);
    blocks[i].block.header = h;
    blocks.truncate(i + 1);
}

#[test]
fn a_bad_certificate_line_outranks_its_blocks_other_failures_but_not_an_earlier_blocks() {
    let (b, blocks) = chain(4, 30);
    let ctx = ctx_of(&b);

    // Block 3: a bad attestation signature and a bad certificate line: the certificate wins.
    let mut both = blocks.clone();
    with_bad_leaf_signature(&b, &mut both, 2, 4);
    let sig_only = run(&ctx, both.clone()).1.unwrap();
    assert_eq!((sig_only.height, sig_only.record), (3, Some(4)), "{sig_only}");
    with_bad_certificate_line(&mut both, 2, 1);
    let f = run(&ctx, both.clone()).1.unwrap();
    assert_eq!((f.height, f.record, f.reason), (3, None, one_by_one(&ctx, &both, 2)));

    // Block 3: a rule failure (a block time that does not increase) and a bad certificate
    // line: the certificate wins, as when it was checked before the rules.
    let mut rule = blocks.clone();
    let mut h = rule[2].block.header.clone();
    h.time_ms = rule[1].block.header.time_ms;
    rule[2].certificate = b.certify(&h);
    rule[2].block.header = h;
    rule.truncate(3);
    let rule_only = run(&ctx, rule.clone()).1.unwrap();
    assert!(matches!(rule_only.reason, Failure::Rule(Rejection::BlockTimeNotIncreasing { .. })), "{rule_only}");
    with_bad_certificate_line(&mut rule, 2, 0);
    let f = run(&ctx, rule.clone()).1.unwrap();
    assert_eq!((f.height, f.reason), (3, one_by_one(&ctx, &rule, 2)));

    // A bad attestation signature in block 2 outranks a bad certificate line in block 3.
    let mut earlier = blocks.clone();
    with_bad_leaf_signature(&b, &mut earlier, 1, 7);
    let mut third = blocks[2].clone();
    third.block.header.prev = earlier[1].block.header.hash();
    third.certificate = b.certify(&third.block.header);
    earlier.push(third);
    with_bad_certificate_line(&mut earlier, 2, 0);
    let f = run(&ctx, earlier).1.unwrap();
    assert_eq!((f.height, f.record), (2, Some(7)), "{f}");
    assert!(matches!(f.reason, Failure::Signature(_)), "{f}");
}

#[test]
fn check_ahead_leaves_a_block_with_a_bad_certificate_line_unchecked() {
    let (b, blocks) = chain(2, 20);
    let ctx = ctx_of(&b);
    let roster = ctx.genesis_roster().clone();
    let good = verify::check_signatures_ahead(&ctx, &roster, blocks[0].clone(), 2);
    assert!(matches!(good, verify::Ahead::Checked(_)));
    let mut bad = blocks.clone();
    with_bad_certificate_line(&mut bad, 0, 1);
    let ahead = verify::check_signatures_ahead(&ctx, &roster, bad[0].clone(), 2);
    assert!(matches!(ahead, verify::Ahead::Unchecked(_)));
}
