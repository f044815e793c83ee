#include "vm/verifier.h"

#include "vm/opcodes.h"

namespace iridium::vm {
namespace {

std::string where(const Image& image, std::size_t offset, const OpInfo* info) {
  std::string text = "at code offset " + std::to_string(offset) + " (file byte " +
                     std::to_string(kReadOnlyStart + image.read_only.size() + offset) + ")";
  if (info != nullptr) text += ", " + std::string(info->mnemonic);
  return text;
}

}  // namespace

Status verify(const Image& image) {
  const std::size_t code_length = image.code.size();
  if (code_length % kInstructionSize != 0) {
    return Error{"code section of " + std::to_string(code_length) +
                 " bytes is not a whole number of 4-byte instructions"};
  }
  for (std::size_t offset = 0; offset < code_length; offset += kInstructionSize) {
    const uint8_t* bytes = &image.code[offset];
    const OpInfo* info = find_op(bytes[0]);
    if (info == nullptr) {
      return Error{where(image, offset, nullptr) + ": unknown opcode " + std::to_string(bytes[0])};
    }
    const auto registers = register_operands(info->form);
    for (int i = 0; i < 3; ++i) {
      if (registers[i] && bytes[1 + i] >= kRegisterCount) {
        return Error{where(image, offset, info) + ": register " + std::to_string(bytes[1 + i]) +
                     " out of range (0..31)"};
      }
    }
    // Which operand bytes must be zero padding.
    bool padding[3] = {false, false, false};
    const unsigned imm16 = static_cast<unsigned>(bytes[1]) << 8 | bytes[2];
    switch (info->form) {
      case Form::kNone:
        padding[0] = padding[1] = padding[2] = true;
        break;
      case Form::kR:
        padding[1] = padding[2] = true;
        break;
      case Form::kRR:
      case Form::kRShift:
        padding[2] = true;
        break;
      case Form::kRRR:
      case Form::kRImm16:
      case Form::kRUImm16:
        break;
      case Form::kCodeAddr:
      case Form::kCount:
      case Form::kDataAddr:
        padding[2] = true;
        break;
    }
    for (int i = 0; i < 3; ++i) {
      if (padding[i] && bytes[1 + i] != 0) {
        return Error{where(image, offset, info) + ": unused operand byte " + std::to_string(i + 1) +
                     " must be zero, found " + std::to_string(bytes[1 + i])};
      }
    }
    if (info->form == Form::kRShift && bytes[2] >= 32) {
      return Error{where(image, offset, info) + ": shift amount " + std::to_string(bytes[2]) +
                   " out of range (0..31)"};
    }
    if (info->form == Form::kCodeAddr) {
      if (imm16 % kInstructionSize != 0 || imm16 > code_length) {
        return Error{where(image, offset, info) + ": jump target " + std::to_string(imm16) +
                     (imm16 % kInstructionSize != 0 ? " is not a multiple of 4"
                                                    : " is past the end of the code (" +
                                                          std::to_string(code_length) + " bytes)")};
      }
    }
    if (info->form == Form::kDataAddr && imm16 >= image.read_only.size()) {
      return Error{where(image, offset, info) + ": read-only offset " + std::to_string(imm16) +
                   " is outside the read-only section (" + std::to_string(image.read_only.size()) +
                   " bytes)"};
    }
  }
  return ok_status();
}

}  // namespace iridium::vm
