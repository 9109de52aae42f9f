//! The consents index (`IndexKey::Consents`): the redb store answers as the in-memory model does, merged or staged, after reopening, and after the index is rebuilt for a store written before it existed.

use credence_ledger::access::{Consent, FactKind, Purpose};
use credence_ledger::attestation::Claim;
use credence_ledger::demo::{self, ChainBuilder, DemoRng};
use credence_ledger::hash::Hash;
use credence_ledger::ids::{MemberName, Uscc};
use credence_ledger::store::{IndexKey, MemStore, RedbOptions, RedbStore, Store};

/// Every leaf index of `e`'s consents, in pages of 2.
fn consents(s: &dyn Store, e: &Uscc) -> Vec<u64> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = s.query(IndexKey::Consents(e), after, 2).unwrap();
        out.extend(&page);
        match page.last() {
            Some(&last) if page.len() == 2 => after = Some(last),
            _ => return out,
        }
    }
}

#[test]
fn consents_are_indexed_merged_staged_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.redb");
    let mut b = ChainBuilder::new(5, 1_600_000_000_000).unwrap();
    let genesis = b.genesis().clone();
    // Merges every few blocks, so that some consents are merged and the last ones staged.
    let options = RedbOptions { stage_leaves_max: 120, ..RedbOptions::default() };
    let mut store = RedbStore::open_with(&path, &genesis, options).unwrap();
    let mut model = MemStore::new(&genesis);
    let enterprises = demo::enterprises(&mut DemoRng::new(9), 3);
    let bank = MemberName::parse("member", "bank-icbc-sz").unwrap();
    let bank_i = usize::from(genesis.member_index(&bank).unwrap());
    for round in 0..6u64 {
        let vb = b.next_block(50).unwrap();
        store.commit(&vb).unwrap();
        model.commit(&vb).unwrap();
        // Consents of the first two enterprises only, more of the first.
        let claims = (0..=round % 3)
            .map(|i| {
                let enterprise = enterprises[usize::from(i == 2)];
                let c = Consent {
                    enterprise,
                    recipient: bank.clone(),
                    purpose: Purpose::LoanApplication,
                    scope: FactKind::ALL.to_vec(),
                    expires_at_ms: b.time_ms() + 86_400_000,
                    evidence: Hash([round as u8; 32]),
                };
                (bank_i, Claim::Consent(c))
            })
            .collect();
        let vb = b.next_block_of(claims).unwrap();
        store.commit(&vb).unwrap();
        model.commit(&vb).unwrap();
    }
    let expect: Vec<Vec<u64>> = enterprises.iter().map(|e| consents(&model, e)).collect();
    assert_eq!(expect.iter().map(Vec::len).collect::<Vec<_>>(), [10, 2, 0]);
    for (e, want) in enterprises.iter().zip(&expect) {
        assert_eq!(&consents(&store, e), want, "{e}");
        // Each is a consent of that enterprise.
        for i in want {
            let leaf = model.leaf(*i).unwrap().unwrap();
            assert!(matches!(&leaf.attestation.body.claim, Claim::Consent(c) if c.enterprise == *e));
        }
    }

    // Reopened (the staged part rebuilt), then with the index table dropped as in a store
    // written before it existed: opening builds it again.
    drop(store);
    let store = RedbStore::open_with(&path, &genesis, options).unwrap();
    for (e, want) in enterprises.iter().zip(&expect) {
        assert_eq!(&consents(&store, e), want, "reopened: {e}");
    }
    drop(store);
    let db = redb::Database::open(&path).unwrap();
    let w = db.begin_write().unwrap();
    let table: redb::TableDefinition<&[u8; 26], ()> = redb::TableDefinition::new("index_consents");
    assert!(w.delete_table(table).unwrap());
    w.commit().unwrap();
    drop(db);
    let store = RedbStore::open_with(&path, &genesis, options).unwrap();
    for (e, want) in enterprises.iter().zip(&expect) {
        assert_eq!(&consents(&store, e), want, "rebuilt: {e}");
    }
}
