// LinkWatch on the monitor-event sequences libzmq 4.3 produces (recorded on
// this machine with a DEALER whose peer was killed, refused, or cut off).
#include <zmq.h>

#include <catch2/catch.hpp>

#include "cluster/link_watch.h"

using namespace iridium::cluster;

namespace {
const TimePoint t0 = TimePoint{} + std::chrono::hours(1);
TimePoint at(int ms) {
  return t0 + Millis(ms);
}
}  // namespace

TEST_CASE("a killed peer: connection down, then the redial is refused", "[link]") {
  LinkWatch w(Millis(1000));
  CHECK_FALSE(w.on_event(ZMQ_EVENT_CONNECT_DELAYED, at(0)));
  CHECK(w.on_event(ZMQ_EVENT_HANDSHAKE_SUCCEEDED, at(1)) == LinkEvent::kUp);
  CHECK(w.on_event(ZMQ_EVENT_DISCONNECTED, at(300)) == LinkEvent::kDown);
  CHECK_FALSE(w.on_event(ZMQ_EVENT_CONNECT_DELAYED, at(313)));
  CHECK(w.on_event(ZMQ_EVENT_CLOSED, at(313)) == LinkEvent::kRefused);
}

TEST_CASE("a connect that fails at once (no CONNECT_DELAYED) is a refusal", "[link]") {
  LinkWatch w(Millis(1000));
  CHECK(w.on_event(ZMQ_EVENT_CLOSED, at(0)) == LinkEvent::kRefused);
}

TEST_CASE("a connect that times out (a cut) is not a refusal", "[link]") {
  LinkWatch w(Millis(1000));
  CHECK(w.on_event(ZMQ_EVENT_HANDSHAKE_SUCCEEDED, at(0)) == LinkEvent::kUp);
  CHECK(w.on_event(ZMQ_EVENT_DISCONNECTED, at(2000)) == LinkEvent::kDown);
  CHECK_FALSE(w.on_event(ZMQ_EVENT_CONNECT_DELAYED, at(2010)));
  CHECK_FALSE(w.on_event(ZMQ_EVENT_CLOSED, at(3010)));
  CHECK_FALSE(w.on_event(ZMQ_EVENT_CONNECT_DELAYED, at(3500)));
  CHECK(w.on_event(ZMQ_EVENT_HANDSHAKE_SUCCEEDED, at(3501)) == LinkEvent::kUp);
}

TEST_CASE("a disconnect without an established connection says nothing", "[link]") {
  LinkWatch w(Millis(1000));
  CHECK_FALSE(w.on_event(ZMQ_EVENT_DISCONNECTED, at(0)));
  CHECK_FALSE(w.up());
}

// Recorded with a plain DEALER against a CURVE listener (libzmq 4.3.4): the
// TCP connection is made, the handshake fails, it closes and is redialled.
// A peer with no key or another key is no member that crashed: no refusal,
// no link down.
TEST_CASE("a failed security handshake is neither a refusal nor a link down", "[link]") {
  LinkWatch w(Millis(1000));
  for (int round = 0; round < 3; ++round) {
    const int t = round * 20;
    CHECK_FALSE(w.on_event(ZMQ_EVENT_CONNECT_DELAYED, at(t)));
    CHECK_FALSE(w.on_event(ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL, at(t + 1)));
    CHECK_FALSE(w.on_event(ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, at(t + 1)));
    CHECK_FALSE(w.on_event(ZMQ_EVENT_DISCONNECTED, at(t + 1)));
    CHECK_FALSE(w.on_event(ZMQ_EVENT_CONNECT_RETRIED, at(t + 10)));
  }
  // Denied by the listener's ZAP handler: libzmq gives up on that DEALER.
  CHECK_FALSE(w.on_event(ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, at(100)));
  CHECK_FALSE(w.on_event(ZMQ_EVENT_DISCONNECTED, at(100)));
  CHECK_FALSE(w.up());
}
