#include "common/clock.h"

#include <atomic>
#include <chrono>
#include <cstdlib>

namespace modelseal {
namespace {

// 0: no override. A fixed time of 0 (1970-01-01T00:00:00Z) is not needed by any test.
std::atomic<uint64_t> g_fixed_ms{0};

}  // namespace

uint64_t NowUnixMs() {
  const uint64_t fixed = g_fixed_ms.load(std::memory_order_relaxed);
  if (fixed != 0) return fixed;
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

ScopedWallClock::ScopedWallClock(uint64_t unix_ms) {
  uint64_t none = 0;
  if (unix_ms == 0 || !g_fixed_ms.compare_exchange_strong(none, unix_ms)) std::abort();
}

ScopedWallClock::~ScopedWallClock() {
  g_fixed_ms.store(0);
}

}  // namespace modelseal
