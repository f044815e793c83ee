#include "common/repeat_limiter.h"

#include <algorithm>
#include <utility>

namespace iridium {

std::optional<uint64_t> RepeatLimiter::admit(const std::string& kind, Clock::time_point now) {
  auto it = seen_.find(kind);
  if (it == seen_.end()) {
    if (seen_.size() >= max_kinds_) {
      seen_.erase(std::min_element(seen_.begin(), seen_.end(), [](const auto& a, const auto& b) {
        return a.second.logged < b.second.logged;
      }));
    }
    seen_.emplace(kind, Seen{now, 0});
    return 0;
  }
  Seen& seen = it->second;
  if (now - seen.logged < interval_) {
    ++seen.held_back;
    return std::nullopt;
  }
  seen.logged = now;
  return std::exchange(seen.held_back, 0);
}

}  // namespace iridium
