#pragma once
// Internal to router/: how model files store vectors. Floats are stored as
// little-endian float32 bytes in base64 (exact round trip, a third of the
// size of decimal text); labels as a string of '0'/'1'.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cascade::route_model_format {

inline constexpr std::string_view kFormat = "cascade-router-model/1";

std::string base64_encode(std::string_view bytes);
std::optional<std::string> base64_decode(std::string_view text);

std::string encode_floats(std::span<const float> values);
// nullopt unless the text decodes to exactly `count` floats, all finite.
std::optional<std::vector<float>> decode_floats(std::string_view base64, std::size_t count);

}  // namespace cascade::route_model_format
