#include "asm/lexer.h"

#include <cctype>

namespace iridium::assembler {
namespace {

bool ident_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_';
}
bool ident_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}
bool separator(char c) {
  return c == ' ' || c == '\t' || c == ',' || c == '\r' || c == ';';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool is_identifier(std::string_view text) {
  if (text.empty() || !ident_start(text[0])) return false;
  for (char c : text) {
    if (!ident_char(c)) return false;
  }
  return true;
}

LexedLine lex_line(std::string_view line) {
  LexedLine out;
  std::size_t i = 0;
  auto column = [&](std::size_t at) { return static_cast<int>(at) + 1; };
  while (i < line.size()) {
    const char c = line[i];
    if (c == ';') break;  // comment to end of line
    if (separator(c)) {
      ++i;
      continue;
    }
    const std::size_t start = i;
    if (c == '\'') {
      std::string text;
      ++i;
      bool closed = false;
      while (i < line.size()) {
        char ch = line[i];
        if (ch == '\'') {
          closed = true;
          ++i;
          break;
        }
        if (ch == '\\') {
          if (i + 1 >= line.size()) break;
          const char e = line[i + 1];
          i += 2;
          switch (e) {
            case 'n':
              text += '\n';
              break;
            case 't':
              text += '\t';
              break;
            case '\\':
              text += '\\';
              break;
            case '\'':
              text += '\'';
              break;
            case 'x': {
              const int hi = i < line.size() ? hex_value(line[i]) : -1;
              const int lo = i + 1 < line.size() ? hex_value(line[i + 1]) : -1;
              if (hi < 0 || lo < 0) {
                out.errors.push_back({column(i - 2), "\\x needs two hex digits"});
              } else {
                text += static_cast<char>(hi * 16 + lo);
                i += 2;
              }
              break;
            }
            default:
              out.errors.push_back({column(i - 2), std::string("unknown escape '\\") + e +
                                                       "' (use \\n \\t \\\\ \\' \\xHH)"});
          }
          continue;
        }
        text += ch;
        ++i;
      }
      if (!closed) {
        out.errors.push_back({column(start), "unterminated string"});
        return out;
      }
      out.tokens.push_back({TokenKind::kString, std::move(text), column(start)});
      continue;
    }
    // Every other token runs to the next separator.
    std::size_t end = i;
    while (end < line.size() && !separator(line[end]) && line[end] != '\'') ++end;
    std::string_view word = line.substr(i, end - i);
    i = end;
    Token token{TokenKind::kInvalid, std::string(word), column(start)};
    if (word.size() > 1 && word.back() == ':' && is_identifier(word.substr(0, word.size() - 1))) {
      token = {TokenKind::kLabelDef, std::string(word.substr(0, word.size() - 1)), column(start)};
    } else if (is_identifier(word)) {
      token.kind = TokenKind::kWord;
    } else if (word[0] == '.' && is_identifier(word.substr(1))) {
      token = {TokenKind::kDirective, std::string(word.substr(1)), column(start)};
    } else if (word[0] == '$') {
      token = {TokenKind::kRegister, std::string(word.substr(1)), column(start)};
    } else if (word[0] == '#') {
      token = {TokenKind::kNumber, std::string(word.substr(1)), column(start)};
    } else if (word[0] == '@') {
      token = {TokenKind::kLabelRef, std::string(word.substr(1)), column(start)};
    }
    out.tokens.push_back(std::move(token));
  }
  return out;
}

}  // namespace iridium::assembler
