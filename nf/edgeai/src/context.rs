//! The edge AI function's state: its site, the edge model with its batcher, the duplicate
//! window, the answer cache and single-flight groups, the data policy, the restore maps of
//! desensitised prompts, the user profiles, and its SBI client.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use candle_core::Device;
use netgpt_models::data::profiles::{self, SiteProfile};
use netgpt_models::edge::EdgeModel;
use netgpt_sbi::config::{CellConfig, EdgeAiConfig, TestbedConfig};
use netgpt_sbi::{NfContext, NrfClient, SbiClient};

use crate::batcher::Batcher;
use crate::dedup::{DedupConfig, DedupStats, DedupWindow, ResponseCache, SingleFlight};
use crate::pii::RestoreMap;
use crate::policy::PolicyConfig;
use crate::store::ProfileStore;

/// How long a desensitised prompt's restore map is kept for `restore`.
pub const RESTORE_TTL: Duration = Duration::from_secs(600);
/// Most restore maps kept (oldest dropped).
pub const RESTORE_CAPACITY: usize = 10_000;

/// A completion shared by a single-flight group: the comprehensive prompt and its batch size.
#[derive(Debug, Clone)]
pub struct SharedCompletion {
    /// Text written by the edge model.
    pub text: String,
    /// Completions decoded in the same batch.
    pub batch_size: usize,
    /// Time in the model (queueing included), ms.
    pub ms: f64,
}

/// Everything an edge AI function holds.
pub struct EdgeAiContext {
    /// NF instance name (the `nf` label of its metrics).
    pub name: String,
    /// The site served (the NF's locality).
    pub site: String,
    /// The site's location profile (its places by category).
    pub profile: SiteProfile,
    /// The site's cells.
    pub cells: Vec<CellConfig>,
    /// The whole testbed configuration (cells of all sites).
    pub config: Arc<TestbedConfig>,
    /// `[edgeai]`.
    pub settings: EdgeAiConfig,
    /// The edge model.
    pub model: Arc<EdgeModel>,
    /// Adapter used for this site's completions (the one named after the site), if loaded.
    pub adapter: Option<String>,
    /// Dynamic batching of completions.
    pub batcher: Batcher,
    /// Recent prompts of the site.
    pub window: DedupWindow,
    /// Cloud answers by (site, comprehensive prompt).
    pub cache: ResponseCache<String>,
    /// Concurrent identical completions share one decode.
    pub completions: SingleFlight<SharedCompletion>,
    /// Concurrent identical cloud calls share one call.
    pub cloud_calls: SingleFlight<String>,
    /// Dedup, cache and upstream counters.
    pub stats: DedupStats,
    /// Data-policy rules.
    pub policy: PolicyConfig,
    /// Restore maps of desensitised prompts, by id.
    restores: Mutex<HashMap<String, (Instant, RestoreMap)>>,
    /// User profiles of the site.
    pub profiles: ProfileStore,
    /// SBI client (AMF, cloud, other edge functions).
    pub client: SbiClient,
    /// NRF discovery.
    pub nrf: NrfClient,
    /// Popularity and intent analytics.
    pub analytics: Arc<crate::analytics::Analytics>,
    /// The cloud model at the edge (offload, splitting), loaded on first use.
    pub cloud_at_edge: crate::frameworks::CloudAtEdge,
    /// Prompts per UE (`[limits] ue_rate_per_s`, `ue_burst`), by SUPI.
    pub ue_rate: netgpt_sbi::limits::RateLimiter,
}

impl std::fmt::Debug for EdgeAiContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeAiContext")
            .field("site", &self.site)
            .finish_non_exhaustive()
    }
}

/// A path of the configuration: as given when it exists (relative to the working
/// directory), else relative to the source tree (so `cargo test` in any crate finds
/// `models/edge`).
pub fn resolve(path: &Path) -> PathBuf {
    if path.is_absolute() || path.exists() {
        return path.to_owned();
    }
    let in_tree = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    if in_tree.exists() {
        in_tree
    } else {
        path.to_owned()
    }
}

/// A failure to build the context (the function does not start).
#[derive(Debug, thiserror::Error)]
#[error("edge AI function {name}: {reason}")]
pub struct LoadError {
    /// NF instance name.
    pub name: String,
    /// What is wrong (names the configuration key where one is at fault).
    pub reason: String,
}

impl EdgeAiContext {
    /// Loads the model and adapters of `[edgeai]`, the site's profile and policy, and opens
    /// the profile store, for the NF of `ctx` (its locality is the site).
    pub async fn load(ctx: &NfContext) -> Result<Self, LoadError> {
        let name = ctx.name.clone();
        let err = |reason: String| LoadError {
            name: name.clone(),
            reason,
        };
        let settings = ctx.config.edgeai.clone();
        let site = ctx.nf.locality.clone().ok_or_else(|| {
            err(format!(
                "key 'nf.{name}.locality' must name the edge site it serves"
            ))
        })?;
        if ctx.config.site(&site).is_none() {
            return Err(err(format!(
                "key 'nf.{name}.locality': '{site}' is not a [[site]] of the configuration"
            )));
        }
        let all = match &settings.profiles {
            Some(p) => profiles::load(&resolve(p))
                .map_err(|e| err(format!("key 'edgeai.profiles': {e}")))?,
            None => profiles::builtin(),
        };
        let profile = all.get(&site).cloned().ok_or_else(|| {
            err(format!(
                "no location profile for site '{site}' (profiles know {})",
                all.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        let policy: PolicyConfig = match &settings.policy {
            None => PolicyConfig::default_rules(),
            Some(rules) => {
                let rules = serde_json::from_value(serde_json::Value::Array(rules.clone()))
                    .map_err(|e| err(format!("key 'edgeai.policy': {e}")))?;
                PolicyConfig { rules }
            }
        };
        policy
            .validate()
            .map_err(|e| err(format!("key 'edgeai.policy': {e}")))?;
        let model_dir = resolve(&settings.model);
        let adapters = settings.adapters.clone();
        let want = site.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let m = EdgeModel::load(&model_dir, &Device::Cpu).map_err(|e| {
                format!(
                    "key 'edgeai.model': cannot load {}: {e}",
                    model_dir.display()
                )
            })?;
            for (n, dir) in &adapters {
                m.load_adapter(n, &resolve(dir))
                    .map_err(|e| format!("key 'edgeai.adapters.{n}': {e}"))?;
            }
            let adapter = m.adapters().get(&want).map(|_| want);
            Ok::<_, String>((m, adapter))
        })
        .await
        .map_err(|e| err(e.to_string()))?
        .map_err(err)?;
        let (model, adapter) = loaded;
        // The analytics models sit beside the edge model (`models/analytics/...`).
        let models_dir = resolve(&settings.model)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let trace = settings.viewing_trace.as_deref().map(resolve);
        let site_id = site.clone();
        let analytics = tokio::task::spawn_blocking(move || {
            crate::analytics::Analytics::load(&models_dir, trace.as_deref(), &site_id)
        })
        .await
        .map_err(|e| err(e.to_string()))?
        .map_err(err)?;
        let model = Arc::new(model);
        let profiles_store = ProfileStore::new(ctx.db.clone(), &site)
            .await
            .map_err(|e| err(e.to_string()))?;
        let dedup = DedupConfig {
            window: Duration::from_secs(settings.dedup_window_s),
            window_capacity: settings.dedup_window_capacity,
            near_threshold: settings.near_threshold,
            cache_ttl: Duration::from_secs(settings.cache_ttl_s),
            cache_capacity: settings.cache_capacity,
        };
        Ok(Self {
            name: ctx.name.clone(),
            cells: ctx
                .config
                .cell
                .iter()
                .filter(|c| c.site == site)
                .cloned()
                .collect(),
            config: ctx.config.clone(),
            batcher: Batcher::start(
                &ctx.name,
                model.clone(),
                settings.max_batch,
                Duration::from_millis(settings.max_wait_ms),
            ),
            window: DedupWindow::new(&dedup),
            cache: ResponseCache::new(dedup.cache_ttl, dedup.cache_capacity),
            completions: SingleFlight::new(),
            cloud_calls: SingleFlight::new(),
            stats: DedupStats::default(),
            restores: Mutex::new(HashMap::new()),
            profiles: profiles_store,
            client: ctx.client.clone(),
            nrf: ctx.nrf.clone(),
            analytics: Arc::new(analytics),
            cloud_at_edge: Default::default(),
            ue_rate: netgpt_sbi::limits::RateLimiter::new(
                ctx.config.limits.ue_rate_per_s,
                ctx.config.limits.ue_burst,
            ),
            settings,
            model,
            adapter,
            policy,
            profile,
            site,
        })
    }

    /// Keeps `map` for [`RESTORE_TTL`] and returns its id.
    pub fn keep_restore(&self, map: RestoreMap) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let mut m = self.restores.lock().expect("restore lock");
        let now = Instant::now();
        m.retain(|_, (t, _)| now.duration_since(*t) < RESTORE_TTL);
        if m.len() >= RESTORE_CAPACITY {
            if let Some(oldest) = m
                .iter()
                .min_by_key(|(_, (t, _))| *t)
                .map(|(k, _)| k.clone())
            {
                m.remove(&oldest);
            }
        }
        m.insert(id.clone(), (now, map));
        id
    }

    /// The restore map `id`, while it is kept.
    pub fn restore_map(&self, id: &str) -> Option<RestoreMap> {
        let m = self.restores.lock().expect("restore lock");
        m.get(id)
            .filter(|(t, _)| t.elapsed() < RESTORE_TTL)
            .map(|(_, r)| r.clone())
    }

    /// The cell `nr_cell_id` of the testbed (any site).
    pub fn cell(&self, nr_cell_id: &str) -> Option<&CellConfig> {
        self.config.cell(nr_cell_id)
    }
}
