#include "asm/disassembler.h"

#include <cctype>
#include <cstdio>
#include <map>
#include <set>

#include "vm/opcodes.h"

namespace iridium::assembler {
namespace {

using vm::Form;

std::string code_label(uint32_t offset) {
  return "L" + std::to_string(offset);
}
std::string data_label(uint32_t offset) {
  return "D" + std::to_string(offset);
}

std::string quote(const uint8_t* bytes, std::size_t length) {
  std::string text = "'";
  for (std::size_t i = 0; i < length; ++i) {
    const auto c = static_cast<char>(bytes[i]);
    switch (c) {
      case '\n':
        text += "\\n";
        break;
      case '\t':
        text += "\\t";
        break;
      case '\\':
        text += "\\\\";
        break;
      case '\'':
        text += "\\'";
        break;
      default:
        if (std::isprint(static_cast<unsigned char>(c))) {
          text += c;
        } else {
          char hex[5];
          std::snprintf(hex, sizeof hex, "\\x%02x", bytes[i]);
          text += hex;
        }
    }
  }
  return text + "'";
}

}  // namespace

std::string disassemble(const vm::Image& image, const DisassemblyOptions& options) {
  const auto& code = image.code;
  const auto& ro = image.read_only;
  std::set<uint32_t> code_targets;
  std::set<uint32_t> string_starts;
  for (std::size_t at = 0; at + 4 <= code.size(); at += 4) {
    const vm::OpInfo* info = vm::find_op(code[at]);
    if (info == nullptr) continue;
    const uint32_t imm = static_cast<uint32_t>(code[at + 1]) << 8 | code[at + 2];
    if (info->form == Form::kCodeAddr) code_targets.insert(imm);
    if (info->form == Form::kDataAddr && imm < ro.size()) string_starts.insert(imm);
  }

  std::string out;
  // Read-only data. Strings start where PRTS points; other bytes are words.
  std::set<uint32_t> labelled_strings;
  if (!ro.empty()) {
    out += ".data\n";
    std::size_t at = 0;
    while (at < ro.size()) {
      const auto offset = static_cast<uint32_t>(at);
      if (string_starts.contains(offset)) {
        std::size_t end = at;
        while (end < ro.size() && ro[end] != 0) ++end;
        if (end < ro.size()) {
          labelled_strings.insert(offset);
          out += data_label(offset) + ": .asciiz " + quote(&ro[at], end - at) + "\n";
          at = end + 1;
          continue;
        }
      }
      // A word only where no string starts inside it.
      bool word = at + 4 <= ro.size();
      for (std::size_t k = 1; k < 4 && word; ++k)
        word = !string_starts.contains(static_cast<uint32_t>(at + k));
      if (word) {
        const uint32_t v = static_cast<uint32_t>(ro[at]) | static_cast<uint32_t>(ro[at + 1]) << 8 |
                           static_cast<uint32_t>(ro[at + 2]) << 16 |
                           static_cast<uint32_t>(ro[at + 3]) << 24;
        out += "    .integer #" + std::to_string(static_cast<int32_t>(v)) + "\n";
        at += 4;
      } else {
        out += "    .byte #" + std::to_string(ro[at]) + "\n";
        at += 1;
      }
    }
    out += ".code\n";
  }

  for (std::size_t at = 0; at + 4 <= code.size(); at += 4) {
    const auto offset = static_cast<uint32_t>(at);
    const uint8_t* b = &code[at];
    const vm::OpInfo* info = vm::find_op(b[0]);
    std::string label = code_targets.contains(offset) ? code_label(offset) + ":" : "";
    std::string line = label;
    line.resize(std::max<std::size_t>(line.size() + 1, 8), ' ');
    if (info == nullptr) {
      line += ".byte #" + std::to_string(b[0]) + " ; not an opcode";
    } else {
      line += vm::lower_mnemonic(*info);
      const auto reg = [](uint8_t r) { return " $" + std::to_string(r); };
      const uint16_t imm16 = static_cast<uint16_t>(b[2] << 8 | b[3]);
      const uint16_t addr16 = static_cast<uint16_t>(b[1] << 8 | b[2]);
      switch (info->form) {
        case Form::kNone:
          break;
        case Form::kR:
          line += reg(b[1]);
          break;
        case Form::kRR:
          line += reg(b[1]) + reg(b[2]);
          break;
        case Form::kRRR:
          line += reg(b[1]) + reg(b[2]) + reg(b[3]);
          break;
        case Form::kRImm16:
          line += reg(b[1]) + " #" + std::to_string(static_cast<int16_t>(imm16));
          break;
        case Form::kRUImm16:
          line += reg(b[1]) + " #" + std::to_string(imm16);
          break;
        case Form::kRShift:
          line += reg(b[1]) + " #" + std::to_string(b[2]);
          break;
        case Form::kCodeAddr:
          line += " @" + code_label(addr16);
          break;
        case Form::kCount:
          line += " #" + std::to_string(addr16);
          break;
        case Form::kDataAddr:
          line += labelled_strings.contains(addr16) ? " @" + data_label(addr16)
                                                    : " #" + std::to_string(addr16);
          break;
      }
    }
    if (options.show_offsets) {
      line.resize(std::max<std::size_t>(line.size() + 1, 32), ' ');
      line += "; " + std::to_string(offset);
    }
    out += line + "\n";
  }
  if (code_targets.contains(static_cast<uint32_t>(code.size()))) {
    out += code_label(static_cast<uint32_t>(code.size())) + ":\n";
  }
  return out;
}

}  // namespace iridium::assembler
