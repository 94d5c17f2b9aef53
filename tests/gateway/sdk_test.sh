#!/usr/bin/env bash
# The official OpenAI and Anthropic SDKs (node_modules, `make deps`) against
# a whole stack started here: exit 77 (skipped) without them.
set -euo pipefail
CASCADE=$1
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if [ ! -d "$ROOT/node_modules/openai" ] || ! command -v node >/dev/null; then
  echo "SKIP: node_modules absent (run make deps)"
  exit 77
fi
# shellcheck source=../support/stack.sh
source "$ROOT/tests/support/stack.sh"
STACK_UPSTREAM_ARGS="--chunks 12 --delay-ms 25 --rules $ROOT/tests/gateway/rules.jsonl"
start_stack "$CASCADE"
CASCADE_TEST_KEY=$(stack_key sdk-tenant)
export CASCADE_TEST_KEY
cd "$ROOT"
status=0
# Raw SSE with curl: the exact framing (data: lines, blank-line separated,
# data: [DONE] last) and the headers, as any client without an SDK sees them.
curl -sS -N -D "$STACK_DIR/sse.headers" -o "$STACK_DIR/sse.body" "$GATEWAY_URL/v1/chat/completions" \
  -H "Authorization: Bearer $CASCADE_TEST_KEY" -H 'Content-Type: application/json' \
  -d '{"model":"auto","stream":true,"messages":[{"role":"user","content":"Raw SSE please"}]}'
/usr/bin/python3 - "$STACK_DIR/sse.headers" "$STACK_DIR/sse.body" <<'PY' || status=1
import json, sys
headers = open(sys.argv[1]).read().lower()
body = open(sys.argv[2]).read()
assert headers.startswith("http/1.1 200"), headers
assert "content-type: text/event-stream" in headers and "x-cascade-model:" in headers, headers
events = body.split("\n\n")
assert events[-1] == "" and events[-2] == "data: [DONE]", repr(body[-80:])
chunks = [json.loads(e[len("data: "):]) for e in events[:-2]]
assert all(e.startswith("data: {") for e in events[:-2])
assert all(c["object"] == "chat.completion.chunk" for c in chunks)
assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
assert "Raw SSE please" in text, text
print(f"raw SSE: {len(chunks)} chunk events, [DONE] last, headers name the model")
PY
node --test --test-reporter=spec tests/gateway/openai_sdk_test.mjs tests/gateway/anthropic_sdk_test.mjs || status=$?
if [ $status -ne 0 ]; then
  echo "--- gateway log"; tail -30 "$STACK_DIR/gateway.log"
  echo "--- worker log"; tail -30 "$STACK_DIR/worker.log"
fi
exit $status
