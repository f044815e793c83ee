// Interned strings for the member table: every alias, host and instance a
// Membership lists is held once per pool, and a member entry keeps 8-byte
// handles instead of 32-byte strings. One pool per Membership by default;
// the simulator gives all its nodes one pool, so 10,000 tables that list the
// same 10,000 members hold each name once.
//
// A name leaves the pool with its last handle, so hostile frames with ever
// new aliases do not make it grow. Not thread-safe: a pool and its handles
// belong to the thread that owns the Membership (or the simulation).
#pragma once

#include <compare>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace iridium::cluster {

class NamePool;

class Name {
 public:
  Name() = default;
  Name(const Name& other) : entry_(other.entry_) { retain(); }
  Name(Name&& other) noexcept : entry_(std::exchange(other.entry_, nullptr)) {}
  Name& operator=(Name other) noexcept {
    std::swap(entry_, other.entry_);
    return *this;
  }
  ~Name() { release(); }

  const std::string& str() const;
  operator const std::string&() const { return str(); }  // NOLINT: a name reads as its text

  friend bool operator==(const Name& a, const Name& b) {
    return a.entry_ == b.entry_ || a.str() == b.str();
  }
  friend bool operator==(const Name& a, const std::string& b) { return a.str() == b; }
  friend std::strong_ordering operator<=>(const Name& a, const Name& b) {
    return a.str().compare(b.str()) <=> 0;
  }
  friend std::strong_ordering operator<=>(const Name& a, const std::string& b) {
    return a.str().compare(b) <=> 0;
  }

 private:
  friend class NamePool;
  struct Entry {
    std::string text;
    uint32_t refs = 0;
    NamePool* pool = nullptr;
  };
  explicit Name(Entry* entry) : entry_(entry) { retain(); }
  void retain() const {
    if (entry_ != nullptr) ++entry_->refs;
  }
  void release();

  Entry* entry_ = nullptr;
};

class NamePool {
 public:
  NamePool() = default;
  NamePool(const NamePool&) = delete;
  NamePool& operator=(const NamePool&) = delete;

  // The pooled handle for `text` ("" is the empty handle, never pooled).
  Name intern(std::string_view text);
  std::size_t size() const { return entries_.size(); }

 private:
  friend class Name;
  void forget(const Name::Entry* entry) { entries_.erase(entry->text); }

  // Keyed by a view of the entry's own text, which never moves.
  std::unordered_map<std::string_view, std::unique_ptr<Name::Entry>> entries_;
};

inline const std::string& Name::str() const {
  static const std::string empty;
  return entry_ != nullptr ? entry_->text : empty;
}

inline void Name::release() {
  if (entry_ == nullptr || --entry_->refs > 0) return;
  entry_->pool->forget(entry_);
  entry_ = nullptr;
}

inline Name NamePool::intern(std::string_view text) {
  if (text.empty()) return Name{};
  auto it = entries_.find(text);
  if (it == entries_.end()) {
    auto entry = std::make_unique<Name::Entry>(Name::Entry{std::string(text), 0, this});
    const std::string_view key = entry->text;
    it = entries_.emplace(key, std::move(entry)).first;
  }
  return Name(it->second.get());
}

}  // namespace iridium::cluster
