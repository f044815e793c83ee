#include "shell/remote_client.h"

#include <poll.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <zmq.hpp>

#include "common/curve_socket.h"
#include "common/socket_monitor.h"
#include "shell/console.h"

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

class Connection {
 public:
  Connection(const AttachSettings& settings) : settings_(settings) {}

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
                         settings_.connect_timeout);
    if (!response) {
      // A refused handshake says so itself; a timeout hints at the usual cause.
      if (response.kind() == ErrorKind::kRefused) return response.error();
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

  Result<remote::Response> exec(const std::string& line) {
    return call(remote::Request{remote::Request::Type::kExec, {}, line}, settings_.command_timeout);
  }

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

  Result<remote::Response> call(const remote::Request& request, std::chrono::milliseconds timeout) {
    if (!send(remote::encode(request))) return Error{"cannot send to " + settings_.address};
    // Wait for the answer, pinging meanwhile: a long line must not look
    // like a vanished client.
    const auto deadline = Clock::now() + timeout;
    zmq::pollitem_t items[] = {{socket_.handle(), 0, ZMQ_POLLIN, 0},
                               {monitor_.handle(), 0, ZMQ_POLLIN, 0}};
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
      items[0].revents = items[1].revents = 0;
      zmq::poll(items, 2, std::max(wait, std::chrono::milliseconds(1)));
      if ((items[0].revents & ZMQ_POLLIN) != 0) break;
      if (auto refused = handshake_refused()) return *refused;
      keep_alive();
    }
    zmq::message_t reply;
    (void)socket_.recv(reply, zmq::recv_flags::none);
    auto response =
        remote::decode_response(std::span(static_cast<const uint8_t*>(reply.data()), reply.size()));
    if (!response) return Error{"bad answer from " + settings_.address + ": " + response.message()};
    return response;
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
  zmq::context_t context_{1};
  zmq::socket_t socket_;
  zmq::socket_t monitor_;                   // PAIR: the DEALER's handshake failures
  std::chrono::milliseconds keepalive_{0};  // 0: the node wants no pings
  Clock::time_point last_sent_{};
};

int run_commands(Connection& connection, const std::vector<std::string>& commands) {
  bool failed = false;
  for (const std::string& line : commands) {
    auto response = connection.exec(line);
    if (!response) {
      std::cerr << response.message() << "\n";
      return 2;
    }
    if (response->type == remote::Response::Type::kRefused) {
      std::cerr << "refused: " << response->text << "\n";
      return 2;
    }
    std::cout << response->text << std::flush;
    if (!response->ok) failed = true;
    if (response->quit) break;
  }
  connection.close();
  return failed ? 1 : 0;
}

int run_interactive(Connection& connection, const AttachSettings& settings) {
  int exit_code = 0;
  bool done = false;
  Console* console_ptr = nullptr;
  Console console(0, settings.history_path, [&](std::optional<std::string> line) {
    if (!line) {
      done = true;
      return;
    }
    auto response = connection.exec(*line);
    if (!response || response->type == remote::Response::Type::kRefused) {
      std::cerr << (response ? "refused: " + response->text : response.message()) << "\n";
      exit_code = 2;
      done = true;
      return;
    }
    Console::write(response->text);
    if (response->quit) done = true;
    console_ptr->set_prompt(response->ask.empty() ? ">>> " : response->ask);
  });
  console_ptr = &console;
  console.start(">>> ");
  while (!done) {
    pollfd fd{console.fd(), POLLIN, 0};
    if (::poll(&fd, 1, connection.ms_until_ping()) < 0 && errno != EINTR) break;
    if (fd.revents != 0) console.on_readable();
    connection.keep_alive();
  }
  console.stop();
  if (console.interactive()) Console::write("\n");
  connection.close();
  return exit_code;
}

}  // namespace

int attach(const AttachSettings& settings) {
  Connection connection(settings);
  std::string banner;
  if (auto status = connection.open(banner); !status) {
    std::cerr << "iridium attach: " << status.message() << "\n";
    return 2;
  }
  if (!settings.commands.empty()) return run_commands(connection, settings.commands);
  if (isatty(0)) Console::write(banner);
  return run_interactive(connection, settings);
}

}  // namespace iridium::shell
