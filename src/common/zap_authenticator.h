// A ZAP handler (ZeroMQ RFC 27) for one zmq context: it decides which CURVE
// clients a CURVE server socket of that context admits. CURVE by itself only
// makes a client prove that it knows the server's public key; the ZAP check
// is what makes it prove that it holds an accepted key pair (for a cluster:
// the cluster's own pair, so holding the secret is what admits a peer).
//
// Threads: the authenticator runs its own thread (like czmq's zauth actor),
// which alone owns the REP socket bound at inproc://zeromq.zap.01 and a PULL
// socket that tells it to stop. The constructor binds both before it
// returns, so a CURVE server socket created afterwards on the same context
// never handshakes without a handler (libzmq would then admit everyone).
// Only one authenticator can exist per context (one ZAP endpoint).
//
// Every public method is thread-safe: `mutex_` guards allowed_ (the
// keyring: rotation will install and remove keys here), denials_ and
// dropped_denials_.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "common/result.h"

namespace iridium {

// A client the handler turned away: what the owner logs.
struct ZapDenial {
  std::string address;      // the client's IP address, as libzmq reports it
  std::string mechanism;    // "CURVE", "NULL", ...; "" if the request was malformed
  std::string reason;       // why, in words
  std::string fingerprint;  // the first characters of the client's public key (CURVE)
};

// One ZAP reply (status "200" or "400"), and the denial behind a "400".
struct ZapAnswer {
  std::string request_id;
  std::string status_code;
  std::string status_text;
  std::string user_id;  // the client's public key (Z85) when admitted
  std::optional<ZapDenial> denial;
};

// Answers one request given as its frames. Pure: tests call it directly.
// `allowed` holds Z85 public keys. Never throws; malformed input is "400".
ZapAnswer answer_zap_request(const std::vector<std::string>& frames,
                             const std::set<std::string>& allowed);

class ZapAuthenticator {
 public:
  // Binds the ZAP endpoint on `context` and starts the thread.
  static Result<std::unique_ptr<ZapAuthenticator>> start(zmq::context_t& context,
                                                         std::set<std::string> allowed_z85);
  ~ZapAuthenticator();  // stops and joins the thread; call before the context ends
  ZapAuthenticator(const ZapAuthenticator&) = delete;
  ZapAuthenticator& operator=(const ZapAuthenticator&) = delete;

  // The keyring: a public key (Z85) admitted from now on, or no longer.
  void allow(const std::string& public_z85);
  void revoke(const std::string& public_z85);
  std::set<std::string> allowed() const;

  // Denials since the last call, oldest first; at most kMaxQueuedDenials are
  // kept between calls, the rest only counted (`dropped`), so a hostile
  // client in a loop costs memory only up to that bound.
  static constexpr std::size_t kMaxQueuedDenials = 64;
  std::vector<ZapDenial> take_denials(uint64_t* dropped = nullptr);
  uint64_t requests_answered() const { return answered_.load(); }

 private:
  ZapAuthenticator(zmq::context_t& context, std::set<std::string> allowed);
  void run();
  void record(ZapDenial denial);

  zmq::context_t& context_;
  std::string stop_endpoint_;
  zmq::socket_t handler_;  // REP: the thread's
  zmq::socket_t stop_;     // PULL: the thread's
  std::thread thread_;
  std::atomic<uint64_t> answered_{0};

  mutable std::mutex mutex_;
  std::set<std::string> allowed_;
  std::vector<ZapDenial> denials_;
  uint64_t dropped_denials_ = 0;
};

}  // namespace iridium
