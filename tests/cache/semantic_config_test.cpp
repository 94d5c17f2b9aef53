// The semantic cache options a configuration gives the worker: global and
// per-tenant verifier rules through set_verifier_option, errors naming the key,
// environment overrides, and a tenant's relaxed rule changing what it is served.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "cache/semantic.h"
#include "config/config.h"
#include "support/config_file.h"
#include "support/env.h"

namespace cascade {
namespace {

using ::testing::HasSubstr;
using testing::env_of;

Result<SemanticMatcherOptions> options_from(const std::string& yaml, const EnvLookup& env = env_of({})) {
  auto config = testing::load_config_text(yaml, env);
  if (!config) return std::unexpected(config.error());
  return semantic_matcher_options(*config);
}

TEST(SemanticCacheConfig, DefaultsAreTheVerifiersOwnDefaults) {
  auto config = load_config("", env_of({}));
  ASSERT_TRUE(config) << config.error().message;
  auto options = semantic_matcher_options(*config);
  ASSERT_TRUE(options) << options.error().message;
  const VerifierOptions built_in;
  const VerifierOptions& loaded = options->defaults.verifier;
  EXPECT_EQ(loaded.numbers, built_in.numbers);
  EXPECT_EQ(loaded.persons, built_in.persons);
  EXPECT_EQ(loaded.exact_word_forms, built_in.exact_word_forms);
  EXPECT_EQ(loaded.max_unmatched_content_words, built_in.max_unmatched_content_words);
  EXPECT_EQ(loaded.max_order_inversions, built_in.max_order_inversions);
  EXPECT_DOUBLE_EQ(options->defaults.threshold, 0.90);
  EXPECT_TRUE(options->defaults.verify);
  EXPECT_TRUE(options->tenants.empty());
}

TEST(SemanticCacheConfig, TenantRulesApplyOverTheGlobalRulesToThatTenantOnly) {
  auto options = options_from(R"(
cache:
  semantic:
    verifier:
      deixis: false
tenants:
  acme:
    semantic_threshold: 0.85
    semantic_verifier:
      max_order_inversions: 1
      persons: false
  globex:
    requests_per_second: 3
)");
  ASSERT_TRUE(options) << options.error().message;
  const auto& acme = options->for_tenant("acme");
  EXPECT_EQ(acme.verifier.max_order_inversions, 1);
  EXPECT_FALSE(acme.verifier.persons);
  EXPECT_FALSE(acme.verifier.deixis);  // global rule, not overridden
  EXPECT_DOUBLE_EQ(acme.threshold, 0.85);
  const auto& globex = options->for_tenant("globex");
  EXPECT_EQ(globex.verifier.max_order_inversions, 0);
  EXPECT_TRUE(globex.verifier.persons);
  EXPECT_FALSE(globex.verifier.deixis);
  const auto& anyone = options->for_tenant("initech");
  EXPECT_EQ(anyone.verifier.max_order_inversions, 0);
  EXPECT_FALSE(anyone.verifier.deixis);
}

TEST(SemanticCacheConfig, DefaultTenantRulesApplyToTenantsWithoutAnEntry) {
  auto options = options_from("tenants:\n  default:\n    semantic_verifier:\n      typos: false\n"
                              "  acme:\n    requests_per_second: 1\n");
  ASSERT_TRUE(options) << options.error().message;
  EXPECT_FALSE(options->for_tenant("initech").verifier.typos);
  EXPECT_TRUE(options->for_tenant("acme").verifier.typos);  // its own entry starts from cache.semantic
}

TEST(SemanticCacheConfig, UnknownRuleIsAnErrorNamingTheKey) {
  auto options = options_from("tenants:\n  acme:\n    semantic_verifier:\n      colours: true\n");
  ASSERT_FALSE(options);
  EXPECT_EQ(options.error().code, ErrorCode::invalid_request);
  EXPECT_THAT(options.error().message, HasSubstr("tenants.acme.semantic_verifier.colours"));
  EXPECT_THAT(options.error().message, HasSubstr("unknown verifier option"));

  auto global = options_from("cache:\n  semantic:\n    verifier:\n      colours: true\n");
  ASSERT_FALSE(global);
  EXPECT_THAT(global.error().message, HasSubstr("cache.semantic.verifier.colours"));
}

TEST(SemanticCacheConfig, BadValueIsAnErrorNamingTheKeyAndTheValue) {
  auto not_an_integer = options_from("tenants:\n  acme:\n    semantic_verifier:\n      max_order_inversions: 1.5\n");
  ASSERT_FALSE(not_an_integer);
  EXPECT_THAT(not_an_integer.error().message, HasSubstr("tenants.acme.semantic_verifier.max_order_inversions"));
  EXPECT_THAT(not_an_integer.error().message, HasSubstr("wants an integer"));
  EXPECT_THAT(not_an_integer.error().message, HasSubstr("'1.5'"));

  auto not_a_bool = options_from("cache:\n  semantic:\n    verifier:\n      persons: maybe\n");
  ASSERT_FALSE(not_a_bool);
  EXPECT_THAT(not_a_bool.error().message, HasSubstr("cache.semantic.verifier.persons"));
  EXPECT_THAT(not_a_bool.error().message, HasSubstr("wants true or false"));
}

TEST(SemanticCacheConfig, EnvironmentOverridesReachTheMatcherAndAreCheckedToo) {
  const std::string yaml = "tenants:\n  acme:\n    requests_per_second: 1\n";
  auto options = options_from(yaml, env_of({{"CASCADE_TENANTS_ACME_SEMANTIC_VERIFIER_MAX_ORDER_INVERSIONS", "3"},
                                            {"CASCADE_CACHE_SEMANTIC_VERIFIER_NUMBERS", "false"}}));
  ASSERT_TRUE(options) << options.error().message;
  EXPECT_EQ(options->for_tenant("acme").verifier.max_order_inversions, 3);
  EXPECT_FALSE(options->for_tenant("acme").verifier.numbers);
  EXPECT_FALSE(options->for_tenant("initech").verifier.numbers);
  EXPECT_EQ(options->for_tenant("initech").verifier.max_order_inversions, 0);

  auto bad = options_from(yaml, env_of({{"CASCADE_TENANTS_ACME_SEMANTIC_VERIFIER_PERSONS", "nope"}}));
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error().message, HasSubstr("tenants.acme.semantic_verifier.persons"));
}

// A prompt whose shared words differ in order from the stored one by a single
// swap (the same question here): the default verifier rejects it, a tenant
// allowing one inversion is served.
TEST(SemanticCacheConfig, ATenantAllowingOneOrderInversionGetsAHitTheDefaultTenantDoesNot) {
  auto options = options_from("tenants:\n  acme:\n    semantic_verifier:\n      max_order_inversions: 1\n");
  ASSERT_TRUE(options) << options.error().message;
  BuiltinEmbedder embedder;
  SemanticMatcher matcher(embedder, *options);
  const std::string stored = "Which is healthier for breakfast every morning during the week, apples or bananas?";
  const std::string asked = "Which is healthier for breakfast every morning during the week, bananas or apples?";
  ASSERT_TRUE(matcher.insert("acme", 1, stored));
  ASSERT_TRUE(matcher.insert("initech", 1, stored));

  auto strict = matcher.lookup("initech", asked);
  ASSERT_TRUE(strict);
  EXPECT_FALSE(strict->hit);
  ASSERT_EQ(strict->candidates.size(), 1u);
  EXPECT_GE(strict->candidates[0].similarity, 0.90f);  // close enough: only the verifier says no
  EXPECT_EQ(strict->candidates[0].verdict.rule, "word_order");

  auto relaxed = matcher.lookup("acme", asked);
  ASSERT_TRUE(relaxed);
  ASSERT_TRUE(relaxed->hit);
  EXPECT_EQ(relaxed->hit->entry_id, 1u);
}

TEST(SemanticCacheConfig, TheRulesDecideUnlessAModelIsConfigured) {
  auto rules = options_from("");
  ASSERT_TRUE(rules) << rules.error().message;
  EXPECT_FALSE(rules->defaults.model);

  auto learned = options_from("cache: {semantic: {verifier_model: builtin}}\ntenants: {acme: {semantic_threshold: 0.7}}");
  ASSERT_TRUE(learned) << learned.error().message;
  ASSERT_TRUE(learned->defaults.model);
  const auto& model = *learned->defaults.model;
  EXPECT_DOUBLE_EQ(learned->defaults.min_probability, *model.cutoff_for(model.default_target_precision()));
  // A tenant of its own keeps the model with its own threshold.
  EXPECT_EQ(learned->for_tenant("acme").model, learned->defaults.model);
  EXPECT_DOUBLE_EQ(learned->for_tenant("acme").threshold, 0.7);

  auto stricter = options_from("cache: {semantic: {verifier_model: builtin, target_precision: 0.8}}");
  ASSERT_TRUE(stricter) << stricter.error().message;
  EXPECT_DOUBLE_EQ(stricter->defaults.min_probability, *model.cutoff_for(0.8));
}

TEST(SemanticCacheConfig, ATenantChoosesItsOwnVerifierAndOperatingPoint) {
  auto options = options_from(
      "tenants: {acme: {semantic_verifier_model: builtin, semantic_target_precision: 0.8}, "
      "strict: {semantic_threshold: 0.95}}");
  ASSERT_TRUE(options) << options.error().message;
  EXPECT_FALSE(options->defaults.model);
  EXPECT_FALSE(options->for_tenant("strict").model);
  ASSERT_TRUE(options->for_tenant("acme").model);
  EXPECT_DOUBLE_EQ(options->for_tenant("acme").min_probability, *HitModel::builtin()->cutoff_for(0.8));

  auto back_to_rules = options_from("cache: {semantic: {verifier_model: builtin}}\n"
                                    "tenants: {careful: {semantic_verifier_model: rules}}");
  ASSERT_TRUE(back_to_rules) << back_to_rules.error().message;
  EXPECT_TRUE(back_to_rules->defaults.model);
  EXPECT_FALSE(back_to_rules->for_tenant("careful").model);

  auto bad = options_from("tenants: {acme: {semantic_verifier_model: /nonexistent.json}}");
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error().message, HasSubstr("tenants.acme.semantic_verifier_model"));
}

TEST(SemanticCacheConfig, AModelThatCannotBeUsedStopsStartup) {
  auto missing = options_from("cache: {semantic: {verifier_model: /nonexistent/hit_model.json}}");
  ASSERT_FALSE(missing);
  EXPECT_THAT(missing.error().message, HasSubstr("cache.semantic.verifier_model"));
  EXPECT_THAT(missing.error().message, HasSubstr("/nonexistent/hit_model.json"));

  auto unreachable = options_from("cache: {semantic: {verifier_model: builtin, target_precision: 0.9999}}");
  ASSERT_FALSE(unreachable);
  EXPECT_THAT(unreachable.error().message, HasSubstr("cache.semantic.target_precision"));

  auto out_of_range = testing::load_config_text("cache: {semantic: {target_precision: 1.5}}", env_of({}));
  ASSERT_FALSE(out_of_range);
  EXPECT_THAT(out_of_range.error().message, HasSubstr("target_precision"));
}

}  // namespace
}  // namespace cascade
