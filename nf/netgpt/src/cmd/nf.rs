//! CLI: network-function commands.
//!
//! - `netgpt nf run <name> [--config FILE]`: runs one NF of the testbed configuration
//!   (the unit of docker-compose and Kubernetes deployments) until Ctrl-C / SIGTERM, then
//!   deregisters and stops gracefully.
//! - `netgpt nf list [--nrf URI]`: the NF instances registered in the NRF.
//! - `netgpt nf token <TARGET_NF_TYPE> <SERVICE>...`: an access token from the NRF, for
//!   calling a service by hand.
//! - `netgpt nf openapi [--write]`: checks (or rewrites) `sbi-specs/<service>.yaml` against
//!   the documents the code generates.
//!
//! [`start_nf`] is the one place that maps an NF type to its crate; `netgpt up` uses it too.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Subcommand;
use netgpt_sbi::config::TestbedConfig;
use netgpt_sbi::db::Db;
use netgpt_sbi::models::nnrf::NfProfile;
use netgpt_sbi::nf::{bind, nf_config, NfContext, RunningNf};
use netgpt_sbi::NrfClient;

/// `netgpt nf ...`
#[derive(Subcommand)]
pub enum Cmd {
    /// Network functions: run one, list the registered ones, check the OpenAPI documents.
    #[command(subcommand)]
    Nf(NfCmd),
}

/// `netgpt nf` subcommands.
#[derive(Subcommand)]
pub enum NfCmd {
    /// Run one NF of the testbed configuration (e.g. `netgpt nf run amf`) until Ctrl-C/SIGTERM.
    Run {
        /// Instance name, a `[nf.<name>]` key of the configuration (`nrf`, `amf`).
        name: String,
        /// Testbed configuration file (TOML); the embedded default when absent.
        #[arg(long, short, env = "NETGPT_CONFIG")]
        config: Option<PathBuf>,
    },
    /// List the NF instances registered in the NRF (id, type, status, locality, address).
    List {
        /// NRF base URI; default: `nrf.uri` of the configuration.
        #[arg(long)]
        nrf: Option<String>,
        /// Testbed configuration file (TOML); the embedded default when absent.
        #[arg(long, short, env = "NETGPT_CONFIG")]
        config: Option<PathBuf>,
        /// Print the NFProfiles as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Prints an OAuth2 access token from the NRF for calling an NF's service by hand
    /// (`curl -H "authorization: Bearer $(netgpt nf token AMF namf-loc)"`), as consumer
    /// `netgpt-cli` (type AF) with the configured client secret.
    Token {
        /// Target NF type (`AMF`, `EDGEAI`, `CLOUDAI`, `CMP`, `NRF`).
        target_nf_type: String,
        /// Service names, space-separated or repeated (`namf-loc`, `nedgeai-prompt`).
        #[arg(required = true, num_args = 1..)]
        scope: Vec<String>,
        /// NRF API root (default: the configuration's `nrf.uri`).
        #[arg(long)]
        nrf: Option<String>,
        /// Testbed configuration (default: the embedded one).
        #[arg(long, short, env = "NETGPT_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Check that `sbi-specs/<service>.yaml` match the code (exit 1 on drift), or rewrite them.
    Openapi {
        /// Write the documents instead of checking them.
        #[arg(long)]
        write: bool,
        /// Folder of the documents.
        #[arg(long, default_value = "sbi-specs")]
        dir: PathBuf,
    },
}

/// Runs a `netgpt nf` command.
pub async fn run(cmd: Cmd) -> anyhow::Result<()> {
    let Cmd::Nf(cmd) = cmd;
    match cmd {
        NfCmd::Run { name, config } => run_one(&name, config).await,
        NfCmd::List { nrf, config, json } => list(nrf, config, json).await,
        NfCmd::Openapi { write, dir } => openapi(write, &dir),
        NfCmd::Token {
            target_nf_type,
            scope,
            nrf,
            config,
        } => token(&target_nf_type, &scope.join(" "), nrf, config).await,
    }
}

/// NF types this build can run, with their crates.
pub const KNOWN_NF_TYPES: &[&str] = &["NRF", "AMF", "EDGEAI", "CLOUDAI", "CMP"];

/// Whether this build has an implementation of `nf_type`.
pub fn is_known_type(nf_type: &str) -> bool {
    KNOWN_NF_TYPES
        .iter()
        .any(|t| t.eq_ignore_ascii_case(nf_type))
}

/// Starts NF `name` of `config` on `ctx` by dispatching on its type to the NF's crate.
pub async fn start_nf(ctx: NfContext) -> anyhow::Result<RunningNf> {
    let name = ctx.name.clone();
    let nf_type = ctx.nf.nf_type.to_ascii_uppercase();
    let running = match nf_type.as_str() {
        "NRF" => netgpt_nrf::start(ctx).await?,
        "AMF" => netgpt_amf::start(ctx).await?,
        "EDGEAI" => netgpt_edgeai::start(ctx).await?,
        "CLOUDAI" => netgpt_cloudai::start(ctx).await?,
        "CMP" => netgpt_cmp::start(ctx).await?,
        other => anyhow::bail!(
            "config: key 'nf.{name}.type': no NF of type '{other}' in this build (known: {})",
            KNOWN_NF_TYPES.join(", ")
        ),
    };
    Ok(running)
}

/// Binds NF `name`'s configured listen address and starts it on the shared `db`.
pub async fn start_configured(
    config: Arc<TestbedConfig>,
    name: &str,
    db: Db,
) -> anyhow::Result<RunningNf> {
    let nf = nf_config(&config, name)?.clone();
    let listener = bind(name, nf.listen).await?;
    let ctx = NfContext::with_listener(config, name, listener, db)?;
    start_nf(ctx).await
}

/// Installs the log subscriber (`RUST_LOG` overrides `default`; harmless when one exists)
/// and, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, the OTLP trace export with
/// `service.name` = `OTEL_SERVICE_NAME`, else `service`. Hold the guard until the end:
/// dropping it exports the last spans.
pub fn init_logging(
    default: &str,
    service: &str,
) -> anyhow::Result<netgpt_sbi::telemetry::TelemetryGuard> {
    Ok(netgpt_sbi::telemetry::init(service, default)?)
}

/// Resolves when the process gets Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Loads the configuration (errors name the key).
pub fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<TestbedConfig> {
    Ok(TestbedConfig::load(path)?)
}

/// One line describing a running NF.
pub fn describe(nf: &RunningNf) -> String {
    let registered = if nf.is_registered() {
        format!("  registered as {}", nf.instance_id)
    } else {
        String::new()
    };
    format!(
        "{:<6} {:<5} {}  docs {}{registered}",
        nf.name,
        nf.nf_type,
        nf.api_root,
        nf.docs_url()
    )
}

async fn run_one(name: &str, config: Option<PathBuf>) -> anyhow::Result<()> {
    let _telemetry = init_logging("info", name)?;
    let config = Arc::new(load_config(config.as_deref())?);
    let nf = nf_config(&config, name)?;
    if !is_known_type(&nf.nf_type) {
        anyhow::bail!(
            "config: key 'nf.{name}.type': no NF of type '{}' in this build (known: {})",
            nf.nf_type,
            KNOWN_NF_TYPES.join(", ")
        );
    }
    let db = netgpt_sbi::db::connect(&config.database.url).await?;
    let running = start_configured(config, name, db.clone()).await?;
    println!("{}", describe(&running));
    shutdown_signal().await;
    running.stop().await;
    db.close().await;
    Ok(())
}

/// Where an NF instance can be reached: the first service's API root, else its first IPv4.
fn address_of(p: &NfProfile) -> String {
    p.services()
        .find_map(|s| s.api_root())
        .or_else(|| {
            p.ipv4_addresses
                .as_ref()
                .and_then(|a| a.first())
                .map(|ip| ip.to_string())
        })
        .or_else(|| p.fqdn.clone())
        .unwrap_or_else(|| "-".to_owned())
}

async fn token(
    target: &str,
    scope: &str,
    nrf: Option<String>,
    config: Option<PathBuf>,
) -> anyhow::Result<()> {
    let mut config = load_config(config.as_deref())?;
    if let Some(uri) = nrf {
        config.nrf.uri = uri;
    }
    anyhow::ensure!(
        config.oauth2.enabled,
        "config: key 'oauth2.enabled' is false: the NFs take no tokens"
    );
    let token = netgpt_sbi::oauth::request_token(&config, "netgpt-cli", target, scope)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("access token request at {}", config.nrf.uri))?;
    println!("{token}");
    Ok(())
}

async fn list(nrf: Option<String>, config: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let config = load_config(config.as_deref())?;
    let nrf_uri = nrf.unwrap_or_else(|| config.nrf.uri.clone());
    // An https NRF with the testbed's own CA (`tls_ca`) is trusted like the NFs trust it;
    // access tokens come from that NRF.
    let mut config = config;
    config.nrf.uri = nrf_uri.clone();
    let client = NrfClient::new(
        netgpt_sbi::oauth::consumer_client(&config, "netgpt-cli")
            .with_context(|| "config: key 'tls_ca'".to_owned())?,
        nrf_uri.clone(),
    );
    let ids = client
        .list_instances(None)
        .await
        .with_context(|| format!("NFListRetrieval at {nrf_uri}"))?;
    let mut profiles = Vec::with_capacity(ids.len());
    for id in ids {
        match client.profile(id).await {
            Ok(p) => profiles.push(p),
            // Deregistered between the two calls.
            Err(e) if e.status() == Some(reqwest::StatusCode::NOT_FOUND) => {}
            Err(e) => return Err(e).with_context(|| format!("NFProfileRetrieval of {id}")),
        }
    }
    profiles.sort_by(|a, b| {
        (a.nf_type.as_str(), a.nf_instance_name.as_deref())
            .cmp(&(b.nf_type.as_str(), b.nf_instance_name.as_deref()))
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&profiles)?);
        return Ok(());
    }
    println!(
        "{:<36}  {:<8} {:<8} {:<11} {:<14} ADDRESS",
        "NF INSTANCE ID", "TYPE", "NAME", "STATUS", "LOCALITY"
    );
    for p in &profiles {
        println!(
            "{:<36}  {:<8} {:<8} {:<11} {:<14} {}",
            p.nf_instance_id,
            p.nf_type.as_str(),
            p.nf_instance_name.as_deref().unwrap_or("-"),
            p.nf_status.as_str(),
            p.locality.as_deref().unwrap_or("-"),
            address_of(p)
        );
    }
    if profiles.is_empty() {
        println!("(no NF instance registered at {nrf_uri})");
    }
    Ok(())
}

/// Every service document this build generates, by service name.
pub fn all_service_docs() -> Vec<(String, utoipa::openapi::OpenApi)> {
    let mut docs = netgpt_nrf::api::service_docs();
    docs.extend(netgpt_amf::service_docs());
    docs.extend(netgpt_edgeai::service_docs());
    docs.extend(netgpt_cloudai::service_docs());
    docs.extend(netgpt_cmp::service_docs());
    docs
}

fn openapi(write: bool, dir: &std::path::Path) -> anyhow::Result<()> {
    let docs = all_service_docs();
    if write {
        for path in netgpt_sbi::openapi::write_specs(dir, &docs)? {
            println!("wrote {}", path.display());
        }
        return Ok(());
    }
    netgpt_sbi::openapi::check_specs(dir, &docs, "netgpt nf openapi --write")?;
    println!(
        "{} documents in {} match the code",
        docs.len(),
        dir.display()
    );
    Ok(())
}
