#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>

#include "cache/tools/cache_eval.h"
#include "cache/tools/same_question.h"

namespace cascade {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kTenant = "eval";

std::vector<std::string_view> split_tabs(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (std::size_t tab; (tab = line.find('\t', start)) != std::string_view::npos; start = tab + 1) {
    out.push_back(line.substr(start, tab - start));
  }
  out.push_back(line.substr(start));
  return out;
}

std::optional<int> parse_label(std::string_view s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == ' ')) s.remove_suffix(1);
  if (s == "0") return 0;
  if (s == "1") return 1;
  return std::nullopt;
}

std::optional<int> label_of(const json& value) {
  if (value.is_boolean()) return value.get<bool>() ? 1 : 0;
  if (value.is_number_integer() && (value.get<std::int64_t>() == 0 || value.get<std::int64_t>() == 1)) {
    return static_cast<int>(value.get<std::int64_t>());
  }
  if (value.is_string()) return parse_label(value.get<std::string>());
  return std::nullopt;
}

double percentile(std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  return sorted[std::min(sorted.size() - 1, static_cast<std::size_t>(q * (sorted.size() - 1) + 0.5))];
}

float dot(std::span<const float> a, std::span<const float> b) {
  float s = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

Result<std::vector<ParaphrasePair>> load_paraphrase_pairs(const std::string& path) {
  std::ifstream in(path);
  if (!in) return fail(ErrorCode::invalid_request, "cannot read " + path);
  std::vector<ParaphrasePair> pairs;
  std::string line;
  std::size_t number = 0;
  std::optional<bool> tsv;
  if (path.size() >= 4 && path.substr(path.size() - 4) == ".tsv") tsv = true;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    if (!tsv) tsv = line.find('\t') != std::string::npos && line.front() != '{';
    const std::string where = path + ":" + std::to_string(number) + ": ";
    if (*tsv) {
      const auto fields = split_tabs(line);
      if (fields.size() < 3) return fail(ErrorCode::invalid_request, where + "expected id, sentence1, sentence2, label");
      const auto label = parse_label(fields.back());
      if (!label) {
        if (pairs.empty()) continue;  // the header line
        return fail(ErrorCode::invalid_request, where + "label is not 0 or 1");
      }
      pairs.push_back({std::string(fields[fields.size() - 3]), std::string(fields[fields.size() - 2]), *label});
    } else {
      const json row = json::parse(line, nullptr, false);
      if (!row.is_object()) return fail(ErrorCode::invalid_request, where + "not a JSON object");
      const auto a = row.find("text_a");
      const auto b = row.find("text_b");
      const auto l = row.find("label");
      if (a == row.end() || !a->is_string() || b == row.end() || !b->is_string() || l == row.end()) {
        return fail(ErrorCode::invalid_request, where + "needs string text_a, text_b and a label");
      }
      const auto label = label_of(*l);
      if (!label) return fail(ErrorCode::invalid_request, where + "label is not 0 or 1");
      pairs.push_back({a->get<std::string>(), b->get<std::string>(), *label});
    }
  }
  return pairs;
}

std::string to_json_line(const CacheEvalRow& row) {
  json line = {
      {"threshold", row.threshold},
      {"hits", row.hits},
      {"correct_hits", row.correct_hits},
      {"wrong_hits", row.wrong_hits},
      {"precision", std::round(row.precision * 1e4) / 1e4},
      {"recall", std::round(row.recall * 1e4) / 1e4},
      {"hit_rate", std::round(row.hit_rate * 1e4) / 1e4},
      {"lookup_p50_us", std::round(row.lookup_p50_us * 10) / 10},
      {"lookup_p99_us", std::round(row.lookup_p99_us * 10) / 10},
      {"precision_labelled", std::round(row.precision_labelled * 1e4) / 1e4},
      {"negative_hit_rate", std::round(row.negative_hit_rate * 1e5) / 1e5},
  };
  if (row.min_probability >= 0) line["min_probability"] = row.min_probability;
  if (row.is_default) line["default"] = true;
  return line.dump();
}

Result<CacheEvalReport> run_cache_eval(const std::vector<ParaphrasePair>& pairs, Embedder& embedder,
                                       const CacheEvalOptions& options) {
  if (options.thresholds.empty()) return fail(ErrorCode::invalid_request, "no thresholds");
  SemanticMatcherOptions matcher_options;
  matcher_options.index = options.index;
  matcher_options.defaults = options.tenant;
  matcher_options.defaults.threshold = *std::min_element(options.thresholds.begin(), options.thresholds.end());
  std::vector<double> cutoffs = options.min_probabilities;
  if (cutoffs.empty()) cutoffs.push_back(options.tenant.min_probability);
  if (options.tenant.model) matcher_options.defaults.min_probability = *std::min_element(cutoffs.begin(), cutoffs.end());
  SemanticMatcher matcher(embedder, matcher_options);
  CacheEvalReport report;

  // Distinct stored texts; the entry id is the position in `stored`.
  std::vector<std::string> stored;
  std::unordered_map<std::string, std::uint64_t> entry_of;  // normalized text -> entry id
  for (const auto& p : pairs) {
    if (entry_of.emplace(normalize_text(p.text_a), stored.size()).second) stored.push_back(p.text_a);
  }
  report.entries = stored.size();
  const std::size_t batch = std::max<std::size_t>(1, options.batch);
  const auto insert_start = Clock::now();
  for (std::size_t start = 0; start < stored.size(); start += batch) {
    std::vector<std::string> normalized;
    for (std::size_t i = start; i < std::min(stored.size(), start + batch); ++i) {
      normalized.push_back(normalize_text(stored[i]));
    }
    auto vectors = embedder.embed(normalized);
    if (!vectors) return std::unexpected(vectors.error());
    for (std::size_t j = 0; j < vectors->size(); ++j) {
      auto added = matcher.insert_embedded(kTenant, start + j, stored[start + j], (*vectors)[j]);
      // A text with nothing to embed (only punctuation) cannot be stored; its pairs simply miss.
      if (!added && added.error().code != ErrorCode::invalid_request) return std::unexpected(added.error());
      report.unindexed += !added;
    }
  }
  report.insert_seconds = std::chrono::duration<double>(Clock::now() - insert_start).count();

  SameQuestion same_question(pairs);
  std::unordered_map<std::size_t, std::size_t> stored_per_cluster;
  for (const auto& [text, entry] : entry_of) ++stored_per_cluster[same_question.cluster(text)];

  std::vector<CacheEvalOutcome>& outcomes = report.outcomes;
  std::vector<double> latencies_us;
  std::ofstream details;
  if (!options.details_file.empty()) {
    details.open(options.details_file);
    if (!details) return fail(ErrorCode::invalid_request, "cannot write " + options.details_file);
  }
  const HitVerifier verifier(options.tenant.verifier);
  std::vector<std::string> query(1);
  const auto lookup_start = Clock::now();
  for (const auto& p : pairs) {
    query[0] = normalize_text(p.text_b);
    if (entry_of.contains(query[0])) {
      ++report.exact_pairs;
      continue;
    }
    const auto t0 = Clock::now();
    auto vectors = embedder.embed(query);
    if (!vectors) return std::unexpected(vectors.error());
    SemanticLookup found = matcher.lookup_embedded(kTenant, p.text_b, vectors->front());
    latencies_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());

    ++report.pairs;
    report.positive_pairs += p.label == 1;
    report.negative_pairs += p.label == 0;
    const bool answerable = stored_per_cluster[same_question.cluster(query[0])] > 0;
    report.answerable_pairs += answerable;
    CacheEvalOutcome outcome;
    outcome.pair = static_cast<std::size_t>(&p - pairs.data());
    if (found.hit) {
      outcome.hit = true;
      outcome.similarity = found.hit->similarity;
      outcome.probability = found.hit->probability;
      const std::string hit_text = normalize_text(stored[found.hit->entry_id]);
      outcome.correct = same_question.same(hit_text, query[0]);
      outcome.known_wrong = same_question.known_different(hit_text, query[0]);
    }
    const std::uint64_t own = entry_of.at(normalize_text(p.text_a));
    for (const auto& c : found.candidates) {
      if (!c.verdict.accepted) ++report.rejected_by_rule[std::string(c.verdict.rule)];
    }
    outcomes.push_back(outcome);

    if (details.is_open()) {
      // The pair's own text_a, whether or not the index returned it: tells a
      // miss by similarity from a miss by verification.
      const std::string own_text[] = {normalize_text(p.text_a)};
      auto own_vector = embedder.embed(own_text);
      json line = {{"text_a", p.text_a}, {"text_b", p.text_b}, {"label", p.label},
                   {"own_similarity", own_vector ? dot(own_vector->front(), vectors->front()) : 0.0f},
                   {"own_rules", verifier.failed_rules(p.text_b, p.text_a)},
                   {"answerable", answerable},
                   {"correct", outcome.correct}};
      json candidates = json::array();
      for (const auto& c : found.candidates) {
        candidates.push_back({{"text", stored[c.entry_id]}, {"similarity", c.similarity},
                              {"rule", std::string(c.verdict.rule)}, {"probability", c.probability},
                              {"own", c.entry_id == own}});
      }
      line["candidates"] = std::move(candidates);
      details << line.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
    }
  }
  report.lookup_seconds = std::chrono::duration<double>(Clock::now() - lookup_start).count();
  std::sort(latencies_us.begin(), latencies_us.end());
  const double p50 = percentile(latencies_us, 0.50);
  const double p99 = percentile(latencies_us, 0.99);

  for (const double cutoff : cutoffs) {
    for (const double threshold : options.thresholds) {
      CacheEvalRow row;
      row.threshold = threshold;
      if (options.tenant.model) row.min_probability = cutoff;
      for (const auto& o : outcomes) {
        if (!o.hit || o.similarity < threshold || (options.tenant.model && o.probability < cutoff)) continue;
        ++row.hits;
        row.correct_hits += o.correct;
        row.wrong_hits_known += o.known_wrong;
        row.negative_hits += pairs[o.pair].label == 0 && !o.correct;
      }
      row.wrong_hits = row.hits - row.correct_hits;
      row.precision = row.hits == 0 ? 1.0 : static_cast<double>(row.correct_hits) / row.hits;
      const std::size_t judged = row.correct_hits + row.wrong_hits_known;
      row.precision_labelled = judged == 0 ? 1.0 : static_cast<double>(row.correct_hits) / judged;
      row.recall = report.answerable_pairs == 0 ? 0.0 : static_cast<double>(row.correct_hits) / report.answerable_pairs;
      row.hit_rate = report.pairs == 0 ? 0.0 : static_cast<double>(row.hits) / report.pairs;
      row.negative_hit_rate =
          report.negative_pairs == 0 ? 0.0 : static_cast<double>(row.negative_hits) / report.negative_pairs;
      row.lookup_p50_us = p50;
      row.lookup_p99_us = p99;
      row.is_default = std::abs(threshold - options.default_threshold) < 1e-9 &&
                       (!options.tenant.model || std::abs(cutoff - options.tenant.min_probability) < 1e-9);
      report.rows.push_back(row);
    }
  }
  return report;
}

}  // namespace cascade
