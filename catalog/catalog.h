#pragma once
// The model catalog (config/models.yaml): which models exist, who serves them,
// what they cost, how large their context is, and which tier they belong to.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "catalog/catalog_config.h"
#include "core/result.h"
#include "events/events.h"

namespace cascade {

// Capability tiers, cheapest first. The router maps a complexity score to one.
enum class Tier { small, medium, large };
std::string_view to_string(Tier tier);
std::optional<Tier> parse_tier(std::string_view text);

// USD per 1M tokens, as providers publish them.
struct ModelPrice {
  double input_per_mtok = 0;
  double output_per_mtok = 0;
  double cached_input_per_mtok = 0;  // price of input tokens read from the provider's prompt cache
  double cache_write_per_mtok = 0;   // price of input tokens written to the provider's prompt cache
  // Through the provider's batch API (OpenAI: half price); without a batch
  // price in the catalog these equal input/output (no discount).
  double batch_input_per_mtok = 0;
  double batch_output_per_mtok = 0;
};

// How a call is billed: the normal (interactive) prices or the batch API's.
enum class Billing { standard, batch };

// What a model can do beyond plain chat, as bits of ModelInfo::capabilities.
// The router sends a request only to a model with every capability it needs
// (docs/routing.md, "Hard constraints").
enum Capability : std::uint32_t {
  kCapabilityTools = 1u << 0,   // function / tool calling
  kCapabilityVision = 1u << 1,  // image content parts
  kCapabilityJson = 1u << 2,    // response_format json_object / json_schema
};
inline constexpr std::uint32_t kAllCapabilities = kCapabilityTools | kCapabilityVision | kCapabilityJson;
// "tools", "vision", "json".
std::string_view capability_name(Capability capability);
std::optional<Capability> parse_capability(std::string_view name);
// "tools,vision" for a set of bits ("" for none), in the order above.
std::string capability_names(std::uint32_t capabilities);

struct ModelInfo {
  std::string id;              // catalog id used in events ("gpt-4o-mini")
  std::string provider;        // providers.<name> in cascade.yaml
  std::string upstream_model;  // the model name sent to the provider's API
  Tier tier = Tier::medium;
  std::int64_t context_window = 0;
  std::int64_t max_output_tokens = 0;
  ModelPrice price;
  // Priced for billing (pinned requests, replays of recorded traffic) but
  // never routed to: absent from ModelCatalog::models(), found by find().
  bool legacy = false;
  // Capability bits. A catalog entry without a `capabilities` list declares
  // nothing and is taken as capable of everything (hand-written catalogs
  // written before the key existed keep routing as they did).
  std::uint32_t capabilities = kAllCapabilities;
  // Data-residency regions where the model processes data ("eu", "us"): the
  // entry's own `regions`, else its provider's in the catalog's
  // `provider_regions`. Empty = unknown: never satisfies a residency tag.
  std::vector<std::string> regions;

  bool has(std::uint32_t needed) const { return (capabilities & needed) == needed; }
  bool in_region(std::string_view region) const;
};

class ModelCatalog {
 public:
  // Parses the catalog YAML (see config/models.yaml for the format).
  [[nodiscard]] static Result<ModelCatalog> from_yaml(std::string_view yaml_text);
  // Loads catalog.file, or the built-in copy when it is empty; checks that
  // catalog.baseline_model exists.
  [[nodiscard]] static Result<ModelCatalog> load(const CatalogConfig& config);

  // Any model, legacy versions included.
  const ModelInfo* find(std::string_view id) const;
  // The models requests are routed to (legacy versions left out).
  const std::vector<ModelInfo>& models() const { return models_; }
  const std::vector<ModelInfo>& legacy_models() const { return legacy_; }
  // The premium model every cost is compared against.
  const ModelInfo& baseline() const { return models_.at(baseline_index_); }
  // Identifies the price table a cost was computed with (e.g. "2026-07").
  const std::string& price_version() const { return price_version_; }

 private:
  std::vector<ModelInfo> models_;
  std::vector<ModelInfo> legacy_;  // sorted by id, like models_
  std::size_t baseline_index_ = 0;
  std::string price_version_;
};

// The compiled-in config/models.yaml.
std::string_view default_models_yaml();

// USD for the given usage: cached input tokens at the cached price, cache
// writes at the cache-write price, the rest of the input at the input price,
// output at the output price. Reasoning tokens are part of output_tokens
// and billed as output, never on top. Billing::batch bills uncached input and
// output at the batch prices (cached input at the lower of its price and the
// batch input price).
double cost_usd(const ModelPrice& price, const TokenUsage& usage, Billing billing = Billing::standard);

// How models are ranked by price: USD per 1M tokens at three input tokens
// for every output token, the mix of typical chat traffic (and the
// convention of public model leaderboards). Neither price alone ranks models
// fairly: output is 2-8x dearer per token, but prompts are usually several
// times longer than answers. Cache discounts are left out: they depend on traffic.
double blended_price(const ModelInfo& model);

}  // namespace cascade
