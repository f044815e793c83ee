// Membership: SWIM failure detection with the Lifeguard extensions, and the
// dissemination of membership updates (docs/protocol.md section 7).
#include <algorithm>
#include <cmath>

#include "cluster/membership.h"
#include "cluster/membership_internal.h"

namespace iridium::cluster {
using detail::make_event;

// FNV-1a over alias, a separator and instance: the member set's digest is
// the XOR of these, so it is kept up to date in O(1) per change.
uint64_t Membership::view_hash(const std::string& alias, const std::string& instance) {
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&h](unsigned char c) {
    h ^= c;
    h *= 1099511628211ULL;
  };
  for (char c : alias) mix(static_cast<unsigned char>(c));
  mix('/');
  for (char c : instance) mix(static_cast<unsigned char>(c));
  return h;
}

void Membership::add_to_view(const std::string& alias, const std::string& instance) {
  digest_ ^= view_hash(alias, instance);
}
void Membership::remove_from_view(const std::string& alias, const std::string& instance) {
  digest_ ^= view_hash(alias, instance);
}

// ---------------------------------------------------------------------------
// Probing: one member per period, round-robin in a shuffled order.

void Membership::tick_probe(TimePoint now) {
  if (probe_ && !probe_->helpers_asked && now >= probe_->ask_helpers) ask_helpers(now);
  if (probe_ && now >= probe_->ends) probe_failed(now);
  if (!probe_ && now >= next_probe_) start_probe(now);
}

std::string Membership::next_probe_target() {
  for (int round = 0; round < 2; ++round) {
    while (probe_index_ < probe_order_.size()) {
      const std::string& alias = probe_order_[probe_index_++];
      if (members_.contains(alias)) return alias;
    }
    // Walked through: a new shuffled round of the current members.
    probe_order_.clear();
    for (const auto& [alias, m] : members_) probe_order_.push_back(alias);
    std::shuffle(probe_order_.begin(), probe_order_.end(), random_);
    probe_index_ = 0;
  }
  return {};
}

void Membership::start_probe(TimePoint now) {
  next_probe_ = now + scaled(timers_.probe_period);
  const std::string alias = next_probe_target();
  if (alias.empty()) return;
  const Member& target = member_named(alias);
  Probe p;
  p.seq = next_seq_++;
  p.alias = alias;
  p.instance = target.instance;
  p.ask_helpers = now + scaled(timers_.probe_timeout);
  p.ends = next_probe_;
  probe_ = p;
  ++counters_.probes;
  Message ping = message_with_updates(MessageType::kPing);
  ping.seq = p.seq;
  send(endpoint_of(target.address), std::move(ping));
}

void Membership::ask_helpers(TimePoint) {
  probe_->helpers_asked = true;
  auto target = members_.find(probe_->alias);
  if (target == members_.end() || target->second.instance != probe_->instance) {
    probe_.reset();  // it left or was replaced meanwhile: nothing to decide
    return;
  }
  const auto helpers = pick_members(timers_.indirect_probes, probe_->alias, "");
  probe_->nacks_expected = helpers.size();
  for (const std::string& helper : helpers) {
    Message request = message_with_updates(MessageType::kPingReq);
    request.seq = probe_->seq;
    request.target = target->second.address;
    request.target_instance = probe_->instance;
    send(endpoint_of(member_named(helper).address), std::move(request));
  }
}

// A member we listed moments ago may not be connected to yet, least of all
// while many nodes start at once and every pair opens its connections: a
// ping that never left says nothing about it. Later, no connection is what
// a probe is for, and the helpers are asked as usual.
void Membership::ping_unsent(const Endpoint& to, uint64_t seq, TimePoint now) {
  if (!probe_ || probe_->seq != seq || probe_->helpers_asked) return;
  const auto it = members_.find(probe_->alias);
  if (it == members_.end() || endpoint_of(it->second.address) != to) return;
  if (now >= connected_by(it->second)) return;
  ++counters_.probes_void;
  probe_.reset();
}

void Membership::probe_answered() {
  probe_.reset();
  change_health(-1);
}

// A member listed within connect_grace may still be opening its
// connections, and while many nodes start on a busy host its answers (and
// the helpers' relays to it) queue for seconds behind the join burst: its
// silence says nothing about it yet, nor about us, so the probe is void.
void Membership::probe_failed(TimePoint now) {
  const Probe p = *probe_;
  probe_.reset();
  auto it = members_.find(p.alias);
  const bool same_member = it != members_.end() && it->second.instance == p.instance;
  if (same_member && now < connected_by(it->second)) {
    ++counters_.probes_void;
    return;
  }
  // Lifeguard: helpers that could not answer at all (no nack either) point
  // at our own trouble, not the target's.
  int delta = 1;
  if (p.nacks_expected > 0)
    delta = static_cast<int>(p.nacks_expected - std::min(p.nacks, p.nacks_expected));
  change_health(delta);
  if (!same_member) return;
  ++counters_.probes_failed;
  become_suspect(it->second, it->second.incarnation, config_.self.alias, now);
}

void Membership::change_health(int delta) {
  const auto score = static_cast<int64_t>(health_) + delta;
  health_ = static_cast<std::size_t>(
      std::clamp<int64_t>(score, 0, static_cast<int64_t>(timers_.awareness_max)));
}

void Membership::tick_suspicions(TimePoint now) {
  std::vector<std::string> due;
  for (const std::string& alias : suspects_) {
    Member& m = member_named(alias);
    if (now >= suspicion_due(m)) {
      due.push_back(alias);
    } else if (now >= m.suspected->next_notice) {
      notify_suspect(m, now);
    }
  }
  for (const std::string& alias : due) declare_dead(alias, DeathCause::kSilent, now);
}

// A helper's relayed ping that went unanswered: say so, so the requester
// knows its own link to us works (Lifeguard's nack).
void Membership::tick_relays(TimePoint now) {
  for (auto it = relays_.begin(); it != relays_.end();) {
    if (now < it->second.expires) {
      ++it;
      continue;
    }
    const Relay r = it->second;
    it = relays_.erase(it);
    answer_relay(r, MessageType::kIndirectNack);
  }
}

// A helper's verdict on a relayed ping, to the member that asked for it.
void Membership::answer_relay(const Relay& r, MessageType verdict) {
  auto requester = members_.find(r.requester);
  if (requester == members_.end()) return;
  Message answer = message_with_updates(verdict);
  answer.seq = r.their_seq;
  answer.target = r.target;
  answer.target_instance = r.target_instance;
  send(endpoint_of(requester->second.address), std::move(answer));
}

// The process was stopped or starved: no verdict on the probe in flight, and
// the suspicions we run get the time back, since nobody could refute to us
// while we did not read. A suspicion begun since we woke (news read before
// this tick) lost nothing, and moves no further than now.
void Membership::after_pause(Clock::duration gap, TimePoint now) {
  probe_.reset();
  for (const std::string& alias : suspects_) {
    TimePoint& since = member_named(alias).suspected->since;
    since += std::min(gap, std::max(Clock::duration::zero(), now - since));
  }
  for (auto& [seq, relay] : relays_) relay.expires += gap;
  change_health(+1);
}

// ---------------------------------------------------------------------------
// Dissemination

std::size_t Membership::retransmit_limit() const {
  const double n = static_cast<double>(members_.size() + 1);
  return timers_.retransmit_mult * static_cast<std::size_t>(std::ceil(std::log10(n + 1.0)));
}

void Membership::spread(const NodeAddress& node, const std::string& instance, uint64_t incarnation,
                        UpdateState state, const std::string& from) {
  updates_.push(Update{node, instance, incarnation, state, from});
}

void Membership::gossip(TimePoint now) {
  next_gossip_ = now + timers_.gossip;
  if (updates_.empty()) return;
  for (const std::string& alias : pick_members(timers_.gossip_fanout, "", "")) {
    Message m = message_with_updates(MessageType::kGossip);
    if (m.updates.empty()) break;
    send(endpoint_of(member_named(alias).address), std::move(m));
  }
}

void Membership::push_pull(TimePoint now) {
  next_push_pull_ = now + timers_.push_pull;
  const auto peer = pick_members(1, "", "");
  if (peer.empty()) return;
  Message sync = message(MessageType::kSync);
  sync.digest = digest_;
  sync.count = static_cast<uint32_t>(members_.size() + 1);
  send(endpoint_of(member_named(peer.front()).address), std::move(sync));
}

// A change is when views differ: one more push-pull soon catches an update
// that missed someone, instead of waiting for the periodic one.
void Membership::sync_soon(TimePoint now) {
  next_push_pull_ = std::min(next_push_pull_, now + timers_.sync_after_change);
}

void Membership::apply_updates(const std::vector<Update>& updates, const Member* sender,
                               TimePoint now) {
  const Endpoint back = endpoint_of(sender->address);
  bool accused = false;
  for (const Update& u : updates) accused |= apply_update(u, now);
  if (!accused) return;
  // The member that brought an accusation hears our answer first: a fresh
  // refutation, or, for an accusation we outbid already (a joiner can get
  // one from a member page before the refutation reaches it), the
  // incarnation that outbid it. Without it that member would wait for a
  // direct frame from us, and a lone one would bury us after its timeout.
  Message alive = message(MessageType::kGossip);
  alive.updates = {Update{config_.self, config_.instance, incarnation_, UpdateState::kAlive, {}}};
  send(back, std::move(alive));
}

bool Membership::apply_update(const Update& u, TimePoint now) {
  if (u.node.alias == config_.self.alias) {
    // About us: refute a suspicion or a death of this very instance.
    const bool accused = u.instance == config_.instance &&
                         (u.state == UpdateState::kSuspect || u.state == UpdateState::kDead);
    if (accused && u.incarnation >= incarnation_) refute(u.incarnation);
    return accused;
  }
  auto it = members_.find(u.node.alias);
  if (it != members_.end()) {
    if (it->second.instance == u.instance) apply_to_member(it->second, u, now);
    return false;  // about another instance of a member: admission decides, not rumour
  }
  apply_to_stranger(u, now);
  return false;
}

void Membership::apply_to_member(Member& m, const Update& u, TimePoint now) {
  switch (u.state) {
    case UpdateState::kAlive:
      return recover(m, u.incarnation);
    case UpdateState::kSuspect:
      return become_suspect(m, u.incarnation, u.from.empty() ? u.node.alias : u.from, now);
    case UpdateState::kDead:
      if (u.incarnation >= m.incarnation) declare_dead(u.node.alias, DeathCause::kReported, now);
      return;
    case UpdateState::kLeft:
      return remove_left(u.node.alias, now);
  }
}

// News of a node we do not list: a live one is contacted (it joins us
// directly, as every member does); a lost one that refuted its death is
// probed at once; departures are remembered.
void Membership::apply_to_stranger(const Update& u, TimePoint now) {
  auto lost = lost_.find(u.node.alias);
  const bool lost_instance = lost != lost_.end() && lost->second.instance == u.instance;
  switch (u.state) {
    case UpdateState::kAlive:
      if (lost_instance) {
        lost->second.next_probe = std::min(lost->second.next_probe, now);
      } else if (!departed_.contains(u.node.alias)) {
        learn({u.node}, now, true);
      }
      return;
    case UpdateState::kLeft:
      if (lost_instance) {
        const Endpoint at = endpoint_of(lost->second.address);
        lost_.erase(lost);
        depart(u.node.alias, u.instance, at, now);
        maybe_release(at);
      }
      return;
    default:
      return;
  }
}

// ---------------------------------------------------------------------------
// When tick() next has work: the node sleeps until then.

// It mirrors tick() and its helpers rule for rule: a timer added there
// belongs here too (a strict `now - t > d` is due one clock step after t + d).
TimePoint Membership::next_wakeup() const {
  if (left_) return TimePoint::max();
  constexpr Clock::duration kStep{1};  // past a strict `>` comparison
  TimePoint at = std::min(next_probe_, next_push_pull_);
  auto due = [&at](TimePoint t) { at = std::min(at, t); };
  if (probe_) due(probe_->helpers_asked ? probe_->ends : probe_->ask_helpers);
  if (!updates_.empty()) due(next_gossip_);
  for (const std::string& alias : suspects_) {
    const Member& m = members_.find(alias)->second;
    due(suspicion_due(m));
    due(m.suspected->next_notice);
  }
  for (const auto& [seq, r] : relays_) due(r.expires);
  for (const PendingJoin& j : joins_) {
    due(std::max(j.start, j.next_send));
    if (j.kind != JoinKind::kSeed) due(std::max(j.start, j.deadline));
    if (j.kind == JoinKind::kSeed && j.refused_since) due(*j.refused_since + timers_.refused_limit);
  }
  for (const auto& [alias, l] : lost_) {
    due(l.next_probe);
    due(l.since + timers_.lost_ttl + kStep);
  }
  for (const Seed& seed : seeds_) {
    if (!seed_is_member(seed)) due(seed.next_hello);
  }
  for (const auto& [alias, c] : contacts_) due(c.since + timers_.contact_timeout + kStep);
  for (const auto& [alias, d] : departed_) due(d.until);
  for (const auto& [endpoint, t] : contacted_at_) due(t + timers_.contact_retry);
  return at;
}

}  // namespace iridium::cluster
