#pragma once
// What every stage of one event loop shares: configuration, the catalog, the
// loop (through RequestHost), its request table, statistics and metrics, the
// token counter, and the small computations several stages make the same way.
//
// Threading: one context per event loop, used on its thread only. Everything
// it refers to outlives the loop's stages.
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "catalog/catalog.h"
#include "consumers/worker/partition_share.h"
#include "consumers/worker/request.h"
#include "consumers/worker/request_host.h"
#include "consumers/worker/worker.h"
#include "consumers/worker/worker_metrics.h"
#include "config/config.h"
#include "router/router.h"
#include "tokenizer/tokenizer.h"

namespace cascade {

struct StageContext {
  const Config& config;
  const ModelCatalog& catalog;
  RequestHost& host;
  RequestTable& requests;
  WorkerStats& stats;
  WorkerMetrics::Recorder* metrics;  // null: no Prometheus metrics
  const TokenCounter& tokens;
  std::uint64_t seed;  // seeds the loop's randomness (retry jitter, quality sampling)
  // The loop's part of the requests topic, set by the loop at each rebalance:
  // the part of each tenant's rate limits its admission stage admits.
  PartitionShare partition_share{};

  // max_tokens as the request gives it, else limits.default_max_tokens.
  int effective_max_tokens(const PromptEvent& event) const;
  // What a call to `model` asks for: the request's max_tokens, else the
  // default capped at what the model can write (the router checked an
  // explicit max_tokens against it).
  int max_tokens_for(const ModelInfo& model, const PromptEvent& event) const;
  // The request's input tokens for estimates (admission, budgets, routing
  // constraints), counted once with o200k_base: within a few percent of
  // every vendor's count.
  std::int64_t input_tokens(Request& r) const;
  // What a call that reported no usage (a cut stream, a provider without
  // usage) is charged: its input and output counted with the model's tokenizer.
  TokenUsage counted_usage(const ModelInfo& model, const nlohmann::json& messages, std::string_view output) const;
  // What an answer of `model` is billed: its usage as reported, else counted
  // (its input, and the content in r.reply.content).
  TokenUsage billed_usage(const ModelInfo& model, const Request& r, const ChatCompletion& completion) const;
  // What the router's hard constraints (context window) need to know.
  RouteContext route_context(Request& r) const;
  // A reply chunk of the request (untracked), with its next seq. The first
  // chunk names where the answer comes from: `head` when given (cache hits,
  // single-flight followers), else the model being tried and the route.
  void publish_chunk(Request& r, std::string_view text, const ChunkHead* head = nullptr) const;
};

double ms_between(Clock::time_point a, Clock::time_point b);

}  // namespace cascade
