// Cancels end to end (docs/events.md, "Cancel event"): the embedded broker,
// a worker, the simulated upstream holding a stream open, the ledger. A
// cancel published while the answer streams ends the request with exactly
// one error `cancelled`, closes the upstream connection, charges exactly the
// tokens streamed, and lets the request's offset be committed. A cancel that
// comes first ends the request on arrival; another tenant's cancel, or one
// after the answer, changes nothing.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "events/cancel_event.h"
#include "integration/pipeline_fixture.h"
#include "tokenizer/tokenizer.h"

namespace cascade::testing {
namespace {

using namespace std::chrono_literals;

class CancelTest : public PipelineTest {
 protected:
  // Every provider's upstream injects `fault` into every call.
  void fault_on_every_provider(const UpstreamFault& fault) {
    FaultInjectionOptions faults;
    faults.plan = {{fault, 1}};
    for (const char* p : kProviders) provider_faults[p] = faults;
  }

  void publish_cancel(const PromptEvent& request, const std::string& tenant, const std::string& reason) {
    const CancelEvent cancel{request.id, tenant, reason, now_ms()};
    auto ok = produce_record_and_wait(config_.kafka, bootstrap_, config_.kafka.cancels_topic, request.id,
                                      make_cancel_event(cancel), 10000);
    ASSERT_TRUE(ok) << ok.error().message;
  }

  std::uint64_t upstream_calls() const {
    std::uint64_t n = upstream_->requests_served();
    for (const auto& [name, server] : faulty_upstreams_) n += server->requests_served();
    return n;
  }
  std::uint64_t abandoned_streams() const {
    std::uint64_t n = upstream_->responses_abandoned();
    for (const auto& [name, server] : faulty_upstreams_) n += server->responses_abandoned();
    return n;
  }

  // The cost events of `id` on the ledger topic, as the ledger reads them.
  std::vector<CostEvent> cost_events(const std::string& id) {
    std::vector<CostEvent> out;
    auto read = read_topic_to_end(config_.kafka, bootstrap_, config_.kafka.ledger_topic, [&](const KafkaRecord& r) {
      if (auto cost = parse_cost_event(r.payload()); cost && cost->id == id) out.push_back(std::move(*cost));
    });
    EXPECT_TRUE(read) << read.error().message;
    return out;
  }

  // Sum over the requests topic's partitions of the worker group's committed offsets.
  std::int64_t committed_requests() {
    auto committed =
        committed_offsets(config_.kafka, bootstrap_, config_.kafka.worker_group, config_.kafka.requests_topic);
    if (!committed) return -1;
    std::int64_t sum = 0;
    for (const auto& [partition, offset] : *committed) sum += offset;
    return sum;
  }

  bool wait_terminal(const std::string& id, std::uint64_t n = 1, std::chrono::seconds timeout = 30s) {
    return eventually([&] { return client_->replies().at(id).terminal_count >= n; }, timeout,
                      [&] { client_->poll(50); });
  }

  const Worker& worker() const { return *workers_.back(); }
};

TEST_F(CancelTest, ACancelWhileTheAnswerStreamsEndsItOnceClosesTheUpstreamAndChargesTheStreamedTokens) {
  constexpr int kStreamed = 3;
  fault_on_every_provider(UpstreamFault::hang_mid_stream(0, kStreamed));  // 3 chunks, then silence until the client leaves
  start_pipeline();
  const std::string text = "Explain why the sky is blue, in detail.";
  PromptEvent e = prompt(1, text);
  ASSERT_TRUE(client_->send(e));
  ASSERT_TRUE(client_->flush(10000));
  ASSERT_TRUE(eventually([&] {
    const auto& r = client_->replies().at(e.id);
    return !r.chunks.empty() && concat_chunks(r) == first_pieces(r, text, kStreamed);
  }, 30s,
                         [&] { client_->poll(50); }))
      << where_requests_are();

  publish_cancel(e, e.tenant, "client_closed");
  ASSERT_TRUE(wait_terminal(e.id)) << where_requests_are();
  client_->poll(300);  // a second terminal would show in terminal_count

  const CollectedReply& reply = client_->replies().at(e.id);
  EXPECT_EQ(reply.terminal_count, 1u);
  ASSERT_EQ(reply.terminal->type, "error") << reply.terminal->body.dump();
  EXPECT_EQ(reply.terminal->body["error"].value("code", ""), "cancelled");
  EXPECT_EQ(reply.terminal->body["error"].value("message", ""), "cancelled by its requester: client_closed");
  EXPECT_EQ(reply.terminal->seq, static_cast<std::int64_t>(reply.chunks.size())) << "after the chunks sent";
  EXPECT_TRUE(reply.seq_in_order);

  EXPECT_TRUE(eventually([&] { return abandoned_streams() == 1; }, 10s)) << "the worker closed the upstream stream";
  EXPECT_EQ(upstream_calls(), 1u);

  // One cost event: the prompt and exactly the streamed text, counted as the
  // worker counts a call without usage (its default counter).
  ASSERT_TRUE(wait_ledger(1, 30s));
  const auto costs = cost_events(e.id);
  ASSERT_EQ(costs.size(), 1u);
  const ModelInfo* model = catalog_->find(costs[0].model);
  ASSERT_NE(model, nullptr) << costs[0].model;
  const std::string streamed = concat_chunks(reply);
  const auto pieces = SimulatedUpstream::answer_pieces(model->upstream_model, text, kChunks);
  EXPECT_EQ(streamed, pieces[0] + pieces[1] + pieces[2]) << "the pieces sent before the stall";
  const auto counter = TokenCounter::bytes_only();
  EXPECT_EQ(costs[0].usage.output_tokens, static_cast<std::int64_t>(counter->count_text(model->id, streamed).tokens));
  EXPECT_EQ(costs[0].usage.input_tokens,
            static_cast<std::int64_t>(counter->count_messages(model->id, e.messages).tokens));
  EXPECT_DOUBLE_EQ(costs[0].cost_usd, cost_usd(model->price, costs[0].usage));
  EXPECT_NE(costs[0].route_reason.find("cancelled while calling (client_closed)"), std::string::npos)
      << costs[0].route_reason;
  // The ledger counts it as any request.
  EXPECT_EQ(aggregator_.total().requests, 1u);
  EXPECT_EQ(aggregator_.total().output_tokens, costs[0].usage.output_tokens);

  EXPECT_TRUE(eventually([&] { return committed_requests() == 1; }, 15s, 100ms)) << "its offset is committed";
  EXPECT_EQ(worker().stats().cancelled.load(), 1u);
  EXPECT_EQ(worker().stats().completed.load(), 1u);
}

TEST_F(CancelTest, ACancelThatCameFirstEndsTheRequestOnArrivalWithoutAnUpstreamCall) {
  start_pipeline();
  // Published while no worker runs: the next worker reads the cancels topic
  // to its end before its first request.
  workers_.back()->stop(5000);
  workers_.clear();
  PromptEvent cancelled = prompt(1, "What is the capital of Peru?");
  PromptEvent other = prompt(2, "What is the capital of Chile?");
  publish_cancel(cancelled, cancelled.tenant, "timeout");
  ASSERT_TRUE(client_->send(cancelled));
  ASSERT_TRUE(client_->send(other));
  ASSERT_TRUE(client_->flush(10000));
  start_worker();

  ASSERT_TRUE(client_->wait_all(30s)) << where_requests_are();
  const CollectedReply& reply = client_->replies().at(cancelled.id);
  ASSERT_EQ(reply.terminal->type, "error");
  EXPECT_EQ(reply.terminal->body["error"].value("code", ""), "cancelled");
  EXPECT_EQ(reply.terminal->seq, 0);
  EXPECT_TRUE(reply.chunks.empty());
  EXPECT_EQ(client_->replies().at(other.id).terminal->type, "final");
  EXPECT_EQ(upstream_calls(), 1u) << "only the other request called";

  ASSERT_TRUE(wait_ledger(1, 30s));
  EXPECT_TRUE(cost_events(cancelled.id).empty()) << "nothing was called: nothing charged";
  EXPECT_TRUE(eventually([&] { return committed_requests() == 2; }, 15s, 100ms)) << "both offsets are committed";
  EXPECT_EQ(worker().stats().cancelled.load(), 1u);
}

TEST_F(CancelTest, AnotherTenantsCancelIsIgnoredAndTheAnswerCompletes) {
  // 3 chunks, a stall long enough for the cancel to reach the worker, then the rest.
  fault_on_every_provider(UpstreamFault::hang_mid_stream(3000, 3));
  start_pipeline();
  const std::string text = "Name three rivers of Europe.";
  PromptEvent e = prompt(1, text);
  ASSERT_TRUE(client_->send(e));
  ASSERT_TRUE(client_->flush(10000));
  ASSERT_TRUE(eventually([&] {
    const auto& r = client_->replies().at(e.id);
    return !r.chunks.empty() && concat_chunks(r) == first_pieces(r, text, 3);
  }, 30s,
                         [&] { client_->poll(50); }));
  publish_cancel(e, "someone-else", "client_closed");
  EXPECT_TRUE(eventually([&] { return worker().stats().cancels_ignored.load() == 1; }, 10s))
      << "counted as ignored while the request is in flight";
  ASSERT_TRUE(wait_terminal(e.id)) << where_requests_are();
  const CollectedReply& reply = client_->replies().at(e.id);
  ASSERT_EQ(reply.terminal->type, "final") << reply.terminal->body.dump();
  EXPECT_EQ(concat_chunks(reply), reply.terminal->body.value("content", ""));
  EXPECT_EQ(abandoned_streams(), 0u);
  EXPECT_EQ(worker().stats().cancelled.load(), 0u);
}

TEST_F(CancelTest, ACancelAfterTheAnswerIsANoOpAndTheSameRequestIsStillReplayed) {
  start_pipeline();
  PromptEvent e = prompt(1, "What is the boiling point of water at sea level?");
  ASSERT_TRUE(client_->send(e));
  ASSERT_TRUE(client_->flush(10000));
  ASSERT_TRUE(wait_terminal(e.id)) << where_requests_are();
  const nlohmann::json first = client_->replies().at(e.id).terminal->body;
  ASSERT_EQ(client_->replies().at(e.id).terminal->type, "final");

  publish_cancel(e, e.tenant, "client_closed");
  EXPECT_TRUE(eventually([&] { return worker().stats().cancels_ignored.load() == 1; }, 10s))
      << "the worker found the answer completed";

  // The same request again: its stored answer, not a cancellation.
  std::optional<ReplyEvent> again;
  ASSERT_TRUE(client_->send(e));
  ASSERT_TRUE(client_->flush(10000));
  ASSERT_TRUE(eventually([&] { return again.has_value(); }, 30s, [&] {
    client_->poll(50, [&](const ReplyEvent& event) {
      if (event.id == e.id && event.type != "chunk") again = event;
    });
  }));
  EXPECT_EQ(again->type, "final");
  EXPECT_EQ(again->body, first) << "replayed byte for byte";
  EXPECT_EQ(upstream_calls(), 1u);
  EXPECT_EQ(worker().stats().cancelled.load(), 0u);
  EXPECT_EQ(worker().stats().replayed.load(), 1u);
}

}  // namespace
}  // namespace cascade::testing
