#include "app/node.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <filesystem>
#include <iostream>
#include <zmq.hpp>

#include "app/cluster_adapter.h"
#include "app/identity.h"
#include "app/run_command.h"
#include "cluster/node.h"
#include "shell/console.h"
#include "shell/remote_client.h"
#include "shell/remote_server.h"
#include "shell/shell.h"

namespace iridium::app {
namespace {

// A shell line that never ends would hang its shell: programs run in a shell
// stop after this many instructions unless --max-steps says otherwise.
constexpr uint64_t kShellStepLimit = 2'000'000'000;

// SIGINT and SIGTERM are blocked in every thread and read from a signalfd by
// the main loop, so shutdown happens in one place, in order.
int block_shutdown_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return signalfd(-1, &set, SFD_CLOEXEC);
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

  std::vector<std::pair<std::string, uint16_t>> seeds;
  for (const std::string& seed : node.join) {
    auto address = shell::parse_host_port(seed);
    if (!address) {
      std::cerr << "--join: " << address.message() << "\n";
      return kExitUsage;
    }
    seeds.push_back(*address);
  }

  // Two contexts, so two ZeroMQ I/O threads: libzmq resolves a peer's host
  // name on its I/O thread at every redial, and on a cut-off node those
  // lookups stall until the resolver times out. The remote shell (and so the
  // health check) must keep answering meanwhile.
  zmq::context_t context(1);
  zmq::context_t remote_context(1);
  const vm::Limits program_limits{run.heap_cap, run.stack_cap, run.max_steps};
  shell::WorkerPool workers(node.threads, program_limits);

  cluster::NodeConfig cluster_config;
  cluster_config.alias = alias;
  cluster_config.bind_host = node.server_bind_host;
  cluster_config.bind_port = node.server_bind_port;
  cluster_config.port_fallback = !node.server_bind_port_explicit;
  cluster_config.advertise_host = node.advertise_host;
  cluster_config.members_file = (std::filesystem::path(*data_dir) / "cluster-members.json").string();
  cluster::Node cluster_node(context, cluster_config);
  ClusterAdapter cluster_commands(cluster_node);

  vm::Limits shell_limits = program_limits;
  if (shell_limits.max_steps == 0) shell_limits.max_steps = kShellStepLimit;
  const bool interactive = !node.daemon_mode && isatty(0) != 0;

  std::unique_ptr<shell::RemoteServer> remote;
  if (node.enable_remote_access) {
    shell::RemoteServerOptions remote_options;
    remote_options.host = node.bind_host;
    remote_options.port = node.bind_port;
    remote_options.token = node.remote_token;
    remote = std::make_unique<shell::RemoteServer>(remote_context, remote_options, [&](uint64_t id) {
      shell::Environment env{&workers, &cluster_commands, shell_limits, false};
      return std::make_unique<shell::Shell>(env, id);
    });
    if (auto status = remote->start(); !status) {
      std::cerr << status.message() << "\n";
      return kExitUsage;
    }
  }

  if (node.start_cluster || !seeds.empty()) {
    auto started = cluster_node.start();
    if (!started) {
      std::cerr << started.message() << "\n";
      return kExitUsage;
    }
    if (started->fell_back) {
      spdlog::info("port {} is in use; listening on {} instead", node.server_bind_port, started->bound.port);
    }
    spdlog::info("{}", describe_start(*started));
    // Seeds, or else the members this node knew last time (its data directory).
    cluster_node.join_in_background(seeds);
  }

  // The local shell, session 0.
  shell::Shell local(shell::Environment{&workers, &cluster_commands, shell_limits, interactive}, 0);
  bool reading = !node.daemon_mode;
  bool quit = false;
  std::unique_ptr<shell::Console> console;
  if (reading) {
    const std::string history = (std::filesystem::path(*data_dir) / "history").string();
    console = std::make_unique<shell::Console>(0, history, [&](std::optional<std::string> line) {
      if (!line) {
        reading = false;
        return;
      }
      shell::Reply reply = local.execute(*line);
      std::string text = reply.output + local.job_notices();
      if (!interactive && !reply.ok && !reply.output.empty()) {
        std::cerr << reply.output << std::flush;  // errors to stderr when scripted
        text = local.job_notices();
      }
      shell::Console::write(text);
      if (reply.quit) {
        quit = true;
        reading = false;
        console->stop();  // no line after !quit runs, even if it was already read
        return;
      }
      console->set_prompt(reply.ask.empty() ? ">>> " : reply.ask);
    });
    if (interactive) shell::Console::write(shell::Shell::banner());
    console->start(">>> ");
  }

  // The main loop: console input, shutdown signals, and a cluster that
  // cannot go on (every seed refused our alias).
  int exit_code = kExitOk;
  while (!quit) {
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
    pollfd fds[2] = {{signal_fd, POLLIN, 0}, {0, POLLIN, 0}};
    const nfds_t count = reading ? 2 : 1;
    if (::poll(fds, count, 500) < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info{};
      if (::read(signal_fd, &info, sizeof info) > 0) {
        spdlog::info("received {}, shutting down", info.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
      }
      break;
    }
    if (reading && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) console->on_readable();
  }
  if (console) console->stop();
  if (interactive) shell::Console::write("\n");
  cluster_node.leave_and_stop();
  if (remote) remote->stop();
  ::close(signal_fd);
  return exit_code;
}

}  // namespace iridium::app
