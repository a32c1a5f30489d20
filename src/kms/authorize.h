// How the key service decides a request, in one place, so that the service and
// `modelseal kms policy check` cannot disagree.
//
//  * BuildRequestContext turns what is known about a request (caller, operation,
//    resource, encryption context, verified attestation document) into the
//    condition keys a policy sees. It is the only code that does.
//  * Authorize combines a key policy with the caller's identity (IAM) policy the
//    way AWS KMS does
//    (https://docs.aws.amazon.com/kms/latest/developerguide/determining-access.html):
//    an explicit Deny in either wins; a key policy statement naming the caller
//    (or "*") allows on its own; one naming only the caller's account allows when
//    the identity policy allows too; operations on no key (CreateKey, ListKeys,
//    ListAliases) and alias resources are decided by the identity policy alone
//    (https://docs.aws.amazon.com/kms/latest/developerguide/kms-api-permissions-reference.html).
//  * VerifyRecipient checks a Recipient attestation document exactly as the
//    service does (trusted roots, at most 5 minutes old).
//
// Condition keys set by BuildRequestContext:
//   aws:PrincipalArn, aws:PrincipalAccount, kms:CallerAccount — from the caller;
//   kms:EncryptionContext:<k> (one per pair) and kms:EncryptionContextKeys (all
//     keys, multivalued) — only when the request has an encryption context;
//   kms:EncryptionAlgorithm = SYMMETRIC_DEFAULT — Encrypt and Decrypt;
//   kms:KeyOrigin = AWS_KMS, kms:KeySpec = SYMMETRIC_DEFAULT,
//     kms:KeyUsage = ENCRYPT_DECRYPT, kms:MultiRegion = false — key resources;
//   kms:RecipientAttestation:NitroTPMPCR<N> (NitroTPM documents) or
//     kms:RecipientAttestation:PCR<N> and :ImageSha384 (Nitro Enclaves), lower-case
//     hex, and modelseal:AttestationRoot = "aws-nitro" | "development" — only for
//     a verified document.
// Never set: kms:ViaService (no AWS service calls this service on a caller's
// behalf), kms:GrantIsForAWSResource, aws:SourceIp and other global keys.
//
// Pure functions; thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "attest/attest.h"
#include "common/error.h"
#include "kms/keystore.h"
#include "kms/policy.h"

namespace modelseal::kms {

// The condition key modelseal adds for attested requests: which root the
// document's chain ended at.
inline constexpr char kAttestationRootKey[] = "modelseal:AttestationRoot";
inline constexpr char kRootAwsNitro[] = "aws-nitro";
inline constexpr char kRootDevelopment[] = "development";

// A Recipient document that verified.
struct VerifiedAttestation {
  attest::AttestationDocument document;
  bool development = false;  // its chain ended at a root other than AWS's
};

struct EvaluationRequest {
  std::string principal_arn;
  std::string operation;      // "Decrypt" (the action is "kms:" + operation)
  std::string resource;       // a key ARN, an alias ARN, or "*" (CreateKey, ListKeys, ListAliases)
  bool key_resource = false;  // resource is a key (adds the kms:Key* keys)
  const EncryptionContext* encryption_context = nullptr;  // null or empty: none
  const VerifiedAttestation* attestation = nullptr;       // null: no Recipient
};

RequestContext BuildRequestContext(const EvaluationRequest& request);

// What a credential may do on the IAM side: a built-in role or a policy of its own.
// Roles: "admin" (kms:* on every resource), "consumer" (kms:Decrypt,
// kms:DescribeKey, kms:ListKeys, kms:ListAliases), "none" (nothing).
struct Identity {
  std::string role;                      // as configured ("" for a custom policy)
  std::shared_ptr<const Policy> policy;  // null: no identity policy at all
};
// reason "bad-role" for an unknown role.
Result<Identity> RoleIdentity(const std::string& role);
// A credential's identity: its role or policy when configured; otherwise (files
// written before roles existed) "admin" for a principal of the service's own
// account and "none" for any other.
Result<Identity> ResolveIdentity(const std::optional<std::string>& role,
                                 const std::optional<std::string>& identity_policy,
                                 const std::string& principal_arn,
                                 const std::string& service_account);

struct Authorization {
  bool allowed = false;
  std::optional<Decision> key;       // unset when the resource has no key policy
  std::optional<Decision> identity;  // unset when the caller has no identity policy
  // The statement(s) that decided, as the audit log records them: "2 AttestedDecrypt"
  // for key policy statement 2, "identity 1 Admin" for identity policy statement 1,
  // joined by " + " when both did (an account grant the identity policy confirmed).
  std::string deciding;
  std::string reason;  // "allowed by statement 2 (\"AttestedDecrypt\")", ...
};

// `key_policy` null: the resource is not a key (IAM decides alone).
Authorization Authorize(const Policy* key_policy, const Identity& identity,
                        const RequestContext& request);

// Verifies a Recipient document as the service does. Errors:
// AccessDeniedException when it does not verify (message names the failed check).
// `claimed` receives what an unverified document claimed, for the audit log.
struct RecipientCheck {
  VerifiedAttestation attestation;
  Bytes public_key;  // DER SubjectPublicKeyInfo
};
Result<RecipientCheck> VerifyRecipient(std::span<const uint8_t> document,
                                       const std::vector<attest::TrustedRoot>& roots,
                                       std::shared_ptr<attest::ChainCache> cache,
                                       std::optional<attest::AttestationDocument>* claimed);

}  // namespace modelseal::kms
