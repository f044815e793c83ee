// The shell's job commands (!jobs, !job, !kill) on a real worker pool, and
// the pure formatting behind them (src/shell/job_format.h).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "job_polling.h"
#include "shell/job_format.h"
#include "shell/shell.h"
#include "vm_harness.h"

using namespace std::chrono_literals;
using iridium::shell::Environment;
using iridium::shell::JobInfo;
using iridium::shell::JobState;
using iridium::shell::Reply;
using iridium::shell::Shell;
using iridium::shell::WorkerPool;
using iridium::testing::assemble_ok;
using iridium::testing::wait_running;
using Clock = JobInfo::Clock;

namespace {

const char* const kEndless = "load $1 #4\ntop: inc $0\njmpb $1\n";

Environment env_with(WorkerPool& pool, bool may_kill_any = false) {
  Environment env;
  env.workers = &pool;
  env.may_kill_any_job = may_kill_any;
  return env;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

JobInfo made_job(uint64_t id, uint64_t owner, std::string name, JobState state, std::string error,
                 Clock::time_point start, std::optional<Clock::duration> ran) {
  JobInfo job;
  job.id = id;
  job.owner = owner;
  job.name = std::move(name);
  job.state = state;
  job.error = std::move(error);
  if (ran) {
    job.started = start;
    if (iridium::shell::job_finished(state)) job.finished = start + *ran;
  }
  return job;
}

}  // namespace

TEST_CASE("format_elapsed picks a unit for the size") {
  using iridium::shell::format_elapsed;
  CHECK(format_elapsed(0ms) == "0.000s");
  CHECK(format_elapsed(42ms) == "0.042s");
  CHECK(format_elapsed(12'500ms) == "12.500s");
  CHECK(format_elapsed(59'999ms) == "59.999s");
  CHECK(format_elapsed(187'000ms) == "3m07s");
  CHECK(format_elapsed(7'500'000ms) == "2h05m");
}

TEST_CASE("jobs_table aligns every column whatever the widths") {
  const auto t0 = Clock::time_point{} + 1h;
  const std::vector<JobInfo> jobs = {
      made_job(1, 0, "a.iasm", JobState::kHalted, "", t0, 5ms),
      made_job(12, 3, "a/much/longer/name.iasm", JobState::kError,
               "division by zero at code offset 4", t0, 187s),
      made_job(123, 0, "q", JobState::kQueued, "", t0, std::nullopt),
      made_job(1234, 5, "r.iasm", JobState::kRunning, "", t0, 0s),
  };
  const std::string table = iridium::shell::jobs_table(jobs, 0, t0 + 12'500ms);
  const auto lines = lines_of(table);
  REQUIRE(lines.size() == 5);
  CHECK(lines[0] == "  ID  STATE    ELAPSED  SESSION  NAME                     ERROR");
  CHECK(lines[1] == "   1  halted    0.005s  you      a.iasm");
  CHECK(lines[2] ==
        "  12  error      3m07s  3        a/much/longer/name.iasm  division by zero at code "
        "offset 4");
  CHECK(lines[3] == " 123  queued         -  you      q");
  CHECK(lines[4] == "1234  running  12.500s  5        r.iasm");
  // Left-aligned columns start where their header starts, in every row.
  for (const char* header : {"STATE", "SESSION", "NAME"}) {
    const auto at = lines[0].find(header);
    for (std::size_t i = 1; i < lines.size(); ++i) {
      INFO(header << " in row " << i);
      CHECK(lines[i][at - 1] == ' ');
      CHECK(lines[i][at] != ' ');
    }
  }
  for (const auto& line : lines) CHECK(line.back() != ' ');
}

TEST_CASE("jobs_json gives each job's fields, null where there is nothing") {
  const auto t0 = Clock::time_point{} + 1h;
  const std::vector<JobInfo> jobs = {
      made_job(1, 0, "a.iasm", JobState::kError, "bad", t0, 1500ms),
      made_job(2, 4, "b.iasm", JobState::kQueued, "", t0, std::nullopt),
  };
  const auto json = iridium::shell::jobs_json(jobs, 0, t0 + 10s);
  REQUIRE(json["jobs"].size() == 2);
  CHECK(json["jobs"][0] == nlohmann::json{{"id", 1},
                                          {"session", 0},
                                          {"origin", nullptr},
                                          {"name", "a.iasm"},
                                          {"state", "error"},
                                          {"elapsed_ms", 1500},
                                          {"error", "bad"}});
  CHECK(json["jobs"][1]["elapsed_ms"].is_null());
  CHECK(json["jobs"][1]["error"].is_null());
  CHECK(json["jobs"][1]["session"] == 4);
}

TEST_CASE("a job a cluster member asked for shows that member as its session") {
  const auto t0 = Clock::time_point{} + 1h;
  JobInfo job =
      made_job(3, iridium::shell::kClusterOwner, "hello.iasm", JobState::kHalted, "", t0, 4ms);
  job.origin = "seed";
  const auto json = iridium::shell::jobs_json({job}, 0, t0 + 1s);
  CHECK(json["jobs"][0]["session"].is_null());
  CHECK(json["jobs"][0]["origin"] == "seed");
  const auto table = lines_of(iridium::shell::jobs_table({job}, 0, t0 + 1s));
  REQUIRE(table.size() == 2);
  CHECK(table[1] == " 3  halted   0.004s  @seed    hello.iasm");
  CHECK_THAT(iridium::shell::job_details(job, 0, t0 + 1s),
             Catch::Contains("session  @seed (run for cluster member seed)"));
}

TEST_CASE("the job commands reject a bad argument, an unknown job and a finished one") {
  WorkerPool pool(1, {});
  Shell shell(env_with(pool), 1);
  auto fails_with = [&](const std::string& line, const std::string& message) {
    const Reply reply = shell.execute(line);
    INFO(line);
    CHECK_FALSE(reply.ok);
    CHECK(reply.output == message + "\n");
  };
  fails_with("!kill", "usage: !kill JOB");
  fails_with("!kill 1 2", "usage: !kill JOB");
  fails_with("!kill x", "bad job id 'x': use the number !jobs shows");
  fails_with("!kill -1", "bad job id '-1': use the number !jobs shows");
  fails_with("!kill 0", "bad job id '0': use the number !jobs shows");
  fails_with("!kill 7", "no job 7");
  fails_with("!job 7", "no job 7");
  fails_with("!job", "usage: !job JOB");
  fails_with("!jobs --yaml x", "usage: !jobs [--json], or !job JOB for one job");
  fails_with("!jobs --yaml", "usage: !jobs [--json], or !job JOB for one job");
  fails_with("!jobs x", "bad job id 'x': use the number !jobs shows");

  const uint64_t id = *pool.submit(1, "quick", assemble_ok("load $0 #1\nhlt\n"));
  REQUIRE(pool.wait_idle(20s));
  fails_with("!kill " + std::to_string(id), "job 1 has already halted");
  const uint64_t bad = *pool.submit(1, "bad", assemble_ok("load $1 #0\ndiv $0 $1 $2\n"));
  REQUIRE(pool.wait_idle(20s));
  fails_with("!kill " + std::to_string(bad),
             "job 2 has already stopped with an error: division by zero at code offset 4");
  // The shell keeps working after every one of these.
  CHECK(shell.execute("load $0 #3").ok);
}

TEST_CASE(
    "the kill command stops the session's own running job, and !jobs and !job show it cancelled") {
  WorkerPool pool(1, {});
  Shell shell(env_with(pool), 1);
  const uint64_t id = *pool.submit(1, "endless", assemble_ok(kEndless));
  wait_running(pool, id);
  CHECK_THAT(shell.execute("!jobs").output,
             Catch::Matches("ID +STATE +ELAPSED +SESSION +NAME +ERROR\n"
                            " 1  running +[0-9.]+s +you +endless\n"));

  const Reply killed = shell.execute("!kill 1");
  CHECK(killed.ok);
  CHECK_THAT(killed.output,
             Catch::Matches("Killed job 1 \\(endless\\) after [0-9.]+s; !job 1 shows its output "
                            "and registers\n"));
  CHECK(pool.job(id)->state == JobState::kCancelled);
  CHECK_THAT(shell.execute("!jobs").output, Catch::Contains(" 1  cancelled"));
  const Reply again = shell.execute("!kill 1");
  CHECK_FALSE(again.ok);
  CHECK(again.output == "job 1 has already been cancelled\n");

  // !job: its non-zero registers in the cells !registers uses.
  const Reply details = shell.execute("!job 1");
  REQUIRE(details.ok);
  const auto lines = lines_of(details.output);
  REQUIRE(lines.size() >= 9);
  CHECK(lines[0] == "job 1: endless");
  CHECK(lines[1] == "state    cancelled");
  CHECK(lines[2] == "session  you");
  CHECK_THAT(lines[3], Catch::Matches("elapsed  [0-9.]+s"));
  CHECK(lines[4] == "output   (none)");
  CHECK(lines[5] == "Final registers, zeros left out:");
  CHECK(lines[6] == "Integer registers:");
  CHECK_THAT(lines[7], Catch::Matches("  \\$0 +[1-9][0-9]*  \\$1             4"));
  CHECK(lines[8] == "Float registers: all zero");
  CHECK_THAT(lines[9], Catch::Matches("equal flag false, remainder 0, loop counter 0, pc 8, heap "
                                      "64 bytes, stack 0 entries"));
  CHECK(shell.execute("!jobs 1").output == details.output);
}

TEST_CASE("a remote session may not kill another session's job, the node's own shell may") {
  WorkerPool pool(1, {});
  Shell remote(env_with(pool), 2);
  Shell local(env_with(pool, /*may_kill_any=*/true), 0);
  const uint64_t id = *pool.submit(1, "endless", assemble_ok(kEndless));
  wait_running(pool, id);

  const Reply refused = remote.execute("!kill 1");
  CHECK_FALSE(refused.ok);
  CHECK(refused.output ==
        "job 1 belongs to session 1; a remote session can kill only the jobs it spawned\n");
  CHECK(pool.job(id)->state == JobState::kRunning);
  CHECK_THAT(remote.execute("!jobs").output, Catch::Contains(" 1  running"));

  CHECK(local.execute("!kill 1").ok);
  CHECK(pool.job(id)->state == JobState::kCancelled);
}

TEST_CASE("the kill command cancels a queued job before it starts") {
  WorkerPool pool(1, {});
  Shell shell(env_with(pool), 1);
  const uint64_t busy = *pool.submit(1, "endless", assemble_ok(kEndless));
  wait_running(pool, busy);
  const uint64_t queued = *pool.submit(1, "later", assemble_ok("load $0 #1\nhlt\n"));
  const Reply reply = shell.execute("!kill " + std::to_string(queued));
  CHECK(reply.ok);
  CHECK(reply.output == "Cancelled job 2 (later) before it started\n");
  CHECK(shell.execute("!job 2").output ==
        "job 2: later\nstate    cancelled\nsession  you\nelapsed  -\noutput   (none)\n"
        "registers: none, the job never ran\n");
  CHECK(shell.execute("!kill 1").ok);
}

TEST_CASE(
    "the job command shows a finished job's output and its non-zero registers as !registers does") {
  WorkerPool pool(1, {});
  Shell shell(env_with(pool), 1);
  const char* const program =
      ".data\nmsg: .asciiz 'hi'\n.code\nload $0 #42\nload $9 #-7\nload $31 #123456\nprts @msg\n"
      "hlt\n";
  pool.submit(1, "regs.iasm", assemble_ok(program));
  REQUIRE(pool.wait_idle(20s));
  const std::string details = shell.execute("!job 1").output;
  CHECK_THAT(details, Catch::StartsWith("job 1: regs.iasm\nstate    halted\nsession  you\n"));
  CHECK_THAT(details, Catch::Contains("output   2 bytes:\nhi\n"));

  // The same program in the shell's own VM: !registers prints every cell;
  // !job must print the non-zero ones exactly alike, and no others.
  REQUIRE(shell.execute("load $0 #42").ok);
  REQUIRE(shell.execute("load $9 #-7").ok);
  REQUIRE(shell.execute("load $31 #123456").ok);
  const std::string all = shell.execute("!registers").output;
  for (const char* cell : {"  $0            42", "  $9            -7", "  $31       123456"}) {
    INFO(cell);
    CHECK_THAT(all, Catch::Contains(cell));
    CHECK_THAT(details, Catch::Contains(cell));
  }
  CHECK_THAT(details, Catch::Contains("Integer registers:\n  $0            42  $9            -7  "
                                      "$31       123456\nFloat registers: all zero\n"));
  CHECK_THAT(details, !Catch::Contains("$1 "));
}

TEST_CASE("the jobs command with --json lists the jobs for scripts") {
  WorkerPool pool(1, {});
  Shell shell(env_with(pool), 1);
  CHECK(shell.execute("!jobs").output == "(no jobs)\n");
  CHECK(shell.execute("!jobs --json").output == "{\"dropped\":0,\"jobs\":[]}\n");
  pool.submit(1, "quick", assemble_ok("hlt\n"));
  REQUIRE(pool.wait_idle(20s));
  const Reply reply = shell.execute("!jobs --json");
  REQUIRE(reply.ok);
  const auto json = nlohmann::json::parse(reply.output);
  REQUIRE(json["jobs"].size() == 1);
  CHECK(json["jobs"][0]["state"] == "halted");
  CHECK(json["jobs"][0]["name"] == "quick");
  CHECK(json["jobs"][0]["session"] == 1);
}

TEST_CASE("without a pool the job commands say so") {
  Shell shell(Environment{}, 1);
  for (const char* command : {"!jobs", "!job", "!kill"}) {
    const Reply reply = shell.execute(std::string(command) + " 1");
    INFO(command);
    CHECK_FALSE(reply.ok);
    CHECK(reply.output == std::string(command) + " is not available here\n");
  }
}

TEST_CASE("the job commands say which finished jobs were dropped and by which bound") {
  WorkerPool pool(1, {}, {2, 1u << 20});
  Shell shell(env_with(pool), 1);
  for (int i = 0; i < 3; ++i) pool.submit(1, "quick", assemble_ok("load $0 #1\nhlt\n"));
  REQUIRE(pool.wait_idle(20s));

  const Reply jobs = shell.execute("!jobs");
  REQUIRE(jobs.ok);
  const auto rows = lines_of(jobs.output);
  REQUIRE(rows.size() == 4);  // header, jobs 2 and 3, the dropped line
  CHECK(rows[3] ==
        "(1 older finished job dropped: this node keeps the newest 2 finished jobs, with at most "
        "1 MiB of output (--keep-finished-jobs, --keep-finished-output))");

  const Reply json = shell.execute("!jobs --json");
  REQUIRE(json.ok);
  const auto doc = nlohmann::json::parse(json.output);
  CHECK(doc["dropped"] == 1);
  CHECK(doc["jobs"].size() == 2);

  const Reply gone = shell.execute("!job 1");
  CHECK_FALSE(gone.ok);
  CHECK_THAT(gone.output, Catch::StartsWith("job 1 finished and was dropped: this node keeps the "
                                            "newest 2 finished jobs"));
  CHECK_THAT(shell.execute("!job 9").output, Catch::Contains("no job 9"));
}

TEST_CASE("format_bytes uses whole units") {
  CHECK(iridium::shell::format_bytes(1) == "1 byte");
  CHECK(iridium::shell::format_bytes(1000) == "1000 bytes");
  CHECK(iridium::shell::format_bytes(64 * 1024) == "64 KiB");
  CHECK(iridium::shell::format_bytes(16u << 20) == "16 MiB");
  CHECK(iridium::shell::format_bytes((1u << 20) + 1024) == "1025 KiB");
}

TEST_CASE("spawn says so when the queue of waiting jobs is full") {
  WorkerPool pool(1, {});
  Shell shell(env_with(pool), 1);
  const uint64_t busy = *pool.submit(1, "endless", assemble_ok(kEndless));
  wait_running(pool, busy);
  const iridium::vm::Image quick = assemble_ok("load $0 #1\nhlt\n");
  for (std::size_t i = 0; i < WorkerPool::kMaxQueued; ++i) REQUIRE(pool.submit(1, "quick", quick));

  const auto file = std::filesystem::temp_directory_path() /
                    ("iridium-spawn-full-" + std::to_string(::getpid()) + ".iasm");
  { std::ofstream(file) << "load $0 #1\nhlt\n"; }
  const Reply reply = shell.execute("!spawn " + file.string());
  std::filesystem::remove(file);
  CHECK_FALSE(reply.ok);
  CHECK(reply.output ==
        "not spawned: 1024 jobs already wait for a worker; try again when some have run\n");
  CHECK(shell.execute("!kill " + std::to_string(busy)).ok);
}
