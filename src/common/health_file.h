// The node's health file: the node's own loops stamp their liveness in it,
// and `iridium health` (app/health_command.h) reads it, with no socket, no
// ZeroMQ context and no CURVE handshake, so a container's health check costs
// a process start and one small read.
//
// The file, <data dir>/run/health.json, is one line of JSON:
//
//   {"format":1,"pid":7,"alias":"seed","cluster":"iridium","in_cluster":true,
//    "members":7,"stamps":{"cluster_loop":1765000000123,"remote_shell":...}}
//
// `stamps` holds, for each loop that runs, the last time (ms since the Unix
// epoch, UTC) that loop went round; a loop that does not run has no stamp.
// The writer rewrites the file in place under an exclusive flock() and
// pads it with spaces to its longest length; read_health_file() takes a
// shared lock, so it sees one whole version. (A reader without the lock may
// catch a write half done.)
//
// Cost on the node: each loop calls beat() on every turn. That reads the
// clock and takes an uncontended mutex; the file is rewritten only when
// this loop's stamp in it is a second old or more, or the facts (in the
// cluster, member count) changed. A loop that goes round at least once a
// second keeps the file fresh for the others: a loop with nothing to do
// may then wait() without a timeout, and while it waits every write stamps
// it with the write's time (it answers the moment work comes). An idle
// node therefore writes the file about once a second, from the cluster
// loop, and its remote-shell thread does not wake at all; a reader finds
// every live loop's stamp at most about a second old.
//
// Thread-safety: every method may be called from any thread. `mutex_`
// guards the state; `write_mutex_` makes one writer at a time, and a loop
// that finds the other writing skips its write (its stamp goes out with the
// next one) rather than wait on the disk.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace iridium::health {

using WallClock = std::chrono::system_clock;
using WallTime = WallClock::time_point;

// The loops that stamp.
enum class Loop { kCluster, kRemoteShell };
// Its key in `stamps`: "cluster_loop", "remote_shell".
std::string_view loop_key(Loop loop);

// <data dir>/run/health.json.
std::string health_file_path(const std::string& data_dir);

// What the file says.
struct Record {
  int64_t pid = 0;
  std::string alias;
  std::string cluster;                     // the cluster name
  bool in_cluster = false;                 // the cluster listener runs
  uint64_t members = 0;                    // other members this node lists
  std::map<std::string, WallTime> stamps;  // by loop key: the loops that run
};

// Writes the file for one node. The first start() writes it; the
// destructor removes it (a node that has stopped has no health).
class HealthFile {
 public:
  // on_write_error: called when a write fails, once per distinct message
  // (the app logs it).
  HealthFile(std::string path, std::string alias, std::string cluster,
             std::function<void(const Error&)> on_write_error = {});
  ~HealthFile();
  HealthFile(const HealthFile&) = delete;
  HealthFile& operator=(const HealthFile&) = delete;

  // The loop runs from now: its stamp is written (now) and expected.
  void start(Loop loop);
  // The loop ended on purpose: its stamp is dropped from the file.
  void stop(Loop loop);
  // The loop went round. Cheap; see the cost note above. Ends a wait().
  void beat(Loop loop);
  // The loop is about to wait for work with nothing of its own due. True
  // when another loop keeps the file fresh: this one may wait without a
  // timeout, counted live until its next beat(), and `wake` is called (on
  // the thread that stops the last such loop, under this object's lock,
  // so it must not block) when it must go back to stamping itself. False
  // when no other loop keeps the file: wait at most a second, then beat().
  bool wait(Loop loop, std::function<void()> wake);
  // The cluster facts; the file is rewritten at the next beat if they changed.
  void set_cluster(bool in_cluster, uint64_t members);

  const std::string& path() const { return path_; }

 private:
  struct Stamp {
    WallTime last;               // the loop's latest beat
    WallTime written;            // the beat the file holds
    bool waiting = false;        // in wait(): live at every write
    std::function<void()> wake;  // while waiting
  };
  bool kept_by_another(Loop loop) const;    // needs mutex_
  bool due(Loop loop, WallTime now) const;  // needs mutex_
  void write();                             // unless another thread is writing
  std::string render();                     // needs mutex_; marks the stamps written
  Status write_text(std::string text);      // needs write_mutex_
  Status open_file();                       // needs write_mutex_

  const std::string path_;
  const std::function<void(const Error&)> on_write_error_;
  std::mutex mutex_;
  Record facts_;                  // guarded by mutex_ (stamps unused: see loops_)
  std::map<Loop, Stamp> loops_;   // guarded by mutex_: the loops that run
  bool changed_ = false;          // guarded by mutex_: facts or loops not written yet
  bool started_ = false;          // guarded by mutex_: a loop started, so the file was written
  std::string last_write_error_;  // guarded by write_mutex_
  int fd_ = -1;                   // guarded by write_mutex_: the open file, or -1
  std::size_t file_bytes_ = 0;    // guarded by write_mutex_: its length
  std::mutex write_mutex_;
};

// Reads and checks the file. Errors: no file (kUnavailable), unreadable
// (kIo), not a health file (kInvalid), with what is wrong.
Result<Record> read_health_file(const std::string& path);

// A stamp older than the allowed age (or as far in the future: the clock
// moved back while the loop stood still).
struct StaleStamp {
  std::string loop;  // its key
  WallTime at;
  std::chrono::milliseconds age;  // now - at; negative in the future
};
std::vector<StaleStamp> stale_stamps(const Record& record, WallTime now,
                                     std::chrono::milliseconds max_age);

}  // namespace iridium::health
