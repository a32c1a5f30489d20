// The key service's operations: field validation as AWS documents it for each
// operation (https://docs.aws.amazon.com/kms/latest/APIReference/API_<Operation>.html),
// authorisation (authorize.h) and the store.
#include <openssl/crypto.h>

#include <nlohmann/json.hpp>

#include "common/bytes.h"
#include "common/ossl.h"
#include "kms/recipient.h"
#include "kms/secret_codec.h"
#include "kms/service_internal.h"

namespace modelseal::kms {

using nlohmann::json;
namespace ae = aws_error;

namespace {

// Store/policy errors -> the exception AWS would send (by reason token, never text).
Error ToAws(const Error& e) {
  static const std::map<std::string, ae::Type> kMap = {
      {"not-found", ae::kNotFound},
      {"invalid-state", ae::kInvalidState},
      {"disabled", ae::kDisabled},
      {"invalid-ciphertext", ae::kInvalidCiphertext},
      {"already-exists", ae::kAlreadyExists},
      {"invalid-alias", ae::kInvalidAliasName},
      {"invalid-argument", ae::kValidation},
      {"malformed-policy", ae::kMalformedPolicyDocument},
  };
  if (ae::TypeOf(e)) return e;
  auto it = kMap.find(e.reason);
  return ae::Make(it == kMap.end() ? ae::kInternal : it->second, e.message);
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

// ---- request fields, with AWS's validation messages

Error LengthError(const char* name, size_t min, size_t max) {
  return ae::Make(ae::kValidation, std::string("1 validation error detected: Value at '") + name +
                                       "' failed to satisfy constraint: Member must have length "
                                       "between " +
                                       std::to_string(min) + " and " + std::to_string(max));
}

Result<std::optional<std::string>> OptString(const json& req, const char* name) {
  if (!req.contains(name) || req[name].is_null()) return std::optional<std::string>();
  if (!req[name].is_string()) {
    return ae::Make(ae::kSerialization, std::string("Field ") + name + " must be a string");
  }
  return std::optional<std::string>(req[name].get<std::string>());
}

Result<std::optional<std::string>> OptBoundedString(const json& req, const char* name, size_t min,
                                                    size_t max) {
  MS_ASSIGN_OR_RETURN(auto v, OptString(req, name));
  if (v && (v->size() < min || v->size() > max)) return LengthError(name, min, max);
  return v;
}

Result<std::string> String(const json& req, const char* name, size_t max) {
  MS_ASSIGN_OR_RETURN(auto v, OptString(req, name));
  if (!v || v->empty()) {
    return ae::Make(ae::kValidation, std::string("1 validation error detected: Value null at '") +
                                         name +
                                         "' failed to satisfy constraint: Member must not be null");
  }
  if (v->size() > max) return LengthError(name, 1, max);
  return *v;
}

// Key ids, ARNs and alias names: KeyId is 1..2048 characters in every operation.
Result<std::string> KeyIdField(const json& req, const char* name) {
  return String(req, name, 2048);
}

Result<std::optional<bool>> OptBool(const json& req, const char* name) {
  if (!req.contains(name) || req[name].is_null()) return std::optional<bool>();
  if (!req[name].is_boolean()) {
    return ae::Make(ae::kSerialization, std::string("Field ") + name + " must be a boolean");
  }
  return std::optional<bool>(req[name].get<bool>());
}

// An enum-valued field: unknown values are a ValidationException.
Result<std::optional<std::string>> OptEnum(const json& req, const char* name,
                                           const std::vector<std::string>& allowed) {
  MS_ASSIGN_OR_RETURN(auto v, OptString(req, name));
  if (v && std::find(allowed.begin(), allowed.end(), *v) == allowed.end()) {
    std::string set;
    for (const auto& a : allowed) set += (set.empty() ? "" : ", ") + a;
    return ae::Make(ae::kValidation, std::string("1 validation error detected: Value at '") + name +
                                         "' failed to satisfy constraint: Member must satisfy "
                                         "enum value set: [" +
                                         set + "]");
  }
  return v;
}

Result<Bytes> Blob(const json& req, const char* name, size_t max) {
  MS_ASSIGN_OR_RETURN(std::string text, String(req, name, (max + 2) / 3 * 4));
  auto b = Base64Decode(text);
  if (!b) {
    return ae::Make(ae::kSerialization, std::string("Field ") + name + " is not valid base64");
  }
  if (b->empty() || b->size() > max) return LengthError(name, 1, max);
  return *b;
}

Result<SecretBuffer> SecretBlob(json& req, const char* name, size_t max) {
  MS_ASSIGN_OR_RETURN(std::string text, String(req, name, (max + 2) / 3 * 4));
  auto b = Base64DecodeSecret(text);
  WipeString(text);
  if (!b) {
    return ae::Make(ae::kSerialization, std::string("Field ") + name + " is not valid base64");
  }
  if (b->empty() || b->size() > max) return LengthError(name, 1, max);
  return std::move(*b);
}

Result<EncryptionContext> Context(const json& req) {
  EncryptionContext ctx;
  if (!req.contains("EncryptionContext") || req["EncryptionContext"].is_null()) return ctx;
  const json& c = req["EncryptionContext"];
  if (!c.is_object()) {
    return ae::Make(ae::kSerialization, "EncryptionContext must be a map of strings");
  }
  for (auto it = c.begin(); it != c.end(); ++it) {
    if (!it.value().is_string()) {
      return ae::Make(ae::kSerialization, "EncryptionContext values must be strings");
    }
    ctx[it.key()] = it.value().get<std::string>();
  }
  return ctx;
}

// GrantTokens: up to 10 strings of 1..8192 characters. This service issues no
// grants, so a token can add no permission; it is validated and ignored.
Status GrantTokens(const json& req) {
  if (!req.contains("GrantTokens") || req["GrantTokens"].is_null()) return Ok{};
  const json& g = req["GrantTokens"];
  if (!g.is_array()) return ae::Make(ae::kSerialization, "GrantTokens must be a list of strings");
  if (g.size() > 10) return LengthError("grantTokens", 0, 10);
  for (const auto& t : g) {
    if (!t.is_string())
      return ae::Make(ae::kSerialization, "GrantTokens must be a list of strings");
    if (t.get_ref<const std::string&>().empty() || t.get_ref<const std::string&>().size() > 8192) {
      return LengthError("grantTokens", 1, 8192);
    }
  }
  return Ok{};
}

// DryRun (Encrypt, Decrypt, GenerateDataKey): checks permissions and stops with
// DryRunOperationException, HTTP 412.
Result<bool> DryRun(const json& req) {
  MS_ASSIGN_OR_RETURN(auto v, OptBool(req, "DryRun"));
  return v.value_or(false);
}

// EncryptionAlgorithm: the enum of the API; a symmetric key supports only
// SYMMETRIC_DEFAULT (InvalidKeyUsageException for the others).
Status EncryptionAlgorithm(const json& req) {
  MS_ASSIGN_OR_RETURN(
      auto alg, OptEnum(req, "EncryptionAlgorithm",
                        {"SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE"}));
  if (alg && *alg != "SYMMETRIC_DEFAULT") {
    return ae::Make(ae::kInvalidKeyUsage,
                    "The encryption algorithm " + *alg + " is not supported by a symmetric key");
  }
  return Ok{};
}

Result<std::pair<size_t, size_t>> Page(const json& req, size_t total, int64_t max_limit) {
  size_t limit = 100;
  size_t start = 0;
  if (req.contains("Limit") && !req["Limit"].is_null()) {
    if (!req["Limit"].is_number_integer()) {
      return ae::Make(ae::kSerialization, "Limit must be an integer");
    }
    const int64_t l = req["Limit"].get<int64_t>();
    if (l < 1 || l > max_limit) {
      return ae::Make(ae::kValidation, "Limit must be between 1 and " + std::to_string(max_limit));
    }
    limit = static_cast<size_t>(l);
  }
  MS_ASSIGN_OR_RETURN(auto marker, OptBoundedString(req, "Marker", 1, 1024));
  if (marker) {
    if (marker->empty() || marker->size() > 9 ||
        !std::all_of(marker->begin(), marker->end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return ae::Make(ae::kInvalidMarker, "Marker is invalid");
    }
    start = std::stoul(*marker);
    if (start > total) return ae::Make(ae::kInvalidMarker, "Marker is invalid");
  }
  return std::make_pair(start, std::min(total, start + limit));
}

std::string AliasArn(KeyService& svc, const std::string& alias) {
  return "arn:aws:kms:" + svc.store().region() + ":" + svc.store().account() + ":" + alias;
}

// ---- authorisation

Status Deny(KeyService::Call& call, const std::string& resource, const Authorization& a) {
  return ae::Make(ae::kAccessDenied, "User: " + call.principal +
                                         " is not authorized to perform: kms:" + call.operation +
                                         " on resource: " + resource + " because " + a.reason);
}

// Authorises the call's operation on `key` (key policy + identity policy).
Status AuthorizeKey(KeyService& svc, KeyService::Call& call, const KeyMetadata& key,
                    const EncryptionContext* ctx, const std::string& operation = "") {
  call.key_arn = key.arn;
  MS_ASSIGN_OR_RETURN(auto policy, svc.ParsedPolicy(key.policy));
  EvaluationRequest q;
  q.principal_arn = call.principal;
  q.operation = operation.empty() ? call.operation : operation;
  q.resource = key.arn;
  q.key_resource = true;
  q.encryption_context = ctx;
  q.attestation = call.attestation ? &*call.attestation : nullptr;
  const Authorization a = Authorize(policy.get(), call.identity, BuildRequestContext(q));
  call.statement = a.deciding;
  call.decision = a.allowed ? "allow" : "deny";
  if (!a.allowed) return Deny(call, key.arn, a);
  return Ok{};
}

// Authorises an operation on no key (CreateKey, ListKeys, ListAliases) or on an
// alias: the identity policy alone decides.
Status AuthorizeIam(KeyService& svc, KeyService::Call& call, const std::string& resource) {
  EvaluationRequest q;
  q.principal_arn = call.principal;
  q.operation = call.operation;
  q.resource = resource;
  const Authorization a = Authorize(nullptr, call.identity, BuildRequestContext(q));
  (void)svc;
  call.statement = a.deciding;
  call.decision = a.allowed ? "allow" : "deny";
  if (!a.allowed) return Deny(call, resource, a);
  return Ok{};
}

Status StopIfDryRun(KeyService::Call& call, bool dry_run) {
  if (!dry_run) return Ok{};
  call.dry_run = true;
  call.status_override = 412;
  return ae::Make(ae::kDryRun, "The request would have succeeded, but the DryRun option is set.");
}

Result<KeyMetadata> ResolveKey(KeyService& svc, const std::string& ref) {
  auto key = svc.store().Describe(ref);
  if (!key.ok()) return ToAws(key.error());
  return *key;
}

// Verifies the Recipient of a request, fills the call's attestation, and returns
// the recipient's public key (DER SubjectPublicKeyInfo), or nullopt without one.
Result<std::optional<Bytes>> CheckRecipient(KeyService& svc, KeyService::Call& call,
                                            const std::vector<attest::TrustedRoot>& roots) {
  if (!call.req.contains("Recipient") || call.req["Recipient"].is_null())
    return std::optional<Bytes>();
  const json& r = call.req["Recipient"];
  if (!r.is_object()) return ae::Make(ae::kSerialization, "Recipient must be an object");
  MS_ASSIGN_OR_RETURN(auto alg, OptEnum(r, "KeyEncryptionAlgorithm", {"RSAES_OAEP_SHA_256"}));
  (void)alg;
  MS_ASSIGN_OR_RETURN(Bytes doc, Blob(r, "AttestationDocument", 1 << 20));
  MS_ASSIGN_OR_RETURN(RecipientCheck checked,
                      VerifyRecipient(doc, roots, svc.chain_cache(), &call.claimed));
  call.attestation = std::move(checked.attestation);
  return std::optional<Bytes>(std::move(checked.public_key));
}

// Puts `plaintext` into the reply: as CiphertextForRecipient when the request was
// attested, otherwise as Plaintext.
Status ReleasePlaintext(json& out, const SecretBuffer& plaintext,
                        const std::optional<Bytes>& recipient) {
  if (recipient) {
    auto env = EnvelopeForRecipient(*recipient, plaintext.span());
    if (!env.ok()) return ae::Make(ae::kValidation, env.error().message);
    out["CiphertextForRecipient"] = Base64Encode(*env);
  } else {
    out["Plaintext"] = Base64Encode(plaintext.span());
  }
  return Ok{};
}

// ---- operations

// CreateKey: https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateKey.html
Result<json> CreateKey(KeyService& svc, KeyService::Call& call,
                       const std::vector<attest::TrustedRoot>&) {
  const json& req = call.req;
  MS_ASSIGN_OR_RETURN(auto policy, OptBoundedString(req, "Policy", 1, 131072));
  MS_ASSIGN_OR_RETURN(auto desc, OptBoundedString(req, "Description", 0, 8192));
  MS_ASSIGN_OR_RETURN(auto usage, OptEnum(req, "KeyUsage",
                                          {"SIGN_VERIFY", "ENCRYPT_DECRYPT", "GENERATE_VERIFY_MAC",
                                           "KEY_AGREEMENT"}));
  const std::vector<std::string> kSpecs = {"RSA_2048",
                                           "RSA_3072",
                                           "RSA_4096",
                                           "ECC_NIST_P256",
                                           "ECC_NIST_P384",
                                           "ECC_NIST_P521",
                                           "ECC_SECG_P256K1",
                                           "SYMMETRIC_DEFAULT",
                                           "HMAC_224",
                                           "HMAC_256",
                                           "HMAC_384",
                                           "HMAC_512",
                                           "SM2",
                                           "ML_DSA_44",
                                           "ML_DSA_65",
                                           "ML_DSA_87",
                                           "ECC_NIST_EDWARDS25519"};
  MS_ASSIGN_OR_RETURN(auto spec, OptEnum(req, "KeySpec", kSpecs));
  MS_ASSIGN_OR_RETURN(auto cmk_spec, OptEnum(req, "CustomerMasterKeySpec", kSpecs));
  MS_ASSIGN_OR_RETURN(
      auto origin,
      OptEnum(req, "Origin", {"AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"}));
  MS_ASSIGN_OR_RETURN(auto multi_region, OptBool(req, "MultiRegion"));
  MS_ASSIGN_OR_RETURN(auto bypass, OptBool(req, "BypassPolicyLockoutSafetyCheck"));
  MS_ASSIGN_OR_RETURN(auto custom_store, OptBoundedString(req, "CustomKeyStoreId", 1, 64));
  MS_ASSIGN_OR_RETURN(auto xks, OptBoundedString(req, "XksKeyId", 1, 128));
  if (req.contains("Tags") && !req["Tags"].is_null()) {
    const json& tags = req["Tags"];
    if (!tags.is_array()) return ae::Make(ae::kSerialization, "Tags must be a list");
    for (const auto& t : tags) {
      if (!t.is_object() || !t.contains("TagKey") || !t["TagKey"].is_string() ||
          !t.contains("TagValue") || !t["TagValue"].is_string()) {
        return ae::Make(ae::kSerialization, "Each tag needs TagKey and TagValue strings");
      }
    }
    if (!tags.empty()) {
      return ae::Make(ae::kUnsupportedOperation,
                      "This key service does not support tags; create the key without Tags");
    }
  }
  if (usage && *usage != "ENCRYPT_DECRYPT") {
    return ae::Make(ae::kUnsupportedOperation, "Only KeyUsage ENCRYPT_DECRYPT is supported");
  }
  if ((spec && *spec != "SYMMETRIC_DEFAULT") || (cmk_spec && *cmk_spec != "SYMMETRIC_DEFAULT")) {
    return ae::Make(ae::kUnsupportedOperation, "Only KeySpec SYMMETRIC_DEFAULT is supported");
  }
  if (origin && *origin != "AWS_KMS") {
    return ae::Make(ae::kUnsupportedOperation, "Only Origin AWS_KMS is supported");
  }
  if (multi_region.value_or(false)) {
    return ae::Make(ae::kUnsupportedOperation, "Multi-Region keys are not supported");
  }
  if (custom_store || xks) {
    return ae::Make(ae::kUnsupportedOperation, "Custom key stores are not supported");
  }
  MS_RETURN_IF_ERROR(AuthorizeIam(svc, call, "*"));
  const std::string text = policy ? *policy : KeyService::DefaultPolicy(svc.store().account());
  auto parsed = ParsePolicy(text);
  if (!parsed.ok()) return ToAws(parsed.error());
  if (policy && !bypass.value_or(false)) {
    // As PutKeyPolicy: the new policy must let the caller change it later
    // (https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-bypass-policy-lockout-safety-check).
    EvaluationRequest q{call.principal, "PutKeyPolicy", "*", true, nullptr, nullptr};
    if (!Authorize(&*parsed, call.identity, BuildRequestContext(q)).allowed) {
      return ae::Make(ae::kMalformedPolicyDocument,
                      "The new key policy will not allow you to update the key policy in the "
                      "future.");
    }
  }
  auto key = svc.store().CreateKey(desc.value_or(""), text);
  if (!key.ok()) return ToAws(key.error());
  call.key_arn = key->arn;
  return json{{"KeyMetadata", KeyMetadataJson(*key, svc.store().account())}};
}

Result<json> DescribeKey(KeyService& svc, KeyService::Call& call,
                         const std::vector<attest::TrustedRoot>&) {
  MS_ASSIGN_OR_RETURN(std::string ref, KeyIdField(call.req, "KeyId"));
  MS_RETURN_IF_ERROR(GrantTokens(call.req));
  MS_ASSIGN_OR_RETURN(KeyMetadata key, ResolveKey(svc, ref));
  MS_RETURN_IF_ERROR(AuthorizeKey(svc, call, key, nullptr));
  return json{{"KeyMetadata", KeyMetadataJson(key, svc.store().account())}};
}

Result<json> SetEnabled(KeyService& svc, KeyService::Call& call, bool enabled) {
  MS_ASSIGN_OR_RETURN(std::string ref, KeyIdField(call.req, "KeyId"));
  MS_ASSIGN_OR_RETURN(KeyMetadata key, ResolveKey(svc, ref));
  MS_RETURN_IF_ERROR(AuthorizeKey(svc, call, key, nullptr));
  if (Status s = svc.store().SetEnabled(key.key_id, enabled); !s.ok()) return ToAws(s.error());
  return json::object();
}

Result<json> EnableKey(KeyService& svc, KeyService::Call& call,
                       const std::vector<attest::TrustedRoot>&) {
  return SetEnabled(svc, call, true);
}

Result<json> DisableKey(KeyService& svc, KeyService::Call& call,
                        const std::vector<attest::TrustedRoot>&) {
  return SetEnabled(svc, call, false);
}

Result<json> ListKeys(KeyService& svc, KeyService::Call& call,
                      const std::vector<attest::TrustedRoot>&) {
  const auto keys = svc.store().List();
  MS_ASSIGN_OR_RETURN(auto page, Page(call.req, keys.size(), 1000));
  MS_RETURN_IF_ERROR(AuthorizeIam(svc, call, "*"));
  json out = {{"Keys", json::array()}, {"Truncated", page.second < keys.size()}};
  for (size_t i = page.first; i < page.second; ++i) {
    out["Keys"].push_back({{"KeyId", keys[i].key_id}, {"KeyArn", keys[i].arn}});
  }
  if (page.second < keys.size()) out["NextMarker"] = std::to_string(page.second);
  return out;
}

Result<std::string> AliasField(const json& req) {
  MS_ASSIGN_OR_RETURN(std::string alias, String(req, "AliasName", 256));
  if (!IsValidAliasName(alias)) {
    return ae::Make(
        ae::kInvalidAliasName,
        "Alias name must match alias/[a-zA-Z0-9/_-]+ and must not begin with alias/aws/");
  }
  return alias;
}

// CreateAlias needs kms:CreateAlias on the alias (identity policy) and on the key
// (key policy): https://docs.aws.amazon.com/kms/latest/developerguide/alias-access.html
Result<json> CreateAlias(KeyService& svc, KeyService::Call& call,
                         const std::vector<attest::TrustedRoot>&) {
  MS_ASSIGN_OR_RETURN(std::string alias, AliasField(call.req));
  MS_ASSIGN_OR_RETURN(std::string target, KeyIdField(call.req, "TargetKeyId"));
  MS_ASSIGN_OR_RETURN(KeyMetadata key, ResolveKey(svc, target));
  MS_RETURN_IF_ERROR(AuthorizeIam(svc, call, AliasArn(svc, alias)));
  MS_RETURN_IF_ERROR(AuthorizeKey(svc, call, key, nullptr));
  if (Status s = svc.store().CreateAlias(alias, key.key_id); !s.ok()) return ToAws(s.error());
  return json::object();
}

// UpdateAlias: on the alias (identity), the current key and the new key (key policies).
Result<json> UpdateAlias(KeyService& svc, KeyService::Call& call,
                         const std::vector<attest::TrustedRoot>&) {
  MS_ASSIGN_OR_RETURN(std::string alias, AliasField(call.req));
  MS_ASSIGN_OR_RETURN(std::string target, KeyIdField(call.req, "TargetKeyId"));
  MS_ASSIGN_OR_RETURN(KeyMetadata current, ResolveKey(svc, alias));
  MS_ASSIGN_OR_RETURN(KeyMetadata next, ResolveKey(svc, target));
  MS_RETURN_IF_ERROR(AuthorizeIam(svc, call, AliasArn(svc, alias)));
  MS_RETURN_IF_ERROR(AuthorizeKey(svc, call, current, nullptr));
  MS_RETURN_IF_ERROR(AuthorizeKey(svc, call, next, nullptr));
  if (Status s = svc.store().UpdateAlias(alias, next.key_id); !s.ok()) return ToAws(s.error());
  return json::object();
}

Result<json> DeleteAlias(KeyService& svc, KeyService::Call& call,
                         const std::vector<attest::TrustedRoot>&) {
  MS_ASSIGN_OR_RETURN(std::string alias, AliasField(call.req));
  MS_ASSIGN_OR_RETURN(KeyMetadata key, ResolveKey(svc, alias));
  MS_RETURN_IF_ERROR(AuthorizeIam(svc, call, AliasArn(svc, alias)));
  MS_RETURN_IF_ERROR(AuthorizeKey(svc, call, key, nullptr));
  if (Status s = svc.store().DeleteAlias(alias); !s.ok()) return ToAws(s.error());
  return json::object();
}

Result<json> ListAliases(KeyService& svc, KeyService::Call& call,
                         const std::vector<attest::TrustedRoot>&) {
  MS_ASSIGN_OR_RETURN(auto filter, OptBoundedString(call.req, "KeyId", 1, 2048));
  std::vector<std::pair<std::string, std::string>> all;
  std::string filter_id;
  if (filter) {
    MS_ASSIGN_OR_RETURN(KeyMetadata key, ResolveKey(svc, *filter));
    filter_id = key.key_id;
  }
  for (const auto& [alias, id] : svc.store().Aliases()) {
    if (filter_id.empty() || id == filter_id) all.emplace_back(alias, id);
  }
  MS_ASSIGN_OR_RETURN(auto page, Page(call.req, all.size(), 100));
  MS_RETURN_IF_ERROR(AuthorizeIam(svc, call, "*"));
  json out = {{"Aliases", json::array()}, {"Truncated", page.second < all.size()}};
  for (size_t i = page.first; i < page.second; ++i) {
    out["Aliases"].push_back({{"AliasName", all[i].first},
                              {"AliasArn", AliasArn(svc, all[i].first)},
                              {"TargetKeyId", all[i].second}});
  }
  if (page.second < all.size()) out["NextMarker"] = std::to_string(page.second);
  return out;
}

Result<json> GenerateDataKey(KeyService& svc, KeyService::Call& call,
                             const std::vector<attest::TrustedRoot>& roots) {
  MS_ASSIGN_OR_RETURN(std::string ref, KeyIdField(call.req, "KeyId"));
  MS_ASSIGN_OR_RETURN(EncryptionContext ctx, Context(call.req));
  MS_ASSIGN_OR_RETURN(auto spec, OptEnum(call.req, "KeySpec", {"AES_256", "AES_128"}));
  MS_RETURN_IF_ERROR(GrantTokens(call.req));
  MS_ASSIGN_OR_RETURN(bool dry_run, DryRun(call.req));
  size_t bytes = 0;
  if (call.req.contains("NumberOfBytes") && !call.req["NumberOfBytes"].is_null()) {
    if (!call.req["NumberOfBytes"].is_number_integer()) {
      return ae::Make(ae::kSerialization, "NumberOfBytes must be an integer");
    }
    const int64_t n = call.req["NumberOfBytes"].get<int64_t>();
    if (n < 1 || n > 1024) {
      return ae::Make(ae::kValidation, "NumberOfBytes must be an integer between 1 and 1024");
    }
    bytes = static_cast<size_t>(n);
  }
  if (spec) {
    if (bytes) {
      return ae::Make(ae::kValidation, "Specify either KeySpec or NumberOfBytes, not both");
    }
    bytes = *spec == "AES_256" ? 32 : 16;
  }
  if (!bytes) return ae::Make(ae::kValidation, "Specify either KeySpec or NumberOfBytes");
  MS_ASSIGN_OR_RETURN(KeyMetadata key, ResolveKey(svc, ref));
  call.key_arn = key.arn;
  MS_ASSIGN_OR_RETURN(auto recipient, CheckRecipient(svc, call, roots));
  MS_RETURN_IF_ERROR(AuthorizeKey(svc, call, key, &ctx));
  MS_RETURN_IF_ERROR(StopIfDryRun(call, dry_run));
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
  MS_ASSIGN_OR_RETURN(std::string ref, KeyIdField(call.req, "KeyId"));
  MS_ASSIGN_OR_RETURN(SecretBuffer plain, SecretBlob(call.req, "Plaintext", 4096));
  MS_ASSIGN_OR_RETURN(EncryptionContext ctx, Context(call.req));
  MS_RETURN_IF_ERROR(EncryptionAlgorithm(call.req));
  MS_RETURN_IF_ERROR(GrantTokens(call.req));
  MS_ASSIGN_OR_RETURN(bool dry_run, DryRun(call.req));
  MS_ASSIGN_OR_RETURN(KeyMetadata key, ResolveKey(svc, ref));
  MS_RETURN_IF_ERROR(AuthorizeKey(svc, call, key, &ctx));
  MS_RETURN_IF_ERROR(StopIfDryRun(call, dry_run));
  auto blob = svc.store().Encrypt(key.key_id, plain.span(), ctx);
  if (!blob.ok()) return ToAws(blob.error());
  return json{{"KeyId", key.arn},
              {"CiphertextBlob", Base64Encode(*blob)},
              {"EncryptionAlgorithm", "SYMMETRIC_DEFAULT"}};
}

// Decrypt: https://docs.aws.amazon.com/kms/latest/APIReference/API_Decrypt.html
// The ciphertext is authenticated under the request's context before the policy
// is evaluated (service.h, docs/kms.md "Evaluation order").
Result<json> Decrypt(KeyService& svc, KeyService::Call& call,
                     const std::vector<attest::TrustedRoot>& roots) {
  MS_ASSIGN_OR_RETURN(Bytes blob, Blob(call.req, "CiphertextBlob", 6144));
  MS_ASSIGN_OR_RETURN(EncryptionContext ctx, Context(call.req));
  MS_ASSIGN_OR_RETURN(auto given_key, OptBoundedString(call.req, "KeyId", 1, 2048));
  MS_RETURN_IF_ERROR(EncryptionAlgorithm(call.req));
  MS_RETURN_IF_ERROR(GrantTokens(call.req));
  MS_ASSIGN_OR_RETURN(bool dry_run, DryRun(call.req));
  auto id = KeyStore::BlobKeyId(blob);
  if (!id.ok()) return ToAws(id.error());
  MS_ASSIGN_OR_RETURN(KeyMetadata key, ResolveKey(svc, *id));
  call.key_arn = key.arn;
  if (given_key) {
    // "If you identify a different KMS key, the Decrypt operation throws an
    // IncorrectKeyException." (API_Decrypt.html)
    auto named = svc.store().Describe(*given_key);
    if (!named.ok() || named->key_id != key.key_id) {
      return ae::Make(ae::kIncorrectKey,
                      "The key ID in the request does not identify a KMS key that can perform "
                      "this operation.");
    }
  }
  auto opened = svc.store().Decrypt(blob, ctx);
  if (!opened.ok()) return ToAws(opened.error());
  MS_ASSIGN_OR_RETURN(auto recipient, CheckRecipient(svc, call, roots));
  MS_RETURN_IF_ERROR(AuthorizeKey(svc, call, key, &ctx));
  MS_RETURN_IF_ERROR(StopIfDryRun(call, dry_run));
  json out = {{"KeyId", key.arn}, {"EncryptionAlgorithm", "SYMMETRIC_DEFAULT"}};
  MS_RETURN_IF_ERROR(ReleasePlaintext(out, opened->plaintext, recipient));
  return out;
}

Result<json> GetKeyPolicy(KeyService& svc, KeyService::Call& call,
                          const std::vector<attest::TrustedRoot>&) {
  MS_ASSIGN_OR_RETURN(std::string ref, KeyIdField(call.req, "KeyId"));
  MS_ASSIGN_OR_RETURN(auto name, OptBoundedString(call.req, "PolicyName", 1, 128));
  MS_ASSIGN_OR_RETURN(KeyMetadata key, ResolveKey(svc, ref));
  MS_RETURN_IF_ERROR(AuthorizeKey(svc, call, key, nullptr));
  if (name && *name != "default") {
    return ae::Make(ae::kNotFound, "Policy " + *name + " does not exist");
  }
  return json{{"Policy", key.policy}, {"PolicyName", "default"}};
}

Result<json> PutKeyPolicy(KeyService& svc, KeyService::Call& call,
                          const std::vector<attest::TrustedRoot>&) {
  MS_ASSIGN_OR_RETURN(std::string ref, KeyIdField(call.req, "KeyId"));
  MS_ASSIGN_OR_RETURN(std::string text, String(call.req, "Policy", 131072));
  MS_ASSIGN_OR_RETURN(auto name, OptBoundedString(call.req, "PolicyName", 1, 128));
  MS_ASSIGN_OR_RETURN(auto bypass, OptBool(call.req, "BypassPolicyLockoutSafetyCheck"));
  if (name && *name != "default") {
    return ae::Make(ae::kValidation, "PolicyName must be \"default\"");
  }
  MS_ASSIGN_OR_RETURN(KeyMetadata key, ResolveKey(svc, ref));
  MS_RETURN_IF_ERROR(AuthorizeKey(svc, call, key, nullptr));
  auto policy = ParsePolicy(text);
  if (!policy.ok()) return ToAws(policy.error());
  if (!bypass.value_or(false)) {
    EvaluationRequest q{call.principal, "PutKeyPolicy", key.arn, true, nullptr, nullptr};
    if (!Authorize(&*policy, call.identity, BuildRequestContext(q)).allowed) {
      return ae::Make(ae::kMalformedPolicyDocument,
                      "The new key policy will not allow you to update the key policy in the "
                      "future.");
    }
  }
  if (Status s = svc.store().PutPolicy(key.key_id, text); !s.ok()) return ToAws(s.error());
  return json::object();
}

Result<json> ScheduleKeyDeletion(KeyService& svc, KeyService::Call& call,
                                 const std::vector<attest::TrustedRoot>&) {
  MS_ASSIGN_OR_RETURN(std::string ref, KeyIdField(call.req, "KeyId"));
  int days = 30;
  if (call.req.contains("PendingWindowInDays") && !call.req["PendingWindowInDays"].is_null()) {
    if (!call.req["PendingWindowInDays"].is_number_integer()) {
      return ae::Make(ae::kSerialization, "PendingWindowInDays must be an integer");
    }
    const int64_t d = call.req["PendingWindowInDays"].get<int64_t>();
    if (d < 7 || d > 30) {
      return ae::Make(ae::kValidation, "PendingWindowInDays must be between 7 and 30");
    }
    days = static_cast<int>(d);
  }
  MS_ASSIGN_OR_RETURN(KeyMetadata key, ResolveKey(svc, ref));
  MS_RETURN_IF_ERROR(AuthorizeKey(svc, call, key, nullptr));
  auto done = svc.store().ScheduleDeletion(key.key_id, days);
  if (!done.ok()) return ToAws(done.error());
  return json{{"KeyId", done->arn},
              {"DeletionDate", EpochSeconds(done->deletion_ms)},
              {"KeyState", "PendingDeletion"},
              {"PendingWindowInDays", days}};
}

// CancelKeyDeletion leaves the key Disabled, as AWS does:
// https://docs.aws.amazon.com/kms/latest/APIReference/API_CancelKeyDeletion.html
Result<json> CancelKeyDeletion(KeyService& svc, KeyService::Call& call,
                               const std::vector<attest::TrustedRoot>&) {
  MS_ASSIGN_OR_RETURN(std::string ref, KeyIdField(call.req, "KeyId"));
  MS_ASSIGN_OR_RETURN(KeyMetadata key, ResolveKey(svc, ref));
  MS_RETURN_IF_ERROR(AuthorizeKey(svc, call, key, nullptr));
  auto done = svc.store().CancelDeletion(key.key_id);
  if (!done.ok()) return ToAws(done.error());
  return json{{"KeyId", done->arn}};
}

}  // namespace

const std::map<std::string, Handler>& OperationHandlers() {
  static const std::map<std::string, Handler> kHandlers = {
      {"CreateKey", CreateKey},
      {"DescribeKey", DescribeKey},
      {"EnableKey", EnableKey},
      {"DisableKey", DisableKey},
      {"ListKeys", ListKeys},
      {"CreateAlias", CreateAlias},
      {"UpdateAlias", UpdateAlias},
      {"DeleteAlias", DeleteAlias},
      {"ListAliases", ListAliases},
      {"GenerateDataKey", GenerateDataKey},
      {"Encrypt", Encrypt},
      {"Decrypt", Decrypt},
      {"GetKeyPolicy", GetKeyPolicy},
      {"PutKeyPolicy", PutKeyPolicy},
      {"ScheduleKeyDeletion", ScheduleKeyDeletion},
      {"CancelKeyDeletion", CancelKeyDeletion},
  };
  return kHandlers;
}

}  // namespace modelseal::kms
