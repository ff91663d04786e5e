//! `netgpt experiment fig3` and `netgpt experiment personalisation` in a reduced size, on
//! the real edge and cloud models over the emulated links: the reports are written, and the
//! directions of the results hold (counts, bytes, structure — never timing). Skipped, with
//! the reason printed, when the cloud model is not cached (`netgpt models fetch`).

mod support;

use std::process::Command;

use serde_json::Value;
use support::BIN;

fn model_cached() -> bool {
    if netgpt_models::fetch::cached_cloud_model().is_none() {
        eprintln!("cloud model not cached (run `netgpt models fetch`): skipped");
        return false;
    }
    true
}

fn run(args: &[&str]) -> Value {
    let out = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = args
        .windows(2)
        .find(|w| w[0] == "--out")
        .map(|w| std::path::PathBuf::from(w[1]))
        .unwrap();
    assert!(dir.join("report.md").is_file(), "no report.md");
    assert!(
        std::fs::read_dir(&dir).unwrap().any(|e| e
            .unwrap()
            .path()
            .extension()
            .is_some_and(|x| x == "svg")),
        "no .svg in {}",
        dir.display()
    );
    serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap()
}

fn framework<'a>(results: &'a Value, name: &str) -> &'a Value {
    results["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["framework"] == name)
        .unwrap_or_else(|| panic!("no {name} run"))
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[test]
fn fig3_synergy_calls_the_cloud_less_with_longer_prompts_on_pooled_connections() {
    if !model_cached() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fig3");
    let r = run(&[
        "experiment",
        "fig3",
        "--prompts",
        "12",
        "--dup-ratio",
        "0.5",
        "--max-tokens",
        "4",
        "--out",
        out.to_str().unwrap(),
    ]);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("20.19") && report.contains("machine:"),
        "{report}"
    );
    let cloud = framework(&r, "cloud-only");
    let syn = framework(&r, "synergy");
    let off = framework(&r, "offload");
    for f in [cloud, syn, off] {
        assert_eq!(f["errors"].as_array().unwrap().len(), 0, "{f}");
        assert_eq!(f["answers"].as_array().unwrap().len(), 12);
    }
    // 6 of 12 repeat an earlier prompt: synergy coalesces them, cloud-only cannot.
    assert_eq!(n(&cloud["cloud_calls"]), 12);
    assert!(n(&syn["cloud_calls"]) < n(&cloud["cloud_calls"]), "{syn}");
    // At most one call per distinct prompt (6 originals).
    assert!(n(&syn["cloud_calls"]) <= 6, "{syn}");
    // Cloud-only opens a connection per request on both links and pays the set-up each time.
    let requests = 12;
    assert_eq!(n(&cloud["ue_link"]["connections"]), requests);
    assert_eq!(n(&cloud["edge_cloud_link"]["connections"]), requests);
    assert!(cloud["edge_cloud_link"]["setup_s"].as_f64().unwrap() > 0.0);
    // Synergy's edge keeps pooled connections to the cloud: fewer than its requests.
    assert!(
        n(&syn["edge_cloud_link"]["connections"]) < requests,
        "{syn}"
    );
    // The UE link carries the concise prompt; the cloud gets longer, comprehensive ones.
    for a in syn["answers"].as_array().unwrap() {
        let item = n(&a["item"]) as usize;
        let concise = cloud["answers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| n(&c["item"]) as usize == item)
            .unwrap()["sent"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            a["sent"].as_str().unwrap().len() > concise.len(),
            "{a} vs {concise}"
        );
    }
    let per_call =
        |f: &Value| n(&f["edge_cloud_link"]["bytes_up"]) as f64 / n(&f["cloud_calls"]) as f64;
    assert!(per_call(syn) > per_call(cloud), "{syn}\n{cloud}");
    assert!(syn["cloud_prompt_bytes"].as_f64() > syn["ue_prompt_bytes"].as_f64());
    assert_eq!(
        cloud["cloud_prompt_bytes"].as_f64(),
        cloud["ue_prompt_bytes"].as_f64()
    );
    // Offload never crosses the edge-cloud link.
    assert_eq!(n(&off["edge_cloud_link"]["bytes_up"]), 0);
    assert_eq!(n(&off["cloud_calls"]), 12);
    // Splitting, when present, moves hidden states: far more edge-cloud bytes than prompts.
    if let Some(split) = r["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["framework"] == "splitting")
    {
        assert!(
            n(&split["edge_cloud_link"]["bytes_up"])
                > 10 * n(&cloud["edge_cloud_link"]["bytes_up"]),
            "{split}"
        );
    }
}

#[test]
fn personalisation_only_synergy_tells_the_cloud_where_the_ue_is() {
    if !model_cached() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pers");
    let r = run(&[
        "experiment",
        "personalisation",
        "--prompts",
        "2",
        "--max-tokens",
        "4",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(n(&r["errors"]), 0);
    let sites = r["sites"].as_array().unwrap();
    assert_eq!(sites.len(), 4);
    for row in r["perSite"].as_array().unwrap() {
        let rate = &row["rate"];
        assert_eq!(n(&rate["requests"]), 2, "{row}");
        match row["framework"].as_str().unwrap() {
            "synergy" => assert_eq!(n(&rate["sent_names_site_fact"]), 2, "{row}"),
            "cloud-only" => assert_eq!(n(&rate["sent_names_site_fact"]), 0, "{row}"),
            other => panic!("unexpected framework {other}"),
        }
        assert_eq!(n(&rate["sent_names_other_site"]), 0, "{row}");
    }
    // Cloud-only's answer to one prompt is the same from every site.
    let differ = r["differ"].as_array().unwrap();
    let cloud = differ
        .iter()
        .find(|d| d["framework"] == "cloud-only")
        .unwrap();
    assert_eq!(n(&cloud["differ"]), 0, "{cloud}");
}

#[test]
fn bad_arguments_fail_with_one_line() {
    let out = Command::new(BIN)
        .args(["experiment", "fig3", "--dup-ratio", "1.5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--dup-ratio"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
