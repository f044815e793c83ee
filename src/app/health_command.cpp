#include "app/health_command.h"

#include <ctime>
#include <iostream>

#include "app/identity.h"
#include "app/run_command.h"
#include "common/health_file.h"

namespace iridium::app {
namespace {

// "2026-12-05T12:00:01.234Z"
std::string utc_text(health::WallTime at) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch());
  const std::time_t seconds = static_cast<std::time_t>(ms.count() / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[40];
  const std::size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(text + n, sizeof text - n, ".%03dZ", static_cast<int>(ms.count() % 1000));
  return text;
}

std::string seconds_text(std::chrono::milliseconds ms) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", static_cast<double>(ms.count()) / 1000.0);
  return text;
}

std::string loop_name(const std::string& key) {
  if (key == health::loop_key(health::Loop::kCluster)) return "the cluster loop";
  if (key == health::loop_key(health::Loop::kRemoteShell)) return "the remote shell";
  return "the loop '" + key + "'";
}

// "the cluster loop last stamped 7.3 s ago (2026-12-05T12:00:01.234Z)"
std::string describe(const health::StaleStamp& s) {
  const std::string when = " (" + utc_text(s.at) + ")";
  if (s.age.count() < 0) {
    return loop_name(s.loop) + " stamped " + seconds_text(-s.age) + " s in the future" + when +
           ": the clock moved back, and the loop has not stamped since";
  }
  return loop_name(s.loop) + " last stamped " + seconds_text(s.age) + " s ago" + when;
}

std::string node_text(const health::Record& r) {
  return "node " + r.alias + " (pid " + std::to_string(r.pid) + ")";
}

int unhealthy(const std::string& line) {
  std::cerr << "iridium health: " << line << "\n";
  return kExitRuntimeError;
}

std::string file_path(const HealthOptions& options) {
  if (!options.file.empty()) return options.file;
  return health::health_file_path(default_data_dir(options.data_root_dir));
}

}  // namespace

int check_health(const HealthOptions& options) {
  const std::string path = file_path(options);
  auto record = health::read_health_file(path);
  if (!record && record.kind() == ErrorKind::kUnavailable) {
    return unhealthy(record.message() +
                     ": the node is not running, runs neither a cluster nor a remote shell, or "
                     "uses another --data-root-dir");
  }
  if (!record) return unhealthy(record.message());
  if (record->stamps.empty()) {
    return unhealthy(node_text(*record) +
                     " runs neither a cluster nor a remote shell: no loop stamps " + path);
  }
  const auto max_age =
      std::chrono::milliseconds(static_cast<int64_t>(options.max_age_seconds * 1000));
  const auto stale = health::stale_stamps(*record, health::WallClock::now(), max_age);
  if (stale.empty()) return kExitOk;
  std::string line = node_text(*record) + " is stale: ";
  for (std::size_t i = 0; i < stale.size(); ++i) line += (i == 0 ? "" : "; ") + describe(stale[i]);
  return unhealthy(line + "; allowed " + seconds_text(max_age) + " s (--max-age)");
}

}  // namespace iridium::app
