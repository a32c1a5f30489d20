// libFuzzer target: key policy and identity policy JSON, their evaluation against
// fixed requests, and the policy lint.
//
// Asserts:
//  - what ParsePolicy / ParseIdentityPolicy accept serialises (PolicyToJson) to
//    JSON that parses again to the same policy (a fixpoint) and decides every
//    request the same way;
//  - a key policy's statements each name a principal; an identity policy's none
//    (they are read as Principal "*", and PolicyToJson writes them so);
//  - Evaluate is consistent with its trace: one trace entry per statement, an
//    Allow comes from an applicable Allow statement and only when no Deny
//    applies, an explicit Deny from an applicable Deny, and nothing applicable
//    means an implicit deny; condition key names match regardless of case;
//  - lint warnings name statements that exist.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kms/lint.h"
#include "kms/policy.h"

namespace {

using namespace modelseal::kms;

const std::string kKeyArn =
    "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

const std::vector<RequestContext>& Requests() {
  static const std::vector<RequestContext> r = [] {
    const std::string pcr4 = "kms:RecipientAttestation:NitroTPMPCR4";
    const std::string pcr7 = "kms:RecipientAttestation:NitroTPMPCR7";
    const std::string consumer = "arn:aws:iam::444455556666:role/consumer";
    return std::vector<RequestContext>{
        {consumer,
         "kms:Decrypt",
         kKeyArn,
         {{pcr4, {std::string(96, 'a')}},
          {pcr7, {std::string(96, 'b')}},
          {"kms:EncryptionContext:model", {"tiny"}},
          {"kms:EncryptionContextKeys", {"model", "owner"}}}},
        {consumer, "kms:Decrypt", kKeyArn, {}},
        {"arn:aws:iam::111122223333:user/alice", "kms:PutKeyPolicy", kKeyArn, {}},
        {"arn:aws:iam::999999999999:user/eve",
         "kms:GenerateDataKey",
         kKeyArn,
         {{"aws:SecureTransport", {"true"}}, {"kms:EncryptionContext:model", {"A"}}}},
    };
  }();
  return r;
}

RequestContext Lowered(const RequestContext& r) {
  RequestContext out = r;
  out.keys.clear();
  for (const auto& [k, v] : r.keys) {
    std::string l = k;
    for (char& c : l) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.keys[l] = v;
  }
  return out;
}

void CheckDecision(const Policy& p, const Decision& d) {
  if (d.trace.size() != p.statements.size()) __builtin_trap();
  bool deny_applies = false, allow_applies = false;
  for (size_t i = 0; i < d.trace.size(); ++i) {
    const StatementTrace& t = d.trace[i];
    if (t.index != i || t.allow != p.statements[i].allow) __builtin_trap();
    if (t.applies && !(t.principal_matched && t.action_matched && t.resource_matched)) {
      __builtin_trap();
    }
    for (const auto& c : t.conditions)
      if (t.applies && !c.matched) __builtin_trap();
    if (t.applies) (t.allow ? allow_applies : deny_applies) = true;
  }
  switch (d.effect) {
    case Effect::kAllow:
      if (deny_applies || !d.statement || *d.statement >= p.statements.size()) __builtin_trap();
      if (!p.statements[*d.statement].allow || !d.trace[*d.statement].applies) __builtin_trap();
      break;
    case Effect::kExplicitDeny:
      if (!deny_applies || !d.statement || *d.statement >= p.statements.size()) __builtin_trap();
      if (p.statements[*d.statement].allow || !d.trace[*d.statement].applies) __builtin_trap();
      break;
    case Effect::kImplicitDeny:
      if (deny_applies || d.statement) __builtin_trap();
      break;
  }
  (void)d.Describe();
}

bool SameDecision(const Decision& a, const Decision& b) {
  return a.effect == b.effect && a.statement == b.statement && a.via_account == b.via_account;
}

void Check(const modelseal::Result<Policy>& p, bool identity) {
  if (!p.ok()) return;
  for (const auto& s : p->statements) {
    // An identity policy's statements are its principal's: read as Principal "*".
    if (identity && (!s.any_principal || !s.principals.empty())) __builtin_trap();
    if (!identity && !s.any_principal && s.principals.empty()) __builtin_trap();
  }
  // PolicyToJson writes the key policy form (an identity policy with Principal "*").
  const std::string j = PolicyToJson(*p, false);
  auto p2 = ParsePolicy(j);
  if (!p2.ok()) __builtin_trap();
  if (PolicyToJson(*p2, false) != j) __builtin_trap();
  (void)PolicyToJson(*p, true);
  for (const auto& r : Requests()) {
    const Decision d = Evaluate(*p, r);
    CheckDecision(*p, d);
    if (!SameDecision(d, Evaluate(*p2, r))) __builtin_trap();
    if (!SameDecision(d, Evaluate(*p, Lowered(r)))) __builtin_trap();
  }
  for (const auto& w : LintPolicy(*p)) {
    if (w.statement && *w.statement >= p->statements.size()) __builtin_trap();
    if (w.code.empty() || w.message.empty()) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  Check(ParsePolicy(text), false);
  Check(ParseIdentityPolicy(text), true);
  return 0;
}
