// A suspicion of one member (Lifeguard's dogpile timer, after memberlist's
// suspicion.go): it fires after a timeout that starts at `max` and shrinks
// towards `min` as independent accusers confirm it, so a member suspected by
// many is declared dead sooner and one suspected by a single, possibly
// unhealthy, node is given the longest time to refute.
//
// A value type with no clock of its own: the membership asks deadline().
// Not thread-safe.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>

#include "cluster/config.h"

namespace iridium::cluster {

class Suspicion {
 public:
  // `expected`: confirmations that bring the timeout down to `min` (0: it is
  // `min` from the start).
  Suspicion(uint64_t incarnation, const std::string& accuser, Millis min, Millis max,
            std::size_t expected)
      : incarnation_(incarnation), min_(min), max_(std::max(min, max)), expected_(expected) {
    accusers_.insert(accuser);
  }

  uint64_t incarnation() const { return incarnation_; }
  // True when `accuser` had not accused this incarnation before and its
  // accusation still shortens the timeout. Accusers past `expected`
  // confirmations change nothing and are not kept (as memberlist's Confirm),
  // so the set stays within expected + 1 however many accuse.
  bool confirm(const std::string& accuser) {
    if (accusers_.size() > expected_) return false;
    return accusers_.insert(accuser).second;
  }
  std::size_t accusers() const { return accusers_.size(); }
  bool accused_by(const std::string& alias) const { return accusers_.contains(alias); }

  // How long after its start the suspicion fires, given the confirmations so far.
  Millis timeout() const {
    const std::size_t confirmations = accusers_.size() - 1;
    if (expected_ == 0 || confirmations >= expected_) return min_;
    const double fraction = std::log(static_cast<double>(confirmations) + 1.0) /
                            std::log(static_cast<double>(expected_) + 1.0);
    const auto span = static_cast<double>((max_ - min_).count());
    return std::max(min_, max_ - Millis(static_cast<int64_t>(std::floor(fraction * span))));
  }

 private:
  uint64_t incarnation_;
  Millis min_, max_;
  std::size_t expected_;
  std::set<std::string> accusers_;
};

}  // namespace iridium::cluster
