// The cluster keys a secure node holds, for rotation without downtime (in
// the spirit of Serf's keyring; docs/security.md, "Rotate a key"):
//
//   install FILE   the key is accepted from peers from now on (ZAP allow);
//   use KEY        the key becomes the primary: the listener serves with it
//                  and this node's own connections present it;
//   remove KEY     the key is no longer accepted; never the primary.
//
// A key is named by the path it was installed from, by its fingerprint (the
// first 8 characters of its public half), by its whole public key, or by a
// key file holding it. The order is the primary first, then the others in
// the order they were installed: the order in which a connection tries a
// listener's key when its handshake fails (transport.h).
//
// Pure rules over values: no file is read here (the node reads them). Not
// thread-safe; node.h says which mutex guards the node's keyring.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/curve_key.h"
#include "common/result.h"

namespace iridium::cluster {

struct KeyInfo {
  std::string fingerprint;  // CurveKey::fingerprint(): names the key without revealing it
  std::string public_z85;
  std::string path;  // the file it was installed (or started) from
  bool primary = false;
};

// What install, use or remove did.
struct KeyChange {
  KeyInfo key;
  bool already = false;  // nothing changed: installed already, or the primary already
};

class Keyring {
 public:
  static constexpr std::size_t kMaxKeys = 8;

  // The key the node started with (--cluster-key), the first primary.
  Keyring(CurveKey primary, std::string path);

  // Adds a key. Installing a key that is there already changes nothing
  // (`already`), so a cluster-wide rollout may be repeated. kRefused when
  // the ring is full.
  Result<KeyChange> install(const CurveKey& key, const std::string& path);
  // Makes an installed key the primary. kInvalid when `name` names no
  // installed key. `file_key`: what the file `name` holds, if it is one.
  Result<KeyChange> use(std::string_view name, const std::optional<CurveKey>& file_key);
  // Drops an installed key; kRefused for the primary.
  Result<KeyChange> remove(std::string_view name, const std::optional<CurveKey>& file_key);

  // Primary first, then in the order installed.
  std::vector<KeyInfo> list() const;
  std::vector<std::string> public_keys() const;  // same order
  const CurveKey& primary() const { return entries_.front().key; }
  // Whether `name` names an installed key by path, fingerprint or public key.
  bool names_a_key(std::string_view name) const;

 private:
  struct Entry {
    CurveKey key;
    std::string path;
  };
  KeyInfo info(const Entry& entry) const;
  Result<std::size_t> find(std::string_view name, const std::optional<CurveKey>& file_key) const;
  std::optional<std::size_t> find_by_name(std::string_view name) const;

  std::vector<Entry> entries_;  // entries_[0] is the primary; never empty
};

}  // namespace iridium::cluster
