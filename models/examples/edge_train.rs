//! Trains the edge model exactly like `netgpt train-edge` (same library call), for machines
//! where only this crate builds: `cargo run --release -p netgpt-models --example edge_train
//! -- SEED STEPS OUT EVAL_GEN`; `-- gen-data` like `netgpt gen-data`; `-- eval
//! [ADAPTER_DIR|- [SITE]]` like `netgpt eval-edge`.

use std::path::PathBuf;
use std::time::Instant;

use netgpt_models::data::{pairs, profiles};
use netgpt_models::edge::{self, EdgeTrainOptions};

fn main() -> netgpt_models::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("eval") {
        // `-- eval [ADAPTER_DIR [SITE]]`, like `netgpt eval-edge`.
        let m = edge::EdgeModel::load(
            std::path::Path::new("models/edge"),
            &candle_core::Device::Cpu,
        )?;
        let mut held = pairs::read_jsonl(std::path::Path::new("models/data/pairs_heldout.jsonl"))?;
        let adapter = args.get(2).filter(|a| a.as_str() != "-");
        if let Some(dir) = adapter {
            m.load_adapter("adapter", std::path::Path::new(dir))?;
        }
        if let Some(site) = args.get(3) {
            held.retain(|p| &p.site == site);
        }
        let r = edge::evaluate(
            &m,
            &held,
            &profiles::builtin(),
            400,
            adapter.map(|_| "adapter"),
        )?;
        println!("{}", serde_json::to_string_pretty(&r).expect("json"));
        return Ok(());
    }
    if args.get(1).map(String::as_str) == Some("gen-data") {
        let (t, h) = netgpt_models::data::write_all(std::path::Path::new("models/data"), 4000, 42)?;
        println!("wrote models/data: {t} train / {h} held-out pairs");
        return Ok(());
    }
    let seed = args.get(1).map(|s| s.parse().expect("seed")).unwrap_or(42);
    let steps = args
        .get(2)
        .map(|s| s.parse().expect("steps"))
        .unwrap_or(EdgeTrainOptions::default().steps);
    let out = PathBuf::from(args.get(3).cloned().unwrap_or_else(|| "models/edge".into()));
    let eval_gen = args
        .get(4)
        .map(|s| s.parse().expect("eval_gen"))
        .unwrap_or(400);
    let data = PathBuf::from("models/data");
    let train = pairs::read_jsonl(&data.join(pairs::TRAIN_FILE))?;
    let held = pairs::read_jsonl(&data.join(pairs::HELDOUT_FILE))?;
    let opts = EdgeTrainOptions {
        seed,
        steps,
        ..Default::default()
    };
    eprintln!("training on {} pairs: {opts:?}", train.len());
    let start = Instant::now();
    let s = edge::train_edge_to_dir(
        &train,
        &held,
        &profiles::builtin(),
        &opts,
        &out,
        eval_gen,
        &mut |step, loss| {
            eprintln!(
                "step {step:>5}  loss {loss:.4}  {:.0}s",
                start.elapsed().as_secs_f64()
            );
        },
    )?;
    println!(
        "{}",
        serde_json::to_string_pretty(&s.heldout).expect("json")
    );
    Ok(())
}
