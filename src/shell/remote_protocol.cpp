#include "shell/remote_protocol.h"

#include <algorithm>

#include "common/wire.h"

namespace iridium::shell::remote {

std::string encode(const Request& request) {
  wire::Writer w;
  switch (request.type) {
    case Request::Type::kOpen:
      w.begin(3).field("v", kProtocolVersion).field("type", "open").field("token", request.token);
      break;
    case Request::Type::kExec:
      w.begin(3).field("v", kProtocolVersion).field("type", "exec").field("line", request.line);
      break;
    case Request::Type::kPing:
      w.begin(2).field("v", kProtocolVersion).field("type", "ping");
      break;
    case Request::Type::kClose:
      w.begin(2).field("v", kProtocolVersion).field("type", "close");
      break;
    case Request::Type::kInterrupt:
      w.begin(2).field("v", kProtocolVersion).field("type", "interrupt");
      break;
  }
  return std::string(w.bytes());
}

std::string encode(const Response& response) {
  wire::Writer w;
  switch (response.type) {
    case Response::Type::kOpened:
      w.begin(4)
          .field("v", kProtocolVersion)
          .field("type", "opened")
          .field("banner", response.text)
          .field("keepalive_ms", response.keepalive_ms);
      break;
    case Response::Type::kRefused:
      w.begin(3)
          .field("v", kProtocolVersion)
          .field("type", "refused")
          .field("error", response.text);
      break;
    case Response::Type::kResult:
      w.begin(6)
          .field("v", kProtocolVersion)
          .field("type", "result")
          .field("ok", response.ok)
          .field("output", response.text)
          .field("quit", response.quit)
          .field("ask", response.ask);
      break;
  }
  return std::string(w.bytes());
}

namespace {
Result<wire::Frame> decode_frame(std::span<const uint8_t> bytes, std::string& type) {
  auto frame = wire::Frame::decode(bytes);
  if (!frame) return frame;
  auto version = frame->integer("v");
  if (!version) return Error{"frame has no protocol version \"v\""};
  if (*version != kProtocolVersion) {
    return Error{"unsupported protocol version " + std::to_string(*version) +
                 " (this node speaks " + std::to_string(kProtocolVersion) + ")"};
  }
  auto t = frame->str("type");
  if (!t) return Error{"frame has no \"type\""};
  type = *t;
  return frame;
}
}  // namespace

Result<Request> decode_request(std::span<const uint8_t> bytes) {
  std::string type;
  auto frame = decode_frame(bytes, type);
  if (!frame) return frame.error();
  Request request;
  if (type == "open") {
    request.type = Request::Type::kOpen;
    request.token = frame->str("token").value_or("");
  } else if (type == "exec") {
    auto line = frame->str("line");
    if (!line) return Error{"exec frame without a string \"line\""};
    request.type = Request::Type::kExec;
    request.line = std::move(*line);
  } else if (type == "ping") {
    request.type = Request::Type::kPing;
  } else if (type == "close") {
    request.type = Request::Type::kClose;
  } else if (type == "interrupt") {
    request.type = Request::Type::kInterrupt;
  } else {
    return Error{"unknown request type '" + type + "'"};
  }
  return request;
}

Result<Response> decode_response(std::span<const uint8_t> bytes) {
  std::string type;
  auto frame = decode_frame(bytes, type);
  if (!frame) return frame.error();
  Response response;
  if (type == "opened") {
    response.type = Response::Type::kOpened;
    response.text = frame->str("banner").value_or("");
    response.keepalive_ms = std::max<int64_t>(0, frame->integer("keepalive_ms").value_or(0));
  } else if (type == "refused") {
    response.type = Response::Type::kRefused;
    response.ok = false;
    response.text = frame->str("error").value_or("refused");
  } else if (type == "result") {
    auto ok = frame->boolean("ok");
    auto output = frame->str("output");
    if (!ok || !output) return Error{"result frame without \"ok\" and \"output\""};
    response.ok = *ok;
    response.text = std::move(*output);
    response.quit = frame->boolean("quit").value_or(false);
    response.ask = frame->str("ask").value_or("");
  } else {
    return Error{"unknown response type '" + type + "'"};
  }
  return response;
}

bool refuses_interrupt(const Response& response) {
  return response.type == Response::Type::kRefused &&
         response.text == "bad request: unknown request type 'interrupt'";
}

}  // namespace iridium::shell::remote
