#include "common/curve_key.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace iridium {
namespace {

constexpr std::string_view kPublicName = "public-key";
constexpr std::string_view kSecretName = "secret-key";
constexpr std::size_t kMaxFileSize = 4096;

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r");
  return s.substr(first, last - first + 1);
}

bool is_z85_key(std::string_view text) {
  if (text.size() != CurveKey::kZ85Length) return false;
  std::array<uint8_t, 32> bytes{};
  const std::string copy(text);
  return zmq_z85_decode(bytes.data(), copy.c_str()) != nullptr;
}

Error invalid(std::string message) {
  return Error{std::move(message), ErrorKind::kInvalid};
}

}  // namespace

bool curve_supported() {
  return zmq_has("curve") != 0;
}

Result<CurveKey> generate_curve_key() {
  std::array<char, 41> public_key{};
  std::array<char, 41> secret_key{};
  if (zmq_curve_keypair(public_key.data(), secret_key.data()) != 0) {
    return Error{std::string("cannot make a CURVE key: ") + zmq_strerror(zmq_errno()),
                 ErrorKind::kUnavailable};
  }
  return CurveKey{public_key.data(), secret_key.data()};
}

std::string format_curve_key(const CurveKey& key) {
  std::ostringstream out;
  out << "# Iridium cluster key (CURVE). Whoever holds this file can join the\n"
         "# cluster and read its traffic: keep it secret, never put it in an image.\n"
      << kPublicName << " = \"" << key.public_z85 << "\"\n"
      << kSecretName << " = \"" << key.secret_z85 << "\"\n";
  return out.str();
}

Result<CurveKey> parse_curve_key(std::string_view text) {
  CurveKey key;
  int line_number = 0;
  while (!text.empty()) {
    const auto end = text.find('\n');
    std::string_view line = trim(text.substr(0, end));
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    ++line_number;
    if (line.empty() || line.front() == '#') continue;
    const auto equals = line.find('=');
    if (equals == std::string_view::npos) {
      return invalid("line " + std::to_string(line_number) + ": expected name = \"value\"");
    }
    const std::string_view name = trim(line.substr(0, equals));
    std::string_view value = trim(line.substr(equals + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    std::string* slot = name == kPublicName   ? &key.public_z85
                        : name == kSecretName ? &key.secret_z85
                                              : nullptr;
    if (slot == nullptr) {
      return invalid("line " + std::to_string(line_number) + ": unknown name '" +
                     std::string(name) + "'");
    }
    if (!is_z85_key(value)) {
      return invalid("line " + std::to_string(line_number) + ": " + std::string(name) +
                     " is not a 40-character Z85 key");
    }
    *slot = value;
  }
  if (key.secret_z85.empty()) return invalid("no secret-key");
  std::array<char, 41> derived{};
  if (zmq_curve_public(derived.data(), key.secret_z85.c_str()) != 0) {
    return invalid("the secret-key is not a CURVE key");
  }
  if (key.public_z85.empty()) key.public_z85 = derived.data();
  if (key.public_z85 != derived.data()) {
    return invalid("public-key does not belong to secret-key");
  }
  return key;
}

Status write_curve_key_file(const std::string& path, const CurveKey& key) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int err = errno;
    return Error{path + ": " + std::strerror(err),
                 err == EEXIST ? ErrorKind::kRefused : ErrorKind::kIo};
  }
  const std::string text = format_curve_key(key);
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  const bool closed = ::close(fd) == 0;
  if (!written || !closed) {
    ::unlink(path.c_str());
    return Error{path + ": cannot write the key", ErrorKind::kIo};
  }
  return ok_status();
}

Result<CurveKey> read_curve_key_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{path + ": " + std::strerror(errno), ErrorKind::kIo};
  std::string text(kMaxFileSize + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > kMaxFileSize) return invalid(path + ": too large for a key file");
  auto key = parse_curve_key(text);
  if (!key) return invalid(path + ": " + key.message());
  return key;
}

bool key_file_readable_by_others(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return false;
  return (st.st_mode & (S_IRGRP | S_IROTH)) != 0;
}

}  // namespace iridium
