// Outcomes files, the strong/weak pair view, the deterministic split, and
// RouteLLM's metrics over a threshold sweep (docs/routing.md, "Metrics").
#include "router/tools/evaluation.h"

#include "core/hash.h"
#include "core/text.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <numeric>
#include <set>
#include <sstream>

namespace cascade {
namespace {

std::uint64_t hash_text(std::string_view text, std::uint64_t seed) {
  const std::uint64_t basis = kFnv1aOffsetBasis ^ splitmix64_finalize(seed + kGoldenGamma);
  return splitmix64_finalize(fnv1a_extend(basis, text));
}

double round6(double v) { return std::round(v * 1e6) / 1e6; }

nlohmann::ordered_json optional_number(const std::optional<double>& v) {
  return v ? nlohmann::ordered_json(round6(*v)) : nlohmann::ordered_json(nullptr);
}

// What one prompt yields in each of the two states a threshold puts it in.
struct PromptState {
  double quality = 0;
  double cost = 0;
  bool strong_call = false;
};

struct Crossing {
  double share = 0;
  double cost_fraction = 0;
  double threshold = 0;
};

// The cheapest point of the curve (interpolated between consecutive points)
// whose `value` reaches `target`.
template <class Value>
std::optional<Crossing> first_reaching(const std::vector<CurvePoint>& curve, double target, Value value,
                                       bool minimize_share) {
  std::optional<Crossing> best;
  auto consider = [&](const Crossing& c) {
    if (!best || (minimize_share ? c.share < best->share : c.cost_fraction < best->cost_fraction)) best = c;
  };
  constexpr double kEps = 1e-12;
  for (std::size_t i = 0; i < curve.size(); ++i) {
    const CurvePoint& b = curve[i];
    if (value(b) + kEps < target) continue;
    if (i > 0 && value(curve[i - 1]) + kEps < target) {
      const CurvePoint& a = curve[i - 1];
      const double t = (target - value(a)) / (value(b) - value(a));
      consider({a.strong_share + t * (b.strong_share - a.strong_share),
                a.cost_fraction + t * (b.cost_fraction - a.cost_fraction), b.threshold});
    } else {
      consider({b.strong_share, b.cost_fraction, b.threshold});
    }
  }
  return best;
}

// RouteLLM's APGR: mean PGR over the strong-call share range the curve covers.
std::optional<double> apgr_of(const std::vector<CurvePoint>& curve) {
  if (curve.size() < 2) return std::nullopt;
  double area = 0;
  for (std::size_t i = 1; i < curve.size(); ++i)
    area += (curve[i].strong_share - curve[i - 1].strong_share) * (curve[i].pgr + curve[i - 1].pgr) / 2;
  const double width = curve.back().strong_share - curve.front().strong_share;
  if (width <= 0) return std::nullopt;
  return area / width;
}

RoutingEvaluation evaluate_policy(const std::vector<PairOutcome>& pairs, const std::vector<double>& p_weak_ok,
                                  const std::vector<PromptState>& direct, const std::vector<PromptState>& weak_path,
                                  const EvaluationOptions& options, bool with_baselines) {
  RoutingEvaluation out;
  const std::size_t n = pairs.size();
  out.rows = n;
  if (n == 0 || p_weak_ok.size() != n) return out;
  double weak_q = 0, strong_q = 0, weak_c = 0, strong_c = 0;
  for (const auto& p : pairs) {
    weak_q += p.weak_quality;
    strong_q += p.strong_quality;
    weak_c += p.weak_cost;
    strong_c += p.strong_cost;
  }
  out.weak_quality = weak_q / static_cast<double>(n);
  out.strong_quality = strong_q / static_cast<double>(n);
  out.weak_cost_fraction = strong_c > 0 ? weak_c / strong_c : 0;
  const double gap = out.strong_quality - out.weak_quality;
  const bool has_gap = gap > 1e-12;

  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::ranges::stable_sort(order, [&](std::size_t a, std::size_t b) { return p_weak_ok[a] < p_weak_ok[b]; });

  double quality = 0, cost = 0, strong_calls = 0;
  for (const auto& s : weak_path) {
    quality += s.quality;
    cost += s.cost;
    strong_calls += s.strong_call;
  }
  auto point = [&](std::size_t k) {
    CurvePoint c;
    c.threshold = k < n ? p_weak_ok[order[k]] : std::nextafter(p_weak_ok[order[n - 1]], INFINITY);
    c.strong_share = strong_calls / static_cast<double>(n);
    c.quality = quality / static_cast<double>(n);
    c.cost_fraction = strong_c > 0 ? cost / strong_c : 0;
    c.pgr = has_gap ? (c.quality - out.weak_quality) / gap : 0;
    return c;
  };
  out.curve.push_back(point(0));
  for (std::size_t k = 1; k <= n; ++k) {
    const std::size_t i = order[k - 1];
    quality += direct[i].quality - weak_path[i].quality;
    cost += direct[i].cost - weak_path[i].cost;
    strong_calls += static_cast<double>(direct[i].strong_call) - static_cast<double>(weak_path[i].strong_call);
    if (k == n || p_weak_ok[order[k - 1]] != p_weak_ok[order[k]]) out.curve.push_back(point(k));
  }

  const auto quality_of = [](const CurvePoint& c) { return c.quality; };
  for (const double target : {0.50, 0.80, 0.95}) {
    CostAtQuality at{target, {}, {}, {}};
    if (auto c = first_reaching(out.curve, target * out.strong_quality, quality_of, false)) {
      at.cost_fraction = c->cost_fraction;
      at.strong_share = c->share;
      at.threshold = c->threshold;
    }
    out.cost_at.push_back(at);
  }
  if (!has_gap) return out;
  out.apgr = apgr_of(out.curve);
  const auto pgr_of = [](const CurvePoint& c) { return c.pgr; };
  if (auto c = first_reaching(out.curve, 0.5, pgr_of, true)) out.cpt_50 = c->share;
  if (auto c = first_reaching(out.curve, 0.8, pgr_of, true)) out.cpt_80 = c->share;
  if (!with_baselines) return out;

  // Random routing between the two models over the same prompts.
  std::vector<double> random_apgrs;
  SplitMix64 rng(options.seed ^ 0xA5A5A5A5DEADBEEFull);
  std::vector<std::size_t> shuffled(n);
  for (int r = 0; r < options.random_repeats; ++r) {
    std::iota(shuffled.begin(), shuffled.end(), 0);
    for (std::size_t i = n - 1; i > 0; --i) std::swap(shuffled[i], shuffled[rng.below(i + 1)]);
    double q = weak_q, area = 0, previous_pgr = 0;
    for (std::size_t k = 1; k <= n; ++k) {
      const auto& p = pairs[shuffled[k - 1]];
      q += p.strong_quality - p.weak_quality;
      const double pgr = (q / static_cast<double>(n) - out.weak_quality) / gap;
      area += (pgr + previous_pgr) / 2 / static_cast<double>(n);
      previous_pgr = pgr;
    }
    random_apgrs.push_back(area);
  }
  if (!random_apgrs.empty()) {
    std::ranges::sort(random_apgrs);
    out.random_apgr = std::accumulate(random_apgrs.begin(), random_apgrs.end(), 0.0) /
                      static_cast<double>(random_apgrs.size());
    const auto at = [&](double q) {
      return random_apgrs[static_cast<std::size_t>(std::round(q * static_cast<double>(random_apgrs.size() - 1)))];
    };
    out.random_apgr_low = at(0.025);
    out.random_apgr_high = at(0.975);
  }
  // In expectation, random routing of a share s of prompts to the strong
  // model recovers s of the gap at (weak + s * (strong - weak)) of the cost.
  const double share95 = std::clamp((0.95 * out.strong_quality - out.weak_quality) / gap, 0.0, 1.0);
  out.random_cost_at_95 = out.weak_cost_fraction + share95 * (1 - out.weak_cost_fraction);

  std::vector<double> oracle(n);
  std::vector<PromptState> strong_state(n), weak_state(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto& p = pairs[i];
    oracle[i] = p.strong_quality > p.weak_quality ? 0.0 : p.strong_quality < p.weak_quality ? 1.0 : 0.5;
    strong_state[i] = {p.strong_quality, p.strong_cost, true};
    weak_state[i] = {p.weak_quality, p.weak_cost, false};
  }
  const RoutingEvaluation best = evaluate_policy(pairs, oracle, strong_state, weak_state, options, false);
  out.oracle_apgr = best.apgr;
  out.oracle_cost_at_95 = best.cost_at.back().cost_fraction;
  return out;
}

}  // namespace

// ------------------------------------------------------------- outcomes ----

Result<OutcomeRow> parse_outcome_line(std::string_view line) {
  const auto j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return fail(ErrorCode::invalid_request, "not a JSON object");
  const auto prompt = j.find("prompt");
  const auto outcomes = j.find("outcomes");
  if (prompt == j.end() || !prompt->is_string())
    return fail(ErrorCode::invalid_request, "'prompt' must be a string");
  if (outcomes == j.end() || !outcomes->is_object() || outcomes->empty())
    return fail(ErrorCode::invalid_request, "'outcomes' must be a non-empty object of model -> outcome");
  OutcomeRow row;
  row.prompt = prompt->get<std::string>();
  if (const auto source = j.find("source"); source != j.end() && source->is_string()) row.source = source->get<std::string>();
  for (const auto& [model, o] : outcomes->items()) {
    const auto q = o.is_object() ? o.find("quality") : o.end();
    const auto c = o.is_object() ? o.find("cost_usd") : o.end();
    if (!o.is_object() || q == o.end() || !q->is_number() || c == o.end() || !c->is_number())
      return fail(ErrorCode::invalid_request, "outcome of '" + model + "' needs numbers 'quality' and 'cost_usd'");
    ModelOutcome m{q->get<double>(), c->get<double>(), std::nullopt};
    if (!(m.quality >= 0 && m.quality <= 1) || !(m.cost_usd >= 0) || !std::isfinite(m.cost_usd))
      return fail(ErrorCode::invalid_request, "outcome of '" + model + "': quality must be in 0..1 and cost_usd >= 0");
    if (const auto r = o.find("response"); r != o.end() && r->is_string()) m.response = r->get<std::string>();
    row.outcomes.emplace(model, std::move(m));
  }
  return row;
}

nlohmann::json to_json(const OutcomeRow& row) {
  nlohmann::json outcomes = nlohmann::json::object();
  for (const auto& [model, o] : row.outcomes) {
    nlohmann::json entry = {{"quality", o.quality}, {"cost_usd", o.cost_usd}};
    if (o.response) entry["response"] = *o.response;
    outcomes[model] = std::move(entry);
  }
  nlohmann::json j = {{"prompt", row.prompt}, {"outcomes", std::move(outcomes)}};
  if (!row.source.empty()) j["source"] = row.source;
  return j;
}

Result<std::vector<OutcomeRow>> read_outcomes(const std::string& path) {
  std::ifstream in(path);
  if (!in) return fail(ErrorCode::invalid_request, "cannot open outcomes file '" + path + "'");
  std::vector<OutcomeRow> rows;
  std::string line;
  for (std::size_t number = 1; std::getline(in, line); ++number) {
    if (trim_space(line).empty()) continue;
    auto row = parse_outcome_line(line);
    if (!row) return fail(ErrorCode::invalid_request, path + ":" + std::to_string(number) + ": " + row.error().message);
    rows.push_back(std::move(*row));
  }
  return rows;
}

Result<PairSelection> select_pair(const std::vector<OutcomeRow>& rows, std::string_view weak, std::string_view strong,
                                  std::string_view check) {
  auto names = [](std::string_view list) {
    std::vector<std::string> out;
    std::stringstream ss{std::string(list)};
    for (std::string item; std::getline(ss, item, ',');) {
      if (auto t = trim_space(item); !t.empty()) out.emplace_back(t);
    }
    return out;
  };
  const auto weak_names = names(weak);
  const auto strong_names = names(strong);
  if (weak_names.empty() || strong_names.empty())
    return fail(ErrorCode::invalid_request, "name the weak and the strong model (--weak, --strong)");
  auto find = [](const OutcomeRow& row, const std::vector<std::string>& candidates) -> const ModelOutcome* {
    for (const auto& name : candidates) {
      if (auto it = row.outcomes.find(name); it != row.outcomes.end()) return &it->second;
    }
    return nullptr;
  };
  const auto check_names = names(check);
  PairSelection selection;
  for (const auto& row : rows) {
    const ModelOutcome* w = find(row, weak_names);
    const ModelOutcome* s = find(row, strong_names);
    const ModelOutcome* c = check_names.empty() ? nullptr : find(row, check_names);
    if (w == nullptr || s == nullptr || w == s || (!check_names.empty() && (c == nullptr || c == w || c == s))) {
      ++selection.skipped;
      continue;
    }
    PairOutcome pair = pair_outcome(row.prompt, w->quality, s->quality, w->cost_usd, s->cost_usd, w->response);
    if (c != nullptr) {
      pair.check_cost = c->cost_usd;
      pair.check_response = c->response;
    }
    pair.source = row.source;
    selection.pairs.push_back(std::move(pair));
  }
  if (selection.pairs.empty())
    return fail(ErrorCode::invalid_request, "no row has outcomes of both '" + std::string(weak) + "' and '" +
                                                std::string(strong) + "'");
  return selection;
}

Split split_by_prompt(const std::vector<PairOutcome>& pairs, double train_fraction, std::uint64_t seed) {
  std::vector<std::pair<std::uint64_t, std::size_t>> keyed;
  keyed.reserve(pairs.size());
  for (std::size_t i = 0; i < pairs.size(); ++i) keyed.emplace_back(hash_text(pairs[i].prompt, seed), i);
  std::ranges::sort(keyed);
  const auto train = static_cast<std::size_t>(
      std::llround(std::clamp(train_fraction, 0.0, 1.0) * static_cast<double>(pairs.size())));
  Split split;
  for (std::size_t k = 0; k < keyed.size(); ++k) (k < train ? split.train : split.test).push_back(keyed[k].second);
  // Keep identical prompts together: move the rest of a group that straddles the cut.
  while (!split.train.empty() && !split.test.empty() &&
         pairs[split.train.back()].prompt == pairs[split.test.front()].prompt) {
    split.train.push_back(split.test.front());
    split.test.erase(split.test.begin());
  }
  return split;
}

Result<WeakChoice> choose_weak_model(const std::vector<OutcomeRow>& rows, const std::vector<std::string>& candidates,
                                     std::string_view strong, std::string_view check, double train_fraction,
                                     std::uint64_t seed) {
  if (candidates.empty()) return fail(ErrorCode::invalid_request, "no candidate weak model");
  std::vector<std::vector<PairOutcome>> pairs;
  std::map<std::string, std::size_t> training_sides;  // prompt -> candidates it trains for
  for (const auto& model : candidates) {
    if (model == strong || (!check.empty() && model == check))
      return fail(ErrorCode::invalid_request, "candidate weak model '" + model + "' is the strong or the check model");
    auto selected = select_pair(rows, model, strong, check);
    if (!selected)
      return fail(ErrorCode::invalid_request, "candidate weak model '" + model + "': " + selected.error().message);
    const Split split = split_by_prompt(selected->pairs, train_fraction, seed);
    std::set<std::string_view> seen;
    for (const std::size_t i : split.train)
      if (seen.insert(selected->pairs[i].prompt).second) ++training_sides[selected->pairs[i].prompt];
    pairs.push_back(std::move(selected->pairs));
  }
  WeakChoice choice;
  int best = -1;
  for (std::size_t c = 0; c < candidates.size(); ++c) {
    WeakCandidate candidate;
    candidate.model = candidates[c];
    double wq = 0, sq = 0, wc = 0, sc = 0;
    for (const auto& p : pairs[c]) {
      const auto sides = training_sides.find(p.prompt);
      if (sides == training_sides.end() || sides->second < candidates.size()) continue;
      ++candidate.rows;
      wq += p.weak_quality;
      sq += p.strong_quality;
      wc += p.weak_cost;
      sc += p.strong_cost;
    }
    if (candidate.rows == 0 || sc <= 0)
      return fail(ErrorCode::invalid_request,
                  "candidate weak model '" + candidate.model + "': no training prompt shared with every other candidate");
    const auto n = static_cast<double>(candidate.rows);
    candidate.weak_quality = wq / n;
    candidate.strong_quality = sq / n;
    candidate.weak_cost_fraction = wc / sc;
    const double gap = candidate.strong_quality - candidate.weak_quality;
    const double share95 =
        gap <= 0 ? 0.0 : std::clamp((0.95 * candidate.strong_quality - candidate.weak_quality) / gap, 0.0, 1.0);
    candidate.random_cost_at_95 = candidate.weak_cost_fraction + share95 * (1 - candidate.weak_cost_fraction);
    if (best < 0 || candidate.random_cost_at_95 < choice.candidates[static_cast<std::size_t>(best)].random_cost_at_95)
      best = static_cast<int>(c);
    choice.candidates.push_back(std::move(candidate));
  }
  choice.model = choice.candidates[static_cast<std::size_t>(best)].model;
  return choice;
}

nlohmann::json pair_messages(const PairOutcome& pair, bool source_as_system) {
  nlohmann::json messages = nlohmann::json::array();
  if (source_as_system && !pair.source.empty()) messages.push_back({{"role", "system"}, {"content", pair.source}});
  messages.push_back({{"role", "user"}, {"content", pair.prompt}});
  return messages;
}

// ------------------------------------------------------------ cost-aware ----

double CostModel::extra_cost(std::string_view prompt) const {
  const double bytes = static_cast<double>(prompt.size());
  const double extra = (strong_a + strong_b * bytes) - (weak_a + weak_b * bytes);
  // A call never costs nothing: keep a floor so the ranking stays finite.
  return std::max(extra, 1e-3 * mean_extra);
}

CostModel fit_cost_model(const std::vector<PairOutcome>& train) {
  CostModel m;
  if (train.empty()) return m;
  const double n = static_cast<double>(train.size());
  double mx = 0, mw = 0, ms = 0;
  for (const auto& p : train) {
    mx += static_cast<double>(p.prompt.size()) / n;
    mw += p.weak_cost / n;
    ms += p.strong_cost / n;
  }
  double sxx = 0, sxw = 0, sxs = 0;
  for (const auto& p : train) {
    const double dx = static_cast<double>(p.prompt.size()) - mx;
    sxx += dx * dx;
    sxw += dx * (p.weak_cost - mw);
    sxs += dx * (p.strong_cost - ms);
  }
  m.weak_b = sxx > 0 ? sxw / sxx : 0;
  m.strong_b = sxx > 0 ? sxs / sxx : 0;
  m.weak_a = mw - m.weak_b * mx;
  m.strong_a = ms - m.strong_b * mx;
  m.mean_extra = ms - mw > 0 ? ms - mw : 1;
  return m;
}

std::vector<double> gain_per_cost_scores(const std::vector<PairOutcome>& pairs, const std::vector<double>& p_weak_ok,
                                         const CostModel& costs) {
  std::vector<double> out(pairs.size());
  for (std::size_t i = 0; i < pairs.size() && i < p_weak_ok.size(); ++i)
    out[i] = -(1.0 - p_weak_ok[i]) / (costs.extra_cost(pairs[i].prompt) / costs.mean_extra);
  return out;
}

// ----------------------------------------------------------- evaluation ----

RoutingEvaluation evaluate_routing(const std::vector<PairOutcome>& pairs, const std::vector<double>& p_weak_ok,
                                   const EvaluationOptions& options) {
  std::vector<PromptState> strong(pairs.size()), weak(pairs.size());
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    strong[i] = {pairs[i].strong_quality, pairs[i].strong_cost, true};
    weak[i] = {pairs[i].weak_quality, pairs[i].weak_cost, false};
  }
  return evaluate_policy(pairs, p_weak_ok, strong, weak, options, true);
}

RoutingEvaluation evaluate_cascade(const std::vector<PairOutcome>& pairs, const std::vector<double>& p_weak_ok,
                                   const std::vector<bool>& weak_fails, const EvaluationOptions& options,
                                   bool pay_check) {
  if (weak_fails.size() != pairs.size()) return RoutingEvaluation{};
  std::vector<PromptState> strong(pairs.size()), weak_first(pairs.size());
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    const auto& p = pairs[i];
    const double first = p.weak_cost + (pay_check ? p.check_cost : 0.0);
    strong[i] = {p.strong_quality, p.strong_cost, true};
    weak_first[i] = weak_fails[i] ? PromptState{p.strong_quality, first + p.strong_cost, true}
                                  : PromptState{p.weak_quality, first, false};
  }
  return evaluate_policy(pairs, p_weak_ok, strong, weak_first, options, true);
}

RoutingEvaluation evaluate_verified_cascade(const std::vector<PairOutcome>& pairs, const std::vector<double>& p_weak_ok,
                                            const std::vector<bool>& weak_fails, const EvaluationOptions& options,
                                            bool pay_check) {
  if (weak_fails.size() != pairs.size()) return RoutingEvaluation{};
  std::vector<PromptState> escalated(pairs.size()), kept(pairs.size());
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    const auto& p = pairs[i];
    const double first = p.weak_cost + (pay_check ? p.check_cost : 0.0);
    escalated[i] = {p.strong_quality, first + p.strong_cost, true};
    kept[i] = weak_fails[i] ? escalated[i] : PromptState{p.weak_quality, first, false};
  }
  return evaluate_policy(pairs, p_weak_ok, escalated, kept, options, true);
}

nlohmann::ordered_json to_json(const RoutingEvaluation& e, std::size_t max_curve_points) {
  nlohmann::ordered_json j;
  j["rows"] = e.rows;
  j["weak_quality"] = round6(e.weak_quality);
  j["strong_quality"] = round6(e.strong_quality);
  j["weak_cost_fraction"] = round6(e.weak_cost_fraction);
  j["apgr"] = optional_number(e.apgr);
  j["random_apgr"] = optional_number(e.random_apgr);
  j["random_apgr_ci95"] = e.random_apgr_low
                              ? nlohmann::ordered_json::array({round6(*e.random_apgr_low), round6(*e.random_apgr_high)})
                              : nlohmann::ordered_json(nullptr);
  j["cpt_50"] = optional_number(e.cpt_50);
  j["cpt_80"] = optional_number(e.cpt_80);
  for (const auto& at : e.cost_at) {
    const std::string pct = std::to_string(static_cast<int>(std::lround(at.target * 100)));
    j["cost_at_" + pct] = optional_number(at.cost_fraction);
    if (pct == "95") {
      j["strong_calls_at_95"] = optional_number(at.strong_share);
      j["threshold_at_95"] = optional_number(at.threshold);
    }
  }
  j["random_cost_at_95"] = optional_number(e.random_cost_at_95);
  j["oracle_apgr"] = optional_number(e.oracle_apgr);
  j["oracle_cost_at_95"] = optional_number(e.oracle_cost_at_95);

  std::vector<std::size_t> keep;
  if (e.curve.size() <= max_curve_points || max_curve_points < 2) {
    keep.resize(e.curve.size());
    std::iota(keep.begin(), keep.end(), 0);
  } else {
    const double first = e.curve.front().strong_share;
    const double last = e.curve.back().strong_share;
    std::size_t i = 0;
    for (std::size_t g = 0; g < max_curve_points; ++g) {
      const double target = first + (last - first) * static_cast<double>(g) / static_cast<double>(max_curve_points - 1);
      while (i + 1 < e.curve.size() && e.curve[i].strong_share < target) ++i;
      if (keep.empty() || keep.back() != i) keep.push_back(i);
    }
    if (keep.front() != 0) keep.insert(keep.begin(), 0);
    if (keep.back() != e.curve.size() - 1) keep.push_back(e.curve.size() - 1);
  }
  nlohmann::ordered_json curve = nlohmann::ordered_json::array();
  for (const std::size_t k : keep) {
    const CurvePoint& c = e.curve[k];
    nlohmann::ordered_json point;
    point["threshold"] = round6(c.threshold);
    point["strong_share"] = round6(c.strong_share);
    point["quality"] = round6(c.quality);
    point["cost_fraction"] = round6(c.cost_fraction);
    point["pgr"] = round6(c.pgr);
    curve.push_back(std::move(point));
  }
  j["curve"] = std::move(curve);
  return j;
}

}  // namespace cascade
