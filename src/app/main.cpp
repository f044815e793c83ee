// The `iridium` command line.
#include <CLI/CLI.hpp>
#include <iostream>

#include "app/logging.h"
#include "app/options.h"
#include "app/run_command.h"

namespace {

void add_run_options(CLI::App& app, iridium::app::RunOptions& run) {
  app.add_option("--state-json", run.state_json,
                 "Write the final VM state as JSON to PATH ('-' for stdout)");
  app.add_option("--max-steps", run.max_steps, "Stop the program with an error after N instructions")
      ->check(CLI::PositiveNumber);
  app.add_option("--heap-cap", run.heap_cap, "Heap size cap in bytes")->capture_default_str();
  app.add_option("--stack-cap", run.stack_cap, "Stack cap in entries")->capture_default_str();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace iridium::app;
  CLI::App app{"Iridium: a register-based language VM with clustering", "iridium"};
  app.set_help_flag("--help", "Print this help and exit");
  app.set_version_flag("--version", "iridium 0.1.0");
  app.require_subcommand(0, 1);

  RunOptions run;
  AsmOptions asm_options;
  std::string disasm_path;
  std::string log_level = "warn";

  app.add_option("FILE", run.file, "Program to run (.iasm source or .pie image); no FILE opens the shell");
  add_run_options(app, run);
  app.add_option("--log-level", log_level, "Log level: trace, debug, info, warn, error, off")
      ->envname("IRIDIUM_LOG")
      ->capture_default_str();

  CLI::App* run_cmd = app.add_subcommand("run", "Run a program (.iasm source or .pie image)");
  run_cmd->add_option("FILE", run.file, "Program to run")->required();
  run_cmd->fallthrough();

  CLI::App* asm_cmd = app.add_subcommand("asm", "Assemble FILE.iasm into an image");
  asm_cmd->add_option("FILE", asm_options.input, "Assembly source")->required();
  asm_cmd->add_option("-o,--output", asm_options.output, "Image to write (default: FILE with .pie)");

  CLI::App* disasm_cmd = app.add_subcommand("disasm", "Print the assembly of an image");
  disasm_cmd->add_option("FILE", disasm_path, "Image (.pie)")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  if (auto status = init_logging(log_level); !status) {
    std::cerr << status.message() << "\n";
    return kExitUsage;
  }

  if (*asm_cmd) return assemble_file(asm_options);
  if (*disasm_cmd) return disassemble_file(disasm_path);
  if (*run_cmd || !run.file.empty()) return run_program(run);
  std::cerr << "no FILE given (the interactive shell is not built yet); see --help\n";
  return kExitUsage;
}
