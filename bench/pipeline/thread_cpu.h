#pragma once
// Per-thread CPU time from /proc/self/task, attributed to the pipeline part
// that started each thread. Broker, worker, upstream and client share one
// process, so the process total alone cannot say where the CPU went.
#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

namespace cascade::bench {

struct ThreadCpu {
  pid_t tid = 0;
  std::string name;  // the kernel's comm (librdkafka names its threads "rdk:...")
  double cpu_seconds = 0;  // user + system
  // Time spent runnable but waiting for a CPU (schedstat run delay): high
  // values mean the thread was starved by others, not idle.
  double wait_seconds = 0;
};

// Every live thread of this process with its CPU time so far.
std::vector<ThreadCpu> sample_threads();

// Remembers which pipeline part each thread belongs to: after a part starts,
// claim_new() gives it every thread not seen before.
class ThreadAttribution {
 public:
  void claim_new(const std::string& part);
  // "unattributed" for threads started after the last claim.
  std::string part_of(pid_t tid) const;

 private:
  std::map<pid_t, std::string> part_by_tid_;
};

struct CpuShare {
  std::string part;
  std::string thread_name;
  int threads = 0;
  double cpu_seconds = 0;
  double wait_seconds = 0;
};

// CPU used between two samples, grouped by (part, thread name), largest first.
// Threads that ended between the samples are missing (the process total from
// getrusage still has them).
std::vector<CpuShare> cpu_between(const std::vector<ThreadCpu>& before, const std::vector<ThreadCpu>& after,
                                  const ThreadAttribution& attribution);

// Names the calling thread (15 characters at most); threads it starts inherit
// the name unless they set their own, which lets event-loop threads of a part
// be recognised in `top -H` and perf too.
void name_this_thread(const std::string& name);

}  // namespace cascade::bench
