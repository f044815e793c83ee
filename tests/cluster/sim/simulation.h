// A deterministic simulation of many Membership state machines over a fake
// network and a fake clock, in the spirit of FoundationDB's simulator.
//
// The network models what the real transport does: one DEALER link per
// (node, endpoint) that must be up before frames go (ZMQ_IMMEDIATE), per-link
// FIFO delivery with latency, a refused redial when the target process is
// gone, a connect timeout when the host is cut off, the kernel closing a
// link whose data goes unacknowledged for 3 s (a cut; a paused peer's kernel
// still acknowledges, so its links stay up). On top it injects
// faults: loss, duplication, one-way and two-way cuts, partitions, crashes,
// SIGTERM leaves, pauses and restarts, and hostile frames.
//
// Everything random comes from one seed, so a failing seed replays exactly.
// Not thread-safe; one simulation per thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "cluster/membership.h"

namespace iridium::sim {

using cluster::Endpoint;
using cluster::Millis;
using cluster::TimePoint;

struct Traffic {
  uint64_t frames = 0;
  uint64_t bytes = 0;
  uint64_t list_frames = 0;            // hello_ack and members: frames that carry a node list
  std::size_t largest_list_frame = 0;  // encoded bytes of the largest of them
};

class Simulation {
 public:
  struct Options {
    uint64_t seed = 1;
    cluster::Timers timers;
    Millis latency_min{0};  // one way, per frame
    Millis latency_max{2};
    bool trace = false;        // print every fault and membership event
    bool count_bytes = false;  // encode frames to count bytes (slower)
    Millis tick_every{10};     // how often each node's tick() runs
    // Host numbers in names are zero-padded to this many digits, so that
    // frames are the same size at every N (--scale); 0: not padded.
    int name_digits = 0;
  };
  explicit Simulation(Options options);
  ~Simulation();

  // ---- the cluster ----
  // Starts a process on host `host` (a new instance), listening at `port`,
  // joining `seeds` (and its remembered members from its last run).
  void start(int host, uint16_t port, std::vector<Endpoint> seeds);
  // Large clusters without the join burst: starts hosts 0 .. n-1 at port
  // 2254, each listing all the others at once (Membership::adopt_members),
  // as if every join had long finished spreading. No frame is sent for it
  // and no connection is open yet: links open on first use, as ever.
  void start_adopted(int n);
  void crash(int host);   // kill -9
  void stop(int host);    // SIGTERM: leave, then exit
  void pause(int host);   // SIGSTOP
  void resume(int host);  // SIGCONT
  // A cluster-key change on `host` (!cluster_keys use, `new_primary`, or
  // remove): its listener is replaced, so every connection into it closes
  // and is redialled (never refused: the port keeps listening), the first
  // handshake of each failing when the key is new (the dialler still tries
  // the old key first); with a new primary, its own DEALERs are replaced
  // too (closed without a link event, then dialled again).
  void rekey(int host, bool new_primary);
  bool running(int host) const;
  bool paused(int host) const;
  std::string instance(int host) const;  // of its running process ("" if none)
  Endpoint endpoint(int host) const;

  // ---- the network ----
  void block(int from, int to);  // frames from -> to are lost (one way)
  void unblock(int from, int to);
  void cut(int host);  // every frame to and from host is lost
  void heal_all();     // no blocks, no loss, no duplication
  void set_loss(double probability) { loss_ = probability; }
  void set_duplication(double probability) { duplication_ = probability; }
  // A hostile frame delivered straight to host's listener.
  void inject(int host, const cluster::Message& message);

  // ---- time ----
  void run_for(cluster::Clock::duration duration);
  TimePoint now() const { return now_; }

  // ---- checks ----
  // Every running process lists exactly the other running processes (by
  // alias and instance), none of them suspect. Paused ones count as running.
  bool converged(std::string* why = nullptr) const;
  // Whether `host` lists `alias` as a member.
  bool lists(int host, const std::string& alias) const;
  // Whether any other running process lists host's alias.
  bool listed_by_any(int host) const;
  // Failures of the always-on invariants (a refused frame changed a view).
  const std::vector<std::string>& violations() const { return violations_; }
  // kDead events so far whose victim was running and not paused.
  uint64_t false_deaths() const { return false_deaths_; }
  uint64_t deaths() const { return deaths_; }
  const Traffic& traffic() const { return traffic_; }
  int hosts_started() const { return static_cast<int>(processes_.size()); }
  std::string alias(int host) const { return "n" + number(host); }
  std::string host_name(int host) const { return "h" + number(host); }
  std::size_t member_count(int host) const;  // members `host` lists (0 if not running)

 private:
  using Duration = cluster::Clock::duration;
  struct Process;
  struct Link;
  struct Delivery {
    int host;
    std::string instance;
    cluster::Message message;
    cluster::Source source;
  };
  enum class Kind { kDeliver, kTick, kAttempt, kLinkEvent, kCheckLink };
  struct Item {
    TimePoint at;
    uint64_t order;
    Kind kind;
    int host;  // kTick, kLinkEvent: the process's host; kAttempt/kCheckLink: the link's owner
    std::string instance;  // the process incarnation it is for
    Endpoint endpoint;     // kAttempt, kLinkEvent, kCheckLink
    cluster::LinkEvent link_event = cluster::LinkEvent::kUp;
    uint64_t serial = 0;  // kAttempt, kCheckLink: the link state it is for
    std::shared_ptr<Delivery> delivery;
    bool operator>(const Item& o) const { return at != o.at ? at > o.at : order > o.order; }
  };

  void schedule(Item item);
  void handle(const Item& item);
  void flush(int host);
  void deliver(const Delivery& d);
  // False when the link was not up: the frame never left (ZMQ_IMMEDIATE).
  bool send_frame(int from, const Endpoint& to, const cluster::Message& m);
  void reply_frame(int from, const std::string& routing_id, const cluster::Message& m);
  void attempt(int owner, const Endpoint& to, uint64_t serial);
  void establish(int owner, const Endpoint& to, Link& link, const Process& target, Duration rtt);
  bool open_adopted_link(int owner, const Endpoint& to, Link& link);
  void link_down(int owner, const Endpoint& to, Link& link, bool refuse_next);
  void check_link(int owner, const Endpoint& to, uint64_t serial);
  // Schedules check_link, kUnackedTimeout from now, for the up links
  // `which(owner, link)` selects.
  template <typename Which>
  void recheck_links_later(Which which);
  void tick(int host, const std::string& instance);
  bool path_ok(int a, int b) const;
  int host_of(const Endpoint& e) const;
  Process* process_at(const Endpoint& e);
  Millis latency();
  std::string number(int host) const;
  bool chance(double p);
  void note(const std::string& text) const;
  // Counts a frame; false when it is too big for the transport (then lost).
  bool count(const cluster::Message& m);
  bool digests_agree() const;
  bool explain_divergence(std::string* why) const;
  TimePoint last_resume_or_start(int host) const;

  Options options_;
  std::mt19937_64 random_;
  TimePoint now_;
  uint64_t order_ = 0;
  std::priority_queue<Item, std::vector<Item>, std::greater<>> queue_;
  std::map<int, std::unique_ptr<Process>>
      processes_;  // by host; kept after exit (running == false)
  std::map<std::pair<int, Endpoint>, Link> links_;
  std::map<std::string, std::pair<int, Endpoint>> routing_;  // routing id -> link
  std::set<std::pair<int, int>> blocked_;
  double loss_ = 0;
  double duplication_ = 0;
  uint64_t serial_ = 0;
  uint64_t false_deaths_ = 0;
  uint64_t deaths_ = 0;
  std::vector<std::string> violations_;
  std::vector<cluster::Event>
      pending_events_;  // taken out by deliver() to check, accounted by flush()
  Traffic traffic_;
  // One pool for every node's member names: each alias, host and instance is
  // held once, not once per node that lists it.
  std::shared_ptr<cluster::NamePool> names_ = std::make_shared<cluster::NamePool>();
  // Encoded sizes of frames with no node list and no updates, by (type, sender alias).
  std::map<std::pair<int, std::string>, std::size_t> sizes_;
};

}  // namespace iridium::sim
