"""The real `openai` Python client against the NetGPT cloud AI function.

Usage: python openai_client.py <base_url ending in /v1>
Prints one JSON line: the models listed, a completion, the same streamed, and the status
of a request for an unknown model. Run by tests/e2e/cloudai.rs.
"""

import json
import sys

import openai

client = openai.OpenAI(base_url=sys.argv[1], api_key="not-needed", max_retries=0)
models = [m.id for m in client.models.list().data]
messages = [{"role": "user", "content": "What is the capital of France?"}]
r = client.chat.completions.create(model=models[0], messages=messages, max_tokens=24)
streamed = ""
for chunk in client.chat.completions.create(
    model=models[0], messages=messages, max_tokens=24, stream=True
):
    if chunk.choices and chunk.choices[0].delta.content:
        streamed += chunk.choices[0].delta.content
try:
    client.chat.completions.create(model="no-such-model", messages=messages, max_tokens=4)
    not_found = None
except openai.NotFoundError as e:
    not_found = e.status_code
print(
    json.dumps(
        {
            "models": models,
            "text": r.choices[0].message.content,
            "finish_reason": r.choices[0].finish_reason,
            "completion_tokens": r.usage.completion_tokens,
            "streamed": streamed,
            "not_found_status": not_found,
        }
    )
)
