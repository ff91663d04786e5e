//! The list-scheduling engine shared by HEFT, PEFT and the hybrids: the instance is
//! flattened once into dense arrays (costs n x p, predecessor/successor lists in
//! CSR form, node-pair routes) so that the inner loops touch no map and allocate
//! nothing per task.

use super::{Dag, Placement, Platform, RankComm, Routes, SchedError, Schedule};

const INF: f64 = f64::INFINITY;

/// A validated, flattened scheduling instance.
pub(crate) struct Instance<'a> {
    dag: &'a Dag,
    n: usize,
    p: usize,
    /// `w[i * p + d]`: cost of task i on device d, infinite where it does not fit.
    w: Vec<f64>,
    dev_node: Vec<usize>,
    routes: Routes,
    pred_ptr: Vec<usize>,
    /// (predecessor, bytes)
    pred: Vec<(usize, f64)>,
    succ_ptr: Vec<usize>,
    /// (successor, bytes)
    succ: Vec<(usize, f64)>,
    /// Each task's cheapest cost over the devices it fits.
    min_cost: Vec<f64>,
    /// A topological order and each task's position in it (the tie-breaker).
    topo: Vec<usize>,
    topo_pos: Vec<usize>,
}

/// The result of one list-scheduling pass.
struct Plan {
    dev: Vec<usize>,
    start: Vec<f64>,
    finish: Vec<f64>,
    makespan: f64,
}

/// How the next ready task is chosen and how its device is chosen.
#[derive(Clone, Copy)]
struct Policy<'p> {
    /// Priority per task: the ready task with the highest goes next.
    prio: &'p [f64],
    /// Added to the EFT when choosing the device (PEFT's OCT), `n * p`.
    bias: Option<&'p [f64]>,
    /// Choose the device by the children's EFT (Bittencourt et al. 2010) instead of
    /// the task's own EFT.
    lookahead: bool,
}

impl<'a> Instance<'a> {
    pub fn new(dag: &'a Dag, platform: &Platform) -> Result<Instance<'a>, SchedError> {
        let n = dag.tasks.len();
        let p = platform.devices.len();
        let routes = Routes::new(platform)?;
        let mut dev_node = Vec::with_capacity(p);
        for (d, dev) in platform.devices.iter().enumerate() {
            if dev.node >= platform.nodes.len() {
                return Err(SchedError::Invalid(format!(
                    "devices[{d}] ({}) is on node {} but the platform has {} nodes",
                    dev.id,
                    dev.node,
                    platform.nodes.len()
                )));
            }
            dev_node.push(dev.node);
        }
        // Costs and fit (capacity + a cost estimate).
        let mut w = vec![INF; n * p];
        for (i, t) in dag.tasks.iter().enumerate() {
            if t.cost.len() != p {
                return Err(SchedError::Invalid(format!(
                    "tasks[{i}] ({}) has {} costs but the platform has {p} devices",
                    t.name,
                    t.cost.len()
                )));
            }
            let mut any = false;
            for (d, c) in t.cost.iter().enumerate() {
                if let Some(c) = *c {
                    if !c.is_finite() || c < 0.0 {
                        return Err(SchedError::Invalid(format!(
                            "tasks[{i}].cost[{d}] ({}) must be finite and >= 0, got {c}",
                            t.name
                        )));
                    }
                    let dev = &platform.devices[d];
                    if t.units <= dev.units && t.memory_mb <= dev.memory_mb {
                        w[i * p + d] = c;
                        any = true;
                    }
                }
            }
            if !any {
                return Err(SchedError::NoFeasibleDevice {
                    task: t.name.clone(),
                    reason: no_fit_reason(t, platform),
                });
            }
        }
        // Edges in CSR form.
        let mut indeg = vec![0usize; n];
        let mut outdeg = vec![0usize; n];
        for (k, e) in dag.edges.iter().enumerate() {
            if e.from >= n || e.to >= n {
                return Err(SchedError::Invalid(format!(
                    "edges[{k}] goes from {} to {} but the DAG has {n} tasks",
                    e.from, e.to
                )));
            }
            if !e.bytes.is_finite() || e.bytes < 0.0 {
                return Err(SchedError::Invalid(format!(
                    "edges[{k}].bytes must be finite and >= 0, got {}",
                    e.bytes
                )));
            }
            if e.from == e.to {
                return Err(SchedError::Cycle {
                    task: dag.tasks[e.from].name.clone(),
                });
            }
            indeg[e.to] += 1;
            outdeg[e.from] += 1;
        }
        let csr = |deg: &[usize]| {
            let mut ptr = Vec::with_capacity(n + 1);
            ptr.push(0);
            for d in deg {
                ptr.push(ptr.last().unwrap() + d);
            }
            ptr
        };
        let pred_ptr = csr(&indeg);
        let succ_ptr = csr(&outdeg);
        let mut pred = vec![(0usize, 0.0f64); dag.edges.len()];
        let mut succ = vec![(0usize, 0.0f64); dag.edges.len()];
        let mut pfill = pred_ptr[..n].to_vec();
        let mut sfill = succ_ptr[..n].to_vec();
        for e in &dag.edges {
            pred[pfill[e.to]] = (e.from, e.bytes);
            pfill[e.to] += 1;
            succ[sfill[e.from]] = (e.to, e.bytes);
            sfill[e.from] += 1;
        }
        // Kahn's algorithm, lowest index first among the ready, so that ties in the
        // ranks fall back to the order the tasks were given in.
        let mut topo = Vec::with_capacity(n);
        let mut left = indeg.clone();
        let mut heap: std::collections::BinaryHeap<std::cmp::Reverse<usize>> = (0..n)
            .filter(|&i| left[i] == 0)
            .map(std::cmp::Reverse)
            .collect();
        while let Some(std::cmp::Reverse(i)) = heap.pop() {
            topo.push(i);
            for &(j, _) in &succ[succ_ptr[i]..succ_ptr[i + 1]] {
                left[j] -= 1;
                if left[j] == 0 {
                    heap.push(std::cmp::Reverse(j));
                }
            }
        }
        if topo.len() < n {
            // Walk back along unvisited predecessors until a task repeats: it lies on a cycle.
            let mut seen = vec![false; n];
            let mut i = (0..n).find(|&i| left[i] > 0).unwrap();
            while !seen[i] {
                seen[i] = true;
                i = pred[pred_ptr[i]..pred_ptr[i + 1]]
                    .iter()
                    .map(|&(j, _)| j)
                    .find(|&j| left[j] > 0)
                    .unwrap();
            }
            return Err(SchedError::Cycle {
                task: dag.tasks[i].name.clone(),
            });
        }
        let mut topo_pos = vec![0; n];
        for (k, &i) in topo.iter().enumerate() {
            topo_pos[i] = k;
        }
        let min_cost = (0..n)
            .map(|i| w[i * p..(i + 1) * p].iter().copied().fold(INF, f64::min))
            .collect();
        Ok(Instance {
            min_cost,
            dag,
            n,
            p,
            w,
            dev_node,
            routes,
            pred_ptr,
            pred,
            succ_ptr,
            succ,
            topo,
            topo_pos,
        })
    }

    #[inline]
    fn comm(&self, from_dev: usize, to_dev: usize, bytes: f64) -> f64 {
        self.routes
            .time(self.dev_node[from_dev], self.dev_node[to_dev], bytes)
    }

    /// Mean transfer time as `latency + bytes * inv_bw` means over device pairs.
    fn mean_comm_coeffs(&self, comm: RankComm) -> (f64, f64) {
        let p = self.p;
        let (mut lat, mut inv, mut pairs) = (0.0, 0.0, 0usize);
        for a in 0..p {
            for b in 0..p {
                if a == b {
                    continue;
                }
                let (na, nb) = (self.dev_node[a], self.dev_node[b]);
                if na == nb {
                    pairs += 1; // co-located devices: a transfer costs 0
                    continue;
                }
                let k = na * self.routes.nodes + nb;
                if self.routes.latency[k].is_finite() {
                    lat += self.routes.latency[k];
                    inv += 1.0 / self.routes.bandwidth[k];
                    pairs += 1;
                }
            }
        }
        if pairs == 0 {
            return (0.0, 0.0);
        }
        let denom = match comm {
            RankComm::DistinctPairs => pairs as f64,
            // Each unordered pair was counted twice; add p self pairs costing 0.
            RankComm::AllUnorderedPairs => pairs as f64 + 2.0 * p as f64,
        };
        (lat / denom, inv / denom)
    }

    /// Mean cost of each task over the devices it fits.
    fn mean_costs(&self) -> Vec<f64> {
        (0..self.n)
            .map(|i| {
                let row = &self.w[i * self.p..(i + 1) * self.p];
                let (s, k) = row
                    .iter()
                    .filter(|c| c.is_finite())
                    .fold((0.0, 0usize), |(s, k), c| (s + c, k + 1));
                s / k as f64
            })
            .collect()
    }

    /// HEFT's upward rank.
    pub fn upward_ranks(&self, comm: RankComm) -> Vec<f64> {
        let (lat, inv) = self.mean_comm_coeffs(comm);
        let wbar = self.mean_costs();
        let mut rank = vec![0.0; self.n];
        for &i in self.topo.iter().rev() {
            let mut m: f64 = 0.0;
            for &(j, bytes) in &self.succ[self.succ_ptr[i]..self.succ_ptr[i + 1]] {
                m = m.max(lat + bytes * inv + rank[j]);
            }
            rank[i] = wbar[i] + m;
        }
        rank
    }

    /// PEFT's optimistic cost table, `n * p`: the shortest time from the end of task
    /// i on device d to the end of the DAG if every later task got its best device
    /// and no device were busy.
    fn oct(&self) -> Vec<f64> {
        let (n, p) = (self.n, self.p);
        let mut oct = vec![0.0; n * p];
        for &i in self.topo.iter().rev() {
            for d in 0..p {
                let mut worst: f64 = 0.0;
                for &(j, bytes) in &self.succ[self.succ_ptr[i]..self.succ_ptr[i + 1]] {
                    let mut best = INF;
                    for e in 0..p {
                        let wj = self.w[j * p + e];
                        if wj.is_finite() {
                            let v = oct[j * p + e] + wj + self.comm(d, e, bytes);
                            best = best.min(v);
                        }
                    }
                    worst = worst.max(best);
                }
                oct[i * p + d] = worst;
            }
        }
        oct
    }

    /// PEFT's rank: the mean OCT over the devices a task fits (finite entries only).
    fn oct_ranks(&self, oct: &[f64]) -> Vec<f64> {
        (0..self.n)
            .map(|i| {
                let (mut s, mut k) = (0.0, 0usize);
                for d in 0..self.p {
                    let v = oct[i * self.p + d];
                    if self.w[i * self.p + d].is_finite() && v.is_finite() {
                        s += v;
                        k += 1;
                    }
                }
                if k == 0 {
                    0.0
                } else {
                    s / k as f64
                }
            })
            .collect()
    }

    /// When the data of task i's placed predecessors is all on device d (unplaced
    /// ones are ignored); infinite if one of them cannot reach d.
    #[inline]
    fn data_ready(&self, i: usize, d: usize, dev: &[usize], finish: &[f64]) -> f64 {
        let mut avail: f64 = 0.0;
        for &(j, bytes) in &self.pred[self.pred_ptr[i]..self.pred_ptr[i + 1]] {
            if dev[j] != usize::MAX {
                avail = avail.max(finish[j] + self.comm(dev[j], d, bytes));
            }
        }
        avail
    }

    /// The look-ahead of Bittencourt, Sakellariou, Madeira (2010): with task i
    /// tentatively on device d over [s, eft], the latest of its children's earliest
    /// finish times (each child on its best device, given the tasks placed so far);
    /// `eft` itself for an exit task. `ready[c * p + e]` holds when child c's other
    /// placed predecessors' data is on device e (it does not depend on d).
    #[allow(clippy::too_many_arguments)]
    fn children_eft(
        &self,
        i: usize,
        d: usize,
        s: f64,
        eft: f64,
        ready: &[f64],
        tl: &mut [Vec<(f64, f64)>],
    ) -> f64 {
        let p = self.p;
        let children = &self.succ[self.succ_ptr[i]..self.succ_ptr[i + 1]];
        if children.is_empty() {
            return eft;
        }
        let at = tl[d].partition_point(|&iv| iv <= (s, eft));
        tl[d].insert(at, (s, eft));
        let mut worst: f64 = 0.0;
        for (ci, &(j, bytes)) in children.iter().enumerate() {
            let mut best = INF;
            for e in 0..p {
                let c = self.w[j * p + e];
                if c.is_finite() {
                    let avail = ready[ci * p + e].max(eft + self.comm(d, e, bytes));
                    if avail.is_finite() {
                        best = best.min(gap_start(&tl[e], avail, c) + c);
                    }
                }
            }
            worst = worst.max(best);
        }
        tl[d].remove(at);
        worst
    }

    /// One insertion-based list-scheduling pass.
    fn run(&self, pol: Policy<'_>) -> Result<Plan, SchedError> {
        let (n, p) = (self.n, self.p);
        let mut dev = vec![usize::MAX; n];
        let mut start = vec![0.0; n];
        let mut finish = vec![0.0; n];
        // Busy intervals per device, sorted by start (and so by finish).
        let mut tl: Vec<Vec<(f64, f64)>> = (0..p).map(|_| Vec::with_capacity(n)).collect();
        let mut left: Vec<usize> = (0..n)
            .map(|i| self.pred_ptr[i + 1] - self.pred_ptr[i])
            .collect();
        let mut ready: Vec<usize> = (0..n).filter(|&i| left[i] == 0).collect();
        // Look-ahead scratch: children x devices.
        let max_out = (0..n)
            .map(|i| self.succ_ptr[i + 1] - self.succ_ptr[i])
            .max()
            .unwrap_or(0);
        let mut child_ready = if pol.lookahead {
            vec![0.0; max_out * p]
        } else {
            Vec::new()
        };
        let mut order: Vec<(f64, usize, f64)> = Vec::with_capacity(p);
        let mut makespan: f64 = 0.0;
        while !ready.is_empty() {
            // Highest priority, then earliest in topological order.
            let mut bi = 0;
            for k in 1..ready.len() {
                let (a, b) = (ready[k], ready[bi]);
                if pol.prio[a] > pol.prio[b]
                    || (pol.prio[a] == pol.prio[b] && self.topo_pos[a] < self.topo_pos[b])
                {
                    bi = k;
                }
            }
            let i = ready.swap_remove(bi);
            if pol.lookahead {
                let children = &self.succ[self.succ_ptr[i]..self.succ_ptr[i + 1]];
                for (ci, &(j, _)) in children.iter().enumerate() {
                    for e in 0..p {
                        child_ready[ci * p + e] = self.data_ready(j, e, &dev, &finish);
                    }
                }
            }
            let (mut best_key, mut best_eft, mut best_d, mut best_s) = (INF, INF, usize::MAX, 0.0);
            if pol.lookahead {
                // Every child finishes at least its cheapest cost after this task
                // does, so in ascending EFT order the search stops as soon as that
                // bound exceeds the best key found (same result, less work).
                let mut child_min: f64 = 0.0;
                for &(j, _) in &self.succ[self.succ_ptr[i]..self.succ_ptr[i + 1]] {
                    child_min = child_min.max(self.min_cost[j]);
                }
                order.clear();
                for (d, slots) in tl.iter().enumerate() {
                    let c = self.w[i * p + d];
                    if c.is_finite() {
                        let avail = self.data_ready(i, d, &dev, &finish);
                        if avail.is_finite() {
                            let s = gap_start(slots, avail, c);
                            order.push((s + c, d, s));
                        }
                    }
                }
                order.sort_unstable_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
                for &(eft, d, s) in &order {
                    if eft + child_min > best_key {
                        break;
                    }
                    let key = self.children_eft(i, d, s, eft, &child_ready, &mut tl)
                        + pol.bias.map_or(0.0, |b| b[i * p + d]);
                    if (key, eft, d) < (best_key, best_eft, best_d) {
                        (best_key, best_eft, best_d, best_s) = (key, eft, d, s);
                    }
                }
            } else {
                for d in 0..p {
                    let c = self.w[i * p + d];
                    if !c.is_finite() {
                        continue;
                    }
                    let avail = self.data_ready(i, d, &dev, &finish);
                    if !avail.is_finite() {
                        continue; // a predecessor's node cannot reach this device
                    }
                    let s = gap_start(&tl[d], avail, c);
                    let eft = s + c;
                    let key = eft + pol.bias.map_or(0.0, |b| b[i * p + d]);
                    if key < best_key || (key == best_key && eft < best_eft) {
                        (best_key, best_eft, best_d, best_s) = (key, eft, d, s);
                    }
                }
            }
            if best_d == usize::MAX {
                return Err(SchedError::NoFeasibleDevice {
                    task: self.dag.tasks[i].name.clone(),
                    reason: "no device it fits is reachable from the nodes its predecessors \
                             were placed on (no link or route)"
                        .into(),
                });
            }
            let f = best_s + self.w[i * p + best_d];
            dev[i] = best_d;
            start[i] = best_s;
            finish[i] = f;
            makespan = makespan.max(f);
            let slots = &mut tl[best_d];
            let at = slots.partition_point(|&(s0, f0)| (s0, f0) <= (best_s, f));
            slots.insert(at, (best_s, f));
            for &(j, _) in &self.succ[self.succ_ptr[i]..self.succ_ptr[i + 1]] {
                left[j] -= 1;
                if left[j] == 0 {
                    ready.push(j);
                }
            }
        }
        Ok(Plan {
            dev,
            start,
            finish,
            makespan,
        })
    }

    fn to_schedule(&self, plan: Plan, algorithm: &str) -> Schedule {
        let placements = (0..self.n)
            .map(|i| Placement {
                task: i,
                device: plan.dev[i],
                node: self.dev_node[plan.dev[i]],
                start: plan.start[i],
                finish: plan.finish[i],
            })
            .collect();
        Schedule {
            placements,
            makespan: plan.makespan,
            algorithm: algorithm.to_string(),
        }
    }

    pub fn heft(&self, comm: RankComm) -> Result<Schedule, SchedError> {
        let rank = self.upward_ranks(comm);
        let plan = self.run(Policy {
            prio: &rank,
            bias: None,
            lookahead: false,
        })?;
        Ok(self.to_schedule(plan, "heft"))
    }

    pub fn peft(&self) -> Result<Schedule, SchedError> {
        let oct = self.oct();
        let rank = self.oct_ranks(&oct);
        let plan = self.run(Policy {
            prio: &rank,
            bias: Some(&oct),
            lookahead: false,
        })?;
        Ok(self.to_schedule(plan, "peft"))
    }

    pub fn lookahead(&self) -> Result<Schedule, SchedError> {
        let rank = self.upward_ranks(RankComm::DistinctPairs);
        let plan = self.run(Policy {
            prio: &rank,
            bias: None,
            lookahead: true,
        })?;
        Ok(self.to_schedule(plan, "lookahead"))
    }

    pub fn heft_oct(&self) -> Result<Schedule, SchedError> {
        let oct = self.oct();
        let rank = self.upward_ranks(RankComm::DistinctPairs);
        let plan = self.run(Policy {
            prio: &rank,
            bias: Some(&oct),
            lookahead: false,
        })?;
        Ok(self.to_schedule(plan, "heft-oct"))
    }

    /// HEFT first; a candidate replaces the incumbent only when strictly shorter.
    pub fn best(&self) -> Result<Schedule, SchedError> {
        let urank = self.upward_ranks(RankComm::DistinctPairs);
        let oct = self.oct();
        let orank = self.oct_ranks(&oct);
        let srank = self.upward_ranks(RankComm::AllUnorderedPairs);
        let pol = |prio, bias, lookahead| Policy {
            prio,
            bias,
            lookahead,
        };
        // HEFT first: on equal makespans it is kept.
        let candidates = [
            ("best:heft", pol(&urank[..], None, false)),
            ("best:peft", pol(&orank[..], Some(&oct[..]), false)),
            ("best:heft-oct", pol(&urank[..], Some(&oct[..]), false)),
            ("best:oct-rank-eft", pol(&orank[..], None, false)),
            ("best:lookahead", pol(&urank[..], None, true)),
            ("best:heft-self-pairs", pol(&srank[..], None, false)),
        ];
        let mut best: Option<(&str, Plan)> = None;
        for (name, pol) in candidates {
            let plan = self.run(pol)?;
            if best
                .as_ref()
                .is_none_or(|(_, b)| plan.makespan < b.makespan)
            {
                best = Some((name, plan));
            }
        }
        let (name, plan) = best.expect("candidates");
        Ok(self.to_schedule(plan, name))
    }
}

/// Earliest start at or after `avail` of an idle gap of length `c` in `slots`
/// (busy intervals sorted by start, hence by finish): insertion-based, as in HEFT.
#[inline]
fn gap_start(slots: &[(f64, f64)], avail: f64, c: f64) -> f64 {
    let mut s = avail;
    let from = slots.partition_point(|&(_, f)| f <= avail);
    for &(s0, f0) in &slots[from..] {
        if s + c <= s0 {
            break;
        }
        s = s.max(f0);
    }
    s
}

/// Why a task fits no device, naming the devices and what each lacks.
fn no_fit_reason(t: &super::Task, platform: &Platform) -> String {
    if platform.devices.is_empty() {
        return "the platform has no devices".into();
    }
    if t.cost.iter().all(Option::is_none) {
        let kinds: std::collections::BTreeSet<String> = platform
            .devices
            .iter()
            .map(|d| d.kind.to_string())
            .collect();
        return format!(
            "it has no cost estimate for any device present (device kinds: {})",
            kinds.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    let mut why = Vec::new();
    for (d, dev) in platform.devices.iter().enumerate() {
        if t.cost[d].is_none() {
            continue;
        }
        let mut lacks = Vec::new();
        if t.units > dev.units {
            lacks.push(format!("{} units < {} needed", dev.units, t.units));
        }
        if t.memory_mb > dev.memory_mb {
            lacks.push(format!("{} MB < {} MB needed", dev.memory_mb, t.memory_mb));
        }
        why.push(format!("{} ({}): {}", dev.id, dev.kind, lacks.join(", ")));
    }
    format!(
        "every device it has a cost for is too small: {}",
        why.join("; ")
    )
}
