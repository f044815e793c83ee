// Splits one line of Iridium assembly into tokens.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace iridium::assembler {

enum class TokenKind {
  kLabelDef,   // name:
  kWord,       // mnemonic
  kDirective,  // .name
  kRegister,   // $n
  kNumber,     // #n, #0x1F, #1.5
  kLabelRef,   // @name
  kString,     // 'text', escapes already decoded
  kInvalid,    // anything else; text holds the offending characters
};

struct Token {
  TokenKind kind;
  std::string text;  // the name, digits or decoded string (without sigils)
  int column;        // 1-based
};

struct LexError {
  int column;
  std::string message;
};

struct LexedLine {
  std::vector<Token> tokens;
  std::vector<LexError> errors;
};

LexedLine lex_line(std::string_view line);

bool is_identifier(std::string_view text);

}  // namespace iridium::assembler
