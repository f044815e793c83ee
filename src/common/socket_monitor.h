// A libzmq socket monitor, read without blocking: the events of one socket
// (connections, handshakes), for the thread that owns that socket.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <zmq.hpp>

#include "common/result.h"

namespace iridium {

inline constexpr int kHandshakeFailureEvents = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;

inline bool is_handshake_failure(uint16_t event) {
  return (event & kHandshakeFailureEvents) != 0;
}

struct MonitorEvent {
  uint16_t event = 0;  // ZMQ_EVENT_*
  int32_t value = 0;   // errno, ZMQ_PROTOCOL_ERROR_*, ZAP status code, fd...
};

// Starts monitoring `socket` for `events` at the inproc `endpoint` (unique
// in the context) and returns the PAIR socket that receives them.
Result<zmq::socket_t> open_monitor(zmq::context_t& context, zmq::socket_t& socket,
                                   const std::string& endpoint, int events);
// Stops the monitor and closes its PAIR socket.
void close_monitor(zmq::socket_t& socket, zmq::socket_t& monitor);
// The next waiting event, or nothing.
std::optional<MonitorEvent> read_monitor_event(zmq::socket_t& monitor);

}  // namespace iridium
