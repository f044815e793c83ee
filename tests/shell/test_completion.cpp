// Tab completion as data (src/shell/completion.h and Shell::completions):
// commands, mnemonics, labels, paths, and lines where nothing fits.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "shell/completion.h"
#include "shell/shell.h"
#include "vm/opcodes.h"

using iridium::shell::completions;
using iridium::shell::CompletionSources;
using iridium::shell::Environment;
using iridium::shell::last_word;
using iridium::shell::Shell;
using Words = std::vector<std::string>;

namespace {

// A fresh directory with a few files and a subdirectory, removed at the end.
struct TempTree {
  std::filesystem::path root;
  TempTree() {
    root = std::filesystem::temp_directory_path() /
           ("iridium-completion-" + std::to_string(::getpid()) + "-" +
            std::to_string(reinterpret_cast<std::uintptr_t>(this)));
    std::filesystem::create_directories(root / "programs");
    std::ofstream(root / "fib.iasm") << "hlt\n";
    std::ofstream(root / "fizz.iasm") << "hlt\n";
    std::ofstream(root / ".hidden") << "\n";
  }
  ~TempTree() {
    std::error_code ignored;
    std::filesystem::remove_all(root, ignored);
  }
  std::string path(const std::string& name) const { return (root / name).string(); }
};

}  // namespace

TEST_CASE("the word being completed is what follows the last blank", "[completion]") {
  CHECK(last_word("") == "");
  CHECK(last_word("!reg") == "!reg");
  CHECK(last_word("load $0 @fi") == "@fi");
  CHECK(last_word("load\t$0\t") == "");
}

TEST_CASE("!commands complete from the shell's command table", "[completion]") {
  Shell shell(Environment{}, 1);
  CHECK(shell.completions("!reg") == Words{"!registers"});
  CHECK(shell.completions("  !reg") == Words{"!registers"});
  CHECK(shell.completions("!cl") ==
        Words{"!clear_program", "!clear_registers", "!cluster_keys", "!cluster_members"});
  CHECK(shell.completions("!bl") == Words{"!block"});
  // Every command is offered for a bare '!', and only commands.
  const Words all = shell.completions("!");
  CHECK(all.size() == Shell::command_names().size());
  for (const std::string& word : all) CHECK(word.front() == '!');
  CHECK(shell.completions("!nothing_like_this").empty());
}

TEST_CASE("mnemonics complete from the opcode table, in the case typed", "[completion]") {
  Shell shell(Environment{}, 1);
  CHECK(shell.completions("lo") == Words{"load", "loadf64", "loadm", "loop"});
  CHECK(shell.completions("LO") == Words{"LOAD", "LOADF64", "LOADM", "LOOP"});
  CHECK(shell.completions("djm") == Words{"djmpe"});
  CHECK(shell.completions("top: ca") == Words{"call"});
  CHECK(shell.completions("   ret") == Words{"ret"});
  // Every opcode is offered on an empty line.
  CHECK(shell.completions("").size() == iridium::vm::all_ops().size());
  // Operands are not mnemonics.
  CHECK(shell.completions("load lo").empty());
  CHECK(shell.completions("xyz").empty());
}

TEST_CASE("labels the session knows complete after '@'", "[completion]") {
  Shell shell(Environment{}, 1);
  CHECK(shell.completions("call @f").empty());  // no labels yet
  REQUIRE(shell.execute("fib: load $0 #1").ok);
  REQUIRE(shell.execute("finish: load $1 #2").ok);
  REQUIRE(shell.execute("other: nop").ok);
  CHECK(shell.completions("call @f") == Words{"@fib", "@finish"});
  CHECK(shell.completions("call @fin") == Words{"@finish"});
  CHECK(shell.completions("load $0 @") == Words{"@fib", "@finish", "@other"});
  CHECK(shell.completions("call @zzz").empty());
  // A block being typed offers the labels its lines define so far.
  REQUIRE(shell.execute("!block").ok);
  REQUIRE(shell.execute("fizz:   nop").ok);
  REQUIRE(shell.execute("  ; not: a label").ok);
  CHECK(shell.completions("call @fi") == Words{"@fib", "@finish", "@fizz"});
  CHECK(shell.completions("call @not").empty());
  (void)shell.cancel();
  REQUIRE_FALSE(shell.in_block());
  CHECK(shell.completions("call @fi") == Words{"@fib", "@finish"});
  // Dropping the program drops its labels.
  REQUIRE(shell.execute("!clear_program").ok);
  CHECK(shell.completions("call @f").empty());
}

TEST_CASE("paths complete after !load_file and !spawn, and for words with '/'", "[completion]") {
  TempTree tree;
  const std::string fi = tree.path("fi");
  const Words both{tree.path("fib.iasm"), tree.path("fizz.iasm")};
  CHECK(completions("!load_file " + fi, {}) == both);
  CHECK(completions("!spawn " + tree.path("fib"), {}) == Words{tree.path("fib.iasm")});
  // A directory ends in '/', so the next Tab goes on inside it.
  CHECK(completions("!load_file " + tree.path("pro"), {}) == Words{tree.path("programs") + "/"});
  // Hidden names only when asked for.
  CHECK(completions("!load_file " + tree.path(""), {}) ==
        Words{tree.path("fib.iasm"), tree.path("fizz.iasm"), tree.path("programs") + "/"});
  CHECK(completions("!load_file " + tree.path("."), {}) == Words{tree.path(".hidden")});
  // A word that looks like a path, anywhere.
  CHECK(completions("see " + fi, {}) == both);
  // Relative to the working directory, as the shell resolves them.
  const auto here = std::filesystem::current_path();
  std::filesystem::current_path(tree.root);
  const Words relative = completions("!load_file f", {});
  std::filesystem::current_path(here);
  CHECK(relative == Words{"fib.iasm", "fizz.iasm"});
}

TEST_CASE("nothing fits: no candidates", "[completion]") {
  Shell shell(Environment{}, 1);
  CHECK(shell.completions("!load_file /no/such/directory/x").empty());
  CHECK(shell.completions("!help extra").empty());  // commands other than paths take no completion
  CHECK(shell.completions("load $0 #4").empty());
  CHECK(completions("!reg", CompletionSources{}).empty());  // no command table given
}
