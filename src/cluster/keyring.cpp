#include "cluster/keyring.h"

#include <algorithm>

namespace iridium::cluster {

Keyring::Keyring(CurveKey primary, std::string path) {
  entries_.push_back(Entry{std::move(primary), std::move(path)});
}

KeyInfo Keyring::info(const Entry& entry) const {
  return KeyInfo{entry.key.fingerprint(), entry.key.public_z85, entry.path,
                 &entry == &entries_.front()};
}

std::optional<std::size_t> Keyring::find_by_name(std::string_view name) const {
  if (name.empty()) return std::nullopt;
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    const Entry& e = entries_[i];
    if (e.path == name || e.key.fingerprint() == name || e.key.public_z85 == name) return i;
  }
  return std::nullopt;
}

bool Keyring::names_a_key(std::string_view name) const {
  return find_by_name(name).has_value();
}

Result<std::size_t> Keyring::find(std::string_view name,
                                  const std::optional<CurveKey>& file_key) const {
  if (auto i = find_by_name(name)) return *i;
  if (file_key) {
    for (std::size_t i = 0; i < entries_.size(); ++i) {
      if (entries_[i].key.public_z85 == file_key->public_z85) return i;
    }
    return Error{"the key in " + std::string(name) + " (" + file_key->fingerprint() +
                     ") is not installed; install it first with !cluster_keys install " +
                     std::string(name),
                 ErrorKind::kInvalid};
  }
  return Error{"no installed key is named '" + std::string(name) +
                   "' (name one by its file, as installed, or its fingerprint: !cluster_keys list)",
               ErrorKind::kInvalid};
}

Result<KeyChange> Keyring::install(const CurveKey& key, const std::string& path) {
  for (const Entry& e : entries_) {
    if (e.key.public_z85 == key.public_z85) return KeyChange{info(e), true};
  }
  if (entries_.size() >= kMaxKeys) {
    return Error{"this node holds " + std::to_string(kMaxKeys) +
                     " keys already; remove one first (!cluster_keys remove KEY)",
                 ErrorKind::kRefused};
  }
  entries_.push_back(Entry{key, path});
  return KeyChange{info(entries_.back()), false};
}

Result<KeyChange> Keyring::use(std::string_view name, const std::optional<CurveKey>& file_key) {
  auto found = find(name, file_key);
  if (!found) return found.error();
  if (*found == 0) return KeyChange{info(entries_.front()), true};
  // To the front; the old primary becomes the first of the others, so it is
  // the second key a connection tries (the one peers not yet switched use).
  std::rotate(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(*found),
              entries_.begin() + static_cast<std::ptrdiff_t>(*found) + 1);
  return KeyChange{info(entries_.front()), false};
}

Result<KeyChange> Keyring::remove(std::string_view name, const std::optional<CurveKey>& file_key) {
  auto found = find(name, file_key);
  if (!found) return found.error();
  if (*found == 0) {
    return Error{"key " + entries_.front().key.fingerprint() +
                     " is this node's primary key and cannot be removed; make another key "
                     "primary first (!cluster_keys use KEY)",
                 ErrorKind::kRefused};
  }
  KeyInfo removed = info(entries_[*found]);
  entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(*found));
  return KeyChange{std::move(removed), false};
}

std::vector<KeyInfo> Keyring::list() const {
  std::vector<KeyInfo> out;
  for (const Entry& e : entries_) out.push_back(info(e));
  return out;
}

std::vector<std::string> Keyring::public_keys() const {
  std::vector<std::string> out;
  for (const Entry& e : entries_) out.push_back(e.key.public_z85);
  return out;
}

}  // namespace iridium::cluster
