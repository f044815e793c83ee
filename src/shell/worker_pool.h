// Runs spawned programs, each in its own VM, on a fixed set of threads, so a
// shell stays free while they run. Every job's output is captured, never
// written to the terminal directly.
//
// Finished jobs are kept for !jobs and !job, but only the newest ones: at
// most JobRetention::max_jobs of them, holding at most
// JobRetention::max_output_bytes of captured output and errors together.
// The oldest finished job is dropped first; queued and running jobs are never
// dropped, and the job that finished last is always kept.
//
// Thread safety: every public method may be called from any thread. mutex_
// guards queue_, jobs_, finished_, on_finished_, cancel_requested_,
// next_id_ and the retention bookkeeping; a worker
// runs a job's VM without holding it and takes it only to publish the
// outcome and, between slices of kSlice steps, to look for a cancel request.
// limits_ and threads_ are set in the constructor and read-only afterwards.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "vm/image.h"
#include "vm/machine.h"

namespace iridium::shell {

enum class JobState { kQueued, kRunning, kHalted, kEnded, kError, kCancelled };
inline constexpr std::size_t kJobStateCount = 6;  // kQueued .. kCancelled
std::string_view job_state_name(JobState state);
// Halted, ended, error or cancelled: the state will not change again.
bool job_finished(JobState state);

struct JobInfo {
  using Clock = std::chrono::steady_clock;

  uint64_t id = 0;
  uint64_t owner = 0;  // the shell session that spawned it
  std::string origin;  // set: a cluster member asked for it (!run_on); owner is then kClusterOwner
  std::string name;    // usually the file it came from
  JobState state = JobState::kQueued;
  std::string error;   // set when state is kError
  std::string output;  // captured program output (capped)
  // Set when the job finishes (or is cancelled after it started). The heap
  // and stack are dropped to keep finished jobs small; their sizes are kept.
  vm::MachineState final_state;
  std::size_t final_heap_bytes = 0;
  std::size_t final_stack_entries = 0;
  std::optional<Clock::time_point> started;   // unset while queued
  std::optional<Clock::time_point> finished;  // unset until it finishes
};

// How many finished jobs a pool keeps (see the file comment).
struct JobRetention {
  std::size_t max_jobs = 1000;               // at least 1
  std::size_t max_output_bytes = 16u << 20;  // output plus error text of the kept jobs
};

// How many jobs are in each state, without copying their outputs.
struct JobCounts {
  std::array<uint64_t, kJobStateCount> by_state{};  // kept jobs, indexed by JobState
  uint64_t submitted = 0;                           // every job ever
  uint64_t dropped = 0;                             // finished jobs no longer kept
};

// What cancel() did.
enum class CancelOutcome {
  kCancelled,        // it was queued: it will never run, and is now kCancelled
  kStopping,         // it is running: it stops at its next slice boundary
  kNoSuchJob,        // no job has this id
  kAlreadyFinished,  // it had already halted, ended, failed or been cancelled
};

// The owner of the jobs cluster members ask for: no shell session.
inline constexpr uint64_t kClusterOwner = UINT64_MAX;

class WorkerPool {
 public:
  using FinishedFn = std::function<void(const JobInfo&)>;

  static constexpr std::size_t kOutputCap = 64 * 1024;
  // Jobs waiting for a worker, at most: each holds its image until it runs.
  static constexpr std::size_t kMaxQueued = 1024;
  // Steps a job runs between looks at cancel requests and shutdown; about
  // 25 ms of an optimised build's time.
  static constexpr uint64_t kSlice = 10'000'000;

  WorkerPool(unsigned threads, vm::Limits limits, JobRetention retention = {});
  ~WorkerPool();  // cancels queued and running jobs and joins the threads
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues a job; nullopt when kMaxQueued jobs already wait for a worker.
  std::optional<uint64_t> submit(uint64_t owner, std::string name, vm::Image image);
  // For jobs cluster members ask for: queues the job only when a worker is
  // free for it now (fewer jobs queued and running than threads), else
  // nullopt, so such a job never waits behind others. `on_finished` is
  // called once, after the outcome is published, on the thread that
  // finished the job (a worker, a canceller or the destructor), without
  // mutex_ held; such jobs are not reported by take_finished().
  std::optional<uint64_t> submit_if_free(std::string origin, std::string name, vm::Image image,
                                         FinishedFn on_finished);
  std::vector<JobInfo> jobs() const;
  std::optional<JobInfo> job(uint64_t id) const;
  // True when the job existed, finished and was dropped to keep the bound.
  bool dropped(uint64_t id) const;
  JobCounts counts() const;
  const JobRetention& retention() const { return retention_; }
  // Asks a job to stop. A running job ends as kCancelled at its next slice
  // boundary (unless it halts, ends or fails first), with its output and
  // registers as they were; wait_finished() waits for that.
  CancelOutcome cancel(uint64_t id);
  // Jobs of this owner that finished since the last call and are still kept.
  std::vector<JobInfo> take_finished(uint64_t owner);
  // Blocks until no job is queued or running, or the timeout passes.
  bool wait_idle(std::chrono::milliseconds timeout) const;
  // Blocks until the job has finished or the timeout passes; the job as it
  // then is (nullopt: no such job).
  std::optional<JobInfo> wait_finished(uint64_t id, std::chrono::milliseconds timeout) const;
  unsigned threads() const { return static_cast<unsigned>(threads_.size()); }

 private:
  void work();
  void run_job(uint64_t id, vm::Image image);
  bool should_stop(uint64_t id) const;  // takes mutex_
  // A job has finished (mutex_ held): its notice for take_finished(), or
  // its on_finished callback, added to `calls` for after the lock.
  void publish_locked(const JobInfo& info, std::vector<std::pair<FinishedFn, JobInfo>>& calls);
  // Drops the oldest finished jobs until the kept ones fit retention_
  // (mutex_ held).
  void drop_finished_locked();

  const vm::Limits limits_;
  const JobRetention retention_;
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;  // any job's state changed, or stopping_
  std::deque<std::pair<uint64_t, vm::Image>> queue_;
  std::map<uint64_t, JobInfo> jobs_;
  std::map<uint64_t, std::deque<uint64_t>> finished_;  // owner -> ids not yet taken
  std::deque<uint64_t> kept_finished_;                 // finished job ids, oldest first
  std::size_t kept_output_bytes_ = 0;                  // output + error of kept_finished_
  uint64_t dropped_ = 0;
  std::map<uint64_t, FinishedFn> on_finished_;  // jobs from submit_if_free
  std::set<uint64_t> cancel_requested_;         // running jobs asked to stop
  uint64_t next_id_ = 1;
  std::atomic<bool> stopping_{false};  // written under mutex_ so waiters see it
  std::vector<std::thread> threads_;
};

}  // namespace iridium::shell
