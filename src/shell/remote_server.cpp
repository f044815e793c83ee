#include "shell/remote_server.h"

#include <spdlog/spdlog.h>


#include "common/envelope.h"
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

bool is_loopback_host(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

RemoteServer::RemoteServer(zmq::context_t& context, RemoteServerOptions options, ShellFactory factory)
    : context_(context), options_(std::move(options)), factory_(std::move(factory)) {}

RemoteServer::~RemoteServer() { stop(); }

std::string RemoteServer::endpoint() const {
  const bool ipv6 = options_.host.find(':') != std::string::npos;
  return "tcp://" + (ipv6 ? "[" + options_.host + "]" : options_.host) + ":" + std::to_string(options_.port);
}

Status RemoteServer::start() {
  if (!is_loopback_host(options_.host) && options_.token.empty()) {
    return Error{"refusing to serve the remote shell on " + options_.host +
                 " without a token: the remote shell runs code. Set --remote-token or "
                 "IRIDIUM_REMOTE_TOKEN, or bind to 127.0.0.1"};
  }
  try {
    socket_ = zmq::socket_t(context_, zmq::socket_type::router);
    socket_.set(zmq::sockopt::linger, 0);
    socket_.set(zmq::sockopt::maxmsgsize, int64_t{1} << 20);
    if (options_.host.find(':') != std::string::npos) socket_.set(zmq::sockopt::ipv6, 1);
    socket_.bind(endpoint());
  } catch (const zmq::error_t& e) {
    socket_.close();
    return Error{"cannot listen for remote shells on " + options_.host + ":" +
                 std::to_string(options_.port) + ": " + e.what()};
  }
  running_ = true;
  thread_ = std::thread([this] { serve(); });
  spdlog::info("remote shell listening on {}", endpoint());
  return ok_status();
}

void RemoteServer::stop() {
  if (!running_.exchange(false)) return;
  if (thread_.joinable()) thread_.join();
}

void RemoteServer::serve() {
  while (running_) {
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    try {
      zmq::poll(&item, 1, std::chrono::milliseconds(100));
      if ((item.revents & ZMQ_POLLIN) == 0) {
        expire_idle();
        continue;
      }
      auto envelope = wire::receive_envelope(socket_);
      if (!envelope) {
        spdlog::warn("remote shell: dropped {}", envelope.message());
        continue;
      }
      if (!envelope->has_value()) continue;
      handle((*envelope)->routing_id, (*envelope)->body);
    } catch (const zmq::error_t& e) {
      spdlog::error("remote shell: {}", e.what());
    }
  }
  socket_.close();
  sessions_.clear();
}

void RemoteServer::reply(const std::string& peer, const std::string& frame) {
  // A vanished client's routing id is unknown to ROUTER: the reply is dropped.
  (void)wire::send_envelope(socket_, peer, frame);
}

void RemoteServer::handle(const std::string& peer, const zmq::message_t& payload) {
  using remote::Request;
  using remote::Response;
  auto request = remote::decode_request(
      std::span(static_cast<const uint8_t*>(payload.data()), payload.size()));
  if (!request) {
    spdlog::warn("remote shell: bad frame from client {}: {}", printable_id(peer), request.message());
    reply(peer, remote::encode(Response::refused("bad request: " + request.message())));
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  switch (request->type) {
    case Request::Type::kOpen: {
      if (!options_.token.empty() && !same_token(options_.token, request->token)) {
        spdlog::warn("remote shell: refused client {}: {} token", printable_id(peer),
                     request->token.empty() ? "missing" : "wrong");
        reply(peer, remote::encode(Response::refused("access denied: wrong or missing token (set "
                                            "--remote-token or IRIDIUM_REMOTE_TOKEN)")));
        return;
      }
      if (sessions_.size() >= options_.max_sessions && !sessions_.contains(peer)) {
        reply(peer, remote::encode(Response::refused("too many remote sessions")));
        return;
      }
      sessions_[peer] = Session{factory_(next_session_++), now};
      spdlog::debug("remote shell: client {} attached ({} sessions)", printable_id(peer), sessions_.size());
      reply(peer, remote::encode(Response::opened(Shell::banner())));
      return;
    }
    case Request::Type::kClose:
      if (sessions_.erase(peer) != 0) spdlog::debug("remote shell: client {} detached", printable_id(peer));
      return;
    case Request::Type::kExec: {
      auto it = sessions_.find(peer);
      if (it == sessions_.end()) {
        reply(peer, remote::encode(Response::refused("no open session: attach again")));
        return;
      }
      Session& session = it->second;
      session.last_active = now;
      // Notices of jobs that finished before this line come first, those
      // that finished while it ran (e.g. the job it spawned) after its output.
      std::string text = session.shell->job_notices();
      Reply result = session.shell->execute(request->line);
      text += result.output + session.shell->job_notices();
      Response response{Response::Type::kResult, std::move(text), result.ok, result.quit, result.ask};
      reply(peer, remote::encode(response));
      if (result.quit) sessions_.erase(peer);
      return;
    }
  }
}

void RemoteServer::expire_idle() {
  const auto now = std::chrono::steady_clock::now();
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (now - it->second.last_active > options_.idle_timeout) {
      spdlog::info("remote shell: closing idle session of client {}", printable_id(it->first));
      it = sessions_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace iridium::shell
