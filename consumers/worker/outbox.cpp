#include "consumers/worker/outbox.h"

#include <spdlog/spdlog.h>

#include "events/events.h"

namespace cascade {
namespace {

constexpr int kMaxDeliveryAttempts = 5;
// An event is identified by its request's serial and its index among the
// request's tracked events, in 4 bits.
constexpr std::size_t kMaxOutgoing = 16;

std::uint64_t token_of(std::uint64_t serial, std::size_t index) { return (serial << 4) | index; }

}  // namespace

Outbox::Outbox(const KafkaConfig& config, RequestTable& requests, EventProducer& producer,
               std::function<void(std::uint64_t serial)> on_delivered)
    : config_(config), requests_(requests), producer_(producer), on_delivered_(std::move(on_delivered)) {}

void Outbox::send(Request& r, const std::string& topic, std::string key, std::string payload) {
  auto& outgoing = r.delivery.outgoing;
  if (outgoing.size() >= kMaxOutgoing) {
    spdlog::error("worker: too many tracked events for request {}", r.event.id);
    return;
  }
  outgoing.push_back(OutgoingEvent{topic, std::move(key), std::move(payload), 0});
  r.delivery.pending++;
  produce(r, token_of(r.serial, outgoing.size() - 1));
}

void Outbox::terminal_sent(Request& r) {
  if (r.delivery.pending == 0) on_delivered_(r.serial);
}

void Outbox::produce(Request& r, std::uint64_t token) {
  OutgoingEvent& out = r.delivery.outgoing[token & 0xF];
  if (auto ok = producer_.produce(out.topic, out.key, out.payload, token); !ok) {
    // A client error queuing cannot fix now: try again next iteration, a while.
    if (++out.attempts < kMaxDeliveryAttempts * 20) {
      retry_.push_back(token);
    } else {
      spdlog::error("worker: cannot enqueue event of request {}: {}", r.event.id, ok.error().message);
      delivered_one(r);
    }
  }
}

void Outbox::delivered_one(Request& r) {
  if (--r.delivery.pending == 0 && r.terminal()) on_delivered_(r.serial);
}

void Outbox::on_delivery(const DeliveryReport& report) {
  Request* r = requests_.find(report.token >> 4);
  if (!r) return;
  const std::size_t index = report.token & 0xF;
  if (index >= r->delivery.outgoing.size()) return;
  if (!report.delivered) {
    OutgoingEvent& out = r->delivery.outgoing[index];
    if (report.permanent && out.topic != config_.dlq_topic) {
      // The requester's reply topic cannot take the event: keep it in the DLQ.
      DeadLetter letter;
      letter.reason = "reply undeliverable to '" + out.topic + "': " + std::string(report.error);
      letter.source_topic = config_.requests_topic;
      letter.source_partition = r->partition;
      letter.source_offset = r->offset;
      letter.id = r->event.id;
      letter.tenant = r->event.tenant;
      letter.payload = out.payload;
      out = OutgoingEvent{config_.dlq_topic, r->event.tenant, make_dead_letter(letter), 0};
      retry_.push_back(report.token);
      return;
    }
    if (++out.attempts < kMaxDeliveryAttempts) {
      retry_.push_back(report.token);
      return;
    }
    spdlog::error("worker: giving up delivering an event of request {} to {}: {}", r->event.id, out.topic,
                  report.error);
  }
  delivered_one(*r);
}

void Outbox::resend_failed() {
  if (retry_.empty()) return;
  for (const auto token : std::exchange(retry_, {})) {
    if (Request* r = requests_.find(token >> 4)) produce(*r, token);
  }
}

}  // namespace cascade
