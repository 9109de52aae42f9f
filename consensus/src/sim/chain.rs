//! The simulated consortium: a genesis for n validators plus two attesters, their keys, and a deterministic stream of real signed attestations.

use std::sync::Arc;

use credence_ledger::attestation::{AttestationBody, Claim, PatentValuation, RdCategory, RdSpend, ValuationMethod};
use credence_ledger::block::Leaf;
use credence_ledger::demo::{self, DemoRng};
use credence_ledger::genesis::{ConsensusParams, Genesis, GenesisError, MemberSpec, Role, TimeParams, VALIDATORS_MAX};
use credence_ledger::hash::Hash;
use credence_ledger::ids::{Currency, Date, MemberName, Money, PatentNumber, Period, Uscc};
use credence_ledger::sig::SecretKey;
use credence_ledger::verify::ChainContext;

use crate::Context;

/// Genesis time of every simulated chain.
pub const SIM_GENESIS_TIME_MS: u64 = 1_735_689_600_000;

/// Timeouts of simulated chains (virtual milliseconds; the message latency is well below).
const TIMEOUT_PROPOSE_MS: u64 = 400;
const TIMEOUT_VOTE_MS: u64 = 200;
const TIMEOUT_DELTA_MS: u64 = 100;

/// The name of validator `i` (zero-padded, so name order is index order).
pub fn validator_name(i: usize) -> String {
    format!("val-{i:02}")
}

/// A genesis for `n` validators (no roles) and two attesters: a service centre
/// and an appraiser. Keys come from `seed` through [`demo::member_key`].
pub fn genesis(seed: u64, n: usize) -> Result<Genesis, GenesisError> {
    genesis_with_time(
        seed,
        n,
        TimeParams { precision_ms: PRECISION_MS, message_delay_ms: MESSAGE_DELAY_MS, heartbeat_ms: HEARTBEAT_MS },
    )
}

/// [`genesis`] with other time parameters.
pub fn genesis_with_time(seed: u64, n: usize, time: TimeParams) -> Result<Genesis, GenesisError> {
    let member = |name: String, roles: Vec<Role>, validator: bool| MemberSpec {
        public_key: demo::member_key(seed, &name).public(),
        name,
        roles,
        validator,
    };
    let members = (0..n).map(|i| member(validator_name(i), Vec::new(), true)).chain([
        member(ATTESTERS[0].to_owned(), vec![Role::ServiceCentre], false),
        member(ATTESTERS[1].to_owned(), vec![Role::Appraiser], false),
    ]);
    let consensus = ConsensusParams {
        block_records_max: 1000,
        block_bytes_max: 1_048_576,
        timeout_propose_ms: TIMEOUT_PROPOSE_MS,
        timeout_prevote_ms: TIMEOUT_VOTE_MS,
        timeout_precommit_ms: TIMEOUT_VOTE_MS,
        timeout_delta_ms: TIMEOUT_DELTA_MS,
    };
    Genesis::new(
        &format!("credence-sim-{seed}"),
        &format!("credence.example/sim-{seed}"),
        SIM_GENESIS_TIME_MS,
        consensus,
        members,
    )?
    .with_time(time)
}

/// PBTS in the simulator: honest clocks drift by less than half of this.
pub const PRECISION_MS: u64 = 500;
/// Above the simulated network's worst latency in calm (a slow link: 60 + 1,500 ms).
pub const MESSAGE_DELAY_MS: u64 = 2_000;
/// An idle simulated chain makes a block this often.
pub const HEARTBEAT_MS: u64 = 2_000;

/// The two non-validator attesters: R&D spend, then patent valuations.
const ATTESTERS: [&str; 2] = ["centre-sim", "appraiser-sim"];

/// Everything fixed about one simulated chain.
#[derive(Debug)]
pub struct SimChain {
    pub ledger: Arc<ChainContext>,
    /// The genesis validator set's consensus context.
    pub consensus: Arc<Context>,
    /// Secret keys of every node, by node index: the genesis validators (node `i` is
    /// genesis validator `i`), then the joiners governance may add.
    validator_seeds: Vec<[u8; 32]>,
    /// Genesis member index of each genesis validator.
    pub validator_members: Vec<u16>,
}

/// Why a simulated chain could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("validators must be 1..={VALIDATORS_MAX}, got {0}")]
    Validators(usize),
    #[error(transparent)]
    Genesis(#[from] GenesisError),
}

impl SimChain {
    pub fn new(seed: u64, n: usize) -> Result<SimChain, ChainError> {
        SimChain::with_genesis(seed, n, genesis)
    }

    /// A chain of `n` genesis validators whose simulation also runs `joiners` nodes
    /// named `val-{n}`.. that are not members at genesis (governance adds them).
    pub fn with_joiners(seed: u64, n: usize, joiners: usize) -> Result<SimChain, ChainError> {
        if n + joiners > VALIDATORS_MAX {
            return Err(ChainError::Validators(n + joiners));
        }
        let mut chain = SimChain::new(seed, n)?;
        chain.validator_seeds.extend((n..n + joiners).map(|i| demo::member_key(seed, &validator_name(i)).seed()));
        Ok(chain)
    }

    /// A chain whose genesis has `time` as its time parameters.
    pub fn with_time(seed: u64, n: usize, time: TimeParams) -> Result<SimChain, ChainError> {
        SimChain::with_genesis(seed, n, |seed, n| genesis_with_time(seed, n, time))
    }

    fn with_genesis(
        seed: u64,
        n: usize,
        make: impl FnOnce(u64, usize) -> Result<Genesis, GenesisError>,
    ) -> Result<SimChain, ChainError> {
        if !(1..=VALIDATORS_MAX).contains(&n) {
            return Err(ChainError::Validators(n));
        }
        let genesis = make(seed, n)?;
        let consensus = Arc::new(Context::new(&genesis));
        let validator_seeds = (0..n).map(|i| demo::member_key(seed, &validator_name(i)).seed()).collect();
        let validator_members = consensus
            .validators
            .iter()
            .map(|v| genesis.member_index(&v.name).unwrap_or_else(|| unreachable!("validators are members")))
            .collect();
        let mut ledger = ChainContext::new(genesis);
        ledger.threads = 1; // one simulation per core; no thread spawning inside a run
        Ok(SimChain { ledger: Arc::new(ledger), consensus, validator_seeds, validator_members })
    }

    pub fn genesis(&self) -> &Genesis {
        &self.ledger.genesis
    }

    pub fn chain_id(&self) -> Hash {
        self.ledger.chain_id
    }

    /// Nodes in the simulation: the genesis validators and the joiners.
    pub fn n(&self) -> usize {
        self.validator_seeds.len()
    }

    /// The node whose member name is `name` (`val-XX`), if it is one of this simulation's.
    pub fn node_of(&self, name: &str) -> Option<crate::ValidatorIndex> {
        let i: usize = name.strip_prefix("val-")?.parse().ok()?;
        (i < self.n() && validator_name(i) == name).then_some(i as crate::ValidatorIndex)
    }

    pub fn validator_key(&self, i: usize) -> SecretKey {
        SecretKey::from_seed(self.validator_seeds[i])
    }

    /// The key of the outside witness `name` governance may name (a function of the chain).
    pub fn witness_key(&self, name: &str) -> SecretKey {
        SecretKey::from_seed(Hash::digest(&[b"credence sim witness", &self.chain_id().0, name.as_bytes()]).0)
    }
}

/// Real signed attestations, the same on every node: attestation `seq` of each
/// attester is a pure function of the seed, so any proposer includes the same
/// records for the same sequence numbers. Generated once per run and cached.
#[derive(Debug)]
pub struct Workload {
    attesters: Vec<(MemberName, u16, SecretKey)>,
    enterprises: Vec<Uscc>,
    patents: Vec<PatentNumber>,
    chain_id: Hash,
    /// `cache[a][seq - 1]`.
    cache: Vec<Vec<Leaf>>,
}

impl Workload {
    pub fn new(seed: u64, chain: &SimChain) -> Workload {
        let g = chain.genesis();
        let attesters = ATTESTERS
            .iter()
            .map(|name| {
                let m = MemberName::parse("attester", name).unwrap_or_else(|e| unreachable!("{e}"));
                let i = g.member_index(&m).unwrap_or_else(|| unreachable!("attesters are members"));
                (m, i, demo::member_key(seed, name))
            })
            .collect();
        let mut rng = DemoRng::new(seed);
        Workload {
            attesters,
            enterprises: demo::enterprises(&mut rng, 16),
            patents: demo::patents(&mut rng, 16),
            chain_id: chain.chain_id(),
            cache: vec![Vec::new(); ATTESTERS.len()],
        }
    }

    /// Genesis member indexes of the attesters, with how many records each puts in a block at `height`.
    /// Each attester's position and member index.
    pub fn attesters(&self) -> Vec<(usize, u16)> {
        self.attesters.iter().enumerate().map(|(a, (_, member, _))| (a, *member)).collect()
    }

    /// Attestation `seq` (from 1) of attester `a`.
    pub fn leaf(&mut self, a: usize, seq: u64) -> Leaf {
        while (self.cache[a].len() as u64) < seq {
            let next = self.cache[a].len() as u64 + 1;
            let leaf = self.make(a, next);
            self.cache[a].push(leaf);
        }
        self.cache[a][(seq - 1) as usize].clone()
    }

    fn make(&self, a: usize, seq: u64) -> Leaf {
        let (name, _, key) = &self.attesters[a];
        let enterprise = self.enterprises[(seq as usize) % self.enterprises.len()];
        let evidence = Hash::digest(&[b"sim evidence", &(a as u64).to_le_bytes(), &seq.to_le_bytes()]);
        let fen = 1_000_000 + seq * 7_919;
        let claim = if a == 0 {
            let period =
                Period::new("period", 2020 + (seq % 5) as u16, (seq % 5) as u8).unwrap_or_else(|e| unreachable!("{e}"));
            Claim::RdSpend(RdSpend {
                enterprise,
                period,
                amount: Money { fen, currency: Currency::CNY }.into(),
                category: RdCategory::Total,
                evidence,
            })
        } else {
            let day = 1 + (seq % 28) as u8;
            Claim::PatentValuation(PatentValuation {
                patent: self.patents[(seq as usize) % self.patents.len()],
                owner: enterprise,
                value: Money { fen, currency: Currency::CNY }.into(),
                method: ValuationMethod::Income,
                valuation_date: Date::new("date", 2024, 1, day).unwrap_or_else(|e| unreachable!("{e}")),
                valid_until: Date::new("date", 2025, 1, day).unwrap_or_else(|e| unreachable!("{e}")),
                evidence,
            })
        };
        let body =
            AttestationBody { attester: name.clone(), sequence: seq, issued_at_ms: SIM_GENESIS_TIME_MS + seq, claim };
        Leaf::new(body.sign(key, &self.chain_id))
    }
}
