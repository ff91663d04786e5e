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

/// One generation a cloud AI function was asked for (`generate`, or a split session).
#[derive(Debug, Clone)]
pub struct Received {
    /// The prompt (or the last message's content; empty for a split session).
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
    // A generation is one `generate` call or one split session (its creation; its steps
    // are part of it).
    let path = parts.uri.path();
    if path.ends_with("/generate")
        || (path.ends_with("/sessions") && parts.method == axum::http::Method::POST)
    {
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
    /// The edge-sited cloud instance (offload): address, what it received, and its model
    /// (whose first layers the split edge half runs, at the same site).
    pub offload: Option<(SocketAddr, CloudLog, Arc<netgpt_cloudai::CloudAiContext>)>,
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
async fn cloud(
    ctx: NfContext,
    register: bool,
) -> anyhow::Result<(RunningNf, CloudLog, Arc<netgpt_cloudai::CloudAiContext>)> {
    let limits = ctx.config.cloudai.clone();
    let name = ctx.name.clone();
    let state = tokio::task::spawn_blocking(move || {
        netgpt_cloudai::CloudAiContext::load(&limits, &name).map_err(|e| e.to_string())
    })
    .await?
    .map_err(|e| anyhow::anyhow!("cloud AI function: {e}"))?;
    let log = CloudLog::default();
    let state = Arc::new(state);
    let router = netgpt_cloudai::app(&ctx.name, state.clone())
        .build()
        .layer(axum::middleware::from_fn_with_state(log.clone(), record));
    let profile = register.then(|| ctx.profile(&[netgpt_cloudai::SERVICE]));
    Ok((ctx.launch_with_profile(router, profile).await?, log, state))
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
        // Everything runs here, in cleartext h2c on loopback: a deployment's advertised
        // addresses (containers) and certificates do not apply.
        for nf in config.nf.values_mut() {
            nf.advertise = None;
            nf.tls_cert = None;
            nf.tls_key = None;
            nf.mtls = false;
        }
        // The frameworks' own traffic only: no access tokens (the issue of OAuth2 and its
        // checks are the same for every framework), and a hundred prompts from a few UEs at
        // once are the experiment, not an overload to shed.
        config.oauth2.enabled = false;
        config.limits.ue_rate_per_s = 0.0;
        config.limits.nf_rate_per_s = 0.0;
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
            let (running, cloud_log, _) = cloud(cloud_ctx, true).await?;
            nfs.push(running);
            let offload = match &opts.offload_site {
                Some(_) => {
                    let c = ctx(&cfg, "cloudai-offload", &db).await?;
                    let (running, log, state) = cloud(c, false).await?;
                    let addr = running.addr;
                    nfs.push(running);
                    Some((addr, log, state))
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
        let (addr, _, _) = self
            .offload
            .as_ref()
            .context("the harness was started without the offload instance")?;
        Ok(LinkProxy::start(*addr, self.ue_spec.clone()).await?.1)
    }

    /// Splitting's path: a UE link in front of the split edge (the first `split_layer` layers
    /// of the cloud model at the offload site), which reaches the cloud AI function's
    /// `ncloudai-split` over a fresh edge-cloud link. Returns (UE link, edge-cloud link, the
    /// split edge server).
    pub async fn ue_to_split(
        &self,
        split_layer: usize,
    ) -> anyhow::Result<(LinkProxy, LinkProxy, SplitEdge)> {
        let (_, _, state) = self
            .offload
            .as_ref()
            .context("the harness was started without the edge-sited model")?;
        let (ec_addr, ec) = LinkProxy::start(self.cloud_addr, self.link_spec.clone()).await?;
        let edge =
            SplitEdge::start(state.clone(), split_layer, format!("http://{ec_addr}")).await?;
        let (_, ue) = LinkProxy::start(edge.addr, self.ue_spec.clone()).await?;
        Ok((ue, ec, edge))
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

/// The edge side of LLM splitting, as the experiments run it: an HTTP endpoint at the edge
/// site (`POST /split-edge/v1/generate` with `{"prompt", "maxTokens"}`) that runs the first
/// layers of the cloud model on the UE's prompt (ChatML-rendered, as `ncloudai-gen` renders
/// it) and drives the cloud's `ncloudai-split` sessions with
/// [`netgpt_cloudai::split::generate_split_remote`], hidden states in the f16 wire format.
/// At most the cloud's session bound of generations run at once; the others wait here.
pub struct SplitEdge {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct SplitEdgeState {
    ctx: Arc<netgpt_cloudai::CloudAiContext>,
    edge: Arc<netgpt_models::llama_split::EdgeHalf>,
    client: netgpt_sbi::SbiClient,
    cloud_root: String,
    slots: Arc<tokio::sync::Semaphore>,
}

impl SplitEdge {
    async fn start(
        ctx: Arc<netgpt_cloudai::CloudAiContext>,
        split_layer: usize,
        cloud_root: String,
    ) -> anyhow::Result<SplitEdge> {
        let edge = netgpt_models::llama_split::EdgeHalf::new(ctx.model.clone(), split_layer)
            .map_err(|e| anyhow::anyhow!("split layer {split_layer}: {e}"))?;
        let st = SplitEdgeState {
            ctx,
            edge: Arc::new(edge),
            client: netgpt_sbi::SbiClient::new("split-edge"),
            cloud_root,
            slots: Arc::new(tokio::sync::Semaphore::new(
                netgpt_cloudai::split::SplitLimits::default().max_sessions,
            )),
        };
        let app = axum::Router::new()
            .route(
                "/split-edge/v1/generate",
                axum::routing::post(split_generate),
            )
            .with_state(st);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(SplitEdge { addr, task })
    }
}

impl Drop for SplitEdge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn split_generate(
    axum::extract::State(st): axum::extract::State<SplitEdgeState>,
    axum::Json(req): axum::Json<Value>,
) -> Result<axum::Json<Value>, (axum::http::StatusCode, String)> {
    use netgpt_models::chat::{render_chatml, ChatMessage, Role};
    let bad = |e: String| (axum::http::StatusCode::BAD_GATEWAY, e);
    let prompt = req["prompt"].as_str().unwrap_or_default().to_owned();
    let max_tokens = req["maxTokens"].as_u64().unwrap_or(16) as usize;
    let text = render_chatml(&[ChatMessage::new(Role::User, prompt)], true);
    let ids = netgpt_models::tokenizer::encode(&st.ctx.tokenizer, &text)
        .map_err(|e| bad(e.to_string()))?;
    let _slot = st.slots.acquire().await.map_err(|e| bad(e.to_string()))?;
    let out = netgpt_cloudai::split::generate_split_remote(
        &st.client,
        &st.cloud_root,
        &st.edge,
        &st.ctx.tokenizer,
        &ids,
        st.edge.split_layer(),
        max_tokens,
    )
    .await
    .map_err(|e| bad(e.to_string()))?;
    Ok(axum::Json(serde_json::json!({
        "text": out.text,
        "promptTokens": ids.len(),
        "bytesUp": out.bytes_up,
        "bytesDown": out.bytes_down,
        "steps": out.steps,
    })))
}
