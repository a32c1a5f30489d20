// The key service's HTTP front: AWS KMS's wire protocol (POST /, X-Amz-Target
// "TrentService.<Operation>", application/x-amz-json-1.1) with SigV4
// authentication against configured credentials, each mapped to a principal ARN.
//
// Served by httpd (event-driven, strict framing; see src/httpd/httpd.h). Loopback by
// default; TLS with ServerConfig::tls; plain HTTP on another address only with
// allow_insecure_http. Bodies over max_body get HTTP 413 while they are read, for any
// transfer encoding.
//
// Authentication starts from the request head, before any body byte is read: a
// request without a well-formed SigV4 Authorization header
// (MissingAuthenticationTokenException, IncompleteSignatureException), with an
// unknown access key (UnrecognizedClientException) or an X-Amz-Date more than 15
// minutes off (InvalidSignatureException, "Signature expired") is refused at once.
// The signature itself covers the body and is checked once the body is in (bad
// signatures get InvalidSignatureException), all as AWS sends them. Every error of
// the front itself (malformed HTTP 400, 404, 405, 408, 411, 413, 431, 501, 503) has
// AWS's shape: {"__type": "...Exception", "message": ...} and x-amzn-ErrorType.
// Thread-safe; requests are served by a small worker pool (ServerConfig::workers).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/secret.h"
#include "httpd/httpd.h"
#include "kms/service.h"

namespace modelseal::kms {

struct ServiceCredential {
  std::string access_key_id;
  std::string secret_access_key;  // loaded from a 0600 file; never logged
  std::string principal_arn;
  // What the principal may do on the IAM side (authorize.h): a built-in role
  // ("admin", "consumer", "none") or an identity policy (JSON text); neither: the
  // default for credentials files written before roles existed.
  std::optional<std::string> role = std::nullopt;
  std::optional<std::string> identity_policy = std::nullopt;
};

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: any free port
  size_t max_body = 1 << 20;
  std::vector<ServiceCredential> credentials;
  std::optional<httpd::TlsFiles> tls;  // serve HTTPS with these
  bool allow_insecure_http = false;    // plain HTTP on a non-loopback address
  int workers = 8;
};

// The inbound half of SigV4: checks the Authorization header of a request and
// returns the principal ARN it was signed for. Errors carry the AWS exception
// name as reason. Legacy entry point: it does everything VerifyKmsRequest
// (sigv4_verify.h) does, with the region pinned to the regions of the key services
// in this process, and publishes the caller's identity for
// KeyService::Handle(operation, body, principal_arn). New fronts call
// PrecheckRequestHead and VerifyKmsRequest instead.
struct InboundRequest {
  std::string method;
  std::string path;
  std::string query;  // raw, without '?'
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};
Result<std::string> VerifySigV4(const InboundRequest& req,
                                const std::vector<ServiceCredential>& creds,
                                std::chrono::system_clock::time_point now);

// Errors of Start are httpd's (e.g. "address-in-use", "insecure-listen", "tls-config").
class KeyServer {
 public:
  static Result<std::unique_ptr<KeyServer>> Start(KeyService& service, const ServerConfig& config);
  ~KeyServer();
  int port() const { return port_; }
  // Stops accepting, finishes running requests, joins. Not from a signal handler:
  // use httpd::StopSignals and call it from an ordinary thread. Idempotent.
  void Stop();

  struct Impl;

 private:
  KeyServer() = default;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

// Reads {"credentials": [{"access_key_id", "secret_access_key", "principal_arn",
// optional "role" or "identity_policy"}]} from a file that must not be readable by
// group or others. Errors: "insecure-credentials", "bad-credentials" (also for an
// unknown role, a malformed identity policy, a repeated access key, or one
// principal with two different identities).
Result<std::vector<ServiceCredential>> LoadCredentials(const std::string& path);

}  // namespace modelseal::kms
