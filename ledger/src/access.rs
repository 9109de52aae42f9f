//! Who may read what: access-key grants, enterprise consents and query records (docs/ACCESS.md, docs/encoding.md §11).
//!
//! A member delegates an Ed25519 *access key* to one of its people or systems with an
//! [`AccessKeyGrant`]; requests to a node's API are signed with it (RFC 9421). A member
//! records an enterprise's written authorisation (授权书) as a [`Consent`]; a restricted
//! read of that enterprise's facts by the recipient member is allowed while the consent
//! is live. Each restricted read is logged on the ledger as a [`QueryRecord`]. Grants
//! and consents are withdrawn with the ordinary `Revocation` claim.

use serde::{Deserialize, Serialize};

use crate::attestation::{AttestationId, FieldError};
use crate::hash::Hash;
use crate::ids::{MemberName, Uscc};
use crate::sig::PublicKey;

/// Longest access-key holder label, in bytes.
pub const HOLDER_BYTES_MAX: usize = 64;
/// Longest life of an access key, from its grant's `issued_at_ms` (400 days).
pub const ACCESS_KEY_LIFETIME_MS_MAX: u64 = 400 * 86_400_000;
/// Longest life of a consent, from its record's `issued_at_ms` (5 years of 366 days).
pub const CONSENT_LIFETIME_MS_MAX: u64 = 5 * 366 * 86_400_000;

/// What an access key may read. Public routes need no key at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// Record metadata: kind, attester, time, ids, sequence.
    Member,
    /// An enterprise's facts and amounts, under a live consent naming the member.
    Restricted,
    /// Everything, without consent (look-through supervision); only a regulator may grant it.
    Regulator,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Member, Scope::Restricted, Scope::Regulator];

    pub const fn name(self) -> &'static str {
        match self {
            Scope::Member => "member",
            Scope::Restricted => "restricted",
            Scope::Regulator => "regulator",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.name() == s)
    }
}

/// Why a member reads an enterprise's facts (the purposes of China's credit-information rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Purpose {
    /// 贷款审批: deciding on a loan application.
    LoanApplication,
    /// 贷后管理: monitoring a loan already made.
    PostLoanMonitoring,
    /// 担保资格审查: deciding whether to guarantee the enterprise.
    GuaranteeReview,
    /// A risk-pool administrator deciding a compensation claim.
    RiskPoolClaim,
    /// A regulator's look-through supervision (needs no consent).
    Supervision,
}

impl Purpose {
    pub const ALL: [Purpose; 5] = [
        Purpose::LoanApplication,
        Purpose::PostLoanMonitoring,
        Purpose::GuaranteeReview,
        Purpose::RiskPoolClaim,
        Purpose::Supervision,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Purpose::LoanApplication => "loan-application",
            Purpose::PostLoanMonitoring => "post-loan-monitoring",
            Purpose::GuaranteeReview => "guarantee-review",
            Purpose::RiskPoolClaim => "risk-pool-claim",
            Purpose::Supervision => "supervision",
        }
    }

    pub fn parse(s: &str) -> Option<Purpose> {
        Purpose::ALL.into_iter().find(|x| x.name() == s)
    }
}

/// The kinds of enterprise facts a consent can cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FactKind {
    RdSpend,
    /// Valuations and appraisals.
    PatentValuation,
    /// Pledges, one-stage and two-stage.
    PatentPledge,
    /// Loans and their life: performance events, pool enrolments, claims and payments,
    /// disposals of pledged patents (appended: index 3).
    Loan,
}

impl FactKind {
    pub const ALL: [FactKind; 4] =
        [FactKind::RdSpend, FactKind::PatentValuation, FactKind::PatentPledge, FactKind::Loan];

    pub const fn name(self) -> &'static str {
        match self {
            FactKind::RdSpend => "rd-spend",
            FactKind::PatentValuation => "patent-valuation",
            FactKind::PatentPledge => "pledge",
            FactKind::Loan => "loan",
        }
    }

    pub fn parse(s: &str) -> Option<FactKind> {
        FactKind::ALL.into_iter().find(|x| x.name() == s)
    }
}

/// A member delegates an access key to one of its people or systems.
///
/// The grant's attestation id is the key's RFC 9421 `keyid`: the node finds the key,
/// its member, scopes and expiry by that one id, and its liveness by the id's record
/// status (a `Revocation` of the grant by the same member withdraws it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKeyGrant {
    /// Who holds the key, e.g. `loan-officer-zhang` or `risk-batch-2`: 1..64 bytes, no control characters.
    pub holder: String,
    /// The holder's Ed25519 public key (canonical, not of small order).
    pub key: PublicKey,
    /// What the key may read: non-empty, strictly ascending.
    pub scopes: Vec<Scope>,
    /// The key is refused from this instant on (Unix ms).
    pub expires_at_ms: u64,
}

/// A member records an enterprise's written authorisation (授权书) for a recipient member to read its facts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    pub enterprise: Uscc,
    /// The member whose readers may read under this consent.
    pub recipient: MemberName,
    pub purpose: Purpose,
    /// The facts covered: non-empty, strictly ascending.
    pub scope: Vec<FactKind>,
    /// The consent lapses at this instant (Unix ms).
    pub expires_at_ms: u64,
    /// SHA-256 of the signed 授权书 (kept off-ledger by the attester).
    pub evidence: Hash,
}

/// What a logged read returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ReadKind {
    /// An enterprise's facts (restricted records of the listing or of one id).
    Facts,
    /// Openings of confidential amounts disclosed by their attester's node.
    Openings,
    /// A whole block (`GET /v1/blocks/{height}/certified`) holding this enterprise's records,
    /// read by a regulator: one record per enterprise the block names (appended: tag 2).
    Block {
        /// The height of the block read.
        height: u64,
    },
    /// A C2SP entry bundle (`GET /tile/entries/<N>[.p/<W>]`) holding this enterprise's
    /// records, read by a regulator: one record per enterprise the bundle names (appended:
    /// tag 3).
    EntryBundle {
        /// The bundle's index `N` (its entries are leaves `256·N` onwards).
        index: u64,
    },
    /// Per-loan lines of `GET /v1/portfolio` naming a loan to this enterprise, read by a
    /// regulator: one record per enterprise whose loans the page lists (appended: tag 4).
    Portfolio {
        /// The height of the ledger state the figures are of.
        height: u64,
    },
}

impl ReadKind {
    pub const fn name(self) -> &'static str {
        match self {
            ReadKind::Facts => "facts",
            ReadKind::Openings => "openings",
            ReadKind::Block { .. } => "block",
            ReadKind::EntryBundle { .. } => "entries",
            ReadKind::Portfolio { .. } => "portfolio",
        }
    }

    /// The height of the block read, for a whole-block read.
    pub const fn block_height(self) -> Option<u64> {
        match self {
            ReadKind::Block { height } => Some(height),
            ReadKind::Facts | ReadKind::Openings | ReadKind::EntryBundle { .. } | ReadKind::Portfolio { .. } => None,
        }
    }

    /// The index of the entry bundle read, for an entry-bundle read.
    pub const fn entry_bundle(self) -> Option<u64> {
        match self {
            ReadKind::EntryBundle { index } => Some(index),
            ReadKind::Facts | ReadKind::Openings | ReadKind::Block { .. } | ReadKind::Portfolio { .. } => None,
        }
    }

    /// The height of the state whose portfolio was read, for a portfolio read.
    pub const fn portfolio_height(self) -> Option<u64> {
        match self {
            ReadKind::Portfolio { height } => Some(height),
            ReadKind::Facts | ReadKind::Openings | ReadKind::Block { .. } | ReadKind::EntryBundle { .. } => None,
        }
    }
}

/// The log of one restricted read, attested by the node that served it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryRecord {
    /// The member whose access key made the read.
    pub reader: MemberName,
    /// The access-key grant that signed the request (names the holder).
    pub access_key: AttestationId,
    pub enterprise: Uscc,
    pub purpose: Purpose,
    /// The consent read under; `None` only for a regulator's read.
    pub consent: Option<AttestationId>,
    pub read: ReadKind,
}

fn strictly_ascending<T: Ord>(items: &[T]) -> bool {
    items.windows(2).all(|w| w[0] < w[1])
}

impl AccessKeyGrant {
    pub(crate) fn check_fields(&self) -> Result<(), FieldError> {
        let err = |field, rule: &str| Err(FieldError { field, rule: rule.to_string() });
        if self.holder.is_empty() || self.holder.len() > HOLDER_BYTES_MAX {
            return err("holder", "must be 1 to 64 bytes");
        }
        if self.holder.chars().any(char::is_control) {
            return err("holder", "must not contain control characters");
        }
        if !self.key.is_canonical() || self.key.is_weak() {
            return err("key", "must be a canonical Ed25519 point that is not of small order");
        }
        if self.scopes.is_empty() || !strictly_ascending(&self.scopes) {
            return err("scopes", "must be non-empty, without duplicates, in ascending order");
        }
        Ok(())
    }

    /// Whether the grant allows `scope` (a regulator key may read everything).
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || self.scopes.contains(&Scope::Regulator)
    }
}

impl Consent {
    pub(crate) fn check_fields(&self) -> Result<(), FieldError> {
        if self.scope.is_empty() || !strictly_ascending(&self.scope) {
            return Err(FieldError {
                field: "scope",
                rule: "must be non-empty, without duplicates, in ascending order".into(),
            });
        }
        if self.purpose == Purpose::Supervision {
            return Err(FieldError { field: "purpose", rule: "supervision needs no consent".into() });
        }
        Ok(())
    }

    /// Whether the consent covers facts of `kind`.
    pub fn covers(&self, kind: FactKind) -> bool {
        self.scope.contains(&kind)
    }
}
