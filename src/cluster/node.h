// One cluster node: a ROUTER that every peer's DEALER talks to, one DEALER per
// peer, and the membership they maintain. A single I/O thread owns every one
// of those sockets and runs the poll loop (node.cpp); other threads reach it
// only through submit(), a queue woken over inproc://.
#pragma once

#include <zmq.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cluster/protocol.h"
#include "common/result.h"

namespace iridium::cluster {

using Millis = std::chrono::milliseconds;

struct Timers {
  Millis heartbeat{200};       // to every peer
  Millis suspect_after{600};   // silence before a peer is shown as suspect
  Millis dead_after{1500};     // silence before a peer is dropped as dead
  Millis gossip{1000};         // member-list exchange with every peer
  Millis probe{1000};          // hello to peers lost without a leave, so cuts heal
  Millis lost_ttl{10 * 60 * 1000};  // stop probing a lost peer after this
  Millis join_timeout{3000};   // !join_cluster gives up after this
  Millis hello_retry{100};     // hello resent while joining
  Millis seed_backoff_max{5000};  // --join retries back off up to this
};

struct NodeConfig {
  std::string alias;
  std::string bind_host = "127.0.0.1";
  uint16_t bind_port = 2254;
  bool port_fallback = true;   // port in use: listen on a free one instead
  std::string advertise_host;  // how others reach us; default: bind host, or hostname for 0.0.0.0
  Timers timers;
};

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
  bool started = false;
  std::vector<MemberInfo> members;  // sorted by alias
  uint64_t dropped_frames = 0;
};

class Node {
 public:
  Node(zmq::context_t& context, NodeConfig config);
  ~Node();  // leaves the cluster if in one
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Binds the listener and starts the I/O thread. Idempotent.
  Result<std::string> start();
  // Says hello to HOST:PORT and waits (bounded by timers.join_timeout) for
  // its answer. Starts the node first if needed.
  Result<std::string> join(const std::string& host, uint16_t port);
  // Keeps saying hello to each seed, backing off, until one answers.
  void join_in_background(std::vector<std::pair<std::string, uint16_t>> seeds);
  Snapshot snapshot();
  bool started() const;
  // Sends leave to every peer, closes every socket, stops the thread.
  void leave_and_stop();

  const std::string& instance() const { return instance_; }

 private:
  class Loop;  // the I/O thread's state: node.cpp
  using Task = std::function<void(Loop&)>;
  void submit(Task task);

  zmq::context_t& context_;
  NodeConfig config_;
  std::string instance_;
  mutable std::mutex mutex_;  // guards the fields below
  std::unique_ptr<Loop> loop_;
  std::deque<Task> tasks_;
  std::string wake_endpoint_;
  std::thread thread_;
  bool stopped_ = false;
};

}  // namespace iridium::cluster
