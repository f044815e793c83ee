// Reads one DEALER's socket-monitor events and says what its connection did:
// up, down, or refused. A refusal is what a dead process looks like from
// outside (RST: nothing listens), so the membership can drop it at once
// instead of waiting for silence; a connect that merely times out (a cut, a
// host that is off) is not a refusal.
//
// libzmq reports a failed attempt as CONNECT_DELAYED (in progress) then
// CLOSED; a refusal closes within a round trip, a timeout only after
// ZMQ_CONNECT_TIMEOUT. An attempt that fails synchronously gives CLOSED with
// no CONNECT_DELAYED. Not thread-safe: the transport's thread owns it.
#pragma once

#include <cstdint>
#include <optional>

#include "cluster/membership.h"

namespace iridium::cluster {

class LinkWatch {
 public:
  explicit LinkWatch(Millis connect_timeout) : connect_timeout_(connect_timeout) {}

  // `event` is a ZMQ_EVENT_* value.
  std::optional<LinkEvent> on_event(uint16_t event, TimePoint now);
  bool up() const { return up_; }

 private:
  Millis connect_timeout_;
  std::optional<TimePoint> attempt_started_;
  bool up_ = false;
};

}  // namespace iridium::cluster
