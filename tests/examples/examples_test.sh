#!/usr/bin/env bash
# One of examples/'s clients (python or node) against a whole stack started
# here (tests/support/stack.sh): it asks for an answer, asks again and cancels
# after two chunks, and names a model the catalog does not have;
# check_example.py checks what it printed against what the reply, ledger,
# cancels and dead-letter topics got. Exit 77 (skipped) without
# the client's library or python3-confluent-kafka / python3-jsonschema.
set -euo pipefail
CASCADE=$1
LANGUAGE=$2
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if ! /usr/bin/python3 -c 'import confluent_kafka, jsonschema' 2>/dev/null; then
  echo "SKIP: python3-confluent-kafka or python3-jsonschema is not installed (make deps)"
  exit 77
fi
case $LANGUAGE in
  python) CLIENT=(/usr/bin/python3 "$ROOT/examples/python/cascade_client.py") ;;
  node)
    if [ ! -d "$ROOT/node_modules/kafkajs" ] || ! command -v node >/dev/null; then
      echo "SKIP: node or node_modules/kafkajs absent (make deps)"
      exit 77
    fi
    CLIENT=(node "$ROOT/examples/node/cascade_client.mjs") ;;
  *) echo "usage: $0 <cascade> python|node" >&2; exit 2 ;;
esac
# shellcheck source=../support/stack.sh
source "$ROOT/tests/support/stack.sh"
# Slow enough that a cancel after two chunks comes while the answer streams
# (1.5 s), with room to spare on a loaded machine.
STACK_UPSTREAM_ARGS="--chunks 30 --delay-ms 50"
start_stack "$CASCADE"

REPLY_TO="example-$LANGUAGE.replies"
TENANT="example-$LANGUAGE"
run() {  # run <dir> <client args...>: stdout, stderr and status into <dir>
  local dir=$STACK_DIR/$1
  shift
  mkdir -p "$dir"
  local status=0
  "${CLIENT[@]}" --bootstrap "$BOOTSTRAP" --tenant "$TENANT" --reply-to "$REPLY_TO" --timeout 60 "$@" \
    >"$dir/stdout" 2>"$dir/stderr" || status=$?
  echo $status >"$dir/status"
  echo "--- $LANGUAGE client $* (exit $status)"
  cat "$dir/stdout" "$dir/stderr"
}
run answer "What is the capital of France?"
run cancel --cancel-after 2 "Write a long essay about Kafka and its consumer groups."
run refused --model gpt-9 "Hello"

status=0
/usr/bin/python3 "$ROOT/tests/examples/check_example.py" --bootstrap "$BOOTSTRAP" --schemas "$ROOT/schemas" \
  --catalog "$ROOT/config/models.yaml" --tenant "$TENANT" --reply-to "$REPLY_TO" \
  --answer "$STACK_DIR/answer" --cancel "$STACK_DIR/cancel" --refused "$STACK_DIR/refused" || status=$?
if [ $status -ne 0 ]; then
  echo "--- worker log"; tail -30 "$STACK_DIR/worker.log"
fi
exit $status
