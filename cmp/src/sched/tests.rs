use rand::rngs::StdRng;
use rand::SeedableRng;

use super::random_dag::{self, uniform_platform, RandomDagParams};
use super::*;

/// The 10-task, 3-processor example of Topcuoglu et al. (2002), Fig. 2: costs per
/// processor and the transfer costs on the edges (bytes at 1 byte/s = seconds).
fn topcuoglu_fig2() -> (Dag, Platform) {
    let w = [
        [14.0, 16.0, 9.0],
        [13.0, 19.0, 18.0],
        [11.0, 13.0, 19.0],
        [13.0, 8.0, 17.0],
        [12.0, 13.0, 10.0],
        [13.0, 16.0, 9.0],
        [7.0, 15.0, 11.0],
        [5.0, 11.0, 14.0],
        [18.0, 12.0, 20.0],
        [21.0, 7.0, 16.0],
    ];
    let e = [
        (1, 2, 18.0),
        (1, 3, 12.0),
        (1, 4, 9.0),
        (1, 5, 11.0),
        (1, 6, 14.0),
        (2, 8, 19.0),
        (2, 9, 16.0),
        (3, 7, 23.0),
        (4, 8, 27.0),
        (4, 9, 23.0),
        (5, 9, 13.0),
        (6, 8, 15.0),
        (7, 10, 17.0),
        (8, 10, 11.0),
        (9, 10, 13.0),
    ];
    let dag = Dag {
        tasks: w
            .iter()
            .enumerate()
            .map(|(i, c)| Task {
                name: format!("n{}", i + 1),
                cost: c.iter().map(|&x| Some(x)).collect(),
                units: 1,
                memory_mb: 0,
            })
            .collect(),
        edges: e
            .iter()
            .map(|&(a, b, c)| Edge {
                from: a - 1,
                to: b - 1,
                bytes: c,
            })
            .collect(),
    };
    (dag, uniform_platform(3))
}

fn check(dag: &Dag, p: &Platform, s: &Schedule) {
    validate_schedule(dag, p, s).unwrap_or_else(|e| panic!("{}: {e}", s.algorithm));
}

#[test]
fn heft_reproduces_topcuoglu_fig2() {
    let (dag, p) = topcuoglu_fig2();
    // The paper's upward ranks (Table 1): 108, 77, 80, 80, 69, 63.333, 42.667, 35.667, 44.333, 14.667.
    let want = [
        108.0, 77.0, 80.0, 80.0, 69.0, 63.333, 42.667, 35.667, 44.333, 14.667,
    ];
    let got = upward_ranks(&dag, &p, RankComm::DistinctPairs).unwrap();
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-3, "ranks {got:?}");
    }
    let s = heft(&dag, &p).unwrap();
    check(&dag, &p, &s);
    assert_eq!(s.makespan, 80.0);
    assert_eq!(s.algorithm, "heft");
    // The paper's Fig. 3(a): n1 on P3 [0, 9], n10 on P2 [73, 80].
    assert_eq!((s.placements[0].device, s.placements[0].finish), (2, 9.0));
    assert_eq!(
        (
            s.placements[9].device,
            s.placements[9].start,
            s.placements[9].finish
        ),
        (1, 73.0, 80.0)
    );
}

#[test]
fn best_is_never_worse_on_fig2_and_all_algorithms_are_valid() {
    let (dag, p) = topcuoglu_fig2();
    for algorithm in [
        Algorithm::Heft,
        Algorithm::Peft,
        Algorithm::HeftOct,
        Algorithm::Lookahead,
        Algorithm::Best,
    ] {
        let s = schedule(
            &dag,
            &p,
            &Options {
                algorithm,
                deadline_s: None,
            },
        )
        .unwrap();
        check(&dag, &p, &s);
        if algorithm == Algorithm::Best {
            assert!(s.makespan <= 80.0, "{}", s.makespan);
            assert!(s.algorithm.starts_with("best:"));
        }
    }
}

#[test]
fn best_never_worse_than_heft_on_a_random_sweep() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut strictly_better = 0;
    let mut count = 0;
    for v in [10, 30, 60] {
        for ccr in [0.1, 1.0, 10.0] {
            for alpha in [0.5, 2.0] {
                for beta in [0.1, 1.0] {
                    for devices in [2, 5] {
                        let prm = RandomDagParams {
                            v,
                            ccr,
                            alpha,
                            beta,
                            devices,
                            out_degree: 3,
                            mean_cost: 20.0,
                        };
                        let inst = random_dag::topcuoglu(&prm, &mut rng);
                        let h = heft(&inst.dag, &inst.platform).unwrap();
                        check(&inst.dag, &inst.platform, &h);
                        let b = schedule(&inst.dag, &inst.platform, &Options::default()).unwrap();
                        check(&inst.dag, &inst.platform, &b);
                        assert!(b.makespan <= h.makespan, "{} > {}", b.makespan, h.makespan);
                        // SLR >= 1 always: no plan beats the critical path at minimum costs.
                        assert!(random_dag::slr(&inst.dag, h.makespan) >= 1.0 - 1e-9);
                        if b.makespan < h.makespan {
                            strictly_better += 1;
                        }
                        count += 1;
                    }
                }
            }
        }
    }
    // Best is a real improvement somewhere, not only HEFT re-labelled.
    assert!(
        strictly_better > 0,
        "best never beat heft in {count} instances"
    );
}

/// An edge site with a CPU and a small GPU, a cloud with a big GPU, 10 ms / 100 Mbit/s apart.
fn edge_cloud() -> Platform {
    Platform {
        nodes: vec![Node { id: "edge1".into() }, Node { id: "cloud".into() }],
        devices: vec![
            Device {
                id: "edge1-cpu".into(),
                node: 0,
                kind: DeviceKind::Cpu,
                units: 4,
                memory_mb: 8_000,
                speed: 1.0,
            },
            Device {
                id: "edge1-gpu".into(),
                node: 0,
                kind: DeviceKind::Gpu,
                units: 1,
                memory_mb: 8_000,
                speed: 10.0,
            },
            Device {
                id: "cloud-gpu".into(),
                node: 1,
                kind: DeviceKind::Gpu,
                units: 8,
                memory_mb: 80_000,
                speed: 40.0,
            },
        ],
        links: vec![Link {
            a: 0,
            b: 1,
            bandwidth_bps: 12.5e6,
            latency_s: 0.01,
        }],
    }
}

fn task(name: &str, cost: [Option<f64>; 3], units: u32, memory_mb: u64) -> Task {
    Task {
        name: name.into(),
        cost: cost.to_vec(),
        units,
        memory_mb,
    }
}

#[test]
fn llm_step_goes_to_the_gpu_it_fits_and_pays_the_transfer() {
    let p = edge_cloud();
    let dag = Dag {
        tasks: vec![
            // Privacy: desensitizing runs at the edge only.
            task("desensitize", [Some(0.001), None, None], 1, 100),
            // Dedup gains nothing from a GPU: the same cost everywhere.
            task("dedup", [Some(0.002), Some(0.002), Some(0.002)], 1, 100),
            task("generate", [Some(8.0), Some(0.9), Some(0.2)], 1, 20_000),
        ],
        edges: vec![
            Edge {
                from: 0,
                to: 1,
                bytes: 4_000.0,
            },
            Edge {
                from: 1,
                to: 2,
                bytes: 4_000.0,
            },
        ],
    };
    let h = heft(&dag, &p).unwrap();
    check(&dag, &p, &h);
    let b = schedule(&dag, &p, &Options::default()).unwrap();
    check(&dag, &p, &b);
    let transfer = 0.01 + 4_000.0 / 12.5e6;
    for s in [&h, &b] {
        assert_eq!(s.placements[0].device, 0);
        // 20 GB does not fit the edge GPU: the cloud GPU, after one transfer.
        assert_eq!(s.placements[2].device, 2, "{s:?}");
        let want = 0.001 + 0.002 + transfer + 0.2;
        assert!((s.makespan - want).abs() < 1e-12, "{s:?}");
    }
    assert_eq!(p.comm_time(0, 1, 4_000.0), Some(transfer));
    assert_eq!(p.comm_time(1, 1, 4_000.0), Some(0.0));
}

#[test]
fn look_ahead_co_locates_where_heft_is_greedy() {
    let p = edge_cloud();
    let dag = Dag {
        tasks: vec![
            task("dedup", [Some(0.002), Some(0.002), Some(0.002)], 1, 100),
            task("generate", [Some(8.0), Some(0.9), Some(0.2)], 1, 20_000),
        ],
        edges: vec![Edge {
            from: 0,
            to: 1,
            bytes: 4_000.0,
        }],
    };
    // HEFT: dedup finishes equally early everywhere, takes the first device (edge)
    // and generate then waits for the transfer to the cloud.
    let h = heft(&dag, &p).unwrap();
    check(&dag, &p, &h);
    assert_eq!(h.placements[0].node, 0);
    // PEFT's optimistic cost table sees the transfer coming and runs dedup in the cloud.
    let b = schedule(&dag, &p, &Options::default()).unwrap();
    check(&dag, &p, &b);
    assert_eq!((b.placements[0].node, b.placements[1].device), (1, 2));
    assert!(
        (b.makespan - 0.202).abs() < 1e-12 && b.makespan < h.makespan,
        "{b:?} {h:?}"
    );
}

#[test]
fn refuses_a_task_that_fits_no_device() {
    let p = edge_cloud();
    let too_big = Dag {
        tasks: vec![task("huge", [Some(1.0), Some(1.0), Some(1.0)], 16, 100)],
        edges: vec![],
    };
    match schedule(&too_big, &p, &Options::default()) {
        Err(SchedError::NoFeasibleDevice { task, reason }) => {
            assert_eq!(task, "huge");
            assert!(
                reason.contains("cloud-gpu (gpu): 8 units < 16 needed"),
                "{reason}"
            );
        }
        r => panic!("{r:?}"),
    }
    let no_memory = Dag {
        tasks: vec![task("big", [Some(1.0), None, Some(1.0)], 1, 100_000)],
        edges: vec![],
    };
    match heft(&no_memory, &p) {
        Err(SchedError::NoFeasibleDevice { reason, .. }) => {
            assert!(reason.contains("80000 MB < 100000 MB needed"), "{reason}");
            assert!(!reason.contains("edge1-gpu"), "no cost there: {reason}");
        }
        r => panic!("{r:?}"),
    }
    let no_kind = Dag {
        tasks: vec![task("vpu-only", [None, None, None], 1, 0)],
        edges: vec![],
    };
    match heft(&no_kind, &p) {
        Err(SchedError::NoFeasibleDevice { reason, .. }) => {
            assert!(reason.contains("no cost estimate"), "{reason}");
            assert!(reason.contains("cpu, gpu"), "{reason}");
        }
        r => panic!("{r:?}"),
    }
}

#[test]
fn refuses_an_unreachable_placement() {
    let mut p = edge_cloud();
    p.links.clear();
    // Step a runs only on the edge CPU, b only in the cloud: no route between them.
    let dag = Dag {
        tasks: vec![
            task("a", [Some(1.0), None, None], 1, 0),
            task("b", [None, None, Some(1.0)], 1, 0),
        ],
        edges: vec![Edge {
            from: 0,
            to: 1,
            bytes: 1.0,
        }],
    };
    match heft(&dag, &p) {
        Err(SchedError::NoFeasibleDevice { task, reason }) => {
            assert_eq!(task, "b");
            assert!(reason.contains("reachable"), "{reason}");
        }
        r => panic!("{r:?}"),
    }
    assert_eq!(p.comm_time(0, 1, 1.0), None);
}

#[test]
fn multi_hop_route_when_no_direct_link() {
    let p = Platform {
        nodes: (0..3)
            .map(|k| Node {
                id: format!("n{k}"),
            })
            .collect(),
        devices: vec![],
        links: vec![
            Link {
                a: 0,
                b: 1,
                bandwidth_bps: 100.0,
                latency_s: 0.5,
            },
            Link {
                a: 1,
                b: 2,
                bandwidth_bps: 50.0,
                latency_s: 0.25,
            },
        ],
    };
    // Store and forward: 0.75 s of latency + 100/100 + 100/50 s.
    let t = p.comm_time(2, 0, 100.0).unwrap();
    assert!((t - 3.75).abs() < 1e-12, "{t}");
}

#[test]
fn refuses_a_missed_deadline() {
    let (dag, p) = topcuoglu_fig2();
    let opts = Options {
        algorithm: Algorithm::Heft,
        deadline_s: Some(79.0),
    };
    assert_eq!(
        schedule(&dag, &p, &opts),
        Err(SchedError::DeadlineMissed {
            makespan: 80.0,
            deadline: 79.0
        })
    );
    let opts = Options {
        algorithm: Algorithm::Heft,
        deadline_s: Some(80.0),
    };
    check(&dag, &p, &schedule(&dag, &p, &opts).unwrap());
}

#[test]
fn refuses_a_cycle_and_invalid_input() {
    let (mut dag, p) = topcuoglu_fig2();
    // n10 -> n4 closes n4 -> n8 -> n10 -> n4.
    dag.edges.push(Edge {
        from: 9,
        to: 3,
        bytes: 1.0,
    });
    match heft(&dag, &p) {
        Err(SchedError::Cycle { task }) => {
            assert!(["n4", "n8", "n9", "n10"].contains(&task.as_str()), "{task}")
        }
        r => panic!("{r:?}"),
    }
    let (mut dag, p) = topcuoglu_fig2();
    dag.edges.push(Edge {
        from: 2,
        to: 2,
        bytes: 0.0,
    });
    assert_eq!(heft(&dag, &p), Err(SchedError::Cycle { task: "n3".into() }));

    let (mut dag, p) = topcuoglu_fig2();
    dag.edges.push(Edge {
        from: 0,
        to: 10,
        bytes: 0.0,
    });
    assert!(matches!(heft(&dag, &p), Err(SchedError::Invalid(m)) if m.contains("edges[15]")));
    let (mut dag, p) = topcuoglu_fig2();
    dag.tasks[4].cost.pop();
    assert!(matches!(heft(&dag, &p), Err(SchedError::Invalid(m)) if m.contains("tasks[4]")));
    let (mut dag, p) = topcuoglu_fig2();
    dag.tasks[4].cost[0] = Some(-1.0);
    assert!(matches!(heft(&dag, &p), Err(SchedError::Invalid(_))));
    let (dag, mut p) = topcuoglu_fig2();
    p.devices[1].node = 7;
    assert!(matches!(heft(&dag, &p), Err(SchedError::Invalid(m)) if m.contains("devices[1]")));
    let (dag, p) = topcuoglu_fig2();
    let opts = Options {
        algorithm: Algorithm::Best,
        deadline_s: Some(f64::NAN),
    };
    assert!(matches!(
        schedule(&dag, &p, &opts),
        Err(SchedError::Invalid(_))
    ));
}

#[test]
fn empty_dag_has_an_empty_plan() {
    let s = heft(&Dag::default(), &uniform_platform(2)).unwrap();
    assert_eq!((s.placements.len(), s.makespan), (0, 0.0));
}

#[test]
fn validate_schedule_catches_broken_plans() {
    let (dag, p) = topcuoglu_fig2();
    let good = heft(&dag, &p).unwrap();
    // Start n2 before n1's data can arrive.
    let mut bad = good.clone();
    let d = bad.placements[1].finish - bad.placements[1].start;
    bad.placements[1].start = 0.0;
    bad.placements[1].finish = d;
    assert!(validate_schedule(&dag, &p, &bad).is_err());
    // Put everything on one device at its HEFT times: overlaps (and wrong durations).
    let mut bad = good.clone();
    for pl in &mut bad.placements {
        pl.device = 0;
        pl.node = 0;
    }
    assert!(validate_schedule(&dag, &p, &bad).is_err());
    let mut bad = good.clone();
    bad.makespan = 70.0;
    assert!(validate_schedule(&dag, &p, &bad).is_err());
}

#[test]
fn small_bench_runs_and_best_is_not_worse() {
    let cfg = bench::BenchConfig {
        instances: 1,
        seed: 3,
        sizes: vec![20, 50],
        ccrs: vec![0.5, 5.0],
        alphas: vec![1.0],
        betas: vec![0.5],
        devices: vec![3],
        timing_plans: 3,
    };
    let r = bench::bench(&cfg).unwrap();
    assert_eq!(r.overall.count, 4);
    assert_eq!(r.overall.worse, 0);
    let text = r.to_string();
    assert!(text.contains("targets:"), "{text}");
}

#[test]
fn ranks_average_over_the_devices_a_task_fits() {
    let p = edge_cloud();
    // a: 2 s on the CPU, 1 s on the cloud GPU, does not fit the 1-unit edge GPU.
    let dag = Dag {
        tasks: vec![
            task("a", [Some(2.0), Some(0.5), Some(1.0)], 2, 0),
            task("b", [Some(3.0), None, Some(1.0)], 1, 0),
        ],
        edges: vec![Edge {
            from: 0,
            to: 1,
            bytes: 12.5e6,
        }],
    };
    let r = upward_ranks(&dag, &p, RankComm::DistinctPairs).unwrap();
    // Ordered distinct device pairs: 6, of which 2 are co-located (0 s) and 4 cross
    // the link (0.01 s + 1 s): mean transfer 4 * 1.01 / 6.
    let comm = 4.0 * 1.01 / 6.0;
    assert!((r[1] - 2.0).abs() < 1e-12, "{r:?}");
    assert!((r[0] - (1.5 + comm + 2.0)).abs() < 1e-12, "{r:?}");
    let s = heft(&dag, &p).unwrap();
    check(&dag, &p, &s);
    assert_ne!(s.placements[0].device, 1, "a needs 2 units");
}

#[test]
fn random_dags_follow_the_topcuoglu_parameters() {
    let mut rng = StdRng::seed_from_u64(11);
    for (v, alpha) in [(20, 0.5), (100, 1.0), (100, 2.0)] {
        let (mut bytes, mut edges, mut cost, mut tasks) = (0.0, 0usize, 0.0, 0usize);
        let mut levels = 0.0;
        for _ in 0..40 {
            let prm = RandomDagParams {
                v,
                ccr: 5.0,
                alpha,
                out_degree: 4,
                beta: 0.5,
                mean_cost: 20.0,
                devices: 4,
            };
            let inst = random_dag::topcuoglu(&prm, &mut rng);
            assert_eq!(inst.dag.tasks.len(), v);
            // Acyclic with every task reachable: HEFT schedules it.
            check(
                &inst.dag,
                &inst.platform,
                &heft(&inst.dag, &inst.platform).unwrap(),
            );
            for t in &inst.dag.tasks {
                let c: Vec<f64> = t.cost.iter().map(|c| c.unwrap()).collect();
                let (lo, hi) = c
                    .iter()
                    .fold((f64::MAX, 0.0f64), |(l, h), &x| (l.min(x), h.max(x)));
                // Within [w(1 - beta/2), w(1 + beta/2)]: hi / lo <= 1.25 / 0.75.
                assert!(hi / lo <= 1.25 / 0.75 + 1e-9, "{c:?}");
                cost += c.iter().sum::<f64>();
                tasks += c.len();
            }
            for e in &inst.dag.edges {
                bytes += e.bytes;
                edges += 1;
            }
            // Height: the longest path in edges + 1.
            let mut depth = vec![1usize; v];
            for e in {
                let mut es = inst.dag.edges.clone();
                es.sort_by_key(|e| e.from);
                es
            } {
                depth[e.to] = depth[e.to].max(depth[e.from] + 1);
            }
            levels += *depth.iter().max().unwrap() as f64;
        }
        let ccr = (bytes / edges as f64) / (cost / tasks as f64);
        assert!((ccr - 5.0).abs() < 0.5, "CCR {ccr}");
        let height = levels / 40.0;
        let want = (v as f64).sqrt() / alpha;
        assert!(
            height > 0.6 * want && height < 1.5 * want,
            "v {v} alpha {alpha}: height {height}, want about {want}"
        );
    }
}
