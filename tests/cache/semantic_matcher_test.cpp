#include <gtest/gtest.h>

#include "cache/semantic.h"

namespace cascade {
namespace {

class SemanticMatcherTest : public ::testing::Test {
 protected:
  SemanticMatcherOptions options() {
    SemanticMatcherOptions o;
    o.defaults.threshold = 0.85;
    return o;
  }
  BuiltinEmbedder embedder;
};

TEST_F(SemanticMatcherTest, ServesAStoredPromptForARewordingOfIt) {
  SemanticMatcher matcher(embedder, options());
  ASSERT_TRUE(matcher.insert("acme", 1, "How can I learn Python quickly?"));
  ASSERT_TRUE(matcher.insert("acme", 2, "What is the capital of France?"));
  auto found = matcher.lookup("acme", "How do I learn python quickly");
  ASSERT_TRUE(found);
  ASSERT_TRUE(found->hit);
  EXPECT_EQ(found->hit->entry_id, 1u);
  EXPECT_GE(found->hit->similarity, 0.85f);
  EXPECT_EQ(matcher.prompt_of("acme", 1), "How can I learn Python quickly?");
}

TEST_F(SemanticMatcherTest, RefusesANearDuplicateThatAsksSomethingElse) {
  SemanticMatcher matcher(embedder, options());
  ASSERT_TRUE(matcher.insert("acme", 1, "Flights from New York to Florida in March"));
  auto found = matcher.lookup("acme", "Flights from Florida to New York in March");
  ASSERT_TRUE(found);
  EXPECT_FALSE(found->hit);
  ASSERT_EQ(found->candidates.size(), 1u);
  EXPECT_GT(found->candidates[0].similarity, 0.85f);  // the embedding alone would have served it
  EXPECT_EQ(found->candidates[0].verdict.rule, "word_order");
}

TEST_F(SemanticMatcherTest, NeverServesAnotherTenantsEntry) {
  SemanticMatcher matcher(embedder, options());
  ASSERT_TRUE(matcher.insert("acme", 1, "What is the capital of France?"));
  auto found = matcher.lookup("globex", "What is the capital of France?");
  ASSERT_TRUE(found);
  EXPECT_FALSE(found->hit);
  EXPECT_TRUE(found->candidates.empty());
  EXPECT_FALSE(matcher.prompt_of("globex", 1));
}

TEST_F(SemanticMatcherTest, AppliesEachTenantsOwnPolicy) {
  auto o = options();
  TenantSemanticOptions strict;
  strict.threshold = 0.999;
  TenantSemanticOptions unverified;
  unverified.threshold = 0.85;
  unverified.verify = false;
  TenantSemanticOptions off;
  off.enabled = false;
  o.tenants["strict"] = strict;
  o.tenants["unverified"] = unverified;
  o.tenants["off"] = off;
  SemanticMatcher matcher(embedder, o);
  for (const char* tenant : {"acme", "strict", "unverified", "off"}) {
    ASSERT_TRUE(matcher.insert(tenant, 1, "Flights from New York to Florida in March"));
  }
  const std::string swapped = "Flights from Florida to New York in March";
  EXPECT_FALSE(matcher.lookup("acme", swapped)->hit);       // verified: rejected
  EXPECT_FALSE(matcher.lookup("strict", swapped)->hit);     // below its threshold
  EXPECT_TRUE(matcher.lookup("unverified", swapped)->hit);  // similarity alone
  EXPECT_FALSE(matcher.lookup("off", "Flights from New York to Florida in March")->hit);
}

TEST_F(SemanticMatcherTest, ForgetsRemovedEntries) {
  SemanticMatcher matcher(embedder, options());
  ASSERT_TRUE(matcher.insert("acme", 1, "How can I learn Python quickly?"));
  EXPECT_TRUE(matcher.remove("acme", 1));
  EXPECT_FALSE(matcher.lookup("acme", "How can I learn Python quickly?")->hit);
  EXPECT_FALSE(matcher.prompt_of("acme", 1));
}

TEST_F(SemanticMatcherTest, TriesFurtherCandidatesWhenAskedTo) {
  auto o = options();
  o.defaults.candidates = 3;
  SemanticMatcher matcher(embedder, o);
  // Vectors set by hand so that the nearest entry is the one with another number.
  const std::string query = "What is the price of 2 tickets to the Louvre?";
  const std::string normalized[] = {normalize_text(query)};
  const auto q = embedder.embed(normalized)->front();
  auto nudged = q;
  nudged[0] += 0.2f;
  normalize_unit(nudged);
  ASSERT_TRUE(matcher.insert_embedded("acme", 1, "What is the price of 3 tickets to the Louvre?", q));
  ASSERT_TRUE(matcher.insert_embedded("acme", 2, "What's the price of two tickets to the Louvre?", nudged));
  const auto found = matcher.lookup_embedded("acme", query, q);
  ASSERT_TRUE(found.hit);
  EXPECT_EQ(found.hit->entry_id, 2u);
  ASSERT_EQ(found.candidates.size(), 2u);
  EXPECT_EQ(found.candidates[0].verdict.rule, "numbers");

  // With the default of one candidate, the failed nearest entry ends the lookup.
  SemanticMatcher nearest_only(embedder, options());
  ASSERT_TRUE(nearest_only.insert_embedded("acme", 1, "What is the price of 3 tickets to the Louvre?", q));
  ASSERT_TRUE(nearest_only.insert_embedded("acme", 2, "What's the price of two tickets to the Louvre?", nudged));
  EXPECT_FALSE(nearest_only.lookup_embedded("acme", query, q).hit);
}

TEST_F(SemanticMatcherTest, StoresVectorsEmbeddedElsewhere) {
  SemanticMatcher matcher(embedder, options());
  const std::string prompt = "What is the capital of France?";
  const std::string normalized[] = {normalize_text(prompt)};
  const auto vector = embedder.embed(normalized)->front();
  ASSERT_TRUE(matcher.insert_embedded("acme", 9, prompt, vector));
  const auto found = matcher.lookup_embedded("acme", prompt, vector);
  ASSERT_TRUE(found.hit);
  EXPECT_EQ(found.hit->entry_id, 9u);
  EXPECT_FALSE(matcher.insert_embedded("acme", 10, prompt, std::vector<float>(3, 0.5f)));
  EXPECT_FALSE(matcher.prompt_of("acme", 10));  // a failed insert leaves nothing behind
}

}  // namespace
}  // namespace cascade
