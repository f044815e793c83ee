// The worker pool (src/shell/worker_pool.h): cancelling queued and running
// jobs, what a cancel of a finished or unknown job says, and a cancel racing
// a job's own end. Every wait polls with a deadline.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "job_polling.h"
#include "shell/worker_pool.h"
#include "vm_harness.h"

using namespace std::chrono_literals;
using iridium::shell::CancelOutcome;
using iridium::shell::JobInfo;
using iridium::shell::JobState;
using iridium::shell::WorkerPool;
using iridium::testing::assemble_ok;
using iridium::testing::poll_job;
using iridium::testing::wait_running;
using Clock = std::chrono::steady_clock;

namespace {

// Prints "hi\n", then counts $0 up for ever ($1 is the jump distance).
const char* const kEndless =
    ".data\nmsg: .asciiz 'hi\\n'\n.code\nprts @msg\nload $1 #4\ntop: inc $0\njmpb $1\n";
const char* const kQuick = "load $0 #42\nhlt\n";
// About `count` * 3 steps, then HLT with $1 == count.
std::string counting_to(int count) {
  return "load $0 #" + std::to_string(count) +
         "\nload $1 #0\ntop: inc $1\nneq $0 $1\ndjmpe @top\nhlt\n";
}

}  // namespace

TEST_CASE("a queued job that is cancelled never starts") {
  WorkerPool pool(1, {});
  const uint64_t busy = *pool.submit(7, "endless", assemble_ok(kEndless));
  wait_running(pool, busy);
  const uint64_t queued = *pool.submit(7, "quick", assemble_ok(kQuick));
  CHECK(pool.job(queued)->state == JobState::kQueued);

  CHECK(pool.cancel(queued) == CancelOutcome::kCancelled);
  JobInfo job = *pool.job(queued);
  CHECK(job.state == JobState::kCancelled);
  CHECK_FALSE(job.started.has_value());
  CHECK(job.finished.has_value());

  // Free the thread; the cancelled job must still not run.
  CHECK(pool.cancel(busy) == CancelOutcome::kStopping);
  REQUIRE(pool.wait_idle(20s));
  job = *pool.job(queued);
  CHECK(job.state == JobState::kCancelled);
  CHECK_FALSE(job.started.has_value());
  CHECK(job.final_state.registers[0] == 0);  // LOAD $0 #42 never ran
  CHECK(pool.cancel(queued) == CancelOutcome::kAlreadyFinished);

  // Both count as finished for their owner, once.
  const auto finished = pool.take_finished(7);
  REQUIRE(finished.size() == 2);
  CHECK(pool.take_finished(7).empty());
}

TEST_CASE("a running job stops within a bounded time, keeping its output and registers") {
  WorkerPool pool(2, {});
  const uint64_t id = *pool.submit(1, "endless", assemble_ok(kEndless));
  wait_running(pool, id);
  const auto asked = Clock::now();
  REQUIRE(pool.cancel(id) == CancelOutcome::kStopping);
  const JobInfo job =
      poll_job(pool, id, [](const JobInfo& j) { return j.state != JobState::kRunning; });
  const auto took = Clock::now() - asked;
  REQUIRE(job.state == JobState::kCancelled);
  // One slice of 10M steps takes about 25 ms optimised and well under a
  // second under TSan; 10 s would mean the cancel was not seen at all.
  CHECK(took < 10s);
  INFO("stopped after " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                        << " ms");
  CHECK(job.output == "hi\n");
  CHECK(job.error.empty());
  CHECK(job.final_state.registers[1] == 4);
  CHECK(job.final_state.registers[0] > 0);
  CHECK(job.final_heap_bytes == iridium::vm::kInitialHeapSize);
  REQUIRE(job.started.has_value());
  REQUIRE(job.finished.has_value());
  CHECK(*job.finished >= *job.started);
  CHECK(pool.cancel(id) == CancelOutcome::kAlreadyFinished);
}

TEST_CASE("wait_finished returns the job once it has stopped") {
  WorkerPool pool(1, {});
  const uint64_t id = *pool.submit(1, "endless", assemble_ok(kEndless));
  wait_running(pool, id);
  // Still running: the wait times out and says so.
  auto job = pool.wait_finished(id, 10ms);
  REQUIRE(job.has_value());
  CHECK(job->state == JobState::kRunning);
  REQUIRE(pool.cancel(id) == CancelOutcome::kStopping);
  job = pool.wait_finished(id, 20s);
  REQUIRE(job.has_value());
  CHECK(job->state == JobState::kCancelled);
  CHECK_FALSE(pool.wait_finished(99, 10ms).has_value());
}

TEST_CASE("cancelling a finished or unknown job changes nothing") {
  WorkerPool pool(1, {});
  const uint64_t id = *pool.submit(1, "quick", assemble_ok(kQuick));
  REQUIRE(pool.wait_idle(20s));
  CHECK(pool.cancel(id) == CancelOutcome::kAlreadyFinished);
  const JobInfo job = *pool.job(id);
  CHECK(job.state == JobState::kHalted);
  CHECK(job.final_state.registers[0] == 42);
  CHECK(pool.cancel(id + 1) == CancelOutcome::kNoSuchJob);
  CHECK(pool.cancel(0) == CancelOutcome::kNoSuchJob);
}

TEST_CASE("destroying the pool stops a job that never ends") {
  const auto start = Clock::now();
  {
    WorkerPool pool(1, {});
    const uint64_t id = *pool.submit(1, "endless", assemble_ok(kEndless));
    wait_running(pool, id);
  }
  CHECK(Clock::now() - start < 20s);
}

// Run under TSan: cancels from one thread race jobs that finish on their
// own, near a slice boundary or at once, while a third thread reads.
TEST_CASE("cancel racing a job's own end leaves one consistent outcome") {
  WorkerPool pool(2, {});
  // 3,333,334 iterations are just over 10M steps: the job halts a few steps
  // past its first slice boundary, where a cancel is looked for.
  const iridium::vm::Image near_boundary = assemble_ok(counting_to(3'333'334));
  const iridium::vm::Image quick = assemble_ok(kQuick);
  std::atomic<bool> done{false};
  std::atomic<int> unnamed{0};  // Catch2's CHECK is not for other threads
  std::thread reader([&] {
    while (!done) {
      for (const JobInfo& job : pool.jobs()) unnamed += job.name.empty() ? 1 : 0;
      std::this_thread::yield();
    }
  });
  std::map<uint64_t, CancelOutcome> outcomes;
  for (int round = 0; round < 12; ++round) {
    const uint64_t a = *pool.submit(3, "near", near_boundary);
    const uint64_t b = *pool.submit(3, "quick", quick);
    std::thread canceller([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(round * 3));
      outcomes[b] = pool.cancel(b);
      outcomes[a] = pool.cancel(a);
    });
    canceller.join();
    REQUIRE(iridium::shell::job_finished(pool.wait_finished(a, 20s)->state));
    REQUIRE(iridium::shell::job_finished(pool.wait_finished(b, 20s)->state));
  }
  done = true;
  reader.join();
  CHECK(unnamed == 0);

  std::map<uint64_t, int> noticed;
  for (const JobInfo& job : pool.take_finished(3)) ++noticed[job.id];
  REQUIRE(noticed.size() == outcomes.size());
  for (const auto& [id, outcome] : outcomes) {
    const JobInfo job = *pool.job(id);
    INFO("job " << id << " " << iridium::shell::job_state_name(job.state));
    CHECK(noticed[id] == 1);
    switch (outcome) {
      case CancelOutcome::kCancelled:
        CHECK(job.state == JobState::kCancelled);
        CHECK_FALSE(job.started.has_value());
        break;
      case CancelOutcome::kStopping:
        CHECK((job.state == JobState::kCancelled || job.state == JobState::kHalted));
        break;
      case CancelOutcome::kAlreadyFinished:
        CHECK(job.state == JobState::kHalted);
        break;
      case CancelOutcome::kNoSuchJob:
        FAIL("job " << id << " was not found");
    }
    if (job.state == JobState::kHalted) {
      CHECK(job.final_state.registers[0] == (job.name == "quick" ? 42 : 3'333'334));
    }
  }
}

TEST_CASE("a member's job is queued only while a worker is free, and reported by callback",
          "[run]") {
  WorkerPool pool(1, {});
  std::mutex mutex;
  std::vector<JobInfo> finished;
  auto record = [&](const JobInfo& job) {
    std::lock_guard lock(mutex);
    finished.push_back(job);
  };
  auto finished_count = [&] {
    std::lock_guard lock(mutex);
    return finished.size();
  };
  const auto busy = pool.submit_if_free("seed", "endless", assemble_ok(kEndless), record);
  REQUIRE(busy.has_value());
  wait_running(pool, *busy);
  CHECK(pool.job(*busy)->origin == "seed");
  CHECK(pool.job(*busy)->owner == iridium::shell::kClusterOwner);
  // The one worker is busy: refused at once, nothing queued.
  CHECK_FALSE(pool.submit_if_free("seed", "quick", assemble_ok(kQuick), record).has_value());
  CHECK(pool.jobs().size() == 1);

  CHECK(pool.cancel(*busy) == CancelOutcome::kStopping);
  const auto deadline = Clock::now() + 20s;
  while (finished_count() == 0 && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
  REQUIRE(finished_count() == 1);
  CHECK(finished[0].id == *busy);
  CHECK(finished[0].state == JobState::kCancelled);
  CHECK(finished[0].output == "hi\n");
  CHECK(pool.take_finished(iridium::shell::kClusterOwner).empty());

  // Free again: taken, and reported once.
  const auto quick = pool.submit_if_free("b", "quick", assemble_ok(kQuick), record);
  REQUIRE(quick.has_value());
  while (finished_count() < 2 && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
  REQUIRE(finished_count() == 2);
  CHECK(finished[1].state == JobState::kHalted);
  CHECK(finished[1].final_state.registers[0] == 42);
  CHECK(pool.wait_idle(5s));
  CHECK(finished_count() == 2);
}

TEST_CASE("a member's job still queued when the pool stops is reported cancelled", "[run]") {
  std::atomic<int> calls{0};
  std::atomic<bool> cancelled{false};
  {
    WorkerPool pool(1, {});
    const uint64_t busy = *pool.submit(1, "endless", assemble_ok(kEndless));
    wait_running(pool, busy);
    // The worker is busy with a session's job, so a member's job is refused...
    CHECK_FALSE(pool.submit_if_free("a", "quick", assemble_ok(kQuick), [](const JobInfo&) {}));
    CHECK(pool.cancel(busy) == CancelOutcome::kStopping);
    REQUIRE(pool.wait_finished(busy, 20s)->state == JobState::kCancelled);
    // ... and taken once it is free; a cancel while queued or running reports it once.
    const auto id =
        pool.submit_if_free("a", "endless", assemble_ok(kEndless), [&](const JobInfo& j) {
          ++calls;
          cancelled = j.state == JobState::kCancelled;
        });
    REQUIRE(id.has_value());
  }  // the destructor cancels it, wherever it is
  CHECK(calls == 1);
  CHECK(cancelled);
}

namespace {

std::vector<uint64_t> kept_ids(const WorkerPool& pool) {
  std::vector<uint64_t> ids;
  for (const JobInfo& job : pool.jobs()) ids.push_back(job.id);
  return ids;
}

const char* const kPrintsHi = ".data\nmsg: .asciiz 'hi\\n'\n.code\nprts @msg\nhlt\n";

}  // namespace

TEST_CASE("past the count bound the oldest finished jobs are dropped, with their notices") {
  WorkerPool pool(1, {}, {3, 1u << 20});
  for (int i = 0; i < 5; ++i) pool.submit(7, "quick", assemble_ok(kQuick));
  REQUIRE(pool.wait_idle(20s));

  CHECK(kept_ids(pool) == std::vector<uint64_t>{3, 4, 5});
  CHECK(pool.counts().dropped == 2);
  CHECK(pool.counts().submitted == 5);
  CHECK(pool.dropped(1));
  CHECK(pool.dropped(2));
  CHECK_FALSE(pool.dropped(3));
  CHECK_FALSE(pool.dropped(6));  // never existed
  CHECK_FALSE(pool.dropped(0));
  CHECK_FALSE(pool.job(1).has_value());
  CHECK(pool.cancel(1) == CancelOutcome::kNoSuchJob);

  std::vector<uint64_t> noticed;
  for (const JobInfo& job : pool.take_finished(7)) noticed.push_back(job.id);
  CHECK(noticed == std::vector<uint64_t>{3, 4, 5});
}

TEST_CASE("past the byte bound the oldest finished jobs are dropped, the newest always kept") {
  // Each job keeps "hi\n", 3 bytes: 10 bytes hold three of them.
  WorkerPool pool(1, {}, {100, 10});
  for (int i = 0; i < 5; ++i) pool.submit(7, "hi", assemble_ok(kPrintsHi));
  REQUIRE(pool.wait_idle(20s));
  CHECK(kept_ids(pool) == std::vector<uint64_t>{3, 4, 5});
  CHECK(pool.counts().dropped == 2);

  // A bound smaller than one job's output still keeps the job that just finished.
  WorkerPool tiny(1, {}, {100, 1});
  for (int i = 0; i < 3; ++i) tiny.submit(7, "hi", assemble_ok(kPrintsHi));
  REQUIRE(tiny.wait_idle(20s));
  REQUIRE(kept_ids(tiny) == std::vector<uint64_t>{3});
  CHECK(tiny.job(3)->output == "hi\n");
}

TEST_CASE("queued and running jobs are never dropped, however low the bound") {
  WorkerPool pool(1, {}, {1, 0});
  const uint64_t running = *pool.submit(7, "endless", assemble_ok(kEndless));
  wait_running(pool, running);
  const uint64_t queued_a = *pool.submit(7, "quick", assemble_ok(kQuick));
  const uint64_t queued_b = *pool.submit(7, "quick", assemble_ok(kQuick));
  // Finishing one queued job (by cancelling it) drops no one else.
  CHECK(pool.cancel(queued_a) == CancelOutcome::kCancelled);
  CHECK(kept_ids(pool) == std::vector<uint64_t>{running, queued_a, queued_b});

  CHECK(pool.cancel(running) == CancelOutcome::kStopping);
  REQUIRE(pool.wait_idle(20s));
  // Three finished in turn (a, the endless one, b); only the last is kept.
  CHECK(kept_ids(pool) == std::vector<uint64_t>{queued_b});
  CHECK(pool.counts().dropped == 2);
}

TEST_CASE("thousands of jobs past the bound keep the pool at the bound") {
  WorkerPool pool(2, {}, {50, 1u << 20});
  const iridium::vm::Image hi = assemble_ok(kPrintsHi);
  const auto deadline = Clock::now() + 60s;
  for (int i = 0; i < 3000 && Clock::now() < deadline;) {
    if (pool.submit(i % 3, "hi", hi)) {
      ++i;
    } else {
      std::this_thread::sleep_for(1ms);  // the queue is full: let the workers catch up
    }
  }
  REQUIRE(pool.wait_idle(60s));
  CHECK(pool.jobs().size() == 50);
  CHECK(pool.counts().dropped == 2950);
  // Sessions that never look at their notices hold none beyond the kept jobs.
  std::size_t notices = 0;
  for (uint64_t owner = 0; owner < 3; ++owner) notices += pool.take_finished(owner).size();
  CHECK(notices == 50);
}

TEST_CASE("the jobs cluster members ask for are bounded the same way") {
  WorkerPool pool(1, {}, {2, 1u << 20});
  std::atomic<int> called{0};
  for (int i = 0; i < 4; ++i) {
    REQUIRE(pool.submit_if_free("seed", "quick", assemble_ok(kQuick),
                                [&](const JobInfo&) { ++called; }));
    REQUIRE(pool.wait_idle(20s));
  }
  // Callbacks run after the outcome is published, so poll for the last one.
  const auto deadline = Clock::now() + 20s;
  while (called < 4 && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
  CHECK(called == 4);
  CHECK(kept_ids(pool) == std::vector<uint64_t>{3, 4});
  CHECK(pool.counts().dropped == 2);
}

TEST_CASE("past kMaxQueued waiting jobs a submit is refused, and taken again once they run") {
  WorkerPool pool(1, {});
  const uint64_t busy = *pool.submit(7, "endless", assemble_ok(kEndless));
  wait_running(pool, busy);
  const iridium::vm::Image quick = assemble_ok(kQuick);
  for (std::size_t i = 0; i < WorkerPool::kMaxQueued; ++i) REQUIRE(pool.submit(7, "quick", quick));
  CHECK_FALSE(pool.submit(7, "quick", quick).has_value());
  CHECK(pool.counts().submitted == WorkerPool::kMaxQueued + 1);  // the refused one got no id

  CHECK(pool.cancel(busy) == CancelOutcome::kStopping);
  REQUIRE(pool.wait_idle(60s));
  CHECK(pool.submit(7, "quick", quick).has_value());
}
