#pragma once
// Internal to router/: router.rules, router.policies and router.experiment
// compiled once at startup (regexes by PCRE2, model ids resolved against the
// catalog), then matched per request without allocating on the common path.
#include <array>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "router/router.h"

namespace cascade {

// A compiled PCRE2 pattern, searched (not anchored) in UTF-8 text; shared
// read-only between threads, each with its own match data.
class PromptRegex {
 public:
  [[nodiscard]] static Result<PromptRegex> compile(const std::string& pattern);
  bool search(std::string_view text) const;

 private:
  struct Code;
  std::shared_ptr<const Code> code_;
};

struct CompiledPolicy {
  std::string name;  // "default" = the router's own thresholds
  std::optional<Preference> preference;
  std::optional<TierThresholds> thresholds;
  std::optional<ProbabilityThresholds> probability;
  std::optional<bool> cost_aware;  // unset = router.cost_aware.enabled
};

struct CompiledRule {
  std::string name;  // the configured name, else "rules[<i>]"
  std::string tenant;
  std::string tag;
  std::vector<std::pair<std::string, std::string>> metadata;
  std::optional<PromptRegex> prompt;
  const ModelInfo* model = nullptr;
  std::optional<Tier> tier;
  const CompiledPolicy* policy = nullptr;
  std::string residency;

  bool matches(const PromptEvent& event) const;
};

class RoutePolicies {
 public:
  // invalid_request naming the key on a bad regex or an unknown model.
  [[nodiscard]] static Result<std::shared_ptr<const RoutePolicies>> compile(const RouterConfig& config, const ModelCatalog& catalog);

  // The first rule that matches, or nullptr.
  const CompiledRule* match(const PromptEvent& event) const;
  bool has_experiment() const { return experiment_active_; }
  // Arm 0 or 1 of the experiment for a request id: a hash of the
  // experiment's name and the id, so stable on redelivery and independent
  // between experiments.
  int arm_for(std::string_view request_id) const;
  const CompiledPolicy& arm_policy(int arm) const { return *arms_[static_cast<std::size_t>(arm)]; }
  // "<experiment>:<policy>".
  const std::string& arm_label(int arm) const { return arm_labels_[static_cast<std::size_t>(arm)]; }

 private:
  std::map<std::string, CompiledPolicy, std::less<>> policies_;  // node-based: rules point into it
  std::vector<CompiledRule> rules_;
  bool experiment_active_ = false;
  std::string experiment_name_;
  double split_ = 0.5;
  std::array<const CompiledPolicy*, 2> arms_{};
  std::array<std::string, 2> arm_labels_;
};

// The text of the last user message (string content, or its text parts
// joined by newlines); empty when there is none. `scratch` holds joined parts.
std::string_view last_user_text(const nlohmann::json& messages, std::string& scratch);

// Where in [0, 1) a request id falls for an experiment (FNV-1a + a 64-bit
// finalizer): deterministic across processes and releases.
double experiment_position(std::string_view experiment, std::string_view request_id);

}  // namespace cascade
