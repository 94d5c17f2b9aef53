#!/usr/bin/env bash
# The Cascade demo: an embedded Kafka broker, a worker, the ledger consumer and
# (unless real provider keys are set) a SIMULATED OpenAI-compatible upstream,
# all on this machine; replays real prompts and prints a savings report.
set -euo pipefail

CASCADE=${1:-build/apps/cascade/cascade}
CASCADE=$(realpath "$CASCADE")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/cascade-demo.XXXXXX)
PIDS=()
cleanup() {
  # Reverse start order: clients and services finish (commit, leave the
  # group) while the broker is still up.
  for ((i=${#PIDS[@]}-1; i>=0; i--)); do
    kill "${PIDS[$i]}" 2>/dev/null || true
    wait "${PIDS[$i]}" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

wait_for_file() {
  for _ in $(seq 1 100); do [ -s "$1" ] && return 0; sleep 0.1; done
  echo "demo: $2 did not start; its log:" >&2; cat "$3" >&2; exit 1
}

banner() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

export CASCADE_STATE_DIR="$WORK/state"
export CASCADE_LEDGER_DIR="$WORK/ledger"
export CASCADE_KAFKA_FETCH_WAIT_MAX_MS=2
METRICS=${CASCADE_LEDGER_METRICS_LISTEN:-127.0.0.1:9464}
export CASCADE_WORKER_METRICS_LISTEN=${CASCADE_WORKER_METRICS_LISTEN:-127.0.0.1:9465}
export CASCADE_LEDGER_METRICS_LISTEN=$METRICS

banner "Embedded Kafka broker (librdkafka mock cluster)"
"$CASCADE" broker --bootstrap-file "$WORK/bootstrap" --partitions 16 >"$WORK/broker.log" 2>&1 &
PIDS+=($!)
wait_for_file "$WORK/bootstrap" broker "$WORK/broker.log"
echo "bootstrap: $(cat "$WORK/bootstrap")"

REAL_KEYS=()
RECORDED=()
for var in OPENAI_API_KEY ANTHROPIC_API_KEY GEMINI_API_KEY GROQ_API_KEY DEEPSEEK_API_KEY MISTRAL_API_KEY; do
  [ -n "${!var:-}" ] && REAL_KEYS+=("$var")
done
if [ ${#REAL_KEYS[@]} -gt 0 ]; then
  banner "Real providers: ${REAL_KEYS[*]} (requests cost real money)"
  COUNT=${DEMO_PROMPTS:-30}
else

  ALPACA="$ROOT/../shared/data/router/alpaca_eval"
  if [ -f "$ALPACA/instructions.jsonl" ] && [ -z "${DEMO_NO_RECORDINGS:-}" ]; then
    # Real answers of real models to these prompts, with a GPT-4 judge's
    # verdict of each against GPT-4 Turbo's (../shared/data/router/alpaca_eval):
    # the simulator answers with them and grades them as the judge did, so the
    # report can say what the savings did to the answers.
    "$CASCADE" route-data alpaca-eval --in "$ALPACA" \
      --prices "$ROOT/../shared/data/pricing/model_prices_and_context_window.json" \
      --out "$WORK/recorded.jsonl" >"$WORK/route-data.log" 2>&1
    # The reference (catalog.baseline_model gpt-4o) answers as GPT-4 Turbo.
    RECORDED=(--outcomes "$WORK/recorded.jsonl" --tier-map small=gpt-3.5-turbo-1106 \
              --tier-map medium=claude-2.1 --tier-map large=gpt4_1106_preview --model-map gpt-4o=gpt4_1106_preview)
    # Every routed request is a calibration sample: its prompt is also answered
    # by each tier and by the reference (catalog.baseline_model, answering as
    # GPT-4 Turbo), and the judge grades every answer, so the report gives the
    # served answers' quality as a share of the reference's on the same prompts.
    export CASCADE_QUALITY_CALIBRATION_RATE=${CASCADE_QUALITY_CALIBRATION_RATE:-1}
    # The replay arrives at once: let every sample's calls run.
    export CASCADE_QUALITY_MAX_IN_FLIGHT=${CASCADE_QUALITY_MAX_IN_FLIGHT:-1000}
    # The closed loop: the ledger moves each tenant's tier cuts from those
    # samples towards quality.target (small evidence thresholds: a short demo).
    export CASCADE_QUALITY_TUNING_ENABLED=${CASCADE_QUALITY_TUNING_ENABLED:-true}
    export CASCADE_QUALITY_TUNING_MIN_SAMPLES=${CASCADE_QUALITY_TUNING_MIN_SAMPLES:-20}
    export CASCADE_QUALITY_TUNING_EVERY=${CASCADE_QUALITY_TUNING_EVERY:-10}
  fi
  banner "SIMULATED upstream: no provider key is set, answers come from a local simulator, not a real model"
  [ ${#RECORDED[@]} -gt 0 ] && echo "recorded answers: AlpacaEval prompts get each model's recorded answer (small tier: gpt-3.5-turbo-1106, medium: claude-2.1, large: GPT-4 Turbo) and the judge's recorded grade"
  "$CASCADE" upstream --port-file "$WORK/port" --chunks 20 --delay-ms 10 "${RECORDED[@]}" >"$WORK/upstream.log" 2>&1 &
  PIDS+=($!)
  wait_for_file "$WORK/port" upstream "$WORK/upstream.log"
  URL="http://127.0.0.1:$(cat "$WORK/port")/v1"
  echo "simulated OpenAI-compatible endpoint: $URL"
  # The simulator speaks OpenAI's wire format, so every provider uses it here.
  for p in OPENAI ANTHROPIC GEMINI GROQ DEEPSEEK MISTRAL; do
    export "CASCADE_PROVIDERS_${p}_BASE_URL=$URL" "CASCADE_PROVIDERS_${p}_API_KEY_ENV=" "CASCADE_PROVIDERS_${p}_KIND=openai"
  done
  COUNT=${DEMO_PROMPTS:-300}
fi

banner "Worker and ledger consumer"
"$CASCADE" --bootstrap-file "$WORK/bootstrap" worker >"$WORK/worker.log" 2>&1 &
PIDS+=($!)
"$CASCADE" --bootstrap-file "$WORK/bootstrap" ledger >"$WORK/ledger.log" 2>&1 &
PIDS+=($!)
echo "worker log: $WORK/worker.log, ledger log: $WORK/ledger.log"

PROMPTS="$ROOT/../shared/data/prompts/dolly_6400_categories.jsonl"
if [ ${#REAL_KEYS[@]} -eq 0 ] && [ ${#RECORDED[@]} -gt 0 ]; then
  # Chat prompts with recorded answers; the last fifth asks again what
  # earlier users asked, as real traffic does, so the cache shows.
  head -n $((COUNT * 4 / 5)) "$ALPACA/instructions.jsonl" >"$WORK/prompts.jsonl"
  head -n $((COUNT - COUNT * 4 / 5)) "$ALPACA/instructions.jsonl" >>"$WORK/prompts.jsonl"
  PROMPTS="$WORK/prompts.jsonl"
elif [ ! -f "$PROMPTS" ]; then
  PROMPTS="$ROOT/deploy/demo/prompts.sample.jsonl"
  echo "(../shared is absent: using the shipped sample, see deploy/demo/ATTRIBUTION.md)"
fi

banner "Replaying $COUNT real prompts from $(basename "$PROMPTS") as prompt events (4 tenants)"
"$CASCADE" --bootstrap-file "$WORK/bootstrap" replay --file "$PROMPTS" --count "$COUNT" --tenants 4 --show 3

sleep 1  # let the ledger consumer apply the last cost events
if [ -n "${CASCADE_QUALITY_SAMPLE_RATE:-}${CASCADE_QUALITY_CALIBRATION_RATE:-}" ]; then
  sleep 3  # and the judge grade the last answers
fi
banner "The OpenAI-compatible gateway: any OpenAI or Anthropic SDK, pointed at Cascade"
# Keys are off here (loopback only); in production: cascade keys create --tenant T.
CASCADE_GATEWAY_AUTH=none CASCADE_GATEWAY_LISTEN=127.0.0.1:0 CASCADE_GATEWAY_DEFAULT_TENANT=acme \
  "$CASCADE" --bootstrap-file "$WORK/bootstrap" gateway --port-file "$WORK/gateway.port" >"$WORK/gateway.log" 2>&1 &
PIDS+=($!)
wait_for_file "$WORK/gateway.port" gateway "$WORK/gateway.log"
GATEWAY="http://127.0.0.1:$(cat "$WORK/gateway.port")"
echo "curl $GATEWAY/v1/chat/completions -d '{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":\"What is a lighthouse?\"}]}'"
curl -sS -m 30 -D "$WORK/gateway.headers" "$GATEWAY/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model":"auto","messages":[{"role":"user","content":"What is a lighthouse?"}]}' -o "$WORK/gateway.body" || true
grep -iE '^x-cascade-(model|route-reason|cost-usd|cache):' "$WORK/gateway.headers" || true
python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["choices"][0]["message"]["content"][:160])' \
  "$WORK/gateway.body" 2>/dev/null || cat "$WORK/gateway.body"
echo "(docs/gateway.md: /v1/chat/completions, /v1/messages, /v1/models, /v1/embeddings, /mcp)"

banner "Savings report (from the cascade.ledger topic)"
"$CASCADE" --bootstrap-file "$WORK/bootstrap" report
if [ ${#RECORDED[@]} -gt 0 ]; then
  echo
  echo "How to read Quality here: the judge compared each recorded answer with GPT-4 Turbo's answer to the same"
  echo "prompt. Grade 3 = as good as GPT-4 Turbo's (the reference grades 3.0), 5 = clearly better, 1 = clearly worse."
  echo "The '% of gpt-4o's judged quality' is measured: for every request, the answer served and the reference's"
  echo "answer to the same prompt were both graded. Cheaper answers were judged worse on most prompts."
  banner "Closed loop: the tier cuts the ledger tuned from those grades (cascade tuning show)"
  "$CASCADE" --bootstrap-file "$WORK/bootstrap" tuning show
  echo "Each tenant's cuts move towards quality.target (95% of the reference's judged quality) as evidence accrues;"
  echo "workers route with them at once (route reasons say tuned(...)). docs/routing.md, \"Closed loop\"."
fi

banner "Prometheus metrics"
echo "The ledger consumer serves http://$METRICS/metrics, /api/usage and a dashboard at http://$METRICS/ (while it runs: cascade ledger). A sample:"
curl -fsS "http://$METRICS/metrics" | grep -E '^cascade_(requests|savings_usd)_total' | head -6 || true
echo "The worker serves http://$CASCADE_WORKER_METRICS_LISTEN/metrics (provider attempts, retries, fallbacks, breakers). A sample:"
curl -fsS "http://$CASCADE_WORKER_METRICS_LISTEN/metrics" | grep -E '^cascade_(provider_attempts|worker_requests)_total' | head -4 || true
echo
echo "Demo done. Run the services yourself with: cascade broker / cascade worker / cascade ledger / cascade send (see README.md)."

if [ -n "${DEMO_KEEP:-}" ]; then
  # For apps to try against the running pipeline, e.g. examples/ (examples/README.md).
  # Enter, not Ctrl-C: Ctrl-C stops the broker with the rest, and services
  # stopping after their broker wait for it in vain.
  banner "Still running (DEMO_KEEP): press Enter to stop the broker, the worker and the ledger"
  echo "bootstrap: $(cat "$WORK/bootstrap")"
  echo "  python3 examples/python/cascade_client.py --bootstrap $(cat "$WORK/bootstrap") --tenant acme \"Why is the sky blue?\""
  read -r _ || true
fi
