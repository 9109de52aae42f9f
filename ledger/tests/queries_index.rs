//! The reader index (`IndexKey::Reader`, table `index_queries_by_reader`): the redb store lists each member's query records as the in-memory model does, merged or staged, after reopening, and after the index is rebuilt for a store written before it existed.

use credence_ledger::access::{AccessKeyGrant, Consent, FactKind, Purpose, QueryRecord, ReadKind, Scope};
use credence_ledger::attestation::{AttestationId, Claim};
use credence_ledger::demo::{self, ChainBuilder, DemoRng};
use credence_ledger::hash::Hash;
use credence_ledger::ids::{MemberName, Uscc};
use credence_ledger::sig::SecretKey;
use credence_ledger::store::{IndexKey, MemStore, RedbOptions, RedbStore, Store};

/// Every leaf index of member `m`'s query records, in pages of 3.
fn reads_of(s: &dyn Store, m: u16) -> Vec<u64> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = s.query(IndexKey::Reader(m), after, 3).unwrap();
        out.extend(&page);
        match page.last() {
            Some(&last) if page.len() == 3 => after = Some(last),
            _ => return out,
        }
    }
}

fn name(s: &str) -> MemberName {
    MemberName::parse("member", s).unwrap()
}

/// Commits `vb` to both stores.
fn commit(store: &mut RedbStore, model: &mut MemStore, vb: &credence_ledger::block::ValidBlock) {
    store.commit(vb).unwrap();
    model.commit(vb).unwrap();
}

#[test]
fn query_records_are_indexed_by_reader_merged_staged_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.redb");
    let mut b = ChainBuilder::with_regulator(7, 1_600_000_000_000).unwrap();
    let genesis = b.genesis().clone();
    // Merges every few blocks, so that some query records are merged and the last ones staged.
    let options = RedbOptions { stage_leaves_max: 120, ..RedbOptions::default() };
    let mut store = RedbStore::open_with(&path, &genesis, options).unwrap();
    let mut model = MemStore::new(&genesis);
    let enterprise: Uscc = demo::enterprises(&mut DemoRng::new(3), 1)[0];
    let (icbc, ccb, cmb, regulator) =
        (name("bank-icbc-sz"), name("bank-ccb-hz"), name("bank-cmb-sz"), name(demo::REGULATOR));
    let serving = usize::from(genesis.member_index(&name("sz-tech-finance-centre")).unwrap());
    let index = |m: &MemberName| genesis.member_index(m).unwrap();

    // Each reader's member delegates a key; the two banks get the enterprise's consent.
    let until = b.time_ms() + 30 * 86_400_000;
    let grant = |m: &MemberName, scopes: Vec<Scope>| {
        let key = SecretKey::from_seed(*Hash::digest(&[m.as_str().as_bytes()]).0.first_chunk::<32>().unwrap());
        let g = AccessKeyGrant { holder: format!("{m}-officer"), key: key.public(), scopes, expires_at_ms: until };
        (usize::from(index(m)), Claim::AccessKey(g))
    };
    let consent = |m: &MemberName| {
        let c = Consent {
            enterprise,
            recipient: m.clone(),
            purpose: Purpose::LoanApplication,
            scope: FactKind::ALL.to_vec(),
            expires_at_ms: until,
            evidence: Hash([9; 32]),
        };
        (usize::from(index(m)), Claim::Consent(c))
    };
    let restricted = vec![Scope::Member, Scope::Restricted];
    let vb = b
        .next_block_of(vec![
            grant(&icbc, restricted.clone()),
            grant(&ccb, restricted),
            grant(&regulator, vec![Scope::Regulator]),
            consent(&icbc),
            consent(&ccb),
        ])
        .unwrap();
    let ids: Vec<AttestationId> = vb.certified().block.leaves.iter().map(|l| l.id).collect();
    commit(&mut store, &mut model, &vb);
    let key_of = |m: &MemberName| -> (AttestationId, Option<AttestationId>) {
        match m.as_str() {
            "bank-icbc-sz" => (ids[0], Some(ids[3])),
            "bank-ccb-hz" => (ids[1], Some(ids[4])),
            _ => (ids[2], None),
        }
    };

    // Rounds of bulk records and query records: icbc reads most, the regulator some, ccb
    // once, cmb never (it is still a member of the index's key space, with nothing under it).
    let mut want = std::collections::BTreeMap::<u16, usize>::new();
    for round in 0..8u64 {
        let vb = b.next_block(40).unwrap();
        commit(&mut store, &mut model, &vb);
        let mut readers = vec![&icbc; 1 + round as usize % 3];
        if round % 2 == 1 {
            readers.push(&regulator);
        }
        if round == 5 {
            readers.push(&ccb);
        }
        let claims = readers
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let (access_key, consent) = key_of(m);
                *want.entry(index(m)).or_default() += 1;
                let q = QueryRecord {
                    reader: (*m).clone(),
                    access_key,
                    enterprise,
                    purpose: if consent.is_some() { Purpose::LoanApplication } else { Purpose::Supervision },
                    consent,
                    read: if i == 0 && round == 7 { ReadKind::Block { height: 3 } } else { ReadKind::Facts },
                };
                (serving, Claim::Query(q))
            })
            .collect();
        let vb = b.next_block_of(claims).unwrap();
        commit(&mut store, &mut model, &vb);
    }
    assert_eq!(want.get(&index(&icbc)), Some(&15));
    assert_eq!(want.get(&index(&regulator)), Some(&4));
    assert_eq!(want.get(&index(&ccb)), Some(&1));
    let members: Vec<u16> = (0..genesis.members.len() as u16).collect();
    let expect: Vec<Vec<u64>> = members.iter().map(|m| reads_of(&model, *m)).collect();
    for (m, leaves) in members.iter().zip(&expect) {
        assert_eq!(leaves.len(), want.get(m).copied().unwrap_or(0), "member {m}");
        assert_eq!(&reads_of(&store, *m), leaves, "member {m}");
        // Each is a query record whose reader is that member; the server's own index is untouched.
        for i in leaves {
            let leaf = model.leaf(*i).unwrap().unwrap();
            let Claim::Query(q) = &leaf.attestation.body.claim else { panic!("leaf {i} is not a query record") };
            assert_eq!(genesis.member_index(&q.reader), Some(*m));
        }
    }
    assert!(expect[usize::from(index(&cmb))].is_empty());
    assert!(expect[serving].is_empty(), "the serving node's member read nothing");
    // Paging starts strictly after `after`.
    let icbc_reads = &expect[usize::from(index(&icbc))];
    assert_eq!(store.query(IndexKey::Reader(index(&icbc)), Some(icbc_reads[4]), 2).unwrap(), icbc_reads[5..7]);

    // Reopened (the staged part rebuilt), then with the index table dropped as in a store
    // written before it existed: opening builds it again.
    assert!(store.staged_leaves() > 0, "the test keeps some query records staged");
    drop(store);
    let store = RedbStore::open_with(&path, &genesis, options).unwrap();
    for (m, leaves) in members.iter().zip(&expect) {
        assert_eq!(&reads_of(&store, *m), leaves, "reopened: member {m}");
    }
    drop(store);
    let db = redb::Database::open(&path).unwrap();
    let w = db.begin_write().unwrap();
    let table: redb::TableDefinition<&[u8; 10], ()> = redb::TableDefinition::new("index_queries_by_reader");
    assert!(w.delete_table(table).unwrap());
    w.commit().unwrap();
    drop(db);
    let store = RedbStore::open_with(&path, &genesis, options).unwrap();
    for (m, leaves) in members.iter().zip(&expect) {
        assert_eq!(&reads_of(&store, *m), leaves, "rebuilt: member {m}");
    }
}
