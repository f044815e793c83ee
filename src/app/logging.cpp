#include "app/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace iridium::app {

Status init_logging(const std::string& level) {
  auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") {
    return Error{"unknown log level '" + level + "' (use trace, debug, info, warn, error, critical, off)"};
  }
  auto logger = spdlog::stderr_color_mt("iridium");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%t] %v");
  logger->set_level(parsed);
  spdlog::set_default_logger(logger);
  return ok_status();
}

}  // namespace iridium::app
