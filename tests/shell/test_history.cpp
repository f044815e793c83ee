// A session's !history: every line, numbered, and only the newest
// Shell::kHistoryLines of them, so a session that runs for weeks keeps a
// bounded list while the numbers go on counting.
#include <algorithm>
#include <catch2/catch.hpp>
#include <string>

#include "shell/shell.h"

using iridium::shell::Environment;
using iridium::shell::Shell;

TEST_CASE("history numbers every line the session entered") {
  Shell shell(Environment{}, 1);
  REQUIRE(shell.execute("load $0 #1").ok);
  REQUIRE(shell.execute("!registers").ok);
  CHECK(shell.execute("!history").output == "1  load $0 #1\n2  !registers\n3  !history\n");
}

TEST_CASE("past its bound history keeps the newest lines and goes on numbering") {
  Shell shell(Environment{}, 1);
  const std::size_t total = Shell::kHistoryLines + 250;
  for (std::size_t i = 1; i < total; ++i) shell.execute("load $0 #" + std::to_string(i % 100));
  const std::string text = shell.execute("!history").output;  // line `total`
  const std::size_t first = total - Shell::kHistoryLines + 1;
  CHECK(std::count(text.begin(), text.end(), '\n') == static_cast<long>(Shell::kHistoryLines));
  CHECK(text.rfind(std::to_string(first) + "  load $0 #" + std::to_string(first % 100) + "\n", 0) ==
        0);
  CHECK(text.find("\n" + std::to_string(total) + "  !history\n") != std::string::npos);
}
