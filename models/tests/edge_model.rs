//! The shipped edge model (`models/edge`): loads, is small, completes concise prompts with
//! the right site's facts, and serves a LoRA adapter per request over the same base.

use std::path::PathBuf;

use candle_core::Device;
use netgpt_models::data::pairs::check_completion;
use netgpt_models::data::profiles;
use netgpt_models::edge::EdgeModel;
use netgpt_models::lora::{LoraAdapter, LoraConfig};

fn edge_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("edge")
}

#[test]
fn shipped_model_is_small_and_gpt2_shaped() {
    let bytes = std::fs::metadata(edge_dir().join("model.safetensors"))
        .unwrap()
        .len();
    assert!(bytes < 8 << 20, "{bytes} bytes");
    let m = EdgeModel::load(&edge_dir(), &Device::Cpu).unwrap();
    let c = m.model().config();
    assert_eq!(
        (c.n_layer, c.n_embd, c.n_head, c.n_positions),
        (4, 128, 4, 256)
    );
    assert_eq!(c.vocab_size, m.tokenizer().get_vocab_size(true));
}

#[test]
fn completes_each_site_with_its_own_facts() {
    let p = profiles::builtin();
    let m = EdgeModel::load(&edge_dir(), &Device::Cpu).unwrap();
    for (site, concise, category) in [
        ("edge-london", "Recommend libraries", "libraries"),
        ("edge-paris", "Recommend libraries", "libraries"),
        ("edge-newyork", "Where can I see a doctor", "hospitals"),
        ("edge-hangzhou", "find a park to run", "parks"),
    ] {
        let text = m.complete(site, concise, None).unwrap();
        let c = check_completion(&p, site, category, &text);
        assert!(c.correct(), "{site} {concise:?} -> {text:?} ({c:?})");
        assert!(text.contains(&p[site].city), "{text}");
    }
    assert!(m.complete("edge-london", "  ", None).is_err());
}

#[test]
fn adapters_are_chosen_per_request_over_one_base() {
    let m = EdgeModel::load(&edge_dir(), &Device::Cpu).unwrap();
    let base = m
        .complete("edge-london", "Recommend libraries", None)
        .unwrap();
    // A fresh adapter (B = 0) must not change the output.
    let (fresh, _) =
        LoraAdapter::new_gpt2(m.model().config(), LoraConfig::default(), 1, &Device::Cpu).unwrap();
    m.adapters().insert("fresh", fresh);
    assert_eq!(
        m.complete("edge-london", "Recommend libraries", Some("fresh"))
            .unwrap(),
        base
    );
    assert!(m
        .complete("edge-london", "Recommend libraries", Some("missing"))
        .is_err());
}

#[test]
fn edge_model_can_be_shared_across_request_tasks() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<EdgeModel>();
    let m = std::sync::Arc::new(EdgeModel::load(&edge_dir(), &Device::Cpu).unwrap());
    let handles: Vec<_> = ["edge-london", "edge-paris"]
        .into_iter()
        .map(|site| {
            let m = m.clone();
            std::thread::spawn(move || m.complete(site, "Recommend libraries", None).unwrap())
        })
        .collect();
    let out: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        out[0].contains("London") && out[1].contains("Paris"),
        "{out:?}"
    );
}

#[test]
fn batched_completions_equal_one_at_a_time() {
    let m = EdgeModel::load(&edge_dir(), &Device::Cpu).unwrap();
    m.load_adapter("edge-london", &edge_dir().join("adapters/edge-london"))
        .unwrap();
    // Different sites and prompt lengths: caches of different lengths are padded and masked.
    let items = [
        ("edge-london", "Recommend libraries"),
        ("edge-paris", "Where can I see a doctor tonight with kids?"),
        ("edge-newyork", "museums"),
        ("edge-hangzhou", "find a park to run"),
        ("edge-london", "   "),
    ];
    for adapter in [None, Some("edge-london")] {
        let batch = m.complete_batch(&items, adapter).unwrap();
        assert_eq!(batch.len(), items.len());
        for ((site, concise), got) in items.iter().zip(&batch) {
            match m.complete(site, concise, adapter) {
                Ok(solo) => assert_eq!(got.as_ref().unwrap(), &solo, "{site} {concise:?}"),
                Err(_) => assert!(got.is_err(), "{concise:?} should fail alone and in a batch"),
            }
        }
    }
    assert!(m.complete_batch(&items[..1], Some("missing")).is_err());
}
