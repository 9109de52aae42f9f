//! Who may read what (docs/ACCESS.md): each route's scope, RFC 9421 request signatures checked against the ledger's access-key grants, the replay window, consents for restricted reads, and the query log.
//!
//! A request to a route above `public` must carry one RFC 9421 signature (Ed25519) whose
//! `keyid` is the id of a committed, unrevoked, unexpired access-key grant. Refusals are 401
//! with the field and the reason; a key without the route's scope is 403.

use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use credence_ledger::access::{AccessKeyGrant, Consent, FactKind, Purpose, Scope};
use credence_ledger::attestation::{AttestationId, Claim};
use credence_ledger::genesis::{Genesis, Role};
use credence_ledger::hash::{Hash, HashOf};
use credence_ledger::ids::{MemberName, Uscc};
use credence_ledger::rules::RecordStatus;
use credence_ledger::store::{IndexKey, QUERY_LIMIT_MAX, Store};

use super::{ApiError, ApiState, StoreView};
use crate::httpsig::{self, CLOCK_SKEW_S, RequestParts, SIGNATURE_LIFETIME_S_MAX};
use crate::runtime::now_ms;

/// Most signatures the replay window remembers. Each is kept until its `expires` plus the
/// clock skew (≤ 120 s), as 16 bytes of its hash twice (a set and an expiry order): about
/// 80 bytes with the collections' overhead, so ≤ about 21 MB; this admits ≥ 2,100 signed
/// requests per second sustained. Above it, signed requests get 503 until entries expire.
pub const REPLAY_ENTRIES_MAX: usize = 262_144;
/// Most consent records of one enterprise the node reads to find a live one.
pub const CONSENTS_SCANNED_MAX: usize = QUERY_LIMIT_MAX;

// The window must outlive every signature it admits.
const _: () = assert!(SIGNATURE_LIFETIME_S_MAX + 2 * CLOCK_SKEW_S <= 120);

/// The `Accept-Signature` field (RFC 9421 §5.1) of a 401: what a signature must cover.
const ACCEPT_SIGNATURE: &str = "sig1=(\"@method\" \"@path\" \"@query\");created;expires;keyid;alg=\"ed25519\"";

/// The scope a route needs (`None`: public). Unknown routes are answered 404 by the router.
/// `/v1/governance` is public: it states the membership, keys and validator sets in force,
/// which genesis states for the founding members and which certificates are checked against;
/// so is `/v1/set-changes` (headers and certificates only, what offline verifiers need).
pub fn route_scope(route: &str) -> Option<Scope> {
    match route {
        "/v1/attestations/{id}"
        | "/v1/enterprises/{uscc}/attestations"
        | "/v1/patents/{number}/attestations"
        | "/v1/attesters/{member}/attestations"
        | "/v1/attestations/{id}/references" => Some(Scope::Member),
        // Whole blocks, entry bundles and the portfolio's per-lender figures and loan lines
        // hold facts of many enterprises at once: look-through supervision only.
        "/v1/blocks/{height}/certified" | "/tile/entries/{*path}" | "/v1/portfolio" => Some(Scope::Regulator),
        // One member's query records across every enterprise: supervision of the query log.
        "/v1/members/{member}/queries" => Some(Scope::Regulator),
        // The openings of confidential amounts: an enterprise's facts, under a live consent.
        "/v1/attestations/{id}/openings" => Some(Scope::Restricted),
        _ => None,
    }
}

/// The authenticated reader of a request: put in its extensions by [`authenticate`].
#[derive(Clone, Debug)]
pub struct Reader {
    /// The access-key grant's id (the signature's `keyid`).
    pub grant: AttestationId,
    pub holder: String,
    pub member: MemberName,
    pub scopes: Vec<Scope>,
    /// The member has the regulator role and the key the regulator scope.
    pub regulator: bool,
    /// The holder of a data directory reading it offline (`ApiState::offline`): sees
    /// everything, and its reads are not logged (no node discloses anything).
    pub offline: bool,
}

impl Reader {
    /// The holder of a data directory (see [`Reader::offline`]).
    fn offline() -> Reader {
        Reader {
            grant: HashOf::from_hash(Hash::ZERO),
            holder: "data-directory holder".into(),
            member: MemberName::parse("reader", "offline-reader").unwrap_or_else(|e| unreachable!("{e}")),
            scopes: Scope::ALL.to_vec(),
            regulator: true,
            offline: true,
        }
    }

    pub fn allows(&self, scope: Scope) -> bool {
        match scope {
            Scope::Member => !self.scopes.is_empty(),
            Scope::Restricted => self.scopes.contains(&Scope::Restricted) || self.regulator,
            Scope::Regulator => self.regulator,
        }
    }
}

/// Signatures seen and not yet expired, bounded by [`REPLAY_ENTRIES_MAX`].
#[derive(Debug, Default)]
pub struct ReplayWindow {
    seen: HashSet<[u8; 16]>,
    by_expiry: BTreeSet<(i64, [u8; 16])>,
}

/// Why the replay window refused a signature.
#[derive(Debug, PartialEq, Eq)]
pub enum ReplayError {
    Replayed,
    Full,
}

impl ReplayWindow {
    /// Records a signature valid until `until_s`; refuses one already seen.
    pub fn admit(&mut self, signature: &[u8; 64], until_s: i64, now_s: i64) -> Result<(), ReplayError> {
        while let Some(&(t, k)) = self.by_expiry.first() {
            if t >= now_s {
                break;
            }
            self.by_expiry.pop_first();
            self.seen.remove(&k);
        }
        let mut key = [0u8; 16];
        key.copy_from_slice(&Sha256::digest(signature)[..16]);
        if self.seen.contains(&key) {
            return Err(ReplayError::Replayed);
        }
        if self.seen.len() >= REPLAY_ENTRIES_MAX {
            return Err(ReplayError::Full);
        }
        self.seen.insert(key);
        self.by_expiry.insert((until_s, key));
        Ok(())
    }
}

fn unauthorized(field: &str, rule: impl Into<String>) -> Response {
    let mut r = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", field, rule).into_response();
    r.headers_mut().insert("accept-signature", HeaderValue::from_static(ACCEPT_SIGNATURE));
    r
}

/// A 403 naming what is missing.
pub fn forbidden(field: &str, rule: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", field, rule)
}

fn parts_of(req: &Request) -> RequestParts {
    let uri = req.uri();
    RequestParts {
        method: req.method().as_str().to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        authority: req.headers().get("host").and_then(|h| h.to_str().ok()).map(str::to_string),
        fields: req
            .headers()
            .iter()
            .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str().to_string(), v.to_string())))
            .collect(),
    }
}

/// A checked grant: its id, its member, the grant, and whether the member holds the
/// regulator role in force.
type Grant = (AttestationId, MemberName, AccessKeyGrant, bool);

/// The grant named by `keyid`, checked: committed, an access key, not revoked, not expired,
/// and delegated by a member still in force at the next height (a member governance removed
/// no longer delegates: its keys stop working from the removal's height).
fn grant_of(
    store: &(dyn Store + Send + Sync),
    genesis: &Genesis,
    keyid: &str,
    now: u64,
) -> Result<Result<Grant, String>, ApiError> {
    let Ok(hash) = Hash::from_hex("keyid", keyid) else {
        return Ok(Err(format!("'{keyid}' is not an access-key id (64 hex digits: the grant's attestation id)")));
    };
    let id: AttestationId = HashOf::from_hash(hash);
    let Some(loc) = store.locate(&id)? else {
        return Ok(Err(format!("no access-key grant {id} is committed on this ledger")));
    };
    let Some(leaf) = store.leaf(loc.leaf_index)? else {
        return Err(ApiError::internal(format!("store: leaf {} is missing", loc.leaf_index)));
    };
    let Claim::AccessKey(grant) = &leaf.attestation.body.claim else {
        return Ok(Err(format!("{id} is not an access-key grant")));
    };
    if store.record(&id)?.is_some_and(|m| m.status != RecordStatus::Active) {
        return Ok(Err(format!("access key {id} was revoked by its member")));
    }
    if now >= grant.expires_at_ms {
        return Ok(Err(format!("access key {id} expired at {} (Unix ms)", grant.expires_at_ms)));
    }
    let member = leaf.attestation.body.attester.clone();
    let next_height = store.head()?.map_or(1, |h| h.height + 1);
    let gov = credence_ledger::rules::governance_at(genesis, &StoreView(store), next_height)?;
    let Some(m) = gov.member(&member).filter(|m| m.is_active()) else {
        return Ok(Err(format!(
            "access key {id} was delegated by '{member}', which governance removed from the consortium (R048); its keys no longer work"
        )));
    };
    let regulator_role = m.roles.contains(&Role::Regulator);
    Ok(Ok((id, member, grant.clone(), regulator_role)))
}

/// Checks the signature of every request to a route above `public` (see the module doc).
pub async fn authenticate(State(st): State<ApiState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string());
    let Some(scope) = route.as_deref().and_then(route_scope) else {
        return next.run(req).await;
    };
    if st.offline {
        let mut req = req;
        req.extensions_mut().insert(Reader::offline());
        return next.run(req).await;
    }
    let has_body = req.headers().get("content-length").is_some_and(|v| v.as_bytes() != b"0")
        || req.headers().contains_key("transfer-encoding");
    let parts = parts_of(&req);
    let parsed = match httpsig::parse(&parts) {
        Ok(p) => p,
        Err(e) => return unauthorized(e.field, e.rule),
    };
    let now = now_ms();
    let now_s = i64::try_from(now / 1000).unwrap_or(i64::MAX);
    if let Err(e) = httpsig::check_profile(&parsed, has_body, now_s) {
        return unauthorized(e.field, e.rule);
    }
    let mut req = if has_body {
        let (head, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, st.config.body_bytes_max).await else {
            let rule = format!("a signed request's body is limited to {} bytes", st.config.body_bytes_max);
            return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "body", rule).into_response();
        };
        let digest = parts.fields.iter().find(|(n, _)| n == "content-digest").map(|(_, v)| v.as_str());
        if let Err(e) = httpsig::check_content_digest(digest.unwrap_or(""), &bytes) {
            return unauthorized(e.field, e.rule);
        }
        Request::from_parts(head, Body::from(bytes))
    } else {
        req
    };
    let keyid = parsed.params.keyid.clone().unwrap_or_default();
    let store = st.store.clone();
    let ctx = st.ctx.clone();
    let looked_up = tokio::task::spawn_blocking(move || {
        let guard = store.read().map_err(|_| ApiError::internal("store lock poisoned"))?;
        grant_of(&*guard, &ctx.genesis, &keyid, now)
    })
    .await;
    let (grant_id, member, grant, regulator_role) = match looked_up {
        Ok(Ok(Ok(g))) => g,
        Ok(Ok(Err(reason))) => return unauthorized("keyid", reason),
        Ok(Err(e)) => return e.into_response(),
        Err(e) => return ApiError::internal(e).into_response(),
    };
    if let Err(e) = httpsig::verify(&parsed, &grant.key) {
        return unauthorized(e.field, e.rule);
    }
    let until = parsed.params.expires.unwrap_or(now_s).saturating_add(CLOCK_SKEW_S);
    let admitted = match st.replay.lock() {
        Ok(mut w) => w.admit(&parsed.signature.0, until, now_s),
        Err(_) => return ApiError::internal("replay window lock poisoned").into_response(),
    };
    match admitted {
        Ok(()) => {}
        Err(ReplayError::Replayed) => {
            return unauthorized("signature", "this signature was already used (replay); sign each request afresh");
        }
        Err(ReplayError::Full) => {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "signature",
                format!("the replay window holds {REPLAY_ENTRIES_MAX} live signatures; retry in a few seconds"),
            )
            .into_response();
        }
    }
    let regulator = grant.scopes.contains(&Scope::Regulator) && regulator_role;
    let reader = Reader {
        grant: grant_id,
        holder: grant.holder.clone(),
        member,
        scopes: grant.scopes.clone(),
        regulator,
        offline: false,
    };
    if !reader.allows(scope) {
        let have: Vec<&str> = reader.scopes.iter().map(|s| s.name()).collect();
        return forbidden(
            "scope",
            format!(
                "this route needs the {} scope; access key {} has [{}]",
                scope.name(),
                reader.grant,
                have.join(", ")
            ),
        )
        .into_response();
    }
    req.extensions_mut().insert(reader);
    next.run(req).await
}

/// A live consent found for a restricted read.
#[derive(Clone, Debug)]
pub struct LiveConsent {
    /// `None` for a regulator's read.
    pub id: Option<AttestationId>,
    /// The fact kinds it covers (all of them for a regulator).
    pub scope: Vec<FactKind>,
}

impl LiveConsent {
    /// What a regulator or a data directory's holder sees: every fact kind, no consent.
    pub fn everything() -> LiveConsent {
        LiveConsent { id: None, scope: FactKind::ALL.to_vec() }
    }
}

/// Finds the consent a restricted read of `enterprise` for `purpose` by `reader` rests on:
/// the one named (`consent`), or else the live one of that enterprise, recipient and purpose
/// that lasts longest. A regulator needs none. `Err` is the 403 naming what is missing.
pub fn find_consent(
    store: &(dyn Store + Send + Sync),
    reader: &Reader,
    enterprise: &Uscc,
    purpose: Purpose,
    consent: Option<AttestationId>,
    now: u64,
) -> Result<LiveConsent, ApiError> {
    if reader.regulator {
        return Ok(LiveConsent { id: consent, ..LiveConsent::everything() });
    }
    if !reader.allows(Scope::Restricted) {
        return Err(forbidden(
            "scope",
            format!("restricted reads need the restricted scope; access key {} has it not", reader.grant),
        ));
    }
    if purpose == Purpose::Supervision {
        return Err(forbidden("purpose", "supervision is for regulators"));
    }
    let live = |id: &AttestationId, c: &Consent| -> Result<bool, ApiError> {
        let active = store.record(id)?.is_some_and(|m| m.status == RecordStatus::Active);
        Ok(active
            && c.enterprise == *enterprise
            && c.recipient == reader.member
            && c.purpose == purpose
            && now < c.expires_at_ms)
    };
    let missing = || {
        forbidden(
            "consent",
            format!(
                "no live consent of enterprise {enterprise} for member '{}' with purpose {}: a member must record the enterprise's signed authorisation (授权书) as a consent record naming '{}' first",
                reader.member,
                purpose.name(),
                reader.member
            ),
        )
    };
    if let Some(id) = consent {
        let Some(loc) = store.locate(&id)? else { return Err(missing()) };
        let Some(leaf) = store.leaf(loc.leaf_index)? else {
            return Err(ApiError::internal(format!("store: leaf {} is missing", loc.leaf_index)));
        };
        return match &leaf.attestation.body.claim {
            Claim::Consent(c) if live(&id, c)? => Ok(LiveConsent { id: Some(id), scope: c.scope.clone() }),
            _ => Err(forbidden(
                "consent",
                format!(
                    "{id} is not a live consent of enterprise {enterprise} for member '{}' with purpose {}",
                    reader.member,
                    purpose.name()
                ),
            )),
        };
    }
    let mut best: Option<(u64, AttestationId, Vec<FactKind>)> = None;
    let mut after = None;
    let mut scanned = 0;
    loop {
        let page = store.query(IndexKey::Consents(enterprise), after, QUERY_LIMIT_MAX)?;
        for index in &page {
            let Some(leaf) = store.leaf(*index)? else { continue };
            scanned += 1;
            if let Claim::Consent(c) = &leaf.attestation.body.claim
                && live(&leaf.id, c)?
                && best.as_ref().is_none_or(|b| c.expires_at_ms > b.0)
            {
                best = Some((c.expires_at_ms, leaf.id, c.scope.clone()));
            }
        }
        if page.len() < QUERY_LIMIT_MAX || scanned >= CONSENTS_SCANNED_MAX {
            break;
        }
        after = page.last().copied();
    }
    match best {
        Some((_, id, scope)) => Ok(LiveConsent { id: Some(id), scope }),
        None => Err(missing()),
    }
}

/// The replay window shared by the API's handlers.
pub type SharedReplay = std::sync::Arc<Mutex<ReplayWindow>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_governance_state_is_public_and_records_need_a_key() {
        for public in
            ["/v1/governance", "/v1/set-changes", "/v1/status", "/v1/genesis", "/v1/attesters/{member}/next-sequence"]
        {
            assert_eq!(route_scope(public), None, "{public}");
        }
        assert_eq!(route_scope("/v1/attesters/{member}/attestations"), Some(Scope::Member));
        assert_eq!(route_scope("/v1/portfolio"), Some(Scope::Regulator));
        assert_eq!(route_scope("/v1/members/{member}/queries"), Some(Scope::Regulator));
        assert_eq!(route_scope("/v1/blocks/{height}/certified"), Some(Scope::Regulator));
    }

    #[test]
    fn the_replay_window_refuses_a_second_use_and_forgets_expired_ones() {
        let mut w = ReplayWindow::default();
        let sig = [7u8; 64];
        assert_eq!(w.admit(&sig, 100, 50), Ok(()));
        assert_eq!(w.admit(&sig, 100, 60), Err(ReplayError::Replayed));
        assert_eq!(w.admit(&[8u8; 64], 100, 60), Ok(()));
        // After its expiry the entry is dropped (the profile refuses the signature by then anyway).
        assert_eq!(w.admit(&[9u8; 64], 300, 200), Ok(()));
        assert_eq!(w.seen.len(), 1);
    }

    #[test]
    fn the_replay_window_is_bounded() {
        let mut w = ReplayWindow::default();
        for i in 0..REPLAY_ENTRIES_MAX as u64 {
            let mut sig = [0u8; 64];
            sig[..8].copy_from_slice(&i.to_le_bytes());
            w.admit(&sig, 1_000, 0).unwrap();
        }
        assert_eq!(w.admit(&[0xff; 64], 1_000, 0), Err(ReplayError::Full));
        assert_eq!(w.admit(&[0xff; 64], 1_000, 1_001), Ok(()), "expired entries make room");
    }
}
