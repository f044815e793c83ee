// Runs the images cluster members send (!run_on, !run_all) on the node's
// worker pool: the cluster library's RunExecutor, implemented with the VM.
//
// Thread-safety: start() and cancel() are called by the cluster I/O thread
// and never block (the pool's mutex only); `done` callbacks run on the
// thread that finishes the job. The pool must outlive every started job's
// callback, which it does: its destructor finishes every job.
#pragma once

#include "cluster/remote_run.h"
#include "shell/worker_pool.h"

namespace iridium::app {

class PoolRunExecutor : public cluster::RunExecutor {
 public:
  explicit PoolRunExecutor(shell::WorkerPool& pool) : pool_(pool) {}

  // Verifies the image (the node's own verifier: it trusts no sender) and
  // queues it only when a worker is free now: no queueing beyond the
  // threads, so a busy node says "pool full" at once rather than later.
  Result<uint64_t> start(cluster::RunRequest request, cluster::RunDone done) override;
  void cancel(uint64_t job) override;

 private:
  shell::WorkerPool& pool_;
};

// A finished job as run_result carries it: the output cut to
// cluster::kMaxRunOutputBytes (flagged), the non-zero registers.
cluster::RunOutcome run_outcome(const shell::JobInfo& job);

}  // namespace iridium::app
