//! The NRF's state: its options, its profile store and its own API root; plus the
//! registration metrics kept in step with the store.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use netgpt_sbi::config::TestbedConfig;

use netgpt_sbi::models::nnrf::NfProfile;

use crate::store::{NfStore, StoreError};

/// REGISTERED profiles (with heartbeat deadlines) per NF type, as discovery reads them.
type Registered = Arc<Vec<(NfProfile, i64)>>;

/// Read cache in front of the store for NFDiscover, the NRF's hot path. Every write
/// through the procedures calls [`NrfContext::invalidate`]; a generation counter keeps a
/// read that raced with a write from caching what it read before the write.
#[derive(Default)]
struct DiscoveryCache {
    generation: AtomicU64,
    by_type: RwLock<HashMap<String, Registered>>,
}

/// Gauge of NF instances known to the NRF, labelled `nf_type` and `status`.
pub const REGISTERED_GAUGE: &str = "nrf_registered_nf_instances";
/// Counter of successful NFRegister operations, labelled `nf_type` and `result` (`created`/`replaced`).
pub const REGISTRATIONS_TOTAL: &str = "nrf_nf_registrations_total";
/// Counter of NFDeregister operations, labelled `nf_type`.
pub const DEREGISTRATIONS_TOTAL: &str = "nrf_nf_deregistrations_total";
/// Counter of profiles suspended because their heartbeats stopped, labelled `nf_type`.
pub const HEARTBEAT_EXPIRIES_TOTAL: &str = "nrf_heartbeat_expiries_total";
/// Counter of NFDiscover answers, labelled `target_nf_type` and `result` (`found`/`empty`).
pub const DISCOVERIES_TOTAL: &str = "nrf_nf_discover_total";

/// Tunables of the NRF.
#[derive(Debug, Clone, PartialEq)]
pub struct NrfOptions {
    /// `heartBeatTimer` given to profiles that register without one (seconds).
    pub default_heart_beat_timer: u32,
    /// Largest `heartBeatTimer` accepted; larger requests are lowered to it and the
    /// accepted value is returned in the profile (seconds).
    pub max_heart_beat_timer: u32,
    /// A profile is suspended when no heartbeat came within `heartBeatTimer x grace`.
    pub expiry_grace: f64,
    /// How often the expiry task looks for late profiles.
    pub expiry_check_interval: Duration,
    /// `validityPeriod` of NFDiscover answers (seconds).
    pub validity_period: u32,
}

impl Default for NrfOptions {
    fn default() -> Self {
        Self {
            default_heart_beat_timer: 10,
            max_heart_beat_timer: 3600,
            expiry_grace: 1.5,
            expiry_check_interval: Duration::from_secs(1),
            validity_period: 10,
        }
    }
}

impl NrfOptions {
    /// Defaults, with the testbed's `nrf.heartbeat_timer` as the default heartbeat timer
    /// and the discovery validity period.
    pub fn from_config(config: &TestbedConfig) -> Self {
        let hb = config.nrf.heartbeat_timer.max(1);
        Self {
            default_heart_beat_timer: hb,
            validity_period: hb,
            ..Self::default()
        }
    }

    /// Milliseconds after a heartbeat at which a profile with `heart_beat_timer` expires.
    pub fn expiry_after_ms(&self, heart_beat_timer: u32) -> i64 {
        (f64::from(heart_beat_timer) * 1000.0 * self.expiry_grace.max(1.0)).round() as i64
    }
}

/// Everything the NRF procedures work on. Cheap to clone.
#[derive(Clone)]
pub struct NrfContext {
    /// Where profiles live.
    pub store: Arc<dyn NfStore>,
    /// Tunables.
    pub options: NrfOptions,
    /// The NRF's own base URI (`http://127.0.0.1:8000`), for `Location` and list links.
    pub api_root: String,
    reported: Arc<Mutex<BTreeSet<(String, String)>>>,
    cache: Arc<DiscoveryCache>,
}

impl std::fmt::Debug for NrfContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NrfContext")
            .field("options", &self.options)
            .field("api_root", &self.api_root)
            .finish()
    }
}

impl NrfContext {
    /// A context over `store`, answering with links under `api_root`.
    pub fn new(store: Arc<dyn NfStore>, options: NrfOptions, api_root: impl Into<String>) -> Self {
        Self {
            store,
            options,
            api_root: api_root.into().trim_end_matches('/').to_owned(),
            reported: Arc::new(Mutex::new(BTreeSet::new())),
            cache: Arc::new(DiscoveryCache::default()),
        }
    }

    /// The REGISTERED profiles of `nf_type` with their heartbeat deadlines, from the
    /// discovery cache or the store.
    pub async fn registered(&self, nf_type: &str) -> Result<Registered, StoreError> {
        if let Some(hit) = self
            .cache
            .by_type
            .read()
            .expect("discovery cache")
            .get(nf_type)
        {
            return Ok(hit.clone());
        }
        let generation = self.cache.generation.load(Ordering::Acquire);
        let rows = Arc::new(self.store.find_registered(nf_type).await?);
        let mut map = self.cache.by_type.write().expect("discovery cache");
        // A write since the read began may not be in `rows`: do not cache them then.
        if self.cache.generation.load(Ordering::Acquire) == generation {
            map.insert(nf_type.to_owned(), rows.clone());
        }
        Ok(rows)
    }

    /// Forgets the discovery cache; called after every write to the store.
    pub fn invalidate(&self) {
        let mut map = self.cache.by_type.write().expect("discovery cache");
        self.cache.generation.fetch_add(1, Ordering::AcqRel);
        map.clear();
    }

    /// `{api_root}/nnrf-nfm/v1/nf-instances/{id}`.
    pub fn instance_uri(&self, id: impl std::fmt::Display) -> String {
        format!("{}/nnrf-nfm/v1/nf-instances/{id}", self.api_root)
    }

    /// Sets [`REGISTERED_GAUGE`] from the store's counts (series that dropped to zero are
    /// set to 0 rather than left at their last value).
    pub async fn refresh_gauges(&self) -> Result<(), StoreError> {
        let counts = self.store.counts().await?;
        let mut reported = self.reported.lock().expect("gauge label set");
        let now: BTreeSet<(String, String)> = counts
            .iter()
            .map(|(t, s, _)| (t.clone(), s.clone()))
            .collect();
        for (t, s) in reported.difference(&now) {
            metrics::gauge!(REGISTERED_GAUGE, "nf_type" => t.clone(), "status" => s.clone())
                .set(0.0);
        }
        for (t, s, n) in counts {
            metrics::gauge!(REGISTERED_GAUGE, "nf_type" => t, "status" => s).set(n as f64);
        }
        reported.extend(now);
        Ok(())
    }
}

/// Now, in Unix milliseconds (heartbeat deadlines are wall-clock so they survive restarts).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
