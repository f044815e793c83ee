// Tab completion for shell lines, as data: what the word before the cursor
// may become. Pure (apart from reading directories for paths), so tests need
// no terminal; the console feeds the candidates to libedit.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace iridium::shell {

// What a line can be completed from. The shell fills it from its command
// table and symbol table; mnemonics come from the opcode table.
struct CompletionSources {
  std::vector<std::string_view> commands;  // "!help", "!quit", ...
  std::vector<std::string> labels;         // label names, without '@'
};

// The word being completed: what follows the last space or tab.
std::string_view last_word(std::string_view line_before_cursor);

// Every word the last word of line_before_cursor may become, sorted, each a
// full replacement for it (it starts with what was typed). Empty: nothing fits.
//   first word `!...`                   shell commands
//   argument of !load_file / !spawn     file paths (directories end in '/')
//   first word, or the one after `label:`  mnemonics, lower case (upper case
//                                          when the typed prefix is)
//   `@...`                              labels
//   any other word containing '/'       file paths
std::vector<std::string> completions(std::string_view line_before_cursor,
                                     const CompletionSources& sources);

// Paths that start with prefix; directories end in '/'. Names starting with
// '.' only when the typed name does.
std::vector<std::string> path_completions(std::string_view prefix);

}  // namespace iridium::shell
