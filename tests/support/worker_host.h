#pragma once
// Unit-testing the worker's request stages without Kafka, HTTP or a clock:
// a RequestHost with a fake clock and a recording producer, providers the
// test answers by hand, and a harness that builds a loop's StageContext and
// RequestLifecycle over them (tests/consumers/worker/*).
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "catalog/catalog.h"
#include "consumers/worker/cancel_stage.h"
#include "consumers/worker/request_host.h"
#include "consumers/worker/request_lifecycle.h"
#include "consumers/worker/stage_context.h"
#include "consumers/worker/worker.h"
#include "config/config.h"
#include "events/events.h"
#include "support/env.h"
#include "support/test_catalog.h"
#include "tokenizer/tokenizer.h"

namespace cascade::testing {

// A provider whose calls the test answers: each start_chat is recorded, and
// nothing happens until the test says so (as with HttpClient, never inside
// start_chat).
class FakeProvider final : public ChatProvider {
 public:
  struct Call {
    std::uint64_t transfer = 0;
    std::string upstream_model;
    nlohmann::json messages;
    int max_tokens = 0;
    ChatStreamObserver* observer = nullptr;
    bool cancelled = false;
    bool ended = false;
  };

  FakeProvider(std::string name, std::uint64_t* next_transfer) : name_(std::move(name)), next_(next_transfer) {}
  const std::string& name() const override { return name_; }
  std::uint64_t start_chat(const ChatRequest& request, ChatStreamObserver& observer) override {
    Call call;
    call.transfer = ++*next_;
    call.upstream_model = request.upstream_model;
    if (request.messages) call.messages = *request.messages;
    call.max_tokens = request.max_tokens;
    call.observer = &observer;
    calls.push_back(std::move(call));
    return calls.back().transfer;
  }

  // The last call not ended or cancelled (the test's next one to answer).
  Call& open_call() {
    for (auto it = calls.rbegin(); it != calls.rend(); ++it) {
      if (!it->ended && !it->cancelled) return *it;
    }
    ADD_FAILURE() << "provider " << name_ << " has no open call";
    static Call none;
    return none;
  }
  std::size_t open_calls() const {
    std::size_t n = 0;
    for (const auto& c : calls) n += !c.ended && !c.cancelled;
    return n;
  }
  // Streams `deltas` then completes the call with `usage` reported.
  void answer(Call& call, const std::vector<std::string>& deltas, TokenUsage usage = {10, 5},
              std::string finish_reason = "stop") {
    for (const auto& d : deltas) call.observer->on_delta(d);
    ChatCompletion completion;
    completion.finish_reason = std::move(finish_reason);
    completion.usage = usage;
    completion.usage_reported = true;
    call.ended = true;
    call.observer->on_complete(std::move(completion));
  }
  void fail(Call& call, Error error) {
    call.ended = true;
    call.observer->on_complete(std::unexpected(std::move(error)));
  }
  void cancel(std::uint64_t transfer) {
    for (auto& c : calls) {
      if (c.transfer == transfer) c.cancelled = true;
    }
  }

  std::vector<Call> calls;

 private:
  std::string name_;
  std::uint64_t* next_;
};

// A RequestHost over a clock the test moves and a producer that records.
class FakeRequestHost final : public RequestHost {
 public:
  struct Published {
    std::string topic;
    std::string key;
    std::string payload;
    bool tracked = false;
    std::uint64_t serial = 0;  // tracked events: the request's
  };
  struct Timer {
    Clock::time_point due;
    std::uint64_t serial;
    TimerKind kind;
  };

  FakeProvider& add_provider(const std::string& name) {
    auto& p = providers_[name];
    p = std::make_unique<FakeProvider>(name, &next_transfer_);
    return *p;
  }
  FakeProvider& provider_named(const std::string& name) { return *providers_.at(name); }

  Clock::time_point now() const override { return clock; }
  std::int64_t wall_ms() const override { return wall; }
  ChatProvider* provider(std::string_view name) override {
    auto it = providers_.find(std::string(name));
    return it == providers_.end() ? nullptr : it->second.get();
  }
  void cancel_call(std::uint64_t transfer) override {
    for (auto& [name, p] : providers_) p->cancel(transfer);
  }
  HttpClient& http() override {
    if (!http_) http_ = std::make_unique<HttpClient>();
    return *http_;
  }
  bool publish(const std::string& topic, std::string_view key, std::string_view payload) override {
    events.push_back({topic, std::string(key), std::string(payload), false, 0});
    return true;
  }
  void publish_tracked(Request& r, const std::string& topic, std::string key, std::string payload) override {
    events.push_back({topic, std::move(key), std::move(payload), true, r.serial});
  }
  void terminal_published(Request& r) override { terminals.push_back(r.serial); }
  void schedule(Clock::time_point due, std::uint64_t serial, TimerKind kind) override {
    timers.push_back({due, serial, kind});
  }

  // Moves the clock; returns the timers now due (removed), earliest first.
  std::vector<Timer> advance(std::chrono::milliseconds by) {
    clock += by;
    wall += by.count();
    return take_due();
  }
  std::vector<Timer> take_due() {
    std::vector<Timer> due;
    std::erase_if(timers, [&](const Timer& t) {
      if (t.due > clock) return false;
      due.push_back(t);
      return true;
    });
    std::stable_sort(due.begin(), due.end(), [](const Timer& a, const Timer& b) { return a.due < b.due; });
    return due;
  }

  // One reply event of a request as its requester reads it.
  struct Reply {
    std::string type;  // chunk | final | error
    std::int64_t seq = 0;
    std::string text;  // a chunk's delta, a final's content, an error's message
    std::optional<FinalReply> final;
    std::string error_code;
  };
  // The reply events of one request id, in the order published.
  std::vector<Reply> replies(std::string_view id) const {
    std::vector<Reply> out;
    for (const auto& e : events) {
      if (e.key != id) continue;
      auto event = parse_reply_event(e.payload);
      if (!event) continue;
      Reply reply;
      reply.type = event->type;
      reply.seq = event->seq;
      if (event->type == "chunk") {
        reply.text = event->body.value("delta", "");
      } else if (event->type == "final") {
        if (auto final = parse_final_event(e.payload)) {
          reply.text = final->content;
          reply.final = std::move(*final);
        }
      } else if (event->type == "error" && event->body.contains("error")) {
        reply.text = event->body["error"].value("message", "");
        reply.error_code = event->body["error"].value("code", "");
      }
      out.push_back(std::move(reply));
    }
    return out;
  }
  // How many terminal reply events (final or error) the request id got.
  std::size_t terminal_events(std::string_view id) const {
    std::size_t n = 0;
    for (const auto& r : replies(id)) n += r.type != "chunk";
    return n;
  }
  std::optional<Reply> terminal_event(std::string_view id) const {
    for (auto& r : replies(id)) {
      if (r.type != "chunk") return r;
    }
    return std::nullopt;
  }
  std::vector<CostEvent> cost_events(std::string_view ledger_topic, std::string_view id) const {
    std::vector<CostEvent> out;
    for (const auto& e : events) {
      if (e.topic != ledger_topic) continue;
      if (auto cost = parse_cost_event(e.payload); cost && cost->id == id) out.push_back(std::move(*cost));
    }
    return out;
  }
  std::size_t published_to(std::string_view topic) const {
    std::size_t n = 0;
    for (const auto& e : events) n += e.topic == topic;
    return n;
  }

  Clock::time_point clock = Clock::time_point{} + std::chrono::hours(1);
  std::int64_t wall = 1'767'225'600'000;
  std::vector<Published> events;
  std::vector<std::uint64_t> terminals;
  std::vector<Timer> timers;

 private:
  std::uint64_t next_transfer_ = 0;
  std::map<std::string, std::unique_ptr<FakeProvider>> providers_;
  std::unique_ptr<HttpClient> http_;
};

// Four models on two providers, one per tier and a second small one;
// "large-a" is the baseline every saving is counted against.
inline constexpr std::string_view kWorkerTestCatalog = R"(
price_version: "worker-test"
models:
  - {id: small-a,  provider: a, tier: small,  context_window: 128000, max_output_tokens: 4096, input_per_mtok: 0.15, output_per_mtok: 0.60}
  - {id: small-b,  provider: b, tier: small,  context_window: 128000, max_output_tokens: 4096, input_per_mtok: 0.20, output_per_mtok: 0.80}
  - {id: medium-a, provider: a, tier: medium, context_window: 128000, max_output_tokens: 4096, input_per_mtok: 1.00, output_per_mtok: 4.00}
  - {id: large-a,  provider: a, tier: large,  context_window: 128000, max_output_tokens: 4096, input_per_mtok: 2.50, output_per_mtok: 10.00}
)";

inline ModelCatalog worker_test_catalog() { return catalog_from_yaml(kWorkerTestCatalog, "large-a"); }

// The built-in configuration, with providers a and b (timeouts, slots) and
// every other setting at its default; tests change what they need.
inline Config worker_test_config() {
  auto config = load_config("", no_env());
  if (!config) {
    ADD_FAILURE() << config.error().message;
    return Config{};
  }
  config->providers.clear();
  for (const char* name : {"a", "b"}) {
    ProviderConfig p;
    p.name = name;
    config->providers[name] = p;
  }
  config->quality.sample_rate = 0;
  return std::move(*config);
}

// One loop's request machinery over a FakeRequestHost: feed it prompt
// events, answer its provider calls, move its clock.
class LifecycleHarness {
 public:
  explicit LifecycleHarness(Config config = worker_test_config(), LifecycleParts parts = {},
                            ModelCatalog catalog = worker_test_catalog())
      : config_(std::move(config)),
        catalog_(std::move(catalog)),
        tokens_(TokenCounter::bytes_only()),
        context_{.config = config_,
                 .catalog = catalog_,
                 .host = host,
                 .requests = requests,
                 .stats = stats,
                 .metrics = nullptr,
                 .tokens = *tokens_,
                 .seed = 42} {
    host.add_provider("a");
    host.add_provider("b");
    if (!parts.route_policies) {
      auto policies = compile_route_policies(config_.router, catalog_);
      if (!policies) ADD_FAILURE() << "router policies: " << policies.error().message;
      else parts.route_policies = std::move(*policies);
    }
    lifecycle_ = std::make_unique<RequestLifecycle>(context_, std::move(parts));
  }

  // A prompt event as an app would send it; `fields` are merged over it.
  static std::string prompt(const std::string& id, const std::string& text, nlohmann::json fields = {}) {
    nlohmann::json e = {{"id", id},
                        {"tenant", "acme"},
                        {"reply_to", "acme.replies"},
                        {"messages", nlohmann::json::array({{{"role", "user"}, {"content", text}}})}};
    if (fields.is_object()) e.update(fields);
    return e.dump();
  }
  void consume(const std::string& payload) {
    lifecycle_->on_record(0, next_offset_++, payload);
    end_iteration();
  }
  // What the event loop does after the events of one iteration: streamed
  // text that is due goes out as chunk events (worker.coalesce_ms).
  void end_iteration() { lifecycle_->end_of_iteration(host.clock); }
  // A cancel of request `id` as the worker's cancel follower hands it to the
  // loop: made now, remembered for worker.cancel_window_ms.
  void cancel(const std::string& id, const std::string& reason = "client_closed", const std::string& tenant = "acme") {
    lifecycle_->on_cancel(CancelNotice{CancelEvent{id, tenant, reason, host.wall},
                                       host.wall + config_.worker.cancel_window_ms});
    end_iteration();
  }
  // Fires the timers due after moving the clock.
  void advance(std::chrono::milliseconds by) {
    for (const auto& t : host.advance(by)) lifecycle_->on_timer(t.serial, t.kind);
    lifecycle_->on_tick(host.clock);
    end_iteration();
  }
  // Fires timers due now (a provider slot handed over).
  void fire_due() {
    for (const auto& t : host.take_due()) lifecycle_->on_timer(t.serial, t.kind);
    end_iteration();
  }
  Request* request(std::string_view id) {
    Request* found = nullptr;
    requests.for_each([&](Request& r) {
      if (r.event.id == id) found = &r;
    });
    return found;
  }
  FakeProvider& provider(const std::string& name) { return host.provider_named(name); }
  const std::string& ledger_topic() const { return config_.kafka.ledger_topic; }
  const std::string& dlq_topic() const { return config_.kafka.dlq_topic; }
  const ModelCatalog& catalog() const { return catalog_; }
  RequestLifecycle& lifecycle() { return *lifecycle_; }
  StageContext& context() { return context_; }

  FakeRequestHost host;
  RequestTable requests;
  WorkerStats stats;

 private:
  Config config_;
  ModelCatalog catalog_;
  std::shared_ptr<const TokenCounter> tokens_;
  StageContext context_;
  std::unique_ptr<RequestLifecycle> lifecycle_;
  std::int64_t next_offset_ = 0;
};

}  // namespace cascade::testing
