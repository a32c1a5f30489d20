// KMS client: AWS KMS's JSON 1.1 protocol over SigV4, against AWS or the built-in
// key service (same wire protocol).
//
// Endpoint: the configured one, else AWS_ENDPOINT_URL_KMS, else
// https://kms.<region>.amazonaws.com. Credentials: the AWS default chain unless
// given. Throttling, 5xx and connection errors are retried with backoff.
// Errors: module "kms", reason = the AWS exception name (e.g.
// "AccessDeniedException"), message "<Operation>: <type>: <message>".
// Thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "aws/credentials.h"
#include "common/bytes.h"
#include "common/error.h"
#include "common/secret.h"
#include "kms/keystore.h"
#include "net/http.h"
#include "net/retry.h"

namespace modelseal::kms {

struct ClientConfig {
  std::string endpoint;                                   // empty: from the environment / region
  std::string region;                                     // empty: resolved like the AWS SDKs
  std::shared_ptr<aws::CredentialsProvider> credentials;  // null: default chain
  std::shared_ptr<net::HttpTransport> transport;          // null: default
  net::RetryPolicy retry;
  // Make the next ephemeral recipient key (RSA-2048 key generation: 0.1-0.9 s on a
  // small machine) ahead, in a background thread at the lowest CPU priority, so that
  // an attested Decrypt does not wait for it. For a long-running loader (the
  // server). Each key is still used for one request only, and lives only in memory.
  bool prepare_recipient_key = false;
};

struct DataKey {
  std::string key_arn;
  Bytes ciphertext;        // CiphertextBlob: store it beside the data
  SecretBuffer plaintext;  // use, then let it go out of scope
};

// Produces an attestation document that carries `public_key_der` (DER
// SubjectPublicKeyInfo of the ephemeral recipient key).
using AttestFn = std::function<Result<Bytes>(std::span<const uint8_t> public_key_der)>;

class KmsClient {
 public:
  static Result<std::unique_ptr<KmsClient>> Create(ClientConfig config);

  const std::string& endpoint() const { return endpoint_; }
  const std::string& region() const { return region_; }

  // One operation, raw JSON in and out.
  Result<nlohmann::json> Call(const std::string& operation, const nlohmann::json& request) const;

  Result<DataKey> GenerateDataKey(const std::string& key_id,
                                  const EncryptionContext& context) const;
  // Decrypt under the key the caller expects: `expected_key` is a key ARN or key
  // id (not an alias, which can be repointed). It is sent as KeyId, so the service
  // refuses a ciphertext under any other key (IncorrectKeyException), and a
  // response whose KeyId names another key is refused here (reason
  // "unexpected-key"). The plaintext is decoded straight into locked memory.
  Result<SecretBuffer> Decrypt(std::span<const uint8_t> ciphertext,
                               const EncryptionContext& context,
                               const std::string& expected_key) const;
  // Decrypt with Recipient: makes an RSA-2048 key in this process (or takes the
  // one made ahead, see ClientConfig), gets a document for its public key from
  // `attest`, and opens CiphertextForRecipient. A key serves one request only.
  // The plaintext never crosses the network in the clear. `expected_key` as above.
  Result<SecretBuffer> DecryptForRecipient(std::span<const uint8_t> ciphertext,
                                           const EncryptionContext& context,
                                           const std::string& expected_key,
                                           const AttestFn& attest) const;

 private:
  KmsClient() = default;
  std::string endpoint_;
  std::string region_;
  std::shared_ptr<aws::CredentialsProvider> credentials_;
  std::shared_ptr<net::HttpTransport> transport_;
  net::RetryPolicy retry_;
  struct KeyAhead;
  std::shared_ptr<KeyAhead> ahead_;  // null unless prepare_recipient_key

  // Call() that leaves the raw response body to the caller, who wipes it.
  Result<Bytes> CallRaw(const std::string& operation, const nlohmann::json& request) const;
};

// Whether `expected` names a key exactly, as Decrypt's expected key must: a key ARN
// or a 36-character key id. An alias is refused (reason "bad-expected-key"): whoever
// controls it can point it at another key. The load checks it before any request.
Status CheckExpectedKeyRef(const std::string& expected);

}  // namespace modelseal::kms
