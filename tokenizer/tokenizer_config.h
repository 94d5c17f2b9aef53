#pragma once
// tokenizer.* of cascade.yaml: where the tiktoken rank files are (docs/tokenizer.md).
#include <string>

#include "core/config_reader.h"
#include "core/result.h"

namespace cascade {

struct TokenizerConfig {
  std::string dir;  // "" = the usual places
};

[[nodiscard]] Result<TokenizerConfig> read_tokenizer_config(ConfigReader& reader);

}  // namespace cascade
