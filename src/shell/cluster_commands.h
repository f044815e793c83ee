// What a shell needs from the node's cluster. The app wires the real cluster
// node in; the shell itself does not depend on the cluster library.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace iridium::shell {

// One key of the node's cluster keyring, as !cluster_keys shows it.
struct ClusterKey {
  std::string fingerprint;  // the first characters of the public key
  std::string path;         // the file it was installed (or started) from
  bool primary = false;
};

// What !cluster_keys install, use or remove did.
struct ClusterKeyChange {
  ClusterKey key;
  bool already = false;  // nothing to do: installed already, or primary already
};

class ClusterCommands {
 public:
  virtual ~ClusterCommands() = default;
  // Each returns the text to show the user, or an error to show instead.
  virtual Result<std::string> start_cluster() = 0;
  virtual Result<std::string> join_cluster(const std::string& host, uint16_t port) = 0;
  virtual Result<std::string> members(bool as_json) = 0;
  // The keyring (secure mode; an error in plain mode): data, worded by the shell.
  virtual Result<std::vector<ClusterKey>> keys() = 0;
  virtual Result<ClusterKeyChange> install_key(const std::string& path) = 0;
  virtual Result<ClusterKeyChange> use_key(const std::string& name) = 0;
  virtual Result<ClusterKeyChange> remove_key(const std::string& name) = 0;
};

}  // namespace iridium::shell
