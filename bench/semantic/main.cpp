// cascade_bench_semantic: insert and lookup speed of the semantic cache
// (BuiltinEmbedder + per-tenant HNSW index + verifier) at 10k, 100k and,
// with --with-1m, 1M entries, on one thread, and the memory each entry costs.
// Each size runs in a child process so its RSS is its own. See bench/README.md.
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <vector>

#include "cache/semantic.h"
#include "embeddings/embeddings.h"

namespace cascade::bench {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct Options {
  std::vector<std::size_t> sizes = {10'000, 100'000};
  bool with_1m = false;
  std::size_t queries = 20'000;
  std::size_t recall_queries = 200;
  std::size_t dimension = 256;
  std::size_t M = 16;
  std::size_t ef_construction = 200;
  std::vector<std::size_t> ef_searches = {64};
  std::string shared_dir;
  bool json_only = false;
  std::string verifier_model = "rules";  // rules | builtin
};

double micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

// CPU time of this thread: on a shared machine, wall-clock percentiles also
// count the time other processes held the core; this does not.
double thread_cpu_us() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * (v.size() - 1) + 0.5))];
}

std::size_t rss_bytes() {
  std::ifstream in("/proc/self/statm");
  std::size_t pages_total = 0, pages_resident = 0;
  in >> pages_total >> pages_resident;
  return pages_resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

// Words with their frequencies in real questions (QQP), so generated prompts
// have the vocabulary and word statistics of real traffic; a synthetic
// Zipfian vocabulary when the shared data is absent.
struct Vocabulary {
  std::vector<std::string> words;
  std::vector<double> weights;
  std::vector<std::size_t> lengths;  // prompt lengths in words, as observed
  std::string source;
};

Vocabulary load_vocabulary(const std::string& shared_dir) {
  Vocabulary v;
  std::map<std::string, std::size_t> counts;
  std::ifstream in(shared_dir + "/data/paraphrase/qqp_dev.jsonl");
  for (std::string line; std::getline(in, line);) {
    const json row = json::parse(line, nullptr, false);
    if (!row.is_object()) continue;
    for (const char* field : {"text_a", "text_b"}) {
      if (!row.contains(field) || !row[field].is_string()) continue;
      std::istringstream words(row[field].get<std::string>());
      std::size_t n = 0;
      for (std::string w; words >> w; ++n) ++counts[w];
      if (n > 0) v.lengths.push_back(n);
    }
  }
  if (!counts.empty()) {
    for (auto& [w, c] : counts) {
      v.words.push_back(w);
      v.weights.push_back(static_cast<double>(c));
    }
    v.source = std::to_string(v.words.size()) + "-word vocabulary and prompt lengths of QQP questions";
    return v;
  }
  for (std::size_t i = 0; i < 30'000; ++i) {
    v.words.push_back("w" + std::to_string(i));
    v.weights.push_back(1.0 / static_cast<double>(i + 1));
  }
  for (std::size_t n = 6; n <= 20; ++n) v.lengths.push_back(n);
  v.source = "synthetic Zipfian vocabulary (no ../shared data found)";
  return v;
}

class PromptGenerator {
 public:
  PromptGenerator(const Vocabulary& v, std::uint64_t seed)
      : vocabulary_(v), rng_(seed), word_(v.weights.begin(), v.weights.end()), length_(0, v.lengths.size() - 1) {}

  std::string next() {
    const std::size_t n = vocabulary_.lengths[length_(rng_)];
    std::string out;
    for (std::size_t i = 0; i < n; ++i) {
      if (i > 0) out.push_back(' ');
      out += vocabulary_.words[word_(rng_)];
    }
    return out;
  }

  // The same question reworded the way users do: another article or
  // auxiliary, or one more "the". Passes verification.
  std::string reword(const std::string& prompt) {
    std::istringstream in(prompt);
    std::vector<std::string> words;
    for (std::string w; in >> w;) words.push_back(w);
    for (auto& w : words) {
      if (w == "a") { w = "the"; return join(words); }
      if (w == "the") { w = "a"; return join(words); }
      if (w == "can") { w = "could"; return join(words); }
      if (w == "is") { w = "are"; return join(words); }
    }
    words.insert(words.begin() + static_cast<std::ptrdiff_t>(std::min<std::size_t>(1, words.size())), "the");
    return join(words);
  }

 private:
  static std::string join(const std::vector<std::string>& words) {
    std::string out;
    for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
    return out;
  }
  const Vocabulary& vocabulary_;
  std::mt19937_64 rng_;
  std::discrete_distribution<std::size_t> word_;
  std::uniform_int_distribution<std::size_t> length_;
};

struct Summary {
  double p50 = 0, p99 = 0;
};
Summary summarize(const std::vector<double>& us) { return {percentile(us, 0.5), percentile(us, 0.99)}; }

std::vector<json> run_size(std::size_t entries, const Options& o, const Vocabulary& vocabulary) {
  constexpr std::string_view kTenant = "bench";
  PromptGenerator generator(vocabulary, 42);
  std::vector<std::string> prompts;
  prompts.reserve(entries);
  std::unordered_set<std::string> seen;
  auto has_word = [](const std::string& p) {
    return std::any_of(p.begin(), p.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)); });
  };
  while (prompts.size() < entries) {
    std::string p = generator.next();
    // A prompt of punctuation only has nothing to embed (the matcher refuses it).
    if (has_word(p) && seen.insert(normalize_text(p)).second) prompts.push_back(std::move(p));
  }
  seen.clear();
  std::vector<std::string> fresh;
  while (fresh.size() < o.queries / 2) {
    if (std::string p = generator.next(); has_word(p)) fresh.push_back(std::move(p));
  }

  BuiltinEmbedder embedder(BuiltinEmbedderOptions{.dimension = o.dimension});
  SemanticMatcherOptions matcher_options;
  matcher_options.index = {o.dimension, o.M, o.ef_construction, o.ef_searches.front(), 1024};
  const std::size_t rss_before = rss_bytes();
  if (o.verifier_model == "builtin") {
    matcher_options.defaults.model = HitModel::builtin();
    if (!matcher_options.defaults.model) throw std::runtime_error("this build has no built-in hit model");
    matcher_options.defaults.min_probability =
        *matcher_options.defaults.model->cutoff_for(matcher_options.defaults.model->default_target_precision());
  }
  SemanticMatcher matcher(embedder, matcher_options);

  // Inserts: embed + add, one at a time, as the worker stores each answer.
  std::vector<double> insert_us;
  insert_us.reserve(entries);
  std::vector<float> vector(o.dimension);
  const auto insert_start = Clock::now();
  for (std::size_t i = 0; i < entries; ++i) {
    const auto t0 = Clock::now();
    embedder.embed_into(normalize_text(prompts[i]), vector);
    if (auto added = matcher.insert_embedded(kTenant, i, prompts[i], vector); !added) {
      std::fprintf(stderr, "insert %zu failed: %s\n", i, added.error().message.c_str());
      std::exit(1);
    }
    insert_us.push_back(micros(Clock::now() - t0));
  }
  const double insert_seconds = std::chrono::duration<double>(Clock::now() - insert_start).count();
  const std::size_t rss_after = rss_bytes();

  // Lookups, half rewordings of stored prompts (hits), half new prompts (misses).
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<std::size_t> pick(0, entries - 1);
  struct Query {
    std::string text;
    std::optional<std::size_t> expected;
  };
  std::vector<Query> queries;
  for (std::size_t i = 0; i < o.queries; ++i) {
    if (i % 2 == 0) {
      const std::size_t target = pick(rng);
      queries.push_back({generator.reword(prompts[target]), target});
    } else {
      queries.push_back({fresh[i / 2 % fresh.size()], std::nullopt});
    }
  }

  // The exact nearest similarity of the first recall_queries lookups, by a full scan.
  const std::size_t recall_queries = std::min(o.recall_queries, queries.size());
  std::vector<float> exact_best(recall_queries, -2.0f);
  if (recall_queries > 0) {
    std::vector<std::vector<float>> query_vectors(recall_queries, std::vector<float>(o.dimension));
    for (std::size_t k = 0; k < recall_queries; ++k) embedder.embed_into(normalize_text(queries[k].text), query_vectors[k]);
    std::vector<float> row(o.dimension);
    for (std::size_t i = 0; i < entries; ++i) {
      embedder.embed_into(normalize_text(prompts[i]), row);
      for (std::size_t k = 0; k < recall_queries; ++k) {
        float s = 0;
        for (std::size_t d = 0; d < o.dimension; ++d) s += row[d] * query_vectors[k][d];
        exact_best[k] = std::max(exact_best[k], s);
      }
    }
  }

  const Summary insert = summarize(insert_us);
  std::vector<json> rows;
  for (const std::size_t ef : o.ef_searches) {
    matcher.index().set_ef_search(ef);
    std::vector<double> lookup_us, lookup_cpu_us, embed_us, search_us, verify_us;
    std::size_t hits_on_rewordings = 0, hits_on_fresh = 0;
    const auto& model = matcher_options.defaults.model;
    const HitVerifier verifier(matcher_options.defaults.verifier);
    const auto lookup_start = Clock::now();
    for (const Query& q : queries) {
      const double cpu0 = thread_cpu_us();
      const auto t0 = Clock::now();
      embedder.embed_into(normalize_text(q.text), vector);
      const auto t1 = Clock::now();
      const SemanticLookup found = matcher.lookup_embedded(kTenant, q.text, vector);
      const auto t2 = Clock::now();
      lookup_cpu_us.push_back(thread_cpu_us() - cpu0);
      lookup_us.push_back(micros(t2 - t0));
      embed_us.push_back(micros(t1 - t0));
      if (found.hit) (q.expected ? hits_on_rewordings : hits_on_fresh) += 1;
    }
    const double lookup_seconds = std::chrono::duration<double>(Clock::now() - lookup_start).count();
    // The parts on their own: index search, and verification of one candidate.
    std::size_t rewordings_found = 0, exact_agree = 0;
    for (std::size_t k = 0; k < queries.size(); ++k) {
      const Query& q = queries[k];
      embedder.embed_into(normalize_text(q.text), vector);
      const auto t0 = Clock::now();
      const auto neighbors = matcher.index().search(kTenant, vector, 1);
      search_us.push_back(micros(Clock::now() - t0));
      rewordings_found += q.expected && !neighbors.empty() && neighbors[0].entry_id == *q.expected;
      if (k < recall_queries) exact_agree += !neighbors.empty() && neighbors[0].similarity >= exact_best[k] - 1e-5f;
      if (!neighbors.empty()) {
        const std::string& stored = prompts[neighbors[0].entry_id];
        const auto t1 = Clock::now();
        // As the matcher does: the rules, or a model's vetoes then its probability.
        bool ok = false;
        if (model) {
          const HitJudgement judged = model->judge(q.text, stored);
          ok = judged.verdict.accepted &&
               static_cast<float>(judged.probability) >= matcher_options.defaults.min_probability;
        } else {
          ok = verifier.verify(q.text, stored).accepted;
        }
        volatile bool accepted = ok;
        (void)accepted;
        verify_us.push_back(micros(Clock::now() - t1));
      }
    }

    const Summary lookup_cpu = summarize(lookup_cpu_us), lookup = summarize(lookup_us), embed = summarize(embed_us),
                  search = summarize(search_us), verify = summarize(verify_us);
    rows.push_back(json{
        {"entries", entries},
        {"dimension", o.dimension},
        {"M", o.M},
        {"ef_construction", o.ef_construction},
        {"ef_search", ef},
        {"insert_per_s", std::round(entries / insert_seconds)},
        {"insert_p50_us", std::round(insert.p50 * 10) / 10},
        {"insert_p99_us", std::round(insert.p99 * 10) / 10},
        {"lookup_per_s", std::round(queries.size() / lookup_seconds)},
        {"lookup_p50_us", std::round(lookup.p50 * 10) / 10},
        {"lookup_p99_us", std::round(lookup.p99 * 10) / 10},
        {"lookup_cpu_p50_us", std::round(lookup_cpu.p50 * 10) / 10},
        {"lookup_cpu_p99_us", std::round(lookup_cpu.p99 * 10) / 10},
        {"embed_p50_us", std::round(embed.p50 * 10) / 10},
        {"embed_p99_us", std::round(embed.p99 * 10) / 10},
        {"search_p50_us", std::round(search.p50 * 10) / 10},
        {"search_p99_us", std::round(search.p99 * 10) / 10},
        {"verify_p50_us", std::round(verify.p50 * 10) / 10},
        {"verify_p99_us", std::round(verify.p99 * 10) / 10},
        {"verifier", model ? model->tag() : std::string("rules")},
        {"hit_rate_rewordings", static_cast<double>(hits_on_rewordings) / (queries.size() / 2)},
        {"hit_rate_new_prompts", static_cast<double>(hits_on_fresh) / (queries.size() - queries.size() / 2)},
        // What a cache needs of the index: a reworded prompt finds its original.
        {"rewordings_found_share", static_cast<double>(rewordings_found) / (queries.size() / 2)},
        {"nearest_exact_share",
         recall_queries == 0 ? -1.0 : static_cast<double>(exact_agree) / static_cast<double>(recall_queries)},
        {"rss_bytes_per_entry", std::round(static_cast<double>(rss_after - rss_before) / entries)},
        {"index_bytes_per_entry", std::round(static_cast<double>(matcher.index().memory_bytes()) / entries)},
    });
  }
  return rows;
}

void print_row(const json& r) {
  std::printf(
      "%9zu entries ef %3zu | insert %7.0f/s p50 %6.1f us p99 %7.1f us | lookup %6.0f/s p50 %6.1f us p99 %6.1f us "
      "(CPU p50 %.1f p99 %.1f; embed p50 %.1f, search p50 %.1f p99 %.1f, verify p50 %.1f) | hits: rewordings %.3f new %.4f | "
      "original found %.3f, nearest exact %.3f | %5.0f B/entry RSS (index %5.0f)\n",
      r["entries"].get<std::size_t>(), r["ef_search"].get<std::size_t>(), r["insert_per_s"].get<double>(), r["insert_p50_us"].get<double>(),
      r["insert_p99_us"].get<double>(), r["lookup_per_s"].get<double>(), r["lookup_p50_us"].get<double>(),
      r["lookup_p99_us"].get<double>(), r["lookup_cpu_p50_us"].get<double>(), r["lookup_cpu_p99_us"].get<double>(),
      r["embed_p50_us"].get<double>(), r["search_p50_us"].get<double>(),
      r["search_p99_us"].get<double>(), r["verify_p50_us"].get<double>(), r["hit_rate_rewordings"].get<double>(),
      r["hit_rate_new_prompts"].get<double>(), r["rewordings_found_share"].get<double>(),
      r["nearest_exact_share"].get<double>(),
      r["rss_bytes_per_entry"].get<double>(), r["index_bytes_per_entry"].get<double>());
  std::fflush(stdout);
}

}  // namespace
}  // namespace cascade::bench

int main(int argc, char** argv) {
  using namespace cascade::bench;
  Options o;
  CLI::App app{"Semantic cache benchmark: insert/lookup throughput and latency, memory per entry"};
  app.add_option("--sizes", o.sizes, "Entry counts to measure")->delimiter(',');
  app.add_flag("--with-1m", o.with_1m, "Also measure 1,000,000 entries (several minutes on one core)");
  app.add_option("--queries", o.queries, "Lookups per size (half rewordings of stored prompts, half new)");
  app.add_option("--recall-queries", o.recall_queries, "Lookups checked against an exact scan");
  app.add_option("--dimension", o.dimension, "Builtin embedder dimension");
  app.add_option("--M", o.M, "HNSW graph degree");
  app.add_option("--ef-construction", o.ef_construction, "HNSW candidate list while inserting");
  app.add_option("--ef-search", o.ef_searches, "HNSW candidate list(s) while searching, each measured")->delimiter(',');
  app.add_option("--shared-dir", o.shared_dir, "Folder with data/paraphrase (default CASCADE_SHARED_DIR or ../shared)");
  app.add_flag("--json", o.json_only, "Print one JSON line per size only");
  app.add_option("--verifier-model", o.verifier_model, "rules, or builtin (the shipped learned verifier)");
  CLI11_PARSE(app, argc, argv);
  if (o.shared_dir.empty()) {
    if (const char* s = std::getenv("CASCADE_SHARED_DIR")) o.shared_dir = s;
  }
  if (o.shared_dir.empty()) o.shared_dir = CASCADE_BENCH_DEFAULT_SHARED_DIR;
  if (o.with_1m && std::find(o.sizes.begin(), o.sizes.end(), 1'000'000) == o.sizes.end()) o.sizes.push_back(1'000'000);

  const Vocabulary vocabulary = load_vocabulary(o.shared_dir);
  if (!o.json_only) {
    std::printf("semantic cache bench: one thread; prompts from the %s; dimension %zu, M %zu, ef_construction %zu, "
                "ef_search %zu...; %zu lookups per size; distance kernel %s\n",
                vocabulary.source.c_str(), o.dimension, o.M, o.ef_construction, o.ef_searches.front(), o.queries,
                cascade::SemanticIndex::distance_kernel());
  }
  for (const std::size_t entries : o.sizes) {
    std::fflush(stdout);
    // A child per size: its RSS growth is this size's alone.
    const pid_t child = ::fork();
    if (child < 0) return 1;
    if (child == 0) {
      for (const json& row : run_size(entries, o, vocabulary)) {
        if (!o.json_only) print_row(row);
        std::printf("%s\n", row.dump().c_str());
      }
      std::fflush(stdout);
      std::_Exit(0);
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 1;
  }
  return 0;
}
