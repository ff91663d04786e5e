//! The experiments' testbed: NRF, AMF (the configuration's UEs, one per site), the cloud AI
//! function, the four edge AI functions and, for LLM offload, a second cloud AI function
//! instance at an edge site, all in this process on ephemeral ports, with every network hop
//! a UE's request crosses going through an emulated link ([`LinkProxy`]):
//!
//! - UE -> edge: the `[ue_link]`;
//! - edge -> cloud: the site's `[[link]]`. The cloud AI function is registered in the NRF
//!   with `advertise` = the link proxy's URL, so the URL the edge functions discover goes
//!   through the link. The edges share one cloud registration, hence one emulated
//!   edge-cloud link (the default testbed's four links are identical; the first site's is
//!   used);
//! - UE -> cloud (cloud-only): the UE link then the edge-cloud link, two chained proxies;
//! - UE -> edge-sited cloud instance (offload): the UE link only. That instance is not
//!   registered in the NRF, so the edge functions keep discovering the cloud one.
//!
//! A layer on each cloud AI function's router records what it received (calls, body bytes,
//! prompts), the function itself unchanged.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use netgpt_sbi::config::{EdgeAnswerMode, TestbedConfig};
use netgpt_sbi::nf::{bind, NfContext, RunningNf};
use serde_json::Value;

use super::link::{LinkProxy, LinkSpec};

/// One `generate` request a cloud AI function received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The prompt (or the last message's content).
    pub prompt: String,
    /// Size of the request body, bytes.
    pub body_bytes: usize,
}

/// What a cloud AI function instance received.
#[derive(Debug, Clone, Default)]
pub struct CloudLog(Arc<Mutex<Vec<Received>>>);

impl CloudLog {
    /// How many requests so far (mark before a run, [`CloudLog::since`] after it).
    pub fn mark(&self) -> usize {
        self.0.lock().expect("cloud log lock").len()
    }

    /// Requests received after the first `mark`.
    pub fn since(&self, mark: usize) -> Vec<Received> {
        self.0.lock().expect("cloud log lock")[mark..].to_vec()
    }
}

async fn record(
    axum::extract::State(log): axum::extract::State<CloudLog>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    if parts.uri.path().ends_with("/generate") {
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let prompt = v["prompt"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| {
                v["messages"]
                    .as_array()
                    .and_then(|m| m.last())
                    .and_then(|m| m["content"].as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        log.0.lock().expect("cloud log lock").push(Received {
            prompt,
            body_bytes: bytes.len(),
        });
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Settings of the harness.
#[derive(Debug, Clone)]
pub struct HarnessOptions {
    /// `maxTokens` the edge functions ask of the cloud.
    pub max_tokens: usize,
    /// Start the edge-sited cloud AI function instance (offload) at this site.
    pub offload_site: Option<String>,
}

/// The running testbed with its emulated links.
pub struct Harness {
    /// The configuration the NFs run with.
    pub cfg: Arc<TestbedConfig>,
    nfs: Vec<RunningNf>,
    edge_nfs: Vec<(String, RunningNf)>,
    db: netgpt_sbi::db::Db,
    /// The UE link's cost.
    pub ue_spec: LinkSpec,
    /// The edge-cloud link's cost.
    pub link_spec: LinkSpec,
    /// Edge AI function address per site.
    pub edges: BTreeMap<String, SocketAddr>,
    /// The UE registered at each site (SUPI).
    pub ues: BTreeMap<String, String>,
    /// The cloud AI function's own address (behind the links).
    pub cloud_addr: SocketAddr,
    /// The edge -> cloud link the edge functions reach the cloud over.
    pub edge_cloud: LinkProxy,
    /// What the cloud AI function received.
    pub cloud_log: CloudLog,
    /// The edge-sited cloud instance (offload): address and what it received.
    pub offload: Option<(SocketAddr, CloudLog)>,
    /// The cloud model file.
    pub model: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn ctx(
    cfg: &Arc<TestbedConfig>,
    name: &str,
    db: &netgpt_sbi::db::Db,
) -> anyhow::Result<NfContext> {
    NfContext::ephemeral(cfg.clone(), name, db.clone())
        .await
        .with_context(|| format!("{name}: context"))
}

/// Loads a cloud AI function state and serves it with a recording layer.
async fn cloud(ctx: NfContext, register: bool) -> anyhow::Result<(RunningNf, CloudLog)> {
    let limits = ctx.config.cloudai.clone();
    let name = ctx.name.clone();
    let state = tokio::task::spawn_blocking(move || {
        netgpt_cloudai::CloudAiContext::load(&limits, &name).map_err(|e| e.to_string())
    })
    .await?
    .map_err(|e| anyhow::anyhow!("cloud AI function: {e}"))?;
    let log = CloudLog::default();
    let router = netgpt_cloudai::app(&ctx.name, Arc::new(state))
        .build()
        .layer(axum::middleware::from_fn_with_state(log.clone(), record));
    let profile = register.then(|| ctx.profile(&[netgpt_cloudai::SERVICE]));
    Ok((ctx.launch_with_profile(router, profile).await?, log))
}

impl Harness {
    /// Starts everything; fails with a one-line reason when the cloud model is not cached.
    pub async fn start(mut config: TestbedConfig, opts: HarnessOptions) -> anyhow::Result<Harness> {
        let model = match config.cloudai.model.clone() {
            Some(m) => m,
            None => netgpt_models::fetch::cached_cloud_model().ok_or_else(|| {
                anyhow::anyhow!("the cloud model is not cached: run `netgpt models fetch` first")
            })?,
        };
        config.cloudai.model = Some(model.clone());
        // Synergy's own mechanisms (dedup, single flight, cache) only: no directory answers,
        // so every framework's answers come from the same cloud model.
        config.edgeai.edge_answer = EdgeAnswerMode::Cache;
        config.edgeai.cloud_max_tokens = opts.max_tokens;
        let dir = tempfile::tempdir()?;
        config.data_dir = dir.path().to_owned();
        config.database.url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("testbed.db").display()
        );
        let ue_spec = LinkSpec::from_ue_link("ue-edge", &config.ue_link);
        let link = config
            .link
            .iter()
            .find(|l| l.b == "cloud" || l.a == "cloud")
            .context("config: key 'link': no edge <-> cloud link")?;
        let link_spec = LinkSpec::from_link("edge-cloud", link);
        let db = netgpt_sbi::db::connect(&config.database.url).await?;
        let mut nfs = Vec::new();

        // NRF first; everyone else points at it.
        let nrf_ctx = ctx(&Arc::new(config.clone()), "nrf", &db).await?;
        config.nrf.uri = nrf_ctx.api_root.clone();
        nfs.push(netgpt_nrf::start(nrf_ctx).await?);

        // The cloud behind its link: bind, put the proxy in front, advertise the proxy.
        let cloud_listener = bind("cloudai", "127.0.0.1:0".parse()?).await?;
        let cloud_addr = cloud_listener.local_addr()?;
        let (_, edge_cloud) = LinkProxy::start(cloud_addr, link_spec.clone()).await?;
        config
            .nf
            .get_mut("cloudai")
            .context("config: key 'nf.cloudai': missing")?
            .advertise = Some(edge_cloud.url());
        if let Some(site) = &opts.offload_site {
            let mut nf = config.nf["cloudai"].clone();
            nf.advertise = None;
            nf.locality = Some(site.clone());
            config.nf.insert("cloudai-offload".into(), nf);
        }
        let cfg = Arc::new(config);
        let started = async {
            let amf = ctx(&cfg, "amf", &db).await?;
            nfs.push(netgpt_amf::start(amf).await?);
            let cloud_ctx =
                NfContext::with_listener(cfg.clone(), "cloudai", cloud_listener, db.clone())?;
            let (running, cloud_log) = cloud(cloud_ctx, true).await?;
            nfs.push(running);
            let offload = match &opts.offload_site {
                Some(_) => {
                    let c = ctx(&cfg, "cloudai-offload", &db).await?;
                    let (running, log) = cloud(c, false).await?;
                    let addr = running.addr;
                    nfs.push(running);
                    Some((addr, log))
                }
                None => None,
            };
            let edge_nfs = start_edges(&cfg, &db).await?;
            anyhow::Ok((cloud_log, offload, edge_nfs))
        }
        .await;
        let (cloud_log, offload, edge_nfs) = match started {
            Ok(v) => v,
            Err(e) => {
                for nf in nfs.into_iter().rev() {
                    nf.stop().await;
                }
                return Err(e);
            }
        };
        let mut ues = BTreeMap::new();
        for ue in &cfg.ue {
            if let Some(cell) = cfg.cell(&ue.cell) {
                ues.entry(cell.site.clone())
                    .or_insert_with(|| ue.supi.clone());
            }
        }
        let edges = edge_nfs
            .iter()
            .map(|(site, nf)| (site.clone(), nf.addr))
            .collect();
        Ok(Harness {
            cfg,
            nfs,
            edge_nfs,
            db,
            ue_spec,
            link_spec,
            edges,
            ues,
            cloud_addr,
            edge_cloud,
            cloud_log,
            offload,
            model,
            _dir: dir,
        })
    }

    /// Replaces the edge AI functions by fresh ones (empty duplicate windows and caches), so
    /// one synergy run does not answer from what an earlier run left behind.
    pub async fn fresh_edges(&mut self) -> anyhow::Result<()> {
        for (_, nf) in self.edge_nfs.drain(..).rev() {
            nf.stop().await;
        }
        self.edge_nfs = start_edges(&self.cfg, &self.db).await?;
        self.edges = self
            .edge_nfs
            .iter()
            .map(|(site, nf)| (site.clone(), nf.addr))
            .collect();
        Ok(())
    }

    /// A fresh UE link in front of the edge AI function of `site` (its own counters).
    pub async fn ue_to_edge(&self, site: &str) -> anyhow::Result<LinkProxy> {
        let addr = *self
            .edges
            .get(site)
            .with_context(|| format!("no edge AI function at site '{site}'"))?;
        Ok(LinkProxy::start(addr, self.ue_spec.clone()).await?.1)
    }

    /// Cloud-only's path: a UE link chained to a fresh edge-cloud link in front of the cloud
    /// AI function; returns (UE link, edge-cloud link); requests go to the UE link.
    pub async fn ue_to_cloud(&self) -> anyhow::Result<(LinkProxy, LinkProxy)> {
        let (ec_addr, ec) = LinkProxy::start(self.cloud_addr, self.link_spec.clone()).await?;
        let (_, ue) = LinkProxy::start(ec_addr, self.ue_spec.clone()).await?;
        Ok((ue, ec))
    }

    /// Offload's path: a UE link in front of the edge-sited cloud instance.
    pub async fn ue_to_offload(&self) -> anyhow::Result<LinkProxy> {
        let (addr, _) = self
            .offload
            .as_ref()
            .context("the harness was started without the offload instance")?;
        Ok(LinkProxy::start(*addr, self.ue_spec.clone()).await?.1)
    }

    /// Stops every NF in reverse order.
    pub async fn stop(self) {
        self.edge_cloud.stop();
        for (_, nf) in self.edge_nfs.into_iter().rev() {
            nf.stop().await;
        }
        for nf in self.nfs.into_iter().rev() {
            nf.stop().await;
        }
    }
}

/// Starts every EDGEAI function of the configuration: (site, running NF).
async fn start_edges(
    cfg: &Arc<TestbedConfig>,
    db: &netgpt_sbi::db::Db,
) -> anyhow::Result<Vec<(String, RunningNf)>> {
    let mut out = Vec::new();
    for (name, nf) in cfg.nf.iter() {
        if !nf.nf_type.eq_ignore_ascii_case("EDGEAI") {
            continue;
        }
        let site = nf.locality.clone().unwrap_or_else(|| name.clone());
        let c = ctx(cfg, name, db).await?;
        match netgpt_edgeai::start(c).await {
            Ok(running) => out.push((site, running)),
            Err(e) => {
                for (_, nf) in out.into_iter().rev() {
                    nf.stop().await;
                }
                return Err(anyhow::anyhow!("{name}: {e}"));
            }
        }
    }
    Ok(out)
}

/// A UE's HTTP/2 client: a new one per request, so each request opens its own connection
/// (and pays the links' set-up cost), as a UE waking up to ask does.
pub fn ue_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(std::time::Duration::from_secs(600))
        .build()?)
}
