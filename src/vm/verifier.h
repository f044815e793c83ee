// Static checks on an image, done once at load so the interpreter loop needs
// no per-instruction checks on opcodes, registers, shifts or static targets.
#pragma once

#include "common/result.h"
#include "vm/image.h"

namespace iridium::vm {

// Checks whole instructions, known opcodes, register numbers, shift amounts,
// static code targets, read-only offsets and zero padding. The error names
// the instruction's code offset and its byte offset in the file.
Status verify(const Image& image);

}  // namespace iridium::vm
