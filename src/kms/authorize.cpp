#include "kms/authorize.h"
#include "common/text.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <mutex>

#include "kms/errors.h"

namespace modelseal::kms {

namespace {

// Adds a value under `key`, merging with a key already present that differs only
// in case (condition key names are case-insensitive; see policy.h).
void AddValue(RequestContext& r, const std::string& key, const std::string& value) {
  const std::string want = AsciiLower(key);
  for (auto& [k, v] : r.keys) {
    if (AsciiLower(k) == want) {
      v.push_back(value);
      return;
    }
  }
  r.keys[key] = {value};
}

std::string FormatStatement(const Decision& d) {
  if (!d.statement) return "";
  return std::to_string(*d.statement + 1) + (d.sid.empty() ? "" : " " + d.sid);
}

}  // namespace

RequestContext BuildRequestContext(const EvaluationRequest& q) {
  RequestContext r;
  r.principal_arn = q.principal_arn;
  r.action = "kms:" + q.operation;
  r.resource = q.resource;
  const std::string account = AccountOfArn(q.principal_arn);
  r.keys["aws:PrincipalArn"] = {q.principal_arn};
  r.keys["aws:PrincipalAccount"] = {account};
  r.keys["kms:CallerAccount"] = {account};
  if (q.encryption_context && !q.encryption_context->empty()) {
    std::vector<std::string> names;
    for (const auto& [k, v] : *q.encryption_context) {
      AddValue(r, "kms:EncryptionContext:" + k, v);
      names.push_back(k);
    }
    r.keys["kms:EncryptionContextKeys"] = names;
  }
  if (q.operation == "Encrypt" || q.operation == "Decrypt") {
    r.keys["kms:EncryptionAlgorithm"] = {"SYMMETRIC_DEFAULT"};
  }
  if (q.key_resource) {
    r.keys["kms:KeyOrigin"] = {"AWS_KMS"};
    r.keys["kms:KeySpec"] = {"SYMMETRIC_DEFAULT"};
    r.keys["kms:KeyUsage"] = {"ENCRYPT_DECRYPT"};
    r.keys["kms:MultiRegion"] = {"false"};
  }
  if (q.attestation) {
    const auto& doc = q.attestation->document;
    const bool tpm = doc.kind == attest::DocumentKind::kNitroTpm;
    for (const auto& [i, v] : doc.pcrs) {
      r.keys[std::string("kms:RecipientAttestation:") + (tpm ? "NitroTPMPCR" : "PCR") +
             std::to_string(i)] = {ToHex(v)};
    }
    if (!tpm && doc.pcrs.count(0)) {
      r.keys["kms:RecipientAttestation:ImageSha384"] = {ToHex(doc.pcrs.at(0))};
    }
    r.keys[kAttestationRootKey] = {q.attestation->development ? kRootDevelopment : kRootAwsNitro};
  }
  return r;
}

Result<Identity> RoleIdentity(const std::string& role) {
  // Parsed once per process: every request resolves its caller's role.
  static const std::map<std::string, std::shared_ptr<const Policy>> kRoles = [] {
    std::map<std::string, std::shared_ptr<const Policy>> m;
    const std::map<std::string, std::string> texts = {
        {"admin", R"({"Version":"2012-10-17","Statement":[{"Sid":"Admin","Effect":"Allow",
          "Action":"kms:*","Resource":"*"}]})"},
        {"consumer", R"({"Version":"2012-10-17","Statement":[{"Sid":"Consumer","Effect":"Allow",
          "Action":["kms:Decrypt","kms:DescribeKey","kms:ListKeys","kms:ListAliases"],
          "Resource":"*"}]})"},
    };
    for (const auto& [name, text] : texts) {
      auto p = ParseIdentityPolicy(text);
      if (p.ok()) m[name] = std::make_shared<const Policy>(std::move(*p));
    }
    return m;
  }();
  if (role == "none") return Identity{role, nullptr};
  auto it = kRoles.find(role);
  if (it == kRoles.end()) {
    return MakeError(ErrorCode::kInvalidArgument, "kms", "bad-role",
                     "unknown role \"" + role + "\" (admin, consumer or none)");
  }
  return Identity{role, it->second};
}

Result<Identity> ResolveIdentity(const std::optional<std::string>& role,
                                 const std::optional<std::string>& identity_policy,
                                 const std::string& principal_arn,
                                 const std::string& service_account) {
  if (role && identity_policy) {
    return MakeError(ErrorCode::kInvalidArgument, "kms", "bad-role",
                     "give a role or an identity policy, not both");
  }
  if (identity_policy) {
    // Parsed once per distinct text (bounded), like key policies.
    static std::mutex mu;
    static std::map<std::string, std::shared_ptr<const Policy>> cache;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (auto it = cache.find(*identity_policy); it != cache.end())
        return Identity{"", it->second};
    }
    MS_ASSIGN_OR_RETURN(Policy p, ParseIdentityPolicy(*identity_policy));
    auto parsed = std::make_shared<const Policy>(std::move(p));
    std::lock_guard<std::mutex> lock(mu);
    if (cache.size() >= 256) cache.clear();
    cache.emplace(*identity_policy, parsed);
    return Identity{"", parsed};
  }
  if (role) return RoleIdentity(*role);
  return RoleIdentity(AccountOfArn(principal_arn) == service_account ? "admin" : "none");
}

Authorization Authorize(const Policy* key_policy, const Identity& identity,
                        const RequestContext& request) {
  Authorization a;
  if (identity.policy) a.identity = Evaluate(*identity.policy, request);
  if (key_policy) a.key = Evaluate(*key_policy, request);
  const bool identity_allows = a.identity && a.identity->effect == Effect::kAllow;
  const bool identity_denies = a.identity && a.identity->effect == Effect::kExplicitDeny;
  auto use_identity = [&] {
    a.deciding =
        a.identity && a.identity->statement ? "identity " + FormatStatement(*a.identity) : "";
    a.reason = a.identity ? "identity policy: " + a.identity->Describe()
                          : "the caller has no identity policy (implicit deny)";
  };
  if (!key_policy) {
    a.allowed = identity_allows;
    use_identity();
    return a;
  }
  const Decision& k = *a.key;
  if (k.effect == Effect::kExplicitDeny || identity_denies) {
    if (k.effect == Effect::kExplicitDeny) {
      a.deciding = FormatStatement(k);
      a.reason = k.Describe();
    } else {
      use_identity();
    }
    return a;
  }
  if (k.effect == Effect::kAllow && !k.via_account) {
    a.allowed = true;
    a.deciding = FormatStatement(k);
    a.reason = k.Describe();
    return a;
  }
  if (k.effect == Effect::kAllow && k.via_account) {
    // The key policy delegates to the caller's account: its identity policy decides.
    a.allowed = identity_allows;
    if (identity_allows) {
      a.deciding = FormatStatement(k) + " + identity " + FormatStatement(*a.identity);
      a.reason = k.Describe() + " (for the account) and identity policy " + a.identity->Describe();
    } else {
      a.deciding = FormatStatement(k);
      a.reason = "statement " + std::to_string(*k.statement + 1) +
                 " allows the caller's account, but " +
                 (a.identity ? "its identity policy does not: " + a.identity->Describe()
                             : std::string("the caller has no identity policy")) +
                 " (implicit deny)";
    }
    return a;
  }
  a.reason = k.Describe();
  return a;
}

Result<RecipientCheck> VerifyRecipient(std::span<const uint8_t> document,
                                       const std::vector<attest::TrustedRoot>& roots,
                                       std::shared_ptr<attest::ChainCache> cache,
                                       std::optional<attest::AttestationDocument>* claimed) {
  attest::VerifyOptions opts;
  opts.roots = roots;
  opts.max_age_ms = 5 * 60 * 1000;
  opts.chain_cache = std::move(cache);
  const attest::VerificationReport report = attest::VerifyAttestationDocument(document, opts);
  if (report.document && claimed) *claimed = report.document;
  if (!report.verified) {
    const auto* f = report.first_failure();
    return aws_error::Make(aws_error::kAccessDenied,
                           "The recipient attestation document did not verify (" +
                               (f ? f->name + ": " + f->detail : std::string("unknown check")) +
                               ")");
  }
  RecipientCheck out;
  MS_ASSIGN_OR_RETURN(out.attestation.document, attest::VerifiedDocument(report));
  out.attestation.development = report.development;
  if (!out.attestation.document.public_key) {
    return aws_error::Make(aws_error::kValidation,
                           "The recipient attestation document carries no public key");
  }
  out.public_key = *out.attestation.document.public_key;
  return out;
}

}  // namespace modelseal::kms
