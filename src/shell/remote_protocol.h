// Frames of the remote shell (`iridium attach` <-> a node started with -r).
// One MessagePack map per ZeroMQ frame; see docs/shell.md.
//
//   client -> node: {"v":1, "type":"open",  "token":STR}
//                   {"v":1, "type":"exec",  "line":STR}
//                   {"v":1, "type":"ping"}   (no reply: keeps the session alive)
//                   {"v":1, "type":"close"}
//                   {"v":1, "type":"interrupt"} (no reply: stops the session's running
//                                   line at its next slice; its `result` says
//                                   "interrupted at code offset N; ...")
//   node -> client: {"v":1, "type":"opened", "banner":STR, "keepalive_ms":INT}
//                   {"v":1, "type":"refused", "error":STR}
//                   {"v":1, "type":"result", "ok":BOOL, "output":STR, "quit":BOOL, "ask":STR}
//
// Versions: new request types keep "v":1. A node that does not know a type
// answers `refused` "bad request: unknown request type 'T'" and changes
// nothing (the session stays open), so a client that sends `interrupt` to an
// older node gets that refusal, out of turn, instead of an interrupted line;
// refuses_interrupt() recognises it so the client can skip it.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "common/result.h"

namespace iridium::shell::remote {

inline constexpr int kProtocolVersion = 1;
inline constexpr uint16_t kDefaultPort = 2244;

struct Request {
  enum class Type { kOpen, kExec, kPing, kClose, kInterrupt } type = Type::kExec;
  std::string token;  // open
  std::string line;   // exec

  bool operator==(const Request&) const = default;
};

struct Response {
  enum class Type { kOpened, kRefused, kResult } type = Type::kResult;
  std::string text;  // banner, error, or command output
  bool ok = true;
  bool quit = false;
  std::string ask;
  // opened: how often the client should ping (0: the node wants no pings;
  // nodes older than the ping message send no such field).
  int64_t keepalive_ms = 0;

  static Response opened(std::string banner, int64_t keepalive_ms = 0) {
    return {Type::kOpened, std::move(banner), true, false, {}, keepalive_ms};
  }
  static Response refused(std::string error) {
    return {Type::kRefused, std::move(error), false, false, {}, 0};
  }
  bool operator==(const Response&) const = default;
};

std::string encode(const Request& request);
std::string encode(const Response& response);
Result<Request> decode_request(std::span<const uint8_t> bytes);
Result<Response> decode_response(std::span<const uint8_t> bytes);

// True for the refusal an older node sends for an `interrupt` it does not know.
bool refuses_interrupt(const Response& response);

}  // namespace iridium::shell::remote
