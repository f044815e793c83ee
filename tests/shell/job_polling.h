// Waiting for a worker-pool job in the shell suites: poll with a deadline.
#pragma once

#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "shell/worker_pool.h"

namespace iridium::testing {

// Polls the job until pred holds or the deadline passes; the last snapshot.
template <typename Pred>
shell::JobInfo poll_job(const shell::WorkerPool& pool, uint64_t id, Pred pred,
                        std::chrono::steady_clock::duration limit = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    auto job = pool.job(id);
    REQUIRE(job.has_value());
    if (pred(*job) || std::chrono::steady_clock::now() >= deadline) return *job;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// Waits for the job to leave the queue; it must then be running.
inline shell::JobInfo wait_running(const shell::WorkerPool& pool, uint64_t id) {
  shell::JobInfo job = poll_job(
      pool, id, [](const shell::JobInfo& j) { return j.state != shell::JobState::kQueued; });
  REQUIRE(job.state == shell::JobState::kRunning);
  return job;
}

}  // namespace iridium::testing
