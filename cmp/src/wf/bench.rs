//! Engine benchmark (`netgpt bench wf`): the engine's own cost per step, with in-process
//! no-op steps so that everything measured is scheduling, input resolution and recording.
//!
//! Scenarios, per store (memory; SQLite file; PostgreSQL when a URL is given):
//! - `chain`: runs of N steps one after another, one run at a time;
//! - `fan-out`: a source, W parallel steps, a sink, one run at a time;
//! - `concurrent`: C runs of a short chain at once (what group commit is for).
//!
//! Figures: overhead per step = wall time / steps executed (no-op steps do no work), its
//! p50/p99 over runs (per run: run time / steps), the per-step latency p50/p99 read back from
//! the step records (a step's end minus the end of the last step it waited for), and runs/s.
//! The targets: 5 us per step in memory, 200 us durable; a scenario meets its target when its
//! overhead per step (wall / steps) is at or below it.
//!
//! With durable records a `chain` costs one commit per step (a step's completion is durable
//! before the next step starts), so its figure is the store's commit latency; group commit
//! pays off where steps complete together (`fan-out`, `concurrent`), shown as writes/tx.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::Value;

use super::engine::{Engine, EngineError, RunRecord, StepCall, StepError, StepExecutor};
use super::spec::{step_edges, StepSpec, WorkflowSpec};
use super::store::{MemoryStore, RunStore, SqlStore, StoreError};

/// Target overhead per step in memory, microseconds.
pub const TARGET_MEMORY_US: f64 = 5.0;
/// Target overhead per step with durable records, microseconds.
pub const TARGET_DURABLE_US: f64 = 200.0;

/// Executes every step at once with a `null` output.
pub struct NoopExecutor;

impl StepExecutor for NoopExecutor {
    fn execute(&self, _call: StepCall) -> BoxFuture<'static, Result<Value, StepError>> {
        futures::future::ready(Ok(Value::Null)).boxed()
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Steps of the `chain` workflow.
    pub chain_steps: usize,
    /// Parallel steps of the `fan-out` workflow.
    pub fanout_width: usize,
    /// Runs started at once in the `concurrent` scenario.
    pub concurrency: usize,
    /// Steps of each chain in the `concurrent` scenario.
    pub concurrent_steps: usize,
    /// Time spent per scenario and store (runs stop once it is spent, after at least 3).
    pub scenario_time: Duration,
    /// Folder of the SQLite file (a temporary one when `None`).
    pub sqlite_dir: Option<std::path::PathBuf>,
    /// PostgreSQL URL (its database is used as is: tables `cmp_wf_*`).
    pub postgres_url: Option<String>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            chain_steps: 100,
            fanout_width: 100,
            concurrency: 64,
            concurrent_steps: 10,
            scenario_time: Duration::from_secs(4),
            sqlite_dir: None,
            postgres_url: None,
        }
    }
}

/// One scenario on one store, measured.
#[derive(Debug, Clone)]
pub struct BenchRow {
    /// `memory`, `sqlite` or `postgres`.
    pub store: String,
    /// `chain`, `fan-out` or `concurrent`.
    pub scenario: String,
    /// Steps per run.
    pub steps_per_run: usize,
    /// Runs at once.
    pub concurrency: usize,
    /// Runs completed.
    pub runs: usize,
    /// Wall time, seconds.
    pub wall_s: f64,
    /// Wall time / steps executed, microseconds.
    pub overhead_us: f64,
    /// Per run (run time / its steps): median, microseconds.
    pub per_run_p50_us: f64,
    /// Per run: 99th percentile, microseconds.
    pub per_run_p99_us: f64,
    /// Per step from the records: median, microseconds.
    pub step_p50_us: f64,
    /// Per step from the records: 99th percentile, microseconds.
    pub step_p99_us: f64,
    /// Runs per second.
    pub runs_per_s: f64,
    /// The target for this store, microseconds per step.
    pub target_us: f64,
    /// Store writes per transaction (group commit), for SQL stores.
    pub writes_per_commit: Option<f64>,
}

impl BenchRow {
    /// Whether the overhead per step is at or below the target.
    pub fn met(&self) -> bool {
        self.overhead_us <= self.target_us
    }
}

/// The measured rows.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// One per store and scenario.
    pub rows: Vec<BenchRow>,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "workflow engine, no-op in-process steps (overhead/step = wall / steps; p50/p99 per run and per step from the records)"
        )?;
        writeln!(
            f,
            "{:<9} {:<11} {:>6} {:>5} {:>6} {:>12} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9} {:>8}  met",
            "store",
            "scenario",
            "steps",
            "conc",
            "runs",
            "overhead/st",
            "run p50",
            "run p99",
            "step p50",
            "step p99",
            "runs/s",
            "writes/tx",
            "target",
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:<9} {:<11} {:>6} {:>5} {:>6} {:>9.1} us {:>7.1} us {:>7.1} us {:>7.1} us {:>7.1} us {:>9.1} {:>9} {:>5} us  {}",
                r.store,
                r.scenario,
                r.steps_per_run,
                r.concurrency,
                r.runs,
                r.overhead_us,
                r.per_run_p50_us,
                r.per_run_p99_us,
                r.step_p50_us,
                r.step_p99_us,
                r.runs_per_s,
                r.writes_per_commit
                    .map_or("-".to_owned(), |w| format!("{w:.1}")),
                r.target_us,
                if r.met() {
                    "yes".to_owned()
                } else {
                    format!("no ({:.1}x)", r.overhead_us / r.target_us)
                }
            )?;
        }
        Ok(())
    }
}

/// Errors of the benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A run could not be started or read.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A run did not succeed.
    #[error("benchmark run failed: {0}")]
    RunFailed(String),
    /// A store could not be opened (which one, and why).
    #[error("{0}")]
    Open(String),
    /// I/O (temporary folder).
    #[error("benchmark: {0}")]
    Io(#[from] std::io::Error),
}

fn noop_step(id: String, after: Vec<String>) -> StepSpec {
    StepSpec {
        id,
        operation: "noop".into(),
        inputs: BTreeMap::new(),
        params: serde_json::Map::new(),
        demand: Default::default(),
        cost_ms: BTreeMap::new(),
        timeout_ms: None,
        retry: Default::default(),
        idempotent: true,
        when: None,
        after,
        output_bytes: None,
    }
}

/// A chain of `n` no-op steps.
pub fn chain(n: usize) -> WorkflowSpec {
    WorkflowSpec {
        name: format!("chain-{n}"),
        description: None,
        budget_ms: None,
        inputs: Vec::new(),
        output: BTreeMap::new(),
        steps: (0..n)
            .map(|i| {
                let after = if i == 0 {
                    vec![]
                } else {
                    vec![format!("s{}", i - 1)]
                };
                noop_step(format!("s{i}"), after)
            })
            .collect(),
    }
}

/// A source, `width` parallel no-op steps, a sink.
pub fn fan_out(width: usize) -> WorkflowSpec {
    let mut steps = vec![noop_step("src".into(), vec![])];
    steps.extend((0..width).map(|i| noop_step(format!("p{i}"), vec!["src".into()])));
    steps.push(noop_step(
        "sink".into(),
        (0..width).map(|i| format!("p{i}")).collect(),
    ));
    WorkflowSpec {
        name: format!("fan-out-{width}"),
        description: None,
        budget_ms: None,
        inputs: Vec::new(),
        output: BTreeMap::new(),
        steps,
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Per-step latencies of a finished run from its records, microseconds: a step's end minus
/// the latest end among the steps it waited for (the run's start for a source).
fn step_latencies(spec: &WorkflowSpec, preds: &[Vec<usize>], r: &RunRecord) -> Vec<f64> {
    (0..spec.steps.len())
        .filter_map(|i| {
            let end = r.steps[i].finished_at?;
            let from = preds[i]
                .iter()
                .filter_map(|&p| r.steps[p].finished_at)
                .max()
                .unwrap_or(r.started_at);
            Some((end - from).num_nanoseconds()? as f64 / 1000.0)
        })
        .collect()
}

async fn scenario(
    engine: &Engine,
    store: &str,
    name: &str,
    spec: &WorkflowSpec,
    concurrency: usize,
    time: Duration,
    target_us: f64,
) -> Result<BenchRow, BenchError> {
    let n = spec.steps.len();
    let mut preds = vec![Vec::new(); n];
    for (from, to) in step_edges(spec) {
        preds[to].push(from);
    }
    // One warm-up round (connections, allocations).
    engine
        .run(spec, Value::Null, BTreeMap::new())
        .await
        .map_err(BenchError::from)?;
    let mut per_run = Vec::new();
    let mut per_step = Vec::new();
    let mut runs = 0usize;
    let t0 = Instant::now();
    while runs < 3 * concurrency || t0.elapsed() < time {
        let round = futures::future::join_all((0..concurrency).map(|_| async {
            let t = Instant::now();
            let r = engine.run(spec, Value::Null, BTreeMap::new()).await;
            (t.elapsed(), r)
        }))
        .await;
        for (took, r) in round {
            let r = r?;
            if r.status != super::engine::RunStatus::Succeeded {
                return Err(BenchError::RunFailed(r.error.unwrap_or_default()));
            }
            per_run.push(took.as_secs_f64() * 1e6 / n as f64);
            per_step.extend(step_latencies(spec, &preds, &r));
            runs += 1;
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    per_run.sort_by(f64::total_cmp);
    per_step.sort_by(f64::total_cmp);
    Ok(BenchRow {
        store: store.to_owned(),
        scenario: name.to_owned(),
        steps_per_run: n,
        concurrency,
        runs,
        wall_s: wall,
        overhead_us: wall * 1e6 / (runs * n) as f64,
        per_run_p50_us: percentile(&per_run, 0.5),
        per_run_p99_us: percentile(&per_run, 0.99),
        step_p50_us: percentile(&per_step, 0.5),
        step_p99_us: percentile(&per_step, 0.99),
        runs_per_s: runs as f64 / wall,
        target_us,
        writes_per_commit: None,
    })
}

async fn bench_store(
    store: Arc<dyn RunStore>,
    sql: Option<&SqlStore>,
    name: &str,
    target_us: f64,
    o: &BenchOptions,
) -> Result<Vec<BenchRow>, BenchError> {
    let engine = Engine::new(store, Arc::new(NoopExecutor));
    let t = o.scenario_time;
    let shapes = [
        ("chain", chain(o.chain_steps), 1),
        ("fan-out", fan_out(o.fanout_width), 1),
        ("concurrent", chain(o.concurrent_steps), o.concurrency),
    ];
    let mut rows = Vec::new();
    for (label, spec, conc) in shapes {
        let before = sql.map(SqlStore::write_stats);
        let mut row = scenario(&engine, name, label, &spec, conc, t, target_us).await?;
        if let (Some(sql), Some((w0, c0))) = (sql, before) {
            let (w1, c1) = sql.write_stats();
            row.writes_per_commit = Some((w1 - w0) as f64 / (c1 - c0).max(1) as f64);
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Runs the benchmark: memory store, SQLite file, and PostgreSQL when a URL is given.
pub async fn bench_engine(o: &BenchOptions) -> Result<BenchReport, BenchError> {
    let mut rows = Vec::new();
    rows.extend(
        bench_store(
            Arc::new(MemoryStore::new()),
            None,
            "memory",
            TARGET_MEMORY_US,
            o,
        )
        .await?,
    );
    let tmp;
    let dir = match &o.sqlite_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile_dir()?;
            tmp.0.clone()
        }
    };
    let file = dir.join(format!("bench-wf-{}.db", uuid::Uuid::new_v4().simple()));
    let url = format!("sqlite://{}", file.display());
    let sqlite = Arc::new(SqlStore::connect(&url).await?);
    rows.extend(
        bench_store(
            sqlite.clone(),
            Some(&sqlite),
            "sqlite",
            TARGET_DURABLE_US,
            o,
        )
        .await?,
    );
    sqlite.db().close().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
    if let Some(pg) = &o.postgres_url {
        let store =
            Arc::new(SqlStore::connect(pg).await.map_err(|e| {
                BenchError::Open(format!("cannot open the PostgreSQL run store: {e}"))
            })?);
        rows.extend(
            bench_store(
                store.clone(),
                Some(&store),
                "postgres",
                TARGET_DURABLE_US,
                o,
            )
            .await?,
        );
    }
    Ok(BenchReport { rows })
}

/// A temporary folder removed on drop (std only: no dev-dependency at run time).
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempfile_dir() -> Result<TempDir, std::io::Error> {
    let d = std::env::temp_dir().join(format!("netgpt-bench-wf-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d)?;
    Ok(TempDir(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bench_measures_every_scenario_on_memory_and_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let o = BenchOptions {
            chain_steps: 5,
            fanout_width: 4,
            concurrency: 3,
            concurrent_steps: 2,
            scenario_time: Duration::from_millis(1),
            sqlite_dir: Some(dir.path().to_owned()),
            postgres_url: None,
        };
        let report = bench_engine(&o).await.unwrap();
        assert_eq!(report.rows.len(), 6);
        for r in &report.rows {
            assert!(r.runs >= 3 * r.concurrency, "{r:?}");
            assert!(
                r.overhead_us > 0.0 && r.step_p99_us >= r.step_p50_us,
                "{r:?}"
            );
        }
        assert_eq!(report.rows[1].steps_per_run, 6);
        assert!(report.rows[..3]
            .iter()
            .all(|r| r.writes_per_commit.is_none()));
        assert!(report.rows[3..]
            .iter()
            .all(|r| r.writes_per_commit.is_some_and(|w| w >= 1.0)));
        let text = report.to_string();
        assert!(
            text.contains("sqlite") && text.contains("fan-out"),
            "{text}"
        );
    }
}
