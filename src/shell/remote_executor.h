// Runs remote-shell lines off the server's socket thread, so a long line of
// one session never holds up another session.
//
// Threads and ownership:
//   - submit() and take_done() are called by RemoteServer's socket thread
//     only; stop() by the thread that stops the server, after that socket
//     thread has ended.
//   - Executor threads are started on demand, at most `max_threads`, and
//     live until stop(). Each one takes a LineJob, which carries its
//     session's Shell (unique_ptr): while the line runs, that thread is the
//     only one that touches the Shell. The Shell goes back with the LineDone.
//   - `mutex_` guards jobs_, done_, idle_, stopping_ and threads_. Jobs and
//     finished lines cross threads only under it.
//   - Each executor thread owns one PUSH socket connected to `done_endpoint`
//     (an inproc:// PULL bound by the socket thread: one long-lived pipe).
//     After queueing a LineDone it sends an empty frame on it, which wakes
//     the socket thread's poll; the socket thread then calls take_done().
//     (The Shell itself does not travel through libzmq: libzmq's inproc
//     queues are lock-free and invisible to ThreadSanitizer, so the hand-over
//     is under mutex_, where it is visible.)
#pragma once

#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "shell/remote_protocol.h"
#include "shell/shell.h"

namespace iridium::shell {

struct LineJob {
  uint64_t session = 0;
  std::string line;
  std::unique_ptr<Shell> shell;
};

struct LineDone {
  uint64_t session = 0;
  std::unique_ptr<Shell> shell;
  remote::Response response;
};

// What a line's answer is: notices of jobs that finished before it, its own
// output, then notices of jobs that finished while it ran (e.g. the one it
// spawned).
inline remote::Response run_line(Shell& shell, const std::string& line);

class LineExecutor {
 public:
  LineExecutor(zmq::context_t& context, std::string done_endpoint, std::size_t max_threads);
  ~LineExecutor();  // stop()
  LineExecutor(const LineExecutor&) = delete;
  LineExecutor& operator=(const LineExecutor&) = delete;

  // Queues the line; starts a thread when none is idle and fewer than
  // max_threads exist. Never blocks on a running line.
  void submit(LineJob job);
  // Lines that finished since the last call, in the order they finished.
  std::vector<LineDone> take_done();
  // Lets running lines finish (an interrupted line ends at its next slice,
  // any other at its step limit), drops queued ones, and joins every thread.
  void stop();

  std::size_t threads() const;

 private:
  void work();

  zmq::context_t& context_;
  std::string done_endpoint_;
  std::size_t max_threads_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<LineJob> jobs_;
  std::vector<LineDone> done_;
  std::size_t idle_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// Header-only, so that src/shell/CMakeLists.txt needs no new source file.

inline remote::Response run_line(Shell& shell, const std::string& line) {
  std::string text = shell.job_notices();
  Reply result = shell.execute(line);
  text += result.output + shell.job_notices();
  remote::Response response;
  response.type = remote::Response::Type::kResult;
  response.text = std::move(text);
  response.ok = result.ok;
  response.quit = result.quit;
  response.ask = std::move(result.ask);
  return response;
}

inline LineExecutor::LineExecutor(zmq::context_t& context, std::string done_endpoint,
                                  std::size_t max_threads)
    : context_(context),
      done_endpoint_(std::move(done_endpoint)),
      max_threads_(std::max<std::size_t>(1, max_threads)) {}

inline LineExecutor::~LineExecutor() {
  stop();
}

inline void LineExecutor::submit(LineJob job) {
  std::lock_guard lock(mutex_);
  if (stopping_) return;  // the Shell goes with the job
  jobs_.push_back(std::move(job));
  if (idle_ < jobs_.size() && threads_.size() < max_threads_) {
    threads_.emplace_back([this] { work(); });
  }
  wake_.notify_one();
}

inline std::vector<LineDone> LineExecutor::take_done() {
  std::lock_guard lock(mutex_);
  return std::exchange(done_, {});
}

inline std::size_t LineExecutor::threads() const {
  std::lock_guard lock(mutex_);
  return threads_.size();
}

inline void LineExecutor::stop() {
  std::vector<std::thread> threads;
  std::deque<LineJob> dropped;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    threads.swap(threads_);
    dropped.swap(jobs_);
  }
  wake_.notify_all();
  for (std::thread& t : threads) t.join();
  std::lock_guard lock(mutex_);
  done_.clear();
}

inline void LineExecutor::work() {
  // This thread's end of the pipe to the socket thread.
  zmq::socket_t push;
  try {
    push = zmq::socket_t(context_, zmq::socket_type::push);
    push.set(zmq::sockopt::linger, 0);
    push.connect(done_endpoint_);
  } catch (const zmq::error_t& e) {
    // The socket thread also looks for finished lines on every tick.
    spdlog::error("remote shell: executor pipe: {}", e.what());
  }
  std::unique_lock lock(mutex_);
  while (true) {
    ++idle_;
    wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
    --idle_;
    if (stopping_) break;
    LineJob job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    LineDone done{job.session, std::move(job.shell), {}};
    done.response = run_line(*done.shell, job.line);
    lock.lock();
    if (stopping_) break;  // nobody reads the pipe any more
    done_.push_back(std::move(done));
    // The wake-up. If it cannot go (the pipe is full of earlier wake-ups the
    // socket thread has not read yet), that thread will take this line too.
    try {
      if (push) (void)push.send(zmq::message_t(), zmq::send_flags::dontwait);
    } catch (const zmq::error_t& e) {
      spdlog::error("remote shell: cannot wake the server: {}", e.what());
    }
  }
  lock.unlock();
  push.close();
}

}  // namespace iridium::shell
