//! The genesis file: the consortium's members, their keys and roles, and the consensus parameters; read raw, then validated into typed values.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::attestation::ClaimKind;
use crate::checkpoint::VerifierKey;
use crate::codec;
use crate::hash::Hash;
use crate::ids::MemberName;
use crate::sig::{PublicKey, VerifyingKey};

/// Limits on a genesis file and its contents.
pub const GENESIS_BYTES_MAX: usize = 256 * 1024;
pub const MEMBERS_MAX: usize = 256;
pub const VALIDATORS_MAX: usize = 100;
pub const BLOCK_RECORDS_MAX_LIMIT: u32 = 10_000;
pub const BLOCK_BYTES_MAX_LIMIT: u32 = 16 * 1024 * 1024;
pub const TIMEOUT_MS_MIN: u64 = 10;
pub const TIMEOUT_MS_MAX: u64 = 600_000;
pub const TEXT_BYTES_MAX: usize = 128;

/// What a member may attest. A member holds any subset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Lends against pledged patents: attests pledges and releases them.
    Bank,
    /// Tech-finance service centre: attests audited R&D spend.
    ServiceCentre,
    /// Patent appraiser: attests patent valuations.
    Appraiser,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Bank, Role::ServiceCentre, Role::Appraiser];

    pub const fn name(self) -> &'static str {
        match self {
            Role::Bank => "bank",
            Role::ServiceCentre => "service-centre",
            Role::Appraiser => "appraiser",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == s)
    }

    /// Whether this role allows attesting `kind`. Revocations are open to
    /// every member; the ledger rules then require the original attester.
    pub fn allows(self, kind: ClaimKind) -> bool {
        match kind {
            ClaimKind::RdSpend => self == Role::ServiceCentre,
            ClaimKind::PatentValuation => self == Role::Appraiser,
            ClaimKind::PatentPledge | ClaimKind::PledgeRelease => self == Role::Bank,
            ClaimKind::Revocation => true,
            // Reported by validators whatever their roles (see `Member::may_attest`).
            ClaimKind::Equivocation => false,
        }
    }
}

/// Consensus parameters, identical on every node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusParams {
    /// Most attestations in one block.
    pub block_records_max: u32,
    /// Most bytes of attestations (canonical encoding) in one block.
    pub block_bytes_max: u32,
    /// Tendermint timeouts for round 0; each grows by `timeout_delta_ms` per round.
    pub timeout_propose_ms: u64,
    pub timeout_prevote_ms: u64,
    pub timeout_precommit_ms: u64,
    pub timeout_delta_ms: u64,
}

impl Default for ConsensusParams {
    fn default() -> Self {
        ConsensusParams {
            block_records_max: 1000,
            block_bytes_max: 1024 * 1024,
            timeout_propose_ms: 1000,
            timeout_prevote_ms: 500,
            timeout_precommit_ms: 500,
            timeout_delta_ms: 250,
        }
    }
}

/// A consortium member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: MemberName,
    pub public_key: PublicKey,
    /// Sorted, without duplicates.
    pub roles: Vec<Role>,
    pub validator: bool,
}

impl Member {
    pub fn may_attest(&self, kind: ClaimKind) -> bool {
        // Validators see consensus messages, so they report equivocation evidence.
        (kind == ClaimKind::Equivocation && self.validator) || self.roles.iter().any(|r| r.allows(kind))
    }
}

/// A validated genesis. Invariant: members are sorted by name, names and keys
/// are unique, keys are canonical and not weak, and at least one member is a validator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    pub chain_id: String,
    /// The C2SP checkpoint origin line, e.g. `credence.example/local`.
    pub checkpoint_origin: String,
    /// Time of the chain's start; block 1 must be later.
    pub genesis_time_ms: u64,
    pub consensus: ConsensusParams,
    pub members: Vec<Member>,
}

/// The genesis file as written, before validation.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawGenesis {
    chain_id: String,
    checkpoint_origin: String,
    genesis_time_ms: u64,
    consensus: ConsensusParams,
    #[serde(default)]
    members: Vec<RawMember>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawMember {
    name: String,
    public_key: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    validator: bool,
}

/// A member as given to [`Genesis::new`], before validation.
#[derive(Clone, Debug)]
pub struct MemberSpec {
    pub name: String,
    pub public_key: PublicKey,
    pub roles: Vec<Role>,
    pub validator: bool,
}

impl MemberSpec {
    fn into_raw(self) -> RawMember {
        RawMember {
            name: self.name,
            public_key: hex::encode(self.public_key.0),
            roles: self.roles.iter().map(|r| r.name().to_string()).collect(),
            validator: self.validator,
        }
    }
}

/// A genesis file that cannot be used. `key` is the TOML path of the bad value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GenesisError {
    #[error("genesis: cannot read {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("genesis: {len} bytes exceed the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("genesis: not valid TOML for a genesis file: {0}")]
    Toml(String),
    #[error("genesis: {key}: {rule}")]
    Invalid { key: String, rule: String },
}

fn invalid(key: impl Into<String>, rule: impl Into<String>) -> GenesisError {
    GenesisError::Invalid { key: key.into(), rule: rule.into() }
}

fn check_text(key: &str, value: &str) -> Result<(), GenesisError> {
    if value.is_empty() || value.len() > TEXT_BYTES_MAX {
        return Err(invalid(key, format!("must be 1 to {TEXT_BYTES_MAX} bytes")));
    }
    if !value.chars().all(|c| c.is_ascii_graphic()) {
        return Err(invalid(key, "must be printable ASCII without spaces"));
    }
    Ok(())
}

fn check_timeout(key: &str, ms: u64) -> Result<(), GenesisError> {
    if !(TIMEOUT_MS_MIN..=TIMEOUT_MS_MAX).contains(&ms) {
        return Err(invalid(key, format!("must be between {TIMEOUT_MS_MIN} and {TIMEOUT_MS_MAX} milliseconds")));
    }
    Ok(())
}

impl Genesis {
    pub fn load(path: &Path) -> Result<Genesis, GenesisError> {
        let io = |e: std::io::Error| GenesisError::Io { path: path.display().to_string(), reason: e.to_string() };
        let len = std::fs::metadata(path).map_err(io)?.len();
        if len > GENESIS_BYTES_MAX as u64 {
            return Err(GenesisError::TooLarge {
                len: usize::try_from(len).unwrap_or(usize::MAX),
                max: GENESIS_BYTES_MAX,
            });
        }
        Genesis::from_toml(&std::fs::read_to_string(path).map_err(io)?)
    }

    pub fn from_toml(text: &str) -> Result<Genesis, GenesisError> {
        if text.len() > GENESIS_BYTES_MAX {
            return Err(GenesisError::TooLarge { len: text.len(), max: GENESIS_BYTES_MAX });
        }
        let raw: RawGenesis = toml::from_str(text).map_err(|e| GenesisError::Toml(e.to_string()))?;
        Genesis::validate(raw)
    }

    fn validate(raw: RawGenesis) -> Result<Genesis, GenesisError> {
        check_text("chain_id", &raw.chain_id)?;
        check_text("checkpoint_origin", &raw.checkpoint_origin)?;
        let c = &raw.consensus;
        if !(1..=BLOCK_RECORDS_MAX_LIMIT).contains(&c.block_records_max) {
            return Err(invalid(
                "consensus.block_records_max",
                format!("must be between 1 and {BLOCK_RECORDS_MAX_LIMIT}"),
            ));
        }
        let bytes_min = crate::attestation::ATTESTATION_BYTES_MAX as u32;
        if !(bytes_min..=BLOCK_BYTES_MAX_LIMIT).contains(&c.block_bytes_max) {
            return Err(invalid(
                "consensus.block_bytes_max",
                format!("must be between {bytes_min} (one largest attestation) and {BLOCK_BYTES_MAX_LIMIT}"),
            ));
        }
        check_timeout("consensus.timeout_propose_ms", c.timeout_propose_ms)?;
        check_timeout("consensus.timeout_prevote_ms", c.timeout_prevote_ms)?;
        check_timeout("consensus.timeout_precommit_ms", c.timeout_precommit_ms)?;
        check_timeout("consensus.timeout_delta_ms", c.timeout_delta_ms)?;
        if raw.members.is_empty() {
            return Err(invalid("members", "at least one member is required"));
        }
        if raw.members.len() > MEMBERS_MAX {
            return Err(invalid("members", format!("at most {MEMBERS_MAX} members")));
        }
        let mut members = Vec::with_capacity(raw.members.len());
        let mut names = BTreeSet::new();
        let mut keys = BTreeSet::new();
        for (i, m) in raw.members.into_iter().enumerate() {
            let key = |field: &str| format!("members[{i}].{field}");
            let name = MemberName::parse("name", &m.name).map_err(|e| invalid(key("name"), e.to_string()))?;
            if !names.insert(name.clone()) {
                return Err(invalid(key("name"), format!("duplicate member name '{name}'")));
            }
            let mut pk = [0u8; 32];
            hex::decode_to_slice(&m.public_key, &mut pk)
                .map_err(|_| invalid(key("public_key"), "must be 64 hexadecimal digits (an Ed25519 public key)"))?;
            let public_key = PublicKey(pk);
            if !public_key.is_canonical() {
                return Err(invalid(key("public_key"), "is not a canonical Ed25519 point encoding"));
            }
            if public_key.is_weak() {
                return Err(invalid(
                    key("public_key"),
                    "is a weak key (a point of small order) and can be forged against",
                ));
            }
            if !keys.insert(pk) {
                return Err(invalid(key("public_key"), "duplicate public key: another member already uses it"));
            }
            let mut roles = Vec::new();
            for (j, r) in m.roles.iter().enumerate() {
                let role = Role::parse(r).ok_or_else(|| {
                    invalid(
                        format!("members[{i}].roles[{j}]"),
                        format!("unknown role '{r}' (expected bank, service-centre or appraiser)"),
                    )
                })?;
                if roles.contains(&role) {
                    return Err(invalid(format!("members[{i}].roles[{j}]"), format!("duplicate role '{r}'")));
                }
                roles.push(role);
            }
            roles.sort();
            members.push(Member { name, public_key, roles, validator: m.validator });
        }
        let validators = members.iter().filter(|m| m.validator).count();
        if validators == 0 {
            return Err(invalid("members", "at least one member must be a validator"));
        }
        if validators > VALIDATORS_MAX {
            return Err(invalid("members", format!("at most {VALIDATORS_MAX} validators")));
        }
        members.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Genesis {
            chain_id: raw.chain_id,
            checkpoint_origin: raw.checkpoint_origin,
            genesis_time_ms: raw.genesis_time_ms,
            consensus: raw.consensus,
            members,
        })
    }

    /// Builds a genesis from typed values, with exactly the checks a file gets
    /// (errors name the key, e.g. `members[2].public_key`).
    pub fn new(
        chain_id: &str,
        checkpoint_origin: &str,
        genesis_time_ms: u64,
        consensus: ConsensusParams,
        members: impl IntoIterator<Item = MemberSpec>,
    ) -> Result<Genesis, GenesisError> {
        Genesis::validate(RawGenesis {
            chain_id: chain_id.to_owned(),
            checkpoint_origin: checkpoint_origin.to_owned(),
            genesis_time_ms,
            consensus,
            members: members.into_iter().map(MemberSpec::into_raw).collect(),
        })
    }

    /// The file form. `Genesis::from_toml(&g.to_toml()) == Ok(g)`.
    pub fn to_toml(&self) -> String {
        let raw = RawGenesis {
            chain_id: self.chain_id.clone(),
            checkpoint_origin: self.checkpoint_origin.clone(),
            genesis_time_ms: self.genesis_time_ms,
            consensus: self.consensus.clone(),
            members: self
                .members
                .iter()
                .map(|m| {
                    MemberSpec {
                        name: m.name.to_string(),
                        public_key: m.public_key,
                        roles: m.roles.clone(),
                        validator: m.validator,
                    }
                    .into_raw()
                })
                .collect(),
        };
        match toml::to_string(&raw) {
            Ok(s) => s,
            Err(e) => unreachable!("a validated genesis always serializes to TOML: {e}"),
        }
    }

    /// SHA-256 of the canonical encoding: the chain id every signature is bound to,
    /// and the `prev` of block 1.
    pub fn hash(&self) -> Hash {
        Hash::digest(&[&codec::encode(self)])
    }

    pub fn member(&self, name: &MemberName) -> Option<&Member> {
        self.members.binary_search_by(|m| m.name.cmp(name)).ok().and_then(|i| self.members.get(i))
    }

    /// Index of a member in `members` (stable for the chain's life).
    pub fn member_index(&self, name: &MemberName) -> Option<u16> {
        let i = self.members.binary_search_by(|m| m.name.cmp(name)).ok()?;
        u16::try_from(i).ok()
    }

    pub fn validators(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.validator)
    }

    /// The validators as C2SP verifier keys (note key name = member name).
    pub fn verifier_keys(&self) -> Vec<VerifierKey> {
        self.validators().map(|m| VerifierKey { name: m.name.to_string(), key: m.public_key }).collect()
    }

    /// SHA-256 of the canonical encoding of the validators' (name, key) list, in name order.
    pub fn validator_set_hash(&self) -> Hash {
        let set: Vec<(&MemberName, &PublicKey)> = self.validators().map(|m| (&m.name, &m.public_key)).collect();
        Hash::digest(&[&codec::encode(&set)])
    }

    /// Decompressed keys of every member, in member order, for batch verification.
    pub fn verifying_keys(&self) -> Vec<VerifyingKey> {
        self.members
            .iter()
            .map(|m| match VerifyingKey::new(&m.public_key) {
                Ok(k) => k,
                Err(e) => unreachable!("genesis validation admits only valid keys: {e}"),
            })
            .collect()
    }
}
