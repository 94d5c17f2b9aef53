#!/usr/bin/env bash
# `cascade mcp` driven by the official MCP TypeScript SDK (node_modules,
# `make deps`) against a whole stack started here (tests/support/stack.sh):
# exit 77 (skipped) without them.
set -euo pipefail
CASCADE=$1
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if ! command -v node >/dev/null || [ ! -d "$ROOT/node_modules/@modelcontextprotocol/sdk" ]; then
  echo "SKIP: node or node_modules/@modelcontextprotocol/sdk absent (run make deps)"
  exit 77
fi
# shellcheck source=../support/stack.sh
source "$ROOT/tests/support/stack.sh"
start_stack "$CASCADE"
cd "$ROOT"
status=0
node --test --test-reporter=spec tests/mcp/mcp_sdk_e2e_test.mjs || status=$?
if [ $status -ne 0 ]; then
  echo "--- cascade mcp log"; tail -30 "$STACK_DIR/mcp.log" 2>/dev/null || true
  echo "--- worker log"; tail -30 "$STACK_DIR/worker.log"
  echo "--- ledger log"; tail -30 "$STACK_DIR/ledger.log"
fi
exit $status
