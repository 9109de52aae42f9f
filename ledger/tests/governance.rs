//! Governance through the ledger rules: proposals, approvals, activation two heights after the quorum, key rotation and revocation, and every hostile case refused with its code.

use std::sync::Arc;

use credence_ledger::attestation::{
    Attestation, AttestationBody, AttestationId, Claim, GovernanceApproval, GovernanceProposal, KeyRotation,
    RdCategory, RdSpend,
};
use credence_ledger::genesis::{Genesis, Role};
use credence_ledger::governance::{self, ACTIVATION_DELAY_HEIGHTS, Change, GovState, MemberKey, PROPOSAL_TTL_MS_MAX};
use credence_ledger::hash::Hash;
use credence_ledger::ids::{Currency, MemberName, Money, Period, Uscc};
use credence_ledger::rules::{self, MemState, Rejection, RuleError, StateView};
use credence_ledger::sig::SecretKey;

/// Four validators (v1..v4) and a bank that does not validate.
const MEMBERS: [(&str, &str, bool); 5] = [
    ("bank", "bank", false),
    ("v1", "bank", true),
    ("v2", "service-centre", true),
    ("v3", "appraiser", true),
    ("v4", "bank", true),
];

fn key(name: &str) -> SecretKey {
    SecretKey::from_seed(*Hash::digest(&[b"gov", name.as_bytes()]).0.first_chunk::<32>().unwrap())
}

fn name(s: &str) -> MemberName {
    MemberName::parse("name", s).unwrap()
}

fn genesis() -> Genesis {
    let mut t = String::from(
        "chain_id = \"gov\"\ncheckpoint_origin = \"credence.example/gov\"\ngenesis_time_ms = 1000\n[consensus]\nblock_records_max = 10\nblock_bytes_max = 65536\ntimeout_propose_ms = 1000\ntimeout_prevote_ms = 500\ntimeout_precommit_ms = 500\ntimeout_delta_ms = 250\n",
    );
    for (n, r, v) in MEMBERS {
        t.push_str(&format!(
            "[[members]]\nname = \"{n}\"\npublic_key = \"{}\"\nroles = [\"{r}\"]\nvalidator = {v}\n",
            hex::encode(key(n).public().0)
        ));
    }
    Genesis::from_toml(&t).unwrap()
}

/// A ledger under test: blocks of records applied by the pure rules.
struct Ledger {
    g: Genesis,
    state: MemState,
    time_ms: u64,
    height: u64,
    /// The key each member signs with (changes with rotations).
    keys: std::collections::HashMap<String, SecretKey>,
}

impl Ledger {
    fn new() -> Ledger {
        let keys = MEMBERS.iter().map(|(n, _, _)| (n.to_string(), key(n))).collect();
        Ledger { g: genesis(), state: MemState::default(), time_ms: 1000, height: 0, keys }
    }

    fn gov(&self) -> Arc<GovState> {
        self.state.governance().unwrap().unwrap_or_else(|| self.g.governance())
    }

    fn next(&self, who: &str) -> u64 {
        let i = self.gov().member_index(&name(who)).unwrap();
        self.state.next_sequence(i).unwrap()
    }

    fn make(&self, who: &str, claim: Claim) -> Attestation {
        let body = AttestationBody { attester: name(who), sequence: self.next(who), issued_at_ms: self.time_ms, claim };
        body.sign(&self.keys[who], &self.g.hash())
    }

    /// Applies one block; on success commits it.
    fn block(&mut self, records: &[Attestation]) -> Result<(), RuleError<std::convert::Infallible>> {
        let with_ids: Vec<_> = records.iter().map(|a| (a.id(), a)).collect();
        let bytes = records.iter().map(|a| a.to_bytes().len()).sum();
        let (height, time) = (self.height + 1, self.time_ms + 1000);
        let delta = rules::apply_block(&self.g, &self.state, height, self.time_ms, time, &with_ids, bytes)?;
        self.state.apply(&delta);
        (self.height, self.time_ms) = (height, time);
        Ok(())
    }

    fn empty(&mut self) {
        self.block(&[]).unwrap();
    }

    /// One record by `who` in its own block.
    fn submit(&mut self, who: &str, claim: Claim) -> Result<AttestationId, Rejection> {
        let a = self.make(who, claim);
        let id = a.id();
        match self.block(&[a]) {
            Ok(()) => Ok(id),
            Err(RuleError::Record { index: 0, rejection }) => Err(rejection),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }

    fn propose(&mut self, who: &str, change: Change) -> Result<AttestationId, Rejection> {
        let expires_at_ms = self.time_ms + 1000 + 60_000;
        self.submit(who, Claim::GovernanceProposal(Box::new(GovernanceProposal { change, expires_at_ms })))
    }

    fn approve(&mut self, who: &str, proposal: AttestationId) -> Result<AttestationId, Rejection> {
        self.submit(who, Claim::GovernanceApproval(GovernanceApproval { proposal }))
    }

    fn validators(&self) -> Vec<String> {
        self.gov().advanced(self.height + 1).validator_list().iter().map(|(n, _)| n.to_string()).collect()
    }
}

fn rd() -> Claim {
    Claim::RdSpend(RdSpend {
        enterprise: Uscc::parse("enterprise", "91440300708461136T").unwrap(),
        period: Period::parse("period", "2024").unwrap(),
        amount: Money { fen: 100, currency: Currency::CNY }.into(),
        category: RdCategory::Total,
        evidence: Hash::ZERO,
    })
}

fn add(n: &str, validator: bool) -> Change {
    Change::AddMember { name: name(n), key: MemberKey::Ed25519(key(n).public()), roles: vec![Role::Bank], validator }
}

#[test]
fn a_fifth_validator_takes_effect_two_heights_after_the_quorum_block() {
    let mut l = Ledger::new();
    let p = l.propose("v1", add("v5", true)).unwrap();
    // One of four approvals: no quorum (3 of 4 needed).
    l.approve("v2", p).unwrap();
    assert_eq!(l.validators().len(), 4);
    let quorum_height = l.height + 1;
    l.approve("v3", p).unwrap();
    assert_eq!(l.height, quorum_height);
    // Not at the next height, from the one after.
    assert_eq!(l.validators().len(), 4, "height {} still has the old set", quorum_height + 1);
    l.empty();
    assert_eq!(l.height + 1, quorum_height + ACTIVATION_DELAY_HEIGHTS);
    assert_eq!(l.validators(), ["v1", "v2", "v3", "v4", "v5"]);
    // Activation happens with the block at that height, also an empty one.
    l.empty();
    let gov = l.gov();
    assert_eq!(gov.epochs.len(), 2);
    assert_eq!(gov.epochs[1].from_height, quorum_height + ACTIVATION_DELAY_HEIGHTS);
    assert_eq!(gov.epoch_at(quorum_height).unwrap().validators.len(), 4, "history keeps the old set");
    // The new member attests; a closed proposal takes no approval.
    l.keys.insert("v5".into(), key("v5"));
    assert!(matches!(l.submit("v5", rd()), Err(Rejection::RoleNotPermitted { .. })), "v5 is a bank");
    assert_eq!(l.approve("v4", p), Err(Rejection::ProposalClosed(p)));
    // The state is rebuilt identically from the chain (a second replay).
    let mut again = Ledger::new();
    let p2 = again.propose("v1", add("v5", true)).unwrap();
    again.approve("v2", p2).unwrap();
    again.approve("v3", p2).unwrap();
    again.empty();
    again.empty();
    assert_eq!(*again.gov(), *l.gov().advanced(l.height));
}

#[test]
fn hostile_governance_records_are_refused_with_their_codes() {
    let mut l = Ledger::new();
    // R040: a member that does not validate cannot propose or approve.
    assert!(matches!(l.propose("bank", add("x", false)), Err(Rejection::GovernanceNotValidator(_))));
    let p = l.propose("v1", add("x", false)).unwrap();
    assert!(matches!(l.approve("bank", p), Err(Rejection::GovernanceNotValidator(_))));
    // R044: the proposer's proposal is its approval; a replayed approval counts once.
    assert!(matches!(l.approve("v1", p), Err(Rejection::DuplicateApproval { .. })));
    l.approve("v2", p).unwrap();
    assert!(matches!(l.approve("v2", p), Err(Rejection::DuplicateApproval { .. })));
    // R041: approving something that is not a proposal.
    let rd_id = l.submit("v2", rd()).unwrap();
    assert_eq!(l.approve("v3", rd_id), Err(Rejection::ProposalUnknown(rd_id)));
    // R043: an expiry in the past or too far ahead.
    let too_far = l.time_ms + 1000 + PROPOSAL_TTL_MS_MAX + 1;
    let bad = GovernanceProposal { change: add("y", false), expires_at_ms: too_far };
    assert!(matches!(
        l.submit("v1", Claim::GovernanceProposal(Box::new(bad))),
        Err(Rejection::ExpiryOutOfRange { .. })
    ));
    // R042: an approval after expiry.
    let soon = GovernanceProposal { change: add("z", false), expires_at_ms: l.time_ms + 1500 };
    let short = l.submit("v1", Claim::GovernanceProposal(Box::new(soon))).unwrap();
    l.empty();
    // A re-check without a clock (a mempool after a commit) keeps the approval and a
    // proposal: their times are checked by the block that includes them.
    let late = l.make("v2", Claim::GovernanceApproval(GovernanceApproval { proposal: short }));
    let h = l.height + 1;
    assert!(rules::check_attestation(&l.g, &l.state, h, rules::NO_CLOCK_MS, &late.id(), &late).is_ok());
    let fresh = GovernanceProposal { change: add("zz", false), expires_at_ms: l.time_ms + 60_000 };
    let fresh = l.make("v1", Claim::GovernanceProposal(Box::new(fresh)));
    assert!(rules::check_attestation(&l.g, &l.state, h, rules::NO_CLOCK_MS, &fresh.id(), &fresh).is_ok());
    assert!(matches!(l.approve("v2", short), Err(Rejection::ProposalExpired { .. })));
    // R047: names are never reused; R053-like rules on keys name their field.
    assert!(matches!(l.propose("v1", add("v2", false)), Err(Rejection::InvalidChange { field: "name", .. })));
    let dup_key = Change::AddMember {
        name: name("w"),
        key: MemberKey::Ed25519(key("v3").public()),
        roles: vec![],
        validator: false,
    };
    assert!(matches!(l.propose("v1", dup_key), Err(Rejection::InvalidChange { field: "key", .. })));
    // R007: field rules of a change (unsorted roles).
    let unsorted = Change::SetRoles { name: name("bank"), roles: vec![Role::Appraiser, Role::Bank], validator: false };
    assert!(matches!(l.propose("v1", unsorted), Err(Rejection::Field(_))));
}

#[test]
fn a_change_leaving_no_validator_is_refused_and_removed_members_cannot_attest() {
    let mut l = Ledger::new();
    // Remove three of four validators one by one; the last removal is R046.
    for target in ["v4", "v3", "v2"] {
        let p = l.propose("v1", Change::RemoveMember { name: name(target) }).unwrap();
        for a in l.validators().into_iter().filter(|v| v != "v1") {
            if l.gov().proposal(&p).is_some() {
                l.approve(&a, p).unwrap();
            }
        }
        assert!(l.gov().proposal(&p).is_none(), "removal of {target} took its quorum");
        l.empty();
        l.empty();
        assert!(!l.validators().contains(&target.to_string()), "{target} removed: {:?}", l.validators());
    }
    assert_eq!(l.validators(), ["v1"]);
    assert_eq!(l.propose("v1", Change::RemoveMember { name: name("v1") }), Err(Rejection::NoValidatorLeft));
    // R048: a removed member's records are refused.
    assert_eq!(l.submit("v2", rd()), Err(Rejection::MemberRemoved("v2".into())));
    // With one validator, its proposal alone is the quorum.
    l.propose("v1", add("v9", true)).unwrap();
    l.empty();
    l.empty();
    assert_eq!(l.validators(), ["v1", "v9"]);
}

#[test]
fn key_rotation_needs_possession_and_takes_effect_two_heights_later() {
    let mut l = Ledger::new();
    let chain = l.g.hash();
    let old = MemberKey::Ed25519(key("bank").public());
    let new_secret = key("bank-2");
    let new = MemberKey::Ed25519(new_secret.public());
    // R051: a proof made by another key (or for another member) does not verify.
    let forged = governance::sign_possession(&key("mallory"), &chain, &name("bank"), &old);
    let bad = Claim::KeyRotation(KeyRotation { new_key: new, possession: forged });
    assert!(matches!(l.submit("bank", bad), Err(Rejection::BadPossession(_))));
    let wrong_member = governance::sign_possession(&new_secret, &chain, &name("v1"), &old);
    let bad = Claim::KeyRotation(KeyRotation { new_key: new, possession: wrong_member });
    assert!(matches!(l.submit("bank", bad), Err(Rejection::BadPossession(_))));
    // R053: a key another member holds.
    let taken = MemberKey::Ed25519(key("v1").public());
    let proof = governance::sign_possession(&key("v1"), &chain, &name("bank"), &old);
    let bad = Claim::KeyRotation(KeyRotation { new_key: taken, possession: proof });
    assert_eq!(l.submit("bank", bad), Err(Rejection::KeyInUse { field: "new_key" }));
    // A good rotation.
    let proof = governance::sign_possession(&new_secret, &chain, &name("bank"), &old);
    let rotation = l.make("bank", Claim::KeyRotation(KeyRotation { new_key: new, possession: proof }));
    l.block(&[rotation]).unwrap();
    let at = l.height + ACTIVATION_DELAY_HEIGHTS;
    l.empty();
    assert_eq!(l.gov().advanced(l.height + 1).member(&name("bank")).unwrap().key(), &new);
    l.empty();
    let m = l.gov().member(&name("bank")).unwrap().clone();
    assert_eq!(m.key_at(at - 1), Some(&old));
    assert_eq!(m.key_at(at), Some(&new));
    // A record signed with the rotated-out key is named R049 by the verification core's
    // signature check (here called directly, as the rules do not check signatures).
    let stale = l.make("bank", rd());
    let body = stale.body.to_bytes();
    assert_eq!(rules::stale_key(&l.gov(), &stale, &body, &chain), Some(Rejection::KeyRotatedOut("bank".into())));
    l.keys.insert("bank".into(), new_secret);
    let fresh = l.make("bank", rd());
    assert_eq!(rules::stale_key(&l.gov(), &fresh, &fresh.body.to_bytes(), &chain), None);
}

#[test]
fn a_revoked_key_is_replaced_and_named_r050() {
    let mut l = Ledger::new();
    let chain = l.g.hash();
    let leaked = MemberKey::Ed25519(key("v4").public());
    let replacement = MemberKey::Ed25519(key("v4-new").public());
    let change = Change::RevokeKey { name: name("v4"), key: leaked, replacement };
    let p = l.propose("v1", change).unwrap();
    l.approve("v2", p).unwrap();
    l.approve("v3", p).unwrap();
    let before = l.gov().advanced(l.height + 1).epochs.len();
    l.empty();
    l.empty();
    let gov = l.gov();
    let m = gov.member(&name("v4")).unwrap();
    assert_eq!(m.key(), &replacement);
    assert_eq!(m.revoked, vec![(leaked, l.height)]);
    // The validator set changed (v4's key), so a new epoch with a new set hash.
    assert_eq!(gov.epochs.len(), before + 1);
    assert_ne!(gov.epochs[0].hash(), gov.epochs.last().unwrap().hash());
    let stale = l.make("v4", rd());
    assert_eq!(
        rules::stale_key(&gov, &stale, &stale.body.to_bytes(), &chain),
        Some(Rejection::KeyRevoked { member: "v4".into(), from_height: l.height })
    );
    // Admission names it too, from the roster in force (what a mempool holds).
    let roster = governance::Roster::new(&gov.advanced(l.height + 1));
    assert_eq!(
        rules::stale_key_in(&roster, &stale, &stale.body.to_bytes(), &chain),
        Some(Rejection::KeyRevoked { member: "v4".into(), from_height: l.height })
    );
}

#[test]
fn a_removed_member_delegates_no_access_and_receives_no_consent() {
    use credence_ledger::access::{AccessKeyGrant, Consent, FactKind, Purpose, Scope};
    let mut l = Ledger::new();
    let until = l.time_ms + 86_400_000;
    let grant = || {
        Claim::AccessKey(AccessKeyGrant {
            holder: "officer".into(),
            key: SecretKey::from_seed([9; 32]).public(),
            scopes: vec![Scope::Member],
            expires_at_ms: until,
        })
    };
    let consent = |recipient: &str| {
        Claim::Consent(Consent {
            enterprise: Uscc::parse("enterprise", "91440300708461136T").unwrap(),
            recipient: name(recipient),
            purpose: Purpose::LoanApplication,
            scope: vec![FactKind::RdSpend],
            expires_at_ms: until,
            evidence: Hash([0xab; 32]),
        })
    };
    l.submit("v4", grant()).unwrap();
    l.submit("v1", consent("v4")).unwrap();
    let p = l.propose("v1", Change::RemoveMember { name: name("v4") }).unwrap();
    l.approve("v2", p).unwrap();
    l.approve("v3", p).unwrap();
    // Until the activation height v4 still delegates.
    l.submit("v4", grant()).unwrap();
    l.empty();
    // From it: no grant (R048) and no consent naming it (R026).
    assert_eq!(l.submit("v4", grant()), Err(Rejection::MemberRemoved("v4".into())));
    let e = l.submit("v1", consent("v4")).unwrap_err();
    assert_eq!((e.code(), e.clone()), (26, Rejection::NotAMember { field: "recipient", name: "v4".into() }));
    // A member governance added receives consents.
    let p = l.propose("v1", add("bank-new", false)).unwrap();
    l.approve("v2", p).unwrap();
    l.approve("v3", p).unwrap();
    l.empty();
    l.empty();
    l.submit("v1", consent("bank-new")).unwrap();
}

#[test]
fn a_legacy_chain_keeps_the_genesis_state_and_set_hash() {
    let g = genesis();
    let gov = g.governance();
    assert_eq!(gov.epochs.len(), 1);
    assert_eq!(gov.epochs[0].hash(), g.validator_set_hash(), "the header field keeps its genesis meaning");
    let mut l = Ledger::new();
    l.submit("v2", rd()).unwrap();
    assert!(l.state.governance.is_none(), "records that are not governance leave no governance state");
}

// ---- Witnesses named by governance (R054..R058) ----

fn witness(n: &str) -> credence_ledger::genesis::GenesisWitness {
    credence_ledger::genesis::GenesisWitness {
        name: format!("witness.example/{n}"),
        public_key: key(&format!("witness {n}")).public(),
        url: format!("http://127.0.0.1:{}", 29_000 + n.len()),
    }
}

fn add_witness(n: &str) -> Change {
    let w = witness(n);
    Change::AddWitness { name: w.name, key: w.public_key, url: w.url }
}

fn remove_witness(n: &str) -> Change {
    Change::RemoveWitness { name: witness(n).name }
}

/// A ledger whose genesis names `witnesses`.
fn with_witnesses(witnesses: &[&str]) -> Ledger {
    let mut l = Ledger::new();
    l.g = l.g.clone().with_witnesses(witnesses.iter().map(|n| witness(n)).collect()).unwrap();
    l
}

/// Proposes `change` and approves it until it completes; the height of the completing block.
fn complete(l: &mut Ledger, change: Change) -> u64 {
    let p = l.propose("v1", change).unwrap();
    l.approve("v2", p).unwrap();
    l.approve("v3", p).unwrap();
    assert!(l.gov().proposal(&p).is_none(), "completed");
    l.height
}

fn names_at(l: &Ledger, height: u64) -> Vec<String> {
    l.gov().advanced(height).witnesses_at(height).iter().map(|w| w.name.clone()).collect()
}

#[test]
fn a_witness_comes_into_force_and_leaves_two_heights_after_the_quorum() {
    let mut l = with_witnesses(&["g1"]);
    let (g1, w2) = (witness("g1").name, witness("w2").name);
    assert_eq!(names_at(&l, 1), std::slice::from_ref(&g1), "genesis's witnesses are in force from height 1");
    let added = complete(&mut l, add_witness("w2"));
    // Not at the next height, from the one after.
    assert_eq!(names_at(&l, added + 1), std::slice::from_ref(&g1));
    let from = added + ACTIVATION_DELAY_HEIGHTS;
    assert_eq!(names_at(&l, from), [g1.clone(), w2.clone()]);
    l.empty();
    l.empty();
    assert_eq!(l.height, from, "activated by the block at its height, an empty one");
    let removed = complete(&mut l, remove_witness("w2"));
    let until = removed + ACTIVATION_DELAY_HEIGHTS;
    assert_eq!(names_at(&l, until - 1), [g1.clone(), w2.clone()], "still in force until the removal's height");
    l.empty();
    l.empty();
    // The state after the chain answers for every height: before, during and after the term.
    let gov = l.gov();
    let at = |h: u64| gov.witnesses_at(h).iter().map(|w| w.name.clone()).collect::<Vec<_>>();
    assert_eq!(at(1), std::slice::from_ref(&g1));
    assert_eq!(at(from - 1), std::slice::from_ref(&g1));
    assert_eq!(at(from), [g1.clone(), w2.clone()]);
    assert_eq!(at(until - 1), [g1.clone(), w2.clone()]);
    assert_eq!(at(until), std::slice::from_ref(&g1));
    assert_eq!(at(until + 100), std::slice::from_ref(&g1));
    assert_eq!(gov.witness_keys_at(from)[1].key, witness("w2").public_key);
    let term = gov.witnesses.iter().find(|w| w.name == w2).unwrap();
    assert_eq!((term.from_height, term.until_height), (from, Some(until)));
    assert_eq!(gov.applied.iter().filter(|a| a.at_height == from || a.at_height == until).count(), 2);
    // The member set and the validator set are untouched by witness changes.
    assert_eq!(gov.epochs.len(), 1);
    assert_eq!(gov.roster_digest, l.g.governance().roster_digest);
    // A removed witness may be named again (a new term), under its old name and key.
    let again = complete(&mut l, add_witness("w2")) + ACTIVATION_DELAY_HEIGHTS;
    l.empty();
    l.empty();
    let gov = l.gov();
    assert_eq!(gov.witnesses.iter().filter(|w| w.name == w2).count(), 2);
    assert_eq!(gov.witnesses_at(until).len(), 1);
    assert_eq!(gov.witnesses_at(again).len(), 2);
    // A genesis witness can be removed like any other.
    let gone = complete(&mut l, remove_witness("g1")) + ACTIVATION_DELAY_HEIGHTS;
    l.empty();
    l.empty();
    assert_eq!(names_at(&l, gone), std::slice::from_ref(&w2));
    assert_eq!(l.gov().witnesses_at(gone - 1).len(), 2);
}

#[test]
fn hostile_witness_changes_are_refused_with_their_codes() {
    let mut l = with_witnesses(&["g1"]);
    let code = |r: Result<AttestationId, Rejection>| r.unwrap_err().code();
    let w = witness("w2");
    let with = |name: &str, key: credence_ledger::sig::PublicKey, url: &str| Change::AddWitness {
        name: name.into(),
        key,
        url: url.into(),
    };
    // R054: not a C2SP key name, or the name of a witness in force.
    for bad in ["", "has space", "a+b", "tab\there", &"x".repeat(129)] {
        let r = l.propose("v1", with(bad, w.public_key, &w.url));
        assert!(matches!(r, Err(Rejection::WitnessName(_))), "{bad:?}: {r:?}");
    }
    let r = l.propose("v1", with(&witness("g1").name, w.public_key, &w.url));
    assert!(r.as_ref().unwrap_err().to_string().starts_with("R054 name: 'witness.example/g1' is already"), "{r:?}");
    // R055: not a valid Ed25519 key, or the key of a witness in force.
    let weak = credence_ledger::sig::PublicKey({
        let mut k = [0u8; 32];
        k[0] = 1;
        k
    });
    let r = l.propose("v1", with(&w.name, weak, &w.url));
    assert!(r.as_ref().unwrap_err().to_string().starts_with("R055 key: is a weak key"), "{r:?}");
    let non_canonical = credence_ledger::sig::PublicKey([0xff; 32]);
    assert_eq!(code(l.propose("v1", with(&w.name, non_canonical, &w.url))), 55);
    let r = l.propose("v1", with(&w.name, witness("g1").public_key, &w.url));
    assert!(r.as_ref().unwrap_err().to_string().contains("key of witness 'witness.example/g1'"), "{r:?}");
    // R058: a URL the witness client cannot use.
    for bad in ["https://w.example", "http://", "http://w.example/", "http://w example"] {
        let r = l.propose("v1", with(&w.name, w.public_key, bad));
        assert!(matches!(r, Err(Rejection::WitnessUrl(_))), "{bad}: {r:?}");
    }
    // R057: removing a witness that is not in force.
    let r = l.propose("v1", remove_witness("w2"));
    assert_eq!(r, Err(Rejection::WitnessNotInForce(w.name.clone())));
    assert!(r.unwrap_err().to_string().starts_with("R057 name: 'witness.example/w2' is not a witness in force"));
    // A witness scheduled to be added counts as in force for a second proposal (checked on the
    // projection), and one scheduled to be removed as gone.
    let completed = complete(&mut l, add_witness("w2"));
    assert!(l.height < completed + ACTIVATION_DELAY_HEIGHTS);
    assert!(matches!(l.propose("v1", add_witness("w2")), Err(Rejection::WitnessName(_))));
    complete(&mut l, remove_witness("g1"));
    assert_eq!(l.propose("v1", remove_witness("g1")), Err(Rejection::WitnessNotInForce(witness("g1").name)));
    // A proposal valid when made is checked again when it completes: the second removal of
    // w2 is refused at its quorum (R057), the first having completed meanwhile.
    let p1 = l.propose("v1", remove_witness("w2")).unwrap();
    let p2 = l.propose("v2", remove_witness("w2")).unwrap();
    l.approve("v2", p1).unwrap();
    l.approve("v3", p1).unwrap();
    l.approve("v1", p2).unwrap();
    assert_eq!(l.approve("v3", p2), Err(Rejection::WitnessNotInForce(w.name.clone())));
    // The codes and the fields the API names.
    for (r, c) in [
        (Rejection::WitnessName(String::new()), 54),
        (Rejection::WitnessKey(String::new()), 55),
        (Rejection::WitnessesFull(String::new()), 56),
        (Rejection::WitnessNotInForce(String::new()), 57),
        (Rejection::WitnessUrl(String::new()), 58),
    ] {
        assert_eq!(r.code(), c);
    }
}

#[test]
fn at_most_witnesses_max_are_in_force() {
    use credence_ledger::genesis::WITNESSES_MAX;
    let names: Vec<String> = (0..WITNESSES_MAX).map(|i| format!("g{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut l = with_witnesses(&refs);
    let r = l.propose("v1", add_witness("one-more"));
    assert_eq!(r, Err(Rejection::WitnessesFull(format!("at most {WITNESSES_MAX} witnesses in force"))));
    assert!(r.unwrap_err().to_string().starts_with("R056 witnesses: at most 16"));
    // A removal scheduled makes room for the next proposal (the projection counts it gone).
    complete(&mut l, remove_witness("g0"));
    l.propose("v1", add_witness("one-more")).unwrap();
}
