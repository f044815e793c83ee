#include "app/identity.h"

#include <uuid/uuid.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace iridium::app {

std::string default_data_dir(const std::string& requested) {
  if (!requested.empty()) return requested;
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg != nullptr && *xdg != '\0') {
    return (std::filesystem::path(xdg) / "iridium").string();
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    return (std::filesystem::path(home) / ".local" / "share" / "iridium").string();
  }
  return (std::filesystem::temp_directory_path() / "iridium").string();
}

Result<std::string> resolve_data_dir(const std::string& requested) {
  const std::filesystem::path dir = default_data_dir(requested);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error{"cannot create data directory '" + dir.string() + "': " + ec.message()};
  return dir.string();
}

Status check_alias(const std::string& alias) {
  if (alias.empty() || alias.size() > 64) return Error{"node alias must be 1 to 64 characters"};
  for (char c : alias) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return Error{"node alias '" + alias + "' may only use letters, digits, '.', '_' and '-'"};
    }
  }
  return ok_status();
}

Result<std::string> load_or_create_alias(const std::string& data_dir) {
  const auto path = std::filesystem::path(data_dir) / "node_alias";
  if (std::ifstream in(path); in) {
    std::string alias;
    std::getline(in, alias);
    if (check_alias(alias)) return alias;
    return Error{"'" + path.string() + "' holds an invalid alias; remove it or pass --node-alias"};
  }
  uuid_t uuid;
  uuid_generate(uuid);
  char text[37];
  uuid_unparse_lower(uuid, text);
  std::string alias(text);
  const auto temp = path.string() + ".tmp";
  {
    std::ofstream out(temp);
    out << alias << "\n";
    if (!out) return Error{"cannot write '" + temp + "'"};
  }
  std::error_code ec;
  std::filesystem::rename(temp, path, ec);  // atomic: never a half-written alias
  if (ec) return Error{"cannot write '" + path.string() + "': " + ec.message()};
  return alias;
}

}  // namespace iridium::app
