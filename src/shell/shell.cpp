#include "shell/shell.h"

#include <algorithm>
#include <cctype>

#include "asm/disassembler.h"
#include "asm/lexer.h"
#include "asm/program_file.h"
#include "common/nearest.h"
#include "shell/completion.h"
#include "shell/job_format.h"
#include "shell/key_format.h"
#include "shell/register_format.h"
#include "shell/run_format.h"
#include "vm/image.h"
#include "vm/opcodes.h"
#include "vm/verifier.h"

namespace iridium::shell {
namespace {

// Splits a command line on whitespace; '...' or "..." keep spaces together.
std::vector<std::string> split_args(std::string_view line) {
  std::vector<std::string> args;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    if (i >= line.size()) break;
    std::string arg;
    if (line[i] == '"' || line[i] == '\'') {
      const char quote = line[i++];
      while (i < line.size() && line[i] != quote) arg += line[i++];
      ++i;
    } else {
      while (i < line.size() && !std::isspace(static_cast<unsigned char>(line[i])))
        arg += line[i++];
    }
    args.push_back(std::move(arg));
  }
  return args;
}

std::string trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  return std::string(text.substr(first, last - first + 1));
}

Reply failure(std::string message) {
  return Reply{std::move(message) + "\n", false, false, {}};
}
Reply success(std::string message) {
  if (!message.empty() && message.back() != '\n') message += '\n';
  return Reply{std::move(message), true, false, {}};
}

// A job id as !jobs shows it: a positive decimal number.
std::optional<uint64_t> parse_job_id(const std::string& text) {
  if (text.empty() || text.size() > 18 ||
      !std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); })) {
    return std::nullopt;
  }
  const uint64_t id = std::stoull(text);
  if (id == 0) return std::nullopt;
  return id;
}

// Why a finished job cannot be killed.
std::string already_finished(const JobInfo& job) {
  const std::string name = "job " + std::to_string(job.id);
  switch (job.state) {
    case JobState::kError:
      return name + " has already stopped with an error: " + job.error;
    case JobState::kCancelled:
      return name + " has already been cancelled";
    default:
      return name + " has already " + std::string(job_state_name(job.state));
  }
}

}  // namespace

Shell::Shell(Environment environment, uint64_t session_id)
    : env_(environment), session_id_(session_id), vm_(environment.limits) {
  vm_.set_output([this](std::string_view text) { output_ += text; });
}

std::string Shell::banner() {
  return "Welcome to Iridium! Let's be productive!\nType !help for commands, or assembly to run "
         "it.\n";
}

const std::vector<Shell::Command>& Shell::commands() {
  static const std::vector<Command> table = {
      {"!help", "!help [WORD]", "list the commands, or explain one command or instruction",
       &Shell::cmd_help},
      {"!quit", "!quit", "leave the shell", &Shell::cmd_quit},
      {"!history", "!history", "lines entered in this session", &Shell::cmd_history},
      {"!program", "!program", "disassemble the shell's program", &Shell::cmd_program},
      {"!clear_program", "!clear_program", "drop the program and its labels",
       &Shell::cmd_clear_program},
      {"!clear_registers", "!clear_registers", "set every register to zero",
       &Shell::cmd_clear_registers},
      {"!registers", "!registers", "show integer and float registers", &Shell::cmd_registers},
      {"!symbols", "!symbols", "show the labels the shell knows", &Shell::cmd_symbols},
      {"!load_file", "!load_file PATH", "assemble a file into the shell's VM and run it",
       &Shell::cmd_load_file},
      {"!spawn", "!spawn PATH", "run a file in a new VM on a worker; the shell stays free",
       &Shell::cmd_spawn},
      {"!jobs", "!jobs [--json]", "list every spawned job on this node", &Shell::cmd_jobs},
      {"!job", "!job JOB", "one job in detail: output and final registers", &Shell::cmd_job},
      {"!kill", "!kill JOB", "cancel a queued or running job", &Shell::cmd_kill},
      {"!block", "!block", "collect lines until !end, then assemble and run them as one file",
       &Shell::cmd_block},
      {"!end", "!end", "end a !block and run it (Ctrl-D too; Ctrl-C drops it)", &Shell::cmd_end},
      {"!start_cluster", "!start_cluster", "start listening for cluster members",
       &Shell::cmd_start_cluster},
      {"!join_cluster", "!join_cluster HOST PORT", "join the cluster that HOST:PORT belongs to",
       &Shell::cmd_join_cluster},
      {"!cluster_members", "!cluster_members [--json]", "list every other node in the cluster",
       &Shell::cmd_cluster_members},
      {"!run_on", "!run_on [--json] [--timeout S] NODE PATH",
       "run a file in a fresh VM on cluster node NODE; show its output and registers",
       &Shell::cmd_run_on},
      {"!run_all", "!run_all [--json] [--timeout S] PATH",
       "run a file on every node of the cluster, this one too, at once", &Shell::cmd_run_all},
      {"!cluster_keys", "!cluster_keys list [--json] | install FILE | use KEY | remove KEY",
       "this node's cluster keys: rotate the cluster key without downtime",
       &Shell::cmd_cluster_keys},
  };
  return table;
}

Reply Shell::execute(std::string_view raw_line) {
  std::string line = trim(raw_line);
  if (!pending_command_.empty()) {
    // The answer to a question we asked, e.g. the path for !load_file.
    std::string command = std::move(pending_command_);
    pending_command_.clear();
    if (line.empty())
      return failure("cancelled: no " +
                     std::string(command == "!join_cluster" ? "address" : "path") + " given");
    line = command + " '" + line + "'";
  }
  if (block_) return add_to_block(raw_line, line);
  if (line.empty()) return Reply{};
  remember(line);
  if (line[0] == '!') return run_command(line);
  return run_assembly(line);
}

Reply Shell::cancel() {
  if (block_) {
    const std::size_t lines = block_->size();
    block_.reset();
    return failure("block dropped (" + std::to_string(lines) + (lines == 1 ? " line" : " lines") +
                   "); the program is unchanged");
  }
  if (!pending_command_.empty()) return execute("");  // "cancelled: no path given"
  return Reply{};
}

std::vector<std::string_view> Shell::command_names() {
  std::vector<std::string_view> names;
  for (const Command& command : commands()) names.push_back(command.name);
  return names;
}

std::vector<std::string> Shell::completions(std::string_view line_before_cursor) const {
  CompletionSources sources{command_names(), {}};
  for (const auto& [name, symbol] : symbols_) sources.labels.push_back(name);
  // A block being typed defines labels of its own before it is assembled.
  for (const std::string& line : block_.value_or(std::vector<std::string>{})) {
    const Args words = split_args(line);
    if (words.empty() || words[0].size() < 2 || words[0].back() != ':') continue;
    const std::string_view name = std::string_view(words[0]).substr(0, words[0].size() - 1);
    if (assembler::is_identifier(name)) sources.labels.emplace_back(name);
  }
  return shell::completions(line_before_cursor, sources);
}

// A line inside !block ... !end: kept as typed (columns in errors stay
// right), unless it ends the block. Shell commands do not run in a block.
Reply Shell::add_to_block(std::string_view raw_line, const std::string& line) {
  const std::string ask(kBlockPrompt);
  if (!line.empty()) remember(line);
  if (!line.empty() && line[0] == '!') {
    Args args = split_args(line);
    const std::string word = std::move(args[0]);
    args.erase(args.begin());
    if (word == "!end") return cmd_end(args);
    std::string message = word == "!block"
                              ? "already in a block: !end runs it, Ctrl-C drops it"
                              : word + " does not run inside a block: !end runs the block first";
    return Reply{message + "\n", false, false, ask};
  }
  std::string text(raw_line);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  block_->push_back(std::move(text));
  return Reply{"", true, false, ask};
}

std::string Shell::job_notices() {
  if (env_.workers == nullptr) return {};
  std::string text;
  for (const JobInfo& job : env_.workers->take_finished(session_id_)) {
    text += "[job " + std::to_string(job.id) + "] " + job.name + ": " +
            std::string(job_state_name(job.state));
    if (!job.error.empty()) text += ": " + job.error;
    text += "\n";
    if (!job.output.empty()) {
      text += job.output;
      if (job.output.back() != '\n') text += "\n";
    }
  }
  return text;
}

Reply Shell::run_command(std::string_view line) {
  Args args = split_args(line);
  for (const Command& command : commands()) {
    if (command.name == args[0]) {
      args.erase(args.begin());
      return (this->*command.run)(args);
    }
  }
  return failure(unknown_command(args[0]));
}

Reply Shell::run_assembly(std::string_view line) {
  return assemble_and_run(line, "<shell>");
}

// Appends source to the program as one unit (its labels may be used before
// they are defined) and runs it from its first instruction.
Reply Shell::assemble_and_run(std::string_view source, const std::string& name) {
  const auto code_base = static_cast<uint32_t>(vm_.program().code.size());
  Reply loaded = load_source(source, name);
  if (!loaded.ok) return loaded;
  return run_machine(code_base);
}

// Assembles source against the shell's symbols and appends it to the program.
// On success the reply is empty and ok; the caller then runs from code_base.
Reply Shell::load_source(std::string_view source, const std::string& name) {
  vm::Image program = vm_.program();
  assembler::Context context{&symbols_, static_cast<uint32_t>(program.code.size()),
                             static_cast<uint32_t>(program.read_only.size())};
  assembler::Assembly assembly = assembler::assemble(source, name, context);
  if (!assembly.ok()) {
    std::string errors = assembly_errors(assembly, name == "<shell>");
    errors.pop_back();  // failure() adds the final newline
    return failure(std::move(errors));
  }
  program.code.insert(program.code.end(), assembly.image.code.begin(), assembly.image.code.end());
  program.read_only.insert(program.read_only.end(), assembly.image.read_only.begin(),
                           assembly.image.read_only.end());
  // Check before committing, so a bad line leaves the program as it was.
  if (auto status = vm::verify(program); !status) return failure("error: " + status.message());
  (void)vm_.load(std::move(program));  // verified above
  symbols_.insert(assembly.symbols.begin(), assembly.symbols.end());
  return Reply{};
}

Reply Shell::run_machine(uint32_t from) {
  output_.clear();
  bool interrupted = false;
  const vm::RunResult result = run_in_slices(from, interrupted);
  std::string text = std::move(output_);
  output_.clear();
  if (!text.empty() && text.back() != '\n') text += '\n';
  const std::size_t printed = text.size();
  if (interrupted) {
    text += "interrupted at code offset " + std::to_string(vm_.state().pc) +
            "; registers are as the program left them (!registers)\n";
    return Reply{std::move(text), false, false, {}, printed};
  }
  if (!result.ok())
    return Reply{
        text + "runtime error: " + result.error->message + "\n", false, false, {}, printed};
  return Reply{text, true, false, {}, printed};
}

// Without an interrupt check, one run. With one, slices of kSlice steps, as
// the worker pool runs jobs: a slice that ends on the step limit before the
// line's own limit is used up goes on from where it stopped (the fault leaves
// pc at the next instruction, state intact) unless an interrupt was asked.
vm::RunResult Shell::run_in_slices(uint32_t from, bool& interrupted) {
  interrupted = false;
  if (!env_.interrupt_requested) return vm_.run_from(from);
  const vm::Limits limits = vm_.limits();
  const uint64_t total = limits.max_steps;  // 0: no limit
  uint64_t steps = 0;
  vm::Limits slice = limits;
  vm::RunResult result;
  for (bool first = true;; first = false) {
    slice.max_steps = total == 0 ? kSlice : std::min(kSlice, total - steps);
    vm_.set_limits(slice);
    result = first ? vm_.run_from(from) : vm_.run();
    steps += slice.max_steps;
    const bool slice_over = result.error && result.error->fault == vm::Fault::kStepLimit &&
                            (total == 0 || steps < total);
    if (!slice_over) break;
    if (env_.interrupt_requested()) {
      interrupted = true;
      break;
    }
  }
  vm_.set_limits(limits);
  return result;
}

Reply Shell::cmd_help(const Args& args) {
  if (args.size() > 1) return failure("usage: !help [COMMAND|MNEMONIC]");
  if (args.size() == 1) return help_on(args[0]);
  std::string text = "Commands:\n";
  for (const Command& c : commands()) {
    std::string usage(c.usage);
    usage.resize(std::max<std::size_t>(usage.size() + 2, 28), ' ');
    text += "  " + usage + std::string(c.help) + "\n";
  }
  text +=
      "Any other line is assembly: it is added to the program and run at once,\n"
      "e.g. `load $0 #42`. Registers and labels persist between lines.\n"
      "!help COMMAND or !help MNEMONIC (e.g. !help load) explains one.\n";
  return success(text);
}

// `!help jobs`, `!help !jobs`: the command's usage and help; `!help djmpe`:
// the instruction's syntax and meaning, from the opcode table.
Reply Shell::help_on(std::string_view word) {
  if (word.empty()) return failure("usage: !help [COMMAND|MNEMONIC]");
  std::string_view name = word;
  while (!name.empty() && name.front() == '!') name.remove_prefix(1);
  for (const Command& c : commands()) {
    if (c.name.substr(1) == name)
      return success(std::string(c.usage) + "\n  " + std::string(c.help));
  }
  if (const vm::OpInfo* op = vm::find_op(name); op != nullptr && word.front() != '!') {
    return success(assembler::instruction_syntax(*op) + "\n  " + std::string(op->meaning) +
                   " (opcode " + std::to_string(static_cast<int>(op->op)) + ")");
  }
  if (word.front() == '!') return failure(unknown_command(word));
  std::vector<std::string_view> words;
  for (const Command& c : commands()) words.push_back(c.name.substr(1));
  std::vector<std::string> lower_mnemonics;
  for (const vm::OpInfo& info : vm::all_ops()) lower_mnemonics.push_back(vm::lower_mnemonic(info));
  for (const std::string& m : lower_mnemonics) words.push_back(m);
  std::string text = "no command or instruction '" + std::string(word) + "'";
  if (auto best = nearest_word(name, words))
    return failure(text + "; did you mean " + std::string(*best) + "?");
  return failure(text + "; !help lists the commands");
}

Reply Shell::cmd_quit(const Args&) {
  return Reply{"Farewell! Have a great day!\n", true, true, {}};
}

void Shell::remember(const std::string& line) {
  history_.push_back(line);
  if (history_.size() <= kHistoryLines) return;
  history_.pop_front();
  ++history_first_;
}

Reply Shell::cmd_history(const Args&) {
  std::string text;
  for (std::size_t i = 0; i < history_.size(); ++i) {
    text += std::to_string(history_first_ + i) + "  " + history_[i] + "\n";
  }
  return success(text);
}

Reply Shell::cmd_program(const Args&) {
  if (vm_.program().code.empty() && vm_.program().read_only.empty())
    return success("(the program is empty)");
  return success(assembler::disassemble(vm_.program(), {.show_offsets = true}));
}

Reply Shell::cmd_clear_program(const Args&) {
  vm::MachineState state = vm_.state();
  vm_.reset();
  state.pc = 0;
  vm_.state() = std::move(state);
  symbols_.clear();
  return success("Program cleared.");
}

Reply Shell::cmd_clear_registers(const Args&) {
  vm_.clear_registers();
  return success("Registers cleared.");
}

Reply Shell::cmd_registers(const Args&) {
  const vm::MachineState& s = vm_.state();
  return success(format_registers(s, RegisterSelection::kAll) +
                 format_machine_flags(s, s.heap.size(), s.stack.size()));
}

Reply Shell::cmd_symbols(const Args&) {
  if (symbols_.empty()) return success("(no labels)");
  std::string text;
  for (const auto& [name, symbol] : symbols_) {
    text += name + "  " + (symbol.kind == assembler::SymbolKind::kCode ? "code" : "data") + "  " +
            std::to_string(symbol.value) + "\n";
  }
  return success(text);
}

Reply Shell::cmd_load_file(const Args& args) {
  if (args.empty()) {
    if (!env_.interactive) return failure("usage: !load_file PATH");
    pending_command_ = "!load_file";
    return Reply{"", true, false, "Path to the file to load: "};
  }
  if (args.size() > 1) return failure("usage: !load_file PATH (quote a path with spaces)");
  auto bytes = vm::read_file_bytes(args[0]);
  if (!bytes) return failure(bytes.message());
  if (vm::looks_like_image(*bytes)) {
    // An image's addresses start at zero, so it replaces the program.
    auto image = vm::load_image(*bytes);
    if (!image) return failure(args[0] + ": " + image.message());
    vm::MachineState state = vm_.state();
    (void)vm_.load(std::move(*image));
    state.pc = 0;
    vm_.state() = std::move(state);
    symbols_.clear();
    return run_machine(0);
  }
  return assemble_and_run(std::string(bytes->begin(), bytes->end()), args[0]);
}

Reply Shell::cmd_spawn(const Args& args) {
  if (env_.workers == nullptr) return failure("!spawn is not available here");
  if (args.empty()) {
    if (!env_.interactive) return failure("usage: !spawn PATH");
    pending_command_ = "!spawn";
    return Reply{"", true, false, "Path to the file to spawn: "};
  }
  if (args.size() > 1) return failure("usage: !spawn PATH (quote a path with spaces)");
  auto image = assembler::load_program_file(args[0]);
  if (!image) return failure(image.message());
  const auto id = env_.workers->submit(session_id_, args[0], std::move(*image));
  if (!id) {
    return failure("not spawned: " + std::to_string(WorkerPool::kMaxQueued) +
                   " jobs already wait for a worker; try again when some have run");
  }
  return success("Spawned job " + std::to_string(*id) + " (" + args[0] + ")");
}

Reply Shell::cmd_jobs(const Args& args) {
  if (env_.workers == nullptr) return failure("!jobs is not available here");
  const bool json = args.size() == 1 && args[0] == "--json";
  const bool one_job = args.size() == 1 && !json && args[0].rfind('-', 0) != 0;
  if (one_job) return cmd_job(args);  // `!jobs 3` is `!job 3`
  if (args.size() > 1 || (args.size() == 1 && !json)) {
    return failure("usage: !jobs [--json], or !job JOB for one job");
  }
  const auto jobs = env_.workers->jobs();
  const uint64_t dropped = env_.workers->counts().dropped;
  const auto now = JobInfo::Clock::now();
  if (json) {
    return success(jobs_json(jobs, dropped, now)
                       .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
  std::string text = jobs.empty() ? "(no jobs)" : jobs_table(jobs, session_id_, now);
  if (dropped != 0) {
    if (text.back() != '\n') text += "\n";
    text += dropped_jobs_line(dropped, env_.workers->retention());
  }
  return success(text);
}

// The job that `COMMAND JOB` names; nullopt, with `why` set, when there is none.
std::optional<JobInfo> Shell::named_job(std::string_view command, const Args& args, Reply& why) {
  std::string error;
  std::optional<uint64_t> id;
  if (env_.workers == nullptr) {
    error = std::string(command) + " is not available here";
  } else if (args.size() != 1) {
    error = "usage: " + std::string(command) + " JOB";
  } else if (id = parse_job_id(args[0]); !id) {
    error = "bad job id '" + args[0] + "': use the number !jobs shows";
  } else if (auto job = env_.workers->job(*id)) {
    return job;
  } else if (env_.workers->dropped(*id)) {
    error = dropped_job_message(*id, env_.workers->retention());
  } else {
    error = "no job " + std::to_string(*id);
  }
  why = failure(std::move(error));
  return std::nullopt;
}

Reply Shell::cmd_job(const Args& args) {
  Reply why;
  const auto job = named_job("!job", args, why);
  if (!job) return why;
  return success(job_details(*job, session_id_, JobInfo::Clock::now()));
}

Reply Shell::cmd_kill(const Args& args) {
  Reply why;
  const auto job = named_job("!kill", args, why);
  if (!job) return why;
  const uint64_t id = job->id;
  const std::string number = std::to_string(id);
  const std::string label = "job " + number + " (" + job->name + ")";
  if (!job->origin.empty() && !env_.may_kill_any_job) {
    return failure("job " + number + " runs for cluster member " + job->origin +
                   "; only this node's own console, or Ctrl-C on " + job->origin + ", can stop it");
  }
  if (job->owner != session_id_ && !env_.may_kill_any_job) {
    return failure("job " + number + " belongs to session " + std::to_string(job->owner) +
                   "; a remote session can kill only the jobs it spawned");
  }
  switch (env_.workers->cancel(id)) {
    case CancelOutcome::kNoSuchJob:
      return failure("no job " + number);
    case CancelOutcome::kAlreadyFinished:
      return failure(already_finished(*env_.workers->job(id)));
    case CancelOutcome::kCancelled:
      return success("Cancelled " + label + " before it started");
    case CancelOutcome::kStopping:
      break;
  }
  // A running job stops at its next slice boundary, a few ms away.
  const auto after = env_.workers->wait_finished(id, kKillWait);
  if (!after || !job_finished(after->state)) {
    return success("Stopping " + label + "; !jobs shows when it has stopped");
  }
  if (after->state != JobState::kCancelled) return failure(already_finished(*after));
  return success("Killed " + label + " after " +
                 format_elapsed(*job_elapsed(*after, JobInfo::Clock::now())) + "; !job " + number +
                 " shows its output and registers");
}

Reply Shell::cmd_block(const Args& args) {
  if (!args.empty()) return failure("usage: !block (then the lines, then !end)");
  block_.emplace();
  return Reply{"", true, false, std::string(kBlockPrompt)};
}

// Runs the collected block as !load_file runs a file, named <block> in
// errors, its first line being line 1.
Reply Shell::cmd_end(const Args& args) {
  if (!block_) return failure("!end without a block: start one with !block");
  if (!args.empty()) return Reply{"usage: !end\n", false, false, std::string(kBlockPrompt)};
  std::string source;
  for (const std::string& line : *block_) source += line + "\n";
  block_.reset();
  if (source.find_first_not_of(" \t\n") == std::string::npos)
    return success("(empty block; nothing ran)");
  return assemble_and_run(source, "<block>");
}

Reply Shell::cmd_start_cluster(const Args& args) {
  if (!args.empty()) return failure("usage: !start_cluster");
  if (env_.cluster == nullptr) return failure("clustering is not available here");
  auto result = env_.cluster->start_cluster();
  return result ? success(*result) : failure(result.message());
}

Reply Shell::cmd_join_cluster(const Args& args) {
  if (env_.cluster == nullptr) return failure("clustering is not available here");
  std::string host;
  std::string port_text;
  if (args.size() == 2) {
    host = args[0];
    port_text = args[1];
  } else if (args.size() == 1 && args[0].rfind(':') != std::string::npos) {
    host = args[0].substr(0, args[0].rfind(':'));
    port_text = args[0].substr(args[0].rfind(':') + 1);
  } else {
    return failure("usage: !join_cluster HOST PORT");
  }
  char* end = nullptr;
  const long port = std::strtol(port_text.c_str(), &end, 10);
  if (port_text.empty() || *end != '\0' || port < 1 || port > 65535) {
    return failure("bad port '" + port_text + "' (use 1..65535)");
  }
  auto result = env_.cluster->join_cluster(host, static_cast<uint16_t>(port));
  return result ? success(*result) : failure(result.message());
}

Reply Shell::cmd_cluster_members(const Args& args) {
  if (env_.cluster == nullptr) return failure("clustering is not available here");
  const bool json = args.size() == 1 && args[0] == "--json";
  if (!args.empty() && !json) return failure("usage: !cluster_members [--json]");
  auto result = env_.cluster->members(json);
  return result ? success(*result) : failure(result.message());
}

Reply Shell::cmd_run_on(const Args& args) {
  return run_remote("!run_on", args, false);
}

Reply Shell::cmd_run_all(const Args& args) {
  return run_remote("!run_all", args, true);
}

// !run_on and !run_all: assemble here, run there, wait (interruptibly).
Reply Shell::run_remote(std::string_view command, const Args& args, bool all) {
  if (env_.cluster == nullptr) return failure("clustering is not available here");
  const std::string usage = "usage: " + std::string(command) + " [--json] [--timeout SECONDS] " +
                            (all ? "PATH" : "NODE PATH");
  bool json = false;
  RemoteRunWait wait;
  Args rest;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--json") {
      json = true;
    } else if (args[i] == "--timeout") {
      char* end = nullptr;
      const double seconds = i + 1 < args.size() ? std::strtod(args[i + 1].c_str(), &end) : 0;
      if (end == nullptr || *end != '\0' || !(seconds > 0 && seconds <= 3600))
        return failure("--timeout takes seconds, more than 0 and at most 3600");
      wait.timeout = std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
      ++i;
    } else if (args[i].size() > 1 && args[i].rfind("--", 0) == 0) {
      return failure("unknown option " + args[i] + "; " + usage);
    } else {
      rest.push_back(args[i]);
    }
  }
  if (rest.size() != (all ? 1u : 2u)) return failure(usage);
  const std::string& path = rest.back();
  auto bytes = vm::read_file_bytes(path);
  if (!bytes) return failure(bytes.message());
  if (vm::looks_like_image(*bytes)) {
    // An image goes as it is: the node that runs it verifies it, as it
    // trusts no sender. Only its layout is checked here, for a clear error.
    if (auto parsed = vm::parse_image(*bytes); !parsed)
      return failure(path + ": " + parsed.message());
  } else {
    auto image = assembler::load_program_file(path);
    if (!image) return failure(image.message());
    *bytes = vm::serialize_image(*image);
  }
  wait.interrupted = env_.interrupt_requested;
  const std::vector<std::string> nodes = all ? std::vector<std::string>{} : Args{rest[0]};
  auto runs = env_.cluster->run(nodes, path, *bytes, wait);
  if (!runs) return failure(runs.message());
  const bool ok =
      std::all_of(runs->begin(), runs->end(), [](const RemoteRun& r) { return r.ok(); });
  std::string text = json ? run_results_json(*runs).dump(-1, ' ', false,
                                                         nlohmann::json::error_handler_t::replace) +
                                "\n"
                          : run_results_text(*runs, all);
  return Reply{std::move(text), ok, false, {}};
}

// !cluster_keys: the library returns keys and changes, the words are here.
Reply Shell::cmd_cluster_keys(const Args& args) {
  if (env_.cluster == nullptr) return failure("clustering is not available here");
  const std::string usage =
      "usage: !cluster_keys list [--json] | install FILE | use KEY | remove KEY";
  const std::string action = args.empty() ? "list" : args[0];
  if (action == "list") {
    const bool json = args.size() == 2 && args[1] == "--json";
    if (args.size() > 2 || (args.size() == 2 && !json)) {
      return failure("usage: !cluster_keys list [--json]");
    }
    auto keys = env_.cluster->keys();
    if (!keys) return failure(keys.message());
    if (json) {
      return success(
          keys_json(*keys).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    }
    return success(keys_table(*keys));
  }
  const bool install = action == "install";
  if (!install && action != "use" && action != "remove") {
    return failure("unknown action '" + action + "'; " + usage);
  }
  if (args.size() != 2 || args[1].empty()) {
    return failure("usage: !cluster_keys " + action + (install ? " FILE" : " KEY") +
                   (install ? "" : " (its file, as installed, or its fingerprint)"));
  }
  const std::string& name = args[1];
  auto change = install           ? env_.cluster->install_key(name)
                : action == "use" ? env_.cluster->use_key(name)
                                  : env_.cluster->remove_key(name);
  if (!change) return failure(change.message());
  const std::string key = "key " + change->key.fingerprint +
                          (change->key.path.empty() ? "" : " (" + change->key.path + ")");
  if (install) {
    if (change->already) return success("The " + key + " is installed already; nothing changed.");
    return success("Installed the " + key +
                   ": this node now admits peers that hold it. Once every node has it, make it "
                   "primary on each with !cluster_keys use " +
                   name + ".");
  }
  if (action == "use") {
    if (change->already) return success("The " + key + " is this node's primary key already.");
    return success("The " + key +
                   " is now this node's primary key: its listener and its connections use it. "
                   "Peers still on another installed key keep talking to it.");
  }
  return success("Removed the " + key +
                 ": peers that still use it are disconnected, and refused from now on.");
}

// "unknown command '!regsiters'; did you mean !registers?", or, when no
// command is near, a pointer to !help.
std::string Shell::unknown_command(std::string_view word) {
  std::vector<std::string_view> names;
  for (const Command& command : commands()) names.push_back(command.name.substr(1));
  std::string_view typed = word;
  while (!typed.empty() && typed.front() == '!') typed.remove_prefix(1);
  const std::string text = "unknown command '" + std::string(word) + "'; ";
  if (auto best = nearest_word(typed, names))
    return text + "did you mean !" + std::string(*best) + "?";
  return text + "type !help for the list";
}

// The shell command a line's first word was likely meant to be: `help`,
// `exit`, `quit` or any command's name typed without its `!`.
std::optional<std::string_view> Shell::command_for_word(std::string_view word) {
  auto is = [&](std::string_view name) {
    return name.size() == word.size() && edit_distance(name, word) == 0;
  };
  if (is("exit") || is("quit") || is("bye")) return "!quit";
  for (const Command& command : commands()) {
    if (is(command.name.substr(1))) return command.name;
  }
  return std::nullopt;
}

// Every assembly error on a line of its own. The assembler's own hints are in
// Diagnostic::format(); on a shell line, a first word that is a shell command
// without its `!` gets a pointer to the command instead.
std::string Shell::assembly_errors(const assembler::Assembly& assembly, bool shell_line) {
  std::string text;
  for (const assembler::Diagnostic& d : assembly.errors) {
    std::optional<std::string_view> command;
    if (shell_line && d.kind == assembler::DiagnosticKind::kUnknownInstruction) {
      command = command_for_word(d.token);
    }
    if (command) {
      text += d.token + " is not an instruction; shell commands start with '!': try " +
              std::string(*command) + "\n";
    } else {
      text += d.format() + "\n";
    }
  }
  return text;
}

}  // namespace iridium::shell
