#!/usr/bin/env bash
# The gateway path under load, side by side with a peer (bench/README.md,
# "Gateway"): the same non-streamed chat completion, with wrk, at 1 and 64
# connections, against
#   upstream   the SIMULATED OpenAI-compatible upstream, called directly
#   cascade    cascade gateway -> Kafka (embedded broker) -> worker -> upstream -> Kafka -> gateway
#   portkey    Portkey's open-source gateway (@portkey-ai/gateway, npm) -> upstream
# Prints requests/s, p50/p90/p99, the latency each gateway adds over the
# upstream, CPU per request of each process on the path and their RSS.
# Usage: bench/gateway/run.sh [cascade binary] (BENCH_SECONDS, default 10).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CASCADE=${1:-$ROOT/build/apps/cascade/cascade}
SECONDS_EACH=${BENCH_SECONDS:-10}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk (make deps)"; exit 1; }
[ -f "$ROOT/node_modules/@portkey-ai/gateway/build/start-server.js" ] || { echo "node_modules missing: make deps"; exit 1; }

# shellcheck source=../../tests/support/stack.sh
source "$ROOT/tests/support/stack.sh"
export CASCADE_LOG_LEVEL=warn
# The answer comes at once: what is measured is the path, not a model.
STACK_UPSTREAM_ARGS="--chunks 8 --threads 1"
start_stack "$CASCADE"
KEY=$(stack_key bench)
PORTKEY_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
NODE_ENV=production node "$ROOT/node_modules/@portkey-ai/gateway/build/start-server.js" --port="$PORTKEY_PORT" --headless \
  >"$STACK_DIR/portkey.log" 2>&1 &
STACK_PIDS+=($!)
PORTKEY_PID=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$PORTKEY_PORT/" >/dev/null 2>&1 && break; sleep 0.1; done

pid_of() { pgrep -f "$1" | head -1; }
GATEWAY_PID=$(pid_of "cascade-stack.*gateway --port-file")
WORKER_PID=$(pid_of "$STACK_DIR/bootstrap worker")
BROKER_PID=$(pid_of "broker --bootstrap-file $STACK_DIR/bootstrap")
UPSTREAM_PID=$(pid_of "upstream --port-file $STACK_DIR/upstream.port")
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_mib() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)

# Distinct prompts would only change the cache; it is off for Cascade, so every
# request goes to a worker and the upstream.
BODY='{"model":"auto","messages":[{"role":"user","content":"Summarize the plot of a short story about a lighthouse keeper."}],"max_tokens":64}'
UPSTREAM_BODY='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Summarize the plot of a short story about a lighthouse keeper."}],"max_tokens":64}'

run() {  # name url body headers connections pids...
  local name=$1 url=$2 body=$3 headers=$4 conns=$5
  shift 5
  # Warm up first: the first request of a path pays for connections and metadata.
  BENCH_BODY=$body BENCH_HEADERS=$headers wrk -t 1 -c "$conns" -d 1s -s "$ROOT/bench/gateway/post.lua" "$url" >/dev/null
  local before=() p
  for p in "$@"; do before+=("$(cpu_ticks "$p")"); done
  local out
  out=$(BENCH_BODY=$body BENCH_HEADERS=$headers wrk -t "$(( conns > 1 ? 2 : 1 ))" -c "$conns" -d "${SECONDS_EACH}s" \
        --timeout 10s -s "$ROOT/bench/gateway/post.lua" "$url" | tail -1)
  local requests cpu=""
  requests=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])')
  local i=0
  for p in "$@"; do
    local used=$(( $(cpu_ticks "$p") - before[i] ))
    cpu+=$(python3 -c "print(f'{1e6 * $used / $HZ / max($requests, 1):.0f}')")
    cpu+=" "
    i=$((i + 1))
  done
  echo "{\"target\":\"$name\",\"connections\":$conns,\"wrk\":$out,\"cpu_us_per_request\":\"$cpu\"}"
}

echo "# $(date -u +%FT%TZ), $(nproc) cores, ${SECONDS_EACH}s per run; CPU per request in microseconds of each process listed"
for conns in 1 64; do
  run upstream "$UPSTREAM_URL/chat/completions" "$UPSTREAM_BODY" "Authorization: Bearer sk-bench" "$conns" "$UPSTREAM_PID"
  run cascade "$GATEWAY_URL/v1/chat/completions" "$BODY" "Authorization: Bearer $KEY|x-cascade-cache: off" "$conns" \
    "$GATEWAY_PID" "$WORKER_PID" "$BROKER_PID" "$UPSTREAM_PID"
  run portkey "http://127.0.0.1:$PORTKEY_PORT/v1/chat/completions" "$UPSTREAM_BODY" \
    "Authorization: Bearer sk-bench|x-portkey-provider: openai|x-portkey-custom-host: $UPSTREAM_URL" "$conns" \
    "$PORTKEY_PID" "$UPSTREAM_PID"
done
echo "# RSS MiB after the runs: gateway $(rss_mib "$GATEWAY_PID"), worker $(rss_mib "$WORKER_PID"), broker $(rss_mib "$BROKER_PID"), portkey $(rss_mib "$PORTKEY_PID"), upstream $(rss_mib "$UPSTREAM_PID")"
