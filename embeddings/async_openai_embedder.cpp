#include <optional>

#include "embeddings/embeddings.h"
#include "embeddings/openai_wire.h"
#include "providers/provider.h"

namespace cascade {

// One POST in flight: collects status, Retry-After and body, and hands the
// outcome to the caller's callback when curl reports the transfer done. The
// HttpClient owns it, so it lives exactly as long as its transfer (a
// cancelled call is destroyed without calling back).
struct AsyncOpenAiEmbedder::Call final : HttpResponseHandler {
  Call(AsyncOpenAiEmbedder& owner, std::size_t count, Callback done)
      : owner(owner), count(count), done(std::move(done)) {}

  void on_status(long s) override { status = s; }

  void on_header(std::string_view name, std::string_view value) override {
    if (const auto ms = embeddings_wire::retry_after_ms(name, value); ms >= 0) retry_after_ms = ms;
  }

  bool on_body(std::string_view bytes) override {
    if (body.size() + bytes.size() > embeddings_wire::kMaxBodyBytes) {
      too_large = true;
      return false;  // aborts the transfer; on_done reports it
    }
    body.append(bytes);
    return true;
  }

  void on_done(CURLcode result, std::string_view curl_error) override {
    Result<std::vector<Embedding>> outcome;
    if (too_large) {
      outcome = fail(ErrorCode::provider_error, "embeddings response larger than " +
                                                    std::to_string(embeddings_wire::kMaxBodyBytes) + " bytes");
    } else if (result != CURLE_OK) {
      // Connect and total timeouts both end as CURLE_OPERATION_TIMEDOUT.
      const ErrorCode code = result == CURLE_OPERATION_TIMEDOUT ? ErrorCode::timeout : ErrorCode::unavailable;
      outcome = fail(code, embeddings_wire::scrub("embeddings request to " + owner.options_.base_url +
                                                      " failed: " + std::string(curl_error),
                                                  owner.api_key_));
    } else {
      outcome = owner.finish(status, body, count);
    }
    if (!outcome) outcome.error().retry_after_ms = retry_after_ms;
    Callback call_back = std::move(done);
    call_back(std::move(outcome));
  }

  AsyncOpenAiEmbedder& owner;
  const std::size_t count;
  Callback done;
  long status = 0;
  std::int64_t retry_after_ms = -1;
  bool too_large = false;
  std::string body;
};

AsyncOpenAiEmbedder::AsyncOpenAiEmbedder(OpenAiEmbedderOptions options, std::string api_key)
    : options_(std::move(options)), api_key_(std::move(api_key)) {
  if (options_.max_batch == 0) options_.max_batch = 1;
  if (options_.dimension > 0) learn_dimension(options_.dimension);
}

Result<std::unique_ptr<AsyncOpenAiEmbedder>> AsyncOpenAiEmbedder::create(OpenAiEmbedderOptions options,
                                                                         const EnvLookup& env) {
  if (options.base_url.empty()) return fail(ErrorCode::invalid_request, "embeddings base_url is empty");
  if (options.model.empty()) return fail(ErrorCode::invalid_request, "embeddings model is empty");
  std::string key;
  if (!options.api_key_env.empty()) {
    auto value = env(options.api_key_env);
    if (!value || value->empty()) {
      return fail(ErrorCode::invalid_request,
                  "environment variable " + options.api_key_env + " (embeddings key) is not set");
    }
    key = std::move(*value);
  }
  return std::unique_ptr<AsyncOpenAiEmbedder>(new AsyncOpenAiEmbedder(std::move(options), std::move(key)));
}

const std::string& AsyncOpenAiEmbedder::tag() const {
  static const std::string kUnknown;
  // tag_ is written once, before dimension_ is published (release/acquire).
  return dimension() == 0 ? kUnknown : tag_;
}

bool AsyncOpenAiEmbedder::learn_dimension(std::size_t dimension) {
  if (const std::size_t known = this->dimension(); known != 0) return known == dimension;
  std::lock_guard lock(learn_mutex_);
  if (const std::size_t known = this->dimension(); known != 0) return known == dimension;
  // The server is not part of the tag: the same model gives the same vectors
  // wherever it runs (as OpenAiEmbedder's tag).
  tag_ = "openai-compatible:" + options_.model + ":d" + std::to_string(dimension);
  dimension_.store(dimension, std::memory_order_release);
  return true;
}

Result<std::vector<Embedding>> AsyncOpenAiEmbedder::finish(long http_status, std::string_view body,
                                                           std::size_t count) {
  const std::size_t expected = dimension();
  auto vectors = parse_embeddings_response(http_status, body, count, expected, api_key_);
  if (!vectors || expected != 0) return vectors;
  // The first answer fixes the dimension; a concurrent first answer of
  // another dimension loses and is an error (its vectors are not comparable).
  const std::size_t got = vectors->front().size();
  if (!learn_dimension(got)) {
    return fail(ErrorCode::provider_error, "embeddings have dimension " + std::to_string(got) + ", expected " +
                                               std::to_string(dimension()));
  }
  return vectors;
}

Result<std::uint64_t> AsyncOpenAiEmbedder::start(HttpClient& http, std::vector<std::string> texts, Callback done) {
  if (texts.empty()) return fail(ErrorCode::invalid_request, "no texts to embed");
  const EmbeddingsHttpRequest built = build_embeddings_request(
      options_.base_url, options_.model, texts, api_key_, options_.send_dimensions ? options_.dimension : 0);
  HttpRequest request;
  request.method = "POST";
  request.url = built.url;
  request.headers = built.headers;
  request.body = built.body;
  request.connect_timeout_ms = options_.connect_timeout_ms;
  request.total_timeout_ms = options_.request_timeout_ms;
  return http.start(std::move(request), std::make_unique<Call>(*this, texts.size(), std::move(done)));
}

Result<std::vector<Embedding>> AsyncOpenAiEmbedder::embed(std::span<const std::string> texts) {
  std::vector<Embedding> out;
  out.reserve(texts.size());
  HttpClient http;
  for (std::size_t start_at = 0; start_at < texts.size(); start_at += options_.max_batch) {
    const auto batch = texts.subspan(start_at, std::min(options_.max_batch, texts.size() - start_at));
    std::optional<Result<std::vector<Embedding>>> answer;
    auto call = start(http, std::vector<std::string>(batch.begin(), batch.end()),
                      [&answer](Result<std::vector<Embedding>> r) { answer = std::move(r); });
    if (!call) return std::unexpected(call.error());
    // Ends: curl enforces request_timeout_ms.
    while (!answer) http.poll(100);
    if (!*answer) return std::unexpected(answer->error());
    for (auto& v : **answer) out.push_back(std::move(v));
  }
  return out;
}

}  // namespace cascade
