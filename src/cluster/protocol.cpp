#include "cluster/protocol.h"

#include "common/wire.h"

namespace iridium::cluster {
namespace {

struct TypeName {
  MessageType type;
  std::string_view name;
};
constexpr TypeName kTypeNames[] = {
    {MessageType::kHello, "hello"},         {MessageType::kHelloAck, "hello_ack"},
    {MessageType::kHelloNack, "hello_nack"}, {MessageType::kJoin, "join"},
    {MessageType::kHeartbeat, "heartbeat"}, {MessageType::kLeave, "leave"},
    {MessageType::kMembers, "members"},
};

// Aliases, hosts and instances are plain ASCII names: anything else is
// refused on the wire, so no later printing or JSON can choke on it.
bool valid_name(std::string_view text, std::size_t max, std::string_view extra) {
  if (text.empty() || text.size() > max) return false;
  for (char c : text) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && extra.find(c) == std::string_view::npos) return false;
  }
  return true;
}
bool valid_alias(std::string_view a) { return valid_name(a, 64, "._-"); }
bool valid_host(std::string_view h) { return valid_name(h, 255, "._-:"); }

bool carries_nodes(MessageType type) {
  return type == MessageType::kHelloAck || type == MessageType::kMembers;
}

Result<NodeAddress> decode_node(const msgpack::object& o) {
  if (o.type != msgpack::type::ARRAY || o.via.array.size != 3) {
    return Error{"a node entry must be an array [alias, host, port]"};
  }
  const msgpack::object* e = o.via.array.ptr;
  if (e[0].type != msgpack::type::STR || e[1].type != msgpack::type::STR ||
      e[2].type != msgpack::type::POSITIVE_INTEGER || e[2].via.u64 == 0 || e[2].via.u64 > 65535) {
    return Error{"a node entry must be [str alias, str host, port 1..65535]"};
  }
  NodeAddress node{std::string(e[0].via.str.ptr, e[0].via.str.size),
                   std::string(e[1].via.str.ptr, e[1].via.str.size), static_cast<uint16_t>(e[2].via.u64)};
  if (!valid_alias(node.alias) || !valid_host(node.host)) {
    return Error{"a node entry has an invalid alias or host"};
  }
  return node;
}

}  // namespace

std::string_view message_type_name(MessageType type) {
  for (const auto& entry : kTypeNames) {
    if (entry.type == type) return entry.name;
  }
  return "unknown";
}

std::string encode(const Message& m) {
  wire::Writer w;
  const bool nodes = carries_nodes(m.type);
  const bool reason = m.type == MessageType::kHelloNack;
  w.begin(6 + (nodes ? 1 : 0) + (reason ? 1 : 0))
      .field("v", kProtocolVersion)
      .field("type", message_type_name(m.type))
      .field("alias", m.sender.alias)
      .field("host", m.sender.host)
      .field("port", m.sender.port)
      .field("instance", m.instance);
  if (nodes) {
    auto& pk = w.packer();
    pk.pack("nodes");
    pk.pack_array(static_cast<uint32_t>(m.nodes.size()));
    for (const NodeAddress& n : m.nodes) {
      pk.pack_array(3);
      pk.pack(n.alias);
      pk.pack(n.host);
      pk.pack(n.port);
    }
  }
  if (reason) w.field("reason", m.reason);
  return std::string(w.bytes());
}

Result<Message> decode(std::span<const uint8_t> bytes) {
  if (bytes.size() > kMaxFrameBytes) return Error{"frame of " + std::to_string(bytes.size()) + " bytes is too large"};
  auto frame = wire::Frame::decode(bytes);
  if (!frame) return frame.error();
  auto version = frame->integer("v");
  if (!version) return Error{"no protocol version \"v\""};
  if (*version != kProtocolVersion) return Error{"unsupported protocol version " + std::to_string(*version)};
  auto type_name = frame->str("type");
  if (!type_name) return Error{"no \"type\""};
  Message m;
  bool known = false;
  for (const auto& entry : kTypeNames) {
    if (entry.name == *type_name) {
      m.type = entry.type;
      known = true;
    }
  }
  if (!known) return Error{"unknown message type '" + *type_name + "'"};
  auto alias = frame->str("alias");
  auto host = frame->str("host");
  auto port = frame->integer("port");
  auto instance = frame->str("instance");
  if (!alias || !valid_alias(*alias)) return Error{"\"alias\" must be 1..64 of [A-Za-z0-9._-]"};
  if (!host || !valid_host(*host)) return Error{"\"host\" must be 1..255 of [A-Za-z0-9._:-]"};
  if (!port || *port < 1 || *port > 65535) return Error{"\"port\" must be an integer 1..65535"};
  if (!instance || !valid_name(*instance, 64, "")) return Error{"\"instance\" must be 1..64 letters or digits"};
  m.sender = NodeAddress{*alias, *host, static_cast<uint16_t>(*port)};
  m.instance = *instance;
  if (carries_nodes(m.type)) {
    const msgpack::object* nodes = frame->get("nodes");
    if (nodes == nullptr || nodes->type != msgpack::type::ARRAY) return Error{"\"nodes\" must be an array"};
    if (nodes->via.array.size > kMaxNodesPerFrame) return Error{"too many nodes in one frame"};
    for (uint32_t i = 0; i < nodes->via.array.size; ++i) {
      auto node = decode_node(nodes->via.array.ptr[i]);
      if (!node) return node.error();
      m.nodes.push_back(std::move(*node));
    }
  }
  if (m.type == MessageType::kHelloNack) {
    auto reason = frame->str("reason");
    if (!reason) return Error{"hello_nack without a string \"reason\""};
    m.reason = *reason;
  }
  return m;
}

}  // namespace iridium::cluster
