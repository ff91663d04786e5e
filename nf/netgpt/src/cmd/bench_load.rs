//! `netgpt bench load`: the testbed under sustained load, with OAuth2 and the request limits
//! on, as a deployment runs them.
//!
//! Two testbeds come up in this process on loopback ephemeral ports (through
//! [`super::testbed::bring_up`], temporary SQLite files):
//!
//! - **the testbed** (the embedded default configuration, OAuth2 and `[limits]` as shipped)
//!   with `--ues` extra UEs registered at the default UEs' cells (one per site). It serves
//!   the hot paths: NRF NFDiscover (`nnrf-disc`), AMF ProvideLocationInfo (`namf-loc`), the
//!   NRF token endpoint (`POST /oauth2/token`), and the UE-facing chain (`ue-prompts` at the
//!   UE's serving edge AI function) with a few repeated prompts from many SUPIs, so after the
//!   first cloud calls (made in a warm-up before the measured window) the edge cache answers;
//! - **an overload testbed** (NRF and one cloud AI function) with low limits
//!   (`limits.max_in_flight`, `[cloudai] max_batch`/`max_queue`), driven far above them on
//!   `ncloudai-gen` `generate`: it has to shed (429/503 ProblemDetails with `Retry-After`)
//!   rather than let requests time out.
//!
//! `ue-flood` sends every request of every client for one SUPI: the per-UE rate
//! (`limits.ue_rate_per_s`, `ue_burst`) is what answers most of them (429).
//!
//! Each scenario runs `--concurrency` closed-loop clients (each sends its next request when
//! the previous one was answered) for `--duration` seconds; every request has a client
//! deadline (`--deadline`), so a scenario ends at most one deadline after its window and the
//! command within scenarios x (duration + deadline) after start-up. Service consumers are
//! SBI clients that fetch and attach access tokens (`netgpt_sbi::oauth::consumer_client`),
//! one consumer identity per client (`bench-load-<n>`), as many NFs calling one producer
//! would be; the per-consumer rate applies to each.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use netgpt_sbi::config::{TestbedConfig, UeConfig};
use netgpt_sbi::oauth::{consumer_instance_id, token_url, AccessTokenReq};
use netgpt_sbi::{ClientError, SbiClient};
use serde::Serialize;

use super::experiment::report;
use super::testbed::{bring_up, on_loopback, Testbed};

/// Every scenario, in the order they run.
pub const SCENARIOS: &[&str] = &[
    "nrf-disc",
    "amf-loc",
    "nrf-token",
    "ue-prompts",
    "ue-flood",
    "overload-cloud",
];

/// Arguments of `netgpt bench load`.
#[derive(Args, Debug, Clone)]
pub struct BenchLoadArgs {
    /// Seconds of load per scenario.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Closed-loop clients per scenario (the overload scenario runs `--overload-factor` times as many).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Client deadline of every request, seconds (a request not answered by then is a timeout).
    #[arg(long, default_value_t = 10.0)]
    pub deadline: f64,
    /// Scenarios to run (comma-separated; the cloud model is needed by the last three).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "nrf-disc,amf-loc,nrf-token,ue-prompts,ue-flood,overload-cloud"
    )]
    pub scenarios: Vec<String>,
    /// Extra UEs registered for the UE-facing scenarios (spread over the sites).
    #[arg(long, default_value_t = 256)]
    pub ues: usize,
    /// How many times `--concurrency` clients the overload scenario runs.
    #[arg(long, default_value_t = 8)]
    pub overload_factor: usize,
    /// `limits.max_in_flight` of the overload testbed.
    #[arg(long, default_value_t = 8)]
    pub overload_max_in_flight: usize,
    /// `[cloudai] max_queue` of the overload testbed (`max_batch` is 2).
    #[arg(long, default_value_t = 4)]
    pub overload_max_queue: usize,
    /// Overload clients send again at once after a refusal instead of waiting its
    /// Retry-After (a flood: the load generator, in this process, then competes with the
    /// admitted requests for the CPU).
    #[arg(long)]
    pub overload_no_backoff: bool,
    /// Write the results as JSON to this file too.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// How one request ended.
enum Outcome {
    /// 2xx; for the UE path, who answered (`edge-cache`, `cloud`, ...).
    Ok(Option<String>),
    /// An error status: its `Retry-After` and whether it was a ProblemDetails with a cause.
    Status {
        code: u16,
        retry_after: RetryAfter,
        problem: bool,
    },
    /// No answer within the client deadline.
    Timeout,
    /// Transport failure or an unexpected answer.
    Failed(String),
}

/// The `Retry-After` of an error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RetryAfter {
    /// This client does not see the headers of error answers (the SBI client).
    Unseen,
    /// The answer had none (or not in seconds).
    Absent,
    /// Seconds to wait.
    Secs(u64),
}

/// Answers by status class.
#[derive(Debug, Default, Clone, Serialize)]
pub struct StatusCounts {
    /// 2xx answers.
    pub ok_2xx: usize,
    /// 429 Too Many Requests.
    pub s429: usize,
    /// 503 Service Unavailable.
    pub s503: usize,
    /// Any other status, or a failure that was not a timeout.
    pub other: usize,
    /// No answer within the client deadline.
    pub timeouts: usize,
}

/// What one scenario measured.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ScenarioResult {
    /// Scenario name.
    pub name: String,
    /// What it drives.
    pub description: String,
    /// Closed-loop clients.
    pub clients: usize,
    /// Requests answered or timed out in the window (warm-up excluded).
    pub requests: usize,
    /// From the first request to the last answer, seconds.
    pub elapsed_s: f64,
    /// `requests / elapsed_s`.
    pub requests_per_s: f64,
    /// Latency percentiles of the 2xx answers, ms (nearest rank).
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99th percentile of the shed answers (429 and 503), ms: how fast the refusal comes.
    pub shed_p99_ms: f64,
    /// Answers by status class.
    pub status: StatusCounts,
    /// Shed answers (429/503) whose `Retry-After` header was seen (only counted where the
    /// client sees headers: `overload-cloud`).
    pub shed_with_retry_after: usize,
    /// Shed answers that were ProblemDetails with a cause.
    pub shed_with_problem: usize,
    /// The `other` answers by status or failure, for the reader.
    pub other_detail: BTreeMap<String, usize>,
    /// UE path: who answered (`answeredBy`).
    pub answered_by: BTreeMap<String, usize>,
    /// Peak resident memory of this process (VmHWM) at the scenario's end, MiB.
    pub peak_rss_mib: f64,
    /// Resident memory (VmRSS) at the end minus at the start of the scenario, MiB.
    pub rss_growth_mib: f64,
}

/// Everything `--json` writes.
#[derive(Debug, Serialize)]
pub struct LoadReport {
    /// The machine (cores, CPU, memory).
    pub machine: String,
    /// 1-minute load average at the start.
    pub loadavg: String,
    /// When it ran (UTC).
    pub date: String,
    /// `--duration`, seconds.
    pub duration_s: f64,
    /// `--concurrency`.
    pub concurrency: usize,
    /// `--deadline`, seconds.
    pub deadline_s: f64,
    /// Whether OAuth2 was on in both testbeds.
    pub oauth2: bool,
    /// Start-up (testbeds, tokens, cache warm-up), seconds.
    pub startup_s: f64,
    /// The scenarios in the order they ran.
    pub scenarios: Vec<ScenarioResult>,
}

/// A kB field of /proc/self/status (`VmHWM`, `VmRSS`) in MiB; 0 where there is none.
fn proc_status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The outcome of an SBI client call.
fn outcome_of<T>(r: Result<T, ClientError>, tag: impl FnOnce(T) -> Option<String>) -> Outcome {
    match r {
        Ok(v) => Outcome::Ok(tag(v)),
        Err(ClientError::Status { problem, .. }) => Outcome::Status {
            code: problem.status,
            retry_after: RetryAfter::Unseen,
            problem: problem.cause.is_some(),
        },
        Err(ClientError::Timeout { .. }) => Outcome::Timeout,
        Err(e) => Outcome::Failed(match e {
            ClientError::Connect { .. } => "connect".into(),
            ClientError::Transport { .. } => "transport".into(),
            ClientError::Token(_) => "access token".into(),
            ClientError::Decode { .. } => "decode".into(),
            _ => "request".into(),
        }),
    }
}

/// The outcome of a raw HTTP answer (status, headers seen).
async fn outcome_of_raw(r: reqwest::Result<reqwest::Response>) -> Outcome {
    match r {
        Ok(resp) => {
            let status = resp.status();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map_or(RetryAfter::Absent, RetryAfter::Secs);
            let is_problem = resp
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/problem+json"));
            match resp.bytes().await {
                Err(e) if e.is_timeout() => Outcome::Timeout,
                Err(_) => Outcome::Failed("transport".into()),
                Ok(_) if status.is_success() => Outcome::Ok(None),
                Ok(body) => Outcome::Status {
                    code: status.as_u16(),
                    retry_after,
                    problem: is_problem
                        && serde_json::from_slice::<serde_json::Value>(&body)
                            .is_ok_and(|v| v["cause"].is_string()),
                },
            }
        }
        Err(e) if e.is_timeout() => Outcome::Timeout,
        Err(e) if e.is_connect() => Outcome::Failed("connect".into()),
        Err(_) => Outcome::Failed("transport".into()),
    }
}

/// Runs `clients` closed-loop clients for `window`; `call(client, seq)` makes one request.
/// With `warm_up`, each client first makes one request that is not counted (connections,
/// access tokens). Every call is cut at `deadline` plus a second of grace (a timeout),
/// whatever the client's own deadline does. With `backoff`, a client told to come back
/// later (429/503 with `Retry-After`) waits that long (at most until the window ends)
/// before its next request, as an SBI consumer should; the wait is not latency.
#[allow(clippy::too_many_arguments)]
async fn drive<F, Fut>(
    name: &str,
    description: &str,
    clients: usize,
    window: Duration,
    deadline: Duration,
    warm_up: bool,
    backoff: bool,
    call: F,
) -> ScenarioResult
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let call = Arc::new(call);
    let guard = deadline + Duration::from_secs(1);
    if warm_up {
        let warm: Vec<_> = (0..clients)
            .map(|c| {
                let call = call.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(guard, call(c, usize::MAX)).await;
                })
            })
            .collect();
        for w in warm {
            let _ = w.await;
        }
    }
    let rss_before = proc_status_mib("VmRSS");
    let start = Instant::now();
    let end = start + window;
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut out = Vec::new();
                let mut seq = 0;
                while Instant::now() < end {
                    let t0 = Instant::now();
                    let o = tokio::time::timeout(guard, call(c, seq))
                        .await
                        .unwrap_or(Outcome::Timeout);
                    let elapsed_ms = t0.elapsed().as_secs_f64() * 1e3;
                    if let (
                        true,
                        Outcome::Status {
                            code: 429 | 503,
                            retry_after: RetryAfter::Secs(s),
                            ..
                        },
                    ) = (backoff, &o)
                    {
                        let until = (Instant::now() + Duration::from_secs(*s)).min(end);
                        tokio::time::sleep_until(until.into()).await;
                    }
                    out.push((elapsed_ms, o));
                    seq += 1;
                }
                out
            })
        })
        .collect();
    let mut r = ScenarioResult {
        name: name.into(),
        description: description.into(),
        clients,
        ..Default::default()
    };
    let (mut ok_ms, mut shed_ms) = (Vec::new(), Vec::new());
    for t in tasks {
        let Ok(answers) = t.await else {
            *r.other_detail
                .entry("client task panicked".into())
                .or_default() += 1;
            continue;
        };
        for (ms, o) in answers {
            r.requests += 1;
            match o {
                Outcome::Ok(tag) => {
                    r.status.ok_2xx += 1;
                    ok_ms.push(ms);
                    if let Some(t) = tag {
                        *r.answered_by.entry(t).or_default() += 1;
                    }
                }
                Outcome::Status {
                    code,
                    retry_after,
                    problem,
                } => {
                    if code == 429 || code == 503 {
                        if code == 429 {
                            r.status.s429 += 1;
                        } else {
                            r.status.s503 += 1;
                        }
                        shed_ms.push(ms);
                        r.shed_with_retry_after +=
                            usize::from(matches!(retry_after, RetryAfter::Secs(_)));
                        r.shed_with_problem += usize::from(problem);
                    } else {
                        r.status.other += 1;
                        *r.other_detail.entry(code.to_string()).or_default() += 1;
                    }
                }
                Outcome::Timeout => r.status.timeouts += 1,
                Outcome::Failed(why) => {
                    r.status.other += 1;
                    *r.other_detail.entry(why).or_default() += 1;
                }
            }
        }
    }
    r.elapsed_s = start.elapsed().as_secs_f64();
    r.requests_per_s = r.requests as f64 / r.elapsed_s.max(1e-9);
    ok_ms.sort_by(f64::total_cmp);
    shed_ms.sort_by(f64::total_cmp);
    r.p50_ms = report::nearest_rank(&ok_ms, 0.50);
    r.p90_ms = report::nearest_rank(&ok_ms, 0.90);
    r.p99_ms = report::nearest_rank(&ok_ms, 0.99);
    r.shed_p99_ms = report::nearest_rank(&shed_ms, 0.99);
    r.peak_rss_mib = proc_status_mib("VmHWM");
    r.rss_growth_mib = proc_status_mib("VmRSS") - rss_before;
    r
}

/// A testbed brought up for the bench, with the configuration its clients use (`nrf.uri`
/// where its NRF really listens).
struct Bed {
    bed: Testbed,
    config: TestbedConfig,
    _dir: tempfile::TempDir,
}

impl Bed {
    async fn start(config: TestbedConfig) -> anyhow::Result<Bed> {
        let dir = tempfile::tempdir()?;
        let mut config = on_loopback(config, dir.path());
        let bed = bring_up(config.clone()).await?;
        config.nrf.uri = bed
            .nfs
            .iter()
            .find(|n| n.nf_type.eq_ignore_ascii_case("NRF"))
            .map(|n| n.api_root.clone())
            .context("the testbed started no NRF")?;
        Ok(Bed {
            bed,
            config,
            _dir: dir,
        })
    }

    fn root_of(&self, nf_type: &str) -> anyhow::Result<String> {
        self.bed
            .nfs
            .iter()
            .find(|n| n.nf_type.eq_ignore_ascii_case(nf_type))
            .map(|n| n.api_root.clone())
            .with_context(|| format!("the testbed started no {nf_type}"))
    }

    /// One SBI consumer (access tokens attached) per client.
    fn consumers(&self, n: usize) -> anyhow::Result<Arc<Vec<SbiClient>>> {
        let clients = (0..n)
            .map(|i| {
                netgpt_sbi::oauth::consumer_client(&self.config, &format!("bench-load-{i}"))
                    .map_err(|e| anyhow::anyhow!("SBI consumer client: {e}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Arc::new(clients))
    }
}

/// Prompts the UEs repeat (the edge completes and caches each once per site).
const UE_PROMPTS: &[&str] = &[
    "Recommend libraries",
    "Where can I get coffee",
    "Suggest a museum to visit",
    "Find a quiet park nearby",
];

/// The UE-facing side of the testbed: SUPIs by serving edge AI function.
struct UePlan {
    /// (SUPI, API root of its serving edge AI function).
    ues: Vec<(String, String)>,
    /// The UE the flood scenario sends everything for, and its edge.
    flood: (String, String),
}

/// Registers `extra` UEs (in the configuration, before start-up) at the default UEs' cells,
/// round robin over the sites; returns their SUPIs.
fn add_ues(config: &mut TestbedConfig, extra: usize) -> Vec<String> {
    let mut cells: Vec<String> = Vec::new();
    for ue in &config.ue {
        let site = config.cell(&ue.cell).map(|c| c.site.clone());
        let new_site = cells
            .iter()
            .all(|c| config.cell(c).map(|x| x.site.clone()) != site);
        if site.is_some() && new_site {
            cells.push(ue.cell.clone());
        }
    }
    if cells.is_empty() {
        return Vec::new();
    }
    (0..extra)
        .map(|i| {
            let supi = format!("imsi-0010190000{i:05}");
            config.ue.push(UeConfig {
                supi: supi.clone(),
                cell: cells[i % cells.len()].clone(),
            });
            supi
        })
        .collect()
}

fn ue_plan(b: &Bed, supis: &[String]) -> anyhow::Result<UePlan> {
    let mut edge_of_site = BTreeMap::new();
    for nf in &b.bed.nfs {
        if nf.nf_type.eq_ignore_ascii_case("EDGEAI") {
            let site = b.config.nf[&nf.name]
                .locality
                .clone()
                .unwrap_or_else(|| nf.name.clone());
            edge_of_site.insert(site, nf.api_root.clone());
        }
    }
    let edge_of = |supi: &str| {
        let ue = b.config.ue.iter().find(|u| u.supi == supi)?;
        let site = &b.config.cell(&ue.cell)?.site;
        edge_of_site.get(site).cloned()
    };
    let ues: Vec<(String, String)> = supis
        .iter()
        .filter_map(|s| Some((s.clone(), edge_of(s)?)))
        .collect();
    anyhow::ensure!(
        ues.len() > 1,
        "no UEs with a serving edge AI function (are the edge AI functions in the config?)"
    );
    // The flood UE is kept out of the many-SUPI scenario.
    let flood = ues[0].clone();
    Ok(UePlan {
        ues: ues[1..].to_vec(),
        flood,
    })
}

fn ue_prompt_call(
    client: &SbiClient,
    edge: &str,
    supi: &str,
    prompt: &str,
    deadline: Duration,
) -> impl Future<Output = Outcome> + Send + 'static {
    let req = client
        .post(format!("{edge}/nedgeai-prompt/v1/ue-prompts"))
        .deadline(deadline)
        .retries(0)
        .json(&serde_json::json!({ "supi": supi, "prompt": prompt }));
    async move {
        outcome_of(req.send_json::<serde_json::Value>().await, |v| {
            v["answeredBy"].as_str().map(str::to_owned)
        })
    }
}

/// Sends every (site, prompt) once, all at once, so the measured window starts with the
/// cloud's answers in the edge caches; returns how many failed.
async fn warm_ue_caches(client: &SbiClient, plan: &UePlan, deadline: Duration) -> usize {
    let mut seen = std::collections::BTreeSet::new();
    let mut calls = Vec::new();
    for (supi, edge) in plan.ues.iter().chain(std::iter::once(&plan.flood)) {
        if !seen.insert(edge.clone()) {
            continue;
        }
        for p in UE_PROMPTS {
            calls.push(tokio::spawn(ue_prompt_call(
                client, edge, supi, p, deadline,
            )));
        }
    }
    let mut failed = 0;
    for c in calls {
        if !matches!(c.await, Ok(Outcome::Ok(_))) {
            failed += 1;
        }
    }
    failed
}

fn print_table(results: &[ScenarioResult]) {
    let f = |v: f64| format!("{v:.1}");
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.clients.to_string(),
                r.requests.to_string(),
                format!("{:.0}", r.requests_per_s),
                format!("{:.2}", r.p50_ms),
                format!("{:.2}", r.p90_ms),
                format!("{:.2}", r.p99_ms),
                r.status.ok_2xx.to_string(),
                r.status.s429.to_string(),
                r.status.s503.to_string(),
                r.status.other.to_string(),
                r.status.timeouts.to_string(),
                f(r.peak_rss_mib),
                format!("{:+.1}", r.rss_growth_mib),
            ]
        })
        .collect();
    print!(
        "{}",
        report::table(
            &[
                "scenario",
                "clients",
                "requests",
                "req/s",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "2xx",
                "429",
                "503",
                "other",
                "timeouts",
                "peak RSS MiB",
                "RSS growth MiB",
            ],
            &rows,
        )
    );
    for r in results {
        let mut notes = Vec::new();
        let shed = r.status.s429 + r.status.s503;
        if shed > 0 {
            notes.push(format!(
                "{shed} shed (p99 {:.2} ms), {} ProblemDetails with a cause{}",
                r.shed_p99_ms,
                r.shed_with_problem,
                if r.name == "overload-cloud" {
                    format!(", {} with Retry-After", r.shed_with_retry_after)
                } else {
                    String::new()
                }
            ));
        }
        if !r.answered_by.is_empty() {
            let by: Vec<String> = r
                .answered_by
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            notes.push(format!("answered by: {}", by.join(", ")));
        }
        if !r.other_detail.is_empty() {
            let o: Vec<String> = r
                .other_detail
                .iter()
                .map(|(k, n)| format!("{k} x{n}"))
                .collect();
            notes.push(format!("other: {}", o.join(", ")));
        }
        if !notes.is_empty() {
            println!("  {}: {}", r.name, notes.join("; "));
        }
    }
}

/// Runs the chosen scenarios, prints the table and writes `--json`.
pub async fn run(a: BenchLoadArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.duration > 0.0, "--duration: must be positive");
    anyhow::ensure!(a.deadline > 0.0, "--deadline: must be positive");
    anyhow::ensure!(a.concurrency > 0, "--concurrency: must be at least 1");
    for s in &a.scenarios {
        anyhow::ensure!(
            SCENARIOS.contains(&s.as_str()),
            "--scenarios: unknown scenario '{s}' (known: {})",
            SCENARIOS.join(", ")
        );
    }
    let wants = |s: &str| a.scenarios.iter().any(|x| x == s);
    let window = Duration::from_secs_f64(a.duration);
    let deadline = Duration::from_secs_f64(a.deadline);
    let started = Instant::now();
    let loadavg = report::loadavg();

    let mut config = TestbedConfig::load_default()?;
    let needs_model = wants("ue-prompts") || wants("ue-flood") || wants("overload-cloud");
    if needs_model && config.cloudai.model.is_none() {
        config.cloudai.model =
            Some(netgpt_models::fetch::cached_cloud_model().ok_or_else(|| {
                anyhow::anyhow!("the cloud model is not cached: run `netgpt models fetch` first")
            })?);
    }
    let needs_main = SCENARIOS[..5].iter().any(|s| wants(s));
    let mut main = None;
    let mut plan = None;
    if needs_main {
        let mut cfg = config.clone();
        let supis = add_ues(&mut cfg, a.ues + 1);
        if !(wants("ue-prompts") || wants("ue-flood")) {
            // The SBI hot paths need neither the AI functions nor their models.
            cfg.nf.retain(|_, nf| {
                ["NRF", "AMF"]
                    .iter()
                    .any(|t| nf.nf_type.eq_ignore_ascii_case(t))
            });
        }
        let b = Bed::start(cfg).await.context("starting the testbed")?;
        if wants("ue-prompts") || wants("ue-flood") {
            plan = Some(ue_plan(&b, &supis)?);
        }
        main = Some(b);
    }
    let mut overload = None;
    if wants("overload-cloud") {
        let mut cfg = config.clone();
        cfg.nf.retain(|_, nf| {
            ["NRF", "CLOUDAI"]
                .iter()
                .any(|t| nf.nf_type.eq_ignore_ascii_case(t))
        });
        cfg.limits.max_in_flight = a.overload_max_in_flight.max(1);
        cfg.cloudai.max_batch = 2;
        cfg.cloudai.max_queue = a.overload_max_queue;
        overload = Some(
            Bed::start(cfg)
                .await
                .context("starting the overload testbed")?,
        );
    }
    if let (Some(b), Some(p)) = (&main, &plan) {
        let client = b.consumers(1)?[0].clone();
        let failed = warm_ue_caches(&client, p, Duration::from_secs(300)).await;
        if failed > 0 {
            println!("note: {failed} of the warm-up UE prompts failed");
        }
    }
    let startup_s = started.elapsed().as_secs_f64();
    println!(
        "netgpt bench load: {} | load average {loadavg} | {} clients, {:.1} s per scenario, {:.1} s deadline | OAuth2 {} | start-up {startup_s:.1} s",
        report::machine(),
        a.concurrency,
        a.duration,
        a.deadline,
        if config.oauth2.enabled { "on" } else { "off" },
    );

    let mut results = Vec::new();
    let n = a.concurrency;
    for name in SCENARIOS.iter().filter(|s| wants(s)) {
        let r = match *name {
            "nrf-disc" => {
                let b = main.as_ref().context("testbed")?;
                let (clients, url) = (
                    b.consumers(n)?,
                    format!("{}/nnrf-disc/v1/nf-instances", b.root_of("NRF")?),
                );
                drive(
                    name,
                    "NRF NFDiscover (GET nnrf-disc, target AMF)",
                    n,
                    window,
                    deadline,
                    true,
                    false,
                    move |c, _| {
                        let req = clients[c]
                            .get(url.clone())
                            .query(&[("target-nf-type", "AMF"), ("requester-nf-type", "AF")])
                            .deadline(deadline)
                            .retries(0);
                        async move { outcome_of(req.send().await, |_| None) }
                    },
                )
                .await
            }
            "amf-loc" => {
                let b = main.as_ref().context("testbed")?;
                let clients = b.consumers(n)?;
                let amf = b.root_of("AMF")?;
                let supis: Arc<Vec<String>> =
                    Arc::new(b.config.ue.iter().map(|u| u.supi.clone()).collect());
                drive(
                    name,
                    "AMF ProvideLocationInfo (POST namf-loc)",
                    n,
                    window,
                    deadline,
                    true,
                    false,
                    move |c, seq| {
                        let supi = &supis[seq.wrapping_mul(n).wrapping_add(c) % supis.len()];
                        let req = clients[c]
                            .post(format!("{amf}/namf-loc/v1/{supi}/provide-loc-info"))
                            .json(&serde_json::json!({"req5gsLoc": true, "reqCurrentLoc": true}))
                            .deadline(deadline)
                            .retries(0);
                        async move { outcome_of(req.send().await, |_| None) }
                    },
                )
                .await
            }
            "nrf-token" => {
                let b = main.as_ref().context("testbed")?;
                let url = token_url(&b.root_of("NRF")?);
                // Each client its own connection and User-Agent (the consumer key of a call
                // without a token), as separate consumers.
                let https = b.consumers(n)?;
                let secret = b.config.oauth2.client_secret.clone();
                drive(
                    name,
                    "NRF AccessTokenRequest (POST /oauth2/token, client credentials)",
                    n,
                    window,
                    deadline,
                    true,
                    false,
                    move |c, _| {
                        let id = consumer_instance_id(&format!("bench-load-{c}")).to_string();
                        let req = https[c]
                            .http()
                            .post(&url)
                            .basic_auth(&id, Some(&secret))
                            .header("content-type", "application/x-www-form-urlencoded")
                            .body(
                                AccessTokenReq::client_credentials(&id, "AF", "AMF", "namf-loc")
                                    .to_form(),
                            )
                            .timeout(deadline);
                        async move { outcome_of_raw(req.send().await).await }
                    },
                )
                .await
            }
            "ue-prompts" | "ue-flood" => {
                let b = main.as_ref().context("testbed")?;
                let p = plan.as_ref().context("UE plan")?;
                let clients = b.consumers(n)?;
                let flood = *name == "ue-flood";
                let ues = Arc::new(if flood {
                    vec![p.flood.clone()]
                } else {
                    p.ues.clone()
                });
                let description = if flood {
                    format!(
                        "every request for one SUPI (limits.ue_rate_per_s {}, ue_burst {})",
                        b.config.limits.ue_rate_per_s, b.config.limits.ue_burst
                    )
                } else {
                    format!(
                        "UE prompts (POST nedgeai-prompt ue-prompts), {} prompts from {} SUPIs at their serving edge",
                        UE_PROMPTS.len(),
                        ues.len()
                    )
                };
                drive(
                    name,
                    &description,
                    n,
                    window,
                    deadline,
                    !flood,
                    false,
                    move |c, seq| {
                        let k = seq.wrapping_mul(n).wrapping_add(c);
                        let (supi, edge) = &ues[k % ues.len()];
                        let prompt = UE_PROMPTS[k % UE_PROMPTS.len()];
                        ue_prompt_call(&clients[c], edge, supi, prompt, deadline)
                    },
                )
                .await
            }
            "overload-cloud" => {
                let b = overload.as_ref().context("overload testbed")?;
                let url = format!("{}/ncloudai-gen/v1/generate", b.root_of("CLOUDAI")?);
                let token = netgpt_sbi::oauth::request_token(
                    &b.config,
                    "bench-load-overload",
                    "CLOUDAI",
                    "ncloudai-gen",
                )
                .await
                .map_err(|e| anyhow::anyhow!("access token for the overload scenario: {e}"))?;
                let clients = n * a.overload_factor.max(1);
                // A connection per 16 clients, so streams do not queue in the client.
                let https: Arc<Vec<reqwest::Client>> = Arc::new(
                    (0..clients.div_ceil(16))
                        .map(|_| reqwest::Client::builder().http2_prior_knowledge().build())
                        .collect::<Result<_, _>>()?,
                );
                // One generation first (not counted), so the weights are paged in.
                let mut warm = https[0]
                    .post(&url)
                    .json(&serde_json::json!({"prompt": UE_PROMPTS[0], "maxTokens": 16}))
                    .timeout(Duration::from_secs(300));
                if !token.is_empty() {
                    warm = warm.bearer_auth(&token);
                }
                if !matches!(outcome_of_raw(warm.send().await).await, Outcome::Ok(_)) {
                    println!("note: the overload testbed's warm-up generation failed");
                }
                let description = format!(
                    "cloud AI function generate (16 tokens) far above its limits: limits.max_in_flight {}, cloudai max_batch {}, max_queue {}; clients {}",
                    b.config.limits.max_in_flight,
                    b.config.cloudai.max_batch,
                    b.config.cloudai.max_queue,
                    if a.overload_no_backoff {
                        "send again at once after a refusal"
                    } else {
                        "wait Retry-After after a refusal"
                    }
                );
                drive(
                    name,
                    &description,
                    clients,
                    window,
                    deadline,
                    false,
                    !a.overload_no_backoff,
                    move |c, seq| {
                        let mut req = https[c / 16]
                            .post(&url)
                            .json(&serde_json::json!({
                                "prompt": UE_PROMPTS[seq.wrapping_add(c) % UE_PROMPTS.len()],
                                "maxTokens": 16,
                            }))
                            .timeout(deadline);
                        if !token.is_empty() {
                            req = req.bearer_auth(&token);
                        }
                        async move { outcome_of_raw(req.send().await).await }
                    },
                )
                .await
            }
            _ => unreachable!("checked above"),
        };
        results.push(r);
    }

    print_table(&results);
    if let Some(path) = &a.json {
        let rep = LoadReport {
            machine: report::machine(),
            loadavg,
            date: report::now_utc(),
            duration_s: a.duration,
            concurrency: a.concurrency,
            deadline_s: a.deadline,
            oauth2: config.oauth2.enabled,
            startup_s,
            scenarios: results,
        };
        std::fs::write(path, serde_json::to_vec_pretty(&rep)?)
            .with_context(|| format!("--json {}", path.display()))?;
    }
    if let Some(b) = overload {
        b.bed.stop().await;
    }
    if let Some(b) = main {
        b.bed.stop().await;
    }
    Ok(())
}
