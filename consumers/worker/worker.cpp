#include "consumers/worker/worker.h"

#include <fcntl.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <deque>
#include <map>
#include <optional>
#include <mutex>
#include <random>
#include <utility>
#include <unordered_map>

#include "consumers/worker/answer_check.h"
#include "consumers/worker/cascade_policy.h"
#include "consumers/worker/judge.h"
#include "consumers/worker/offset_watermark.h"
#include "consumers/worker/single_flight.h"
#include "budgets/budgets.h"
#include "events/events.h"
#include "events/quality_event.h"
#include "events/request_fingerprint.h"
#include "kafka/kafka.h"
#include "producers/event_producer.h"
#include "providers/provider.h"
#include "resilience/resilience.h"
#include "router/router.h"
#include "tokenizer/tokenizer.h"

namespace cascade {
namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// The request's tags (metadata.tags; entries that are not strings are left
// out), for per-tag budgets and the cost event.
std::vector<std::string> request_tags(const PromptEvent& event) {
  std::vector<std::string> tags;
  const auto it = event.metadata.find("tags");
  if (it == event.metadata.end() || !it->is_array()) return tags;
  for (const auto& tag : *it) {
    if (tag.is_string() && !tag.get_ref<const std::string&>().empty()) tags.push_back(tag.get<std::string>());
  }
  return tags;
}

constexpr int kMaxDeliveryAttempts = 5;
constexpr int kConsumeBatch = 256;
constexpr std::size_t kMaxOutgoing = 16;  // tokens carry the outgoing index in 4 bits

}  // namespace

class Worker::Loop final : public DeliveryListener, public RebalanceListener {
 public:
  Loop(const WorkerOptions& options, WorkerStats& stats, int index)
      : options_(options),
        config_(options.config),
        stats_(stats),
        index_(index),
        retry_policy_(options.config.resilience.retry),
        breakers_(options.config.resilience.breaker),
        tokens_(options.tokens ? options.tokens : TokenCounter::bytes_only()),
        pending_spend_(options.config.limits.budget_settle_ms) {
    if (options.metrics) recorder_.emplace(*options.metrics);
  }

  ~Loop() override {
    if (thread_.joinable()) thread_.join();
    if (wake_[0] >= 0) ::close(wake_[0]);
    if (wake_[1] >= 0) ::close(wake_[1]);
  }

  Result<void> init() {
    if (::pipe2(wake_, O_NONBLOCK | O_CLOEXEC) != 0) return fail(ErrorCode::internal, "pipe2 failed");
    http_ = std::make_unique<HttpClient>();
    auto registry = ProviderRegistry::build(config_.providers, *http_, options_.env);
    if (!registry) return std::unexpected(registry.error());
    providers_ = std::make_unique<ProviderRegistry>(std::move(*registry));
    router_ = std::make_unique<Router>(config_.router, *options_.catalog,
                                       [this](std::string_view p) { return providers_->available(p); });
    if (!config_.router.cascade.judge_model.empty()) cascade_judge_ = options_.catalog->find(config_.router.cascade.judge_model);
    if (!config_.router.cascade.agreement_model.empty())
      agreement_model_ = options_.catalog->find(config_.router.cascade.agreement_model);
    if (config_.quality.sample_rate > 0) {
      quality_judge_ = config_.quality.judge_model.empty() ? &options_.catalog->baseline()
                                                           : options_.catalog->find(config_.quality.judge_model);
    }

    auto producer = EventProducer::create(config_.kafka, options_.bootstrap, this);
    if (!producer) return std::unexpected(producer.error());
    producer_ = std::move(*producer);
    producer_->enable_wakeup_fd(wake_[1]);

    auto consumer = GroupConsumer::open(config_.kafka, options_.bootstrap,
                                        {config_.kafka.worker_group, config_.kafka.requests_topic,
                                         config_.worker.commit_interval_ms, this});
    if (!consumer) return std::unexpected(consumer.error());
    consumer_ = std::move(*consumer);
    consumer_->enable_wakeup_fd(wake_[1]);
    return {};
  }

  void launch() { thread_ = std::thread([this] { run(); }); }

  void request_stop(int drain_timeout_ms) {
    drain_deadline_ = Clock::now() + std::chrono::milliseconds(drain_timeout_ms);
    stopping_.store(true);
    wake();
  }

  void request_abort() {
    aborting_.store(true);
    wake();
  }

  void join() {
    if (thread_.joinable()) thread_.join();
  }

  void on_delivery(const DeliveryReport& report) override {
    const std::uint64_t token = report.token;
    auto it = requests_.find(token >> 4);
    if (it == requests_.end()) return;
    Request& r = *it->second;
    const std::size_t index = token & 0xF;
    if (index >= r.outgoing.size()) return;
    if (!report.delivered) {
      Outgoing& out = r.outgoing[index];
      if (report.permanent && out.topic != config_.kafka.dlq_topic) {
        // The requester's reply topic cannot take the event: keep it in the DLQ.
        DeadLetter letter;
        letter.reason = "reply undeliverable to '" + out.topic + "': " + std::string(report.error);
        letter.source_topic = config_.kafka.requests_topic;
        letter.source_partition = r.partition;
        letter.source_offset = r.offset;
        letter.id = r.event.id;
        letter.tenant = r.event.tenant;
        letter.payload = out.payload;
        out = Outgoing{config_.kafka.dlq_topic, r.event.tenant, make_dead_letter(letter), 0};
        retry_.push_back(token);
        return;
      }
      if (++out.attempts < kMaxDeliveryAttempts) {
        retry_.push_back(token);
        return;
      }
      spdlog::error("worker: giving up delivering an event of request {} to {}: {}", r.event.id,
                    out.topic, report.error);
    }
    if (--r.pending == 0 && r.terminal_sent) finished_.push_back(r.serial);
  }

 private:
  struct JudgeCall;  // a grading call (LLM-as-judge), defined with the judges below

  struct Outgoing {
    std::string topic;
    std::string key;
    std::string payload;
    int attempts = 0;
  };

  struct Request final : ChatStreamObserver {
    Loop* loop = nullptr;
    std::uint64_t serial = 0;
    std::int32_t partition = -1;
    std::int64_t offset = -1;
    PromptEvent event;
    RouteDecision route;
    std::int64_t seq = 0;
    std::string content;
    Clock::time_point started;
    Clock::time_point first_token;
    bool got_first_token = false;
    bool streaming = false;
    std::uint64_t transfer = 0;
    // Attempts: the routed model, then its fallbacks (route.fallbacks).
    std::vector<const ModelInfo*> chain;
    std::size_t chain_index = 0;
    int attempts_on_model = 0;
    Clock::time_point attempt_started;
    Clock::time_point last_activity;
    bool attempt_got_token = false;
    BreakerTicket breaker_ticket;  // how the current attempt's breaker let it in
    bool breaker_told_success = false;       // the current attempt counted as a success already
    std::int64_t published_deltas = 0;
    // Outbox sequence of its completed answer (0: none, or not replicated).
    // Its offset is committed only once that is in the changelog, so a worker
    // it is redelivered to after a crash here finds the answer and pays nothing.
    std::uint64_t completed_seq = 0;
    double wasted_cost_usd = 0;  // failed attempts that streamed tokens are paid too
    TokenUsage wasted_usage;
    std::string attempt_notes;    // "; gpt-4o-mini: HTTP 429 -> retry" ...
    std::optional<Error> last_error;
    // Admission: tokens reserved in the tenant's bucket, settled on completion.
    double tokens_reserved = 0;
    std::optional<Clock::time_point> admission_deadline;
    // Provider slots (providers.<name>.max_concurrency).
    bool holds_slot = false;
    bool waiting_for_slot = false;
    Clock::time_point slot_deadline;
    std::vector<Outgoing> outgoing;
    int pending = 0;
    bool terminal_sent = false;
    // Single flight. A leader holds its fingerprint while its flight is open
    // and the serials of the requests following it; a follower makes no call
    // of its own and is answered when its leader ends.
    std::string fingerprint;  // request_fingerprint, when the cache is not off
    std::string flight;
    std::vector<std::uint64_t> followers;
    bool duplicate_of_leader = false;  // follows a leader with its own id: the same request delivered twice
    // Semantic cache: the request's query (its vector, once known, is indexed
    // with its answer), and whether it waits for a remote embedding.
    std::optional<AnswerCache::SemanticQuery> semantic;
    bool waiting_for_embedding = false;
    // Cheap-first cascade (docs/routing.md). While `buffering`, the cheap
    // attempts' answer is held back: nothing of it reaches the reply topic or
    // followers until it passed its checks. `escalation` is where a rejected
    // answer goes (the next tier's model and its fallbacks).
    bool buffering = false;
    std::vector<const ModelInfo*> escalation;
    std::optional<ChatCompletion> held;  // a checked cheap answer waiting for its judge or agreement call
    std::uint64_t judge = 0;             // that judge call
    // The agreement model's call, asked the same request alongside the cheap
    // model (0 = none running), and its answer once it ended.
    std::uint64_t agreement = 0;
    std::optional<Result<std::string>> agreement_answer;
    bool awaiting_agreement = false;  // `held` waits for the agreement call
    std::string check_note;           // what the checks so far said, for the accept reason
    std::string check_kind;           // and its metrics label
    std::vector<std::string> tags;       // metadata.tags
    std::int64_t input_tokens = -1;      // estimated (o200k_base) once needed; -1 = not yet
    // Budgets: this request's estimate counted in pending_spend_ until it ends,
    // and what it was charged (its cost event's cost_usd).
    std::uint64_t budget_reservation = 0;
    double charged_usd = 0;

    void on_delta(std::string_view text) override { loop->on_delta(*this, text); }
    void on_complete(Result<ChatCompletion> outcome) override {
      streaming = false;
      loop->on_complete(*this, std::move(outcome));
    }
  };

  // ------------------------------------------------------------ loop ----

  void run() {
    while (true) {
      drain_wake_pipe();
      if (aborting_.load()) break;
      const bool stopping = stopping_.load();
      bool more_waiting = false;
      if (!stopping) more_waiting = consume_batch();
      resend_retries();
      const int next_retry_ms = run_due_timers();
      enforce_stream_timeouts();
      int wait_ms = more_waiting ? 0 : 50;
      if (next_retry_ms >= 0) wait_ms = std::min(wait_ms, next_retry_ms);
      http_->poll(wait_ms, wake_[0]);
      producer_->poll(0);
      finish_completed();
      store_offsets();
      apply_backpressure();
      finish_catch_ups();
      judges_done_.clear();
      // Grading calls still running are waited for too, within the drain time.
      if (stopping && ((requests_.empty() && judges_.empty()) || Clock::now() > drain_deadline_)) break;
    }
    if (aborting_.load()) {
      shutdown_abort();
    } else {
      shutdown_graceful();
    }
  }

  // Returns true when the batch limit was hit (more messages are probably queued;
  // the queue's wake-up fd only fires when it goes from empty to non-empty).
  bool consume_batch() {
    const int room = config_.worker.max_in_flight - static_cast<int>(requests_.size());
    // At capacity the partitions are paused; still poll once to serve rebalances
    // (a message that was already fetched is processed, not dropped).
    const int limit = std::max(1, std::min(kConsumeBatch, room));
    for (int i = 0; i < limit; ++i) {
      std::optional<KafkaRecord> record = consumer_->poll(0);
      if (!record) return false;
      if (record->ok()) {
        handle_message(*record);
      } else if (!record->partition_end()) {
        spdlog::warn("worker: consumer error: {}", record->error());
      }
    }
    return room > 1;
  }

  void handle_message(const KafkaRecord& msg) {
    stats_.consumed++;
    auto& watermark = watermarks_[msg.partition()];
    watermark.track(msg.offset());

    auto owned = std::make_unique<Request>();
    Request& r = *owned;
    r.loop = this;
    r.serial = ++next_serial_;
    r.partition = msg.partition();
    r.offset = msg.offset();
    r.started = Clock::now();
    requests_.emplace(r.serial, std::move(owned));
    const auto in_flight = static_cast<std::int64_t>(requests_.size());
    stats_.in_flight.store(in_flight);
    if (in_flight > stats_.peak_in_flight.load()) stats_.peak_in_flight.store(in_flight);
    if (recorder_) recorder_->in_flight(index_, static_cast<double>(in_flight));

    const std::string_view payload = msg.payload();
    PromptLimits limits{config_.limits.max_event_bytes};
    auto parsed = parse_prompt_event(payload, limits, [this](std::string_view model) {
      return options_.catalog->find(model) != nullptr;
    });
    if (!parsed) {
      reject(r, parsed.error(), payload);
      return;
    }
    r.event = std::move(*parsed);
    r.tags = request_tags(r.event);

    if (options_.completed) {
      if (auto done = options_.completed->get(r.event.tenant, r.event.id)) {
        // Redelivered after a crash: answer again, pay nothing again.
        stats_.replayed++;
        if (recorder_) recorder_->request("replayed");
        emit(r, r.event.reply_to, r.event.id, std::move(done->final_event));
        emit(r, config_.kafka.ledger_topic, r.event.tenant, std::move(done->cost_event));
        mark_terminal(r);
        return;
      }
    }

    if (r.event.cache != CacheMode::off) {
      if (auto fingerprint = request_fingerprint(r.event, effective_max_tokens(r.event))) {
        r.fingerprint = std::move(*fingerprint);
      } else {
        spdlog::warn("worker: request {} is neither cached nor shared: {}", r.event.id, fingerprint.error().message);
      }
    }
    if (options_.cache && !r.fingerprint.empty()) {
      if (auto hit = options_.cache->lookup_exact(r.event, r.fingerprint)) {
        serve_cache_hit(r, *hit);
        return;
      }
      if (look_up_semantic(r)) return;  // answered, or waiting for its embedding
    }
    proceed_after_cache_miss(r);
  }

  // No cached answer: join an identical request in flight, or call a model.
  void proceed_after_cache_miss(Request& r) {
    if (follow_identical_request(r)) return;
    if (admit(r)) route_and_start(r);
  }

  // ------------------------------------------------ semantic lookup ----
  //
  // The built-in embedder answers inline. A remote one (cache.semantic.embedder
  // kind openai) is called on this loop's HttpClient unless the store's
  // embedding cache has the vector; meanwhile the request waits, in flight
  // and counted for backpressure. Requests waiting for the same text share
  // one call. A failed or late call makes the lookup a miss (debug log,
  // metric), never an error: the request goes on to the provider.

  // True when the request was answered from the semantic cache or now waits
  // for its embedding.
  bool look_up_semantic(Request& r) {
    auto query = options_.cache->semantic_query(r.event);
    if (!query) return false;
    r.semantic = std::move(*query);
    if (r.semantic->vector) return serve_semantic_hit(r);
    AsyncOpenAiEmbedder* embedder = options_.cache->remote_embedder();
    if (!embedder) return false;
    auto [flight, first] = embedding_flights_.try_emplace(r.semantic->normalized);
    flight->second.push_back(r.serial);
    r.waiting_for_embedding = true;
    if (!first) return true;  // the same text is being embedded for another request
    auto call = embedder->start(*http_, {r.semantic->normalized},
                                [this, text = r.semantic->normalized](Result<std::vector<Embedding>> vectors) {
                                  on_embedded(text, std::move(vectors));
                                });
    if (!call) {
      embedding_flights_.erase(flight);
      r.waiting_for_embedding = false;
      embedding_failed(r, call.error());
      return false;
    }
    return true;
  }

  bool serve_semantic_hit(Request& r) {
    auto hit = options_.cache->lookup_semantic(r.event, *r.semantic);
    if (!hit) return false;
    serve_cache_hit(r, *hit);
    return true;
  }

  // An embeddings call ended (on this loop, from http_->poll): every request
  // waiting for that text searches with the vector, or goes on uncached.
  void on_embedded(const std::string& text, Result<std::vector<Embedding>> vectors) {
    auto flight = embedding_flights_.extract(text);
    if (flight.empty()) return;
    std::optional<Error> error;
    if (!vectors) {
      error = std::move(vectors.error());
    } else if (vectors->size() != 1 || !options_.cache->embedded(text, vectors->front())) {
      // The index has another dimension (or the answer is not one vector).
      error = Error{ErrorCode::provider_error,
                    "embedding of dimension " + std::to_string(vectors->empty() ? 0 : vectors->front().size()) +
                        " does not fit the semantic index (dimension " +
                        std::to_string(options_.cache->embedding_dimension()) + ")"};
    }
    for (const auto serial : flight.mapped()) {
      Request* r = find_request(serial);
      if (!r || !r->waiting_for_embedding) continue;  // gone meanwhile (e.g. its partition was revoked)
      r->waiting_for_embedding = false;
      if (!error) {
        r->semantic->vector = vectors->front();
        if (serve_semantic_hit(*r)) continue;
      } else {
        embedding_failed(*r, *error);
      }
      proceed_after_cache_miss(*r);
    }
  }

  void embedding_failed(Request& r, const Error& error) {
    if (recorder_) recorder_->semantic_embedding_failure(std::string(to_string(error.code)));
    spdlog::debug("worker: request {} tenant {}: no embedding for the semantic cache, a miss ({}: {})", r.event.id,
                  r.event.tenant, to_string(error.code), error.message);
  }

  // A stored answer replayed as chunks and a final: no router, no provider,
  // nothing paid; the ledger records what the baseline model would have cost.
  void serve_cache_hit(Request& r, const CacheHit& hit) {
    (hit.kind == CacheOutcome::semantic ? stats_.cache_hits_semantic : stats_.cache_hits_exact)++;
    if (recorder_) {
      recorder_->cache_hit(std::string(to_string(hit.kind)));
      recorder_->request("final");
    }
    spdlog::debug("worker: request {} tenant {} answered from the cache ({})", r.event.id, r.event.tenant,
                  hit.reason);
    if (r.event.stream) {
      for (const auto piece : replay_pieces(hit.answer.content,
                                            static_cast<std::size_t>(config_.cache.replay_chunk_bytes))) {
        if (auto ok = producer_->produce(r.event.reply_to, r.event.id, make_chunk_event(r.event.id, r.seq++, piece));
            !ok) {
          spdlog::warn("worker: chunk of request {} not sent: {}", r.event.id, ok.error().message);
        }
      }
    }
    const auto now = Clock::now();
    FinalReply final;
    final.id = r.event.id;
    final.seq = r.seq++;
    final.content = hit.answer.content;
    final.model = hit.answer.model;
    final.provider = hit.answer.provider;
    final.finish_reason = hit.answer.finish_reason;
    final.usage = hit.answer.usage;
    final.cost_usd = 0;
    final.cache = hit.kind;
    final.route = RouteInfo{"cache", 0, hit.reason, {}};  // a cache hit was decided by no policy
    final.metadata = r.event.metadata;

    const ModelInfo& baseline = options_.catalog->baseline();
    CostEvent cost = cost_event_of(r);
    cost.model = final.model;
    cost.provider = final.provider;
    cost.usage = final.usage;
    cost.cost_usd = 0;
    cost.baseline_cost_usd = cost_usd(baseline.price, final.usage);
    cost.savings_usd = cost.baseline_cost_usd;
    cost.cache = hit.kind;
    cost.latency_ms = ms_between(r.started, now);
    cost.ttft_ms = cost.latency_ms;
    cost.route_reason = hit.reason;

    CompletedAnswer answer{make_final_event(final), make_cost_event(cost)};
    if (options_.completed) {
      if (auto seq = options_.completed->put(r.event.tenant, r.event.id, answer)) {
        r.completed_seq = *seq;
      } else {
        spdlog::warn("worker: completed answer of {} not stored: {}", r.event.id, seq.error().message);
      }
    }
    emit(r, r.event.reply_to, r.event.id, std::move(answer.final_event));
    emit(r, config_.kafka.ledger_topic, r.event.tenant, std::move(answer.cost_event));
    mark_terminal(r);
  }

  // --------------------------------------------------- single flight ----
  //
  // Identical requests in flight at the same time (same fingerprint: tenant,
  // messages, model, preference, effective max_tokens, temperature) make one
  // upstream call. The first leads and goes on as any request; the others
  // follow it: no admission (they reserve no tenant tokens), no router call,
  // no provider call. They get the leader's deltas as their own chunks and,
  // when it ends, its answer (an exact cache hit that cost nothing) or its
  // error. One table per event loop is enough: prompt events are keyed by
  // tenant, so all of a tenant's requests land on one partition, and a
  // partition has one owner in the group, hence one loop. Events produced
  // without the tenant key, or moved by a rebalance, at worst miss a flight
  // and call upstream themselves.

  int effective_max_tokens(const PromptEvent& event) const {
    return event.max_tokens.value_or(config_.limits.default_max_tokens);
  }

  // True when the request now follows an identical one in flight; otherwise
  // it leads a new flight (unless its cache is off) and goes on as usual.
  bool follow_identical_request(Request& r) {
    if (r.fingerprint.empty()) return false;  // cache off ("off always calls a model"), or no fingerprint
    if (auto serial = flights_.leader(r.fingerprint)) {
      if (Request* leader = find_request(*serial)) {
        follow(*leader, r);
        return true;
      }
      flights_.close(r.fingerprint, *serial);  // not reached: a flight closes when its leader ends
    }
    flights_.open(r.fingerprint, r.serial);
    r.flight = r.fingerprint;
    return false;
  }

  void follow(Request& leader, Request& f) {
    stats_.single_flight_followers++;
    if (recorder_) recorder_->single_flight_join();
    f.duplicate_of_leader = f.event.id == leader.event.id;
    leader.followers.push_back(f.serial);
    spdlog::debug("worker: request {} tenant {} follows identical request {} in flight (single flight{})",
                  f.event.id, f.event.tenant, leader.event.id, f.duplicate_of_leader ? ", same id" : "");
    // A streaming leader's content is exactly the deltas it has published:
    // retries and fallbacks happen only before the first one. The follower
    // catches up with them in one chunk; live deltas follow (on_delta).
    // A cascaded leader holding back its cheap answer has published nothing.
    if (leader.event.stream && !leader.buffering && !leader.content.empty()) pass_delta(f, leader.content);
  }

  // Sends a follower the next piece of its leader's answer.
  void pass_delta(Request& f, std::string_view text) {
    // A second delivery of the leader's own request shares its (id, seq)
    // space: it gets the leader's terminal events and no chunks of its own.
    if (f.duplicate_of_leader) return;
    if (!f.got_first_token) {
      f.got_first_token = true;
      f.first_token = Clock::now();
    }
    if (!f.event.stream) return;
    if (auto ok = producer_->produce(f.event.reply_to, f.event.id, make_chunk_event(f.event.id, f.seq++, text));
        !ok) {
      spdlog::warn("worker: chunk of request {} not sent: {}", f.event.id, ok.error().message);
    }
  }

  // The leader ends: later identical requests call again (or hit the cache).
  void close_flight(Request& leader) {
    if (leader.flight.empty()) return;
    flights_.close(leader.flight, leader.serial);
    leader.flight.clear();
  }

  // The leader succeeded: every follower gets the answer as its own final and
  // cost event, stored like any final so a redelivery does not pay either.
  void share_answer(Request& leader, const FinalReply& final, const CostEvent& cost) {
    close_flight(leader);
    const ModelInfo& baseline = options_.catalog->baseline();
    for (const auto serial : std::exchange(leader.followers, {})) {
      Request* f = find_request(serial);
      if (!f) continue;
      if (recorder_) recorder_->request("final");
      if (f->duplicate_of_leader) {
        // Byte for byte the leader's events, as a replay would send them.
        emit(*f, f->event.reply_to, f->event.id, make_final_event(final));
        emit(*f, config_.kafka.ledger_topic, f->event.tenant, make_cost_event(cost));
        mark_terminal(*f);
        continue;
      }
      // A non-streaming leader published no chunks (its content could still
      // be retried away): a streaming follower gets the answer in one chunk.
      if (!leader.event.stream && !final.content.empty()) pass_delta(*f, final.content);
      const auto now = Clock::now();
      const double latency_ms = ms_between(f->started, now);
      const FinalReply own = follower_final(final, leader.event.id, f->event, f->seq++);
      CostEvent own_cost = follower_cost(own, f->event, baseline, now_ms(), latency_ms,
                                         f->got_first_token ? ms_between(f->started, f->first_token) : latency_ms);
      own_cost.price_version = options_.catalog->price_version();
      own_cost.tags = f->tags;
      CompletedAnswer answer{make_final_event(own), make_cost_event(own_cost)};
      if (options_.completed) {
        if (auto seq = options_.completed->put(f->event.tenant, f->event.id, answer)) {
          f->completed_seq = *seq;
        } else {
          spdlog::warn("worker: completed answer of {} not stored: {}", f->event.id, seq.error().message);
        }
      }
      emit(*f, f->event.reply_to, f->event.id, std::move(answer.final_event));
      emit(*f, config_.kafka.ledger_topic, f->event.tenant, std::move(answer.cost_event));
      mark_terminal(*f);
    }
  }

  // The leader failed: every follower gets the same error, and no charge
  // (what the leader's attempts cost is on the leader's cost event).
  void share_error(Request& leader, const Error& error, std::int64_t leader_seq) {
    close_flight(leader);
    for (const auto serial : std::exchange(leader.followers, {})) {
      Request* f = find_request(serial);
      if (!f) continue;
      stats_.failed++;
      if (recorder_) recorder_->request("error");
      spdlog::debug("worker: request {} tenant {} failed with the request it followed, {}: {}", f->event.id,
                    f->event.tenant, leader.event.id, to_string(error.code));
      const std::int64_t seq = f->duplicate_of_leader ? leader_seq : f->seq++;
      emit(*f, f->event.reply_to, f->event.id, make_error_event(f->event.id, seq, error));
      mark_terminal(*f);
    }
  }

  Request* find_request(std::uint64_t serial) {
    auto it = requests_.find(serial);
    return it == requests_.end() ? nullptr : it->second.get();
  }

  // ------------------------------------------------------- admission ----

  struct TenantBuckets {
    TokenBucket requests;
    TokenBucket tokens;
  };

  TenantBuckets& buckets_for(const std::string& tenant) {
    auto it = tenant_buckets_.find(tenant);
    if (it != tenant_buckets_.end()) return it->second;
    // Each event loop admits its share of the tenant's rate.
    const TenantLimits& limits = config_.limits_for(tenant);
    const double share = 1.0 / std::max(config_.worker.threads, 1);
    const double rps = limits.requests_per_second * share;
    const double tokens_per_s = limits.tokens_per_minute / 60.0 * share;
    return tenant_buckets_
        .emplace(tenant, TenantBuckets{TokenBucket(rps, std::max(rps, 1.0)),
                                       TokenBucket(tokens_per_s, limits.tokens_per_minute * share)})
        .first->second;
  }

  // True when the request may go ahead now; otherwise it waits on a timer or
  // has been answered with rate_limited.
  bool admit(Request& r) {
    const TenantLimits& limits = config_.limits_for(r.event.tenant);
    if (limits.requests_per_second <= 0 && limits.tokens_per_minute <= 0) return true;
    TenantBuckets& b = buckets_for(r.event.tenant);
    const auto now = Clock::now();
    const double max_tokens = r.event.max_tokens.value_or(config_.limits.default_max_tokens);
    double estimate = static_cast<double>(input_tokens_of(r)) + max_tokens;
    if (!b.tokens.unlimited()) estimate = std::min(estimate, limits.tokens_per_minute / std::max(config_.worker.threads, 1));
    if (b.requests.try_take(1, now)) {
      if (b.tokens.try_take(estimate, now)) {
        r.tokens_reserved = b.tokens.unlimited() ? 0 : estimate;
        return true;
      }
      b.requests.give_back(1, now);
    }
    if (!r.admission_deadline) r.admission_deadline = now + std::chrono::milliseconds(limits.max_wait_ms);
    const auto due = std::max(b.requests.available_at(1, now), b.tokens.available_at(estimate, now));
    if (due > *r.admission_deadline) {
      stats_.rate_limited++;
      char detail[160];
      std::snprintf(detail, sizeof detail, " (requests_per_second %.3g, tokens_per_minute %.3g, waited up to %ld ms)",
                    limits.requests_per_second, limits.tokens_per_minute, limits.max_wait_ms);
      fail_request(r, Error{ErrorCode::rate_limited, "tenant '" + r.event.tenant + "' is over its rate limit" + detail});
      return false;
    }
    timers_.emplace(due, Timer{r.serial, TimerKind::admission});
    return false;
  }

  // Settles the tokens reserved at admission against what the call really used.
  void settle_tokens(Request& r, const TokenUsage& usage) {
    if (r.tokens_reserved <= 0) return;
    const double used = static_cast<double>(usage.input_tokens + usage.output_tokens);
    buckets_for(r.event.tenant).tokens.give_back(r.tokens_reserved - used, Clock::now());
    r.tokens_reserved = 0;
  }

  void route_and_start(Request& r) {
    auto route = router_->route(r.event, route_context_of(r));
    if (!route) {
      fail_request(r, route.error());
      return;
    }
    take_route(r, std::move(*route));
    if (cascade_requested(config_.router.cascade, r.event)) begin_cascade(r);
    if (options_.budgets && !enforce_budget(r)) return;
    if (r.buffering) start_agreement(r);
    start_attempt(r);
  }

  // What the router's hard constraints (context window) need to know.
  RouteContext route_context_of(Request& r) {
    RouteContext context;
    context.input_tokens = input_tokens_of(r);
    context.default_max_tokens = config_.limits.default_max_tokens;
    return context;
  }

  void take_route(Request& r, RouteDecision route) {
    r.route = std::move(route);
    r.chain.clear();
    r.chain.reserve(1 + r.route.fallbacks.size());
    r.chain.push_back(r.route.model);
    r.chain.insert(r.chain.end(), r.route.fallbacks.begin(), r.route.fallbacks.end());
  }

  // ---------------------------------------------------------- budgets ----
  //
  // Before any provider is called (docs/ledger.md, "Budgets"): the request's
  // estimated cost, on top of the tenant's published spend and of what this
  // loop's requests in flight or just finished may still add to it, against
  // every budget of the tenant, its model and its tags. Past a hard limit it
  // is refused (budget_exceeded); past a soft one it is moved to the cheapest
  // tier (unless pinned) and checked again. Admitted, its estimate counts as
  // pending spend until it ends, then its actual cost until the ledger's state
  // has it.

  // The most this request can cost: every model it may call (the chain, and a
  // cascade's escalation after a cheap answer) with its prompt and the full
  // max_tokens of output. Retries of a cut stream are not included (rare,
  // and paid only for what was generated).
  double estimated_cost(Request& r) {
    TokenUsage usage;
    usage.input_tokens = input_tokens_of(r);
    usage.output_tokens = effective_max_tokens(r.event);
    double chain_max = 0;
    for (const ModelInfo* m : r.chain) chain_max = std::max(chain_max, cost_usd(m->price, usage));
    double escalation_max = 0;
    for (const ModelInfo* m : r.escalation) escalation_max = std::max(escalation_max, cost_usd(m->price, usage));
    return chain_max + escalation_max;
  }

  // True when the request may go on (possibly moved to a cheaper model);
  // otherwise it has been answered with budget_exceeded.
  bool enforce_budget(Request& r) {
    const BudgetBook& book = options_.budgets->book();
    if (!book.has_budgets(r.event.tenant)) return true;
    const std::int64_t now = now_ms();
    if (now - pending_spend_swept_ms_ >= 100) {
      pending_spend_.forget_included(book.ledger_seen_ms(), now);
      pending_spend_swept_ms_ = now;
    }
    double estimate = estimated_cost(r);
    BudgetDecision decision = book.check(r.event.tenant, r.route.model->id, r.tags, estimate, now, &pending_spend_);
    const std::int64_t max_age = config_.limits.budget_max_state_age_ms;
    if (max_age > 0 && (decision.state_age_ms < 0 || decision.state_age_ms > max_age)) {
      refuse_over_budget(r, "budget state unknown: the ledger's spend state is " +
                                (decision.state_age_ms < 0 ? std::string("missing")
                                                           : std::to_string(decision.state_age_ms) + " ms old") +
                                " (limits.budget_max_state_age_ms " + std::to_string(max_age) + ")");
      return false;
    }
    if (decision.verdict == BudgetVerdict::soft_exceeded && !r.event.pinned()) {
      if (auto cheaper = router_->route_cheapest(r.event, route_context_of(r)); cheaper && cheaper->model != r.route.model) {
        cheaper->reason = r.route.reason + "; " + decision.reason + ": downgraded to " + cheaper->model->id;
        cheaper->score = r.route.score;
        take_route(r, std::move(*cheaper));
        // The cheapest tier answers as it is: no escalation to a stronger one.
        r.escalation.clear();
        r.buffering = false;
        stats_.budget_downgraded++;
        if (recorder_) recorder_->budget("downgraded");
        estimate = estimated_cost(r);
        decision = book.check(r.event.tenant, r.route.model->id, r.tags, estimate, now, &pending_spend_);
      }
    }
    if (decision.verdict == BudgetVerdict::hard_exceeded) {
      refuse_over_budget(r, decision.reason);
      return false;
    }
    if (decision.verdict == BudgetVerdict::soft_exceeded && r.route.reason.find(decision.reason) == std::string::npos) {
      r.route.reason += "; " + decision.reason;  // pinned, or already the cheapest: served as routed
    }
    if (drop_over_budget_alternatives(r, book, estimate, now)) estimate = estimated_cost(r);
    r.budget_reservation = pending_spend_.reserve(r.event.tenant, r.route.model->id, r.tags, estimate);
    return true;
  }

  // A routed model within its budgets must not fall back, or escalate, into
  // one whose own model budget this request would break: such fallbacks and
  // escalation models are taken out, and the reason names them. (The
  // tenant's and tags' budgets were checked with the same estimate, so a hard
  // verdict for another model is its model budget's.) True if any was.
  bool drop_over_budget_alternatives(Request& r, const BudgetBook& book, double estimate, std::int64_t now) {
    std::string dropped;
    auto over_budget = [&](const ModelInfo* m) {
      if (m == r.route.model) return false;
      const BudgetDecision d = book.check(r.event.tenant, m->id, r.tags, estimate, now, &pending_spend_);
      if (d.verdict != BudgetVerdict::hard_exceeded) return false;
      if (dropped.find(m->id) == std::string::npos) dropped += (dropped.empty() ? "" : ", ") + m->id;
      return true;
    };
    // r.chain[0] is the routed model, already admitted.
    std::erase_if(r.chain, over_budget);
    std::erase_if(r.route.fallbacks, [&](const ModelInfo* m) { return std::ranges::find(r.chain, m) == r.chain.end(); });
    std::erase_if(r.escalation, over_budget);
    if (dropped.empty()) return false;
    if (r.escalation.empty()) r.buffering = false;  // nothing left to escalate to: answered as usual
    r.route.reason += "; not tried, over their model budget: " + dropped;
    return true;
  }

  void refuse_over_budget(Request& r, const std::string& reason) {
    stats_.budget_refused++;
    if (recorder_) recorder_->budget("refused");
    settle_tokens(r, TokenUsage{});  // nothing was used of the tenant's token rate
    fail_request(r, Error{ErrorCode::budget_exceeded, reason});
  }

  // Starts the next allowed attempt along the chain, or fails the request.
  void start_attempt(Request& r) {
    const auto now = Clock::now();
    while (r.chain_index < r.chain.size()) {
      const ModelInfo& model = *r.chain[r.chain_index];
      ChatProvider* provider = providers_->find(model.provider);
      if (provider && !r.holds_slot && !r.waiting_for_slot && !take_slot(r, model, now)) return;  // queued
      if (r.waiting_for_slot) {
        // The wait for a slot ran out: this model is saturated, try the next.
        r.waiting_for_slot = false;
        r.attempt_notes += "; " + model.id + ": provider at max_concurrency";
        if (r.chain_index + 1 < r.chain.size()) stats_.fallbacks++;
        next_in_chain(r);
        continue;
      }
      const BreakerTicket ticket = provider ? breakers_.at(model.provider, model.id).admit(now) : BreakerTicket{};
      if (ticket.admission != Admission::refused) {
        ChatRequest chat;
        chat.upstream_model = model.upstream_model;
        chat.messages = &r.event.messages;
        // The default never asks a model for more than it can write (the router
        // checked an explicit max_tokens against it).
        chat.max_tokens = r.event.max_tokens.value_or(
            model.max_output_tokens > 0
                ? static_cast<int>(std::min<std::int64_t>(config_.limits.default_max_tokens, model.max_output_tokens))
                : config_.limits.default_max_tokens);
        chat.temperature = r.event.temperature;
        chat.response_format = &r.event.response_format;
        spdlog::debug("worker: request {} tenant {} -> {} ({}{})", r.event.id, r.event.tenant, model.id,
                      r.route.reason, r.buffering ? ", cascade: held back" : "");
        stats_.provider_calls++;
        r.attempts_on_model++;
        r.attempt_started = now;
        r.last_activity = now;
        r.attempt_got_token = false;
        r.breaker_ticket = ticket;
        r.breaker_told_success = false;
        r.streaming = true;
        r.transfer = provider->start_chat(chat, r);
        return;
      }
      release_slot(r);
      if (provider) {
        stats_.breaker_rejections++;
        if (recorder_) recorder_->fallback(model.provider, model.id, "breaker_open");
      }
      r.attempt_notes += "; " + model.id + (provider ? ": breaker open" : ": provider disabled");
      if (r.chain_index + 1 < r.chain.size()) stats_.fallbacks++;
      next_in_chain(r);
    }
    if (r.buffering) {
      // Every cheap attempt failed: the stronger tier answers instead.
      escalate(r, r.chain.front()->id + " failed", "cheap_failed");
      return;
    }
    Error error = r.last_error.value_or(
        Error{ErrorCode::unavailable, "no provider could take the request (breakers open or providers disabled)"});
    if (!r.attempt_notes.empty()) error.message += " [" + r.attempt_notes.substr(2) + "]";
    charge_and_fail(r, error);
  }

  void next_in_chain(Request& r) {
    r.chain_index++;
    r.attempts_on_model = 0;
  }

  const ModelInfo& current_model(const Request& r) const { return *r.chain[r.chain_index]; }

  void reject(Request& r, const RejectedPrompt& rejected, std::string_view payload) {
    stats_.rejected++;
    if (recorder_) recorder_->request("rejected");
    spdlog::info("worker: rejected prompt event at {}/{}: {}", r.partition, r.offset,
                 rejected.error.message);
    if (rejected.id && rejected.reply_to) {
      emit(r, *rejected.reply_to, *rejected.id, make_error_event(*rejected.id, 0, rejected.error));
    }
    DeadLetter letter;
    letter.reason = rejected.error.message;
    letter.source_topic = config_.kafka.requests_topic;
    letter.source_partition = r.partition;
    letter.source_offset = r.offset;
    letter.id = rejected.id;
    letter.tenant = rejected.tenant;
    letter.payload.assign(payload);
    emit(r, config_.kafka.dlq_topic, rejected.tenant.value_or(""), make_dead_letter(letter));
    mark_terminal(r);
  }

  void fail_request(Request& r, const Error& error) {
    stats_.failed++;
    if (recorder_) recorder_->request("error");
    spdlog::info("worker: request {} tenant {} failed: {} {}", r.event.id, r.event.tenant,
                 to_string(error.code), error.message);
    const std::int64_t seq = r.seq++;
    emit(r, r.event.reply_to, r.event.id, make_error_event(r.event.id, seq, error));
    share_error(r, error, seq);
    mark_terminal(r);
  }

  void on_delta(Request& r, std::string_view text) {
    if (text.empty()) return;
    const auto now = Clock::now();
    r.last_activity = now;
    if (!r.attempt_got_token) tell_breaker(r, current_model(r), true, now);  // the provider is answering
    r.attempt_got_token = true;
    if (r.buffering) {
      hold_delta(r, text);
      return;
    }
    if (!r.got_first_token) {
      r.got_first_token = true;
      r.first_token = now;
    }
    r.content.append(text);
    if (!r.event.stream) return;  // followers get a non-streaming leader's answer when it ends
    r.published_deltas++;
    if (auto ok = producer_->produce(r.event.reply_to, r.event.id, make_chunk_event(r.event.id, r.seq++, text));
        !ok) {
      spdlog::warn("worker: chunk of request {} not sent: {}", r.event.id, ok.error().message);
    }
    for (const auto serial : r.followers) {
      if (Request* f = find_request(serial)) pass_delta(*f, text);
    }
  }

  void on_complete(Request& r, Result<ChatCompletion> outcome) {
    const ModelInfo& attempted = current_model(r);
    const auto now = Clock::now();
    if (!outcome) {
      on_attempt_failed(r, std::move(outcome.error()));
      return;
    }
    release_slot(r);
    tell_breaker(r, attempted, true, now);
    record_attempt(attempted, true, now);
    if (r.buffering) {
      check_cheap_answer(r, attempted, std::move(*outcome));
      return;
    }
    finish_answer(r, attempted, std::move(*outcome));
  }

  // What an attempt's answer was billed: as reported, else estimated.
  TokenUsage usage_of(const Request& r, const ChatCompletion& completion) const {
    TokenUsage usage = completion.usage;
    if (!completion.usage_reported) usage = counted_usage(current_model(r), r.event.messages, r.content);
    return usage;
  }

  // What a call that reported no usage (a cut stream, a provider without
  // usage) is charged: its input and output counted with the model's tokenizer.
  TokenUsage counted_usage(const ModelInfo& model, const nlohmann::json& messages, std::string_view output) const {
    TokenUsage usage;
    usage.input_tokens = static_cast<std::int64_t>(tokens_->count_messages(model.id, messages).tokens);
    usage.output_tokens = static_cast<std::int64_t>(tokens_->count_text(model.id, output).tokens);
    return usage;
  }

  // The request's input tokens for estimates (admission, budgets), counted once
  // with o200k_base: within a few percent of every vendor's count.
  std::int64_t input_tokens_of(Request& r) const {
    if (r.input_tokens < 0) r.input_tokens = static_cast<std::int64_t>(tokens_->count_messages("", r.event.messages).tokens);
    return r.input_tokens;
  }

  // The fields every cost event of a request carries.
  CostEvent cost_event_of(const Request& r) const {
    CostEvent cost;
    cost.id = r.event.id;
    cost.tenant = r.event.tenant;
    cost.ts_ms = now_ms();
    cost.price_version = options_.catalog->price_version();
    cost.tags = r.tags;
    cost.baseline_model = options_.catalog->baseline().id;
    return cost;
  }

  // A model's answer is the request's: final and cost events, stored,
  // cached, shared with followers; then, maybe, a quality sample.
  void finish_answer(Request& r, const ModelInfo& model, ChatCompletion completion) {
    if (recorder_) recorder_->request("final");
    const auto now = Clock::now();
    const TokenUsage usage = usage_of(r, completion);
    settle_tokens(r, usage);
    const ModelInfo& baseline = options_.catalog->baseline();

    FinalReply final;
    final.id = r.event.id;
    final.seq = r.seq++;
    final.content = std::move(r.content);
    final.model = model.id;
    final.provider = model.provider;
    final.finish_reason = completion.finish_reason;
    final.tool_calls = std::move(completion.tool_calls);  // passed through as the provider assembled them
    final.usage = usage;
    final.cost_usd = cost_usd(model.price, usage) + r.wasted_cost_usd;
    final.cache = CacheOutcome::miss;
    final.route = RouteInfo{std::string(to_string(r.route.tier)), r.route.score, route_reason(r), r.route.policy};
    final.metadata = r.event.metadata;

    CostEvent cost = cost_event_of(r);
    cost.model = model.id;
    cost.provider = model.provider;
    cost.usage = usage;
    cost.cost_usd = final.cost_usd;
    r.charged_usd = cost.cost_usd;
    cost.baseline_cost_usd = cost_usd(baseline.price, usage);
    cost.savings_usd = cost.baseline_cost_usd - cost.cost_usd;
    cost.cache = CacheOutcome::miss;
    cost.latency_ms = ms_between(r.started, now);
    cost.ttft_ms = r.got_first_token ? ms_between(r.started, r.first_token) : cost.latency_ms;
    cost.route_reason = final.route.reason;
    cost.policy = r.route.policy;

    CompletedAnswer answer{make_final_event(final), make_cost_event(cost)};
    if (options_.completed) {
      // Stored before the events go out: a crash after this point replays the
      // answer instead of paying the provider again.
      if (auto seq = options_.completed->put(r.event.tenant, r.event.id, answer)) {
        r.completed_seq = *seq;
      } else {
        spdlog::warn("worker: completed answer of {} not stored: {}", r.event.id, seq.error().message);
      }
    }
    emit(r, r.event.reply_to, r.event.id, std::move(answer.final_event));
    emit(r, config_.kafka.ledger_topic, r.event.tenant, std::move(answer.cost_event));
    if (options_.cache && !r.fingerprint.empty()) {
      options_.cache->store(r.event, r.fingerprint, final, model, r.semantic ? &*r.semantic : nullptr);
    }
    share_answer(r, final, cost);
    mark_terminal(r);
    // After the terminal event is out: a sample never delays it.
    sample_quality(r, model, final);
  }

  // The reason names every fallback, so the ledger shows where money went.
  static std::string route_reason(const Request& r) {
    if (r.attempt_notes.empty()) return r.route.reason;
    return r.route.reason + " | " + r.attempt_notes.substr(2);
  }

  void on_attempt_failed(Request& r, Error error) {
    const ModelInfo& model = current_model(r);
    const auto now = Clock::now();
    r.streaming = false;
    release_slot(r);
    // A request-side failure (400, 422...) says nothing bad about the provider.
    const bool provider_fault = provider_side_failure(error);
    tell_breaker(r, model, !provider_fault, now);
    record_attempt(model, !provider_fault, now);
    if (!r.content.empty()) {
      // Tokens were generated before the failure: the provider bills them.
      const TokenUsage partial = counted_usage(model, r.event.messages, r.content);
      r.wasted_cost_usd += cost_usd(model.price, partial);
      r.wasted_usage.input_tokens += partial.input_tokens;
      r.wasted_usage.output_tokens += partial.output_tokens;
    }
    const auto verdict = retry_policy_.on_failure(error, r.attempts_on_model, r.published_deltas > 0);
    r.attempt_notes += "; " + model.id + ": " + short_error(error) + " -> " + std::string(to_string(verdict.action));
    r.last_error = error;
    spdlog::debug("worker: request {} attempt on {} failed ({}): {}", r.event.id, model.id, error.message,
                  to_string(verdict.action));
    switch (verdict.action) {
      case FailureAction::retry:
        stats_.retries++;
        if (recorder_) recorder_->retry(model.provider, model.id);
        // Nothing of it was published, to the requester or to followers: a
        // streaming request with content has published it and gives up above;
        // a non-streaming leader's followers only get its final content.
        r.content.clear();
        timers_.emplace(now + std::chrono::milliseconds(verdict.wait_ms), Timer{r.serial, TimerKind::retry});
        return;
      case FailureAction::fall_back:
        if (r.chain_index + 1 < r.chain.size()) stats_.fallbacks++;
        if (recorder_) recorder_->fallback(model.provider, model.id, "error");
        r.content.clear();  // nothing of it was published (see retry)
        next_in_chain(r);
        start_attempt(r);
        return;
      case FailureAction::give_up:
        charge_and_fail(r, error);
        return;
    }
  }

  // A call counts as a success for its breaker once the provider starts
  // answering, and as a failure whenever it fails (a cut stream too).
  void tell_breaker(Request& r, const ModelInfo& model, bool success, Clock::time_point now) {
    if (success && r.breaker_told_success) return;
    breakers_.at(model.provider, model.id).record(success, now, r.breaker_ticket);
    if (r.breaker_ticket.admission == Admission::probe) r.breaker_ticket = {};  // the probe has spoken
    if (success) r.breaker_told_success = true;
  }

  void record_attempt(const ModelInfo& model, bool success, Clock::time_point now) {
    const CircuitBreaker& breaker = breakers_.at(model.provider, model.id);
    if (!recorder_) return;
    recorder_->attempt(model.provider, model.id, success);
    const BreakerState state = breaker.state(now);
    recorder_->breaker_state(model.provider, model.id,
                             state == BreakerState::closed ? 0 : state == BreakerState::half_open ? 1 : 2);
  }

  static std::string short_error(const Error& e) {
    if (e.http_status >= 400) return "HTTP " + std::to_string(e.http_status);
    return std::string(to_string(e.code));
  }

  // A failed request still pays for the tokens its attempts generated.
  void charge_and_fail(Request& r, const Error& error) {
    cancel_agreement(r);
    if (r.wasted_cost_usd > 0) {
      const ModelInfo& model = r.chain.empty() ? options_.catalog->baseline() : *r.chain[std::min(r.chain_index, r.chain.size() - 1)];
      CostEvent cost = cost_event_of(r);
      cost.model = model.id;
      cost.provider = model.provider;
      cost.usage = r.wasted_usage;
      cost.cost_usd = r.wasted_cost_usd;
      r.charged_usd = cost.cost_usd;
      cost.baseline_cost_usd = cost.cost_usd;  // nothing was saved on a failed request
      cost.cache = CacheOutcome::miss;
      cost.latency_ms = ms_between(r.started, Clock::now());
      cost.ttft_ms = r.got_first_token ? ms_between(r.started, r.first_token) : cost.latency_ms;
      cost.route_reason = route_reason(r);
      cost.policy = r.route.policy;
      emit(r, config_.kafka.ledger_topic, r.event.tenant, make_cost_event(cost));
    }
    fail_request(r, error);
  }

  // ----------------------------------------------- cheap-first cascade ----
  //
  // A cascaded request's routed (cheap) model answers into r.content with
  // nothing published, to the requester or to followers. When that answer
  // completes it is checked: check_answer, then, when configured, the
  // answer verifier, the agreement model's answer (asked in parallel when
  // the cascade began) and the judge. Accepted, it goes out as chunks and
  // a final like any answer. Rejected, it is dropped and the cheapest
  // available model of the next stronger tier answers, streamed as usual.
  // Both answers (and the judge and agreement calls) are charged on the
  // request's cost event.
  // Retries and fallbacks among the cheap tier's models happen while held
  // back; if every cheap attempt fails, the request escalates instead of
  // failing. An answer growing past max_buffer_bytes stops being held back.

  void begin_cascade(Request& r) {
    // The escalation meets the request's hard constraints as its routed model does.
    auto needs = route_requirements(r.event, route_context_of(r));
    if (!needs) return;  // routed already, so not expected: answered as usual
    auto escalation = escalation_chain(
        *options_.catalog, r.route.model->tier,
        [&](const ModelInfo& m) { return providers_->available(m.provider) && constraint_violation(m, *needs).empty(); },
        config_.router.max_fallbacks);
    if (escalation.empty()) return;  // nothing stronger is available: answered as usual
    const Tier strong_tier = escalation.front()->tier;
    // Fallbacks as strong as the escalation belong to the escalation.
    std::erase_if(r.chain, [&](const ModelInfo* m) { return m->tier >= strong_tier; });
    if (r.chain.empty()) return;
    r.escalation = std::move(escalation);
    r.buffering = true;
  }

  void hold_delta(Request& r, std::string_view text) {
    r.content.append(text);
    // A non-streaming answer is gathered whole anyway: it stays held back.
    if (!r.event.stream || r.content.size() <= config_.router.cascade.max_buffer_bytes) return;
    // Long enough not to be a refusal; holding it back longer only delays the user.
    const ModelInfo& model = current_model(r);
    stats_.cascade_accepted++;
    if (recorder_) recorder_->cascade("accepted", "unchecked");
    r.attempt_notes += "; cascade: " + model.id + " accepted unchecked (answer over max_buffer_bytes)";
    cancel_agreement(r);  // nothing left to compare with
    publish_held(r);
  }

  // The held-back answer goes out as chunks (to followers too): the user's
  // first token.
  void publish_held(Request& r) {
    r.buffering = false;
    if (r.content.empty()) return;
    if (!r.got_first_token) {
      r.got_first_token = true;
      r.first_token = Clock::now();
    }
    if (!r.event.stream) return;  // followers get a non-streaming leader's answer when it ends
    for (const auto piece : replay_pieces(r.content, static_cast<std::size_t>(config_.cache.replay_chunk_bytes))) {
      r.published_deltas++;
      if (auto ok = producer_->produce(r.event.reply_to, r.event.id, make_chunk_event(r.event.id, r.seq++, piece));
          !ok) {
        spdlog::warn("worker: chunk of request {} not sent: {}", r.event.id, ok.error().message);
      }
      for (const auto serial : r.followers) {
        if (Request* f = find_request(serial)) pass_delta(*f, piece);
      }
    }
  }

  void check_cheap_answer(Request& r, const ModelInfo& model, ChatCompletion completion) {
    const AnswerCheck check = check_answer(r.content, completion.finish_reason, completion.tool_calls,
                                           answer_format_of(r.event.response_format));
    if (!check.ok) {
      reject_cheap(r, model, completion, check.reason, check.kind);
      return;
    }
    r.check_note.clear();  // the checks' word, in the reason of an accepted answer
    r.check_kind = "checked";
    // It was trained on text answers: tool calls are left to the checks above and the judge.
    const auto& verifier = options_.answer_verifier;
    if (verifier && completion.tool_calls.empty()) {
      const double p = verifier->p_ok_for_messages(r.event.messages, r.content);
      const double min = config_.router.cascade.min_verifier_p;
      if (p < min) {
        reject_cheap(r, model, completion, "verifier p=" + format_probability(p) + " < " + format_probability(min),
                     "verifier");
        return;
      }
      r.check_note = " (verifier p=" + format_probability(p) + ")";
      r.check_kind = "verified";
    }
    if (r.agreement != 0) {
      // The agreement model is still answering: the held answer waits for it,
      // from now on within judge_timeout_ms.
      if (const auto it = judges_.find(r.agreement); it != judges_.end())
        it->second->deadline = Clock::now() + std::chrono::milliseconds(config_.router.cascade.judge_timeout_ms);
      r.held = std::move(completion);
      r.awaiting_agreement = true;
      return;  // on_agreement_answered goes on
    }
    check_agreement_then_judge(r, model, std::move(completion));
  }

  void on_agreement_answered(Request& r) {
    r.awaiting_agreement = false;
    if (!r.held) return;
    ChatCompletion completion = std::move(*r.held);
    r.held.reset();
    check_agreement_then_judge(r, current_model(r), std::move(completion));
  }

  void check_agreement_then_judge(Request& r, const ModelInfo& model, ChatCompletion completion) {
    if (r.agreement_answer) {
      const Result<std::string> other = std::move(*r.agreement_answer);
      r.agreement_answer.reset();
      const std::string& other_id = agreement_model_->id;
      if (!other) {
        // Without a second answer the other checks decide, as without the check.
        r.check_note += " (agreement " + other_id + " gave no answer: " + std::string(to_string(other.error().code)) + ")";
        r.check_kind = "agreement_failed";
      } else if (const auto mine = final_answer_in_conversation(r.event.messages, r.content); !mine) {
        r.check_note += " (no final answer to compare with " + other_id + ")";
        r.check_kind = "not_comparable";
      } else {
        const auto theirs = final_answer_in_conversation(r.event.messages, *other);
        if (!theirs || *theirs != *mine) {
          reject_cheap(r, model, completion,
                       "disagrees with " + other_id + ": " + *mine + " vs " + (theirs ? *theirs : "no final answer"),
                       "disagreement");
          return;
        }
        r.check_note += " (agrees with " + other_id + ": " + *mine + ")";
        r.check_kind = "agreed";
      }
    }
    if (cascade_judge_) {
      if (JudgeCall* call = start_judge(*cascade_judge_, judge_messages(r.event.messages, r.content),
                                        config_.router.cascade.judge_timeout_ms)) {
        call->request_serial = r.serial;
        r.judge = call->id;
        r.held = std::move(completion);
        return;  // on_cheap_judged goes on
      }
      accept_cheap(r, model, std::move(completion), r.check_note + " (judge " + cascade_judge_->id + " unavailable)",
                   "judge_failed");
      return;
    }
    accept_cheap(r, model, std::move(completion), r.check_note, r.check_kind);
  }

  static std::string format_probability(double p) {
    char text[16];
    const int n = std::snprintf(text, sizeof text, "%.2f", p);
    return std::string(text, static_cast<std::size_t>(std::max(n, 0)));
  }

  void on_cheap_judged(Request& r, const JudgeCall& call, const Result<double>& score, double judge_cost) {
    r.judge = 0;
    r.wasted_cost_usd += judge_cost;  // grading is part of what the request cost
    if (!r.held) return;
    ChatCompletion completion = std::move(*r.held);
    r.held.reset();
    const ModelInfo& model = current_model(r);
    const std::string& judge = call.model->id;
    if (!score) {
      // Without a grade the checks that passed decide, as without a judge.
      accept_cheap(r, model, std::move(completion),
                   r.check_note + " (judge " + judge + " gave no grade: " + std::string(to_string(score.error().code)) + ")",
                   "judge_failed");
      return;
    }
    const double min = config_.router.cascade.min_judge_score;
    if (*score < min) {
      reject_cheap(r, model, completion, "judge " + judge + ": " + format_grade(*score) + " < " + format_grade(min),
                   "judge_score");
      return;
    }
    accept_cheap(r, model, std::move(completion), r.check_note + " (judge " + judge + ": " + format_grade(*score) + ")",
                 "judged");
  }

  static std::string format_grade(double grade) {
    char text[32];
    const int n = std::snprintf(text, sizeof text, "%g", grade);
    return std::string(text, static_cast<std::size_t>(std::max(n, 0)));
  }

  void accept_cheap(Request& r, const ModelInfo& model, ChatCompletion completion, const std::string& note,
                    const std::string& reason) {
    stats_.cascade_accepted++;
    if (recorder_) recorder_->cascade("accepted", reason);
    r.attempt_notes += "; cascade: " + model.id + " accepted" + note;
    publish_held(r);
    finish_answer(r, model, std::move(completion));
  }

  void reject_cheap(Request& r, const ModelInfo& model, const ChatCompletion& completion, const std::string& why,
                    const std::string& kind) {
    // Generated and billed, though nobody sees it.
    const TokenUsage usage = usage_of(r, completion);
    r.wasted_cost_usd += cost_usd(model.price, usage);
    r.wasted_usage.input_tokens += usage.input_tokens;
    r.wasted_usage.output_tokens += usage.output_tokens;
    r.wasted_usage.cached_tokens += usage.cached_tokens;
    escalate(r, model.id + " rejected (" + why + ")", kind);
  }

  // The next tier answers, streamed: r.chain becomes the escalation chain.
  void escalate(Request& r, const std::string& why, const std::string& kind) {
    cancel_agreement(r);  // e.g. every cheap attempt failed while it still answered
    stats_.cascade_escalated++;
    if (recorder_) recorder_->cascade("escalated", kind);
    const ModelInfo& strong = *r.escalation.front();
    spdlog::debug("worker: request {} tenant {}: cascade: {} -> {}", r.event.id, r.event.tenant, why, strong.id);
    r.attempt_notes += "; cascade: " + why + " -> " + strong.id;
    r.buffering = false;
    r.content.clear();
    r.held.reset();
    r.agreement_answer.reset();
    r.awaiting_agreement = false;
    r.chain = std::exchange(r.escalation, {});
    r.chain_index = 0;
    r.attempts_on_model = 0;
    start_attempt(r);
  }

  // ------------------------------------------------------------ judges ----
  //
  // Grading calls (LLM-as-judge, judge.h) run on this loop's HttpClient like
  // provider calls, outside the request machinery: no retries, fallbacks,
  // breakers or provider slots; a deadline, past which they are cancelled.

  struct JudgeCall final : ChatStreamObserver {
    Loop* loop = nullptr;
    std::uint64_t id = 0;
    const ModelInfo* model = nullptr;
    nlohmann::json messages;  // the provider reads them while the call runs
    std::string reply;
    std::uint64_t transfer = 0;
    Clock::time_point deadline;
    bool finished = false;
    std::uint64_t request_serial = 0;    // cascade: the request whose cheap answer it grades
    std::optional<QualityEvent> sample;  // quality sampling: published with the grade
    bool agreement = false;  // not a grade: the agreement model's own answer to request_serial's request

    void on_delta(std::string_view text) override {
      if (reply.size() < (agreement ? kMaxAgreementAnswerBytes : 4096)) reply.append(text);
    }
    void on_complete(Result<ChatCompletion> outcome) override { loop->on_judged(*this, std::move(outcome)); }
  };

  // Enough for any final answer: it is near the end of a worked answer, and
  // an answer cut here compares as one without a final answer.
  static constexpr std::size_t kMaxAgreementAnswerBytes = 64 * 1024;

  // nullptr when the judge's provider is not available.
  JudgeCall* start_judge(const ModelInfo& model, nlohmann::json messages, long timeout_ms) {
    ChatRequest chat;
    chat.max_tokens = kJudgeMaxTokens;
    return start_side_call(model, std::move(messages), chat, Clock::now() + std::chrono::milliseconds(timeout_ms));
  }

  // A call made on this loop outside the request machinery: a grade or an
  // agreement answer. `chat` gives its parameters; model and messages are set here.
  JudgeCall* start_side_call(const ModelInfo& model, nlohmann::json messages, ChatRequest chat,
                             Clock::time_point deadline) {
    ChatProvider* provider = providers_->find(model.provider);
    if (!provider) return nullptr;
    auto owned = std::make_unique<JudgeCall>();
    JudgeCall& call = *owned;
    call.loop = this;
    call.id = ++next_judge_;
    call.model = &model;
    call.messages = std::move(messages);
    call.deadline = deadline;
    judges_.emplace(call.id, std::move(owned));
    chat.upstream_model = model.upstream_model;
    chat.messages = &call.messages;
    stats_.judge_calls++;
    call.transfer = provider->start_chat(chat, call);
    return &call;
  }

  // The agreement check's call: the agreement model answers the cascaded
  // request alongside the cheap model, so comparing costs no extra latency
  // when it is not slower. Skipped (the other checks decide) when it cannot
  // serve the request.
  void start_agreement(Request& r) {
    if (!agreement_model_ || !r.event.tools.is_null()) return;  // tool calls have no final answer
    const ModelInfo& model = *agreement_model_;
    auto needs = route_requirements(r.event, route_context_of(r));
    if (!needs || !constraint_violation(model, *needs).empty() || !providers_->available(model.provider)) {
      r.attempt_notes += "; cascade: agreement " + model.id + " cannot serve this request";
      return;
    }
    ChatRequest chat;
    chat.max_tokens = r.event.max_tokens.value_or(
        model.max_output_tokens > 0
            ? static_cast<int>(std::min<std::int64_t>(config_.limits.default_max_tokens, model.max_output_tokens))
            : config_.limits.default_max_tokens);
    chat.temperature = r.event.temperature;
    // No deadline while the cheap model answers too: check_cheap_answer sets one.
    JudgeCall* call = start_side_call(model, r.event.messages, chat, Clock::time_point::max());
    if (!call) return;
    call->agreement = true;
    call->request_serial = r.serial;
    r.agreement = call->id;
  }

  // What a call cut short cost: its prompt and what it wrote so far.
  double partial_cost(const JudgeCall& call) const {
    return cost_usd(call.model->price, counted_usage(*call.model, call.messages, call.reply));
  }

  void agreement_done(JudgeCall& call, Result<std::string> answer, double cost, const std::string& outcome) {
    call.finished = true;
    auto owned = judges_.extract(call.id);
    if (recorder_) recorder_->judge_call("agreement", outcome);
    if (Request* r = find_request(call.request_serial); r && r->agreement == call.id) {
      r->agreement = 0;
      r->wasted_cost_usd += cost;  // paid on every cascaded request, agreeing or not
      r->agreement_answer = std::move(answer);
      if (r->awaiting_agreement) on_agreement_answered(*r);
    }
    if (!owned.empty()) judges_done_.push_back(std::move(owned.mapped()));
  }

  // The request no longer needs the agreement answer: the call is cancelled
  // and what it wrote so far is charged to the request.
  void cancel_agreement(Request& r) {
    const std::uint64_t id = std::exchange(r.agreement, 0);
    if (id == 0) return;
    auto owned = judges_.extract(id);
    if (owned.empty()) return;
    JudgeCall& call = *owned.mapped();
    call.finished = true;
    http_->cancel(call.transfer);
    r.wasted_cost_usd += partial_cost(call);
    if (recorder_) recorder_->judge_call("agreement", "cancelled");
    judges_done_.push_back(std::move(owned.mapped()));
  }

  void on_judged(JudgeCall& call, Result<ChatCompletion> outcome) {
    if (call.finished) return;
    if (call.agreement) {
      if (!outcome) {
        agreement_done(call, std::unexpected(outcome.error()), 0, "error");
        return;
      }
      const TokenUsage usage =
          outcome->usage_reported ? outcome->usage : counted_usage(*call.model, call.messages, call.reply);
      agreement_done(call, std::move(call.reply), cost_usd(call.model->price, usage), "answered");
      return;
    }
    if (!outcome) {
      judge_done(call, std::unexpected(outcome.error()), 0, "error");
      return;
    }
    const TokenUsage usage =
        outcome->usage_reported ? outcome->usage : counted_usage(*call.model, call.messages, call.reply);
    const double cost = cost_usd(call.model->price, usage);
    auto score = parse_judge_score(call.reply);
    const char* outcome_label = score ? "graded" : "unreadable";
    judge_done(call, std::move(score), cost, outcome_label);
  }

  void judge_done(JudgeCall& call, Result<double> score, double cost, const std::string& outcome) {
    call.finished = true;
    auto owned = judges_.extract(call.id);
    if (recorder_) recorder_->judge_call(call.sample ? "quality" : "cascade", outcome);
    if (call.sample) {
      finish_sample(call, score, cost);
    } else if (Request* r = find_request(call.request_serial); r && r->judge == call.id) {
      on_cheap_judged(*r, call, score, cost);
    }
    // Freed on the next loop iteration, not inside its own callback.
    if (!owned.empty()) judges_done_.push_back(std::move(owned.mapped()));
  }

  void enforce_judge_deadlines(Clock::time_point now) {
    std::vector<JudgeCall*> late;
    for (auto& [id, call] : judges_) {
      if (now >= call->deadline) late.push_back(call.get());
    }
    for (JudgeCall* call : late) {
      http_->cancel(call->transfer);
      if (call->agreement) {
        agreement_done(*call, std::unexpected(Error{ErrorCode::timeout, "no answer within judge_timeout_ms"}),
                       partial_cost(*call), "timeout");
      } else {
        judge_done(*call, std::unexpected(Error{ErrorCode::timeout, "no grade within the judge's timeout"}), 0,
                   "timeout");
      }
    }
  }

  // ------------------------------------------------- quality sampling ----
  //
  // A fresh answer of a tier below the quality judge's is graded, with
  // probability quality.sample_rate, after its terminal event is out: the
  // request is finished (offset, watermark) whatever becomes of the sample.

  void sample_quality(const Request& r, const ModelInfo& model, const FinalReply& final) {
    const double rate = config_.quality.sample_rate;
    if (rate <= 0 || !quality_judge_ || final.content.empty()) return;
    if (model.id == quality_judge_->id || !(model.tier < quality_judge_->tier)) return;  // cheaper tiers only
    if (rate < 1 && std::uniform_real_distribution<double>(0, 1)(sampler_) >= rate) return;
    if (quality_in_flight_ >= config_.quality.max_in_flight) {
      stats_.quality_skipped++;
      if (recorder_) recorder_->quality_sample("skipped");
      return;
    }
    JudgeCall* call =
        start_judge(*quality_judge_, judge_messages(r.event.messages, final.content), config_.quality.timeout_ms);
    if (!call) {
      stats_.quality_failed++;
      if (recorder_) recorder_->quality_sample("failed");
      spdlog::debug("worker: quality sample of {} not taken: judge {}'s provider is not available", r.event.id,
                    quality_judge_->id);
      return;
    }
    QualityEvent& q = call->sample.emplace();
    q.id = r.event.id;
    q.tenant = r.event.tenant;
    q.model = model.id;
    q.provider = model.provider;
    q.tier = std::string(to_string(model.tier));
    q.judge_model = quality_judge_->id;
    q.route_reason = final.route.reason;
    q.sample_rate = rate;
    quality_in_flight_++;
  }

  void finish_sample(JudgeCall& call, const Result<double>& score, double cost) {
    quality_in_flight_--;
    QualityEvent& q = *call.sample;
    if (!score) {
      stats_.quality_failed++;
      if (recorder_) recorder_->quality_sample("failed");
      spdlog::debug("worker: quality sample of {} got no grade from {}: {}", q.id, q.judge_model,
                    score.error().message);
      return;
    }
    q.score = *score;
    q.judge_cost_usd = cost;
    q.ts_ms = now_ms();
    if (auto ok = producer_->produce(config_.kafka.quality_topic, q.tenant, make_quality_event(q)); !ok) {
      stats_.quality_failed++;
      if (recorder_) recorder_->quality_sample("failed");
      spdlog::warn("worker: quality event of {} not sent: {}", q.id, ok.error().message);
      return;
    }
    stats_.quality_published++;
    if (recorder_) recorder_->quality_sample("published");
  }

  // ---------------------------------------------------- provider slots ----

  int slot_limit(const std::string& provider) const {
    const ProviderConfig* pc = provider_config(provider);
    if (!pc || pc->max_concurrency <= 0) return 0;
    const int threads = std::max(config_.worker.threads, 1);
    return (pc->max_concurrency + threads - 1) / threads;  // this loop's share
  }

  // Takes a slot of the model's provider, or queues the request for one.
  bool take_slot(Request& r, const ModelInfo& model, Clock::time_point now) {
    const int limit = slot_limit(model.provider);
    if (limit == 0) return true;
    int& active = provider_active_[model.provider];
    if (active < limit) {
      active++;
      r.holds_slot = true;
      return true;
    }
    const ProviderConfig* pc = provider_config(model.provider);
    r.waiting_for_slot = true;
    r.slot_deadline = now + std::chrono::milliseconds(pc->queue_timeout_ms);
    provider_waiters_[model.provider].push_back(r.serial);
    timers_.emplace(r.slot_deadline, Timer{r.serial, TimerKind::slot_deadline});
    stats_.queued_for_slot++;
    return false;
  }

  void release_slot(Request& r) {
    if (!r.holds_slot) return;
    r.holds_slot = false;
    const std::string& provider = current_model(r).provider;
    // The slot passes straight to the longest waiter (started from the main
    // loop), so a newcomer cannot take it first.
    auto& waiters = provider_waiters_[provider];
    while (!waiters.empty()) {
      const auto serial = waiters.front();
      waiters.pop_front();
      auto it = requests_.find(serial);
      if (it == requests_.end()) continue;
      Request& waiter = *it->second;
      // Skip entries left behind by requests that gave up and moved on.
      if (!waiter.waiting_for_slot || current_model(waiter).provider != provider) continue;
      waiter.waiting_for_slot = false;
      waiter.holds_slot = true;
      ready_.push_back(serial);
      return;
    }
    provider_active_[provider]--;
  }

  // Timers whose time has come; returns ms until the next one (or -1).
  int run_due_timers() {
    for (auto serial : std::exchange(ready_, {})) {
      if (auto it = requests_.find(serial); it != requests_.end()) start_attempt(*it->second);
    }
    const auto now = Clock::now();
    while (!timers_.empty() && timers_.begin()->first <= now) {
      const Timer timer = timers_.begin()->second;
      timers_.erase(timers_.begin());
      auto it = requests_.find(timer.serial);
      if (it == requests_.end()) continue;
      Request& r = *it->second;
      switch (timer.kind) {
        case TimerKind::retry:
          start_attempt(r);
          break;
        case TimerKind::admission:
          if (admit(r)) route_and_start(r);
          break;
        case TimerKind::slot_deadline:
          if (r.waiting_for_slot && r.slot_deadline <= now) start_attempt(r);  // falls back
          break;
      }
    }
    if (!ready_.empty()) return 0;
    if (timers_.empty()) return -1;
    return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(timers_.begin()->first - now).count());
  }

  // Streams silent past first_token_timeout_ms / idle_timeout_ms are cut and
  // handled like any failed attempt (retry or fall back while nothing was published).
  void enforce_stream_timeouts() {
    const auto now = Clock::now();
    if (now - last_timeout_scan_ < std::chrono::milliseconds(50)) return;
    last_timeout_scan_ = now;
    enforce_judge_deadlines(now);
    std::vector<Request*> expired;
    for (auto& [serial, owned] : requests_) {
      Request& r = *owned;
      if (!r.streaming) continue;
      const ProviderConfig* pc = provider_config(current_model(r).provider);
      if (!pc) continue;
      const auto silence = now - (r.attempt_got_token ? r.last_activity : r.attempt_started);
      const long limit = r.attempt_got_token ? pc->idle_timeout_ms : pc->first_token_timeout_ms;
      if (limit > 0 && silence > std::chrono::milliseconds(limit)) expired.push_back(&r);
    }
    for (Request* r : expired) {
      stats_.timeouts++;
      http_->cancel(r->transfer);
      const bool first = !r->attempt_got_token;
      if (recorder_) recorder_->timeout(current_model(*r).provider, first ? "first_token" : "idle");
      on_attempt_failed(*r, Error{ErrorCode::timeout, first ? "no first token within first_token_timeout_ms"
                                                            : "stream idle longer than idle_timeout_ms"});
    }
  }

  const ProviderConfig* provider_config(const std::string& name) const {
    auto it = config_.providers.find(name);
    return it == config_.providers.end() ? nullptr : &it->second;
  }

  // All terminal events of the request are out; it finishes when they are delivered.
  void mark_terminal(Request& r) {
    cancel_agreement(r);  // none left on the paths that charge it; any other stops paying here
    r.terminal_sent = true;
    if (r.budget_reservation != 0) {
      pending_spend_.settle(r.budget_reservation, r.charged_usd, now_ms());
      r.budget_reservation = 0;
    }
    if (r.pending == 0) finished_.push_back(r.serial);
  }

  // Sends a tracked event; its delivery report decrements r.pending.
  void emit(Request& r, const std::string& topic, const std::string& key, std::string payload) {
    if (r.outgoing.size() >= kMaxOutgoing) {
      spdlog::error("worker: too many tracked events for request {}", r.event.id);
      return;
    }
    r.outgoing.push_back(Outgoing{topic, key, std::move(payload), 0});
    r.pending++;
    const std::uint64_t token = (r.serial << 4) | (r.outgoing.size() - 1);
    send(r, token);
  }

  void send(Request& r, std::uint64_t token) {
    Outgoing& out = r.outgoing[token & 0xF];
    if (auto ok = producer_->produce(out.topic, out.key, out.payload, token); !ok) {
      // Local queue full or a transient client error: try again next iteration.
      if (++out.attempts < kMaxDeliveryAttempts * 20) {
        retry_.push_back(token);
      } else {
        spdlog::error("worker: cannot enqueue event of request {}: {}", r.event.id, ok.error().message);
        if (--r.pending == 0 && r.terminal_sent) finished_.push_back(r.serial);
      }
    }
  }

  void resend_retries() {
    if (retry_.empty()) return;
    auto tokens = std::move(retry_);
    retry_.clear();
    for (auto token : tokens) {
      auto it = requests_.find(token >> 4);
      if (it != requests_.end()) send(*it->second, token);
    }
  }

  void finish_completed() {
    if (!awaiting_changelog_.empty()) {
      // Answers whose changelog record has been confirmed since finish now.
      std::erase_if(awaiting_changelog_, [&](std::uint64_t serial) {
        auto it = requests_.find(serial);
        if (it != requests_.end() && !answer_replicated(*it->second)) return false;
        finished_.push_back(serial);
        return true;
      });
    }
    for (auto serial : finished_) {
      auto it = requests_.find(serial);
      if (it == requests_.end()) continue;
      Request& r = *it->second;
      if (r.streaming) continue;  // cannot happen: terminal comes after the stream
      if (!answer_replicated(r)) {
        awaiting_changelog_.push_back(serial);
        continue;
      }
      if (auto w = watermarks_.find(r.partition); w != watermarks_.end()) w->second.complete(r.offset);
      stats_.completed++;
      close_flight(r);  // not needed: a leader closes its flight when it ends; never leave one dangling
      requests_.erase(it);
    }
    finished_.clear();
    stats_.in_flight.store(static_cast<std::int64_t>(requests_.size()));
    if (recorder_) recorder_->in_flight(index_, static_cast<double>(requests_.size()));
  }

  bool answer_replicated(const Request& r) const {
    return r.completed_seq == 0 || !options_.completed || options_.completed->store().published(r.completed_seq);
  }

  void store_offsets() {
    std::vector<std::pair<std::int32_t, std::int64_t>> next_offsets;
    for (auto& [partition, watermark] : watermarks_) {
      if (auto next = watermark.take_committable()) next_offsets.emplace_back(partition, *next);
    }
    consumer_->store_offsets(next_offsets);
  }

  // Paused at max_in_flight, or while the producer's queue is full (events
  // wait in its backlog); resumed at resume_fraction with the backlog gone.
  void apply_backpressure() {
    const int in_flight = static_cast<int>(requests_.size());
    const int resume_at = static_cast<int>(config_.worker.max_in_flight * config_.worker.resume_fraction);
    const bool backlogged = producer_->backlog() > 0;
    if (!paused_ && (in_flight >= config_.worker.max_in_flight || backlogged)) {
      set_paused(true);
    } else if (paused_ && in_flight <= resume_at && !backlogged) {
      set_paused(false);
    }
  }

  void set_paused(bool pause) {
    const std::vector<std::int32_t> assignment = consumer_->assignment();
    if (pause) {
      consumer_->pause(assignment);
      stats_.pauses++;
    } else {
      consumer_->resume(assignment);
      for (const auto& catch_up : catch_ups_) consumer_->pause(catch_up.partitions);
    }
    paused_ = pause;
  }

  // Resumes the partitions whose changelog catch-up is done (or overdue: then
  // a request redelivered from a crashed worker may be answered again).
  void finish_catch_ups() {
    if (catch_ups_.empty()) return;
    std::erase_if(catch_ups_, [&](CatchUp& catch_up) {
      const bool done = options_.changelog->caught_up(catch_up.ticket);
      if (!done && Clock::now() < catch_up.deadline) return false;
      if (!done) {
        stats_.catch_up_timeouts++;
        spdlog::warn("worker[{}]: changelog not caught up within state.restore_timeout_ms; serving {} partition(s) "
                     "anyway (a request redelivered from a crashed worker may be paid twice)",
                     index_, catch_up.partitions.size());
      }
      if (!paused_) consumer_->resume(catch_up.partitions);
      return true;
    });
  }

  // RebalanceListener: called from consumer_->poll() on this loop's thread.
  void on_assigned(const std::vector<std::int32_t>& partitions) override {
    for (const auto p : partitions) watermarks_[p];
    if (options_.changelog != nullptr && !partitions.empty()) {
      CatchUp catch_up;
      catch_up.ticket = options_.changelog->request_catch_up();
      catch_up.deadline = Clock::now() + std::chrono::milliseconds(config_.state.restore_timeout_ms);
      catch_up.partitions = partitions;
      catch_ups_.push_back(std::move(catch_up));
      consumer_->pause(partitions);
    } else if (paused_) {
      consumer_->pause(partitions);
    }
    spdlog::info("worker[{}]: assigned {} partition(s)", index_, partitions.size());
  }

  void on_revoked(const std::vector<std::int32_t>& partitions) override {
    for (auto& catch_up : catch_ups_) {
      std::erase_if(catch_up.partitions, [&](std::int32_t p) { return std::ranges::find(partitions, p) != partitions.end(); });
    }
    // Revoked: commit what is done; in-flight requests of these partitions are
    // redelivered to their new owner (their replies may then appear twice).
    store_offsets();
    if (auto ok = consumer_->commit(); !ok) spdlog::debug("worker: commit on revoke: {}", ok.error().message);
    for (const auto p : partitions) watermarks_.erase(p);
    spdlog::info("worker[{}]: revoked {} partition(s)", index_, partitions.size());
  }

  void shutdown_graceful() {
    // Let outstanding events reach the broker, then commit the final watermark.
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (producer_->queued() > 0 && Clock::now() < deadline) {
      producer_->poll(50);
      resend_retries();
    }
    producer_->poll(0);
    finish_completed();
    store_offsets();
    if (auto ok = consumer_->commit(); !ok) spdlog::warn("worker: final commit: {}", ok.error().message);
    consumer_->close();
    if (!requests_.empty()) {
      spdlog::warn("worker[{}]: stopped with {} request(s) unfinished; they will be redelivered",
                   index_, requests_.size());
    }
    requests_.clear();
    flights_.clear();
    if (!judges_.empty()) spdlog::info("worker[{}]: stopped with {} grading call(s) unfinished", index_, judges_.size());
    judges_.clear();
    http_.reset();
  }

  void shutdown_abort() {
    http_.reset();  // drops transfers without callbacks
    judges_.clear();
    producer_->purge();
    consumer_->abandon();
    requests_.clear();
    flights_.clear();
  }

  void wake() {
    static const char kByte = 1;
    [[maybe_unused]] auto n = ::write(wake_[1], &kByte, 1);
  }

  void drain_wake_pipe() {
    char buf[256];
    while (::read(wake_[0], buf, sizeof buf) > 0) {
    }
  }

  const WorkerOptions& options_;
  const Config& config_;
  WorkerStats& stats_;
  const int index_;
  int wake_[2] = {-1, -1};
  std::unique_ptr<HttpClient> http_;
  std::unique_ptr<ProviderRegistry> providers_;
  std::unique_ptr<Router> router_;
  std::optional<WorkerMetrics::Recorder> recorder_;
  RetryPolicy retry_policy_;
  BreakerBoard breakers_;
  std::shared_ptr<const TokenCounter> tokens_;
  // Spend of this loop's requests that the ledger's spend state may not show yet.
  PendingSpend pending_spend_;
  std::int64_t pending_spend_swept_ms_ = 0;
  enum class TimerKind { retry, admission, slot_deadline };
  struct Timer {
    std::uint64_t serial;
    TimerKind kind;
  };
  std::multimap<Clock::time_point, Timer> timers_;
  std::vector<std::uint64_t> ready_;  // requests handed a provider slot
  std::unordered_map<std::string, TenantBuckets> tenant_buckets_;
  std::unordered_map<std::string, int> provider_active_;
  std::unordered_map<std::string, std::deque<std::uint64_t>> provider_waiters_;
  Clock::time_point last_timeout_scan_{};
  std::unique_ptr<EventProducer> producer_;
  std::unique_ptr<GroupConsumer> consumer_;
  std::unordered_map<std::uint64_t, std::unique_ptr<Request>> requests_;
  // Grading calls in flight by id, and those that ended this iteration
  // (freed at its end, not inside their own callback).
  std::unordered_map<std::uint64_t, std::unique_ptr<JudgeCall>> judges_;
  std::vector<std::unique_ptr<JudgeCall>> judges_done_;
  std::uint64_t next_judge_ = 0;
  const ModelInfo* cascade_judge_ = nullptr;  // router.cascade.judge_model; null = no judge
  const ModelInfo* agreement_model_ = nullptr;  // router.cascade.agreement_model; null = no agreement check
  const ModelInfo* quality_judge_ = nullptr;  // quality.judge_model or the baseline; null = no sampling
  int quality_in_flight_ = 0;
  std::mt19937_64 sampler_{std::random_device{}()};
  FlightTable flights_;  // single flight: open flights of this loop's requests
  // Remote embeddings in flight: normalized text -> serials of the requests waiting for it.
  std::unordered_map<std::string, std::vector<std::uint64_t>> embedding_flights_;
  std::unordered_map<std::int32_t, PartitionWatermark> watermarks_;
  std::vector<std::uint64_t> retry_;
  std::vector<std::uint64_t> finished_;
  // Finished requests whose completed answer is not yet in the changelog.
  std::vector<std::uint64_t> awaiting_changelog_;
  // Partitions assigned to this loop that stay paused until the changelog
  // applier has caught up (request_catch_up): the previous owner's completed
  // answers must be here before any of its requests is redelivered here.
  struct CatchUp {
    std::uint64_t ticket = 0;
    std::vector<std::int32_t> partitions;
    Clock::time_point deadline;
  };
  std::vector<CatchUp> catch_ups_;
  std::uint64_t next_serial_ = 0;
  bool paused_ = false;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> aborting_{false};
  Clock::time_point drain_deadline_;
  std::thread thread_;
};

Result<std::unique_ptr<Worker>> Worker::start(WorkerOptions options) {
  if (!options.catalog) return fail(ErrorCode::internal, "worker needs a model catalog");
  // Judges must be catalog models: their calls are priced like any other.
  for (const auto& [key, id] : {std::pair<const char*, const std::string&>{"router.cascade.judge_model",
                                                                           options.config.router.cascade.judge_model},
                                {"router.cascade.agreement_model", options.config.router.cascade.agreement_model},
                                {"quality.judge_model", options.config.quality.judge_model}}) {
    if (!id.empty() && options.catalog->find(id) == nullptr)
      return fail(ErrorCode::invalid_request, std::string("config '") + key + "': unknown model '" + id + "'");
  }
  if (const std::string& file = options.config.router.cascade.verifier_file; !file.empty() && !options.answer_verifier) {
    auto verifier = AnswerVerifier::load(file);
    if (!verifier)
      return fail(ErrorCode::invalid_request, "config 'router.cascade.verifier_file': " + verifier.error().message);
    options.answer_verifier = std::move(*verifier);
  }
  // Rules' regexes and pinned models, checked here rather than thrown from a loop's Router.
  if (auto ok = validate_route_policies(options.config.router, *options.catalog); !ok)
    return std::unexpected(ok.error());
  auto worker = std::unique_ptr<Worker>(new Worker());
  worker->options_ = std::move(options);
  for (int i = 0; i < worker->options_.config.worker.threads; ++i) {
    auto loop = std::make_unique<Loop>(worker->options_, worker->stats_, i);
    if (auto ok = loop->init(); !ok) return std::unexpected(ok.error());
    worker->loops_.push_back(std::move(loop));
  }
  for (auto& loop : worker->loops_) loop->launch();
  spdlog::info("worker: {} event loop(s) consuming {} as group {}", worker->loops_.size(),
               worker->options_.config.kafka.requests_topic, worker->options_.config.kafka.worker_group);
  return worker;
}

void Worker::stop(int drain_timeout_ms) {
  for (auto& loop : loops_) loop->request_stop(drain_timeout_ms);
  for (auto& loop : loops_) loop->join();
  loops_.clear();
}

void Worker::abort() {
  for (auto& loop : loops_) loop->request_abort();
  for (auto& loop : loops_) loop->join();
  loops_.clear();
}

Worker::~Worker() { stop(); }

}  // namespace cascade
