// Bounded waits for tests: a condition another thread or process makes true, given up
// after a limit far above what a slow machine needs, so that a hang fails its test
// instead of holding CI. Header-only.
#pragma once

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>

namespace modelseal::testenv {

inline constexpr std::chrono::milliseconds kWaitLimit{120000};

// Spins (yielding) until `done()` is true: true then, false at the limit.
template <typename Done>
[[nodiscard]] bool SpinUntil(Done done, std::chrono::milliseconds limit = kWaitLimit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

// read(2) that waits at most `limit` for `fd` to become readable: -1 (errno ETIMEDOUT)
// when nothing came.
inline ssize_t ReadWithin(int fd, void* buf, size_t len,
                          std::chrono::milliseconds limit = kWaitLimit) {
  pollfd p{fd, POLLIN, 0};
  const int ready = poll(&p, 1, static_cast<int>(limit.count()));
  if (ready <= 0) {
    errno = ready == 0 ? ETIMEDOUT : errno;
    return -1;
  }
  return read(fd, buf, len);
}

}  // namespace modelseal::testenv
