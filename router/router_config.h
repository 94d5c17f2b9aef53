#pragma once
// router.* of cascade.yaml, owned and checked here: tier thresholds per
// preference, the scorer, fallbacks, the cheap-first cascade, cost-aware
// routing, and policies, rules and the A/B experiment (docs/routing.md).
// What needs the catalog or PCRE2 (pinned models, rule regexes) is checked
// when the policies are compiled (compile_route_policies, router/router.h).
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/config_reader.h"
#include "core/result.h"

namespace cascade {

struct TierThresholds {
  double small_max = 0.30;
  double medium_max = 0.60;
};

// For the learned and knn scorers (docs/routing.md): p = probability that the
// cheaper model answers as well as the strong one. p >= small_min -> small
// tier; p >= medium_min -> medium; else large.
struct ProbabilityThresholds {
  double small_min = 0.80;
  double medium_min = 0.72;
};

// router.cascade: the cheap-first cascade (docs/routing.md, "Cheap-first
// cascade"). The routed model answers into a buffer; its answer is checked
// (refusal, empty, truncated, JSON format, optionally a judge's score) and
// either published or replaced by the next tier's answer, streamed.
struct CascadeConfig {
  bool enabled = false;  // off: no request is cascaded, whatever it asks
  // Preferences whose requests are cascaded unless they say "cascade": false;
  // a prompt's "cascade": true cascades any preference.
  std::vector<std::string> preferences = {"cost"};
  std::string judge_model;    // catalog id grading the cheap answer; "" = no judge
  double min_judge_score = 3;  // 1..5; a lower grade escalates
  long judge_timeout_ms = 10000;  // a later grade counts as no grade (the answer is accepted)
  // A cheap answer longer than this stops being held back: what came so far
  // is published and the rest streams unchecked.
  std::size_t max_buffer_bytes = 65536;
  // A learned answer check (cascade route-train --router verifier): answers
  // it gives a probability below min_verifier_p escalate. "" = none.
  std::string verifier_file;
  double min_verifier_p = 0.5;
  // Catalog id of a second cheap model asked the same request in parallel
  // with the cheap one; a cheap answer whose final answer (option letter,
  // number) differs from its answer escalates. "" = no agreement check.
  std::string agreement_model;
};

// router.policies.<name>: how a request routed under this policy is scored.
// Unset fields keep the router's own: the thresholds of `preference` (or of
// the request's preference when it is "").
struct RoutePolicyConfig {
  std::string preference;                           // "" = the request's; else cost|balanced|quality|speed
  std::optional<TierThresholds> thresholds;         // small_max + medium_max (heuristic)
  std::optional<ProbabilityThresholds> probability;  // small_min + medium_min (learned, knn)
  std::optional<bool> cost_aware;                    // unset = router.cost_aware.enabled
};

// router.cost_aware (docs/routing.md, "Cost-aware routing"): with the learned
// or knn scorer, the strong model's expected gain (1 - p_weak_ok) is weighed
// against what it costs more for this request than for a reference-sized
// one, so dollars go where they buy the most quality: a long prompt needs a
// larger expected gain to be upgraded, a short one a smaller.
struct CostAwareConfig {
  bool enabled = false;
  // The request size at which the probability thresholds keep their meaning.
  std::int64_t reference_input_tokens = 1000;
  // Output assumed when pricing a request before it is answered (capped at
  // its max_tokens), for the request and the reference alike.
  std::int64_t expected_output_tokens = 256;
};

// router.rules[i]: when every given match holds, the action applies. The
// first matching rule wins. Regexes are compiled (PCRE2) by the router.
struct RouteRuleConfig {
  std::string name;  // shown in reasons; "" = "rules[<i>]"
  // Match (at least one): "" / empty = any.
  std::string tenant;
  std::string tag;                              // metadata.tags contains it
  std::map<std::string, std::string> metadata;  // metadata.<key> equals value (as text)
  std::string prompt;                           // PCRE2 regex searched in the last user message
  // Action: at most one of model, tier, policy; residency may come with any.
  std::string model;      // pin this catalog model
  std::string tier;       // small | medium | large
  std::string policy;     // a name in router.policies (or "default")
  std::string residency;  // required region, on top of the request's own
};

// router.experiment: splits auto-routed traffic between two policies by a
// hash of the request id (stable on redelivery). name "" = no experiment.
struct RouteExperimentConfig {
  std::string name;
  std::vector<std::string> policies;  // exactly two: [a, b]
  double split = 0.5;                 // share of requests given policies[0]
};

struct RouterConfig {
  TierThresholds balanced{0.30, 0.60};
  TierThresholds cost{0.55, 0.85};
  TierThresholds quality{0.15, 0.45};
  TierThresholds speed{0.6, 0.9};
  std::string scorer = "heuristic";  // heuristic | learned | knn
  std::string model_file;            // learned/knn model; "" = built-in config/router/learned.json
  // Calibrated on held-out routing outcomes (docs/routing.md): the built-in
  // learned model reaches ~95% of the strong model's quality at p ~0.67-0.89 on benchmark
  // sets, ~0.44-0.50 on chat prompts.
  ProbabilityThresholds balanced_p{0.80, 0.72};
  ProbabilityThresholds cost_p{0.75, 0.60};
  ProbabilityThresholds quality_p{0.85, 0.78};
  ProbabilityThresholds speed_p{0.70, 0.55};
  // Models tried after the routed one fails, per tier ("small"...): catalog ids
  // in order. A tier without a list falls back to the next cheapest available
  // models of that tier, other providers first, then the next stronger tier.
  std::map<std::string, std::vector<std::string>> fallbacks;
  int max_fallbacks = 2;
  CascadeConfig cascade;
  CostAwareConfig cost_aware;
  // Policies (docs/routing.md, "Policies"): named threshold sets, rules
  // matched first to last, and an A/B experiment between two policies.
  std::map<std::string, RoutePolicyConfig> policies;
  std::vector<RouteRuleConfig> rules;
  RouteExperimentConfig experiment;
};

// router.*, read and then checked by validate_router_config: invalid_request naming the key.
[[nodiscard]] Result<RouterConfig> read_router_config(ConfigReader& reader);

// Everything about a router configuration that the file alone decides:
// threshold ranges (the router's and its policies'), the scorer's name, the
// cascade's settings, and validate_route_policy_config. read_router_config checks what it loads with it.
[[nodiscard]] Result<void> validate_router_config(const RouterConfig& config);
// Policies (names, preferences), rules (a match, one action, known
// tiers and policies) and the experiment: the one place they are checked,
// for a loaded configuration (validate_router_config) and for one built in
// code (compile_route_policies, router/router.h).
[[nodiscard]] Result<void> validate_route_policy_config(const RouterConfig& config);

}  // namespace cascade
