//! The testbed console (`/console/`): the JSON it reads, assembled from the real NRF, AMF,
//! inventory and engine of an in-process testbed; the page itself rendered by headless
//! Chromium (Debian's `chromium`, `NETGPT_CHROMIUM`; see `.ci/chromium.sh`) with the DOM
//! checked after its scripts ran and a screenshot saved under the test's output folder.
//! Peers that do not answer show as unavailable without failing the page.

mod api_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use api_support::{h2_client, Bed, UE_HANGZHOU, UE_LONDON};
use chrono::DateTime;
use netgpt_cmp::console::{Console, DEFAULT_JAEGER_UI};
use netgpt_sbi::config::TestbedConfig;
use netgpt_sbi::nf::NfContext;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const JAEGER_UI: &str = "http://jaeger.test:16686";

fn ms_since(start: &Value, t: &Value) -> f64 {
    let p = |v: &Value| {
        DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("a time, got {v}")))
            .unwrap()
    };
    (p(t) - p(start)).num_microseconds().unwrap() as f64 / 1000.0
}

/// Runs headless Chromium on `url` with `args` (a fresh profile each time); its stdout.
async fn chromium(bin: &str, url: &str, args: &[String]) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        // Lets the page's fetches and scripts finish before the dump or the picture.
        "--virtual-time-budget=5000",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(args)
    .arg(url)
    .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("chromium finished within 120 s")
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 DOM")
}

/// The cells of the steps-table row of `step` in the dumped DOM, tags stripped.
fn step_row(dom: &str, step: &str) -> Vec<String> {
    let start = dom
        .find(&format!("<td><b>{step}</b></td>"))
        .unwrap_or_else(|| panic!("a table row for step {step}"));
    let row = &dom[start..start + dom[start..].find("</tr>").unwrap()];
    row.split("<td>")
        .skip(1)
        .map(|c| {
            let mut text = String::new();
            let mut in_tag = false;
            for ch in c.chars() {
                match ch {
                    '<' => in_tag = true,
                    '>' => in_tag = false,
                    _ if !in_tag => text.push(ch),
                    _ => {}
                }
            }
            text
        })
        .collect()
}

fn assert_png(path: &Path, width: u32, height: u32) {
    let bytes = std::fs::read(path).expect("screenshot written");
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is a PNG",
        path.display()
    );
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    assert_eq!(&bytes[12..16], b"IHDR");
    assert_eq!((be(16), be(20)), (width, height), "screenshot size");
    // A blank page of this size compresses to a few kB; the rendered console is far larger.
    assert!(
        bytes.len() > 30_000,
        "non-trivial screenshot: {} bytes",
        bytes.len()
    );
}

#[tokio::test]
async fn console_shows_topology_load_workflows_and_a_run_in_chromium() {
    // Read when the CmP starts the console.
    std::env::set_var("NETGPT_JAEGER_UI", JAEGER_UI);
    let bed = Bed::start().await;

    // Live load on one device, a finished run, a run answered at the other edge.
    let (s, _, _) = bed
        .send(
            Method::PUT,
            "/ncmp-res/v1/nodes/edge-hangzhou/load",
            &json!({ "devices": [{ "deviceId": "vpu0", "busyUnits": 1, "queueLength": 3 }] }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, run) = bed
        .send(
            Method::POST,
            "/ncmp-wf/v1/workflows/netgpt/runs",
            &json!({ "input": { "supi": UE_HANGZHOU, "prompt": "Recommend libraries" }, "wait": true }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{run}");
    assert_eq!(run["status"], "succeeded", "{run}");
    let id = run["id"].as_str().unwrap().to_owned();

    // The JSON the page reads.
    let (s, ov) = bed.get("/console/api/overview").await;
    assert_eq!(s, StatusCode::OK);
    for sec in ["cells", "ues", "nfs", "runs"] {
        assert_eq!(ov[sec]["available"], true, "{sec}: {}", ov[sec]);
    }
    let items = |sec: &str| ov[sec]["items"].as_array().unwrap().clone();
    let sites: Vec<&str> = ov["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(
        sites.contains(&"edge-hangzhou") && sites.contains(&"edge-london"),
        "{sites:?}"
    );
    assert!(items("cells")
        .iter()
        .any(|c| c["ncgi"]["nrCellId"] == "000001001" && c["site"] == "edge-hangzhou"));
    let ues = items("ues");
    for supi in [UE_HANGZHOU, UE_LONDON] {
        assert!(ues.iter().any(|u| u["supi"] == supi), "{supi} in {ues:?}");
    }
    let types: Vec<String> = items("nfs")
        .iter()
        .map(|n| n["nfType"].as_str().unwrap().to_owned())
        .collect();
    for t in ["AMF", "CMP", "EDGEAI", "CLOUDAI"] {
        assert!(types.iter().any(|x| x == t), "{t} in {types:?}");
    }
    let hz = ov["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["nodeId"] == "edge-hangzhou")
        .expect("node edge-hangzhou");
    let vpu = hz["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["deviceId"] == "vpu0")
        .unwrap();
    assert_eq!(vpu["load"]["busyUnits"], 1);
    assert_eq!(vpu["load"]["queueLength"], 3);
    let wf: Vec<&str> = ov["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert!(
        wf.contains(&"netgpt") && wf.contains(&"cloud-only"),
        "{wf:?}"
    );
    assert_eq!(items("runs")[0]["id"], id.as_str(), "newest run first");

    let (s, view) = bed.get(&format!("/console/api/runs/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(view["run"], run, "the stored record");
    assert_eq!(view["plan"]["workflow"], "netgpt");
    let edges = view["edges"].as_array().unwrap();
    for (a, b) in [("location", "complete"), ("dedup", "complete")] {
        assert!(edges.contains(&json!([a, b])), "{a}->{b} in {edges:?}");
    }
    let trace_url = view["traceUrl"].as_str().unwrap();
    match view["traceId"].as_str() {
        Some(t) => assert_eq!(trace_url, format!("{JAEGER_UI}/trace/{t}")),
        None => assert_eq!(
            trace_url,
            format!("{JAEGER_UI}/search?service=netgpt&tags=%7B%22run.id%22%3A%22{id}%22%7D")
        ),
    }
    let (s, _, body) = bed
        .send(Method::GET, "/console/api/runs/no-such-run", &Value::Null)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    let (s, ct, html) = bed.get_text("/console/").await;
    assert_eq!(s, StatusCode::OK);
    assert!(ct.starts_with("text/html"), "{ct}");
    assert!(html.contains(r#"<script src="console.js">"#));
    let (s, ct, _) = bed.get_text("/console/console.js").await;
    assert_eq!(
        (s, ct.starts_with("text/javascript")),
        (StatusCode::OK, true)
    );
    // The console is not an SBI service: absent from the CmP's OpenAPI document.
    let (_, doc) = bed.get("/openapi.json").await;
    assert!(doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .all(|p| !p.starts_with("/console")));

    let Ok(bin) = std::env::var("NETGPT_CHROMIUM") else {
        println!(
            "SKIP the Chromium part: NETGPT_CHROMIUM is unset (eval \"$(bash .ci/chromium.sh)\")"
        );
        bed.stop().await;
        return;
    };
    let url = format!("{}/console/#run={id}", bed.cmp);
    let dom = chromium(&bin, &url, &["--dump-dom".to_owned()]).await;
    assert!(
        dom.contains(r#"data-overview="ok""#) && dom.contains(&format!(r#"data-run="{id}""#)),
        "scripts ran: {dom}"
    );
    // Topology: sites, cells, UEs, NF instances.
    for text in [
        "<code>edge-hangzhou</code>",
        "<code>edge-london</code>",
        "<code>000001001</code>",
        &format!("<code>{UE_HANGZHOU}</code>"),
        &format!("<code>{UE_LONDON}</code>"),
        "<b>AMF</b>",
        "<b>EDGEAI</b>",
        "<b>CLOUDAI</b>",
        "<b>CMP</b>",
        // Device load: 1 of vpu0's 2 units busy, 3 waiting.
        "1/2 · queue 3",
        // Workflows and the run in the list.
        "<b>netgpt</b>",
        "<b>cloud-only</b>",
        &format!(r##"href="#run={id}""##),
    ] {
        assert!(dom.contains(text), "{text} in the DOM:\n{dom}");
    }
    assert!(!dom.contains("unavailable:"), "every peer answered:\n{dom}");
    // The run: every step's box on its node and device, and its table row with timings
    // matching the record (JS parses the times itself: within 0.2 ms).
    let steps = run["steps"].as_array().unwrap();
    for s in steps {
        let step = s["stepId"].as_str().unwrap();
        let (node, device, status) = (
            s["node"].as_str().unwrap(),
            s["device"].as_str().unwrap(),
            s["status"].as_str().unwrap(),
        );
        let g = format!(
            r#"<g class="step" data-step="{step}" data-node="{node}" data-device="{device}" data-status="{status}">"#
        );
        assert!(dom.contains(&g), "{g} in the DOM");
        let row = step_row(&dom, step);
        assert_eq!(
            &row[1..5],
            [node, device, status, &s["attempts"].to_string()]
        );
        let (a, b) = (
            ms_since(&run["startedAt"], &s["startedAt"]),
            ms_since(&run["startedAt"], &s["finishedAt"]),
        );
        let shown: Vec<f64> = row[5..7].iter().map(|c| c.parse().unwrap()).collect();
        assert!(
            (shown[0] - a).abs() <= 0.2 && (shown[1] - b).abs() <= 0.2,
            "{step}: shown {shown:?}, recorded {a:.3}..{b:.3} ms"
        );
    }
    assert_eq!(
        dom.matches(r#"<path class="edge""#).count(),
        edges.len(),
        "one arrow per DAG edge"
    );
    let href = trace_url.replace('&', "&amp;");
    assert!(
        dom.contains(&format!(r#"<a id="trace-link" href="{href}""#)),
        "trace link {href} in the DOM"
    );

    // Pictures: the overview, and the chosen run (the page scrolls to it).
    let out = Path::new(env!("CARGO_TARGET_TMPDIR"));
    for (file, url) in [
        ("console-overview.png", format!("{}/console/", bed.cmp)),
        ("console-run.png", url),
    ] {
        let shot: PathBuf = out.join(file);
        let _ = std::fs::remove_file(&shot);
        chromium(
            &bin,
            &url,
            &[
                format!("--screenshot={}", shot.display()),
                "--window-size=1400,1000".to_owned(),
            ],
        )
        .await;
        assert_png(&shot, 1400, 1000);
        println!("console screenshot: {}", shot.display());
    }
    bed.stop().await;
}

#[tokio::test]
async fn console_shows_unreachable_peers_as_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestbedConfig::load_default().unwrap();
    cfg.oauth2.enabled = false;
    // Nothing listens there: NRF (hence AMF) unreachable.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    cfg.nrf.uri = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let cfg = Arc::new(cfg);
    let db = netgpt_sbi::db::connect(&format!("sqlite://{}", dir.path().join("cmp.db").display()))
        .await
        .unwrap();
    let ctx = NfContext::ephemeral(cfg.clone(), "cmp", db).await.unwrap();
    let state = netgpt_cmp::context(&ctx).await.unwrap();
    let console = Console::with_jaeger_ui(state, &cfg, &format!("{DEFAULT_JAEGER_UI}/"));
    assert_eq!(
        console.trace_url("r 1", None),
        "http://localhost:16686/search?service=netgpt&tags=%7B%22run.id%22%3A%22r%201%22%7D"
    );
    assert_eq!(
        console.trace_url("r1", Some("4bf92f3577b34da6a3ce929d0e0e4736")),
        "http://localhost:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736"
    );

    // Served like the CmP serves it; the page's data still comes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, netgpt_cmp::console::router(console))
            .await
            .unwrap()
    });
    let http = h2_client();
    let r = http
        .get(format!("http://{addr}/console/api/overview"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let ov: Value = r.json().await.unwrap();
    for sec in ["nfs", "cells", "ues"] {
        assert_eq!(ov[sec]["available"], false, "{sec}: {}", ov[sec]);
        assert!(
            !ov[sec]["error"].as_str().unwrap_or("").is_empty(),
            "{sec} says why"
        );
    }
    assert!(ov["nfs"]["error"].as_str().unwrap().starts_with("NRF"));
    // What the CmP knows itself is still there.
    assert_eq!(ov["runs"]["available"], true);
    assert!(ov["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["nodeId"] == "cloud"));
    assert!(ov["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["name"] == "netgpt"));
    assert_eq!(ov["sites"].as_array().unwrap().len(), cfg.site.len());
    let r = http
        .get(format!("http://{addr}/console/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    server.abort();
}
