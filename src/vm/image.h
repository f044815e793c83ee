// The program image (.pie): a read-only data section and a code section.
//
// File layout: "EPIE" magic, 60 reserved zero bytes, the read-only length R
// as uint32 little-endian, R bytes of read-only data, then the code.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"

namespace iridium::vm {

inline constexpr std::size_t kHeaderSize = 64;
inline constexpr std::size_t kReadOnlyStart = kHeaderSize + 4;

struct Image {
  std::vector<uint8_t> read_only;
  std::vector<uint8_t> code;

  bool operator==(const Image&) const = default;
};

// Splits a file's bytes into an Image and checks its layout. Does not check
// the instructions themselves: see verify().
Result<Image> parse_image(std::span<const uint8_t> bytes);

// Parses, then verifies every instruction. This is what loaders call.
Result<Image> load_image(std::span<const uint8_t> bytes);

std::vector<uint8_t> serialize_image(const Image& image);

// Reads a whole file. Errors name the path.
Result<std::vector<uint8_t>> read_file_bytes(const std::string& path);

// True when the bytes start with the image magic.
bool looks_like_image(std::span<const uint8_t> bytes);

}  // namespace iridium::vm
