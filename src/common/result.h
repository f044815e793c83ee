// Errors as values: a Result<T> holds either a T or an Error, which carries a
// kind (what callers branch on) and a message (what people read). Modules
// never let exceptions cross their boundaries; they return these.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace iridium {

enum class ErrorKind {
  kGeneric,      // nothing more specific applies
  kInvalid,      // malformed input: a frame, a file, an argument
  kRefused,      // the other side answered no (e.g. a duplicate alias)
  kSelf,         // the address is this node itself
  kUnreachable,  // nothing answered in time
  kUnavailable,  // this side cannot do it now (shut down, not started)
  kIo,           // a socket or file operation failed
  kVersion,      // the other side speaks another protocol version
};

struct Error {
  std::string message;
  ErrorKind kind = ErrorKind::kGeneric;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : state_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(state_); }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<T>(state_); }
  const T& value() const& { return std::get<T>(state_); }
  T&& value() && { return std::get<T>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const { return std::get<Error>(state_); }
  const std::string& message() const { return error().message; }
  ErrorKind kind() const { return error().kind; }

 private:
  std::variant<T, Error> state_;
};

// A Result that carries no value: success or an Error.
using Status = Result<std::monostate>;
inline Status ok_status() {
  return std::monostate{};
}

}  // namespace iridium
