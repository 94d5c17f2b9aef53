#pragma once
// Internal to router/: how model files store vectors. Floats are stored as
// little-endian float32 bytes in base64 (exact round trip, a third of the
// size of decimal text); labels as a string of '0'/'1'.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace cascade::route_model_format {

inline constexpr std::string_view kFormat = "cascade-router-model/1";

std::string base64_encode(std::string_view bytes);
std::optional<std::string> base64_decode(std::string_view text);

std::string encode_floats(std::span<const float> values);
// nullopt unless the text decodes to exactly `count` floats, all finite.
std::optional<std::vector<float>> decode_floats(std::string_view base64, std::size_t count);

// A logistic model's weights: "bias" (number), "dense_weights" (an array of
// `dense_count` finite numbers) and "hashed_weights_f32" (`hashed_count`
// float32s). Errors are invalid_request and start with `what` ("verifier model").
struct LinearWeights {
  double bias = 0;
  std::vector<float> dense;
  std::vector<float> hashed;
};
[[nodiscard]] Result<LinearWeights> read_linear_weights(const nlohmann::json& model, std::size_t dense_count,
                                          std::size_t hashed_count, std::string_view what);

}  // namespace cascade::route_model_format
