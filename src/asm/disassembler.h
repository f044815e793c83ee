// Turns a verified image back into assembly that re-assembles to the same
// bytes.
#pragma once

#include <string>

#include "vm/image.h"

namespace iridium::assembler {

struct DisassemblyOptions {
  bool show_offsets = false;  // prefix each instruction with its code offset, as a comment
};

std::string disassemble(const vm::Image& image, const DisassemblyOptions& options = {});

}  // namespace iridium::assembler
