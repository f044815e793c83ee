// The local console: line editing with libedit (arrows, history, ^R search,
// history kept in a file) when stdin is a terminal, plain line reading when it
// is not. It never blocks: the owner polls fd() and calls on_readable(), so
// the same loop can also watch for signals.
//
// Whether stdin is a terminal is the owner's decision, made once when the
// process starts: a terminal that hangs up (its other end closed) stops
// being one to isatty(), and reads as an ended pipe would, but it is still a
// terminal that hung up, which the owner must notice and say.
//
// Tab asks the completer (when one is set) for the words the word before the
// cursor may become. A tab that arrives with more input already waiting is
// part of a paste, not a key press: it goes into the line as a space.
// Single-threaded: libedit's state is global, so one Console is active at a
// time and every call comes from the thread that polls fd().
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace iridium::shell {

class Console {
 public:
  // Called once per complete line; std::nullopt means end of input. On a
  // terminal, end of input is Ctrl-D on an empty line: unless the handler
  // calls stop(), the console shows a fresh prompt and keeps reading.
  using LineHandler = std::function<void(std::optional<std::string>)>;
  // The full words that may replace the last word (after the last space or
  // tab) of the line before the cursor; see completion.h.
  using Completer = std::function<std::vector<std::string>(std::string_view line_before_cursor)>;

  // interactive: fd is a terminal (see above); libedit reads it then.
  Console(int fd, bool interactive, std::string history_path, LineHandler handler);
  ~Console();
  Console(const Console&) = delete;
  Console& operator=(const Console&) = delete;

  int fd() const { return fd_; }
  bool interactive() const { return interactive_; }

  // Set before start(); without one, Tab completes file names.
  void set_completer(Completer completer) { completer_ = std::move(completer); }
  // Shows the prompt and starts reading.
  void start(const std::string& prompt);
  // The prompt for the next line. Call it from the line handler.
  void set_prompt(const std::string& prompt);
  // Reads what is available and calls the handler for each finished line.
  void on_readable();
  // Ctrl-C at the prompt: on a terminal, drops the half-typed line and shows
  // a fresh prompt, after note if one is given. Nothing to do otherwise.
  void interrupt(std::string_view note = {});
  // Restores the terminal and saves history; no more lines are delivered.
  void stop();

  // Writes text to stdout in a way that keeps the terminal tidy.
  static void write(std::string_view text);

 private:
  void deliver(std::optional<std::string> line);

  int fd_;
  bool interactive_;
  bool active_ = false;
  std::string history_path_;
  LineHandler handler_;
  Completer completer_;
  std::string pending_;  // partial line in plain mode
  std::string prompt_;
};

}  // namespace iridium::shell
