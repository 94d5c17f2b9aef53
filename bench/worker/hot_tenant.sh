#!/usr/bin/env bash
# One hot tenant over 1, 2, 4 worker processes (bench/README.md, "One hot
# tenant over several workers"): every part in its own process, as
# bench/worker/run.sh starts them: the embedded broker, the SIMULATED
# OpenAI-compatible upstream (instant, --chunks deltas per answer), W
# `cascade worker` processes of one thread each, and `cascade replay
# --tenants 1` as the client (one tenant, every request distinct). For each W
# it prints the requests/s the client saw, and for each worker the requests it
# answered in the measured pass (its /metrics) and its CPU (from
# /proc/PID/stat): seconds, share of the pass's wall time, share of all the
# workers' CPU. With prompt events keyed by tenant (Cascade before issue #17)
# one worker answers everything; keyed by request, every worker answers its
# partitions' part.
# Usage: bench/worker/hot_tenant.sh [cascade binary]
#   BENCH_WORKERS (default "1 2 4"), BENCH_REQUESTS (10000), BENCH_CHUNKS (20),
#   BENCH_PARTITIONS (16), BENCH_FETCH_WAIT_MS (2), BENCH_TENANTS (1: the hot
#   tenant; more spreads the requests over tenants, for comparison); any
#   CASCADE_* exported is passed to every process.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CASCADE=$(realpath "${1:-$ROOT/build/apps/cascade/cascade}")
N=${BENCH_REQUESTS:-10000}
TENANTS=${BENCH_TENANTS:-1}
CHUNKS=${BENCH_CHUNKS:-20}
SHARED=${CASCADE_SHARED_DIR:-$ROOT/../shared}
PROMPTS_DIR=$SHARED/data/prompts
DIR=$(mktemp -d /tmp/cascade-bench-hot.XXXXXX)
PIDS=()
stop_all() {
  for ((i=${#PIDS[@]}-1; i>=0; i--)); do kill "${PIDS[$i]}" 2>/dev/null || true; wait "${PIDS[$i]}" 2>/dev/null || true; done
  PIDS=()
}
cleanup() { stop_all; rm -rf "$DIR"; }
trap cleanup EXIT

# Prompts: the shared real ones when present, else generated; all distinct
# (repeats get a suffix), so every request is a cache miss with a key of its own.
if [ -d "$PROMPTS_DIR" ]; then
  cat "$PROMPTS_DIR"/*.jsonl | /usr/bin/python3 -c '
import json, sys
n = int(sys.argv[1]); rows = [l for l in sys.stdin if l.strip()]
for i in range(n):
    j = json.loads(rows[i % len(rows)])
    p = j.get("question") or j.get("instruction") or ""
    print(json.dumps({"prompt": p if i < len(rows) else f"{p} (#{i // len(rows)})"}))' "$N" >"$DIR/prompts.jsonl"
else
  echo "# $PROMPTS_DIR not found: generated prompts"
  /usr/bin/python3 -c 'import json,sys
for i in range(int(sys.argv[1])): print(json.dumps({"prompt": f"Explain item {i} of the catalogue in two sentences."}))' "$N" >"$DIR/prompts.jsonl"
fi
head -200 "$DIR/prompts.jsonl" | sed 's/"}$/ (warm-up)"}/' >"$DIR/warmup.jsonl"

# Info, for the workers' "assigned" lines; the client and the rest at warn.
export CASCADE_LOG_LEVEL=${CASCADE_LOG_LEVEL:-warn}
export CASCADE_KAFKA_FETCH_WAIT_MAX_MS=${BENCH_FETCH_WAIT_MS:-2}
export CASCADE_KAFKA_PARTITIONS=${BENCH_PARTITIONS:-16}
export CASCADE_WORKER_THREADS=1
# Workers that join rebalance quickly (consumer settings: the workers' only).
WORKER_KAFKA_EXTRA=${CASCADE_KAFKA_EXTRA:-session.timeout.ms=6000;heartbeat.interval.ms=500}

HZ=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_file() { for _ in $(seq 1 200); do [ -s "$1" ] && return 0; sleep 0.05; done; echo "$2 did not start" >&2; cat "$3" >&2; exit 1; }
# Requests a worker finished (every outcome), from its Prometheus endpoint.
answered() {
  curl -s "http://127.0.0.1:$1/metrics" | awk '/^cascade_worker_requests_total/ {n += $2} END {printf "%d", n}'
}
# Partitions each worker holds now, from the last "assigned N partition(s)"
# line of its log (the eager protocol assigns a member its whole share).
held() { grep -o "assigned [0-9]* partition" "$1" | tail -1 | awk '{print $2}'; }

echo "# $(date -u +%FT%TZ), $(nproc) cores; $CASCADE;" \
     "$N requests of $TENANTS tenant(s) per pass, $CHUNKS chunks per answer, $CASCADE_KAFKA_PARTITIONS partitions," \
     "worker threads 1, fetch wait $CASCADE_KAFKA_FETCH_WAIT_MAX_MS ms"
for W in ${BENCH_WORKERS:-1 2 4}; do
  RUN=$DIR/w$W
  mkdir -p "$RUN"
  "$CASCADE" broker --bootstrap-file "$RUN/bootstrap" >"$RUN/broker.log" 2>&1 &
  PIDS+=($!); BROKER_PID=$!
  wait_file "$RUN/bootstrap" broker "$RUN/broker.log"
  "$CASCADE" upstream --port-file "$RUN/upstream.port" --chunks "$CHUNKS" --threads 1 >"$RUN/upstream.log" 2>&1 &
  PIDS+=($!); UPSTREAM_PID=$!
  wait_file "$RUN/upstream.port" upstream "$RUN/upstream.log"
  UPSTREAM_URL="http://127.0.0.1:$(cat "$RUN/upstream.port")/v1"
  for p in OPENAI ANTHROPIC GEMINI GROQ DEEPSEEK MISTRAL; do
    export "CASCADE_PROVIDERS_${p}_BASE_URL=$UPSTREAM_URL" "CASCADE_PROVIDERS_${p}_API_KEY_ENV=" "CASCADE_PROVIDERS_${p}_KIND=openai"
  done
  WORKER_PIDS=(); PORTS=()
  for ((w=0; w<W; w++)); do
    port=$(free_port)
    CASCADE_LOG_LEVEL=info CASCADE_STATE_DIR="$RUN/state-$w" CASCADE_WORKER_METRICS_LISTEN=127.0.0.1:$port \
      CASCADE_KAFKA_EXTRA="$WORKER_KAFKA_EXTRA" \
      "$CASCADE" --bootstrap-file "$RUN/bootstrap" worker >"$RUN/worker-$w.log" 2>&1 &
    PIDS+=($!); WORKER_PIDS+=($!); PORTS+=("$port")
  done
  # A settled group: every worker holds partitions and together they hold all.
  settled=0
  for _ in $(seq 1 600); do
    total=0; all=1
    for ((w=0; w<W; w++)); do
      h=$(held "$RUN/worker-$w.log" || true); h=${h:-0}
      [ "$h" -gt 0 ] || all=0
      total=$((total + h))
    done
    if [ $all -eq 1 ] && [ $total -eq "$CASCADE_KAFKA_PARTITIONS" ]; then settled=1; break; fi
    sleep 0.1
  done
  [ $settled -eq 1 ] || { echo "W=$W: the group did not settle" >&2; tail -5 "$RUN"/worker-*.log >&2; exit 1; }
  sleep 1  # the last members' catch-up (partitions stay paused until the changelog is read)

  # Warm-up (connections, metadata, the first records to each topic): not measured.
  "$CASCADE" --bootstrap-file "$RUN/bootstrap" replay --file "$DIR/warmup.jsonl" --count 200 --tenants 1 --show 0 \
    --timeout 60 >/dev/null
  before_answered=(); before_ticks=()
  for ((w=0; w<W; w++)); do
    before_answered+=("$(answered "${PORTS[$w]}")"); before_ticks+=("$(ticks "${WORKER_PIDS[$w]}")")
  done
  b0=$(ticks "$BROKER_PID"); u0=$(ticks "$UPSTREAM_PID")
  /usr/bin/time -f "%U %S" -o "$RUN/client.time" \
    "$CASCADE" --bootstrap-file "$RUN/bootstrap" replay --file "$DIR/prompts.jsonl" --count "$N" --tenants "$TENANTS" \
      --show 0 --timeout 300 >"$RUN/replay.out"
  figures=()
  for ((w=0; w<W; w++)); do
    figures+=("$(( $(answered "${PORTS[$w]}") - before_answered[w] ))" "$(( $(ticks "${WORKER_PIDS[$w]}") - before_ticks[w] ))")
  done
  b=$(( $(ticks "$BROKER_PID") - b0 )); u=$(( $(ticks "$UPSTREAM_PID") - u0 ))
  read -r cu cs <"$RUN/client.time"
  /usr/bin/python3 - "$W" "$N" "$HZ" "$RUN/replay.out" "$b" "$u" "$cu" "$cs" "${figures[@]}" <<'PY'
import re, sys
w, n, hz, out, b, u, cu, cs = sys.argv[1:9]
w, n, hz = int(w), int(n), int(hz)
figures = list(map(int, sys.argv[9:]))
text = open(out).read()
m = re.search(r"replay: (\d+) answered, (\d+) errors, (\d+) unanswered, in ([\d.]+) s", text)
lat = re.search(r"to final p50 ([\d.]+) ms, p99 ([\d.]+) ms", text)
answered, errors, unanswered, secs = int(m[1]), int(m[2]), int(m[3]), float(m[4])
cpu = [figures[2 * i + 1] / hz for i in range(w)]
print(f"W={w}: answered {answered}/{n} errors {errors} unanswered {unanswered} in {secs:.1f} s: "
      f"{answered / secs:6.0f} req/s, final p50 {lat[1]} ms p99 {lat[2]} ms")
for i in range(w):
    print(f"  worker {i}: answered {figures[2 * i]:6d} ({100 * figures[2 * i] / max(answered, 1):5.1f}%)  "
          f"CPU {cpu[i]:6.2f} s = {100 * cpu[i] / secs:5.1f}% of a core, {100 * cpu[i] / max(sum(cpu), 1e-9):5.1f}% "
          f"of the workers' CPU")
print(f"  others' CPU: broker {int(b) / hz:.2f} s, upstream {int(u) / hz:.2f} s, client {float(cu) + float(cs):.2f} s"
      f" (all processes: {(sum(cpu) + (int(b) + int(u)) / hz + float(cu) + float(cs)) / secs:.2f} cores busy)")
PY
  stop_all
done
