#include "cluster/transport.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
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
// Handshakes that fail on our new listener this soon after a key change are
// peers still trying our old key: expected, not worth a warning.
constexpr Millis kKeyChangeQuiet{3000};
constexpr const char* kZapDomain = "iridium-cluster";

std::string tcp_endpoint(const std::string& host, uint16_t port) {
  return "tcp://" + Endpoint{host, port}.text();
}

// A connection whose data goes unacknowledged this long is closed by the
// kernel (TCP_USER_TIMEOUT): a cut, or a host gone. With 5 % loss it takes
// four lost tries of one segment in a row (RTO 0.2 + 0.4 + 0.8 + 1.6 s).
constexpr Millis kUnackedTimeout{3000};
// An idle connection is probed after this much silence, and closed (within
// kUnackedTimeout) when the probe is not answered.
constexpr int kKeepaliveIdleSeconds = 10;
constexpr int kKeepaliveIntervalSeconds = 2;
constexpr int kKeepaliveProbes = 3;  // where TCP_USER_TIMEOUT is not honoured

// Shared by every cluster socket: bounded frames, and a half-open
// connection (a cut) is closed and redialled rather than trusted. That is
// left to the kernel: TCP_USER_TIMEOUT for data that is not acknowledged,
// keepalive probes for a connection that carries none. Both run on the
// kernel's timers, so an idle node does no work in user space per peer.
// They replace ZMTP heartbeats (a PING every 500 ms each way on every
// connection, answered in libzmq's I/O thread: about 4 (N - 1) messages a
// second per node in a full mesh, the largest idle cost once the membership
// itself sends little). One difference: ZMTP heartbeats also closed the
// connections to a stopped (SIGSTOP) process after 2 s, where its kernel
// still acknowledges TCP; those now stay open, and the membership's silence
// rules (docs/protocol.md section 7) decide about the member, as before.
void common_options(zmq::socket_t& s, const std::string& host) {
  s.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(kMaxFrameBytes));
  s.set(zmq::sockopt::tcp_maxrt, static_cast<int>(kUnackedTimeout.count()));
  s.set(zmq::sockopt::tcp_keepalive, 1);
  s.set(zmq::sockopt::tcp_keepalive_idle, kKeepaliveIdleSeconds);
  s.set(zmq::sockopt::tcp_keepalive_intvl, kKeepaliveIntervalSeconds);
  s.set(zmq::sockopt::tcp_keepalive_cnt, kKeepaliveProbes);
  s.set(zmq::sockopt::linger, 0);
  if (host.find(':') != std::string::npos) s.set(zmq::sockopt::ipv6, 1);
}

}  // namespace

std::string describe_handshake_failure(const HandshakeFailure& f, bool secure) {
  const std::string why =
      secure ? "it may run without a cluster key, or with another key"
             : "it runs with a cluster key (CURVE) and this node has none; start every node with "
               "the same --cluster-key FILE";
  if (is_hang_up(f, secure)) {
    return "a connection on " + f.peer.text() + " closed during its handshake (" +
           std::strerror(f.value) +
           "): a node with a cluster key (CURVE) hangs up this way on a node without one, and "
           "so does a port check; if it was a node, start every node with the same "
           "--cluster-key FILE";
  }
  if (f.on_listener) {
    return "refused a cluster connection on " + f.peer.text() +
           (f.event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? ": its key is not the cluster key"
            : secure ? ": it did not complete the CURVE handshake (no cluster key, or another key)"
                     : ": " + why);
  }
  return "the peer at " + f.peer.text() + " refused the " + (secure ? "CURVE " : "") +
         "handshake: " + why;
}

bool is_hang_up(const HandshakeFailure& f, bool secure) {
  return !secure && f.on_listener && f.event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
}

Transport::Transport(zmq::context_t& context, std::optional<CurveKey> key)
    : context_(context), key_(std::move(key)), epoll_fd_(::epoll_create1(EPOLL_CLOEXEC)) {
  if (key_) keys_.push_back(key_->public_z85);
}

Transport::~Transport() {
  for (auto& [endpoint, d] : dealers_) close_dealer(*d);
  dealers_.clear();
  close_monitor(router_, router_monitor_);
  if (router_) router_.close();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

// Adds `socket`'s ZMQ_FD to the epoll set, standing for `what`. Removed
// (unwatch) before the socket closes: libzmq closes that descriptor later,
// on its reaper thread, and the number may be reused meanwhile.
void Transport::watch(zmq::socket_t& socket, Watch& what) {
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.ptr = &what;
  const auto fd = socket.get(zmq::sockopt::fd);
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) {
    throw zmq::error_t();  // errno says why; callers turn it into their error
  }
}

void Transport::unwatch(zmq::socket_t& socket) {
  if (!socket) return;
  const auto fd = socket.get(zmq::sockopt::fd);
  (void)::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

void Transport::secure_listener(zmq::socket_t& s) {
  if (key_) make_curve_server(s, *key_, kZapDomain);
}

Result<zmq::socket_t> Transport::open_router_monitor(zmq::socket_t& router) {
  const std::string endpoint = "inproc://iridium-listener-" +
                               std::to_string(reinterpret_cast<uintptr_t>(this)) + "-" +
                               std::to_string(++monitor_serial_);
  return open_monitor(context_, router, endpoint,
                      kHandshakeFailureEvents | ZMQ_EVENT_LISTENING | ZMQ_EVENT_CLOSED);
}

// Waits (briefly) for the listener's CLOSED event after an unbind; the
// handshake failures seen meanwhile are kept.
void Transport::await_listener_closed() {
  zmq::pollitem_t item{router_monitor_.handle(), 0, ZMQ_POLLIN, 0};
  const auto deadline = Clock::now() + Millis(1000);
  while (Clock::now() < deadline) {
    (void)zmq::poll(&item, 1, Millis(10));
    while (auto e = read_monitor_event(router_monitor_)) {
      if (e->event == ZMQ_EVENT_CLOSED) return;
      if (is_handshake_failure(e->event))
        failures_.push_back(HandshakeFailure{true, bound_, e->event, e->value, false});
    }
  }
}

Result<uint16_t> Transport::listen(const std::string& host, uint16_t port, bool fallback) {
  if (epoll_fd_ < 0) {
    return Error{std::string("cannot create the cluster's epoll set: ") + std::strerror(errno),
                 ErrorKind::kIo};
  }
  try {
    router_ = zmq::socket_t(context_, zmq::socket_type::router);
    common_options(router_, host);
    router_.set(zmq::sockopt::rcvhwm, 10000);
    secure_listener(router_);
    auto monitor = open_router_monitor(router_);
    if (!monitor) return monitor.error();
    router_monitor_ = std::move(*monitor);
    watch(router_, router_watch_);
    watch(router_monitor_, router_monitor_watch_);
    recheck_router_ = true;  // see read_rechecks
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
  bound_uri_ = last;
  if (key_) {
    // Keep the listening socket (its fd is the LISTENING event's value) for
    // the life of the transport: a key change replaces the ROUTER on it.
    zmq::pollitem_t item{router_monitor_.handle(), 0, ZMQ_POLLIN, 0};
    const auto deadline = Clock::now() + Millis(1000);
    while (listen_fd_ < 0 && Clock::now() < deadline) {
      (void)zmq::poll(&item, 1, Millis(50));
      while (auto e = read_monitor_event(router_monitor_)) {
        if (e->event == ZMQ_EVENT_LISTENING && listen_fd_ < 0)
          listen_fd_ = ::fcntl(e->value, F_DUPFD_CLOEXEC, 0);
      }
    }
    if (listen_fd_ < 0) {
      return Error{"cannot keep the cluster listener's socket for key changes", ErrorKind::kIo};
    }
  }
  return bound_port;
}

Status Transport::replace_listener() {
  const int fd = ::fcntl(listen_fd_, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) {
    return Error{std::string("cannot replace the cluster listener: ") + std::strerror(errno),
                 ErrorKind::kIo};
  }
  zmq::socket_t fresh;
  zmq::socket_t fresh_monitor;
  try {
    fresh = zmq::socket_t(context_, zmq::socket_type::router);
    common_options(fresh, bound_.host);
    fresh.set(zmq::sockopt::rcvhwm, 10000);
    secure_listener(fresh);
    auto monitor = open_router_monitor(fresh);
    if (!monitor) {
      ::close(fd);
      return monitor.error();
    }
    fresh_monitor = std::move(*monitor);
    fresh.set(zmq::sockopt::use_fd, fd);
  } catch (const zmq::error_t& e) {
    ::close(fd);
    if (fresh) close_monitor(fresh, fresh_monitor);
    return Error{std::string("cannot replace the cluster listener: ") + e.what(), ErrorKind::kIo};
  }
  // The old ROUTER stops accepting first, and the new one binds only once
  // the old listener has closed its copy of the socket: meanwhile the
  // kernel queues new connections (a peer's redial among them) for the new
  // listener. Accepted by the old ROUTER, they would fail their handshake
  // when it closes. Frames the old one had read are kept.
  std::vector<Error> errors;
  drain_router(carried_, errors);
  const std::string old_uri = router_.get(zmq::sockopt::last_endpoint);
  try {
    router_.unbind(old_uri);
    await_listener_closed();
  } catch (const zmq::error_t&) {
    // Not bound as we thought: the new listener takes over all the same.
  }
  try {
    fresh.bind(bound_uri_);  // the address is not resolved: the listener takes `fd` as it is
  } catch (const zmq::error_t& e) {
    ::close(fd);
    close_monitor(fresh, fresh_monitor);
    // The old ROUTER, with its old key, listens again: nothing changed.
    const int again = ::fcntl(listen_fd_, F_DUPFD_CLOEXEC, 0);
    try {
      router_.set(zmq::sockopt::use_fd, again);
      router_.bind(bound_uri_);
    } catch (const zmq::error_t&) {
      ::close(again);
    }
    return Error{std::string("cannot replace the cluster listener: ") + e.what(), ErrorKind::kIo};
  }
  // It closes with every connection it accepted: their peers redial.
  unwatch(router_monitor_);
  unwatch(router_);
  close_monitor(router_, router_monitor_);
  router_.close();
  router_ = std::move(fresh);
  router_monitor_ = std::move(fresh_monitor);
  recheck_router_ = true;  // what it received before it was watched
  try {
    watch(router_, router_watch_);
    watch(router_monitor_, router_monitor_watch_);
  } catch (const zmq::error_t&) {
    // Not on this system's epoll limits in practice; the next poll still
    // reads the listener once (recheck_router_).
  }
  listener_replaced_at_ = Clock::now();
  return ok_status();
}

Status Transport::set_keys(const CurveKey& primary, std::vector<std::string> installed) {
  if (!key_) return Error{"this node runs in plain mode", ErrorKind::kUnavailable};
  if (installed.empty() || installed.front() != primary.public_z85) {
    installed.insert(installed.begin(), primary.public_z85);
  }
  const bool new_primary = !(primary == *key_);
  auto accepted = [&](const std::string& k) {
    return std::find(installed.begin(), installed.end(), k) != installed.end();
  };
  const bool dropped =
      std::any_of(keys_.begin(), keys_.end(), [&](const std::string& k) { return !accepted(k); });
  const CurveKey old_key = *key_;
  key_ = primary;
  if ((new_primary || dropped) && router_) {
    if (auto status = replace_listener(); !status) {
      key_ = old_key;
      return status;
    }
  }
  keys_ = installed;  // a copy: `accepted` reads `installed`
  std::erase_if(peer_keys_, [&](const auto& kv) { return !accepted(kv.second.server_key); });
  // Our DEALERs present the primary: all of them change with it. Otherwise
  // only those that expect a listener key no longer installed.
  std::vector<Endpoint> stale;
  for (const auto& [endpoint, d] : dealers_) {
    if (new_primary || !accepted(d->server_key)) stale.push_back(endpoint);
  }
  for (const Endpoint& endpoint : stale) replace_dealer(endpoint, first_server_key(endpoint));
  return ok_status();
}

std::string Transport::first_server_key(const Endpoint& to) const {
  if (!key_) return {};
  if (auto it = peer_keys_.find(to); it != peer_keys_.end()) return it->second.server_key;
  return key_->public_z85;
}

std::unique_ptr<Transport::Dealer> Transport::open_dealer(const Endpoint& to,
                                                          const std::string& server_key) {
  try {
    zmq::socket_t s(context_, zmq::socket_type::dealer);
    common_options(s, to.host);
    if (key_) make_curve_client(s, *key_, server_key);
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
    auto d = std::make_unique<Dealer>(Dealer{
        to, std::move(s), std::move(*monitor), LinkWatch(kConnectTimeout), server_key, std::nullopt,
        std::string(), Watch{Role::kDealer, nullptr}, Watch{Role::kDealerMonitor, nullptr}});
    d->on_socket.dealer = d.get();
    d->on_monitor.dealer = d.get();
    try {
      watch(d->socket, d->on_socket);
      watch(d->monitor, d->on_monitor);
    } catch (const zmq::error_t&) {
      close_dealer(*d);
      return nullptr;
    }
    return d;
  } catch (const zmq::error_t&) {
    return nullptr;  // e.g. a name that does not resolve: the membership retries
  }
}

// Closes the DEALER to `to` (no link event: its monitor goes first) and
// opens a new one that expects `server_key`; none if that fails (the next
// send tries again).
void Transport::replace_dealer(const Endpoint& to, const std::string& server_key) {
  auto it = dealers_.find(to);
  if (it == dealers_.end()) return;
  close_dealer(*it->second);
  if (auto fresh = open_dealer(to, server_key)) {
    it->second = std::move(fresh);
    recheck_dealers_.insert(to);  // see read_rechecks
  } else {
    dealers_.erase(it);
  }
}

void Transport::replace_due_dealers(TimePoint now) {
  std::vector<std::pair<Endpoint, std::string>> due;
  for (const Endpoint& endpoint : replacing_) {
    const Dealer& d = *dealers_.at(endpoint);
    if (now >= *d.replace_at) due.emplace_back(endpoint, d.replace_key);
  }
  for (const auto& [endpoint, key] : due) replace_dealer(endpoint, key);
}

TimePoint Transport::next_due() const {
  if (!carried_.empty()) return TimePoint::min();
  TimePoint next = TimePoint::max();
  for (const Endpoint& endpoint : replacing_)
    next = std::min(next, *dealers_.at(endpoint)->replace_at);
  return next;
}

Transport::Dealer* Transport::dealer_for(const Endpoint& to) {
  if (auto it = dealers_.find(to); it != dealers_.end()) {
    Dealer& d = *it->second;
    if (!d.replace_at || Clock::now() < *d.replace_at) return &d;
    replace_dealer(to, d.replace_key);
    it = dealers_.find(to);
    return it == dealers_.end() ? nullptr : it->second.get();
  }
  auto d = open_dealer(to, first_server_key(to));
  if (!d) return nullptr;
  return dealers_.emplace(to, std::move(d)).first->second.get();
}

void Transport::close_dealer(Dealer& d) {
  recheck_dealers_.erase(d.to);
  replacing_.erase(d.to);
  unwatch(d.monitor);
  unwatch(d.socket);
  close_monitor(d.socket, d.monitor);
  d.socket.set(zmq::sockopt::linger, linger_ms_);
  d.socket.close();
}

bool Transport::send(const Endpoint& to, std::string_view frame) {
  Dealer* d = dealer_for(to);
  if (d == nullptr) return false;
  recheck_dealers_.insert(to);  // see read_rechecks
  try {
    return d->socket.send(zmq::buffer(frame), zmq::send_flags::dontwait).has_value();
  } catch (const zmq::error_t&) {
    return false;
  }
}

bool Transport::reply(const std::string& routing_id, std::string_view frame) {
  recheck_router_ = true;  // see read_rechecks
  return wire::send_envelope(router_, routing_id, frame);
}

void Transport::release(const Endpoint& to) {
  peer_keys_.erase(to);
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
  // Frames a replaced listener had read: first.
  for (Inbound& in : carried_) frames.push_back(std::move(in));
  carried_.clear();
  if (extra != extra_) {
    if (extra_ != nullptr) unwatch(*extra_);
    extra_ = nullptr;
    try {
      if (extra != nullptr) watch(*extra, extra_watch_);
      extra_ = extra;
    } catch (const zmq::error_t& e) {
      errors.push_back(Error{std::string("poll: ") + e.what(), ErrorKind::kIo});
    }
  }
  last_poll_reads_ = 0;
  read_rechecks(frames, links, errors);
  // Something read already, or a queue not emptied: look, do not wait.
  const bool busy =
      !frames.empty() || !links.empty() || recheck_router_ || !recheck_dealers_.empty();
  constexpr int kMaxEvents = 256;  // more stay ready for the next call
  std::array<epoll_event, kMaxEvents> events;
  const int ready = ::epoll_wait(epoll_fd_, events.data(), kMaxEvents,
                                 busy ? 0 : static_cast<int>(timeout.count()));
  if (ready < 0) {
    if (errno != EINTR) {
      errors.push_back(Error{std::string("poll: ") + std::strerror(errno), ErrorKind::kIo});
    }
    return false;
  }
  bool extra_ready = false;
  for (int i = 0; i < ready; ++i) {
    const Watch& what = *static_cast<const Watch*>(events[static_cast<std::size_t>(i)].data.ptr);
    if (what.role == Role::kExtra) {
      extra_ready = true;  // the caller reads it
    } else {
      read_socket(what, frames, links, errors);
    }
  }
  replace_due_dealers(Clock::now());
  return extra_ready;
}

// Reads everything waiting on one socket. A DEALER's own frames are read
// before the news from its monitor: a peer's last frames come before the
// link change that says its connection closed.
void Transport::read_socket(const Watch& what, std::vector<Inbound>& frames,
                            std::vector<LinkChange>& links, std::vector<Error>& errors) {
  ++last_poll_reads_;
  switch (what.role) {
    case Role::kRouter:
      if (drain_router(frames, errors)) recheck_router_ = true;
      return;
    case Role::kRouterMonitor:
      return drain_router_monitor();
    case Role::kDealer:
    case Role::kDealerMonitor: {
      Dealer& d = *what.dealer;
      if (drain_dealer(d.to, d, frames, errors)) recheck_dealers_.insert(d.to);
      if (what.role == Role::kDealerMonitor) drain_monitor(d.to, d, links);
      return;
    }
    case Role::kExtra:
      return;
  }
}

// Sockets whose ZMQ_FD may stay quiet while something waits, read once
// without waiting: those whose queue a drain left non-empty; those we sent
// on, as a send may process the command that announced a frame; and new
// ones (with their monitors), because libzmq announces a message only to a
// reader that has found its pipe empty once, and a pipe attached outside a
// receive (an inproc connect, a command a send processed) has not.
void Transport::read_rechecks(std::vector<Inbound>& frames, std::vector<LinkChange>& links,
                              std::vector<Error>& errors) {
  if (std::exchange(recheck_router_, false)) {
    read_socket(router_watch_, frames, links, errors);
    read_socket(router_monitor_watch_, frames, links, errors);
  }
  for (const Endpoint& to : std::exchange(recheck_dealers_, {})) {
    if (auto it = dealers_.find(to); it != dealers_.end()) {
      read_socket(it->second->on_monitor, frames, links, errors);  // its socket, then its monitor
    }
  }
}

bool Transport::drain_router(std::vector<Inbound>& frames, std::vector<Error>& errors) {
  for (int budget = 0; budget < 1000; ++budget) {
    auto envelope = wire::receive_envelope(router_);
    if (!envelope) {
      errors.push_back(envelope.error());
      continue;
    }
    if (!envelope->has_value()) return false;
    frames.push_back(Inbound{Source::from_router(std::move((*envelope)->routing_id)),
                             std::move((*envelope)->body)});
  }
  return true;
}

bool Transport::drain_dealer(const Endpoint& from, Dealer& d, std::vector<Inbound>& frames,
                             std::vector<Error>& errors) {
  for (int budget = 0; budget < 100; ++budget) {
    zmq::message_t body;
    try {
      if (!d.socket.recv(body, zmq::recv_flags::dontwait)) return false;
    } catch (const zmq::error_t& e) {
      errors.push_back(Error{std::string("receive failed: ") + e.what(), ErrorKind::kIo});
      return false;
    }
    if (body.more()) {  // a DEALER peer sends one frame per message
      errors.push_back(Error{"multi-part message on a dealer", ErrorKind::kInvalid});
      zmq::message_t rest;
      while (body.more() && d.socket.recv(rest, zmq::recv_flags::dontwait)) body.swap(rest);
      continue;
    }
    frames.push_back(Inbound{Source::from_dealer(from), std::move(body)});
  }
  return true;
}

void Transport::drain_monitor(const Endpoint& from, Dealer& d, std::vector<LinkChange>& links) {
  while (auto e = read_monitor_event(d.monitor)) {
    const TimePoint now = Clock::now();
    if (is_handshake_failure(e->event)) {
      bool expected = false;
      on_dealer_handshake_failure(from, d, e->event, now, expected);
      failures_.push_back(HandshakeFailure{false, from, e->event, e->value, expected});
    } else if (e->event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED && key_) {
      peer_keys_[from] = PeerKey{d.server_key, 0};
      d.replace_at.reset();
      replacing_.erase(from);
    }
    if (auto change = d.watch.on_event(e->event, now)) links.push_back(LinkChange{from, *change});
  }
}

// What to do about a DEALER whose handshake failed. The listener's ZAP
// handler refused our key (AUTH): libzmq will not redial, so a new DEALER
// tries again a second later. Any other failure, with several keys
// installed: the listener may hold another of them (a rotation is rolling
// out), so try the next one. Twice round the ring at once, then once a
// second: a listener that was just replaced may fail one handshake with the
// right key (its old ROUTER accepted the connection before it closed). The
// first failure of a DEALER decides; it is replaced anyway. A handshake that
// succeeds meanwhile (libzmq redials by itself) cancels the replacement.
void Transport::on_dealer_handshake_failure(const Endpoint& to, Dealer& d, uint16_t event,
                                            TimePoint now, bool& expected) {
  if (d.replace_at) {
    // libzmq redialled (and failed again) before this DEALER's replacement
    // came round: the same key change explains it.
    auto peer = peer_keys_.find(to);
    expected = keys_.size() >= 2 && peer != peer_keys_.end() && peer->second.failures > 0 &&
               peer->second.failures < 2 * keys_.size();
    return;
  }
  if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
    d.replace_at = now + kRedialAfterDenial;
    d.replace_key = d.server_key;
    replacing_.insert(to);
    return;
  }
  if (keys_.size() < 2) return;  // libzmq redials by itself; no other key to try
  auto at = std::find(keys_.begin(), keys_.end(), d.server_key);
  const std::size_t index = at == keys_.end() ? keys_.size() - 1 : at - keys_.begin();
  PeerKey& peer = peer_keys_[to];
  peer.failures += 1;
  peer.server_key = keys_[(index + 1) % keys_.size()];
  expected = peer.failures < 2 * keys_.size();
  d.replace_at = expected ? now : now + kRedialAfterDenial;
  d.replace_key = peer.server_key;
  replacing_.insert(to);
}

void Transport::drain_router_monitor() {
  const bool quiet =
      listener_replaced_at_ && Clock::now() - *listener_replaced_at_ < kKeyChangeQuiet;
  while (auto e = read_monitor_event(router_monitor_)) {
    if (is_handshake_failure(e->event))
      failures_.push_back(HandshakeFailure{true, bound_, e->event, e->value, quiet});
  }
}

}  // namespace iridium::cluster
