#pragma once
// The `cascade` subcommands. Each returns the process exit code.
#include <cstddef>
#include <string>

namespace cascade::cli {

struct CommonOptions {
  std::string config_file;     // -c/--config (or CASCADE_CONFIG)
  std::string bootstrap_file;  // --bootstrap-file: brokers written by `cascade broker`
};

struct BrokerOptions {
  std::string bootstrap_file;
  int partitions = 0;  // 0 = kafka.partitions
  int brokers = 1;
};

struct SendOptions {
  std::string tenant = "default";
  std::string prompt;
  std::string model = "auto";
  std::string preference = "balanced";
  std::string system;
  int max_tokens = 0;
  int timeout_s = 120;
};

struct ReplayOptions {
  std::string file;
  int count = 300;
  int tenants = 4;
  int show = 3;
  int timeout_s = 300;
};

struct ReportOptions {
  std::string tenant;
};

struct UpstreamOptions {
  int port = 0;
  std::string port_file;
  int chunks = 20;
  int delay_ms = 0;
  int threads = 1;
};

// `cascade cache-eval`: semantic cache precision/recall on a paraphrase set.
struct CacheEvalCommandOptions {
  std::string pairs_file;
  std::string embedder = "builtin";  // or the base URL of an OpenAI-compatible API
  std::string embedder_model;
  std::string api_key_env;
  std::string thresholds = "0.80,0.85,0.90,0.92,0.95";
  int dimension = 0;  // builtin embedder; 0 = its default
  int candidates = 0;  // 0 = default
  bool no_verify = false;
  std::string verifier;  // "name=value,..." verifier options
  std::size_t limit = 0;  // 0 = every pair
  std::string details_file;
};

int run_broker(const CommonOptions& common, const BrokerOptions& options);
int run_worker(const CommonOptions& common);
int run_ledger(const CommonOptions& common);
int run_send(const CommonOptions& common, const SendOptions& options);
int run_replay(const CommonOptions& common, const ReplayOptions& options);
int run_report(const CommonOptions& common, const ReportOptions& options);
int run_upstream(const UpstreamOptions& options);
int run_cache_eval(const CacheEvalCommandOptions& options);

}  // namespace cascade::cli
