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
// One function per state change (become_alive, become_suspect, declare_dead,
// remove_left), each with its guard clauses; docs/protocol.md sections 5-7
// are the rules in prose.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "cluster/config.h"
#include "cluster/detection_histogram.h"
#include "cluster/protocol.h"
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
  kJoined,        // a new member (node)
  kRestarted,     // a member came back as a new instance at the same address
  kSuspect,       // not heard directly for suspect_after: probing it
  kRecovered,     // a suspect or lost member is heard directly again
  kDead,          // dropped: silent past dead_after, or its connection was refused
  kLeft,          // dropped: it said leave
  kForgotten,     // a lost member no longer probed (lost_ttl)
  kRefused,       // we refused a hello or join (node = the sender; error = why)
  kJoinDone,      // a join(): ok, or failed with error
  kJoinRefused,   // a seed or remembered member refused our alias; still retrying
  kSeedsRefused,  // every --join seed refused our alias for refused_limit: fatal
  kDropped,       // a frame was dropped (error = why)
};
std::string_view event_kind_name(EventKind kind);

enum class DeathCause { kSilent, kConnectionRefused };

struct Event {
  EventKind kind = EventKind::kDropped;
  NodeAddress node;  // the member concerned, or the join's answerer
  std::string instance;
  std::optional<Error> error;              // kRefused, kJoinDone (failed), kSeedsRefused, kDropped
  uint64_t join_id = 0;                    // kJoinDone
  Endpoint dialed;                         // kJoinDone: the address join() was given
  DeathCause cause = DeathCause::kSilent;  // kDead
  Millis silent{0};                        // kDead, kSuspect: since the last direct frame
};

// ---- queries --------------------------------------------------------------
enum class MemberState { kAlive, kSuspect };
std::string_view member_state_name(MemberState state);

struct MemberView {
  NodeAddress address;
  std::string instance;
  MemberState state = MemberState::kAlive;
  Millis last_heard{0};  // since the last direct frame
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
  uint64_t deaths_silent = 0, deaths_refused = 0;  // deaths by DeathCause
  DetectionHistogram detection;                    // every kDead's `silent`
};

struct MembershipConfig {
  NodeAddress self;
  std::string instance;
  Timers timers;
  uint64_t random_seed = 0;  // gossip and helper choices; fixed in tests
};

class Membership {
 public:
  Membership(MembershipConfig config, TimePoint now);

  // ---- inputs ----
  void receive(const Message& message, const Source& source, TimePoint now);
  void frame_dropped(const Error& why);  // a frame that did not decode
  void link_changed(const Endpoint& endpoint, LinkEvent event, TimePoint now);
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
  const Counters& counters() const { return counters_; }
  // Changes whenever the member set (an alias or its instance) changes.
  uint64_t view_version() const { return view_version_; }

 private:
  struct Member {
    NodeAddress address;
    std::string instance;
    MemberState state = MemberState::kAlive;
    TimePoint last_direct;    // last frame from it on any path of its own
    TimePoint last_evidence;  // last_direct, or a helper's word that it is alive
    TimePoint next_probe;     // while suspect
    bool link_down = false;   // our DEALER's connection to it closed and has not come back
  };
  struct Contact {  // learned second-hand; join sent, not heard from yet
    NodeAddress address;
    TimePoint since;
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
  struct Probe {  // a ping or ping_req of ours, by seq
    std::string alias;
    std::string instance;
    TimePoint expires;
  };
  struct Relay {  // a ping we send for a helper's requester
    uint64_t their_seq;
    std::string requester;
    NodeAddress target;
    std::string target_instance;
    TimePoint expires;
  };

  enum class Admission {
    kSelf,
    kDuplicateOfSelf,
    kDuplicate,
    kKnown,
    kRestarted,
    kRecovered,
    kNew,
    kStale
  };
  Admission admit(const NodeAddress& who, const std::string& instance, TimePoint now) const;
  Error refusal(Admission admission, const NodeAddress& who) const;

  // ---- state changes ----
  Member& become_alive(const NodeAddress& who, const std::string& instance, TimePoint now);
  void become_suspect(Member& member, TimePoint now);
  void declare_dead(const std::string& alias, DeathCause cause, TimePoint now);
  void remove_left(const std::string& alias, TimePoint now);
  void heard_directly(Member& member, TimePoint now);

  // ---- frame handlers ----
  void on_hello(const Message& m, const Source& source, TimePoint now);
  void on_join(const Message& m, TimePoint now);
  void on_liveness(const Message& m, TimePoint now);  // heartbeat, members
  void on_leave(const Message& m, TimePoint now);
  void on_ping(const Message& m, const Source& source, TimePoint now);
  void on_ack(const Message& m, TimePoint now);
  void on_ping_req(const Message& m, TimePoint now);
  void on_indirect_ack(const Message& m, TimePoint now);
  void on_hello_ack(const Message& m, const Endpoint& from, TimePoint now);
  void on_hello_nack(const Message& m, const Endpoint& from, TimePoint now);
  void on_run_frame(const Message& m, TimePoint now);  // run_request, _accepted, _result, _cancel

  // ---- helpers ----
  void dispatch(const Message& m, const Source& source, TimePoint now);  // receive's switch
  Member* member_from(const Message& m);  // the member that sent m (alias and instance match)
  void learn(const std::vector<NodeAddress>& nodes, TimePoint now);
  void contact(const NodeAddress& who, TimePoint now);
  void probe(Member& member, TimePoint now);
  void finish_join(PendingJoin& join, std::optional<Error> error, const NodeAddress& answerer);
  void finish_seeds(TimePoint now);
  void tick_members(TimePoint now);
  void tick_joins(TimePoint now);
  void tick_lost(TimePoint now);
  void tick_seeds(TimePoint now);
  void tick_expiry(TimePoint now);
  void gossip(TimePoint now);
  void maybe_release(const Endpoint& endpoint);
  bool endpoint_in_use(const Endpoint& endpoint) const;
  std::vector<NodeAddress> member_list(const std::string& except);
  std::vector<std::string> pick_members(std::size_t count, const std::string& except_a,
                                        const std::string& except_b);
  Message message(MessageType type) const;
  void send(const Endpoint& to, Message m);
  void reply(const std::string& routing_id, Message m);
  void emit(Event event) { events_.push_back(std::move(event)); }
  void drop(std::string why);

  MembershipConfig config_;
  const Timers& timers_;
  std::mt19937_64 random_;
  std::map<std::string, Member> members_;  // by alias
  std::map<std::string, Contact> contacts_;
  std::map<std::string, Lost> lost_;
  std::map<std::string, Departed> departed_;
  std::map<Endpoint, TimePoint> contacted_at_;  // last join sent to a second-hand node
  std::vector<PendingJoin> joins_;
  std::vector<Seed> seeds_;
  std::map<uint64_t, Probe> probes_;
  std::map<uint64_t, Relay> relays_;
  uint64_t view_version_ = 0;
  uint64_t next_seq_ = 1;
  uint64_t next_join_id_ = 1;
  TimePoint last_tick_;
  TimePoint next_heartbeat_;
  TimePoint next_gossip_;
  bool left_ = false;
  std::vector<Action> actions_;
  std::vector<Event> events_;
  std::vector<Message> run_frames_;
  Counters counters_;
};

}  // namespace iridium::cluster
