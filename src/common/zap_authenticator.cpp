#include "common/zap_authenticator.h"

#include <zmq.h>

#include <array>
#include <zmq_addon.hpp>

namespace iridium {
namespace {

constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
constexpr std::size_t kCurveKeyBytes = 32;

// Frames of a ZAP request (RFC 27), in order; credentials follow.
enum ZapFrame : std::size_t {
  kVersion,
  kRequestId,
  kDomain,
  kAddress,
  kIdentity,
  kMechanism,
  kFirstCredential
};

std::string z85_of(const std::string& key) {
  std::array<char, 41> text{};
  if (zmq_z85_encode(text.data(), reinterpret_cast<const uint8_t*>(key.data()), key.size()) ==
      nullptr)
    return {};
  return text.data();
}

ZapAnswer deny(ZapAnswer answer, std::string reason, std::string address, std::string mechanism,
               std::string fingerprint = {}) {
  answer.status_code = "400";
  answer.status_text = reason;
  answer.denial = ZapDenial{std::move(address), std::move(mechanism), std::move(reason),
                            std::move(fingerprint)};
  return answer;
}

}  // namespace

ZapAnswer answer_zap_request(const std::vector<std::string>& frames,
                             const std::set<std::string>& allowed) {
  ZapAnswer answer;
  if (frames.size() > kRequestId) answer.request_id = frames[kRequestId];
  if (frames.size() < kFirstCredential || frames[kVersion] != "1.0") {
    return deny(std::move(answer), "malformed ZAP request", {}, {});
  }
  const std::string& address = frames[kAddress];
  const std::string& mechanism = frames[kMechanism];
  if (mechanism != "CURVE") {
    return deny(std::move(answer), "mechanism " + mechanism.substr(0, 16) + " is not CURVE",
                address, mechanism);
  }
  if (frames.size() != kFirstCredential + 1 || frames[kFirstCredential].size() != kCurveKeyBytes) {
    return deny(std::move(answer), "malformed CURVE credentials", address, mechanism);
  }
  const std::string client_key = z85_of(frames[kFirstCredential]);
  if (!allowed.contains(client_key)) {
    return deny(std::move(answer), "the client's key is not an accepted key", address, mechanism,
                client_key.substr(0, 8));
  }
  answer.status_code = "200";
  answer.status_text = "OK";
  answer.user_id = client_key;
  return answer;
}

Result<std::unique_ptr<ZapAuthenticator>> ZapAuthenticator::start(
    zmq::context_t& context, std::set<std::string> allowed_z85) {
  std::unique_ptr<ZapAuthenticator> self(new ZapAuthenticator(context, std::move(allowed_z85)));
  try {
    self->handler_ = zmq::socket_t(context, zmq::socket_type::rep);
    self->handler_.set(zmq::sockopt::linger, 0);
    self->handler_.bind(kZapEndpoint);
    self->stop_endpoint_ =
        "inproc://iridium-zap-stop-" + std::to_string(reinterpret_cast<uintptr_t>(self.get()));
    self->stop_ = zmq::socket_t(context, zmq::socket_type::pull);
    self->stop_.set(zmq::sockopt::linger, 0);
    self->stop_.bind(self->stop_endpoint_);
  } catch (const zmq::error_t& e) {
    return Error{std::string("cannot start the ZAP handler: ") + e.what(), ErrorKind::kIo};
  }
  // The sockets move to the thread here; thread creation orders the memory.
  self->thread_ = std::thread([raw = self.get()] { raw->run(); });
  return self;
}

ZapAuthenticator::ZapAuthenticator(zmq::context_t& context, std::set<std::string> allowed)
    : context_(context), allowed_(std::move(allowed)) {}

ZapAuthenticator::~ZapAuthenticator() {
  if (!thread_.joinable()) return;
  try {
    zmq::socket_t push(context_, zmq::socket_type::push);
    push.set(zmq::sockopt::linger, 1000);
    push.connect(stop_endpoint_);
    (void)push.send(zmq::str_buffer("stop"), zmq::send_flags::none);
  } catch (const zmq::error_t&) {
    // The context is ending: the thread's poll fails and it returns.
  }
  thread_.join();
}

void ZapAuthenticator::allow(const std::string& public_z85) {
  std::lock_guard lock(mutex_);
  allowed_.insert(public_z85);
}

void ZapAuthenticator::revoke(const std::string& public_z85) {
  std::lock_guard lock(mutex_);
  allowed_.erase(public_z85);
}

std::set<std::string> ZapAuthenticator::allowed() const {
  std::lock_guard lock(mutex_);
  return allowed_;
}

std::vector<ZapDenial> ZapAuthenticator::take_denials(uint64_t* dropped) {
  std::lock_guard lock(mutex_);
  if (dropped != nullptr) *dropped = dropped_denials_;
  dropped_denials_ = 0;
  return std::exchange(denials_, {});
}

void ZapAuthenticator::record(ZapDenial denial) {
  std::lock_guard lock(mutex_);
  if (denials_.size() >= kMaxQueuedDenials) {
    ++dropped_denials_;
    return;
  }
  denials_.push_back(std::move(denial));
}

// The thread: answer requests until told to stop (or the context ends).
void ZapAuthenticator::run() {
  zmq::pollitem_t items[] = {{handler_.handle(), 0, ZMQ_POLLIN, 0},
                             {stop_.handle(), 0, ZMQ_POLLIN, 0}};
  for (;;) {
    try {
      zmq::poll(items, 2, std::chrono::milliseconds(-1));
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      break;
    }
    if ((items[1].revents & ZMQ_POLLIN) != 0) break;
    if ((items[0].revents & ZMQ_POLLIN) == 0) continue;
    std::vector<zmq::message_t> parts;
    try {
      if (!zmq::recv_multipart(handler_, std::back_inserter(parts), zmq::recv_flags::dontwait))
        continue;
    } catch (const zmq::error_t&) {
      break;
    }
    std::vector<std::string> frames;
    frames.reserve(parts.size());
    for (const auto& part : parts) frames.push_back(part.to_string());
    ZapAnswer answer = answer_zap_request(frames, allowed());
    if (answer.denial) record(std::move(*answer.denial));
    std::array<zmq::const_buffer, 6> reply = {
        zmq::str_buffer("1.0"),          zmq::buffer(answer.request_id),
        zmq::buffer(answer.status_code), zmq::buffer(answer.status_text),
        zmq::buffer(answer.user_id),     zmq::const_buffer()};
    ++answered_;  // before the reply: whoever gets it sees the count
    try {
      (void)zmq::send_multipart(handler_, reply);
    } catch (const zmq::error_t&) {
      break;
    }
  }
  handler_.close();
  stop_.close();
}

}  // namespace iridium
