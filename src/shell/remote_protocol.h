// Frames of the remote shell (`iridium attach` <-> a node started with -r).
// One MessagePack map per ZeroMQ frame; see docs/shell.md.
//
//   client -> node: {"v":1, "type":"open",  "token":STR}
//                   {"v":1, "type":"exec",  "line":STR}
//                   {"v":1, "type":"close"}
//   node -> client: {"v":1, "type":"opened", "banner":STR}
//                   {"v":1, "type":"refused", "error":STR}
//                   {"v":1, "type":"result", "ok":BOOL, "output":STR, "quit":BOOL, "ask":STR}
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "common/result.h"

namespace iridium::shell::remote {

inline constexpr int kProtocolVersion = 1;
inline constexpr uint16_t kDefaultPort = 2244;

struct Request {
  enum class Type { kOpen, kExec, kClose } type = Type::kExec;
  std::string token;  // open
  std::string line;   // exec
};

struct Response {
  enum class Type { kOpened, kRefused, kResult } type = Type::kResult;
  std::string text;   // banner, error, or command output
  bool ok = true;
  bool quit = false;
  std::string ask;

  static Response opened(std::string banner) { return {Type::kOpened, std::move(banner), true, false, {}}; }
  static Response refused(std::string error) { return {Type::kRefused, std::move(error), false, false, {}}; }
};

std::string encode(const Request& request);
std::string encode(const Response& response);
Result<Request> decode_request(std::span<const uint8_t> bytes);
Result<Response> decode_response(std::span<const uint8_t> bytes);

}  // namespace iridium::shell::remote
