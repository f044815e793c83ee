#include "app/cluster_adapter.h"

namespace iridium::app {

std::string describe_start(const cluster::StartInfo& info) {
  if (info.already) return "The cluster listener is already running as " + info.self.alias + ".";
  return "Started the cluster listener on " + info.bound.text() + " as " + info.self.alias +
         " in cluster '" + info.cluster + "' (reachable at " +
         cluster::endpoint_of(info.self).text() + ").";
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

namespace iridium::app {

shell::RemoteRun remote_run_of(const cluster::RunReply& reply) {
  shell::RemoteRun run;
  run.node = reply.alias;
  if (!reply.result) {
    run.failure = reply.result.message();
    return run;
  }
  const cluster::RunOutcome& o = *reply.result;
  run.status = std::string(cluster::run_status_name(o.status));
  run.code = o.code;
  run.error = o.error;
  run.output = o.output;
  run.output_truncated = o.truncated;
  for (const cluster::IntRegister& r : o.registers) run.registers.registers[r.index] = r.value;
  for (const cluster::FloatRegister& r : o.float_registers)
    run.registers.float_registers[r.index] = r.value;
  run.job = o.job;
  run.elapsed_ms = o.elapsed_ms;
  return run;
}

Result<std::vector<shell::RemoteRun>> ClusterAdapter::run(const std::vector<std::string>& nodes,
                                                          const std::string& name,
                                                          const std::vector<uint8_t>& image,
                                                          const shell::RemoteRunWait& wait) {
  std::optional<std::vector<std::string>> targets;
  if (!nodes.empty()) targets = nodes;
  auto replies = node_.run(std::move(targets), name, std::string(image.begin(), image.end()),
                           cluster::RunWait{wait.timeout, wait.interrupted});
  if (!replies) return Error{"cannot run: " + replies.message(), replies.kind()};
  std::vector<shell::RemoteRun> runs;
  for (const cluster::RunReply& reply : *replies) runs.push_back(remote_run_of(reply));
  return runs;
}

}  // namespace iridium::app
