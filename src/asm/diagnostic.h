// One assembler error, located in the source.
#pragma once

#include <string>
#include <vector>

namespace iridium::assembler {

struct Diagnostic {
  std::string file;
  int line = 0;    // 1-based
  int column = 0;  // 1-based
  std::string message;

  // "FILE:LINE:COL: error: message"
  std::string format() const {
    return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": error: " + message;
  }
};

// Every diagnostic on its own line.
inline std::string format_all(const std::vector<Diagnostic>& diagnostics) {
  std::string text;
  for (const auto& d : diagnostics) text += d.format() + "\n";
  return text;
}

}  // namespace iridium::assembler
