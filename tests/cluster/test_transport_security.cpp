// The transport in secure mode against a real CURVE listener: a DEALER the
// listener's ZAP handler denies is reported (not as a link event) and, as
// libzmq stops redialling it, replaced later, so a keyring change on the
// listener side (rotation) lets it in without a restart. Then what
// zmq_unbind does (why rotation does not use it), and a rotation between
// two transports.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <set>
#include <thread>
#include <zmq.hpp>

#include "cluster/link_watch.h"
#include "cluster/transport.h"
#include "common/curve_socket.h"
#include "common/socket_monitor.h"
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

// ---------------------------------------------------------------------------
// Why a key change replaces the whole listener instead of unbinding and
// binding it again (transport.h): what libzmq 4.3.4 does on zmq_unbind.

namespace {

uint16_t port_of(zmq::socket_t& s) {
  const std::string at = s.get(zmq::sockopt::last_endpoint);
  return static_cast<uint16_t>(std::stoi(at.substr(at.rfind(':') + 1)));
}

// A DEALER with the transport's reconnect options and a LinkWatch on its monitor.
struct WatchedDealer {
  WatchedDealer(zmq::context_t& context, uint16_t port, std::string name)
      : socket(context, zmq::socket_type::dealer) {
    socket.set(zmq::sockopt::linger, 0);
    socket.set(zmq::sockopt::reconnect_ivl, 10);
    socket.set(zmq::sockopt::reconnect_ivl_max, 500);
    socket.set(zmq::sockopt::immediate, 1);
    auto m = open_monitor(context, socket, "inproc://watched-" + name,
                          ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |
                              ZMQ_EVENT_CONNECT_DELAYED | ZMQ_EVENT_CLOSED);
    REQUIRE(m.ok());
    monitor = std::move(*m);
    socket.connect("tcp://127.0.0.1:" + std::to_string(port));
  }
  ~WatchedDealer() { close_monitor(socket, monitor); }
  // Reads monitor events for `ms` (or until `until` holds), into `links`.
  template <typename Until>
  void watch(Millis ms, Until until) {
    const auto deadline = Clock::now() + ms;
    zmq::pollitem_t item{monitor.handle(), 0, ZMQ_POLLIN, 0};
    while (Clock::now() < deadline && !until()) {
      (void)zmq::poll(&item, 1, Millis(10));
      while (auto e = read_monitor_event(monitor)) {
        if (auto change = link.on_event(e->event, Clock::now())) links.push_back(*change);
      }
    }
  }
  bool saw(LinkEvent event) const {
    return std::find(links.begin(), links.end(), event) != links.end();
  }
  zmq::socket_t socket;
  zmq::socket_t monitor;
  LinkWatch link{Millis(1000)};
  std::vector<LinkEvent> links;
};

bool receive_within(zmq::socket_t& router, Millis ms, std::string* body = nullptr) {
  zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, ms) <= 0) return false;
  zmq::message_t id, payload;
  (void)router.recv(id);
  (void)router.recv(payload);
  if (body != nullptr) *body = payload.to_string();
  return true;
}

}  // namespace

TEST_CASE("libzmq: zmq_unbind leaves accepted connections open but dead, and refuses redials",
          "[transport][security][libzmq]") {
  zmq::context_t context(1);
  zmq::socket_t router(context, zmq::socket_type::router);
  router.set(zmq::sockopt::linger, 0);
  router.bind("tcp://127.0.0.1:*");
  const std::string endpoint = router.get(zmq::sockopt::last_endpoint);
  const uint16_t port = port_of(router);
  {
    WatchedDealer old(context, port, "old");
    old.watch(Millis(5000), [&] { return old.saw(LinkEvent::kUp); });
    REQUIRE(old.saw(LinkEvent::kUp));
    (void)old.socket.send(zmq::str_buffer("before"), zmq::send_flags::none);
    REQUIRE(receive_within(router, Millis(5000)));

    router.unbind(endpoint);
    // In the gap, a dial is refused: what a crashed member looks like.
    WatchedDealer fresh(context, port, "fresh");
    fresh.watch(Millis(5000), [&] { return fresh.saw(LinkEvent::kRefused); });
    CHECK(fresh.saw(LinkEvent::kRefused));
    router.bind(endpoint);
    // The connection accepted before the unbind is neither closed...
    old.watch(Millis(300), [] { return false; });
    CHECK(old.links == std::vector<LinkEvent>{LinkEvent::kUp});
    // ...nor read any more: its peer would believe it is up and be ignored.
    (void)old.socket.send(zmq::str_buffer("after"), zmq::send_flags::dontwait);
    std::string got;
    const bool arrived = receive_within(router, Millis(500), &got);
    CHECK_FALSE((arrived && got == "after"));
  }
}

// ---------------------------------------------------------------------------
// Rotation between two real transports: the listener changes key under a
// connected peer, which is never refused and comes back with the new key.

namespace {

struct Side {
  Side(const CurveKey& key, std::set<std::string> admitted) : context(1) {
    auto started = ZapAuthenticator::start(context, std::move(admitted));
    REQUIRE(started.ok());
    zap = std::move(*started);
    transport = std::make_unique<Transport>(context, key);
    auto port = transport->listen("127.0.0.1", 0, true);
    REQUIRE(port.ok());
    at = Endpoint{"127.0.0.1", *port};
  }
  ~Side() {
    transport.reset();
    zap.reset();
  }
  // One poll; what arrived, and every link change and handshake failure.
  void pump() {
    std::vector<Inbound> frames;
    std::vector<LinkChange> changes;
    std::vector<Error> errors;
    transport->poll(Millis(5), nullptr, frames, changes, errors);
    for (Inbound& in : frames) received.push_back(in.body.to_string());
    for (const LinkChange& c : changes) links.push_back(c.event);
    for (const HandshakeFailure& f : transport->take_handshake_failures()) failures.push_back(f);
  }
  bool got(const std::string& frame) const {
    return std::find(received.begin(), received.end(), frame) != received.end();
  }
  zmq::context_t context;
  std::unique_ptr<ZapAuthenticator> zap;
  std::unique_ptr<Transport> transport;
  Endpoint at;
  std::vector<std::string> received;
  std::vector<LinkEvent> links;
  std::vector<HandshakeFailure> failures;
};

// Each side sends `tag` to the other every few ms until both have it.
bool exchange(Side& a, Side& b, const std::string& tag) {
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < deadline && !(a.got(tag) && b.got(tag))) {
    a.transport->send(b.at, tag);
    b.transport->send(a.at, tag);
    a.pump();
    b.pump();
  }
  return a.got(tag) && b.got(tag);
}

bool refused(const Side& s) {
  return std::find(s.links.begin(), s.links.end(), LinkEvent::kRefused) != s.links.end();
}

}  // namespace

TEST_CASE("a key rotation between two transports: never refused, and back with the new key",
          "[transport][security][rotation]") {
  const CurveKey k1 = new_key(), k2 = new_key();
  Side a(k1, {k1.public_z85}), b(k1, {k1.public_z85});
  REQUIRE(exchange(a, b, "k1"));

  // install K2 on both: nothing to replace.
  for (Side* s : {&a, &b}) {
    s->zap->allow(k2.public_z85);
    REQUIRE(s->transport->set_keys(k1, {k1.public_z85, k2.public_z85}).ok());
  }
  REQUIRE(exchange(a, b, "installed"));

  // use K2 on a: its listener and its DEALER change; b, still on K1, finds
  // a's new key by trying its other installed key.
  REQUIRE(a.transport->set_keys(k2, {k2.public_z85, k1.public_z85}).ok());
  REQUIRE(exchange(a, b, "a on k2"));
  // b's DEALER to a failed once (a's new key) and said it was expected.
  bool b_tried_another_key = false;
  for (const HandshakeFailure& f : b.failures) {
    if (!f.on_listener) {
      CHECK(f.expected);
      b_tried_another_key = true;
    }
  }
  CHECK(b_tried_another_key);

  // use K2 on b, then remove K1 on both.
  REQUIRE(b.transport->set_keys(k2, {k2.public_z85, k1.public_z85}).ok());
  REQUIRE(exchange(a, b, "both on k2"));
  for (Side* s : {&a, &b}) {
    s->zap->revoke(k1.public_z85);
    REQUIRE(s->transport->set_keys(k2, {k2.public_z85}).ok());
  }
  REQUIRE(exchange(a, b, "k1 removed"));
  CHECK_FALSE(refused(a));
  CHECK_FALSE(refused(b));

  // A holder of K1 alone gets nowhere: neither with a's old public key...
  zmq::context_t stranger(1);
  for (const std::string& server : {k1.public_z85, k2.public_z85}) {
    zmq::socket_t d(stranger, zmq::socket_type::dealer);
    d.set(zmq::sockopt::linger, 0);
    make_curve_client(d, k1, server);
    auto m = open_monitor(stranger, d, "inproc://stranger-" + server.substr(0, 4),
                          ZMQ_EVENT_HANDSHAKE_SUCCEEDED | kHandshakeFailureEvents);
    REQUIRE(m.ok());
    d.connect("tcp://127.0.0.1:" + std::to_string(a.at.port));
    std::optional<MonitorEvent> outcome;
    const auto deadline = Clock::now() + std::chrono::seconds(5);
    zmq::pollitem_t item{m->handle(), 0, ZMQ_POLLIN, 0};
    while (!outcome && Clock::now() < deadline) {
      a.pump();
      (void)zmq::poll(&item, 1, Millis(5));
      outcome = read_monitor_event(*m);
    }
    REQUIRE(outcome);
    CHECK(is_handshake_failure(outcome->event));  // ...nor with its new one (ZAP says no)
    close_monitor(d, *m);
  }
}

TEST_CASE("set_keys in plain mode is an error", "[transport][security][rotation]") {
  zmq::context_t context(1);
  Transport plain(context, std::nullopt);
  auto status = plain.set_keys(new_key(), {});
  REQUIRE_FALSE(status.ok());
  CHECK(status.kind() == ErrorKind::kUnavailable);
}

// A plain listener sees a node with a cluster key as a mechanism mismatch,
// or as a hang-up when the key holder saw our greeting first; a port check
// or a node releasing a contact it gave up on hangs up too, so a hang-up is
// reported as what it is, with the likely cause.
TEST_CASE("a plain listener calls a key holder by name and a hang-up a hang-up", "[transport]") {
  const Endpoint at{"127.0.0.1", 2254};
  const HandshakeFailure mismatch{true, at, ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL,
                                  ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH, false};
  const HandshakeFailure hang_up{true, at, ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL, ECONNRESET, false};
  CHECK_FALSE(is_hang_up(mismatch, false));
  CHECK(describe_handshake_failure(mismatch, false).find("it runs with a cluster key (CURVE)") !=
        std::string::npos);
  CHECK(is_hang_up(hang_up, false));
  CHECK(describe_handshake_failure(hang_up, false)
            .starts_with("a connection on 127.0.0.1:2254 closed during its handshake (Connection "
                         "reset by peer): a node with a cluster key (CURVE) hangs up"));
  CHECK_FALSE(is_hang_up(hang_up, true));  // a secure listener says what it always said
}
