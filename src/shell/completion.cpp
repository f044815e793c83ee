#include "shell/completion.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <system_error>

#include "vm/opcodes.h"

namespace iridium::shell {
namespace {

bool is_blank(char c) {
  return c == ' ' || c == '\t';
}

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

bool starts_with_ignoring_case(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) !=
        std::tolower(static_cast<unsigned char>(prefix[i])))
      return false;
  }
  return true;
}

// The words before the last one.
std::vector<std::string_view> earlier_words(std::string_view line) {
  line.remove_suffix(last_word(line).size());
  std::vector<std::string_view> words;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && is_blank(line[i])) ++i;
    const std::size_t start = i;
    while (i < line.size() && !is_blank(line[i])) ++i;
    if (i > start) words.push_back(line.substr(start, i - start));
  }
  return words;
}

std::vector<std::string> mnemonic_completions(std::string_view prefix) {
  const bool upper = !prefix.empty() && std::none_of(prefix.begin(), prefix.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c));
  });
  std::vector<std::string> found;
  for (const vm::OpInfo& info : vm::all_ops()) {
    if (!starts_with_ignoring_case(info.mnemonic, prefix)) continue;
    found.push_back(upper ? std::string(info.mnemonic) : vm::lower_mnemonic(info));
  }
  return found;
}

}  // namespace

std::string_view last_word(std::string_view line_before_cursor) {
  std::size_t start = line_before_cursor.size();
  while (start > 0 && !is_blank(line_before_cursor[start - 1])) --start;
  return line_before_cursor.substr(start);
}

std::vector<std::string> path_completions(std::string_view prefix) {
  const std::size_t slash = prefix.rfind('/');
  const std::string_view directory_part =
      slash == std::string_view::npos ? std::string_view{} : prefix.substr(0, slash + 1);
  const std::string_view name_part = prefix.substr(directory_part.size());
  const std::filesystem::path directory =
      directory_part.empty() ? std::filesystem::path(".") : std::filesystem::path(directory_part);
  std::vector<std::string> found;
  std::error_code error;
  std::filesystem::directory_iterator it(directory, error);
  if (error) return found;  // no such directory, or unreadable: nothing to offer
  for (const std::filesystem::directory_iterator end; it != end; it.increment(error)) {
    if (error) break;
    const std::string name = it->path().filename().string();
    if (!starts_with(name, name_part)) continue;
    if (name.front() == '.' && !starts_with(name_part, ".")) continue;
    std::string candidate = std::string(directory_part) + name;
    std::error_code kind_error;
    if (it->is_directory(kind_error)) candidate += '/';
    found.push_back(std::move(candidate));
  }
  std::sort(found.begin(), found.end());
  return found;
}

std::vector<std::string> completions(std::string_view line_before_cursor,
                                     const CompletionSources& sources) {
  const std::string_view word = last_word(line_before_cursor);
  const std::vector<std::string_view> before = earlier_words(line_before_cursor);
  std::vector<std::string> found;

  if (before.empty() && starts_with(word, "!")) {
    for (std::string_view name : sources.commands) {
      if (starts_with(name, word)) found.emplace_back(name);
    }
  } else if (before.size() == 1 && (before[0] == "!load_file" || before[0] == "!spawn")) {
    found = path_completions(word);
  } else if (starts_with(word, "@")) {
    for (const std::string& label : sources.labels) {
      if (starts_with(label, word.substr(1))) found.push_back("@" + label);
    }
  } else if (word.find('/') != std::string_view::npos) {
    found = path_completions(word);
  } else if (before.empty() || (before.size() == 1 && before[0].back() == ':')) {
    found = mnemonic_completions(word);
  }
  std::sort(found.begin(), found.end());
  found.erase(std::unique(found.begin(), found.end()), found.end());
  return found;
}

}  // namespace iridium::shell
