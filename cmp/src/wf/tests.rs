//! Tests of the workflow spec, the engine (with an in-process test executor) and the stores
//! (SQLite always, PostgreSQL when `NETGPT_TEST_POSTGRES_URL` is set).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{json, Value};

use super::engine::OUTCOME_UNKNOWN;
use super::spec::*;
use super::store::{RunFinish, StoredRun};
use super::*;

/// Operations of the test executor: `echo` (returns its input), `fail` (retryable error
/// while `attempt <= input.failures`, then its input), `fatal`, `sleep` (input.ms, then its
/// input). Every call is logged with its start and end.
#[derive(Default)]
struct TestExec {
    log: Mutex<Vec<Call>>,
}

#[derive(Debug, Clone)]
struct Call {
    step: String,
    attempt: u32,
    input: Value,
    start: Instant,
    end: Option<Instant>,
}

impl TestExec {
    fn calls(&self, step: &str) -> Vec<Call> {
        let log = self.log.lock().unwrap();
        log.iter().filter(|c| c.step == step).cloned().collect()
    }
}

impl StepExecutor for Arc<TestExec> {
    fn execute(&self, call: StepCall) -> BoxFuture<'static, Result<Value, StepError>> {
        let me = self.clone();
        async move {
            let idx = {
                let mut log = me.log.lock().unwrap();
                log.push(Call {
                    step: call.step_id.clone(),
                    attempt: call.attempt,
                    input: call.input.clone(),
                    start: Instant::now(),
                    end: None,
                });
                log.len() - 1
            };
            let result = match call.operation.as_str() {
                "echo" => Ok(call.input.clone()),
                "fail" => {
                    let failures = call.input["failures"].as_u64().unwrap_or(0) as u32;
                    if call.attempt <= failures {
                        Err(StepError::Retryable(format!(
                            "flaky, attempt {}",
                            call.attempt
                        )))
                    } else {
                        Ok(call.input.clone())
                    }
                }
                "fatal" => Err(StepError::Fatal("bad request".into())),
                "sleep" => {
                    let ms = call.input["ms"].as_u64().unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok(call.input.clone())
                }
                other => Err(StepError::Fatal(format!("no operation {other}"))),
            };
            me.log.lock().unwrap()[idx].end = Some(Instant::now());
            result
        }
        .boxed()
    }
}

struct Ops(&'static [&'static str]);

impl OperationCatalog for Ops {
    fn contains(&self, operation: &str) -> bool {
        self.0.contains(&operation)
    }
    fn required_inputs(&self, operation: &str) -> Vec<String> {
        if operation == "cloud.generate" {
            vec!["prompt".into()]
        } else {
            Vec::new()
        }
    }
}

const OPS: Ops = Ops(&["echo", "fail", "fatal", "sleep", "cloud.generate"]);

fn spec(yaml: &str) -> WorkflowSpec {
    let s = parse_workflow(yaml).unwrap_or_else(|e| panic!("{e}"));
    validate(&s, &OPS).unwrap_or_else(|e| panic!("{e}"));
    s
}

fn errors(yaml: &str) -> Vec<String> {
    let s = parse_workflow(yaml).unwrap_or_else(|e| panic!("{e}"));
    match validate(&s, &OPS) {
        Ok(()) => panic!("workflow accepted"),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

fn mem_engine() -> (Engine, Arc<TestExec>) {
    let exec = Arc::new(TestExec::default());
    let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(exec.clone()));
    (engine, exec)
}

fn step<'a>(r: &'a RunRecord, id: &str) -> &'a StepRecord {
    r.steps.iter().find(|s| s.step_id == id).unwrap()
}

// ---- spec ----

const ANSWER: &str = r#"
name: answer
description: edge first, the cloud only when the edge could not answer
budgetMs: 5000
inputs: [prompt]
steps:
  - id: edge
    operation: echo
    inputs: { prompt: $input.prompt }
    params: { answeredAtEdge: false, text: null }
    costMs: { cpu: 20, gpu: 5 }
    demand: { units: 2, memoryMb: 512 }
  - id: cloud
    operation: echo
    inputs: { prompt: "$steps.edge.output.prompt" }
    params: { text: "from the cloud" }
    when: $steps.edge.output.answeredAtEdge != true
    retry: { limit: 2, backoffMs: 10, factor: 2 }
    timeoutMs: 1000
    idempotent: true
  - id: reply
    operation: echo
    inputs: { edge: $steps.edge.output.text, cloud: $steps.cloud.output.text }
"#;

#[test]
fn yaml_and_json_parse_to_the_same_workflow() {
    let y = spec(ANSWER);
    let j = parse_workflow(&serde_json::to_string_pretty(&y).unwrap()).unwrap();
    assert_eq!(y, j);
    assert_eq!(y.steps[0].demand.memory_mb, 512);
    assert_eq!(y.steps[0].cost_ms.len(), 2);
    assert_eq!(y.steps[1].retry.limit, 2);
    assert!(y.steps[1].idempotent);
    // Defaults.
    assert_eq!(y.steps[2].demand.units, 1);
    assert_eq!(y.steps[2].retry.limit, 0);
    let mut edges = step_edges(&y);
    edges.sort();
    assert_eq!(edges, vec![(0, 1), (0, 2), (1, 2)]);
}

#[test]
fn unknown_fields_are_refused_with_their_path() {
    let e = parse_workflow("name: x\nsteps:\n  - id: a\n    operation: echo\n    retries: 3\n")
        .unwrap_err();
    assert_eq!(e.0[0].field, "steps[0].retries", "{e}");
    assert!(e.0[0].reason.starts_with("unknown field `retries`"), "{e}");
    let e = parse_workflow(r#"{"name": "x", "steps": [{"id": "a", "operation": 3}]}"#).unwrap_err();
    assert_eq!(e.0[0].field, "steps[0].operation", "{e}");
}

#[test]
fn validation_names_step_and_field_for_each_class() {
    let e = errors(
        r#"
name: bad
budgetMs: 0
inputs: [prompt]
steps:
  - id: a
    operation: nope
  - id: a
    operation: echo
  - id: c
    operation: echo
    inputs: { p: $steps.foo.output, q: "$stepz.a", r: $input.query, s: $steps.c.output }
    when: $steps.a.output.x === 1
    after: [zzz]
    timeoutMs: 0
    retry: { factor: 0.5 }
    demand: { units: 0 }
    costMs: { gpu: -1 }
  - id: d
    operation: cloud.generate
"#,
    );
    let want = [
        "budgetMs: must be positive",
        "steps[0].operation: unknown operation 'nope'",
        "steps[1].id: duplicate step id 'a' (first at steps[0])",
        "steps[2].inputs.p: reference to unknown step 'foo'",
        "steps[2].inputs.q: bad reference '$stepz.a'",
        "steps[2].inputs.r: run input field 'query' is not declared",
        "steps[2].inputs.s: step 'c' refers to its own output",
        "steps[2].when: bad condition",
        "steps[2].after[0]: unknown step 'zzz'",
        "steps[2].timeoutMs: must be positive",
        "steps[2].retry.factor: must be a finite number >= 1",
        "steps[2].demand.units: must be at least 1",
        "steps[2].costMs.gpu: must be a finite number >= 0",
        "steps[3].inputs.prompt: missing input 'prompt' required by 'cloud.generate'",
    ];
    for w in want {
        assert!(e.iter().any(|x| x.starts_with(w)), "no '{w}' in {e:#?}");
    }
    assert_eq!(e.len(), want.len(), "{e:#?}");
}

#[test]
fn a_cycle_is_reported_with_its_steps() {
    let e = errors(
        r#"
name: loop
steps:
  - { id: start, operation: echo }
  - { id: a, operation: echo, inputs: { x: $steps.c.output }, after: [start] }
  - { id: b, operation: echo, inputs: { x: $steps.a.output.y } }
  - { id: c, operation: echo, when: "exists $steps.b.output" }
"#,
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("cycle: a -> b -> c -> a"), "{e:?}");
    assert!(e[0].starts_with("steps[1]:"), "{e:?}");
}

#[test]
fn conditions_parse_and_evaluate() {
    let doc = json!({"n": 1, "s": "yes", "t": true, "list": [{"k": 5}], "z": null});
    let eval = |c: &str| {
        let c = parse_condition(c).unwrap_or_else(|e| panic!("{c}: {e}"));
        c.eval(&|r| match r {
            ValueRef::Input(p) => lookup(&doc, p).cloned().unwrap_or(Value::Null),
            ValueRef::Step { .. } => Value::Null,
        })
    };
    assert!(eval("$input.n == 1.0"));
    assert!(eval("$input.s == 'yes'"));
    assert!(eval("$input.s != \"no\""));
    assert!(eval("$input.t"));
    assert!(!eval("not $input.t"));
    assert!(eval("exists $input.list.0.k"));
    assert!(eval("$input.list[0].k == 5"));
    assert!(!eval("exists $input.z"));
    assert!(!eval("exists $input.missing"));
    assert!(eval("$input.missing == null"));
    assert!(eval("$input.n == 2 or $input.t and not false"));
    assert!(!eval("$input.n == 1 and false"));
    assert!(eval("true"));
    for bad in [
        "",
        "$input.n ==",
        "exists 3",
        "$input.n = 1",
        "foo",
        "'open",
        "a and",
    ] {
        assert!(parse_condition(bad).is_err(), "accepted '{bad}'");
    }
}

#[test]
fn references_parse_paths_with_indices_and_escapes() {
    assert_eq!(
        parse_input("$steps.gen.output.choices[0].text").unwrap(),
        InputValue::Ref(ValueRef::Step {
            step: "gen".into(),
            path: vec![
                PathSeg::Key("choices".into()),
                PathSeg::Index(0),
                PathSeg::Key("text".into())
            ],
        })
    );
    assert_eq!(
        parse_input("$input").unwrap(),
        InputValue::Ref(ValueRef::Input(vec![]))
    );
    assert_eq!(
        parse_input("$$5").unwrap(),
        InputValue::Literal("$5".into())
    );
    assert_eq!(
        parse_input("plain").unwrap(),
        InputValue::Literal("plain".into())
    );
    for bad in [
        "$inputx",
        "$steps.a",
        "$steps.a.out",
        "$input.a..b",
        "$input.a[x]",
    ] {
        assert!(parse_input(bad).is_err(), "accepted '{bad}'");
    }
    let doc = json!({"a": [10, {"b": 2}]});
    let InputValue::Ref(ValueRef::Input(p)) = parse_input("$input.a.1.b").unwrap() else {
        unreachable!()
    };
    assert_eq!(lookup(&doc, &p), Some(&json!(2)));
}

#[test]
fn backoff_grows_by_the_factor() {
    let p = RetryPolicy {
        limit: 3,
        backoff_ms: 10,
        factor: 3.0,
    };
    assert_eq!(p.backoff(2), Duration::from_millis(10));
    assert_eq!(p.backoff(3), Duration::from_millis(30));
    assert_eq!(p.backoff(4), Duration::from_millis(90));
}

// ---- engine ----

#[tokio::test]
async fn data_flows_along_the_dag_and_a_false_condition_skips() {
    let (engine, exec) = mem_engine();
    let s = spec(ANSWER);
    let mut placement = BTreeMap::new();
    placement.insert(
        "edge".to_owned(),
        StepPlacement {
            node: "london".into(),
            device: "london-gpu0".into(),
        },
    );
    let r = engine
        .run(&s, json!({"prompt": "hi"}), placement)
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    // The edge did not answer: the cloud ran, with the edge's prompt.
    assert_eq!(exec.calls("cloud")[0].input["prompt"], "hi");
    assert_eq!(
        r.output,
        Some(json!({"edge": null, "cloud": "from the cloud"}))
    );
    let edge = step(&r, "edge");
    assert_eq!(edge.node.as_deref(), Some("london"));
    assert_eq!(edge.device.as_deref(), Some("london-gpu0"));
    assert_eq!(edge.attempts, 1);
    assert!(edge.output_bytes > 10);
    assert!(edge.started_at.unwrap() <= edge.finished_at.unwrap());

    // Now the edge answers: the cloud step is skipped and its output reads as null.
    let mut s2 = s.clone();
    s2.steps[0]
        .params
        .insert("answeredAtEdge".into(), json!(true));
    s2.steps[0].params.insert("text".into(), json!("edge text"));
    let r = engine
        .run(&s2, json!({"prompt": "hi"}), BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::Succeeded);
    assert_eq!(step(&r, "cloud").status, StepStatus::Skipped);
    assert_eq!(step(&r, "cloud").attempts, 0);
    assert_eq!(exec.calls("cloud").len(), 1, "cloud executed again");
    assert_eq!(r.output, Some(json!({"edge": "edge text", "cloud": null})));
}

#[tokio::test]
async fn run_output_map_and_input_checks() {
    let (engine, _) = mem_engine();
    let mut s = spec(ANSWER);
    s.output
        .insert("answer".into(), "$steps.cloud.output.text".into());
    s.output.insert("asked".into(), "$input.prompt".into());
    let r = engine
        .run(&s, json!({"prompt": "p"}), BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(
        r.output,
        Some(json!({"answer": "from the cloud", "asked": "p"}))
    );

    let e = engine
        .run(&s, json!({"query": "p"}), BTreeMap::new())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("missing field(s) prompt"), "{e}");

    // A referenced field absent at run time fails the referring step.
    let s = spec(
        "name: x\nsteps:\n  - { id: a, operation: echo }\n  - { id: b, operation: echo, inputs: { v: $steps.a.output.nothing } }\n",
    );
    let r = engine.run(&s, json!({}), BTreeMap::new()).await.unwrap();
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(step(&r, "b").status, StepStatus::Failed);
    assert!(
        r.error
            .as_deref()
            .unwrap()
            .contains("input 'v': $steps.a.output.nothing is absent"),
        "{r:?}"
    );
}

#[tokio::test]
async fn retryable_errors_are_retried_with_backoff() {
    let (engine, exec) = mem_engine();
    let s = spec(
        "name: r\nsteps:\n  - { id: a, operation: fail, params: { failures: 2 }, retry: { limit: 2, backoffMs: 30, factor: 2 } }\n",
    );
    let r = engine.run(&s, json!({}), BTreeMap::new()).await.unwrap();
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    assert_eq!(step(&r, "a").attempts, 3);
    let calls = exec.calls("a");
    assert_eq!(
        calls.iter().map(|c| c.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    // The waits between attempts are at least the backoff: 30 ms, then 60 ms.
    assert!(calls[1].start - calls[0].end.unwrap() >= Duration::from_millis(30));
    assert!(calls[2].start - calls[1].end.unwrap() >= Duration::from_millis(60));

    // One failure more than the limit allows fails the step and the run.
    let s = spec(
        "name: r\nsteps:\n  - { id: a, operation: fail, params: { failures: 5 }, retry: { limit: 1, backoffMs: 1 } }\n",
    );
    let r = engine.run(&s, json!({}), BTreeMap::new()).await.unwrap();
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(step(&r, "a").attempts, 2);
    assert_eq!(
        r.error.as_deref(),
        Some("step 'a' failed: flaky, attempt 2 (after 2 attempts)")
    );
}

#[tokio::test]
async fn fatal_errors_are_not_retried_and_abort_the_run() {
    let (engine, exec) = mem_engine();
    let s = spec(
        r#"
name: f
steps:
  - { id: bad, operation: fatal, retry: { limit: 5, backoffMs: 1 } }
  - { id: slow, operation: sleep, params: { ms: 5000 } }
  - { id: after, operation: echo, after: [bad, slow] }
"#,
    );
    let r = engine.run(&s, json!({}), BTreeMap::new()).await.unwrap();
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(r.error.as_deref(), Some("step 'bad' failed: bad request"));
    assert_eq!(exec.calls("bad").len(), 1);
    let slow = step(&r, "slow");
    assert_eq!(slow.status, StepStatus::Failed);
    assert!(
        slow.error.as_deref().unwrap().starts_with("aborted:"),
        "{slow:?}"
    );
    assert_eq!(step(&r, "after").status, StepStatus::Pending);
    assert!(exec.calls("after").is_empty());
}

#[tokio::test]
async fn timeouts_are_enforced_and_retried() {
    let (engine, exec) = mem_engine();
    let s = spec(
        "name: t\nsteps:\n  - { id: a, operation: sleep, params: { ms: 10000 }, timeoutMs: 50, retry: { limit: 1, backoffMs: 1 } }\n",
    );
    let t0 = Instant::now();
    let r = engine.run(&s, json!({}), BTreeMap::new()).await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(exec.calls("a").len(), 2);
    assert_eq!(
        r.error.as_deref(),
        Some("step 'a' failed: attempt 2 timed out after 50 ms (after 2 attempts)")
    );
}

#[tokio::test]
async fn parallel_branches_overlap() {
    let (engine, exec) = mem_engine();
    let s = spec(
        r#"
name: p
steps:
  - { id: src, operation: echo }
  - { id: left, operation: sleep, params: { ms: 200 }, after: [src] }
  - { id: right, operation: sleep, params: { ms: 200 }, after: [src] }
  - { id: join, operation: echo, inputs: { l: $steps.left.output.ms, r: $steps.right.output.ms } }
"#,
    );
    let r = engine.run(&s, json!({}), BTreeMap::new()).await.unwrap();
    assert_eq!(r.status, RunStatus::Succeeded);
    let (l, rt) = (&exec.calls("left")[0], &exec.calls("right")[0]);
    // Each started before the other ended.
    assert!(
        l.start < rt.end.unwrap() && rt.start < l.end.unwrap(),
        "{l:?} {rt:?}"
    );
    let j = &exec.calls("join")[0];
    assert!(j.start >= l.end.unwrap() && j.start >= rt.end.unwrap());
    assert_eq!(r.output, Some(json!({"l": 200, "r": 200})));
}

#[tokio::test]
async fn an_exceeded_budget_fails_the_run() {
    let (engine, _) = mem_engine();
    let s = spec(
        "name: b\nbudgetMs: 300\nsteps:\n  - { id: a, operation: echo }\n  - { id: slow, operation: sleep, params: { ms: 10000 }, after: [a] }\n",
    );
    let r = engine.run(&s, json!({}), BTreeMap::new()).await.unwrap();
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(
        r.error.as_deref(),
        Some("run latency budget of 300 ms exceeded")
    );
    assert_eq!(step(&r, "a").status, StepStatus::Succeeded);
    assert_eq!(step(&r, "slow").status, StepStatus::Failed);
}

#[tokio::test]
async fn runs_are_listed_newest_first_and_wait_on_unknown_fails() {
    let (engine, _) = mem_engine();
    let s = spec("name: one\nsteps:\n  - { id: a, operation: echo }\n");
    let first = engine.run(&s, json!({}), BTreeMap::new()).await.unwrap();
    let second = engine.run(&s, json!({}), BTreeMap::new()).await.unwrap();
    let list = engine.list_runs(10).await.unwrap();
    assert_eq!(
        list.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [second.id.as_str(), first.id.as_str()]
    );
    assert!(matches!(
        engine.wait("nope").await,
        Err(EngineError::UnknownRun(_))
    ));
}

// ---- stores ----

async fn sql_stores(dir: &std::path::Path) -> Vec<(String, Arc<SqlStore>)> {
    let mut out = Vec::new();
    for url in netgpt_sbi::db::test_database_urls(dir).await.unwrap() {
        out.push((
            url.clone(),
            Arc::new(SqlStore::connect(&url).await.unwrap()),
        ));
    }
    out
}

#[tokio::test]
async fn sql_store_round_trips_runs_and_steps() {
    let dir = tempfile::tempdir().unwrap();
    for (url, store) in sql_stores(dir.path()).await {
        let exec = Arc::new(TestExec::default());
        let engine = Engine::new(store.clone(), Arc::new(exec.clone()));
        let s = spec(ANSWER);
        let mut placement = BTreeMap::new();
        placement.insert(
            "cloud".to_owned(),
            StepPlacement {
                node: "cloud".into(),
                device: "cloud-gpu0".into(),
            },
        );
        let r = engine
            .run(&s, json!({"prompt": "hé"}), placement)
            .await
            .unwrap();
        assert_eq!(r.status, RunStatus::Succeeded, "{url}");
        let again = engine.get_run(&r.id).await.unwrap().unwrap();
        assert_eq!(again, r, "{url}");
        assert_eq!(step(&r, "cloud").device.as_deref(), Some("cloud-gpu0"));
        assert_eq!(engine.list_runs(5).await.unwrap()[0].id, r.id);
        assert!(store.unfinished_runs().await.unwrap().is_empty());
        // Reopening (migrations already applied) sees the same run.
        let reopened = SqlStore::connect(&url).await.unwrap();
        assert_eq!(reopened.get_run(&r.id).await.unwrap().unwrap(), r, "{url}");
    }
}

#[tokio::test]
async fn sql_store_group_commits_concurrent_runs() {
    let dir = tempfile::tempdir().unwrap();
    for (url, store) in sql_stores(dir.path()).await {
        let exec = Arc::new(TestExec::default());
        let engine = Engine::new(store.clone(), Arc::new(exec.clone()));
        let s = spec(
            "name: c\nsteps:\n  - { id: a, operation: echo, params: { v: 1 } }\n  - { id: b, operation: echo, inputs: { v: $steps.a.output.v } }\n  - { id: c, operation: echo, inputs: { v: $steps.a.output.v } }\n",
        );
        let runs = futures::future::join_all(
            (0..50).map(|i| engine.run(&s, json!({ "i": i }), BTreeMap::new())),
        )
        .await;
        for r in runs {
            let r = r.unwrap();
            assert_eq!(r.status, RunStatus::Succeeded, "{url}");
            assert_eq!(r.output, Some(json!({"b": {"v": 1}, "c": {"v": 1}})));
        }
        assert_eq!(exec.log.lock().unwrap().len(), 150);
        assert_eq!(store.list_runs(1000).await.unwrap().len(), 50);
        // 50 creations, 150 step completions (each with the next steps' start), 50 ends at
        // least; writes arriving together shared commits.
        let (writes, commits) = store.write_stats();
        assert!(writes >= 200, "{url}: {writes} writes");
        assert!(
            commits < writes,
            "{url}: {writes} writes in {commits} commits"
        );
    }
}

/// A run as a crashed CmP leaves it: `a` succeeded, `b` (idempotent or not) running.
async fn crashed_run(store: &dyn RunStore, idempotent: bool) -> (String, WorkflowSpec) {
    let mut s = spec(
        r#"
name: crashed
steps:
  - { id: a, operation: echo, params: { v: 7 } }
  - { id: b, operation: echo, inputs: { v: $steps.a.output.v } }
  - { id: c, operation: echo, inputs: { v: $steps.b.output.v } }
"#,
    );
    s.steps[1].idempotent = idempotent;
    let now = chrono::Utc::now();
    let mut record = RunRecord {
        id: uuid::Uuid::new_v4().to_string(),
        workflow: s.name.clone(),
        status: RunStatus::Running,
        input: json!({}),
        output: None,
        error: None,
        started_at: now,
        finished_at: None,
        steps: s.steps.iter().map(|x| StepRecord::pending(&x.id)).collect(),
    };
    let run = StoredRun {
        record: record.clone(),
        spec: Arc::new(s.clone()),
        placement: BTreeMap::new(),
    };
    store.create_run(&run).await.unwrap();
    record.steps[0].status = StepStatus::Succeeded;
    record.steps[0].attempts = 1;
    record.steps[0].started_at = Some(now);
    record.steps[0].finished_at = Some(now);
    record.steps[0].output = Some(json!({"v": 7}));
    record.steps[1].status = StepStatus::Running;
    record.steps[1].attempts = 1;
    record.steps[1].started_at = Some(now);
    store
        .write_steps(&record.id, record.steps[..2].to_vec())
        .await
        .unwrap();
    (record.id, s)
}

#[tokio::test]
async fn resume_keeps_completed_steps_and_reruns_only_idempotent_unknowns() {
    let dir = tempfile::tempdir().unwrap();
    for (url, store) in sql_stores(dir.path()).await {
        let (ok_id, _) = crashed_run(store.as_ref(), true).await;
        let (bad_id, _) = crashed_run(store.as_ref(), false).await;
        let exec = Arc::new(TestExec::default());
        let engine = Engine::new(store.clone(), Arc::new(exec.clone()));
        let mut resumed = engine.resume_unfinished().await.unwrap();
        resumed.sort();
        let mut want = vec![ok_id.clone(), bad_id.clone()];
        want.sort();
        assert_eq!(resumed, want, "{url}");

        let ok = engine.wait(&ok_id).await.unwrap();
        assert_eq!(ok.status, RunStatus::Succeeded, "{url}: {ok:?}");
        assert_eq!(step(&ok, "b").attempts, 2, "re-executed as attempt 2");
        assert_eq!(ok.output, Some(json!({"v": 7})));

        let bad = engine.wait(&bad_id).await.unwrap();
        assert_eq!(bad.status, RunStatus::Failed, "{url}");
        assert_eq!(
            bad.error.as_deref(),
            Some(format!("step 'b': {OUTCOME_UNKNOWN}").as_str())
        );
        assert_eq!(step(&bad, "b").error.as_deref(), Some(OUTCOME_UNKNOWN));
        assert_eq!(step(&bad, "c").status, StepStatus::Pending);

        // Only the idempotent b and its successor ran; a never again.
        let log = exec.log.lock().unwrap().clone();
        let mut ran: Vec<(String, u32)> = log.iter().map(|c| (c.step.clone(), c.attempt)).collect();
        ran.sort();
        assert_eq!(ran, [("b".to_owned(), 2), ("c".to_owned(), 1)], "{url}");
        assert!(store.unfinished_runs().await.unwrap().is_empty());
        // Nothing left to resume.
        assert!(engine.resume_unfinished().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn finished_runs_keep_their_records_in_the_memory_store_too() {
    let store = Arc::new(MemoryStore::new());
    let (id, _) = crashed_run(store.as_ref(), true).await;
    store
        .finish_run(
            &id,
            vec![],
            RunFinish {
                status: RunStatus::Failed,
                output: None,
                error: Some("gave up".into()),
                finished_at: chrono::Utc::now(),
            },
        )
        .await
        .unwrap();
    let r = store.get_run(&id).await.unwrap().unwrap();
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(r.steps[0].output, Some(json!({"v": 7})));
    assert!(store.unfinished_runs().await.unwrap().is_empty());
}

#[tokio::test]
async fn wide_fan_out_writes_in_chunks_and_reads_back() {
    // 300 steps complete together: one write of 300 rows, in chunks of 256, 32, 8 and 4.
    let dir = tempfile::tempdir().unwrap();
    for (url, store) in sql_stores(dir.path()).await {
        let engine = Engine::new(store.clone(), Arc::new(bench::NoopExecutor));
        let s = bench::fan_out(300);
        let r = engine.run(&s, json!({}), BTreeMap::new()).await.unwrap();
        assert_eq!(r.status, RunStatus::Succeeded, "{url}");
        let stored = store.get_run(&r.id).await.unwrap().unwrap();
        assert_eq!(stored.steps.len(), 302);
        assert!(
            stored
                .steps
                .iter()
                .all(|x| x.status == StepStatus::Succeeded && x.attempts == 1),
            "{url}"
        );
        assert_eq!(
            stored
                .steps
                .iter()
                .map(|x| x.step_id.as_str())
                .collect::<Vec<_>>(),
            s.steps.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
            "steps come back in workflow order"
        );
    }
}
