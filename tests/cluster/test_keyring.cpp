// The keyring's rules (cluster/keyring.h): install, use, remove, and how a
// key is named. The node's file reading is exercised by the real-process
// suite (test_key_rotation.py); here only the rules, on values.
#include <catch2/catch.hpp>

#include "cluster/keyring.h"

using namespace iridium;
using namespace iridium::cluster;

namespace {

CurveKey new_key() {
  auto key = generate_curve_key();
  REQUIRE(key.ok());
  return *key;
}

std::vector<std::string> fingerprints(const Keyring& ring) {
  std::vector<std::string> out;
  for (const KeyInfo& k : ring.list()) out.push_back(k.fingerprint);
  return out;
}

}  // namespace

TEST_CASE("the starting key is the only key and the primary", "[keyring]") {
  const CurveKey k1 = new_key();
  Keyring ring(k1, "/keys/k1.key");
  REQUIRE(ring.list().size() == 1);
  CHECK(ring.list()[0].primary);
  CHECK(ring.list()[0].path == "/keys/k1.key");
  CHECK(ring.list()[0].fingerprint == k1.fingerprint());
  CHECK(ring.primary() == k1);
  CHECK(ring.public_keys() == std::vector<std::string>{k1.public_z85});
}

TEST_CASE("install adds a key after the others, and installing it again changes nothing",
          "[keyring]") {
  const CurveKey k1 = new_key(), k2 = new_key();
  Keyring ring(k1, "k1.key");
  auto first = ring.install(k2, "k2.key");
  REQUIRE(first.ok());
  CHECK_FALSE(first->already);
  CHECK_FALSE(first->key.primary);
  CHECK(first->key.fingerprint == k2.fingerprint());
  CHECK(ring.public_keys() == std::vector<std::string>{k1.public_z85, k2.public_z85});
  // The same key again, from another path, or the primary itself.
  auto again = ring.install(k2, "copy-of-k2.key");
  REQUIRE(again.ok());
  CHECK(again->already);
  CHECK(again->key.path == "k2.key");
  auto primary_again = ring.install(k1, "k1-copy.key");
  REQUIRE(primary_again.ok());
  CHECK(primary_again->already);
  CHECK(primary_again->key.primary);
  CHECK(ring.list().size() == 2);
}

TEST_CASE("a full keyring refuses another key", "[keyring]") {
  Keyring ring(new_key(), "0.key");
  for (std::size_t i = 1; i < Keyring::kMaxKeys; ++i) {
    REQUIRE(ring.install(new_key(), std::to_string(i) + ".key").ok());
  }
  auto refused = ring.install(new_key(), "one-too-many.key");
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.kind() == ErrorKind::kRefused);
  CHECK(refused.message().find("remove one first") != std::string::npos);
  CHECK(ring.list().size() == Keyring::kMaxKeys);
}

TEST_CASE("use makes an installed key primary, and the old primary is tried second", "[keyring]") {
  const CurveKey k1 = new_key(), k2 = new_key(), k3 = new_key();
  Keyring ring(k1, "k1.key");
  REQUIRE(ring.install(k2, "k2.key").ok());
  REQUIRE(ring.install(k3, "k3.key").ok());
  auto used = ring.use("k3.key", std::nullopt);
  REQUIRE(used.ok());
  CHECK_FALSE(used->already);
  CHECK(used->key.primary);
  CHECK(ring.primary() == k3);
  CHECK(fingerprints(ring) ==
        std::vector<std::string>{k3.fingerprint(), k1.fingerprint(), k2.fingerprint()});
  CHECK(ring.list()[0].primary);
  CHECK_FALSE(ring.list()[1].primary);
  // Already the primary: nothing changes.
  auto again = ring.use(k3.fingerprint(), std::nullopt);
  REQUIRE(again.ok());
  CHECK(again->already);
  CHECK(ring.primary() == k3);
}

TEST_CASE("use of a key that is not installed is refused and changes nothing", "[keyring]") {
  const CurveKey k1 = new_key(), stranger = new_key();
  Keyring ring(k1, "k1.key");
  auto by_name = ring.use("k2.key", std::nullopt);
  REQUIRE_FALSE(by_name.ok());
  CHECK(by_name.kind() == ErrorKind::kInvalid);
  CHECK(by_name.message().find("no installed key is named 'k2.key'") != std::string::npos);
  // A readable key file whose key is not installed says so, and how.
  auto by_file = ring.use("stranger.key", stranger);
  REQUIRE_FALSE(by_file.ok());
  CHECK(by_file.kind() == ErrorKind::kInvalid);
  CHECK(by_file.message().find("is not installed; install it first with !cluster_keys install "
                               "stranger.key") != std::string::npos);
  CHECK(ring.primary() == k1);
  CHECK(ring.list().size() == 1);
}

TEST_CASE("a key is named by its path, fingerprint, public key or another copy of its file",
          "[keyring]") {
  const CurveKey k1 = new_key(), k2 = new_key();
  Keyring ring(k1, "/run/secrets/cluster_key");
  REQUIRE(ring.install(k2, "/tmp/k2.key").ok());
  CHECK(ring.names_a_key("/tmp/k2.key"));
  CHECK(ring.names_a_key(k2.fingerprint()));
  CHECK(ring.names_a_key(k2.public_z85));
  CHECK_FALSE(ring.names_a_key("k2.key"));  // not the path it was installed from
  CHECK_FALSE(ring.names_a_key(""));
  // Another path holding the same key names it through the file's content.
  auto used = ring.use("elsewhere/k2.key", k2);
  REQUIRE(used.ok());
  CHECK(used->key.path == "/tmp/k2.key");
  auto removed = ring.remove(k1.fingerprint(), std::nullopt);
  REQUIRE(removed.ok());
  CHECK(removed->key.path == "/run/secrets/cluster_key");
}

TEST_CASE("remove drops a key, never the primary", "[keyring]") {
  const CurveKey k1 = new_key(), k2 = new_key();
  Keyring ring(k1, "k1.key");
  REQUIRE(ring.install(k2, "k2.key").ok());

  auto primary = ring.remove("k1.key", std::nullopt);
  REQUIRE_FALSE(primary.ok());
  CHECK(primary.kind() == ErrorKind::kRefused);
  CHECK(primary.message().find("primary key and cannot be removed") != std::string::npos);
  CHECK(ring.list().size() == 2);

  REQUIRE(ring.use("k2.key", std::nullopt).ok());
  auto removed = ring.remove("k1.key", std::nullopt);
  REQUIRE(removed.ok());
  CHECK_FALSE(removed->already);
  CHECK(removed->key.fingerprint == k1.fingerprint());
  CHECK(ring.public_keys() == std::vector<std::string>{k2.public_z85});

  auto gone = ring.remove("k1.key", std::nullopt);
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.kind() == ErrorKind::kInvalid);
}
