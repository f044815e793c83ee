#include "sim/simulation.h"

#include <algorithm>
#include <cstdio>

namespace iridium::sim {

using cluster::Action;
using cluster::EventKind;
using cluster::LinkEvent;
using cluster::Membership;
using cluster::Message;
using cluster::NodeAddress;
using cluster::Source;

namespace {
constexpr Millis kConnectTimeout{1000};  // ZMQ_CONNECT_TIMEOUT in the transport
// The kernel closes a link whose data goes unacknowledged this long
// (TCP_USER_TIMEOUT, src/cluster/transport.cpp): a cut one. A stopped peer's
// kernel still acknowledges, so its links stay up and frames wait for it.
constexpr Millis kUnackedTimeout{3000};
// A member dropped this soon after it started or resumed is not a false
// death: the others may still be deciding about its silence.
constexpr Millis kResumeGrace{2000};
constexpr Millis kReconnectMin{10};
constexpr Millis kReconnectMax{500};

}  // namespace

struct Simulation::Process {
  int host = 0;
  uint16_t port = 0;
  std::string instance;
  int incarnation = 0;
  std::unique_ptr<Membership> membership;
  bool running = false;
  bool paused = false;
  TimePoint woke_at;            // started or resumed
  std::vector<Delivery> inbox;  // frames that arrived while paused
  std::vector<NodeAddress> remembered;
  bool adopted = false;  // this instance was started by start_adopted()
};

struct Simulation::Link {
  enum class State { kConnecting, kUp, kWaiting };
  State state = State::kConnecting;
  uint64_t serial = 0;  // changes with every state change: older scheduled items are ignored
  int target = -1;
  std::string target_instance;
  std::string routing_id;
  TimePoint last_delivery{};
  Millis backoff = kReconnectMin;
  int failing_handshakes = 0;  // after a key change: handshakes that fail, each redialled at once
};

Simulation::Simulation(Options options)
    : options_(std::move(options)),
      random_(options_.seed),
      now_(TimePoint{} + std::chrono::hours(1)) {}

Simulation::~Simulation() = default;

// ---------------------------------------------------------------------------
// Helpers

void Simulation::note(const std::string& text) const {
  if (!options_.trace) return;
  const double t =
      std::chrono::duration<double>(now_ - (TimePoint{} + std::chrono::hours(1))).count();
  std::printf("%9.4f %s\n", t, text.c_str());
}

Millis Simulation::latency() {
  std::uniform_int_distribution<int64_t> us(
      options_.latency_min.count() * 1000,
      std::max(options_.latency_min.count(), options_.latency_max.count()) * 1000);
  return std::chrono::duration_cast<Millis>(std::chrono::microseconds(us(random_)));
}

std::string Simulation::number(int host) const {
  std::string digits = std::to_string(host);
  const auto width = static_cast<std::size_t>(options_.name_digits);
  if (digits.size() < width) digits.insert(0, width - digits.size(), '0');
  return digits;
}

bool Simulation::chance(double p) {
  if (p <= 0) return false;
  return std::uniform_real_distribution<double>(0, 1)(random_) < p;
}

bool Simulation::path_ok(int a, int b) const {
  return !blocked_.contains({a, b}) && !blocked_.contains({b, a});
}

int Simulation::host_of(const Endpoint& e) const {
  if (e.host.size() < 2 || e.host[0] != 'h') return -1;
  try {
    return std::stoi(e.host.substr(1));
  } catch (...) {
    return -1;
  }
}

Simulation::Process* Simulation::process_at(const Endpoint& e) {
  auto it = processes_.find(host_of(e));
  if (it == processes_.end() || !it->second->running || it->second->port != e.port) return nullptr;
  return it->second.get();
}

Endpoint Simulation::endpoint(int host) const {
  auto it = processes_.find(host);
  return Endpoint{host_name(host), it == processes_.end() ? uint16_t{2254} : it->second->port};
}

std::string Simulation::instance(int host) const {
  return running(host) ? processes_.at(host)->instance : std::string();
}

bool Simulation::running(int host) const {
  auto it = processes_.find(host);
  return it != processes_.end() && it->second->running;
}

bool Simulation::paused(int host) const {
  return running(host) && processes_.at(host)->paused;
}

void Simulation::schedule(Item item) {
  item.order = ++order_;
  queue_.push(std::move(item));
}

TimePoint Simulation::last_resume_or_start(int host) const {
  auto it = processes_.find(host);
  return it == processes_.end() ? TimePoint{} : it->second->woke_at;
}

bool Simulation::count(const Message& m) {
  ++traffic_.frames;
  if (!m.nodes.empty()) {  // lists are checked against the frame limit, always
    const std::size_t size = cluster::encode(m).size();
    ++traffic_.list_frames;
    traffic_.largest_list_frame = std::max(traffic_.largest_list_frame, size);
    if (options_.count_bytes) traffic_.bytes += size;
    if (size <= cluster::kMaxFrameBytes) return true;
    violations_.push_back(std::string(cluster::message_type_name(m.type)) + " of " +
                          std::to_string(size) + " bytes from " + m.sender.alias +
                          " is over the frame limit");
    return false;  // ZMQ_MAXMSGSIZE: the receiver drops the connection's frame
  }
  if (!options_.count_bytes) return true;
  if (!m.updates.empty()) {
    traffic_.bytes += cluster::encode(m).size();
    return true;
  }
  // Same type and sender, nothing piggybacked: the same size but for a few
  // bytes of seq and incarnation.
  auto [it, fresh] = sizes_.try_emplace({static_cast<int>(m.type), m.sender.alias}, 0);
  if (fresh) it->second = cluster::encode(m).size();
  traffic_.bytes += it->second;
  return true;
}

// ---------------------------------------------------------------------------
// Processes

void Simulation::start(int host, uint16_t port, std::vector<Endpoint> seeds) {
  auto& slot = processes_[host];
  if (!slot) slot = std::make_unique<Process>();
  Process& p = *slot;
  if (p.running) return;
  p.host = host;
  p.port = port;
  p.instance = host_name(host) + "i" + std::to_string(++p.incarnation);
  p.running = true;
  p.paused = false;
  p.woke_at = now_;
  p.inbox.clear();
  cluster::MembershipConfig config{NodeAddress{alias(host), host_name(host), port},
                                   p.instance,
                                   options_.timers,
                                   options_.seed * 1000003 + static_cast<uint64_t>(host) * 7919 +
                                       static_cast<uint64_t>(p.incarnation),
                                   std::string(cluster::kDefaultClusterName),
                                   names_};
  p.membership = std::make_unique<Membership>(config, now_);
  note("start " + alias(host) + " at " + endpoint(host).text() + " as " + p.instance);
  p.membership->join_seeds(seeds, p.remembered, now_);
  flush(host);
  std::uniform_int_distribution<int64_t> phase(0, options_.tick_every.count() * 1000);
  schedule(
      Item{now_ + std::chrono::microseconds(phase(random_)), 0, Kind::kTick, host, p.instance, {}});
}

void Simulation::start_adopted(int n) {
  std::vector<std::pair<NodeAddress, std::string>> everyone;
  for (int host = 0; host < n; ++host) {
    start(host, 2254, {});
    everyone.emplace_back(NodeAddress{alias(host), endpoint(host).host, 2254}, instance(host));
  }
  std::sort(everyone.begin(), everyone.end(),
            [](const auto& a, const auto& b) { return a.first.alias < b.first.alias; });
  for (int host = 0; host < n; ++host) {
    processes_.at(host)->adopted = true;
    processes_.at(host)->membership->adopt_members(everyone, now_);
  }
}

void Simulation::crash(int host) {
  if (!running(host)) return;
  Process& p = *processes_.at(host);
  note("crash " + alias(host));
  // Like the members file: the last non-empty list of known addresses.
  if (auto known = p.membership->known_addresses(); !known.empty()) p.remembered = std::move(known);
  p.running = false;
  p.paused = false;
  p.inbox.clear();
  p.membership.reset();
  // Its own DEALERs go with it; connections to its listener close (FIN/RST).
  for (auto it = links_.begin(); it != links_.end();) {
    if (it->first.first == host) {
      routing_.erase(it->second.routing_id);
      it = links_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [key, link] : links_) {
    if (link.state == Link::State::kUp && link.target == host)
      link_down(key.first, key.second, link, true);
  }
}

void Simulation::rekey(int host, bool new_primary) {
  if (!running(host)) return;
  note(std::string(new_primary ? "key change (use) on " : "key change (remove) on ") + alias(host));
  for (auto& [key, link] : links_) {
    if (key.first == host && new_primary && link.state == Link::State::kUp) {
      // Our DEALER, replaced: its monitor is closed first, so no kDown.
      routing_.erase(link.routing_id);
      link.state = Link::State::kWaiting;
      link.serial = ++serial_;
      schedule(Item{now_, 0, Kind::kAttempt, host, {}, key.second, LinkEvent::kUp, link.serial});
    } else if (key.first != host && link.state == Link::State::kUp && link.target == host) {
      // Into the replaced listener: closed, redialled; with a new key the
      // first handshake fails, and a listener just replaced may fail one
      // more (its old ROUTER accepted the connection before it closed).
      link.failing_handshakes = new_primary ? 1 + (chance(0.3) ? 1 : 0) : 0;
      link_down(key.first, key.second, link, false);
    }
  }
}

void Simulation::stop(int host) {
  if (!running(host)) return;
  note("stop (SIGTERM) " + alias(host));
  Process& p = *processes_.at(host);
  if (p.paused) resume(host);
  p.membership->leave(now_);
  flush(host);
  crash(host);
}

void Simulation::pause(int host) {
  if (!running(host) || paused(host)) return;
  note("pause " + alias(host));
  Process& p = *processes_.at(host);
  p.paused = true;
}

template <typename Which>
void Simulation::recheck_links_later(Which which) {
  for (auto& [key, link] : links_) {
    if (link.state != Link::State::kUp || !which(key.first, link)) continue;
    schedule(Item{now_ + kUnackedTimeout,
                  0,
                  Kind::kCheckLink,
                  key.first,
                  {},
                  key.second,
                  LinkEvent::kUp,
                  link.serial});
  }
}

void Simulation::resume(int host) {
  if (!paused(host)) return;
  note("resume " + alias(host));
  Process& p = *processes_.at(host);
  p.paused = false;
  p.woke_at = now_;
  std::vector<Delivery> inbox = std::move(p.inbox);
  p.inbox.clear();
  for (const Delivery& d : inbox) deliver(d);
  schedule(Item{now_, 0, Kind::kTick, host, p.instance, {}});
}

// ---------------------------------------------------------------------------
// Network

void Simulation::block(int from, int to) {
  if (!blocked_.insert({from, to}).second) return;
  note("block " + alias(from) + " -> " + alias(to));
  // A link that stays cut past the kernel's unacknowledged-data timeout is closed.
  recheck_links_later([&](int owner, const Link& link) {
    return (owner == from && link.target == to) || (owner == to && link.target == from);
  });
}

void Simulation::unblock(int from, int to) {
  if (blocked_.erase({from, to}) > 0) note("unblock " + alias(from) + " -> " + alias(to));
}

void Simulation::cut(int host) {
  for (const auto& [other, p] : processes_) {
    if (other == host) continue;
    block(host, other);
    block(other, host);
  }
}

void Simulation::heal_all() {
  note("heal all");
  blocked_.clear();
  loss_ = 0;
  duplication_ = 0;
}

void Simulation::inject(int host, const Message& m) {
  if (!running(host)) return;
  note("inject " + std::string(cluster::message_type_name(m.type)) + " as " + m.sender.alias +
       " into " + alias(host));
  deliver(Delivery{host, processes_.at(host)->instance, m, Source::from_router("rogue")});
}

bool Simulation::send_frame(int from, const Endpoint& to, const Message& m) {
  const bool fits = count(m);
  const auto key = std::make_pair(from, to);
  auto it = links_.find(key);
  if (it == links_.end()) {
    it = links_.emplace(key, Link{}).first;
    it->second.serial = ++serial_;
    if (!open_adopted_link(from, to, it->second))
      schedule(Item{now_, 0, Kind::kAttempt, from, {}, to, LinkEvent::kUp, it->second.serial});
  }
  Link& link = it->second;
  if (link.state != Link::State::kUp) return false;  // ZMQ_IMMEDIATE: no connection, no queue
  if (!fits || !path_ok(from, link.target) || chance(loss_)) return true;  // sent, and lost
  const TimePoint at = std::max(now_ + latency(), link.last_delivery);
  link.last_delivery = at;
  auto d = std::make_shared<Delivery>(
      Delivery{link.target, link.target_instance, m, Source::from_router(link.routing_id)});
  schedule(Item{at, 0, Kind::kDeliver, link.target, {}, {}, LinkEvent::kUp, 0, d});
  if (chance(duplication_))
    schedule(Item{at + latency(), 0, Kind::kDeliver, link.target, {}, {}, LinkEvent::kUp, 0, d});
  return true;
}

void Simulation::reply_frame(int from, const std::string& routing_id, const Message& m) {
  if (!count(m)) return;
  auto route = routing_.find(routing_id);
  if (route == routing_.end()) return;
  const auto [owner, endpoint] = route->second;
  auto it = links_.find({owner, endpoint});
  if (it == links_.end() || it->second.state != Link::State::kUp || it->second.target != from)
    return;
  if (!path_ok(from, owner) || chance(loss_) || !running(owner)) return;
  auto d = std::make_shared<Delivery>(
      Delivery{owner, processes_.at(owner)->instance, m, Source::from_dealer(endpoint)});
  schedule(Item{now_ + latency(), 0, Kind::kDeliver, owner, {}, {}, LinkEvent::kUp, 0, d});
}

void Simulation::attempt(int owner, const Endpoint& to, uint64_t serial) {
  auto it = links_.find({owner, to});
  if (it == links_.end() || it->second.serial != serial) return;
  Link& link = it->second;
  auto again = [&](Duration after) {
    link.state = Link::State::kWaiting;
    link.serial = ++serial_;
    schedule(Item{now_ + after, 0, Kind::kAttempt, owner, {}, to, LinkEvent::kUp, link.serial});
  };
  const int host = host_of(to);
  if (host < 0 || !path_ok(owner, host)) {  // SYN unanswered: ZMQ_CONNECT_TIMEOUT, then redial
    again(kConnectTimeout + link.backoff);
    link.backoff = std::min(link.backoff * 2, kReconnectMax);
    return;
  }
  Process* target = process_at(to);
  const Duration rtt = latency() + latency();
  if (target == nullptr) {  // RST: nothing listens there
    schedule(Item{now_ + rtt, 0, Kind::kLinkEvent, owner, processes_.at(owner)->instance, to,
                  LinkEvent::kRefused});
    again(rtt + link.backoff);
    link.backoff = std::min(link.backoff * 2, kReconnectMax);
    return;
  }
  if (target->paused) {  // the kernel accepts, the ZMTP handshake waits
    again(Millis(200));
    return;
  }
  if (link.failing_handshakes > 0) {  // another key is tried at once (transport.h)
    --link.failing_handshakes;
    again(rtt + rtt);
    return;
  }
  establish(owner, to, link, *target, rtt);
  schedule(Item{now_ + rtt, 0, Kind::kLinkEvent, owner, processes_.at(owner)->instance, to,
                LinkEvent::kUp});
}

void Simulation::establish(int owner, const Endpoint& to, Link& link, const Process& target,
                           Duration rtt) {
  link.state = Link::State::kUp;
  link.serial = ++serial_;
  link.target = target.host;
  link.target_instance = target.instance;
  link.routing_id = "c" + std::to_string(link.serial);
  link.backoff = kReconnectMin;
  link.last_delivery = now_ + rtt;
  routing_[link.routing_id] = {owner, to};
}

// Between two processes of start_adopted() the connection stands since the
// bootstrap (as every member's does after a real join): up at first use,
// with no link event, which the node would have read long ago.
bool Simulation::open_adopted_link(int owner, const Endpoint& to, Link& link) {
  const Process* target = process_at(to);
  if (!processes_.at(owner)->adopted || target == nullptr || !target->adopted || target->paused ||
      !path_ok(owner, target->host))
    return false;
  establish(owner, to, link, *target, Duration{0});
  return true;
}

void Simulation::link_down(int owner, const Endpoint& to, Link& link, bool) {
  if (link.state != Link::State::kUp) return;
  routing_.erase(link.routing_id);
  link.state = Link::State::kWaiting;
  link.serial = ++serial_;
  // After any frame already on its way.
  const TimePoint at = std::max(now_, link.last_delivery) + options_.latency_max + Millis(1);
  if (running(owner)) {
    schedule(
        Item{at, 0, Kind::kLinkEvent, owner, processes_.at(owner)->instance, to, LinkEvent::kDown});
  }
  schedule(Item{at + link.backoff, 0, Kind::kAttempt, owner, {}, to, LinkEvent::kUp, link.serial});
}

void Simulation::check_link(int owner, const Endpoint& to, uint64_t serial) {
  auto it = links_.find({owner, to});
  if (it == links_.end() || it->second.serial != serial || it->second.state != Link::State::kUp)
    return;
  Link& link = it->second;
  if (!path_ok(owner, link.target) || !running(link.target)) link_down(owner, to, link, false);
}

// ---------------------------------------------------------------------------
// Running

void Simulation::deliver(const Delivery& d) {
  auto it = processes_.find(d.host);
  if (it == processes_.end() || !it->second->running || it->second->instance != d.instance) return;
  Process& p = *it->second;
  if (p.paused) {
    p.inbox.push_back(d);
    return;
  }
  const uint64_t before = p.membership->view_version();
  p.membership->receive(d.message, d.source, now_);
  bool refused = false;
  std::vector<cluster::Event> events = p.membership->take_events();
  for (const auto& e : events)
    refused = refused || e.kind == EventKind::kRefused || e.kind == EventKind::kDropped ||
              e.kind == EventKind::kOtherCluster;
  if (refused && p.membership->view_version() != before) {
    violations_.push_back("a refused " + std::string(cluster::message_type_name(d.message.type)) +
                          " from " + d.message.sender.alias + " changed " + alias(d.host) +
                          "'s members");
  }
  // Put the events back for flush() to account.
  for (auto& e : events) pending_events_.push_back(std::move(e));
  flush(d.host);
}

void Simulation::tick(int host, const std::string& instance) {
  auto it = processes_.find(host);
  if (it == processes_.end() || !it->second->running || it->second->instance != instance ||
      it->second->paused)
    return;
  it->second->membership->tick(now_);
  flush(host);
  schedule(Item{now_ + options_.tick_every, 0, Kind::kTick, host, instance, {}});
}

void Simulation::flush(int host) {
  Process& p = *processes_.at(host);
  if (!p.membership) return;
  for (Action& a : p.membership->take_actions()) {
    if (auto* s = std::get_if<cluster::SendTo>(&a)) {
      if (!send_frame(host, s->to, s->message) && s->message.type == cluster::MessageType::kPing)
        p.membership->ping_unsent(s->to, s->message.seq, now_);
    } else if (auto* r = std::get_if<cluster::ReplyTo>(&a)) {
      reply_frame(host, r->routing_id, r->message);
    } else if (auto* rel = std::get_if<cluster::Release>(&a)) {
      if (auto it = links_.find({host, rel->to}); it != links_.end()) {
        routing_.erase(it->second.routing_id);
        links_.erase(it);
      }
    }
  }
  std::vector<cluster::Event> events = std::move(pending_events_);
  pending_events_.clear();
  for (auto& e : p.membership->take_events()) events.push_back(std::move(e));
  for (const auto& e : events) {
    if (e.kind == EventKind::kDropped) continue;
    if (e.kind == EventKind::kDead) {
      ++deaths_;
      const int victim = host_of(Endpoint{e.node.host, e.node.port});
      const bool clean_network = std::none_of(blocked_.begin(), blocked_.end(), [&](const auto& b) {
        return b.first == victim || b.second == victim || b.first == host || b.second == host;
      });
      if (running(victim) && !paused(victim) && processes_.at(victim)->instance == e.instance &&
          clean_network && now_ - last_resume_or_start(victim) > kResumeGrace) {
        ++false_deaths_;
        note("FALSE DEATH: " + alias(host) + " dropped " + e.node.alias);
      }
    }
    if (options_.trace) {
      note(alias(host) + ": " + std::string(cluster::event_kind_name(e.kind)) + " " + e.node.alias +
           (e.error ? " (" + e.error->message + ")" : ""));
    }
  }
}

void Simulation::handle(const Item& item) {
  switch (item.kind) {
    case Kind::kDeliver:
      deliver(*item.delivery);
      return;
    case Kind::kTick:
      tick(item.host, item.instance);
      return;
    case Kind::kAttempt:
      attempt(item.host, item.endpoint, item.serial);
      return;
    case Kind::kCheckLink:
      check_link(item.host, item.endpoint, item.serial);
      return;
    case Kind::kLinkEvent: {
      auto it = processes_.find(item.host);
      if (it == processes_.end() || !it->second->running || it->second->instance != item.instance)
        return;
      if (it->second->paused) {  // read when it wakes up
        Item later = item;
        later.at = now_ + Millis(50);
        schedule(later);
        return;
      }
      it->second->membership->link_changed(item.endpoint, item.link_event, now_);
      flush(item.host);
      return;
    }
  }
}

void Simulation::run_for(Duration duration) {
  const TimePoint end = now_ + duration;
  while (!queue_.empty() && queue_.top().at <= end) {
    Item item = queue_.top();
    queue_.pop();
    now_ = std::max(now_, item.at);
    handle(item);
  }
  now_ = end;
}

// ---------------------------------------------------------------------------
// Checks

bool Simulation::lists(int host, const std::string& name) const {
  return running(host) && processes_.at(host)->membership->is_member(name);
}

std::size_t Simulation::member_count(int host) const {
  return running(host) ? processes_.at(host)->membership->member_count() : 0;
}

bool Simulation::listed_by_any(int host) const {
  for (const auto& [h, p] : processes_) {
    if (h == host || !p->running) continue;
    if (p->membership->is_member(alias(host))) return true;
  }
  return false;
}

// Every running process's digest is that of the live set, it lists all the
// others and suspects none: O(N) rather than comparing N sets of N names.
bool Simulation::digests_agree() const {
  uint64_t live_digest = 0;
  std::size_t live = 0;
  for (const auto& [host, p] : processes_) {
    if (!p->running) continue;
    live_digest ^= Membership::view_hash(alias(host), p->instance);
    ++live;
  }
  return std::all_of(processes_.begin(), processes_.end(), [&](const auto& entry) {
    const Process& p = *entry.second;
    return !p.running ||
           (p.membership->digest() == live_digest && p.membership->member_count() + 1 == live &&
            p.membership->suspect_count() == 0);
  });
}

bool Simulation::converged(std::string* why) const {
  if (digests_agree()) return true;
  if (why != nullptr) explain_divergence(why);
  return false;
}

bool Simulation::explain_divergence(std::string* why) const {
  std::set<std::pair<std::string, std::string>> live;
  for (const auto& [host, p] : processes_) {
    if (p->running) live.emplace(alias(host), p->instance);
  }
  for (const auto& [host, p] : processes_) {
    if (!p->running) continue;
    std::set<std::pair<std::string, std::string>> expected = live;
    expected.erase({alias(host), p->instance});
    std::set<std::pair<std::string, std::string>> actual;
    std::string suspect;
    for (const auto& m : p->membership->members(now_)) {
      actual.emplace(m.address.alias, m.instance);
      if (m.state == cluster::MemberState::kSuspect) suspect = m.address.alias;
    }
    // Settled means no verdict is pending either: a suspicion still running
    // may yet end in a death.
    if (actual == expected && !suspect.empty()) {
      if (why != nullptr) *why = alias(host) + " still suspects " + suspect;
      return false;
    }
    if (actual != expected) {
      if (why != nullptr) {
        std::string text = alias(host) + " lists {";
        for (const auto& [a, i] : actual) text += " " + a + "/" + i;
        text += " } but the others alive are {";
        for (const auto& [a, i] : expected) text += " " + a + "/" + i;
        *why = text + " }";
      }
      return false;
    }
  }
  return true;
}

}  // namespace iridium::sim
