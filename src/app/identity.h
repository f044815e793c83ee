// Where a node keeps its files, and its alias.
#pragma once

#include <string>

#include "common/result.h"

namespace iridium::app {

// --data-root-dir if given, else $XDG_DATA_HOME/iridium, else
// ~/.local/share/iridium (else a temp directory's iridium). Not created.
std::string default_data_dir(const std::string& requested);

// default_data_dir(requested), created if missing.
Result<std::string> resolve_data_dir(const std::string& requested);

// Aliases are 1..64 characters of [A-Za-z0-9._-].
Status check_alias(const std::string& alias);

// The alias stored in DIR/node_alias; a new UUID is generated and stored the
// first time, so a restarted node keeps its identity.
Result<std::string> load_or_create_alias(const std::string& data_dir);

}  // namespace iridium::app
