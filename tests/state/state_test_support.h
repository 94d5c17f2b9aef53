#pragma once
// Shared by the state tests: temporary directories and a clock tests move.
#include <atomic>
#include <functional>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

#include <stdlib.h>


namespace cascade::testing_state {

// A fresh directory per test, removed with everything in it afterwards.
class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "cascade-state-test-XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string path() const { return path_.string(); }
  std::string sub(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Wall clock under the test's control; shared with compaction threads.
class ManualClock {
 public:
  explicit ManualClock(std::int64_t start_ms = 1'700'000'000'000) : now_(std::make_shared<std::atomic<std::int64_t>>(start_ms)) {}
  std::int64_t now() const { return now_->load(); }
  void advance_ms(std::int64_t ms) { *now_ += ms; }
  void set(std::int64_t ms) { *now_ = ms; }
  std::function<std::int64_t()> fn() const {
    auto n = now_;
    return [n] { return n->load(); };
  }

 private:
  std::shared_ptr<std::atomic<std::int64_t>> now_;
};

}  // namespace cascade::testing_state
