// spdlog set-up: logs go to stderr, user-facing output stays on stdout.
#pragma once

#include <string>

#include "common/result.h"

namespace iridium::app {

// When log lines carry ANSI colour codes (--log-color, IRIDIUM_LOG_COLOR).
//   auto:   only when stderr is a terminal that shows colour (TERM), and the
//           NO_COLOR environment variable is unset or empty;
//   always: always, also into pipes and files;
//   never:  never. Containers set this: a container's terminal is also what
//           `docker logs` keeps, so codes there end up in log files.
enum class LogColor { automatic, always, never };

// "auto", "always" or "never"; an error names the accepted words.
Result<LogColor> parse_log_color(const std::string& text);

// level: trace, debug, info, warn, error, critical or off.
Status init_logging(const std::string& level, LogColor color = LogColor::automatic);

}  // namespace iridium::app
