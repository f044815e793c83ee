// `iridium keygen FILE`: makes a new cluster key file (see common/curve_key.h),
// and the reading of a key file named by a flag (--cluster-key and friends).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/curve_key.h"

namespace iridium::app {

int write_new_key(const std::string& path);

// Reads the key file `path` given to `flag`. On failure prints why to stderr
// and returns nothing (the caller exits 2 before anything binds); warns when
// the file is readable by group or others.
std::optional<CurveKey> read_key_option(std::string_view flag, const std::string& path);

}  // namespace iridium::app
