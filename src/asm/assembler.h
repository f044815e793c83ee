// The two-pass Iridium assembler.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "asm/diagnostic.h"
#include "vm/image.h"
#include "vm/opcodes.h"

namespace iridium::assembler {

enum class SymbolKind { kCode, kData };

struct Symbol {
  SymbolKind kind;
  uint32_t value;  // code offset or read-only offset
  int line = 0;    // where it was defined (0: outside this source)
};

using SymbolTable = std::map<std::string, Symbol, std::less<>>;

// Where new code and data will sit. A shell assembles each line against the
// program it already has: existing labels stay visible, new code and data are
// appended after what is there.
struct Context {
  const SymbolTable* symbols = nullptr;
  uint32_t code_base = 0;
  uint32_t data_base = 0;
};

struct Assembly {
  vm::Image image;      // only the new code and read-only bytes
  SymbolTable symbols;  // only the labels this source defined
  std::vector<Diagnostic> errors;

  bool ok() const { return errors.empty(); }
};

// Never throws, whatever the input; every error found is in `errors`.
Assembly assemble(std::string_view source, std::string_view file = "<input>",
                  const Context& context = {});

// How an instruction is written, from its form in the opcode table, in lower
// case: "load $REG #IMM|@LABEL", "shl $REG [#0..31]", "hlt".
std::string instruction_syntax(const vm::OpInfo& op);

}  // namespace iridium::assembler
