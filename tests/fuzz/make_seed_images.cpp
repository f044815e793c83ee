// Helper for scripts/fuzz: assembles each source file given on the command
// line into OUT_DIR/<name>.pie, to seed the loader fuzzer's corpus. Files that
// do not assemble are skipped.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "asm/assembler.h"
#include "vm/image.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR SOURCE...\n", argv[0]);
    return 2;
  }
  const std::filesystem::path out_dir = argv[1];
  std::filesystem::create_directories(out_dir);
  int written = 0;
  for (int i = 2; i < argc; ++i) {
    std::ifstream in(argv[i], std::ios::binary);
    const std::string source((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
    const auto assembly = iridium::assembler::assemble(source, argv[i]);
    if (!assembly.ok()) continue;
    const auto bytes = iridium::vm::serialize_image(assembly.image);
    const auto path = out_dir / (std::filesystem::path(argv[i]).stem().string() + ".pie");
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    ++written;
  }
  std::printf("%d seed images in %s\n", written, out_dir.c_str());
  return 0;
}
