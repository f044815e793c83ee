// The remote shell's session table: which client (ZeroMQ routing id) has
// which session, whether a line of it is running, and when each session ends.
// No sockets and no clock of its own (every call takes `now`), so the rules
// are tested on a fake clock (tests/shell/test_remote_sessions.cpp).
//
// Thread-safety: none. RemoteServer's socket thread owns the table. A
// session's Shell is held here only while no line of it runs; while one
// runs, the Shell is out on an executor thread (`shell` is null and
// `running` is true) and comes back through finished().
//
// Interrupts: each session has an atomic flag, shared with its Shell's
// Environment::interrupt_requested. The socket thread sets it (interrupt(),
// on an `interrupt` frame, only while a line runs; or when it orphans a
// running session, see below) and clears it when it
// hands the next line out (start_next()); the executor thread running that
// session's line only reads it, between slices. The flag is the only
// session state two threads touch.
//
// Lifetime of a session:
//   - `open` creates it (replacing the client's previous session, if any);
//   - `close`, `!quit`, or silence end it: a session that keeps alive (its
//     client has pinged; `iridium attach` pings right after `opened`) ends
//     after `grace` without a frame; a session of an older client that never pings ends after
//     `grace` of silence only when its slot is needed by a new client, otherwise after
//     `idle_timeout`;
//   - a session whose line is running never ends before the line does: it is
//     orphaned instead (detached from its client, still counted against
//     max_sessions, its line interrupted), and erased when the line comes back.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shell/shell.h"

namespace iridium::shell {

struct SessionLimits {
  std::size_t max_sessions = 64;
  std::chrono::milliseconds grace{15'000};
  std::chrono::milliseconds idle_timeout{30 * 60 * 1000};
  std::size_t max_queued_lines = 16;  // lines waiting behind the running one
};

class SessionTable {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  struct Session {
    uint64_t id = 0;
    std::string peer;              // routing id; empty once orphaned
    std::unique_ptr<Shell> shell;  // null while a line runs
    TimePoint last_heard{};
    bool keepalive = false;          // the client pings, so silence means it is gone
    bool running = false;            // a line of this session is on an executor thread
    std::deque<std::string> queued;  // lines that arrived while one was running
    // Set: stop the running line at its next slice. Shared with the Shell,
    // which outlives the session when an orphan's line comes back.
    std::shared_ptr<std::atomic<bool>> interrupt = std::make_shared<std::atomic<bool>>(false);
  };

  enum class Ended { kClosed, kSilent, kIdle, kReclaimed, kReplaced };
  struct EndedSession {
    uint64_t id;
    std::string peer;
    Ended why;
  };

  explicit SessionTable(SessionLimits limits) : limits_(limits) {}

  // A new session for peer, which replaces the one peer had. Null when the
  // table is full and no stale session can be reclaimed; `ended` gets the
  // sessions that made room or were replaced. The caller sets the Shell.
  Session* open(const std::string& peer, TimePoint now, std::vector<EndedSession>* ended);
  // The session of peer, or null (also for orphans).
  Session* find(const std::string& peer);
  // A frame came from peer (any frame): its session is alive. A ping also
  // marks the session as one that keeps alive.
  void heard(const std::string& peer, TimePoint now, bool pinged = false);
  // Ends peer's session (close, !quit). A running one is orphaned.
  bool close(const std::string& peer);
  // Takes the session's next waiting line to run, unless one is running or
  // none waits: marks the session running and clears its interrupt flag, so
  // an interrupt meant for an earlier line never stops this one.
  std::optional<std::string> start_next(Session& session);
  // Asks peer's running line to stop. False (and nothing set) when peer has
  // no session or no line running: an interrupt never waits for a later line.
  bool interrupt(const std::string& peer);
  // Asks every running line to stop, orphans' too (the server is stopping).
  void interrupt_all();
  // A line of session id came back with its Shell. Returns the session when
  // the line's answer should go to its client, null when the session was
  // orphaned meanwhile (it is erased, with the Shell).
  Session* finished(uint64_t id, std::unique_ptr<Shell> shell, TimePoint now);
  // Ends silent and idle sessions (never running ones) and returns them.
  std::vector<EndedSession> expire(TimePoint now);

  std::size_t size() const { return sessions_.size(); }  // orphans included
  const SessionLimits& limits() const { return limits_; }

 private:
  void detach(std::map<uint64_t, Session>::iterator it);

  SessionLimits limits_;
  std::map<uint64_t, Session> sessions_;  // by session id, orphans included
  std::map<std::string, uint64_t> by_peer_;
  uint64_t next_id_ = 1;
};

inline std::string_view ended_reason(SessionTable::Ended why);

// Header-only, so that src/shell/CMakeLists.txt needs no new source file.

inline std::string_view ended_reason(SessionTable::Ended why) {
  switch (why) {
    case SessionTable::Ended::kClosed:
      return "closed";
    case SessionTable::Ended::kSilent:
      return "silent (no keepalive)";
    case SessionTable::Ended::kIdle:
      return "idle";
    case SessionTable::Ended::kReclaimed:
      return "silent, slot reclaimed";
    case SessionTable::Ended::kReplaced:
      return "replaced by a new open";
  }
  return "ended";
}

inline void SessionTable::detach(std::map<uint64_t, Session>::iterator it) {
  if (!it->second.peer.empty()) by_peer_.erase(it->second.peer);
  if (it->second.running) {
    // The Shell is out on an executor thread: keep the slot until it is back,
    // and stop its line at the next slice, since nobody will read the answer.
    it->second.peer.clear();
    it->second.queued.clear();
    it->second.interrupt->store(true);
  } else {
    sessions_.erase(it);
  }
}

inline SessionTable::Session* SessionTable::open(const std::string& peer, TimePoint now,
                                                 std::vector<EndedSession>* ended) {
  if (auto old = by_peer_.find(peer); old != by_peer_.end()) {
    const uint64_t id = old->second;
    detach(sessions_.find(id));
    if (ended != nullptr) ended->push_back({id, peer, Ended::kReplaced});
  }
  if (sessions_.size() >= limits_.max_sessions) {
    // Full: reclaim the session silent the longest, if it has been silent
    // for more than the grace (a client that vanished without `close`).
    auto stalest = sessions_.end();
    for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
      const Session& s = it->second;
      if (s.running || now - s.last_heard <= limits_.grace) continue;
      if (stalest == sessions_.end() || s.last_heard < stalest->second.last_heard) stalest = it;
    }
    if (stalest == sessions_.end()) return nullptr;
    if (ended != nullptr)
      ended->push_back({stalest->first, stalest->second.peer, Ended::kReclaimed});
    detach(stalest);
  }
  const uint64_t id = next_id_++;
  Session& session = sessions_[id];
  session.id = id;
  session.peer = peer;
  session.last_heard = now;
  by_peer_[peer] = id;
  return &session;
}

inline SessionTable::Session* SessionTable::find(const std::string& peer) {
  auto it = by_peer_.find(peer);
  return it == by_peer_.end() ? nullptr : &sessions_.at(it->second);
}

inline void SessionTable::heard(const std::string& peer, TimePoint now, bool pinged) {
  Session* session = find(peer);
  if (session == nullptr) return;
  session->last_heard = now;
  if (pinged) session->keepalive = true;
}

inline bool SessionTable::close(const std::string& peer) {
  auto it = by_peer_.find(peer);
  if (it == by_peer_.end()) return false;
  detach(sessions_.find(it->second));
  return true;
}

inline std::optional<std::string> SessionTable::start_next(Session& session) {
  if (session.running || session.queued.empty()) return std::nullopt;
  std::string line = std::move(session.queued.front());
  session.queued.pop_front();
  session.running = true;
  session.interrupt->store(false);
  return line;
}

inline bool SessionTable::interrupt(const std::string& peer) {
  Session* session = find(peer);
  if (session == nullptr || !session->running) return false;
  session->interrupt->store(true);
  return true;
}

inline void SessionTable::interrupt_all() {
  for (auto& [id, session] : sessions_) {
    if (session.running) session.interrupt->store(true);
  }
}

inline SessionTable::Session* SessionTable::finished(uint64_t id, std::unique_ptr<Shell> shell,
                                                     TimePoint now) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return nullptr;  // cannot happen: orphans stay until here
  Session& session = it->second;
  session.running = false;
  if (session.peer.empty()) {
    sessions_.erase(it);  // orphaned while the line ran; the Shell goes with it
    return nullptr;
  }
  session.shell = std::move(shell);
  session.last_heard = now;  // the line's time does not count as silence
  return &session;
}

inline std::vector<SessionTable::EndedSession> SessionTable::expire(TimePoint now) {
  std::vector<EndedSession> ended;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    const Session& s = it->second;
    const auto silence = now - s.last_heard;
    std::optional<Ended> why;
    if (!s.running && s.keepalive && silence > limits_.grace) why = Ended::kSilent;
    if (!s.running && silence > limits_.idle_timeout) why = Ended::kIdle;
    if (!why) {
      ++it;
      continue;
    }
    ended.push_back({s.id, s.peer, *why});
    if (!s.peer.empty()) by_peer_.erase(s.peer);
    it = sessions_.erase(it);
  }
  return ended;
}

}  // namespace iridium::shell
