// MessagePack frames as flat maps with string keys: {"v": 1, "type": ..., ...}.
// Both the remote shell and the cluster protocol speak this shape, so a
// client in another language needs only a MessagePack library.
#pragma once

#include <cstdint>
#include <map>
#include <msgpack.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/result.h"

namespace iridium::wire {

// A decoded frame. Decoding never throws: malformed bytes, trailing bytes,
// non-map frames, non-string keys and oversized containers are errors.
class Frame {
 public:
  static Result<Frame> decode(std::span<const uint8_t> bytes);

  const msgpack::object* get(std::string_view key) const;
  std::optional<std::string> str(std::string_view key) const;
  std::optional<int64_t> integer(std::string_view key) const;
  std::optional<bool> boolean(std::string_view key) const;

 private:
  std::shared_ptr<msgpack::object_handle> handle_;
  std::map<std::string, const msgpack::object*, std::less<>> fields_;
};

// Builds one frame: call begin(n) with the number of fields, then n fields.
class Writer {
 public:
  Writer& begin(uint32_t fields) {
    packer_.pack_map(fields);
    return *this;
  }
  template <typename T>
  Writer& field(std::string_view key, const T& value) {
    packer_.pack(key);
    packer_.pack(value);
    return *this;
  }
  msgpack::packer<msgpack::sbuffer>& packer() { return packer_; }
  std::string_view bytes() const { return {buffer_.data(), buffer_.size()}; }

 private:
  msgpack::sbuffer buffer_;
  msgpack::packer<msgpack::sbuffer> packer_{buffer_};
};

}  // namespace iridium::wire
