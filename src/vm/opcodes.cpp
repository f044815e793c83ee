#include "vm/opcodes.h"

#include <cctype>

namespace iridium::vm {

const OpInfo* find_op(std::string_view mnemonic) {
  for (const OpInfo& info : all_ops()) {
    if (info.mnemonic.size() != mnemonic.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < mnemonic.size() && same; ++i) {
      same = std::toupper(static_cast<unsigned char>(mnemonic[i])) == info.mnemonic[i];
    }
    if (same) return &info;
  }
  return nullptr;
}

std::string lower_mnemonic(const OpInfo& info) {
  std::string lower(info.mnemonic);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower;
}

}  // namespace iridium::vm
