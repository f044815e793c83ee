// How `!cluster_members` shows a snapshot: a table for people, JSON for scripts.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "cluster/node.h"

namespace iridium::cluster {

// {"self": {"alias","host","port","instance"}, "started": bool,
//  "members": [{"alias","host","port","state","last_heard_ms"}], "dropped_frames": N,
//  "counters": {"frames_sent", "frames_received", "frames_dropped", "joins", "leaves",
//               "suspicions", "deaths", "recoveries", "refused"}}
nlohmann::json members_json(const Snapshot& snapshot);
std::string members_table(const Snapshot& snapshot);

}  // namespace iridium::cluster
