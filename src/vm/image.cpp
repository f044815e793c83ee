#include "vm/image.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "vm/opcodes.h"
#include "vm/verifier.h"

namespace iridium::vm {
namespace {
constexpr std::array<uint8_t, 4> kMagic = {0x45, 0x50, 0x49, 0x45};  // "EPIE"
}

bool looks_like_image(std::span<const uint8_t> bytes) {
  return bytes.size() >= kMagic.size() && std::equal(kMagic.begin(), kMagic.end(), bytes.begin());
}

Result<Image> parse_image(std::span<const uint8_t> bytes) {
  if (!looks_like_image(bytes)) {
    return Error{"not an Iridium image: the file does not start with the magic \"EPIE\""};
  }
  if (bytes.size() < kReadOnlyStart) {
    return Error{"truncated image: " + std::to_string(bytes.size()) +
                 " bytes, but the header alone takes " + std::to_string(kReadOnlyStart)};
  }
  for (std::size_t i = kMagic.size(); i < kHeaderSize; ++i) {
    if (bytes[i] != 0) {
      return Error{"bad image header: reserved byte " + std::to_string(i) + " is not zero"};
    }
  }
  const uint32_t ro_length =
      static_cast<uint32_t>(bytes[64]) | static_cast<uint32_t>(bytes[65]) << 8 |
      static_cast<uint32_t>(bytes[66]) << 16 | static_cast<uint32_t>(bytes[67]) << 24;
  const std::size_t available = bytes.size() - kReadOnlyStart;
  if (ro_length > available) {
    return Error{"bad image: the header gives a read-only section of " + std::to_string(ro_length) +
                 " bytes, but only " + std::to_string(available) + " bytes follow the header"};
  }
  const std::size_t code_start = kReadOnlyStart + ro_length;
  const std::size_t code_length = bytes.size() - code_start;
  if (code_length % kInstructionSize != 0) {
    return Error{"bad image: the code section (" + std::to_string(code_length) +
                 " bytes from file byte " + std::to_string(code_start) +
                 ") is not a whole number of 4-byte instructions"};
  }
  Image image;
  image.read_only.assign(bytes.begin() + kReadOnlyStart, bytes.begin() + code_start);
  image.code.assign(bytes.begin() + code_start, bytes.end());
  return image;
}

Result<Image> load_image(std::span<const uint8_t> bytes) {
  auto image = parse_image(bytes);
  if (!image) return image;
  if (auto status = verify(*image); !status) return status.error();
  return image;
}

std::vector<uint8_t> serialize_image(const Image& image) {
  std::vector<uint8_t> out(kReadOnlyStart, 0);
  std::copy(kMagic.begin(), kMagic.end(), out.begin());
  const auto ro_length = static_cast<uint32_t>(image.read_only.size());
  for (int i = 0; i < 4; ++i) out[kHeaderSize + i] = static_cast<uint8_t>(ro_length >> (8 * i));
  out.insert(out.end(), image.read_only.begin(), image.read_only.end());
  out.insert(out.end(), image.code.begin(), image.code.end());
  return out;
}

Result<std::vector<uint8_t>> read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{"cannot open '" + path + "': " + std::strerror(errno)};
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  if (in.bad()) return Error{"cannot read '" + path + "'"};
  return bytes;
}

}  // namespace iridium::vm
