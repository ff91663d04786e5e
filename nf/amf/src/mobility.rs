//! The UE mobility simulator (NetGPT testbed extension): a random walk that hands a set of
//! UEs over between cells, one handover every interval, reproducibly from a seed. Each
//! step is an ordinary [`crate::procedures::move_ue`], so it is persisted, counted and
//! reported to LOCATION_REPORT subscribers like any handover.

use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use netgpt_sbi::models::namf::{RandomWalkRequest, RandomWalkStatus};
use netgpt_sbi::ProblemDetails;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

use crate::context::{AmfContext, Cell};
use crate::procedures::{check_supi, move_ue};

/// Shortest accepted interval between two handovers.
pub const MIN_INTERVAL_MS: u64 = 10;

/// Probability that a step stays within the serving edge site (neighbouring cells).
const SAME_SITE_PROBABILITY: f64 = 0.8;

/// A running (or finished) walk.
#[derive(Debug)]
pub struct RandomWalk {
    status: Arc<StdMutex<RandomWalkStatus>>,
    cancel: CancellationToken,
}

impl RandomWalk {
    fn snapshot(&self) -> RandomWalkStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// The walk's pseudo-random choices: which UE moves, and to which cell.
#[derive(Debug)]
pub struct Walker {
    rng: StdRng,
    supis: Vec<String>,
}

impl Walker {
    /// A walker over `supis` seeded with `seed`.
    pub fn new(supis: Vec<String>, seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            supis,
        }
    }

    /// Picks the next (UE, target cell): usually a neighbour in the same edge site, sometimes
    /// any other cell. `None` when the chosen UE is no longer registered.
    pub async fn next<'a>(&mut self, ctx: &'a AmfContext) -> Option<(String, &'a Cell)> {
        if self.supis.is_empty() {
            return None;
        }
        let supi = self.supis[self.rng.random_range(0..self.supis.len())].clone();
        let current = ctx
            .ues
            .read()
            .await
            .get(&supi)
            .map(|u| u.record.nr_cell_id.clone())?;
        let cells = ctx.topology.cells();
        let site = cells
            .iter()
            .find(|c| c.nr_cell_id == current)
            .map(|c| c.info.site.clone());
        let others: Vec<&Cell> = cells.iter().filter(|c| c.nr_cell_id != current).collect();
        let neighbours: Vec<&Cell> = others
            .iter()
            .copied()
            .filter(|c| Some(&c.info.site) == site.as_ref())
            .collect();
        let pool = if !neighbours.is_empty() && self.rng.random_bool(SAME_SITE_PROBABILITY) {
            neighbours
        } else {
            others
        };
        if pool.is_empty() {
            return None;
        }
        let target = pool[self.rng.random_range(0..pool.len())];
        Some((supi, target))
    }
}

/// Starts a random walk (replacing a running one) and returns its status.
/// 400 when the interval is too short, an integer exceeds int64, a SUPI is malformed or
/// unknown, `count` exceeds the registered UEs, or the topology has fewer than two cells.
pub async fn start_random_walk(
    ctx: &Arc<AmfContext>,
    req: RandomWalkRequest,
) -> Result<RandomWalkStatus, ProblemDetails> {
    if req.interval_ms < MIN_INTERVAL_MS {
        return Err(ProblemDetails::invalid_param(
            "intervalMs",
            format!("must be at least {MIN_INTERVAL_MS}"),
        ));
    }
    // The document's integers are int64: larger values are refused, not taken as u64.
    for (name, value) in [
        ("intervalMs", Some(req.interval_ms)),
        ("seed", Some(req.seed)),
        ("steps", req.steps),
    ] {
        if value.is_some_and(|v| i64::try_from(v).is_err()) {
            return Err(ProblemDetails::invalid_param(
                name,
                "must be at most 9223372036854775807 (int64)",
            ));
        }
    }
    if ctx.topology.cells().len() < 2 {
        return Err(ProblemDetails::bad_request(
            "MANDATORY_IE_INCORRECT",
            "the topology has fewer than two cells",
        ));
    }
    let supis = {
        let ues = ctx.ues.read().await;
        match &req.supis {
            Some(list) => {
                if list.is_empty() {
                    return Err(ProblemDetails::invalid_param("supis", "must not be empty"));
                }
                for (i, s) in list.iter().enumerate() {
                    check_supi(&format!("supis[{i}]"), s)?;
                    if !ues.contains_key(s) {
                        return Err(ProblemDetails::invalid_param(
                            &format!("supis[{i}]"),
                            format!("'{s}' is not registered"),
                        ));
                    }
                }
                list.clone()
            }
            None => {
                let n = req.count.map(|c| c as usize).unwrap_or(ues.len());
                if n == 0 || n > ues.len() {
                    return Err(ProblemDetails::invalid_param(
                        "count",
                        format!("must be between 1 and the {} registered UEs", ues.len()),
                    ));
                }
                ues.keys().take(n).cloned().collect()
            }
        }
    };
    let status = Arc::new(StdMutex::new(RandomWalkStatus {
        running: true,
        supis: supis.clone(),
        interval_ms: req.interval_ms,
        seed: req.seed,
        steps: req.steps,
        handovers: 0,
    }));
    let cancel = CancellationToken::new();
    let mut slot = ctx.walk.lock().await;
    if let Some(old) = slot.take() {
        old.cancel.cancel();
    }
    let task_ctx = ctx.clone();
    let task_status = status.clone();
    let task_cancel = cancel.clone();
    tokio::spawn(async move {
        let mut walker = Walker::new(supis, req.seed);
        let mut tick = tokio::time::interval(Duration::from_millis(req.interval_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate
        let mut done = 0u64;
        while req.steps.is_none_or(|s| done < s) {
            tokio::select! {
                _ = task_cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Some((supi, target)) = walker.next(&task_ctx).await {
                match move_ue(&task_ctx, &supi, target).await {
                    Ok(_) => {
                        done += 1;
                        if let Ok(mut s) = task_status.lock() {
                            s.handovers = done;
                        }
                    }
                    Err(p) => tracing::debug!(%supi, problem = %p, "random-walk step skipped"),
                }
            }
        }
        if let Ok(mut s) = task_status.lock() {
            s.running = false;
        }
    });
    let walk = RandomWalk { status, cancel };
    let snap = walk.snapshot();
    *slot = Some(walk);
    Ok(snap)
}

/// Stops the walk (if any) and returns its final status.
pub async fn stop_random_walk(ctx: &AmfContext) -> RandomWalkStatus {
    let slot = ctx.walk.lock().await;
    match slot.as_ref() {
        Some(w) => {
            w.cancel.cancel();
            let mut s = w.snapshot();
            s.running = false;
            s
        }
        None => RandomWalkStatus::default(),
    }
}

/// The status of the current (or last) walk.
pub async fn random_walk_status(ctx: &AmfContext) -> RandomWalkStatus {
    ctx.walk
        .lock()
        .await
        .as_ref()
        .map(|w| w.snapshot())
        .unwrap_or_default()
}
