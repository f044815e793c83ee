// The membership state machine, driven frame by frame on a fake clock: every
// admission rule and state change, and each defect measured on the old core
// (issue 8's table), without a socket.
#include <algorithm>
#include <catch2/catch.hpp>

#include "cluster/membership.h"

using namespace iridium::cluster;
using iridium::ErrorKind;

namespace {

const TimePoint kStart = TimePoint{} + std::chrono::hours(1);

struct Peer {
  NodeAddress address;
  std::string instance;
  Message make(MessageType type) const {
    Message m;
    m.type = type;
    m.sender = address;
    m.instance = instance;
    return m;
  }
  Endpoint endpoint() const { return endpoint_of(address); }
};

Peer peer(const std::string& alias, uint16_t port, std::string instance = "") {
  return Peer{NodeAddress{alias, "127.0.0.1", port}, instance.empty() ? alias + "1" : instance};
}

// One Membership ("me" at 127.0.0.1:1000) and its outputs.
struct Rig {
  Timers timers;
  TimePoint now = kStart;
  Membership m;
  std::vector<Action> actions;
  std::vector<Event> events;

  Rig() : m(MembershipConfig{NodeAddress{"me", "127.0.0.1", 1000}, "me1", Timers{}, 42}, kStart) {}

  void collect() {
    for (auto& a : m.take_actions()) actions.push_back(std::move(a));
    for (auto& e : m.take_events()) events.push_back(std::move(e));
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
  void advance(Millis d, Millis step = Millis(10)) {
    const TimePoint end = now + d;
    while (now < end) {
      now = std::min(end, now + step);
      m.tick(now);
      collect();
    }
  }
  void link(const Endpoint& e, LinkEvent ev) {
    m.link_changed(e, ev, now);
    collect();
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
  std::vector<ReplyTo> replies(MessageType type) const {
    std::vector<ReplyTo> out;
    for (const Action& a : actions) {
      if (auto* r = std::get_if<ReplyTo>(&a); r && r->message.type == type) out.push_back(*r);
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
  // Keeps p alive: a heartbeat now.
  void beat(const Peer& p) { receive(p.make(MessageType::kHeartbeat)); }
};

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
  // stays listed past dead_after as long as it beats.
  for (int i = 0; i < 20; ++i) {
    r.receive(impostor.make(MessageType::kHeartbeat));
    r.beat(a);
    r.advance(Millis(100));
  }
  view = r.member("a");
  REQUIRE(view);
  CHECK(view->instance == a.instance);
  CHECK(r.happened(EventKind::kDead).empty());
  CHECK(r.happened(EventKind::kRestarted).empty());
}

TEST_CASE("a silent member's alias is not given away before it is declared dead", "[membership]") {
  Rig r;
  const Peer a = peer("a", 2001);
  r.admit(a);
  r.advance(Millis(1000));  // suspect, not dead
  REQUIRE(r.member("a"));
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
  // Listed continuously from the first frame on: no drop while it beats.
  for (int i = 0; i < 30; ++i) {
    r.beat(a2);
    r.advance(Millis(100));
    REQUIRE(r.member("a"));
  }
  CHECK(r.happened(EventKind::kDead).empty());
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

// ---- liveness -----------------------------------------------------------------

TEST_CASE("a silent member becomes suspect, is probed directly and through helpers, then dies",
          "[membership]") {
  Rig r;
  const Peer a = peer("a", 2001), b = peer("b", 2002), c = peer("c", 2003);
  r.admit(a);
  r.admit(b);
  r.admit(c);
  // b and c keep beating; a goes silent.
  auto step = [&](Millis d) {
    for (Millis t{0}; t < d; t += Millis(100)) {
      r.beat(b);
      r.beat(c);
      r.advance(Millis(100));
    }
  };
  step(Millis(700));
  REQUIRE(r.member("a"));
  CHECK(r.member("a")->state == MemberState::kSuspect);
  CHECK(r.happened(EventKind::kSuspect).size() == 1);
  CHECK_FALSE(r.sent(MessageType::kPing, a.endpoint()).empty());
  auto requests = r.sent(MessageType::kPingReq);
  REQUIRE(requests.size() >= 2);
  for (const SendTo& s : requests) {
    CHECK(s.to != a.endpoint());
    CHECK(s.message.target == a.address);
    CHECK(s.message.target_instance == a.instance);
  }
  step(Millis(1000));
  CHECK_FALSE(r.m.is_member("a"));
  auto dead = r.happened(EventKind::kDead);
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].cause == DeathCause::kSilent);
  CHECK(r.m.is_member("b"));
  CHECK(r.m.is_member("c"));
}

TEST_CASE("a member others still hear is kept when our own link to it is cut", "[membership]") {
  Rig r;
  const Peer a = peer("a", 2001), b = peer("b", 2002);
  r.admit(a);
  r.admit(b);
  // For 10 s, a's frames never reach us, but b vouches for a every time we ask.
  for (int i = 0; i < 100; ++i) {
    r.beat(b);
    for (const SendTo& s : r.sent(MessageType::kPingReq, b.endpoint())) {
      Message vouch = b.make(MessageType::kIndirectAck);
      vouch.seq = s.message.seq;
      vouch.target = a.address;
      vouch.target_instance = a.instance;
      vouch.heard_ms_ago = 150;
      r.receive(vouch);
    }
    r.actions.clear();
    r.advance(Millis(100));
  }
  CHECK(r.m.is_member("a"));
  CHECK(r.member("a")->state == MemberState::kSuspect);  // honest: we do not hear it ourselves
  CHECK(r.happened(EventKind::kDead).empty());
}

TEST_CASE("a vouch that answers no probe of ours is dropped", "[membership]") {
  Rig r;
  const Peer a = peer("a", 2001), b = peer("b", 2002);
  r.admit(a);
  r.admit(b);
  Message vouch = b.make(MessageType::kIndirectAck);
  vouch.seq = 999;
  vouch.target = a.address;
  vouch.target_instance = a.instance;
  r.receive(vouch);
  CHECK(r.m.counters().frames_dropped == 1);
}

TEST_CASE("a direct ack to our ping clears suspicion", "[membership]") {
  Rig r;
  const Peer a = peer("a", 2001);
  r.admit(a);
  r.advance(Millis(700));
  REQUIRE(r.member("a")->state == MemberState::kSuspect);
  auto pings = r.sent(MessageType::kPing, a.endpoint());
  REQUIRE_FALSE(pings.empty());
  Message ack = a.make(MessageType::kAck);
  ack.seq = pings.back().message.seq;
  r.receive_on_dealer(ack, a.endpoint());
  CHECK(r.member("a")->state == MemberState::kAlive);
  CHECK(r.happened(EventKind::kRecovered).size() == 1);
}

TEST_CASE("a helper vouches at once when it hears the target itself, and relays a ping otherwise",
          "[membership]") {
  Rig r;
  const Peer requester = peer("q", 2001), target = peer("t", 2002);
  r.admit(requester);
  r.admit(target);
  Message req = requester.make(MessageType::kPingReq);
  req.seq = 7;
  req.target = target.address;
  req.target_instance = target.instance;
  r.receive(req);
  auto vouches = r.sent(MessageType::kIndirectAck, requester.endpoint());
  REQUIRE(vouches.size() == 1);
  CHECK(vouches[0].message.seq == 7);
  r.clear();
  // Not heard for a while: ping it and relay its ack.
  r.beat(requester);
  r.advance(Millis(700));
  r.beat(requester);
  r.clear();
  r.receive(req);
  CHECK(r.sent(MessageType::kIndirectAck).empty());
  auto pings = r.sent(MessageType::kPing, target.endpoint());
  REQUIRE(pings.size() == 1);
  Message ack = target.make(MessageType::kAck);
  ack.seq = pings[0].message.seq;
  r.receive_on_dealer(ack, target.endpoint());
  vouches = r.sent(MessageType::kIndirectAck, requester.endpoint());
  REQUIRE(vouches.size() == 1);
  CHECK(vouches[0].message.seq == 7);
  CHECK(vouches[0].message.target_instance == target.instance);
}

TEST_CASE("probes from non-members are dropped unanswered", "[membership]") {
  Rig r;
  const Peer stranger = peer("s", 2001);
  Message ping = stranger.make(MessageType::kPing);
  ping.seq = 1;
  Message req = stranger.make(MessageType::kPingReq);
  req.target = NodeAddress{"x", "127.0.0.1", 9};
  req.target_instance = "x1";
  r.m.receive(req, Source::from_router("r"), r.now);
  r.collect();
  CHECK(r.actions.empty());
  CHECK(r.m.counters().frames_dropped == 1);
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

TEST_CASE("gossip from a non-member is not acted on", "[membership]") {
  Rig r;
  const Peer stranger = peer("s", 2001), c = peer("c", 2003);
  Message gossip = stranger.make(MessageType::kMembers);
  gossip.nodes = {c.address};
  r.receive(gossip);
  CHECK(r.sent(MessageType::kJoin, c.endpoint()).empty());
  CHECK_FALSE(r.m.is_member("c"));
}

TEST_CASE("a pause of this process does not kill every member", "[membership]") {
  Rig r;
  const Peer a = peer("a", 2001);
  r.admit(a);
  r.now += Millis(5000);  // SIGSTOP, SIGCONT
  r.m.tick(r.now);
  r.collect();
  CHECK(r.m.is_member("a"));
  r.beat(a);
  r.advance(Millis(500));
  CHECK(r.m.is_member("a"));
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
  for (int i = 0; i < 15; ++i) {
    r.advance(Millis(200));
    r.beat(seed);
  }
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

TEST_CASE("gossip goes to a few members at a time", "[membership]") {
  Rig r;
  for (uint16_t i = 0; i < 10; ++i)
    r.admit(peer("p" + std::to_string(i), static_cast<uint16_t>(3000 + i)));
  r.advance(Millis(210));
  CHECK(r.sent(MessageType::kMembers).size() == r.timers.gossip_fanout);
  for (const SendTo& s : r.sent(MessageType::kMembers)) CHECK(s.message.nodes.size() == 9);
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
  const Peer a = peer("a", 2001), b = peer("b", 2002);
  r.admit(a);  // hello in; hello_ack and a heartbeat out
  const Counters& c = r.m.counters();
  CHECK(c.received_by_type[at(MessageType::kHello)] == 1);
  CHECK(c.sent_by_type[at(MessageType::kHelloAck)] == 1);
  CHECK(c.sent_by_type[at(MessageType::kHeartbeat)] == 1);
  r.receive(b.make(MessageType::kHello), "rid-b");  // and a hears of b in a members frame
  CHECK(c.received_by_type[at(MessageType::kHello)] == 2);
  CHECK(c.sent_by_type[at(MessageType::kMembers)] == 1);
  r.advance(Millis(1000));  // heartbeats every 200 ms to both, gossip every 200 ms
  CHECK(c.sent_by_type[at(MessageType::kHeartbeat)] >= 2 + 2 * 4);
  CHECK(c.sent_by_type[at(MessageType::kMembers)] >= 1 + 4);
  r.beat(a);
  CHECK(c.received_by_type[at(MessageType::kHeartbeat)] == 1);

  // Rejected: an ack that answers no probe of ours, and an ack on the listener.
  Message stray = a.make(MessageType::kAck);
  stray.seq = 4242;
  r.receive_on_dealer(stray, a.endpoint());
  r.receive(stray);
  CHECK(c.dropped_by_type[at(MessageType::kAck)] == 2);
  CHECK(c.received_by_type[at(MessageType::kAck)] == 2);  // received, then dropped
  // Malformed: no type to count it under.
  r.m.frame_dropped(iridium::Error{"truncated", ErrorKind::kInvalid});
  CHECK(c.dropped_malformed == 1);
  CHECK(sum(c.dropped_by_type) == 2);

  // The per-type counts add up to the totals.
  CHECK(sum(c.sent_by_type) == c.frames_sent);
  CHECK(sum(c.received_by_type) == c.frames_received);
  CHECK(c.dropped_malformed + sum(c.dropped_by_type) == c.frames_dropped);
}

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
  // a falls silent (nobody vouches): dead after dead_after.
  r.advance(Millis(3000));
  REQUIRE_FALSE(r.m.is_member("a"));
  REQUIRE_FALSE(r.m.is_member("b"));
  const Counters& c = r.m.counters();
  CHECK(c.deaths == 2);
  CHECK(c.deaths_refused == 1);
  CHECK(c.deaths_silent == 1);
  const auto dead = r.happened(EventKind::kDead);
  REQUIRE(dead.size() == 2);
  const DetectionHistogram& h = c.detection;
  CHECK(h.count == 2);
  CHECK(h.sum == dead[0].silent + dead[1].silent);
  CHECK(dead[0].silent == Millis(40));
  // 40 ms lands in the (30, 60] bucket; dead_after (1.5 s) plus a tick in (1.5, 2].
  CHECK(h.in_bucket[2] == 1);
  CHECK(dead[1].silent > r.timers.dead_after);
  CHECK(dead[1].silent <= Millis(2000));
  CHECK(h.in_bucket[8] == 1);
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

// ---- next_wakeup ------------------------------------------------------------

namespace {

// What a membership did, with when: to compare two of them.
std::string trace(const std::vector<Action>& actions, const std::vector<Event>& events,
                  TimePoint now) {
  std::string out;
  const auto at = std::to_string((now - kStart) / Millis(1)) + " ms: ";
  for (const Action& a : actions) {
    if (auto* s = std::get_if<SendTo>(&a)) {
      out += at + "send " + std::string(message_type_name(s->message.type)) + " to " +
             s->to.text() + "\n";
    } else if (auto* r = std::get_if<ReplyTo>(&a)) {
      out += at + "reply " + std::string(message_type_name(r->message.type)) + "\n";
    } else if (auto* rel = std::get_if<Release>(&a)) {
      out += at + "release " + rel->to.text() + "\n";
    }
  }
  for (const Event& e : events) {
    out += at + std::string(event_kind_name(e.kind)) + " " + e.node.alias + "\n";
  }
  return out;
}

}  // namespace

// The node's I/O thread ticks only when next_wakeup() says (or when input
// arrives). Driven through the same 12 s of members, a silent member that is
// suspected, declared dead and comes back, a seed and a join that never
// answer, and a second-hand contact, a membership ticked that way must do
// exactly what one ticked every millisecond does, at the same times.
TEST_CASE("ticking only at next_wakeup does what ticking every ms does", "[membership][wakeup]") {
  Rig every, sparse;
  const Peer a = peer("a", 2001), b = peer("b", 2002), c = peer("c", 2003);
  std::string trace_every, trace_sparse;
  std::size_t sparse_ticks = 0;
  for (Rig* r : {&every, &sparse}) {
    r->admit(a);
    r->admit(b);
    r->m.join_seeds({Endpoint{"127.0.0.1", 2999}}, {}, r->now);
    r->m.join(Endpoint{"127.0.0.1", 2998}, r->now);
    r->clear();
  }
  Message gossip = a.make(MessageType::kMembers);
  gossip.nodes = {c.address};  // c never answers our join: a contact that expires
  for (int ms = 1; ms <= 12'000; ++ms) {
    for (Rig* r : {&every, &sparse}) {
      const TimePoint due = r->m.next_wakeup();
      r->now = kStart + Millis(ms);
      bool input = false;
      if (ms % 150 == 0) {  // a beats all along; b is silent until 5 s
        r->beat(a);
        input = true;
      }
      if (ms == 300) {
        r->receive(gossip);
        input = true;
      }
      if (ms == 5'000) {
        r->receive(b.make(MessageType::kHello), "rid-b");
        input = true;
      }
      if (r == &every || input || r->now >= due) {
        r->m.tick(r->now);
        if (r == &sparse) ++sparse_ticks;
      }
      r->collect();
      (r == &every ? trace_every : trace_sparse) += trace(r->actions, r->events, r->now);
      r->actions.clear();
      r->events.clear();
    }
  }
  CHECK(trace_sparse == trace_every);
  CHECK(trace_every.find("dead b") != std::string::npos);
  CHECK(trace_every.find("recovered b") != std::string::npos);
  CHECK(trace_every.find("join_done") != std::string::npos);
  // And it does sleep: most milliseconds had nothing due.
  CHECK(sparse_ticks < 12'000 / 10);
}
