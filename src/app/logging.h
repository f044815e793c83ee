// spdlog set-up: logs go to stderr, user-facing output stays on stdout.
#pragma once

#include <string>

#include "common/result.h"

namespace iridium::app {

// level: trace, debug, info, warn, error, critical or off.
Status init_logging(const std::string& level);

}  // namespace iridium::app
