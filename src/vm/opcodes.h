// The Iridium instruction set, declared once.
//
// Every other part of the system (interpreter, verifier, assembler,
// disassembler) derives from IRIDIUM_OPCODES. Adding an opcode means adding
// one line here and its semantics in interpreter.cpp.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace iridium::vm {

// How an instruction's three operand bytes are used.
enum class Form : uint8_t {
  kNone,      // op 0 0 0
  kR,         // op a 0 0
  kRR,        // op a b 0
  kRRR,       // op a b c
  kRImm16,    // op a hi lo, immediate sign-extended
  kRUImm16,   // op a hi lo, immediate zero-extended
  kRShift,    // op a n 0, n in 0..31
  kCodeAddr,  // op hi lo 0, byte offset into the code section
  kCount,     // op hi lo 0, unsigned 16-bit count
  kDataAddr,  // op hi lo 0, byte offset into the read-only section
};

// X(MNEMONIC, opcode number, form, meaning). Opcode numbers are the
// bytecode's identity: never renumber. The meaning is one line, in the
// operands' terms ($a $b $c are the register operands in order); `!help
// MNEMONIC` shows it.
#define IRIDIUM_OPCODES(X)                                                                   \
  X(LOAD, 0, kRImm16, "$a = imm, sign-extended 16 bits")                                     \
  X(ADD, 1, kRRR, "$c = $a + $b (wraps)")                                                    \
  X(SUB, 2, kRRR, "$c = $a - $b (wraps)")                                                    \
  X(MUL, 3, kRRR, "$c = $a * $b (wraps)")                                                    \
  X(DIV, 4, kRRR, "$c = $a / $b truncated, remainder = $a % $b; $b = 0 is an error")         \
  X(HLT, 5, kNone, "halt the program")                                                       \
  X(JMP, 6, kR, "jump to the code address in $a")                                            \
  X(JMPF, 7, kR, "jump forward by $a bytes from this instruction")                           \
  X(JMPB, 8, kR, "jump back by $a bytes from this instruction")                              \
  X(EQ, 9, kRR, "flag = $a == $b")                                                           \
  X(NEQ, 10, kRR, "flag = $a != $b")                                                         \
  X(GTE, 11, kRR, "flag = $a >= $b")                                                         \
  X(LTE, 12, kRR, "flag = $a <= $b")                                                         \
  X(LT, 13, kRR, "flag = $a < $b")                                                           \
  X(GT, 14, kRR, "flag = $a > $b")                                                           \
  X(JMPE, 15, kR, "if flag, jump to the code address in $a")                                 \
  X(NOP, 16, kNone, "do nothing")                                                            \
  X(ALOC, 17, kR, "grow the heap by $a bytes")                                               \
  X(INC, 18, kR, "$a = $a + 1")                                                              \
  X(DEC, 19, kR, "$a = $a - 1")                                                              \
  X(DJMPE, 20, kCodeAddr, "if flag, jump to the code address")                               \
  X(PRTS, 21, kDataAddr, "print the NUL-terminated read-only string at the offset")          \
  X(LOADF64, 22, kRImm16, "float $a = imm as a double")                                      \
  X(ADDF64, 23, kRRR, "float $c = $a + $b")                                                  \
  X(SUBF64, 24, kRRR, "float $c = $a - $b")                                                  \
  X(MULF64, 25, kRRR, "float $c = $a * $b")                                                  \
  X(DIVF64, 26, kRRR, "float $c = $a / $b")                                                  \
  X(EQF64, 27, kRR, "flag = float $a == $b")                                                 \
  X(NEQF64, 28, kRR, "flag = float $a != $b")                                                \
  X(GTF64, 29, kRR, "flag = float $a > $b")                                                  \
  X(GTEF64, 30, kRR, "flag = float $a >= $b")                                                \
  X(LTF64, 31, kRR, "flag = float $a < $b")                                                  \
  X(LTEF64, 32, kRR, "flag = float $a <= $b")                                                \
  X(SHL, 33, kRShift, "$a <<= n (n 0..31; 16 when omitted)")                                 \
  X(SHR, 34, kRShift, "$a >>= n, arithmetic (n 0..31; 16 when omitted)")                     \
  X(AND, 35, kRRR, "$c = $a & $b")                                                           \
  X(OR, 36, kRRR, "$c = $a | $b")                                                            \
  X(XOR, 37, kRRR, "$c = $a ^ $b")                                                           \
  X(NOT, 38, kRR, "$b = ~$a")                                                                \
  X(LUI, 39, kRUImm16, "$a = ($a << 16) | imm, zero-extended 16 bits")                       \
  X(CLOOP, 40, kCount, "loop counter = count")                                               \
  X(LOOP, 41, kCodeAddr,                                                                     \
    "if the loop counter is not 0, decrement it and jump to the code address")               \
  X(LOADM, 42, kRR, "$b = the 4 heap bytes at the offset in $a (little-endian)")             \
  X(SETM, 43, kRR, "the 4 heap bytes at the offset in $a = $b (little-endian)")              \
  X(PUSH, 44, kR, "push $a on the stack")                                                    \
  X(POP, 45, kR, "pop the stack into $a")                                                    \
  X(CALL, 46, kCodeAddr, "push the return address and bp, set bp, jump to the code address") \
  X(RET, 47, kNone, "drop the frame, pop bp and the return address, jump there")             \
  X(IGL, 100, kNone, "illegal: always a runtime error")

enum class Op : uint8_t {
#define IRIDIUM_X(name, number, form, meaning) name = number,
  IRIDIUM_OPCODES(IRIDIUM_X)
#undef IRIDIUM_X
};

struct OpInfo {
  std::string_view mnemonic;  // upper case, as in the table
  Op op;
  Form form;
  std::string_view meaning;  // one line, for people
};

inline constexpr std::size_t kInstructionSize = 4;
inline constexpr int kRegisterCount = 32;

namespace detail {
inline constexpr std::array kAllOps = {
#define IRIDIUM_X(name, number, form, meaning) OpInfo{#name, Op::name, Form::form, meaning},
    IRIDIUM_OPCODES(IRIDIUM_X)
#undef IRIDIUM_X
};

constexpr std::array<std::optional<OpInfo>, 256> make_op_table() {
  std::array<std::optional<OpInfo>, 256> table{};
  for (const OpInfo& info : kAllOps) table[static_cast<uint8_t>(info.op)] = info;
  return table;
}
inline constexpr auto kOpTable = make_op_table();
}  // namespace detail

// Every opcode, in table order.
inline constexpr const auto& all_ops() {
  return detail::kAllOps;
}

// The opcode with this number, or nullptr when the byte is not an opcode.
inline constexpr const OpInfo* find_op(uint8_t byte) {
  const auto& entry = detail::kOpTable[byte];
  return entry ? &*entry : nullptr;
}

inline constexpr const OpInfo& op_info(Op op) {
  return *find_op(static_cast<uint8_t>(op));
}

// Case-insensitive lookup by mnemonic; nullptr when unknown.
const OpInfo* find_op(std::string_view mnemonic);
// The mnemonic in lower case, as assembly is written and shown ("load").
std::string lower_mnemonic(const OpInfo& info);

// What one assembly operand is. The assembler checks operands against these
// and its messages and hints name them (see operand_syntax).
enum class OperandKind : uint8_t {
  kRegister,   // $n
  kImmediate,  // #n
  kShift,      // #n, a shift amount in 0..31
  kCount,      // #n, an unsigned 16-bit count
  kCodeLabel,  // @label of code (or #offset)
  kDataLabel,  // @label of data (or #offset)
};

// The assembly operands of a form, in order; the first `required` of them
// must be given, the rest may be left out.
struct OperandList {
  std::array<OperandKind, 3> kinds{};
  std::size_t size = 0;
  std::size_t required = 0;
};

constexpr OperandList operands(Form form) {
  using K = OperandKind;
  switch (form) {
    case Form::kNone:
      return {};
    case Form::kR:
      return {{K::kRegister}, 1, 1};
    case Form::kRR:
      return {{K::kRegister, K::kRegister}, 2, 2};
    case Form::kRRR:
      return {{K::kRegister, K::kRegister, K::kRegister}, 3, 3};
    case Form::kRImm16:
    case Form::kRUImm16:
      return {{K::kRegister, K::kImmediate}, 2, 2};
    case Form::kRShift:
      return {{K::kRegister, K::kShift}, 2, 1};  // `SHL $r` shifts by 16
    case Form::kCodeAddr:
      return {{K::kCodeLabel}, 1, 1};
    case Form::kCount:
      return {{K::kCount}, 1, 1};
    case Form::kDataAddr:
      return {{K::kDataLabel}, 1, 1};
  }
  return {};
}

// How an operand of this kind is written in an expected form, e.g. "$REG".
constexpr std::string_view operand_syntax(OperandKind kind) {
  switch (kind) {
    case OperandKind::kRegister:
      return "$REG";
    case OperandKind::kImmediate:
      return "#IMM";
    case OperandKind::kShift:
      return "#0..31";
    case OperandKind::kCount:
      return "#COUNT";
    case OperandKind::kCodeLabel:
    case OperandKind::kDataLabel:
      return "@LABEL";
  }
  return "";
}

// Which operand positions (a, b, c) hold register numbers for this form.
constexpr std::array<bool, 3> register_operands(Form form) {
  const OperandList list = operands(form);
  std::array<bool, 3> registers{};
  for (std::size_t i = 0; i < list.size; ++i)
    registers[i] = list.kinds[i] == OperandKind::kRegister;
  return registers;
}

}  // namespace iridium::vm
