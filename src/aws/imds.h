// EC2 Instance Metadata Service, version 2 only (session tokens; no IMDSv1
// fallback). Endpoint: AWS_EC2_METADATA_SERVICE_ENDPOINT, default
// http://169.254.169.254. Timeouts are short (1 s connect, 2 s per request, 2
// attempts) so that off EC2 the credential chain fails fast.
//
// Thread-safe: the session token is cached behind a mutex and renewed a minute
// before its TTL runs out. Failures (module "imds"): disabled (kUnavailable) when
// AWS_EC2_METADATA_DISABLED=true; HTTP errors via AwsErrorFromResponse;
// malformed (kInternal) for an unreadable credentials document.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "aws/credentials.h"
#include "net/http.h"
#include "net/retry.h"

namespace modelseal::aws {

class ImdsClient {
 public:
  // Empty endpoint: from the environment, else the link-local default.
  explicit ImdsClient(std::shared_ptr<net::HttpTransport> transport, std::string endpoint = "");

  // GET of a metadata path such as "/latest/meta-data/instance-type".
  Result<std::string> Get(const std::string& path);
  Result<std::string> Region();  // /latest/meta-data/placement/region
  const std::string& endpoint() const { return endpoint_; }

  static bool DisabledByEnvironment();

 private:
  Result<std::string> Token();

  std::shared_ptr<net::HttpTransport> transport_;
  std::string endpoint_;
  net::RetryPolicy retry_;
  std::mutex mu_;
  std::string token_;
  std::chrono::steady_clock::time_point token_expiry_{};
};

// Instance-role credentials: /latest/meta-data/iam/security-credentials/<role>.
// Cached; fetched again once within `refresh_before` of their Expiration.
std::shared_ptr<CredentialsProvider> ImdsCredentials(
    std::shared_ptr<ImdsClient> client,
    std::chrono::seconds refresh_before = std::chrono::minutes(5));

// Parses "2026-11-25T21:00:00Z" (also with fractional seconds). nullopt for
// anything else, and for a time outside system_clock's range (years 1678-2262).
std::optional<std::chrono::system_clock::time_point> ParseIso8601(std::string_view s);

}  // namespace modelseal::aws
