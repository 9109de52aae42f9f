//! The OpenAPI 3 document of the API, generated from the handlers' annotations and served at `/openapi.json`.

use utoipa::OpenApi;

use super::views::{
    AttestationPage, AttestationView, BatchItemResult, BatchSubmitRequest, BatchSubmitResponse, BlockView, ClaimView,
    ConsistencyProofView, ErrorBody, ErrorDetail, HealthView, InclusionProofView, MempoolView, MoneyView,
    NextSequenceView, StatusView, SubmitRequest, SubmitResponse,
};
use super::{console, handlers};
use super::views::{FiguresView, LenderFiguresView, LoanLineView, PoolFiguresView, PortfolioView};

/// The API description. `ApiDoc::openapi()` builds it; every route of [`super::ROUTES`] is in it.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Credence node API",
        description = "Submit signed attestations, query the ledger, and fetch RFC 9162 proofs and C2SP checkpoints. \
Ids and block hashes are hex; Merkle roots and proof hashes are standard base64; money is integer fen. \
Errors are `{\"error\": {\"code\", \"field\", \"rule\", \"message\"}}`; ledger rule codes are R001..R023 and R101..R132."
    ),
    paths(
        handlers::submit_attestation,
        handlers::submit_batch,
        handlers::get_attestation,
        handlers::attestation_references,
        handlers::enterprise_attestations,
        handlers::patent_attestations,
        handlers::attester_attestations,
        handlers::next_sequence,
        handlers::portfolio,
        handlers::get_block,
        handlers::get_certified_block,
        handlers::status,
        handlers::checkpoint,
        handlers::genesis,
        handlers::inclusion_proof,
        handlers::consistency_proof,
        handlers::healthz,
        handlers::metrics,
        handlers::openapi,
        super::tiles::checkpoint,
        super::tiles::tile,
        console::index,
        console::asset,
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
        PortfolioView,
        FiguresView,
        LenderFiguresView,
        PoolFiguresView,
        LoanLineView,
    )),
    tags(
        (name = "attestations", description = "Submit and look up attestations"),
        (name = "queries", description = "Committed attestations by enterprise, patent, attester or the record they name"),
        (name = "chain", description = "Genesis, blocks and checkpoints"),
        (name = "proofs", description = "RFC 9162 inclusion and consistency proofs"),
        (name = "node", description = "Status, health, metrics"),
        (name = "tiles", description = "The log as C2SP tlog-tiles: checkpoint, hash tiles, entry bundles (static, cacheable)"),
        (name = "console", description = "The web console's embedded files (HTML, CSS, JavaScript), served with a self-only Content-Security-Policy"),
    )
)]
pub struct ApiDoc;
