// The membership state machine: who is in the cluster, as this node sees it.
//
// It owns no socket and reads no clock. It is fed frames (with where they came
// from), connection changes and the time, and it answers with the frames to
// send (actions) and what happened (events). The node (node.h) runs it on its
// I/O thread over ZeroMQ; tests and the simulator run it over a fake network
// and a fake clock, so every rule here can be driven deterministically.
//
// Not thread-safe: one thread owns a Membership.
//
// Failure detection is SWIM with the Lifeguard extensions over the full mesh:
// each probe period one member is pinged (shuffled round-robin), helpers are
// asked when it does not answer, and an unanswered member is suspected; the
// suspicion spreads on later frames and the member refutes it by raising its
// incarnation, or is declared dead when the suspicion times out. A member
// whose connection closes and whose redial is refused is dead at once.
//
// One function per state change (become_alive, become_suspect, declare_dead,
// remove_left, refute), each with its guard clauses; docs/protocol.md
// sections 5-7 are the rules in prose.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "cluster/config.h"
#include "cluster/detection_histogram.h"
#include "cluster/name_pool.h"
#include "cluster/protocol.h"
#include "cluster/suspicion.h"
#include "cluster/update_queue.h"
#include "common/result.h"

namespace iridium::cluster {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

// A listener's address: where a DEALER connects.
struct Endpoint {
  std::string host;
  uint16_t port = 0;
  auto operator<=>(const Endpoint&) const = default;
  std::string text() const;  // host:port
};
inline Endpoint endpoint_of(const NodeAddress& a) {
  return Endpoint{a.host, a.port};
}

// Where a received frame came from: our DEALER to a listener, or our ROUTER
// (with the routing id to reply to).
struct Source {
  std::optional<Endpoint> dealer;
  std::string routing_id;
  static Source from_dealer(Endpoint e) { return Source{std::move(e), {}}; }
  static Source from_router(std::string id) { return Source{std::nullopt, std::move(id)}; }
};

// What a DEALER's connection did (the transport watches socket monitors).
enum class LinkEvent {
  kUp,       // connected: frames can go now
  kDown,     // an established connection closed
  kRefused,  // a connect attempt was refused: nothing listens there
};

// ---- outputs ----------------------------------------------------------------
struct SendTo {  // on our DEALER to that listener (opened on first use)
  Endpoint to;
  Message message;
};
struct ReplyTo {  // on our ROUTER, to the connection a frame came from
  std::string routing_id;
  Message message;
};
struct Release {  // no frame will go to this listener any more: close the DEALER
  Endpoint to;
};
using Action = std::variant<SendTo, ReplyTo, Release>;

enum class EventKind {
  kJoined,     // a new member (node)
  kRestarted,  // a member came back as a new instance at the same address
  kSuspect,    // a probe went unanswered (ours or another member's): suspected
  kRecovered,  // a suspect refuted the suspicion, or a lost member is heard again
  kDead,  // dropped: its suspicion timed out (here or elsewhere), or its connection was refused
  kLeft,  // dropped: it said leave
  kForgotten,     // a lost member no longer probed (lost_ttl)
  kRefused,       // we refused a hello or join (node = the sender; error = why)
  kJoinDone,      // a join(): ok, or failed with error
  kJoinRefused,   // a seed or remembered member refused our alias; still retrying
  kSeedsRefused,  // every --join seed refused our alias for refused_limit: fatal
  kDropped,       // a frame was dropped (error = why)
  kOtherCluster,  // a frame of another cluster was dropped unread (node = its sender, cluster)
};
std::string_view event_kind_name(EventKind kind);

enum class DeathCause {
  kSilent,             // our suspicion of it timed out
  kConnectionRefused,  // its connection closed and the redial was refused
  kReported,           // another member declared it dead
};

struct Event {
  EventKind kind = EventKind::kDropped;
  NodeAddress node;  // the member concerned, or the join's answerer
  std::string instance;
  std::optional<Error> error;              // kRefused, kJoinDone (failed), kSeedsRefused, kDropped
  uint64_t join_id = 0;                    // kJoinDone
  Endpoint dialed;                         // kJoinDone: the address join() was given
  DeathCause cause = DeathCause::kSilent;  // kDead
  Millis silent{0};                        // kDead, kSuspect: since the last direct frame
  std::string accuser;                     // kSuspect: who suspected it first
  std::string cluster;                     // kOtherCluster: the sender's cluster name
};

// ---- queries --------------------------------------------------------------
enum class MemberState { kAlive, kSuspect };
std::string_view member_state_name(MemberState state);

struct MemberView {
  NodeAddress address;
  std::string instance;
  MemberState state = MemberState::kAlive;
  Millis last_heard{0};  // since the last direct frame
  uint64_t incarnation = 0;
};

struct Counters {
  using ByType = std::array<uint64_t, kMessageTypeCount>;  // by message_type_index

  uint64_t frames_sent = 0;
  uint64_t frames_received = 0;
  uint64_t frames_dropped = 0;
  uint64_t joins = 0, leaves = 0, suspicions = 0, deaths = 0, recoveries = 0;
  uint64_t refused = 0;  // hellos and joins we refused
  ByType sent_by_type{};
  ByType received_by_type{};
  // frames_dropped split by why: malformed frames (the transport's or the
  // decoder's error; no type known), and frames that decoded but were
  // rejected by a rule (by their type).
  uint64_t dropped_malformed = 0;
  ByType dropped_by_type{};
  uint64_t deaths_silent = 0, deaths_refused = 0, deaths_reported = 0;  // by DeathCause
  uint64_t probes = 0, probes_failed = 0;  // our own probes, and those that ended in suspicion
  uint64_t probes_void = 0;      // unanswered probes of a member listed within connect_grace
  uint64_t refutations = 0;      // times we raised our incarnation
  uint64_t late_ticks = 0;       // ticks later than Timers::late_tick: a starved host
  uint64_t updates_sent = 0;     // piggybacked updates, counted per frame
  DetectionHistogram detection;  // every kDead's `silent`
  // Frames of another cluster (another cluster name), dropped before any
  // rule saw them; in neither frames_received nor frames_dropped.
  uint64_t dropped_other_cluster = 0;
};

struct MembershipConfig {
  NodeAddress self;
  std::string instance;
  Timers timers;
  uint64_t random_seed = 0;  // gossip and helper choices; fixed in tests
  // This node's cluster name: frames of any other cluster are dropped unread.
  std::string cluster{kDefaultClusterName};
  // Where member names are interned; nullptr: a pool of its own. Memberships
  // that share one must run on one thread (the simulator's).
  std::shared_ptr<NamePool> names{};
};

class Membership {
 public:
  Membership(MembershipConfig config, TimePoint now);

  // ---- inputs ----
  void receive(const Message& message, const Source& source, TimePoint now);
  void frame_dropped(const Error& why);  // a frame that did not decode
  void link_changed(const Endpoint& endpoint, LinkEvent event, TimePoint now);
  // Our ping `seq` to `to` was dropped before it left: no connection there
  // yet (ZMQ_IMMEDIATE). A probe of a member listed within connect_grace
  // then ends at once, void; see docs/protocol.md section 7.
  void ping_unsent(const Endpoint& to, uint64_t seq, TimePoint now);
  void tick(TimePoint now);
  // The earliest time at which tick() would do anything: send, change a
  // member's state, expire or forget something. The node sleeps until then
  // (or until a frame, a link change or a task arrives), so a time later
  // than the truth delays the protocol, and an earlier one only costs a
  // wakeup. TimePoint::max() when nothing is ever due (after leave()).
  TimePoint next_wakeup() const;
  // Says hello to `to` until it answers or timers.join_timeout passes; the
  // answer comes as a kJoinDone event with the returned id.
  uint64_t join(const Endpoint& to, TimePoint now);
  // --join seeds, retried with backoff until one admits us, and members
  // remembered from an earlier run, tried after remembered_after when seeds
  // do not answer (at once when there are no seeds).
  void join_seeds(const std::vector<Endpoint>& seeds, const std::vector<NodeAddress>& remembered,
                  TimePoint now);
  // The simulator's bootstrap of a large cluster (cluster_sim --scale):
  // lists `nodes` (address and instance; this node itself is skipped) as
  // alive members at once, as if each had joined long ago and its join
  // update had finished spreading: nothing is sent, queued or reported.
  // The node never calls it.
  void adopt_members(const std::vector<std::pair<NodeAddress, std::string>>& nodes, TimePoint now);
  // Tells every member we leave. Afterwards nothing more is sent.
  void leave(TimePoint now);
  // Sends a run_* frame (type and run fields set by the caller; sender and
  // instance filled in here) to the member `alias`. False, and nothing sent,
  // when it is not a member.
  bool send_to_member(const std::string& alias, Message m);

  // ---- outputs ----
  std::vector<Action> take_actions();
  std::vector<Event> take_events();
  // run_* frames received from members since the last call, in order. Those
  // from anyone else were dropped (and counted) on arrival.
  std::vector<Message> take_run_frames();

  // ---- queries ----
  std::vector<MemberView> members(TimePoint now) const;  // sorted by alias
  bool is_member(const std::string& alias) const { return members_.contains(alias); }
  // The member's current instance, or nullopt when `alias` is not a member.
  std::optional<std::string> member_instance(const std::string& alias) const;
  // True when a member listens at `endpoint`.
  bool member_at(const Endpoint& endpoint) const;
  // Members and members lost without a leave: what a restart should try.
  std::vector<NodeAddress> known_addresses() const;
  const NodeAddress& self() const { return config_.self; }
  const std::string& instance() const { return config_.instance; }
  const std::string& cluster() const { return config_.cluster; }
  const Counters& counters() const { return counters_; }
  // Changes whenever the member set (an alias or its instance) changes.
  uint64_t view_version() const { return view_version_; }
  uint64_t incarnation() const { return incarnation_; }
  // Lifeguard's local-health score: 0 is healthy; each point stretches this
  // node's probe period and timeouts by one more multiple.
  std::size_t health_score() const { return health_; }
  // XOR of a hash of (alias, instance) over this node and its members: two
  // nodes with the same member set have the same digest (push-pull).
  uint64_t digest() const { return digest_; }
  // One node's share of a digest: the digest is the XOR of this over the
  // node itself and its members.
  static uint64_t view_hash(const std::string& alias, const std::string& instance);
  std::size_t member_count() const { return members_.size(); }
  std::size_t suspect_count() const { return suspects_.size(); }

 private:
  // NodeAddress as pooled names: a member entry is kept for every member by
  // every node, so it is kept small (docs/scaling.md, "In the simulator, to 10,000 nodes").
  struct MemberAddress {
    Name alias;
    Name host;
    uint16_t port = 0;
    operator NodeAddress() const { return NodeAddress{alias, host, port}; }  // NOLINT
    friend Endpoint endpoint_of(const MemberAddress& a) { return Endpoint{a.host, a.port}; }
  };
  struct Suspected {  // a member's running suspicion, held only while it lasts
    Suspicion suspicion;
    TimePoint since;
    // Tell it again no sooner; TimePoint::max() once told, when we only heard
    // of the suspicion: the accusers keep telling the suspect, not every member.
    TimePoint next_notice;
  };
  struct Member {
    MemberAddress address;
    Name instance;
    uint64_t incarnation = 0;
    TimePoint last_direct;                 // last frame from it on any path of its own
    std::unique_ptr<Suspected> suspected;  // while suspect
    MemberState state = MemberState::kAlive;
    bool link_down = false;  // our DEALER's connection to it closed and has not come back
    TimePoint listed_at{};   // when this instance was admitted
  };
  struct Contact {  // learned second-hand; join sent, not heard from yet
    NodeAddress address;
    TimePoint since;
    bool rumour = false;  // learned from an alive update, which we pass on once it answers
  };
  struct Lost {  // dropped without a leave: probed so that cuts heal
    NodeAddress address;
    std::string instance;
    TimePoint since;
    TimePoint next_probe;
  };
  struct Departed {  // said leave: its stragglers and stale gossip are ignored
    std::string instance;
    Endpoint at;
    TimePoint until;
  };
  // A --join seed, watched for as long as we run: a seed that left and was
  // replaced comes back knowing only the other seeds, and its old peers
  // dropped it for good, so only our hello tells it of us.
  struct Seed {
    Endpoint at;
    std::string alias;  // who answered hello there last ("" until someone did)
    TimePoint next_hello;
  };
  enum class JoinKind { kOnce, kSeed, kRemembered };
  struct PendingJoin {
    uint64_t id;
    JoinKind kind;
    Endpoint to;
    TimePoint start;     // not before this
    TimePoint deadline;  // kOnce, kRemembered: give up then
    TimePoint next_send;
    Millis backoff;
    std::optional<TimePoint> refused_since;  // kSeed: it has refused our alias since then
    TimePoint refused_last{};                // and most recently then
  };
  struct Probe {  // our probe of this period
    uint64_t seq = 0;
    std::string alias;
    std::string instance;
    TimePoint ask_helpers;  // no ack by then: ping_req to helpers
    TimePoint ends;         // no ack of any kind by then: suspect
    bool helpers_asked = false;
    std::size_t nacks_expected = 0;
    std::size_t nacks = 0;
  };
  struct Relay {  // a ping we send for a helper's requester
    uint64_t their_seq;
    std::string requester;
    NodeAddress target;
    std::string target_instance;
    TimePoint expires;  // no ack by then: indirect_nack to the requester
  };

  enum class Admission {
    kSelf,
    kDuplicateOfSelf,
    kDuplicate,
    kKnown,
    kRestarted,
    kRecovered,
    kNew,
    kFull,  // new or recovered, but the member list is at max_members
    kStale
  };
  Admission admit(const NodeAddress& who, const std::string& instance, TimePoint now) const;
  Error refusal(Admission admission, const NodeAddress& who) const;

  // ---- state changes ----
  // How a node came to be listed: through its hello (the one node that
  // answers it tells the others); through a rumour (an alive update: we
  // pass it on, as SWIM's infection does); or introduced directly (its join,
  // or the answer of a node on a list we were given), where every pair of
  // nodes meets on its own and no one else needs telling.
  enum class Introduction { kHello, kRumour, kDirect };
  Member& become_alive(const NodeAddress& who, const std::string& instance, TimePoint now,
                       Introduction how = Introduction::kDirect);
  void become_suspect(Member& member, uint64_t incarnation, const std::string& accuser,
                      TimePoint now);
  void confirm_suspicion(Member& member, const std::string& accuser, TimePoint now);
  void notify_suspect(Member& member, TimePoint now);
  void recover(Member& member, uint64_t incarnation);
  void declare_dead(const std::string& alias, DeathCause cause, TimePoint now);
  void remove_left(const std::string& alias, TimePoint now);
  void depart(const std::string& alias, const std::string& instance, Endpoint at, TimePoint now);
  void forget_oldest_lost();
  void refute(uint64_t accused_incarnation);
  void heard_directly(Member& member, uint64_t incarnation, TimePoint now);

  // ---- frame handlers ----
  void on_hello(const Message& m, const Source& source, TimePoint now);
  void on_join(const Message& m, TimePoint now);
  // Frames any member may send to our listener (heartbeat, members, ping,
  // gossip, sync): a stranger is contacted, a known sender heard; the
  // member that sent it, or nullptr.
  Member* on_liveness(const Message& m, TimePoint now);
  void on_leave(const Message& m, TimePoint now);
  void on_ping(const Message& m, const Source& source, TimePoint now);
  void on_ack(const Message& m, TimePoint now);
  void on_ping_req(const Message& m, TimePoint now);
  void on_indirect_answer(const Message& m, TimePoint now);  // indirect_ack, indirect_nack
  void on_sync(const Message& m, TimePoint now);
  void on_hello_ack(const Message& m, const Endpoint& from, TimePoint now);
  void on_hello_nack(const Message& m, const Endpoint& from, TimePoint now);
  void on_run_frame(const Message& m, TimePoint now);  // run_request, _accepted, _result, _cancel

  // ---- updates (dissemination) ----
  // `sender`: the member whose frame carried them (a refutation goes back to it at once).
  void apply_updates(const std::vector<Update>& updates, const Member* sender, TimePoint now);
  bool apply_update(const Update& u, TimePoint now);  // true: it accused this very instance
  void apply_to_member(Member& member, const Update& u, TimePoint now);
  void apply_to_stranger(const Update& u, TimePoint now);
  void spread(const NodeAddress& node, const std::string& instance, uint64_t incarnation,
              UpdateState state, const std::string& from = {});
  std::size_t retransmit_limit() const;

  // ---- probing ----
  void tick_probe(TimePoint now);
  void start_probe(TimePoint now);
  void ask_helpers(TimePoint now);
  void probe_failed(TimePoint now);
  void probe_answered();
  std::string next_probe_target();
  void tick_suspicions(TimePoint now);
  void tick_relays(TimePoint now);
  void answer_relay(const Relay& relay, MessageType verdict);  // indirect_ack or _nack
  void change_health(int delta);
  Millis scaled(Millis d) const { return d * static_cast<int64_t>(1 + health_); }
  // A suspicion we run lasts longer while we are unhealthy ourselves: a
  // starved node reads refutations late, and waits for them instead of
  // burying members that answered in time.
  Millis suspicion_timeout(const Suspected& s) const { return scaled(s.suspicion.timeout()); }
  // When a suspicion we run buries its member: its timeout after it began
  // or, for a suspicion we only heard of, after connect_grace from listing
  // the member, whichever is later. A node that has just joined may inherit
  // a suspicion (gossip, a member page) of a member it has barely met, whose
  // answers and refutation still queue behind the join burst; it gives the
  // member the whole timeout to refute once it could have, and meanwhile
  // the members who accused it decide.
  TimePoint suspicion_due(const Member& m) const {
    const Millis timeout = suspicion_timeout(*m.suspected);
    if (m.suspected->suspicion.accused_by(config_.self.alias)) return m.suspected->since + timeout;
    return std::max(m.suspected->since, connected_by(m)) + timeout;
  }
  // The end of m's connect_grace: until then it may still be connecting.
  TimePoint connected_by(const Member& m) const { return m.listed_at + timers_.connect_grace; }

  // ---- helpers ----
  void dispatch(const Message& m, const Source& source, TimePoint now);  // receive's switch
  Member* member_from(const Message& m);  // the member that sent m (alias and instance match)
  Member& member_named(const std::string& alias);  // a listed member's entry
  Member new_member(const NodeAddress& who, const std::string& instance, TimePoint now);
  void learn(const std::vector<NodeAddress>& nodes, TimePoint now, bool rumour = false);
  void contact(const NodeAddress& who, TimePoint now, bool rumour = false);
  void finish_join(PendingJoin& join, std::optional<Error> error, const NodeAddress& answerer);
  void finish_seeds(TimePoint now);
  void tick_joins(TimePoint now);
  void tick_lost(TimePoint now);
  void tick_seeds(TimePoint now);
  bool seed_is_member(const Seed& seed) const;
  void tick_expiry(TimePoint now);
  void gossip(TimePoint now);
  void push_pull(TimePoint now);
  void sync_soon(TimePoint now);  // the member set changed: a push-pull within sync_after_change
  void send_member_pages(const Member& to);
  void after_pause(Clock::duration gap, TimePoint now);
  void maybe_release(const Endpoint& endpoint);
  bool endpoint_in_use(const Endpoint& endpoint) const;
  // The member list for one peer, in pages that each fit a frame.
  std::vector<std::vector<NodeAddress>> member_pages(const std::string& except) const;
  std::vector<std::string> pick_members(std::size_t count, const std::string& except_a,
                                        const std::string& except_b);
  void add_to_view(const std::string& alias, const std::string& instance);
  void remove_from_view(const std::string& alias, const std::string& instance);
  Message message(MessageType type) const;
  // With as many waiting updates as fit.
  Message message_with_updates(MessageType type);
  void send(const Endpoint& to, Message m);
  void reply(const std::string& routing_id, Message m);
  void emit(Event event) { events_.push_back(std::move(event)); }
  void drop(std::string why);

  MembershipConfig config_;
  const Timers& timers_;
  std::mt19937_64 random_;
  std::shared_ptr<NamePool> names_;              // before the tables that hold its names
  std::map<Name, Member, std::less<>> members_;  // by alias
  std::map<std::string, Contact> contacts_;
  std::map<std::string, Lost> lost_;
  std::map<std::string, Departed> departed_;
  std::map<Endpoint, TimePoint> contacted_at_;  // last join sent to a second-hand node
  std::vector<PendingJoin> joins_;
  std::vector<Seed> seeds_;
  std::optional<Probe> probe_;
  std::map<uint64_t, Relay> relays_;
  std::vector<Name> probe_order_;  // shuffled aliases; refilled when walked through
  std::size_t probe_index_ = 0;
  std::set<std::string> suspects_;  // members with a running suspicion
  UpdateQueue updates_;
  uint64_t incarnation_ = 0;
  std::size_t health_ = 0;
  uint64_t digest_ = 0;
  uint64_t view_version_ = 0;
  uint64_t next_seq_ = 1;
  uint64_t next_join_id_ = 1;
  TimePoint planned_wakeup_;  // next_wakeup() as of the last tick: the pause guard's yardstick
  TimePoint next_probe_;
  TimePoint next_gossip_;
  TimePoint next_push_pull_;
  bool left_ = false;
  std::vector<Action> actions_;
  std::vector<Event> events_;
  std::vector<Message> run_frames_;
  Counters counters_;
};

}  // namespace iridium::cluster
