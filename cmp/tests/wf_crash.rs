//! Crash test of the durable workflow engine: a CmP worker process is killed (SIGKILL) in
//! the middle of a run, a second one resumes it, and no completed step is executed again.
//!
//! The test binary re-executes itself as the worker (`current_exe() --exact
//! crash_worker_process --nocapture` with `NETGPT_WF_CRASH_ROLE` set): the worker opens the
//! run store, runs or resumes the workflow, and its executor appends one line per execution
//! (`run step attempt`) to a log file the parent reads afterwards.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;
use netgpt_cmp::wf::engine::OUTCOME_UNKNOWN;
use netgpt_cmp::wf::{
    parse_workflow, Engine, RunRecord, RunStatus, RunStore, SqlStore, StepCall, StepError,
    StepExecutor, StepStatus,
};
use serde_json::{json, Value};

const ROLE_ENV: &str = "NETGPT_WF_CRASH_ROLE";
const DB_ENV: &str = "NETGPT_WF_CRASH_DB";
const LOG_ENV: &str = "NETGPT_WF_CRASH_LOG";
const IDEMPOTENT_ENV: &str = "NETGPT_WF_CRASH_IDEMPOTENT";

/// `a` feeds two parallel branches, `fast` and `slow`; `join` waits for both, then `last`.
/// `slow` is the step in flight when the worker is killed.
fn workflow(idempotent: bool) -> String {
    format!(
        r#"
name: crash
steps:
  - {{ id: a, operation: work, params: {{ ms: 100 }} }}
  - {{ id: fast, operation: work, params: {{ ms: 100 }}, inputs: {{ from: $steps.a.output.step }} }}
  - {{ id: slow, operation: work, params: {{ ms: 3500 }}, inputs: {{ from: $steps.a.output.step }}, idempotent: {idempotent} }}
  - {{ id: join, operation: work, params: {{ ms: 50 }}, inputs: {{ l: $steps.fast.output.step, r: $steps.slow.output.step }} }}
  - {{ id: last, operation: work, params: {{ ms: 50 }}, inputs: {{ j: $steps.join.output.step }} }}
"#
    )
}

/// Sleeps `input.ms`, logging the execution first.
struct LoggingWork {
    log: PathBuf,
}

impl StepExecutor for LoggingWork {
    fn execute(&self, call: StepCall) -> BoxFuture<'static, Result<Value, StepError>> {
        let log = self.log.clone();
        async move {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .map_err(|e| StepError::Fatal(e.to_string()))?;
            writeln!(f, "{} {} {}", call.run_id, call.step_id, call.attempt)
                .map_err(|e| StepError::Fatal(e.to_string()))?;
            drop(f);
            let ms = call.input["ms"].as_u64().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(json!({"step": call.step_id, "attempt": call.attempt}))
        }
        .boxed()
    }
}

/// The worker: does nothing unless started by [`crash_and_resume`] with the role set.
#[test]
fn crash_worker_process() {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        return;
    };
    let url = std::env::var(DB_ENV).unwrap();
    let log = PathBuf::from(std::env::var(LOG_ENV).unwrap());
    let idempotent = std::env::var(IDEMPOTENT_ENV).unwrap() == "1";
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let store = Arc::new(SqlStore::connect(&url).await.unwrap());
        let engine = Engine::new(store, Arc::new(LoggingWork { log }));
        match role.as_str() {
            "start" => {
                let spec = parse_workflow(&workflow(idempotent)).unwrap();
                let id = engine
                    .start_run(&spec, json!({}), BTreeMap::new())
                    .await
                    .unwrap();
                engine.wait(&id).await.unwrap();
                panic!("the run finished before the worker was killed");
            }
            "resume" => {
                let ids = engine.resume_unfinished().await.unwrap();
                assert_eq!(ids.len(), 1, "one unfinished run to resume");
                engine.wait(&ids[0]).await.unwrap();
            }
            other => panic!("unknown role {other}"),
        }
    });
}

fn worker(role: &str, url: &str, log: &Path, idempotent: bool) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_worker_process", "--nocapture"])
        .env(ROLE_ENV, role)
        .env(DB_ENV, url)
        .env(LOG_ENV, log)
        .env(IDEMPOTENT_ENV, if idempotent { "1" } else { "0" })
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

async fn the_run(store: &SqlStore) -> Option<RunRecord> {
    let runs = store.list_runs(2).await.unwrap();
    assert!(runs.len() <= 1, "one run expected");
    let id = &runs.first()?.id;
    store.get_run(id).await.unwrap()
}

fn status(r: &RunRecord, step: &str) -> StepStatus {
    r.steps.iter().find(|s| s.step_id == step).unwrap().status
}

/// Executions logged, as (step, attempt), in order.
fn executions(log: &Path) -> Vec<(String, u32)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            (parts[1].to_owned(), parts[2].parse().unwrap())
        })
        .collect()
}

async fn crash_and_resume(url: &str, dir: &Path, idempotent: bool) {
    let log = dir.join(format!("executions-{}.log", uuid::Uuid::new_v4().simple()));
    let store = SqlStore::connect(url).await.unwrap();

    // 1. A worker starts the run; kill it once `fast` completed while `slow` is in flight.
    let mut first = worker("start", url, &log, idempotent);
    let t0 = Instant::now();
    loop {
        if let Some(r) = the_run(&store).await {
            if status(&r, "fast") == StepStatus::Succeeded {
                break;
            }
        }
        assert!(
            first.try_wait().unwrap().is_none(),
            "the worker exited before the kill"
        );
        assert!(t0.elapsed() < Duration::from_secs(60), "no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();

    let at_kill = the_run(&store).await.unwrap();
    assert_eq!(at_kill.status, RunStatus::Running);
    assert_eq!(status(&at_kill, "a"), StepStatus::Succeeded);
    assert_eq!(status(&at_kill, "fast"), StepStatus::Succeeded);
    assert_eq!(status(&at_kill, "slow"), StepStatus::Running, "{at_kill:?}");
    assert_eq!(status(&at_kill, "join"), StepStatus::Pending);
    let before = executions(&log);
    let mut sorted = before.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            ("a".to_owned(), 1),
            ("fast".to_owned(), 1),
            ("slow".to_owned(), 1)
        ]
    );

    // 2. A new worker resumes it.
    let mut second = worker("resume", url, &log, idempotent);
    let t0 = Instant::now();
    let code = loop {
        if let Some(code) = second.try_wait().unwrap() {
            break code;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            second.kill().unwrap();
            panic!("the resuming worker did not finish");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(code.success(), "resuming worker failed: {code}");

    let done = the_run(&store).await.unwrap();
    let mut after = executions(&log);
    after.sort();
    if idempotent {
        assert_eq!(done.status, RunStatus::Succeeded, "{done:?}");
        assert!(done.steps.iter().all(|s| s.status == StepStatus::Succeeded));
        // Completed steps ran once; the in-flight idempotent step ran again as attempt 2.
        let want: Vec<(String, u32)> = [
            ("a", 1),
            ("fast", 1),
            ("join", 1),
            ("last", 1),
            ("slow", 1),
            ("slow", 2),
        ]
        .iter()
        .map(|(s, a)| (s.to_string(), *a))
        .collect();
        assert_eq!(after, want, "{url}");
        let slow = done.steps.iter().find(|s| s.step_id == "slow").unwrap();
        assert_eq!(slow.attempts, 2);
        assert_eq!(done.output, Some(json!({"step": "last", "attempt": 1})));
    } else {
        assert_eq!(done.status, RunStatus::Failed, "{done:?}");
        assert_eq!(
            done.error.as_deref(),
            Some(format!("step 'slow': {OUTCOME_UNKNOWN}").as_str())
        );
        assert_eq!(status(&done, "slow"), StepStatus::Failed);
        assert_eq!(status(&done, "join"), StepStatus::Pending);
        // Nothing executed after the restart.
        assert_eq!(after, sorted, "{url}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_cmp_resumes_without_repeating_completed_steps() {
    let dir = tempfile::tempdir().unwrap();
    for url in netgpt_sbi::db::test_database_urls(dir.path())
        .await
        .unwrap()
    {
        crash_and_resume(&url, dir.path(), true).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_cmp_fails_a_non_idempotent_step_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    for url in netgpt_sbi::db::test_database_urls(dir.path())
        .await
        .unwrap()
    {
        crash_and_resume(&url, dir.path(), false).await;
    }
}
