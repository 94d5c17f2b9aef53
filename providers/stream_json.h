#pragma once
// Reading a provider's stream events without building a JSON document.
// Private to providers/.
//
// Why: every streamed delta is one small JSON object, and nlohmann's DOM
// allocates a map node and a string per key: it was a quarter of the worker
// loop's time (bench/README.md). An adapter needs two or three fields of the
// common event (the text, a finish reason, token counts); scan_json walks the
// text once with nlohmann's SAX lexer (same escapes, same UTF-8 checks) and
// hands each value to a visitor with its path. Anything unusual (an error, a
// tool call, a second choice) makes the visitor ask for the full document, and
// the adapter parses it as before: the fast path never decides a rare case.
//
// Threading: none shared; a JsonScan is one caller's (it keeps its buffers
// between calls, so a warmed-up scan does not allocate for the path).
#include <nlohmann/json.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cascade::stream_json {

// One step of a value's path: an object member's key, or an array index.
struct PathStep {
  std::string_view key;  // "" for an array element
  int index = -1;        // >= 0 for an array element
  bool is(std::string_view k) const { return index < 0 && key == k; }
  bool at(int i) const { return index == i; }
};
using Path = std::span<const PathStep>;

enum class Kind : std::uint8_t { null, boolean, integer, number, string, object, array };

// A value as the visitor sees it. `text` is the string's value, which the
// visitor may move from; objects and arrays are reported when they open.
struct Value {
  Kind kind = Kind::null;
  bool boolean = false;
  std::int64_t integer = 0;  // integers that fit; larger ones are `number`
  std::string* text = nullptr;
};

enum class Verdict : std::uint8_t { go_on, stop };

namespace detail {

template <typename Visitor>
class Handler final : public nlohmann::json_sax<nlohmann::json> {
 public:
  Handler(Visitor& visitor, std::vector<std::string>& keys, std::vector<PathStep>& path, std::vector<bool>& arrays)
      : visitor_(visitor), keys_(keys), path_(path), arrays_(arrays) {}

  bool stopped = false;

  bool null() override { return value({Kind::null}); }
  bool boolean(bool b) override { return value({Kind::boolean, b}); }
  bool number_integer(number_integer_t n) override { return value({Kind::integer, false, n}); }
  bool number_unsigned(number_unsigned_t n) override {
    if (n > static_cast<number_unsigned_t>(INT64_MAX)) return value({Kind::number});
    return value({Kind::integer, false, static_cast<std::int64_t>(n)});
  }
  bool number_float(number_float_t, const string_t&) override { return value({Kind::number}); }
  bool string(string_t& s) override { return value({Kind::string, false, 0, &s}); }
  bool binary(binary_t&) override { return value({Kind::null}); }
  bool start_object(std::size_t) override { return open({Kind::object}, false); }
  bool start_array(std::size_t) override { return open({Kind::array}, true); }
  bool key(string_t& k) override {
    // The member's key becomes the last step of the path (its object's level).
    keys_[depth_ - 1].assign(k);
    path_[depth_ - 1] = PathStep{keys_[depth_ - 1], -1};
    return true;
  }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }

 private:
  // An array's next element: its level's index moves on before the element
  // is reported (from -1 to 0 for the first).
  void advance() {
    if (depth_ > 0 && arrays_[depth_ - 1]) path_[depth_ - 1].index++;
  }
  bool value(Value v) {
    advance();
    return report(v);
  }
  bool report(const Value& v) {
    if (visitor_(Path(path_.data(), depth_), v) == Verdict::stop) {
      stopped = true;
      return false;
    }
    return true;
  }
  bool open(Value v, bool array) {
    advance();
    if (!report(v)) return false;
    if (depth_ == path_.size()) {
      path_.emplace_back();
      keys_.emplace_back();
      arrays_.push_back(false);
      // keys_ may have moved its strings: the steps above point at them again.
      for (std::size_t i = 0; i < depth_; ++i) {
        if (!arrays_[i]) path_[i].key = keys_[i];
      }
    }
    path_[depth_] = PathStep{{}, -1};
    arrays_[depth_] = array;
    depth_++;
    return true;
  }
  bool close() {
    depth_--;
    return true;
  }

  Visitor& visitor_;
  std::vector<std::string>& keys_;
  std::vector<PathStep>& path_;
  std::vector<bool>& arrays_;  // per level: an array (else an object)
  std::size_t depth_ = 0;
};

}  // namespace detail

// Keeps the path buffers of one caller between scans.
class JsonScan {
 public:
  // Walks `text`, calling visitor(path, value) for every value in document
  // order. Returns false when the text is not one valid JSON value or the
  // visitor stopped (it then knows why).
  template <typename Visitor>
  bool operator()(std::string_view text, Visitor&& visitor) {
    detail::Handler<std::remove_reference_t<Visitor>> handler(visitor, keys_, path_, arrays_);
    return nlohmann::json::sax_parse(text.begin(), text.end(), &handler, nlohmann::json::input_format_t::json,
                                     /*strict=*/true) &&
           !handler.stopped;
  }

 private:
  std::vector<std::string> keys_;
  std::vector<PathStep> path_;
  std::vector<bool> arrays_;
};

}  // namespace cascade::stream_json
