#include "asm/assembler.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <optional>
#include <tuple>

#include "asm/lexer.h"
#include "common/nearest.h"
#include "vm/opcodes.h"

namespace iridium::assembler {
namespace {

using vm::Form;
using vm::Op;
using vm::OpInfo;

enum class Section { kCode, kData };

struct Statement {
  int line = 0;
  int column = 0;  // of the mnemonic
  const OpInfo* op = nullptr;
  std::vector<Token> operands;
  uint32_t offset = 0;   // code offset, relative to this source's first instruction (set by layout)
  bool wide = false;     // LOAD of a 32-bit constant: LOAD + LUI
  std::string mnemonic;  // as written
};

std::optional<int64_t> parse_integer(std::string_view text) {
  bool negative = false;
  if (!text.empty() && (text[0] == '-' || text[0] == '+')) {
    negative = text[0] == '-';
    text.remove_prefix(1);
  }
  int base = 10;
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    base = 16;
    text.remove_prefix(2);
  }
  if (text.empty() || text.size() > 16) return std::nullopt;
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return negative ? -value : value;
}

std::optional<double> parse_float(std::string_view text) {
  if (!text.empty() && text[0] == '+') text.remove_prefix(1);
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) {
    return std::nullopt;
  }
  return value;
}

bool whole_number(std::string_view text) {
  auto value = parse_float(text);
  return value && std::trunc(*value) == *value;
}

// LOAD also takes a label as its immediate (the label's value), an extension
// this assembler makes; every other operand is as the opcode table says.
bool takes_label(const OpInfo& op, std::size_t index) {
  return op.op == Op::LOAD && index == 1;
}

// `word` in the case the user wrote `like` in: upper case if `like` is, else lower.
std::string in_case_of(std::string_view word, std::string_view like) {
  const bool upper = std::none_of(
      like.begin(), like.end(), [](char c) { return std::islower(static_cast<unsigned char>(c)); });
  std::string text(word);
  for (char& c : text) {
    c = static_cast<char>(upper ? std::toupper(static_cast<unsigned char>(c))
                                : std::tolower(static_cast<unsigned char>(c)));
  }
  return text;
}

// The instruction as it should be written, derived from its form in the
// opcode table: "load $REG #IMM|@LABEL", "shl $REG [#0..31]", "hlt".
std::string expected_form(const OpInfo& op, std::string_view written_mnemonic) {
  std::string text = in_case_of(op.mnemonic, written_mnemonic);
  const vm::OperandList list = vm::operands(op.form);
  for (std::size_t i = 0; i < list.size; ++i) {
    std::string operand(vm::operand_syntax(list.kinds[i]));
    if (takes_label(op, i)) operand += "|@LABEL";
    text += " " + (i < list.required ? operand : "[" + operand + "]");
  }
  return text;
}

// The nearest mnemonic in the opcode table to an unknown one, in its case.
std::string nearest_mnemonic(std::string_view word) {
  std::vector<std::string_view> mnemonics;
  for (const OpInfo& info : vm::all_ops()) mnemonics.push_back(info.mnemonic);
  auto best = nearest_word(word, mnemonics);
  return best ? in_case_of(*best, word) : std::string();
}

// A token as it was written, sigil included.
std::string written(const Token& token) {
  switch (token.kind) {
    case TokenKind::kRegister:
      return "$" + token.text;
    case TokenKind::kNumber:
      return "#" + token.text;
    case TokenKind::kLabelRef:
      return "@" + token.text;
    case TokenKind::kString:
      return "'" + token.text + "'";
    case TokenKind::kDirective:
      return "." + token.text;
    case TokenKind::kLabelDef:
      return token.text + ":";
    default:
      return token.text;
  }
}

bool all_digits(std::string_view text) {
  return !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
}

std::string describe(const Token& token) {
  switch (token.kind) {
    case TokenKind::kRegister:
      return "'$" + token.text + "'";
    case TokenKind::kNumber:
      return "'#" + token.text + "'";
    case TokenKind::kLabelRef:
      return "'@" + token.text + "'";
    case TokenKind::kString:
      return "a string";
    case TokenKind::kDirective:
      return "'." + token.text + "'";
    case TokenKind::kLabelDef:
      return "'" + token.text + ":'";
    default:
      return "'" + token.text + "'";
  }
}

class Assembler {
 public:
  Assembler(std::string_view file, const Context& context) : file_(file), context_(context) {}

  Assembly run(std::string_view source) {
    int line_number = 0;
    std::size_t start = 0;
    while (start <= source.size()) {
      std::size_t end = source.find('\n', start);
      if (end == std::string_view::npos) end = source.size();
      ++line_number;
      first_pass_line(source.substr(start, end - start), line_number);
      start = end + 1;
    }
    bind_pending(SymbolKind::kCode, 0);  // labels at the very end mark the code's end
    layout();
    for (const Statement& statement : statements_) encode(statement);
    std::stable_sort(out_.errors.begin(), out_.errors.end(),
                     [](const Diagnostic& a, const Diagnostic& b) {
                       return std::tie(a.line, a.column) < std::tie(b.line, b.column);
                     });
    return std::move(out_);
  }

 private:
  Diagnostic& error(int line, int column, std::string message) {
    Diagnostic& d = out_.errors.emplace_back();
    d.file = file_;
    d.line = line;
    d.column = column;
    d.message = std::move(message);
    return d;
  }

  void define(const std::string& name, SymbolKind kind, uint32_t relative, int line, int column) {
    if (auto it = out_.symbols.find(name); it != out_.symbols.end()) {
      error(line, column,
            "duplicate label '" + name + "' (first defined on line " +
                std::to_string(it->second.line) + ")");
      return;
    }
    if (context_.symbols != nullptr && context_.symbols->contains(name)) {
      error(line, column, "label '" + name + "' is already defined");
      return;
    }
    if (kind == SymbolKind::kCode) {
      // The value is set by layout(): LOADs of far labels may still grow.
      code_labels_.emplace_back(name, statements_.size());
      out_.symbols.emplace(name, Symbol{kind, 0, line});
      return;
    }
    out_.symbols.emplace(name, Symbol{kind, context_.data_base + relative, line});
  }

  // Gives every instruction its offset and every code label its value. A
  // `LOAD $r @label` whose label lies beyond int16 needs LOAD + LUI, which
  // moves later labels, so repeat until nothing grows (sizes only grow, so
  // this ends).
  void layout() {
    for (bool changed = true; changed;) {
      uint32_t offset = 0;
      for (Statement& statement : statements_) {
        statement.offset = offset;
        offset += statement.wide ? 8 : 4;
      }
      for (const auto& [name, index] : code_labels_) {
        out_.symbols.at(name).value =
            context_.code_base + (index < statements_.size() ? statements_[index].offset : offset);
      }
      changed = false;
      for (Statement& statement : statements_) {
        if (statement.wide || statement.op->op != Op::LOAD || statement.operands.size() != 2 ||
            statement.operands[1].kind != TokenKind::kLabelRef) {
          continue;
        }
        const Symbol* symbol = lookup(statement.operands[1].text);
        if (symbol != nullptr && symbol->value > INT16_MAX) {
          statement.wide = true;
          changed = true;
        }
      }
    }
  }

  void bind_pending(SymbolKind kind, uint32_t relative) {
    for (const auto& [name, column_line] : pending_labels_) {
      define(name, kind, relative, column_line.second, column_line.first);
    }
    pending_labels_.clear();
  }

  void first_pass_line(std::string_view text, int line) {
    LexedLine lexed = lex_line(text);
    for (const LexError& e : lexed.errors) error(line, e.column, e.message);
    std::size_t i = 0;
    auto& tokens = lexed.tokens;
    while (i < tokens.size() && tokens[i].kind == TokenKind::kLabelDef) {
      pending_labels_.emplace_back(tokens[i].text, std::make_pair(tokens[i].column, line));
      ++i;
    }
    if (i == tokens.size()) return;
    const Token& head = tokens[i];
    std::vector<Token> operands(tokens.begin() + static_cast<std::ptrdiff_t>(i) + 1, tokens.end());
    if (head.kind == TokenKind::kDirective) {
      directive(head, operands, line);
    } else if (head.kind == TokenKind::kWord) {
      instruction(head, std::move(operands), line);
    } else {
      error(line, head.column,
            "expected an instruction, a directive or a label, got " + describe(head));
    }
  }

  void directive(const Token& head, const std::vector<Token>& operands, int line) {
    const std::string& name = head.text;
    if (name == "data" || name == "code") {
      if (!operands.empty()) error(line, operands[0].column, "." + name + " takes no operands");
      section_ = name == "data" ? Section::kData : Section::kCode;
      return;
    }
    std::vector<uint8_t> bytes;
    if (name == "asciiz") {
      if (operands.size() != 1 || operands[0].kind != TokenKind::kString) {
        error(line, head.column, ".asciiz takes one string operand, like .asciiz 'text'");
        return;
      }
      bytes.assign(operands[0].text.begin(), operands[0].text.end());
      bytes.push_back(0);
    } else if (name == "integer") {
      if (operands.size() != 1 || operands[0].kind != TokenKind::kNumber) {
        error(line, head.column, ".integer takes one integer operand, like .integer #42");
        return;
      }
      auto value = parse_integer(operands[0].text);
      if (!value || *value < std::numeric_limits<int32_t>::min() || *value > 0xFFFFFFFFLL) {
        error(line, operands[0].column,
              "integer " + describe(operands[0]) + " does not fit 32 bits");
        return;
      }
      for (int k = 0; k < 4; ++k)
        bytes.push_back(static_cast<uint8_t>(static_cast<uint64_t>(*value) >> (8 * k)));
    } else if (name == "byte") {
      if (operands.empty()) {
        error(line, head.column, ".byte takes one or more integers, like .byte #1 #2");
        return;
      }
      for (const Token& operand : operands) {
        auto value =
            operand.kind == TokenKind::kNumber ? parse_integer(operand.text) : std::nullopt;
        if (!value || *value < -128 || *value > 255) {
          error(line, operand.column,
                ".byte needs integers in -128..255, got " + describe(operand));
          return;
        }
        bytes.push_back(static_cast<uint8_t>(*value));
      }
    } else {
      Diagnostic& d =
          error(line, head.column,
                "unknown directive '." + name + "' (known: .data .code .asciiz .integer .byte)");
      d.token = "." + name;
      if (auto best = nearest_word(name, {"data", "code", "asciiz", "integer", "byte"})) {
        d.suggestion = "." + std::string(*best);
      }
      return;
    }
    // Data directives always fill the read-only section, in either section,
    // so a shell line like `msg: .asciiz 'hi'` works without `.data`.
    bind_pending(SymbolKind::kData, data_offset());
    out_.image.read_only.insert(out_.image.read_only.end(), bytes.begin(), bytes.end());
  }

  uint32_t data_offset() const { return static_cast<uint32_t>(out_.image.read_only.size()); }

  void instruction(const Token& head, std::vector<Token> operands, int line) {
    const OpInfo* op = vm::find_op(head.text);
    bind_pending(SymbolKind::kCode, 0);
    if (op == nullptr) {
      Diagnostic& d = error(line, head.column, "unknown instruction '" + head.text + "'");
      d.kind = DiagnosticKind::kUnknownInstruction;
      d.token = head.text;
      d.suggestion = nearest_mnemonic(head.text);
      return;
    }
    if (section_ == Section::kData) {
      error(line, head.column,
            "instruction '" + head.text + "' in the data section (start code with .code)");
      return;
    }
    Statement statement{line, head.column, op, std::move(operands), 0, false, head.text};
    if (op->op == Op::LOAD && statement.operands.size() == 2 &&
        statement.operands[1].kind == TokenKind::kNumber) {
      auto value = parse_integer(statement.operands[1].text);
      statement.wide = value && (*value < INT16_MIN || *value > INT16_MAX);
    }
    statements_.push_back(std::move(statement));
  }

  std::optional<uint8_t> reg(const Statement& s, std::size_t index) {
    const Token& t = s.operands[index];
    if (t.kind != TokenKind::kRegister) {
      Diagnostic& d = operand_kind_error(s, index,
                                         "operand " + std::to_string(index + 1) + " of " +
                                             std::string(s.op->mnemonic) +
                                             " must be a register like $0, got " + describe(t));
      // `#5`, `5` or `r5` where a register goes: likely `$5`.
      std::string_view digits = t.text;
      if (t.kind == TokenKind::kWord && digits.size() > 1 &&
          (digits[0] == 'r' || digits[0] == 'R')) {
        digits.remove_prefix(1);
      }
      if ((t.kind == TokenKind::kNumber || t.kind == TokenKind::kInvalid ||
           t.kind == TokenKind::kWord) &&
          all_digits(digits) && digits.size() <= 2 &&
          std::stoi(std::string(digits)) < vm::kRegisterCount) {
        d.suggestion = "$" + std::string(digits);
      }
      return std::nullopt;
    }
    auto value = parse_integer(t.text);
    if (!value || t.text.empty() || t.text[0] == '-' || t.text[0] == '+' ||
        t.text.find_first_not_of("0123456789") != std::string::npos) {
      error(s.line, t.column, "bad register " + describe(t) + " (use $0..$31)");
      return std::nullopt;
    }
    if (*value >= vm::kRegisterCount) {
      error(s.line, t.column, "register " + describe(t) + " out of range (0..31)");
      return std::nullopt;
    }
    return static_cast<uint8_t>(*value);
  }

  // An integer operand within [lo, hi], or a label of the given kind.
  std::optional<int64_t> value(const Statement& s, std::size_t index, int64_t lo, int64_t hi,
                               std::optional<SymbolKind> label_kind) {
    const Token& t = s.operands[index];
    const std::string where =
        "operand " + std::to_string(index + 1) + " of " + std::string(s.op->mnemonic);
    if (t.kind == TokenKind::kLabelRef && label_kind) {
      const Symbol* symbol = lookup(t.text);
      if (symbol == nullptr) {
        error(s.line, t.column, "undefined label '" + t.text + "'");
        return std::nullopt;
      }
      if (s.op->op != Op::LOAD && symbol->kind != *label_kind) {
        error(s.line, t.column,
              "label '" + t.text + "' is a " +
                  (symbol->kind == SymbolKind::kCode ? "code" : "data") + " label, but " +
                  std::string(s.op->mnemonic) + " needs a " +
                  (*label_kind == SymbolKind::kCode ? "code" : "data") + " label");
        return std::nullopt;
      }
      if (symbol->value < lo || symbol->value > hi) {
        error(s.line, t.column,
              "label '" + t.text + "' has value " + std::to_string(symbol->value) + ", outside " +
                  std::to_string(lo) + ".." + std::to_string(hi));
        return std::nullopt;
      }
      return symbol->value;
    }
    if (t.kind != TokenKind::kNumber) {
      Diagnostic& d = operand_kind_error(
          s, index,
          where + " must be " + std::string(label_kind ? "an integer or a label" : "an integer") +
              ", got " + describe(t));
      // `42` where an integer goes: likely `#42`; a known label's name without `@`: likely `@name`.
      if (t.kind == TokenKind::kInvalid &&
          (parse_integer(t.text) || (s.op->op == Op::LOADF64 && whole_number(t.text)))) {
        d.suggestion = "#" + t.text;
      } else if (t.kind == TokenKind::kWord && label_kind && lookup(t.text) != nullptr) {
        d.suggestion = "@" + t.text;
      }
      return std::nullopt;
    }
    auto number = parse_integer(t.text);
    if (!number && s.op->op == Op::LOADF64) {
      // A float literal is accepted where it is a whole number: LOADF64 can
      // only encode 16-bit integers.
      auto real = parse_float(t.text);
      if (real && std::trunc(*real) == *real && *real >= static_cast<double>(lo) &&
          *real <= static_cast<double>(hi)) {
        return static_cast<int64_t>(*real);
      }
      error(s.line, t.column,
            "LOADF64 can only load whole numbers in " + std::to_string(lo) + ".." +
                std::to_string(hi) + ", got " + describe(t));
      return std::nullopt;
    }
    if (!number) {
      error(s.line, t.column, "bad integer " + describe(t));
      return std::nullopt;
    }
    if (*number < lo || *number > hi) {
      error(s.line, t.column,
            "immediate " + describe(t) + " out of range (" + std::to_string(lo) + ".." +
                std::to_string(hi) + ")");
      return std::nullopt;
    }
    return number;
  }

  // An operand of the wrong kind: the message, with the token and the form
  // the instruction expects for a hint.
  Diagnostic& operand_kind_error(const Statement& s, std::size_t index, std::string message) {
    const Token& t = s.operands[index];
    Diagnostic& d = error(s.line, t.column, std::move(message));
    d.kind = DiagnosticKind::kOperandKind;
    d.token = written(t);
    d.expected = expected_form(*s.op, s.mnemonic);
    return d;
  }

  const Symbol* lookup(std::string_view name) const {
    if (auto it = out_.symbols.find(name); it != out_.symbols.end()) return &it->second;
    if (context_.symbols != nullptr) {
      if (auto it = context_.symbols->find(name); it != context_.symbols->end()) return &it->second;
    }
    return nullptr;
  }

  void emit(const OpInfo& op, uint8_t a, uint8_t b, uint8_t c) {
    auto& code = out_.image.code;
    code.insert(code.end(), {static_cast<uint8_t>(op.op), a, b, c});
  }

  void encode(const Statement& s) {
    const OpInfo& op = *s.op;
    const vm::OperandList list = vm::operands(op.form);
    const std::size_t min_count = list.required;
    const std::size_t max_count = list.size;
    const std::size_t errors_before = out_.errors.size();
    if (s.operands.size() < min_count || s.operands.size() > max_count) {
      Diagnostic& d = error(s.line, s.column,
                            std::string(op.mnemonic) + " takes " +
                                (min_count == max_count ? std::to_string(min_count)
                                                        : std::to_string(min_count) + " or " +
                                                              std::to_string(max_count)) +
                                " operand" + (max_count == 1 ? "" : "s") + ", got " +
                                std::to_string(s.operands.size()));
      d.kind = DiagnosticKind::kOperandCount;
      d.expected = expected_form(op, s.mnemonic);
    } else {
      encode_operands(s);
    }
    // Keep offsets right after an error so later labels stay where they are.
    const std::size_t expected = s.offset + (s.wide ? 8u : 4u);
    if (out_.errors.size() != errors_before || out_.image.code.size() != expected) {
      out_.image.code.resize(expected, 0);
    }
  }

  void encode_operands(const Statement& s) {
    const OpInfo& op = *s.op;
    switch (op.form) {
      case Form::kNone:
        emit(op, 0, 0, 0);
        return;
      case Form::kR: {
        auto a = reg(s, 0);
        if (a) emit(op, *a, 0, 0);
        return;
      }
      case Form::kRR: {
        auto a = reg(s, 0);
        auto b = reg(s, 1);
        if (a && b) emit(op, *a, *b, 0);
        return;
      }
      case Form::kRRR: {
        auto a = reg(s, 0);
        auto b = reg(s, 1);
        auto c = reg(s, 2);
        if (a && b && c) emit(op, *a, *b, *c);
        return;
      }
      case Form::kRImm16: {
        auto a = reg(s, 0);
        std::optional<int64_t> v;
        if (op.op == Op::LOAD) {
          v = value(s, 1, s.wide ? std::numeric_limits<int32_t>::min() : INT16_MIN,
                    s.wide ? 0xFFFFFFFFLL : INT16_MAX, SymbolKind::kCode);
        } else {
          v = value(s, 1, INT16_MIN, INT16_MAX, std::nullopt);
        }
        if (!a || !v) return;
        const auto bits = static_cast<uint32_t>(static_cast<uint64_t>(*v));
        if (s.wide) {
          // LOAD sign-extends the high half; LUI shifts it up and ors in the low half.
          emit(op, *a, static_cast<uint8_t>(bits >> 24), static_cast<uint8_t>(bits >> 16));
          emit(vm::op_info(Op::LUI), *a, static_cast<uint8_t>(bits >> 8),
               static_cast<uint8_t>(bits));
        } else {
          emit(op, *a, static_cast<uint8_t>(bits >> 8), static_cast<uint8_t>(bits));
        }
        return;
      }
      case Form::kRUImm16: {
        auto a = reg(s, 0);
        auto v = value(s, 1, INT16_MIN, 0xFFFF, std::nullopt);
        if (!a || !v) return;
        const auto bits = static_cast<uint16_t>(*v);
        emit(op, *a, static_cast<uint8_t>(bits >> 8), static_cast<uint8_t>(bits));
        return;
      }
      case Form::kRShift: {
        auto a = reg(s, 0);
        std::optional<int64_t> n = 16;  // `SHL $r` alone shifts by 16
        if (s.operands.size() == 2) n = value(s, 1, 0, 31, std::nullopt);
        if (a && n) emit(op, *a, static_cast<uint8_t>(*n), 0);
        return;
      }
      case Form::kCodeAddr:
      case Form::kCount:
      case Form::kDataAddr: {
        std::optional<SymbolKind> kind;
        if (op.form == Form::kCodeAddr) kind = SymbolKind::kCode;
        if (op.form == Form::kDataAddr) kind = SymbolKind::kData;
        auto v = value(s, 0, 0, 0xFFFF, kind);
        if (!v) return;
        if (op.form == Form::kCodeAddr && *v % 4 != 0) {
          error(s.line, s.operands[0].column,
                "jump target " + std::to_string(*v) + " is not a multiple of 4");
          return;
        }
        emit(op, static_cast<uint8_t>(*v >> 8), static_cast<uint8_t>(*v), 0);
        return;
      }
    }
  }

  std::string file_;
  Context context_;
  Assembly out_;
  std::vector<Statement> statements_;
  std::vector<std::pair<std::string, std::pair<int, int>>> pending_labels_;  // name, (column, line)
  Section section_ = Section::kCode;
  std::vector<std::pair<std::string, std::size_t>> code_labels_;  // label, statement it precedes
};

}  // namespace

Assembly assemble(std::string_view source, std::string_view file, const Context& context) {
  return Assembler(file, context).run(source);
}

std::string instruction_syntax(const vm::OpInfo& op) {
  return expected_form(op, vm::lower_mnemonic(op));
}

}  // namespace iridium::assembler
