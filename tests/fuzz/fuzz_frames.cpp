// libFuzzer target: arbitrary bytes as a frame off the network.
//
// The first byte picks the decoder, the rest is the frame:
//   0: a cluster frame (cluster::decode), 1: a remote-shell request,
//   2: a remote-shell response (shell::remote::decode_*).
// Whatever the bytes, nothing may crash, leak or hit undefined behaviour, and
// a frame a decoder accepted must survive re-encoding: decode(encode(m))
// equals m for every decoded m. So a field the decoder reads but the encoder
// drops, or writes differently, is found here.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

#include "cluster/protocol.h"
#include "shell/remote_protocol.h"

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_frames: invariant broken: %s\n", what);
  std::abort();
}

std::span<const uint8_t> bytes_of(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// decode -> encode -> decode: the two decoded values must be equal.
template <typename Decode>
void check_round_trip(std::span<const uint8_t> frame, Decode decode, const char* what) {
  auto first = decode(frame);
  if (!first.ok()) return;
  auto second = decode(bytes_of(encode(first.value())));
  if (!second.ok() || !(second.value() == first.value())) fail(what);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::span<const uint8_t> frame(data + 1, size - 1);
  namespace remote = iridium::shell::remote;
  switch (data[0] % 3) {
    case 0:
      check_round_trip(
          frame, [](auto b) { return iridium::cluster::decode(b); },
          "a cluster frame that decoded does not re-encode to a frame that decodes the same");
      break;
    case 1:
      check_round_trip(
          frame, [](auto b) { return remote::decode_request(b); },
          "a remote request that decoded does not re-encode to one that decodes the same");
      break;
    default:
      check_round_trip(
          frame, [](auto b) { return remote::decode_response(b); },
          "a remote response that decoded does not re-encode to one that decodes the same");
      break;
  }
  return 0;
}
