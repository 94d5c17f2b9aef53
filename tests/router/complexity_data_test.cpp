// The complexity score on real prompt streams: Dolly's human-written
// instructions by category and NQ-open's short search questions. Only orderings
// that hold with a wide margin are asserted, so that retuning a weight does not
// break the test while a real regression (say, lookups outscoring creative
// writing) does.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "router/router.h"

namespace cascade {
namespace {

std::filesystem::path prompts_dir() {
  const char* shared = std::getenv("CASCADE_SHARED_DIR");
  return std::filesystem::path(shared ? shared : "../shared") / "data" / "prompts";
}

struct CategoryStats {
  std::vector<double> scores;
  double mean() const {
    double sum = 0;
    for (double s : scores) sum += s;
    return scores.empty() ? 0 : sum / static_cast<double>(scores.size());
  }
  double fraction_below(double threshold) const {
    std::size_t below = 0;
    for (double s : scores) below += s < threshold ? 1 : 0;
    return scores.empty() ? 0 : static_cast<double>(below) / static_cast<double>(scores.size());
  }
};

// Scores the `text_field` of every line, grouped by `category_field` (or one group).
std::map<std::string, CategoryStats> score_jsonl(const std::filesystem::path& file, const char* text_field,
                                                 const char* category_field, const char* category) {
  std::map<std::string, CategoryStats> by_category;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    const auto row = nlohmann::json::parse(line, nullptr, false);
    if (row.is_discarded() || !row.contains(text_field)) continue;
    const auto messages =
        nlohmann::json::array({{{"role", "user"}, {"content", row[text_field].get<std::string>()}}});
    const std::string name = category_field ? row.value(category_field, "?") : category;
    by_category[name].scores.push_back(score_complexity(messages).score);
  }
  return by_category;
}

class ComplexityOnRealPrompts : public ::testing::Test {
 protected:
  // Scored once for all tests of the suite.
  static void SetUpTestSuite() {
    const auto dolly = prompts_dir() / "dolly_6400_categories.jsonl";
    const auto nq = prompts_dir() / "NQ-open.dev.jsonl";
    if (!std::filesystem::exists(dolly) || !std::filesystem::exists(nq)) return;
    stats_ = score_jsonl(dolly, "instruction", "category_reconstructed", nullptr);
    stats_["nq_open"] = score_jsonl(nq, "question", nullptr, "nq_open")["nq_open"];
    const TierThresholds balanced = RouterConfig{}.balanced;
    for (const auto& [name, s] : stats_)
      std::printf("%-24s n=%5zu mean=%.3f small(<%.2f)=%.1f%%\n", name.c_str(), s.scores.size(), s.mean(),
                  balanced.small_max, 100 * s.fraction_below(balanced.small_max));
  }

  void SetUp() override {
    if (stats_.empty())
      GTEST_SKIP() << "shared prompt data not found in " << prompts_dir()
                   << " (set CASCADE_SHARED_DIR to the shared/ folder)";
  }

  double mean(const std::string& category) {
    EXPECT_TRUE(stats_.contains(category)) << category;
    return stats_[category].mean();
  }

  static inline std::map<std::string, CategoryStats> stats_;
};

TEST_F(ComplexityOnRealPrompts, CreativeWritingOutscoresLookupsAndClassification) {
  const double creative = mean("creative_writing");
  EXPECT_LT(mean("classification"), creative);
  EXPECT_LT(mean("open_qa"), creative);
  EXPECT_LT(mean("closed_qa"), creative);
  EXPECT_LT(mean("brainstorming"), creative);
  EXPECT_LT(mean("nq_open"), creative);
}

TEST_F(ComplexityOnRealPrompts, ShortFactualQuestionsScoreLowAndRouteSmall) {
  EXPECT_LT(mean("nq_open"), 0.05);
  EXPECT_LT(mean("nq_open"), mean("open_qa"));
  EXPECT_GT(stats_["nq_open"].fraction_below(RouterConfig{}.balanced.small_max), 0.99);
}

TEST_F(ComplexityOnRealPrompts, ScoresStayInTheUnitInterval) {
  for (const auto& [name, s] : stats_)
    for (double score : s.scores) {
      ASSERT_GE(score, 0.0) << name;
      ASSERT_LE(score, 1.0) << name;
    }
}

}  // namespace
}  // namespace cascade
