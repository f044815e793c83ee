#include "asm/assembler.h"

#include "vm_harness.h"

using iridium::assembler::assemble;
using iridium::assembler::Context;
using iridium::assembler::SymbolKind;
using iridium::assembler::SymbolTable;

namespace {
// All error messages, one per line, for matching.
std::string errors_of(const std::string& source) {
  auto assembly = assemble(source, "t.iasm");
  REQUIRE_FALSE(assembly.ok());
  return iridium::assembler::format_all(assembly.errors);
}
}  // namespace

TEST_CASE("the spec's example assembles to the documented bytes", "[asm]") {
  const std::string source = R"(; a comment runs to the end of the line
.data
greeting: .asciiz 'Hello, Iridium!\n'
answer:   .integer #42
.code
        load $0 #100000      ; any int32; outside int16 it becomes LOAD + LUI
        load $1 #0
top:    inc $1
        neq $0 $1
        djmpe @top
        prts @greeting
        hlt
)";
  auto assembly = assemble(source, "spec.iasm");
  REQUIRE(assembly.ok());
  const auto& code = assembly.image.code;
  REQUIRE(code.size() == 8 * 4);  // the 32-bit LOAD takes two instructions
  CHECK(std::vector<uint8_t>(code.begin(), code.begin() + 8) ==
        std::vector<uint8_t>{0, 0, 0x00, 0x01, 39, 0, 0x86, 0xA0});
  CHECK(assembly.symbols.at("top").value == 12);
  CHECK(assembly.symbols.at("top").kind == SymbolKind::kCode);
  CHECK(assembly.symbols.at("answer").value == 17);
  CHECK(assembly.symbols.at("answer").kind == SymbolKind::kData);
  CHECK(std::vector<uint8_t>(code.begin() + 20, code.begin() + 24) ==
        std::vector<uint8_t>{20, 0, 12, 0});  // djmpe @top
  auto& ro = assembly.image.read_only;
  REQUIRE(ro.size() == 17 + 4);
  CHECK(ro[15] == '\n');
  CHECK(ro[16] == 0);
  CHECK(ro[17] == 42);
  auto run = iridium::testing::run_image(assembly.image);
  CHECK(run->output == "Hello, Iridium!\n");
  CHECK(run->reg(1) == 100000);
}

TEST_CASE("syntax: case, labels on their own line, hex, escapes, commas", "[asm]") {
  auto o = iridium::testing::run_asm(
      "LoAd $0, #0x1F\nstart:\n  INC $0\nend_label:\n.data\ns: .asciiz 'a\\tb\\\\c\\'d\\x41'\n");
  CHECK(o->reg(0) == 32);
  auto a = assemble("x:\ny: hlt\nz:\n");
  REQUIRE(a.ok());
  CHECK(a.symbols.at("x").value == 0);
  CHECK(a.symbols.at("y").value == 0);
  CHECK(a.symbols.at("z").value == 4);  // at the very end: the code's end
  auto s = assemble("s: .asciiz 'a\\tb\\\\c\\'d\\x41'\n");
  REQUIRE(s.ok());
  CHECK(std::string(s.image.read_only.begin(), s.image.read_only.end()) ==
        std::string("a\tb\\c'dA\0", 9));
  CHECK(assemble("load $0 @later\nlater: hlt\n").image.code[3] == 4);  // LOAD $r @label
}

TEST_CASE("every assembler error class, each located", "[asm][errors]") {
  CHECK(errors_of("foo $1\n") == "t.iasm:1:1: error: unknown instruction 'foo'\n");
  CHECK_THAT(errors_of(".bogus\n"), Catch::Contains("t.iasm:1:1: error: unknown directive '.bogus'"));
  CHECK_THAT(errors_of("  add $1 $2\n"), Catch::Contains("1:3: error: ADD takes 3 operands"));
  CHECK_THAT(errors_of("hlt $1\n"), Catch::Contains("HLT takes 0 operands"));
  CHECK_THAT(errors_of("inc #1\n"), Catch::Contains("1:5: error: operand 1 of INC must be a register"));
  CHECK_THAT(errors_of("inc $32\n"), Catch::Contains("register '$32' out of range"));
  CHECK_THAT(errors_of("inc $x\n"), Catch::Contains("bad register"));
  CHECK_THAT(errors_of("load $0 #4294967296\n"), Catch::Contains("out of range"));
  CHECK_THAT(errors_of("shl $0 #32\n"), Catch::Contains("out of range (0..31)"));
  CHECK_THAT(errors_of("cloop #65536\n"), Catch::Contains("out of range (0..65535)"));
  CHECK_THAT(errors_of("lui $0 #70000\n"), Catch::Contains("out of range"));
  CHECK_THAT(errors_of("loadf64 $0 #1.5\n"), Catch::Contains("whole numbers"));
  CHECK_THAT(errors_of("djmpe @nowhere\n"), Catch::Contains("1:7: error: undefined label 'nowhere'"));
  CHECK_THAT(errors_of("a: hlt\na: hlt\n"), Catch::Contains("2:1: error: duplicate label 'a' (first defined on line 1)"));
  CHECK_THAT(errors_of(".data\nhlt\n"), Catch::Contains("2:1: error: instruction 'hlt' in the data section"));
  CHECK_THAT(errors_of("s: .asciiz 'open\n"), Catch::Contains("1:12: error: unterminated string"));
  CHECK_THAT(errors_of("s: .asciiz 'a\\q'\n"), Catch::Contains("unknown escape"));
  CHECK_THAT(errors_of(".data\nd: .integer #1\n.code\ndjmpe @d\n"), Catch::Contains("is a data label"));
  CHECK_THAT(errors_of("c: hlt\nprts @c\n"), Catch::Contains("is a code label"));
  CHECK_THAT(errors_of("load $0 $1\n"), Catch::Contains("must be an integer or a label"));
  CHECK_THAT(errors_of("$1 load\n"), Catch::Contains("expected an instruction"));
  CHECK_THAT(errors_of(".integer\n"), Catch::Contains(".integer takes one integer"));
  CHECK_THAT(errors_of(".asciiz #1\n"), Catch::Contains(".asciiz takes one string"));
}

TEST_CASE("all errors are reported in one run", "[asm][errors]") {
  auto assembly = assemble("foo\ninc $99\nok: hlt\ndjmpe @missing\nbar $1\n", "many.iasm");
  REQUIRE(assembly.errors.size() == 4);
  CHECK(assembly.errors[0].line == 1);
  CHECK(assembly.errors[1].line == 2);  // sorted by position, whichever pass found them
  CHECK(assembly.errors[2].line == 4);
  CHECK(assembly.errors[3].line == 5);
  CHECK(assembly.errors[2].format() == "many.iasm:4:7: error: undefined label 'missing'");
}

TEST_CASE("assembling against a shell's symbol table", "[asm][shell]") {
  SymbolTable symbols;
  auto first = assemble("top: inc $0\nmsg: .asciiz 'x'\n", "<shell>", Context{&symbols, 0, 0});
  REQUIRE(first.ok());
  symbols.insert(first.symbols.begin(), first.symbols.end());
  auto second = assemble("djmpe @top\nprts @msg\nnext: hlt\n", "<shell>", Context{&symbols, 4, 2});
  REQUIRE(second.ok());
  CHECK(second.symbols.at("next").value == 12);
  CHECK(second.image.code[1] == 0);
  CHECK(second.image.code[2] == 0);
  auto duplicate = assemble("top: hlt\n", "<shell>", Context{&symbols, 16, 2});
  REQUIRE_FALSE(duplicate.ok());
  CHECK_THAT(duplicate.errors[0].message, Catch::Contains("already defined"));
}

TEST_CASE("LOAD of a label beyond int16 grows to LOAD + LUI and moves later labels", "[asm]") {
  std::string source = "load $0 @far\nload $1 @after\n";
  for (int i = 0; i < 8200; ++i) source += "nop\n";
  source += "far: hlt\nafter: hlt\n";
  auto assembly = assemble(source, "far.iasm");
  INFO(iridium::assembler::format_all(assembly.errors));
  REQUIRE(assembly.ok());
  // Both LOADs need two instructions: 16 bytes, then 8200 NOPs.
  CHECK(assembly.symbols.at("far").value == 16 + 8200 * 4);
  CHECK(assembly.symbols.at("after").value == 16 + 8200 * 4 + 4);
  auto run = iridium::testing::run_image(assembly.image);
  CHECK(run->reg(0) == 16 + 8200 * 4);
  CHECK(run->reg(1) == 16 + 8200 * 4 + 4);
}
