#include "kms/lint.h"
#include "common/text.h"

#include <algorithm>
#include <set>

namespace modelseal::kms {

namespace {

bool CoversDecrypt(const Statement& s) {
  const bool listed = std::any_of(s.actions.begin(), s.actions.end(), [](const std::string& a) {
    return WildcardMatch(a, "kms:Decrypt", true);
  });
  return s.not_action ? !listed : listed;
}

bool IsAttestationKey(const std::string& key) {
  return AsciiLower(key).rfind("kms:recipientattestation:", 0) == 0;
}

bool Positive(const Condition& c) {
  return c.base_op == "StringEquals" || c.base_op == "StringEqualsIgnoreCase" ||
         c.base_op == "StringLike";
}

}  // namespace

std::vector<LintWarning> LintPolicy(const Policy& policy) {
  std::vector<LintWarning> out;
  bool deny_without_attestation = false;
  for (size_t i = 0; i < policy.statements.size(); ++i) {
    const Statement& s = policy.statements[i];
    auto warn = [&](const std::string& code, const std::string& message) {
      out.push_back({i, s.sid, code, message});
    };
    for (const auto& c : s.conditions) {
      if (IsMultivaluedKey(c.key) && c.set == Condition::Set::kNone && c.base_op != "Null") {
        warn("single-valued-operator-on-multivalued-key",
             c.key + " has several values; write ForAnyValue:" + c.op + " (some key) or " +
                 "ForAllValues:" + c.op + " (only these keys) to say which you mean.");
      }
    }
    if (!s.allow) {
      const bool null_attestation =
          std::any_of(s.conditions.begin(), s.conditions.end(), [](const Condition& c) {
            return c.base_op == "Null" && IsAttestationKey(c.key) && c.values.size() == 1 &&
                   (c.values[0] == "true" || c.values[0] == "True" || c.values[0] == "TRUE");
          });
      if (CoversDecrypt(s) && null_attestation) deny_without_attestation = true;
      continue;
    }
    if (s.any_principal) {
      warn("principal-star",
           "Principal \"*\" allows every AWS principal; name the consumer's role ARN instead.");
    }
    std::set<uint32_t> pinned;
    for (const auto& c : s.conditions) {
      const auto pcr = AttestationPcrIndex(c.key);
      if (!pcr) continue;
      if (c.set == Condition::Set::kAnyValue) {
        warn("pcr-for-any-value",
             c.op + " on " + c.key + " compares a single value as a set; use StringEquals.");
      }
      if (c.base_op == "StringLike" &&
          std::any_of(c.values.begin(), c.values.end(), [](const std::string& v) {
            return v.find_first_of("*?") != std::string::npos;
          })) {
        warn("pcr-wildcard", c.op + " with a wildcard on " + c.key +
                                 " accepts more than one measurement; give the exact value with "
                                 "StringEquals.");
      }
      if (Positive(c) && c.if_exists) {
        warn("pcr-if-exists", c.op + " on " + c.key +
                                  " is true when the request has no attestation; drop IfExists.");
      }
      if (Positive(c) && !c.if_exists && c.set == Condition::Set::kNone) pinned.insert(*pcr);
    }
    if (!CoversDecrypt(s)) continue;
    if (pinned.empty()) {
      warn("decrypt-without-pcr",
           "This statement allows kms:Decrypt without pinning any PCR, so it releases the key "
           "without attestation; limit its actions (e.g. NotAction kms:Decrypt) or add "
           "StringEquals conditions on kms:RecipientAttestation:NitroTPMPCR4, PCR7 and PCR12.");
      continue;
    }
    const bool boot = std::any_of(pinned.begin(), pinned.end(), [](uint32_t p) { return p <= 7; });
    if (pinned == std::set<uint32_t>{15}) {
      warn("only-pcr15",
           "Only PCR15 (the loaded model) is pinned; any operating system can extend PCR15 to that "
           "value. Pin the boot chain too: PCR4, PCR7 and PCR12.");
    } else if (!boot) {
      warn("no-boot-pcr",
           "No PCR of the boot chain (0-7) is pinned; PCRs 8-15 can be extended by the booted "
           "operating system. Pin PCR4 and PCR7 (and PCR12).");
    }
    if (pinned.count(4) && !pinned.count(7) && !pinned.count(12)) {
      warn("pcr4-without-pcr7-or-pcr12",
           "PCR4 is pinned without PCR7 or PCR12; see AWS security advisory GHSA-xrv8-2pf5-f3q7 "
           "and pin PCR7 and PCR12 as well.");
    }
  }
  if (!deny_without_attestation) {
    out.push_back({std::nullopt, "", "no-deny-without-attestation",
                   "No Deny statement stops a kms:Decrypt that carries no attestation; add "
                   "{\"Effect\": \"Deny\", \"Action\": \"kms:Decrypt\", \"Condition\": {\"Null\": "
                   "{\"kms:RecipientAttestation:NitroTPMPCR4\": \"true\"}}} for the consumer."});
  }
  return out;
}

}  // namespace modelseal::kms
