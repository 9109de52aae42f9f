//! The access records' rules (issue 12): grants, consents, query records and their revocation, one code at a time.

use credence_ledger::access::{
    ACCESS_KEY_LIFETIME_MS_MAX, AccessKeyGrant, Consent, FactKind, Purpose, QueryRecord, ReadKind, Scope,
};
use credence_ledger::attestation::{Attestation, AttestationBody, AttestationId, Claim, Revocation};
use credence_ledger::genesis::Genesis;
use credence_ledger::hash::Hash;
use credence_ledger::ids::{MemberName, Uscc};
use credence_ledger::rules::{self, MemState, RecordStatus, Rejection, RuleError, StateView};
use credence_ledger::sig::{PublicKey, SecretKey};

const MEMBERS: [(&str, &str); 3] = [("bank-a", "bank"), ("centre", "service-centre"), ("pboc-sz", "regulator")];
const T0: u64 = 1_700_000_000_000;
const DAY_MS: u64 = 86_400_000;

fn key(name: &str) -> SecretKey {
    SecretKey::from_seed(*Hash::digest(&[name.as_bytes()]).0.first_chunk::<32>().unwrap())
}

fn genesis() -> Genesis {
    let mut t = String::from(
        "chain_id = \"access\"\ncheckpoint_origin = \"credence.example/access\"\ngenesis_time_ms = 1000\n[consensus]\nblock_records_max = 10\nblock_bytes_max = 40960\ntimeout_propose_ms = 1000\ntimeout_prevote_ms = 500\ntimeout_precommit_ms = 500\ntimeout_delta_ms = 250\n",
    );
    for (n, r) in MEMBERS {
        t.push_str(&format!(
            "[[members]]\nname = \"{n}\"\npublic_key = \"{}\"\nroles = [\"{r}\"]\nvalidator = true\n",
            hex::encode(key(n).public().0)
        ));
    }
    Genesis::from_toml(&t).unwrap()
}

fn name(s: &str) -> MemberName {
    MemberName::parse("name", s).unwrap()
}
fn uscc() -> Uscc {
    Uscc::parse("enterprise", "91440300708461136T").unwrap()
}

struct Ledger {
    g: Genesis,
    state: MemState,
    /// Height of the last block applied.
    height: u64,
    time_ms: u64,
}

impl Ledger {
    fn new() -> Ledger {
        Ledger { g: genesis(), state: MemState::default(), height: 0, time_ms: T0 }
    }
    fn submit(&mut self, who: &str, claim: Claim) -> Result<AttestationId, Rejection> {
        let i = self.g.member_index(&name(who)).unwrap();
        let body = AttestationBody {
            attester: name(who),
            sequence: self.state.next_sequence(i).unwrap(),
            issued_at_ms: self.time_ms,
            claim,
        };
        let a: Attestation = body.sign(&key(who), &self.g.hash());
        let id = a.id();
        let time = self.time_ms + 1000;
        let bytes = a.to_bytes().len();
        match rules::apply_block(&self.g, &self.state, self.height + 1, self.time_ms, time, &[(id, &a)], bytes) {
            Ok(delta) => {
                self.state.apply(&delta);
                self.height += 1;
                self.time_ms = time;
                Ok(id)
            }
            Err(RuleError::Record { index: 0, rejection }) => Err(rejection),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    fn status(&self, id: &AttestationId) -> RecordStatus {
        self.state.record(id).unwrap().unwrap().status
    }
}

fn holder_key(n: u8) -> PublicKey {
    SecretKey::from_seed([n; 32]).public()
}

fn grant(scopes: &[Scope], expires_at_ms: u64) -> Claim {
    Claim::AccessKey(AccessKeyGrant {
        holder: "loan-officer-zhang".into(),
        key: holder_key(7),
        scopes: scopes.to_vec(),
        expires_at_ms,
    })
}

fn consent(recipient: &str, expires_at_ms: u64) -> Claim {
    Claim::Consent(Consent {
        enterprise: uscc(),
        recipient: name(recipient),
        purpose: Purpose::LoanApplication,
        scope: vec![FactKind::RdSpend, FactKind::PatentPledge],
        expires_at_ms,
        evidence: Hash([0xab; 32]),
    })
}

fn query(reader: &str, access_key: AttestationId, consent: Option<AttestationId>) -> Claim {
    Claim::Query(QueryRecord {
        reader: name(reader),
        access_key,
        enterprise: uscc(),
        purpose: Purpose::LoanApplication,
        consent,
        read: ReadKind::Facts,
    })
}

#[test]
fn any_member_grants_access_keys_but_only_a_regulator_grants_the_regulator_scope() {
    let mut l = Ledger::new();
    let until = T0 + 30 * DAY_MS;
    assert!(l.submit("bank-a", grant(&[Scope::Member, Scope::Restricted], until)).is_ok());
    assert!(l.submit("centre", grant(&[Scope::Member], until)).is_ok());
    let e = l.submit("bank-a", grant(&[Scope::Regulator], until)).unwrap_err();
    assert_eq!(e.code(), 24, "{e}");
    assert!(l.submit("pboc-sz", grant(&[Scope::Regulator], until)).is_ok());
}

#[test]
fn expiries_must_follow_issuance_within_the_lifetime_bound() {
    let mut l = Ledger::new();
    for bad in [T0, T0 - 1, T0 + ACCESS_KEY_LIFETIME_MS_MAX + 1] {
        let e = l.submit("bank-a", grant(&[Scope::Member], bad)).unwrap_err();
        assert_eq!(e.code(), 25, "{e}");
    }
    assert!(l.submit("bank-a", grant(&[Scope::Member], T0 + ACCESS_KEY_LIFETIME_MS_MAX)).is_ok());
    let e = l.submit("centre", consent("bank-a", T0)).unwrap_err();
    assert_eq!(e.code(), 25, "{e}");
}

#[test]
fn field_rules_of_grants_and_consents() {
    let mut l = Ledger::new();
    let until = T0 + DAY_MS;
    let e = l.submit("bank-a", grant(&[Scope::Restricted, Scope::Member], until)).unwrap_err();
    assert!(matches!(&e, Rejection::Field(f) if f.field == "scopes"), "{e}");
    let e = l.submit("bank-a", grant(&[], until)).unwrap_err();
    assert!(matches!(&e, Rejection::Field(f) if f.field == "scopes"), "{e}");
    let mut g = grant(&[Scope::Member], until);
    if let Claim::AccessKey(g) = &mut g {
        g.holder = "line\nbreak".into();
    }
    let e = l.submit("bank-a", g).unwrap_err();
    assert!(matches!(&e, Rejection::Field(f) if f.field == "holder"), "{e}");
    let mut g = grant(&[Scope::Member], until);
    if let Claim::AccessKey(g) = &mut g {
        g.key = PublicKey([0; 32]); // small order
    }
    let e = l.submit("bank-a", g).unwrap_err();
    assert!(matches!(&e, Rejection::Field(f) if f.field == "key"), "{e}");
    let mut c = consent("bank-a", until);
    if let Claim::Consent(c) = &mut c {
        c.purpose = Purpose::Supervision;
    }
    let e = l.submit("bank-a", c).unwrap_err();
    assert!(matches!(&e, Rejection::Field(f) if f.field == "purpose"), "{e}");
    let e = l.submit("bank-a", consent("bank-zz", until)).unwrap_err();
    assert_eq!(e.code(), 26, "{e}");
}

#[test]
fn query_records_reference_the_readers_grant_and_a_consent() {
    let mut l = Ledger::new();
    let until = T0 + DAY_MS;
    let k = l.submit("bank-a", grant(&[Scope::Member, Scope::Restricted], until)).unwrap();
    let other = l.submit("centre", grant(&[Scope::Member], until)).unwrap();
    let c = l.submit("centre", consent("bank-a", until)).unwrap();
    // Logged by the serving node (here the centre's) for bank-a's reader.
    assert!(l.submit("centre", query("bank-a", k, Some(c))).is_ok());
    assert_eq!(l.submit("bank-a", query("bank-zz", k, Some(c))).unwrap_err().code(), 26);
    assert_eq!(l.submit("bank-a", query("bank-a", other, Some(c))).unwrap_err().code(), 27);
    assert_eq!(l.submit("bank-a", query("bank-a", c, Some(c))).unwrap_err().code(), 27);
    assert_eq!(l.submit("bank-a", query("bank-a", k, Some(k))).unwrap_err().code(), 28);
    assert_eq!(l.submit("bank-a", query("bank-a", k, None)).unwrap_err().code(), 29);
    let r = l.submit("pboc-sz", grant(&[Scope::Regulator], until)).unwrap();
    assert!(l.submit("pboc-sz", query("pboc-sz", r, None)).is_ok());
}

#[test]
fn a_revoked_consent_still_lets_the_read_it_allowed_be_logged() {
    let mut l = Ledger::new();
    let until = T0 + DAY_MS;
    let k = l.submit("bank-a", grant(&[Scope::Restricted], until)).unwrap();
    let c = l.submit("centre", consent("bank-a", until)).unwrap();
    l.submit("centre", Claim::Revocation(Revocation { target: c, superseded_by: None })).unwrap();
    assert_eq!(l.status(&c), RecordStatus::Revoked);
    assert!(l.submit("bank-a", query("bank-a", k, Some(c))).is_ok());
}

#[test]
fn grants_and_consents_are_revoked_by_their_attester_and_query_records_never() {
    let mut l = Ledger::new();
    let until = T0 + DAY_MS;
    let k = l.submit("bank-a", grant(&[Scope::Restricted], until)).unwrap();
    let c = l.submit("centre", consent("bank-a", until)).unwrap();
    let q = l.submit("bank-a", query("bank-a", k, Some(c))).unwrap();
    let revoke = |target| Claim::Revocation(Revocation { target, superseded_by: None });
    assert_eq!(l.submit("centre", revoke(k)).unwrap_err().code(), 15);
    l.submit("bank-a", revoke(k)).unwrap();
    assert_eq!(l.status(&k), RecordStatus::Revoked);
    assert_eq!(l.submit("bank-a", revoke(k)).unwrap_err().code(), 16);
    l.submit("centre", revoke(c)).unwrap();
    assert_eq!(l.status(&c), RecordStatus::Revoked);
    assert_eq!(l.submit("bank-a", revoke(q)).unwrap_err().code(), 17);
}

#[test]
fn access_rejection_codes_are_stable() {
    let id = AttestationId::from_hash(Hash::ZERO);
    let all = [
        (24, Rejection::RegulatorScopeNotPermitted(String::new())),
        (25, Rejection::BadExpiry { expires_at_ms: 0, issued_at_ms: 0, lifetime_max_ms: 0 }),
        (26, Rejection::NotAMember { field: "reader", name: String::new() }),
        (27, Rejection::NotReadersKey(id)),
        (28, Rejection::NotAConsent(id)),
        (29, Rejection::ConsentRequired(String::new())),
    ];
    for (code, r) in all {
        assert_eq!(r.code(), code);
        assert!(r.to_string().starts_with(&format!("R{code:03} ")), "{r}");
    }
}
