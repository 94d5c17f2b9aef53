// Side calls (grades, agreement answers) over a fake provider and clock.
#include "consumers/worker/side_calls.h"

#include <gtest/gtest.h>

#include "support/worker_host.h"

namespace cascade {
namespace {

using testing::LifecycleHarness;
using std::chrono::milliseconds;

class SideCallsTest : public ::testing::Test {
 protected:
  SideCallSpec spec(Clock::time_point deadline, bool charge_cut, std::vector<SideCallEnd>* ends) {
    SideCallSpec s;
    s.model = h_.catalog().find("medium-a");
    s.messages = nlohmann::json::array({{{"role", "user"}, {"content", "Grade this answer."}}});
    s.deadline = deadline;
    s.max_reply_bytes = 8;
    s.charge_cut_calls = charge_cut;
    s.on_end = [ends](std::uint64_t, const ModelInfo&, SideCallEnd end) { ends->push_back(std::move(end)); };
    return s;
  }
  LifecycleHarness h_;
  SideCalls calls_{h_.context()};
};

TEST_F(SideCallsTest, AnAnsweredCallReportsItsReplyCutToTheLimitAndItsReportedCost) {
  std::vector<SideCallEnd> ends;
  ASSERT_NE(calls_.start(spec(Clock::time_point::max(), false, &ends)), 0u);
  EXPECT_EQ(calls_.running(), 1u);
  h_.provider("a").answer(h_.provider("a").open_call(), {"Score: 4", " because it is right"}, {200, 10});
  ASSERT_EQ(ends.size(), 1u);
  EXPECT_EQ(ends[0].how, SideCallEnd::How::answered);
  EXPECT_EQ(*ends[0].reply, "Score: 4");
  EXPECT_DOUBLE_EQ(ends[0].cost_usd, cost_usd(h_.catalog().find("medium-a")->price, TokenUsage{200, 10}));
  EXPECT_EQ(*grade_of(ends[0]), 4);
  EXPECT_EQ(calls_.running(), 0u);
  EXPECT_EQ(h_.stats.judge_calls.load(), 1u);
}

TEST_F(SideCallsTest, ACallPastItsDeadlineIsCutAndChargedOnlyWhenItSaysSo) {
  std::vector<SideCallEnd> ends;
  calls_.start(spec(h_.host.clock + milliseconds(100), true, &ends));
  calls_.start(spec(h_.host.clock + milliseconds(100), false, &ends));
  h_.provider("a").calls[0].observer->on_delta("Sco");
  calls_.enforce_deadlines(h_.host.clock + milliseconds(50));
  EXPECT_TRUE(ends.empty());
  calls_.enforce_deadlines(h_.host.clock + milliseconds(100));
  ASSERT_EQ(ends.size(), 2u);
  for (const auto& end : ends) {
    EXPECT_EQ(end.how, SideCallEnd::How::timed_out);
    EXPECT_EQ(end.reply.error().code, ErrorCode::timeout);
  }
  EXPECT_GT(ends[0].cost_usd, 0) << "its prompt and what it wrote";
  EXPECT_EQ(ends[1].cost_usd, 0);
  EXPECT_TRUE(h_.provider("a").calls[0].cancelled && h_.provider("a").calls[1].cancelled);
  calls_.free_ended();
}

TEST_F(SideCallsTest, ACancelledCallIsNotReportedAndReturnsWhatItCostSoFar) {
  std::vector<SideCallEnd> ends;
  const auto id = calls_.start(spec(Clock::time_point::max(), true, &ends));
  const auto cost = calls_.cancel(id);
  ASSERT_TRUE(cost);
  EXPECT_GT(*cost, 0);
  EXPECT_FALSE(calls_.cancel(id)) << "unknown once cancelled";
  EXPECT_TRUE(h_.provider("a").calls[0].cancelled);
  EXPECT_TRUE(ends.empty());
}

TEST_F(SideCallsTest, ACallbackMayCancelAnotherCallThatIsAlsoLate) {
  std::vector<SideCallEnd> ends;
  std::uint64_t second = 0;
  SideCallSpec first = spec(h_.host.clock, false, &ends);
  first.on_end = [&](std::uint64_t, const ModelInfo&, SideCallEnd end) {
    ends.push_back(std::move(end));
    (void)calls_.cancel(second);
  };
  calls_.start(std::move(first));
  second = calls_.start(spec(h_.host.clock, false, &ends));
  calls_.enforce_deadlines(h_.host.clock);
  EXPECT_EQ(ends.size(), 1u) << "the cancelled one is not reported";
  EXPECT_EQ(calls_.running(), 0u);
}

TEST_F(SideCallsTest, AModelWhoseProviderIsNotEnabledIsNotCalled) {
  std::vector<SideCallEnd> ends;
  ModelInfo orphan = *h_.catalog().find("medium-a");
  orphan.provider = "nobody";
  SideCallSpec s = spec(Clock::time_point::max(), false, &ends);
  s.model = &orphan;
  EXPECT_EQ(calls_.start(std::move(s)), 0u);
  EXPECT_EQ(calls_.running(), 0u);
}

}  // namespace
}  // namespace cascade
