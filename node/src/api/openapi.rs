//! The OpenAPI 3 document of the API, generated from the handlers' annotations and served at `/openapi.json`.

use utoipa::OpenApi;

use super::handlers;
use super::views::{
    AttestationPage, AttestationView, BatchItemResult, BatchSubmitRequest, BatchSubmitResponse, BlockView, ClaimView,
    ConsistencyProofView, ErrorBody, ErrorDetail, GovChangeView, GovEpochView, GovMemberView, GovProposalView,
    GovScheduledView, GovernanceView, HealthView, InclusionProofView, MempoolView, MoneyView, NextSequenceView,
    StatusView, SubmitRequest, SubmitResponse,
};

/// The API description. `ApiDoc::openapi()` builds it; every route of [`super::ROUTES`] is in it.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Credence node API",
        description = "Submit signed attestations, query the ledger, and fetch RFC 9162 proofs and C2SP checkpoints. \
Ids and block hashes are hex; Merkle roots and proof hashes are standard base64; money is integer fen. \
Errors are `{\"error\": {\"code\", \"field\", \"rule\", \"message\"}}`; ledger rule codes are R001..R053 and R101..R132."
    ),
    paths(
        handlers::submit_attestation,
        handlers::submit_batch,
        handlers::get_attestation,
        handlers::enterprise_attestations,
        handlers::patent_attestations,
        handlers::attester_attestations,
        handlers::next_sequence,
        handlers::get_block,
        handlers::get_certified_block,
        handlers::status,
        handlers::checkpoint,
        handlers::genesis,
        handlers::governance,
        handlers::inclusion_proof,
        handlers::consistency_proof,
        handlers::healthz,
        handlers::metrics,
        handlers::openapi,
    ),
    components(schemas(
        SubmitRequest,
        SubmitResponse,
        BatchSubmitRequest,
        BatchSubmitResponse,
        BatchItemResult,
        ErrorBody,
        ErrorDetail,
        AttestationView,
        ClaimView,
        MoneyView,
        AttestationPage,
        BlockView,
        StatusView,
        MempoolView,
        InclusionProofView,
        ConsistencyProofView,
        NextSequenceView,
        HealthView,
        GovernanceView,
        GovMemberView,
        GovChangeView,
        GovProposalView,
        GovScheduledView,
        GovEpochView,
    )),
    tags(
        (name = "attestations", description = "Submit and look up attestations"),
        (name = "queries", description = "Committed attestations by enterprise, patent or attester"),
        (name = "chain", description = "Genesis, blocks and checkpoints"),
        (name = "proofs", description = "RFC 9162 inclusion and consistency proofs"),
        (name = "node", description = "Status, health, metrics"),
    )
)]
pub struct ApiDoc;
