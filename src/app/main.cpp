// The `iridium` command line.
#include <CLI/CLI.hpp>
#include <iostream>
#include <string_view>

#include "app/health_command.h"
#include "app/keygen_command.h"
#include "app/logging.h"
#include "app/node.h"
#include "app/options.h"
#include "app/run_command.h"
#include "shell/remote_client.h"

namespace {

void add_run_options(CLI::App& app, iridium::app::RunOptions& run) {
  app.add_option("--state-json", run.state_json,
                 "Write the final VM state as JSON to PATH ('-' for stdout)");
  app.add_option("--max-steps", run.max_steps,
                 "Stop the program with an error after N instructions")
      ->check(CLI::PositiveNumber);
  app.add_option("--heap-cap", run.heap_cap, "Heap size cap in bytes")->capture_default_str();
  app.add_option("--stack-cap", run.stack_cap, "Stack cap in entries")->capture_default_str();
}

void add_node_options(CLI::App& app, iridium::app::NodeOptions& node) {
  app.add_option("--node-alias", node.node_alias,
                 "This node's name in the cluster (default: a UUID kept in the data directory)")
      ->envname("IRIDIUM_NODE_ALIAS");
  app.add_option("--cluster-name", node.cluster_name,
                 "This node's cluster (1..64 of A-Z a-z 0-9 . _ -): it ignores every node of "
                 "another cluster, and they ignore it")
      ->envname("IRIDIUM_CLUSTER_NAME")
      ->capture_default_str();
  app.add_option("--data-root-dir", node.data_root_dir,
                 "Where the node keeps its alias and shell history")
      ->envname("IRIDIUM_DATA_ROOT_DIR");
  app.add_option("--threads", node.threads, "Worker threads for !spawn")
      ->envname("IRIDIUM_THREADS")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--keep-finished-jobs", node.keep_finished_jobs,
                 "Finished jobs kept for !jobs and !job; older ones are dropped first")
      ->envname("IRIDIUM_KEEP_FINISHED_JOBS")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--keep-finished-output", node.keep_finished_output,
                 "Bytes of output and errors the kept finished jobs may hold together")
      ->envname("IRIDIUM_KEEP_FINISHED_OUTPUT")
      ->capture_default_str();
  app.add_option("-H,--server-bind-host", node.server_bind_host, "Cluster listener address")
      ->envname("IRIDIUM_SERVER_BIND_HOST")
      ->capture_default_str();
  app.add_option("-P,--server-bind-port", node.server_bind_port, "Cluster listener port")
      ->envname("IRIDIUM_SERVER_BIND_PORT")
      ->capture_default_str();
  app.add_option("--advertise-host", node.advertise_host,
                 "Host other nodes use to reach this one (default: the bind host, or the hostname "
                 "for 0.0.0.0)")
      ->envname("IRIDIUM_ADVERTISE_HOST");
  app.add_flag("-r,--enable-remote-access", node.enable_remote_access,
               "Serve remote shells (iridium attach)")
      ->envname("IRIDIUM_ENABLE_REMOTE_ACCESS");
  app.add_option("-h,--bind-host", node.bind_host, "Remote shell address")
      ->envname("IRIDIUM_BIND_HOST")
      ->capture_default_str();
  app.add_option("-p,--bind-port", node.bind_port, "Remote shell port")
      ->envname("IRIDIUM_BIND_PORT")
      ->capture_default_str();
  app.add_option("--remote-token", node.remote_token,
                 "Shared token remote shells must present (required off loopback)")
      ->envname("IRIDIUM_REMOTE_TOKEN");
  app.add_option("--cluster-key", node.cluster_key,
                 "Cluster key file (iridium keygen): every cluster connection is encrypted and "
                 "only nodes with this key may join")
      ->envname("IRIDIUM_CLUSTER_KEY");
  app.add_flag("--insecure", node.insecure,
               "Allow a cluster listener off loopback without a cluster key (anyone who reaches "
               "it can join)")
      ->envname("IRIDIUM_INSECURE");
  app.add_option("--remote-key", node.remote_key,
                 "Key file for the remote shell (default: the cluster key): attach needs --key")
      ->envname("IRIDIUM_REMOTE_KEY");
  app.add_flag("--daemon-mode", node.daemon_mode, "No local shell: serve until SIGTERM")
      ->envname("IRIDIUM_DAEMON_MODE");
  app.add_flag("--start-cluster", node.start_cluster, "Start the cluster listener at once")
      ->envname("IRIDIUM_START_CLUSTER");
  app.add_option("--join", node.join,
                 "Join the cluster through HOST:PORT (repeatable; retried until a seed answers)")
      ->envname("IRIDIUM_JOIN")
      ->delimiter(',');
  app.add_option("--metrics-port", node.metrics_port,
                 "Serve Prometheus metrics on http://HOST:PORT/metrics (0: off)")
      ->envname("IRIDIUM_METRICS_PORT")
      ->capture_default_str();
  app.add_option("--metrics-host", node.metrics_host, "Metrics address")
      ->envname("IRIDIUM_METRICS_HOST")
      ->capture_default_str();
}

// `-h` is the remote shell's bind host (-h HOST), as the spec has it, so a
// bare `iridium -h` is an option without its value. True when argv ends in
// that `-h` (CLI11 takes any word after it, even `--daemon-mode`, as the
// value): the parse error then says where help is.
bool ends_in_bare_dash_h(int argc, char** argv) {
  if (argc < 2 || std::string_view(argv[argc - 1]) != "-h") return false;
  for (int i = 1; i < argc - 1; ++i) {
    if (std::string_view(argv[i]) == "--") return false;  // then "-h" is a file name
  }
  return true;
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
  LogOptions log;

  app.add_option("FILE", run.file,
                 "Program to run (.iasm source or .pie image); no FILE opens the shell");
  add_run_options(app, run);
  app.add_option("--log-level", log.level, "Log level: trace, debug, info, warn, error, off")
      ->envname("IRIDIUM_LOG")
      ->capture_default_str();
  app.add_option("--log-color", log.color,
                 "Colour in log lines: auto (only on a colour terminal, unless NO_COLOR is set), "
                 "always, never")
      ->envname("IRIDIUM_LOG_COLOR")
      ->capture_default_str();

  CLI::App* run_cmd = app.add_subcommand("run", "Run a program (.iasm source or .pie image)");
  run_cmd->add_option("FILE", run.file, "Program to run")->required();
  run_cmd->fallthrough();

  CLI::App* asm_cmd = app.add_subcommand("asm", "Assemble FILE.iasm into an image");
  asm_cmd->add_option("FILE", asm_options.input, "Assembly source")->required();
  asm_cmd->add_option("-o,--output", asm_options.output,
                      "Image to write (default: FILE with .pie)");

  NodeOptions node;
  add_node_options(app, node);

  AttachOptions attach;
  CLI::App* attach_cmd =
      app.add_subcommand("attach", "Open a shell on a node started with --enable-remote-access");
  attach_cmd->add_option("ADDRESS", attach.address, "HOST:PORT of the node's remote shell")
      ->required();
  attach_cmd->add_option("-c,--command", attach.commands,
                         "Run LINE and print its output (repeatable); exit 1 if any fails");
  attach_cmd->add_option("--token", attach.token, "The node's remote-shell token")
      ->envname("IRIDIUM_REMOTE_TOKEN");
  attach_cmd
      ->add_option("--key", attach.key,
                   "Key file of the node's remote shell (its --remote-key or --cluster-key)")
      ->envname("IRIDIUM_REMOTE_KEY");
  attach_cmd->add_option("--timeout", attach.timeout_seconds, "Seconds to wait for each answer")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();

  CLI::App* disasm_cmd = app.add_subcommand("disasm", "Print the assembly of an image");
  disasm_cmd->add_option("FILE", disasm_path, "Image (.pie)")->required();

  std::string key_path;
  CLI::App* keygen_cmd =
      app.add_subcommand("keygen", "Write a new cluster key to FILE (mode 0600, never overwrites)");
  keygen_cmd->add_option("FILE", key_path, "Key file to create")->required();

  HealthOptions health;
  CLI::App* health_cmd = app.add_subcommand(
      "health",
      "Exit 0, silently, if the node's loops stamped its health file recently; else 1 and why");
  health_cmd
      ->add_option("--max-age", health.max_age_seconds,
                   "Seconds a stamp may be old (the node stamps about once a second)")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  health_cmd->add_option("--file", health.file,
                         "The health file (default: DIR/run/health.json of --data-root-dir)");
  health_cmd->add_option("--data-root-dir", health.data_root_dir,
                         "The node's data directory (default: the node's default)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (ends_in_bare_dash_h(argc, argv)) {
      std::cerr << "iridium: -h is the remote shell's bind host (-h HOST), not help; for help use "
                   "--help\n";
      return kExitUsage;
    }
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  auto log_color = parse_log_color(log.color);
  if (!log_color) {
    std::cerr << log_color.message() << "\n";
    return kExitUsage;
  }
  if (auto status = init_logging(log.level, *log_color); !status) {
    std::cerr << status.message() << "\n";
    return kExitUsage;
  }

  if (*asm_cmd) return assemble_file(asm_options);
  if (*disasm_cmd) return disassemble_file(disasm_path);
  if (*keygen_cmd) return write_new_key(key_path);
  if (*health_cmd) {
    if (health.data_root_dir.empty()) health.data_root_dir = node.data_root_dir;  // or its variable
    return check_health(health);
  }
  if (*run_cmd || !run.file.empty()) return run_program(run);
  if (*attach_cmd) {
    iridium::shell::AttachSettings settings;
    settings.address = attach.address;
    settings.commands = attach.commands;
    settings.token = attach.token;
    if (!attach.key.empty()) {
      auto key = read_key_option("--key", attach.key);
      if (!key) return kExitUsage;
      settings.key = *key;
    }
    settings.command_timeout =
        std::chrono::milliseconds(static_cast<int64_t>(attach.timeout_seconds * 1000));
    return iridium::shell::attach(settings);
  }
  node.server_bind_port_explicit = app.get_option("--server-bind-port")->count() > 0;
  return run_node(node, run);
}
