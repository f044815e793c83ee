// The cluster protocol's frames. Each is one MessagePack map in one ZeroMQ
// frame and names its sender, so any frame can be understood on its own.
// docs/protocol.md is the reference for every field.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"

namespace iridium::cluster {

inline constexpr int kProtocolVersion = 1;
inline constexpr std::size_t kMaxFrameBytes = 64 * 1024;  // ZMQ_MAXMSGSIZE on every socket
inline constexpr std::size_t kMaxNodesPerFrame = 1024;

// The message types, once. docs/protocol.md section 4 says who sends each.
enum class MessageType {
  kHello,        // "admit me": answered with hello_ack or hello_nack
  kHelloAck,     // admitted; carries the sender's members
  kHelloNack,    // refused; carries the reason
  kJoin,         // "I am a member and learned of you": admits the sender
  kHeartbeat,    // "I am alive", to every member every heartbeat interval
  kLeave,        // "I am leaving": drop me now
  kMembers,      // gossip: the sender's members
  kPing,         // direct probe: answered with ack
  kAck,          // answer to ping, same seq
  kPingReq,      // "please reach target for me": answered with indirect_ack
  kIndirectAck,  // "target is alive": answer to ping_req, same seq
};
inline constexpr std::size_t kMessageTypeCount = 11;  // kHello .. kIndirectAck
// 0 .. kMessageTypeCount-1, in declaration order: an index for per-type counts.
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

struct NodeAddress {
  std::string alias;
  std::string host;
  uint16_t port = 0;

  bool operator==(const NodeAddress&) const = default;
};

struct Message {
  MessageType type = MessageType::kHeartbeat;
  NodeAddress sender;              // alias, advertised host and port
  std::string instance;            // random per process start: tells restarts apart
  std::vector<NodeAddress> nodes;  // hello_ack, members
  std::string reason;              // hello_nack: for people
  std::string code;                // hello_nack: for programs (kNack* below)
  uint64_t seq = 0;                // ping, ack, ping_req, indirect_ack
  NodeAddress target;              // ping_req, indirect_ack: the probed node
  std::string target_instance;     // ping_req, indirect_ack
  uint32_t heard_ms_ago = 0;       // indirect_ack: how long since the helper last heard target

  bool operator==(const Message&) const = default;
};

// True for the names the wire accepts (docs/protocol.md section 3).
bool valid_alias(std::string_view alias);  // 1..64 of [A-Za-z0-9._-]
bool valid_host(std::string_view host);    // 1..255 of [A-Za-z0-9._:-]

std::string encode(const Message& message);
// Never throws. Rejects anything not exactly as documented.
Result<Message> decode(std::span<const uint8_t> bytes);

}  // namespace iridium::cluster
