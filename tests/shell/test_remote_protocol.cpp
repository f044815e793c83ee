// Frames of the remote shell (src/shell/remote_protocol.h): the `interrupt`
// request, and what a node does with a type it does not know (which is what
// an older node does with `interrupt`).
#include <catch2/catch.hpp>
#include <cstdint>
#include <span>
#include <string>

#include "common/wire.h"
#include "shell/remote_protocol.h"

namespace remote = iridium::shell::remote;
using remote::Request;
using remote::Response;

namespace {

std::span<const uint8_t> bytes(const std::string& frame) {
  return {reinterpret_cast<const uint8_t*>(frame.data()), frame.size()};
}

std::string frame_of_type(const char* type) {
  iridium::wire::Writer w;
  w.begin(2).field("v", remote::kProtocolVersion).field("type", type);
  return std::string(w.bytes());
}

}  // namespace

TEST_CASE("interrupt is a two-field frame that decodes back to itself") {
  const std::string frame = remote::encode(Request{Request::Type::kInterrupt, {}, {}});
  CHECK(frame == frame_of_type("interrupt"));
  auto decoded = remote::decode_request(bytes(frame));
  REQUIRE(decoded.ok());
  CHECK(decoded->type == Request::Type::kInterrupt);
  CHECK(decoded->line.empty());
  CHECK(decoded->token.empty());
}

TEST_CASE("interrupt with extra keys still decodes (unknown keys are ignored)") {
  iridium::wire::Writer w;
  w.begin(3).field("v", 1).field("type", "interrupt").field("line", "nop");
  auto decoded = remote::decode_request(bytes(std::string(w.bytes())));
  REQUIRE(decoded.ok());
  CHECK(decoded->type == Request::Type::kInterrupt);
}

TEST_CASE("every request type survives encode and decode") {
  for (auto type : {Request::Type::kOpen, Request::Type::kExec, Request::Type::kPing,
                    Request::Type::kClose, Request::Type::kInterrupt}) {
    auto decoded = remote::decode_request(bytes(remote::encode(Request{type, "t", "l"})));
    REQUIRE(decoded.ok());
    CHECK(decoded->type == type);
  }
}

TEST_CASE("an unknown request type is an error that names it") {
  auto decoded = remote::decode_request(bytes(frame_of_type("frobnicate")));
  REQUIRE_FALSE(decoded.ok());
  CHECK(decoded.message() == "unknown request type 'frobnicate'");
}

TEST_CASE("refuses_interrupt recognises an older node's refusal and nothing else") {
  // The server answers an undecodable frame with "bad request: " + the error.
  auto error = remote::decode_request(bytes(frame_of_type("interrupt-v2")));
  REQUIRE_FALSE(error.ok());
  CHECK_FALSE(remote::refuses_interrupt(Response::refused("bad request: " + error.message())));
  CHECK(remote::refuses_interrupt(
      Response::refused("bad request: unknown request type 'interrupt'")));
  CHECK_FALSE(remote::refuses_interrupt(Response::refused("too many remote sessions")));
  Response result;
  result.text = "bad request: unknown request type 'interrupt'";
  CHECK_FALSE(remote::refuses_interrupt(result));  // a line's output, not a refusal
  // The refusal goes through the wire unchanged.
  auto decoded = remote::decode_response(
      bytes(remote::encode(Response::refused("bad request: unknown request type 'interrupt'"))));
  REQUIRE(decoded.ok());
  CHECK(remote::refuses_interrupt(*decoded));
}
