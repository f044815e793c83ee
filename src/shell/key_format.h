// How the shell shows the node's cluster keyring (!cluster_keys list): an
// aligned table for people or JSON for scripts. Pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "shell/cluster_commands.h"

namespace iridium::shell {

// A header (KEY PRIMARY FILE), then one row per key in keyring order
// (the primary first). No trailing spaces.
std::string keys_table(const std::vector<ClusterKey>& keys);
// {"keys": [{"fingerprint", "primary", "path"}]}, in keyring order.
nlohmann::json keys_json(const std::vector<ClusterKey>& keys);

}  // namespace iridium::shell
