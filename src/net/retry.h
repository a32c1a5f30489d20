// Retries with exponential backoff and full jitter, and the translator from AWS
// error responses (S3 XML, JSON 1.1 `__type`) into modelseal::Error.
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

#include "aws/http.h"
#include "common/error.h"

namespace modelseal::aws {

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

// An AWS service answered with a non-success status. Reads the error code and
// message from an S3-style XML body (<Error><Code>..</Code><Message>..</Message>),
// a JSON body (`__type`/`code`, `message`/`Message`), or the x-amz-error-code /
// x-amzn-ErrorType headers; falls back to the HTTP status. The Error has module
// `module`, reason = the AWS error code (e.g. "NoSuchKey", "AccessDenied"), and a
// message "<operation>: <Code>: <Message> (HTTP <status>)". The code is chosen from
// the status and the AWS code: 404 kNotFound, 401/403 kPermissionDenied,
// 409 kAlreadyExists, throttling and 5xx kUnavailable, other 4xx kInvalidArgument.
Error AwsErrorFromResponse(std::string_view module, std::string_view operation,
                           const HttpResponse& response);

// Whether an AWS error code names throttling.
bool IsThrottlingCode(std::string_view code);

}  // namespace modelseal::aws
