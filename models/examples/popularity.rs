//! Content popularity prediction: reproduce the shipped artefacts, evaluate them, or write
//! the generated trace as a Netflix-layout CSV.
//!
//! ```text
//! cargo run -p netgpt-models --example popularity -- eval
//! cargo run -p netgpt-models --example popularity -- reproduce [--out DIR] [--gpt-steps N] [--seed S]
//! cargo run -p netgpt-models --example popularity -- write-csv PATH
//! ```
//! Run from the repository root (paths default to `models/...`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use netgpt_models::analytics::popularity::{self, PopularitySettings, ReproduceOptions};
use netgpt_models::analytics::trace;

fn run(args: &[String]) -> Result<(), String> {
    let root = Path::new(".");
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let num = |name: &str| -> Result<Option<u64>, String> {
        flag(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| format!("{name} wants a number, got '{v}'"))
            })
            .transpose()
    };
    match args.first().map(String::as_str) {
        Some("eval") => {
            let r = popularity::evaluate_shipped(root).map_err(|e| e.to_string())?;
            println!("{}", r.to_markdown());
        }
        Some("reproduce") => {
            let mut settings = PopularitySettings::default();
            if let Some(s) = num("--gpt-steps")? {
                settings.gpt_steps = s as usize;
            }
            if let Some(s) = num("--seed")? {
                settings.seed = s;
                settings.trace.seed = s;
            }
            let out = flag("--out")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("models").join(popularity::ARTEFACT_DIR));
            let opts = ReproduceOptions {
                models_dir: root.join("models"),
                out,
                settings,
            };
            let r = popularity::reproduce(&opts, &mut |l| eprintln!("{l}"))
                .map_err(|e| e.to_string())?;
            println!("{}", r.to_markdown());
        }
        Some("stats") => {
            // Label balance and simple predictors, to check the generator's tuning.
            let settings = PopularitySettings::default();
            let events = trace::generate(&settings.trace).map_err(|e| e.to_string())?;
            let ds = popularity::build_dataset(&events, settings.top_n, settings.history)
                .map_err(|e| e.to_string())?;
            let (train, test) = popularity::split_chronological(&ds, settings.test_frac);
            let mut freq = std::collections::HashMap::new();
            for s in &train {
                let key = (s.item, popularity::slot_of(s.start), s.history.last().copied());
                let e = freq.entry(key).or_insert((0usize, 0usize));
                e.0 += s.label as usize;
                e.1 += 1;
            }
            let acc = |v: &[popularity::Sample]| {
                v.iter()
                    .filter(|s| {
                        let key = (s.item, popularity::slot_of(s.start), s.history.last().copied());
                        let (p, n) = freq.get(&key).copied().unwrap_or((0, 1));
                        (2 * p > n) == s.label
                    })
                    .count() as f64
                    / v.len() as f64
            };
            let prev = |v: &[popularity::Sample]| {
                v.iter().filter(|s| s.history.last() == Some(&s.label)).count() as f64 / v.len() as f64
            };
            let pos = |v: &[popularity::Sample]| v.iter().filter(|s| s.label).count() as f64 / v.len() as f64;
            println!("events {} intervals {} train {} test {}", events.len(), ds.intervals, train.len(), test.len());
            println!("positive rate train {:.3} test {:.3}", pos(&train), pos(&test));
            println!("previous-interval acc train {:.3} test {:.3}", prev(&train), prev(&test));
            println!("item x slot x last lookup acc train {:.3} test {:.3}", acc(&train), acc(&test));
            for (i, it) in ds.items.iter().enumerate() {
                let r: Vec<&popularity::Sample> = ds.samples.iter().filter(|s| s.item == i).collect();
                let p = r.iter().filter(|s| s.label).count() as f64 / r.len() as f64;
                println!("{i:2} {:>5} views  pos {p:.2}  {}", it.views, it.title);
            }
        }
        Some("write-csv") => {
            let path = args.get(1).ok_or("write-csv needs a PATH")?;
            let events =
                trace::generate(&PopularitySettings::default().trace).map_err(|e| e.to_string())?;
            trace::write_csv(Path::new(path), &events).map_err(|e| e.to_string())?;
            println!("{} events written to {path}", events.len());
        }
        _ => return Err("usage: popularity eval | reproduce [--out DIR] [--gpt-steps N] [--seed S] | write-csv PATH".into()),
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("popularity: {e}");
            ExitCode::FAILURE
        }
    }
}
