#define PCRE2_CODE_UNIT_WIDTH 8
#include "router/route_policies.h"

#include <pcre2.h>

#include <algorithm>
#include <cstdint>

#include "core/hash.h"

namespace cascade {
namespace {

std::optional<Preference> preference_named(std::string_view name) {
  if (name == "cost") return Preference::cost;
  if (name == "balanced") return Preference::balanced;
  if (name == "quality") return Preference::quality;
  if (name == "speed") return Preference::speed;
  return std::nullopt;
}

// A metadata value as the text a YAML rule compares it with.
bool metadata_equals(const nlohmann::json& value, const std::string& expected) {
  switch (value.type()) {
    case nlohmann::json::value_t::string: return value.get_ref<const std::string&>() == expected;
    case nlohmann::json::value_t::boolean: return expected == (value.get<bool>() ? "true" : "false");
    case nlohmann::json::value_t::number_integer: return std::to_string(value.get<std::int64_t>()) == expected;
    case nlohmann::json::value_t::number_unsigned: return std::to_string(value.get<std::uint64_t>()) == expected;
    case nlohmann::json::value_t::number_float: {
      // "0.5" in YAML and 0.5 in JSON: compare as numbers.
      char* end = nullptr;
      const double wanted = std::strtod(expected.c_str(), &end);
      return end != expected.c_str() && *end == '\0' && wanted == value.get<double>();
    }
    default: return false;
  }
}

bool has_tag(const nlohmann::json& metadata, const std::string& tag) {
  const auto it = metadata.find("tags");
  if (it == metadata.end()) return false;
  if (it->is_string()) return it->get_ref<const std::string&>() == tag;
  if (!it->is_array()) return false;
  for (const auto& t : *it)
    if (t.is_string() && t.get_ref<const std::string&>() == tag) return true;
  return false;
}

}  // namespace

// ------------------------------------------------------------- regexes ----

struct PromptRegex::Code {
  pcre2_code* code = nullptr;
  ~Code() {
    if (code != nullptr) pcre2_code_free(code);
  }
};

Result<PromptRegex> PromptRegex::compile(const std::string& pattern) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  // MATCH_INVALID_UTF: a prompt with broken UTF-8 is searched, not refused.
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &error, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof message);
    return fail(ErrorCode::invalid_request, "invalid regex at offset " + std::to_string(offset) + ": " +
                                                reinterpret_cast<const char*>(message));
  }
  auto owned = std::make_shared<Code>();
  owned->code = code;
  // Without JIT (some platforms) pcre2_match interprets: slower, still right.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  PromptRegex regex;
  regex.code_ = std::move(owned);
  return regex;
}

bool PromptRegex::search(std::string_view text) const {
  // One match block per thread, reused: matching allocates nothing.
  struct MatchData {
    pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
    ~MatchData() { pcre2_match_data_free(data); }
  };
  thread_local MatchData match;
  if (match.data == nullptr) return false;
  const int rc = pcre2_match(code_->code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0, 0, match.data,
                             nullptr);
  return rc >= 0;
}

// --------------------------------------------------------------- rules ----

std::string_view last_user_text(const nlohmann::json& messages, std::string& scratch) {
  if (!messages.is_array()) return {};
  for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
    if (!it->is_object()) continue;
    const auto role = it->find("role");
    if (role == it->end() || !role->is_string() || role->get_ref<const std::string&>() != "user") continue;
    const auto content = it->find("content");
    if (content == it->end()) return {};
    if (content->is_string()) return content->get_ref<const std::string&>();
    scratch.clear();
    if (content->is_array()) {
      for (const auto& part : *content) {
        if (!part.is_object()) continue;
        const auto text = part.find("text");
        if (text == part.end() || !text->is_string()) continue;
        if (!scratch.empty()) scratch += '\n';
        scratch += text->get_ref<const std::string&>();
      }
    }
    return scratch;
  }
  return {};
}

bool CompiledRule::matches(const PromptEvent& event) const {
  // Cheapest tests first; the regex last.
  if (!tenant.empty() && event.tenant != tenant) return false;
  if (!tag.empty() || !metadata.empty()) {
    if (!event.metadata.is_object()) return false;
    if (!tag.empty() && !has_tag(event.metadata, tag)) return false;
    for (const auto& [key, value] : metadata) {
      const auto it = event.metadata.find(key);
      if (it == event.metadata.end() || !metadata_equals(*it, value)) return false;
    }
  }
  if (prompt) {
    std::string scratch;
    if (!prompt->search(last_user_text(event.messages, scratch))) return false;
  }
  return true;
}

Result<std::shared_ptr<const RoutePolicies>> RoutePolicies::compile(const RouterConfig& config,
                                                                   const ModelCatalog& catalog) {
  // What the file alone decides is checked in one place (a configuration
  // built in code has not been through read_router_config); what is left
  // here needs the catalog or PCRE2.
  if (auto ok = validate_route_policy_config(config); !ok) return std::unexpected(ok.error());
  auto out = std::make_shared<RoutePolicies>();
  out->policies_.emplace("default", CompiledPolicy{"default", std::nullopt, std::nullopt, std::nullopt, std::nullopt});
  for (const auto& [name, policy] : config.policies) {
    CompiledPolicy compiled{name, std::nullopt, policy.thresholds, policy.probability, policy.cost_aware};
    if (!policy.preference.empty()) compiled.preference = preference_named(policy.preference);
    out->policies_.insert_or_assign(name, std::move(compiled));
  }
  // Every name is known: validate_router_config checked it.
  auto policy_named = [&](const std::string& name) { return &out->policies_.at(name); };

  for (std::size_t i = 0; i < config.rules.size(); ++i) {
    const RouteRuleConfig& rule = config.rules[i];
    const std::string key = "router.rules[" + std::to_string(i) + "]";
    CompiledRule compiled;
    compiled.name = rule.name.empty() ? "rules[" + std::to_string(i) + "]" : rule.name;
    compiled.tenant = rule.tenant;
    compiled.tag = rule.tag;
    compiled.metadata.assign(rule.metadata.begin(), rule.metadata.end());
    compiled.residency = rule.residency;
    if (!rule.prompt.empty()) {
      auto regex = PromptRegex::compile(rule.prompt);
      if (!regex) return fail(ErrorCode::invalid_request, key + ".match.prompt: " + regex.error().message);
      compiled.prompt = std::move(*regex);
    }
    if (!rule.model.empty()) {
      compiled.model = catalog.find(rule.model);
      if (compiled.model == nullptr)
        return fail(ErrorCode::invalid_request, key + ".model: '" + rule.model + "' is not in the model catalog");
    }
    if (!rule.tier.empty()) compiled.tier = parse_tier(rule.tier);
    if (!rule.policy.empty()) compiled.policy = policy_named(rule.policy);
    out->rules_.push_back(std::move(compiled));
  }

  const RouteExperimentConfig& experiment = config.experiment;
  if (!experiment.name.empty()) {
    for (std::size_t arm = 0; arm < 2; ++arm) {
      out->arms_[arm] = policy_named(experiment.policies[arm]);
      out->arm_labels_[arm] = experiment.name + ":" + experiment.policies[arm];
    }
    out->experiment_active_ = true;
    out->experiment_name_ = experiment.name;
    out->split_ = experiment.split;
  }
  return std::shared_ptr<const RoutePolicies>(std::move(out));
}

const CompiledRule* RoutePolicies::match(const PromptEvent& event) const {
  for (const CompiledRule& rule : rules_)
    if (rule.matches(event)) return &rule;
  return nullptr;
}

double experiment_position(std::string_view experiment, std::string_view request_id) {
  std::uint64_t h = fnv1a_extend(kFnv1aOffsetBasis, experiment);
  h = fnv1a_extend(h, std::string_view("\0", 1));
  h = splitmix64_finalize(fnv1a_extend(h, request_id));
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

int RoutePolicies::arm_for(std::string_view request_id) const {
  return experiment_position(experiment_name_, request_id) < split_ ? 0 : 1;
}

Result<std::shared_ptr<const RoutePolicies>> compile_route_policies(const RouterConfig& config,
                                                                 const ModelCatalog& catalog) {
  if (config.rules.empty() && config.policies.empty() && config.experiment.name.empty())
    return std::shared_ptr<const RoutePolicies>();
  return RoutePolicies::compile(config, catalog);
}

}  // namespace cascade
