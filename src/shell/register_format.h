// How the shell shows a machine's registers: `!registers` shows all of them,
// `!job` the non-zero ones of a finished job, in the same cells.
#pragma once

#include <cstddef>
#include <string>

#include "vm/machine.h"

namespace iridium::shell {

enum class RegisterSelection { kAll, kNonZero };

// "Integer registers:" then rows of four `$N  value` cells (column by
// column), the same for the float registers. With kNonZero, zero registers
// are left out, and a block with none left reads "... registers: all zero".
std::string format_registers(const vm::MachineState& state, RegisterSelection which);

// "equal flag false, remainder 0, loop counter 0, pc 12, heap 64 bytes,
// stack 0 entries\n". The sizes are passed in because a finished job keeps
// them but not the heap and stack themselves.
std::string format_machine_flags(const vm::MachineState& state, std::size_t heap_bytes,
                                 std::size_t stack_entries);

}  // namespace iridium::shell
