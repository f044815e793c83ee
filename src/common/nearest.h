// "Did you mean ...?": the known word nearest to a mistyped one.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <optional>
#include <string_view>
#include <vector>

namespace iridium {

inline bool same_letter(char x, char y) {
  return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
}

// Case-insensitive edit distance: insertions, deletions, substitutions and
// swaps of two neighbouring characters each cost 1 (optimal string alignment).
inline std::size_t edit_distance(std::string_view a, std::string_view b) {
  const std::size_t n = a.size();
  const std::size_t m = b.size();
  std::vector<std::size_t> d((n + 1) * (m + 1));
  auto at = [&](std::size_t i, std::size_t j) -> std::size_t& { return d[i * (m + 1) + j]; };
  for (std::size_t i = 0; i <= n; ++i) at(i, 0) = i;
  for (std::size_t j = 0; j <= m; ++j) at(0, j) = j;
  for (std::size_t i = 1; i <= n; ++i) {
    for (std::size_t j = 1; j <= m; ++j) {
      const std::size_t cost = same_letter(a[i - 1], b[j - 1]) ? 0 : 1;
      at(i, j) = std::min({at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost});
      if (i > 1 && j > 1 && same_letter(a[i - 1], b[j - 2]) && same_letter(a[i - 2], b[j - 1])) {
        at(i, j) = std::min(at(i, j), at(i - 2, j - 2) + 1);
      }
    }
  }
  return at(n, m);
}

// The candidate nearest to `word`, when one is near enough to be a likely
// typo: within 1 edit for words of up to 4 characters, 2 up to 8, else 3; or,
// failing that, the only candidate that starts with `word` (3 characters or
// more). Of equally near ones, the one that shares the longest start with
// `word` wins, then the earlier one. nullopt when nothing is close, or
// when `word` is itself a candidate.
inline std::optional<std::string_view> nearest_word(
    std::string_view word, const std::vector<std::string_view>& candidates) {
  if (word.empty()) return std::nullopt;
  const std::size_t allowed = word.size() <= 4 ? 1 : word.size() <= 8 ? 2 : 3;
  auto common_prefix = [&](std::string_view candidate) {
    std::size_t n = 0;
    while (n < word.size() && n < candidate.size() && same_letter(word[n], candidate[n])) {
      ++n;
    }
    return n;
  };
  std::optional<std::string_view> best;
  std::size_t best_distance = allowed + 1;
  std::size_t best_prefix = 0;
  for (std::string_view candidate : candidates) {
    const std::size_t distance = edit_distance(word, candidate);
    if (distance == 0) return std::nullopt;
    const std::size_t prefix = common_prefix(candidate);
    if (distance < best_distance || (best && distance == best_distance && prefix > best_prefix)) {
      best = candidate;
      best_distance = distance;
      best_prefix = prefix;
    }
  }
  if (best || word.size() < 3) return best;
  for (std::string_view candidate : candidates) {
    if (candidate.size() <= word.size() ||
        edit_distance(candidate.substr(0, word.size()), word) != 0) {
      continue;
    }
    if (best) return std::nullopt;  // more than one: ambiguous
    best = candidate;
  }
  return best;
}

}  // namespace iridium
