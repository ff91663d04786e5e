//! The CmP's SBI services — routes and OpenAPI annotations only; every handler calls one
//! procedure of [`CmpContext`] or the [`Inventory`](crate::inventory::Inventory).
//!
//! - `ncmp-res` (NetGPT CmP resources): nodes with typed devices and live load, links;
//! - `ncmp-wf` (NetGPT CmP workflows): the operation catalogue, workflow registration
//!   (YAML or JSON), dry-run plans with DOT/Mermaid pictures, runs with step records.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use netgpt_sbi::{ProblemDetails, SbiJson, SbiPath, SbiQuery};
use serde::Deserialize;
use utoipa::OpenApi;

use crate::context::{CmpContext, PlanRequest, RunRequest};
use crate::inventory::{
    node_not_found, DeviceInfo, DeviceLoad, DeviceLoadReport, DeviceSpec, LinkInfo, LoadReport,
    NodeInfo, NodeRegistration, NodeSource, PeerLink,
};
use crate::ops::{Locality, Operation};
use crate::planner::{Plan, PlanAlgorithm, PlannedStep};
use crate::sched::DeviceKind;
use crate::wf::{Demand, RetryPolicy, RunRecord, RunStatus, RunSummary, StepRecord, StepSpec};
use crate::wf::{StepStatus, WorkflowSpec};
use crate::workflows::{WorkflowDocument, WorkflowSource};

type Ctx = State<Arc<CmpContext>>;

// ------------------------------------------------------------------ ncmp-res

/// Lists the compute nodes with their devices and live load.
#[utoipa::path(get, path = "/ncmp-res/v1/nodes", operation_id = "NodeList", tag = "Nodes (Collection)",
    responses((status = 200, description = "Every node, by id", body = Vec<NodeInfo>)))]
pub async fn node_list(State(ctx): Ctx) -> Json<Vec<NodeInfo>> {
    Json(ctx.inventory.nodes())
}

/// Reads one node.
#[utoipa::path(get, path = "/ncmp-res/v1/nodes/{nodeId}", operation_id = "NodeRetrieve", tag = "Individual Node (Document)",
    params(("nodeId" = String, Path, description = "Node id: an edge site id or `cloud`", example = "edge-hangzhou")),
    responses(
        (status = 200, description = "The node", body = NodeInfo),
        (status = 404, description = "RESOURCE_NOT_FOUND", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn node_retrieve(
    State(ctx): Ctx,
    SbiPath(id): SbiPath<String>,
) -> Result<Json<NodeInfo>, ProblemDetails> {
    ctx.inventory
        .node(&id)
        .map(Json)
        .ok_or_else(|| node_not_found(&id))
}

/// Registers a node (201) or replaces its definition (200): an NF registering the node it
/// runs on, with its devices and optionally its links.
#[utoipa::path(put, path = "/ncmp-res/v1/nodes/{nodeId}", operation_id = "NodeRegister", tag = "Individual Node (Document)",
    params(("nodeId" = String, Path, description = "Node id (the locality of the NFs on it)", example = "edge-paris")),
    request_body = NodeRegistration,
    responses(
        (status = 201, description = "Node registered", body = NodeInfo,
            headers(("Location" = String, description = "URI of the node"))),
        (status = 200, description = "Node replaced", body = NodeInfo),
        (status = 400, description = "Bad node id, device or link", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn node_register(
    State(ctx): Ctx,
    SbiPath(id): SbiPath<String>,
    SbiJson(body): SbiJson<NodeRegistration>,
) -> Result<Response, ProblemDetails> {
    let (node, created) = ctx.inventory.register(&id, body).await?;
    Ok(if created {
        let location = format!("{}/ncmp-res/v1/nodes/{}", ctx.api_root, node.node_id);
        (
            StatusCode::CREATED,
            [(header::LOCATION, location)],
            Json(node),
        )
            .into_response()
    } else {
        Json(node).into_response()
    })
}

/// Removes a node (an NF leaving); its links go with it. A configured node comes back at
/// the CmP's next start.
#[utoipa::path(delete, path = "/ncmp-res/v1/nodes/{nodeId}", operation_id = "NodeDeregister", tag = "Individual Node (Document)",
    params(("nodeId" = String, Path, description = "Node id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "RESOURCE_NOT_FOUND", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn node_deregister(
    State(ctx): Ctx,
    SbiPath(id): SbiPath<String>,
) -> Result<StatusCode, ProblemDetails> {
    if ctx.inventory.remove(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(node_not_found(&id))
    }
}

/// Reports the live load of some of a node's devices (busy units, queue length).
#[utoipa::path(put, path = "/ncmp-res/v1/nodes/{nodeId}/load", operation_id = "LoadReport", tag = "Individual Node (Document)",
    params(("nodeId" = String, Path, description = "Node id")),
    request_body = LoadReport,
    responses(
        (status = 200, description = "The node with its updated load", body = NodeInfo),
        (status = 400, description = "Unknown device or busy units above capacity", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "RESOURCE_NOT_FOUND", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn load_report(
    State(ctx): Ctx,
    SbiPath(id): SbiPath<String>,
    SbiJson(body): SbiJson<LoadReport>,
) -> Result<Json<NodeInfo>, ProblemDetails> {
    ctx.inventory.report_load(&id, body).map(Json)
}

/// Lists the links between nodes.
#[utoipa::path(get, path = "/ncmp-res/v1/links", operation_id = "LinkList", tag = "Links (Collection)",
    responses((status = 200, description = "Every link whose two ends exist", body = Vec<LinkInfo>)))]
pub async fn link_list(State(ctx): Ctx) -> Json<Vec<LinkInfo>> {
    Json(ctx.inventory.links())
}

/// Router of `ncmp-res`.
pub fn res_router(ctx: Arc<CmpContext>) -> Router {
    Router::new()
        .route("/ncmp-res/v1/nodes", get(node_list))
        .route(
            "/ncmp-res/v1/nodes/{nodeId}",
            get(node_retrieve)
                .put(node_register)
                .delete(node_deregister),
        )
        .route("/ncmp-res/v1/nodes/{nodeId}/load", put(load_report))
        .route("/ncmp-res/v1/links", get(link_list))
        .with_state(ctx)
}

/// OpenAPI document of `ncmp-res`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ncmp_Resources (NetGPT CmP)",
        version = "1.0.0",
        description = "The computing plane's inventory: compute nodes (edge sites, the cloud) with typed \
devices (cpu, gpu, vpu) as integer capacity units plus memory, the links between nodes (bandwidth, \
latency), and the live load (busy units, queue length) the NFs report."
    ),
    paths(
        node_list,
        node_retrieve,
        node_register,
        node_deregister,
        load_report,
        link_list
    ),
    components(schemas(
        NodeInfo,
        DeviceInfo,
        DeviceLoad,
        DeviceKind,
        NodeSource,
        PeerLink,
        NodeRegistration,
        DeviceSpec,
        LoadReport,
        DeviceLoadReport,
        LinkInfo,
        ProblemDetails
    ))
)]
pub struct NcmpResApi;

// ------------------------------------------------------------------ ncmp-wf

/// The operations a workflow step may call: NF type, service, HTTP call, placement rule.
#[utoipa::path(get, path = "/ncmp-wf/v1/operations", operation_id = "OperationList", tag = "Operations (Collection)",
    responses((status = 200, description = "The catalogue", body = Vec<Operation>)))]
pub async fn operation_list(State(ctx): Ctx) -> Json<Vec<Operation>> {
    Json(ctx.catalog.all().cloned().collect())
}

/// Whether a Content-Type names YAML.
fn is_yaml(ct: &str) -> bool {
    let base = ct.split(';').next().unwrap_or("").trim();
    matches!(
        base,
        "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml"
    )
}

/// Registers a workflow declared in YAML (`application/yaml`) or JSON (201), or replaces
/// the one of the same name (200). Every problem found is named in `invalidParams`
/// (`steps[2].inputs.prompt`, ...).
#[utoipa::path(post, path = "/ncmp-wf/v1/workflows", operation_id = "WorkflowRegister", tag = "Workflows (Collection)",
    request_body(content(
        (WorkflowSpec = "application/json"),
        (String = "application/yaml")
    ), description = "The workflow, JSON or YAML"),
    responses(
        (status = 201, description = "Workflow registered", body = WorkflowDocument,
            headers(("Location" = String, description = "URI of the workflow"))),
        (status = 200, description = "Workflow replaced", body = WorkflowDocument),
        (status = 400, description = "Invalid workflow: every problem in invalidParams", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "Neither JSON nor YAML", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn workflow_register(
    State(ctx): Ctx,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ProblemDetails> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !(netgpt_sbi::extract::is_json_content_type(ct) || is_yaml(ct)) {
        return Err(ProblemDetails::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            format!("expected application/json or application/yaml, got '{ct}'"),
        ));
    }
    let text = std::str::from_utf8(&body).map_err(|e| {
        ProblemDetails::bad_request("INVALID_MSG_FORMAT", format!("body is not UTF-8: {e}"))
    })?;
    let (doc, created) = ctx.register_workflow(text).await?;
    Ok(if created {
        let location = format!("{}/ncmp-wf/v1/workflows/{}", ctx.api_root, doc.name);
        (
            StatusCode::CREATED,
            [(header::LOCATION, location)],
            Json(doc),
        )
            .into_response()
    } else {
        Json(doc).into_response()
    })
}

/// Lists the registered workflows (the shipped ones included).
#[utoipa::path(get, path = "/ncmp-wf/v1/workflows", operation_id = "WorkflowList", tag = "Workflows (Collection)",
    responses((status = 200, description = "Every workflow, by name", body = Vec<WorkflowDocument>)))]
pub async fn workflow_list(State(ctx): Ctx) -> Json<Vec<WorkflowDocument>> {
    Json(ctx.workflows.list())
}

/// Reads one workflow.
#[utoipa::path(get, path = "/ncmp-wf/v1/workflows/{name}", operation_id = "WorkflowRetrieve", tag = "Individual Workflow (Document)",
    params(("name" = String, Path, description = "Workflow name", example = "netgpt")),
    responses(
        (status = 200, description = "The workflow", body = WorkflowDocument),
        (status = 404, description = "RESOURCE_NOT_FOUND", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn workflow_retrieve(
    State(ctx): Ctx,
    SbiPath(name): SbiPath<String>,
) -> Result<Json<WorkflowDocument>, ProblemDetails> {
    ctx.workflow(&name).map(Json)
}

/// Dry run: the placement of every step, the predicted end-to-end latency, the budget
/// verdict, and the DAG placed onto nodes as DOT and Mermaid.
#[utoipa::path(post, path = "/ncmp-wf/v1/workflows/{name}/plan", operation_id = "WorkflowPlan", tag = "Individual Workflow (Document)",
    params(("name" = String, Path, description = "Workflow name", example = "netgpt")),
    request_body = PlanRequest,
    responses(
        (status = 200, description = "The plan", body = Plan),
        (status = 400, description = "Bad input (unknown site or SUPI)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "RESOURCE_NOT_FOUND", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "NO_FEASIBLE_PLACEMENT: a step fits no device (no NF instance where it may run, too little capacity)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "NF_FAILURE: the NRF or AMF did not answer", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn workflow_plan(
    State(ctx): Ctx,
    SbiPath(name): SbiPath<String>,
    SbiJson(body): SbiJson<PlanRequest>,
) -> Result<Json<Plan>, ProblemDetails> {
    ctx.plan(&name, &body).await.map(Json)
}

/// Starts a run of the workflow on a fresh plan (201, `Location` of the run); with
/// `wait: true` the answer comes when the run has finished.
#[utoipa::path(post, path = "/ncmp-wf/v1/workflows/{name}/runs", operation_id = "RunStart", tag = "Individual Workflow (Document)",
    params(("name" = String, Path, description = "Workflow name", example = "netgpt")),
    request_body = RunRequest,
    responses(
        (status = 201, description = "Run started (or finished, with wait)", body = RunRecord,
            headers(("Location" = String, description = "URI of the run"))),
        (status = 400, description = "Bad input", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "RESOURCE_NOT_FOUND", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "NO_FEASIBLE_PLACEMENT", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "NF_FAILURE", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn run_start(
    State(ctx): Ctx,
    SbiPath(name): SbiPath<String>,
    SbiJson(body): SbiJson<RunRequest>,
) -> Result<Response, ProblemDetails> {
    let (record, _plan) = ctx.start_run(&name, body).await?;
    let location = format!("{}/ncmp-wf/v1/runs/{}", ctx.api_root, record.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(record),
    )
        .into_response())
}

/// Query of `GET /runs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// At most this many runs, newest first (default 50, at most 1000).
    pub limit: Option<usize>,
}

/// Lists the most recent runs.
#[utoipa::path(get, path = "/ncmp-wf/v1/runs", operation_id = "RunList", tag = "Runs (Collection)",
    params(RunsQuery),
    responses(
        (status = 200, description = "Runs, newest first", body = Vec<RunSummary>),
        (status = 400, description = "Bad limit", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn run_list(
    State(ctx): Ctx,
    SbiQuery(q): SbiQuery<RunsQuery>,
) -> Result<Json<Vec<RunSummary>>, ProblemDetails> {
    ctx.runs(q.limit.unwrap_or(50).min(1000)).await.map(Json)
}

/// Reads a run with every step's record (node, device, start, end, attempts, outcome,
/// output size).
#[utoipa::path(get, path = "/ncmp-wf/v1/runs/{runId}", operation_id = "RunRetrieve", tag = "Individual Run (Document)",
    params(("runId" = String, Path, description = "Run id")),
    responses(
        (status = 200, description = "The run", body = RunRecord),
        (status = 404, description = "RESOURCE_NOT_FOUND", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn run_retrieve(
    State(ctx): Ctx,
    SbiPath(id): SbiPath<String>,
) -> Result<Json<RunRecord>, ProblemDetails> {
    ctx.run(&id).await.map(Json)
}

/// The plan a run was started with.
#[utoipa::path(get, path = "/ncmp-wf/v1/runs/{runId}/plan", operation_id = "RunPlan", tag = "Individual Run (Document)",
    params(("runId" = String, Path, description = "Run id")),
    responses(
        (status = 200, description = "The plan", body = Plan),
        (status = 404, description = "RESOURCE_NOT_FOUND", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn run_plan(
    State(ctx): Ctx,
    SbiPath(id): SbiPath<String>,
) -> Result<Json<Plan>, ProblemDetails> {
    ctx.run_plan(&id).await.map(Json)
}

/// The picture of a run's plan as Graphviz DOT (`dot -Tsvg`).
#[utoipa::path(get, path = "/ncmp-wf/v1/runs/{runId}/plan.dot", operation_id = "RunPlanDot", tag = "Individual Run (Document)",
    params(("runId" = String, Path, description = "Run id")),
    responses(
        (status = 200, description = "DOT text", body = String, content_type = "text/vnd.graphviz"),
        (status = 404, description = "RESOURCE_NOT_FOUND", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn run_plan_dot(
    State(ctx): Ctx,
    SbiPath(id): SbiPath<String>,
) -> Result<Response, ProblemDetails> {
    let plan = ctx.run_plan(&id).await?;
    Ok(([(header::CONTENT_TYPE, "text/vnd.graphviz")], plan.dot).into_response())
}

/// The picture of a run's plan as a Mermaid flowchart.
#[utoipa::path(get, path = "/ncmp-wf/v1/runs/{runId}/plan.mmd", operation_id = "RunPlanMermaid", tag = "Individual Run (Document)",
    params(("runId" = String, Path, description = "Run id")),
    responses(
        (status = 200, description = "Mermaid text", body = String, content_type = "text/vnd.mermaid"),
        (status = 404, description = "RESOURCE_NOT_FOUND", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn run_plan_mermaid(
    State(ctx): Ctx,
    SbiPath(id): SbiPath<String>,
) -> Result<Response, ProblemDetails> {
    let plan = ctx.run_plan(&id).await?;
    Ok(([(header::CONTENT_TYPE, "text/vnd.mermaid")], plan.mermaid).into_response())
}

/// Router of `ncmp-wf`.
pub fn wf_router(ctx: Arc<CmpContext>) -> Router {
    Router::new()
        .route("/ncmp-wf/v1/operations", get(operation_list))
        .route(
            "/ncmp-wf/v1/workflows",
            get(workflow_list).post(workflow_register),
        )
        .route("/ncmp-wf/v1/workflows/{name}", get(workflow_retrieve))
        .route("/ncmp-wf/v1/workflows/{name}/plan", post(workflow_plan))
        .route("/ncmp-wf/v1/workflows/{name}/runs", post(run_start))
        .route("/ncmp-wf/v1/runs", get(run_list))
        .route("/ncmp-wf/v1/runs/{runId}", get(run_retrieve))
        .route("/ncmp-wf/v1/runs/{runId}/plan", get(run_plan))
        .route("/ncmp-wf/v1/runs/{runId}/plan.dot", get(run_plan_dot))
        .route("/ncmp-wf/v1/runs/{runId}/plan.mmd", get(run_plan_mermaid))
        .with_state(ctx)
}

/// OpenAPI document of `ncmp-wf`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ncmp_Workflows (NetGPT CmP)",
        version = "1.0.0",
        description = "Logical AI workflows: DAGs of NF service operations declared in YAML or JSON, \
planned onto the CmP's nodes and devices by a HEFT-class scheduler (dry run: placement, predicted \
end-to-end latency, DOT/Mermaid picture), and run step by step over SBI with every step's node, device, \
times, attempts, outcome and output size recorded."
    ),
    paths(
        operation_list,
        workflow_register,
        workflow_list,
        workflow_retrieve,
        workflow_plan,
        run_start,
        run_list,
        run_retrieve,
        run_plan,
        run_plan_dot,
        run_plan_mermaid
    ),
    components(schemas(
        Operation,
        Locality,
        WorkflowDocument,
        WorkflowSource,
        WorkflowSpec,
        StepSpec,
        Demand,
        RetryPolicy,
        PlanRequest,
        RunRequest,
        PlanAlgorithm,
        Plan,
        PlannedStep,
        RunRecord,
        RunStatus,
        StepRecord,
        StepStatus,
        RunSummary,
        DeviceKind,
        ProblemDetails
    ))
)]
pub struct NcmpWfApi;
