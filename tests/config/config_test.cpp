#include "config/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <utility>

#include "support/env.h"
#include "support/temp_dir.h"

namespace cascade {
namespace {

using ::testing::HasSubstr;
using testing::env_of;
using testing::TempDir;
using testing::TempFile;

const EnvLookup kNoEnv = testing::no_env();

Config load_ok(const std::string& file, const EnvLookup& env) {
  auto config = load_config(file, env);
  if (!config) ADD_FAILURE() << "load_config failed: " << config.error().message;
  return config ? *config : Config{};
}

std::string load_error(const std::string& file, const EnvLookup& env) {
  auto config = load_config(file, env);
  if (config) {
    ADD_FAILURE() << "load_config succeeded, expected an error";
    return {};
  }
  EXPECT_EQ(config.error().code, ErrorCode::invalid_request);
  return config.error().message;
}

TEST(LoadConfig, WithoutFileOrEnvGivesTheDefaultsDocumentedInCascadeYaml) {
  const Config c = load_ok("", kNoEnv);

  EXPECT_EQ(c.kafka.bootstrap, "");
  EXPECT_TRUE(c.kafka.embedded());
  EXPECT_EQ(c.kafka.partitions, 16);
  EXPECT_EQ(c.kafka.fetch_wait_max_ms, 5);
  EXPECT_EQ(c.kafka.linger_ms, 2);
  EXPECT_EQ(c.kafka.worker_group, "cascade-workers");
  EXPECT_EQ(c.kafka.ledger_group, "cascade-ledger");
  EXPECT_EQ(c.kafka.extra, "");
  EXPECT_EQ(c.kafka.requests_topic, "cascade.requests");
  EXPECT_EQ(c.kafka.ledger_topic, "cascade.ledger");
  EXPECT_EQ(c.kafka.dlq_topic, "cascade.dlq");
  EXPECT_EQ(c.kafka.replies_topic, "cascade.replies");

  EXPECT_EQ(c.worker.threads, 1);
  EXPECT_EQ(c.worker.max_in_flight, 512);
  EXPECT_DOUBLE_EQ(c.worker.resume_fraction, 0.5);
  EXPECT_EQ(c.worker.commit_interval_ms, 500);
  EXPECT_EQ(c.worker.cancel_window_ms, 600000);
  EXPECT_EQ(c.worker.cancel_max_pending, 10000u);
  EXPECT_EQ(c.kafka.cancels_topic, "cascade.cancels");

  EXPECT_EQ(c.limits.max_event_bytes, 1048576u);
  EXPECT_EQ(c.limits.default_max_tokens, 1024);
  EXPECT_EQ(c.state.dir, "./data/state");
  EXPECT_EQ(c.catalog.file, "");
  EXPECT_EQ(c.catalog.baseline_model, "gpt-4o");

  EXPECT_DOUBLE_EQ(c.router.balanced.small_max, 0.30);
  EXPECT_DOUBLE_EQ(c.router.balanced.medium_max, 0.60);
  EXPECT_DOUBLE_EQ(c.router.cost.small_max, 0.55);
  EXPECT_DOUBLE_EQ(c.router.cost.medium_max, 0.85);
  EXPECT_DOUBLE_EQ(c.router.quality.small_max, 0.15);
  EXPECT_DOUBLE_EQ(c.router.quality.medium_max, 0.45);
  EXPECT_DOUBLE_EQ(c.router.speed.small_max, 0.6);
  EXPECT_DOUBLE_EQ(c.router.speed.medium_max, 0.9);

  EXPECT_EQ(c.ledger.metrics_listen, "127.0.0.1:9464");
  EXPECT_EQ(c.log.level, "info");
}

TEST(LoadConfig, DefaultProvidersAreTheSixDocumentedEndpointsWithTheirKeyVariables) {
  const Config c = load_ok("", kNoEnv);
  struct Endpoint {
    std::string kind, url, key;
  };
  const std::map<std::string, Endpoint> expected = {
      {"openai", {"openai", "https://api.openai.com/v1", "OPENAI_API_KEY"}},
      {"groq", {"openai", "https://api.groq.com/openai/v1", "GROQ_API_KEY"}},
      {"deepseek", {"openai", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"}},
      {"mistral", {"openai", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"}},
      {"anthropic", {"anthropic", "https://api.anthropic.com", "ANTHROPIC_API_KEY"}},
      {"gemini", {"gemini", "https://generativelanguage.googleapis.com/v1beta", "GEMINI_API_KEY"}},
  };
  ASSERT_EQ(c.providers.size(), expected.size());
  for (const auto& [name, endpoint] : expected) {
    SCOPED_TRACE(name);
    auto it = c.providers.find(name);
    ASSERT_NE(it, c.providers.end());
    EXPECT_EQ(it->second.name, name);
    EXPECT_EQ(it->second.kind, endpoint.kind);
    EXPECT_EQ(it->second.base_url, endpoint.url);
    EXPECT_EQ(it->second.api_key_env, endpoint.key);
    EXPECT_EQ(it->second.connect_timeout_ms, 5000);
    EXPECT_EQ(it->second.first_token_timeout_ms, 60000);
    EXPECT_EQ(it->second.idle_timeout_ms, 30000);
    EXPECT_EQ(it->second.request_timeout_ms, 120000);
    EXPECT_TRUE(it->second.headers.empty());
  }
}

TEST(LoadConfig, CompiledInDefaultsAreTheRepositoryCascadeYaml) {
  std::ifstream in(CASCADE_TEST_DEFAULT_CONFIG);
  ASSERT_TRUE(in) << CASCADE_TEST_DEFAULT_CONFIG;
  const std::string on_disk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(default_config_yaml(), on_disk);
}

TEST(LoadConfig, EnvOverridesNestedScalarsNamedAfterTheirKeyPath) {
  const Config c = load_ok("", env_of({
                                   {"CASCADE_KAFKA_BOOTSTRAP", "broker-a:9092,broker-b:9092"},
                                   {"CASCADE_STATE_DIR", "/var/lib/cascade/w1"},
                                   {"CASCADE_WORKER_MAX_IN_FLIGHT", "7"},
                                   {"CASCADE_PROVIDERS_OPENAI_BASE_URL", "http://127.0.0.1:8000/v1"},
                                   {"CASCADE_ROUTER_BALANCED_SMALL_MAX", "0.2"},
                                   {"CASCADE_KAFKA_TOPICS_REQUESTS", "tenant-a.requests"},
                               }));
  EXPECT_EQ(c.kafka.bootstrap, "broker-a:9092,broker-b:9092");
  EXPECT_FALSE(c.kafka.embedded());
  EXPECT_EQ(c.state.dir, "/var/lib/cascade/w1");
  EXPECT_EQ(c.worker.max_in_flight, 7);
  EXPECT_EQ(c.providers.at("openai").base_url, "http://127.0.0.1:8000/v1");
  EXPECT_DOUBLE_EQ(c.router.balanced.small_max, 0.2);
  EXPECT_EQ(c.kafka.requests_topic, "tenant-a.requests");

  // Neighbours of the overridden keys keep their defaults.
  EXPECT_DOUBLE_EQ(c.router.balanced.medium_max, 0.60);
  EXPECT_EQ(c.worker.threads, 1);
  EXPECT_EQ(c.providers.at("groq").base_url, "https://api.groq.com/openai/v1");
}

TEST(LoadConfig, EnvSetToEmptyStringClearsAValue) {
  TempFile file("kafka:\n  bootstrap: redpanda:9092\n");
  const Config c = load_ok(file.path(), env_of({{"CASCADE_KAFKA_BOOTSTRAP", ""}}));
  EXPECT_EQ(c.kafka.bootstrap, "");
  EXPECT_TRUE(c.kafka.embedded());
}

TEST(LoadConfig, FileOverridesOnlyTheKeysItSets) {
  TempFile file(R"(
kafka:
  partitions: 4
router:
  cost:
    small_max: 0.5
providers:
  groq:
    request_timeout_ms: 30000
)");
  const Config c = load_ok(file.path(), kNoEnv);
  EXPECT_EQ(c.kafka.partitions, 4);
  EXPECT_DOUBLE_EQ(c.router.cost.small_max, 0.5);
  EXPECT_EQ(c.providers.at("groq").request_timeout_ms, 30000);

  EXPECT_EQ(c.kafka.bootstrap, "");
  EXPECT_EQ(c.kafka.fetch_wait_max_ms, 5);
  EXPECT_EQ(c.kafka.requests_topic, "cascade.requests");
  EXPECT_DOUBLE_EQ(c.router.cost.medium_max, 0.85);
  EXPECT_DOUBLE_EQ(c.router.balanced.small_max, 0.30);
  EXPECT_EQ(c.providers.at("groq").base_url, "https://api.groq.com/openai/v1");
  EXPECT_EQ(c.providers.at("groq").api_key_env, "GROQ_API_KEY");
  EXPECT_EQ(c.providers.at("groq").connect_timeout_ms, 5000);
  EXPECT_EQ(c.providers.size(), 6u);
  EXPECT_EQ(c.state.dir, "./data/state");
}

TEST(LoadConfig, EnvBeatsTheFile) {
  TempFile file("state:\n  dir: /from/file\nworker:\n  max_in_flight: 64\n");
  const Config c = load_ok(file.path(), env_of({{"CASCADE_STATE_DIR", "/from/env"}}));
  EXPECT_EQ(c.state.dir, "/from/env");
  EXPECT_EQ(c.worker.max_in_flight, 64);
}

TEST(LoadConfig, EmptyFileMeansAllDefaults) {
  TempFile file("");
  const Config c = load_ok(file.path(), kNoEnv);
  EXPECT_EQ(c.kafka.partitions, 16);
  EXPECT_EQ(c.providers.size(), 6u);
}

TEST(LoadConfig, OpenAiProviderHonoursOpenAiBaseUrl) {
  const Config c = load_ok("", env_of({{"OPENAI_BASE_URL", "http://localhost:11434/v1"}}));
  EXPECT_EQ(c.providers.at("openai").base_url, "http://localhost:11434/v1");
  // Only the openai provider: the SDK convention says nothing about the others.
  EXPECT_EQ(c.providers.at("groq").base_url, "https://api.groq.com/openai/v1");
}

TEST(LoadConfig, CascadeBaseUrlVariableBeatsOpenAiBaseUrl) {
  const Config c = load_ok("", env_of({{"OPENAI_BASE_URL", "http://sdk-convention/v1"},
                                       {"CASCADE_PROVIDERS_OPENAI_BASE_URL", "http://cascade-var/v1"}}));
  EXPECT_EQ(c.providers.at("openai").base_url, "http://cascade-var/v1");
}

TEST(LoadConfig, EmptyOpenAiBaseUrlKeepsTheConfiguredUrl) {
  const Config c = load_ok("", env_of({{"OPENAI_BASE_URL", ""}}));
  EXPECT_EQ(c.providers.at("openai").base_url, "https://api.openai.com/v1");
}

TEST(LoadConfig, EnvValueOfTheWrongTypeIsAnErrorNamingTheKey) {
  const std::string message = load_error("", env_of({{"CASCADE_WORKER_THREADS", "abc"}}));
  EXPECT_THAT(message, HasSubstr("worker.threads"));
  EXPECT_THAT(message, HasSubstr("CASCADE_WORKER_THREADS"));
}

TEST(LoadConfig, NumberWithTrailingGarbageIsRejected) {
  EXPECT_THAT(load_error("", env_of({{"CASCADE_KAFKA_PARTITIONS", "12abc"}})),
              HasSubstr("kafka.partitions"));
}

TEST(LoadConfig, NegativeSizeIsRejectedRatherThanWrappedAround) {
  EXPECT_THAT(load_error("", env_of({{"CASCADE_LIMITS_MAX_EVENT_BYTES", "-1"}})),
              HasSubstr("limits.max_event_bytes"));
}

TEST(LoadConfig, FileValueOfTheWrongTypeIsAnErrorNamingTheKey) {
  TempFile file("worker:\n  max_in_flight: [1, 2]\n");
  EXPECT_THAT(load_error(file.path(), kNoEnv), HasSubstr("worker.max_in_flight"));
}

TEST(LoadConfig, ThresholdsOutOfOrderAreRejected) {
  EXPECT_THAT(load_error("", env_of({{"CASCADE_ROUTER_BALANCED_SMALL_MAX", "0.7"}})),
              HasSubstr("router.balanced"));
}

TEST(LoadConfig, ThresholdsOutsideZeroToOneAreRejected) {
  TempFile above_one("router:\n  speed:\n    medium_max: 1.5\n");
  EXPECT_THAT(load_error(above_one.path(), kNoEnv), HasSubstr("router.speed"));
  TempFile negative("router:\n  quality:\n    small_max: -0.1\n");
  EXPECT_THAT(load_error(negative.path(), kNoEnv), HasSubstr("router.quality"));
  EXPECT_THAT(load_error("", env_of({{"CASCADE_ROUTER_COST_MEDIUM_MAX", ".nan"}})),
              HasSubstr("router.cost"));
}

TEST(LoadConfig, EqualThresholdsAreAccepted) {
  const Config c = load_ok("", env_of({{"CASCADE_ROUTER_COST_SMALL_MAX", "0.85"}}));
  EXPECT_DOUBLE_EQ(c.router.cost.small_max, 0.85);
}

TEST(LoadConfig, NonPositiveCountsAreRejected) {
  EXPECT_THAT(load_error("", env_of({{"CASCADE_KAFKA_PARTITIONS", "0"}})), HasSubstr("kafka.partitions"));
  EXPECT_THAT(load_error("", env_of({{"CASCADE_WORKER_THREADS", "0"}})), HasSubstr("worker.threads"));
  EXPECT_THAT(load_error("", env_of({{"CASCADE_WORKER_MAX_IN_FLIGHT", "-3"}})),
              HasSubstr("worker.max_in_flight"));
  EXPECT_THAT(load_error("", env_of({{"CASCADE_WORKER_COMMIT_INTERVAL_MS", "0"}})),
              HasSubstr("worker.commit_interval_ms"));
  EXPECT_THAT(load_error("", env_of({{"CASCADE_WORKER_CANCEL_WINDOW_MS", "0"}})),
              HasSubstr("worker.cancel_window_ms"));
  EXPECT_THAT(load_error("", env_of({{"CASCADE_WORKER_CANCEL_MAX_PENDING", "0"}})),
              HasSubstr("worker.cancel_max_pending"));
}

TEST(LoadConfig, ResumeFractionOutsideZeroToOneIsRejected) {
  EXPECT_THAT(load_error("", env_of({{"CASCADE_WORKER_RESUME_FRACTION", "-0.5"}})),
              HasSubstr("worker.resume_fraction"));
  EXPECT_THAT(load_error("", env_of({{"CASCADE_WORKER_RESUME_FRACTION", "1.5"}})),
              HasSubstr("worker.resume_fraction"));
  EXPECT_DOUBLE_EQ(load_ok("", env_of({{"CASCADE_WORKER_RESUME_FRACTION", "1"}})).worker.resume_fraction, 1.0);
}

TEST(LoadConfig, MissingFileIsAnErrorNamingThePath) {
  const std::string path = "/nonexistent-cascade-dir/cascade.yaml";
  EXPECT_THAT(load_error(path, kNoEnv), HasSubstr(path));
}

TEST(LoadConfig, DirectoryGivenAsFileIsAnError) {
  const TempDir dir;
  EXPECT_THAT(load_error(dir.path(), kNoEnv), HasSubstr(dir.path()));
}

TEST(LoadConfig, MalformedYamlIsAnErrorNotAnException) {
  TempFile file("kafka: [unclosed\n");
  EXPECT_THAT(load_error(file.path(), kNoEnv), HasSubstr("invalid YAML"));
}

TEST(LoadConfig, SectionGivenAsScalarIsAnErrorNamingTheSection) {
  TempFile file("kafka: localhost:9092\n");
  EXPECT_THAT(load_error(file.path(), kNoEnv), HasSubstr("'kafka'"));
}

TEST(LoadConfig, NestedSectionGivenAsScalarIsAnErrorNamingIt) {
  TempFile router("router: cheap\n");
  EXPECT_THAT(load_error(router.path(), kNoEnv), HasSubstr("'router'"));
  TempFile preference("router:\n  cost: 0.5\n");
  EXPECT_THAT(load_error(preference.path(), kNoEnv), HasSubstr("router.cost"));
  TempFile topics("kafka:\n  topics: cascade.requests\n");
  EXPECT_THAT(load_error(topics.path(), kNoEnv), HasSubstr("kafka.topics"));
}

TEST(LoadConfig, ProviderGivenAsScalarIsAnErrorNamingTheProvider) {
  TempFile file("providers:\n  local: http://127.0.0.1:8080/v1\n");
  EXPECT_THAT(load_error(file.path(), kNoEnv), HasSubstr("providers.local"));
}

TEST(LoadConfig, FileThatIsNotAMappingIsAnError) {
  TempFile file("just a string\n");
  EXPECT_THAT(load_error(file.path(), kNoEnv), HasSubstr(file.path()));
}

TEST(LoadConfig, ProviderAddedInUserFileIsLoadedWithDefaultsForWhatItOmits) {
  TempFile file(R"(
providers:
  local:
    kind: openai
    base_url: http://127.0.0.1:8080/v1
    api_key_env: ""
    headers:
      X-Team: research
)");
  const Config c = load_ok(file.path(), kNoEnv);
  ASSERT_EQ(c.providers.size(), 7u);
  const ProviderConfig& local = c.providers.at("local");
  EXPECT_EQ(local.name, "local");
  EXPECT_EQ(local.kind, "openai");
  EXPECT_EQ(local.base_url, "http://127.0.0.1:8080/v1");
  EXPECT_EQ(local.api_key_env, "");
  EXPECT_EQ(local.connect_timeout_ms, 5000);
  EXPECT_EQ(local.request_timeout_ms, 120000);
  EXPECT_EQ(local.headers, (std::map<std::string, std::string>{{"X-Team", "research"}}));
  EXPECT_EQ(c.providers.at("openai").base_url, "https://api.openai.com/v1");
}

TEST(LoadConfig, KeysOfAProviderAddedInUserFileAreOverridableFromEnv) {
  TempFile file(R"(
providers:
  local:
    kind: openai
    base_url: http://127.0.0.1:8080/v1
    api_key_env: ""
    headers:
      X-Team: research
)");
  const Config c = load_ok(file.path(), env_of({
                                            {"CASCADE_PROVIDERS_LOCAL_BASE_URL", "http://10.0.0.5:8080/v1"},
                                            {"CASCADE_PROVIDERS_LOCAL_API_KEY_ENV", "LOCAL_LLM_KEY"},
                                            {"CASCADE_PROVIDERS_LOCAL_HEADERS_X_TEAM", "ops"},
                                            // Not in the file: still a key of the provider.
                                            {"CASCADE_PROVIDERS_LOCAL_REQUEST_TIMEOUT_MS", "9000"},
                                        }));
  const ProviderConfig& local = c.providers.at("local");
  EXPECT_EQ(local.base_url, "http://10.0.0.5:8080/v1");
  EXPECT_EQ(local.api_key_env, "LOCAL_LLM_KEY");
  EXPECT_EQ(local.headers.at("X-Team"), "ops");
  EXPECT_EQ(local.request_timeout_ms, 9000);
  EXPECT_EQ(local.connect_timeout_ms, 5000);
}

TEST(LoadConfig, HyphenatedProviderNameIsOverridableThroughUnderscores) {
  TempFile file("providers:\n  my-vllm:\n    base_url: http://a/v1\n    api_key_env: \"\"\n");
  const Config c =
      load_ok(file.path(), env_of({{"CASCADE_PROVIDERS_MY_VLLM_BASE_URL", "http://b/v1"}}));
  EXPECT_EQ(c.providers.at("my-vllm").base_url, "http://b/v1");
}

TEST(LoadConfig, OpenAiBaseUrlDoesNotLeakIntoOtherOpenAiKindProviders) {
  TempFile file("providers:\n  local:\n    kind: openai\n    base_url: http://a/v1\n");
  const Config c = load_ok(file.path(), env_of({{"OPENAI_BASE_URL", "http://sdk/v1"}}));
  EXPECT_EQ(c.providers.at("local").base_url, "http://a/v1");
}

TEST(LoadConfig, VerifierDefaultsNameEveryRuleAndTenantsOverrideNone) {
  const Config c = load_ok("", kNoEnv);
  const std::map<std::string, std::string> expected = {
      {"numbers", "true"},          {"symbols", "true"},
      {"negation", "true"},         {"entities", "true"},
      {"question_form", "true"},    {"persons", "true"},
      {"deixis", "true"},           {"max_unmatched_content_words", "0"},
      {"allow_substitution", "false"}, {"exact_word_forms", "false"},
      {"typos", "true"},            {"synonyms", "false"},
      {"word_order", "true"},       {"max_order_inversions", "0"},
  };
  EXPECT_EQ(c.cache.semantic.verifier, expected);
  EXPECT_TRUE(c.tenants.at("default").semantic_verifier.empty());
}

TEST(LoadConfig, TenantVerifierRulesComeFromTheFileAndGlobalOnesMergeKeyByKey) {
  TempFile file(R"(
cache:
  semantic:
    verifier:
      persons: false
tenants:
  acme:
    semantic_verifier:
      max_order_inversions: 1
      typos: off
)");
  const Config c = load_ok(file.path(), kNoEnv);
  EXPECT_EQ(c.cache.semantic.verifier.at("persons"), "false");
  EXPECT_EQ(c.cache.semantic.verifier.at("numbers"), "true");  // the file left it alone
  EXPECT_EQ(c.cache.semantic.verifier.size(), 14u);
  const std::map<std::string, std::string> acme = {{"max_order_inversions", "1"}, {"typos", "off"}};
  EXPECT_EQ(c.tenants.at("acme").semantic_verifier, acme);
}

TEST(LoadConfig, VerifierRulesAreOverridableFromEnvEvenWhenNoFileSetsThem) {
  TempFile file("tenants:\n  my-tenant:\n    requests_per_second: 5\n");
  const Config c = load_ok(file.path(), env_of({
                                            {"CASCADE_CACHE_SEMANTIC_VERIFIER_DEIXIS", "false"},
                                            {"CASCADE_TENANTS_MY_TENANT_SEMANTIC_VERIFIER_MAX_ORDER_INVERSIONS", "2"},
                                            {"CASCADE_TENANTS_DEFAULT_SEMANTIC_VERIFIER_PERSONS", "false"},
                                        }));
  EXPECT_EQ(c.cache.semantic.verifier.at("deixis"), "false");
  EXPECT_EQ(c.tenants.at("my-tenant").semantic_verifier,
            (std::map<std::string, std::string>{{"max_order_inversions", "2"}}));
  EXPECT_EQ(c.tenants.at("default").semantic_verifier,
            (std::map<std::string, std::string>{{"persons", "false"}}));
}

TEST(LoadConfig, VerifierGivenAsScalarOrNestedMappingIsAnErrorNamingTheKey) {
  TempFile scalar("tenants:\n  acme:\n    semantic_verifier: strict\n");
  EXPECT_THAT(load_error(scalar.path(), kNoEnv), HasSubstr("tenants.acme.semantic_verifier"));
  TempFile nested("cache:\n  semantic:\n    verifier:\n      persons: {a: 1}\n");
  EXPECT_THAT(load_error(nested.path(), kNoEnv), HasSubstr("cache.semantic.verifier"));
}

TEST(LoadConfig, SemanticEmbedderDefaultsToTheBuiltinOneWithTheDocumentedTimeouts) {
  const EmbedderConfig e = load_ok("", kNoEnv).cache.semantic.embedder;
  EXPECT_EQ(e.kind, "builtin");
  EXPECT_EQ(e.base_url, "");
  EXPECT_EQ(e.model, "");
  EXPECT_EQ(e.api_key_env, "");
  EXPECT_EQ(e.dimension, 0u);
  EXPECT_EQ(e.timeout_ms, 2000);
  EXPECT_EQ(e.connect_timeout_ms, 1000);
}

TEST(LoadConfig, EverySemanticEmbedderKeyIsOverridableFromEnv) {
  const Config c = load_ok("", env_of({
                                   {"CASCADE_CACHE_SEMANTIC_EMBEDDER_KIND", "openai"},
                                   {"CASCADE_CACHE_SEMANTIC_EMBEDDER_BASE_URL", "http://127.0.0.1:11434/v1"},
                                   {"CASCADE_CACHE_SEMANTIC_EMBEDDER_MODEL", "nomic-embed-text"},
                                   {"CASCADE_CACHE_SEMANTIC_EMBEDDER_API_KEY_ENV", "EMBEDDINGS_KEY"},
                                   {"CASCADE_CACHE_SEMANTIC_EMBEDDER_DIMENSION", "768"},
                                   {"CASCADE_CACHE_SEMANTIC_EMBEDDER_TIMEOUT_MS", "350"},
                                   {"CASCADE_CACHE_SEMANTIC_EMBEDDER_CONNECT_TIMEOUT_MS", "120"},
                               }));
  const EmbedderConfig& e = c.cache.semantic.embedder;
  EXPECT_EQ(e.kind, "openai");
  EXPECT_EQ(e.base_url, "http://127.0.0.1:11434/v1");
  EXPECT_EQ(e.model, "nomic-embed-text");
  EXPECT_EQ(e.api_key_env, "EMBEDDINGS_KEY") << "the variable's name, never the key";
  EXPECT_EQ(e.dimension, 768u);
  EXPECT_EQ(e.timeout_ms, 350);
  EXPECT_EQ(e.connect_timeout_ms, 120);
}

TEST(LoadConfig, SemanticEmbedderFromTheFileKeepsTheDefaultsItOmits) {
  TempFile file(R"(
cache:
  semantic:
    embedder:
      kind: openai
      base_url: https://api.openai.com/v1
      model: text-embedding-3-small
      api_key_env: OPENAI_API_KEY
)");
  const EmbedderConfig e = load_ok(file.path(), kNoEnv).cache.semantic.embedder;
  EXPECT_EQ(e.kind, "openai");
  EXPECT_EQ(e.model, "text-embedding-3-small");
  EXPECT_EQ(e.api_key_env, "OPENAI_API_KEY");
  EXPECT_EQ(e.dimension, 0u);
  EXPECT_EQ(e.timeout_ms, 2000);
}

TEST(LoadConfig, ASemanticEmbedderThatCannotWorkIsAnErrorNamingTheKey) {
  EXPECT_THAT(load_error("", env_of({{"CASCADE_CACHE_SEMANTIC_EMBEDDER_KIND", "word2vec"}})),
              HasSubstr("cache.semantic.embedder.kind"));
  EXPECT_THAT(load_error("", env_of({{"CASCADE_CACHE_SEMANTIC_EMBEDDER_KIND", "openai"},
                                     {"CASCADE_CACHE_SEMANTIC_EMBEDDER_MODEL", "m"}})),
              HasSubstr("base_url"));
  EXPECT_THAT(load_error("", env_of({{"CASCADE_CACHE_SEMANTIC_EMBEDDER_TIMEOUT_MS", "0"}})),
              HasSubstr("cache.semantic.embedder.timeout_ms"));
  EXPECT_THAT(load_error("", env_of({{"CASCADE_CACHE_SEMANTIC_EMBEDDER_DIMENSION", "-1"}})),
              HasSubstr("cache.semantic.embedder.dimension"));
}

TEST(EnvNameFor, UppercasesAndJoinsThePathWithUnderscores) {
  EXPECT_EQ(env_name_for("kafka.bootstrap"), "CASCADE_KAFKA_BOOTSTRAP");
  EXPECT_EQ(env_name_for("state.dir"), "CASCADE_STATE_DIR");
  EXPECT_EQ(env_name_for("worker.max_in_flight"), "CASCADE_WORKER_MAX_IN_FLIGHT");
  EXPECT_EQ(env_name_for("providers.openai.base_url"), "CASCADE_PROVIDERS_OPENAI_BASE_URL");
  EXPECT_EQ(env_name_for("router.balanced.small_max"), "CASCADE_ROUTER_BALANCED_SMALL_MAX");
  EXPECT_EQ(env_name_for("providers.my-vllm.base_url"), "CASCADE_PROVIDERS_MY_VLLM_BASE_URL");
}

TEST(KafkaExtraProperties, ParsesKeyValuePairsSeparatedBySemicolons) {
  KafkaConfig k;
  k.extra = "security.protocol=SASL_SSL;sasl.mechanism=PLAIN";
  using Pairs = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(k.extra_properties(),
            (Pairs{{"security.protocol", "SASL_SSL"}, {"sasl.mechanism", "PLAIN"}}));
}

TEST(KafkaExtraProperties, KeepsEqualsSignsInValuesAndEmptyValues) {
  KafkaConfig k;
  k.extra = "sasl.oauthbearer.config=principal=admin scope=x;client.rack=";
  using Pairs = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(k.extra_properties(),
            (Pairs{{"sasl.oauthbearer.config", "principal=admin scope=x"}, {"client.rack", ""}}));
}

TEST(KafkaExtraProperties, SkipsEmptyItemsItemsWithoutEqualsAndEmptyKeys) {
  KafkaConfig k;
  k.extra = ";;noequals;=orphan;acks=all;";
  using Pairs = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(k.extra_properties(), (Pairs{{"acks", "all"}}));
  k.extra = "";
  EXPECT_TRUE(k.extra_properties().empty());
}

TEST(KafkaExtraProperties, IgnoresSpacesAroundKeysAndValues) {
  KafkaConfig k;
  k.extra = "security.protocol = SSL; ssl.ca.location=/etc/ca.pem ";
  using Pairs = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(k.extra_properties(),
            (Pairs{{"security.protocol", "SSL"}, {"ssl.ca.location", "/etc/ca.pem"}}));
}

TEST(KafkaExtraProperties, ComesFromConfigAndEnv) {
  const Config c = load_ok("", env_of({{"CASCADE_KAFKA_EXTRA", "acks=all;compression.type=lz4"}}));
  ASSERT_EQ(c.kafka.extra_properties().size(), 2u);
  EXPECT_EQ(c.kafka.extra_properties()[1].first, "compression.type");
}

// ---- router policies, rules and experiment (docs/routing.md, "Policies") ----

constexpr const char* kPolicies = R"(
router:
  policies:
    frugal:
      preference: cost
    careful:
      small_max: 0.1
      medium_max: 0.4
      small_min: 0.9
      medium_min: 0.8
  rules:
    - name: legal
      match:
        tenant: acme
        tag: legal
        metadata: {team: contracts, priority: 1}
        prompt: "(?i)contract"
      tier: large
      residency: eu
    - match: {tenant: globex}
      policy: frugal
    - match: {metadata: {project: x}}
      model: gpt-4o-mini
  experiment:
    name: thrift
    policies: [frugal, careful]
    split: 0.25
)";

TEST(LoadConfig, RouterPoliciesAreOffByDefault) {
  const Config c = load_ok("", kNoEnv);
  EXPECT_TRUE(c.router.policies.empty());
  EXPECT_TRUE(c.router.rules.empty());
  EXPECT_EQ(c.router.experiment.name, "");
  EXPECT_TRUE(c.router.experiment.policies.empty());
  EXPECT_DOUBLE_EQ(c.router.experiment.split, 0.5);
}

TEST(LoadConfig, RouterPoliciesRulesAndExperimentAreReadFromTheFile) {
  TempFile file(kPolicies);
  const Config c = load_ok(file.path(), kNoEnv);
  ASSERT_EQ(c.router.policies.size(), 2u);
  EXPECT_EQ(c.router.policies.at("frugal").preference, "cost");
  EXPECT_FALSE(c.router.policies.at("frugal").thresholds);
  const RoutePolicyConfig& careful = c.router.policies.at("careful");
  ASSERT_TRUE(careful.thresholds && careful.probability);
  EXPECT_DOUBLE_EQ(careful.thresholds->small_max, 0.1);
  EXPECT_DOUBLE_EQ(careful.thresholds->medium_max, 0.4);
  EXPECT_DOUBLE_EQ(careful.probability->small_min, 0.9);
  EXPECT_DOUBLE_EQ(careful.probability->medium_min, 0.8);

  ASSERT_EQ(c.router.rules.size(), 3u);
  const RouteRuleConfig& legal = c.router.rules[0];
  EXPECT_EQ(legal.name, "legal");
  EXPECT_EQ(legal.tenant, "acme");
  EXPECT_EQ(legal.tag, "legal");
  EXPECT_EQ(legal.metadata, (std::map<std::string, std::string>{{"priority", "1"}, {"team", "contracts"}}));
  EXPECT_EQ(legal.prompt, "(?i)contract");
  EXPECT_EQ(legal.tier, "large");
  EXPECT_EQ(legal.residency, "eu");
  EXPECT_EQ(c.router.rules[1].policy, "frugal");
  EXPECT_EQ(c.router.rules[1].name, "");
  EXPECT_EQ(c.router.rules[2].model, "gpt-4o-mini");

  EXPECT_EQ(c.router.experiment.name, "thrift");
  EXPECT_EQ(c.router.experiment.policies, (std::vector<std::string>{"frugal", "careful"}));
  EXPECT_DOUBLE_EQ(c.router.experiment.split, 0.25);
}

TEST(LoadConfig, ExperimentAndPolicyKeysAreOverridableFromEnv) {
  TempFile file(kPolicies);
  const Config c = load_ok(file.path(), env_of({{"CASCADE_ROUTER_EXPERIMENT_NAME", "thrift-2"},
                                                {"CASCADE_ROUTER_EXPERIMENT_POLICIES", "careful, default"},
                                                {"CASCADE_ROUTER_EXPERIMENT_SPLIT", "0.9"},
                                                {"CASCADE_ROUTER_POLICIES_FRUGAL_PREFERENCE", "speed"},
                                                {"CASCADE_ROUTER_POLICIES_CAREFUL_SMALL_MAX", "0.2"}}));
  EXPECT_EQ(c.router.experiment.name, "thrift-2");
  EXPECT_EQ(c.router.experiment.policies, (std::vector<std::string>{"careful", "default"}));
  EXPECT_DOUBLE_EQ(c.router.experiment.split, 0.9);
  EXPECT_EQ(c.router.policies.at("frugal").preference, "speed");
  EXPECT_DOUBLE_EQ(c.router.policies.at("careful").thresholds->small_max, 0.2);

  // An experiment can be switched off from the environment.
  const Config off = load_ok(file.path(), env_of({{"CASCADE_ROUTER_EXPERIMENT_NAME", ""}}));
  EXPECT_EQ(off.router.experiment.name, "");
}

TEST(LoadConfig, InvalidRouterPoliciesAreErrorsNamingTheKey) {
  const std::pair<const char*, const char*> cases[] = {
      {"router:\n  rules:\n    - match: {tenantt: a}\n      tier: large\n", "router.rules[0].match': unknown key 'tenantt'"},
      {"router:\n  rules:\n    - match: {tenant: a}\n", "router.rules[0]': needs an action"},
      {"router:\n  rules:\n    - match: {tenant: a}\n      tier: large\n      model: gpt-4o\n",
       "router.rules[0]': model, tier and policy exclude each other"},
      {"router:\n  rules:\n    - tier: large\n", "router.rules[0]': missing 'match'"},
      {"router:\n  rules:\n    - match: {}\n      tier: large\n", "needs at least one of tenant, tag, metadata, prompt"},
      {"router:\n  rules:\n    - match: {tenant: a}\n      tier: huge\n", "router.rules[0].tier': 'huge'"},
      {"router:\n  rules:\n    - match: {tenant: a}\n      policy: nope\n", "router.rules[0].policy': 'nope'"},
      {"router:\n  rules:\n    - match: {metadata: {a: [1]}}\n      tier: large\n", "router.rules[0].match.metadata.a"},
      {"router:\n  rules: {a: 1}\n", "'router.rules' must be a list"},
      {"router:\n  policies:\n    p: {small_max: 0.2}\n", "router.policies.p': small_max and medium_max go together"},
      {"router:\n  policies:\n    p: {small_max: 0.5, medium_max: 0.2}\n", "router.policies.p': need 0 <= small_max"},
      {"router:\n  policies:\n    p: {preference: cheap}\n", "router.policies.p.preference': 'cheap'"},
      {"router:\n  policies:\n    p: {thresholds: 1}\n", "router.policies.p': unknown key 'thresholds'"},
      {"router:\n  policies:\n    default: {preference: cost}\n", "router.policies.default'"},
      {"router:\n  experiment: {name: x, policies: [default]}\n", "router.experiment.policies' must name two"},
      {"router:\n  experiment: {name: x, policies: [default, nope]}\n", "'nope' is not in router.policies"},
      {"router:\n  policies: {p: {preference: cost}}\n  experiment: {name: x, policies: [default, p], split: 1.5}\n",
       "router.experiment.split' must be within 0..1"},
      {"router:\n  experiment: {name: x, arms: [a, b]}\n", "router.experiment': unknown key 'arms'"},
  };
  for (const auto& [yaml, expected] : cases) {
    TempFile file(yaml);
    EXPECT_THAT(load_error(file.path(), kNoEnv), HasSubstr(expected)) << yaml;
  }
  TempFile file(kPolicies);
  EXPECT_THAT(load_error(file.path(), env_of({{"CASCADE_ROUTER_EXPERIMENT_SPLIT", "half"}})),
              HasSubstr("router.experiment.split"));
}

TEST(LoadConfig, CostAwareRoutingIsOffByDefaultAndReadFromFileEnvAndPolicies) {
  const Config defaults = load_ok("", kNoEnv);
  EXPECT_FALSE(defaults.router.cost_aware.enabled);
  EXPECT_EQ(defaults.router.cost_aware.reference_input_tokens, CostAwareConfig{}.reference_input_tokens);
  EXPECT_EQ(defaults.router.cost_aware.expected_output_tokens, CostAwareConfig{}.expected_output_tokens);

  TempFile file(
      "router:\n"
      "  cost_aware: {enabled: true, reference_input_tokens: 3000, expected_output_tokens: 40}\n"
      "  policies:\n"
      "    gain: {cost_aware: true}\n"
      "    plain: {cost_aware: false, preference: cost}\n"
      "    other: {preference: cost}\n");
  const Config c = load_ok(file.path(), kNoEnv);
  EXPECT_TRUE(c.router.cost_aware.enabled);
  EXPECT_EQ(c.router.cost_aware.reference_input_tokens, 3000);
  EXPECT_EQ(c.router.cost_aware.expected_output_tokens, 40);
  EXPECT_EQ(c.router.policies.at("gain").cost_aware, std::optional<bool>(true));
  EXPECT_EQ(c.router.policies.at("plain").cost_aware, std::optional<bool>(false));
  EXPECT_FALSE(c.router.policies.at("other").cost_aware.has_value());

  const Config env = load_ok(file.path(), env_of({{"CASCADE_ROUTER_COST_AWARE_ENABLED", "false"},
                                                  {"CASCADE_ROUTER_COST_AWARE_REFERENCE_INPUT_TOKENS", "500"},
                                                  {"CASCADE_ROUTER_POLICIES_OTHER_COST_AWARE", "true"}}));
  EXPECT_FALSE(env.router.cost_aware.enabled);
  EXPECT_EQ(env.router.cost_aware.reference_input_tokens, 500);
  EXPECT_EQ(env.router.policies.at("other").cost_aware, std::optional<bool>(true));

  const std::pair<const char*, const char*> bad[] = {
      {"router:\n  cost_aware: {reference_input_tokens: 0}\n", "router.cost_aware': reference_input_tokens"},
      {"router:\n  cost_aware: {expected_output_tokens: -5}\n", "router.cost_aware': reference_input_tokens"},
      {"router:\n  cost_aware: {enabled: maybe}\n", "router.cost_aware.enabled"},
      {"router:\n  policies:\n    p: {cost_aware: sometimes}\n", "router.policies.p.cost_aware': 'sometimes'"},
  };
  for (const auto& [yaml, expected] : bad) {
    TempFile bad_file(yaml);
    EXPECT_THAT(load_error(bad_file.path(), kNoEnv), HasSubstr(expected)) << yaml;
  }
}

}  // namespace
}  // namespace cascade
