// The Iridium instruction set, declared once.
//
// Every other part of the system (interpreter, verifier, assembler,
// disassembler) derives from IRIDIUM_OPCODES. Adding an opcode means adding
// one line here and its semantics in interpreter.cpp.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace iridium::vm {

// How an instruction's three operand bytes are used.
enum class Form : uint8_t {
  kNone,       // op 0 0 0
  kR,          // op a 0 0
  kRR,         // op a b 0
  kRRR,        // op a b c
  kRImm16,     // op a hi lo, immediate sign-extended
  kRUImm16,    // op a hi lo, immediate zero-extended
  kRShift,     // op a n 0, n in 0..31
  kCodeAddr,   // op hi lo 0, byte offset into the code section
  kCount,      // op hi lo 0, unsigned 16-bit count
  kDataAddr,   // op hi lo 0, byte offset into the read-only section
};

// X(MNEMONIC, opcode number, form). Opcode numbers are the bytecode's
// identity: never renumber.
#define IRIDIUM_OPCODES(X)      \
  X(LOAD, 0, kRImm16)           \
  X(ADD, 1, kRRR)               \
  X(SUB, 2, kRRR)               \
  X(MUL, 3, kRRR)               \
  X(DIV, 4, kRRR)               \
  X(HLT, 5, kNone)              \
  X(JMP, 6, kR)                 \
  X(JMPF, 7, kR)                \
  X(JMPB, 8, kR)                \
  X(EQ, 9, kRR)                 \
  X(NEQ, 10, kRR)               \
  X(GTE, 11, kRR)               \
  X(LTE, 12, kRR)               \
  X(LT, 13, kRR)                \
  X(GT, 14, kRR)                \
  X(JMPE, 15, kR)               \
  X(NOP, 16, kNone)             \
  X(ALOC, 17, kR)               \
  X(INC, 18, kR)                \
  X(DEC, 19, kR)                \
  X(DJMPE, 20, kCodeAddr)       \
  X(PRTS, 21, kDataAddr)        \
  X(LOADF64, 22, kRImm16)       \
  X(ADDF64, 23, kRRR)           \
  X(SUBF64, 24, kRRR)           \
  X(MULF64, 25, kRRR)           \
  X(DIVF64, 26, kRRR)           \
  X(EQF64, 27, kRR)             \
  X(NEQF64, 28, kRR)            \
  X(GTF64, 29, kRR)             \
  X(GTEF64, 30, kRR)            \
  X(LTF64, 31, kRR)             \
  X(LTEF64, 32, kRR)            \
  X(SHL, 33, kRShift)           \
  X(SHR, 34, kRShift)           \
  X(AND, 35, kRRR)              \
  X(OR, 36, kRRR)               \
  X(XOR, 37, kRRR)              \
  X(NOT, 38, kRR)               \
  X(LUI, 39, kRUImm16)          \
  X(CLOOP, 40, kCount)          \
  X(LOOP, 41, kCodeAddr)        \
  X(LOADM, 42, kRR)             \
  X(SETM, 43, kRR)              \
  X(PUSH, 44, kR)               \
  X(POP, 45, kR)                \
  X(CALL, 46, kCodeAddr)        \
  X(RET, 47, kNone)             \
  X(IGL, 100, kNone)

enum class Op : uint8_t {
#define IRIDIUM_X(name, number, form) name = number,
  IRIDIUM_OPCODES(IRIDIUM_X)
#undef IRIDIUM_X
};

struct OpInfo {
  std::string_view mnemonic;  // upper case, as in the table
  Op op;
  Form form;
};

inline constexpr std::size_t kInstructionSize = 4;
inline constexpr int kRegisterCount = 32;

namespace detail {
inline constexpr std::array kAllOps = {
#define IRIDIUM_X(name, number, form) OpInfo{#name, Op::name, Form::form},
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
