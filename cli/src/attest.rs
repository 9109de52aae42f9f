//! `credence attest`: build, sign and submit (or print) an attestation; amounts are decimal yuan parsed exactly into fen.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::{Args, Subcommand};
use credence_ledger::access::{CONSENT_LIFETIME_MS_MAX, Consent, FactKind, Purpose};
use credence_ledger::attestation::{
    Attestation, AttestationBody, AttestationId, Claim, PatentPledge, PatentValuation, PledgeRelease, RdCategory,
    RdSpend, Revocation, ValuationMethod,
};
use credence_ledger::confidential::Opening;
use credence_ledger::genesis::Genesis;
use credence_ledger::hash::{Hash, HashOf};
use credence_ledger::ids::{Currency, Date, MemberName, Money, PatentNumber, Period, Uscc};
use credence_ledger::sig::SecretKey;
use credence_node::runtime::now_ms;
use serde_json::json;

use crate::http;

/// How long `--wait` waits for a commit.
const WAIT_MAX: Duration = Duration::from_secs(60);
/// Most sendings of one attestation: a node that answers 429 or 503 (busy, mempool full,
/// rate-limited) or not at all is asked again after a back-off.
const SUBMIT_ATTEMPTS: u32 = 6;
/// Back-off before the second sending; it doubles each time, up to [`SUBMIT_BACK_OFF_MAX`].
const SUBMIT_BACK_OFF_FIRST: Duration = Duration::from_millis(250);
const SUBMIT_BACK_OFF_MAX: Duration = Duration::from_secs(4);

#[derive(Args, Debug)]
pub struct AttestArgs {
    #[command(subcommand)]
    kind: Kind,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
pub(crate) struct Common {
    /// The attester's key file.
    #[arg(long, global = true)]
    pub(crate) key: Option<PathBuf>,
    /// For an encrypted key file: read its passphrase from this environment variable.
    #[arg(long, global = true, value_name = "VAR", conflicts_with = "passphrase_file")]
    pub(crate) passphrase_env: Option<String>,
    /// For an encrypted key file: read its passphrase from this file (mode 0600).
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) passphrase_file: Option<PathBuf>,
    /// The node's API.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    pub(crate) node: String,
    /// The chain's genesis file (default: fetched from the node).
    #[arg(long, global = true)]
    pub(crate) genesis: Option<PathBuf>,
    /// Sequence number (default: the node's next for this attester, counting pending ones).
    #[arg(long, global = true)]
    pub(crate) sequence: Option<u64>,
    /// Print the signed attestation instead of submitting it.
    #[arg(long, global = true)]
    pub(crate) dry_run: bool,
    /// Wait until the attestation is committed, and print its height and leaf index.
    #[arg(long, global = true)]
    pub(crate) wait: bool,
    /// Print one JSON object.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Seal the amount (rd-spend, patent-valuation, pledge): the ledger gets a salted
    /// commitment, and the opening goes to this member's own node (`--node`), which discloses
    /// it to consented readers (docs/ACCESS.md "Confidential amounts").
    #[arg(long, global = true)]
    pub(crate) confidential: bool,
}

/// Evidence: the SHA-256 of a document kept off-ledger.
#[derive(Args, Debug)]
struct Evidence {
    /// SHA-256 of the evidence document, 64 hex digits.
    #[arg(long, conflicts_with = "evidence_file")]
    evidence: Option<String>,
    /// A file whose SHA-256 is recorded as evidence.
    #[arg(long)]
    evidence_file: Option<PathBuf>,
}

impl Evidence {
    /// The evidence hash; all zeros when none is given.
    fn hash(&self) -> Result<Hash> {
        if let Some(h) = &self.evidence {
            return Ok(Hash::from_hex("--evidence", h)?);
        }
        if let Some(f) = &self.evidence_file {
            let bytes = std::fs::read(f).with_context(|| format!("--evidence-file: cannot read {}", f.display()))?;
            return Ok(Hash::digest(&[&bytes]));
        }
        Ok(Hash::ZERO)
    }
}

#[derive(Subcommand, Debug)]
enum Kind {
    /// Audited R&D spend of an enterprise for a year (2024) or quarter (2024Q3).
    RdSpend {
        #[arg(long)]
        enterprise: String,
        #[arg(long)]
        period: String,
        /// Decimal yuan, e.g. 1250000.00
        #[arg(long)]
        amount: String,
        #[arg(long, default_value = "CNY")]
        currency: String,
        /// total, personnel, direct-inputs, depreciation, amortization, new-product-design, commissioned, other
        #[arg(long, default_value = "total")]
        category: String,
        #[command(flatten)]
        evidence: Evidence,
    },
    /// An appraiser's valuation of a patent.
    PatentValuation {
        #[arg(long)]
        patent: String,
        #[arg(long)]
        owner: String,
        #[arg(long)]
        value: String,
        #[arg(long, default_value = "CNY")]
        currency: String,
        /// income, market or cost
        #[arg(long)]
        method: String,
        /// YYYY-MM-DD
        #[arg(long)]
        valuation_date: String,
        /// YYYY-MM-DD (inclusive)
        #[arg(long)]
        valid_until: String,
        #[command(flatten)]
        evidence: Evidence,
    },
    /// A patent pledged to a bank (the pledgee, by default the attester).
    Pledge {
        #[arg(long)]
        patent: String,
        #[arg(long)]
        pledgor: String,
        #[arg(long)]
        amount: String,
        #[arg(long, default_value = "CNY")]
        currency: String,
        #[arg(long)]
        term_months: u16,
        #[arg(long)]
        pledgee: Option<String>,
        /// YYYY-MM-DD (default: today, UTC)
        #[arg(long)]
        start: Option<String>,
        #[command(flatten)]
        evidence: Evidence,
    },
    /// The pledgee releases a pledge.
    Release {
        /// Id of the pledge attestation.
        #[arg(long)]
        pledge: String,
    },
    /// Record an enterprise's written authorisation (授权书) for a member to read its facts
    /// (docs/ACCESS.md); withdraw it with `revoke --target <its id>`.
    Consent {
        /// The enterprise that signed the authorisation.
        #[arg(long)]
        enterprise: String,
        /// The member whose access keys may read under it.
        #[arg(long)]
        recipient: String,
        /// loan-application, post-loan-monitoring, guarantee-review or risk-pool-claim
        #[arg(long)]
        purpose: String,
        /// The facts covered, comma-separated: rd-spend, patent-valuation, pledge.
        #[arg(long, value_delimiter = ',', default_value = "rd-spend,patent-valuation,pledge")]
        scope: Vec<String>,
        /// Days until it lapses (at most 1,830).
        #[arg(long, default_value_t = 365)]
        days: u64,
        /// The signed authorisation (required): `--evidence-file` or `--evidence`.
        #[command(flatten)]
        evidence: Evidence,
    },
    /// Revoke one of your own attestations (or access-key grants and consents), optionally
    /// naming the one that supersedes it.
    Revoke {
        #[arg(long)]
        target: String,
        #[arg(long)]
        superseded_by: Option<String>,
    },
}

/// `days` from now in Unix ms, refused (naming `field`) beyond `lifetime_max_ms` (rule R025).
pub fn expiry_ms(field: &str, days: u64, lifetime_max_ms: u64) -> Result<u64> {
    let ms = days.checked_mul(86_400_000).filter(|ms| *ms >= 1 && *ms <= lifetime_max_ms);
    let Some(ms) = ms else {
        bail!("{field}: must be 1 to {} days", lifetime_max_ms / 86_400_000);
    };
    Ok(now_ms().saturating_add(ms))
}

fn id(field: &'static str, s: &str) -> Result<AttestationId> {
    Ok(HashOf::from_hash(Hash::from_hex(field, s)?))
}

fn category(s: &str) -> Result<RdCategory> {
    Ok(match s {
        "total" => RdCategory::Total,
        "personnel" => RdCategory::Personnel,
        "direct-inputs" => RdCategory::DirectInputs,
        "depreciation" => RdCategory::Depreciation,
        "amortization" => RdCategory::Amortization,
        "new-product-design" => RdCategory::NewProductDesign,
        "commissioned" => RdCategory::Commissioned,
        "other" => RdCategory::Other,
        _ => bail!(
            "--category: '{s}' is not one of total, personnel, direct-inputs, depreciation, amortization, new-product-design, commissioned, other"
        ),
    })
}

fn method(s: &str) -> Result<ValuationMethod> {
    Ok(match s {
        "income" => ValuationMethod::Income,
        "market" => ValuationMethod::Market,
        "cost" => ValuationMethod::Cost,
        _ => bail!("--method: '{s}' is not one of income, market, cost"),
    })
}

fn money(field: &'static str, amount: &str, currency: &str) -> Result<Money> {
    let currency = Currency::parse("--currency", currency)?;
    Ok(Money::parse_decimal(field, amount, currency)?)
}

/// Builds the claim from the command line; `me` is the attester (default pledgee).
fn claim(kind: &Kind, me: &MemberName) -> Result<Claim> {
    Ok(match kind {
        Kind::RdSpend { enterprise, period, amount, currency, category: c, evidence } => Claim::RdSpend(RdSpend {
            enterprise: Uscc::parse("--enterprise", enterprise)?,
            period: Period::parse("--period", period)?,
            amount: money("--amount", amount, currency)?.into(),
            category: category(c)?,
            evidence: evidence.hash()?,
        }),
        Kind::PatentValuation { patent, owner, value, currency, method: m, valuation_date, valid_until, evidence } => {
            Claim::PatentValuation(PatentValuation {
                patent: PatentNumber::parse("--patent", patent)?,
                owner: Uscc::parse("--owner", owner)?,
                value: money("--value", value, currency)?.into(),
                method: method(m)?,
                valuation_date: Date::parse("--valuation-date", valuation_date)?,
                valid_until: Date::parse("--valid-until", valid_until)?,
                evidence: evidence.hash()?,
            })
        }
        Kind::Pledge { patent, pledgor, amount, currency, term_months, pledgee, start, evidence } => {
            Claim::PatentPledge(PatentPledge {
                patent: PatentNumber::parse("--patent", patent)?,
                pledgor: Uscc::parse("--pledgor", pledgor)?,
                pledgee: match pledgee {
                    Some(p) => MemberName::parse("--pledgee", p)?,
                    None => me.clone(),
                },
                secured: money("--amount", amount, currency)?.into(),
                start: match start {
                    Some(s) => Date::parse("--start", s)?,
                    None => Date::from_unix_ms(now_ms())?,
                },
                term_months: *term_months,
                evidence: evidence.hash()?,
            })
        }
        Kind::Release { pledge } => Claim::PledgeRelease(PledgeRelease { pledge: id("--pledge", pledge)? }),
        Kind::Consent { enterprise, recipient, purpose, scope, days, evidence } => {
            if evidence.evidence.is_none() && evidence.evidence_file.is_none() {
                bail!(
                    "--evidence-file or --evidence: a consent records the SHA-256 of the enterprise's signed authorisation"
                );
            }
            let purpose = match Purpose::parse(purpose) {
                Some(p) if p != Purpose::Supervision => p,
                _ => bail!(
                    "--purpose: '{purpose}' is not one of loan-application, post-loan-monitoring, guarantee-review, risk-pool-claim"
                ),
            };
            let mut kinds = Vec::new();
            for k in scope {
                let Some(f) = FactKind::parse(k.trim()) else {
                    bail!("--scope: '{k}' is not one of rd-spend, patent-valuation, pledge");
                };
                kinds.push(f);
            }
            kinds.sort();
            kinds.dedup();
            Claim::Consent(Consent {
                enterprise: Uscc::parse("--enterprise", enterprise)?,
                recipient: MemberName::parse("--recipient", recipient)?,
                purpose,
                scope: kinds,
                expires_at_ms: expiry_ms("--days", *days, CONSENT_LIFETIME_MS_MAX)?,
                evidence: evidence.hash()?,
            })
        }
        Kind::Revoke { target, superseded_by } => Claim::Revocation(Revocation {
            target: id("--target", target)?,
            superseded_by: superseded_by.as_deref().map(|s| id("--superseded-by", s)).transpose()?,
        }),
    })
}

pub(crate) fn genesis(common: &Common) -> Result<Genesis> {
    if let Some(path) = &common.genesis {
        return Ok(Genesis::load(path)?);
    }
    crate::query::node_genesis(&mut http::Conn::new(&common.node)?)
}

/// The signed attestation as `--dry-run` prints it and `POST /v1/attestations` takes it:
/// the canonical bytes are authoritative; `decoded` is for humans and ignored by the node.
/// With the openings of the attestation's sealed amounts when it has any (for its own node only).
pub fn wire_json_with(a: &Attestation, openings: &[Opening]) -> serde_json::Value {
    let b = &a.body;
    let mut v = json!({
        "attestation": B64.encode(a.to_bytes()),
        "decoded": {
            "id": a.id().to_string(),
            "attester": b.attester.as_str(),
            "sequence": b.sequence,
            "issued_at_ms": b.issued_at_ms,
            "kind": b.claim.kind().name(),
        },
    });
    if !openings.is_empty() {
        v["openings"] = openings
            .iter()
            .map(|o| json!({"field": o.field, "salt": hex::encode(o.salt), "fen": o.fen}))
            .collect::<Vec<_>>()
            .into();
    }
    v
}

/// Sends `a` to the node; retries (at most [`SUBMIT_ATTEMPTS`] sendings, with back-off
/// from `back_off`) while the node is busy or does not answer. A retry answered
/// `duplicate` means an earlier sending got through: that is success.
fn send(node: &str, a: &Attestation, openings: &[Opening], mut back_off: Duration) -> Result<()> {
    let body = wire_json_with(a, openings);
    let mut attempt = 1;
    loop {
        let why = match http::post_json(node, "/v1/attestations", &body) {
            Ok(r) if r.status == 202 => return Ok(()),
            Ok(r) if r.status == 409 && attempt > 1 && r.json().is_ok_and(|v| v["error"]["code"] == "duplicate") => {
                return Ok(());
            }
            Ok(r) if matches!(r.status, 429 | 503) => format!("the node is busy (HTTP {}): {}", r.status, r.text()),
            Ok(r) => bail!("the node refused the attestation (HTTP {}): {}", r.status, r.text()),
            Err(e) => format!("{e:#}"),
        };
        if attempt == SUBMIT_ATTEMPTS {
            bail!("{why}; gave up after {SUBMIT_ATTEMPTS} sendings");
        }
        eprintln!("{why}; sending again in {} ms", back_off.as_millis());
        std::thread::sleep(back_off);
        back_off = (back_off * 2).min(SUBMIT_BACK_OFF_MAX);
        attempt += 1;
    }
}

/// The member `key` belongs to in `genesis`.
pub fn member_of(genesis: &Genesis, key: &SecretKey) -> Result<MemberName> {
    genesis
        .members
        .iter()
        .find(|m| m.public_key == key.public())
        .map(|m| m.name.clone())
        .context("--key: this key belongs to no member of the chain's genesis")
}

/// The sequence `me` signs next, as the node counts it (committed and pending).
pub fn next_sequence(node: &str, me: &MemberName) -> Result<u64> {
    let r = http::get(node, &format!("/v1/attesters/{me}/next-sequence"))?;
    let v = r.json()?;
    v["next_sequence"].as_u64().with_context(|| format!("the node did not give a next sequence: {}", r.text()))
}

/// Submits `a` to the node; with `wait`, waits for its commit (through the public inclusion
/// proof, so no access key is needed). Returns `{id, sequence[, height, leaf_index]}`.
pub fn submit(node: &str, a: &Attestation, wait: bool) -> Result<serde_json::Value> {
    submit_with(node, a, &[], wait)
}

/// [`submit`] with the openings of `a`'s sealed amounts: the node stores them durably before it
/// answers (and refuses them unless it is the attester's own node).
pub fn submit_with(node: &str, a: &Attestation, openings: &[Opening], wait: bool) -> Result<serde_json::Value> {
    let id = a.id();
    send(node, a, openings, SUBMIT_BACK_OFF_FIRST)?;
    let mut out = json!({"id": id.to_string(), "sequence": a.body.sequence});
    if wait {
        let started = Instant::now();
        loop {
            let r = http::get(node, &format!("/v1/proofs/inclusion/{id}"))?;
            if r.status == 200 {
                let v = r.json()?;
                out["height"] = v["height"].clone();
                out["leaf_index"] = v["leaf_index"].clone();
                break;
            }
            if started.elapsed() > WAIT_MAX {
                bail!("--wait: {id} was not committed within {} s", WAIT_MAX.as_secs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(out)
}

pub fn run(args: &AttestArgs) -> Result<ExitCode> {
    let c = &args.common;
    let key_path = c.key.as_ref().context("--key: the attester's key file is required")?;
    let passphrase = crate::keys::PassphraseArgs {
        passphrase_env: c.passphrase_env.clone(),
        passphrase_file: c.passphrase_file.clone(),
    };
    let key = crate::keys::read_key(key_path, &passphrase)?;
    let genesis = genesis(c)?;
    let me = member_in_force(&genesis, &c.node, &key)?;
    let mut claim = claim(&args.kind, &me)?;
    claim.check_fields()?;
    // The amount's own rules were checked in clear just above; now only its commitment goes on the ledger.
    let openings = if c.confidential {
        let o = claim.seal_amounts().map_err(anyhow::Error::msg)?;
        if o.is_empty() {
            bail!("--confidential: a {} record has no amount that may be sealed", claim.kind().name());
        }
        o
    } else {
        Vec::new()
    };
    sign_and_submit(c, &genesis, &key, me, claim, &openings)
}

/// The member whose key `key` is in force: the node's `/v1/governance` (public) names
/// the members and keys in force (a key rotated in, a member added by governance); if the
/// node cannot say, a genesis member's key ([`member_of`]).
pub(crate) fn member_in_force(genesis: &Genesis, node: &str, key: &SecretKey) -> Result<MemberName> {
    let public = key.public();
    let governed = || -> Result<Option<MemberName>> {
        let r = http::get(node, "/v1/governance")?;
        if r.status != 200 {
            return Ok(None);
        }
        let v = r.json()?;
        let hex = hex::encode(public.0);
        let found = v["members"].as_array().into_iter().flatten().find(|m| m["key"] == hex.as_str());
        Ok(match found.and_then(|m| m["name"].as_str()) {
            Some(n) => Some(MemberName::parse("member", n)?),
            None => None,
        })
    };
    if let Some(name) = governed().ok().flatten() {
        return Ok(name);
    }
    member_of(genesis, key).context("--key: this key is no member's key in force (nor a genesis member's)")
}

/// Signs `claim` as `me` with the next sequence (or `--sequence`) and submits it (or
/// prints it with `--dry-run`), waiting for its commit with `--wait`; `openings` (of its
/// sealed amounts) go with it to the attester's own node.
pub(crate) fn sign_and_submit(
    c: &Common,
    genesis: &Genesis,
    key: &SecretKey,
    me: MemberName,
    claim: Claim,
    openings: &[Opening],
) -> Result<ExitCode> {
    let sequence = match c.sequence {
        Some(s) => s,
        None if c.dry_run && c.genesis.is_some() => {
            bail!("--sequence: required with --dry-run and --genesis (no node to ask)")
        }
        None => next_sequence(&c.node, &me)?,
    };
    let body = AttestationBody { attester: me, sequence, issued_at_ms: now_ms(), claim };
    let a = body.sign(key, &genesis.hash());
    let id = a.id();
    if c.dry_run {
        // With --confidential this prints the openings too: keep the output as secret as the amount.
        println!("{}", wire_json_with(&a, openings));
        return Ok(ExitCode::SUCCESS);
    }
    let out = submit_with(&c.node, &a, openings, c.wait)?;
    if c.json {
        println!("{out}");
    } else {
        println!("id          {id}");
        if c.wait {
            println!("height      {}\nleaf_index  {}", out["height"], out["leaf_index"]);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_server::{port, serve};
    use credence_ledger::sig::SecretKey;

    fn attestation() -> Attestation {
        let claim = Claim::RdSpend(RdSpend {
            enterprise: Uscc::parse("enterprise", credence_ledger::demo::REAL_USCCS[0]).expect("a real USCC"),
            period: Period::new("period", 2024, 0).expect("period"),
            amount: Money { fen: 100, currency: Currency::CNY }.into(),
            category: RdCategory::Total,
            evidence: Hash::ZERO,
        });
        let body = AttestationBody {
            attester: MemberName::parse("attester", "bank-a").expect("name"),
            sequence: 1,
            issued_at_ms: 1,
            claim,
        };
        body.sign(&SecretKey::from_seed([1; 32]), &Hash::ZERO)
    }

    const BUSY: &str = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\n{}";
    const ACCEPTED: &str = "HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}";
    const DUPLICATE: &str = "HTTP/1.1 409 Conflict\r\nContent-Length: 30\r\n\r\n{\"error\":{\"code\":\"duplicate\"}}";
    const BAD: &str = "HTTP/1.1 422 Unprocessable Entity\r\nContent-Length: 2\r\n\r\n{}";

    fn node(offset: u16) -> String {
        format!("http://127.0.0.1:{}", port(offset))
    }

    #[test]
    fn a_busy_node_is_asked_again_until_it_accepts() {
        let requests = serve(20, |i, _| Some((if i < 2 { BUSY } else { ACCEPTED }, true)));
        send(&node(20), &attestation(), &[], Duration::from_millis(1)).expect("accepted on the third sending");
        assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[test]
    fn a_lost_answer_then_duplicate_means_the_first_sending_got_through() {
        let requests = serve(21, |i, _| if i == 0 { None } else { Some((DUPLICATE, true)) });
        send(&node(21), &attestation(), &[], Duration::from_millis(1)).expect("already pending");
        assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[test]
    fn a_refusal_is_not_retried_and_a_node_busy_for_good_is_given_up() {
        let requests = serve(22, |_, _| Some((BAD, true)));
        let e = send(&node(22), &attestation(), &[], Duration::from_millis(1)).expect_err("refused");
        assert!(e.to_string().contains("HTTP 422"), "{e}");
        assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 1);

        let requests = serve(23, |_, _| Some((BUSY, true)));
        let e = send(&node(23), &attestation(), &[], Duration::from_millis(1)).expect_err("busy for good");
        assert!(e.to_string().contains(&format!("gave up after {SUBMIT_ATTEMPTS} sendings")), "{e}");
        assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), SUBMIT_ATTEMPTS as usize);
    }
}
