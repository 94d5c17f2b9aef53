#pragma once
// The cheap-first cascade's decisions that need no event loop
// (docs/routing.md, "Cheap-first cascade"): which requests are cascaded, and
// which models a rejected cheap answer escalates to.
#include <functional>
#include <string_view>
#include <vector>

#include "catalog/catalog.h"
#include "router/router_config.h"
#include "events/events.h"

namespace cascade {

// Whether the request is cascaded: router.cascade.enabled, not pinned to a
// model, and either its "cascade" field says true or, without one, its
// preference is among router.cascade.preferences. A "cascade": false opts out.
bool cascade_requested(const CascadeConfig& config, const PromptEvent& event);

// The models a cheap answer escalates to when it is rejected: the cheapest
// usable model of the first tier above `cheap_tier` that has one, then up
// to `max_fallbacks` alternatives for when that one fails: the same tier's
// other usable models (other providers first, cheapest first), then the
// cheapest of the tier above it. Usable: its provider is available and it
// meets the request's hard constraints (context, capabilities, residency).
// Empty when no stronger tier has a usable model (the request is then not
// cascaded).
std::vector<const ModelInfo*> escalation_chain(const ModelCatalog& catalog, Tier cheap_tier,
                                               const std::function<bool(const ModelInfo& model)>& usable,
                                               int max_fallbacks);

}  // namespace cascade
