// Serves shell sessions to `iridium attach` clients over a ZeroMQ ROUTER.
// One thread owns the socket and runs every session's commands; each client
// (by ZeroMQ routing id) has its own Shell.
#pragma once

#include <zmq.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "common/result.h"
#include "shell/shell.h"

namespace iridium::shell {

struct RemoteServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 2244;
  std::string token;  // required unless host is loopback
  std::chrono::seconds idle_timeout{30 * 60};
  std::size_t max_sessions = 64;
};

bool is_loopback_host(const std::string& host);

class RemoteServer {
 public:
  using ShellFactory = std::function<std::unique_ptr<Shell>(uint64_t session_id)>;

  RemoteServer(zmq::context_t& context, RemoteServerOptions options, ShellFactory factory);
  ~RemoteServer();

  // Binds the socket (errors: bad address, port in use, missing token) and
  // starts the serving thread.
  Status start();
  void stop();
  std::string endpoint() const;

 private:
  struct Session {
    std::unique_ptr<Shell> shell;
    std::chrono::steady_clock::time_point last_active;
  };
  void serve();
  void handle(const std::string& peer, const zmq::message_t& payload);
  void reply(const std::string& peer, const std::string& frame);
  void expire_idle();

  zmq::context_t& context_;
  RemoteServerOptions options_;
  ShellFactory factory_;
  zmq::socket_t socket_;
  std::map<std::string, Session> sessions_;
  uint64_t next_session_ = 1;
  std::atomic<bool> running_{false};
  std::thread thread_;
};

}  // namespace iridium::shell
