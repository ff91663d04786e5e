//! Random task graphs as in Topcuoglu, Hariri, Wu (2002), "Performance-effective and
//! low-complexity task scheduling for heterogeneous computing", section 5.1, and the
//! figures of merit used there: schedule length ratio (SLR) and speedup.
//!
//! Parameters: `v` tasks; shape `alpha`: about `sqrt(v) / alpha` levels, each level's
//! width drawn uniformly with mean `alpha * sqrt(v)`; each task's out-degree drawn
//! uniformly in `1..=out_degree` (towards later levels, mostly the next one); CCR =
//! mean transfer cost / mean computation cost; heterogeneity `beta`: task i's mean
//! cost `w_i` is uniform in `[0, 2 * mean_cost]` and its cost on processor j uniform
//! in `[w_i (1 - beta/2), w_i (1 + beta/2)]`; transfer costs uniform in
//! `[0, 2 * CCR * mean_cost]`.
//!
//! The platform is the paper's: `devices` processors, fully connected by identical
//! links (here: each processor a node of its own, every pair joined by a link of
//! bandwidth 1 byte/s and no latency, so an edge's bytes are its transfer time
//! between different processors, and 0 on the same one).

use rand::Rng;

use super::{Dag, Device, DeviceKind, Edge, Link, Node, Platform, Task};

/// Parameters of one random instance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomDagParams {
    /// Number of tasks.
    pub v: usize,
    /// Communication to computation ratio.
    pub ccr: f64,
    /// Shape: < 1 long and thin, > 1 short and wide.
    pub alpha: f64,
    /// Maximum out-degree of a task.
    pub out_degree: usize,
    /// Computation-cost heterogeneity across processors, 0..=2 (the paper uses 0.1..1).
    pub beta: f64,
    /// Mean computation cost of a task (seconds).
    pub mean_cost: f64,
    /// Number of processors (devices).
    pub devices: usize,
}

impl Default for RandomDagParams {
    fn default() -> Self {
        RandomDagParams {
            v: 50,
            ccr: 1.0,
            alpha: 1.0,
            out_degree: 3,
            beta: 0.5,
            mean_cost: 20.0,
            devices: 4,
        }
    }
}

/// A DAG and the platform it is to be scheduled on.
#[derive(Debug, Clone)]
pub struct Instance {
    pub dag: Dag,
    pub platform: Platform,
}

/// The paper's platform: `p` processors, each on a node of its own, all pairs linked
/// at 1 byte/s with no latency.
pub fn uniform_platform(p: usize) -> Platform {
    let nodes = (0..p)
        .map(|k| Node {
            id: format!("n{k}"),
        })
        .collect();
    let devices = (0..p)
        .map(|k| Device {
            id: format!("p{k}"),
            node: k,
            kind: DeviceKind::Cpu,
            units: 1,
            memory_mb: u64::MAX,
            speed: 1.0,
        })
        .collect();
    let mut links = Vec::new();
    for a in 0..p {
        for b in a + 1..p {
            links.push(Link {
                a,
                b,
                bandwidth_bps: 1.0,
                latency_s: 0.0,
            });
        }
    }
    Platform {
        nodes,
        devices,
        links,
    }
}

/// A random DAG shaped by `v`, `alpha` and `out_degree`: the levels and edges only
/// (task costs are filled in by the caller). Returns (level of each task, edges).
pub fn random_shape<R: Rng + ?Sized>(
    v: usize,
    alpha: f64,
    out_degree: usize,
    rng: &mut R,
) -> Vec<(usize, usize)> {
    assert!(v > 0 && alpha > 0.0 && out_degree > 0);
    let mean_width = alpha * (v as f64).sqrt();
    // Uniform integer in [1, 2*mean - 1] has the wanted mean (at least 1 wide).
    let max_width = ((2.0 * mean_width - 1.0).round() as usize).max(1);
    let mut levels: Vec<std::ops::Range<usize>> = Vec::new();
    let mut next = 0;
    while next < v {
        let w = rng.random_range(1..=max_width).min(v - next);
        levels.push(next..next + w);
        next += w;
    }
    let mut edges = Vec::new();
    let mut has_pred = vec![false; v];
    let mut targets = Vec::with_capacity(out_degree);
    for l in 0..levels.len().saturating_sub(1) {
        let later = levels[l + 1].start..v;
        for i in levels[l].clone() {
            let k = rng.random_range(1..=out_degree.min(later.len()));
            targets.clear();
            // Mostly into the next level, sometimes further down (as random DAG
            // generators of this family do); at most `later.len()` distinct targets.
            while targets.len() < k {
                let j = if rng.random_bool(0.75) {
                    rng.random_range(levels[l + 1].clone())
                } else {
                    rng.random_range(later.clone())
                };
                if !targets.contains(&j) {
                    targets.push(j);
                }
            }
            for &j in &targets {
                has_pred[j] = true;
                edges.push((i, j));
            }
        }
    }
    // Every task below the first level gets at least one predecessor.
    for l in 1..levels.len() {
        for j in levels[l].clone() {
            if !has_pred[j] {
                let i = rng.random_range(levels[l - 1].clone());
                edges.push((i, j));
            }
        }
    }
    edges
}

/// One random instance of Topcuoglu et al. (2002) on [`uniform_platform`].
pub fn topcuoglu<R: Rng + ?Sized>(prm: &RandomDagParams, rng: &mut R) -> Instance {
    let p = prm.devices.max(1);
    let shape = random_shape(prm.v, prm.alpha, prm.out_degree, rng);
    let tasks = (0..prm.v)
        .map(|i| {
            // Keep costs away from 0 so SLR denominators stay positive.
            let wi = rng
                .random_range(0.0..2.0 * prm.mean_cost)
                .max(1e-3 * prm.mean_cost);
            let lo = wi * (1.0 - prm.beta / 2.0);
            let hi = wi * (1.0 + prm.beta / 2.0);
            Task {
                name: format!("t{i}"),
                cost: (0..p)
                    .map(|_| {
                        Some(if hi > lo {
                            rng.random_range(lo..hi)
                        } else {
                            wi
                        })
                    })
                    .collect(),
                units: 1,
                memory_mb: 0,
            }
        })
        .collect();
    let edges = shape
        .into_iter()
        .map(|(from, to)| Edge {
            from,
            to,
            bytes: rng.random_range(0.0..=2.0 * prm.ccr * prm.mean_cost),
        })
        .collect();
    Instance {
        dag: Dag { tasks, edges },
        platform: uniform_platform(p),
    }
}

/// The denominator of SLR: the longest path when every task takes its minimum cost
/// and transfers are free (the paper's sum of minimum costs over CP_MIN).
pub fn cp_min(dag: &Dag) -> f64 {
    let n = dag.tasks.len();
    let minc: Vec<f64> = dag
        .tasks
        .iter()
        .map(|t| {
            t.cost
                .iter()
                .flatten()
                .copied()
                .fold(f64::INFINITY, f64::min)
        })
        .collect();
    let mut succ: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut indeg = vec![0usize; n];
    for e in &dag.edges {
        succ[e.from].push(e.to);
        indeg[e.to] += 1;
    }
    // Longest path ending at each task, in topological order.
    let mut until = minc.clone();
    let mut stack: Vec<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
    let mut best: f64 = 0.0;
    while let Some(i) = stack.pop() {
        best = best.max(until[i]);
        for &j in &succ[i] {
            until[j] = until[j].max(until[i] + minc[j]);
            indeg[j] -= 1;
            if indeg[j] == 0 {
                stack.push(j);
            }
        }
    }
    best
}

/// Schedule length ratio: makespan / [`cp_min`].
pub fn slr(dag: &Dag, makespan: f64) -> f64 {
    makespan / cp_min(dag)
}

/// Speedup: the sequential time on the processor that runs all tasks fastest,
/// divided by the makespan.
pub fn speedup(dag: &Dag, platform: &Platform, makespan: f64) -> f64 {
    let seq = (0..platform.devices.len())
        .map(|d| {
            dag.tasks
                .iter()
                .map(|t| t.cost[d].unwrap_or(f64::INFINITY))
                .sum::<f64>()
        })
        .fold(f64::INFINITY, f64::min);
    seq / makespan
}
