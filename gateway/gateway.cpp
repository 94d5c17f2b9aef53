#include "gateway/gateway.h"

#include <prometheus/text_serializer.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <charconv>
#include <future>
#include <sstream>

#include "events/cancel_event.h"
#include "events/request_fingerprint.h"
#include "cache/semantic.h"
#include "gateway/gateway_impl.h"
#include "gateway/mcp_endpoint.h"

namespace cascade {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "gateway";
  std::string out;
  for (const char c : std::string_view(name)) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    out.push_back(ok ? c : '_');
  }
  return out;
}

}  // namespace

GatewayMetrics::GatewayMetrics(prometheus::Registry& registry)
    : responses(prometheus::BuildCounter()
                    .Name("cascade_gateway_responses_total")
                    .Help("HTTP responses of the gateway, by API and status")
                    .Register(registry)),
      in_flight(prometheus::BuildGauge()
                    .Name("cascade_gateway_in_flight")
                    .Help("Requests waiting for or streaming their answer")
                    .Register(registry)
                    .Add({})),
      duration(prometheus::BuildHistogram()
                   .Name("cascade_gateway_request_duration_seconds")
                   .Help("From a request's arrival to its response's last byte, by API")
                   .Register(registry)),
      first_byte(prometheus::BuildHistogram()
                     .Name("cascade_gateway_first_byte_seconds")
                     .Help("From a request's arrival to the first byte of its answer, by API")
                     .Register(registry)),
      cancels(prometheus::BuildCounter()
                  .Name("cascade_gateway_cancels_total")
                  .Help("Cancel events published, by reason (client_closed, timeout, shutdown)")
                  .Register(registry)),
      not_delivered(prometheus::BuildCounter()
                        .Name("cascade_gateway_prompts_not_delivered_total")
                        .Help("Prompt events Kafka did not take (the client got 503)")
                        .Register(registry)
                        .Add({})) {}

Result<std::uint64_t> Gateway::Impl::produce_prompt(const PromptEvent& event) {
  const std::string payload = to_json(event).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  const std::uint64_t token = next_token++;
  OutgoingRecord record;
  // Spreads a tenant over every partition, identical requests on one
  // (docs/events.md, "Prompt event key").
  const std::string key = prompt_event_key(event);
  record.key = key;
  record.value = payload;
  record.token = token;
  auto queued = producer->produce(config().kafka.requests_topic, record);
  if (!queued) return std::unexpected(queued.error());
  if (*queued != KafkaProducer::Enqueued::yes) return fail(ErrorCode::unavailable, "Kafka's producer queue is full");
  pending_tokens.emplace(token, event.id);
  prompts++;
  return token;
}

void Gateway::Impl::publish_cancel(const std::string& id, const std::string& tenant, std::string_view reason) {
  const std::string payload = make_cancel_event(CancelEvent{id, tenant, std::string(reason), now_ms()});
  OutgoingRecord record;
  record.key = id;
  record.value = payload;
  if (auto queued = producer->produce(config().kafka.cancels_topic, record);
      !queued || *queued != KafkaProducer::Enqueued::yes) {
    spdlog::warn("gateway: could not publish the cancel of request {}: {}", id,
                 queued ? "producer queue full" : queued.error().message);
    return;
  }
  cancels++;
  metrics->cancels.Add({{"reason", std::string(reason)}}).Increment();
}

void Gateway::Impl::dispatch(const GatewayReply& reply) {
  const auto it = pending.find(reply.event.id);
  if (it == pending.end()) return;  // a request answered, timed out or from before a restart
  if (auto exchange = it->second.lock()) {
    exchange->on_reply(reply);
  } else {
    pending.erase(it);
  }
}

void Gateway::Impl::kafka_loop() {
  while (!stopping.load()) {
    producer->poll(0);
    auto records = replies->poll_batch(20, 1024);
    if (records.empty()) continue;
    std::vector<GatewayReply> batch;
    batch.reserve(records.size());
    for (const KafkaRecord& record : records) {
      if (!record.ok()) {
        if (!record.partition_end()) spdlog::warn("gateway: reply topic: {}", record.error());
        continue;
      }
      auto event = parse_reply_event(record.payload());
      if (!event) {
        spdlog::warn("gateway: skipping a reply event ({}/{}): {}", record.partition(), record.offset(),
                     event.error().message);
        continue;
      }
      GatewayReply reply{std::move(*event), std::nullopt};
      if (reply.event.type == "final") {
        auto final = parse_final_event(reply.event);
        if (final) reply.final = std::move(*final);
      }
      batch.push_back(std::move(reply));
    }
    if (!batch.empty()) {
      asio::post(ioc, [this, batch = std::move(batch)] {
        for (const GatewayReply& reply : batch) dispatch(reply);
      });
    }
  }
}

std::string Gateway::Impl::metrics_text() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry->Collect());
  return out.str();
}

namespace {

ErrorCode error_code_of(std::string_view code) {
  for (ErrorCode c : {ErrorCode::invalid_request, ErrorCode::budget_exceeded, ErrorCode::rate_limited,
                      ErrorCode::provider_error, ErrorCode::timeout, ErrorCode::unavailable, ErrorCode::cancelled}) {
    if (to_string(c) == code) return c;
  }
  return ErrorCode::internal;
}

// A request submitted by a hosted front door: its answer goes to a callback.
class CallbackExchange final : public PendingExchange, public std::enable_shared_from_this<CallbackExchange> {
 public:
  CallbackExchange(Gateway::Impl& g, std::string id, std::string tenant, std::function<void(Result<FinalReply>)> done)
      : g_(g), id_(std::move(id)), tenant_(std::move(tenant)), done_(std::move(done)), deadline_(g.ioc) {}

  void arm(std::chrono::milliseconds timeout) {
    deadline_.expires_after(timeout);
    deadline_.async_wait([self = shared_from_this(), timeout](boost::system::error_code ec) {
      if (ec || !self->done_) return;
      self->g_.publish_cancel(self->id_, self->tenant_, "timeout");
      self->finish(fail(ErrorCode::timeout, "no answer within gateway.request_timeout_ms (" +
                                                std::to_string(timeout.count()) + " ms); the request was cancelled"));
    });
  }
  void on_reply(const GatewayReply& reply) override {
    if (reply.event.type == "final") {
      if (reply.final) return finish(*reply.final);
      return finish(fail(ErrorCode::internal, "the worker's final event could not be read"));
    }
    if (reply.event.type == "error") {
      const auto error = reply.event.body.value("error", nlohmann::json::object());
      finish(std::unexpected(Error{error_code_of(error.value("code", std::string("internal"))),
                                   error.value("message", std::string("the request failed"))}));
    }
  }
  void on_not_delivered(std::string_view why) override {
    finish(fail(ErrorCode::unavailable, "Kafka did not take the request: " + std::string(why)));
  }
  void on_shutdown() override {
    g_.publish_cancel(id_, tenant_, "shutdown");
    finish(fail(ErrorCode::unavailable, "the gateway is shutting down; retry"));
  }

 private:
  void finish(Result<FinalReply> outcome) {
    if (!done_) return;
    auto done = std::move(done_);
    done_ = nullptr;
    deadline_.cancel();
    g_.pending.erase(id_);
    g_.metrics->in_flight.Decrement();
    done(std::move(outcome));
  }

  Gateway::Impl& g_;
  std::string id_;
  std::string tenant_;
  std::function<void(Result<FinalReply>)> done_;
  boost::asio::steady_timer deadline_;
};

}  // namespace

void Gateway::submit(PromptEvent event, std::function<void(Result<FinalReply>)> done) {
  Impl* s = impl_.get();
  asio::post(s->ioc, [s, event = std::move(event), done = std::move(done)]() mutable {
    if (s->stopping.load()) return done(fail(ErrorCode::unavailable, "the gateway is shutting down; retry"));
    if (s->pending.size() >= static_cast<std::size_t>(s->config().gateway.max_in_flight)) {
      s->rejected_busy++;
      return done(fail(ErrorCode::rate_limited, "the gateway has gateway.max_in_flight requests in flight"));
    }
    event.reply_to = s->reply_topic;
    event.stream = false;
    auto exchange = std::make_shared<CallbackExchange>(*s, event.id, event.tenant, std::move(done));
    // Registered first: finish() undoes both if Kafka does not take it.
    s->pending[event.id] = exchange;
    s->metrics->in_flight.Increment();
    if (auto token = s->produce_prompt(event); !token) return exchange->on_not_delivered(token.error().message);
    exchange->arm(std::chrono::milliseconds(s->config().gateway.request_timeout_ms));
  });
}

Result<std::unique_ptr<Gateway>> Gateway::start(GatewayOptions options) {
  if (!options.config || !options.catalog)
    return fail(ErrorCode::invalid_request, "gateway: a config and a catalog are required");
  const GatewayConfig& g = options.config->gateway;
  if (g.auth == "keys" && !options.keys)
    return fail(ErrorCode::invalid_request, "gateway: gateway.auth is keys but no key table was given");
  auto gateway = std::unique_ptr<Gateway>(new Gateway());
  gateway->impl_ = std::make_unique<Impl>();
  Impl& s = *gateway->impl_;
  s.options = std::move(options);
  if (s.options.mcp) s.options.routes.emplace_back("/mcp", gateway::mcp_route(s.options.mcp));
  const Config& config = s.config();
  s.reply_topic = !g.reply_topic.empty() ? g.reply_topic
                                          : "cascade.gateway." + (g.instance.empty() ? host_name() : g.instance) + ".replies";
  s.metrics = std::make_unique<GatewayMetrics>(*s.registry);

  // Its own reply topic: created here (deleting retention on a real cluster:
  // replies are read live, never replayed).
  const TopicSpec topic{s.reply_topic, config.kafka.partitions, {{"retention.ms", "3600000"}}};
  auto created = s.options.broker ? s.options.broker->create_topic(topic)
                                  : ensure_topic(config.kafka, s.options.bootstrap, topic);
  if (!created) return std::unexpected(created.error());

  KafkaProducerOptions producer_options;
  producer_options.java_partitioner = true;
  Impl* impl = &s;
  producer_options.on_delivery = [impl](const DeliveryReport& report) {
    if (report.delivered || report.token == 0) return;
    std::string why(report.error);
    asio::post(impl->ioc, [impl, token = report.token, why = std::move(why)] {
      const auto it = impl->pending_tokens.find(token);
      if (it == impl->pending_tokens.end()) return;
      const std::string id = it->second;
      impl->pending_tokens.erase(it);
      impl->metrics->not_delivered.Increment();
      if (const auto p = impl->pending.find(id); p != impl->pending.end()) {
        if (auto exchange = p->second.lock()) exchange->on_not_delivered(why);
      }
    });
  };
  auto producer = KafkaProducer::create(config.kafka, s.options.bootstrap, std::move(producer_options));
  if (!producer) return std::unexpected(producer.error());
  s.producer = std::move(*producer);

  PartitionReaderOptions reader_options;
  reader_options.topics = {s.reply_topic};
  reader_options.name = "gateway-replies";
  reader_options.start = ReadStart::end;
  auto replies = PartitionReader::open(config.kafka, s.options.bootstrap, std::move(reader_options));
  if (!replies) return std::unexpected(replies.error());
  s.replies = std::move(*replies);

  const EmbedderConfig& e = config.cache.semantic.embedder;
  if (e.kind == "openai") {
    if (auto remote = OpenAiEmbedder::create(openai_embedder_options(e))) {
      s.embedder = std::move(*remote);
      s.embedder_blocks = true;
      s.embed_pool = std::make_unique<asio::thread_pool>(1);
    } else {
      spdlog::warn("gateway: /v1/embeddings disabled: {}", remote.error().message);
    }
  } else {
    s.embedder = std::make_unique<BuiltinEmbedder>(builtin_embedder_options(e));
  }

  const std::string& listen = g.listen;
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) return fail(ErrorCode::invalid_request, "gateway.listen '" + listen + "' is not host:port");
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";
  int port = -1;
  const auto [end, ec] = std::from_chars(listen.data() + colon + 1, listen.data() + listen.size(), port);
  if (ec != std::errc() || end != listen.data() + listen.size() || port < 0 || port > 65535)
    return fail(ErrorCode::invalid_request, "gateway.listen '" + listen + "' has no valid port");
  try {
    const tcp::endpoint endpoint(asio::ip::make_address(host.empty() || host == "*" ? "0.0.0.0" : host),
                                 static_cast<std::uint16_t>(port));
    s.acceptor.emplace(s.ioc);
    s.acceptor->open(endpoint.protocol());
    s.acceptor->set_option(asio::socket_base::reuse_address(true));
    s.acceptor->bind(endpoint);
    s.acceptor->listen();
    s.port = s.acceptor->local_endpoint().port();
  } catch (const std::exception& ex) {
    return fail(ErrorCode::unavailable, "gateway: cannot listen on " + listen + ": " + ex.what());
  }
  s.accept();
  s.kafka_thread = std::thread([&s] { s.kafka_loop(); });
  s.io_thread = std::thread([&s] { s.ioc.run(); });
  s.ready = true;
  spdlog::info("gateway: listening on {}:{} (auth {}), replies on {}", host, s.port, g.auth, s.reply_topic);
  return gateway;
}

Gateway::~Gateway() { stop(); }

std::uint16_t Gateway::port() const { return impl_->port; }
const std::string& Gateway::reply_topic() const { return impl_->reply_topic; }

GatewayStats Gateway::stats() const {
  return GatewayStats{impl_->requests.load(), impl_->prompts.load(), impl_->cancels.load(),
                      impl_->rejected_busy.load(), static_cast<std::size_t>(impl_->metrics->in_flight.Value())};
}

void Gateway::stop() {
  if (!impl_ || impl_->stopping.exchange(true)) return;
  Impl& s = *impl_;
  s.ready = false;
  // On the I/O thread: every waiting request is cancelled and answered, the
  // listener closes; then the loop runs out of work once connections close.
  std::promise<void> drained;
  asio::post(s.ioc, [&s, &drained] {
    boost::system::error_code ec;
    if (s.acceptor) s.acceptor->close(ec);
    std::vector<std::shared_ptr<PendingExchange>> waiting;
    for (auto& [id, weak] : s.pending) {
      if (auto exchange = weak.lock()) waiting.push_back(std::move(exchange));
    }
    for (auto& exchange : waiting) exchange->on_shutdown();
    drained.set_value();
  });
  if (s.io_thread.joinable()) drained.get_future().wait_for(std::chrono::seconds(5));
  if (s.kafka_thread.joinable()) {
    s.replies->wake();
    s.kafka_thread.join();
  }
  s.producer->flush(5000);
  s.ioc.stop();
  if (s.io_thread.joinable()) s.io_thread.join();
  if (s.embed_pool) s.embed_pool->join();
  spdlog::info("gateway: stopped");
}

}  // namespace cascade
