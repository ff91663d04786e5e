//! What the binary's tests share.

#![allow(dead_code)] // each test file uses part of it

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The `netgpt` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_netgpt");

/// Starts `netgpt nf run <name>` on an ephemeral port; returns the child and its API root.
pub fn nf_run(name: &str, db_url: &str, nrf_uri: Option<&str>) -> (Child, String) {
    nf_run_env(name, db_url, nrf_uri, &[])
}

/// [`nf_run`] with more environment for the child (`NETGPT_CONFIG`, `NETGPT__...` overrides).
pub fn nf_run_env(
    name: &str,
    db_url: &str,
    nrf_uri: Option<&str>,
    env: &[(&str, &str)],
) -> (Child, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["nf", "run", name])
        .env(
            format!("NETGPT__NF__{}__LISTEN", name.to_uppercase()),
            "127.0.0.1:0",
        )
        .env("NETGPT__DATABASE__URL", db_url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(uri) = nrf_uri {
        cmd.env("NETGPT__NRF__URI", uri);
    }
    cmd.envs(env.iter().copied());
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let root = line
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("no API root in {line:?}"))
        .to_owned();
    (child, root)
}
