#include "shell/run_format.h"

#include <algorithm>

#include "shell/job_format.h"
#include "shell/register_format.h"

namespace iridium::shell {
namespace {

bool any_register_set(const vm::MachineState& s) {
  return std::any_of(s.registers.begin(), s.registers.end(), [](int32_t v) { return v != 0; }) ||
         std::any_of(s.float_registers.begin(), s.float_registers.end(),
                     [](double v) { return v != 0; });
}

std::string header(const RemoteRun& run) {
  std::string text = "[" + run.node + "] ";
  if (!run.failure.empty()) return text + "failed: " + run.failure + "\n";
  text += run.status;
  if (run.status == "refused") return text + " (" + run.code + "): " + run.error + "\n";
  text += " (job " + std::to_string(run.job) + ", " +
          format_elapsed(std::chrono::milliseconds(run.elapsed_ms)) + ")";
  if (!run.error.empty()) text += ": " + run.error;
  return text + "\n";
}

nlohmann::json or_null(const std::string& text) {
  return text.empty() ? nlohmann::json(nullptr) : nlohmann::json(text);
}

}  // namespace

std::string run_results_text(const std::vector<RemoteRun>& runs, bool summary) {
  std::string text;
  std::size_t ok = 0;
  for (const RemoteRun& run : runs) {
    if (run.ok()) ++ok;
    text += header(run);
    if (!run.failure.empty() || run.status == "refused") continue;
    text += run.output;
    if (!run.output.empty() && run.output.back() != '\n') text += "\n";
    if (run.output_truncated) {
      text += "(output cut to " + std::to_string(run.output.size()) +
              " bytes: a result must fit one cluster frame)\n";
    }
    if (!any_register_set(run.registers)) {
      text += "no registers changed\n";
    } else {
      text += format_registers(run.registers, RegisterSelection::kNonZero);
    }
  }
  if (summary) {
    text += std::to_string(ok) + " ok, " + std::to_string(runs.size() - ok) + " failed\n";
  }
  return text;
}

nlohmann::json run_results_json(const std::vector<RemoteRun>& runs) {
  nlohmann::json list = nlohmann::json::array();
  std::size_t ok = 0;
  for (const RemoteRun& run : runs) {
    if (run.ok()) ++ok;
    nlohmann::json registers = nlohmann::json::object();
    nlohmann::json floats = nlohmann::json::object();
    const bool answered = run.failure.empty();
    for (std::size_t r = 0; answered && r < run.registers.registers.size(); ++r) {
      if (run.registers.registers[r] != 0)
        registers[std::to_string(r)] = run.registers.registers[r];
      if (run.registers.float_registers[r] != 0)
        floats[std::to_string(r)] = run.registers.float_registers[r];
    }
    list.push_back({{"node", run.node},
                    {"ok", run.ok()},
                    {"status", or_null(run.status)},
                    {"code", or_null(run.code)},
                    {"error", or_null(run.error)},
                    {"failure", or_null(run.failure)},
                    {"job", answered && run.job != 0 ? nlohmann::json(run.job) : nullptr},
                    {"elapsed_ms", answered ? nlohmann::json(run.elapsed_ms) : nullptr},
                    {"output", answered ? nlohmann::json(run.output) : nullptr},
                    {"output_truncated", run.output_truncated},
                    {"registers", registers},
                    {"float_registers", floats}});
  }
  return {{"results", list}, {"ok", ok}, {"failed", runs.size() - ok}};
}

}  // namespace iridium::shell
