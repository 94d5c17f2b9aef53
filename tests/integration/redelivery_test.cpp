// A request redelivered after a crash is answered from the completed-answer
// store, even on another worker: its offset is committed only once its
// completed answer is in the changelog, and a worker taking over partitions
// serves them only once its changelog applier has caught up.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <thread>

#include "integration/pipeline_fixture.h"
#include "support/state_store.h"

namespace cascade::testing {
namespace {

using namespace std::chrono_literals;

class RedeliveryTest : public PipelineTest {
 protected:
  // A worker over the given completed-answer store and changelog.
  Worker& start_worker_over(CompletedAnswerStore* completed, StateChangelog* changelog) {
    WorkerOptions options;
    options.config = config_;
    options.bootstrap = bootstrap_;
    options.catalog = catalog_.get();
    options.completed = completed;
    options.changelog = changelog;
    options.env = no_env();
    auto worker = Worker::start(std::move(options));
    EXPECT_TRUE(worker) << worker.error().message;
    workers_.push_back(std::move(*worker));
    return *workers_.back();
  }

  void stop_default_worker() {
    for (auto& w : workers_) w->stop(5000);
    workers_.clear();
  }

  // Sum over the requests topic's partitions of the worker group's committed
  // offsets (uncommitted partitions count 0).
  std::int64_t committed_requests() {
    auto committed =
        committed_offsets(config_.kafka, bootstrap_, config_.kafka.worker_group, config_.kafka.requests_topic);
    if (!committed) {
      ADD_FAILURE() << committed.error().message;
      return -1;
    }
    std::int64_t sum = 0;
    for (const auto& [partition, offset] : *committed) sum += offset;
    return sum;
  }

  bool wait_committed(std::int64_t n, std::chrono::seconds timeout) {
    return eventually([&] { return committed_requests() >= n; }, timeout, 100ms);
  }

  std::string second_dir() const { return temp_dir_.sub("second-worker"); }
};

// The answer is delivered, but its completed-answer record cannot reach the
// changelog (no publisher attached): the offset stays uncommitted, so a crash
// now redelivers the request rather than losing the record of its payment.
// Once the record is published, the offset is committed.
TEST_F(RedeliveryTest, AnOffsetIsCommittedOnlyOnceTheCompletedAnswerIsInTheChangelog) {
  start_pipeline();
  stop_default_worker();
  Config config = config_;
  config.state.dir = second_dir();
  config.state.maintenance_interval_ms = 0;
  StateOptions options = state_options(config);
  options.replicated = true;
  auto store = open_state_store(options);
  ASSERT_TRUE(store);
  auto completed = CompletedAnswerStore::view(*store);
  Worker& worker = start_worker_over(completed.get(), nullptr);

  ASSERT_TRUE(client_->send(prompt(1, "What is the boiling point of water at sea level?")));
  ASSERT_TRUE(client_->flush(10000));
  ASSERT_TRUE(client_->wait_all(30s));
  // Several commit intervals (200 ms) pass with the answer delivered.
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(committed_requests(), 0) << "committed before the completed answer reached the changelog";
  EXPECT_EQ(worker.stats().in_flight.load(), 1) << "held until its answer is replicated";
  EXPECT_EQ(store->stats().outbox_pending, 1u);

  // Attached and running, the changelog publishes what waits in the outbox.
  auto changelog = StateChangelog::open(*store, config_.kafka, bootstrap_);
  ASSERT_TRUE(changelog) << changelog.error().message;
  ASSERT_TRUE((*changelog)->start());
  EXPECT_TRUE(wait_committed(1, 30s));
  EXPECT_EQ(worker.stats().in_flight.load(), 0);
  EXPECT_EQ(worker.stats().completed.load(), 1u);
  stop_default_worker();
  (*changelog)->stop();
}

// Two event loops stopping together both make their final commit before
// either leaves the group: a commit during the rebalance that leaving starts
// would fail, and those requests would be answered again after a restart.
TEST_F(RedeliveryTest, AWorkerWithTwoLoopsCommitsEveryAnsweredRequestWhenItStops) {
  env_overrides["CASCADE_WORKER_THREADS"] = "2";
  env_overrides["CASCADE_WORKER_COMMIT_INTERVAL_MS"] = "600000";  // only the final commits count
  start_pipeline();
  constexpr int kRequests = 40;
  for (int i = 0; i < kRequests; ++i) ASSERT_TRUE(client_->send(prompt(i, "Question number " + std::to_string(i))));
  ASSERT_TRUE(client_->flush(10000));
  ASSERT_TRUE(client_->wait_all(60s)) << client_->outstanding() << " unanswered";
  // Answered: every offset is stored, and only a final commit sends it.
  EXPECT_TRUE(eventually([&] { return workers_.front()->stats().in_flight.load() == 0; }, 30s, 50ms));
  stop_default_worker();
  EXPECT_EQ(committed_requests(), kRequests) << "every loop's last offsets are committed";
}

// A worker whose changelog applier has not caught up since it was assigned
// partitions reads none of their requests; once the applier runs, it serves.
TEST_F(RedeliveryTest, AssignedPartitionsWaitUntilTheChangelogHasCaughtUp) {
  start_pipeline();
  stop_default_worker();
  Config config = config_;
  config.state.dir = second_dir();
  config.state.maintenance_interval_ms = 0;
  auto replica = open_replica(state_options(config), config_.kafka, bootstrap_);  // applier not running
  ASSERT_TRUE(replica.store && replica.changelog);
  auto completed = CompletedAnswerStore::view(*replica.store);
  Worker& worker = start_worker_over(completed.get(), replica.changelog.get());

  ASSERT_TRUE(client_->send(prompt(1, "Name the largest planet of the solar system.")));
  ASSERT_TRUE(client_->flush(10000));
  const auto until = std::chrono::steady_clock::now() + 2s;
  while (std::chrono::steady_clock::now() < until) client_->poll(50);
  EXPECT_EQ(worker.stats().consumed.load(), 0u) << "served before the changelog caught up";
  EXPECT_EQ(client_->outstanding(), 1u);

  ASSERT_TRUE(replica.changelog->start());
  EXPECT_TRUE(client_->wait_all(30s));
  EXPECT_EQ(worker.stats().consumed.load(), 1u);
  EXPECT_EQ(worker.stats().catch_up_timeouts.load(), 0u);
  stop_default_worker();
  replica.changelog->stop();
}

// The whole story on two workers with their own stores: the first answers,
// then crashes before committing; the second, already running its applier
// beside it, takes the partitions over and answers every request again from
// the completed answers that came through the changelog, with no provider call.
TEST_F(RedeliveryTest, RequestsRedeliveredToAnotherWorkerAfterACrashAreNotPaidTwice) {
  env_overrides["CASCADE_WORKER_COMMIT_INTERVAL_MS"] = "600000";  // nothing committed before the crash
  start_pipeline();
  auto second_state = open_state(second_dir());
  ASSERT_TRUE(second_state);

  const auto prompts = load_prompts(100);
  for (std::size_t i = 0; i < prompts.size(); ++i) ASSERT_TRUE(client_->send(prompt(i, prompts[i])));
  ASSERT_TRUE(client_->flush(10000));
  ASSERT_TRUE(client_->wait_all(60s));
  const auto calls = upstream_->requests_served();
  EXPECT_EQ(calls, 100u);
  // The answers are in the first worker's changelog records by now (its
  // offsets would wait for that); the crash drops everything uncommitted.
  ASSERT_TRUE(state_->changelog()->flush(10000));
  workers_.front()->abort();

  WorkerOptions options;
  options.config = config_;
  options.bootstrap = bootstrap_;
  options.catalog = catalog_.get();
  options.completed = second_state->completed();
  options.changelog = second_state->changelog();
  options.env = no_env();
  auto second = Worker::start(std::move(options));
  ASSERT_TRUE(second) << second.error().message;
  workers_.push_back(std::move(*second));

  auto all_answered_twice = [&] {
    for (const auto& [id, r] : client_->replies())
      if (r.terminal_count < 2) return false;
    return true;
  };
  EXPECT_TRUE(eventually(all_answered_twice, 60s, [&] { client_->poll(50); }));
  EXPECT_EQ(workers_.back()->stats().replayed.load(), 100u);
  EXPECT_EQ(workers_.back()->stats().provider_calls.load(), 0u);
  EXPECT_EQ(upstream_->requests_served(), calls);
  for (auto& w : workers_) w->stop(5000);
  workers_.clear();
  second_state.reset();
}

}  // namespace
}  // namespace cascade::testing
