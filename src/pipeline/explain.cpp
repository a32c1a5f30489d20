// Explaining a refused key release: the key policy (when the consumer may read
// it) is evaluated again for the request that was denied, and every statement
// that could have allowed it says which condition this machine did not meet.
#include "pipeline/explain.h"

#include "attest/attest.h"
#include "common/bytes.h"
#include "kms/policy.h"
#include "pipeline/internal.h"

namespace modelseal::pipeline {

namespace {

std::string ShortKey(const std::string& key) {
  static const std::string kPrefix = "kms:RecipientAttestation:";
  if (key.size() > kPrefix.size() && key.compare(0, kPrefix.size(), kPrefix) == 0) {
    return key.substr(kPrefix.size());
  }
  return key;
}

std::string Join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

// The request as the key service evaluates a Decrypt with Recipient.
kms::RequestContext DecryptRequest(const std::string& principal, const std::string& arn,
                                   const sealed::EncryptionContext& context,
                                   const attest::AttestationDocument* doc) {
  kms::RequestContext r;
  r.principal_arn = principal;
  r.action = "kms:Decrypt";
  r.resource = arn;
  r.keys["aws:PrincipalArn"] = {principal};
  std::vector<std::string> keys;
  for (const auto& [k, v] : context) {
    r.keys["kms:EncryptionContext:" + k] = {v};
    keys.push_back(k);
  }
  if (!keys.empty()) r.keys["kms:EncryptionContextKeys"] = keys;
  if (doc != nullptr) {
    for (const auto& [i, v] : doc->pcrs) {
      r.keys["kms:RecipientAttestation:NitroTPMPCR" + std::to_string(i)] = {ToHex(v)};
    }
  }
  return r;
}

std::string StatementName(const kms::StatementTrace& t) {
  return t.sid.empty() ? "#" + std::to_string(t.index + 1) : t.sid;
}

}  // namespace

std::optional<DenialExplanation> ExplainDenial(const kms::KmsClient& kms, const std::string& key_id,
                                               const std::string& principal_arn,
                                               const sealed::EncryptionContext& context,
                                               std::span<const uint8_t> document) {
  auto got = kms.Call("GetKeyPolicy", {{"KeyId", key_id}, {"PolicyName", "default"}});
  if (!got.ok() || !got->contains("Policy") || !(*got)["Policy"].is_string()) return std::nullopt;
  auto policy = kms::ParsePolicy((*got)["Policy"].get<std::string>());
  if (!policy.ok()) return std::nullopt;
  auto described = kms.Call("DescribeKey", {{"KeyId", key_id}});
  std::string arn = key_id;
  if (described.ok() && described->contains("KeyMetadata")) {
    arn = (*described)["KeyMetadata"].value("Arn", key_id);
  }
  auto parsed = attest::ParseAttestationDocument(document);
  std::map<uint32_t, Bytes> pcrs;
  if (parsed.ok()) pcrs = parsed->doc.pcrs;

  const kms::RequestContext request =
      DecryptRequest(principal_arn, arn, context, parsed.ok() ? &parsed->doc : nullptr);
  const kms::Decision d = kms::Evaluate(*policy, request);

  DenialExplanation ex;
  ex.decision = d.Describe();
  bool any_candidate = false;
  for (const auto& t : d.trace) {
    DenialStatement st;
    st.index = t.index;
    st.sid = t.sid;
    st.allow = t.allow;
    st.applies_to_request = t.principal_matched && t.action_matched && t.resource_matched;
    for (const auto& c : t.conditions) {
      st.conditions.push_back({c.key, c.op, c.policy_values,
                               c.request_values.value_or(std::vector<std::string>{}), c.matched});
    }
    if (st.applies_to_request) {
      if (t.allow) {
        any_candidate = true;
        for (const auto& c : t.conditions) {
          if (c.matched) continue;
          const std::string have =
              c.request_values ? Join(*c.request_values, ", ") : std::string("nothing");
          ex.lines.push_back("statement " + StatementName(t) + " wants " + ShortKey(c.key) + "=" +
                             Join(c.policy_values, " or ") + ", this machine has " + have);
        }
      } else if (t.applies) {
        ex.lines.push_back("statement " + StatementName(t) + " denies " + request.action + " to " +
                           principal_arn + " explicitly");
      }
    }
    ex.statements.push_back(std::move(st));
  }
  if (!any_candidate) {
    ex.lines.push_back("no statement of the key policy allows " + request.action + " on " + arn +
                       " to " + principal_arn);
  }
  return ex;
}

}  // namespace modelseal::pipeline
