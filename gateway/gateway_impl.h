#pragma once
// The gateway's insides, shared by gateway.cpp (Kafka side, start/stop) and
// http_session.cpp (connections). Everything but the atomics and the Kafka
// clients' own thread safety lives on the I/O thread.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>

#include "embeddings/embeddings.h"
#include "events/events.h"
#include "gateway/api.h"
#include "gateway/gateway.h"

namespace cascade {

using GatewayClock = std::chrono::steady_clock;

// One reply event as the Kafka thread hands it over: parsed once there.
struct GatewayReply {
  ReplyEvent event;
  std::optional<FinalReply> final;  // for type "final"
};

// One request waiting for (or streaming) its answer. Implemented by the
// HTTP session that owns it; the gateway reaches it by id while it waits.
class PendingExchange {
 public:
  virtual ~PendingExchange() = default;
  virtual void on_reply(const GatewayReply& reply) = 0;
  // Its prompt event could not be delivered to Kafka.
  virtual void on_not_delivered(std::string_view why) = 0;
  // The gateway is stopping.
  virtual void on_shutdown() = 0;
};

struct GatewayMetrics {
  explicit GatewayMetrics(prometheus::Registry& registry);
  prometheus::Family<prometheus::Counter>& responses;  // by api and status
  prometheus::Gauge& in_flight;
  prometheus::Family<prometheus::Histogram>& duration;         // by api: request to last byte
  prometheus::Family<prometheus::Histogram>& first_byte;       // by api: request to first answer byte
  prometheus::Family<prometheus::Counter>& cancels;            // by reason
  prometheus::Counter& not_delivered;
};

struct Gateway::Impl {
  GatewayOptions options;
  const Config& config() const { return *options.config; }
  std::string reply_topic;

  boost::asio::io_context ioc;
  std::optional<boost::asio::ip::tcp::acceptor> acceptor;
  std::uint16_t port = 0;
  std::thread io_thread;
  std::thread kafka_thread;
  std::atomic<bool> stopping{false};
  std::atomic<bool> ready{false};

  std::unique_ptr<KafkaProducer> producer;
  std::unique_ptr<PartitionReader> replies;

  // I/O thread only: requests waiting for reply events, by prompt id and by
  // the token of their prompt event's delivery.
  std::unordered_map<std::string, std::weak_ptr<PendingExchange>> pending;
  std::unordered_map<std::uint64_t, std::string> pending_tokens;
  std::uint64_t next_token = 1;

  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  std::unique_ptr<GatewayMetrics> metrics;

  // /v1/embeddings: the configured embedder. The builtin one runs inline (a
  // few microseconds); a remote one blocks, so it runs on its own thread.
  std::unique_ptr<Embedder> embedder;
  bool embedder_blocks = false;
  std::unique_ptr<boost::asio::thread_pool> embed_pool;

  std::atomic<std::uint64_t> requests{0}, prompts{0}, cancels{0}, rejected_busy{0};

  void accept();
  // Produces a prompt event; false (and why) when it cannot be queued.
  Result<std::uint64_t> produce_prompt(const PromptEvent& event);
  // Publishes a cancel for a request whose client is gone or timed out.
  void publish_cancel(const std::string& id, const std::string& tenant, std::string_view reason);
  void dispatch(const GatewayReply& reply);
  void kafka_loop();
  std::string metrics_text() const;
};

}  // namespace cascade
