#include "vm/image.h"
#include "vm/verifier.h"
#include "vm_harness.h"

using iridium::testing::code_image;
using iridium::testing::insn;
using iridium::vm::Image;
using iridium::vm::Op;

namespace {
std::string load_error(const std::vector<uint8_t>& bytes) {
  auto image = iridium::vm::load_image(bytes);
  REQUIRE_FALSE(image.ok());
  return image.message();
}
std::string verify_error(const Image& image) {
  auto status = iridium::vm::verify(image);
  REQUIRE_FALSE(status.ok());
  return status.message();
}
}  // namespace

TEST_CASE("images round-trip through serialize and load", "[image]") {
  Image image = code_image({insn(Op::PRTS, 0, 0, 0), insn(Op::HLT)}, {'h', 'i', 0});
  auto bytes = iridium::vm::serialize_image(image);
  REQUIRE(bytes.size() == 68 + 3 + 8);
  CHECK(bytes[0] == 'E');
  CHECK(bytes[64] == 3);
  auto loaded = iridium::vm::load_image(bytes);
  REQUIRE(loaded.ok());
  CHECK(*loaded == image);
}

TEST_CASE("layout errors say what is wrong", "[image]") {
  auto good = iridium::vm::serialize_image(code_image({insn(Op::HLT)}, {0}));
  CHECK_THAT(load_error({}), Catch::Contains("magic"));
  CHECK_THAT(load_error({'E', 'P', 'I', 'X'}), Catch::Contains("magic"));
  CHECK_THAT(load_error({'E', 'P', 'I', 'E', 0, 0}), Catch::Contains("truncated"));
  auto reserved = good;
  reserved[10] = 1;
  CHECK_THAT(load_error(reserved), Catch::Contains("reserved byte 10"));
  auto long_ro = good;
  long_ro[64] = 200;
  CHECK_THAT(load_error(long_ro), Catch::Contains("read-only section of 200 bytes"));
  auto partial = good;
  partial.push_back(5);
  CHECK_THAT(load_error(partial), Catch::Contains("whole number of 4-byte instructions"));
}

TEST_CASE("the verifier rejects every bad instruction with its offset", "[image][verify]") {
  CHECK_THAT(verify_error(code_image({insn(Op::HLT), {77, 0, 0, 0}})),
             Catch::Contains("code offset 4") && Catch::Contains("unknown opcode 77"));
  CHECK_THAT(verify_error(code_image({insn(Op::ADD, 1, 2, 32)})),
             Catch::Contains("register 32 out of range"));
  CHECK_THAT(verify_error(code_image({insn(Op::INC, 200)})), Catch::Contains("register 200"));
  CHECK_THAT(verify_error(code_image({insn(Op::SHL, 1, 32)})),
             Catch::Contains("shift amount 32 out of range"));
  CHECK_THAT(verify_error(code_image({insn(Op::DJMPE, 0, 2)})),
             Catch::Contains("not a multiple of 4"));
  CHECK_THAT(verify_error(code_image({insn(Op::CALL, 0, 8)})),
             Catch::Contains("past the end of the code"));
  CHECK_THAT(verify_error(code_image({insn(Op::LOOP, 1, 0)})), Catch::Contains("jump target 256"));
  CHECK_THAT(verify_error(code_image({insn(Op::PRTS, 0, 3)}, {'a', 0, 'b'})),
             Catch::Contains("read-only offset 3"));
  CHECK_THAT(verify_error(code_image({insn(Op::HLT, 0, 0, 1)})),
             Catch::Contains("unused operand byte 3 must be zero"));
  CHECK_THAT(verify_error(code_image({insn(Op::INC, 1, 5)})),
             Catch::Contains("unused operand byte 2"));
  CHECK_THAT(verify_error(code_image({insn(Op::DJMPE, 0, 0, 9)})), Catch::Contains("byte 3"));
  // Reports the file byte too: 68 header bytes + 2 read-only + 4.
  CHECK_THAT(verify_error(code_image({insn(Op::HLT), {99, 0, 0, 0}}, {0, 0})),
             Catch::Contains("file byte 74"));
}

TEST_CASE("the verifier accepts every opcode in a well-formed instruction", "[image][verify]") {
  for (const auto& info : iridium::vm::all_ops()) {
    Image image = code_image({insn(info.op)}, {0});
    INFO(info.mnemonic);
    CHECK(iridium::vm::verify(image).ok());
  }
  // A static target may be exactly the code length.
  CHECK(iridium::vm::verify(code_image({insn(Op::DJMPE, 0, 4)})).ok());
}
