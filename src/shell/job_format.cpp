#include "shell/job_format.h"

#include <algorithm>
#include <array>
#include <cstdio>

#include "shell/register_format.h"

namespace iridium::shell {
namespace {

constexpr std::size_t kColumnCount = 6;
using Row = std::array<std::string, kColumnCount>;
// ID and ELAPSED are numbers: right-aligned, so their digits line up.
constexpr std::array<bool, kColumnCount> kRightAligned = {true, false, true, false, false, false};

std::string aligned(const std::vector<Row>& rows) {
  std::array<std::size_t, kColumnCount> width{};
  for (const Row& row : rows) {
    for (std::size_t c = 0; c < kColumnCount; ++c) width[c] = std::max(width[c], row[c].size());
  }
  std::string text;
  for (const Row& row : rows) {
    std::string line;
    for (std::size_t c = 0; c < kColumnCount; ++c) {
      if (c > 0) line += "  ";
      const std::string padding(width[c] - row[c].size(), ' ');
      line += kRightAligned[c] ? padding + row[c] : row[c] + padding;
    }
    line.erase(line.find_last_not_of(' ') + 1);
    text += line + "\n";
  }
  return text;
}

// "you", another session's number, or "@ALIAS" for a job a cluster member
// asked for (!run_on, !run_all).
std::string session_name(const JobInfo& job, uint64_t viewer) {
  if (!job.origin.empty()) return "@" + job.origin;
  return job.owner == viewer ? "you" : std::to_string(job.owner);
}

std::string elapsed_text(const JobInfo& job, JobInfo::Clock::time_point now) {
  const auto elapsed = job_elapsed(job, now);
  return elapsed ? format_elapsed(*elapsed) : "-";
}

}  // namespace

std::optional<std::chrono::milliseconds> job_elapsed(const JobInfo& job,
                                                     JobInfo::Clock::time_point now) {
  if (!job.started) return std::nullopt;
  const auto end = job.finished.value_or(now);
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::max(end, *job.started) -
                                                               *job.started);
}

std::string format_elapsed(std::chrono::milliseconds elapsed) {
  const long long ms = elapsed.count();
  char text[32];
  if (ms < 60'000) {
    std::snprintf(text, sizeof text, "%lld.%03llds", ms / 1000, ms % 1000);
  } else if (ms < 3'600'000) {
    std::snprintf(text, sizeof text, "%lldm%02llds", ms / 60'000, ms / 1000 % 60);
  } else {
    std::snprintf(text, sizeof text, "%lldh%02lldm", ms / 3'600'000, ms / 60'000 % 60);
  }
  return text;
}

std::string jobs_table(const std::vector<JobInfo>& jobs, uint64_t viewer,
                       JobInfo::Clock::time_point now) {
  std::vector<Row> rows = {{"ID", "STATE", "ELAPSED", "SESSION", "NAME", "ERROR"}};
  for (const JobInfo& job : jobs) {
    rows.push_back({std::to_string(job.id), std::string(job_state_name(job.state)),
                    elapsed_text(job, now), session_name(job, viewer), job.name, job.error});
  }
  return aligned(rows);
}

nlohmann::json jobs_json(const std::vector<JobInfo>& jobs, uint64_t dropped,
                         JobInfo::Clock::time_point now) {
  nlohmann::json list = nlohmann::json::array();
  for (const JobInfo& job : jobs) {
    const auto elapsed = job_elapsed(job, now);
    list.push_back({{"id", job.id},
                    {"session", job.origin.empty() ? nlohmann::json(job.owner) : nullptr},
                    {"origin", job.origin.empty() ? nullptr : nlohmann::json(job.origin)},
                    {"name", job.name},
                    {"state", job_state_name(job.state)},
                    {"elapsed_ms", elapsed ? nlohmann::json(elapsed->count()) : nullptr},
                    {"error", job.error.empty() ? nullptr : nlohmann::json(job.error)}});
  }
  return {{"jobs", list}, {"dropped", dropped}};
}

std::string format_bytes(std::size_t bytes) {
  if (bytes >= (1u << 20) && bytes % (1u << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  if (bytes >= (1u << 10) && bytes % (1u << 10) == 0) return std::to_string(bytes >> 10) + " KiB";
  return std::to_string(bytes) + (bytes == 1 ? " byte" : " bytes");
}

namespace {

std::string retention_text(const JobRetention& retention) {
  return "this node keeps the newest " + std::to_string(retention.max_jobs) +
         " finished jobs, with at most " + format_bytes(retention.max_output_bytes) +
         " of output (--keep-finished-jobs, --keep-finished-output)";
}

}  // namespace

std::string dropped_jobs_line(uint64_t dropped, const JobRetention& retention) {
  if (dropped == 0) return "";
  return "(" + std::to_string(dropped) + " older finished " + (dropped == 1 ? "job" : "jobs") +
         " dropped: " + retention_text(retention) + ")";
}

std::string dropped_job_message(uint64_t id, const JobRetention& retention) {
  return "job " + std::to_string(id) + " finished and was dropped: " + retention_text(retention);
}

std::string job_details(const JobInfo& job, uint64_t viewer, JobInfo::Clock::time_point now) {
  std::string text = "job " + std::to_string(job.id) + ": " + job.name + "\n";
  text += "state    " + std::string(job_state_name(job.state)) + "\n";
  text += "session  " + session_name(job, viewer) +
          (job.origin.empty() ? "" : " (run for cluster member " + job.origin + ")") + "\n";
  text += "elapsed  " + elapsed_text(job, now) + "\n";
  if (!job.error.empty()) text += "error    " + job.error + "\n";
  if (job.output.empty()) {
    text += "output   (none)\n";
  } else {
    text +=
        "output   " + std::to_string(job.output.size()) + " bytes" +
        (job.output.size() >= WorkerPool::kOutputCap ? " (the cap; the rest was dropped)" : "") +
        ":\n" + job.output;
    if (job.output.back() != '\n') text += "\n";
  }
  if (!job_finished(job.state)) {
    text += "registers: shown once the job has finished\n";
  } else if (!job.started) {
    text += "registers: none, the job never ran\n";
  } else {
    text += "Final registers, zeros left out:\n" +
            format_registers(job.final_state, RegisterSelection::kNonZero) +
            format_machine_flags(job.final_state, job.final_heap_bytes, job.final_stack_entries);
  }
  return text;
}

}  // namespace iridium::shell
