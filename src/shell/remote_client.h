// `iridium attach HOST:PORT`: a shell on a remote node.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/curve_key.h"
#include "common/result.h"
#include "shell/remote_protocol.h"

namespace iridium::shell {

struct AttachSettings {
  std::string address;                // HOST:PORT
  std::vector<std::string> commands;  // run these and exit; empty: interactive
  std::string token;
  std::optional<CurveKey> key;  // the node's remote-shell key: CURVE
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds command_timeout{60000};
  std::string history_path;  // for interactive use
};

// 128 + SIGINT, as shells report a command ended by Ctrl-C.
inline constexpr int kExitInterrupted = 130;

// Returns the process exit code: 0 all commands succeeded, 1 one failed,
// 2 could not connect or was refused, kExitInterrupted when Ctrl-C (SIGINT)
// interrupted a -c line (or the wait for the node).
//
// Ctrl-C never kills the client: SIGINT is blocked for the rest of the
// process and read from a signalfd. While a line runs it sends `interrupt`
// and waits for the line's ("interrupted at ...") result. Interactive, every
// Ctrl-C during a line sends `interrupt` again, and Ctrl-C at the prompt
// drops the half-typed line. With -c, the first Ctrl-C interrupts the line,
// prints its result and exits kExitInterrupted without running the lines
// after it; a second one stops waiting at once (same status).
int attach(const AttachSettings& settings);

// Splits "host:port" ("[::1]:2244" for IPv6).
Result<std::pair<std::string, uint16_t>> parse_host_port(const std::string& text);

}  // namespace iridium::shell
