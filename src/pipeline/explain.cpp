// Evaluating a key release the way the key service does: the key policy (when
// the caller may read it) is evaluated for a Decrypt with Recipient from a given
// machine, and every statement that could allow it says which condition the
// machine does not meet. Used to explain a refused load and for "would this
// machine be allowed?".
#include "pipeline/explain.h"

#include "attest/attest.h"
#include "common/bytes.h"
#include "kms/authorize.h"
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

std::string StatementName(const kms::StatementTrace& t) {
  return t.sid.empty() ? "#" + std::to_string(t.index + 1) : t.sid;
}

// The request as the key service evaluates a Decrypt with Recipient: the
// service's own context builder (kms/authorize.h), so the two cannot drift.
kms::RequestContext DecryptRequest(const std::string& principal, const std::string& arn,
                                   const sealed::EncryptionContext& context,
                                   const std::map<uint32_t, Bytes>& pcrs, bool development) {
  kms::VerifiedAttestation attestation;
  attestation.development = development;
  attestation.document.kind = attest::DocumentKind::kNitroTpm;
  attestation.document.pcrs = pcrs;
  const kms::EncryptionContext ctx(context.begin(), context.end());
  kms::EvaluationRequest q;
  q.principal_arn = principal;
  q.operation = "Decrypt";
  q.resource = arn;
  q.key_resource = true;
  q.encryption_context = &ctx;
  q.attestation = &attestation;
  return kms::BuildRequestContext(q);
}

Result<ReleaseVerdict> Evaluate(const kms::KmsClient& kms, const std::string& key_id,
                                const std::string& principal,
                                const sealed::EncryptionContext& context,
                                const std::map<uint32_t, Bytes>& pcrs, bool development) {
  MS_ASSIGN_OR_RETURN(auto got,
                      kms.Call("GetKeyPolicy", {{"KeyId", key_id}, {"PolicyName", "default"}}));
  if (!got.contains("Policy") || !got["Policy"].is_string()) {
    return Fail(ErrorCode::kInternal, "bad-response", "GetKeyPolicy returned no policy");
  }
  MS_ASSIGN_OR_RETURN(kms::Policy policy, kms::ParsePolicy(got["Policy"].get<std::string>()));
  std::string arn = key_id;
  if (auto described = kms.Call("DescribeKey", {{"KeyId", key_id}});
      described.ok() && described->contains("KeyMetadata")) {
    arn = (*described)["KeyMetadata"].value("Arn", key_id);
  }
  const kms::RequestContext request = DecryptRequest(principal, arn, context, pcrs, development);
  const kms::Decision d = kms::Evaluate(policy, request);

  ReleaseVerdict v;
  v.allowed = d.allowed();
  v.decision = d.Describe();
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
    if (st.applies_to_request && !v.allowed) {
      if (t.allow) {
        any_candidate = true;
        for (const auto& c : t.conditions) {
          if (c.matched) continue;
          const std::string have =
              c.request_values ? Join(*c.request_values, ", ") : std::string("nothing");
          v.lines.push_back("statement " + StatementName(t) + " wants " + ShortKey(c.key) + "=" +
                            Join(c.policy_values, " or ") + ", this machine has " + have);
        }
      } else if (t.applies) {
        v.lines.push_back("statement " + StatementName(t) + " denies " + request.action + " to " +
                          principal + " explicitly");
      }
    }
    v.statements.push_back(std::move(st));
  }
  if (!v.allowed && !any_candidate) {
    v.lines.push_back("no statement of the key policy allows " + request.action + " on " + arn +
                      " to " + principal);
  }
  return v;
}

}  // namespace

std::optional<ReleaseVerdict> ExplainDenial(const kms::KmsClient& kms, const std::string& key_id,
                                            const std::string& principal_arn,
                                            const sealed::EncryptionContext& context,
                                            std::span<const uint8_t> document) {
  std::map<uint32_t, Bytes> pcrs;
  bool development = false;
  if (auto parsed = attest::ParseAttestationDocument(document); parsed.ok()) {
    pcrs = parsed->doc.pcrs;
    development = parsed->doc.claims_development();
  }
  auto v = Evaluate(kms, key_id, principal_arn, context, pcrs, development);
  if (!v.ok()) return std::nullopt;
  return std::move(*v);
}

Result<ReleaseVerdict> CheckRelease(const kms::KmsClient& kms, const std::string& key_id,
                                    const std::string& principal_arn, const std::string& model,
                                    const std::map<uint32_t, Bytes>& pcrs, bool development) {
  sealed::EncryptionContext context;
  if (!model.empty()) context[kContextModelKey] = model;
  return Evaluate(kms, key_id, principal_arn, context, pcrs, development);
}

}  // namespace modelseal::pipeline
