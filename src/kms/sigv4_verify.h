// The key service's inbound SigV4 check, as the HTTP front calls it.
//
// Two calls, both pure and thread-safe:
//
//  1. PrecheckRequestHead(head, config, now) — on the request line and headers
//     only, before the body is read: the Authorization header is well formed, its
//     access key is known, its scope is <date>/<region>/kms/aws4_request for this
//     service's region and the date of X-Amz-Date, X-Amz-Date is within 15 minutes
//     of `now`, the headers that must be signed are signed, and no
//     security-relevant header is repeated. A front should answer a failure at
//     once (HTTP 400 with the error's reason as __type) and not read the body.
//
//  2. VerifyKmsRequest(request, config, now) — on the whole request: everything
//     the pre-check does, then the signature over the canonical request whose
//     payload hash is the SHA-256 of the body as received. An
//     x-amz-content-sha256 header is accepted only when it equals that hash, so a
//     captured signature cannot carry another body. The result names the
//     principal and the operation from the signed X-Amz-Target; the front must
//     dispatch that operation (not re-read the header).
//
// Headers that must be signed: host, x-amz-date, x-amz-target, content-type (and
// x-amz-content-sha256 / x-amz-security-token when sent). Headers that must not be
// repeated: authorization, host, x-amz-date, x-amz-target, content-type,
// content-length, x-amz-content-sha256, x-amz-security-token, and every signed
// header. The verifier sees every value of every header (InboundRequest keeps
// repeated headers as separate entries).
//
// Errors: module "kms", reason = the AWS exception name (errors.h):
// MissingAuthenticationTokenException, IncompleteSignatureException,
// UnrecognizedClientException, InvalidSignatureException (bad signature, expired
// or future X-Amz-Date, wrong scope, body hash mismatch), UnknownOperationException
// (X-Amz-Target names no TrentService operation).
//
// How the front uses it (src/kms/server.cpp):
//   VerifierConfig vc{credentials, service_region};
//   if (auto s = PrecheckRequestHead(head, vc, now); !s.ok()) reply 400 s.error();
//   ... read the body (bounded) ...
//   auto caller = VerifyKmsRequest(full_request, vc, now);
//   if (!caller.ok()) reply 400 caller.error();
//   service.Handle(caller->operation, body, caller->Caller());
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "kms/server.h"
#include "kms/service.h"

namespace modelseal::kms {

struct VerifierConfig {
  std::vector<ServiceCredential> credentials;
  std::string region;  // the service's region; empty only through the legacy VerifySigV4
  std::string service = "kms";
  std::chrono::seconds max_skew{15 * 60};
};

struct VerifiedRequest {
  std::string access_key_id;
  std::string principal_arn;
  std::string operation;  // "Decrypt", from the signed X-Amz-Target
  std::optional<std::string> role;
  std::optional<std::string> identity_policy;
  // What KeyService::Handle takes.
  KeyService::Caller Caller() const { return {principal_arn, role, identity_policy}; }
};

Status PrecheckRequestHead(const InboundRequest& head, const VerifierConfig& config,
                           std::chrono::system_clock::time_point now);

Result<VerifiedRequest> VerifyKmsRequest(const InboundRequest& request,
                                         const VerifierConfig& config,
                                         std::chrono::system_clock::time_point now);

}  // namespace modelseal::kms
