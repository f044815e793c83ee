// Connects the shell's cluster commands to the node's cluster, and writes
// the sentences people read: the cluster library returns data.
#pragma once

#include "cluster/members_format.h"
#include "cluster/node.h"
#include "shell/cluster_commands.h"

namespace iridium::app {

// "Started the cluster listener on ..." and friends.
std::string describe_start(const cluster::StartInfo& info);
std::string describe_join(const cluster::JoinInfo& info);
std::string describe_join_error(const Error& error, const cluster::Endpoint& dialed);
// One target's answer as the shell shows it.
shell::RemoteRun remote_run_of(const cluster::RunReply& reply);

class ClusterAdapter : public shell::ClusterCommands {
 public:
  explicit ClusterAdapter(cluster::Node& node) : node_(node) {}

  Result<std::string> start_cluster() override {
    auto started = node_.start();
    if (!started) return started.error();
    return describe_start(*started);
  }
  Result<std::string> join_cluster(const std::string& host, uint16_t port) override {
    auto joined = node_.join(host, port);
    if (!joined)
      return Error{describe_join_error(joined.error(), cluster::Endpoint{host, port}),
                   joined.kind()};
    return describe_join(*joined);
  }
  Result<std::vector<shell::ClusterKey>> keys() override;
  Result<shell::ClusterKeyChange> install_key(const std::string& path) override {
    return key_change(node_.install_key(path));
  }
  Result<shell::ClusterKeyChange> use_key(const std::string& name) override {
    return key_change(node_.use_key(name));
  }
  Result<shell::ClusterKeyChange> remove_key(const std::string& name) override {
    return key_change(node_.remove_key(name));
  }
  Result<std::string> members(bool as_json) override {
    const cluster::Snapshot snapshot = node_.snapshot();
    if (as_json)
      return cluster::members_json(snapshot).dump(-1, ' ', false,
                                                  nlohmann::json::error_handler_t::replace);
    return cluster::members_table(snapshot);
  }
  Result<std::vector<shell::RemoteRun>> run(const std::vector<std::string>& nodes,
                                            const std::string& name,
                                            const std::vector<uint8_t>& image,
                                            const shell::RemoteRunWait& wait) override;

 private:
  static Result<shell::ClusterKeyChange> key_change(const Result<cluster::KeyChange>& change);
  cluster::Node& node_;
};

}  // namespace iridium::app
