// What a shell needs from the node's cluster. The app wires the real cluster
// node in; the shell itself does not depend on the cluster library.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/result.h"
#include "vm/machine.h"

namespace iridium::shell {

// One node's answer to !run_on or !run_all.
struct RemoteRun {
  std::string node;     // its alias
  std::string failure;  // set: no answer came, and why; nothing below is set
  std::string status;   // halted, ended, error, cancelled or refused
  std::string code;     // refused: pool_full, bad_image, too_big or unavailable
  std::string error;    // the runtime error or the refusal, for people
  std::string output;   // what the program printed there
  bool output_truncated = false;
  vm::MachineState registers;  // the registers it left (heap and stack are not sent)
  uint64_t job = 0;            // its job id on that node (0: it never became one)
  uint64_t elapsed_ms = 0;

  bool ok() const { return failure.empty() && (status == "halted" || status == "ended"); }
};

struct RemoteRunWait {
  std::chrono::milliseconds timeout{20'000};
  std::function<bool()> interrupted;  // polled while waiting; true cancels the runs
};

// One key of the node's cluster keyring, as !cluster_keys shows it.
struct ClusterKey {
  std::string fingerprint;  // the first characters of the public key
  std::string path;         // the file it was installed (or started) from
  bool primary = false;
};

// What !cluster_keys install, use or remove did.
struct ClusterKeyChange {
  ClusterKey key;
  bool already = false;  // nothing to do: installed already, or primary already
};

class ClusterCommands {
 public:
  virtual ~ClusterCommands() = default;
  // Each returns the text to show the user, or an error to show instead.
  virtual Result<std::string> start_cluster() = 0;
  virtual Result<std::string> join_cluster(const std::string& host, uint16_t port) = 0;
  virtual Result<std::string> members(bool as_json) = 0;
  // Runs an image on `nodes` (empty: every member and this node) and waits
  // for their answers: one per node, in order (!run_all: sorted by alias).
  // An error when nothing could be sent (no cluster, image too large).
  virtual Result<std::vector<RemoteRun>> run(const std::vector<std::string>& nodes,
                                             const std::string& name,
                                             const std::vector<uint8_t>& image,
                                             const RemoteRunWait& wait) = 0;
  // The keyring (secure mode; an error in plain mode): data, worded by the shell.
  virtual Result<std::vector<ClusterKey>> keys() = 0;
  virtual Result<ClusterKeyChange> install_key(const std::string& path) = 0;
  virtual Result<ClusterKeyChange> use_key(const std::string& name) = 0;
  virtual Result<ClusterKeyChange> remove_key(const std::string& name) = 0;
};

}  // namespace iridium::shell
