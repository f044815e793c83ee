#include "vm/state_json.h"

namespace iridium::vm {

nlohmann::json state_json(const MachineState& state, const RunResult& result) {
  nlohmann::json json;
  json["status"] = run_status_name(result.status);
  json["error"] = result.error ? nlohmann::json(result.error->message) : nlohmann::json(nullptr);
  json["registers"] = state.registers;
  json["float_registers"] = state.float_registers;  // NaN and infinities become null
  json["equal_flag"] = state.equal_flag;
  json["remainder"] = state.remainder;
  return json;
}

}  // namespace iridium::vm
