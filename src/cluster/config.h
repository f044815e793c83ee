// The membership's timers and limits, in one place. Every duration here is a
// protocol decision documented in docs/protocol.md section 7.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <string>

namespace iridium::cluster {

using Millis = std::chrono::milliseconds;

// A duration in seconds for messages people read: 1500 ms -> "1.5".
inline std::string seconds_text(Millis d) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", static_cast<double>(d.count()) / 1000.0);
  return text;
}

// Every timer and multiplier of the membership, with the testbed's defaults
// (the model is memberlist's DefaultLANConfig; docs/scaling.md has the
// measurements behind each value). Durations scale with the local-health
// score where noted: a node that misses its own acks slows itself down
// rather than accuse others (Lifeguard).
struct Timers {
  // ---- SWIM failure detection ----
  Millis probe_period{300};   // one member probed per period, in shuffled round-robin (× health)
  Millis probe_timeout{150};  // no ack by then: ask indirect_probes helpers (× health)
  std::size_t indirect_probes = 3;  // helpers per failed probe (SWIM's k)
  // Suspicion timeout: starts at suspicion_max_mult × the floor and shrinks
  // towards the floor, suspicion_mult × log10(N+1) × probe_period, as
  // independent suspicions of the same member arrive (Lifeguard): after
  // suspicion_confirmations accusers besides the first, it is the floor.
  double suspicion_mult = 2;
  double suspicion_max_mult = 4;
  std::size_t suspicion_confirmations = 1;
  std::size_t awareness_max = 4;  // local-health score ceiling; periods stretch × (1 + score)
  // A member listed this recently may still be connecting: a probe of it
  // that goes unanswered is void, not failed. 128 nodes
  // starting together on 2 cores reach a full mesh 2-3 s after the last start.
  // A suspicion only heard of such a member runs its timeout from the end of it.
  Millis connect_grace{3000};

  // ---- dissemination ----
  Millis gossip{200};               // pending updates to gossip_fanout members this often
  std::size_t gossip_fanout = 3;    // members per gossip round
  std::size_t retransmit_mult = 4;  // each update goes out retransmit_mult × ceil(log10(N+1)) times
  std::size_t piggyback_bytes = 1024;  // room for updates in one frame
  Millis push_pull{10 * 1000};         // member-set digest to one random member this often
  Millis sync_after_change{1000};      // and within this of a change to the member set

  // ---- joining, lost members, departures ----
  Millis lost_probe{1000};          // hello to members lost without a leave, so cuts heal
  Millis lost_ttl{10 * 60 * 1000};  // stop probing a lost member after this
  Millis left_ttl{30 * 1000};       // ignore a departed instance's stragglers this long
  Millis contact_timeout{3000};     // a node learned second-hand must answer our join within this
  Millis contact_retry{1000};       // and is contacted again at most this often
  Millis join_timeout{3000};        // !join_cluster gives up after this
  Millis hello_retry{100};          // hello resent this often while joining
  Millis seed_backoff_max{2000};    // --join seeds: retries back off up to this
  Millis remembered_after{
      1000};  // with seeds: try remembered members once seeds were silent this long
  Millis remembered_ttl{60 * 1000};  // stop trying remembered members after this
  Millis refused_limit{10 * 1000};   // every seed refused our alias this long: give up (fatal)
  Millis pause_threshold{500};       // a tick this much later than planned: this process was paused
  Millis late_tick{100};  // a tick this late: the host is starved, local health +1 (Lifeguard)

  // ---- table bounds (docs/architecture.md lists every bound a node keeps) ----
  // Members a node lists; past it a new node is refused (hello_nack
  // "cluster_full"). Above the 10,000 the simulator runs, far above what one
  // machine holds; a cap only so that strangers' hellos cannot grow it for ever.
  std::size_t max_members = 16384;
  std::size_t max_contacts = 1024;  // nodes contacted at once: one full page of a member list
};

}  // namespace iridium::cluster
