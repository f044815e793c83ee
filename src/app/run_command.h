// `iridium run`, `iridium asm`, `iridium disasm`.
#pragma once

#include "app/options.h"

namespace iridium::app {

// Exit codes shared by every command.
inline constexpr int kExitOk = 0;
inline constexpr int kExitRuntimeError = 1;
inline constexpr int kExitUsage = 2;  // also assembly and image errors

int run_program(const RunOptions& options);
int assemble_file(const AsmOptions& options);
int disassemble_file(const std::string& path);

}  // namespace iridium::app
