// `iridium keygen FILE`: makes a new cluster key file (see common/curve_key.h).
#pragma once

#include <string>

namespace iridium::app {

int write_new_key(const std::string& path);

}  // namespace iridium::app
