#include "shell/remote_client.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <zmq.hpp>

#include "common/curve_socket.h"
#include "common/socket_monitor.h"
#include "shell/completion.h"
#include "shell/console.h"
#include "shell/shell.h"

namespace iridium::shell {

Result<std::pair<std::string, uint16_t>> parse_host_port(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
    return Error{"expected HOST:PORT, got '" + text + "'"};
  }
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  const std::string port_text = text.substr(colon + 1);
  char* end = nullptr;
  const long port = std::strtol(port_text.c_str(), &end, 10);
  if (*end != '\0' || port < 1 || port > 65535)
    return Error{"bad port '" + port_text + "' in '" + text + "'"};
  return std::make_pair(host, static_cast<uint16_t>(port));
}

namespace {

std::string format_seconds(std::chrono::milliseconds duration) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", static_cast<double>(duration.count()) / 1000.0);
  return text;
}

// Ctrl-C for attach: SIGINT is blocked (for the rest of the process) and
// read from a non-blocking signalfd, so it never kills the client; every
// wait below polls fd() next to its socket or the terminal.
class InterruptSignal {
 public:
  InterruptSignal() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    fd_ = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  }
  ~InterruptSignal() {
    if (fd_ >= 0) ::close(fd_);
  }
  InterruptSignal(const InterruptSignal&) = delete;
  InterruptSignal& operator=(const InterruptSignal&) = delete;

  int fd() const { return fd_; }
  // Whether SIGINT came since the last call (several count once).
  bool take() {
    bool got = false;
    signalfd_siginfo info{};
    while (fd_ >= 0 && ::read(fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
      got = true;
    }
    return got;
  }

 private:
  int fd_ = -1;
};

// What Ctrl-C does while the client waits for an answer.
enum class OnCtrlC {
  kGiveUp,           // stop waiting at once (opening the session)
  kInterruptOnce,    // -c: interrupt the line; a second Ctrl-C stops waiting
  kInterruptAlways,  // interactive: interrupt the line, as often as pressed
};

class Connection {
 public:
  Connection(const AttachSettings& settings, InterruptSignal& interrupts)
      : settings_(settings), interrupts_(interrupts) {}

  Status open(std::string& banner) {
    auto address = parse_host_port(settings_.address);
    if (!address) return address.error();
    socket_ = zmq::socket_t(context_, zmq::socket_type::dealer);
    socket_.set(zmq::sockopt::linger, 0);
    socket_.set(zmq::sockopt::maxmsgsize, int64_t{16} << 20);
    const auto& [host, port] = *address;
    if (host.find(':') != std::string::npos) socket_.set(zmq::sockopt::ipv6, 1);
    if (settings_.key) make_curve_client(socket_, *settings_.key, settings_.key->public_z85);
    // A refused handshake (no key, wrong key) is reported at once, not as a timeout.
    auto monitor =
        open_monitor(context_, socket_, "inproc://iridium-attach-monitor", kHandshakeFailureEvents);
    if (!monitor) return monitor.error();
    monitor_ = std::move(*monitor);
    try {
      const bool ipv6 = host.find(':') != std::string::npos;
      socket_.connect("tcp://" + (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port));
    } catch (const zmq::error_t& e) {
      return Error{"cannot connect to " + settings_.address + ": " + e.what()};
    }
    auto response = call(remote::Request{remote::Request::Type::kOpen, settings_.token, {}},
                         settings_.connect_timeout, OnCtrlC::kGiveUp);
    if (!response) {
      // A refused handshake says so itself; a timeout hints at the usual cause.
      if (response.kind() == ErrorKind::kRefused || ctrl_c_ > 0) return response.error();
      return Error{response.message() + " (is a node running there with --enable-remote-access?)"};
    }
    if (response->type == remote::Response::Type::kRefused)
      return Error{"refused: " + response->text};
    banner = response->text;
    // A node older than the ping message asks for none (0). The first ping
    // goes at once: it tells the node that this client keeps alive.
    if (response->keepalive_ms > 0) {
      keepalive_ = std::clamp(std::chrono::milliseconds(response->keepalive_ms),
                              std::chrono::milliseconds(100), std::chrono::milliseconds(60'000));
      ping();
    }
    return ok_status();
  }

  // Sends a ping when one is due, so the node keeps this session while we
  // wait for the user or for a long line.
  void keep_alive() {
    if (keepalive_.count() == 0 || Clock::now() < last_sent_ + keepalive_) return;
    ping();
  }

  // How long until the next ping is due; -1 (wait forever) without pings.
  int ms_until_ping() const {
    if (keepalive_.count() == 0) return -1;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        last_sent_ + keepalive_ - Clock::now());
    return static_cast<int>(std::max<int64_t>(0, left.count()));
  }

  Result<remote::Response> exec(const std::string& line, OnCtrlC on_ctrl_c) {
    return call(remote::Request{remote::Request::Type::kExec, {}, line}, settings_.command_timeout,
                on_ctrl_c);
  }

  // How often Ctrl-C was pressed during the last wait for an answer.
  int ctrl_c() const { return ctrl_c_; }

  void close() {
    (void)send(remote::encode(remote::Request{remote::Request::Type::kClose, {}, {}}));
    close_monitor(socket_, monitor_);
  }

 private:
  using Clock = std::chrono::steady_clock;

  void ping() { (void)send(remote::encode(remote::Request{remote::Request::Type::kPing, {}, {}})); }

  bool send(const std::string& frame) {
    if (!socket_.send(zmq::buffer(frame), zmq::send_flags::dontwait)) return false;
    last_sent_ = Clock::now();
    return true;
  }

  // Ctrl-C during a line: asks the node to stop it. The line's own result
  // still comes, as "interrupted at code offset N; ...".
  void interrupt_line() {
    if (!interrupt_known_unsupported_) {
      (void)send(remote::encode(remote::Request{remote::Request::Type::kInterrupt, {}, {}}));
      return;
    }
    std::cerr << older_node_notice();
  }

  std::string older_node_notice() const {
    return "the node at " + settings_.address +
           " cannot interrupt a line (it is older than the interrupt message); waiting for the "
           "line to end\n";
  }

  // Sends request and waits for its answer, pinging meanwhile (a long line
  // must not look like a vanished client) and handling Ctrl-C as on_ctrl_c
  // says.
  Result<remote::Response> call(const remote::Request& request, std::chrono::milliseconds timeout,
                                OnCtrlC on_ctrl_c) {
    ctrl_c_ = 0;
    if (!send(remote::encode(request))) return Error{"cannot send to " + settings_.address};
    const auto deadline = Clock::now() + timeout;
    zmq::pollitem_t items[] = {{socket_.handle(), 0, ZMQ_POLLIN, 0},
                               {monitor_.handle(), 0, ZMQ_POLLIN, 0},
                               {nullptr, interrupts_.fd(), ZMQ_POLLIN, 0}};
    const int count = interrupts_.fd() >= 0 ? 3 : 2;
    while (true) {
      const auto now = Clock::now();
      if (now >= deadline) {
        return Error{"no answer from " + settings_.address + " within " + format_seconds(timeout) +
                     " s"};
      }
      auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
      if (const int ping = ms_until_ping(); ping >= 0) {
        wait = std::min(wait, std::chrono::milliseconds(ping));
      }
      items[0].revents = items[1].revents = items[2].revents = 0;
      zmq::poll(items, count, std::max(wait, std::chrono::milliseconds(1)));
      if (count > 2 && (items[2].revents & ZMQ_POLLIN) != 0 && interrupts_.take()) {
        ++ctrl_c_;
        const bool give_up =
            on_ctrl_c == OnCtrlC::kGiveUp || (on_ctrl_c == OnCtrlC::kInterruptOnce && ctrl_c_ > 1);
        if (give_up) return Error{"interrupted"};
        interrupt_line();
      }
      if ((items[0].revents & ZMQ_POLLIN) != 0) {
        zmq::message_t reply;
        (void)socket_.recv(reply, zmq::recv_flags::none);
        auto response = remote::decode_response(
            std::span(static_cast<const uint8_t*>(reply.data()), reply.size()));
        if (!response) {
          return Error{"bad answer from " + settings_.address + ": " + response.message()};
        }
        // An older node refuses `interrupt`, out of turn: not our answer.
        if (remote::refuses_interrupt(*response)) {
          if (!interrupt_known_unsupported_) std::cerr << older_node_notice();
          interrupt_known_unsupported_ = true;
          continue;
        }
        return response;
      }
      if (auto refused = handshake_refused()) return *refused;
      keep_alive();
    }
  }

  // The node turned our handshake down: no key where it wants one, another
  // key, or a key where it has none.
  std::optional<Error> handshake_refused() {
    while (auto e = read_monitor_event(monitor_)) {
      if (!is_handshake_failure(e->event)) continue;
      const std::string why =
          settings_.key
              ? "the CURVE handshake failed: the node's remote shell has another key than --key "
                "(or no key)"
              : "the handshake failed: the node's remote shell requires a key; pass --key FILE "
                "(or set IRIDIUM_REMOTE_KEY)";
      return Error{"refused by " + settings_.address + ": " + why, ErrorKind::kRefused};
    }
    return std::nullopt;
  }

  const AttachSettings& settings_;
  InterruptSignal& interrupts_;
  zmq::context_t context_{1};
  zmq::socket_t socket_;
  zmq::socket_t monitor_;                   // PAIR: the DEALER's handshake failures
  std::chrono::milliseconds keepalive_{0};  // 0: the node wants no pings
  Clock::time_point last_sent_{};
  int ctrl_c_ = 0;
  bool interrupt_known_unsupported_ = false;
};

// -c: an interrupted line's result is printed, the lines after it do not
// run, and the exit status is kExitInterrupted.
int run_commands(Connection& connection, InterruptSignal& interrupts,
                 const std::vector<std::string>& commands) {
  bool failed = false;
  for (const std::string& line : commands) {
    if (interrupts.take()) {  // Ctrl-C between two lines
      connection.close();
      return kExitInterrupted;
    }
    auto response = connection.exec(line, OnCtrlC::kInterruptOnce);
    if (!response) {
      std::cerr << response.message() << "\n";
      if (connection.ctrl_c() > 0) {  // a second Ctrl-C: the client stops waiting
        connection.close();
        return kExitInterrupted;
      }
      return 2;
    }
    if (response->type == remote::Response::Type::kRefused) {
      std::cerr << "refused: " << response->text << "\n";
      return 2;
    }
    std::cout << response->text << std::flush;
    if (connection.ctrl_c() > 0) {
      connection.close();
      return kExitInterrupted;
    }
    if (!response->ok) failed = true;
    if (response->quit) break;
  }
  connection.close();
  return failed ? 1 : 0;
}

// Interactive: Ctrl-C interrupts a running line or clears the half-typed
// one, and never ends the client (Ctrl-D and !quit do). Without a terminal
// there is no line to clear, so Ctrl-C between lines ends the client.
int run_interactive(Connection& connection, InterruptSignal& interrupts,
                    const AttachSettings& settings) {
  int exit_code = 0;
  bool done = false;
  bool asking = false;  // the prompt is the remote shell's question
  Console* console_ptr = nullptr;
  auto show = [&](const remote::Response& response) {
    Console::write(response.text);
    asking = !response.ask.empty();
    console_ptr->set_prompt(asking ? response.ask : ">>> ");
  };
  // Runs a line; false when the session cannot go on.
  auto run = [&](const std::string& line) {
    auto response = connection.exec(line, OnCtrlC::kInterruptAlways);
    if (!response || response->type == remote::Response::Type::kRefused) {
      std::cerr << (response ? "refused: " + response->text : response.message()) << "\n";
      exit_code = 2;
      return false;
    }
    // After the terminal's ^C.
    if (connection.ctrl_c() > 0 && console_ptr->interactive()) Console::write("\n");
    show(*response);
    return !response->quit;
  };
  Console console(0, isatty(0) != 0, settings.history_path, [&](std::optional<std::string> line) {
    if (line && run(*line)) return;
    done = true;
    console_ptr->stop();  // no fresh prompt after Ctrl-D or !quit
  });
  console_ptr = &console;
  // The node's labels stay on the node: Tab here offers commands, mnemonics
  // and (local) paths.
  console.set_completer([](std::string_view line_before_cursor) {
    return completions(line_before_cursor, CompletionSources{Shell::command_names(), {}});
  });
  console.start(">>> ");
  while (!done) {
    pollfd fds[2] = {{console.fd(), POLLIN, 0}, {interrupts.fd(), POLLIN, 0}};
    if (::poll(fds, interrupts.fd() >= 0 ? 2 : 1, connection.ms_until_ping()) < 0 && errno != EINTR)
      break;
    if ((fds[1].revents & POLLIN) != 0 && interrupts.take()) {
      if (!console.interactive()) {
        exit_code = kExitInterrupted;
        break;
      }
      // Ctrl-C at the prompt: drop the typed line; a question is cancelled
      // by answering it with an empty line, as in the local shell.
      std::string note;
      if (asking) {
        auto response = connection.exec("", OnCtrlC::kInterruptAlways);
        if (response && response->type == remote::Response::Type::kResult) note = response->text;
        asking = false;
        console.set_prompt(">>> ");
      }
      console.interrupt(note);
      continue;
    }
    if (fds[0].revents != 0) console.on_readable();
    connection.keep_alive();
  }
  console.stop();
  if (console.interactive()) Console::write("\n");
  connection.close();
  return exit_code;
}

}  // namespace

int attach(const AttachSettings& settings) {
  InterruptSignal interrupts;  // before the ZeroMQ context starts its thread
  Connection connection(settings, interrupts);
  std::string banner;
  if (auto status = connection.open(banner); !status) {
    std::cerr << "iridium attach: " << status.message() << "\n";
    return connection.ctrl_c() > 0 ? kExitInterrupted : 2;
  }
  if (!settings.commands.empty()) return run_commands(connection, interrupts, settings.commands);
  if (isatty(0)) Console::write(banner);
  return run_interactive(connection, interrupts, settings);
}

}  // namespace iridium::shell
