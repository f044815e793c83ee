#include "cluster/members_format.h"

#include <cstdio>

namespace iridium::cluster {

nlohmann::json members_json(const Snapshot& s) {
  nlohmann::json members = nlohmann::json::array();
  for (const MemberInfo& m : s.members) {
    members.push_back({{"alias", m.alias},
                       {"host", m.host},
                       {"port", m.port},
                       {"state", m.state},
                       {"last_heard_ms", m.last_heard_ms}});
  }
  return {{"self",
           {{"alias", s.self.alias},
            {"host", s.self.host},
            {"port", s.self.port},
            {"instance", s.instance},
            {"cluster", s.cluster}}},
          {"started", s.started},
          {"members", members},
          {"dropped_frames", s.dropped_frames},
          {"counters",
           {{"frames_sent", s.counters.frames_sent},
            {"frames_received", s.counters.frames_received},
            {"frames_dropped", s.counters.frames_dropped},
            {"joins", s.counters.joins},
            {"leaves", s.counters.leaves},
            {"suspicions", s.counters.suspicions},
            {"deaths", s.counters.deaths},
            {"recoveries", s.counters.recoveries},
            {"refused", s.counters.refused},
            {"dropped_other_cluster", s.counters.dropped_other_cluster}}}};
}

std::string members_table(const Snapshot& s) {
  if (!s.started) {
    return "This node (" + s.self.alias +
           ") is not in a cluster: use !start_cluster or !join_cluster HOST PORT.\n";
  }
  std::string text = "Cluster members known to " + s.self.alias + " (" + s.self.host + ":" +
                     std::to_string(s.self.port) + "): " + std::to_string(s.members.size()) +
                     " other" + (s.members.size() == 1 ? "" : "s") + "\n";
  if (s.members.empty()) return text;
  std::size_t alias_width = 5;
  std::size_t address_width = 7;
  for (const MemberInfo& m : s.members) {
    alias_width = std::max(alias_width, m.alias.size());
    address_width = std::max(address_width, m.host.size() + 6);
  }
  char line[512];
  std::snprintf(line, sizeof line, "  %-*s  %-*s  %-7s  %s\n", static_cast<int>(alias_width),
                "ALIAS", static_cast<int>(address_width), "ADDRESS", "STATE", "LAST HEARD");
  text += line;
  for (const MemberInfo& m : s.members) {
    const std::string address = m.host + ":" + std::to_string(m.port);
    std::snprintf(line, sizeof line, "  %-*s  %-*s  %-7s  %.1f s ago\n",
                  static_cast<int>(alias_width), m.alias.c_str(), static_cast<int>(address_width),
                  address.c_str(), m.state.c_str(), static_cast<double>(m.last_heard_ms) / 1000.0);
    text += line;
  }
  return text;
}

}  // namespace iridium::cluster
