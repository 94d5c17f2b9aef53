#pragma once
// A route scorer whose answer the test chooses.
#include <nlohmann/json.hpp>

#include "router/router.h"

namespace cascade::testing {

// Scores every prompt p_weak_ok = p, as a learned scorer would.
class FixedScorer final : public RouteScorer {
 public:
  explicit FixedScorer(double p) : p_(p) {}
  ScorerKind kind() const override { return ScorerKind::learned; }
  RouteScore score(const nlohmann::json&, bool) const override { return RouteScore{p_, {}}; }

 private:
  double p_;
};

}  // namespace cascade::testing
