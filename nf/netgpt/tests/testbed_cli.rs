//! `netgpt up`, `netgpt nf list` and config errors, driven through the real binary with
//! every NF on an ephemeral port and the SQLite file in a temporary data folder.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod support;

use support::{nf_run, BIN};

struct Up {
    child: Child,
    nrf: String,
    amf: String,
    lines: Vec<String>,
}

/// Starts `netgpt up` on ephemeral ports over the database in `data`; returns when it
/// printed its NF lines.
fn up(data: &Path) -> Up {
    let mut child = Command::new(BIN)
        .arg("up")
        .env("NETGPT__NF__NRF__LISTEN", "127.0.0.1:0")
        .env("NETGPT__NF__AMF__LISTEN", "127.0.0.1:0")
        .env("NETGPT__NF__CLOUDAI__LISTEN", "127.0.0.1:0")
        .env("NETGPT__NF__CMP__LISTEN", "127.0.0.1:0")
        .env("NETGPT__DATA_DIR", data)
        .env(
            "NETGPT__DATABASE__URL",
            format!("sqlite://{}/netgpt.db", data.display()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        let done = line.starts_with("Ctrl-C");
        lines.push(line);
        if done {
            break;
        }
    }
    let root_of = |ty: &str| {
        lines
            .iter()
            .find(|l| l.split_whitespace().nth(1) == Some(ty))
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap_or_else(|| panic!("no {ty} line in {lines:?}"))
            .to_owned()
    };
    let (nrf, amf) = (root_of("NRF"), root_of("AMF"));
    Up {
        child,
        nrf,
        amf,
        lines,
    }
}

fn terminate(mut up: Up) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(up.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let status = up.child.wait().unwrap();
    assert!(
        status.success(),
        "netgpt up exits 0 after SIGTERM: {status}"
    );
}

fn nf_list(nrf: &str) -> String {
    let out = Command::new(BIN)
        .args(["nf", "list", "--nrf", nrf])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn up_serves_every_nf_and_deregisters_them_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let first = up(&data);
    assert!(
        first.lines.iter().any(|l| l.contains("/docs/")),
        "{:?}",
        first.lines
    );
    assert!(
        data.join("netgpt.db").exists(),
        "SQLite file under the data folder"
    );
    // Both NFs answer over h2c and HTTP/1.1.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    for root in [&first.nrf, &first.amf] {
        let r = h2.get(format!("{root}/healthz")).send().await.unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        assert_eq!(r.status(), 200);
        let r = reqwest::get(format!("{root}/openapi.json")).await.unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_11);
        assert_eq!(r.status(), 200);
    }
    // The AMF registered itself in the NRF.
    let listing = nf_list(&first.nrf);
    let amf_lines: Vec<&str> = listing.lines().filter(|l| l.contains(" AMF ")).collect();
    assert_eq!(amf_lines.len(), 1, "{listing}");
    assert!(
        amf_lines[0].contains("REGISTERED") && amf_lines[0].contains(&first.amf),
        "{listing}"
    );
    // OAuth2 is on: a service operation without a token is refused, `netgpt nf token`
    // gets one from the NRF that opens it, and the CLI's own commands fetch theirs.
    let loc = format!(
        "{}/namf-loc/v1/imsi-001010000000001/provide-loc-info",
        first.amf
    );
    let body = r#"{"req5gsLoc":true}"#;
    let r = h2
        .post(&loc)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let out = Command::new(BIN)
        .args(["nf", "token", "AMF", "namf-loc", "--nrf", &first.nrf])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "{token}");
    let r = h2
        .post(&loc)
        .header("content-type", "application/json")
        .bearer_auth(&token)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let out = Command::new(BIN)
        .args(["ue", "locate", "imsi-001010000000001", "--nrf", &first.nrf])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A token for the NRF's discovery does not open the AMF.
    let out = Command::new(BIN)
        .args(["nf", "token", "NRF", "nnrf-disc", "--nrf", &first.nrf])
        .output()
        .unwrap();
    let disc = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let r = h2
        .post(&loc)
        .header("content-type", "application/json")
        .bearer_auth(&disc)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let first_amf = first.amf.clone();
    terminate(first);

    // Same database again: the first AMF deregistered on shutdown, so only the new one is listed.
    let second = up(&data);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let listing = nf_list(&second.nrf);
    let amf_lines: Vec<&str> = listing.lines().filter(|l| l.contains(" AMF ")).collect();
    assert_eq!(amf_lines.len(), 1, "{listing}");
    assert!(
        amf_lines[0].contains(&second.amf) && !amf_lines[0].contains(&first_amf),
        "{listing}"
    );
    terminate(second);
}

#[test]
fn config_errors_are_one_line_naming_the_key() {
    let out = Command::new(BIN)
        .arg("up")
        .env("NETGPT__NF__AMF__LISTEN", "nowhere")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("nf.amf.listen"), "{err}");

    let out = Command::new(BIN)
        .args(["nf", "run", "smf"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nf.smf"));
}

fn sigterm(mut child: Child) {
    assert!(Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exits 0 after SIGTERM: {status}");
}

#[test]
fn nf_run_starts_single_nfs_that_register_and_deregister_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}/shared.db", dir.path().display());
    let (nrf, nrf_root) = nf_run("nrf", &db_url, None);
    let (amf, amf_root) = nf_run("amf", &db_url, Some(&nrf_root));
    let listing = nf_list(&nrf_root);
    assert!(
        listing
            .lines()
            .any(|l| l.contains(" AMF ") && l.contains(&amf_root) && l.contains("REGISTERED")),
        "{listing}"
    );
    sigterm(amf);
    let listing = nf_list(&nrf_root);
    assert!(
        !listing.contains(" AMF "),
        "deregistered on SIGTERM: {listing}"
    );
    sigterm(nrf);
}
