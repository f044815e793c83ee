// The final machine state as JSON, for scripts and tests.
#pragma once

#include <nlohmann/json.hpp>

#include "vm/machine.h"

namespace iridium::vm {

// {"status", "error", "registers", "float_registers", "equal_flag", "remainder"}
nlohmann::json state_json(const MachineState& state, const RunResult& result);

}  // namespace iridium::vm
