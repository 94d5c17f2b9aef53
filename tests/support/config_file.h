#pragma once
// A configuration as a test writes it: YAML text over the built-in defaults,
// read through the same load_config as cascade.yaml.
#include <string_view>

#include "config/config.h"
#include "support/env.h"
#include "support/temp_dir.h"

namespace cascade::testing {

// load_config over a file holding `yaml`, in the environment `env`.
inline Result<Config> load_config_text(std::string_view yaml, const EnvLookup& env = no_env()) {
  const TempFile file(yaml, "cascade.yaml");
  return load_config(file.path(), env);
}

}  // namespace cascade::testing
