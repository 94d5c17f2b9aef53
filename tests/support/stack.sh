# A whole Cascade stack as separate processes, for tests that drive it from
# outside (official SDKs, example clients, curl): the embedded broker, the
# SIMULATED OpenAI-compatible upstream (every provider points at it), a
# worker, the ledger and a gateway with API keys. Source it, then:
#   start_stack <cascade binary>     sets STACK_DIR, BOOTSTRAP, GATEWAY_URL,
#                                    LEDGER_URL, UPSTREAM_URL, CASCADE
#   stack_key <tenant>               prints a new API key of that tenant
# Everything stops (and STACK_DIR goes) when the calling shell exits.
# Settings: STACK_UPSTREAM_ARGS (extra `cascade upstream` options), and any
# CASCADE_* variable exported before start_stack.

STACK_PIDS=()

stop_stack() {
  for ((i=${#STACK_PIDS[@]}-1; i>=0; i--)); do
    kill "${STACK_PIDS[$i]}" 2>/dev/null || true
    wait "${STACK_PIDS[$i]}" 2>/dev/null || true
  done
  [ -n "${STACK_KEEP:-}" ] || rm -rf "$STACK_DIR"
}

stack_wait_file() {
  for _ in $(seq 1 200); do [ -s "$1" ] && return 0; sleep 0.05; done
  echo "stack: $2 did not start; its log:" >&2
  cat "$3" >&2
  return 1
}

start_stack() {
  CASCADE=$(realpath "$1")
  STACK_DIR=$(mktemp -d /tmp/cascade-stack.XXXXXX)
  trap stop_stack EXIT
  export CASCADE_STATE_DIR="$STACK_DIR/state" CASCADE_LEDGER_DIR="$STACK_DIR/ledger"
  export CASCADE_KAFKA_FETCH_WAIT_MAX_MS=${CASCADE_KAFKA_FETCH_WAIT_MAX_MS:-2} CASCADE_KAFKA_PARTITIONS=${CASCADE_KAFKA_PARTITIONS:-4}
  export CASCADE_WORKER_METRICS_LISTEN=127.0.0.1:0
  local ledger_port
  ledger_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  export CASCADE_LEDGER_METRICS_LISTEN=127.0.0.1:$ledger_port
  export CASCADE_GATEWAY_LISTEN=127.0.0.1:0 CASCADE_GATEWAY_INSTANCE=${CASCADE_GATEWAY_INSTANCE:-test$$}

  "$CASCADE" broker --bootstrap-file "$STACK_DIR/bootstrap" >"$STACK_DIR/broker.log" 2>&1 &
  STACK_PIDS+=($!)
  stack_wait_file "$STACK_DIR/bootstrap" broker "$STACK_DIR/broker.log" || return 1
  BOOTSTRAP=$(cat "$STACK_DIR/bootstrap")
  # shellcheck disable=SC2086
  "$CASCADE" upstream --port-file "$STACK_DIR/upstream.port" ${STACK_UPSTREAM_ARGS:-} >"$STACK_DIR/upstream.log" 2>&1 &
  STACK_PIDS+=($!)
  stack_wait_file "$STACK_DIR/upstream.port" upstream "$STACK_DIR/upstream.log" || return 1
  UPSTREAM_URL="http://127.0.0.1:$(cat "$STACK_DIR/upstream.port")/v1"
  for p in OPENAI ANTHROPIC GEMINI GROQ DEEPSEEK MISTRAL; do
    export "CASCADE_PROVIDERS_${p}_BASE_URL=$UPSTREAM_URL" "CASCADE_PROVIDERS_${p}_API_KEY_ENV=" \
           "CASCADE_PROVIDERS_${p}_KIND=openai"
  done
  "$CASCADE" --bootstrap-file "$STACK_DIR/bootstrap" worker >"$STACK_DIR/worker.log" 2>&1 &
  STACK_PIDS+=($!)
  "$CASCADE" --bootstrap-file "$STACK_DIR/bootstrap" ledger >"$STACK_DIR/ledger.log" 2>&1 &
  STACK_PIDS+=($!)
  "$CASCADE" --bootstrap-file "$STACK_DIR/bootstrap" gateway --port-file "$STACK_DIR/gateway.port" \
    >"$STACK_DIR/gateway.log" 2>&1 &
  STACK_PIDS+=($!)
  stack_wait_file "$STACK_DIR/gateway.port" gateway "$STACK_DIR/gateway.log" || return 1
  GATEWAY_URL="http://127.0.0.1:$(cat "$STACK_DIR/gateway.port")"
  LEDGER_URL="http://$CASCADE_LEDGER_METRICS_LISTEN"
  # Ready once the worker has its partitions (the group's first rebalance).
  for _ in $(seq 1 300); do
    grep -q "assigned" "$STACK_DIR/worker.log" && break
    sleep 0.05
  done
  export STACK_DIR BOOTSTRAP GATEWAY_URL LEDGER_URL UPSTREAM_URL CASCADE
}

stack_key() {
  "$CASCADE" --bootstrap-file "$STACK_DIR/bootstrap" keys create --tenant "$1" --name "${2:-test}" 2>/dev/null
}
