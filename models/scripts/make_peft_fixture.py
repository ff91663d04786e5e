#!/usr/bin/env python3
"""Reference logits of the shipped edge model with its London LoRA adapter, computed by
Hugging Face `peft` over `transformers` GPT2LMHeadModel, so a test can check that our
PEFT files mean to PEFT what they mean to us.

    python3 -m venv /tmp/venv-torch
    /tmp/venv-torch/bin/pip install torch transformers peft safetensors
    /tmp/venv-torch/bin/python models/scripts/make_peft_fixture.py
"""
import json
from pathlib import Path

import peft
import torch
import transformers
from peft import PeftModel
from transformers import GPT2LMHeadModel

INPUT_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 40, 41, 42]
BASE = "models/edge"
ADAPTER = "models/edge/adapters/edge-london"
OUT = Path("models/tests/fixtures/peft_edge_london.json")

base = GPT2LMHeadModel.from_pretrained(BASE).eval()
with torch.no_grad():
    base_logits = base(torch.tensor([INPUT_IDS])).logits[0, -1]
model = PeftModel.from_pretrained(base, ADAPTER).eval()
with torch.no_grad():
    lora_logits = model(torch.tensor([INPUT_IDS])).logits[0, -1]
OUT.write_text(json.dumps({
    "input_ids": INPUT_IDS,
    "base_last_logits": [round(float(x), 6) for x in base_logits],
    "adapter_last_logits": [round(float(x), 6) for x in lora_logits],
    "source": f"peft {peft.__version__}, transformers {transformers.__version__}, torch {torch.__version__}",
}) + "\n")
print("wrote", OUT, "adapter moves the last logits by", float((lora_logits - base_logits).abs().max()))
