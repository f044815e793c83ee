#include <catch2/catch.hpp>
#include <functional>
#include <map>
#include <msgpack.hpp>
#include <random>
#include <variant>

#include "cluster/protocol.h"

using namespace iridium::cluster;
using iridium::ErrorKind;

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

namespace {

const std::vector<Update> kEveryState = {
    {{"a", "10.0.0.1", 2254}, "aaaa1111", 0, UpdateState::kAlive, ""},
    {{"b", "node-b.example", 65535}, "bbbb2222", 7, UpdateState::kSuspect, "a"},
    {{"c", "10.0.0.3", 1}, "cccc3333", 1ull << 40, UpdateState::kDead, ""},
    {{"d", "::1", 2254}, "dddd4444", 2, UpdateState::kLeft, ""},
};

// A message of `type` with every field the type carries filled in, and no other.
Message full(MessageType type) {
  Message m;
  m.type = type;
  m.sender = NodeAddress{"node-1", "10.0.0.7", 2254};
  m.instance = "00ff00ff00ff00ff";
  m.incarnation = 3;
  switch (type) {
    case MessageType::kHelloAck:
    case MessageType::kMembers:
      m.nodes = {{"a", "127.0.0.1", 1}, {"b", "seed", 65535}};
      break;
    case MessageType::kHelloNack:
      m.reason = "alias in use";
      m.code = std::string(kNackDuplicate);
      break;
    case MessageType::kPing:
    case MessageType::kAck:
      m.seq = 41;
      m.updates = kEveryState;
      break;
    case MessageType::kPingReq:
    case MessageType::kIndirectAck:
    case MessageType::kIndirectNack:
      m.seq = 42;
      m.target = NodeAddress{"t", "10.0.0.9", 2255};
      m.target_instance = "feedfeed";
      m.updates = kEveryState;
      break;
    case MessageType::kGossip:
      m.updates = kEveryState;
      break;
    case MessageType::kSync:
      m.seq = 1;
      m.digest = 0x0123456789abcdefULL;
      m.count = 1500;
      break;
    default:
      break;
  }
  return m;
}

iridium::Result<Message> round_trip(const Message& m) {
  return decode(bytes(encode(m)));
}

}  // namespace

TEST_CASE("every message type round-trips with every field it carries", "[protocol]") {
  for (std::size_t i = 0; i < kMessageTypeCount; ++i) {
    const MessageType type = message_type_at(i);
    if (type == MessageType::kRunRequest || type == MessageType::kRunResult)
      continue;  // their fields: test_run_frames.cpp
    const Message m = full(type);
    auto decoded = round_trip(m);
    INFO(message_type_name(type));
    REQUIRE(decoded.ok());
    CHECK(*decoded == m);
    CHECK(decoded->incarnation == 3);
  }
}

TEST_CASE("updates in each of the four states, incarnations and accusers round-trip",
          "[protocol][swim]") {
  for (MessageType type :
       {MessageType::kPing, MessageType::kAck, MessageType::kPingReq, MessageType::kIndirectAck,
        MessageType::kIndirectNack, MessageType::kGossip}) {
    INFO(message_type_name(type));
    Message m = full(type);
    auto decoded = round_trip(m);
    REQUIRE(decoded.ok());
    REQUIRE(decoded->updates.size() == 4);
    for (std::size_t i = 0; i < 4; ++i) {
      CHECK(decoded->updates[i] == kEveryState[i]);
      CHECK(decoded->updates[i].state == static_cast<UpdateState>(i));
    }
    // No updates: the key is left out, and that decodes as none.
    m.updates.clear();
    const std::string frame = encode(m);
    CHECK(frame.find("updates") == std::string::npos);
    decoded = decode(bytes(frame));
    REQUIRE(decoded.ok());
    CHECK(decoded->updates.empty());
  }
  CHECK(update_state_name(UpdateState::kAlive) == "alive");
  CHECK(update_state_name(UpdateState::kSuspect) == "suspect");
  CHECK(update_state_name(UpdateState::kDead) == "dead");
  CHECK(update_state_name(UpdateState::kLeft) == "left");
}

TEST_CASE("incarnations, seqs and sync's count round-trip at their large values",
          "[protocol][swim]") {
  Message m = full(MessageType::kSync);
  m.incarnation = uint64_t{1} << 40;
  m.seq = uint64_t{1} << 33;
  m.count = UINT32_MAX;
  m.digest = 0x7fffffffffffffffULL;
  auto decoded = round_trip(m);
  REQUIRE(decoded.ok());
  CHECK(*decoded == m);
  Message gossip = full(MessageType::kGossip);
  gossip.updates[0].incarnation = UINT64_MAX;
  decoded = round_trip(gossip);
  REQUIRE(decoded.ok());
  CHECK(decoded->updates[0].incarnation == UINT64_MAX);
}

// A digest is a 64-bit hash (membership.h): any value, the top bit set in
// half of them, must survive the wire or push-pull misfires.
TEST_CASE("a sync's digest round-trips over its whole 64-bit range", "[protocol][swim]") {
  for (uint64_t digest :
       std::initializer_list<uint64_t>{uint64_t{0}, uint64_t{1}, 0x7fffffffffffffffULL,
                                       0x8000000000000000ULL, 0xfedcba9876543210ULL, UINT64_MAX}) {
    Message m = full(MessageType::kSync);
    m.digest = digest;
    auto decoded = round_trip(m);
    INFO("digest " << digest << ": " << (decoded ? "decoded" : decoded.message()));
    CHECK(decoded.ok());
    if (decoded) CHECK(decoded->digest == digest);
  }
}

TEST_CASE("the wire form is a map with the documented keys", "[protocol]") {
  Message m;
  m.type = MessageType::kHello;
  m.sender = NodeAddress{"x", "h", 7};
  m.instance = "i";
  m.incarnation = 9;
  const std::string frame = encode(m);
  auto handle = msgpack::unpack(frame.data(), frame.size());
  std::map<std::string, msgpack::object> fields;
  handle.get().convert(fields);
  CHECK(fields.at("v").as<int>() == 2);
  CHECK(fields.at("type").as<std::string>() == "hello");
  CHECK(fields.at("alias").as<std::string>() == "x");
  CHECK(fields.at("host").as<std::string>() == "h");
  CHECK(fields.at("port").as<int>() == 7);
  CHECK(fields.at("instance").as<std::string>() == "i");
  CHECK(fields.at("incarnation").as<int>() == 9);
  CHECK(fields.at("cluster").as<std::string>() == "iridium");
  CHECK(fields.size() == 8);

  // An update is [alias, host, port, instance, incarnation, state, from].
  const std::string gossip = encode(full(MessageType::kGossip));
  auto gossip_handle = msgpack::unpack(gossip.data(), gossip.size());
  std::map<std::string, msgpack::object> gossip_fields;
  gossip_handle.get().convert(gossip_fields);
  const msgpack::object& updates = gossip_fields.at("updates");
  REQUIRE(updates.type == msgpack::type::ARRAY);
  REQUIRE(updates.via.array.size == 4);
  const msgpack::object& suspect = updates.via.array.ptr[1];
  REQUIRE(suspect.type == msgpack::type::ARRAY);
  REQUIRE(suspect.via.array.size == 7);
  CHECK(suspect.via.array.ptr[0].as<std::string>() == "b");
  CHECK(suspect.via.array.ptr[1].as<std::string>() == "node-b.example");
  CHECK(suspect.via.array.ptr[2].as<int>() == 65535);
  CHECK(suspect.via.array.ptr[3].as<std::string>() == "bbbb2222");
  CHECK(suspect.via.array.ptr[4].as<int>() == 7);
  CHECK(suspect.via.array.ptr[5].as<std::string>() == "suspect");
  CHECK(suspect.via.array.ptr[6].as<std::string>() == "a");

  const std::string sync = encode(full(MessageType::kSync));
  auto sync_handle = msgpack::unpack(sync.data(), sync.size());
  std::map<std::string, msgpack::object> sync_fields;
  sync_handle.get().convert(sync_fields);
  CHECK(sync_fields.at("digest").as<uint64_t>() == 0x0123456789abcdefULL);
  CHECK(sync_fields.at("count").as<int>() == 1500);
  CHECK(sync_fields.at("seq").as<int>() == 1);
}

TEST_CASE("malformed frames are rejected with a reason", "[protocol]") {
  Fields good{{"v", int64_t{2}},     {"cluster", "iridium"},
              {"type", "heartbeat"}, {"alias", "a"},
              {"host", "h"},         {"port", int64_t{1}},
              {"instance", "i"},     {"incarnation", int64_t{0}}};
  REQUIRE(decode(pack(good)).ok());
  auto without = [&](const std::string& key) {
    Fields f = good;
    f.erase(key);
    return decode(pack(f));
  };
  for (const char* key : {"v", "type", "alias", "host", "port", "instance", "incarnation"}) {
    INFO(key);
    CHECK_FALSE(without(key).ok());
  }
  auto with = [&](const std::string& key, Value value) {
    Fields f = good;
    f[key] = value;
    return decode(pack(f));
  };
  CHECK_THAT(with("type", "bogus").message(), Catch::Contains("unknown message type"));
  CHECK_FALSE(with("port", int64_t{0}).ok());
  CHECK_FALSE(with("port", int64_t{70000}).ok());
  CHECK_FALSE(with("port", "2254").ok());
  CHECK_FALSE(with("alias", "").ok());
  CHECK_FALSE(with("alias", std::string(65, 'a')).ok());
  CHECK_FALSE(with("type", "members").ok());  // members without nodes
  CHECK_FALSE(with("type", "sync").ok());     // sync without seq, digest and count
  CHECK_FALSE(with("type", "ping").ok());     // ping without seq
  CHECK_FALSE(with("alias", std::string("\xff\xfe"))
                  .ok());  // not a plain name (was a crash in JSON output)
  CHECK_FALSE(with("alias", "a b").ok());
  CHECK_FALSE(with("host", "h\n").ok());
  CHECK_FALSE(with("instance", "").ok());
  CHECK_FALSE(with("incarnation", int64_t{-1}).ok());
  CHECK_FALSE(with("incarnation", "1").ok());
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

TEST_CASE("a frame of another protocol version is refused as kVersion, naming both versions",
          "[protocol][swim]") {
  // A version-1 heartbeat exactly as a node of the heartbeat protocol sent it.
  const Fields v1{{"v", int64_t{1}}, {"cluster", "iridium"}, {"type", "heartbeat"}, {"alias", "a"},
                  {"host", "h"},     {"port", int64_t{1}},   {"instance", "i"}};
  auto old = decode(pack(v1));
  REQUIRE_FALSE(old.ok());
  CHECK(old.kind() == ErrorKind::kVersion);
  CHECK_THAT(old.message(), Catch::Contains("version 1"));
  CHECK_THAT(old.message(), Catch::Contains("version 2"));
  Fields v3 = v1;
  v3["v"] = int64_t{3};
  v3["incarnation"] = int64_t{0};
  auto newer = decode(pack(v3));
  REQUIRE_FALSE(newer.ok());
  CHECK(newer.kind() == ErrorKind::kVersion);
  CHECK_THAT(newer.message(), Catch::Contains("version 3"));
  CHECK_THAT(newer.message(), Catch::Contains("version 2"));
}

namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

// A gossip frame whose "updates" value `write` packs.
std::vector<uint8_t> gossip_with(const std::function<void(Packer&)>& write) {
  msgpack::sbuffer buffer;
  Packer p(buffer);
  p.pack_map(9);
  p.pack("v");
  p.pack(2);
  p.pack("cluster");
  p.pack("iridium");
  p.pack("type");
  p.pack("gossip");
  p.pack("alias");
  p.pack("a");
  p.pack("host");
  p.pack("h");
  p.pack("port");
  p.pack(1);
  p.pack("instance");
  p.pack("i");
  p.pack("incarnation");
  p.pack(0);
  p.pack("updates");
  write(p);
  return {buffer.data(), buffer.data() + buffer.size()};
}

// [alias, host, port, instance, incarnation, state, from], each slot
// replaceable; `arity` other than 7 drops or adds slots at the end.
struct RawUpdate {
  std::string alias = "b", host = "10.0.0.2", instance = "bbbb";
  int64_t port = 2254, incarnation = 1;
  std::string state = "suspect", from = "a";
  std::size_t arity = 7;
  std::function<void(Packer&)> state_slot;  // when set, packs slot 5 instead of `state`
  void write(Packer& p) const {
    p.pack_array(static_cast<uint32_t>(arity));
    std::size_t n = 0;
    auto slot = [&](const auto& v) {
      if (n++ < arity) p.pack(v);
    };
    slot(alias);
    slot(host);
    slot(port);
    slot(instance);
    slot(incarnation);
    if (n++ < arity) {
      if (state_slot)
        state_slot(p);
      else
        p.pack(state);
    }
    slot(from);
    while (n++ < arity) p.pack("extra");
  }
};

iridium::Result<Message> gossip_of(const std::vector<RawUpdate>& updates) {
  return decode(gossip_with([&](Packer& p) {
    p.pack_array(static_cast<uint32_t>(updates.size()));
    for (const RawUpdate& u : updates) u.write(p);
  }));
}

}  // namespace

TEST_CASE("malformed updates are rejected: arity, state, instance, names, count",
          "[protocol][swim]") {
  auto one = [](const std::function<void(RawUpdate&)>& change) {
    RawUpdate u;
    change(u);
    return gossip_of({u});
  };
  auto decoded = one([](RawUpdate&) {});
  REQUIRE(decoded.ok());
  REQUIRE(decoded->updates.size() == 1);
  CHECK(decoded->updates[0] ==
        Update{{"b", "10.0.0.2", 2254}, "bbbb", 1, UpdateState::kSuspect, "a"});
  // Arity: exactly seven slots.
  CHECK_THAT(one([](RawUpdate& u) { u.arity = 6; }).message(), Catch::Contains("update"));
  CHECK_FALSE(one([](RawUpdate& u) { u.arity = 8; }).ok());
  CHECK_FALSE(one([](RawUpdate& u) { u.arity = 0; }).ok());
  // State: one of the four names, as a string.
  CHECK_THAT(one([](RawUpdate& u) { u.state = "zombie"; }).message(),
             Catch::Contains("alive, suspect, dead or left"));
  CHECK_FALSE(one([](RawUpdate& u) { u.state = ""; }).ok());
  CHECK_FALSE(one([](RawUpdate& u) { u.state = "Alive"; }).ok());
  CHECK_FALSE(one([](RawUpdate& u) { u.state_slot = [](Packer& p) { p.pack(0); }; }).ok());
  // Instance: 1..64 letters or digits.
  CHECK_THAT(one([](RawUpdate& u) { u.instance = ""; }).message(), Catch::Contains("instance"));
  CHECK_FALSE(one([](RawUpdate& u) { u.instance = "a-b"; }).ok());
  CHECK_FALSE(one([](RawUpdate& u) { u.instance = std::string(65, 'a'); }).ok());
  // The node and the accuser: plain names, a real port, a non-negative incarnation.
  CHECK_FALSE(one([](RawUpdate& u) { u.alias = "a b"; }).ok());
  CHECK_FALSE(one([](RawUpdate& u) { u.host = ""; }).ok());
  CHECK_FALSE(one([](RawUpdate& u) { u.port = 0; }).ok());
  CHECK_FALSE(one([](RawUpdate& u) { u.port = 65536; }).ok());
  CHECK_FALSE(one([](RawUpdate& u) { u.incarnation = -1; }).ok());
  CHECK_FALSE(one([](RawUpdate& u) { u.from = "a b"; }).ok());
  CHECK(one([](RawUpdate& u) { u.from = ""; }).ok());  // no accuser: fine
  // Not an array at all, or an entry that is not one.
  CHECK_FALSE(decode(gossip_with([](Packer& p) { p.pack("updates"); })).ok());
  CHECK_FALSE(decode(gossip_with([](Packer& p) {
                p.pack_array(1);
                p.pack(5);
              })).ok());
  // At most kMaxUpdatesPerFrame in one frame.
  std::vector<RawUpdate> many(kMaxUpdatesPerFrame);
  REQUIRE(gossip_of(many).ok());
  CHECK(gossip_of(many)->updates.size() == kMaxUpdatesPerFrame);
  many.emplace_back();
  CHECK_THAT(gossip_of(many).message(), Catch::Contains("too many updates"));
}

TEST_CASE("malformed sync frames are rejected", "[protocol][swim]") {
  Fields sync{{"v", int64_t{2}},    {"cluster", "iridium"},
              {"type", "sync"},     {"alias", "a"},
              {"host", "h"},        {"port", int64_t{1}},
              {"instance", "i"},    {"incarnation", int64_t{0}},
              {"seq", int64_t{0}},  {"digest", int64_t{5}},
              {"count", int64_t{2}}};
  REQUIRE(decode(pack(sync)).ok());
  for (const char* key : {"seq", "digest", "count"}) {
    Fields f = sync;
    f.erase(key);
    INFO("without " << key);
    CHECK_FALSE(decode(pack(f)).ok());
  }
  auto with = [&](const std::string& key, Value value) {
    Fields f = sync;
    f[key] = value;
    return decode(pack(f));
  };
  CHECK_FALSE(with("digest", int64_t{-1}).ok());
  CHECK_FALSE(with("digest", "5").ok());
  CHECK_FALSE(with("count", int64_t{-1}).ok());
  CHECK_FALSE(with("count", int64_t{1} << 32).ok());
  CHECK(with("count", int64_t{UINT32_MAX}).ok());
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

  Fields good{{"v", int64_t{2}},     {"cluster", "blue-2.eu_x"},
              {"type", "heartbeat"}, {"alias", "a"},
              {"host", "h"},         {"port", int64_t{1}},
              {"instance", "i"},     {"incarnation", int64_t{0}}};
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
  pk.pack_map(8);
  pk.pack("v");
  pk.pack(2);
  pk.pack("cluster");
  pk.pack_bin(1);
  pk.pack_bin_body("c", 1);
  for (const char* key : {"type", "alias", "host", "instance"}) {
    pk.pack(key);
    pk.pack(std::string(key) == "type" ? "heartbeat" : "a");
  }
  pk.pack("port");
  pk.pack(1);
  pk.pack("incarnation");
  pk.pack(0);
  CHECK_FALSE(decode(std::vector<uint8_t>(buffer.data(), buffer.data() + buffer.size())).ok());
}
