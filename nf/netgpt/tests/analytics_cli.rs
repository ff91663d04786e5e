//! `netgpt analytics report`: the edge analytics tables with their baselines, measured on
//! the committed models, and a one-line error with a non-zero exit when there is nothing
//! to measure.

mod support;

use std::process::Command;

use support::BIN;

fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn report_prints_the_popularity_table_with_its_baselines() {
    let out = Command::new(BIN)
        .args(["analytics", "report", "--only", "popularity", "--root"])
        .arg(repo_root())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("## Content popularity prediction"), "{text}");
    for row in ["GPT-2", "LSTM", "GRU", "majority", "previous interval"] {
        assert!(
            text.to_lowercase().contains(&row.to_lowercase()),
            "no {row} row in:\n{text}"
        );
    }
    assert!(!text.contains("## Intent inference"));

    // The same figures as JSON.
    let out = Command::new(BIN)
        .args([
            "analytics",
            "report",
            "--only",
            "popularity",
            "--json",
            "--root",
        ])
        .arg(repo_root())
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["popularity"].is_object(), "{v}");
}

#[test]
fn report_on_a_folder_without_models_fails_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("models")).unwrap();
    let out = Command::new(BIN)
        .args(["analytics", "report", "--root"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.starts_with("netgpt: "), "{err}");
}
