#include "events/request_fingerprint.h"

#include <openssl/evp.h>

#include <array>
#include <charconv>
#include <cstdio>
#include <memory>

namespace cascade {
namespace {

// Writes the canonical serialization (see the header) to a sink with
// `void write(std::string_view)`.
template <class Sink>
class CanonicalWriter {
 public:
  explicit CanonicalWriter(Sink& sink) : sink_(sink) {}

  // `effective_max_tokens` null: the line is left out (the prompt event key,
  // which producers compute without the workers' configuration).
  void request(std::string_view version, const PromptEvent& event, const int* effective_max_tokens) {
    sink_.write(version);
    sink_.write("\n");
    field("tenant", event.tenant);
    field("model", event.model);
    field("preference", to_string(event.preference));
    if (effective_max_tokens) {
      sink_.write("max_tokens ");
      integer(*effective_max_tokens);
      sink_.write("\n");
    }
    sink_.write("temperature ");
    if (event.temperature) {
      floating(*event.temperature);
    } else {
      sink_.write("-");
    }
    sink_.write("\nmessages ");
    value(event.messages);
    sink_.write("\n");
    // Added later, written only when set: fingerprints of requests without
    // them are those of before.
    if (!event.response_format.is_null()) {
      sink_.write("response_format ");
      value(event.response_format);
      sink_.write("\n");
    }
    if (event.cascade) sink_.write(*event.cascade ? "cascade t\n" : "cascade f\n");
    // Forwarded to providers: a tool-calling answer is not one without tools.
    if (!event.tools.is_null()) {
      sink_.write("tools ");
      value(event.tools);
      sink_.write("\n");
    }
    if (!event.tool_choice.is_null()) {
      sink_.write("tool_choice ");
      value(event.tool_choice);
      sink_.write("\n");
    }
  }

 private:
  void field(std::string_view name, std::string_view text) {
    sink_.write(name);
    sink_.write(" ");
    counted(text);
    sink_.write("\n");
  }

  void counted(std::string_view bytes) {
    integer(static_cast<unsigned long long>(bytes.size()));
    sink_.write(":");
    sink_.write(bytes);
  }

  template <class Int>
  void integer(Int n) {
    char buf[24];
    const auto end = std::to_chars(buf, buf + sizeof buf, n).ptr;
    sink_.write(std::string_view(buf, static_cast<std::size_t>(end - buf)));
  }

  // %.17g reads back as the same double, so distinct values stay distinct.
  void floating(double d) {
    char buf[40];
    const int n = std::snprintf(buf, sizeof buf, "%.17g", d);
    sink_.write(std::string_view(buf, static_cast<std::size_t>(n)));
  }

  void value(const nlohmann::json& v) {
    using T = nlohmann::json::value_t;
    switch (v.type()) {
      case T::null:
        sink_.write("n");
        return;
      case T::boolean:
        sink_.write(v.get<bool>() ? "t" : "f");
        return;
      case T::number_integer:
        sink_.write("i");
        integer(v.get<std::int64_t>());
        sink_.write(";");
        return;
      case T::number_unsigned:
        // The parser stores non-negative integers unsigned; code that builds
        // events stores them signed. Same number, same bytes.
        sink_.write("i");
        integer(v.get<std::uint64_t>());
        sink_.write(";");
        return;
      case T::number_float:
        sink_.write("d");
        floating(v.get<double>());
        sink_.write(";");
        return;
      case T::string:
        sink_.write("s");
        counted(v.get_ref<const std::string&>());
        return;
      case T::array:
        sink_.write("a");
        integer(static_cast<unsigned long long>(v.size()));
        sink_.write("[");
        for (const auto& item : v) value(item);
        sink_.write("]");
        return;
      case T::object:
        // nlohmann's object is a std::map: iteration is in key byte order.
        sink_.write("o");
        integer(static_cast<unsigned long long>(v.size()));
        sink_.write("{");
        for (const auto& [key, item] : v.items()) {
          sink_.write("s");
          counted(key);
          value(item);
        }
        sink_.write("}");
        return;
      case T::binary: {
        const auto& bin = v.get_binary();
        sink_.write("b");
        if (bin.has_subtype()) {
          integer(static_cast<unsigned long long>(bin.subtype()));
        } else {
          sink_.write("-");
        }
        sink_.write(":");
        counted(std::string_view(reinterpret_cast<const char*>(bin.data()), bin.size()));
        return;
      }
      case T::discarded:
        sink_.write("x");
        return;
    }
  }

  Sink& sink_;
};

struct StringSink {
  std::string out;
  void write(std::string_view s) { out.append(s); }
};

// Feeds SHA-256 in blocks: the many small pieces are buffered, large strings
// (message content) go through without a copy.
class DigestSink {
 public:
  DigestSink() : ctx_(EVP_MD_CTX_new()) { ok_ = ctx_ && EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) == 1; }

  void write(std::string_view s) {
    if (buffered_ + s.size() > buffer_.size()) {
      flush();
      if (s.size() > buffer_.size()) {
        update(s.data(), s.size());
        return;
      }
    }
    std::copy(s.begin(), s.end(), buffer_.begin() + static_cast<std::ptrdiff_t>(buffered_));
    buffered_ += s.size();
  }

  Result<std::string> hex_digest() {
    flush();
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!ok_ || EVP_DigestFinal_ex(ctx_.get(), digest, &len) != 1) {
      return fail(ErrorCode::internal, "SHA-256 of the request failed");
    }
    static constexpr char kHex[] = "0123456789abcdef";
    std::string hex(static_cast<std::size_t>(len) * 2, '0');
    for (unsigned int i = 0; i < len; ++i) {
      hex[2 * i] = kHex[digest[i] >> 4];
      hex[2 * i + 1] = kHex[digest[i] & 0xF];
    }
    return hex;
  }

 private:
  void flush() {
    if (buffered_ > 0) update(buffer_.data(), buffered_);
    buffered_ = 0;
  }
  void update(const char* data, std::size_t n) {
    if (ok_ && EVP_DigestUpdate(ctx_.get(), data, n) != 1) ok_ = false;
  }

  struct FreeCtx {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  std::unique_ptr<EVP_MD_CTX, FreeCtx> ctx_;
  bool ok_ = false;
  std::array<char, 4096> buffer_{};
  std::size_t buffered_ = 0;
};

}  // namespace

std::string canonical_request(const PromptEvent& event, int effective_max_tokens) {
  StringSink sink;
  CanonicalWriter<StringSink>(sink).request(kRequestFingerprintVersion, event, &effective_max_tokens);
  return std::move(sink.out);
}

Result<std::string> request_fingerprint(const PromptEvent& event, int effective_max_tokens) {
  DigestSink sink;
  CanonicalWriter<DigestSink>(sink).request(kRequestFingerprintVersion, event, &effective_max_tokens);
  return sink.hex_digest();
}

std::string canonical_prompt_key(const PromptEvent& event) {
  StringSink sink;
  CanonicalWriter<StringSink>(sink).request(kPromptEventKeyVersion, event, nullptr);
  return std::move(sink.out);
}

std::string prompt_event_key(const PromptEvent& event) {
  DigestSink sink;
  CanonicalWriter<DigestSink>(sink).request(kPromptEventKeyVersion, event, nullptr);
  auto digest = sink.hex_digest();
  // Without a digest (out of memory) the tenant alone: a valid key, only
  // not spread.
  if (!digest) return event.tenant;
  std::string key;
  key.reserve(event.tenant.size() + 1 + kPromptEventKeyHexDigits);
  key.append(event.tenant).push_back('/');
  key.append(*digest, 0, kPromptEventKeyHexDigits);
  return key;
}

}  // namespace cascade
