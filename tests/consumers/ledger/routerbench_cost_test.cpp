// How close Cascade's cost computation comes to real OpenAI bills: RouterBench
// (../shared/data/router/routerbench/*_train.csv) recorded, for every prompt,
// each model's response and the USD cost of the call. For the OpenAI models
// we recount the tokens with Cascade's tokenizer (the model's own encoding),
// price them with the catalog's prices for that model version, and compare.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "catalog/catalog.h"
#include "tokenizer/tokenizer.h"

namespace cascade {
namespace {

namespace fs = std::filesystem;

std::optional<fs::path> shared_dir() {
  const char* shared = std::getenv("CASCADE_SHARED_DIR");
  if (!shared || !fs::exists(shared)) return std::nullopt;
  return fs::path(shared);
}

// RFC 4180 CSV: quoted fields, doubled quotes, newlines inside quotes.
std::vector<std::vector<std::string>> read_csv(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  std::vector<std::vector<std::string>> rows(1);
  std::string field;
  bool quoted = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field.push_back('"');
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field.push_back(c);
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      rows.back().push_back(std::move(field));
      field.clear();
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      rows.back().push_back(std::move(field));
      field.clear();
      rows.emplace_back();
    } else {
      field.push_back(c);
    }
  }
  if (!field.empty() || !rows.back().empty()) rows.back().push_back(std::move(field));
  if (rows.back().empty()) rows.pop_back();
  return rows;
}

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// The strings of a Python list literal as repr() writes it ("['a', \"b\"]").
std::optional<std::vector<std::string>> python_strings(std::string_view s) {
  std::vector<std::string> out;
  std::size_t i = 0;
  auto skip = [&] {
    while (i < s.size() && (s[i] == ' ' || s[i] == ',' || s[i] == '\n')) ++i;
  };
  skip();
  if (i >= s.size() || s[i] != '[') return std::nullopt;
  ++i;
  for (;;) {
    skip();
    if (i >= s.size()) return std::nullopt;
    if (s[i] == ']') return out;
    const char quote = s[i];
    if (quote != '\'' && quote != '"') return std::nullopt;
    ++i;
    std::string value;
    while (i < s.size() && s[i] != quote) {
      if (s[i] != '\\') {
        value.push_back(s[i++]);
        continue;
      }
      if (++i >= s.size()) return std::nullopt;
      const char e = s[i++];
      auto hex = [&](int digits) -> std::optional<std::uint32_t> {
        if (i + digits > s.size()) return std::nullopt;
        std::uint32_t v = static_cast<std::uint32_t>(std::stoul(std::string(s.substr(i, digits)), nullptr, 16));
        i += digits;
        return v;
      };
      switch (e) {
        case 'n': value.push_back('\n'); break;
        case 't': value.push_back('\t'); break;
        case 'r': value.push_back('\r'); break;
        case '\\': value.push_back('\\'); break;
        case '\'': value.push_back('\''); break;
        case '"': value.push_back('"'); break;
        case 'x': if (auto v = hex(2)) append_utf8(value, *v); else return std::nullopt; break;
        case 'u': if (auto v = hex(4)) append_utf8(value, *v); else return std::nullopt; break;
        case 'U': if (auto v = hex(8)) append_utf8(value, *v); else return std::nullopt; break;
        default: value.push_back('\\'); value.push_back(e); break;
      }
    }
    if (i >= s.size()) return std::nullopt;
    ++i;  // closing quote
    out.push_back(std::move(value));
  }
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += p;
  return out;
}

double percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  if (values.empty()) return 0;
  const double rank = p * static_cast<double>(values.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(rank));
  const auto hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (values[hi] - values[lo]) * (rank - static_cast<double>(lo));
}

// Relative error that is only floating-point rounding of the recorded decimals.
constexpr double kExact = 1e-9;

struct Comparison {
  std::vector<double> relative_errors;  // (computed - recorded) / recorded
  std::vector<double> chat_errors;      // the same with chat framing tokens counted
  double computed_usd = 0;
  double recorded_usd = 0;
};

TEST(RouterBenchCostReplay, CatalogPricesTimesTokenizerCountsMatchTheRecordedOpenAiBills) {
  const auto shared = shared_dir();
  if (!shared) GTEST_SKIP() << "CASCADE_SHARED_DIR not set or absent";
  const fs::path data = *shared / "data" / "router" / "routerbench";
  const fs::path ranks = *shared / "data" / "tokenizers";
  if (!fs::exists(data) || !fs::exists(ranks / "cl100k_base.tiktoken"))
    GTEST_SKIP() << "RouterBench CSVs or the cl100k_base rank file are not in " << shared->string();
  auto counter = TokenCounter::load(ranks);
  ASSERT_TRUE(counter) << counter.error().message;
  auto catalog = ModelCatalog::load(CatalogConfig{});
  ASSERT_TRUE(catalog) << catalog.error().message;

  const std::vector<std::string> models = {"gpt-3.5-turbo-1106", "gpt-4-1106-preview"};
  std::map<std::string, Comparison> by_model;
  std::size_t unparsable = 0;
  for (const auto& entry : fs::directory_iterator(data)) {
    if (!entry.path().string().ends_with("_train.csv")) continue;
    const auto rows = read_csv(entry.path());
    ASSERT_GT(rows.size(), 1u) << entry.path();
    const auto& header = rows[0];
    auto column = [&](const std::string& name) -> std::size_t {
      const auto it = std::find(header.begin(), header.end(), name);
      return it == header.end() ? header.size() : static_cast<std::size_t>(it - header.begin());
    };
    const std::size_t prompt_col = column("prompt");
    ASSERT_LT(prompt_col, header.size());
    for (const auto& model : models) {
      const ModelInfo* info = catalog->find(model);
      ASSERT_NE(info, nullptr) << model << " is not in the catalog";
      const std::size_t response_col = column(model + "|model_response");
      const std::size_t cost_col = column(model + "|total_cost");
      ASSERT_LT(response_col, header.size()) << model;
      ASSERT_LT(cost_col, header.size()) << model;
      for (std::size_t r = 1; r < rows.size(); ++r) {
        const auto& row = rows[r];
        if (row.size() != header.size() || row[cost_col].empty()) continue;
        const double recorded = std::stod(row[cost_col]);
        const auto prompt = python_strings(row[prompt_col]);
        const auto response = python_strings(row[response_col]);
        if (!prompt || !response || recorded <= 0) {
          ++unparsable;
          continue;
        }
        TokenUsage usage;
        usage.input_tokens = static_cast<std::int64_t>((*counter)->count_text(model, join(*prompt)).tokens);
        usage.output_tokens = static_cast<std::int64_t>((*counter)->count_text(model, join(*response)).tokens);
        const double computed = cost_usd(info->price, usage);
        auto& c = by_model[model];
        // What the chat completions API bills on top: 3 tokens per message,
        // the role, 3 priming the reply (TokenCounter::count_messages).
        TokenUsage chat = usage;
        const nlohmann::json messages = nlohmann::json::array({{{"role", "user"}, {"content", join(*prompt)}}});
        chat.input_tokens = static_cast<std::int64_t>((*counter)->count_messages(model, messages).tokens);
        c.chat_errors.push_back((cost_usd(info->price, chat) - recorded) / recorded);
        c.relative_errors.push_back((computed - recorded) / recorded);
        c.computed_usd += computed;
        c.recorded_usd += recorded;
      }
    }
  }

  std::printf("\nRouterBench cost replay: Cascade's cost (tokenizer counts x catalog price %s) vs the recorded cost\n",
              catalog->price_version().c_str());
  std::printf("%-20s %6s %9s %9s %9s %9s %9s %10s %8s %8s %12s %12s\n", "model", "calls", "p1", "p10", "median",
              "p90", "p99", "max |e|", "exact", "|e|<=1%", "computed", "recorded");
  for (const auto& model : models) {
    const auto& c = by_model[model];
    ASSERT_GT(c.relative_errors.size(), 1000u) << model;
    std::vector<double> abs_errors;
    for (double e : c.relative_errors) abs_errors.push_back(std::fabs(e));
    const auto within = [&](double bound) {
      return 100.0 * static_cast<double>(std::count_if(abs_errors.begin(), abs_errors.end(),
                                                       [&](double e) { return e <= bound; })) /
             static_cast<double>(abs_errors.size());
    };
    const double total_error = (c.computed_usd - c.recorded_usd) / c.recorded_usd;
    const double max_error = *std::max_element(abs_errors.begin(), abs_errors.end());
    std::printf("%-20s %6zu %+8.2f%% %+8.2f%% %+8.2f%% %+8.2f%% %+8.2f%% %9.2e %7.1f%% %7.1f%% %11.5f$ %11.5f$ (total %+.2e)\n",
                model.c_str(), c.relative_errors.size(), 100 * percentile(c.relative_errors, 0.01),
                100 * percentile(c.relative_errors, 0.10), 100 * percentile(c.relative_errors, 0.5),
                100 * percentile(c.relative_errors, 0.90), 100 * percentile(c.relative_errors, 0.99), max_error,
                within(kExact), within(0.01), c.computed_usd, c.recorded_usd, total_error);

    // Tolerance (docs/ledger.md, "RouterBench replay"): RouterBench priced
    // each call as tiktoken counts of the prompt and response text (no chat
    // framing tokens) times these prices, which is what Cascade computes, so
    // every call must match up to floating-point rounding of the CSV's
    // decimal figures (1e-9 relative; one token of the cheapest call is
    // ~1e-3 of its cost, so a single miscounted token fails the test).
    EXPECT_EQ(within(kExact), 100.0) << model << ": max relative error " << max_error;
    EXPECT_LT(std::fabs(total_error), kExact) << model;
  }
  for (const auto& model : models) {
    const auto& c = by_model[model];
    std::printf("%-20s with chat framing tokens counted as the API bills them: median %+.2f%%, p90 %+.2f%%\n",
                model.c_str(), 100 * percentile(c.chat_errors, 0.5), 100 * percentile(c.chat_errors, 0.9));
  }
  std::printf("rows without a parsable prompt/response: %zu\n", unparsable);
}

}  // namespace
}  // namespace cascade
