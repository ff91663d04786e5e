//! Hostile GGUF files for our readers: `gguf::Gguf::open` (candle's header parser as we call
//! it) and its typed getters, `tokenizer::from_gguf`, `LlamaConfig::from_gguf`,
//! `footprint::llama_config_from_gguf` / `gguf_split_bytes` and `Llama::from_gguf`.
//!
//! A tiny but complete LLaMA GGUF (F32 tensors, byte-level BPE tokenizer) is written with
//! candle's `gguf_file::write`, then truncated, bit-flipped and given huge counts and
//! lengths: every reader returns `Err` (or `Ok` with sane values), never panics, never tries
//! to allocate what the file cannot hold. Valid files round-trip.

mod support;

use std::io::Cursor;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use netgpt_models::footprint;
use netgpt_models::gguf::Gguf;
use netgpt_models::llama::{Llama, LlamaConfig};
use netgpt_models::tokenizer;
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

fn cfg(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// What a tiny model file holds.
#[derive(Debug, Clone)]
struct Spec {
    hidden: usize,
    heads: usize,
    kv_heads: usize,
    ff: usize,
    layers: usize,
    ctx: u32,
    /// Extra merged tokens after the 256 byte tokens.
    merges: Vec<(u8, u8)>,
    tied: bool,
}

fn small_spec() -> Spec {
    Spec {
        hidden: 8,
        heads: 2,
        kv_heads: 1,
        ff: 16,
        layers: 1,
        ctx: 32,
        merges: vec![(b'h', b'e'), (b'l', b'l'), (b' ', b't')],
        tied: true,
    }
}

fn tokens_of(spec: &Spec) -> (Vec<String>, Vec<String>) {
    let bc = support::byte_chars();
    let mut tokens: Vec<String> = bc.iter().map(|c| c.to_string()).collect();
    let mut merges = Vec::new();
    for (a, b) in &spec.merges {
        let t = format!("{}{}", bc[*a as usize], bc[*b as usize]);
        if !tokens.contains(&t) {
            tokens.push(t);
            merges.push(format!("{} {}", bc[*a as usize], bc[*b as usize]));
        }
    }
    tokens.push("<|endoftext|>".into());
    (tokens, merges)
}

/// Serialises a complete tiny LLaMA GGUF for `spec`.
fn write_model(spec: &Spec) -> Vec<u8> {
    let dev = Device::Cpu;
    let (tokens, merges) = tokens_of(spec);
    let vocab = tokens.len();
    let types: Vec<Value> = (0..vocab)
        .map(|i| Value::I32(if i + 1 == vocab { 3 } else { 1 }))
        .collect();
    let str_arr = |v: &[String]| Value::Array(v.iter().map(|s| Value::String(s.clone())).collect());
    let md: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String("llama".into())),
        (
            "llama.embedding_length".into(),
            Value::U32(spec.hidden as u32),
        ),
        (
            "llama.feed_forward_length".into(),
            Value::U32(spec.ff as u32),
        ),
        ("llama.block_count".into(), Value::U32(spec.layers as u32)),
        (
            "llama.attention.head_count".into(),
            Value::U32(spec.heads as u32),
        ),
        (
            "llama.attention.head_count_kv".into(),
            Value::U32(spec.kv_heads as u32),
        ),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            Value::F32(1e-5),
        ),
        ("llama.rope.freq_base".into(), Value::F32(10_000.0)),
        ("llama.context_length".into(), Value::U32(spec.ctx)),
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.tokens".into(), str_arr(&tokens)),
        ("tokenizer.ggml.merges".into(), str_arr(&merges)),
        ("tokenizer.ggml.token_type".into(), Value::Array(types)),
    ];
    let hd = spec.hidden / spec.heads;
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        ("token_embd.weight".into(), vec![vocab, spec.hidden]),
        ("output_norm.weight".into(), vec![spec.hidden]),
    ];
    if !spec.tied {
        shapes.push(("output.weight".into(), vec![vocab, spec.hidden]));
    }
    for i in 0..spec.layers {
        for (n, s) in [
            ("attn_q", vec![spec.heads * hd, spec.hidden]),
            ("attn_k", vec![spec.kv_heads * hd, spec.hidden]),
            ("attn_v", vec![spec.kv_heads * hd, spec.hidden]),
            ("attn_output", vec![spec.hidden, spec.heads * hd]),
            ("ffn_gate", vec![spec.ff, spec.hidden]),
            ("ffn_up", vec![spec.ff, spec.hidden]),
            ("ffn_down", vec![spec.hidden, spec.ff]),
            ("attn_norm", vec![spec.hidden]),
            ("ffn_norm", vec![spec.hidden]),
        ] {
            shapes.push((format!("blk.{i}.{n}.weight"), s));
        }
    }
    let tensors: Vec<(String, QTensor)> = shapes
        .into_iter()
        .enumerate()
        .map(|(k, (n, s))| {
            let len: usize = s.iter().product();
            let data: Vec<f32> = (0..len)
                .map(|j| ((j * 7 + k) % 13) as f32 / 13.0 - 0.5)
                .collect();
            let t = Tensor::from_vec(data, s, &dev).unwrap();
            (n, QTensor::quantize(&t, GgmlDType::F32).unwrap())
        })
        .collect();
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &md_refs, &t_refs).unwrap();
    out.into_inner()
}

fn to_file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), bytes).unwrap();
    f
}

/// A config taken from a file must be usable: the arithmetic every model does on it holds.
fn check_config(c: &LlamaConfig) {
    assert!(c.num_attention_heads > 0, "{c:?}");
    assert!(c.hidden_size.is_multiple_of(c.num_attention_heads), "{c:?}");
    assert!(
        c.kv_heads() > 0 && c.num_attention_heads.is_multiple_of(c.kv_heads()),
        "{c:?}"
    );
    let _ = c.head_dim();
}

/// Runs every reader on the file; panics only if a reader panics or answers nonsense.
fn read_everything(bytes: &[u8], load_model: bool) {
    let f = to_file(bytes);
    let path = f.path();
    if let Ok(mut g) = Gguf::open(path) {
        for key in [
            "general.architecture",
            "llama.block_count",
            "llama.context_length",
            "llama.rope.freq_base",
            "tokenizer.ggml.tokens",
            "tokenizer.ggml.merges",
            "tokenizer.ggml.token_type",
            "no.such.key",
        ] {
            let _ = g.get(key);
            let _ = g.get_u32(key);
            let _ = g.get_f32(key);
            let _ = g.get_str(key);
            let _ = g.get_str_array(key);
            let _ = g.get_i32_array(key);
        }
        let names: Vec<String> = g.content.tensor_infos.keys().cloned().collect();
        for n in names {
            let _ = g.tensor(&n, &Device::Cpu);
        }
        if let Ok(c) = LlamaConfig::from_gguf(&g, 16) {
            check_config(&c);
        }
        if let Ok(t) = tokenizer::from_gguf(&g) {
            // Ids index the token list (duplicate tokens leave holes in the map).
            let vocab = g.get_str_array("tokenizer.ggml.tokens").unwrap().len() as u32;
            if let Ok(ids) = tokenizer::encode(&t, "hello there <|endoftext|>") {
                assert!(ids.iter().all(|&i| i < vocab), "{ids:?} vs {vocab}");
            }
        }
    }
    if let Ok(c) = footprint::llama_config_from_gguf(path) {
        check_config(&c);
    }
    let _ = footprint::gguf_split_bytes(path, 1);
    let _ = tokenizer::from_gguf_file(path);
    if load_model {
        if let Ok(m) = Llama::from_gguf(path, &Device::Cpu, None) {
            check_config(m.config());
        }
    }
}

/// Mutations of a valid file.
#[derive(Debug, Clone)]
enum Mutation {
    Truncate(prop::sample::Index),
    Flip(Vec<(prop::sample::Index, u8)>),
    /// Overwrites 8 bytes at a position with a hostile little-endian number.
    Inflate(prop::sample::Index, u64),
    /// Overwrites 4 bytes (a u32 field: value types, dims count, dtype).
    Inflate32(prop::sample::Index, u32),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let huge = prop_oneof![
        Just(u64::MAX),
        Just(u64::MAX / 2),
        Just(1u64 << 40),
        Just(1u64 << 32),
        Just(u32::MAX as u64),
        Just(0u64),
        any::<u64>(),
    ];
    let huge32 = prop_oneof![Just(u32::MAX), Just(0u32), 0u32..64, any::<u32>()];
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..8)
            .prop_map(Mutation::Flip),
        (any::<prop::sample::Index>(), huge).prop_map(|(i, v)| Mutation::Inflate(i, v)),
        (any::<prop::sample::Index>(), huge32).prop_map(|(i, v)| Mutation::Inflate32(i, v)),
    ]
}

fn apply(valid: &[u8], m: &Mutation) -> Vec<u8> {
    let mut b = valid.to_vec();
    match m {
        Mutation::Truncate(i) => b.truncate(i.index(valid.len())),
        Mutation::Flip(flips) => {
            for (i, x) in flips {
                let at = i.index(b.len());
                b[at] ^= x;
            }
        }
        Mutation::Inflate(i, v) => {
            let at = i.index(b.len() - 8);
            b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        Mutation::Inflate32(i, v) => {
            let at = i.index(b.len() - 4);
            b[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }
    }
    b
}

/// The header part of the file (metadata and tensor index), where mutations matter most.
fn header_len(valid: &[u8]) -> usize {
    let f = to_file(valid);
    Gguf::open(f.path()).unwrap().content.tensor_data_offset as usize
}

proptest! {
    #![proptest_config(cfg(256))]

    /// Arbitrary bytes (with and without the GGUF magic) are an error, never a panic.
    #[test]
    fn arbitrary_bytes_are_an_error(magic in any::<bool>(), version in 0u32..5, rest in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = Vec::new();
        if magic {
            bytes.extend_from_slice(b"GGUF");
            bytes.extend_from_slice(&version.to_le_bytes());
        }
        bytes.extend_from_slice(&rest);
        read_everything(&bytes, true);
    }

    /// Mutations anywhere in a valid file: every reader answers, none panics.
    #[test]
    fn mutated_file_never_panics(m in mutation()) {
        let valid = write_model(&small_spec());
        let bad = apply(&valid, &m);
        read_everything(&bad, true);
    }

    /// Mutations confined to the header (metadata, tensor index).
    #[test]
    fn mutated_header_never_panics(m in mutation()) {
        let valid = write_model(&small_spec());
        let h = header_len(&valid);
        let mut head = apply(&valid[..h], &m);
        head.extend_from_slice(&valid[h..]);
        read_everything(&head, true);
    }

    /// Any strict prefix of a valid file is an error for the header readers.
    #[test]
    fn truncated_header_is_an_error(at in any::<prop::sample::Index>()) {
        let valid = write_model(&small_spec());
        let h = header_len(&valid);
        // Cut before the end of the last tensor info (the tail is alignment padding).
        let cut = at.index(h.saturating_sub(32));
        let f = to_file(&valid[..cut]);
        prop_assert!(Gguf::open(f.path()).is_err());
        prop_assert!(footprint::llama_config_from_gguf(f.path()).is_err());
        prop_assert!(tokenizer::from_gguf_file(f.path()).is_err());
    }
}

fn spec_strategy() -> impl Strategy<Value = Spec> {
    (
        1usize..4,
        1usize..4,
        1usize..3,
        1usize..3,
        1u32..64,
        proptest::collection::vec((any::<u8>(), any::<u8>()), 0..12),
        any::<bool>(),
    )
        .prop_flat_map(|(hd, kvh, group, layers, ctx, merges, tied)| {
            let heads = kvh * group;
            Just(Spec {
                hidden: heads * hd * 2,
                heads,
                kv_heads: kvh,
                ff: 4 * hd,
                layers,
                ctx: ctx * 2,
                merges,
                tied,
            })
        })
}

proptest! {
    #![proptest_config(cfg(48))]

    /// Valid generated files parse to exactly what was written.
    #[test]
    fn valid_files_round_trip(spec in spec_strategy()) {
        let bytes = write_model(&spec);
        let f = to_file(&bytes);
        let (tokens, merges) = tokens_of(&spec);
        let c = footprint::llama_config_from_gguf(f.path()).unwrap();
        prop_assert_eq!(c.vocab_size, tokens.len());
        prop_assert_eq!(c.hidden_size, spec.hidden);
        prop_assert_eq!(c.intermediate_size, spec.ff);
        prop_assert_eq!(c.num_hidden_layers, spec.layers);
        prop_assert_eq!(c.num_attention_heads, spec.heads);
        prop_assert_eq!(c.kv_heads(), spec.kv_heads);
        prop_assert_eq!(c.max_position_embeddings, spec.ctx as usize);
        prop_assert_eq!(c.tie_word_embeddings, spec.tied);
        let g = Gguf::open(f.path()).unwrap();
        prop_assert_eq!(g.get_str_array("tokenizer.ggml.tokens").unwrap(), tokens.iter().map(String::as_str).collect::<Vec<_>>());
        prop_assert_eq!(g.get_str_array("tokenizer.ggml.merges").unwrap().len(), merges.len());
        let t = tokenizer::from_gguf(&g).unwrap();
        prop_assert_eq!(t.get_vocab_size(true), tokens.len());
        let text = "hello there, <|endoftext|> 123 ünïcödé";
        let ids = tokenizer::encode(&t, text).unwrap();
        prop_assert!(ids.iter().all(|&i| (i as usize) < tokens.len()));
        prop_assert_eq!(tokenizer::decode(&t, &ids).unwrap(), text);
        let m = Llama::from_gguf(f.path(), &Device::Cpu, None).unwrap();
        prop_assert_eq!(m.config().num_hidden_layers, spec.layers);
    }
}

/// Sets a u32 metadata value of the tiny model (found by its key) and returns the file.
fn with_u32(key: &str, v: u32) -> Vec<u8> {
    let mut bytes = write_model(&small_spec());
    let k = key.as_bytes();
    let at = bytes
        .windows(k.len())
        .position(|w| w == k)
        .unwrap_or_else(|| panic!("{key} not in file"));
    // key bytes, then u32 value type (4 = U32), then the value.
    let v_at = at + k.len() + 4;
    assert_eq!(&bytes[at + k.len()..v_at], &4u32.to_le_bytes());
    bytes[v_at..v_at + 4].copy_from_slice(&v.to_le_bytes());
    bytes
}

/// Hostile LLaMA hyper-parameters are errors from the config readers, not panics (division
/// by zero heads) or huge allocations (billions of layers) later on.
#[test]
fn hostile_hyper_parameters_are_errors() {
    for (key, v) in [
        ("llama.attention.head_count", 0),
        ("llama.attention.head_count", 3),
        ("llama.attention.head_count_kv", 0),
        ("llama.attention.head_count_kv", 3),
        ("llama.embedding_length", 0),
        ("llama.block_count", u32::MAX),
        ("llama.block_count", 1 << 24),
        ("llama.context_length", u32::MAX),
        ("llama.feed_forward_length", u32::MAX),
    ] {
        let bytes = with_u32(key, v);
        let f = to_file(&bytes);
        let c = footprint::llama_config_from_gguf(f.path());
        if let Ok(c) = &c {
            check_config(c);
        }
        let m = Llama::from_gguf(f.path(), &Device::Cpu, None);
        assert!(m.is_err(), "{key} = {v}: the model loaded");
        read_everything(&bytes, true);
    }
}

/// The GGUF reader bounds what a header declares by the file's size: a tensor count, a
/// string length or an array length of 2^63 is an error, not an allocation attempt.
#[test]
fn huge_declared_counts_are_errors() {
    let valid = write_model(&small_spec());
    // Offsets: magic 0..4, version 4..8, tensor count 8..16, metadata count 16..24, then the
    // first key's length 24..32.
    for (at, v) in [
        (8usize, u64::MAX),
        (8, 1 << 40),
        (16, u64::MAX),
        (16, 1 << 40),
        (24, u64::MAX),
        (24, 1 << 40),
    ] {
        let mut b = valid.clone();
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        let f = to_file(&b);
        assert!(Gguf::open(f.path()).is_err(), "field at {at} = {v}");
    }
    // The token array's length.
    let k = b"tokenizer.ggml.tokens";
    let at = valid.windows(k.len()).position(|w| w == k).unwrap() + k.len() + 4 + 4;
    for v in [u64::MAX, 1 << 40, 1 << 33] {
        let mut b = valid.clone();
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        let f = to_file(&b);
        assert!(Gguf::open(f.path()).is_err(), "token count {v}");
    }
}

/// Writes a GGUF with the given metadata and one F32 tensor per (name, shape).
fn write_custom(md: &[(&str, Value)], shapes: &[(&str, Vec<usize>)]) -> Vec<u8> {
    let tensors: Vec<(String, QTensor)> = shapes
        .iter()
        .map(|(n, s)| {
            let t = Tensor::ones(s.clone(), candle_core::DType::F32, &Device::Cpu).unwrap();
            (
                n.to_string(),
                QTensor::quantize(&t, GgmlDType::F32).unwrap(),
            )
        })
        .collect();
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &md_refs, &t_refs).unwrap();
    out.into_inner()
}

/// Regression (found by `mutated_header_never_panics`): a tensor with a zero dimension made
/// candle build a slice of f32 from a dangling byte pointer, a non-unwinding panic that
/// aborted the process. `Gguf::open` now rejects it.
#[test]
fn zero_sized_tensor_is_an_error_not_an_abort() {
    let mut b = write_custom(&[], &[("token_embd.weight", vec![2, 4])]);
    // The dims follow the name: u64 name length, name, u32 n_dims, u64 dims (innermost first).
    let k = b"token_embd.weight";
    let at = b.windows(k.len()).position(|w| w == k).unwrap() + k.len();
    assert_eq!(&b[at..at + 4], &2u32.to_le_bytes());
    b[at + 4..at + 12].copy_from_slice(&0u64.to_le_bytes());
    read_everything(&b, true);
    let f = to_file(&b);
    assert!(Gguf::open(f.path()).is_err());
    // No dimensions at all: `dims()[0]` in the config readers.
    let mut b = write_custom(&[], &[("token_embd.weight", vec![4])]);
    let at = b.windows(k.len()).position(|w| w == k).unwrap() + k.len();
    b[at..at + 4].copy_from_slice(&0u32.to_le_bytes());
    read_everything(&b, true);
    let f = to_file(&b);
    assert!(Gguf::open(f.path()).is_err());
    assert!(footprint::llama_config_from_gguf(f.path()).is_err());
}

/// Regression: `general.alignment = 0` made candle's header reader divide by zero (a panic
/// out of `Gguf::open`); it is now a format error.
#[test]
fn zero_alignment_is_an_error_not_a_panic() {
    for v in [Value::U32(0), Value::U8(0), Value::I32(0)] {
        let b = write_custom(
            &[("general.alignment", v.clone())],
            &[("token_embd.weight", vec![2, 4])],
        );
        let f = to_file(&b);
        assert!(Gguf::open(f.path()).is_err(), "{v:?}");
        read_everything(&b, true);
    }
}

/// Regression: a tensor whose shape multiplies past `usize` (candle's `elem_count`
/// overflows) or lies past the end of the file is refused when the file is opened.
#[test]
fn tensor_beyond_the_file_is_an_error() {
    let b = write_custom(&[], &[("token_embd.weight", vec![2, 4])]);
    let k = b"token_embd.weight";
    let at = b.windows(k.len()).position(|w| w == k).unwrap() + k.len() + 4;
    for (d0, d1) in [
        (u64::MAX, u64::MAX),
        (1 << 32, 1 << 32),
        (1 << 20, 4),
        (4, 3),
    ] {
        let mut m = b.clone();
        m[at..at + 8].copy_from_slice(&d0.to_le_bytes());
        m[at + 8..at + 16].copy_from_slice(&d1.to_le_bytes());
        let f = to_file(&m);
        assert!(Gguf::open(f.path()).is_err(), "{d0} x {d1}");
        read_everything(&m, true);
        assert!(footprint::gguf_split_bytes(f.path(), 1).is_err());
    }
}

/// Regression: zero attention heads loaded as a config (and a model) that divides by zero
/// at the first `head_dim()`; now a format error.
#[test]
fn zero_heads_is_an_error() {
    let f = to_file(&with_u32("llama.attention.head_count", 0));
    assert!(footprint::llama_config_from_gguf(f.path()).is_err());
    assert!(Llama::from_gguf(f.path(), &Device::Cpu, None).is_err());
}

/// The checks added to `Gguf::open` and `LlamaConfig::from_gguf` accept the real cloud model.
#[test]
fn real_cloud_model_passes_the_checks() {
    let Some(path) = netgpt_models::fetch::cached_cloud_model() else {
        eprintln!("skipped: the cloud GGUF is not cached (cargo run -p netgpt -- models fetch)");
        return;
    };
    let g = Gguf::open(&path).expect("open");
    assert!(g.content.tensor_infos.len() > 100);
    let c = footprint::llama_config_from_gguf(&path).expect("config");
    check_config(&c);
    assert_eq!(c.num_hidden_layers, 30);
    let (front, back) = footprint::gguf_split_bytes(&path, 15).expect("split bytes");
    assert!(front > 0 && back > 0);
}
