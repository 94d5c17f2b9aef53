#pragma once
// catalog.* of cascade.yaml: which model catalog (config/models.yaml) and
// which model every saving is counted against.
#include <string>

#include "core/config_reader.h"
#include "core/result.h"

namespace cascade {

struct CatalogConfig {
  std::string file;  // empty = built-in copy of config/models.yaml
  std::string baseline_model = "gpt-4o";
};

// The baseline is checked against the catalog when it loads (ModelCatalog::load).
[[nodiscard]] Result<CatalogConfig> read_catalog_config(ConfigReader& reader);

}  // namespace cascade
