// Remote runs between real Nodes on loopback in one process, with a fake
// executor (its own "worker" thread): Node::run() to a member and to the
// node itself, refusals, cancels, a deadline, a target that leaves, and
// jobs that finish after their node is gone. Run under ThreadSanitizer in CI.
#include <spdlog/spdlog.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <deque>
#include <map>
#include <set>
#include <thread>

#include "cluster/node.h"
#include "node_support.h"

using namespace iridium::cluster;
using namespace std::chrono_literals;
using iridium::testing::eventually;
const auto config = iridium::testing::loopback_config;
using iridium::Error;
using iridium::ErrorKind;
using iridium::Result;

namespace {

// Finishes jobs on a thread of its own, as a worker pool would: at once
// ("halted", output "ran NAME for ORIGIN", $0 = 42), or, with `hold`, only
// when cancelled.
class FakeExecutor : public RunExecutor {
 public:
  FakeExecutor() : worker_([this] { work(); }) {}
  ~FakeExecutor() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    worker_.join();
  }

  Result<uint64_t> start(RunRequest request, RunDone done) override {
    std::lock_guard lock(mutex_);
    if (refuse) return Error{"pool full: 1 worker, busy", ErrorKind::kUnavailable};
    const uint64_t id = next_++;
    RunOutcome outcome;
    outcome.status = RunStatus::kHalted;
    outcome.output = "ran " + request.name + " for " + request.origin;
    outcome.registers = {{0, 42}};
    outcome.job = id;
    requests_.push_back(std::move(request));
    if (hold) {
      held_.emplace(id, std::make_pair(std::move(outcome), std::move(done)));
    } else {
      ready_.emplace_back(std::move(outcome), std::move(done));
      changed_.notify_all();
    }
    return id;
  }

  void cancel(uint64_t job) override {
    std::lock_guard lock(mutex_);
    ++cancels_;
    auto it = held_.find(job);
    if (it == held_.end()) return;
    it->second.first.status = RunStatus::kCancelled;
    ready_.push_back(std::move(it->second));
    held_.erase(it);
    changed_.notify_all();
  }

  std::size_t held() {
    std::lock_guard lock(mutex_);
    return held_.size();
  }
  int cancels() {
    std::lock_guard lock(mutex_);
    return cancels_;
  }
  std::vector<RunRequest> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  // Finishes every held job as halted.
  void release() {
    std::lock_guard lock(mutex_);
    for (auto& [id, job] : held_) ready_.push_back(std::move(job));
    held_.clear();
    changed_.notify_all();
  }

  std::atomic<bool> hold{false};
  std::atomic<bool> refuse{false};

 private:
  void work() {
    std::unique_lock lock(mutex_);
    for (;;) {
      changed_.wait(lock, [this] { return stopping_ || !ready_.empty(); });
      if (ready_.empty()) return;
      auto [outcome, done] = std::move(ready_.front());
      ready_.pop_front();
      lock.unlock();
      done(std::move(outcome));
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::pair<RunOutcome, RunDone>> ready_;
  std::map<uint64_t, std::pair<RunOutcome, RunDone>> held_;
  std::vector<RunRequest> requests_;
  uint64_t next_ = 1;
  int cancels_ = 0;
  bool stopping_ = false;
  std::thread worker_;
};

// Two nodes, a and b, each with its executor, in one mesh.
struct Pair {
  zmq::context_t context{1};
  FakeExecutor a_jobs, b_jobs;
  Node a{context, config("a")}, b{context, config("b")};

  Pair() {
    a.set_run_executor(&a_jobs);
    b.set_run_executor(&b_jobs);
    auto started = a.start();
    REQUIRE(started.ok());
    REQUIRE(b.join("127.0.0.1", started->bound.port).ok());
    REQUIRE(eventually([&] { return a.snapshot().members.size() == 1; }));
  }
};

RunWait within(std::chrono::milliseconds timeout, std::function<bool()> cancelled = {}) {
  return RunWait{timeout, std::move(cancelled)};
}

}  // namespace

TEST_CASE("a node runs an image on a member and on itself", "[node][run]") {
  Pair p;
  auto one = p.a.run(std::vector<std::string>{"b"}, "x.iasm", "EPIE", within(5s));
  REQUIRE(one.ok());
  REQUIRE(one->size() == 1);
  const RunReply& reply = (*one)[0];
  CHECK(reply.alias == "b");
  REQUIRE(reply.result.ok());
  CHECK(reply.result->status == RunStatus::kHalted);
  CHECK(reply.result->output == "ran x.iasm for a");
  CHECK(reply.result->registers == std::vector<IntRegister>{{0, 42}});
  CHECK(reply.result->job == 1);
  REQUIRE(p.b_jobs.requests().size() == 1);
  CHECK(p.b_jobs.requests()[0].image == "EPIE");
  CHECK(p.b_jobs.requests()[0].origin == "a");

  auto all = p.a.run(std::nullopt, "y", "EPIE", within(5s));
  REQUIRE(all.ok());
  REQUIRE(all->size() == 2);
  CHECK((*all)[0].alias == "a");  // sorted by alias, this node included
  CHECK((*all)[1].alias == "b");
  REQUIRE((*all)[0].result.ok());
  CHECK((*all)[0].result->output == "ran y for a");
  CHECK((*all)[1].result->output == "ran y for a");
  CHECK(p.a_jobs.requests().size() == 1);  // its own run took no frames

  const Snapshot s = p.a.snapshot();
  CHECK(s.counters.sent_by_type[message_type_index(MessageType::kRunRequest)] == 2);
  CHECK(s.counters.received_by_type[message_type_index(MessageType::kRunAccepted)] == 2);
  CHECK(s.counters.received_by_type[message_type_index(MessageType::kRunResult)] == 2);
}

TEST_CASE("refusals and unknown targets come back as data", "[node][run]") {
  Pair p;
  p.b_jobs.refuse = true;
  auto replies = p.a.run(std::vector<std::string>{"b", "nobody"}, "x", "EPIE", within(5s));
  REQUIRE(replies.ok());
  REQUIRE((*replies)[0].result.ok());
  CHECK((*replies)[0].result->status == RunStatus::kRefused);
  CHECK((*replies)[0].result->code == kRefusedPoolFull);
  CHECK((*replies)[0].result->error == "pool full: 1 worker, busy");
  REQUIRE_FALSE((*replies)[1].result.ok());
  CHECK((*replies)[1].result.kind() == ErrorKind::kInvalid);
  CHECK_THAT((*replies)[1].result.message(), Catch::Contains("'nobody' is not a member"));

  auto big = p.a.run(std::nullopt, "x", std::string(kMaxRunImageBytes + 1, 'x'), within(5s));
  REQUIRE_FALSE(big.ok());
  CHECK_THAT(big.message(), Catch::Contains("remote runs take at most 49152"));

  zmq::context_t context(1);
  Node idle(context, config("idle"));
  auto not_started = idle.run(std::nullopt, "x", "EPIE", within(1s));
  REQUIRE_FALSE(not_started.ok());
  CHECK(not_started.kind() == ErrorKind::kUnavailable);
}

TEST_CASE("a cancelled wait cancels the job on the member", "[node][run]") {
  Pair p;
  p.b_jobs.hold = true;
  std::atomic<bool> cancel{false};
  std::thread canceller([&] {
    REQUIRE(eventually([&] { return p.b_jobs.held() == 1; }));
    cancel = true;
  });
  auto replies = p.a.run(std::vector<std::string>{"b"}, "x", "EPIE",
                         within(20s, [&] { return cancel.load(); }));
  canceller.join();
  REQUIRE(replies.ok());
  REQUIRE((*replies)[0].result.ok());
  CHECK((*replies)[0].result->status == RunStatus::kCancelled);
  CHECK(p.b_jobs.cancels() == 1);
}

TEST_CASE("a deadline fails the run and cancels it there", "[node][run]") {
  Pair p;
  p.b_jobs.hold = true;
  p.a_jobs.hold = true;
  auto replies = p.a.run(std::nullopt, "x", "EPIE", within(300ms));
  REQUIRE(replies.ok());
  for (const RunReply& r : *replies) {
    REQUIRE_FALSE(r.result.ok());
    CHECK_THAT(r.result.message(), Catch::Contains("within 0.3 s; asked it to cancel the run"));
  }
  CHECK(eventually([&] { return p.b_jobs.cancels() == 1 && p.a_jobs.cancels() == 1; }));
}

TEST_CASE("a member that leaves mid-run fails the run at once, and its own jobs are cancelled",
          "[node][run]") {
  Pair p;
  p.b_jobs.hold = true;
  std::thread leaver([&] {
    REQUIRE(eventually([&] { return p.b_jobs.held() == 1; }));
    p.b.leave_and_stop();
  });
  const auto started = std::chrono::steady_clock::now();
  auto replies = p.a.run(std::vector<std::string>{"b"}, "x", "EPIE", within(20s));
  leaver.join();
  CHECK(std::chrono::steady_clock::now() - started < 10s);
  REQUIRE(replies.ok());
  REQUIRE_FALSE((*replies)[0].result.ok());
  CHECK((*replies)[0].result.message() == "b left the cluster before it answered");
  CHECK(p.b_jobs.cancels() == 1);  // b cancelled a's job as it left
}

TEST_CASE("jobs that finish after their node is gone are dropped", "[node][run]") {
  FakeExecutor jobs;  // outlives the node, as the app's pool does
  jobs.hold = true;
  {
    Pair p;
    Node c(p.context, config("c"));
    c.set_run_executor(&jobs);
    REQUIRE(c.join("127.0.0.1", p.a.snapshot().self.port).ok());
    REQUIRE(eventually([&] { return p.a.snapshot().members.size() == 2; }));
    auto replies = p.a.run(std::vector<std::string>{"c"}, "x", "EPIE", within(200ms));
    REQUIRE(replies.ok());
    CHECK_FALSE((*replies)[0].result.ok());
    CHECK(eventually([&] { return jobs.held() == 0; }));  // the deadline cancelled it
    jobs.hold = true;
    auto again = p.a.run(std::vector<std::string>{"c"}, "x", "EPIE", within(100ms));
    REQUIRE(again.ok());
  }
  jobs.release();  // finishes after c is destroyed: the relay drops it
  CHECK(eventually([&] { return jobs.held() == 0; }));
}

TEST_CASE("a node with no executor refuses runs", "[node][run]") {
  zmq::context_t context(1);
  FakeExecutor a_jobs;
  Node a(context, config("a")), b(context, config("b"));
  a.set_run_executor(&a_jobs);
  auto started = a.start();
  REQUIRE(started.ok());
  REQUIRE(b.join("127.0.0.1", started->bound.port).ok());
  REQUIRE(eventually([&] { return a.snapshot().members.size() == 1; }));
  auto replies = a.run(std::vector<std::string>{"b"}, "x", "EPIE", within(5s));
  REQUIRE(replies.ok());
  REQUIRE((*replies)[0].result.ok());
  CHECK((*replies)[0].result->status == RunStatus::kRefused);
  CHECK((*replies)[0].result->code == kRefusedUnavailable);
}
