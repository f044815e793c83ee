#include "app/run_executor.h"

#include <span>

#include "shell/job_format.h"
#include "vm/image.h"

namespace iridium::app {

Result<uint64_t> PoolRunExecutor::start(cluster::RunRequest request, cluster::RunDone done) {
  const auto* data = reinterpret_cast<const uint8_t*>(request.image.data());
  auto image = vm::load_image(std::span(data, request.image.size()));
  if (!image)
    return Error{"the image failed verification: " + image.message(), ErrorKind::kInvalid};
  auto job = pool_.submit_if_free(
      std::move(request.origin), std::move(request.name), std::move(*image),
      [done = std::move(done)](const shell::JobInfo& info) { done(run_outcome(info)); });
  if (!job) {
    const unsigned threads = pool_.threads();
    return Error{"pool full: " + std::to_string(threads) +
                     (threads == 1 ? " worker, busy" : " workers, all busy") + "; try again later",
                 ErrorKind::kUnavailable};
  }
  return *job;
}

void PoolRunExecutor::cancel(uint64_t job) {
  (void)pool_.cancel(job);
}

cluster::RunOutcome run_outcome(const shell::JobInfo& job) {
  cluster::RunOutcome out;
  switch (job.state) {
    case shell::JobState::kHalted:
      out.status = cluster::RunStatus::kHalted;
      break;
    case shell::JobState::kEnded:
      out.status = cluster::RunStatus::kEnded;
      break;
    case shell::JobState::kCancelled:
      out.status = cluster::RunStatus::kCancelled;
      break;
    default:
      out.status = cluster::RunStatus::kError;
      break;
  }
  out.error = job.error;
  out.output = job.output;
  out.truncated = job.output.size() >= shell::WorkerPool::kOutputCap;
  if (out.output.size() > cluster::kMaxRunOutputBytes) {
    out.output.resize(cluster::kMaxRunOutputBytes);
    out.truncated = true;
  }
  const vm::MachineState& s = job.final_state;
  for (std::size_t r = 0; r < s.registers.size(); ++r) {
    if (s.registers[r] != 0)
      out.registers.push_back(cluster::IntRegister{static_cast<uint8_t>(r), s.registers[r]});
    if (s.float_registers[r] != 0)
      out.float_registers.push_back(
          cluster::FloatRegister{static_cast<uint8_t>(r), s.float_registers[r]});
  }
  out.job = job.id;
  if (auto elapsed = shell::job_elapsed(job, job.finished.value_or(shell::JobInfo::Clock::now())))
    out.elapsed_ms = static_cast<uint64_t>(elapsed->count());
  return out;
}

}  // namespace iridium::app
