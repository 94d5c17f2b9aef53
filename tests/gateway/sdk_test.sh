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
node --test --test-reporter=spec tests/gateway/openai_sdk_test.mjs tests/gateway/anthropic_sdk_test.mjs || status=$?
if [ $status -ne 0 ]; then
  echo "--- gateway log"; tail -30 "$STACK_DIR/gateway.log"
  echo "--- worker log"; tail -30 "$STACK_DIR/worker.log"
fi
exit $status
