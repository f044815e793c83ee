// One assembler error, located in the source, with what a hint needs.
#pragma once

#include <string>
#include <vector>

namespace iridium::assembler {

// What went wrong, for callers that add hints of their own (the shell tells
// `help` from a mistyped mnemonic).
enum class DiagnosticKind {
  kOther,
  kUnknownInstruction,  // `token` is the mnemonic as written
  kOperandCount,        // wrong number of operands; `expected` holds the form
  kOperandKind,         // an operand of the wrong kind; `token` is it, `expected` the form
};

struct Diagnostic {
  std::string file;
  int line = 0;    // 1-based
  int column = 0;  // 1-based
  std::string message;
  DiagnosticKind kind = DiagnosticKind::kOther;
  std::string token;     // the offending token as written, when there is one
  std::string expected;  // the instruction with the operands it takes, e.g. "load $REG #IMM|@LABEL"
  std::string suggestion;  // what `token` was likely meant to be, e.g. "#42" or "add"

  // "expected: FORM (did you mean SUGGESTION?)", either part alone, or "".
  std::string hint() const {
    std::string text;
    if (!expected.empty()) text = "expected: " + expected;
    if (!suggestion.empty()) {
      text +=
          text.empty() ? "did you mean " + suggestion + "?" : " (did you mean " + suggestion + "?)";
    }
    return text;
  }

  // "FILE:LINE:COL: error: message", then "; hint" when there is one.
  std::string format() const {
    std::string text =
        file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": error: " + message;
    if (std::string h = hint(); !h.empty()) text += "; " + h;
    return text;
  }
};

// Every diagnostic on its own line.
inline std::string format_all(const std::vector<Diagnostic>& diagnostics) {
  std::string text;
  for (const auto& d : diagnostics) text += d.format() + "\n";
  return text;
}

}  // namespace iridium::assembler
