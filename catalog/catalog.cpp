#include "catalog/catalog.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

namespace cascade {
namespace {

constexpr std::array<std::string_view, 15> kModelKeys = {
    "id",   "provider",       "upstream_model",  "tier",
    "context_window", "max_output_tokens", "input_per_mtok", "output_per_mtok",
    "cached_input_per_mtok", "cache_write_per_mtok", "batch_input_per_mtok", "batch_output_per_mtok",
    "legacy", "capabilities", "regions",
};

constexpr std::array<Capability, 3> kCapabilities = {kCapabilityTools, kCapabilityVision, kCapabilityJson};

// A list of non-empty strings (capabilities, regions), or a message naming `where`.
Result<std::vector<std::string>> string_list(const YAML::Node& node, const std::string& where) {
  if (!node.IsSequence()) return fail(ErrorCode::invalid_request, where + " must be a list of strings");
  std::vector<std::string> out;
  for (const auto& item : node) {
    if (!item.IsScalar() || item.Scalar().empty())
      return fail(ErrorCode::invalid_request, where + " must be a list of non-empty strings");
    out.push_back(item.Scalar());
  }
  return out;
}

// Every parse error names the model (by id when known, else by position) and the key.
class ModelReader {
 public:
  ModelReader(const YAML::Node& node, std::size_t index) : node_(node) {
    label_ = "models[" + std::to_string(index) + "]";
  }

  void name(const std::string& id) { label_ += " (" + id + ")"; }

  bool has(const char* key) const {
    const YAML::Node n = node_[key];
    return n.IsDefined() && !n.IsNull();
  }

  Result<std::string> text(const char* key) const {
    if (!has(key)) return missing(key);
    const YAML::Node n = node_[key];
    if (!n.IsScalar() || n.Scalar().empty())
      return fail(ErrorCode::invalid_request, where(key) + " must be a non-empty string");
    return n.Scalar();
  }

  Result<std::int64_t> positive_integer(const char* key) const {
    if (!has(key)) return missing(key);
    std::int64_t value = 0;
    try {
      value = node_[key].as<std::int64_t>();
    } catch (const YAML::Exception&) {
      return fail(ErrorCode::invalid_request, where(key) + " must be an integer");
    }
    if (value <= 0) return fail(ErrorCode::invalid_request, where(key) + " must be > 0");
    return value;
  }

  Result<double> price(const char* key) const {
    if (!has(key)) return missing(key);
    double value = 0;
    try {
      value = node_[key].as<double>();
    } catch (const YAML::Exception&) {
      return fail(ErrorCode::invalid_request, where(key) + " must be a number");
    }
    if (!std::isfinite(value) || value < 0)
      return fail(ErrorCode::invalid_request, where(key) + " must be a finite price >= 0");
    return value;
  }

  // A misspelt optional key (say "cached_input_per_mtoks") would otherwise be
  // ignored silently and bill cached tokens at the full price.
  Result<void> no_unknown_keys() const {
    for (const auto& kv : node_) {
      const std::string key = kv.first.as<std::string>();
      if (std::find(kModelKeys.begin(), kModelKeys.end(), key) == kModelKeys.end())
        return fail(ErrorCode::invalid_request, label_ + ": unknown key '" + key + "'");
    }
    return {};
  }

  const std::string& label() const { return label_; }

 private:
  std::string where(const char* key) const { return label_ + ": '" + key + "'"; }
  std::unexpected<Error> missing(const char* key) const {
    return fail(ErrorCode::invalid_request, label_ + ": missing '" + key + "'");
  }

  const YAML::Node& node_;
  std::string label_;
};

Result<ModelInfo> parse_model(const YAML::Node& node, std::size_t index) {
  ModelReader reader(node, index);
  if (!node.IsMap()) return fail(ErrorCode::invalid_request, reader.label() + " must be a map");

  ModelInfo model;
  auto id = reader.text("id");
  if (!id) return std::unexpected(id.error());
  model.id = std::move(*id);
  reader.name(model.id);
  if (auto ok = reader.no_unknown_keys(); !ok) return std::unexpected(ok.error());

  auto provider = reader.text("provider");
  if (!provider) return std::unexpected(provider.error());
  model.provider = std::move(*provider);

  // Most providers' API name equals the catalog id, so it may be left out.
  if (reader.has("upstream_model")) {
    auto upstream = reader.text("upstream_model");
    if (!upstream) return std::unexpected(upstream.error());
    model.upstream_model = std::move(*upstream);
  } else {
    model.upstream_model = model.id;
  }

  auto tier_text = reader.text("tier");
  if (!tier_text) return std::unexpected(tier_text.error());
  const auto tier = parse_tier(*tier_text);
  if (!tier)
    return fail(ErrorCode::invalid_request, reader.label() + ": unknown tier '" + *tier_text +
                                                "' (expected small, medium or large)");
  model.tier = *tier;

  auto context = reader.positive_integer("context_window");
  if (!context) return std::unexpected(context.error());
  model.context_window = *context;
  auto max_output = reader.positive_integer("max_output_tokens");
  if (!max_output) return std::unexpected(max_output.error());
  model.max_output_tokens = *max_output;

  auto input = reader.price("input_per_mtok");
  if (!input) return std::unexpected(input.error());
  auto output = reader.price("output_per_mtok");
  if (!output) return std::unexpected(output.error());
  model.price.input_per_mtok = *input;
  model.price.output_per_mtok = *output;
  // No cache price = the provider gives no discount for cached input.
  model.price.cached_input_per_mtok = *input;
  if (reader.has("cached_input_per_mtok")) {
    auto cached = reader.price("cached_input_per_mtok");
    if (!cached) return std::unexpected(cached.error());
    model.price.cached_input_per_mtok = *cached;
  }
  // No cache-write price = writing to the cache costs what input costs.
  model.price.cache_write_per_mtok = *input;
  if (reader.has("cache_write_per_mtok")) {
    auto write = reader.price("cache_write_per_mtok");
    if (!write) return std::unexpected(write.error());
    model.price.cache_write_per_mtok = *write;
  }
  // No batch price = the batch API gives no discount.
  model.price.batch_input_per_mtok = *input;
  model.price.batch_output_per_mtok = *output;
  if (reader.has("batch_input_per_mtok")) {
    auto batch = reader.price("batch_input_per_mtok");
    if (!batch) return std::unexpected(batch.error());
    model.price.batch_input_per_mtok = *batch;
  }
  if (reader.has("batch_output_per_mtok")) {
    auto batch = reader.price("batch_output_per_mtok");
    if (!batch) return std::unexpected(batch.error());
    model.price.batch_output_per_mtok = *batch;
  }
  if (reader.has("legacy")) {
    try {
      model.legacy = node["legacy"].as<bool>();
    } catch (const YAML::Exception&) {
      return fail(ErrorCode::invalid_request, reader.label() + ": 'legacy' must be true or false");
    }
  }
  if (node["capabilities"].IsDefined()) {
    // Present (even empty) = declared: only what is listed.
    auto names = string_list(node["capabilities"], reader.label() + ": 'capabilities'");
    if (!names) return std::unexpected(names.error());
    model.capabilities = 0;
    for (const auto& name : *names) {
      const auto capability = parse_capability(name);
      if (!capability)
        return fail(ErrorCode::invalid_request, reader.label() + ": unknown capability '" + name +
                                                    "' (expected tools, vision or json)");
      model.capabilities |= *capability;
    }
  }
  if (reader.has("regions")) {
    auto regions = string_list(node["regions"], reader.label() + ": 'regions'");
    if (!regions) return std::unexpected(regions.error());
    model.regions = std::move(*regions);
  }
  return model;
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(ErrorCode::invalid_request, "cannot read model catalog " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

std::string_view to_string(Tier tier) {
  switch (tier) {
    case Tier::small: return "small";
    case Tier::medium: return "medium";
    case Tier::large: return "large";
  }
  return "medium";
}

std::string_view capability_name(Capability capability) {
  switch (capability) {
    case kCapabilityTools: return "tools";
    case kCapabilityVision: return "vision";
    case kCapabilityJson: return "json";
  }
  return "unknown";
}

std::optional<Capability> parse_capability(std::string_view name) {
  for (const Capability c : kCapabilities)
    if (capability_name(c) == name) return c;
  return std::nullopt;
}

std::string capability_names(std::uint32_t capabilities) {
  std::string out;
  for (const Capability c : kCapabilities) {
    if ((capabilities & c) == 0) continue;
    if (!out.empty()) out += ',';
    out += capability_name(c);
  }
  return out;
}

bool ModelInfo::in_region(std::string_view region) const {
  return std::ranges::find(regions, region) != regions.end();
}

std::optional<Tier> parse_tier(std::string_view text) {
  if (text == "small") return Tier::small;
  if (text == "medium") return Tier::medium;
  if (text == "large") return Tier::large;
  return std::nullopt;
}

Result<ModelCatalog> ModelCatalog::from_yaml(std::string_view yaml_text) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    return fail(ErrorCode::invalid_request, std::string("model catalog: invalid YAML: ") + e.what());
  }
  if (!root.IsMap()) return fail(ErrorCode::invalid_request, "model catalog: expected a map at the top");

  ModelCatalog catalog;
  const YAML::Node version = root["price_version"];
  if (!version.IsDefined() || !version.IsScalar() || version.Scalar().empty())
    return fail(ErrorCode::invalid_request, "model catalog: missing 'price_version'");
  catalog.price_version_ = version.Scalar();

  const YAML::Node models = root["models"];
  if (!models.IsDefined() || !models.IsSequence() || models.size() == 0)
    return fail(ErrorCode::invalid_request, "model catalog: 'models' must be a non-empty list");

  // provider_regions: {<provider>: [<region>, ...]}: where each provider
  // processes data, for models without `regions` of their own.
  std::map<std::string, std::vector<std::string>> provider_regions;
  if (const YAML::Node regions = root["provider_regions"]; regions.IsDefined() && !regions.IsNull()) {
    if (!regions.IsMap())
      return fail(ErrorCode::invalid_request, "model catalog: 'provider_regions' must be a map of provider -> list");
    for (const auto& kv : regions) {
      const std::string provider = kv.first.as<std::string>();
      auto list = string_list(kv.second, "model catalog: 'provider_regions." + provider + "'");
      if (!list) return std::unexpected(list.error());
      provider_regions[provider] = std::move(*list);
    }
  }

  catalog.models_.reserve(models.size());
  try {
    for (std::size_t i = 0; i < models.size(); ++i) {
      auto model = parse_model(models[i], i);
      if (!model) {
        auto error = model.error();
        error.message = "model catalog: " + error.message;
        return std::unexpected(std::move(error));
      }
      if (model->regions.empty()) {
        if (auto it = provider_regions.find(model->provider); it != provider_regions.end())
          model->regions = it->second;
      }
      catalog.models_.push_back(std::move(*model));
    }
  } catch (const YAML::Exception& e) {
    return fail(ErrorCode::invalid_request, std::string("model catalog: ") + e.what());
  }

  // Sorted by id so find() is a binary search: it runs once per request.
  std::ranges::sort(catalog.models_, {}, &ModelInfo::id);
  const auto duplicate = std::ranges::adjacent_find(catalog.models_, {}, &ModelInfo::id);
  if (duplicate != catalog.models_.end())
    return fail(ErrorCode::invalid_request, "model catalog: duplicate model id '" + duplicate->id + "'");
  const auto legacy = std::ranges::stable_partition(catalog.models_, [](const ModelInfo& m) { return !m.legacy; });
  catalog.legacy_.assign(std::make_move_iterator(legacy.begin()), std::make_move_iterator(legacy.end()));
  catalog.models_.erase(legacy.begin(), legacy.end());
  if (catalog.models_.empty())
    return fail(ErrorCode::invalid_request, "model catalog: every model is legacy; at least one must be routable");
  return catalog;
}

Result<ModelCatalog> ModelCatalog::load(const CatalogConfig& config) {
  Result<ModelCatalog> catalog;
  if (config.file.empty()) {
    catalog = from_yaml(default_models_yaml());
  } else {
    auto text = read_file(config.file);
    if (!text) return std::unexpected(text.error());
    catalog = from_yaml(*text);
    if (!catalog) catalog.error().message = config.file + ": " + catalog.error().message;
  }
  if (!catalog) return catalog;

  const auto& models = catalog->models_;
  const auto baseline = std::ranges::find(models, config.baseline_model, &ModelInfo::id);
  if (baseline == models.end())
    return fail(ErrorCode::invalid_request,
                "catalog.baseline_model '" + config.baseline_model + "' is not in the model catalog");
  catalog->baseline_index_ = static_cast<std::size_t>(baseline - models.begin());
  return catalog;
}

const ModelInfo* ModelCatalog::find(std::string_view id) const {
  for (const auto* list : {&models_, &legacy_}) {
    const auto it = std::ranges::lower_bound(*list, id, {}, [](const ModelInfo& m) {
      return std::string_view(m.id);
    });
    if (it != list->end() && it->id == id) return &*it;
  }
  return nullptr;
}

double blended_price(const ModelInfo& model) {
  return (3.0 * model.price.input_per_mtok + model.price.output_per_mtok) / 4.0;
}

double cost_usd(const ModelPrice& price, const TokenUsage& usage, Billing billing) {
  // Guards against providers reporting more cached (read or written) tokens
  // than input tokens: the parts never add up to more than the whole.
  const std::int64_t input = std::max<std::int64_t>(usage.input_tokens, 0);
  const std::int64_t cached = std::clamp<std::int64_t>(usage.cached_tokens, 0, input);
  const std::int64_t written = std::clamp<std::int64_t>(usage.cache_write_tokens, 0, input - cached);
  const std::int64_t output = std::max<std::int64_t>(usage.output_tokens, 0);
  const bool batch = billing == Billing::batch;
  const double input_price = batch ? price.batch_input_per_mtok : price.input_per_mtok;
  const double cached_price = batch ? std::min(price.cached_input_per_mtok, price.batch_input_per_mtok)
                                    : price.cached_input_per_mtok;
  const double output_price = batch ? price.batch_output_per_mtok : price.output_per_mtok;
  const double micro_usd = static_cast<double>(input - cached - written) * input_price +
                           static_cast<double>(cached) * cached_price +
                           static_cast<double>(written) * price.cache_write_per_mtok +
                           static_cast<double>(output) * output_price;
  return micro_usd / 1'000'000.0;
}

}  // namespace cascade
