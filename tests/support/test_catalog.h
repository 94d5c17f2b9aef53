#pragma once
// Model catalogs tests build from YAML text, and the texts several tests share.
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "catalog/catalog.h"
#include "support/temp_dir.h"

namespace cascade::testing {

// Three models on one provider "p", one per tier ("s", "m", "l"), whose
// context windows are large enough that a prompt's length is only a matter
// of price.
inline constexpr std::string_view kThreeTierCatalog = R"(
price_version: "three-tier-test"
models:
  - {id: s, provider: p, tier: small,  context_window: 200000, max_output_tokens: 8192, input_per_mtok: 0.1, output_per_mtok: 0.4}
  - {id: m, provider: p, tier: medium, context_window: 200000, max_output_tokens: 8192, input_per_mtok: 1.0, output_per_mtok: 4.0}
  - {id: l, provider: p, tier: large,  context_window: 200000, max_output_tokens: 8192, input_per_mtok: 5.0, output_per_mtok: 20.0}
)";

// A model catalog from YAML text (ModelCatalog::from_yaml; the baseline is
// its first model). An empty catalog, and a failed test, when the text is not one.
inline ModelCatalog catalog_from_yaml(std::string_view yaml) {
  auto catalog = ModelCatalog::from_yaml(yaml);
  if (!catalog) {
    ADD_FAILURE() << "catalog: " << catalog.error().message;
    return ModelCatalog{};
  }
  return std::move(*catalog);
}

// The same with the given baseline, through the loader the worker uses (a
// catalog file and catalog.baseline_model).
inline ModelCatalog catalog_from_yaml(std::string_view yaml, const std::string& baseline) {
  const TempFile file(yaml, "models.yaml");
  CatalogConfig config;
  config.file = file.path();
  config.baseline_model = baseline;
  auto catalog = ModelCatalog::load(config);
  if (!catalog) {
    ADD_FAILURE() << "catalog: " << catalog.error().message;
    return ModelCatalog{};
  }
  return std::move(*catalog);
}

}  // namespace cascade::testing
