#include "cluster/transport.h"

#include <cstring>
#include <iterator>
#include <optional>
#include <zmq_addon.hpp>

#include "cluster/protocol.h"
#include "common/curve_socket.h"
#include "common/envelope.h"
#include "common/socket_monitor.h"

namespace iridium::cluster {
namespace {

constexpr Millis kConnectTimeout{
    1000};  // a connect to a silent host gives up (and retries) after this
constexpr Millis kRedialAfterDenial{1000};  // a DEALER the listener's ZAP refused is replaced after
constexpr const char* kZapDomain = "iridium-cluster";

std::string tcp_endpoint(const std::string& host, uint16_t port) {
  return "tcp://" + Endpoint{host, port}.text();
}

// Shared by every cluster socket: bounded frames; ZMTP heartbeats, so a
// half-open connection (a cut) is closed and redialled rather than trusted.
void common_options(zmq::socket_t& s, const std::string& host) {
  s.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(kMaxFrameBytes));
  s.set(zmq::sockopt::heartbeat_ivl, 500);
  s.set(zmq::sockopt::heartbeat_timeout, 2000);
  s.set(zmq::sockopt::heartbeat_ttl, 2000);
  s.set(zmq::sockopt::linger, 0);
  if (host.find(':') != std::string::npos) s.set(zmq::sockopt::ipv6, 1);
}

}  // namespace

std::string describe_handshake_failure(const HandshakeFailure& f, bool secure) {
  const std::string why =
      secure ? "it may run without a cluster key, or with another key"
             : "it runs with a cluster key (CURVE) and this node has none; start every node with "
               "the same --cluster-key FILE";
  if (f.on_listener) {
    return "refused a cluster connection on " + f.peer.text() +
           (f.event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? ": its key is not the cluster key"
            : secure ? ": it did not complete the CURVE handshake (no cluster key, or another key)"
                     : ": " + why);
  }
  return "the peer at " + f.peer.text() + " refused the " + (secure ? "CURVE " : "") +
         "handshake: " + why;
}

Transport::Transport(zmq::context_t& context, std::optional<CurveKey> key)
    : context_(context), key_(std::move(key)) {}

Transport::~Transport() {
  for (auto& [endpoint, d] : dealers_) close_dealer(*d);
  dealers_.clear();
  close_monitor(router_, router_monitor_);
  if (router_) router_.close();
}

void Transport::secure(zmq::socket_t& s, bool server) {
  if (!key_) return;
  if (server) {
    make_curve_server(s, *key_, kZapDomain);
  } else {
    make_curve_client(s, *key_, key_->public_z85);  // the cluster pair on both ends
  }
}

Result<uint16_t> Transport::listen(const std::string& host, uint16_t port, bool fallback) {
  try {
    router_ = zmq::socket_t(context_, zmq::socket_type::router);
    common_options(router_, host);
    router_.set(zmq::sockopt::rcvhwm, 10000);
    secure(router_, true);
    const std::string monitor_endpoint =
        "inproc://iridium-listener-" + std::to_string(reinterpret_cast<uintptr_t>(this));
    auto monitor = open_monitor(context_, router_, monitor_endpoint, kHandshakeFailureEvents);
    if (!monitor) return monitor.error();
    router_monitor_ = std::move(*monitor);
  } catch (const zmq::error_t& e) {
    return Error{std::string("cannot create the cluster listener: ") + e.what(), ErrorKind::kIo};
  }
  try {
    router_.bind(tcp_endpoint(host, port));
  } catch (const zmq::error_t& e) {
    if (!(e.num() == EADDRINUSE && fallback)) {
      return Error{
          "cannot listen for the cluster on " + Endpoint{host, port}.text() + ": " + e.what(),
          ErrorKind::kIo};
    }
    try {
      const std::string any = tcp_endpoint(host, 0);
      router_.bind(any.substr(0, any.rfind(':')) + ":*");  // the system picks a free port
    } catch (const zmq::error_t& e2) {
      return Error{"cannot listen for the cluster on " + host + ": " + e2.what(), ErrorKind::kIo};
    }
  }
  // The port really bound (port 0, or the fallback, is chosen by the system).
  const std::string last = router_.get(zmq::sockopt::last_endpoint);
  const auto bound_port = static_cast<uint16_t>(std::stoi(last.substr(last.rfind(':') + 1)));
  bound_ = Endpoint{host, bound_port};
  return bound_port;
}

Transport::Dealer* Transport::dealer_for(const Endpoint& to) {
  if (auto it = dealers_.find(to); it != dealers_.end()) {
    Dealer& d = *it->second;
    if (!d.denied_at || Clock::now() - *d.denied_at < kRedialAfterDenial) return &d;
    release(to);  // refused by its ZAP handler: libzmq will not redial, so a new DEALER does
  }
  try {
    zmq::socket_t s(context_, zmq::socket_type::dealer);
    common_options(s, to.host);
    secure(s, false);
    s.set(zmq::sockopt::immediate, 1);  // never queue for a peer we are not connected to
    s.set(zmq::sockopt::sndhwm, 1000);
    s.set(zmq::sockopt::reconnect_ivl, 10);  // a dead peer's refusal is seen within ms
    s.set(zmq::sockopt::reconnect_ivl_max, 500);
    s.set(zmq::sockopt::connect_timeout,
          static_cast<int>(kConnectTimeout.count()));  // no SYN-SENT backoff
    const std::string monitor_endpoint = "inproc://iridium-link-" +
                                         std::to_string(reinterpret_cast<uintptr_t>(this)) + "-" +
                                         std::to_string(++monitor_serial_);
    const int events = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |
                       ZMQ_EVENT_CONNECT_DELAYED | ZMQ_EVENT_CLOSED | kHandshakeFailureEvents;
    auto monitor = open_monitor(context_, s, monitor_endpoint, events);
    if (!monitor) return nullptr;
    s.connect(tcp_endpoint(to.host, to.port));
    auto d = std::make_unique<Dealer>(
        Dealer{std::move(s), std::move(*monitor), LinkWatch(kConnectTimeout), std::nullopt});
    return dealers_.emplace(to, std::move(d)).first->second.get();
  } catch (const zmq::error_t&) {
    return nullptr;  // e.g. a name that does not resolve: the membership retries
  }
}

void Transport::close_dealer(Dealer& d) {
  close_monitor(d.socket, d.monitor);
  d.socket.set(zmq::sockopt::linger, linger_ms_);
  d.socket.close();
}

bool Transport::send(const Endpoint& to, std::string_view frame) {
  Dealer* d = dealer_for(to);
  if (d == nullptr) return false;
  try {
    return d->socket.send(zmq::buffer(frame), zmq::send_flags::dontwait).has_value();
  } catch (const zmq::error_t&) {
    return false;
  }
}

bool Transport::reply(const std::string& routing_id, std::string_view frame) {
  return wire::send_envelope(router_, routing_id, frame);
}

void Transport::release(const Endpoint& to) {
  auto it = dealers_.find(to);
  if (it == dealers_.end()) return;
  close_dealer(*it->second);
  dealers_.erase(it);
}

void Transport::set_linger(Millis linger) {
  linger_ms_ = static_cast<int>(linger.count());
  for (auto& [endpoint, d] : dealers_) d->socket.set(zmq::sockopt::linger, linger_ms_);
}

bool Transport::poll(Millis timeout, zmq::socket_t* extra, std::vector<Inbound>& frames,
                     std::vector<LinkChange>& links, std::vector<Error>& errors) {
  // Items: [router][extra?] then, per dealer, [socket][monitor].
  std::vector<zmq::pollitem_t> items;
  std::vector<std::pair<const Endpoint*, Dealer*>> owners;
  items.reserve(3 + 2 * dealers_.size());
  items.push_back({router_.handle(), 0, ZMQ_POLLIN, 0});
  if (extra != nullptr) items.push_back({extra->handle(), 0, ZMQ_POLLIN, 0});
  const std::size_t router_monitor = items.size();
  items.push_back({router_monitor_.handle(), 0, ZMQ_POLLIN, 0});
  const std::size_t first_dealer = items.size();
  for (auto& [endpoint, d] : dealers_) {
    items.push_back({d->socket.handle(), 0, ZMQ_POLLIN, 0});
    items.push_back({d->monitor.handle(), 0, ZMQ_POLLIN, 0});
    owners.emplace_back(&endpoint, d.get());
  }
  try {
    zmq::poll(items, timeout);
  } catch (const zmq::error_t& e) {
    if (e.num() != EINTR) errors.push_back(Error{std::string("poll: ") + e.what(), ErrorKind::kIo});
    return false;
  }
  // Frames before link changes: a peer's last frames are read before the
  // news that its connection closed.
  if (items[0].revents & ZMQ_POLLIN) drain_router(frames, errors);
  if (items[router_monitor].revents & ZMQ_POLLIN) drain_router_monitor();
  for (std::size_t i = 0; i < owners.size(); ++i) {
    auto [endpoint, d] = owners[i];
    if (items[first_dealer + 2 * i].revents & ZMQ_POLLIN)
      drain_dealer(*endpoint, *d, frames, errors);
  }
  for (std::size_t i = 0; i < owners.size(); ++i) {
    auto [endpoint, d] = owners[i];
    if (items[first_dealer + 2 * i + 1].revents & ZMQ_POLLIN) drain_monitor(*endpoint, *d, links);
  }
  return extra != nullptr && (items[1].revents & ZMQ_POLLIN) != 0;
}

void Transport::drain_router(std::vector<Inbound>& frames, std::vector<Error>& errors) {
  for (int budget = 0; budget < 1000; ++budget) {
    auto envelope = wire::receive_envelope(router_);
    if (!envelope) {
      errors.push_back(envelope.error());
      continue;
    }
    if (!envelope->has_value()) return;
    frames.push_back(Inbound{Source::from_router(std::move((*envelope)->routing_id)),
                             std::move((*envelope)->body)});
  }
}

void Transport::drain_dealer(const Endpoint& from, Dealer& d, std::vector<Inbound>& frames,
                             std::vector<Error>& errors) {
  for (int budget = 0; budget < 100; ++budget) {
    zmq::message_t body;
    try {
      if (!d.socket.recv(body, zmq::recv_flags::dontwait)) return;
    } catch (const zmq::error_t& e) {
      errors.push_back(Error{std::string("receive failed: ") + e.what(), ErrorKind::kIo});
      return;
    }
    if (body.more()) {  // a DEALER peer sends one frame per message
      errors.push_back(Error{"multi-part message on a dealer", ErrorKind::kInvalid});
      zmq::message_t rest;
      while (body.more() && d.socket.recv(rest, zmq::recv_flags::dontwait)) body.swap(rest);
      continue;
    }
    frames.push_back(Inbound{Source::from_dealer(from), std::move(body)});
  }
}

void Transport::drain_monitor(const Endpoint& from, Dealer& d, std::vector<LinkChange>& links) {
  while (auto e = read_monitor_event(d.monitor)) {
    if (is_handshake_failure(e->event)) {
      failures_.push_back(HandshakeFailure{false, from, e->event, e->value});
      if (e->event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) d.denied_at = Clock::now();
    }
    if (auto change = d.watch.on_event(e->event, Clock::now()))
      links.push_back(LinkChange{from, *change});
  }
}

void Transport::drain_router_monitor() {
  while (auto e = read_monitor_event(router_monitor_)) {
    if (is_handshake_failure(e->event))
      failures_.push_back(HandshakeFailure{true, bound_, e->event, e->value});
  }
}

}  // namespace iridium::cluster
