// Real Nodes on loopback in one process: the I/O thread, submit(), the
// transport and the membership together. Run under ThreadSanitizer in CI.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "cluster/node.h"
#include "node_support.h"

using namespace iridium::cluster;
using namespace std::chrono_literals;
using iridium::testing::eventually;
const auto config = iridium::testing::loopback_config;

namespace {

std::set<std::string> aliases(Node& node) {
  std::set<std::string> out;
  for (const MemberInfo& m : node.snapshot().members) out.insert(m.alias);
  return out;
}

}  // namespace

TEST_CASE("three nodes in one process form a mesh, answer snapshots from many threads, and leave",
          "[node]") {
  zmq::context_t context(1);
  Node a(context, config("a")), b(context, config("b")), c(context, config("c"));
  auto started = a.start();
  REQUIRE(started.ok());
  const uint16_t port = started->bound.port;
  REQUIRE(b.join("127.0.0.1", port).ok());
  auto joined = c.join("127.0.0.1", port);
  REQUIRE(joined.ok());
  CHECK(joined->via.alias == "a");
  REQUIRE(eventually([&] {
    return aliases(a) == std::set<std::string>{"b", "c"} &&
           aliases(b) == std::set<std::string>{"a", "c"} &&
           aliases(c) == std::set<std::string>{"a", "b"};
  }));

  // Snapshots from several threads at once while the mesh runs.
  std::atomic<int> answered{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        if (b.snapshot().started) ++answered;
      }
    });
  }
  for (auto& r : readers) r.join();
  CHECK(answered == 80);

  // Joining again under another spelling of a member's address loses nobody.
  auto again = b.join("localhost", port);
  REQUIRE(again.ok());
  CHECK(aliases(b) == std::set<std::string>{"a", "c"});

  c.leave_and_stop();
  CHECK(eventually(
      [&] {
        return aliases(a) == std::set<std::string>{"b"} && aliases(b) == std::set<std::string>{"a"};
      },
      2000ms));
}

TEST_CASE("join errors carry their kind", "[node]") {
  zmq::context_t context(1);
  Node a(context, config("a")), twin(context, config("a"));
  auto started = a.start();
  REQUIRE(started.ok());
  auto self = a.join("127.0.0.1", started->bound.port);
  REQUIRE_FALSE(self.ok());
  CHECK(self.kind() == iridium::ErrorKind::kSelf);
  auto duplicate = twin.join("127.0.0.1", started->bound.port);
  REQUIRE_FALSE(duplicate.ok());
  CHECK(duplicate.kind() == iridium::ErrorKind::kRefused);
}

TEST_CASE("the members file keeps the last members across a restart", "[node]") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("iridium-node-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string file = (dir / "cluster-members.json").string();
  REQUIRE(save_members_file(file, {{"x", "127.0.0.1", 4000}, {"y", "host-y", 4001}}).ok());
  auto loaded = load_members_file(file);
  REQUIRE(loaded.size() == 2);
  CHECK(loaded[1] == NodeAddress{"y", "host-y", 4001});
  // A damaged file is ignored, not fatal.
  { std::ofstream(file) << "{ not json"; }
  CHECK(load_members_file(file).empty());
  std::filesystem::remove_all(dir);
}

TEST_CASE("the members file holds at most kMaxRememberedMembers, written or read", "[node]") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("iridium-node-bound-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string file = (dir / "cluster-members.json").string();
  std::vector<NodeAddress> many;
  for (std::size_t i = 0; i < kMaxRememberedMembers + 50; ++i) {
    many.push_back({"n" + std::to_string(i), "127.0.0.1", static_cast<uint16_t>(10000 + i)});
  }
  REQUIRE(save_members_file(file, many).ok());
  auto loaded = load_members_file(file);
  REQUIRE(loaded.size() == kMaxRememberedMembers);
  CHECK(loaded.front() == many.front());  // the first ones (members before lost ones) stay
  CHECK(loaded.back() == many[kMaxRememberedMembers - 1]);

  // A file written by hand with more entries is read up to the bound.
  nlohmann::json list = nlohmann::json::array();
  for (const NodeAddress& m : many)
    list.push_back({{"alias", m.alias}, {"host", m.host}, {"port", m.port}});
  { std::ofstream(file) << nlohmann::json{{"members", list}}.dump(); }
  CHECK(load_members_file(file).size() == kMaxRememberedMembers);
  // And one over kMaxMembersFileBytes is not read at all.
  { std::ofstream(file) << std::string(kMaxMembersFileBytes + 1, ' '); }
  CHECK(load_members_file(file).empty());
  std::filesystem::remove_all(dir);
}
