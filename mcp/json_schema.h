#pragma once
// Internal to mcp/: checks JSON values against the subset of JSON Schema
// (draft 2020-12) that the tools' schemas use, so that the schema tools/list
// shows is the one enforced. Debian has no C++ JSON Schema validator.
//
// Enforced keywords: type (one name or a list; "integer" accepts 5.0 as
// JSON Schema does), enum, minLength / maxLength (in Unicode characters),
// format "date" (YYYY-MM-DD, a real UTC date), minimum / maximum /
// exclusiveMinimum / exclusiveMaximum, minItems / maxItems / items,
// properties / required / additionalProperties (false or a schema).
// Annotations (title, description, default, examples) are allowed and
// ignored. compile() refuses any other keyword, so no schema can promise a
// check that is not made.
//
// Immutable once compiled; problems() is thread-safe.
#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>
#include <vector>

#include "core/result.h"

namespace cascade {

class JsonSchema {
 public:
  // invalid_request naming the keyword and where it is ("properties.model:
  // keyword 'pattern' is not enforced by this validator").
  [[nodiscard]] static Result<JsonSchema> compile(nlohmann::json schema);

  // What is wrong with `value`, one sentence each naming where, at most
  // max_problems of them; empty = valid. Top-level properties are called
  // arguments, deeper ones fields:
  //   missing required argument 'prompt'
  //   unknown argument 'tenant'
  //   'messages[0].role' must be one of system|developer|user|assistant|tool, got 'bot'
  //   'max_tokens' must be at least 1, got 0
  std::vector<std::string> problems(const nlohmann::json& value, std::size_t max_problems = 8) const;

  const nlohmann::json& document() const { return schema_; }

 private:
  explicit JsonSchema(nlohmann::json schema) : schema_(std::move(schema)) {}
  nlohmann::json schema_;
};

}  // namespace cascade
