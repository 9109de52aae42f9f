//! JSON shapes of the API (requests, responses, errors), with their OpenAPI schemas, and their construction from ledger types.
//!
//! Conventions: attestation ids and block hashes are 64 lowercase hex digits (as in
//! checkpoints); Merkle roots and proof hashes are standard padded base64 (as in C2SP
//! checkpoints); money is integer fen plus the ISO currency code, never a float.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use credence_ledger::attestation::{AttestationId, Claim, RdCategory, ValuationMethod};
use credence_ledger::block::{BlockHeader, Leaf};
use credence_ledger::confidential::Amount;
use credence_ledger::ids::{Currency, MemberName, Money};
use credence_ledger::portfolio::{
    Figures, LTV_BUCKETS_BP, LoanLine, MonthFigures, Portfolio, SERIES_MONTHS_MAX, Series,
};
use credence_ledger::rules::RecordStatus;
use credence_ledger::vote::Slot;

use super::BATCH_ITEMS_MAX;

/// `POST /v1/attestations` body.
///
/// `attestation` is authoritative: the node decodes, checks and stores exactly these
/// bytes. `decoded` may carry a human-readable rendering for logs and reviewers; the
/// node never reads it, and it cannot change what is attested.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// Standard padded base64 of the canonical attestation bytes (body ‖ 64-byte signature), at most 2,048 bytes decoded.
    pub attestation: String,
    /// Optional, ignored: a decoded rendering for humans.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub decoded: Option<serde_json::Value>,
    /// The openings of the attestation's sealed amounts (docs/ACCESS.md "Confidential amounts"),
    /// accepted only by the attester's own node, which checks each against its commitment and
    /// stores them durably before it answers. At most 4.
    #[serde(default)]
    pub openings: Option<Vec<OpeningView>>,
}

/// The opening of one sealed amount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpeningView {
    /// Qualified field name: `rd-spend.amount`, `patent-valuation.value`, `pledge.secured` or `ip-pledge.secured`.
    pub field: String,
    /// The 32-byte salt, 64 hex digits.
    pub salt: String,
    /// The amount in minor units.
    pub fen: u64,
    /// Currency (from the leaf); ignored on submission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The amount in major units with two decimals; ignored on submission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
}

impl OpeningView {
    /// The opening as the ledger defines it; `Err` names what is malformed.
    pub fn to_opening(&self) -> Result<credence_ledger::confidential::Opening, String> {
        use credence_ledger::confidential::{FIELD_NAME_BYTES_MAX, SALT_BYTES};
        if self.field.is_empty() || self.field.len() > FIELD_NAME_BYTES_MAX {
            return Err(format!("field name must be 1 to {FIELD_NAME_BYTES_MAX} bytes"));
        }
        let mut salt = [0u8; SALT_BYTES];
        hex::decode_to_slice(&self.salt, &mut salt)
            .map_err(|_| format!("salt of {} must be {} hex digits", self.field, SALT_BYTES * 2))?;
        Ok(credence_ledger::confidential::Opening { field: self.field.clone(), salt, fen: self.fen })
    }

    /// The view of `o` for an amount in `currency`.
    pub fn of(o: &credence_ledger::confidential::Opening, currency: &Currency) -> OpeningView {
        let m = Money { fen: o.fen, currency: *currency };
        OpeningView {
            field: o.field.clone(),
            salt: hex::encode(o.salt),
            fen: o.fen,
            currency: Some(currency.as_str().to_string()),
            amount: Some(m.to_decimal_string()),
        }
    }
}

/// `GET /v1/attestations/{id}/openings`: the openings of a record's sealed amounts, to be
/// checked by the reader against the commitments in the leaf.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OpeningsView {
    pub id: String,
    /// The member whose node keeps and discloses them (the record's attester).
    pub attester: String,
    pub openings: Vec<OpeningView>,
}

/// `202 Accepted` answer to a submission.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SubmitResponse {
    /// The attestation id (SHA-256 of the body), hex.
    pub id: String,
    /// Always `pending`.
    pub status: String,
    /// Set when the attestation is held: the attester's sequence the pool is waiting for first.
    pub waiting_for_sequence: Option<u64>,
}

/// `POST /v1/attestations/batch` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchSubmitRequest {
    /// Standard padded base64 of canonical attestations, as in `POST /v1/attestations`; at most 1,000.
    #[schema(value_type = Vec<String>, max_items = 1000)]
    pub attestations: BoundedItems,
}

/// A JSON array of strings that keeps at most [`BATCH_ITEMS_MAX`] of them: further items
/// are counted in `total` and skipped without being stored, so an over-long list is
/// refused without holding it in memory.
#[derive(Debug, Default)]
pub struct BoundedItems {
    /// The first items, at most [`BATCH_ITEMS_MAX`].
    pub items: Vec<String>,
    /// How many items the array held.
    pub total: usize,
}

impl<'de> Deserialize<'de> for BoundedItems {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Items;
        impl<'de> Visitor<'de> for Items {
            type Value = BoundedItems;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of base64 strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<BoundedItems, A::Error> {
                let capacity = seq.size_hint().unwrap_or(0).min(BATCH_ITEMS_MAX);
                let mut out = BoundedItems { items: Vec::with_capacity(capacity), total: 0 };
                while out.items.len() < BATCH_ITEMS_MAX {
                    match seq.next_element::<String>()? {
                        Some(item) => out.items.push(item),
                        None => break,
                    }
                }
                out.total = out.items.len();
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    out.total += 1;
                }
                Ok(out)
            }
        }
        d.deserialize_seq(Items)
    }
}

/// `200 OK` answer to a batch: one result per submitted item, in input order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BatchSubmitResponse {
    pub results: Vec<BatchItemResult>,
}

/// One item's result: admitted (as `POST /v1/attestations` answers with 202) or refused
/// (the error that route would give it).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum BatchItemResult {
    Pending(SubmitResponse),
    Refused(ErrorBody),
}

/// An error answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// `R001`…`R029` for ledger rules (stable, see the ledger's rejection codes), else a word:
    /// `bad_request`, `malformed`, `duplicate`, `sequence_taken`, `mempool_full`, `not_found`,
    /// `payload_too_large`, `unsupported_media_type`, `method_not_allowed`, `timeout`, `internal`.
    pub code: String,
    /// The request field, attestation field or parameter at fault.
    pub field: String,
    /// The rule it breaks.
    pub rule: String,
    /// `field: rule`.
    pub message: String,
}

/// An amount of money in integer minor units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MoneyView {
    /// Minor units (1/100 of the major unit).
    pub fen: u64,
    /// ISO 4217 alphabetic code.
    pub currency: String,
    /// The same amount in major units with two decimals, e.g. `1250000.00`.
    pub amount: String,
}

impl From<&Money> for MoneyView {
    fn from(m: &Money) -> Self {
        MoneyView { fen: m.fen, currency: m.currency.as_str().to_string(), amount: m.to_decimal_string() }
    }
}

/// A money field that may be sealed (docs/encoding.md §13): in clear, or only a currency and
/// a salted commitment on the ledger. A sealed amount is never shown as zero: `fen` and
/// `amount` are null until a reader opens it (`GET /v1/attestations/{id}/openings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AmountView {
    /// Minor units; null when sealed and not opened.
    pub fen: Option<u64>,
    /// ISO 4217 alphabetic code (on the ledger in both forms).
    pub currency: String,
    /// Major units with two decimals; null when sealed and not opened.
    pub amount: Option<String>,
    /// The ledger holds only a commitment to the amount.
    pub sealed: bool,
    /// The commitment (hex) when sealed.
    pub commitment: Option<String>,
    /// Set by a reader that checked an opening against `commitment` (the CLI); always false from a node.
    #[serde(default)]
    pub disclosed: bool,
}

impl From<&Amount> for AmountView {
    fn from(a: &Amount) -> Self {
        match a {
            Amount::Plain(m) => AmountView {
                fen: Some(m.fen),
                currency: m.currency.as_str().to_string(),
                amount: Some(m.to_decimal_string()),
                sealed: false,
                commitment: None,
                disclosed: false,
            },
            Amount::Sealed { currency, commitment } => AmountView {
                fen: None,
                currency: currency.as_str().to_string(),
                amount: None,
                sealed: true,
                commitment: Some(commitment.to_hex()),
                disclosed: false,
            },
        }
    }
}

impl AmountView {
    /// The amount as a reader sees it: `1,250,000.00 CNY`, or that it is confidential.
    pub fn money(&self) -> Option<MoneyView> {
        match (self.fen, &self.amount) {
            (Some(fen), Some(amount)) => {
                Some(MoneyView { fen, currency: self.currency.clone(), amount: amount.clone() })
            }
            _ => None,
        }
    }
}

/// The statement of an attestation; `kind` selects the fields.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ClaimView {
    /// Audited R&D spend of an enterprise over a period.
    RdSpend {
        /// Unified social credit code.
        enterprise: String,
        /// `YYYY` (whole year) or `YYYYQn`.
        period: String,
        amount: AmountView,
        /// total, personnel, direct-inputs, depreciation, amortization, new-product-design, commissioned, other.
        category: String,
        /// SHA-256 of the evidence document, hex.
        evidence: String,
    },
    /// An appraiser's valuation of a patent.
    PatentValuation {
        /// CN application number, e.g. `CN202310123456.6`.
        patent: String,
        owner: String,
        value: AmountView,
        /// income, market or cost.
        method: String,
        /// `YYYY-MM-DD`.
        valuation_date: String,
        valid_until: String,
        evidence: String,
    },
    /// A patent pledged to a member bank.
    Pledge {
        patent: String,
        pledgor: String,
        pledgee: String,
        secured: AmountView,
        start: String,
        term_months: u16,
        evidence: String,
    },
    /// The pledgee releases a pledge.
    Release {
        /// Id of the pledge attestation.
        pledge: String,
    },
    /// The original attester withdraws an attestation.
    Revoke { target: String, superseded_by: Option<String> },
    /// Evidence that a validator signed two conflicting consensus statements.
    Equivocation { validator: String, height: u64, round: u32, step: String },
    /// A validator proposes a governance change (`change`: add-member, remove-member,
    /// set-roles, revoke-key or set-consensus; `member` names whom it is about).
    GovProposal { change: String, member: Option<String>, expires_at_ms: u64 },
    /// A validator approves the proposal with this id.
    GovApproval { proposal: String },
    /// The attester replaces its key with `new_key` (hex Ed25519), from two heights on.
    KeyRotation { new_key: String },
    /// A two-stage patent pledge event (reserve, CNIPA registration, release); every field in `description`.
    IpPledge { description: String },
    /// A patent's legal status as of a date.
    PatentStatus { patent: String, owner: String, description: String },
    /// A patent appraisal (valuation v2).
    Appraisal { patent: String, owner: String, value: MoneyView, valid_until: String, description: String },
    /// A loan.
    Loan { lender: String, borrower: String, principal: MoneyView, description: String },
    /// A loan's repayment, classification, default or recovery.
    LoanEvent { loan: String, date: String, description: String },
    /// A risk pool's opening, an enrolment, a claim or a payment.
    RiskPool { description: String },
    /// A pledged patent's disposal.
    Disposal { pledge: String, description: String },
    /// A high-tech enterprise or tech-SME qualification.
    Qualification { enterprise: String, description: String },
    /// A member delegates an access key (its id is the key's RFC 9421 `keyid`).
    AccessKey {
        holder: String,
        /// Ed25519 public key, hex.
        key: String,
        /// member, restricted, regulator.
        scopes: Vec<String>,
        expires_at_ms: u64,
    },
    /// An enterprise's written authorisation for a recipient member.
    Consent {
        enterprise: String,
        recipient: String,
        /// loan-application, post-loan-monitoring, guarantee-review, risk-pool-claim.
        purpose: String,
        /// rd-spend, patent-valuation, pledge.
        scope: Vec<String>,
        expires_at_ms: u64,
        /// SHA-256 of the signed 授权书, hex.
        evidence: String,
    },
    /// The log of one restricted read, by the node that served it.
    Query {
        reader: String,
        /// Id of the access-key grant that signed the read.
        access_key: String,
        enterprise: String,
        purpose: String,
        /// Id of the consent read under; null for a regulator's read.
        consent: Option<String>,
        /// facts, openings, block (a regulator's whole-block read), entries (a regulator's
        /// read of a C2SP entry bundle) or portfolio (a regulator's read of loan lines).
        read: String,
        /// The height of the block read when `read` is block; null otherwise.
        block_height: Option<u64>,
        /// The entry bundle's index when `read` is entries; absent otherwise (so the JSON of
        /// earlier query records, which proof bundles carry, is unchanged).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        entry_bundle: Option<u64>,
        /// The height of the state whose portfolio loan lines were read when `read` is
        /// portfolio; absent otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        portfolio_height: Option<u64>,
    },
    /// The reader may not see this record's content: its kind is `of`. Returned for
    /// enterprise facts to readers without a live consent (docs/ACCESS.md); never a zero amount.
    Withheld {
        /// The record's kind (rd-spend, patent-valuation, pledge, consent, query).
        of: String,
    },
}

impl From<&Claim> for ClaimView {
    fn from(c: &Claim) -> Self {
        match c {
            Claim::RdSpend(c) => ClaimView::RdSpend {
                enterprise: c.enterprise.to_string(),
                period: c.period.to_string(),
                amount: (&c.amount).into(),
                category: category_name(c.category).to_string(),
                evidence: c.evidence.to_hex(),
            },
            Claim::PatentValuation(c) => ClaimView::PatentValuation {
                patent: c.patent.to_string(),
                owner: c.owner.to_string(),
                value: (&c.value).into(),
                method: method_name(c.method).to_string(),
                valuation_date: c.valuation_date.to_string(),
                valid_until: c.valid_until.to_string(),
                evidence: c.evidence.to_hex(),
            },
            Claim::PatentPledge(c) => ClaimView::Pledge {
                patent: c.patent.to_string(),
                pledgor: c.pledgor.to_string(),
                pledgee: c.pledgee.to_string(),
                secured: (&c.secured).into(),
                start: c.start.to_string(),
                term_months: c.term_months,
                evidence: c.evidence.to_hex(),
            },
            Claim::PledgeRelease(c) => ClaimView::Release { pledge: c.pledge.to_string() },
            Claim::Revocation(c) => ClaimView::Revoke {
                target: c.target.to_string(),
                superseded_by: c.superseded_by.map(|s| s.to_string()),
            },
            Claim::Equivocation(e) => {
                let (height, round, slot) = e.first.statement.slot();
                let step = match slot {
                    Slot::Proposal => "proposal",
                    Slot::Prevote => "prevote",
                    Slot::Precommit => "precommit",
                };
                ClaimView::Equivocation { validator: e.validator.to_string(), height, round, step: step.to_string() }
            }
            Claim::GovernanceProposal(p) => ClaimView::GovProposal {
                change: p.change.kind_name().to_string(),
                member: p.change.member().map(ToString::to_string),
                expires_at_ms: p.expires_at_ms,
            },
            Claim::GovernanceApproval(a) => ClaimView::GovApproval { proposal: a.proposal.to_string() },
            Claim::KeyRotation(r) => ClaimView::KeyRotation { new_key: hex::encode(r.new_key.ed25519().0) },
            Claim::IpPledge(c) => ClaimView::IpPledge { description: c.describe() },
            Claim::PatentStatus(c) => ClaimView::PatentStatus {
                patent: c.patent.to_string(),
                owner: c.owner.to_string(),
                description: c.describe(),
            },
            Claim::Appraisal(c) => ClaimView::Appraisal {
                patent: c.patent.to_string(),
                owner: c.owner.to_string(),
                value: (&c.value).into(),
                valid_until: c.valid_until.to_string(),
                description: c.describe(),
            },
            Claim::Loan(c) => ClaimView::Loan {
                lender: c.lender.to_string(),
                borrower: c.borrower.to_string(),
                principal: (&c.principal).into(),
                description: c.describe(),
            },
            Claim::LoanEvent(c) => {
                ClaimView::LoanEvent { loan: c.loan.to_string(), date: c.date.to_string(), description: c.describe() }
            }
            Claim::RiskPool(c) => ClaimView::RiskPool { description: c.describe() },
            Claim::Disposal(c) => ClaimView::Disposal { pledge: c.pledge.to_string(), description: c.describe() },
            Claim::Qualification(c) => {
                ClaimView::Qualification { enterprise: c.enterprise.to_string(), description: c.describe() }
            }
            Claim::AccessKey(g) => ClaimView::AccessKey {
                holder: g.holder.clone(),
                key: hex::encode(g.key.0),
                scopes: g.scopes.iter().map(|s| s.name().to_string()).collect(),
                expires_at_ms: g.expires_at_ms,
            },
            Claim::Consent(c) => ClaimView::Consent {
                enterprise: c.enterprise.to_string(),
                recipient: c.recipient.to_string(),
                purpose: c.purpose.name().to_string(),
                scope: c.scope.iter().map(|s| s.name().to_string()).collect(),
                expires_at_ms: c.expires_at_ms,
                evidence: c.evidence.to_hex(),
            },
            Claim::Query(q) => ClaimView::Query {
                reader: q.reader.to_string(),
                access_key: q.access_key.to_string(),
                enterprise: q.enterprise.to_string(),
                purpose: q.purpose.name().to_string(),
                consent: q.consent.map(|c| c.to_string()),
                read: q.read.name().to_string(),
                block_height: q.read.block_height(),
                entry_bundle: q.read.entry_bundle(),
                portfolio_height: q.read.portfolio_height(),
            },
        }
    }
}

fn category_name(c: RdCategory) -> &'static str {
    match c {
        RdCategory::Total => "total",
        RdCategory::Personnel => "personnel",
        RdCategory::DirectInputs => "direct-inputs",
        RdCategory::Depreciation => "depreciation",
        RdCategory::Amortization => "amortization",
        RdCategory::NewProductDesign => "new-product-design",
        RdCategory::Commissioned => "commissioned",
        RdCategory::Other => "other",
    }
}

fn method_name(m: ValuationMethod) -> &'static str {
    match m {
        ValuationMethod::Income => "income",
        ValuationMethod::Market => "market",
        ValuationMethod::Cost => "cost",
    }
}

/// One attestation, decoded, with where it is.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AttestationView {
    /// SHA-256 of the body, hex.
    pub id: String,
    /// `pending` (in this node's mempool) or `committed`.
    pub status: String,
    /// Pending only: true while waiting for an earlier sequence of its attester.
    pub held: Option<bool>,
    /// Committed only: height of the block holding it.
    pub height: Option<u64>,
    /// Committed only: its index in the ledger's Merkle tree.
    pub leaf_index: Option<u64>,
    /// Committed only: `active`, `revoked` or `released` (pledges), as of the head.
    pub record_status: Option<String>,
    pub attester: String,
    pub sequence: u64,
    /// Unix epoch milliseconds, UTC.
    pub issued_at_ms: u64,
    pub claim: ClaimView,
    /// The 64-byte Ed25519 signature, base64; null when the content is withheld.
    pub signature: Option<String>,
    /// The canonical attestation bytes (the Merkle leaf data), base64; null when the content
    /// is withheld (the leaf hash is still public: `GET /v1/proofs/inclusion/{id}`).
    pub attestation: Option<String>,
}

/// Where a committed attestation is and what became of it.
#[derive(Clone, Copy, Debug)]
pub struct Committed {
    pub height: u64,
    pub leaf_index: u64,
    pub record_status: Option<RecordStatus>,
}

impl AttestationView {
    pub fn pending(leaf: &Leaf, held: bool) -> AttestationView {
        let mut v = AttestationView::base(leaf, "pending");
        v.held = Some(held);
        v
    }

    pub fn committed(leaf: &Leaf, at: Committed) -> AttestationView {
        let mut v = AttestationView::base(leaf, "committed");
        v.height = Some(at.height);
        v.leaf_index = Some(at.leaf_index);
        v.record_status = at.record_status.map(|s| {
            match s {
                RecordStatus::Active => "active",
                RecordStatus::Revoked => "revoked",
                RecordStatus::Released => "released",
            }
            .to_string()
        });
        v
    }

    fn base(leaf: &Leaf, status: &str) -> AttestationView {
        let body = &leaf.attestation.body;
        AttestationView {
            id: leaf.id.to_string(),
            status: status.to_string(),
            held: None,
            height: None,
            leaf_index: None,
            record_status: None,
            attester: body.attester.to_string(),
            sequence: body.sequence,
            issued_at_ms: body.issued_at_ms,
            claim: (&body.claim).into(),
            signature: Some(B64.encode(leaf.attestation.signature.0)),
            attestation: Some(B64.encode(&leaf.bytes)),
        }
    }

    /// This view without the record's content: its kind stays, claim, signature and bytes go.
    pub fn withheld(mut self, kind: &str) -> AttestationView {
        self.claim = ClaimView::Withheld { of: kind.to_string() };
        self.signature = None;
        self.attestation = None;
        self
    }
}

/// One page of committed attestations, ascending by leaf index.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AttestationPage {
    pub items: Vec<AttestationView>,
    /// Pass as `after` for the next page; `null` when this page is the last. A full
    /// page may be followed by an empty one.
    pub next_after: Option<u64>,
}

/// A committed block.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BlockView {
    pub height: u64,
    /// Block hash (SHA-256 of the header), hex.
    pub hash: String,
    /// Previous block hash (block 1: the genesis hash), hex.
    pub prev: String,
    /// Proposer's clock, Unix epoch milliseconds.
    pub time_ms: u64,
    pub proposer: String,
    /// Leaves in the tree after this block.
    pub tree_size: u64,
    /// RFC 9162 root after this block, base64.
    pub tree_root: String,
    /// Validator-set hash, hex.
    pub validator_set: String,
    /// Leaf index of the block's first attestation (its attestations are `[first_leaf_index, tree_size)`).
    pub first_leaf_index: u64,
    /// The commit certificate: a C2SP signed note (tlog-checkpoint) cosigned by the validators.
    pub certificate: String,
    /// Ids of the block's attestations in order, hex.
    pub attestations: Vec<String>,
}

impl BlockView {
    pub fn new(h: &BlockHeader, certificate: String, ids: Vec<String>) -> BlockView {
        BlockView {
            height: h.height,
            hash: h.hash().to_string(),
            prev: h.prev.to_string(),
            time_ms: h.time_ms,
            proposer: h.proposer.to_string(),
            tree_size: h.tree_size,
            tree_root: B64.encode(h.tree_root.0),
            validator_set: h.validator_set.to_hex(),
            first_leaf_index: h.tree_size.saturating_sub(ids.len() as u64),
            certificate,
            attestations: ids,
        }
    }
}

/// Mempool occupancy and bounds.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MempoolView {
    /// Pending attestations (ready + held).
    pub records: usize,
    pub bytes: usize,
    /// Pending attestations waiting for an earlier sequence.
    pub held: usize,
    pub records_max: usize,
    pub bytes_max: usize,
}

/// `GET /v1/status`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatusView {
    /// The genesis hash (what every signature is bound to), hex.
    pub chain_id: String,
    /// The checkpoint origin line.
    pub origin: String,
    /// Height of the last committed block (0 before block 1).
    pub height: u64,
    pub tree_size: u64,
    /// Root at `tree_size`, base64.
    pub tree_root: String,
    /// Hash of the last committed block, hex (`null` before block 1).
    pub block_hash: Option<String>,
    /// Time of the last committed block (genesis time before block 1).
    pub time_ms: u64,
    /// Connected peers.
    pub peers: usize,
    /// True while catching up by block sync.
    pub syncing: bool,
    /// True if this node is a validator.
    pub validator: bool,
    /// This node's member name, if it has one.
    pub member: Option<String>,
    /// Current consensus round, if taking part in consensus.
    pub round: Option<u32>,
    pub mempool: MempoolView,
}

/// An RFC 9162 §2.1.3 inclusion proof.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InclusionProofView {
    pub id: String,
    /// Height of the block that committed the attestation.
    pub height: u64,
    pub leaf_index: u64,
    pub tree_size: u64,
    /// SHA-256(0x00 ‖ attestation bytes), base64.
    pub leaf_hash: String,
    /// Root of the tree of `tree_size` leaves, base64.
    pub root: String,
    /// Audit path, leaf level first (RFC 9162 §2.1.3.1 order), base64 each.
    pub proof: Vec<String>,
}

/// An RFC 9162 §2.1.4 consistency proof.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConsistencyProofView {
    pub from: u64,
    pub to: u64,
    /// Root of the first `from` leaves, base64.
    pub root_from: String,
    /// Root of the first `to` leaves, base64.
    pub root_to: String,
    /// RFC 9162 §2.1.4.1 order, base64 each.
    pub proof: Vec<String>,
}

/// `GET /v1/attesters/{member}/next-sequence`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NextSequenceView {
    pub attester: String,
    /// The sequence to sign next: after the committed and the ready pending attestations.
    pub next_sequence: u64,
    /// Next sequence counting committed attestations only.
    pub committed_next: u64,
    /// Held sequences (waiting for `next_sequence` to arrive), ascending.
    pub held: Vec<u64>,
}

/// `GET /healthz`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthView {
    /// Always `ok` when the node answers.
    pub status: String,
}

/// One member as governance knows it (`GET /v1/governance`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GovMemberView {
    /// Member index (genesis members in name order, then added members; never reused).
    pub index: u16,
    pub name: String,
    /// The key in force, hex Ed25519.
    pub key: String,
    /// Every key held: (first height in force, hex key), oldest first.
    pub keys: Vec<(u64, String)>,
    /// Keys revoked by governance: (hex key, height from which they are refused).
    pub revoked: Vec<(String, u64)>,
    pub roles: Vec<String>,
    pub validator: bool,
    /// The height from which the member may no longer attest, if removed.
    pub removed_from: Option<u64>,
}

/// A governance change in JSON: `kind` is add-member, remove-member, set-roles,
/// revoke-key, set-consensus, add-witness, remove-witness or key-rotation; the other fields
/// as they apply.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GovChangeView {
    pub kind: String,
    pub member: Option<String>,
    /// add-member: its key; revoke-key: the revoked key; key-rotation: the new key;
    /// add-witness: the witness's cosigning key (hex).
    pub key: Option<String>,
    /// add-witness, remove-witness: the witness's key name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witness: Option<String>,
    /// add-witness: the witness's C2SP verifier key (`name+keyid+base64`, as `--witness` takes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vkey: Option<String>,
    /// add-witness: where it serves `POST <url>/add-checkpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// revoke-key: the key that replaces it (hex).
    pub replacement: Option<String>,
    pub roles: Option<Vec<String>>,
    pub validator: Option<bool>,
    /// set-consensus: the new parameters.
    #[schema(value_type = Option<Object>)]
    pub params: Option<serde_json::Value>,
}

/// An open proposal.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GovProposalView {
    /// The proposal's attestation id (approvals name it).
    pub id: String,
    pub proposer: String,
    pub change: GovChangeView,
    pub expires_at_ms: u64,
    /// Validators that approved, the proposer first.
    pub approvals: Vec<String>,
    /// Approvals of validators in force counted now, and how many complete it.
    pub approvals_counted: usize,
    pub approvals_needed: usize,
    /// Height of the block that recorded it.
    pub height: u64,
}

/// A change completed (or applied) and its heights.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GovScheduledView {
    /// First height at which it is in force.
    pub at_height: u64,
    /// Height of the block that completed it (or held the key rotation).
    pub completed_at: u64,
    /// The proposal's id, or the key rotation record's.
    pub record: String,
    pub change: GovChangeView,
}

/// One term of an outside witness: genesis's (from height 1) or one governance added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GovWitnessView {
    /// Its key name in `cosignature/v1` lines.
    pub name: String,
    /// Its C2SP verifier key (`name+keyid+base64`), what `--witness` takes.
    pub vkey: String,
    pub url: String,
    /// The first height it is in force at.
    pub from_height: u64,
    /// The first height it is no longer in force at, if governance removed it.
    pub until_height: Option<u64>,
}

impl GovWitnessView {
    pub fn of(w: &credence_ledger::governance::WitnessTerm) -> GovWitnessView {
        GovWitnessView {
            name: w.name.clone(),
            vkey: w.key().to_vkey_string(),
            url: w.url.clone(),
            from_height: w.from_height,
            until_height: w.until_height,
        }
    }
}

/// A validator set and the first height it certifies.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GovEpochView {
    pub from_height: u64,
    pub validators: Vec<String>,
    /// The hash headers at these heights carry (`validator_set`), hex.
    pub set_hash: String,
}

/// `GET /v1/set-changes`: the certified chain of validator-set changes from genesis up to a
/// height, as proof bundles carry it (docs/AUDITING.md §Set changes).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetChangesView {
    /// The height the changes lead to (the set of the last change is in force there).
    pub height: u64,
    /// Oldest first; empty while the genesis validators are in force.
    pub set_changes: Vec<crate::bundle::SetChange>,
}

/// `GET /v1/governance`: what is in force at the next height, open proposals, changes
/// waiting for their height, and the history.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GovernanceView {
    /// Height of the last committed block.
    pub height: u64,
    /// The height this state is in force at (`height + 1`).
    pub in_force_at: u64,
    pub validators: Vec<String>,
    pub validator_set_hash: String,
    /// Approvals a proposal needs: more than 2/3 of the validators in force.
    pub quorum: usize,
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    pub members: Vec<GovMemberView>,
    pub proposals: Vec<GovProposalView>,
    pub scheduled: Vec<GovScheduledView>,
    pub applied: Vec<GovScheduledView>,
    pub epochs: Vec<GovEpochView>,
    /// The outside witnesses in force at `in_force_at` (genesis's and governance's), in name
    /// order: the node submits each checkpoint to these.
    #[serde(default)]
    pub witnesses: Vec<GovWitnessView>,
    /// Every witness term, oldest first (genesis's from height 1, then governance's).
    #[serde(default)]
    pub witness_history: Vec<GovWitnessView>,
}

impl GovChangeView {
    fn of(gov: &credence_ledger::governance::GovState, p: &credence_ledger::governance::Pending) -> GovChangeView {
        use credence_ledger::governance::{Change, Pending};
        let hex_key = |k: &credence_ledger::governance::MemberKey| hex::encode(k.ed25519().0);
        let roles = |r: &[credence_ledger::genesis::Role]| Some(r.iter().map(|r| r.name().to_owned()).collect());
        let mut v = GovChangeView {
            kind: String::new(),
            member: None,
            key: None,
            replacement: None,
            roles: None,
            validator: None,
            params: None,
            witness: None,
            vkey: None,
            url: None,
        };
        match p {
            Pending::Rotation { member, key, .. } => {
                v.kind = "key-rotation".into();
                v.member = gov.members.get(usize::from(*member)).map(|m| m.name.to_string());
                v.key = Some(hex_key(key));
            }
            Pending::Change { change, .. } => {
                v.kind = change.kind_name().into();
                v.member = change.member().map(ToString::to_string);
                match change {
                    Change::AddMember { key, roles: r, validator, .. } => {
                        v.key = Some(hex_key(key));
                        v.roles = roles(r);
                        v.validator = Some(*validator);
                    }
                    Change::SetRoles { roles: r, validator, .. } => {
                        v.roles = roles(r);
                        v.validator = Some(*validator);
                    }
                    Change::RevokeKey { key, replacement, .. } => {
                        v.key = Some(hex_key(key));
                        v.replacement = Some(hex_key(replacement));
                    }
                    Change::SetConsensus(params) => v.params = serde_json::to_value(params).ok(),
                    Change::AddWitness { name, key, url } => {
                        let w = credence_ledger::witness::WitnessKey { name: name.clone(), key: *key };
                        v.key = Some(hex::encode(key.0));
                        v.vkey = Some(w.to_vkey_string());
                        v.witness = Some(name.clone());
                        v.url = Some(url.clone());
                    }
                    Change::RemoveWitness { name } => v.witness = Some(name.clone()),
                    Change::RemoveMember { .. } => {}
                }
            }
        }
        v
    }
}

impl GovernanceView {
    /// The view of `gov`, in force at `height + 1`.
    pub fn new(gov: &credence_ledger::governance::GovState, height: u64) -> GovernanceView {
        use credence_ledger::governance::{Pending, Scheduled};
        let name = |i: u16| gov.members.get(usize::from(i)).map_or_else(|| format!("#{i}"), |m| m.name.to_string());
        let record = |p: &Pending| match p {
            Pending::Change { proposal, .. } => proposal.to_string(),
            Pending::Rotation { record, .. } => record.to_string(),
        };
        let scheduled = |s: &Scheduled| GovScheduledView {
            at_height: s.at_height,
            completed_at: s.completed_at,
            record: record(&s.pending),
            change: GovChangeView::of(gov, &s.pending),
        };
        let validators = gov.validator_list();
        GovernanceView {
            height,
            in_force_at: height + 1,
            validators: validators.iter().map(|(n, _)| n.to_string()).collect(),
            validator_set_hash: credence_ledger::governance::set_hash(&validators).to_hex(),
            quorum: gov.quorum(),
            params: serde_json::to_value(&gov.params).unwrap_or_default(),
            members: gov
                .members
                .iter()
                .enumerate()
                .map(|(i, m)| GovMemberView {
                    index: u16::try_from(i).unwrap_or(u16::MAX),
                    name: m.name.to_string(),
                    key: hex::encode(m.key().ed25519().0),
                    keys: m.keys.iter().map(|(h, k)| (*h, hex::encode(k.ed25519().0))).collect(),
                    revoked: m.revoked.iter().map(|(k, h)| (hex::encode(k.ed25519().0), *h)).collect(),
                    roles: m.roles.iter().map(|r| r.name().to_owned()).collect(),
                    validator: m.validator && m.is_active(),
                    removed_from: m.removed_from,
                })
                .collect(),
            proposals: gov
                .proposals
                .iter()
                .map(|p| GovProposalView {
                    id: p.id.to_string(),
                    proposer: name(p.proposer),
                    change: GovChangeView::of(gov, &Pending::Change { proposal: p.id, change: p.change.clone() }),
                    expires_at_ms: p.expires_at_ms,
                    approvals: p.approvals.iter().map(|a| name(*a)).collect(),
                    approvals_counted: gov.counted_approvals(p),
                    approvals_needed: gov.quorum(),
                    height: p.height,
                })
                .collect(),
            scheduled: gov.scheduled.iter().map(scheduled).collect(),
            applied: gov
                .applied
                .iter()
                .map(|a| {
                    scheduled(&Scheduled {
                        at_height: a.at_height,
                        completed_at: a.completed_at,
                        pending: a.pending.clone(),
                    })
                })
                .collect(),
            epochs: gov
                .epochs
                .iter()
                .map(|e| GovEpochView {
                    from_height: e.from_height,
                    validators: e.validators.iter().map(|(n, _)| n.to_string()).collect(),
                    set_hash: e.hash().to_hex(),
                })
                .collect(),
            witnesses: gov.witnesses_at(height + 1).into_iter().map(GovWitnessView::of).collect(),
            witness_history: gov.witnesses.iter().map(GovWitnessView::of).collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Portfolio
// ---------------------------------------------------------------------------------------------

/// Figures over IP-pledge loans (loans with collateral, in CNY) that are outstanding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FiguresView {
    /// Loans with principal outstanding.
    pub loans: u64,
    /// Principal outstanding: principal less repayments and recoveries.
    pub outstanding: MoneyView,
    /// Outstanding of loans whose latest class is 次级, 可疑 or 损失.
    pub bad: MoneyView,
    /// `bad` over `outstanding`, in basis points (rounded down; 0 without outstanding).
    pub bad_ratio_bp: u64,
    /// Loans per loan-to-value bucket (principal over the collateral appraisals), bounds in
    /// `PortfolioView::ltv_bounds_bp`; the last bucket is at or above the last bound.
    pub ltv_buckets: Vec<u64>,
}

impl From<&Figures> for FiguresView {
    fn from(f: &Figures) -> FiguresView {
        FiguresView {
            loans: f.loans,
            outstanding: cny(f.outstanding_fen),
            bad: cny(f.bad_fen),
            bad_ratio_bp: f.bad_ratio_bp(),
            ltv_buckets: f.ltv.to_vec(),
        }
    }
}

/// One lender's figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LenderFiguresView {
    pub lender: String,
    pub figures: FiguresView,
}

/// A risk pool's figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PoolFiguresView {
    /// The pool's id (its opening record).
    pub pool: String,
    pub name: String,
    /// The pool's share of a loss, basis points.
    pub pool_bp: u16,
    /// Loans enrolled.
    pub enrolled: u64,
    /// The pool's share of the outstanding principal of its enrolled loans, each capped at the per-loan cap.
    pub exposure: MoneyView,
    pub claimed: MoneyView,
    pub paid: MoneyView,
    /// The claim records (ids).
    pub claims: Vec<String>,
    /// The payment records (ids).
    pub payments: Vec<String>,
}

/// One IP-pledge loan and the records its figures come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LoanLineView {
    /// The loan record's id.
    pub loan: String,
    pub lender: String,
    /// The enterprise borrowing (its USCC).
    pub borrower: String,
    pub principal: MoneyView,
    pub outstanding: MoneyView,
    /// The latest class, e.g. `次级 substandard`.
    pub class: String,
    /// The record that set the class (the loan itself while none did).
    pub class_record: String,
    /// Sum of the collateral appraisals, and their ids.
    pub appraised: MoneyView,
    pub appraisals: Vec<String>,
    /// Principal over `appraised`, basis points (`null` without appraisals).
    pub ltv_bp: Option<u32>,
}

impl From<&LoanLine> for LoanLineView {
    fn from(l: &LoanLine) -> LoanLineView {
        LoanLineView {
            loan: l.loan.to_string(),
            lender: l.lender.to_string(),
            borrower: l.borrower.to_string(),
            principal: cny(l.principal_fen),
            outstanding: cny(l.outstanding_fen),
            class: l.class.name().to_owned(),
            class_record: l.class_record.to_string(),
            appraised: cny(l.appraised_fen),
            appraisals: l.appraisals.iter().map(|a| a.to_string()).collect(),
            ltv_bp: l.ltv_bp(),
        }
    }
}

/// The figures at one month end (IP-pledge loans in CNY, as `FiguresView`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MonthFiguresView {
    /// The month, `YYYY-MM`.
    pub month: String,
    /// Its last day, `YYYY-MM-DD`: the figures are as of the end of that day.
    pub as_of: String,
    /// Loans with principal outstanding.
    pub loans: u64,
    pub outstanding: MoneyView,
    /// Outstanding of loans classified 次级, 可疑 or 损失.
    pub bad: MoneyView,
    /// `bad` over `outstanding`, in basis points (rounded down; 0 without outstanding).
    pub bad_ratio_bp: u64,
}

impl From<&MonthFigures> for MonthFiguresView {
    fn from(m: &MonthFigures) -> MonthFiguresView {
        MonthFiguresView {
            month: m.month.to_string(),
            as_of: m.month.last_day().map_or_else(String::new, |d| d.to_string()),
            loans: m.loans,
            outstanding: cny(m.outstanding_fen),
            bad: cny(m.bad_fen),
            bad_ratio_bp: m.bad_ratio_bp(),
        }
    }
}

/// One lender's figures by month end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LenderSeriesView {
    pub lender: String,
    /// The same months as `SeriesView::overall`.
    pub months: Vec<MonthFiguresView>,
}

/// The figures as of each month end, by the business dates the records carry (a loan's
/// start, each event's date): from the month of the earliest loan start to the month of the
/// latest loan record or event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SeriesView {
    /// Most months given (`credence_ledger::portfolio::SERIES_MONTHS_MAX`); over it, the
    /// latest months are given.
    pub months_max: u64,
    /// Earlier months left out to keep within `months_max` (their records still count).
    pub months_omitted: u64,
    /// All lenders, chronological, one entry per calendar month.
    pub overall: Vec<MonthFiguresView>,
    /// The lender asked for with `lender`, over the same months; empty otherwise.
    pub lenders: Vec<LenderSeriesView>,
}

impl SeriesView {
    fn of(overall: &Series, lenders: Vec<(String, Series)>) -> SeriesView {
        SeriesView {
            months_max: SERIES_MONTHS_MAX as u64,
            months_omitted: overall.months_omitted,
            overall: overall.months.iter().map(MonthFiguresView::from).collect(),
            lenders: lenders
                .into_iter()
                .map(|(lender, s)| LenderSeriesView {
                    lender,
                    months: s.months.iter().map(MonthFiguresView::from).collect(),
                })
                .collect(),
        }
    }
}

/// A regulator's or a pool's figures, computed from the committed ledger by
/// `credence_ledger::portfolio` (the same code `credence portfolio --data-dir` runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PortfolioView {
    /// The ledger state the figures are of.
    pub height: u64,
    pub tree_size: u64,
    /// The records behind the figures (appraisals, loans, loan events, pool records): pages
    /// with the same count describe the same figures and loans, though the ledger grew.
    pub records: u64,
    /// Upper bounds (exclusive) of the LTV buckets, basis points.
    pub ltv_bounds_bp: Vec<u32>,
    pub overall: FiguresView,
    /// Per lender (only the one asked for with `lender`), by name.
    pub lenders: Vec<LenderFiguresView>,
    pub pools: Vec<PoolFiguresView>,
    /// IP-pledge loans in currencies other than CNY (counted, not summed).
    pub other_currency_loans: u64,
    /// Per-loan lines, by loan id, when asked for (`loans_limit`); `null` otherwise.
    pub loans: Option<Vec<LoanLineView>>,
    /// The last loan id of a full page of `loans` (pass it as `loans_after`).
    pub loans_next_after: Option<String>,
    /// The bad-loan ratio and its parts over time, by month end.
    pub series: SeriesView,
}

fn cny(fen: u64) -> MoneyView {
    MoneyView::from(&Money { fen, currency: Currency::CNY })
}

impl PortfolioView {
    /// The view of `p` after `tree_size` leaves (block `height`): every lender, or only
    /// `lender`; loan lines with an id after `loans_after`, at most `loans_limit` (0: none).
    pub fn of(
        p: &Portfolio,
        height: u64,
        tree_size: u64,
        lender: Option<&str>,
        loans_after: Option<&AttestationId>,
        loans_limit: usize,
    ) -> PortfolioView {
        let (all, by) = p.figures();
        let lenders = by
            .iter()
            .filter(|(name, _)| lender.is_none_or(|l| name.as_str() == l))
            .map(|(name, f)| LenderFiguresView { lender: name.to_string(), figures: f.into() })
            .collect();
        let lender_series = match lender.and_then(|l| MemberName::parse("lender", l).ok()) {
            Some(name) => vec![(name.to_string(), p.series(Some(&name)))],
            None => Vec::new(),
        };
        let series = SeriesView::of(&p.series(None), lender_series);
        let pools = p
            .pools()
            .into_iter()
            .map(|(id, f)| PoolFiguresView {
                pool: id.to_string(),
                name: f.name,
                pool_bp: f.pool_bp,
                enrolled: f.enrolled,
                exposure: cny(f.exposure_fen),
                claimed: cny(f.claimed_fen),
                paid: cny(f.paid_fen),
                claims: f.claims.iter().map(|c| c.to_string()).collect(),
                payments: f.payments.iter().map(|c| c.to_string()).collect(),
            })
            .collect();
        let (loans, loans_next_after) = if loans_limit == 0 {
            (None, None)
        } else {
            let lines: Vec<LoanLineView> =
                p.loan_page(lender, loans_after, loans_limit).map(LoanLineView::from).collect();
            let next = (lines.len() == loans_limit).then(|| lines.last().map(|l| l.loan.clone())).flatten();
            (Some(lines), next)
        };
        PortfolioView {
            height,
            tree_size,
            records: p.records(),
            ltv_bounds_bp: LTV_BUCKETS_BP.to_vec(),
            overall: (&all).into(),
            lenders,
            pools,
            other_currency_loans: p.other_currency_loans,
            loans,
            loans_next_after,
            series,
        }
    }
}
