//! `netgpt bench load` in a CI size (2 s per scenario, 8 clients): its JSON report is checked
//! for structure and counts only, never timing. The hot paths answer every request with 2xx
//! (no shedding, no timeouts, OAuth2 on); one SUPI flooding its edge is refused with 429
//! (the per-UE rate); the overload scenario sheds with 429/503 ProblemDetails carrying
//! Retry-After and lets nothing time out. The scenarios that need the
//! cloud model (UE prompts, UE flood, overload) are skipped, with the reason printed, when it
//! is not cached (`netgpt models fetch`).

mod support;

use std::process::Command;

use serde_json::Value;
use support::BIN;

fn n(v: &Value, path: &str) -> u64 {
    let mut cur = v;
    for k in path.split('.') {
        cur = &cur[k];
    }
    cur.as_u64()
        .unwrap_or_else(|| panic!("{path} is not a count in {v}"))
}

#[test]
fn bench_load_reports_every_scenario_and_the_overload_sheds() {
    let model = netgpt_models::fetch::cached_cloud_model().is_some();
    let scenarios = if model {
        "nrf-disc,amf-loc,nrf-token,ue-prompts,ue-flood,overload-cloud"
    } else {
        eprintln!(
            "cloud model not cached (run `netgpt models fetch`): ue-prompts, ue-flood and overload-cloud skipped"
        );
        "nrf-disc,amf-loc,nrf-token"
    };
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("load.json");
    let out = Command::new(BIN)
        .args(["bench", "load", "--duration", "2", "--concurrency", "8"])
        .args(["--ues", "64", "--scenarios", scenarios, "--json"])
        .arg(&json)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{stdout}");
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["oauth2"], true, "the default config has OAuth2 on");
    let ran: Vec<&Value> = report["scenarios"].as_array().unwrap().iter().collect();
    let names: Vec<&str> = ran.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names.join(","),
        scenarios,
        "every scenario asked for, in order"
    );
    // The table names every scenario too.
    for name in &names {
        assert!(
            stdout.contains(&format!("| {name} |")),
            "{name} not in the table"
        );
    }

    for s in &ran {
        let name = s["name"].as_str().unwrap();
        let requests = n(s, "requests");
        assert!(requests > 0, "{name}: no requests");
        let (ok, s429, s503, other, timeouts) = (
            n(s, "status.ok_2xx"),
            n(s, "status.s429"),
            n(s, "status.s503"),
            n(s, "status.other"),
            n(s, "status.timeouts"),
        );
        assert_eq!(
            ok + s429 + s503 + other + timeouts,
            requests,
            "{name}: every request is counted once"
        );
        assert_eq!(timeouts, 0, "{name}: timeouts");
        assert!(
            s["peak_rss_mib"].as_f64().unwrap() > 0.0,
            "{name}: no VmHWM"
        );
        match name {
            "nrf-disc" | "amf-loc" | "nrf-token" | "ue-prompts" => {
                assert_eq!(
                    (ok, s429, s503, other),
                    (requests, 0, 0, 0),
                    "{name}: hot path with errors: {}",
                    s["other_detail"]
                );
                assert!(s["p50_ms"].as_f64().unwrap() > 0.0, "{name}: no latency");
                assert!(
                    s["p99_ms"].as_f64() >= s["p50_ms"].as_f64(),
                    "{name}: p99 < p50"
                );
            }
            "ue-flood" => {
                // One SUPI far above its rate: answered or refused, never anything else.
                assert_eq!(other, 0, "{name}: {}", s["other_detail"]);
                assert!(ok > 0, "{name}: the UE's burst is answered");
                assert!(
                    s429 > 0,
                    "{name}: one SUPI far above limits.ue_rate_per_s was never refused (429)"
                );
            }
            "overload-cloud" => {
                let shed = s429 + s503;
                assert!(shed > 0, "{name}: nothing shed (2xx {ok})");
                assert_eq!(other, 0, "{name}: {}", s["other_detail"]);
                assert_eq!(
                    n(s, "shed_with_retry_after"),
                    shed,
                    "{name}: every refusal carries Retry-After"
                );
                assert_eq!(
                    n(s, "shed_with_problem"),
                    shed,
                    "{name}: every refusal is a ProblemDetails with a cause"
                );
                assert!(ok > 0, "{name}: the admitted requests are answered");
            }
            _ => unreachable!("{name}"),
        }
        if name == "ue-prompts" {
            // After the warm-up, the repeated prompts are answered at the edge.
            let by = &s["answered_by"];
            let edge =
                by["EDGE_CACHE"].as_u64().unwrap_or(0) + by["EDGE_DIRECTORY"].as_u64().unwrap_or(0);
            let cloud = by["CLOUD"].as_u64().unwrap_or(0);
            assert_eq!(edge + cloud, ok, "{name}: every answer says who answered");
            assert!(edge > cloud, "{name}: edge {edge} vs cloud {cloud}");
        }
    }
}
