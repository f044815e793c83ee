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
