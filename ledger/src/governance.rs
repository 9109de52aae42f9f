//! Governance: the member set, member keys, roles, the validator set, the consensus parameters and the outside witnesses in force as a deterministic state that only governance records change.
//!
//! Witnesses: genesis's `[[witnesses]]` are in force from height 1; `Change::AddWitness` and
//! `Change::RemoveWitness` (rules R054..R058) add and retire others at the activation height
//! like every change. [`GovState::witnesses`] keeps every term, so the witnesses in force at
//! any height are known ([`GovState::witnesses_at`]): the nodes submit a checkpoint to those in
//! force at its height and keep only their cosignatures. Offline verifiers do not take this
//! list as their trust policy (docs/AUDITING.md §Outside witnesses).
//!
//! A validator proposes a [`Change`] (`Claim::GovernanceProposal`); validators
//! approve it (`Claim::GovernanceApproval`; the proposal counts as its proposer's
//! approval). The block whose records bring the approvals of the validators in
//! force above 2/3 *completes* it; the change then takes effect
//! [`ACTIVATION_DELAY_HEIGHTS`] heights later, at the same height on every node.
//! A member rotates its own key (`Claim::KeyRotation`, signed by the old key, with
//! a proof of possession by the new one), effective after the same delay.
//!
//! Why a delay of two heights: a replica at height `h` has committed `h − 1`, so it
//! knows every change in force at `h` and at `h + 1`. It can therefore check the
//! votes and proposals of the next height that arrive early (the consensus machine
//! buffers them) against the right validator set, and a new validator has one block
//! to connect before it must vote.
//!
//! The state after a block is a pure function of the chain ([`GovState`]), so any
//! node or auditor rebuilds it by replaying blocks from genesis. A [`Roster`] is the
//! part in force at one height with the keys decompressed, shared by the rules, the
//! verification core and consensus.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use crate::attestation::{AttestationId, ClaimKind};
use crate::checkpoint::{self, VerifierKey};
use crate::codec;
use crate::genesis::{ConsensusParams, Genesis, MEMBERS_MAX, Role, VALIDATORS_MAX, WITNESSES_MAX};
use crate::hash::Hash;
use crate::ids::MemberName;
use crate::sig::{Domain, KeyTable, PublicKey, SecretKey, SigError, Signature, VerifyingKey};
use crate::witness::WitnessKey;

/// Heights between the block that completes a change (or holds a key rotation) and
/// the first height at which it is in force. See the module documentation.
pub const ACTIVATION_DELAY_HEIGHTS: u64 = 2;
/// Longest life of a proposal: its `expires_at_ms` is at most this far after the
/// time of the block that records it (30 days).
pub const PROPOSAL_TTL_MS_MAX: u64 = 30 * 24 * 3_600_000;
/// Most proposals open (neither completed nor expired) at once.
pub const PROPOSALS_OPEN_MAX: usize = 64;
/// Most changes completed and waiting for their activation height at once.
pub const SCHEDULED_MAX: usize = 64;
/// Most keys a member holds over the chain's life (its first key and its rotations
/// and replacements).
pub const MEMBER_KEYS_MAX: usize = 64;
/// Most terms of outside witnesses over the chain's life (genesis's and every
/// `AddWitness` that took effect), so the history a [`GovState`] keeps stays bounded.
pub const WITNESS_TERMS_MAX: usize = 256;

/// A member's public key with its algorithm: the tag lets a 国密 SM2 suite be added
/// later as a new variant, without a format break. Encoded as `u32` tag ‖ key bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MemberKey {
    /// Tag 0: an Ed25519 public key (32 bytes), checked by the ZIP-215 rule.
    Ed25519(PublicKey),
}

impl MemberKey {
    /// The Ed25519 key (the only suite so far).
    pub fn ed25519(&self) -> &PublicKey {
        match self {
            MemberKey::Ed25519(k) => k,
        }
    }

    /// The key's field rule: a canonical, non-weak point.
    fn check(&self, field: &'static str) -> Result<(), GovFieldError> {
        let k = self.ed25519();
        if !k.is_canonical() {
            return Err(GovFieldError { field, rule: "is not a canonical Ed25519 point encoding".into() });
        }
        if k.is_weak() {
            return Err(GovFieldError { field, rule: "is a weak key (a point of small order)".into() });
        }
        Ok(())
    }
}

/// What a governance proposal changes. Variant order is part of the format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// Tag 0: a new member (names are never reused, keys never shared).
    AddMember { name: MemberName, key: MemberKey, roles: Vec<Role>, validator: bool },
    /// Tag 1: the member may no longer attest; a validator leaves the set.
    RemoveMember { name: MemberName },
    /// Tag 2: the member's roles and whether it validates.
    SetRoles { name: MemberName, roles: Vec<Role>, validator: bool },
    /// Tag 3: a compromised key: from the activation height, records signed with
    /// `key` are refused and the member signs with `replacement`.
    RevokeKey { name: MemberName, key: MemberKey, replacement: MemberKey },
    /// Tag 4: new consensus parameters (block limits no larger than the genesis ones).
    SetConsensus(ConsensusParams),
    /// Tag 5: an outside witness (C2SP tlog-witness) the nodes submit each checkpoint to
    /// from the activation height: its key name in `cosignature/v1` lines, its Ed25519
    /// cosigning key, and where it serves `POST <url>/add-checkpoint` (as a genesis
    /// `[[witnesses]]` table names one).
    AddWitness { name: String, key: PublicKey, url: String },
    /// Tag 6: the nodes stop submitting to a witness in force from the activation height.
    RemoveWitness { name: String },
}

impl Change {
    /// The name used on the command line and in JSON.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Change::AddMember { .. } => "add-member",
            Change::RemoveMember { .. } => "remove-member",
            Change::SetRoles { .. } => "set-roles",
            Change::RevokeKey { .. } => "revoke-key",
            Change::SetConsensus(_) => "set-consensus",
            Change::AddWitness { .. } => "add-witness",
            Change::RemoveWitness { .. } => "remove-witness",
        }
    }

    /// The member a change is about, if any.
    pub fn member(&self) -> Option<&MemberName> {
        match self {
            Change::AddMember { name, .. }
            | Change::RemoveMember { name }
            | Change::SetRoles { name, .. }
            | Change::RevokeKey { name, .. } => Some(name),
            Change::SetConsensus(_) | Change::AddWitness { .. } | Change::RemoveWitness { .. } => None,
        }
    }

    /// Field rules that need no state: sorted roles without duplicates, valid keys
    /// and parameters.
    pub fn check_fields(&self) -> Result<(), GovFieldError> {
        let roles_ok = |roles: &[Role]| roles.windows(2).all(|w| w[0] < w[1]);
        match self {
            Change::AddMember { key, roles, .. } => {
                key.check("key")?;
                if !roles_ok(roles) {
                    return Err(GovFieldError { field: "roles", rule: "must be sorted, without duplicates".into() });
                }
            }
            Change::SetRoles { roles, .. } if !roles_ok(roles) => {
                return Err(GovFieldError { field: "roles", rule: "must be sorted, without duplicates".into() });
            }
            Change::RevokeKey { key, replacement, .. } => {
                replacement.check("replacement")?;
                if key == replacement {
                    return Err(GovFieldError {
                        field: "replacement",
                        rule: "must differ from the revoked key".into(),
                    });
                }
            }
            Change::SetConsensus(p) => {
                p.check().map_err(|e| GovFieldError { field: "params", rule: e.to_string() })?;
            }
            // A witness's fields are checked with the state, under their own codes
            // (R054..R058, [`GovState::check_change`]).
            Change::RemoveMember { .. }
            | Change::SetRoles { .. }
            | Change::AddWitness { .. }
            | Change::RemoveWitness { .. } => {}
        }
        Ok(())
    }
}

/// A field of a governance record that breaks a rule.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[error("{field}: {rule}")]
pub struct GovFieldError {
    pub field: &'static str,
    pub rule: String,
}

/// The message a new key signs to prove its holder consents to becoming `member`'s
/// key in place of `old`: `credence/key-possession/v1\0 ‖ genesis hash ‖ member ‖ old ‖ new`
/// (docs/encoding.md §12).
pub fn possession_body(member: &MemberName, old: &MemberKey, new: &MemberKey) -> Vec<u8> {
    codec::encode(&(member, old, new))
}

/// The new key's proof of possession for a rotation of `member` from `old`.
pub fn sign_possession(new_secret: &SecretKey, chain_id: &Hash, member: &MemberName, old: &MemberKey) -> Signature {
    let new = MemberKey::Ed25519(new_secret.public());
    new_secret.sign(Domain::KeyPossession, &chain_id.0, &possession_body(member, old, &new))
}

/// Checks a proof of possession.
pub fn verify_possession(
    chain_id: &Hash,
    member: &MemberName,
    old: &MemberKey,
    new: &MemberKey,
    proof: &Signature,
) -> Result<(), SigError> {
    let key = VerifyingKey::new(new.ed25519())?;
    key.verify(Domain::KeyPossession, &chain_id.0, &possession_body(member, old, new), proof)
}

/// One member as governance knows it (also after its removal: indexes are never reused).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberState {
    pub name: MemberName,
    /// Every key the member held: (first height in force, key), ascending; the last is current.
    pub keys: Vec<(u64, MemberKey)>,
    /// Keys revoked by governance, with the height from which they are refused.
    pub revoked: Vec<(MemberKey, u64)>,
    /// Sorted, without duplicates.
    pub roles: Vec<Role>,
    pub validator: bool,
    /// The height from which the member may no longer attest.
    pub removed_from: Option<u64>,
}

impl MemberState {
    pub fn key(&self) -> &MemberKey {
        match self.keys.last() {
            Some((_, k)) => k,
            None => unreachable!("a member always has a key"),
        }
    }
    pub fn is_active(&self) -> bool {
        self.removed_from.is_none()
    }
    /// Whether an active member with these roles may attest `kind`.
    pub fn may_attest(&self, kind: ClaimKind) -> bool {
        let validator_kind =
            matches!(kind, ClaimKind::Equivocation | ClaimKind::GovernanceProposal | ClaimKind::GovernanceApproval);
        (validator_kind && self.validator) || self.roles.iter().any(|r| r.allows(kind))
    }
    /// The key in force at `height`, if the member had one then.
    pub fn key_at(&self, height: u64) -> Option<&MemberKey> {
        self.keys.iter().rev().find(|(from, _)| *from <= height).map(|(_, k)| k)
    }
}

/// An open proposal: recorded, not yet completed, not expired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenProposal {
    pub id: AttestationId,
    pub proposer: u16,
    pub change: Change,
    pub expires_at_ms: u64,
    /// Member indexes of the validators that approved (the proposer first), in order.
    pub approvals: Vec<u16>,
    /// Height of the block that recorded the proposal.
    pub height: u64,
}

/// What takes effect at an activation height.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pending {
    /// A governance change, by the id of its proposal.
    Change { proposal: AttestationId, change: Change },
    /// A member's own key rotation, by the id of the rotation record.
    Rotation { record: AttestationId, member: u16, key: MemberKey },
}

/// A completed change (or a rotation) waiting for its height.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scheduled {
    pub at_height: u64,
    /// The height of the block that completed it.
    pub completed_at: u64,
    pub pending: Pending,
}

/// One validator set and the first height it certifies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Epoch {
    pub from_height: u64,
    /// (name, key) in name order: what the validator-set hash is taken over.
    pub validators: Vec<(MemberName, PublicKey)>,
}

impl Epoch {
    /// SHA-256 of the canonical encoding of the (name, key) list: the header's `validator_set`.
    pub fn hash(&self) -> Hash {
        set_hash(&self.validators)
    }
    pub fn verifier_keys(&self) -> Vec<VerifierKey> {
        self.validators.iter().map(|(n, k)| VerifierKey { name: n.to_string(), key: *k }).collect()
    }
}

/// The validator-set hash of a (name, key) list in name order (docs/encoding.md §6).
pub fn set_hash(validators: &[(MemberName, PublicKey)]) -> Hash {
    Hash::digest(&[&codec::encode(validators)])
}

/// A change of governance that took effect, for listings and audits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub at_height: u64,
    pub completed_at: u64,
    pub pending: Pending,
}

/// One term of an outside witness in force: from the genesis (height 1) or an `AddWitness`'s
/// activation height, until a `RemoveWitness`'s activation height (exclusive), if any.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessTerm {
    /// Its key name in `cosignature/v1` lines.
    pub name: String,
    pub key: PublicKey,
    /// Where it serves `POST <url>/add-checkpoint`.
    pub url: String,
    /// The first height it is in force at.
    pub from_height: u64,
    /// The first height it is no longer in force at (`None`: still in force).
    pub until_height: Option<u64>,
}

impl WitnessTerm {
    /// Whether it is in force at `height`.
    pub fn in_force_at(&self, height: u64) -> bool {
        self.from_height <= height && self.until_height.is_none_or(|u| height < u)
    }
    /// Its cosigner key, for checking `cosignature/v1` lines.
    pub fn key(&self) -> WitnessKey {
        WitnessKey { name: self.name.clone(), key: self.key }
    }
}

/// The governance state after a block: pure function of the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GovState {
    /// Index = member index: genesis members in name order, then members added, in order.
    pub members: Vec<MemberState>,
    pub by_name: BTreeMap<MemberName, u16>,
    pub params: ConsensusParams,
    pub proposals: Vec<OpenProposal>,
    pub scheduled: Vec<Scheduled>,
    /// The validator sets, oldest first; the first is the genesis set (from height 1).
    pub epochs: Vec<Epoch>,
    /// Every change that took effect, oldest first.
    pub applied: Vec<Applied>,
    /// SHA-256 of the in-force members and parameters: the key of [`Roster`] caches.
    pub roster_digest: Hash,
    /// Every term of an outside witness, oldest first: genesis's (from height 1, in name
    /// order), then those governance added, in activation order (at most
    /// [`WITNESS_TERMS_MAX`]). Last in the layout: a store's states from before witnesses were
    /// governed decode through [`GovState::decode_stored`].
    pub witnesses: Vec<WitnessTerm>,
}

/// The layout of [`GovState`] before witnesses were governed (`witnesses` absent): what stores
/// written by earlier versions hold.
#[derive(Deserialize)]
struct GovStateBeforeWitnesses {
    members: Vec<MemberState>,
    by_name: BTreeMap<MemberName, u16>,
    params: ConsensusParams,
    proposals: Vec<OpenProposal>,
    scheduled: Vec<Scheduled>,
    epochs: Vec<Epoch>,
    applied: Vec<Applied>,
    roster_digest: Hash,
}

/// Why a change cannot be made (becomes a rule rejection with the field named).
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum ChangeError {
    #[error("the change would leave no validator")]
    NoValidator,
    #[error("{field}: {rule}")]
    Invalid { field: &'static str, rule: String },
    /// R054: the witness's name is not a C2SP key name, or a witness of that name is in force.
    #[error("name: {0}")]
    WitnessName(String),
    /// R055: the witness's key is not a valid Ed25519 key, or a witness in force uses it.
    #[error("key: {0}")]
    WitnessKey(String),
    /// R056: [`WITNESSES_MAX`] witnesses in force, or [`WITNESS_TERMS_MAX`] terms over the chain's life.
    #[error("witnesses: {0}")]
    WitnessesFull(String),
    /// R057: no witness of that name is in force.
    #[error("name: '{0}' is not a witness in force")]
    WitnessNotInForce(String),
    /// R058: the witness's URL breaks [`crate::genesis::check_witness_url`].
    #[error("url: {0}")]
    WitnessUrl(String),
}

fn invalid(field: &'static str, rule: impl Into<String>) -> ChangeError {
    ChangeError::Invalid { field, rule: rule.into() }
}

impl GovState {
    /// The state a chain starts with.
    pub fn genesis(g: &Genesis) -> GovState {
        let members: Vec<MemberState> = g
            .members
            .iter()
            .map(|m| MemberState {
                name: m.name.clone(),
                keys: vec![(1, MemberKey::Ed25519(m.public_key))],
                revoked: Vec::new(),
                roles: m.roles.clone(),
                validator: m.validator,
                removed_from: None,
            })
            .collect();
        let by_name = index_by_name(&members);
        let mut s = GovState {
            members,
            by_name,
            params: g.consensus.clone(),
            proposals: Vec::new(),
            scheduled: Vec::new(),
            epochs: Vec::new(),
            applied: Vec::new(),
            roster_digest: Hash::ZERO,
            witnesses: genesis_witness_terms(g),
        };
        s.epochs.push(Epoch { from_height: 1, validators: s.validator_list() });
        s.roster_digest = s.digest();
        s
    }

    /// Decodes a governance state as a store keeps it (at most `bytes_max` bytes): this layout,
    /// or the one stores wrote before witnesses were governed, whose witnesses are then
    /// genesis's (no change of that layout could name one). The two layouts cannot be
    /// confused: the older one ends where this one's `witnesses` begin, and decoding refuses
    /// trailing bytes and short input.
    pub fn decode_stored(bytes: &[u8], bytes_max: usize, genesis: &Genesis) -> Result<GovState, codec::DecodeError> {
        match codec::decode::<GovState>("governance state", bytes, bytes_max) {
            Ok(s) => Ok(s),
            Err(e) => {
                let Ok(old) = codec::decode::<GovStateBeforeWitnesses>("governance state", bytes, bytes_max) else {
                    return Err(e);
                };
                Ok(GovState {
                    members: old.members,
                    by_name: old.by_name,
                    params: old.params,
                    proposals: old.proposals,
                    scheduled: old.scheduled,
                    epochs: old.epochs,
                    applied: old.applied,
                    roster_digest: old.roster_digest,
                    witnesses: genesis_witness_terms(genesis),
                })
            }
        }
    }

    pub fn member_index(&self, name: &MemberName) -> Option<u16> {
        self.by_name.get(name).copied()
    }
    pub fn member(&self, name: &MemberName) -> Option<&MemberState> {
        self.member_index(name).and_then(|i| self.members.get(usize::from(i)))
    }

    /// The witnesses in force at `height`, in name order: the ones the nodes submit that
    /// height's checkpoint to and whose cosignatures on it they keep and serve.
    pub fn witnesses_at(&self, height: u64) -> Vec<&WitnessTerm> {
        let mut v: Vec<&WitnessTerm> = self.witnesses.iter().filter(|w| w.in_force_at(height)).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// The cosigner keys of [`GovState::witnesses_at`].
    pub fn witness_keys_at(&self, height: u64) -> Vec<WitnessKey> {
        self.witnesses_at(height).into_iter().map(WitnessTerm::key).collect()
    }

    /// The witnesses in force now and until a scheduled removal (no removal applied yet), in name order.
    pub fn witnesses_in_force(&self) -> Vec<&WitnessTerm> {
        let mut v: Vec<&WitnessTerm> = self.witnesses.iter().filter(|w| w.until_height.is_none()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// The in-force validators' (name, key) in name order.
    pub fn validator_list(&self) -> Vec<(MemberName, PublicKey)> {
        let mut v: Vec<(MemberName, PublicKey)> = self
            .members
            .iter()
            .filter(|m| m.validator && m.is_active())
            .map(|m| (m.name.clone(), *m.key().ed25519()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Member indexes of the in-force validators.
    pub fn validator_indexes(&self) -> Vec<u16> {
        (0..self.members.len())
            .filter(|i| self.members[*i].validator && self.members[*i].is_active())
            .filter_map(|i| u16::try_from(i).ok())
            .collect()
    }

    /// The validator set certifying `height` (from the history of epochs).
    pub fn epoch_at(&self, height: u64) -> Option<&Epoch> {
        self.epochs.iter().rev().find(|e| e.from_height <= height)
    }

    fn digest(&self) -> Hash {
        Hash::digest(&[&codec::encode(&(&self.members, &self.params))])
    }

    /// Whether a change is waiting for a height at or before `height`.
    pub fn has_due(&self, height: u64) -> bool {
        self.scheduled.iter().any(|s| s.at_height <= height)
    }

    /// The state in force at `height`: changes scheduled at or before it applied
    /// (in the order they were completed). The same `Arc` if none is due.
    pub fn advanced(self: &Arc<Self>, height: u64) -> Arc<GovState> {
        if !self.has_due(height) {
            return Arc::clone(self);
        }
        let mut s = GovState::clone(self);
        s.activate_due(height);
        Arc::new(s)
    }

    /// Applies what is due at or before `height`. Returns whether anything changed.
    pub fn activate_due(&mut self, height: u64) -> bool {
        let (due, later): (Vec<Scheduled>, Vec<Scheduled>) =
            std::mem::take(&mut self.scheduled).into_iter().partition(|s| s.at_height <= height);
        self.scheduled = later;
        if due.is_empty() {
            return false;
        }
        let before = self.validator_list();
        for s in due {
            self.apply_pending(&s.pending, s.at_height);
            self.applied.push(Applied { at_height: s.at_height, completed_at: s.completed_at, pending: s.pending });
        }
        let after = self.validator_list();
        if after != before {
            self.epochs.push(Epoch { from_height: height, validators: after });
        }
        self.roster_digest = self.digest();
        true
    }

    /// Applies one pending change at `height`; it was checked against this state's
    /// projection when it was completed, so it applies.
    fn apply_pending(&mut self, p: &Pending, height: u64) {
        match p {
            Pending::Rotation { member, key, .. } => {
                if let Some(m) = self.members.get_mut(usize::from(*member)) {
                    m.keys.push((height, *key));
                }
            }
            Pending::Change { change, .. } => match change {
                Change::AddMember { name, key, roles, validator } => {
                    let index = u16::try_from(self.members.len()).unwrap_or(u16::MAX);
                    self.members.push(MemberState {
                        name: name.clone(),
                        keys: vec![(height, *key)],
                        revoked: Vec::new(),
                        roles: roles.clone(),
                        validator: *validator,
                        removed_from: None,
                    });
                    self.by_name.insert(name.clone(), index);
                }
                Change::RemoveMember { name } => {
                    if let Some(i) = self.member_index(name) {
                        let m = &mut self.members[usize::from(i)];
                        m.removed_from = Some(height);
                        m.validator = false;
                    }
                }
                Change::SetRoles { name, roles, validator } => {
                    if let Some(i) = self.member_index(name) {
                        let m = &mut self.members[usize::from(i)];
                        m.roles.clone_from(roles);
                        m.validator = *validator;
                    }
                }
                Change::RevokeKey { name, key, replacement } => {
                    if let Some(i) = self.member_index(name) {
                        let m = &mut self.members[usize::from(i)];
                        m.revoked.push((*key, height));
                        if m.key() == key {
                            m.keys.push((height, *replacement));
                        }
                    }
                }
                Change::SetConsensus(p) => self.params = p.clone(),
                Change::AddWitness { name, key, url } => self.witnesses.push(WitnessTerm {
                    name: name.clone(),
                    key: *key,
                    url: url.clone(),
                    from_height: height,
                    until_height: None,
                }),
                Change::RemoveWitness { name } => {
                    if let Some(w) = self.witnesses.iter_mut().find(|w| w.until_height.is_none() && w.name == *name) {
                        w.until_height = Some(height);
                    }
                }
            },
        }
    }

    /// This state with every scheduled change applied: what a new change is checked against.
    pub fn projection(&self) -> GovState {
        let mut p = self.clone();
        let last = p.scheduled.iter().map(|s| s.at_height).max().unwrap_or(0);
        p.activate_due(last);
        p
    }

    /// Whether a key was ever held or is scheduled by any member (keys are never shared or reused).
    pub fn key_used(&self, key: &MemberKey) -> bool {
        self.members.iter().any(|m| m.keys.iter().any(|(_, k)| k == key))
            || self.scheduled.iter().any(|s| match &s.pending {
                Pending::Rotation { key: k, .. } => k == key,
                Pending::Change { change: Change::AddMember { key: k, .. }, .. } => k == key,
                Pending::Change { change: Change::RevokeKey { replacement: k, .. }, .. } => k == key,
                Pending::Change { .. } => false,
            })
    }

    /// Checks that `change` can be made on top of this state (normally a projection):
    /// the member exists (or, to be added, does not), keys are unused, and the
    /// validator set stays between 1 and [`VALIDATORS_MAX`].
    pub fn check_change(&self, change: &Change, genesis: &Genesis) -> Result<(), ChangeError> {
        let active = |name: &MemberName| {
            self.member(name)
                .filter(|m| m.is_active())
                .ok_or_else(|| invalid("name", format!("'{name}' is not a current member")))
        };
        match change {
            Change::AddMember { name, key, .. } => {
                if self.member(name).is_some() {
                    return Err(invalid("name", format!("'{name}' is or was a member; names are never reused")));
                }
                if self.members.len() >= MEMBERS_MAX {
                    return Err(invalid("name", format!("at most {MEMBERS_MAX} members over the chain's life")));
                }
                if self.key_used(key) {
                    return Err(invalid("key", "is or was another member's key"));
                }
            }
            Change::RemoveMember { name } | Change::SetRoles { name, .. } => {
                active(name)?;
            }
            Change::RevokeKey { name, key, replacement } => {
                let m = active(name)?;
                if m.key() != key {
                    return Err(invalid("key", format!("is not the current key of '{name}'")));
                }
                if self.key_used(replacement) {
                    return Err(invalid("replacement", "is or was a member's key"));
                }
                if m.keys.len() >= MEMBER_KEYS_MAX {
                    return Err(invalid("replacement", format!("a member holds at most {MEMBER_KEYS_MAX} keys")));
                }
            }
            Change::AddWitness { name, key, url } => return self.check_add_witness(name, key, url),
            Change::RemoveWitness { name } => {
                if !self.witnesses_in_force().iter().any(|w| w.name == *name) {
                    return Err(ChangeError::WitnessNotInForce(name.clone()));
                }
                return Ok(());
            }
            Change::SetConsensus(p) => {
                let g = &genesis.consensus;
                if p.block_records_max > g.block_records_max || p.block_bytes_max > g.block_bytes_max {
                    return Err(invalid(
                        "params",
                        "block_records_max and block_bytes_max may not exceed the genesis values (decoders bound frames by them)",
                    ));
                }
            }
        }
        let mut after = self.clone();
        after.apply_pending(
            &Pending::Change { proposal: AttestationId::from_hash(Hash::ZERO), change: change.clone() },
            u64::MAX,
        );
        let n = after.validator_indexes().len();
        if n == 0 {
            return Err(ChangeError::NoValidator);
        }
        if n > VALIDATORS_MAX {
            return Err(invalid("validator", format!("at most {VALIDATORS_MAX} validators")));
        }
        Ok(())
    }

    /// The rules of an `AddWitness` on this state (normally a projection, so witnesses
    /// scheduled to be added or removed count as such): R054 name, R055 key, R056 bounds, R058 url.
    fn check_add_witness(&self, name: &str, key: &PublicKey, url: &str) -> Result<(), ChangeError> {
        let in_force = self.witnesses_in_force();
        crate::checkpoint::check_key_name(name)
            .map_err(|rule| ChangeError::WitnessName(format!("is not a C2SP key name ({rule})")))?;
        if name.len() > crate::genesis::TEXT_BYTES_MAX {
            return Err(ChangeError::WitnessName(format!("is longer than {} bytes", crate::genesis::TEXT_BYTES_MAX)));
        }
        if in_force.iter().any(|w| w.name == name) {
            return Err(ChangeError::WitnessName(format!("'{name}' is already a witness in force")));
        }
        if !key.is_canonical() {
            return Err(ChangeError::WitnessKey("is not a canonical Ed25519 point encoding".into()));
        }
        if key.is_weak() {
            return Err(ChangeError::WitnessKey("is a weak key (a point of small order)".into()));
        }
        if let Some(w) = in_force.iter().find(|w| w.key == *key) {
            return Err(ChangeError::WitnessKey(format!("is already the key of witness '{}' in force", w.name)));
        }
        crate::genesis::check_witness_url(url).map_err(ChangeError::WitnessUrl)?;
        if in_force.len() >= WITNESSES_MAX {
            return Err(ChangeError::WitnessesFull(format!("at most {WITNESSES_MAX} witnesses in force")));
        }
        if self.witnesses.len() >= WITNESS_TERMS_MAX {
            return Err(ChangeError::WitnessesFull(format!(
                "at most {WITNESS_TERMS_MAX} witnesses added over the chain's life"
            )));
        }
        Ok(())
    }

    /// Open proposals whose expiry is not before `time_ms`.
    pub fn prune_expired(&mut self, time_ms: u64) -> bool {
        let before = self.proposals.len();
        self.proposals.retain(|p| p.expires_at_ms >= time_ms);
        self.proposals.len() != before
    }

    pub fn proposal(&self, id: &AttestationId) -> Option<&OpenProposal> {
        self.proposals.iter().find(|p| p.id == *id)
    }

    /// Approvals of `p` by validators in force now.
    pub fn counted_approvals(&self, p: &OpenProposal) -> usize {
        p.approvals
            .iter()
            .filter(|a| self.members.get(usize::from(**a)).is_some_and(|m| m.validator && m.is_active()))
            .count()
    }

    /// Approvals needed: more than 2/3 of the validators in force.
    pub fn quorum(&self) -> usize {
        checkpoint::quorum_threshold(self.validator_indexes().len())
    }
}

/// Genesis's witnesses as terms from height 1, in name order.
fn genesis_witness_terms(g: &Genesis) -> Vec<WitnessTerm> {
    g.witnesses
        .iter()
        .map(|w| WitnessTerm {
            name: w.name.clone(),
            key: w.public_key,
            url: w.url.clone(),
            from_height: 1,
            until_height: None,
        })
        .collect()
}

fn index_by_name(members: &[MemberState]) -> BTreeMap<MemberName, u16> {
    members.iter().enumerate().filter_map(|(i, m)| Some((m.name.clone(), u16::try_from(i).ok()?))).collect()
}

/// One member of a [`Roster`].
#[derive(Debug)]
pub struct RosterMember {
    pub name: MemberName,
    pub key: PublicKey,
    pub verifying: VerifyingKey,
    pub roles: Vec<Role>,
    pub validator: bool,
    pub active: bool,
    /// The keys it held before its key in force, oldest first, each with the height from
    /// which governance revoked it (`None`: rotated out), so an admission can name why a
    /// signature by one of them is refused ([`crate::rules::stale_key_in`]).
    pub former: Vec<(PublicKey, Option<u64>)>,
}

/// What is in force at one height, with the keys decompressed: members (by member
/// index), the validators in name order, their set hash and C2SP verifier keys, and
/// the consensus parameters.
#[derive(Debug)]
pub struct Roster {
    pub members: Vec<RosterMember>,
    /// Member indexes of the validators, in name order (consensus's validator order).
    pub validators: Vec<u16>,
    pub params: ConsensusParams,
    pub validator_set_hash: Hash,
    pub verifier_keys: Vec<VerifierKey>,
    /// The validators' C2SP key IDs, in the order of `verifier_keys`.
    pub verifier_key_ids: Vec<[u8; 4]>,
    pub digest: Hash,
    by_name: BTreeMap<MemberName, u16>,
    /// The members' keys in force with batch tables (member `i` is signer `i`), built on
    /// first use; `None` inside if there are more than [`crate::sig::KEY_TABLE_KEYS_MAX`].
    key_table: OnceLock<Option<KeyTable>>,
}

impl Roster {
    pub fn new(s: &GovState) -> Roster {
        let members: Vec<RosterMember> = s
            .members
            .iter()
            .map(|m| RosterMember {
                name: m.name.clone(),
                key: *m.key().ed25519(),
                verifying: VerifyingKey::new(m.key().ed25519())
                    .unwrap_or_else(|e| unreachable!("governance admits only valid keys: {e}")),
                roles: m.roles.clone(),
                validator: m.validator && m.is_active(),
                active: m.is_active(),
                former: m
                    .keys
                    .iter()
                    .filter(|(_, k)| k != m.key())
                    .map(|(_, k)| (*k.ed25519(), m.revoked.iter().find(|(r, _)| r == k).map(|(_, h)| *h)))
                    .collect(),
            })
            .collect();
        let list = s.validator_list();
        let validators: Vec<u16> = list.iter().filter_map(|(n, _)| s.member_index(n)).collect();
        let verifier_keys: Vec<VerifierKey> =
            list.iter().map(|(n, k)| VerifierKey { name: n.to_string(), key: *k }).collect();
        Roster {
            members,
            validators,
            params: s.params.clone(),
            validator_set_hash: set_hash(&list),
            verifier_key_ids: verifier_keys.iter().map(VerifierKey::key_id).collect(),
            verifier_keys,
            digest: s.roster_digest,
            by_name: s.by_name.clone(),
            key_table: OnceLock::new(),
        }
    }

    /// The members' keys in force with batch tables, signer `i` being member `i`
    /// ([`KeyTable`]): built once per roster on first use and kept with it, about
    /// [`crate::sig::KEY_TABLE_BYTES_PER_KEY`] per member. `None` for a roster of more than
    /// [`crate::sig::KEY_TABLE_KEYS_MAX`] members: their signatures take [`crate::sig::verify_batch`].
    pub fn key_table(&self) -> Option<&KeyTable> {
        self.key_table
            .get_or_init(|| KeyTable::new(&self.members.iter().map(|m| m.verifying).collect::<Vec<_>>()))
            .as_ref()
    }

    pub fn member_index(&self, name: &MemberName) -> Option<u16> {
        self.by_name.get(name).copied()
    }
    pub fn member(&self, name: &MemberName) -> Option<&RosterMember> {
        self.member_index(name).and_then(|i| self.members.get(usize::from(i)))
    }
    pub fn is_validator(&self, name: &MemberName) -> bool {
        self.member(name).is_some_and(|m| m.validator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::{ChainBuilder, EXAMPLE_GENESIS_TIME_MS};
    use crate::genesis::GenesisWitness;

    fn witness(n: u8) -> GenesisWitness {
        GenesisWitness {
            name: format!("w.example/{n}"),
            public_key: SecretKey::from_seed([n; 32]).public(),
            url: format!("http://127.0.0.1:{}", 29_000 + u16::from(n)),
        }
    }

    /// A store's state from before witnesses were governed (no `witnesses` at the end)
    /// decodes with genesis's witnesses; the current layout round-trips; neither decodes as
    /// the other, and damaged bytes are still refused.
    #[test]
    fn stored_states_of_both_layouts_decode() {
        let g = ChainBuilder::new(3, EXAMPLE_GENESIS_TIME_MS).unwrap().genesis().clone();
        let g = g.with_witnesses(vec![witness(7)]).unwrap();
        let mut s = GovState::genesis(&g);
        assert_eq!(s.witnesses.len(), 1);
        s.apply_pending(
            &Pending::Change {
                proposal: AttestationId::from_hash(Hash::ZERO),
                change: Change::AddWitness {
                    name: "w.example/8".into(),
                    key: witness(8).public_key,
                    url: witness(8).url,
                },
            },
            5,
        );
        let bytes = codec::encode(&s);
        assert_eq!(GovState::decode_stored(&bytes, 1 << 20, &g).unwrap(), s);
        // The layout before: the same fields without `witnesses` (an empty Vec encodes as 8 bytes).
        let mut old = s.clone();
        old.witnesses.clear();
        let old_bytes = codec::encode(&old);
        let old_bytes = &old_bytes[..old_bytes.len() - 8];
        let decoded = GovState::decode_stored(old_bytes, 1 << 20, &g).unwrap();
        assert_eq!(decoded.witnesses, GovState::genesis(&g).witnesses, "genesis's witnesses");
        assert_eq!(decoded.members, s.members);
        assert!(GovState::decode_stored(&bytes[..bytes.len() - 1], 1 << 20, &g).is_err());
        assert!(GovState::decode_stored(&[bytes.as_slice(), &[0]].concat(), 1 << 20, &g).is_err());
        assert!(GovState::decode_stored(&bytes, 16, &g).is_err(), "bounded");
    }

    /// The history of terms is bounded over the chain's life (R056), not only the set in force.
    #[test]
    fn witness_terms_are_bounded_over_the_chains_life() {
        let g = ChainBuilder::new(3, EXAMPLE_GENESIS_TIME_MS).unwrap().genesis().clone();
        let mut s = GovState::genesis(&g);
        let w = witness(9);
        for h in 0..WITNESS_TERMS_MAX as u64 {
            s.witnesses.push(WitnessTerm {
                name: w.name.clone(),
                key: w.public_key,
                url: w.url.clone(),
                from_height: 2 * h + 1,
                until_height: Some(2 * h + 2),
            });
        }
        assert!(s.witnesses_in_force().is_empty());
        let add = Change::AddWitness { name: w.name, key: w.public_key, url: w.url };
        let e = s.check_change(&add, &g).unwrap_err();
        assert_eq!(
            e,
            ChangeError::WitnessesFull(format!("at most {WITNESS_TERMS_MAX} witnesses added over the chain's life"))
        );
        s.witnesses.pop();
        assert_eq!(s.check_change(&add, &g), Ok(()));
        // Each term answers only inside its heights.
        assert_eq!(s.witnesses_at(1).len(), 1);
        assert_eq!(s.witnesses_at(2).len(), 0);
    }
}
