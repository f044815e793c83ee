// Block mode (!block ... !end): lines collected and assembled as one unit,
// so forward labels resolve; errors name the block's own lines; a broken
// block leaves the program as it was.
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <string>

#include "shell/shell.h"

using iridium::shell::Environment;
using iridium::shell::Reply;
using iridium::shell::Shell;

namespace {

std::string read_example(const std::string& name) {
  std::ifstream in(std::string(IRIDIUM_SOURCE_DIR) + "/examples/" + name);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Feeds every line of text to the shell; each must be collected quietly.
void feed_lines(Shell& shell, const std::string& text) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    const Reply reply = shell.execute(line);
    INFO(line);
    REQUIRE(reply.ok);
    REQUIRE(reply.output.empty());
    REQUIRE(reply.ask == Shell::kBlockPrompt);
  }
}

}  // namespace

TEST_CASE("a pasted program with a forward label runs as a file would", "[block]") {
  Shell shell(Environment{}, 1);
  // Line by line, the forward label is an error.
  CHECK(shell.execute("call @fib").output == "<shell>:1:6: error: undefined label 'fib'\n");

  const Reply start = shell.execute("!block");
  CHECK(start.ok);
  CHECK(start.ask == Shell::kBlockPrompt);
  CHECK(shell.in_block());
  feed_lines(shell, read_example("fib.iasm"));
  const Reply end = shell.execute("!end");
  CHECK(end.ok);
  CHECK(end.ask.empty());
  CHECK_FALSE(shell.in_block());
  CHECK(shell.machine().state().registers[0] == 610);
  // Its labels stay known, as after !load_file.
  CHECK(shell.completions("call @fi") == std::vector<std::string>{"@fib"});
  REQUIRE(shell.execute("load $0 #10").ok);
  REQUIRE(shell.execute("call @fib").ok);
  CHECK(shell.machine().state().registers[0] == 55);
}

TEST_CASE("a broken block reports the block's lines and leaves the program unchanged", "[block]") {
  Shell shell(Environment{}, 1);
  REQUIRE(shell.execute("load $0 #7").ok);
  const auto code_before = shell.machine().program().code;
  REQUIRE(shell.execute("!block").ok);
  feed_lines(shell, "  load $1 #1\n\n    bogus $1\ncall @nowhere\n");
  const Reply end = shell.execute("!end");
  CHECK_FALSE(end.ok);
  CHECK(end.output ==
        "<block>:3:5: error: unknown instruction 'bogus'\n"
        "<block>:4:6: error: undefined label 'nowhere'\n");
  CHECK_FALSE(shell.in_block());
  CHECK(shell.machine().program().code == code_before);
  CHECK(shell.machine().state().registers[1] == 0);
  CHECK(shell.execute("!symbols").output == "(no labels)\n");
}

TEST_CASE("!end without a block is an error", "[block]") {
  Shell shell(Environment{}, 1);
  const Reply reply = shell.execute("!end");
  CHECK_FALSE(reply.ok);
  CHECK(reply.output == "!end without a block: start one with !block\n");
  CHECK(reply.ask.empty());
}

TEST_CASE("inside a block, !block and other commands are errors and the block goes on", "[block]") {
  Shell shell(Environment{}, 1);
  REQUIRE(shell.execute("!block").ok);
  feed_lines(shell, "load $2 #5\n");
  Reply nested = shell.execute("!block");
  CHECK_FALSE(nested.ok);
  CHECK(nested.output == "already in a block: !end runs it, Ctrl-C drops it\n");
  CHECK(nested.ask == Shell::kBlockPrompt);
  Reply command = shell.execute("!registers");
  CHECK_FALSE(command.ok);
  CHECK(command.output == "!registers does not run inside a block: !end runs the block first\n");
  CHECK(command.ask == Shell::kBlockPrompt);
  CHECK(shell.in_block());
  feed_lines(shell, "inc $2\n");
  REQUIRE(shell.execute("!end").ok);
  CHECK(shell.machine().state().registers[2] == 6);
}

TEST_CASE("cancel drops a block and leaves the program unchanged", "[block]") {
  Shell shell(Environment{}, 1);
  REQUIRE(shell.execute("!block").ok);
  feed_lines(shell, "load $3 #1\nload $4 #2\n");
  const Reply dropped = shell.cancel();
  CHECK(dropped.output == "block dropped (2 lines); the program is unchanged\n");
  CHECK_FALSE(shell.in_block());
  CHECK(shell.machine().program().code.empty());
  CHECK(shell.execute("!end").output == "!end without a block: start one with !block\n");
  // Nothing to cancel: nothing said.
  CHECK(shell.cancel().output.empty());
}

TEST_CASE("an empty block runs nothing", "[block]") {
  Shell shell(Environment{}, 1);
  REQUIRE(shell.execute("!block").ok);
  feed_lines(shell, "\n   \n; just a comment\n");
  const Reply end = shell.execute("!end");
  CHECK(end.ok);
  CHECK(shell.machine().program().code.empty());
}
