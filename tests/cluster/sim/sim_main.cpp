// cluster_sim: random fault schedules over the simulated network, with
// invariants, and the scaling curve of the membership protocol.
//
//   cluster_sim --schedules 2000 [--first-seed 1] [--budget-seconds 240]
//   cluster_sim --seed 1234 --trace          replay one schedule, printing every step
//   cluster_sim --scale 8,16,32,64,128,256,512,1000
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
#include <map>
#include <sstream>

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
          m.sender = NodeAddress{sim.alias(victim), "h" + std::to_string(victim), 4000};
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

// The scaling curve: N nodes join a random earlier node each, all within
// 100 ms; time until the full mesh, then (once the join updates have spread)
// steady-state traffic per node, then
// a crash and a pause and how long until every survivor dropped the victim.
// Starts n nodes, each joining a random node started before it, `spacing`
// apart; returns the simulated seconds from the last start to the full mesh.
double start_and_mesh(Simulation& sim, int n, std::chrono::microseconds spacing, uint64_t seed) {
  std::mt19937_64 rng(seed);
  sim.start(0, 2254, {});
  for (int h = 1; h < n; ++h) {
    sim.run_for(spacing);
    sim.start(h, 2254, {sim.endpoint(std::uniform_int_distribution<int>(0, h - 1)(rng))});
  }
  Millis mesh{0};
  while (!sim.converged() && mesh < Millis(30000)) {
    sim.run_for(Millis(10));
    mesh += Millis(10);
  }
  return static_cast<double>(mesh.count()) / 1000.0;
}

int run_scale(const std::vector<int>& sizes, uint64_t seed) {
  std::printf(
      "| nodes | full mesh, starts over 100 ms (s) | full mesh, all at once (s) | frames / node / "
      "s | "
      "bytes / node / s | crash dropped by all (s) | pause dropped by all (s) |\n"
      "|---:|---:|---:|---:|---:|---:|---:|\n");
  for (int n : sizes) {
    Simulation::Options options;
    options.seed = seed;
    options.count_bytes = true;
    options.latency_max = Millis(1);
    // Coarser ticks keep 1,000 nodes affordable; they cost up to 40 ms of
    // detection resolution, which the pause column shows.
    options.tick_every = n > 100 ? Millis(50) : Millis(10);
    const double at_once = [&] {
      Simulation burst(options);
      return start_and_mesh(burst, n, std::chrono::microseconds(0), seed);
    }();
    Simulation sim(options);
    const double spread = start_and_mesh(sim, n, std::chrono::microseconds(100000 / n), seed);
    // Steady state: the join updates of the bootstrap have used up their
    // retransmit budget (the larger the burst, the longer that takes).
    sim.run_for(std::max(Millis(10000), Millis(100) * n));
    const auto before = sim.traffic();
    const Millis window{1000};
    sim.run_for(window);
    const double per_node = static_cast<double>(n) * static_cast<double>(window.count()) / 1000.0;
    const double frames = static_cast<double>(sim.traffic().frames - before.frames) / per_node;
    const double bytes = static_cast<double>(sim.traffic().bytes - before.bytes) / per_node;
    auto until_dropped = [&](int victim) {
      Millis t{0};
      while (sim.listed_by_any(victim) && t < Millis(10000)) {
        sim.run_for(Millis(5));
        t += Millis(5);
      }
      return static_cast<double>(t.count()) / 1000.0;
    };
    sim.crash(n - 1);
    const double crash = until_dropped(n - 1);
    sim.pause(n - 2);
    const double pause = until_dropped(n - 2);
    std::printf("| %d | %.2f | %.2f | %.0f | %.0f | %.3f | %.3f |\n", n, spread, at_once, frames,
                bytes, crash, pause);
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
  app.add_option("--scale", scale, "Comma-separated cluster sizes for the scaling curve");
  CLI11_PARSE(app, argc, argv);
  if (!scale.empty()) {
    std::vector<int> sizes;
    std::stringstream in(scale);
    for (std::string item; std::getline(in, item, ',');) sizes.push_back(std::stoi(item));
    return run_scale(sizes, seed == 0 ? 1 : seed);
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
