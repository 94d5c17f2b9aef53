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
  GatewayCommandOptions gateway;
  auto* gateway_cmd = app.add_subcommand(
      "gateway", "Run the HTTP front door: OpenAI- and Anthropic-compatible APIs over Kafka (docs/gateway.md)");
  gateway_cmd->add_option("--port-file", gateway.port_file, "Write the port listened on here (gateway.listen port 0)");

  KeysCommandOptions keys;
  auto* keys_cmd = app.add_subcommand("keys", "Create, list or revoke API keys bound to tenants (stored hashed)");
  keys_cmd->require_subcommand(1);
  auto* keys_create_cmd = keys_cmd->add_subcommand("create", "Create a key; prints it once");
  keys_create_cmd->add_option("--tenant", keys.tenant, "The tenant the key's requests are billed to");
  keys_create_cmd->add_option("--name", keys.name, "A label (which app uses it)");
  keys_create_cmd->add_flag("--admin", keys.admin, "An operator key for the ledger's HTTP API, no tenant");
  auto* keys_list_cmd = keys_cmd->add_subcommand("list", "List keys (ids, tenants, dates; never the keys)");
  keys_list_cmd->add_option("--tenant", keys.tenant, "Only this tenant's");
  auto* keys_revoke_cmd = keys_cmd->add_subcommand("revoke", "Revoke a key: every gateway refuses it within a second");
  keys_revoke_cmd->add_option("key_id", keys.key_id, "The key's id (from keys list)")->required();

  SendOptions send;
  auto* send_cmd = app.add_subcommand("send", "Send one prompt and print the streamed answer");
  send_cmd->add_option("prompt", send.prompt, "The prompt")->required();
  send_cmd->add_option("--tenant", send.tenant, "Tenant");
  send_cmd->add_option("--model", send.model, "Pinned model id, or auto");
  send_cmd->add_option("--preference", send.preference, "cost|balanced|quality|speed");
  send_cmd->add_option("--system", send.system, "System prompt");
  send_cmd->add_option("--max-tokens", send.max_tokens, "max_tokens");
  send_cmd->add_option("--timeout", send.timeout_s, "Seconds to wait for the answer");
  send_cmd->add_option("--cascade", send.cascade, "Cheap-first cascade for this request: on|off (default: config)")
      ->check(CLI::IsMember({"on", "off"}));
  send_cmd->add_option("--tag", send.tags, "A tag in metadata.tags (repeatable)");

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
  report_cmd->add_option("--since", report.since, "Only requests since then: 7d, 24h, 30m or YYYY-MM-DD (UTC)");
  report_cmd->add_option("--baseline-grade", report.baseline_grade,
                         "The judged grade (1-5) the baseline model's own answers get, when known (recorded data): "
                         "the Quality line then says what share of it the cheaper answers kept");

  BudgetCommandOptions budget;
  auto* budget_cmd = app.add_subcommand("budget", "Set or show spending budgets (stored on the budgets topic)");
  budget_cmd->require_subcommand(1);
  auto* budget_set_cmd = budget_cmd->add_subcommand(
      "set", "Set a tenant's (or a model's / tag's) daily and monthly USD limits at run time");
  budget_set_cmd->add_option("--tenant", budget.tenant, "The tenant")->required();
  budget_set_cmd->add_option("--model", budget.model, "A budget for this model of the tenant");
  budget_set_cmd->add_option("--tag", budget.tag, "A budget for this tag of the tenant");
  budget_set_cmd->add_option("--daily", budget.daily_usd, "USD per UTC day (0 = no daily limit)");
  budget_set_cmd->add_option("--monthly", budget.monthly_usd, "USD per UTC month (0 = no monthly limit)");
  budget_set_cmd->add_option("--soft-percent", budget.soft_percent, "Share of a limit above which requests are downgraded");
  budget_set_cmd->add_flag("--clear", budget.clear, "Remove the run-time budget (the configured one applies again)");
  budget_set_cmd->add_option("--timeout", budget.timeout_s, "Seconds to wait for the cluster");
  auto* budget_show_cmd = budget_cmd->add_subcommand("show", "Print the budgets in force and their spend");
  budget_show_cmd->add_option("--tenant", budget.tenant, "Only this tenant");
  budget_show_cmd->add_option("--timeout", budget.timeout_s, "Seconds to wait for the cluster");

  TuningCommandOptions tuning;
  auto* tuning_cmd = app.add_subcommand("tuning", "The closed loop's tuned tier cuts (docs/routing.md, \"Closed loop\")");
  tuning_cmd->require_subcommand(1);
  auto* tuning_show_cmd =
      tuning_cmd->add_subcommand("show", "Print the tier cuts in force per tenant and policy, with their evidence");
  tuning_show_cmd->add_option("--tenant", tuning.tenant, "Only this tenant");
  auto* tuning_reset_cmd = tuning_cmd->add_subcommand(
      "reset", "Put a tenant's tuned cuts back to the configured ones; the ledger's tuner starts again from them");
  tuning_reset_cmd->add_option("--tenant", tuning.tenant, "The tenant")->required();
  tuning_reset_cmd->add_option("--key", tuning.key, "One policy/preference key (e.g. default/balanced); default: all");
  tuning_reset_cmd->add_option("--timeout", tuning.timeout_s, "Seconds to wait for the cluster");

  UpstreamOptions upstream;
  auto* upstream_cmd =
      app.add_subcommand("upstream", "Run a SIMULATED local OpenAI-compatible upstream (demo, tests)");
  upstream_cmd->add_option("--port", upstream.port, "Port (0 = any free port)");
  upstream_cmd->add_option("--port-file", upstream.port_file, "Write the bound port here");
  upstream_cmd->add_option("--chunks", upstream.chunks, "Chunks per answer");
  upstream_cmd->add_option("--delay-ms", upstream.delay_ms, "Delay between chunks");
  upstream_cmd->add_option("--threads", upstream.threads, "I/O threads");
  upstream_cmd->add_option("--rules", upstream.rules,
                           "JSON lines of scripted answers: {model, prompt_contains, answer, http_status, tool_name} "
                           "(SimulatedAnswerRule; tests)");
  upstream_cmd->add_option("--outcomes", upstream.outcomes,
                           "Answer known prompts with these recorded answers and grade them as recorded "
                           "(an outcomes file of route-data)");
  upstream_cmd->add_option("--tier-map", upstream.tier_map,
                           "TIER=RECORDED: every model of the configured catalog's TIER (small|medium|large) gets "
                           "RECORDED's answers, unless --model-map names it (repeatable)");
  upstream_cmd->add_option("--model-map", upstream.model_map,
                           "UPSTREAM=RECORDED: requests for model UPSTREAM get RECORDED's answers (repeatable)");

  CachePurgeOptions cache_purge;
  auto* cache_cmd = app.add_subcommand("cache", "Operate on the response cache of every worker");
  cache_cmd->require_subcommand(1);
  auto* cache_purge_cmd = cache_cmd->add_subcommand(
      "purge", "Remove a tenant's cached answers and semantic entries on every worker (through the changelog)");
  cache_purge_cmd->add_option("--tenant", cache_purge.tenant, "The tenant whose cache entries go")->required();
  cache_purge_cmd->add_option("--bootstrap", cache_purge.bootstrap,
                              "The workers' Kafka brokers (over --bootstrap-file and kafka.bootstrap)");
  cache_purge_cmd->add_option("--timeout", cache_purge.timeout_s, "Seconds to wait for the cluster");

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
  cache_eval_cmd->add_option("--verifier-model", cache_eval.verifier_model,
                             "rules (the default), builtin (the shipped learned verifier) or a model file of cache-train");
  cache_eval_cmd->add_option("--target-precision", cache_eval.target_precision,
                             "The learned verifier's operating point for this precision (default: the model's)");
  cache_eval_cmd->add_option("--min-probabilities", cache_eval.min_probabilities,
                             "Also rows at these learned-verifier cutoffs, comma-separated");

  CacheTrainCommandOptions cache_train;
  auto* cache_train_cmd = app.add_subcommand(
      "cache-train", "Train the semantic cache's learned hit verifier on paraphrase pairs (docs/cache.md)");
  cache_train_cmd->add_option("--pairs", cache_train.pairs, "[name=]file (.jsonl or PAWS .tsv); repeatable")
      ->required();
  cache_train_cmd->add_option("--out", cache_train.out, "Model file to write")->required();
  cache_train_cmd->add_option("--held-out", cache_train.held_out_dir, "Write each set's test split here");
  cache_train_cmd->add_option("--seed", cache_train.seed, "Seed of the splits and the trees");
  cache_train_cmd->add_option("--rounds", cache_train.rounds, "Boosting rounds");
  cache_train_cmd->add_option("--max-depth", cache_train.max_depth, "Depth of each tree");
  cache_train_cmd->add_option("--eta", cache_train.eta, "Learning rate");
  cache_train_cmd->add_option("--threshold", cache_train.threshold, "Similarity a hit needs (cache.semantic.threshold)");
  cache_train_cmd->add_option("--target-precision", cache_train.target_precision, "The default operating point");
  cache_train_cmd->add_option("--calibrate-on", cache_train.calibrate_on, "Set whose calibration split picks cutoffs");
  cache_train_cmd->add_option("--vetoes", cache_train.vetoes, "Rules that stay certain vetoes, comma-separated");
  cache_train_cmd->add_option("--neighbours", cache_train.neighbours, "Nearest stored texts per training query");
  cache_train_cmd->add_flag("--labelled-rows", cache_train.labelled_rows,
                            "Train on the labelled pairs themselves too, not only on retrieved neighbours");
  cache_train_cmd->add_option("--train-fraction", cache_train.train_fraction, "Share of each set trained on");
  cache_train_cmd->add_option("--calibration-fraction", cache_train.calibration_fraction,
                              "Share of each set the cutoffs are chosen on (the rest is the test split)");

  RouteOptions route;
  auto* route_cmd = app.add_subcommand("route", "Show where the router sends a prompt, and why (--explain)");
  route_cmd->add_option("prompt", route.prompt, "The prompt")->required();
  route_cmd->add_flag("--explain", route.explain, "Print the scorer, its probability, thresholds and drivers");
  route_cmd->add_option("--preference", route.preference, "cost|balanced|quality|speed");
  route_cmd->add_option("--system", route.system, "System prompt");
  route_cmd->add_option("--scorer", route.scorer, "heuristic|learned|knn (default router.scorer)");
  route_cmd->add_option("--model-file", route.model_file, "learned/knn model (default router.model_file)");
  route_cmd->add_option("--tenant", route.tenant, "Tenant (router.rules match on it)");
  route_cmd->add_option("--id", route.id, "Request id (decides the router.experiment arm)");
  route_cmd->add_option("--metadata", route.metadata, "Request metadata as a JSON object, e.g. '{\"residency\":\"eu\"}'");
  route_cmd->add_option("--model", route.model, "auto, or a catalog id to pin (checked against the constraints)");
  route_cmd->add_option("--max-tokens", route.max_tokens, "Request max_tokens (default limits.default_max_tokens)");

  McpOptions mcp;
  auto* mcp_cmd = app.add_subcommand(
      "mcp", "Serve Cascade's tools to an MCP client (Claude Desktop, ...) over stdio (docs/mcp.md)");
  mcp_cmd->add_option("--tenant", mcp.tenant,
                      "The tenant every tool call is made for (default mcp.tenant); never taken from a tool's arguments");

  RouteDataOptions route_data;
  auto* route_data_cmd =
      app.add_subcommand("route-data", "Convert a public routing dataset to outcomes JSON lines (docs/routing.md)");
  route_data_cmd->add_option("source", route_data.source, "routellm-mmlu | routellm-gsm8k | routerbench | alpaca-eval")
      ->required();
  route_data_cmd->add_option("--pool-as", route_data.pool_as,
                             "alpaca-eval: one row per cheap model's answer, under this model name (answer-checker data)");
  route_data_cmd->add_option("--price-key", route_data.price_keys,
                             "alpaca-eval: MODEL=LITELLM_KEY, the price of a model (repeatable; defaults in docs/routing.md)");
  route_data_cmd->add_option("--in", route_data.in, "mmlu_responses/ folder, gsm8k_responses.csv, a RouterBench CSV or the alpaca_eval/ folder")
      ->required();
  route_data_cmd->add_option("--out", route_data.out, "Outcomes file to write")->required();
  route_data_cmd->add_option("--prices", route_data.prices, "LiteLLM price catalog JSON (RouteLLM sources)");
  route_data_cmd->add_option("--weak-price-key", route_data.weak_price_key, "Price catalog key of Mixtral 8x7B");
  route_data_cmd->add_option("--strong-price-key", route_data.strong_price_key, "Price catalog key of GPT-4");
  route_data_cmd->add_option("--exclude", route_data.exclude, "routellm-gsm8k: contaminated_prompts.jsonl to leave out");
  route_data_cmd->add_option("--tokenizers", route_data.tokenizers,
                             "RouteLLM sources: folder of the tiktoken rank files (default: the usual places)");

  RouteTrainOptions route_train;
  auto* route_train_cmd = app.add_subcommand("route-train", "Train a learned or knn router on routing outcomes");
  route_train_cmd->add_option("--outcomes", route_train.outcomes, "Outcomes JSON lines (repeatable)")->required();
  route_train_cmd->add_option("--out", route_train.out, "Model file to write, e.g. config/router/learned.json")
      ->required();
  route_train_cmd->add_option("--router", route_train.router,
                              "learned|knn, or verifier: the cheap-first cascade's answer check (needs the weak answers)");
  route_train_cmd->add_option("--weak", route_train.weak, "Weak model name(s), comma-separated alternatives");
  route_train_cmd->add_option("--strong", route_train.strong, "Strong model name(s), comma-separated alternatives");
  route_train_cmd->add_option("--train-fraction", route_train.train_fraction,
                              "Train only on this share of each file (the split route-eval makes with --seed)");
  route_train_cmd->add_option("--seed", route_train.seed, "Split and validation seed");
  route_train_cmd->add_option("--hash-bits", route_train.hash_bits, "learned: hashed feature space 2^bits");
  route_train_cmd->add_flag("--embedding", route_train.embedding,
                            "learned: add the built-in embedding to the features (off: it did worse on held-out data)");
  route_train_cmd->add_option("--embedding-tail-bytes", route_train.embedding_tail_bytes,
                              "learned: embed only the prompt's last N bytes (0 = all)");

  RouteEvalOptions route_eval;
  auto* route_eval_cmd =
      app.add_subcommand("route-eval", "Sweep a router's threshold over routing outcomes; prints one JSON object");
  route_eval_cmd->add_option("--outcomes", route_eval.outcomes, "Outcomes JSON lines")->required();
  route_eval_cmd->add_option("--strong", route_eval.strong, "Strong model name(s)")->required();
  route_eval_cmd->add_option("--weak", route_eval.weak, "Weak model name(s) (or --choose-weak)");
  route_eval_cmd->add_option("--choose-weak", route_eval.choose_weak,
                             "Candidate weak models, comma-separated: the one whose random routing reaches 95% of the "
                             "strong model's quality cheapest on the training rows is evaluated (needs --train-fraction)");
  route_eval_cmd->add_option("--router", route_eval.router, "heuristic|learned|knn|cascade|random");
  route_eval_cmd->add_option("--train-fraction", route_eval.train_fraction,
                             "Train on this share of the file, evaluate on the rest");
  route_eval_cmd->add_option("--test-split", route_eval.test_split,
                             "Evaluate the shipped model only on the rest of a --train-fraction F split");
  route_eval_cmd->add_option("--seed", route_eval.seed, "Split, validation and random-baseline seed");
  route_eval_cmd->add_option("--model", route_eval.model_file, "Model file instead of the shipped one");
  route_eval_cmd->add_option("--cascade-scorer", route_eval.cascade_scorer,
                             "cascade: what sends prompts straight to the strong model (learned|knn|heuristic|random), "
                             "or verifier: every prompt to the weak model first, escalated on a learned check of its answer");
  route_eval_cmd->add_option("--check-model", route_eval.check_model,
                             "cascade: also escalate when the weak answer disagrees with this cheap model's");
  route_eval_cmd->add_option("--curve-points", route_eval.curve_points, "Points of the printed curve");
  route_eval_cmd->add_option("--details", route_eval.details_file,
                             "Write one JSON line per evaluated row (prompt, p_weak_ok, outcomes) here");
  route_eval_cmd->add_option("--rank", route_eval.rank,
                             "probability | gain-per-cost: strong calls where expected gain per expected dollar is highest");
  route_eval_cmd->add_flag("--source-as-system", route_eval.source_as_system,
                           "learned: give each row's source (MMLU subject) as its system prompt, a categorical feature");

  CLI11_PARSE(app, argc, argv);

  if (*broker_cmd) return run_broker(common, broker);
  if (*worker_cmd) return run_worker(common);
  if (*ledger_cmd) return run_ledger(common);
  if (*gateway_cmd) return run_gateway(common, gateway);
  if (*keys_create_cmd) return run_keys_create(common, keys);
  if (*keys_list_cmd) return run_keys_list(common, keys);
  if (*keys_revoke_cmd) return run_keys_revoke(common, keys);
  if (*send_cmd) return run_send(common, send);
  if (*replay_cmd) return run_replay(common, replay);
  if (*report_cmd) return run_report(common, report);
  if (*budget_set_cmd) return run_budget_set(common, budget);
  if (*budget_show_cmd) return run_budget_show(common, budget);
  if (*tuning_show_cmd) return run_tuning_show(common, tuning);
  if (*tuning_reset_cmd) return run_tuning_reset(common, tuning);
  if (*cache_purge_cmd) return run_cache_purge(common, cache_purge);
  if (*upstream_cmd) return run_upstream(common, upstream);
  if (*cache_eval_cmd) return run_cache_eval(cache_eval);
  if (*cache_train_cmd) return run_cache_train(cache_train);
  if (*route_cmd) return run_route(common, route);
  if (*mcp_cmd) return run_mcp(common, mcp);
  if (*route_data_cmd) return run_route_data(route_data);
  if (*route_train_cmd) return run_route_train(route_train);
  if (*route_eval_cmd) return run_route_eval(common, route_eval);
  return 2;
}
