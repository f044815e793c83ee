// What a shell needs from the node's cluster. The app wires the real cluster
// node in; the shell itself does not depend on the cluster library.
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"

namespace iridium::shell {

class ClusterCommands {
 public:
  virtual ~ClusterCommands() = default;
  // Each returns the text to show the user, or an error to show instead.
  virtual Result<std::string> start_cluster() = 0;
  virtual Result<std::string> join_cluster(const std::string& host, uint16_t port) = 0;
  virtual Result<std::string> members(bool as_json) = 0;
};

}  // namespace iridium::shell
