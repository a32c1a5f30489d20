// The key service's HTTP front: AWS KMS's wire protocol (POST /, X-Amz-Target
// "TrentService.<Operation>", application/x-amz-json-1.1) with SigV4
// authentication against configured credentials, each mapped to a principal ARN.
//
// Loopback by default. Bodies over max_body get HTTP 413. Unknown access keys get
// UnrecognizedClientException, bad signatures InvalidSignatureException, requests
// whose X-Amz-Date is more than 15 minutes off get
// InvalidSignatureException ("Signature expired"), all as AWS sends them.
// Thread-safe; requests are served by a small thread pool.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "common/secret.h"
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

class KeyServer {
 public:
  static Result<std::unique_ptr<KeyServer>> Start(KeyService& service, const ServerConfig& config);
  ~KeyServer();
  int port() const { return port_; }
  // Serves until Stop() (from another thread or a signal handler's thread).
  void Wait();
  void Stop();

  struct Impl;

 private:
  KeyServer() = default;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
  std::thread thread_;
};

// Reads {"credentials": [{"access_key_id", "secret_access_key", "principal_arn",
// optional "role" or "identity_policy"}]} from a file that must not be readable by
// group or others. Errors: "insecure-credentials", "bad-credentials" (also for an
// unknown role, a malformed identity policy, a repeated access key, or one
// principal with two different identities).
Result<std::vector<ServiceCredential>> LoadCredentials(const std::string& path);

}  // namespace modelseal::kms
