#include "app/node.h"

#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <zmq.hpp>

#include "app/cluster_adapter.h"
#include "app/identity.h"
#include "app/keygen_command.h"
#include "app/metrics.h"
#include "app/run_command.h"
#include "app/run_executor.h"
#include "cluster/node.h"
#include "common/health_file.h"
#include "shell/console.h"
#include "shell/remote_client.h"
#include "shell/remote_server.h"
#include "shell/shell.h"

namespace iridium::app {
namespace {

// A shell line that never ends would hang its shell: programs run in a shell
// stop after this many instructions unless --max-steps says otherwise.
constexpr uint64_t kShellStepLimit = 2'000'000'000;

// SIGINT and SIGTERM are blocked in every thread and read from a
// (non-blocking) signalfd by the main thread only: by the main loop between
// lines, and by the local shell's interrupt check between slices of a
// running line. SIGTERM shuts the node down, in one place, in order. SIGINT
// (Ctrl-C, also as PID 1 in a container through `docker attach`) never does:
// it interrupts the running line or clears the half-typed one.
int block_shutdown_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

struct Signals {
  bool interrupt = false;  // SIGINT
  bool terminate = false;  // SIGTERM
};

// Every signal that is pending on the signalfd (several SIGINTs count once).
Signals take_signals(int signal_fd) {
  Signals got;
  signalfd_siginfo info{};
  while (::read(signal_fd, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
    if (info.ssi_signo == SIGTERM) {
      got.terminate = true;
    } else {
      got.interrupt = true;
    }
  }
  return got;
}

// What Ctrl-D says when the node goes on serving without its local shell.
std::string keeps_serving_hint(bool cluster, bool remote) {
  std::string what = cluster && remote ? "its cluster and remote shells"
                     : cluster         ? "its cluster"
                                       : "remote shells";
  return "\nThis node keeps serving " + what +
         ", so Ctrl-D does not stop it. Stop it with !quit, or with SIGTERM (docker stop).\n";
}

}  // namespace

int run_node(const NodeOptions& node, const RunOptions& run) {
  const int signal_fd = block_shutdown_signals();
  if (signal_fd < 0) {
    std::cerr << "cannot set up signal handling\n";
    return kExitUsage;
  }

  auto data_dir = resolve_data_dir(node.data_root_dir);
  if (!data_dir) {
    std::cerr << data_dir.message() << "\n";
    return kExitUsage;
  }
  std::string alias = node.node_alias;
  if (alias.empty()) {
    auto stored = load_or_create_alias(*data_dir);
    if (!stored) {
      std::cerr << stored.message() << "\n";
      return kExitUsage;
    }
    alias = *stored;
  } else if (auto status = check_alias(alias); !status) {
    std::cerr << status.message() << "\n";
    return kExitUsage;
  }
  if (!cluster::valid_cluster_name(node.cluster_name)) {
    std::cerr << "--cluster-name (IRIDIUM_CLUSTER_NAME): '" << node.cluster_name
              << "' is not a valid cluster name: use 1 to 64 letters, digits, '.', '_' and '-'\n";
    return kExitUsage;
  }

  std::vector<std::pair<std::string, uint16_t>> seeds;
  for (const std::string& seed : node.join) {
    auto address = shell::parse_host_port(seed);
    if (!address) {
      std::cerr << "--join: " << address.message() << "\n";
      return kExitUsage;
    }
    seeds.push_back(*address);
  }

  // Keys first: a bad key file ends the node before anything binds.
  std::optional<CurveKey> cluster_key;
  if (!node.cluster_key.empty()) {
    cluster_key = read_key_option("--cluster-key", node.cluster_key);
    if (!cluster_key) return kExitUsage;
  }
  std::optional<CurveKey> remote_key = cluster_key;
  if (!node.remote_key.empty()) {
    remote_key = read_key_option("--remote-key", node.remote_key);
    if (!remote_key) return kExitUsage;
  }

  // Two contexts, so two ZeroMQ I/O threads: libzmq resolves a peer's host
  // name on its I/O thread at every redial, and on a cut-off node those
  // lookups stall until the resolver times out. The remote shell (and so the
  // health check) must keep answering meanwhile.
  zmq::context_t context(1);
  zmq::context_t remote_context(1);
  // Stamped by the cluster loop and the remote-shell thread, read by
  // `iridium health`; declared before both, so it outlives them.
  health::HealthFile health_file(
      health::health_file_path(*data_dir), alias, node.cluster_name,
      [](const Error& e) { spdlog::warn("cannot write the health file: {}", e.message); });
  const vm::Limits program_limits{run.heap_cap, run.stack_cap, run.max_steps};
  shell::WorkerPool workers(node.threads, program_limits,
                            {node.keep_finished_jobs, node.keep_finished_output});

  cluster::NodeConfig cluster_config;
  cluster_config.alias = alias;
  cluster_config.cluster_name = node.cluster_name;
  cluster_config.bind_host = node.server_bind_host;
  cluster_config.bind_port = node.server_bind_port;
  cluster_config.port_fallback = !node.server_bind_port_explicit;
  cluster_config.advertise_host = node.advertise_host;
  cluster_config.members_file =
      (std::filesystem::path(*data_dir) / "cluster-members.json").string();
  cluster_config.cluster_key = cluster_key;
  cluster_config.cluster_key_path = node.cluster_key;
  cluster_config.insecure = node.insecure;
  cluster_config.health = &health_file;
  // The main loop sleeps until something happens; a cluster that cannot go
  // on wakes it through this.
  const int fatal_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fatal_fd < 0) {
    std::cerr << "cannot set up the main loop's wake-up\n";
    return kExitUsage;
  }
  cluster_config.on_fatal = [fatal_fd] { (void)::eventfd_write(fatal_fd, 1); };
  if (node.start_cluster || !seeds.empty()) {
    if (auto refusal = cluster::check_listen_security(cluster_config)) {
      std::cerr << "iridium: " << refusal->message << "\n";
      return kExitUsage;
    }
  }
  // Images members send run on this node's workers. Declared before the
  // node, which calls it until it stops; the pool outlives both (a job that
  // finishes after the node is gone is dropped by the node's relay).
  PoolRunExecutor run_executor(workers);
  cluster::Node cluster_node(context, cluster_config);
  cluster_node.set_run_executor(&run_executor);
  ClusterAdapter cluster_commands(cluster_node);

  vm::Limits shell_limits = program_limits;
  if (shell_limits.max_steps == 0) shell_limits.max_steps = kShellStepLimit;
  // Decided once, now: a terminal that hangs up later is no terminal to
  // isatty() any more, yet it must be reported as hung up (the main loop),
  // not read as a pipe that ended. The console takes this answer.
  const bool interactive = !node.daemon_mode && isatty(0) != 0;

  // Signals seen by the local shell's interrupt check while a line runs.
  bool terminating = false;       // SIGTERM: stop the line, then shut down
  bool line_interrupted = false;  // SIGINT during the current line
  auto interrupt_requested = [&] {
    const Signals got = take_signals(signal_fd);
    terminating = terminating || got.terminate;
    line_interrupted = line_interrupted || got.interrupt;
    return terminating || line_interrupted;
  };

  std::unique_ptr<shell::RemoteServer> remote;
  if (node.enable_remote_access) {
    shell::RemoteServerOptions remote_options;
    remote_options.host = node.bind_host;
    remote_options.port = node.bind_port;
    remote_options.token = node.remote_token;
    remote_options.key = remote_key;
    remote_options.health = &health_file;
    remote = std::make_unique<shell::RemoteServer>(
        remote_context, remote_options, [&](uint64_t id, std::function<bool()> remote_interrupt) {
          shell::Environment env{&workers, &cluster_commands, shell_limits, false,
                                 std::move(remote_interrupt)};
          return std::make_unique<shell::Shell>(env, id);
        });
    if (auto status = remote->start(); !status) {
      std::cerr << status.message() << "\n";
      return kExitUsage;
    }
  }

  std::unique_ptr<MetricsServer> metrics;
  if (node.metrics_port != 0) {
    auto started = MetricsServer::start(node.metrics_host, node.metrics_port, [&] {
      return MetricsInput{cluster_node.snapshot(),
                          remote ? std::optional(remote->session_count()) : std::nullopt,
                          workers.counts()};
    });
    if (!started) {
      std::cerr << started.message() << "\n";
      return kExitUsage;
    }
    metrics = std::move(*started);
    spdlog::info("serving metrics on http://{}/metrics", metrics->endpoint());
  }

  if (node.start_cluster || !seeds.empty()) {
    auto started = cluster_node.start();
    if (!started) {
      std::cerr << started.message() << "\n";
      return kExitUsage;
    }
    if (started->fell_back) {
      spdlog::info("port {} is in use; listening on {} instead", node.server_bind_port,
                   started->bound.port);
    }
    spdlog::info("{}", describe_start(*started));
    // Seeds, or else the members this node knew last time (its data directory).
    cluster_node.join_in_background(seeds);
  }

  // The local shell, session 0. Its lines run on the main thread, inside
  // the console callback; signals that arrive meanwhile are read by its
  // interrupt check between slices, the rest by the main loop.
  shell::Environment local_env{&workers, &cluster_commands, shell_limits, interactive, {}};
  local_env.may_kill_any_job = true;  // the node's own user may stop any job (docs/shell.md)
  local_env.interrupt_requested = interrupt_requested;
  shell::Shell local(local_env, 0);
  bool reading = !node.daemon_mode;
  bool quit = false;
  bool asking = false;  // the prompt is the shell's question, e.g. a missing path
  std::unique_ptr<shell::Console> console;
  auto show = [&](const shell::Reply& reply) {
    const std::string notices = local.job_notices();
    std::string text = reply.output + notices;
    if (!interactive && !reply.ok && !reply.output.empty()) {
      // Scripted: the program's output to stdout, the error text to stderr.
      std::cerr << reply.output.substr(reply.program_output) << std::flush;
      text = reply.output.substr(0, reply.program_output) + notices;
    }
    shell::Console::write(text);
    asking = !reply.ask.empty();
    console->set_prompt(asking ? reply.ask : ">>> ");
  };
  if (reading) {
    const std::string history = (std::filesystem::path(*data_dir) / "history").string();
    console = std::make_unique<shell::Console>(
        0, interactive, history, [&](std::optional<std::string> line) {
          if (!line) {  // end of input: Ctrl-D on a terminal, or the end of a pipe
            if (local.in_block()) {
              // Ends the block as !end does; a terminal then goes on reading.
              show(local.execute("!end"));
              if (console->interactive()) return;
            }
            const bool serving = remote != nullptr || cluster_node.started();
            if (serving && console->interactive()) {
              // Keep the REPL: a terminal can be read again after Ctrl-D.
              shell::Console::write(keeps_serving_hint(cluster_node.started(), remote != nullptr));
              return;
            }
            // A standalone shell leaves; a pipe that ended stays ended and a
            // serving node goes on silently.
            reading = false;
            console->stop();
            return;
          }
          line_interrupted = false;
          shell::Reply reply = local.execute(*line);
          if (line_interrupted && interactive)
            shell::Console::write("\n");  // after the terminal's ^C
          line_interrupted = false;
          show(reply);
          if (reply.quit) {
            quit = true;
            reading = false;
            console->stop();  // no line after !quit runs, even if it was already read
          }
        });
    console->set_completer(
        [&](std::string_view line_before_cursor) { return local.completions(line_before_cursor); });
    if (interactive) shell::Console::write(shell::Shell::banner());
    console->start(">>> ");
  }

  // The main loop: console input, signals, and a cluster that cannot go on
  // (every seed refused our alias).
  int exit_code = kExitOk;
  while (!quit) {
    if (terminating) {
      spdlog::info("received SIGTERM, shutting down");
      break;
    }
    if (auto fatal = cluster_node.fatal_error()) {
      std::cerr << "iridium: cannot join the cluster: " << fatal->message << "\n";
      exit_code = kExitRuntimeError;
      break;
    }
    if (!reading) {
      if (console) console->stop();
      const bool serving = remote != nullptr || cluster_node.started();
      if (!serving) break;
    }
    pollfd fds[3] = {{signal_fd, POLLIN, 0}, {fatal_fd, POLLIN, 0}, {0, POLLIN, 0}};
    const nfds_t count = reading ? 3 : 2;
    if (::poll(fds, count, -1) < 0 && errno != EINTR) break;
    if (fds[1].revents & POLLIN) continue;  // fatal_error() says why, at the top
    if (fds[0].revents & POLLIN) {
      const Signals got = take_signals(signal_fd);
      terminating = terminating || got.terminate;
      if (got.interrupt && !terminating) {
        if (reading && console->interactive()) {
          // Ctrl-C at the prompt: drop the typed line; a question is cancelled.
          std::string note;
          if (asking) {
            note = local.cancel().output;  // "cancelled: no path given", "block dropped ..."
            asking = false;
            console->set_prompt(">>> ");
          }
          console->interrupt(note);
        } else {
          spdlog::info("received SIGINT; ignored (SIGTERM stops the node)");
        }
      }
      continue;
    }
    if (reading && console->interactive() && (fds[2].revents & (POLLHUP | POLLERR))) {
      // The terminal's other end has gone (a closed window, a dropped ssh
      // session). Unlike Ctrl-D it stays "readable" forever, so reading on
      // would spin; a serving node goes on without its REPL.
      spdlog::info("the terminal hung up; {}", remote != nullptr || cluster_node.started()
                                                   ? "the node keeps serving"
                                                   : "leaving the shell");
      reading = false;
      continue;
    }
    if (reading && (fds[2].revents & (POLLIN | POLLHUP | POLLERR))) console->on_readable();
  }
  if (console) console->stop();
  if (interactive) shell::Console::write("\n");
  metrics.reset();  // no scrape reads the node while it stops
  cluster_node.leave_and_stop();
  if (remote) remote->stop();
  ::close(fatal_fd);
  ::close(signal_fd);
  return exit_code;
}

}  // namespace iridium::app
