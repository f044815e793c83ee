// libFuzzer target: arbitrary bytes as assembly source.
//
// Bytes -> iridium::assembler::assemble, which must never crash (spec 4). When
// it succeeds and the image passes the verifier, the disassembly must
// re-assemble to the identical image (spec 4).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "asm/assembler.h"
#include "asm/disassembler.h"
#include "vm/image.h"
#include "vm/verifier.h"

namespace {

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_assembler: invariant broken: %s\n%s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace as = iridium::assembler;
  const std::string_view source(reinterpret_cast<const char*>(data), size);
  const as::Assembly first = as::assemble(source, "<fuzz>");
  if (!first.ok()) {
    for (const auto& d : first.errors) {
      if (d.line < 1 || d.column < 1 || d.message.empty()) {
        fail("malformed diagnostic", d.format());
      }
    }
    return 0;
  }
  // The assembler may leave some checks (e.g. static targets, read-only
  // offsets) to the verifier; the disassembler is only defined for verified
  // images.
  if (!iridium::vm::verify(first.image).ok()) return 0;

  const std::string text = as::disassemble(first.image);
  const as::Assembly second = as::assemble(text, "<disassembly>");
  if (!second.ok()) {
    fail("disassembly does not re-assemble",
         as::format_all(second.errors) + "--- disassembly:\n" + text);
  }
  if (!(second.image == first.image)) fail("disassemble + re-assemble changed the image", text);
  return 0;
}
