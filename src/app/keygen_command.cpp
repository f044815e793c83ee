#include "app/keygen_command.h"

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

}  // namespace iridium::app
