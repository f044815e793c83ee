// Every command-line flag, parsed once by CLI11 in cli.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cluster/protocol.h"

namespace iridium::app {

struct RunOptions {
  std::string file;
  std::string state_json;  // "" = none, "-" = stdout
  uint64_t max_steps = 0;
  std::size_t heap_cap = 64u << 20;
  std::size_t stack_cap = 1u << 20;
};

struct NodeOptions {
  std::string node_alias;
  std::string cluster_name{cluster::kDefaultClusterName};  // other clusters' frames are ignored
  std::string data_root_dir;
  unsigned threads = 2;
  std::size_t keep_finished_jobs = 1000;         // newest finished jobs kept for !jobs
  std::size_t keep_finished_output = 16u << 20;  // bytes of their output and errors
  std::string metrics_host = "127.0.0.1";
  uint16_t metrics_port = 0;  // 0: no metrics endpoint
  std::string server_bind_host = "127.0.0.1";
  uint16_t server_bind_port = 2254;
  bool server_bind_port_explicit = false;  // else a busy default port falls back to a free one
  std::string advertise_host;
  bool enable_remote_access = false;
  std::string bind_host = "127.0.0.1";
  uint16_t bind_port = 2244;
  std::string remote_token;
  bool daemon_mode = false;
  bool start_cluster = false;
  std::vector<std::string> join;  // HOST:PORT seeds
  std::string cluster_key;        // key file: secure mode (CURVE) for the cluster
  std::string remote_key;         // key file for the remote shell (default: cluster_key)
  bool insecure = false;          // plain cluster mode off loopback
};

struct AttachOptions {
  std::string address;  // HOST:PORT
  std::vector<std::string> commands;
  std::string token;
  std::string key;  // key file: the node's remote shell uses CURVE
  double timeout_seconds = 30;
};

// --log-level and --log-color, turned into spdlog settings by init_logging.
struct LogOptions {
  std::string level = "warn";
  std::string color = "auto";  // auto, always or never (see LogColor)
};

struct AsmOptions {
  std::string input;
  std::string output;
};

}  // namespace iridium::app
