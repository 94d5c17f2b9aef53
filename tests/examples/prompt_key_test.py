#!/usr/bin/python3
"""examples/python/prompt_key.py against the cases every implementation of the
prompt event key must agree on (tests/events/prompt_event_key_vectors.json)."""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples" / "python"))
from prompt_key import prompt_event_key  # noqa: E402

vectors = json.loads((ROOT / "tests" / "events" / "prompt_event_key_vectors.json").read_text())["vectors"]
failures = [f"{v['name']}: {prompt_event_key(v['event'])}, expected {v['key']}"
            for v in vectors if prompt_event_key(v["event"]) != v["key"]]
for text in failures:
    print(f"FAIL: {text}")
print(f"python prompt_event_key: {len(vectors) - len(failures)}/{len(vectors)} vectors agree")
sys.exit(1 if failures else 0)
