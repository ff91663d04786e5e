//! The real cloud model (SmolLM2-135M-Instruct GGUF): loads, answers sensibly, and batched
//! decoding gives the same greedy tokens as one-by-one. Skipped when the GGUF is not cached.

mod support;

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

/// The Hugging Face loader (safetensors + config.json, half-split RoPE) gives the same
/// predictions as the GGUF loader (interleaved RoPE) on the same weights: the GGUF tensors
/// are written out in Hugging Face layout (q/k rows un-permuted) and loaded back.
#[test]
fn hf_safetensors_loader_agrees_with_gguf_loader() {
    use candle_core::{Device, Tensor};
    use netgpt_models::generation::CausalLm;
    use netgpt_models::gguf::Gguf;
    use netgpt_models::llama::Llama;

    let Some(path) = fetch::cached_cloud_model() else {
        eprintln!("SKIPPED: cloud model not cached");
        return;
    };
    let dev = Device::Cpu;
    let mut g = Gguf::open(&path).unwrap();
    let heads = g.get_u32("llama.attention.head_count").unwrap() as usize;
    let kv_heads = g.get_u32("llama.attention.head_count_kv").unwrap() as usize;
    let layers = g.get_u32("llama.block_count").unwrap() as usize;
    let mut get = |n: &str| g.tensor(n, &dev).unwrap().dequantize(&dev).unwrap();
    // llama.cpp's converter permutes q/k rows for interleaved RoPE; undo it.
    let unpermute = |w: Tensor, nh: usize| {
        let (o, i) = w.dims2().unwrap();
        w.reshape((nh, o / nh / 2, 2, i))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .reshape((o, i))
            .unwrap()
    };
    let embed = get("token_embd.weight");
    let (vocab, d) = embed.dims2().unwrap();
    let mut ts = std::collections::HashMap::new();
    ts.insert("model.embed_tokens.weight".to_string(), embed);
    ts.insert("model.norm.weight".to_string(), get("output_norm.weight"));
    let mut ffn = 0;
    for i in 0..layers {
        let p = format!("model.layers.{i}");
        let b = format!("blk.{i}");
        ts.insert(
            format!("{p}.self_attn.q_proj.weight"),
            unpermute(get(&format!("{b}.attn_q.weight")), heads),
        );
        ts.insert(
            format!("{p}.self_attn.k_proj.weight"),
            unpermute(get(&format!("{b}.attn_k.weight")), kv_heads),
        );
        ts.insert(
            format!("{p}.self_attn.v_proj.weight"),
            get(&format!("{b}.attn_v.weight")),
        );
        ts.insert(
            format!("{p}.self_attn.o_proj.weight"),
            get(&format!("{b}.attn_output.weight")),
        );
        let gate = get(&format!("{b}.ffn_gate.weight"));
        ffn = gate.dims2().unwrap().0;
        ts.insert(format!("{p}.mlp.gate_proj.weight"), gate);
        ts.insert(
            format!("{p}.mlp.up_proj.weight"),
            get(&format!("{b}.ffn_up.weight")),
        );
        ts.insert(
            format!("{p}.mlp.down_proj.weight"),
            get(&format!("{b}.ffn_down.weight")),
        );
        ts.insert(
            format!("{p}.input_layernorm.weight"),
            get(&format!("{b}.attn_norm.weight")),
        );
        ts.insert(
            format!("{p}.post_attention_layernorm.weight"),
            get(&format!("{b}.ffn_norm.weight")),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    candle_core::safetensors::save(&ts, dir.path().join("model.safetensors")).unwrap();
    let config = serde_json::json!({
        "vocab_size": vocab, "hidden_size": d, "intermediate_size": ffn,
        "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv_heads,
        "rms_norm_eps": g.get_f32("llama.attention.layer_norm_rms_epsilon").unwrap(),
        "rope_theta": g.get_f32("llama.rope.freq_base").unwrap(),
        "max_position_embeddings": 2048, "tie_word_embeddings": true
    });
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();

    let mut hf = Llama::from_hf_dir(dir.path(), &dev, None).unwrap();
    let mut gg = Llama::from_gguf(&path, &dev, None).unwrap();
    let tok = netgpt_models::tokenizer::from_gguf_file(&path).unwrap();
    let ids = netgpt_models::tokenizer::encode(
        &tok,
        "<|im_start|>user\nWhich planet is known as the red planet?<|im_end|>\n<|im_start|>assistant\n",
    )
    .unwrap();
    let a = hf.forward(&ids, 0).unwrap();
    let b = gg.forward(&ids, 0).unwrap();
    let (a_top, b_top) = (
        a.argmax(0).unwrap().to_scalar::<u32>().unwrap(),
        b.argmax(0).unwrap().to_scalar::<u32>().unwrap(),
    );
    let cos = support::cosine_t(&a, &b);
    eprintln!("top-1 hf {a_top} gguf {b_top}, cosine {cos}");
    assert_eq!(a_top, b_top);
    assert!(cos > 0.99, "logits cosine {cos}");
}
