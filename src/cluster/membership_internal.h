// Small helpers shared by the files that implement Membership.
#pragma once

#include <optional>
#include <string>

#include "cluster/membership.h"

namespace iridium::cluster::detail {

inline Millis since(TimePoint earlier, TimePoint now) {
  return std::chrono::duration_cast<Millis>(now - earlier);
}

inline Event make_event(EventKind kind, const NodeAddress& node, const std::string& instance,
                        std::optional<Error> error = std::nullopt) {
  Event e;
  e.kind = kind;
  e.node = node;
  e.instance = instance;
  e.error = std::move(error);
  return e;
}

}  // namespace iridium::cluster::detail
