// Router policies (docs/routing.md, "Policies"): hard constraints, rules,
// named policies and the A/B experiment.
#include <gtest/gtest.h>

#include <set>
#include <stdexcept>
#include <string>

#include "router/route_policies.h"
#include "router/router.h"
#include "support/test_catalog.h"

namespace cascade {
namespace {

// Blended prices rise down the list within each tier. "tiny" has a small
// context and no capabilities; "plain" can do tools only; "full" does all.
constexpr const char* kCatalog = R"(
price_version: "policy-test"
provider_regions:
  a: [us]
  b: [eu]
models:
  - {id: small-tiny,  provider: a, tier: small,  context_window: 4000,   max_output_tokens: 2000,  input_per_mtok: 0.1, output_per_mtok: 0.4, capabilities: []}
  - {id: small-plain, provider: a, tier: small,  context_window: 128000, max_output_tokens: 16000, input_per_mtok: 0.2, output_per_mtok: 0.8, capabilities: [tools]}
  - {id: small-full,  provider: b, tier: small,  context_window: 128000, max_output_tokens: 16000, input_per_mtok: 0.3, output_per_mtok: 1.2, capabilities: [tools, vision, json]}
  - {id: medium-a,    provider: a, tier: medium, context_window: 200000, max_output_tokens: 64000, input_per_mtok: 1.0, output_per_mtok: 4.0, capabilities: [tools, vision, json]}
  - {id: medium-b,    provider: b, tier: medium, context_window: 200000, max_output_tokens: 64000, input_per_mtok: 2.0, output_per_mtok: 8.0, capabilities: [tools, vision, json]}
  - {id: large-a,     provider: a, tier: large,  context_window: 1000000, max_output_tokens: 128000, input_per_mtok: 5.0, output_per_mtok: 20.0, capabilities: [tools, vision, json]}
  - {id: large-c,     provider: c, tier: large,  context_window: 1000000, max_output_tokens: 128000, input_per_mtok: 9.0, output_per_mtok: 30.0, capabilities: [tools, vision, json], regions: [eu, us]}
)";

ModelCatalog test_catalog() { return testing::catalog_from_yaml(kCatalog); }

ProviderAvailable only(std::set<std::string> providers) {
  return [providers = std::move(providers)](std::string_view name) { return providers.contains(std::string(name)); };
}
ProviderAvailable all_providers() { return only({"a", "b", "c"}); }

// Thresholds that send every request to one tier whatever its score.
TierThresholds forcing(Tier tier) {
  return tier == Tier::small    ? TierThresholds{1.01, 1.01}
         : tier == Tier::medium ? TierThresholds{0.0, 1.01}
                                : TierThresholds{0.0, 0.0};
}
RouterConfig routing_to(Tier tier) {
  const TierThresholds t = forcing(tier);
  RouterConfig config;
  config.balanced = config.cost = config.quality = config.speed = t;
  return config;
}

PromptEvent prompt(std::string text, std::string id = "req-1") {
  PromptEvent event;
  event.id = std::move(id);
  event.tenant = "acme";
  event.messages = nlohmann::json::array({{{"role", "user"}, {"content", std::move(text)}}});
  return event;
}

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

// ------------------------------------------------------- hard constraints ----

TEST(HardConstraints, AutoRoutingSkipsAModelWhoseContextWindowIsTooSmall) {
  const auto catalog = test_catalog();
  const Router router(routing_to(Tier::small), catalog, all_providers());
  RouteContext context;
  context.input_tokens = 10000;
  auto decision = router.route(prompt("hi"), context);
  ASSERT_TRUE(decision) << decision.error().message;
  EXPECT_EQ(decision->model->id, "small-plain");
  EXPECT_TRUE(contains(decision->reason, "skipped for constraints: small-tiny: context window 4000 < 11024"))
      << decision->reason;
  ASSERT_EQ(decision->skipped.size(), 1u);
}

TEST(HardConstraints, WithoutATokenCountTheInputIsEstimatedAsBytesOverFour) {
  const auto catalog = test_catalog();
  const Router router(routing_to(Tier::small), catalog, all_providers());
  // 16,000 bytes ~ 4,000 tokens: with max_tokens that no longer fits 4,000.
  auto decision = router.route(prompt(std::string(16000, 'x')));
  ASSERT_TRUE(decision) << decision.error().message;
  EXPECT_EQ(decision->model->id, "small-plain");
  EXPECT_TRUE(contains(decision->reason, "~4000 input")) << decision->reason;

  auto requirements = route_requirements(prompt(std::string(16000, 'x')), RouteContext{});
  ASSERT_TRUE(requirements);
  EXPECT_EQ(requirements->input_tokens, 4000);
  EXPECT_TRUE(requirements->input_estimated);
}

TEST(HardConstraints, ATokenizerCountReplacesTheEstimate) {
  const auto catalog = test_catalog();
  const Router router(routing_to(Tier::small), catalog, all_providers());
  RouteContext context;
  context.input_tokens = 100;  // the tokenizer knows better than bytes/4
  auto decision = router.route(prompt(std::string(16000, 'x')), context);
  ASSERT_TRUE(decision) << decision.error().message;
  EXPECT_EQ(decision->model->id, "small-tiny");
}

TEST(HardConstraints, AnExplicitMaxTokensMustFitTheContextAndTheOutputLimit) {
  const auto catalog = test_catalog();
  const Router router(routing_to(Tier::small), catalog, all_providers());
  PromptEvent event = prompt("hi");
  event.max_tokens = 3999;  // 1 input token + 3999 fits 4000, but tiny outputs at most 2000
  auto decision = router.route(event);
  ASSERT_TRUE(decision) << decision.error().message;
  EXPECT_EQ(decision->model->id, "small-plain");
  EXPECT_TRUE(contains(decision->reason, "small-tiny: max output 2000 < max_tokens 3999")) << decision->reason;
}

TEST(HardConstraints, TheDefaultMaxTokensIsCappedAtTheModelsOutputLimit) {
  const auto catalog = test_catalog();
  const Router router(routing_to(Tier::small), catalog, all_providers());
  RouteContext context;
  context.default_max_tokens = 8000;  // more than tiny outputs, and than its context
  auto decision = router.route(prompt("hi"), context);
  ASSERT_TRUE(decision) << decision.error().message;
  EXPECT_EQ(decision->model->id, "small-tiny");  // 1 + min(8000, 2000) fits 4000
}

TEST(HardConstraints, ARequestWithToolsOrToolMessagesSkipsModelsThatCannotCallTools) {
  const auto catalog = test_catalog();
  const Router router(routing_to(Tier::small), catalog, all_providers());
  PromptEvent with_tools = prompt("weather in Paris?");
  with_tools.tools = nlohmann::json::parse(R"([{"type":"function","function":{"name":"weather"}}])");
  auto decision = router.route(with_tools);
  ASSERT_TRUE(decision) << decision.error().message;
  EXPECT_EQ(decision->model->id, "small-plain");
  EXPECT_TRUE(contains(decision->reason, "small-tiny: no tools")) << decision->reason;

  PromptEvent tool_reply = prompt("thanks");
  tool_reply.messages = nlohmann::json::parse(R"([
    {"role":"user","content":"weather?"},
    {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"weather","arguments":"{}"}}]},
    {"role":"tool","tool_call_id":"c1","content":"sunny"}])");
  auto reply_decision = router.route(tool_reply);
  ASSERT_TRUE(reply_decision) << reply_decision.error().message;
  EXPECT_EQ(reply_decision->model->id, "small-plain");
}

TEST(HardConstraints, ImagePartsNeedVisionAndJsonResponseFormatsNeedJson) {
  const auto catalog = test_catalog();
  const Router router(routing_to(Tier::small), catalog, all_providers());
  PromptEvent image = prompt("");
  image.messages = nlohmann::json::parse(R"([{"role":"user","content":[
    {"type":"text","text":"what is this?"},{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}])");
  auto decision = router.route(image);
  ASSERT_TRUE(decision) << decision.error().message;
  EXPECT_EQ(decision->model->id, "small-full");

  PromptEvent json = prompt("list three colours");
  json.response_format = {{"type", "json_object"}};
  auto json_decision = router.route(json);
  ASSERT_TRUE(json_decision) << json_decision.error().message;
  EXPECT_EQ(json_decision->model->id, "small-full");

  PromptEvent text = prompt("list three colours");
  text.response_format = {{"type", "text"}};  // asks for nothing special
  auto text_decision = router.route(text);
  ASSERT_TRUE(text_decision) << text_decision.error().message;
  EXPECT_EQ(text_decision->model->id, "small-tiny");
}

TEST(HardConstraints, NoSuitableModelInTheWantedTierMovesToAStrongerTierAndSaysWhy) {
  const auto catalog = test_catalog();
  const Router router(routing_to(Tier::small), catalog, only({"a", "c"}));  // small-full's provider b is off
  PromptEvent image = prompt("");
  image.messages = nlohmann::json::parse(
      R"([{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}])");
  auto decision = router.route(image);
  ASSERT_TRUE(decision) << decision.error().message;
  EXPECT_EQ(decision->model->id, "medium-a");
  EXPECT_TRUE(contains(decision->reason, "(no small model meets the constraints: medium)")) << decision->reason;
}

TEST(HardConstraints, APinnedModelThatViolatesAConstraintIsAnInvalidRequest) {
  const auto catalog = test_catalog();
  const Router router(RouterConfig{}, catalog, all_providers());
  PromptEvent image = prompt("");
  image.model = "small-plain";
  image.messages = nlohmann::json::parse(
      R"([{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}])");
  auto decision = router.route(image);
  ASSERT_FALSE(decision);
  EXPECT_EQ(decision.error().code, ErrorCode::invalid_request);
  EXPECT_EQ(decision.error().message, "model 'small-plain' is pinned but cannot serve this request: no vision");

  PromptEvent long_prompt = prompt("hi");
  long_prompt.model = "small-tiny";
  RouteContext context;
  context.input_tokens = 5000;
  auto too_long = router.route(long_prompt, context);
  ASSERT_FALSE(too_long);
  EXPECT_EQ(too_long.error().code, ErrorCode::invalid_request);
  EXPECT_TRUE(contains(too_long.error().message, "context window 4000 < 6024 tokens")) << too_long.error().message;
}

TEST(HardConstraints, AResidencyTagKeepsOnlyModelsInThatRegion) {
  const auto catalog = test_catalog();
  const Router router(routing_to(Tier::small), catalog, all_providers());
  PromptEvent event = prompt("hi");
  event.metadata = {{"residency", "eu"}};
  auto decision = router.route(event);
  ASSERT_TRUE(decision) << decision.error().message;
  EXPECT_EQ(decision->model->id, "small-full");  // provider b is in eu (provider_regions)
  EXPECT_TRUE(contains(decision->reason, "small-tiny: not in region eu (regions: us)")) << decision->reason;
  for (const ModelInfo* fallback : decision->fallbacks) EXPECT_TRUE(fallback->in_region("eu")) << fallback->id;
}

TEST(HardConstraints, AModelsOwnRegionsOverrideItsProviders) {
  const auto catalog = test_catalog();
  const Router router(routing_to(Tier::large), catalog, only({"c"}));
  PromptEvent event = prompt("hi");
  event.metadata = {{"residency", "eu"}};
  auto decision = router.route(event);
  ASSERT_TRUE(decision) << decision.error().message;
  EXPECT_EQ(decision->model->id, "large-c");  // provider c has no provider_regions entry
}

TEST(HardConstraints, AResidencyNoModelHasIsAnInvalidRequestAndAMalformedOneToo) {
  const auto catalog = test_catalog();
  const Router router(RouterConfig{}, catalog, all_providers());
  PromptEvent event = prompt("hi");
  event.metadata = {{"residency", "ap"}};
  auto decision = router.route(event);
  ASSERT_FALSE(decision);
  EXPECT_EQ(decision.error().code, ErrorCode::invalid_request);
  EXPECT_TRUE(contains(decision.error().message, "no model in the catalog meets this request's constraints"))
      << decision.error().message;
  EXPECT_TRUE(contains(decision.error().message, "residency ap")) << decision.error().message;

  event.metadata = {{"residency", 42}};
  auto malformed = router.route(event);
  ASSERT_FALSE(malformed);
  EXPECT_EQ(malformed.error().code, ErrorCode::invalid_request);
  EXPECT_TRUE(contains(malformed.error().message, "metadata.residency")) << malformed.error().message;
}

TEST(HardConstraints, ModelsThatFitOnlyOnUnavailableProvidersMakeTheRequestUnavailable) {
  const auto catalog = test_catalog();
  const Router router(routing_to(Tier::small), catalog, only({"a"}));
  PromptEvent event = prompt("hi");
  event.metadata = {{"residency", "eu"}};
  auto decision = router.route(event);
  ASSERT_FALSE(decision);
  EXPECT_EQ(decision.error().code, ErrorCode::unavailable);
  EXPECT_TRUE(contains(decision.error().message, "small-full would, but its provider 'b' is not available"))
      << decision.error().message;
}

TEST(HardConstraints, FallbacksAreWithinTheConstraintsToo) {
  const auto catalog = test_catalog();
  RouterConfig config = routing_to(Tier::small);
  config.max_fallbacks = 5;
  const Router router(config, catalog, all_providers());
  PromptEvent event = prompt("");
  event.messages = nlohmann::json::parse(
      R"([{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}])");
  auto decision = router.route(event);
  ASSERT_TRUE(decision) << decision.error().message;
  EXPECT_EQ(decision->model->id, "small-full");
  ASSERT_FALSE(decision->fallbacks.empty());
  for (const ModelInfo* fallback : decision->fallbacks) {
    EXPECT_TRUE(fallback->has(kCapabilityVision)) << fallback->id;
  }
}

TEST(HardConstraints, ExplainDescribesTheConstraintsApplied) {
  const auto catalog = test_catalog();
  const Router router(routing_to(Tier::small), catalog, all_providers());
  PromptEvent event = prompt("hi");
  event.tools = nlohmann::json::parse(R"([{"type":"function","function":{"name":"f"}}])");
  event.metadata = {{"residency", "eu"}};
  event.max_tokens = 50;
  RouteContext context;
  context.input_tokens = 7;
  context.explain = true;
  auto decision = router.route(event, context);
  ASSERT_TRUE(decision) << decision.error().message;
  EXPECT_EQ(decision->constraints, "tokens 7+50 needs tools residency eu");
  EXPECT_EQ(decision->skipped.size(), 2u);  // tiny (no tools) and plain (us only)
}

TEST(HardConstraints, TheOldOverloadRoutesLikeAnEmptyContext) {
  const auto catalog = test_catalog();
  const Router router(RouterConfig{}, catalog, all_providers());
  auto old_way = router.route(prompt("What is the capital of France?"));
  auto new_way = router.route(prompt("What is the capital of France?"), RouteContext{});
  ASSERT_TRUE(old_way && new_way);
  EXPECT_EQ(old_way->model, new_way->model);
  EXPECT_EQ(old_way->reason, new_way->reason);
  EXPECT_EQ(old_way->reason, "heuristic score=0.00 pref=balanced tier=small");
  EXPECT_EQ(old_way->policy, "");
}

// ------------------------------------------------------------------ rules ----

RouteRuleConfig rule(std::string name) {
  RouteRuleConfig r;
  r.name = std::move(name);
  return r;
}

TEST(RouteRules, TheFirstMatchingRuleWins) {
  const auto catalog = test_catalog();
  RouterConfig config = routing_to(Tier::small);
  auto first = rule("first");
  first.tenant = "acme";
  first.tier = "large";
  auto second = rule("second");
  second.tenant = "acme";
  second.tier = "medium";
  config.rules = {first, second};
  const Router router(config, catalog, all_providers());
  auto decision = router.route(prompt("hi"));
  ASSERT_TRUE(decision) << decision.error().message;
  EXPECT_EQ(decision->model->id, "large-a");
  EXPECT_EQ(decision->rule, "first");
  EXPECT_EQ(decision->reason, "rule first: tier=large score=0.00");
}

TEST(RouteRules, EveryGivenMatchMustHold) {
  const auto catalog = test_catalog();
  RouterConfig config = routing_to(Tier::small);
  auto r = rule("legal");
  r.tenant = "acme";
  r.tag = "legal";
  r.metadata = {{"team", "contracts"}, {"priority", "1"}};
  r.tier = "large";
  config.rules = {r};
  const Router router(config, catalog, all_providers());

  PromptEvent event = prompt("hi");
  event.metadata = {{"tags", {"x", "legal"}}, {"team", "contracts"}, {"priority", 1}};
  auto matched = router.route(event);
  ASSERT_TRUE(matched) << matched.error().message;
  EXPECT_EQ(matched->rule, "legal");

  PromptEvent other_tenant = event;
  other_tenant.tenant = "globex";
  PromptEvent no_tag = event;
  no_tag.metadata["tags"] = {"x"};
  PromptEvent other_team = event;
  other_team.metadata["team"] = "sales";
  PromptEvent no_metadata = prompt("hi");
  for (const PromptEvent* e : {&other_tenant, &no_tag, &other_team, &no_metadata}) {
    auto decision = router.route(*e);
    ASSERT_TRUE(decision) << decision.error().message;
    EXPECT_EQ(decision->rule, "");
    EXPECT_EQ(decision->model->tier, Tier::small);
  }
}

TEST(RouteRules, APromptRegexIsSearchedInTheLastUserMessageOnly) {
  const auto catalog = test_catalog();
  RouterConfig config = routing_to(Tier::small);
  auto r = rule("sql");
  r.prompt = R"((?i)\bsql\b)";
  r.tier = "medium";
  config.rules = {r};
  const Router router(config, catalog, all_providers());

  auto matched = router.route(prompt("Write SQL for the top customers"));
  ASSERT_TRUE(matched) << matched.error().message;
  EXPECT_EQ(matched->rule, "sql");
  EXPECT_EQ(matched->model->id, "medium-a");

  auto no_word = router.route(prompt("the mysqldump tool"));  // \b: not the word sql
  ASSERT_TRUE(no_word);
  EXPECT_EQ(no_word->rule, "");

  PromptEvent earlier = prompt("");
  earlier.messages = nlohmann::json::parse(R"([
    {"role":"user","content":"write sql"},{"role":"assistant","content":"SELECT 1"},
    {"role":"user","content":[{"type":"text","text":"thanks, now a haiku"}]}])");
  auto earlier_decision = router.route(earlier);
  ASSERT_TRUE(earlier_decision);
  EXPECT_EQ(earlier_decision->rule, "");

  PromptEvent parts = prompt("");
  parts.messages = nlohmann::json::parse(R"([{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"Sql please"}]}])");
  auto parts_decision = router.route(parts);
  ASSERT_TRUE(parts_decision);
  EXPECT_EQ(parts_decision->rule, "sql");
}

TEST(RouteRules, ARuleCanPinAModel) {
  const auto catalog = test_catalog();
  RouterConfig config = routing_to(Tier::small);
  auto r = rule("vip");
  r.tenant = "acme";
  r.model = "medium-b";
  config.rules = {r};
  const Router router(config, catalog, all_providers());
  auto decision = router.route(prompt("hi"));
  ASSERT_TRUE(decision) << decision.error().message;
  EXPECT_EQ(decision->model->id, "medium-b");
  EXPECT_EQ(decision->reason, "rule vip: pinned medium-b");
  EXPECT_TRUE(decision->fallbacks.empty());
}

TEST(RouteRules, ARulesPinThatViolatesAConstraintIsSkippedAndTheReasonSaysSo) {
  const auto catalog = test_catalog();
  RouterConfig config = routing_to(Tier::small);
  auto r = rule("cheap");
  r.tenant = "acme";
  r.model = "small-tiny";
  config.rules = {r};
  const Router router(config, catalog, all_providers());
  PromptEvent event = prompt("hi");
  event.tools = nlohmann::json::parse(R"([{"type":"function","function":{"name":"f"}}])");
  auto decision = router.route(event);
  ASSERT_TRUE(decision) << decision.error().message;
  EXPECT_EQ(decision->model->id, "small-plain");
  EXPECT_TRUE(contains(decision->reason, "(rule cheap pins small-tiny, not usable: no tools)")) << decision->reason;
}

TEST(RouteRules, ARuleCanApplyANamedPolicy) {
  const auto catalog = test_catalog();
  RouterConfig config = routing_to(Tier::small);
  RoutePolicyConfig careful;
  careful.thresholds = forcing(Tier::large);
  config.policies["careful"] = careful;
  auto r = rule("careful-for-acme");
  r.tenant = "acme";
  r.policy = "careful";
  config.rules = {r};
  const Router router(config, catalog, all_providers());
  auto decision = router.route(prompt("hi"));
  ASSERT_TRUE(decision) << decision.error().message;
  EXPECT_EQ(decision->model->id, "large-a");
  EXPECT_EQ(decision->policy, "careful");
  EXPECT_EQ(decision->reason, "heuristic score=0.00 pref=balanced tier=large policy=careful rule=careful-for-acme");
}

TEST(RouteRules, APolicysPreferenceReplacesTheRequests) {
  const auto catalog = test_catalog();
  RouterConfig config;
  config.balanced = forcing(Tier::large);
  config.cost = forcing(Tier::small);
  RoutePolicyConfig frugal;
  frugal.preference = "cost";
  config.policies["frugal"] = frugal;
  auto r = rule("");
  r.tenant = "acme";
  r.policy = "frugal";
  config.rules = {r};
  const Router router(config, catalog, all_providers());
  auto decision = router.route(prompt("hi"));  // balanced by default
  ASSERT_TRUE(decision) << decision.error().message;
  EXPECT_EQ(decision->model->tier, Tier::small);
  EXPECT_EQ(decision->rule, "rules[0]");  // unnamed rules are named by position
  EXPECT_TRUE(contains(decision->reason, "pref=cost")) << decision->reason;
}

TEST(RouteRules, AResidencyRuleAddsARequirement) {
  const auto catalog = test_catalog();
  RouterConfig config = routing_to(Tier::small);
  auto r = rule("eu-tenant");
  r.tenant = "acme";
  r.residency = "eu";
  config.rules = {r};
  const Router router(config, catalog, all_providers());
  auto decision = router.route(prompt("hi"));
  ASSERT_TRUE(decision) << decision.error().message;
  EXPECT_EQ(decision->model->id, "small-full");
  EXPECT_EQ(decision->rule, "eu-tenant");
}

TEST(RouteRules, APinnedRequestIgnoresRules) {
  const auto catalog = test_catalog();
  RouterConfig config = routing_to(Tier::small);
  auto r = rule("all-large");
  r.tenant = "acme";
  r.tier = "large";
  config.rules = {r};
  const Router router(config, catalog, all_providers());
  PromptEvent event = prompt("hi");
  event.model = "small-plain";
  auto decision = router.route(event);
  ASSERT_TRUE(decision) << decision.error().message;
  EXPECT_EQ(decision->model->id, "small-plain");
  EXPECT_EQ(decision->reason, "pinned");
  EXPECT_EQ(decision->rule, "");
}

TEST(RouteRules, AnInvalidRegexOrUnknownModelIsAStartupErrorNamingTheKey) {
  const auto catalog = test_catalog();
  RouterConfig config;
  auto ok = rule("ok");
  ok.tenant = "acme";
  ok.tier = "small";
  auto bad = rule("bad");
  bad.prompt = "(unclosed";
  bad.tier = "large";
  config.rules = {ok, bad};
  auto invalid = compile_route_policies(config, catalog);
  ASSERT_FALSE(invalid);
  EXPECT_EQ(invalid.error().code, ErrorCode::invalid_request);
  EXPECT_TRUE(contains(invalid.error().message, "router.rules[1].match.prompt: invalid regex"))
      << invalid.error().message;
  EXPECT_THROW(Router(config, catalog, all_providers()), std::invalid_argument);

  config.rules = {ok};
  config.rules[0].tier.clear();
  config.rules[0].model = "gpt-nonexistent";
  auto unknown = compile_route_policies(config, catalog);
  ASSERT_FALSE(unknown);
  EXPECT_TRUE(contains(unknown.error().message, "router.rules[0].model: 'gpt-nonexistent' is not in the model catalog"))
      << unknown.error().message;

  config.rules[0].model = "medium-a";
  auto compiled = compile_route_policies(config, catalog);
  ASSERT_TRUE(compiled);
  EXPECT_TRUE(*compiled) << "a config with rules compiles to policies";
  EXPECT_FALSE(*compile_route_policies(RouterConfig{}, catalog)) << "none without rules, policies or experiment";
}

// ------------------------------------------------------------- experiment ----

RouterConfig experiment_config(double split) {
  RouterConfig config = routing_to(Tier::medium);
  RoutePolicyConfig cheap;
  cheap.thresholds = forcing(Tier::small);
  RoutePolicyConfig strong;
  strong.thresholds = forcing(Tier::large);
  config.policies["cheap"] = cheap;
  config.policies["strong"] = strong;
  config.experiment.name = "tiers";
  config.experiment.policies = {"cheap", "strong"};
  config.experiment.split = split;
  return config;
}

TEST(RouteExperiment, EachArmRoutesWithItsPolicyAndIsLabelled) {
  const auto catalog = test_catalog();
  const Router router(experiment_config(0.5), catalog, all_providers());
  std::set<std::string> labels;
  for (int i = 0; i < 64; ++i) {
    auto decision = router.route(prompt("hi", "id-" + std::to_string(i)));
    ASSERT_TRUE(decision) << decision.error().message;
    labels.insert(decision->policy);
    if (decision->policy == "tiers:cheap") {
      EXPECT_EQ(decision->model->tier, Tier::small);
    }
    if (decision->policy == "tiers:strong") {
      EXPECT_EQ(decision->model->tier, Tier::large);
    }
    EXPECT_TRUE(contains(decision->reason, " policy=" + decision->policy)) << decision->reason;
  }
  EXPECT_EQ(labels, (std::set<std::string>{"tiers:cheap", "tiers:strong"}));
}

TEST(RouteExperiment, TheArmDependsOnlyOnTheRequestIdSoARedeliveryGetsTheSameOne) {
  const auto catalog = test_catalog();
  const Router one(experiment_config(0.5), catalog, all_providers());
  const Router another(experiment_config(0.5), catalog, all_providers());  // another worker
  for (int i = 0; i < 50; ++i) {
    const std::string id = "request-" + std::to_string(i);
    PromptEvent first = prompt("hi", id);
    PromptEvent redelivered = prompt("a different text, same id", id);
    redelivered.tenant = "other";
    auto a = one.route(first);
    auto b = another.route(redelivered);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->policy, b->policy) << id;
  }
  // Fixed across releases: the hash is ours, not std::hash.
  EXPECT_DOUBLE_EQ(experiment_position("tiers", "request-0"), experiment_position("tiers", "request-0"));
  EXPECT_NE(experiment_position("tiers", "request-0"), experiment_position("other", "request-0"));
}

TEST(RouteExperiment, TheSplitIsTheShareOfTheFirstPolicy) {
  const auto catalog = test_catalog();
  const Router router(experiment_config(0.3), catalog, all_providers());
  int first = 0;
  constexpr int kRequests = 10000;
  for (int i = 0; i < kRequests; ++i) {
    auto decision = router.route(prompt("hi", "req-" + std::to_string(i)));
    ASSERT_TRUE(decision);
    first += decision->policy == "tiers:cheap";
  }
  // Binomial(10000, 0.3): sd ~46; 0.02 is over 4 sd.
  EXPECT_NEAR(static_cast<double>(first) / kRequests, 0.3, 0.02);

  for (const double split : {0.0, 1.0}) {
    const Router all_one_arm(experiment_config(split), catalog, all_providers());
    for (int i = 0; i < 200; ++i) {
      auto decision = all_one_arm.route(prompt("hi", "r" + std::to_string(i)));
      ASSERT_TRUE(decision);
      EXPECT_EQ(decision->policy, split == 0.0 ? "tiers:strong" : "tiers:cheap");
    }
  }
}

TEST(RouteExperiment, RequestsARuleDecidesOrThatArePinnedAreLeftOut) {
  const auto catalog = test_catalog();
  RouterConfig config = experiment_config(0.5);
  auto r = rule("vip");
  r.tenant = "vip";
  r.tier = "medium";
  config.rules = {r};
  const Router router(config, catalog, all_providers());
  PromptEvent vip = prompt("hi");
  vip.tenant = "vip";
  auto ruled = router.route(vip);
  ASSERT_TRUE(ruled);
  EXPECT_EQ(ruled->policy, "");
  EXPECT_EQ(ruled->rule, "vip");

  PromptEvent pinned = prompt("hi");
  pinned.model = "medium-a";
  auto pinned_decision = router.route(pinned);
  ASSERT_TRUE(pinned_decision);
  EXPECT_EQ(pinned_decision->policy, "");
}

TEST(RouteExperiment, DefaultNamesTheRoutersOwnThresholdsAsAnArm) {
  const auto catalog = test_catalog();
  RouterConfig config = experiment_config(1.0);
  config.experiment.policies = {"default", "strong"};
  const Router router(config, catalog, all_providers());
  auto decision = router.route(prompt("hi"));
  ASSERT_TRUE(decision) << decision.error().message;
  EXPECT_EQ(decision->policy, "tiers:default");
  EXPECT_EQ(decision->model->tier, Tier::medium);  // routing_to(medium): the router's own
}

// ------------------------------------------------------- route_cheapest ----

TEST(RouteCheapest, TakesTheCheapestModelThatMeetsTheConstraintsWhateverTheTier) {
  const auto catalog = test_catalog();
  const Router router(routing_to(Tier::large), catalog, all_providers());
  auto plain = router.route_cheapest(prompt("hi"));
  ASSERT_TRUE(plain) << plain.error().message;
  EXPECT_EQ(plain->model->id, "small-tiny");

  PromptEvent image = prompt("");
  image.messages = nlohmann::json::parse(
      R"([{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}])");
  auto vision = router.route_cheapest(image);
  ASSERT_TRUE(vision) << vision.error().message;
  EXPECT_EQ(vision->model->id, "small-full");
  for (const ModelInfo* fallback : vision->fallbacks) EXPECT_TRUE(fallback->has(kCapabilityVision));

  PromptEvent nowhere = prompt("hi");
  nowhere.metadata = {{"residency", "ap"}};
  auto refused = router.route_cheapest(nowhere);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::invalid_request);
}

TEST(RouteCheapest, KeepsTheExperimentArmAndARulesResidency) {
  const auto catalog = test_catalog();
  RouterConfig config = experiment_config(0.5);
  auto eu = rule("eu");
  eu.tenant = "acme";
  eu.residency = "eu";
  config.rules = {eu};
  const Router router(config, catalog, all_providers());
  for (int i = 0; i < 20; ++i) {
    const PromptEvent event = prompt("hi", "id-" + std::to_string(i));
    auto routed = router.route(event);
    auto cheapest = router.route_cheapest(event);
    ASSERT_TRUE(routed && cheapest);
    EXPECT_EQ(cheapest->policy, routed->policy);
    EXPECT_FALSE(cheapest->policy.empty());
    EXPECT_EQ(cheapest->model->id, "small-full");  // the cheapest in eu
  }
}

}  // namespace
}  // namespace cascade
