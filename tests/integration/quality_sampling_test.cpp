// Quality sampling end to end (docs/routing.md, "Quality sampling"): a share
// of cheaper tiers' answers is graded by a judge model off the request's path,
// one quality event per grade; a failing or hanging judge changes nothing else.
#include <algorithm>
#include <string>
#include <vector>

#include "integration/cascade_policy_fixture.h"

namespace cascade::testing {
namespace {

// `cascade upstream --outcomes`: the cheap model answers with its recorded
// answer and the judge, asked by the worker's real judge prompt, grades it
// as recorded (1 + 4 x quality), so a replay measures quality as the data did.
TEST_F(CascadePolicyTest, QualitySamplingGradesARecordedAnswerWithItsRecordedGrade) {
  env_overrides["CASCADE_QUALITY_SAMPLE_RATE"] = "1";
  start_pipeline();
  const ModelInfo& judge = catalog_->baseline();
  const PromptEvent e = request("recorded-1", "Name three famous Broadway actors.");
  resolve_models(e);
  ASSERT_LT(cheap_->tier, judge.tier);
  const std::string recorded = "Hugh Jackman, Audra McDonald and Nathan Lane all began on Broadway.";
  upstream_->set_recorded_answers({{cheap_->upstream_model, "Name three famous Broadway actors.", recorded, 0.75}});
  send_and_wait({e});
  EXPECT_EQ(expect_final(e).value("content", ""), recorded);
  ASSERT_TRUE(eventually([&] { return stats().quality_published.load() >= 1; }, std::chrono::seconds(30)));
  client_->poll(300);
  const auto published = quality_events();
  ASSERT_EQ(published.size(), 1u);
  EXPECT_EQ(published.front().id, e.id);
  EXPECT_EQ(published.front().score, recorded_grade(0.75));
  EXPECT_EQ(upstream_->recorded_answers_served(), 1u);
  EXPECT_EQ(upstream_->recorded_grades_served(), 1u);
  EXPECT_EQ(std::string_view(kJudgeAnswerMarker), kJudgeCallAnswerMarker);
}

TEST_F(CascadePolicyTest, QualitySamplingAtRateOnePublishesOneGradedEventPerCheaperTierAnswer) {
  env_overrides["CASCADE_QUALITY_SAMPLE_RATE"] = "1";
  start_pipeline();
  const ModelInfo& judge = catalog_->baseline();
  upstream_->set_answer_rules({{judge.upstream_model, std::string(kJudgeAnswerMarker), "Score: 4"}});
  std::vector<PromptEvent> events;
  for (int i = 0; i < 6; ++i) events.push_back(request("q-" + std::to_string(i), "What is " + std::to_string(i) + " plus 1?"));
  PromptEvent pinned_judge = request("q-judge-model", "What is 10 plus 1?");
  pinned_judge.model = judge.id;  // answered by the judge's own model: never sampled
  events.push_back(pinned_judge);
  resolve_models(events.front());
  ASSERT_LT(cheap_->tier, judge.tier);
  send_and_wait(events);
  ASSERT_TRUE(eventually([&] { return stats().quality_published.load() >= 6; }, std::chrono::seconds(30)));
  client_->poll(300);

  auto published = quality_events();
  ASSERT_EQ(published.size(), 6u);
  std::sort(published.begin(), published.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  for (int i = 0; i < 6; ++i) {
    const QualityEvent& q = published[static_cast<std::size_t>(i)];
    const PromptEvent& e = events[static_cast<std::size_t>(i)];
    const auto& body = expect_final(e);
    EXPECT_EQ(q.id, e.id);
    EXPECT_EQ(q.tenant, e.tenant);
    EXPECT_EQ(q.model, body.value("model", ""));
    EXPECT_EQ(q.tier, std::string(to_string(catalog_->find(q.model)->tier)));
    EXPECT_EQ(q.judge_model, judge.id);
    EXPECT_EQ(q.score, 4);
    EXPECT_EQ(q.route_reason, body["route"].value("reason", ""));
    EXPECT_GT(q.judge_cost_usd, 0);
    EXPECT_EQ(q.sample_rate, 1);
    EXPECT_GT(q.ts_ms, 0);
  }
  EXPECT_EQ(stats().quality_failed.load(), 0u);
  EXPECT_EQ(calls_to(&judge), 7u);  // six grades and the pinned answer
  // The samples' cost is on the quality events, not on the requests'.
  for (const auto& e : events) {
    const auto& body = reply(e).terminal->body;
    const TokenUsage usage{body["usage"].value("input_tokens", 0), body["usage"].value("output_tokens", 0)};
    EXPECT_NEAR(body.value("cost_usd", 0.0), cost_usd(catalog_->find(body.value("model", ""))->price, usage), 1e-15);
  }
  EXPECT_NE(worker_metrics_.serialize().find(R"(cascade_quality_samples_total{outcome="published"} 6)"),
            std::string::npos);
}

TEST_F(CascadePolicyTest, QualitySamplingAtRateZeroGradesNothing) {
  start_pipeline();  // quality.sample_rate defaults to 0
  ASSERT_EQ(config_.quality.sample_rate, 0);
  std::vector<PromptEvent> events;
  for (int i = 0; i < 5; ++i) events.push_back(request("q0-" + std::to_string(i), "What is " + std::to_string(i) + " minus 1?"));
  send_and_wait(events);
  client_->poll(500);  // time for any grading call to have started
  EXPECT_EQ(stats().judge_calls.load(), 0u);
  EXPECT_EQ(upstream_->requests_served(), 5u);
  EXPECT_TRUE(quality_events().empty());
}

class CascadeQualityJudgeFailureTest : public CascadePolicyTest {
 protected:
  // The quality judge: a model of a stronger tier than the cheap one, on a
  // provider that gets an upstream of its own (which misbehaves).
  const char* kJudge = "claude-opus-4-8";
  const char* kJudgeProvider = "anthropic";

  void start_with_judge_fault(const UpstreamFault& fault, long timeout_ms) {
    FaultInjectionOptions faults;
    faults.plan = {{fault, 1}};
    provider_faults[kJudgeProvider] = faults;
    env_overrides["CASCADE_QUALITY_SAMPLE_RATE"] = "1";
    env_overrides["CASCADE_QUALITY_JUDGE_MODEL"] = kJudge;
    env_overrides["CASCADE_QUALITY_TIMEOUT_MS"] = std::to_string(timeout_ms);
    start_pipeline();
    ASSERT_NE(catalog_->find(kJudge), nullptr);
    ASSERT_EQ(catalog_->find(kJudge)->provider, kJudgeProvider);
  }

  std::vector<PromptEvent> cheap_requests(const std::string& prefix, int n) {
    std::vector<PromptEvent> events;
    for (int i = 0; i < n; ++i) events.push_back(request(prefix + std::to_string(i), "What is " + std::to_string(i) + " times 3?"));
    resolve_models(events.front());
    EXPECT_NE(cheap_->provider, kJudgeProvider);
    EXPECT_LT(cheap_->tier, catalog_->find(kJudge)->tier);
    return events;
  }
};

TEST_F(CascadeQualityJudgeFailureTest, AFailingJudgeLeavesTheAnswersAsTheyWereAndIsOnlyCounted) {
  start_with_judge_fault(UpstreamFault::http_status(500), 30000);
  const auto events = cheap_requests("jf-", 4);
  send_and_wait(events);
  for (const auto& e : events) {
    const auto& body = expect_final(e);
    EXPECT_EQ(body.value("model", ""), cheap_->id);
    EXPECT_EQ(body.value("content", ""),
              SimulatedUpstream::answer_for(cheap_->upstream_model, e.messages[0]["content"], kChunks));
  }
  ASSERT_TRUE(eventually([&] { return stats().quality_failed.load() >= 4; }, std::chrono::seconds(30)));
  EXPECT_EQ(stats().quality_published.load(), 0u);
  EXPECT_TRUE(eventually([&] { return stats().completed.load() >= 4; }, std::chrono::seconds(10)));
  EXPECT_EQ(stats().failed.load(), 0u);
  EXPECT_TRUE(quality_events().empty());
  EXPECT_NE(worker_metrics_.serialize().find(R"(cascade_quality_samples_total{outcome="failed"} 4)"), std::string::npos);
  EXPECT_NE(worker_metrics_.serialize().find(R"(cascade_worker_judge_calls_total{outcome="error",purpose="quality"} 4)"),
            std::string::npos);
}

TEST_F(CascadeQualityJudgeFailureTest, AHangingJudgeNeitherDelaysTheAnswerNorHoldsItsOffset) {
  start_with_judge_fault(UpstreamFault::hang_before_headers(0), 8000);
  const auto events = cheap_requests("jh-", 3);
  send_and_wait(events);
  // Every request is finished (terminal events delivered, offsets released)
  // while every grading call still hangs.
  ASSERT_TRUE(eventually([&] { return stats().completed.load() >= 3; }, std::chrono::seconds(10)));
  EXPECT_EQ(stats().judge_calls.load(), 3u);
  EXPECT_EQ(stats().quality_failed.load(), 0u);
  for (const auto& e : events) EXPECT_EQ(expect_final(e).value("model", ""), cheap_->id);
  // Past quality.timeout_ms the calls are cut and counted.
  ASSERT_TRUE(eventually([&] { return stats().quality_failed.load() >= 3; }, std::chrono::seconds(30)));
  EXPECT_EQ(stats().quality_published.load(), 0u);
  EXPECT_NE(worker_metrics_.serialize().find(R"(cascade_worker_judge_calls_total{outcome="timeout",purpose="quality"} 3)"),
            std::string::npos);
}

// What holding the cheap answer back costs the user: time to first chunk,
// without cascade, with the cheap answer accepted, and escalated.

}  // namespace
}  // namespace cascade::testing
