//! The OpenAPI 3 document of the API, generated from the handlers' annotations and served at `/openapi.json`.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::views::{
    AmountView, AttestationPage, AttestationView, BatchItemResult, BatchSubmitRequest, BatchSubmitResponse, BlockView,
    ClaimView, ConsistencyProofView, ErrorBody, ErrorDetail, GovChangeView, GovEpochView, GovMemberView,
    GovProposalView, GovScheduledView, GovWitnessView, GovernanceView, HealthView, InclusionProofView, MempoolView,
    MoneyView, NextSequenceView, OpeningView, OpeningsView, SetChangesView, StatusView, SubmitRequest, SubmitResponse,
};
use super::views::{
    FiguresView, LenderFiguresView, LenderSeriesView, LoanLineView, MonthFiguresView, PoolFiguresView, PortfolioView,
    SeriesView,
};
use super::{console, handlers};

/// The API description. `ApiDoc::openapi()` builds it; every route of [`super::ROUTES`] is in it.
#[derive(Debug, OpenApi)]
#[openapi(
    modifiers(&Rfc9421),
    info(
        title = "Credence node API",
        description = "Submit signed attestations, query the ledger, and fetch RFC 9162 proofs and C2SP checkpoints. \
Ids and block hashes are hex; Merkle roots and proof hashes are standard base64; money is integer fen. \
Errors are `{\"error\": {\"code\", \"field\", \"rule\", \"message\"}}`; ledger rule codes are R001..R029 (R024..R029: access), R040..R058 (governance; R054..R058: witnesses) and R101..R132 (IP loans); R060 (node-side) refuses openings that do not open their record's sealed amounts."
    ),
    paths(
        handlers::submit_attestation,
        handlers::submit_batch,
        handlers::get_attestation,
        handlers::attestation_references,
        handlers::attestation_openings,
        handlers::enterprise_attestations,
        handlers::patent_attestations,
        handlers::attester_attestations,
        handlers::member_queries,
        handlers::next_sequence,
        handlers::portfolio,
        handlers::get_block,
        handlers::get_certified_block,
        handlers::status,
        handlers::checkpoint,
        handlers::genesis,
        handlers::governance,
        handlers::inclusion_proof,
        handlers::consistency_proof,
        handlers::set_changes,
        handlers::snapshot_statement,
        handlers::healthz,
        handlers::metrics,
        handlers::openapi,
        super::tiles::checkpoint,
        super::tiles::tile,
        super::tiles::entry_bundle,
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
        SetChangesView,
        crate::bundle::SetChange,
        crate::snapshot::StatementView,
        AttestationView,
        ClaimView,
        MoneyView,
        AmountView,
        OpeningView,
        OpeningsView,
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
        GovWitnessView,
        PortfolioView,
        FiguresView,
        LenderFiguresView,
        PoolFiguresView,
        LoanLineView,
        SeriesView,
        MonthFiguresView,
        LenderSeriesView,
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

/// Declares the `rfc9421` security scheme: HTTP Message Signatures (RFC 9421) by an access key.
#[derive(Debug)]
struct Rfc9421;

impl Modify for Rfc9421 {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "rfc9421",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Signature",
                "RFC 9421 HTTP Message Signature (Ed25519, alg=\"ed25519\") in the Signature and Signature-Input \
fields, covering @method, @path, @query (and content-digest, RFC 9530, with a body), with created, expires \
(at most 60 s later; 30 s clock skew) and keyid = the id of the member's access-key grant on the ledger. \
401 names what is wrong (unsigned, bad signature, replay, unknown, revoked or expired key); 403 names the \
missing scope or consent. See docs/ACCESS.md.",
            ))),
        );
    }
}
