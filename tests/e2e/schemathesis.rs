//! Hostile input: schemathesis (PyPI, installed by `.ci/schemathesis.sh`, path in
//! `NETGPT_SCHEMATHESIS`) against each NF type's own OpenAPI document (`<api_root>/openapi.json`),
//! with the whole testbed in one process on ephemeral ports: NRF, AMF, one edge AI function,
//! the cloud AI function (real SmolLM2, a few tokens per answer) and the CmP.
//!
//! For every operation of every service schemathesis sends a bounded number of generated
//! requests, valid and invalid, and checks that no answer is a 5xx or a dropped connection,
//! that each status code is one the document lists for the operation, and that the content
//! type and the body match what the document says for that status (ProblemDetails as
//! `application/problem+json` for errors). Any failure fails the test with schemathesis'
//! own report (the reproducing `curl` commands included).

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use netgpt_e2e::{config_with_nrf, start_nrf};
use netgpt_sbi::config::TestbedConfig;
use netgpt_sbi::db::Db;
use netgpt_sbi::{NfContext, RunningNf};
use tokio::process::Command;

/// Generated test cases per API operation and phase (schemathesis' `--max-examples`).
const MAX_EXAMPLES: u32 = 12;
/// Wall-clock bound of one NF's run: schemathesis is killed past it (and the test fails).
/// The edge AI function's run, which calls the models, takes about a minute on 2 cores.
const MAX_TIME_S: u64 = 180;

/// The checks of every run: no 5xx, documented status codes, content types, response
/// schemas and headers; required headers and undeclared methods; and requests that violate
/// the document (negative data) refused with a 4xx.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
response_schema_conformance,response_headers_conformance,missing_required_header,\
unsupported_method,negative_data_rejection";

/// One NF under test: its name in the report, NF type, services (the token's scope) and
/// API root.
struct Target {
    name: &'static str,
    nf_type: &'static str,
    services: Vec<&'static str>,
    api_root: String,
}

async fn ctx(cfg: &Arc<TestbedConfig>, name: &str, db: &Db) -> NfContext {
    NfContext::ephemeral(cfg.clone(), name, db.clone())
        .await
        .unwrap()
}

/// Runs schemathesis against one NF; `Err` carries its report when a check failed.
async fn run_schemathesis(
    st: &str,
    cfg: &TestbedConfig,
    target: &Target,
    work_dir: &std::path::Path,
) -> Result<String, String> {
    let mut exclude_openai = false;
    let token = match netgpt_sbi::oauth::request_token(
        cfg,
        "schemathesis",
        target.nf_type,
        &target.services.join(" "),
    )
    .await
    {
        Ok(t) => t,
        // The NRF grants only services that registered NFs offer, and the cloud AI function
        // may leave `openai` out of its NFProfile: then the OpenAI-compatible operations
        // cannot be called with a token and are left out of this run (said in the log).
        Err(e)
            if target.services.contains(&"openai") && e.to_string().contains("invalid_scope") =>
        {
            eprintln!(
                "{}: no token for `openai` ({e}): the OpenAI-compatible API is not tested",
                target.name
            );
            exclude_openai = true;
            let sbi: Vec<&str> = target
                .services
                .iter()
                .copied()
                .filter(|s| *s != "openai")
                .collect();
            netgpt_sbi::oauth::request_token(cfg, "schemathesis", target.nf_type, &sbi.join(" "))
                .await
                .map_err(|e| format!("{}: no access token: {e}", target.name))?
        }
        Err(e) => return Err(format!("{}: no access token: {e}", target.name)),
    };
    let mut cmd = Command::new(st);
    // schemathesis and hypothesis keep caches (`.schemathesis/`, `.hypothesis/`) in the working
    // directory: a temporary one keeps them out of the tree and each run independent of the last.
    cmd.current_dir(work_dir)
        .arg("--no-color")
        .arg("run")
        .arg(format!("{}/openapi.json", target.api_root))
        .args(["--url", &target.api_root])
        .args(["--checks", CHECKS])
        .args(["--max-examples", &MAX_EXAMPLES.to_string()])
        .args(["--request-timeout", "30"])
        // One worker: with two, hypothesis' lambda descriptions (ast.parse) race in
        // CPython 3.11 and the run ends in "AST constructor recursion depth mismatch".
        .args(["--workers", "1"])
        .args(["--seed", "1"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--suppress-health-check", "all"])
        .args(["--max-failures", "50"])
        .env("NO_COLOR", "1")
        .env("COLUMNS", "120")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if exclude_openai {
        cmd.args(["--exclude-path-regex", "^/v1/"]);
    }
    if !token.is_empty() {
        cmd.args(["--header", &format!("Authorization: Bearer {token}")]);
    }
    let child = cmd.spawn().map_err(|e| format!("cannot run {st}: {e}"))?;
    let out = tokio::time::timeout(Duration::from_secs(MAX_TIME_S), child.wait_with_output())
        .await
        .map_err(|_| format!("{}: schemathesis did not finish in time", target.name))?
        .map_err(|e| format!("{}: {e}", target.name))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// The number of test cases of a run, from its summary line `N generated, ...`.
fn generated(report: &str) -> Option<u64> {
    report.lines().find_map(|l| {
        let (n, _) = l.trim().split_once(" generated, ")?;
        n.parse().ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_nf_survives_schemathesis() {
    let Ok(st) = std::env::var("NETGPT_SCHEMATHESIS") else {
        eprintln!(
            "NETGPT_SCHEMATHESIS is unset (run `eval \"$(bash .ci/schemathesis.sh)\"`): skipped"
        );
        return;
    };
    let Some(model) = netgpt_models::fetch::cached_cloud_model() else {
        eprintln!("cloud model not cached (run `netgpt models fetch`): skipped");
        return;
    };
    let started = Instant::now();
    let nrf = start_nrf(netgpt_nrf::NrfOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_with_nrf(&nrf.base);
    cfg.cloudai.model = Some(model);
    cfg.cloudai.max_new_tokens = 4;
    cfg.edgeai.cloud_max_tokens = 4;
    let cfg = Arc::new(cfg);
    let db = netgpt_sbi::db::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("testbed.db").display()
    ))
    .await
    .unwrap();

    let mut nfs: Vec<RunningNf> = Vec::new();
    let mut targets = vec![Target {
        name: "nrf",
        nf_type: "NRF",
        services: vec!["nnrf-nfm", "nnrf-disc"],
        api_root: nrf.base.clone(),
    }];
    let c = ctx(&cfg, "amf", &db).await;
    targets.push(Target {
        name: "amf",
        nf_type: "AMF",
        services: netgpt_amf::SERVICES.to_vec(),
        api_root: c.api_root.clone(),
    });
    nfs.push(netgpt_amf::start(c).await.unwrap());
    let c = ctx(&cfg, "cloudai", &db).await;
    targets.push(Target {
        name: "cloudai",
        nf_type: "CLOUDAI",
        // `openai`: the OpenAI-compatible API is a service of its own for the token's scope.
        services: vec![
            netgpt_cloudai::SERVICE,
            netgpt_cloudai::split::SERVICE,
            "openai",
        ],
        api_root: c.api_root.clone(),
    });
    nfs.push(netgpt_cloudai::start(c).await.unwrap());
    let c = ctx(&cfg, "edge-london", &db).await;
    targets.push(Target {
        name: "edgeai",
        nf_type: "EDGEAI",
        services: vec![
            netgpt_edgeai::SERVICE_PROMPT,
            netgpt_edgeai::analytics::SERVICE_ANALYTICS,
        ],
        api_root: c.api_root.clone(),
    });
    nfs.push(netgpt_edgeai::start(c).await.unwrap());
    let c = ctx(&cfg, "cmp", &db).await;
    targets.push(Target {
        name: "cmp",
        nf_type: "CMP",
        services: netgpt_cmp::SERVICES.to_vec(),
        api_root: c.api_root.clone(),
    });
    nfs.push(netgpt_cmp::start(c).await.unwrap());
    eprintln!("testbed up in {:.1} s", started.elapsed().as_secs_f64());

    let mut failures = Vec::new();
    let mut total_cases = 0;
    for target in &targets {
        let t = Instant::now();
        let result = run_schemathesis(&st, &cfg, target, dir.path()).await;
        let report = match &result {
            Ok(text) | Err(text) => text,
        };
        // The summary of each run (operations, test cases, checks passed) goes to the log.
        let summary: Vec<&str> = report
            .lines()
            .skip_while(|l| !l.contains("SUMMARY"))
            .collect();
        eprintln!(
            "== {} ({:.1} s)\n{}",
            target.name,
            t.elapsed().as_secs_f64(),
            summary.join("\n")
        );
        match result {
            // A run that generated nothing would pass vacuously (an empty document).
            Ok(text) => match generated(&text) {
                Some(n) if n > 0 => total_cases += n,
                _ => failures.push(format!(
                    "==== {}: no test case ran ====\n{text}",
                    target.name
                )),
            },
            Err(text) => failures.push(format!("==== {} ====\n{text}", target.name)),
        }
    }
    for nf in nfs.into_iter().rev() {
        nf.stop().await;
    }
    nrf.stop().await;
    eprintln!(
        "{total_cases} test cases in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "schemathesis found failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn reads_the_number_of_test_cases() {
    let summary = "  ⚠️ Schema validation mismatch: 4 operations mostly rejected generated data\n\
                   Test cases:\n  696 generated, 696 passed\n\nSeed: 1\n";
    assert_eq!(generated(summary), Some(696));
    assert_eq!(
        generated("Test cases:\n  3354 generated, 3 found 3 unique failures\n"),
        Some(3354)
    );
    assert_eq!(
        generated("  ⚠️ Schema validation mismatch: 4 operations mostly rejected generated data"),
        None
    );
    assert_eq!(generated("no summary"), None);
}
