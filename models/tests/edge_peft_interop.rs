//! Our PEFT adapter files mean to Hugging Face `peft` what they mean to us: the shipped
//! London adapter over the shipped edge model gives the same last-position logits here as
//! `PeftModel` over `GPT2LMHeadModel` did (fixture by `models/scripts/make_peft_fixture.py`).

use std::path::PathBuf;

use candle_core::Device;
use netgpt_models::edge::EdgeModel;
use netgpt_models::generation::CausalLm;

fn max_abs_diff(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn shipped_adapter_matches_hugging_face_peft() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("tests/fixtures/peft_edge_london.json")).unwrap(),
    )
    .unwrap();
    let ids: Vec<u32> = serde_json::from_value(fixture["input_ids"].clone()).unwrap();
    let base_ref: Vec<f64> = serde_json::from_value(fixture["base_last_logits"].clone()).unwrap();
    let lora_ref: Vec<f64> =
        serde_json::from_value(fixture["adapter_last_logits"].clone()).unwrap();

    let m = EdgeModel::load(&root.join("edge"), &Device::Cpu).unwrap();
    m.load_adapter("edge-london", &root.join("edge/adapters/edge-london"))
        .unwrap();
    let last = |name: Option<&str>| -> Vec<f32> {
        let mut lm = m.adapters().lm(name).unwrap();
        lm.forward(&ids, 0).unwrap().to_vec1::<f32>().unwrap()
    };
    let base = last(None);
    let lora = last(Some("edge-london"));
    assert!(
        max_abs_diff(&base, &base_ref) < 1e-3,
        "base differs from transformers"
    );
    assert!(
        max_abs_diff(&lora, &lora_ref) < 1e-3,
        "adapter differs from peft"
    );
    // The comparison means something only if the adapter moves the logits.
    assert!(max_abs_diff(&lora, &base_ref) > 0.1);
}
