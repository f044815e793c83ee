#include "shell/worker_pool.h"

#include <spdlog/spdlog.h>

#include "vm/vm.h"

namespace iridium::shell {

std::string_view job_state_name(JobState state) {
  switch (state) {
    case JobState::kQueued:
      return "queued";
    case JobState::kRunning:
      return "running";
    case JobState::kHalted:
      return "halted";
    case JobState::kEnded:
      return "ended";
    case JobState::kError:
      return "error";
    case JobState::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

static_assert(static_cast<std::size_t>(JobState::kCancelled) + 1 == kJobStateCount);

bool job_finished(JobState state) {
  return state != JobState::kQueued && state != JobState::kRunning;
}

WorkerPool::WorkerPool(unsigned threads, vm::Limits limits, JobRetention retention)
    : limits_(limits),
      retention_{std::max<std::size_t>(1, retention.max_jobs), retention.max_output_bytes} {
  // spdlog makes its registry on first use; make it here, before the
  // workers can first log at once (its lazy start is not visible to TSan).
  (void)spdlog::default_logger_raw();
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

std::optional<uint64_t> WorkerPool::submit(uint64_t owner, std::string name, vm::Image image) {
  uint64_t id;
  {
    std::lock_guard lock(mutex_);
    if (queue_.size() >= kMaxQueued) return std::nullopt;
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

std::optional<uint64_t> WorkerPool::submit_if_free(std::string origin, std::string name,
                                                   vm::Image image, FinishedFn on_finished) {
  uint64_t id;
  {
    std::lock_guard lock(mutex_);
    std::size_t busy = queue_.size();
    for (const auto& [job_id, info] : jobs_) {
      if (info.state == JobState::kRunning) ++busy;
    }
    if (stopping_ || busy >= threads_.size()) return std::nullopt;
    id = next_id_++;
    JobInfo info;
    info.id = id;
    info.owner = kClusterOwner;
    info.origin = std::move(origin);
    info.name = std::move(name);
    jobs_.emplace(id, std::move(info));
    on_finished_.emplace(id, std::move(on_finished));
    queue_.emplace_back(id, std::move(image));
  }
  changed_.notify_all();
  return id;
}

void WorkerPool::publish_locked(const JobInfo& info,
                                std::vector<std::pair<FinishedFn, JobInfo>>& calls) {
  kept_finished_.push_back(info.id);
  kept_output_bytes_ += info.output.size() + info.error.size();
  if (auto it = on_finished_.find(info.id); it != on_finished_.end()) {
    calls.emplace_back(std::move(it->second), info);
    on_finished_.erase(it);
  } else {
    finished_[info.owner].push_back(info.id);
  }
  drop_finished_locked();
}

void WorkerPool::drop_finished_locked() {
  auto over = [this] {
    return kept_finished_.size() > retention_.max_jobs ||
           kept_output_bytes_ > retention_.max_output_bytes;
  };
  while (kept_finished_.size() > 1 && over()) {
    const uint64_t id = kept_finished_.front();
    kept_finished_.pop_front();
    auto job = jobs_.find(id);
    kept_output_bytes_ -= job->second.output.size() + job->second.error.size();
    // Notices are queued in finishing order too, so an untaken notice of
    // the oldest finished job is at the front of its owner's queue.
    if (auto notices = finished_.find(job->second.owner); notices != finished_.end()) {
      if (!notices->second.empty() && notices->second.front() == id) notices->second.pop_front();
      if (notices->second.empty()) finished_.erase(notices);
    }
    jobs_.erase(job);
    ++dropped_;
  }
}

std::vector<JobInfo> WorkerPool::jobs() const {
  std::lock_guard lock(mutex_);
  std::vector<JobInfo> out;
  for (const auto& [id, info] : jobs_) out.push_back(info);
  return out;
}

JobCounts WorkerPool::counts() const {
  std::lock_guard lock(mutex_);
  JobCounts out;
  for (const auto& [id, info] : jobs_) ++out.by_state[static_cast<std::size_t>(info.state)];
  out.submitted = next_id_ - 1;
  out.dropped = dropped_;
  return out;
}

bool WorkerPool::dropped(uint64_t id) const {
  std::lock_guard lock(mutex_);
  // Ids are handed out in order and only dropping removes a job.
  return id >= 1 && id < next_id_ && !jobs_.contains(id);
}

std::optional<JobInfo> WorkerPool::job(uint64_t id) const {
  std::lock_guard lock(mutex_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return std::nullopt;
  return it->second;
}

CancelOutcome WorkerPool::cancel(uint64_t id) {
  CancelOutcome outcome;
  std::vector<std::pair<FinishedFn, JobInfo>> calls;
  {
    std::lock_guard lock(mutex_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return CancelOutcome::kNoSuchJob;
    JobInfo& info = it->second;
    switch (info.state) {
      case JobState::kQueued:
        std::erase_if(queue_, [id](const auto& entry) { return entry.first == id; });
        info.state = JobState::kCancelled;
        info.finished = JobInfo::Clock::now();
        publish_locked(info, calls);
        outcome = CancelOutcome::kCancelled;
        break;
      case JobState::kRunning:
        cancel_requested_.insert(id);
        outcome = CancelOutcome::kStopping;
        break;
      default:
        return CancelOutcome::kAlreadyFinished;
    }
  }
  changed_.notify_all();
  for (auto& [call, info] : calls) call(info);
  return outcome;
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

std::optional<JobInfo> WorkerPool::wait_finished(uint64_t id,
                                                 std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] {
    auto it = jobs_.find(id);
    return it == jobs_.end() || job_finished(it->second.state);
  });
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return std::nullopt;
  return it->second;
}

bool WorkerPool::should_stop(uint64_t id) const {
  std::lock_guard lock(mutex_);
  return stopping_ || cancel_requested_.contains(id);
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
        std::vector<std::pair<FinishedFn, JobInfo>> calls;
        for (auto& [id, image] : queue_) {
          JobInfo& info = jobs_.at(id);
          info.state = JobState::kCancelled;
          info.finished = JobInfo::Clock::now();
          publish_locked(info, calls);
        }
        queue_.clear();
        lock.unlock();
        for (auto& [call, info] : calls) call(info);
        return;
      }
      next = std::move(queue_.front());
      queue_.pop_front();
      JobInfo& info = jobs_.at(next.first);
      info.state = JobState::kRunning;
      info.started = JobInfo::Clock::now();
    }
    run_job(next.first, std::move(next.second));
  }
}

void WorkerPool::run_job(uint64_t id, vm::Image image) {
  // Run in slices of steps so a cancel or a shutdown can stop a program that
  // never ends.
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
      if (slice_over && !should_stop(id)) continue;
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
  spdlog::debug("job {} finished: {}{}", id, job_state_name(state),
                error.empty() ? "" : " (" + error + ")");
  vm::MachineState final_state = std::move(machine.state());
  const std::size_t heap_bytes = final_state.heap.size();
  const std::size_t stack_entries = final_state.stack.size();
  final_state.heap = {};  // keep finished jobs small
  final_state.stack = {};
  std::vector<std::pair<FinishedFn, JobInfo>> calls;
  {
    std::lock_guard lock(mutex_);
    JobInfo& info = jobs_.at(id);
    info.state = state;
    info.error = std::move(error);
    info.output = std::move(output);
    info.final_state = std::move(final_state);
    info.final_heap_bytes = heap_bytes;
    info.final_stack_entries = stack_entries;
    info.finished = JobInfo::Clock::now();
    cancel_requested_.erase(id);
    publish_locked(info, calls);
  }
  changed_.notify_all();
  for (auto& [call, info] : calls) call(info);
}

}  // namespace iridium::shell
