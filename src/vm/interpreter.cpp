// The execution loop. The image was verified at load (opcodes, registers,
// shifts, static targets, read-only offsets), so the loop only checks what
// depends on run-time values: dynamic jump targets, division, heap, stack.
//
// Dispatch is direct threading through a label table (GCC/Clang "labels as
// values") where available, and a switch otherwise.
#include <bit>
#include <climits>
#include <cstring>

#include "vm/opcodes.h"
#include "vm/vm.h"

#if defined(__GNUC__) && !defined(IRIDIUM_NO_COMPUTED_GOTO)
#define IRIDIUM_COMPUTED_GOTO 1
#else
#define IRIDIUM_COMPUTED_GOTO 0
#endif

namespace iridium::vm {

static_assert(std::endian::native == std::endian::little,
              "LOADM/SETM copy heap words as little-endian host integers");

namespace {
inline int32_t wrap(int64_t value) { return static_cast<int32_t>(static_cast<uint32_t>(value)); }
}  // namespace

template <bool kCountSteps>
RunResult Vm::execute() {
  const Decoded* const base = decoded_.data();
  const int64_t code_length = static_cast<int64_t>(image_.code.size());
  const Decoded* ip = base + state_.pc / kInstructionSize;
  int32_t* const r = state_.registers.data();
  double* const f = state_.float_registers.data();
  MachineState& s = state_;
  uint64_t steps_left = limits_.max_steps;

  auto index = [&] { return static_cast<std::size_t>(ip - base); };

#define IRIDIUM_STEP()                                       \
  do {                                                       \
    if constexpr (kCountSteps) {                             \
      if (steps_left == 0 && ip->op != kEndSentinel) return fail(Fault::kStepLimit, index(), ""); \
      --steps_left;                                          \
    }                                                        \
  } while (0)

#if IRIDIUM_COMPUTED_GOTO
  void* table[256];
  for (auto& entry : table) entry = &&op_invalid;
#define IRIDIUM_X(name, number, form) table[number] = &&op_##name;
  IRIDIUM_OPCODES(IRIDIUM_X)
#undef IRIDIUM_X
  table[kEndSentinel] = &&op_END;
#define CASE(name) op_##name
#define CASE_END op_END
#define DISPATCH()            \
  do {                        \
    IRIDIUM_STEP();           \
    goto* table[ip->op];      \
  } while (0)
#else
#define CASE(name) case static_cast<uint8_t>(Op::name)
#define CASE_END case kEndSentinel
#define DISPATCH() goto dispatch
#endif
#define NEXT() \
  do {         \
    ++ip;      \
    DISPATCH(); \
  } while (0)
// Jumps to a run-time byte offset, checking it first.
#define JUMP_TO(target_expr)                                                     \
  do {                                                                           \
    const int64_t target = (target_expr);                                        \
    if (target < 0 || target % 4 != 0 || target > code_length) {                 \
      return fail(Fault::kBadJumpTarget, index(),                                \
                  "target " + std::to_string(target) +                           \
                      (target % 4 != 0 ? " is not a multiple of 4"               \
                                       : " is outside the code (0.." +           \
                                             std::to_string(code_length) + ")")); \
    }                                                                            \
    ip = base + target / 4;                                                      \
    DISPATCH();                                                                  \
  } while (0)
#define OFFSET() (static_cast<int64_t>(index()) * 4)

#if IRIDIUM_COMPUTED_GOTO
  DISPATCH();
  {
#else
dispatch:
  IRIDIUM_STEP();
  switch (ip->op) {
#endif
    CASE(LOAD) : r[ip->a] = ip->imm; NEXT();
    CASE(ADD) : r[ip->c] = wrap(int64_t{r[ip->a]} + r[ip->b]); NEXT();
    CASE(SUB) : r[ip->c] = wrap(int64_t{r[ip->a]} - r[ip->b]); NEXT();
    CASE(MUL) : r[ip->c] = wrap(int64_t{r[ip->a]} * r[ip->b]); NEXT();
    CASE(DIV) : {
      const int32_t a = r[ip->a];
      const int32_t b = r[ip->b];
      if (b == 0) return fail(Fault::kDivisionByZero, index(), "");
      if (a == INT32_MIN && b == -1) {
        r[ip->c] = INT32_MIN;
        s.remainder = 0;
      } else {
        r[ip->c] = a / b;
        s.remainder = a % b;
      }
      NEXT();
    }
    CASE(HLT) : {
      s.pc = static_cast<uint32_t>(OFFSET() + 4);
      return RunResult{RunStatus::kHalted, std::nullopt};
    }
    CASE(JMP) : JUMP_TO(r[ip->a]);
    CASE(JMPF) : JUMP_TO(OFFSET() + r[ip->a]);
    CASE(JMPB) : JUMP_TO(OFFSET() - r[ip->a]);
    CASE(EQ) : s.equal_flag = r[ip->a] == r[ip->b]; NEXT();
    CASE(NEQ) : s.equal_flag = r[ip->a] != r[ip->b]; NEXT();
    CASE(GTE) : s.equal_flag = r[ip->a] >= r[ip->b]; NEXT();
    CASE(LTE) : s.equal_flag = r[ip->a] <= r[ip->b]; NEXT();
    CASE(LT) : s.equal_flag = r[ip->a] < r[ip->b]; NEXT();
    CASE(GT) : s.equal_flag = r[ip->a] > r[ip->b]; NEXT();
    CASE(JMPE) : {
      if (s.equal_flag) JUMP_TO(r[ip->a]);
      NEXT();
    }
    CASE(NOP) : NEXT();
    CASE(ALOC) : {
      const int32_t bytes = r[ip->a];
      if (bytes < 0) {
        return fail(Fault::kBadAllocation, index(), "cannot grow the heap by " + std::to_string(bytes));
      }
      if (s.heap.size() + static_cast<std::size_t>(bytes) > limits_.heap_cap) {
        return fail(Fault::kHeapCap, index(),
                    "growing " + std::to_string(s.heap.size()) + " bytes by " +
                        std::to_string(bytes) + " passes the cap of " +
                        std::to_string(limits_.heap_cap));
      }
      s.heap.resize(s.heap.size() + static_cast<std::size_t>(bytes), 0);
      NEXT();
    }
    CASE(INC) : r[ip->a] = wrap(int64_t{r[ip->a]} + 1); NEXT();
    CASE(DEC) : r[ip->a] = wrap(int64_t{r[ip->a]} - 1); NEXT();
    CASE(DJMPE) : {
      if (s.equal_flag) {
        ip = base + ip->imm;
        DISPATCH();
      }
      NEXT();
    }
    CASE(PRTS) : {
      const auto& ro = image_.read_only;
      const auto start = static_cast<std::size_t>(ip->imm);
      const void* nul = std::memchr(ro.data() + start, 0, ro.size() - start);
      if (nul == nullptr) {
        return fail(Fault::kStringWithoutNul, index(),
                    "read-only offset " + std::to_string(start));
      }
      const auto length = static_cast<std::size_t>(static_cast<const uint8_t*>(nul) - (ro.data() + start));
      if (output_) output_(std::string_view(reinterpret_cast<const char*>(ro.data() + start), length));
      NEXT();
    }
    CASE(LOADF64) : f[ip->a] = static_cast<double>(ip->imm); NEXT();
    CASE(ADDF64) : f[ip->c] = f[ip->a] + f[ip->b]; NEXT();
    CASE(SUBF64) : f[ip->c] = f[ip->a] - f[ip->b]; NEXT();
    CASE(MULF64) : f[ip->c] = f[ip->a] * f[ip->b]; NEXT();
    CASE(DIVF64) : f[ip->c] = f[ip->a] / f[ip->b]; NEXT();
    CASE(EQF64) : s.equal_flag = f[ip->a] == f[ip->b]; NEXT();
    CASE(NEQF64) : s.equal_flag = f[ip->a] != f[ip->b]; NEXT();
    CASE(GTF64) : s.equal_flag = f[ip->a] > f[ip->b]; NEXT();
    CASE(GTEF64) : s.equal_flag = f[ip->a] >= f[ip->b]; NEXT();
    CASE(LTF64) : s.equal_flag = f[ip->a] < f[ip->b]; NEXT();
    CASE(LTEF64) : s.equal_flag = f[ip->a] <= f[ip->b]; NEXT();
    CASE(SHL) : r[ip->a] = static_cast<int32_t>(static_cast<uint32_t>(r[ip->a]) << ip->imm); NEXT();
    CASE(SHR) : r[ip->a] = r[ip->a] >> ip->imm; NEXT();  // arithmetic since C++20
    CASE(AND) : r[ip->c] = r[ip->a] & r[ip->b]; NEXT();
    CASE(OR) : r[ip->c] = r[ip->a] | r[ip->b]; NEXT();
    CASE(XOR) : r[ip->c] = r[ip->a] ^ r[ip->b]; NEXT();
    CASE(NOT) : r[ip->b] = ~r[ip->a]; NEXT();
    CASE(LUI) : r[ip->a] = static_cast<int32_t>(static_cast<uint32_t>(r[ip->a]) << 16 | static_cast<uint32_t>(ip->imm)); NEXT();
    CASE(CLOOP) : s.loop_counter = static_cast<uint16_t>(ip->imm); NEXT();
    CASE(LOOP) : {
      if (s.loop_counter != 0) {
        --s.loop_counter;
        ip = base + ip->imm;
        DISPATCH();
      }
      NEXT();
    }
    CASE(LOADM) : {
      const int32_t at = r[ip->a];
      if (at < 0 || static_cast<std::size_t>(at) + 4 > s.heap.size()) {
        return fail(Fault::kHeapOutOfBounds, index(),
                    "read of 4 bytes at " + std::to_string(at) + ", heap is " +
                        std::to_string(s.heap.size()) + " bytes");
      }
      std::memcpy(&r[ip->b], s.heap.data() + at, 4);
      NEXT();
    }
    CASE(SETM) : {
      const int32_t at = r[ip->a];
      if (at < 0 || static_cast<std::size_t>(at) + 4 > s.heap.size()) {
        return fail(Fault::kHeapOutOfBounds, index(),
                    "write of 4 bytes at " + std::to_string(at) + ", heap is " +
                        std::to_string(s.heap.size()) + " bytes");
      }
      std::memcpy(s.heap.data() + at, &r[ip->b], 4);
      NEXT();
    }
    CASE(PUSH) : {
      if (s.stack.size() >= limits_.stack_cap) {
        return fail(Fault::kStackOverflow, index(), "cap is " + std::to_string(limits_.stack_cap) + " entries");
      }
      s.stack.push_back(r[ip->a]);
      NEXT();
    }
    CASE(POP) : {
      if (s.stack.empty()) return fail(Fault::kStackUnderflow, index(), "POP on an empty stack");
      r[ip->a] = s.stack.back();
      s.stack.pop_back();
      NEXT();
    }
    CASE(CALL) : {
      if (s.stack.size() + 2 > limits_.stack_cap) {
        return fail(Fault::kStackOverflow, index(), "cap is " + std::to_string(limits_.stack_cap) + " entries");
      }
      s.stack.push_back(static_cast<int32_t>(OFFSET() + 4));
      s.stack.push_back(static_cast<int32_t>(s.bp));
      s.bp = s.stack.size();
      ip = base + ip->imm;
      DISPATCH();
    }
    CASE(RET) : {
      if (s.bp > s.stack.size() || s.bp < 2) {
        return fail(Fault::kStackUnderflow, index(), "RET without a matching CALL frame");
      }
      s.stack.resize(s.bp);
      const int32_t saved_bp = s.stack.back();
      s.stack.pop_back();
      const int32_t return_to = s.stack.back();
      s.stack.pop_back();
      if (saved_bp < 0 || static_cast<std::size_t>(saved_bp) > s.stack.size()) {
        return fail(Fault::kStackUnderflow, index(), "RET found a corrupt frame pointer " + std::to_string(saved_bp));
      }
      s.bp = static_cast<std::size_t>(saved_bp);
      JUMP_TO(return_to);
    }
    CASE(IGL) : return fail(Fault::kIllegalInstruction, index(), "IGL");
    CASE_END : {
      s.pc = static_cast<uint32_t>(code_length);
      return RunResult{RunStatus::kEnded, std::nullopt};
    }
#if IRIDIUM_COMPUTED_GOTO
  op_invalid:
#else
    default:
#endif
    return fail(Fault::kIllegalInstruction, index(), "unverified opcode " + std::to_string(ip->op));
  }
#undef CASE
#undef CASE_END
#undef DISPATCH
#undef NEXT
#undef JUMP_TO
#undef OFFSET
#undef IRIDIUM_STEP
}

template RunResult Vm::execute<false>();
template RunResult Vm::execute<true>();

}  // namespace iridium::vm
