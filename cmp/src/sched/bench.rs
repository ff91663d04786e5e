//! The scheduler benchmark behind `netgpt bench sched`: Best against plain HEFT on
//! the random DAGs of Topcuoglu et al. (2002), both run on every instance, plus the
//! time to compute one plan at 100 tasks x 8 devices.

use std::fmt::{self, Write as _};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::random_dag::{self, RandomDagParams};
use super::{heft, schedule, validate_schedule, Algorithm, Options, SchedError};

/// What to sweep.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Random instances per grid point (v, CCR, alpha, beta, devices).
    pub instances: usize,
    pub seed: u64,
    pub sizes: Vec<usize>,
    pub ccrs: Vec<f64>,
    pub alphas: Vec<f64>,
    pub betas: Vec<f64>,
    pub devices: Vec<usize>,
    /// Plans timed per algorithm at 100 tasks x 8 devices.
    pub timing_plans: usize,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            instances: 5,
            seed: 1,
            sizes: vec![20, 40, 60, 80, 100],
            ccrs: vec![0.1, 0.5, 1.0, 5.0, 10.0],
            alphas: vec![0.5, 1.0, 2.0],
            betas: vec![0.1, 0.25, 0.5, 0.75, 1.0],
            devices: vec![4, 8],
            timing_plans: 500,
        }
    }
}

/// Figures of one group of instances (e.g. all with CCR = 5).
#[derive(Debug, Clone, Default)]
pub struct Group {
    pub label: String,
    pub count: usize,
    pub slr_heft: f64,
    pub slr_best: f64,
    pub speedup_heft: f64,
    pub speedup_best: f64,
    pub better: usize,
    pub equal: usize,
    pub worse: usize,
}

impl Group {
    fn add(&mut self, r: &Sample) {
        self.count += 1;
        self.slr_heft += r.slr_heft;
        self.slr_best += r.slr_best;
        self.speedup_heft += r.speedup_heft;
        self.speedup_best += r.speedup_best;
        if r.best < r.heft {
            self.better += 1;
        } else if r.best == r.heft {
            self.equal += 1;
        } else {
            self.worse += 1;
        }
    }
    fn mean(&self, sum: f64) -> f64 {
        sum / self.count.max(1) as f64
    }
    fn pct(&self, k: usize) -> f64 {
        100.0 * k as f64 / self.count.max(1) as f64
    }
}

struct Sample {
    heft: f64,
    best: f64,
    slr_heft: f64,
    slr_best: f64,
    speedup_heft: f64,
    speedup_best: f64,
}

/// Scheduling time figures of one algorithm, in microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// Everything `netgpt bench sched` prints.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub config: BenchConfig,
    pub overall: Group,
    /// Tables: (title, rows).
    pub tables: Vec<(String, Vec<Group>)>,
    /// Which candidate won Best's instances where it beat HEFT: (name, count).
    pub winners: Vec<(String, usize)>,
    /// Plan time at 100 x 8 per algorithm (see [`TIMED`]).
    pub times: Vec<(String, Timing)>,
    pub heft_100x8: Timing,
    pub best_100x8: Timing,
}

/// The 100 x 8 scheduling-time target for plain HEFT, in microseconds.
pub const TARGET_HEFT_US: f64 = 500.0;

/// Runs the sweep. Every schedule is checked with [`validate_schedule`]; an invalid
/// one, or Best longer than HEFT, is an error (a bug), not a figure.
pub fn bench(cfg: &BenchConfig) -> Result<BenchReport, SchedError> {
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut overall = Group {
        label: "all".into(),
        ..Group::default()
    };
    let dims: [(&str, usize); 5] = [
        ("v", cfg.sizes.len()),
        ("CCR", cfg.ccrs.len()),
        ("alpha", cfg.alphas.len()),
        ("beta", cfg.betas.len()),
        ("devices", cfg.devices.len()),
    ];
    let labels: [Vec<String>; 5] = [
        cfg.sizes.iter().map(|x| x.to_string()).collect(),
        cfg.ccrs.iter().map(|x| x.to_string()).collect(),
        cfg.alphas.iter().map(|x| x.to_string()).collect(),
        cfg.betas.iter().map(|x| x.to_string()).collect(),
        cfg.devices.iter().map(|x| x.to_string()).collect(),
    ];
    let mut groups: Vec<Vec<Group>> = (0..5)
        .map(|k| {
            labels[k]
                .iter()
                .map(|l| Group {
                    label: l.clone(),
                    ..Group::default()
                })
                .collect()
        })
        .collect();
    let mut winners: Vec<(String, usize)> = Vec::new();
    let best_opts = Options {
        algorithm: Algorithm::Best,
        deadline_s: None,
    };
    for (iv, &v) in cfg.sizes.iter().enumerate() {
        for (ic, &ccr) in cfg.ccrs.iter().enumerate() {
            for (ia, &alpha) in cfg.alphas.iter().enumerate() {
                for (ib, &beta) in cfg.betas.iter().enumerate() {
                    for (id, &devices) in cfg.devices.iter().enumerate() {
                        for _ in 0..cfg.instances {
                            let prm = RandomDagParams {
                                v,
                                ccr,
                                alpha,
                                beta,
                                devices,
                                out_degree: rng.random_range(1..=5),
                                mean_cost: 20.0,
                            };
                            let inst = random_dag::topcuoglu(&prm, &mut rng);
                            let h = heft(&inst.dag, &inst.platform)?;
                            let b = schedule(&inst.dag, &inst.platform, &best_opts)?;
                            for s in [&h, &b] {
                                validate_schedule(&inst.dag, &inst.platform, s).map_err(|e| {
                                    SchedError::Invalid(format!(
                                        "{} made an invalid plan: {e}",
                                        s.algorithm
                                    ))
                                })?;
                            }
                            if b.makespan > h.makespan {
                                return Err(SchedError::Invalid(format!(
                                    "best ({}) {} > heft {} on v={v} ccr={ccr} alpha={alpha} beta={beta}",
                                    b.algorithm, b.makespan, h.makespan
                                )));
                            }
                            if b.makespan < h.makespan {
                                match winners.iter_mut().find(|(n, _)| *n == b.algorithm) {
                                    Some(w) => w.1 += 1,
                                    None => winners.push((b.algorithm.clone(), 1)),
                                }
                            }
                            let cp = random_dag::cp_min(&inst.dag);
                            let sample = Sample {
                                heft: h.makespan,
                                best: b.makespan,
                                slr_heft: h.makespan / cp,
                                slr_best: b.makespan / cp,
                                speedup_heft: random_dag::speedup(
                                    &inst.dag,
                                    &inst.platform,
                                    h.makespan,
                                ),
                                speedup_best: random_dag::speedup(
                                    &inst.dag,
                                    &inst.platform,
                                    b.makespan,
                                ),
                            };
                            overall.add(&sample);
                            for (k, idx) in [iv, ic, ia, ib, id].into_iter().enumerate() {
                                groups[k][idx].add(&sample);
                            }
                        }
                    }
                }
            }
        }
    }
    winners.sort_by_key(|w| std::cmp::Reverse(w.1));
    let tables = dims
        .iter()
        .zip(groups)
        .map(|((name, _), rows)| (name.to_string(), rows))
        .collect();
    let times = time_100x8(cfg, &mut rng)?;
    let heft_100x8 = times[0].1;
    let best_100x8 = times[times.len() - 1].1;
    Ok(BenchReport {
        config: cfg.clone(),
        overall,
        tables,
        winners,
        times,
        heft_100x8,
        best_100x8,
    })
}

/// Times every algorithm on `timing_plans` random 100-task x 8-device instances
/// spread over the CCR/alpha/beta grid, each plan timed on its own after an untimed
/// warm-up run. Returns (algorithm, timing) in [`TIMED`] order.
fn time_100x8(cfg: &BenchConfig, rng: &mut StdRng) -> Result<Vec<(String, Timing)>, SchedError> {
    let k = cfg.timing_plans.max(1);
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(k); TIMED.len()];
    for i in 0..k {
        let prm = RandomDagParams {
            v: 100,
            devices: 8,
            ccr: cfg.ccrs[i % cfg.ccrs.len()],
            alpha: cfg.alphas[i % cfg.alphas.len()],
            beta: cfg.betas[i % cfg.betas.len()],
            out_degree: rng.random_range(1..=5),
            mean_cost: 20.0,
        };
        let inst = random_dag::topcuoglu(&prm, rng);
        for (a, out) in TIMED.iter().zip(samples.iter_mut()) {
            let opts = Options {
                algorithm: *a,
                deadline_s: None,
            };
            std::hint::black_box(schedule(&inst.dag, &inst.platform, &opts)?);
            let t0 = Instant::now();
            std::hint::black_box(schedule(&inst.dag, &inst.platform, &opts)?);
            out.push(t0.elapsed().as_secs_f64() * 1e6);
        }
    }
    Ok(TIMED
        .iter()
        .zip(samples)
        .map(|(a, v)| (a.name().to_string(), timing(v)))
        .collect())
}

/// The algorithms whose plan time is measured; HEFT first, Best last.
pub const TIMED: [Algorithm; 5] = [
    Algorithm::Heft,
    Algorithm::Peft,
    Algorithm::HeftOct,
    Algorithm::Lookahead,
    Algorithm::Best,
];

fn timing(mut v: Vec<f64>) -> Timing {
    v.sort_by(f64::total_cmp);
    let q = |f: f64| v[((v.len() - 1) as f64 * f).round() as usize];
    Timing {
        mean_us: v.iter().sum::<f64>() / v.len() as f64,
        p50_us: q(0.5),
        p99_us: q(0.99),
    }
}

impl BenchReport {
    /// Whether the targets hold: HEFT 100x8 mean under 0.5 ms, mean SLR of Best no
    /// worse than HEFT's.
    pub fn targets_met(&self) -> (bool, bool) {
        (
            self.heft_100x8.mean_us < TARGET_HEFT_US,
            self.overall.slr_best <= self.overall.slr_heft,
        )
    }
}

fn row(out: &mut String, g: &Group) -> fmt::Result {
    writeln!(
        out,
        "{:>8} {:>6} {:>9.4} {:>9.4} {:>7.2}% {:>9.3} {:>9.3} {:>7.1}% {:>7.1}% {:>7.1}%",
        g.label,
        g.count,
        g.mean(g.slr_heft),
        g.mean(g.slr_best),
        100.0 * (1.0 - g.mean(g.slr_best) / g.mean(g.slr_heft)),
        g.mean(g.speedup_heft),
        g.mean(g.speedup_best),
        g.pct(g.better),
        g.pct(g.equal),
        g.pct(g.worse)
    )
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let mut out = String::new();
        writeln!(
            out,
            "scheduler: Best (shortest of HEFT, PEFT, HEFT-order+OCT, OCT-order+EFT, look-ahead, HEFT self-pair rank) vs plain HEFT, same instances"
        )?;
        writeln!(
            out,
            "random DAGs (Topcuoglu et al. 2002): v {:?}, CCR {:?}, alpha {:?}, beta {:?}, devices {:?}, out-degree 1..5, {} per point, seed {}",
            c.sizes, c.ccrs, c.alphas, c.betas, c.devices, c.instances, c.seed
        )?;
        for (title, rows) in &self.tables {
            writeln!(out)?;
            writeln!(
                out,
                "{:>8} {:>6} {:>9} {:>9} {:>8} {:>9} {:>9} {:>8} {:>8} {:>8}",
                title,
                "n",
                "SLR heft",
                "SLR best",
                "gain",
                "spd heft",
                "spd best",
                "best<",
                "best=",
                "best>"
            )?;
            for g in rows {
                row(&mut out, g)?;
            }
        }
        writeln!(out)?;
        row(&mut out, &self.overall)?;
        let w: Vec<String> = self
            .winners
            .iter()
            .map(|(n, k)| format!("{n} {k}"))
            .collect();
        writeln!(
            out,
            "where Best beat HEFT, the winning candidate: {}",
            w.join(", ")
        )?;
        writeln!(out)?;
        writeln!(
            out,
            "plan time, 100 tasks x 8 devices, {} plans each:",
            c.timing_plans
        )?;
        for (name, t) in &self.times {
            writeln!(
                out,
                "{:>16}  mean {:>8.1} us  p50 {:>8.1} us  p99 {:>8.1} us  {:>6.2}x heft",
                name,
                t.mean_us,
                t.p50_us,
                t.p99_us,
                t.mean_us / self.heft_100x8.mean_us
            )?;
        }
        let (t, s) = self.targets_met();
        let yn = |b: bool| if b { "met" } else { "NOT met" };
        writeln!(
            out,
            "targets: heft 100x8 plan < 500 us: {} ({:.1} us); mean SLR best <= heft: {} ({:.4} vs {:.4})",
            yn(t),
            self.heft_100x8.mean_us,
            yn(s),
            self.overall.mean(self.overall.slr_best),
            self.overall.mean(self.overall.slr_heft)
        )?;
        f.write_str(&out)
    }
}
