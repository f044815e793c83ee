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

struct Timers {
  Millis heartbeat{200};            // to every member
  Millis suspect_after{600};        // no direct frame for this long: suspect, start probing
  Millis dead_after{1500};          // no evidence of life (direct or vouched) for this long: dead
  Millis probe_interval{250};       // while suspect: ping it and ask helpers this often
  std::size_t indirect_probes = 3;  // helpers asked per probe round (SWIM's k)
  Millis gossip{200};               // members list to a few random members this often
  std::size_t gossip_fanout = 2;    // how many members get each round's list
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
  Millis pause_threshold{500};       // a tick this late means this process was paused or starved
};

}  // namespace iridium::cluster
