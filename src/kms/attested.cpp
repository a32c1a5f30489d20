// The attested-release statement that `kms policy allow-attested` and the
// product's policy builder add to a key policy.
#include <algorithm>

#include "common/bytes.h"
#include "kms/policy.h"

namespace modelseal::kms {

Result<Policy> WithAttestedStatement(Policy policy, const std::string& principal,
                                     const std::vector<std::string>& actions,
                                     const std::map<uint32_t, std::string>& pcrs,
                                     const std::string& sid) {
  auto bad = [](const std::string& reason, const std::string& message) {
    return MakeError(ErrorCode::kInvalidArgument, "kms", reason, message);
  };
  if (principal.empty()) return bad("no-principal", "an attested statement needs a principal ARN");
  if (pcrs.empty()) return bad("no-pcrs", "an attested statement needs at least one PCR");
  // PCRs 8-15 are extended by the booted operating system (PCR15: the model), so an
  // OS that is not the measured one can replay their expected values; only the boot
  // chain the firmware measures (PCR0-7: firmware, boot loader/UKI in PCR4, Secure
  // Boot state in PCR7) ties the release to the booted code. docs/kms.md.
  if (std::none_of(pcrs.begin(), pcrs.end(), [](const auto& p) { return p.first <= 7; })) {
    return bad("no-boot-pcr",
               "the statement must pin at least one boot PCR (0-7; PCR4 and PCR7 are the usual "
               "ones): PCRs 8-15 can be extended by the operating system to any expected value");
  }
  Statement st;
  st.sid = sid;
  st.allow = true;
  st.principals = {principal};
  st.actions = actions.empty() ? std::vector<std::string>{"kms:Decrypt"} : actions;
  st.resources = {"*"};
  for (const auto& [index, hex] : pcrs) {
    const auto bytes = FromHex(hex);
    if (index > 23 || !bytes || bytes->size() != 48) {
      return bad("bad-pcr", "PCR " + std::to_string(index) +
                                " must be 0..23 with 96 hex digits (a SHA-384 value)");
    }
    Condition c;
    c.op = c.base_op = "StringEqualsIgnoreCase";
    c.key = "kms:RecipientAttestation:NitroTPMPCR" + std::to_string(index);
    c.values = {ToHex(*bytes)};
    st.conditions.push_back(std::move(c));
  }
  // A statement with the same Sid is replaced; every other statement is kept.
  std::erase_if(policy.statements, [&](const Statement& s) { return s.sid == sid; });
  policy.statements.push_back(std::move(st));
  return policy;
}

}  // namespace modelseal::kms
