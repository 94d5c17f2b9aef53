#include <curl/curl.h>

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <nlohmann/json.hpp>

#include "core/logging.h"
#include "core/text.h"
#include "embeddings/embeddings.h"
#include "embeddings/openai_wire.h"

namespace cascade {

namespace {

using nlohmann::json;

using embeddings_wire::kMaxBodyBytes;
using embeddings_wire::scrub;

constexpr std::size_t kMaxQuotedChars = 300;

std::string quote(std::string_view text) {
  std::string out;
  for (const char c : text.substr(0, kMaxQuotedChars)) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u < 0x20 || u == 0x7F ? ' ' : c);
  }
  if (text.size() > kMaxQuotedChars) out += "...";
  return out;
}

// {"error":{"message":...}} (OpenAI, vLLM), {"error":"..."} (Ollama, TEI), {"message":...}.
std::string error_message_of(std::string_view body) {
  const json parsed = json::parse(body, nullptr, false);
  if (parsed.is_object()) {
    if (const auto e = parsed.find("error"); e != parsed.end()) {
      if (e->is_string()) return e->get<std::string>();
      if (e->is_object()) {
        if (const auto m = e->find("message"); m != e->end() && m->is_string()) return m->get<std::string>();
      }
    }
    if (const auto m = parsed.find("message"); m != parsed.end() && m->is_string()) return m->get<std::string>();
  }
  return std::string(body);
}

Error http_error(long status, std::string message) {
  const ErrorCode code = (status == 408 || status == 504) ? ErrorCode::timeout : ErrorCode::provider_error;
  Error error{code, std::move(message)};
  error.http_status = static_cast<int>(status);
  return error;
}

void init_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::size_t append_body(char* data, std::size_t size, std::size_t count, void* user) {
  auto* body = static_cast<std::string*>(user);
  if (body->size() + size * count > kMaxBodyBytes) return 0;  // aborts the transfer
  body->append(data, size * count);
  return size * count;
}

struct RetryAfter {
  std::int64_t ms = -1;
};

std::size_t read_header(char* data, std::size_t size, std::size_t count, void* user) {
  const std::string_view line(data, size * count);
  if (const auto colon = line.find(':'); colon != std::string_view::npos) {
    if (const auto ms = embeddings_wire::retry_after_ms(line.substr(0, colon), line.substr(colon + 1)); ms >= 0) {
      static_cast<RetryAfter*>(user)->ms = ms;
    }
  }
  return size * count;
}

bool same_name(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  }
  return true;
}

}  // namespace

namespace embeddings_wire {

std::string scrub(std::string text, std::string_view secret) {
  if (secret.empty()) return text;
  const std::string replacement = redact(secret);
  for (auto pos = text.find(secret); pos != std::string::npos; pos = text.find(secret, pos + replacement.size())) {
    text.replace(pos, secret.size(), replacement);
  }
  return text;
}

std::int64_t retry_after_ms(std::string_view name, std::string_view value) {
  name = trim_space(name);
  value = trim_space(value);
  if (value.empty() || value.size() > 18) return -1;
  const bool seconds = same_name(name, "retry-after");
  if (!seconds && !same_name(name, "retry-after-ms")) return -1;
  std::int64_t n = 0;
  for (const char c : value) {
    if (c < '0' || c > '9') return -1;  // an HTTP date (rare for embeddings endpoints) or garbage
    n = n * 10 + (c - '0');
  }
  return seconds ? n * 1000 : n;
}

}  // namespace embeddings_wire

EmbeddingsHttpRequest build_embeddings_request(std::string_view base_url, std::string_view model,
                                               std::span<const std::string> texts, std::string_view api_key,
                                               std::size_t dimensions) {
  while (!base_url.empty() && base_url.back() == '/') base_url.remove_suffix(1);
  EmbeddingsHttpRequest request;
  request.url = std::string(base_url) + "/embeddings";
  request.headers.push_back("Content-Type: application/json");
  request.headers.push_back("Accept: application/json");
  if (!api_key.empty()) request.headers.push_back("Authorization: Bearer " + std::string(api_key));
  json body = {{"model", model}, {"input", json::array()}, {"encoding_format", "float"}};
  for (const auto& text : texts) body["input"].push_back(text);
  if (dimensions > 0) body["dimensions"] = dimensions;
  request.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return request;
}

Result<std::vector<Embedding>> parse_embeddings_response(long http_status, std::string_view body,
                                                         std::size_t expected_count,
                                                         std::size_t expected_dimension, std::string_view secret) {
  if (http_status >= 400 || http_status < 200) {
    return std::unexpected(http_error(
        http_status, scrub("embeddings endpoint answered HTTP " + std::to_string(http_status) + ": " +
                               quote(error_message_of(body)),
                           secret)));
  }
  const json parsed = json::parse(body, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    return fail(ErrorCode::provider_error, scrub("embeddings response is not a JSON object: " + quote(body), secret));
  }
  const auto data = parsed.find("data");
  if (data == parsed.end() || !data->is_array()) {
    return fail(ErrorCode::provider_error, "embeddings response has no data array");
  }
  if (data->size() != expected_count) {
    return fail(ErrorCode::provider_error, "embeddings response has " + std::to_string(data->size()) +
                                               " items for " + std::to_string(expected_count) + " inputs");
  }
  std::vector<Embedding> out(expected_count);
  std::vector<bool> seen(expected_count, false);
  std::size_t dimension = expected_dimension;
  for (std::size_t position = 0; position < data->size(); ++position) {
    const json& item = (*data)[position];
    if (!item.is_object()) return fail(ErrorCode::provider_error, "embeddings item is not an object");
    // Servers that omit "index" answer in input order.
    std::size_t index = position;
    if (const auto i = item.find("index"); i != item.end()) {
      if (!i->is_number_integer() || i->get<std::int64_t>() < 0 ||
          static_cast<std::size_t>(i->get<std::int64_t>()) >= expected_count) {
        return fail(ErrorCode::provider_error, "embeddings item has an index out of range");
      }
      index = static_cast<std::size_t>(i->get<std::int64_t>());
    }
    if (seen[index]) return fail(ErrorCode::provider_error, "embeddings response repeats index " + std::to_string(index));
    seen[index] = true;
    const auto vector = item.find("embedding");
    if (vector == item.end() || !vector->is_array() || vector->empty()) {
      return fail(ErrorCode::provider_error, "embeddings item " + std::to_string(index) + " has no float embedding");
    }
    if (dimension == 0) dimension = vector->size();
    if (vector->size() != dimension) {
      return fail(ErrorCode::provider_error, "embedding " + std::to_string(index) + " has dimension " +
                                                 std::to_string(vector->size()) + ", expected " +
                                                 std::to_string(dimension));
    }
    Embedding& v = out[index];
    v.reserve(dimension);
    for (const json& x : *vector) {
      if (!x.is_number()) return fail(ErrorCode::provider_error, "embedding holds a non-number");
      v.push_back(x.get<float>());
    }
    if (!normalize_unit(v)) {
      return fail(ErrorCode::provider_error, "embedding " + std::to_string(index) + " is zero or not finite");
    }
  }
  return out;
}

OpenAiEmbedder::OpenAiEmbedder(OpenAiEmbedderOptions options, std::string api_key)
    : options_(std::move(options)), api_key_(std::move(api_key)) {
  init_curl_once();
  curl_ = curl_easy_init();
  if (options_.max_batch == 0) options_.max_batch = 1;
  set_tag();
}

OpenAiEmbedder::~OpenAiEmbedder() {
  if (curl_ != nullptr) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

void OpenAiEmbedder::set_tag() {
  // The server is not part of the tag: the same model gives the same vectors
  // from Ollama or vLLM, and moving a deployment must not empty the cache.
  tag_ = "openai-compatible:" + options_.model + ":d" + std::to_string(options_.dimension);
}

Result<std::unique_ptr<OpenAiEmbedder>> OpenAiEmbedder::create(OpenAiEmbedderOptions options, const EnvLookup& env) {
  if (options.base_url.empty()) return fail(ErrorCode::invalid_request, "embeddings base_url is empty");
  if (options.model.empty()) return fail(ErrorCode::invalid_request, "embeddings model is empty");
  std::string key;
  if (!options.api_key_env.empty()) {
    auto value = env(options.api_key_env);
    if (!value || value->empty()) {
      return fail(ErrorCode::invalid_request, "environment variable " + options.api_key_env + " (embeddings key) is not set");
    }
    key = std::move(*value);
  }
  std::unique_ptr<OpenAiEmbedder> embedder(new OpenAiEmbedder(std::move(options), std::move(key)));
  if (embedder->curl_ == nullptr) return fail(ErrorCode::internal, "curl_easy_init failed");
  if (embedder->options_.dimension == 0) {
    const std::string probe[] = {"dimension probe"};
    auto vectors = embedder->post(probe, 0);
    if (!vectors) return std::unexpected(vectors.error());
    embedder->options_.dimension = vectors->front().size();
    embedder->set_tag();
  }
  return embedder;
}

Result<std::vector<Embedding>> OpenAiEmbedder::embed(std::span<const std::string> texts) {
  std::vector<Embedding> out;
  out.reserve(texts.size());
  for (std::size_t start = 0; start < texts.size(); start += options_.max_batch) {
    const auto batch = texts.subspan(start, std::min(options_.max_batch, texts.size() - start));
    auto vectors = post(batch, options_.dimension);
    if (!vectors) return std::unexpected(vectors.error());
    for (auto& v : *vectors) out.push_back(std::move(v));
  }
  return out;
}

Result<std::vector<Embedding>> OpenAiEmbedder::post(std::span<const std::string> texts, std::size_t expected_dimension) {
  const EmbeddingsHttpRequest request = build_embeddings_request(
      options_.base_url, options_.model, texts, api_key_, options_.send_dimensions ? options_.dimension : 0);
  auto* curl = static_cast<CURL*>(curl_);
  curl_easy_reset(curl);
  curl_slist* headers = nullptr;
  for (const auto& h : request.headers) headers = curl_slist_append(headers, h.c_str());
  std::string body;
  RetryAfter retry_after;
  char curl_error[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_POST, 1L);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, read_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &retry_after);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_error);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, options_.connect_timeout_ms);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, options_.request_timeout_ms);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");
  const CURLcode result = curl_easy_perform(curl);
  curl_slist_free_all(headers);
  if (result != CURLE_OK) {
    const std::string detail = curl_error[0] != '\0' ? curl_error : curl_easy_strerror(result);
    const ErrorCode code = result == CURLE_OPERATION_TIMEDOUT ? ErrorCode::timeout : ErrorCode::unavailable;
    return fail(code, scrub("embeddings request to " + request.url + " failed: " + detail, api_key_));
  }
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  auto parsed = parse_embeddings_response(status, body, texts.size(), expected_dimension, api_key_);
  if (!parsed) parsed.error().retry_after_ms = retry_after.ms;
  return parsed;
}

}  // namespace cascade
