#include "app/keygen_command.h"

#include <spdlog/spdlog.h>

#include <iostream>

#include "app/run_command.h"
#include "common/curve_key.h"

namespace iridium::app {

int write_new_key(const std::string& path) {
  if (!curve_supported()) {
    std::cerr << "iridium: this libzmq has no CURVE support, so it cannot make keys\n";
    return kExitRuntimeError;
  }
  auto key = generate_curve_key();
  if (!key) {
    std::cerr << "iridium: " << key.message() << "\n";
    return kExitRuntimeError;
  }
  if (auto written = write_curve_key_file(path, *key); !written) {
    std::cerr << "iridium: " << written.message();
    if (written.kind() == ErrorKind::kRefused) std::cerr << " (a key is never overwritten)";
    std::cerr << "\n";
    return kExitUsage;
  }
  std::cout << "wrote a new cluster key to " << path << " (fingerprint " << key->fingerprint()
            << ", mode 0600)\n";
  return kExitOk;
}

std::optional<CurveKey> read_key_option(std::string_view flag, const std::string& path) {
  if (!curve_supported()) {
    std::cerr << "iridium: " << flag << ": this libzmq has no CURVE support\n";
    return std::nullopt;
  }
  auto key = read_curve_key_file(path);
  if (!key) {
    std::cerr << "iridium: " << flag << ": " << key.message()
              << " (make a key with 'iridium keygen FILE')\n";
    return std::nullopt;
  }
  if (key_file_readable_by_others(path)) {
    spdlog::warn("the key file {} may be read by other users: chmod 600 {}", path, path);
  }
  return *key;
}

}  // namespace iridium::app
