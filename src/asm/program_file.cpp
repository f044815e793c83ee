#include "asm/program_file.h"

#include "asm/assembler.h"
#include "vm/verifier.h"

namespace iridium::assembler {

Result<vm::Image> load_program_file(const std::string& path) {
  auto bytes = vm::read_file_bytes(path);
  if (!bytes) return bytes.error();
  if (vm::looks_like_image(*bytes)) {
    auto image = vm::load_image(*bytes);
    if (!image) return Error{path + ": " + image.message()};
    return image;
  }
  std::string_view source(reinterpret_cast<const char*>(bytes->data()), bytes->size());
  Assembly assembly = assemble(source, path);
  if (!assembly.ok()) {
    std::string text = format_all(assembly.errors);
    if (!text.empty() && text.back() == '\n') text.pop_back();
    return Error{text};
  }
  if (auto status = vm::verify(assembly.image); !status) {
    return Error{path + ": assembled program failed verification: " + status.message()};
  }
  return std::move(assembly.image);
}

}  // namespace iridium::assembler
