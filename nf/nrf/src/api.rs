//! The NRF's SBI routes with their utoipa annotations: thin handlers that decode the
//! request, call the procedure of the same name and encode the answer.
//!
//! - `nnrf-nfm` (Nnrf_NFManagement): `/nnrf-nfm/v1/nf-instances[/{nfInstanceID}]`
//! - `nnrf-disc` (Nnrf_NFDiscovery): `/nnrf-disc/v1/nf-instances`
//!
//! Operation ids are TS 29.510's (`RegisterNFInstance`, `SearchNFInstances`, ...), so
//! the metrics' `operation` label and the generated documents read like the spec.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use netgpt_sbi::extract::{body_rejection, parse_json};
use netgpt_sbi::models::nnrf::{NfProfile, PatchItem, SearchResult, UriList};
use netgpt_sbi::{ProblemDetails, SbiJson, SbiPath, SbiQuery};
use serde::Deserialize;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::context::NrfContext;
use crate::procedures;

/// Media type of NFUpdate bodies (RFC 6902).
pub const JSON_PATCH: &str = "application/json-patch+json";

/// Service name of Nnrf_NFManagement.
pub const NFM_SERVICE: &str = "nnrf-nfm";
/// Service name of Nnrf_NFDiscovery.
pub const DISC_SERVICE: &str = "nnrf-disc";

/// The Nnrf_NFManagement document (paths are added by [`nfm_router`]).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "NRF NFManagement Service",
        version = "1.0.0",
        description = "NetGPT NRF: NFRegister, NFUpdate (heartbeat), NFDeregister, NFProfile and NF list retrieval (3GPP TS 29.510 Nnrf_NFManagement shapes)."
    ),
    tags((name = "NF Instances (Store)"), (name = "NF Instance ID (Document)"))
)]
pub struct NfmApi;

/// The Nnrf_NFDiscovery document (paths are added by [`disc_router`]).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "NRF NFDiscovery Service",
        version = "1.0.0",
        description = "NetGPT NRF: NFDiscover (3GPP TS 29.510 Nnrf_NFDiscovery shapes)."
    ),
    tags((name = "NF Instances (Store)"))
)]
pub struct DiscApi;

/// Routes and document of `nnrf-nfm`, before the state is given.
pub fn nfm_routes() -> OpenApiRouter<NrfContext> {
    OpenApiRouter::with_openapi(NfmApi::openapi())
        .routes(routes!(get_nf_instances))
        .routes(routes!(
            register_nf_instance,
            update_nf_instance,
            deregister_nf_instance,
            get_nf_instance
        ))
}

/// Routes and document of `nnrf-disc`, before the state is given.
pub fn disc_routes() -> OpenApiRouter<NrfContext> {
    OpenApiRouter::with_openapi(DiscApi::openapi()).routes(routes!(search_nf_instances))
}

/// Routes and document of `nnrf-nfm` over `ctx`.
pub fn nfm_router(ctx: NrfContext) -> OpenApiRouter {
    nfm_routes().with_state(ctx)
}

/// Routes and document of `nnrf-disc` over `ctx`.
pub fn disc_router(ctx: NrfContext) -> OpenApiRouter {
    disc_routes().with_state(ctx)
}

/// `(service name, OpenAPI document)` of both services, as `sbi-specs/` holds them.
pub fn service_docs() -> Vec<(String, utoipa::openapi::OpenApi)> {
    vec![
        (NFM_SERVICE.to_owned(), nfm_routes().split_for_parts().1),
        (DISC_SERVICE.to_owned(), disc_routes().split_for_parts().1),
        (
            netgpt_sbi::oauth::TOKEN_SERVICE.to_owned(),
            crate::oauth::routes().split_for_parts().1,
        ),
    ]
}

/// NFRegister: `PUT /nnrf-nfm/v1/nf-instances/{nfInstanceID}`.
#[utoipa::path(
    put,
    path = "/nnrf-nfm/v1/nf-instances/{nfInstanceID}",
    operation_id = "RegisterNFInstance",
    tag = "NF Instance ID (Document)",
    summary = "Register a new NF Instance (or replace its profile)",
    params(("nfInstanceID" = String, Path, format = Uuid, description = "Unique ID of the NF Instance to register")),
    request_body(content = NfProfile, content_type = "application/json"),
    responses(
        (status = 201, description = "Registered", body = NfProfile,
            headers(("Location" = String, description = "{apiRoot}/nnrf-nfm/v1/nf-instances/{nfInstanceId}"))),
        (status = 200, description = "OK (Profile Replacement)", body = NfProfile),
        (status = 400, description = "Bad request", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Payload too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "Unsupported media type", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
async fn register_nf_instance(
    State(ctx): State<NrfContext>,
    SbiPath(id): SbiPath<String>,
    SbiJson(profile): SbiJson<NfProfile>,
) -> Result<Response, ProblemDetails> {
    let done = procedures::nf_register(&ctx, &id, profile).await?;
    Ok(if done.created {
        let location = ctx.instance_uri(done.profile.nf_instance_id);
        (
            StatusCode::CREATED,
            [(header::LOCATION, location)],
            Json(done.profile),
        )
            .into_response()
    } else {
        (StatusCode::OK, Json(done.profile)).into_response()
    })
}

/// NFUpdate (and heartbeat): `PATCH /nnrf-nfm/v1/nf-instances/{nfInstanceID}`.
#[utoipa::path(
    patch,
    path = "/nnrf-nfm/v1/nf-instances/{nfInstanceID}",
    operation_id = "UpdateNFInstance",
    tag = "NF Instance ID (Document)",
    summary = "Update NF Instance profile (JSON Patch; a heartbeat replaces /nfStatus)",
    params(("nfInstanceID" = String, Path, format = Uuid, description = "Unique ID of the NF Instance to update")),
    request_body(content = Vec<PatchItem>, content_type = "application/json-patch+json"),
    responses(
        (status = 200, description = "Updated; the complete profile", body = NfProfile),
        (status = 204, description = "Heartbeat accepted"),
        (status = 400, description = "Bad request or the patched profile is invalid", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "Unknown NF instance", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "The patch cannot be applied", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Payload too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json-patch+json", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
async fn update_nf_instance(
    State(ctx): State<NrfContext>,
    SbiPath(id): SbiPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ProblemDetails> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case(JSON_PATCH) {
        return Err(ProblemDetails::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            format!("NFUpdate expects Content-Type {JSON_PATCH}, got '{ct}'"),
        ));
    }
    let body = body.map_err(body_rejection)?;
    let patch: Vec<PatchItem> = parse_json(&body)?;
    let done = procedures::nf_update(&ctx, &id, patch).await?;
    Ok(if done.heartbeat_only {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (StatusCode::OK, Json(done.profile)).into_response()
    })
}

/// NFDeregister: `DELETE /nnrf-nfm/v1/nf-instances/{nfInstanceID}`.
#[utoipa::path(
    delete,
    path = "/nnrf-nfm/v1/nf-instances/{nfInstanceID}",
    operation_id = "DeregisterNFInstance",
    tag = "NF Instance ID (Document)",
    summary = "Deregisters a given NF Instance",
    params(("nfInstanceID" = String, Path, format = Uuid, description = "Unique ID of the NF Instance to deregister")),
    responses(
        (status = 204, description = "Deregistered"),
        (status = 400, description = "Bad request", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "Unknown NF instance", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
async fn deregister_nf_instance(
    State(ctx): State<NrfContext>,
    SbiPath(id): SbiPath<String>,
) -> Result<StatusCode, ProblemDetails> {
    procedures::nf_deregister(&ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// NFProfileRetrieval: `GET /nnrf-nfm/v1/nf-instances/{nfInstanceID}`.
#[utoipa::path(
    get,
    path = "/nnrf-nfm/v1/nf-instances/{nfInstanceID}",
    operation_id = "GetNFInstance",
    tag = "NF Instance ID (Document)",
    summary = "Read the profile of a given NF Instance",
    params(("nfInstanceID" = String, Path, format = Uuid, description = "Unique ID of the NF Instance")),
    responses(
        (status = 200, description = "The profile", body = NfProfile),
        (status = 400, description = "Bad request", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "Unknown NF instance", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
async fn get_nf_instance(
    State(ctx): State<NrfContext>,
    SbiPath(id): SbiPath<String>,
) -> Result<Json<NfProfile>, ProblemDetails> {
    procedures::nf_profile_retrieval(&ctx, &id).await.map(Json)
}

/// Query of NFListRetrieval.
#[derive(Debug, Deserialize)]
struct ListQuery {
    #[serde(rename = "nf-type")]
    nf_type: Option<String>,
    limit: Option<u32>,
}

/// NFListRetrieval: `GET /nnrf-nfm/v1/nf-instances`.
#[utoipa::path(
    get,
    path = "/nnrf-nfm/v1/nf-instances",
    operation_id = "GetNFInstances",
    tag = "NF Instances (Store)",
    summary = "Retrieves a collection of NF Instances (links)",
    params(
        ("nf-type" = Option<String>, Query, description = "Type of NF"),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 4294967295u64, description = "How many items to return at one time"),
    ),
    responses(
        (status = 200, description = "Links to the NF instances", body = UriList, content_type = "application/3gppHal+json"),
        (status = 400, description = "Bad request", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
async fn get_nf_instances(
    State(ctx): State<NrfContext>,
    SbiQuery(q): SbiQuery<ListQuery>,
) -> Result<Response, ProblemDetails> {
    let list = procedures::nf_list_retrieval(&ctx, q.nf_type.as_deref(), q.limit).await?;
    let mut resp = Json(list).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/3gppHal+json"),
    );
    Ok(resp)
}

/// NFDiscover: `GET /nnrf-disc/v1/nf-instances`.
#[utoipa::path(
    get,
    path = "/nnrf-disc/v1/nf-instances",
    operation_id = "SearchNFInstances",
    tag = "NF Instances (Store)",
    summary = "Search a collection of NF Instances",
    params(
        ("target-nf-type" = String, Query, description = "Type of the target NF"),
        ("requester-nf-type" = String, Query, description = "Type of the requester NF"),
        ("service-names" = Option<Vec<String>>, Query, style = Form, explode = false,
            description = "Names of the services offered by the NF (any of them)"),
        ("target-nf-instance-id" = Option<String>, Query, format = Uuid, description = "Identity of the NF instance being discovered"),
        ("preferred-locality" = Option<String>, Query, description = "Preferred target NF location"),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 4294967295u64, description = "Maximum number of NFProfiles to return in the response"),
    ),
    responses(
        (status = 200, description = "Matching NF instances (possibly none)", body = SearchResult),
        (status = 400, description = "Bad request (e.g. a mandatory parameter is missing)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
async fn search_nf_instances(
    State(ctx): State<NrfContext>,
    SbiQuery(pairs): SbiQuery<Vec<(String, String)>>,
) -> Result<Json<SearchResult>, ProblemDetails> {
    let query = procedures::parse_discover_query(&pairs)?;
    procedures::nf_discover(&ctx, &query).await.map(Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sbi_specs_match_the_code() {
        netgpt_sbi::openapi::assert_specs_match("netgpt-nrf", &service_docs());
    }

    #[test]
    fn documents_use_the_ts29510_operation_ids() {
        let docs = service_docs();
        let json = serde_json::to_value(&docs[0].1).unwrap();
        let item = &json["paths"]["/nnrf-nfm/v1/nf-instances/{nfInstanceID}"];
        assert_eq!(item["put"]["operationId"], "RegisterNFInstance");
        assert_eq!(item["patch"]["operationId"], "UpdateNFInstance");
        assert!(
            json["components"]["schemas"]["NFProfile"].is_object(),
            "{json}"
        );
        let disc = serde_json::to_value(&docs[1].1).unwrap();
        assert_eq!(
            disc["paths"]["/nnrf-disc/v1/nf-instances"]["get"]["operationId"],
            "SearchNFInstances"
        );
        assert!(
            disc["components"]["schemas"]["SearchResult"].is_object(),
            "{disc}"
        );
    }
}
