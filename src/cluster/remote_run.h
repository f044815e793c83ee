// Remote runs (!run_on, !run_all): what a run is as the cluster library sees
// it. The library moves images and results between members; it never looks
// inside an image. Running one is the app's business, through RunExecutor,
// so that the cluster library does not depend on the VM or the shell.
//
// Thread-safety: the types are plain values. A RunExecutor is called by the
// node's I/O thread only (start, cancel); its RunDone callbacks may be called
// from any thread, once per started job.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cluster/protocol.h"
#include "common/result.h"

namespace iridium::cluster {

// How a run ended, on the node that ran it (or why it never ran there).
struct RunOutcome {
  RunStatus status = RunStatus::kEnded;
  std::string code;    // kRefused: kRefusedPoolFull, ...
  std::string error;   // for people; "" when it halted or ended
  std::string output;  // what the program printed, at most kMaxRunOutputBytes
  bool truncated = false;
  std::vector<IntRegister> registers;  // the non-zero ones (a fresh VM starts at zero)
  std::vector<FloatRegister> float_registers;
  uint64_t job = 0;  // the runner's job id (0: it never became a job)
  uint64_t elapsed_ms = 0;
};

// What a member asked this node to run.
struct RunRequest {
  std::string origin;  // the requester's alias (this node's own for a local run)
  std::string name;    // what to call the job
  std::string image;   // the image's bytes, unverified
};

using RunDone = std::function<void(RunOutcome)>;

class RunExecutor {
 public:
  virtual ~RunExecutor() = default;
  // Called on the I/O thread, so it must not block: verify the image, find
  // a free worker, queue the job. Returns the job id, or why not: an error
  // of kind kInvalid (the image is bad), kUnavailable (every worker is busy)
  // or another (refused as "unavailable"). `done` is called once when the
  // started job finishes, from any thread, with outcome.job set.
  virtual Result<uint64_t> start(RunRequest request, RunDone done) = 0;
  // Asks a started job to stop; its `done` then reports kCancelled (or how
  // it ended, if it ended first). Must not block.
  virtual void cancel(uint64_t job) = 0;
};

// One target's answer to Node::run(), in the order the targets were given.
struct RunReply {
  std::string alias;
  // The target's outcome (which may itself be a refusal or a runtime error),
  // or why there is none: not a member, died or left, no answer in time,
  // cancelled before it answered.
  Result<RunOutcome> result = Error{"no answer yet", ErrorKind::kUnreachable};
};

struct RunWait {
  std::chrono::milliseconds timeout{20'000};  // for every answer, from the start
  // Polled while waiting (every 20 ms); true cancels every run still going.
  std::function<bool()> cancelled;
};

// How long a target has to say run_accepted before the run counts as lost
// (an older node that drops the unknown type, or a frame that did not go).
inline constexpr std::chrono::milliseconds kRunAcceptTimeout{3'000};
// After a cancel, how long a target has to confirm with its run_result.
inline constexpr std::chrono::milliseconds kRunCancelGrace{2'000};

}  // namespace iridium::cluster
