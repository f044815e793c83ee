// cluster_sim: random fault schedules over the simulated network, with
// invariants, and the scaling curve of the membership protocol.
//
//   cluster_sim --schedules 2000 [--first-seed 1] [--budget-seconds 240]
//   cluster_sim --seed 1234 --trace          replay one schedule, printing every step
//   cluster_sim --scale 8,16,32,64,128,256,512,1000
//   cluster_sim --scale 8,1000,10000 [--adopt]   over 1000 nodes (or all, with
//       --adopt) the cluster is started by adoption (Simulation::start_adopted)
//
// A schedule: 3 to 8 nodes join (each through a random earlier node), then
// faults for about 10 s (or, one schedule in six, a cluster-key rotation of
// every node in random order), then the network heals and paused nodes
// resume.
// Invariants: the bootstrap converges; no refused frame changes a view; on a
// network that only loses and duplicates frames, and during a key
// rotation, no live node is ever dropped; after the faults stop every live node lists exactly the
// live set within converge_bound(N), and it stays so.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "sim/simulation.h"

using iridium::cluster::Endpoint;
using iridium::cluster::Message;
using iridium::cluster::MessageType;
using iridium::cluster::Millis;
using iridium::cluster::NodeAddress;
using iridium::sim::Simulation;

namespace {

constexpr Millis kBootstrapBound{3000};

// How long after the faults stop every live node must list exactly the live
// set, for n nodes: 5 s for lost members to be probed back and changes to
// spread, plus a whole probe round (a member admitted on a spoofed frame is
// probed in its turn) and the longest suspicion a lone accuser runs.
Millis converge_bound(int n, const iridium::cluster::Timers& t) {
  const double ceiling = t.suspicion_max_mult * t.suspicion_mult *
                         std::log10(static_cast<double>(n) + 1.0) *
                         static_cast<double>(t.probe_period.count());
  return Millis(5000) + t.probe_period * n + Millis(static_cast<int64_t>(ceiling));
}
constexpr Millis kStayConverged{3000};  // and stays so this long after

struct Outcome {
  bool ok = true;
  std::string failure;
  double converge_seconds = 0;  // after the faults stopped
  std::string family;
};

std::vector<int> running_hosts(const Simulation& sim, int hosts) {
  std::vector<int> out;
  for (int h = 0; h < hosts; ++h) {
    if (sim.running(h)) out.push_back(h);
  }
  return out;
}

Outcome run_schedule(uint64_t seed, bool trace) {
  std::mt19937_64 rng(seed);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  Outcome out;
  const int hosts = pick(3, 8);
  const bool noisy = pick(0, 4) == 0;
  out.family = noisy ? "lossy network" : "faults";
  Simulation::Options options;
  options.seed = seed;
  options.trace = trace;
  options.latency_max = Millis(pick(1, 5));
  Simulation sim(options);
  auto fail = [&](std::string why) {
    out.ok = false;
    out.failure = std::move(why);
    return out;
  };

  // Bootstrap: each node joins through a random node started before it.
  sim.start(0, 2254, {});
  for (int h = 1; h < hosts; ++h) {
    sim.run_for(Millis(pick(0, 60)));
    sim.start(h, 2254, {sim.endpoint(pick(0, h - 1))});
  }
  for (Millis waited{0};; waited += Millis(50)) {
    if (sim.converged()) break;
    if (waited >= kBootstrapBound) {
      std::string why;
      sim.converged(&why);
      return fail("the bootstrap did not converge within 3 s: " + why);
    }
    sim.run_for(Millis(50));
  }

  // One schedule in six of the others is a key rotation (its own draw, so
  // the other families' schedules are the same as without it).
  std::mt19937_64 family(seed * 0x9E3779B97F4A7C15ULL + 7);
  const bool rotation = !noisy && family() % 6 == 0;
  if (rotation) {
    // Every live node changes key (use), in random order, then drops the
    // old one (remove); one to three rotations in a row, over a network
    // that may lose frames. No live node may ever be dropped.
    out.family = "key rotation";
    sim.set_loss(pick(0, 1) == 0 ? 0.0 : 0.05);
    const int rotations = pick(1, 3);
    for (int r = 0; r < rotations; ++r) {
      for (const bool new_primary : {true, false}) {
        std::vector<int> order = running_hosts(sim, hosts);
        std::shuffle(order.begin(), order.end(), rng);
        for (int h : order) {
          sim.run_for(Millis(pick(0, 300)));
          sim.rekey(h, new_primary);
        }
      }
    }
    sim.run_for(Millis(3000));
    if (sim.false_deaths() > 0) {
      return fail(std::to_string(sim.false_deaths()) +
                  " live node(s) dropped during a key rotation");
    }
  } else if (noisy) {
    sim.set_loss(0.05);
    sim.set_duplication(0.01);
    sim.run_for(Millis(15000));
    if (sim.false_deaths() > 0) {
      return fail(std::to_string(sim.false_deaths()) +
                  " live node(s) dropped on a network that only loses 5 %");
    }
  } else {
    const int faults = pick(3, 12);
    for (int f = 0; f < faults; ++f) {
      sim.run_for(Millis(pick(100, 1500)));
      std::vector<int> live = running_hosts(sim, hosts);
      const int any = pick(0, hosts - 1);
      const int other = (any + pick(1, hosts - 1)) % hosts;
      const int live_one =
          live.empty() ? any
                       : live[static_cast<std::size_t>(pick(0, static_cast<int>(live.size()) - 1))];
      switch (pick(0, 13)) {
        case 0:
          if (live.size() > 1) sim.crash(live_one);
          break;
        case 1:
          if (live.size() > 1) sim.stop(live_one);
          break;
        case 2:
        case 3:
          if (!sim.running(any)) {
            // Same port, or a new one; joining a random node that may be dead.
            const uint16_t port = pick(0, 1) == 0 ? sim.endpoint(any).port
                                                  : static_cast<uint16_t>(2254 + pick(1, 50));
            sim.start(any, port, {sim.endpoint(other)});
          }
          break;
        case 4:
          if (sim.paused(any)) {
            sim.resume(any);
          } else {
            sim.pause(any);
          }
          break;
        case 5:
          sim.cut(any);
          break;
        case 6:
          sim.block(any, other);
          break;  // one way
        case 7:
          sim.block(any, other);  // a single link, both ways
          sim.block(other, any);
          break;
        case 8: {  // a partition in two
          std::vector<int> side;
          for (int h = 0; h < hosts; ++h) {
            if (pick(0, 1) == 0) side.push_back(h);
          }
          for (int a : side) {
            for (int b = 0; b < hosts; ++b) {
              if (std::find(side.begin(), side.end(), b) == side.end()) {
                sim.block(a, b);
                sim.block(b, a);
              }
            }
          }
          break;
        }
        case 9:
          sim.heal_all();
          break;
        case 10:
          sim.set_loss(pick(0, 1) == 0 ? 0.05 : 0.2);
          break;
        case 11:
          sim.set_duplication(0.05);
          break;
        case 12:
        case 13: {  // hostile frames: a duplicate alias, an impostor, a stranger's gossip,
                    // and a node of another cluster (a hello, and a leave in a member's name)
          // An alias the target lists: in plain mode (no cluster key) an
          // alias nobody lists is free for anyone to take.
          if (live.size() < 2) break;
          const int victim = live[0] == live_one ? live[1] : live[0];
          if (!sim.lists(live_one, sim.alias(victim))) break;
          Message m;
          m.sender = NodeAddress{sim.alias(victim), sim.host_name(victim), 4000};
          m.instance = "rogue" + std::to_string(pick(0, 999));
          m.type = pick(0, 1) == 0 ? MessageType::kHello : MessageType::kHeartbeat;
          sim.inject(live_one, m);
          Message gossip;
          gossip.type = MessageType::kMembers;
          gossip.sender = NodeAddress{"stranger", "h99", 2254};
          gossip.instance = "stranger1";
          gossip.nodes = {NodeAddress{"ghost", "h98", 2254}};
          sim.inject(live_one, gossip);
          Message outsider;
          outsider.type = MessageType::kHello;
          outsider.cluster = "elsewhere";
          outsider.sender = NodeAddress{"outsider", "h97", 2254};
          outsider.instance = "outsider1";
          sim.inject(live_one, outsider);
          outsider.type = MessageType::kLeave;  // the victim's own alias and instance
          const Endpoint at = sim.endpoint(victim);
          outsider.sender = NodeAddress{sim.alias(victim), at.host, at.port};
          outsider.instance = sim.instance(victim);
          sim.inject(live_one, outsider);
          break;
        }
      }
    }
    sim.run_for(Millis(pick(0, 1000)));
  }

  // The faults stop.
  sim.heal_all();
  for (int h = 0; h < hosts; ++h) sim.resume(h);
  // Watch from the moment the faults stop: the view must settle within
  // kConvergeBound and then stay settled, with no further deaths.
  std::string why;
  const Millis bound = converge_bound(hosts, options.timers);
  Millis last_unsettled{-1};
  uint64_t deaths_settled = sim.deaths();
  bool settled = false;
  for (Millis t{0}; t <= bound + kStayConverged; t += Millis(10)) {
    if (!sim.converged(&why)) {
      last_unsettled = t;
      settled = false;
      if (t > bound)
        return fail("not settled " + iridium::cluster::seconds_text(bound) +
                    " s after the faults stopped: " + why);
    } else if (!settled) {
      settled = true;
      deaths_settled = sim.deaths();
    }
    sim.run_for(Millis(10));
  }
  out.converge_seconds = static_cast<double>(last_unsettled.count() + 10) / 1000.0;
  if (sim.deaths() != deaths_settled)
    return fail("a node was dropped after the cluster had settled");
  if (!sim.violations().empty()) return fail(sim.violations().front());
  return out;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

int run_schedules(uint64_t first, uint64_t count, double budget_seconds) {
  const auto started = std::chrono::steady_clock::now();
  uint64_t passed = 0, failed = 0;
  std::vector<double> converge;
  std::map<std::string, uint64_t> families;
  for (uint64_t seed = first; seed < first + count; ++seed) {
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (budget_seconds > 0 && elapsed > budget_seconds) {
      std::printf("time budget of %.0f s used up after %llu schedules\n", budget_seconds,
                  static_cast<unsigned long long>(passed + failed));
      break;
    }
    const Outcome o = run_schedule(seed, false);
    ++families[o.family];
    if (o.ok) {
      ++passed;
      converge.push_back(o.converge_seconds);
    } else {
      ++failed;
      std::printf("FAILED seed %llu (%s): %s\n  replay: cluster_sim --seed %llu --trace\n",
                  static_cast<unsigned long long>(seed), o.family.c_str(), o.failure.c_str(),
                  static_cast<unsigned long long>(seed));
    }
  }
  std::printf("convergence after the faults stopped: median %.2f s, p99 %.2f s, max %.2f s\n",
              percentile(converge, 0.5), percentile(converge, 0.99), percentile(converge, 1.0));
  for (const auto& [family, n] : families) {
    std::printf("%s: %llu schedules\n", family.c_str(), static_cast<unsigned long long>(n));
  }
  std::printf("%llu passed, %llu failed\n", static_cast<unsigned long long>(passed),
              static_cast<unsigned long long>(failed));
  return failed == 0 && passed > 0 ? 0 : 1;
}

// Runs sim in `step`s until done() or `limit`; the simulated seconds taken.
template <typename Done>
double run_until(Done done, Simulation& sim, Millis limit, Millis step) {
  Millis t{0};
  while (!done() && t < limit) {
    sim.run_for(step);
    t += step;
  }
  return static_cast<double>(t.count()) / 1000.0;
}

// The scaling curve. Up to kJoinBurstMax nodes (and unless --adopt), N nodes
// join a random earlier node each, spread over 100 ms and all at once, and
// the full mesh is timed; larger clusters are started by adoption
// (Simulation::start_adopted: every node lists every other at once, as if
// the joins had long finished), since a join burst of N nodes costs O(N^2)
// updates. Then steady-state traffic per node, one more node joining the
// real way (hello, hello_ack and members pages), and a crash and a pause,
// each timed until every survivor dropped the victim.
constexpr int kJoinBurstMax = 1000;
constexpr Millis kSteadyWindow{10000};  // a whole push-pull period

// Starts n nodes, each joining a random node started before it, `spacing`
// apart; returns the simulated seconds from the last start to the full mesh.
double start_and_mesh(Simulation& sim, int n, std::chrono::microseconds spacing, uint64_t seed) {
  std::mt19937_64 rng(seed);
  sim.start(0, 2254, {});
  for (int h = 1; h < n; ++h) {
    sim.run_for(spacing);
    sim.start(h, 2254, {sim.endpoint(std::uniform_int_distribution<int>(0, h - 1)(rng))});
  }
  return run_until([&] { return sim.converged(); }, sim, Millis(30000), Millis(10));
}

struct ScaleRow {
  std::string spread = "–", at_once = "–";  // full mesh after a join burst (s)
  double frames = 0, bytes = 0;             // per node per second, steady state
  double joiner_lists_all = 0, all_list_joiner = 0;
  uint64_t list_frames = 0;
  std::size_t largest_list_frame = 0;
  double crash = 0, pause = 0;
  double peak_rss_mib = 0, wall = 0;
};

double peak_rss_mib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0;
}

std::string seconds(double s) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", s);
  return text;
}

// Per node per second over kSteadyWindow.
void measure_steady(Simulation& sim, int n, ScaleRow& row) {
  const auto before = sim.traffic();
  sim.run_for(kSteadyWindow);
  const double per_node =
      static_cast<double>(n) * static_cast<double>(kSteadyWindow.count()) / 1000.0;
  row.frames = static_cast<double>(sim.traffic().frames - before.frames) / per_node;
  row.bytes = static_cast<double>(sim.traffic().bytes - before.bytes) / per_node;
}

// Host n joins through host 0: until it lists all n, then until all list it.
void measure_join(Simulation& sim, int n, ScaleRow& row) {
  const auto before = sim.traffic();
  sim.start(n, 2254, {sim.endpoint(0)});
  const auto lists_all = [&] { return sim.member_count(n) == static_cast<std::size_t>(n); };
  row.joiner_lists_all = run_until(lists_all, sim, Millis(30000), Millis(10));
  row.all_list_joiner = run_until([&] { return sim.converged(); }, sim, Millis(60000), Millis(10));
  row.list_frames = sim.traffic().list_frames - before.list_frames;
  row.largest_list_frame = sim.traffic().largest_list_frame;
}

void measure_failures(Simulation& sim, int n, ScaleRow& row) {
  const auto dropped = [&](int victim) { return !sim.listed_by_any(victim); };
  sim.crash(n - 1);
  row.crash = run_until([&] { return dropped(n - 1); }, sim, Millis(20000), Millis(5));
  sim.pause(n - 2);
  row.pause = run_until([&] { return dropped(n - 2); }, sim, Millis(20000), Millis(5));
}

ScaleRow scale_row(int n, uint64_t seed, bool adopt) {
  const auto started = std::chrono::steady_clock::now();
  Simulation::Options options;
  options.seed = seed;
  options.count_bytes = true;
  options.latency_max = Millis(1);
  options.name_digits = 5;  // "n00007" at every N: the same frame sizes at 8 and 10,000
  // Coarser ticks keep large clusters affordable; they cost up to 40 ms of
  // detection resolution, which the pause column shows.
  options.tick_every = n > 100 ? Millis(50) : Millis(10);
  ScaleRow row;
  Simulation sim(options);
  if (adopt) {
    sim.start_adopted(n);
    sim.run_for(Millis(2000));
  } else {
    {
      Simulation burst(options);
      row.at_once = seconds(start_and_mesh(burst, n, std::chrono::microseconds(0), seed));
    }
    row.spread = seconds(start_and_mesh(sim, n, std::chrono::microseconds(100000 / n), seed));
    // The join updates of the bootstrap have used up their retransmit
    // budget (the larger the burst, the longer that takes).
    sim.run_for(std::max(Millis(10000), Millis(100) * n));
  }
  measure_steady(sim, n, row);
  measure_join(sim, n, row);
  measure_failures(sim, n, row);
  for (const std::string& v : sim.violations()) std::printf("violation: %s\n", v.c_str());
  row.peak_rss_mib = peak_rss_mib();
  row.wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return row;
}

int run_scale(const std::vector<int>& sizes, uint64_t seed, bool adopt_all) {
  std::printf(
      "| nodes | bootstrap | full mesh, starts over 100 ms (s) | full mesh, all at once (s) | "
      "frames / node / s | bytes / node / s | joiner lists all (s) | all list the joiner (s) | "
      "list frames during the join | largest list frame (B) | crash dropped by all (s) | "
      "pause dropped by all (s) | peak RSS (MiB) | wall (s) |\n"
      "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (int n : sizes) {
    const bool adopt = adopt_all || n > kJoinBurstMax;
    const ScaleRow r = scale_row(n, seed, adopt);
    std::printf(
        "| %d | %s | %s | %s | %.2f | %.0f | %.2f | %.2f | %llu | %zu | %.3f | %.3f | %.0f | %.0f "
        "|\n",
        n, adopt ? "adopted" : "joins", r.spread.c_str(), r.at_once.c_str(), r.frames, r.bytes,
        r.joiner_lists_all, r.all_list_joiner, static_cast<unsigned long long>(r.list_frames),
        r.largest_list_frame, r.crash, r.pause, r.peak_rss_mib, r.wall);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Membership simulator: seeded fault schedules with invariants, and the scaling curve"};
  uint64_t seed = 0, first = 1, count = 1000;
  double budget = 0;
  bool trace = false;
  std::string scale;
  app.add_option("--seed", seed, "Run one schedule");
  app.add_flag("--trace", trace, "Print every fault and membership event");
  app.add_option("--schedules", count, "How many schedules");
  app.add_option("--first-seed", first, "Seed of the first schedule");
  app.add_option("--budget-seconds", budget,
                 "Stop starting schedules after this long (0: no limit)");
  bool adopt = false;
  app.add_option("--scale", scale,
                 "Comma-separated cluster sizes for the scaling curve; sizes over 1000 are "
                 "started by adoption: every node lists every other at once, with no join "
                 "burst and with its connections standing (docs/scaling.md)");
  app.add_flag("--adopt", adopt, "With --scale: start every size by adoption");
  CLI11_PARSE(app, argc, argv);
  if (!scale.empty()) {
    std::vector<int> sizes;
    std::stringstream in(scale);
    for (std::string item; std::getline(in, item, ',');) sizes.push_back(std::stoi(item));
    return run_scale(sizes, seed == 0 ? 1 : seed, adopt);
  }
  if (seed != 0) {
    const Outcome o = run_schedule(seed, trace);
    std::printf("seed %llu (%s): %s\n", static_cast<unsigned long long>(seed), o.family.c_str(),
                o.ok ? "ok" : o.failure.c_str());
    if (o.ok) std::printf("converged %.2f s after the faults stopped\n", o.converge_seconds);
    return o.ok ? 0 : 1;
  }
  return run_schedules(first, count, budget);
}
