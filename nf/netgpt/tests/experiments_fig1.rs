//! `netgpt experiment fig1 --no-measure`: the computed Fig. 1 table of the paper's and the
//! testbed's models — the paper's D reproduced in its units, LLaMA-7B's parameter count from
//! its shapes, and the directions that hold between the four frameworks. (The measured part
//! loads and fine-tunes the cloud model for about two minutes: left to the command.)

mod support;

use std::process::Command;

use serde_json::Value;
use support::BIN;

fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn row<'a>(t: &'a Value, framework: &str) -> &'a Value {
    t["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["framework"] == framework)
        .unwrap_or_else(|| panic!("no {framework} row in {t}"))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn computed_table_reproduces_d_and_orders_the_frameworks() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["experiment", "fig1", "--no-measure", "--out"])
        .arg(dir.path())
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();

    // The paper's D: bits of one token's f32 hidden state per byte of a 12-byte prompt.
    assert!((f(&r["d"]["paper_d"]) - 10_922.0).abs() < 1.0, "{}", r["d"]);
    assert!((f(&r["d"]["bytes_per_byte_f32"]) * 8.0 - f(&r["d"]["paper_d"])).abs() < 1e-6);
    // Parameter counts from the shapes.
    let p7b = f(&r["paper"]["cloud_model"]["params"]);
    assert!((p7b / 6.74e9 - 1.0).abs() < 0.01, "LLaMA-7B: {p7b}");
    let gpt2 = f(&r["paper"]["edge_model"]["params"]);
    assert!((gpt2 / 124.4e6 - 1.0).abs() < 0.01, "GPT-2 base: {gpt2}");
    assert_eq!(r["paper"]["split_layers"], 8);
    assert!(r["measured"].is_null());

    for key in ["paper", "testbed"] {
        let t = &r[key];
        let (co, off, sp, sy) = (
            row(t, "cloud-only"),
            row(t, "offload"),
            row(t, "splitting"),
            row(t, "synergy"),
        );
        assert_eq!(t["rows"].as_array().unwrap().len(), 4);
        let bytes = |x: &Value| f(&x["bytes_per_prompt"]);
        // Splitting ships hidden states, synergy the comprehensive prompt, cloud-only (and
        // offload, to the edge) the concise one.
        assert!(bytes(sp) > bytes(sy), "{key}: splitting vs synergy");
        assert!(bytes(sy) > bytes(co), "{key}: synergy vs cloud-only");
        assert_eq!(bytes(off), bytes(co));
        assert!(f(&sp["transmission_s"]) > f(&sy["transmission_s"]));
        assert!(f(&sy["transmission_s"]) > f(&co["transmission_s"]));
        // A splitting prompt is larger than the 12-byte prompt by more than the D per token
        // in f16 (every prompt token carries one hidden state).
        assert!(bytes(sp) > bytes(co) * 100.0, "{key}: {}", bytes(sp));

        let edge = |x: &Value, k: &str| f(&x["edge"][k]);
        let cloud = |x: &Value, k: &str| f(&x["cloud"][k]);
        for k in ["storage", "finetune_full", "finetune_lora", "inference"] {
            // At the edge: nothing for cloud-only, a small model for synergy, a quarter of
            // the big one for splitting, all of it for offload.
            assert_eq!(edge(co, k), 0.0);
            assert!(edge(sy, k) > 0.0);
            assert!(
                edge(sy, k) < edge(sp, k),
                "{key} {k}: synergy vs splitting at the edge"
            );
            assert!(
                edge(sp, k) < edge(off, k),
                "{key} {k}: splitting vs offload at the edge"
            );
            // In the cloud: nothing for offload, the rest for splitting, the whole model for
            // synergy and cloud-only alike.
            assert_eq!(cloud(off, k), 0.0);
            assert!(cloud(sp, k) > 0.0);
            assert!(
                cloud(sp, k) < cloud(sy, k),
                "{key} {k}: splitting vs synergy in the cloud"
            );
            assert_eq!(cloud(sy, k), cloud(co, k));
        }
        // LoRA needs less memory than full fine-tuning wherever a model is held.
        for x in [co, off, sp, sy] {
            for side in ["edge", "cloud"] {
                let (l, fu) = (f(&x[side]["finetune_lora"]), f(&x[side]["finetune_full"]));
                assert!(l < fu || fu == 0.0, "{key} {side}: LoRA {l} vs full {fu}");
            }
        }
    }

    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    for label in [
        "cloud-only",
        "LLM offload",
        "LLM splitting",
        "LLM synergy (NetGPT)",
        "10922.7",
        "Machine:",
    ] {
        assert!(md.contains(label), "no {label} in report.md");
    }
    let svg = std::fs::read_to_string(dir.path().join("transmission.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.matches("<rect").count() >= 8);
}

#[test]
fn a_split_outside_zero_to_one_fails_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "experiment",
            "fig1",
            "--no-measure",
            "--split",
            "1.5",
            "--out",
        ])
        .arg(dir.path())
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--split"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!dir.path().join("report.json").exists());
}

fn probe(which: &str) -> Value {
    let out = Command::new(BIN)
        .args(["experiment", "fig1", "--infer-probe", which])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The measured traffic: the real split edge half's bytes are one hidden state per prompt
/// token plus the header, and the edge model's completions are longer than the prompts.
#[test]
fn measured_traffic_of_the_real_split_and_edge_model() {
    let e = probe("edge");
    assert!(f(&e["completion_bytes"]) > f(&e["concise_bytes"]), "{e}");
    assert!(f(&e["peak_rss_kib"]) >= f(&e["rss_after_load_kib"]) && f(&e["peak_rss_kib"]) > 0.0);
    let Some(gguf) = netgpt_models::fetch::cached_cloud_model() else {
        eprintln!("skipping the split probe: the cloud model is not cached (netgpt models fetch)");
        return;
    };
    let cfg = netgpt_models::footprint::llama_config_from_gguf(&gguf).unwrap();
    let hidden = cfg.hidden_size as f64;
    let s = probe("split");
    assert_eq!(
        s["split_layer"],
        netgpt_models::footprint::split_layers(cfg.num_hidden_layers, 0.25),
        "{s}"
    );
    let tokens = f(&s["prompt_tokens"]);
    for (wire, width) in [("f16", 2.0), ("f32", 4.0)] {
        let up = f(&s[wire]["prompt_up_bytes"]);
        assert!((up - (8.0 + tokens * hidden * width)).abs() < 1e-6, "{s}");
        assert_eq!(f(&s[wire]["decode_step_up_bytes"]), 8.0 + hidden * width);
    }
    assert!(f(&s["f16"]["prompt_up_bytes"]) > 100.0 * f(&e["concise_bytes"]));
}
