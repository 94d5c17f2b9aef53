#pragma once
// The pipeline with the cheap-first cascade's and quality sampling's knobs:
// shared by cascade_policy_test.cpp and quality_sampling_test.cpp.
#include <algorithm>
#include <functional>
#include <map>
#include <sstream>
#include <string>

#include <gmock/gmock.h>

#include "consumers/worker/cascade_policy.h"
#include "consumers/worker/judge.h"
#include "events/quality_event.h"
#include "integration/pipeline_fixture.h"
#include "router/tools/evaluation.h"
#include "router/router.h"

namespace cascade::testing {


// Pieces the simulator streams a scripted answer in: one per word, at most kChunks.
inline std::int64_t scripted_pieces(const std::string& text, int chunks) {
  const auto words = 1 + std::count(text.begin(), text.end(), ' ');
  return std::min<std::int64_t>(words, chunks);
}

// The simulator's prompt token count for one user message.
inline std::int64_t simulated_prompt_tokens(const std::string& text) {
  return static_cast<std::int64_t>((text.size() + 3) / 4) + 4;
}

class CascadePolicyTest : public PipelineTest {
 protected:
  static constexpr const char* kRefusal = "I'm sorry, but I can't help with that.";
  static constexpr const char* kQuestion = "What is the capital of France?";

  void enable_cascade() { env_overrides["CASCADE_ROUTER_CASCADE_ENABLED"] = "true"; }

  // The models the worker will use for `e`: the router's choice (the cheap
  // model) and the first of its escalation chain (the strong model).
  void resolve_models(const PromptEvent& e) {
    Router router(config_.router, *catalog_, [](std::string_view) { return true; });
    auto route = router.route(e);
    ASSERT_TRUE(route) << route.error().message;
    cheap_ = route->model;
    auto needs = route_requirements(e, RouteContext{});
    ASSERT_TRUE(needs) << needs.error().message;
    auto chain = escalation_chain(
        *catalog_, cheap_->tier, [&](const ModelInfo& m) { return constraint_violation(m, *needs).empty(); },
        config_.router.max_fallbacks);
    ASSERT_FALSE(chain.empty());
    strong_ = chain.front();
    ASSERT_LT(cheap_->tier, strong_->tier);
  }

  PromptEvent request(const std::string& name, const std::string& text = kQuestion) {
    PromptEvent e;
    e.id = "cp-" + std::to_string(instance_) + "-" + name;
    e.tenant = "cp-tenant";
    e.reply_to = reply_topic_;
    e.preference = Preference::cost;  // router.cascade.preferences default: [cost]
    e.messages = nlohmann::json::array({{{"role", "user"}, {"content", text}}});
    e.metadata = {{"name", name}};
    return e;
  }

  const WorkerStats& stats() const { return workers_.front()->stats(); }
  const CollectedReply& reply(const PromptEvent& e) const { return client_->replies().at(e.id); }

  void send_and_wait(const std::vector<PromptEvent>& events) {
    for (const auto& e : events) ASSERT_TRUE(client_->send(e));
    ASSERT_TRUE(client_->flush(10000));
    ASSERT_TRUE(client_->wait_all(std::chrono::seconds(60))) << client_->outstanding() << " unanswered";
  }

  // When a request's first chunk and its terminal event reached the client,
  // in ms after it was sent (polled every few ms: CollectedReply's times
  // are those of the poll that began before the event arrived).
  struct Timing {
    double first_chunk_ms = -1;
    double terminal_ms = -1;
  };
  Timing send_and_time(const PromptEvent& e) {
    Timing t;
    const auto sent = std::chrono::steady_clock::now();
    EXPECT_TRUE(client_->send(e));
    EXPECT_TRUE(client_->flush(10000));
    auto since_sent = [&] {
      return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - sent).count();
    };
    eventually([&] { return t.terminal_ms >= 0; }, std::chrono::seconds(60), [&] {
      client_->poll(2, [&](const ReplyEvent& event) {
        if (event.id != e.id) return;
        if (event.type == "chunk" && t.first_chunk_ms < 0) t.first_chunk_ms = since_sent();
        if (event.type != "chunk" && t.terminal_ms < 0) t.terminal_ms = since_sent();
      });
    });
    EXPECT_GE(t.terminal_ms, 0) << e.id;
    return t;
  }

  // A complete, ordered final whose chunks (when streamed) are its content.
  const nlohmann::json& expect_final(const PromptEvent& e) {
    const CollectedReply& r = reply(e);
    EXPECT_TRUE(r.terminal) << e.id;
    static const nlohmann::json kNone;
    if (!r.terminal) return kNone;
    EXPECT_EQ(r.terminal->type, "final") << e.id << ": " << r.terminal->body.dump();
    EXPECT_EQ(r.terminal_count, 1u) << e.id;
    EXPECT_TRUE(r.seq_in_order) << e.id;
    EXPECT_EQ(r.terminal->seq, static_cast<std::int64_t>(r.chunks.size())) << e.id;
    if (e.stream) {
      EXPECT_EQ(concat_chunks(r), r.terminal->body.value("content", "")) << e.id;
    } else {
      EXPECT_TRUE(r.chunks.empty()) << e.id;
    }
    return r.terminal->body;
  }

  std::uint64_t calls_to(const ModelInfo* model) const {
    const auto calls = upstream_->requests_by_model();
    const auto it = calls.find(model->upstream_model);
    return it == calls.end() ? 0 : it->second;
  }

  std::vector<QualityEvent> quality_events() {
    std::vector<QualityEvent> out;
    auto n = read_topic_to_end(config_.kafka, bootstrap_, config_.kafka.quality_topic, [&](const KafkaRecord& m) {
      auto event = parse_quality_event(m.payload());
      EXPECT_TRUE(event) << (event ? "" : event.error().message);
      if (event) out.push_back(*event);
    });
    EXPECT_TRUE(n) << n.error().message;
    return out;
  }

  // Sets router.cascade.agreement_model, before start (the worker checks it
  // against the catalog): a small model other than the one `e` is routed
  // to. Its id; "" on failure.
  std::string use_agreement_model_beside_the_cheap_one(const PromptEvent& e) {
    auto defaults = load_config("", [](const std::string&) { return std::nullopt; });
    if (!defaults) return "";
    auto catalog = ModelCatalog::load(defaults->catalog);
    if (!catalog) return "";
    Router router(defaults->router, *catalog, [](std::string_view) { return true; });
    auto route = router.route(e);
    if (!route) return "";
    const std::string other = route->model->id == "gpt-4.1-nano" ? "gpt-4o-mini" : "gpt-4.1-nano";
    env_overrides["CASCADE_ROUTER_CASCADE_AGREEMENT_MODEL"] = other;
    return other;
  }

  // 20 pieces (one per word) ending in "#### 12": ~800 ms at 40 ms a chunk.
  static std::string twenty_piece_answer() {
    std::string answer;
    for (int i = 0; i < 19; ++i) answer += "word ";
    return answer + "#### 12";
  }

  // The worker's /metrics has cascade_worker_cascade_total{outcome,reason} == n.
  ::testing::AssertionResult cascade_counted(const std::string& outcome, const std::string& reason, int n) const {
    const std::string metrics = worker_metrics_.serialize();
    const std::string series = R"(cascade_worker_cascade_total{outcome=")" + outcome + R"(",reason=")" + reason + "\"}";
    if (metrics.find(series + " " + std::to_string(n) + "\n") != std::string::npos) return ::testing::AssertionSuccess();
    std::string present;
    std::istringstream lines(metrics);
    for (std::string line; std::getline(lines, line);)
      if (line.starts_with("cascade_worker_cascade_total{")) present += "\n  " + line;
    return ::testing::AssertionFailure() << "no " << series << " " << n << "; present:" << present;
  }

  const ModelInfo* cheap_ = nullptr;
  const ModelInfo* strong_ = nullptr;
};

}  // namespace cascade::testing
