// The transport in secure mode against a real CURVE listener: a DEALER the
// listener's ZAP handler denies is reported (not as a link event) and, as
// libzmq stops redialling it, replaced later, so a keyring change on the
// listener side (rotation) lets it in without a restart.
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>
#include <zmq.hpp>

#include "cluster/transport.h"
#include "common/curve_socket.h"
#include "common/zap_authenticator.h"

using namespace iridium;
using namespace iridium::cluster;

namespace {

CurveKey new_key() {
  auto key = generate_curve_key();
  REQUIRE(key.ok());
  return *key;
}

}  // namespace

TEST_CASE("a DEALER denied by the listener's ZAP handler is reported, then redialled",
          "[transport][security]") {
  const CurveKey key = new_key();
  zmq::context_t ours(1);
  zmq::context_t theirs(1);
  auto our_zap = ZapAuthenticator::start(ours, {key.public_z85});
  REQUIRE(our_zap.ok());
  auto their_zap = ZapAuthenticator::start(theirs, {});  // admits nobody yet
  REQUIRE(their_zap.ok());
  {
    zmq::socket_t listener(theirs, zmq::socket_type::router);
    listener.set(zmq::sockopt::linger, 0);
    make_curve_server(listener, key, "iridium-cluster");
    listener.bind("tcp://127.0.0.1:*");
    const std::string at = listener.get(zmq::sockopt::last_endpoint);
    const Endpoint to{"127.0.0.1", static_cast<uint16_t>(std::stoi(at.substr(at.rfind(':') + 1)))};

    Transport transport(ours, key);
    REQUIRE(transport.listen("127.0.0.1", 0, true).ok());
    std::vector<Inbound> frames;
    std::vector<LinkChange> links;
    std::vector<Error> errors;
    std::vector<HandshakeFailure> failures;
    auto pump = [&](Millis ms) {
      const auto until = Clock::now() + ms;
      while (Clock::now() < until) {
        transport.poll(Millis(10), nullptr, frames, links, errors);
        for (auto& f : transport.take_handshake_failures()) failures.push_back(f);
      }
    };

    transport.send(to, "one");
    const auto deadline = Clock::now() + std::chrono::seconds(5);
    while (failures.empty() && Clock::now() < deadline) pump(Millis(20));
    REQUIRE(failures.size() == 1);
    CHECK_FALSE(failures[0].on_listener);
    CHECK(failures[0].peer == to);
    CHECK(failures[0].event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    CHECK(failures[0].value == 400);
    CHECK(links.empty());  // not refused, not down: a denial is no crash
    CHECK(describe_handshake_failure(failures[0], true).find("refused the CURVE handshake") !=
          std::string::npos);

    // The listener's keyring now holds the key: the next sends (after the
    // redial delay) get through.
    (*their_zap)->allow(key.public_z85);
    zmq::pollitem_t item{listener.handle(), 0, ZMQ_POLLIN, 0};
    bool arrived = false;
    for (int i = 0; i < 40 && !arrived; ++i) {
      transport.send(to, "two");
      pump(Millis(50));
      arrived = zmq::poll(&item, 1, std::chrono::milliseconds(0)) > 0;
    }
    CHECK(arrived);
    REQUIRE(links.size() >= 1);
    CHECK(links.back().event == LinkEvent::kUp);
  }
  our_zap->reset();
  their_zap->reset();
}
