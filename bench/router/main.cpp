// cascade_bench_router: decision time of the router's scorers (heuristic,
// learned, knn) over real prompts, one thread, p50/p99 of thread CPU time
// and wall time per decision. See bench/README.md.
#include <time.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "router/tools/evaluation.h"
#include "router/router.h"
#include "tuning/tuning.h"

namespace cascade::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string shared_dir;
  std::string outcomes;  // prompts of a routing outcomes file instead of data/prompts
  std::string learned_file;  // "" = the built-in model
  std::string knn_file;      // "" = built here from the prompts
  std::string verifier_file;  // an answer verifier (route-train --router verifier); needs --outcomes answers
  std::size_t knn_size = 7000;
  std::size_t prompts = 5000;
  int rounds = 3;
  bool json = false;
};

// CPU time of this thread: on a shared machine, wall-clock percentiles also
// count the time other processes held the core; this does not.
double thread_cpu_us() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::ranges::sort(v);
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5))];
}

// NQ-open questions and dolly instructions (with their context), interleaved.
std::vector<std::string> load_prompts(const std::filesystem::path& dir, std::size_t limit) {
  std::vector<std::vector<std::string>> sources;
  const std::pair<const char*, const char*> files[] = {{"NQ-open.dev.jsonl", "question"},
                                                       {"dolly_6400_categories.jsonl", "instruction"}};
  for (const auto& [file, field] : files) {
    std::ifstream in(dir / file);
    std::vector<std::string> texts;
    for (std::string line; std::getline(in, line);) {
      const auto j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_object() || !j.contains(field) || !j[field].is_string()) continue;
      std::string text = j[field].get<std::string>();
      if (j.contains("context") && j["context"].is_string() && !j["context"].get<std::string>().empty())
        text += "\n\n" + j["context"].get<std::string>();
      texts.push_back(std::move(text));
    }
    sources.push_back(std::move(texts));
  }
  std::vector<std::string> out;
  for (std::size_t i = 0; out.size() < limit; ++i) {
    bool any = false;
    for (const auto& s : sources) {
      if (i < s.size() && out.size() < limit) {
        out.push_back(s[i]);
        any = true;
      }
    }
    if (!any) break;
  }
  return out;
}

struct Measured {
  std::string name;
  std::string detail;
  std::vector<double> cpu_us;
  std::vector<double> wall_us;
};

Measured measure(const std::string& name, const std::string& detail, const RouteScorer& scorer,
                 const std::vector<nlohmann::json>& messages, int rounds) {
  Measured m{name, detail, {}, {}};
  volatile double sink = 0;
  for (const auto& msg : messages) sink = sink + scorer.score(msg).p_weak_ok;  // warm-up
  for (int r = 0; r < rounds; ++r) {
    for (const auto& msg : messages) {
      const auto wall0 = Clock::now();
      const double cpu0 = thread_cpu_us();
      const RouteScore s = scorer.score(msg);
      m.cpu_us.push_back(thread_cpu_us() - cpu0);
      m.wall_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - wall0).count());
      sink = sink + s.p_weak_ok;
    }
  }
  return m;
}

// The cheap-first cascade's answer check (router.cascade.verifier_file):
// one score of a (conversation, answer) pair, as the worker makes it.
Measured measure_verifier(const std::string& detail, const AnswerVerifier& verifier,
                          const std::vector<nlohmann::json>& messages, const std::vector<std::string>& answers,
                          int rounds) {
  Measured m{"verifier", detail, {}, {}};
  volatile double sink = 0;
  for (std::size_t i = 0; i < answers.size(); ++i)
    sink = sink + verifier.p_ok_for_messages(messages[i], answers[i]);  // warm-up
  for (int r = 0; r < rounds; ++r) {
    for (std::size_t i = 0; i < answers.size(); ++i) {
      const auto wall0 = Clock::now();
      const double cpu0 = thread_cpu_us();
      const double p = verifier.p_ok_for_messages(messages[i], answers[i]);
      m.cpu_us.push_back(thread_cpu_us() - cpu0);
      m.wall_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - wall0).count());
      sink = sink + p;
    }
  }
  return m;
}

// The whole decision, Router::route: scoring plus the hard constraints, the
// catalog walk and the policies (docs/routing.md, "Policies"). Request ids
// vary so the experiment splits them.
Measured measure_router(const std::string& name, const std::string& detail, const Router& router,
                        const std::vector<nlohmann::json>& messages, int rounds) {
  Measured m{name, detail, {}, {}};
  std::vector<PromptEvent> events;
  events.reserve(messages.size());
  for (std::size_t i = 0; i < messages.size(); ++i) {
    PromptEvent event;
    event.id = "bench-" + std::to_string(i);
    event.tenant = i % 3 == 0 ? "acme" : "globex";
    event.messages = messages[i];
    if (i % 5 == 0) event.metadata = {{"tags", {"support"}}};
    events.push_back(std::move(event));
  }
  volatile std::size_t sink = 0;
  for (const auto& e : events) sink = sink + (router.route(e) ? 1 : 0);  // warm-up
  for (int r = 0; r < rounds; ++r) {
    for (const auto& e : events) {
      const auto wall0 = Clock::now();
      const double cpu0 = thread_cpu_us();
      auto decision = router.route(e, RouteContext{});
      m.cpu_us.push_back(thread_cpu_us() - cpu0);
      m.wall_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - wall0).count());
      sink = sink + (decision ? decision->reason.size() : 0);
    }
  }
  return m;
}

int run(const Options& o) {
  const std::filesystem::path dir = std::filesystem::path(o.shared_dir) / "data" / "prompts";
  std::vector<std::string> texts;
  std::vector<std::string> answers;  // a model's answer to each text, when the outcomes file has them
  if (o.outcomes.empty()) {
    texts = load_prompts(dir, o.prompts);
  } else {
    auto rows = read_outcomes(o.outcomes);
    if (!rows) {
      std::fprintf(stderr, "cascade_bench_router: %s\n", rows.error().message.c_str());
      return 2;
    }
    for (const auto& row : *rows) {
      if (texts.size() >= o.prompts) break;
      texts.push_back(row.prompt);
      for (const auto& [model, outcome] : row.outcomes) {
        if (outcome.response && answers.size() < texts.size()) answers.push_back(*outcome.response);
      }
      if (answers.size() < texts.size()) answers.clear();  // answers for every prompt or for none
    }
  }
  if (texts.empty()) {
    std::fprintf(stderr, "cascade_bench_router: no prompts in %s (pass --shared-dir)\n", dir.c_str());
    return 2;
  }
  std::vector<nlohmann::json> messages;
  double chars = 0;
  std::size_t longest = 0;
  for (const auto& t : texts) {
    messages.push_back(user_messages(t));
    chars += static_cast<double>(t.size());
    longest = std::max(longest, t.size());
  }

  std::vector<Measured> results;
  results.push_back(measure("heuristic", "complexity score", *make_heuristic_scorer(), messages, o.rounds));

  RouterConfig learned_config;
  learned_config.scorer = "learned";
  learned_config.model_file = o.learned_file;
  std::shared_ptr<const RouteScorer> learned_scorer;
  if (auto learned = load_route_scorer(learned_config)) {
    learned_scorer = *learned;
    results.push_back(measure("learned", o.learned_file.empty() ? "built-in model" : o.learned_file, **learned,
                              messages, o.rounds));
  } else {
    std::fprintf(stderr, "cascade_bench_router: learned scorer skipped: %s\n", learned.error().message.c_str());
  }

  std::shared_ptr<const RouteScorer> knn;
  std::string knn_detail;
  if (!o.knn_file.empty()) {
    auto loaded = load_route_model(o.knn_file);
    if (!loaded) {
      std::fprintf(stderr, "cascade_bench_router: %s\n", loaded.error().message.c_str());
      return 2;
    }
    knn = *loaded;
    knn_detail = o.knn_file;
  } else {
    // Decision time depends on how many past outcomes are searched, not on
    // their labels: index o.knn_size real prompts (cycled) with alternating labels.
    std::vector<PairOutcome> pairs;
    for (std::size_t i = 0; i < o.knn_size; ++i) {
      const std::string& t = texts[i % texts.size()];
      PairOutcome pair;
      pair.prompt = i < texts.size() ? t : t + " #" + std::to_string(i);
      pair.weak_quality = i % 2 ? 1.0 : 0.0;
      pair.strong_quality = 1.0;
      pairs.push_back(std::move(pair));
    }
    TrainingOptions training;
    training.k_candidates = {20};
    training.validation_fraction = 0.0;
    auto trained = train_knn(pairs, training);
    if (!trained) {
      std::fprintf(stderr, "cascade_bench_router: %s\n", trained.error().message.c_str());
      return 2;
    }
    auto parsed = parse_route_model(trained->model.dump());
    if (!parsed) return 2;
    knn = *parsed;
    knn_detail = std::to_string(o.knn_size) + " past outcomes, k=20";
  }
  results.push_back(measure("knn", knn_detail, *knn, messages, o.rounds));

  if (auto catalog = ModelCatalog::load(CatalogConfig{})) {
    const auto every_provider = [](std::string_view) { return true; };
    const Router plain(RouterConfig{}, *catalog, every_provider, make_heuristic_scorer());
    results.push_back(measure_router("route", "heuristic, no policies", plain, messages, o.rounds));
    // The closed loop's tuned cuts (docs/routing.md, "Closed loop"): acme's
    // third of the requests finds a record, globex's looks one up and does not.
    auto tuned = std::make_shared<TunedCuts>();
    for (const char* tenant : {"acme", "initech", "umbrella"}) {
      TuningRecord record;
      record.tenant = tenant;
      record.key = tuning_key("", "balanced");
      record.cuts = {0.35, 0.7};
      record.configured = {RouterConfig{}.balanced.small_max, RouterConfig{}.balanced.medium_max};
      record.version = 3;
      tuned->set(record);
    }
    Router tuned_router(RouterConfig{}, *catalog, every_provider, make_heuristic_scorer());
    tuned_router.use_tuned_cuts(tuned);
    results.push_back(measure_router("route+tun", "heuristic, tuned cuts (closed loop)", tuned_router, messages, o.rounds));
    // Three rules (tenant, tag, a regex that is searched in every prompt)
    // and an experiment: the worst case a policy config adds per request.
    RouterConfig with_policies;
    with_policies.policies["frugal"].preference = "cost";
    with_policies.policies["careful"].thresholds = TierThresholds{0.15, 0.45};
    RouteRuleConfig vip;
    vip.tenant = "vip";
    vip.tier = "large";
    RouteRuleConfig support;
    support.tag = "support";
    support.policy = "frugal";
    RouteRuleConfig code;
    code.prompt = R"((?i)\b(sql|regex|kubernetes|segfault)\b)";
    code.policy = "careful";
    with_policies.rules = {vip, support, code};
    with_policies.experiment = {"bench", {"frugal", "careful"}, 0.5};
    auto compiled = compile_route_policies(with_policies, *catalog);
    if (!compiled) {
      std::fprintf(stderr, "cascade_bench_router: %s\n", compiled.error().message.c_str());
      return 2;
    }
    const Router policed(with_policies, *catalog, every_provider, make_heuristic_scorer(), *compiled);
    results.push_back(measure_router("route+pol", "heuristic, 3 rules + experiment", policed, messages, o.rounds));
    if (learned_scorer) {
      // The learned scorer's decision, then with cost-aware routing: two
      // more catalog walks (the cheapest small and large models that fit)
      // and the prices of the upgrade.
      const Router learned_router(RouterConfig{}, *catalog, every_provider, learned_scorer);
      results.push_back(measure_router("route+lrn", "learned", learned_router, messages, o.rounds));
      RouterConfig cost_aware;
      cost_aware.cost_aware.enabled = true;
      const Router weighed(cost_aware, *catalog, every_provider, learned_scorer);
      results.push_back(measure_router("route+cst", "learned, cost-aware", weighed, messages, o.rounds));
    }
  }

  if (!o.verifier_file.empty()) {
    auto verifier = AnswerVerifier::load(o.verifier_file);
    if (!verifier) {
      std::fprintf(stderr, "cascade_bench_router: %s\n", verifier.error().message.c_str());
      return 2;
    }
    if (answers.size() != texts.size()) {
      std::fprintf(stderr, "cascade_bench_router: --verifier needs an --outcomes file with a response for every prompt\n");
      return 2;
    }
    results.push_back(measure_verifier(o.verifier_file, **verifier, messages, answers, o.rounds));
  }

  std::printf("router scorer decision time: %zu real prompts from %s (mean %.0f chars, longest %zu), %d rounds, 1 thread\n",
              texts.size(), o.outcomes.empty() ? "data/prompts" : o.outcomes.c_str(), chars / static_cast<double>(texts.size()), longest, o.rounds);
  std::printf("%-10s %-34s %9s %9s %9s %9s %9s\n", "scorer", "model", "cpu p50", "cpu p99", "cpu max", "wall p50",
              "wall p99");
  nlohmann::json out = nlohmann::json::array();
  for (const auto& m : results) {
    std::printf("%-10s %-34s %7.1fus %7.1fus %7.1fus %7.1fus %7.1fus\n", m.name.c_str(), m.detail.substr(0, 34).c_str(),
                percentile(m.cpu_us, 0.5), percentile(m.cpu_us, 0.99), percentile(m.cpu_us, 1.0),
                percentile(m.wall_us, 0.5), percentile(m.wall_us, 0.99));
    out.push_back({{"scorer", m.name},
                   {"model", m.detail},
                   {"decisions", m.cpu_us.size()},
                   {"cpu_p50_us", percentile(m.cpu_us, 0.5)},
                   {"cpu_p99_us", percentile(m.cpu_us, 0.99)},
                   {"wall_p50_us", percentile(m.wall_us, 0.5)},
                   {"wall_p99_us", percentile(m.wall_us, 0.99)}});
  }
  if (o.json) std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace
}  // namespace cascade::bench

int main(int argc, char** argv) {
  cascade::bench::Options o;
  o.shared_dir = CASCADE_BENCH_DEFAULT_SHARED_DIR;
  if (const char* s = std::getenv("CASCADE_SHARED_DIR")) o.shared_dir = s;
  CLI::App app{"Decision time of the router's scorers over real prompts"};
  app.add_option("--shared-dir", o.shared_dir, "Folder with data/prompts (default CASCADE_SHARED_DIR or ../shared)");
  app.add_option("--outcomes", o.outcomes, "Score the prompts of this outcomes file (cascade route-data) instead");
  app.add_option("--learned", o.learned_file, "Learned model file (default: the built-in one)");
  app.add_option("--knn", o.knn_file, "knn model file (default: one built here over --knn-size prompts)");
  app.add_option("--verifier", o.verifier_file,
                 "Also time this answer verifier (route-train --router verifier) on the --outcomes file's answers");
  app.add_option("--knn-size", o.knn_size, "Past outcomes the built knn model searches");
  app.add_option("--prompts", o.prompts, "Prompts per round");
  app.add_option("--rounds", o.rounds, "Measured rounds over the prompts");
  app.add_flag("--json", o.json, "Also print one JSON line with every figure");
  CLI11_PARSE(app, argc, argv);
  return cascade::bench::run(o);
}
