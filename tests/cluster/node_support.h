// Shared by the Catch2 suites that run real Nodes in one process: logging
// set up before any thread logs, a config on a free loopback port, and
// polling with a deadline (never a bare sleep).
#pragma once

#include <spdlog/spdlog.h>

#include <chrono>
#include <string>
#include <thread>

#include "cluster/node.h"

namespace iridium::testing {

// Like the app, set up logging before any thread logs (spdlog's registry is
// created on first use).
inline const bool kQuietLogging = [] {
  spdlog::set_level(spdlog::level::warn);
  return true;
}();

// A node on 127.0.0.1 and any free port.
inline cluster::NodeConfig loopback_config(const std::string& alias) {
  cluster::NodeConfig c;
  c.alias = alias;
  c.bind_port = 0;  // any free port (port_fallback is not needed)
  c.port_fallback = true;
  return c;
}

// Polls p every 10 ms until it holds or `limit` passes; p()'s last answer.
template <typename Predicate>
bool eventually(Predicate p, std::chrono::milliseconds limit = std::chrono::milliseconds(5000)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (p()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return p();
}

}  // namespace iridium::testing
