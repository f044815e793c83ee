// The state of one Iridium machine and the result of running it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace iridium::vm {

struct Limits {
  std::size_t heap_cap = 64u << 20;  // bytes
  std::size_t stack_cap = 1u << 20;  // int32 entries
  uint64_t max_steps = 0;            // instructions per run; 0 = unlimited
};

inline constexpr std::size_t kInitialHeapSize = 64;

struct MachineState {
  std::array<int32_t, 32> registers{};
  std::array<double, 32> float_registers{};
  bool equal_flag = false;
  int32_t remainder = 0;
  uint16_t loop_counter = 0;
  std::vector<uint8_t> heap = std::vector<uint8_t>(kInitialHeapSize, 0);
  std::vector<int32_t> stack;
  std::size_t bp = 0;
  uint32_t pc = 0;  // byte offset into the code section
};

enum class Fault : uint8_t {
  kDivisionByZero,
  kBadJumpTarget,
  kHeapOutOfBounds,
  kBadAllocation,
  kHeapCap,
  kStackOverflow,
  kStackUnderflow,
  kStringWithoutNul,
  kIllegalInstruction,
  kStepLimit,
};

std::string_view fault_name(Fault fault);

struct RuntimeError {
  Fault fault;
  uint32_t offset;      // code offset of the faulting instruction
  std::string message;  // e.g. "division by zero at code offset 12"
};

enum class RunStatus : uint8_t { kHalted, kEnded, kError };

std::string_view run_status_name(RunStatus status);  // "halted", "ended", "error"

struct RunResult {
  RunStatus status = RunStatus::kEnded;
  std::optional<RuntimeError> error;

  bool ok() const { return status != RunStatus::kError; }
};

}  // namespace iridium::vm
