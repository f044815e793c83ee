// One Iridium virtual machine: a verified program plus its machine state.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "vm/image.h"
#include "vm/machine.h"

namespace iridium::vm {

using OutputFn = std::function<void(std::string_view)>;

class Vm {
 public:
  explicit Vm(Limits limits = {});

  // Verifies the image and makes it the program. Machine state (registers,
  // heap, stack) is kept, so a shell can grow its program line by line.
  Status load(Image image);

  // Runs from the current pc until the program halts, ends or faults.
  RunResult run();
  // Sets pc to a code offset (must be a multiple of 4, at most the code
  // length) and runs from there.
  RunResult run_from(uint32_t offset);

  const Image& program() const { return image_; }
  const MachineState& state() const { return state_; }
  MachineState& state() { return state_; }
  const Limits& limits() const { return limits_; }
  void set_limits(const Limits& limits) { limits_ = limits; }

  // Where PRTS writes. Defaults to standard output.
  void set_output(OutputFn output) { output_ = std::move(output); }

  void clear_registers();
  // Drops the program and resets the whole machine state.
  void reset();

  // The interpreter's pre-decoded form of one instruction. Public only so
  // the interpreter's free functions can see it.
  struct Decoded {
    // Where the interpreter's fast path dispatches to: the address of this
    // instruction's handler, filled in by the first run after a load.
    const void* handler;
    uint8_t op;
    uint8_t a;
    uint8_t b;
    uint8_t c;
    int32_t imm;  // sign/zero-extended immediate, shift, or target index
  };
  // Internal opcode of the sentinel placed after the last instruction, so
  // falling off the end and jumping to the code length need no extra checks.
  static constexpr uint8_t kEndSentinel = 255;

 private:
  template <bool kCountSteps>
  RunResult execute();
  RunResult fail(Fault fault, std::size_t index, std::string detail);

  Limits limits_;
  Image image_;
  std::vector<Decoded> decoded_;  // one per instruction, plus an end sentinel
  bool threaded_ = false;         // decoded_[i].handler filled in
  MachineState state_;
  OutputFn output_;
};

}  // namespace iridium::vm
