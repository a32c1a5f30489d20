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
};

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: any free port
  size_t max_body = 1 << 20;
  std::vector<ServiceCredential> credentials;
};

// The inbound half of SigV4: checks the Authorization header of a request and
// returns the principal ARN it was signed for. Errors carry the AWS exception
// name as reason.
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

// Reads {"credentials": [{"access_key_id", "secret_access_key", "principal_arn"}]}
// from a file that must not be readable by group or others.
Result<std::vector<ServiceCredential>> LoadCredentials(const std::string& path);

}  // namespace modelseal::kms
