#include "apps/cascade/mcp_stdio_backend.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include "apps/cascade/ledger_commands.h"
#include "budgets/budgets.h"
#include "catalog/catalog.h"
#include "client/cascade_client.h"
#include "kafka/kafka.h"
#include "providers/provider.h"
#include "tokenizer/tokenizer.h"

namespace cascade::cli {
namespace {

using Clock = std::chrono::steady_clock;

// The ledger's replies are small JSON; a larger body is not the ledger's.
constexpr std::size_t kMaxLedgerReplyBytes = 16 << 20;

std::string new_mcp_request_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "mcp-%016llx", static_cast<unsigned long long>(rng()));
  return buffer;
}

ErrorCode error_code_of(std::string_view code) {
  for (const ErrorCode c : {ErrorCode::invalid_request, ErrorCode::budget_exceeded, ErrorCode::provider_error,
                            ErrorCode::timeout, ErrorCode::unavailable, ErrorCode::rate_limited,
                            ErrorCode::cancelled})
    if (to_string(c) == code) return c;
  return ErrorCode::internal;  // a code this build does not know: a failure all the same
}

struct HttpReply {
  long status = 0;
  std::string body;
};

// One GET on a curl multi handle of its own, driven here until done.
Result<HttpReply> http_get(const std::string& url, const std::string& bearer, int timeout_ms) {
  struct Collector final : HttpResponseHandler {
    HttpReply reply;
    bool done = false;
    bool too_large = false;
    CURLcode result = CURLE_OK;
    std::string error;
    void on_status(long status) override { reply.status = status; }
    bool on_body(std::string_view bytes) override {
      if (reply.body.size() + bytes.size() > kMaxLedgerReplyBytes) {
        too_large = true;
        return false;
      }
      reply.body.append(bytes);
      return true;
    }
    void on_done(CURLcode code, std::string_view message) override {
      result = code;
      error = message.empty() ? curl_easy_strerror(code) : std::string(message);
      done = true;
    }
  } collector;
  HttpClient http;
  HttpRequest request;
  request.method = "GET";
  request.url = url;
  request.headers = {"Accept: application/json"};
  if (!bearer.empty()) request.headers.push_back("Authorization: Bearer " + bearer);
  request.connect_timeout_ms = std::min(timeout_ms, 5000);
  request.total_timeout_ms = timeout_ms;
  http.start(std::move(request), collector);
  while (!collector.done) http.poll(100);
  if (collector.too_large) return fail(ErrorCode::internal, "the reply is larger than 16 MiB");
  if (collector.result != CURLE_OK)
    return fail(collector.result == CURLE_OPERATION_TIMEDOUT ? ErrorCode::timeout : ErrorCode::unavailable,
                collector.error);
  return collector.reply;
}

}  // namespace

std::string mcp_ledger_url(const Config& config) {
  return config.mcp.ledger_url.empty() ? "http://" + config.ledger.metrics_listen : config.mcp.ledger_url;
}

struct StdioMcpBackend::Impl {
  Config config;
  ModelCatalog catalog;
  std::shared_ptr<const TokenCounter> tokens;
  std::unique_ptr<RouteAdvisor> advisor;  // refers to `catalog`: declared after it
  std::unique_ptr<CascadeClient> client;  // used by the thread only
  std::string ledger_url;
  std::string ledger_key;  // an admin key for a ledger off loopback; "" = none. Never logged.

  // Work for the thread, and completions it awaits.
  std::mutex mu;
  std::condition_variable wake;
  // A call for the thread, and how to refuse it when the thread is gone.
  struct Job {
    std::function<void()> run;
    std::function<void(Error)> refuse;
  };
  std::deque<Job> queue;
  bool stopping = false;
  std::thread thread;
  struct Awaited {
    Clock::time_point deadline;
    McpCallback<CompletionAnswer> done;
  };
  std::unordered_map<std::string, Awaited> awaited;  // by request id; the thread's only

  void post(Job job) {
    {
      std::lock_guard lock(mu);
      if (!stopping) {
        queue.push_back(std::move(job));
        wake.notify_one();
        return;
      }
    }
    job.refuse(Error{ErrorCode::unavailable, "cascade mcp is stopping"});
  }

  void run() {
    while (true) {
      std::deque<Job> jobs;
      {
        std::unique_lock lock(mu);
        // With answers awaited the loop keeps polling Kafka; else it sleeps until work arrives.
        wake.wait_for(lock, awaited.empty() ? std::chrono::milliseconds(500) : std::chrono::milliseconds(0),
                      [&] { return stopping || !queue.empty(); });
        if (stopping) break;
        jobs.swap(queue);
      }
      for (Job& job : jobs) job.run();
      if (!awaited.empty()) collect_answers();
    }
    // What is left never gets its answer here: every call is still answered once.
    std::deque<Job> left;
    {
      std::lock_guard lock(mu);
      left.swap(queue);
    }
    for (Job& job : left) job.refuse(Error{ErrorCode::unavailable, "cascade mcp stopped before the call ran"});
    for (auto& [id, a] : awaited) a.done(fail(ErrorCode::unavailable, "cascade mcp stopped before the answer came"));
    awaited.clear();
  }

  void send_prompt(const McpCaller& caller, const CompletionRequest& request, McpCallback<CompletionAnswer> done) {
    PromptEvent event = completion_prompt_event(caller, request, new_mcp_request_id(), client->reply_topic());
    const std::string id = event.id;
    if (auto sent = client->send(std::move(event)); !sent) {
      done(std::unexpected(sent.error()));
      return;
    }
    client->poll(0);  // hands the event to the producer now
    spdlog::debug("mcp: request {} sent for tenant {}", id, caller.tenant);
    awaited.emplace(id, Awaited{Clock::now() + std::chrono::milliseconds(config.mcp.timeout_ms), std::move(done)});
  }

  void collect_answers() {
    client->poll(50);
    for (auto& [id, reply] : client->take_answered()) {
      auto it = awaited.find(id);
      if (it == awaited.end()) continue;
      McpCallback<CompletionAnswer> done = std::move(it->second.done);
      awaited.erase(it);
      const ReplyEvent& terminal = *reply.terminal;
      if (terminal.type == "final") {
        auto final = parse_final_event(terminal.body.dump());
        if (!final) {
          done(std::unexpected(final.error()));
        } else {
          done(completion_answer(std::move(*final), catalog));
        }
      } else {
        const auto& error = terminal.body.value("error", nlohmann::json::object());
        done(fail(error_code_of(error.value("code", "")), error.value("message", "the request failed")));
      }
    }
    const auto now = Clock::now();
    for (auto it = awaited.begin(); it != awaited.end();) {
      if (now < it->second.deadline) {
        ++it;
        continue;
      }
      it->second.done(fail(ErrorCode::timeout, "no answer within " + std::to_string(config.mcp.timeout_ms) +
                                                   " ms (mcp.timeout_ms): is a `cascade worker` running on " +
                                                   config.kafka.bootstrap + "?"));
      it = awaited.erase(it);
    }
  }

  Result<UsageSummary> fetch_usage(const McpCaller& caller, const UsageRequest& request) {
    const std::string url = ledger_usage_url(ledger_url, caller, request);
    auto reply = http_get(url, ledger_key, config.mcp.timeout_ms);
    if (!reply)
      return fail(reply.error().code, "the ledger at " + ledger_url + " did not answer (is `cascade ledger` running? "
                                      "mcp.ledger_url or ledger.metrics_listen says where): " + reply.error().message);
    if (reply->status == 401 || reply->status == 403)
      return fail(ErrorCode::unavailable,
                  "the ledger at " + ledger_url + (ledger_key.empty() ? " asks for an admin key" : " refused the admin key") +
                      ": set mcp.ledger_key_env to the name of a variable holding one (`cascade keys create --admin`)");
    if (reply->status != 200) {
      const auto body = nlohmann::json::parse(reply->body, nullptr, false);
      const std::string message = body.is_object() ? body.value("error", reply->body) : reply->body.substr(0, 200);
      return fail(reply->status < 500 ? ErrorCode::invalid_request : ErrorCode::unavailable,
                  "the ledger answered HTTP " + std::to_string(reply->status) + ": " + message);
    }
    return parse_ledger_usage(reply->body, caller);
  }

  Result<BudgetSetting> publish_budget_change(const McpCaller& caller, const BudgetChange& change) {
    // The budgets in force now, so limits left out keep their value.
    auto book = read_budget_book(config, false);
    if (!book) return std::unexpected(book.error());
    auto record = budget_record(caller, change, **book, catalog, config.kafka.budgets_topic, now_ms());
    if (!record) return std::unexpected(record.error());
    if (auto ok = produce_record_and_wait(config.kafka, config.kafka.bootstrap, config.kafka.budgets_topic, record->key,
                                          record->value, config.mcp.timeout_ms);
        !ok)
      return std::unexpected(ok.error());
    spdlog::info("mcp: tenant {} {} its budget {} (daily {} monthly {} soft {}%)", caller.tenant,
                 record->setting.cleared ? "cleared" : "set", record->setting.scope.empty() ? "(tenant)" : record->setting.scope,
                 record->setting.daily_usd, record->setting.monthly_usd, record->setting.soft_percent);
    return std::move(record->setting);
  }
};

StdioMcpBackend::StdioMcpBackend(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

StdioMcpBackend::~StdioMcpBackend() { stop(); }

Result<std::shared_ptr<StdioMcpBackend>> StdioMcpBackend::open(const Config& config) {
  if (config.kafka.embedded())
    return fail(ErrorCode::invalid_request,
                "no brokers configured: pass --bootstrap-file or set CASCADE_KAFKA_BOOTSTRAP to the workers' cluster");
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  auto catalog = ModelCatalog::load(config.catalog);
  if (!catalog) return std::unexpected(catalog.error());
  impl->catalog = std::move(*catalog);
  auto tokens = load_token_counter(config.tokenizer);
  if (!tokens) return std::unexpected(tokens.error());
  impl->tokens = *tokens;
  auto advisor = RouteAdvisor::create(config, impl->catalog, impl->tokens);
  if (!advisor) return std::unexpected(advisor.error());
  impl->advisor = std::move(*advisor);
  auto client = CascadeClient::open(config.kafka, config.kafka.bootstrap, config.kafka.replies_topic);
  if (!client) return std::unexpected(client.error());
  impl->client = std::move(*client);
  impl->ledger_url = mcp_ledger_url(config);
  if (!config.mcp.ledger_key_env.empty()) {
    if (auto key = process_env()(config.mcp.ledger_key_env); key && !key->empty()) {
      impl->ledger_key = *key;
    } else {
      spdlog::warn("mcp: mcp.ledger_key_env names {}, which is not set: query_usage asks the ledger without a key",
                   config.mcp.ledger_key_env);
    }
  }
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->run(); });
  return std::shared_ptr<StdioMcpBackend>(new StdioMcpBackend(std::move(impl)));
}

void StdioMcpBackend::stop() {
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopping) return;
    impl_->stopping = true;
    impl_->wake.notify_one();
  }
  if (impl_->thread.joinable()) impl_->thread.join();
}

void StdioMcpBackend::complete_prompt(const McpCaller& caller, CompletionRequest request,
                                      McpCallback<CompletionAnswer> done) {
  auto shared_done = std::make_shared<McpCallback<CompletionAnswer>>(std::move(done));
  impl_->post({[impl = impl_.get(), caller, request = std::move(request),
                shared_done] { impl->send_prompt(caller, request, std::move(*shared_done)); },
               [shared_done](Error e) { (*shared_done)(std::unexpected(std::move(e))); }});
}

void StdioMcpBackend::estimate_costs(const McpCaller&, CostEstimateRequest request, McpCallback<CostEstimate> done) {
  done(estimate_model_costs(impl_->catalog, impl_->tokens.get(), request));
}

void StdioMcpBackend::recommend_route(const McpCaller& caller, RouteRequest request,
                                      McpCallback<RouteRecommendation> done) {
  done(impl_->advisor->recommend(caller, request));
}

void StdioMcpBackend::query_usage(const McpCaller& caller, UsageRequest request, McpCallback<UsageSummary> done) {
  auto shared_done = std::make_shared<McpCallback<UsageSummary>>(std::move(done));
  impl_->post({[impl = impl_.get(), caller, request = std::move(request),
                shared_done] { (*shared_done)(impl->fetch_usage(caller, request)); },
               [shared_done](Error e) { (*shared_done)(std::unexpected(std::move(e))); }});
}

void StdioMcpBackend::set_budget(const McpCaller& caller, BudgetChange change, McpCallback<BudgetSetting> done) {
  auto shared_done = std::make_shared<McpCallback<BudgetSetting>>(std::move(done));
  impl_->post({[impl = impl_.get(), caller, change = std::move(change),
                shared_done] { (*shared_done)(impl->publish_budget_change(caller, change)); },
               [shared_done](Error e) { (*shared_done)(std::unexpected(std::move(e))); }});
}

}  // namespace cascade::cli
