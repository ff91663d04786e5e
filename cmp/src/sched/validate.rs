//! An independent checker of schedules, used by every scheduler test and the bench.

use super::{Dag, Platform, Routes, Schedule};

/// Checks that `s` is a valid plan of `dag` on `platform`: one placement per task on
/// a device the task fits (cost given, units and memory within capacity) and on
/// that device's node, a duration equal to the task's cost there, every edge's data
/// arriving (predecessor finish + transfer time) no later than the successor starts,
/// no two tasks overlapping on one device, and the makespan equal to the last finish.
/// Times are compared with a relative tolerance of 1e-9.
pub fn validate_schedule(dag: &Dag, platform: &Platform, s: &Schedule) -> Result<(), String> {
    let routes = Routes::new(platform).map_err(|e| e.to_string())?;
    let n = dag.tasks.len();
    if s.placements.len() != n {
        return Err(format!("{} placements for {n} tasks", s.placements.len()));
    }
    let scale = s.makespan.abs().max(1.0);
    let eps = 1e-9 * scale;
    let mut last: f64 = 0.0;
    for (i, pl) in s.placements.iter().enumerate() {
        let t = &dag.tasks[i];
        if pl.task != i {
            return Err(format!("placements[{i}] is for task {}", pl.task));
        }
        let dev = platform
            .devices
            .get(pl.device)
            .ok_or_else(|| format!("task {} on unknown device {}", t.name, pl.device))?;
        if pl.node != dev.node {
            return Err(format!(
                "task {} placed on node {} but its device {} is on node {}",
                t.name, pl.node, dev.id, dev.node
            ));
        }
        let cost = t
            .cost
            .get(pl.device)
            .copied()
            .flatten()
            .ok_or_else(|| format!("task {} cannot run on device {}", t.name, dev.id))?;
        if t.units > dev.units || t.memory_mb > dev.memory_mb {
            return Err(format!(
                "task {} ({} units, {} MB) exceeds device {} ({} units, {} MB)",
                t.name, t.units, t.memory_mb, dev.id, dev.units, dev.memory_mb
            ));
        }
        // Written so that a NaN start or finish fails too.
        let ok = pl.start >= -eps && (pl.finish - pl.start - cost).abs() <= eps;
        if !ok {
            return Err(format!(
                "task {} runs [{}, {}] but costs {cost} on {}",
                t.name, pl.start, pl.finish, dev.id
            ));
        }
        last = last.max(pl.finish);
    }
    if (last - s.makespan).abs() > eps {
        return Err(format!(
            "makespan {} but the last task finishes at {last}",
            s.makespan
        ));
    }
    for e in &dag.edges {
        let (a, b) = (&s.placements[e.from], &s.placements[e.to]);
        let c = routes.time(a.node, b.node, e.bytes);
        if !c.is_finite() || a.finish + c > b.start + eps {
            return Err(format!(
                "task {} starts at {} before the data of {} arrives at {} ({} + transfer {c})",
                dag.tasks[e.to].name,
                b.start,
                dag.tasks[e.from].name,
                a.finish + c,
                a.finish
            ));
        }
    }
    let mut by_dev: Vec<Vec<(f64, f64, usize)>> = vec![Vec::new(); platform.devices.len()];
    for (i, pl) in s.placements.iter().enumerate() {
        by_dev[pl.device].push((pl.start, pl.finish, i));
    }
    for (d, v) in by_dev.iter_mut().enumerate() {
        v.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.total_cmp(&y.1)));
        for w in v.windows(2) {
            if w[1].0 < w[0].1 - eps {
                return Err(format!(
                    "tasks {} and {} overlap on device {}",
                    dag.tasks[w[0].2].name, dag.tasks[w[1].2].name, platform.devices[d].id
                ));
            }
        }
    }
    Ok(())
}
