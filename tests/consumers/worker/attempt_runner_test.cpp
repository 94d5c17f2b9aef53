// The attempt runner alone: a request's chain tried over fake providers and
// a fake clock, its outcome told to a recording owner.
#include "consumers/worker/attempt_runner.h"

#include <gtest/gtest.h>

#include "support/worker_host.h"

namespace cascade {
namespace {

using testing::LifecycleHarness;
using testing::worker_test_config;
using std::chrono::milliseconds;

class RecordingOwner final : public AttemptOwner {
 public:
  void on_attempt_delta(Request& r, std::string_view text) override { r.reply.content.append(text); }
  void on_answer(Request& r, const ModelInfo& model, ChatCompletion) override {
    answered.push_back(model.id);
    enter(r, RequestState::delivering);
  }
  void on_chain_exhausted(Request& r, Error error) override {
    exhausted.push_back(error);
    enter(r, RequestState::delivering);
  }
  void on_gave_up(Request& r, Error error) override {
    gave_up.push_back(error);
    enter(r, RequestState::delivering);
  }
  std::vector<std::string> answered;
  std::vector<Error> exhausted;
  std::vector<Error> gave_up;
};

class AttemptRunnerTest : public ::testing::Test {
 protected:
  explicit AttemptRunnerTest(Config config = worker_test_config())
      : h_(std::move(config)), runner_(h_.context(), owner_) {}

  Request& request(std::vector<std::string> chain, const std::string& id = "r") {
    auto owned = std::make_unique<Request>();
    owned->serial = h_.requests.next_serial();
    owned->event.id = id;
    owned->event.tenant = "acme";
    owned->event.messages = nlohmann::json::array({{{"role", "user"}, {"content", "Hello"}}});
    owned->sink = &runner_;
    for (const auto& m : chain) owned->attempts.chain.push_back(h_.catalog().find(m));
    return h_.requests.add(std::move(owned));
  }
  // Fires due timers into the runner (the lifecycle's job in the worker).
  void advance(milliseconds by) {
    for (const auto& t : h_.host.advance(by)) {
      if (Request* r = h_.requests.find(t.serial)) runner_.on_timer(*r, t.kind);
    }
    runner_.enforce_timeouts(h_.host.clock);
  }

  LifecycleHarness h_;
  RecordingOwner owner_;
  AttemptRunner runner_;
};

TEST_F(AttemptRunnerTest, TheFirstModelAnswersWithItsRequestParameters) {
  Request& r = request({"small-a", "small-b"});
  r.event.max_tokens = 77;
  r.event.temperature = 0.3;
  runner_.start(r);
  auto& call = h_.provider("a").open_call();
  EXPECT_EQ(call.upstream_model, "small-a");
  EXPECT_EQ(call.max_tokens, 77);
  EXPECT_EQ(r.state, RequestState::calling);
  h_.provider("a").answer(call, {"Hi"});
  EXPECT_EQ(owner_.answered, (std::vector<std::string>{"small-a"}));
  EXPECT_EQ(h_.stats.provider_calls.load(), 1u);
}

TEST_F(AttemptRunnerTest, RetryAfterIsHonouredBeforeTheNextAttempt) {
  Request& r = request({"small-a"});
  runner_.start(r);
  Error limited{ErrorCode::rate_limited, "HTTP 429", 429};
  limited.retry_after_ms = 3000;
  h_.provider("a").fail(h_.provider("a").open_call(), limited);
  EXPECT_EQ(r.state, RequestState::backing_off);
  advance(milliseconds(2900));
  EXPECT_EQ(h_.provider("a").calls.size(), 1u);
  advance(milliseconds(200));
  EXPECT_EQ(h_.provider("a").calls.size(), 2u);
}

TEST_F(AttemptRunnerTest, RetriesRunOutThenTheChainRunsOutWithEveryAttemptNoted) {
  Request& r = request({"small-a", "small-b"});
  runner_.start(r);
  const Error down{ErrorCode::provider_error, "HTTP 503", 503};
  for (int i = 0; i <= h_.context().config.resilience.retry.max_retries; ++i) {
    h_.provider("a").fail(h_.provider("a").open_call(), down);
    advance(milliseconds(h_.context().config.resilience.retry.backoff_cap_ms));
  }
  h_.provider("b").fail(h_.provider("b").open_call(), Error{ErrorCode::invalid_request, "HTTP 400", 400});
  ASSERT_EQ(owner_.exhausted.size(), 1u);
  EXPECT_EQ(owner_.exhausted[0].http_status, 400) << "the last failure says why";
  EXPECT_NE(owner_.exhausted[0].message.find("small-a: HTTP 503 -> retry; small-a: HTTP 503 -> retry; "
                                             "small-a: HTTP 503 -> fall_back; small-b: HTTP 400 -> fall_back"),
            std::string::npos)
      << owner_.exhausted[0].message;
  EXPECT_EQ(h_.stats.retries.load(), 2u);
}

Config without_retries() {
  Config config = worker_test_config();
  config.resilience.retry.max_retries = 0;
  return config;
}

class AttemptRunnerWithoutRetries : public AttemptRunnerTest {
 protected:
  AttemptRunnerWithoutRetries() : AttemptRunnerTest(without_retries()) {}
};

TEST_F(AttemptRunnerWithoutRetries, AnOpenBreakerSkipsItsModelWithoutACall) {
  const int calls_to_open = h_.context().config.resilience.breaker.min_calls;
  for (int i = 0; i < calls_to_open; ++i) {
    Request& r = request({"small-a"}, "warm-" + std::to_string(i));
    runner_.start(r);
    h_.provider("a").fail(h_.provider("a").open_call(), Error{ErrorCode::provider_error, "HTTP 500", 500});
  }
  ASSERT_EQ(owner_.exhausted.size(), static_cast<std::size_t>(calls_to_open));
  const auto a_calls = h_.provider("a").calls.size();
  Request& r = request({"small-a", "small-b"});
  runner_.start(r);
  EXPECT_EQ(h_.provider("a").calls.size(), a_calls) << "the breaker refused the call";
  ASSERT_EQ(h_.provider("b").open_calls(), 1u);
  EXPECT_NE(r.attempts.notes.find("small-a: breaker open"), std::string::npos);
  EXPECT_GE(h_.stats.breaker_rejections.load(), 1u);
}

TEST_F(AttemptRunnerTest, AModelWhoseProviderIsNotEnabledIsSkipped) {
  Request& r = request({"small-a", "small-b"});
  ModelInfo orphan = *h_.catalog().find("small-a");
  orphan.id = "orphan";
  orphan.provider = "nobody";
  r.attempts.chain.insert(r.attempts.chain.begin(), &orphan);
  runner_.start(r);
  EXPECT_EQ(h_.provider("a").open_calls(), 1u);
  EXPECT_NE(r.attempts.notes.find("orphan: provider disabled"), std::string::npos);
}

TEST_F(AttemptRunnerTest, AFailureAfterPublishedChunksGivesUpAndChargesWhatWasGenerated) {
  Request& r = request({"small-a", "small-b"});
  runner_.start(r);
  auto& call = h_.provider("a").open_call();
  call.observer->on_delta("Half an answer");
  r.reply.published_chunks = 1;  // the owner published it
  h_.provider("a").fail(call, Error{ErrorCode::provider_error, "stream cut"});
  ASSERT_EQ(owner_.gave_up.size(), 1u);
  EXPECT_TRUE(h_.provider("b").calls.empty());
  EXPECT_GT(r.charges.wasted_usd, 0);
}

TEST_F(AttemptRunnerTest, AnIdleStreamIsCutAtItsIdleTimeoutNotBefore) {
  Request& r = request({"small-a"});
  runner_.start(r);
  auto& call = h_.provider("a").open_call();
  call.observer->on_delta("Once");
  const long idle = h_.context().config.providers.at("a").idle_timeout_ms;
  advance(milliseconds(idle - 10));
  EXPECT_FALSE(h_.provider("a").calls[0].cancelled);
  advance(milliseconds(20));
  EXPECT_TRUE(h_.provider("a").calls[0].cancelled);
  EXPECT_EQ(h_.stats.timeouts.load(), 1u);
}

TEST_F(AttemptRunnerTest, ARestartTriesTheNewChainFromItsStart) {
  Request& r = request({"small-a"});
  runner_.start(r);
  h_.provider("a").answer(h_.provider("a").open_call(), {"cheap"});
  r.state = RequestState::checking;  // as the cascade leaves a held answer
  runner_.restart(r, {h_.catalog().find("medium-a")});
  EXPECT_EQ(h_.provider("a").open_call().upstream_model, "medium-a");
  EXPECT_EQ(r.attempts.index, 0u);
}

}  // namespace
}  // namespace cascade
