//! The demo loan world: every record passes the rules, and the world is what the README promises (≥ 200 enterprises, pledged and appraised patents, a bad-loan ratio near 1.5 %, a risk pool with claims and payments, disposals, qualifications).

use std::collections::{BTreeMap, BTreeSet};

use credence_ledger::attestation::Claim;
use credence_ledger::demo::ChainBuilder;
use credence_ledger::demo_world::{BAD_RATIO_TARGET_BP, WORLD_LOANS};
use credence_ledger::loans::{IpPledge, LoanClass, LoanEventKind, QualificationKind, RiskPool};
use credence_ledger::portfolio::Portfolio;

#[test]
fn the_loan_world_passes_the_rules_and_looks_like_a_real_programme() {
    let mut b = ChainBuilder::with_loan_world(1, 1_600_000_000_000).unwrap();
    let world = b.world_remaining();
    assert!((3_000..8_000).contains(&world), "world of {world} records");
    let mut leaves = Vec::new();
    // Blocks of 1,000: the builder verifies each against the rules as it goes.
    b.build(world as u64 + 500, 1000, |vb| {
        leaves.extend(vb.certified().block.leaves.iter().cloned());
        Ok(())
    })
    .unwrap();
    assert_eq!(b.world_remaining(), 0);

    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let mut enterprises = BTreeSet::new();
    let mut portfolio = Portfolio::default();
    let (mut registered, mut released, mut hnte, mut sme, mut claims, mut pays, mut defaults) = (0, 0, 0, 0, 0, 0, 0);
    let mut classes = BTreeSet::new();
    for l in &leaves[..world] {
        let claim = &l.attestation.body.claim;
        *kinds.entry(claim.kind().name()).or_default() += 1;
        if let Some(e) = claim.enterprise() {
            enterprises.insert(*e);
        }
        portfolio.add(l.id, claim);
        match claim {
            Claim::IpPledge(IpPledge::Registered(_)) => registered += 1,
            Claim::IpPledge(IpPledge::Release(r)) => {
                assert!(r.cancellation.is_some(), "registered pledges are released with CNIPA's cancellation");
                released += 1;
            }
            Claim::Qualification(q) => match q.qualification {
                QualificationKind::HighTech { .. } => hnte += 1,
                QualificationKind::TechSme { .. } => sme += 1,
            },
            Claim::RiskPool(RiskPool::Claim(_)) => claims += 1,
            Claim::RiskPool(RiskPool::Pay(_)) => pays += 1,
            Claim::LoanEvent(e) => match e.event {
                LoanEventKind::Default { .. } => defaults += 1,
                LoanEventKind::Classification { class, .. } => {
                    classes.insert(class);
                }
                _ => {}
            },
            _ => {}
        }
    }
    println!("{kinds:?}");
    assert!(enterprises.len() >= 200, "{} enterprises", enterprises.len());
    assert!(kinds["loan"] >= WORLD_LOANS * 9 / 10, "{kinds:?}");
    assert!(kinds["appraisal"] > kinds["loan"] && kinds["patent-status"] > kinds["loan"], "{kinds:?}");
    assert!(registered >= kinds["loan"] && released > 50, "{registered} registered, {released} released");
    assert!(hnte > 80 && sme > 50, "{hnte} high-tech certificates, {sme} tech-SME registrations");
    assert!(defaults >= 4 && claims >= 3 && pays >= 3 && kinds["disposal"] >= 3, "{kinds:?}");
    assert_eq!(classes, LoanClass::ALL.into_iter().collect(), "every class appears in the history");

    let (all, by) = portfolio.figures();
    assert_eq!(by.len(), 3, "three lenders");
    let ratio = all.bad_ratio_bp();
    println!("outstanding {} fen, bad {} fen, ratio {ratio} bp, LTV {:?}", all.outstanding_fen, all.bad_fen, all.ltv);
    assert!(
        (BAD_RATIO_TARGET_BP - 30..=BAD_RATIO_TARGET_BP + 30).contains(&ratio),
        "bad-loan ratio {ratio} bp, aimed at {BAD_RATIO_TARGET_BP}"
    );
    assert!(all.ltv.iter().filter(|n| **n > 0).count() >= 4, "LTV spread over the buckets: {:?}", all.ltv);
    let pools = portfolio.pools();
    assert_eq!(pools.len(), 1);
    let pool = pools.values().next().unwrap();
    assert!(pool.enrolled > 50 && pool.exposure_fen > 0 && pool.paid_fen > 0 && pool.claimed_fen > pool.paid_fen);
}

/// The IP-loan facts and the references index through redb's staging and merge path: with
/// a small `stage_leaves_max` the world's blocks cross it several times; every fact the
/// rules derived, and every reference, reads back the same from the store as from the
/// in-memory model, before and after reopening (which rebuilds the staged part).
#[test]
fn facts_and_references_survive_merges_and_reopening() {
    use credence_ledger::rules::{MemState, StateView};
    use credence_ledger::store::{IndexKey, MemStore, RedbOptions, RedbStore, Store};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.redb");
    let mut b = ChainBuilder::with_loan_world(2, 1_600_000_000_000).unwrap();
    let genesis = b.genesis().clone();
    let options = RedbOptions { stage_leaves_max: 700, ..RedbOptions::default() };
    let mut store = RedbStore::open_with(&path, &genesis, options).unwrap();
    let mut model = MemStore::new(&genesis);
    let mut state = MemState::default();
    let mut loans = Vec::new();
    let world = b.world_remaining() as u64;
    // Blocks of 250: merges happen inside the world (every third block), and its last
    // records stay staged.
    b.build(world, 250, |vb| {
        for l in &vb.certified().block.leaves {
            if matches!(l.attestation.body.claim, Claim::Loan(_) | Claim::RiskPool(RiskPool::Open(_))) {
                loans.push(l.id);
            }
        }
        state.apply(vb.delta());
        store.commit(&vb).map_err(|e| e.to_string())?;
        model.commit(&vb).map_err(|e| e.to_string())
    })
    .unwrap();
    assert!(state.facts.len() > 2_000, "{} facts", state.facts.len());

    let check = |store: &RedbStore, when: &str| {
        for (key, fact) in &state.facts {
            assert_eq!(store.fact(key).unwrap().as_ref(), Some(fact), "{when}: fact {key:?}");
        }
        for id in &loans {
            let all = |s: &dyn Store| {
                let mut out = Vec::new();
                let mut after = None;
                loop {
                    let page = s.query(IndexKey::Refers(id), after, 100).unwrap();
                    out.extend(&page);
                    match page.last() {
                        Some(&last) if page.len() == 100 => after = Some(last),
                        _ => return out,
                    }
                }
            };
            let got = all(store);
            assert_eq!(got, all(&model), "{when}: references of {id}");
            for i in &got {
                let leaf = store.leaf(*i).unwrap().unwrap();
                assert!(leaf.attestation.body.claim.references().contains(id), "{when}: leaf {i} does not name {id}");
            }
        }
        // The pool is named by every enrolment, claim and payment.
        assert!(loans.iter().any(|id| store.query(IndexKey::Refers(id), None, 1000).unwrap().len() > 100));
    };
    check(&store, "before reopening");
    drop(store);
    let store = RedbStore::open_with(&path, &genesis, options).unwrap();
    check(&store, "after reopening");
    // A larger staging limit reads the same.
    drop(store);
    let store = RedbStore::open(&path, &genesis).unwrap();
    check(&store, "reopened with the default options");
}

/// A loans-only chain: world after world, every record passes the rules (the builder
/// verifies each block), no record is of the bulk kinds, the later worlds' borrowers are
/// their own, and each world adds a pool and about its share of loans.
#[test]
fn loan_worlds_chain_without_sharing_numbers_or_patents() {
    use credence_ledger::demo_world::LoanWorld;

    let mut b = ChainBuilder::loans_only(3, 1_600_000_000_000).unwrap();
    // The worlds' sizes, planned apart as the builder plans them.
    let mut taken = std::collections::HashSet::new();
    let sizes: Vec<u64> = (0..3).map(|k| LoanWorld::nth(3, k, b.genesis(), &mut taken).unwrap().len() as u64).collect();
    let records = sizes.iter().sum::<u64>();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let mut borrowers = vec![BTreeSet::new(); 3];
    let mut portfolio = Portfolio::default();
    let mut seen = 0u64;
    b.build(records, 1000, |vb| {
        for l in &vb.certified().block.leaves {
            let claim = &l.attestation.body.claim;
            *kinds.entry(claim.kind().name()).or_default() += 1;
            portfolio.add(l.id, claim);
            let world = (0..3).find(|&k| seen < sizes[..=k].iter().sum::<u64>()).unwrap();
            if let Claim::Loan(loan) = claim {
                borrowers[world].insert(loan.borrower);
            }
            seen += 1;
        }
        Ok(())
    })
    .unwrap();
    println!("{sizes:?} {kinds:?}");
    for bulk in ["rd-spend", "patent-valuation", "pledge", "release", "revoke"] {
        assert!(!kinds.contains_key(bulk), "a loans-only chain holds {bulk}: {kinds:?}");
    }
    for (k, w) in borrowers.iter().enumerate() {
        assert!(w.len() > 100, "world {k} has {} borrowers", w.len());
    }
    assert!(borrowers[1].is_disjoint(&borrowers[0]) && borrowers[2].is_disjoint(&borrowers[0]));
    assert!(borrowers[1].is_disjoint(&borrowers[2]));
    assert!(kinds["loan"] >= 3 * WORLD_LOANS * 9 / 10, "{kinds:?}");
    let (all, by) = portfolio.figures();
    assert_eq!(by.len(), 3);
    assert!(all.bad_ratio_bp() > 0 && all.bad_ratio_bp() < 400, "bad-loan ratio {} bp", all.bad_ratio_bp());
    assert_eq!(portfolio.pools().len(), 3, "a pool per world");
}
