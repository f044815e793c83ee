#include "shell/key_format.h"

#include <algorithm>

namespace iridium::shell {

std::string keys_table(const std::vector<ClusterKey>& keys) {
  std::size_t width = std::string("KEY").size();
  for (const ClusterKey& k : keys) width = std::max(width, k.fingerprint.size());
  auto row = [&](const std::string& key, const std::string& primary, const std::string& path) {
    std::string line = key + std::string(width - key.size() + 2, ' ') + primary;
    if (!path.empty()) line += std::string(9 - primary.size(), ' ') + path;
    return line + "\n";
  };
  std::string text = row("KEY", "PRIMARY", "FILE");
  for (const ClusterKey& k : keys) text += row(k.fingerprint, k.primary ? "yes" : "no", k.path);
  return text;
}

nlohmann::json keys_json(const std::vector<ClusterKey>& keys) {
  nlohmann::json list = nlohmann::json::array();
  for (const ClusterKey& k : keys) {
    list.push_back({{"fingerprint", k.fingerprint}, {"primary", k.primary}, {"path", k.path}});
  }
  return nlohmann::json{{"keys", list}};
}

}  // namespace iridium::shell
