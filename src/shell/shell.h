// One shell session: a VM whose program grows line by line, its symbol
// table and history, and the `!` commands. It does no I/O of its own: the
// local console and the remote-shell server both feed it lines and print what
// comes back.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "asm/assembler.h"
#include "shell/cluster_commands.h"
#include "shell/worker_pool.h"
#include "vm/vm.h"

namespace iridium::shell {

struct Environment {
  WorkerPool* workers = nullptr;       // for !spawn, !jobs, !job, !kill; null: unavailable
  ClusterCommands* cluster = nullptr;  // null: clustering unavailable
  vm::Limits limits;                   // for programs run in the shell's own VM
  bool interactive = false;            // may ask for a missing argument
  // Set: a line's program runs in slices of Shell::kSlice steps, and this is
  // asked between slices; true stops the line ("interrupted"). The step
  // limit still counts across slices, so it stops at the same instruction.
  std::function<bool()> interrupt_requested;
  // !kill may stop any session's job, not only this session's own. Only the
  // node's local shell gets this: its user can stop the whole node anyway,
  // while a remote user must not stop someone else's work.
  bool may_kill_any_job = false;
};

struct Reply {
  std::string output;  // what to show, ending in a newline unless empty
  bool ok = true;      // false: the line failed (bad command, assembly or runtime error)
  bool quit = false;   // the session should end
  std::string ask;     // non-empty: the shell wants the next line as the answer to this question
  std::size_t program_output = 0;  // output's first bytes are what the program printed
};

class Shell {
 public:
  static constexpr uint64_t kSlice = 10'000'000;  // steps between interrupt checks
  // How long !kill waits for a running job to reach its next slice boundary
  // and stop; one slice takes milliseconds, so this is only a backstop.
  static constexpr std::chrono::milliseconds kKillWait{2000};
  // Lines !history keeps per session, as many as the console's history file.
  static constexpr std::size_t kHistoryLines = 1000;

  Shell(Environment environment, uint64_t session_id);

  static constexpr std::string_view kBlockPrompt = "... ";

  // One line typed or received. Inside a block (!block ... !end) lines are
  // collected and the reply asks for the next one with kBlockPrompt.
  Reply execute(std::string_view line);
  // Ctrl-C at the prompt: drops a half-collected block or cancels a question
  // (e.g. a missing path); the reply says what was dropped, if anything.
  Reply cancel();
  bool in_block() const { return block_.has_value(); }
  // What the last word of line_before_cursor may become on Tab: commands,
  // mnemonics, this session's labels (and those of a block being typed),
  // paths (see completion.h).
  std::vector<std::string> completions(std::string_view line_before_cursor) const;
  // The names of the `!` commands, in the order !help lists them.
  static std::vector<std::string_view> command_names();
  // Notices for this session's spawned jobs that have finished since last asked.
  std::string job_notices();

  static std::string banner();
  const vm::Vm& machine() const { return vm_; }

 private:
  using Args = std::vector<std::string>;
  struct Command {
    std::string_view name;
    std::string_view usage;
    std::string_view help;
    Reply (Shell::*run)(const Args&);
  };
  static const std::vector<Command>& commands();
  // Error messages, with hints that point at the right command.
  static std::string unknown_command(std::string_view word);
  static Reply help_on(std::string_view word);
  static std::optional<std::string_view> command_for_word(std::string_view word);
  static std::string assembly_errors(const assembler::Assembly& assembly, bool shell_line);

  Reply run_command(std::string_view line);
  Reply run_assembly(std::string_view line);
  Reply run_machine(uint32_t from);
  vm::RunResult run_in_slices(uint32_t from, bool& interrupted);
  Reply load_source(std::string_view source, const std::string& name);
  Reply assemble_and_run(std::string_view source, const std::string& name);
  Reply add_to_block(std::string_view raw_line, const std::string& line);
  std::optional<JobInfo> named_job(std::string_view command, const Args& args, Reply& why);

  Reply cmd_help(const Args&);
  Reply cmd_quit(const Args&);
  Reply cmd_history(const Args&);
  void remember(const std::string& line);  // into history_, dropping the oldest past the bound
  Reply cmd_program(const Args&);
  Reply cmd_clear_program(const Args&);
  Reply cmd_clear_registers(const Args&);
  Reply cmd_registers(const Args&);
  Reply cmd_symbols(const Args&);
  Reply cmd_load_file(const Args&);
  Reply cmd_spawn(const Args&);
  Reply cmd_jobs(const Args&);
  Reply cmd_block(const Args&);
  Reply cmd_end(const Args&);
  Reply cmd_job(const Args&);
  Reply cmd_kill(const Args&);
  Reply cmd_start_cluster(const Args&);
  Reply cmd_join_cluster(const Args&);
  Reply cmd_cluster_members(const Args&);
  Reply cmd_run_on(const Args&);
  Reply cmd_run_all(const Args&);
  Reply run_remote(std::string_view command, const Args& args, bool all);
  Reply cmd_cluster_keys(const Args&);

  Environment env_;
  uint64_t session_id_;
  vm::Vm vm_;
  assembler::SymbolTable symbols_;
  // The newest kHistoryLines lines; history_first_ is the number !history
  // gives the oldest kept one (numbers go on counting past the bound).
  std::deque<std::string> history_;
  std::size_t history_first_ = 1;
  std::string output_;                             // program output of the current run
  std::string pending_command_;                    // a command waiting for its missing argument
  std::optional<std::vector<std::string>> block_;  // set between !block and !end: its lines
};

}  // namespace iridium::shell
