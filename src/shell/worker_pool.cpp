#include "shell/worker_pool.h"

#include <spdlog/spdlog.h>

#include "vm/vm.h"

namespace iridium::shell {

std::string_view job_state_name(JobState state) {
  switch (state) {
    case JobState::kQueued: return "queued";
    case JobState::kRunning: return "running";
    case JobState::kHalted: return "halted";
    case JobState::kEnded: return "ended";
    case JobState::kError: return "error";
    case JobState::kCancelled: return "cancelled";
  }
  return "unknown";
}

WorkerPool::WorkerPool(unsigned threads, vm::Limits limits) : limits_(limits) {
  for (unsigned i = 0; i < std::max(1u, threads); ++i) threads_.emplace_back([this] { work(); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  for (auto& thread : threads_) thread.join();
}

uint64_t WorkerPool::submit(uint64_t owner, std::string name, vm::Image image) {
  uint64_t id;
  {
    std::lock_guard lock(mutex_);
    id = next_id_++;
    JobInfo info;
    info.id = id;
    info.owner = owner;
    info.name = std::move(name);
    jobs_.emplace(id, std::move(info));
    queue_.emplace_back(id, std::move(image));
  }
  changed_.notify_all();
  return id;
}

std::vector<JobInfo> WorkerPool::jobs() const {
  std::lock_guard lock(mutex_);
  std::vector<JobInfo> out;
  for (const auto& [id, info] : jobs_) out.push_back(info);
  return out;
}

std::optional<JobInfo> WorkerPool::job(uint64_t id) const {
  std::lock_guard lock(mutex_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return std::nullopt;
  return it->second;
}

std::vector<JobInfo> WorkerPool::take_finished(uint64_t owner) {
  std::lock_guard lock(mutex_);
  std::vector<JobInfo> out;
  auto it = finished_.find(owner);
  if (it == finished_.end()) return out;
  for (uint64_t id : it->second) out.push_back(jobs_.at(id));
  finished_.erase(it);
  return out;
}

bool WorkerPool::wait_idle(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [this] {
    if (!queue_.empty()) return false;
    for (const auto& [id, info] : jobs_) {
      if (info.state == JobState::kRunning) return false;
    }
    return true;
  });
}

void WorkerPool::work() {
  for (;;) {
    std::pair<uint64_t, vm::Image> next;
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) {
        for (auto& [id, image] : queue_) jobs_.at(id).state = JobState::kCancelled;
        queue_.clear();
        return;
      }
      next = std::move(queue_.front());
      queue_.pop_front();
      jobs_.at(next.first).state = JobState::kRunning;
    }
    run_job(next.first, std::move(next.second));
  }
}

void WorkerPool::run_job(uint64_t id, vm::Image image) {
  // Run in slices of steps so a shutdown can stop a program that never ends.
  constexpr uint64_t kSlice = 10'000'000;
  vm::Limits limits = limits_;
  const uint64_t total_limit = limits.max_steps;
  uint64_t steps = 0;
  std::string output;
  vm::Vm machine(limits);
  machine.set_output([&](std::string_view text) {
    if (output.size() < kOutputCap) output.append(text.substr(0, kOutputCap - output.size()));
  });
  JobState state = JobState::kError;
  std::string error;
  if (auto status = machine.load(std::move(image)); !status) {
    error = status.message();
  } else {
    for (;;) {
      uint64_t slice = kSlice;
      if (total_limit != 0) slice = std::min(slice, total_limit - steps);
      limits.max_steps = slice;
      machine.set_limits(limits);
      const vm::RunResult result = machine.run();
      steps += slice;
      const bool slice_over = result.error && result.error->fault == vm::Fault::kStepLimit &&
                              (total_limit == 0 || steps < total_limit);
      if (slice_over && !stopping_) continue;
      if (slice_over) {
        state = JobState::kCancelled;
      } else if (result.ok()) {
        state = result.status == vm::RunStatus::kHalted ? JobState::kHalted : JobState::kEnded;
      } else {
        error = result.error->message;
      }
      break;
    }
  }
  spdlog::debug("job {} finished: {}{}", id, job_state_name(state), error.empty() ? "" : " (" + error + ")");
  {
    std::lock_guard lock(mutex_);
    JobInfo& info = jobs_.at(id);
    info.state = state;
    info.error = std::move(error);
    info.output = std::move(output);
    info.final_state = machine.state();
    info.final_state.heap.clear();  // keep finished jobs small
    info.final_state.heap.shrink_to_fit();
    info.final_state.stack.clear();
    finished_[info.owner].push_back(id);
  }
  changed_.notify_all();
}

}  // namespace iridium::shell
