#include "common/envelope.h"

#include <iterator>
#include <vector>
#include <zmq_addon.hpp>

namespace iridium::wire {

Result<std::optional<Envelope>> receive_envelope(zmq::socket_t& router) {
  std::vector<zmq::message_t> frames;
  try {
    if (!zmq::recv_multipart(router, std::back_inserter(frames), zmq::recv_flags::dontwait)) {
      return std::optional<Envelope>{};
    }
  } catch (const zmq::error_t& e) {
    return Error{std::string("receive failed: ") + e.what(), ErrorKind::kIo};
  }
  if (frames.size() != 2) {
    return Error{"a message of " + std::to_string(frames.size() - 1) + " frames (want one frame)",
                 ErrorKind::kInvalid};
  }
  return std::optional<Envelope>{Envelope{frames[0].to_string(), std::move(frames[1])}};
}

bool send_envelope(zmq::socket_t& router, std::string_view routing_id, std::string_view body) {
  try {
    if (!router.send(zmq::buffer(routing_id), zmq::send_flags::sndmore | zmq::send_flags::dontwait))
      return false;
    return router.send(zmq::buffer(body), zmq::send_flags::dontwait).has_value();
  } catch (const zmq::error_t&) {
    return false;
  }
}

}  // namespace iridium::wire
