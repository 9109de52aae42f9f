//! A generator of realistic signed demo chains (varied kinds, members, enterprises and patents), for `credence generate`, tests and benchmarks.
//!
//! Keys come from a seed, so a chain is reproducible. They are test fixtures:
//! anyone who knows the seed can sign as these members.

use sha2::{Digest, Sha256};

use crate::attestation::{
    AttestationBody, AttestationId, Claim, PatentPledge, PatentValuation, PledgeRelease, RdCategory, RdSpend,
    Revocation, ValuationMethod,
};
use crate::block::{Block, BlockHeader, CertifiedBlock, Leaf};
use crate::checkpoint::{self, Checkpoint};
use crate::genesis::{ConsensusParams, Genesis, GenesisError, MemberSpec, Role};
use crate::hash::Hash;
use crate::ids::{Currency, Date, Money, PatentNumber, Period, Uscc};
use crate::rules::StateView;
use crate::sig::SecretKey;
use crate::verify::{ChainContext, Tip};

/// The demo consortium: (name, roles, validator). The loan world
/// ([`crate::demo_world`]) needs the banks, the appraiser, the centres and the pool.
pub const MEMBERS: &[(&str, &[Role], bool)] = &[
    ("bank-icbc-sz", &[Role::Bank], true),
    ("bank-ccb-hz", &[Role::Bank], true),
    ("sz-tech-finance-centre", &[Role::ServiceCentre], true),
    ("zhonghe-appraisal", &[Role::Appraiser], true),
    ("bank-cmb-sz", &[Role::Bank], false),
    ("hz-tech-finance-centre", &[Role::ServiceCentre], false),
    ("sz-ip-risk-pool", &[Role::RiskPool], false),
];

/// Genesis time of `configs/genesis.toml` (2025-01-01T00:00:00Z).
pub const EXAMPLE_GENESIS_TIME_MS: u64 = 1_735_689_600_000;

/// Real unified social credit codes, used alongside generated ones.
pub const REAL_USCCS: [&str; 3] = ["914403001922038216", "91440300708461136T", "91330100716105852F"];

/// Deterministic byte stream from a seed (SHA-256 in counter mode); demo data only.
#[derive(Debug)]
pub struct DemoRng {
    seed: [u8; 32],
    counter: u64,
}

impl DemoRng {
    pub fn new(seed: u64) -> Self {
        DemoRng { seed: Sha256::digest(seed.to_le_bytes()).into(), counter: 0 }
    }
    pub fn next_u64(&mut self) -> u64 {
        self.counter += 1;
        let d = Sha256::new().chain_update(self.seed).chain_update(self.counter.to_le_bytes()).finalize();
        u64::from_le_bytes(d[..8].try_into().unwrap_or_default())
    }
    /// Uniform-ish in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub fn hash(&mut self) -> Hash {
        let mut h = [0u8; 32];
        for c in h.chunks_mut(8) {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        Hash(h)
    }
}

/// The secret key of demo member `name` for `seed`.
pub fn member_key(seed: u64, name: &str) -> SecretKey {
    SecretKey::from_seed(
        Sha256::new()
            .chain_update(b"credence demo key")
            .chain_update(seed.to_le_bytes())
            .chain_update(name)
            .finalize()
            .into(),
    )
}

/// The regulator [`ChainBuilder::with_regulator`] adds to the demo consortium (not a validator).
pub const REGULATOR: &str = "pbc-sz-regulator";

/// A demo genesis with its members' secret keys (in member order).
pub fn genesis(seed: u64, genesis_time_ms: u64) -> Result<(Genesis, Vec<SecretKey>), GenesisError> {
    genesis_of(seed, genesis_time_ms, MEMBERS)
}

/// The demo genesis with [`REGULATOR`] appended as a seventh member (role `regulator`).
pub fn genesis_with_regulator(seed: u64, genesis_time_ms: u64) -> Result<(Genesis, Vec<SecretKey>), GenesisError> {
    let mut members = MEMBERS.to_vec();
    members.push((REGULATOR, &[Role::Regulator], false));
    genesis_of(seed, genesis_time_ms, &members)
}

fn genesis_of(
    seed: u64,
    genesis_time_ms: u64,
    members: &[(&str, &[Role], bool)],
) -> Result<(Genesis, Vec<SecretKey>), GenesisError> {
    let members = members.iter().map(|(name, roles, validator)| MemberSpec {
        name: (*name).to_owned(),
        public_key: member_key(seed, name).public(),
        roles: roles.to_vec(),
        validator: *validator,
    });
    let g = Genesis::new(
        &format!("credence-demo-{seed}"),
        &format!("credence.example/demo-{seed}"),
        genesis_time_ms,
        ConsensusParams::default(),
        members,
    )?;
    let keys = g.members.iter().map(|m| member_key(seed, m.name.as_str())).collect();
    Ok((g, keys))
}

/// The one character that completes `prefix` into a valid identifier, found by trying each.
fn complete<T>(prefix: &str, alphabet: &str, parse: impl Fn(&str) -> Option<T>) -> Option<T> {
    alphabet.chars().find_map(|c| parse(&format!("{prefix}{c}")))
}

/// `n` enterprises: the real codes first, then generated valid ones.
pub fn enterprises(rng: &mut DemoRng, n: usize) -> Vec<Uscc> {
    let mut out: Vec<Uscc> = REAL_USCCS.iter().filter_map(|s| Uscc::parse("enterprise", s).ok()).collect();
    const DIVISIONS: [&str; 6] = ["440300", "330100", "110108", "310115", "320500", "510100"];
    while out.len() < n {
        let division = DIVISIONS[rng.below(DIVISIONS.len() as u64) as usize];
        let org = rng.below(1_000_000_000);
        let prefix = format!("9{}{division}{org:09}", 1);
        if let Some(u) = complete(&prefix, "0123456789ABCDEFGHJKLMNPQRTUWXY", |s| Uscc::parse("enterprise", s).ok()) {
            out.push(u);
        }
    }
    out.truncate(n);
    out
}

/// `n` invention-patent application numbers with valid check digits.
pub fn patents(rng: &mut DemoRng, n: usize) -> Vec<PatentNumber> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let year = 2010 + rng.below(15);
        let kind = [1, 1, 1, 2][rng.below(4) as usize];
        let serial = rng.below(10_000_000);
        let prefix = format!("CN{year}{kind}{serial:07}.");
        if let Some(p) = complete(&prefix, "0123456789X", |s| PatentNumber::parse("patent", s).ok()) {
            out.push(p);
        }
    }
    out
}

/// Builds a realistic chain: blocks of up to `block_records` attestations, each
/// certified by every validator. Blocks are passed to `sink` in order, already
/// checked by the verification core against the chain so far.
#[derive(Debug)]
pub struct ChainBuilder {
    pub ctx: ChainContext,
    /// The genesis keys, by member index.
    keys: Vec<SecretKey>,
    /// Keys rotated in by [`ChainBuilder::rotate_validator_keys`], oldest first.
    rotated: Vec<SecretKey>,
    /// What is in force at the height being built (members' keys, validators).
    in_force: std::sync::Arc<crate::governance::Roster>,
    /// Validator key rotations still to make: (every how many blocks, how many left).
    rotations: Option<(u64, u32)>,
    tip: Tip,
    state: crate::rules::MemState,
    rng: DemoRng,
    enterprises: Vec<Uscc>,
    patents: Vec<PatentNumber>,
    sequences: Vec<u64>,
    /// Committed attestations per member that may still be revoked: (id, kind).
    own: Vec<Vec<AttestationId>>,
    /// Active pledges: (pledge id, pledgee member index, patent).
    pledges: Vec<(AttestationId, usize, PatentNumber)>,
    pledged: std::collections::HashSet<PatentNumber>,
    time_ms: u64,
    /// The loan world handed out before the bulk records, if asked for.
    world: Option<crate::demo_world::LoanWorld>,
    /// For a loans-only chain: the next world to plan once `world` runs out.
    worlds: Option<WorldChain>,
    /// One enterprise given a fixed number of the bulk records ([`ChainBuilder::focus`]).
    focus: Option<Focus>,
}

/// The worlds of a loans-only chain still to come ([`ChainBuilder::loans_only`]).
#[derive(Debug)]
struct WorldChain {
    seed: u64,
    next: u32,
    taken: std::collections::HashSet<crate::cn_ids::PatentRef>,
}

/// Every `every`-th bulk record is about `enterprise`, until `left` is 0.
#[derive(Debug, Clone, Copy)]
struct Focus {
    enterprise: Uscc,
    left: u64,
    every: u64,
    seen: u64,
}

/// Why a demo chain could not be built (a bug in the generator, or a sink failure).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Genesis(#[from] GenesisError),
    #[error("generated block failed verification: {0}")]
    Verify(#[from] crate::verify::VerifyError),
    #[error("sink: {0}")]
    Sink(String),
    #[error("reading the chain's state: {0}")]
    State(String),
    #[error(transparent)]
    World(#[from] crate::demo_world::MissingMember),
}

impl ChainBuilder {
    pub fn new(seed: u64, genesis_time_ms: u64) -> Result<ChainBuilder, BuildError> {
        ChainBuilder::from_genesis(seed, genesis(seed, genesis_time_ms)?)
    }

    /// A builder over [`genesis_with_regulator`]: the demo consortium and a regulator.
    pub fn with_regulator(seed: u64, genesis_time_ms: u64) -> Result<ChainBuilder, BuildError> {
        ChainBuilder::from_genesis(seed, genesis_with_regulator(seed, genesis_time_ms)?)
    }

    fn from_genesis(seed: u64, (g, keys): (Genesis, Vec<SecretKey>)) -> Result<ChainBuilder, BuildError> {
        let genesis_time_ms = g.genesis_time_ms;
        let mut rng = DemoRng::new(seed);
        let enterprises = enterprises(&mut rng, 200);
        let patents = patents(&mut rng, 2000);
        let n = g.members.len();
        let ctx = ChainContext::new(g);
        let tip = Tip::genesis(&ctx);
        Ok(ChainBuilder {
            tip,
            in_force: std::sync::Arc::clone(ctx.genesis_roster()),
            ctx,
            keys,
            rotated: Vec::new(),
            rotations: None,
            state: Default::default(),
            rng,
            enterprises,
            patents,
            sequences: vec![1; n],
            own: vec![Vec::new(); n],
            pledges: Vec::new(),
            pledged: Default::default(),
            time_ms: genesis_time_ms,
            world: None,
            worlds: None,
            focus: None,
        })
    }

    /// A builder whose first records are the loan world ([`crate::demo_world::LoanWorld`],
    /// about 4,500 records), then the bulk mix of [`ChainBuilder::new`].
    pub fn with_loan_world(seed: u64, genesis_time_ms: u64) -> Result<ChainBuilder, BuildError> {
        let mut b = ChainBuilder::new(seed, genesis_time_ms)?;
        let world = crate::demo_world::LoanWorld::new(seed, &b.ctx.genesis)?;
        // The bulk's old-style pledges keep off the world's patents.
        b.pledged.extend(world.patents().iter().filter_map(|p| p.modern().copied()));
        b.world = Some(world);
        Ok(b)
    }

    /// A builder whose records are all loan worlds, one after another
    /// ([`crate::demo_world::LoanWorld::nth`]): patent status, appraisals, two-stage pledges,
    /// loans and their performance, pools, disposals and qualifications, for measuring a
    /// ledger of the loan kinds. After [`crate::demo_world::LOAN_WORLDS_MAX`] worlds (about
    /// 3 million records) it goes on with the bulk mix.
    pub fn loans_only(seed: u64, genesis_time_ms: u64) -> Result<ChainBuilder, BuildError> {
        let mut b = ChainBuilder::new(seed, genesis_time_ms)?;
        let mut taken = std::collections::HashSet::new();
        b.world = Some(crate::demo_world::LoanWorld::nth(seed, 0, &b.ctx.genesis, &mut taken)?);
        b.worlds = Some(WorldChain { seed, next: 1, taken });
        Ok(b)
    }

    /// The next claim of the loan worlds, planning the next world when one runs out.
    fn next_world_claim(&mut self) -> Result<Option<(usize, Claim)>, BuildError> {
        let Some(world) = self.world.as_mut() else { return Ok(None) };
        if let Some(x) = world.next_claim() {
            return Ok(Some(x));
        }
        let Some(chain) = self.worlds.as_mut().filter(|c| c.next < crate::demo_world::LOAN_WORLDS_MAX) else {
            return Ok(None);
        };
        let mut next = crate::demo_world::LoanWorld::nth(chain.seed, chain.next, &self.ctx.genesis, &mut chain.taken)?;
        chain.next += 1;
        let claim = next.next_claim();
        self.world = Some(next);
        Ok(claim)
    }

    /// Records of the loan world not yet built into blocks.
    pub fn world_remaining(&self) -> usize {
        self.world.as_ref().map_or(0, |w| w.remaining())
    }

    pub fn genesis(&self) -> &Genesis {
        &self.ctx.genesis
    }

    pub fn keys(&self) -> &[SecretKey] {
        &self.keys
    }

    fn members_with(&self, role: crate::genesis::Role) -> Vec<usize> {
        self.ctx.genesis.members.iter().enumerate().filter(|(_, m)| m.roles.contains(&role)).map(|(i, _)| i).collect()
    }

    fn money(&mut self, lo_yuan: u64, hi_yuan: u64) -> Money {
        let yuan = lo_yuan + self.rng.below(hi_yuan - lo_yuan);
        Money { fen: yuan * 100 + self.rng.below(100), currency: Currency::CNY }
    }

    fn date(&mut self, year_lo: u16) -> Date {
        let y = year_lo + self.rng.below(3) as u16;
        let m = 1 + self.rng.below(12) as u8;
        let d = 1 + self.rng.below(28) as u8;
        // Day <= 28 exists in every month.
        Date::new("date", y, m, d).unwrap_or_else(|e| unreachable!("{e}"))
    }

    /// Makes `records` of the next `bulk` bulk records (spread evenly over them) about
    /// `enterprise`: R&D spend and patent valuations, two to one, so its credit profile has a
    /// known size on a ledger of any size (the console's first-paint figure, docs/BENCHMARKS.md).
    /// With `records` > `bulk`, every bulk record is about it until `bulk` run out.
    pub fn focus(&mut self, enterprise: Uscc, records: u64, bulk: u64) {
        let every = bulk.checked_div(records).map_or(u64::MAX, |e| e.max(1));
        self.focus = Some(Focus { enterprise, left: records, every, seen: 0 });
    }

    /// The focus enterprise's next claim, when it is its turn.
    fn focus_claim(&mut self) -> Option<(usize, Claim)> {
        let f = self.focus.as_mut()?;
        f.seen += 1;
        if f.left == 0 || !(f.seen - 1).is_multiple_of(f.every) {
            return None;
        }
        f.left -= 1;
        let (enterprise, n) = (f.enterprise, f.left);
        Some(self.claim_about(enterprise, if n % 3 == 2 { 40 } else { 0 }))
    }

    /// The next bulk record's claim: the focus enterprise's when it is its turn.
    fn next_bulk_claim(&mut self) -> (usize, Claim) {
        match self.focus_claim() {
            Some(c) => c,
            None => self.next_claim(),
        }
    }

    /// One new claim with its attester, consistent with the chain so far.
    fn next_claim(&mut self) -> (usize, Claim) {
        let pick = self.rng.below(100);
        let enterprise = self.enterprises[self.rng.below(self.enterprises.len() as u64) as usize];
        self.claim_about(enterprise, pick)
    }

    /// A claim of the kind `pick` (0..100, the bulk mix's shares) about `enterprise`.
    fn claim_about(&mut self, enterprise: Uscc, pick: u64) -> (usize, Claim) {
        use crate::genesis::Role;
        match pick {
            0..=39 => {
                let centres = self.members_with(Role::ServiceCentre);
                let who = centres[self.rng.below(centres.len() as u64) as usize];
                let year = 2019 + self.rng.below(6) as u16;
                let quarter = self.rng.below(5) as u8;
                let category =
                    [RdCategory::Total, RdCategory::Personnel, RdCategory::DirectInputs, RdCategory::NewProductDesign]
                        [self.rng.below(4) as usize];
                let claim = Claim::RdSpend(RdSpend {
                    enterprise,
                    period: Period::new("period", year, quarter).unwrap_or_else(|e| unreachable!("{e}")),
                    amount: self.money(100_000, 50_000_000).into(),
                    category,
                    evidence: self.rng.hash(),
                });
                (who, claim)
            }
            40..=69 => {
                let appraisers = self.members_with(Role::Appraiser);
                let who = appraisers[self.rng.below(appraisers.len() as u64) as usize];
                let patent = self.patents[self.rng.below(self.patents.len() as u64) as usize];
                let valuation_date = self.date(2023);
                let valid_until =
                    Date::new("valid_until", valuation_date.year() + 1, valuation_date.month(), valuation_date.day())
                        .unwrap_or(valuation_date);
                let method = [ValuationMethod::Income, ValuationMethod::Market, ValuationMethod::Cost]
                    [self.rng.below(3) as usize];
                let claim = Claim::PatentValuation(PatentValuation {
                    patent,
                    owner: enterprise,
                    value: self.money(200_000, 80_000_000).into(),
                    method,
                    valuation_date,
                    valid_until,
                    evidence: self.rng.hash(),
                });
                (who, claim)
            }
            70..=84 => {
                let banks = self.members_with(Role::Bank);
                let who = banks[self.rng.below(banks.len() as u64) as usize];
                let mut patent = self.patents[self.rng.below(self.patents.len() as u64) as usize];
                for _ in 0..8 {
                    if !self.pledged.contains(&patent) {
                        break;
                    }
                    patent = self.patents[self.rng.below(self.patents.len() as u64) as usize];
                }
                if self.pledged.contains(&patent) {
                    return self.next_claim();
                }
                let claim = Claim::PatentPledge(PatentPledge {
                    patent,
                    pledgor: enterprise,
                    pledgee: self.ctx.genesis.members[who].name.clone(),
                    secured: self.money(1_000_000, 30_000_000).into(),
                    start: self.date(2023),
                    term_months: [12, 24, 36, 60][self.rng.below(4) as usize],
                    evidence: self.rng.hash(),
                });
                (who, claim)
            }
            85..=94 if !self.pledges.is_empty() => {
                let i = self.rng.below(self.pledges.len() as u64) as usize;
                let (pledge, pledgee, patent) = self.pledges.swap_remove(i);
                self.pledged.remove(&patent);
                (pledgee, Claim::PledgeRelease(PledgeRelease { pledge }))
            }
            _ => {
                let who = self.rng.below(self.own.len() as u64) as usize;
                match self.own[who].pop() {
                    Some(target) => (who, Claim::Revocation(Revocation { target, superseded_by: None })),
                    None => self.next_claim(),
                }
            }
        }
    }

    /// Builds, certifies and verifies the next block of up to `records` attestations, against
    /// the builder's own copy of the chain's state (which grows with the chain).
    pub fn next_block(&mut self, records: usize) -> Result<crate::block::ValidBlock, BuildError> {
        self.with_own_state(|b, state| b.next_block_over(state, records))
    }

    /// Runs `f` against the builder's own state and applies the block it makes.
    fn with_own_state(
        &mut self,
        f: impl FnOnce(&mut Self, &crate::rules::MemState) -> Result<crate::block::ValidBlock, BuildError>,
    ) -> Result<crate::block::ValidBlock, BuildError> {
        let state = std::mem::take(&mut self.state);
        let made = f(self, &state);
        self.state = state;
        if let Ok(vb) = &made {
            self.state.apply(vb.delta());
        }
        made
    }

    /// [`ChainBuilder::next_block`] against `view`, the state of the chain so far as a store
    /// holds it: the caller commits each block to that store before asking for the next. The
    /// builder then keeps no state that grows with the chain (`credence generate` of ten
    /// million records). Do not mix with [`ChainBuilder::next_block`] on one builder.
    pub fn next_block_over<V: StateView + ?Sized>(
        &mut self,
        view: &V,
        records: usize,
    ) -> Result<crate::block::ValidBlock, BuildError> {
        self.time_ms += 1000 + self.rng.below(500);
        self.follow_governance(view)?;
        let mut leaves = Vec::with_capacity(records);
        let mut records = records;
        if let Some(leaf) = self.next_rotation() {
            leaves.push(leaf);
            records = records.saturating_sub(1);
        }
        let mut pending_pledges = Vec::new();
        for _ in 0..records {
            let from_world = self.next_world_claim()?;
            let in_world = from_world.is_some();
            let (who, claim) = match from_world {
                Some(x) => x,
                None => self.next_bulk_claim(),
            };
            let leaf = self.signed_leaf(who, claim);
            if in_world && let Some(w) = self.world.as_mut() {
                w.bind(leaf.id);
            }
            // Revocations target only rd-spend and valuations (see `own`).
            if let Claim::PatentPledge(p) = &leaf.attestation.body.claim {
                self.pledged.insert(p.patent);
                pending_pledges.push((leaf.id, who, p.patent));
            }
            leaves.push(leaf);
        }
        self.seal(view, leaves, pending_pledges)
    }

    /// `claim` signed by the member at genesis index `who` with its key in force and its next
    /// sequence, issued half a second before the block being built.
    fn signed_leaf(&mut self, who: usize, claim: Claim) -> Leaf {
        let body = AttestationBody {
            attester: self.ctx.genesis.members[who].name.clone(),
            sequence: self.sequences[who],
            issued_at_ms: self.time_ms - 500,
            claim,
        };
        self.sequences[who] += 1;
        Leaf::new(body.sign(self.secret(who), &self.ctx.chain_id))
    }

    /// The secret key of the member at `who`'s key in force.
    fn secret(&self, who: usize) -> &SecretKey {
        let key = self.in_force.members.get(who).map(|m| m.key);
        let found = std::iter::once(&self.keys[who]).chain(self.rotated.iter().rev()).find(|k| Some(k.public()) == key);
        found.unwrap_or(&self.keys[who])
    }

    /// Follows governance to the height about to be built.
    fn follow_governance<V: StateView + ?Sized>(&mut self, view: &V) -> Result<(), BuildError> {
        let height = self.tip.height + 1;
        let (_, roster) = self.ctx.in_force(view, height).map_err(|e| BuildError::State(e.to_string()))?;
        self.in_force = roster;
        Ok(())
    }

    /// Makes the chain change its validator set `changes` times, once every `every_blocks`
    /// blocks from the next one: each time a validator (in turn) rotates its key with a
    /// key-rotation record (docs/encoding.md §12), which takes effect two heights later; the
    /// builder then signs that validator's records and certificates with the new key. Keys
    /// derive from the seed and the rotation's number, like every demo key.
    pub fn rotate_validator_keys(&mut self, changes: u32, every_blocks: u64) {
        self.rotations = (changes > 0).then_some((every_blocks.max(1), changes));
    }

    /// The next key rotation's record, if one is due in the block being built (not while
    /// an earlier one is still waiting for its height).
    fn next_rotation(&mut self) -> Option<Leaf> {
        let (every, left) = self.rotations?;
        let height = self.tip.height + 1;
        let waiting = self.rotated.last().is_some_and(|k| !self.in_force.members.iter().any(|m| m.key == k.public()));
        if left == 0 || !height.is_multiple_of(every) || waiting {
            return None;
        }
        let validators = &self.in_force.validators;
        let number = self.rotated.len() as u64;
        let who = usize::from(*validators.get((number % validators.len().max(1) as u64) as usize)?);
        let name = self.ctx.genesis.members[who].name.clone();
        let new = member_key(self.rng.next_u64() ^ number, &format!("{name}/rotation/{number}"));
        let old = crate::governance::MemberKey::Ed25519(self.secret(who).public());
        let claim = Claim::KeyRotation(crate::attestation::KeyRotation {
            new_key: crate::governance::MemberKey::Ed25519(new.public()),
            possession: crate::governance::sign_possession(&new, &self.ctx.chain_id, &name, &old),
        });
        let leaf = self.signed_leaf(who, claim);
        self.rotated.push(new);
        self.rotations = Some((every, left - 1));
        Some(leaf)
    }

    /// Builds, certifies and verifies the next block holding exactly `claims`, each signed by
    /// the member at the given genesis index, for tests that need particular records (e.g.
    /// access-key grants and consents, which are valid only for a while after their time).
    /// Errors if a claim breaks a ledger rule.
    pub fn next_block_of(&mut self, claims: Vec<(usize, Claim)>) -> Result<crate::block::ValidBlock, BuildError> {
        self.with_own_state(|b, state| b.next_block_of_over(state, claims))
    }

    /// [`ChainBuilder::next_block_of`] against `view`, as [`ChainBuilder::next_block_over`].
    pub fn next_block_of_over<V: StateView + ?Sized>(
        &mut self,
        view: &V,
        claims: Vec<(usize, Claim)>,
    ) -> Result<crate::block::ValidBlock, BuildError> {
        self.time_ms += 1000 + self.rng.below(500);
        self.follow_governance(view)?;
        let mut leaves = Vec::with_capacity(claims.len());
        for (who, claim) in claims {
            leaves.push(self.signed_leaf(who, claim));
        }
        self.seal(view, leaves, Vec::new())
    }

    /// Time of the last block built (genesis time before the first).
    pub fn time_ms(&self) -> u64 {
        self.time_ms
    }

    /// Certifies and verifies a block of `leaves` at the current time, then tracks it.
    fn seal<V: StateView + ?Sized>(
        &mut self,
        view: &V,
        leaves: Vec<Leaf>,
        pending_pledges: Vec<(AttestationId, usize, PatentNumber)>,
    ) -> Result<crate::block::ValidBlock, BuildError> {
        // Revocable records become candidates once committed (a block never revokes its own records).
        let revocable: Vec<(usize, AttestationId)> = leaves
            .iter()
            .filter(|l| matches!(l.attestation.body.claim, Claim::RdSpend(_) | Claim::PatentValuation(_)))
            .filter_map(|l| Some((self.ctx.genesis.member_index(&l.attestation.body.attester)? as usize, l.id)))
            .collect();
        let mut frontier = self.tip.frontier.clone();
        let mut scratch = Vec::new();
        for l in &leaves {
            // A demo chain never nears 2^64 leaves; verify_block below re-checks the root anyway.
            let _ = frontier.push_leaf_hash(l.leaf_hash(), &mut scratch);
        }
        let validators = &self.in_force.validators;
        let proposer_i = (self.tip.height as usize) % validators.len().max(1);
        let proposer = validators.get(proposer_i).map(|i| self.in_force.members[usize::from(*i)].name.clone());
        let header = BlockHeader {
            height: self.tip.height + 1,
            prev: self.tip.hash,
            time_ms: self.time_ms,
            proposer: proposer.unwrap_or_else(|| self.ctx.genesis.members[0].name.clone()),
            tree_size: frontier.size(),
            tree_root: Hash(frontier.root()),
            validator_set: self.in_force.validator_set_hash,
        };
        let certificate = self.certify(&header);
        let cb = CertifiedBlock { block: Block { header, leaves }, certificate };
        let vb = crate::verify::verify_block(&self.ctx, &self.tip, view, cb)?;
        self.tip.advance(&vb);
        self.pledges.extend(pending_pledges);
        for (who, id) in revocable {
            if self.rng.below(50) == 0 {
                self.own[who].push(id);
            }
        }
        Ok(vb)
    }

    /// Every validator in force at the height being built signs the checkpoint of `header`
    /// in round 0, with its key in force.
    pub fn certify(&self, header: &BlockHeader) -> Checkpoint {
        let body = header.checkpoint_body(&self.ctx.genesis, 0);
        let signatures = self
            .in_force
            .validators
            .iter()
            .map(|i| usize::from(*i))
            .map(|i| checkpoint::sign(&body, self.in_force.members[i].name.as_str(), self.secret(i)))
            .collect();
        Checkpoint { body, signatures }
    }

    pub fn tip(&self) -> &Tip {
        &self.tip
    }

    /// Builds blocks until `records` attestations are on the chain, passing each to `sink`.
    pub fn build(
        &mut self,
        records: u64,
        block_records: usize,
        mut sink: impl FnMut(crate::block::ValidBlock) -> Result<(), String>,
    ) -> Result<(), BuildError> {
        let mut done = 0u64;
        while done < records {
            let n = block_records.min((records - done) as usize);
            let vb = self.next_block(n)?;
            done += n as u64;
            sink(vb).map_err(BuildError::Sink)?;
        }
        Ok(())
    }

    /// Builds `blocks` blocks of `block_records` attestations each and returns them certified
    /// (for tests of the verifiers that need a valid chain to damage).
    pub fn certified_blocks(
        &mut self,
        blocks: usize,
        block_records: usize,
    ) -> Result<Vec<crate::block::CertifiedBlock>, BuildError> {
        let mut out = Vec::with_capacity(blocks);
        self.build((blocks * block_records) as u64, block_records, |vb| {
            out.push(vb.into_certified());
            Ok(())
        })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Validator key rotations change the validator set at the heights governance gives; the
    /// chain verifies from genesis, each header commits to the set in force and each
    /// certificate is signed by it, and the rotated members' records use their new keys.
    #[test]
    fn validator_key_rotations_change_the_set_and_the_chain_verifies_from_genesis() {
        use crate::rules::StateView;
        use crate::store::{MemStore, Store};
        let mut b = ChainBuilder::new(5, EXAMPLE_GENESIS_TIME_MS).unwrap();
        b.rotate_validator_keys(5, 3);
        let mut store = MemStore::new(b.genesis());
        for _ in 0..30 {
            store.commit(&b.next_block(10).unwrap()).unwrap();
        }
        let gov = store.governance().unwrap().expect("governance changed");
        assert_eq!(gov.epochs.len(), 6, "the genesis set and five changes");
        let heights: Vec<u64> = gov.epochs.iter().map(|e| e.from_height).collect();
        assert!(heights.windows(2).all(|w| w[0] < w[1]) && heights[0] == 1, "{heights:?}");
        for e in &gov.epochs[1..] {
            let h = store.header(e.from_height).unwrap().unwrap();
            assert_eq!(h.validator_set, e.hash(), "height {} commits to its set", e.from_height);
            let before = store.header(e.from_height - 1).unwrap().unwrap();
            assert_ne!(before.validator_set, h.validator_set, "the set changes at {}", e.from_height);
        }
        let ctx = ChainContext::new(b.genesis().clone());
        let (summary, failure) = crate::verify::verify_store(&ctx, &store, |_| {});
        assert!(failure.is_none(), "{failure:?}");
        assert_eq!(summary.blocks, 30);
        // Records after the last change verify under the new keys (verify_store checked
        // them); the first rotated validator no longer signs with its genesis key.
        let first = gov.epochs[1].validators.iter().zip(&gov.epochs[0].validators).find(|(a, b)| a != b).unwrap();
        assert_ne!(first.0.1, first.1.1);
    }

    #[test]
    fn a_focus_enterprise_gets_exactly_its_records_spread_over_the_bulk() {
        let uscc = Uscc::parse("u", "91310115MA1K4TLJ02").unwrap();
        let mut b = ChainBuilder::new(3, EXAMPLE_GENESIS_TIME_MS).unwrap();
        b.focus(uscc, 60, 1_500);
        let mut positions = Vec::new();
        let mut kinds = std::collections::BTreeMap::<&str, u64>::new();
        let mut at = 0u64;
        b.build(1_500, 250, |vb| {
            for l in &vb.certified().block.leaves {
                let c = &l.attestation.body.claim;
                if c.enterprise() == Some(&uscc) {
                    positions.push(at);
                    *kinds.entry(c.kind().name()).or_default() += 1;
                }
                at += 1;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(positions.len(), 60);
        // Spread over the whole bulk (one in 25), not bunched at its start.
        assert!(positions[0] < 25 && positions[59] >= 1_400, "{positions:?}");
        assert_eq!(kinds.values().sum::<u64>(), 60);
        assert_eq!((kinds["rd-spend"], kinds["patent-valuation"]), (40, 20), "{kinds:?}");
        // Without a focus, no bulk record names it.
        let mut plain = ChainBuilder::new(3, EXAMPLE_GENESIS_TIME_MS).unwrap();
        let mut named = 0;
        plain
            .build(500, 250, |vb| {
                named += vb
                    .certified()
                    .block
                    .leaves
                    .iter()
                    .filter(|l| l.attestation.body.claim.enterprise() == Some(&uscc))
                    .count();
                Ok(())
            })
            .unwrap();
        assert_eq!(named, 0);
    }
}
