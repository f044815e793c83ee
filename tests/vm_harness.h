// Helpers shared by the VM and assembler suites: assemble a snippet and run it.
#pragma once

#include <catch2/catch.hpp>
#include <string>

#include "asm/assembler.h"
#include "vm/opcodes.h"
#include "vm/verifier.h"
#include "vm/vm.h"

namespace iridium::testing {

struct Outcome {
  vm::Vm machine;
  vm::RunResult result;
  std::string output;

  int32_t reg(int n) const { return machine.state().registers[n]; }
  double freg(int n) const { return machine.state().float_registers[n]; }
  bool flag() const { return machine.state().equal_flag; }
  vm::Fault fault() const { return result.error.value().fault; }
};

inline vm::Image assemble_ok(const std::string& source) {
  auto assembly = assembler::assemble(source, "test.iasm");
  INFO(assembler::format_all(assembly.errors));
  REQUIRE(assembly.ok());
  return assembly.image;
}

// Runs the image; the Outcome owns the machine so tests can inspect it.
inline std::unique_ptr<Outcome> run_image(vm::Image image, vm::Limits limits = {}) {
  auto outcome = std::make_unique<Outcome>(Outcome{vm::Vm(limits), {}, {}});
  outcome->machine.set_output([o = outcome.get()](std::string_view text) { o->output += text; });
  auto status = outcome->machine.load(std::move(image));
  INFO((status ? std::string() : status.message()));
  REQUIRE(status.ok());
  outcome->result = outcome->machine.run();
  return outcome;
}

inline std::unique_ptr<Outcome> run_asm(const std::string& source, vm::Limits limits = {}) {
  return run_image(assemble_ok(source), limits);
}

// The 4 bytes of one instruction.
inline std::vector<uint8_t> insn(vm::Op op, uint8_t a = 0, uint8_t b = 0, uint8_t c = 0) {
  return {static_cast<uint8_t>(op), a, b, c};
}

inline vm::Image code_image(std::initializer_list<std::vector<uint8_t>> instructions,
                            std::vector<uint8_t> read_only = {}) {
  vm::Image image;
  image.read_only = std::move(read_only);
  for (const auto& i : instructions) image.code.insert(image.code.end(), i.begin(), i.end());
  return image;
}

}  // namespace iridium::testing
