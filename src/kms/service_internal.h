// Shared by service.cpp (dispatch, identities, audit) and service_ops.cpp (the
// operations). Not a public header.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "kms/authorize.h"
#include "kms/errors.h"
#include "kms/service.h"

namespace modelseal::kms {

// The state of one request, for the reply and the audit line.
struct KeyService::Call {
  std::string operation;
  std::string principal;
  Identity identity;
  nlohmann::json req;
  std::string key_arn;
  std::string decision = "error";  // allow | deny | error
  std::string statement;
  std::string error_type;
  bool dry_run = false;
  int status_override = 0;  // e.g. 412 for DryRunOperationException
  // Set only from a verified document: the source of the condition keys.
  std::optional<VerifiedAttestation> attestation;
  // What an unverified document claimed, for the audit log only.
  std::optional<attest::AttestationDocument> claimed;
};

using Handler = Result<nlohmann::json> (*)(KeyService& svc, KeyService::Call& call,
                                           const std::vector<attest::TrustedRoot>& roots);
// Operation name -> handler (service_ops.cpp).
const std::map<std::string, Handler>& OperationHandlers();

}  // namespace modelseal::kms
