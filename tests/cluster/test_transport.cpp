// How the transport waits (transport.h): on an epoll set of every socket's
// ZMQ_FD, so that an idle poll reads no socket however many peers there
// are, and a frame still wakes it at once, also one that arrives while we
// send on the same DEALER.
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "cluster/transport.h"

using namespace iridium;
using namespace iridium::cluster;

namespace {

// A plain ROUTER on 127.0.0.1, as a peer's listener.
struct Listener {
  zmq::socket_t socket;
  Endpoint at;
  explicit Listener(zmq::context_t& context) : socket(context, zmq::socket_type::router) {
    socket.set(zmq::sockopt::linger, 0);
    socket.bind("tcp://127.0.0.1:*");
    const std::string last = socket.get(zmq::sockopt::last_endpoint);
    at = Endpoint{"127.0.0.1", static_cast<uint16_t>(std::stoi(last.substr(last.rfind(':') + 1)))};
  }
  // The routing id of the next frame, waiting up to 2 s.
  std::optional<std::string> receive() {
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, std::chrono::milliseconds(2000)) <= 0) return std::nullopt;
    std::vector<zmq::message_t> parts;
    (void)zmq::recv_multipart(socket, std::back_inserter(parts));
    return parts.front().to_string();
  }
  void reply(const std::string& id, const std::string& body) {
    std::array<zmq::const_buffer, 2> parts{zmq::buffer(id), zmq::buffer(body)};
    (void)zmq::send_multipart(socket, parts);
  }
};

struct Collected {
  std::vector<Inbound> frames;
  std::vector<LinkChange> links;
  std::vector<Error> errors;
};

void poll(Transport& t, Millis timeout, Collected& c) {
  (void)t.poll(timeout, nullptr, c.frames, c.links, c.errors);
}

// Polls until `n` links are up (each peer's connection), at most 5 s.
void await_links(Transport& t, std::size_t n, Collected& c) {
  const auto until = Clock::now() + std::chrono::seconds(5);
  auto ups = [&] {
    return static_cast<std::size_t>(std::count_if(
        c.links.begin(), c.links.end(), [](auto& l) { return l.event == LinkEvent::kUp; }));
  };
  while (ups() < n && Clock::now() < until) poll(t, Millis(50), c);
  REQUIRE(ups() == n);
}

}  // namespace

TEST_CASE("an idle poll reads no socket at any number of peers, and a frame wakes it at once",
          "[transport][wait]") {
  zmq::context_t context(1);
  Transport transport(context, std::nullopt);
  REQUIRE(transport.listen("127.0.0.1", 0, true).ok());
  std::vector<std::unique_ptr<Listener>> peers;
  for (int i = 0; i < 40; ++i) peers.push_back(std::make_unique<Listener>(context));
  Collected c;
  for (auto& p : peers) transport.send(p->at, "dial");  // dropped: not connected yet
  await_links(transport, peers.size(), c);
  std::vector<std::string> ids;
  for (auto& p : peers) {
    transport.send(p->at, "hello");
    auto id = p->receive();
    REQUIRE(id.has_value());
    ids.push_back(*id);
  }
  poll(transport, Millis(0), c);  // the sends' rechecks

  c = {};
  const auto before = Clock::now();
  poll(transport, Millis(200), c);
  CHECK(Clock::now() - before >= Millis(190));
  CHECK(c.frames.empty());
  CHECK(transport.last_poll_reads() == 0);  // 2 x 40 + 2 sockets, none read

  peers[17]->reply(ids[17], "answer");
  const auto woken = Clock::now();
  // Woken by the frame, not by the end of its 5 s wait (with room for a loaded machine).
  while (c.frames.empty() && Clock::now() - woken < Millis(6000)) poll(transport, Millis(5000), c);
  CHECK(Clock::now() - woken < Millis(2500));
  REQUIRE(c.frames.size() == 1);
  CHECK(c.frames[0].source.dealer == peers[17]->at);
  CHECK(transport.last_poll_reads() <= 2);
}

// A send processes the DEALER's pending commands (at most once a ms or so),
// which may include the one announcing a frame that arrived meanwhile; the
// transport reads a socket it sent on before it waits again, so that frame
// does not wait for a later wakeup.
TEST_CASE("answers that arrive before we send again on the same DEALER wake the poll",
          "[transport][wait]") {
  zmq::context_t context(1);
  Transport transport(context, std::nullopt);
  REQUIRE(transport.listen("127.0.0.1", 0, true).ok());
  Listener peer(context);
  Collected c;
  transport.send(peer.at, "dial");
  await_links(transport, 1, c);
  constexpr int kRounds = 100;
  std::thread echo([&] {
    for (int i = 0; i < 2 * kRounds; ++i) {
      auto id = peer.receive();
      if (!id) return;
      peer.reply(*id, "echo");
    }
  });
  const auto start = Clock::now();
  std::size_t answered = 0;
  for (int i = 0; i < kRounds; ++i) {
    c.frames.clear();
    transport.send(peer.at, "one");
    std::this_thread::sleep_for(Millis(3));  // its echo arrives; then a send looks at commands
    transport.send(peer.at, "two");
    // Each echo comes within a few ms; a lost wakeup would cost the full second.
    const auto sent = Clock::now();
    while (c.frames.size() < 2 && Clock::now() - sent < Millis(3000)) {
      poll(transport, Millis(1000), c);
    }
    answered += c.frames.size();
    if (c.frames.size() < 2) break;  // lost: the echo thread stops at its own timeout
  }
  echo.join();
  CHECK(answered == 2 * kRounds);
  CHECK(Clock::now() - start < std::chrono::seconds(20));  // about 0.5 s; a lost echo never comes
}
