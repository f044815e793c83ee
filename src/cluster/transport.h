// The cluster's ZeroMQ sockets: one ROUTER (the listener every peer's DEALER
// talks to) and one DEALER per listener we talk to, each with a socket
// monitor whose events become LinkEvents. It moves bytes and reports
// connections; what the bytes mean is the membership's business.
//
// Routing ids are left to libzmq (unique per connection, never an alias), so
// a second connection can never take over another one's replies: there is no
// ROUTER_HANDOVER, and no frame's sender is trusted for routing.
//
// With a cluster key every socket speaks CURVE: the ROUTER is a CURVE server
// holding the primary key's secret half, each DEALER a CURVE client whose
// own pair is the primary and which expects the listener to hold one of the
// installed keys (keyring.h). The DEALER thus checks the listener; the
// listener's ZAP handler (common/zap_authenticator.h, started by the node
// before listen()) checks the DEALER. A handshake that fails is reported as
// data, never as a link event: a peer with no key or another key is not a
// member that crashed.
//
// Rotation (set_keys): libzmq copies a listener's secret key when it binds,
// and zmq_unbind in libzmq 4.3.4 leaves the connections it accepted open but
// dead while a redial in the gap before the next bind is refused (what a
// crash looks like; tests/cluster/test_transport_security.cpp shows both).
// So the transport keeps its own duplicate of the listening TCP socket and
// replaces the whole ROUTER: the old one stops accepting (unbind, then its
// listener's CLOSED event), the new one is bound to another duplicate
// (ZMQ_USE_FD), then the old one closes. The port never stops listening
// (connections wait in the kernel's backlog meanwhile), so no redial is
// refused; the old ROUTER's connections close, their peers redial at once
// and meet the new key. A DEALER whose handshake fails while
// several keys are installed is replaced by one that expects the next key:
// twice round the ring at once, then at most once per second.
//
// Waiting (poll) costs the same at any number of peers: every socket's
// ZMQ_FD is registered once in an epoll set, and a wait returns only the
// sockets that have something, so an idle node's wakeup does not walk 2N
// sockets (zmq_poll asks every one for ZMQ_EVENTS, twice per call). ZMQ_FD
// is edge-like: it signals new commands for the socket, not "a message is
// waiting"; a send on the socket may consume that signal, and a new pipe
// signals nothing until it was once found empty. So new sockets, every
// socket we sent on, and every one whose queue we did not empty are read
// again on the next poll without waiting (read_rechecks).
//
// Not thread-safe: the node's I/O thread creates, uses and closes it.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "cluster/link_watch.h"
#include "cluster/membership.h"
#include "common/curve_key.h"
#include "common/result.h"

namespace iridium::cluster {

struct Inbound {
  Source source;
  zmq::message_t body;
};

struct LinkChange {
  Endpoint endpoint;
  LinkEvent event;
};

// A connection whose security handshake failed (CURVE against plain, or
// another key), seen by the monitor of our listener or of one of our DEALERs.
struct HandshakeFailure {
  bool on_listener = false;  // else on our DEALER to `peer`
  Endpoint peer;             // our DEALER's listener; the bound address on the listener
  uint16_t event = 0;        // ZMQ_EVENT_HANDSHAKE_FAILED_*
  int32_t value = 0;         // its errno, ZMQ_PROTOCOL_ERROR_* or ZAP status code
  // A key change explains it: our DEALER is trying the listener's other
  // installed keys, or our listener changed keys moments ago. Worth a debug
  // line, not a warning.
  bool expected = false;
};
// What a failure most likely means, in words, for the log.
std::string describe_handshake_failure(const HandshakeFailure& failure, bool secure);
// A plain listener's connection that closed before its handshake ended: a
// node with a cluster key that saw our greeting first (otherwise we see its
// mechanism mismatch), a port check, or a node that gave up dialling. The
// listener cannot tell which, and its description says so.
bool is_hang_up(const HandshakeFailure& failure, bool secure);

class Transport {
 public:
  // `key`: the cluster key (every socket CURVE), or none (plain ZMTP).
  Transport(zmq::context_t& context, std::optional<CurveKey> key);
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Secure mode: `primary` becomes this node's key (the listener's, and our
  // DEALERs' own pair), and `installed` (primary first) the keys a listener
  // may hold. A new primary, or a key dropped from `installed`, replaces the
  // listener (every incoming connection closes, and is redialled by its
  // peer against the new keys) and the DEALERs concerned. On an error
  // (kIo: no new listener) nothing changed. kUnavailable in plain mode.
  Status set_keys(const CurveKey& primary, std::vector<std::string> installed);

  // Binds the ROUTER; with `fallback`, a busy port is replaced by a free one.
  // Returns the bound port.
  Result<uint16_t> listen(const std::string& host, uint16_t port, bool fallback);

  // Best effort, never blocks: a frame that cannot go now (no connection
  // yet, or a full queue) is dropped and false returned; the protocol resends.
  bool send(const Endpoint& to, std::string_view frame);
  bool reply(const std::string& routing_id, std::string_view frame);
  void release(const Endpoint& to);

  // Waits up to `timeout` for any socket (and `extra`, e.g. a wake socket)
  // to be readable, then collects every waiting frame and link change.
  // Returns true when `extra` is readable.
  bool poll(Millis timeout, zmq::socket_t* extra, std::vector<Inbound>& frames,
            std::vector<LinkChange>& links, std::vector<Error>& errors);

  // The earliest time poll() has work of its own to do: a DEALER due to be
  // replaced, or frames a replaced listener left behind (now). The node
  // sleeps no longer than that.
  TimePoint next_due() const;

  // Lets queued frames (leave) go out for up to `linger` when sockets close.
  void set_linger(Millis linger);
  std::size_t dealer_count() const { return dealers_.size(); }
  // How many sockets the last poll() read (for tests of the waiting).
  std::size_t last_poll_reads() const { return last_poll_reads_; }
  // Handshake failures seen since the last call.
  std::vector<HandshakeFailure> take_handshake_failures() { return std::exchange(failures_, {}); }

 private:
  struct Dealer;
  // What one entry of the epoll set stands for.
  enum class Role { kRouter, kRouterMonitor, kExtra, kDealer, kDealerMonitor };
  struct Watch {
    Role role;
    Dealer* dealer = nullptr;  // kDealer, kDealerMonitor
  };
  struct Dealer {
    Endpoint to;
    zmq::socket_t socket;
    zmq::socket_t monitor;
    LinkWatch watch;
    std::string server_key;  // the listener's public key it expects (secure mode)
    // libzmq stops redialling after the listener's ZAP handler said no; and
    // a DEALER that expects another key than the listener's never gets in.
    // Either is replaced (then, expecting `replace_key`) from this time on.
    std::optional<TimePoint> replace_at;
    std::string replace_key;
    Watch on_socket{Role::kDealer};
    Watch on_monitor{Role::kDealerMonitor};
  };
  // Per listener: the key that last worked there, and the handshakes that
  // failed in a row since (trying each installed key in turn).
  struct PeerKey {
    std::string server_key;
    std::size_t failures = 0;
  };
  Dealer* dealer_for(const Endpoint& to);
  std::unique_ptr<Dealer> open_dealer(const Endpoint& to, const std::string& server_key);
  void replace_dealer(const Endpoint& to, const std::string& server_key);
  void replace_due_dealers(TimePoint now);
  void on_dealer_handshake_failure(const Endpoint& to, Dealer& d, uint16_t event, TimePoint now,
                                   bool& expected);
  std::string first_server_key(const Endpoint& to) const;
  Status replace_listener();
  void await_listener_closed();
  Result<zmq::socket_t> open_router_monitor(zmq::socket_t& router);
  void close_dealer(Dealer& d);
  void watch(zmq::socket_t& socket, Watch& what);
  void unwatch(zmq::socket_t& socket);
  void read_socket(const Watch& what, std::vector<Inbound>& frames, std::vector<LinkChange>& links,
                   std::vector<Error>& errors);
  void read_rechecks(std::vector<Inbound>& frames, std::vector<LinkChange>& links,
                     std::vector<Error>& errors);
  // Each drain returns true when it stopped at its budget with more waiting.
  bool drain_router(std::vector<Inbound>& frames, std::vector<Error>& errors);
  bool drain_dealer(const Endpoint& from, Dealer& d, std::vector<Inbound>& frames,
                    std::vector<Error>& errors);
  void drain_monitor(const Endpoint& from, Dealer& d, std::vector<LinkChange>& links);
  void drain_router_monitor();
  void secure_listener(zmq::socket_t& s);

  zmq::context_t& context_;
  std::optional<CurveKey> key_;    // the primary
  std::vector<std::string> keys_;  // installed public keys, primary first
  zmq::socket_t router_;
  zmq::socket_t router_monitor_;  // handshake failures on the listener
  Endpoint bound_;
  std::string bound_uri_;  // tcp://... as bound
  int listen_fd_ = -1;     // secure mode: our duplicate of the listening socket
  std::optional<TimePoint> listener_replaced_at_;
  std::vector<Inbound> carried_;  // read from a replaced listener, for the next poll
  std::vector<HandshakeFailure> failures_;
  std::map<Endpoint, std::unique_ptr<Dealer>> dealers_;
  std::map<Endpoint, PeerKey> peer_keys_;
  uint64_t monitor_serial_ = 0;
  int linger_ms_ = 0;
  int epoll_fd_ = -1;
  zmq::socket_t* extra_ = nullptr;  // the caller's extra socket, once watched
  Watch router_watch_{Role::kRouter};
  Watch router_monitor_watch_{Role::kRouterMonitor};
  Watch extra_watch_{Role::kExtra};
  // Sockets to read on the next poll() without waiting for their ZMQ_FD.
  bool recheck_router_ = false;
  std::set<Endpoint> recheck_dealers_;
  // The dealers with a replace_at: the loop's every turn looks at these only.
  std::set<Endpoint> replacing_;
  std::size_t last_poll_reads_ = 0;
};

}  // namespace iridium::cluster
