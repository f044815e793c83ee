#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <string>

#include "common/curve_key.h"

using iridium::CurveKey;
using iridium::ErrorKind;

namespace {

// A fresh path under /tmp, removed when the test ends.
struct TempPath {
  std::string path;
  TempPath() {
    char name[] = "/tmp/iridium-key-XXXXXX";
    const int fd = mkstemp(name);
    REQUIRE(fd >= 0);
    close(fd);
    unlink(name);
    path = name;
  }
  ~TempPath() { unlink(path.c_str()); }
};

CurveKey new_key() {
  auto key = iridium::generate_curve_key();
  REQUIRE(key.ok());
  return *key;
}

}  // namespace

TEST_CASE("this libzmq has CURVE", "[curve_key]") {
  REQUIRE(iridium::curve_supported());
}

TEST_CASE("a generated key is two different 40-character Z85 halves", "[curve_key]") {
  const CurveKey key = new_key();
  CHECK(key.public_z85.size() == CurveKey::kZ85Length);
  CHECK(key.secret_z85.size() == CurveKey::kZ85Length);
  CHECK(key.public_z85 != key.secret_z85);
  CHECK(new_key() != key);
  CHECK(key.fingerprint() == key.public_z85.substr(0, 8));
}

TEST_CASE("a formatted key parses back to itself", "[curve_key]") {
  const CurveKey key = new_key();
  auto parsed = iridium::parse_curve_key(iridium::format_curve_key(key));
  REQUIRE(parsed.ok());
  CHECK(*parsed == key);
}

TEST_CASE("the public half is derived when only the secret is given", "[curve_key]") {
  const CurveKey key = new_key();
  auto parsed = iridium::parse_curve_key("secret-key = " + key.secret_z85 + "\r\n");
  REQUIRE(parsed.ok());
  CHECK(parsed->public_z85 == key.public_z85);
}

TEST_CASE("bad key text is refused with the reason", "[curve_key]") {
  const CurveKey key = new_key();
  const CurveKey other = new_key();
  struct Case {
    std::string text;
    std::string reason;
  };
  const Case cases[] = {
      {"", "no secret-key"},
      {"# only a comment\n", "no secret-key"},
      {"public-key = \"" + key.public_z85 + "\"\n", "no secret-key"},
      {"secret-key\n", "line 1: expected name"},
      {"colour = \"blue\"\n", "unknown name 'colour'"},
      {"secret-key = \"short\"\n", "not a 40-character Z85 key"},
      {"secret-key = \"" + key.secret_z85.substr(0, 39) + "\x01\"\n", "not a 40-character Z85"},
      {"public-key = \"" + other.public_z85 + "\"\nsecret-key = \"" + key.secret_z85 + "\"\n",
       "public-key does not belong to secret-key"},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    auto parsed = iridium::parse_curve_key(c.text);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.kind() == ErrorKind::kInvalid);
    CHECK_THAT(parsed.message(), Catch::Contains(c.reason));
  }
}

TEST_CASE("a key file is written 0600, read back, and never overwritten", "[curve_key]") {
  TempPath file;
  const CurveKey key = new_key();
  REQUIRE(iridium::write_curve_key_file(file.path, key).ok());

  struct stat st {};
  REQUIRE(stat(file.path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK_FALSE(iridium::key_file_readable_by_others(file.path));

  auto read = iridium::read_curve_key_file(file.path);
  REQUIRE(read.ok());
  CHECK(*read == key);

  auto again = iridium::write_curve_key_file(file.path, new_key());
  REQUIRE_FALSE(again.ok());
  CHECK(again.kind() == ErrorKind::kRefused);
  CHECK(*iridium::read_curve_key_file(file.path) == key);

  chmod(file.path.c_str(), 0644);
  CHECK(iridium::key_file_readable_by_others(file.path));
}

TEST_CASE("reading a missing or broken key file says which file and why", "[curve_key]") {
  TempPath file;
  auto missing = iridium::read_curve_key_file(file.path);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.kind() == ErrorKind::kIo);
  CHECK_THAT(missing.message(), Catch::StartsWith(file.path + ": "));

  std::ofstream(file.path) << std::string(5000, 'x');
  auto huge = iridium::read_curve_key_file(file.path);
  REQUIRE_FALSE(huge.ok());
  CHECK_THAT(huge.message(), Catch::Contains("too large"));
}
