#!/usr/bin/env python3
"""Reference fixture for the candle GPT-2: a tiny random GPT-2 checkpoint in Hugging Face
layout (config.json + model.safetensors, Conv1D weights [in, out], `transformer.` names)
and the logits of a fixed input.

The reference logits come from PyTorch transformers' GPT2LMHeadModel run on the saved
files. A numpy (float64) port of Hugging Face `transformers/models/gpt2/modeling_gpt2.py`
(eager attention) is checked against it, and is the fallback where torch cannot be
installed (`--check-hf` then fails instead of falling back).

Usage: python3 -m venv /tmp/venv-torch && /tmp/venv-torch/bin/pip install torch transformers numpy safetensors
       /tmp/venv-torch/bin/python models/scripts/make_gpt2_fixture.py models/tests/fixtures/gpt2_tiny --check-hf
"""
import json
import math
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

CFG = dict(vocab_size=100, n_positions=64, n_embd=32, n_layer=2, n_head=4, n_inner=None,
           layer_norm_epsilon=1e-5, model_type="gpt2", architectures=["GPT2LMHeadModel"],
           activation_function="gelu_new", tie_word_embeddings=True)
INPUT_IDS = [3, 17, 42, 99, 0, 5, 64, 23, 11, 87, 50, 2]


def make_weights(rng):
    e, v, p, l = CFG["n_embd"], CFG["vocab_size"], CFG["n_positions"], CFG["n_layer"]
    i = 4 * e
    # Larger than GPT-2's init (0.02) so that every term visibly moves the logits.
    n = lambda *s, std=0.2: (rng.standard_normal(s) * std).astype(np.float32)
    w = {"transformer.wte.weight": n(v, e, std=0.5), "transformer.wpe.weight": n(p, e, std=0.5)}
    for k in range(l):
        h = f"transformer.h.{k}"
        w[f"{h}.ln_1.weight"] = (1 + n(e, std=0.1))
        w[f"{h}.ln_1.bias"] = n(e, std=0.1)
        w[f"{h}.attn.c_attn.weight"] = n(e, 3 * e)
        w[f"{h}.attn.c_attn.bias"] = n(3 * e, std=0.1)
        w[f"{h}.attn.c_proj.weight"] = n(e, e)
        w[f"{h}.attn.c_proj.bias"] = n(e, std=0.1)
        w[f"{h}.ln_2.weight"] = (1 + n(e, std=0.1))
        w[f"{h}.ln_2.bias"] = n(e, std=0.1)
        w[f"{h}.mlp.c_fc.weight"] = n(e, i)
        w[f"{h}.mlp.c_fc.bias"] = n(i, std=0.1)
        w[f"{h}.mlp.c_proj.weight"] = n(i, e)
        w[f"{h}.mlp.c_proj.bias"] = n(e, std=0.1)
    w["transformer.ln_f.weight"] = (1 + n(e, std=0.1))
    w["transformer.ln_f.bias"] = n(e, std=0.1)
    return w


def layer_norm(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)  # biased, as torch.nn.LayerNorm
    return (x - mu) / np.sqrt(var + eps) * g + b


def gelu_new(x):  # transformers.activations.NewGELUActivation
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def forward(w, ids):
    W = {k: v.astype(np.float64) for k, v in w.items()}
    e, nh, eps = CFG["n_embd"], CFG["n_head"], CFG["layer_norm_epsilon"]
    hd, t = e // nh, len(ids)
    h = W["transformer.wte.weight"][ids] + W["transformer.wpe.weight"][np.arange(t)]
    causal = np.tril(np.ones((t, t), dtype=bool))
    for k in range(CFG["n_layer"]):
        p = f"transformer.h.{k}"
        a = layer_norm(h, W[f"{p}.ln_1.weight"], W[f"{p}.ln_1.bias"], eps)
        qkv = a @ W[f"{p}.attn.c_attn.weight"] + W[f"{p}.attn.c_attn.bias"]  # Conv1D: x @ W + b
        q, kk, v = np.split(qkv, 3, axis=-1)
        heads = lambda x: x.reshape(t, nh, hd).transpose(1, 0, 2)
        q, kk, v = heads(q), heads(kk), heads(v)
        att = q @ kk.transpose(0, 2, 1) / math.sqrt(hd)  # scale_attn_weights
        att = np.where(causal, att, np.finfo(np.float64).min)
        att = np.exp(att - att.max(-1, keepdims=True))
        att = att / att.sum(-1, keepdims=True)
        o = (att @ v).transpose(1, 0, 2).reshape(t, e)
        h = h + (o @ W[f"{p}.attn.c_proj.weight"] + W[f"{p}.attn.c_proj.bias"])
        m = layer_norm(h, W[f"{p}.ln_2.weight"], W[f"{p}.ln_2.bias"], eps)
        m = gelu_new(m @ W[f"{p}.mlp.c_fc.weight"] + W[f"{p}.mlp.c_fc.bias"])
        h = h + (m @ W[f"{p}.mlp.c_proj.weight"] + W[f"{p}.mlp.c_proj.bias"])
    h = layer_norm(h, W["transformer.ln_f.weight"], W["transformer.ln_f.bias"], eps)
    return h @ W["transformer.wte.weight"].T  # tied lm_head


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else "models/tests/fixtures/gpt2_tiny")
    out.mkdir(parents=True, exist_ok=True)
    w = make_weights(np.random.default_rng(1234))
    save_file(w, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(CFG, indent=2) + "\n")
    logits = forward(w, np.array(INPUT_IDS))
    source = "numpy port of transformers modeling_gpt2 (float64), make_gpt2_fixture.py"
    try:
        import torch
        from transformers import GPT2LMHeadModel
        import transformers
    except ImportError:
        if "--check-hf" in sys.argv:
            raise
        print("torch/transformers not importable: the reference comes from the numpy port")
    else:
        # The reference is PyTorch transformers' own GPT2LMHeadModel on the saved files;
        # the numpy port must agree with it.
        m = GPT2LMHeadModel.from_pretrained(str(out)).eval()
        with torch.no_grad():
            hf = m(torch.tensor([INPUT_IDS])).logits[0].double().numpy()
        diff = np.abs(hf - logits).max()
        print("max |HF - numpy| =", diff)
        assert diff < 1e-4
        logits = hf
        source = (f"transformers {transformers.__version__} GPT2LMHeadModel (torch {torch.__version__}), "
                  "make_gpt2_fixture.py; numpy port agrees to %.1e" % diff)
    (out / "reference.json").write_text(json.dumps({
        "input_ids": INPUT_IDS,
        "logits": [[round(float(x), 6) for x in row] for row in logits],
        "source": source,
    }) + "\n")
    print("wrote", out, "logits", logits.shape, "max |logit|", np.abs(logits).max())


if __name__ == "__main__":
    main()
