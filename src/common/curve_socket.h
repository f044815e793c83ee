// CURVE options for a socket, the same way on both ends of every secure
// connection (the cluster and the remote shell). Set before bind/connect.
#pragma once

#include <zmq.hpp>

#include "common/curve_key.h"

namespace iridium {

// A CURVE server holding `key`'s secret half, whose clients the ZAP handler
// of its context vets under `zap_domain`. Where libzmq offers it, the
// socket also fails closed when no ZAP handler answers (ZAP_ENFORCE_DOMAIN),
// instead of admitting everyone.
void make_curve_server(zmq::socket_t& socket, const CurveKey& key, const char* zap_domain);

// A CURVE client whose own pair is `own` and which only completes the
// handshake with a server holding `server_public`'s secret half.
void make_curve_client(zmq::socket_t& socket, const CurveKey& own,
                       const std::string& server_public);

}  // namespace iridium
