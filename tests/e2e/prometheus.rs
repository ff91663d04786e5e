//! Metrics end to end: the NRF, the AMF, the CmP, the edge AI function of site edge-london
//! (with the shipped edge model, `models/edge`) and (when its model is cached) the cloud AI
//! function run in-process on ephemeral ports and get a little traffic; then
//!
//! - each NF's `/metrics` passes `promtool check metrics` (Debian's `prometheus` package,
//!   installed by `.ci/prometheus.sh`), and every family it exports is in the catalogue
//!   (`netgpt_sbi::metrics::CATALOGUE` and docs/metrics.md);
//! - a real `prometheus` scrapes them (generated config, 1 s interval, temporary TSDB) and
//!   answers `sbi_inbound_requests_total` for each NF through its HTTP query API;
//! - `promtool check config` passes on deploy/prometheus/prometheus.yml;
//!
//! and, without any tool, the Grafana dashboards of deploy/grafana parse, have unique panel
//! ids and the provisioned datasource, and query only metrics docs/metrics.md catalogues.
//!
//! The tool tests print a skip reason and pass when `NETGPT_PROMTOOL` / `NETGPT_PROMETHEUS`
//! are unset (tests/run.sh sets them from `.ci/prometheus.sh`).
//!
//! OAuth2 is off here (`open_config`): these tests exercise the NF's function with plain
//! HTTP clients; `security.rs` and `edge.rs` run the NFs with OAuth2 on.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use netgpt_e2e::{fast_nrf_options, h2_client, open_config, start_open_nrf, TestNrf};
use netgpt_sbi::metrics::CATALOGUE;
use netgpt_sbi::{NfContext, RunningNf};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

/// The datasource uid the provisioning file gives and every dashboard panel must use.
const DATASOURCE_UID: &str = "netgpt-prometheus";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tool(var: &str) -> Option<PathBuf> {
    match std::env::var(var) {
        Ok(p) if !p.trim().is_empty() => Some(PathBuf::from(p.trim())),
        _ => {
            eprintln!("{var} unset (run `eval \"$(bash .ci/prometheus.sh)\"`): skipped");
            None
        }
    }
}

/// Metric names of docs/metrics.md: the backticked name opening each table row, with
/// whether the row is marked planned.
fn documented() -> BTreeMap<String, bool> {
    documented_rows()
        .into_iter()
        .map(|(name, (planned, _))| (name, planned))
        .collect()
}

/// Each documented metric: (planned, its `type` cell).
fn documented_rows() -> BTreeMap<String, (bool, String)> {
    let text = std::fs::read_to_string(repo().join("docs/metrics.md")).expect("docs/metrics.md");
    let mut names = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("| `") else {
            continue;
        };
        let Some(end) = rest.find('`') else { continue };
        let mut cells = rest.split('|');
        let first_cell = cells.next().unwrap_or_default();
        let kind = cells.next().unwrap_or_default().trim().to_owned();
        names.insert(
            rest[..end].to_owned(),
            (first_cell.contains("planned"), kind),
        );
    }
    names
}

/// The series family a sample name belongs to (histogram/summary suffixes removed) when
/// that family is in `known`.
fn family<'a>(name: &'a str, known: &BTreeMap<String, bool>) -> Option<&'a str> {
    if known.contains_key(name) {
        return Some(name);
    }
    ["_bucket", "_sum", "_count"]
        .iter()
        .filter_map(|s| name.strip_suffix(s))
        .find(|base| known.contains_key(*base))
}

#[test]
fn catalogue_in_code_and_in_docs_agree() {
    let docs = documented();
    let code: BTreeSet<&str> = CATALOGUE.iter().map(|(n, _, _)| *n).collect();
    assert_eq!(code.len(), CATALOGUE.len(), "a name twice in CATALOGUE");
    for name in &code {
        assert_eq!(
            docs.get(*name),
            Some(&false),
            "{name} is in CATALOGUE but not documented (unplanned) in docs/metrics.md"
        );
    }
    for (name, planned) in &docs {
        assert!(
            *planned || code.contains(name.as_str()),
            "{name} is documented as exported but not in netgpt_sbi::metrics::CATALOGUE"
        );
    }
    for (name, _, help) in CATALOGUE {
        assert!(!help.trim().is_empty(), "{name} has no HELP text");
    }
}

/// PromQL words that are not metric names: keywords, and aggregation operators (followed
/// by `by (...)` rather than by their parenthesis).
const PROMQL_WORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "le",
    "inf",
    "nan",
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
];

/// Metric names a PromQL expression selects: identifiers outside `{...}` label matchers,
/// `[...]` ranges, string literals and `by (...)`-style label lists, and not called as
/// functions.
fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    let mut label_list = false; // inside `by (` ... `)`
    while i < chars.len() {
        let c = chars[i];
        match c {
            '{' | '[' | '"' => {
                let close = match c {
                    '{' => '}',
                    '[' => ']',
                    _ => '"',
                };
                i += 1;
                while i < chars.len() && chars[i] != close {
                    i += 1;
                }
                i += 1;
            }
            ')' => {
                label_list = false;
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut j = i;
                while j < chars.len() && chars[j] == ' ' {
                    j += 1;
                }
                let call = j < chars.len() && chars[j] == '(';
                let lower = word.to_ascii_lowercase();
                if [
                    "by",
                    "without",
                    "on",
                    "ignoring",
                    "group_left",
                    "group_right",
                ]
                .contains(&lower.as_str())
                {
                    label_list = call;
                } else if !call && !label_list && !PROMQL_WORDS.contains(&lower.as_str()) {
                    names.push(word);
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                // A number (0.95, 1e3): skip it with its exponent.
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    names
}

#[test]
fn promql_metric_names_are_found() {
    assert_eq!(
        metric_names(
            "histogram_quantile(0.95, sum by (le, nf) (rate(x_seconds_bucket{nf=~\"a.*\"}[1m]))) / up"
        ),
        ["x_seconds_bucket", "up"]
    );
    assert_eq!(
        metric_names("max by (nf, quantile) (y{quantile=~\"0.5|0.99\"}) and on(nf) z"),
        ["y", "z"]
    );
}

#[test]
fn dashboards_parse_and_query_only_catalogued_metrics() {
    let docs = documented();
    let grafana = repo().join("deploy/grafana");
    let ds: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(grafana.join("provisioning/datasources/prometheus.yaml"))
            .expect("datasource provisioning"),
    )
    .expect("datasource provisioning is YAML");
    let uids: Vec<&str> = ds["datasources"]
        .as_sequence()
        .expect("datasources list")
        .iter()
        .filter_map(|d| d["uid"].as_str())
        .collect();
    assert_eq!(uids, [DATASOURCE_UID]);
    let providers: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(grafana.join("provisioning/dashboards/netgpt.yaml"))
            .expect("dashboard provisioning"),
    )
    .expect("dashboard provisioning is YAML");
    assert_eq!(
        providers["providers"][0]["options"]["path"].as_str(),
        Some("/var/lib/grafana/dashboards")
    );

    let mut uids = BTreeSet::new();
    for name in ["testbed-overview", "ai-path", "cmp"] {
        let path = grafana.join(format!("dashboards/{name}.json"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let d: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let uid = d["uid"].as_str().expect("dashboard uid");
        assert!(uids.insert(uid.to_owned()), "{name}: uid {uid} used twice");
        assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
        let panels = d["panels"].as_array().expect("panels");
        let mut ids = BTreeSet::new();
        let mut queried = 0;
        for p in panels {
            let id = p["id"].as_u64().expect("panel id");
            assert!(ids.insert(id), "{name}: panel id {id} twice");
            if p["type"] == "row" {
                continue;
            }
            let title = p["title"].as_str().unwrap_or_default();
            assert_eq!(
                p["datasource"]["uid"], DATASOURCE_UID,
                "{name}/{title}: datasource"
            );
            let targets = p["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{name}/{title}: no query");
            for t in targets {
                assert_eq!(t["datasource"]["uid"], DATASOURCE_UID, "{name}/{title}");
                let expr = t["expr"].as_str().expect("expr");
                let names = metric_names(expr);
                assert!(!names.is_empty(), "{name}/{title}: no metric in {expr}");
                for m in names {
                    let fam = family(&m, &docs);
                    assert!(
                        m == "up" || fam.is_some(),
                        "{name}/{title}: {m} (in {expr}) is not in docs/metrics.md"
                    );
                    // Panels on planned series say so in their title.
                    if fam.is_some_and(|f| docs[f]) {
                        assert!(title.contains("planned"), "{name}/{title}: planned {m}");
                    }
                }
                queried += 1;
            }
        }
        assert!(queried >= 5, "{name}: {queried} queries");
    }
}

#[tokio::test]
async fn compose_prometheus_config_passes_promtool() {
    let Some(promtool) = tool("NETGPT_PROMTOOL") else {
        return;
    };
    let out = tokio::process::Command::new(promtool)
        .arg("check")
        .arg("config")
        .arg(repo().join("deploy/prometheus/prometheus.yml"))
        .output()
        .await
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool check config: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The NFs under test, each with its base URI.
struct Bed {
    nrf: TestNrf,
    nfs: Vec<(String, RunningNf)>,
    _dir: tempfile::TempDir,
}

impl Bed {
    fn targets(&self) -> Vec<(String, String)> {
        let mut t = vec![("nrf".to_owned(), self.nrf.base.clone())];
        t.extend(
            self.nfs
                .iter()
                .map(|(n, r)| (n.clone(), r.api_root.clone())),
        );
        t
    }

    async fn stop(self) {
        for (_, nf) in self.nfs {
            nf.stop().await;
        }
        self.nrf.stop().await;
    }
}

async fn context(
    dir: &tempfile::TempDir,
    nrf: &str,
    name: &str,
    edit: impl FnOnce(&mut netgpt_sbi::config::TestbedConfig),
) -> NfContext {
    let mut cfg = open_config(nrf);
    edit(&mut cfg);
    let db = netgpt_sbi::db::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join(format!("{name}.db")).display()
    ))
    .await
    .expect("database");
    NfContext::ephemeral(Arc::new(cfg), name, db)
        .await
        .expect("context")
}

async fn expect_status(r: reqwest::RequestBuilder, want: u16, what: &str) -> Value {
    let resp = r.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(status, want, "{what}: {body}");
    body
}

/// The edge AI function under test (an NF of the embedded default configuration).
const EDGE: &str = "edge-london";

/// NRF, AMF, CmP, an edge AI function and (model cached) the cloud AI function, with some
/// traffic on each.
async fn bring_up() -> Bed {
    let nrf = start_open_nrf(fast_nrf_options()).await;
    let dir = tempfile::tempdir().unwrap();
    let c = h2_client();

    let amf = netgpt_amf::start(context(&dir, &nrf.base, "amf", |_| {}).await)
        .await
        .expect("start AMF");
    let ue = format!(
        "{}/namf-comm/v1/ue-contexts/imsi-001010000000077",
        amf.api_root
    );
    expect_status(
        c.put(&ue)
            .json(&json!({"supi": "imsi-001010000000077", "nrCellId": "000003001"})),
        201,
        "register UE",
    )
    .await;
    expect_status(
        c.post(format!("{ue}/handover"))
            .json(&json!({"nrCellId": "000003002"})),
        200,
        "handover",
    )
    .await;

    let cmp = netgpt_cmp::start(context(&dir, &nrf.base, "cmp", |_| {}).await)
        .await
        .expect("start CmP");
    expect_status(
        c.put(format!(
            "{}/ncmp-res/v1/nodes/edge-london/load",
            cmp.api_root
        ))
        .json(&json!({"devices": [{"deviceId": "cpu0", "busyUnits": 6, "queueLength": 2}]})),
        200,
        "load report",
    )
    .await;
    expect_status(
        c.post(format!("{}/ncmp-wf/v1/workflows", cmp.api_root))
            .json(&json!({"name": "metrics-noop", "steps": [{"id": "a", "operation": "noop"}]})),
        201,
        "register workflow",
    )
    .await;
    let run = expect_status(
        c.post(format!(
            "{}/ncmp-wf/v1/workflows/metrics-noop/runs",
            cmp.api_root
        ))
        .json(&json!({"input": {}, "wait": true})),
        201,
        "run workflow",
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");

    // The edge AI function: traffic that needs no cloud model (personal data masked, a
    // duplicate prompt, a place lookup answered from the site directory and a cache miss, a
    // completion by the edge model for a UE the AMF locates, an intent inference by rules, a
    // policy verdict).
    let edge_ctx = context(&dir, &nrf.base, EDGE, |_| {}).await;
    let edge = netgpt_edgeai::start(edge_ctx)
        .await
        .expect("start the edge AI function");
    let op = |name: &str| format!("{}/nedgeai-prompt/v1/{name}", edge.api_root);
    let masked = expect_status(
        c.post(op("desensitize"))
            .json(&json!({"prompt": "I'm Jane Smith, call me on +44 20 7946 0958"})),
        200,
        "desensitize",
    )
    .await;
    assert!(
        !masked["prompt"]
            .as_str()
            .unwrap_or_default()
            .contains("7946"),
        "{masked}"
    );
    for want in ["UNIQUE", "EXACT"] {
        let d = expect_status(
            c.post(op("dedup"))
                .json(&json!({ "prompt": "Recommend libraries" })),
            200,
            "dedup",
        )
        .await;
        assert_eq!(d["duplicate"], want, "{d}");
    }
    // A place lookup the site directory answers, then a prompt only the cloud could answer:
    // its cache lookup misses.
    let answer = expect_status(
        c.post(op("answer")).json(&json!({
            "prompt": "Where is the nearest hospital to King's Cross?",
            "concise": "Where is the nearest hospital?"
        })),
        200,
        "answer from the directory",
    )
    .await;
    assert_eq!(answer["answeredBy"], "EDGE_DIRECTORY", "{answer}");
    let answer = expect_status(
        c.post(op("answer"))
            .json(&json!({"prompt": "Write a poem about the Thames."})),
        200,
        "answer, cache miss",
    )
    .await;
    assert_eq!(answer["answeredAtEdge"], false, "{answer}");
    expect_status(
        c.post(op("complete"))
            .json(&json!({"prompt": "Recommend libraries", "supi": "imsi-001010000000002"})),
        200,
        "complete",
    )
    .await;
    expect_status(
        c.post(format!(
            "{}/nedgeai-analytics/v1/intent-inference",
            edge.api_root
        ))
        .json(&json!({
            "text": "I want a 10 Gbps link from Access 1 to Cloud 2 with protection",
            "method": "RULES"
        })),
        200,
        "intent inference",
    )
    .await;
    expect_status(
        c.post(op("policy"))
            .json(&json!({"prompt": "Recommend libraries", "destination": "cloud"})),
        200,
        "policy",
    )
    .await;

    let mut nfs = vec![
        ("amf".to_owned(), amf),
        ("cmp".to_owned(), cmp),
        (EDGE.to_owned(), edge),
    ];
    match netgpt_models::fetch::cached_cloud_model() {
        None => eprintln!(
            "cloud model not cached (run `netgpt models fetch`): cloud AI function left out"
        ),
        Some(model) => {
            let ctx = context(&dir, &nrf.base, "cloudai", |cfg| {
                cfg.cloudai.model = Some(model)
            })
            .await;
            let cloud = netgpt_cloudai::start(ctx).await.expect("start cloud AI");
            expect_status(
                c.post(format!("{}/ncloudai-gen/v1/generate", cloud.api_root))
                    .json(&json!({"prompt": "Name a colour.", "maxTokens": 4})),
                200,
                "generate",
            )
            .await;
            nfs.push(("cloudai".to_owned(), cloud));
        }
    }
    Bed {
        nrf,
        nfs,
        _dir: dir,
    }
}

/// `promtool check metrics` on `text`: its complaints (empty when clean).
async fn promtool_check(promtool: &Path, text: &str) -> String {
    let mut child = tokio::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && said.trim().is_empty() {
        String::new()
    } else {
        format!("exit {:?}: {said}", out.status.code())
    }
}

/// `api?query=<expr>`, the expression percent-encoded.
fn query_url(api: &str, expr: &str) -> String {
    let mut q = String::new();
    for b in expr.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            q.push(b as char);
        } else {
            q.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{api}?query={q}")
}

/// A free TCP port on 127.0.0.1 (bound then released, for a child process to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the child process when dropped (a failing assert must not leave Prometheus behind).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_nf_passes_promtool_and_a_real_prometheus_scrapes_it() {
    let (Some(promtool), Some(prometheus)) = (tool("NETGPT_PROMTOOL"), tool("NETGPT_PROMETHEUS"))
    else {
        return;
    };
    let bed = bring_up().await;
    let docs = documented();
    let rows = documented_rows();
    // Prometheus scrapes over HTTP/1.1: the NFs must answer it as well as h2c.
    let http1 = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();

    let mut amf_ues = String::new();
    for (nf, base) in bed.targets() {
        let text = http1
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{nf} /metrics over HTTP/1.1: {e}"))
            .text()
            .await
            .unwrap();
        assert!(
            text.contains("sbi_inbound_requests_total{"),
            "{nf}: no SBI series:\n{text}"
        );
        // NETGPT_METRICS_DUMP=<dir>: keep each exposition for a look (docs/metrics.md upkeep).
        if let Ok(dir) = std::env::var("NETGPT_METRICS_DUMP") {
            let _ = std::fs::write(Path::new(&dir).join(format!("{nf}.prom")), &text);
        }
        let complaints = promtool_check(&promtool, &text).await;
        assert!(
            complaints.is_empty(),
            "{nf}: promtool check metrics: {complaints}\n--- exposition ---\n{text}"
        );
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let mut words = line.split_whitespace().skip(2);
            let name = words.next().unwrap_or_default();
            let kind = words.next().unwrap_or_default();
            assert!(
                family(name, &docs).is_some_and(|f| !docs[f]),
                "{nf} exports {name}, which docs/metrics.md does not catalogue"
            );
            // The documented type is the exported one.
            let want = match kind {
                "histogram" => "histogram (buckets)",
                "summary" => "histogram (summary)",
                other => other,
            };
            assert_eq!(
                rows[name].1, want,
                "{nf}: type of {name} in docs/metrics.md"
            );
        }
        let expect: &[&str] = match nf.as_str() {
            "nrf" => &["nrf_registered_nf_instances", "nrf_nf_registrations_total"],
            "amf" => &["amf_registered_ues", "amf_handovers_total"],
            "cmp" => &[
                "cmp_device_utilization_ratio",
                "cmp_workflow_runs_total",
                "cmp_workflow_step_duration_seconds_bucket",
            ],
            "cloudai" => &[
                "cloudai_time_to_first_token_seconds",
                "cloudai_generated_tokens_total",
                "cloudai_requests_total",
            ],
            EDGE => &[
                "edgeai_pii_findings_total{",
                "edgeai_duplicates_total{",
                "edgeai_cache_lookups_total{",
                "edgeai_answers_total{",
                "edgeai_policy_decisions_total{",
                "edgeai_analytics_requests_total{",
                "edgeai_completion_batch_size",
                "edgeai_completion_seconds",
            ],
            _ => &[],
        };
        for series in expect {
            assert!(
                text.lines().any(|l| l.starts_with(series)),
                "{nf}: no {series} in:\n{text}"
            );
        }
        if nf == EDGE {
            // Each edge function's series carry its own name, so that four sites in one
            // process (`netgpt up`) stay apart.
            for l in text.lines().filter(|l| l.starts_with("edgeai_")) {
                assert!(l.contains(&format!("nf=\"{EDGE}\"")), "{l}");
            }
        }
        if let Some(l) = text.lines().find(|l| l.starts_with("amf_registered_ues ")) {
            amf_ues = l["amf_registered_ues ".len()..].to_owned();
        }
        eprintln!(
            "{nf}: /metrics ({} lines) passes promtool check metrics",
            text.lines().count()
        );
    }
    // The CmP's device gauge holds what was reported: 6 of 8 units busy.
    let cmp_text = http1
        .get(format!("{}/metrics", bed.targets()[2].1))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let util = cmp_text
        .lines()
        .find(|l| {
            l.starts_with("cmp_device_utilization_ratio{")
                && l.contains("node=\"edge-london\"")
                && l.contains("device=\"cpu0\"")
        })
        .unwrap_or_else(|| panic!("no edge-london/cpu0 utilisation in:\n{cmp_text}"));
    assert!(util.ends_with(" 0.75"), "{util}");

    // A real Prometheus scraping every NF.
    let tmp = tempfile::tempdir().unwrap();
    let mut config =
        String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n");
    for (nf, base) in bed.targets() {
        let addr = base.trim_start_matches("http://");
        config.push_str(&format!(
            "  - job_name: {nf}\n    static_configs:\n      - targets: [\"{addr}\"]\n"
        ));
    }
    let config_path = tmp.path().join("prometheus.yml");
    std::fs::write(&config_path, &config).unwrap();
    let port = free_port();
    let log = std::fs::File::create(tmp.path().join("prometheus.log")).unwrap();
    let child = std::process::Command::new(&prometheus)
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            tmp.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    let guard = KillOnDrop(child);
    let api = format!("http://127.0.0.1:{port}/api/v1/query");
    let started = Instant::now();
    let want: BTreeSet<String> = bed.targets().into_iter().map(|(n, _)| n).collect();
    let mut last = Value::Null;
    let scraped = loop {
        let got: BTreeSet<String> = match http1
            .get(query_url(&api, "sum by (job) (sbi_inbound_requests_total)"))
            .send()
            .await
        {
            Ok(r) => match r.json::<Value>().await {
                Ok(v) => {
                    last = v.clone();
                    v["data"]["result"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|s| {
                            s["value"][1]
                                .as_str()
                                .and_then(|x| x.parse::<f64>().ok())
                                .is_some_and(|x| x > 0.0)
                        })
                        .filter_map(|s| s["metric"]["job"].as_str().map(str::to_owned))
                        .collect()
                }
                Err(_) => BTreeSet::new(),
            },
            Err(_) => BTreeSet::new(),
        };
        if got == want {
            break got;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let log =
                std::fs::read_to_string(tmp.path().join("prometheus.log")).unwrap_or_default();
            panic!("Prometheus did not return sbi_inbound_requests_total for {want:?} within 60 s; last answer {last}\n--- prometheus log ---\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!(
        "prometheus on 127.0.0.1:{port} returned sbi_inbound_requests_total for {scraped:?} after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Every target is up, and an NF-specific series came back too.
    let up: Value = http1
        .get(query_url(&api, "up"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let up_jobs: BTreeSet<String> = up["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["value"][1] == "1")
        .filter_map(|s| s["metric"]["job"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(up_jobs, want, "{up}");
    let ues: Value = http1
        .get(query_url(&api, "amf_registered_ues"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ues["data"]["result"][0]["value"][1].as_str(),
        Some(amf_ues.as_str()),
        "Prometheus and the AMF's /metrics disagree: {ues}"
    );
    // The edge AI function's answer by origin reached Prometheus from its target.
    let answers: Value = http1
        .get(query_url(
            &api,
            "sum by (job, answered_by) (edgeai_answers_total)",
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let directory = answers["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["metric"]["answered_by"] == "edge_directory")
        .unwrap_or_else(|| panic!("no edge_directory answers in Prometheus: {answers}"));
    assert_eq!(directory["metric"]["job"], EDGE, "{answers}");
    assert!(
        directory["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(|v| v >= 1.0),
        "{answers}"
    );
    drop(guard);
    bed.stop().await;
}
