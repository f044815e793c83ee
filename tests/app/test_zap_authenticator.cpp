// The ZAP handler: the pure request parser, and the live handler in front of
// a real CURVE server socket (admitted key, other key, keyring changes).
#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common/curve_key.h"
#include "common/curve_socket.h"
#include "common/zap_authenticator.h"

using iridium::CurveKey;
using iridium::ZapAuthenticator;

namespace {

CurveKey new_key() {
  auto key = iridium::generate_curve_key();
  REQUIRE(key.ok());
  return *key;
}

std::string raw_key(const std::string& z85) {
  std::string bytes(32, '\0');
  REQUIRE(zmq_z85_decode(reinterpret_cast<uint8_t*>(bytes.data()), z85.c_str()) != nullptr);
  return bytes;
}

std::vector<std::string> curve_request(const std::string& public_z85) {
  return {"1.0", "req-7", "iridium-cluster", "10.0.0.9", "", "CURVE", raw_key(public_z85)};
}

// A CURVE client of `server` with its own pair `client`: true when a frame
// it sends reaches the server (the handshake, ZAP included, succeeded).
bool client_gets_through(zmq::context_t& context, zmq::socket_t& server, const std::string& at,
                         const CurveKey& server_key, const CurveKey& client) {
  zmq::socket_t dealer(context, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.set(zmq::sockopt::curve_serverkey, server_key.public_z85);
  dealer.set(zmq::sockopt::curve_publickey, client.public_z85);
  dealer.set(zmq::sockopt::curve_secretkey, client.secret_z85);
  dealer.connect(at);
  (void)dealer.send(zmq::str_buffer("hi"), zmq::send_flags::dontwait);
  zmq::pollitem_t item{server.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, std::chrono::milliseconds(1000)) == 0) return false;
  zmq::message_t id;
  zmq::message_t body;
  REQUIRE(server.recv(id));
  REQUIRE(server.recv(body));
  return body.to_string() == "hi";
}

}  // namespace

TEST_CASE("ZAP requests: an accepted key gets 200, any other 400", "[zap]") {
  const CurveKey cluster = new_key();
  const CurveKey other = new_key();
  const std::set<std::string> allowed{cluster.public_z85};

  auto yes = iridium::answer_zap_request(curve_request(cluster.public_z85), allowed);
  CHECK(yes.status_code == "200");
  CHECK(yes.request_id == "req-7");
  CHECK(yes.user_id == cluster.public_z85);
  CHECK_FALSE(yes.denial);

  auto no = iridium::answer_zap_request(curve_request(other.public_z85), allowed);
  CHECK(no.status_code == "400");
  CHECK(no.request_id == "req-7");
  CHECK(no.user_id.empty());
  REQUIRE(no.denial);
  CHECK(no.denial->address == "10.0.0.9");
  CHECK(no.denial->mechanism == "CURVE");
  CHECK(no.denial->fingerprint == other.public_z85.substr(0, 8));
}

TEST_CASE("ZAP requests: malformed ones get 400 and never crash", "[zap]") {
  const CurveKey cluster = new_key();
  const std::set<std::string> allowed{cluster.public_z85};
  std::vector<std::vector<std::string>> bad = {
      {},
      {"1.0"},
      {"1.0", "id"},
      {"1.0", "id", "d", "a", "i"},                                        // no mechanism
      {"2.0", "id", "d", "a", "i", "CURVE", raw_key(cluster.public_z85)},  // wrong version
      {"1.0", "id", "d", "a", "i", "CURVE"},                               // no credentials
      {"1.0", "id", "d", "a", "i", "CURVE", "short"},                      // not 32 bytes
      {"1.0", "id", "d", "a", "i", "CURVE", raw_key(cluster.public_z85), "extra"},
      {"1.0", "id", "d", "a", "i", "NULL"},
      {"1.0", "id", "d", "a", "i", "PLAIN", "user", "password"},
      {"1.0", "id", "d", "a", "i", std::string(5000, 'X'), std::string(32, '\0')},
  };
  for (const auto& request : bad) {
    auto answer = iridium::answer_zap_request(request, allowed);
    CHECK(answer.status_code == "400");
    CHECK(answer.denial);
    CHECK(answer.denial->reason.size() < 100);  // a huge mechanism name is not echoed whole
  }
}

TEST_CASE("the ZAP handler admits the keyring's keys, and keyring changes take effect", "[zap]") {
  zmq::context_t context(1);
  const CurveKey cluster = new_key();
  const CurveKey next = new_key();
  auto zap = ZapAuthenticator::start(context, {cluster.public_z85});
  REQUIRE(zap.ok());
  {
    zmq::socket_t server(context, zmq::socket_type::router);
    server.set(zmq::sockopt::linger, 0);
    server.set(zmq::sockopt::curve_server, 1);
    server.set(zmq::sockopt::curve_secretkey, cluster.secret_z85);
    server.set(zmq::sockopt::zap_domain, "test");
    server.bind("tcp://127.0.0.1:*");
    const std::string at = server.get(zmq::sockopt::last_endpoint);

    // The cluster pair is admitted; a pair that only knows the server's
    // public key is not, and the denial is reported as data.
    CHECK(client_gets_through(context, server, at, cluster, cluster));
    CHECK_FALSE(client_gets_through(context, server, at, cluster, next));
    auto denials = (*zap)->take_denials();
    REQUIRE(denials.size() == 1);
    CHECK(denials[0].address == "127.0.0.1");
    CHECK(denials[0].fingerprint == next.public_z85.substr(0, 8));
    CHECK((*zap)->take_denials().empty());

    // Install a key: admitted from now on. Remove one: refused from now on.
    (*zap)->allow(next.public_z85);
    CHECK(client_gets_through(context, server, at, cluster, next));
    (*zap)->revoke(cluster.public_z85);
    CHECK_FALSE(client_gets_through(context, server, at, cluster, cluster));
    CHECK((*zap)->allowed() == std::set<std::string>{next.public_z85});
    CHECK((*zap)->requests_answered() >= 4);
  }
  zap->reset();  // stops its thread before the context ends
}

TEST_CASE("the ZAP handler survives a malformed request on its endpoint", "[zap]") {
  zmq::context_t context(1);
  const CurveKey cluster = new_key();
  auto zap = ZapAuthenticator::start(context, {cluster.public_z85});
  REQUIRE(zap.ok());
  {
    zmq::socket_t req(context, zmq::socket_type::req);
    req.set(zmq::sockopt::linger, 0);
    req.set(zmq::sockopt::rcvtimeo, 2000);
    req.connect("inproc://zeromq.zap.01");
    for (int i = 0; i < 3; ++i) {
      REQUIRE(req.send(zmq::str_buffer("garbage"), zmq::send_flags::none));
      std::vector<zmq::message_t> reply;
      REQUIRE(zmq::recv_multipart(req, std::back_inserter(reply)));
      REQUIRE(reply.size() == 6);
      CHECK(reply[0].to_string() == "1.0");
      CHECK(reply[2].to_string() == "400");
    }
  }
  // Still answering properly afterwards.
  auto answer = iridium::answer_zap_request(curve_request(cluster.public_z85), (*zap)->allowed());
  CHECK(answer.status_code == "200");
  CHECK((*zap)->requests_answered() == 3);
  CHECK((*zap)->take_denials().size() == 3);
  zap->reset();
}

TEST_CASE("queued denials are bounded and the rest are counted", "[zap]") {
  zmq::context_t context(1);
  auto zap = ZapAuthenticator::start(context, {});
  REQUIRE(zap.ok());
  {
    zmq::socket_t req(context, zmq::socket_type::req);
    req.set(zmq::sockopt::linger, 0);
    req.connect("inproc://zeromq.zap.01");
    const std::size_t sent = ZapAuthenticator::kMaxQueuedDenials + 10;
    for (std::size_t i = 0; i < sent; ++i) {
      REQUIRE(req.send(zmq::str_buffer("x"), zmq::send_flags::none));
      std::vector<zmq::message_t> reply;
      REQUIRE(zmq::recv_multipart(req, std::back_inserter(reply)));
    }
    uint64_t dropped = 0;
    CHECK((*zap)->take_denials(&dropped).size() == ZapAuthenticator::kMaxQueuedDenials);
    CHECK(dropped == 10);
  }
  zap->reset();
}

TEST_CASE("a second ZAP handler on one context is an error, not a crash", "[zap]") {
  zmq::context_t context(1);
  auto first = ZapAuthenticator::start(context, {});
  REQUIRE(first.ok());
  auto second = ZapAuthenticator::start(context, {});
  CHECK_FALSE(second.ok());
  first->reset();
}

TEST_CASE("a CURVE server fails closed when no ZAP handler answers", "[zap]") {
  // libzmq's default would admit any client that knows the public key; the
  // server options make it refuse instead (ZAP_ENFORCE_DOMAIN).
  zmq::context_t context(1);
  const CurveKey cluster = new_key();
  zmq::socket_t server(context, zmq::socket_type::router);
  server.set(zmq::sockopt::linger, 0);
  iridium::make_curve_server(server, cluster, "test");
  server.bind("tcp://127.0.0.1:*");
  const std::string at = server.get(zmq::sockopt::last_endpoint);
  CHECK_FALSE(client_gets_through(context, server, at, cluster, new_key()));
}
