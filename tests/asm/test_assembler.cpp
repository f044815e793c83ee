#include <algorithm>

#include "asm/assembler.h"
#include "common/nearest.h"
#include "vm/opcodes.h"
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
  CHECK_THAT(errors_of(".bogus\n"),
             Catch::Contains("t.iasm:1:1: error: unknown directive '.bogus'"));
  CHECK_THAT(errors_of("  add $1 $2\n"), Catch::Contains("1:3: error: ADD takes 3 operands"));
  CHECK_THAT(errors_of("hlt $1\n"), Catch::Contains("HLT takes 0 operands"));
  CHECK_THAT(errors_of("inc #1\n"),
             Catch::Contains("1:5: error: operand 1 of INC must be a register"));
  CHECK_THAT(errors_of("inc $32\n"), Catch::Contains("register '$32' out of range"));
  CHECK_THAT(errors_of("inc $x\n"), Catch::Contains("bad register"));
  CHECK_THAT(errors_of("load $0 #4294967296\n"), Catch::Contains("out of range"));
  CHECK_THAT(errors_of("shl $0 #32\n"), Catch::Contains("out of range (0..31)"));
  CHECK_THAT(errors_of("cloop #65536\n"), Catch::Contains("out of range (0..65535)"));
  CHECK_THAT(errors_of("lui $0 #70000\n"), Catch::Contains("out of range"));
  CHECK_THAT(errors_of("loadf64 $0 #1.5\n"), Catch::Contains("whole numbers"));
  CHECK_THAT(errors_of("djmpe @nowhere\n"),
             Catch::Contains("1:7: error: undefined label 'nowhere'"));
  CHECK_THAT(errors_of("a: hlt\na: hlt\n"),
             Catch::Contains("2:1: error: duplicate label 'a' (first defined on line 1)"));
  CHECK_THAT(errors_of(".data\nhlt\n"),
             Catch::Contains("2:1: error: instruction 'hlt' in the data section"));
  CHECK_THAT(errors_of("s: .asciiz 'open\n"), Catch::Contains("1:12: error: unterminated string"));
  CHECK_THAT(errors_of("s: .asciiz 'a\\q'\n"), Catch::Contains("unknown escape"));
  CHECK_THAT(errors_of(".data\nd: .integer #1\n.code\ndjmpe @d\n"),
             Catch::Contains("is a data label"));
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

namespace {
// The one diagnostic of a source that has exactly one error.
iridium::assembler::Diagnostic only_error(const std::string& source) {
  auto assembly = assemble(source, "t.iasm");
  INFO(iridium::assembler::format_all(assembly.errors));
  REQUIRE(assembly.errors.size() == 1);
  return assembly.errors[0];
}
}  // namespace

TEST_CASE("operand errors carry the expected form and a likely fix", "[asm][errors][hints]") {
  using iridium::assembler::DiagnosticKind;
  auto d = only_error("load $5 42\n");
  CHECK(d.kind == DiagnosticKind::kOperandKind);
  CHECK(d.column == 9);
  CHECK(d.token == "42");
  CHECK(d.expected == "load $REG #IMM|@LABEL");
  CHECK(d.suggestion == "#42");
  CHECK(d.hint() == "expected: load $REG #IMM|@LABEL (did you mean #42?)");
  CHECK(d.format() ==
        "t.iasm:1:9: error: operand 2 of LOAD must be an integer or a label, got '42'; "
        "expected: load $REG #IMM|@LABEL (did you mean #42?)");

  d = only_error("LOAD $0\n");  // the form follows the case the mnemonic was written in
  CHECK(d.kind == DiagnosticKind::kOperandCount);
  CHECK(d.message == "LOAD takes 2 operands, got 1");
  CHECK(d.expected == "LOAD $REG #IMM|@LABEL");
  CHECK(d.suggestion.empty());

  CHECK(only_error("shl $0 $1 $2\n").expected == "shl $REG [#0..31]");
  CHECK(only_error("hlt $1\n").expected == "hlt");
  CHECK(only_error("cloop $1\n").expected == "cloop #COUNT");
  CHECK(only_error("prts\n").expected == "prts @LABEL");
  CHECK(only_error("add $1 $2\n").expected == "add $REG $REG $REG");

  // Likely fixes: a register written without `$`, an integer without `#`, a label without `@`.
  CHECK(only_error("inc #3\n").suggestion == "$3");
  CHECK(only_error("inc 3\n").suggestion == "$3");
  CHECK(only_error("inc r7\n").suggestion == "$7");
  CHECK(only_error("add $1 $2 31\n").suggestion == "$31");
  CHECK(only_error("inc 32\n").suggestion.empty());  // no such register
  CHECK(only_error("inc foo\n").suggestion.empty());
  CHECK(only_error("loadf64 $0 2.0\n").suggestion == "#2.0");
  CHECK(only_error("loadf64 $0 1.5\n").suggestion.empty());  // #1.5 would fail too
  CHECK(only_error("load $0 0x1F\n").suggestion == "#0x1F");
  auto label = only_error("top: nop\ndjmpe top\n");
  CHECK(label.line == 2);
  CHECK(label.suggestion == "@top");
  CHECK(label.expected == "djmpe @LABEL");
  CHECK(only_error("djmpe nowhere\n").suggestion.empty());  // not a label here
  CHECK(only_error("load $0 $1\n").suggestion.empty());

  // Range errors say the range already; they carry no form.
  CHECK(only_error("inc $32\n").hint().empty());
}

TEST_CASE("an unknown mnemonic suggests the nearest one in the opcode table",
          "[asm][errors][hints]") {
  using iridium::assembler::DiagnosticKind;
  auto d = only_error("lod $0 #1\n");
  CHECK(d.kind == DiagnosticKind::kUnknownInstruction);
  CHECK(d.token == "lod");
  CHECK(d.suggestion == "load");
  CHECK(d.format() == "t.iasm:1:1: error: unknown instruction 'lod'; did you mean load?");
  CHECK(only_error("LOD $0 #1\n").suggestion == "LOAD");
  CHECK(only_error("jmpee $0\n").suggestion == "jmpe");
  CHECK(only_error("aloc_ $0\n").suggestion == "aloc");
  CHECK(only_error("pirnt\n").suggestion.empty());
  CHECK(only_error("nope\n").suggestion == "nop");
  CHECK(only_error("foo $1\n").suggestion.empty());  // nothing near: no guess
  CHECK(only_error("help\n").suggestion.empty());
  CHECK(only_error("help\n").token == "help");
  CHECK(only_error(".dat\n").suggestion == ".data");
}

TEST_CASE("every opcode's expected form, filled in, assembles", "[asm][hints]") {
  // The forms come from the opcode table, so this covers every instruction
  // and every form: an error's hint is always something that works.
  for (const auto& info : iridium::vm::all_ops()) {
    std::string mnemonic(info.mnemonic);
    auto wrong = assemble(mnemonic + " $1 $1 $1 $1\n", "t.iasm");  // too many operands for any form
    REQUIRE(wrong.errors.size() == 1);
    std::string form = wrong.errors[0].expected;
    INFO(mnemonic << ": " << form);
    CHECK(wrong.errors[0].kind == iridium::assembler::DiagnosticKind::kOperandCount);
    CHECK(form.rfind(mnemonic, 0) == 0);  // written as the mnemonic was: upper case here
    const auto list = iridium::vm::operands(info.form);
    for (auto [placeholder, value] :
         std::vector<std::pair<std::string, std::string>>{{"[", ""},
                                                          {"]", ""},
                                                          {"|@LABEL", ""},
                                                          {"$REG", "$1"},
                                                          {"#IMM", "#1"},
                                                          {"#0..31", "#1"},
                                                          {"#COUNT", "#1"},
                                                          {"@LABEL", "@target"}}) {
      for (std::size_t at; (at = form.find(placeholder)) != std::string::npos;) {
        form.replace(at, placeholder.size(), value);
      }
    }
    CHECK(static_cast<std::size_t>(std::count(form.begin(), form.end(), ' ')) == list.size);
    const std::string target =
        info.form == iridium::vm::Form::kDataAddr ? "target: .asciiz 'x'\n" : "target: nop\n";
    auto right = assemble(target + form + "\n", "t.iasm");
    CHECK(iridium::assembler::format_all(right.errors) == "");
  }
}

TEST_CASE("nearest_word: edit distance, unique prefixes, no wild guesses", "[hints]") {
  using iridium::edit_distance;
  using iridium::nearest_word;
  CHECK(edit_distance("registers", "regsiters") == 1);  // a swap counts once
  CHECK(edit_distance("LOAD", "load") == 0);
  CHECK(edit_distance("", "abc") == 3);
  const std::vector<std::string_view> names = {
      "registers", "clear_registers", "clear_program", "load_file", "help", "quit"};
  CHECK(nearest_word("regsiters", names) == "registers");
  CHECK(nearest_word("reg", names) == "registers");     // the only one it starts
  CHECK(nearest_word("clear", names) == std::nullopt);  // two start with it
  CHECK(nearest_word("qiut", names) == "quit");
  CHECK(nearest_word("djmp", {"jmp", "djmpe"}) == "djmpe");  // as near, but starts the same
  CHECK(nearest_word("frobnicate", names) == std::nullopt);
  CHECK(nearest_word("help", names) == std::nullopt);  // already a name
  CHECK(nearest_word("", names) == std::nullopt);
}
