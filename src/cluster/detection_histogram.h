// How long members had been silent when they were declared dead: the
// failure detector's latency, counted in fixed buckets so that a snapshot of
// the counters carries it (the metrics endpoint serves it as a histogram).
//
// Plain data, not thread-safe: it lives in Membership's Counters.
#pragma once

#include <array>
#include <cstdint>

#include "cluster/config.h"

namespace iridium::cluster {

struct DetectionHistogram {
  // Upper bounds, inclusive. A refused connection is detected within a few
  // tens of milliseconds; silence takes a probe period and the suspicion's
  // timeout (config.h: about 1 s at 8 nodes, several with a lone accuser);
  // beyond 3 s only the count and sum tell.
  static constexpr std::array<Millis, 11> kBounds{
      Millis{15},   Millis{30},   Millis{60},   Millis{125},  Millis{250}, Millis{500},
      Millis{1000}, Millis{1500}, Millis{2000}, Millis{2500}, Millis{3000}};

  std::array<uint64_t, kBounds.size()> in_bucket{};  // per bucket, not cumulative
  uint64_t count = 0;                                // every observation, beyond 3 s too
  Millis sum{0};

  void observe(Millis latency) {
    ++count;
    sum += latency;
    for (std::size_t i = 0; i < kBounds.size(); ++i) {
      if (latency <= kBounds[i]) {
        ++in_bucket[i];
        return;
      }
    }
  }
};

}  // namespace iridium::cluster
