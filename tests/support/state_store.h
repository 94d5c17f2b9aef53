#pragma once
// State stores in tests: a local store in a temporary directory, and the
// replicas of a replicated store with their changelogs, as workers open them.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "kafka/kafka.h"
#include "state/state.h"
#include "support/manual_clock.h"

namespace cascade::testing {

// A store in `dir` with no maintenance thread: maintenance runs when the
// test calls maintain().
inline StateOptions state_options_in(const std::string& dir) {
  StateOptions o;
  o.dir = dir;
  o.maintenance_interval_ms = 0;
  return o;
}

// One worker's replica of a replicated store in `dir` (no maintenance
// thread): every change is queued for the changelog `topic`. `writer` names
// its records ("" = host:pid:random); `clock` is its wall clock (null = the
// system clock).
inline StateOptions replica_options(const std::string& dir, const std::string& topic, const std::string& writer = "",
                                    const ManualClock* clock = nullptr) {
  StateOptions o = state_options_in(dir);
  o.replicated = true;
  o.changelog_topic = topic;
  o.writer_id = writer;
  if (clock) o.now_ms = clock->fn();
  return o;
}

// The store; null, and a failed test, when it does not open.
inline std::unique_ptr<StateStore> open_state_store(const StateOptions& options) {
  auto store = StateStore::open(options);
  if (!store) {
    ADD_FAILURE() << "StateStore::open: " << store.error().message;
    return nullptr;
  }
  return std::move(*store);
}

// One worker's state: its store and the changelog attached to it, closed
// changelog first.
struct Replica {
  std::unique_ptr<StateStore> store;
  std::unique_ptr<StateChangelog> changelog;

  Replica() = default;
  Replica(Replica&&) = default;
  Replica& operator=(Replica&& other) noexcept {
    close();
    store = std::move(other.store);
    changelog = std::move(other.changelog);
    return *this;
  }
  ~Replica() { close(); }

  // Crash-free shutdown in the required order: changelog first.
  void close() {
    changelog.reset();
    store.reset();
  }
};

// A store opened with `options` and a changelog attached to it on the
// brokers at `bootstrap`. What does not open is null, and a failed test.
inline Replica open_replica(const StateOptions& options, const KafkaConfig& kafka, const std::string& bootstrap,
                            ChangelogListener* listener = nullptr) {
  Replica r;
  r.store = open_state_store(options);
  if (!r.store) return r;
  auto changelog = StateChangelog::open(*r.store, kafka, bootstrap, listener);
  if (!changelog) {
    ADD_FAILURE() << "StateChangelog::open: " << changelog.error().message;
    return r;
  }
  r.changelog = std::move(*changelog);
  return r;
}

}  // namespace cascade::testing
