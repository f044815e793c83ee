#include "common/socket_monitor.h"

#include <cstring>

namespace iridium {

Result<zmq::socket_t> open_monitor(zmq::context_t& context, zmq::socket_t& socket,
                                   const std::string& endpoint, int events) {
  try {
    if (zmq_socket_monitor(socket.handle(), endpoint.c_str(), events) != 0) throw zmq::error_t();
    zmq::socket_t monitor(context, zmq::socket_type::pair);
    monitor.set(zmq::sockopt::linger, 0);
    monitor.connect(endpoint);
    return monitor;
  } catch (const zmq::error_t& e) {
    return Error{std::string("cannot monitor a socket: ") + e.what(), ErrorKind::kIo};
  }
}

void close_monitor(zmq::socket_t& socket, zmq::socket_t& monitor) {
  if (socket) zmq_socket_monitor(socket.handle(), nullptr, 0);
  if (monitor) monitor.close();
}

std::optional<MonitorEvent> read_monitor_event(zmq::socket_t& monitor) {
  zmq::message_t head;
  zmq::message_t address;
  try {
    if (!monitor.recv(head, zmq::recv_flags::dontwait)) return std::nullopt;
    if (head.more()) (void)monitor.recv(address, zmq::recv_flags::dontwait);
  } catch (const zmq::error_t&) {
    return std::nullopt;
  }
  MonitorEvent out;
  if (head.size() >= sizeof out.event + sizeof out.value) {
    std::memcpy(&out.event, head.data(), sizeof out.event);
    std::memcpy(&out.value, static_cast<const char*>(head.data()) + sizeof out.event,
                sizeof out.value);
  }
  return out;
}

}  // namespace iridium
