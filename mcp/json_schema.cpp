#include "mcp/json_schema.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string_view>

#include "core/utc_day.h"

namespace cascade {
namespace {

using json = nlohmann::json;

constexpr std::array<std::string_view, 5> kAnnotations = {"title", "description", "default", "examples", "$comment"};
constexpr std::array<std::string_view, 15> kKeywords = {
    "type",     "enum",     "minLength", "maxLength",  "format",     "minimum",  "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "minItems", "maxItems", "items", "properties",
    "required", "additionalProperties"};
constexpr std::array<std::string_view, 7> kTypeNames = {"object", "array", "string", "integer",
                                                        "number", "boolean", "null"};
// Values quoted in problems are cut, so a hostile argument cannot inflate them.
constexpr std::size_t kMaxEchoBytes = 64;

bool contains(auto const& list, std::string_view name) { return std::ranges::find(list, name) != list.end(); }

std::string at(const std::string& where, std::string_view key) {
  return where.empty() ? std::string(key) : where + "." + std::string(key);
}

Result<void> check_schema(const json& schema, const std::string& where) {
  const std::string here = where.empty() ? "schema" : where;
  if (!schema.is_object()) return fail(ErrorCode::invalid_request, here + ": a schema must be an object");
  for (const auto& [keyword, value] : schema.items()) {
    if (contains(kAnnotations, keyword)) continue;
    if (!contains(kKeywords, keyword))
      return fail(ErrorCode::invalid_request, here + ": keyword '" + keyword + "' is not enforced by this validator");
    if (keyword == "type") {
      const json names = value.is_array() ? value : json::array({value});
      if (names.empty()) return fail(ErrorCode::invalid_request, here + ": 'type' lists no type");
      for (const json& name : names)
        if (!name.is_string() || !contains(kTypeNames, name.get_ref<const std::string&>()))
          return fail(ErrorCode::invalid_request, here + ": unknown type " + name.dump());
    } else if (keyword == "enum") {
      if (!value.is_array() || value.empty())
        return fail(ErrorCode::invalid_request, here + ": 'enum' must be a non-empty array");
    } else if (keyword == "format") {
      if (value != "date")
        return fail(ErrorCode::invalid_request, here + ": format " + value.dump() + " is not enforced (only \"date\")");
    } else if (keyword == "minLength" || keyword == "maxLength" || keyword == "minItems" || keyword == "maxItems") {
      if (!value.is_number_integer() || value.get<std::int64_t>() < 0)
        return fail(ErrorCode::invalid_request, here + ": '" + keyword + "' must be a non-negative integer");
    } else if (keyword == "minimum" || keyword == "maximum" || keyword == "exclusiveMinimum" ||
               keyword == "exclusiveMaximum") {
      if (!value.is_number()) return fail(ErrorCode::invalid_request, here + ": '" + keyword + "' must be a number");
    } else if (keyword == "items") {
      if (auto ok = check_schema(value, at(here, "items")); !ok) return ok;
    } else if (keyword == "properties") {
      if (!value.is_object()) return fail(ErrorCode::invalid_request, here + ": 'properties' must be an object");
      for (const auto& [name, property] : value.items())
        if (auto ok = check_schema(property, at(here, "properties." + name)); !ok) return ok;
    } else if (keyword == "required") {
      if (!value.is_array() || !std::ranges::all_of(value, [](const json& n) { return n.is_string(); }))
        return fail(ErrorCode::invalid_request, here + ": 'required' must be an array of names");
    } else if (keyword == "additionalProperties") {
      if (!value.is_boolean())
        if (auto ok = check_schema(value, at(here, "additionalProperties")); !ok) return ok;
    }
  }
  return {};
}

// Cuts text to at most kMaxEchoBytes on a UTF-8 character boundary.
std::string echo(std::string_view text) {
  if (text.size() <= kMaxEchoBytes) return std::string(text);
  std::size_t cut = kMaxEchoBytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return std::string(text.substr(0, cut)) + "...";
}

std::string number_text(double n) {
  char buffer[32];
  if (std::floor(n) == n && std::fabs(n) < 1e15) {
    std::snprintf(buffer, sizeof buffer, "%.0f", n);
  } else {
    std::snprintf(buffer, sizeof buffer, "%g", n);
  }
  return buffer;
}

std::string describe(const json& value) {
  switch (value.type()) {
    case json::value_t::string: return "the string '" + echo(value.get_ref<const std::string&>()) + "'";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: return echo(value.dump());
    case json::value_t::boolean: return value.get<bool>() ? "true" : "false";
    case json::value_t::null: return "null";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    default: return "a value";
  }
}

std::string_view type_phrase(std::string_view name) {
  if (name == "object") return "an object";
  if (name == "array") return "an array";
  if (name == "string") return "a string";
  if (name == "integer") return "an integer";
  if (name == "number") return "a number";
  if (name == "boolean") return "true or false";
  return "null";
}

bool is_integral(const json& value) {
  if (value.is_number_integer()) return true;  // signed and unsigned
  if (!value.is_number_float()) return false;
  const double d = value.get<double>();
  return std::isfinite(d) && std::floor(d) == d;
}

bool has_type(const json& value, std::string_view name) {
  if (name == "object") return value.is_object();
  if (name == "array") return value.is_array();
  if (name == "string") return value.is_string();
  if (name == "integer") return is_integral(value);
  if (name == "number") return value.is_number();
  if (name == "boolean") return value.is_boolean();
  return value.is_null();
}

std::size_t utf8_characters(std::string_view text) {
  return static_cast<std::size_t>(
      std::ranges::count_if(text, [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

class Checker {
 public:
  explicit Checker(std::size_t max_problems) : max_(max_problems) {}

  void check(const json& schema, const json& value, const std::string& path) {
    if (full()) return;
    if (auto type = schema.find("type"); type != schema.end()) {
      const json names = type->is_array() ? *type : json::array({*type});
      if (!std::ranges::any_of(names, [&](const json& n) { return has_type(value, n.get_ref<const std::string&>()); })) {
        std::string wanted;
        for (std::size_t i = 0; i < names.size(); ++i) {
          if (i > 0) wanted += i + 1 == names.size() ? " or " : ", ";
          wanted += type_phrase(names[i].get_ref<const std::string&>());
        }
        add(where(path) + " must be " + wanted + ", got " + describe(value));
        return;  // nothing else about a value of the wrong type is worth saying
      }
    }
    if (auto values = schema.find("enum"); values != schema.end()) {
      if (std::ranges::find(*values, value) == values->end()) {
        std::string names;
        for (const json& v : *values) names += (names.empty() ? "" : "|") + (v.is_string() ? v.get<std::string>() : v.dump());
        add(where(path) + " must be one of " + names + ", got " + (value.is_string() ? "'" + echo(value.get_ref<const std::string&>()) + "'" : describe(value)));
        return;
      }
    }
    if (value.is_string()) check_string(schema, value.get_ref<const std::string&>(), path);
    if (value.is_number()) check_number(schema, value.get<double>(), value, path);
    if (value.is_array()) check_array(schema, value, path);
    if (value.is_object()) check_object(schema, value, path);
  }

  std::vector<std::string> take() { return std::move(problems_); }

 private:
  bool full() const { return problems_.size() >= max_; }
  void add(std::string problem) {
    if (!full()) problems_.push_back(std::move(problem));
  }
  static std::string where(const std::string& path) { return path.empty() ? "the arguments" : "'" + path + "'"; }

  void check_string(const json& schema, const std::string& text, const std::string& path) {
    const std::size_t length = utf8_characters(text);
    if (auto min = schema.find("minLength"); min != schema.end() && length < min->get<std::size_t>())
      add(where(path) + " must be at least " + min->dump() + " character" + (*min == 1 ? "" : "s") + " long" +
          (length == 0 ? ", got an empty string" : ", got " + std::to_string(length)));
    if (auto max = schema.find("maxLength"); max != schema.end() && length > max->get<std::size_t>()) {
      add(where(path) + " must be at most " + max->dump() + " characters long, got " + std::to_string(length));
      return;  // too long to be worth parsing as a date
    }
    if (auto format = schema.find("format"); format != schema.end() && *format == "date") {
      if (text.size() != 10 || !parse_utc_day(text))
        add(where(path) + " must be a date YYYY-MM-DD, got '" + echo(text) + "'");
    }
  }

  void check_number(const json& schema, double n, const json& value, const std::string& path) {
    const std::string got = ", got " + describe(value);
    if (auto min = schema.find("minimum"); min != schema.end() && n < min->get<double>())
      add(where(path) + " must be at least " + number_text(min->get<double>()) + got);
    if (auto max = schema.find("maximum"); max != schema.end() && n > max->get<double>())
      add(where(path) + " must be at most " + number_text(max->get<double>()) + got);
    if (auto min = schema.find("exclusiveMinimum"); min != schema.end() && n <= min->get<double>())
      add(where(path) + " must be greater than " + number_text(min->get<double>()) + got);
    if (auto max = schema.find("exclusiveMaximum"); max != schema.end() && n >= max->get<double>())
      add(where(path) + " must be less than " + number_text(max->get<double>()) + got);
  }

  void check_array(const json& schema, const json& array, const std::string& path) {
    const std::size_t n = array.size();
    if (auto min = schema.find("minItems"); min != schema.end() && n < min->get<std::size_t>())
      add(where(path) + " must have at least " + min->dump() + " item" + (*min == 1 ? "" : "s") + ", got " +
          std::to_string(n));
    if (auto max = schema.find("maxItems"); max != schema.end() && n > max->get<std::size_t>()) {
      add(where(path) + " must have at most " + max->dump() + " items, got " + std::to_string(n));
      return;  // not worth checking every item of
    }
    if (auto items = schema.find("items"); items != schema.end()) {
      for (std::size_t i = 0; i < n && !full(); ++i) check(*items, array[i], path + "[" + std::to_string(i) + "]");
    }
  }

  void check_object(const json& schema, const json& object, const std::string& path) {
    const std::string noun = path.empty() ? "argument" : "field";
    if (auto required = schema.find("required"); required != schema.end()) {
      for (const json& name : *required)
        if (!object.contains(name.get_ref<const std::string&>()))
          add("missing required " + noun + " '" + at(path, name.get_ref<const std::string&>()) + "'");
    }
    const auto properties = schema.find("properties");
    const auto additional = schema.find("additionalProperties");
    for (const auto& [name, value] : object.items()) {
      if (full()) return;
      if (properties != schema.end()) {
        if (auto property = properties->find(name); property != properties->end()) {
          check(*property, value, at(path, name));
          continue;
        }
      }
      if (additional == schema.end() || *additional == true) continue;
      if (*additional == false) {
        std::string known;
        if (properties != schema.end())
          for (const auto& [k, v] : properties->items()) known += (known.empty() ? "" : ", ") + k;
        add("unknown " + noun + " '" + echo(at(path, name)) + "'" +
            (known.empty() ? std::string() : " (known: " + known + ")"));
      } else {
        check(*additional, value, at(path, name));
      }
    }
  }

  std::size_t max_;
  std::vector<std::string> problems_;
};

}  // namespace

Result<JsonSchema> JsonSchema::compile(nlohmann::json schema) {
  if (auto ok = check_schema(schema, ""); !ok) return std::unexpected(ok.error());
  return JsonSchema(std::move(schema));
}

std::vector<std::string> JsonSchema::problems(const nlohmann::json& value, std::size_t max_problems) const {
  Checker checker(max_problems);
  checker.check(schema_, value, "");
  return checker.take();
}

}  // namespace cascade
