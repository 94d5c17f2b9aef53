// What the tools compute, shared by every McpBackend (mcp/mcp.h, "the
// tools' own computations").
#include <algorithm>
#include <cstdio>
#include <map>

#include "budgets/budgets.h"
#include "config/config.h"
#include "mcp/mcp.h"
#include "tokenizer/tokenizer.h"

namespace cascade {
namespace {

using json = nlohmann::json;

constexpr std::size_t kMaxDrivers = 8;

std::string url_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if ((u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') || u == '-' || u == '_' ||
        u == '.' || u == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

// Which tokenizer a model is counted with: counts are shared by models of one encoding.
int encoding_key(const ModelInfo& model) {
  const auto encoding = openai_encoding_for(model.upstream_model);
  if (!encoding) return 2;  // another vendor's: estimated with o200k_base
  return *encoding == TokenEncoding::cl100k_base ? 0 : 1;
}

UsageFigures read_figures(const json& j, std::string key) {
  UsageFigures f;
  f.key = std::move(key);
  f.requests = j.value("requests", std::uint64_t{0});
  f.cache_hits = j.value("cache_hits", std::uint64_t{0});
  f.cache_hit_rate = j.value("cache_hit_rate", 0.0);
  f.cost_usd = j.value("cost_usd", 0.0);
  f.baseline_cost_usd = j.value("baseline_cost_usd", 0.0);
  f.savings_usd = j.value("savings_usd", 0.0);
  f.savings_percent = j.value("savings_percent", 0.0);
  f.input_tokens = j.value("input_tokens", std::uint64_t{0});
  f.output_tokens = j.value("output_tokens", std::uint64_t{0});
  return f;
}

}  // namespace

PromptEvent completion_prompt_event(const McpCaller& caller, const CompletionRequest& request, std::string id,
                                    std::string reply_to) {
  PromptEvent event;
  event.id = std::move(id);
  event.tenant = caller.tenant;
  event.reply_to = std::move(reply_to);
  event.messages = request.messages;
  event.model = request.model;
  event.preference = request.preference;
  event.max_tokens = request.max_tokens;
  event.stream = false;  // the tool returns the whole answer: no chunk events to read
  event.cache = CacheMode::exact;
  event.metadata = {{"source", "mcp"}};
  return event;
}

CompletionAnswer completion_answer(FinalReply reply, const ModelCatalog& catalog) {
  CompletionAnswer answer;
  const ModelInfo& baseline = catalog.baseline();
  answer.savings_usd = cost_usd(baseline.price, reply.usage) - reply.cost_usd;
  answer.baseline_model = baseline.id;
  answer.reply = std::move(reply);
  return answer;
}

Result<CostEstimate> estimate_model_costs(const ModelCatalog& catalog, const TokenCounter* tokens,
                                          const CostEstimateRequest& request) {
  std::vector<const ModelInfo*> chosen;
  if (!request.models.empty()) {
    for (const std::string& id : request.models) {
      const ModelInfo* model = catalog.find(id);
      if (!model)
        return fail(ErrorCode::invalid_request,
                    "unknown model '" + id + "' in 'models': name catalog ids as check_model_costs lists them");
      if (std::ranges::find(chosen, model) == chosen.end()) chosen.push_back(model);
    }
  } else {
    for (const ModelInfo& model : catalog.models()) chosen.push_back(&model);
  }
  if (request.tier) std::erase_if(chosen, [&](const ModelInfo* m) { return m->tier != *request.tier; });

  CostEstimate estimate;
  estimate.has_prompt = !request.messages.empty();
  estimate.expected_output_tokens = request.expected_output_tokens;
  estimate.price_version = catalog.price_version();
  estimate.baseline_model = catalog.baseline().id;
  const auto bytes_only = TokenCounter::bytes_only();
  const TokenCounter& counter = tokens ? *tokens : *bytes_only;
  std::map<int, TokenCount> counted;  // by encoding_key
  auto count = [&](const ModelInfo& model) {
    const int key = encoding_key(model);
    auto it = counted.find(key);
    if (it == counted.end()) it = counted.emplace(key, counter.count_messages(model.upstream_model, request.messages)).first;
    return it->second;
  };
  auto priced = [&](const ModelInfo& model, std::int64_t input_tokens) {
    TokenUsage usage;
    usage.input_tokens = input_tokens;
    usage.output_tokens = request.expected_output_tokens;
    return cost_usd(model.price, usage);
  };
  for (const ModelInfo* model : chosen) {
    ModelCostEstimate row;
    row.model = model->id;
    row.provider = model->provider;
    row.tier = model->tier;
    row.input_per_mtok = model->price.input_per_mtok;
    row.output_per_mtok = model->price.output_per_mtok;
    row.cached_input_per_mtok = model->price.cached_input_per_mtok;
    row.blended_per_mtok = blended_price(*model);
    row.context_window = model->context_window;
    if (estimate.has_prompt) {
      const TokenCount c = count(*model);
      row.input_tokens = static_cast<std::int64_t>(c.tokens);
      row.count_method = c.method;
      row.estimated_cost_usd = priced(*model, row.input_tokens);
      row.fits_context = model->context_window <= 0 ||
                         row.input_tokens + request.expected_output_tokens <= model->context_window;
    }
    estimate.models.push_back(std::move(row));
  }
  if (estimate.has_prompt)
    estimate.baseline_cost_usd = priced(catalog.baseline(), static_cast<std::int64_t>(count(catalog.baseline()).tokens));
  std::ranges::stable_sort(estimate.models, [&](const ModelCostEstimate& a, const ModelCostEstimate& b) {
    if (estimate.has_prompt && a.estimated_cost_usd != b.estimated_cost_usd)
      return a.estimated_cost_usd < b.estimated_cost_usd;
    if (a.blended_per_mtok != b.blended_per_mtok) return a.blended_per_mtok < b.blended_per_mtok;
    return a.model < b.model;
  });
  return estimate;
}

// ------------------------------------------------------------ RouteAdvisor ----

struct RouteAdvisor::Parts {
  RouterConfig config;
  const ModelCatalog* catalog = nullptr;
  std::shared_ptr<const RouteScorer> scorer;
  std::shared_ptr<const TokenCounter> tokens;
  int default_max_tokens = RouteContext::kBuiltinDefaultMaxTokens;
  std::vector<std::string> available;  // empty with assume_all
  bool assume_all = false;
  ProviderAvailable given;
  std::unique_ptr<Router> router;
};

RouteAdvisor::RouteAdvisor(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}
RouteAdvisor::~RouteAdvisor() = default;

Result<std::unique_ptr<RouteAdvisor>> RouteAdvisor::create(const Config& config, const ModelCatalog& catalog,
                                                           std::shared_ptr<const TokenCounter> tokens,
                                                           ProviderAvailable available) {
  auto parts = std::make_unique<Parts>();
  parts->config = config.router;
  parts->catalog = &catalog;
  parts->tokens = tokens ? std::move(tokens) : TokenCounter::bytes_only();
  parts->default_max_tokens = config.limits.default_max_tokens;
  auto scorer = load_route_scorer(config.router);
  if (!scorer) return std::unexpected(scorer.error());
  parts->scorer = *scorer;
  auto policies = compile_route_policies(config.router, catalog);
  if (!policies) return std::unexpected(policies.error());
  if (available) {
    parts->given = std::move(available);
    for (const auto& [name, provider] : config.providers)
      if (parts->given(name)) parts->available.push_back(name);
  } else {
    // As `cascade route` sees them: configured, with their key set here.
    const EnvLookup env = process_env();
    for (const auto& [name, provider] : config.providers) {
      if (provider.api_key_env.empty()) {
        parts->available.push_back(name);
      } else if (auto key = env(provider.api_key_env); key && !key->empty()) {
        parts->available.push_back(name);
      }
    }
    parts->assume_all = parts->available.empty();
  }
  const Parts* p = parts.get();
  parts->router = std::make_unique<Router>(
      parts->config, catalog,
      [p](std::string_view provider) {
        if (p->given) return p->given(provider);
        return p->assume_all || std::ranges::find(p->available, provider) != p->available.end();
      },
      parts->scorer, *policies);
  return std::unique_ptr<RouteAdvisor>(new RouteAdvisor(std::move(parts)));
}

Result<RouteRecommendation> RouteAdvisor::recommend(const McpCaller& caller, const RouteRequest& request) const {
  const Parts& p = *parts_;
  PromptEvent event;
  event.id = "mcp-recommendation";  // an experiment's arm is a hash of the id: a real request may draw the other
  event.tenant = caller.tenant;
  event.messages = request.messages;
  event.model = request.model;
  event.preference = request.preference;
  event.max_tokens = request.max_tokens;
  RouteContext context;
  context.default_max_tokens = p.default_max_tokens;
  context.explain = true;
  context.input_tokens = static_cast<std::int64_t>(p.tokens->count_messages("", event.messages).tokens);
  auto decision = p.router->route(event, context);
  if (!decision) return std::unexpected(decision.error());
  const bool heuristic = p.scorer->kind() == ScorerKind::heuristic;
  // Scored as the router scored it (the heuristic's length from the token count).
  const RouteScore score = heuristic ? heuristic_route_score(event.messages, context.input_tokens)
                                     : p.scorer->score(event.messages, true);

  RouteRecommendation r;
  r.model = decision->model->id;
  r.provider = decision->model->provider;
  r.tier = decision->tier;
  r.score = decision->score;
  r.p_weak_ok = score.p_weak_ok;
  r.reason = decision->reason;
  r.scorer = std::string(to_string(p.scorer->kind()));
  r.scorer_description = p.scorer->description();
  r.preference = request.preference;
  if (heuristic) {
    const TierThresholds& t = request.preference == Preference::cost      ? p.config.cost
                              : request.preference == Preference::quality ? p.config.quality
                              : request.preference == Preference::speed   ? p.config.speed
                                                                          : p.config.balanced;
    r.threshold_kind = "complexity";
    r.small_threshold = t.small_max;
    r.medium_threshold = t.medium_max;
  } else {
    const ProbabilityThresholds& t = request.preference == Preference::cost      ? p.config.cost_p
                                     : request.preference == Preference::quality ? p.config.quality_p
                                     : request.preference == Preference::speed   ? p.config.speed_p
                                                                                 : p.config.balanced_p;
    r.threshold_kind = "probability";
    r.small_threshold = t.small_min;
    r.medium_threshold = t.medium_min;
  }
  for (std::size_t i = 0; i < score.drivers.size() && i < kMaxDrivers; ++i) r.drivers.push_back(score.drivers[i]);
  r.policy = decision->policy;
  r.rule = decision->rule;
  r.constraints = decision->constraints;
  r.skipped = decision->skipped;
  for (const ModelInfo* fallback : decision->fallbacks) r.fallbacks.push_back(fallback->id);
  r.input_tokens = context.input_tokens;
  r.max_tokens = request.max_tokens ? *request.max_tokens : p.default_max_tokens;
  TokenUsage usage;
  usage.input_tokens = r.input_tokens;
  usage.output_tokens = r.max_tokens;
  r.max_cost_usd = cost_usd(decision->model->price, usage);
  if (!p.assume_all) r.providers_available = p.available;
  return r;
}

// ------------------------------------------------------------ set_budget ----

Result<BudgetRecord> budget_record(const McpCaller& caller, const BudgetChange& change, const BudgetBook& current,
                                   const ModelCatalog& catalog, std::string topic, std::int64_t now_ms) {
  if (!change.model.empty() && !change.tag.empty())
    return fail(ErrorCode::invalid_request, "a budget is for the tenant, one 'model' or one 'tag', not both");
  std::string scope;
  if (!change.model.empty()) {
    if (!catalog.find(change.model))
      return fail(ErrorCode::invalid_request, "model '" + change.model + "' is not in the model catalog");
    scope = model_scope(change.model);
  } else if (!change.tag.empty()) {
    scope = tag_scope(change.tag);
  }
  for (const auto& [name, value] : {std::pair{"daily_usd", change.daily_usd}, std::pair{"monthly_usd", change.monthly_usd}})
    if (value && !(*value >= 0))
      return fail(ErrorCode::invalid_request, std::string("'") + name + "' must be at least 0");
  if (change.soft_percent && !(*change.soft_percent > 0 && *change.soft_percent <= 100))
    return fail(ErrorCode::invalid_request, "'soft_percent' must be in (0, 100]");
  const bool sets = change.daily_usd || change.monthly_usd || change.soft_percent;
  if (change.clear == sets)
    return fail(ErrorCode::invalid_request,
                change.clear ? "'clear' removes the budget: give it without limits"
                             : "nothing to set: give daily_usd, monthly_usd and/or soft_percent, or clear: true");

  BudgetRecord record;
  record.key = budget_record_key(caller.tenant, scope);
  BudgetSetting& setting = record.setting;
  setting.tenant = caller.tenant;
  setting.scope = scope;
  setting.topic = std::move(topic);
  BudgetLimits limits;
  if (change.clear) {
    setting.cleared = true;
    limits = current.configured_limits(caller.tenant, scope).value_or(BudgetLimits{});
  } else {
    // Limits left out keep their value, so the record is whole.
    limits = current.limits(caller.tenant, scope).value_or(BudgetLimits{});
    if (change.daily_usd) limits.daily_usd = *change.daily_usd;
    if (change.monthly_usd) limits.monthly_usd = *change.monthly_usd;
    if (change.soft_percent) limits.soft_percent = *change.soft_percent;
    record.value = encode_budget_record(Budget{caller.tenant, scope, limits}, now_ms);
  }
  setting.daily_usd = limits.daily_usd;
  setting.monthly_usd = limits.monthly_usd;
  setting.soft_percent = limits.soft_percent;
  return record;
}

// ----------------------------------------------------------- query_usage ----

std::string ledger_usage_url(std::string_view ledger_base_url, const McpCaller& caller, const UsageRequest& request) {
  std::string url(ledger_base_url);
  while (!url.empty() && url.back() == '/') url.pop_back();
  url += "/api/usage?tenant=" + url_encode(caller.tenant) + "&group_by=model";
  if (!request.from.empty()) url += "&from=" + url_encode(request.from);
  if (!request.to.empty()) url += "&to=" + url_encode(request.to);
  return url;
}

Result<UsageSummary> parse_ledger_usage(std::string_view body, const McpCaller& caller) {
  const json j = json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("totals") || !j["totals"].is_object() || !j.contains("rows") ||
      !j["rows"].is_array())
    return fail(ErrorCode::internal, "the ledger's /api/usage reply has no totals and rows");
  // The ledger answers for any tenant asked; a reply for another one is a bug, never shown.
  if (j.value("tenant", json()) != json(caller.tenant))
    return fail(ErrorCode::internal, "the ledger's /api/usage reply is not for tenant " + caller.tenant);
  try {
    UsageSummary summary;
    summary.tenant = caller.tenant;
    summary.from_day = j.value("from", "");
    summary.to_day = j.value("to", "");
    summary.baseline_model = j.value("baseline_model", "");
    summary.totals = read_figures(j["totals"], "");
    for (const json& row : j["rows"]) summary.models.push_back(read_figures(row, row.value("key", "")));
    return summary;
  } catch (const json::exception& e) {
    return fail(ErrorCode::internal, std::string("the ledger's /api/usage reply is malformed: ") + e.what());
  }
}

}  // namespace cascade
