// Host names and addresses as the command line gives them.
#pragma once

#include <string>

namespace iridium {

// True for an address only this machine can reach: localhost, 127.0.0.0/8
// or ::1. Anything else (0.0.0.0 included) may be reachable from outside.
inline bool is_loopback_host(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

}  // namespace iridium
