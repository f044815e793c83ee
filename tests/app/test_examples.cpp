// Every example runs and reaches the final state its comments promise.
#include <cmath>

#include "asm/program_file.h"
#include "vm_harness.h"

using iridium::vm::RunStatus;

namespace {
std::unique_ptr<iridium::testing::Outcome> run_example(const std::string& name) {
  auto image = iridium::assembler::load_program_file(IRIDIUM_SOURCE_DIR "/examples/" + name);
  INFO(name);
  REQUIRE(image.ok());
  return iridium::testing::run_image(*image);
}
}  // namespace

TEST_CASE("hello prints its greeting", "[examples]") {
  auto o = run_example("hello.iasm");
  CHECK(o->result.status == RunStatus::kHalted);
  CHECK(o->output == "Hello, Iridium!\n");
}

TEST_CASE("count loops to 100000", "[examples]") {
  auto o = run_example("count.iasm");
  CHECK(o->result.status == RunStatus::kHalted);
  CHECK(o->reg(0) == 100000);
  CHECK(o->reg(1) == 100000);
  CHECK_FALSE(o->flag());
}

TEST_CASE("fib computes fib(15) recursively", "[examples]") {
  auto o = run_example("fib.iasm");
  CHECK(o->result.status == RunStatus::kHalted);
  CHECK(o->reg(0) == 610);
  CHECK(o->machine.state().stack.empty());
  CHECK(o->machine.state().bp == 0);
}

TEST_CASE("heap sums squares stored on the heap", "[examples]") {
  auto o = run_example("heap.iasm");
  CHECK(o->result.status == RunStatus::kHalted);
  CHECK(o->reg(5) == 285);
  CHECK(o->machine.state().heap.size() == 104);
}

TEST_CASE("float computes a circle's area", "[examples]") {
  auto o = run_example("float.iasm");
  CHECK(o->result.status == RunStatus::kHalted);
  CHECK(o->freg(2) == 355.0 / 113.0);
  CHECK(o->freg(3) == (355.0 / 113.0) * 100.0);
  CHECK_FALSE(o->flag());
}
