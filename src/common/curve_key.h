// A CURVE key pair (Curve25519, as libzmq's CURVE mechanism uses it) and the
// key file that holds one. A cluster key is one such pair shared by every
// member: holding the secret half is what admits a process to the cluster.
//
// The file is text, one `name = "Z85"` per line, `#` comments:
//
//   # Iridium cluster key: whoever holds this file can join the cluster.
//   public-key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
//   secret-key = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"
//
// Reading checks that the secret half really yields the public half, so a
// truncated or hand-edited file is an error, not a silent mismatch.
// Plain functions and values: safe to use from any thread.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace iridium {

struct CurveKey {
  static constexpr std::size_t kZ85Length = 40;  // 32 bytes in Z85

  std::string public_z85;
  std::string secret_z85;

  // Names the key in logs and listings without revealing it: the first
  // characters of the public half.
  std::string fingerprint() const { return public_z85.substr(0, 8); }
  bool operator==(const CurveKey&) const = default;
};

// True when this libzmq was built with CURVE (Debian's is, with libsodium).
bool curve_supported();

Result<CurveKey> generate_curve_key();

std::string format_curve_key(const CurveKey& key);
Result<CurveKey> parse_curve_key(std::string_view text);

// Writes a new key file with mode 0600; never replaces an existing file.
Status write_curve_key_file(const std::string& path, const CurveKey& key);
// Reads and checks a key file. kIo when it cannot be read, kInvalid when it
// does not hold a matching pair.
Result<CurveKey> read_curve_key_file(const std::string& path);
// True when group or others may read the file (the caller decides whether
// to warn: a bind-mounted secret may legitimately be 0444).
bool key_file_readable_by_others(const std::string& path);

}  // namespace iridium
