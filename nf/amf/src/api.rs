//! The AMF's SBI services — routes and OpenAPI annotations only; every handler calls one
//! procedure and turns its result into a response.
//!
//! - `namf-comm` (Namf_Communication, subset + NetGPT testbed extensions): UE contexts,
//!   cell topology, handover and random walk;
//! - `namf-loc` (Namf_Location): ProvideLocationInfo;
//! - `namf-evts` (Namf_EventExposure): LOCATION_REPORT subscriptions.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use netgpt_sbi::models::namf::{
    AmfCreateEventSubscription, AmfCreatedEventSubscription, AmfEventNotification, CellInfo,
    HandoverRequest, HandoverResult, ProvideLocInfo, RandomWalkRequest, RandomWalkStatus,
    RequestLocInfo, UeContext, UeRegistration,
};
use netgpt_sbi::{ProblemDetails, SbiJson, SbiPath};
use utoipa::OpenApi;

use crate::context::AmfContext;
use crate::{mobility, procedures};

type Ctx = State<Arc<AmfContext>>;

/// Tag of the NetGPT testbed extensions in the documents.
pub const EXTENSION_TAG: &str = "NetGPT testbed extension";

// ------------------------------------------------------------------ namf-comm

/// Lists the registered UE contexts (NetGPT testbed extension).
#[utoipa::path(get, path = "/namf-comm/v1/ue-contexts", operation_id = "UEContextList", tag = EXTENSION_TAG,
    responses((status = 200, description = "Registered UEs, by SUPI", body = Vec<UeContext>)))]
pub async fn ue_context_list(State(ctx): Ctx) -> Json<Vec<UeContext>> {
    Json(procedures::ue_context_list(&ctx).await)
}

/// Registers a UE at a serving cell (201) or re-registers it (200).
#[utoipa::path(put, path = "/namf-comm/v1/ue-contexts/{ueContextId}", operation_id = "UEContextRegister",
    tag = "Individual ueContext (Document)",
    params(("ueContextId" = String, Path, description = "SUPI, imsi-<5..15 digits>", pattern = "^imsi-[0-9]{5,15}$", example = "imsi-001010000000001")),
    request_body = UeRegistration,
    responses(
        (status = 201, description = "UE context created", body = UeContext,
            headers(("Location" = String, description = "URI of the UE context"))),
        (status = 200, description = "UE context replaced", body = UeContext),
        (status = 400, description = "Bad SUPI, cell or body", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn ue_context_register(
    State(ctx): Ctx,
    SbiPath(id): SbiPath<String>,
    SbiJson(body): SbiJson<UeRegistration>,
) -> Result<Response, ProblemDetails> {
    let (ue, created) = procedures::ue_context_register(&ctx, &id, body).await?;
    Ok(if created {
        let location = format!("{}/namf-comm/v1/ue-contexts/{}", ctx.api_root, ue.supi);
        (
            StatusCode::CREATED,
            [(header::LOCATION, location)],
            Json(ue),
        )
            .into_response()
    } else {
        Json(ue).into_response()
    })
}

/// Reads a UE context.
#[utoipa::path(get, path = "/namf-comm/v1/ue-contexts/{ueContextId}", operation_id = "UEContextRetrieve",
    tag = "Individual ueContext (Document)",
    params(("ueContextId" = String, Path, description = "SUPI", pattern = "^imsi-[0-9]{5,15}$")),
    responses(
        (status = 200, description = "The UE context", body = UeContext),
        (status = 400, description = "Malformed SUPI", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "CONTEXT_NOT_FOUND", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn ue_context_retrieve(
    State(ctx): Ctx,
    SbiPath(id): SbiPath<String>,
) -> Result<Json<UeContext>, ProblemDetails> {
    procedures::ue_context_retrieve(&ctx, &id).await.map(Json)
}

/// Deregisters a UE (releases its context).
#[utoipa::path(delete, path = "/namf-comm/v1/ue-contexts/{ueContextId}", operation_id = "UEContextDeregister",
    tag = "Individual ueContext (Document)",
    params(("ueContextId" = String, Path, description = "SUPI", pattern = "^imsi-[0-9]{5,15}$")),
    responses(
        (status = 204, description = "Deregistered"),
        (status = 400, description = "Malformed SUPI", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "CONTEXT_NOT_FOUND", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn ue_context_deregister(
    State(ctx): Ctx,
    SbiPath(id): SbiPath<String>,
) -> Result<StatusCode, ProblemDetails> {
    procedures::ue_context_deregister(&ctx, &id)
        .await
        .map(|()| StatusCode::NO_CONTENT)
}

/// Hands a UE over to another cell (NetGPT testbed extension); subscribers get a LOCATION_REPORT.
#[utoipa::path(post, path = "/namf-comm/v1/ue-contexts/{ueContextId}/handover", operation_id = "Handover",
    tag = EXTENSION_TAG,
    params(("ueContextId" = String, Path, description = "SUPI", pattern = "^imsi-[0-9]{5,15}$")),
    request_body = HandoverRequest,
    responses(
        (status = 200, description = "The UE is in the target cell", body = HandoverResult),
        (status = 400, description = "Bad SUPI or unknown target cell", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "CONTEXT_NOT_FOUND", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn handover(
    State(ctx): Ctx,
    SbiPath(id): SbiPath<String>,
    SbiJson(body): SbiJson<HandoverRequest>,
) -> Result<Json<HandoverResult>, ProblemDetails> {
    procedures::handover(&ctx, &id, body).await.map(Json)
}

/// The gNB/cell topology: NCGI, TAI, position, place and serving edge site (NetGPT testbed extension).
#[utoipa::path(get, path = "/namf-comm/v1/cells", operation_id = "CellList", tag = EXTENSION_TAG,
    responses((status = 200, description = "Every cell", body = Vec<CellInfo>)))]
pub async fn cell_list(State(ctx): Ctx) -> Json<Vec<CellInfo>> {
    Json(procedures::cells(&ctx))
}

/// One cell of the topology (NetGPT testbed extension).
#[utoipa::path(get, path = "/namf-comm/v1/cells/{nrCellId}", operation_id = "CellRetrieve", tag = EXTENSION_TAG,
    params(("nrCellId" = String, Path, description = "NR Cell Identity, 9 hex digits", pattern = "^[0-9a-fA-F]{9}$", example = "000001001")),
    responses(
        (status = 200, description = "The cell", body = CellInfo),
        (status = 400, description = "Malformed NR Cell Identity", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "RESOURCE_NOT_FOUND", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn cell_retrieve(
    State(ctx): Ctx,
    SbiPath(id): SbiPath<String>,
) -> Result<Json<CellInfo>, ProblemDetails> {
    procedures::cell(&ctx, &id).map(Json)
}

/// Starts a random walk of UEs between cells, replacing a running one (NetGPT testbed extension).
#[utoipa::path(post, path = "/namf-comm/v1/mobility/random-walk", operation_id = "RandomWalkStart", tag = EXTENSION_TAG,
    request_body = RandomWalkRequest,
    responses(
        (status = 201, description = "Walk started", body = RandomWalkStatus),
        (status = 400, description = "Bad parameters", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn random_walk_start(
    State(ctx): Ctx,
    SbiJson(body): SbiJson<RandomWalkRequest>,
) -> Result<(StatusCode, Json<RandomWalkStatus>), ProblemDetails> {
    mobility::start_random_walk(&ctx, body)
        .await
        .map(|s| (StatusCode::CREATED, Json(s)))
}

/// Status of the random walk (NetGPT testbed extension).
#[utoipa::path(get, path = "/namf-comm/v1/mobility/random-walk", operation_id = "RandomWalkStatus", tag = EXTENSION_TAG,
    responses((status = 200, description = "Walk status", body = RandomWalkStatus)))]
pub async fn random_walk_status(State(ctx): Ctx) -> Json<RandomWalkStatus> {
    Json(mobility::random_walk_status(&ctx).await)
}

/// Stops the random walk (NetGPT testbed extension).
#[utoipa::path(delete, path = "/namf-comm/v1/mobility/random-walk", operation_id = "RandomWalkStop", tag = EXTENSION_TAG,
    responses((status = 200, description = "Final walk status", body = RandomWalkStatus)))]
pub async fn random_walk_stop(State(ctx): Ctx) -> Json<RandomWalkStatus> {
    Json(mobility::stop_random_walk(&ctx).await)
}

/// OpenAPI document of `namf-comm`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Namf_Communication (NetGPT mock AMF)",
        version = "1.0.0",
        description = "UE contexts (a documented subset of TS 29.518 Namf_Communication) and NetGPT testbed \
extensions: the gNB/cell topology, handover and a random-walk mobility simulator."
    ),
    paths(
        ue_context_list,
        ue_context_register,
        ue_context_retrieve,
        ue_context_deregister,
        handover,
        cell_list,
        cell_retrieve,
        random_walk_start,
        random_walk_status,
        random_walk_stop
    )
)]
pub struct NamfCommApi;

/// Routes of `namf-comm`.
pub fn comm_router(ctx: Arc<AmfContext>) -> Router {
    Router::new()
        .route("/namf-comm/v1/ue-contexts", get(ue_context_list))
        .route(
            "/namf-comm/v1/ue-contexts/{ueContextId}",
            put(ue_context_register)
                .get(ue_context_retrieve)
                .delete(ue_context_deregister),
        )
        .route(
            "/namf-comm/v1/ue-contexts/{ueContextId}/handover",
            post(handover),
        )
        .route("/namf-comm/v1/cells", get(cell_list))
        .route("/namf-comm/v1/cells/{nrCellId}", get(cell_retrieve))
        .route(
            "/namf-comm/v1/mobility/random-walk",
            post(random_walk_start)
                .get(random_walk_status)
                .delete(random_walk_stop),
        )
        .with_state(ctx)
}

// ------------------------------------------------------------------ namf-loc

/// Namf_Location ProvideLocationInfo.
#[utoipa::path(post, path = "/namf-loc/v1/{ueContextId}/provide-loc-info", operation_id = "ProvideLocationInfo",
    tag = "Individual UE context (Document)",
    params(("ueContextId" = String, Path, description = "UE Context Identifier (SUPI)", example = "imsi-001010000000001")),
    request_body = RequestLocInfo,
    responses(
        (status = 200, description = "Expected response to a valid request", body = ProvideLocInfo),
        (status = 400, description = "Bad request", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "CONTEXT_NOT_FOUND", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn provide_location_info(
    State(ctx): Ctx,
    SbiPath(id): SbiPath<String>,
    SbiJson(body): SbiJson<RequestLocInfo>,
) -> Result<Json<ProvideLocInfo>, ProblemDetails> {
    procedures::provide_location_info(&ctx, &id, body)
        .await
        .map(Json)
}

/// OpenAPI document of `namf-loc`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Namf_Location (NetGPT mock AMF)",
        version = "1.0.0",
        description = "TS 29.518 Namf_Location ProvideLocationInfo: cell-level location, cell position, RAT type and time zone."
    ),
    paths(provide_location_info)
)]
pub struct NamfLocApi;

/// Routes of `namf-loc`.
pub fn loc_router(ctx: Arc<AmfContext>) -> Router {
    Router::new()
        .route(
            "/namf-loc/v1/{ueContextId}/provide-loc-info",
            post(provide_location_info),
        )
        .with_state(ctx)
}

// ------------------------------------------------------------------ namf-evts

/// Namf_EventExposure Subscribe (LOCATION_REPORT). Notifications are POSTed to
/// `eventNotifyUri` as `AmfEventNotification`, answered 204 by the subscriber.
#[utoipa::path(post, path = "/namf-evts/v1/subscriptions", operation_id = "CreateSubscription",
    tag = "Subscriptions collection (Document)",
    request_body = AmfCreateEventSubscription,
    responses(
        (status = 201, description = "Subscription created", body = AmfCreatedEventSubscription,
            headers(("Location" = String, description = "URI of the subscription"))),
        (status = 400, description = "Bad subscription", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "CONTEXT_NOT_FOUND (the SUPI is not registered)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn create_subscription(
    State(ctx): Ctx,
    SbiJson(body): SbiJson<AmfCreateEventSubscription>,
) -> Result<Response, ProblemDetails> {
    let (created, location) = procedures::create_subscription(&ctx, body).await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(created),
    )
        .into_response())
}

/// Namf_EventExposure Unsubscribe.
#[utoipa::path(delete, path = "/namf-evts/v1/subscriptions/{subscriptionId}", operation_id = "DeleteSubscription",
    tag = "Individual subscription (Document)",
    params(("subscriptionId" = String, Path, description = "Subscription id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "SUBSCRIPTION_NOT_FOUND", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn delete_subscription(
    State(ctx): Ctx,
    SbiPath(id): SbiPath<String>,
) -> Result<StatusCode, ProblemDetails> {
    procedures::delete_subscription(&ctx, &id)
        .await
        .map(|()| StatusCode::NO_CONTENT)
}

/// OpenAPI document of `namf-evts`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Namf_EventExposure (NetGPT mock AMF)",
        version = "1.0.0",
        description = "TS 29.518 Namf_EventExposure: LOCATION_REPORT subscriptions for one UE or any UE; \
a cell change is POSTed to eventNotifyUri as an AmfEventNotification."
    ),
    paths(create_subscription, delete_subscription),
    components(schemas(AmfEventNotification))
)]
pub struct NamfEvtsApi;

/// Routes of `namf-evts`.
pub fn evts_router(ctx: Arc<AmfContext>) -> Router {
    Router::new()
        .route("/namf-evts/v1/subscriptions", post(create_subscription))
        .route(
            "/namf-evts/v1/subscriptions/{subscriptionId}",
            axum::routing::delete(delete_subscription),
        )
        .with_state(ctx)
}
