#include "cluster/membership.h"

#include <algorithm>
#include <cmath>

#include "cluster/membership_internal.h"

namespace iridium::cluster {
using detail::make_event;
using detail::since;
namespace {

// What a [alias, host, port] entry costs beyond its two strings (array,
// string and integer headers), and the room a node list may take in a frame.
constexpr std::size_t kNodeEntryOverhead = 8;
constexpr std::size_t kMaxListBytes = kMaxFrameBytes - 1024;

}  // namespace

std::string Endpoint::text() const {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
         std::to_string(port);
}

std::string_view event_kind_name(EventKind kind) {
  switch (kind) {
    case EventKind::kJoined:
      return "joined";
    case EventKind::kRestarted:
      return "restarted";
    case EventKind::kSuspect:
      return "suspect";
    case EventKind::kRecovered:
      return "recovered";
    case EventKind::kDead:
      return "dead";
    case EventKind::kLeft:
      return "left";
    case EventKind::kForgotten:
      return "forgotten";
    case EventKind::kRefused:
      return "refused";
    case EventKind::kJoinDone:
      return "join_done";
    case EventKind::kJoinRefused:
      return "join_refused";
    case EventKind::kSeedsRefused:
      return "seeds_refused";
    case EventKind::kDropped:
      return "dropped";
    case EventKind::kOtherCluster:
      return "other_cluster";
  }
  return "unknown";
}

std::string_view member_state_name(MemberState state) {
  return state == MemberState::kAlive ? "alive" : "suspect";
}

Membership::Membership(MembershipConfig config, TimePoint now)
    : config_(std::move(config)),
      timers_(config_.timers),
      random_(config_.random_seed),
      names_(config_.names ? config_.names : std::make_shared<NamePool>()),
      updates_(config_.timers.max_members),
      planned_wakeup_(now),
      next_probe_(now + config_.timers.probe_period),
      next_gossip_(now + config_.timers.gossip),
      next_push_pull_(now + config_.timers.push_pull) {
  add_to_view(config_.self.alias, config_.instance);
}

// ---------------------------------------------------------------------------
// Outputs

std::vector<Action> Membership::take_actions() {
  return std::exchange(actions_, {});
}
std::vector<Event> Membership::take_events() {
  return std::exchange(events_, {});
}
std::vector<Message> Membership::take_run_frames() {
  return std::exchange(run_frames_, {});
}

Message Membership::message(MessageType type) const {
  Message m;
  m.type = type;
  m.cluster = config_.cluster;
  m.sender = config_.self;
  m.instance = config_.instance;
  m.incarnation = incarnation_;
  return m;
}

Message Membership::message_with_updates(MessageType type) {
  Message m = message(type);
  m.updates = updates_.take(timers_.piggyback_bytes, retransmit_limit());
  counters_.updates_sent += m.updates.size();
  return m;
}

void Membership::send(const Endpoint& to, Message m) {
  if (left_) return;
  ++counters_.frames_sent;
  ++counters_.sent_by_type[message_type_index(m.type)];
  actions_.emplace_back(SendTo{to, std::move(m)});
}

void Membership::reply(const std::string& routing_id, Message m) {
  if (left_) return;
  ++counters_.frames_sent;
  ++counters_.sent_by_type[message_type_index(m.type)];
  actions_.emplace_back(ReplyTo{routing_id, std::move(m)});
}

void Membership::drop(std::string why) {
  ++counters_.frames_dropped;
  Event e = make_event(EventKind::kDropped, {}, {}, Error{std::move(why), ErrorKind::kInvalid});
  emit(std::move(e));
}

void Membership::frame_dropped(const Error& why) {
  ++counters_.dropped_malformed;
  drop(why.message);
}

// ---------------------------------------------------------------------------
// Queries

std::vector<MemberView> Membership::members(TimePoint now) const {
  std::vector<MemberView> out;
  out.reserve(members_.size());
  for (const auto& [alias, m] : members_) {
    out.push_back(
        MemberView{m.address, m.instance, m.state, since(m.last_direct, now), m.incarnation});
  }
  return out;
}

std::optional<std::string> Membership::member_instance(const std::string& alias) const {
  auto it = members_.find(alias);
  if (it == members_.end()) return std::nullopt;
  return it->second.instance;
}

bool Membership::member_at(const Endpoint& endpoint) const {
  return std::any_of(members_.begin(), members_.end(),
                     [&](const auto& kv) { return endpoint_of(kv.second.address) == endpoint; });
}

std::vector<NodeAddress> Membership::known_addresses() const {
  std::vector<NodeAddress> out;
  for (const auto& [alias, m] : members_) out.push_back(m.address);
  for (const auto& [alias, l] : lost_) out.push_back(l.address);
  return out;
}

std::vector<std::vector<NodeAddress>> Membership::member_pages(const std::string& except) const {
  std::vector<std::vector<NodeAddress>> pages(1);
  std::size_t bytes = 0;
  for (const auto& [alias, m] : members_) {
    if (alias == except) continue;
    const std::size_t entry =
        m.address.alias.str().size() + m.address.host.str().size() + kNodeEntryOverhead;
    if (pages.back().size() >= kMaxNodesPerFrame || bytes + entry > kMaxListBytes) {
      pages.emplace_back();
      bytes = 0;
    }
    pages.back().push_back(m.address);
    bytes += entry;
  }
  return pages;
}

std::vector<std::string> Membership::pick_members(std::size_t count, const std::string& except_a,
                                                  const std::string& except_b) {
  std::vector<std::string> candidates;
  for (const auto& [alias, m] : members_) {
    if (alias != except_a && alias != except_b && m.state == MemberState::kAlive)
      candidates.push_back(alias);
  }
  // A partial Fisher-Yates shuffle: the first `count` are a uniform sample.
  const std::size_t n = std::min(count, candidates.size());
  for (std::size_t i = 0; i < n; ++i) {
    std::uniform_int_distribution<std::size_t> pick(i, candidates.size() - 1);
    std::swap(candidates[i], candidates[pick(random_)]);
  }
  candidates.resize(n);
  return candidates;
}

bool Membership::endpoint_in_use(const Endpoint& endpoint) const {
  auto uses = [&](const NodeAddress& a) { return endpoint_of(a) == endpoint; };
  return std::any_of(members_.begin(), members_.end(),
                     [&](const auto& kv) { return uses(kv.second.address); }) ||
         std::any_of(lost_.begin(), lost_.end(),
                     [&](const auto& kv) { return uses(kv.second.address); }) ||
         std::any_of(contacts_.begin(), contacts_.end(),
                     [&](const auto& kv) { return uses(kv.second.address); }) ||
         std::any_of(joins_.begin(), joins_.end(),
                     [&](const PendingJoin& j) { return j.to == endpoint; }) ||
         std::any_of(seeds_.begin(), seeds_.end(), [&](const Seed& s) { return s.at == endpoint; });
}

void Membership::maybe_release(const Endpoint& endpoint) {
  if (!endpoint_in_use(endpoint)) actions_.emplace_back(Release{endpoint});
}

// ---------------------------------------------------------------------------
// Admission: what a hello, join or direct frame from (alias, instance,
// address) means. The first rule that applies decides (docs/protocol.md §5).

Membership::Admission Membership::admit(const NodeAddress& who, const std::string& instance,
                                        TimePoint) const {
  if (who.alias == config_.self.alias) {
    return instance == config_.instance ? Admission::kSelf : Admission::kDuplicateOfSelf;
  }
  if (auto it = members_.find(who.alias); it != members_.end()) {
    if (it->second.instance == instance) return Admission::kKnown;
    // A process listening where the member listened is its successor: the
    // old one cannot still hold that port.
    if (endpoint_of(it->second.address) == endpoint_of(who)) return Admission::kRestarted;
    return Admission::kDuplicate;  // the member is alive or suspect: never displaced
  }
  if (auto it = departed_.find(who.alias);
      it != departed_.end() && it->second.instance == instance) {
    return Admission::kStale;
  }
  if (members_.size() >= timers_.max_members) return Admission::kFull;
  if (auto it = lost_.find(who.alias); it != lost_.end() && it->second.instance == instance) {
    return Admission::kRecovered;
  }
  return Admission::kNew;
}

Error Membership::refusal(Admission admission, const NodeAddress& who) const {
  switch (admission) {
    case Admission::kSelf:
      return Error{"that address is this node itself", ErrorKind::kSelf};
    case Admission::kDuplicateOfSelf:
      return Error{"alias '" + who.alias + "' is already used by a live node at " +
                       endpoint_of(config_.self).text(),
                   ErrorKind::kRefused};
    case Admission::kDuplicate: {
      const Member& m = members_.find(who.alias)->second;
      return Error{"alias '" + who.alias + "' is already used by a live node at " +
                       endpoint_of(m.address).text(),
                   ErrorKind::kRefused};
    }
    case Admission::kStale:
      return Error{
          "instance " + departed_.at(who.alias).instance + " of '" + who.alias + "' has left",
          ErrorKind::kRefused};
    case Admission::kFull:
      return Error{"the cluster is full: " + config_.self.alias + " lists " +
                       std::to_string(members_.size()) + " members, its bound (max_members)",
                   ErrorKind::kRefused};
    default:
      return Error{"refused", ErrorKind::kRefused};
  }
}

// ---------------------------------------------------------------------------
// State changes

Membership::Member& Membership::become_alive(const NodeAddress& who, const std::string& instance,
                                             TimePoint now, Introduction how) {
  if (auto it = members_.find(who.alias); it != members_.end()) {
    Member& m = it->second;
    if (m.instance == instance) {
      heard_directly(m, 0, now);
      return m;
    }
    // Guarded by admit(): only a successor at the same address gets here.
    remove_from_view(who.alias, m.instance);
    suspects_.erase(who.alias);
    m = new_member(who, instance, now);
    add_to_view(who.alias, instance);
    ++view_version_;
    emit(make_event(EventKind::kRestarted, who, instance));
    spread(who, instance, 0, UpdateState::kAlive);
    send(endpoint_of(who), message(MessageType::kHeartbeat));
    return m;
  }
  const auto lost = lost_.find(who.alias);
  const bool recovered = lost != lost_.end() && lost->second.instance == instance;
  if (lost != lost_.end()) lost_.erase(lost);
  contacts_.erase(who.alias);
  departed_.erase(who.alias);
  auto [it, inserted] = members_.emplace(names_->intern(who.alias), new_member(who, instance, now));
  (void)inserted;
  add_to_view(who.alias, instance);
  // Probed in its turn, at a random place in the rest of this round: were
  // newcomers probed first, every node would probe them in the same order at
  // the same time, and a member would go unprobed for most of a round.
  std::uniform_int_distribution<std::size_t> place(probe_index_, probe_order_.size());
  probe_order_.insert(probe_order_.begin() + static_cast<std::ptrdiff_t>(place(random_)),
                      it->first);
  sync_soon(now);
  ++view_version_;
  ++(recovered ? counters_.recoveries : counters_.joins);
  emit(make_event(recovered ? EventKind::kRecovered : EventKind::kJoined, who, instance));
  // A newcomer contacts every member it was told of, so a node met directly
  // is news for no one (spread by every member, a join burst of N nodes
  // queued N² updates); see Introduction.
  if (recovered || how != Introduction::kDirect) spread(who, instance, 0, UpdateState::kAlive);
  // At once rather than at its first probe: the new member lists us sooner.
  send(endpoint_of(who), message(MessageType::kHeartbeat));
  return it->second;
}

// Any frame of its own: fresh news of it. A higher incarnation than we knew
// refutes a suspicion of an older one.
void Membership::heard_directly(Member& m, uint64_t incarnation, TimePoint now) {
  m.last_direct = now;
  if (incarnation > m.incarnation) recover(m, incarnation);
}

// Lifeguard's buddy system: a suspect may never have heard of the suspicion
// (it was cut off while it spread), so it is told directly: by its accusers
// once a probe period for as long as the suspicion lasts, by members that
// only heard the rumour once. Were they all to repeat it, a suspect would get
// N - 1 notices a period, at a time when it may be suspected for being slow.
void Membership::notify_suspect(Member& m, TimePoint now) {
  const bool accuser = m.suspected->suspicion.accused_by(config_.self.alias);
  m.suspected->next_notice = accuser ? now + timers_.probe_period : TimePoint::max();
  Message notice = message(MessageType::kGossip);
  notice.updates = {
      Update{m.address, m.instance, m.incarnation, UpdateState::kSuspect, config_.self.alias}};
  send(endpoint_of(m.address), std::move(notice));
}

void Membership::recover(Member& m, uint64_t incarnation) {
  if (incarnation <= m.incarnation) return;
  m.incarnation = incarnation;
  spread(m.address, m.instance, incarnation, UpdateState::kAlive);
  if (m.state != MemberState::kSuspect) return;
  m.state = MemberState::kAlive;
  m.suspected.reset();
  suspects_.erase(m.address.alias);
  ++counters_.recoveries;
  emit(make_event(EventKind::kRecovered, m.address, m.instance));
}

void Membership::become_suspect(Member& m, uint64_t incarnation, const std::string& accuser,
                                TimePoint now) {
  if (incarnation < m.incarnation) return;
  if (m.state == MemberState::kSuspect && m.suspected->suspicion.incarnation() == incarnation) {
    return confirm_suspicion(m, accuser, now);
  }
  // Lifeguard: the floor grows with the cluster (more members, more time for
  // the news to spread); a lone accuser's suspicion lasts suspicion_max_mult
  // times that.
  const double n = static_cast<double>(members_.size() + 1);
  const auto floor = std::chrono::duration_cast<Millis>(
      timers_.probe_period * (timers_.suspicion_mult * std::log10(n + 1.0)));
  const auto ceiling = std::chrono::duration_cast<Millis>(floor * timers_.suspicion_max_mult);
  // Only members besides the suspect and the first accuser can confirm.
  const auto expected_confirmations =
      members_.size() >= 3 ? std::min(members_.size() - 2, timers_.suspicion_confirmations)
                           : std::size_t{0};
  const bool was_alive = m.state == MemberState::kAlive;
  m.incarnation = incarnation;
  m.state = MemberState::kSuspect;
  m.suspected = std::make_unique<Suspected>(
      Suspected{Suspicion(incarnation, accuser, floor, ceiling, expected_confirmations), now,
                TimePoint::max()});
  suspects_.insert(m.address.alias);
  spread(m.address, m.instance, incarnation, UpdateState::kSuspect, accuser);
  notify_suspect(m, now);
  if (!was_alive) return;
  ++counters_.suspicions;
  Event e = make_event(EventKind::kSuspect, m.address, m.instance);
  e.silent = since(m.last_direct, now);
  e.accuser = accuser;
  emit(std::move(e));
}

void Membership::confirm_suspicion(Member& m, const std::string& accuser, TimePoint now) {
  if (!m.suspected->suspicion.confirm(accuser)) return;
  if (accuser == config_.self.alias) notify_suspect(m, now);
  // A new, independent accuser: the timeout shrinks, and the news goes on.
  spread(m.address, m.instance, m.incarnation, UpdateState::kSuspect, accuser);
}

// Someone suspects (or buried) this very instance of us: outbid them.
void Membership::refute(uint64_t accused_incarnation) {
  incarnation_ = std::max(incarnation_, accused_incarnation) + 1;
  ++counters_.refutations;
  change_health(+1);  // being suspected hints that we are slow ourselves
  spread(config_.self, config_.instance, incarnation_, UpdateState::kAlive);
}

void Membership::declare_dead(const std::string& alias, DeathCause cause, TimePoint now) {
  auto it = members_.find(alias);
  if (it == members_.end()) return;
  const Member m = std::move(it->second);
  members_.erase(it);
  suspects_.erase(alias);
  remove_from_view(alias, m.instance);
  if (lost_.size() >= timers_.max_members) forget_oldest_lost();
  lost_[alias] = Lost{m.address, m.instance, now, now + timers_.lost_probe};
  ++view_version_;
  sync_soon(now);
  ++counters_.deaths;
  ++(cause == DeathCause::kSilent              ? counters_.deaths_silent
     : cause == DeathCause::kConnectionRefused ? counters_.deaths_refused
                                               : counters_.deaths_reported);
  spread(m.address, m.instance, m.incarnation, UpdateState::kDead);
  Event e = make_event(EventKind::kDead, m.address, m.instance);
  e.cause = cause;
  e.silent = since(m.last_direct, now);
  counters_.detection.observe(e.silent);
  emit(std::move(e));
}

// Remembers a departed instance for left_ttl, so its stragglers are ignored;
// past max_members the entry that expires first makes room.
void Membership::depart(const std::string& alias, const std::string& instance, Endpoint at,
                        TimePoint now) {
  if (departed_.size() >= timers_.max_members && !departed_.contains(alias)) {
    departed_.erase(std::min_element(
        departed_.begin(), departed_.end(),
        [](const auto& x, const auto& y) { return x.second.until < y.second.until; }));
  }
  departed_[alias] = Departed{instance, std::move(at), now + timers_.left_ttl};
}

void Membership::remove_left(const std::string& alias, TimePoint now) {
  auto it = members_.find(alias);
  if (it == members_.end()) return;
  const Member m = std::move(it->second);
  members_.erase(it);
  suspects_.erase(alias);
  remove_from_view(alias, m.instance);
  depart(alias, m.instance, endpoint_of(m.address), now);
  ++view_version_;
  ++counters_.leaves;
  spread(m.address, m.instance, m.incarnation, UpdateState::kLeft);
  emit(make_event(EventKind::kLeft, m.address, m.instance));
  maybe_release(endpoint_of(m.address));
}

// ---------------------------------------------------------------------------
// Frames

Membership::Member Membership::new_member(const NodeAddress& who, const std::string& instance,
                                          TimePoint now) {
  Member m;
  m.address = MemberAddress{names_->intern(who.alias), names_->intern(who.host), who.port};
  m.instance = names_->intern(instance);
  m.last_direct = now;
  m.listed_at = now;
  return m;
}

Membership::Member& Membership::member_named(const std::string& alias) {
  auto it = members_.find(alias);
  if (it == members_.end()) throw std::out_of_range("not a member: " + alias);
  return it->second;
}

Membership::Member* Membership::member_from(const Message& m) {
  auto it = members_.find(m.sender.alias);
  if (it == members_.end() || it->second.instance != m.instance) return nullptr;
  return &it->second;
}

void Membership::receive(const Message& m, const Source& source, TimePoint now) {
  if (left_) return;
  // Another cluster's frame is not ours to judge: no rule sees it, nothing
  // answers it (not even hello_nack), only this counter and event tell.
  if (m.cluster != config_.cluster) {
    ++counters_.dropped_other_cluster;
    Event e = make_event(EventKind::kOtherCluster, m.sender, m.instance);
    e.cluster = m.cluster;
    return emit(std::move(e));
  }
  ++counters_.frames_received;
  ++counters_.received_by_type[message_type_index(m.type)];
  // Every handler drops a frame at most once, through drop().
  const uint64_t dropped_before = counters_.frames_dropped;
  dispatch(m, source, now);
  if (counters_.frames_dropped != dropped_before) {
    ++counters_.dropped_by_type[message_type_index(m.type)];
  }
}

void Membership::dispatch(const Message& m, const Source& source, TimePoint now) {
  const bool on_dealer = source.dealer.has_value();
  switch (m.type) {
    case MessageType::kHelloAck:
    case MessageType::kHelloNack:
    case MessageType::kAck:
      if (!on_dealer) return drop(std::string(message_type_name(m.type)) + " sent to the listener");
      if (m.type == MessageType::kHelloAck) return on_hello_ack(m, *source.dealer, now);
      if (m.type == MessageType::kHelloNack) return on_hello_nack(m, *source.dealer, now);
      return on_ack(m, now);
    default:
      break;
  }
  if (on_dealer)
    return drop("unexpected " + std::string(message_type_name(m.type)) + " on a dealer");
  switch (m.type) {
    case MessageType::kHello:
      return on_hello(m, source, now);
    case MessageType::kJoin:
      return on_join(m, now);
    case MessageType::kHeartbeat:
    case MessageType::kMembers:
    case MessageType::kGossip:
      if (Member* sender = on_liveness(m, now)) apply_updates(m.updates, sender, now);
      return;
    case MessageType::kLeave:
      return on_leave(m, now);
    case MessageType::kPing:
      return on_ping(m, source, now);
    case MessageType::kPingReq:
      return on_ping_req(m, now);
    case MessageType::kIndirectAck:
    case MessageType::kIndirectNack:
      return on_indirect_answer(m, now);
    case MessageType::kSync:
      return on_sync(m, now);
    case MessageType::kRunRequest:
    case MessageType::kRunAccepted:
    case MessageType::kRunResult:
    case MessageType::kRunCancel:
      return on_run_frame(m, now);
    default:
      return;
  }
}

// Remote runs are for members only: a stranger may not make this node run
// anything, nor answer runs in a member's name.
void Membership::on_run_frame(const Message& m, TimePoint now) {
  Member* sender = member_from(m);
  if (sender == nullptr) {
    return drop(std::string(message_type_name(m.type)) + " from " + m.sender.alias +
                ", not a member");
  }
  heard_directly(*sender, m.incarnation, now);
  run_frames_.push_back(m);
}

bool Membership::send_to_member(const std::string& alias, Message m) {
  auto it = members_.find(alias);
  if (it == members_.end() || left_) return false;
  m.cluster = config_.cluster;
  m.sender = config_.self;
  m.instance = config_.instance;
  send(endpoint_of(it->second.address), std::move(m));
  return true;
}

void Membership::on_hello(const Message& m, const Source& source, TimePoint now) {
  const Admission admission = admit(m.sender, m.instance, now);
  switch (admission) {
    case Admission::kSelf:
    case Admission::kDuplicateOfSelf:
    case Admission::kDuplicate:
    case Admission::kFull:
    case Admission::kStale: {
      const Error why = refusal(admission, m.sender);
      Message nack = message(MessageType::kHelloNack);
      nack.reason = why.message;
      nack.code = std::string(admission == Admission::kSelf   ? kNackSelf
                              : admission == Admission::kFull ? kNackFull
                                                              : kNackDuplicate);
      reply(source.routing_id, std::move(nack));
      if (admission == Admission::kSelf) return;
      ++counters_.refused;
      emit(make_event(EventKind::kRefused, m.sender, m.instance, why));
      return;
    }
    default:
      break;
  }
  Member& joiner = become_alive(m.sender, m.instance, now, Introduction::kHello);
  heard_directly(joiner, m.incarnation, now);
  auto pages = member_pages(m.sender.alias);
  Message ack = message(MessageType::kHelloAck);
  ack.nodes = std::move(pages.front());
  reply(source.routing_id, std::move(ack));
  // A list longer than a frame: the rest as members pages.
  for (std::size_t i = 1; i < pages.size(); ++i) {
    Message page = message(MessageType::kMembers);
    page.nodes = std::move(pages[i]);
    send(endpoint_of(m.sender), std::move(page));
  }
  if (admission == Admission::kKnown) return;
  // Announce the newcomer to every other member now rather than at their
  // next gossip, so the mesh closes in one round trip.
  Message announce = message(MessageType::kMembers);
  announce.nodes = {m.sender};
  for (const auto& [alias, member] : members_) {
    if (alias != m.sender.alias) send(endpoint_of(member.address), announce);
  }
}

void Membership::on_join(const Message& m, TimePoint now) {
  const Admission admission = admit(m.sender, m.instance, now);
  switch (admission) {
    case Admission::kSelf:
    case Admission::kStale:
      return drop("join from " + m.sender.alias + " ignored (" +
                  (admission == Admission::kSelf ? "ourselves" : "it has left") + ")");
    case Admission::kDuplicateOfSelf:
    case Admission::kDuplicate:
    case Admission::kFull:
      ++counters_.refused;
      emit(make_event(EventKind::kRefused, m.sender, m.instance, refusal(admission, m.sender)));
      return;
    case Admission::kKnown:
      // It contacted us because it does not list us; a member probes us
      // only once a round, maybe long after its contact expired, so answer
      // now: any frame of ours lists us there.
      heard_directly(become_alive(m.sender, m.instance, now), m.incarnation, now);
      return send(endpoint_of(m.sender), message(MessageType::kHeartbeat));
    default:
      heard_directly(become_alive(m.sender, m.instance, now), m.incarnation, now);
  }
}

Membership::Member* Membership::on_liveness(const Message& m, TimePoint now) {
  if (Member* member = member_from(m)) {
    heard_directly(*member, m.incarnation, now);
    if (m.type == MessageType::kMembers) learn(m.nodes, now);
    return member;
  }
  const std::string& alias = m.sender.alias;
  const Endpoint at = endpoint_of(m.sender);
  if (auto it = members_.find(alias); it != members_.end()) {
    // Another instance under a member's alias: its successor if at its
    // address, otherwise an impostor whose frame changes nothing.
    if (endpoint_of(it->second.address) != at) {
      drop("frame from another instance of member " + alias);
      return nullptr;
    }
    Member& successor = become_alive(m.sender, m.instance, now);
    heard_directly(successor, m.incarnation, now);
    return &successor;
  }
  if (alias == config_.self.alias) {
    drop("frame from another node with our alias");
    return nullptr;
  }
  const auto lost = lost_.find(alias);
  const auto contacted = contacts_.find(alias);
  const bool known_there =
      (lost != lost_.end() && lost->second.instance == m.instance &&
       endpoint_of(lost->second.address) == at) ||
      (contacted != contacts_.end() && endpoint_of(contacted->second.address) == at);
  if (known_there && members_.size() >= timers_.max_members) {
    drop("frame from " + alias + " not taken: the member list is full (max_members)");
    return nullptr;
  }
  if (known_there) {
    const bool rumour = contacted != contacts_.end() && contacted->second.rumour;
    Member& member = become_alive(m.sender, m.instance, now,
                                  rumour ? Introduction::kRumour : Introduction::kDirect);
    heard_directly(member, m.incarnation, now);
    if (m.type == MessageType::kMembers) learn(m.nodes, now);
    return &member;
  }
  if (auto it = departed_.find(alias); it != departed_.end() && it->second.instance == m.instance) {
    drop("frame from " + alias + " after it left");
    return nullptr;
  }
  // It counts us as a member but we do not know it: introduce ourselves,
  // and list it when it answers directly.
  contact(m.sender, now);
  return nullptr;
}

void Membership::on_leave(const Message& m, TimePoint now) {
  if (member_from(m) != nullptr) return remove_left(m.sender.alias, now);
  if (auto it = lost_.find(m.sender.alias);
      it != lost_.end() && it->second.instance == m.instance) {
    const Endpoint at = endpoint_of(it->second.address);
    lost_.erase(it);
    depart(m.sender.alias, m.instance, at, now);
    maybe_release(at);
  }
}

void Membership::on_ping(const Message& m, const Source& source, TimePoint now) {
  // Liveness first: a lost member's ping brings it back. A non-member's ping
  // goes unanswered (on_liveness has counted or contacted it).
  Member* sender = on_liveness(m, now);
  if (sender == nullptr) return;
  apply_updates(m.updates, sender, now);
  Message ack = message_with_updates(MessageType::kAck);
  ack.seq = m.seq;
  reply(source.routing_id, std::move(ack));
}

void Membership::on_ack(const Message& m, TimePoint now) {
  Member* sender = member_from(m);
  if (sender != nullptr) {
    heard_directly(*sender, m.incarnation, now);
    apply_updates(m.updates, sender, now);
  }
  if (auto relay = relays_.find(m.seq); relay != relays_.end()) {
    const Relay r = relay->second;
    relays_.erase(relay);
    if (r.target.alias != m.sender.alias || r.target_instance != m.instance) return;
    return answer_relay(r, MessageType::kIndirectAck);
  }
  // An ack after its probe ended (late, or duplicated) is news of the
  // sender and nothing more.
  if (!probe_ || probe_->seq != m.seq || probe_->alias != m.sender.alias ||
      probe_->instance != m.instance) {
    if (sender == nullptr) drop("ack that answers no probe");
    return;
  }
  probe_answered();
}

void Membership::on_ping_req(const Message& m, TimePoint now) {
  Member* requester = member_from(m);
  if (requester == nullptr) return drop("ping_req from " + m.sender.alias + ", not a member");
  heard_directly(*requester, m.incarnation, now);
  apply_updates(m.updates, requester, now);
  requester = member_from(m);
  if (requester == nullptr) return;
  // Ping it for the requester (a nack after half a probe timeout, so it
  // reaches the requester before its probe period ends), but only a member of ours, at the address
  // we know: a ping_req must not make us dial addresses of a stranger's choice.
  auto target = members_.find(m.target.alias);
  if (target == members_.end() || target->second.instance != m.target_instance) {
    Message nack = message_with_updates(MessageType::kIndirectNack);
    nack.seq = m.seq;
    nack.target = m.target;
    nack.target_instance = m.target_instance;
    send(endpoint_of(requester->address), std::move(nack));
    return;
  }
  const NodeAddress at = target->second.address;
  const uint64_t seq = next_seq_++;
  relays_[seq] =
      Relay{m.seq, m.sender.alias, at, m.target_instance, now + scaled(timers_.probe_timeout) / 2};
  Message ping = message_with_updates(MessageType::kPing);
  ping.seq = seq;
  send(endpoint_of(at), std::move(ping));
}

void Membership::on_indirect_answer(const Message& m, TimePoint now) {
  Member* helper = member_from(m);
  if (helper == nullptr)
    return drop(std::string(message_type_name(m.type)) + " from " + m.sender.alias +
                ", not a member");
  heard_directly(*helper, m.incarnation, now);
  apply_updates(m.updates, helper, now);
  if (!probe_ || probe_->seq != m.seq || probe_->alias != m.target.alias ||
      probe_->instance != m.target_instance) {
    return;  // late: its probe has ended
  }
  if (m.type == MessageType::kIndirectNack) {
    ++probe_->nacks;
    return;
  }
  probe_answered();
}

// Push-pull: the same digest means the same member set; otherwise each side
// sends the other its list, and each contacts what it did not know.
void Membership::on_sync(const Message& m, TimePoint now) {
  Member* sender = on_liveness(m, now);
  if (sender == nullptr || m.digest == digest_) return;
  send_member_pages(*sender);
  if (m.seq != 0) return;  // an answer to our sync: no answer to it
  Message answer = message(MessageType::kSync);
  answer.seq = 1;
  answer.digest = digest_;
  answer.count = static_cast<uint32_t>(members_.size() + 1);
  send(endpoint_of(sender->address), std::move(answer));
}

void Membership::send_member_pages(const Member& to) {
  for (auto& page : member_pages(to.address.alias)) {
    Message list = message(MessageType::kMembers);
    list.nodes = std::move(page);
    send(endpoint_of(to.address), std::move(list));
  }
}

void Membership::on_hello_ack(const Message& m, const Endpoint& from, TimePoint now) {
  const Admission admission = admit(m.sender, m.instance, now);
  std::optional<Error> failure;
  if (admission == Admission::kSelf || admission == Admission::kDuplicateOfSelf ||
      admission == Admission::kDuplicate || admission == Admission::kStale ||
      admission == Admission::kFull) {
    failure = refusal(admission, m.sender);
  } else {
    heard_directly(become_alive(m.sender, m.instance, now), m.incarnation, now);
    learn(m.nodes, now);
  }
  if (!failure) {
    for (Seed& seed : seeds_) {
      if (seed.at == from) seed.alias = m.sender.alias;
    }
  }
  bool seed_answered = false;
  for (PendingJoin& join : joins_) {
    if (join.to != from || now < join.start) continue;
    if (join.kind != JoinKind::kOnce && !failure) seed_answered = true;
    if (join.kind == JoinKind::kOnce || !failure) finish_join(join, failure, m.sender);
  }
  if (seed_answered) finish_seeds(now);
  std::erase_if(joins_, [](const PendingJoin& j) { return j.id == 0; });
  if (from != endpoint_of(m.sender)) maybe_release(from);
}

void Membership::on_hello_nack(const Message& m, const Endpoint& from, TimePoint now) {
  const bool self = m.code == kNackSelf;
  const Error why = self ? Error{"that address is this node itself", ErrorKind::kSelf}
                         : Error{m.reason, ErrorKind::kRefused};
  if (self) std::erase_if(seeds_, [&](const Seed& seed) { return seed.at == from; });
  for (PendingJoin& join : joins_) {
    if (join.to != from || now < join.start) continue;
    if (join.kind == JoinKind::kOnce || self) {
      finish_join(join, why, m.sender);
      continue;
    }
    join.refused_last = now;
    if (!join.refused_since) {
      join.refused_since = now;
      Event e = make_event(EventKind::kJoinRefused, m.sender, m.instance, why);
      e.join_id = join.id;
      e.dialed = join.to;
      emit(std::move(e));
    }
  }
  std::erase_if(joins_, [](const PendingJoin& j) { return j.id == 0; });
  maybe_release(from);
}

// A join is finished by emitting its result and zeroing its id; callers
// erase zeroed joins once they are done iterating.
void Membership::finish_join(PendingJoin& join, std::optional<Error> error,
                             const NodeAddress& answerer) {
  if (join.id == 0) return;
  Event e = make_event(EventKind::kJoinDone, answerer, {}, std::move(error));
  e.join_id = join.id;
  e.dialed = join.to;
  emit(std::move(e));
  join.id = 0;
}

// In through one seed. Seeds that did not answer and remembered members are
// still tried, at the lost-probe pace, until they are members or their time
// runs out: one of them may be cut off from everyone we can reach now.
void Membership::finish_seeds(TimePoint now) {
  for (PendingJoin& join : joins_) {
    if (join.id == 0 || join.kind == JoinKind::kOnce) continue;
    if (join.kind == JoinKind::kSeed) {
      join.kind = JoinKind::kRemembered;
      join.deadline = now + timers_.remembered_ttl;
      join.refused_since.reset();
    }
    join.backoff = timers_.lost_probe;
  }
}

// Nodes heard of second-hand (hello_ack, members): contact the new ones.
void Membership::learn(const std::vector<NodeAddress>& nodes, TimePoint now, bool rumour) {
  for (const NodeAddress& n : nodes) {
    if (n.alias == config_.self.alias || members_.contains(n.alias) || contacts_.contains(n.alias))
      continue;
    if (auto it = departed_.find(n.alias); it != departed_.end() && it->second.at == endpoint_of(n))
      continue;
    contact(n, now, rumour);
  }
}

void Membership::contact(const NodeAddress& who, TimePoint now, bool rumour) {
  if (who.alias == config_.self.alias || members_.contains(who.alias)) return;
  const Endpoint at = endpoint_of(who);
  if (auto it = contacted_at_.find(at);
      it != contacted_at_.end() && now - it->second < timers_.contact_retry)
    return;
  auto known = contacts_.find(who.alias);
  if (known == contacts_.end() && contacts_.size() >= timers_.max_contacts) {
    return drop("too many nodes to contact at once: " + who.alias + " is not contacted");
  }
  contacted_at_[at] = now;
  std::optional<Endpoint> moved_from;  // the alias was contacted at another address before
  if (known != contacts_.end() && endpoint_of(known->second.address) != at) {
    moved_from = endpoint_of(known->second.address);
  }
  contacts_[who.alias] = Contact{who, now, rumour};
  send(at, message(MessageType::kJoin));
  if (moved_from) maybe_release(*moved_from);
}

// ---------------------------------------------------------------------------
// Connections

void Membership::link_changed(const Endpoint& endpoint, LinkEvent event, TimePoint now) {
  if (left_) return;
  std::vector<std::string> members_there;
  for (const auto& [alias, m] : members_) {
    if (endpoint_of(m.address) == endpoint) members_there.push_back(alias);
  }
  switch (event) {
    case LinkEvent::kUp:
      // Frames sent while the connection was not up were dropped: resend now.
      for (const std::string& alias : members_there) {
        member_named(alias).link_down = false;
        send(endpoint, message(MessageType::kHeartbeat));
      }
      for (const auto& [alias, c] : contacts_) {
        if (endpoint_of(c.address) == endpoint) send(endpoint, message(MessageType::kJoin));
      }
      for (PendingJoin& join : joins_) {
        if (join.to == endpoint && now >= join.start) {
          send(endpoint, message(MessageType::kHello));
          join.next_send = now + join.backoff;
        }
      }
      for (auto& [alias, l] : lost_) {
        if (endpoint_of(l.address) == endpoint) {
          send(endpoint, message(MessageType::kHello));
          l.next_probe = now + timers_.lost_probe;
        }
      }
      return;
    case LinkEvent::kDown:
      for (const std::string& alias : members_there) member_named(alias).link_down = true;
      return;
    case LinkEvent::kRefused:
      // The connection closed and nothing listens there any more: the
      // process is gone. (A refusal without a lost connection proves less:
      // the member may advertise an address we cannot reach.)
      for (const std::string& alias : members_there) {
        if (member_named(alias).link_down) declare_dead(alias, DeathCause::kConnectionRefused, now);
      }
      if (std::erase_if(contacts_, [&](const auto& kv) {
            return endpoint_of(kv.second.address) == endpoint;
          }) > 0) {
        maybe_release(endpoint);
      }
      return;
  }
}

// ---------------------------------------------------------------------------
// Time

void Membership::tick(TimePoint now) {
  if (left_) return;
  // Measured against the wakeup this node planned, not the last tick, so a
  // quiet node may sleep as long as it likes without passing for a paused one.
  const auto late = now - planned_wakeup_;
  if (late > timers_.pause_threshold) {
    after_pause(late, now);
  } else if (late > timers_.late_tick) {
    // Not stopped but starved (a host whose run queue is long): acks we
    // wait for come late for the same reason, so slow down ourselves.
    ++counters_.late_ticks;
    change_health(+1);
  }
  tick_probe(now);
  tick_suspicions(now);
  tick_relays(now);
  if (now >= next_gossip_) gossip(now);
  if (now >= next_push_pull_) push_pull(now);
  tick_joins(now);
  tick_lost(now);
  tick_seeds(now);
  tick_expiry(now);
  planned_wakeup_ = next_wakeup();
}

void Membership::tick_joins(TimePoint now) {
  for (PendingJoin& join : joins_) {
    if (now < join.start) continue;
    if (join.kind == JoinKind::kOnce && now >= join.deadline) {
      finish_join(join,
                  Error{"no answer from " + join.to.text() + " within " +
                            seconds_text(timers_.join_timeout) + " s",
                        ErrorKind::kUnreachable},
                  NodeAddress{});
      continue;
    }
    if (join.kind == JoinKind::kRemembered) {
      const bool member_there = std::any_of(members_.begin(), members_.end(), [&](const auto& kv) {
        return endpoint_of(kv.second.address) == join.to;
      });
      if (member_there || now >= join.deadline) {
        join.id = 0;
        continue;
      }
    }
    if (now >= join.next_send) {
      send(join.to, message(MessageType::kHello));
      join.next_send = now + join.backoff;
      if (join.kind != JoinKind::kOnce)
        join.backoff = std::min(join.backoff * 2, timers_.seed_backoff_max);
    }
  }
  // Every seed has refused our alias for long enough: no point going on.
  std::optional<TimePoint> latest_refusal;
  bool all_refused = true, any_seed = false;
  for (const PendingJoin& join : joins_) {
    if (join.kind != JoinKind::kSeed || join.id == 0) continue;
    any_seed = true;
    // Still refusing: a seed that refused once and then fell silent does not count.
    if (!join.refused_since || now - join.refused_last > timers_.seed_backoff_max * 2) {
      all_refused = false;
      break;
    }
    latest_refusal = std::max(latest_refusal.value_or(*join.refused_since), *join.refused_since);
  }
  if (any_seed && all_refused && now - *latest_refusal >= timers_.refused_limit) {
    emit(make_event(EventKind::kSeedsRefused, config_.self, config_.instance,
                    Error{"every seed refused alias '" + config_.self.alias + "' for " +
                              seconds_text(timers_.refused_limit) + " s",
                          ErrorKind::kRefused}));
    for (PendingJoin& join : joins_) {
      if (join.kind == JoinKind::kSeed) join.id = 0;
    }
  }
  std::vector<Endpoint> finished;
  for (const PendingJoin& join : joins_) {
    if (join.id == 0) finished.push_back(join.to);
  }
  std::erase_if(joins_, [](const PendingJoin& j) { return j.id == 0; });
  for (const Endpoint& e : finished) maybe_release(e);
}

// Makes room in lost_ (kept within max_members): the member lost longest
// ago is the one closest to lost_ttl anyway.
void Membership::forget_oldest_lost() {
  auto oldest = std::min_element(lost_.begin(), lost_.end(), [](const auto& x, const auto& y) {
    return x.second.since < y.second.since;
  });
  if (oldest == lost_.end()) return;
  const Lost gone = std::move(oldest->second);
  lost_.erase(oldest);
  emit(make_event(EventKind::kForgotten, gone.address, gone.instance));
  maybe_release(endpoint_of(gone.address));
}

void Membership::tick_lost(TimePoint now) {
  std::vector<Endpoint> forgotten;
  for (auto it = lost_.begin(); it != lost_.end();) {
    Lost& l = it->second;
    if (now - l.since > timers_.lost_ttl) {
      emit(make_event(EventKind::kForgotten, l.address, l.instance));
      forgotten.push_back(endpoint_of(l.address));
      it = lost_.erase(it);
      continue;
    }
    if (now >= l.next_probe) {
      l.next_probe = now + timers_.lost_probe;
      send(endpoint_of(l.address), message(MessageType::kHello));
    }
    ++it;
  }
  for (const Endpoint& e : forgotten) maybe_release(e);
}

// Seeds that are not members (and not being joined already) get a hello at
// the lost-probe pace. A seed that answered is matched by its alias, so a
// seed named differently from how it advertises itself costs nothing once
// it is a member. A seed that is a member needs no timer: it stops being
// one only through a frame or a tick, after which next_wakeup() sees it.
void Membership::tick_seeds(TimePoint now) {
  for (Seed& seed : seeds_) {
    if (now < seed.next_hello || seed_is_member(seed)) continue;
    seed.next_hello = now + timers_.lost_probe;
    const bool joining = std::any_of(joins_.begin(), joins_.end(),
                                     [&](const PendingJoin& j) { return j.to == seed.at; });
    if (!joining) send(seed.at, message(MessageType::kHello));
  }
}

bool Membership::seed_is_member(const Seed& seed) const {
  if (!seed.alias.empty()) return members_.contains(seed.alias);
  return std::any_of(members_.begin(), members_.end(),
                     [&](const auto& kv) { return endpoint_of(kv.second.address) == seed.at; });
}

void Membership::tick_expiry(TimePoint now) {
  std::vector<Endpoint> dropped;
  for (auto it = contacts_.begin(); it != contacts_.end();) {
    if (now - it->second.since > timers_.contact_timeout) {
      dropped.push_back(endpoint_of(it->second.address));
      it = contacts_.erase(it);
    } else {
      ++it;
    }
  }
  for (const Endpoint& e : dropped) maybe_release(e);
  std::erase_if(departed_, [&](const auto& kv) { return now >= kv.second.until; });
  std::erase_if(contacted_at_,
                [&](const auto& kv) { return now - kv.second >= timers_.contact_retry; });
}

// ---------------------------------------------------------------------------
// Requests

uint64_t Membership::join(const Endpoint& to, TimePoint now) {
  const uint64_t id = next_join_id_++;
  joins_.push_back(PendingJoin{
      id, JoinKind::kOnce, to, now, now + timers_.join_timeout, now, timers_.hello_retry, {}});
  tick_joins(now);  // the first hello goes now
  return id;
}

void Membership::join_seeds(const std::vector<Endpoint>& seeds,
                            const std::vector<NodeAddress>& remembered, TimePoint now) {
  for (const Endpoint& seed : seeds) {
    if (std::none_of(seeds_.begin(), seeds_.end(), [&](const Seed& s) { return s.at == seed; }))
      seeds_.push_back(Seed{seed, {}, now + timers_.lost_probe});
    joins_.push_back(PendingJoin{next_join_id_++,
                                 JoinKind::kSeed,
                                 seed,
                                 now,
                                 TimePoint::max(),
                                 now,
                                 timers_.hello_retry,
                                 {}});
  }
  const TimePoint later = seeds.empty() ? now : now + timers_.remembered_after;
  for (const NodeAddress& node : remembered) {
    if (node.alias == config_.self.alias) continue;
    const Endpoint at = endpoint_of(node);
    if (std::any_of(seeds.begin(), seeds.end(), [&](const Endpoint& s) { return s == at; }))
      continue;
    joins_.push_back(PendingJoin{next_join_id_++,
                                 JoinKind::kRemembered,
                                 at,
                                 later,
                                 later + timers_.remembered_ttl,
                                 later,
                                 timers_.hello_retry,
                                 {}});
  }
  tick_joins(now);
}

void Membership::adopt_members(const std::vector<std::pair<NodeAddress, std::string>>& nodes,
                               TimePoint now) {
  for (const auto& [address, instance] : nodes) {
    if (address.alias == config_.self.alias || members_.contains(address.alias)) continue;
    // Sorted input goes in at the end in constant time.
    members_.emplace_hint(members_.end(), names_->intern(address.alias),
                          new_member(address, instance, now));
    add_to_view(address.alias, instance);
    ++view_version_;
  }
  // The probe order is refilled, shuffled, at the next probe.
  probe_order_.clear();
  probe_index_ = 0;
}

void Membership::leave(TimePoint now) {
  (void)now;
  if (left_) return;
  const Message bye = message(MessageType::kLeave);
  for (const auto& [alias, m] : members_) send(endpoint_of(m.address), bye);
  joins_.clear();
  seeds_.clear();
  left_ = true;
}

}  // namespace iridium::cluster
