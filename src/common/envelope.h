// ROUTER envelopes: every message a ROUTER socket receives or sends is
// [routing id][body]. The cluster listener and the remote shell both speak
// one body frame per message, so both use these two functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <zmq.hpp>

#include "common/result.h"

namespace iridium::wire {

struct Envelope {
  std::string routing_id;  // opaque; only good for replying on the same socket
  zmq::message_t body;
};

// Receives one message without waiting. nullopt: nothing is waiting. An error
// (kind kInvalid) when the message had another shape than [id][body]; that
// message is consumed, so the caller can count it and go on.
Result<std::optional<Envelope>> receive_envelope(zmq::socket_t& router);

// Sends [routing_id][body] without waiting. False when the frame could not go
// (the peer vanished, or its queue is full); ROUTER drops replies to unknown ids.
bool send_envelope(zmq::socket_t& router, std::string_view routing_id, std::string_view body);

}  // namespace iridium::wire
