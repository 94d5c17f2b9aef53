#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <sstream>

#include "providers/provider.h"
#include "support/env.h"

namespace cascade {
namespace {

constexpr std::string_view kSecret = "gsk_SECRETVALUE123456";

ProviderConfig openai_compatible(std::string base_url, std::string api_key_env) {
  ProviderConfig config;
  config.kind = "openai";
  config.base_url = std::move(base_url);
  config.api_key_env = std::move(api_key_env);
  return config;
}

// Captures what the default logger prints while a test runs.
class CapturedLog {
 public:
  CapturedLog() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(stream_);
    auto logger = std::make_shared<spdlog::logger>("captured", sink);
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  std::string text() const { return stream_.str(); }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream stream_;
};

TEST(ProviderRegistry, BuildsProvidersWhoseKeysArePresentAndDisablesTheOthers) {
  const std::map<std::string, ProviderConfig> configs = {
      {"groq", openai_compatible("https://api.groq.com/openai/v1", "GROQ_API_KEY")},
      {"openai", openai_compatible("https://api.openai.com/v1", "OPENAI_API_KEY")},
      {"mistral", openai_compatible("https://api.mistral.ai/v1", "MISTRAL_API_KEY")},
      {"local", openai_compatible("http://127.0.0.1:8080/v1", "")},
  };
  const EnvLookup env = testing::env_of({{"GROQ_API_KEY", std::string(kSecret)},
                                         {"MISTRAL_API_KEY", ""}});  // set but empty
  HttpClient http;
  CapturedLog log;
  auto registry = ProviderRegistry::build(configs, http, env);
  ASSERT_TRUE(registry.has_value()) << registry.error().message;

  EXPECT_EQ(registry->names(), (std::vector<std::string>{"groq", "local"}));
  ASSERT_NE(registry->find("groq"), nullptr);
  EXPECT_EQ(registry->find("groq")->name(), "groq");
  EXPECT_TRUE(registry->available("local"));
  EXPECT_FALSE(registry->available("openai"));
  EXPECT_FALSE(registry->available("mistral"));
  EXPECT_EQ(registry->find("nope"), nullptr);

  const std::string logged = log.text();
  EXPECT_NE(logged.find("provider openai disabled: OPENAI_API_KEY is not set"), std::string::npos)
      << logged;
  EXPECT_NE(logged.find("provider mistral disabled: MISTRAL_API_KEY is not set"), std::string::npos)
      << logged;
  EXPECT_EQ(std::count(logged.begin(), logged.end(), '\n'), 2) << logged;
  EXPECT_EQ(logged.find(kSecret), std::string::npos);
}

TEST(ProviderRegistry, UnknownKindIsAStartupError) {
  auto config = openai_compatible("https://example.invalid/v1", "");
  config.kind = "carrier-pigeon";
  HttpClient http;
  auto registry = ProviderRegistry::build({{"birds", config}}, http, process_env());
  ASSERT_FALSE(registry.has_value());
  EXPECT_EQ(registry.error().code, ErrorCode::invalid_request);
  EXPECT_NE(registry.error().message.find("carrier-pigeon"), std::string::npos);
}

TEST(ProviderRegistry, UnknownKindIsAnErrorEvenWhenItsKeyIsMissing) {
  auto config = openai_compatible("https://example.invalid/v1", "CASCADE_TEST_SURELY_UNSET_KEY");
  config.kind = "carrier-pigeon";
  HttpClient http;
  EXPECT_FALSE(ProviderRegistry::build({{"birds", config}}, http, testing::no_env()).has_value());
}

}  // namespace
}  // namespace cascade
