#include "common/curve_socket.h"

namespace iridium {
namespace {
// ZMQ_ZAP_ENFORCE_DOMAIN: in libzmq 4.3 only behind ZMQ_BUILD_DRAFT_API in
// zmq.h, though Debian's library accepts it. A library that does not is
// still safe: the ZAP handler is always bound before a server socket.
constexpr int kZapEnforceDomain = 93;
}  // namespace

void make_curve_server(zmq::socket_t& socket, const CurveKey& key, const char* zap_domain) {
  socket.set(zmq::sockopt::curve_server, 1);
  socket.set(zmq::sockopt::curve_secretkey, key.secret_z85);
  socket.set(zmq::sockopt::zap_domain, zap_domain);
  const int enforce = 1;
  (void)zmq_setsockopt(socket.handle(), kZapEnforceDomain, &enforce, sizeof enforce);
}

void make_curve_client(zmq::socket_t& socket, const CurveKey& own,
                       const std::string& server_public) {
  socket.set(zmq::sockopt::curve_serverkey, server_public);
  socket.set(zmq::sockopt::curve_publickey, own.public_z85);
  socket.set(zmq::sockopt::curve_secretkey, own.secret_z85);
}

}  // namespace iridium
