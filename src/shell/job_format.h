// How the shell shows spawned jobs: `!jobs` as an aligned table for people
// or JSON for scripts, `!job JOB` as one job in detail. Pure functions of the
// pool's JobInfo snapshots; `viewer` is the session asking, `now` the time
// the elapsed times of running jobs are measured to.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "shell/worker_pool.h"

namespace iridium::shell {

// Time the job has run (so far, if it still runs); nullopt while queued or
// when it was cancelled before it started.
std::optional<std::chrono::milliseconds> job_elapsed(const JobInfo& job,
                                                     JobInfo::Clock::time_point now);
// "0.042s", "12.500s", "3m07s", "2h05m".
std::string format_elapsed(std::chrono::milliseconds elapsed);

// A header (ID STATE ELAPSED SESSION NAME ERROR), then one row per job, each
// column as wide as its widest cell; SESSION reads "you" for the viewer's
// own jobs and "@ALIAS" for jobs a cluster member asked for. No trailing spaces.
std::string jobs_table(const std::vector<JobInfo>& jobs, uint64_t viewer,
                       JobInfo::Clock::time_point now);
// {"jobs": [{"id", "session" (null for a member's job), "origin" (that
// member's alias, else null), "name", "state", "elapsed_ms" (null while
// queued), "error" (null unless there is one)}], "dropped": older finished
// jobs no longer kept}
nlohmann::json jobs_json(const std::vector<JobInfo>& jobs, uint64_t dropped,
                         JobInfo::Clock::time_point now);
// The line under !jobs when older finished jobs were dropped ("" when none
// was), naming the bound that dropped them.
std::string dropped_jobs_line(uint64_t dropped, const JobRetention& retention);
// What !job says of a job that finished and was dropped.
std::string dropped_job_message(uint64_t id, const JobRetention& retention);
// 512 bytes, 64 KiB, 16 MiB: whole units where they divide evenly.
std::string format_bytes(std::size_t bytes);
// The job's name, state, session, elapsed time, error, captured output and,
// once it has finished, its non-zero registers as `!registers` shows them.
std::string job_details(const JobInfo& job, uint64_t viewer, JobInfo::Clock::time_point now);

}  // namespace iridium::shell
