// libFuzzer target: arbitrary bytes as a program image.
//
// Bytes -> iridium::vm::load_image; an image that loads is run in a Vm with
// small limits (64 KiB heap, 1 Ki stack entries, 10000 steps) and its output
// discarded. Whatever the bytes, nothing may crash, leak or hit undefined
// behaviour, and these invariants must hold:
//   - an image load_image accepted is accepted by Vm::load (same verifier),
//   - serialize_image gives back exactly the input bytes,
//   - a run ends in a well-formed state, within the limits,
//   - the disassembly re-assembles to the same image (spec 4); set
//     IRIDIUM_FUZZ_ROUNDTRIP=0 to skip this one.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "asm/assembler.h"
#include "asm/disassembler.h"
#include "vm/image.h"
#include "vm/vm.h"

namespace {

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_loader: invariant broken: %s\n%s\n", what, detail.c_str());
  std::abort();
}

bool roundtrip_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("IRIDIUM_FUZZ_ROUNDTRIP");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return enabled;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace vm = iridium::vm;
  const std::span<const uint8_t> bytes(data, size);
  auto loaded = vm::load_image(bytes);
  if (!loaded.ok()) return 0;
  vm::Image image = std::move(loaded).value();

  if (vm::serialize_image(image) != std::vector<uint8_t>(bytes.begin(), bytes.end())) {
    fail("serialize_image(load_image(bytes)) != bytes", "");
  }

  vm::Vm machine(vm::Limits{1u << 16, 1u << 10, 10000});
  machine.set_output([](std::string_view) {});
  auto status = machine.load(image);
  if (!status.ok()) fail("load_image accepted an image that Vm::load rejects", status.message());

  const vm::RunResult result = machine.run();
  const vm::MachineState& state = machine.state();
  if ((result.status == vm::RunStatus::kError) != result.error.has_value()) {
    fail("run status and error disagree", "");
  }
  if (state.heap.size() > machine.limits().heap_cap) fail("heap above its cap", "");
  if (state.stack.size() > machine.limits().stack_cap) fail("stack above its cap", "");
  if (result.ok() && state.pc > image.code.size()) fail("pc past the code after a clean run", "");

  if (roundtrip_enabled()) {
    const std::string text = iridium::assembler::disassemble(image);
    auto again = iridium::assembler::assemble(text, "<disassembly>");
    if (!again.ok()) {
      fail("disassembly does not re-assemble",
           iridium::assembler::format_all(again.errors) + "--- disassembly:\n" + text);
    }
    if (!(again.image == image)) fail("disassemble + re-assemble changed the image", text);
  }
  return 0;
}
