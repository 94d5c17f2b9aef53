#!/usr/bin/env bash
# One worker process under load, every part in its own process (bench/README.md,
# "Worker"): the embedded broker, the SIMULATED OpenAI-compatible upstream
# (instant, --chunks deltas per answer), one `cascade worker`, and
# `cascade replay` as the client. Prints the worker's CPU per streamed request
# (cache misses; then, replaying the same prompts again, exact cache hits), the
# requests/s the pipeline reached, and the CPU of every other process.
# Usage: bench/worker/run.sh [cascade binary]
#   BENCH_REQUESTS (default 20000), BENCH_CHUNKS (20), BENCH_PARTITIONS (16),
#   BENCH_WORKER_THREADS (1), BENCH_FETCH_WAIT_MS (2), BENCH_PASSES (miss,hit),
#   BENCH_TENANTS (8), BENCH_DELAY_MS (0: the upstream's pause between chunks;
#   with many requests and a large CASCADE_WORKER_MAX_IN_FLIGHT, that many slow
#   streams are in flight at once: the worker's peak RSS is printed), BENCH_PERF (a folder: perf profiles of the worker); any CASCADE_* exported is passed to every process.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CASCADE=$(realpath "${1:-$ROOT/build/apps/cascade/cascade}")
N=${BENCH_REQUESTS:-20000}
CHUNKS=${BENCH_CHUNKS:-20}
SHARED=${CASCADE_SHARED_DIR:-$ROOT/../shared}
PROMPTS_DIR=$SHARED/data/prompts
DIR=$(mktemp -d /tmp/cascade-bench-worker.XXXXXX)
PIDS=()
cleanup() {
  for ((i=${#PIDS[@]}-1; i>=0; i--)); do kill "${PIDS[$i]}" 2>/dev/null || true; wait "${PIDS[$i]}" 2>/dev/null || true; done
  rm -rf "$DIR"
}
trap cleanup EXIT

# Prompts: the shared real ones when present, else generated (distinct) ones.
if [ -d "$PROMPTS_DIR" ]; then
  cat "$PROMPTS_DIR"/*.jsonl | /usr/bin/python3 -c '
import json, sys
n = int(sys.argv[1]); rows = [l for l in sys.stdin if l.strip()]
for i in range(n):
    j = json.loads(rows[i % len(rows)])
    p = j.get("question") or j.get("instruction") or ""
    # Repeats of a prompt get a suffix: every request of a pass is a distinct miss.
    print(json.dumps({"prompt": p if i < len(rows) else f"{p} (#{i // len(rows)})"}))' "$N" >"$DIR/prompts.jsonl"
else
  echo "# $PROMPTS_DIR not found: generated prompts"
  /usr/bin/python3 -c 'import json,sys
for i in range(int(sys.argv[1])): print(json.dumps({"prompt": f"Explain item {i} of the catalogue in two sentences."}))' "$N" >"$DIR/prompts.jsonl"
fi

export CASCADE_LOG_LEVEL=${CASCADE_LOG_LEVEL:-warn}
export CASCADE_STATE_DIR="$DIR/state"
export CASCADE_KAFKA_FETCH_WAIT_MAX_MS=${BENCH_FETCH_WAIT_MS:-2}
export CASCADE_KAFKA_PARTITIONS=${BENCH_PARTITIONS:-16}
export CASCADE_WORKER_THREADS=${BENCH_WORKER_THREADS:-1}
export CASCADE_WORKER_METRICS_LISTEN=127.0.0.1:0

wait_file() { for _ in $(seq 1 200); do [ -s "$1" ] && return 0; sleep 0.05; done; echo "$2 did not start" >&2; cat "$3" >&2; exit 1; }
"$CASCADE" broker --bootstrap-file "$DIR/bootstrap" >"$DIR/broker.log" 2>&1 &
PIDS+=($!); BROKER_PID=$!
wait_file "$DIR/bootstrap" broker "$DIR/broker.log"
ulimit -n 65536 2>/dev/null || true  # one socket per stream in flight
"$CASCADE" upstream --port-file "$DIR/upstream.port" --chunks "$CHUNKS" --delay-ms "${BENCH_DELAY_MS:-0}" --threads 1 >"$DIR/upstream.log" 2>&1 &
PIDS+=($!); UPSTREAM_PID=$!
wait_file "$DIR/upstream.port" upstream "$DIR/upstream.log"
UPSTREAM_URL="http://127.0.0.1:$(cat "$DIR/upstream.port")/v1"
for p in OPENAI ANTHROPIC GEMINI GROQ DEEPSEEK MISTRAL; do
  export "CASCADE_PROVIDERS_${p}_BASE_URL=$UPSTREAM_URL" "CASCADE_PROVIDERS_${p}_API_KEY_ENV=" "CASCADE_PROVIDERS_${p}_KIND=openai"
done
"$CASCADE" --bootstrap-file "$DIR/bootstrap" worker >"$DIR/worker.log" 2>&1 &
PIDS+=($!); WORKER_PID=$!
for _ in $(seq 1 300); do grep -q "assigned" "$DIR/worker.log" && break; sleep 0.05; done

HZ=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_mib() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
peak_mib() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

# Warm-up (connections, metadata, the first records to each topic): not measured.
head -200 "$DIR/prompts.jsonl" | sed 's/"}$/ (warm-up)"}/' >"$DIR/warmup.jsonl"
"$CASCADE" --bootstrap-file "$DIR/bootstrap" replay --file "$DIR/warmup.jsonl" --count 200 --show 0 --timeout 120 >/dev/null
echo "# worker RSS after the warm-up: $(rss_mib "$WORKER_PID") MiB"

echo "# $(date -u +%FT%TZ), $(nproc) cores; $N requests per pass, $CHUNKS chunks per answer, ${CASCADE_KAFKA_PARTITIONS} partitions, worker threads ${CASCADE_WORKER_THREADS}, fetch wait ${CASCADE_KAFKA_FETCH_WAIT_MAX_MS} ms"
for pass in ${BENCH_PASSES:-miss hit}; do
  w0=$(ticks "$WORKER_PID"); b0=$(ticks "$BROKER_PID"); u0=$(ticks "$UPSTREAM_PID")
  # BENCH_PERF=DIR: a profile of the worker during each pass (perf record, call graphs).
  if [ -n "${BENCH_PERF:-}" ]; then
    mkdir -p "$BENCH_PERF"
    perf record -F 999 --call-graph dwarf,16384 -p "$WORKER_PID" -o "$BENCH_PERF/worker-$pass.data" >/dev/null 2>&1 & PERF_PID=$!
  fi
  /usr/bin/time -f "%U %S %M" -o "$DIR/client.time" \
    "$CASCADE" --bootstrap-file "$DIR/bootstrap" replay --file "$DIR/prompts.jsonl" --count "$N" \
      --tenants "${BENCH_TENANTS:-8}" --show 0 --timeout 300 >"$DIR/replay.out"
  if [ -n "${BENCH_PERF:-}" ]; then kill -INT "$PERF_PID"; wait "$PERF_PID" || true; fi
  w=$(( $(ticks "$WORKER_PID") - w0 )); b=$(( $(ticks "$BROKER_PID") - b0 )); u=$(( $(ticks "$UPSTREAM_PID") - u0 ))
  read -r cu cs cm <"$DIR/client.time"
  /usr/bin/python3 - "$pass" "$N" "$HZ" "$w" "$b" "$u" "$cu" "$cs" "$cm" "$DIR/replay.out" "$(rss_mib "$WORKER_PID")" "$(peak_mib "$WORKER_PID")" <<'PY'
import re, sys
p, n, hz, w, b, u, cu, cs, cm, out, rss, peak = sys.argv[1:]
n, hz = int(n), int(hz)
text = open(out).read()
m = re.search(r"replay: (\d+) answered, (\d+) errors, (\d+) unanswered, in ([\d.]+) s", text)
lat = re.search(r"first chunk p50 ([\d.]+) ms, p99 ([\d.]+) ms; to final p50 ([\d.]+) ms, p99 ([\d.]+) ms", text)
answered, errors, unanswered, secs = int(m[1]), int(m[2]), int(m[3]), float(m[4])
us = lambda ticks: 1e6 * int(ticks) / hz / max(answered, 1)
client_us = 1e6 * (float(cu) + float(cs)) / max(answered, 1)
print(f"{p:5} answered {answered}/{n} errors {errors} unanswered {unanswered}  {answered / secs:8.0f} req/s"
      f"  final p50 {lat[3]} ms p99 {lat[4]} ms")
print(f"      CPU us/request: worker {us(w):.0f}  broker {us(b):.0f}  upstream {us(u):.0f}  client {client_us:.0f}"
      f"   worker RSS {rss} MiB (peak {peak}), client max RSS {int(cm) // 1024} MiB")
PY
done
