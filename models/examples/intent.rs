//! Network intent inference: data generation, fine-tuning, evaluation and single queries.
//!
//! ```text
//! cargo run -p netgpt-models --example intent -- gen-data [DIR]            # models/data
//! cargo run -p netgpt-models --example intent -- train [STEPS] [BATCH] [LR] [OUT]
//! cargo run -p netgpt-models --example intent -- eval                      # shipped artefacts
//! cargo run -p netgpt-models --example intent -- baselines [--errors]     # rules and majority only
//! cargo run -p netgpt-models --example intent -- infer "10G from Access 1 to Cloud 2"
//! cargo run -p netgpt-models --example intent -- rules "10G from Access 1 to Cloud 2"
//! ```

use std::path::{Path, PathBuf};

use candle_core::Device;
use netgpt_models::analytics::intent;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("models/ has a parent")
        .to_path_buf()
}

fn run(args: &[String]) -> Result<(), String> {
    let arg = |i: usize| args.get(i).map(String::as_str);
    let e = |e: netgpt_models::Error| e.to_string();
    match arg(0) {
        Some("gen-data") => {
            let dir = arg(1)
                .map(PathBuf::from)
                .unwrap_or_else(|| root().join("models/data"));
            let (t, h) = intent::write_datasets(&dir, intent::SEED).map_err(e)?;
            println!(
                "wrote {t} training and {h} held-out pairs to {}",
                dir.display()
            );
        }
        Some("train") => {
            let num = |i: usize, d: f64| -> Result<f64, String> {
                arg(i).map_or(Ok(d), |s| {
                    s.parse().map_err(|_| format!("not a number: {s}"))
                })
            };
            let def = intent::TrainOptions::default();
            let train = intent::TrainOptions {
                steps: num(1, def.steps as f64)? as usize,
                batch_size: num(2, def.batch_size as f64)? as usize,
                lr: num(3, def.lr)?,
                ..def
            };
            let out = arg(4)
                .map(PathBuf::from)
                .unwrap_or_else(|| root().join("models").join(intent::ARTEFACT_DIR));
            let opts = intent::ReproduceOptions {
                root: root(),
                out,
                train,
            };
            let report = intent::reproduce(&opts, &mut |s, l| eprintln!("step {s}: loss {l:.4}"))
                .map_err(e)?;
            println!("{}", report.to_markdown());
        }
        Some("eval") => {
            let report = intent::evaluate_shipped(&root()).map_err(e)?;
            println!("{}", report.to_markdown());
        }
        Some("baselines") => {
            let data = root().join("models/data");
            let t = intent::read_jsonl(&data.join(intent::TRAIN_FILE)).map_err(e)?;
            let h = intent::read_jsonl(&data.join(intent::HELDOUT_FILE)).map_err(e)?;
            let report = intent::evaluate(&t, &h, None, Default::default()).map_err(e)?;
            println!("{}", report.to_markdown());
            if arg(1) == Some("--errors") {
                for p in &h {
                    let pred = intent::rule_based(&p.text);
                    if pred != intent::parse_keywords(&p.keywords) {
                        println!(
                            "{}\n  gold {}\n  rule {}",
                            p.text,
                            p.keywords,
                            intent::format_keywords(&pred)
                        );
                    }
                }
            }
        }
        Some("infer") => {
            let text = arg(1).ok_or("usage: infer TEXT")?;
            let m = intent::IntentModel::load(&root().join("models"), &Device::Cpu).map_err(e)?;
            let r = m.infer(text).map_err(e)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?
            );
        }
        Some("rules") => {
            let text = arg(1).ok_or("usage: rules TEXT")?;
            println!("{}", intent::format_keywords(&intent::rule_based(text)));
        }
        _ => return Err("usage: intent gen-data|train|eval|infer|rules ...".into()),
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(msg) = run(&args) {
        eprintln!("intent: {msg}");
        std::process::exit(1);
    }
}
