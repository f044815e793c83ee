#include "cluster/protocol.h"

#include <algorithm>
#include <cstring>
#include <iterator>

#include "common/wire.h"

namespace iridium::cluster {
namespace {

// What a frame carries besides the header every frame has (v, type, alias,
// host, port, instance, incarnation).
enum Field : unsigned {
  kNodes = 1u << 0,    // "nodes": [[alias, host, port], ...]
  kReason = 1u << 1,   // "reason", "code"
  kSeq = 1u << 2,      // "seq"
  kTarget = 1u << 3,   // "target", "target_instance"
  kUpdates = 1u << 4,  // "updates" (optional on the wire: absent means none)
  kDigest = 1u << 5,   // "digest", "count"
  kRun = 1u << 6,      // "run"
  kJob = 1u << 7,      // "job"
};

// The message types, with their names on the wire and their fields: every
// encoder and decoder rule below derives from this table.
struct TypeInfo {
  MessageType type;
  std::string_view name;
  unsigned fields;
};
constexpr TypeInfo kTypes[] = {
    {MessageType::kHello, "hello", 0},
    {MessageType::kHelloAck, "hello_ack", kNodes},
    {MessageType::kHelloNack, "hello_nack", kReason},
    {MessageType::kJoin, "join", 0},
    {MessageType::kHeartbeat, "heartbeat", 0},
    {MessageType::kLeave, "leave", 0},
    {MessageType::kMembers, "members", kNodes},
    {MessageType::kPing, "ping", kSeq | kUpdates},
    {MessageType::kAck, "ack", kSeq | kUpdates},
    {MessageType::kPingReq, "ping_req", kSeq | kTarget | kUpdates},
    {MessageType::kIndirectAck, "indirect_ack", kSeq | kTarget | kUpdates},
    {MessageType::kIndirectNack, "indirect_nack", kSeq | kTarget | kUpdates},
    {MessageType::kGossip, "gossip", kUpdates},
    {MessageType::kSync, "sync", kSeq | kDigest},
    {MessageType::kRunRequest, "run_request", kRun},
    {MessageType::kRunAccepted, "run_accepted", kRun | kJob},
    {MessageType::kRunResult, "run_result", kRun | kJob},
    {MessageType::kRunCancel, "run_cancel", kRun},
};
static_assert(std::size(kTypes) == kMessageTypeCount, "kMessageTypeCount is out of date");
static_assert(static_cast<std::size_t>(MessageType::kRunCancel) + 1 == kMessageTypeCount);

constexpr bool carries(MessageType type, unsigned field) {
  return (kTypes[static_cast<std::size_t>(type)].fields & field) != 0;
}

constexpr std::string_view kUpdateStateNames[] = {"alive", "suspect", "dead", "left"};
static_assert(static_cast<std::size_t>(UpdateState::kLeft) + 1 == std::size(kUpdateStateNames));

constexpr std::string_view kRunStatusNames[] = {"halted", "ended", "error", "cancelled", "refused"};
static_assert(static_cast<std::size_t>(RunStatus::kRefused) + 1 == std::size(kRunStatusNames));

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

void pack_bin(msgpack::packer<msgpack::sbuffer>& pk, std::string_view key, std::string_view bytes) {
  pk.pack(key);
  pk.pack_bin(static_cast<uint32_t>(bytes.size()));
  pk.pack_bin_body(bytes.data(), static_cast<uint32_t>(bytes.size()));
}

// A float64, always: msgpack-c's pack(double) writes 2.0 as the integer 2,
// which a float register's value must not be.
void pack_value(msgpack::packer<msgpack::sbuffer>& pk, double value) {
  uint64_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  char bytes[9] = {static_cast<char>(0xcb)};
  for (int i = 0; i < 8; ++i) bytes[1 + i] = static_cast<char>(bits >> (56 - 8 * i));
  pk.pack_bin_body(bytes, sizeof bytes);  // appends the bytes as they are
}
void pack_value(msgpack::packer<msgpack::sbuffer>& pk, int32_t value) {
  pk.pack(value);
}

template <typename Register>
void pack_registers(msgpack::packer<msgpack::sbuffer>& pk, std::string_view key,
                    const std::vector<Register>& registers) {
  pk.pack(key);
  pk.pack_array(static_cast<uint32_t>(registers.size()));
  for (const Register& r : registers) {
    pk.pack_array(2);
    pk.pack(r.index);
    pack_value(pk, r.value);
  }
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

// e[0..2]: str alias, str host, port 1..65535.
Result<NodeAddress> decode_node_fields(const msgpack::object* e) {
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

Result<NodeAddress> decode_node(const msgpack::object& o) {
  if (o.type != msgpack::type::ARRAY || o.via.array.size != 3) {
    return invalid("a node entry must be an array [alias, host, port]");
  }
  return decode_node_fields(o.via.array.ptr);
}

// "updates": [[alias, host, port, instance, incarnation, state, from], ...].
void pack_updates(msgpack::packer<msgpack::sbuffer>& pk, const std::vector<Update>& updates) {
  pk.pack("updates");
  pk.pack_array(static_cast<uint32_t>(updates.size()));
  for (const Update& u : updates) {
    pk.pack_array(7);
    pk.pack(u.node.alias);
    pk.pack(u.node.host);
    pk.pack(u.node.port);
    pk.pack(u.instance);
    pk.pack(u.incarnation);
    pk.pack(update_state_name(u.state));
    pk.pack(u.from);
  }
}

Result<Update> decode_update(const msgpack::object& o) {
  if (o.type != msgpack::type::ARRAY || o.via.array.size != 7)
    return invalid("an update must be [alias, host, port, instance, incarnation, state, from]");
  const msgpack::object* e = o.via.array.ptr;
  auto node = decode_node_fields(e);
  if (!node) return node.error();
  if (e[3].type != msgpack::type::STR || e[4].type != msgpack::type::POSITIVE_INTEGER ||
      e[5].type != msgpack::type::STR || e[6].type != msgpack::type::STR) {
    return invalid("an update must be [.., str instance, incarnation >= 0, str state, str from]");
  }
  Update u;
  u.node = std::move(*node);
  u.instance.assign(e[3].via.str.ptr, e[3].via.str.size);
  u.incarnation = e[4].via.u64;
  const std::string_view state(e[5].via.str.ptr, e[5].via.str.size);
  u.from.assign(e[6].via.str.ptr, e[6].via.str.size);
  if (!valid_instance(u.instance)) return invalid("an update's instance is invalid");
  if (!u.from.empty() && !valid_alias(u.from)) return invalid("an update's \"from\" is invalid");
  const auto* name = std::find(std::begin(kUpdateStateNames), std::end(kUpdateStateNames), state);
  if (name == std::end(kUpdateStateNames))
    return invalid("an update's state must be alive, suspect, dead or left");
  u.state = static_cast<UpdateState>(name - std::begin(kUpdateStateNames));
  return u;
}

Result<std::vector<Update>> decode_updates(const msgpack::object& list) {
  if (list.type != msgpack::type::ARRAY) return invalid("\"updates\" must be an array");
  if (list.via.array.size > kMaxUpdatesPerFrame) return invalid("too many updates in one frame");
  std::vector<Update> out;
  out.reserve(list.via.array.size);
  for (uint32_t i = 0; i < list.via.array.size; ++i) {
    auto u = decode_update(list.via.array.ptr[i]);
    if (!u) return u.error();
    out.push_back(std::move(*u));
  }
  return out;
}

// A non-negative integer that fits a signed 64-bit integer (docs/protocol.md
// section 2).
std::optional<uint64_t> unsigned_field(const wire::Frame& frame, std::string_view key) {
  auto value = frame.integer(key);
  if (!value || *value < 0) return std::nullopt;
  return static_cast<uint64_t>(*value);
}

// Any integer 0..2^64 - 1: the digest is a hash and uses all 64 bits.
std::optional<uint64_t> hash_field(const wire::Frame& frame, std::string_view key) {
  const msgpack::object* o = frame.get(key);
  if (o == nullptr || o->type != msgpack::type::POSITIVE_INTEGER) return std::nullopt;
  return o->via.u64;
}

std::optional<std::string> bin_field(const wire::Frame& frame, std::string_view key) {
  const msgpack::object* o = frame.get(key);
  if (o == nullptr || o->type != msgpack::type::BIN) return std::nullopt;
  return std::string(o->via.bin.ptr, o->via.bin.size);
}

// [[index, value], ...]: at most 32 pairs, indexes 0..31 in increasing order.
// `value` checks and converts one value.
template <typename Register, typename Value>
Result<std::vector<Register>> decode_registers(const wire::Frame& frame, std::string_view key,
                                               Value value) {
  const msgpack::object* list = frame.get(key);
  const std::string name(key);
  if (list == nullptr || list->type != msgpack::type::ARRAY)
    return invalid("\"" + name + "\" must be an array");
  if (list->via.array.size > kRunRegisterCount) return invalid("too many " + name);
  std::vector<Register> out;
  for (uint32_t i = 0; i < list->via.array.size; ++i) {
    const msgpack::object& e = list->via.array.ptr[i];
    if (e.type != msgpack::type::ARRAY || e.via.array.size != 2 ||
        e.via.array.ptr[0].type != msgpack::type::POSITIVE_INTEGER ||
        e.via.array.ptr[0].via.u64 >= kRunRegisterCount) {
      return invalid("an entry of \"" + name + "\" must be [index 0..31, value]");
    }
    const auto index = static_cast<uint8_t>(e.via.array.ptr[0].via.u64);
    if (!out.empty() && index <= out.back().index)
      return invalid("\"" + name + "\" must list each index once, in increasing order");
    auto v = value(e.via.array.ptr[1]);
    if (!v) return invalid("an entry of \"" + name + "\" has a bad value");
    out.push_back(Register{index, *v});
  }
  return out;
}

std::optional<int32_t> int32_value(const msgpack::object& o) {
  if (o.type == msgpack::type::POSITIVE_INTEGER && o.via.u64 <= INT32_MAX)
    return static_cast<int32_t>(o.via.u64);
  if (o.type == msgpack::type::NEGATIVE_INTEGER && o.via.i64 >= INT32_MIN)
    return static_cast<int32_t>(o.via.i64);
  return std::nullopt;
}

std::optional<double> float_value(const msgpack::object& o) {
  if (o.type == msgpack::type::FLOAT64 || o.type == msgpack::type::FLOAT32) return o.via.f64;
  return std::nullopt;
}

// The fields of run_request, run_accepted, run_result and run_cancel.
Status decode_run_fields(const wire::Frame& frame, Message& m) {
  auto run = unsigned_field(frame, "run");
  if (!run) return invalid("\"run\" must be a non-negative integer");
  m.run = *run;
  if (m.type == MessageType::kRunRequest) {
    auto name = frame.str("name");
    if (!name || name->empty() || name->size() > kMaxRunNameBytes)
      return invalid("\"name\" must be a string of 1..255 bytes");
    auto image = bin_field(frame, "image");
    if (!image) return invalid("\"image\" must be bin");
    m.name = std::move(*name);
    m.image = std::move(*image);
  }
  if (carries(m.type, kJob)) {
    auto job = unsigned_field(frame, "job");
    if (!job) return invalid("\"job\" must be a non-negative integer");
    m.job = *job;
  }
  if (m.type != MessageType::kRunResult) return ok_status();
  auto status_name = frame.str("status");
  auto status = status_name ? run_status_from_name(*status_name) : std::nullopt;
  if (!status) return invalid("\"status\" must be halted, ended, error, cancelled or refused");
  m.run_status = *status;
  auto code = frame.str("code");
  if (!code || code->size() > 64) return invalid("\"code\" must be a string of 0..64 bytes");
  if (m.run_status == RunStatus::kRefused && code->empty())
    return invalid("a refused run_result needs a \"code\"");
  m.code = std::move(*code);
  auto error = frame.str("error");
  if (!error || error->size() > kMaxRunErrorBytes)
    return invalid("\"error\" must be a string of 0..1024 bytes");
  m.error = std::move(*error);
  auto output = bin_field(frame, "output");
  if (!output || output->size() > kMaxRunOutputBytes)
    return invalid("\"output\" must be bin of 0..57344 bytes");
  m.output = std::move(*output);
  auto truncated = frame.boolean("truncated");
  if (!truncated) return invalid("\"truncated\" must be a boolean");
  m.truncated = *truncated;
  auto registers = decode_registers<IntRegister>(frame, "registers", int32_value);
  if (!registers) return registers.error();
  m.registers = std::move(*registers);
  auto floats = decode_registers<FloatRegister>(frame, "float_registers", float_value);
  if (!floats) return floats.error();
  m.float_registers = std::move(*floats);
  auto elapsed = unsigned_field(frame, "elapsed_ms");
  if (!elapsed) return invalid("\"elapsed_ms\" must be a non-negative integer");
  m.elapsed_ms = *elapsed;
  return ok_status();
}

}  // namespace

std::string_view run_status_name(RunStatus status) {
  return kRunStatusNames[static_cast<std::size_t>(status)];
}

std::optional<RunStatus> run_status_from_name(std::string_view name) {
  for (std::size_t i = 0; i < std::size(kRunStatusNames); ++i) {
    if (kRunStatusNames[i] == name) return static_cast<RunStatus>(i);
  }
  return std::nullopt;
}

bool valid_alias(std::string_view alias) {
  return valid_name(alias, 64, "._-");
}
bool valid_host(std::string_view host) {
  return valid_name(host, 255, "._-:");
}
bool valid_cluster_name(std::string_view name) {
  return valid_name(name, 64, "._-");
}

std::string_view message_type_name(MessageType type) {
  const auto index = static_cast<std::size_t>(type);
  return index < std::size(kTypes) ? kTypes[index].name : "unknown";
}

std::string_view update_state_name(UpdateState state) {
  return kUpdateStateNames[static_cast<std::size_t>(state)];
}

std::string encode(const Message& m) {
  wire::Writer w;
  const bool nodes = carries(m.type, kNodes);
  const bool reason = carries(m.type, kReason);
  const bool seq = carries(m.type, kSeq);
  const bool target = carries(m.type, kTarget);
  const bool updates = carries(m.type, kUpdates) && !m.updates.empty();
  const bool digest = carries(m.type, kDigest);
  const bool run = carries(m.type, kRun);
  const bool request = m.type == MessageType::kRunRequest;
  const bool job = carries(m.type, kJob);
  const bool result = m.type == MessageType::kRunResult;
  w.begin(8 + (nodes ? 1 : 0) + (reason ? 2 : 0) + (seq ? 1 : 0) + (target ? 2 : 0) +
          (updates ? 1 : 0) + (digest ? 2 : 0) + (run ? 1 : 0) + (request ? 2 : 0) + (job ? 1 : 0) +
          (result ? 8 : 0))
      .field("v", kProtocolVersion)
      .field("cluster", m.cluster)
      .field("type", message_type_name(m.type))
      .field("alias", m.sender.alias)
      .field("host", m.sender.host)
      .field("port", m.sender.port)
      .field("instance", m.instance)
      .field("incarnation", m.incarnation);
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
  if (updates) pack_updates(pk, m.updates);
  if (digest) w.field("digest", m.digest).field("count", m.count);
  if (run) w.field("run", m.run);
  if (request) {
    w.field("name", m.name);
    pack_bin(pk, "image", m.image);
  }
  if (job) w.field("job", m.job);
  if (result) {
    w.field("status", run_status_name(m.run_status)).field("code", m.code).field("error", m.error);
    pack_bin(pk, "output", m.output);
    w.field("truncated", m.truncated);
    pack_registers(pk, "registers", m.registers);
    pack_registers(pk, "float_registers", m.float_registers);
    w.field("elapsed_ms", m.elapsed_ms);
  }
  return std::string(w.bytes());
}

Result<Message> decode(std::span<const uint8_t> bytes) {
  if (bytes.size() > kMaxFrameBytes)
    return invalid("frame of " + std::to_string(bytes.size()) + " bytes is too large");
  auto frame = wire::Frame::decode(bytes);
  if (!frame) return invalid(frame.message());
  auto version = frame->integer("v");
  if (!version) return invalid("no protocol version \"v\"");
  if (*version != kProtocolVersion) {
    return Error{"protocol version " + std::to_string(*version) + "; this node speaks version " +
                     std::to_string(kProtocolVersion),
                 ErrorKind::kVersion};
  }
  auto cluster = frame->str("cluster");
  if (!cluster || !valid_cluster_name(*cluster))
    return invalid("\"cluster\" must be 1..64 of [A-Za-z0-9._-]");
  auto type_name = frame->str("type");
  if (!type_name) return invalid("no \"type\"");
  Message m;
  m.cluster = std::move(*cluster);
  bool known = false;
  for (const auto& entry : kTypes) {
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
  auto incarnation = unsigned_field(*frame, "incarnation");
  if (!incarnation) return invalid("\"incarnation\" must be a non-negative integer");
  m.incarnation = *incarnation;
  if (carries(m.type, kNodes)) {
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
  if (carries(m.type, kSeq)) {
    auto seq = frame->integer("seq");
    if (!seq || *seq < 0) return invalid("\"seq\" must be a non-negative integer");
    m.seq = static_cast<uint64_t>(*seq);
  }
  if (carries(m.type, kTarget)) {
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
  if (carries(m.type, kUpdates) && frame->get("updates") != nullptr) {
    auto updates = decode_updates(*frame->get("updates"));
    if (!updates) return updates.error();
    m.updates = std::move(*updates);
  }
  if (carries(m.type, kDigest)) {
    auto digest = hash_field(*frame, "digest");
    auto count = unsigned_field(*frame, "count");
    if (!digest) return invalid("\"digest\" must be a non-negative integer");
    if (!count || *count > UINT32_MAX) return invalid("\"count\" must be an integer 0..2^32-1");
    m.digest = *digest;
    m.count = static_cast<uint32_t>(*count);
  }
  if (carries(m.type, kRun)) {
    if (auto status = decode_run_fields(*frame, m); !status) return status.error();
  }
  return m;
}

}  // namespace iridium::cluster
