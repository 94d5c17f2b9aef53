#include "consumers/worker/worker.h"

#include <spdlog/spdlog.h>

#include "consumers/worker/cancel_follower.h"
#include "consumers/worker/event_loop.h"

namespace cascade {

Result<std::unique_ptr<Worker>> Worker::start(WorkerOptions options) {
  if (!options.catalog) return fail(ErrorCode::internal, "worker needs a model catalog");
  // Judges must be catalog models: their calls are priced like any other.
  for (const auto& [key, id] : {std::pair<const char*, const std::string&>{"router.cascade.judge_model",
                                                                           options.config.router.cascade.judge_model},
                                {"router.cascade.agreement_model", options.config.router.cascade.agreement_model},
                                {"quality.judge_model", options.config.quality.judge_model}}) {
    if (!id.empty() && options.catalog->find(id) == nullptr)
      return fail(ErrorCode::invalid_request, std::string("config '") + key + "': unknown model '" + id + "'");
  }
  if (const std::string& file = options.config.router.cascade.verifier_file; !file.empty() && !options.answer_verifier) {
    auto verifier = AnswerVerifier::load(file);
    if (!verifier)
      return fail(ErrorCode::invalid_request, "config 'router.cascade.verifier_file': " + verifier.error().message);
    options.answer_verifier = std::move(*verifier);
  }
  // A router model that does not load stops the worker, rather than every
  // request falling back to the heuristic.
  if (!options.route_scorer) {
    auto scorer = load_route_scorer(options.config.router);
    if (!scorer) return std::unexpected(scorer.error());
    options.route_scorer = std::move(*scorer);
  }
  // Rules' regexes and pinned models: compiled once, shared by every loop.
  if (!options.route_policies) {
    auto policies = compile_route_policies(options.config.router, *options.catalog);
    if (!policies) return std::unexpected(policies.error());
    options.route_policies = std::move(*policies);
  }
  auto worker = std::unique_ptr<Worker>(new Worker());
  worker->options_ = std::move(options);
  for (int i = 0; i < worker->options_.config.worker.threads; ++i) {
    auto loop = std::make_unique<EventLoop>(worker->options_, worker->stats_, i);
    if (auto ok = loop->init(); !ok) return std::unexpected(ok.error());
    worker->loops_.push_back(std::move(loop));
  }
  if (auto ok = worker->follow_cancels(); !ok) return std::unexpected(ok.error());
  for (auto& loop : worker->loops_) loop->launch();
  if (worker->cancels_) {
    if (auto ok = worker->cancels_->start(); !ok) return std::unexpected(ok.error());
  }
  spdlog::info("worker: {} event loop(s) consuming {} as group {}", worker->loops_.size(),
               worker->options_.config.kafka.requests_topic, worker->options_.config.kafka.worker_group);
  return worker;
}

// Every loop gets every cancel: only the one holding (or later reading) the
// request can tell. Read to the end before the loops start, so a cancel
// that came before this worker reaches them before their first record.
Result<void> Worker::follow_cancels() {
  std::vector<EventLoop*> loops;
  for (auto& loop : loops_) loops.push_back(loop.get());
  auto cancels = CancelFollower::open(options_.config, options_.bootstrap, options_.completed, stats_,
                                      options_.metrics, [loops](const CancelNotice& notice) {
                                        for (EventLoop* loop : loops) loop->post_cancel(notice);
                                      });
  if (!cancels && cancels.error().code == ErrorCode::unavailable) {
    spdlog::warn("worker: requests cannot be cancelled: {}", cancels.error().message);
    return {};
  }
  if (!cancels) return std::unexpected(cancels.error());
  if (auto ok = (*cancels)->restore(static_cast<int>(options_.config.state.restore_timeout_ms)); !ok)
    return std::unexpected(ok.error());
  cancels_ = std::move(*cancels);
  return {};
}

void Worker::stop(int drain_timeout_ms) {
  if (cancels_) cancels_->stop();  // it posts to the loops
  auto barrier = std::make_shared<CommitBarrier>(static_cast<int>(loops_.size()));
  for (auto& loop : loops_) loop->request_stop(drain_timeout_ms, barrier);
  for (auto& loop : loops_) loop->join();
  loops_.clear();
}

void Worker::abort() {
  if (cancels_) cancels_->stop();
  for (auto& loop : loops_) loop->request_abort();
  for (auto& loop : loops_) loop->join();
  loops_.clear();
}

Worker::~Worker() { stop(); }

}  // namespace cascade
