// Runs spawned programs, each in its own VM, on a fixed set of threads, so a
// shell stays free while they run. Every job's output is captured, never
// written to the terminal directly.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "vm/image.h"
#include "vm/machine.h"

namespace iridium::shell {

enum class JobState { kQueued, kRunning, kHalted, kEnded, kError, kCancelled };
std::string_view job_state_name(JobState state);

struct JobInfo {
  uint64_t id = 0;
  uint64_t owner = 0;  // the shell session that spawned it
  std::string name;    // usually the file it came from
  JobState state = JobState::kQueued;
  std::string error;   // set when state is kError
  std::string output;  // captured program output (capped)
  vm::MachineState final_state;
};

class WorkerPool {
 public:
  static constexpr std::size_t kOutputCap = 64 * 1024;

  WorkerPool(unsigned threads, vm::Limits limits);
  ~WorkerPool();  // cancels running jobs and joins the threads
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  uint64_t submit(uint64_t owner, std::string name, vm::Image image);
  std::vector<JobInfo> jobs() const;
  std::optional<JobInfo> job(uint64_t id) const;
  // Jobs of this owner that finished since the last call.
  std::vector<JobInfo> take_finished(uint64_t owner);
  // Blocks until no job is queued or running, or the timeout passes.
  bool wait_idle(std::chrono::milliseconds timeout) const;
  unsigned threads() const { return static_cast<unsigned>(threads_.size()); }

 private:
  void work();
  void run_job(uint64_t id, vm::Image image);

  vm::Limits limits_;
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::deque<std::pair<uint64_t, vm::Image>> queue_;
  std::map<uint64_t, JobInfo> jobs_;
  std::map<uint64_t, std::vector<uint64_t>> finished_;  // owner -> job ids
  uint64_t next_id_ = 1;
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> threads_;
};

}  // namespace iridium::shell
