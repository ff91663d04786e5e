//! The CmP's resource inventory (`ncmp-res`): compute nodes (edge sites, the cloud) with
//! typed devices (`cpu`, `gpu`, `vpu`) as integer capacity units plus memory, the links
//! between nodes, and the live load the NFs report per device.
//!
//! Sources, in order at start: the nodes stored in the database (registered by NFs over
//! `PUT /ncmp-res/v1/nodes/{nodeId}`), then the testbed configuration's `[[node]]` and
//! `[[link]]` lists. A configured node replaces a stored node that came from the
//! configuration (the file is the truth for what it declares) but not one an NF
//! registered (the NF's registration is the newer, live word). Live load is kept in
//! memory only: after a restart the NFs' next reports refill it.

use std::collections::BTreeMap;
use std::sync::RwLock;

use chrono::{DateTime, TimeZone, Utc};
use netgpt_sbi::config::TestbedConfig;
use netgpt_sbi::db::{Db, DbError, Migration};
use netgpt_sbi::{InvalidParam, ProblemDetails};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;

use crate::sched::{self, DeviceKind};

/// Where a node's definition came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NodeSource {
    /// The testbed configuration (`[[node]]`).
    Config,
    /// A registration over `ncmp-res` (an NF registering its node).
    Registered,
}

/// The live load of one device, as its NF last reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceLoad {
    /// Capacity units in use.
    pub busy_units: u32,
    /// Requests waiting for the device.
    pub queue_length: u32,
    /// When the report arrived.
    pub reported_at: DateTime<Utc>,
}

/// One typed device of a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceInfo {
    /// Device id, unique within the node (`cpu0`, `gpu0`).
    #[schema(example = "gpu0")]
    pub device_id: String,
    /// Device kind.
    pub kind: DeviceKind,
    /// Capacity in integer units (cores, GPU slices, VPU engines).
    #[schema(minimum = 1)]
    pub units: u32,
    /// Memory available to steps, MiB.
    #[serde(default)]
    pub memory_mb: u64,
    /// Relative speed; 1.0 is the device a step's cost estimate is given for.
    #[serde(default = "one")]
    pub speed: f64,
    /// Live load (absent until the device's NF reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<DeviceLoad>,
}

fn one() -> f64 {
    1.0
}

/// A link from this node to a peer, as given in a node registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerLink {
    /// The other node's id.
    #[schema(example = "cloud")]
    pub peer: String,
    /// Bandwidth, bits per second.
    #[schema(example = 1.0e9)]
    pub bandwidth_bps: f64,
    /// One-way latency, milliseconds.
    #[schema(example = 20.0)]
    pub latency_ms: f64,
}

/// A compute node with its devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// Node id: the locality of the NFs that run on it (a site id, `cloud`).
    #[schema(example = "edge-hangzhou")]
    pub node_id: String,
    /// Where the definition came from.
    pub source: NodeSource,
    /// Its devices.
    pub devices: Vec<DeviceInfo>,
    /// Links this node declared (a registered node; configured links are in `/links`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<PeerLink>,
    /// When the definition last changed.
    pub updated_at: DateTime<Utc>,
}

/// `PUT /ncmp-res/v1/nodes/{nodeId}` body: the node's devices and, optionally, its links.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeRegistration {
    /// The node's devices (at least one).
    pub devices: Vec<DeviceSpec>,
    /// Links to other nodes; a link to a peer replaces a configured link between the two.
    #[serde(default)]
    pub links: Vec<PeerLink>,
}

/// One device of a [`NodeRegistration`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceSpec {
    /// Device id, unique within the node.
    #[schema(example = "vpu0")]
    pub device_id: String,
    /// Device kind.
    pub kind: DeviceKind,
    /// Capacity units (at least 1).
    #[schema(minimum = 1)]
    pub units: u32,
    /// Memory, MiB.
    #[serde(default)]
    pub memory_mb: u64,
    /// Relative speed (positive; default 1.0).
    #[serde(default = "one")]
    pub speed: f64,
}

/// `PUT /ncmp-res/v1/nodes/{nodeId}/load` body: the live load of some of the node's devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadReport {
    /// One entry per reported device.
    pub devices: Vec<DeviceLoadReport>,
}

/// The load of one device in a [`LoadReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceLoadReport {
    /// Device id of the node.
    pub device_id: String,
    /// Capacity units in use (at most the device's units).
    pub busy_units: u32,
    /// Requests waiting.
    #[serde(default)]
    pub queue_length: u32,
}

/// A symmetric link between two nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkInfo {
    /// One end.
    pub a: String,
    /// The other end.
    pub b: String,
    /// Bandwidth, bits per second.
    pub bandwidth_bps: f64,
    /// One-way latency, milliseconds.
    pub latency_ms: f64,
    /// Where it came from.
    pub source: NodeSource,
}

/// A failure of the inventory's database.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The database refused or failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The database could not be migrated.
    #[error(transparent)]
    Open(#[from] DbError),
    /// A stored node no longer parses.
    #[error("stored node '{0}' is corrupt: {1}")]
    Corrupt(String, String),
}

impl From<InventoryError> for ProblemDetails {
    fn from(e: InventoryError) -> Self {
        ProblemDetails::internal(e.to_string())
    }
}

/// Schema of the inventory, migrated under the NF key `cmp-inventory` (the workflow
/// engine migrates its own tables under `cmp`).
pub const MIGRATIONS: &[Migration] = &[Migration::new(
    1,
    "compute nodes",
    "CREATE TABLE cmp_nodes (
        node_id TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        document TEXT NOT NULL,
        updated_at_ms BIGINT NOT NULL
    );",
)];

/// Nodes (with their live load) and links; cheap reads under a lock, writes go to the
/// database first.
#[derive(Debug)]
pub struct Inventory {
    db: Option<Db>,
    nodes: RwLock<BTreeMap<String, NodeInfo>>,
    config_links: Vec<LinkInfo>,
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

fn kind_of(s: &str) -> Option<DeviceKind> {
    match s {
        "cpu" => Some(DeviceKind::Cpu),
        "gpu" => Some(DeviceKind::Gpu),
        "vpu" => Some(DeviceKind::Vpu),
        _ => None,
    }
}

impl Inventory {
    /// The configuration's nodes and links, no persistence (tests, benchmarks).
    pub fn from_config(config: &TestbedConfig) -> Self {
        let inv = Self {
            db: None,
            nodes: RwLock::new(BTreeMap::new()),
            config_links: config_links(config),
        };
        {
            let mut nodes = inv.nodes.write().expect("inventory lock");
            for n in config_nodes(config) {
                nodes.insert(n.node_id.clone(), n);
            }
        }
        inv
    }

    /// Migrates `db`, loads the stored nodes and merges the configuration's (see the module doc).
    pub async fn open(db: Db, config: &TestbedConfig) -> Result<Self, InventoryError> {
        db.migrate("cmp-inventory", MIGRATIONS).await?;
        let rows = sqlx::query("SELECT node_id, document FROM cmp_nodes ORDER BY node_id")
            .fetch_all(db.pool())
            .await?;
        let mut nodes = BTreeMap::new();
        for row in rows {
            let id: String = row.try_get("node_id")?;
            let doc: String = row.try_get("document")?;
            let node: NodeInfo = serde_json::from_str(&doc)
                .map_err(|e| InventoryError::Corrupt(id.clone(), e.to_string()))?;
            nodes.insert(id, node);
        }
        let inv = Self {
            db: Some(db),
            nodes: RwLock::new(nodes),
            config_links: config_links(config),
        };
        for node in config_nodes(config) {
            let keep_registered = inv
                .nodes
                .read()
                .expect("inventory lock")
                .get(&node.node_id)
                .is_some_and(|n| n.source == NodeSource::Registered);
            if !keep_registered {
                inv.store(node).await?;
            }
        }
        Ok(inv)
    }

    async fn store(&self, node: NodeInfo) -> Result<(), InventoryError> {
        if let Some(db) = &self.db {
            // Live load is not persisted: after a restart it would be stale.
            let mut stored = node.clone();
            for d in &mut stored.devices {
                d.load = None;
            }
            let doc = serde_json::to_string(&stored).expect("node serialises");
            let source = match node.source {
                NodeSource::Config => "config",
                NodeSource::Registered => "registered",
            };
            // Portable upsert (SQLite and PostgreSQL both speak ON CONFLICT).
            sqlx::query(
                "INSERT INTO cmp_nodes (node_id, source, document, updated_at_ms) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (node_id) DO UPDATE SET source = excluded.source,
                 document = excluded.document, updated_at_ms = excluded.updated_at_ms",
            )
            .bind(node.node_id.clone())
            .bind(source)
            .bind(doc)
            .bind(node.updated_at.timestamp_millis())
            .execute(db.pool())
            .await?;
        }
        self.nodes
            .write()
            .expect("inventory lock")
            .insert(node.node_id.clone(), node);
        Ok(())
    }

    /// Every node, by id.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.nodes
            .read()
            .expect("inventory lock")
            .values()
            .cloned()
            .collect()
    }

    /// One node.
    pub fn node(&self, id: &str) -> Option<NodeInfo> {
        self.nodes.read().expect("inventory lock").get(id).cloned()
    }

    /// Every link: configured ones, replaced (per pair) by links registered nodes declared.
    pub fn links(&self) -> Vec<LinkInfo> {
        let nodes = self.nodes.read().expect("inventory lock");
        let mut by_pair: BTreeMap<(String, String), LinkInfo> = BTreeMap::new();
        let key = |a: &str, b: &str| {
            if a <= b {
                (a.to_owned(), b.to_owned())
            } else {
                (b.to_owned(), a.to_owned())
            }
        };
        for l in &self.config_links {
            by_pair.insert(key(&l.a, &l.b), l.clone());
        }
        for n in nodes.values() {
            for l in &n.links {
                by_pair.insert(
                    key(&n.node_id, &l.peer),
                    LinkInfo {
                        a: n.node_id.clone(),
                        b: l.peer.clone(),
                        bandwidth_bps: l.bandwidth_bps,
                        latency_ms: l.latency_ms,
                        source: NodeSource::Registered,
                    },
                );
            }
        }
        // A link is usable only while both its ends exist.
        by_pair
            .into_values()
            .filter(|l| nodes.contains_key(&l.a) && nodes.contains_key(&l.b))
            .collect()
    }

    /// Registers or replaces node `id` (an NF registering its node); `true` when it is new.
    /// The live load of devices that keep their id and kind is kept.
    pub async fn register(
        &self,
        id: &str,
        reg: NodeRegistration,
    ) -> Result<(NodeInfo, bool), ProblemDetails> {
        validate_registration(id, &reg)?;
        let old = self.node(id);
        let devices = reg
            .devices
            .into_iter()
            .map(|d| {
                let load = old.as_ref().and_then(|o| {
                    o.devices
                        .iter()
                        .find(|x| x.device_id == d.device_id && x.kind == d.kind)
                        .and_then(|x| x.load.clone())
                });
                DeviceInfo {
                    device_id: d.device_id,
                    kind: d.kind,
                    units: d.units,
                    memory_mb: d.memory_mb,
                    speed: d.speed,
                    load,
                }
            })
            .collect();
        let node = NodeInfo {
            node_id: id.to_owned(),
            source: NodeSource::Registered,
            devices,
            links: reg.links,
            updated_at: Utc::now(),
        };
        self.store(node.clone()).await?;
        Ok((node, old.is_none()))
    }

    /// Removes node `id` (its links go with it); `false` when there was none. A configured
    /// node comes back at the next start, from the configuration.
    pub async fn remove(&self, id: &str) -> Result<bool, InventoryError> {
        if let Some(db) = &self.db {
            sqlx::query("DELETE FROM cmp_nodes WHERE node_id = $1")
                .bind(id.to_owned())
                .execute(db.pool())
                .await?;
        }
        Ok(self
            .nodes
            .write()
            .expect("inventory lock")
            .remove(id)
            .is_some())
    }

    /// Records a live load report of node `id`'s devices; answers the node with its load.
    pub fn report_load(&self, id: &str, report: LoadReport) -> Result<NodeInfo, ProblemDetails> {
        let mut nodes = self.nodes.write().expect("inventory lock");
        let node = nodes.get_mut(id).ok_or_else(|| node_not_found(id))?;
        if report.devices.is_empty() {
            return Err(ProblemDetails::bad_request(
                "MANDATORY_IE_MISSING",
                "a load report names at least one device",
            )
            .with_invalid_param("devices", "empty"));
        }
        // Check everything before changing anything: a bad entry leaves the load as it was.
        let mut bad = Vec::new();
        for (i, r) in report.devices.iter().enumerate() {
            match node.devices.iter().find(|d| d.device_id == r.device_id) {
                None => bad.push(InvalidParam {
                    param: format!("devices[{i}].deviceId"),
                    reason: Some(format!("node '{id}' has no device '{}'", r.device_id)),
                }),
                Some(d) if r.busy_units > d.units => bad.push(InvalidParam {
                    param: format!("devices[{i}].busyUnits"),
                    reason: Some(format!(
                        "{} exceeds the device's {} units",
                        r.busy_units, d.units
                    )),
                }),
                Some(_) => {}
            }
        }
        if !bad.is_empty() {
            let mut p = ProblemDetails::bad_request(
                "MANDATORY_IE_INCORRECT",
                "the load report names unknown devices or impossible loads",
            );
            p.invalid_params = bad;
            return Err(p);
        }
        let now = Utc::now();
        for r in report.devices {
            if let Some(d) = node.devices.iter_mut().find(|d| d.device_id == r.device_id) {
                // Device utilisation as Prometheus sees it (docs/metrics.md).
                let labels = [
                    ("node", id.to_owned()),
                    ("device", d.device_id.clone()),
                    ("kind", d.kind.to_string()),
                ];
                metrics::gauge!("cmp_device_utilization_ratio", &labels)
                    .set(f64::from(r.busy_units) / f64::from(d.units.max(1)));
                metrics::gauge!("cmp_device_queue_length", &labels).set(f64::from(r.queue_length));
                d.load = Some(DeviceLoad {
                    busy_units: r.busy_units,
                    queue_length: r.queue_length,
                    reported_at: now,
                });
            }
        }
        Ok(node.clone())
    }

    /// The scheduler's view: nodes, devices with their free capacity, links.
    ///
    /// Live load enters here: a device offers `units - busyUnits` units (a fully busy device
    /// is left out), and its speed is divided by `1 + queueLength / units`, since queued
    /// requests run before a new step. Devices keep the inventory's order; the returned
    /// ids map the scheduler's device indices back to `(node id, device id)`.
    pub fn platform(&self) -> (sched::Platform, Vec<(String, String)>) {
        let nodes = self.nodes();
        let links = self.links();
        let mut platform = sched::Platform {
            nodes: Vec::new(),
            devices: Vec::new(),
            links: Vec::new(),
        };
        let mut ids = Vec::new();
        let mut index = BTreeMap::new();
        for n in &nodes {
            let ni = platform.nodes.len();
            index.insert(n.node_id.clone(), ni);
            platform.nodes.push(sched::Node {
                id: n.node_id.clone(),
            });
            for d in &n.devices {
                let (busy, queue) = d
                    .load
                    .as_ref()
                    .map_or((0, 0), |l| (l.busy_units, l.queue_length));
                let free = d.units.saturating_sub(busy);
                if free == 0 {
                    continue;
                }
                let speed = d.speed / (1.0 + f64::from(queue) / f64::from(d.units));
                platform.devices.push(sched::Device {
                    id: format!("{}/{}", n.node_id, d.device_id),
                    node: ni,
                    kind: d.kind,
                    units: free,
                    memory_mb: d.memory_mb,
                    speed,
                });
                ids.push((n.node_id.clone(), d.device_id.clone()));
            }
        }
        for l in links {
            if let (Some(&a), Some(&b)) = (index.get(&l.a), index.get(&l.b)) {
                platform.links.push(sched::Link {
                    a,
                    b,
                    bandwidth_bps: l.bandwidth_bps,
                    latency_s: l.latency_ms / 1000.0,
                });
            }
        }
        (platform, ids)
    }
}

/// 404 `RESOURCE_NOT_FOUND` for an unknown node.
pub fn node_not_found(id: &str) -> ProblemDetails {
    ProblemDetails::not_found("RESOURCE_NOT_FOUND", format!("no node '{id}'"))
}

fn validate_registration(id: &str, reg: &NodeRegistration) -> Result<(), ProblemDetails> {
    let mut bad = Vec::new();
    let mut push = |param: String, reason: String| {
        bad.push(InvalidParam {
            param,
            reason: Some(reason),
        })
    };
    if !valid_id(id) {
        push(
            "nodeId".into(),
            "1 to 64 letters, digits, '-', '_' or '.'".into(),
        );
    }
    if reg.devices.is_empty() {
        push("devices".into(), "a node has at least one device".into());
    }
    let mut seen = std::collections::HashSet::new();
    for (i, d) in reg.devices.iter().enumerate() {
        if !valid_id(&d.device_id) || !seen.insert(d.device_id.as_str()) {
            push(
                format!("devices[{i}].deviceId"),
                format!("'{}' is malformed or duplicated", d.device_id),
            );
        }
        if d.units == 0 {
            push(format!("devices[{i}].units"), "must be at least 1".into());
        }
        if !(d.speed.is_finite() && d.speed > 0.0) {
            push(
                format!("devices[{i}].speed"),
                "must be a positive number".into(),
            );
        }
    }
    for (i, l) in reg.links.iter().enumerate() {
        if !valid_id(&l.peer) || l.peer == id {
            push(
                format!("links[{i}].peer"),
                format!("'{}' is not another node's id", l.peer),
            );
        }
        if !(l.bandwidth_bps.is_finite() && l.bandwidth_bps > 0.0) {
            push(
                format!("links[{i}].bandwidthBps"),
                "must be a positive number".into(),
            );
        }
        if !(l.latency_ms.is_finite() && l.latency_ms >= 0.0) {
            push(
                format!("links[{i}].latencyMs"),
                "must be a non-negative number".into(),
            );
        }
    }
    if bad.is_empty() {
        return Ok(());
    }
    let mut p = ProblemDetails::bad_request(
        "MANDATORY_IE_INCORRECT",
        format!("node registration of '{id}' is invalid"),
    );
    p.invalid_params = bad;
    Err(p)
}

fn config_nodes(config: &TestbedConfig) -> Vec<NodeInfo> {
    // One timestamp for every configured node: they all came from the same file.
    let now = Utc
        .timestamp_millis_opt(Utc::now().timestamp_millis())
        .unwrap();
    config
        .node
        .iter()
        .map(|n| NodeInfo {
            node_id: n.id.clone(),
            source: NodeSource::Config,
            devices: n
                .devices
                .iter()
                .filter_map(|d| {
                    // The configuration validated the kind; an unknown one cannot reach here.
                    kind_of(&d.kind).map(|kind| DeviceInfo {
                        device_id: d.id.clone(),
                        kind,
                        units: d.units,
                        memory_mb: d.memory_mb,
                        speed: d.speed,
                        load: None,
                    })
                })
                .collect(),
            links: Vec::new(),
            updated_at: now,
        })
        .collect()
}

fn config_links(config: &TestbedConfig) -> Vec<LinkInfo> {
    config
        .link
        .iter()
        .map(|l| LinkInfo {
            a: l.a.clone(),
            b: l.b.clone(),
            bandwidth_bps: l.bandwidth_bps,
            latency_ms: l.latency_ms,
            source: NodeSource::Config,
        })
        .collect()
}
