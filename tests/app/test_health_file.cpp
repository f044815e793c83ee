#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "common/health_file.h"

using namespace iridium;
using namespace std::chrono_literals;
using health::HealthFile;
using health::Loop;

namespace {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char name[] = "/tmp/iridium-health-XXXXXX";
    path = ::mkdtemp(name);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path) << text;
}

health::Record valid_record() {
  return health::Record{1, "a", "c", true, 2, {}};
}

}  // namespace

TEST_CASE("health file: start writes the facts and a stamp, stop drops it, the end removes it",
          "[health]") {
  TempDir dir;
  const std::string path = health::health_file_path(dir.path.string());
  CHECK(path == (dir.path / "run" / "health.json").string());
  {
    HealthFile file(path, "seed", "prod");
    CHECK_FALSE(std::filesystem::exists(path));  // nothing runs yet
    file.set_cluster(true, 0);
    file.start(Loop::kCluster);
    file.start(Loop::kRemoteShell);
    auto record = health::read_health_file(path);
    REQUIRE(record);
    CHECK(record->pid == ::getpid());
    CHECK(record->alias == "seed");
    CHECK(record->cluster == "prod");
    CHECK(record->in_cluster);
    CHECK(record->members == 0);
    CHECK(record->stamps.size() == 2);
    CHECK(health::stale_stamps(*record, health::WallClock::now(), 3s).empty());

    file.stop(Loop::kCluster);
    record = health::read_health_file(path);
    REQUIRE(record);
    CHECK(record->stamps.count("cluster_loop") == 0);
    CHECK(record->stamps.count("remote_shell") == 1);
  }
  CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE(
    "health file: a beat rewrites it only when the stamp is a second old or the facts changed",
    "[health]") {
  TempDir dir;
  const std::string path = health::health_file_path(dir.path.string());
  HealthFile file(path, "n", "c");
  file.start(Loop::kCluster);
  auto first = health::read_health_file(path);
  REQUIRE(first);
  file.beat(Loop::kCluster);  // well within a second: the file stays as it is
  auto second = health::read_health_file(path);
  REQUIRE(second);
  CHECK(second->stamps == first->stamps);

  file.set_cluster(true, 3);
  file.beat(Loop::kCluster);  // the facts changed: written at once
  auto third = health::read_health_file(path);
  REQUIRE(third);
  CHECK(third->members == 3);
  CHECK(third->stamps.at("cluster_loop") >= first->stamps.at("cluster_loop"));

  file.beat(Loop::kRemoteShell);  // never started: nothing expects it, nothing written
  CHECK(health::read_health_file(path)->stamps.count("remote_shell") == 0);
}

TEST_CASE("health file: a stamp older, or further in the future, than the allowed age is stale",
          "[health]") {
  const health::WallTime now = health::WallClock::now();
  health::Record record = valid_record();
  record.stamps = {{"cluster_loop", now - 500ms}, {"remote_shell", now - 7s}};
  auto stale = health::stale_stamps(record, now, 3s);
  REQUIRE(stale.size() == 1);
  CHECK(stale[0].loop == "remote_shell");
  CHECK(stale[0].age == 7000ms);
  CHECK(stale[0].at == now - 7s);

  record.stamps = {{"cluster_loop", now + 1s}, {"remote_shell", now + 10s}};
  stale = health::stale_stamps(record, now, 3s);
  REQUIRE(stale.size() == 1);
  CHECK(stale[0].age == -10000ms);
}

TEST_CASE("health file: a missing, empty, garbage or wrong file is an error that says so",
          "[health]") {
  TempDir dir;
  const auto path = (dir.path / "health.json").string();
  auto missing = health::read_health_file(path);
  REQUIRE_FALSE(missing);
  CHECK(missing.kind() == ErrorKind::kUnavailable);
  CHECK(missing.message() == "no health file at " + path);

  auto expect_invalid = [&](const std::string& text, const std::string& why) {
    write_text(path, text);
    auto record = health::read_health_file(path);
    REQUIRE_FALSE(record);
    CHECK(record.kind() == ErrorKind::kInvalid);
    CHECK(record.message() == path + " is not a health file: " + why);
  };
  expect_invalid("", "not JSON (empty)");
  expect_invalid("\x01\x02garbage{", "not JSON");
  expect_invalid("[1,2]", "not a JSON object");
  expect_invalid(R"({"format":2})", "format 2, not 1");
  expect_invalid(R"({"format":1,"pid":1})", "no count \"members\"");
  expect_invalid(
      R"({"format":1,"pid":1,"members":0,"alias":"a","cluster":"c","in_cluster":1,"stamps":{}})",
      "no boolean \"in_cluster\"");
  expect_invalid(R"({"format":1,"pid":1,"members":0,"alias":"a","cluster":"c","in_cluster":true,)"
                 R"("stamps":{"cluster_loop":"soon"}})",
                 "stamp \"cluster_loop\" is not a number");
  expect_invalid(std::string(70 * 1024, ' '), "larger than 64 KiB");

  write_text(path, R"({"format":1,"pid":9,"members":4,"alias":"a","cluster":"c","in_cluster":true,)"
                   R"("stamps":{"cluster_loop":1000}})");
  auto record = health::read_health_file(path);
  REQUIRE(record);
  CHECK(record->members == 4);
  CHECK(record->stamps.at("cluster_loop") == health::WallTime(1000ms));
}

TEST_CASE("health file: a shorter version is padded, and a longer file left behind is covered",
          "[health]") {
  TempDir dir;
  const std::string path = health::health_file_path(dir.path.string());
  std::filesystem::create_directories(dir.path / "run");
  write_text(path, std::string(900, 'x'));  // an earlier process's file, longer than ours
  HealthFile file(path, "n", "c");
  file.set_cluster(true, 12345);
  file.start(Loop::kCluster);
  auto record = health::read_health_file(path);
  REQUIRE(record);
  CHECK(record->members == 12345);
  CHECK(std::filesystem::file_size(path) == 900);

  file.set_cluster(true, 1);  // one digit shorter: no "5" of the old text may stay
  file.beat(Loop::kCluster);
  record = health::read_health_file(path);
  REQUIRE(record);
  CHECK(record->members == 1);
}

TEST_CASE("health file: a file left behind too long to read as one is cut, not padded",
          "[health]") {
  TempDir dir;
  const std::string path = health::health_file_path(dir.path.string());
  std::filesystem::create_directories(dir.path / "run");
  write_text(path, std::string(100 * 1024, 'x'));
  HealthFile file(path, "n", "c");
  file.start(Loop::kCluster);
  CHECK(health::read_health_file(path));
  CHECK(std::filesystem::file_size(path) < 1024);
}

TEST_CASE("health file: a file removed under the node is written again at the next write",
          "[health]") {
  TempDir dir;
  const std::string path = health::health_file_path(dir.path.string());
  HealthFile file(path, "n", "c");
  file.start(Loop::kCluster);
  REQUIRE(std::filesystem::remove_all(dir.path / "run") > 0);
  file.set_cluster(true, 2);
  file.beat(Loop::kCluster);
  auto record = health::read_health_file(path);
  REQUIRE(record);
  CHECK(record->members == 2);
}

TEST_CASE("health file: a reader does not wait for ever on a writer stopped mid-write",
          "[health]") {
  TempDir dir;
  const std::string path = health::health_file_path(dir.path.string());
  HealthFile file(path, "n", "c");
  file.start(Loop::kCluster);
  const int held = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(held >= 0);
  REQUIRE(::flock(held, LOCK_EX) == 0);  // as a writer stopped inside its write holds it
  const auto began = std::chrono::steady_clock::now();
  auto record = health::read_health_file(path);
  CHECK(std::chrono::steady_clock::now() - began < 5s);
  CHECK(record);  // the whole file was written before the lock was taken
  ::close(held);
}

TEST_CASE("health file: a reader stopped while it holds the file delays the write, never the loop",
          "[health]") {
  TempDir dir;
  const std::string path = health::health_file_path(dir.path.string());
  HealthFile file(path, "n", "c");
  file.start(Loop::kCluster);
  const int reader = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(reader >= 0);
  REQUIRE(::flock(reader, LOCK_SH) == 0);
  file.set_cluster(true, 5);
  file.beat(Loop::kCluster);  // returns at once; the file keeps its old version
  CHECK(health::read_health_file(path)->members == 0);
  ::close(reader);  // the reader lets go: the next beat writes
  file.beat(Loop::kCluster);
  CHECK(health::read_health_file(path)->members == 5);
}

TEST_CASE("health file: a loop waits without a timeout only while another keeps the file",
          "[health]") {
  TempDir dir;
  const std::string path = health::health_file_path(dir.path.string());
  HealthFile file(path, "n", "c");
  int woken = 0;
  file.start(Loop::kRemoteShell);
  CHECK_FALSE(file.wait(Loop::kRemoteShell, [&] { ++woken; }));  // alone: stamp itself

  file.start(Loop::kCluster);
  REQUIRE(file.wait(Loop::kRemoteShell, [&] { ++woken; }));
  const auto before = health::read_health_file(path)->stamps.at("remote_shell");
  file.set_cluster(true, 1);
  file.beat(Loop::kCluster);  // the keeper writes: the waiting loop is stamped live
  CHECK(health::read_health_file(path)->stamps.at("remote_shell") >= before);
  CHECK(
      health::stale_stamps(*health::read_health_file(path), health::WallClock::now(), 3s).empty());

  file.stop(Loop::kCluster);  // nobody keeps the file now: the waiting loop is woken
  CHECK(woken == 1);
  file.beat(Loop::kRemoteShell);
  CHECK_FALSE(file.wait(Loop::kRemoteShell, [&] { ++woken; }));
}

TEST_CASE("health file: a loop woken from its wait is stamped by its beats only", "[health]") {
  TempDir dir;
  const std::string path = health::health_file_path(dir.path.string());
  HealthFile file(path, "n", "c");
  file.start(Loop::kCluster);
  file.start(Loop::kRemoteShell);
  REQUIRE(file.wait(Loop::kRemoteShell, [] {}));
  file.beat(Loop::kRemoteShell);  // awake, and then stuck: its stamp must age
  const auto awake = health::WallClock::now();
  while (health::WallClock::now() < awake + 20ms) {
    // the keeper's write comes measurably later
  }
  file.set_cluster(true, 2);
  file.beat(Loop::kCluster);
  CHECK(health::read_health_file(path)->stamps.at("remote_shell") <= awake);
}
