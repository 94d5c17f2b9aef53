#pragma once
// The replay stage: a request whose answer is in the completed-answer store
// (it was answered before a crash or a rebalance, and is delivered again) is
// answered from there, byte for byte, and nothing is paid again. The store
// replicates through the changelog, so this holds across workers
// (docs/state.md).
//
// Threading: one event loop's thread (the store itself is thread-safe).
#include <optional>

#include "consumers/worker/request.h"
#include "state/state.h"

namespace cascade {

class ReplayStage {
 public:
  // `completed` may be null: no request is ever replayed.
  explicit ReplayStage(CompletedAnswerStore* completed) : completed_(completed) {}

  // The request's answer if it was completed before.
  std::optional<CompletedAnswer> completed_answer(const Request& r) const;

 private:
  CompletedAnswerStore* completed_;
};

}  // namespace cascade
