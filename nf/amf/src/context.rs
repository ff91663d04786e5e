//! The AMF's state: the gNB/cell topology from the testbed configuration, the UE contexts
//! with their serving cells, and the location-report subscriptions. Held in memory for
//! fast reads and written through to the [`AmfStore`] before any change becomes visible.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use netgpt_sbi::config::TestbedConfig;
use netgpt_sbi::models::common::{
    GeographicArea, Ncgi, NrLocation, PlmnId, RatType, Tai, UserLocation,
};
use netgpt_sbi::models::namf::{AmfEventSubscription, CellInfo, UeContext};
use tokio::sync::{Mutex, RwLock};

use crate::consumer::Notifier;
use crate::mobility::RandomWalk;
use crate::store::{AmfStore, StoreError, SubscriptionRecord, UeRecord};

/// One cell of the topology.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// NR Cell Identity, lower-case hex (the map key).
    pub nr_cell_id: String,
    /// What the SBI shows of it.
    pub info: CellInfo,
    /// Its position encoded per TS 23.032 (see [`geographical_information`]).
    pub geographical_information: String,
}

impl Cell {
    /// The NR location of a UE in this cell.
    pub fn nr_location(&self, timestamp: DateTime<Utc>, age_minutes: u16) -> NrLocation {
        NrLocation {
            tai: self.info.tai.clone(),
            ncgi: self.info.ncgi.clone(),
            age_of_location_information: Some(age_minutes),
            ue_location_timestamp: Some(timestamp),
            geographical_information: Some(self.geographical_information.clone()),
        }
    }
}

/// Uncertainty code of a cell's position (TS 23.032 §6.2: r = 10 x (1.1^k - 1) m; k = 41 is
/// about 490 m, a small urban cell).
pub const CELL_UNCERTAINTY_CODE: u8 = 41;

/// TS 23.032 §7.3.2 "ellipsoid point with uncertainty circle" as 16 upper-case hex digits
/// (TS 29.571 `NrLocation.geographicalInformation`): shape 0001, latitude as sign + 23 bits
/// of |lat|/90 x 2^23, longitude as 24-bit two's complement of lon/360 x 2^24, then the
/// uncertainty code.
pub fn geographical_information(lat: f64, lon: f64, uncertainty_code: u8) -> String {
    let lat_bits = ((lat.abs() / 90.0 * f64::from(1u32 << 23)).floor() as u32).min((1 << 23) - 1);
    let lat_field = lat_bits | if lat < 0.0 { 1 << 23 } else { 0 };
    let lon_field = ((lon / 360.0 * f64::from(1u32 << 24)).floor() as i32 as u32) & 0x00ff_ffff;
    let bytes = [
        0x10,
        (lat_field >> 16) as u8,
        (lat_field >> 8) as u8,
        lat_field as u8,
        (lon_field >> 16) as u8,
        (lon_field >> 8) as u8,
        lon_field as u8,
        uncertainty_code & 0x7f,
    ];
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// The gNB/cell topology of the testbed: cells by NR Cell Identity, in config order.
#[derive(Debug, Clone)]
pub struct Topology {
    /// The testbed PLMN (every cell belongs to it).
    pub plmn: PlmnId,
    cells: Vec<Cell>,
    by_id: HashMap<String, usize>,
}

impl Topology {
    /// Builds the topology from the testbed's `[[cell]]` and `[[site]]` tables.
    pub fn from_config(cfg: &TestbedConfig) -> Self {
        let plmn = PlmnId::new(cfg.plmn.mcc.clone(), cfg.plmn.mnc.clone());
        let mut cells = Vec::new();
        let mut by_id = HashMap::new();
        for c in &cfg.cell {
            let id = c.nr_cell_id.to_ascii_lowercase();
            let info = CellInfo {
                ncgi: Ncgi {
                    plmn_id: plmn.clone(),
                    nr_cell_id: id.clone(),
                    nid: None,
                },
                tai: Tai {
                    plmn_id: plmn.clone(),
                    tac: c.tac.to_ascii_lowercase(),
                    nid: None,
                },
                name: c.name.clone(),
                geo_info: GeographicArea::point(c.lat, c.lon),
                site: c.site.clone(),
                site_name: cfg.site(&c.site).map(|s| s.name.clone()),
                timezone: Some(
                    cfg.site(&c.site)
                        .and_then(|s| s.timezone.clone())
                        .unwrap_or_else(|| nautical_timezone(c.lon)),
                ),
            };
            by_id.insert(id.clone(), cells.len());
            let geographical_information =
                geographical_information(c.lat, c.lon, CELL_UNCERTAINTY_CODE);
            cells.push(Cell {
                nr_cell_id: id,
                info,
                geographical_information,
            });
        }
        Self { plmn, cells, by_id }
    }

    /// Every cell, in configuration order.
    pub fn cells(&self) -> &[Cell] {
        &self.cells
    }

    /// The cell with this NR Cell Identity (case-insensitive).
    pub fn cell(&self, nr_cell_id: &str) -> Option<&Cell> {
        self.by_id
            .get(&nr_cell_id.to_ascii_lowercase())
            .map(|&i| &self.cells[i])
    }

    /// The cell with this NCGI (its PLMN must be the testbed's).
    pub fn cell_by_ncgi(&self, ncgi: &Ncgi) -> Option<&Cell> {
        (ncgi.plmn_id == self.plmn)
            .then(|| self.cell(&ncgi.nr_cell_id))
            .flatten()
    }
}

/// The nautical time zone of a longitude (`+08:00` for Hangzhou, `-05:00` for New York):
/// the testbed has no time-zone database, and a cell's civil zone may differ by an hour.
pub fn nautical_timezone(lon: f64) -> String {
    let hours = (lon / 15.0).round().clamp(-12.0, 12.0) as i32;
    format!("{}{:02}:00", if hours < 0 { '-' } else { '+' }, hours.abs())
}

/// A registered UE.
#[derive(Debug, Clone, PartialEq)]
pub struct UeState {
    /// The persisted record.
    pub record: UeRecord,
}

/// A live subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    /// Subscription id.
    pub id: String,
    /// The subscription as created.
    pub doc: AmfEventSubscription,
    /// Reports delivered so far.
    pub reports_sent: u32,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl Subscription {
    /// The persisted form.
    pub fn record(&self) -> SubscriptionRecord {
        SubscriptionRecord {
            id: self.id.clone(),
            document: serde_json::to_string(&self.doc).unwrap_or_default(),
            reports_sent: self.reports_sent,
            created_at: self.created_at,
        }
    }
}

/// Counters the tests and `/metrics` both see.
#[derive(Debug, Default)]
pub struct AmfStats {
    /// Handovers performed.
    pub handovers: AtomicU64,
    /// ProvideLocationInfo requests answered.
    pub location_requests: AtomicU64,
    /// Notifications delivered (2xx).
    pub notifications_delivered: AtomicU64,
    /// Notifications that failed (transport error or non-2xx).
    pub notifications_failed: AtomicU64,
}

impl AmfStats {
    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Everything the AMF's procedures work on.
pub struct AmfContext {
    /// The cell topology.
    pub topology: Topology,
    /// Base URI of this AMF (`http://127.0.0.1:8001`), for Location headers.
    pub api_root: String,
    /// Persistence.
    pub store: Arc<dyn AmfStore>,
    /// UE contexts by SUPI.
    pub ues: RwLock<BTreeMap<String, UeState>>,
    /// Subscriptions by id.
    pub subscriptions: RwLock<BTreeMap<String, Subscription>>,
    /// Serialises mutations so the store and memory change in the same order.
    pub write_lock: Mutex<()>,
    /// Client that delivers event notifications.
    pub notifier: Notifier,
    /// Counters.
    pub stats: Arc<AmfStats>,
    /// The random walk, when one was started.
    pub walk: Mutex<Option<RandomWalk>>,
}

impl std::fmt::Debug for AmfContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmfContext")
            .field("api_root", &self.api_root)
            .finish_non_exhaustive()
    }
}

/// Failure to bring the AMF's state up.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AmfContext {
    /// Builds the context: topology from `cfg`, state loaded from `store`, and the UEs of
    /// `cfg.ue` registered when the store does not know them yet (a UE that moved keeps its
    /// stored cell across restarts). Stored UEs on cells no longer in the topology are moved
    /// to their configured cell, or dropped with a warning.
    pub async fn new(
        cfg: &TestbedConfig,
        api_root: String,
        store: Arc<dyn AmfStore>,
        notifier: Notifier,
    ) -> Result<Self, ContextError> {
        let topology = Topology::from_config(cfg);
        let now = Utc::now();
        let mut ues = BTreeMap::new();
        for rec in store.load_ue_contexts().await? {
            if topology.cell(&rec.nr_cell_id).is_some() {
                ues.insert(rec.supi.clone(), UeState { record: rec });
            } else {
                tracing::warn!(supi = %rec.supi, cell = %rec.nr_cell_id, "stored UE on a cell not in the topology; dropped");
                store.delete_ue_context(&rec.supi).await?;
            }
        }
        for u in &cfg.ue {
            if !ues.contains_key(&u.supi) {
                let rec = UeRecord {
                    supi: u.supi.clone(),
                    pei: None,
                    nr_cell_id: u.cell.to_ascii_lowercase(),
                    registered_at: now,
                    located_at: now,
                };
                store.put_ue_context(&rec).await?;
                ues.insert(rec.supi.clone(), UeState { record: rec });
            }
        }
        let mut subscriptions = BTreeMap::new();
        for rec in store.load_subscriptions().await? {
            match serde_json::from_str::<AmfEventSubscription>(&rec.document) {
                Ok(doc) => {
                    subscriptions.insert(
                        rec.id.clone(),
                        Subscription {
                            id: rec.id,
                            doc,
                            reports_sent: rec.reports_sent,
                            created_at: rec.created_at,
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(id = %rec.id, error = %e, "stored subscription does not parse; ignored")
                }
            }
        }
        metrics::gauge!("amf_registered_ues").set(ues.len() as f64);
        Ok(Self {
            topology,
            api_root: api_root.trim_end_matches('/').to_owned(),
            store,
            ues: RwLock::new(ues),
            subscriptions: RwLock::new(subscriptions),
            write_lock: Mutex::new(()),
            notifier,
            stats: Arc::new(AmfStats::default()),
            walk: Mutex::new(None),
        })
    }

    /// The SBI view of a UE.
    pub fn ue_context(&self, ue: &UeState) -> UeContext {
        let cell = self.topology.cell(&ue.record.nr_cell_id);
        UeContext {
            supi: ue.record.supi.clone(),
            pei: ue.record.pei.clone(),
            rat_type: Some(RatType::Nr),
            user_location: cell.map(|c| UserLocation {
                nr_location: Some(c.nr_location(
                    ue.record.located_at,
                    age_minutes(ue.record.located_at, Utc::now()),
                )),
            }),
            serving_cell: cell.map(|c| c.info.clone()),
            registration_time: Some(ue.record.registered_at),
        }
    }
}

/// Whole minutes from `since` to `now`, capped to the 0..=32767 range of the 3GPP attribute.
pub fn age_minutes(since: DateTime<Utc>, now: DateTime<Utc>) -> u16 {
    (now - since).num_minutes().clamp(0, 32767) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_maps_cells_to_ncgi_tai_position_and_site() {
        let cfg = TestbedConfig::load_default().unwrap();
        let topo = Topology::from_config(&cfg);
        assert_eq!(topo.cells().len(), cfg.cell.len());
        let c = topo.cell("000001001").unwrap();
        assert_eq!(c.info.ncgi.plmn_id, PlmnId::new("001", "01"));
        assert_eq!(c.info.tai.tac, "000001");
        assert_eq!(c.info.site, "edge-hangzhou");
        assert!(c.info.site_name.as_deref().unwrap().contains("Hangzhou"));
        assert!((c.info.geo_info.coordinates().lat - 30.2635).abs() < 1e-9);
        assert_eq!(c.info.timezone.as_deref(), Some("+08:00"));
        assert!(topo.cell("00000100A").is_none());
        let foreign = Ncgi {
            plmn_id: PlmnId::new("999", "99"),
            nr_cell_id: "000001001".into(),
            nid: None,
        };
        assert!(topo.cell_by_ncgi(&foreign).is_none());
    }

    #[test]
    fn geographical_information_encodes_ts23032_ellipsoid_point() {
        let hex = geographical_information(30.2635, 120.1230, CELL_UNCERTAINTY_CODE);
        assert_eq!(hex.len(), 16);
        assert!(hex
            .chars()
            .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)));
        let b: Vec<u8> = (0..8)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        assert_eq!(
            b[0] >> 4,
            1,
            "shape: ellipsoid point with uncertainty circle"
        );
        let lat_field = u32::from(b[1]) << 16 | u32::from(b[2]) << 8 | u32::from(b[3]);
        let lat = f64::from(lat_field & 0x7f_ffff) * 90.0 / f64::from(1u32 << 23);
        assert!(lat_field & 0x80_0000 == 0 && (lat - 30.2635).abs() < 1e-4);
        let lon_raw = u32::from(b[4]) << 16 | u32::from(b[5]) << 8 | u32::from(b[6]);
        let lon = f64::from(((lon_raw << 8) as i32) >> 8) * 360.0 / f64::from(1u32 << 24);
        assert!((lon - 120.1230).abs() < 1e-4);
        assert_eq!(b[7], CELL_UNCERTAINTY_CODE);
        // Southern and western hemispheres: sign bit, two's complement.
        let sw = geographical_information(-33.86, -70.65, 0);
        assert_eq!(u8::from_str_radix(&sw[2..4], 16).unwrap() & 0x80, 0x80);
        assert_eq!(u8::from_str_radix(&sw[8..10], 16).unwrap() & 0x80, 0x80);
    }

    #[test]
    fn nautical_timezones() {
        assert_eq!(nautical_timezone(120.12), "+08:00");
        assert_eq!(nautical_timezone(-73.98), "-05:00");
        assert_eq!(nautical_timezone(-0.12), "+00:00");
    }
}
