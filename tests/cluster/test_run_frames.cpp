// The remote-run frames (run_request, run_accepted, run_result, run_cancel):
// round trips with every field, the wire form, and every malformed or
// oversized variant rejected by decode() (docs/protocol.md section 4).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <msgpack.hpp>
#include <set>

#include "cluster/protocol.h"

using namespace iridium::cluster;

namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;
using Field = std::function<void(Packer&)>;
using Fields = std::map<std::string, Field>;

Field integer(int64_t v) {
  return [v](Packer& p) { p.pack(v); };
}
Field uinteger(uint64_t v) {
  return [v](Packer& p) { p.pack(v); };
}
Field str(std::string v) {
  return [v](Packer& p) { p.pack(v); };
}
Field bin(std::string v) {
  return [v](Packer& p) {
    p.pack_bin(static_cast<uint32_t>(v.size()));
    p.pack_bin_body(v.data(), static_cast<uint32_t>(v.size()));
  };
}
Field boolean(bool v) {
  return [v](Packer& p) { p.pack(v); };
}
// Always a float64 (msgpack-c's pack(double) writes 7.0 as the integer 7).
Field real(double v) {
  return [v](Packer& p) {
    uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    char buf[9] = {static_cast<char>(0xcb)};
    for (int i = 0; i < 8; ++i) buf[1 + i] = static_cast<char>(bits >> (56 - 8 * i));
    p.pack_bin_body(buf, 9);  // appends the bytes as they are
  };
}
// [[index, value], ...] with each value packed by its own Field.
Field pairs(std::vector<std::pair<int64_t, Field>> entries) {
  return [entries](Packer& p) {
    p.pack_array(static_cast<uint32_t>(entries.size()));
    for (const auto& [index, value] : entries) {
      p.pack_array(2);
      p.pack(index);
      value(p);
    }
  };
}
Field raw(std::function<void(Packer&)> f) {
  return f;
}

std::vector<uint8_t> pack(const Fields& fields) {
  msgpack::sbuffer buffer;
  Packer packer(buffer);
  packer.pack_map(static_cast<uint32_t>(fields.size()));
  for (const auto& [key, value] : fields) {
    packer.pack(key);
    value(packer);
  }
  return {buffer.data(), buffer.data() + buffer.size()};
}

std::vector<uint8_t> bytes(const std::string& s) {
  return {s.begin(), s.end()};
}

Fields common(const std::string& type) {
  return {{"v", integer(2)},           {"cluster", str("iridium")}, {"type", str(type)},
          {"alias", str("a")},         {"host", str("10.0.0.1")},   {"port", integer(2254)},
          {"instance", str("abc123")}, {"incarnation", integer(0)}};
}

Fields good(const std::string& type) {
  Fields f = common(type);
  f["run"] = integer(7);
  if (type == "run_request") {
    f["name"] = str("hello.iasm");
    f["image"] = bin("EPIE");
  }
  if (type == "run_accepted" || type == "run_result") f["job"] = integer(3);
  if (type == "run_result") {
    f["status"] = str("halted");
    f["code"] = str("");
    f["error"] = str("");
    f["output"] = bin("hi\n");
    f["truncated"] = boolean(false);
    f["registers"] = pairs({{0, integer(42)}, {31, integer(-1)}});
    f["float_registers"] = pairs({{2, real(1.5)}});
    f["elapsed_ms"] = integer(12);
  }
  return f;
}

Message sample(MessageType type) {
  Message m;
  m.type = type;
  m.sender = NodeAddress{"node-1", "10.0.0.7", 2254};
  m.instance = "00ff00ff00ff00ff";
  m.incarnation = 5;
  m.run = 1ull << 40;
  if (type == MessageType::kRunRequest) {
    m.name = "examples/hello.iasm";
    m.image = std::string("EPIE\0\x01\xff", 7);
  }
  if (type == MessageType::kRunAccepted || type == MessageType::kRunResult) m.job = 9;
  if (type == MessageType::kRunResult) {
    m.run_status = RunStatus::kRefused;
    m.code = std::string(kRefusedPoolFull);
    m.error = "pool full";
    m.output = std::string("a\0\xfe\n", 4);
    m.truncated = true;
    m.registers = {{0, 1}, {5, INT32_MIN}, {31, INT32_MAX}};
    m.float_registers = {{1, -0.25}, {2, 2.0}, {3, 0.0 - 7.0}, {30, 1e300}};
    m.elapsed_ms = 1234;
  }
  return m;
}

}  // namespace

TEST_CASE("every run frame round-trips with every field", "[protocol][run]") {
  for (auto type : {MessageType::kRunRequest, MessageType::kRunAccepted, MessageType::kRunResult,
                    MessageType::kRunCancel}) {
    const Message m = sample(type);
    auto decoded = decode(bytes(encode(m)));
    INFO(message_type_name(type));
    REQUIRE(decoded.ok());
    CHECK(decoded->type == type);
    CHECK(decoded->sender == m.sender);
    CHECK(decoded->instance == m.instance);
    CHECK(decoded->incarnation == m.incarnation);
    CHECK(decoded->run == m.run);
    CHECK(decoded->name == m.name);
    CHECK(decoded->image == m.image);
    CHECK(decoded->job == m.job);
    CHECK(decoded->run_status == m.run_status);
    CHECK(decoded->code == m.code);
    CHECK(decoded->error == m.error);
    CHECK(decoded->output == m.output);
    CHECK(decoded->truncated == m.truncated);
    CHECK(decoded->registers == m.registers);
    CHECK(decoded->float_registers == m.float_registers);
    CHECK(decoded->elapsed_ms == m.elapsed_ms);
  }
  for (auto status : {RunStatus::kHalted, RunStatus::kEnded, RunStatus::kError,
                      RunStatus::kCancelled, RunStatus::kRefused}) {
    Message m = sample(MessageType::kRunResult);
    m.run_status = status;
    auto decoded = decode(bytes(encode(m)));
    REQUIRE(decoded.ok());
    CHECK(decoded->run_status == status);
    CHECK(run_status_from_name(run_status_name(status)) == status);
  }
}

TEST_CASE("the largest image and output fit one frame", "[protocol][run]") {
  Message request = sample(MessageType::kRunRequest);
  request.name = std::string(kMaxRunNameBytes, 'n');
  request.image = std::string(kMaxRunImageBytes, '\x7f');
  const std::string frame = encode(request);
  CHECK(frame.size() < kMaxFrameBytes);
  REQUIRE(decode(bytes(frame)).ok());

  Message result = sample(MessageType::kRunResult);
  result.error = std::string(kMaxRunErrorBytes, 'e');
  result.output = std::string(kMaxRunOutputBytes, 'o');
  result.registers.clear();
  result.float_registers.clear();
  for (uint8_t r = 0; r < 32; ++r) {
    result.registers.push_back({r, INT32_MIN});
    result.float_registers.push_back({r, -1e300});
  }
  const std::string big = encode(result);
  CHECK(big.size() < kMaxFrameBytes);
  REQUIRE(decode(bytes(big)).ok());
}

TEST_CASE("run frames carry their fields as documented", "[protocol][run]") {
  const Message m = sample(MessageType::kRunResult);
  const std::string frame = encode(m);
  auto handle = msgpack::unpack(frame.data(), frame.size());
  const msgpack::object& root = handle.get();
  REQUIRE(root.type == msgpack::type::MAP);
  std::vector<std::string> keys;
  for (uint32_t i = 0; i < root.via.map.size; ++i)
    keys.push_back(root.via.map.ptr[i].key.as<std::string>());
  CHECK(keys == std::vector<std::string>{"v", "cluster", "type", "alias", "host", "port",
                                         "instance", "incarnation", "run", "job", "status", "code",
                                         "error", "output", "truncated", "registers",
                                         "float_registers", "elapsed_ms"});
  std::map<std::string, msgpack::object> fields;
  root.convert(fields);
  CHECK(fields.at("output").type == msgpack::type::BIN);
  CHECK(fields.at("status").as<std::string>() == "refused");
  CHECK(fields.at("truncated").as<bool>());

  const std::string request = encode(sample(MessageType::kRunRequest));
  auto request_handle = msgpack::unpack(request.data(), request.size());
  std::map<std::string, msgpack::object> request_fields;
  request_handle.get().convert(request_fields);
  CHECK(request_fields.at("image").type == msgpack::type::BIN);
  CHECK(request_fields.size() == 11);
  CHECK(request_fields.at("v").as<int>() == 2);
  CHECK(request_fields.at("incarnation").as<int>() == 5);
}

TEST_CASE("malformed run frames are rejected with a reason", "[protocol][run]") {
  for (const char* type : {"run_request", "run_accepted", "run_result", "run_cancel"}) {
    INFO(type);
    REQUIRE(decode(pack(good(type))).ok());
    for (const auto& [key, value] : good(type)) {
      if (common(type).contains(key)) continue;
      Fields f = good(type);
      f.erase(key);
      INFO("without " << key);
      CHECK_FALSE(decode(pack(f)).ok());
    }
    auto with = [&](const std::string& key, Field value) {
      Fields f = good(type);
      f[key] = std::move(value);
      return decode(pack(f));
    };
    CHECK_FALSE(with("run", integer(-1)).ok());
    CHECK_FALSE(with("run", str("7")).ok());
    CHECK_FALSE(with("run", real(7.0)).ok());
    CHECK_FALSE(with("run", uinteger(UINT64_MAX)).ok());
  }
  auto request = [](const std::string& key, Field value) {
    Fields f = good("run_request");
    f[key] = std::move(value);
    return decode(pack(f));
  };
  CHECK_FALSE(request("name", str("")).ok());
  CHECK_FALSE(request("name", str(std::string(kMaxRunNameBytes + 1, 'n'))).ok());
  CHECK_FALSE(request("name", bin("x")).ok());
  CHECK_THAT(request("image", str("EPIE")).message(), Catch::Contains("\"image\" must be bin"));
  CHECK_FALSE(request("image", integer(0)).ok());

  auto accepted = [](Field value) {
    Fields f = good("run_accepted");
    f["job"] = std::move(value);
    return decode(pack(f));
  };
  CHECK_FALSE(accepted(integer(-3)).ok());
  CHECK_FALSE(accepted(str("3")).ok());

  auto result = [](const std::string& key, Field value) {
    Fields f = good("run_result");
    f[key] = std::move(value);
    return decode(pack(f));
  };
  CHECK_THAT(result("status", str("done")).message(), Catch::Contains("\"status\""));
  CHECK_FALSE(result("status", integer(0)).ok());
  CHECK_THAT(result("status", str("refused")).message(), Catch::Contains("needs a \"code\""));
  CHECK(result("code", str("pool_full")).ok());
  CHECK_FALSE(result("code", str(std::string(65, 'c'))).ok());
  CHECK_FALSE(result("code", integer(1)).ok());
  CHECK_FALSE(result("error", str(std::string(kMaxRunErrorBytes + 1, 'e'))).ok());
  CHECK_FALSE(result("error", bin("x")).ok());
  CHECK(result("output", bin(std::string(kMaxRunOutputBytes, 'o'))).ok());
  CHECK_FALSE(result("output", bin(std::string(kMaxRunOutputBytes + 1, 'o'))).ok());
  CHECK_FALSE(result("output", str("hi")).ok());
  CHECK_FALSE(result("truncated", integer(0)).ok());
  CHECK_FALSE(result("truncated", str("false")).ok());
  CHECK_FALSE(result("elapsed_ms", integer(-1)).ok());
  CHECK_FALSE(result("elapsed_ms", real(1.0)).ok());
  CHECK_FALSE(result("job", integer(-1)).ok());
  // The register lists: arrays of [index 0..31, value], each index once, in order.
  CHECK(result("registers", pairs({})).ok());
  CHECK_FALSE(result("registers", integer(0)).ok());
  CHECK_FALSE(result("registers", pairs({{32, integer(1)}})).ok());
  CHECK_FALSE(result("registers", pairs({{-1, integer(1)}})).ok());
  CHECK_FALSE(result("registers", pairs({{3, integer(1)}, {3, integer(2)}})).ok());
  CHECK_FALSE(result("registers", pairs({{4, integer(1)}, {3, integer(2)}})).ok());
  CHECK_FALSE(result("registers", pairs({{0, integer(int64_t{INT32_MAX} + 1)}})).ok());
  CHECK_FALSE(result("registers", pairs({{0, integer(int64_t{INT32_MIN} - 1)}})).ok());
  CHECK_FALSE(result("registers", pairs({{0, real(1.0)}})).ok());
  CHECK_FALSE(result("registers", pairs({{0, str("1")}})).ok());
  CHECK_FALSE(result("float_registers", pairs({{0, integer(1)}})).ok());
  CHECK_FALSE(result("float_registers", pairs({{40, real(1.0)}})).ok());
  std::vector<std::pair<int64_t, Field>> too_many;
  for (int64_t r = 0; r < 33; ++r) too_many.emplace_back(r, integer(1));
  CHECK_FALSE(result("registers", pairs(too_many)).ok());
  CHECK_FALSE(result("registers", raw([](Packer& p) {
                       p.pack_array(1);
                       p.pack_array(3);
                       p.pack(0);
                       p.pack(1);
                       p.pack(2);
                     }))
                  .ok());
  CHECK_FALSE(result("registers", raw([](Packer& p) {
                       p.pack_array(1);
                       p.pack(5);
                     }))
                  .ok());
  // A frame over 64 KiB is refused whatever it holds (the receiver's
  // ZMQ_MAXMSGSIZE closes the connection first; decode() checks again).
  CHECK_THAT(request("image", bin(std::string(kMaxFrameBytes, 'x'))).message(),
             Catch::Contains("too large"));
}

TEST_CASE("every message type has its own name", "[protocol][run]") {
  std::set<std::string_view> names;
  for (std::size_t i = 0; i < kMessageTypeCount; ++i) {
    const std::string_view name = message_type_name(message_type_at(i));
    CHECK(name != "unknown");
    names.insert(name);
  }
  CHECK(names.size() == kMessageTypeCount);
  CHECK(message_type_name(MessageType::kRunCancel) == "run_cancel");
}

TEST_CASE("encode() writes the bytes of docs/protocol.md's remote-run example", "[protocol][run]") {
  // The same bytes come out of Python's msgpack.packb with encode()'s key order
  // (version 2: "v" is 2 and "incarnation" follows "instance").
  auto from = [](MessageType type, const std::string& alias, const std::string& host,
                 const std::string& instance) {
    Message m;
    m.type = type;
    m.sender = NodeAddress{alias, host, 2254};
    m.instance = instance;
    m.run = 1;
    return m;
  };
  Message accepted = from(MessageType::kRunAccepted, "b", "10.0.0.2", "b01c7d22e9a45f13");
  accepted.job = 4;
  const std::string accepted_bytes(
      "\x8a\xa1\x76\x02\xa7\x63\x6c\x75\x73\x74\x65\x72\xa7\x69\x72\x69"
      "\x64\x69\x75\x6d\xa4\x74\x79\x70\x65\xac\x72\x75\x6e\x5f\x61\x63"
      "\x63\x65\x70\x74\x65\x64\xa5\x61\x6c\x69\x61\x73\xa1\x62\xa4\x68"
      "\x6f\x73\x74\xa8\x31\x30\x2e\x30\x2e\x30\x2e\x32\xa4\x70\x6f\x72"
      "\x74\xcd\x08\xce\xa8\x69\x6e\x73\x74\x61\x6e\x63\x65\xb0\x62\x30"
      "\x31\x63\x37\x64\x32\x32\x65\x39\x61\x34\x35\x66\x31\x33\xab\x69"
      "\x6e\x63\x61\x72\x6e\x61\x74\x69\x6f\x6e\x00\xa3\x72\x75\x6e\x01"
      "\xa3\x6a\x6f\x62\x04",
      117);
  CHECK(encode(accepted) == accepted_bytes);

  Message result = from(MessageType::kRunResult, "b", "10.0.0.2", "b01c7d22e9a45f13");
  result.job = 4;
  result.run_status = RunStatus::kHalted;
  result.output = "Hello, Iridium!\n";
  const std::string result_bytes(
      "\xde\x00\x12\xa1\x76\x02\xa7\x63\x6c\x75\x73\x74\x65\x72\xa7\x69"
      "\x72\x69\x64\x69\x75\x6d\xa4\x74\x79\x70\x65\xaa\x72\x75\x6e\x5f"
      "\x72\x65\x73\x75\x6c\x74\xa5\x61\x6c\x69\x61\x73\xa1\x62\xa4\x68"
      "\x6f\x73\x74\xa8\x31\x30\x2e\x30\x2e\x30\x2e\x32\xa4\x70\x6f\x72"
      "\x74\xcd\x08\xce\xa8\x69\x6e\x73\x74\x61\x6e\x63\x65\xb0\x62\x30"
      "\x31\x63\x37\x64\x32\x32\x65\x39\x61\x34\x35\x66\x31\x33\xab\x69"
      "\x6e\x63\x61\x72\x6e\x61\x74\x69\x6f\x6e\x00\xa3\x72\x75\x6e\x01"
      "\xa3\x6a\x6f\x62\x04\xa6\x73\x74\x61\x74\x75\x73\xa6\x68\x61\x6c"
      "\x74\x65\x64\xa4\x63\x6f\x64\x65\xa0\xa5\x65\x72\x72\x6f\x72\xa0"
      "\xa6\x6f\x75\x74\x70\x75\x74\xc4\x10\x48\x65\x6c\x6c\x6f\x2c\x20"
      "\x49\x72\x69\x64\x69\x75\x6d\x21\x0a\xa9\x74\x72\x75\x6e\x63\x61"
      "\x74\x65\x64\xc2\xa9\x72\x65\x67\x69\x73\x74\x65\x72\x73\x90\xaf"
      "\x66\x6c\x6f\x61\x74\x5f\x72\x65\x67\x69\x73\x74\x65\x72\x73\x90"
      "\xaa\x65\x6c\x61\x70\x73\x65\x64\x5f\x6d\x73\x00",
      220);
  CHECK(encode(result) == result_bytes);

  const Message cancel = from(MessageType::kRunCancel, "seed", "10.0.0.1", "45346e2b5f6a33da");
  const std::string cancel_bytes(
      "\x89\xa1\x76\x02\xa7\x63\x6c\x75\x73\x74\x65\x72\xa7\x69\x72\x69"
      "\x64\x69\x75\x6d\xa4\x74\x79\x70\x65\xaa\x72\x75\x6e\x5f\x63\x61"
      "\x6e\x63\x65\x6c\xa5\x61\x6c\x69\x61\x73\xa4\x73\x65\x65\x64\xa4"
      "\x68\x6f\x73\x74\xa8\x31\x30\x2e\x30\x2e\x30\x2e\x31\xa4\x70\x6f"
      "\x72\x74\xcd\x08\xce\xa8\x69\x6e\x73\x74\x61\x6e\x63\x65\xb0\x34"
      "\x35\x33\x34\x36\x65\x32\x62\x35\x66\x36\x61\x33\x33\x64\x61\xab"
      "\x69\x6e\x63\x61\x72\x6e\x61\x74\x69\x6f\x6e\x00\xa3\x72\x75\x6e"
      "\x01",
      113);
  CHECK(encode(cancel) == cancel_bytes);
}

TEST_CASE("a NaN or infinite float register survives the wire", "[protocol][run]") {
  Message m = sample(MessageType::kRunResult);
  m.float_registers = {{0, std::numeric_limits<double>::quiet_NaN()},
                       {1, std::numeric_limits<double>::infinity()},
                       {2, -std::numeric_limits<double>::infinity()}};
  auto decoded = decode(bytes(encode(m)));
  REQUIRE(decoded.ok());
  CHECK(std::isnan(decoded->float_registers[0].value));
  CHECK(decoded->float_registers == m.float_registers);  // the same bits
  CHECK(*decoded == m);
}
