// cascade_bench_state: how long a worker takes to restore its state from the
// changelog. One writer fills cascade.cache-changelog on the embedded broker
// with N cache entries through a replicated StateStore; then a wiped worker
// (empty state dir) restores all of it, and a restarted one (state dir kept)
// resumes from its stored offsets.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include <stdlib.h>

#include "core/logging.h"
#include "kafka/kafka.h"
#include "state/state.h"

namespace {

using namespace cascade;
using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

struct TempDir {
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "cascade-bench-state-XXXXXX").string();
    if (mkdtemp(pattern.data())) path = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
  std::string path;
};

struct Replica {
  std::unique_ptr<StateStore> store;
  std::unique_ptr<StateChangelog> changelog;
  double open_ms = 0;
};

Result<Replica> open_replica(const StateOptions& options, const KafkaConfig& kafka, const std::string& bootstrap) {
  Replica r;
  const auto t0 = Clock::now();
  auto store = StateStore::open(options);
  if (!store) return std::unexpected(store.error());
  r.store = std::move(*store);
  auto changelog = StateChangelog::open(*r.store, kafka, bootstrap);
  if (!changelog) return std::unexpected(changelog.error());
  r.changelog = std::move(*changelog);
  r.open_ms = ms_between(t0, Clock::now());
  return r;
}

int fail_with(const std::string& what, const Error& e) {
  std::fprintf(stderr, "cascade_bench_state: %s: %s\n", what.c_str(), e.message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Restore time of a worker's state from the cache changelog"};
  int entries = 100000;
  int payload_bytes = 300;
  int partitions = 32;
  int tenants = 8;
  int fetch_wait_ms = 2;
  bool json = false;
  app.add_option("--entries", entries, "cache entries in the changelog");
  app.add_option("--payload-bytes", payload_bytes, "bytes of each cached answer");
  app.add_option("--partitions", partitions,
                 "changelog partitions (the embedded broker keeps ~5 MiB per partition)");
  app.add_option("--tenants", tenants, "tenants the entries are spread over");
  app.add_option("--fetch-wait-ms", fetch_wait_ms, "kafka.fetch_wait_max_ms");
  app.add_flag("--json", json, "also print one JSON line");
  CLI11_PARSE(app, argc, argv);
  init_logging("warn");

  auto broker = EmbeddedBroker::start();
  if (!broker) return fail_with("broker", broker.error());
  StateOptions options;
  options.replicated = true;
  options.maintenance_interval_ms = 0;
  options.max_bytes = std::uint64_t{1} << 40;
  if (auto ok = (*broker)->create_topic({options.changelog_topic, partitions}); !ok) return fail_with("topic", ok.error());
  KafkaConfig kafka;
  kafka.fetch_wait_max_ms = fetch_wait_ms;
  kafka.linger_ms = 5;
  const std::string bootstrap = (*broker)->bootstrap();

  TempDir writer_dir, reader_dir;
  options.dir = writer_dir.path;
  options.writer_id = "bench-writer";
  auto writer = open_replica(options, kafka, bootstrap);
  if (!writer) return fail_with("writer", writer.error());

  // Answers of realistic size; fingerprints are hex like request fingerprints.
  std::string payload(static_cast<std::size_t>(payload_bytes), 'a');
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>('a' + i % 26);
  const auto w0 = Clock::now();
  for (int i = 0; i < entries; ++i) {
    char fp[32];
    std::snprintf(fp, sizeof fp, "%016x%08x", i * 2654435761u, i);
    auto ok = writer->store->put_response("tenant-" + std::to_string(i % tenants), fp, payload, "model@1");
    if (!ok) return fail_with("write", ok.error());
    if (i % 1000 == 0) {
      // Serves delivery reports; what it applies is the writer's own changes.
      if (auto applied = writer->changelog->apply_available(0); !applied) return fail_with("apply", applied.error());
    }
  }
  const auto w1 = Clock::now();
  if (!writer->changelog->flush(300000)) {
    std::fprintf(stderr, "cascade_bench_state: the writer's changes did not all reach the changelog\n");
    return 1;
  }
  const auto w2 = Clock::now();

  options.dir = reader_dir.path;
  options.writer_id = "bench-reader";
  auto reader = open_replica(options, kafka, bootstrap);
  if (!reader) return fail_with("reader", reader.error());
  auto restored = reader->changelog->restore(600000);
  if (!restored) return fail_with("restore", restored.error());
  const auto cache_bytes = reader->store->stats().cache_bytes;
  reader->changelog.reset();
  const auto c0 = Clock::now();
  if (auto ok = reader->store->close(); !ok) return fail_with("close", ok.error());
  const double close_ms = ms_between(c0, Clock::now());
  reader->store.reset();

  auto restarted = open_replica(options, kafka, bootstrap);
  if (!restarted) return fail_with("reopen", restarted.error());
  auto resumed = restarted->changelog->restore(600000);
  if (!resumed) return fail_with("resume", resumed.error());
  int hits = 0;
  for (int i = 0; i < entries; i += std::max(1, entries / 1000)) {
    char fp[32];
    std::snprintf(fp, sizeof fp, "%016x%08x", i * 2654435761u, i);
    hits += restarted->store->get_response("tenant-" + std::to_string(i % tenants), fp, "model@1") ? 1 : 0;
  }

  const double restore_s = static_cast<double>(restored->elapsed_ms) / 1000.0;
  std::printf("changelog: %d entries, %d-byte answers, %d partitions, %d tenants\n", entries, payload_bytes,
              partitions, tenants);
  std::printf("writer:    %.0f ms to write locally (%.0f writes/s), %.0f ms more until all published\n",
              ms_between(w0, w1), entries / (ms_between(w0, w1) / 1000.0), ms_between(w1, w2));
  std::printf("wiped worker restore:  %llu records, %.1f MiB in %lld ms (%.0f records/s, %.1f MiB/s); state %.1f MiB\n",
              static_cast<unsigned long long>(restored->records), restored->bytes / 1048576.0,
              static_cast<long long>(restored->elapsed_ms), restored->records / std::max(restore_s, 1e-9),
              restored->bytes / 1048576.0 / std::max(restore_s, 1e-9), cache_bytes / 1048576.0);
  std::printf("clean close: %.0f ms\n", close_ms);
  std::printf("restarted worker: open %.0f ms, resume %llu records in %lld ms; %d/%d sampled entries hit\n",
              restarted->open_ms, static_cast<unsigned long long>(resumed->records),
              static_cast<long long>(resumed->elapsed_ms), hits, (entries + std::max(1, entries / 1000) - 1) / std::max(1, entries / 1000));
  if (json) {
    std::printf(
        "{\"entries\":%d,\"payload_bytes\":%d,\"partitions\":%d,\"write_ms\":%.0f,\"publish_ms\":%.0f,"
        "\"restore_records\":%llu,\"restore_bytes\":%llu,\"restore_ms\":%lld,\"close_ms\":%.0f,"
        "\"reopen_ms\":%.0f,\"resume_records\":%llu,\"resume_ms\":%lld}\n",
        entries, payload_bytes, partitions, ms_between(w0, w1), ms_between(w1, w2),
        static_cast<unsigned long long>(restored->records), static_cast<unsigned long long>(restored->bytes),
        static_cast<long long>(restored->elapsed_ms), close_ms, restarted->open_ms,
        static_cast<unsigned long long>(resumed->records), static_cast<long long>(resumed->elapsed_ms));
  }
  restarted->changelog.reset();
  writer->changelog.reset();
  return restored->records == static_cast<std::uint64_t>(entries) ? 0 : 2;
}
