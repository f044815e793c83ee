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

enum class MessageType { kHello, kHelloAck, kHelloNack, kJoin, kHeartbeat, kLeave, kMembers };
std::string_view message_type_name(MessageType type);

struct NodeAddress {
  std::string alias;
  std::string host;
  uint16_t port = 0;

  bool operator==(const NodeAddress&) const = default;
};

struct Message {
  MessageType type = MessageType::kHeartbeat;
  NodeAddress sender;               // alias, advertised host and port
  std::string instance;             // random per process start: tells restarts apart
  std::vector<NodeAddress> nodes;   // hello_ack, members
  std::string reason;               // hello_nack
};

std::string encode(const Message& message);
// Never throws. Rejects anything not exactly as documented.
Result<Message> decode(std::span<const uint8_t> bytes);

}  // namespace iridium::cluster
