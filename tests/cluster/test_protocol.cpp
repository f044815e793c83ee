#include <catch2/catch.hpp>
#include <map>
#include <msgpack.hpp>
#include <random>
#include <variant>

#include "cluster/protocol.h"

using iridium::cluster::decode;
using iridium::cluster::encode;
using iridium::cluster::Message;
using iridium::cluster::MessageType;
using iridium::cluster::NodeAddress;

namespace {
std::vector<uint8_t> bytes(const std::string& s) {
  return {s.begin(), s.end()};
}

using Value = std::variant<int64_t, std::string>;
using Fields = std::map<std::string, Value>;

std::vector<uint8_t> pack(const Fields& fields) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> packer(buffer);
  packer.pack_map(static_cast<uint32_t>(fields.size()));
  for (const auto& [key, value] : fields) {
    packer.pack(key);
    std::visit([&](const auto& v) { packer.pack(v); }, value);
  }
  return {buffer.data(), buffer.data() + buffer.size()};
}
}  // namespace

TEST_CASE("every message type round-trips", "[protocol]") {
  for (auto type :
       {MessageType::kHello, MessageType::kHelloAck, MessageType::kHelloNack, MessageType::kJoin,
        MessageType::kHeartbeat, MessageType::kLeave, MessageType::kMembers}) {
    Message m;
    m.type = type;
    m.cluster = "prod.eu-1_b";
    m.sender = NodeAddress{"node-1", "10.0.0.7", 2254};
    m.instance = "00ff00ff00ff00ff";
    if (type == MessageType::kHelloAck || type == MessageType::kMembers) {
      m.nodes = {{"a", "127.0.0.1", 1}, {"b", "seed", 65535}};
    }
    if (type == MessageType::kHelloNack) m.reason = "alias in use";
    auto decoded = decode(bytes(encode(m)));
    INFO(message_type_name(type));
    REQUIRE(decoded.ok());
    CHECK(decoded->type == type);
    CHECK(decoded->cluster == m.cluster);
    CHECK(decoded->sender == m.sender);
    CHECK(decoded->instance == m.instance);
    CHECK(decoded->nodes == m.nodes);
    CHECK(decoded->reason == m.reason);
  }
}

TEST_CASE("the wire form is a map with the documented keys", "[protocol]") {
  Message m;
  m.type = MessageType::kHello;
  m.sender = NodeAddress{"x", "h", 7};
  m.instance = "i";
  const std::string frame = encode(m);
  auto handle = msgpack::unpack(frame.data(), frame.size());
  std::map<std::string, msgpack::object> fields;
  handle.get().convert(fields);
  CHECK(fields.at("v").as<int>() == 1);
  CHECK(fields.at("cluster").as<std::string>() == "iridium");  // the default cluster name
  CHECK(fields.at("type").as<std::string>() == "hello");
  CHECK(fields.at("alias").as<std::string>() == "x");
  CHECK(fields.at("host").as<std::string>() == "h");
  CHECK(fields.at("port").as<int>() == 7);
  CHECK(fields.at("instance").as<std::string>() == "i");
  CHECK(fields.size() == 7);
}

TEST_CASE("malformed frames are rejected with a reason", "[protocol]") {
  Fields good{{"v", int64_t{1}}, {"cluster", "c"},     {"type", "heartbeat"}, {"alias", "a"},
              {"host", "h"},     {"port", int64_t{1}}, {"instance", "i"}};
  REQUIRE(decode(pack(good)).ok());
  auto without = [&](const std::string& key) {
    Fields f = good;
    f.erase(key);
    return decode(pack(f));
  };
  for (const char* key : {"v", "cluster", "type", "alias", "host", "port", "instance"}) {
    INFO(key);
    CHECK_FALSE(without(key).ok());
  }
  auto with = [&](const std::string& key, Value value) {
    Fields f = good;
    f[key] = value;
    return decode(pack(f));
  };
  CHECK_THAT(with("v", int64_t{2}).message(), Catch::Contains("unsupported protocol version 2"));
  CHECK_THAT(with("type", "bogus").message(), Catch::Contains("unknown message type"));
  CHECK_FALSE(with("port", int64_t{0}).ok());
  CHECK_FALSE(with("port", int64_t{70000}).ok());
  CHECK_FALSE(with("port", "2254").ok());
  CHECK_FALSE(with("alias", "").ok());
  CHECK_FALSE(with("alias", std::string(65, 'a')).ok());
  CHECK_FALSE(with("type", "members").ok());  // members without nodes
  CHECK_FALSE(with("alias", std::string("\xff\xfe"))
                  .ok());  // not a plain name (was a crash in JSON output)
  CHECK_FALSE(with("alias", "a b").ok());
  CHECK_FALSE(with("host", "h\n").ok());
  CHECK_FALSE(with("instance", "").ok());
  CHECK_FALSE(decode(bytes("")).ok());
  CHECK_FALSE(decode(bytes("\x93\x01\x02\x03")).ok());  // an array, not a map
  auto frame = pack(good);
  frame.pop_back();
  CHECK_FALSE(decode(frame).ok());  // truncated
  frame = pack(good);
  frame.push_back(0);
  CHECK_THAT(decode(frame).message(), Catch::Contains("trailing"));
  CHECK_FALSE(decode(std::vector<uint8_t>(70 * 1024, 0x81)).ok());  // oversized
}

TEST_CASE("random bytes never crash the decoder", "[protocol][fuzz]") {
  std::mt19937 rng(7);
  Message m;
  m.type = MessageType::kMembers;
  m.sender = NodeAddress{"node", "127.0.0.1", 2254};
  m.nodes = {{"a", "b", 3}};
  const std::string valid = encode(m);
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> b(valid.begin(), valid.end());
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) b[rng() % b.size()] = static_cast<uint8_t>(rng());
    if (i % 3 == 0) b.resize(rng() % (b.size() + 1));
    auto decoded = decode(b);
    if (decoded)
      ++accepted;
    else
      CHECK_FALSE(decoded.message().empty());
  }
  CHECK(accepted < 20000);
}

TEST_CASE("the cluster name travels in every frame and must be a valid name", "[protocol]") {
  Message m;
  m.type = MessageType::kHeartbeat;
  m.cluster = std::string(64, 'z');  // the longest name
  m.sender = NodeAddress{"a", "h", 1};
  m.instance = "i";
  auto decoded = decode(bytes(encode(m)));
  REQUIRE(decoded.ok());
  CHECK(decoded->cluster == m.cluster);
  CHECK(decoded.value() == m);

  Fields good{{"v", int64_t{1}}, {"cluster", "blue-2.eu_x"}, {"type", "heartbeat"}, {"alias", "a"},
              {"host", "h"},     {"port", int64_t{1}},       {"instance", "i"}};
  REQUIRE(decode(pack(good)).ok());
  CHECK(decode(pack(good))->cluster == "blue-2.eu_x");
  auto with = [&](Value value) {
    Fields f = good;
    f["cluster"] = value;
    return decode(pack(f));
  };
  Fields missing = good;
  missing.erase("cluster");
  CHECK_THAT(decode(pack(missing)).message(), Catch::Contains("\"cluster\""));
  for (const std::string& bad :
       {std::string(), std::string(65, 'z'), std::string("a b"), std::string("a/b"),
        std::string("caf\xc3\xa9"), std::string("x\0y", 3)}) {
    INFO(bad);
    CHECK_THAT(with(bad).message(), Catch::Contains("\"cluster\""));
  }
  CHECK_THAT(with(int64_t{7}).message(), Catch::Contains("\"cluster\""));  // not a str
  // A bin is not a str, even with a valid name in it.
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  pk.pack_map(7);
  pk.pack("v");
  pk.pack(1);
  pk.pack("cluster");
  pk.pack_bin(1);
  pk.pack_bin_body("c", 1);
  for (const char* key : {"type", "alias", "host", "instance"}) {
    pk.pack(key);
    pk.pack(std::string(key) == "type" ? "heartbeat" : "a");
  }
  pk.pack("port");
  pk.pack(1);
  CHECK_FALSE(decode(std::vector<uint8_t>(buffer.data(), buffer.data() + buffer.size())).ok());
}

TEST_CASE("encode() writes the bytes of docs/protocol.md's heartbeat", "[protocol]") {
  // Section 10: the same bytes come out of Python's msgpack.packb in
  // encode()'s key order.
  Message m;
  m.type = MessageType::kHeartbeat;
  m.sender = NodeAddress{"seed", "127.0.0.1", 34833};
  m.instance = "45346e2b5f6a33da";
  const std::string heartbeat(
      "\x87\xa1\x76\x01\xa7\x63\x6c\x75\x73\x74\x65\x72\xa7\x69\x72\x69"
      "\x64\x69\x75\x6d\xa4\x74\x79\x70\x65\xa9\x68\x65\x61\x72\x74\x62"
      "\x65\x61\x74\xa5\x61\x6c\x69\x61\x73\xa4\x73\x65\x65\x64\xa4\x68"
      "\x6f\x73\x74\xa9\x31\x32\x37\x2e\x30\x2e\x30\x2e\x31\xa4\x70\x6f"
      "\x72\x74\xcd\x88\x11\xa8\x69\x6e\x73\x74\x61\x6e\x63\x65\xb0\x34"
      "\x35\x33\x34\x36\x65\x32\x62\x35\x66\x36\x61\x33\x33\x64\x61",
      95);
  CHECK(encode(m) == heartbeat);
}
