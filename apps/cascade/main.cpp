// cascade: event-driven LLM cost optimizer. See README.md.
#include <CLI/CLI.hpp>

#include <cstdlib>

#include "apps/cascade/commands.h"

int main(int argc, char** argv) {
  using namespace cascade::cli;
  CLI::App app{"Cascade: LLM prompts in over Kafka, streamed answers out, for as little money as quality allows"};
  app.require_subcommand(1);

  CommonOptions common;
  if (const char* c = std::getenv("CASCADE_CONFIG")) common.config_file = c;
  app.add_option("-c,--config", common.config_file, "YAML config (defaults: config/cascade.yaml, built in)");
  app.add_option("--bootstrap-file", common.bootstrap_file,
                 "Read the Kafka bootstrap list from this file (as written by `cascade broker`)");

  BrokerOptions broker;
  auto* broker_cmd = app.add_subcommand("broker", "Run an embedded Kafka broker (librdkafka mock cluster)");
  broker_cmd->add_option("--bootstrap-file", broker.bootstrap_file, "Write the bootstrap address here")->required();
  broker_cmd->add_option("--partitions", broker.partitions, "Partitions per Cascade topic (default kafka.partitions)");
  broker_cmd->add_option("--brokers", broker.brokers, "Number of mock brokers");

  auto* worker_cmd = app.add_subcommand("worker", "Run a request worker (consumer group member)");
  auto* ledger_cmd = app.add_subcommand("ledger", "Run the ledger consumer: aggregates costs, serves /metrics");

  SendOptions send;
  auto* send_cmd = app.add_subcommand("send", "Send one prompt and print the streamed answer");
  send_cmd->add_option("prompt", send.prompt, "The prompt")->required();
  send_cmd->add_option("--tenant", send.tenant, "Tenant");
  send_cmd->add_option("--model", send.model, "Pinned model id, or auto");
  send_cmd->add_option("--preference", send.preference, "cost|balanced|quality|speed");
  send_cmd->add_option("--system", send.system, "System prompt");
  send_cmd->add_option("--max-tokens", send.max_tokens, "max_tokens");
  send_cmd->add_option("--timeout", send.timeout_s, "Seconds to wait for the answer");

  ReplayOptions replay;
  auto* replay_cmd = app.add_subcommand("replay", "Replay prompts from a JSONL file and wait for every answer");
  replay_cmd->add_option("--file", replay.file, "JSONL with question/instruction/prompt fields")->required();
  replay_cmd->add_option("--count", replay.count, "How many prompts");
  replay_cmd->add_option("--tenants", replay.tenants, "Spread over this many tenants");
  replay_cmd->add_option("--show", replay.show, "Print the streamed answers of the first N prompts");
  replay_cmd->add_option("--timeout", replay.timeout_s, "Seconds to wait for all answers");

  ReportOptions report;
  auto* report_cmd = app.add_subcommand("report", "Print the savings report from the ledger topic");
  report_cmd->add_option("--tenant", report.tenant, "Only this tenant");

  UpstreamOptions upstream;
  auto* upstream_cmd =
      app.add_subcommand("upstream", "Run a SIMULATED local OpenAI-compatible upstream (demo, tests)");
  upstream_cmd->add_option("--port", upstream.port, "Port (0 = any free port)");
  upstream_cmd->add_option("--port-file", upstream.port_file, "Write the bound port here");
  upstream_cmd->add_option("--chunks", upstream.chunks, "Chunks per answer");
  upstream_cmd->add_option("--delay-ms", upstream.delay_ms, "Delay between chunks");
  upstream_cmd->add_option("--threads", upstream.threads, "I/O threads");

  CacheEvalCommandOptions cache_eval;
  auto* cache_eval_cmd = app.add_subcommand(
      "cache-eval", "Semantic cache precision/recall on paraphrase pairs (JSONL text_a/text_b/label or PAWS TSV)");
  cache_eval_cmd->add_option("--pairs", cache_eval.pairs_file, "Pairs file (.jsonl or PAWS .tsv)")->required();
  cache_eval_cmd->add_option("--embedder", cache_eval.embedder,
                             "builtin, or the base URL of an OpenAI-compatible API (http://127.0.0.1:11434/v1)");
  cache_eval_cmd->add_option("--embedder-model", cache_eval.embedder_model, "Model of a URL embedder");
  cache_eval_cmd->add_option("--api-key-env", cache_eval.api_key_env, "Env var holding a URL embedder's key");
  cache_eval_cmd->add_option("--thresholds", cache_eval.thresholds, "Comma-separated similarity thresholds");
  cache_eval_cmd->add_option("--dimension", cache_eval.dimension, "Dimension of the builtin embedder");
  cache_eval_cmd->add_option("--candidates", cache_eval.candidates, "Nearest entries tried per lookup");
  cache_eval_cmd->add_flag("--no-verify", cache_eval.no_verify, "Serve the nearest entry without verification");
  cache_eval_cmd->add_option("--verifier", cache_eval.verifier,
                             "Verifier options, name=value,... (docs/cache.md), e.g. persons=false");
  cache_eval_cmd->add_option("--limit", cache_eval.limit, "Only the first N pairs");
  cache_eval_cmd->add_option("--details", cache_eval.details_file, "Write one JSON line per pair here");

  CLI11_PARSE(app, argc, argv);

  if (*broker_cmd) return run_broker(common, broker);
  if (*worker_cmd) return run_worker(common);
  if (*ledger_cmd) return run_ledger(common);
  if (*send_cmd) return run_send(common, send);
  if (*replay_cmd) return run_replay(common, replay);
  if (*report_cmd) return run_report(common, report);
  if (*upstream_cmd) return run_upstream(upstream);
  if (*cache_eval_cmd) return run_cache_eval(cache_eval);
  return 2;
}
