// !run_on and !run_all in the shell, over a fake cluster: arguments, what
// reaches the cluster, how answers are shown (text and JSON), and the
// interrupt check passed down. The real cluster is tested in
// tests/cluster/test_run_on.py.
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "shell/run_format.h"
#include "shell/shell.h"
#include "vm/image.h"

using iridium::Error;
using iridium::ErrorKind;
using iridium::Result;
using namespace iridium::shell;

namespace {

struct FakeCluster : ClusterCommands {
  std::vector<std::string> nodes;
  std::string name;
  std::vector<uint8_t> image;
  RemoteRunWait wait;
  int calls = 0;
  Result<std::vector<RemoteRun>> answer = std::vector<RemoteRun>{};

  Result<std::string> start_cluster() override { return std::string("started"); }
  Result<std::string> join_cluster(const std::string&, uint16_t) override {
    return std::string("joined");
  }
  Result<std::string> members(bool) override { return std::string(); }
  Result<std::vector<ClusterKey>> keys() override { return Error{"plain mode"}; }
  Result<ClusterKeyChange> install_key(const std::string&) override { return Error{"plain mode"}; }
  Result<ClusterKeyChange> use_key(const std::string&) override { return Error{"plain mode"}; }
  Result<ClusterKeyChange> remove_key(const std::string&) override { return Error{"plain mode"}; }
  Result<std::vector<RemoteRun>> run(const std::vector<std::string>& n, const std::string& nm,
                                     const std::vector<uint8_t>& im,
                                     const RemoteRunWait& w) override {
    ++calls;
    nodes = n;
    name = nm;
    image = im;
    wait = w;
    return answer;
  }
};

RemoteRun halted(std::string node, std::string output) {
  RemoteRun r;
  r.node = std::move(node);
  r.status = "halted";
  r.output = std::move(output);
  r.job = 4;
  r.elapsed_ms = 3;
  return r;
}

const std::string kHello = IRIDIUM_SOURCE_DIR "/examples/hello.iasm";
const std::string kFib = IRIDIUM_SOURCE_DIR "/examples/fib.iasm";

std::string temp_file(const std::string& name, const std::string& bytes) {
  const auto path = std::filesystem::temp_directory_path() / ("iridium-run-" + name);
  std::ofstream(path, std::ios::binary) << bytes;
  return path.string();
}

}  // namespace

TEST_CASE("!run_on assembles the file here and sends its image to the node", "[run]") {
  FakeCluster cluster;
  cluster.answer = std::vector<RemoteRun>{halted("b", "Hello\n")};
  Environment env;
  env.cluster = &cluster;
  bool asked = false;
  env.interrupt_requested = [&] {
    asked = true;
    return false;
  };
  Shell shell(env, 1);
  const Reply reply = shell.execute("!run_on --timeout 2.5 b " + kHello);
  INFO(reply.output);
  CHECK(reply.ok);
  REQUIRE(cluster.calls == 1);
  CHECK(cluster.nodes == std::vector<std::string>{"b"});
  CHECK(cluster.name == kHello);
  CHECK(cluster.wait.timeout == std::chrono::milliseconds(2500));
  REQUIRE(cluster.wait.interrupted);
  cluster.wait.interrupted();
  CHECK(asked);
  auto image = iridium::vm::load_image(cluster.image);
  REQUIRE(image.ok());
  CHECK(reply.output == "[b] halted (job 4, 0.003s)\nHello\nno registers changed\n");
}

TEST_CASE("!run_all asks for every node and ends with a summary", "[run]") {
  FakeCluster cluster;
  RemoteRun failed;
  failed.node = "c";
  failed.failure = "c died before it answered";
  RemoteRun refused;
  refused.node = "d";
  refused.status = "refused";
  refused.code = "pool_full";
  refused.error = "pool full: 1 worker, busy; try again later";
  RemoteRun counted = halted("b", "");
  counted.registers.registers[0] = 42;
  cluster.answer = std::vector<RemoteRun>{counted, failed, refused};
  Environment env;
  env.cluster = &cluster;
  Shell shell(env, 1);
  const Reply reply = shell.execute("!run_all " + kFib);
  CHECK_FALSE(reply.ok);  // not every node ran it
  CHECK(cluster.nodes.empty());
  CHECK_THAT(reply.output, Catch::StartsWith("[b] halted (job 4, 0.003s)\nInteger registers:\n"));
  CHECK_THAT(reply.output, Catch::Contains("$0"));
  CHECK_THAT(reply.output, Catch::Contains("[c] failed: c died before it answered\n"));
  CHECK_THAT(
      reply.output,
      Catch::Contains("[d] refused (pool_full): pool full: 1 worker, busy; try again later\n"));
  CHECK_THAT(reply.output, Catch::EndsWith("1 ok, 2 failed\n"));

  const Reply json = shell.execute("!run_all --json " + kFib);
  const auto doc = nlohmann::json::parse(json.output);
  CHECK(doc["ok"] == 1);
  CHECK(doc["failed"] == 2);
  REQUIRE(doc["results"].size() == 3);
  CHECK(doc["results"][0]["registers"] == nlohmann::json{{"0", 42}});
  CHECK(doc["results"][0]["ok"] == true);
  CHECK(doc["results"][1]["failure"] == "c died before it answered");
  CHECK(doc["results"][1]["status"].is_null());
  CHECK(doc["results"][1]["output"].is_null());
  CHECK(doc["results"][2]["code"] == "pool_full");
}

TEST_CASE("!run_on shows a truncated output, a runtime error and a cancel", "[run]") {
  RemoteRun cut = halted("b", std::string(10, 'x'));
  cut.output_truncated = true;
  RemoteRun error = halted("c", "");
  error.status = "error";
  error.error = "division by zero at code offset 8";
  RemoteRun cancelled = halted("d", "partial\n");
  cancelled.status = "cancelled";
  const std::string text = run_results_text({cut, error, cancelled}, false);
  CHECK(text ==
        "[b] halted (job 4, 0.003s)\nxxxxxxxxxx\n(output cut to 10 bytes: a result must fit one "
        "cluster frame)\nno registers changed\n"
        "[c] error (job 4, 0.003s): division by zero at code offset 8\nno registers changed\n"
        "[d] cancelled (job 4, 0.003s)\npartial\nno registers changed\n");
  const auto doc = run_results_json({cut});
  CHECK(doc["results"][0]["output_truncated"] == true);
}

TEST_CASE("!run_on and !run_all reject bad arguments before sending anything", "[run]") {
  FakeCluster cluster;
  Environment env;
  env.cluster = &cluster;
  Shell shell(env, 1);
  auto fails_with = [&](const std::string& line, const std::string& message) {
    const Reply reply = shell.execute(line);
    INFO(line);
    CHECK_FALSE(reply.ok);
    CHECK_THAT(reply.output, Catch::Contains(message));
  };
  fails_with("!run_on", "usage: !run_on [--json] [--timeout SECONDS] NODE PATH");
  fails_with("!run_on b", "usage: !run_on");
  fails_with("!run_on a b c", "usage: !run_on");
  fails_with("!run_all", "usage: !run_all [--json] [--timeout SECONDS] PATH");
  fails_with("!run_all a b", "usage: !run_all");
  fails_with("!run_all --fast x", "unknown option --fast");
  fails_with("!run_all --timeout x " + kHello, "--timeout takes seconds");
  fails_with("!run_all --timeout 0 " + kHello, "--timeout takes seconds");
  fails_with("!run_all --timeout " + kHello, "--timeout takes seconds");
  fails_with("!run_on b /no/such/file.iasm", "/no/such/file.iasm");
  fails_with("!run_on b " + temp_file("bad.iasm", "load $99 #1\n"), "bad.iasm");
  // An image that is not even laid out as one is refused here; one that
  // only fails verification goes (the node that runs it verifies it).
  fails_with("!run_on b " + temp_file("short.pie", "EPIE"), "short.pie");
  CHECK(cluster.calls == 0);
  std::string unverified(64, '\0');
  unverified.replace(0, 4, "EPIE");
  unverified += std::string("\0\0\0\0", 4) + std::string("\xee\0\0\0", 4);  // opcode 0xee
  cluster.answer = std::vector<RemoteRun>{halted("b", "")};
  CHECK(shell.execute("!run_on b " + temp_file("unverified.pie", unverified)).ok);
  CHECK(cluster.calls == 1);
  CHECK(cluster.image.size() == unverified.size());

  cluster.answer = Error{"cannot run: this node is not in a cluster", ErrorKind::kUnavailable};
  fails_with("!run_all " + kHello, "cannot run: this node is not in a cluster");

  Shell no_cluster(Environment{}, 2);
  CHECK(no_cluster.execute("!run_all " + kHello).output == "clustering is not available here\n");
}
