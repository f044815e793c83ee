#include "shell/register_format.h"

#include <cstdio>
#include <iomanip>
#include <sstream>
#include <vector>

namespace iridium::shell {
namespace {

constexpr int kColumns = 4;

// One block: the title, then the registers in rows of kColumns cells,
// filled column by column, so 32 registers read $0..$7 down the first column.
template <typename Value, typename Show>
void write_block(std::ostringstream& out, const char* title, const std::array<Value, 32>& values,
                 RegisterSelection which, Show show) {
  std::vector<int> shown;
  for (int r = 0; r < 32; ++r) {
    if (which == RegisterSelection::kAll || values[r] != Value{}) shown.push_back(r);
  }
  if (shown.empty()) {
    out << title << " all zero\n";
    return;
  }
  out << title << "\n";
  const int count = static_cast<int>(shown.size());
  const int rows = (count + kColumns - 1) / kColumns;
  for (int row = 0; row < rows; ++row) {
    for (int col = 0; col < kColumns; ++col) {
      const int index = row + col * rows;
      if (index >= count) break;
      const int r = shown[index];
      out << "  " << std::left << std::setw(4) << ("$" + std::to_string(r)) << std::right
          << std::setw(12) << show(values[r]);
    }
    out << "\n";
  }
}

}  // namespace

std::string format_registers(const vm::MachineState& state, RegisterSelection which) {
  std::ostringstream out;
  write_block(out, "Integer registers:", state.registers, which, [](int32_t v) { return v; });
  write_block(out, "Float registers:", state.float_registers, which, [](double v) {
    char text[32];
    std::snprintf(text, sizeof text, "%.6g", v);
    return std::string(text);
  });
  return out.str();
}

std::string format_machine_flags(const vm::MachineState& s, std::size_t heap_bytes,
                                 std::size_t stack_entries) {
  return "equal flag " + std::string(s.equal_flag ? "true" : "false") + ", remainder " +
         std::to_string(s.remainder) + ", loop counter " + std::to_string(s.loop_counter) +
         ", pc " + std::to_string(s.pc) + ", heap " + std::to_string(heap_bytes) +
         " bytes, stack " + std::to_string(stack_entries) + " entries\n";
}

}  // namespace iridium::shell
