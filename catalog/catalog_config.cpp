#include "catalog/catalog_config.h"

namespace cascade {

Result<CatalogConfig> read_catalog_config(ConfigReader& r) {
  CatalogConfig c;
  r.read(r.root()["catalog"], "file", c.file, "catalog");
  r.read(r.root()["catalog"], "baseline_model", c.baseline_model, "catalog");
  if (auto ok = r.status(); !ok) return std::unexpected(ok.error());
  return c;
}

}  // namespace cascade
