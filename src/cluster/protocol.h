// The cluster protocol's frames. Each is one MessagePack map in one ZeroMQ
// frame and names its sender, so any frame can be understood on its own.
// docs/protocol.md is the reference for every field.
#pragma once

#include <bit>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace iridium::cluster {

// Version 2: SWIM probing, incarnations and piggybacked updates. A frame of
// another version is refused as a whole (docs/protocol.md section 3).
inline constexpr int kProtocolVersion = 2;
inline constexpr std::size_t kMaxFrameBytes = 64 * 1024;  // ZMQ_MAXMSGSIZE on every socket
inline constexpr std::size_t kMaxNodesPerFrame = 1024;    // longer lists go as several frames
inline constexpr std::size_t kMaxUpdatesPerFrame = 256;   // piggybacked updates a frame may carry
// The cluster a node belongs to (--cluster-name). Every frame carries its
// sender's, and a node drops every frame of another cluster unread.
inline constexpr std::string_view kDefaultClusterName = "iridium";

// The message types, once. docs/protocol.md section 4 says who sends each.
enum class MessageType {
  kHello,         // "admit me": answered with hello_ack or hello_nack
  kHelloAck,      // admitted; carries the sender's members (first page)
  kHelloNack,     // refused; carries the reason
  kJoin,          // "I am a member and learned of you": admits the sender
  kHeartbeat,     // "I am here": to a new member, or on a new connection; no answer
  kLeave,         // "I am leaving": drop me now
  kMembers,       // a page of the sender's members (after hello_ack, or a sync that differed)
  kPing,          // SWIM probe: answered with ack
  kAck,           // answer to ping, same seq
  kPingReq,       // "please probe target for me": answered with indirect_ack or indirect_nack
  kIndirectAck,   // "target answered me": answer to ping_req, same seq
  kIndirectNack,  // "target did not answer me in time": answer to ping_req, same seq
  kGossip,        // membership updates only, to a few members while any are pending
  kSync,          // push-pull: a digest of the sender's member set; a mismatch swaps lists
  kRunRequest,    // "run this image": answered with run_accepted, then run_result
  kRunAccepted,   // "it runs here as job N": answer to run_request, same run id
  kRunResult,     // how the run ended (or why it was refused), same run id
  kRunCancel,     // "stop that run": answered by its run_result (status cancelled)
};
inline constexpr std::size_t kMessageTypeCount = 18;  // kHello .. kRunCancel
inline std::size_t message_type_index(MessageType type) {
  return static_cast<std::size_t>(type);
}
inline MessageType message_type_at(std::size_t index) {
  return static_cast<MessageType>(index);
}
std::string_view message_type_name(MessageType type);

// hello_nack codes.
inline constexpr std::string_view kNackSelf = "self";                  // you said hello to yourself
inline constexpr std::string_view kNackDuplicate = "duplicate_alias";  // a live node has your alias
inline constexpr std::string_view kNackFull = "cluster_full";  // the member list is at its bound

// Remote runs (!run_on, !run_all; docs/protocol.md section 4). An image and
// a result each fit one frame with room for the other fields.
inline constexpr std::size_t kMaxRunImageBytes = 48 * 1024;   // run_request's image
inline constexpr std::size_t kMaxRunOutputBytes = 56 * 1024;  // run_result's output, cut to fit
inline constexpr std::size_t kMaxRunNameBytes = 255;          // run_request's name
inline constexpr std::size_t kMaxRunErrorBytes = 1024;        // run_result's error
inline constexpr std::size_t kRunRegisterCount = 32;          // registers per file

// How a run ended, as run_result says it.
enum class RunStatus { kHalted, kEnded, kError, kCancelled, kRefused };
std::string_view run_status_name(RunStatus status);
std::optional<RunStatus> run_status_from_name(std::string_view name);

// run_result's `code` when the status is refused.
inline constexpr std::string_view kRefusedPoolFull = "pool_full";       // every worker is busy
inline constexpr std::string_view kRefusedBadImage = "bad_image";       // it failed verification
inline constexpr std::string_view kRefusedTooBig = "too_big";           // over kMaxRunImageBytes
inline constexpr std::string_view kRefusedUnavailable = "unavailable";  // this node runs no jobs

struct IntRegister {
  uint8_t index = 0;  // 0..31
  int32_t value = 0;
  bool operator==(const IntRegister&) const = default;
};
struct FloatRegister {
  uint8_t index = 0;  // 0..31
  double value = 0;
  // The same bits: a NaN a program left equals itself, so decode(encode(m))
  // == m holds for every frame (tests/fuzz/fuzz_frames.cpp).
  bool operator==(const FloatRegister& other) const {
    return index == other.index &&
           std::bit_cast<uint64_t>(value) == std::bit_cast<uint64_t>(other.value);
  }
};

struct NodeAddress {
  std::string alias;
  std::string host;
  uint16_t port = 0;

  bool operator==(const NodeAddress&) const = default;
};

// A membership change as it spreads (SWIM's piggybacked updates): what the
// sender believes of `node`'s instance at `incarnation`. A higher incarnation
// of the same instance overrides a lower one; a node raises its own to refute
// a suspicion (docs/protocol.md section 7).
enum class UpdateState { kAlive, kSuspect, kDead, kLeft };
std::string_view update_state_name(UpdateState state);

struct Update {
  NodeAddress node;
  std::string instance;
  uint64_t incarnation = 0;
  UpdateState state = UpdateState::kAlive;
  std::string from;  // suspect: the accuser's alias (independent suspicions count once each)

  bool operator==(const Update&) const = default;
};

struct Message {
  MessageType type = MessageType::kHeartbeat;
  // The sender's cluster name; a node drops every frame of another cluster.
  std::string cluster{kDefaultClusterName};
  NodeAddress sender;              // alias, advertised host and port
  std::string instance;            // random per process start: tells restarts apart
  uint64_t incarnation = 0;        // the sender's incarnation (every frame)
  std::vector<Update> updates;     // ping, ack, ping_req, indirect_*, gossip: piggybacked
  std::vector<NodeAddress> nodes;  // hello_ack, members
  std::string reason;              // hello_nack: for people
  std::string code;                // hello_nack: for programs (kNack* below)
  uint64_t seq = 0;                // ping, ack, ping_req, indirect_ack
  NodeAddress target;              // ping_req, indirect_ack: the probed node
  std::string target_instance;     // ping_req, indirect_ack
  uint64_t digest = 0;             // sync: the sender's member-set digest
  uint32_t count = 0;              // sync: how many nodes it counts (itself included)
  // Remote runs. `code` above is run_result's refusal code.
  uint64_t run = 0;                            // every run_*: the id the requester chose
  std::string name;                            // run_request: the job's name, 1..255 bytes
  std::string image;                           // run_request: the image's bytes (bin)
  uint64_t job = 0;                            // run_accepted, run_result: the runner's job id
  RunStatus run_status = RunStatus::kEnded;    // run_result
  std::string error;                           // run_result: why it failed ("" if it did not)
  std::string output;                          // run_result: program output (bin), maybe cut
  bool truncated = false;                      // run_result: output was cut to fit
  std::vector<IntRegister> registers;          // run_result: the non-zero integer registers
  std::vector<FloatRegister> float_registers;  // run_result: the non-zero float registers
  uint64_t elapsed_ms = 0;                     // run_result: how long the job ran

  bool operator==(const Message&) const = default;
};

// True for the names the wire accepts (docs/protocol.md section 3).
bool valid_alias(std::string_view alias);  // 1..64 of [A-Za-z0-9._-]
bool valid_host(std::string_view host);    // 1..255 of [A-Za-z0-9._:-]
// As an alias: 1..64 of [A-Za-z0-9._-].
bool valid_cluster_name(std::string_view name);

std::string encode(const Message& message);
// Never throws. Rejects anything not exactly as documented.
Result<Message> decode(std::span<const uint8_t> bytes);

}  // namespace iridium::cluster
