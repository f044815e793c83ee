// Serves shell sessions to `iridium attach` clients over a ZeroMQ ROUTER.
// Each client (by ZeroMQ routing id) has its own Shell.
//
// Threads and ownership:
//   - The socket thread (serve()) owns the ROUTER, the inproc PULL end of the
//     executor's pipe, and the session table. It reads requests, answers
//     open/close/ping itself, hands each exec line to the LineExecutor and
//     sends the answer when the line comes back over the pipe. It never runs
//     a line, so a long line of one session holds up no other session.
//   - Executor threads (remote_executor.h) run lines. A session runs at most
//     one line at a time; lines that arrive meanwhile wait in its queue, in
//     order. Its Shell moves to the executor thread with the line and back
//     with the answer, so exactly one thread uses a Shell at any moment.
//   - Interrupts: the socket thread sets a session's atomic interrupt flag
//     when its client sends `interrupt` (while a line runs) and clears it
//     when the next line starts; the session's Shell reads it between slices
//     on the executor thread, through Environment::interrupt_requested
//     (remote_sessions.h). When the server stops, every running line is
//     interrupted the same way, so stop() waits one slice, not a step limit.
//   - With a key, a ZAP handler (common/zap_authenticator.h) runs its own
//     thread on the server's context; the socket thread logs its denials
//     and the ROUTER monitor's handshake failures.
//   - With options.health, the socket thread stamps the health file every
//     turn. With no session it waits without a timeout while another loop
//     keeps the file fresh (HealthFile::wait), else at most a second, so
//     an idle server is always stamped.
//   - start()/stop()/endpoint() are called by the thread that owns the
//     RemoteServer (the node's main thread); stop() joins the socket thread,
//     then the executor's threads.
//
// Session lifetime: see remote_sessions.h. In short, `attach` pings every
// keepalive interval, and a session silent for `session_grace` ends (a
// session whose line is running never ends before the line does).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <zmq.hpp>

#include "common/curve_key.h"
#include "common/health_file.h"
#include "common/host.h"
#include "common/repeat_limiter.h"
#include "common/result.h"
#include "common/zap_authenticator.h"
#include "shell/remote_executor.h"
#include "shell/remote_sessions.h"
#include "shell/shell.h"

namespace iridium::shell {

struct RemoteServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 2244;
  std::string token;  // required unless host is loopback or a key is set
  // CURVE with this key pair: clients must hold it (attach --key). The
  // token is then checked too if set, but no longer required off loopback.
  std::optional<CurveKey> key;
  // Sessions of clients that ping end after this long without a frame;
  // sessions of older clients (no pings) are reclaimed after it when the
  // node is full.
  std::chrono::milliseconds session_grace{10'000};
  // How often clients are asked to ping (sent in `opened`).
  std::chrono::milliseconds keepalive_interval{2'000};
  std::chrono::milliseconds idle_timeout{30 * 60 * 1000};
  std::size_t max_sessions = 64;
  // Where the socket thread stamps its liveness (common/health_file.h);
  // none if null. Must outlive the server.
  health::HealthFile* health = nullptr;
};

using iridium::is_loopback_host;

class RemoteServer {
 public:
  // interrupt_requested is for the Shell's Environment: true once the
  // session's client asked to stop the running line. It may be called from
  // any thread.
  using ShellFactory = std::function<std::unique_ptr<Shell>(
      uint64_t session_id, std::function<bool()> interrupt_requested)>;

  RemoteServer(zmq::context_t& context, RemoteServerOptions options, ShellFactory factory);
  ~RemoteServer();

  // Binds the socket (errors: bad address, port in use, missing token) and
  // starts the serving thread.
  Status start();
  void stop();
  std::string endpoint() const;
  // Open sessions (orphans whose line still runs included), from any thread.
  std::size_t session_count() const { return session_count_.load(std::memory_order_relaxed); }

 private:
  // All of these run on the socket thread.
  void serve();
  std::chrono::milliseconds wait_time();
  void wake_socket_thread();  // any thread
  void handle(const std::string& peer, const zmq::message_t& payload);
  void run_next(SessionTable::Session& session);
  void deliver_finished();
  void expire();
  void reply(const std::string& peer, const remote::Response& response);
  void report_refusals();

  zmq::context_t& context_;
  RemoteServerOptions options_;
  ShellFactory factory_;  // called on the socket thread
  std::string done_endpoint_;
  zmq::socket_t socket_;   // ROUTER: socket thread (bound in start())
  zmq::socket_t done_;     // PULL, the executor's pipe: socket thread (bound in start())
  zmq::socket_t monitor_;  // PAIR, the ROUTER's handshake failures: socket thread
  std::unique_ptr<ZapAuthenticator> zap_;            // with a key; outlives socket_
  RepeatLimiter refusals_{std::chrono::minutes(1)};  // socket thread
  SessionTable sessions_;                            // socket thread
  std::unique_ptr<LineExecutor> executor_;
  std::atomic<bool> running_{false};
  std::atomic<std::size_t> session_count_{0};  // sessions_.size(), published by the socket thread
  std::thread thread_;
};

}  // namespace iridium::shell
