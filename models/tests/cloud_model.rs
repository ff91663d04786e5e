//! The real cloud model (SmolLM2-135M-Instruct GGUF): loads, answers sensibly, and batched
//! decoding gives the same greedy tokens as one-by-one. Skipped when the GGUF is not cached.

use netgpt_models::chat::{ChatMessage, CloudLlm, Role};
use netgpt_models::fetch;
use netgpt_models::generation::{FinishReason, GenerationConfig};

fn load() -> Option<CloudLlm> {
    let Some(path) = fetch::cached_cloud_model() else {
        eprintln!(
            "SKIPPED: cloud model not cached at {}",
            fetch::cloud_model_path().display()
        );
        return None;
    };
    Some(CloudLlm::from_gguf(path).expect("load cloud gguf"))
}

#[test]
fn cloud_model_answers_a_factual_question_and_stops_at_im_end() {
    let Some(mut llm) = load() else { return };
    let msgs = [ChatMessage::new(
        Role::User,
        "What is the capital of France? Answer in one word.",
    )];
    let cfg = GenerationConfig {
        max_new_tokens: 24,
        ..GenerationConfig::default()
    };
    let mut streamed = String::new();
    let g = llm
        .chat(&msgs, &cfg, &mut |p| streamed.push_str(p))
        .unwrap();
    eprintln!("answer: {:?} usage: {:?}", g.text, g.usage);
    assert!(g.text.contains("Paris"), "unexpected answer {:?}", g.text);
    assert_eq!(
        g.finish_reason,
        FinishReason::Stop,
        "should end its turn with <|im_end|>"
    );
    assert!(!g.text.contains("<|im_end|>"));
    assert_eq!(streamed, g.text);
}

#[test]
fn cloud_batched_decode_matches_one_by_one() {
    let Some(mut llm) = load() else { return };
    let convs: Vec<Vec<ChatMessage>> = ["Name a color.", "Count to five.", "Say hello in French."]
        .iter()
        .map(|q| vec![ChatMessage::new(Role::User, *q)])
        .collect();
    let cfg = GenerationConfig {
        max_new_tokens: 12,
        ..GenerationConfig::default()
    };
    let batched = llm.chat_batch(&convs, &cfg, &mut |_, _| {}).unwrap();
    for (c, b) in convs.iter().zip(&batched) {
        let single = llm.chat(c, &cfg, &mut |_| {}).unwrap();
        assert_eq!(b.tokens, single.tokens, "{:?}", c[0].content);
    }
}
