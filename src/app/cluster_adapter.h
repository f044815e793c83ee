// Connects the shell's cluster commands to the node's cluster.
#pragma once

#include "cluster/members_format.h"
#include "cluster/node.h"
#include "shell/cluster_commands.h"

namespace iridium::app {

class ClusterAdapter : public shell::ClusterCommands {
 public:
  explicit ClusterAdapter(cluster::Node& node) : node_(node) {}

  Result<std::string> start_cluster() override { return node_.start(); }
  Result<std::string> join_cluster(const std::string& host, uint16_t port) override {
    return node_.join(host, port);
  }
  Result<std::string> members(bool as_json) override {
    const cluster::Snapshot snapshot = node_.snapshot();
    if (as_json) return cluster::members_json(snapshot).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return cluster::members_table(snapshot);
  }

 private:
  cluster::Node& node_;
};

}  // namespace iridium::app
