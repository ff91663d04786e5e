//! Cross-check of our HEFT against the HeftScheduler of the PyPI package `anrg-saga`
//! on random instances of saga's speed-per-node model (a task takes cost / speed on a
//! node, data takes size / strength between two nodes, nothing on the same node).
//!
//! saga averages a transfer over all network edges including each node's self edge
//! (which costs 0); our plain HEFT averages over distinct device pairs as Topcuoglu et
//! al. do. The two differ only in the ranks, so the makespans are asserted equal for
//! `heft_with(.., RankComm::AllUnorderedPairs)`; how often the default convention
//! gives the same makespan is printed for information.
//!
//! Needs `NETGPT_SAGA_PYTHON` (an interpreter with anrg-saga, see
//! cmp/scripts/saga-venv.sh); without it the test prints why and passes.

use std::io::Write;
use std::process::{Command, Stdio};

use netgpt_cmp::sched::random_dag::random_shape;
use netgpt_cmp::sched::{
    heft, heft_with, validate_schedule, Dag, Device, DeviceKind, Edge, Link, Node, Platform,
    RankComm, Task,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// One instance in saga's model and its mapping to ours.
struct Case {
    saga: Value,
    dag: Dag,
    platform: Platform,
}

fn random_case(rng: &mut StdRng) -> Case {
    let v = rng.random_range(8..=40);
    let nodes = rng.random_range(2..=6);
    let alpha = [0.5, 1.0, 2.0][rng.random_range(0..3)];
    // Mean data size relative to mean cost: the CCR, roughly.
    let ccr = [0.1, 1.0, 5.0][rng.random_range(0..3)];
    let speeds: Vec<f64> = (0..nodes).map(|_| rng.random_range(0.5..3.0)).collect();
    let costs: Vec<f64> = (0..v).map(|_| rng.random_range(1.0..10.0)).collect();
    let shape = random_shape(v, alpha, 3, rng);
    let sizes: Vec<f64> = shape
        .iter()
        .map(|_| rng.random_range(0.1..2.0 * 5.5 * ccr))
        .collect();
    let mut links = Vec::new();
    for a in 0..nodes {
        for b in a + 1..nodes {
            links.push((a, b, rng.random_range(0.5..3.0)));
        }
    }
    let saga = json!({
        "tasks": costs.iter().enumerate().map(|(i, c)| json!({"name": format!("t{i}"), "cost": c})).collect::<Vec<_>>(),
        "edges": shape.iter().zip(&sizes).map(|(&(a, b), s)| json!({"source": format!("t{a}"), "target": format!("t{b}"), "size": s})).collect::<Vec<_>>(),
        "nodes": speeds.iter().enumerate().map(|(k, s)| json!({"name": format!("n{k}"), "speed": s})).collect::<Vec<_>>(),
        "links": links.iter().map(|&(a, b, s)| json!({"a": format!("n{a}"), "b": format!("n{b}"), "strength": s})).collect::<Vec<_>>(),
    });
    // Ours: one device per saga node, cost[d] = cost / speed, links of bandwidth
    // `strength` and no latency.
    let platform = Platform {
        nodes: (0..nodes)
            .map(|k| Node {
                id: format!("n{k}"),
            })
            .collect(),
        devices: speeds
            .iter()
            .enumerate()
            .map(|(k, &speed)| Device {
                id: format!("n{k}-cpu"),
                node: k,
                kind: DeviceKind::Cpu,
                units: 1,
                memory_mb: 1024,
                speed,
            })
            .collect(),
        links: links
            .iter()
            .map(|&(a, b, s)| Link {
                a,
                b,
                bandwidth_bps: s,
                latency_s: 0.0,
            })
            .collect(),
    };
    let dag = Dag {
        tasks: costs
            .iter()
            .enumerate()
            .map(|(i, c)| Task {
                name: format!("t{i}"),
                cost: speeds.iter().map(|s| Some(c / s)).collect(),
                units: 1,
                memory_mb: 0,
            })
            .collect(),
        edges: shape
            .iter()
            .zip(&sizes)
            .map(|(&(from, to), &bytes)| Edge { from, to, bytes })
            .collect(),
    };
    Case {
        saga,
        dag,
        platform,
    }
}

fn saga_makespans(python: &str, cases: &[Case]) -> (Vec<f64>, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/saga_heft.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let req = json!({ "instances": cases.iter().map(|c| &c.saga).collect::<Vec<_>>() });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(req.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "saga_heft.py failed: {:?}",
        out.status
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("saga_heft.py prints JSON");
    let m = v["makespans"]
        .as_array()
        .expect("makespans")
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    (m, v["saga"].as_str().unwrap_or("?").to_string())
}

#[test]
fn heft_makespans_equal_anrg_saga() {
    let Ok(python) = std::env::var("NETGPT_SAGA_PYTHON") else {
        eprintln!(
            "skipped: NETGPT_SAGA_PYTHON is unset (export NETGPT_SAGA_PYTHON=\"$(cmp/scripts/saga-venv.sh)\")"
        );
        return;
    };
    let mut rng = StdRng::seed_from_u64(2002);
    // NETGPT_SAGA_CASES widens the check (default 24 instances).
    let n: usize = std::env::var("NETGPT_SAGA_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let cases: Vec<Case> = (0..n).map(|_| random_case(&mut rng)).collect();
    let (theirs, version) = saga_makespans(&python, &cases);
    assert_eq!(theirs.len(), cases.len());
    let mut same_default = 0;
    for (k, (c, &m)) in cases.iter().zip(&theirs).enumerate() {
        let ours = heft_with(&c.dag, &c.platform, RankComm::AllUnorderedPairs).unwrap();
        validate_schedule(&c.dag, &c.platform, &ours).unwrap();
        assert!(
            (ours.makespan - m).abs() <= 1e-6 * m.abs().max(1.0),
            "instance {k} ({} tasks, {} nodes): ours {} vs saga {m}",
            c.dag.tasks.len(),
            c.platform.nodes.len(),
            ours.makespan
        );
        let default = heft(&c.dag, &c.platform).unwrap();
        validate_schedule(&c.dag, &c.platform, &default).unwrap();
        if (default.makespan - m).abs() <= 1e-6 * m.abs().max(1.0) {
            same_default += 1;
        }
    }
    eprintln!(
        "anrg-saga {version}: {} of {} HEFT makespans equal (saga's rank convention); \
         with Topcuoglu's distinct-pair mean {same_default} of {} equal",
        cases.len(),
        cases.len(),
        cases.len()
    );
}
