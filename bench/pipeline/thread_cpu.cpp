#include "bench/pipeline/thread_cpu.h"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace cascade::bench {
namespace {

// Fields of /proc/<pid>/task/<tid>/stat after the parenthesised comm, which
// may itself contain spaces: state is field 3, utime 14, stime 15.
bool read_thread_stat(const std::filesystem::path& task_dir, ThreadCpu& out) {
  std::ifstream comm_file(task_dir / "comm");
  std::getline(comm_file, out.name);
  std::ifstream stat_file(task_dir / "stat");
  std::string stat;
  if (!std::getline(stat_file, stat)) return false;
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int number = 3; number <= 15 && fields >> field; ++number) {
    if (number == 14) utime = std::stoull(field);
    if (number == 15) stime = std::stoull(field);
  }
  static const double ticks_per_second = static_cast<double>(::sysconf(_SC_CLK_TCK));
  out.cpu_seconds = static_cast<double>(utime + stime) / ticks_per_second;
  // schedstat: nanoseconds on a CPU, nanoseconds waiting on a run queue, slices.
  std::ifstream schedstat_file(task_dir / "schedstat");
  unsigned long long on_cpu_ns = 0, waiting_ns = 0;
  if (schedstat_file >> on_cpu_ns >> waiting_ns) out.wait_seconds = static_cast<double>(waiting_ns) / 1e9;
  return true;
}

}  // namespace

std::vector<ThreadCpu> sample_threads() {
  std::vector<ThreadCpu> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    ThreadCpu t;
    try {
      t.tid = static_cast<pid_t>(std::stol(entry.path().filename().string()));
    } catch (const std::exception&) {
      continue;
    }
    // A thread may end while we read it; it is then simply absent.
    if (read_thread_stat(entry.path(), t)) out.push_back(std::move(t));
  }
  return out;
}

void ThreadAttribution::claim_new(const std::string& part) {
  for (const auto& t : sample_threads()) part_by_tid_.try_emplace(t.tid, part);
}

std::string ThreadAttribution::part_of(pid_t tid) const {
  const auto it = part_by_tid_.find(tid);
  return it == part_by_tid_.end() ? "unattributed" : it->second;
}

std::vector<CpuShare> cpu_between(const std::vector<ThreadCpu>& before, const std::vector<ThreadCpu>& after,
                                  const ThreadAttribution& attribution) {
  std::map<pid_t, const ThreadCpu*> start;
  for (const auto& t : before) start[t.tid] = &t;
  std::map<std::pair<std::string, std::string>, CpuShare> grouped;
  for (const auto& t : after) {
    const auto it = start.find(t.tid);
    const double used = t.cpu_seconds - (it == start.end() ? 0.0 : it->second->cpu_seconds);
    const double waited = t.wait_seconds - (it == start.end() ? 0.0 : it->second->wait_seconds);
    const auto part = attribution.part_of(t.tid);
    auto& share = grouped[{part, t.name}];
    share.part = part;
    share.thread_name = t.name;
    share.threads++;
    share.cpu_seconds += used;
    share.wait_seconds += waited;
  }
  std::vector<CpuShare> out;
  for (auto& [key, share] : grouped) out.push_back(std::move(share));
  std::sort(out.begin(), out.end(), [](const CpuShare& a, const CpuShare& b) {
    return a.cpu_seconds > b.cpu_seconds;
  });
  return out;
}

void name_this_thread(const std::string& name) {
  ::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str());
}

}  // namespace cascade::bench
