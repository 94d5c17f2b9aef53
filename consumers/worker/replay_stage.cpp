#include "consumers/worker/replay_stage.h"

namespace cascade {

std::optional<CompletedAnswer> ReplayStage::completed_answer(const Request& r) const {
  if (!completed_) return std::nullopt;
  return completed_->get(r.event.tenant, r.event.id);
}

}  // namespace cascade
