#include "cluster/update_queue.h"

namespace iridium::cluster {

std::size_t UpdateQueue::bytes_of(const Update& u) {
  // Seven array slots with their headers, plus the strings.
  return 24 + u.node.alias.size() + u.node.host.size() + u.instance.size() + u.from.size();
}

UpdateQueue::Key UpdateQueue::key_of(const Entry& e) {
  return {e.sent, -static_cast<int64_t>(e.order), e.update.node.alias};
}

void UpdateQueue::push(Update update) {
  forget(update.node.alias);
  Entry e{std::move(update), 0, next_order_++};
  order_.insert(key_of(e));
  std::string alias = e.update.node.alias;
  by_alias_.emplace(std::move(alias), std::move(e));
  if (by_alias_.size() > capacity_) forget(std::get<2>(*order_.rbegin()));
}

void UpdateQueue::forget(const std::string& alias) {
  auto it = by_alias_.find(alias);
  if (it == by_alias_.end()) return;
  order_.erase(key_of(it->second));
  by_alias_.erase(it);
}

std::vector<Update> UpdateQueue::take(std::size_t budget, std::size_t limit) {
  std::vector<Update> out;
  std::vector<Entry*> taken;
  std::size_t used = 0;
  for (const Key& key : order_) {
    Entry& e = by_alias_.at(std::get<2>(key));
    const std::size_t bytes = bytes_of(e.update);
    if (!out.empty() && used + bytes > budget) continue;  // a smaller one may still fit
    used += bytes;
    out.push_back(e.update);
    taken.push_back(&e);
    if (out.size() >= kMaxUpdatesPerFrame || used >= budget) break;
  }
  for (Entry* e : taken) {
    order_.erase(key_of(*e));
    ++e->sent;
    if (e->sent >= limit) {
      const std::string alias = e->update.node.alias;
      by_alias_.erase(alias);
    } else {
      order_.insert(key_of(*e));
    }
  }
  return out;
}

}  // namespace iridium::cluster
