//! Where runs and step records are kept: [`MemoryStore`] (tests, benchmarks) and
//! [`SqlStore`] (durable: SQLite file by default, PostgreSQL by URL, through
//! `netgpt_sbi::db`).
//!
//! A write is acknowledged only once it is durable. [`SqlStore`] funnels every write through
//! one writer task that commits all writes queued while the previous commit was in flight
//! as one transaction (group commit): concurrent runs share the cost of a commit, while each
//! step's completion is still durable before anything depending on it starts.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat, Utc};
use futures::future::BoxFuture;
use futures::FutureExt;
use netgpt_sbi::db::{Db, DbError, Migration};
use serde_json::Value;
use sqlx::Row;
use tokio::sync::{mpsc, oneshot};

use super::engine::{RunRecord, RunStatus, RunSummary, StepPlacement, StepRecord, StepStatus};
use super::spec::WorkflowSpec;

/// Errors of a run store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Opening or migrating the database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A query failed.
    #[error("run store: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// A stored value does not parse.
    #[error("run store: stored {what} is corrupt: {reason}")]
    Corrupt {
        /// What was read.
        what: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A write failed in the writer task.
    #[error("run store write failed: {0}")]
    Write(String),
    /// The writer task is gone (runtime shutting down).
    #[error("run store is closed")]
    Closed,
    /// The run is not in the store.
    #[error("unknown run '{0}'")]
    UnknownRun(String),
}

/// A run with what resuming it needs: its workflow and placement.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRun {
    /// The run and its steps.
    pub record: RunRecord,
    /// The workflow it executes.
    pub spec: Arc<WorkflowSpec>,
    /// Step id -> node and device.
    pub placement: BTreeMap<String, StepPlacement>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFinish {
    /// `succeeded` or `failed`.
    pub status: RunStatus,
    /// The output, when succeeded.
    pub output: Option<Value>,
    /// The cause, when failed.
    pub error: Option<String>,
    /// When.
    pub finished_at: DateTime<Utc>,
}

/// Keeps runs and step records. Every write is durable (for the store's kind) when its
/// future resolves `Ok`; the step records of one write are applied atomically, in order.
pub trait RunStore: Send + Sync + 'static {
    /// Records a new run with its steps (all `pending`).
    fn create_run<'a>(&'a self, run: &'a StoredRun) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Replaces the records of these steps of the run.
    fn write_steps<'a>(
        &'a self,
        run_id: &'a str,
        steps: Vec<StepRecord>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Replaces these step records and ends the run, atomically.
    fn finish_run<'a>(
        &'a self,
        run_id: &'a str,
        steps: Vec<StepRecord>,
        finish: RunFinish,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// The run with its steps.
    fn get_run<'a>(
        &'a self,
        run_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<RunRecord>, StoreError>>;
    /// The most recent runs, newest first.
    fn list_runs(&self, limit: usize) -> BoxFuture<'_, Result<Vec<RunSummary>, StoreError>>;
    /// Every run still `running`, oldest first, with its workflow and placement.
    fn unfinished_runs(&self) -> BoxFuture<'_, Result<Vec<StoredRun>, StoreError>>;
}

/// Runs kept in memory: lost with the process.
#[derive(Default)]
pub struct MemoryStore {
    runs: Mutex<MemRuns>,
}

#[derive(Default)]
struct MemRuns {
    next: u64,
    map: HashMap<String, MemRun>,
}

struct MemRun {
    seq: u64,
    stored: StoredRun,
    index: HashMap<String, usize>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn apply(
        &self,
        run_id: &str,
        steps: Vec<StepRecord>,
        finish: Option<RunFinish>,
    ) -> Result<(), StoreError> {
        let mut runs = self.runs.lock().expect("store lock");
        let run = runs
            .map
            .get_mut(run_id)
            .ok_or_else(|| StoreError::UnknownRun(run_id.to_owned()))?;
        for s in steps {
            if let Some(&i) = run.index.get(&s.step_id) {
                run.stored.record.steps[i] = s;
            }
        }
        if let Some(f) = finish {
            let r = &mut run.stored.record;
            r.status = f.status;
            r.output = f.output;
            r.error = f.error;
            r.finished_at = Some(f.finished_at);
        }
        Ok(())
    }
}

impl RunStore for MemoryStore {
    fn create_run<'a>(&'a self, run: &'a StoredRun) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut runs = self.runs.lock().expect("store lock");
        runs.next += 1;
        let seq = runs.next;
        let index = run
            .record
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.step_id.clone(), i))
            .collect();
        runs.map.insert(
            run.record.id.clone(),
            MemRun {
                seq,
                stored: run.clone(),
                index,
            },
        );
        futures::future::ready(Ok(())).boxed()
    }

    fn write_steps<'a>(
        &'a self,
        run_id: &'a str,
        steps: Vec<StepRecord>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        futures::future::ready(self.apply(run_id, steps, None)).boxed()
    }

    fn finish_run<'a>(
        &'a self,
        run_id: &'a str,
        steps: Vec<StepRecord>,
        finish: RunFinish,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        futures::future::ready(self.apply(run_id, steps, Some(finish))).boxed()
    }

    fn get_run<'a>(
        &'a self,
        run_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<RunRecord>, StoreError>> {
        let runs = self.runs.lock().expect("store lock");
        let r = runs.map.get(run_id).map(|r| r.stored.record.clone());
        futures::future::ready(Ok(r)).boxed()
    }

    fn list_runs(&self, limit: usize) -> BoxFuture<'_, Result<Vec<RunSummary>, StoreError>> {
        let runs = self.runs.lock().expect("store lock");
        let mut all: Vec<&MemRun> = runs.map.values().collect();
        all.sort_by_key(|r| std::cmp::Reverse(r.seq));
        let out = all
            .into_iter()
            .take(limit)
            .map(|r| summary(&r.stored.record))
            .collect();
        futures::future::ready(Ok(out)).boxed()
    }

    fn unfinished_runs(&self) -> BoxFuture<'_, Result<Vec<StoredRun>, StoreError>> {
        let runs = self.runs.lock().expect("store lock");
        let mut all: Vec<&MemRun> = runs
            .map
            .values()
            .filter(|r| r.stored.record.status == RunStatus::Running)
            .collect();
        all.sort_by_key(|r| r.seq);
        let out = all.into_iter().map(|r| r.stored.clone()).collect();
        futures::future::ready(Ok(out)).boxed()
    }
}

fn summary(r: &RunRecord) -> RunSummary {
    RunSummary {
        id: r.id.clone(),
        workflow: r.workflow.clone(),
        status: r.status,
        error: r.error.clone(),
        started_at: r.started_at,
        finished_at: r.finished_at,
    }
}

/// The CmP's tables (prefix `cmp_wf_`).
const MIGRATIONS: &[Migration] = &[Migration::new(
    1,
    "workflow runs and step records",
    "CREATE TABLE cmp_wf_runs (
        id TEXT PRIMARY KEY,
        workflow TEXT NOT NULL,
        status TEXT NOT NULL,
        spec TEXT NOT NULL,
        input TEXT NOT NULL,
        placement TEXT NOT NULL,
        output TEXT,
        error TEXT,
        started_at TEXT NOT NULL,
        finished_at TEXT
    );
    CREATE INDEX cmp_wf_runs_status ON cmp_wf_runs (status, started_at);
    CREATE INDEX cmp_wf_runs_started ON cmp_wf_runs (started_at);
    CREATE TABLE cmp_wf_steps (
        run_id TEXT NOT NULL,
        idx BIGINT NOT NULL,
        step_id TEXT NOT NULL,
        node TEXT,
        device TEXT,
        status TEXT NOT NULL,
        attempts BIGINT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        output_bytes BIGINT NOT NULL,
        output TEXT,
        error TEXT,
        PRIMARY KEY (run_id, step_id)
    );",
)];

/// The migrations' owner in `netgpt_migrations`.
const MIGRATION_NF: &str = "cmp";

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 1024;

/// Runs and step records in a SQL database, durable; writes are group-committed.
pub struct SqlStore {
    db: Db,
    writes: mpsc::UnboundedSender<WriteReq>,
    stats: Arc<WriteStats>,
}

/// Counts of the writer task: how well group commit batches.
#[derive(Debug, Default)]
pub struct WriteStats {
    /// Writes acknowledged.
    pub writes: AtomicU64,
    /// Transactions committed.
    pub commits: AtomicU64,
}

enum WriteOp {
    Create(Box<StoredRun>),
    Steps(String, Vec<StepRecord>),
    Finish(String, Vec<StepRecord>, RunFinish),
}

struct WriteReq {
    op: WriteOp,
    done: oneshot::Sender<Result<(), String>>,
}

fn ts(t: &DateTime<Utc>) -> String {
    // Fixed width, so text order is time order.
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_ts(what: &str, s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt {
            what: what.to_owned(),
            reason: e.to_string(),
        })
}

fn parse_json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt {
        what: what.to_owned(),
        reason: e.to_string(),
    })
}

impl SqlStore {
    /// Opens (creating and migrating) the store at `url` (`sqlite://path` or `postgres://`).
    /// Must be called inside a tokio runtime: it starts the writer task there.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let db = netgpt_sbi::db::connect(url).await?;
        Self::open(db).await
    }

    /// The store on an open database (migrated here).
    pub async fn open(db: Db) -> Result<Self, StoreError> {
        db.migrate(MIGRATION_NF, MIGRATIONS).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(WriteStats::default());
        tokio::spawn(writer(db.clone(), rx, stats.clone()));
        Ok(Self {
            db,
            writes: tx,
            stats,
        })
    }

    /// Writes and commits so far: writes / commits is the mean group size.
    pub fn write_stats(&self) -> (u64, u64) {
        (
            self.stats.writes.load(Ordering::Relaxed),
            self.stats.commits.load(Ordering::Relaxed),
        )
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    async fn submit(&self, op: WriteOp) -> Result<(), StoreError> {
        let (done, rx) = oneshot::channel();
        self.writes
            .send(WriteReq { op, done })
            .map_err(|_| StoreError::Closed)?;
        rx.await
            .map_err(|_| StoreError::Closed)?
            .map_err(StoreError::Write)
    }

    async fn load_steps(&self, run_id: &str) -> Result<Vec<StepRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT step_id, node, device, status, attempts, started_at, finished_at,
                    output_bytes, output, error
             FROM cmp_wf_steps WHERE run_id = $1 ORDER BY idx",
        )
        .bind(run_id)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let status: String = r.try_get(3)?;
                let started: Option<String> = r.try_get(5)?;
                let finished: Option<String> = r.try_get(6)?;
                let output: Option<String> = r.try_get(8)?;
                Ok(StepRecord {
                    step_id: r.try_get(0)?,
                    node: r.try_get(1)?,
                    device: r.try_get(2)?,
                    status: StepStatus::parse(&status).ok_or_else(|| StoreError::Corrupt {
                        what: "step status".into(),
                        reason: status.clone(),
                    })?,
                    attempts: r.try_get::<i64, _>(4)? as u32,
                    started_at: started.map(|s| parse_ts("step start", &s)).transpose()?,
                    finished_at: finished.map(|s| parse_ts("step end", &s)).transpose()?,
                    output_bytes: r.try_get::<i64, _>(7)? as u64,
                    output: output.map(|s| parse_json("step output", &s)).transpose()?,
                    error: r.try_get(9)?,
                })
            })
            .collect()
    }

    fn run_from_row(row: &sqlx::any::AnyRow) -> Result<(RunRecord, String, String), StoreError> {
        let status: String = row.try_get("status")?;
        let input: String = row.try_get("input")?;
        let output: Option<String> = row.try_get("output")?;
        let started: String = row.try_get("started_at")?;
        let finished: Option<String> = row.try_get("finished_at")?;
        let record = RunRecord {
            id: row.try_get("id")?,
            workflow: row.try_get("workflow")?,
            status: RunStatus::parse(&status).ok_or_else(|| StoreError::Corrupt {
                what: "run status".into(),
                reason: status.clone(),
            })?,
            input: parse_json("run input", &input)?,
            output: output.map(|s| parse_json("run output", &s)).transpose()?,
            error: row.try_get("error")?,
            started_at: parse_ts("run start", &started)?,
            finished_at: finished.map(|s| parse_ts("run end", &s)).transpose()?,
            steps: Vec::new(),
        };
        Ok((record, row.try_get("spec")?, row.try_get("placement")?))
    }
}

/// The writer task: commits everything queued at once as one transaction.
async fn writer(db: Db, mut rx: mpsc::UnboundedReceiver<WriteReq>, stats: Arc<WriteStats>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(req) => batch.push(req),
                Err(_) => break,
            }
        }
        match commit(&db, batch.iter().map(|r| &r.op)).await {
            Ok(()) => {
                stats.commits.fetch_add(1, Ordering::Relaxed);
                stats
                    .writes
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                for req in batch {
                    let _ = req.done.send(Ok(()));
                }
            }
            Err(_) if batch.len() > 1 => {
                // One bad write must not fail its neighbours: redo them one by one.
                for req in batch {
                    let result = commit(&db, std::iter::once(&req.op))
                        .await
                        .map_err(|e| e.to_string());
                    let _ = req.done.send(result);
                }
            }
            Err(e) => {
                for req in batch {
                    let _ = req.done.send(Err(e.to_string()));
                }
            }
        }
    }
}

/// Columns of a step row, in the order [`upsert_steps`] binds them.
const STEP_COLUMNS: usize = 12;

/// Most step rows bound per statement (well under SQLite's 32766 and PostgreSQL's 65535
/// parameters); a power of two.
const STEP_ROWS_PER_STATEMENT: usize = 256;

/// Applies a batch of writes as one transaction. The step rows of the whole batch go out in
/// a few multi-row upserts (the last write of a step winning), so the cost of a commit hardly
/// grows with the number of runs sharing it.
async fn commit<'a>(db: &Db, ops: impl Iterator<Item = &'a WriteOp>) -> Result<(), sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    let mut rows: Vec<StepRow<'a>> = Vec::new();
    let mut at: HashMap<(&'a str, &'a str), usize> = HashMap::new();
    let mut row = |run_id: &'a str, idx: Option<usize>, s: &'a StepRecord| match at
        .get(&(run_id, s.step_id.as_str()))
    {
        Some(&p) => {
            let idx = rows[p].idx.or(idx);
            rows[p] = StepRow { run_id, idx, s };
        }
        None => {
            at.insert((run_id, s.step_id.as_str()), rows.len());
            rows.push(StepRow { run_id, idx, s });
        }
    };
    let mut finished = Vec::new();
    for op in ops {
        match op {
            WriteOp::Create(run) => {
                let r = &run.record;
                sqlx::query(
                    "INSERT INTO cmp_wf_runs (id, workflow, status, spec, input, placement, output, error, started_at, finished_at)
                     VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, $7, NULL)",
                )
                .bind(&r.id)
                .bind(&r.workflow)
                .bind(r.status.as_str())
                .bind(json(run.spec.as_ref()))
                .bind(json(&r.input))
                .bind(json(&run.placement))
                .bind(ts(&r.started_at))
                .execute(&mut *tx)
                .await?;
                for (i, s) in r.steps.iter().enumerate() {
                    row(&r.id, Some(i), s);
                }
            }
            WriteOp::Steps(run_id, steps) => {
                for s in steps {
                    row(run_id, None, s);
                }
            }
            WriteOp::Finish(run_id, steps, f) => {
                for s in steps {
                    row(run_id, None, s);
                }
                finished.push((run_id, f));
            }
        }
    }
    // Chunks of power-of-two sizes: few distinct statements, all in the statement cache.
    let mut rest = &rows[..];
    while !rest.is_empty() {
        let n = rest.len().min(STEP_ROWS_PER_STATEMENT);
        let n = 1 << (usize::BITS - 1 - n.leading_zeros());
        upsert_steps(&mut tx, &rest[..n]).await?;
        rest = &rest[n..];
    }
    for (run_id, f) in finished {
        sqlx::query(
            "UPDATE cmp_wf_runs SET status = $1, output = $2, error = $3, finished_at = $4 WHERE id = $5",
        )
        .bind(f.status.as_str())
        .bind(f.output.as_ref().map(|v| v.to_string()))
        .bind(f.error.clone())
        .bind(ts(&f.finished_at))
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// One step row to write; `idx` (the step's position in its workflow) is known when the
/// run is created, and left as it is by later writes.
struct StepRow<'a> {
    run_id: &'a str,
    idx: Option<usize>,
    s: &'a StepRecord,
}

async fn upsert_steps(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    rows: &[StepRow<'_>],
) -> Result<(), sqlx::Error> {
    let mut sql = String::from(
        "INSERT INTO cmp_wf_steps (run_id, idx, step_id, node, device, status, attempts, started_at, finished_at, output_bytes, output, error) VALUES ",
    );
    for i in 0..rows.len() {
        sql.push_str(if i == 0 { "(" } else { ", (" });
        for c in 0..STEP_COLUMNS {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", i * STEP_COLUMNS + c + 1));
        }
        sql.push(')');
    }
    sql.push_str(
        " ON CONFLICT (run_id, step_id) DO UPDATE SET node = excluded.node, device = excluded.device,
          status = excluded.status, attempts = excluded.attempts, started_at = excluded.started_at,
          finished_at = excluded.finished_at, output_bytes = excluded.output_bytes,
          output = excluded.output, error = excluded.error",
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for r in rows {
        let s = r.s;
        q = q
            .bind(r.run_id)
            // An update never creates a row (the run's rows exist from its creation).
            .bind(r.idx.map_or(-1, |i| i as i64))
            .bind(&s.step_id)
            .bind(s.node.clone())
            .bind(s.device.clone())
            .bind(s.status.as_str())
            .bind(s.attempts as i64)
            .bind(s.started_at.as_ref().map(ts))
            .bind(s.finished_at.as_ref().map(ts))
            .bind(s.output_bytes as i64)
            .bind(s.output.as_ref().map(|v| v.to_string()))
            .bind(s.error.clone());
    }
    q.execute(&mut **tx).await.map(|_| ())
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

impl RunStore for SqlStore {
    fn create_run<'a>(&'a self, run: &'a StoredRun) -> BoxFuture<'a, Result<(), StoreError>> {
        self.submit(WriteOp::Create(Box::new(run.clone()))).boxed()
    }

    fn write_steps<'a>(
        &'a self,
        run_id: &'a str,
        steps: Vec<StepRecord>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.submit(WriteOp::Steps(run_id.to_owned(), steps))
            .boxed()
    }

    fn finish_run<'a>(
        &'a self,
        run_id: &'a str,
        steps: Vec<StepRecord>,
        finish: RunFinish,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.submit(WriteOp::Finish(run_id.to_owned(), steps, finish))
            .boxed()
    }

    fn get_run<'a>(
        &'a self,
        run_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<RunRecord>, StoreError>> {
        async move {
            let Some(row) = sqlx::query("SELECT * FROM cmp_wf_runs WHERE id = $1")
                .bind(run_id)
                .fetch_optional(self.db.pool())
                .await?
            else {
                return Ok(None);
            };
            let (mut record, _, _) = Self::run_from_row(&row)?;
            record.steps = self.load_steps(run_id).await?;
            Ok(Some(record))
        }
        .boxed()
    }

    fn list_runs(&self, limit: usize) -> BoxFuture<'_, Result<Vec<RunSummary>, StoreError>> {
        async move {
            let rows = sqlx::query(
                "SELECT id, workflow, status, spec, input, placement, output, error, started_at, finished_at
                 FROM cmp_wf_runs ORDER BY started_at DESC, id LIMIT $1",
            )
            .bind(limit.min(i64::MAX as usize) as i64)
            .fetch_all(self.db.pool())
            .await?;
            rows.iter()
                .map(|row| Self::run_from_row(row).map(|(r, _, _)| summary(&r)))
                .collect()
        }
        .boxed()
    }

    fn unfinished_runs(&self) -> BoxFuture<'_, Result<Vec<StoredRun>, StoreError>> {
        async move {
            let rows = sqlx::query(
                "SELECT * FROM cmp_wf_runs WHERE status = 'running' ORDER BY started_at, id",
            )
            .fetch_all(self.db.pool())
            .await?;
            let mut out = Vec::new();
            for row in &rows {
                let (mut record, spec, placement) = Self::run_from_row(row)?;
                record.steps = self.load_steps(&record.id).await?;
                out.push(StoredRun {
                    record,
                    spec: Arc::new(parse_json("workflow spec", &spec)?),
                    placement: parse_json("placement", &placement)?,
                });
            }
            Ok(out)
        }
        .boxed()
    }
}
