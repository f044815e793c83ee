// Decides which of many repeated warnings reach the log: the first of each
// kind at once, then at most one per interval, which says how many were held
// back meanwhile. A hostile client that retries in a loop then costs a few
// log lines a minute, not a flood. Kinds are capped (oldest forgotten).
//
// Not thread-safe: the thread that logs owns it.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace iridium {

class RepeatLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  explicit RepeatLimiter(std::chrono::milliseconds interval, std::size_t max_kinds = 256)
      : interval_(interval), max_kinds_(max_kinds) {}

  // nullopt: stay quiet. Otherwise log now; the value is how many repeats
  // of this kind were held back since it was last logged.
  std::optional<uint64_t> admit(const std::string& kind, Clock::time_point now);

 private:
  struct Seen {
    Clock::time_point logged;
    uint64_t held_back = 0;
  };
  std::chrono::milliseconds interval_;
  std::size_t max_kinds_;
  std::map<std::string, Seen> seen_;
};

}  // namespace iridium
