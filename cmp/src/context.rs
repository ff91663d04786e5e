//! The CmP's state and procedures (no HTTP here): the inventory, the operation catalogue,
//! the workflow registry, the engine, and the NRF/SBI clients the planner and the
//! executor use.

use std::sync::Arc;

use axum::http::StatusCode;
use netgpt_sbi::{NrfClient, ProblemDetails, SbiClient};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::inventory::Inventory;
use crate::ops::Catalog;
use crate::planner::{self, Plan, PlanAlgorithm};
use crate::wf::{Engine, EngineError, RunRecord, RunSummary};
use crate::workflows::{parse_and_validate, WorkflowDocument, WorkflowRegistry};

/// `POST /workflows/{name}/plan` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanRequest {
    /// The run input (`{"supi": ..., "prompt": ...}`; `site` pins edge steps to a site).
    #[serde(default)]
    #[schema(value_type = Object, nullable)]
    pub input: Value,
    /// Scheduler variant (default `best`).
    #[serde(default)]
    pub algorithm: PlanAlgorithm,
}

/// `POST /workflows/{name}/runs` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunRequest {
    /// The run input.
    #[serde(default)]
    #[schema(value_type = Object, nullable)]
    pub input: Value,
    /// Scheduler variant (default `best`).
    #[serde(default)]
    pub algorithm: PlanAlgorithm,
    /// Answer only when the run has finished (the record then holds every step's outcome).
    #[serde(default)]
    pub wait: bool,
}

/// The CmP NF's state.
pub struct CmpContext {
    /// API root of this CmP (for `Location` headers).
    pub api_root: String,
    /// Nodes, devices, links, live load.
    pub inventory: Arc<Inventory>,
    /// Operation catalogue.
    pub catalog: Arc<Catalog>,
    /// Registered workflows and run plans.
    pub workflows: WorkflowRegistry,
    /// The workflow engine.
    pub engine: Engine,
    /// NRF consumer (discovery for the planner).
    pub nrf: NrfClient,
    /// SBI client (AMF lookups for the planner).
    pub client: SbiClient,
}

impl std::fmt::Debug for CmpContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CmpContext")
            .field("api_root", &self.api_root)
            .finish_non_exhaustive()
    }
}

/// Engine errors as ProblemDetails.
pub fn engine_problem(e: EngineError) -> ProblemDetails {
    match e {
        EngineError::Invalid(errs) => crate::workflows::spec_problem(errs),
        EngineError::BadInput(why) => ProblemDetails::invalid_param("input", why),
        EngineError::UnknownRun(id) => {
            ProblemDetails::not_found("RESOURCE_NOT_FOUND", format!("no run '{id}'"))
        }
        other => ProblemDetails::internal(other.to_string()),
    }
}

fn workflow_not_found(name: &str) -> ProblemDetails {
    ProblemDetails::not_found("RESOURCE_NOT_FOUND", format!("no workflow '{name}'"))
}

impl CmpContext {
    /// RegisterWorkflow: parses (YAML or JSON), validates against the catalogue, stores.
    #[tracing::instrument(name = "workflow_register", skip_all)]
    pub async fn register_workflow(
        &self,
        text: &str,
    ) -> Result<(WorkflowDocument, bool), ProblemDetails> {
        let spec = parse_and_validate(text, &self.catalog)?;
        Ok(self.workflows.register(spec).await?)
    }

    /// The workflow `name`.
    pub fn workflow(&self, name: &str) -> Result<WorkflowDocument, ProblemDetails> {
        self.workflows
            .get(name)
            .ok_or_else(|| workflow_not_found(name))
    }

    /// PlanWorkflow: the dry run.
    #[tracing::instrument(name = "workflow_plan", skip(self, req))]
    pub async fn plan(&self, name: &str, req: &PlanRequest) -> Result<Plan, ProblemDetails> {
        let doc = self.workflow(name)?;
        if !(req.input.is_object() || req.input.is_null()) {
            return Err(ProblemDetails::invalid_param(
                "input",
                "the run input is a JSON object",
            ));
        }
        let world = planner::gather(
            &doc.spec,
            &self.catalog,
            &req.input,
            &self.nrf,
            &self.client,
        )
        .await?;
        planner::plan(
            &doc.spec,
            &self.catalog,
            &self.inventory,
            &world,
            req.algorithm,
        )
    }

    /// StartRun: plans, starts the run on the plan's placement, records the plan; with
    /// `wait`, answers the finished record.
    #[tracing::instrument(name = "run_start", skip(self, req))]
    pub async fn start_run(
        &self,
        name: &str,
        req: RunRequest,
    ) -> Result<(RunRecord, Plan), ProblemDetails> {
        let doc = self.workflow(name)?;
        let plan = self
            .plan(
                name,
                &PlanRequest {
                    input: req.input.clone(),
                    algorithm: req.algorithm,
                },
            )
            .await?;
        let input = if req.input.is_null() {
            Value::Object(Default::default())
        } else {
            req.input
        };
        let id = self
            .engine
            .start_run(&doc.spec, input, plan.placement())
            .await
            .map_err(engine_problem)?;
        self.workflows.put_plan(&id, &plan).await?;
        let record = if req.wait {
            self.engine.wait(&id).await.map_err(engine_problem)?
        } else {
            self.engine
                .get_run(&id)
                .await
                .map_err(engine_problem)?
                .ok_or_else(|| ProblemDetails::internal(format!("run '{id}' vanished")))?
        };
        Ok((record, plan))
    }

    /// The run `id` with every step record.
    pub async fn run(&self, id: &str) -> Result<RunRecord, ProblemDetails> {
        self.engine
            .get_run(id)
            .await
            .map_err(engine_problem)?
            .ok_or_else(|| {
                ProblemDetails::not_found("RESOURCE_NOT_FOUND", format!("no run '{id}'"))
            })
    }

    /// The most recent runs.
    pub async fn runs(&self, limit: usize) -> Result<Vec<RunSummary>, ProblemDetails> {
        self.engine.list_runs(limit).await.map_err(engine_problem)
    }

    /// The plan run `id` was started with.
    pub async fn run_plan(&self, id: &str) -> Result<Plan, ProblemDetails> {
        self.workflows.plan_of(id).await?.ok_or_else(|| {
            ProblemDetails::new(
                StatusCode::NOT_FOUND,
                "RESOURCE_NOT_FOUND",
                format!("no plan recorded for run '{id}'"),
            )
        })
    }
}
