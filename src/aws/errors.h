// The translator from AWS error responses (S3 XML, JSON 1.1 `__type`) into
// modelseal::Error, and the AWS codes that mean throttling (retried like 5xx).
// Thread-safe, no I/O.
#pragma once

#include <string_view>

#include "common/error.h"
#include "net/http.h"

namespace modelseal::aws {

// An AWS service answered with a non-success status. Reads the error code and
// message from an S3-style XML body (<Error><Code>..</Code><Message>..</Message>),
// a JSON body (`__type`/`code`, `message`/`Message`), or the x-amz-error-code /
// x-amzn-ErrorType headers; falls back to the HTTP status. The Error has module
// `module`, reason = the AWS error code (e.g. "NoSuchKey", "AccessDenied"), and a
// message "<operation>: <Code>: <Message> (HTTP <status>)". The code is chosen from
// the status and the AWS code: 404 kNotFound, 401/403 kPermissionDenied,
// 409 kAlreadyExists, throttling and 5xx kUnavailable, other 4xx kInvalidArgument.
Error AwsErrorFromResponse(std::string_view module, std::string_view operation,
                           const net::HttpResponse& response);

// Whether an AWS error code names throttling.
bool IsThrottlingCode(std::string_view code);

}  // namespace modelseal::aws
