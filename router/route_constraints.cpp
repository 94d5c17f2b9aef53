// Hard constraints (docs/routing.md, "Hard constraints"): what a request
// needs of a model before any scorer picks one.
#include <algorithm>
#include <cstdio>

#include "router/router.h"

namespace cascade {
namespace {

bool is_image_part(const nlohmann::json& part) {
  if (!part.is_object()) return false;
  const auto type = part.find("type");
  if (type == part.end() || !type->is_string()) return false;
  const auto& name = type->get_ref<const std::string&>();
  return name == "image_url" || name == "input_image" || name == "image";
}

bool wants_json(const nlohmann::json& response_format) {
  if (!response_format.is_object()) return false;
  const auto type = response_format.find("type");
  if (type == response_format.end() || !type->is_string()) return false;
  const auto& name = type->get_ref<const std::string&>();
  return name == "json_object" || name == "json_schema";
}

std::string region_list(const std::vector<std::string>& regions) {
  std::string out;
  for (const auto& r : regions) {
    if (!out.empty()) out += ',';
    out += r;
  }
  return out.empty() ? "none" : out;
}

}  // namespace

Result<RouteRequirements> route_requirements(const PromptEvent& event, const RouteContext& context) {
  RouteRequirements needs;
  std::size_t text_bytes = 0;
  if (event.messages.is_array()) {
    for (const auto& message : event.messages) {
      if (!message.is_object()) continue;
      if (const auto role = message.find("role");
          role != message.end() && role->is_string() && role->get_ref<const std::string&>() == "tool")
        needs.capabilities |= kCapabilityTools;
      if (const auto calls = message.find("tool_calls");
          calls != message.end() && calls->is_array() && !calls->empty())
        needs.capabilities |= kCapabilityTools;
      const auto content = message.find("content");
      if (content == message.end()) continue;
      if (content->is_string()) {
        text_bytes += content->get_ref<const std::string&>().size();
      } else if (content->is_array()) {
        for (const auto& part : *content) {
          if (is_image_part(part)) {
            needs.capabilities |= kCapabilityVision;
          } else if (part.is_object()) {
            if (const auto text = part.find("text"); text != part.end() && text->is_string())
              text_bytes += text->get_ref<const std::string&>().size();
          }
        }
      }
    }
  }
  if (event.tools.is_array() && !event.tools.empty()) needs.capabilities |= kCapabilityTools;
  if (wants_json(event.response_format)) needs.capabilities |= kCapabilityJson;

  if (context.input_tokens > 0) {
    needs.input_tokens = context.input_tokens;
  } else {
    // Tool definitions are sent as input too; a rare case, so dumped here.
    if (!event.tools.is_null()) text_bytes += event.tools.dump().size();
    needs.input_tokens = static_cast<std::int64_t>((text_bytes + 3) / 4);
    needs.input_estimated = true;
  }
  const int fallback_max = context.default_max_tokens > 0 ? context.default_max_tokens : RouteContext::kBuiltinDefaultMaxTokens;
  needs.max_tokens = event.max_tokens.value_or(fallback_max);
  needs.max_tokens_explicit = event.max_tokens.has_value();

  if (event.metadata.is_object()) {
    if (const auto residency = event.metadata.find("residency");
        residency != event.metadata.end() && !residency->is_null()) {
      if (!residency->is_string() || residency->get_ref<const std::string&>().empty())
        return fail(ErrorCode::invalid_request,
                    "metadata.residency must be a region name such as \"eu\", got " + residency->dump());
      needs.regions.push_back(residency->get<std::string>());
    }
  }
  return needs;
}

std::string constraint_violation(const ModelInfo& model, const RouteRequirements& needs) {
  char buffer[200];
  // A default max_tokens is no request of the caller's: a model whose output
  // limit is lower gets its own limit (docs/routing.md, "Hard constraints").
  const std::int64_t output =
      needs.max_tokens_explicit ? needs.max_tokens : std::min(needs.max_tokens, model.max_output_tokens);
  const std::int64_t total = needs.input_tokens + output;
  if (total > model.context_window) {
    std::snprintf(buffer, sizeof buffer, "context window %lld < %lld tokens (%s%lld input + %lld max_tokens)",
                  static_cast<long long>(model.context_window), static_cast<long long>(total),
                  needs.input_estimated ? "~" : "", static_cast<long long>(needs.input_tokens),
                  static_cast<long long>(output));
    return buffer;
  }
  if (needs.max_tokens_explicit && needs.max_tokens > model.max_output_tokens) {
    std::snprintf(buffer, sizeof buffer, "max output %lld < max_tokens %lld",
                  static_cast<long long>(model.max_output_tokens), static_cast<long long>(needs.max_tokens));
    return buffer;
  }
  if (!model.has(needs.capabilities)) return "no " + capability_names(needs.capabilities & ~model.capabilities);
  for (const auto& region : needs.regions) {
    if (!model.in_region(region)) return "not in region " + region + " (regions: " + region_list(model.regions) + ")";
  }
  return {};
}

std::string RouteRequirements::describe() const {
  char buffer[96];
  std::snprintf(buffer, sizeof buffer, "tokens %s%lld+%lld%s", input_estimated ? "~" : "",
                static_cast<long long>(input_tokens), static_cast<long long>(max_tokens),
                max_tokens_explicit ? "" : " (default max_tokens)");
  std::string out = buffer;
  if (capabilities != 0) out += " needs " + capability_names(capabilities);
  if (!regions.empty()) out += " residency " + region_list(regions);
  return out;
}

}  // namespace cascade
