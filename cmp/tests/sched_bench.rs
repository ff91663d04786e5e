//! The scheduler benchmark as an opt-in test, for a quick run without building the
//! `netgpt` binary: `cargo test -p netgpt-cmp --release --test sched_bench -- --ignored --nocapture`.
//! (`netgpt bench sched` is the same report.) Figures are printed, never asserted on
//! time; the sweep itself fails on an invalid plan or Best longer than HEFT.

use netgpt_cmp::sched::bench::{bench, BenchConfig};

#[test]
#[ignore = "benchmark: run with --release -- --ignored --nocapture"]
fn sched_bench_report() {
    let seed = std::env::var("NETGPT_SCHED_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let report = bench(&BenchConfig {
        seed,
        ..BenchConfig::default()
    })
    .unwrap();
    print!("{report}");
}
