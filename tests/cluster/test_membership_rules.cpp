// The membership state machine, driven frame by frame on a fake clock: every
// admission rule and state change, SWIM probing with the Lifeguard
// extensions, incarnations and the dissemination of updates, and each defect
// measured on the old core (issue 8's table), without a socket.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <map>
#include <set>

#include "cluster/membership.h"
#include "cluster/suspicion.h"

using namespace iridium::cluster;
using iridium::ErrorKind;

namespace {

const TimePoint kStart = TimePoint{} + std::chrono::hours(1);

struct Peer {
  NodeAddress address;
  std::string instance;
  uint64_t incarnation = 0;
  Message make(MessageType type) const {
    Message m;
    m.type = type;
    m.sender = address;
    m.instance = instance;
    m.incarnation = incarnation;
    return m;
  }
  Endpoint endpoint() const { return endpoint_of(address); }
  // What someone believes of this peer, as it spreads.
  Update update(UpdateState state, uint64_t at_incarnation, const std::string& from = "") const {
    return Update{address, instance, at_incarnation, state, from};
  }
};

Peer peer(const std::string& alias, uint16_t port, std::string instance = "") {
  return Peer{NodeAddress{alias, "127.0.0.1", port}, instance.empty() ? alias + "1" : instance};
}

// The spec's numbers (config.h): N counts this node and its members.
Millis suspicion_floor(const Timers& t, std::size_t n) {
  return std::chrono::duration_cast<Millis>(
      t.probe_period * (t.suspicion_mult * std::log10(static_cast<double>(n) + 1.0)));
}
Millis suspicion_ceiling(const Timers& t, std::size_t n) {
  return std::chrono::duration_cast<Millis>(suspicion_floor(t, n) * t.suspicion_max_mult);
}
std::size_t retransmit_limit(const Timers& t, std::size_t n) {
  return t.retransmit_mult *
         static_cast<std::size_t>(std::ceil(std::log10(static_cast<double>(n) + 1.0)));
}

// One Membership ("me" at 127.0.0.1:1000) and its outputs. Peers set to
// answer do so at once: acks to our pings (on our dealer), and
// indirect_ack or indirect_nack to our ping_reqs (on our listener).
struct Rig {
  Timers timers;
  TimePoint now = kStart;
  Membership m;
  std::vector<Action> actions;
  std::vector<Event> events;
  std::map<Endpoint, Peer> acking;
  std::map<Endpoint, std::pair<Peer, MessageType>> helping;

  Rig() : Rig(Timers{}) {}
  explicit Rig(Timers t)
      : timers(t),
        m(MembershipConfig{NodeAddress{"me", "127.0.0.1", 1000}, "me1", t, 42}, kStart) {}

  void collect() {
    std::vector<std::pair<Source, Message>> answers;
    for (auto& a : m.take_actions()) {
      if (const auto* s = std::get_if<SendTo>(&a)) answer(*s, answers);
      actions.push_back(std::move(a));
    }
    for (auto& e : m.take_events()) events.push_back(std::move(e));
    for (auto& [source, message] : answers) {
      m.receive(message, source, now);
      collect();
    }
  }
  void answer(const SendTo& s, std::vector<std::pair<Source, Message>>& out) const {
    if (s.message.type == MessageType::kPing) {
      if (auto it = acking.find(s.to); it != acking.end()) {
        Message ack = it->second.make(MessageType::kAck);
        ack.seq = s.message.seq;
        out.emplace_back(Source::from_dealer(s.to), std::move(ack));
      }
    } else if (s.message.type == MessageType::kPingReq) {
      if (auto it = helping.find(s.to); it != helping.end()) {
        const auto& [helper, type] = it->second;
        Message reply = helper.make(type);
        reply.seq = s.message.seq;
        reply.target = s.message.target;
        reply.target_instance = s.message.target_instance;
        out.emplace_back(Source::from_router("rid-" + helper.address.alias), std::move(reply));
      }
    }
  }
  // p acks every ping from now on.
  void respond(const Peer& p) { acking.insert_or_assign(p.endpoint(), p); }
  // p answers no ping from now on.
  void silence(const Peer& p) { acking.erase(p.endpoint()); }
  // Lets connect_grace pass, so that the members admitted so far are no
  // longer connecting: from here a probe of them that fails accuses.
  void pass_connect_grace() {
    advance(timers.connect_grace);
    clear();
  }
  // p answers every ping_req with `type` (indirect_ack or indirect_nack).
  void help(const Peer& p, MessageType type) {
    helping.insert_or_assign(p.endpoint(), std::pair{p, type});
  }
  void clear() {
    collect();
    actions.clear();
    events.clear();
  }
  void receive(const Message& msg, const std::string& routing_id = "rid") {
    m.receive(msg, Source::from_router(routing_id), now);
    collect();
  }
  void receive_on_dealer(const Message& msg, const Endpoint& from) {
    m.receive(msg, Source::from_dealer(from), now);
    collect();
  }
  // A gossip frame from p carrying `updates`.
  void gossip_from(const Peer& p, std::vector<Update> updates) {
    Message g = p.make(MessageType::kGossip);
    g.updates = std::move(updates);
    receive(g, "rid-" + p.address.alias);
  }
  void tick_at(TimePoint t) {
    now = t;
    m.tick(now);
    collect();
  }
  void advance(Millis d, Millis step = Millis(10)) {
    const TimePoint end = now + d;
    while (now < end) tick_at(std::min(end, now + step));
  }
  // Ticks every 10 ms until `done` holds or `limit` passes; done()'s last answer.
  bool advance_until(const std::function<bool()>& done, Millis limit) {
    const TimePoint end = now + limit;
    while (!done() && now < end) tick_at(now + Millis(10));
    return done();
  }
  void link(const Endpoint& e, LinkEvent ev) {
    m.link_changed(e, ev, now);
    collect();
  }
  // Admits each peer, which from then on acks every ping.
  void admit_answering(std::initializer_list<Peer> peers) {
    for (const Peer& p : peers) {
      admit(p);
      respond(p);
    }
  }
  // Admits p through a hello, as a new member would join.
  void admit(const Peer& p) {
    receive(p.make(MessageType::kHello));
    REQUIRE(m.is_member(p.address.alias));
    clear();
  }

  std::vector<SendTo> sent(MessageType type,
                           const std::optional<Endpoint>& to = std::nullopt) const {
    std::vector<SendTo> out;
    for (const Action& a : actions) {
      if (auto* s = std::get_if<SendTo>(&a); s && s->message.type == type && (!to || s->to == *to))
        out.push_back(*s);
    }
    return out;
  }
  // How many times the connection to `to` was released.
  std::size_t released(const Endpoint& to) const {
    return std::count_if(actions.begin(), actions.end(), [&](const Action& a) {
      auto* r = std::get_if<Release>(&a);
      return r != nullptr && r->to == to;
    });
  }
  std::vector<ReplyTo> replies(MessageType type) const {
    std::vector<ReplyTo> out;
    for (const Action& a : actions) {
      if (auto* r = std::get_if<ReplyTo>(&a); r && r->message.type == type) out.push_back(*r);
    }
    return out;
  }
  // Every frame that went out, sent or replied.
  std::vector<Message> outgoing() const {
    std::vector<Message> out;
    for (const Action& a : actions) {
      if (auto* s = std::get_if<SendTo>(&a)) out.push_back(s->message);
      if (auto* r = std::get_if<ReplyTo>(&a)) out.push_back(r->message);
    }
    return out;
  }
  std::vector<Event> happened(EventKind kind) const {
    std::vector<Event> out;
    std::copy_if(events.begin(), events.end(), std::back_inserter(out),
                 [&](const Event& e) { return e.kind == kind; });
    return out;
  }
  std::optional<MemberView> member(const std::string& alias) const {
    for (const MemberView& v : m.members(now)) {
      if (v.address.alias == alias) return v;
    }
    return std::nullopt;
  }
  bool suspect(const std::string& alias) const {
    auto v = member(alias);
    return v && v->state == MemberState::kSuspect;
  }
  // A heartbeat from p now (news of it; no answer to any probe).
  void beat(const Peer& p) { receive(p.make(MessageType::kHeartbeat)); }
};

bool carries(const Message& m, const Update& u) {
  return std::find(m.updates.begin(), m.updates.end(), u) != m.updates.end();
}

}  // namespace

// ---- admission --------------------------------------------------------------

TEST_CASE("a hello from a new node admits it, answers with the members and announces it",
          "[membership]") {
  Rig r;
  const Peer a = peer("a", 2001), b = peer("b", 2002);
  r.admit(a);
  r.receive(b.make(MessageType::kHello), "rid-b");
  CHECK(r.m.is_member("b"));
  REQUIRE(r.replies(MessageType::kHelloAck).size() == 1);
  const ReplyTo ack = r.replies(MessageType::kHelloAck)[0];
  CHECK(ack.routing_id == "rid-b");
  REQUIRE(ack.message.nodes.size() == 1);
  CHECK(ack.message.nodes[0] == a.address);
  // a hears of b now, not at its next gossip.
  auto announce = r.sent(MessageType::kMembers, a.endpoint());
  REQUIRE(announce.size() == 1);
  CHECK(announce[0].message.nodes == std::vector<NodeAddress>{b.address});
  CHECK(r.happened(EventKind::kJoined).size() == 1);
  // and b gets a heartbeat at once.
  CHECK(r.sent(MessageType::kHeartbeat, b.endpoint()).size() == 1);
}

TEST_CASE("past max_members a new node is refused as cluster_full, and taken once there is room",
          "[membership]") {
  Timers small;
  small.max_members = 2;
  Rig r(small);
  const Peer a = peer("a", 2001), b = peer("b", 2002), c = peer("c", 2003), d = peer("d", 2004);
  r.admit(a);
  r.admit(b);
  r.receive(c.make(MessageType::kHello), "rid-c");
  auto nacks = r.replies(MessageType::kHelloNack);
  REQUIRE(nacks.size() == 1);
  CHECK(nacks[0].message.code == kNackFull);
  CHECK(nacks[0].message.reason ==
        "the cluster is full: me lists 2 members, its bound (max_members)");
  CHECK_FALSE(r.m.is_member("c"));
  r.clear();
  // Nor does a join, or a frame from a node we contacted, add one.
  r.receive(d.make(MessageType::kJoin));
  CHECK(r.happened(EventKind::kRefused).size() == 1);
  r.beat(d);
  r.beat(d);
  CHECK_FALSE(r.m.is_member("d"));
  CHECK(r.m.members(r.now).size() == 2);

  r.receive(a.make(MessageType::kLeave));
  r.receive(c.make(MessageType::kHello), "rid-c");
  CHECK(r.m.is_member("c"));
}

TEST_CASE("a hello with a live member's alias from elsewhere is refused and changes nothing",
          "[membership]") {
  Rig r;
  const Peer a = peer("a", 2001);
  r.admit(a);
  const Peer impostor{NodeAddress{"a", "127.0.0.1", 2999}, "other"};
  r.receive(impostor.make(MessageType::kHello), "rid-x");
  auto nacks = r.replies(MessageType::kHelloNack);
  REQUIRE(nacks.size() == 1);
  CHECK(nacks[0].routing_id == "rid-x");
  CHECK(nacks[0].message.code == kNackDuplicate);
  CHECK(r.happened(EventKind::kRefused).size() == 1);
  auto view = r.member("a");
  REQUIRE(view);
  CHECK(view->instance == a.instance);
  CHECK(view->address == a.address);
  CHECK(view->state == MemberState::kAlive);
  // The impostor's heartbeats change nothing either, and the real member
  // stays listed for 2 s, well past a suspicion's timeout, because it
  // answers our probes (was: because it beat).
  r.respond(a);
  for (int i = 0; i < 20; ++i) {
    r.receive(impostor.make(MessageType::kHeartbeat));
    r.advance(Millis(100));
  }
  view = r.member("a");
  REQUIRE(view);
  CHECK(view->instance == a.instance);
  CHECK(view->state == MemberState::kAlive);
  CHECK(r.happened(EventKind::kDead).empty());
  CHECK(r.happened(EventKind::kRestarted).empty());
  CHECK(r.m.counters().probes >= 5);
}

// Changed meaning: "silent" is now "suspected after an unanswered probe".
TEST_CASE("a suspect member's alias is not given away before it is declared dead", "[membership]") {
  Rig r;
  const Peer a = peer("a", 2001);
  r.admit(a);
  r.pass_connect_grace();
  REQUIRE(r.advance_until([&] { return r.suspect("a"); }, Millis(1000)));
  const Peer impostor{NodeAddress{"a", "127.0.0.1", 2999}, "other"};
  r.receive(impostor.make(MessageType::kHello));
  CHECK(r.replies(MessageType::kHelloNack).size() == 1);
  CHECK(r.member("a")->instance == a.instance);
}

TEST_CASE("a hello with our own alias from another process is refused", "[membership]") {
  Rig r;
  const Peer twin{NodeAddress{"me", "127.0.0.1", 3000}, "twin"};
  r.receive(twin.make(MessageType::kHello));
  auto nacks = r.replies(MessageType::kHelloNack);
  REQUIRE(nacks.size() == 1);
  CHECK(nacks[0].message.code == kNackDuplicate);
  CHECK(r.m.members(r.now).empty());
}

TEST_CASE("a hello from this node itself is answered 'self'", "[membership]") {
  Rig r;
  Message own;
  own.type = MessageType::kHello;
  own.sender = r.m.self();
  own.instance = r.m.instance();
  r.receive(own);
  auto nacks = r.replies(MessageType::kHelloNack);
  REQUIRE(nacks.size() == 1);
  CHECK(nacks[0].message.code == kNackSelf);
  CHECK(r.happened(EventKind::kRefused).empty());
}

TEST_CASE("a new instance at a member's address is its restart and replaces it at once",
          "[membership]") {
  Rig r;
  const Peer a = peer("a", 2001);
  r.admit(a);
  const Peer a2{a.address, "a2"};
  r.receive(a2.make(MessageType::kHello));
  CHECK(r.replies(MessageType::kHelloAck).size() == 1);
  CHECK(r.happened(EventKind::kRestarted).size() == 1);
  auto view = r.member("a");
  REQUIRE(view);
  CHECK(view->instance == "a2");
  // Listed continuously from the first frame on: no drop while the new
  // instance answers our probes (was: while it beat).
  r.respond(a2);
  for (int i = 0; i < 30; ++i) {
    r.advance(Millis(100));
    REQUIRE(r.member("a"));
    CHECK(r.member("a")->state == MemberState::kAlive);
  }
  CHECK(r.happened(EventKind::kDead).empty());
  CHECK_FALSE(r.sent(MessageType::kPing, a.endpoint()).empty());
}

TEST_CASE("a restart seen first through a heartbeat also replaces the old instance",
          "[membership]") {
  Rig r;
  const Peer a = peer("a", 2001);
  r.admit(a);
  const Peer a2{a.address, "a2"};
  r.beat(a2);
  CHECK(r.member("a")->instance == "a2");
}

TEST_CASE("a join admits its sender without an answer, and duplicates are ignored",
          "[membership]") {
  Rig r;
  const Peer a = peer("a", 2001);
  r.receive(a.make(MessageType::kJoin));
  CHECK(r.m.is_member("a"));
  CHECK(r.replies(MessageType::kHelloAck).empty());
  r.clear();
  const Peer impostor{NodeAddress{"a", "127.0.0.1", 2999}, "other"};
  r.receive(impostor.make(MessageType::kJoin));
  CHECK(r.member("a")->instance == a.instance);
  CHECK(r.happened(EventKind::kRefused).size() == 1);
}

// ---- probing (SWIM) -------------------------------------------------------------

// Changed meaning: silence alone accuses no one; an unanswered probe does.
TEST_CASE("a silent member is pinged, asked about through helpers, suspected, then dies",
          "[membership][swim]") {
  Rig r;
  const Peer a = peer("a", 2001), b = peer("b", 2002), c = peer("c", 2003);
  r.admit_answering({a, b, c});
  r.pass_connect_grace();
  r.silence(a);  // a answers nothing from now on; b and c answer pings and ping_reqs
  r.help(b, MessageType::kIndirectNack);
  r.help(c, MessageType::kIndirectNack);
  REQUIRE(r.advance_until([&] { return r.suspect("a"); }, Millis(2000)));
  CHECK(r.happened(EventKind::kSuspect).size() == 1);
  CHECK_FALSE(r.sent(MessageType::kPing, a.endpoint()).empty());
  auto requests = r.sent(MessageType::kPingReq);
  REQUIRE(requests.size() == 2);  // every other member, fewer than indirect_probes
  for (const SendTo& s : requests) {
    CHECK(s.to != a.endpoint());
    CHECK(s.message.target == a.address);
    CHECK(s.message.target_instance == a.instance);
  }
  r.advance(suspicion_ceiling(r.timers, 4) + Millis(20));
  CHECK_FALSE(r.m.is_member("a"));
  auto dead = r.happened(EventKind::kDead);
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].node == a.address);
  CHECK(dead[0].cause == DeathCause::kSilent);
  CHECK(r.m.is_member("b"));
  CHECK(r.m.is_member("c"));
  CHECK(r.happened(EventKind::kSuspect).size() == 1);  // b and c were never suspected
}

TEST_CASE("each probe period pings one member, and each round of N periods pings every member once",
          "[membership][swim]") {
  Rig r;
  std::vector<Peer> peers;
  std::set<Endpoint> everyone;
  for (uint16_t i = 0; i < 5; ++i) {
    peers.push_back(peer("p" + std::to_string(i), static_cast<uint16_t>(3000 + i)));
    r.admit(peers.back());
    r.respond(peers.back());
    everyone.insert(peers.back().endpoint());
  }
  // Three rounds, one period at a time: each period's ping goes to one
  // member, and a round's pings go to every member once.
  for (int round = 0; round < 3; ++round) {
    std::set<Endpoint> pinged;
    for (std::size_t period = 0; period < peers.size(); ++period) {
      r.clear();
      r.advance(r.timers.probe_period);
      auto pings = r.sent(MessageType::kPing);
      INFO("round " << round << ", period " << period);
      REQUIRE(pings.size() == 1);
      CHECK(pinged.insert(pings[0].to).second);
    }
    CHECK(pinged == everyone);
  }
  CHECK(r.m.counters().probes == 15);
  CHECK(r.m.counters().probes_failed == 0);
  // A newcomer joins mid-round at a random place in the rest of it: it is
  // pinged before the round ends (so within N + 1 periods), and the round
  // still pings every member once.
  r.clear();
  r.advance(r.timers.probe_period);
  const Peer newcomer = peer("new", 3100);
  r.admit(newcomer);
  r.respond(newcomer);
  std::size_t newcomer_pings = 0;
  for (std::size_t period = 0; period < peers.size() + 1; ++period) {
    r.advance(r.timers.probe_period);
    for (const SendTo& ping : r.sent(MessageType::kPing))
      newcomer_pings += ping.to == newcomer.endpoint() ? 1 : 0;
    r.clear();
  }
  CHECK(newcomer_pings >= 1);
}

namespace {

// When a, the member probed, was listed: a member listed within
// connect_grace may still be connecting, and a probe of it that fails is void.
enum class Listed { kLongAgo, kJustNow };

// "me" with a (silent) and four members that answer pings; `answer` is how
// they answer ping_reqs (kHello: not at all). Returns when a ping to a has
// gone out: past connect_grace, or (kJustNow) in the first round, right
// after all five were admitted.
struct ProbeOfA {
  Rig r;
  Peer a = peer("a", 2001);
  std::vector<Peer> others;
  uint64_t seq = 0;
  TimePoint pinged_at;

  explicit ProbeOfA(MessageType answer = MessageType::kHello, Listed listed = Listed::kLongAgo) {
    r.admit(a);
    for (uint16_t i = 0; i < 4; ++i) {
      others.push_back(peer("h" + std::to_string(i), static_cast<uint16_t>(2100 + i)));
      r.admit(others.back());
      r.respond(others.back());
      if (answer != MessageType::kHello) r.help(others.back(), answer);
    }
    if (listed == Listed::kLongAgo) {
      r.respond(a);  // a answers while connect_grace passes, then falls silent
      r.pass_connect_grace();
      r.silence(a);
    }
    // Two rounds of five probes: a is pinged in one of them.
    REQUIRE(r.advance_until([&] { return !r.sent(MessageType::kPing, a.endpoint()).empty(); },
                            10 * r.timers.probe_period));
    seq = r.sent(MessageType::kPing, a.endpoint())[0].message.seq;
    pinged_at = r.now;
    r.clear();
  }
};

}  // namespace

TEST_CASE("no ack within probe_timeout: ping_req to indirect_probes helpers, not before",
          "[membership][swim]") {
  ProbeOfA p;
  Rig& r = p.r;
  REQUIRE(r.timers.indirect_probes == 3);
  r.advance(r.timers.probe_timeout - Millis(10));
  CHECK(r.sent(MessageType::kPingReq).empty());
  r.advance(Millis(10));
  auto requests = r.sent(MessageType::kPingReq);
  REQUIRE(requests.size() == r.timers.indirect_probes);  // 3 of the 4 others
  std::set<Endpoint> helpers;
  for (const SendTo& s : requests) {
    helpers.insert(s.to);
    CHECK(s.to != p.a.endpoint());
    CHECK(s.message.seq == p.seq);
    CHECK(s.message.target == p.a.address);
    CHECK(s.message.target_instance == p.a.instance);
  }
  CHECK(helpers.size() == r.timers.indirect_probes);  // distinct helpers
  CHECK_FALSE(r.suspect("a"));
}

TEST_CASE("no answer by the period's end: suspect, and the suspect is told in a gossip frame",
          "[membership][swim]") {
  ProbeOfA p;
  Rig& r = p.r;
  r.advance(r.timers.probe_period - Millis(10));
  CHECK_FALSE(r.suspect("a"));
  CHECK(r.happened(EventKind::kSuspect).empty());
  r.advance(Millis(10));
  CHECK(r.now - p.pinged_at == r.timers.probe_period);
  CHECK(r.suspect("a"));
  auto suspected = r.happened(EventKind::kSuspect);
  REQUIRE(suspected.size() == 1);
  CHECK(suspected[0].node == p.a.address);
  CHECK(suspected[0].accuser == "me");
  CHECK(r.m.counters().probes_failed == 1);
  // Told directly, so that it can refute before anyone acts on it.
  auto told = r.sent(MessageType::kGossip, p.a.endpoint());
  REQUIRE(told.size() == 1);
  CHECK(carries(told[0].message, p.a.update(UpdateState::kSuspect, 0, "me")));
}

namespace {
// Gossip frames to `to` that carry `u`: notices of a suspicion, by their sender.
std::size_t frames_carrying(const Rig& r, const Peer& to, const Update& u) {
  std::size_t n = 0;
  for (const auto& s : r.sent(MessageType::kGossip, to.endpoint())) n += carries(s.message, u);
  return n;
}
}  // namespace

TEST_CASE("an accuser tells the suspect again every probe period while the suspicion lasts",
          "[membership][swim]") {
  ProbeOfA p;
  Rig& r = p.r;
  r.advance(r.timers.probe_period);
  REQUIRE(r.suspect("a"));
  const Update notice = p.a.update(UpdateState::kSuspect, 0, "me");
  CHECK(frames_carrying(r, p.a, notice) == 1);
  r.advance(r.timers.probe_period);
  REQUIRE(r.suspect("a"));
  CHECK(frames_carrying(r, p.a, notice) == 2);
}

TEST_CASE("a member that only heard of a suspicion tells the suspect once, not every period",
          "[membership][swim]") {
  Rig r;
  const Peer a = peer("a", 2001), b = peer("b", 2002), c = peer("c", 2003);
  r.admit_answering({a, b, c});
  r.clear();
  r.gossip_from(b, {a.update(UpdateState::kSuspect, 0, "b")});
  REQUIRE(r.suspect("a"));
  const Update notice = a.update(UpdateState::kSuspect, 0, "me");
  CHECK(frames_carrying(r, a, notice) == 1);
  // A lone accuser's suspicion lasts its ceiling, several probe periods.
  REQUIRE(suspicion_ceiling(r.timers, 4) > 3 * r.timers.probe_period);
  r.advance(3 * r.timers.probe_period);
  REQUIRE(r.suspect("a"));
  CHECK(frames_carrying(r, a, notice) == 1);
}

TEST_CASE("a ping to a member still connecting that could not leave accuses no one",
          "[membership][swim]") {
  ProbeOfA p(MessageType::kHello, Listed::kJustNow);
  Rig& r = p.r;
  REQUIRE(r.now - kStart < r.timers.connect_grace);   // a was listed at kStart
  r.m.ping_unsent(p.a.endpoint(), p.seq + 1, r.now);  // not our probe's: ignored
  r.m.ping_unsent(peer("x", 2999).endpoint(), p.seq, r.now);
  CHECK(r.m.counters().probes_void == 0);
  r.m.ping_unsent(p.a.endpoint(), p.seq, r.now);
  CHECK(r.m.counters().probes_void == 1);
  r.advance(r.timers.probe_period);
  CHECK(r.sent(MessageType::kPingReq).empty());
  CHECK_FALSE(r.suspect("a"));
  CHECK(r.m.counters().probes_failed == 0);
}

TEST_CASE("an unanswered probe of a member listed within connect_grace is void: no one accused",
          "[membership][swim]") {
  // Helpers that answer no ping_req, or that nack: a member still
  // connecting may be slow to answer them as well.
  const MessageType helpers_answer = GENERATE(MessageType::kHello, MessageType::kIndirectNack);
  ProbeOfA p(helpers_answer, Listed::kJustNow);
  Rig& r = p.r;
  r.advance(r.timers.probe_period);
  REQUIRE(r.now - kStart < r.timers.connect_grace);
  CHECK(r.sent(MessageType::kPingReq).size() == r.timers.indirect_probes);  // helpers asked
  CHECK_FALSE(r.suspect("a"));
  CHECK(r.happened(EventKind::kSuspect).empty());
  CHECK(r.m.counters().probes_void == 1);
  CHECK(r.m.counters().probes_failed == 0);
  CHECK(r.m.health_score() == 0);  // nor do silent helpers say anything about us
  // Once connect_grace has passed, the same silence is a failed probe.
  REQUIRE(r.advance_until([&] { return r.suspect("a"); },
                          r.timers.connect_grace + 10 * r.timers.probe_period));
  CHECK(r.now - kStart >= r.timers.connect_grace);
  CHECK(r.m.counters().probes_failed == 1);
}

TEST_CASE("past connect_grace an unsent ping is a probe like any other: helpers, then suspicion",
          "[membership][swim]") {
  Rig r;
  const Peer a = peer("a", 2001);
  r.admit(a);
  r.respond(a);
  for (uint16_t i = 0; i < 4; ++i) {
    const Peer helper = peer("h" + std::to_string(i), static_cast<uint16_t>(2100 + i));
    r.admit(helper);
    r.respond(helper);
  }
  r.advance(r.timers.connect_grace);
  r.acking.erase(a.endpoint());
  r.clear();
  REQUIRE(r.advance_until([&] { return !r.sent(MessageType::kPing, a.endpoint()).empty(); },
                          Millis(3000)));
  const uint64_t seq = r.sent(MessageType::kPing, a.endpoint())[0].message.seq;
  r.m.ping_unsent(a.endpoint(), seq, r.now);
  CHECK(r.m.counters().probes_void == 0);
  r.advance(r.timers.probe_period);
  CHECK(r.sent(MessageType::kPingReq).size() == r.timers.indirect_probes);
  CHECK(r.suspect("a"));
}

// Changed meaning: a helper's vouch is an answer, so the member is never
// suspected (it was listed as suspect, "honestly", under heartbeats).
TEST_CASE("an indirect_ack saves the probed member: a member others reach is never suspected",
          "[membership][swim]") {
  Rig r;
  const Peer a = peer("a", 2001), b = peer("b", 2002);
  r.admit(a);
  r.admit(b);
  r.respond(b);
  r.help(b, MessageType::kIndirectAck);  // our link to a is cut; b reaches it every time
  r.advance(Millis(10000));
  CHECK(r.m.is_member("a"));
  CHECK(r.member("a")->state == MemberState::kAlive);
  CHECK(r.happened(EventKind::kSuspect).empty());
  CHECK(r.happened(EventKind::kDead).empty());
  CHECK(r.m.counters().probes_failed == 0);
  CHECK(r.sent(MessageType::kPingReq, b.endpoint()).size() >= 10);
  CHECK(r.m.health_score() == 0);
}

// Changed meaning: an unmatched vouch is a late answer (not dropped) when a
// member sends it, and saves nobody; a stranger's is still dropped.
TEST_CASE("a vouch that answers no probe of ours clears nothing, and a stranger's is dropped",
          "[membership][swim]") {
  Rig r;
  const Peer a = peer("a", 2001), b = peer("b", 2002), stranger = peer("s", 2009);
  r.admit(a);
  r.admit(b);
  r.respond(b);
  r.pass_connect_grace();
  REQUIRE(r.advance_until([&] { return r.suspect("a"); }, Millis(2000)));
  Message vouch = b.make(MessageType::kIndirectAck);
  vouch.seq = 999;
  vouch.target = a.address;
  vouch.target_instance = a.instance;
  r.receive(vouch);
  CHECK(r.suspect("a"));
  CHECK(r.happened(EventKind::kRecovered).empty());
  CHECK(r.m.counters().frames_dropped == 0);
  Message from_stranger = stranger.make(MessageType::kIndirectAck);
  from_stranger.seq = 999;
  from_stranger.target = a.address;
  from_stranger.target_instance = a.instance;
  r.receive(from_stranger);
  CHECK(r.m.counters().frames_dropped == 1);
  CHECK(r.suspect("a"));
}

// Changed meaning: under heartbeats any direct frame cleared a suspicion;
// now only a higher incarnation does.
TEST_CASE("an ack from a suspect does not clear the suspicion, but its refutation does",
          "[membership][swim]") {
  Rig r;
  Peer a = peer("a", 2001);
  r.admit_answering({a});
  r.pass_connect_grace();
  r.silence(a);
  REQUIRE(r.advance_until([&] { return r.suspect("a"); }, Millis(1000)));
  auto pings = r.sent(MessageType::kPing, a.endpoint());
  REQUIRE_FALSE(pings.empty());
  Message ack = a.make(MessageType::kAck);
  ack.seq = pings.back().message.seq;
  r.receive_on_dealer(ack, a.endpoint());
  CHECK(r.suspect("a"));
  CHECK(r.happened(EventKind::kRecovered).empty());
  // a refutes: any frame of its own at a higher incarnation.
  a.incarnation = 1;
  r.gossip_from(a, {a.update(UpdateState::kAlive, 1)});
  CHECK(r.member("a")->state == MemberState::kAlive);
  CHECK(r.member("a")->incarnation == 1);
  CHECK(r.happened(EventKind::kRecovered).size() == 1);
  // The suspicion's timer went with it: a, answering from now on, stays.
  r.respond(a);
  r.advance(Millis(1000));
  CHECK(r.m.is_member("a"));
  CHECK(r.happened(EventKind::kDead).empty());
}

TEST_CASE("a helper relays a ping for a ping_req and answers indirect_ack or indirect_nack",
          "[membership][swim]") {
  Rig r;
  const Peer requester = peer("q", 2001), target = peer("t", 2002);
  r.admit(requester);
  r.admit(target);
  auto ping_req = [&](uint64_t seq, const Peer& about) {
    Message req = requester.make(MessageType::kPingReq);
    req.seq = seq;
    req.target = about.address;
    req.target_instance = about.instance;
    r.receive(req, "rid-q");
  };
  // The target answers the relayed ping: an indirect_ack with the requester's seq.
  ping_req(7, target);
  CHECK(r.sent(MessageType::kIndirectAck).empty());
  auto pings = r.sent(MessageType::kPing, target.endpoint());
  REQUIRE(pings.size() == 1);
  Message ack = target.make(MessageType::kAck);
  ack.seq = pings[0].message.seq;
  r.receive_on_dealer(ack, target.endpoint());
  auto vouches = r.sent(MessageType::kIndirectAck, requester.endpoint());
  REQUIRE(vouches.size() == 1);
  CHECK(vouches[0].message.seq == 7);
  CHECK(vouches[0].message.target == target.address);
  CHECK(vouches[0].message.target_instance == target.instance);
  CHECK(r.sent(MessageType::kIndirectNack).empty());
  r.clear();
  // It does not answer within probe_timeout: an indirect_nack, not before.
  ping_req(8, target);
  REQUIRE(r.sent(MessageType::kPing, target.endpoint()).size() == 1);
  auto nacks_for = [&](uint64_t seq) {
    std::size_t n = 0;
    for (const SendTo& s : r.sent(MessageType::kIndirectNack, requester.endpoint()))
      n += s.message.seq == seq ? 1 : 0;
    return n;
  };
  r.advance(r.timers.probe_timeout / 2 - Millis(10));
  CHECK(nacks_for(8) == 0);
  r.advance(Millis(10));
  CHECK(nacks_for(8) == 1);
  CHECK(r.sent(MessageType::kIndirectAck).empty());
  r.clear();
  // Not a member of ours, or another instance of one: an indirect_nack at
  // once, and no ping to an address of the requester's choosing.
  const Peer unknown = peer("x", 2999);
  ping_req(9, unknown);
  ping_req(10, Peer{target.address, "t0"});
  CHECK(nacks_for(9) == 1);
  CHECK(nacks_for(10) == 1);
  CHECK(r.sent(MessageType::kPing).empty());
}

TEST_CASE("probes from non-members are dropped unanswered", "[membership]") {
  Rig r;
  const Peer stranger = peer("s", 2001);
  Message req = stranger.make(MessageType::kPingReq);
  req.target = NodeAddress{"x", "127.0.0.1", 9};
  req.target_instance = "x1";
  r.m.receive(req, Source::from_router("r"), r.now);
  r.collect();
  CHECK(r.actions.empty());
  CHECK(r.m.counters().frames_dropped == 1);
  // A stranger's ping gets no ack (it is contacted instead, to join properly).
  Message ping = stranger.make(MessageType::kPing);
  ping.seq = 1;
  r.receive(ping);
  CHECK(r.replies(MessageType::kAck).empty());
  CHECK_FALSE(r.m.is_member("s"));
}

// ---- Lifeguard ------------------------------------------------------------------

TEST_CASE(
    "local health: helpers' indirect_nacks keep it, silent helpers raise it and stretch the period",
    "[membership][swim][lifeguard]") {
  SECTION("every helper nacks: the fault is a's, not ours") {
    ProbeOfA p(MessageType::kIndirectNack);
    Rig& r = p.r;
    r.acking.clear();  // no answered probe lowers the score meanwhile
    REQUIRE(r.advance_until([&] { return r.suspect("a"); }, Millis(500)));
    CHECK(r.sent(MessageType::kPingReq).size() == 3);
    CHECK(r.m.health_score() == 0);
    // The next probe goes one plain period later.
    r.clear();
    r.advance(r.timers.probe_period);
    CHECK(r.sent(MessageType::kPing).size() == 1);
  }
  SECTION("no helper answers at all: we are the likely problem") {
    ProbeOfA p;
    Rig& r = p.r;
    r.acking.clear();  // no answered probe lowers the score meanwhile
    REQUIRE(r.advance_until([&] { return r.suspect("a"); }, Millis(500)));
    CHECK(r.sent(MessageType::kPingReq).size() == 3);
    CHECK(r.m.health_score() == 3);  // one point per silent helper
    // From now on every probe is answered, directly or by helpers' nacks.
    for (const Peer& other : p.others) {
      r.respond(other);
      r.help(other, MessageType::kIndirectNack);
    }
    // Each point stretches the probe period by one more multiple.
    r.clear();
    r.advance(r.timers.probe_period * 4 - Millis(10));
    CHECK(r.sent(MessageType::kPing).empty());
    r.advance(Millis(10));
    CHECK(r.sent(MessageType::kPing).size() == 1);
    // Answered probes bring it back down.
    CHECK(r.advance_until([&] { return r.m.health_score() == 0; }, r.timers.probe_period * 20));
  }
}

// ---- incarnations and updates ----------------------------------------------

namespace {
// Two members, a and b, and a Peer standing for this node ("me", instance
// me1), to carry updates about it.
struct AboutMe {
  Rig r;
  Peer a = peer("a", 2001), b = peer("b", 2002);
  Peer me{NodeAddress{"me", "127.0.0.1", 1000}, "me1"};
  AboutMe() {
    r.admit(a);
    r.admit(b);
  }
};
}  // namespace

TEST_CASE("a suspect update about this node makes it refute with a higher incarnation",
          "[membership][swim]") {
  AboutMe f;
  Rig& r = f.r;
  const Peer &a = f.a, &b = f.b, &me = f.me;
  REQUIRE(r.m.incarnation() == 0);
  // About another instance of "me", or not an accusation: nothing to refute.
  r.gossip_from(a, {Peer{me.address, "me0"}.update(UpdateState::kSuspect, 5, "a"),
                    me.update(UpdateState::kAlive, 3)});
  CHECK(r.m.incarnation() == 0);
  CHECK(r.m.counters().refutations == 0);
  // a accuses this very instance.
  r.gossip_from(a, {me.update(UpdateState::kSuspect, 0, "a")});
  CHECK(r.m.incarnation() == 1);
  CHECK(r.m.counters().refutations == 1);
  // The accuser hears the alive update first, directly...
  const Update alive = me.update(UpdateState::kAlive, 1);
  auto told = r.sent(MessageType::kGossip, a.endpoint());
  REQUIRE(told.size() == 1);
  CHECK(carries(told[0].message, alive));
  CHECK(told[0].message.incarnation == 1);
  // ...and it spreads to the others on later frames.
  r.clear();
  r.advance(Millis(500));
  bool spread_to_b = false;
  for (const SendTo& s : r.sent(MessageType::kGossip, b.endpoint()))
    spread_to_b = spread_to_b || carries(s.message, alive);
  for (const SendTo& s : r.sent(MessageType::kPing, b.endpoint()))
    spread_to_b = spread_to_b || carries(s.message, alive);
  CHECK(spread_to_b);
  for (const Message& m : r.outgoing()) CHECK(m.incarnation == 1);
  // An accusation of an older incarnation is already refuted.
  r.gossip_from(b, {me.update(UpdateState::kSuspect, 0, "b")});
  CHECK(r.m.incarnation() == 1);
  // A death certificate of the current one is refuted too.
  r.gossip_from(b, {me.update(UpdateState::kDead, 1)});
  CHECK(r.m.incarnation() == 2);
  CHECK(r.m.counters().refutations == 2);
}

TEST_CASE("an accusation this node outbid already is answered with the incarnation that did",
          "[membership][swim]") {
  AboutMe f;
  Rig& r = f.r;
  const Peer &a = f.a, &b = f.b, &me = f.me;
  r.gossip_from(a, {me.update(UpdateState::kSuspect, 0, "a")});
  REQUIRE(r.m.incarnation() == 1);
  r.clear();
  // b, new to the cluster, still holds the outbid suspicion (from a member
  // page, say): it is told the current incarnation at once, with no new
  // refutation.
  r.gossip_from(b, {me.update(UpdateState::kSuspect, 0, "a")});
  CHECK(r.m.incarnation() == 1);
  CHECK(r.m.counters().refutations == 1);
  auto told = r.sent(MessageType::kGossip, b.endpoint());
  REQUIRE(told.size() == 1);
  CHECK(carries(told[0].message, me.update(UpdateState::kAlive, 1)));
  // News of this node that accuses nothing gets no answer.
  r.clear();
  r.gossip_from(b, {me.update(UpdateState::kAlive, 1),
                    Peer{me.address, "me0"}.update(UpdateState::kSuspect, 5, "b")});
  CHECK(r.sent(MessageType::kGossip, b.endpoint()).empty());
}

TEST_CASE("an alive update with a higher incarnation clears a suspicion, but an equal one does not",
          "[membership][swim]") {
  Rig r;
  const Peer a = peer("a", 2001), b = peer("b", 2002);
  r.admit(a);
  r.admit(b);
  r.gossip_from(b, {a.update(UpdateState::kSuspect, 0, "b")});
  REQUIRE(r.suspect("a"));
  auto suspected = r.happened(EventKind::kSuspect);
  REQUIRE(suspected.size() == 1);
  CHECK(suspected[0].accuser == "b");
  r.gossip_from(b, {a.update(UpdateState::kAlive, 0)});
  CHECK(r.suspect("a"));
  CHECK(r.happened(EventKind::kRecovered).empty());
  r.gossip_from(b, {a.update(UpdateState::kAlive, 1)});
  CHECK(r.member("a")->state == MemberState::kAlive);
  CHECK(r.member("a")->incarnation == 1);
  auto recovered = r.happened(EventKind::kRecovered);
  REQUIRE(recovered.size() == 1);
  CHECK(recovered[0].node == a.address);
  // A suspicion of the refuted incarnation is stale.
  r.gossip_from(b, {a.update(UpdateState::kSuspect, 0, "b")});
  CHECK(r.member("a")->state == MemberState::kAlive);
}

namespace {

// "me" with a, b and c, all answering our probes (so our own probing
// accuses no one); `accusations` arrive as gossip at kStart. Returns how
// long a lived after them (nullopt: still a member after `limit`).
std::optional<Millis> time_to_death(
    const std::vector<std::pair<std::string, std::string>>& accusations, Millis limit) {
  Rig r;
  const Peer a = peer("a", 2001), b = peer("b", 2002), c = peer("c", 2003);
  r.admit_answering({a, b, c});
  r.advance(r.timers.connect_grace);  // known long enough to bury on hearsay
  const TimePoint accused = r.now;
  const std::map<std::string, Peer> by_alias{{"b", b}, {"c", c}};
  for (const auto& [carrier, accuser] : accusations)
    r.gossip_from(by_alias.at(carrier), {a.update(UpdateState::kSuspect, 0, accuser)});
  REQUIRE(r.suspect("a"));
  if (!r.advance_until([&] { return !r.m.is_member("a"); }, limit)) return std::nullopt;
  auto dead = r.happened(EventKind::kDead);
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].cause == DeathCause::kSilent);
  return std::chrono::duration_cast<Millis>(r.now - accused);
}

}  // namespace

TEST_CASE(
    "a suspicion times out sooner with independent accusers, and a repeated accuser counts once",
    "[membership][swim][lifeguard]") {
  const Timers t;
  const Millis floor = suspicion_floor(t, 4), ceiling = suspicion_ceiling(t, 4);
  REQUIRE(floor < ceiling);
  const auto one = time_to_death({{"b", "b"}}, Millis(5000));
  const auto two = time_to_death({{"b", "b"}, {"c", "c"}}, Millis(5000));
  const auto relayed = time_to_death({{"b", "b"}, {"b", "c"}}, Millis(5000));  // c's, via b
  const auto repeated = time_to_death({{"b", "b"}, {"b", "b"}, {"c", "b"}}, Millis(5000));
  REQUIRE(one);
  REQUIRE(two);
  REQUIRE(relayed);
  REQUIRE(repeated);
  // One accuser: the longest time to refute, suspicion_max_mult × the floor.
  CHECK(*one >= ceiling);
  CHECK(*one <= ceiling + Millis(10));
  // A second, independent one: sooner, never below the floor.
  CHECK(*two < *one);
  CHECK(*two >= floor);
  CHECK(*relayed == *two);
  // The same accuser again, whoever carries it, changes nothing.
  CHECK(*repeated == *one);
}

TEST_CASE(
    "a suspicion only heard of gives a member listed within connect_grace its timeout after it",
    "[membership][swim][lifeguard]") {
  Rig r;
  const Peer a = peer("a", 2001), b = peer("b", 2002), c = peer("c", 2003);
  r.admit_answering({a, b, c});  // all listed at kStart: this node has just joined
  r.gossip_from(b, {a.update(UpdateState::kSuspect, 0, "b")});
  r.gossip_from(c, {a.update(UpdateState::kSuspect, 0, "c")});  // the floor at once
  const Millis floor = suspicion_floor(r.timers, 4);
  REQUIRE(floor < r.timers.connect_grace);
  r.advance(r.timers.connect_grace + floor - Millis(10));
  CHECK(r.suspect("a"));
  CHECK(r.happened(EventKind::kDead).empty());
  REQUIRE(r.advance_until([&] { return !r.m.is_member("a"); }, Millis(100)));
  CHECK(r.now - kStart >= r.timers.connect_grace + floor);
}

TEST_CASE(
    "a dead update drops the member with cause kReported, unless it is about an older incarnation",
    "[membership][swim]") {
  Rig r;
  const Peer a = peer("a", 2001), b = peer("b", 2002);
  Peer c = peer("c", 2003);
  r.admit(a);
  r.admit(b);
  r.admit(c);
  r.gossip_from(b, {a.update(UpdateState::kDead, 0)});
  CHECK_FALSE(r.m.is_member("a"));
  auto dead = r.happened(EventKind::kDead);
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].node == a.address);
  CHECK(dead[0].cause == DeathCause::kReported);
  CHECK(r.m.counters().deaths_reported == 1);
  // c is at incarnation 2 (it refuted something): a death of 1 is stale.
  c.incarnation = 2;
  r.beat(c);
  REQUIRE(r.member("c")->incarnation == 2);
  r.gossip_from(b, {c.update(UpdateState::kDead, 1)});
  CHECK(r.m.is_member("c"));
  // And a death of another instance of b's alias is not b's.
  r.gossip_from(c, {Peer{b.address, "b0"}.update(UpdateState::kDead, 9)});
  CHECK(r.m.is_member("b"));
  CHECK(r.happened(EventKind::kDead).size() == 1);
}

// ---- pauses ---------------------------------------------------------------------

// Changed meaning: checks the probe in flight, not heartbeat ages.
TEST_CASE("after a tick gap past pause_threshold the probe in flight accuses no one",
          "[membership][swim]") {
  Rig r;
  const Peer a = peer("a", 2001);
  r.admit(a);
  REQUIRE(r.advance_until([&] { return !r.sent(MessageType::kPing, a.endpoint()).empty(); },
                          Millis(1000)));
  // SIGSTOP, SIGCONT with our ping to a unanswered: its ack may sit unread.
  // a answers every ping from now on.
  r.respond(a);
  r.tick_at(r.now + Millis(5000));
  CHECK(r.m.is_member("a"));
  CHECK_FALSE(r.suspect("a"));
  CHECK(r.happened(EventKind::kSuspect).empty());
  // and is never accused.
  r.advance(Millis(2000));
  CHECK(r.member("a")->state == MemberState::kAlive);
  CHECK(r.happened(EventKind::kSuspect).empty());
}

TEST_CASE("after a tick far later than planned the suspicions' deadlines move by the delay",
          "[membership][swim]") {
  Rig r;
  const Peer a = peer("a", 2001), b = peer("b", 2002), c = peer("c", 2003);
  r.admit_answering({a, b, c});
  r.gossip_from(b, {a.update(UpdateState::kSuspect, 0, "b")});
  REQUIRE(r.suspect("a"));
  const Millis timeout = suspicion_ceiling(r.timers, 4);
  r.advance(Millis(1000));
  REQUIRE(r.m.is_member("a"));
  const Millis gap(3000);
  r.tick_at(r.now + gap);
  CHECK(r.m.is_member("a"));  // nobody could refute to us while we did not read
  CHECK(r.happened(EventKind::kDead).empty());
  REQUIRE(r.advance_until([&] { return !r.m.is_member("a"); }, Millis(5000)));
  const Millis lived = std::chrono::duration_cast<Millis>(r.now - kStart);
  // Moved by how late the tick came against the wakeup this node planned
  // (at most a probe period after its last tick): the gap, less that sleep.
  CHECK(lived >= timeout + gap - r.timers.probe_period);
  CHECK(lived <= timeout + gap + Millis(10));
}

TEST_CASE("a suspicion read on waking from a pause keeps its whole timeout, not the gap on top",
          "[membership][swim]") {
  Rig r;
  const Peer a = peer("a", 2001), b = peer("b", 2002), c = peer("c", 2003);
  r.admit_answering({a, b, c});
  r.advance(Millis(500));
  // Frames queued while this node was stopped are read before its first tick.
  const TimePoint woke = r.now + Millis(3000);
  r.now = woke;
  r.gossip_from(b, {a.update(UpdateState::kSuspect, 0, "b")});
  REQUIRE(r.suspect("a"));
  r.tick_at(woke);  // the late tick: the pause is noticed here
  REQUIRE(r.advance_until([&] { return !r.m.is_member("a"); }, Millis(10000)));
  const Millis lived = std::chrono::duration_cast<Millis>(r.now - woke);
  CHECK(lived >= suspicion_ceiling(r.timers, 4));
  CHECK(lived <= suspicion_ceiling(r.timers, 4) + Millis(10));
}

TEST_CASE("a tick late past late_tick but short of a pause raises local health, once per tick",
          "[membership][swim]") {
  Rig r;  // alone: no probe answered or missed moves the score meanwhile
  r.advance(Millis(1000));
  REQUIRE(r.m.health_score() == 0);
  r.tick_at(std::max(r.now, r.m.next_wakeup()) + r.timers.late_tick / 2);
  CHECK(r.m.counters().late_ticks == 0);
  CHECK(r.m.health_score() == 0);
  REQUIRE(r.timers.late_tick * 2 < r.timers.pause_threshold);
  r.tick_at(std::max(r.now, r.m.next_wakeup()) + r.timers.late_tick + Millis(1));
  CHECK(r.m.counters().late_ticks == 1);
  CHECK(r.m.health_score() == 1);
  r.tick_at(std::max(r.now, r.m.next_wakeup()) + r.timers.late_tick * 2);
  CHECK(r.m.counters().late_ticks == 2);
  CHECK(r.m.health_score() == 2);
}

TEST_CASE("a starved node probes more slowly", "[membership][swim]") {
  Rig r;
  const Peer a = peer("a", 2001);
  r.admit(a);
  r.respond(a);
  r.advance(Millis(1000));
  r.clear();
  r.advance(Millis(3000));
  const std::size_t healthy_pings = r.sent(MessageType::kPing, a.endpoint()).size();
  r.acking.erase(a.endpoint());  // the late tick's own probe must not be answered at once
  for (int i = 0; i < 4; ++i)
    r.tick_at(std::max(r.now, r.m.next_wakeup()) + r.timers.late_tick + Millis(1));
  r.respond(a);
  REQUIRE(r.m.health_score() == r.timers.awareness_max);
  r.clear();
  r.advance(Millis(3000));
  CHECK(r.sent(MessageType::kPing, a.endpoint()).size() < healthy_pings);
}

// ---- dissemination ----------------------------------------------------------

TEST_CASE("past max_members tombstones, the one that expires first goes", "[membership]") {
  Timers small;
  small.max_members = 2;
  Rig r(small);
  const Peer a = peer("a", 2001), b = peer("b", 2002), c = peer("c", 2003);
  for (const Peer* p : {&a, &b, &c}) {
    r.admit(*p);
    r.receive(p->make(MessageType::kLeave));
    r.advance(Millis(100));
  }
  r.clear();
  // a's tombstone made room for c's: a's old instance is no longer stale.
  r.receive(a.make(MessageType::kHello), "rid-a");
  CHECK(r.replies(MessageType::kHelloNack).empty());
  CHECK(r.m.is_member("a"));
  r.receive(b.make(MessageType::kHello), "rid-b");
  auto nacks = r.replies(MessageType::kHelloNack);
  REQUIRE(nacks.size() == 1);
  CHECK(nacks[0].message.reason == "instance " + b.instance + " of 'b' has left");
}

TEST_CASE("a suspicion keeps only the accusers that shorten it", "[membership][swim]") {
  Suspicion s(0, "first", Millis(1000), Millis(4000), 2);
  CHECK(s.timeout() == Millis(4000));
  CHECK(s.confirm("second"));
  CHECK_FALSE(s.confirm("second"));  // the same accuser again
  CHECK(s.confirm("third"));
  CHECK(s.timeout() == Millis(1000));
  for (int i = 0; i < 1000; ++i) CHECK_FALSE(s.confirm("more-" + std::to_string(i)));
  CHECK(s.accusers() == 3);
  CHECK(s.timeout() == Millis(1000));
}

TEST_CASE("past its capacity the update queue drops the update sent most often",
          "[membership][swim]") {
  UpdateQueue q(2);
  const Peer a = peer("a", 2001), b = peer("b", 2002), c = peer("c", 2003);
  q.push(a.update(UpdateState::kAlive, 0));
  q.push(b.update(UpdateState::kAlive, 0));
  REQUIRE(q.take(1024, 10).size() == 2);            // both sent once
  q.push(b.update(UpdateState::kSuspect, 0, "x"));  // b's news is new again
  q.push(c.update(UpdateState::kAlive, 0));
  CHECK(q.size() == 2);
  std::set<std::string> left;
  for (const Update& u : q.take(1024, 10)) left.insert(u.node.alias);
  CHECK(left == std::set<std::string>{"b", "c"});
}

TEST_CASE("past max_members lost members, the one lost longest ago is forgotten", "[membership]") {
  Timers small;
  small.max_members = 2;
  Rig r(small);
  const Peer a = peer("a", 2001), b = peer("b", 2002), c = peer("c", 2003);
  r.admit(a);
  REQUIRE(r.advance_until([&] { return !r.m.is_member("a"); }, Millis(10000)));
  r.admit(b);
  REQUIRE(r.advance_until([&] { return !r.m.is_member("b"); }, Millis(10000)));
  CHECK(r.happened(EventKind::kForgotten).empty());
  r.admit(c);
  REQUIRE(r.advance_until([&] { return !r.m.is_member("c"); }, Millis(10000)));
  const auto forgotten = r.happened(EventKind::kForgotten);
  REQUIRE(forgotten.size() == 1);
  CHECK(forgotten[0].node.alias == "a");
  CHECK(r.m.known_addresses().size() == 2);  // b and c, still probed
  CHECK(r.released(a.endpoint()) == 1);
}

TEST_CASE("the update queue keeps the newest update per node and drops it after `limit` sends",
          "[membership][swim]") {
  UpdateQueue q;
  const Peer a = peer("a", 2001), b = peer("b", 2002);
  q.push(a.update(UpdateState::kSuspect, 0, "x"));
  q.push(b.update(UpdateState::kAlive, 0));
  q.push(a.update(UpdateState::kAlive, 1));  // replaces the suspicion
  CHECK(q.size() == 2);
  for (int send = 0; send < 3; ++send) {
    auto taken = q.take(1024, 3);
    REQUIRE(taken.size() == 2);
    CHECK(std::count(taken.begin(), taken.end(), a.update(UpdateState::kAlive, 1)) == 1);
    CHECK(std::count(taken.begin(), taken.end(), b.update(UpdateState::kAlive, 0)) == 1);
  }
  CHECK(q.empty());
  CHECK(q.take(1024, 3).empty());
  // A budget too small for two still takes one, least-sent first.
  q.push(a.update(UpdateState::kDead, 1));
  q.push(b.update(UpdateState::kLeft, 0));
  auto first = q.take(1, 2);
  REQUIRE(first.size() == 1);
  auto second = q.take(1, 2);
  REQUIRE(second.size() == 1);
  CHECK(first[0] != second[0]);
}

TEST_CASE("a piggybacked update goes out at most retransmit_mult × ceil(log10(N+1)) times",
          "[membership][swim]") {
  Rig r;
  std::vector<Peer> peers;
  for (uint16_t i = 0; i < 4; ++i) {
    peers.push_back(peer("p" + std::to_string(i), static_cast<uint16_t>(3000 + i)));
    r.admit(peers.back());
    r.respond(peers.back());
  }
  const std::size_t limit = retransmit_limit(r.timers, 5);
  REQUIRE(limit == 4);
  r.advance(Millis(5000));
  for (const Peer& p : peers) {
    const Update joined = p.update(UpdateState::kAlive, 0);
    std::size_t sends = 0;
    for (const Message& m : r.outgoing()) sends += carries(m, joined) ? 1 : 0;
    INFO(p.address.alias);
    CHECK(sends == limit);
  }
  // Nothing pending: no more gossip frames.
  r.clear();
  r.advance(Millis(1000));
  CHECK(r.sent(MessageType::kGossip).empty());
  for (const Message& m : r.outgoing()) CHECK(m.updates.empty());
}

// Changed meaning: gossip is pending updates now, not the member list.
TEST_CASE("gossip goes to a few members at a time while updates are pending", "[membership]") {
  Rig r;
  for (uint16_t i = 0; i < 10; ++i)
    r.admit(peer("p" + std::to_string(i), static_cast<uint16_t>(3000 + i)));
  r.advance(Millis(210));
  auto gossip = r.sent(MessageType::kGossip);
  CHECK(gossip.size() == r.timers.gossip_fanout);
  std::set<Endpoint> to;
  for (const SendTo& s : gossip) {
    to.insert(s.to);
    CHECK(s.message.updates.size() == 10);  // the ten joins, all in one frame
  }
  CHECK(to.size() == gossip.size());
  CHECK(r.sent(MessageType::kMembers).empty());
}

// A newcomer contacts every member it was told of, so a node met through its
// join (or through a contact's answer) is news for no one: only the node
// that answered its hello spreads it, for nodes that joined meanwhile.
TEST_CASE(
    "a node met through a join is not spread, but one admitted through a hello or a rumour is",
    "[membership][swim]") {
  Rig r;
  const Peer a = peer("a", 2001), b = peer("b", 2002);
  r.respond(a);
  r.receive(a.make(MessageType::kJoin));
  REQUIRE(r.m.is_member("a"));
  r.advance(Millis(1000));
  for (const Message& m : r.outgoing()) CHECK_FALSE(carries(m, a.update(UpdateState::kAlive, 0)));
  CHECK(r.sent(MessageType::kGossip).empty());
  r.clear();
  r.receive(b.make(MessageType::kHello), "rid-b");
  r.advance(Millis(1000));
  std::size_t sends = 0;
  for (const Message& m : r.outgoing())
    sends += carries(m, b.update(UpdateState::kAlive, 0)) ? 1 : 0;
  CHECK(sends > 0);
  // Heard of through an alive update, then answering our join: the rumour
  // goes on (SWIM's infection), so a chain of joins still flattens.
  const Peer c = peer("c", 2003);
  r.respond(b);
  r.clear();
  r.gossip_from(a, {c.update(UpdateState::kAlive, 0)});
  REQUIRE(r.sent(MessageType::kJoin, c.endpoint()).size() == 1);
  r.beat(c);
  REQUIRE(r.m.is_member("c"));
  r.advance(Millis(1000));
  sends = 0;
  for (const Message& m : r.outgoing())
    sends += carries(m, c.update(UpdateState::kAlive, 0)) ? 1 : 0;
  CHECK(sends > 0);
}

TEST_CASE("sync: an equal digest is answered with nothing, a different one with pages and a sync",
          "[membership][swim]") {
  Rig r;
  const Peer a = peer("a", 2001), b = peer("b", 2002);
  r.admit(a);
  r.admit(b);
  auto sync_from = [&](uint64_t digest, bool answer) {
    Message s = a.make(MessageType::kSync);
    s.digest = digest;
    s.count = 3;
    s.seq = answer ? 1 : 0;
    r.receive(s, "rid-a");
  };
  sync_from(r.m.digest(), false);
  CHECK(r.actions.empty());
  sync_from(r.m.digest() ^ 1, false);
  auto pages = r.sent(MessageType::kMembers, a.endpoint());
  REQUIRE(pages.size() == 1);
  CHECK(pages[0].message.nodes == std::vector<NodeAddress>{b.address});  // all but a itself
  auto answers = r.sent(MessageType::kSync, a.endpoint());
  REQUIRE(answers.size() == 1);
  CHECK(answers[0].message.seq != 0);  // an answer: not to be answered again
  CHECK(answers[0].message.digest == r.m.digest());
  CHECK(answers[0].message.count == 3);
  // Every frame of the exchange crosses the wire intact.
  for (const Message& m : r.outgoing()) {
    const std::string frame = encode(m);
    auto decoded = decode(std::span(reinterpret_cast<const uint8_t*>(frame.data()), frame.size()));
    INFO(message_type_name(m.type) << ": " << (decoded ? "decoded" : decoded.message()));
    CHECK(decoded.ok());
  }
  r.clear();
  // An answer that differs gets the pages but no sync back; an equal one nothing.
  sync_from(r.m.digest() ^ 1, true);
  CHECK(r.sent(MessageType::kMembers, a.endpoint()).size() == 1);
  CHECK(r.sent(MessageType::kSync).empty());
  r.clear();
  sync_from(r.m.digest(), true);
  CHECK(r.actions.empty());
}

TEST_CASE(
    "the digest is the member set's: equal on two nodes with the same set, changed by a change",
    "[membership][swim]") {
  Rig r;
  const Peer a = peer("a", 2001), b = peer("b", 2002);
  const uint64_t alone = r.m.digest();
  r.admit(a);
  const uint64_t with_a = r.m.digest();
  CHECK(with_a != alone);
  r.admit(b);
  // a's view of the same three nodes.
  Membership other(MembershipConfig{a.address, a.instance, Timers{}, 1}, kStart);
  Message hello_me;
  hello_me.type = MessageType::kHello;
  hello_me.sender = r.m.self();
  hello_me.instance = r.m.instance();
  other.receive(hello_me, Source::from_router("x"), kStart);
  CHECK(other.digest() != r.m.digest());
  other.receive(b.make(MessageType::kHello), Source::from_router("y"), kStart);
  CHECK(other.digest() == r.m.digest());
  // A restart (same alias, new instance) changes it; leaving restores the old one.
  r.receive(Peer{b.address, "b2"}.make(MessageType::kHello));
  CHECK(r.m.digest() != other.digest());
  r.receive(Peer{b.address, "b2"}.make(MessageType::kLeave));
  CHECK(r.m.digest() == with_a);
}

// ---- when to wake ------------------------------------------------------------

namespace {

// Drives `r` waking at next_wakeup() only, and checks at 1..100 ms steps in
// between that tick() has nothing to do there. `after_wakeup` may feed
// frames; a tick at the same instant follows them, as in the node's loop.
void wake_only_when_due(Rig& r, int wakeups, const std::function<void()>& after_wakeup = {}) {
  for (int i = 0; i < wakeups; ++i) {
    const TimePoint w = r.m.next_wakeup();
    INFO("wake-up " << i << " at +" << std::chrono::duration_cast<Millis>(w - kStart).count()
                    << " ms, now +" << std::chrono::duration_cast<Millis>(r.now - kStart).count()
                    << " ms");
    REQUIRE(w >= r.now);
    r.clear();
    TimePoint t = r.now;
    while (w - t > Millis(1)) {
      t = std::min(t + Millis(100), w - Millis(1));
      r.tick_at(t);
      for (const Event& e : r.events) UNSCOPED_INFO("event: " << event_kind_name(e.kind));
      REQUIRE(r.actions.empty());
      REQUIRE(r.events.empty());
    }
    // Due now (an edge: due exactly at `now` may mean the instant after).
    r.tick_at(w == r.now ? w + Millis(1) : w);
    if (after_wakeup) {
      after_wakeup();
      r.tick_at(r.now);
    }
  }
}

}  // namespace

TEST_CASE("next_wakeup() is the next probe when idle, never past, never after tick()'s next work",
          "[membership][swim]") {
  SECTION("the first probe") {
    Rig r;
    const Peer a = peer("a", 2001);
    r.admit(a);
    r.respond(a);
    // The joins' updates may be gossiped sooner; the probe is due then.
    const TimePoint w = kStart + r.timers.probe_period;
    CHECK(r.m.next_wakeup() <= w);
    r.tick_at(w - Millis(1));
    CHECK(r.sent(MessageType::kPing).empty());
    r.tick_at(w);
    CHECK(r.sent(MessageType::kPing, a.endpoint()).size() == 1);
    CHECK(r.m.next_wakeup() > r.now);
  }
  SECTION("a busy node: probes, helpers, suspicions, deaths, lost members, joins, contacts") {
    Rig r;
    const Peer a = peer("a", 2001), b = peer("b", 2002), c = peer("c", 2003), d = peer("d", 2004),
               far = peer("far", 2010);
    for (const Peer& p : {a, b, c, d}) r.admit(p);
    r.respond(a);
    r.respond(c);
    r.help(c, MessageType::kIndirectNack);
    r.respond(d);  // d answers pings but not ping_reqs; b answers nothing
    Message members = a.make(MessageType::kMembers);
    members.nodes = {far.address};  // contacted, never answers
    r.receive(members);
    bool relayed = false, joining = false;
    wake_only_when_due(r, 400, [&] {
      if (!joining && r.now - kStart > Millis(3500)) {
        joining = true;  // nobody there; its hellos every 100 ms would hide the rest before
        r.m.join(Endpoint{"127.0.0.1", 2999}, r.now);
      }
      if (!relayed && r.now - kStart > Millis(700)) {
        relayed = true;  // a ping_req for us to serve, unanswered: an indirect_nack later
        Message req = a.make(MessageType::kPingReq);
        req.seq = 77;
        req.target = b.address;
        req.target_instance = b.instance;
        r.receive(req);
      }
    });
    CHECK(r.now - kStart > Millis(7000));
    CHECK_FALSE(r.m.is_member("b"));  // it went through suspicion to death and lost
    CHECK(joining);
    CHECK(r.m.counters().deaths_silent == 1);
  }
  SECTION("a relayed ping, at an instant of its own, ends in an indirect_nack when due") {
    Rig r;
    const Peer q = peer("q", 2001), t = peer("t", 2002);
    r.admit(q);
    r.admit(t);
    r.respond(q);
    r.tick_at(kStart + Millis(37));
    Message req = q.make(MessageType::kPingReq);
    req.seq = 5;
    req.target = t.address;
    req.target_instance = t.instance;
    r.receive(req);
    REQUIRE(r.sent(MessageType::kPing, t.endpoint()).size() == 1);
    CHECK(r.m.next_wakeup() <= r.now + r.timers.probe_timeout);
    bool nacked = false;
    wake_only_when_due(r, 3, [&] {
      nacked = nacked || !r.sent(MessageType::kIndirectNack, q.endpoint()).empty();
    });
    CHECK(nacked);
  }
  SECTION("an idle node whose seed is a member wakes for its probes and push-pull only") {
    Rig r;
    const Peer s = peer("s", 2001);
    r.m.join_seeds({s.endpoint()}, {}, r.now);
    r.receive_on_dealer(s.make(MessageType::kHelloAck), s.endpoint());
    REQUIRE(r.m.is_member("s"));
    r.respond(s);
    r.advance(Millis(5000));  // the join's updates are spread and done
    const TimePoint from = r.now;
    int idle_wakeups = 0;
    while (r.now - from < Millis(10000)) {
      r.clear();
      r.tick_at(std::max(r.now + Millis(1), r.m.next_wakeup()));
      UNSCOPED_INFO("+" << std::chrono::duration_cast<Millis>(r.now - from).count()
                        << " ms: " << r.actions.size() << " actions");
      if (r.actions.empty()) ++idle_wakeups;
    }
    CHECK(idle_wakeups == 0);  // no timer for the seed, nor for anything else
  }
  SECTION("seeds that refuse our alias, answering 50 ms after each hello") {
    Rig r;
    const Peer s = peer("s", 2001);
    r.m.join_seeds({s.endpoint()}, {}, r.now);
    std::vector<TimePoint> answer_at;
    auto nack_due = [&] {
      for (const SendTo& h : r.sent(MessageType::kHello, s.endpoint())) {
        (void)h;
        answer_at.push_back(r.now + Millis(50));
      }
    };
    r.collect();
    nack_due();
    bool fatal = false;
    for (int i = 0; i < 200 && !fatal; ++i) {
      const TimePoint w = r.m.next_wakeup();
      REQUIRE(w >= r.now);
      const TimePoint next_answer = answer_at.empty()
                                        ? TimePoint::max()
                                        : *std::min_element(answer_at.begin(), answer_at.end());
      r.clear();
      TimePoint t = r.now;
      const TimePoint until = std::min(w, next_answer);
      while (until - t > Millis(1)) {
        t = std::min(t + Millis(100), until - Millis(1));
        r.tick_at(t);
        INFO("at +" << std::chrono::duration_cast<Millis>(t - kStart).count()
                    << " ms, next_wakeup +"
                    << std::chrono::duration_cast<Millis>(w - kStart).count() << " ms");
        for (const Event& e : r.events) UNSCOPED_INFO("event: " << event_kind_name(e.kind));
        REQUIRE(r.events.empty());
        REQUIRE(r.actions.empty());
      }
      if (next_answer <= w) {
        r.now = next_answer;
        std::erase(answer_at, next_answer);
        Message nack = s.make(MessageType::kHelloNack);
        nack.code = std::string(kNackDuplicate);
        nack.reason = "alias 'me' is already used by a live node";
        r.receive_on_dealer(nack, s.endpoint());
        r.tick_at(r.now);
      } else {
        r.tick_at(w == r.now ? w + Millis(1) : w);
        nack_due();
      }
      fatal = !r.happened(EventKind::kSeedsRefused).empty();
    }
    CHECK(fatal);
  }
}

// ---- member lists longer than a frame -------------------------------------------

TEST_CASE("a member list longer than kMaxNodesPerFrame goes out as hello_ack and members pages",
          "[membership][swim]") {
  auto check_pages = [](std::size_t count, std::size_t alias_length, std::size_t host_length) {
    Rig r;
    std::set<std::string> listed;
    for (std::size_t i = 0; i < count; ++i) {
      std::string alias = "m" + std::to_string(i);
      alias += std::string(alias_length - alias.size(), 'x');
      const std::string host = std::string(host_length - 4, 'h') + ".net";
      const Peer p{NodeAddress{alias, host, static_cast<uint16_t>(3000 + i)},
                   "i" + std::to_string(i)};
      r.receive(p.make(MessageType::kJoin));
      listed.insert(alias);
      if (i % 100 == 0) r.clear();
    }
    REQUIRE(r.m.members(r.now).size() == count);
    r.clear();
    const Peer newcomer = peer("newcomer", 65000);
    r.receive(newcomer.make(MessageType::kHello), "rid-new");
    auto acks = r.replies(MessageType::kHelloAck);
    REQUIRE(acks.size() == 1);
    std::vector<Message> pages{acks[0].message};
    for (const SendTo& s : r.sent(MessageType::kMembers, newcomer.endpoint()))
      pages.push_back(s.message);
    CHECK(pages.size() >= 2);
    std::multiset<std::string> received;
    for (const Message& page : pages) {
      CHECK_FALSE(page.nodes.empty());
      CHECK(page.nodes.size() <= kMaxNodesPerFrame);
      const std::string bytes = encode(page);
      CHECK(bytes.size() <= kMaxFrameBytes);
      auto decoded =
          decode(std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
      REQUIRE(decoded.ok());
      CHECK(decoded->nodes == page.nodes);
      for (const NodeAddress& n : decoded->nodes) received.insert(n.alias);
    }
    // Every member once, and not the newcomer itself.
    CHECK(received.size() == count);
    CHECK(std::set<std::string>(received.begin(), received.end()) == listed);
  };
  SECTION("1500 members with short names: split by count") {
    check_pages(1500, 6, 9);
  }
  SECTION("400 members with the longest names: split by bytes") {
    check_pages(400, 64, 255);
  }
}

// ---- connections -------------------------------------------------------------

TEST_CASE("a closed connection whose redial is refused is a crash, seen at once", "[membership]") {
  Rig r;
  const Peer a = peer("a", 2001);
  r.admit(a);
  r.link(a.endpoint(), LinkEvent::kUp);
  r.link(a.endpoint(), LinkEvent::kDown);
  CHECK(r.m.is_member("a"));  // a blip is not a death
  r.link(a.endpoint(), LinkEvent::kRefused);
  CHECK_FALSE(r.m.is_member("a"));
  auto dead = r.happened(EventKind::kDead);
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].cause == DeathCause::kConnectionRefused);
}

TEST_CASE("a connection that blips and comes back keeps the member", "[membership]") {
  Rig r;
  const Peer a = peer("a", 2001);
  r.admit(a);
  r.link(a.endpoint(), LinkEvent::kUp);
  r.link(a.endpoint(), LinkEvent::kDown);
  r.link(a.endpoint(), LinkEvent::kUp);
  r.link(a.endpoint(), LinkEvent::kRefused);  // a later, unrelated refusal proves nothing
  CHECK(r.m.is_member("a"));
  CHECK_FALSE(
      r.sent(MessageType::kHeartbeat, a.endpoint()).empty());  // resent on the fresh connection
}

TEST_CASE("a refusal without a lost connection does not drop a member", "[membership]") {
  Rig r;
  const Peer a = peer("a", 2001);
  r.admit(a);
  r.link(a.endpoint(), LinkEvent::kRefused);
  CHECK(r.m.is_member("a"));
}

// ---- leaving, losing, healing -----------------------------------------------

TEST_CASE("a member that leaves is dropped at once and stale gossip does not bring it back",
          "[membership]") {
  Rig r;
  const Peer a = peer("a", 2001), b = peer("b", 2002);
  r.admit(a);
  r.admit(b);
  r.receive(a.make(MessageType::kLeave));
  CHECK_FALSE(r.m.is_member("a"));
  CHECK(r.happened(EventKind::kLeft).size() == 1);
  r.clear();
  Message gossip = b.make(MessageType::kMembers);
  gossip.nodes = {a.address};
  r.receive(gossip);
  r.beat(a);  // a straggler from the departed instance
  CHECK(r.sent(MessageType::kJoin, a.endpoint()).empty());
  CHECK_FALSE(r.m.is_member("a"));
}

TEST_CASE("a lost member is probed with hello and comes back when it answers", "[membership]") {
  Rig r;
  const Peer a = peer("a", 2001);
  r.admit(a);
  r.pass_connect_grace();
  r.advance(Millis(2000));
  REQUIRE_FALSE(r.m.is_member("a"));
  r.clear();
  r.advance(Millis(1100));
  CHECK_FALSE(r.sent(MessageType::kHello, a.endpoint()).empty());
  // The cut heals: a new connection comes up and a hello goes at once.
  r.clear();
  r.link(a.endpoint(), LinkEvent::kUp);
  CHECK(r.sent(MessageType::kHello, a.endpoint()).size() == 1);
  Message ack = a.make(MessageType::kHelloAck);
  r.receive_on_dealer(ack, a.endpoint());
  CHECK(r.m.is_member("a"));
  CHECK(r.happened(EventKind::kRecovered).size() == 1);
}

TEST_CASE("a heartbeat from a lost member brings it back at once", "[membership]") {
  Rig r;
  const Peer a = peer("a", 2001);
  r.admit(a);
  r.pass_connect_grace();
  r.advance(Millis(2000));
  REQUIRE_FALSE(r.m.is_member("a"));
  r.beat(a);
  CHECK(r.m.is_member("a"));
}

TEST_CASE("gossip about an unknown node contacts it, and it is listed once it answers directly",
          "[membership]") {
  Rig r;
  const Peer a = peer("a", 2001), c = peer("c", 2003);
  r.admit(a);
  Message gossip = a.make(MessageType::kMembers);
  gossip.nodes = {c.address};
  r.receive(gossip);
  CHECK(r.sent(MessageType::kJoin, c.endpoint()).size() == 1);
  CHECK_FALSE(r.m.is_member("c"));
  r.beat(c);
  CHECK(r.m.is_member("c"));
}

// A member that lists us may probe us only once a round (N probe periods),
// far less often than a contact lasts: its answer to our join must list it.
TEST_CASE("a join from a member we list is answered, so a one-sided membership closes at once",
          "[membership]") {
  Rig r;
  const Peer a = peer("a", 2001);
  r.admit(a);
  r.clear();
  r.receive(a.make(MessageType::kJoin));
  CHECK(r.sent(MessageType::kHeartbeat, a.endpoint()).size() == 1);
  CHECK(r.happened(EventKind::kJoined).empty());
}

TEST_CASE(
    "a stranger that moves its address is contacted at the new one, the old connection released",
    "[membership]") {
  Rig r;
  const Peer first = peer("x", 3001), moved = peer("x", 3002);
  r.beat(first);
  CHECK(r.sent(MessageType::kJoin, first.endpoint()).size() == 1);
  r.beat(moved);
  CHECK(r.sent(MessageType::kJoin, moved.endpoint()).size() == 1);
  CHECK(r.released(first.endpoint()) == 1);
  CHECK(r.released(moved.endpoint()) == 0);
}

TEST_CASE("no more than max_contacts nodes are contacted at once", "[membership]") {
  Rig r;
  const std::size_t limit = r.timers.max_contacts;
  for (std::size_t i = 0; i < limit + 10; ++i) {
    r.beat(peer("s" + std::to_string(i), static_cast<uint16_t>(4000 + i)));
  }
  CHECK(r.sent(MessageType::kJoin).size() == limit);
  CHECK(r.happened(EventKind::kDropped).size() == 10);
  // Once the contacts expire there is room again.
  r.advance(r.timers.contact_timeout + Millis(100), Millis(100));
  r.clear();
  r.beat(peer("late", 9000));
  CHECK(r.sent(MessageType::kJoin, peer("late", 9000).endpoint()).size() == 1);
}

TEST_CASE("gossip from a non-member is not acted on", "[membership]") {
  Rig r;
  const Peer stranger = peer("s", 2001), c = peer("c", 2003);
  Message gossip = stranger.make(MessageType::kMembers);
  gossip.nodes = {c.address};
  r.receive(gossip);
  CHECK(r.sent(MessageType::kJoin, c.endpoint()).empty());
  CHECK_FALSE(r.m.is_member("c"));
}

// ---- joining ---------------------------------------------------------------------

TEST_CASE("join: hello until answered, then done", "[membership]") {
  Rig r;
  const Peer a = peer("a", 2001), b = peer("b", 2002);
  const uint64_t id = r.m.join(a.endpoint(), r.now);
  r.collect();
  CHECK(r.sent(MessageType::kHello, a.endpoint()).size() == 1);
  Message ack = a.make(MessageType::kHelloAck);
  ack.nodes = {b.address};
  r.receive_on_dealer(ack, a.endpoint());
  auto done = r.happened(EventKind::kJoinDone);
  REQUIRE(done.size() == 1);
  CHECK(done[0].join_id == id);
  CHECK_FALSE(done[0].error);
  CHECK(done[0].node == a.address);
  CHECK(r.m.is_member("a"));
  CHECK(r.sent(MessageType::kJoin, b.endpoint()).size() == 1);  // contact what a listed
}

TEST_CASE("join: a silent address fails with kUnreachable after join_timeout", "[membership]") {
  Rig r;
  r.m.join(Endpoint{"127.0.0.1", 9}, r.now);
  r.advance(Millis(3100));
  auto done = r.happened(EventKind::kJoinDone);
  REQUIRE(done.size() == 1);
  REQUIRE(done[0].error);
  CHECK(done[0].error->kind == ErrorKind::kUnreachable);
  CHECK(r.sent(MessageType::kHello).size() >= 20);
}

TEST_CASE("join: refusals carry their kind", "[membership]") {
  Rig r;
  const Peer a = peer("a", 2001);
  r.m.join(a.endpoint(), r.now);
  Message nack = a.make(MessageType::kHelloNack);
  nack.code = std::string(kNackDuplicate);
  nack.reason = "alias 'me' is already used";
  r.receive_on_dealer(nack, a.endpoint());
  auto done = r.happened(EventKind::kJoinDone);
  REQUIRE(done.size() == 1);
  CHECK(done[0].error->kind == ErrorKind::kRefused);
  r.clear();
  r.m.join(Endpoint{"localhost", 1000}, r.now);
  Message self;
  self.type = MessageType::kHelloNack;
  self.sender = r.m.self();
  self.instance = r.m.instance();
  self.code = std::string(kNackSelf);
  r.receive_on_dealer(self, Endpoint{"localhost", 1000});
  done = r.happened(EventKind::kJoinDone);
  REQUIRE(done.size() == 1);
  CHECK(done[0].error->kind == ErrorKind::kSelf);
}

TEST_CASE("joining a member again under another spelling of its address loses nobody",
          "[membership]") {
  Rig r;
  const Peer a = peer("a", 2001);
  r.admit(a);
  r.m.join(Endpoint{"localhost", 2001}, r.now);
  Message ack = a.make(MessageType::kHelloAck);
  r.receive_on_dealer(ack, Endpoint{"localhost", 2001});
  CHECK(r.m.is_member("a"));
  CHECK(r.member("a")->instance == a.instance);
  CHECK(r.happened(EventKind::kRestarted).empty());
  CHECK(r.happened(EventKind::kJoinDone).size() == 1);
}

TEST_CASE("seeds that all refuse our alias for refused_limit are fatal", "[membership]") {
  Rig r;
  const Peer s = peer("s", 2001);
  r.m.join_seeds({s.endpoint()}, {}, r.now);
  Message nack = s.make(MessageType::kHelloNack);
  nack.code = std::string(kNackDuplicate);
  nack.reason = "alias 'me' is already used by a live node";
  for (int i = 0; i < 120 && r.happened(EventKind::kSeedsRefused).empty(); ++i) {
    if (!r.sent(MessageType::kHello, s.endpoint()).empty()) r.receive_on_dealer(nack, s.endpoint());
    r.actions.clear();
    r.advance(Millis(100));
  }
  CHECK(r.happened(EventKind::kJoinRefused).size() == 1);
  REQUIRE(r.happened(EventKind::kSeedsRefused).size() == 1);
  CHECK(r.now - kStart >= Millis(10000));
}

TEST_CASE("seed hellos back off, and remembered members are tried when seeds are silent",
          "[membership]") {
  Rig r;
  const Endpoint dead_seed{"127.0.0.1", 2999};
  const Peer old_friend = peer("f", 2005);
  r.m.join_seeds({dead_seed}, {old_friend.address}, r.now);
  r.advance(Millis(900));
  CHECK(r.sent(MessageType::kHello, old_friend.endpoint()).empty());
  const std::size_t early = r.sent(MessageType::kHello, dead_seed).size();
  CHECK(early >= 3);
  CHECK(early <= 5);  // 100, 200, 400 ms apart
  r.advance(Millis(300));
  REQUIRE_FALSE(r.sent(MessageType::kHello, old_friend.endpoint()).empty());
  r.receive_on_dealer(old_friend.make(MessageType::kHelloAck), old_friend.endpoint());
  CHECK(r.m.is_member("f"));
  r.clear();
  r.advance(Millis(5000));
  // In: a silent seed is only tried at the lost-probe pace from now on.
  CHECK(r.sent(MessageType::kHello, dead_seed).size() <= 6);
}

TEST_CASE("a seed that left and was replaced is found again by our hello", "[membership]") {
  // Kubernetes: pods 0..2 (everyone's seeds) deleted together. Their peers
  // drop them for good on their leave; the new pods know only each other.
  Rig r;
  const Peer seed = peer("s", 2003);
  r.m.join_seeds({seed.endpoint()}, {}, r.now);
  r.receive_on_dealer(seed.make(MessageType::kHelloAck), seed.endpoint());
  REQUIRE(r.m.is_member("s"));
  r.receive(seed.make(MessageType::kLeave));
  REQUIRE_FALSE(r.m.is_member("s"));
  r.clear();
  r.advance(Millis(1100));
  CHECK_FALSE(r.sent(MessageType::kHello, seed.endpoint()).empty());
  const Peer replaced = peer("s", 2003, "s2");
  r.receive_on_dealer(replaced.make(MessageType::kHelloAck), seed.endpoint());
  CHECK(r.m.is_member("s"));
}

TEST_CASE("a seed that is a member, or is this node, gets no further hello", "[membership]") {
  Rig r;
  const Peer seed = peer("s", 2003);
  const Endpoint self{"127.0.0.1", 1000};
  r.m.join_seeds({seed.endpoint(), self}, {}, r.now);
  r.receive_on_dealer(seed.make(MessageType::kHelloAck), seed.endpoint());
  Message nack = seed.make(MessageType::kHelloNack);
  nack.sender = NodeAddress{"me", "127.0.0.1", 1000};
  nack.instance = "me1";
  nack.code = std::string(kNackSelf);
  r.receive_on_dealer(nack, self);
  REQUIRE(r.m.is_member("s"));
  r.clear();
  r.respond(seed);  // a member because it answers probes (was: because it beat)
  r.advance(Millis(3000));
  REQUIRE(r.m.is_member("s"));
  CHECK(r.sent(MessageType::kHello, seed.endpoint()).empty());
  CHECK(r.sent(MessageType::kHello, self).empty());
}

TEST_CASE("after leave nothing more is sent", "[membership]") {
  Rig r;
  const Peer a = peer("a", 2001);
  r.admit(a);
  r.m.leave(r.now);
  r.collect();
  CHECK(r.sent(MessageType::kLeave, a.endpoint()).size() == 1);
  r.clear();
  r.advance(Millis(2000));
  r.beat(a);
  CHECK(r.actions.empty());
}

// ---- counters (served as metrics, docs/metrics.md) ---------------------------

namespace {
uint64_t sum(const Counters::ByType& counts) {
  uint64_t total = 0;
  for (uint64_t n : counts) total += n;
  return total;
}
std::size_t at(MessageType type) {
  return message_type_index(type);
}
}  // namespace

TEST_CASE("frames are counted by type as they are sent, received and dropped", "[membership]") {
  Rig r;
  const Peer a = peer("a", 2001), b = peer("b", 2002), stranger = peer("s", 2009);
  r.admit(a);  // hello in; hello_ack and a heartbeat out
  const Counters& c = r.m.counters();
  CHECK(c.received_by_type[at(MessageType::kHello)] == 1);
  CHECK(c.sent_by_type[at(MessageType::kHelloAck)] == 1);
  CHECK(c.sent_by_type[at(MessageType::kHeartbeat)] == 1);
  r.receive(b.make(MessageType::kHello), "rid-b");  // and a hears of b in a members frame
  CHECK(c.received_by_type[at(MessageType::kHello)] == 2);
  CHECK(c.sent_by_type[at(MessageType::kMembers)] == 1);
  r.respond(a);
  r.respond(b);
  // One ping per probe period, each acked; gossip while the joins are news;
  // no heartbeats but the one each newcomer got.
  r.advance(Millis(1000));
  const std::size_t periods = 1000 / static_cast<std::size_t>(r.timers.probe_period.count());
  CHECK(c.sent_by_type[at(MessageType::kPing)] == periods);
  CHECK(c.received_by_type[at(MessageType::kAck)] == periods);
  CHECK(c.sent_by_type[at(MessageType::kGossip)] >= 1);
  CHECK(c.sent_by_type[at(MessageType::kHeartbeat)] == 2);
  CHECK(c.updates_sent >= 2);
  r.beat(a);
  CHECK(c.received_by_type[at(MessageType::kHeartbeat)] == 1);

  // Rejected: an ack from a non-member that answers no probe of ours, and
  // an ack on the listener. (A member's late ack is news of it, not a
  // reject: SWIM's answers may come after their probe ended.)
  Message stray = stranger.make(MessageType::kAck);
  stray.seq = 4242;
  r.receive_on_dealer(stray, stranger.endpoint());
  Message late = a.make(MessageType::kAck);
  late.seq = 4243;
  r.receive(late);
  CHECK(c.dropped_by_type[at(MessageType::kAck)] == 2);
  r.receive_on_dealer(late, a.endpoint());
  CHECK(c.dropped_by_type[at(MessageType::kAck)] == 2);
  CHECK(c.received_by_type[at(MessageType::kAck)] == periods + 3);  // received, then maybe dropped
  // Malformed: no type to count it under.
  r.m.frame_dropped(iridium::Error{"truncated", ErrorKind::kInvalid});
  CHECK(c.dropped_malformed == 1);
  CHECK(sum(c.dropped_by_type) == 2);

  // The per-type counts add up to the totals.
  CHECK(sum(c.sent_by_type) == c.frames_sent);
  CHECK(sum(c.received_by_type) == c.frames_received);
  CHECK(c.dropped_malformed + sum(c.dropped_by_type) == c.frames_dropped);
}

// Changed meaning: a silent member dies of its suspicion's timeout now
// (was: of dead_after's silence).
TEST_CASE("deaths are counted by cause and their detection latency is observed", "[membership]") {
  Rig r;
  const Peer a = peer("a", 2001), b = peer("b", 2002);
  r.admit(a);
  r.admit(b);
  // b crashes: its closed connection is refused on redial 40 ms after its last frame.
  r.advance(Millis(40));
  r.link(b.endpoint(), LinkEvent::kUp);
  r.link(b.endpoint(), LinkEvent::kDown);
  r.link(b.endpoint(), LinkEvent::kRefused);
  // a answers until connect_grace has passed, then falls silent (no helper
  // to ask): a probe period unanswered, then the suspicion's timeout.
  r.respond(a);
  r.advance(r.timers.connect_grace);
  r.silence(a);
  r.advance(Millis(3000));
  REQUIRE_FALSE(r.m.is_member("a"));
  REQUIRE_FALSE(r.m.is_member("b"));
  const Counters& c = r.m.counters();
  CHECK(c.deaths == 2);
  CHECK(c.deaths_refused == 1);
  CHECK(c.deaths_silent == 1);
  CHECK(c.probes_failed == 1);
  const auto dead = r.happened(EventKind::kDead);
  REQUIRE(dead.size() == 2);
  CHECK(dead[0].cause == DeathCause::kConnectionRefused);
  CHECK(dead[1].cause == DeathCause::kSilent);
  CHECK(dead[0].silent == Millis(40));
  // Its silence: at least one probe period and the suspicion floor (N = 2),
  // at most the first probe's start, a period and the floor, plus a tick.
  // The floor is doubled: a probe that failed with no helper to ask raised
  // this node's health score to 1, which stretches the suspicions it runs.
  const Millis floor = suspicion_floor(r.timers, 2) * 2;
  CHECK(dead[1].silent >= r.timers.probe_period + floor);
  CHECK(dead[1].silent <= r.timers.probe_period * 2 + floor + Millis(10));
  // The histogram holds every kDead's `silent` (counters.h, docs/metrics.md):
  // 40 ms lands in the (30, 60] bucket, a's in the one that holds it.
  const DetectionHistogram& h = c.detection;
  CHECK(h.count == 2);
  CHECK(h.sum == dead[0].silent + dead[1].silent);
  CHECK(h.in_bucket[2] == 1);
  const auto bucket = static_cast<std::size_t>(
      std::find_if(DetectionHistogram::kBounds.begin(), DetectionHistogram::kBounds.end(),
                   [&](Millis bound) { return dead[1].silent <= bound; }) -
      DetectionHistogram::kBounds.begin());
  REQUIRE(bucket < DetectionHistogram::kBounds.size());
  CHECK(h.in_bucket[bucket] == 1);
}

TEST_CASE("a detection slower than the last bucket is counted but in no bucket", "[membership]") {
  DetectionHistogram h;
  h.observe(Millis(15));
  h.observe(Millis(16));
  h.observe(Millis(9000));
  CHECK(h.in_bucket[0] == 1);  // bounds are inclusive
  CHECK(h.in_bucket[1] == 1);
  CHECK(h.count == 3);
  CHECK(h.sum == Millis(9031));
  uint64_t in_buckets = 0;
  for (uint64_t n : h.in_bucket) in_buckets += n;
  CHECK(in_buckets == 2);
}

TEST_CASE("run frames are taken from members only, a stranger's are dropped and counted",
          "[membership][run]") {
  Rig r;
  const Peer a = peer("a", 2001);
  r.admit(a);
  Message request = a.make(MessageType::kRunRequest);
  request.run = 5;
  request.name = "x";
  r.receive(request);
  auto taken = r.m.take_run_frames();
  REQUIRE(taken.size() == 1);
  CHECK(taken[0].run == 5);
  CHECK(r.m.counters().frames_dropped == 0);

  // Not a member: dropped by type, never handed to the node.
  const Peer stranger = peer("stranger", 2002);
  for (auto type : {MessageType::kRunRequest, MessageType::kRunAccepted, MessageType::kRunResult,
                    MessageType::kRunCancel}) {
    r.receive(stranger.make(type));
  }
  // A member's alias with another instance is not that member either.
  r.receive(peer("a", 2001, "other").make(MessageType::kRunRequest));
  CHECK(r.m.take_run_frames().empty());
  const Counters& c = r.m.counters();
  CHECK(c.frames_dropped == 5);
  CHECK(c.dropped_by_type[message_type_index(MessageType::kRunRequest)] == 2);
  CHECK(c.dropped_by_type[message_type_index(MessageType::kRunCancel)] == 1);
  CHECK_FALSE(r.m.is_member("stranger"));
  CHECK(r.happened(EventKind::kDropped).size() == 5);

  // On a dealer, where only replies arrive, a run frame is dropped too.
  r.receive_on_dealer(a.make(MessageType::kRunResult), a.endpoint());
  CHECK(r.m.take_run_frames().empty());
  CHECK(r.m.counters().frames_dropped == 6);
}

TEST_CASE("run frames go to members only, with our name on them", "[membership][run]") {
  Rig r;
  const Peer a = peer("a", 2001);
  r.admit(a);
  Message request;
  request.type = MessageType::kRunRequest;
  request.run = 9;
  CHECK(r.m.send_to_member("a", request));
  CHECK_FALSE(r.m.send_to_member("nobody", request));
  r.collect();
  const auto sent = r.sent(MessageType::kRunRequest);
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].to == a.endpoint());
  CHECK(sent[0].message.sender.alias == "me");
  CHECK(sent[0].message.instance == "me1");
  CHECK(sent[0].message.run == 9);
  CHECK(r.m.counters().sent_by_type[message_type_index(MessageType::kRunRequest)] == 1);
  CHECK(r.m.member_instance("a") == "a1");
  CHECK_FALSE(r.m.member_instance("nobody").has_value());
}

// ---- cluster names -------------------------------------------------------------

TEST_CASE("a frame of another cluster changes nothing, is not answered, and is counted",
          "[membership][cluster_name]") {
  Rig r;  // cluster "iridium", the default
  const Peer a = peer("a", 2001);
  r.admit(a);
  const uint64_t id = r.m.join(Endpoint{"127.0.0.1", 3000}, r.now);
  r.clear();
  const Counters before = r.m.counters();
  const uint64_t view = r.m.view_version();
  auto foreign = [](const Peer& p, MessageType type) {
    Message m = p.make(type);
    m.cluster = "other";
    return m;
  };

  // A stranger of another cluster: its hello gets no hello_ack, and no
  // hello_nack either (nothing about this node leaks); nothing else admits it.
  const Peer x = peer("x", 2009);
  for (MessageType type : {MessageType::kHello, MessageType::kJoin, MessageType::kHeartbeat,
                           MessageType::kMembers, MessageType::kPing, MessageType::kRunRequest}) {
    Message m = foreign(x, type);
    m.nodes = {peer("y", 2010).address};
    r.receive(m, "rid-x");
  }
  // The same node, answering our join on the dealer: not an answer.
  Message ack = foreign(peer("s", 3000), MessageType::kHelloAck);
  ack.nodes = {peer("z", 2011).address};
  r.receive_on_dealer(ack, Endpoint{"127.0.0.1", 3000});
  r.receive_on_dealer(foreign(peer("s", 3000), MessageType::kHelloNack), {"127.0.0.1", 3000});
  // A member's alias and instance in another cluster's frame: neither a
  // leave nor a heartbeat from it counts.
  r.receive(foreign(a, MessageType::kLeave), "rid-a");
  r.receive(foreign(a, MessageType::kHeartbeat), "rid-a");

  CHECK(r.actions.empty());
  CHECK_FALSE(r.m.is_member("x"));
  CHECK(r.m.is_member("a"));
  CHECK_FALSE(r.m.is_member("s"));
  CHECK(r.m.view_version() == view);
  CHECK(r.m.take_run_frames().empty());
  const Counters& c = r.m.counters();
  CHECK(c.dropped_other_cluster == before.dropped_other_cluster + 10);
  CHECK(c.frames_received == before.frames_received);  // no rule saw them
  CHECK(c.frames_dropped == before.frames_dropped);
  CHECK(c.refused == before.refused);
  CHECK(c.joins == before.joins);
  CHECK(c.leaves == before.leaves);
  const auto events = r.happened(EventKind::kOtherCluster);
  CHECK(events.size() == r.events.size());  // no other event at all
  REQUIRE(events.size() == 10);
  CHECK(events[0].cluster == "other");
  CHECK(events[0].node == x.address);
  CHECK(events[0].instance == x.instance);

  // The join still waits for an answer from our cluster and times out.
  r.advance(Millis(3700));
  auto done = r.happened(EventKind::kJoinDone);
  REQUIRE(done.size() == 1);
  CHECK(done[0].join_id == id);
  REQUIRE(done[0].error);
  CHECK(done[0].error->kind == ErrorKind::kUnreachable);
}

TEST_CASE("a membership of a named cluster sends that name and takes only its frames",
          "[membership][cluster_name]") {
  MembershipConfig config{NodeAddress{"me", "127.0.0.1", 1000}, "me1", Timers{}, 42, "blue"};
  Membership m(config, kStart);
  const Peer a = peer("a", 2001);
  Message hello = a.make(MessageType::kHello);  // the default cluster, "iridium"
  m.receive(hello, Source::from_router("rid"), kStart);
  CHECK(m.take_actions().empty());
  CHECK_FALSE(m.is_member("a"));
  CHECK(m.counters().dropped_other_cluster == 1);
  auto events = m.take_events();
  REQUIRE(events.size() == 1);
  CHECK(events[0].kind == EventKind::kOtherCluster);
  CHECK(events[0].cluster == "iridium");

  hello.cluster = "blue";
  m.receive(hello, Source::from_router("rid"), kStart);
  CHECK(m.is_member("a"));
  Message request;
  request.type = MessageType::kRunRequest;
  CHECK(m.send_to_member("a", request));
  m.tick(kStart + Millis(10));
  const auto actions = m.take_actions();
  REQUIRE_FALSE(actions.empty());
  for (const Action& action : actions) {
    const Message* sent = nullptr;
    if (auto* s = std::get_if<SendTo>(&action)) sent = &s->message;
    if (auto* reply = std::get_if<ReplyTo>(&action)) sent = &reply->message;
    if (sent != nullptr) CHECK(sent->cluster == "blue");
  }
  CHECK(m.counters().dropped_other_cluster == 1);
}
