#include "vm/vm.h"

#include <iostream>

#include "vm/opcodes.h"
#include "vm/verifier.h"

namespace iridium::vm {

std::string_view fault_name(Fault fault) {
  switch (fault) {
    case Fault::kDivisionByZero:
      return "division by zero";
    case Fault::kBadJumpTarget:
      return "bad jump target";
    case Fault::kHeapOutOfBounds:
      return "heap access out of bounds";
    case Fault::kBadAllocation:
      return "bad allocation size";
    case Fault::kHeapCap:
      return "heap cap exceeded";
    case Fault::kStackOverflow:
      return "stack overflow";
    case Fault::kStackUnderflow:
      return "stack underflow";
    case Fault::kStringWithoutNul:
      return "string without NUL terminator";
    case Fault::kIllegalInstruction:
      return "illegal instruction";
    case Fault::kStepLimit:
      return "step limit reached";
  }
  return "unknown fault";
}

std::string_view run_status_name(RunStatus status) {
  switch (status) {
    case RunStatus::kHalted:
      return "halted";
    case RunStatus::kEnded:
      return "ended";
    case RunStatus::kError:
      return "error";
  }
  return "unknown";
}

namespace {
static_assert(find_op(Vm::kEndSentinel) == nullptr, "sentinel must not be a real opcode");

Vm::Decoded decode(const uint8_t* bytes) {
  const OpInfo& info = *find_op(bytes[0]);  // verified already
  Vm::Decoded d{nullptr, bytes[0], bytes[1], bytes[2], bytes[3], 0};
  const uint16_t imm16 = static_cast<uint16_t>(bytes[2] << 8 | bytes[3]);
  const uint16_t addr16 = static_cast<uint16_t>(bytes[1] << 8 | bytes[2]);
  switch (info.form) {
    case Form::kRImm16:
      d.imm = static_cast<int16_t>(imm16);
      break;
    case Form::kRUImm16:
      d.imm = imm16;
      break;
    case Form::kRShift:
      d.imm = bytes[2];
      break;
    case Form::kCodeAddr:
      d.imm = addr16 / static_cast<int32_t>(kInstructionSize);
      break;
    case Form::kCount:
    case Form::kDataAddr:
      d.imm = addr16;
      break;
    default:
      break;
  }
  return d;
}
}  // namespace

Vm::Vm(Limits limits) : limits_(limits) {
  decoded_.push_back(Decoded{nullptr, kEndSentinel, 0, 0, 0, 0});
  output_ = [](std::string_view text) { std::cout.write(text.data(), std::ssize(text)); };
}

Status Vm::load(Image image) {
  if (auto status = verify(image); !status) return status;
  std::vector<Decoded> decoded;
  decoded.reserve(image.code.size() / kInstructionSize + 1);
  for (std::size_t offset = 0; offset < image.code.size(); offset += kInstructionSize) {
    decoded.push_back(decode(&image.code[offset]));
  }
  decoded.push_back(Decoded{nullptr, kEndSentinel, 0, 0, 0, 0});
  image_ = std::move(image);
  decoded_ = std::move(decoded);
  threaded_ = false;
  state_.pc = 0;
  return ok_status();
}

RunResult Vm::run_from(uint32_t offset) {
  if (offset % kInstructionSize != 0 || offset > image_.code.size()) {
    state_.pc = offset;
    return fail(Fault::kBadJumpTarget, offset / kInstructionSize,
                "cannot start at code offset " + std::to_string(offset));
  }
  state_.pc = offset;
  return run();
}

RunResult Vm::run() {
  return limits_.max_steps == 0 ? execute<false>() : execute<true>();
}

RunResult Vm::fail(Fault fault, std::size_t index, std::string detail) {
  const auto offset = static_cast<uint32_t>(index * kInstructionSize);
  state_.pc = offset;
  std::string message(fault_name(fault));
  message += " at code offset " + std::to_string(offset);
  if (!detail.empty()) message += ": " + detail;
  return RunResult{RunStatus::kError, RuntimeError{fault, offset, std::move(message)}};
}

void Vm::clear_registers() {
  state_.registers.fill(0);
  state_.float_registers.fill(0.0);
  state_.equal_flag = false;
  state_.remainder = 0;
  state_.loop_counter = 0;
}

void Vm::reset() {
  image_ = Image{};
  decoded_.assign(1, Decoded{nullptr, kEndSentinel, 0, 0, 0, 0});
  threaded_ = false;
  state_ = MachineState{};
}

}  // namespace iridium::vm
