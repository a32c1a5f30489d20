// The wall clock modelseal stamps records with: sealed headers' creation times, the
// PCR15 log, key creation and deletion dates, audit lines, attestation documents and
// the time their certificates are checked at. Read in one place so that a test can set
// it (ScopedWallClock) and check a stamp against a value it chose.
#pragma once

#include <cstdint>

namespace modelseal {

// Milliseconds since the Unix epoch: system_clock's, or what a live ScopedWallClock set.
uint64_t NowUnixMs();

// For tests: while it lives, NowUnixMs() returns `unix_ms` in every thread; the clock
// runs again when it is destroyed. One at a time (a second aborts).
class ScopedWallClock {
 public:
  explicit ScopedWallClock(uint64_t unix_ms);
  ~ScopedWallClock();
  ScopedWallClock(const ScopedWallClock&) = delete;
  ScopedWallClock& operator=(const ScopedWallClock&) = delete;
};

}  // namespace modelseal
