// How the shell shows the answers of !run_on and !run_all: one block per
// node for people, or JSON for scripts. Pure functions of RemoteRun values.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "shell/cluster_commands.h"

namespace iridium::shell {

// Per node: "[ALIAS] STATUS (job N, 0.004s)" (with the error or refusal),
// then its output, then its non-zero registers ("no registers changed" when
// none). With `summary`, a last line "N ok, M failed".
std::string run_results_text(const std::vector<RemoteRun>& runs, bool summary);
// {"results": [{"node", "ok", "status" (null without an answer), "code",
// "error", "failure", "job", "elapsed_ms", "output", "output_truncated",
// "registers": {"N": value} (non-zero only), "float_registers"}], "ok": N,
// "failed": M}. Absent facts are null.
nlohmann::json run_results_json(const std::vector<RemoteRun>& runs);

}  // namespace iridium::shell
