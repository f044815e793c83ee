#include <filesystem>

#include "asm/assembler.h"
#include "asm/disassembler.h"
#include "asm/program_file.h"
#include "vm_harness.h"

using iridium::assembler::assemble;
using iridium::assembler::disassemble;

namespace {
void check_round_trip(const iridium::vm::Image& image) {
  const std::string text = disassemble(image);
  INFO(text);
  auto again = assemble(text, "disassembly");
  INFO(iridium::assembler::format_all(again.errors));
  REQUIRE(again.ok());
  CHECK(again.image == image);
}
}  // namespace

TEST_CASE("every example disassembles to source that re-assembles identically", "[disasm]") {
  int seen = 0;
  for (const auto& entry : std::filesystem::directory_iterator(IRIDIUM_SOURCE_DIR "/examples")) {
    if (entry.path().extension() != ".iasm") continue;
    auto image = iridium::assembler::load_program_file(entry.path().string());
    INFO(entry.path());
    REQUIRE(image.ok());
    check_round_trip(*image);
    ++seen;
  }
  CHECK(seen >= 5);
}

TEST_CASE("disassembly covers every opcode and odd data", "[disasm]") {
  iridium::vm::Image image;
  image.read_only = {'a', '\'', 0x01, 0, 42, 0, 0, 0, 7, 9, 0};
  for (const auto& info : iridium::vm::all_ops()) {
    image.code.push_back(static_cast<uint8_t>(info.op));
    switch (info.form) {
      case iridium::vm::Form::kNone:
        image.code.insert(image.code.end(), {0, 0, 0});
        break;
      case iridium::vm::Form::kCodeAddr:
        image.code.insert(image.code.end(), {0, 8, 0});
        break;
      case iridium::vm::Form::kDataAddr:
        image.code.insert(image.code.end(), {0, 0, 0});
        break;
      case iridium::vm::Form::kCount:
        image.code.insert(image.code.end(), {0xFF, 0xFF, 0});
        break;
      case iridium::vm::Form::kR:
        image.code.insert(image.code.end(), {31, 0, 0});
        break;
      case iridium::vm::Form::kRR:
        image.code.insert(image.code.end(), {31, 1, 0});
        break;
      case iridium::vm::Form::kRRR:
        image.code.insert(image.code.end(), {5, 6, 7});
        break;
      case iridium::vm::Form::kRShift:
        image.code.insert(image.code.end(), {3, 31, 0});
        break;
      default:
        image.code.insert(image.code.end(), {5, 0x80, 0x01});
        break;
    }
  }
  // A PRTS into the middle of data and a jump to the very end.
  image.code.insert(image.code.end(), {21, 0, 9, 0});
  const auto end = static_cast<uint16_t>(image.code.size() + 4);
  image.code.insert(image.code.end(),
                    {20, static_cast<uint8_t>(end >> 8), static_cast<uint8_t>(end), 0});
  REQUIRE(iridium::vm::verify(image).ok());
  check_round_trip(image);
  CHECK_THAT(disassemble(image), Catch::Contains("D0: .asciiz 'a\\'\\x01'"));
}
