// Loads a program from a file: assembly source (.iasm) or an image (.pie),
// told apart by the image magic, not by the file name.
#pragma once

#include <string>

#include "common/result.h"
#include "vm/image.h"

namespace iridium::assembler {

// On an assembly error the message holds every diagnostic, one per line.
Result<vm::Image> load_program_file(const std::string& path);

}  // namespace iridium::assembler
