// Calendar time from protocol text, checked against what system_clock can hold.
#pragma once

#include <chrono>
#include <ctime>
#include <optional>

namespace modelseal {

// `tm` (UTC, as strptime filled it) as a time point; nullopt when system_clock cannot
// hold it (before 1678 or after 2262 with its nanosecond ticks), where from_time_t
// would overflow.
inline std::optional<std::chrono::system_clock::time_point> UtcTimePoint(std::tm tm) {
  const time_t t = timegm(&tm);
  constexpr auto kLimit =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::duration::max())
          .count();
  if (t > kLimit || t < -kLimit) return std::nullopt;
  return std::chrono::system_clock::from_time_t(t);
}

}  // namespace modelseal
