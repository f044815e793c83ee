// Helper for scripts/fuzz: writes one seed per cluster message type and per
// remote-shell request and response type into OUT_DIR, each prefixed with
// fuzz_frames' decoder byte. Every field a type may carry is filled, so the
// fuzzer starts from frames the decoders accept; new message types are
// covered without editing this file.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "cluster/protocol.h"
#include "shell/remote_protocol.h"

namespace {

void write(const std::filesystem::path& path, char decoder, const std::string& frame) {
  std::ofstream out(path, std::ios::binary);
  out << decoder << frame;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  namespace cluster = iridium::cluster;
  namespace remote = iridium::shell::remote;
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  for (std::size_t i = 0; i < cluster::kMessageTypeCount; ++i) {
    cluster::Message m;
    m.type = cluster::message_type_at(i);
    m.sender = {"seed", "127.0.0.1", 2254};
    m.instance = "0123456789abcdef";
    m.nodes = {{"a", "10.0.0.1", 2254}, {"b", "node-b.example", 2255}};
    m.reason = "alias 'seed' is already used";
    m.code = std::string(cluster::kNackDuplicate);
    m.seq = 42;
    m.target = {"t", "10.0.0.2", 2254};
    m.target_instance = "fedcba9876543210";
    m.incarnation = 70000;  // past 16 bits: msgpack uint32
    // One update in each state, so every state name is in the corpus.
    m.updates = {
        {{"a", "10.0.0.1", 2254}, "aaaa0001", 3, cluster::UpdateState::kAlive, ""},
        {{"b", "node-b.example", 2255}, "bbbb0001", 1, cluster::UpdateState::kSuspect, "a"},
        {{"c", "10.0.0.3", 2254}, "cccc0001", 0, cluster::UpdateState::kDead, ""},
        {{"d", "10.0.0.4", 2254}, "dddd0001", 2, cluster::UpdateState::kLeft, ""},
    };
    m.digest = 0x0123456789abcdefULL;
    m.count = 3;
    m.run = 7;
    m.name = "examples/hello.iasm";
    m.image = std::string("EPIE") + std::string(64, '\0') + std::string("\x05\0\0\0", 4);
    m.job = 3;
    m.run_status = cluster::RunStatus::kHalted;
    m.error = "division by zero at code offset 8";
    m.output = "Hello, Iridium!\n";
    m.registers = {{0, 42}, {31, -7}};
    m.float_registers = {{1, 2.5}};
    m.elapsed_ms = 12;
    write(dir / ("cluster-" + std::string(cluster::message_type_name(m.type))), '\0',
          cluster::encode(m));
  }
  const remote::Request requests[] = {
      {remote::Request::Type::kOpen, "token", ""}, {remote::Request::Type::kExec, "", "load $0 #7"},
      {remote::Request::Type::kPing, "", ""},      {remote::Request::Type::kClose, "", ""},
      {remote::Request::Type::kInterrupt, "", ""},
  };
  int n = 0;
  for (const auto& r : requests) write(dir / ("request-" + std::to_string(n++)), '\1', encode(r));
  const remote::Response responses[] = {
      remote::Response::opened("Iridium node seed", 5000),
      remote::Response::refused("bad token"),
      {remote::Response::Type::kResult, "$0 = 7", true, false, "", 0},
      {remote::Response::Type::kResult, "", true, true, "really quit?", 0},
  };
  n = 0;
  for (const auto& r : responses) write(dir / ("response-" + std::to_string(n++)), '\2', encode(r));
  return 0;
}
