#include "cluster/link_watch.h"

#include <zmq.h>

namespace iridium::cluster {

std::optional<LinkEvent> LinkWatch::on_event(uint16_t event, TimePoint now) {
  switch (event) {
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
      // Frames flow only after the ZMTP handshake (ZMQ_IMMEDIATE).
      attempt_started_.reset();
      up_ = true;
      return LinkEvent::kUp;
    case ZMQ_EVENT_DISCONNECTED:
      attempt_started_.reset();
      if (!up_) return std::nullopt;
      up_ = false;
      return LinkEvent::kDown;
    case ZMQ_EVENT_CONNECT_DELAYED:
      attempt_started_ = now;
      return std::nullopt;
    case ZMQ_EVENT_CLOSED: {
      const bool quick = !attempt_started_ || now - *attempt_started_ < connect_timeout_ / 2;
      attempt_started_.reset();
      if (up_) return std::nullopt;  // not a connect attempt's fd
      return quick ? std::optional(LinkEvent::kRefused) : std::nullopt;
    }
    default:
      return std::nullopt;
  }
}

}  // namespace iridium::cluster
