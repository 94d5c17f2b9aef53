#include "mcp/mcp_tools.h"

#include <cstdio>
#include <stdexcept>

namespace cascade {
namespace {

using json = nlohmann::json;

// Property schemas several tools share.
json prompt_property() {
  return {{"type", "string"},
          {"minLength", 1},
          {"maxLength", 1000000},
          {"description", "The prompt, sent as one user message. Give this or `messages`, not both."}};
}

json messages_property() {
  return {{"type", "array"},
          {"minItems", 1},
          {"maxItems", 10000},
          {"description",
           "The conversation in OpenAI chat format, e.g. [{\"role\":\"system\",\"content\":\"Answer briefly.\"},"
           "{\"role\":\"user\",\"content\":\"Why is the sky blue?\"}]. Give this or `prompt`, not both."},
          {"items",
           {{"type", "object"},
            {"properties",
             {{"role", {{"type", "string"}, {"enum", {"system", "developer", "user", "assistant", "tool"}}}},
              {"content",
               {{"type", {"string", "array", "null"}},
                {"description", "Text, or OpenAI content parts ([{\"type\":\"text\",\"text\":\"...\"}])"}}}}},
            {"required", {"role"}}}}};
}

json model_property(std::string_view what) {
  return {{"type", "string"},
          {"minLength", 1},
          {"maxLength", 256},
          {"default", "auto"},
          {"description", std::string("\"auto\" (the default) lets Cascade's router pick the cheapest model that can do "
                                      "the job; a catalog model id (check_model_costs lists them) ") +
                              std::string(what)}};
}

json preference_property() {
  return {{"type", "string"},
          {"enum", {"cost", "balanced", "quality", "speed"}},
          {"default", "balanced"},
          {"description", "What routing optimizes for when model is \"auto\"."}};
}

json max_tokens_property() {
  return {{"type", "integer"},
          {"minimum", 1},
          {"maximum", 1000000},
          {"description", "Upper bound on the answer's tokens (default: the deployment's limits.default_max_tokens, "
                          "1024 unless configured)."}};
}

json string_type(std::string_view description) { return {{"type", "string"}, {"description", description}}; }
json number_type(std::string_view description) { return {{"type", "number"}, {"description", description}}; }
json integer_type(std::string_view description) { return {{"type", "integer"}, {"description", description}}; }

json usage_figures_properties() {
  return {{"requests", integer_type("Requests answered")},
          {"cache_hits", integer_type("Requests answered from Cascade's cache")},
          {"cache_hit_rate", number_type("cache_hits / requests")},
          {"cost_usd", number_type("What was spent, USD")},
          {"baseline_cost_usd", number_type("What the baseline model would have cost for the same tokens, USD")},
          {"savings_usd", number_type("baseline_cost_usd - cost_usd")},
          {"savings_percent", number_type("savings_usd as a percentage of baseline_cost_usd")},
          {"input_tokens", integer_type("Prompt tokens billed")},
          {"output_tokens", integer_type("Answer tokens billed")}};
}

json complete_prompt_definition() {
  return {
      {"name", "complete_prompt"},
      {"title", "Answer a prompt through Cascade"},
      {"description",
       "Answers a prompt through Cascade, the LLM cost optimizer: the router sends it to the cheapest model that can "
       "do the job (unless `model` pins one), an identical earlier request is answered from Cascade's cache at no "
       "cost, and the request counts against this session's tenant's budgets. Give either `prompt` (one user "
       "message) or `messages` (a conversation in OpenAI chat format). Returns the answer, and which model answered, "
       "what it cost, what it saved against the baseline model, whether it came from the cache and why it was routed "
       "there."},
      {"inputSchema",
       {{"type", "object"},
        {"properties",
         {{"prompt", prompt_property()},
          {"messages", messages_property()},
          {"model", model_property("pins that model.")},
          {"preference", preference_property()},
          {"max_tokens", max_tokens_property()}}},
        {"additionalProperties", false}}},
      {"outputSchema",
       {{"type", "object"},
        {"properties",
         {{"answer", string_type("The answer's text")},
          {"model", string_type("Catalog id of the model that answered (for a cache hit: the one that produced the "
                                "cached answer)")},
          {"provider", string_type("The provider that answered")},
          {"tier", string_type("The model tier used: small, medium or large")},
          {"cost_usd", number_type("What this request cost, USD; 0 for a cache hit")},
          {"savings_usd", number_type("What baseline_model would have cost for the same tokens, minus cost_usd")},
          {"baseline_model", string_type("The premium model savings are measured against")},
          {"cache", {{"type", "string"}, {"enum", {"miss", "exact", "semantic"}},
                     {"description", "Whether the answer came from Cascade's cache, and which kind of match"}}},
          {"route_reason", string_type("Why the router chose the model")},
          {"finish_reason", string_type("Why the model stopped: stop, length, ...")},
          {"input_tokens", integer_type("Prompt tokens billed")},
          {"output_tokens", integer_type("Answer tokens billed")},
          {"request_id", string_type("Cascade's request id (the ledger's and the reply topic's key)")}}},
        {"required", {"answer", "model", "cost_usd", "cache", "route_reason"}}}},
      {"annotations", {{"readOnlyHint", false}, {"destructiveHint", false}, {"idempotentHint", false},
                       {"openWorldHint", true}}}};
}

json check_model_costs_definition() {
  json row_properties = {
      {"model", string_type("Catalog model id")},
      {"provider", string_type("Provider serving it")},
      {"tier", string_type("small, medium or large")},
      {"input_per_mtok", number_type("USD per 1M input tokens")},
      {"output_per_mtok", number_type("USD per 1M output tokens")},
      {"cached_input_per_mtok", number_type("USD per 1M input tokens read from the provider's prompt cache")},
      {"blended_per_mtok", number_type("(3 x input + output) / 4 per 1M tokens: how Cascade ranks prices")},
      {"context_window", integer_type("Context window, tokens")},
      {"input_tokens", integer_type("With a prompt: its input tokens as this model bills them")},
      {"token_count", {{"type", "string"}, {"enum", {"exact", "estimated", "bytes"}},
                       {"description", "exact: the model's own tokenizer; estimated: o200k_base for another "
                                       "vendor's model; bytes: UTF-8 bytes / 4"}}},
      {"estimated_cost_usd", number_type("With a prompt: input_tokens and expected_output_tokens at this model's "
                                         "prices, USD")},
      {"fits_context", {{"type", "boolean"},
                        {"description", "With a prompt: input and expected output fit the context window"}}}};
  return {
      {"name", "check_model_costs"},
      {"title", "Compare model prices and a prompt's cost"},
      {"description",
       "Lists the models Cascade can route to with their prices per 1M tokens (input, output, cached input) and "
       "tier. With a `prompt` or `messages`, also estimates what that prompt costs on each model (its tokens "
       "counted as each model bills them, plus `expected_output_tokens` of answer) and sorts the models cheapest "
       "first; without one, sorts them by blended price. Makes no model call."},
      {"inputSchema",
       {{"type", "object"},
        {"properties",
         {{"prompt", prompt_property()},
          {"messages", messages_property()},
          {"expected_output_tokens",
           {{"type", "integer"}, {"minimum", 0}, {"maximum", 1000000}, {"default", 500},
            {"description", "Answer tokens to price in (default 500, a typical chat answer)"}}},
          {"tier", {{"type", "string"}, {"enum", {"small", "medium", "large"}},
                    {"description", "Only the models of this tier"}}},
          {"models", {{"type", "array"}, {"minItems", 1}, {"maxItems", 100},
                      {"items", {{"type", "string"}, {"minLength", 1}, {"maxLength", 256}}},
                      {"description", "Only these catalog model ids"}}}}},
        {"additionalProperties", false}}},
      {"outputSchema",
       {{"type", "object"},
        {"properties",
         {{"has_prompt", {{"type", "boolean"}, {"description", "Whether a prompt was priced"}}},
          {"expected_output_tokens", integer_type("Answer tokens priced in")},
          {"price_version", string_type("The catalog's price table")},
          {"baseline_model", string_type("The premium model Cascade measures savings against")},
          {"baseline_cost_usd", number_type("With a prompt: its estimated cost on baseline_model, USD")},
          {"models", {{"type", "array"},
                      {"items", {{"type", "object"},
                                 {"properties", row_properties},
                                 {"required", {"model", "provider", "tier", "input_per_mtok", "output_per_mtok",
                                               "blended_per_mtok"}}}}}}}},
        {"required", {"has_prompt", "models"}}}},
      {"annotations", {{"readOnlyHint", true}, {"openWorldHint", false}}}};
}

json get_recommendation_definition() {
  return {
      {"name", "get_recommendation"},
      {"title", "Explain where Cascade would route a prompt"},
      {"description",
       "Shows where Cascade's router would send a prompt and why, without calling any model: the model, its tier, "
       "the scorer's estimate that a cheaper model answers as well as a strong one, the thresholds of the "
       "preference, the features that drove the score, any rule or policy that applied, and the most the request "
       "could cost. Give either `prompt` or `messages`."},
      {"inputSchema",
       {{"type", "object"},
        {"properties",
         {{"prompt", prompt_property()},
          {"messages", messages_property()},
          {"preference", preference_property()},
          {"model", model_property("checks whether that pinned model can serve the prompt.")},
          {"max_tokens", max_tokens_property()}}},
        {"additionalProperties", false}}},
      {"outputSchema",
       {{"type", "object"},
        {"properties",
         {{"model", string_type("The model the router picks")},
          {"provider", string_type("Its provider")},
          {"tier", string_type("small, medium or large")},
          {"score", number_type("The route score, 0-1: higher needs a stronger model")},
          {"p_weak_ok", number_type("The scorer's probability that the cheaper model answers as well as the strong one")},
          {"reason", string_type("The route reason Cascade's events would carry")},
          {"scorer", string_type("heuristic, learned or knn")},
          {"scorer_description", string_type("What the scorer was trained on")},
          {"preference", string_type("cost, balanced, quality or speed")},
          {"thresholds", {{"type", "object"},
                          {"properties", {{"kind", string_type("complexity (score < small -> small tier) or "
                                                               "probability (p_weak_ok >= small -> small tier)")},
                                          {"small", number_type("The small tier's cut")},
                                          {"medium", number_type("The medium tier's cut")}}},
                          {"required", {"kind", "small", "medium"}}}},
          {"drivers", {{"type", "array"},
                       {"items", {{"type", "object"},
                                  {"properties", {{"feature", string_type("A feature of the prompt")},
                                                  {"contribution", number_type("Its weight in the score")}}},
                                  {"required", {"feature", "contribution"}}}},
                       {"description", "The features that drove the score, largest first"}}},
          {"policy", string_type("A routing rule's policy or an experiment arm, when one decided")},
          {"rule", string_type("The routing rule that matched, if any")},
          {"constraints", string_type("The hard constraints applied (context, capabilities, residency)")},
          {"skipped", {{"type", "array"}, {"items", {{"type", "string"}}},
                       {"description", "Cheaper models passed over for a constraint"}}},
          {"fallbacks", {{"type", "array"}, {"items", {{"type", "string"}}},
                         {"description", "Models tried in order if the chosen one fails"}}},
          {"input_tokens", integer_type("The prompt's input tokens")},
          {"max_tokens", integer_type("The answer's token bound")},
          {"max_cost_usd", number_type("The most the request can cost on the model (input + max_tokens of output), "
                                       "what budgets reserve")},
          {"providers_available", {{"type", "array"}, {"items", {{"type", "string"}}},
                                   {"description", "Providers with their key set here; empty: none is, every "
                                                   "configured provider was assumed available"}}},
          {"explanation", string_type("The decision in words")}}},
        {"required", {"model", "provider", "tier", "reason", "explanation"}}}},
      {"annotations", {{"readOnlyHint", true}, {"openWorldHint", false}}}};
}

json query_usage_definition() {
  json models_item = {{"type", "object"}, {"properties", usage_figures_properties()}, {"required", {"model", "requests"}}};
  models_item["properties"]["model"] = string_type("Catalog model id");
  json properties = usage_figures_properties();
  properties["tenant"] = string_type("This session's tenant");
  properties["from"] = string_type("First UTC day counted, YYYY-MM-DD");
  properties["to"] = string_type("Last UTC day counted, YYYY-MM-DD");
  properties["baseline_model"] = string_type("The premium model savings are measured against");
  properties["models"] = {{"type", "array"}, {"items", models_item}, {"description", "Per model, most requests first"}};
  return {
      {"name", "query_usage"},
      {"title", "This tenant's usage, cost and savings"},
      {"description",
       "Reports this session's tenant's use of Cascade over a period, from Cascade's ledger: requests, what they "
       "cost, what the baseline model would have cost, the savings, the cache hit rate, and the same per model. "
       "Give `days` (the last N UTC days, today included; default 30) or a `from` date with an optional `to` date."},
      {"inputSchema",
       {{"type", "object"},
        {"properties",
         {{"days", {{"type", "integer"}, {"minimum", 1}, {"maximum", 3660},
                    {"description", "The last N UTC days, today included (default 30)"}}},
          {"from", {{"type", "string"}, {"format", "date"}, {"maxLength", 10},
                    {"description", "First UTC day, YYYY-MM-DD"}}},
          {"to", {{"type", "string"}, {"format", "date"}, {"maxLength", 10},
                  {"description", "Last UTC day, YYYY-MM-DD (default today)"}}}}},
        {"additionalProperties", false}}},
      {"outputSchema",
       {{"type", "object"},
        {"properties", properties},
        {"required", {"tenant", "from", "to", "requests", "cost_usd", "savings_usd", "models"}}}},
      {"annotations", {{"readOnlyHint", true}, {"openWorldHint", false}}}};
}

json set_budget_definition() {
  json limit = {{"type", "number"}, {"minimum", 0}, {"maximum", 1e9}};
  json daily = limit, monthly = limit;
  daily["description"] = "USD per UTC day; 0 = no daily limit. Left out: unchanged.";
  monthly["description"] = "USD per UTC month; 0 = no monthly limit. Left out: unchanged.";
  return {
      {"name", "set_budget"},
      {"title", "Set this tenant's spending budget"},
      {"description",
       "Sets a spending budget for this session's tenant, as a whole or for one `model` or one `tag`: USD per UTC "
       "day and per month. Cascade's workers refuse requests that would go over a limit and move requests past "
       "`soft_percent` of it to the cheapest model. Limits left out keep their current value; `clear` removes the "
       "budget set at run time (the configured one, if any, applies again). Takes effect within about a second."},
      {"inputSchema",
       {{"type", "object"},
        {"properties",
         {{"daily_usd", daily},
          {"monthly_usd", monthly},
          {"soft_percent", {{"type", "number"}, {"exclusiveMinimum", 0}, {"maximum", 100},
                            {"description", "Share of a limit past which requests are downgraded to the cheapest "
                                            "model (default 80). Left out: unchanged."}}},
          {"model", {{"type", "string"}, {"minLength", 1}, {"maxLength", 256},
                     {"description", "A budget for this catalog model only"}}},
          {"tag", {{"type", "string"}, {"minLength", 1}, {"maxLength", 128},
                   {"description", "A budget for requests with this tag only (metadata.tags)"}}},
          {"clear", {{"type", "boolean"}, {"description", "Remove the run-time budget of this scope"}}}}},
        {"additionalProperties", false}}},
      {"outputSchema",
       {{"type", "object"},
        {"properties",
         {{"tenant", string_type("This session's tenant")},
          {"scope", string_type("\"\" (the whole tenant), model:<id> or tag:<tag>")},
          {"scope_label", string_type("The scope in words")},
          {"cleared", {{"type", "boolean"}, {"description", "Whether the run-time budget was removed"}}},
          {"daily_usd", number_type("The daily limit now set, USD (0 = none)")},
          {"monthly_usd", number_type("The monthly limit now set, USD (0 = none)")},
          {"soft_percent", number_type("The soft limit, percent of a limit")},
          {"topic", string_type("The Kafka topic the budget was published to")}}},
        {"required", {"tenant", "scope", "cleared", "daily_usd", "monthly_usd", "soft_percent"}}}},
      {"annotations", {{"readOnlyHint", false}, {"destructiveHint", true}, {"idempotentHint", true},
                       {"openWorldHint", false}}}};
}

McpTool make_tool(McpToolKind kind, json definition) {
  auto input = JsonSchema::compile(definition["inputSchema"]);
  if (!input) throw std::logic_error("mcp tool " + definition["name"].get<std::string>() + ": " + input.error().message);
  if (auto output = JsonSchema::compile(definition["outputSchema"]); !output)
    throw std::logic_error("mcp tool " + definition["name"].get<std::string>() + ": " + output.error().message);
  std::string name = definition["name"];
  return McpTool{kind, std::move(name), std::move(definition), std::move(*input)};
}

std::optional<Preference> parse_preference(std::string_view name) {
  for (const Preference p : {Preference::cost, Preference::balanced, Preference::quality, Preference::speed})
    if (to_string(p) == name) return p;
  return std::nullopt;
}

// `prompt` or `messages` as OpenAI messages; an empty array when neither is
// given and `required` is false.
Result<json> messages_of(const json& arguments, bool required) {
  const bool has_prompt = arguments.contains("prompt");
  const bool has_messages = arguments.contains("messages");
  if (has_prompt && has_messages)
    return fail(ErrorCode::invalid_request, "give either 'prompt' or 'messages', not both");
  if (has_prompt) return json::array({{{"role", "user"}, {"content", arguments["prompt"]}}});
  if (has_messages) return arguments["messages"];
  if (required)
    return fail(ErrorCode::invalid_request,
                "missing required argument: give 'prompt' (text) or 'messages' (OpenAI chat messages)");
  return json::array();
}

std::optional<int> optional_int(const json& arguments, const char* name) {
  if (!arguments.contains(name)) return std::nullopt;
  return static_cast<int>(arguments[name].get<double>());  // integral: checked by the schema
}

std::string money(double usd) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, usd != 0 && usd < 0.01 ? "$%.6f" : "$%.2f", usd);
  return buffer;
}

json usage_figures(const UsageFigures& f) {
  return {{"requests", f.requests},
          {"cache_hits", f.cache_hits},
          {"cache_hit_rate", f.cache_hit_rate},
          {"cost_usd", f.cost_usd},
          {"baseline_cost_usd", f.baseline_cost_usd},
          {"savings_usd", f.savings_usd},
          {"savings_percent", f.savings_percent},
          {"input_tokens", f.input_tokens},
          {"output_tokens", f.output_tokens}};
}

}  // namespace

const std::vector<McpTool>& mcp_tools() {
  static const std::vector<McpTool> tools = [] {
    std::vector<McpTool> list;
    list.push_back(make_tool(McpToolKind::complete_prompt, complete_prompt_definition()));
    list.push_back(make_tool(McpToolKind::check_model_costs, check_model_costs_definition()));
    list.push_back(make_tool(McpToolKind::get_recommendation, get_recommendation_definition()));
    list.push_back(make_tool(McpToolKind::query_usage, query_usage_definition()));
    list.push_back(make_tool(McpToolKind::set_budget, set_budget_definition()));
    return list;
  }();
  return tools;
}

const McpTool* find_mcp_tool(std::string_view name) {
  for (const McpTool& tool : mcp_tools())
    if (tool.name == name) return &tool;
  return nullptr;
}

const nlohmann::json& mcp_tool_definitions() {
  static const json definitions = [] {
    json list = json::array();
    for (const McpTool& tool : mcp_tools()) list.push_back(tool.definition);
    return list;
  }();
  return definitions;
}

Result<CompletionRequest> completion_request(const json& arguments) {
  auto messages = messages_of(arguments, true);
  if (!messages) return std::unexpected(messages.error());
  CompletionRequest request;
  request.messages = std::move(*messages);
  request.model = arguments.value("model", "auto");
  request.preference = parse_preference(arguments.value("preference", "balanced")).value_or(Preference::balanced);
  request.max_tokens = optional_int(arguments, "max_tokens");
  return request;
}

Result<CostEstimateRequest> cost_estimate_request(const json& arguments) {
  auto messages = messages_of(arguments, false);
  if (!messages) return std::unexpected(messages.error());
  CostEstimateRequest request;
  request.messages = std::move(*messages);
  if (arguments.contains("expected_output_tokens"))
    request.expected_output_tokens = static_cast<std::int64_t>(arguments["expected_output_tokens"].get<double>());
  if (arguments.contains("tier")) request.tier = parse_tier(arguments["tier"].get<std::string>());
  if (arguments.contains("models")) request.models = arguments["models"].get<std::vector<std::string>>();
  return request;
}

Result<RouteRequest> route_request(const json& arguments) {
  auto messages = messages_of(arguments, true);
  if (!messages) return std::unexpected(messages.error());
  RouteRequest request;
  request.messages = std::move(*messages);
  request.model = arguments.value("model", "auto");
  request.preference = parse_preference(arguments.value("preference", "balanced")).value_or(Preference::balanced);
  request.max_tokens = optional_int(arguments, "max_tokens");
  return request;
}

Result<UsageRequest> usage_request(const json& arguments) {
  const bool has_days = arguments.contains("days");
  const bool has_from = arguments.contains("from");
  const bool has_to = arguments.contains("to");
  if (has_days && (has_from || has_to))
    return fail(ErrorCode::invalid_request, "give either 'days' or 'from' (and 'to'), not both");
  if (has_to && !has_from) return fail(ErrorCode::invalid_request, "'to' needs a 'from' date");
  UsageRequest request;
  if (has_from) {
    request.from = arguments["from"];
    if (has_to) {
      request.to = arguments["to"];
      if (request.from > request.to)  // YYYY-MM-DD sorts in time order
        return fail(ErrorCode::invalid_request,
                    "'from' (" + request.from + ") is after 'to' (" + request.to + ")");
    }
  } else {
    request.from = std::to_string(has_days ? static_cast<int>(arguments["days"].get<double>()) : 30) + "d";
  }
  return request;
}

Result<BudgetChange> budget_change(const json& arguments) {
  BudgetChange change;
  change.model = arguments.value("model", "");
  change.tag = arguments.value("tag", "");
  if (arguments.contains("daily_usd")) change.daily_usd = arguments["daily_usd"].get<double>();
  if (arguments.contains("monthly_usd")) change.monthly_usd = arguments["monthly_usd"].get<double>();
  if (arguments.contains("soft_percent")) change.soft_percent = arguments["soft_percent"].get<double>();
  change.clear = arguments.value("clear", false);
  if (!change.model.empty() && !change.tag.empty())
    return fail(ErrorCode::invalid_request, "a budget is for the tenant, one 'model' or one 'tag', not both");
  const bool sets = change.daily_usd || change.monthly_usd || change.soft_percent;
  if (change.clear && sets)
    return fail(ErrorCode::invalid_request, "'clear' removes the budget: give it without daily_usd, monthly_usd or soft_percent");
  if (!change.clear && !sets)
    return fail(ErrorCode::invalid_request, "nothing to set: give daily_usd, monthly_usd and/or soft_percent, or clear: true");
  return change;
}

json structured_result(const CompletionAnswer& answer) {
  const FinalReply& r = answer.reply;
  json out = {{"answer", r.content},
              {"model", r.model},
              {"provider", r.provider},
              {"tier", r.route.tier},
              {"cost_usd", r.cost_usd},
              {"cache", std::string(to_string(r.cache))},
              {"route_reason", r.route.reason},
              {"finish_reason", r.finish_reason},
              {"input_tokens", r.usage.input_tokens},
              {"output_tokens", r.usage.output_tokens},
              {"request_id", r.id}};
  if (answer.savings_usd) {
    out["savings_usd"] = *answer.savings_usd;
    out["baseline_model"] = answer.baseline_model;
  }
  return out;
}

json structured_result(const CostEstimate& estimate) {
  json rows = json::array();
  for (const ModelCostEstimate& m : estimate.models) {
    json row = {{"model", m.model},
                {"provider", m.provider},
                {"tier", std::string(to_string(m.tier))},
                {"input_per_mtok", m.input_per_mtok},
                {"output_per_mtok", m.output_per_mtok},
                {"cached_input_per_mtok", m.cached_input_per_mtok},
                {"blended_per_mtok", m.blended_per_mtok},
                {"context_window", m.context_window}};
    if (estimate.has_prompt) {
      row["input_tokens"] = m.input_tokens;
      row["token_count"] = std::string(to_string(m.count_method));
      row["estimated_cost_usd"] = m.estimated_cost_usd;
      row["fits_context"] = m.fits_context;
    }
    rows.push_back(std::move(row));
  }
  json out = {{"has_prompt", estimate.has_prompt},
              {"expected_output_tokens", estimate.expected_output_tokens},
              {"price_version", estimate.price_version},
              {"baseline_model", estimate.baseline_model},
              {"models", std::move(rows)}};
  if (estimate.has_prompt) out["baseline_cost_usd"] = estimate.baseline_cost_usd;
  return out;
}

json structured_result(const RouteRecommendation& r) {
  json drivers = json::array();
  for (const auto& [feature, contribution] : r.drivers)
    drivers.push_back({{"feature", feature}, {"contribution", contribution}});
  // The decision in words, as `cascade route --explain` would put it.
  std::string explanation = r.model + " (" + r.provider + ", " + std::string(to_string(r.tier)) + " tier): " + r.reason +
                            ". Scorer " + r.scorer;
  char figures[256];
  std::snprintf(figures, sizeof figures, ": p_weak_ok %.4f%s; thresholds (%s): ", r.p_weak_ok,
                r.scorer == "heuristic" ? " (1 - complexity, a ranking, not calibrated)" : "",
                std::string(to_string(r.preference)).c_str());
  explanation += figures;
  if (r.threshold_kind == "complexity") {
    std::snprintf(figures, sizeof figures, "complexity < %.2f small, < %.2f medium, else large", r.small_threshold,
                  r.medium_threshold);
  } else {
    std::snprintf(figures, sizeof figures, "p_weak_ok >= %.2f small, >= %.2f medium, else large", r.small_threshold,
                  r.medium_threshold);
  }
  explanation += figures;
  if (!r.policy.empty()) explanation += " (policy " + r.policy + " decided with its own)";
  if (!r.drivers.empty()) {
    explanation += ". Largest drivers:";
    for (std::size_t i = 0; i < r.drivers.size() && i < 3; ++i) {
      std::snprintf(figures, sizeof figures, "%s %s %+.4f", i ? "," : "", r.drivers[i].first.c_str(),
                    r.drivers[i].second);
      explanation += figures;
    }
  }
  explanation += ". At most " + money(r.max_cost_usd) + " with " + std::to_string(r.max_tokens) + " output tokens.";
  json out = {{"model", r.model},
              {"provider", r.provider},
              {"tier", std::string(to_string(r.tier))},
              {"score", r.score},
              {"p_weak_ok", r.p_weak_ok},
              {"reason", r.reason},
              {"scorer", r.scorer},
              {"scorer_description", r.scorer_description},
              {"preference", std::string(to_string(r.preference))},
              {"thresholds", {{"kind", r.threshold_kind}, {"small", r.small_threshold}, {"medium", r.medium_threshold}}},
              {"drivers", std::move(drivers)},
              {"constraints", r.constraints},
              {"skipped", r.skipped},
              {"fallbacks", r.fallbacks},
              {"input_tokens", r.input_tokens},
              {"max_tokens", r.max_tokens},
              {"max_cost_usd", r.max_cost_usd},
              {"providers_available", r.providers_available},
              {"explanation", std::move(explanation)}};
  if (!r.policy.empty()) out["policy"] = r.policy;
  if (!r.rule.empty()) out["rule"] = r.rule;
  return out;
}

json structured_result(const UsageSummary& usage) {
  json out = usage_figures(usage.totals);
  out["tenant"] = usage.tenant;
  out["from"] = usage.from_day;
  out["to"] = usage.to_day;
  out["baseline_model"] = usage.baseline_model;
  json models = json::array();
  for (const UsageFigures& m : usage.models) {
    json row = usage_figures(m);
    row["model"] = m.key;
    models.push_back(std::move(row));
  }
  out["models"] = std::move(models);
  return out;
}

json structured_result(const BudgetSetting& setting) {
  std::string label = setting.scope.empty() ? "tenant" : setting.scope;
  if (setting.scope.starts_with("model:")) label = "model " + setting.scope.substr(6);
  if (setting.scope.starts_with("tag:")) label = "tag " + setting.scope.substr(4);
  return {{"tenant", setting.tenant},
          {"scope", setting.scope},
          {"scope_label", label},
          {"cleared", setting.cleared},
          {"daily_usd", setting.daily_usd},
          {"monthly_usd", setting.monthly_usd},
          {"soft_percent", setting.soft_percent},
          {"topic", setting.topic}};
}

}  // namespace cascade
