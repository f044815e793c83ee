#include "shell/console.h"

#include <editline/readline.h>
#include <langinfo.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <clocale>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "shell/shell.h"

namespace iridium::shell {
namespace {
// libedit's callback interface takes a plain function, so the one active
// console is reached through this pointer.
Console* g_active = nullptr;
std::function<void(std::optional<std::string>)>* g_deliver = nullptr;
Console::Completer* g_completer = nullptr;
std::vector<std::string> g_candidates;  // of the Tab being answered

bool input_waiting(int fd) {
  pollfd poll_fd{fd, POLLIN, 0};
  return ::poll(&poll_fd, 1, 0) > 0 && (poll_fd.revents & POLLIN) != 0;
}

int read_byte(int fd) {
  unsigned char byte = 0;
  ssize_t n;
  do {
    n = ::read(fd, &byte, 1);
  } while (n < 0 && errno == EINTR);
  return n == 1 ? byte : EOF;
}

// libedit's reader, replaced for one reason: a tab with more input already
// waiting was pasted, so it becomes a space instead of a completion. Its
// UTF-8 decoding is kept: a character is read whole.
int read_character(FILE* stream) {
  const int fd = fileno(stream);
  const int first = read_byte(fd);
  if (first == EOF) return EOF;
  if (first == '\t') return input_waiting(fd) ? ' ' : '\t';
  int follow = first >= 0xF0 ? 3 : first >= 0xE0 ? 2 : first >= 0xC0 ? 1 : 0;
  int code = follow == 3 ? first & 0x07 : follow == 2 ? first & 0x0F : first & 0x1F;
  if (follow == 0) return first;
  while (follow-- > 0) {
    const int next = read_byte(fd);
    if (next == EOF || (next & 0xC0) != 0x80) return '?';  // not UTF-8
    code = (code << 6) | (next & 0x3F);
  }
  return code;
}

// libedit keeps the line as wide characters and turns it back into bytes
// with LC_CTYPE; in the "C" locale a program starts in, everything past ASCII
// is dropped ('héllo' came back as 'hllo'). read_character decodes UTF-8, so
// the line is encoded the same way: the user's locale when it is UTF-8, else
// C.UTF-8. Only LC_CTYPE: numbers keep their C formatting.
void use_utf8_characters() {
  if (const char* set = std::setlocale(LC_CTYPE, ""); set != nullptr) {
    if (std::string_view(nl_langinfo(CODESET)) == "UTF-8") return;
  }
  if (std::setlocale(LC_CTYPE, "C.UTF-8") == nullptr) std::setlocale(LC_CTYPE, "C");
}

char* next_candidate(const char*, int state) {
  static std::size_t index = 0;
  if (state == 0) index = 0;
  if (index >= g_candidates.size()) return nullptr;
  return strdup(g_candidates[index++].c_str());
}

// libedit asks with the word before the cursor (split on blanks, as the
// completer splits) and the cursor position `end` in rl_line_buffer.
char** complete(const char* word, int, int end) {
  rl_attempted_completion_over = 1;  // nothing fits: no file-name fallback
  if (g_completer == nullptr || !*g_completer) return nullptr;
  g_candidates = (*g_completer)(std::string_view(rl_line_buffer, static_cast<std::size_t>(end)));
  if (g_candidates.empty()) return nullptr;
  // A directory goes on being typed; anything else is a whole word.
  const bool directory = g_candidates.size() == 1 && g_candidates[0].back() == '/';
  rl_completion_append_character = directory ? '\0' : ' ';
  return rl_completion_matches(word, next_candidate);
}

void on_line(char* line) {
  if (g_deliver == nullptr) return;
  std::optional<std::string> text;
  if (line != nullptr) {
    text = line;
    std::free(line);
  }
  (*g_deliver)(std::move(text));
}
}  // namespace

Console::Console(int fd, bool interactive, std::string history_path, LineHandler handler)
    : fd_(fd),
      interactive_(interactive),
      history_path_(std::move(history_path)),
      handler_(std::move(handler)) {}

Console::~Console() {
  stop();
}

void Console::write(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

void Console::deliver(std::optional<std::string> line) {
  if (line && interactive_ && !line->empty()) {
    add_history(line->c_str());
    // Rewrite the whole (stifled) history rather than append_history(1, ...):
    // libedit 3.1-20221030 writes n+1 entries there, so every line would be
    // stored twice and come back twice on the next run.
    if (!history_path_.empty()) write_history(history_path_.c_str());
  }
  handler_(std::move(line));
  // libedit does not show the prompt again by itself after a line in
  // callback mode: installing the handler again does. Not once the handler
  // stopped the console (end of input, !quit): the prompt would dangle.
  if (interactive_ && active_ && g_active == this) {
    rl_callback_handler_install(prompt_.c_str(), on_line);
  }
}

void Console::interrupt(std::string_view note) {
  if (!active_ || !interactive_ || g_active != this) return;
  // Removing the handler leaves libedit's edit mode; installing it again
  // starts a new, empty line (libedit's read_prepare resets the buffer) and
  // draws the prompt.
  rl_callback_handler_remove();
  write("^C\n");
  write(note);
  rl_callback_handler_install(prompt_.c_str(), on_line);
}

void Console::start(const std::string& prompt) {
  active_ = true;
  prompt_ = prompt;
  if (!interactive_) return;
  // Before libedit initialises (using_history does): it picks these up then.
  use_utf8_characters();
  rl_getc_function = read_character;
  g_completer = &completer_;
  if (completer_) {
    rl_attempted_completion_function = complete;
    rl_basic_word_break_characters = " \t";
    rl_completer_word_break_characters = const_cast<char*>(" \t");
  }
  using_history();
  stifle_history(static_cast<int>(Shell::kHistoryLines));
  if (!history_path_.empty()) {
    // Create the file at once, so it exists even before the first line.
    if (FILE* f = std::fopen(history_path_.c_str(), "a")) std::fclose(f);
    read_history(history_path_.c_str());
  }
  g_active = this;
  static std::function<void(std::optional<std::string>)> deliver;
  deliver = [this](std::optional<std::string> line) { this->deliver(std::move(line)); };
  g_deliver = &deliver;
  rl_callback_handler_install(prompt.c_str(), on_line);
}

void Console::set_prompt(const std::string& prompt) {
  prompt_ = prompt;
}

void Console::on_readable() {
  if (!active_) return;
  if (interactive_) {
    rl_callback_read_char();
    return;
  }
  char buffer[4096];
  const ssize_t n = ::read(fd_, buffer, sizeof buffer);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) {
    if (!pending_.empty()) deliver(std::exchange(pending_, {}));
    active_ = false;
    deliver(std::nullopt);
    return;
  }
  pending_.append(buffer, static_cast<std::size_t>(n));
  std::size_t newline;
  while (active_ && (newline = pending_.find('\n')) != std::string::npos) {
    std::string line = pending_.substr(0, newline);
    pending_.erase(0, newline + 1);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    deliver(std::move(line));
  }
}

void Console::stop() {
  if (!active_) return;
  active_ = false;
  if (interactive_ && g_active == this) {
    rl_callback_handler_remove();
    g_active = nullptr;
    g_deliver = nullptr;
    g_completer = nullptr;
    if (!history_path_.empty())
      history_truncate_file(history_path_.c_str(), static_cast<int>(Shell::kHistoryLines));
  }
}

}  // namespace iridium::shell
