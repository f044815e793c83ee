#include "cluster/node.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <future>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <zmq_addon.hpp>

namespace iridium::cluster {
namespace {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

std::string random_instance() {
  std::random_device device;
  std::mt19937_64 engine((static_cast<uint64_t>(device()) << 32) ^ device() ^
                         static_cast<uint64_t>(Clock::now().time_since_epoch().count()));
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(engine()));
  return text;
}

std::string endpoint(const std::string& host, uint16_t port) {
  const bool ipv6 = host.find(':') != std::string::npos;
  return "tcp://" + (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string address_text(const std::string& host, uint16_t port) {
  return host + ":" + std::to_string(port);
}

int64_t millis(Clock::duration d) { return std::chrono::duration_cast<Millis>(d).count(); }

std::string seconds_text(Millis d) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", static_cast<double>(d.count()) / 1000.0);
  return text;
}

// Settings shared by every cluster socket: bounded frames, ZMTP heartbeats
// so a half-open TCP connection (a network cut) is noticed and redialled.
void common_options(zmq::socket_t& s) {
  s.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(kMaxFrameBytes));
  s.set(zmq::sockopt::heartbeat_ivl, 500);
  s.set(zmq::sockopt::heartbeat_timeout, 2000);
  s.set(zmq::sockopt::heartbeat_ttl, 2000);
  s.set(zmq::sockopt::reconnect_ivl, 100);
  s.set(zmq::sockopt::reconnect_ivl_max, 1000);
}

}  // namespace

// ---------------------------------------------------------------------------
// The I/O thread's world. Everything here runs on that thread only.
class Node::Loop {
 public:
  Loop(zmq::context_t& context, const NodeConfig& config, std::string instance, zmq::socket_t router,
       zmq::socket_t wake, NodeAddress self)
      : context_(context), timers_(config.timers), instance_(std::move(instance)),
        router_(std::move(router)), wake_(std::move(wake)), self_(std::move(self)) {}

  // Runs until a leave task has been handled.
  void run(std::mutex& mutex, std::deque<Task>& tasks) {
    next_heartbeat_ = next_gossip_ = Clock::now();
    for (;;) {
      poll_once();
      // Run what other threads asked for.
      std::deque<Task> ready;
      {
        std::lock_guard lock(mutex);
        ready.swap(tasks);
      }
      for (Task& task : ready) task(*this);
      if (leaving_) break;
      on_timers(Clock::now());
    }
  }

  // ---- requests from other threads (run as tasks) -------------------------
  void join(const std::string& host, uint16_t port, std::shared_ptr<std::promise<Result<std::string>>> done) {
    if (const std::string* alias = member_at(host, port)) {
      done->set_value("Already in the cluster with " + *alias + " at " + address_text(host, port) + ".");
      return;
    }
    if (host == self_.host && port == self_.port) {
      done->set_value(Error{"cannot join: " + address_text(host, port) + " is this node itself"});
      return;
    }
    auto socket = dealer_to(host, port);
    if (!socket) {
      done->set_value(socket.error());
      return;
    }
    const TimePoint now = Clock::now();
    pending_.push_back(PendingJoin{host, port, std::move(*socket), now + timers_.join_timeout, now,
                                   timers_.hello_retry, std::move(done)});
  }

  void join_seed(const std::string& host, uint16_t port) {
    if (member_at(host, port) != nullptr) return;  // already joined through someone else
    auto socket = dealer_to(host, port);
    if (!socket) {
      // Unresolvable names may resolve later (containers start in any order).
      spdlog::warn("seed {}: {}; will retry", address_text(host, port), socket.message());
      retry_seeds_.emplace_back(host, port, Clock::now() + timers_.hello_retry * 4);
      return;
    }
    pending_.push_back(PendingJoin{host, port, std::move(*socket), std::nullopt, Clock::now(),
                                   timers_.hello_retry, nullptr});
  }

  Snapshot snapshot() const {
    Snapshot s;
    s.self = self_;
    s.instance = instance_;
    s.started = true;
    s.dropped_frames = dropped_frames_;
    const TimePoint now = Clock::now();
    for (const auto& [alias, peer] : peers_) {
      if (peer.state == State::kJoining) continue;
      s.members.push_back(MemberInfo{alias, peer.address.host, peer.address.port,
                                     peer.state == State::kAlive ? "alive" : "suspect",
                                     millis(now - peer.last_heard)});
    }
    return s;
  }

  void leave() {
    Message m = message(MessageType::kLeave);
    for (auto& [alias, peer] : peers_) {
      if (peer.state != State::kJoining) send(peer.dealer, m);
    }
    spdlog::info("left the cluster ({} peers told)", peers_.size());
    for (auto& [alias, peer] : peers_) peer.dealer.set(zmq::sockopt::linger, 300);
    leaving_ = true;
  }

 private:
  enum class State { kJoining, kAlive, kSuspect };

  struct Peer {
    NodeAddress address;
    std::string instance;  // empty until heard from directly
    State state = State::kJoining;
    TimePoint added;
    TimePoint last_heard;
    zmq::socket_t dealer;
  };
  struct Lost {
    NodeAddress address;
    TimePoint since;
    TimePoint next_probe;
    zmq::socket_t dealer;
  };
  struct PendingJoin {
    std::string host;
    uint16_t port;
    zmq::socket_t dealer;
    std::optional<TimePoint> deadline;  // none: a --join seed, retried for ever
    TimePoint next_send;
    Millis backoff;
    std::shared_ptr<std::promise<Result<std::string>>> done;  // null for seeds
  };

  // A listed member at this address; a peer we are still contacting there is
  // dropped instead, so that only one DEALER of ours (one routing id) ever
  // talks to that address: ROUTER_HANDOVER would send replies to the newest.
  const std::string* member_at(const std::string& host, uint16_t port) {
    for (auto it = peers_.begin(); it != peers_.end(); ++it) {
      if (it->second.address.host != host || it->second.address.port != port) continue;
      if (it->second.state != State::kJoining) return &it->first;
      peers_.erase(it);
      return nullptr;
    }
    return nullptr;
  }

  bool joining_at(const std::string& host, uint16_t port) const {
    return std::any_of(pending_.begin(), pending_.end(),
                       [&](const PendingJoin& p) { return p.host == host && p.port == port; });
  }

  // ---- sockets ------------------------------------------------------------
  Result<zmq::socket_t> dealer_to(const std::string& host, uint16_t port) {
    try {
      zmq::socket_t s(context_, zmq::socket_type::dealer);
      common_options(s);
      s.set(zmq::sockopt::routing_id, self_.alias);
      s.set(zmq::sockopt::linger, 0);
      s.set(zmq::sockopt::immediate, 1);  // never queue for a peer we are not connected to
      s.set(zmq::sockopt::sndhwm, 100);
      if (host.find(':') != std::string::npos) s.set(zmq::sockopt::ipv6, 1);
      s.connect(endpoint(host, port));
      return s;
    } catch (const zmq::error_t& e) {
      return Error{"cannot connect to " + address_text(host, port) + ": " + e.what()};
    }
  }

  Message message(MessageType type) const {
    Message m;
    m.type = type;
    m.sender = self_;
    m.instance = instance_;
    return m;
  }

  // Best effort: a frame that cannot go now is dropped; the protocol resends.
  static bool send(zmq::socket_t& socket, const Message& m) {
    const std::string frame = encode(m);
    try {
      return socket.send(zmq::buffer(frame), zmq::send_flags::dontwait).has_value();
    } catch (const zmq::error_t&) {
      return false;
    }
  }

  void reply(const std::string& routing_id, const Message& m) {
    const std::string frame = encode(m);
    try {
      (void)router_.send(zmq::buffer(routing_id), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
      (void)router_.send(zmq::buffer(frame), zmq::send_flags::dontwait);
    } catch (const zmq::error_t&) {
    }
  }

  std::vector<NodeAddress> known_nodes(const std::string& except) const {
    std::vector<NodeAddress> nodes;
    for (const auto& [alias, peer] : peers_) {
      if (peer.state != State::kJoining && alias != except) nodes.push_back(peer.address);
    }
    return nodes;
  }

  // ---- the poll loop --------------------------------------------------------
  void poll_once() {
    // Who each poll item is: the ROUTER, the wake socket, or a DEALER found
    // by (kind, key).
    enum class Kind { kRouter, kWake, kPeer, kLost, kPending };
    std::vector<zmq::pollitem_t> items;
    std::vector<std::pair<Kind, std::string>> owners;
    auto add = [&](zmq::socket_t& s, Kind kind, std::string key) {
      items.push_back({s.handle(), 0, ZMQ_POLLIN, 0});
      owners.emplace_back(kind, std::move(key));
    };
    add(router_, Kind::kRouter, "");
    add(wake_, Kind::kWake, "");
    for (auto& [alias, peer] : peers_) add(peer.dealer, Kind::kPeer, alias);
    for (auto& [alias, lost] : lost_) {
      if (lost.dealer) add(lost.dealer, Kind::kLost, alias);
    }
    for (std::size_t i = 0; i < pending_.size(); ++i) add(pending_[i].dealer, Kind::kPending, std::to_string(i));

    try {
      zmq::poll(items, Millis(50));
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) spdlog::error("cluster poll: {}", e.what());
      return;
    }
    // Collect first: handlers may add or remove sockets.
    std::vector<std::pair<Kind, std::string>> readable;
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (items[i].revents & ZMQ_POLLIN) readable.push_back(owners[i]);
    }
    std::vector<std::size_t> finished_pending;
    for (const auto& [kind, key] : readable) {
      switch (kind) {
        case Kind::kRouter: drain_router(); break;
        case Kind::kWake: drain(wake_); break;
        case Kind::kPeer:
          if (auto it = peers_.find(key); it != peers_.end()) drain_dealer(it->second.dealer, nullptr);
          break;
        case Kind::kLost:
          if (auto it = lost_.find(key); it != lost_.end()) drain_dealer(it->second.dealer, nullptr);
          break;
        case Kind::kPending: {
          const std::size_t index = std::stoul(key);
          if (index < pending_.size() && drain_dealer(pending_[index].dealer, &pending_[index])) {
            finished_pending.push_back(index);
          }
          break;
        }
      }
    }
    std::sort(finished_pending.rbegin(), finished_pending.rend());
    for (std::size_t index : finished_pending) pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(index));
  }

  static void drain(zmq::socket_t& socket) {
    zmq::message_t m;
    while (socket.recv(m, zmq::recv_flags::dontwait)) {
    }
  }

  void drop_frame(const std::string& why) {
    ++dropped_frames_;
    // Loud for the first few, quiet after that: a flood must not flood the log.
    if (dropped_frames_ <= 10 || dropped_frames_ % 1000 == 0) {
      spdlog::warn("dropped a bad cluster frame ({} so far): {}", dropped_frames_, why);
    } else {
      spdlog::debug("dropped a bad cluster frame: {}", why);
    }
  }

  void drain_router() {
    for (int budget = 0; budget < 1000; ++budget) {
      std::vector<zmq::message_t> frames;
      std::optional<std::size_t> got;
      try {
        got = zmq::recv_multipart(router_, std::back_inserter(frames), zmq::recv_flags::dontwait);
      } catch (const zmq::error_t& e) {
        drop_frame(e.what());
        continue;
      }
      if (!got) return;
      if (frames.size() != 2) {
        drop_frame("expected one frame per message, got " + std::to_string(frames.size() - 1));
        continue;
      }
      const std::string routing_id = frames[0].to_string();
      auto decoded = decode(std::span(static_cast<const uint8_t*>(frames[1].data()), frames[1].size()));
      if (!decoded) {
        drop_frame(decoded.message());
        continue;
      }
      if (decoded->sender.alias != routing_id) {
        drop_frame("routing id does not match the sender's alias '" + decoded->sender.alias + "'");
        continue;
      }
      spdlog::trace("<- {} from {}", message_type_name(decoded->type), decoded->sender.alias);
      on_router_message(routing_id, *decoded);
    }
  }

  // Returns true when a pending join finished (answered).
  bool drain_dealer(zmq::socket_t& socket, PendingJoin* pending) {
    for (int budget = 0; budget < 100; ++budget) {
      zmq::message_t frame;
      std::optional<std::size_t> got;
      try {
        got = socket.recv(frame, zmq::recv_flags::dontwait);
      } catch (const zmq::error_t& e) {
        drop_frame(e.what());
        return false;
      }
      if (!got) return false;
      auto decoded = decode(std::span(static_cast<const uint8_t*>(frame.data()), frame.size()));
      if (!decoded) {
        drop_frame(decoded.message());
        continue;
      }
      spdlog::trace("<- {} from {}", message_type_name(decoded->type), decoded->sender.alias);
      if (decoded->type == MessageType::kHelloAck) {
        on_hello_ack(*decoded, socket, pending);
        return pending != nullptr;
      }
      if (decoded->type == MessageType::kHelloNack) {
        on_hello_nack(*decoded, pending);
        return pending != nullptr;
      }
      drop_frame("unexpected " + std::string(message_type_name(decoded->type)) + " on a dealer");
    }
    return false;
  }

  // ---- membership -----------------------------------------------------------
  enum class Admission { kSelf, kDuplicate, kNew, kKnown, kRestarted };

  Admission admit(const NodeAddress& who, const std::string& instance, std::string& reason) const {
    if (who.alias == self_.alias) {
      if (instance == instance_) return Admission::kSelf;
      reason = "alias '" + who.alias + "' is already used by a live node at " + address_text(self_.host, self_.port);
      return Admission::kDuplicate;
    }
    auto it = peers_.find(who.alias);
    if (it == peers_.end()) return Admission::kNew;
    const Peer& p = it->second;
    if (p.instance == instance) return Admission::kKnown;
    if (p.instance.empty()) return Admission::kKnown;  // learned second-hand; now heard directly
    if (p.address.host == who.host && p.address.port == who.port) return Admission::kRestarted;
    if (Clock::now() - p.last_heard < timers_.suspect_after) {
      reason = "alias '" + who.alias + "' is already used by a live node at " +
               address_text(p.address.host, p.address.port);
      return Admission::kDuplicate;
    }
    return Admission::kRestarted;
  }

  // Records a peer heard from directly, opening a DEALER to it when needed.
  // `socket`, when given, is a connected DEALER to reuse.
  void add_alive(const NodeAddress& who, const std::string& instance, Admission admission,
                 zmq::socket_t* socket = nullptr) {
    const TimePoint now = Clock::now();
    auto it = peers_.find(who.alias);
    const bool replace = admission == Admission::kRestarted ||
                         (it != peers_.end() && (it->second.address.host != who.host ||
                                                 it->second.address.port != who.port));
    if (it != peers_.end() && !replace) {
      Peer& p = it->second;
      if (p.state != State::kAlive) {
        if (p.state == State::kJoining) spdlog::info("{} joined ({})", who.alias, address_text(who.host, who.port));
        else spdlog::info("{} is alive again", who.alias);
      }
      p.instance = instance;
      p.state = State::kAlive;
      p.last_heard = now;
      return;
    }
    zmq::socket_t dealer;
    if (socket != nullptr) {
      dealer = std::move(*socket);
    } else {
      auto made = dealer_to(who.host, who.port);
      if (!made) {
        spdlog::warn("cannot reach {}: {}", who.alias, made.message());
        return;
      }
      dealer = std::move(*made);
    }
    if (it != peers_.end()) {
      spdlog::info("{} restarted ({} -> {})", who.alias, it->second.instance, instance);
      peers_.erase(it);
    } else {
      spdlog::info("{} joined ({})", who.alias, address_text(who.host, who.port));
    }
    lost_.erase(who.alias);
    peers_.emplace(who.alias, Peer{who, instance, State::kAlive, now, now, std::move(dealer)});
  }

  // A node we heard of second-hand: introduce ourselves with a join; it is
  // listed only once it answers directly.
  void contact(const NodeAddress& who) {
    if (who.alias == self_.alias || peers_.contains(who.alias) || joining_at(who.host, who.port)) return;
    auto dealer = dealer_to(who.host, who.port);
    if (!dealer) {
      spdlog::warn("cannot contact {}: {}", who.alias, dealer.message());
      return;
    }
    lost_.erase(who.alias);
    const TimePoint now = Clock::now();
    auto [it, inserted] = peers_.emplace(who.alias, Peer{who, "", State::kJoining, now, now, std::move(*dealer)});
    send(it->second.dealer, message(MessageType::kJoin));
    spdlog::debug("contacting {} at {}", who.alias, address_text(who.host, who.port));
  }

  void on_router_message(const std::string& routing_id, const Message& m) {
    std::string reason;
    switch (m.type) {
      case MessageType::kHello: {
        const Admission admission = admit(m.sender, m.instance, reason);
        if (admission == Admission::kSelf) {
          Message nack = message(MessageType::kHelloNack);
          nack.reason = "self";
          reply(routing_id, nack);
          return;
        }
        if (admission == Admission::kDuplicate) {
          spdlog::warn("refused hello from {}: {}", address_text(m.sender.host, m.sender.port), reason);
          Message nack = message(MessageType::kHelloNack);
          nack.reason = reason;
          reply(routing_id, nack);
          return;
        }
        add_alive(m.sender, m.instance, admission);
        Message ack = message(MessageType::kHelloAck);
        ack.nodes = known_nodes(m.sender.alias);
        reply(routing_id, ack);
        return;
      }
      case MessageType::kJoin: {
        const Admission admission = admit(m.sender, m.instance, reason);
        if (admission == Admission::kSelf) return;
        if (admission == Admission::kDuplicate) {
          spdlog::warn("ignored join from {}: {}", address_text(m.sender.host, m.sender.port), reason);
          return;
        }
        add_alive(m.sender, m.instance, admission);
        return;
      }
      case MessageType::kHeartbeat:
      case MessageType::kMembers: {
        auto it = peers_.find(m.sender.alias);
        if (it == peers_.end()) return;  // not (or no longer) a member: probes will sort it out
        Peer& p = it->second;
        if (!p.instance.empty() && p.instance != m.instance) return;  // an older incarnation
        if (p.state != State::kAlive) {
          spdlog::info("{} {} ({})", m.sender.alias, p.state == State::kJoining ? "joined" : "is alive again",
                       address_text(p.address.host, p.address.port));
        }
        p.instance = m.instance;
        p.state = State::kAlive;
        p.last_heard = Clock::now();
        if (m.type == MessageType::kMembers) {
          for (const NodeAddress& n : m.nodes) contact(n);
        }
        return;
      }
      case MessageType::kLeave: {
        auto it = peers_.find(m.sender.alias);
        if (it == peers_.end() || (!it->second.instance.empty() && it->second.instance != m.instance)) return;
        spdlog::info("{} left", m.sender.alias);
        peers_.erase(it);
        return;
      }
      case MessageType::kHelloAck:
      case MessageType::kHelloNack:
        drop_frame(std::string(message_type_name(m.type)) + " sent to the listener");
        return;
    }
  }

  void on_hello_ack(const Message& m, zmq::socket_t& socket, PendingJoin* pending) {
    std::string reason;
    const Admission admission = admit(m.sender, m.instance, reason);
    if (admission == Admission::kDuplicate || admission == Admission::kSelf) {
      if (pending && pending->done) pending->done->set_value(Error{"cannot join: " + (admission == Admission::kSelf ? "that address is this node itself" : reason)});
      return;
    }
    const bool reuse = pending != nullptr && !peers_.contains(m.sender.alias);
    add_alive(m.sender, m.instance, admission, reuse ? &socket : nullptr);
    if (auto it = lost_.find(m.sender.alias); it != lost_.end()) lost_.erase(it);
    for (const NodeAddress& n : m.nodes) contact(n);
    if (pending != nullptr) {
      const std::string text = "Joined the cluster via " + m.sender.alias + " at " +
                               address_text(pending->host, pending->port) + ".";
      spdlog::info("{}", text);
      if (pending->done) pending->done->set_value(text);
    }
  }

  void on_hello_nack(const Message& m, PendingJoin* pending) {
    const std::string why = m.reason == "self" ? "that address is this node itself" : m.reason;
    if (pending == nullptr) {
      spdlog::warn("{} refused us: {}", m.sender.alias, why);
      lost_.erase(m.sender.alias);
      return;
    }
    const std::string text = "cannot join the cluster at " + address_text(pending->host, pending->port) + ": " + why;
    spdlog::error("{}", text);
    if (pending->done) pending->done->set_value(Error{text});
  }

  // ---- timers -----------------------------------------------------------------
  void on_timers(TimePoint now) {
    if (now >= next_heartbeat_) {
      next_heartbeat_ = now + timers_.heartbeat;
      const Message beat = message(MessageType::kHeartbeat);
      const Message join = message(MessageType::kJoin);
      for (auto& [alias, peer] : peers_) send(peer.dealer, peer.state == State::kJoining ? join : beat);
      detect_failures(now);
    }
    if (now >= next_gossip_) {
      next_gossip_ = now + timers_.gossip;
      for (auto& [alias, peer] : peers_) {
        if (peer.state == State::kJoining) continue;
        Message members = message(MessageType::kMembers);
        members.nodes = known_nodes(alias);
        send(peer.dealer, members);
      }
    }
    probe_lost(now);
    retry_pending(now);
  }

  void detect_failures(TimePoint now) {
    for (auto it = peers_.begin(); it != peers_.end();) {
      Peer& p = it->second;
      const auto silence = now - (p.state == State::kJoining ? p.added : p.last_heard);
      if (silence > (p.state == State::kJoining ? timers_.dead_after * 2 : timers_.dead_after)) {
        if (p.state == State::kJoining) {
          spdlog::debug("{} never answered our join", it->first);
        } else {
          spdlog::info("{} is dead (silent for {} ms)", it->first, millis(silence));
        }
        lost_[it->first] = Lost{p.address, now, now + timers_.probe, zmq::socket_t()};
        it = peers_.erase(it);
        continue;
      }
      if (p.state == State::kAlive && silence > timers_.suspect_after) {
        spdlog::debug("{} is suspect (silent for {} ms)", it->first, millis(silence));
        p.state = State::kSuspect;
      }
      ++it;
    }
  }

  void probe_lost(TimePoint now) {
    for (auto it = lost_.begin(); it != lost_.end();) {
      Lost& l = it->second;
      if (now - l.since > timers_.lost_ttl) {
        spdlog::info("forgetting {}: unreachable for {} s", it->first, millis(now - l.since) / 1000);
        it = lost_.erase(it);
        continue;
      }
      if (joining_at(l.address.host, l.address.port)) {
        if (l.dealer) l.dealer.close();  // one DEALER per address: the join's
      } else if (now >= l.next_probe) {
        l.next_probe = now + timers_.probe;
        if (!l.dealer) {
          auto dealer = dealer_to(l.address.host, l.address.port);
          if (dealer) l.dealer = std::move(*dealer);
        }
        if (l.dealer) send(l.dealer, message(MessageType::kHello));
      }
      ++it;
    }
  }

  void retry_pending(TimePoint now) {
    for (auto it = pending_.begin(); it != pending_.end();) {
      PendingJoin& p = *it;
      if (p.deadline && now >= *p.deadline) {
        const std::string text = "cannot join: no answer from " + address_text(p.host, p.port) + " within " +
                                 seconds_text(timers_.join_timeout) + " s";
        if (p.done) p.done->set_value(Error{text});
        it = pending_.erase(it);
        continue;
      }
      if (now >= p.next_send) {
        send(p.dealer, message(MessageType::kHello));
        p.next_send = now + p.backoff;
        if (!p.deadline) {
          p.backoff = std::min(p.backoff * 2, timers_.seed_backoff_max);
          spdlog::debug("saying hello to seed {}", address_text(p.host, p.port));
        }
      }
      ++it;
    }
    for (auto it = retry_seeds_.begin(); it != retry_seeds_.end();) {
      if (now >= std::get<2>(*it)) {
        auto [host, port, when] = *it;
        it = retry_seeds_.erase(it);
        join_seed(host, port);
      } else {
        ++it;
      }
    }
  }

  zmq::context_t& context_;
  Timers timers_;
  std::string instance_;
  zmq::socket_t router_;
  zmq::socket_t wake_;
  NodeAddress self_;
  std::map<std::string, Peer> peers_;
  std::map<std::string, Lost> lost_;
  std::vector<PendingJoin> pending_;
  std::vector<std::tuple<std::string, uint16_t, TimePoint>> retry_seeds_;
  TimePoint next_heartbeat_;
  TimePoint next_gossip_;
  uint64_t dropped_frames_ = 0;
  bool leaving_ = false;
};

// ---------------------------------------------------------------------------
// The public face: other threads.

Node::Node(zmq::context_t& context, NodeConfig config)
    : context_(context), config_(std::move(config)), instance_(random_instance()) {}

Node::~Node() { leave_and_stop(); }

bool Node::started() const {
  std::lock_guard lock(mutex_);
  return loop_ != nullptr && !stopped_;
}

Result<std::string> Node::start() {
  std::lock_guard lock(mutex_);
  if (stopped_) return Error{"the cluster node has shut down"};
  std::string advertise = config_.advertise_host;
  if (advertise.empty()) {
    advertise = config_.bind_host;
    if (advertise == "0.0.0.0" || advertise == "*" || advertise == "::") {
      char name[256] = {};
      gethostname(name, sizeof name - 1);
      advertise = name;
    }
  }
  if (loop_ != nullptr) {
    return "The cluster listener is already running as " + config_.alias + ".";
  }
  zmq::socket_t router(context_, zmq::socket_type::router);
  common_options(router);
  router.set(zmq::sockopt::router_handover, 1);  // a restarted peer takes its alias back at once
  router.set(zmq::sockopt::linger, 0);
  router.set(zmq::sockopt::rcvhwm, 10000);
  if (config_.bind_host.find(':') != std::string::npos) router.set(zmq::sockopt::ipv6, 1);
  uint16_t port = config_.bind_port;
  try {
    router.bind(endpoint(config_.bind_host, port));
  } catch (const zmq::error_t& e) {
    if (!(e.num() == EADDRINUSE && config_.port_fallback)) {
      return Error{"cannot listen for the cluster on " + address_text(config_.bind_host, port) + ": " + e.what()};
    }
    try {
      const std::string any = endpoint(config_.bind_host, 0);
      router.bind(any.substr(0, any.rfind(':')) + ":*");  // the system picks a free port
    } catch (const zmq::error_t& e2) {
      return Error{"cannot listen for the cluster on " + config_.bind_host + ": " + e2.what()};
    }
    const std::string last = router.get(zmq::sockopt::last_endpoint);
    const uint16_t chosen = static_cast<uint16_t>(std::stoi(last.substr(last.rfind(':') + 1)));
    spdlog::info("port {} is in use; listening on {} instead", port, chosen);
    port = chosen;
  }
  zmq::socket_t wake(context_, zmq::socket_type::pull);
  wake_endpoint_ = "inproc://iridium-cluster-" + instance_;
  wake.bind(wake_endpoint_);
  NodeAddress self{config_.alias, advertise, port};
  loop_ = std::make_unique<Loop>(context_, config_, instance_, std::move(router), std::move(wake), self);
  thread_ = std::thread([this] { loop_->run(mutex_, tasks_); });
  return "Started the cluster listener on " + address_text(config_.bind_host, port) + " as " + config_.alias +
         " (reachable at " + address_text(advertise, port) + ").";
}

void Node::submit(Task task) {
  {
    std::lock_guard lock(mutex_);
    if (loop_ == nullptr || stopped_) return;
    tasks_.push_back(std::move(task));
  }
  try {
    zmq::socket_t push(context_, zmq::socket_type::push);
    push.set(zmq::sockopt::linger, 1000);
    push.connect(wake_endpoint_);
    (void)push.send(zmq::str_buffer("!"), zmq::send_flags::dontwait);
  } catch (const zmq::error_t&) {
    // The loop still sees the task on its next poll timeout.
  }
}

Result<std::string> Node::join(const std::string& host, uint16_t port) {
  auto started_text = start();
  if (!started_text) return started_text;
  auto done = std::make_shared<std::promise<Result<std::string>>>();
  auto future = done->get_future();
  submit([host, port, done](Loop& loop) { loop.join(host, port, done); });
  const auto limit = config_.timers.join_timeout + Millis(2000);
  if (future.wait_for(limit) != std::future_status::ready) {
    return Error{"cannot join: the cluster thread did not answer"};
  }
  return future.get();
}

void Node::join_in_background(std::vector<std::pair<std::string, uint16_t>> seeds) {
  submit([seeds = std::move(seeds)](Loop& loop) {
    for (const auto& [host, port] : seeds) loop.join_seed(host, port);
  });
}

Snapshot Node::snapshot() {
  auto done = std::make_shared<std::promise<Snapshot>>();
  auto future = done->get_future();
  {
    std::lock_guard lock(mutex_);
    if (loop_ == nullptr || stopped_) {
      Snapshot s;
      s.self = NodeAddress{config_.alias, config_.advertise_host.empty() ? config_.bind_host : config_.advertise_host,
                           config_.bind_port};
      s.instance = instance_;
      return s;
    }
  }
  submit([done](Loop& loop) { done->set_value(loop.snapshot()); });
  if (future.wait_for(Millis(2000)) != std::future_status::ready) return Snapshot{};
  return future.get();
}

void Node::leave_and_stop() {
  {
    std::lock_guard lock(mutex_);
    if (loop_ == nullptr || stopped_) {
      stopped_ = true;
      return;
    }
  }
  submit([](Loop& loop) { loop.leave(); });
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mutex_);
  stopped_ = true;
  loop_.reset();
}

}  // namespace iridium::cluster
