// Policy lint: warnings about key policies that release a key more widely than
// an attested model release should. Used by `modelseal kms policy lint`, and meant
// for the product API and UI.
//
// Codes (stable; each warning also says what to do):
//   decrypt-without-pcr          an Allow covering kms:Decrypt pins no PCR
//   pcr-if-exists                a PCR condition uses ...IfExists: a request without
//                                attestation passes it
//   only-pcr15                   the only PCR pinned is PCR15 (any OS can replay it)
//   no-boot-pcr                  PCRs are pinned, none of them 0-7 (the boot chain)
//   pcr4-without-pcr7-or-pcr12   PCR4 pinned without PCR7 or PCR12
//                                (advisory GHSA-xrv8-2pf5-f3q7)
//   pcr-wildcard                 StringLike with * or ? on a PCR key
//   pcr-for-any-value            ForAnyValue: on a PCR key
//   principal-star               an Allow with Principal "*"
//   single-valued-operator-on-multivalued-key
//                                e.g. StringEquals on kms:EncryptionContextKeys
//   no-deny-without-attestation  no Deny stops a Decrypt that carries no Recipient
// Pure; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "kms/policy.h"

namespace modelseal::kms {

struct LintWarning {
  std::optional<size_t> statement;  // 0-based index; unset for the policy as a whole
  std::string sid;
  std::string code;
  std::string message;  // what is wrong and what to do
};

std::vector<LintWarning> LintPolicy(const Policy& policy);

}  // namespace modelseal::kms
