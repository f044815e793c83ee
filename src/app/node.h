// `iridium` with no FILE: a node with a local shell, and optionally a remote
// shell server and cluster membership, until end of input or a signal.
#pragma once

#include "app/options.h"

namespace iridium::app {

int run_node(const NodeOptions& node, const RunOptions& run);

}  // namespace iridium::app
