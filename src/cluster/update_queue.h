// The updates waiting to spread (SWIM's dissemination, after memberlist's
// TransmitLimitedQueue): at most one per node, the newest; each rides on
// outgoing frames until it has been sent `limit` times, least-sent and
// newest first. Past its capacity the update sent most often (the oldest of
// those) makes room: push-pull anti-entropy repairs what it would have said.
//
// Not thread-safe: the membership owns it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "cluster/protocol.h"

namespace iridium::cluster {

class UpdateQueue {
 public:
  explicit UpdateQueue(std::size_t capacity = SIZE_MAX) : capacity_(capacity) {}

  // Replaces any update about the same node.
  void push(Update update);
  // Updates for one frame: as many as fit in `budget` bytes (at least one if
  // any is waiting), each counted as sent once more; those sent `limit`
  // times leave the queue.
  std::vector<Update> take(std::size_t budget, std::size_t limit);
  // Drops any update about `alias`.
  void forget(const std::string& alias);

  bool empty() const { return by_alias_.empty(); }
  std::size_t size() const { return by_alias_.size(); }
  // Roughly what an update costs in a frame.
  static std::size_t bytes_of(const Update& u);

 private:
  struct Entry {
    Update update;
    std::size_t sent = 0;
    uint64_t order = 0;  // higher is newer
  };
  // (sent, -order, alias): the next to go first.
  using Key = std::tuple<std::size_t, int64_t, std::string>;
  static Key key_of(const Entry& e);

  std::size_t capacity_;
  std::map<std::string, Entry> by_alias_;
  std::set<Key> order_;
  uint64_t next_order_ = 1;
};

}  // namespace iridium::cluster
