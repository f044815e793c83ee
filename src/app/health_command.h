// `iridium health`: the container's health check. Reads the node's health
// file (common/health_file.h) and says whether every loop that runs stamped
// it recently. No socket, no ZeroMQ context, no key: a process start and a
// read of a few hundred bytes.
#pragma once

#include <string>

namespace iridium::app {

struct HealthOptions {
  std::string file;            // "" = <data dir>/run/health.json
  std::string data_root_dir;   // the node's --data-root-dir ("" = the default one)
  double max_age_seconds = 3;  // a stamp older than this is stale
};

// 0 and no output when every stamp is fresh; else 1 and one line on stderr
// saying what is stale or missing and since when.
int check_health(const HealthOptions& options);

}  // namespace iridium::app
