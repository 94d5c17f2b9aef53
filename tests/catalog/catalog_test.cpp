#include "catalog/catalog.h"
#include "config/config.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "support/temp_dir.h"

namespace cascade {
namespace {

constexpr const char* kTwoModels = R"(
price_version: "test-1"
models:
  - id: fast
    provider: groq
    upstream_model: vendor/fast-8b
    tier: small
    context_window: 128000
    max_output_tokens: 8192
    input_per_mtok: 0.05
    output_per_mtok: 0.08
  - id: smart
    provider: openai
    tier: large
    context_window: 200000
    max_output_tokens: 100000
    input_per_mtok: 2
    output_per_mtok: 8
    cached_input_per_mtok: 0.5
    cache_write_per_mtok: 2.5
)";

// kTwoModels with one line of the "smart" entry replaced.
std::string with_smart_line(const std::string& from, const std::string& to) {
  std::string yaml = kTwoModels;
  const auto at = yaml.rfind(from);
  EXPECT_NE(at, std::string::npos) << from;
  yaml.replace(at, from.size(), to);
  return yaml;
}

std::string error_of(std::string_view yaml) {
  auto catalog = ModelCatalog::from_yaml(yaml);
  EXPECT_FALSE(catalog.has_value());
  if (catalog) return "";
  EXPECT_EQ(catalog.error().code, ErrorCode::invalid_request);
  return catalog.error().message;
}

TEST(ModelCatalog, ParsesEveryField) {
  auto catalog = ModelCatalog::from_yaml(kTwoModels);
  ASSERT_TRUE(catalog) << catalog.error().message;
  EXPECT_EQ(catalog->price_version(), "test-1");
  ASSERT_EQ(catalog->models().size(), 2u);

  const ModelInfo* fast = catalog->find("fast");
  ASSERT_NE(fast, nullptr);
  EXPECT_EQ(fast->provider, "groq");
  EXPECT_EQ(fast->upstream_model, "vendor/fast-8b");
  EXPECT_EQ(fast->tier, Tier::small);
  EXPECT_EQ(fast->context_window, 128000);
  EXPECT_EQ(fast->max_output_tokens, 8192);
  EXPECT_DOUBLE_EQ(fast->price.input_per_mtok, 0.05);
  EXPECT_DOUBLE_EQ(fast->price.output_per_mtok, 0.08);

  const ModelInfo* smart = catalog->find("smart");
  ASSERT_NE(smart, nullptr);
  EXPECT_EQ(smart->tier, Tier::large);
  EXPECT_DOUBLE_EQ(smart->price.cached_input_per_mtok, 0.5);
  EXPECT_DOUBLE_EQ(smart->price.cache_write_per_mtok, 2.5);
}

TEST(ModelCatalog, UpstreamModelDefaultsToId) {
  auto catalog = ModelCatalog::from_yaml(kTwoModels);
  ASSERT_TRUE(catalog);
  EXPECT_EQ(catalog->find("smart")->upstream_model, "smart");
}

TEST(ModelCatalog, MissingCachePriceMeansCachedInputIsBilledAsInput) {
  auto catalog = ModelCatalog::from_yaml(kTwoModels);
  ASSERT_TRUE(catalog);
  EXPECT_DOUBLE_EQ(catalog->find("fast")->price.cached_input_per_mtok, 0.05);
}

TEST(ModelCatalog, MissingCacheWritePriceMeansCacheWritesAreBilledAsInput) {
  auto catalog = ModelCatalog::from_yaml(kTwoModels);
  ASSERT_TRUE(catalog);
  EXPECT_DOUBLE_EQ(catalog->find("fast")->price.cache_write_per_mtok, 0.05);
}

TEST(ModelCatalog, RejectsNegativeCacheWritePrice) {
  const auto message = error_of(with_smart_line("cache_write_per_mtok: 2.5", "cache_write_per_mtok: -1"));
  EXPECT_NE(message.find("'cache_write_per_mtok'"), std::string::npos) << message;
}

TEST(ModelCatalog, FindReturnsNullForUnknownIds) {
  auto catalog = ModelCatalog::from_yaml(kTwoModels);
  ASSERT_TRUE(catalog);
  EXPECT_EQ(catalog->find("auto"), nullptr);
  EXPECT_EQ(catalog->find(""), nullptr);
  EXPECT_EQ(catalog->find("fas"), nullptr);
  EXPECT_EQ(catalog->find("smarter"), nullptr);
}

TEST(ModelCatalog, MissingFieldErrorNamesModelAndKey) {
  const auto message = error_of(with_smart_line("    output_per_mtok: 8\n", ""));
  EXPECT_NE(message.find("smart"), std::string::npos) << message;
  EXPECT_NE(message.find("missing 'output_per_mtok'"), std::string::npos) << message;
}

TEST(ModelCatalog, MissingIdErrorNamesPosition) {
  const auto message = error_of(with_smart_line("  - id: smart\n    provider", "  - provider"));
  EXPECT_NE(message.find("models[1]"), std::string::npos) << message;
  EXPECT_NE(message.find("'id'"), std::string::npos) << message;
}

TEST(ModelCatalog, RejectsNegativePrice) {
  const auto message = error_of(with_smart_line("input_per_mtok: 2", "input_per_mtok: -2"));
  EXPECT_NE(message.find("input_per_mtok"), std::string::npos) << message;
}

TEST(ModelCatalog, RejectsNonNumericPrice) {
  const auto message = error_of(with_smart_line("input_per_mtok: 2", "input_per_mtok: cheap"));
  EXPECT_NE(message.find("input_per_mtok"), std::string::npos) << message;
}

TEST(ModelCatalog, RejectsUnknownTier) {
  const auto message = error_of(with_smart_line("tier: large", "tier: huge"));
  EXPECT_NE(message.find("unknown tier 'huge'"), std::string::npos) << message;
}

TEST(ModelCatalog, RejectsNonPositiveContextWindow) {
  const auto message = error_of(with_smart_line("context_window: 200000", "context_window: 0"));
  EXPECT_NE(message.find("context_window"), std::string::npos) << message;
}

TEST(ModelCatalog, RejectsDuplicateIds) {
  const auto message = error_of(with_smart_line("id: smart", "id: fast"));
  EXPECT_NE(message.find("duplicate model id 'fast'"), std::string::npos) << message;
}

TEST(ModelCatalog, RejectsMisspeltKeys) {
  const auto message =
      error_of(with_smart_line("cached_input_per_mtok: 0.5", "cached_input_per_mtoks: 0.5"));
  EXPECT_NE(message.find("unknown key 'cached_input_per_mtoks'"), std::string::npos) << message;
}

TEST(ModelCatalog, RejectsMissingPriceVersionAndEmptyModels) {
  EXPECT_NE(error_of("models: []\nprice_version: x\n").find("'models'"), std::string::npos);
  std::string no_version = kTwoModels;
  no_version.replace(no_version.find("price_version"), 13, "priceversion");
  EXPECT_NE(error_of(no_version).find("price_version"), std::string::npos);
}

TEST(ModelCatalog, RejectsInvalidYaml) {
  EXPECT_NE(error_of("models: [\n").find("invalid YAML"), std::string::npos);
  EXPECT_FALSE(ModelCatalog::from_yaml("- just\n- a list\n"));
}

TEST(ModelCatalog, BuiltInCatalogLoadsWithTheDefaultBaseline) {
  auto catalog = ModelCatalog::load(CatalogConfig{});
  ASSERT_TRUE(catalog) << catalog.error().message;
  EXPECT_EQ(catalog->baseline().id, "gpt-4o");
  EXPECT_FALSE(catalog->price_version().empty());
  std::set<Tier> tiers;
  for (const auto& model : catalog->models()) tiers.insert(model.tier);
  EXPECT_EQ(tiers.size(), 3u) << "every tier needs at least one model";
}

TEST(ModelCatalog, BuiltInCatalogOnlyNamesConfiguredProviders) {
  auto config = load_config("", [](const std::string&) { return std::nullopt; });
  ASSERT_TRUE(config) << config.error().message;
  auto catalog = ModelCatalog::load(config->catalog);
  ASSERT_TRUE(catalog) << catalog.error().message;
  for (const auto& model : catalog->models())
    EXPECT_TRUE(config->providers.contains(model.provider)) << model.id << " -> " << model.provider;
}

TEST(ModelCatalog, LoadRejectsUnknownBaseline) {
  CatalogConfig config;
  config.baseline_model = "gpt-0";
  auto catalog = ModelCatalog::load(config);
  ASSERT_FALSE(catalog);
  EXPECT_NE(catalog.error().message.find("'gpt-0'"), std::string::npos) << catalog.error().message;
}

TEST(ModelCatalog, LoadsACatalogFile) {
  const testing::TempFile file(kTwoModels, "models.yaml");
  CatalogConfig config{file.path(), "smart"};
  auto catalog = ModelCatalog::load(config);
  ASSERT_TRUE(catalog) << catalog.error().message;
  EXPECT_EQ(catalog->baseline().id, "smart");
  EXPECT_EQ(catalog->models().size(), 2u);
}

TEST(ModelCatalog, LoadReportsAnUnreadableFile) {
  CatalogConfig config{"/nonexistent/cascade/models.yaml", "gpt-4o"};
  auto catalog = ModelCatalog::load(config);
  ASSERT_FALSE(catalog);
  EXPECT_NE(catalog.error().message.find("/nonexistent/cascade/models.yaml"), std::string::npos);
}

TEST(Tier, NamesRoundTrip) {
  for (Tier tier : {Tier::small, Tier::medium, Tier::large}) EXPECT_EQ(parse_tier(to_string(tier)), tier);
  EXPECT_FALSE(parse_tier("Small"));
  EXPECT_FALSE(parse_tier(""));
}

TEST(CostUsd, OneMillionInputTokensOfGpt4oMiniCostFifteenCents) {
  auto catalog = ModelCatalog::load(CatalogConfig{});
  ASSERT_TRUE(catalog);
  const ModelInfo* mini = catalog->find("gpt-4o-mini");
  ASSERT_NE(mini, nullptr);
  EXPECT_NEAR(cost_usd(mini->price, {.input_tokens = 1'000'000}), 0.15, 1e-12);
  EXPECT_NEAR(cost_usd(mini->price, {.output_tokens = 1'000'000}), 0.60, 1e-12);
}

TEST(CostUsd, BaselineGpt4oPrices) {
  auto catalog = ModelCatalog::load(CatalogConfig{});
  ASSERT_TRUE(catalog);
  const ModelPrice& price = catalog->baseline().price;
  // 1,000 input + 500 output tokens at $2.50 / $10 per 1M.
  EXPECT_NEAR(cost_usd(price, {.input_tokens = 1000, .output_tokens = 500}), 0.0025 + 0.005, 1e-12);
}

TEST(CostUsd, CachedTokensArePartOfInputAndBilledAtTheCachedPrice) {
  const ModelPrice price{.input_per_mtok = 2.0, .output_per_mtok = 8.0, .cached_input_per_mtok = 0.5};
  const TokenUsage usage{.input_tokens = 1'000'000, .output_tokens = 250'000, .cached_tokens = 400'000};
  // 600k uncached * 2 + 400k cached * 0.5 + 250k output * 8, per 1M.
  EXPECT_NEAR(cost_usd(price, usage), 1.2 + 0.2 + 2.0, 1e-12);
}

TEST(CostUsd, CachedTokensBeyondInputAreCappedAtInput) {
  const ModelPrice price{.input_per_mtok = 2.0, .output_per_mtok = 8.0, .cached_input_per_mtok = 0.5};
  const TokenUsage usage{.input_tokens = 1000, .output_tokens = 0, .cached_tokens = 5000};
  EXPECT_NEAR(cost_usd(price, usage), 1000 * 0.5 / 1e6, 1e-15);
}

TEST(CostUsd, AnthropicCacheReadsAndWritesAreBilledAtTheirOwnPrices) {
  // claude-sonnet-4-6: $3 input, $15 output, $0.30 cache read, $3.75 cache write per 1M.
  auto catalog = ModelCatalog::load(CatalogConfig{});
  ASSERT_TRUE(catalog);
  const ModelInfo* sonnet = catalog->find("claude-sonnet-4-6");
  ASSERT_NE(sonnet, nullptr);
  EXPECT_EQ(sonnet->provider, "anthropic");
  EXPECT_DOUBLE_EQ(sonnet->price.cached_input_per_mtok, 0.3);
  EXPECT_DOUBLE_EQ(sonnet->price.cache_write_per_mtok, 3.75);
  // Anthropic reported input_tokens 25, cache reads 12000, cache writes 1800,
  // output 15; Cascade's input_tokens is the whole prompt, 13825.
  const TokenUsage usage{
      .input_tokens = 13825, .output_tokens = 15, .cached_tokens = 12000, .cache_write_tokens = 1800};
  // 25 * 3 + 12000 * 0.3 + 1800 * 3.75 + 15 * 15 = 75 + 3600 + 6750 + 225 = 10650 micro-USD.
  EXPECT_NEAR(cost_usd(sonnet->price, usage), 0.010650, 1e-12);
}

TEST(CostUsd, CacheWritesBeyondTheUncachedInputAreCapped) {
  const ModelPrice price{.input_per_mtok = 2.0, .output_per_mtok = 8.0, .cached_input_per_mtok = 0.5,
                         .cache_write_per_mtok = 2.5};
  // 1000 prompt tokens, 600 read from cache: at most 400 can have been written.
  const TokenUsage usage{.input_tokens = 1000, .cached_tokens = 600, .cache_write_tokens = 5000};
  EXPECT_NEAR(cost_usd(price, usage), (600 * 0.5 + 400 * 2.5) / 1e6, 1e-15);
}

TEST(CostUsd, ZeroUsageCostsNothing) {
  const ModelPrice price{.input_per_mtok = 2.0, .output_per_mtok = 8.0, .cached_input_per_mtok = 0.5};
  EXPECT_EQ(cost_usd(price, {}), 0.0);
}

TEST(CostUsd, ReasoningTokensArePartOfOutputAndBilledOnce) {
  const ModelPrice price{.input_per_mtok = 1.1, .output_per_mtok = 4.4};
  // 300 output tokens of which 250 were hidden reasoning: 300 billed, not 550.
  const TokenUsage usage{.input_tokens = 1000, .output_tokens = 300, .reasoning_tokens = 250};
  EXPECT_NEAR(cost_usd(price, usage), (1000 * 1.1 + 300 * 4.4) / 1e6, 1e-15);
}

TEST(CostUsd, BatchBillingUsesTheBatchPrices) {
  const ModelPrice price{.input_per_mtok = 2.5, .output_per_mtok = 10, .cached_input_per_mtok = 1.25,
                         .cache_write_per_mtok = 2.5, .batch_input_per_mtok = 1.25, .batch_output_per_mtok = 5};
  const TokenUsage usage{.input_tokens = 1000, .output_tokens = 200};
  EXPECT_NEAR(cost_usd(price, usage, Billing::batch), (1000 * 1.25 + 200 * 5) / 1e6, 1e-15);
  EXPECT_NEAR(cost_usd(price, usage, Billing::batch), cost_usd(price, usage) / 2, 1e-15);
  // Cached input is never dearer in a batch than uncached batch input.
  const ModelPrice cheap_batch{.input_per_mtok = 2, .output_per_mtok = 8, .cached_input_per_mtok = 1.5,
                               .cache_write_per_mtok = 2, .batch_input_per_mtok = 1, .batch_output_per_mtok = 4};
  const TokenUsage cached{.input_tokens = 1000, .cached_tokens = 1000};
  EXPECT_NEAR(cost_usd(cheap_batch, cached, Billing::batch), 1000 * 1.0 / 1e6, 1e-15);
}

TEST(ModelCatalog, BatchPricesAreHalfPriceWhereTheCatalogSaysSoAndFullPriceElsewhere) {
  auto catalog = ModelCatalog::load(CatalogConfig{});
  ASSERT_TRUE(catalog) << catalog.error().message;
  const ModelInfo* gpt4o = catalog->find("gpt-4o");
  ASSERT_NE(gpt4o, nullptr);
  EXPECT_DOUBLE_EQ(gpt4o->price.batch_input_per_mtok, gpt4o->price.input_per_mtok / 2);
  EXPECT_DOUBLE_EQ(gpt4o->price.batch_output_per_mtok, gpt4o->price.output_per_mtok / 2);
  // No batch price in the catalog: the batch API gives no discount.
  auto two = ModelCatalog::from_yaml(kTwoModels);
  ASSERT_TRUE(two);
  for (const auto& m : two->models()) {
    EXPECT_DOUBLE_EQ(m.price.batch_input_per_mtok, m.price.input_per_mtok) << m.id;
    EXPECT_DOUBLE_EQ(m.price.batch_output_per_mtok, m.price.output_per_mtok) << m.id;
  }
}

TEST(ModelCatalog, LegacyModelsArePricedButNeverRouted) {
  auto catalog = ModelCatalog::load(CatalogConfig{});
  ASSERT_TRUE(catalog) << catalog.error().message;
  for (const char* id : {"gpt-3.5-turbo-1106", "gpt-4-1106-preview"}) {
    const ModelInfo* m = catalog->find(id);
    ASSERT_NE(m, nullptr) << id;
    EXPECT_TRUE(m->legacy);
    for (const auto& routable : catalog->models()) EXPECT_NE(routable.id, id);
  }
  EXPECT_EQ(catalog->legacy_models().size(), 2u);
  // OpenAI's published prices for these versions.
  EXPECT_DOUBLE_EQ(catalog->find("gpt-3.5-turbo-1106")->price.input_per_mtok, 1.0);
  EXPECT_DOUBLE_EQ(catalog->find("gpt-3.5-turbo-1106")->price.output_per_mtok, 2.0);
  EXPECT_DOUBLE_EQ(catalog->find("gpt-4-1106-preview")->price.input_per_mtok, 10.0);
  EXPECT_DOUBLE_EQ(catalog->find("gpt-4-1106-preview")->price.output_per_mtok, 30.0);
}

TEST(ModelCatalog, RejectsANonBooleanLegacyFlagAndAnAllLegacyCatalog) {
  const std::string model = "  - {id: m, provider: p, tier: small, context_window: 10, max_output_tokens: 5, "
                            "input_per_mtok: 1, output_per_mtok: 2, legacy: ";
  EXPECT_FALSE(ModelCatalog::from_yaml("price_version: v\nmodels:\n" + model + "maybe}\n"));
  auto all_legacy = ModelCatalog::from_yaml("price_version: v\nmodels:\n" + model + "true}\n");
  ASSERT_FALSE(all_legacy);
  EXPECT_NE(all_legacy.error().message.find("legacy"), std::string::npos);
}

// ---- capabilities and regions (docs/routing.md, "Hard constraints") ----

TEST(ModelCatalog, CapabilitiesAreTheListedOnesAndAnAbsentListMeansAll) {
  auto catalog = ModelCatalog::from_yaml(with_smart_line("    cache_write_per_mtok: 2.5",
                                                         "    cache_write_per_mtok: 2.5\n    capabilities: [tools, json]"));
  ASSERT_TRUE(catalog) << catalog.error().message;
  const ModelInfo* smart = catalog->find("smart");
  EXPECT_EQ(smart->capabilities, kCapabilityTools | kCapabilityJson);
  EXPECT_TRUE(smart->has(kCapabilityTools));
  EXPECT_FALSE(smart->has(kCapabilityVision));
  EXPECT_FALSE(smart->has(kCapabilityTools | kCapabilityVision));
  EXPECT_EQ(catalog->find("fast")->capabilities, kAllCapabilities);  // declares nothing

  auto none = ModelCatalog::from_yaml(
      with_smart_line("    cache_write_per_mtok: 2.5", "    cache_write_per_mtok: 2.5\n    capabilities: []"));
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_EQ(none->find("smart")->capabilities, 0u);
  EXPECT_EQ(capability_names(kCapabilityTools | kCapabilityVision), "tools,vision");
}

TEST(ModelCatalog, RejectsAnUnknownCapabilityOrAMalformedList) {
  EXPECT_NE(error_of(with_smart_line("    cache_write_per_mtok: 2.5",
                                     "    cache_write_per_mtok: 2.5\n    capabilities: [tools, telepathy]"))
                .find("unknown capability 'telepathy'"),
            std::string::npos);
  EXPECT_NE(error_of(with_smart_line("    cache_write_per_mtok: 2.5", "    cache_write_per_mtok: 2.5\n    capabilities: tools"))
                .find("'capabilities' must be a list"),
            std::string::npos);
  EXPECT_NE(error_of(with_smart_line("    cache_write_per_mtok: 2.5", "    cache_write_per_mtok: 2.5\n    regions: eu"))
                .find("'regions' must be a list"),
            std::string::npos);
}

TEST(ModelCatalog, RegionsComeFromTheModelElseItsProvider) {
  std::string yaml = with_smart_line("    cache_write_per_mtok: 2.5", "    cache_write_per_mtok: 2.5\n    regions: [eu]");
  yaml = "provider_regions:\n  openai: [us]\n  groq: [us, eu]\n" + yaml;
  auto catalog = ModelCatalog::from_yaml(yaml);
  ASSERT_TRUE(catalog) << catalog.error().message;
  EXPECT_EQ(catalog->find("smart")->regions, (std::vector<std::string>{"eu"}));  // its own, not openai's
  EXPECT_EQ(catalog->find("fast")->regions, (std::vector<std::string>{"us", "eu"}));
  EXPECT_TRUE(catalog->find("fast")->in_region("eu"));
  EXPECT_FALSE(catalog->find("fast")->in_region("ap"));

  auto without = ModelCatalog::from_yaml(kTwoModels);
  ASSERT_TRUE(without);
  EXPECT_TRUE(without->find("fast")->regions.empty());
  EXPECT_NE(error_of("provider_regions: [eu]\n" + std::string(kTwoModels)).find("provider_regions"), std::string::npos);
}

TEST(ModelCatalog, BuiltInCatalogCarriesLiteLlmCapabilitiesAndProviderRegions) {
  auto catalog = ModelCatalog::load(CatalogConfig{});
  ASSERT_TRUE(catalog) << catalog.error().message;
  // LiteLLM: supports_function_calling false for deepseek-reasoner, no
  // supports_vision for Groq's Llama models, supports_response_schema false
  // for llama-3.1-8b-instant.
  EXPECT_FALSE(catalog->find("deepseek-reasoner")->has(kCapabilityTools));
  EXPECT_FALSE(catalog->find("llama-3.1-8b-instant")->has(kCapabilityVision));
  EXPECT_FALSE(catalog->find("llama-3.1-8b-instant")->has(kCapabilityJson));
  EXPECT_EQ(catalog->find("gpt-4o-mini")->capabilities, kAllCapabilities);
  EXPECT_TRUE(catalog->find("mistral-small")->in_region("eu"));
  EXPECT_TRUE(catalog->find("gpt-4o")->in_region("us"));
  EXPECT_FALSE(catalog->find("gpt-4o")->in_region("eu"));
  EXPECT_TRUE(catalog->find("gemini-2.5-flash")->regions.empty());  // no residency guarantee
  // Every tier keeps a model that can call tools, see images and answer in JSON.
  std::set<Tier> full;
  for (const auto& model : catalog->models())
    if (model.has(kAllCapabilities)) full.insert(model.tier);
  EXPECT_EQ(full.size(), 3u);
}

}  // namespace
}  // namespace cascade
