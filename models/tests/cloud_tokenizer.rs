//! The tokenizer built from the cloud GGUF's metadata gives the same ids as the reference
//! (Hugging Face transformers on the same file, `models/scripts/make_cloud_token_fixture.py`).

use netgpt_models::{fetch, tokenizer};

#[derive(serde::Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
}

fn fixture() -> Fixture {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/cloud_token_ids.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("fixture json")
}

#[test]
fn gguf_tokenizer_matches_reference_ids() {
    let Some(gguf) = fetch::cached_cloud_model() else {
        eprintln!(
            "SKIPPED: cloud model not cached at {} (run `netgpt models fetch`)",
            fetch::cloud_model_path().display()
        );
        return;
    };
    let tok = tokenizer::from_gguf_file(&gguf).expect("tokenizer from gguf");
    let fx = fixture();
    assert!(fx.cases.len() >= 15, "fixture too small");
    let mut bad = Vec::new();
    for c in &fx.cases {
        let ids = tokenizer::encode(&tok, &c.text).expect("encode");
        if ids != c.ids {
            bad.push(format!(
                "{:?}\n   ours {:?}\n   ref  {:?}",
                c.text, ids, c.ids
            ));
        }
        // Byte-level BPE round-trips any text.
        assert_eq!(tokenizer::decode(&tok, &ids).expect("decode"), c.text);
    }
    assert!(
        bad.is_empty(),
        "token ids differ from the reference:\n{}",
        bad.join("\n")
    );
}

#[test]
fn special_tokens_are_single_ids_and_digits_split() {
    let Some(gguf) = fetch::cached_cloud_model() else {
        eprintln!("SKIPPED: cloud model not cached");
        return;
    };
    let tok = tokenizer::from_gguf_file(&gguf).expect("tokenizer");
    let start = tokenizer::token_id(&tok, "<|im_start|>").expect("im_start");
    let end = tokenizer::token_id(&tok, "<|im_end|>").expect("im_end");
    let ids = tokenizer::encode(&tok, "<|im_start|>user\nhi<|im_end|>").unwrap();
    assert_eq!(ids.first(), Some(&start));
    assert_eq!(ids.last(), Some(&end));
    assert_eq!(tokenizer::encode(&tok, "12345").unwrap().len(), 5);
}
