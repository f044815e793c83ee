// The remote shell's session table (src/shell/remote_sessions.h) on a fake
// clock: who gets a slot, when a session ends, and that a session whose line
// is running is never ended under it; and the interrupt flag each session
// shares with its Shell.
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "shell/remote_sessions.h"

using namespace std::chrono_literals;
using iridium::shell::SessionLimits;
using iridium::shell::SessionTable;
using iridium::shell::Shell;

namespace {

SessionLimits limits(std::size_t max_sessions = 3) {
  SessionLimits l;
  l.max_sessions = max_sessions;
  l.grace = 10s;
  l.idle_timeout = 30min;
  return l;
}

const SessionTable::TimePoint t0{};

std::unique_ptr<Shell> a_shell() {
  return std::make_unique<Shell>(iridium::shell::Environment{}, 1);
}

// Takes the Shell out as RemoteServer::run_next() does when a line starts.
std::unique_ptr<Shell> start_line(SessionTable::Session& s) {
  s.running = true;
  return std::move(s.shell);
}

}  // namespace

TEST_CASE("a keepalive session ends after the grace without a frame, not before") {
  SessionTable table(limits());
  auto* s = table.open("a", t0, nullptr);
  REQUIRE(s != nullptr);
  s->shell = a_shell();
  table.heard("a", t0, /*pinged=*/true);
  CHECK(table.expire(t0 + 10s).empty());
  table.heard("a", t0 + 9s);
  CHECK(table.expire(t0 + 19s).empty());
  auto ended = table.expire(t0 + 19s + 1ms);
  REQUIRE(ended.size() == 1);
  CHECK(ended[0].peer == "a");
  CHECK(ended[0].why == SessionTable::Ended::kSilent);
  CHECK(table.find("a") == nullptr);
  CHECK(table.size() == 0);
}

TEST_CASE("a session keeps alive from its first ping on") {
  SessionTable table(limits());
  table.open("a", t0, nullptr);
  CHECK(table.expire(t0 + 1min).empty());  // no pings: only the idle timeout
  table.heard("a", t0 + 1min, /*pinged=*/true);
  CHECK(table.expire(t0 + 1min + 10s).empty());
  CHECK(table.expire(t0 + 1min + 11s).size() == 1);
}

TEST_CASE("a session without pings ends after the idle timeout") {
  SessionTable table(limits());
  table.open("a", t0, nullptr);
  CHECK(table.expire(t0 + 30min).empty());
  auto ended = table.expire(t0 + 30min + 1s);
  REQUIRE(ended.size() == 1);
  CHECK(ended[0].why == SessionTable::Ended::kIdle);
}

TEST_CASE("a full table refuses until a session has been silent for the grace") {
  SessionTable table(limits(3));
  for (const char* peer : {"a", "b", "c"}) REQUIRE(table.open(peer, t0, nullptr));
  table.heard("a", t0 + 5s);
  std::vector<SessionTable::EndedSession> ended;
  CHECK(table.open("d", t0 + 10s, &ended) == nullptr);
  CHECK(ended.empty());
  // b and c have been silent for 11 s, a for 6 s: the stalest goes.
  auto* d = table.open("d", t0 + 11s, &ended);
  REQUIRE(d != nullptr);
  REQUIRE(ended.size() == 1);
  CHECK(ended[0].why == SessionTable::Ended::kReclaimed);
  CHECK((ended[0].peer == "b" || ended[0].peer == "c"));
  CHECK(table.size() == 3);
  CHECK(table.find("a") != nullptr);
  CHECK(table.find("d") == d);
}

TEST_CASE("a running session is neither expired nor reclaimed") {
  SessionTable table(limits(1));
  auto* a = table.open("a", t0, nullptr);
  a->shell = a_shell();
  table.heard("a", t0, true);
  auto shell = start_line(*a);
  CHECK(table.expire(t0 + 1h).empty());
  CHECK(table.open("b", t0 + 1h, nullptr) == nullptr);
  // The line comes back: the answer goes to a, and its silence starts now.
  auto* back = table.finished(a->id, std::move(shell), t0 + 1h);
  REQUIRE(back != nullptr);
  CHECK(back->peer == "a");
  CHECK(back->shell != nullptr);
  CHECK_FALSE(back->running);
  CHECK(table.expire(t0 + 1h + 10s).empty());
  CHECK(table.expire(t0 + 1h + 11s).size() == 1);
}

TEST_CASE("closing a running session orphans it and interrupts its line until it is back") {
  SessionTable table(limits(1));
  auto* a = table.open("a", t0, nullptr);
  a->shell = a_shell();
  const uint64_t id = a->id;
  const auto interrupt = a->interrupt;
  a->queued.push_back("nop");
  auto shell = start_line(*a);
  CHECK_FALSE(interrupt->load());
  CHECK(table.close("a"));
  CHECK(interrupt->load());  // nobody will read its answer: stop at the next slice
  CHECK(table.find("a") == nullptr);
  CHECK(table.size() == 1);  // still holds its slot
  CHECK(table.open("b", t0, nullptr) == nullptr);
  CHECK(table.finished(id, std::move(shell), t0 + 1s) == nullptr);  // nobody to answer
  CHECK(table.size() == 0);
  CHECK(table.open("b", t0 + 1s, nullptr) != nullptr);
}

TEST_CASE("open again replaces the client's session") {
  SessionTable table(limits(2));
  auto* first = table.open("a", t0, nullptr);
  const uint64_t first_id = first->id;
  std::vector<SessionTable::EndedSession> ended;
  auto* second = table.open("a", t0 + 1s, &ended);
  REQUIRE(second != nullptr);
  CHECK(second->id != first_id);
  REQUIRE(ended.size() == 1);
  CHECK(ended[0].why == SessionTable::Ended::kReplaced);
  CHECK(table.size() == 1);

  // Replacing a running session leaves it orphaned and interrupted: its
  // answer is dropped.
  second->shell = a_shell();
  auto shell = start_line(*second);
  const uint64_t second_id = second->id;
  const auto second_interrupt = second->interrupt;
  CHECK_FALSE(second_interrupt->load());
  auto* third = table.open("a", t0 + 2s, nullptr);
  REQUIRE(third != nullptr);
  CHECK(second_interrupt->load());
  CHECK_FALSE(third->interrupt->load());
  CHECK(table.size() == 2);
  CHECK(table.finished(second_id, std::move(shell), t0 + 3s) == nullptr);
  CHECK(table.find("a") == third);
  CHECK(table.size() == 1);
}

TEST_CASE("close of an unknown client is harmless") {
  SessionTable table(limits());
  CHECK_FALSE(table.close("nobody"));
  table.heard("nobody", t0, true);
  CHECK(table.size() == 0);
}

TEST_CASE("start_next hands out queued lines one at a time, in order") {
  SessionTable table(limits());
  auto* a = table.open("a", t0, nullptr);
  CHECK_FALSE(table.start_next(*a).has_value());  // nothing waits
  a->queued.push_back("load $0 #1");
  a->queued.push_back("load $0 #2");
  CHECK(table.start_next(*a) == "load $0 #1");
  CHECK(a->running);
  CHECK_FALSE(table.start_next(*a).has_value());  // one runs already
  a->running = false;                             // as finished() does
  CHECK(table.start_next(*a) == "load $0 #2");
  CHECK(a->queued.empty());
}

TEST_CASE("interrupt flags only a running line, and the next line starts clear") {
  SessionTable table(limits());
  CHECK_FALSE(table.interrupt("nobody"));
  auto* a = table.open("a", t0, nullptr);
  const auto flag = a->interrupt;
  CHECK_FALSE(table.interrupt("a"));  // no line runs: nothing to stop later
  CHECK_FALSE(flag->load());
  a->queued.push_back("jmpb $0");
  a->queued.push_back("nop");
  REQUIRE(table.start_next(*a));
  CHECK(table.interrupt("a"));
  CHECK(flag->load());
  a->running = false;
  REQUIRE(table.start_next(*a) == "nop");
  CHECK_FALSE(flag->load());  // the earlier line's interrupt does not stop this one
  // Sessions have flags of their own.
  auto* b = table.open("b", t0, nullptr);
  CHECK(b->interrupt != flag);
}

TEST_CASE("interrupt_all flags running lines, orphans' too, and no idle session") {
  SessionTable table(limits());
  auto* a = table.open("a", t0, nullptr);
  auto* b = table.open("b", t0, nullptr);
  auto* c = table.open("c", t0, nullptr);
  const auto a_flag = a->interrupt, b_flag = b->interrupt, c_flag = c->interrupt;
  a->queued.push_back("nop");
  c->queued.push_back("nop");
  REQUIRE(table.start_next(*a));
  REQUIRE(table.start_next(*c));
  CHECK(table.close("c"));  // orphaned while its line runs
  table.interrupt_all();
  CHECK(a_flag->load());
  CHECK_FALSE(b_flag->load());
  CHECK(c_flag->load());
}

TEST_CASE("a line running on another thread stops when its session is interrupted") {
  // As RemoteServer wires it: the Shell's interrupt check reads the
  // session's flag, and the line runs off the thread that owns the table.
  SessionTable table(limits());
  auto* a = table.open("a", t0, nullptr);
  iridium::shell::Environment env;
  env.limits.max_steps = 4'000'000'000;  // a safety net: minutes, not forever
  env.interrupt_requested = [flag = a->interrupt] { return flag->load(); };
  auto shell = std::make_unique<Shell>(env, a->id);
  REQUIRE(shell->execute("load $1 #4").ok);
  REQUIRE(shell->execute("top: inc $0").ok);
  a->queued.push_back("jmpb $1");  // back to `inc $0`, for ever
  auto line = table.start_next(*a);
  REQUIRE(line);
  auto running =
      std::async(std::launch::async, [&shell, text = *line] { return shell->execute(text); });
  // Let the loop go round a while (no assertion on timing), then stop it.
  CHECK(running.wait_for(50ms) == std::future_status::timeout);
  REQUIRE(table.interrupt("a"));
  REQUIRE(running.wait_for(60s) == std::future_status::ready);
  const auto reply = running.get();
  CHECK_FALSE(reply.ok);
  CHECK(reply.output.rfind("interrupted at code offset ", 0) == 0);
  CHECK(shell->machine().state().registers[1] == 4);  // as the program left it
  CHECK(shell->machine().state().registers[0] > 0);
  // The session's next line starts with the flag clear and runs to its end.
  REQUIRE(table.finished(a->id, std::move(shell), t0) == a);
  a->queued.push_back("load $5 #7");
  REQUIRE(table.start_next(*a));
  CHECK_FALSE(a->interrupt->load());
  CHECK(a->shell->execute("load $5 #7").ok);
  CHECK(a->shell->machine().state().registers[5] == 7);
}
