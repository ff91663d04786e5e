//! Faults — injected: SIGKILL of each NF process under load (one of two AMFs, the edge AI function, the cloud AI function, the NRF, the CmP) and a crash-like PostgreSQL restart (`-m immediate`, seconds down) under concurrent writes; asserted: the survivors keep serving, NRF discovery drops a killed instance once its heartbeat expires, discovery fails over to the surviving AMF, a CmP run needing a killed NF fails with a clear error, every acknowledged write is read back (0 lost), writes during the outage get 5xx ProblemDetails (no hang) and the NFs recover without a restart.
//!
//! Every NF is a separate `netgpt nf run <name>` process over one database (a SQLite file,
//! or a fresh database on `NETGPT_TEST_POSTGRES_URL` when set), with a 2 s NRF heartbeat.
//! Clients are `netgpt_sbi::oauth::consumer_client`s (tokens attached when OAuth2 is on).
//! Assertions are on counts (requests served, instances listed, writes read back), never
//! on durations; bounded polls only keep a broken NF from hanging the test.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netgpt_sbi::client::SbiResponse;
use netgpt_sbi::config::TestbedConfig;
use netgpt_sbi::models::nnrf::SearchResult;
use netgpt_sbi::{ClientError, DiscoveryQuery, NrfClient, SbiClient};
use reqwest::Method;
use serde_json::{json, Value};

mod support;

use support::nf_run_env;

/// The two tests share the machine's cores and (when set) the PostgreSQL server that one
/// of them restarts: they run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// NRF heartbeat timer of the testbed under test (seconds): expiry after 1.5 x this.
const HEARTBEAT_S: &str = "2";

/// Child processes, killed (SIGKILL) when dropped so a failed assertion leaves none behind.
#[derive(Default)]
struct Procs(Vec<(String, Child)>);

impl Procs {
    fn add(&mut self, name: &str, child: Child) {
        self.0.push((name.to_owned(), child));
    }

    /// SIGKILLs NF `name` and reaps it.
    fn kill(&mut self, name: &str) {
        let i = self
            .0
            .iter()
            .position(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no process {name}"));
        let (_, mut child) = self.0.remove(i);
        child.kill().unwrap(); // SIGKILL: no deregistration, no clean-up
        child.wait().unwrap();
    }

    /// Whether every process is still running (none exited or was restarted).
    fn all_running(&mut self) -> bool {
        self.0
            .iter_mut()
            .all(|(_, c)| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The default testbed configuration with every NF on an ephemeral port and a second
/// AMF, `amf2`; written to `dir`.
fn write_config(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join("deploy/testbed.toml")).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("listen = ") {
            out.push_str("listen = \"127.0.0.1:0\"\n");
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str("\n[nf.amf2]\ntype = \"AMF\"\nlisten = \"127.0.0.1:0\"\nlocality = \"core\"\n");
    let path = dir.join("faults.toml");
    std::fs::write(&path, out).unwrap();
    path
}

/// Starts the NFs over `db`, in order, the NRF first (when present).
struct Testbed {
    config: PathBuf,
    data: PathBuf,
    db: String,
    nrf: Option<String>,
    procs: Procs,
    roots: std::collections::BTreeMap<String, String>,
}

impl Testbed {
    fn new(dir: &Path, db: String) -> Self {
        Self {
            config: write_config(dir),
            data: dir.join("data"),
            db,
            nrf: None,
            procs: Procs::default(),
            roots: Default::default(),
        }
    }

    fn start(&mut self, name: &str) -> String {
        let config = self.config.display().to_string();
        let data = self.data.display().to_string();
        let (child, root) = nf_run_env(
            name,
            &self.db,
            self.nrf.as_deref(),
            &[
                ("NETGPT_CONFIG", config.as_str()),
                ("NETGPT__DATA_DIR", data.as_str()),
                ("NETGPT__NRF__HEARTBEAT_TIMER", HEARTBEAT_S),
            ],
        );
        if name == "nrf" {
            self.nrf = Some(root.clone());
        }
        self.procs.add(name, child);
        self.roots.insert(name.to_owned(), root.clone());
        root
    }

    fn root(&self, name: &str) -> String {
        self.roots[name].clone()
    }

    /// A consumer client acting as an AF towards this testbed's NRF.
    fn client(&self, name: &str) -> SbiClient {
        let mut cfg = TestbedConfig::load(Some(self.config.as_path())).unwrap();
        cfg.nrf.uri = self.nrf.clone().expect("NRF started");
        netgpt_sbi::oauth::consumer_client(&cfg, name).unwrap()
    }
}

/// One service operation a load task repeats.
#[derive(Clone)]
struct Op {
    method: Method,
    url: String,
    service: &'static str,
    nf_type: &'static str,
    body: Option<Value>,
}

impl Op {
    fn new(method: Method, url: String, service: &'static str, nf_type: &'static str) -> Self {
        Self {
            method,
            url,
            service,
            nf_type,
            body: None,
        }
    }

    fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    async fn send(
        &self,
        client: &SbiClient,
        deadline: Duration,
    ) -> Result<SbiResponse, ClientError> {
        let mut r = client
            .request(self.method.clone(), self.url.clone())
            .service(self.service)
            .target_nf_type(self.nf_type)
            .deadline(deadline);
        if let Some(b) = &self.body {
            r = r.json(b);
        }
        r.send().await
    }
}

/// Successes and failures of one load task.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    err: AtomicU64,
}

impl Tally {
    fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }
    fn err(&self) -> u64 {
        self.err.load(Ordering::Relaxed)
    }
}

/// Polls `cond` every 50 ms until it holds; panics naming `what` after `bound`.
async fn wait_until(what: &str, bound: Duration, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < bound, "{what}: not within {bound:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// NFDiscover (no cache) of `nf_type` by an AF: `(nfInstanceName, API root)` of each instance.
async fn discover(
    client: &SbiClient,
    nrf: &str,
    nf_type: &str,
) -> Result<Vec<(String, String)>, ClientError> {
    let found: SearchResult = client
        .get(format!("{nrf}/nnrf-disc/v1/nf-instances"))
        .service("nnrf-disc")
        .target_nf_type("NRF")
        .query(&[("target-nf-type", nf_type), ("requester-nf-type", "AF")])
        .send_json()
        .await?;
    Ok(found
        .nf_instances
        .iter()
        .map(|p| {
            (
                p.nf_instance_name.clone().unwrap_or_default(),
                p.services().find_map(|s| s.api_root()).unwrap_or_default(),
            )
        })
        .collect())
}

/// Polls NFDiscover until `name` is no longer listed among the `nf_type` instances while
/// every name in `alive` is; returns the number of polls it took and the time since
/// `killed` (reported, not asserted).
async fn wait_expired(
    client: &SbiClient,
    nrf: &str,
    nf_type: &str,
    name: &str,
    alive: &[&str],
    killed: Instant,
) -> (u32, Duration) {
    let t = Instant::now();
    let mut polls = 0;
    loop {
        polls += 1;
        let listed = discover(client, nrf, nf_type).await.unwrap();
        let gone = !listed.iter().any(|(n, _)| n == name);
        if gone && alive.iter().all(|a| listed.iter().any(|(n, _)| n == a)) {
            return (polls, killed.elapsed());
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the NRF still lists {name} (or not {alive:?}): {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs CmP workflow `wf` to its end (`wait: true`): the run record, or the refusal.
async fn cmp_run(
    client: &SbiClient,
    cmp: &str,
    wf: &str,
    input: Value,
) -> Result<Value, ClientError> {
    client
        .post(format!("{cmp}/ncmp-wf/v1/workflows/{wf}/runs"))
        .service("ncmp-wf")
        .target_nf_type("CMP")
        .deadline(Duration::from_secs(60))
        .json(&json!({ "input": input, "wait": true }))
        .send_json()
        .await
}

async fn cmp_register(
    client: &SbiClient,
    cmp: &str,
    yaml: &str,
) -> Result<SbiResponse, ClientError> {
    client
        .post(format!("{cmp}/ncmp-wf/v1/workflows"))
        .service("ncmp-wf")
        .target_nf_type("CMP")
        .body(yaml.to_owned(), "application/yaml")
        .send()
        .await
}

/// One step at the UE's edge site (pinned by input `site`).
const WF_EDGE: &str = r#"
name: faults-edge
budgetMs: 15000
inputs: [prompt]
steps:
  - id: desensitize
    operation: edge.desensitize
    inputs: { prompt: $input.prompt }
    costMs: { cpu: 4 }
    timeoutMs: 2000
    retry: { limit: 2, backoffMs: 100 }
    idempotent: true
"#;

/// One step at any AMF.
const WF_AMF: &str = r#"
name: faults-amf
budgetMs: 15000
inputs: [supi]
steps:
  - id: location
    operation: amf.location
    inputs: { supi: $input.supi }
    costMs: { cpu: 2 }
    timeoutMs: 2000
    retry: { limit: 2, backoffMs: 100 }
    idempotent: true
"#;

/// A UE of the default configuration, served at King's Cross (edge-london).
const SUPI: &str = "imsi-001010000000002";

/// Waits until every named tally has grown by `by` successes beyond `from`.
async fn wait_served(
    what: &str,
    tallies: &[(String, Arc<Tally>)],
    names: &[&str],
    from: &std::collections::BTreeMap<String, u64>,
    by: u64,
) {
    for name in names {
        let t = &tallies.iter().find(|(n, _)| n == name).unwrap().1;
        let base = from[*name];
        wait_until(
            &format!("{name} keeps serving {what} (ok {} from {base})", t.ok()),
            Duration::from_secs(30),
            || t.ok() >= base + by,
        )
        .await;
    }
}

fn snapshot(tallies: &[(String, Arc<Tally>)]) -> std::collections::BTreeMap<String, u64> {
    tallies.iter().map(|(n, t)| (n.clone(), t.ok())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_nf_killed_under_load_leaves_the_others_serving() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let db = match std::env::var(netgpt_sbi::db::TEST_POSTGRES_ENV) {
        Ok(url) if !url.trim().is_empty() => netgpt_sbi::db::fresh_postgres_database(url.trim())
            .await
            .unwrap(),
        _ => format!("sqlite://{}", dir.path().join("faults.db").display()),
    };
    let cloud = netgpt_models::fetch::cached_cloud_model().is_some();
    if !cloud {
        eprintln!(
            "faults: the cloud model is not cached (`cargo run -q -p netgpt -- models fetch`): \
             the cloud AI function is left out of the kill test"
        );
    }
    let mut tb = Testbed::new(dir.path(), db);
    let nrf = tb.start("nrf");
    let mut nfs = vec!["amf", "amf2", "edge-london", "cmp"];
    if cloud {
        nfs.insert(3, "cloudai");
    }
    for nf in &nfs {
        tb.start(nf);
    }
    let client = tb.client("faults-load");

    // Steady load: one task per NF, each repeating one of its service operations.
    let mut ops: Vec<(String, Op)> = vec![
        (
            "nrf".into(),
            Op::new(
                Method::GET,
                format!("{nrf}/nnrf-disc/v1/nf-instances?target-nf-type=AMF&requester-nf-type=AF"),
                "nnrf-disc",
                "NRF",
            ),
        ),
        (
            "cmp".into(),
            Op::new(
                Method::GET,
                format!("{}/ncmp-res/v1/nodes", tb.root("cmp")),
                "ncmp-res",
                "CMP",
            ),
        ),
        (
            "edge-london".into(),
            Op::new(
                Method::POST,
                format!("{}/nedgeai-prompt/v1/desensitize", tb.root("edge-london")),
                "nedgeai-prompt",
                "EDGEAI",
            )
            .json(json!({ "prompt": "Call Alice Smith at +44 20 7946 0958 about dinner" })),
        ),
    ];
    for amf in ["amf", "amf2"] {
        ops.push((
            amf.into(),
            Op::new(
                Method::POST,
                format!("{}/namf-loc/v1/{SUPI}/provide-loc-info", tb.root(amf)),
                "namf-loc",
                "AMF",
            )
            .json(json!({ "req5gsLoc": true, "reqTimeZone": true })),
        ));
    }
    if cloud {
        ops.push((
            "cloudai".into(),
            Op::new(
                Method::GET,
                format!("{}/ncloudai-gen/v1/model", tb.root("cloudai")),
                "ncloudai-gen",
                "CLOUDAI",
            ),
        ));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut tallies = Vec::new();
    let mut tasks = Vec::new();
    for (name, op) in ops {
        let tally = Arc::new(Tally::default());
        tallies.push((name, tally.clone()));
        let (client, stop) = (client.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match op.send(&client, Duration::from_secs(3)).await {
                    Ok(_) => tally.ok.fetch_add(1, Ordering::Relaxed),
                    Err(_) => {
                        tally.err.fetch_add(1, Ordering::Relaxed);
                        // A dead peer refuses at once: do not spin.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        0
                    }
                };
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    let all: Vec<&str> = tallies.iter().map(|(n, _)| n.as_str()).collect();
    let zero: std::collections::BTreeMap<String, u64> =
        tallies.iter().map(|(n, _)| (n.clone(), 0)).collect();
    wait_served("before any kill", &tallies, &all, &zero, 5).await;

    // The CmP's workflows work while everything is up.
    let cmp = tb.root("cmp");
    for wf in [WF_EDGE, WF_AMF] {
        let r = cmp_register(&client, &cmp, wf).await.unwrap();
        assert_eq!(r.status, 201);
    }
    let edge_input = json!({ "prompt": "Call me on +44 20 7946 0958", "site": "edge-london" });
    let run = cmp_run(&client, &cmp, "faults-edge", edge_input.clone())
        .await
        .unwrap();
    assert_eq!(run["status"], "succeeded", "{run}");
    let run = cmp_run(&client, &cmp, "faults-amf", json!({ "supi": SUPI }))
        .await
        .unwrap();
    assert_eq!(run["status"], "succeeded", "{run}");

    let mut report = Vec::new();
    let mut alive: Vec<&str> = all.clone();

    // 1. One of the two AMFs.
    let before = snapshot(&tallies);
    let errs = tallies.iter().find(|(n, _)| n == "amf").unwrap().1.err();
    tb.procs.kill("amf");
    let killed = Instant::now();
    alive.retain(|n| *n != "amf");
    let (polls, t) = wait_expired(&client, &nrf, "AMF", "amf", &["amf2"], killed).await;
    report.push(format!(
        "amf killed: gone from NFDiscover after {polls} polls, {t:.1?}"
    ));
    wait_served("after the AMF kill", &tallies, &alive, &before, 5).await;
    let amf_tally = &tallies.iter().find(|(n, _)| n == "amf").unwrap().1;
    assert!(
        amf_tally.err() > errs,
        "the killed AMF never failed a request"
    );
    // A consumer discovering through the NRF now lands on the survivor.
    let nrf_client = NrfClient::new(client.clone(), nrf.clone());
    let q = DiscoveryQuery::new("AMF", "AF").service("namf-loc");
    let root = nrf_client.api_root_of(&q, "namf-loc").await.unwrap();
    assert_eq!(root, tb.root("amf2"));
    let loc: Value = client
        .post(format!("{root}/namf-loc/v1/{SUPI}/provide-loc-info"))
        .service("namf-loc")
        .target_nf_type("AMF")
        .json(&json!({ "req5gsLoc": true }))
        .send_json()
        .await
        .unwrap();
    assert!(loc.is_object(), "{loc}");
    // So does the CmP (its retry rediscovers).
    let run = cmp_run(&client, &cmp, "faults-amf", json!({ "supi": SUPI }))
        .await
        .unwrap();
    assert_eq!(run["status"], "succeeded", "after fail-over: {run}");

    // 2. The only edge AI function of edge-london: a run that needs it fails, clearly.
    let before = snapshot(&tallies);
    tb.procs.kill("edge-london");
    let killed = Instant::now();
    alive.retain(|n| *n != "edge-london");
    match cmp_run(&client, &cmp, "faults-edge", edge_input.clone()).await {
        Ok(run) => {
            assert_eq!(run["status"], "failed", "{run}");
            let error = run["error"].as_str().unwrap_or_default();
            assert!(
                error.contains("step 'desensitize' failed"),
                "the run's error names the step: {run}"
            );
            report.push(format!("edge-london killed: CmP run failed: {error}"));
        }
        Err(e) => {
            // Planned after the NRF dropped it: refused up front, as a ProblemDetails.
            let p = e
                .problem()
                .unwrap_or_else(|| panic!("not a ProblemDetails: {e}"));
            assert!(p.cause.is_some(), "{e}");
            report.push(format!("edge-london killed: CmP run refused: {e}"));
        }
    }
    let (polls, t) = wait_expired(&client, &nrf, "EDGEAI", "edge-london", &[], killed).await;
    report.push(format!(
        "edge-london: gone from NFDiscover after {polls} polls, {t:.1?}"
    ));
    wait_served("after the edge kill", &tallies, &alive, &before, 5).await;
    // Once the NRF has dropped it, the run is refused before it starts (or fails again).
    match cmp_run(&client, &cmp, "faults-edge", edge_input.clone()).await {
        Ok(run) => assert_eq!(run["status"], "failed", "{run}"),
        Err(e) => assert!(e.problem().is_some_and(|p| p.cause.is_some()), "{e}"),
    }

    // 3. The cloud AI function.
    if cloud {
        let before = snapshot(&tallies);
        tb.procs.kill("cloudai");
        let killed = Instant::now();
        alive.retain(|n| *n != "cloudai");
        let (polls, t) = wait_expired(&client, &nrf, "CLOUDAI", "cloudai", &[], killed).await;
        report.push(format!(
            "cloudai killed: gone from NFDiscover after {polls} polls, {t:.1?}"
        ));
        wait_served("after the cloud kill", &tallies, &alive, &before, 5).await;
    }

    // 4. The NRF: the others keep serving the peers that already found them.
    let before = snapshot(&tallies);
    tb.procs.kill("nrf");
    alive.retain(|n| *n != "nrf");
    wait_served("after the NRF kill", &tallies, &alive, &before, 10).await;
    // The CmP needs discovery to plan: a run works from its cache or is refused, clearly.
    match cmp_run(&client, &cmp, "faults-amf", json!({ "supi": SUPI })).await {
        Ok(run) => report.push(format!("nrf killed: CmP run {}", run["status"])),
        Err(e) => {
            let p = e
                .problem()
                .unwrap_or_else(|| panic!("not a ProblemDetails: {e}"));
            assert_eq!(p.status, 503, "{e}");
            report.push(format!("nrf killed: CmP run refused: {e}"));
        }
    }

    // 5. The CmP: the AMF that is left keeps serving.
    let before = snapshot(&tallies);
    tb.procs.kill("cmp");
    alive.retain(|n| *n != "cmp");
    wait_served("after the CmP kill", &tallies, &alive, &before, 5).await;

    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let total_ok: u64 = tallies.iter().map(|(_, t)| t.ok()).sum();
    let total_err: u64 = tallies.iter().map(|(_, t)| t.err()).sum();
    eprintln!("faults/kill: {total_ok} requests served, {total_err} failed (to killed NFs)");
    for (n, t) in &tallies {
        eprintln!("faults/kill:   {n}: {} ok, {} failed", t.ok(), t.err());
    }
    for line in report {
        eprintln!("faults/kill: {line}");
    }
}

/// What a writer did: the keys of the writes acknowledged (2xx), per phase, and how the
/// others failed.
#[derive(Default)]
struct Writes {
    acked: Mutex<Vec<u64>>,
    acked_in: [AtomicU64; 3],
    /// 5xx answers with a ProblemDetails (the clear error an outage should give).
    problems: AtomicU64,
    /// Anything else: a timeout, a transport error, a 4xx, an answer without a cause.
    unclear: Mutex<Vec<String>>,
}

/// One kind of write and how to read it back.
#[derive(Clone, Copy)]
enum Kind {
    /// NRF NFRegister of an AF profile; read back by NFProfileRetrieval.
    NrfProfile,
    /// A user profile at the edge AI function; read back by GET.
    EdgeProfile,
    /// An AMF UE context registration; read back by GET.
    AmfUe,
    /// A CmP workflow registration; read back by GET.
    CmpWorkflow,
}

impl Kind {
    const ALL: [Kind; 4] = [
        Kind::NrfProfile,
        Kind::EdgeProfile,
        Kind::AmfUe,
        Kind::CmpWorkflow,
    ];

    fn nf(self) -> &'static str {
        match self {
            Kind::NrfProfile => "nrf",
            Kind::EdgeProfile => "edge-london",
            Kind::AmfUe => "amf",
            Kind::CmpWorkflow => "cmp",
        }
    }

    /// The resource URL of write `n` at `root`.
    fn url(self, root: &str, n: u64) -> String {
        match self {
            Kind::NrfProfile => format!("{root}/nnrf-nfm/v1/nf-instances/{}", nrf_id(n)),
            Kind::EdgeProfile => {
                format!("{root}/nedgeai-prompt/v1/user-profiles/imsi-0010180{n:08}")
            }
            Kind::AmfUe => format!("{root}/namf-comm/v1/ue-contexts/imsi-0010190{n:08}"),
            Kind::CmpWorkflow => format!("{root}/ncmp-wf/v1/workflows/faults-wf-{n}"),
        }
    }

    fn service(self) -> (&'static str, &'static str) {
        match self {
            Kind::NrfProfile => ("nnrf-nfm", "NRF"),
            Kind::EdgeProfile => ("nedgeai-prompt", "EDGEAI"),
            Kind::AmfUe => ("namf-comm", "AMF"),
            Kind::CmpWorkflow => ("ncmp-wf", "CMP"),
        }
    }

    async fn write(
        self,
        client: &SbiClient,
        root: &str,
        n: u64,
    ) -> Result<SbiResponse, ClientError> {
        let (service, nf_type) = self.service();
        let req = match self {
            Kind::NrfProfile => client.put(self.url(root, n)).json(&json!({
                "nfInstanceId": nrf_id(n),
                "nfType": "AF",
                "nfStatus": "REGISTERED",
                "heartBeatTimer": 3600,
                "ipv4Addresses": ["127.0.0.9"],
            })),
            Kind::EdgeProfile => client
                .put(self.url(root, n))
                .json(&json!({ "preferences": ["vegetarian", "quiet places"], "language": "en" })),
            Kind::AmfUe => client
                .put(self.url(root, n))
                .json(&json!({ "nrCellId": "000002001" })),
            Kind::CmpWorkflow => client.post(format!("{root}/ncmp-wf/v1/workflows")).body(
                format!(
                    "name: faults-wf-{n}\nsteps:\n  - id: s\n    operation: noop\n    costMs: {{ cpu: 1 }}\n"
                ),
                "application/yaml",
            ),
        };
        req.service(service).target_nf_type(nf_type).send().await
    }

    async fn read(
        self,
        client: &SbiClient,
        root: &str,
        n: u64,
    ) -> Result<SbiResponse, ClientError> {
        let (service, nf_type) = self.service();
        client
            .get(self.url(root, n))
            .service(service)
            .target_nf_type(nf_type)
            .send()
            .await
    }
}

fn nrf_id(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_postgres_crash_restart() {
    let _serial = SERIAL.lock().await;
    let admin = match std::env::var(netgpt_sbi::db::TEST_POSTGRES_ENV) {
        Ok(url) if !url.trim().is_empty() => url.trim().to_owned(),
        _ => {
            eprintln!(
                "faults: {} is unset: PostgreSQL restart test skipped (source .ci/postgres.sh)",
                netgpt_sbi::db::TEST_POSTGRES_ENV
            );
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let db = netgpt_sbi::db::fresh_postgres_database(&admin)
        .await
        .unwrap();
    let mut tb = Testbed::new(dir.path(), db);
    for nf in ["nrf", "amf", "edge-london", "cmp"] {
        tb.start(nf);
    }
    let client = tb.client("faults-writer");

    // Concurrent writers, one per NF, until told to stop.
    let phase = Arc::new(AtomicU64::new(0)); // 0 before, 1 during, 2 after the restart
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    let mut tasks = Vec::new();
    for kind in Kind::ALL {
        let w = Arc::new(Writes::default());
        writers.push((kind, w.clone()));
        let (client, root, phase, stop) = (
            client.clone(),
            tb.root(kind.nf()),
            phase.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let during = phase.load(Ordering::Relaxed) as usize;
                match kind.write(&client, &root, n).await {
                    Ok(_) => {
                        w.acked.lock().unwrap().push(n);
                        w.acked_in[during].fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        let clear = e
                            .problem()
                            .is_some_and(|p| p.status >= 500 && p.cause.is_some());
                        if clear {
                            w.problems.fetch_add(1, Ordering::Relaxed);
                        } else {
                            w.unclear.lock().unwrap().push(e.to_string());
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }
    let acked_in = |w: &Writes, p: usize| w.acked_in[p].load(Ordering::Relaxed);
    for (kind, w) in &writers {
        wait_until(
            &format!("{} accepts writes", kind.nf()),
            Duration::from_secs(30),
            || acked_in(w.as_ref(), 0) >= 10,
        )
        .await;
    }

    // Crash-like restart: no checkpoint, down for longer than the NFs wait for a connection.
    phase.store(1, Ordering::Relaxed);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/postgres.sh");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .arg(script)
            .args(["restart", "immediate", "6"])
            .stderr(std::process::Stdio::inherit())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "postgres.sh restart failed");
    let printed = String::from_utf8_lossy(&out.stdout);
    let host_port = |url: &str| {
        url.split('@')
            .nth(1)
            .and_then(|r| r.split('/').next())
            .map(str::to_owned)
    };
    assert_eq!(
        host_port(printed.trim()),
        host_port(&admin),
        "postgres.sh restarted another cluster ({printed}) than {admin}: set NETGPT_PG_DIR to its folder"
    );
    phase.store(2, Ordering::Relaxed);

    // The same NF processes take writes again.
    for (kind, w) in &writers {
        wait_until(
            &format!("{} accepts writes again after the restart", kind.nf()),
            Duration::from_secs(60),
            || acked_in(w.as_ref(), 2) >= 10,
        )
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    assert!(tb.procs.all_running(), "an NF exited during the outage");

    // Every acknowledged write is in the database: read back through NFs started afresh on
    // it (the AMF and the CmP serve reads from memory; a new process reads the database).
    for nf in ["cmp", "edge-london", "amf", "nrf"] {
        tb.procs.kill(nf);
    }
    tb.nrf = None;
    for nf in ["nrf", "amf", "edge-london", "cmp"] {
        tb.start(nf);
    }
    let client = tb.client("faults-reader");
    let mut total_acked = 0;
    let mut lost = Vec::new();
    let mut problems = 0;
    let mut unclear = Vec::new();
    for (kind, w) in &writers {
        let acked = w.acked.lock().unwrap().clone();
        total_acked += acked.len();
        let root = tb.root(kind.nf());
        for n in acked {
            if let Err(e) = kind.read(&client, &root, n).await {
                lost.push(format!("{} #{n}: {e}", kind.nf()));
            }
        }
        problems += w.problems.load(Ordering::Relaxed);
        unclear.extend(w.unclear.lock().unwrap().iter().cloned());
        eprintln!(
            "faults/postgres: {}: {} writes acknowledged ({} before, {} during, {} after the restart), {} refused with a 5xx ProblemDetails",
            kind.nf(),
            acked_in(w, 0) + acked_in(w, 1) + acked_in(w, 2),
            acked_in(w, 0),
            acked_in(w, 1),
            acked_in(w, 2),
            w.problems.load(Ordering::Relaxed),
        );
    }
    eprintln!(
        "faults/postgres: {total_acked} writes acknowledged, {} lost, {problems} refused clearly, {} unclear",
        lost.len(),
        unclear.len()
    );
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    assert!(
        unclear.is_empty(),
        "writes that failed without a 5xx ProblemDetails: {unclear:?}"
    );
    assert!(
        problems > 0,
        "no write saw the outage: was PostgreSQL restarted?"
    );
}
