#include "net/retry.h"

#include <algorithm>
#include <random>
#include <thread>

namespace modelseal::net {

bool IsRetryable(const Error& e) {
  return e.code == ErrorCode::kUnavailable;
}

std::chrono::milliseconds BackoffDelay(const RetryPolicy& policy, int retry) {
  const int shift = std::clamp(retry - 1, 0, 20);
  const int64_t cap = std::min<int64_t>(policy.max_delay.count(),
                                        policy.base_delay.count() * (int64_t{1} << shift));
  if (cap <= 0) return std::chrono::milliseconds(0);
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<int64_t> dist(0, cap);
  return std::chrono::milliseconds(dist(rng));
}

Status WithRetries(const RetryPolicy& policy, const std::function<Status(int attempt)>& fn) {
  const int attempts = std::max(1, policy.max_attempts);
  for (int attempt = 0;; ++attempt) {
    Status s = fn(attempt);
    if (s.ok()) return s;
    if (!IsRetryable(s.error()) || attempt + 1 >= attempts) {
      Error e = s.take_error();
      if (attempt > 0) e.message += " (after " + std::to_string(attempt + 1) + " attempts)";
      return e;
    }
    std::this_thread::sleep_for(BackoffDelay(policy, attempt + 1));
  }
}

}  // namespace modelseal::net
