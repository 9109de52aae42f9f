//! The route handlers, each with its OpenAPI description.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use tokio::sync::mpsc::error::TrySendError;
use utoipa::{IntoParams, OpenApi as _};

use credence_ledger::access::{Purpose, QueryRecord, ReadKind};
use credence_ledger::attestation::{ATTESTATION_BYTES_MAX, Attestation, AttestationId, Claim, ClaimKind};
use credence_ledger::block::{CertifiedBlock, Leaf};
use credence_ledger::confidential::{OPENINGS_PER_ATTESTATION_MAX, check_openings};
use credence_ledger::hash::{Hash, HashOf};
use credence_ledger::ids::{MemberName, PatentNumber, Uscc};
use credence_ledger::merkle::{self, NodeHash, NodeReader};
use credence_ledger::rules::StateView as _;
use credence_ledger::sig::{self, Domain};
use credence_ledger::store::{IndexKey, Store, StoreError};

use super::access::{LiveConsent, Reader, find_consent};
use super::error::{ApiError, ApiPath, ApiQuery, parse_json, read_body, read_json, require_json};
use super::views::{
    AttestationPage, AttestationView, BatchItemResult, BatchSubmitRequest, BatchSubmitResponse, BlockView, Committed,
    ConsistencyProofView, ErrorBody, GovernanceView, HealthView, InclusionProofView, MempoolView, NextSequenceView,
    OpeningView, OpeningsView, PortfolioView, SetChangesView, StatusView, SubmitRequest, SubmitResponse,
};
use super::{ApiDoc, ApiState, BATCH_ITEMS_MAX, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX, StoreView};
use crate::mempool::{AdmitError, Admitted, Origin, admit_batch};
use crate::runtime::locked_store::PinnedStore;
use crate::runtime::now_ms;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match &e {
            // A node that started from a snapshot holds nothing below it: 410 Gone, naming the
            // parameter (a block's height, a leaf's index, a record's id) and the base.
            StoreError::NotHeld { what, .. } => {
                let field = match what.split(' ').next() {
                    Some("leaf") => "leaf_index",
                    Some("the") => "id",
                    _ => "height",
                };
                ApiError {
                    status: axum::http::StatusCode::GONE,
                    code: "not_held".into(),
                    field: field.into(),
                    rule: e.to_string(),
                }
            }
            _ => ApiError::internal(e),
        }
    }
}

/// Runs store reads and admission on the blocking pool; a panic there becomes a 500.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(ApiError::internal(e)),
    }
}

fn parse_id(field: &'static str, s: &str) -> Result<AttestationId, ApiError> {
    Hash::from_hex(field, s).map(HashOf::from_hash).map_err(|e| ApiError::from_id(e, field))
}

fn parse_u64(field: &'static str, s: &str) -> Result<u64, ApiError> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(field, "must be a decimal integer (0 to 18446744073709551615)"));
    }
    s.parse().map_err(|_| ApiError::bad_request(field, "must be a decimal integer (0 to 18446744073709551615)"))
}

fn parse_opt_u64(field: &'static str, s: Option<&str>) -> Result<Option<u64>, ApiError> {
    s.map(|s| parse_u64(field, s)).transpose()
}

/// A member name in a path, resolved to its member index: a genesis member's, or one
/// governance added (indexes are never reused, so a removed member still resolves).
fn parse_member(st: &ApiState, s: &str) -> Result<(MemberName, u16), ApiError> {
    let name = MemberName::parse("member", s).map_err(|e| ApiError::from_id(e, "member"))?;
    let index = match st.ctx.genesis.member_index(&name) {
        Some(i) => Some(i),
        None => {
            let guard = st.read_store()?;
            let gov = StoreView(&*guard).governance()?;
            gov.and_then(|g| g.member_index(&name))
        }
    };
    match index {
        Some(i) => Ok((name, i)),
        None => Err(ApiError::not_found("member", format!("'{name}' is not a member of this consortium"))),
    }
}

fn b64(h: &NodeHash) -> String {
    B64.encode(h)
}

// ---------------------------------------------------------------------------------------------
// Submission
// ---------------------------------------------------------------------------------------------

/// Submit a signed attestation.
///
/// The body's `attestation` (base64 of the canonical bytes) is authoritative; any
/// `decoded` rendering alongside it is ignored. The node decodes it, checks fields,
/// membership, the signature (bound to this chain's genesis hash) and the ledger rules
/// against the committed state plus the pending attestations, then admits it to the
/// mempool and gossips it. A sequence up to 256 past the attester's next one is held
/// until the gap fills. The body is read in full first: at most 64 KiB, within 5 s.
#[utoipa::path(
    post,
    path = "/v1/attestations",
    tag = "attestations",
    request_body = SubmitRequest,
    responses(
        (status = 202, description = "Admitted to the mempool (pending)", body = SubmitResponse),
        (status = 400, description = "Malformed body, base64 or attestation encoding", body = ErrorBody),
        (status = 408, description = "Body not received in full within 5 s (code `timeout`, field `body`); the connection is closed", body = ErrorBody),
        (status = 409, description = "Already pending, or the sequence is taken by a held attestation", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB (code `payload_too_large`, field `body`; refused from `Content-Length` without reading it); the connection is closed", body = ErrorBody),
        (status = 415, description = "Content type is not application/json", body = ErrorBody),
        (status = 422, description = "A ledger rule refuses it (code R001..R029, R101..R132: unknown attester, role, sequence, signature, pledge rules, ...), or R060: `openings` sent to another member's node, or an opening that does not open its sealed amount or breaks the amount's rule (`field` names it)", body = ErrorBody),
        (status = 503, description = "Mempool full; retry later", body = ErrorBody),
    )
)]
pub async fn submit_attestation(
    State(st): State<ApiState>,
    req: Request,
) -> Result<(StatusCode, Json<SubmitResponse>), ApiError> {
    let req: SubmitRequest = read_json(req, st.config.body_bytes_max, st.config.body_read_timeout).await?;
    let bytes = decode_item(&st, &req.attestation)?;
    if let Some(openings) = &req.openings {
        let state = st.clone();
        let (bytes, openings) = (bytes.clone(), openings.clone());
        blocking(move || keep_openings(&state, &bytes, &openings)).await?;
    }
    let outcome = submit(&st, vec![Ok(bytes)]).await?.pop();
    let admitted = outcome.unwrap_or_else(|| Err(ApiError::internal("submission gave no outcome")))?;
    Ok((StatusCode::ACCEPTED, Json(pending(&admitted))))
}

/// Checks the openings sent with an attestation and stores them durably (before admission):
/// only at the attester's own node, only for a record whose signature verifies, and only a
/// complete set that opens its sealed amounts (R060 otherwise, naming the field).
fn keep_openings(st: &ApiState, bytes: &[u8], openings: &[OpeningView]) -> Result<(), ApiError> {
    let refuse = |field: &str, rule: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "R060", field, rule);
    let Some((member, store)) = &st.openings else {
        return Err(refuse(
            "openings",
            "this node has no member key and keeps no openings; send them to the attester's own node".into(),
        ));
    };
    if openings.len() > OPENINGS_PER_ATTESTATION_MAX {
        return Err(refuse("openings", format!("at most {OPENINGS_PER_ATTESTATION_MAX} per attestation")));
    }
    let a = Attestation::from_bytes(bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed", "attestation", e.to_string()))?;
    if a.body.attester != *member {
        return Err(refuse(
            "openings",
            format!(
                "this is member '{member}''s node; the openings of '{}''s records are kept by its own node",
                a.body.attester
            ),
        ));
    }
    let key = st.ctx.genesis.member(member).map(|m| m.public_key);
    let signed = key.is_some_and(|k| {
        sig::verify(&k, Domain::Attestation, &st.ctx.chain_id.0, &a.body.to_bytes(), &a.signature).is_ok()
    });
    if !signed {
        return Err(refuse("openings", format!("openings are kept only for a record signed by '{member}'")));
    }
    let parsed = openings
        .iter()
        .map(|o| o.to_opening().map_err(|rule| refuse(&o.field, rule)))
        .collect::<Result<Vec<_>, _>>()?;
    check_openings(&a.body.claim, &parsed).map_err(|e| refuse(&e.field, e.rule))?;
    store.put(&a.id(), &parsed).map_err(ApiError::internal)
}

/// Submit up to 1,000 signed attestations at once.
///
/// Each item is what `POST /v1/attestations` takes as `attestation` and gets the same
/// checks; the signatures of the whole batch are verified together (one batched check,
/// same verdicts as single checks), then the items are admitted in input order, so one
/// attester's consecutive sequences may share a batch. The answer lists one result per
/// item, in order: `{"id", "status": "pending", "waiting_for_sequence"}` or the
/// `{"error": ...}` the single route would give.
///
/// The body is read in full first (at most 4 MiB, within 5 s; at most 64 batch bodies are
/// read or held at once); only then does the batch wait for one of 4 slots in which batches
/// are verified and admitted, so a slow client never delays another's batch.
#[utoipa::path(
    post,
    path = "/v1/attestations/batch",
    tag = "attestations",
    request_body = BatchSubmitRequest,
    responses(
        (status = 200, description = "One result per item, in input order", body = BatchSubmitResponse),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 408, description = "Body not received in full within 5 s (code `timeout`, field `body`); the connection is closed", body = ErrorBody),
        (status = 413, description = "More than 1,000 items (field `attestations`), or body over 4 MiB (field `body`; refused from `Content-Length` without reading it); the connection is closed", body = ErrorBody),
        (status = 415, description = "Content type is not application/json", body = ErrorBody),
        (status = 503, description = "64 batch bodies are already being read or processed (code `busy`, field `batch`); retry after `Retry-After` seconds", body = ErrorBody),
    )
)]
pub async fn submit_batch(State(st): State<ApiState>, req: Request) -> Response {
    if let Err(e) = require_json(req.headers()) {
        return e.into_response();
    }
    // A permit for the body's memory, from before the read until the answer: at most
    // `batch_bodies_max` batch bodies are read or held at once. Refused at once when none is
    // free, so a slow client's bodies never make others wait.
    let Ok(_body) = st.batch_bodies.clone().try_acquire_owned() else {
        let max = st.config.batch_bodies_max;
        let mut response = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "batch",
            format!("{max} batch bodies are already being read or processed; retry after 1 s"),
        )
        .into_response();
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    match batch(&st, req).await {
        Ok(answer) => answer.into_response(),
        Err(e) => e.into_response(),
    }
}

/// A batch whose body permit is held: read, parse and decode it, then verify and admit it
/// in a batch slot.
async fn batch(st: &ApiState, req: Request) -> Result<Json<BatchSubmitResponse>, ApiError> {
    let body = read_body(req, st.config.batch_body_bytes_max, st.config.body_read_timeout).await?;
    let items = parse_json::<BatchSubmitRequest>(&body)?.attestations;
    drop(body);
    if items.total > BATCH_ITEMS_MAX {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "attestations",
            format!("at most {BATCH_ITEMS_MAX} items per batch; got {}", items.total),
        ));
    }
    let decoded = items.items.iter().map(|item| decode_item(st, item)).collect();
    drop(items);
    // Held only for verification and admission; the body is already here.
    let _slot = st.batch_slots.clone().acquire_owned().await.map_err(ApiError::internal)?;
    let results = submit(st, decoded)
        .await?
        .into_iter()
        .map(|outcome| match outcome {
            Ok(a) => BatchItemResult::Pending(pending(&a)),
            Err(e) => BatchItemResult::Refused(e.into_body()),
        })
        .collect();
    Ok(Json(BatchSubmitResponse { results }))
}

fn pending(a: &Admitted) -> SubmitResponse {
    SubmitResponse { id: a.id.to_string(), status: "pending".into(), waiting_for_sequence: a.held_for }
}

/// Base64 of the largest attestation, with padding; anything longer cannot be one.
const ATTESTATION_B64_MAX: usize = ATTESTATION_BYTES_MAX.div_ceil(3) * 4;

/// One submitted item's bytes, or its `malformed` refusal.
fn decode_item(st: &ApiState, item: &str) -> Result<Vec<u8>, ApiError> {
    let malformed = |rule: String| {
        st.metrics.refused("malformed");
        ApiError::new(StatusCode::BAD_REQUEST, "malformed", "attestation", rule)
    };
    if item.len() > ATTESTATION_B64_MAX {
        return Err(malformed(format!(
            "longer than the base64 of the largest attestation ({ATTESTATION_BYTES_MAX} bytes)"
        )));
    }
    B64.decode(item.as_bytes()).map_err(|e| malformed(format!("not standard padded base64: {e}")))
}

/// What became of one submitted item.
type Outcome = Result<Admitted, ApiError>;

/// The one submission path: verifies, admits (see [`admit_all`]) and offers the admitted
/// attestations for gossip. One outcome per item, in input order.
async fn submit(st: &ApiState, items: Vec<Result<Vec<u8>, ApiError>>) -> Result<Vec<Outcome>, ApiError> {
    let state = st.clone();
    let (outcomes, admitted) = blocking(move || admit_all(&state, items)).await?;
    offer_for_gossip(st, admitted);
    Ok(outcomes)
}

/// The one admission path ([`admit_batch`], shared with gossip and the simulator):
/// every decoded item's signature in one batch (no lock held), then admission in order
/// under the mempool lock (lock order: the mempool, then the store). Returns the
/// outcomes and, when gossip is on, the admitted leaves.
pub(super) fn admit_all(
    st: &ApiState,
    items: Vec<Result<Vec<u8>, ApiError>>,
) -> Result<(Vec<Outcome>, Vec<Leaf>), ApiError> {
    let refuse = |e: AdmitError| {
        st.metrics.refused(&e.code());
        ApiError::from(e)
    };
    let mut bytes = Vec::with_capacity(items.len());
    let decode_errors: Vec<Option<ApiError>> = items
        .into_iter()
        .map(|item| match item {
            Ok(b) => {
                bytes.push(b);
                None
            }
            Err(e) => Some(e),
        })
        .collect();
    let batch = admit_batch(&st.verifier, &PinnedStore::new(&st.store), &st.mempool, bytes, Origin::Client, now_ms());
    st.metrics.observe_admission(&batch);
    let mut results = batch.results.into_iter();
    let outcomes: Vec<Outcome> = decode_errors
        .into_iter()
        .map(|error| match error {
            Some(e) => Err(e),
            None => match results.next() {
                Some(r) => r.map_err(refuse),
                None => Err(ApiError::internal("admission gave fewer outcomes than items")),
            },
        })
        .collect();
    st.metrics.observe_mempool(&st.lock_mempool()?.stats());
    for a in outcomes.iter().flatten() {
        for (id, why) in &a.evicted {
            tracing::info!(%id, reason = %why, "mempool: held attestation dropped at its turn");
        }
    }
    let leaves = if st.on_admit.is_some() { batch.leaves } else { Vec::new() };
    Ok((outcomes, leaves))
}

/// Offers admitted attestations to the gossip queue without waiting. When it is full the
/// rest stay pending here only (this node still proposes them, whole: they are unshared,
/// [`crate::mempool::Mempool::unshare`]); warns at most once a second.
pub(super) fn offer_for_gossip(st: &ApiState, leaves: Vec<Leaf>) {
    static LAST_WARNED_MS: AtomicU64 = AtomicU64::new(0);
    let Some(tx) = &st.on_admit else { return };
    let offered = leaves.len();
    let mut unsent = Vec::new();
    let mut leaves = leaves.into_iter();
    for leaf in leaves.by_ref() {
        match tx.try_send(leaf) {
            Ok(()) => {}
            Err(TrySendError::Full(leaf)) => unsent.push(leaf.id),
            Err(TrySendError::Closed(leaf)) => {
                unsent.push(leaf.id);
                break;
            }
        }
    }
    unsent.extend(leaves.map(|l| l.id));
    let dropped = unsent.len();
    if dropped > 0 {
        st.mempool.lock().unwrap_or_else(std::sync::PoisonError::into_inner).unshare(&unsent);
    }
    let now = now_ms();
    if dropped > 0 && now.saturating_sub(LAST_WARNED_MS.swap(now, Ordering::Relaxed)) >= 1000 {
        tracing::warn!(dropped, offered, "api: gossip queue full or closed; attestations stay pending locally");
    }
}

// ---------------------------------------------------------------------------------------------
// Attestations
// ---------------------------------------------------------------------------------------------

/// One attestation by id: committed (with height, leaf index and current status) or pending.
#[utoipa::path(
    get,
    path = "/v1/attestations/{id}",
    tag = "attestations",
    params(("id" = String, Path, description = "Attestation id: 64 hex digits"), ReadQuery),
    security(("rfc9421" = [])),
    responses(
        (status = 200, description = "The attestation; an enterprise's facts are withheld (`claim.kind` = `withheld`) unless read with a purpose under a live consent", body = AttestationView),
        (status = 410, description = "Below the snapshot this node started from: it holds no block, leaf or record location there (`code` not_held, `field` the parameter, `rule` the base height); ask a full node", body = ErrorBody),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 401, description = "Unsigned, badly signed, replayed, or signed by an unknown, revoked or expired access key (`field` and `rule` say which)", body = ErrorBody),
        (status = 403, description = "The access key lacks the scope, or no live consent allows this restricted read (`rule` names what is missing)", body = ErrorBody),
        (status = 404, description = "Neither committed nor pending here", body = ErrorBody),
    )
)]
pub async fn get_attestation(
    State(st): State<ApiState>,
    reader: Option<Extension<Reader>>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> Result<Json<AttestationView>, ApiError> {
    let reader = reader_of(reader)?;
    let id = parse_id("id", &id)?;
    let restricted = Restricted::parse(q.purpose.as_deref(), q.consent.as_deref())?;
    let view = blocking(move || {
        {
            let store = st.read_store()?;
            if let Some((view, leaf)) = committed_view(&*store, &id)? {
                let claim = &leaf.attestation.body.claim;
                let consent = match (restricted, enterprise_of(&*store, claim)?) {
                    _ if reader.offline => Some(LiveConsent::everything()),
                    (Some(r), Some(e)) => {
                        let c = find_consent(&*store, &reader, &e, r.purpose, r.consent, now_ms())?;
                        log_read(&st, &reader, e, r, &c, ReadKind::Facts)?;
                        Some(c)
                    }
                    _ => None,
                };
                return Ok(shape(view, claim.kind(), consent.as_ref()));
            }
        }
        let pool = st.lock_mempool()?;
        match pool.get(&id) {
            // Pending records are shown to their kind only: facts are read once committed, under consent.
            Some(p) => Ok(shape(AttestationView::pending(p.leaf, p.held), p.leaf.attestation.body.claim.kind(), None)),
            None => Err(ApiError::not_found("id", format!("attestation {id} is neither committed nor pending here"))),
        }
    })
    .await?;
    Ok(Json(view))
}

/// The openings of a record's confidential amounts, disclosed by the attester's node under a
/// live consent covering the record's kind (regulators: always); each disclosure is logged as
/// a query record that read `openings`. The reader checks each against the leaf's commitment.
#[utoipa::path(
    get,
    path = "/v1/attestations/{id}/openings",
    tag = "attestations",
    params(("id" = String, Path, description = "Attestation id: 64 hex digits"), ReadQuery),
    security(("rfc9421" = [])),
    responses(
        (status = 200, description = "The openings; check each against the commitment in the leaf (docs/encoding.md §13)", body = OpeningsView),
        (status = 410, description = "Below the snapshot this node started from: it holds no block, leaf or record location there (`code` not_held, `field` the parameter, `rule` the base height); ask a full node", body = ErrorBody),
        (status = 400, description = "Not an id, or no `purpose` (openings are a restricted read)", body = ErrorBody),
        (status = 401, description = "Unsigned, badly signed, replayed, or signed by an unknown, revoked or expired access key (`field` and `rule` say which)", body = ErrorBody),
        (status = 403, description = "The access key lacks the restricted scope, or no live consent covering the record's kind allows the read (`rule` names what is missing)", body = ErrorBody),
        (status = 404, description = "Not committed here, no sealed amount in it, or this node does not hold its openings (`rule` names the attester member whose node does)", body = ErrorBody),
        (status = 503, description = "This node cannot log the read (no member key, or the query log is full)", body = ErrorBody),
    )
)]
pub async fn attestation_openings(
    State(st): State<ApiState>,
    reader: Option<Extension<Reader>>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> Result<Json<OpeningsView>, ApiError> {
    let reader = reader_of(reader)?;
    let id = parse_id("id", &id)?;
    let Some(r) = Restricted::parse(q.purpose.as_deref(), q.consent.as_deref())? else {
        return Err(ApiError::bad_request(
            "purpose",
            "openings are a restricted read: give purpose (and optionally consent)",
        ));
    };
    let view = blocking(move || {
        let store = st.read_store()?;
        let Some((_, leaf)) = committed_view(&*store, &id)? else {
            return Err(ApiError::not_found("id", format!("attestation {id} is not committed here")));
        };
        let body = &leaf.attestation.body;
        let sealed = body.claim.sealed_amounts();
        if sealed.is_empty() {
            return Err(ApiError::not_found("id", format!("attestation {id} has no confidential amount")));
        }
        let Some(enterprise) = enterprise_of(&*store, &body.claim)? else {
            return Err(ApiError::internal(format!("attestation {id} names no enterprise")));
        };
        let consent = if reader.offline {
            LiveConsent::everything()
        } else {
            find_consent(&*store, &reader, &enterprise, r.purpose, r.consent, now_ms())?
        };
        let kind = body.claim.kind();
        if let Some(f) = kind.fact()
            && !consent.scope.contains(&f)
        {
            return Err(super::access::forbidden(
                "consent",
                format!(
                    "consent {} does not cover {} records of enterprise {enterprise}",
                    consent.id.map_or_else(|| "(none)".to_string(), |c| c.to_string()),
                    f.name()
                ),
            ));
        }
        let not_held = || {
            ApiError::not_found(
                "id",
                format!(
                    "this node does not hold the openings of {id}; they are kept by the node of member '{}', its attester",
                    body.attester
                ),
            )
        };
        let openings = match &st.openings {
            Some((member, keep)) if *member == body.attester => keep.get(&id).map_err(ApiError::internal)?,
            _ => return Err(not_held()),
        };
        if openings.is_empty() {
            return Err(not_held());
        }
        if !reader.offline {
            log_read(&st, &reader, enterprise, r, &consent, ReadKind::Openings)?;
        }
        let views = openings
            .iter()
            .filter_map(|o| sealed.iter().find(|(f, _)| *f == o.field).map(|(_, a)| OpeningView::of(o, &a.currency())))
            .collect();
        Ok(OpeningsView { id: id.to_string(), attester: body.attester.to_string(), openings: views })
    })
    .await?;
    Ok(Json(view))
}

fn committed_view(
    store: &(dyn Store + Send + Sync),
    id: &AttestationId,
) -> Result<Option<(AttestationView, Leaf)>, ApiError> {
    let Some(loc) = store.locate(id)? else { return Ok(None) };
    let Some(leaf) = store.leaf(loc.leaf_index)? else {
        return Err(ApiError::internal(format!("store: leaf {} of {id} is missing", loc.leaf_index)));
    };
    let record_status = store.record(id)?.map(|m| m.status);
    let at = Committed { height: loc.height, leaf_index: loc.leaf_index, record_status };
    Ok(Some((AttestationView::committed(&leaf, at), leaf)))
}

/// Paging and range parameters of the attestation lists. Heights and times select whole
/// blocks: `from_height`/`to_height` are inclusive; `since_ms`/`until_ms` compare with the
/// block time (the proposer's clock, strictly increasing along the chain, rule R019).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Most items, 1 to 1000 (default 100); larger values are refused.
    #[param(value_type = Option<u64>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
    /// Return only attestations with a leaf index greater than this (the previous page's `next_after`).
    #[param(value_type = Option<u64>)]
    pub after: Option<String>,
    /// Only attestations in blocks at this height or later.
    #[param(value_type = Option<u64>)]
    pub from_height: Option<String>,
    /// Only attestations in blocks at this height or earlier.
    #[param(value_type = Option<u64>)]
    pub to_height: Option<String>,
    /// Only attestations in blocks whose time is at or after this (Unix epoch milliseconds).
    #[param(value_type = Option<u64>)]
    pub since_ms: Option<String>,
    /// Only attestations in blocks whose time is at or before this (Unix epoch milliseconds).
    #[param(value_type = Option<u64>)]
    pub until_ms: Option<String>,
    /// A restricted read (enterprise listing only): loan-application, post-loan-monitoring,
    /// guarantee-review, risk-pool-claim, or supervision (regulators). Needs a live consent
    /// (or the regulator scope); the read is logged as a query record. Without it, facts are withheld.
    pub purpose: Option<String>,
    /// The consent to read under (its id); by default the live one of this enterprise,
    /// member and purpose that lasts longest.
    pub consent: Option<String>,
}

/// The restricted-read parameters of `GET /v1/attestations/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReadQuery {
    /// As in the enterprise listing: read the record's facts for this purpose (logged).
    pub purpose: Option<String>,
    /// The consent to read under.
    pub consent: Option<String>,
}

/// A restricted read asked for: purpose and optional consent, parsed.
#[derive(Clone, Copy, Debug)]
struct Restricted {
    purpose: Purpose,
    consent: Option<AttestationId>,
}

impl Restricted {
    fn parse(purpose: Option<&str>, consent: Option<&str>) -> Result<Option<Restricted>, ApiError> {
        let consent = consent.map(|c| parse_id("consent", c)).transpose()?;
        match purpose {
            None if consent.is_some() => {
                Err(ApiError::bad_request("purpose", "a consent is read under with a purpose"))
            }
            None => Ok(None),
            Some(p) => match Purpose::parse(p) {
                Some(purpose) => Ok(Some(Restricted { purpose, consent })),
                None => Err(ApiError::bad_request(
                    "purpose",
                    "must be loan-application, post-loan-monitoring, guarantee-review, risk-pool-claim or supervision",
                )),
            },
        }
    }
}

/// What `reader` may see of `view` (docs/ACCESS.md): enterprise facts only under `consent`
/// covering their kind; consents and query records of the enterprise under any consent of
/// it; other records (grants, releases, revocations, evidence) to every member.
fn shape(view: AttestationView, kind: ClaimKind, consent: Option<&LiveConsent>) -> AttestationView {
    let visible = match (kind.fact(), kind) {
        (Some(f), _) => consent.is_some_and(|c| c.scope.contains(&f)),
        (None, ClaimKind::Consent | ClaimKind::Query) => consent.is_some(),
        (None, _) => true,
    };
    if visible { view } else { view.withheld(kind.name()) }
}

/// The authenticated reader, or 401 if the route was served without the access layer.
pub(super) fn reader_of(reader: Option<Extension<Reader>>) -> Result<Reader, ApiError> {
    match reader {
        Some(Extension(r)) => Ok(r),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "signature",
            "this route needs a signed request",
        )),
    }
}

/// Logs one restricted read (before its answer leaves): 503 if this node cannot log.
fn log_read(
    st: &ApiState,
    reader: &Reader,
    enterprise: Uscc,
    r: Restricted,
    consent: &LiveConsent,
    read: ReadKind,
) -> Result<(), ApiError> {
    let Some(log) = &st.query_log else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_query_log",
            "purpose",
            "this node has no member key to sign query records, so it serves no restricted reads; read at a member's node",
        ));
    };
    log.record(QueryRecord {
        reader: reader.member.clone(),
        access_key: reader.grant,
        enterprise,
        purpose: r.purpose,
        consent: consent.id,
        read,
    })
}

/// Logs a regulator's read of many leaves at once, before they leave (the whole block at
/// `height`, or entry bundle `N`: `read` says which): one query record per enterprise whose
/// withheld content the leaves hold, i.e. records that the member scope withholds ([`shape`]:
/// facts, consents, query records), each attributed as a consent would cover it (a loan event
/// by its loan's enterprise). All are queued or none. Leaves without such records (grants,
/// releases, revocations, governance, an empty block) log nothing. `field` names the request's
/// part in a refusal.
pub(super) fn log_bulk_read(
    st: &ApiState,
    store: &(dyn Store + Send + Sync),
    reader: &Reader,
    leaves: &[Leaf],
    read: ReadKind,
    field: &'static str,
) -> Result<(), ApiError> {
    let mut enterprises = std::collections::BTreeSet::new();
    for leaf in leaves {
        let claim = &leaf.attestation.body.claim;
        let withheld = claim.kind().fact().is_some() || matches!(claim.kind(), ClaimKind::Consent | ClaimKind::Query);
        if withheld && let Some(e) = enterprise_of(store, claim)? {
            enterprises.insert(e);
        }
    }
    log_supervision(st, reader, enterprises, read, field)
}

/// Logs a regulator's read of `enterprises`' facts (purpose supervision, no consent): one
/// query record each, all queued or none; nothing when there are none.
fn log_supervision(
    st: &ApiState,
    reader: &Reader,
    enterprises: std::collections::BTreeSet<Uscc>,
    read: ReadKind,
    field: &'static str,
) -> Result<(), ApiError> {
    if enterprises.is_empty() {
        return Ok(());
    }
    let Some(log) = &st.query_log else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_query_log",
            field,
            "this node has no member key to sign query records, so it serves no bulk reads; read at a member's node",
        ));
    };
    log.record_all(
        enterprises
            .into_iter()
            .map(|enterprise| QueryRecord {
                reader: reader.member.clone(),
                access_key: reader.grant,
                enterprise,
                purpose: Purpose::Supervision,
                consent: None,
                read,
            })
            .collect(),
    )
}

/// An index key that owns its value (moved to the blocking pool).
enum Key {
    Enterprise(Uscc),
    Patent(PatentNumber),
    Attester(u16),
    Refers(AttestationId),
    /// The query records of one reader (member index): regulator scope, everything shown.
    Reader(u16),
}

/// The block range a [`PageQuery`] selects, as given (before it is resolved against the store).
#[derive(Clone, Copy, Debug, Default)]
struct BlockRange {
    from_height: Option<u64>,
    to_height: Option<u64>,
    since_ms: Option<u64>,
    until_ms: Option<u64>,
}

impl BlockRange {
    fn parse(q: &PageQuery) -> Result<BlockRange, ApiError> {
        Ok(BlockRange {
            from_height: parse_opt_u64("from_height", q.from_height.as_deref())?,
            to_height: parse_opt_u64("to_height", q.to_height.as_deref())?,
            since_ms: parse_opt_u64("since_ms", q.since_ms.as_deref())?,
            until_ms: parse_opt_u64("until_ms", q.until_ms.as_deref())?,
        })
    }

    /// The leaf indexes `[lo, hi)` of the selected blocks, or `None` if no block is selected.
    fn leaves(&self, store: &(dyn Store + Send + Sync)) -> Result<Option<(u64, u64)>, ApiError> {
        let Some(head) = store.head()? else { return Ok(None) };
        let mut first = self.from_height.unwrap_or(1).max(1);
        let mut last = self.to_height.unwrap_or(head.height).min(head.height);
        if let Some(t) = self.since_ms {
            // The first height whose time is >= t (head.height + 1 if none).
            first = first.max(first_height_where(store, head.height, |time| time >= t)?);
        }
        if let Some(t) = self.until_ms {
            // The last height whose time is <= t (0 if none).
            last = last.min(first_height_where(store, head.height, |time| time > t)? - 1);
        }
        if first > last {
            return Ok(None);
        }
        Ok(Some((tree_size_at(store, first - 1)?, tree_size_at(store, last)?)))
    }
}

/// The smallest height in `1..=head` whose block time satisfies `pred` (monotone: false
/// then true along the chain), or `head + 1`. Binary search: O(log head) header reads.
fn first_height_where(
    store: &(dyn Store + Send + Sync),
    head: u64,
    pred: impl Fn(u64) -> bool,
) -> Result<u64, ApiError> {
    let (mut lo, mut hi) = (1u64, head + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let Some(h) = store.header(mid)? else {
            return Err(ApiError::internal(format!("store: header {mid} is missing")));
        };
        if pred(h.time_ms) { hi = mid } else { lo = mid + 1 }
    }
    Ok(lo)
}

/// Leaves in the tree after block `height` (0 for height 0).
fn tree_size_at(store: &(dyn Store + Send + Sync), height: u64) -> Result<u64, ApiError> {
    if height == 0 {
        return Ok(0);
    }
    match store.header(height)? {
        Some(h) => Ok(h.tree_size),
        None => Err(ApiError::internal(format!("store: header {height} is missing"))),
    }
}

/// The enterprise whose consent covers a record: the one it names, or else (a loan event, a
/// pool record, a disposal) the one named by the first record it builds on that names one.
fn enterprise_of(store: &(dyn Store + Send + Sync), claim: &Claim) -> Result<Option<Uscc>, ApiError> {
    if let Some(e) = claim.enterprise() {
        return Ok(Some(*e));
    }
    for id in claim.references() {
        if let Some(loc) = store.locate(&id)?
            && let Some(leaf) = store.leaf(loc.leaf_index)?
            && let Some(e) = leaf.attestation.body.claim.enterprise()
        {
            return Ok(Some(*e));
        }
    }
    Ok(None)
}

/// The enterprise a referenced record (a loan, a pledge) is about: whose consent covers
/// the records naming it.
fn referenced_enterprise(store: &(dyn Store + Send + Sync), id: &AttestationId) -> Result<Uscc, ApiError> {
    let Some(loc) = store.locate(id)? else {
        return Err(ApiError::not_found("id", format!("{id} is not a committed attestation")));
    };
    let Some(leaf) = store.leaf(loc.leaf_index)? else {
        return Err(ApiError::internal(format!("store: leaf {} is missing", loc.leaf_index)));
    };
    leaf.attestation.body.claim.enterprise().copied().ok_or_else(|| {
        ApiError::bad_request("purpose", format!("{id} names no enterprise, so no one enterprise's consent covers it"))
    })
}

async fn page(st: ApiState, reader: Reader, key: Key, q: PageQuery) -> Result<Json<AttestationPage>, ApiError> {
    let restricted = Restricted::parse(q.purpose.as_deref(), q.consent.as_deref())?;
    if restricted.is_some() && !matches!(key, Key::Enterprise(_) | Key::Refers(_)) {
        return Err(ApiError::bad_request(
            "purpose",
            "restricted reads are of one enterprise: GET /v1/enterprises/{uscc}/attestations, \
             /v1/attestations/{id}/references or /v1/attestations/{id}",
        ));
    }
    let limit = match parse_opt_u64("limit", q.limit.as_deref())? {
        None => PAGE_LIMIT_DEFAULT,
        Some(n) if n >= 1 && n <= PAGE_LIMIT_MAX as u64 => n as usize,
        Some(_) => return Err(ApiError::bad_request("limit", format!("must be between 1 and {PAGE_LIMIT_MAX}"))),
    };
    let after = parse_opt_u64("after", q.after.as_deref())?;
    let range = BlockRange::parse(&q)?;
    let page = blocking(move || {
        let store = st.read_store()?;
        // What the reader may see, and the read to log (offline holders are not logged).
        let (seen, logged) = match (&key, restricted) {
            _ if reader.offline => (Some(LiveConsent::everything()), None),
            (Key::Enterprise(e), Some(r)) => {
                let c = find_consent(&*store, &reader, e, r.purpose, r.consent, now_ms())?;
                (Some(c.clone()), Some((c, *e, r)))
            }
            // The records naming a loan or pledge are read under its enterprise's consent.
            (Key::Refers(id), Some(r)) => {
                let e = referenced_enterprise(&*store, id)?;
                let c = find_consent(&*store, &reader, &e, r.purpose, r.consent, now_ms())?;
                (Some(c.clone()), Some((c, e, r)))
            }
            // The route is in the regulator scope: the query log is what it supervises. The
            // listing shows who read which enterprise, not the enterprise's facts, so it is not
            // itself logged (docs/ACCESS.md §Reading the query log).
            (Key::Reader(_), _) if reader.regulator => (Some(LiveConsent::everything()), None),
            _ => (None, None),
        };
        // A record about another enterprise is never shown under this one's consent.
        let consented = logged.as_ref().map(|(_, e, _)| *e);
        let key = match &key {
            Key::Enterprise(u) => IndexKey::Enterprise(u),
            Key::Patent(p) => IndexKey::Patent(p),
            Key::Attester(m) => IndexKey::Attester(*m),
            Key::Refers(id) => IndexKey::Refers(id),
            Key::Reader(m) => IndexKey::Reader(*m),
        };
        let Some((lo, hi)) = range.leaves(&*store)? else {
            return Ok(AttestationPage { items: Vec::new(), next_after: None });
        };
        // Start at leaf `lo` at the earliest; stop before leaf `hi`.
        let after = match (after, lo.checked_sub(1)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let mut indexes = store.query(key, after, limit)?;
        let full = indexes.len() == limit;
        // Member indexes are never reused, so the latest governance state resolves every attester.
        let gov = StoreView(&*store).governance()?.unwrap_or_else(|| st.ctx.genesis.governance());
        indexes.retain(|&i| i < hi);
        let mut items = Vec::with_capacity(indexes.len());
        for index in &indexes {
            let Some(leaf) = store.leaf(*index)? else {
                return Err(ApiError::internal(format!("store: indexed leaf {index} is missing")));
            };
            // The index is derived data the start-up verification does not cover: never serve
            // a leaf it points to by mistake.
            let claim = &leaf.attestation.body.claim;
            let matches = match &key {
                IndexKey::Enterprise(u) => claim.enterprise() == Some(*u),
                IndexKey::Patent(p) => claim.patent() == Some(*p),
                IndexKey::Attester(m) => gov.member_index(&leaf.attestation.body.attester) == Some(*m),
                IndexKey::Refers(id) => claim.references().contains(id),
                IndexKey::Consents(u) => matches!(claim, Claim::Consent(c) if c.enterprise == **u),
                IndexKey::Reader(m) => {
                    matches!(claim, Claim::Query(q) if gov.member_index(&q.reader) == Some(*m))
                }
            };
            if !matches {
                return Err(ApiError::internal(format!("store: corrupt index: leaf {index} is not about this key")));
            }
            let Some(loc) = store.locate(&leaf.id)? else {
                return Err(ApiError::internal(format!("store: leaf {index} has no location")));
            };
            if loc.leaf_index != *index {
                return Err(ApiError::internal(format!("store: corrupt location of leaf {index}")));
            }
            let record_status = store.record(&leaf.id)?.map(|m| m.status);
            let view =
                AttestationView::committed(&leaf, Committed { height: loc.height, leaf_index: *index, record_status });
            let other = matches!((claim.enterprise(), consented), (Some(x), Some(e)) if *x != e);
            items.push(shape(view, claim.kind(), if other { None } else { seen.as_ref() }));
        }
        if let Some((c, enterprise, r)) = &logged {
            log_read(&st, &reader, *enterprise, *r, c, ReadKind::Facts)?;
        }
        let next_after = if full && indexes.len() == limit { indexes.last().copied() } else { None };
        Ok(AttestationPage { items, next_after })
    })
    .await?;
    Ok(Json(page))
}

/// Committed attestations about an enterprise (R&D spend, valuations of its patents, its pledges).
#[utoipa::path(
    get,
    path = "/v1/enterprises/{uscc}/attestations",
    tag = "queries",
    params(("uscc" = String, Path, description = "Unified social credit code (18 characters, GB 32100-2015)"), PageQuery),
    security(("rfc9421" = [])),
    responses(
        (status = 401, description = "Unsigned, badly signed, replayed, or signed by an unknown, revoked or expired access key (`field` and `rule` say which)", body = ErrorBody),
        (status = 403, description = "The access key lacks the route's scope, or no live consent allows the restricted read (`rule` names what is missing)", body = ErrorBody),
        (status = 200, description = "A page, ascending by leaf index", body = AttestationPage),
        (status = 400, description = "Bad code or paging parameter", body = ErrorBody),
    )
)]
pub async fn enterprise_attestations(
    State(st): State<ApiState>,
    reader: Option<Extension<Reader>>,
    ApiPath(uscc): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<AttestationPage>, ApiError> {
    let uscc = Uscc::parse("uscc", &uscc).map_err(|e| ApiError::from_id(e, "uscc"))?;
    page(st, reader_of(reader)?, Key::Enterprise(uscc), q).await
}

/// Committed attestations about a patent (valuations and pledges).
#[utoipa::path(
    get,
    path = "/v1/patents/{number}/attestations",
    tag = "queries",
    params(("number" = String, Path, description = "CN application number, e.g. CN202310123456.6"), PageQuery),
    security(("rfc9421" = [])),
    responses(
        (status = 401, description = "Unsigned, badly signed, replayed, or signed by an unknown, revoked or expired access key (`field` and `rule` say which)", body = ErrorBody),
        (status = 403, description = "The access key lacks the route's scope, or no live consent allows the restricted read (`rule` names what is missing)", body = ErrorBody),
        (status = 200, description = "A page, ascending by leaf index", body = AttestationPage),
        (status = 400, description = "Bad number or paging parameter", body = ErrorBody),
    )
)]
pub async fn patent_attestations(
    State(st): State<ApiState>,
    reader: Option<Extension<Reader>>,
    ApiPath(number): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<AttestationPage>, ApiError> {
    let patent = PatentNumber::parse("number", &number).map_err(|e| ApiError::from_id(e, "number"))?;
    page(st, reader_of(reader)?, Key::Patent(patent), q).await
}

/// Committed attestations signed by a member.
#[utoipa::path(
    get,
    path = "/v1/attesters/{member}/attestations",
    tag = "queries",
    params(("member" = String, Path, description = "Member name (from genesis or added by governance)"), PageQuery),
    security(("rfc9421" = [])),
    responses(
        (status = 401, description = "Unsigned, badly signed, replayed, or signed by an unknown, revoked or expired access key (`field` and `rule` say which)", body = ErrorBody),
        (status = 403, description = "The access key lacks the route's scope, or no live consent allows the restricted read (`rule` names what is missing)", body = ErrorBody),
        (status = 200, description = "A page, ascending by leaf index", body = AttestationPage),
        (status = 400, description = "Bad name or paging parameter", body = ErrorBody),
        (status = 404, description = "Not a member", body = ErrorBody),
    )
)]
pub async fn attester_attestations(
    State(st): State<ApiState>,
    reader: Option<Extension<Reader>>,
    ApiPath(member): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<AttestationPage>, ApiError> {
    let (_, index) = parse_member(&st, &member)?;
    page(st, reader_of(reader)?, Key::Attester(index), q).await
}

/// The query records of one reader member: every restricted read its access keys made at any
/// node, as the ledger logged them (look-through supervision of the query log, docs/ACCESS.md).
#[utoipa::path(
    get,
    path = "/v1/members/{member}/queries",
    tag = "queries",
    params(("member" = String, Path, description = "The reader's member name (from genesis or added by governance)"), PageQuery),
    security(("rfc9421" = [])),
    responses(
        (status = 200, description = "A page of query records (`claim.kind` = `query`, `claim.reader` = the member), ascending by leaf index", body = AttestationPage),
        (status = 400, description = "Bad name or paging parameter, or a `purpose` (this listing is not a read of one enterprise)", body = ErrorBody),
        (status = 401, description = "Unsigned, badly signed, replayed, or signed by an unknown, revoked or expired access key (`field` and `rule` say which)", body = ErrorBody),
        (status = 403, description = "The access key lacks the regulator scope (field `scope`)", body = ErrorBody),
        (status = 404, description = "Not a member", body = ErrorBody),
    )
)]
pub async fn member_queries(
    State(st): State<ApiState>,
    reader: Option<Extension<Reader>>,
    ApiPath(member): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<AttestationPage>, ApiError> {
    let reader = reader_of(reader)?;
    let (_, index) = parse_member(&st, &member)?;
    page(st, reader, Key::Reader(index), q).await
}

/// Committed attestations that name an earlier record: a loan's events, enrolments, pool
/// claims and payments; a pledge's CNIPA registration, release, disposal and the loan it
/// secures; a pool's enrolments, claims and payments (the IP-loan kinds only).
#[utoipa::path(
    get,
    path = "/v1/attestations/{id}/references",
    tag = "queries",
    params(("id" = String, Path, description = "Attestation id: 64 hex digits"), PageQuery),
    security(("rfc9421" = [])),
    responses(
        (status = 200, description = "A page, ascending by leaf index (empty for a record nothing names); with `purpose`, read under the consent of the enterprise the record builds on", body = AttestationPage),
        (status = 410, description = "Below the snapshot this node started from: it holds no block, leaf or record location there (`code` not_held, `field` the parameter, `rule` the base height); ask a full node", body = ErrorBody),
        (status = 400, description = "Bad id or paging parameter, or `purpose` on a record that names no enterprise", body = ErrorBody),
        (status = 401, description = "Unsigned, badly signed, replayed, or signed by an unknown, revoked or expired access key (`field` and `rule` say which)", body = ErrorBody),
        (status = 403, description = "The access key lacks the member scope, or no live consent allows the restricted read (`rule` names what is missing)", body = ErrorBody),
        (status = 404, description = "With `purpose`: the record is not committed", body = ErrorBody),
    )
)]
pub async fn attestation_references(
    State(st): State<ApiState>,
    reader: Option<Extension<Reader>>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<AttestationPage>, ApiError> {
    let id = parse_id("id", &id)?;
    page(st, reader_of(reader)?, Key::Refers(id), q).await
}

/// Query parameters of `GET /v1/portfolio`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PortfolioQuery {
    /// Only this lender's figures and loans, and its figures by month end in
    /// `series.lenders` (a member name); the overall figures and series stay.
    pub lender: Option<String>,
    /// Per-loan lines to include, 0 to 1000 (default 0: none), ascending by loan id.
    #[param(value_type = Option<u64>, minimum = 0, maximum = 1000)]
    pub loans_limit: Option<String>,
    /// Only loan lines with an id after this one (the previous page's `loans_next_after`).
    pub loans_after: Option<String>,
}

/// Leaves the portfolio reads under one store read lock while catching up, so a long
/// catch-up never holds the committing driver off for more than this many leaf reads.
pub const PORTFOLIO_CHUNK_LEAVES: u64 = 10_000;

/// The regulator's and pools' figures: IP-pledge loans outstanding, the bad-loan ratio
/// (次级 + 可疑 + 损失 over outstanding) and LTV buckets, overall and per lender, and each
/// risk pool's exposure, claims and payments, with the records behind them; and `series`,
/// the figures as of each month end by the records' business dates (loan start, event
/// dates), at most `SERIES_MONTHS_MAX` months (the latest), overall and for `lender`.
///
/// Computed by `credence_ledger::portfolio`, the streaming code `credence portfolio
/// --data-dir` runs on a store, over the committed leaves up to the head when the request
/// arrived. The node keeps the computation between requests and reads only the leaves
/// committed since (the first request after a start reads them all, in chunks of 10,000
/// leaves, one request at a time). Per-loan lines (`loans_limit`) name each loan's
/// borrower, classification record and appraisals; pools list their claim and payment
/// records. A page of loan lines is logged before it leaves, one query record per borrower
/// on it (`read: portfolio` with the height; docs/ACCESS.md §Portfolio); the totals alone are
/// not. `records` counts the records behind the figures: pages with the same count describe
/// the same loans.
#[utoipa::path(
    get,
    path = "/v1/portfolio",
    tag = "queries",
    params(PortfolioQuery),
    security(("rfc9421" = [])),
    responses(
        (status = 200, description = "The figures", body = PortfolioView),
        (status = 410, description = "Below the snapshot this node started from: it holds no block, leaf or record location there (`code` not_held, `field` the parameter, `rule` the base height); ask a full node", body = ErrorBody),
        (status = 401, description = "Unsigned, badly signed, replayed, or signed by an unknown, revoked or expired access key (`field` and `rule` say which)", body = ErrorBody),
        (status = 403, description = "The access key lacks the regulator scope: the figures hold many enterprises' facts", body = ErrorBody),
        (status = 400, description = "Bad lender name, id or limit", body = ErrorBody),
        (status = 404, description = "`lender` is not a member", body = ErrorBody),
        (status = 503, description = "The query log cannot take the loan lines' records now (code `busy`), or this node has no member key to log them (`no_query_log`): retry, or read at a member's node", body = ErrorBody),
    )
)]
pub async fn portfolio(
    State(st): State<ApiState>,
    reader: Option<Extension<Reader>>,
    ApiQuery(q): ApiQuery<PortfolioQuery>,
) -> Result<Json<PortfolioView>, ApiError> {
    let reader = reader_of(reader)?;
    let lender = match &q.lender {
        Some(l) => Some(parse_member(&st, l)?.0.to_string()),
        None => None,
    };
    let loans_limit = match parse_opt_u64("loans_limit", q.loans_limit.as_deref())? {
        None => 0,
        Some(n) if n <= PAGE_LIMIT_MAX as u64 => n as usize,
        Some(_) => return Err(ApiError::bad_request("loans_limit", format!("must be between 0 and {PAGE_LIMIT_MAX}"))),
    };
    let after = q.loans_after.as_deref().map(|a| parse_id("loans_after", a)).transpose()?;
    let view = blocking(move || {
        // One portfolio request at a time (lock order: the portfolio, then the store).
        let mut cache = st.portfolio.lock().map_err(|_| ApiError::internal("portfolio lock poisoned"))?;
        let Some(head) = st.read_store()?.head()? else {
            return Ok(PortfolioView::of(&cache.portfolio, 0, 0, lender.as_deref(), after.as_ref(), loans_limit));
        };
        while cache.tree_size < head.tree_size {
            let store = st.read_store()?;
            let end = head.tree_size.min(cache.tree_size + PORTFOLIO_CHUNK_LEAVES);
            let (from, portfolio) = (cache.tree_size, &mut cache.portfolio);
            credence_ledger::store::for_each_leaf(&*store, from, end, |_, leaf| {
                portfolio.add(leaf.id, &leaf.attestation.body.claim)
            })?;
            cache.tree_size = end;
        }
        if !reader.offline {
            // Loan lines are each loan's facts (principal, outstanding, class, appraisals): their
            // borrowers are logged before the page leaves. The figures alone are totals over
            // many enterprises and log nothing (docs/ACCESS.md §Portfolio).
            let borrowers =
                cache.portfolio.loan_page(lender.as_deref(), after.as_ref(), loans_limit).map(|l| l.borrower);
            let read = ReadKind::Portfolio { height: head.height };
            log_supervision(&st, &reader, borrowers.collect(), read, "loans_limit")?;
        }
        Ok(PortfolioView::of(
            &cache.portfolio,
            head.height,
            head.tree_size,
            lender.as_deref(),
            after.as_ref(),
            loans_limit,
        ))
    })
    .await?;
    Ok(Json(view))
}

/// The sequence number a member must sign next (committed plus pending), for `credence attest`.
#[utoipa::path(
    get,
    path = "/v1/attesters/{member}/next-sequence",
    tag = "attestations",
    params(("member" = String, Path, description = "Member name (from genesis or added by governance)")),
    responses(
        (status = 200, description = "Next sequence", body = NextSequenceView),
        (status = 400, description = "Bad name", body = ErrorBody),
        (status = 404, description = "Not a member", body = ErrorBody),
    )
)]
pub async fn next_sequence(
    State(st): State<ApiState>,
    ApiPath(member): ApiPath<String>,
) -> Result<Json<NextSequenceView>, ApiError> {
    let (name, index) = parse_member(&st, &member)?;
    let view = blocking(move || {
        // Lock order: the mempool, then the store (ARCHITECTURE.md, "Locks").
        let pool = st.lock_mempool()?;
        let store = st.read_store()?;
        let committed_next = store.next_sequence(index)?;
        let next_sequence = pool.next_sequence(&*store, index)?;
        let held = pool.held_sequences(index);
        Ok(NextSequenceView { attester: name.to_string(), next_sequence, committed_next, held })
    })
    .await?;
    Ok(Json(view))
}

// ---------------------------------------------------------------------------------------------
// Blocks, status, checkpoint
// ---------------------------------------------------------------------------------------------

/// A committed block: header, certificate and attestation ids.
#[utoipa::path(
    get,
    path = "/v1/blocks/{height}",
    tag = "chain",
    params(("height" = u64, Path, description = "Block height, from 1")),
    responses(
        (status = 200, description = "The block (public: header, certificate and leaf ids are hashes; docs/ACCESS.md)", body = BlockView),
        (status = 410, description = "Below the snapshot this node started from: it holds no block, leaf or record location there (`code` not_held, `field` the parameter, `rule` the base height); ask a full node", body = ErrorBody),
        (status = 400, description = "Not a height", body = ErrorBody),
        (status = 404, description = "No such block yet", body = ErrorBody),
    )
)]
pub async fn get_block(
    State(st): State<ApiState>,
    ApiPath(height): ApiPath<String>,
) -> Result<Json<BlockView>, ApiError> {
    let height = parse_u64("height", &height)?;
    let view = blocking(move || {
        let cb = stored_block(&*st.read_store()?, height)?;
        let ids = cb.block.leaves.iter().map(|l| l.id.to_string()).collect();
        Ok(BlockView::new(&cb.block.header, cb.certificate.to_note(), ids))
    })
    .await?;
    Ok(Json(view))
}

/// Block `height`, or a 404 naming the heights there are.
fn stored_block(store: &(dyn Store + Send + Sync), height: u64) -> Result<CertifiedBlock, ApiError> {
    match store.block(height)? {
        Some(cb) => Ok(cb),
        None => {
            let head = store.head()?.map_or(0, |h| h.height);
            Err(ApiError::not_found("height", format!("no block {height}; blocks are 1 to {head}")))
        }
    }
}

/// A committed block in its canonical binary encoding (docs/encoding.md: header, leaves and
/// certificate, as `block::encode_certified` writes them and as export files frame them), for
/// offline tools that check it themselves (`credence export --node`).
///
/// A whole block holds many enterprises' facts in clear: it is served in the regulator scope
/// only, and logged before it leaves as one query record per enterprise the block's records
/// are about (`read: block`, with the height; purpose supervision, no consent), all queued or
/// none (docs/ACCESS.md §Whole blocks).
#[utoipa::path(
    get,
    path = "/v1/blocks/{height}/certified",
    tag = "chain",
    params(("height" = u64, Path, description = "Block height, from 1")),
    security(("rfc9421" = [])),
    responses(
        (status = 401, description = "Unsigned, badly signed, replayed, or signed by an unknown, revoked or expired access key (`field` and `rule` say which)", body = ErrorBody),
        (status = 410, description = "Below the snapshot this node started from: it holds no block, leaf or record location there (`code` not_held, `field` the parameter, `rule` the base height); ask a full node", body = ErrorBody),
        (status = 403, description = "The access key lacks the route's scope, or no live consent allows the restricted read (`rule` names what is missing)", body = ErrorBody),
        (status = 200, description = "The certified block", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 400, description = "Not a height", body = ErrorBody),
        (status = 404, description = "No such block yet", body = ErrorBody),
        (status = 503, description = "The query log cannot take this read's records now (code `busy`), or this node has no member key to log it (`no_query_log`): retry, or read at a member's node", body = ErrorBody),
    )
)]
pub async fn get_certified_block(
    State(st): State<ApiState>,
    reader: Option<Extension<Reader>>,
    ApiPath(height): ApiPath<String>,
) -> Result<Response, ApiError> {
    let reader = reader_of(reader)?;
    let height = parse_u64("height", &height)?;
    let bytes = blocking(move || {
        let store = st.read_store()?;
        let cb = stored_block(&*store, height)?;
        if !reader.offline {
            log_bulk_read(&st, &*store, &reader, &cb.block.leaves, ReadKind::Block { height }, "height")?;
        }
        drop(store);
        let mut out = Vec::new();
        credence_ledger::block::encode_certified(&cb, &mut out);
        Ok(out)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

/// Governance: the members, keys, roles, validators and parameters in force at the
/// next height, open proposals with their approvals, completed changes waiting for
/// their activation height, the changes applied and the validator-set history.
#[utoipa::path(
    get,
    path = "/v1/governance",
    tag = "chain",
    responses((status = 200, description = "The governance state", body = GovernanceView))
)]
pub async fn governance(State(st): State<ApiState>) -> Result<Json<GovernanceView>, ApiError> {
    let view = blocking(move || {
        let guard = st.read_store()?;
        let height = guard.head()?.map_or(0, |h| h.height);
        let (gov, _) = st.ctx.in_force(&StoreView(&*guard), height + 1)?;
        Ok(GovernanceView::new(&gov, height))
    })
    .await?;
    Ok(Json(view))
}

/// The node's view of the chain and itself.
#[utoipa::path(
    get,
    path = "/v1/status",
    tag = "node",
    responses((status = 200, description = "Status", body = StatusView))
)]
pub async fn status(State(st): State<ApiState>) -> Result<Json<StatusView>, ApiError> {
    let node = st.status.borrow().clone();
    let view = blocking(move || {
        let head = st.read_store()?.head()?;
        let stats = st.lock_mempool()?.stats();
        Ok(StatusView {
            chain_id: st.ctx.chain_id.to_hex(),
            origin: st.ctx.genesis.checkpoint_origin.clone(),
            height: head.map_or(0, |h| h.height),
            tree_size: head.map_or(0, |h| h.tree_size),
            tree_root: b64(&head.map_or_else(merkle::empty_root, |h| h.tree_root.0)),
            block_hash: head.map(|h| h.hash.to_string()),
            time_ms: head.map_or(st.ctx.genesis.genesis_time_ms, |h| h.time_ms),
            peers: node.peers,
            syncing: node.syncing,
            validator: node.validator,
            member: node.member,
            round: node.round,
            mempool: MempoolView {
                records: stats.records,
                bytes: stats.bytes,
                held: stats.held,
                records_max: stats.limits.records_max,
                bytes_max: stats.limits.bytes_max,
            },
        })
    })
    .await?;
    Ok(Json(view))
}

/// The latest commit certificate: a C2SP tlog-checkpoint signed note cosigned by the validators,
/// then the `cosignature/v1` lines of the witnesses in force at its height this node holds for it.
#[utoipa::path(
    get,
    path = "/v1/checkpoint",
    tag = "chain",
    responses(
        (status = 200, description = "The signed note", body = String, content_type = "text/plain"),
        (status = 404, description = "No block committed yet", body = ErrorBody),
    )
)]
pub async fn checkpoint(State(st): State<ApiState>) -> Result<Response, ApiError> {
    let note = head_note(&st).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response())
}

/// The head's certificate as a signed note (`/v1/checkpoint` and the tiles' `/checkpoint`),
/// followed by the `cosignature/v1` lines of the witnesses in force at its height that cosigned it so far.
pub(crate) async fn head_note(st: &ApiState) -> Result<String, ApiError> {
    let st = st.clone();
    blocking(move || {
        let store = st.read_store()?;
        let Some(head) = store.head()? else {
            return Err(ApiError::not_found("checkpoint", "no block is committed yet"));
        };
        match store.certificate(head.height)? {
            Some(c) => Ok(c.to_note() + &st.cosignatures.lines(head.height)),
            None => Err(ApiError::internal(format!("store: certificate of head {} is missing", head.height))),
        }
    })
    .await
}

/// The chain's genesis file (TOML), as `credence attest` fetches it when not given one.
/// Its hash (SHA-256 of its canonical encoding, docs/encoding.md) is the chain id every
/// signature is bound to: check it against a chain id obtained out of band before trusting it.
#[utoipa::path(
    get,
    path = "/v1/genesis",
    tag = "chain",
    responses((status = 200, description = "The genesis, canonical TOML", body = String, content_type = "text/plain"))
)]
pub async fn genesis(State(st): State<ApiState>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], st.genesis_toml.clone()).into_response()
}

// ---------------------------------------------------------------------------------------------
// Proofs
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InclusionQuery {
    /// Tree size to prove against (default: the head's); a checkpoint's size gives a root its validators signed.
    #[param(value_type = Option<u64>)]
    pub tree_size: Option<String>,
}

/// RFC 9162 inclusion proof of a committed attestation.
#[utoipa::path(
    get,
    path = "/v1/proofs/inclusion/{id}",
    tag = "proofs",
    params(("id" = String, Path, description = "Attestation id: 64 hex digits"), InclusionQuery),
    responses(
        (status = 200, description = "The proof", body = InclusionProofView),
        (status = 410, description = "Below the snapshot this node started from: it holds no block, leaf or record location there (`code` not_held, `field` the parameter, `rule` the base height); ask a full node", body = ErrorBody),
        (status = 400, description = "Bad id or tree size", body = ErrorBody),
        (status = 404, description = "Not committed", body = ErrorBody),
    )
)]
pub async fn inclusion_proof(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<InclusionQuery>,
) -> Result<Json<InclusionProofView>, ApiError> {
    let id = parse_id("id", &id)?;
    let tree_size = parse_opt_u64("tree_size", q.tree_size.as_deref())?;
    let view = blocking(move || {
        let store = st.read_store()?;
        let Some(loc) = store.locate(&id)? else {
            return Err(ApiError::not_found("id", format!("attestation {id} is not committed")));
        };
        let head_size = store.head()?.map_or(0, |h| h.tree_size);
        let size = tree_size.unwrap_or(head_size);
        if size <= loc.leaf_index {
            return Err(ApiError::bad_request(
                "tree_size",
                format!("must be greater than the attestation's leaf index {}", loc.leaf_index),
            ));
        }
        if size > head_size {
            return Err(ApiError::bad_request("tree_size", format!("must not exceed the tree size {head_size}")));
        }
        let nodes = StoreView(&*store);
        let proof = merkle::inclusion_proof(loc.leaf_index, size, &nodes).map_err(ApiError::internal)?;
        let root = merkle::root_at(size, &nodes).map_err(ApiError::internal)?;
        let leaf_hash = nodes.node(0, loc.leaf_index).map_err(ApiError::internal)?;
        Ok(InclusionProofView {
            id: id.to_string(),
            height: loc.height,
            leaf_index: loc.leaf_index,
            tree_size: size,
            leaf_hash: b64(&leaf_hash),
            root: b64(&root),
            proof: proof.iter().map(b64).collect(),
        })
    })
    .await?;
    Ok(Json(view))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    /// The older tree size, at least 1.
    #[param(value_type = u64, minimum = 1)]
    pub from: Option<String>,
    /// The newer tree size (default: the head's).
    #[param(value_type = Option<u64>)]
    pub to: Option<String>,
}

/// RFC 9162 consistency proof between two tree sizes.
#[utoipa::path(
    get,
    path = "/v1/proofs/consistency",
    tag = "proofs",
    params(ConsistencyQuery),
    responses(
        (status = 200, description = "The proof", body = ConsistencyProofView),
        (status = 400, description = "Bad sizes", body = ErrorBody),
    )
)]
pub async fn consistency_proof(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<ConsistencyQuery>,
) -> Result<Json<ConsistencyProofView>, ApiError> {
    let Some(from) = parse_opt_u64("from", q.from.as_deref())? else {
        return Err(ApiError::bad_request("from", "is required (the older tree size)"));
    };
    let to = parse_opt_u64("to", q.to.as_deref())?;
    let view = blocking(move || {
        let store = st.read_store()?;
        let head_size = store.head()?.map_or(0, |h| h.tree_size);
        let to = to.unwrap_or(head_size);
        if to > head_size {
            return Err(ApiError::bad_request("to", format!("must not exceed the tree size {head_size}")));
        }
        if from == 0 || from > to {
            return Err(ApiError::bad_request("from", format!("must be between 1 and to ({to})")));
        }
        let nodes = StoreView(&*store);
        let proof = merkle::consistency_proof(from, to, &nodes).map_err(ApiError::internal)?;
        let root_from = merkle::root_at(from, &nodes).map_err(ApiError::internal)?;
        let root_to = merkle::root_at(to, &nodes).map_err(ApiError::internal)?;
        Ok(ConsistencyProofView {
            from,
            to,
            root_from: b64(&root_from),
            root_to: b64(&root_to),
            proof: proof.iter().map(b64).collect(),
        })
    })
    .await?;
    Ok(Json(view))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SetChangesQuery {
    /// The height whose validator set the changes lead to, at least 1 (default: the head's).
    #[param(value_type = Option<u64>, minimum = 1)]
    pub height: Option<String>,
}

/// The certified chain of validator-set changes from genesis to the set in force at a height
/// (docs/AUDITING.md §Set changes): what an offline verifier holding only genesis needs to
/// check a checkpoint of that height. Public: it holds headers and certificates only.
#[utoipa::path(
    get,
    path = "/v1/set-changes",
    tag = "proofs",
    params(SetChangesQuery),
    responses(
        (status = 200, description = "The set changes, oldest first", body = SetChangesView),
        (status = 410, description = "Below the snapshot this node started from: it holds no block, leaf or record location there (`code` not_held, `field` the parameter, `rule` the base height); ask a full node", body = ErrorBody),
        (status = 400, description = "Bad height", body = ErrorBody),
        (status = 404, description = "No block at that height yet", body = ErrorBody),
        (status = 422, description = "More changes than a bundle carries (SET_CHANGES_MAX)", body = ErrorBody),
    )
)]
pub async fn set_changes(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<SetChangesQuery>,
) -> Result<Json<SetChangesView>, ApiError> {
    let height = parse_opt_u64("height", q.height.as_deref())?;
    let view = blocking(move || {
        let store = st.read_store()?;
        let Some(head) = store.head()? else {
            return Err(ApiError::not_found("height", "no block is committed yet"));
        };
        let height = height.unwrap_or(head.height);
        if height == 0 {
            return Err(ApiError::bad_request("height", "must be at least 1"));
        }
        if height > head.height {
            return Err(ApiError::not_found("height", format!("must not exceed the head's height {}", head.height)));
        }
        let (gov, _) = st.ctx.in_force(&StoreView(&*store), head.height)?;
        let set_changes = crate::bundle::set_changes_from(&*store, &gov.epochs, height).map_err(|e| match e {
            crate::bundle::SetChangesError::TooMany { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "too_many_set_changes", "height", e.to_string())
            }
            other => ApiError::internal(other),
        })?;
        Ok(SetChangesView { height, set_changes })
    })
    .await?;
    Ok(Json(view))
}

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

/// Liveness: answers while the node's HTTP server runs.
#[utoipa::path(get, path = "/healthz", tag = "node", responses((status = 200, description = "Alive", body = HealthView)))]
pub async fn healthz() -> Json<HealthView> {
    Json(HealthView { status: "ok".into() })
}

/// Prometheus metrics (text exposition format 0.0.4).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "node",
    responses((status = 200, description = "Metrics", body = String, content_type = "text/plain"))
)]
pub async fn metrics(State(st): State<ApiState>) -> Result<Response, ApiError> {
    let node = st.status.borrow().clone();
    st.metrics.peers.set(node.peers as u64);
    st.metrics.syncing.set(u64::from(node.syncing));
    let state = st.clone();
    blocking(move || {
        if let Some(head) = state.read_store()?.head()? {
            state.metrics.height.set(head.height);
            state.metrics.tree_size.set(head.tree_size);
        }
        state.metrics.observe_mempool(&state.lock_mempool()?.stats());
        Ok(())
    })
    .await?;
    let text = st.metrics.render();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response())
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "node",
    responses((status = 200, description = "OpenAPI 3 document", body = Object, content_type = "application/json"))
)]
pub async fn openapi() -> Response {
    static DOC: OnceLock<String> = OnceLock::new();
    let doc = DOC.get_or_init(|| match ApiDoc::openapi().to_json() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "api: cannot serialize the OpenAPI document");
            String::from("{}")
        }
    });
    ([(header::CONTENT_TYPE, "application/json")], doc.as_str()).into_response()
}

/// This validator's signed statement of the digest of the ledger state after `height`
/// (docs/encoding.md §14; docs/OPERATIONS.md §Starting from a snapshot): what
/// `credence snapshot create --statements-from` collects. A validator makes one at every
/// height that is a multiple of its `snapshot_interval_heights` as it commits it, computed in
/// the background, and keeps the newest 16 (`STATEMENTS_KEPT_MAX`). Public: a statement is a
/// signature over hashes.
#[utoipa::path(
    get,
    path = "/v1/snapshots/{height}/statement",
    tag = "chain",
    params(("height" = u64, Path, description = "The height of the state, a multiple of the node's snapshot_interval_heights")),
    responses(
        (status = 200, description = "The signed statement", body = crate::snapshot::StatementView),
        (status = 400, description = "Bad height", body = ErrorBody),
        (status = 404, description = "No statement of that height here: not a multiple of the interval, not reached, computed elsewhere (a node that was syncing), older than the 16 kept, or this node is not a validator", body = ErrorBody),
    )
)]
pub async fn snapshot_statement(
    State(st): State<ApiState>,
    ApiPath(height): ApiPath<String>,
) -> Result<Json<crate::snapshot::StatementView>, ApiError> {
    let height = parse_u64("height", &height)?;
    let Some(s) = &st.statements else {
        return Err(ApiError::not_found(
            "height",
            "this node makes no snapshot statements (snapshot_interval_heights = 0)",
        ));
    };
    s.get(height).map(Json).ok_or_else(|| {
        ApiError::not_found(
            "height",
            format!(
                "no statement of height {height}: a validator states the heights that are multiples of {} as it \
                 commits them and keeps the newest {}",
                s.interval(),
                crate::snapshot::STATEMENTS_KEPT_MAX
            ),
        )
    })
}
