#pragma once
// The routing stage: which model answers a request, and which ones it falls
// back to (router/router.h decides; this applies the decision to the
// request: its route and its attempt chain).
//
// Threading: one event loop's thread; the Router is the loop's own.
#include <memory>
#include <string_view>

#include "consumers/worker/stage_context.h"
#include "router/router.h"

namespace cascade {

class RoutingStage {
 public:
  // The router sees a provider as available when the loop has it enabled.
  // `scorer` null = the heuristic; `policies` null = none (both as
  // load_route_scorer and compile_route_policies give them, once per process).
  // `tuned` null = no closed loop (the configuration's thresholds only).
  RoutingStage(StageContext& context, std::shared_ptr<const RouteScorer> scorer,
               std::shared_ptr<const RoutePolicies> policies, std::shared_ptr<const TunedCuts> tuned = nullptr);

  // Routes the request: its route, and its chain (the routed model, then its
  // fallbacks). Errors: the router's (no model meets the request's hard
  // constraints, an unknown pinned model...).
  [[nodiscard]] Result<void> route(Request& r);
  // Moves the request to the cheapest model that can serve it (a soft budget
  // limit), naming `why` in its reason. False when that is the model it has.
  bool downgrade(Request& r, std::string_view why);
  // The model of each tier a calibration sample asks (Router::models_by_tier).
  [[nodiscard]] Result<std::array<const ModelInfo*, 3>> models_by_tier(Request& r) const;

 private:
  void take(Request& r, RouteDecision route);

  StageContext& ctx_;
  std::unique_ptr<Router> router_;
};

}  // namespace cascade
