#include "shell/remote_server.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <cstdint>

#include "common/curve_socket.h"
#include "common/envelope.h"
#include "common/socket_monitor.h"
#include "shell/remote_protocol.h"

namespace iridium::shell {
namespace {

bool same_token(const std::string& a, const std::string& b) {
  // Constant time in the length of the expected token.
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  }
  return diff == 0;
}

std::string printable_id(const std::string& peer) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : peer) {
    out += hex[c >> 4];
    out += hex[c & 15];
  }
  return out;
}

}  // namespace

RemoteServer::RemoteServer(zmq::context_t& context, RemoteServerOptions options,
                           ShellFactory factory)
    : context_(context),
      options_(std::move(options)),
      factory_(std::move(factory)),
      sessions_(SessionLimits{options_.max_sessions, options_.session_grace, options_.idle_timeout,
                              16}) {}

RemoteServer::~RemoteServer() {
  stop();
}

std::string RemoteServer::endpoint() const {
  const bool ipv6 = options_.host.find(':') != std::string::npos;
  return "tcp://" + (ipv6 ? "[" + options_.host + "]" : options_.host) + ":" +
         std::to_string(options_.port);
}

Status RemoteServer::start() {
  if (!is_loopback_host(options_.host) && options_.token.empty() && !options_.key) {
    return Error{"refusing to serve the remote shell on " + options_.host +
                 " without a token or a key: the remote shell runs code. Set --remote-key FILE "
                 "(or --cluster-key; make one with 'iridium keygen FILE'), or --remote-token, "
                 "or bind to 127.0.0.1"};
  }
  if (options_.key && zap_ == nullptr) {
    // Before the ROUTER exists: no CURVE handshake without the handler.
    auto zap = ZapAuthenticator::start(context_, {options_.key->public_z85});
    if (!zap) return zap.error();
    zap_ = std::move(*zap);
  }
  try {
    socket_ = zmq::socket_t(context_, zmq::socket_type::router);
    socket_.set(zmq::sockopt::linger, 0);
    socket_.set(zmq::sockopt::maxmsgsize, int64_t{1} << 20);
    if (options_.host.find(':') != std::string::npos) socket_.set(zmq::sockopt::ipv6, 1);
    if (options_.key) make_curve_server(socket_, *options_.key, "iridium-remote-shell");
    auto monitor = open_monitor(context_, socket_,
                                "inproc://iridium-remote-shell-monitor-" +
                                    std::to_string(reinterpret_cast<uintptr_t>(this)),
                                kHandshakeFailureEvents);
    if (!monitor) throw zmq::error_t();
    monitor_ = std::move(*monitor);
    socket_.bind(endpoint());
  } catch (const zmq::error_t& e) {
    close_monitor(socket_, monitor_);
    socket_.close();
    return Error{"cannot listen for remote shells on " + options_.host + ":" +
                 std::to_string(options_.port) + ": " + e.what()};
  }
  // The pipe from the executor's threads back to the socket thread; the
  // name is unique per server, as the context may be shared.
  done_endpoint_ =
      "inproc://iridium-remote-shell-done-" + std::to_string(reinterpret_cast<uintptr_t>(this));
  try {
    done_ = zmq::socket_t(context_, zmq::socket_type::pull);
    done_.set(zmq::sockopt::linger, 0);
    done_.bind(done_endpoint_);
  } catch (const zmq::error_t& e) {
    socket_.close();
    done_.close();
    return Error{"cannot set up the remote shell: " + std::string(e.what())};
  }
  // Running lines never outnumber sessions (orphans included), so one
  // thread per session slot means no line ever waits for another session's.
  executor_ = std::make_unique<LineExecutor>(context_, done_endpoint_, options_.max_sessions);
  running_ = true;
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "remote-shell");  // per-thread CPU tells it apart
    serve();
  });
  spdlog::info("remote shell listening on {}{}", endpoint(),
               options_.key ? " (CURVE, key " + options_.key->fingerprint() + "...)" : "");
  return ok_status();
}

void RemoteServer::stop() {
  if (!running_.exchange(false)) return;
  wake_socket_thread();  // it may wait without a timeout (no sessions)
  if (thread_.joinable()) thread_.join();
  // The socket thread interrupted the lines still running: each ends at its
  // next slice.
  if (executor_) executor_->stop();
}

void RemoteServer::wake_socket_thread() {
  try {
    zmq::socket_t push(context_, zmq::socket_type::push);
    push.set(zmq::sockopt::linger, 1000);
    push.connect(done_endpoint_);
    (void)push.send(zmq::str_buffer("wake"), zmq::send_flags::dontwait);
  } catch (const zmq::error_t&) {
    // The thread still sees running_ (or stamps) at its next wakeup.
  }
}

// How long the socket thread may wait for traffic: 100 ms while sessions
// are open (their sweep); with none, until a request, a finished line, a
// refused handshake or stop(), so an idle node's remote shell does not wake
// 10 times a second. With a health file that no other loop keeps fresh,
// at most a second, so that its stamp stays fresh.
std::chrono::milliseconds RemoteServer::wait_time() {
  if (sessions_.size() != 0) return std::chrono::milliseconds(100);
  if (options_.health == nullptr) return std::chrono::milliseconds(-1);
  const bool kept =
      options_.health->wait(health::Loop::kRemoteShell, [this] { wake_socket_thread(); });
  return kept ? std::chrono::milliseconds(-1) : std::chrono::milliseconds(1000);
}

// The socket thread: requests from clients, finished lines from the
// executor, and a sweep of silent sessions, in that order; then the health
// file's stamp.
void RemoteServer::serve() {
  auto next_sweep = std::chrono::steady_clock::now();
  if (options_.health != nullptr) options_.health->start(health::Loop::kRemoteShell);
  while (running_) {
    zmq::pollitem_t items[] = {{socket_.handle(), 0, ZMQ_POLLIN, 0},
                               {done_.handle(), 0, ZMQ_POLLIN, 0},
                               {monitor_.handle(), 0, ZMQ_POLLIN, 0}};
    try {
      zmq::poll(items, 3, wait_time());
      // Awake: no longer counted live by waiting (a turn that hangs from
      // here on leaves this stamp to age).
      if (options_.health != nullptr) options_.health->beat(health::Loop::kRemoteShell);
      // 1. Requests: up to a batch, so that finished lines are not starved.
      for (int i = 0; i < 256 && (items[0].revents & ZMQ_POLLIN) != 0; ++i) {
        auto envelope = wire::receive_envelope(socket_);
        if (!envelope) {
          spdlog::warn("remote shell: dropped {}", envelope.message());
          continue;
        }
        if (!envelope->has_value()) break;
        handle((*envelope)->routing_id, (*envelope)->body);
      }
      // 2. Finished lines: the pipe only wakes us; the lines (and their
      //    Shells) are handed over under the executor's mutex.
      if ((items[1].revents & ZMQ_POLLIN) != 0) {
        zmq::message_t wake;
        while (done_.recv(wake, zmq::recv_flags::dontwait)) {
        }
      }
      deliver_finished();
      // 3. Clients refused by the handshake or the ZAP handler.
      report_refusals();
      // 4. Silent and idle sessions.
      if (const auto now = std::chrono::steady_clock::now(); now >= next_sweep) {
        expire();
        next_sweep = now + std::chrono::milliseconds(250);
      }
      session_count_.store(sessions_.size(), std::memory_order_relaxed);
    } catch (const zmq::error_t& e) {
      spdlog::error("remote shell: {}", e.what());
    }
    if (options_.health != nullptr) options_.health->beat(health::Loop::kRemoteShell);
  }
  if (options_.health != nullptr) options_.health->stop(health::Loop::kRemoteShell);
  sessions_.interrupt_all();
  close_monitor(socket_, monitor_);
  socket_.close();
  done_.close();
}

void RemoteServer::report_refusals() {
  const auto now = std::chrono::steady_clock::now();
  auto warn = [&](const std::string& line) {
    if (auto held_back = refusals_.admit(line, now)) {
      spdlog::warn("remote shell: {}{}", line,
                   *held_back > 0 ? " (" + std::to_string(*held_back) + " more times)" : "");
    }
  };
  while (auto e = read_monitor_event(monitor_)) {
    // AUTH failures are the ZAP handler's denials, with more detail, below.
    if (!is_handshake_failure(e->event) || e->event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) continue;
    warn(options_.key ? "refused a client that did not complete the CURVE handshake (no key, or "
                        "another key than --remote-key)"
                      : "refused a client that speaks CURVE: this node's remote shell has no key");
  }
  if (zap_ == nullptr) return;
  for (const ZapDenial& d : zap_->take_denials()) {
    warn("refused a client from " + d.address + ": " + d.reason +
         (d.fingerprint.empty() ? "" : " (key " + d.fingerprint + "...)"));
  }
}

void RemoteServer::reply(const std::string& peer, const remote::Response& response) {
  // A vanished client's routing id is unknown to ROUTER: the reply is dropped.
  (void)wire::send_envelope(socket_, peer, remote::encode(response));
}

void RemoteServer::handle(const std::string& peer, const zmq::message_t& payload) {
  using remote::Request;
  using remote::Response;
  auto request = remote::decode_request(
      std::span(static_cast<const uint8_t*>(payload.data()), payload.size()));
  if (!request) {
    spdlog::warn("remote shell: bad frame from client {}: {}", printable_id(peer),
                 request.message());
    reply(peer, Response::refused("bad request: " + request.message()));
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  sessions_.heard(peer, now, request->type == Request::Type::kPing);
  switch (request->type) {
    case Request::Type::kOpen: {
      if (!options_.token.empty() && !same_token(options_.token, request->token)) {
        spdlog::warn("remote shell: refused client {}: {} token", printable_id(peer),
                     request->token.empty() ? "missing" : "wrong");
        reply(peer, Response::refused("access denied: wrong or missing token (set "
                                      "--remote-token or IRIDIUM_REMOTE_TOKEN)"));
        return;
      }
      std::vector<SessionTable::EndedSession> ended;
      SessionTable::Session* session = sessions_.open(peer, now, &ended);
      for (const auto& e : ended) {
        spdlog::info("remote shell: session of client {} ended: {}", printable_id(e.peer),
                     ended_reason(e.why));
      }
      if (session == nullptr) {
        spdlog::warn("remote shell: refused client {}: {} sessions, none silent for {} ms",
                     printable_id(peer), sessions_.size(), options_.session_grace.count());
        reply(peer, Response::refused("too many remote sessions"));
        return;
      }
      session->shell = factory_(session->id, [flag = session->interrupt] { return flag->load(); });
      spdlog::debug("remote shell: client {} attached ({} sessions)", printable_id(peer),
                    sessions_.size());
      reply(peer, Response::opened(Shell::banner(), options_.keepalive_interval.count()));
      return;
    }
    case Request::Type::kPing:
      return;  // no answer; heard() above kept the session alive
    case Request::Type::kInterrupt:
      // No answer: the running line's own result says "interrupted".
      if (sessions_.interrupt(peer)) {
        spdlog::debug("remote shell: client {} interrupted its line", printable_id(peer));
      }
      return;
    case Request::Type::kClose:
      if (sessions_.close(peer)) {
        spdlog::debug("remote shell: client {} detached", printable_id(peer));
      }
      return;
    case Request::Type::kExec: {
      SessionTable::Session* session = sessions_.find(peer);
      if (session == nullptr) {
        reply(peer, Response::refused("no open session: attach again"));
        return;
      }
      if (session->queued.size() >= sessions_.limits().max_queued_lines) {
        reply(peer, Response::refused("too many lines waiting in this session"));
        return;
      }
      session->queued.push_back(std::move(request->line));
      run_next(*session);
      return;
    }
  }
}

// Hands the session's next waiting line, with its Shell, to the executor,
// unless one of its lines is running already.
void RemoteServer::run_next(SessionTable::Session& session) {
  auto line = sessions_.start_next(session);
  if (!line) return;
  executor_->submit(LineJob{session.id, std::move(*line), std::move(session.shell)});
}

void RemoteServer::deliver_finished() {
  const auto now = std::chrono::steady_clock::now();
  for (LineDone& done : executor_->take_done()) {
    const bool quit = done.response.quit;
    SessionTable::Session* session = sessions_.finished(done.session, std::move(done.shell), now);
    if (session == nullptr) continue;  // its client closed or was replaced: nobody to tell
    const std::string peer = session->peer;
    reply(peer, done.response);
    if (quit) {
      sessions_.close(peer);
      spdlog::debug("remote shell: client {} detached", printable_id(peer));
      continue;
    }
    run_next(*session);
  }
}

void RemoteServer::expire() {
  for (const auto& e : sessions_.expire(std::chrono::steady_clock::now())) {
    spdlog::info("remote shell: session of client {} ended: {}", printable_id(e.peer),
                 ended_reason(e.why));
  }
}

}  // namespace iridium::shell
