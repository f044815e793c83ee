#include "app/run_command.h"

#include <cstdio>
#include <fstream>
#include <iostream>

#include "asm/assembler.h"
#include "asm/disassembler.h"
#include "asm/program_file.h"
#include "vm/state_json.h"
#include "vm/vm.h"

namespace iridium::app {

int run_program(const RunOptions& options) {
  auto image = assembler::load_program_file(options.file);
  if (!image) {
    std::cerr << image.message() << "\n";
    return kExitUsage;
  }
  vm::Vm machine(vm::Limits{options.heap_cap, options.stack_cap, options.max_steps});
  bool output_ends_in_newline = true;  // nothing printed counts as a fresh line
  machine.set_output([&](std::string_view text) {
    std::cout.write(text.data(), std::ssize(text));
    if (!text.empty()) output_ends_in_newline = text.back() == '\n';
  });
  if (auto status = machine.load(std::move(*image)); !status) {
    std::cerr << options.file << ": " << status.message() << "\n";
    return kExitUsage;
  }
  const vm::RunResult result = machine.run();
  std::cout.flush();
  if (result.error) std::cerr << "runtime error: " << result.error->message << "\n";

  if (!options.state_json.empty()) {
    const std::string json = vm::state_json(machine.state(), result).dump() + "\n";
    if (options.state_json == "-") {
      if (!output_ends_in_newline) std::cout << "\n";
      std::cout << json << std::flush;
    } else {
      std::ofstream out(options.state_json);
      out << json;
      if (!out) {
        std::cerr << "cannot write state to '" << options.state_json << "'\n";
        return kExitUsage;
      }
    }
  }
  return result.ok() ? kExitOk : kExitRuntimeError;
}

int assemble_file(const AsmOptions& options) {
  auto image = assembler::load_program_file(options.input);
  if (!image) {
    std::cerr << image.message() << "\n";
    return kExitUsage;
  }
  std::string output = options.output;
  if (output.empty()) {
    output = options.input;
    if (auto dot = output.rfind('.');
        dot != std::string::npos && output.find('/', dot) == std::string::npos) {
      output.resize(dot);
    }
    output += ".pie";
  }
  const auto bytes = vm::serialize_image(*image);
  std::ofstream out(output, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::ssize(bytes));
  if (!out) {
    std::cerr << "cannot write '" << output << "'\n";
    return kExitUsage;
  }
  return kExitOk;
}

int disassemble_file(const std::string& path) {
  auto bytes = vm::read_file_bytes(path);
  if (!bytes) {
    std::cerr << bytes.message() << "\n";
    return kExitUsage;
  }
  auto image = vm::load_image(*bytes);
  if (!image) {
    std::cerr << path << ": " << image.message() << "\n";
    return kExitUsage;
  }
  std::cout << assembler::disassemble(*image);
  return kExitOk;
}

}  // namespace iridium::app
