#include <climits>

#include "vm_harness.h"

using iridium::testing::code_image;
using iridium::testing::insn;
using iridium::testing::run_asm;
using iridium::testing::run_image;
using iridium::vm::Fault;
using iridium::vm::Limits;
using iridium::vm::Op;
using iridium::vm::RunStatus;

TEST_CASE("LOAD sign-extends, LUI builds 32-bit constants", "[vm][load]") {
  auto o = run_asm(
      "load $0 #-1\nload $1 #32767\nload $2 #100000\nload $3 #-100000\n"
      "load $4 #0x7FFFFFFF\nload $5 #-2147483648\nload $6 #0xFFFFFFFF\n");
  CHECK(o->result.status == RunStatus::kEnded);
  CHECK(o->reg(0) == -1);
  CHECK(o->reg(1) == 32767);
  CHECK(o->reg(2) == 100000);
  CHECK(o->reg(3) == -100000);
  CHECK(o->reg(4) == INT32_MAX);
  CHECK(o->reg(5) == INT32_MIN);
  CHECK(o->reg(6) == -1);
  auto lui = run_asm("load $0 #1\nlui $0 #0x86A0\n");
  CHECK(lui->reg(0) == 100000);
}

TEST_CASE("integer arithmetic wraps", "[vm][arith]") {
  auto o = run_asm(
      "load $0 #0x7FFFFFFF\nload $1 #1\nadd $0 $1 $2\nsub $2 $1 $3\n"
      "mul $0 $0 $4\nload $5 #-2147483648\ndec $5\ninc $0\n");
  CHECK(o->reg(2) == INT32_MIN);
  CHECK(o->reg(3) == INT32_MAX);
  CHECK(o->reg(4) == 1);  // (2^31-1)^2 mod 2^32
  CHECK(o->reg(5) == INT32_MAX);
  CHECK(o->reg(0) == INT32_MIN);
}

TEST_CASE("DIV truncates and sets the remainder", "[vm][div]") {
  auto o = run_asm("load $0 #-7\nload $1 #2\ndiv $0 $1 $2\n");
  CHECK(o->reg(2) == -3);
  CHECK(o->machine.state().remainder == -1);
  auto min = run_asm("load $0 #-2147483648\nload $1 #-1\ndiv $0 $1 $2\n");
  CHECK(min->result.ok());
  CHECK(min->reg(2) == INT32_MIN);
  CHECK(min->machine.state().remainder == 0);
  auto zero = run_asm("load $0 #5\nload $1 #0\ndiv $0 $1 $2\n");
  REQUIRE(zero->result.status == RunStatus::kError);
  CHECK(zero->fault() == Fault::kDivisionByZero);
  CHECK(zero->result.error->offset == 8);
  CHECK(zero->result.error->message == "division by zero at code offset 8");
}

TEST_CASE("comparisons set the equal flag", "[vm][compare]") {
  struct Case {
    const char* op;
    int a, b;
    bool expect;
  };
  const Case cases[] = {{"eq", 3, 3, true},   {"eq", 3, 4, false},  {"neq", 3, 4, true},
                        {"neq", 3, 3, false}, {"gt", 4, 3, true},   {"gt", 3, 3, false},
                        {"gte", 3, 3, true},  {"gte", 2, 3, false}, {"lt", -1, 0, true},
                        {"lt", 0, 0, false},  {"lte", 0, 0, true},  {"lte", 1, 0, false}};
  for (const Case& c : cases) {
    auto o = run_asm("load $0 #" + std::to_string(c.a) + "\nload $1 #" + std::to_string(c.b) +
                     "\n" + c.op + " $0 $1\n");
    INFO(c.op << " " << c.a << " " << c.b);
    CHECK(o->flag() == c.expect);
  }
}

TEST_CASE("float arithmetic and exact comparisons", "[vm][float]") {
  auto o = run_asm(
      "loadf64 $0 #7\nloadf64 $1 #2\naddf64 $0 $1 $2\nsubf64 $0 $1 $3\n"
      "mulf64 $0 $1 $4\ndivf64 $0 $1 $5\nloadf64 $6 #0\ndivf64 $0 $6 $7\n"
      "loadf64 $8 #-3\n");
  CHECK(o->freg(2) == 9.0);
  CHECK(o->freg(3) == 5.0);
  CHECK(o->freg(4) == 14.0);
  CHECK(o->freg(5) == 3.5);
  CHECK(std::isinf(o->freg(7)));  // IEEE 754: no fault
  CHECK(o->freg(8) == -3.0);
  CHECK(o->reg(0) == 0);  // the integer file is untouched
  const std::pair<const char*, bool> cmp[] = {{"eqf64", false}, {"neqf64", true},
                                              {"gtf64", true},  {"gtef64", true},
                                              {"ltf64", false}, {"ltef64", false}};
  for (auto [op, expect] : cmp) {
    auto c = run_asm(std::string("loadf64 $0 #2\nloadf64 $1 #1\n") + op + " $0 $1\n");
    INFO(op);
    CHECK(c->flag() == expect);
  }
}

TEST_CASE("bitwise operations and shifts", "[vm][bits]") {
  auto o = run_asm(
      "load $0 #12\nload $1 #10\nand $0 $1 $2\nor $0 $1 $3\nxor $0 $1 $4\nnot $0 $5\n"
      "load $6 #1\nshl $6 #31\nload $7 #-16\nshr $7 #2\nload $8 #1\nshl $8\n"
      "load $9 #5\nshr $9 #0\n");
  CHECK(o->reg(2) == 8);
  CHECK(o->reg(3) == 14);
  CHECK(o->reg(4) == 6);
  CHECK(o->reg(5) == ~12);
  CHECK(o->reg(6) == INT32_MIN);
  CHECK(o->reg(7) == -4);  // arithmetic
  CHECK(o->reg(8) == 65536);
  CHECK(o->reg(9) == 5);
}

TEST_CASE("HLT halts, falling off the end ends", "[vm][control]") {
  auto halted = run_asm("load $0 #1\nhlt\nload $0 #2\n");
  CHECK(halted->result.status == RunStatus::kHalted);
  CHECK(halted->reg(0) == 1);
  auto ended = run_asm("load $0 #1\nnop\n");
  CHECK(ended->result.status == RunStatus::kEnded);
  auto empty = run_image(iridium::vm::Image{});
  CHECK(empty->result.status == RunStatus::kEnded);
}

TEST_CASE("register jumps: JMP, JMPF, JMPB, JMPE", "[vm][jump]") {
  // JMP to 12 skips the load at 8.
  auto jmp = run_asm("load $0 #12\njmp $0\nload $1 #1\nload $2 #2\n");
  CHECK(jmp->reg(1) == 0);
  CHECK(jmp->reg(2) == 2);
  // JMPF by 8 from its own address skips one instruction; by 4 falls through.
  auto fwd = run_asm("load $0 #8\njmpf $0\nload $1 #1\nload $2 #2\n");
  CHECK(fwd->reg(1) == 0);
  CHECK(fwd->reg(2) == 2);
  auto fall = run_asm("load $0 #4\njmpf $0\nload $1 #1\n");
  CHECK(fall->reg(1) == 1);
  // JMPB loops back: count $1 down from 3.
  auto back = run_asm(
      "load $1 #3\nload $2 #0\nload $3 #16\ntop: dec $1\ninc $4\neq $1 $2\n"
      "djmpe @out\njmpb $3\nout: hlt\n");
  CHECK(back->reg(4) == 3);
  auto jmpe = run_asm("load $0 #20\nload $1 #1\neq $1 $1\njmpe $0\nload $5 #9\n");
  CHECK(jmpe->reg(5) == 0);
  auto nojmpe = run_asm("load $0 #16\nload $1 #1\nneq $1 $1\njmpe $0\nload $5 #9\n");
  CHECK(nojmpe->reg(5) == 9);
  // Jumping to exactly the code length ends normally.
  auto end = run_asm("load $0 #8\njmp $0\n");
  CHECK(end->result.status == RunStatus::kEnded);
}

TEST_CASE("every kind of bad jump target faults with its offset", "[vm][jump]") {
  const char* programs[] = {
      "load $0 #6\njmp $0\n",     // not a multiple of 4
      "load $0 #100\njmp $0\n",   // past the end
      "load $0 #-4\njmp $0\n",    // negative
      "load $0 #100\njmpf $0\n",  // relative, past the end
      "load $0 #8\njmpb $0\n",    // relative, before the start
      "load $0 #2\njmpf $0\n",    // relative, misaligned
      "load $0 #99\neq $0 $0\njmpe $0\n",
  };
  for (const char* program : programs) {
    auto o = run_asm(program);
    INFO(program);
    REQUIRE(o->result.status == RunStatus::kError);
    CHECK(o->fault() == Fault::kBadJumpTarget);
    CHECK(o->result.error->offset >= 4);
  }
}

TEST_CASE("DJMPE, CLOOP and LOOP", "[vm][loop]") {
  auto loop = run_asm("cloop #5\ntop: inc $0\nloop @top\n");
  CHECK(loop->reg(0) == 6);  // body runs once, then LOOP repeats it 5 times
  CHECK(loop->machine.state().loop_counter == 0);
  auto zero = run_asm("cloop #0\ntop: inc $0\nloop @top\n");
  CHECK(zero->reg(0) == 1);
  auto count = run_asm("load $0 #1000\ntop: inc $1\nneq $0 $1\ndjmpe @top\n");
  CHECK(count->reg(1) == 1000);
}

TEST_CASE("heap: ALOC, SETM, LOADM and their bounds", "[vm][heap]") {
  auto o = run_asm("load $0 #-123456\nload $1 #60\nsetm $1 $0\nloadm $1 $2\n");
  CHECK(o->reg(2) == -123456);
  CHECK(o->machine.state().heap.size() == 64);
  CHECK(o->machine.state().heap[60] == 0xC0);  // little-endian: -123456 = 0xFFFE1DC0
  auto grown = run_asm("load $0 #36\naloc $0\nload $1 #96\nload $2 #7\nsetm $1 $2\nloadm $1 $3\n");
  CHECK(grown->machine.state().heap.size() == 100);
  CHECK(grown->reg(3) == 7);
  const char* faults[] = {"load $1 #61\nloadm $1 $2\n", "load $1 #-1\nloadm $1 $2\n",
                          "load $1 #64\nsetm $1 $2\n", "load $1 #-2147483648\nsetm $1 $2\n"};
  for (const char* program : faults) {
    auto f = run_asm(program);
    INFO(program);
    REQUIRE(f->result.status == RunStatus::kError);
    CHECK(f->fault() == Fault::kHeapOutOfBounds);
  }
  auto negative = run_asm("load $0 #-1\naloc $0\n");
  CHECK(negative->fault() == Fault::kBadAllocation);
  Limits small;
  small.heap_cap = 128;
  auto capped = run_asm("load $0 #64\naloc $0\naloc $0\n", small);
  REQUIRE(capped->result.status == RunStatus::kError);
  CHECK(capped->fault() == Fault::kHeapCap);
  CHECK(capped->result.error->offset == 8);
  CHECK(capped->machine.state().heap.size() == 128);
}

TEST_CASE("stack: PUSH/POP, underflow and overflow", "[vm][stack]") {
  auto o = run_asm("load $0 #1\nload $1 #2\npush $0\npush $1\npop $2\npop $3\n");
  CHECK(o->reg(2) == 2);
  CHECK(o->reg(3) == 1);
  auto under = run_asm("pop $0\n");
  CHECK(under->fault() == Fault::kStackUnderflow);
  Limits small;
  small.stack_cap = 3;
  auto over = run_asm("push $0\npush $0\npush $0\npush $0\n", small);
  REQUIRE(over->result.status == RunStatus::kError);
  CHECK(over->fault() == Fault::kStackOverflow);
  CHECK(over->result.error->offset == 12);
  auto deep = run_asm("top: call @top\n", small);
  CHECK(deep->fault() == Fault::kStackOverflow);
}

TEST_CASE("CALL and RET keep frames", "[vm][call]") {
  auto o = run_asm("load $0 #5\ncall @double\ninc $0\nhlt\ndouble: push $0\nadd $0 $0 $0\nret\n");
  CHECK(o->result.status == RunStatus::kHalted);
  CHECK(o->reg(0) == 11);
  CHECK(o->machine.state().stack.empty());  // RET dropped the pushed value
  CHECK(o->machine.state().bp == 0);
  auto bare = run_asm("ret\n");
  CHECK(bare->fault() == Fault::kStackUnderflow);
  // A corrupted return address is caught as a bad jump.
  auto corrupt = run_asm("call @f\nhlt\nf: pop $1\npop $2\nload $3 #2\npush $3\npush $1\nret\n");
  CHECK(corrupt->fault() == Fault::kBadJumpTarget);
}

TEST_CASE("PRTS prints NUL-terminated strings and faults without NUL", "[vm][prts]") {
  auto o = run_asm(".data\na: .asciiz 'Hi\\n'\nb: .asciiz 'there'\n.code\nprts @a\nprts @b\n");
  CHECK(o->output == "Hi\nthere");
  auto image = code_image({insn(Op::PRTS, 0, 1, 0)}, {'a', 'b', 'c'});
  auto f = run_image(image);
  CHECK(f->fault() == Fault::kStringWithoutNul);
}

TEST_CASE("IGL always faults", "[vm][igl]") {
  auto o = run_asm("load $0 #1\nigl\n");
  REQUIRE(o->result.status == RunStatus::kError);
  CHECK(o->fault() == Fault::kIllegalInstruction);
  CHECK(o->result.error->offset == 4);
}

TEST_CASE("the step limit stops a runaway program", "[vm][steps]") {
  Limits limits;
  limits.max_steps = 1000;
  auto o = run_asm("top: inc $0\ndjmpe @top\nload $1 #4\njmp $1\n", limits);
  REQUIRE(o->result.status == RunStatus::kError);
  CHECK(o->fault() == Fault::kStepLimit);
  auto fits = run_asm("load $0 #1\nload $0 #2\n", Limits{64u << 20, 1u << 20, 2});
  CHECK(fits->result.status == RunStatus::kEnded);
  auto exceeds = run_asm("load $0 #1\nload $0 #2\nnop\n", Limits{64u << 20, 1u << 20, 2});
  CHECK(exceeds->fault() == Fault::kStepLimit);
}

TEST_CASE("state persists across loads, as the shell needs", "[vm][shell]") {
  iridium::vm::Vm machine;
  auto first = iridium::testing::assemble_ok("load $0 #41\n");
  REQUIRE(machine.load(first).ok());
  CHECK(machine.run().status == RunStatus::kEnded);
  auto grown = first;
  auto more = iridium::testing::assemble_ok("inc $0\n");
  grown.code.insert(grown.code.end(), more.code.begin(), more.code.end());
  REQUIRE(machine.load(grown).ok());
  CHECK(machine.run_from(4).status == RunStatus::kEnded);
  CHECK(machine.state().registers[0] == 42);
  CHECK(machine.run_from(6).status == RunStatus::kError);
}
