#include "app/metrics.h"

#include <CivetServer.h>
#include <arpa/inet.h>
#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>
#include <spdlog/spdlog.h>

#include <exception>
#include <limits>
#include <utility>

namespace iridium::app {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

MetricFamily family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

void add_counter(MetricFamily& f, uint64_t value, Labels labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = static_cast<double>(value);
  f.metric.push_back(std::move(m));
}

void add_gauge(MetricFamily& f, uint64_t value, Labels labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = static_cast<double>(value);
  f.metric.push_back(std::move(m));
}

// One counter family with a `type` label for every message type, zeros too,
// so that each series exists from the first scrape.
MetricFamily by_type(std::string name, std::string help, const cluster::Counters::ByType& counts) {
  MetricFamily f = family(std::move(name), std::move(help), MetricType::Counter);
  for (std::size_t i = 0; i < counts.size(); ++i) {
    add_counter(f, counts[i],
                {{"type", std::string(cluster::message_type_name(cluster::message_type_at(i)))}});
  }
  return f;
}

double seconds(cluster::Millis d) {
  return static_cast<double>(d.count()) / 1000.0;
}

MetricFamily detection_histogram(const cluster::DetectionHistogram& h) {
  MetricFamily f = family("iridium_cluster_detection_seconds",
                          "How long a member had been silent (no direct frame) when this node "
                          "declared it dead: the failure detector's latency",
                          MetricType::Histogram);
  ClientMetric m;
  m.histogram.sample_count = h.count;
  m.histogram.sample_sum = seconds(h.sum);
  uint64_t cumulative = 0;
  for (std::size_t i = 0; i < h.kBounds.size(); ++i) {
    cumulative += h.in_bucket[i];
    m.histogram.bucket.push_back({cumulative, seconds(h.kBounds[i])});
  }
  // The +Inf bucket holds every observation.
  m.histogram.bucket.push_back({h.count, std::numeric_limits<double>::infinity()});
  f.metric.push_back(std::move(m));
  return f;
}

void add_cluster_families(const cluster::Snapshot& s, std::vector<MetricFamily>& out) {
  const cluster::Counters& c = s.counters;
  uint64_t alive = 0, suspect = 0;
  for (const cluster::MemberInfo& m : s.members) ++(m.state == "suspect" ? suspect : alive);
  MetricFamily members =
      family("iridium_cluster_members", "Other nodes this node counts as members, by state",
             MetricType::Gauge);
  add_gauge(members, alive, {{"state", "alive"}});
  add_gauge(members, suspect, {{"state", "suspect"}});
  out.push_back(std::move(members));

  out.push_back(by_type("iridium_cluster_frames_sent_total",
                        "Cluster frames this node sent, by message type", c.sent_by_type));
  out.push_back(by_type("iridium_cluster_frames_received_total",
                        "Cluster frames this node received and decoded, by message type",
                        c.received_by_type));
  MetricFamily dropped =
      family("iridium_cluster_frames_dropped_total",
             "Cluster frames dropped: malformed (did not decode; type unknown) or rejected by a "
             "membership rule (by message type)",
             MetricType::Counter);
  add_counter(dropped, c.dropped_malformed, {{"reason", "malformed"}, {"type", "unknown"}});
  for (std::size_t i = 0; i < c.dropped_by_type.size(); ++i) {
    add_counter(dropped, c.dropped_by_type[i],
                {{"reason", "rejected"},
                 {"type", std::string(cluster::message_type_name(cluster::message_type_at(i)))}});
  }
  out.push_back(std::move(dropped));

  struct Plain {
    const char* name;
    const char* help;
    uint64_t value;
  };
  const Plain plain[] = {
      {"iridium_cluster_joins_total", "Nodes that became members (new, or a restarted instance)",
       c.joins},
      {"iridium_cluster_leaves_total", "Members dropped because they said leave", c.leaves},
      {"iridium_cluster_suspicions_total",
       "Members suspected: a probe (ours or another member's) went unanswered", c.suspicions},
      {"iridium_cluster_recoveries_total",
       "Suspects that refuted the suspicion, and lost members heard again", c.recoveries},
      {"iridium_cluster_probes_total", "SWIM probes this node started (one per probe period)",
       c.probes},
      {"iridium_cluster_probes_failed_total",
       "Probes that ended with no ack, direct or through helpers", c.probes_failed},
      {"iridium_cluster_probes_void_total",
       "Probes of a member listed moments ago that went unanswered: it may still be connecting",
       c.probes_void},
      {"iridium_cluster_refutations_total",
       "Times this node raised its incarnation to refute a suspicion of itself", c.refutations},
      {"iridium_cluster_late_ticks_total",
       "Membership ticks over 100 ms late: a starved host; each slows this node's probing",
       c.late_ticks},
      {"iridium_cluster_updates_sent_total", "Membership updates piggybacked on outgoing frames",
       c.updates_sent},
      {"iridium_cluster_refused_total", "Hellos and joins this node refused (duplicate alias)",
       c.refused},
      {"iridium_cluster_frames_other_cluster_total",
       "Cluster frames from nodes of another cluster (another --cluster-name), ignored unread",
       c.dropped_other_cluster},
  };
  for (const Plain& p : plain) {
    MetricFamily f = family(p.name, p.help, MetricType::Counter);
    add_counter(f, p.value);
    out.push_back(std::move(f));
  }
  MetricFamily deaths = family("iridium_cluster_deaths_total",
                               "Members declared dead: our suspicion timed out (silent), "
                               "their connection was refused, or another member said so",
                               MetricType::Counter);
  add_counter(deaths, c.deaths_silent, {{"cause", "silent"}});
  add_counter(deaths, c.deaths_refused, {{"cause", "refused"}});
  add_counter(deaths, c.deaths_reported, {{"cause", "reported"}});
  out.push_back(std::move(deaths));
  out.push_back(detection_histogram(c.detection));
}

// civetweb reports why it could not listen only through its log callback,
// on the thread that starts the server.
thread_local std::string* start_log = nullptr;

int log_civetweb(const mg_connection*, const char* message) {
  if (start_log != nullptr) {
    if (start_log->empty()) *start_log = message;  // the first says why; the rest follow from it
  } else {
    spdlog::debug("metrics: {}", message);
  }
  return 1;  // handled: civetweb prints nothing itself
}

// civetweb says "cannot bind to HOST:PORT: 98 (Address already in use)":
// the part in parentheses is the reason, as the other listeners give it.
std::string bind_reason(const std::string& log) {
  const auto open = log.rfind('(');
  if (log.rfind("cannot bind", 0) != 0 || open == std::string::npos || log.back() != ')')
    return log;
  return log.substr(open + 1, log.size() - open - 2);
}

bool is_ip_address(const std::string& host) {
  in6_addr buffer{};
  return inet_pton(AF_INET, host.c_str(), &buffer) == 1 ||
         inet_pton(AF_INET6, host.c_str(), &buffer) == 1;
}

}  // namespace

std::vector<MetricFamily> metric_families(const MetricsInput& input) {
  std::vector<MetricFamily> out;
  if (input.cluster.started) add_cluster_families(input.cluster, out);
  if (input.remote_sessions) {
    MetricFamily f = family("iridium_remote_sessions",
                            "Open remote shell sessions (iridium attach)", MetricType::Gauge);
    add_gauge(f, *input.remote_sessions);
    out.push_back(std::move(f));
  }
  MetricFamily jobs =
      family("iridium_vm_jobs",
             "VM jobs the node keeps (queued, running and the newest finished) by state",
             MetricType::Gauge);
  for (std::size_t i = 0; i < input.jobs.by_state.size(); ++i) {
    add_gauge(jobs, input.jobs.by_state[i],
              {{"state", std::string(shell::job_state_name(static_cast<shell::JobState>(i)))}});
  }
  out.push_back(std::move(jobs));
  MetricFamily total = family("iridium_vm_jobs_total", "VM jobs submitted since the node started",
                              MetricType::Counter);
  add_counter(total, input.jobs.submitted);
  out.push_back(std::move(total));
  MetricFamily dropped =
      family("iridium_vm_jobs_dropped_total",
             "Finished VM jobs dropped to keep the newest within the bound", MetricType::Counter);
  add_counter(dropped, input.jobs.dropped);
  out.push_back(std::move(dropped));
  return out;
}

class MetricsServer::Collector : public prometheus::Collectable {
 public:
  explicit Collector(Reader read) : read_(std::move(read)) {}
  std::vector<MetricFamily> Collect() const override { return metric_families(read_()); }

 private:
  Reader read_;
};

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const std::string& host, uint16_t port,
                                                            Reader read) {
  const std::string shown = host + ":" + std::to_string(port);
  const std::string listen =
      (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  if (!is_ip_address(host)) {
    return Error{"cannot serve metrics on " + shown +
                     ": the metrics host must be an IP address (such as 127.0.0.1 or 0.0.0.0)",
                 ErrorKind::kInvalid};
  }
  std::unique_ptr<MetricsServer> server(new MetricsServer());
  CivetCallbacks callbacks;
  callbacks.log_message = log_civetweb;
  std::string why;
  start_log = &why;
  try {
    server->exposer_ = std::make_unique<prometheus::Exposer>(
        std::vector<std::string>{"listening_ports", listen, "num_threads", "2"}, &callbacks);
  } catch (const std::exception& e) {
    start_log = nullptr;
    return Error{
        "cannot serve metrics on " + shown + ": " + (why.empty() ? e.what() : bind_reason(why)),
        ErrorKind::kIo};
  }
  start_log = nullptr;
  server->collector_ = std::make_shared<Collector>(std::move(read));
  server->exposer_->RegisterCollectable(server->collector_, "/metrics");
  const std::vector<int> ports = server->exposer_->GetListeningPorts();
  server->endpoint_ = host + ":" + std::to_string(ports.empty() ? port : ports.front());
  return server;
}

MetricsServer::~MetricsServer() = default;

}  // namespace iridium::app
