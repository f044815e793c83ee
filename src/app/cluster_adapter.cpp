#include "app/cluster_adapter.h"

namespace iridium::app {

std::string describe_start(const cluster::StartInfo& info) {
  if (info.already) return "The cluster listener is already running as " + info.self.alias + ".";
  return "Started the cluster listener on " + info.bound.text() + " as " + info.self.alias +
         " (reachable at " + cluster::endpoint_of(info.self).text() + ").";
}

std::string describe_join(const cluster::JoinInfo& info) {
  if (info.already) {
    return "Already in the cluster with " + info.via.alias + " at " + info.dialed.text() + ".";
  }
  return "Joined the cluster via " + info.via.alias + " at " + info.dialed.text() + ".";
}

std::string describe_join_error(const Error& error, const cluster::Endpoint& dialed) {
  switch (error.kind) {
    case ErrorKind::kSelf:
      return "cannot join: " + dialed.text() + " is this node itself";
    case ErrorKind::kRefused:
      return "cannot join the cluster at " + dialed.text() + ": " + error.message;
    default:
      return "cannot join: " + error.message;
  }
}

namespace {
shell::ClusterKey shell_key(const cluster::KeyInfo& key) {
  return shell::ClusterKey{key.fingerprint, key.path, key.primary};
}
}  // namespace

Result<std::vector<shell::ClusterKey>> ClusterAdapter::keys() {
  auto keys = node_.keys();
  if (!keys) return keys.error();
  std::vector<shell::ClusterKey> out;
  for (const cluster::KeyInfo& key : *keys) out.push_back(shell_key(key));
  return out;
}

Result<shell::ClusterKeyChange> ClusterAdapter::key_change(
    const Result<cluster::KeyChange>& change) {
  if (!change) return change.error();
  return shell::ClusterKeyChange{shell_key(change->key), change->already};
}

}  // namespace iridium::app
