// Token counting speed on real texts: rank-file load time, then per-text
// count latency (p50/p99) and throughput (MB/s, tokens/s) for each encoding,
// on one thread. See bench/README.md.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Cascade tokenizer benchmark"};
  const char* env_shared = std::getenv("CASCADE_SHARED_DIR");
  std::string shared = env_shared ? env_shared : CASCADE_BENCH_DEFAULT_SHARED_DIR;
  int rounds = 5;
  app.add_option("--shared-dir", shared, "Folder with data/prompts and data/tokenizers");
  app.add_option("--rounds", rounds, "Passes over the texts")->check(CLI::Range(1, 1000));
  CLI11_PARSE(app, argc, argv);

  // Questions and instructions (prompt-sized) and reference answers (longer).
  std::vector<std::string> texts;
  for (const char* file : {"NQ-open.dev.jsonl", "dolly_6400_categories.jsonl"}) {
    std::ifstream in(shared + "/data/prompts/" + file);
    std::string line;
    while (std::getline(in, line)) {
      const auto j = nlohmann::json::parse(line, nullptr, false);
      for (const char* field : {"question", "instruction", "context", "reference_response"}) {
        if (j.is_object() && j.contains(field) && j[field].is_string() && !j[field].get<std::string>().empty()) {
          texts.push_back(j[field]);
        }
      }
    }
  }
  if (texts.empty()) {
    std::fprintf(stderr, "no texts under %s/data/prompts\n", shared.c_str());
    return 1;
  }
  std::size_t bytes = 0;
  for (const auto& t : texts) bytes += t.size();
  std::printf("cascade tokenizer benchmark: %zu real texts (%.1f MB, NQ-open + dolly), %d rounds, one thread\n",
              texts.size(), static_cast<double>(bytes) / 1e6, rounds);

  for (auto encoding : {cascade::TokenEncoding::cl100k_base, cascade::TokenEncoding::o200k_base}) {
    const auto file = shared + "/data/tokenizers/" + cascade::rank_file_name(encoding);
    const auto load_start = Clock::now();
    auto tokenizer = cascade::BpeTokenizer::load(encoding, file);
    const double load_ms = std::chrono::duration<double, std::milli>(Clock::now() - load_start).count();
    if (!tokenizer) {
      std::fprintf(stderr, "%s\n", tokenizer.error().message.c_str());
      return 1;
    }
    std::vector<double> latency_us;
    latency_us.reserve(texts.size() * static_cast<std::size_t>(rounds));
    std::size_t tokens = 0;
    const auto run_start = Clock::now();
    for (int r = 0; r < rounds; ++r) {
      for (const auto& t : texts) {
        const auto s = Clock::now();
        tokens += (*tokenizer)->count(t);
        latency_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - s).count());
      }
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - run_start).count();
    std::printf("  %-12s load %6.1f ms (%zu tokens) | per text p50 %6.1f us p99 %7.1f us | %6.1f MB/s, %5.2f M tokens/s"
                " | %.2f bytes/token\n",
                std::string(cascade::to_string(encoding)).c_str(), load_ms, (*tokenizer)->vocabulary_size(),
                percentile(latency_us, 50), percentile(latency_us, 99),
                static_cast<double>(bytes) * rounds / seconds / 1e6, static_cast<double>(tokens) / seconds / 1e6,
                static_cast<double>(bytes) * rounds / static_cast<double>(tokens));
  }
  return 0;
}
