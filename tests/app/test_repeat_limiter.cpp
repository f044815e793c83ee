#include <catch2/catch.hpp>

#include "common/repeat_limiter.h"

using iridium::RepeatLimiter;

TEST_CASE("repeated warnings: the first at once, then one per interval with a count",
          "[repeat_limiter]") {
  RepeatLimiter limiter(std::chrono::seconds(60), 2);
  const auto t0 = RepeatLimiter::Clock::time_point{} + std::chrono::hours(1);
  CHECK(limiter.admit("a", t0) == 0u);
  CHECK_FALSE(limiter.admit("a", t0 + std::chrono::seconds(1)));
  CHECK_FALSE(limiter.admit("a", t0 + std::chrono::seconds(2)));
  CHECK(limiter.admit("b", t0 + std::chrono::seconds(3)) == 0u);  // another kind: at once
  CHECK(limiter.admit("a", t0 + std::chrono::seconds(61)) == 2u);
  CHECK_FALSE(limiter.admit("a", t0 + std::chrono::seconds(62)));
  // A third kind evicts the oldest (b), which then counts as new again.
  CHECK(limiter.admit("c", t0 + std::chrono::seconds(63)) == 0u);
  CHECK(limiter.admit("b", t0 + std::chrono::seconds(64)) == 0u);
}
