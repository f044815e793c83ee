// The node's Prometheus metrics (docs/metrics.md lists every one).
//
// Everything is read at scrape time from the parts that already keep it (the
// cluster node's snapshot, the worker pool, the remote shell server), so no
// state is duplicated here: a MetricsInput is one scrape's reading, and
// metric_families() maps it to Prometheus metric families, a pure function.
// MetricsServer serves them as text on /metrics with prometheus-cpp's
// Exposer (civetweb underneath).
//
// Thread-safety: metric_families() is pure. A MetricsServer's reader is
// called on civetweb's worker threads, possibly on two at once, so it must
// only take thread-safe paths (Node::snapshot, WorkerPool::counts and
// RemoteServer::session_count are). MetricsServer keeps no other state.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cluster/node.h"
#include "common/result.h"
#include "shell/worker_pool.h"

namespace prometheus {
class Exposer;
struct MetricFamily;
}  // namespace prometheus

namespace iridium::app {

struct MetricsInput {
  cluster::Snapshot cluster;                   // cluster families only when cluster.started
  std::optional<std::size_t> remote_sessions;  // unset: no remote shell server
  shell::JobCounts jobs;
};

std::vector<prometheus::MetricFamily> metric_families(const MetricsInput& input);

class MetricsServer {
 public:
  using Reader = std::function<MetricsInput()>;

  // Listens on HOST:PORT (errors: a bad host, a port in use or not allowed)
  // and serves /metrics until destroyed.
  static Result<std::unique_ptr<MetricsServer>> start(const std::string& host, uint16_t port,
                                                      Reader read);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  std::string endpoint() const { return endpoint_; }  // HOST:PORT it listens on

 private:
  class Collector;
  MetricsServer() = default;

  std::shared_ptr<Collector> collector_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::string endpoint_;
};

}  // namespace iridium::app
