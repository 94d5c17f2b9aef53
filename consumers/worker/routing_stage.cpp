#include "consumers/worker/routing_stage.h"

namespace cascade {

RoutingStage::RoutingStage(StageContext& context, std::shared_ptr<const RouteScorer> scorer,
                           std::shared_ptr<const RoutePolicies> policies, std::shared_ptr<const TunedCuts> tuned)
    : ctx_(context),
      router_(std::make_unique<Router>(
          ctx_.config.router, ctx_.catalog,
          [&host = ctx_.host](std::string_view p) { return host.provider(p) != nullptr; }, std::move(scorer),
          std::move(policies))) {
  router_->use_tuned_cuts(std::move(tuned));
}

Result<std::array<const ModelInfo*, 3>> RoutingStage::models_by_tier(Request& r) const {
  return router_->models_by_tier(r.event, ctx_.route_context(r));
}

Result<void> RoutingStage::route(Request& r) {
  auto route = router_->route(r.event, ctx_.route_context(r));
  if (!route) return std::unexpected(route.error());
  take(r, std::move(*route));
  return {};
}

bool RoutingStage::downgrade(Request& r, std::string_view why) {
  auto cheaper = router_->route_cheapest(r.event, ctx_.route_context(r));
  if (!cheaper || cheaper->model == r.route.model) return false;
  cheaper->reason = r.route.reason + "; " + std::string(why) + ": downgraded to " + cheaper->model->id;
  cheaper->score = r.route.score;
  take(r, std::move(*cheaper));
  return true;
}

void RoutingStage::take(Request& r, RouteDecision route) {
  r.route = std::move(route);
  auto& chain = r.attempts.chain;
  chain.clear();
  chain.reserve(1 + r.route.fallbacks.size());
  chain.push_back(r.route.model);
  chain.insert(chain.end(), r.route.fallbacks.begin(), r.route.fallbacks.end());
}

}  // namespace cascade
