// Retries with exponential backoff and full jitter.
//
// Retryable errors are exactly those with code kUnavailable: connection failures
// (module "http"), HTTP 5xx, and throttling (429, SlowDown, Throttling*,
// RequestLimitExceeded, ...). Everything else is returned at once.
// Thread-safety: all functions are thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include "common/error.h"
#include "net/http.h"

namespace modelseal::net {

struct RetryPolicy {
  int max_attempts = 5;  // total tries, at least 1
  std::chrono::milliseconds base_delay{100};
  std::chrono::milliseconds max_delay{5000};
};

// Whether an error is worth another attempt (code kUnavailable).
bool IsRetryable(const Error& e);

// The delay before retry number `retry` (1-based): uniform in
// [0, min(max_delay, base_delay * 2^(retry-1))] ("full jitter").
std::chrono::milliseconds BackoffDelay(const RetryPolicy& policy, int retry);

// Runs fn(attempt) (attempt 0, 1, ...) until it succeeds, fails with a
// non-retryable error, or the attempts are used up; sleeps BackoffDelay between
// tries. The last error is returned, its message suffixed with the attempt count.
Status WithRetries(const RetryPolicy& policy, const std::function<Status(int attempt)>& fn);

}  // namespace modelseal::net
