// The built-in key service: AWS KMS's JSON 1.1 operations over a KeyStore, with
// key policies and attested key release.
//
// Handle() takes an operation already authenticated by the transport (SigV4, see
// server.h) as the principal ARN of the caller, and returns the HTTP status and
// JSON body AWS KMS would: errors are HTTP 400 with
// {"__type": "<Name>Exception", "message": ...}.
//
// Operations: CreateKey, DescribeKey, ListKeys, CreateAlias, ListAliases,
// GenerateDataKey, Encrypt, Decrypt, GetKeyPolicy, PutKeyPolicy,
// ScheduleKeyDeletion. Every key operation is authorised by the key's policy
// (action "kms:<Operation>", resource the key ARN) with the condition keys
// aws:PrincipalArn, kms:CallerAccount, kms:EncryptionContext:<k>,
// kms:EncryptionContextKeys and, for a request with a verified Recipient
// attestation document, kms:RecipientAttestation:NitroTPMPCR<N> (NitroTPM) or
// kms:RecipientAttestation:PCR<N> and :ImageSha384 (Nitro Enclaves), lower-case hex.
//
// Attested requests: the document is verified against the AWS Nitro root and,
// only when configured, the development root; anything unverifiable is refused.
// The response then carries CiphertextForRecipient (CMS to the document's public
// key) and never Plaintext.
//
// Every decision is appended to the audit log as one JSON line (time, operation,
// principal, key, decision, deciding statement, attestation module id and PCRs;
// never key material). Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "attest/attest.h"
#include "kms/keystore.h"
#include "kms/policy.h"

namespace modelseal::kms {

struct ServiceConfig {
  // Roots trusted for Recipient documents in addition to the built-in AWS root.
  std::vector<attest::TrustedRoot> extra_roots;
  std::string audit_log_path;  // empty: no audit log
};

struct ServiceReply {
  int status = 200;
  std::string body;  // JSON
};

class KeyService {
 public:
  KeyService(std::unique_ptr<KeyStore> store, ServiceConfig config);
  ~KeyService();

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
  std::mutex policy_mu_;
  std::map<std::string, std::shared_ptr<const Policy>> policies_;

  void Audit(const Call& call);
  friend struct Call;
};

}  // namespace modelseal::kms
