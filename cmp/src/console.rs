//! The testbed console: one small web page served by the CmP at `/console/` showing the
//! topology (sites, cells, UEs, NF instances), the nodes' devices with their live load,
//! the workflows, the recent runs and, for a chosen run (`/console/#run=<id>`), its DAG
//! placed on the nodes with every step's device, timings, attempts and outcome, and a link
//! to the run's trace in Jaeger.
//!
//! The console is for people with a browser, not an SBI service: it is merged next to the
//! SBI services (outside their OpenAPI documents and the NF profile), speaks whatever HTTP
//! version the browser does, and needs no internet (the page, script and style sheet are
//! embedded from `cmp/console/`). The page reads two JSON documents on the same origin:
//!
//! - `GET /console/api/overview`: assembled here from the testbed configuration (sites),
//!   the NRF (NF instances), the AMF found through the NRF (cells, UE contexts), the
//!   inventory (nodes, devices, live load, links) and the workflow engine (workflows,
//!   recent runs). A peer that does not answer within [`PEER_TIMEOUT`] is shown as
//!   unavailable with the reason; the page never fails because of it.
//! - `GET /console/api/runs/{runId}`: the run with its step records, the plan it was
//!   started with, the DAG's edges and the trace link.
//!
//! The Jaeger UI's base URL comes from `NETGPT_JAEGER_UI` (default
//! [`DEFAULT_JAEGER_UI`]). A run whose record carries a `traceId` links to
//! `<ui>/trace/<traceId>`; otherwise to Jaeger's search for the tag `run.id=<id>`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use netgpt_sbi::config::{SiteConfig, TestbedConfig};
use netgpt_sbi::models::namf::{CellInfo, UeContext};
use netgpt_sbi::{DiscoveryQuery, ProblemDetails, SbiPath};
use serde::Serialize;
use serde_json::Value;

use crate::context::CmpContext;
use crate::executor::REQUESTER_NF_TYPE;
use crate::inventory::{LinkInfo, NodeInfo};
use crate::planner::Plan;
use crate::wf::spec::step_edges;
use crate::wf::{RunRecord, RunSummary};

/// Jaeger UI base used when `NETGPT_JAEGER_UI` is unset.
pub const DEFAULT_JAEGER_UI: &str = "http://localhost:16686";

/// How long the overview waits for one peer (NRF, AMF) before showing it as unavailable.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(3);

/// How many recent runs the overview lists.
pub const RECENT_RUNS: usize = 50;

const INDEX_HTML: &str = include_str!("../console/index.html");
const CONSOLE_JS: &str = include_str!("../console/console.js");
const CONSOLE_CSS: &str = include_str!("../console/console.css");

/// What the console reads: the CmP's state, the configured sites and the Jaeger UI base.
#[derive(Debug, Clone)]
pub struct Console {
    cmp: Arc<CmpContext>,
    sites: Vec<SiteConfig>,
    jaeger_ui: String,
}

impl Console {
    /// The console of `cmp` for the testbed `config`; the Jaeger UI base from
    /// `NETGPT_JAEGER_UI` (default [`DEFAULT_JAEGER_UI`]).
    pub fn new(cmp: Arc<CmpContext>, config: &TestbedConfig) -> Self {
        let jaeger_ui = std::env::var("NETGPT_JAEGER_UI")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_JAEGER_UI.to_owned());
        Self::with_jaeger_ui(cmp, config, &jaeger_ui)
    }

    /// [`Console::new`] with an explicit Jaeger UI base.
    pub fn with_jaeger_ui(cmp: Arc<CmpContext>, config: &TestbedConfig, jaeger_ui: &str) -> Self {
        Self {
            cmp,
            sites: config.site.clone(),
            jaeger_ui: jaeger_ui.trim_end_matches('/').to_owned(),
        }
    }

    /// The link to run `run_id`'s trace: by trace id when known, else Jaeger's tag search.
    pub fn trace_url(&self, run_id: &str, trace_id: Option<&str>) -> String {
        match trace_id {
            Some(t) if !t.is_empty() => format!("{}/trace/{t}", self.jaeger_ui),
            _ => format!(
                "{}/search?service=netgpt&tags=%7B%22run.id%22%3A%22{}%22%7D",
                self.jaeger_ui,
                percent_encode(run_id)
            ),
        }
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Data from a peer that may not answer: the items, or why there are none.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Section<T> {
    /// Whether the source answered.
    pub available: bool,
    /// Why it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What it answered (empty when unavailable).
    pub items: Vec<T>,
}

impl<T> Section<T> {
    fn from_result(r: Result<Vec<T>, String>) -> Self {
        match r {
            Ok(items) => Self {
                available: true,
                error: None,
                items,
            },
            Err(e) => Self {
                available: false,
                error: Some(e),
                items: Vec::new(),
            },
        }
    }
}

/// One NF instance as the NRF knows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NfEntry {
    /// NF instance id.
    pub nf_instance_id: String,
    /// Instance name (`amf`, `edgeai-hangzhou`).
    pub name: Option<String>,
    /// NF type (`AMF`, `EDGEAI`).
    pub nf_type: String,
    /// NF status (`REGISTERED`, `SUSPENDED`).
    pub status: String,
    /// Locality (site id, `cloud`, `core`).
    pub locality: Option<String>,
    /// Names of the services it offers.
    pub services: Vec<String>,
}

/// A workflow in the overview.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowEntry {
    /// Name.
    pub name: String,
    /// Shipped or registered.
    pub source: String,
    /// Step ids, in the workflow's order.
    pub steps: Vec<String>,
    /// Budget, ms.
    pub budget_ms: Option<u64>,
}

/// `GET /console/api/overview`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Overview {
    /// When it was assembled.
    pub generated_at: DateTime<Utc>,
    /// The NRF's API root.
    pub nrf: String,
    /// Jaeger UI base.
    pub jaeger_ui: String,
    /// Edge sites, from the configuration.
    pub sites: Vec<SiteConfig>,
    /// Cells, from the AMF.
    pub cells: Section<CellInfo>,
    /// Registered UEs, from the AMF.
    pub ues: Section<UeContext>,
    /// NF instances, from the NRF.
    pub nfs: Section<NfEntry>,
    /// Compute nodes with devices and live load, from the inventory.
    pub nodes: Vec<NodeInfo>,
    /// Links between nodes.
    pub links: Vec<LinkInfo>,
    /// Registered workflows.
    pub workflows: Vec<WorkflowEntry>,
    /// Recent runs, newest first.
    pub runs: Section<RunSummary>,
}

/// `GET /console/api/runs/{runId}`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    /// The run with every step record.
    pub run: RunRecord,
    /// The plan it was started with (absent when none was recorded).
    pub plan: Option<Plan>,
    /// The DAG's edges as `[from step id, to step id]`, from the workflow as registered now.
    pub edges: Vec<(String, String)>,
    /// The run's trace id, when its record carries one.
    pub trace_id: Option<String>,
    /// Link to the run's trace in the Jaeger UI.
    pub trace_url: String,
}

async fn within<T>(what: &str, fut: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    match tokio::time::timeout(PEER_TIMEOUT, fut).await {
        Ok(r) => r.map_err(|e| format!("{what}: {e}")),
        Err(_) => Err(format!(
            "{what}: no answer within {} s",
            PEER_TIMEOUT.as_secs()
        )),
    }
}

impl Console {
    async fn nf_instances(&self) -> Result<Vec<NfEntry>, String> {
        let nrf = &self.cmp.nrf;
        let ids = nrf.list_instances(None).await.map_err(|e| e.to_string())?;
        let profiles = futures::future::join_all(ids.iter().map(|id| nrf.profile(*id))).await;
        let mut out: Vec<NfEntry> = profiles
            .into_iter()
            // An instance that deregistered between the list and its read is simply gone.
            .filter_map(Result::ok)
            .map(|p| NfEntry {
                nf_instance_id: p.nf_instance_id.to_string(),
                name: p.nf_instance_name.clone(),
                nf_type: p.nf_type.to_string(),
                status: serde_json::to_value(p.nf_status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                locality: p.locality.clone(),
                services: p.services().map(|s| s.service_name.clone()).collect(),
            })
            .collect();
        out.sort_by(|a, b| (&a.nf_type, &a.name).cmp(&(&b.nf_type, &b.name)));
        Ok(out)
    }

    async fn amf_root(&self) -> Result<String, String> {
        let q = DiscoveryQuery::new("AMF", REQUESTER_NF_TYPE).service("namf-comm");
        self.cmp
            .nrf
            .api_root_of(&q, "namf-comm")
            .await
            .map_err(|e| format!("AMF discovery: {e}"))
    }

    async fn amf_list<T: serde::de::DeserializeOwned>(
        &self,
        root: &Result<String, String>,
        path: &str,
        operation: &str,
    ) -> Result<Vec<T>, String> {
        let root = root.as_ref().map_err(Clone::clone)?;
        self.cmp
            .client
            .get(format!("{root}{path}"))
            .service("namf-comm")
            .operation(operation)
            .target_nf_type("AMF")
            .send_json()
            .await
            .map_err(|e| e.to_string())
    }

    /// Assembles the overview; peers that fail are marked unavailable.
    pub async fn overview(&self) -> Overview {
        let nfs = within("NRF", self.nf_instances());
        let amf = async {
            let root = within("NRF", self.amf_root()).await;
            let cells = within(
                "AMF",
                self.amf_list::<CellInfo>(&root, "/namf-comm/v1/cells", "cell_list"),
            );
            let ues = within(
                "AMF",
                self.amf_list::<UeContext>(&root, "/namf-comm/v1/ue-contexts", "ue_context_list"),
            );
            tokio::join!(cells, ues)
        };
        let runs = async {
            self.cmp
                .runs(RECENT_RUNS)
                .await
                .map_err(|p| format!("run store: {}", p.detail.unwrap_or_default()))
        };
        let (nfs, (cells, ues), runs) = tokio::join!(nfs, amf, runs);
        let workflows = self
            .cmp
            .workflows
            .list()
            .into_iter()
            .map(|w| WorkflowEntry {
                source: serde_json::to_value(w.source)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                steps: w.spec.steps.iter().map(|s| s.id.clone()).collect(),
                budget_ms: w.spec.budget_ms,
                name: w.name,
            })
            .collect();
        Overview {
            generated_at: Utc::now(),
            nrf: self.cmp.nrf.nrf_uri().to_owned(),
            jaeger_ui: self.jaeger_ui.clone(),
            sites: self.sites.clone(),
            cells: Section::from_result(cells),
            ues: Section::from_result(ues),
            nfs: Section::from_result(nfs),
            nodes: self.cmp.inventory.nodes(),
            links: self.cmp.inventory.links(),
            workflows,
            runs: Section::from_result(runs),
        }
    }

    /// The run `id` for the page: record, plan, edges, trace link.
    pub async fn run_view(&self, id: &str) -> Result<RunView, ProblemDetails> {
        let run = self.cmp.run(id).await?;
        let plan = self.cmp.run_plan(id).await.ok();
        let edges = match self.cmp.workflows.get(&run.workflow) {
            Some(doc) => {
                let ids: Vec<&str> = doc.spec.steps.iter().map(|s| s.id.as_str()).collect();
                let in_run = |s: &str| run.steps.iter().any(|r| r.step_id == s);
                step_edges(&doc.spec)
                    .into_iter()
                    .map(|(a, b)| (ids[a].to_owned(), ids[b].to_owned()))
                    // The workflow may have been replaced since the run: keep what fits.
                    .filter(|(a, b)| in_run(a) && in_run(b))
                    .collect()
            }
            None => Vec::new(),
        };
        // Read through JSON so a trace id the engine records (`traceId`) shows up here
        // without this module naming the field's Rust type.
        let trace_id = serde_json::to_value(&run)
            .ok()
            .and_then(|v| v.get("traceId").and_then(Value::as_str).map(str::to_owned))
            .filter(|t| !t.is_empty());
        let trace_url = self.trace_url(&run.id, trace_id.as_deref());
        Ok(RunView {
            run,
            plan,
            edges,
            trace_id,
            trace_url,
        })
    }
}

type Ctx = State<Arc<Console>>;

async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX_HTML,
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        CONSOLE_JS,
    )
        .into_response()
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        CONSOLE_CSS,
    )
        .into_response()
}

async fn overview(State(c): Ctx) -> Json<Overview> {
    Json(c.overview().await)
}

async fn run_view(
    State(c): Ctx,
    SbiPath(id): SbiPath<String>,
) -> Result<Json<RunView>, ProblemDetails> {
    c.run_view(&id).await.map(Json)
}

/// The console's routes (`/console/...`), to be merged next to the SBI services.
pub fn router(console: Console) -> Router {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(index))
        .route("/console/console.js", get(script))
        .route("/console/console.css", get(style))
        .route("/console/api/overview", get(overview))
        .route("/console/api/runs/{runId}", get(run_view))
        .with_state(Arc::new(console))
}

#[cfg(test)]
mod tests {
    use super::percent_encode;

    #[test]
    fn run_ids_are_percent_encoded_in_the_search_link() {
        assert_eq!(percent_encode("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(percent_encode("a b\"/"), "a%20b%22%2F");
    }
}
