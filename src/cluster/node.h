// One cluster node: the membership state machine (membership.h) driven over
// ZeroMQ (transport.h) by one I/O thread. That thread owns the transport's
// sockets, the membership and an inproc wake socket; other threads reach it
// only through submit(), a task queue woken over inproc://.
//
// Thread-safety: every public method may be called from any thread.
// `mutex_` guards loop_, zap_, tasks_, stopped_, fatal_, keyring_ and
// executor_; everything inside the loop belongs to the I/O thread (the ZAP
// handler has its own thread). `key_change_mutex_` makes key changes
// (install, use, remove) one at a time, each until the I/O thread has
// applied it; it is taken before `mutex_`, never the other way. Remote runs
// (run()) wait on a batch of their own, which the I/O thread fills under
// that batch's mutex; jobs that finish on other threads reach the loop
// through `relay_`, which outlives the node.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "cluster/config.h"
#include "cluster/keyring.h"
#include "cluster/membership.h"
#include "cluster/protocol.h"
#include "cluster/remote_run.h"
#include "common/curve_key.h"
#include "common/health_file.h"
#include "common/result.h"
#include "common/zap_authenticator.h"

namespace iridium::cluster {

struct NodeConfig {
  std::string alias;
  std::string cluster_name{kDefaultClusterName};  // frames of any other cluster are ignored
  std::string bind_host = "127.0.0.1";
  uint16_t bind_port = 2254;
  bool port_fallback = true;   // port in use: listen on a free one instead
  std::string advertise_host;  // how others reach us; default: bind host, or hostname for 0.0.0.0
  std::string members_file;    // where the last known members are kept ("" = nowhere)
  Timers timers;
  // Secure mode: every cluster socket uses CURVE with this key, and only
  // peers holding it are admitted (docs/security.md). A secure node needs a
  // context of its own: the ZAP handler takes the context's one ZAP endpoint.
  std::optional<CurveKey> cluster_key;
  std::string cluster_key_path;  // where it was read from, for !cluster_keys list
  // Plain mode off loopback (anyone who reaches the port may join) only with this.
  bool insecure = false;
  // Where the I/O thread stamps its liveness, whether it is in the cluster
  // and how many members it lists (common/health_file.h); none if null.
  // Must outlive the node.
  health::HealthFile* health = nullptr;
  // Called on the I/O thread once the node cannot go on (fatal_error() is
  // then set), so that the owner need not poll for it. Must not block.
  std::function<void()> on_fatal;
};

// Why a node with this config must not listen, if it must not: plain mode
// on an address other machines may reach, without `insecure`.
std::optional<Error> check_listen_security(const NodeConfig& config);

struct MemberInfo {
  std::string alias;
  std::string host;
  uint16_t port = 0;
  std::string state;  // "alive" or "suspect"
  int64_t last_heard_ms = 0;
};

struct Snapshot {
  NodeAddress self;
  std::string instance;
  std::string cluster;  // this node's cluster name
  bool started = false;
  std::vector<MemberInfo> members;  // sorted by alias
  uint64_t dropped_frames = 0;
  Counters counters;
};

struct StartInfo {
  Endpoint bound;          // where the listener listens
  NodeAddress self;        // how others reach it
  bool already = false;    // it was running already
  bool fell_back = false;  // the configured port was busy
  std::string cluster;     // the cluster name it answers to
};

struct JoinInfo {
  NodeAddress via;  // the member that admitted us
  Endpoint dialed;
  bool already = false;  // that address was already a member's
};

class Node {
 public:
  Node(zmq::context_t& context, NodeConfig config);
  ~Node();  // leaves the cluster if in one
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Binds the listener and starts the I/O thread. Idempotent.
  Result<StartInfo> start();
  // Says hello to HOST:PORT and waits (bounded by timers.join_timeout) for
  // its answer. Starts the node first if needed.
  Result<JoinInfo> join(const std::string& host, uint16_t port);
  // Keeps saying hello to each seed, backing off, until one answers; tries
  // the members remembered in config.members_file when seeds are silent.
  void join_in_background(std::vector<std::pair<std::string, uint16_t>> seeds);
  Snapshot snapshot();
  bool started() const;
  // Set when the node cannot go on (every seed refused our alias).
  std::optional<Error> fatal_error() const;
  // Sends leave to every peer, closes every socket, stops the thread.
  void leave_and_stop();

  // Who runs the images members send (run_request). Set it before start();
  // it must outlive the node. Without one, every run_request is refused
  // (code "unavailable").
  void set_run_executor(RunExecutor* executor);
  // Runs `image` on each target (`targets`; nullopt: every member and this
  // node, sorted by alias) at once and waits for every answer, the timeout
  // or wait.cancelled() (then each target is asked to cancel and has
  // kRunCancelGrace to confirm). Blocks the calling thread, never the I/O
  // thread. An error (and nothing sent) when the image is over
  // kMaxRunImageBytes or the node is not started.
  Result<std::vector<RunReply>> run(std::optional<std::vector<std::string>> targets,
                                    std::string name, std::string image, const RunWait& wait);
  // The keyring (keyring.h; docs/security.md, "Rotate a key"). In plain
  // mode each is an error (kUnavailable). A change returns once the
  // listener and the connections use it (or with the error that stopped
  // it, and then nothing changed).
  Result<std::vector<KeyInfo>> keys() const;
  Result<KeyChange> install_key(const std::string& path);  // reads and checks the file
  Result<KeyChange> use_key(const std::string& name);
  Result<KeyChange> remove_key(const std::string& name);

  const std::string& instance() const { return instance_; }

 private:
  class Loop;       // the I/O thread's state: node.cpp
  struct RunBatch;  // one run() call's answers: node.cpp
  using Task = std::function<void(Loop&)>;
  // Hands tasks to the node from threads that may outlive it (a worker
  // finishing a job): after the node is gone, they are dropped.
  struct Relay {
    std::mutex mutex;
    Node* node = nullptr;  // guarded by mutex; null once the node is destroyed
    void post(Task task);
  };
  void submit(Task task);
  void set_fatal(Error error);
  using KeyOp = std::function<Result<KeyChange>(Keyring&)>;
  Result<KeyChange> change_keys(const KeyOp& op);
  // Makes the ZAP handler admit exactly `ring`'s keys. Needs mutex_.
  void sync_zap(const Keyring& ring);

  zmq::context_t& context_;
  NodeConfig config_;
  std::unique_ptr<ZapAuthenticator> zap_;  // secure mode; set in start(), outlives loop_
  std::string instance_;
  mutable std::mutex mutex_;
  std::unique_ptr<Loop> loop_;
  std::deque<Task> tasks_;
  std::string wake_endpoint_;
  uint16_t self_port_ = 0;
  std::thread thread_;
  bool stopped_ = false;
  std::optional<Error> fatal_;
  RunExecutor* executor_ = nullptr;
  std::shared_ptr<Relay> relay_;
  std::optional<Keyring> keyring_;  // secure mode
  std::mutex key_change_mutex_;
};

// What snapshot() answers, taken from a running node's membership (also
// what tests take from a Membership driven on a fake clock).
Snapshot snapshot_of(const Membership& membership, TimePoint now);

// The members file: the last members a node knew, so that a restarted node
// can find its cluster again when its seeds are gone. Both directions keep
// the first kMaxRememberedMembers entries (members before lost ones, as
// Membership::known_addresses lists them): one that still answers is enough
// to rejoin, and each is dialled on restart. A file over
// kMaxMembersFileBytes is not read.
inline constexpr std::size_t kMaxRememberedMembers = 1024;
inline constexpr std::uintmax_t kMaxMembersFileBytes = 1u << 20;
std::vector<NodeAddress> load_members_file(const std::string& path);
Status save_members_file(const std::string& path, const std::vector<NodeAddress>& members);

}  // namespace iridium::cluster
