//! The genesis file: the consortium's members, their keys and roles, and the consensus parameters; read raw, then validated into typed values.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::attestation::ClaimKind;
use crate::checkpoint::VerifierKey;
use crate::codec;
use crate::governance::GovState;
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
/// Most outside witnesses a genesis names (the `[[witnesses]]` tables).
pub const WITNESSES_MAX: usize = 16;
/// Longest witness URL, bytes.
pub const WITNESS_URL_BYTES_MAX: usize = 256;

/// What a member may attest. A member holds any subset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Lends against pledged patents: attests pledges and releases them.
    Bank,
    /// Tech-finance service centre: attests audited R&D spend.
    ServiceCentre,
    /// Patent appraiser: attests patent valuations, appraisals and patent status.
    Appraiser,
    /// Administers a risk-compensation pool: opens it, enrols loans, pays claims (appended: index 3).
    RiskPool,
    /// Financial regulator: may grant access keys with the regulator scope (look-through
    /// supervision: every record, without consent). Appended: index 4.
    Regulator,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Bank, Role::ServiceCentre, Role::Appraiser, Role::RiskPool, Role::Regulator];

    pub const fn name(self) -> &'static str {
        match self {
            Role::Bank => "bank",
            Role::ServiceCentre => "service-centre",
            Role::Appraiser => "appraiser",
            Role::RiskPool => "risk-pool",
            Role::Regulator => "regulator",
        }
    }

    /// The role named `s` (as in genesis files and on the command line).
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == s)
    }

    /// Whether this role allows attesting `kind`. Revocations are open to
    /// every member; the ledger rules then require the original attester.
    pub fn allows(self, kind: ClaimKind) -> bool {
        match kind {
            ClaimKind::RdSpend => self == Role::ServiceCentre,
            ClaimKind::PatentValuation => self == Role::Appraiser,
            ClaimKind::PatentPledge | ClaimKind::PledgeRelease => self == Role::Bank,
            // Every member may revoke its records and rotate its own key.
            ClaimKind::Revocation | ClaimKind::KeyRotation => true,
            ClaimKind::IpPledge | ClaimKind::Loan | ClaimKind::LoanEvent | ClaimKind::Disposal => self == Role::Bank,
            ClaimKind::PatentStatus => matches!(self, Role::Appraiser | Role::ServiceCentre),
            ClaimKind::Appraisal => self == Role::Appraiser,
            // The administrator opens, enrols and pays; the lender claims (checked by the rules).
            ClaimKind::RiskPool => matches!(self, Role::RiskPool | Role::Bank),
            ClaimKind::Qualification => self == Role::ServiceCentre,
            // Made by validators whatever their roles (see `Member::may_attest`).
            ClaimKind::Equivocation | ClaimKind::GovernanceProposal | ClaimKind::GovernanceApproval => false,
            // Every member manages its own access (see `Member::may_attest`).
            ClaimKind::AccessKey | ClaimKind::Consent | ClaimKind::Query => true,
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

impl ConsensusParams {
    /// The bounds a genesis file (or a governance change of the parameters) must respect;
    /// errors name the key, e.g. `consensus.block_records_max`.
    pub fn check(&self) -> Result<(), GenesisError> {
        let c = self;
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
        Ok(())
    }
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

/// Block time and idle-chain parameters (the `[time]` table), identical on every node.
///
/// Block time is BFT time as in CometBFT's proposer-based timestamps (PBTS):
/// a validator prevotes a fresh proposal only if, by its own clock at receipt,
/// the block time is no more than `precision_ms` in the future and no more than
/// `message_delay(round) + precision_ms` in the past, where `message_delay`
/// starts at `message_delay_ms` and grows by a tenth per round (docs/TIME.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeParams {
    /// Largest difference between two honest validators' clocks.
    pub precision_ms: u64,
    /// Longest time a proposal takes to reach every validator in round 0.
    pub message_delay_ms: u64,
    /// An idle chain makes one empty block this often; 0: a block as soon as the last one commits.
    pub heartbeat_ms: u64,
}

impl Default for TimeParams {
    fn default() -> Self {
        TimeParams { precision_ms: 500, message_delay_ms: 3_000, heartbeat_ms: 60_000 }
    }
}

/// Bounds on [`TimeParams`].
pub const PRECISION_MS_MAX: u64 = 60_000;
pub const MESSAGE_DELAY_MS_MAX: u64 = 600_000;
pub const HEARTBEAT_MS_MIN: u64 = 1_000;
pub const HEARTBEAT_MS_MAX: u64 = 86_400_000;
/// Rounds after which the PBTS message delay stops growing (1.1^64 ≈ 445).
pub const MESSAGE_DELAY_ROUNDS_MAX: u32 = 64;

impl TimeParams {
    /// The PBTS message delay of `round`: `message_delay_ms` grown by a tenth per
    /// round, integer and saturating, constant from [`MESSAGE_DELAY_ROUNDS_MAX`] on.
    pub fn message_delay_ms(&self, round: u32) -> u64 {
        let mut delay = self.message_delay_ms;
        for _ in 0..round.min(MESSAGE_DELAY_ROUNDS_MAX) {
            delay = delay.saturating_add(delay.div_ceil(10));
        }
        delay
    }

    /// PBTS: whether a proposal whose block time is `block_ms`, received at
    /// `received_ms` by the receiver's clock in `round`, is timely. Checked arithmetic:
    /// any overflow (a saturated clock on either side) is untimely.
    pub fn timely(&self, block_ms: u64, received_ms: u64, round: u32) -> bool {
        let not_too_early = block_ms.checked_sub(self.precision_ms).is_none_or(|low| received_ms >= low);
        let late = self.message_delay_ms(round).checked_add(self.precision_ms);
        let not_too_late = late.and_then(|l| block_ms.checked_add(l)).is_some_and(|high| received_ms <= high);
        not_too_early && not_too_late
    }

    fn check(&self) -> Result<(), GenesisError> {
        if !(1..=PRECISION_MS_MAX).contains(&self.precision_ms) {
            return Err(invalid("time.precision_ms", format!("must be between 1 and {PRECISION_MS_MAX}")));
        }
        if !(1..=MESSAGE_DELAY_MS_MAX).contains(&self.message_delay_ms) {
            return Err(invalid("time.message_delay_ms", format!("must be between 1 and {MESSAGE_DELAY_MS_MAX}")));
        }
        if self.heartbeat_ms != 0 && !(HEARTBEAT_MS_MIN..=HEARTBEAT_MS_MAX).contains(&self.heartbeat_ms) {
            return Err(invalid(
                "time.heartbeat_ms",
                format!("must be 0 (no idle wait) or between {HEARTBEAT_MS_MIN} and {HEARTBEAT_MS_MAX}"),
            ));
        }
        Ok(())
    }
}

/// An outside witness named in genesis (a `[[witnesses]]` table): the C2SP tlog-witness the
/// nodes submit checkpoints to, and whose `cosignature/v1` lines bundles and audits can require.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisWitness {
    /// Its key name in cosignature lines (a schema-less URL, e.g. `witness.example/w1`).
    pub name: String,
    /// Its Ed25519 cosigning key.
    pub public_key: PublicKey,
    /// Where it serves `POST <url>/add-checkpoint` (`http://host:port[/prefix]`).
    pub url: String,
}

impl GenesisWitness {
    /// Its cosigner key, for checking `cosignature/v1` lines.
    pub fn key(&self) -> crate::witness::WitnessKey {
        crate::witness::WitnessKey { name: self.name.clone(), key: self.public_key }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawWitness {
    name: String,
    public_key: String,
    url: String,
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
        // Validators see consensus messages, so they report equivocation evidence; they govern.
        // Every member, whatever its roles, delegates access keys, records consents and logs reads.
        let validator_kind =
            matches!(kind, ClaimKind::Equivocation | ClaimKind::GovernanceProposal | ClaimKind::GovernanceApproval);
        let access = matches!(kind, ClaimKind::AccessKey | ClaimKind::Consent | ClaimKind::Query);
        access || (validator_kind && self.validator) || self.roles.iter().any(|r| r.allows(kind))
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
    /// Block time and heartbeat ([`TimeParams::default`] unless the file has a `[time]` table).
    /// Not in the canonical encoding above: it is hashed after it, only when stated
    /// (see [`Genesis::hash`]), so a genesis written before it keeps its hash.
    #[serde(skip)]
    pub time: TimeParams,
    #[serde(skip)]
    time_stated: bool,
    /// The outside witnesses (`[[witnesses]]`; empty unless stated), in name order. Hashed
    /// after the time parameters, only when stated (see [`Genesis::hash`]).
    #[serde(skip)]
    pub witnesses: Vec<GenesisWitness>,
    /// The governance state at genesis, built once on first use.
    #[serde(skip)]
    governance: GenesisGovernance,
}

/// A lazily built [`GovState::genesis`]: derived from the other fields, so it takes no
/// part in comparisons and is rebuilt, not copied, by a clone.
#[derive(Default)]
struct GenesisGovernance(std::sync::OnceLock<std::sync::Arc<GovState>>);

impl Clone for GenesisGovernance {
    fn clone(&self) -> Self {
        GenesisGovernance::default()
    }
}
impl PartialEq for GenesisGovernance {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for GenesisGovernance {}
impl std::fmt::Debug for GenesisGovernance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GenesisGovernance")
    }
}

/// The genesis file as written, before validation.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawGenesis {
    chain_id: String,
    checkpoint_origin: String,
    genesis_time_ms: u64,
    consensus: ConsensusParams,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    time: Option<TimeParams>,
    #[serde(default)]
    members: Vec<RawMember>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    witnesses: Vec<RawWitness>,
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

/// A witness's URL (genesis's `[[witnesses]]` and governance's `add-witness`): `http://`
/// (the node's witness client speaks plain HTTP/1.1), a host, printable ASCII, no trailing
/// '/', at most [`WITNESS_URL_BYTES_MAX`] bytes. The error is the rule broken.
pub fn check_witness_url(url: &str) -> Result<(), String> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err("must start with http:// (the node's witness client speaks plain HTTP/1.1)".into());
    };
    if url.len() > WITNESS_URL_BYTES_MAX
        || rest.is_empty()
        || url.ends_with('/')
        || !url.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(format!(
            "must be http://host:port[/prefix], printable ASCII, no trailing '/', at most {WITNESS_URL_BYTES_MAX} bytes"
        ));
    }
    Ok(())
}

fn validate_witnesses(raw: Vec<RawWitness>) -> Result<Vec<GenesisWitness>, GenesisError> {
    if raw.len() > WITNESSES_MAX {
        return Err(invalid("witnesses", format!("at most {WITNESSES_MAX} witnesses")));
    }
    let mut out: Vec<GenesisWitness> = Vec::with_capacity(raw.len());
    for (i, w) in raw.into_iter().enumerate() {
        let key = |field: &str| format!("witnesses[{i}].{field}");
        check_text(&key("name"), &w.name)?;
        if w.name.contains('+') {
            return Err(invalid(key("name"), "must not contain '+' (a signed-note key name)"));
        }
        if out.iter().any(|o| o.name == w.name) {
            return Err(invalid(key("name"), format!("duplicate witness name '{}'", w.name)));
        }
        let mut pk = [0u8; 32];
        hex::decode_to_slice(&w.public_key, &mut pk)
            .map_err(|_| invalid(key("public_key"), "must be 64 hexadecimal digits (an Ed25519 public key)"))?;
        let public_key = PublicKey(pk);
        if !public_key.is_canonical() {
            return Err(invalid(key("public_key"), "is not a canonical Ed25519 point encoding"));
        }
        if public_key.is_weak() {
            return Err(invalid(key("public_key"), "is a weak key (a point of small order) and can be forged against"));
        }
        if out.iter().any(|o| o.public_key == public_key) {
            return Err(invalid(key("public_key"), "duplicate public key: another witness already uses it"));
        }
        check_witness_url(&w.url).map_err(|rule| invalid(key("url"), rule))?;
        out.push(GenesisWitness { name: w.name, public_key, url: w.url });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

impl GenesisWitness {
    fn into_raw(self) -> RawWitness {
        RawWitness { name: self.name, public_key: hex::encode(self.public_key.0), url: self.url }
    }
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
        raw.consensus.check()?;
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
        if let Some(t) = &raw.time {
            t.check()?;
        }
        let witnesses = validate_witnesses(raw.witnesses)?;
        Ok(Genesis {
            chain_id: raw.chain_id,
            checkpoint_origin: raw.checkpoint_origin,
            genesis_time_ms: raw.genesis_time_ms,
            consensus: raw.consensus,
            members,
            time: raw.time.unwrap_or_default(),
            time_stated: raw.time.is_some(),
            governance: GenesisGovernance::default(),
            witnesses,
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
            time: None,
            members: members.into_iter().map(MemberSpec::into_raw).collect(),
            witnesses: Vec::new(),
        })
    }

    /// This genesis with a stated `[time]` table (checked as a file's would be).
    pub fn with_time(mut self, time: TimeParams) -> Result<Genesis, GenesisError> {
        time.check()?;
        self.time = time;
        self.time_stated = true;
        Ok(self)
    }

    /// This genesis naming `witnesses` (checked as a file's `[[witnesses]]` would be).
    pub fn with_witnesses(mut self, witnesses: Vec<GenesisWitness>) -> Result<Genesis, GenesisError> {
        self.witnesses = validate_witnesses(witnesses.into_iter().map(GenesisWitness::into_raw).collect())?;
        // The genesis governance state holds the witnesses: build it anew.
        self.governance = GenesisGovernance::default();
        Ok(self)
    }

    /// The named witnesses' cosigner keys.
    pub fn witness_keys(&self) -> Vec<crate::witness::WitnessKey> {
        self.witnesses.iter().map(GenesisWitness::key).collect()
    }

    /// The file form. `Genesis::from_toml(&g.to_toml()) == Ok(g)`.
    pub fn to_toml(&self) -> String {
        let raw = RawGenesis {
            chain_id: self.chain_id.clone(),
            checkpoint_origin: self.checkpoint_origin.clone(),
            genesis_time_ms: self.genesis_time_ms,
            consensus: self.consensus.clone(),
            time: self.time_stated.then_some(self.time),
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
            witnesses: self.witnesses.iter().cloned().map(GenesisWitness::into_raw).collect(),
        };
        match toml::to_string(&raw) {
            Ok(s) => s,
            Err(e) => unreachable!("a validated genesis always serializes to TOML: {e}"),
        }
    }

    /// SHA-256 of the canonical encoding: the chain id every signature is bound to,
    /// and the `prev` of block 1.
    ///
    /// A stated `[time]` table is encoded after the original fields (three u64,
    /// little-endian, as bincode's legacy config writes them); a genesis without
    /// one hashes exactly as before the table existed (docs/encoding.md). Named witnesses
    /// follow the time parameters (always encoded then, stated or default) as
    /// `Vec<GenesisWitness>`; a genesis without witnesses hashes as before they existed.
    /// The parts after the original encoding are 0, 24 or more than 24 bytes, so no two
    /// forms share their bytes.
    pub fn hash(&self) -> Hash {
        if !self.witnesses.is_empty() {
            Hash::digest(&[&codec::encode(self), &codec::encode(&self.time), &codec::encode(&self.witnesses)])
        } else if self.time_stated {
            Hash::digest(&[&codec::encode(self), &codec::encode(&self.time)])
        } else {
            Hash::digest(&[&codec::encode(self)])
        }
    }

    /// The governance state the chain starts with (built once, then shared).
    pub fn governance(&self) -> std::sync::Arc<GovState> {
        std::sync::Arc::clone(self.governance.0.get_or_init(|| std::sync::Arc::new(GovState::genesis(self))))
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
