//! The ledger rules, one rejection code at a time, applied as the pure function `apply_block` over an in-memory state.

use credence_ledger::attestation::{
    Attestation, AttestationBody, AttestationId, Claim, PatentPledge, PatentValuation, PledgeRelease, RdCategory,
    RdSpend, Revocation, ValuationMethod,
};
use credence_ledger::genesis::Genesis;
use credence_ledger::hash::Hash;
use credence_ledger::ids::{Currency, Date, MemberName, Money, PatentNumber, Period, Uscc};
use credence_ledger::rules::{self, MemState, RecordStatus, Rejection, RuleError};
use credence_ledger::sig::SecretKey;

const MEMBERS: [(&str, &str); 4] =
    [("bank-a", "bank"), ("bank-b", "bank"), ("centre", "service-centre"), ("appraiser", "appraiser")];

fn key(name: &str) -> SecretKey {
    SecretKey::from_seed(*credence_ledger::hash::Hash::digest(&[name.as_bytes()]).0.first_chunk::<32>().unwrap())
}

fn genesis() -> Genesis {
    let mut t = String::from(
        "chain_id = \"rules\"\ncheckpoint_origin = \"credence.example/rules\"\ngenesis_time_ms = 1000\n[consensus]\nblock_records_max = 3\nblock_bytes_max = 4096\ntimeout_propose_ms = 1000\ntimeout_prevote_ms = 500\ntimeout_precommit_ms = 500\ntimeout_delta_ms = 250\n",
    );
    for (n, r) in MEMBERS {
        t.push_str(&format!(
            "[[members]]\nname = \"{n}\"\npublic_key = \"{}\"\nroles = [\"{r}\"]\nvalidator = true\n",
            hex::encode(key(n).public().0)
        ));
    }
    Genesis::from_toml(&t).unwrap()
}

/// A ledger under test: genesis, state and the next sequence per member.
struct Ledger {
    g: Genesis,
    state: MemState,
    time_ms: u64,
    height: u64,
}

fn uscc() -> Uscc {
    Uscc::parse("enterprise", "91440300708461136T").unwrap()
}
fn patent() -> PatentNumber {
    PatentNumber::parse("patent", "CN200310102344.5").unwrap()
}
fn cny(fen: u64) -> Money {
    Money { fen, currency: Currency::CNY }
}
fn date(s: &str) -> Date {
    Date::parse("date", s).unwrap()
}

fn rd() -> Claim {
    Claim::RdSpend(RdSpend {
        enterprise: uscc(),
        period: Period::parse("period", "2024").unwrap(),
        amount: cny(100).into(),
        category: RdCategory::Total,
        evidence: Hash::ZERO,
    })
}
fn valuation() -> Claim {
    Claim::PatentValuation(PatentValuation {
        patent: patent(),
        owner: uscc(),
        value: cny(1000).into(),
        method: ValuationMethod::Market,
        valuation_date: date("2024-01-01"),
        valid_until: date("2024-12-31"),
        evidence: Hash::ZERO,
    })
}
fn pledge(pledgee: &str) -> Claim {
    Claim::PatentPledge(PatentPledge {
        patent: patent(),
        pledgor: uscc(),
        pledgee: MemberName::parse("pledgee", pledgee).unwrap(),
        secured: cny(500).into(),
        start: date("2024-02-01"),
        term_months: 12,
        evidence: Hash::ZERO,
    })
}
fn release(pledge: AttestationId) -> Claim {
    Claim::PledgeRelease(PledgeRelease { pledge })
}
fn revoke(target: AttestationId, superseded_by: Option<AttestationId>) -> Claim {
    Claim::Revocation(Revocation { target, superseded_by })
}

impl Ledger {
    fn new() -> Ledger {
        Ledger { g: genesis(), state: MemState::default(), time_ms: 1000, height: 0 }
    }

    fn make(&self, who: &str, sequence: u64, claim: Claim) -> Attestation {
        let body = AttestationBody {
            attester: MemberName::parse("attester", who).unwrap(),
            sequence,
            issued_at_ms: self.time_ms,
            claim,
        };
        body.sign(&key(who), &self.g.hash())
    }

    /// Applies a block of `records`; on success commits its delta.
    fn block(&mut self, records: &[Attestation]) -> Result<(), RuleError<std::convert::Infallible>> {
        let with_ids: Vec<_> = records.iter().map(|a| (a.id(), a)).collect();
        let bytes = records.iter().map(|a| a.to_bytes().len()).sum();
        let time = self.time_ms + 1000;
        let height = self.height + 1;
        let delta = rules::apply_block(&self.g, &self.state, height, self.time_ms, time, &with_ids, bytes)?;
        self.state.apply(&delta);
        self.time_ms = time;
        self.height = height;
        Ok(())
    }

    fn next(&self, who: &str) -> u64 {
        let i = self.g.member_index(&MemberName::parse("m", who).unwrap()).unwrap();
        use credence_ledger::rules::StateView;
        self.state.next_sequence(i).unwrap()
    }

    /// Submits one record by `who` with the right sequence.
    fn submit(&mut self, who: &str, claim: Claim) -> Result<AttestationId, Rejection> {
        let a = self.make(who, self.next(who), claim);
        let id = a.id();
        match self.block(&[a]) {
            Ok(()) => Ok(id),
            Err(RuleError::Record { index: 0, rejection }) => Err(rejection),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
}

fn code(r: Result<AttestationId, Rejection>) -> u16 {
    r.expect_err("expected a rejection").code()
}

#[test]
fn roles_govern_kinds() {
    let mut l = Ledger::new();
    assert!(l.submit("centre", rd()).is_ok());
    assert!(l.submit("appraiser", valuation()).is_ok());
    assert!(l.submit("bank-a", pledge("bank-a")).is_ok());
    assert_eq!(code(l.submit("bank-a", rd())), 2);
    assert_eq!(code(l.submit("centre", valuation())), 2);
    assert_eq!(code(l.submit("appraiser", pledge("bank-a"))), 2);
    let e = l.submit("bank-a", rd()).unwrap_err();
    assert_eq!(e.to_string(), "R002 attester: 'bank-a' has no role that allows attesting rd-spend");
}

#[test]
fn unknown_attesters_are_refused() {
    let mut l = Ledger::new();
    let stranger = AttestationBody {
        attester: MemberName::parse("a", "stranger").unwrap(),
        sequence: 1,
        issued_at_ms: 1000,
        claim: rd(),
    }
    .sign(&key("stranger"), &l.g.hash());
    let e = l.block(&[stranger]).unwrap_err();
    assert!(matches!(e, RuleError::Record { index: 0, rejection: Rejection::UnknownAttester(_) }), "{e}");
}

#[test]
fn sequences_have_no_replays_and_no_gaps() {
    let mut l = Ledger::new();
    let first = l.make("centre", 1, rd());
    l.block(std::slice::from_ref(&first)).unwrap();
    // The same record again: a replay.
    let e = l.block(&[first]).unwrap_err();
    assert!(matches!(e, RuleError::Record { rejection: Rejection::SequenceReplay { expected: 2, got: 1 }, .. }), "{e}");
    // Skipping 2.
    let gap = l.make("centre", 3, rd());
    let e = l.block(&[gap]).unwrap_err();
    assert!(matches!(e, RuleError::Record { rejection: Rejection::SequenceGap { expected: 2, got: 3 }, .. }), "{e}");
    // 2 then 3 in one block is fine; 3 then 2 is not.
    let (two, three) = (l.make("centre", 2, rd()), l.make("centre", 3, rd()));
    assert!(l.block(&[three.clone(), two.clone()]).is_err());
    l.block(&[two, three]).unwrap();
    assert_eq!(l.next("centre"), 4);
}

#[test]
fn one_active_pledge_per_patent_and_only_the_pledgee_releases() {
    let mut l = Ledger::new();
    // A pledge to a non-bank member, or to a non-member.
    assert_eq!(code(l.submit("bank-b", pledge("centre"))), 9);
    assert_eq!(code(l.submit("bank-b", pledge("nobody"))), 9);
    let p = l.submit("bank-a", pledge("bank-a")).unwrap();
    let e = l.submit("bank-b", pledge("bank-b")).unwrap_err();
    assert_eq!(e.code(), 8, "{e}");
    // Only bank-a may release.
    assert_eq!(code(l.submit("bank-b", release(p))), 12);
    let v = l.submit("appraiser", valuation()).unwrap();
    assert_eq!(code(l.submit("bank-a", release(v))), 11);
    assert_eq!(code(l.submit("bank-a", release(AttestationId::from_hash(Hash([9; 32]))))), 10);
    l.submit("bank-a", release(p)).unwrap();
    assert_eq!(l.state.records[&p].status, RecordStatus::Released);
    assert_eq!(code(l.submit("bank-a", release(p))), 13);
    // Released: the patent may be pledged again, to another bank.
    l.submit("bank-b", pledge("bank-b")).unwrap();
}

#[test]
fn pledge_and_release_in_one_block() {
    let mut l = Ledger::new();
    let p = l.make("bank-a", 1, pledge("bank-a"));
    let r = l.make("bank-a", 2, release(p.id()));
    let again = l.make("bank-b", 1, pledge("bank-b"));
    l.block(&[p, r, again]).unwrap();
}

#[test]
fn only_the_original_attester_revokes() {
    let mut l = Ledger::new();
    let a = l.submit("centre", rd()).unwrap();
    assert_eq!(code(l.submit("appraiser", revoke(a, None))), 15);
    assert_eq!(code(l.submit("centre", revoke(AttestationId::from_hash(Hash([7; 32])), None))), 14);
    l.submit("centre", revoke(a, None)).unwrap();
    assert_eq!(code(l.submit("centre", revoke(a, None))), 16);
    // A revocation cannot itself be revoked.
    let b = l.submit("centre", rd()).unwrap();
    let rv = l.submit("centre", revoke(b, None)).unwrap();
    assert_eq!(code(l.submit("centre", revoke(rv, None))), 17);
}

#[test]
fn revoking_a_pledge_frees_the_patent() {
    let mut l = Ledger::new();
    let p = l.submit("bank-a", pledge("bank-a")).unwrap();
    l.submit("bank-a", revoke(p, None)).unwrap();
    assert_eq!(code(l.submit("bank-a", release(p))), 13);
    l.submit("bank-b", pledge("bank-b")).unwrap();
}

#[test]
fn supersession_needs_an_active_record_of_the_same_kind_by_the_same_attester() {
    let mut l = Ledger::new();
    let old = l.submit("appraiser", valuation()).unwrap();
    let other_kind = l.submit("centre", rd()).unwrap();
    let new = l.submit("appraiser", valuation()).unwrap();
    assert_eq!(code(l.submit("appraiser", revoke(old, Some(other_kind)))), 18);
    assert_eq!(code(l.submit("appraiser", revoke(old, Some(AttestationId::from_hash(Hash([5; 32])))))), 18);
    assert_eq!(code(l.submit("appraiser", revoke(old, Some(old)))), 7, "self-supersession is a field error");
    l.submit("appraiser", revoke(old, Some(new))).unwrap();
}

#[test]
fn field_rules_and_time() {
    let mut l = Ledger::new();
    let mut bad = valuation();
    if let Claim::PatentValuation(v) = &mut bad {
        v.valid_until = date("2023-12-31");
    }
    let e = l.submit("appraiser", bad).unwrap_err();
    assert_eq!(e.to_string(), "R007 valid_until: must not be before valuation_date");
    // Issued more than a minute after the block time.
    let mut future = l.make("centre", 1, rd());
    future.body.issued_at_ms = l.time_ms + 1000 + rules::ISSUED_AT_SKEW_MS + 1;
    let e = l.block(&[future]).unwrap_err();
    assert!(matches!(e, RuleError::Record { rejection: Rejection::IssuedInFuture { .. }, .. }), "{e}");
    // Block time must increase.
    let a = l.make("centre", 1, rd());
    let e = rules::apply_block(&l.g, &l.state, 1, 5000, 5000, &[(a.id(), &a)], 100).unwrap_err();
    assert!(matches!(e, RuleError::Block(Rejection::BlockTimeNotIncreasing { .. })), "{e}");
}

#[test]
fn block_limits() {
    let l = Ledger::new();
    let recs: Vec<_> = (1..=4).map(|s| l.make("centre", s, rd())).collect();
    let ids: Vec<_> = recs.iter().map(|a| (a.id(), a)).collect();
    let e = rules::apply_block(&l.g, &l.state, 1, 0, 2000, &ids, 100).unwrap_err();
    assert!(matches!(e, RuleError::Block(Rejection::TooManyRecords { count: 4, max: 3 })), "{e}");
    let e = rules::apply_block(&l.g, &l.state, 1, 0, 2000, &ids[..1], 5000).unwrap_err();
    assert!(matches!(e, RuleError::Block(Rejection::TooManyBytes { bytes: 5000, max: 4096 })), "{e}");
}

#[test]
fn a_rejected_block_changes_nothing() {
    let mut l = Ledger::new();
    let before = l.state.clone();
    let good = l.make("centre", 1, rd());
    let bad = l.make("centre", 3, rd());
    assert!(l.block(&[good, bad]).is_err());
    assert_eq!(l.state, before);
}

#[test]
fn rejection_codes_are_stable() {
    let id = AttestationId::from_hash(Hash::ZERO);
    let all = [
        Rejection::UnknownAttester(String::new()),
        Rejection::RoleNotPermitted { attester: String::new(), kind: "" },
        Rejection::SequenceReplay { expected: 0, got: 0 },
        Rejection::SequenceGap { expected: 0, got: 0 },
        Rejection::Duplicate(id),
        Rejection::IssuedInFuture { issued_at_ms: 0, block_time_ms: 0 },
        Rejection::Field(credence_ledger::attestation::FieldError { field: "f", rule: String::new() }),
        Rejection::PatentAlreadyPledged { patent: String::new(), active: id },
        Rejection::PledgeeNotBank(String::new()),
        Rejection::ReleaseTargetUnknown(id),
        Rejection::ReleaseTargetNotPledge(id),
        Rejection::ReleaseByNonPledgee { pledgee: String::new(), pledge: id },
        Rejection::PledgeNotActive(id),
        Rejection::RevokeTargetUnknown(id),
        Rejection::RevokeByNonAttester(id),
        Rejection::AlreadyInactive(id),
        Rejection::NotRevocable { id, kind: "" },
        Rejection::BadSupersession(id),
        Rejection::BlockTimeNotIncreasing { time_ms: 0, prev_ms: 0 },
        Rejection::TooManyRecords { count: 0, max: 0 },
        Rejection::TooManyBytes { bytes: 0, max: 0 },
        Rejection::BadSignature(String::new()),
    ];
    for (i, r) in all.iter().enumerate() {
        assert_eq!(usize::from(r.code()), i + 1);
        assert!(r.to_string().starts_with(&format!("R{:03} ", i + 1)), "{r}");
    }
}
