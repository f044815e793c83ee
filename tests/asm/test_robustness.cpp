// Arbitrary bytes to the loader and arbitrary text to the assembler must
// never crash (the sanitizer build runs this too).
#include <random>

#include "asm/assembler.h"
#include "vm/image.h"
#include "vm_harness.h"

namespace {
std::mt19937_64& rng() {
  static std::mt19937_64 engine(0x1D1D1D1Dull);
  return engine;
}
}  // namespace

TEST_CASE("random images are rejected or run to a clean stop", "[fuzz]") {
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> length(0, 160);
  int loaded = 0;
  for (int round = 0; round < 20000; ++round) {
    std::vector<uint8_t> bytes;
    if (round % 2 == 0) {
      // A valid header with random contents, so the verifier is reached.
      auto header = iridium::vm::serialize_image({});
      const int ro = length(rng()) % 8;
      header[64] = static_cast<uint8_t>(ro);
      bytes = header;
      for (int i = 0; i < ro + 4 * (length(rng()) % 12); ++i)
        bytes.push_back(static_cast<uint8_t>(byte(rng())));
      // Bias opcodes towards real ones.
      for (std::size_t i = 68 + ro; i < bytes.size(); i += 4)
        bytes[i] = static_cast<uint8_t>(byte(rng()) % 48);
    } else {
      for (int i = 0; i < length(rng()); ++i) bytes.push_back(static_cast<uint8_t>(byte(rng())));
    }
    auto image = iridium::vm::load_image(bytes);
    if (!image) {
      CHECK_FALSE(image.message().empty());
      continue;
    }
    ++loaded;
    iridium::vm::Vm machine(iridium::vm::Limits{1 << 16, 1 << 10, 10000});
    machine.set_output([](std::string_view) {});
    REQUIRE(machine.load(*image).ok());
    auto result = machine.run();
    if (!result.ok()) CHECK_FALSE(result.error->message.empty());
  }
  CHECK(loaded > 100);  // the generator must reach the interpreter
}

TEST_CASE("random text never crashes the assembler", "[fuzz]") {
  const std::vector<std::string> pieces = {
      "load", "add",  "djmpe", "prts", ".data", ".code", ".asciiz", ".integer", ".byte",
      "$",    "$1",   "$31",   "$32",  "#",     "#-",    "#0x",     "#1.5",     "#99999999999",
      "@",    "@x",   "x:",    ":",    "'",     "'ab",   "\\",      "\\x",      ";",
      "\n",   " ",    ",",     "\t",   "\x01",  "\xff",  "hlt",     "shl",      "cloop",
      "lui",  "@top", "top:",  "'\\n'"};
  std::uniform_int_distribution<std::size_t> pick(0, pieces.size() - 1);
  std::uniform_int_distribution<int> count(0, 40);
  std::uniform_int_distribution<int> byte(0, 255);
  int assembled = 0;
  for (int round = 0; round < 5000; ++round) {
    std::string text;
    const int n = count(rng());
    for (int i = 0; i < n; ++i) {
      text += round % 5 == 0 ? std::string(1, static_cast<char>(byte(rng()))) : pieces[pick(rng())];
      if (round % 3 == 0) text += ' ';
    }
    auto assembly = iridium::assembler::assemble(text, "fuzz");
    for (const auto& error : assembly.errors) {
      CHECK(error.line >= 1);
      CHECK(error.column >= 1);
    }
    if (assembly.ok()) {
      ++assembled;
      CHECK(assembly.image.code.size() % 4 == 0);
    }
  }
  CHECK(assembled > 0);
}
