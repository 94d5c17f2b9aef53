#include "tokenizer/tokenizer_config.h"

namespace cascade {

Result<TokenizerConfig> read_tokenizer_config(ConfigReader& r) {
  TokenizerConfig c;
  r.read(r.root()["tokenizer"], "dir", c.dir, "tokenizer");
  if (auto ok = r.status(); !ok) return std::unexpected(ok.error());
  return c;
}

}  // namespace cascade
