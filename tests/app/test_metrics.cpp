// The metrics mapping (app/metrics.h): a Membership driven on a fake clock
// gives a snapshot, and metric_families() must serve exactly its counts.
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <catch2/catch.hpp>
#include <cmath>

#include "app/metrics.h"
#include "cluster/membership.h"
#include "cluster/node.h"

using namespace iridium::cluster;
using iridium::app::metric_families;
using iridium::app::MetricsInput;
using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

namespace {

const TimePoint kStart = TimePoint{} + std::chrono::hours(1);

Message from(const NodeAddress& who, MessageType type) {
  Message m;
  m.type = type;
  m.sender = who;
  m.instance = who.alias + "-1";
  return m;
}

const MetricFamily* find(const std::vector<MetricFamily>& families, const std::string& name) {
  for (const MetricFamily& f : families) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

bool has_label(const ClientMetric& m, const std::string& name, const std::string& value) {
  for (const auto& label : m.label) {
    if (label.name == name && label.value == value) return true;
  }
  return false;
}

// The one metric of the family with that label (name=value), or fails.
const ClientMetric& metric(const std::vector<MetricFamily>& families, const std::string& name,
                           const std::string& label = "", const std::string& value = "") {
  const MetricFamily* f = find(families, name);
  INFO(name);
  REQUIRE(f != nullptr);
  CHECK_FALSE(f->help.empty());
  const ClientMetric* found = nullptr;
  for (const ClientMetric& m : f->metric) {
    if (label.empty() || has_label(m, label, value)) {
      REQUIRE(found == nullptr);
      found = &m;
    }
  }
  INFO(label << "=" << value);
  REQUIRE(found != nullptr);
  return *found;
}

// "me" with members a and b; a answers every ping (and beats every 100 ms),
// b answers nothing: suspected after its first probe, dead after the
// suspicion's timeout. The random seed (1) puts b first in the probe order,
// which the exact frame counts below rely on. connect_grace is 0, so that
// b's first unanswered probe already fails (a member listed moments ago is
// otherwise given time to connect).
Timers no_connect_grace() {
  Timers t;
  t.connect_grace = Millis(0);
  return t;
}

struct Driven {
  Membership m{
      MembershipConfig{NodeAddress{"me", "127.0.0.1", 1000}, "me-1", no_connect_grace(), 1},
      kStart};
  TimePoint now = kStart;
  NodeAddress a{"a", "127.0.0.1", 2001};
  NodeAddress b{"b", "127.0.0.1", 2002};

  Driven() {
    m.receive(from(a, MessageType::kHello), Source::from_router("rid-a"), now);
    m.receive(from(b, MessageType::kHello), Source::from_router("rid-b"), now);
  }
  void run(Millis d) {
    for (const TimePoint end = now + d; now < end;) {
      now += Millis(10);
      if ((now - kStart) % Millis(100) == Millis(0))
        m.receive(from(a, MessageType::kHeartbeat), Source::from_router("rid-a"), now);
      m.tick(now);
      for (const Action& action : m.take_actions()) {
        const auto* s = std::get_if<SendTo>(&action);
        if (s == nullptr || s->message.type != MessageType::kPing || s->to.port != a.port) continue;
        Message ack = from(a, MessageType::kAck);
        ack.seq = s->message.seq;
        m.receive(ack, Source::from_dealer(s->to), now);
      }
      (void)m.take_actions();
      (void)m.take_events();
    }
  }
};

// The suspicion timeout's floor for N nodes (config.h), in seconds.
double suspicion_floor_seconds(std::size_t n) {
  const Timers t;
  return std::chrono::duration<double>(t.probe_period).count() * t.suspicion_mult *
         std::log10(static_cast<double>(n) + 1.0);
}

}  // namespace

TEST_CASE("metrics: members by state and frames by type come from the snapshot", "[metrics]") {
  Driven d;
  // b is probed first: unanswered by the end of the second probe period,
  // suspect, not yet dead; a is probed in the second.
  const Millis period = Timers{}.probe_period;
  const Millis ran = 2 * period + Millis(100);
  d.run(ran);
  const MetricsInput input{snapshot_of(d.m, d.now), std::nullopt, {}};
  const auto families = metric_families(input);

  CHECK(find(families, "iridium_cluster_members")->type == MetricType::Gauge);
  CHECK(metric(families, "iridium_cluster_members", "state", "alive").gauge.value == 1);
  CHECK(metric(families, "iridium_cluster_members", "state", "suspect").gauge.value == 1);

  const Counters& c = d.m.counters();
  for (std::size_t i = 0; i < kMessageTypeCount; ++i) {
    const std::string type(message_type_name(message_type_at(i)));
    CHECK(metric(families, "iridium_cluster_frames_sent_total", "type", type).counter.value ==
          static_cast<double>(c.sent_by_type[i]));
    CHECK(metric(families, "iridium_cluster_frames_received_total", "type", type).counter.value ==
          static_cast<double>(c.received_by_type[i]));
  }
  // One heartbeat to each newcomer; a ping each probe period (b, then a),
  // a ping_req for b after the probe timeout, the one ack from a.
  CHECK(metric(families, "iridium_cluster_frames_sent_total", "type", "heartbeat").counter.value ==
        2);
  CHECK(metric(families, "iridium_cluster_frames_sent_total", "type", "ping").counter.value == 2);
  CHECK(metric(families, "iridium_cluster_frames_sent_total", "type", "ping_req").counter.value ==
        1);
  CHECK(metric(families, "iridium_cluster_frames_received_total", "type", "ack").counter.value ==
        1);
  CHECK(metric(families, "iridium_cluster_frames_received_total", "type", "hello").counter.value ==
        2);
  CHECK(metric(families, "iridium_cluster_frames_received_total", "type", "heartbeat")
            .counter.value == static_cast<double>(ran / Millis(100)));  // a beats every 100 ms
  CHECK(find(families, "iridium_cluster_frames_sent_total")->type == MetricType::Counter);
  CHECK(metric(families, "iridium_cluster_suspicions_total").counter.value == 1);
  CHECK(metric(families, "iridium_cluster_joins_total").counter.value == 2);
  // No remote shell server: no sessions gauge rather than a made-up zero.
  CHECK(find(families, "iridium_remote_sessions") == nullptr);
}

TEST_CASE("metrics: deaths by cause, dropped frames and the detection histogram", "[metrics]") {
  Driven d;
  d.run(Millis(2500));  // b dies of its suspicion's timeout
  d.m.frame_dropped(iridium::Error{"bad msgpack", iridium::ErrorKind::kInvalid});
  Message stray = from(d.a, MessageType::kAck);
  stray.seq = 99;
  d.m.receive(stray, Source::from_router("rid-a"), d.now);  // an ack on the listener: rejected
  Message stranger = from(NodeAddress{"x", "127.0.0.1", 3001}, MessageType::kHello);
  stranger.cluster = "elsewhere";
  d.m.receive(stranger, Source::from_router("rid-x"), d.now);  // another cluster: ignored
  d.m.receive(stranger, Source::from_router("rid-x"), d.now);
  const auto families = metric_families(MetricsInput{snapshot_of(d.m, d.now), 0, {}});

  CHECK(metric(families, "iridium_cluster_members", "state", "alive").gauge.value == 1);
  CHECK(metric(families, "iridium_cluster_members", "state", "suspect").gauge.value == 0);
  CHECK(metric(families, "iridium_cluster_deaths_total", "cause", "silent").counter.value == 1);
  CHECK(metric(families, "iridium_cluster_deaths_total", "cause", "refused").counter.value == 0);
  CHECK(metric(families, "iridium_cluster_frames_dropped_total", "reason", "malformed")
            .counter.value == 1);
  const MetricFamily* dropped = find(families, "iridium_cluster_frames_dropped_total");
  double rejected_ack = 0, rejected_other = 0;
  for (const ClientMetric& m : dropped->metric) {
    if (!has_label(m, "reason", "rejected")) continue;
    (has_label(m, "type", "ack") ? rejected_ack : rejected_other) += m.counter.value;
  }
  CHECK(rejected_ack == 1);
  CHECK(rejected_other == 0);
  // Another cluster's frames are neither received nor dropped: counted on their own.
  CHECK(metric(families, "iridium_cluster_frames_other_cluster_total").counter.value == 2);
  CHECK(metric(families, "iridium_cluster_frames_received_total", "type", "hello").counter.value ==
        2);

  const MetricFamily* detection = find(families, "iridium_cluster_detection_seconds");
  REQUIRE(detection != nullptr);
  CHECK(detection->type == MetricType::Histogram);
  REQUIRE(detection->metric.size() == 1);
  const auto& h = detection->metric[0].histogram;
  CHECK(h.sample_count == 1);
  const double silent = static_cast<double>(d.m.counters().detection.sum.count()) / 1000.0;
  CHECK(h.sample_sum == Approx(silent));
  CHECK(silent >= suspicion_floor_seconds(3));  // never before the suspicion's floor
  REQUIRE(h.bucket.size() == DetectionHistogram::kBounds.size() + 1);
  uint64_t previous = 0;
  for (const auto& bucket : h.bucket) {
    CHECK(bucket.cumulative_count >= previous);  // cumulative, as Prometheus reads it
    CHECK(bucket.cumulative_count == (bucket.upper_bound >= silent ? 1u : 0u));
    previous = bucket.cumulative_count;
  }
  CHECK(std::isinf(h.bucket.back().upper_bound));
  CHECK(metric(families, "iridium_remote_sessions").gauge.value == 0);
}

TEST_CASE("metrics: VM jobs by state, and no cluster families before the cluster starts",
          "[metrics]") {
  MetricsInput input;
  input.remote_sessions = 3;
  input.jobs.by_state[static_cast<std::size_t>(iridium::shell::JobState::kRunning)] = 2;
  input.jobs.by_state[static_cast<std::size_t>(iridium::shell::JobState::kHalted)] = 5;
  input.jobs.submitted = 7;
  input.jobs.dropped = 4;
  const auto families = metric_families(input);
  CHECK(find(families, "iridium_cluster_members") == nullptr);
  CHECK(find(families, "iridium_cluster_frames_sent_total") == nullptr);
  CHECK(metric(families, "iridium_remote_sessions").gauge.value == 3);
  CHECK(metric(families, "iridium_vm_jobs", "state", "running").gauge.value == 2);
  CHECK(metric(families, "iridium_vm_jobs", "state", "halted").gauge.value == 5);
  CHECK(metric(families, "iridium_vm_jobs", "state", "queued").gauge.value == 0);
  CHECK(find(families, "iridium_vm_jobs")->metric.size() == iridium::shell::kJobStateCount);
  CHECK(metric(families, "iridium_vm_jobs_total").counter.value == 7);
  CHECK(metric(families, "iridium_vm_jobs_dropped_total").counter.value == 4);
}

TEST_CASE("metrics: the text format names every family with HELP and TYPE", "[metrics]") {
  Driven d;
  d.run(Millis(300));
  MetricsInput input{snapshot_of(d.m, d.now), 1, {}};
  const auto families = metric_families(input);
  const std::string text = prometheus::TextSerializer().Serialize(families);
  for (const MetricFamily& f : families) {
    INFO(f.name);
    CHECK(f.name.rfind("iridium_", 0) == 0);
    CHECK(text.find("# HELP " + f.name + " ") != std::string::npos);
    CHECK(text.find("# TYPE " + f.name + " ") != std::string::npos);
  }
  CHECK(text.find("iridium_cluster_members{state=\"alive\"} 2\n") != std::string::npos);
  CHECK(text.find("iridium_cluster_frames_received_total{type=\"hello\"} 2\n") !=
        std::string::npos);
  CHECK(text.find("iridium_cluster_detection_seconds_bucket{le=\"+Inf\"} 0\n") !=
        std::string::npos);
  CHECK(text.find("iridium_remote_sessions 1\n") != std::string::npos);
}
