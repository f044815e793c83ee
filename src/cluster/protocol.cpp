#include "cluster/protocol.h"

#include <iterator>

#include "common/wire.h"

namespace iridium::cluster {
namespace {

struct TypeName {
  MessageType type;
  std::string_view name;
};
constexpr TypeName kTypeNames[] = {
    {MessageType::kHello, "hello"},
    {MessageType::kHelloAck, "hello_ack"},
    {MessageType::kHelloNack, "hello_nack"},
    {MessageType::kJoin, "join"},
    {MessageType::kHeartbeat, "heartbeat"},
    {MessageType::kLeave, "leave"},
    {MessageType::kMembers, "members"},
    {MessageType::kPing, "ping"},
    {MessageType::kAck, "ack"},
    {MessageType::kPingReq, "ping_req"},
    {MessageType::kIndirectAck, "indirect_ack"},
};
static_assert(std::size(kTypeNames) == kMessageTypeCount, "kMessageTypeCount is out of date");
static_assert(static_cast<std::size_t>(MessageType::kIndirectAck) + 1 == kMessageTypeCount);

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
bool valid_instance(std::string_view i) {
  return valid_name(i, 64, "");
}

bool carries_nodes(MessageType type) {
  return type == MessageType::kHelloAck || type == MessageType::kMembers;
}
bool carries_seq(MessageType type) {
  return type == MessageType::kPing || type == MessageType::kAck || type == MessageType::kPingReq ||
         type == MessageType::kIndirectAck;
}
bool carries_target(MessageType type) {
  return type == MessageType::kPingReq || type == MessageType::kIndirectAck;
}

void pack_node(msgpack::packer<msgpack::sbuffer>& pk, const NodeAddress& n) {
  pk.pack_array(3);
  pk.pack(n.alias);
  pk.pack(n.host);
  pk.pack(n.port);
}

Error invalid(std::string text) {
  return Error{std::move(text), ErrorKind::kInvalid};
}

Result<NodeAddress> decode_node(const msgpack::object& o) {
  if (o.type != msgpack::type::ARRAY || o.via.array.size != 3) {
    return invalid("a node entry must be an array [alias, host, port]");
  }
  const msgpack::object* e = o.via.array.ptr;
  if (e[0].type != msgpack::type::STR || e[1].type != msgpack::type::STR ||
      e[2].type != msgpack::type::POSITIVE_INTEGER || e[2].via.u64 == 0 || e[2].via.u64 > 65535) {
    return invalid("a node entry must be [str alias, str host, port 1..65535]");
  }
  NodeAddress node{std::string(e[0].via.str.ptr, e[0].via.str.size),
                   std::string(e[1].via.str.ptr, e[1].via.str.size),
                   static_cast<uint16_t>(e[2].via.u64)};
  if (!valid_alias(node.alias) || !valid_host(node.host)) {
    return invalid("a node entry has an invalid alias or host");
  }
  return node;
}

}  // namespace

bool valid_alias(std::string_view alias) {
  return valid_name(alias, 64, "._-");
}
bool valid_host(std::string_view host) {
  return valid_name(host, 255, "._-:");
}

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
  const bool seq = carries_seq(m.type);
  const bool target = carries_target(m.type);
  const bool heard = m.type == MessageType::kIndirectAck;
  w.begin(6 + (nodes ? 1 : 0) + (reason ? 2 : 0) + (seq ? 1 : 0) + (target ? 2 : 0) +
          (heard ? 1 : 0))
      .field("v", kProtocolVersion)
      .field("type", message_type_name(m.type))
      .field("alias", m.sender.alias)
      .field("host", m.sender.host)
      .field("port", m.sender.port)
      .field("instance", m.instance);
  auto& pk = w.packer();
  if (nodes) {
    pk.pack("nodes");
    pk.pack_array(static_cast<uint32_t>(m.nodes.size()));
    for (const NodeAddress& n : m.nodes) pack_node(pk, n);
  }
  if (reason) w.field("reason", m.reason).field("code", m.code);
  if (seq) w.field("seq", m.seq);
  if (target) {
    pk.pack("target");
    pack_node(pk, m.target);
    w.field("target_instance", m.target_instance);
  }
  if (heard) w.field("heard_ms_ago", m.heard_ms_ago);
  return std::string(w.bytes());
}

Result<Message> decode(std::span<const uint8_t> bytes) {
  if (bytes.size() > kMaxFrameBytes)
    return invalid("frame of " + std::to_string(bytes.size()) + " bytes is too large");
  auto frame = wire::Frame::decode(bytes);
  if (!frame) return invalid(frame.message());
  auto version = frame->integer("v");
  if (!version) return invalid("no protocol version \"v\"");
  if (*version != kProtocolVersion)
    return invalid("unsupported protocol version " + std::to_string(*version));
  auto type_name = frame->str("type");
  if (!type_name) return invalid("no \"type\"");
  Message m;
  bool known = false;
  for (const auto& entry : kTypeNames) {
    if (entry.name == *type_name) {
      m.type = entry.type;
      known = true;
    }
  }
  if (!known) return invalid("unknown message type '" + *type_name + "'");
  auto alias = frame->str("alias");
  auto host = frame->str("host");
  auto port = frame->integer("port");
  auto instance = frame->str("instance");
  if (!alias || !valid_alias(*alias)) return invalid("\"alias\" must be 1..64 of [A-Za-z0-9._-]");
  if (!host || !valid_host(*host)) return invalid("\"host\" must be 1..255 of [A-Za-z0-9._:-]");
  if (!port || *port < 1 || *port > 65535) return invalid("\"port\" must be an integer 1..65535");
  if (!instance || !valid_instance(*instance))
    return invalid("\"instance\" must be 1..64 letters or digits");
  m.sender = NodeAddress{*alias, *host, static_cast<uint16_t>(*port)};
  m.instance = *instance;
  if (carries_nodes(m.type)) {
    const msgpack::object* nodes = frame->get("nodes");
    if (nodes == nullptr || nodes->type != msgpack::type::ARRAY)
      return invalid("\"nodes\" must be an array");
    if (nodes->via.array.size > kMaxNodesPerFrame) return invalid("too many nodes in one frame");
    for (uint32_t i = 0; i < nodes->via.array.size; ++i) {
      auto node = decode_node(nodes->via.array.ptr[i]);
      if (!node) return node.error();
      m.nodes.push_back(std::move(*node));
    }
  }
  if (m.type == MessageType::kHelloNack) {
    auto reason = frame->str("reason");
    if (!reason) return invalid("hello_nack without a string \"reason\"");
    m.reason = *reason;
    m.code = frame->str("code").value_or("");  // optional: older senders had none
  }
  if (carries_seq(m.type)) {
    auto seq = frame->integer("seq");
    if (!seq || *seq < 0) return invalid("\"seq\" must be a non-negative integer");
    m.seq = static_cast<uint64_t>(*seq);
  }
  if (carries_target(m.type)) {
    const msgpack::object* target = frame->get("target");
    if (target == nullptr) return invalid("no \"target\"");
    auto node = decode_node(*target);
    if (!node) return node.error();
    m.target = std::move(*node);
    auto target_instance = frame->str("target_instance");
    if (!target_instance || !valid_instance(*target_instance)) {
      return invalid("\"target_instance\" must be 1..64 letters or digits");
    }
    m.target_instance = *target_instance;
  }
  if (m.type == MessageType::kIndirectAck) {
    auto heard = frame->integer("heard_ms_ago");
    if (!heard || *heard < 0 || *heard > UINT32_MAX)
      return invalid("\"heard_ms_ago\" must be an integer 0..2^32-1");
    m.heard_ms_ago = static_cast<uint32_t>(*heard);
  }
  return m;
}

}  // namespace iridium::cluster
