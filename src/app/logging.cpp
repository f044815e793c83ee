#include "app/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>

namespace iridium::app {

Result<LogColor> parse_log_color(const std::string& text) {
  if (text == "auto") return LogColor::automatic;
  if (text == "always") return LogColor::always;
  if (text == "never") return LogColor::never;
  return Error{"unknown log colour '" + text + "' (use auto, always, never)"};
}

namespace {

spdlog::color_mode to_spdlog(LogColor color) {
  switch (color) {
    case LogColor::always:
      return spdlog::color_mode::always;
    case LogColor::never:
      return spdlog::color_mode::never;
    case LogColor::automatic:
      break;
  }
  // https://no-color.org: a non-empty NO_COLOR turns automatic colour off.
  if (const char* no_color = std::getenv("NO_COLOR"); no_color != nullptr && *no_color != '\0') {
    return spdlog::color_mode::never;
  }
  // spdlog's own test: stderr is a terminal and TERM names one with colour.
  return spdlog::color_mode::automatic;
}

}  // namespace

Status init_logging(const std::string& level, LogColor color) {
  auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") {
    return Error{"unknown log level '" + level +
                 "' (use trace, debug, info, warn, error, critical, off)"};
  }
  auto logger = spdlog::stderr_color_mt("iridium", to_spdlog(color));
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%t] %v");
  logger->set_level(parsed);
  spdlog::set_default_logger(logger);
  return ok_status();
}

}  // namespace iridium::app
