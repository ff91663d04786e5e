//! The workflow engine: runs a [`WorkflowSpec`] as a DAG, each step as soon as the steps it
//! depends on are finished (independent branches as concurrent tokio tasks), through a
//! [`StepExecutor`] that calls the NF operation.
//!
//! Semantics, where the issue left a choice:
//! - A step whose `when` is false is `skipped`; a reference to a skipped step's output
//!   resolves to `null`, so steps after it still run (and may test it with `exists`).
//! - A reference to a field absent from the run input or from a step's output fails the
//!   referring step (a condition sees such a field as `null` instead).
//! - Per attempt the engine enforces the step's timeout (`timeoutMs`, else the engine's
//!   default); a retryable error or a timeout is retried after the policy's backoff, up to
//!   `retry.limit` retries (failures counted since the step was last started in this
//!   process: an attempt cut off by a crash is no failure). A fatal error, the last failed
//!   attempt, or an attempt cut short by the run's budget fails the step, and a
//!   failed step fails the run: steps still in flight are aborted and recorded failed.
//! - `budgetMs` bounds the whole run (from its start, across restarts): when it is spent
//!   the run fails with "run latency budget of N ms exceeded".
//! - The run output is the workflow's `output` map resolved at the end; without one, the
//!   output of the single sink step (a step nothing depends on), or `{sinkId: output}` when
//!   there are several.
//!
//! Durability: before a step is executed its record is written `running` with the attempt
//! number; its completion is written (status + output) and acknowledged by the store before
//! any step depending on it starts, in the same write as those steps' `running` records.
//! [`Engine::resume_unfinished`] continues runs a crashed CmP left: steps `succeeded` or
//! `skipped` are kept (their outputs feed later steps); a step found `running` has an
//! unknown outcome and is executed again only when declared `idempotent`, else it is failed
//! with "outcome unknown after restart, step not idempotent" and the run fails.
//! One engine process owns a store's unfinished runs.
//!
//! Executors must not block: a step whose future completes at its first poll (an in-process
//! operation) is finished inline by the run's driver, without a task of its own; any other
//! step runs as its own tokio task, concurrently with its siblings.
//!
//! Cancellation: dropping the future of [`Engine::run`] or [`Engine::wait`] leaves the run
//! executing in the background; if the process dies, the store holds each step as
//! `pending`, `running` (outcome unknown) or final, which is what resuming needs.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use utoipa::ToSchema;

use super::spec::{
    lookup, parse_condition, parse_input, step_dependencies, validate, AnyOperation, Condition,
    InputValue, RetryPolicy, SpecErrors, ValueRef, WorkflowSpec,
};
use super::store::{RunFinish, RunStore, StoreError, StoredRun};

/// Cause recorded for a step found `running` after a restart that is not idempotent.
pub const OUTCOME_UNKNOWN: &str = "outcome unknown after restart, step not idempotent";

/// One call of a step's operation, handed to the [`StepExecutor`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepCall {
    /// The run.
    pub run_id: String,
    /// The step.
    pub step_id: String,
    /// Operation to call, e.g. `cloud.generate`.
    pub operation: String,
    /// The step's input document (its `params`, then its resolved `inputs`).
    pub input: Value,
    /// Node the plan placed the step on (chooses the NF instance).
    pub node: Option<String>,
    /// Device the plan placed the step on.
    pub device: Option<String>,
    /// Attempt number, from 1 (continues across restarts).
    pub attempt: u32,
    /// Time the engine allows this attempt.
    #[schema(value_type = u64)]
    #[serde(with = "duration_ms")]
    pub timeout: Duration,
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// Worth another attempt (network error, 503, overload).
    #[error("{0}")]
    Retryable(String),
    /// Another attempt would fail the same way (bad input, 4xx).
    #[error("{0}")]
    Fatal(String),
}

/// Executes a step's operation (over SBI for NF operations, in-process for `noop`).
pub trait StepExecutor: Send + Sync + 'static {
    /// Runs one attempt; the engine enforces `call.timeout` by dropping the future.
    fn execute(&self, call: StepCall) -> BoxFuture<'static, Result<Value, StepError>>;
}

/// Where the plan puts a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepPlacement {
    /// Node id (edge site or `cloud`).
    pub node: String,
    /// Device id on that node.
    pub device: String,
}

/// State of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Steps remain.
    Running,
    /// Every step succeeded or was skipped.
    Succeeded,
    /// A step failed, the budget was spent, or the input was refused.
    Failed,
}

/// State of a step in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    /// Not started.
    Pending,
    /// An attempt is (or, after a crash, may have been) in flight.
    Running,
    /// Done, output recorded.
    Succeeded,
    /// Failed for good.
    Failed,
    /// Its condition was false.
    Skipped,
}

impl RunStatus {
    /// The lowercase name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        }
    }

    /// Parses [`RunStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed,
            _ => return None,
        })
    }
}

impl StepStatus {
    /// The lowercase name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }

    /// Parses [`StepStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => StepStatus::Pending,
            "running" => StepStatus::Running,
            "succeeded" => StepStatus::Succeeded,
            "failed" => StepStatus::Failed,
            "skipped" => StepStatus::Skipped,
            _ => return None,
        })
    }

    /// Succeeded or skipped: later steps may start.
    pub fn is_done(self) -> bool {
        matches!(self, StepStatus::Succeeded | StepStatus::Skipped)
    }
}

/// A run with all its step records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// Run id (a UUID).
    pub id: String,
    /// The workflow's name.
    pub workflow: String,
    /// State.
    pub status: RunStatus,
    /// The run's input document.
    pub input: Value,
    /// The run's output, once succeeded.
    pub output: Option<Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// One record per step, in the workflow's order.
    pub steps: Vec<StepRecord>,
}

/// What happened to one step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    /// The step.
    pub step_id: String,
    /// Node it ran on.
    pub node: Option<String>,
    /// Device it ran on.
    pub device: Option<String>,
    /// State.
    pub status: StepStatus,
    /// Attempts started so far.
    pub attempts: u32,
    /// Start of its first attempt (or when it was skipped).
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Size of its output as JSON text, in bytes.
    pub output_bytes: u64,
    /// Its output.
    pub output: Option<Value>,
    /// Why it failed (or the error of the last failed attempt).
    pub error: Option<String>,
}

impl StepRecord {
    /// A step not started yet.
    pub fn pending(step_id: &str) -> Self {
        Self {
            step_id: step_id.to_owned(),
            node: None,
            device: None,
            status: StepStatus::Pending,
            attempts: 0,
            started_at: None,
            finished_at: None,
            output_bytes: 0,
            output: None,
            error: None,
        }
    }
}

/// A run in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// Run id.
    pub id: String,
    /// Workflow name.
    pub workflow: String,
    /// State.
    pub status: RunStatus,
    /// Why it failed.
    pub error: Option<String>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
}

/// Why the engine refused or could not report a run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The workflow is invalid.
    #[error("invalid workflow: {0}")]
    Invalid(SpecErrors),
    /// The run input lacks a declared field or is not an object.
    #[error("invalid run input: {0}")]
    BadInput(String),
    /// No run has this id.
    #[error("unknown run '{0}'")]
    UnknownRun(String),
    /// The run is unfinished but not executing in this engine (call `resume_unfinished`).
    #[error("run '{0}' is unfinished and not executing here (resume it first)")]
    NotActive(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The workflow engine. Cheap to clone; runs execute on the tokio runtime in the background.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn RunStore>,
    executor: Arc<dyn StepExecutor>,
    default_timeout: Duration,
    /// Runs executing here; the flag turns true when the run's final record is stored.
    active: Mutex<HashMap<String, watch::Sender<bool>>>,
}

/// Per-attempt timeout of steps without `timeoutMs`.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(30);

impl Engine {
    /// An engine recording into `store` and calling operations through `executor`.
    pub fn new(store: Arc<dyn RunStore>, executor: Arc<dyn StepExecutor>) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                executor,
                default_timeout: DEFAULT_STEP_TIMEOUT,
                active: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Sets the per-attempt timeout of steps that declare none (before any run starts).
    pub fn with_default_timeout(mut self, timeout: Duration) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.default_timeout = timeout;
        }
        self
    }

    /// The store the engine records into.
    pub fn store(&self) -> &Arc<dyn RunStore> {
        &self.inner.store
    }

    /// Records a new run and starts it in the background; returns its id once the run is
    /// durably recorded. The workflow is checked structurally (references, cycles); the
    /// operation catalogue is the caller's to check with [`validate`].
    pub async fn start_run(
        &self,
        spec: &WorkflowSpec,
        input: Value,
        placement: BTreeMap<String, StepPlacement>,
    ) -> Result<String, EngineError> {
        validate(spec, &AnyOperation).map_err(EngineError::Invalid)?;
        if !spec.inputs.is_empty() {
            let Some(obj) = input.as_object() else {
                return Err(EngineError::BadInput(format!(
                    "must be an object with fields {}",
                    spec.inputs.join(", ")
                )));
            };
            let missing: Vec<&str> = spec
                .inputs
                .iter()
                .filter(|f| !obj.contains_key(f.as_str()))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                return Err(EngineError::BadInput(format!(
                    "missing field(s) {} declared in the workflow's inputs",
                    missing.join(", ")
                )));
            }
        }
        // One copy of the workflow, shared by the plan and the stored run.
        let shared = Arc::new(spec.clone());
        let plan = Plan::new(shared.clone());
        let id = uuid::Uuid::new_v4().to_string();
        let record = RunRecord {
            id: id.clone(),
            workflow: spec.name.clone(),
            status: RunStatus::Running,
            input,
            output: None,
            error: None,
            started_at: Utc::now(),
            finished_at: None,
            steps: spec
                .steps
                .iter()
                .map(|s| StepRecord::pending(&s.id))
                .collect(),
        };
        let stored = StoredRun {
            record,
            spec: shared,
            placement,
        };
        self.inner.store.create_run(&stored).await?;
        self.launch(plan, stored, false);
        Ok(id)
    }

    /// Waits until the run is finished and returns its record (at once if it already is).
    pub async fn wait(&self, run_id: &str) -> Result<RunRecord, EngineError> {
        let rx = self
            .inner
            .active
            .lock()
            .expect("engine lock")
            .get(run_id)
            .map(|tx| tx.subscribe());
        if let Some(mut rx) = rx {
            // An error means the driver went away (runtime shut down): report what is stored.
            let _ = rx.wait_for(|done| *done).await;
        }
        let record = self
            .inner
            .store
            .get_run(run_id)
            .await?
            .ok_or_else(|| EngineError::UnknownRun(run_id.to_owned()))?;
        if record.status == RunStatus::Running && !self.is_active(run_id) {
            return Err(EngineError::NotActive(run_id.to_owned()));
        }
        Ok(record)
    }

    /// Starts a run and waits for it to finish.
    pub async fn run(
        &self,
        spec: &WorkflowSpec,
        input: Value,
        placement: BTreeMap<String, StepPlacement>,
    ) -> Result<RunRecord, EngineError> {
        let id = self.start_run(spec, input, placement).await?;
        self.wait(&id).await
    }

    /// The run's record as stored now.
    pub async fn get_run(&self, run_id: &str) -> Result<Option<RunRecord>, EngineError> {
        Ok(self.inner.store.get_run(run_id).await?)
    }

    /// The most recent runs, newest first.
    pub async fn list_runs(&self, limit: usize) -> Result<Vec<RunSummary>, EngineError> {
        Ok(self.inner.store.list_runs(limit).await?)
    }

    /// Continues every unfinished run of the store not executing here (after a restart);
    /// returns their ids. See the module doc for what is kept and what re-executed.
    pub async fn resume_unfinished(&self) -> Result<Vec<String>, EngineError> {
        let runs = self.inner.store.unfinished_runs().await?;
        let mut ids = Vec::new();
        for stored in runs {
            let (id, workflow) = (stored.record.id.clone(), stored.record.workflow.clone());
            let plan = Plan::new(stored.spec.clone());
            if self.launch(plan, stored, true) {
                tracing::info!(run = %id, workflow = %workflow, "resuming workflow run");
                ids.push(id);
            }
        }
        Ok(ids)
    }

    fn is_active(&self, run_id: &str) -> bool {
        self.inner
            .active
            .lock()
            .expect("engine lock")
            .contains_key(run_id)
    }

    /// Starts the run's driver unless the run already executes here (checked and recorded
    /// under one lock, so concurrent resumes never start a run twice).
    fn launch(&self, plan: Plan, stored: StoredRun, resumed: bool) -> bool {
        let id = stored.record.id.clone();
        {
            let mut active = self.inner.active.lock().expect("engine lock");
            if active.contains_key(&id) {
                return false;
            }
            active.insert(id.clone(), watch::channel(false).0);
        }
        let inner = self.inner.clone();
        // The driver and its steps stay in the caller's span (the RunStart request), so a
        // run is one trace with the calls its steps make.
        let run = async move {
            let driver = Driver::new(inner.clone(), Arc::new(plan), stored);
            if let Err(e) = driver.drive(resumed).await {
                // The store failed: the run stays unfinished there and resumes after a restart.
                tracing::error!(run = %id, error = %e, "workflow run stopped: store error");
            }
            if let Some(tx) = inner.active.lock().expect("engine lock").remove(&id) {
                let _ = tx.send(true);
            }
        };
        tokio::spawn(tracing::Instrument::in_current_span(run));
        true
    }
}

/// A workflow prepared for execution: references parsed, dependencies as indices.
struct Plan {
    spec: Arc<WorkflowSpec>,
    index: HashMap<String, usize>,
    preds: Vec<Vec<usize>>,
    succs: Vec<Vec<usize>>,
    inputs: Vec<Vec<(String, InputValue)>>,
    when: Vec<Option<Condition>>,
    output: Vec<(String, InputValue)>,
}

impl Plan {
    /// Builds the plan of a validated spec.
    fn new(spec: Arc<WorkflowSpec>) -> Self {
        let n = spec.steps.len();
        let index: HashMap<String, usize> = spec
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .collect();
        let mut preds = vec![Vec::new(); n];
        let mut succs = vec![Vec::new(); n];
        for (to, s) in spec.steps.iter().enumerate() {
            for dep in step_dependencies(s) {
                if let Some(&from) = index.get(&dep) {
                    preds[to].push(from);
                    succs[from].push(to);
                }
            }
        }
        let parse_all = |m: &BTreeMap<String, String>| {
            m.iter()
                .filter_map(|(k, v)| parse_input(v).ok().map(|iv| (k.clone(), iv)))
                .collect::<Vec<_>>()
        };
        let inputs = spec.steps.iter().map(|s| parse_all(&s.inputs)).collect();
        let when = spec
            .steps
            .iter()
            .map(|s| s.when.as_deref().and_then(|w| parse_condition(w).ok()))
            .collect();
        let output = parse_all(&spec.output);
        Self {
            spec,
            index,
            preds,
            succs,
            inputs,
            when,
            output,
        }
    }
}

/// What a step task reports back to its run's driver.
struct Outcome {
    step: usize,
    attempts: u32,
    result: Result<Value, String>,
    finished_at: DateTime<Utc>,
}

/// Executes one run: owns its step records and decides what starts next.
struct Driver {
    inner: Arc<Inner>,
    plan: Arc<Plan>,
    run_id: String,
    input: Arc<Value>,
    placement: BTreeMap<String, StepPlacement>,
    steps: Vec<StepRecord>,
    started_at: DateTime<Utc>,
    waiting: Vec<usize>,
    /// Inputs resolved when a step was released, taken when its task is built.
    prepared: Vec<Option<Value>>,
}

impl Driver {
    fn new(inner: Arc<Inner>, plan: Arc<Plan>, stored: StoredRun) -> Self {
        let StoredRun {
            record, placement, ..
        } = stored;
        let waiting: Vec<usize> = plan.preds.iter().map(Vec::len).collect();
        Self {
            inner,
            plan,
            run_id: record.id,
            input: Arc::new(record.input),
            placement,
            steps: record.steps,
            started_at: record.started_at,
            prepared: vec![None; waiting.len()],
            waiting,
        }
    }

    async fn drive(mut self, resumed: bool) -> Result<(), StoreError> {
        let n = self.steps.len();
        let mut in_flight: JoinSet<Outcome> = JoinSet::new();
        let mut ready: Vec<usize> = Vec::new();
        // Batch of records to write before the steps in `to_start` may be spawned.
        let mut batch: Vec<StepRecord> = Vec::new();
        let mut to_start: Vec<usize> = Vec::new();
        let mut failure: Option<String> = None;

        // Steps finished before (a resumed run) release their successors.
        for i in 0..n {
            if self.steps[i].status.is_done() {
                for k in 0..self.plan.succs[i].len() {
                    let s = self.plan.succs[i][k];
                    self.waiting[s] -= 1;
                }
            }
        }
        for i in 0..n {
            match self.steps[i].status {
                StepStatus::Pending if self.waiting[i] == 0 => ready.push(i),
                StepStatus::Running if resumed => {
                    if self.plan.spec.steps[i].idempotent {
                        to_start.push(i);
                        let rec = &mut self.steps[i];
                        rec.attempts += 1;
                        batch.push(rec.clone());
                    } else {
                        let rec = &mut self.steps[i];
                        rec.status = StepStatus::Failed;
                        rec.finished_at = Some(Utc::now());
                        rec.error = Some(OUTCOME_UNKNOWN.to_owned());
                        batch.push(rec.clone());
                        failure.get_or_insert_with(|| {
                            format!("step '{}': {OUTCOME_UNKNOWN}", rec.step_id)
                        });
                    }
                }
                StepStatus::Failed => {
                    let rec = &self.steps[i];
                    failure.get_or_insert_with(|| {
                        format!(
                            "step '{}' failed: {}",
                            rec.step_id,
                            rec.error.as_deref().unwrap_or("unknown error")
                        )
                    });
                }
                _ => {}
            }
        }

        let deadline = self.plan.spec.budget_ms.map(|ms| {
            let elapsed = (Utc::now() - self.started_at).to_std().unwrap_or_default();
            Instant::now() + Duration::from_millis(ms).saturating_sub(elapsed)
        });

        loop {
            if failure.is_none() {
                self.release(&mut ready, &mut batch, &mut to_start, &mut failure);
            }
            if failure.is_some() || (in_flight.is_empty() && to_start.is_empty()) {
                break;
            }
            if !batch.is_empty() {
                self.inner
                    .store
                    .write_steps(&self.run_id, std::mem::take(&mut batch))
                    .await?;
            }
            let budget_ms = self.plan.spec.budget_ms.unwrap_or(0);
            let budget_exceeded = || Some(format!("run latency budget of {budget_ms} ms exceeded"));
            let mut done_now = Vec::new();
            for i in to_start.drain(..) {
                // A step done at its first poll (an in-process operation) is finished here;
                // any other runs as a task of its own, concurrently with its siblings. (A
                // future must accept a new waker at each poll, so the spawned task takes over.)
                let mut task = Box::pin(tracing::Instrument::in_current_span(
                    self.step_task(i, deadline),
                ));
                let mut cx = Context::from_waker(futures::task::noop_waker_ref());
                match task.as_mut().poll(&mut cx) {
                    Poll::Ready(out) => done_now.push(out),
                    Poll::Pending => {
                        in_flight.spawn(task);
                    }
                }
            }
            if !done_now.is_empty() {
                for out in done_now {
                    if let Err(e) = self.absorb(out, &mut batch, &mut ready) {
                        failure = Some(self.cause(e, deadline));
                        break;
                    }
                }
                if failure.is_none() && deadline.is_some_and(|d| Instant::now() >= d) {
                    failure = budget_exceeded();
                }
                if failure.is_some() {
                    break;
                }
                continue;
            }
            let next = match deadline {
                Some(d) => match tokio::time::timeout_at(d, in_flight.join_next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        failure = budget_exceeded();
                        break;
                    }
                },
                None => in_flight.join_next().await,
            };
            let Some(mut joined) = next else { continue };
            // Take every outcome already there: their records go out in one write.
            loop {
                match joined {
                    Ok(out) => {
                        if let Err(e) = self.absorb(out, &mut batch, &mut ready) {
                            failure = Some(self.cause(e, deadline));
                        }
                    }
                    Err(e) => failure = Some(format!("a step task died: {e}")),
                }
                if failure.is_some() {
                    break;
                }
                match in_flight.try_join_next() {
                    Some(j) => joined = j,
                    None => break,
                }
            }
            if failure.is_some() {
                break;
            }
        }

        // Whatever is still in flight is abandoned with the run.
        in_flight.abort_all();
        let reason = failure.clone().unwrap_or_default();
        for rec in self.steps.iter_mut() {
            if rec.status == StepStatus::Running {
                rec.status = StepStatus::Failed;
                rec.finished_at = Some(Utc::now());
                rec.error = Some(format!("aborted: {reason}"));
                batch.push(rec.clone());
            }
        }
        let finished_at = Utc::now();
        record_run_metrics(
            &self.plan.spec.name,
            if failure.is_some() {
                "failed"
            } else {
                "succeeded"
            },
            (finished_at - self.started_at).to_std().unwrap_or_default(),
        );
        let finish = match failure {
            Some(error) => RunFinish {
                status: RunStatus::Failed,
                output: None,
                error: Some(error),
                finished_at: Utc::now(),
            },
            None => RunFinish {
                status: RunStatus::Succeeded,
                output: Some(self.run_output()),
                error: None,
                finished_at: Utc::now(),
            },
        };
        self.inner
            .store
            .finish_run(&self.run_id, batch, finish)
            .await
    }

    /// Records a step's outcome; its successors whose last dependency it was become ready.
    /// A failure is returned as the run's cause.
    fn absorb(
        &mut self,
        out: Outcome,
        batch: &mut Vec<StepRecord>,
        ready: &mut Vec<usize>,
    ) -> Result<(), String> {
        let rec = &mut self.steps[out.step];
        rec.attempts = out.attempts;
        rec.finished_at = Some(out.finished_at);
        record_step_metrics(
            &self.plan.spec.name,
            &self.plan.spec.steps[out.step].operation,
            rec,
            if out.result.is_ok() {
                "succeeded"
            } else {
                "failed"
            },
        );
        match out.result {
            Ok(v) => {
                rec.status = StepStatus::Succeeded;
                rec.output_bytes = json_len(&v);
                rec.output = Some(v);
                rec.error = None;
                batch.push(rec.clone());
                for &s in &self.plan.succs[out.step] {
                    self.waiting[s] -= 1;
                    if self.waiting[s] == 0 {
                        ready.push(s);
                    }
                }
                Ok(())
            }
            Err(e) => {
                tracing::warn!(run = %self.run_id, step = %rec.step_id, error = %e, "workflow step failed");
                rec.status = StepStatus::Failed;
                rec.error = Some(e.clone());
                batch.push(rec.clone());
                Err(format!("step '{}' failed: {e}", rec.step_id))
            }
        }
    }

    /// The run's cause of failure for a failed step: the budget when it is spent (the step's
    /// last attempt was cut short by it), else the step's error.
    fn cause(&self, step_error: String, deadline: Option<Instant>) -> String {
        match (deadline, self.plan.spec.budget_ms) {
            (Some(d), Some(ms)) if Instant::now() >= d => {
                format!("run latency budget of {ms} ms exceeded")
            }
            _ => step_error,
        }
    }

    /// Moves ready steps to `to_start` (recording them `running`), or skips them when their
    /// condition is false (which may ready more steps). An input that cannot be resolved
    /// fails the step and the run.
    fn release(
        &mut self,
        ready: &mut Vec<usize>,
        batch: &mut Vec<StepRecord>,
        to_start: &mut Vec<usize>,
        failure: &mut Option<String>,
    ) {
        while let Some(i) = ready.pop() {
            let now = Utc::now();
            let run = match &self.plan.when[i] {
                Some(c) => c.eval(&|r| self.resolve(r).cloned().unwrap_or(Value::Null)),
                None => true,
            };
            let place = self.placement.get(self.plan.spec.steps[i].id.as_str());
            let rec = &mut self.steps[i];
            rec.node = place.map(|p| p.node.clone());
            rec.device = place.map(|p| p.device.clone());
            rec.started_at = Some(now);
            if run {
                rec.status = StepStatus::Running;
                rec.attempts += 1;
                batch.push(rec.clone());
                to_start.push(i);
            } else {
                rec.status = StepStatus::Skipped;
                rec.finished_at = Some(now);
                batch.push(rec.clone());
                for k in 0..self.plan.succs[i].len() {
                    let s = self.plan.succs[i][k];
                    self.waiting[s] -= 1;
                    if self.waiting[s] == 0 {
                        ready.push(s);
                    }
                }
            }
        }
        // Inputs are resolved when the task is built; check them now so a bad one fails
        // the step before anything is executed.
        for &i in to_start.iter() {
            if self.prepared[i].is_some() {
                continue;
            }
            let input = self.step_input(i);
            if let Err(e) = input {
                let rec = &mut self.steps[i];
                rec.status = StepStatus::Failed;
                rec.finished_at = Some(Utc::now());
                rec.error = Some(e.clone());
                if let Some(b) = batch.iter_mut().find(|b| b.step_id == rec.step_id) {
                    *b = rec.clone();
                }
                failure.get_or_insert_with(|| format!("step '{}' failed: {e}", rec.step_id));
            } else {
                self.prepared[i] = input.ok();
            }
        }
        if failure.is_some() {
            to_start.clear();
        }
    }

    /// The value a reference stands for; `None` when absent. A skipped step's output is null.
    fn resolve(&self, r: &ValueRef) -> Option<&Value> {
        static NULL: Value = Value::Null;
        match r {
            ValueRef::Input(path) => lookup(&self.input, path),
            ValueRef::Step { step, path } => {
                let rec = &self.steps[*self.plan.index.get(step)?];
                match rec.status {
                    StepStatus::Skipped => Some(&NULL),
                    _ => lookup(rec.output.as_ref()?, path),
                }
            }
        }
    }

    /// The input document of step `i`: its params, then its resolved inputs.
    fn step_input(&self, i: usize) -> Result<Value, String> {
        let mut obj = self.plan.spec.steps[i].params.clone();
        for (name, iv) in &self.plan.inputs[i] {
            let v = match iv {
                InputValue::Literal(s) => Value::String(s.clone()),
                InputValue::Ref(r) => self.resolve(r).cloned().ok_or_else(|| {
                    format!(
                        "input '{name}': {} is absent",
                        self.plan.spec.steps[i].inputs[name]
                    )
                })?,
            };
            obj.insert(name.clone(), v);
        }
        Ok(Value::Object(obj))
    }

    fn run_output(&self) -> Value {
        if !self.plan.output.is_empty() {
            let mut obj = serde_json::Map::new();
            for (name, iv) in &self.plan.output {
                let v = match iv {
                    InputValue::Literal(s) => Value::String(s.clone()),
                    InputValue::Ref(r) => self.resolve(r).cloned().unwrap_or(Value::Null),
                };
                obj.insert(name.clone(), v);
            }
            return Value::Object(obj);
        }
        let out = |i: usize| self.steps[i].output.clone().unwrap_or(Value::Null);
        let sinks: Vec<usize> = (0..self.steps.len())
            .filter(|&i| self.plan.succs[i].is_empty())
            .collect();
        match sinks.as_slice() {
            [one] => out(*one),
            many => Value::Object(
                many.iter()
                    .map(|&i| (self.steps[i].step_id.clone(), out(i)))
                    .collect(),
            ),
        }
    }

    /// The task executing step `i`: attempts with timeout, backoff and retries.
    fn step_task(
        &mut self,
        i: usize,
        deadline: Option<Instant>,
    ) -> impl std::future::Future<Output = Outcome> + Send + 'static {
        let input = match self.prepared[i].take() {
            Some(v) => v,
            None => self.step_input(i).unwrap_or(Value::Null),
        };
        let spec = &self.plan.spec.steps[i];
        let rec = self.steps[i].clone();
        let inner = self.inner.clone();
        let run_id = self.run_id.clone();
        let policy: RetryPolicy = spec.retry;
        let timeout = spec
            .timeout_ms
            .map_or(inner.default_timeout, Duration::from_millis);
        let operation = spec.operation.clone();
        async move {
            let mut rec = rec;
            let mut failures = 0u32;
            loop {
                let attempt = rec.attempts;
                let mut limit = timeout;
                if let Some(d) = deadline {
                    limit = limit.min(d.saturating_duration_since(Instant::now()));
                }
                let call = StepCall {
                    run_id: run_id.clone(),
                    step_id: rec.step_id.clone(),
                    operation: operation.clone(),
                    input: input.clone(),
                    node: rec.node.clone(),
                    device: rec.device.clone(),
                    attempt,
                    timeout: limit,
                };
                let error = match tokio::time::timeout(limit, inner.executor.execute(call)).await {
                    Ok(Ok(v)) => {
                        return Outcome {
                            step: i,
                            attempts: attempt,
                            result: Ok(v),
                            finished_at: Utc::now(),
                        }
                    }
                    Ok(Err(StepError::Fatal(e))) => {
                        return Outcome {
                            step: i,
                            attempts: attempt,
                            result: Err(e),
                            finished_at: Utc::now(),
                        }
                    }
                    Ok(Err(StepError::Retryable(e))) => e,
                    Err(_) => format!("attempt {attempt} timed out after {} ms", limit.as_millis()),
                };
                failures += 1;
                // Cut short by the run's budget: no time is left for another attempt.
                let budget_spent = limit < timeout;
                if failures > policy.limit || budget_spent {
                    let tries = if failures > 1 {
                        format!(" (after {failures} attempts)")
                    } else {
                        String::new()
                    };
                    return Outcome {
                        step: i,
                        attempts: attempt,
                        result: Err(format!("{error}{tries}")),
                        finished_at: Utc::now(),
                    };
                }
                tokio::time::sleep(policy.backoff(attempt + 1)).await;
                rec.attempts += 1;
                rec.error = Some(error);
                // The next attempt is recorded before it is made, like the first.
                if let Err(e) = inner.store.write_steps(&run_id, vec![rec.clone()]).await {
                    return Outcome {
                        step: i,
                        attempts: rec.attempts - 1,
                        result: Err(format!("cannot record attempt: {e}")),
                        finished_at: Utc::now(),
                    };
                }
            }
        }
    }
}

/// Records a finished run: `cmp_workflow_runs_total` and `cmp_workflow_run_duration_seconds`
/// (labels `workflow`, `status`), catalogued in docs/metrics.md.
fn record_run_metrics(workflow: &str, status: &'static str, elapsed: Duration) {
    let labels = [
        ("workflow", workflow.to_owned()),
        ("status", status.to_owned()),
    ];
    metrics::counter!("cmp_workflow_runs_total", &labels).increment(1);
    metrics::histogram!("cmp_workflow_run_duration_seconds", &labels).record(elapsed.as_secs_f64());
}

/// Records a finished step: `cmp_workflow_steps_total` and `cmp_workflow_step_duration_seconds`
/// (labels `workflow`, `operation`, `node`, `status`); the duration runs from its first
/// attempt's start, so retries count in it.
fn record_step_metrics(workflow: &str, operation: &str, rec: &StepRecord, status: &'static str) {
    let labels = [
        ("workflow", workflow.to_owned()),
        ("operation", operation.to_owned()),
        ("node", rec.node.clone().unwrap_or_default()),
        ("status", status.to_owned()),
    ];
    metrics::counter!("cmp_workflow_steps_total", &labels).increment(1);
    if let (Some(start), Some(end)) = (rec.started_at, rec.finished_at) {
        let d = (end - start).to_std().unwrap_or_default();
        metrics::histogram!("cmp_workflow_step_duration_seconds", &labels).record(d.as_secs_f64());
    }
}

/// Length of a value's JSON text, without building the text.
fn json_len(v: &Value) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}
