//! The HEFT-class list scheduler: maps the tasks of a DAG onto (node, device) pairs.
//!
//! The model: a [`Platform`] has nodes (edge sites, the cloud) joined by symmetric
//! [`Link`]s, and devices on those nodes. A device is one processor timeline: tasks
//! placed on it run one after another, and a later task may be inserted into an idle
//! gap (insertion-based, as in HEFT). A [`Task`] carries its execution time on every
//! device (`None` where it cannot run there, e.g. no estimate for that device kind)
//! and its demand (units, memory); it fits a device only when the cost is given and
//! the demand is within the device's capacity. An [`Edge`] carries the bytes passed
//! from one task to the next; moving them between devices on different nodes takes
//! [`Platform::comm_time`], on the same node nothing.
//!
//! Algorithms ([`Algorithm`]):
//! - [`Algorithm::Heft`]: plain HEFT (Topcuoglu, Hariri, Wu 2002): upward rank with
//!   the mean execution time over the devices a task fits and the mean transfer time
//!   over pairs of distinct devices, then each task in rank order on the device with
//!   the earliest finish time (insertion-based).
//! - [`Algorithm::Peft`]: PEFT (Arabnejad, Barbosa 2014): the optimistic cost table
//!   OCT(t, d) ranks tasks and biases the device choice towards devices from which
//!   the rest of the DAG can finish early (minimum EFT + OCT). Our OCT uses the real
//!   transfer time between the two devices' nodes rather than the mean.
//! - [`Algorithm::HeftOct`]: HEFT's rank order with PEFT's device choice (EFT + OCT).
//! - [`Algorithm::Lookahead`]: HEFT's rank order; each device is tried tentatively
//!   and the one where the task's children can finish earliest wins (the look-ahead
//!   of Bittencourt, Sakellariou, Madeira 2010), pruned by a lower bound so only
//!   devices that can still win are tried.
//! - [`Algorithm::Best`] (default): runs six list schedulers on the instance (HEFT,
//!   PEFT, HEFT-order + OCT choice, OCT-order + EFT choice, the look-ahead, and HEFT
//!   with saga's self-pair rank averaging) and keeps the shortest schedule, HEFT on a
//!   tie. It is therefore never worse than HEFT on any instance. On the Topcuoglu
//!   random DAGs (`netgpt bench sched`) its mean SLR is about 10 % below HEFT's at
//!   about 10x HEFT's plan time (about 0.3 ms for 100 tasks x 8 devices).
//!
//! Refusals are errors, never silent placements: a task that fits no device is
//! [`SchedError::NoFeasibleDevice`] with the reason, a plan longer than the deadline
//! is [`SchedError::DeadlineMissed`], a cyclic DAG is [`SchedError::Cycle`].
//!
//! [`random_dag`] generates the random DAGs of Topcuoglu et al. (2002) and computes
//! SLR and speedup; [`bench`] compares Best against HEFT on them.

pub mod bench;
mod list;
pub mod random_dag;
mod validate;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use validate::validate_schedule;

/// The kind of a device; a workflow step gives its cost per kind.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    Cpu,
    Gpu,
    Vpu,
}

impl std::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Gpu => "gpu",
            DeviceKind::Vpu => "vpu",
        })
    }
}

/// A site that hosts devices: an edge site or "cloud".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub id: String,
}

/// One processor timeline on a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    pub id: String,
    /// Index into [`Platform::nodes`].
    pub node: usize,
    pub kind: DeviceKind,
    /// Capacity in units (e.g. cores, GPU slices); a task needs `units <=` this.
    pub units: u32,
    /// Memory in MB; a task needs `memory_mb <=` this.
    pub memory_mb: u64,
    /// Relative speed, for callers that derive [`Task::cost`] from a reference time;
    /// the scheduler itself reads only the costs.
    pub speed: f64,
}

/// A symmetric link between two nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    pub a: usize,
    pub b: usize,
    /// Bytes per second (may be `f64::INFINITY`).
    pub bandwidth_bps: f64,
    pub latency_s: f64,
}

/// Nodes, their devices and the links between nodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Platform {
    pub nodes: Vec<Node>,
    pub devices: Vec<Device>,
    pub links: Vec<Link>,
}

impl Platform {
    /// Seconds to move `bytes` from `from_node` to `to_node`: 0 on the same node,
    /// `latency + bytes / bandwidth` over a direct link (the best one if several),
    /// store-and-forward over the lowest-latency route when there is no direct link,
    /// `None` when the nodes are not connected (or an index is out of range).
    pub fn comm_time(&self, from_node: usize, to_node: usize, bytes: f64) -> Option<f64> {
        let routes = Routes::new(self).ok()?;
        if from_node >= routes.nodes || to_node >= routes.nodes {
            return None;
        }
        let t = routes.time(from_node, to_node, bytes);
        t.is_finite().then_some(t)
    }
}

/// Routes between all pairs of nodes: latency and effective bandwidth per pair.
/// Shared by the scheduler, [`Platform::comm_time`] and [`validate_schedule`] so that
/// all three agree to the last bit.
#[derive(Debug, Clone)]
pub(crate) struct Routes {
    pub nodes: usize,
    /// `latency[a * nodes + b]`; infinite when unreachable, 0 on the diagonal.
    pub latency: Vec<f64>,
    /// Effective bandwidth (1 / sum of 1/bandwidth over the hops).
    pub bandwidth: Vec<f64>,
}

impl Routes {
    pub fn new(p: &Platform) -> Result<Routes, SchedError> {
        let n = p.nodes.len();
        let inf = f64::INFINITY;
        // Direct links first: the lowest latency, then the highest bandwidth.
        let mut lat = vec![inf; n * n];
        let mut bw = vec![0.0f64; n * n];
        for (i, l) in p.links.iter().enumerate() {
            if l.a >= n || l.b >= n {
                return Err(SchedError::Invalid(format!(
                    "links[{i}] joins node {} and {} but the platform has {n} nodes",
                    l.a, l.b
                )));
            }
            if l.bandwidth_bps.is_nan() || l.bandwidth_bps <= 0.0 {
                return Err(SchedError::Invalid(format!(
                    "links[{i}].bandwidthBps must be > 0, got {}",
                    l.bandwidth_bps
                )));
            }
            if !l.latency_s.is_finite() || l.latency_s < 0.0 {
                return Err(SchedError::Invalid(format!(
                    "links[{i}].latencyS must be finite and >= 0, got {}",
                    l.latency_s
                )));
            }
            if l.a == l.b {
                continue; // same node costs nothing anyway
            }
            for (a, b) in [(l.a, l.b), (l.b, l.a)] {
                let k = a * n + b;
                if l.latency_s < lat[k] || (l.latency_s == lat[k] && l.bandwidth_bps > bw[k]) {
                    lat[k] = l.latency_s;
                    bw[k] = l.bandwidth_bps;
                }
            }
        }
        let direct: Vec<bool> = lat.iter().map(|l| l.is_finite()).collect();
        // Pairs without a direct link: lowest-latency route (then the highest
        // effective bandwidth), by Floyd-Warshall on (latency, 1/bandwidth) sums.
        let mut inv: Vec<f64> = bw.iter().map(|b| 1.0 / b).collect();
        let mut rl = lat.clone();
        for k in 0..n {
            for a in 0..n {
                let ak = a * n + k;
                if !rl[ak].is_finite() || a == k {
                    continue;
                }
                for b in 0..n {
                    if b == a || b == k {
                        continue;
                    }
                    let kb = k * n + b;
                    let (l, g) = (rl[ak] + rl[kb], inv[ak] + inv[kb]);
                    let ab = a * n + b;
                    if l < rl[ab] || (l == rl[ab] && g < inv[ab]) {
                        rl[ab] = l;
                        inv[ab] = g;
                    }
                }
            }
        }
        for k in 0..n * n {
            if !direct[k] && rl[k].is_finite() {
                lat[k] = rl[k];
                bw[k] = 1.0 / inv[k];
            }
        }
        for a in 0..n {
            lat[a * n + a] = 0.0;
            bw[a * n + a] = inf;
        }
        Ok(Routes {
            nodes: n,
            latency: lat,
            bandwidth: bw,
        })
    }

    /// Transfer time; infinite when unreachable.
    #[inline]
    pub fn time(&self, a: usize, b: usize, bytes: f64) -> f64 {
        if a == b {
            return 0.0;
        }
        let k = a * self.nodes + b;
        self.latency[k] + bytes / self.bandwidth[k]
    }
}

/// A unit of work in the DAG.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub name: String,
    /// `cost[d]`: execution time in seconds on `platform.devices[d]`; `None` = cannot run there.
    pub cost: Vec<Option<f64>>,
    pub units: u32,
    pub memory_mb: u64,
}

/// Precedence from `from` to `to`, passing `bytes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Edge {
    pub from: usize,
    pub to: usize,
    pub bytes: f64,
}

/// The task graph to schedule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dag {
    pub tasks: Vec<Task>,
    pub edges: Vec<Edge>,
}

/// Which list scheduler to run; see the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Algorithm {
    /// Plain HEFT (Topcuoglu et al. 2002).
    Heft,
    /// PEFT (Arabnejad, Barbosa 2014), optimistic cost table.
    Peft,
    /// HEFT's rank order, device chosen by EFT + OCT (PEFT's look-ahead).
    HeftOct,
    /// HEFT's rank order, device chosen by the earliest finish of the task's
    /// children (the look-ahead of Bittencourt, Sakellariou, Madeira 2010).
    Lookahead,
    /// The shortest of HEFT, PEFT and two hybrids; never worse than HEFT.
    #[default]
    Best,
}

impl Algorithm {
    /// The name reported in [`Schedule::algorithm`].
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Heft => "heft",
            Algorithm::Peft => "peft",
            Algorithm::HeftOct => "heft-oct",
            Algorithm::Lookahead => "lookahead",
            Algorithm::Best => "best",
        }
    }
}

/// How the upward rank averages a transfer time over device pairs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum RankComm {
    /// Mean over ordered pairs of distinct devices (Topcuoglu et al. 2002: the
    /// transfer cost as given, not discounted by the chance of co-location).
    #[default]
    DistinctPairs,
    /// Mean over unordered device pairs including each device with itself (as the
    /// `anrg-saga` package does, self pairs costing 0). Used to cross-check with it.
    AllUnorderedPairs,
}

/// Scheduling options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Options {
    pub algorithm: Algorithm,
    /// Refuse ([`SchedError::DeadlineMissed`]) a plan whose makespan exceeds this.
    pub deadline_s: Option<f64>,
}

/// Where and when one task runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    pub task: usize,
    pub device: usize,
    pub node: usize,
    pub start: f64,
    pub finish: f64,
}

/// A plan: one placement per task, indexed by task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    pub placements: Vec<Placement>,
    pub makespan: f64,
    /// The algorithm that produced it (for Best: the winning candidate, e.g. "best:peft").
    pub algorithm: String,
}

/// Why no plan was produced.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchedError {
    #[error("the DAG has a cycle through task {task:?}")]
    Cycle { task: String },
    #[error("task {task:?} fits no device: {reason}")]
    NoFeasibleDevice { task: String, reason: String },
    #[error("makespan {makespan:.6} s exceeds the deadline {deadline:.6} s")]
    DeadlineMissed { makespan: f64, deadline: f64 },
    #[error("invalid scheduling input: {0}")]
    Invalid(String),
}

/// Schedules `dag` on `platform` with the chosen algorithm, then applies the deadline.
pub fn schedule(dag: &Dag, platform: &Platform, opts: &Options) -> Result<Schedule, SchedError> {
    if let Some(d) = opts.deadline_s {
        if d.is_nan() || d < 0.0 {
            return Err(SchedError::Invalid(format!(
                "deadlineS must be >= 0, got {d}"
            )));
        }
    }
    let inst = list::Instance::new(dag, platform)?;
    let s = match opts.algorithm {
        Algorithm::Heft => inst.heft(RankComm::DistinctPairs)?,
        Algorithm::Peft => inst.peft()?,
        Algorithm::HeftOct => inst.heft_oct()?,
        Algorithm::Lookahead => inst.lookahead()?,
        Algorithm::Best => inst.best()?,
    };
    if let Some(deadline) = opts.deadline_s {
        if s.makespan > deadline {
            return Err(SchedError::DeadlineMissed {
                makespan: s.makespan,
                deadline,
            });
        }
    }
    Ok(s)
}

/// Plain HEFT (Topcuoglu et al. 2002).
pub fn heft(dag: &Dag, platform: &Platform) -> Result<Schedule, SchedError> {
    heft_with(dag, platform, RankComm::DistinctPairs)
}

/// Plain HEFT with a chosen averaging of transfer times in the rank.
pub fn heft_with(dag: &Dag, platform: &Platform, comm: RankComm) -> Result<Schedule, SchedError> {
    list::Instance::new(dag, platform)?.heft(comm)
}

/// HEFT's upward ranks (`rank_u`), indexed by task.
pub fn upward_ranks(
    dag: &Dag,
    platform: &Platform,
    comm: RankComm,
) -> Result<Vec<f64>, SchedError> {
    Ok(list::Instance::new(dag, platform)?.upward_ranks(comm))
}

#[cfg(test)]
mod tests;
