// The built-in key service: AWS KMS's JSON 1.1 operations over a KeyStore, with
// key policies and attested key release.
//
// Handle() takes an operation already authenticated by the transport (SigV4, see
// server.h) as the principal ARN of the caller, and returns the HTTP status and
// JSON body AWS KMS would: errors are HTTP 400 with
// {"__type": "<Name>Exception", "message": ...}.
//
// Operations: CreateKey, DescribeKey, ListKeys, EnableKey, DisableKey,
// CreateAlias, UpdateAlias, DeleteAlias, ListAliases, GenerateDataKey, Encrypt,
// Decrypt, GetKeyPolicy, PutKeyPolicy, ScheduleKeyDeletion, CancelKeyDeletion.
// Every operation is authorised (authorize.h): operations on a key by its key
// policy together with the caller's identity policy; CreateKey, ListKeys,
// ListAliases and alias resources (arn:aws:kms:<region>:<account>:alias/<name>)
// by the identity policy alone. The condition keys are those of
// BuildRequestContext (authorize.h).
//
// Order of checks (docs/kms.md "Evaluation order"): the request's fields are
// validated (SerializationException / ValidationException, nothing looked up);
// the key is resolved (NotFoundException); for Decrypt the ciphertext is
// authenticated under the request's encryption context before any policy is
// evaluated, so a wrong context gets InvalidCiphertextException whatever the
// policy says and cannot be used to probe it; the key's state is checked; a
// Recipient document is verified; the policies decide (AccessDeniedException);
// a DryRun stops there (DryRunOperationException, HTTP 412); then the operation
// runs.
//
// Attested requests: the document is verified against the AWS Nitro root and,
// only when configured, the development root; anything unverifiable is refused.
// The response then carries CiphertextForRecipient (CMS to the document's public
// key) and never Plaintext.
//
// Every request is appended to the audit log as one JSON line (time, operation,
// principal, key, decision, deciding statement, attestation module id and PCRs;
// never key material) before its reply is returned. If the log cannot be opened,
// Open() fails (and a service made with the constructor answers every request with
// KMSInternalException); if a line cannot be written, the reply is replaced by
// KMSInternalException, so no key material leaves unaudited. Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "attest/attest.h"
#include "kms/authorize.h"
#include "kms/keystore.h"
#include "kms/policy.h"

namespace modelseal::kms {

struct ServiceConfig {
  // Roots trusted for Recipient documents in addition to the built-in AWS root.
  std::vector<attest::TrustedRoot> extra_roots;
  std::string audit_log_path;  // empty: no audit log (embedded uses and tests only)
  // Identities by principal ARN, for Handle(operation, body, principal_arn).
  struct IdentityConfig {
    std::optional<std::string> role;
    std::optional<std::string> identity_policy;
  };
  std::map<std::string, IdentityConfig> identities;
};

struct ServiceReply {
  int status = 200;
  std::string body;  // JSON
};

class KeyService {
 public:
  // The authenticated caller, as the SigV4 verifier found it (sigv4_verify.h).
  struct Caller {
    std::string principal_arn;
    std::optional<std::string> role;             // see ServiceCredential
    std::optional<std::string> identity_policy;  // JSON text
  };

  // Fails (reason "audit-log") when the audit log cannot be opened.
  static Result<std::unique_ptr<KeyService>> Open(std::unique_ptr<KeyStore> store,
                                                  ServiceConfig config);
  KeyService(std::unique_ptr<KeyStore> store, ServiceConfig config);
  ~KeyService();

  // Ok, or why the service refuses every request (the audit log failed).
  Status health() const;

  ServiceReply Handle(const std::string& operation, const std::string& body, const Caller& caller);
  // The caller's identity comes from ServiceConfig::identities, else from the
  // credential the legacy VerifySigV4 last verified for this principal, else the
  // default of ResolveIdentity (authorize.h).
  ServiceReply Handle(const std::string& operation, const std::string& body,
                      const std::string& principal_arn);

  // The policy AWS puts on a key created without one: the account root may do anything.
  static std::string DefaultPolicy(const std::string& account);

  KeyStore& store() { return *store_; }

  // A key policy in parsed form, cached by its text: every request evaluates its key's
  // policy, and policies change rarely (a changed text is simply another entry).
  Result<std::shared_ptr<const Policy>> ParsedPolicy(const std::string& text);
  const std::shared_ptr<attest::ChainCache>& chain_cache() const { return chain_cache_; }

  struct Call;  // one request in flight (service.cpp)

 private:
  std::unique_ptr<KeyStore> store_;
  ServiceConfig config_;
  std::vector<attest::TrustedRoot> roots_;
  std::shared_ptr<attest::ChainCache> chain_cache_ = std::make_shared<attest::ChainCache>();
  std::mutex audit_mu_;
  int audit_fd_ = -1;
  std::string audit_error_;  // set when the audit log could not be opened
  std::mutex policy_mu_;
  std::map<std::string, std::shared_ptr<const Policy>> policies_;

  Status Audit(const Call& call);
  friend struct Call;
};

// Publishes / looks up the identity of a verified credential, by principal ARN
// (the legacy VerifySigV4 path; process-wide, thread-safe).
void PublishIdentity(const std::string& principal_arn, const std::optional<std::string>& role,
                     const std::optional<std::string>& identity_policy);
std::optional<ServiceConfig::IdentityConfig> PublishedIdentity(const std::string& principal_arn);
// Regions served by key services in this process (for the legacy VerifySigV4).
void RegisterServiceRegion(const std::string& region);

}  // namespace modelseal::kms
