// The execution loop. The image was verified at load (opcodes, registers,
// shifts, static targets, read-only offsets), so the loop only checks what
// depends on run-time values: dynamic jump targets, division, heap, stack.
//
// Where GCC/Clang "labels as values" are available there are two loops, one
// template instantiated twice:
// - the fast path (no step limit) is direct-threaded: the first run after a
//   load stores each handler's address in its decoded instruction, so
//   dispatch is a single indirect jump through the instruction. That pass
//   also fuses a comparison followed by DJMPE into one superinstruction (the
//   DJMPE keeps its own handler, so jumps that land on it still work);
// - the step-counting path dispatches on the opcode byte through a label
//   table, one instruction at a time, never fused, so the step limit stops
//   a program at exactly the same instruction as before.
// Elsewhere it is a switch. All three run the same handler code below, and
// the image, its disassembly and every fault and its offset are unchanged.
#include <algorithm>
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

// GCC's manual advises -fno-gcse for computed-goto interpreters: global CSE
// otherwise hoists and merges work across the handlers. Measured: ~8% on the
// call-heavy fib benchmark, neutral elsewhere (docs/performance.md).
#if defined(__GNUC__) && !defined(__clang__)
#define IRIDIUM_INTERPRETER_ATTRIBUTES __attribute__((optimize("no-gcse")))
#else
#define IRIDIUM_INTERPRETER_ATTRIBUTES
#endif

namespace iridium::vm {

static_assert(std::endian::native == std::endian::little,
              "LOADM/SETM copy heap words as little-endian host integers");

namespace {
inline int32_t wrap(int64_t value) {
  return static_cast<int32_t>(static_cast<uint32_t>(value));
}
}  // namespace

template <bool kCountSteps>
IRIDIUM_INTERPRETER_ATTRIBUTES RunResult Vm::execute() {
  const Decoded* const base = decoded_.data();
  const int64_t code_length = static_cast<int64_t>(image_.code.size());
  const Decoded* ip = base + state_.pc / kInstructionSize;
  int32_t* const r = state_.registers.data();
  double* const f = state_.float_registers.data();
  MachineState& s = state_;
  uint64_t steps_left = limits_.max_steps;

  // The hottest machine state lives in locals (host registers) while the loop
  // runs: the equal flag, the frame pointer and the stack depth. SYNC_STATE()
  // writes them back on every way out of the loop, and before the output
  // callback, which could look at the machine (RELOAD_STATE() after it).
  bool flag = s.equal_flag;
  std::size_t bp = s.bp;
  // The stack's first sp entries are in use. The vector is kept at least sp
  // long and grown ahead in chunks, so a push is one store; room (never more
  // than the cap) is the depth reachable before it must grow again.
  std::vector<int32_t>& stack = s.stack;
  const std::size_t stack_cap = limits_.stack_cap;
  std::size_t sp = stack.size();
  int32_t* stk = stack.data();
  std::size_t room = std::min(sp, stack_cap);
  // Makes room >= need; need is at most the cap.
  auto grow_stack = [&](std::size_t need) {
    const std::size_t want =
        std::min(stack_cap, std::max({need, 2 * stack.size(), std::size_t{64}}));
    if (want > stack.size()) stack.resize(want);
    stk = stack.data();
    room = std::min(stack.size(), stack_cap);
  };

  auto index = [&] { return static_cast<std::size_t>(ip - base); };

#define SYNC_STATE()     \
  do {                   \
    s.equal_flag = flag; \
    s.bp = bp;           \
    stack.resize(sp);    \
  } while (0)
#define RELOAD_STATE()              \
  do {                              \
    flag = s.equal_flag;            \
    bp = s.bp;                      \
    sp = stack.size();              \
    stk = stack.data();             \
    room = std::min(sp, stack_cap); \
  } while (0)
#define FAIL(...)             \
  do {                        \
    SYNC_STATE();             \
    return fail(__VA_ARGS__); \
  } while (0)
#define IRIDIUM_STEP()                                                                     \
  do {                                                                                     \
    if constexpr (kCountSteps) {                                                           \
      if (steps_left == 0 && ip->op != kEndSentinel) FAIL(Fault::kStepLimit, index(), ""); \
      --steps_left;                                                                        \
    }                                                                                      \
  } while (0)

#if IRIDIUM_COMPUTED_GOTO
  void* table[256];
  for (auto& entry : table) entry = &&op_invalid;
#define IRIDIUM_X(name, number, form, meaning) table[number] = &&op_##name;
  IRIDIUM_OPCODES(IRIDIUM_X)
#undef IRIDIUM_X
  table[kEndSentinel] = &&op_END;
  // Threads the code for the fast path, once per load (see the top of the
  // file). A plain `if`, not `if constexpr`, so both instantiations take the
  // fused handlers' addresses.
  if (!kCountSteps && !threaded_) {
    const std::size_t count = decoded_.size();
    for (std::size_t i = 0; i < count; ++i) {
      Decoded& d = decoded_[i];
      d.handler = table[d.op];
      if (i + 1 < count && decoded_[i + 1].op == static_cast<uint8_t>(Op::DJMPE)) {
        switch (static_cast<Op>(d.op)) {
          // clang-format off: one fused compare per line (clang-format reflows the
          // macro calls differently on every pass).
#define IRIDIUM_FUSE(name)           \
  case Op::name:                     \
    d.handler = &&op_##name##_DJMPE; \
    break;
          IRIDIUM_FUSE(EQ)
          IRIDIUM_FUSE(NEQ)
          IRIDIUM_FUSE(GTE)
          IRIDIUM_FUSE(LTE)
          IRIDIUM_FUSE(LT)
          IRIDIUM_FUSE(GT)
          IRIDIUM_FUSE(EQF64)
          IRIDIUM_FUSE(NEQF64)
          IRIDIUM_FUSE(GTF64)
          IRIDIUM_FUSE(GTEF64)
          IRIDIUM_FUSE(LTF64)
          IRIDIUM_FUSE(LTEF64)
#undef IRIDIUM_FUSE
          default:
            break;
            // clang-format on
        }
      }
    }
    threaded_ = true;
  }
#define CASE(name) op_##name
#define CASE_END op_END
#define DISPATCH()               \
  do {                           \
    if constexpr (kCountSteps) { \
      IRIDIUM_STEP();            \
      goto* table[ip->op];       \
    } else {                     \
      goto * ip->handler;        \
    }                            \
  } while (0)
#else
#define CASE(name) case static_cast<uint8_t>(Op::name)
#define CASE_END case kEndSentinel
#define DISPATCH() goto dispatch
#endif
#define NEXT()  \
  do {          \
    ++ip;       \
    DISPATCH(); \
  } while (0)
// Jumps to a run-time byte offset, checking it first.
#define JUMP_TO(target_expr)                                                             \
  do {                                                                                   \
    const int64_t target = (target_expr);                                                \
    if (target < 0 || target % 4 != 0 || target > code_length) {                         \
      FAIL(Fault::kBadJumpTarget, index(),                                               \
           "target " + std::to_string(target) +                                          \
               (target % 4 != 0                                                          \
                    ? " is not a multiple of 4"                                          \
                    : " is outside the code (0.." + std::to_string(code_length) + ")")); \
    }                                                                                    \
    ip = base + target / 4;                                                              \
    DISPATCH();                                                                          \
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
    CASE(LOAD) : r[ip->a] = ip->imm;
    NEXT();
    CASE(ADD) : r[ip->c] = wrap(int64_t{r[ip->a]} + r[ip->b]);
    NEXT();
    CASE(SUB) : r[ip->c] = wrap(int64_t{r[ip->a]} - r[ip->b]);
    NEXT();
    CASE(MUL) : r[ip->c] = wrap(int64_t{r[ip->a]} * r[ip->b]);
    NEXT();
    CASE(DIV) : {
      const int32_t a = r[ip->a];
      const int32_t b = r[ip->b];
      if (b == 0) FAIL(Fault::kDivisionByZero, index(), "");
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
      SYNC_STATE();
      s.pc = static_cast<uint32_t>(OFFSET() + 4);
      return RunResult{RunStatus::kHalted, std::nullopt};
    }
    CASE(JMP) : JUMP_TO(r[ip->a]);
    CASE(JMPF) : JUMP_TO(OFFSET() + r[ip->a]);
    CASE(JMPB) : JUMP_TO(OFFSET() - r[ip->a]);
    CASE(EQ) : flag = r[ip->a] == r[ip->b];
    NEXT();
    CASE(NEQ) : flag = r[ip->a] != r[ip->b];
    NEXT();
    CASE(GTE) : flag = r[ip->a] >= r[ip->b];
    NEXT();
    CASE(LTE) : flag = r[ip->a] <= r[ip->b];
    NEXT();
    CASE(LT) : flag = r[ip->a] < r[ip->b];
    NEXT();
    CASE(GT) : flag = r[ip->a] > r[ip->b];
    NEXT();
    CASE(JMPE) : {
      if (flag) JUMP_TO(r[ip->a]);
      NEXT();
    }
    CASE(NOP) : NEXT();
    CASE(ALOC) : {
      const int32_t bytes = r[ip->a];
      if (bytes < 0) {
        FAIL(Fault::kBadAllocation, index(), "cannot grow the heap by " + std::to_string(bytes));
      }
      if (s.heap.size() + static_cast<std::size_t>(bytes) > limits_.heap_cap) {
        FAIL(Fault::kHeapCap, index(),
             "growing " + std::to_string(s.heap.size()) + " bytes by " + std::to_string(bytes) +
                 " passes the cap of " + std::to_string(limits_.heap_cap));
      }
      s.heap.resize(s.heap.size() + static_cast<std::size_t>(bytes), 0);
      NEXT();
    }
    CASE(INC) : r[ip->a] = wrap(int64_t{r[ip->a]} + 1);
    NEXT();
    CASE(DEC) : r[ip->a] = wrap(int64_t{r[ip->a]} - 1);
    NEXT();
    CASE(DJMPE) : {
      if (flag) {
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
        FAIL(Fault::kStringWithoutNul, index(), "read-only offset " + std::to_string(start));
      }
      const auto length =
          static_cast<std::size_t>(static_cast<const uint8_t*>(nul) - (ro.data() + start));
      if (output_) {
        SYNC_STATE();  // the output callback may look at the machine, even change it
        output_(std::string_view(reinterpret_cast<const char*>(ro.data() + start), length));
        RELOAD_STATE();
      }
      NEXT();
    }
    CASE(LOADF64) : f[ip->a] = static_cast<double>(ip->imm);
    NEXT();
    CASE(ADDF64) : f[ip->c] = f[ip->a] + f[ip->b];
    NEXT();
    CASE(SUBF64) : f[ip->c] = f[ip->a] - f[ip->b];
    NEXT();
    CASE(MULF64) : f[ip->c] = f[ip->a] * f[ip->b];
    NEXT();
    CASE(DIVF64) : f[ip->c] = f[ip->a] / f[ip->b];
    NEXT();
    CASE(EQF64) : flag = f[ip->a] == f[ip->b];
    NEXT();
    CASE(NEQF64) : flag = f[ip->a] != f[ip->b];
    NEXT();
    CASE(GTF64) : flag = f[ip->a] > f[ip->b];
    NEXT();
    CASE(GTEF64) : flag = f[ip->a] >= f[ip->b];
    NEXT();
    CASE(LTF64) : flag = f[ip->a] < f[ip->b];
    NEXT();
    CASE(LTEF64) : flag = f[ip->a] <= f[ip->b];
    NEXT();
    CASE(SHL) : r[ip->a] = static_cast<int32_t>(static_cast<uint32_t>(r[ip->a]) << ip->imm);
    NEXT();
    CASE(SHR) : r[ip->a] = r[ip->a] >> ip->imm;
    NEXT();  // arithmetic since C++20
    CASE(AND) : r[ip->c] = r[ip->a] & r[ip->b];
    NEXT();
    CASE(OR) : r[ip->c] = r[ip->a] | r[ip->b];
    NEXT();
    CASE(XOR) : r[ip->c] = r[ip->a] ^ r[ip->b];
    NEXT();
    CASE(NOT) : r[ip->b] = ~r[ip->a];
    NEXT();
    CASE(LUI)
        : r[ip->a] = static_cast<int32_t>(static_cast<uint32_t>(r[ip->a]) << 16 |
                                          static_cast<uint32_t>(ip->imm));
    NEXT();
    CASE(CLOOP) : s.loop_counter = static_cast<uint16_t>(ip->imm);
    NEXT();
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
        FAIL(Fault::kHeapOutOfBounds, index(),
             "read of 4 bytes at " + std::to_string(at) + ", heap is " +
                 std::to_string(s.heap.size()) + " bytes");
      }
      std::memcpy(&r[ip->b], s.heap.data() + at, 4);
      NEXT();
    }
    CASE(SETM) : {
      const int32_t at = r[ip->a];
      if (at < 0 || static_cast<std::size_t>(at) + 4 > s.heap.size()) {
        FAIL(Fault::kHeapOutOfBounds, index(),
             "write of 4 bytes at " + std::to_string(at) + ", heap is " +
                 std::to_string(s.heap.size()) + " bytes");
      }
      std::memcpy(s.heap.data() + at, &r[ip->b], 4);
      NEXT();
    }
    CASE(PUSH) : {
      if (sp >= room) [[unlikely]] {
        if (sp >= stack_cap) {
          FAIL(Fault::kStackOverflow, index(), "cap is " + std::to_string(stack_cap) + " entries");
        }
        grow_stack(sp + 1);
      }
      stk[sp++] = r[ip->a];
      NEXT();
    }
    CASE(POP) : {
      if (sp == 0) FAIL(Fault::kStackUnderflow, index(), "POP on an empty stack");
      r[ip->a] = stk[--sp];
      NEXT();
    }
    CASE(CALL) : {
      if (sp + 2 > room) [[unlikely]] {
        if (sp + 2 > stack_cap) {
          FAIL(Fault::kStackOverflow, index(), "cap is " + std::to_string(stack_cap) + " entries");
        }
        grow_stack(sp + 2);
      }
      stk[sp++] = static_cast<int32_t>(OFFSET() + 4);  // return address
      stk[sp++] = static_cast<int32_t>(bp);
      bp = sp;
      ip = base + ip->imm;
      DISPATCH();
    }
    CASE(RET) : {
      if (bp > sp || bp < 2)
        FAIL(Fault::kStackUnderflow, index(), "RET without a matching CALL frame");
      sp = bp;  // drop everything above the frame
      const int32_t saved_bp = stk[--sp];
      const int32_t return_to = stk[--sp];
      if (saved_bp < 0 || static_cast<std::size_t>(saved_bp) > sp) {
        FAIL(Fault::kStackUnderflow, index(),
             "RET found a corrupt frame pointer " + std::to_string(saved_bp));
      }
      bp = static_cast<std::size_t>(saved_bp);
      JUMP_TO(return_to);
    }
#if IRIDIUM_COMPUTED_GOTO
    // Superinstructions (fast path only): a comparison and the DJMPE after
    // it, exactly as the two would run one after the other. Neither can fault.
#define IRIDIUM_FUSED(name, file, cmp)                    \
  op_##name##_DJMPE : flag = file[ip->a] cmp file[ip->b]; \
  if (flag) {                                             \
    ip = base + ip[1].imm;                                \
    DISPATCH();                                           \
  }                                                       \
  ip += 2;                                                \
  DISPATCH();
    IRIDIUM_FUSED(EQ, r, ==)
    IRIDIUM_FUSED(NEQ, r, !=)
    IRIDIUM_FUSED(GTE, r, >=)
    IRIDIUM_FUSED(LTE, r, <=)
    IRIDIUM_FUSED(LT, r, <)
    IRIDIUM_FUSED(GT, r, >)
    IRIDIUM_FUSED(EQF64, f, ==)
    IRIDIUM_FUSED(NEQF64, f, !=)
    IRIDIUM_FUSED(GTF64, f, >)
    IRIDIUM_FUSED(GTEF64, f, >=)
    IRIDIUM_FUSED(LTF64, f, <)
    IRIDIUM_FUSED(LTEF64, f, <=)
#undef IRIDIUM_FUSED
#endif
    CASE(IGL) : FAIL(Fault::kIllegalInstruction, index(), "IGL");
  CASE_END : {
    SYNC_STATE();
    s.pc = static_cast<uint32_t>(code_length);
    return RunResult{RunStatus::kEnded, std::nullopt};
  }
#if IRIDIUM_COMPUTED_GOTO
  op_invalid:
#else
  default:
#endif
    FAIL(Fault::kIllegalInstruction, index(), "unverified opcode " + std::to_string(ip->op));
  }
#undef CASE
#undef CASE_END
#undef DISPATCH
#undef NEXT
#undef JUMP_TO
#undef OFFSET
#undef IRIDIUM_STEP
#undef FAIL
#undef SYNC_STATE
#undef RELOAD_STATE
}

template RunResult Vm::execute<false>();
template RunResult Vm::execute<true>();

}  // namespace iridium::vm
