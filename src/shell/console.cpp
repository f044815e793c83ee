#include "shell/console.h"

#include <editline/readline.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <utility>

namespace iridium::shell {
namespace {
// libedit's callback interface takes a plain function, so the one active
// console is reached through this pointer.
Console* g_active = nullptr;
std::function<void(std::optional<std::string>)>* g_deliver = nullptr;

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

Console::Console(int fd, std::string history_path, LineHandler handler)
    : fd_(fd),
      interactive_(isatty(fd) != 0),
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
  using_history();
  stifle_history(1000);
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
    if (!history_path_.empty()) history_truncate_file(history_path_.c_str(), 1000);
  }
}

}  // namespace iridium::shell
