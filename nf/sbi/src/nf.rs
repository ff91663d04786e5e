//! How an NF is started in-process, the same way by `netgpt up`, `netgpt nf run` and the
//! end-to-end tests.
//!
//! The convention every NF crate follows:
//!
//! ```ignore
//! // nf/amf/src/lib.rs
//! pub async fn start(ctx: NfContext) -> Result<RunningNf, NfError> {
//!     ctx.db.migrate("amf", store::MIGRATIONS).await?;          // sqlx, SQLite or PostgreSQL
//!     let state = AmfContext::new(&ctx.config, ctx.db.clone(), ctx.nrf.clone());
//!     let app = NfApp::new(&ctx.name)
//!         .service("namf-loc", api::loc_router(state.clone()), api::LocApi::openapi())
//!         .service("namf-evts", api::evts_router(state.clone()), api::EvtsApi::openapi());
//!     // background work stops when the NF stops:
//!     tokio::spawn(mobility::run(state, ctx.shutdown.clone()));
//!     ctx.launch(app).await          // serve, register with the NRF, heartbeat
//! }
//! ```
//!
//! - [`NfContext::from_config`] binds the NF's configured `listen` address and opens the
//!   configured database; [`NfContext::ephemeral`] binds `127.0.0.1:0` (tests).
//! - [`NfContext::launch`] serves the app (HTTP/1.1 + h2c), then registers an NFProfile
//!   built from the app's services ([`NfContext::profile`]) with the NRF at
//!   `config.nrf.uri`, retrying for [`REGISTER_TIMEOUT`] (the NRF may start later in
//!   docker-compose), and heartbeats every `heartBeatTimer` the NRF accepted
//!   (re-registering when the NRF answers 404). An NF of type `NRF` does not register.
//!   [`NfContext::launch_with_profile`] takes a hand-made profile instead.
//! - [`RunningNf::stop`] deregisters, cancels [`NfContext::shutdown`] (background tasks),
//!   stops accepting and finishes in-flight requests.
//! - The NF instance id is stable for a given PLMN, instance name and API root, so a
//!   restarted NF replaces its own registration instead of leaving a stale one.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::client::{ClientConfig, ClientError, SbiClient};
use crate::config::{ConfigError, NfConfig, TestbedConfig};
use crate::db::{self, Db, DbError};
use crate::limits::Admission;
use crate::models::common::PlmnId;
use crate::models::nnrf::{NfProfile, NfService, NfType};
use crate::nrf_client::NrfClient;
use crate::oauth::{self, AccessControl, TokenVerifier};
use crate::server::{self, NfApp};
use crate::tls::{read_pem, TlsConfig, TlsError};

/// How long [`NfContext::launch`] keeps trying to register before giving up.
pub const REGISTER_TIMEOUT: Duration = Duration::from_secs(15);
/// How long [`RunningNf::stop`] waits for in-flight requests before dropping them.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors starting or stopping an NF.
#[derive(Debug, thiserror::Error)]
pub enum NfError {
    /// The configuration is invalid or lacks the NF.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listen address could not be bound.
    #[error("nf.{name}.listen: cannot bind {addr}: {error}")]
    Bind {
        /// NF instance name.
        name: String,
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Registration with the NRF failed.
    #[error("{name}: NFRegister with the NRF at {nrf} failed: {error}")]
    Register {
        /// NF instance name.
        name: String,
        /// NRF URI.
        nrf: String,
        /// The last error.
        error: ClientError,
    },
    /// The TLS certificate, key or CA could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Anything else an NF's start function wants to report.
    #[error("{0}")]
    Other(String),
}

/// Everything an NF's `start` function needs: its identity, its listener, the testbed
/// configuration, the database, an SBI client and an NRF consumer.
pub struct NfContext {
    /// Instance name, the key in `[nf.<name>]` (`nrf`, `amf`).
    pub name: String,
    /// The NF's entry in the configuration.
    pub nf: NfConfig,
    /// NF type (`NRF`, `AMF`, ...).
    pub nf_type: NfType,
    /// The whole testbed configuration.
    pub config: Arc<TestbedConfig>,
    /// The bound listener the NF serves on.
    pub listener: TcpListener,
    /// The listener's local address.
    pub addr: SocketAddr,
    /// The base URI peers use (`advertise`, else `http://{addr}`; `127.0.0.1` for a wildcard bind).
    pub api_root: String,
    /// The NF instance id registered with the NRF.
    pub instance_id: Uuid,
    /// The database (shared pool; NFs keep their tables apart by prefix).
    pub db: Db,
    /// SBI client labelled with this NF's name.
    pub client: SbiClient,
    /// NRF consumer at `config.nrf.uri`.
    pub nrf: NrfClient,
    /// Cancelled when the NF stops; background tasks should watch it.
    pub shutdown: CancellationToken,
    /// TLS of the server, when `nf.<name>.tls_cert`/`tls_key` are set.
    pub tls: Option<TlsConfig>,
}

impl std::fmt::Debug for NfContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NfContext")
            .field("name", &self.name)
            .field("nf_type", &self.nf_type)
            .field("addr", &self.addr)
            .field("api_root", &self.api_root)
            .finish_non_exhaustive()
    }
}

/// The configured NF `name`, or an error naming the key.
pub fn nf_config<'a>(config: &'a TestbedConfig, name: &str) -> Result<&'a NfConfig, ConfigError> {
    config.nf.get(name).ok_or_else(|| ConfigError::Key {
        key: format!("nf.{name}"),
        reason: format!(
            "no such NF in the configuration (known: {})",
            config.nf.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    })
}

/// SBI client settings for `name` in the testbed: its User-Agent and metrics label, and
/// the testbed CA (`tls_ca`) trusted for `https://` peers.
pub fn client_config(config: &TestbedConfig, name: &str) -> Result<ClientConfig, TlsError> {
    let mut cfg = ClientConfig::new(name);
    if let Some(ca) = &config.tls_ca {
        cfg.root_certificates_pem.push(read_pem(ca)?);
    }
    Ok(cfg)
}

/// Binds `addr`, naming the NF's `listen` key on failure.
pub async fn bind(name: &str, addr: SocketAddr) -> Result<TcpListener, NfError> {
    TcpListener::bind(addr)
        .await
        .map_err(|error| NfError::Bind {
            name: name.to_owned(),
            addr,
            error,
        })
}

/// A stable instance id for (PLMN, name, API root).
fn stable_instance_id(config: &TestbedConfig, name: &str, api_root: &str) -> Uuid {
    let mut bytes = [0u8; 16];
    for (i, half) in bytes.chunks_mut(8).enumerate() {
        let mut h = std::hash::DefaultHasher::new();
        (i, &config.plmn.mcc, &config.plmn.mnc, name, api_root).hash(&mut h);
        half.copy_from_slice(&h.finish().to_be_bytes());
    }
    Uuid::new_v8(bytes)
}

impl NfContext {
    /// Binds the NF's configured `listen` address and opens `config.database.url`.
    pub async fn from_config(config: Arc<TestbedConfig>, name: &str) -> Result<Self, NfError> {
        let nf = nf_config(&config, name)?.clone();
        let listener = bind(name, nf.listen).await?;
        let db = db::connect(&config.database.url).await?;
        Self::with_listener(config, name, listener, db)
    }

    /// Binds `127.0.0.1:0` (an ephemeral port, for tests) and uses `db`.
    pub async fn ephemeral(
        config: Arc<TestbedConfig>,
        name: &str,
        db: Db,
    ) -> Result<Self, NfError> {
        nf_config(&config, name)?;
        let listener = bind(name, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        Self::with_listener(config, name, listener, db)
    }

    /// Uses an already bound listener and an open database.
    #[allow(clippy::result_large_err)] // errors are rare and carry the cause
    pub fn with_listener(
        config: Arc<TestbedConfig>,
        name: &str,
        listener: TcpListener,
        db: Db,
    ) -> Result<Self, NfError> {
        let nf = nf_config(&config, name)?.clone();
        let addr = listener.local_addr().map_err(|error| NfError::Bind {
            name: name.into(),
            addr: nf.listen,
            error,
        })?;
        let scheme = if nf.tls() { "https" } else { "http" };
        let api_root = match &nf.advertise {
            Some(a) => a.trim_end_matches('/').to_owned(),
            None if addr.ip().is_unspecified() => format!("{scheme}://127.0.0.1:{}", addr.port()),
            None => format!("{scheme}://{addr}"),
        };
        let tls = match (&nf.tls_cert, &nf.tls_key, &config.tls_ca) {
            (Some(cert), Some(key), Some(ca)) if nf.mtls => {
                Some(TlsConfig::mutual_from_pem_files(cert, key, ca)?)
            }
            (Some(cert), Some(key), _) => Some(TlsConfig::from_pem_files(cert, key)?),
            _ => None,
        };
        let mut client_cfg = client_config(&config, name)?;
        // The NF's own certificate is its client identity towards mTLS peers.
        if let (Some(cert), Some(key)) = (&nf.tls_cert, &nf.tls_key) {
            let mut pem = read_pem(cert)?;
            pem.push(b'\n');
            pem.extend(read_pem(key)?);
            client_cfg.identity_pem = Some(pem);
        }
        let client = SbiClient::try_with_config(client_cfg).map_err(|e| TlsError::Pem {
            path: config.tls_ca.clone().unwrap_or_default(),
            reason: e.to_string(),
        })?;
        let instance_id = stable_instance_id(&config, name, &api_root);
        // Every call this NF makes carries an access token for the target service.
        let client = oauth::with_tokens(client, &config, &instance_id.to_string(), &nf.nf_type);
        let nrf = NrfClient::new(client.clone(), config.nrf.uri.clone());
        Ok(Self {
            name: name.to_owned(),
            nf_type: NfType::new(nf.nf_type.clone()),
            instance_id,
            nf,
            config,
            listener,
            addr,
            api_root,
            db,
            client,
            nrf,
            shutdown: CancellationToken::new(),
            tls,
        })
    }

    /// The NFProfile of this NF offering `services` (service names): REGISTERED, the
    /// configured heartbeat timer, PLMN and locality, its IPv4 address and one
    /// `nfServiceList` entry per service at the API root.
    pub fn profile(&self, services: &[&str]) -> NfProfile {
        let (host, ip, port, scheme) = match url_host_port(&self.api_root) {
            Some((host, port, scheme)) => (
                Some(host.clone()),
                host.parse::<Ipv4Addr>().ok(),
                port,
                scheme,
            ),
            None => (None, None, self.addr.port(), "http".to_owned()),
        };
        let ip = ip.or(match self.addr.ip() {
            IpAddr::V4(v4) if !v4.is_unspecified() => Some(v4),
            _ => None,
        });
        let mut list = BTreeMap::new();
        for s in services {
            let id = format!("{}-{s}", self.name);
            let mut svc = NfService::http(id.clone(), *s, ip.unwrap_or(Ipv4Addr::LOCALHOST), port);
            svc.scheme = scheme.clone();
            if ip.is_none() {
                // A host name (containers): advertise the API root itself.
                svc.ip_end_points = None;
                svc.api_prefix = Some(self.api_root.clone());
            }
            list.insert(id, svc);
        }
        NfProfile {
            nf_instance_name: Some(self.name.clone()),
            heart_beat_timer: Some(self.config.nrf.heartbeat_timer),
            plmn_list: Some(vec![PlmnId {
                mcc: self.config.plmn.mcc.clone(),
                mnc: self.config.plmn.mnc.clone(),
            }]),
            ipv4_addresses: ip.map(|i| vec![i]),
            // TS 29.510 wants an fqdn or an address: a host name (compose, Kubernetes) is the fqdn.
            fqdn: host.filter(|h| h.parse::<IpAddr>().is_err()),
            locality: self.nf.locality.clone(),
            nf_service_list: Some(list),
            ..NfProfile::new(self.instance_id, self.nf_type.clone())
        }
    }

    /// `app` with what every NF's services pass before their handlers, from the
    /// configuration: the access-token check (`[oauth2]`, unless the app already has
    /// one; keys fetched from the NRF), the request bound and per-consumer rate, and the
    /// body limit (`[limits]`). [`NfContext::launch`] applies it; an NF that builds its
    /// router itself for [`NfContext::launch_with_profile`] must call it first.
    pub fn guard(&self, app: NfApp) -> NfApp {
        let mut app = app
            .admission(Admission::from_config(&self.config.limits))
            .body_limit(self.config.limits.max_body_bytes);
        if self.config.oauth2.enabled && !app.has_access_control() {
            // Keys are fetched with a client that carries no token (the JWK set is public).
            let plain = self.client.without_tokens();
            let verifier = Arc::new(TokenVerifier::remote(plain, &self.config.nrf.uri));
            app = app.access_control(
                AccessControl::new(
                    verifier,
                    self.nf_type.as_str(),
                    &self.instance_id.to_string(),
                )
                .with_token_url(oauth::token_url(&self.config.nrf.uri)),
            );
        }
        app
    }

    /// Serves `app` and registers the profile [`NfContext::profile`] builds from the app's
    /// services (not for an NF of type `NRF`), then heartbeats. The app's `/metrics` also
    /// shows unlabelled series named after the NF type (`amf_...`).
    pub async fn launch(self, app: NfApp) -> Result<RunningNf, NfError> {
        let names: Vec<String> = app.services().iter().map(|s| s.name.clone()).collect();
        let profile = (self.nf_type != NfType::NRF)
            .then(|| self.profile(&names.iter().map(String::as_str).collect::<Vec<_>>()));
        // The NF's own unlabelled metrics (`amf_...`) show on its /metrics whatever its name.
        let app = self
            .guard(app)
            .metrics_prefix(format!("{}_", self.nf_type.as_str().to_ascii_lowercase()))
            .nf_type(self.nf_type.as_str());
        self.launch_with_profile(app.build(), profile).await
    }

    /// Serves `app` and, when `profile` is given, registers it with the NRF and heartbeats.
    pub async fn launch_with_profile(
        self,
        app: Router,
        profile: Option<NfProfile>,
    ) -> Result<RunningNf, NfError> {
        let serve_token = CancellationToken::new();
        let server = match self.tls {
            Some(tls) => tokio::spawn(crate::tls::serve_tls(
                self.listener,
                app,
                tls,
                serve_token.clone(),
            )),
            None => tokio::spawn(server::serve(self.listener, app, serve_token.clone())),
        };
        let mut running = RunningNf {
            name: self.name.clone(),
            nf_type: self.nf_type.to_string(),
            addr: self.addr,
            api_root: self.api_root.clone(),
            instance_id: self.instance_id,
            shutdown: self.shutdown.clone(),
            serve_token,
            server,
            heartbeat: None,
            nrf: None,
        };
        if let Some(profile) = profile {
            let stored = match register_with_retry(&self.nrf, &profile, REGISTER_TIMEOUT).await {
                Ok(p) => p,
                Err(error) => {
                    let err = NfError::Register {
                        name: self.name.clone(),
                        nrf: self.nrf.nrf_uri().to_owned(),
                        error,
                    };
                    running.stop().await;
                    return Err(err);
                }
            };
            let period = stored
                .heart_beat_timer
                .or(profile.heart_beat_timer)
                .unwrap_or(self.config.nrf.heartbeat_timer);
            let hb_token = CancellationToken::new();
            let task = tokio::spawn(heartbeat_loop(
                self.nrf.clone(),
                profile,
                period,
                hb_token.clone(),
            ));
            running.heartbeat = Some((hb_token, task));
            running.nrf = Some(self.nrf.clone());
            tracing::info!(nf = %self.name, id = %self.instance_id, heartbeat_s = period, "registered with the NRF");
        }
        tracing::info!(nf = %self.name, addr = %self.addr, api_root = %self.api_root, "serving SBI");
        Ok(running)
    }
}

/// `(host, port, scheme)` of an `http(s)://host:port[/...]` URI.
fn url_host_port(uri: &str) -> Option<(String, u16, String)> {
    let (scheme, rest) = uri.split_once("://")?;
    let authority = rest.split('/').next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.parse().ok()?),
        None => (
            authority.to_owned(),
            if scheme == "https" { 443 } else { 80 },
        ),
    };
    Some((host, port, scheme.to_owned()))
}

async fn register_with_retry(
    nrf: &NrfClient,
    profile: &NfProfile,
    within: Duration,
) -> Result<NfProfile, ClientError> {
    let started = tokio::time::Instant::now();
    let mut wait = Duration::from_millis(200);
    loop {
        match nrf.register(profile).await {
            Ok(p) => return Ok(p),
            // The NRF answered and refused: retrying the same profile will not help.
            Err(e @ ClientError::Status { .. })
                if e.status().is_some_and(|s| s.is_client_error()) =>
            {
                return Err(e)
            }
            Err(e) if started.elapsed() + wait >= within => return Err(e),
            Err(e) => {
                tracing::warn!(
                    nrf = nrf.nrf_uri(),
                    "NFRegister failed, retrying in {wait:?}: {e}"
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
        }
    }
}

async fn heartbeat_loop(
    nrf: NrfClient,
    profile: NfProfile,
    mut period: u32,
    stop: CancellationToken,
) {
    let id = profile.nf_instance_id;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(u64::from(period.max(1)))) => {}
        }
        match nrf.heartbeat(id).await {
            Ok(()) => {}
            Err(e) if e.status() == Some(reqwest::StatusCode::NOT_FOUND) => {
                tracing::warn!(%id, "the NRF forgot this NF; registering again");
                match nrf.register(&profile).await {
                    Ok(p) => period = p.heart_beat_timer.unwrap_or(period),
                    Err(e) => tracing::warn!(%id, "re-registration failed: {e}"),
                }
            }
            Err(e) => tracing::warn!(%id, "heartbeat failed: {e}"),
        }
    }
}

/// A started NF: where it listens, and the handle to stop it gracefully.
#[derive(Debug)]
pub struct RunningNf {
    /// Instance name (`amf`).
    pub name: String,
    /// NF type (`AMF`).
    pub nf_type: String,
    /// The bound address.
    pub addr: SocketAddr,
    /// The base URI peers use (`http://127.0.0.1:8001`).
    pub api_root: String,
    /// The NF instance id (registered with the NRF unless the NF is the NRF).
    pub instance_id: Uuid,
    shutdown: CancellationToken,
    serve_token: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    heartbeat: Option<(CancellationToken, JoinHandle<()>)>,
    nrf: Option<NrfClient>,
}

impl RunningNf {
    /// The browsable API page (`{api_root}/docs/`).
    pub fn docs_url(&self) -> String {
        format!("{}{}/", self.api_root, server::DOCS_PATH)
    }

    /// Whether it registered with the NRF (and heartbeats).
    pub fn is_registered(&self) -> bool {
        self.nrf.is_some()
    }

    /// Whether the server task is still running.
    pub fn is_serving(&self) -> bool {
        !self.server.is_finished()
    }

    /// The token cancelled when the NF stops.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Graceful stop: stop heartbeating, deregister from the NRF, cancel background tasks,
    /// stop accepting and finish in-flight requests (at most [`DRAIN_TIMEOUT`]).
    pub async fn stop(mut self) {
        if let Some((token, task)) = self.heartbeat.take() {
            token.cancel();
            let _ = task.await;
        }
        if let Some(nrf) = self.nrf.take() {
            match tokio::time::timeout(Duration::from_secs(3), nrf.deregister(self.instance_id))
                .await
            {
                Ok(Ok(())) => tracing::info!(nf = %self.name, "deregistered from the NRF"),
                Ok(Err(e)) => tracing::warn!(nf = %self.name, "NFDeregister failed: {e}"),
                Err(_) => tracing::warn!(nf = %self.name, "NFDeregister timed out"),
            }
        }
        self.shutdown.cancel();
        self.serve_token.cancel();
        match tokio::time::timeout(DRAIN_TIMEOUT, &mut self.server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(nf = %self.name, "server ended with an error: {e}"),
            Ok(Err(e)) => tracing::warn!(nf = %self.name, "server task failed: {e}"),
            Err(_) => {
                tracing::warn!(nf = %self.name, "in-flight requests did not finish within {DRAIN_TIMEOUT:?}; dropping them");
                self.server.abort();
            }
        }
        // The spans of the requests just drained leave now, not at the next export tick.
        let _ = tokio::task::spawn_blocking(crate::telemetry::flush).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_root_parts() {
        assert_eq!(
            url_host_port("http://127.0.0.1:8001"),
            Some(("127.0.0.1".into(), 8001, "http".into()))
        );
        assert_eq!(
            url_host_port("https://amf.core/x"),
            Some(("amf.core".into(), 443, "https".into()))
        );
    }

    #[test]
    fn instance_ids_are_stable_per_name_and_root() {
        let cfg = TestbedConfig::load_default().unwrap();
        let a = stable_instance_id(&cfg, "amf", "http://127.0.0.1:8001");
        assert_eq!(a, stable_instance_id(&cfg, "amf", "http://127.0.0.1:8001"));
        assert_ne!(a, stable_instance_id(&cfg, "amf", "http://127.0.0.1:9001"));
        assert_ne!(a, stable_instance_id(&cfg, "nrf", "http://127.0.0.1:8001"));
    }

    #[tokio::test]
    async fn profile_of_a_host_name_root_carries_it_as_fqdn() {
        let mut cfg = TestbedConfig::load_default().unwrap();
        cfg.nf.get_mut("amf").unwrap().advertise = Some("http://amf:8001".into());
        let db = db::connect("sqlite::memory:").await.unwrap();
        let ctx = NfContext::ephemeral(Arc::new(cfg), "amf", db)
            .await
            .unwrap();
        let p = ctx.profile(&["namf-loc"]);
        assert_eq!(p.fqdn.as_deref(), Some("amf"));
    }

    #[tokio::test]
    async fn profile_lists_each_service_at_the_bound_port() {
        let cfg = Arc::new(TestbedConfig::load_default().unwrap());
        let db = db::connect("sqlite::memory:").await.unwrap();
        let ctx = NfContext::ephemeral(cfg, "amf", db).await.unwrap();
        let p = ctx.profile(&["namf-loc", "namf-evts"]);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["nfType"], "AMF");
        assert_eq!(v["heartBeatTimer"], 10);
        assert_eq!(v["plmnList"][0]["mcc"], "001");
        let svc = p.service("namf-loc").unwrap();
        assert_eq!(svc.api_root().unwrap(), ctx.api_root);
        assert_eq!(
            svc.ip_end_points.as_ref().unwrap()[0].port,
            Some(ctx.addr.port())
        );
        assert!(p.service("namf-evts").is_some());
    }
}
