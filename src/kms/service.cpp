#include "kms/service.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "common/bytes.h"
#include "common/ossl.h"
#include "kms/policy.h"
#include "kms/recipient.h"

namespace modelseal::kms {

using nlohmann::json;

// The state of one request, for the reply and the audit line.
struct KeyService::Call {
  std::string operation;
  std::string principal;
  json req;
  std::string key_arn;
  std::string decision = "error";  // allow | deny | error
  std::string statement;
  std::string error_type;
  // Set only from a verified document: the source of the condition keys.
  std::optional<attest::AttestationDocument> attestation;
  // What an unverified document claimed, for the audit log only.
  std::optional<attest::AttestationDocument> claimed;
  bool development = false;
};

namespace {

// An AWS error: reason carries the exception name.
Error Aws(const std::string& type, const std::string& message) {
  return MakeError(ErrorCode::kInvalidArgument, "kms", type, message);
}

// Store/policy errors -> the exception AWS would send.
Error ToAws(const Error& e) {
  static const std::map<std::string, std::string> kMap = {
      {"not-found", "NotFoundException"},
      {"invalid-state", "KMSInvalidStateException"},
      {"invalid-ciphertext", "InvalidCiphertextException"},
      {"already-exists", "AlreadyExistsException"},
      {"invalid-alias", "ValidationException"},
      {"invalid-argument", "ValidationException"},
      {"malformed-policy", "MalformedPolicyDocumentException"},
  };
  if (e.reason.find("Exception") != std::string::npos) return e;
  auto it = kMap.find(e.reason);
  return Aws(it == kMap.end() ? "KMSInternalException" : it->second, e.message);
}

double EpochSeconds(uint64_t ms) {
  return static_cast<double>(ms) / 1000.0;
}

json KeyMetadataJson(const KeyMetadata& m, const std::string& account) {
  json j = {{"AWSAccountId", account},
            {"KeyId", m.key_id},
            {"Arn", m.arn},
            {"CreationDate", EpochSeconds(m.creation_ms)},
            {"Enabled", m.state == "Enabled"},
            {"Description", m.description},
            {"KeyUsage", "ENCRYPT_DECRYPT"},
            {"KeyState", m.state},
            {"Origin", "AWS_KMS"},
            {"KeyManager", "CUSTOMER"},
            {"CustomerMasterKeySpec", "SYMMETRIC_DEFAULT"},
            {"KeySpec", "SYMMETRIC_DEFAULT"},
            {"EncryptionAlgorithms", {"SYMMETRIC_DEFAULT"}},
            {"MultiRegion", false}};
  if (m.state == "PendingDeletion") j["DeletionDate"] = EpochSeconds(m.deletion_ms);
  return j;
}

// ---- request field access with AWS's validation messages

Result<std::optional<std::string>> OptString(const json& req, const char* name) {
  if (!req.contains(name) || req[name].is_null()) return std::optional<std::string>();
  if (!req[name].is_string()) {
    return Aws("SerializationException", std::string("Field ") + name + " must be a string");
  }
  return std::optional<std::string>(req[name].get<std::string>());
}

Result<std::string> String(const json& req, const char* name) {
  MS_ASSIGN_OR_RETURN(auto v, OptString(req, name));
  if (!v || v->empty()) {
    return Aws("ValidationException",
               std::string("1 validation error detected: Value null at '") + name +
                   "' failed to satisfy constraint: Member must not be null");
  }
  return *v;
}

Result<Bytes> Blob(const json& req, const char* name, size_t max) {
  MS_ASSIGN_OR_RETURN(std::string text, String(req, name));
  auto b = Base64Decode(text);
  if (!b)
    return Aws("SerializationException", std::string("Field ") + name + " is not valid base64");
  if (b->empty() || b->size() > max) {
    return Aws("ValidationException",
               std::string("1 validation error detected: Value at '") + name +
                   "' failed to satisfy constraint: Member must have length between 1 and " +
                   std::to_string(max));
  }
  return *b;
}

Result<EncryptionContext> Context(const json& req) {
  EncryptionContext ctx;
  if (!req.contains("EncryptionContext") || req["EncryptionContext"].is_null()) return ctx;
  const json& c = req["EncryptionContext"];
  if (!c.is_object())
    return Aws("SerializationException", "EncryptionContext must be a map of strings");
  for (auto it = c.begin(); it != c.end(); ++it) {
    if (!it.value().is_string()) {
      return Aws("SerializationException", "EncryptionContext values must be strings");
    }
    ctx[it.key()] = it.value().get<std::string>();
  }
  return ctx;
}

// Pagination: Marker is the index of the next item.
Result<std::pair<size_t, size_t>> Page(const json& req, size_t total) {
  size_t limit = 100;
  size_t start = 0;
  if (req.contains("Limit")) {
    if (!req["Limit"].is_number_integer() || req["Limit"].get<int64_t>() < 1 ||
        req["Limit"].get<int64_t>() > 1000) {
      return Aws("ValidationException", "Limit must be an integer between 1 and 1000");
    }
    limit = req["Limit"].get<size_t>();
  }
  MS_ASSIGN_OR_RETURN(auto marker, OptString(req, "Marker"));
  if (marker) {
    try {
      start = std::stoul(*marker);
    } catch (...) {
      return Aws("InvalidMarkerException", "Marker is invalid");
    }
    if (start > total) return Aws("InvalidMarkerException", "Marker is invalid");
  }
  return std::make_pair(start, std::min(total, start + limit));
}

std::string AccountOfArn(const std::string& arn) {
  size_t pos = 0;
  for (int i = 0; i < 4 && pos != std::string::npos; ++i) pos = arn.find(':', pos) + 1;
  if (pos == 0 || pos == std::string::npos) return "";
  return arn.substr(pos, arn.find(':', pos) - pos);
}

}  // namespace

Result<std::shared_ptr<const Policy>> KeyService::ParsedPolicy(const std::string& text) {
  {
    std::lock_guard<std::mutex> lock(policy_mu_);
    if (auto it = policies_.find(text); it != policies_.end()) return it->second;
  }
  MS_ASSIGN_OR_RETURN(Policy parsed, ParsePolicy(text));
  auto p = std::make_shared<const Policy>(std::move(parsed));
  std::lock_guard<std::mutex> lock(policy_mu_);
  // Bounded: one entry per distinct policy text in use; start over if that grows.
  if (policies_.size() >= 256) policies_.clear();
  policies_.emplace(text, p);
  return p;
}

std::string KeyService::DefaultPolicy(const std::string& account) {
  json p = {{"Version", "2012-10-17"},
            {"Id", "key-default-1"},
            {"Statement",
             {{{"Sid", "Enable IAM User Permissions"},
               {"Effect", "Allow"},
               {"Principal", {{"AWS", "arn:aws:iam::" + account + ":root"}}},
               {"Action", "kms:*"},
               {"Resource", "*"}}}}};
  return p.dump(2);
}

KeyService::KeyService(std::unique_ptr<KeyStore> store, ServiceConfig config)
    : store_(std::move(store)), config_(std::move(config)) {
  if (auto aws = attest::AwsRoot(); aws.ok()) roots_.push_back(*aws);
  for (const auto& r : config_.extra_roots) roots_.push_back(r);
  if (!config_.audit_log_path.empty()) {
    audit_fd_ =
        ::open(config_.audit_log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  }
}

KeyService::~KeyService() {
  if (audit_fd_ >= 0) ::close(audit_fd_);
}

void KeyService::Audit(const Call& c) {
  if (audit_fd_ < 0) return;
  json line = {{"time", attest::FormatTimeMs(attest::NowMs())},
               {"operation", c.operation},
               {"principal", c.principal},
               {"key", c.key_arn},
               {"decision", c.decision}};
  if (!c.statement.empty()) line["statement"] = c.statement;
  if (!c.error_type.empty()) line["error"] = c.error_type;
  if (const auto& doc = c.attestation ? c.attestation : c.claimed) {
    json pcrs = json::object();
    for (const auto& [i, v] : doc->pcrs) pcrs[std::to_string(i)] = ToHex(v);
    line["attestation"] = {{"module_id", doc->module_id},
                           {"verified", c.attestation.has_value()},
                           {"development", c.development},
                           {"pcrs", pcrs}};
  }
  const std::string text = line.dump() + "\n";
  std::lock_guard<std::mutex> lock(audit_mu_);
  if (::write(audit_fd_, text.data(), text.size()) < 0) {
    // The audit log is best effort; a full disk must not leak into replies.
  }
}

namespace {

// Verifies the Recipient of a request, fills the call's attestation, and returns
// the recipient's public key (DER SubjectPublicKeyInfo), or nullopt without one.
Result<std::optional<Bytes>> CheckRecipient(KeyService::Call& call,
                                            const std::vector<attest::TrustedRoot>& roots,
                                            std::shared_ptr<attest::ChainCache> cache) {
  if (!call.req.contains("Recipient") || call.req["Recipient"].is_null())
    return std::optional<Bytes>();
  const json& r = call.req["Recipient"];
  if (!r.is_object()) return Aws("SerializationException", "Recipient must be an object");
  MS_ASSIGN_OR_RETURN(auto alg, OptString(r, "KeyEncryptionAlgorithm"));
  if (alg && *alg != "RSAES_OAEP_SHA_256") {
    return Aws("ValidationException", "KeyEncryptionAlgorithm must be RSAES_OAEP_SHA_256");
  }
  MS_ASSIGN_OR_RETURN(Bytes doc, Blob(r, "AttestationDocument", 1 << 20));
  attest::VerifyOptions opts;
  opts.roots = roots;
  opts.max_age_ms = 5 * 60 * 1000;
  opts.chain_cache = std::move(cache);
  const attest::VerificationReport report = attest::VerifyAttestationDocument(doc, opts);
  if (report.document) call.claimed = report.document;
  if (!report.verified) {
    const auto* f = report.first_failure();
    return Aws("AccessDeniedException",
               "The recipient attestation document did not verify (" +
                   (f ? f->name + ": " + f->detail : std::string("unknown check")) + ")");
  }
  MS_ASSIGN_OR_RETURN(call.attestation, attest::VerifiedDocument(report));
  call.development = report.development;
  if (!call.attestation->public_key) {
    return Aws("ValidationException", "The recipient attestation document carries no public key");
  }
  return std::optional<Bytes>(*call.attestation->public_key);
}

RequestContext MakeContext(const KeyService::Call& call, const std::string& key_arn,
                           const EncryptionContext& ctx) {
  RequestContext r;
  r.principal_arn = call.principal;
  r.action = "kms:" + call.operation;
  r.resource = key_arn;
  r.keys["aws:PrincipalArn"] = {call.principal};
  r.keys["kms:CallerAccount"] = {AccountOfArn(call.principal)};
  std::vector<std::string> names;
  for (const auto& [k, v] : ctx) {
    r.keys["kms:EncryptionContext:" + k] = {v};
    names.push_back(k);
  }
  if (!names.empty()) r.keys["kms:EncryptionContextKeys"] = names;
  if (call.attestation) {
    const bool tpm = call.attestation->kind == attest::DocumentKind::kNitroTpm;
    for (const auto& [i, v] : call.attestation->pcrs) {
      r.keys[std::string("kms:RecipientAttestation:") + (tpm ? "NitroTPMPCR" : "PCR") +
             std::to_string(i)] = {ToHex(v)};
    }
    if (!tpm && call.attestation->pcrs.count(0)) {
      r.keys["kms:RecipientAttestation:ImageSha384"] = {ToHex(call.attestation->pcrs.at(0))};
    }
  }
  return r;
}

}  // namespace

// Evaluates the key's policy for the call; records the decision.
static Status Authorize(KeyService& svc, KeyService::Call& call, const KeyMetadata& key,
                        const EncryptionContext& ctx) {
  call.key_arn = key.arn;
  MS_ASSIGN_OR_RETURN(auto policy, svc.ParsedPolicy(key.policy));
  const Decision d = Evaluate(*policy, MakeContext(call, key.arn, ctx));
  call.statement =
      d.statement ? std::to_string(*d.statement + 1) + (d.sid.empty() ? "" : " " + d.sid) : "";
  call.decision = d.allowed() ? "allow" : "deny";
  if (!d.allowed()) {
    return Aws("AccessDeniedException",
               "User: " + call.principal + " is not authorized to perform: kms:" + call.operation +
                   " on resource: " + key.arn + " because " + d.Describe());
  }
  return Ok{};
}

namespace {

using Handler = Result<json> (*)(KeyService& svc, KeyService::Call& call,
                                 const std::vector<attest::TrustedRoot>& roots);

Result<json> CreateKey(KeyService& svc, KeyService::Call& call,
                       const std::vector<attest::TrustedRoot>&) {
  MS_ASSIGN_OR_RETURN(auto policy, OptString(call.req, "Policy"));
  MS_ASSIGN_OR_RETURN(auto desc, OptString(call.req, "Description"));
  MS_ASSIGN_OR_RETURN(auto usage, OptString(call.req, "KeyUsage"));
  MS_ASSIGN_OR_RETURN(auto spec, OptString(call.req, "KeySpec"));
  MS_ASSIGN_OR_RETURN(auto cmk_spec, OptString(call.req, "CustomerMasterKeySpec"));
  if (usage && *usage != "ENCRYPT_DECRYPT") {
    return Aws("UnsupportedOperationException", "Only KeyUsage ENCRYPT_DECRYPT is supported");
  }
  if ((spec && *spec != "SYMMETRIC_DEFAULT") || (cmk_spec && *cmk_spec != "SYMMETRIC_DEFAULT")) {
    return Aws("UnsupportedOperationException", "Only KeySpec SYMMETRIC_DEFAULT is supported");
  }
  if (desc && desc->size() > 8192)
    return Aws("ValidationException", "Description is longer than 8192 characters");
  const std::string text = policy ? *policy : KeyService::DefaultPolicy(svc.store().account());
  if (auto p = ParsePolicy(text); !p.ok()) return ToAws(p.error());
  auto key = svc.store().CreateKey(desc.value_or(""), text);
  if (!key.ok()) return ToAws(key.error());
  call.key_arn = key->arn;
  call.decision = "allow";
  return json{{"KeyMetadata", KeyMetadataJson(*key, svc.store().account())}};
}

Result<KeyMetadata> ResolveKey(KeyService& svc, const std::string& ref) {
  auto key = svc.store().Describe(ref);
  if (!key.ok()) return ToAws(key.error());
  return *key;
}

Result<json> DescribeKey(KeyService& svc, KeyService::Call& call,
                         const std::vector<attest::TrustedRoot>&) {
  MS_ASSIGN_OR_RETURN(std::string ref, String(call.req, "KeyId"));
  MS_ASSIGN_OR_RETURN(KeyMetadata key, ResolveKey(svc, ref));
  MS_RETURN_IF_ERROR(Authorize(svc, call, key, {}));
  return json{{"KeyMetadata", KeyMetadataJson(key, svc.store().account())}};
}

Result<json> ListKeys(KeyService& svc, KeyService::Call& call,
                      const std::vector<attest::TrustedRoot>&) {
  const auto keys = svc.store().List();
  MS_ASSIGN_OR_RETURN(auto page, Page(call.req, keys.size()));
  json out = {{"Keys", json::array()}, {"Truncated", page.second < keys.size()}};
  for (size_t i = page.first; i < page.second; ++i) {
    out["Keys"].push_back({{"KeyId", keys[i].key_id}, {"KeyArn", keys[i].arn}});
  }
  if (page.second < keys.size()) out["NextMarker"] = std::to_string(page.second);
  call.decision = "allow";
  return out;
}

Result<json> CreateAlias(KeyService& svc, KeyService::Call& call,
                         const std::vector<attest::TrustedRoot>&) {
  MS_ASSIGN_OR_RETURN(std::string alias, String(call.req, "AliasName"));
  MS_ASSIGN_OR_RETURN(std::string target, String(call.req, "TargetKeyId"));
  MS_ASSIGN_OR_RETURN(KeyMetadata key, ResolveKey(svc, target));
  MS_RETURN_IF_ERROR(Authorize(svc, call, key, {}));
  if (Status s = svc.store().CreateAlias(alias, key.key_id); !s.ok()) return ToAws(s.error());
  return json::object();
}

Result<json> ListAliases(KeyService& svc, KeyService::Call& call,
                         const std::vector<attest::TrustedRoot>&) {
  MS_ASSIGN_OR_RETURN(auto filter, OptString(call.req, "KeyId"));
  std::vector<std::pair<std::string, std::string>> all;
  std::string filter_id;
  if (filter) {
    MS_ASSIGN_OR_RETURN(KeyMetadata key, ResolveKey(svc, *filter));
    filter_id = key.key_id;
  }
  for (const auto& [alias, id] : svc.store().Aliases()) {
    if (filter_id.empty() || id == filter_id) all.emplace_back(alias, id);
  }
  MS_ASSIGN_OR_RETURN(auto page, Page(call.req, all.size()));
  json out = {{"Aliases", json::array()}, {"Truncated", page.second < all.size()}};
  const std::string prefix =
      "arn:aws:kms:" + svc.store().region() + ":" + svc.store().account() + ":";
  for (size_t i = page.first; i < page.second; ++i) {
    out["Aliases"].push_back({{"AliasName", all[i].first},
                              {"AliasArn", prefix + all[i].first},
                              {"TargetKeyId", all[i].second}});
  }
  if (page.second < all.size()) out["NextMarker"] = std::to_string(page.second);
  call.decision = "allow";
  return out;
}

// Puts `plaintext` into the reply: as CiphertextForRecipient when the request was
// attested, otherwise as Plaintext.
Status ReleasePlaintext(json& out, const SecretBuffer& plaintext,
                        const std::optional<Bytes>& recipient) {
  if (recipient) {
    auto env = EnvelopeForRecipient(*recipient, plaintext.span());
    if (!env.ok()) return Aws("ValidationException", env.error().message);
    out["CiphertextForRecipient"] = Base64Encode(*env);
  } else {
    out["Plaintext"] = Base64Encode(plaintext.span());
  }
  return Ok{};
}

Result<json> GenerateDataKey(KeyService& svc, KeyService::Call& call,
                             const std::vector<attest::TrustedRoot>& roots) {
  MS_ASSIGN_OR_RETURN(std::string ref, String(call.req, "KeyId"));
  MS_ASSIGN_OR_RETURN(EncryptionContext ctx, Context(call.req));
  MS_ASSIGN_OR_RETURN(auto spec, OptString(call.req, "KeySpec"));
  size_t bytes = 0;
  if (call.req.contains("NumberOfBytes")) {
    if (!call.req["NumberOfBytes"].is_number_integer() ||
        call.req["NumberOfBytes"].get<int64_t>() < 1 ||
        call.req["NumberOfBytes"].get<int64_t>() > 1024) {
      return Aws("ValidationException", "NumberOfBytes must be an integer between 1 and 1024");
    }
    bytes = call.req["NumberOfBytes"].get<size_t>();
  }
  if (spec) {
    if (bytes)
      return Aws("ValidationException", "Specify either KeySpec or NumberOfBytes, not both");
    if (*spec == "AES_256") {
      bytes = 32;
    } else if (*spec == "AES_128") {
      bytes = 16;
    } else {
      return Aws("ValidationException", "KeySpec must be AES_256 or AES_128");
    }
  }
  if (!bytes) return Aws("ValidationException", "Specify either KeySpec or NumberOfBytes");
  MS_ASSIGN_OR_RETURN(KeyMetadata key, ResolveKey(svc, ref));
  call.key_arn = key.arn;
  MS_ASSIGN_OR_RETURN(auto recipient, CheckRecipient(call, roots, svc.chain_cache()));
  MS_RETURN_IF_ERROR(Authorize(svc, call, key, ctx));
  SecretBuffer data_key(bytes);
  MS_RETURN_IF_ERROR(RandomBytes(data_key.data(), data_key.size()));
  auto blob = svc.store().Encrypt(key.key_id, data_key.span(), ctx);
  if (!blob.ok()) return ToAws(blob.error());
  json out = {{"KeyId", key.arn}, {"CiphertextBlob", Base64Encode(*blob)}};
  MS_RETURN_IF_ERROR(ReleasePlaintext(out, data_key, recipient));
  return out;
}

Result<json> Encrypt(KeyService& svc, KeyService::Call& call,
                     const std::vector<attest::TrustedRoot>&) {
  MS_ASSIGN_OR_RETURN(std::string ref, String(call.req, "KeyId"));
  MS_ASSIGN_OR_RETURN(Bytes plain, Blob(call.req, "Plaintext", 4096));
  MS_ASSIGN_OR_RETURN(EncryptionContext ctx, Context(call.req));
  MS_ASSIGN_OR_RETURN(KeyMetadata key, ResolveKey(svc, ref));
  MS_RETURN_IF_ERROR(Authorize(svc, call, key, ctx));
  auto blob = svc.store().Encrypt(key.key_id, plain, ctx);
  OPENSSL_cleanse(plain.data(), plain.size());
  if (!blob.ok()) return ToAws(blob.error());
  return json{{"KeyId", key.arn},
              {"CiphertextBlob", Base64Encode(*blob)},
              {"EncryptionAlgorithm", "SYMMETRIC_DEFAULT"}};
}

Result<json> Decrypt(KeyService& svc, KeyService::Call& call,
                     const std::vector<attest::TrustedRoot>& roots) {
  MS_ASSIGN_OR_RETURN(Bytes blob, Blob(call.req, "CiphertextBlob", 6144));
  MS_ASSIGN_OR_RETURN(EncryptionContext ctx, Context(call.req));
  MS_ASSIGN_OR_RETURN(auto given_key, OptString(call.req, "KeyId"));
  auto id = KeyStore::BlobKeyId(blob);
  if (!id.ok()) return ToAws(id.error());
  MS_ASSIGN_OR_RETURN(KeyMetadata key, ResolveKey(svc, *id));
  call.key_arn = key.arn;
  if (given_key) {
    MS_ASSIGN_OR_RETURN(KeyMetadata named, ResolveKey(svc, *given_key));
    if (named.key_id != key.key_id) {
      return Aws(
          "IncorrectKeyException",
          "The key ID in the request does not identify a KMS key that can perform this operation.");
    }
  }
  MS_ASSIGN_OR_RETURN(auto recipient, CheckRecipient(call, roots, svc.chain_cache()));
  MS_RETURN_IF_ERROR(Authorize(svc, call, key, ctx));
  auto opened = svc.store().Decrypt(blob, ctx);
  if (!opened.ok()) {
    call.decision = "deny";
    return ToAws(opened.error());
  }
  json out = {{"KeyId", key.arn}, {"EncryptionAlgorithm", "SYMMETRIC_DEFAULT"}};
  MS_RETURN_IF_ERROR(ReleasePlaintext(out, opened->plaintext, recipient));
  return out;
}

Result<json> GetKeyPolicy(KeyService& svc, KeyService::Call& call,
                          const std::vector<attest::TrustedRoot>&) {
  MS_ASSIGN_OR_RETURN(std::string ref, String(call.req, "KeyId"));
  MS_ASSIGN_OR_RETURN(auto name, OptString(call.req, "PolicyName"));
  MS_ASSIGN_OR_RETURN(KeyMetadata key, ResolveKey(svc, ref));
  MS_RETURN_IF_ERROR(Authorize(svc, call, key, {}));
  if (name && *name != "default")
    return Aws("NotFoundException", "Policy " + *name + " does not exist");
  return json{{"Policy", key.policy}, {"PolicyName", "default"}};
}

Result<json> PutKeyPolicy(KeyService& svc, KeyService::Call& call,
                          const std::vector<attest::TrustedRoot>&) {
  MS_ASSIGN_OR_RETURN(std::string ref, String(call.req, "KeyId"));
  MS_ASSIGN_OR_RETURN(std::string text, String(call.req, "Policy"));
  MS_ASSIGN_OR_RETURN(auto name, OptString(call.req, "PolicyName"));
  if (name && *name != "default")
    return Aws("ValidationException", "PolicyName must be \"default\"");
  MS_ASSIGN_OR_RETURN(KeyMetadata key, ResolveKey(svc, ref));
  MS_RETURN_IF_ERROR(Authorize(svc, call, key, {}));
  auto policy = ParsePolicy(text);
  if (!policy.ok()) return ToAws(policy.error());
  const bool bypass = call.req.value("BypassPolicyLockoutSafetyCheck", false);
  if (!bypass && !Evaluate(*policy, MakeContext(call, key.arn, {})).allowed()) {
    return Aws("MalformedPolicyDocumentException",
               "The new key policy will not allow you to update the key policy in the future.");
  }
  if (Status s = svc.store().PutPolicy(key.key_id, text); !s.ok()) return ToAws(s.error());
  return json::object();
}

Result<json> ScheduleKeyDeletion(KeyService& svc, KeyService::Call& call,
                                 const std::vector<attest::TrustedRoot>&) {
  MS_ASSIGN_OR_RETURN(std::string ref, String(call.req, "KeyId"));
  int days = 30;
  if (call.req.contains("PendingWindowInDays")) {
    if (!call.req["PendingWindowInDays"].is_number_integer()) {
      return Aws("SerializationException", "PendingWindowInDays must be an integer");
    }
    days = call.req["PendingWindowInDays"].get<int>();
  }
  MS_ASSIGN_OR_RETURN(KeyMetadata key, ResolveKey(svc, ref));
  MS_RETURN_IF_ERROR(Authorize(svc, call, key, {}));
  auto done = svc.store().ScheduleDeletion(key.key_id, days);
  if (!done.ok()) return ToAws(done.error());
  return json{{"KeyId", done->arn},
              {"DeletionDate", EpochSeconds(done->deletion_ms)},
              {"KeyState", "PendingDeletion"},
              {"PendingWindowInDays", days}};
}

const std::map<std::string, Handler>& Handlers() {
  static const std::map<std::string, Handler> kHandlers = {
      {"CreateKey", CreateKey},
      {"DescribeKey", DescribeKey},
      {"ListKeys", ListKeys},
      {"CreateAlias", CreateAlias},
      {"ListAliases", ListAliases},
      {"GenerateDataKey", GenerateDataKey},
      {"Encrypt", Encrypt},
      {"Decrypt", Decrypt},
      {"GetKeyPolicy", GetKeyPolicy},
      {"PutKeyPolicy", PutKeyPolicy},
      {"ScheduleKeyDeletion", ScheduleKeyDeletion},
  };
  return kHandlers;
}

}  // namespace

ServiceReply KeyService::Handle(const std::string& operation, const std::string& body,
                                const std::string& principal_arn) {
  Call call;
  call.operation = operation;
  call.principal = principal_arn;
  Result<json> result = Aws("UnknownOperationException", "");
  auto it = Handlers().find(operation);
  if (it == Handlers().end()) {
    result = Aws("UnknownOperationException", "Operation " + operation + " is not supported");
  } else {
    call.req = json::parse(body.empty() ? std::string("{}") : body, nullptr, false);
    if (call.req.is_discarded() || !call.req.is_object()) {
      result = Aws("SerializationException", "The request body is not a JSON object");
    } else {
      result = it->second(*this, call, roots_);
    }
  }
  ServiceReply reply;
  if (result.ok()) {
    reply.body = result->dump();
  } else {
    call.error_type = result.error().reason;
    if (call.decision == "allow") call.decision = "error";
    reply.status = call.error_type == "KMSInternalException" ? 500 : 400;
    reply.body = json{{"__type", call.error_type}, {"message", result.error().message}}.dump();
  }
  Audit(call);
  return reply;
}

}  // namespace modelseal::kms
