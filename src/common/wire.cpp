#include "common/wire.h"

namespace iridium::wire {

Result<Frame> Frame::decode(std::span<const uint8_t> bytes) {
  // Bounds on what one frame may allocate, whatever its length fields claim.
  const msgpack::unpack_limit limit(/*array=*/4096, /*map=*/64, /*str=*/1 << 20, /*bin=*/1 << 20,
                                    /*ext=*/0, /*depth=*/8);
  Frame frame;
  try {
    std::size_t offset = 0;
    auto handle = std::make_shared<msgpack::object_handle>(
        msgpack::unpack(reinterpret_cast<const char*>(bytes.data()), bytes.size(), offset, nullptr,
                        nullptr, limit));
    if (offset != bytes.size()) return Error{"trailing bytes after the MessagePack value"};
    const msgpack::object& root = handle->get();
    if (root.type != msgpack::type::MAP) return Error{"frame is not a MessagePack map"};
    for (uint32_t i = 0; i < root.via.map.size; ++i) {
      const msgpack::object_kv& kv = root.via.map.ptr[i];
      if (kv.key.type != msgpack::type::STR) return Error{"frame has a key that is not a string"};
      frame.fields_.emplace(std::string(kv.key.via.str.ptr, kv.key.via.str.size), &kv.val);
    }
    frame.handle_ = std::move(handle);
  } catch (const std::exception& e) {
    return Error{std::string("malformed MessagePack: ") + e.what()};
  }
  return frame;
}

const msgpack::object* Frame::get(std::string_view key) const {
  auto it = fields_.find(key);
  return it == fields_.end() ? nullptr : it->second;
}

std::optional<std::string> Frame::str(std::string_view key) const {
  const msgpack::object* o = get(key);
  if (o == nullptr || o->type != msgpack::type::STR) return std::nullopt;
  return std::string(o->via.str.ptr, o->via.str.size);
}

std::optional<int64_t> Frame::integer(std::string_view key) const {
  const msgpack::object* o = get(key);
  if (o == nullptr) return std::nullopt;
  if (o->type == msgpack::type::POSITIVE_INTEGER) {
    if (o->via.u64 > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<int64_t>(o->via.u64);
  }
  if (o->type == msgpack::type::NEGATIVE_INTEGER) return o->via.i64;
  return std::nullopt;
}

std::optional<bool> Frame::boolean(std::string_view key) const {
  const msgpack::object* o = get(key);
  if (o == nullptr || o->type != msgpack::type::BOOLEAN) return std::nullopt;
  return o->via.boolean;
}

}  // namespace iridium::wire
