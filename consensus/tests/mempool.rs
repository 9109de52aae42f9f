//! Mempool tests: admission checks, dedupe, bounds, held sequences, take() order against the ledger rules, and eviction on commit.

use std::sync::Arc;

use credence_consensus::compact::CLIENT_RECORD_SHARED_AFTER_MS;
use credence_consensus::mempool::{AdmitError, InForce, Mempool, MempoolLimits, Origin, Verifier, admit_batch};
use credence_ledger::attestation::{
    AttestationBody, AttestationId, Claim, PatentPledge, PledgeRelease, RdCategory, RdSpend,
};
use credence_ledger::block::{Block, BlockHeader, CertifiedBlock, Leaf, ValidBlock};
use credence_ledger::demo::{self, ChainBuilder, DemoRng, EXAMPLE_GENESIS_TIME_MS};
use credence_ledger::hash::Hash;
use credence_ledger::ids::{Currency, Date, Money, PatentNumber, Period, Uscc};
use credence_ledger::merkle::Frontier;
use credence_ledger::rules::{self, StateView};
use credence_ledger::store::{MemStore, Store};
use credence_ledger::verify::{self, ChainContext, Tip};

const NOW: u64 = EXAMPLE_GENESIS_TIME_MS + 30 * 24 * 3600 * 1000;

/// A committed demo chain in a store, and the means to sign and commit more.
struct Fixture {
    builder: ChainBuilder,
    ctx: Arc<ChainContext>,
    store: MemStore,
    tip: Tip,
    verifier: Verifier,
}

impl Fixture {
    fn new() -> Fixture {
        let mut builder = ChainBuilder::new(7, EXAMPLE_GENESIS_TIME_MS).expect("demo chain");
        let mut store = MemStore::new(builder.genesis());
        for _ in 0..3 {
            let vb = builder.next_block(20).expect("demo block");
            store.commit(&vb).expect("commit");
        }
        let ctx = Arc::new(ChainContext::new(builder.genesis().clone()));
        let tip = builder.tip().clone();
        let verifier = Verifier::new(ctx.clone(), InForce::new(&ctx));
        Fixture { builder, ctx, store, tip, verifier }
    }

    fn pool(&self, limits: MempoolLimits) -> Mempool {
        Mempool::new(self.ctx.clone(), limits)
    }

    fn index(&self, name: &str) -> u16 {
        let name = name.parse_member();
        self.ctx.genesis.member_index(&name).expect("member")
    }

    fn next(&self, name: &str) -> u64 {
        self.store.next_sequence(self.index(name)).expect("state")
    }

    /// The canonical bytes of `claim` signed by member `name` with `sequence`.
    fn sign(&self, name: &str, sequence: u64, claim: Claim) -> Vec<u8> {
        let i = usize::from(self.index(name));
        let body = AttestationBody { attester: name.parse_member(), sequence, issued_at_ms: NOW - 1000, claim };
        body.sign(&self.builder.keys()[i], &self.ctx.chain_id).to_bytes()
    }

    fn admit(&self, pool: &mut Mempool, bytes: Vec<u8>) -> Result<credence_consensus::mempool::Admitted, AdmitError> {
        let v = self.verifier.verify(bytes)?;
        pool.admit(&self.store, v, Origin::Client, NOW)
    }

    /// Certifies, verifies and commits a block of `leaves` on top of the store.
    fn commit(&mut self, leaves: Vec<Leaf>) -> ValidBlock {
        let mut frontier: Frontier = self.tip.frontier.clone();
        let mut scratch = Vec::new();
        for l in &leaves {
            frontier.push_leaf_hash(l.leaf_hash(), &mut scratch).expect("tree");
        }
        let proposer = self.ctx.genesis.validators().next().expect("validator").name.clone();
        let header = BlockHeader {
            height: self.tip.height + 1,
            prev: self.tip.hash,
            time_ms: NOW.max(self.tip.time_ms + 1),
            proposer,
            tree_size: frontier.size(),
            tree_root: Hash(frontier.root()),
            validator_set: self.ctx.genesis_roster().validator_set_hash,
        };
        let certificate = self.builder.certify(&header);
        let cb = CertifiedBlock { block: Block { header, leaves }, certificate };
        let vb = verify::verify_block(&self.ctx, &self.tip, &self.store, cb).expect("valid block");
        self.store.commit(&vb).expect("commit");
        self.tip.advance(&vb);
        vb
    }
}

trait ParseMember {
    fn parse_member(&self) -> credence_ledger::ids::MemberName;
}

impl ParseMember for str {
    fn parse_member(&self) -> credence_ledger::ids::MemberName {
        credence_ledger::ids::MemberName::parse("attester", self).expect("member name")
    }
}

const CENTRE: &str = "sz-tech-finance-centre";
const CENTRE2: &str = "hz-tech-finance-centre";
const BANK_A: &str = "bank-icbc-sz";
const BANK_B: &str = "bank-ccb-hz";

fn rd(n: u64) -> Claim {
    Claim::RdSpend(RdSpend {
        enterprise: Uscc::parse("enterprise", demo::REAL_USCCS[0]).expect("uscc"),
        period: Period::new("period", 2024, 3).expect("period"),
        amount: Money { fen: 100_000 + n, currency: Currency::CNY }.into(),
        category: RdCategory::Personnel,
        evidence: Hash([n as u8; 32]),
    })
}

/// Patents nobody in the demo chain pledged.
fn free_patents(f: &Fixture, n: usize) -> Vec<PatentNumber> {
    demo::patents(&mut DemoRng::new(424242), 50)
        .into_iter()
        .filter(|p| f.store.active_pledge(p).expect("state").is_none())
        .take(n)
        .collect()
}

fn pledge(patent: PatentNumber, pledgee: &str) -> Claim {
    Claim::PatentPledge(PatentPledge {
        patent,
        pledgor: Uscc::parse("pledgor", demo::REAL_USCCS[1]).expect("uscc"),
        pledgee: pledgee.parse_member(),
        secured: Money { fen: 500_000_000, currency: Currency::CNY }.into(),
        start: Date::new("start", 2025, 2, 1).expect("date"),
        term_months: 24,
        evidence: Hash([9; 32]),
    })
}

fn release(pledge: AttestationId) -> Claim {
    Claim::PledgeRelease(PledgeRelease { pledge })
}

fn id_of(bytes: &[u8]) -> AttestationId {
    Leaf::from_bytes(bytes.to_vec()).expect("leaf").id
}

fn code(r: Result<credence_consensus::mempool::Admitted, AdmitError>) -> (String, &'static str) {
    let e = r.expect_err("must be refused");
    (e.code(), e.field())
}

#[test]
fn admits_once_and_dedupes_by_id() {
    let f = Fixture::new();
    let mut pool = f.pool(MempoolLimits::default());
    let n = f.next(CENTRE);
    let a = f.sign(CENTRE, n, rd(1));
    let admitted = f.admit(&mut pool, a.clone()).expect("admitted");
    assert_eq!(admitted.held_for, None);
    assert_eq!(pool.len(), 1);
    assert_eq!(pool.next_sequence(&f.store, f.index(CENTRE)).expect("state"), n + 1);
    let e = f.admit(&mut pool, a).expect_err("duplicate");
    assert!(matches!(e, AdmitError::Duplicate(_)), "{e:?}");
    assert_eq!((e.code().as_str(), e.field()), ("duplicate", "attestation"));
    assert_eq!(pool.len(), 1);
}

#[test]
fn full_by_count_and_by_bytes() {
    let f = Fixture::new();
    let n = f.next(CENTRE);
    let records: Vec<Vec<u8>> = (0..4).map(|i| f.sign(CENTRE, n + i, rd(i))).collect();

    // The global bounds alone: no shares reserved.
    let no_shares = MempoolLimits { reserved_percent: 0, ..MempoolLimits::default() };
    let mut pool = f.pool(MempoolLimits { records_max: 3, ..no_shares });
    for r in &records[..3] {
        f.admit(&mut pool, r.clone()).expect("room");
    }
    let e = f.admit(&mut pool, records[3].clone()).expect_err("full");
    assert_eq!(e, AdmitError::Full { what: "records", limit: 3 });
    assert_eq!(e.code(), "mempool_full");
    assert!(e.to_string().contains("mempool full"), "{e}");

    let two = records[0].len() + records[1].len();
    let mut pool = f.pool(MempoolLimits { bytes_max: two + records[2].len() - 1, ..no_shares });
    f.admit(&mut pool, records[0].clone()).expect("room");
    f.admit(&mut pool, records[1].clone()).expect("room");
    let e = f.admit(&mut pool, records[2].clone()).expect_err("full");
    assert!(matches!(e, AdmitError::Full { what: "bytes", .. }), "{e:?}");
    assert_eq!(pool.stats().bytes, two);
}

#[test]
fn held_sequences_are_promoted_when_the_gap_fills() {
    let f = Fixture::new();
    let mut pool = f.pool(MempoolLimits::default());
    let who = f.index(CENTRE);
    let n = f.next(CENTRE);
    let [a, b, c] = [0, 1, 2].map(|i| f.sign(CENTRE, n + i, rd(10 + i)));
    assert_eq!(f.admit(&mut pool, c.clone()).expect("held").held_for, Some(n));
    assert_eq!(f.admit(&mut pool, b.clone()).expect("held").held_for, Some(n));
    assert_eq!(pool.stats().held, 2);
    assert_eq!(pool.held_sequences(who), vec![n + 1, n + 2]);
    assert_eq!(pool.next_sequence(&f.store, who).expect("state"), n);
    assert!(pool.take(100, 1 << 20).is_empty(), "held records are not proposed");
    // Another attestation for a held sequence is refused.
    let other = f.sign(CENTRE, n + 2, rd(99));
    assert_eq!(code(f.admit(&mut pool, other)), ("sequence_taken".to_string(), "sequence"));

    let admitted = f.admit(&mut pool, a.clone()).expect("fills the gap");
    assert_eq!(admitted.promoted, vec![id_of(&b), id_of(&c)]);
    assert_eq!(pool.stats().held, 0);
    assert_eq!(pool.next_sequence(&f.store, who).expect("state"), n + 3);
    let taken: Vec<AttestationId> = pool.take(100, 1 << 20).iter().map(|l| l.id).collect();
    assert_eq!(taken, vec![id_of(&a), id_of(&b), id_of(&c)]);
}

#[test]
fn too_far_ahead_is_refused() {
    let f = Fixture::new();
    let mut pool = f.pool(MempoolLimits { ahead_max: 8, ..MempoolLimits::default() });
    let n = f.next(CENTRE);
    f.admit(&mut pool, f.sign(CENTRE, n + 8, rd(1))).expect("8 ahead is held");
    let e = f.admit(&mut pool, f.sign(CENTRE, n + 9, rd(2))).expect_err("too far");
    assert_eq!(e, AdmitError::TooFarAhead { expected: n, got: n + 9, ahead_max: 8 });
    assert_eq!((e.code().as_str(), e.field()), ("R004", "sequence"));
    assert!(e.rule().contains("more than 8 ahead"), "{}", e.rule());
}

#[test]
fn bad_signature_unknown_signer_and_role() {
    let f = Fixture::new();
    let mut pool = f.pool(MempoolLimits::default());
    let n = f.next(CENTRE);
    let mut bad = f.sign(CENTRE, n, rd(1));
    let last = bad.len() - 40;
    bad[last] ^= 1;
    assert_eq!(code(f.admit(&mut pool, bad)), ("R022".to_string(), "signature"));

    // A well-formed name that is not a member, signed by a member's key.
    let body = AttestationBody { attester: "bank-nobody".parse_member(), sequence: 1, issued_at_ms: NOW, claim: rd(2) };
    let stranger = body.sign(&f.builder.keys()[0], &f.ctx.chain_id).to_bytes();
    let e = f.verifier.verify(stranger).expect_err("unknown signer");
    assert_eq!((e.code().as_str(), e.field()), ("R001", "attester"));

    // A member signing for another member.
    let i = usize::from(f.index(BANK_A));
    let body = AttestationBody { attester: CENTRE.parse_member(), sequence: n, issued_at_ms: NOW, claim: rd(3) };
    let forged = body.sign(&f.builder.keys()[i], &f.ctx.chain_id).to_bytes();
    assert_eq!(code(f.admit(&mut pool, forged)), ("R022".to_string(), "signature"));

    // A service centre may not pledge (checked for held records too).
    let patent = free_patents(&f, 1)[0];
    let wrong_role = f.sign(CENTRE, n, pledge(patent, BANK_A));
    assert_eq!(code(f.admit(&mut pool, wrong_role)), ("R002".to_string(), "attester"));
    let wrong_role_held = f.sign(CENTRE, n + 3, pledge(patent, BANK_A));
    assert_eq!(code(f.admit(&mut pool, wrong_role_held)), ("R002".to_string(), "attester"));

    // Not an attestation at all.
    let e = f.verifier.verify(vec![1, 2, 3]).expect_err("garbage");
    assert_eq!((e.code().as_str(), e.field()), ("malformed", "attestation"));
    assert!(pool.is_empty());
}

#[test]
fn replay_of_a_committed_record_is_refused() {
    let f = Fixture::new();
    let mut pool = f.pool(MempoolLimits::default());
    let committed = f.store.leaf(5).expect("store").expect("leaf");
    let e = f.admit(&mut pool, committed.bytes.clone()).expect_err("replay");
    assert_eq!((e.code().as_str(), e.field()), ("R003", "sequence"));
    assert!(pool.is_empty());
}

#[test]
fn pending_pledges_conflict_and_only_the_pledgee_releases() {
    let f = Fixture::new();
    let mut pool = f.pool(MempoolLimits::default());
    let patent = free_patents(&f, 1)[0];
    let (na, nb) = (f.next(BANK_A), f.next(BANK_B));
    let p = f.sign(BANK_A, na, pledge(patent, BANK_A));
    f.admit(&mut pool, p.clone()).expect("first pledge");
    // A second pending pledge on the same patent.
    let e = f.admit(&mut pool, f.sign(BANK_B, nb, pledge(patent, BANK_B))).expect_err("conflict");
    assert_eq!((e.code().as_str(), e.field()), ("R008", "patent"));
    // A release of the pending pledge by a bank that is not its pledgee.
    let e = f.admit(&mut pool, f.sign(BANK_B, nb, release(id_of(&p)))).expect_err("not pledgee");
    assert_eq!((e.code().as_str(), e.field()), ("R012", "attester"));
    // The pledgee may release it while both are pending, and then the patent is free again.
    f.admit(&mut pool, f.sign(BANK_A, na + 1, release(id_of(&p)))).expect("release");
    f.admit(&mut pool, f.sign(BANK_B, nb, pledge(patent, BANK_B))).expect("pledge again");
    assert_eq!(pool.len(), 3);
}

#[test]
fn take_passes_apply_block_and_commit_empties_the_pool() {
    let mut f = Fixture::new();
    let mut pool = f.pool(MempoolLimits::default());
    let patents = free_patents(&f, 2);
    let (nc, nc2, na, nb) = (f.next(CENTRE), f.next(CENTRE2), f.next(BANK_A), f.next(BANK_B));
    let p = f.sign(BANK_A, na, pledge(patents[0], BANK_A));
    let batch = vec![
        f.sign(CENTRE, nc + 1, rd(1)), // held, promoted below
        f.sign(BANK_A, na + 1, release(id_of(&p))),
        f.sign(CENTRE2, nc2, rd(2)),
        p.clone(),
        f.sign(CENTRE, nc, rd(3)),
        f.sign(BANK_B, nb, pledge(patents[1], BANK_B)),
        f.sign(BANK_B, nb + 1, pledge(patents[0], BANK_B)),
    ];
    for b in batch {
        f.admit(&mut pool, b).expect("admitted");
    }
    assert_eq!(pool.stats().held, 0);
    let all = pool.take(1000, 1 << 20);
    assert_eq!(all.len(), 7);
    let genesis = &f.ctx.genesis;
    for n in 0..=all.len() {
        let prefix = &all[..n];
        let records: Vec<_> = prefix.iter().map(|l| (l.id, &l.attestation)).collect();
        let bytes = prefix.iter().map(|l| l.bytes.len()).sum();
        rules::apply_block(genesis, &f.store, f.tip.height + 1, f.tip.time_ms, NOW, &records, bytes)
            .unwrap_or_else(|e| panic!("prefix {n} refused: {e}"));
    }
    assert_eq!(pool.take(3, 1 << 20).len(), 3);
    assert_eq!(pool.take(100, all[0].bytes.len() + all[1].bytes.len()).len(), 2);

    let vb = f.commit(all.clone());
    let outcome = pool.on_commit(&f.store, &vb.certified().block.leaves).expect("state");
    assert_eq!(outcome.removed, 7);
    assert!(outcome.evicted.is_empty());
    assert!(pool.is_empty());
    assert_eq!(pool.stats().bytes, 0);
    assert_eq!(pool.next_sequence(&f.store, f.index(CENTRE)).expect("state"), nc + 2);
}

#[test]
fn on_commit_evicts_what_the_block_made_invalid() {
    let mut f = Fixture::new();
    let mut pool = f.pool(MempoolLimits::default());
    let ps = free_patents(&f, 3);
    let patent = ps[0];
    let (na, nb, nc) = (f.next(BANK_A), f.next(BANK_B), f.next(CENTRE));
    // Pending here: bank A pledges the patent, then attests something else.
    let mine = f.sign(BANK_A, na, pledge(patent, BANK_A));
    let after = f.sign(BANK_A, na + 1, pledge(ps[1], BANK_A));
    let unrelated = f.sign(CENTRE, nc, rd(5));
    for b in [mine.clone(), after.clone(), unrelated.clone()] {
        f.admit(&mut pool, b).expect("admitted");
    }
    // Meanwhile a block from elsewhere pledges the same patent to bank B.
    let theirs = Leaf::from_bytes(f.sign(BANK_B, nb, pledge(patent, BANK_B))).expect("leaf");
    let vb = f.commit(vec![theirs]);
    let outcome = pool.on_commit(&f.store, &vb.certified().block.leaves).expect("state");
    assert_eq!(outcome.removed, 0);
    assert_eq!(outcome.evicted.len(), 1);
    assert_eq!(outcome.evicted[0].0, id_of(&mine));
    assert_eq!(outcome.evicted[0].1.code(), "R008");
    // Bank A's next record waits for a new record with the freed sequence.
    assert_eq!(outcome.demoted, 1);
    assert_eq!(pool.get(&id_of(&after)).map(|p| p.held), Some(true));
    assert_eq!(pool.get(&id_of(&unrelated)).map(|p| p.held), Some(false));
    assert_eq!(pool.next_sequence(&f.store, f.index(BANK_A)).expect("state"), na);
    let replacement = f.sign(BANK_A, na, pledge(ps[2], BANK_A));
    let admitted = f.admit(&mut pool, replacement).expect("fills the gap");
    assert_eq!(admitted.promoted, vec![id_of(&after)]);
    let taken = pool.take(100, 1 << 20);
    assert_eq!(taken.len(), 3);
    let records: Vec<_> = taken.iter().map(|l| (l.id, &l.attestation)).collect();
    let bytes = taken.iter().map(|l| l.bytes.len()).sum();
    rules::apply_block(&f.ctx.genesis, &f.store, f.tip.height + 1, f.tip.time_ms, f.tip.time_ms + 1, &records, bytes)
        .expect("valid");
}

#[test]
fn commits_of_a_prefix_or_of_another_order_keep_the_rest() {
    let mut f = Fixture::new();
    let mut pool = f.pool(MempoolLimits::default());
    let patents = free_patents(&f, 2);
    let (nc, na) = (f.next(CENTRE), f.next(BANK_A));
    let a = f.sign(CENTRE, nc, rd(1));
    let b = f.sign(BANK_A, na, pledge(patents[0], BANK_A));
    let c = f.sign(CENTRE, nc + 1, rd(2));
    let d = f.sign(BANK_A, na + 1, pledge(patents[1], BANK_A));
    for r in [&a, &b, &c, &d] {
        f.admit(&mut pool, r.clone()).expect("admitted");
    }
    // A prefix of the ready order: the rest is kept as is.
    let vb = f.commit(pool.take(1, 1 << 20));
    let out = pool.on_commit(&f.store, &vb.certified().block.leaves).expect("state");
    assert_eq!((out.removed, out.evicted.len(), out.demoted), (1, 0, 0));
    assert_eq!(pool.len(), 3);
    // Another proposer's order: the bank's record only. The rest is re-checked and stays.
    let vb = f.commit(vec![Leaf::from_bytes(b.clone()).expect("leaf")]);
    let out = pool.on_commit(&f.store, &vb.certified().block.leaves).expect("state");
    assert_eq!((out.removed, out.evicted.len(), out.demoted), (1, 0, 0));
    let left: Vec<AttestationId> = pool.take(100, 1 << 20).iter().map(|l| l.id).collect();
    assert_eq!(left, vec![id_of(&c), id_of(&d)]);
    assert_eq!(pool.next_sequence(&f.store, f.index(BANK_A)).expect("state"), na + 2);
    let taken = pool.take(100, 1 << 20);
    let records: Vec<_> = taken.iter().map(|l| (l.id, &l.attestation)).collect();
    let bytes = taken.iter().map(|l| l.bytes.len()).sum();
    rules::apply_block(&f.ctx.genesis, &f.store, f.tip.height + 1, f.tip.time_ms, f.tip.time_ms + 1, &records, bytes)
        .expect("valid");
}

/// A state view that counts its reads (each one a store lookup on a real node).
struct Counting<'a> {
    inner: &'a MemStore,
    reads: std::cell::Cell<usize>,
}

impl StateView for Counting<'_> {
    type Error = <MemStore as StateView>::Error;
    fn next_sequence(&self, attester: u16) -> Result<u64, Self::Error> {
        self.reads.set(self.reads.get() + 1);
        self.inner.next_sequence(attester)
    }
    fn record(&self, id: &AttestationId) -> Result<Option<rules::RecordMeta>, Self::Error> {
        self.reads.set(self.reads.get() + 1);
        self.inner.record(id)
    }
    fn active_pledge(&self, patent: &PatentNumber) -> Result<Option<AttestationId>, Self::Error> {
        self.reads.set(self.reads.get() + 1);
        self.inner.active_pledge(patent)
    }
    fn governance(&self) -> Result<Option<std::sync::Arc<credence_ledger::governance::GovState>>, Self::Error> {
        self.inner.governance()
    }
    fn fact(
        &self,
        key: &credence_ledger::loan_rules::FactKey,
    ) -> Result<Option<credence_ledger::loan_rules::Fact>, Self::Error> {
        self.reads.set(self.reads.get() + 1);
        self.inner.fact(key)
    }
}

/// Admits `per` rd-spend records for each of `who`, interleaved, and returns them by attester.
fn fill_rd(f: &Fixture, pool: &mut Mempool, who: &[&str], per: u64) -> Vec<Vec<Vec<u8>>> {
    let starts: Vec<u64> = who.iter().map(|w| f.next(w)).collect();
    let mut out = vec![Vec::new(); who.len()];
    for i in 0..per {
        for (k, w) in who.iter().enumerate() {
            let r = f.sign(w, starts[k] + i, rd(1000 * k as u64 + i));
            f.admit(pool, r.clone()).expect("admitted");
            out[k].push(r);
        }
    }
    out
}

fn assert_take_applies(f: &Fixture, pool: &Mempool) {
    let taken = pool.take(100_000, 1 << 30);
    let records: Vec<_> = taken.iter().map(|l| (l.id, &l.attestation)).collect();
    let bytes = taken.iter().map(|l| l.bytes.len()).sum();
    rules::apply_block(&f.ctx.genesis, &f.store, f.tip.height + 1, f.tip.time_ms, f.tip.time_ms + 1, &records, bytes)
        .expect("the rest of the pool is a valid block");
}

#[test]
fn another_proposers_simple_block_costs_reads_per_attester_not_per_pending_record() {
    let mut f = Fixture::new();
    let mut pool = f.pool(MempoolLimits::default());
    let by = fill_rd(&f, &mut pool, &[CENTRE, CENTRE2], 300);
    assert_eq!(pool.len(), 600);
    // Another proposer's order: two attesters' first records, not a prefix of ours.
    let block =
        vec![Leaf::from_bytes(by[1][0].clone()).expect("leaf"), Leaf::from_bytes(by[0][0].clone()).expect("leaf")];
    let vb = f.commit(block);
    let view = Counting { inner: &f.store, reads: std::cell::Cell::new(0) };
    let out = pool.on_commit(&view, &vb.certified().block.leaves).expect("state");
    assert_eq!((out.removed, out.evicted.len(), out.demoted), (2, 0, 0));
    assert!(view.reads.get() <= 2, "one read per attester of the block, not per pending record: {}", view.reads.get());
    assert_eq!(pool.len(), 598);
    assert_eq!(pool.next_sequence(&f.store, f.index(CENTRE)).expect("state"), f.next(CENTRE) + 299);
    assert_take_applies(&f, &pool);

    // With a pledge pending, the block's effects can reach other records: everything is re-checked.
    let patent = free_patents(&f, 1)[0];
    f.admit(&mut pool, f.sign(BANK_B, f.next(BANK_B), pledge(patent, BANK_B))).expect("pledge");
    let vb = f.commit(vec![Leaf::from_bytes(by[1][1].clone()).expect("leaf")]);
    let view = Counting { inner: &f.store, reads: std::cell::Cell::new(0) };
    pool.on_commit(&view, &vb.certified().block.leaves).expect("state");
    assert!(view.reads.get() >= pool.len(), "full re-check: {} reads for {}", view.reads.get(), pool.len());
    assert_take_applies(&f, &pool);
}

#[test]
fn another_proposers_record_for_a_pending_sequence_evicts_the_replay_only() {
    let mut f = Fixture::new();
    let mut pool = f.pool(MempoolLimits::default());
    let n = f.next(CENTRE);
    let by = fill_rd(&f, &mut pool, &[CENTRE, CENTRE2], 5);
    // Held records of the attester wait behind the pending ones.
    let held = f.sign(CENTRE, n + 6, rd(77));
    assert!(f.admit(&mut pool, held.clone()).expect("held").held_for.is_some());
    // A block from elsewhere commits a different record at CENTRE's first pending sequence.
    let theirs = Leaf::from_bytes(f.sign(CENTRE, n, rd(555))).expect("leaf");
    let vb = f.commit(vec![theirs]);
    let view = Counting { inner: &f.store, reads: std::cell::Cell::new(0) };
    let out = pool.on_commit(&view, &vb.certified().block.leaves).expect("state");
    assert!(view.reads.get() <= 1, "{} reads", view.reads.get());
    assert_eq!(out.removed, 0);
    assert_eq!(out.evicted.len(), 1);
    assert_eq!(out.evicted[0].0, id_of(&by[0][0]));
    assert_eq!(out.evicted[0].1.code(), "R003");
    assert_eq!(pool.len(), 10);
    assert_eq!(pool.get(&id_of(&held)).map(|p| p.held), Some(true), "still waiting for sequence n + 5");
    // The gap fills and the held record is promoted.
    f.admit(&mut pool, f.sign(CENTRE, n + 5, rd(78))).expect("fills the gap");
    assert_eq!(pool.stats().held, 0);
    assert_take_applies(&f, &pool);
    // Everything of CENTRE committed by another proposer empties its part of the pool.
    let rest: Vec<Leaf> =
        pool.take(100, 1 << 20).into_iter().filter(|l| l.attestation.body.attester.as_str() == CENTRE).collect();
    let vb = f.commit(rest);
    pool.on_commit(&f.store, &vb.certified().block.leaves).expect("state");
    assert_eq!(pool.len(), 5);
    assert_eq!(pool.next_sequence(&f.store, f.index(CENTRE)).expect("state"), n + 7);
    assert_take_applies(&f, &pool);
}

#[test]
fn a_full_pool_refuses_with_mempool_full_until_a_commit_makes_room() {
    let mut f = Fixture::new();
    let mut pool = f.pool(MempoolLimits { records_max: 10, ..MempoolLimits::default() });
    let n = f.next(CENTRE);
    let by = fill_rd(&f, &mut pool, &[CENTRE], 10);
    let next = f.sign(CENTRE, n + 10, rd(99));
    let e = f.admit(&mut pool, next.clone()).expect_err("full");
    assert!(matches!(e, AdmitError::Full { what: "records", limit: 10 }), "{e}");
    assert_eq!(e.code(), "mempool_full");
    assert_eq!(pool.len(), 10, "a full pool evicts nothing to make room");
    // A block of three of them frees three places.
    let block: Vec<Leaf> = by[0][..3].iter().map(|b| Leaf::from_bytes(b.clone()).expect("leaf")).collect();
    let vb = f.commit(block);
    pool.on_commit(&f.store, &vb.certified().block.leaves).expect("state");
    assert_eq!(pool.len(), 7);
    f.admit(&mut pool, next).expect("room again");
}

/// One member's burst cannot fill the pool for everyone: past its reserved share it
/// may use only room no other member has reserved, so another member still gets its
/// whole share admitted; a commit of the burst's records gives it room again.
#[test]
fn a_burst_by_one_member_leaves_every_other_member_its_share() {
    let mut f = Fixture::new();
    let records_max = 200;
    let mut pool = f.pool(MempoolLimits { records_max, ..MempoolLimits::default() });
    let members = f.ctx.genesis.members.len();
    let share = records_max * usize::from(MempoolLimits::default().reserved_percent) / 100 / members;
    assert!(share >= 2, "the fixture gives each of {members} members a share of {share}");

    let n = f.next(CENTRE);
    let mut burst = Vec::new();
    let refusal = loop {
        let r = f.sign(CENTRE, n + burst.len() as u64, rd(burst.len() as u64));
        match f.admit(&mut pool, r.clone()) {
            Ok(_) => burst.push(r),
            Err(e) => break e,
        }
    };
    // Its own share and all the room nobody reserved, not the others' shares.
    assert_eq!(burst.len(), records_max - (members - 1) * share);
    assert!(matches!(&refusal, AdmitError::ShareFull { what: "records", share: s, .. } if *s == share), "{refusal:?}");
    assert_eq!((refusal.code().as_str(), refusal.field()), ("mempool_full", "attestation"));
    assert!(refusal.to_string().contains(CENTRE), "{refusal}");

    // Another member still gets its whole share, then no more.
    let b = f.next(CENTRE2);
    for i in 0..share as u64 {
        f.admit(&mut pool, f.sign(CENTRE2, b + i, rd(500 + i))).expect("within its share");
    }
    let e = f.admit(&mut pool, f.sign(CENTRE2, b + share as u64, rd(999))).expect_err("past its share");
    assert!(matches!(e, AdmitError::ShareFull { .. }), "{e:?}");
    assert!(pool.len() <= records_max);

    // Committing part of the burst makes room for the bursting member again.
    let block: Vec<Leaf> = burst[..10].iter().map(|b| Leaf::from_bytes(b.clone()).expect("leaf")).collect();
    let vb = f.commit(block);
    pool.on_commit(&f.store, &vb.certified().block.leaves).expect("state");
    f.admit(&mut pool, f.sign(CENTRE, n + burst.len() as u64, rd(7777))).expect("room again");
}

/// The one admission path: a batch is checked with one signature batch and admitted
/// in order; records already pending (gossip from another peer, a client retrying)
/// are answered `duplicate` without a second signature check; a forged item is
/// refused and counted as invalid, and the items around it are still admitted.
#[test]
fn admit_batch_checks_each_new_signature_once_and_keeps_input_order() {
    let f = Fixture::new();
    let pool = std::sync::Mutex::new(f.pool(MempoolLimits::default()));
    let n = f.next(CENTRE);
    let items: Vec<Vec<u8>> = (0..4).map(|i| f.sign(CENTRE, n + i, rd(i))).collect();
    let first = admit_batch(&f.verifier, &f.store, &pool, items.clone(), Origin::Client, NOW);
    assert_eq!((first.admitted(), first.verified, first.invalid, first.leaves.len()), (4, 4, 0, 4));
    let again = admit_batch(&f.verifier, &f.store, &pool, items.clone(), Origin::Client, NOW);
    assert_eq!((again.admitted(), again.verified), (0, 0), "nothing checked twice");
    assert!(again.results.iter().all(|r| matches!(r, Err(AdmitError::Duplicate(_)))));
    let mut forged = f.sign(CENTRE, n + 5, rd(5));
    let last = forged.len() - 40;
    forged[last] ^= 1;
    let mixed = vec![f.sign(CENTRE, n + 4, rd(4)), forged, vec![0xff; 3], f.sign(CENTRE, n + 6, rd(6))];
    let out = admit_batch(&f.verifier, &f.store, &pool, mixed, Origin::Client, NOW);
    assert_eq!(out.invalid, 2, "the forged and the malformed item");
    assert!(out.results[0].is_ok() && out.results[1].is_err() && out.results[2].is_err());
    assert_eq!(out.results[3].as_ref().map(|a| a.held_for), Ok(Some(n + 5)), "held behind the refused sequence");
    assert_eq!(pool.lock().unwrap().len(), 6);
}

/// Between the store's commit of another proposer's block and `on_commit`, the pool's pending
/// sequences lag behind the store: a record of that block that arrives then (gossiped late)
/// is refused as a replay, not admitted a second time.
#[test]
fn a_record_committed_before_on_commit_is_refused_as_a_replay() {
    let mut f = Fixture::new();
    let mut pool = f.pool(MempoolLimits::default());
    let n = f.next(CENTRE);
    let by = fill_rd(&f, &mut pool, &[CENTRE], 3);
    let late = f.sign(CENTRE, n + 3, rd(99));
    let mut block: Vec<Leaf> = by[0].iter().map(|b| Leaf::from_bytes(b.clone()).expect("leaf")).collect();
    block.push(Leaf::from_bytes(late.clone()).expect("leaf"));
    let vb = f.commit(block);
    let e = f.admit(&mut pool, late).expect_err("already committed");
    assert!(
        matches!(e, AdmitError::Rule(credence_ledger::rules::Rejection::SequenceReplay { expected, got }) if expected == n + 4 && got == n + 3),
        "{e:?}"
    );
    pool.on_commit(&f.store, &vb.certified().block.leaves).expect("state");
    assert_eq!(pool.len(), 0);
}

/// Admits CENTRE's rd-spend records from sequence `from` until the pool refuses one; returns
/// how many it took and the share the refusal names.
fn burst(f: &Fixture, pool: &mut Mempool, from: u64) -> (Vec<Vec<u8>>, usize) {
    let mut taken = Vec::new();
    loop {
        let r = f.sign(CENTRE, from + taken.len() as u64, rd(7000 + taken.len() as u64));
        match f.admit(pool, r.clone()) {
            Ok(_) => taken.push(r),
            Err(AdmitError::ShareFull { share, .. }) => return (taken, share),
            Err(e) => panic!("unexpected refusal {e:?}"),
        }
    }
}

/// Governance changes who holds a share: a member added gets one and the others' shrink
/// (at once in an empty pool; in a full one only once enough records commit, so the
/// invariant always holds); a removed member's share goes to the others at once.
#[test]
fn shares_follow_the_members_in_force() {
    use credence_ledger::governance::{MemberKey, MemberState, Roster};
    let mut f = Fixture::new();
    // All of the bound reserved, so rounding cannot hide the second newcomer's share.
    let limits = MempoolLimits { records_max: 1000, reserved_percent: 100, ..MempoolLimits::default() };
    let share = |members: usize| 1000 / members;
    let mut pool = f.pool(limits);
    let mut gov = (*f.ctx.genesis.governance()).clone();
    let m = gov.members.len();
    let add = |gov: &mut credence_ledger::governance::GovState, name: &str, seed: u8| {
        let key = MemberKey::Ed25519(credence_ledger::sig::SecretKey::from_seed([seed; 32]).public());
        gov.by_name.insert(name.parse_member(), gov.members.len() as u16);
        gov.members.push(MemberState {
            name: name.parse_member(),
            keys: vec![(5, key)],
            revoked: Vec::new(),
            roles: vec![credence_ledger::genesis::Role::Bank],
            validator: false,
            removed_from: None,
        });
    };

    // An empty pool: the newcomer's share is reserved at once.
    add(&mut gov, "bank-new", 61);
    pool.follow_roster(5, Arc::new(Roster::new(&gov)));
    let start = f.next(CENTRE);
    let (taken, named) = burst(&f, &mut pool, start);
    assert_eq!(named, share(m + 1));
    assert_eq!(taken.len(), 1000 - m * share(m + 1), "its own share and the unreserved room");

    // A full pool: a second newcomer's share would not fit, so the shares wait.
    add(&mut gov, "bank-newer", 62);
    pool.follow_roster(6, Arc::new(Roster::new(&gov)));
    assert!((m + 1) * share(m + 2) > m * share(m + 1), "the new shares would not fit");
    let (more, named) = burst(&f, &mut pool, start + taken.len() as u64);
    assert_eq!((more.len(), named), (0, share(m + 1)), "the old shares still hold");
    // Once CENTRE's records commit, the new shares apply.
    let vb = f.commit(taken.iter().map(|b| Leaf::from_bytes(b.clone()).expect("leaf")).collect());
    pool.on_commit(&f.store, &vb.certified().block.leaves).expect("state");
    let (taken, named) = burst(&f, &mut pool, f.next(CENTRE));
    assert_eq!(named, share(m + 2));
    assert_eq!(taken.len(), 1000 - (m + 1) * share(m + 2));

    // A removal frees its share for the others at once, even in a full pool.
    let gone = f.index(CENTRE2);
    gov.members[usize::from(gone)].removed_from = Some(7);
    pool.follow_roster(7, Arc::new(Roster::new(&gov)));
    let (more, named) = burst(&f, &mut pool, f.next(CENTRE) + taken.len() as u64);
    assert_eq!(named, share(m + 1));
    assert_eq!(taken.len() + more.len(), 1000 - m * share(m + 1));
}

#[test]
fn a_client_record_goes_by_id_once_gossiped_and_never_once_unshared() {
    let f = Fixture::new();
    let mut pool = f.pool(MempoolLimits::default());
    let bytes = f.sign(CENTRE, f.next(CENTRE), rd(1));
    let id = id_of(&bytes);
    f.admit(&mut pool, bytes.clone()).expect("admitted");
    assert_eq!(pool.shared_by(&id, NOW), None, "not before its gossip batch went out");
    let shared = NOW + CLIENT_RECORD_SHARED_AFTER_MS;
    assert_eq!(pool.shared_by(&id, shared), Some(bytes.as_slice()));
    // Its gossip never went out (a full queue, a refused publish): proposals carry it whole.
    let unknown = id_of(&f.sign(BANK_A, f.next(BANK_A), rd(2)));
    pool.unshare([&id, &unknown]);
    assert_eq!(pool.shared_by(&id, shared), None);
    assert_eq!(pool.shared_by(&id, u64::MAX), None, "for good");
    assert!(pool.contains(&id), "still pending");
}
